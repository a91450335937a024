#!/bin/bash
# Alerts of a container its node reported late (issue 19, --metadata-wait), driftwatch-collector
# fed by dw-loadgen (plaintext on loopback): one container running a package manager, its
# container event (name, pod, image) sent after its execs:
#   (a) the info 1 s after the exec: the drift alert is held, then sent once, completed (name,
#       pod, namespace, image, and the message made again), and its stored row rewritten;
#   (b) the info never comes: the alert is sent after the wait as it is, counted unknown;
#   (c) --metadata-wait 0: sent at once without metadata, the late info changes nothing;
#   (d) kill -9 while the alert is held, restart: held again, completed by info sent after
#       the restart (a new sensor run), sent once in all;
#   (e) held alerts bounded in bytes (--metadata-wait-max-mib): past it the oldest goes out.
# Usage: metadata_wait_test.sh BUILD_DIR
set -euo pipefail
source "$(dirname "$0")/harness.sh"
dw_build "${1:?usage: metadata_wait_test.sh BUILD_DIR}" collector loadgen dw
dw_harness dw_metadata_wait_test

drift_rule="Package Manager Execution in Container"
# One sensor: a curl exec, the package manager exec, then (per case) the container event.
run=(--insecure --sensors 1 --node-prefix mw- --drift
  --boot-id 0b0b0b0b-1111-2222-3333-444455556666 --sensor-start-ns 1764320000000000007)

start_collector() {  # start_collector NAME ARGS...: sets $port $mport
  local name=$1
  shift
  dw_collector_start "$name" --insecure --listen "127.0.0.1:${listen_port:-0}" \
    --db "$tmp/$name.db" --alerts-output "$tmp/$name.jsonl" \
    --metrics-address 127.0.0.1:0 "$@"
}
sql() { sqlite3 "$tmp/$1.db" "$2"; }
# The drift alerts sent to NAME's output file: "count|name|pod|ns|image|image id|message".
sent() { python3 - "$tmp/$1.jsonl" "$drift_rule" <<'PY'
import json, sys
path, rule = sys.argv[1:]
try:
    lines = [json.loads(l) for l in open(path) if l.strip()]
except FileNotFoundError:
    lines = []
lines = [l for l in lines if l["rule"] == rule]
if not lines:
    print("0")
else:
    f = lines[-1]["output_fields"]
    print("|".join(str(x) for x in [len(lines), f.get("container.name"), f.get("k8s.pod.name"),
          f.get("k8s.ns.name"), f.get("container.image.repository"),
          lines[-1]["output"].split(" container=")[-1]]))
PY
}
sent_count() { sent "$1" | cut -d'|' -f1; }
# The stored row, as `driftwatch alerts` prints it: "name|pod|ns|image|message tail".
stored() { "$dw" alerts --db "$tmp/$1.db" --rule "$drift_rule" | python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin if l.strip()]
f = rows[-1]["output_fields"] if rows else {}
print(len(rows), f.get("container.name"), f.get("k8s.pod.name"), f.get("container.image.repository"),
      rows[-1]["output"].split(" container=")[-1] if rows else "-", sep="|")'; }
status() { curl -sf "http://127.0.0.1:$mport/status" | python3 -c "import json,sys; j=json.load(sys.stdin); print($1)"; }
held() { [[ $(metric driftwatch_collector_alerts_held_for_metadata) == 1 ]]; }
made() { [[ $(metric driftwatch_collector_alerts_without_metadata_total) -ge 1 ]]; }
complete="api|payments-api-7d9f8c6b5-x2x7q|payments|registry.example.com/payments/api|api image=registry.example.com/payments/api)"
bare="None|None|None|None|<NA> image=<NA>)"

# (a) the container's info 1 s after its exec.
start_collector a --metadata-wait 30s
"$loadgen" --target "127.0.0.1:$port" "${run[@]}" --events-per-sensor 3 --container-info-after-ms 1000 >"$tmp/a.json" &
lg=$!
dw_wait 10 made || fail "(a) no alert without metadata made"
if held; then
  expect "(a) held while the info is missing: nothing sent" "$(sent_count a)" 0
