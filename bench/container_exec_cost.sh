#!/usr/bin/env bash
# container_exec_cost.sh: what does each audit reader cost per exec INSIDE a container?
#
# The product's main workload: short-lived processes in a container of a CRI pod on a private
# containerd. Two workloads, two copies each (one per core), for SECONDS per round:
#   shell    busybox sh loops exec'ing `/bin/busybox true` (fork+exec from a shell)
#   spawner  the static spawner (bench/spawner.c: vfork+exec+wait) exec'ing a static no-op
# Contenders, in ROUNDS interleaved rounds (order rotated per round):
#   off              audit disabled, no rules                          (the ceiling)
#   null-reader      do-nothing netlink reader + the sensor's rules     (audit's own cost)
#   sensor           driftwatch-sensor --audit-mode owner, as on a node: CRI of the private
#                    containerd, fanotify on its root's filesystem, attribution, process state
#   auditd-raw       auditd, log_format RAW + the sensor's rules
#   auditd-enriched  auditd, log_format ENRICHED + the sensor's rules
# Every contender but off runs the rule set the sensor installs, so the kernel's filtering
# and record generation cost the same and only the reader differs.
#
# Prints per workload: exec/s (median over rounds), the ratios to off and to the null
# reader, records lost, and the reader's CPU per exec (all its threads, from /proc). For the
# sensor also its CPU per exec by thread (dw-audit-read: netlink receive; dw-audit-parse:
# parsing, attribution and process state, writing the event; dw-fanotify, ...) and how its
# execs were attributed (/status). Targets (issue 18): sensor CPU per exec <= 0.3x auditd
# RAW's; sensor exec rate >= 95% of the null reader's. A JSON line ends the output.
#
# Usage (root):  bench/container_exec_cost.sh [BUILD_DIR]
#   env: ROUNDS=3 SECONDS=5 WORKLOADS="shell spawner" PROFILE=1 (0: no perf pass) CONTENDERS="off null-reader sensor
#        auditd-raw auditd-enriched" DW_SENSOR=BUILD/sensor/driftwatch-sensor
#        DW_SENSOR_B=other build's sensor (contender sensor-b: A/B in the same rounds)
#        SENSOR_ARGS="extra sensor flags"
#
# Global kernel state (DESIGN.md): audit settings and rules are saved first and restored on
# every exit path (checked at the end); never enabled 2 or failure 2; every reader is
# started and stopped by its PID; only rules this script (or its sensor) added are removed.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
RUN_SECONDS=$(printenv SECONDS || echo 5) # $SECONDS is bash's clock: take the env value
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
BUILD=${1:-$REPO/build}
SENSOR=${DW_SENSOR:-$BUILD/sensor/driftwatch-sensor}
SENSOR_B=${DW_SENSOR_B:-}
export DW_CRI=${DW_CRI:-$BUILD/tools/dw-cri}
KEY=dwcec
read -r -a WORKLOADS <<<"${WORKLOADS:-shell spawner}"
if [[ -n ${CONTENDERS:-} ]]; then
  read -r -a CONTENDERS <<<"$CONTENDERS"
else
  CONTENDERS=(off null-reader sensor auditd-raw auditd-enriched)
  [[ -z $SENSOR_B ]] || CONTENDERS+=(sensor-b)
fi
read -r -a EXTRA_SENSOR_ARGS <<<"${SENSOR_ARGS:-}"
source "$REPO/tests/integration/auditd_env.sh"
source "$REPO/tests/integration/containerd_env.sh"

[[ $EUID -eq 0 ]] || die "must run as root"
[[ $ROUNDS =~ ^[1-9][0-9]*$ && $RUN_SECONDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS and SECONDS must be positive integers"
for c in auditctl auditd gcc curl python3; do command -v "$c" >/dev/null || die "$c not found"; done
for w in "${WORKLOADS[@]}"; do [[ $w == shell || $w == spawner ]] || die "unknown workload $w"; done
declare -A SKIP
for c in "${CONTENDERS[@]}"; do
  case $c in
  off | null-reader | auditd-raw | auditd-enriched) ;;
  sensor) [[ -x $SENSOR ]] || SKIP[$c]="$SENSOR not built" ;;
  sensor-b) [[ -n $SENSOR_B && -x $SENSOR_B ]] || SKIP[$c]="DW_SENSOR_B not set or not built" ;;
  *) die "unknown contender $c" ;;
  esac
