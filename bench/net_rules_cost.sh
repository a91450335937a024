#!/usr/bin/env bash
# net_rules_cost.sh: what do audit rules for network syscalls cost?
#
# With the do-nothing netlink reader (null_audit_reader) holding the audit pid, as in
# exec_rate.sh, measures the loopback connect() rate (connect_storm, 2 in parallel) and the
# exec rate (2 spawners of a static no-op) under each rule set, in ROUNDS interleaved rounds
# of SECONDS per measurement (order rotated per round so drift hits every rule set alike):
#   off                    audit disabled, no rules                          (ceiling)
#   exec-only              the sensor's exec/chmod rules, as exec_rate.sh installs them
#   exec+net-all           + connect,accept,accept4,bind,listen exits (b32: + socketcall)
#   exec+net-success       the same with -F success=1
#   exec+net-connect-only  + connect only, every result (b32: + socketcall with a0=3, connect)
#   sensor-connect         driftwatch-sensor as the reader, owner mode with its own rules and
#                          --audit-network connect, enriching every event as on
#                          a node (--fanotify-mode off --no-cri, a spool in a temp dir); its
#                          CPU per connect is printed
#   sensor-off             the same with --audit-network off (its exec rules only)
# then, with a counting reader (net_record_count), how many connect records each net rule set
# yields per connect() call in each connect mode: a success=1 filter drops the non-blocking
# connects, which return EINPROGRESS (success=no), and the refused ones.
#
# Usage (root):  bench/net_rules_cost.sh
#   env: ROUNDS=3 SECONDS=5
#        MODES="tcp nonblock"  connect_storm modes timed (tcp nonblock refused udp)
#        RULESETS              the rule sets to time, space-separated (default: all five)
#        VERIFY_SECONDS=1      per mode and rule set in the record count (0: skip it)
#        BACKLOG_LIMIT=N       set audit backlog_limit for the run (default: keep)
#        BACKLOG_WAIT_TIME=N   set audit backlog_wait_time for the run (default: keep; the
#                              sensor runs with BACKLOG_LIMIT=8192 BACKLOG_WAIT_TIME=0: a
#                              full queue drops records instead of stalling the caller)
#        LOCK_WAIT=900         seconds to wait for /tmp/dw-kernel.lock
#
# Audit state is global to the machine (DESIGN.md, "Global kernel state"): the whole run holds
# /tmp/dw-kernel.lock; it never sets enabled 2 or failure 2, refuses to run beside an audit
# daemon it did not start, deletes only the rules it added (auditctl -d with the very spec it
# added), stops only the PIDs it started, and restores enabled, backlog_limit and
# backlog_wait_time on exit, also on failure or Ctrl-C.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
RUN_SECONDS=$(printenv SECONDS || echo 5) # $SECONDS is bash's clock: take the env value
read -r -a MODES <<<"${MODES:-tcp nonblock}"
ALL_RULESETS=(off exec-only exec+net-all exec+net-success exec+net-connect-only sensor-connect sensor-off)
SENSOR=${DW_SENSOR:-$(cd "$(dirname "$0")/.." && pwd)/build/sensor/driftwatch-sensor}
read -r -a RULESETS <<<"${RULESETS:-${ALL_RULESETS[*]}}"
VERIFY_SECONDS=${VERIFY_SECONDS:-1}
VERIFY_MODES=(tcp nonblock refused udp)
BACKLOG_LIMIT=${BACKLOG_LIMIT:-}
BACKLOG_WAIT_TIME=${BACKLOG_WAIT_TIME:-}
LOCK=/tmp/dw-kernel.lock
LOCK_WAIT=${LOCK_WAIT:-900}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
KEY=dwnetbench
source "$REPO/tests/integration/harness.sh"

