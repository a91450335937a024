#!/bin/bash
# Collector ingest throughput: driftwatch-collector (mTLS, temp SQLite db) fed by dw-loadgen
# with 50 simulated sensors on loopback. Reports events/s (acked, i.e. committed), the
# collector's CPU time per event (utime+stime from /proc/PID/stat), its peak RSS (VmHWM) and
# the ratio to the 200,000 events/s target. Loadgen and collector share the machine's cores.
# The loadgen's own CPU per event and peak RSS are reported too (it shares the cores).
# Usage: bench/collector_ingest.sh BUILD_DIR [EVENTS_PER_SENSOR (20000)] [SENSORS (50)]
# Environment: DW_BENCH_BATCH (events per batch, 500), DW_BENCH_INSECURE=1 (plaintext),
# DW_BENCH_LOADGEN_ARGS / DW_BENCH_COLLECTOR_ARGS (extra flags), DW_BENCH_KEEP=1 (keep tmp),
# DW_BENCH_PERF=FILE (perf record -g the collector during the load into FILE).
set -euo pipefail
build=${1:?usage: collector_ingest.sh BUILD_DIR [EVENTS_PER_SENSOR] [SENSORS]}
per_sensor=${2:-20000}
sensors=${3:-50}
batch=${DW_BENCH_BATCH:-500}
src=$(cd "$(dirname "$0")/.." && pwd)
collector=$build/collector/driftwatch-collector
loadgen=$build/tools/dw-loadgen

tmp=$(mktemp -d /tmp/dw_collector_bench.XXXXXX)
pid=
cleanup() {
  [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  [[ -n ${DW_BENCH_KEEP:-} ]] && echo "kept $tmp" >&2 || rm -rf "$tmp"
}
trap cleanup EXIT

nodes=()
for ((i = 0; i < sensors; i++)); do nodes+=("sim-$i"); done
"$src/scripts/make-certs.sh" "$tmp/certs" "${nodes[@]}" >/dev/null
c=$tmp/certs
# DW_BENCH_INSECURE=1: plaintext on both sides, to know the TLS share of the cost.
if [[ -n ${DW_BENCH_INSECURE:-} ]]; then
  server_sec=(--insecure)
  client_sec=(--insecure)
else
  server_sec=(--tls-cert "$c/collector.crt" --tls-key "$c/collector.key" --client-ca "$c/ca.crt")
  client_sec=(--ca "$c/ca.crt" --cert-dir "$c")
fi
"$collector" --listen 127.0.0.1:0 --port-file "$tmp/port" --db "$tmp/bench.db" \
  "${server_sec[@]}" ${DW_BENCH_COLLECTOR_ARGS:-} >"$tmp/collector.log" 2>&1 &
pid=$!
for _ in $(seq 100); do [[ -s $tmp/port ]] && break; sleep 0.1; done
[[ -s $tmp/port ]] || { cat "$tmp/collector.log"; echo "collector did not start" >&2; exit 1; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
perf_pid=
if [[ -n ${DW_BENCH_PERF:-} ]]; then
  perf record -g -o "$DW_BENCH_PERF" -p "$pid" >/dev/null 2>&1 &
  perf_pid=$!
  sleep 0.5
fi
before=$(cpu_ticks)
/usr/bin/time -f '%U %S %M' -o "$tmp/load.time" \
  "$loadgen" --target "127.0.0.1:$(cat "$tmp/port")" "${client_sec[@]}" \
  --sensors "$sensors" --events-per-sensor "$per_sensor" --batch "$batch" \
  ${DW_BENCH_LOADGEN_ARGS:-} >"$tmp/load.json"
after=$(cpu_ticks)
if [[ -n $perf_pid ]]; then kill -INT "$perf_pid"; wait "$perf_pid" || true; fi
hwm_kb=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")
db_bytes=$(du -cb "$tmp"/bench.db* | tail -1 | cut -f1)

python3 - "$tmp/load.json" "$((after - before))" "$(getconf CLK_TCK)" "$hwm_kb" "$db_bytes" \
  "$tmp/load.time" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
ticks, hz, hwm_kb, db_bytes = (int(x) for x in sys.argv[2:6])
lg_user, lg_sys, lg_rss_kb = open(sys.argv[6]).read().split()[-3:]
lg_cpu = float(lg_user) + float(lg_sys)
ev = j["events_acked"]
cpu_s = ticks / hz
out = {
    "sensors": j["sensors"], "events_acked": ev, "stored": j["stored"], "duplicates": j["duplicates"],
    "status": j["status"], "wall_s": j["wall_s"],
    "events_per_s": round(j["events_per_s"]),
    "target_ratio": round(j["events_per_s"] / 200000, 3),
    "collector_cpu_s": round(cpu_s, 2),
    "collector_cpu_us_per_event": round(cpu_s * 1e6 / ev, 2) if ev else None,
    "collector_peak_rss_mib": round(hwm_kb / 1024, 1),
    "db_bytes_per_event": round(db_bytes / ev) if ev else None,
    "loadgen_cpu_us_per_event": round(lg_cpu * 1e6 / ev, 2) if ev else None,
    "loadgen_peak_rss_mib": round(int(lg_rss_kb) / 1024, 1),
}
print(json.dumps(out))
PY