else
  fail "(a) the alert was not held (driftwatch_collector_alerts_held_for_metadata $(metric driftwatch_collector_alerts_held_for_metadata))"
fi
wait "$lg" || true
expect "(a) all acked, the info last" "$(json "$tmp/a.json" 'j["events_acked"]')" 3
sent_a() { [[ $(sent_count a) != 0 ]]; }
dw_wait 10 sent_a || fail "(a) not sent after the info came"
expect "(a) sent once, completed: name, pod, namespace, image; the message made again" \
  "$(sent a)" "1|$complete"
expect "(a) the stored row rewritten (driftwatch alerts)" "$(stored a)" \
  "1|api|payments-api-7d9f8c6b5-x2x7q|registry.example.com/payments/api|api image=registry.example.com/payments/api)"
expect "(a) the row's columns" \
  "$(sql a "SELECT container_name || '|' || pod_name || '|' || pod_namespace || '|' || (message LIKE '%container=api image=registry.example.com/payments/api)') FROM alerts WHERE rule = '$drift_rule'")" \
  "api|payments-api-7d9f8c6b5-x2x7q|payments|1"
expect "(a) counted: made without metadata, filled late, none unknown, none held" \
  "$(metric driftwatch_collector_alerts_without_metadata_total) $(metric driftwatch_collector_alert_metadata_filled_late_total) $(metric driftwatch_collector_alert_metadata_unknown_total) $(metric driftwatch_collector_alerts_held_for_metadata)" \
  "1 1 0 0"
expect "(a) /status" \
  "$(status 'j["alerts_without_metadata"], j["alert_metadata_filled_late"], j["alert_metadata_unknown"], j["alerts_held_for_metadata"]')" \
  "1 1 0 0"
outbox_empty() { [[ $(sql "$1" "SELECT count(*) FROM deliveries") == 0 ]]; }
dw_wait 10 outbox_empty a && ok "(a) the outbox is empty" || fail "(a) outbox rows left"
dw_stop a 60 || true
expect "(a) still sent once after the stop" "$(sent_count a)" 1

# (b) the info never comes: sent after the wait, as it is.
start_collector b --metadata-wait 3s
"$loadgen" --target "127.0.0.1:$port" "${run[@]}" --events-per-sensor 2 --no-container-info \
  >"$tmp/b.json" || true
expect "(b) all acked" "$(json "$tmp/b.json" 'j["events_acked"]')" 2
dw_wait 10 made || fail "(b) no alert without metadata made"
held && expect "(b) held during the wait: nothing sent" "$(sent_count b)" 0
sent_b() { [[ $(sent_count b) != 0 ]]; }
dw_wait 15 sent_b || fail "(b) not sent after the wait"
expect "(b) sent once after the wait, without metadata" "$(sent b)" "1|$bare"
expect "(b) counted unknown" \
  "$(metric driftwatch_collector_alerts_without_metadata_total) $(metric driftwatch_collector_alert_metadata_filled_late_total) $(metric driftwatch_collector_alert_metadata_unknown_total) $(metric driftwatch_collector_alerts_held_for_metadata)" \
  "1 0 1 0"
expect "(b) /status alert_metadata_unknown" "$(status 'j["alert_metadata_unknown"]')" 1
expect "(b) the stored row as made" "$(sql b "SELECT container_name FROM alerts WHERE rule = '$drift_rule'")" ""
dw_stop b 60 || true
expect "(b) still sent once after the stop" "$(sent_count b)" 1

