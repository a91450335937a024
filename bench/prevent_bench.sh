#!/usr/bin/env bash
# prevent_bench.sh: what does drift prevention cost an exec in a container, and how long
# does an exec wait for its verdict?
#
# Two static spawners (bench/spawner.c, vfork+exec+wait in a loop, one per core) run INSIDE
# a container of a CRI pod on a private containerd and exec a static no-op (bench/noop.c);
# both are in the image (lower layer), so every contender lets them run. Contenders, in
# ROUNDS interleaved rounds of SECONDS each (order rotated per round):
#   none            no listener                                                (the ceiling)
#   null-perm       bench/null_perm_listener.c: the same filesystem mark, every exec allowed
#                   at once (blocking read, write, close; SCHED_FIFO 1): the floor of any
#                   fanotify permission listener, what holding an exec costs by itself
#   sensor-prevent  driftwatch-sensor --audit-mode off --prevent drift, marks on the
#                   containerd root's filesystem, CRI of the private containerd (the product)
#   sensor-watch    the same sensor without --prevent: the write watcher's own share
#   sensor-prevent-open  --prevent drift --prevent-events open: FAN_OPEN_PERM, the path of
#                   kernels before 5.0 (every open waits for a verdict; exec opens told apart)
#   fapolicyd       Debian's fapolicyd (1.1.7) in the foreground (--debug-deny), private
#                   config in a private mount namespace (below), filesystem mark on ext4
# Prints exec/s per contender (median over rounds, min..max), the ratios to none, each
# listener's CPU per exec, whether a binary dropped in the container was refused (round 1),
# execs that failed (a wrongful denial stops a spawner), and the sensor's verdict latency
# from /status (summed over its rounds: buckets, p50/p99 estimated within them, the max).
# Targets: sensor-prevent >= 95% of none; verdict p99 <= 100 us. A JSON line ends the output.
#
# fapolicyd's policy (compiled.rules; trust = file, integrity = sha256):
#   allow perm=execute uid=BENCH_UID : trust=1      the image's files, by path, size, sha256
#   deny  perm=execute uid=BENCH_UID : all          anything else the container runs
#   allow perm=any all : all                        the host (and every open) as before
# fapolicyd has no notion of a container: the rules single out the spawners' user (user
# dwbench, BENCH_UID, default 4242, in the image; busybox su switches to it in the container,
# in every contender), since denying untrusted execs machine-wide would stop everything else
# on the host. It holds FAN_OPEN_PERM and
# FAN_OPEN_EXEC_PERM for the whole filesystem (every open on it waits for it), as deployed.
# Its paths are fixed (/etc/fapolicyd, /var/lib/fapolicyd, /run, /var/log), so it runs in a
# mount namespace of its own with private directories bound over them; the system's
# /etc/fapolicyd is never read or changed.
#
# Usage (root):  bench/prevent_bench.sh [BUILD_DIR]
#   env: ROUNDS=3 SECONDS=5 CONTENDERS="none null-perm sensor-prevent sensor-watch sensor-prevent-open fapolicyd"
#        DW_SENSOR=BUILD/sensor/driftwatch-sensor DW_CRI=BUILD/tools/dw-cri BENCH_UID=4242
#        SENSOR_ARGS="extra sensor flags"  FAPOLICYD_DEBUG=1 (--debug: every decision logged)
#
# Global kernel state (DESIGN.md): permission events hold every exec (and, for fapolicyd,
# every open) on the marked filesystem, host included, until the listener answers. Each
# listener runs only during its own round, is started and stopped by its PID (bounded wait,
# then SIGKILL: the kernel allows whatever is pending when the group's fd closes), on every
# exit path, and a guard process SIGKILLs it should this script die without its exit steps.
# Audit is not touched (--audit-mode off; fapolicyd built without audit). Logs go to
# /dev/shm, off the watched filesystem.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
RUN_SECONDS=$(printenv SECONDS || echo 5) # $SECONDS is bash's clock: take the env value
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
BUILD=${1:-$REPO/build}
SENSOR=${DW_SENSOR:-$BUILD/sensor/driftwatch-sensor}
export DW_CRI=${DW_CRI:-$BUILD/tools/dw-cri}
BENCH_UID=${BENCH_UID:-4242}
FAPOLICYD=${FAPOLICYD:-/usr/sbin/fapolicyd}
read -r -a CONTENDERS <<<"${CONTENDERS:-none null-perm sensor-prevent sensor-watch sensor-prevent-open fapolicyd}"
read -r -a EXTRA_SENSOR_ARGS <<<"${SENSOR_ARGS:-}"
# The harness (die, note, processes by PID, exit steps) and the private containerd.
source "$REPO/tests/integration/containerd_env.sh"

