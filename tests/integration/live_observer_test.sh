#!/bin/bash
# Live, observer mode beside a running auditd: the sensor reads the multicast feed, finds
# the same known execs exactly once with exact argv, and leaves auditd holding the audit
# pid. Usage: live_observer_test.sh BUILD_DIR
set -euo pipefail
build=$1
here=$(cd "$(dirname "$0")" && pwd)
source "$here/audit_state.sh"
source "$here/auditd_env.sh"
source "$here/live_sensor.sh"
tmp=$(mktemp -d /tmp/dw-observer.XXXXXX)
cleanup() {
    dw_sensor_stop "$tmp" || true
    dw_auditd_stop "$tmp"
    dw_audit_restore "$tmp"
    rm -rf "$tmp"
}
trap cleanup EXIT
dw_audit_save "$tmp"

dw_auditd_start "$tmp" RAW
auditctl -a always,exit -F arch=b64 -S execve,execveat -k dwobserver >/dev/null
auditd_pid=$(cat "$tmp/auditd.pid")
# auto must choose observer: auditd holds the pid.
dw_sensor_start "$build" "$tmp" --audit-only --audit-mode auto
grep -q "audit observer mode" "$tmp/sensor.log" || { echo "FAIL: auto did not pick observer"; cat "$tmp/sensor.log"; exit 1; }
python3 "$here/live_execs.py" "$tmp/spec.json" "dwobserver$$"
sleep 0.5
dw_sensor_stop "$tmp"
cat "$tmp/sensor.log"
[[ $(dw_audit_pid) == "$auditd_pid" ]] || { echo "FAIL: auditd lost the audit pid"; exit 1; }
# Owner mode must refuse while auditd runs, and change nothing.
if "$build/sensor/driftwatch-sensor" --audit-only --audit-mode owner --duration 1 2>"$tmp/owner.err"; then
    echo "FAIL: owner mode started beside auditd"; exit 1
fi
grep -q "holds the audit feed" "$tmp/owner.err" || { cat "$tmp/owner.err"; exit 1; }
[[ $(dw_audit_pid) == "$auditd_pid" ]] || { echo "FAIL: owner attempt took the pid"; exit 1; }

"$build/cli/driftwatch" analyze --events "$tmp/capture" >"$tmp/events.jsonl"
python3 "$here/check_events.py" "$tmp/spec.json" <"$tmp/events.jsonl"
# auditd's own log holds the same execs: the sensor saw what auditd saw.
auditctl -d always,exit -F arch=b64 -S execve,execveat -k dwobserver >/dev/null
dw_auditd_stop "$tmp"
"$build/cli/driftwatch" analyze --events "$tmp/log/audit.log" >"$tmp/auditd.jsonl"
python3 "$here/check_events.py" "$tmp/spec.json" <"$tmp/auditd.jsonl"
dw_audit_restore "$tmp"
dw_audit_same "$tmp" || { echo "FAIL: audit state differs"; exit 1; }
echo "audit state and rules as before"
