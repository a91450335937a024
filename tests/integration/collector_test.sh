#!/bin/bash
# driftwatch-collector over gRPC with mTLS, dw-loadgen as the sensors, `driftwatch events` as
# the reader: (a) events stored once and queryable, (b) a resend on a new stream stores
# nothing new, (c) clients without a certificate or with one from another CA are refused,
# (d) the certificate, not Hello.node, names the node, (e) oversized and malformed streams
# are ended while another sensor's stream keeps being acked, (f) plaintext only on loopback.
# Usage: collector_test.sh BUILD_DIR
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
source "$src/tests/integration/harness.sh"
dw_build "${1:?usage: collector_test.sh BUILD_DIR}" collector loadgen dw
dw_harness dw_collector_test

# Certificates: our CA with the sensors' nodes, and a second CA nobody trusts.
"$src/scripts/make-certs.sh" "$tmp/certs" node-a node-b sim-0 sim-1 sim-2 >/dev/null
"$src/scripts/make-certs.sh" "$tmp/evil" node-a >/dev/null
expect "keys are 0600" "$(stat -c %a "$tmp/certs/node-a.key")" 600
certs=$tmp/certs
tls=(--ca "$certs/ca.crt")

db=$tmp/collector.db
dw_collector_start main --listen 127.0.0.1:0 --tls-cert "$certs/collector.crt" --tls-key "$certs/collector.key" \
  --client-ca "$certs/ca.crt" --db "$db" --max-batch-events 5000 \
  --max-message-bytes 16777216  # (e): a 6000-event batch must reach the batch-size check
target=127.0.0.1:$port

# (a) three sensors, each with its own certificate, 1000 events each (the first a container).
run=(--target "$target" "${tls[@]}" --cert-dir "$certs" --sensors 3 --events-per-sensor 1000
  --batch 100 --boot-id 11111111-2222-3333-4444-555555555555
  --sensor-start-ns 1764320000000000000)
"$loadgen" "${run[@]}" >"$tmp/a.json" || true
expect "(a) all acked" "$(json "$tmp/a.json" 'j["events_acked"]')" 3000
expect "(a) all new" "$(json "$tmp/a.json" '(j["stored"], j["duplicates"])')" "(3000, 0)"
expect "(a) streams ok" "$(json "$tmp/a.json" 'j["status"]')" "{'OK': 3}"
"$dw" events --db "$db" --node sim-1 >"$tmp/a.events"
expect "(a) events of sim-1 (read while the collector runs)" "$(wc -l <"$tmp/a.events")" 1000
expect "(a) each seq once" "$(python3 -c '
import json,sys
nums=[json.loads(l)["evt.num"] for l in open(sys.argv[1])]
print(sorted(nums)==list(range(1,1001)))' "$tmp/a.events")" True
cid=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["container.id"])' "$tmp/a.events")
"$dw" events --db "$db" --container "$cid" --kind exec --limit 5 >"$tmp/a.exec"
expect "(a) container prefix, kind, limit" "$(wc -l <"$tmp/a.exec")" 5
expect "(a) stored container info joined" \
  "$(python3 -c 'import json,sys; e=json.loads(open(sys.argv[1]).readline()); print(e["evt.hostname"], e["k8s.pod.name"], e["evt.num"])' "$tmp/a.exec")" \
  "sim-1 payments-api-7d9f8c6b5-x2x7q 996"
expect "(a) since/until" "$("$dw" events --db "$db" --since 2025-11-28T08:53:20Z --until 2h --kind container | wc -l)" 3
expect "(a) since in the future" "$("$dw" events --db "$db" --since 2099-01-01 | wc -l)" 0
if "$dw" events --db "$db" --since yesterday >/dev/null 2>"$tmp/err"; then
  fail "(a) bad time accepted"
else
  grep -q "bad time 'yesterday'" "$tmp/err" && ok "(a) bad time refused" || fail "(a) $(cat "$tmp/err")"
fi
if "$dw" events --db "$tmp/none.db" >/dev/null 2>"$tmp/err"; then fail "(a) missing db"; else
  grep -q "no such database" "$tmp/err" && ok "(a) missing db named" || fail "(a) $(cat "$tmp/err")"
fi

# (b) the same events again on new streams: acked as duplicates, nothing stored.
"$loadgen" "${run[@]}" >"$tmp/b.json" || true
expect "(b) resend acked" "$(json "$tmp/b.json" 'j["events_acked"]')" 3000
expect "(b) resend all duplicates" "$(json "$tmp/b.json" '(j["stored"], j["duplicates"])')" "(0, 3000)"
expect "(b) still stored once" "$("$dw" events --db "$db" | wc -l)" 3000

