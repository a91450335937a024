# shellcheck shell=bash
# harness.sh: the one harness of the integration tests, and of the benchmarks where they do
# the same. Source it, then `dw_harness PREFIX`. The checks have short names, the rest dw_.
# Uses $tmp and, to start daemons, $build (the build directory).
#   dw_build BUILD [VAR...]    build=BUILD; collector, sensor, loadgen, dw: its binaries;
#                              DW_CRI exported; dies unless each VAR's binary is built
#   dw_harness PREFIX          tmp=/tmp/PREFIX.XXXXXX; at exit (also on failure, INT, TERM) the
#                              dw_at_exit steps run newest first, $tmp/*.log are shown if the
#                              test failed, $tmp is removed (not with KEEP=1, nor if still
#                              mounted on); the exit status is 1 if a check failed
#   dw_at_exit CMD...          add an exit step
#   ok / fail WHAT             a passed / failed check (fail goes on); die WHAT: fail, exit now
#   expect WHAT GOT WANT       ok if GOT is WANT; check WHAT CMD...: ok if CMD succeeds
#   skip WHY; note WHAT        exit 0 saying SKIP; say WHAT on stderr
#   dw_finish [MESSAGE]        exit 1 if a check failed, else print MESSAGE; step WHAT: timed
#   json FILE EXPR             Python EXPR over the JSON document j in FILE
#   metric NAME [LABELS-RE]    sum of NAME's samples at 127.0.0.1:$mport/metrics, 0 if none
#   dw_machine_ticks           the machine's busy and idle CPU time (ticks) now
#   dw_busy_pct                the machine's CPU use over the next second, in percent
#                              (benchmarks warn when others keep it busy)
#   dw_wait [--while PID] SECONDS CMD...  CMD every 0.1 s until it succeeds; 1 after SECONDS
#                              or once PID is gone (CMD tried a last time)
#   dw_start NAME CMD...       CMD in the background (stdin /dev/null): output to $tmp/NAME.log
#                              (appended), PID in $tmp/NAME.pid, stopped at exit
#   dw_wait_log NAME RE [N] [SECONDS]  until $tmp/NAME.log has N (1) lines matching grep RE,
#                              while NAME runs, for SECONDS (20) at most
#   dw_stop NAME [SECONDS]     dw_stop_pidfile $tmp/NAME.pid; dw_kill NAME: SIGKILL, a crash
#   dw_pid NAME                its PID
#   dw_collector_start NAME ARGS...  driftwatch-collector ARGS --port-file $tmp/NAME.port as
#                              NAME; waits until it listens (and serves /metrics, unless
#                              --metrics-address ""); sets port and mport
#   dw_sensor_start ARGS...    driftwatch-sensor ARGS --capture $tmp/capture as "sensor";
#                              waits until it reads audit
#   dw_audit_guard [--owner]   dw_audit_save $tmp, dw_audit_restore at exit; --owner: skip
#                              when an audit daemon holds the audit pid
#   dw_alive PID               it exists and is no zombie (PID 1 here reaps nothing)
#   dw_stop_pid PID [SECONDS]  SIGCONT+SIGTERM, bounded wait (10 s), SIGKILL (at once with 0);
#                              only our own children are reaped (dw_status: exit status);
#                              1 if SIGKILL was needed
#   dw_stop_pidfile FILE [SECONDS]  the same for the PID in FILE, which is removed
#   dw_mounts_under DIR        mount points at or below DIR
#   dw_hwm_kb PID, dw_cpu_ticks PID, dw_median VALUES...   peak RSS, CPU ticks, the median
[[ -z ${_dw_harness_sourced:-} ]] || return 0
_dw_harness_sourced=1
source "$(dirname "${BASH_SOURCE[0]}")/audit_state.sh"

_dw_failures=0
_dw_passes=0
_dw_exit_steps=()
declare -A _dw_started=()

