#!/bin/bash
# Live, owner mode: the sensor registers as the audit daemon, captures a known set of
# execs (each exactly once, exact argv), and leaves audit settings and rules as it found
# them, the backlog wait it was given (--backlog-wait-time) included.
# Usage: live_owner_test.sh BUILD_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/harness.sh"
dw_build "$1"
dw_harness dw-owner
dw_audit_guard
[[ $(dw_audit_pid) == 0 ]] || die "an audit daemon holds the audit pid: owner mode cannot be tested here"

# A wait the machine does not have now (the kernel's default is 60 s in its own unit).
wait_before=$(dw_audit_get backlog_wait_time)
wait_time=$((wait_before == 250 ? 251 : 250))
dw_sensor_start --audit-only --audit-mode owner --status-interval 1 --backlog-wait-time "$wait_time"
cat "$tmp/sensor.log"
expect "backlog_wait_time while the sensor runs" "$(dw_audit_get backlog_wait_time)" "$wait_time"
python3 "$here/live_execs.py" "$tmp/spec.json" "dwowner$$"
sleep 0.5  # let the last records cross the socket
dw_stop sensor
cat "$tmp/sensor.log"

"$dw" analyze --events "$tmp/capture" >"$tmp/events.jsonl"
python3 "$here/check_events.py" "$tmp/spec.json" <"$tmp/events.jsonl"
grep -q 'lost: kernel 0,' "$tmp/sensor.log" || die "the kernel lost records"
# The two execs over the argument caps (live_execs.py), at least: counted, not lost.
capped=$(sed -n 's/.*; \([0-9]*\) execs with arguments capped.*/\1/p' "$tmp/sensor.log")
((${capped:-0} >= 2)) || die "${capped:-no} execs counted as capped, want >= 2"
dw_audit_same "$tmp" || die "audit state differs after the sensor stopped"
expect "backlog_wait_time after the sensor stopped" "$(dw_audit_get backlog_wait_time)" "$wait_before"
echo "audit state and rules as before"
