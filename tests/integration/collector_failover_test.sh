#!/bin/bash
# Several collectors (issue 17): a real sensor given two collectors (--collector A,B) streams a
# pod's steady flow over mTLS to A; A is killed (SIGKILL) and the sensor moves on to B with
# its spool. Nothing is lost: every event the sensor produced is in A's store or B's, B holds
# all that A had not acknowledged, and a drop-and-execute done after the kill alerts at B.
# Each collector has its own SQLite store here: an event A stored whose ack the kill cut off
# is stored by B as well.
# With --pg both share one PostgreSQL (a private server started here): every event is stored
# once, no alert twice, and the pod drops its binary before the kill and runs it after: B,
# which takes the node over from A's lease, rebuilds the node's correlation state from the
# store and raises the drop-and-execute alert for a write it never received. There the
# sensor is given one name that resolves to both collectors (127.0.0.1 and 127.0.0.2, the
# same port; an /etc/hosts of the test's, bind-mounted in a mount namespace of the sensor's
# own), as a headless Kubernetes Service resolves to every collector pod.
# Usage: collector_failover_test.sh BUILD_DIR [--pg]     env: KEEP=1 keeps the tmp dir
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
source "$here/harness.sh"
source "$here/containerd_env.sh"
dw_build "$1"
pg=${2:-}
dw_harness dw-fo
ctd=$tmp/ctd
dw_audit_guard --owner

bash "$repo/scripts/make-certs.sh" "$tmp/certs" node-fo >/dev/null

db_of() { echo "$tmp/$1.db"; }  # NAME: the collector's store
if [[ $pg == --pg ]]; then
    source "$here/pg_env.sh"
    dw_pg_start "$tmp/pg"
    db_of() { echo "$DW_PG_URI"; }