[[ $EUID -eq 0 ]] || die "must run as root"
[[ $ROUNDS =~ ^[1-9][0-9]*$ && $RUN_SECONDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS and SECONDS must be positive integers"
[[ $BENCH_UID =~ ^[1-9][0-9]*$ ]] || die "BENCH_UID must be a positive number"
for c in gcc curl python3 unshare; do command -v "$c" >/dev/null || die "$c not found"; done
# fapolicyd, installed here when missing (not by scripts/install-deps.sh: only this bench
# wants it). Its package enables and starts a machine-wide service that denies every
# untrusted exec: where systemd runs, the unit is masked first so that it never starts.
if [[ " ${CONTENDERS[*]} " == *" fapolicyd "* && ! -x $FAPOLICYD ]] &&
    ! dpkg-query -W -f='${Status}' fapolicyd 2>/dev/null | grep -q 'install ok installed'; then
  note "installing fapolicyd (service masked)"
  [[ ! -d /run/systemd/system ]] || systemctl mask fapolicyd.service >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends fapolicyd >/dev/null ||
    note "fapolicyd could not be installed"
fi
declare -A SKIP
for c in "${CONTENDERS[@]}"; do
  case $c in
  none | null-perm) ;;
  sensor-prevent | sensor-watch | sensor-prevent-open) [[ -x $SENSOR ]] || SKIP[$c]="$SENSOR not built" ;;
  fapolicyd)
    if [[ ! -x $FAPOLICYD ]]; then
      SKIP[$c]="$FAPOLICYD not installed (apt-get install fapolicyd, its service masked)"
    elif ! id fapolicyd >/dev/null 2>&1 || [[ ! -d /etc/fapolicyd || ! -d /var/lib/fapolicyd ]]; then
      SKIP[$c]="the fapolicyd package's user or directories are missing"
    fi ;;
  *) die "unknown contender $c" ;;
  esac
done
[[ -x $DW_CRI ]] || die "$DW_CRI not built (cmake --build BUILD --target dw-cri)"
dw_ctd_check_deps || die "containerd harness dependencies missing"

T0=$(date +%s)
# Short path: containerd's socket lives under it (sun_path limit).
dw_harness dwpb
# shellcheck disable=SC2154  # tmp: set by dw_harness
TMP=$tmp
LOGS=$(mktemp -d /dev/shm/dwpb.XXXXXX)
if [[ -n ${KEEP:-} ]]; then dw_at_exit echo "kept $LOGS"; else dw_at_exit rm -rf "$LOGS"; fi
CTD=$TMP/ctd
HZ=$(getconf CLK_TCK)

# --- the listener of the current round, stopped on every path -----------------------------
LISTENER_PID= # the sensor or fapolicyd of the current round
GUARD_PID=    # its guard
STARTED=()    # every listener started, PID:START_TIME, checked at exit
start_time() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $20 }'; }
# guard PID SECONDS: a separate process that SIGKILLs PID (the same process: its start time)
# after SECONDS, for when this script is killed without running its exit steps.
guard() {
  local pid=$1 secs=$2 st i
  st=$(start_time "$pid")
  [[ -n $st ]] || return 0
  (
    trap - EXIT INT TERM
    for ((i = 0; i < secs; i++)); do
      sleep 1
      [[ $(start_time "$pid") == "$st" ]] || exit 0
    done
    echo "prevent_bench guard: PID $pid outlived ${secs}s: SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null
  ) </dev/null >/dev/null 2>>"$LOGS/guard.log" &
  GUARD_PID=$!
}
stop_listener() {
  if [[ -n $LISTENER_PID ]]; then
    # fapolicyd flushes its marks on SIGTERM; the sensor too. Past 10 s: SIGKILL.
    dw_stop_pid "$LISTENER_PID" 10 || note "listener $LISTENER_PID needed SIGKILL"
    LISTENER_PID=
  fi
  if [[ -n $GUARD_PID ]]; then
    kill -TERM "$GUARD_PID" 2>/dev/null || true
    wait "$GUARD_PID" 2>/dev/null || true
    GUARD_PID=
  fi
}
on_exit() {
  local p
  stop_listener
  for p in ${STARTED[@]+"${STARTED[@]}"}; do
    # The same process (its start time), not another that reused the PID.
    if dw_alive "${p%:*}" && [[ $(start_time "${p%:*}") == "${p#*:}" ]]; then
      note "WARNING: listener PID ${p%:*} still running: SIGKILL"
      kill -KILL "${p%:*}" 2>/dev/null
    fi
  done
  echo "total runtime: $(($(date +%s) - T0)) s"
}
# Exit steps run newest first: stop_listener (registered once containerd is up) before
# containerd's teardown, on_exit's checks last.
dw_at_exit on_exit

