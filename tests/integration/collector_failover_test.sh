#!/bin/bash
# Several collectors (issue 17): a real sensor given two collectors (--collector A,B) streams a
# pod's steady flow over mTLS to A; A is killed (SIGKILL) and the sensor moves on to B with
# its spool. Nothing is lost: every event the sensor produced is in A's store or B's, B holds
# all that A had not acknowledged, and a drop-and-execute done after the kill alerts at B.
# Each collector has its own SQLite store here: an event A stored whose ack the kill cut off
# is stored by B as well (one shared store, issue 17's PostgreSQL, would keep it once).
# Usage: collector_failover_test.sh BUILD_DIR     env: KEEP=1 keeps the tmp dir
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
source "$here/harness.sh"
source "$here/containerd_env.sh"
dw_build "$1"
dw_harness dw-fo
ctd=$tmp/ctd
dw_audit_guard --owner

bash "$repo/scripts/make-certs.sh" "$tmp/certs" node-fo >/dev/null

start_collector() { # NAME
    dw_collector_start "$1" --listen 127.0.0.1:0 --tls-cert "$tmp/certs/collector.crt" \
        --tls-key "$tmp/certs/collector.key" --client-ca "$tmp/certs/ca.crt" --db "$tmp/$1.db"
}
dw_ctd_up "$ctd"
start_collector a
pa=$port
start_collector b
pb=$port

# An empty element is refused with the list named, before anything starts.
if "$sensor" --collector "localhost:$pa,,localhost:$pb" --insecure \
    --spool-dir "$tmp/spool-bad" >"$tmp/bad.log" 2>&1; then
    die "--collector with an empty element was accepted"
fi
grep -q "an empty address in the list" "$tmp/bad.log" || die "no clear error: $(cat "$tmp/bad.log")"

dw_start sensor "$sensor" --audit-mode owner --audit-state-file "$tmp/audit-state" \
    --cri-endpoint "$ctd/containerd.sock" --watch-fs "$ctd/root" \
    --collector "localhost:$pa, localhost:$pb" --tls-ca "$tmp/certs/ca.crt" \
    --tls-cert "$tmp/certs/node-fo.crt" --tls-key "$tmp/certs/node-fo.key" \
    --spool-dir "$tmp/spool" --capture "$tmp/capture" --status-interval 1 \
    --metrics-address 127.0.0.1:0
dw_wait_log sensor "connected to collector localhost:$pa" 1 60 || die "the sensor did not connect to A"
sport=$(sed -n 's/.*metrics on http:\/\/[^ ]* (port \([0-9]*\)).*/\1/p' "$tmp/sensor.log" | head -1)
[[ -n $sport ]] || die "no metrics port in the sensor log"

# The steady flow: an exec and a write about 25 times a second; /tmp/go (from the host)
# makes the pod drop and run a new binary once.
uid=$(cat /proc/sys/kernel/random/uuid)
pod=$(dw_pod_run "$ctd" api-7c9f-fo prod "$uid" "/kubepods/besteffort/pod$uid")
cid=$(dw_pod_container "$ctd" "$pod" worker -- /bin/sh -c \
    'cp /bin/busybox /tmp/bb; i=0; while :; do /tmp/bb true tick-$i; echo $i >/tmp/counter
     if [ -e /tmp/go ]; then rm /tmp/go; cp /bin/busybox /tmp/late-drop; chmod 755 /tmp/late-drop
       /tmp/late-drop true after-failover; fi
     i=$((i + 1)); usleep 40000; done')
sleep 4

echo "collector A killed (SIGKILL)"
dw_kill a
dw_wait_log sensor "connected to collector localhost:$pb" 1 30 || die "the sensor did not move to B"
grep -q "moving to collector localhost:$pb" "$tmp/sensor.log" || die "no 'moving to' line"
status=$(curl -sf --max-time 5 "http://127.0.0.1:$sport/status")
python3 - "$status" "localhost:$pb" <<'PY' || die "the sensor's /status does not show B"
import json, sys
c = json.loads(sys.argv[1])["collector"]
assert c["target"] == sys.argv[2] and len(c["targets"]) == 2 and c["connected"], c
PY
curl -sf --max-time 5 "http://127.0.0.1:$sport/metrics" |
    grep -Eq '^driftwatch_sensor_collector_switches_total [1-9]' || die "switches not counted"

dw_ctr_exec "$ctd" "$cid" go /bin/touch /tmp/go </dev/null
sleep 4
dw_cri "$ctd" stop "$cid" --timeout 0 >/dev/null
sleep 1
# A clean stop drains the spool to B before exiting.
dw_stop sensor 60 && ((dw_status == 0)) || die "sensor exit status $dw_status"
dw_stop b 60 && ((dw_status == 0)) || die "collector B exit status $dw_status"
dw_audit_same "$tmp" || die "audit state not restored"

"$dw" analyze --events "$tmp/capture" >"$tmp/sensor.jsonl" 2>/dev/null
"$dw" events --db "$tmp/a.db" >"$tmp/a.jsonl"
"$dw" events --db "$tmp/b.db" >"$tmp/b.jsonl"
"$dw" alerts --db "$tmp/b.db" >"$tmp/b-alerts.jsonl"
python3 - "$tmp" "$cid" <<'PY'
import json, sys
tmp, cid = sys.argv[1], sys.argv[2]
load = lambda f: [json.loads(l) for l in open(f"{tmp}/{f}")]
cap, a, b = load("sensor.jsonl"), load("a.jsonl"), load("b.jsonl")
fails = []
seq = lambda evs: {e["evt.num"] for e in evs}
want, got_a, got_b = seq(cap), seq(a), seq(b)
if not got_a or not got_b:
    fails.append(f"A stored {len(got_a)} events, B {len(got_b)}: both should have some")
if want - (got_a | got_b):
    fails.append(f"{len(want - (got_a | got_b))} captured events in neither store")
# B has everything after what A acknowledged: no hole between the stores.
top_a = max(got_a, default=0)
missing_b = {n for n in want if n > top_a} - got_b
if missing_b:
    fails.append(f"{len(missing_b)} events after A's last are not in B, e.g. {sorted(missing_b)[:5]}")
for name, evs in (("A", a), ("B", b)):
    if len(evs) != len(seq(evs)):
        fails.append(f"{name} stored an event twice")
late = [x for x in load("b-alerts.jsonl") if x["rule"] == "Drop and execute new binary in container"
        and x["output_fields"].get("proc.exepath") == "/tmp/late-drop"]
if len(late) != 1 or late[0]["output_fields"].get("container.id") != cid[:12]:
    fails.append(f"drop-and-execute after the failover at B: {late}")
for f in fails:
    print("FAIL:", f)
if fails:
    sys.exit(1)
print(f"ok: {len(want)} events captured; A stored {len(got_a)}, B {len(got_b)} "
      f"({len(got_a & got_b)} in both: acks the kill cut off); the late drop alerted at B")
PY
echo "PASS collector failover"