[[ $EUID -eq 0 ]] || die "must run as root"
[[ $ROUNDS =~ ^[1-9][0-9]*$ && $RUN_SECONDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS and SECONDS must be positive integers"
[[ $VERIFY_SECONDS =~ ^[0-9]+$ ]] || die "VERIFY_SECONDS must be an integer"
for m in "${MODES[@]}"; do [[ " ${VERIFY_MODES[*]} " == *" $m "* ]] || die "unknown mode $m"; done
for c in "${RULESETS[@]}"; do [[ " ${ALL_RULESETS[*]} " == *" $c "* ]] || die "unknown rule set $c"; done
for c in auditctl ausyscall gcc flock; do command -v "$c" >/dev/null || die "$c not found"; done

# The kernel lock for the whole run (fd 9; the processes we start do not inherit it).
exec 9>>"$LOCK"
if ! flock -n 9; then
	note "waiting up to $LOCK_WAIT s for $LOCK (another test is using audit or fanotify)"
	flock -w "$LOCK_WAIT" 9 || die "could not take $LOCK"
fi

T0=$(date +%s)
[[ $(dw_audit_get enabled) != 2 ]] || die "audit is locked (enabled 2): nothing can be measured"
[[ $(dw_audit_pid) == 0 ]] || die "an audit daemon is registered (pid $(dw_audit_pid)); it is not ours: stop it first"
if AUDITD=$(pgrep -x auditd); then die "auditd is running (PID ${AUDITD//$'\n'/ }); it is not ours: stop it first"; fi
dw_harness dwnetbench
TMP=$tmp
auditctl -s >"$TMP/audit.status"
auditctl -l >"$TMP/audit.rules"
saved() { awk -v k="$1" '$1 == k { print $2 }' "$TMP/audit.status"; }
INIT_L=$(<"$TMP/audit.rules")
[[ $INIT_L == "No rules" ]] || note "warning: audit rules already loaded; they weigh on every rule set"
RUN_BACKLOG=${BACKLOG_LIMIT:-$(saved backlog_limit)}
RUN_WAIT_TIME=${BACKLOG_WAIT_TIME:-$(saved backlog_wait_time)}

READER_PID= # the null or counting reader of the current rule set
STARTED=()  # every PID we started
WORKERS=()  # the connect storms or spawners running now
OURS=()     # every audit rule we added and have not deleted yet, as its auditctl -a words

add_rule() { # the words after auditctl -a
	auditctl -a "$@" >/dev/null
	OURS+=("$*")
}

# Delete our rules, newest first, each with exactly the words it was added with.
delete_our_rules() {
	local i w left=()
	for ((i = ${#OURS[@]} - 1; i >= 0; i--)); do
		read -r -a w <<<"${OURS[i]}"
		auditctl -d "${w[@]}" >/dev/null 2>&1 || { note "could not delete rule: -a ${OURS[i]}"; left+=("${OURS[i]}"); }
	done
	OURS=("${left[@]}")
}

# The sensor's rule set (sensor/audit_rules.cc) as exec_rate.sh installs it, for a reader with
# PID $1: its own execs and chmods excluded, then execve/execveat, and chmods that add an exec bit.
add_exec_rules() {
	local a
	for a in b64 b32; do
		add_rule never,exit -F arch=$a -S execve,execveat,chmod,fchmod,fchmodat -F pid="$1" -k "$KEY"
	done
	for a in b64 b32; do
		add_rule always,exit -F arch=$a -S execve,execveat -k "$KEY"
		add_rule always,exit -F arch=$a -S chmod,fchmod -F 'a1&0x49' -k "$KEY"
		add_rule always,exit -F arch=$a -S fchmodat -F 'a2&0x49' -k "$KEY"
	done
}

# The syscall table of an audit arch, for ausyscall; none if the machine has no such ABI.
case $(uname -m) in
x86_64) declare -A TABLE=([b64]=x86_64 [b32]=i386) ;;
aarch64) declare -A TABLE=([b64]=aarch64 [b32]=arm) ;;
*) declare -A TABLE=([b64]=$(uname -m)) ;;
esac
# Those of the names (comma-separated) the arch has, comma-separated (i386 has no accept).
syscalls_of() { # ARCH NAMES
	local s out=()
	[[ -n ${TABLE[$1]:-} ]] || return 0
	for s in ${2//,/ }; do ausyscall "${TABLE[$1]}" "$s" --exact >/dev/null 2>&1 && out+=("$s"); done
	local IFS=,
	echo "${out[*]}"
}
add_net_rules() { # all|success|connect-only
	local a list
	for a in b64 b32; do
		case $1 in
		all) list=$(syscalls_of $a connect,accept,accept4,bind,listen,socketcall)
			[[ -z $list ]] || add_rule always,exit -F arch=$a -S "$list" -k "$KEY" ;;
		success) list=$(syscalls_of $a connect,accept,accept4,bind,listen,socketcall)
			[[ -z $list ]] || add_rule always,exit -F arch=$a -S "$list" -F success=1 -k "$KEY" ;;
		connect-only)
			list=$(syscalls_of $a connect)
			[[ -z $list ]] || add_rule always,exit -F arch=$a -S "$list" -k "$KEY"
			# Old i386 binaries connect through socketcall(SYS_CONNECT = 3, ...).
			[[ -z $(syscalls_of $a socketcall) ]] || add_rule always,exit -F arch=$a -S socketcall -F a0=3 -k "$KEY" ;;
		esac
	done
}