# --- setup: the image (busybox + spawner + no-op), containerd, a pod ---------------------
EXTRA=$TMP/extra
mkdir -p "$EXTRA/opt/dwbench" "$EXTRA/etc" "$EXTRA/dwbench"
gcc -O2 -static -o "$EXTRA/opt/dwbench/spawner" "$HERE/spawner.c"
gcc -O2 -static -o "$EXTRA/opt/dwbench/noop" "$HERE/noop.c"
gcc -O2 -Wall -Wextra -o "$TMP/null_perm_listener" "$HERE/null_perm_listener.c"
chmod 755 "$EXTRA/opt/dwbench"/*
chmod 1777 "$EXTRA/dwbench" # where the drift check drops its binary
# The bench user (the image's passwd and group, plus dwbench).
cat >"$EXTRA/etc/passwd" <<EOF
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
dwbench:x:$BENCH_UID:$BENCH_UID:driftwatch bench:/dwbench:/bin/sh
EOF
printf 'root:x:0:\nnogroup:x:65534:\ndwbench:x:%s:\n' "$BENCH_UID" >"$EXTRA/etc/group"
dw_ctd_up "$CTD" "$EXTRA" >/dev/null 2>&1 || die "containerd or the image failed (see $CTD/containerd.log)"
dw_at_exit stop_listener
uid=$(cat /proc/sys/kernel/random/uuid)
POD=$(dw_pod_run "$CTD" prevent-bench bench "$uid" "/kubepods/besteffort/pod$uid") || die "pod"
CID=$(dw_pod_container "$CTD" "$POD" app -- /bin/sleep 1000000) || die "container"
EXECN=0
# ctr exec as root. Never `ctr tasks exec --user`: ctr then mounts the container's snapshot a
# second time to read its /etc/passwd, and that overlay mount resets the workdir under the
# running container (dmesg: "upperdir is in-use"), whose copy-ups then fail with ENOENT.
in_pod_root() { # SECONDS CMD...: bounded
  local secs=$1
  shift
  EXECN=$((EXECN + 1))
  timeout -k 5 "$secs" ctr --address "$CTD/containerd.sock" -n "$DW_NS" tasks exec \
    --exec-id "pb$EXECN-$BASHPID-$RANDOM" --fifo-dir "$CTD/fifo" "$CID" "$@"
}
# in_pod SECONDS SCRIPT: sh -c SCRIPT as dwbench (BENCH_UID), switched by su in the container.
in_pod() { in_pod_root "$1" /bin/busybox su -s /bin/sh dwbench -c "$2"; }
# The container's CPU time (cpuacct, ns; cgroup v2: cpu.stat), for the other load's share.
CPID=$(dw_ctr_pid "$CTD" "$CID") || die "no task PID for the container"
CG=$(sed -n 's/^[0-9]*:[^:]*cpuacct[^:]*:\(.*\)$/\1/p' "/proc/$CPID/cgroup")
if [[ -n $CG && -r /sys/fs/cgroup/cpuacct$CG/cpuacct.usage ]]; then
  ctr_cpu_ns() { cat "/sys/fs/cgroup/cpuacct$CG/cpuacct.usage"; }
else
  CG=$(sed -n 's/^0::\(.*\)$/\1/p' "/proc/$CPID/cgroup")
  ctr_cpu_ns() { awk '$1 == "usage_usec" { print $2 * 1000 }' "/sys/fs/cgroup$CG/cpu.stat" 2>/dev/null || echo 0; }
fi

# fapolicyd's private tree (on /dev/shm: its own files stay off the filesystem it marks).
FA=$LOGS/fapolicyd
setup_fapolicyd() {
  local f
  mkdir -p "$FA/etc/rules.d" "$FA/etc/trust.d" "$FA/lib" "$FA/log"
  chown fapolicyd:fapolicyd "$FA/lib"
  # The package runs it as user fapolicyd with CAP_SYS_RESOURCE among the capabilities it
  # keeps; where the bounding set lacks it (some sandboxes) that switch fails: stay root
  # (fapolicyd.conf(5)'s default).
  local fa_user=fapolicyd
  if (((0x$(awk '/^CapBnd:/ { print $2 }' /proc/self/status) >> 24 & 1) == 0)); then
    fa_user=root
    FA_NOTE="runs as root: CAP_SYS_RESOURCE is not in the bounding set"
  fi
  # The package's defaults, but: trust only the file backend (Debian has no rpmdb), hash
  # checked; filesystem marks on ext4 (mount marks do not see execs in a container's own
  # mount namespace; the filesystem mark sees them on the layer's filesystem, as the sensor's).
  cat >"$FA/etc/fapolicyd.conf" <<EOF
permissive = 0
nice_val = 14
q_size = 640
uid = $fa_user
gid = $fa_user
do_stat_report = 1
detailed_report = 0
db_max_size = 50
subj_cache_size = 1549
obj_cache_size = 8191
watch_fs = $(findmnt -n -o FSTYPE -T "$CTD/root")
trust = file
integrity = sha256
syslog_format = rule,dec,perm,auid,pid,exe,:,path,ftype,trust
rpm_sha256_only = 0
allow_filesystem_mark = 1
EOF
  cat >"$FA/etc/compiled.rules" <<EOF
allow perm=execute uid=$BENCH_UID : trust=1
deny perm=execute uid=$BENCH_UID : all
allow perm=any all : all
EOF
  # The image's files as the container sees them (an exec's fd reads as the path inside the
  # container): path, size, sha256.
  {
    echo "# AUTOGENERATED FILE VERSION 2"
    for f in /bin/busybox /opt/dwbench/spawner /opt/dwbench/noop; do
      local src=$EXTRA$f
      [[ $f == /bin/busybox ]] && src=/bin/busybox
      echo "$f $(stat -c %s "$src") $(sha256sum "$src" | cut -d' ' -f1)"
    done
  } >"$FA/etc/fapolicyd.trust"
  cp "$FA/etc/compiled.rules" "$FA/etc/rules.d/10-dwbench.rules"
}
start_fapolicyd() { # log: sets LISTENER_PID, fails unless it listens with its marks set
  local log=$1 dbg=--debug-deny
  [[ -z ${FAPOLICYD_DEBUG:-} ]] || dbg=--debug
  # unshare without --fork execs: the PID we get is fapolicyd's.
  # shellcheck disable=SC2016  # expanded by that bash
  unshare --mount --propagation private -- /bin/bash -c '
    set -e
    mount -t tmpfs -o mode=0755,size=16m dwpb-run /run
    mkdir -m 0770 /run/fapolicyd && chgrp fapolicyd /run/fapolicyd
    mount --bind "$1/etc" /etc/fapolicyd
    mount --bind "$1/lib" /var/lib/fapolicyd
    mount --bind "$1/log" /var/log
    exec "$2" "$3"' dwpb-fapolicyd "$FA" "$FAPOLICYD" "$dbg" </dev/null >/dev/null 2>"$log" &
  LISTENER_PID=$!
  STARTED+=("$LISTENER_PID:$(start_time "$LISTENER_PID")")
  guard "$LISTENER_PID" $((RUN_SECONDS + 90))
  dw_wait --while "$LISTENER_PID" 30 grep -q "Starting to listen for events" "$log" &&
    dw_wait --while "$LISTENER_PID" 5 dw_fanotify_marked "$LISTENER_PID"
}

# The sensor's /status into FILE; true once it lists the container.
sensor_port() { sed -n 's/.*metrics on http:\/\/[^ ]* (port \([0-9]*\)).*/\1/p' "$1" | tail -1; }
sensor_status() { # LOG FILE
  local port
  port=$(sensor_port "$1")
  [[ -n $port ]] && curl -sf --max-time 5 "http://127.0.0.1:$port/status" >"$2" && grep -q "$CID" "$2"
}
start_sensor() { # log prevent(0/1/open)
  local log=$1
  local -a args=(--audit-mode off --capture /dev/null --watch-fs "$CTD/root"
    --cri-endpoint "unix://$CTD/containerd.sock" --metrics-address 127.0.0.1:0)
  [[ $2 == 0 ]] || args+=(--prevent drift)
  [[ $2 != open ]] || args+=(--prevent-events open)
  "$SENSOR" "${args[@]}" ${EXTRA_SENSOR_ARGS[@]+"${EXTRA_SENSOR_ARGS[@]}"} </dev/null >/dev/null 2>"$log" &
  LISTENER_PID=$!
  STARTED+=("$LISTENER_PID:$(start_time "$LISTENER_PID")")
  guard "$LISTENER_PID" $((RUN_SECONDS + 90))
  dw_wait --while "$LISTENER_PID" 20 dw_fanotify_marked "$LISTENER_PID" &&
    dw_wait --while "$LISTENER_PID" 20 sensor_status "$log" "$LOGS/status.json" || return 1
  # With --prevent: its banner says so and /status has the prevent object.
  [[ $2 == 0 ]] || { grep -q "prevent drift (fail" "$log" && grep -q '"prevent":{' "$LOGS/status.json"; }
}

