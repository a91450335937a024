#!/bin/bash
# The main job, for now: install what is missing, build, let the sensor capture this
# machine's execs for a few seconds while this script runs some, then print them with
# `driftwatch analyze`. Needs root (audit). Leaves audit settings and rules as it found them.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[[ $(id -u) == 0 ]] || { echo "demo: run as root (the sensor reads kernel audit)"; exit 1; }
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh" "$root/build" >/dev/null
bin=$root/build

tmp=$(mktemp -d /tmp/driftwatch-demo.XXXXXX)
sensor_pid=
cleanup() {
  if [[ -n $sensor_pid ]]; then kill -TERM "$sensor_pid" 2>/dev/null || true; wait "$sensor_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

echo "== starting driftwatch-sensor (audit, auto mode: owner unless auditd holds the feed)"
"$bin/sensor/driftwatch-sensor" --audit-only --audit-mode auto --capture "$tmp/capture" \
  --status-interval 1 2>"$tmp/sensor.log" &
sensor_pid=$!
for _ in $(seq 100); do grep -q ": audit [a-z]* mode" "$tmp/sensor.log" && break; sleep 0.05; done
cat "$tmp/sensor.log"

echo "== running a few execs: a shell, a binary dropped into /tmp and made executable"
sh -c 'uname -r >/dev/null; id -u >/dev/null'
cp /bin/true "$tmp/dropped" && chmod 755 "$tmp/dropped" && "$tmp/dropped" --with "two args"
/bin/echo "an argument with spaces" "" "héllo" >/dev/null
sleep 1

kill -TERM "$sensor_pid"; wait "$sensor_pid" || true; sensor_pid=
tail -1 "$tmp/sensor.log"

echo "== driftwatch analyze --events (one JSON object per event; here a few fields of each)"
"$bin/cli/driftwatch" analyze --events "$tmp/capture" 2>/dev/null |
  python3 -c '
import json, sys
for line in sys.stdin:
    e = json.loads(line)
    what = e.get("proc.cmdline") if e["evt.type"].startswith("exec") else "%s %s" % (e["evt.arg.mode"], e["fd.name"])
    print("%-30s %-9s %-8s %-8s %s" % (e["evt.time"][:26], e["evt.type"], e["evt.res"], e["container.id"][:8], what[:90]))
' | grep -v -e ' runc ' | tail -40
echo "== driftwatch analyze (per-container summary)"
"$bin/cli/driftwatch" analyze "$tmp/capture"