# shellcheck disable=SC2034  # for the caller
dw_build() {
    local v
    build=$1
    collector=$build/collector/driftwatch-collector
    sensor=$build/sensor/driftwatch-sensor
    loadgen=$build/tools/dw-loadgen
    dw=$build/cli/driftwatch
    export DW_CRI=$build/tools/dw-cri
    for v in "${@:2}"; do [[ -x ${!v} ]] || die "${!v} not built"; done
}

dw_harness() {
    tmp=$(mktemp -d "/tmp/$1.XXXXXX")
    _dw_t0=$(date +%s.%N)
    trap _dw_exit EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

dw_at_exit() {
    local step
    printf -v step '%q ' "$@"
    _dw_exit_steps+=("$step")
}

_dw_exit() {
    local rc=$? i f
    set +e
    trap - EXIT INT TERM
    trap '' PIPE  # a reader of our output gone (| head) must not cut the clean-up short
    for ((i = ${#_dw_exit_steps[@]} - 1; i >= 0; i--)); do eval "${_dw_exit_steps[i]}"; done
    ((rc == 0 && _dw_failures > 0)) && rc=1
    ((rc != 0 && _dw_failures == 0)) && echo "FAIL: exit status $rc"
    if ((rc != 0)); then
        for f in "$tmp"/*.log; do [[ -f $f ]] && { echo "--- $f"; tail -n 40 "$f"; }; done
    fi
    ((_dw_passes + _dw_failures == 0)) || echo "$_dw_passes passed, $_dw_failures failed"
    if [[ -n ${KEEP:-} ]]; then
        echo "kept $tmp"
    elif [[ -n $(dw_mounts_under "$tmp") ]]; then
        echo "left $tmp in place: still has mounts"
    else
        rm -rf --one-file-system "$tmp"
    fi
    exit "$rc"
}

ok() { echo "ok: $*"; _dw_passes=$((_dw_passes + 1)); }
fail() { echo "FAIL: $*"; _dw_failures=$((_dw_failures + 1)); }
die() { fail "$@"; exit 1; }
skip() { echo "SKIP: $*"; exit 0; }
note() { local me=${0##*/}; echo "${me%.sh}: $*" >&2; }
expect() { if [[ $2 == "$3" ]]; then ok "$1"; else fail "$1: got '$2', want '$3'"; fi; }
check() {
    local what=$1
    shift
    if "$@"; then ok "${what%%$'\n'*}"; else fail "$what"; fi
}
dw_finish() {
    ((_dw_failures == 0)) || exit 1
    [[ -z ${1:-} ]] || echo "$1"
}
step() { printf '[%6.2fs] %s\n' "$(awk -v a="$(date +%s.%N)" -v b="$_dw_t0" 'BEGIN { print a - b }')" "$*"; }

json() { python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print($2)" "$1"; }
metric() {
    { curl -sf "http://127.0.0.1:$mport/metrics" || true; } | awk -v n="$1" -v l="${2:-}" '
        index($0, n " ") == 1 || index($0, n "{") == 1 {
            if (l == "" || substr($0, 1, length($0) - length($NF)) ~ l) s += $NF
        }
        END { printf "%.15g\n", s }'
}

_dw_now_us() { echo "${EPOCHREALTIME//[!0-9]/}"; }
dw_wait() {
    local pid='' end
    if [[ $1 == --while ]]; then pid=$2; shift 2; fi
    end=$(($(_dw_now_us) + $1 * 1000000))  # by the clock: CMD may take a while itself
    while :; do
        "${@:2}" && return 0
        [[ -z $pid ]] || dw_alive "$pid" || { "${@:2}"; return; }
        (($(_dw_now_us) < end)) || return 1
        sleep 0.1
    done
}

dw_start() {
    local name=$1
    shift
    "$@" >>"$tmp/$name.log" 2>&1 &
    echo $! >"$tmp/$name.pid"
    [[ -n ${_dw_started[$name]:-} ]] || dw_at_exit dw_stop "$name" 20
    _dw_started[$name]=1
}
dw_pid() { cat "$tmp/$1.pid"; }
dw_stop() { dw_stop_pidfile "$tmp/$1.pid" "${2:-10}"; }
dw_kill() { dw_stop_pidfile "$tmp/$1.pid" 0 || true; }

_dw_log_has() {
    local n
    n=$(grep -c -- "$2" "$1" 2>/dev/null) || true
    ((${n:-0} >= $3))
}
dw_wait_log() {
    local pid
    pid=$(cat "$tmp/$1.pid" 2>/dev/null) || pid=
    dw_wait ${pid:+--while "$pid"} "${4:-20}" _dw_log_has "$tmp/$1.log" "$2" "${3:-1}"
}

# shellcheck disable=SC2034  # port, mport: for the caller
dw_collector_start() {
    local name=$1 re="metrics on http\|running without metrics" n0 a prev='' metrics=1
    shift
    for a in "$@"; do
        [[ $prev == --metrics-address && -z $a ]] && metrics=
        prev=$a
    done
    touch "$tmp/$name.log"
    n0=$(grep -c -- "$re" "$tmp/$name.log" || true)
    rm -f "$tmp/$name.port"
    dw_start "$name" "$collector" --port-file "$tmp/$name.port" "$@"
    dw_wait --while "$(dw_pid "$name")" 15 test -s "$tmp/$name.port" || die "$name did not listen"
    port=$(cat "$tmp/$name.port")
    mport=
    [[ -n $metrics ]] || return 0
    dw_wait_log "$name" "$re" $((n0 + 1)) 15 || die "$name did not start its metrics server"
    mport=$(sed -n 's/.*metrics on http:.* (port \([0-9]*\)).*/\1/p' "$tmp/$name.log" | tail -1)
}

dw_sensor_start() {
    dw_start sensor "$sensor" --capture "$tmp/capture" "$@"
    dw_wait_log sensor "^driftwatch-sensor [0-9.]*: audit" 1 5 || die "the sensor did not start"
}

dw_audit_guard() {
    dw_audit_save "$tmp"
    dw_at_exit dw_audit_restore "$tmp"
    [[ ${1:-} != --owner || $(dw_audit_pid) == 0 ]] || skip "an audit daemon holds the audit pid"
}

dw_alive() {
    local st
    st=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null) || return 1
    [[ -n $st && $st != Z ]]
}

dw_machine_ticks() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat; }

dw_busy_pct() {
    local b0 i0 b1 i1
    read -r b0 i0 < <(dw_machine_ticks)
    sleep 1
    read -r b1 i1 < <(dw_machine_ticks)
    echo $(((b1 - b0) * 100 / (b1 - b0 + i1 - i0 + 1)))
}

dw_stop_pid() {
    local pid=$1 limit=${2:-10} i rc=0
    if ((limit == 0)); then
        kill -KILL "$pid" 2>/dev/null || true
    elif dw_alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        kill -CONT "$pid" 2>/dev/null || true  # a stopped process acts on SIGTERM once it runs
        for ((i = 0; i < limit * 10; i++)); do
            dw_alive "$pid" || break
            sleep 0.1
        done
        if dw_alive "$pid"; then
            echo "process $pid ignored SIGTERM for $limit s: killing it"
            kill -KILL "$pid" 2>/dev/null || true
            rc=1
        fi
    fi
    # shellcheck disable=SC2034  # for the caller
    wait "$pid" 2>/dev/null && dw_status=0 || dw_status=$?
    return $rc
}

dw_stop_pidfile() {
    local pid
    [[ -f $1 ]] || return 0
    pid=$(cat "$1")
    rm -f "$1"
    dw_stop_pid "$pid" "${2:-10}"
}

dw_mounts_under() { awk -v d="$1" '$5 == d || index($5, d "/") == 1' /proc/self/mountinfo; }

# PID holds a fanotify fd with at least one mark (its fdinfo lists "fanotify
# ino:/sdev:/mnt_id:" lines per mark).
dw_fanotify_marked() {
    local f
    for f in /proc/"$1"/fdinfo/*; do
        grep -qE '^fanotify (ino|sdev|mnt_id):' "$f" 2>/dev/null && return 0
    done
    return 1
}

dw_hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }
# utime+stime of a whole process (all threads), in clock ticks.
dw_cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
dw_median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