start_null_perm() { # log
  "$TMP/null_perm_listener" "$CTD/root" </dev/null >"$1" 2>&1 &
  LISTENER_PID=$!
  STARTED+=("$LISTENER_PID:$(start_time "$LISTENER_PID")")
  guard "$LISTENER_PID" $((RUN_SECONDS + 90))
  dw_wait --while "$LISTENER_PID" 20 grep -qx marked "$1"
}

# --- the measurements ------------------------------------------------------------------------
declare -A RATES CPU TOTAL FAILS ENFORCED NOTES OTHERS
for c in "${CONTENDERS[@]}"; do
  RATES[$c]=; CPU[$c]=0; TOTAL[$c]=0; FAILS[$c]=0; ENFORCED[$c]=-; NOTES[$c]=; OTHERS[$c]=
done
PREV_SUM=$LOGS/prevent_sum.json # the sensor-prevent rounds' /status "prevent" objects, summed
echo '{}' >"$PREV_SUM"
add_prevent() { # STATUS_JSON: add its "prevent" counters to PREV_SUM (max for latency_max_ns)
  python3 - "$1" "$PREV_SUM" <<'PY'
import json, sys
p = json.load(open(sys.argv[1])).get("prevent", {})
s = json.load(open(sys.argv[2]))
for k, v in p.items():
    if not isinstance(v, (int, float)):
        continue
    s[k] = max(s.get(k, 0), v) if k == "latency_max_ns" else s.get(k, 0) + v
json.dump(s, open(sys.argv[2], "w"))
PY
}

