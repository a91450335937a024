# shellcheck shell=bash
source "$(dirname "${BASH_SOURCE[0]}")/process.sh"
# live_sensor.sh: start and stop driftwatch-sensor for a test, by PID.
#   dw_sensor_start BUILD DIR ARGS...   starts it with --capture DIR/capture, waits until it
#                                       reads, PID in DIR/sensor.pid, log in DIR/sensor.log
#   dw_sensor_stop DIR                  SIGTERM by PID, bounded wait, SIGKILL as a last resort

dw_sensor_start() {
    local build=$1 dir=$2 i
    shift 2
    "$build/sensor/driftwatch-sensor" --capture "$dir/capture" "$@" 2>"$dir/sensor.log" &
    echo $! >"$dir/sensor.pid"
    for ((i = 0; i < 100; i++)); do
        grep -q "^driftwatch-sensor [0-9.]*: audit" "$dir/sensor.log" 2>/dev/null && return 0
        kill -0 "$(cat "$dir/sensor.pid")" 2>/dev/null || break
        sleep 0.05
    done
    echo "sensor did not start:"; cat "$dir/sensor.log"
    return 1
}

dw_sensor_stop() { dw_stop_pidfile "$1/sensor.pid"; }
