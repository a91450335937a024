#!/bin/bash
# The sensor with its spool on a full filesystem: a 2 MiB tmpfs, mounted in a private mount
# namespace (the script runs itself again under `unshare -m`, so the mount goes with it),
# filled up while the sensor runs (audit off, no CRI, fanotify off; a collector address
# nobody answers, so everything stays in the spool). Checks that /healthz is unhealthy while
# spool appends fail and healthy again once there is room (no restart), that /metrics counts
# the failures, and that the lifetime loss totals in /status and in the status events (read
# from --capture, decoded with protoc) survive a restart, not doubled, and that a collector
# raises one "Sensor blind window" for them.
# Usage: sensor_full_disk_test.sh BUILD_DIR (as root)
set -euo pipefail
build=$(realpath "$1")
here=$(dirname "$(realpath "$0")")
proto_dir=$(dirname "$(dirname "$here")")/proto
[[ $(id -u) == 0 ]] || { echo "SKIP: needs root (mount)"; exit 0; }
if [[ -z ${DW_FULL_DISK_NS:-} ]]; then
    DW_FULL_DISK_NS=1 exec unshare --mount --propagation private "$0" "$@"
fi
source "$here/harness.sh"
dw_build "$build"

dw_harness dw-sensor-full
mnt=$tmp/mnt
mkdir "$mnt"
mount -t tmpfs -o size=2m,mode=0700 tmpfs "$mnt"
dw_at_exit umount -l "$mnt"