start_reader() { # command...: in the background, as the audit daemon
	"$@" >"$TMP/reader.out" 2>"$TMP/reader.err" 9>&- &
	READER_PID=$!
	STARTED+=("$READER_PID")
	dw_wait --while "$READER_PID" 10 dw_audit_held_by "$READER_PID"
}

stop_workers() {
	local pid
	for pid in "${WORKERS[@]}"; do dw_stop_pid "$pid" || true; done
	WORKERS=()
}

# Back to the clean state between rule sets: no reader, none of our rules, pid 0, enabled
# as found, backlog_limit as the run wants it.
clean_audit() {
	stop_workers
	delete_our_rules # first, so nothing more is queued for a reader that is going away
	if [[ -n $READER_PID ]]; then dw_stop_pid "$READER_PID" || true; READER_PID=; fi
	dw_audit_clear_stale "$TMP/null_audit_reader" "${STARTED[@]}"
	[[ $(dw_audit_pid) == 0 ]] || note "warning: audit pid is $(dw_audit_pid), not 0"
	auditctl -e "$(saved enabled)" >/dev/null
	auditctl -b "$RUN_BACKLOG" >/dev/null
	auditctl --backlog_wait_time "$RUN_WAIT_TIME" >/dev/null
}

# At exit, also on failure or Ctrl-C: the machine as we found it, checked.
on_exit() {
	local k
	clean_audit
	auditctl -b "$(saved backlog_limit)" >/dev/null
	auditctl --backlog_wait_time "$(saved backlog_wait_time)" >/dev/null
	dw_audit_same "$TMP" >&2 || note "WARNING: audit settings or rules differ from the start (above)"
	for k in "${STARTED[@]}"; do dw_alive "$k" && note "WARNING: PID $k still running"; done
	echo "audit rules after:  $(auditctl -l | paste -sd';')"
	echo "total runtime: $(($(date +%s) - T0)) s"
}
dw_at_exit on_exit

# Set up rule set $1 with the reader command $2...; "off" disables audit and starts nothing.
setup() {
	local c=$1
	shift
	if [[ $c == off ]]; then auditctl -e 0 >/dev/null; return; fi
	if [[ $c == sensor-* ]]; then # the sensor installs (and removes) its own rules
		[[ -x $SENSOR ]] || die "no sensor at $SENSOR (DW_SENSOR)"
		mkdir -p "$TMP/spool"
		start_reader "$SENSOR" --audit-mode owner --audit-network "${c#sensor-}" --fanotify-mode off \
			--no-cri --spool-dir "$TMP/spool" --metrics-address 127.0.0.1:0 \
			--audit-state-file "$TMP/sensor-audit-state" ||
			die "$c: the sensor did not register as audit daemon ($(cat "$TMP/reader.err"))"
		return
	fi
	start_reader "$@" || die "$c: the reader did not register as audit daemon"
	add_exec_rules "$READER_PID"
	case $c in
	exec+net-all) add_net_rules all ;;
	exec+net-success) add_net_rules success ;;
	exec+net-connect-only) add_net_rules connect-only ;;
	esac
}

