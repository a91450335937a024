#!/bin/bash
# A real kernel audit loss becomes a "Sensor blind window" alert. The real sensor (owner
# mode, --audit-only) streams to the real collector (plaintext on loopback); the kernel is
# made to drop audit records, and the collector must raise the built-in Critical alert
# "Sensor blind window" for the node with sensor.loss.kernel_lost > 0, and
# `driftwatch status --collector` must show the node's losses and blind windows. Then the
# collector is killed and restarted while the kernel keeps losing, and in the end the
# alerts' kernel_lost must add up exactly to the sensor's final total (nothing counted twice
# or left out), itself at most what the kernel's `lost` counter grew by.
#
# How the kernel is made to lose records: the sensor sets backlog_wait_time 0 (no task waits
# for room in the audit backlog) and here a tiny --backlog-limit. Every exec makes about
# seven records (SYSCALL, EXECVE, CWD, PATH x2, PROCTITLE, EOE) that wait in the kernel's
# audit queue until kauditd hands them to the sensor's socket; with room for only BACKLOG
# records, two parallel exec loops outrun kauditd and audit_log_start() drops them
# ("backlog limit exceeded"), counting each in the kernel's `lost`. On this 2-core VM
# (Linux 6.18) the first drops come within a second of the storm. The sensor polls `lost`
# (AUDIT_GET) and reports its growth as kernel_lost in its status events, every second here.
#
# Should the storm alone not be enough on some machine, the fallback (STOP_READER=1 forces
# it) runs it again with the sensor SIGSTOPped. The sensor runs with a small socket buffer
# throughout (--rcvbuf 256 KiB instead of 32 MiB), so a stopped reader's socket is full after
# a few hundred records: kauditd retries and stalls, the tiny backlog overflows at once and
# the kernel drops and counts. A stopped reader with the default backlog (8192) is NOT a way to
# get a kernel_lost: kauditd gives up on the full socket and, without audit=1 on the kernel
# command line (audit_default 0, as on this VM), kauditd_hold_skb() frees the records after
# printing them to dmesg without counting them in `lost`; the sensor sees one ENOBUFS
# (socket_enobufs +1) for thousands of records (tried: 1500 execs, 10k records, `lost`
# unchanged). SIGCONT lets the sensor see the grown counter.
#
# Audit state and rules are saved before and must be exactly as before once the sensor
# stopped; the trap restores them on any failure. Processes are stopped by PID.
# Usage: blind_window_test.sh BUILD_DIR
#   env: BACKLOG=8, EXECS=3000 (per loop), RCVBUF=262144, STOP_READER=1 (the fallback only),
#        COLLECTOR_OUTAGE=0 (no collector outage), KEEP=1 (keep the temp dir)
set -euo pipefail
backlog=${BACKLOG:-8}
execs=${EXECS:-3000}
rcvbuf=${RCVBUF:-262144}
node="node-blind"
here=$(cd "$(dirname "$0")" && pwd)
source "$here/harness.sh"
dw_build "$1"
dw_harness dw-blind
storm_pids=()
dw_audit_guard --owner

# The collector: any free port for gRPC and for /status (the same ports again on a restart).
start_collector() { # GRPC_PORT METRICS_PORT
    dw_collector_start collector --insecure --listen "127.0.0.1:$1" --db "$tmp/collector.db" \
        --metrics-address "127.0.0.1:$2"
    [[ -n $mport ]] || die "the collector serves no /status"
}
start_collector 0 0
echo "collector on 127.0.0.1:$port, status on 127.0.0.1:$mport"

lost_before_sensor=$(dw_audit_get lost)
dw_start sensor "$sensor" --audit-only --audit-mode owner \
    --audit-state-file "$tmp/audit-state" --backlog-limit "$backlog" --rcvbuf "$rcvbuf" \
    --node "$node" --collector "127.0.0.1:$port" --insecure --spool-dir "$tmp/spool" \
    --status-interval 1 --metrics-address 127.0.0.1:0
sensor_pid=$(dw_pid sensor)
dw_wait_log sensor "connected to collector" || die "the sensor did not connect"
dw_audit_held_by "$sensor_pid" || die "the sensor is not the audit daemon"
auditctl -s | awk '$1 == "backlog_limit" || $1 == "backlog_wait_time" { printf "%s %s  ", $1, $2 } END { print "" }'

# Two exec loops at once, bounded in count (EXECS each) and time (SECONDS), in the
# background; stop_storm stops them (by PID). Every wait in this test is bounded by the
# clock, so that the worst case (about 250 s) stays inside the CTest timeout: a test that
# times out is killed, and its trap may not get to restore anything.
start_storm() {  # SECONDS
    storm_pids=()
    for _ in 1 2; do
        timeout "$1" bash -c "for ((n = 0; n < $execs; n++)); do /bin/true; done" &
        storm_pids+=($!)
    done
}
stop_storm() {
    local p
    for p in "${storm_pids[@]}"; do dw_stop_pid "$p" || true; done
    storm_pids=()
}
dw_at_exit stop_storm
# The storm for 28 s at most, stopped as soon as the kernel's lost counter grew past $1.
storm() {
    start_storm 28
    dw_wait 28 storm_over "$1" || true
    stop_storm
}
storm_over() { (($(dw_audit_get lost) > $1)) || ! { dw_alive "${storm_pids[0]}" || dw_alive "${storm_pids[1]}"; }; }

