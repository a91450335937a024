#!/bin/bash
# Live, owner mode: the sensor registers as the audit daemon, captures a known set of
# execs (each exactly once, exact argv), and leaves audit settings and rules as it found
# them. Usage: live_owner_test.sh BUILD_DIR
set -euo pipefail
build=$1
here=$(cd "$(dirname "$0")" && pwd)
source "$here/audit_state.sh"
source "$here/live_sensor.sh"
tmp=$(mktemp -d /tmp/dw-owner.XXXXXX)
cleanup() { dw_sensor_stop "$tmp" || true; dw_audit_restore "$tmp"; rm -rf "$tmp"; }
trap cleanup EXIT
dw_audit_save "$tmp"
if [[ $(awk '$1=="pid"{print $2}' "$tmp/audit.status") != 0 ]]; then
    echo "an audit daemon holds the audit pid: owner mode cannot be tested here"; exit 1
fi

dw_sensor_start "$build" "$tmp" --audit-only --audit-mode owner --status-interval 1
cat "$tmp/sensor.log"
python3 "$here/live_execs.py" "$tmp/spec.json" "dwowner$$"
sleep 0.5  # let the last records cross the socket
dw_sensor_stop "$tmp"
cat "$tmp/sensor.log"

"$build/cli/driftwatch" analyze --events "$tmp/capture" >"$tmp/events.jsonl"
python3 "$here/check_events.py" "$tmp/spec.json" <"$tmp/events.jsonl"
grep -q 'lost: kernel 0,' "$tmp/sensor.log" || { echo "FAIL: the kernel lost records"; exit 1; }
# The two execs over the argument caps (live_execs.py), at least: counted, not lost.
capped=$(sed -n 's/.*; \([0-9]*\) execs with arguments capped.*/\1/p' "$tmp/sensor.log")
((${capped:-0} >= 2)) || { echo "FAIL: ${capped:-no} execs counted as capped, want >= 2"; exit 1; }
dw_audit_same "$tmp" || { echo "FAIL: audit state differs after the sensor stopped"; exit 1; }
echo "audit state and rules as before"