# Run 2 copies of a workload (command...) for RUN_SECONDS; sets DONE to their total count.
run_pair() {
	local pid
	"$@" >"$TMP/w1" 2>"$TMP/w1.err" 9>&- &
	WORKERS=($!)
	"$@" >"$TMP/w2" 2>"$TMP/w2.err" 9>&- &
	WORKERS+=($!)
	for pid in "${WORKERS[@]}"; do wait "$pid" || { cat "$TMP"/w?.err >&2; die "$* failed"; }; done
	WORKERS=()
	DONE=$(($(<"$TMP/w1") + $(<"$TMP/w2")))
}

backlog_empty() { [[ $(dw_audit_get backlog) == 0 ]]; }

declare -A RATES LOST WAIT READER_US
run_ruleset() {
	local c=$1 m lost0 wait0 line lost wait
	setup "$c" "$TMP/null_audit_reader"
	printf -v line '  %-22s' "$c"
	lost0=$(dw_audit_get lost)
	wait0=$(dw_audit_get backlog_wait_time_actual)
	local t0 t1 reader_cpu
	for m in "${MODES[@]}"; do
		[[ -z $READER_PID ]] || t0=$(awk '{ print $14 + $15 }' "/proc/$READER_PID/stat")
		run_pair "$TMP/connect_storm" "$m" "$RUN_SECONDS"
		RATES[$c|$m]+=" $((DONE / RUN_SECONDS))"
		line+=$(printf ' %s %7d conn/s ' "$m" "$((DONE / RUN_SECONDS))")
		if [[ $c == sensor-* ]]; then # the reader's CPU per connect, us (clock ticks of 10 ms)
			t1=$(awk '{ print $14 + $15 }' "/proc/$READER_PID/stat")
			reader_cpu=$(((t1 - t0) * 10000000 / (DONE > 0 ? DONE : 1)))
			READER_US[$c|$m]+=" $((reader_cpu / 1000))"
			line+=$(printf '(sensor %d.%03d us/conn) ' "$((reader_cpu / 1000))" "$((reader_cpu % 1000))")
		fi
	done
	run_pair "$TMP/spawner" "$RUN_SECONDS" "$TMP/noop"
	RATES[$c|exec]+=" $((DONE / RUN_SECONDS))"
	dw_wait 2 backlog_empty || true
	lost=$(($(dw_audit_get lost) - lost0))
	wait=$(($(dw_audit_get backlog_wait_time_actual) - wait0))
	LOST[$c]=$((${LOST[$c]:-0} + lost))
	WAIT[$c]=$((${WAIT[$c]:-0} + wait))
	[[ $c == off ]] || dw_alive "$READER_PID" || die "$c: the reader (PID $READER_PID) died during the run"
	printf '%s exec %6d/s  lost +%d  wait +%d\n' "$line" "$((DONE / RUN_SECONDS))" "$lost" "$wait"
	clean_audit
}

# Build, as exec_rate.sh does.
for p in noop spawner null_audit_reader connect_storm net_record_count; do
	gcc -O2 -static -o "$TMP/$p" "$HERE/$p.c"
done
auditctl -b "$RUN_BACKLOG" >/dev/null
auditctl --backlog_wait_time "$RUN_WAIT_TIME" >/dev/null