done
[[ -x $DW_CRI ]] || die "$DW_CRI not built (cmake --build BUILD --target dw-cri)"
[[ $(dw_audit_get enabled) != 2 ]] || die "audit is locked (enabled 2): nothing can be measured"
[[ $(dw_audit_pid) == 0 ]] || die "an audit daemon is registered (pid $(dw_audit_pid)): stop it first"

T0=$(date +%s)
dw_harness dwcec # short: containerd's socket lives under it
TMP=$tmp
HZ=$(getconf CLK_TCK)
dw_audit_save "$TMP"
INIT_L=$(<"$TMP/audit.rules")
[[ $INIT_L == "No rules" ]] || note "warning: audit rules already loaded; they weigh on every contender"

READER_PID= # the reader of the current contender
STARTED=()  # every reader started
add_rules() { dw_sensor_rule_set "$KEY" "$1"; } # auditd_env.sh
# Back to the state found at start between contenders: no reader, no rules of ours.
clean_audit() {
  local line
  { auditctl -l | grep -F -e "key=$KEY" || true; } | while read -r line; do dw_audit_delete_rule "$line" || true; done
  if [[ -n $READER_PID ]]; then dw_stop_pid "$READER_PID" || true; READER_PID=; fi
  dw_audit_clear_stale "$TMP/null_audit_reader" ${STARTED[@]+"${STARTED[@]}"}
  dw_audit_restore "$TMP"
}
on_exit() {
  local k
  clean_audit
  dw_audit_same "$TMP" >&2 || note "WARNING: audit settings or rules differ from the start (above)"
  for k in ${STARTED[@]+"${STARTED[@]}"}; do ! dw_alive "$k" || note "WARNING: PID $k still running"; done
  echo "total runtime: $(($(date +%s) - T0)) s"
}
dw_at_exit on_exit

