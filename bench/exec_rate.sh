#!/usr/bin/env bash
# exec_rate.sh: how much exec throughput does each audit reader cost?
#
# Two parallel static spawners fork+exec a static no-op for SECONDS, once per contender,
# in ROUNDS interleaved rounds (order rotated per round so drift hits everyone alike):
#   off              audit disabled, no rules                        (hardware ceiling)
#   null-reader      do-nothing netlink reader + the sensor's rules   (audit's own cost)
#   sensor           driftwatch-sensor --audit-mode owner (own rules) (the product)
#   auditd-raw       auditd, log_format RAW + the sensor's rules
#   auditd-enriched  auditd, log_format ENRICHED + the sensor's rules
# Every contender runs the rule set the sensor installs (add_rules), so the kernel's
# filtering and record generation cost the same everywhere and only the reader differs.
#
# Usage (root):  bench/exec_rate.sh
#   env: ROUNDS=5 SECONDS=5 DW_SENSOR=build/sensor/driftwatch-sensor
#        BACKLOG_LIMIT=N  (optional: set audit backlog_limit for the run; default: keep)
#        DW_SENSOR_ARGS   the sensor's options beside its audit mode (default --audit-only:
#                         no container registry, so no enrichment; "--fanotify-mode off
#                         --no-cri" enriches every exec as on a node)
#        DW_SENSOR_B      a second sensor binary, contender sensor-b (A/B of two builds,
#                         side by side in the same rounds)
#        CONTENDERS       the contenders to run, space-separated (default: all but sensor-b,
#                         which is added when DW_SENSOR_B is set)
#
# Audit state is global to the machine (DESIGN.md, "Global kernel state"): this script
# never sets enabled 2 or failure 2, removes only rules it (or the sensor it started)
# added, stops only the PIDs it started, and restores enabled/backlog settings on exit,
# also on failure or Ctrl-C.
set -euo pipefail

ROUNDS=${ROUNDS:-5}
RUN_SECONDS=$(printenv SECONDS || echo 5) # $SECONDS is bash's clock: take the env value
BACKLOG_LIMIT=${BACKLOG_LIMIT:-}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
SENSOR=${DW_SENSOR:-$REPO/build/sensor/driftwatch-sensor}
KEY=dwbench
SENSOR_B=${DW_SENSOR_B:-}
read -r -a SENSOR_ARGS <<<"${DW_SENSOR_ARGS:---audit-only}"
if [[ -n ${CONTENDERS:-} ]]; then
	read -r -a CONTENDERS <<<"$CONTENDERS"
else
	CONTENDERS=(off null-reader sensor auditd-raw auditd-enriched)
	[[ -z $SENSOR_B ]] || CONTENDERS+=(sensor-b)
fi
HZ=$(getconf CLK_TCK)
# The harness, the audit state helpers and the private auditd config the tests use too.
source "$REPO/tests/integration/auditd_env.sh"