# Both spawners in the container for RUN_SECONDS; sets EXECS (0 and FAILED if one failed).
run_spawners() {
  local c=$1 r=$2 i rc pids=()
  FAILED=
  for i in 1 2; do
    in_pod $((RUN_SECONDS + 60)) "exec /opt/dwbench/spawner $RUN_SECONDS /opt/dwbench/noop" \
      >"$LOGS/spawn$i" 2>"$LOGS/spawn$i.err" </dev/null &
    pids+=($!)
  done
  EXECS=0
  for i in 1 2; do
    rc=0
    wait "${pids[$((i - 1))]}" || rc=$?
    if ((rc != 0)) || ! [[ $(<"$LOGS/spawn$i") =~ ^[0-9]+$ ]]; then
      FAILED+="spawner $i: exit $rc $(tr '\n' ' ' <"$LOGS/spawn$i.err")"
    else
      EXECS=$((EXECS + $(<"$LOGS/spawn$i")))
    fi
  done
  [[ -z $FAILED ]] || { EXECS=0; note "round $r $c: $FAILED"; }
}

# A binary dropped in the container (upper layer) run by the container's user: 126 when
# refused. Prints the exit status.
drift_check() {
  local out
  local f=/dwbench/drift-$1
  out=$(in_pod 30 "cp /opt/dwbench/noop $f && chmod 755 $f && $f; echo rc=\$?; rm -f $f" </dev/null 2>&1) || true
  sed -n 's/^rc=//p' <<<"$out" | tail -1
}