# A sensor with its spool on the small filesystem, as NAME (sensor1, sensor2): its metrics
# port in $mport, its capture in $tmp/NAME.cap.
start_sensor() {  # NAME
    dw_start "$1" "$sensor" --capture "$tmp/$1.cap" --audit-mode off --no-cri \
        --fanotify-mode off --collector 127.0.0.1:9 --insecure --spool-dir "$mnt/spool" \
        --status-interval 0.2 --metrics-address 127.0.0.1:0
    dw_wait_log "$1" "metrics on http" 1 10 || die "sensor did not start"
    mport=$(sed -n 's/.*metrics on http.*(port \([0-9]*\)).*/\1/p' "$tmp/$1.log")
}
healthz() { curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$mport/healthz"; }
lifetime() {  # KIND -> losses.lifetime.KIND, or "run" KIND -> losses.run.KIND
    local which=lifetime kind=$1
    [[ $# == 2 ]] && which=$1 kind=$2
    curl -s "http://127.0.0.1:$mport/status" |
        python3 -c "import json,sys; print(json.load(sys.stdin)['losses']['$which']['$kind'])"
}
fill() {  # writes FILE until the filesystem has no block left
    python3 - "$1" <<'EOF'
import errno, os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
for size in (65536, 4096, 1):
    while True:
        try:
            os.write(fd, b"f" * size)
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
            break
EOF
}
final_status() {  # CAPTURE FIELD: FIELD (or lifetime.FIELD) of the capture's last event
    python3 -c '
import sys
data = open(sys.argv[1], "rb").read()
pos, last = 8, b""  # after the magic: varint length, event
while pos < len(data):
    n = shift = 0
    while True:
        b = data[pos]
        pos += 1
        n |= (b & 0x7f) << shift
        shift += 7
        if b < 0x80:
            break
    last, pos = data[pos:pos + n], pos + n
sys.stdout.buffer.write(last)
' "$1" |
        protoc --decode=driftwatch.v1.Event -I "$proto_dir" "$proto_dir/driftwatch/v1/event.proto" |
        python3 -c '
import re, sys
text, field = sys.stdin.read(), sys.argv[1]
if "  final: true" not in text:
    sys.exit("not the final status: " + text)
if field.startswith("lifetime."):
    block = re.search(r"\n  lifetime \{\n(.*?)\n  \}", text, re.S)
    text, field = (block.group(1) if block else ""), field[len("lifetime."):]
    m = re.search(r"^    " + field + r": (\d+)$", text, re.M)
else:
    m = re.search(r"^  " + field + r": (\d+)$", text, re.M)
print(m.group(1) if m else 0)  # proto3 text leaves zeros out
' "$2"
}
unhealthy() { [[ $(healthz) == 503 ]]; }
healthy() { [[ $(healthz) == 200 ]]; }

# 1. Room: healthy, nothing lost, the loss file beside the spool.
start_sensor sensor1
dw_wait 5 healthy || die "not healthy at start"
[[ -s $mnt/spool/losses ]] || die "no loss file beside the spool"
[[ $(lifetime spool_append_failures) == 0 ]] || die "losses at start"

# 2. Full: status events cannot be spooled; unhealthy, counted.
fill "$mnt/filler"
dw_wait 10 unhealthy || die "/healthz stayed healthy on a full spool filesystem"
curl -s "http://127.0.0.1:$mport/healthz" | grep -q "spool appends failing" ||
    die "/healthz does not say why"
appends_failed=$(metric driftwatch_sensor_spool_append_failures_total)
((appends_failed > 0)) || die "driftwatch_sensor_spool_append_failures_total is '$appends_failed'"
gauge=$(metric driftwatch_sensor_lifetime_losses 'kind="spool_append_failures"')
((gauge >= appends_failed)) || die "lifetime gauge $gauge below the run's $appends_failed"
echo "full: $appends_failed appends failed, /healthz 503"

# 3. Room again: appends work without a restart; healthy; the count stops growing.
rm -f "$mnt/filler"
dw_wait 5 healthy || die "/healthz did not recover once there was room"
sleep 0.5
a=$(metric driftwatch_sensor_spool_append_failures_total)
sleep 0.6
b=$(metric driftwatch_sensor_spool_append_failures_total)
[[ $a == "$b" ]] || die "appends still failing with room: $a then $b"
before=$(lifetime spool_append_failures)
[[ $before -ge $appends_failed ]] || die "/status lifetime $before below $appends_failed"
grep -q "spool: appends succeed again" "$tmp/sensor1.log" || die "recovery not logged"

# 4. Restart: the lifetime totals carry over, once.
dw_stop sensor1 || die "sensor needed SIGKILL"
grep -q "lifetime losses on this node: $before " "$tmp/sensor1.log" ||
    die "exit log line: $(grep 'lifetime losses' "$tmp/sensor1.log")"
[[ $(final_status "$tmp/sensor1.cap" spool_append_failures) == "$before" ]] ||
    die "run 1's final status event: spool_append_failures"
[[ $(final_status "$tmp/sensor1.cap" lifetime.spool_append_failures) == "$before" ]] ||
    die "run 1's final status event: lifetime"
start_sensor sensor2
after=$(lifetime spool_append_failures)
[[ $after == "$before" ]] || die "lifetime spool_append_failures $before before the restart, $after after"
[[ $(lifetime run spool_append_failures) == 0 ]] || die "run counter not reset"
[[ $(metric driftwatch_sensor_lifetime_losses 'kind="spool_append_failures"') == "$before" ]] ||
    die "lifetime gauge after the restart"
dw_wait 5 healthy || die "not healthy after the restart"
dw_stop sensor2 || die "sensor needed SIGKILL"
[[ $(final_status "$tmp/sensor2.cap" spool_append_failures) == 0 ]] ||
    die "run 2's final status event: spool_append_failures"
[[ $(final_status "$tmp/sensor2.cap" lifetime.spool_append_failures) == "$before" ]] ||
    die "run 2's final status event: lifetime"
# 5. The collector hears of it: a sensor started on this spool reports the lifetime totals
# (Hello, then its status events), and the collector raises one "Sensor blind window" naming
# the append failures (and one for the sequence numbers those events had taken, a gap);
# `driftwatch status --collector` shows them.
dw_collector_start collector --insecure --listen 127.0.0.1:0 --db "$tmp/c.db" \
    --metrics-address 127.0.0.1:0
dw_start sensor3 "$sensor" --audit-mode off --no-cri --fanotify-mode off \
    --node full-disk-node --collector "127.0.0.1:$port" --insecure --spool-dir "$mnt/spool" \
    --status-interval 0.2 --metrics-address 127.0.0.1:0
blind() {
    "$dw" alerts --db "$tmp/c.db" --rule "Sensor blind window" 2>/dev/null |
        grep -c "\"sensor.loss.spool_append_failures\":$before" || true
}
has_blind() { [[ $(blind) -ge 1 ]]; }
dw_wait 15 has_blind || die "no Sensor blind window alert with spool_append_failures $before: $("$dw" alerts --db "$tmp/c.db" 2>&1 | tail -3)"
sleep 1
[[ $(blind) == 1 ]] || die "the loss was alerted $(blind) times, not once"
"$dw" status --collector "127.0.0.1:$mport" | grep full-disk-node | grep -q spool_append_failures ||
    die "driftwatch status --collector: $("$dw" status --collector "127.0.0.1:$mport")"
dw_stop sensor3 || die "sensor needed SIGKILL"
dw_stop collector || die "collector needed SIGKILL"
echo "PASS: $before append failures counted, survived a restart once, alerted once at the collector"