lost0=$(dw_audit_get lost)
how=
if [[ -z ${STOP_READER:-} ]]; then
    t0=$SECONDS
    storm "$lost0"
    lost1=$(dw_audit_get lost)
    echo "exec storm for $((SECONDS - t0)) s: kernel lost $lost0 -> $lost1 (backlog_limit $backlog)"
    ((lost1 > lost0)) && how="a tiny backlog"
fi
if [[ -z $how ]]; then
    # Fallback: a reader that does not read (see the header).
    echo "the storm again with the sensor stopped (SIGSTOP)"
    t0=$SECONDS
    kill -STOP "$sensor_pid"
    storm "$lost0"
    kill -CONT "$sensor_pid"
    lost1=$(dw_audit_get lost)
    echo "exec storm for $((SECONDS - t0)) s: kernel lost $lost0 -> $lost1"
    ((lost1 > lost0)) || die "the kernel lost no audit record, even with the reader stopped"
    how="a stopped reader"
fi
echo "the kernel dropped $((lost1 - lost0)) records ($how)"

# The alert: within a status interval or two, plus detection (bounded: 30 s).
alerted() {
    "$dw" alerts --db "$tmp/collector.db" --rule "Sensor blind window" --node "$node" \
        >"$tmp/alerts.jsonl" 2>"$tmp/alerts.err" || true
    python3 - "$tmp/alerts.jsonl" "$node" <<'PY'
import json, sys
node = sys.argv[2]
for line in open(sys.argv[1]):
    a = json.loads(line)
    f = a.get("output_fields", {})
    if a.get("rule") == "Sensor blind window" and f.get("sensor.node") == node and \
            (f.get("sensor.loss.kernel_lost") or 0) > 0:
        sys.exit(0)
sys.exit(1)
PY
}
dw_wait 30 alerted ||
    { cat "$tmp/alerts.jsonl" "$tmp/alerts.err"; die "no \"Sensor blind window\" alert with sensor.loss.kernel_lost > 0 for $node"; }
python3 - "$tmp/alerts.jsonl" "$node" <<'PY'
import json, sys
node = sys.argv[2]
alerts = [json.loads(l) for l in open(sys.argv[1])]
fails = []
for a in alerts:
    f = a["output_fields"]
    if a.get("priority") != "Critical":
        fails.append(f"priority {a.get('priority')}: {a['output']}")
    if a.get("hostname") != node or f.get("sensor.node") != node:
        fails.append(f"node {a.get('hostname')} / {f.get('sensor.node')}: {a['output']}")
    if f.get("sensor.report") == "status event" and not f.get("sensor.window.end"):
        fails.append(f"a status event's alert without sensor.window.end: {a['output']}")
print(f"{len(alerts)} blind window alerts so far, the first: {alerts[0]['output']}")
for f in fails:
    print("FAIL:", f)
sys.exit(1 if fails else 0)
PY

# The fleet view: the node with its losses and blind windows.
"$dw" status --collector "127.0.0.1:$mport" | tee "$tmp/status.txt"
"$dw" status --collector "127.0.0.1:$mport" --json >"$tmp/status.json"
python3 - "$tmp/status.json" "$tmp/status.txt" "$node" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
text = open(sys.argv[2]).read()
node = sys.argv[3]
fails = []
n = [x for x in s["nodes"] if x["node"] == node]
if len(n) != 1:
    fails.append(f"node {node} not in /status once: {s['nodes']}")
else:
    n = n[0]
    if n.get("streams") != 1:
        fails.append(f"streams {n.get('streams')}")
    if (n.get("losses") or {}).get("kernel_lost", 0) <= 0:
        fails.append(f"losses {n.get('losses')}")
    if n.get("blind_windows", 0) < 1:
        fails.append(f"blind_windows {n.get('blind_windows')}")
line = [l for l in text.splitlines() if l.split()[:1] == [node]]
if len(line) != 1 or "kernel_lost" not in line[0]:
    fails.append(f"status --collector has no line for {node} with kernel_lost: {line}")
if not text.startswith("collector") or "\ndetection" not in text:
    fails.append("status --collector without its header lines")
for f in fails:
    print("FAIL:", f)
sys.exit(1 if fails else 0)
PY