run_one() { # contender round
  local c=$1 r=$2 log="$LOGS/$1-$2.log" cpu0=0 cpu1=0 d0 d1 rc
  case $c in
  sensor-prevent | sensor-watch | sensor-prevent-open)
    local how=0
    [[ $c != sensor-prevent ]] || how=1
    [[ $c != sensor-prevent-open ]] || how=open
    if ! start_sensor "$log" "$how"; then
      cat "$log" >&2
      stop_listener
      SKIP[$c]="did not start or did not see the container (log above)"
      return
    fi ;;
  null-perm)
    if ! start_null_perm "$log"; then
      SKIP[$c]="did not start: $(tail -n 3 "$log" | tr '\n' ' ')"
      stop_listener
      return
    fi ;;
  fapolicyd)
    if ! start_fapolicyd "$log"; then
      SKIP[$c]="did not start: $(tail -n 3 "$log" | tr '\n' ' ')"
      stop_listener
      return
    fi ;;
  esac
  [[ -z $LISTENER_PID ]] || cpu0=$(dw_cpu_ticks "$LISTENER_PID")
  local b0 i0 b1 i1 k0 k1
  read -r b0 i0 < <(dw_machine_ticks)
  k0=$(ctr_cpu_ns)
  run_spawners "$c" "$r"
  k1=$(ctr_cpu_ns)
  read -r b1 i1 < <(dw_machine_ticks)
  if [[ -n $LISTENER_PID ]]; then
    dw_alive "$LISTENER_PID" || { cat "$log" >&2; die "$c: the listener (PID $LISTENER_PID) died during the run"; }
    cpu1=$(dw_cpu_ticks "$LISTENER_PID")
  fi
  # The others' share of the CPUs meanwhile: busy time less the container's and the
  # listener's (its ctr client and shim count as others).
  OTHER=$(awk -v b=$((b1 - b0)) -v i=$((i1 - i0)) -v k=$((k1 - k0)) -v l=$((cpu1 - cpu0)) -v hz="$HZ" \
    'BEGIN { t = b + i; o = t > 0 ? (b - k * hz / 1e9 - l) / t * 100 : 0; printf "%.0f", o < 0 ? 0 : o }')
  OTHERS[$c]+=" $OTHER"
  if [[ $c == sensor-prevent ]]; then
    sensor_status "$log" "$LOGS/status.json" || die "sensor-prevent: no /status after the run"
    add_prevent "$LOGS/status.json"
    d0=$(json "$LOGS/status.json" 'j["prevent"]["denied"]')
    # Denials during the workload: the image's binaries only ran, so each is wrongful.
    ((d0 == 0)) || NOTES[$c]+=" round $r: $d0 denials during the workload;"
  fi
  if ((r == 1)); then
    rc=$(drift_check "$c")
    ENFORCED[$c]=$([[ $rc == 126 ]] && echo "yes" || echo "no (exit ${rc:-?})")
    if [[ $c == sensor-prevent ]] && sensor_status "$log" "$LOGS/status.json"; then
      d1=$(json "$LOGS/status.json" 'j["prevent"]["denied"]')
      ((d1 - d0 == 1)) || NOTES[$c]+=" drift check: sensor counted $((d1 - d0)) denials;"
    fi
  fi
  stop_listener
  if [[ $c == fapolicyd ]]; then
    # Its report, written on SIGTERM: decisions and its queue's depth.
    if [[ -f $FA/log/fapolicyd-access.log ]]; then
      FA_DENIED=$(sed -n 's/^Denied accesses: //p' "$FA/log/fapolicyd-access.log")
      FA_ALLOWED=$(sed -n 's/^Allowed accesses: //p' "$FA/log/fapolicyd-access.log")
      FA_QMAX=$(sed -n 's/^Inter-thread max queue depth //p' "$FA/log/fapolicyd-access.log")
      FA_SUM_DENIED=$((${FA_SUM_DENIED:-0} + ${FA_DENIED:-0}))
      FA_SUM_ALLOWED=$((${FA_SUM_ALLOWED:-0} + ${FA_ALLOWED:-0}))
      ((${FA_QMAX:-0} <= ${FA_MAX_Q:-0})) || FA_MAX_Q=$FA_QMAX
      rm -f "$FA/log/fapolicyd-access.log"
    fi
    local den
    den=$(grep -c 'dec=deny' "$log" || true)
    # The drift check's denial is expected; any other is wrongful.
    ((den <= (r == 1 ? 1 : 0))) || NOTES[$c]+=" round $r: $den denials logged (see $log);"
  fi
  if [[ -n $FAILED ]]; then
    FAILS[$c]=$((FAILS[$c] + 1))
    NOTES[$c]+=" round $r: $FAILED;"
    printf '  %-15s   FAILED: %s\n' "$c" "$FAILED"
    return
  fi
  CPU[$c]=$((CPU[$c] + cpu1 - cpu0))
  TOTAL[$c]=$((TOTAL[$c] + EXECS))
  RATES[$c]+=" $((EXECS / RUN_SECONDS))"
  printf '  %-15s %8d exec/s   (others used %s%% of the CPUs)\n' "$c" "$((EXECS / RUN_SECONDS))" "$OTHER"
}

[[ -n ${SKIP[fapolicyd]:-} ]] || ! printf '%s\n' "${CONTENDERS[@]}" | grep -qx fapolicyd || setup_fapolicyd