# --- setup: the image (busybox + spawner + no-op), containerd, a pod --------------------------
for p in null_audit_reader; do gcc -O2 -static -o "$TMP/$p" "$HERE/$p.c"; done
EXTRA=$TMP/extra
mkdir -p "$EXTRA/opt/dwbench" "$EXTRA/dwbench"
gcc -O2 -static -o "$EXTRA/opt/dwbench/spawner" "$HERE/spawner.c"
gcc -O2 -static -o "$EXTRA/opt/dwbench/noop" "$HERE/noop.c"
chmod 755 "$EXTRA/opt/dwbench"/*
CTD=$TMP/ctd
dw_ctd_up "$CTD" "$EXTRA" >/dev/null 2>&1 || die "containerd or the image failed (see $CTD/containerd.log)"
dw_at_exit clean_audit # before containerd's teardown (exit steps run newest first)
uid=$(cat /proc/sys/kernel/random/uuid)
POD=$(dw_pod_run "$CTD" exec-cost bench "$uid" "/kubepods/besteffort/pod$uid") || die "pod"
CID=$(dw_pod_container "$CTD" "$POD" app -- /bin/sleep 1000000) || die "container"
CPID=$(dw_ctr_pid "$CTD" "$CID") || die "no task PID for the container"
EXECN=0
in_pod() { # SECONDS CMD...: ctr exec as root, bounded
  local secs=$1
  shift
  EXECN=$((EXECN + 1))
  timeout -k 5 "$secs" ctr --address "$CTD/containerd.sock" -n "$DW_NS" tasks exec \
    --exec-id "ce$EXECN-$BASHPID-$RANDOM" --fifo-dir "$CTD/fifo" "$CID" "$@"
}
# The shell loop stops when this file exists (the container's /dwbench, from the host).
STOP=/proc/$CPID/root/dwbench/stop
# shellcheck disable=SC2016  # the container's shell expands it
SHELL_LOOP='n=0; while [ ! -e /dwbench/stop ]; do /bin/busybox true; n=$((n + 1)); done; echo $n'

# Both copies of workload W for RUN_SECONDS; sets EXECS.
run_workload() {
  local w=$1 i pids=() out
  rm -f "$STOP"
  for i in 1 2; do
    if [[ $w == shell ]]; then
      in_pod $((RUN_SECONDS + 60)) /bin/busybox sh -c "$SHELL_LOOP" >"$TMP/w$i" 2>"$TMP/w$i.err" </dev/null &
    else
      in_pod $((RUN_SECONDS + 60)) /opt/dwbench/spawner "$RUN_SECONDS" /opt/dwbench/noop >"$TMP/w$i" 2>"$TMP/w$i.err" </dev/null &
    fi
    pids+=($!)
  done
  if [[ $w == shell ]]; then
    sleep "$RUN_SECONDS"
    touch "$STOP"
  fi
  EXECS=0
  for i in 1 2; do
    wait "${pids[$((i - 1))]}" || die "$w $i failed: $(cat "$TMP/w$i.err")"
    out=$(tr -d '[:space:]' <"$TMP/w$i")
    [[ $out =~ ^[0-9]+$ ]] || die "$w $i printed '$out': $(cat "$TMP/w$i.err")"
    EXECS=$((EXECS + out))
  done
  rm -f "$STOP"
}

start_reader() { # command...: start it in the background as the contender's reader
  "$@" >"$TMP/reader.log" 2>&1 </dev/null &
  READER_PID=$!
  STARTED+=("$READER_PID")
  dw_wait --while "$READER_PID" 10 dw_audit_held_by "$READER_PID"
}
sensor_status() { # FILE: the sensor's /status; true once it lists the container
  local port
  port=$(sed -n 's/.*metrics on http:\/\/[^ ]* (port \([0-9]*\)).*/\1/p' "$TMP/reader.log" | tail -1)
  [[ -n $port ]] && curl -sf --max-time 5 "http://127.0.0.1:$port/status" >"$1" && grep -q "$CID" "$1"
}
rules_changed() { [[ $(auditctl -l) != "$INIT_L" ]]; }
backlog_empty() { [[ $(dw_audit_get backlog) == 0 ]]; }
# CPU ticks of each thread of PID, by thread name: "name ticks" lines, names summed.
thread_ticks() {
  local t
  for t in /proc/"$1"/task/*; do
    sed 's/^[0-9]* (\(.*\)) [A-Za-z] \(.*\)$/\1 \2/' "$t/stat" 2>/dev/null | awk '{ print $1, $12 + $13 }'
  done | awk '{ s[$1] += $2 } END { for (k in s) print k, s[k] }'
}

start_contender() { # c: sets READER_PID (empty for off); false when it could not start
  local c=$1
  case $c in
  off) auditctl -e 0 >/dev/null ;;
  null-reader) start_reader "$TMP/null_audit_reader" && add_rules "$READER_PID" >/dev/null ;;
  auditd-raw | auditd-enriched)
    local fmt=RAW dir=$TMP/auditd-$c
    [[ $c == auditd-raw ]] || fmt=ENRICHED
    dw_auditd_config "$dir" "$fmt"
    start_reader auditd -n -c "$dir" && add_rules "$READER_PID" >/dev/null ;;
  sensor | sensor-b)
    local bin=$SENSOR
    [[ $c == sensor ]] || bin=$SENSOR_B
    start_reader "$bin" --audit-mode owner --capture /dev/null --metrics-address 127.0.0.1:0 \
      --cri-endpoint "unix://$CTD/containerd.sock" --watch-fs "$CTD/root" \
      ${EXTRA_SENSOR_ARGS[@]+"${EXTRA_SENSOR_ARGS[@]}"} &&
      dw_wait --while "$READER_PID" 10 rules_changed &&
      dw_wait --while "$READER_PID" 20 sensor_status "$TMP/status0.json" ;;
  esac
}

declare -A RATES CPU TOTAL LOST THREADS ATTR
for w in "${WORKLOADS[@]}"; do
  for c in "${CONTENDERS[@]}"; do RATES[$w,$c]=; CPU[$w,$c]=0; TOTAL[$w,$c]=0; LOST[$w,$c]=0; done
done
run_one() { # workload contender
  local w=$1 c=$2 cpu0=0 cpu1=0 lost0 t0=$TMP/threads0 t1=$TMP/threads1
  if ! start_contender "$c"; then
    cat "$TMP/reader.log" >&2
    SKIP[$c]="did not start (log above)"
    clean_audit
    return
  fi
  lost0=$(dw_audit_get lost)
  if [[ -n $READER_PID ]]; then
    cpu0=$(dw_cpu_ticks "$READER_PID")
    thread_ticks "$READER_PID" >"$t0"
  fi
  run_workload "$w"
  # Let the reader drain what the kernel still queues, so its CPU counts all of it.
  dw_wait 2 backlog_empty || true
  sleep 0.3
  if [[ -n $READER_PID ]]; then
    dw_alive "$READER_PID" || { cat "$TMP/reader.log" >&2; die "$c: the reader (PID $READER_PID) died"; }
    cpu1=$(dw_cpu_ticks "$READER_PID")
    thread_ticks "$READER_PID" >"$t1"
    if [[ $c == sensor* ]]; then
      # Per thread, summed over rounds: "name ticks" lines.
      THREADS[$w,$c]+=$(join -a2 -e0 -o 2.1,1.2,2.2 <(sort "$t0") <(sort "$t1") | awk '{ printf "%s %d\n", $1, $3 - $2 }')$'\n'
      sensor_status "$TMP/status.json" && ATTR[$w,$c]=$(json "$TMP/status.json" \
        '" ".join("%s %s" % (k, v) for k, v in j.get("enrich", {}).items() if k.startswith(("attributed_", "inherit", "cache_", "process_state_")))' 2>/dev/null || true)
    fi
  fi
  LOST[$w,$c]=$((LOST[$w,$c] + $(dw_audit_get lost) - lost0))
  CPU[$w,$c]=$((CPU[$w,$c] + cpu1 - cpu0))
  TOTAL[$w,$c]=$((TOTAL[$w,$c] + EXECS))
  RATES[$w,$c]+=" $((EXECS / RUN_SECONDS))"
  printf '  %-8s %-16s %8d exec/s\n' "$w" "$c" "$((EXECS / RUN_SECONDS))"
  clean_audit
  rm -rf "$TMP"/auditd-* # logs can be large
}

# Anything else running skews every figure: say so.
BUSY=$(dw_busy_pct)
((BUSY < 10)) || note "warning: the machine is ${BUSY}% busy before starting: figures will be noisy"
echo "container_exec_cost: $ROUNDS rounds x ${RUN_SECONDS}s, workloads ${WORKLOADS[*]} (2 copies each) in a pod, $(nproc) CPUs, kernel $(uname -r), ${BUSY}% busy before"
for c in "${CONTENDERS[@]}"; do [[ -z ${SKIP[$c]:-} ]] || note "skipping $c: ${SKIP[$c]}"; done
in_pod 60 /opt/dwbench/spawner 1 /opt/dwbench/noop >/dev/null </dev/null || die "warm-up spawner failed"
for ((r = 1; r <= ROUNDS; r++)); do
  echo "round $r/$ROUNDS"
  n=${#CONTENDERS[@]}
  for w in "${WORKLOADS[@]}"; do
    for ((j = 0; j < n; j++)); do
      c=${CONTENDERS[$(((j + r - 1) % n))]} # rotate the order each round
      [[ -z ${SKIP[$c]:-} ]] || continue
      run_one "$w" "$c"
    done
  done
done

# --- where the sensor's parser spends its time ------------------------------------------------
# One more shell-workload pass with the sensor, its dw-audit-parse thread sampled by perf with
# DWARF call graphs (apart from the rounds: sampling costs CPU). Inclusive shares of that
# thread, times its CPU per exec from the rounds, give each stage's cost per exec.
STAGES=
stage_profile() {
  local tid pp w=${WORKLOADS[0]}
  start_contender sensor || return 1
  tid=$(grep -lx dw-audit-parse /proc/"$READER_PID"/task/*/comm 2>/dev/null | head -1 | cut -d/ -f5)
  [[ -n $tid ]] || return 1
  perf record -q -F 999 --call-graph dwarf,16384 -t "$tid" -o "$TMP/perf.data" \
    -- sleep "$(((RUN_SECONDS + 1) / 2))" >/dev/null 2>&1 &
  pp=$!
  run_workload "$w"
  wait "$pp" || true
  clean_audit
  perf report -i "$TMP/perf.data" --children --sort sym -g none -q 2>/dev/null >"$TMP/perf.txt" || return 1
  # "stage<TAB>symbol" (demangled, without arguments' types): inclusive percentages.
  STAGES=$(python3 - "$TMP/perf.txt" <<'PY'
import re, sys
B = "driftwatch::AuditEventBuilder::"
E = "driftwatch::sensor::Enricher::"
# A stage sums symbols that do not call each other.
stages = [("parse records (text to fields)", ["driftwatch::ParseNetlinkRecord"]),
          ("build events (fields to protobuf)", [B + f for f in ("AddSyscall", "AddExecve", "AddPath",
                                                                  "AddCwd", "AddSockaddr", "Finish")]),
          ("enrich (attribution, /proc, layers)", [E + "Enrich"]),
          ("  upper-layer test (openat2+fstatat)", [E + "InUpperLayer"]),
          ("  attribution lookups", [E + "Lookup"]),
          ("  liveness (null signal, /proc stat)", [E + "OpenProcess"]),
          ("  pid cursor", [E + "ObserveCursor"]),
          ("container announce", ["driftwatch::sensor::ContainerRegistry::Announce"]),
          ("output (serialize, write)", ["driftwatch::sensor::Output::Write"])]
pct = {}
for line in open(sys.argv[1]):
    m = re.match(r"\s*([\d.]+)%\s+[\d.]+%\s+\[[.k]\]\s+(.*)$", line)
    if m:
        sym = re.sub(r"\[abi:[^]]*\]", "", m.group(2)).strip()
        pct.setdefault(sym, float(m.group(1)))
# ParseNetlinkRecord ends in a tail call to ParseStampAndBody: then they are siblings.
outer, inner = pct.get("driftwatch::ParseNetlinkRecord", 0.0), pct.get("driftwatch::(anonymous namespace)::ParseStampAndBody", 0.0)
pct["driftwatch::ParseNetlinkRecord"] = outer if outer >= inner else outer + inner
for name, syms in stages:
    print("%s\t%.1f" % (name, sum(pct.get(x, 0.0) for x in syms)))
PY
)
}
if [[ ${PROFILE:-1} != 0 && -z ${SKIP[sensor]:-} && " ${CONTENDERS[*]} " == *" sensor "* ]]; then
  if ! command -v perf >/dev/null; then
    note "no perf (apt-get install linux-perf): no per-stage profile"
  elif ! stage_profile; then
    note "the per-stage profile failed (perf: $(tail -1 "$TMP/perf.txt" 2>/dev/null))"
  fi