# (c) no client certificate; a certificate from another CA.
"$loadgen" --target "$target" "${tls[@]}" --sensors 1 --events-per-sensor 10 --deadline-s 20 \
  >"$tmp/c1.json" || true
expect "(c) no certificate refused" "$(json "$tmp/c1.json" '(j["status"], j["events_acked"])')" \
  "({'UNAVAILABLE': 1}, 0)"
"$loadgen" --target "$target" "${tls[@]}" --cert "$tmp/evil/node-a.crt" --key "$tmp/evil/node-a.key" \
  --sensors 1 --events-per-sensor 10 --deadline-s 20 >"$tmp/c2.json" || true
expect "(c) other CA refused" "$(json "$tmp/c2.json" '(j["status"], j["events_acked"])')" \
  "({'UNAVAILABLE': 1}, 0)"
expect "(c) nothing stored for node-a" "$("$dw" events --db "$db" --node node-a | wc -l)" 0

# (d) node-a's certificate, Hello says node-b: filed under node-a.
"$loadgen" --target "$target" "${tls[@]}" --cert "$certs/node-a.crt" --key "$certs/node-a.key" \
  --hello-node node-b --sensors 1 --events-per-sensor 50 >"$tmp/d.json" || true
expect "(d) welcome names the certificate's node" "$(json "$tmp/d.json" 'j["welcome_nodes"]')" \
  "{'node-a': 1}"
expect "(d) filed under node-a" "$("$dw" events --db "$db" --node node-a | wc -l)" 50
expect "(d) nothing under node-b" "$("$dw" events --db "$db" --node node-b | wc -l)" 0
grep -q "Hello.node=node-b but its certificate names node-a" "$tmp/main.log" &&
  ok "(d) mismatch logged" || fail "(d) mismatch not logged"

# (e) bad streams while node-b streams slowly (100 batches, 50 ms apart).
"$loadgen" --target "$target" "${tls[@]}" --cert "$certs/node-b.crt" --key "$certs/node-b.key" \
  --sensors 1 --events-per-sensor 5000 --batch 50 --interval-ms 50 >"$tmp/e-good.json" &
good_pid=$!
dw_at_exit dw_stop_pid "$good_pid"
bad() {  # bad NAME ARGS...
  local name=$1
  shift
  "$loadgen" --target "$target" "${tls[@]}" --cert "$certs/node-a.crt" --key "$certs/node-a.key" \
    --sensors 1 --node-prefix "bad-$name-" "$@" >"$tmp/e-$name.json" || true
}
bad oversize --events-per-sensor 10 --oversize 17000000
expect "(e) oversized message" "$(json "$tmp/e-oversize.json" 'j["status"]')" \
  "{'RESOURCE_EXHAUSTED': 1}"
bad nohello --events-per-sensor 10 --no-hello
expect "(e) batch before Hello" \
  "$(json "$tmp/e-nohello.json" '(j["status"], "before Hello" in j["errors"][0]["message"])')" \
  "({'INVALID_ARGUMENT': 1}, True)"
bad decreasing --events-per-sensor 300 --batch 100 --decreasing-batch-id
expect "(e) batch_id not increasing" \
  "$(json "$tmp/e-decreasing.json" '(j["status"], "does not increase" in j["errors"][0]["message"])')" \
  "({'INVALID_ARGUMENT': 1}, True)"
bad toobig --events-per-sensor 6000 --batch 6000
expect "(e) batch over max_batch_events" \
  "$(json "$tmp/e-toobig.json" '(j["status"], "more than max_batch_events 5000" in j["errors"][0]["message"])')" \
  "({'INVALID_ARGUMENT': 1}, True)"
kill -0 "$good_pid" 2>/dev/null && ok "(e) good stream still running during the bad ones" ||
  echo "note: the good stream ended before the bad ones did (slow machine?)"
wait "$good_pid" || true
expect "(e) good stream fully acked" "$(json "$tmp/e-good.json" '(j["status"], j["events_acked"], j["stored"])')" \
  "({'OK': 1}, 5000, 5000)"

# Clean stop: SIGTERM, exit 0, node state in the db (node-a: 50 from (d), 100 acked in (e)
# before the decreasing batch_id).
dw_stop main || true
expect "SIGTERM exit status" "$dw_status" 0
grep -q "driftwatch-collector: stopped" "$tmp/main.log" && ok "stopped cleanly" || fail "no clean stop"
expect "nodes table" "$(python3 -c '
import sqlite3,sys
db=sqlite3.connect(sys.argv[1])
print(sorted(db.execute("select node, connected_streams, events_stored from nodes where node in (\"sim-1\",\"node-a\",\"node-b\")")))' "$db")" \
  "[('node-a', 0, 150), ('node-b', 0, 5000), ('sim-1', 0, 1000)]"

