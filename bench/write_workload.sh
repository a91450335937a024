#!/usr/bin/env bash
# write_workload.sh: what does watching container writes cost the writer?
#
# A static writer (bench/file_writer.c) runs inside a container of a private containerd and
# creates FILES files (write 4 KiB, close) per run; its own clock times that phase. Contenders,
# in ROUNDS interleaved rounds (order rotated per round so drift hits everyone alike):
#   none     no watcher                                                 (the ceiling)
#   sensor   driftwatch-sensor --audit-mode off --fanotify-mode MODE    (the product)
#   fatrace  Debian's fatrace -f W, log on /dev/shm                     (a plain fanotify reader)
# Prints files/s per contender (mean and min..max over rounds), the ratio to `none`, the
# watcher's CPU time, the fanotify events the sensor emitted and its queue overflows
# (FAN_Q_OVERFLOW). With two shared cores, CPU time per file is the steadier number. Target:
# sensor >= 90% of none, zero overflows.
#
# Usage (root):  bench/write_workload.sh
#   env: ROUNDS=5 FILES=10000 FANOTIFY_MODE=auto CONTENDERS="none sensor fatrace"
#        DW_SENSOR=build/sensor/driftwatch-sensor  SENSOR_ARGS="extra sensor flags"
#
# Feedback loops (DESIGN.md, "fanotify"): a watcher that writes onto a filesystem it watches
# feeds on its own events. Every log here goes to /dev/shm; the sensor's capture goes to
# /dev/null; the sensor marks only the filesystem of the containerd root (--watch-fs).
# Only PIDs started here are stopped; containerd, its shims and containers go with
# dw_ctd_stop; everything is removed on exit, also on failure or Ctrl-C.
set -euo pipefail

ROUNDS=${ROUNDS:-5}
FILES=${FILES:-10000}
FANOTIFY_MODE=${FANOTIFY_MODE:-auto}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
SENSOR=${DW_SENSOR:-$REPO/build/sensor/driftwatch-sensor}
read -r -a CONTENDERS <<<"${CONTENDERS:-none sensor fatrace}"
read -r -a EXTRA_SENSOR_ARGS <<<"${SENSOR_ARGS:-}"
CTR=dwbench-writer
# The harness the tests use (die, note, processes by PID, the exit steps) and containerd.
source "$REPO/tests/integration/containerd_env.sh"

[[ $EUID -eq 0 ]] || die "must run as root"
[[ $ROUNDS =~ ^[1-9][0-9]*$ && $FILES =~ ^[1-9][0-9]*$ ]] || die "ROUNDS and FILES must be positive integers"
command -v gcc >/dev/null || die "gcc not found"
for c in "${CONTENDERS[@]}"; do
  case $c in
  none) ;;
  sensor) [[ -x $SENSOR ]] || die "$SENSOR not built (DW_SENSOR=...)" ;;
  fatrace) command -v fatrace >/dev/null || die "fatrace not found (apt-get install -y fatrace)" ;;
  *) die "unknown contender $c" ;;
  esac
done

dw_ctd_check_deps || die "containerd harness dependencies missing"

# Short path: containerd's socket lives under it (sun_path limit).
dw_harness dwfw
TMP=$tmp
# Logs off the watched filesystem.
LOGS=$(mktemp -d /dev/shm/dwfw.XXXXXX)
dw_at_exit rm -rf "$LOGS"
CTD=$TMP/ctd
WATCHER_PID=  # the watcher of the current run, if any
stop_watcher() { [[ -z $WATCHER_PID ]] || dw_stop_pid "$WATCHER_PID" || true; WATCHER_PID=; }

# --- setup -------------------------------------------------------------------------------
gcc -static -O2 -Wall -Wextra -o "$TMP/file_writer" "$HERE/file_writer.c"
dw_at_exit dw_ctd_stop "$CTD"
dw_ctd_start "$CTD" || die "containerd did not start"
dw_at_exit stop_watcher
dw_image_build "$TMP/image.tar" >/dev/null || die "image build failed"
dw_image_import "$CTD" "$TMP/image.tar" >/dev/null 2>&1 || die "image import failed"
CPID=$(dw_ctr_run "$CTD" "$CTR") || die "container did not start"
# Into the container's rootfs through its root (a host write: no watcher runs yet).
cp "$TMP/file_writer" "/proc/$CPID/root/bin/file_writer"
note "container $CTR pid $CPID; $FILES files/run, $ROUNDS rounds: ${CONTENDERS[*]}"

RUN=0
# run_writer: one timed run in the container; prints files/s.
run_writer() {
  local out
  RUN=$((RUN + 1))
  out=$(dw_ctr_exec "$CTD" "$CTR" "w$RUN" /bin/file_writer "/tmp/w$RUN" "$FILES" </dev/null) ||
    die "writer failed: $out"
  sed -n 's/.*files_per_sec=\([0-9.]*\).*/\1/p' <<<"$out"
}

HZ=$(getconf CLK_TCK)