fi

# --- summary ---------------------------------------------------------------------------------
declare -A MED US
for w in "${WORKLOADS[@]}"; do
  for c in "${CONTENDERS[@]}"; do
    [[ -n ${RATES[$w,$c]} ]] || continue
    # shellcheck disable=SC2086
    MED[$w,$c]=$(dw_median ${RATES[$w,$c]})
    [[ $c == off ]] || US[$w,$c]=$(awk -v t="${CPU[$w,$c]}" -v hz="$HZ" -v n="${TOTAL[$w,$c]}" 'BEGIN { printf "%.1f", (n ? t / hz * 1e6 / n : 0) }')
  done
done
pct() { [[ -n ${MED[$1,$2]:-} && -n ${MED[$1,$3]:-} ]] && awk -v a="${MED[$1,$2]}" -v b="${MED[$1,$3]}" 'BEGIN { printf "%.1f%%", 100 * a / b }' || echo -; }
ratio() { [[ -n ${US[$1,$2]:-} && -n ${US[$1,$3]:-} ]] && awk -v a="${US[$1,$2]}" -v b="${US[$1,$3]}" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }' || echo -; }
echo
for w in "${WORKLOADS[@]}"; do
  echo "workload $w:"
  printf '  %-16s %11s %8s %11s %8s %12s %14s\n' contender "median ex/s" "vs off" "vs null-rdr" lost "reader us/ex" "vs auditd-raw"
  for c in "${CONTENDERS[@]}"; do
    if [[ -z ${MED[$w,$c]:-} ]]; then
      printf '  %-16s skipped: %s\n' "$c" "${SKIP[$c]:-no data}"
      continue
    fi
    printf '  %-16s %11s %8s %11s %8s %12s %14s\n' "$c" "${MED[$w,$c]}" "$(pct "$w" "$c" off)" \
      "$(pct "$w" "$c" null-reader)" "${LOST[$w,$c]}" "${US[$w,$c]:--}" "$(ratio "$w" "$c" auditd-raw)"
  done
  for c in sensor sensor-b; do
    [[ -n ${THREADS[$w,$c]:-} ]] || continue
    printf '  %s CPU per exec by thread:' "$c"
    awk -v hz="$HZ" -v n="${TOTAL[$w,$c]}" 'NF == 2 { s[$1] += $2 } END {
      for (k in s) if (s[k] > 0) printf " %s %.1f us,", k, s[k] / hz * 1e6 / n; print "" }' <<<"${THREADS[$w,$c]}" | sed 's/,$//'
    [[ -z ${ATTR[$w,$c]:-} ]] || echo "  $c /status enrich (its last round): ${ATTR[$w,$c]}"
  done
  if [[ -n $STAGES && $w == "${WORKLOADS[0]}" ]]; then
    parse_us=$(awk -v hz="$HZ" -v n="${TOTAL[$w,sensor]}" '$1 == "dw-audit-parse" { s += $2 } END { printf "%.2f", n ? s / hz * 1e6 / n : 0 }' <<<"${THREADS[$w,sensor]}")
    echo "  sensor dw-audit-parse by stage (perf, inclusive; us per exec = share x $parse_us us):"
    awk -F'\t' -v t="$parse_us" '{ printf "    %-40s %5.1f%%  %5.2f us\n", $1, $2, $2 * t / 100 }' <<<"$STAGES"
  fi
