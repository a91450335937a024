#!/bin/bash
# Live, observer mode beside a running auditd: the sensor reads the multicast feed, finds
# the same known execs exactly once with exact argv, and leaves auditd holding the audit
# pid. Usage: live_observer_test.sh BUILD_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/harness.sh"
dw_build "$1"
source "$here/auditd_env.sh"
dw_harness dw-observer
dw_audit_guard

dw_auditd_start "$tmp" RAW
auditctl -a always,exit -F arch=b64 -S execve,execveat -k dwobserver >/dev/null
auditd_pid=$(cat "$tmp/auditd.pid")
# auto must choose observer: auditd holds the pid.
dw_sensor_start --audit-only --audit-mode auto
grep -q "audit observer mode" "$tmp/sensor.log" || die "auto did not pick observer"
python3 "$here/live_execs.py" "$tmp/spec.json" "dwobserver$$"
sleep 0.5
dw_stop sensor
cat "$tmp/sensor.log"
dw_audit_held_by "$auditd_pid" || die "auditd lost the audit pid"
# Owner mode must refuse while auditd runs, and change nothing.
if "$sensor" --audit-only --audit-mode owner --duration 1 2>"$tmp/owner.err"; then
    die "owner mode started beside auditd"
fi
grep -q "holds the audit feed" "$tmp/owner.err" || { cat "$tmp/owner.err"; exit 1; }
dw_audit_held_by "$auditd_pid" || die "owner attempt took the pid"

"$dw" analyze --events "$tmp/capture" >"$tmp/events.jsonl"
python3 "$here/check_events.py" "$tmp/spec.json" <"$tmp/events.jsonl"
# auditd's own log holds the same execs: the sensor saw what auditd saw.
auditctl -d always,exit -F arch=b64 -S execve,execveat -k dwobserver >/dev/null
dw_auditd_stop "$tmp"
"$dw" analyze --events "$tmp/log/audit.log" >"$tmp/auditd.jsonl"
python3 "$here/check_events.py" "$tmp/spec.json" <"$tmp/auditd.jsonl"
dw_audit_restore "$tmp"
dw_audit_same "$tmp" || die "audit state differs"
echo "audit state and rules as before"