[[ $EUID -eq 0 ]] || die "must run as root"
[[ $ROUNDS =~ ^[1-9][0-9]*$ && $RUN_SECONDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS and SECONDS must be positive integers"
for c in auditctl auditd gcc; do command -v "$c" >/dev/null || die "$c not found"; done

T0=$(date +%s)
[[ $(dw_audit_get enabled) != 2 ]] || die "audit is locked (enabled 2): nothing can be measured"
[[ $(dw_audit_pid) == 0 ]] || die "an audit daemon is registered (pid $(dw_audit_pid)): stop it first"
dw_harness dwbench
TMP=$tmp
dw_audit_save "$TMP"
INIT_L=$(<"$TMP/audit.rules")
[[ $INIT_L == "No rules" ]] || note "warning: audit rules already loaded; they weigh on every contender"
RUN_BACKLOG=${BACKLOG_LIMIT:-$(dw_audit_get backlog_limit)}

READER_PID=       # the reader of the current contender (null reader, sensor or auditd)
STARTED=()        # every reader PID we started, to recognise a stale registration
SPAWNERS=()

add_rules() { dw_sensor_rule_set "$KEY" "$1"; } # auditd_env.sh

# Bring audit back to the clean state between contenders: no reader, no rules of ours,
# pid 0, enabled as found, backlog as the run wants it.
clean_audit() {
	local pid line
	for pid in "${SPAWNERS[@]}"; do dw_stop_pid "$pid" || true; done
	SPAWNERS=()
	# Our rule first, so nothing more is queued for a reader that is going away.
	{ auditctl -l | grep -F -e "key=$KEY" || true; } | while read -r line; do dw_audit_delete_rule "$line" || true; done
	if [[ -n $READER_PID ]]; then dw_stop_pid "$READER_PID" || true; READER_PID=; fi
	dw_audit_clear_stale "$TMP/null_audit_reader" "${STARTED[@]}"
	[[ $(dw_audit_pid) == 0 ]] || note "warning: audit pid is $(dw_audit_pid), not 0"
	# Rules not there at start (the sensor's, were it to leave any), enabled, backlog.
	dw_audit_restore "$TMP"
	auditctl -b "$RUN_BACKLOG" >/dev/null
}

# At exit, also on failure or Ctrl-C: the machine as we found it, checked.
on_exit() {
	local k
	clean_audit
	dw_audit_restore "$TMP"
	dw_audit_same "$TMP" >&2 || note "WARNING: audit settings or rules differ from the start (above)"
	for k in "${STARTED[@]}"; do dw_alive "$k" && note "WARNING: PID $k still running"; done
	echo "total runtime: $(($(date +%s) - T0)) s"
}
dw_at_exit on_exit

start_reader() { # command...: start it in the background as the contender's reader
	"$@" >"$TMP/reader.log" 2>&1 &
	READER_PID=$!
	STARTED+=("$READER_PID")
	dw_wait --while "$READER_PID" 10 dw_audit_held_by "$READER_PID"
}

start_auditd() { # RAW|ENRICHED
	local dir=$TMP/auditd-$1
	# Private config: own log dir, no plugins, and no action that could halt or suspend.
	dw_auditd_config "$dir" "$1"
	start_reader auditd -n -c "$dir"
}

# Run the two spawners; sets EXECS.
run_spawners() {
	local pid
	"$TMP/spawner" "$RUN_SECONDS" "$TMP/noop" >"$TMP/spawn1" &
	SPAWNERS=($!)
	"$TMP/spawner" "$RUN_SECONDS" "$TMP/noop" >"$TMP/spawn2" &
	SPAWNERS+=($!)
	for pid in "${SPAWNERS[@]}"; do wait "$pid" || die "spawner failed"; done
	SPAWNERS=()
	EXECS=$(($(<"$TMP/spawn1") + $(<"$TMP/spawn2")))
}

declare -A RATES LOST WAIT CPU TOTAL SKIP
for c in "${CONTENDERS[@]}"; do RATES[$c]=; LOST[$c]=0; WAIT[$c]=0; CPU[$c]=0; TOTAL[$c]=0; done
if [[ ! -x $SENSOR ]]; then
	SKIP[sensor]="binary not found: $SENSOR"
fi
if [[ -n $SENSOR_B && ! -x $SENSOR_B ]]; then
	SKIP[sensor-b]="binary not found: $SENSOR_B"
fi

backlog_empty() { [[ $(dw_audit_get backlog) == 0 ]]; }
rules_changed() { [[ $(auditctl -l) != "$INIT_L" ]]; }

run_contender() {
	local c=$1 lost0 wait0 cpu0=0 cpu1=0
	case $c in
	off) auditctl -e 0 >/dev/null ;;
	null-reader)
		start_reader "$TMP/null_audit_reader" || die "null reader did not register"
		add_rules "$READER_PID" >/dev/null ;;
	sensor | sensor-b)
		# The sensor installs its own rules; wait for them too.
		local bin=$SENSOR
		[[ $c == sensor ]] || bin=$SENSOR_B
		if ! start_reader "$bin" "${SENSOR_ARGS[@]}" --audit-mode owner --capture /dev/null; then
			SKIP[$c]="did not register as audit daemon (see its output above)"
			cat "$TMP/reader.log" >&2
			clean_audit
			return
		fi
		dw_wait 10 rules_changed || true ;;
	auditd-raw) start_auditd RAW || die "auditd did not register"; add_rules "$READER_PID" >/dev/null ;;
	auditd-enriched) start_auditd ENRICHED || die "auditd did not register"; add_rules "$READER_PID" >/dev/null ;;
	esac
	lost0=$(dw_audit_get lost)
	wait0=$(dw_audit_get backlog_wait_time_actual)
	if [[ -n $READER_PID ]]; then cpu0=$(dw_cpu_ticks "$READER_PID"); fi
	run_spawners
	# Let the reader drain what the kernel still queues, so its CPU counts all of it.
	dw_wait 2 backlog_empty || true
	sleep 0.2
	if [[ -n $READER_PID ]]; then
		dw_alive "$READER_PID" || die "$c: the reader (PID $READER_PID) died during the run"
		cpu1=$(dw_cpu_ticks "$READER_PID")
	fi
	LOST[$c]=$((LOST[$c] + $(dw_audit_get lost) - lost0))
	WAIT[$c]=$((WAIT[$c] + $(dw_audit_get backlog_wait_time_actual) - wait0))
	CPU[$c]=$((CPU[$c] + cpu1 - cpu0))
	TOTAL[$c]=$((TOTAL[$c] + EXECS))
	RATES[$c]+=" $((EXECS / RUN_SECONDS))"
	printf '  %-16s %8d exec/s\n' "$c" "$((EXECS / RUN_SECONDS))"
	clean_audit
	rm -rf "$TMP"/auditd-* # logs can be large
}