done
echo "(reader us/ex: the reader's CPU, all threads, over its rounds / the container's execs;"
echo " vs auditd-raw: that CPU / auditd RAW's; lost: the kernel's audit lost counter's growth)"
echo
for w in "${WORKLOADS[@]}"; do
  echo "$w: sensor CPU/exec vs auditd-raw = $(ratio "$w" sensor auditd-raw) (target <= 0.30), vs null-reader = $(ratio "$w" sensor null-reader); sensor/null-reader exec rate = $(pct "$w" sensor null-reader) (target >= 95%)"
done

# One JSON line for scripts (bench/run).
{
  for w in "${WORKLOADS[@]}"; do
    for c in "${CONTENDERS[@]}"; do
      printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$w" "$c" "${MED[$w,$c]:-}" "${US[$w,$c]:-}" "${LOST[$w,$c]}" "${SKIP[$c]:-}"
    done
  done
} >"$TMP/summary.tsv"
python3 - "$TMP/summary.tsv" "$ROUNDS" "$RUN_SECONDS" "$BUSY" <<'PY'
import json, sys
out = {"bench": "container_exec_cost", "rounds": int(sys.argv[2]), "seconds": int(sys.argv[3]),
       "busy_before_pct": int(sys.argv[4]), "workloads": {}}
