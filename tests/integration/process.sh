# shellcheck shell=bash
# process.sh: stop a process the test started, by the PID in its pid file (never by name).
#   dw_stop_pidfile FILE [SECONDS]   SIGTERM, bounded wait (default 10 s), then SIGKILL;
#                                    returns 1 when SIGKILL was needed

dw_stop_pidfile() {
    local file=$1 limit=${2:-10} pid i
    [[ -f $file ]] || return 0
    pid=$(cat "$file")
    rm -f "$file"
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < limit * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
        sleep 0.1
    done
    echo "process $pid ignored SIGTERM for $limit s: killing it"
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 1
}