# (f) plaintext: refused without the flags, refused off loopback, works on loopback with the
# Hello's node name.
if "$collector" --db "$tmp/f.db" --listen 127.0.0.1:0 2>"$tmp/f1.err"; then fail "(f) started without TLS"; else
  grep -q "refusing to start without mTLS" "$tmp/f1.err" && ok "(f) no TLS, no --insecure: refused" || fail "(f) $(cat "$tmp/f1.err")"
fi
if "$collector" --insecure --db "$tmp/f.db" --listen 0.0.0.0:0 2>"$tmp/f2.err"; then fail "(f) insecure remote"; else
  grep -q "not a loopback address: refused" "$tmp/f2.err" && ok "(f) --insecure on 0.0.0.0 refused" || fail "(f) $(cat "$tmp/f2.err")"
fi
dw_collector_start insecure --listen 127.0.0.1:0 --insecure --db "$tmp/f.db" --inventory-quiet-ms 200
"$loadgen" --target "127.0.0.1:$port" --insecure --sensors 2 --events-per-sensor 100 >"$tmp/f.json" || true
expect "(f) insecure loopback: node from Hello" "$(json "$tmp/f.json" '(j["status"], j["welcome_nodes"], j["stored"])')" \
  "({'OK': 2}, {'sim-0': 1, 'sim-1': 1}, 200)"
# An InventoryReply to a command the collector never sent: logged, ignored, stream goes on.
"$loadgen" --target "127.0.0.1:$port" --insecure --sensors 1 --events-per-sensor 10 \
  --node-prefix stray- --stray-inventory >"$tmp/f3.json" || true
expect "(f) stray inventory reply: stream goes on" "$(json "$tmp/f3.json" '(j["status"], j["stored"])')" \
  "({'OK': 1}, 10)"
grep -q "node stray-0: inventory reply chunk to command 424242 discarded (unsolicited" \
  "$tmp/insecure.log" && ok "(f) stray inventory reply logged" || fail "(f) stray reply not logged"

# (g) drift inventories: each simulated sensor ends with a package manager exec in its
# container (a drift alert); the collector asks that sensor for the container's inventory
# over its stream and stores the answer.
"$loadgen" --target "127.0.0.1:$port" --insecure --sensors 2 --events-per-sensor 50 \
  --node-prefix drift- --drift --answer-inventory 20 >"$tmp/g.json" || true
expect "(g) each sensor asked for an inventory and answered" \
  "$(json "$tmp/g.json" '(j["status"], j["stored"], j["inventories_answered"])')" "({'OK': 2}, 100, 2)"
dw_stop insecure || true
"$dw" inventory --db "$tmp/f.db" --json >"$tmp/g.inv" 2>"$tmp/g.err" || fail "(g) inventory: $(cat "$tmp/g.err")"
expect "(g) stored inventories" "$(python3 -c '
import json, sys
inv = [json.loads(l) for l in open(sys.argv[1])]
print(sorted((i["node"], i["container.name"], i["k8s.ns.name"] + "/" + i["k8s.pod.name"], i["rules"],
              i["error"], [(e["kind"], e["path"], e["sha256"][:4]) for e in i["entries"]]) for i in inv))' "$tmp/g.inv")" \
  "$(python3 -c '
print(sorted((n, "api", "payments/payments-api-7d9f8c6b5-x2x7q", ["Package Manager Execution in Container"], "",
              [("added", "/usr/local/bin/dropped", "eeee"), ("deleted", "/etc/motd", "")]) for n in ("drift-0", "drift-1")))')"
"$dw" inventory --db "$tmp/f.db" --node drift-1 payments/payments-api-7d9f8c6b5-x2x7q/api >"$tmp/g.table" || true
grep -q "^added .* /usr/local/bin/dropped  *f  *0755  *12345  *eeee" "$tmp/g.table" &&
  grep -q "2 change(s): 1 added, 0 modified, 1 deleted (node drift-1" "$tmp/g.table" &&
  ok "(g) driftwatch inventory POD/NAME prints the table" || fail "(g) table: $(cat "$tmp/g.table")"
expect "(g) listing" "$("$dw" inventory --db "$tmp/f.db" | tail -n +2 | awk '{print $2, $4, $5, $6}' | sort | tr '\n' ' ')" \
  "drift-0 api payments/payments-api-7d9f8c6b5-x2x7q 2 drift-1 api payments/payments-api-7d9f8c6b5-x2x7q 2 "