for line in open(sys.argv[1]):
    w, c, med, us, lost, skip = line.rstrip("\n").split("\t")
    d = out["workloads"].setdefault(w, {})
    d[c] = {"median_execs_per_s": float(med) if med else None,
            "reader_cpu_us_per_exec": float(us) if us else None, "lost": int(lost)}
    if skip:
        d[c]["skipped"] = skip
for w, d in out["workloads"].items():
    g = lambda c, k: (d.get(c) or {}).get(k)
    s, a, n = g("sensor", "reader_cpu_us_per_exec"), g("auditd-raw", "reader_cpu_us_per_exec"), g("null-reader", "reader_cpu_us_per_exec")
    d["sensor_cpu_over_auditd_raw"] = round(s / a, 3) if s and a else None
    d["sensor_cpu_over_null_reader"] = round(s / n, 3) if s and n else None
    sr, nr = g("sensor", "median_execs_per_s"), g("null-reader", "median_execs_per_s")
    d["sensor_rate_over_null_reader"] = round(sr / nr, 4) if sr and nr else None
    d["cpu_target_ok"] = d["sensor_cpu_over_auditd_raw"] is not None and d["sensor_cpu_over_auditd_raw"] <= 0.3
    d["rate_target_ok"] = d["sensor_rate_over_null_reader"] is not None and d["sensor_rate_over_null_reader"] >= 0.95
print(json.dumps(out))
PY
