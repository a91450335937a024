# shellcheck shell=bash
# audit_state.sh: save the machine's audit settings and rules, and put them back.
#
#   dw_audit_save DIR      remember `auditctl -s` and `auditctl -l` in DIR (audit.status,
#                          audit.rules)
#   dw_audit_restore DIR   delete rules that were not there before, restore enabled,
#                          backlog_limit and backlog_wait_time (never enabled 2, failure 2)
#   dw_audit_same DIR      0 when settings and rules equal the saved ones, else prints the
#                          difference and returns 1
#   dw_audit_get KEY       KEY's value in `auditctl -s` now (lost, backlog_limit, ...)
#   dw_audit_pid           the pid the kernel sends audit records to (0: none)
#   dw_audit_held_by PID   0 when PID is that pid
#   dw_audit_clear_stale READER PID...  the registered audit pid, if it is one of PIDs (readers
#                          the caller started) and dead, replaced by running READER (a reader
#                          that registers, then unregisters on exit) for a moment: a reader
#                          killed hard stays registered until the kernel next fails to send
#   dw_audit_delete_rule RULE  delete one rule given as `auditctl -l` prints it (-a or -w)
# Only for tests and benchmarks that serialize with every other audit user (RESOURCE_LOCK).

_dw_audit_field() { awk -v k="$1" '$1 == k { print $2 }' "$2"; }

dw_audit_get() { auditctl -s | awk -v k="$1" '$1 == k { print $2 }'; }
dw_audit_pid() { dw_audit_get pid; }
dw_audit_held_by() { [[ $(dw_audit_pid) == "$1" ]]; }

dw_audit_clear_stale() {
    local reader=$1 pid nr
    shift
    pid=$(dw_audit_pid)
    [[ $pid != 0 ]] && printf '%s\n' "$@" | grep -qx "$pid" && ! dw_alive "$pid" || return 0
    echo "audit: clearing stale audit pid $pid" >&2
    "$reader" 2>/dev/null 9>&- &
    nr=$!
    sleep 0.3
    dw_stop_pid "$nr" || true
}

dw_audit_save() {
    auditctl -s >"$1/audit.status"
    auditctl -l >"$1/audit.rules"
}

dw_audit_delete_rule() {
    local -a w
    read -r -a w <<<"$1"
    case ${w[0]} in -a) w[0]=-d ;; -w) w[0]=-W ;; *) return 0 ;; esac
    auditctl "${w[@]}" >/dev/null 2>&1 || { echo "audit: could not delete rule: $1" >&2; return 1; }
}

dw_audit_restore() {
    local dir=$1 rule en
    auditctl -l >"$dir/audit.rules.now" 2>/dev/null || true
    # Rules added since the save, removed one by one.
    while IFS= read -r rule; do
        grep -qxF -- "$rule" "$dir/audit.rules" && continue
        [[ $rule == -[aw]* ]] && echo "audit: deleting a rule added since the save: $rule" >&2
        dw_audit_delete_rule "$rule" || true
    done <"$dir/audit.rules.now"
    en=$(_dw_audit_field enabled "$dir/audit.status")
    [[ $en == 0 || $en == 1 ]] && auditctl -e "$en" >/dev/null
    auditctl -b "$(_dw_audit_field backlog_limit "$dir/audit.status")" >/dev/null
    auditctl --backlog_wait_time "$(_dw_audit_field backlog_wait_time "$dir/audit.status")" >/dev/null
}

dw_audit_same() {
    local dir=$1 k ok=0
    auditctl -s >"$dir/audit.status.now"
    auditctl -l >"$dir/audit.rules.now"
    for k in enabled failure pid rate_limit backlog_limit backlog_wait_time; do
        if [[ $(_dw_audit_field $k "$dir/audit.status") != $(_dw_audit_field $k "$dir/audit.status.now") ]]; then
            echo "audit $k was $(_dw_audit_field $k "$dir/audit.status"), now $(_dw_audit_field $k "$dir/audit.status.now")"
            ok=1
        fi
    done
    if ! diff -u "$dir/audit.rules" "$dir/audit.rules.now"; then ok=1; fi
    return $ok
}