# Anything else running skews every figure: say so.
BUSY=$(dw_busy_pct)
((BUSY < 10)) || note "warning: the machine is ${BUSY}% busy before starting: figures will be noisy"
echo "prevent_bench: $ROUNDS rounds x ${RUN_SECONDS}s, 2 spawners in a pod (uid $BENCH_UID) exec'ing a static no-op, $(nproc) CPUs, kernel $(uname -r), ${BUSY}% busy before"
for c in "${CONTENDERS[@]}"; do [[ -z ${SKIP[$c]:-} ]] || note "skipping $c: ${SKIP[$c]}"; done
# Untimed warm-up (page cache, the shim's first exec).
out=$(in_pod 60 "id -u; exec /opt/dwbench/spawner 1 /opt/dwbench/noop" </dev/null 2>&1) || die "warm-up spawner failed: $out"
[[ $(head -1 <<<"$out") == "$BENCH_UID" ]] || die "the spawners would not run as uid $BENCH_UID: $out"
for ((r = 1; r <= ROUNDS; r++)); do
  echo "round $r/$ROUNDS"
  n=${#CONTENDERS[@]}
  for ((j = 0; j < n; j++)); do
    c=${CONTENDERS[$(((j + r - 1) % n))]} # rotate the order each round
    [[ -z ${SKIP[$c]:-} ]] || continue
    run_one "$c" "$r"
  done
done

# --- summary ---------------------------------------------------------------------------------
declare -A MED LO HI
for c in "${CONTENDERS[@]}"; do
  [[ -n ${RATES[$c]} ]] || continue
  # shellcheck disable=SC2086
  MED[$c]=$(dw_median ${RATES[$c]})
  # shellcheck disable=SC2086
  LO[$c]=$(printf '%s\n' ${RATES[$c]} | sort -n | head -1)
  # shellcheck disable=SC2086
  HI[$c]=$(printf '%s\n' ${RATES[$c]} | sort -n | tail -1)
done
pct() { [[ -n ${MED[$1]:-} && -n ${MED[$2]:-} ]] && awk -v a="${MED[$1]}" -v b="${MED[$2]}" 'BEGIN { printf "%.1f%%", 100 * a / b }' || echo -; }

echo
printf '%-15s %11s %15s %8s %14s %11s %9s %9s %s\n' contender "median ex/s" "min..max" "vs none" \
  "listener us/ex" "drift run" "failed" "others %" "notes"
for c in "${CONTENDERS[@]}"; do
  if [[ -z ${MED[$c]:-} ]]; then
    printf '%-15s skipped: %s\n' "$c" "${SKIP[$c]:-no data}${NOTES[$c]}"
    continue
  fi
  us=-
  [[ $c == none ]] || us=$(awk -v t="${CPU[$c]}" -v hz="$HZ" -v n="${TOTAL[$c]}" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
  drift=${ENFORCED[$c]}
  case $drift in yes) drift=denied ;; "no (exit 0)") drift=ran ;; esac
  # shellcheck disable=SC2086
  printf '%-15s %11s %15s %8s %14s %11s %9s %9s %s\n' "$c" "${MED[$c]}" "${LO[$c]}..${HI[$c]}" \
    "$(pct "$c" none)" "$us" "$drift" "${FAILS[$c]}/$ROUNDS" "$(dw_median ${OTHERS[$c]})" "${NOTES[$c]# }"
done
echo "(listener us/ex: its CPU over its rounds / the pod's execs (host execs and opens it"
echo " answered meanwhile included); drift run: a no-op copied to the container's /dwbench and run"
echo " as uid $BENCH_UID in round 1; failed: rounds a spawner's exec failed, i.e. a wrongful denial;"
echo " others %: median share of the CPUs used by anything but the pod and the listener during the"
echo " runs: with two cores shared, rounds that others loaded are slower for every contender)"
if [[ -n ${FA_SUM_ALLOWED:-} ]]; then
  echo "fapolicyd: ${FA_SUM_ALLOWED} accesses allowed, ${FA_SUM_DENIED} denied (opens and execs, whole" \
    "filesystem), inter-thread queue depth max ${FA_MAX_Q:-?} of 640${FA_NOTE:+; $FA_NOTE}"
fi

# The sensor's verdict latency (sensor-prevent's rounds, from reading an event to its answer).
LAT=$(python3 - "$PREV_SUM" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
keys = ["latency_le_10us", "latency_le_100us", "latency_le_1ms", "latency_le_10ms",
        "latency_le_100ms", "latency_over_100ms"]
bounds = [0, 10, 100, 1000, 10000, 100000]  # us, lower bound of each bucket
counts = [int(s.get(k, 0)) for k in keys]
n = sum(counts)
mx = s.get("latency_max_ns", 0) / 1000.0
def q(p):
    # The p-quantile, linear within its bucket (the last bucket ends at the max).
    if n == 0:
        return None
    rank, cum = p * n, 0
    for i, c in enumerate(counts):
        if c and cum + c >= rank:
            lo = bounds[i]
            hi = bounds[i + 1] if i + 1 < len(bounds) else max(mx, lo)
            return min(lo + (hi - lo) * (rank - cum) / c, mx) if mx else lo + (hi - lo) * (rank - cum) / c
        cum += c
    return mx
within100 = counts[0] + counts[1]
names = ["<= 10 us", "10-100 us", "0.1-1 ms", "1-10 ms", "10-100 ms", "> 100 ms"]
cum, p99_bucket = 0, "-"
for i, c in enumerate(counts):
    cum += c
    if n and cum >= 0.99 * n:
        p99_bucket = "p99 in " + names[i]
        break
out = {"answered": n, "buckets": dict(zip(keys, counts)), "p50_us": q(0.5), "p99_us": q(0.99),
       "max_us": mx, "p99_le_100us": (n > 0 and within100 >= 0.99 * n), "p99_bucket": p99_bucket}
for k in ("allowed", "image_mount", "denied", "outside_layers", "fail_answers", "deadline_answers",
          "undecided", "errors"):
    out[k] = s.get(k, 0)
print(json.dumps(out))
PY
)
if [[ -n ${MED[sensor-prevent]:-} ]]; then
  python3 - "$LAT" <<'PY'