# Anything else running skews every figure: say so.
BUSY=$(dw_busy_pct)
((BUSY < 10)) || note "warning: the machine is ${BUSY}% busy before starting: figures will be noisy"
echo "net_rules_cost: $ROUNDS rounds x ${RUN_SECONDS}s per measurement, 2 connect storms (${MODES[*]}) then 2 spawners,"
echo "  null reader, backlog_limit $RUN_BACKLOG, backlog_wait_time $RUN_WAIT_TIME, $(nproc) CPUs, kernel $(uname -r)"
echo "audit rules before: $(paste -sd';' "$TMP/audit.rules")"
for ((r = 0; r < ROUNDS; r++)); do
	echo "round $((r + 1))/$ROUNDS"
	n=${#RULESETS[@]}
	for ((j = 0; j < n; j++)); do run_ruleset "${RULESETS[$(((j + r) % n))]}"; done
done

declare -A MED
# shellcheck disable=SC2086
for k in "${!RATES[@]}"; do MED[$k]=$(printf %.0f "$(dw_median ${RATES[$k]})"); done
pct() { # KEY-A KEY-B: A as a percentage of B
	[[ -n ${MED[$1]:-} && -n ${MED[$2]:-} ]] && awk -v a="${MED[$1]}" -v b="${MED[$2]}" 'BEGIN { printf "%.1f%%", 100 * a / b }' || echo -
}
echo
echo "medians over $ROUNDS rounds; ratios to exec-only; lost: records the kernel dropped, wait: jiffies"
echo "callers slept on a full backlog queue (sums over the rounds)"
hdr=$(printf '%-22s' "rule set")
for m in "${MODES[@]}" exec; do
	u=conn/s; [[ $m != exec ]] || u=exec/s
	hdr+=$(printf ' %14s %8s' "$m $u" "ratio")
done
printf '%s %8s %8s\n' "$hdr" lost wait
for c in "${RULESETS[@]}"; do
	row=$(printf '%-22s' "$c")
	for m in "${MODES[@]}" exec; do row+=$(printf ' %14s %8s' "${MED[$c|$m]}" "$(pct "$c|$m" "exec-only|$m")"); done
	printf '%s %8s %8s\n' "$row" "${LOST[$c]}" "${WAIT[$c]}"
done
echo "note: non-blocking connects (Go, Node, Java NIO, ...) return EINPROGRESS (success=no), so a"
echo "      success=1 filter does not record them; nor refused connects (the count below checks it)."

# Record count: connect records per connect() call, per net rule set and connect mode.
if ((VERIFY_SECONDS > 0)); then
	NR_CONNECT=$(ausyscall "${TABLE[b64]}" connect --exact)
	echo
	echo "connect records per connect() call (counting reader, ${VERIFY_SECONDS}s, 1 storm per mode; nonblock connects return EINPROGRESS):"
	printf '%-22s %-9s %9s %10s %8s  %s\n' "rule set" mode connects records "rec/call" "connect records by result"
	for c in exec+net-all exec+net-success exec+net-connect-only; do
		for m in "${VERIFY_MODES[@]}"; do
			setup "$c" "$TMP/net_record_count" "$KEY"
			"$TMP/connect_storm" "$m" "$VERIFY_SECONDS" >"$TMP/w1" 2>/dev/null 9>&- || die "connect_storm $m failed"
			dw_wait 2 backlog_empty || true
			sleep 0.2
			dw_stop_pid "$READER_PID" || true
			READER_PID=
			calls=$(<"$TMP/w1")
			recs=$(awk -v s="syscall=$NR_CONNECT" '$1 == s { sub(/count=/, "", $3); n += $3 } END { print n + 0 }' "$TMP/reader.out")
			by=$(awk -v s="syscall=$NR_CONNECT" '$1 == s { sub(/count=/, "", $3); printf "%s%s:%s", sep, ($2 == "exit=0" ? "ok" : $2), $3; sep = " " }' "$TMP/reader.out")
			printf '%-22s %-9s %9d %10d %8s  %s\n' "$c" "$m" "$calls" "$recs" \
				"$(awk -v r="$recs" -v n="$calls" 'BEGIN { printf "%.2f", n ? r / n : 0 }')" "${by:--}"
			clean_audit
			[[ $c$m != exec+net-successnonblock ]] || SUCCESS_NB="$recs of $calls"
		done
	done
	echo "(exit=-115 is EINPROGRESS, exit=-111 ECONNREFUSED)"
	echo "success=1 filter and non-blocking connects: ${SUCCESS_NB%% of*} records for ${SUCCESS_NB##*of } connect() calls:" \
		"$( ((${SUCCESS_NB%% of*} == 0)) && echo "every EINPROGRESS connect is missed" || echo "some are recorded")"
fi