fi
start_collector() { # NAME [ADDRESS:PORT]
    dw_collector_start "$1" --listen "${2:-127.0.0.1:0}" --tls-cert "$tmp/certs/collector.crt" \
        --tls-key "$tmp/certs/collector.key" --client-ca "$tmp/certs/ca.crt" --db "$(db_of "$1")" \
        ${pg:+--lease-owner "collector-$1" --lease-ms 2000}
}
dw_ctd_up "$ctd"
if [[ -n $pg ]]; then
    # One port free on both addresses; B comes up once A evaluates the node (below): the
    # node's detection is A's, and B must take it over when A dies.
    pa=$(python3 -c '
import socket
while True:
    a = socket.socket(); a.bind(("127.0.0.1", 0)); p = a.getsockname()[1]
    try:
        b = socket.socket(); b.bind(("127.0.0.2", p)); print(p); break
    except OSError:
        pass')
    pb=$pa
    start_collector a "127.0.0.1:$pa"
    printf '127.0.0.1 localhost\n127.0.0.1 dw-collectors\n127.0.0.2 dw-collectors\n' >"$tmp/hosts"
    targets="dw-collectors:$pa"
    ta=$targets tb=$targets
    # The sensor sees the host's mounts as they come (slave propagation), and its own hosts.
    in_ns=(unshare -m --propagation slave -- sh -c 'mount --bind "$0" /etc/hosts && exec "$@"' "$tmp/hosts")
else
    start_collector a
    pa=$port
    start_collector b
    pb=$port
    targets="localhost:$pa, localhost:$pb"
    ta=localhost:$pa tb=localhost:$pb
    in_ns=()
fi

# An empty element is refused with the list named, before anything starts.
if "$sensor" --collector "localhost:$pa,,localhost:$pb" --insecure \
    --spool-dir "$tmp/spool-bad" >"$tmp/bad.log" 2>&1; then
    die "--collector with an empty element was accepted"
fi
grep -q "an empty address in the list" "$tmp/bad.log" || die "no clear error: $(cat "$tmp/bad.log")"

dw_start sensor "${in_ns[@]}" "$sensor" --audit-mode owner --audit-state-file "$tmp/audit-state" \
    --cri-endpoint "$ctd/containerd.sock" --watch-fs "$ctd/root" \
    --collector "$targets" ${pg:+--tls-server-name localhost} --tls-ca "$tmp/certs/ca.crt" \
    --tls-cert "$tmp/certs/node-fo.crt" --tls-key "$tmp/certs/node-fo.key" \
    --spool-dir "$tmp/spool" --capture "$tmp/capture" --status-interval 1 \
    --metrics-address 127.0.0.1:0
dw_wait_log sensor "connected to collector $ta" 1 60 || die "the sensor did not connect to A"
sport=$(sed -n 's/.*metrics on http:\/\/[^ ]* (port \([0-9]*\)).*/\1/p' "$tmp/sensor.log" | head -1)
[[ -n $sport ]] || die "no metrics port in the sensor log"

# The steady flow: an exec and a write about 25 times a second; /tmp/drop (from the host)
# makes the pod drop a new binary, /tmp/go run it (dropping it first if it was not).
uid=$(cat /proc/sys/kernel/random/uuid)
pod=$(dw_pod_run "$ctd" api-7c9f-fo prod "$uid" "/kubepods/besteffort/pod$uid")
cid=$(dw_pod_container "$ctd" "$pod" worker -- /bin/sh -c \
    'cp /bin/busybox /tmp/bb; i=0; while :; do /tmp/bb true tick-$i; echo $i >/tmp/counter
     if [ -e /tmp/drop ]; then rm /tmp/drop; cp /bin/busybox /tmp/late-drop; chmod 755 /tmp/late-drop; fi
     if [ -e /tmp/go ]; then rm /tmp/go
       [ -e /tmp/late-drop ] || { cp /bin/busybox /tmp/late-drop; chmod 755 /tmp/late-drop; }
       /tmp/late-drop true after-failover; fi
     i=$((i + 1)); usleep 40000; done')
sleep 4
if [[ -n $pg ]]; then
    dw_wait_log a "node node-fo taken" 1 30 || die "A did not take the node's lease"
    start_collector b "127.0.0.2:$pb"
    # Shared store: the binary is written while A evaluates the node; run after A's death.
    dw_ctr_exec "$ctd" "$cid" drop /bin/touch /tmp/drop </dev/null
    sleep 2
    owner=$(DW_PG_DB=driftwatch dw_pg_psql "SELECT owner FROM detect_leases WHERE node = 'node-fo'")
    [[ $owner == collector-a ]] || die "the node's lease is $owner's before the kill, not A's"
fi

echo "collector A killed (SIGKILL)"
dw_kill a
if [[ -n $pg ]]; then
    # One name: gRPC tries its next address (B) when the stream to A breaks.
    dw_wait_log sensor "connected to collector $tb" 2 60 || die "the sensor did not reconnect (to B)"
    dw_wait --while "$(dw_pid b)" 30 bash -c "grep -q 'node node-fo connected' '$tmp/b.log'" ||
        die "the sensor did not reach B by the name: $(tail -3 "$tmp/sensor.log")"
else
    dw_wait_log sensor "connected to collector $tb" 1 30 || die "the sensor did not move to B"
    grep -q "moving to collector $tb" "$tmp/sensor.log" || die "no 'moving to' line"
    status=$(curl -sf --max-time 5 "http://127.0.0.1:$sport/status")
    python3 - "$status" "$tb" <<'PY' || die "the sensor's /status does not show B"
import json, sys
c = json.loads(sys.argv[1])["collector"]
assert c["target"] == sys.argv[2] and len(c["targets"]) == 2 and c["connected"], c
PY
    curl -sf --max-time 5 "http://127.0.0.1:$sport/metrics" |
        grep -Eq '^driftwatch_sensor_collector_switches_total [1-9]' || die "switches not counted"
fi
if [[ -n $pg ]]; then
    dw_wait_log b "node node-fo taken" 1 30 || die "B did not take the node over"
    grep "node node-fo taken" "$tmp/b.log"
fi
dw_ctr_exec "$ctd" "$cid" go /bin/touch /tmp/go </dev/null
sleep 4
dw_cri "$ctd" stop "$cid" --timeout 0 >/dev/null
sleep 1
# A clean stop drains the spool to B before exiting.
dw_stop sensor 60 && ((dw_status == 0)) || die "sensor exit status $dw_status"
dw_stop b 60 && ((dw_status == 0)) || die "collector B exit status $dw_status"
dw_audit_same "$tmp" || die "audit state not restored"

"$dw" analyze --events "$tmp/capture" >"$tmp/sensor.jsonl" 2>/dev/null
"$dw" events --db "$(db_of a)" >"$tmp/a.jsonl"
"$dw" events --db "$(db_of b)" >"$tmp/b.jsonl"
"$dw" alerts --db "$(db_of b)" >"$tmp/b-alerts.jsonl"
python3 - "$tmp" "$cid" "$pg" <<'PY'
import json, sys
tmp, cid, pg = sys.argv[1], sys.argv[2], sys.argv[3]
load = lambda f: [json.loads(l) for l in open(f"{tmp}/{f}")]
cap, a, b = load("sensor.jsonl"), load("a.jsonl"), load("b.jsonl")
fails = []
seq = lambda evs: {e["evt.num"] for e in evs}
want, got_a, got_b = seq(cap), seq(a), seq(b)
alerts = load("b-alerts.jsonl")
if pg:
    # One store: A's and B's views are the same rows, each event once.
    if want - got_b:
        fails.append(f"{len(want - got_b)} captured events not stored")
    if len(b) != len(got_b):
        fails.append("an event stored twice")
elif not got_a or not got_b:
    fails.append(f"A stored {len(got_a)} events, B {len(got_b)}: both should have some")
if want - (got_a | got_b):
    fails.append(f"{len(want - (got_a | got_b))} captured events in neither store")
# B has everything after what A acknowledged: no hole between the stores.
top_a = max(got_a, default=0)
missing_b = {n for n in want if n > top_a} - got_b
if missing_b:
    fails.append(f"{len(missing_b)} events after A's last are not in B, e.g. {sorted(missing_b)[:5]}")
for name, evs in (() if pg else (("A", a), ("B", b))):
    if len(evs) != len(seq(evs)):
        fails.append(f"{name} stored an event twice")
late = [x for x in alerts if x["rule"] == "Drop and execute new binary in container"
        and x["output_fields"].get("proc.exepath") == "/tmp/late-drop"]
if len(late) != 1 or late[0]["output_fields"].get("container.id") != cid[:12]:
    fails.append(f"drop-and-execute after the failover at B: {late}")
for f in fails:
    print("FAIL:", f)
if fails:
    sys.exit(1)
if pg:
    print(f"ok: {len(want)} events captured, each stored once in the shared store; the drop "
          f"before the kill and its run after it alerted once, by B")
else:
    print(f"ok: {len(want)} events captured; A stored {len(got_a)}, B {len(got_b)} "
          f"({len(got_a & got_b)} in both: acks the kill cut off); the late drop alerted at B")
PY
echo "PASS collector failover"
