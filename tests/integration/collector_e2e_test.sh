#!/bin/bash
# Sensor to collector, end to end: the real sensor (audit owner mode + containers +
# fanotify) with a Kubernetes-labelled pod whose workload execs and writes steadily, streaming
# over mTLS to the real collector. In the middle, the collector is killed (SIGKILL) for
# OUTAGE seconds and restarted; later the sensor is killed (SIGKILL) and restarted on the
# same spool. Then every event the sensor produced is in the collector's store exactly once.
# The workload also drops and runs a binary whose name is not UTF-8 (issue 11): its write
# and exec are stored and alerted like any other.
# Usage: collector_e2e_test.sh BUILD_DIR     env: OUTAGE=30 (seconds), KEEP=1 keeps the tmp dir
set -euo pipefail
outage=${OUTAGE:-30}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
source "$here/harness.sh"
source "$here/containerd_env.sh"
dw_build "$1"
dw_harness dw-e2e
ctd=$tmp/ctd
dw_audit_guard --owner

bash "$repo/scripts/make-certs.sh" "$tmp/certs" node-e2e >/dev/null

start_collector() { # PORT (0: any)
    dw_collector_start collector --listen "127.0.0.1:$1" --tls-cert "$tmp/certs/collector.crt" \
        --tls-key "$tmp/certs/collector.key" --client-ca "$tmp/certs/ca.crt" --db "$tmp/collector.db"
}
start_sensor() { # N: capture file number
    dw_start sensor "$sensor" --audit-mode owner --audit-state-file "$tmp/audit-state" \
        --cri-endpoint "$ctd/containerd.sock" --watch-fs "$ctd/root" \
        --collector "localhost:$port" --tls-ca "$tmp/certs/ca.crt" \
        --tls-cert "$tmp/certs/node-e2e.crt" --tls-key "$tmp/certs/node-e2e.key" \
        --spool-dir "$tmp/spool" --capture "$tmp/capture$1" --status-interval 1
}
# Waits until the sensor log has N "connected to collector" lines.
wait_connected() { dw_wait_log sensor "connected to collector" "$1" 60 || die "the sensor did not connect ($1)"; }

dw_ctd_up "$ctd"
start_collector 0
start_sensor 1
wait_connected 1