declare -A SUM MIN MAX N OVF EVENTS CPU RATES
for c in "${CONTENDERS[@]}"; do
  SUM[$c]=0; MIN[$c]=; MAX[$c]=0; N[$c]=0; OVF[$c]=0; EVENTS[$c]=0; CPU[$c]=0; RATES[$c]=
done

run_one() {  # contender round
  local c=$1 r=$2 log="$LOGS/$1-$2.log" rate line
  WATCHER_PID=
  case $c in
  sensor)
    "$SENSOR" --audit-mode off --fanotify-mode "$FANOTIFY_MODE" --capture /dev/null \
      --watch-fs "$CTD" --cri-endpoint "unix://$CTD/containerd.sock" \
      ${EXTRA_SENSOR_ARGS[@]+"${EXTRA_SENSOR_ARGS[@]}"} </dev/null >/dev/null 2>"$log" &
    WATCHER_PID=$!
    ;;
  fatrace)
    fatrace -f W -o "$LOGS/fatrace-$r.out" </dev/null >/dev/null 2>"$log" &
    WATCHER_PID=$!
    ;;
  esac
  if [[ -n $WATCHER_PID ]] && ! dw_wait --while "$WATCHER_PID" 15 dw_fanotify_marked "$WATCHER_PID"; then
    cat "$log" >&2
    die "$c set no fanotify mark"
  fi
  rate=$(run_writer)
  [[ -n $rate ]] || die "no rate from the writer"
  # Let the watcher drain what the run queued (and the writer's untimed clean-up).
  sleep 1
  if [[ -n $WATCHER_PID ]]; then
    CPU[$c]=$((CPU[$c] + $(dw_cpu_ticks "$WATCHER_PID")))
    stop_watcher
  fi
  if [[ $c == sensor ]]; then
    line=$(grep 'fanotify [0-9]* events' "$log" | tail -n 1) || true
    [[ -n $line ]] || { cat "$log" >&2; die "sensor printed no fanotify summary"; }
    EVENTS[$c]=$((EVENTS[$c] + $(sed 's/.*fanotify \([0-9]*\) events.*/\1/' <<<"$line")))
    OVF[$c]=$((OVF[$c] + $(sed 's/.* \([0-9]*\) overflows.*/\1/' <<<"$line")))
  elif [[ $c == fatrace ]]; then
    EVENTS[$c]=$((EVENTS[$c] + $(grep -c "file_writer" "$LOGS/fatrace-$r.out" || true)))
    rm -f "$LOGS/fatrace-$r.out"
  fi
  SUM[$c]=$(awk -v a="${SUM[$c]}" -v b="$rate" 'BEGIN { print a + b }')
  RATES[$c]="${RATES[$c]} $rate"
  [[ -z ${MIN[$c]} ]] || awk -v a="$rate" -v b="${MIN[$c]}" 'BEGIN { exit !(a < b) }' && MIN[$c]=$rate
  awk -v a="$rate" -v b="${MAX[$c]}" 'BEGIN { exit !(a > b) }' && MAX[$c]=$rate
  N[$c]=$((N[$c] + 1))
  printf 'round %d  %-8s %10.0f files/s\n' "$r" "$c" "$rate"
}

# An untimed warm-up: the first run in a fresh container is much faster than the rest
# (nothing to evict from the page cache yet) and would skew whichever contender got it.
run_writer >/dev/null
for ((r = 1; r <= ROUNDS; r++)); do
  k=${#CONTENDERS[@]}
  for ((i = 0; i < k; i++)); do
    run_one "${CONTENDERS[$(((i + r - 1) % k))]}" "$r"
  done
done

echo
printf '%-8s %12s %21s %9s %8s %14s %10s\n' contender "median f/s" "min..max" "vs none" "cpu s" \
  "events" overflows
base=
# shellcheck disable=SC2086
[[ ${N[none]:-0} -gt 0 ]] && base=$(dw_median ${RATES[none]})
for c in "${CONTENDERS[@]}"; do
  # shellcheck disable=SC2086
  # the rounds' median: one odd round must not decide a ratio
  mean=$(dw_median ${RATES[$c]})
  ratio=-
  [[ -n $base ]] && ratio=$(awk -v m="$mean" -v b="$base" 'BEGIN { printf "%.1f%%", 100 * m / b }')
  ev=-; ovf=-
  [[ $c == sensor ]] && { ev=${EVENTS[$c]}; ovf=${OVF[$c]}; }
  [[ $c == fatrace ]] && ev="${EVENTS[$c]} lines"
  printf '%-8s %12.0f %10.0f..%-10.0f %9s %8.2f %14s %10s\n' "$c" "$mean" "${MIN[$c]}" \
    "${MAX[$c]}" "$ratio" "$(awk -v t="${CPU[$c]}" -v hz="$HZ" 'BEGIN { print t / hz }')" "$ev" "$ovf"
done
echo "(cpu s: the watcher's user+system time over all its runs, untimed clean-up included;"
echo " events: sensor = write events emitted for all runs, incl. the writer's untimed deletes;"
echo " fatrace = its log lines naming file_writer; $((FILES * ROUNDS)) files written per contender)"