# Build.
for p in noop spawner null_audit_reader; do
	gcc -O2 -static -o "$TMP/$p" "$HERE/$p.c"
done
auditctl -b "$RUN_BACKLOG" >/dev/null

# Anything else running skews every figure: say so.
BUSY=$(dw_busy_pct)
((BUSY < 10)) || note "warning: the machine is ${BUSY}% busy before starting: figures will be noisy"
echo "exec_rate: $ROUNDS rounds x ${RUN_SECONDS}s, 2 spawners, backlog_limit $RUN_BACKLOG, $(nproc) CPUs, kernel $(uname -r)"
[[ -z ${SKIP[sensor]:-} ]] || note "skipping sensor: ${SKIP[sensor]}"
for ((r = 0; r < ROUNDS; r++)); do
	echo "round $((r + 1))/$ROUNDS"
	n=${#CONTENDERS[@]}
	for ((j = 0; j < n; j++)); do
		c=${CONTENDERS[$(((j + r) % n))]} # rotate the order each round
		[[ -z ${SKIP[$c]:-} ]] || continue
		run_contender "$c"
	done
done

declare -A MED
# shellcheck disable=SC2086
for c in "${CONTENDERS[@]}"; do [[ -z ${RATES[$c]} ]] || MED[$c]=$(dw_median ${RATES[$c]}); done
pct() { [[ -n ${MED[$1]:-} && -n ${MED[$2]:-} ]] && awk -v a="${MED[$1]}" -v b="${MED[$2]}" 'BEGIN { printf "%.1f%%", 100 * a / b }' || echo -; }

echo
# lost: records the kernel dropped; wait: jiffies execs slept on a full backlog queue.
printf '%-16s %11s %8s %11s %8s %8s %12s\n' contender "median ex/s" "vs off" "vs null-rdr" lost wait "reader us/ex"
for c in "${CONTENDERS[@]}"; do
	if [[ -z ${MED[$c]:-} ]]; then
		printf '%-16s skipped: %s\n' "$c" "${SKIP[$c]:-no data}"
		continue
	fi
	us=-
	[[ $c == off ]] || us=$(awk -v t="${CPU[$c]}" -v hz="$HZ" -v n="${TOTAL[$c]}" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
	printf '%-16s %11s %8s %11s %8s %8s %12s\n' "$c" "${MED[$c]}" "$(pct "$c" off)" "$(pct "$c" null-reader)" \
		"${LOST[$c]}" "${WAIT[$c]}" "$us"
done
echo
if [[ -n ${MED[sensor]:-} ]]; then
	echo "sensor/null-reader = $(pct sensor null-reader) (target >= 95%)"
else
	echo "sensor/null-reader = n/a (sensor skipped: ${SKIP[sensor]:-no data})"
fi