# (c) --metadata-wait 0: sent at once, as today.
start_collector c --metadata-wait 0
"$loadgen" --target "127.0.0.1:$port" "${run[@]}" --events-per-sensor 3 --container-info-after-ms 1000 >"$tmp/c.json" &
lg=$!
sent_c() { [[ $(sent_count c) != 0 ]]; }
dw_wait 10 sent_c || fail "(c) not sent at once"
wait "$lg" || true
expect "(c) all acked, the info last" "$(json "$tmp/c.json" 'j["events_acked"]')" 3
expect "(c) sent once, at once, without metadata" "$(sent c)" "1|$bare"
expect "(c) the stored row unchanged" "$(sql c "SELECT container_name FROM alerts WHERE rule = '$drift_rule'")" ""
expect "(c) counted unknown, nothing held" \
  "$(metric driftwatch_collector_alert_metadata_unknown_total) $(metric driftwatch_collector_alert_metadata_filled_late_total) $(metric driftwatch_collector_alerts_held_for_metadata)" \
  "1 0 0"
dw_stop c 60 || true

# (d) kill -9 while held; the restart holds it again; the info comes after the restart.
start_collector d --metadata-wait 1h
listen_port=$port
"$loadgen" --target "127.0.0.1:$port" "${run[@]}" --events-per-sensor 2 --no-container-info \
  >"$tmp/d1.json" || true
dw_wait 10 held || fail "(d) not held"
dw_kill d
expect "(d) killed before sending it" "$(sent_count d) $(sql d "SELECT count(*) FROM deliveries")" "0 1"
start_collector d --metadata-wait 1h
dw_wait 10 held || fail "(d) not held again after the restart"
expect "(d) held again: nothing sent" "$(sent_count d)" 0
# The container's info from the node's next sensor run (its only event).
"$loadgen" --target "127.0.0.1:$port" --insecure --sensors 1 --node-prefix mw- \
  --events-per-sensor 1 --boot-id 0b0b0b0b-1111-2222-3333-444455556666 \
  --sensor-start-ns 1764320000000000008 >"$tmp/d2.json" || true
expect "(d) the info acked" "$(json "$tmp/d2.json" 'j["events_acked"]')" 1
sent_d() { [[ $(sent_count d) != 0 ]]; }
dw_wait 10 sent_d || fail "(d) not sent after the info came"
expect "(d) sent once in all, completed" "$(sent d)" "1|$complete"
expect "(d) the stored row rewritten" "$(sql d "SELECT container_name || '|' || pod_namespace FROM alerts WHERE rule = '$drift_rule'")" "api|payments"
expect "(d) counted filled late" "$(metric driftwatch_collector_alert_metadata_filled_late_total)" 1
dw_wait 10 outbox_empty d && ok "(d) the outbox is empty" || fail "(d) outbox rows left"
dw_stop d 60 || true
listen_port=
expect "(d) still sent once after the stop" "$(sent_count d)" 1

# (e) held alerts are bounded in bytes: alerts carrying 100 KB command lines (about 200 KB
# each as JSON), 1 MiB held at most, a wait far beyond the test: all but the few that fit go
# out at once, as they are.
start_collector e --metadata-wait 120s --metadata-wait-max-mib 1 --detect-threads 1
"$loadgen" --target "127.0.0.1:$port" --insecure --sensors 8 --node-prefix mwe- --drift \
  --events-per-sensor 2 --no-container-info --drift-arg-bytes 100000 >"$tmp/e.json" || true
expect "(e) all acked" "$(json "$tmp/e.json" 'j["events_acked"]')" 16
sent_e() { (($(sent_count e) >= 6)); }
dw_wait 20 sent_e || fail "(e) the alerts over the byte bound were not sent at once ($(sent_count e) sent)"
e_held=$(metric driftwatch_collector_alerts_held_for_metadata)
e_over=$(metric driftwatch_collector_alert_metadata_hold_overflows_total)
((e_held >= 1 && e_held <= 2 && e_held + e_over == 8)) && ok "(e) $e_held held, $e_over sent over the bound" ||
  fail "(e) held $e_held, overflows $e_over (want 1-2 held, the rest over the bound)"
dw_stop e 60 || true
expect "(e) every alert sent once after the stop" "$(sent_count e)" 8
dw_finish "all metadata-wait checks passed"