import json, sys
l = json.loads(sys.argv[1])
n = l["answered"] or 1
b = l["buckets"]
print("sensor-prevent verdicts: %d answered (allowed %d, allowed from an image layer's mount %d, denied %d,"
      " outside layers %d, fail answers %d [deadline %d, undecided %d], errors %d)" % (
      l["answered"], l["allowed"], l["image_mount"], l["denied"],
      l["outside_layers"], l["fail_answers"], l["deadline_answers"], l["undecided"], l["errors"]))
print("  latency, event read -> answer: " + ", ".join(
    "%s %.2f%%" % (k.replace("latency_", ""), 100.0 * v / n) for k, v in b.items()))
fmt = lambda v: "-" if v is None else "%.1f" % v
print("  p50 ~%s us, p99 ~%s us (linear within buckets, %s), max %.1f us" % (
    fmt(l["p50_us"]), fmt(l["p99_us"]), l["p99_bucket"], l["max_us"]))
PY
fi
echo
if [[ -n ${MED[sensor-prevent]:-} ]]; then
  echo "sensor-prevent/none = $(pct sensor-prevent none) (target >= 95%)"
  echo "sensor-prevent/sensor-watch = $(pct sensor-prevent sensor-watch) (prevention's own share)"
  [[ -z ${MED[sensor-prevent-open]:-} ]] ||
    echo "sensor-prevent-open/none = $(pct sensor-prevent-open none) (open permission events, kernels before 5.0)"
  echo "verdict p99 <= 100 us: $(python3 -c 'import json,sys; l=json.loads(sys.argv[1]); print(("yes" if l["p99_le_100us"] else "NO") + " (p99 ~%.1f us, max %.1f us)" % (l["p99_us"] or 0, l["max_us"]))' "$LAT") (target)"
else
  echo "sensor-prevent/none = n/a (sensor-prevent: ${SKIP[sensor-prevent]:-no data})"
fi
echo "sensor-watch/none = $(pct sensor-watch none)"
[[ -z ${MED[null-perm]:-} ]] || echo "null-perm/none = $(pct null-perm none) (the floor: a listener that allows at once); sensor-prevent/null-perm = $(pct sensor-prevent null-perm)"
if [[ -n ${MED[fapolicyd]:-} ]]; then
  echo "fapolicyd/none = $(pct fapolicyd none); sensor-prevent/fapolicyd = $(pct sensor-prevent fapolicyd)"
else
  echo "fapolicyd: unavailable (${SKIP[fapolicyd]:-not run})"
fi

# One JSON line for scripts (bench/run).
{
  for c in "${CONTENDERS[@]}"; do
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$c" "${MED[$c]:-}" "${RATES[$c]# }" "${CPU[$c]}" \
      "${TOTAL[$c]}" "${FAILS[$c]}" "${ENFORCED[$c]}" "${SKIP[$c]:-}" "${OTHERS[$c]# }"
  done
} >"$LOGS/contenders.tsv"
python3 - "$LOGS/contenders.tsv" "$LAT" "$ROUNDS" "$RUN_SECONDS" "$HZ" "$BUSY" <<'PY'
import json, sys
lat = json.loads(sys.argv[2])
hz = float(sys.argv[5])
out = {"bench": "prevent", "rounds": int(sys.argv[3]), "seconds": int(sys.argv[4]),
       "busy_before_pct": int(sys.argv[6]), "contenders": {}}
for line in open(sys.argv[1]):
    c, med, rates, cpu, total, fails, enforced, skip, others = line.rstrip("\n").split("\t")
    d = {"median_execs_per_s": float(med) if med else None,
         "execs_per_s": [int(x) for x in rates.split()], "failed_rounds": int(fails),
         "others_cpu_pct": [int(x) for x in others.split()],
         "drift_denied": enforced == "yes" if enforced != "-" else None}
    if c != "none" and int(total):
        d["listener_cpu_us_per_exec"] = round(int(cpu) / hz * 1e6 / int(total), 2)
    if skip:
        d["skipped"] = skip
    out["contenders"][c] = d
m = {c: d["median_execs_per_s"] for c, d in out["contenders"].items()}
def ratio(a, b):
    return round(m[a] / m[b], 4) if m.get(a) and m.get(b) else None
out["prevent_over_none"] = ratio("sensor-prevent", "none")
out["prevent_over_none_target_ok"] = (out["prevent_over_none"] or 0) >= 0.95
out["watch_over_none"] = ratio("sensor-watch", "none")
out["prevent_open_over_none"] = ratio("sensor-prevent-open", "none")
out["fapolicyd_over_none"] = ratio("fapolicyd", "none")
out["null_perm_over_none"] = ratio("null-perm", "none")
out["prevent_over_null_perm"] = ratio("sensor-prevent", "null-perm")
out["verdict_latency"] = lat
print(json.dumps(out))
PY