# Then a collector outage while the kernel keeps losing (COLLECTOR_OUTAGE=0 skips it): the
# collector is killed (SIGKILL) and started again on the same database and ports. The
# sensor reconnects with a Hello carrying its newest totals, then sends the status events it
# spooled during the outage (older, lower totals): these are old reports, not a new loss
# file; the alerts must still add up to the sensor's total (checked below), none counted
# twice.
if [[ ${COLLECTOR_OUTAGE:-1} != 0 ]]; then
    echo "collector killed (SIGKILL); the kernel keeps losing during the outage"
    dw_kill collector
    # Exec loops until the sensor is back (bounded: 40 s), so that its totals keep growing
    # after the status events it spools and the Hello is newer than them.
    start_storm 40
    sleep 2.5
    start_collector "$port" "$mport"
    dw_wait_log sensor "connected to collector" 2 30 || true
    stop_storm
    shows_losses() {
        (($(grep -c "connected to collector" "$tmp/sensor.log") >= 2)) &&
            "$dw" status --collector "127.0.0.1:$mport" --json >"$tmp/status.json" 2>/dev/null &&
            python3 -c 'import json, sys
n = [x for x in json.load(open(sys.argv[1]))["nodes"] if x["node"] == sys.argv[2]]
sys.exit(0 if n and n[0]["streams"] == 1 and n[0].get("losses", {}).get("kernel_lost", 0) > 0 else 1)' \
                "$tmp/status.json" "$node"
    }
    dw_wait 30 shows_losses || die "after the restart the collector shows no losses of a connected $node"
    "$dw" status --collector "127.0.0.1:$mport"
fi

# The sensor puts back what it changed; the test checks it equals what was there before.
dw_stop sensor 20 || die "the sensor ignored SIGTERM"
grep "lost: kernel" "$tmp/sensor.log" || true
dw_audit_same "$tmp" || die "audit state or rules differ after the sensor stopped"
echo "audit state and rules as before"
lost_end=$(dw_audit_get lost)

# Nothing counted twice or left out: once the sensor's final status is evaluated, the
# blind windows' kernel_lost add up to the final status's total, which is at most what the
# kernel's counter grew by while the sensor ran.
adds_up() {
    local rc=0
    "$dw" events --db "$tmp/collector.db" --node "$node" --kind status >"$tmp/status_events.jsonl"
    "$dw" alerts --db "$tmp/collector.db" --rule "Sensor blind window" --node "$node" >"$tmp/alerts.jsonl"
    python3 - "$tmp" "$((lost_end - lost_before_sensor))" >"$tmp/sum.txt" <<'PY' || rc=$?
import datetime, json, sys
tmp, grown = sys.argv[1], int(sys.argv[2])
final = [e for e in map(json.loads, open(f"{tmp}/status_events.jsonl")) if e.get("sensor.final")]
alerts = [json.loads(l) for l in open(f"{tmp}/alerts.jsonl")]
total = sum(a["output_fields"].get("sensor.loss.kernel_lost") or 0 for a in alerts)
if len(final) != 1:
    print(f"{len(final)} final status events stored")
    sys.exit(1)
want = final[0]["sensor.kernel_lost"]
if total != want:
    print(f"the alerts add up to kernel_lost {total}, the final status says {want}")
    sys.exit(1)
if want > grown:
    print(f"the sensor reported {want} kernel losses, the kernel's counter grew by {grown}")
    sys.exit(2)
print(f"{len(alerts)} blind window alerts, kernel_lost {total} in all = the sensor's final "
      f"status; the kernel's counter grew by {grown} while the sensor ran")
# What the outage exercised: status events stored after the Hello with lower totals (old
# reports the collector must not take for a new loss file).
try:
    running = 0
    for a in alerts:
        running += a["output_fields"].get("sensor.loss.kernel_lost") or 0
        if a["output_fields"].get("sensor.report") == "Hello":
            hello_ns = a["output_fields"].get("sensor.window.end")
            older = [e for e in map(json.loads, open(f"{tmp}/status_events.jsonl"))
                     if e["sensor.kernel_lost"] < running and e["evt.time"] < hello_ns and
                     e.get("collector.stored_ns", 0) >= int(datetime.datetime.fromisoformat(
                         hello_ns[:26] + "+00:00").timestamp() * 1e9) - 1_000_000]
            print(f"the Hello after the outage brought kernel_lost to {running}; {len(older)} status "
                  f"events with lower totals were stored after it")
            break
except Exception as e:  # only informative
    print(f"(what the outage exercised is unknown: {e!r})")
PY
    ((rc != 2)) || die "$(cat "$tmp/sum.txt")"
    return $rc
}
dw_wait 30 adds_up || die "after 30 s: $(cat "$tmp/sum.txt")"
cat "$tmp/sum.txt"

# With the collector gone, status --collector fails and names the address.
dw_stop collector 20 || die "the collector ignored SIGTERM"
! "$dw" status --collector "127.0.0.1:$mport" 2>"$tmp/status.err" || die "status --collector answered with the collector stopped"
grep -q "127.0.0.1:$mport" "$tmp/status.err" || { cat "$tmp/status.err"; die "the error does not name the address"; }
cat "$tmp/status.err"
echo "PASS blind window: kernel audit loss ($how) alerted as \"Sensor blind window\" for $node"