# The steady flow: an exec and a file write about 25 times a second, until stopped.
uid=$(cat /proc/sys/kernel/random/uuid)
pod=$(dw_pod_run "$ctd" api-5d8b7c9f4-e2e prod "$uid" "/kubepods/besteffort/pod$uid")
cid=$(dw_pod_container "$ctd" "$pod" worker -- /bin/sh -c \
    'f=/tmp/$(printf "\377")x; cp /bin/busybox "$f"; chmod 755 "$f"; "$f" 2>/dev/null
     cp /bin/busybox /tmp/bb; i=0; while :; do /tmp/bb true tick-$i; echo $i >/tmp/counter; i=$((i + 1)); usleep 40000; done')
sleep 5

echo "collector down for $outage s (SIGKILL)"
dw_kill collector
sleep "$outage"
start_collector "$port"
wait_connected 2
sleep 3

echo "sensor killed (SIGKILL) and restarted on its spool"
dw_kill sensor
start_sensor 2
wait_connected 3
sleep 5
dw_cri "$ctd" stop "$cid" --timeout 0 >/dev/null
sleep 1
# A clean stop drains the spool to the collector before exiting.
dw_stop sensor 60 && ((dw_status == 0)) || die "sensor exit status $dw_status"
grep -q "left in the spool" "$tmp/sensor.log"
dw_stop collector 60 && ((dw_status == 0)) || die "collector exit status $dw_status"
dw_audit_same "$tmp" || die "audit state not restored"
if grep -E "libprotobuf|not an event|failed to serialize" "$tmp/sensor.log" "$tmp/collector.log"; then
    die "an event could not be encoded or decoded"
fi

"$dw" alerts --db "$tmp/collector.db" >"$tmp/alerts.jsonl"
"$dw" analyze --events "$tmp/capture1" >"$tmp/sensor1.jsonl" 2>/dev/null
"$dw" analyze --events "$tmp/capture2" >"$tmp/sensor2.jsonl" 2>/dev/null
"$dw" events --db "$tmp/collector.db" >"$tmp/stored.jsonl"
python3 - "$tmp" "$cid" <<'PY'
import collections, json, sys
tmp, cid = sys.argv[1], sys.argv[2]
load = lambda f: [json.loads(l) for l in open(f"{tmp}/{f}")]
s1, s2, db = load("sensor1.jsonl"), load("sensor2.jsonl"), load("stored.jsonl")
fails = []
key = lambda e: (e["sensor.run"], e["evt.num"])
count = collections.Counter(key(e) for e in db)
dups = [k for k, n in count.items() if n > 1]
if dups:
    fails.append(f"{len(dups)} events stored twice, e.g. {dups[:3]}")
if {e["evt.hostname"] for e in db} != {"node-e2e"}:
    fails.append(f"node names in the store: {sorted({e['evt.hostname'] for e in db})}")
runs = collections.defaultdict(set)
for e in db:
    runs[e["sensor.run"]].add(e["evt.num"])
r1 = {e["sensor.run"] for e in s1}
r2 = {e["sensor.run"] for e in s2}
if len(r1) != 1 or len(r2) != 1 or r1 == r2:
    fails.append(f"sensor runs in the captures: {r1} {r2}")
else:
    r1, r2 = r1.pop(), r2.pop()
    # Run 1 was killed: its capture (buffered) lags its spool; the store has every spooled
    # event: seq 1..max without a gap, and at least all the capture shows.
    got1 = runs.get(r1, set())
    want1 = {e["evt.num"] for e in s1}
    if not got1 or got1 != set(range(1, max(got1) + 1)):
        fails.append(f"run 1 in the store is not 1..max: {len(got1)} events, max {max(got1) if got1 else 0}")
    if want1 - got1:
        fails.append(f"run 1: {len(want1 - got1)} captured events missing from the store")
    # Run 2 stopped cleanly and drained: exactly the captured events.
    got2 = runs.get(r2, set())
    want2 = {e["evt.num"] for e in s2}
    if got2 != want2:
        fails.append(f"run 2: store {len(got2)} vs sensor {len(want2)}: missing {sorted(want2 - got2)[:5]}, extra {sorted(got2 - want2)[:5]}")
    print(f"run 1: {len(got1)} events stored (capture showed {len(want1)}); run 2: {len(got2)} stored of {len(want2)}")
ticks = [e for e in db if e.get("evt.type") == "execve" and (e.get("proc.argv") or [""])[0] == "/tmp/bb"]
wrong = [e for e in ticks if e.get("container.full_id") != cid or e.get("k8s.pod.name") != "api-5d8b7c9f4-e2e"]
if len(ticks) < 50 or wrong:
    fails.append(f"{len(ticks)} workload execs stored, {len(wrong)} not attributed to the pod")
tick_n = collections.Counter(e["proc.argv"][2] for e in ticks)
if any(n > 1 for n in tick_n.values()):
    fails.append("a workload exec stored twice")
writes = [e for e in db if e.get("fd.name") == "/tmp/counter"]
if len(writes) < 50:
    fails.append(f"only {len(writes)} writes of /tmp/counter stored")
# /tmp/<0xff>x: driftwatch's JSON gives a byte that is not UTF-8 as a lone \udc80..\udcff.
odd = "/tmp/\udcffx"
if not [e for e in db if e.get("fd.name") == odd and e.get("fd.write_kind") == "close_write"]:
    fails.append(f"no write of {odd!r} stored")
if not [e for e in db if e.get("proc.exepath") == odd and e.get("container.full_id") == cid]:
    fails.append(f"no exec of {odd!r} stored")
alerts = load("alerts.jsonl")
if not [a for a in alerts if a["rule"] == "Drop and execute new binary in container"
        and a["output_fields"].get("proc.exepath") == odd]:
    fails.append(f"no drop and execute alert for {odd!r}: {sorted({a['rule'] for a in alerts})}")
for f in fails:
    print("FAIL:", f)
if fails:
    sys.exit(1)
print(f"ok: {len(db)} events stored once each; {len(ticks)} workload execs, {len(writes)} writes of the pod")
PY
echo "PASS collector end to end"
