#!/bin/bash
# Oversized events at the collector (issue 11): sensors that do not cap exec arguments (or
# lie), simulated by dw-loadgen over mTLS.
#  (a) 50 sensors flood execs carrying 2 MB of argv each: every exec is stored with its
#      arguments cut to the caps (proc.args_capped, argc exact), counted by node in
#      driftwatch_collector_events_oversize_total{action="capped"}, the drift alerts still
#      raised, and the collector's peak RSS (VmHWM) stays within 256 MiB (issue 7's bound),
#      with --max-message-bytes 2 MiB: gRPC holds a whole message per stream while it
#      arrives, so that is what bounds a fleet of hostile nodes (bench/collector_ingest.sh
#      reports the default's figure).
#  (b) an event that is too big and has no arguments to cut (a 300 KB cwd) is refused: left
#      out of its batch, the stream goes on, counted as refused, and the gap it leaves
#      raises a "Sensor blind window" alert naming the node.
# Usage: oversize_test.sh BUILD_DIR [release|sanitized]: a sanitized build's memory (ASan's
# shadow and quarantine) says nothing of the product's, so there the bound is only reported.
set -euo pipefail
variant=${2:-release}
src=$(cd "$(dirname "$0")/../.." && pwd)
source "$src/tests/integration/harness.sh"
dw_build "${1:?usage: oversize_test.sh BUILD_DIR [release|sanitized]}" collector loadgen dw
dw_harness dw_oversize_test

nodes=()
for ((i = 0; i < 50; i++)); do nodes+=("sim-$i"); done
"$src/scripts/make-certs.sh" "$tmp/certs" "${nodes[@]}" lone-0 >/dev/null
c=$tmp/certs
dw_collector_start collector --listen 127.0.0.1:0 --db "$tmp/c.db" \
  --metrics-address 127.0.0.1:0 --tls-cert "$c/collector.crt" --tls-key "$c/collector.key" \
  --client-ca "$c/ca.crt" --alerts-output "$tmp/alerts.jsonl" --max-message-bytes 2097152
[[ -n $mport ]] || die "collector serves no /metrics"
target=127.0.0.1:$port

# (a) Each sensor: its container, 8 execs of 2 MB of argv, the package manager exec last.
"$loadgen" --target "$target" --ca "$c/ca.crt" --cert-dir "$c" --sensors 50 \
  --events-per-sensor 10 --argv-bytes 2000000 --batch-bytes 262144 --drift --deadline-s 240 \
  >"$tmp/a.json" || true
expect "(a) every stream ends OK" "$(json "$tmp/a.json" 'j["status"]')" "{'OK': 50}"
expect "(a) every event stored" "$(json "$tmp/a.json" '(j["events_acked"], j["stored"])')" "(500, 500)"
expect "(a) capped execs counted by node" \
  "$(metric driftwatch_collector_events_oversize_total 'action="capped"')" 400
expect "(a) sim-7's 8 capped" \
  "$(metric driftwatch_collector_events_oversize_total 'action="capped",node="sim-7"')" 8
expect "(a) none refused" "$(metric driftwatch_collector_events_oversize_total 'action="refused"')" 0
"$dw" events --db "$tmp/c.db" --node sim-7 --kind exec >"$tmp/a-events.jsonl"
python3 - "$tmp/a-events.jsonl" <<'PY' && ok "(a) stored execs cut to the caps, marked, argc exact" || fail "(a) stored execs"
import json, sys
evs = [json.loads(l) for l in open(sys.argv[1])]
big = [e for e in evs if e.get("proc.args_capped")]
assert len(big) == 8, f"{len(big)} capped execs of {len(evs)}"
for e in big:
    kept = sum(len(a.encode()) + 1 for a in e["proc.argv"])
    assert kept <= 64 * 1024, kept
    assert max(len(a) for a in e["proc.argv"]) <= 4096
    # dw-loadgen's 7 arguments, then 128 KiB ones up to 2 MB: 16 of them.
    assert e["proc.argc"] == 23 and len(e["proc.argv"]) <= 23, (e["proc.argc"], len(e["proc.argv"]))
    assert e["proc.args_dropped_bytes"] > 1_900_000, e["proc.args_dropped_bytes"]
    assert e["proc.cmdline"].endswith("..."), e["proc.cmdline"][-20:]
PY
grep -q "node sim-[0-9]* (.*): batch [0-9]* has events over --max-event-bytes 262144: 1 cut" \
  "$tmp/collector.log" && ok "(a) logged naming the node" || fail "(a) no log line naming the node"

# (b) One sensor, its first batch's last event with a 300 KB cwd: refused, a gap.
"$loadgen" --target "$target" --ca "$c/ca.crt" --cert-dir "$c" --node-prefix lone- \
  --sensors 1 --events-per-sensor 10 --batch 5 --oversize-cwd 300000 --deadline-s 60 \
  >"$tmp/b.json" || true
expect "(b) the stream goes on" "$(json "$tmp/b.json" '(j["status"], j["events_acked"], j["stored"])')" \
  "({'OK': 1}, 10, 9)"
expect "(b) refused and counted" \
  "$(metric driftwatch_collector_events_oversize_total 'action="refused",node="lone-0"')" 1
ok_gap=
for _ in $(seq 100); do
  if "$dw" alerts --db "$tmp/c.db" --node lone-0 --rule "Sensor blind window" | grep -q "sequence numbers 5 to 5"; then
    ok_gap=1
    break
  fi
  sleep 0.1
done
[[ -n $ok_gap ]] && ok "(b) the gap raised a Sensor blind window alert for lone-0" ||
  fail "(b) no blind window alert for lone-0: $("$dw" alerts --db "$tmp/c.db" --node lone-0)"

# The drift alerts of (a) all arrived: capped execs are evaluated like any.
drift=0
for _ in $(seq 300); do
  drift=$("$dw" alerts --db "$tmp/c.db" --rule "Package Manager Execution in Container" | wc -l)
  ((drift >= 50)) && break
  sleep 0.1
done
expect "(a) drift alerts" "$drift" 50

hwm=$(dw_hwm_kb "$(dw_pid collector)")
echo "collector peak RSS: $((hwm / 1024)) MiB"
if [[ $variant == sanitized ]]; then
  echo "(a) peak RSS not held to 256 MiB in a sanitized build (the release build's run is)"
else
  ((hwm <= 256 * 1024)) && ok "(a) peak RSS within 256 MiB" || fail "(a) peak RSS $((hwm / 1024)) MiB over 256 MiB"
fi
dw_finish PASS
