# shellcheck shell=bash
source "$(dirname "${BASH_SOURCE[0]}")/harness.sh"
# auditd_env.sh: a private auditd for tests and benchmarks (PID 1 here is not systemd).
#   dw_auditd_config DIR RAW|ENRICHED  writes DIR/auditd.conf (and DIR/log, DIR/plugins)
#   dw_auditd_start DIR RAW|ENRICHED   log in DIR/log/audit.log, PID in DIR/auditd.pid; waits
#                                      until it holds the audit pid; stopped at exit
#   dw_auditd_stop DIR                 SIGTERM by PID, bounded wait
#   dw_sensor_rule_set KEY PID         the sensor's audit rules (sensor/audit_rules.cc), keyed
#                                      KEY, for a reader with PID PID: benchmarks give every
#                                      reader the same kernel-side cost
# Its config never halts or suspends the machine on disk trouble. Rules are the caller's.

dw_auditd_config() {
    local dir=$1 format=$2
    mkdir -p "$dir/log" "$dir/plugins"
    cat >"$dir/auditd.conf" <<CONF
local_events = yes
write_logs = yes
log_file = $dir/log/audit.log
log_group = root
log_format = $format
flush = INCREMENTAL_ASYNC
freq = 50
max_log_file = 0
max_log_file_action = IGNORE
num_logs = 1
name_format = NONE
space_left = 75
space_left_action = SYSLOG
admin_space_left = 50
admin_space_left_action = IGNORE
disk_full_action = IGNORE
disk_error_action = IGNORE
q_depth = 2000
overflow_action = SYSLOG
max_restarts = 0
plugin_dir = $dir/plugins
priority_boost = 4
verify_email = no
action_mail_acct = root
use_libwrap = no
end_of_event_timeout = 2
CONF
    chmod 0640 "$dir/auditd.conf"
}

dw_auditd_start() {
    local dir=$1
    dw_auditd_config "$dir" "$2"
    auditd -n -c "$dir" >"$dir/auditd.out" 2>&1 &
    echo $! >"$dir/auditd.pid"
    dw_at_exit dw_auditd_stop "$dir"
    dw_wait --while $! 5 dw_audit_held_by $! && return 0
    echo "auditd did not register:"; cat "$dir/auditd.out"
    return 1
}

# Its own execs and chmods excluded, then execve/execveat, and chmods that add an exec bit.
dw_sensor_rule_set() {
    local a
    for a in b64 b32; do
        auditctl -a never,exit -F arch=$a -S execve,execveat,chmod,fchmod,fchmodat -F pid="$2" -k "$1"
    done
    for a in b64 b32; do
        auditctl -a always,exit -F arch=$a -S execve,execveat -k "$1"
        auditctl -a always,exit -F arch=$a -S chmod,fchmod -F 'a1&0x49' -k "$1"
        auditctl -a always,exit -F arch=$a -S fchmodat -F 'a2&0x49' -k "$1"
    done >/dev/null
}

dw_auditd_stop() { dw_stop_pidfile "$1/auditd.pid" || true; }