g_cid=$(python3 -c 'import json,sys; print([json.loads(l) for l in open(sys.argv[1]) if json.loads(l)["node"] == "drift-0"][0]["container.id"][:12])' "$tmp/g.inv")
"$dw" inventory --db "$tmp/f.db" "$g_cid" | grep -q "^== .*: container $g_cid.* on node drift-0" &&
  ok "(g) driftwatch inventory by id prefix" || fail "(g) by id prefix $g_cid"
if "$dw" inventory --db "$tmp/f.db" 0123abcd >/dev/null 2>"$tmp/g.err"; then fail "(g) unknown container"; else
  grep -q "no inventory stored for 0123abcd" "$tmp/g.err" && ok "(g) unknown container: exit 1 with reason" ||
    fail "(g) $(cat "$tmp/g.err")"
fi

# (h) rules: a bad file refuses the start; SIGHUP loads a good one and, given a bad one,
# keeps the rules it had (counted in the metrics); alerts go on with the kept rules.
cat >"$tmp/h-rules.yaml" <<'EOF'
- rule: PM
  desc: a package manager in a container
  condition: spawned_process and container and proc.name = apk
  output: pm %proc.cmdline
  priority: ERROR
  tags: [drift]
EOF
printf -- '- rule: Broken\n  desc: x\n  condition: proc.name = sh and\n  output: x\n  priority: ERROR\n' \
  >"$tmp/h-bad.yaml"
if "$collector" --insecure --listen 127.0.0.1:0 --db "$tmp/h0.db" --rules "$tmp/h-bad.yaml" \
    --metrics-address "" 2>"$tmp/h0.err"; then
  fail "(h) started with a bad rule file"
else
  grep -q "h-bad.yaml:3:" "$tmp/h0.err" && ok "(h) bad rule file refused at start, file:line named" ||
    fail "(h) start error: $(cat "$tmp/h0.err")"
fi
dw_collector_start rules --listen 127.0.0.1:0 --insecure --db "$tmp/h.db" --rules "$tmp/h-rules.yaml" \
  --metrics-address 127.0.0.1:0 --inventory-tag ""
# The shipped rules load first: `rules check` with the same files counts what the collector loads.
h_active() { "$dw" rules check -q "$@" | sed -n 's/^[0-9]* rules: \([0-9]*\) active.*/\1/p'; }
h_base=$(h_active "$tmp/h-rules.yaml")
expect "(h) rules loaded at start, as rules check counts them" "$(metric driftwatch_collector_rules_loaded)" "$h_base"
sed 's/rule: PM/rule: PM2/' "$tmp/h-rules.yaml" >"$tmp/h-pm2.yaml"
cat "$tmp/h-pm2.yaml" >>"$tmp/h-rules.yaml"
kill -HUP "$(dw_pid rules)"
dw_wait_log rules "SIGHUP: rules reloaded: [0-9]* rules: $(h_active "$tmp/h-rules.yaml") active" 1 10 &&
  ok "(h) SIGHUP loads the changed file" ||
  fail "(h) no reload: $(tail -3 "$tmp/rules.log")"
cp "$tmp/h-bad.yaml" "$tmp/h-rules.yaml"
kill -HUP "$(dw_pid rules)"
dw_wait_log rules "keeping the rules and policies loaded before" 1 10 &&
  grep -q "h-rules.yaml:3:" "$tmp/rules.log" && ok "(h) SIGHUP with a bad file keeps the rules, names file:line" ||
  fail "(h) bad reload: $(tail -5 "$tmp/rules.log")"
expect "(h) reloads ok and failed, rules loaded" \
  "$(metric driftwatch_collector_rule_reloads_total 'result="ok"') $(metric driftwatch_collector_rule_reloads_total 'result="failed"') $(metric driftwatch_collector_rules_loaded)" \
  "1 1 $((h_base + 1))"
"$loadgen" --target "127.0.0.1:$port" --insecure --sensors 1 --events-per-sensor 20 \
  --node-prefix rules- --drift >"$tmp/h.json" || true
dw_stop rules || true
# The shipped rules alert beside the file's (they load first); the file's two are kept.
expect "(h) the kept rules still alert" \
  "$("$dw" alerts --db "$tmp/h.db" | python3 -c 'import json,sys; print(sorted(r for r in (json.loads(l)["rule"] for l in sys.stdin) if r.startswith("PM")))')" \
  "['PM', 'PM2']"

# In the sanitizer build: a report in any collector's log is a failure.
if grep -l -E "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" "$tmp"/*.log; then
  fail "sanitizer report in a collector log"
  grep -h -A20 -E "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" "$tmp"/*.log | head -60
fi
dw_finish "collector_test: all passed"
