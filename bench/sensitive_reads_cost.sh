#!/usr/bin/env bash
# sensitive_reads_cost.sh: what the sensor's sensitive reads (--sensitive-reads, inode marks
# FAN_CLOSE_NOWRITE on files such as /etc/shadow inside containers) cost.
#
# A private containerd runs a pod; inside it a static reader (bench/file_reader.c) opens,
# reads and closes one file in a loop for SECONDS. Contenders, in interleaved rounds:
#   off        no sensor: the reader on /etc/shadow
#   unmarked   the sensor (fanotify + sensitive reads, audit off): the reader on /etc/motd,
#              a file no entry names (what every other file read pays: expected nothing)
#   marked     the sensor: the reader on /etc/shadow (every close is an event; the sensor
#              coalesces one reader's loop to an event a second)
# Prints reads/s of each, the ratio to `off`, and the sensor's CPU per marked read.
#
# Usage (root): bench/sensitive_reads_cost.sh [BUILD_DIR]    env: SECONDS=5 ROUNDS=3
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
BUILD=${1:-$REPO/build}
RUN_SECONDS=$(printenv SECONDS || echo 5)
ROUNDS=${ROUNDS:-3}
source "$REPO/tests/integration/containerd_env.sh"
dw_build "$BUILD"
[[ $EUID -eq 0 ]] || die "must run as root"
dw_harness dw-sensread
CTD=$tmp/ctd
dw_ctd_check_deps

mkdir -p "$tmp/extra/etc"
printf 'root:*:19000:0:99999:7:::\n' >"$tmp/extra/etc/shadow"
printf 'welcome\n' >"$tmp/extra/etc/motd"
mkdir -p "$tmp/extra/bin"
gcc -static -O2 -o "$tmp/extra/bin/file_reader" "$HERE/file_reader.c"
dw_ctd_up "$CTD" "$tmp/extra"
uid=$(cat /proc/sys/kernel/random/uuid)
pod=$(dw_pod_run "$CTD" read-bench bench "$uid" "/kubepods/besteffort/pod$uid")
cid=$(dw_pod_container "$CTD" "$pod" reader -- /bin/sleep 100000)

n_exec=0
reads() {  # FILE: reads/s of one run
  n_exec=$((n_exec + 1))
  local n
  n=$(dw_ctr_exec "$CTD" "$cid" "r$n_exec" /bin/file_reader "$1" "$RUN_SECONDS" </dev/null)
  echo $((n / RUN_SECONDS))
}
sensor_up() {
  dw_start sensor "$sensor" --audit-mode off --cri-endpoint "$CTD/containerd.sock" \
    --watch-fs "$CTD/root" --capture /dev/null --metrics-address "" --status-interval 3600
  dw_wait_log sensor "^driftwatch-sensor [0-9.]*:" "$1" 15 || die "the sensor did not start"
  sleep 1.5  # the container reported, its files marked
}

declare -a off=() unmarked=() marked=() cpu=()
started=0
for ((r = 1; r <= ROUNDS; r++)); do
  off+=("$(reads /etc/shadow)")
  started=$((started + 1))
  sensor_up "$started"
  unmarked+=("$(reads /etc/motd)")
  t0=$(dw_cpu_ticks "$(dw_pid sensor)")
  m=$(reads /etc/shadow)
  t1=$(dw_cpu_ticks "$(dw_pid sensor)")
  marked+=("$m")
  # Sensor CPU (clock ticks of 10 ms) per marked read, in microseconds.
  cpu+=("$(awk -v d=$((t1 - t0)) -v n=$((m * RUN_SECONDS)) 'BEGIN { printf "%.3f", d * 10000 / n }')")
  dw_stop sensor
  echo "round $r: off ${off[-1]}/s, unmarked ${unmarked[-1]}/s, marked ${marked[-1]}/s, sensor ${cpu[-1]} us/read" >&2
done
python3 - "$(dw_median "${off[@]}")" "$(dw_median "${unmarked[@]}")" \
  "$(dw_median "${marked[@]}")" "$(dw_median "${cpu[@]}")" "$ROUNDS" "$RUN_SECONDS" <<'PY'
import json, sys
off, unmarked, marked, cpu = (float(x) for x in sys.argv[1:5])
print(json.dumps({"bench": "sensitive_reads", "rounds": int(sys.argv[5]), "seconds": int(sys.argv[6]),
                  "reads_per_s_off": off, "reads_per_s_unmarked": unmarked,
                  "reads_per_s_marked": marked, "unmarked_over_off": round(unmarked / off, 3),
                  "marked_over_off": round(marked / off, 3), "sensor_cpu_us_per_marked_read": cpu}))
print("sensitive reads: one reader in a container, medians of %s rounds: %.0f reads/s without the "
      "sensor; %.0f/s (%.2fx) of an unmarked file, %.0f/s (%.2fx) of a marked one with it; sensor "
      "%.2f us CPU per marked read" % (sys.argv[5], off, unmarked, unmarked / off, marked,
                                        marked / off, cpu))
PY
