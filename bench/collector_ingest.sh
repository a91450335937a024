#!/bin/bash
# Collector throughput end to end: driftwatch-collector (mTLS, temp SQLite db, shipped rules)
# fed by dw-loadgen with 50 simulated sensors on loopback, each run ending in a package
# manager exec (--drift: one "Package Manager Execution in Container" alert per sensor).
# Detection is a durable consumer of the store, so ingest (acked = committed) and evaluation
# are two rates: events_per_s_acked is loadgen's acked events / its wall time (acks are held
# when detection lags more than --detect-max-lag-events, so it includes some detection);
# events_per_s_evaluated is events stored / the time from the load's start until detection
# has evaluated every stored event (detect_events_total >= events stored, lag 0), the
# figure the 200,000 events/s target is measured on. /metrics is sampled every 100 ms during
# the load and the wait (detection lag in events p50/p99/max, the collector's RSS); the wait
# after the load is bounded (DW_BENCH_EVAL_TIMEOUT_S, 120 s; beyond: "evaluated_all": false
# and exit 1). Also: the collector's CPU per event (utime+stime over the load and the wait),
# its peak RSS (VmHWM; target <= 256 MiB), alerts by rule, drift alerts raised / sensors,
# acks held back, events detection took from memory (not read back from the store) and the
# times its in-memory feed overflowed, loadgen's own CPU per event and peak RSS (it shares the cores), and the
# CPU time anything else on the machine took meanwhile (other_cpu_s: a shared machine's noise).
# DW_BENCH_ARGV_BYTES=N makes every exec carry N bytes of argv (dw-loadgen --argv-bytes): a
# flood of maximum-size arguments, as from sensors that cap them (65536, their default) or
# from ones that do not or lie (6000000, what the kernel lets a process pass); it reports
# the events the collector cut or refused as oversized ("oversize") and how often streams
# waited for its in-flight byte budget ("budget_waits").
# DW_BENCH_NETWORK_SHARE=PERCENT makes that share of each sensor's events network events
# (dw-loadgen --network-share: connects of the same containers to a few destinations, most
# EINPROGRESS, some refused; a few binds), spread through the run; the collector learns them
# into its per-image baselines (on by default) as it does execs.
# DW_BENCH_NETWORK_COMPARE=PERCENT: the cost of a network event beside an exec's. The same
# burst, each time on a new collector and database, exec-only and with PERCENT network
# events, DW_BENCH_ROUNDS (3) rounds interleaved (ABBA); prints every run's JSON line, then
# one {"bench": "collector_network", ...} line (medians: collector CPU us per event, events/s
# evaluated; peak RSS; the ratio mix / exec-only; the CPU of one network event derived from
# them, as (mix - (1 - share) * exec-only) / share, the share as sent) and a line of text
# saying the same.
# Batches are cut at DW_BENCH_BATCH events or 256 KiB, as sensors cut them.
# Usage: bench/collector_ingest.sh BUILD_DIR [EVENTS_PER_SENSOR (20000)] [SENSORS (50)]
# Environment: DW_BENCH_BATCH (events per batch, 500), DW_BENCH_ARGV_BYTES, DW_BENCH_INSECURE=1 (plaintext),
# DW_BENCH_LOADGEN_ARGS / DW_BENCH_COLLECTOR_ARGS (extra flags), DW_BENCH_KEEP=1 (keep tmp),
# DW_BENCH_PERF=FILE (perf record -g the collector during the load and the wait into FILE;
# with DW_BENCH_NETWORK_COMPARE, FILE.SHARE-ROUND for each run),
# DW_BENCH_EVAL_TIMEOUT_S (120), DW_BENCH_NETWORK_SHARE (0), DW_BENCH_NETWORK_COMPARE,
# DW_BENCH_ROUNDS (3).
set -euo pipefail
build=${1:?usage: collector_ingest.sh BUILD_DIR [EVENTS_PER_SENSOR] [SENSORS]}
per_sensor=${2:-20000}
sensors=${3:-50}
batch=${DW_BENCH_BATCH:-500}
argv_bytes=${DW_BENCH_ARGV_BYTES:-0}
eval_timeout=${DW_BENCH_EVAL_TIMEOUT_S:-120}
network_share=${DW_BENCH_NETWORK_SHARE:-0}
compare=${DW_BENCH_NETWORK_COMPARE:-}
rounds=${DW_BENCH_ROUNDS:-3}
[[ $network_share =~ ^[0-9]+$ && $network_share -le 100 ]] ||
  { echo "collector_ingest: DW_BENCH_NETWORK_SHARE: a percent, 0 to 100" >&2; exit 2; }
[[ -z $compare || ($compare =~ ^[0-9]+$ && $compare -ge 1 && $compare -le 100) ]] ||
  { echo "collector_ingest: DW_BENCH_NETWORK_COMPARE: a percent, 1 to 100" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$here")
source "$src/tests/integration/harness.sh"
dw_build "$build" collector loadgen
KEEP=${KEEP:-${DW_BENCH_KEEP:-}}
dw_harness dw_collector_bench

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
# run_once SHARE DB JSON [PERF_SUFFIX]: one burst on a new collector and database, SHARE
# percent network events; its JSON line on stdout and into JSON; the collector stopped after.
run_once() {
  local share=$1 db=$2 json=$3 perf_suffix=${4:-}
  # shellcheck disable=SC2086
  dw_collector_start collector --listen 127.0.0.1:0 --db "$db" \
    --metrics-address 127.0.0.1:0 "${server_sec[@]}" ${DW_BENCH_COLLECTOR_ARGS:-}
  [[ -n $mport ]] || die "the collector serves no metrics"
  pid=$(dw_pid collector)

  perf_pid=
  if [[ -n ${DW_BENCH_PERF:-} ]]; then
    perf record -g -o "$DW_BENCH_PERF$perf_suffix" -p "$pid" >/dev/null 2>&1 &
    perf_pid=$!
    sleep 0.5
  fi
  # The watcher starts loadgen, samples /metrics every 100 ms, waits for detection to catch up.
  watch_rc=0
  python3 "$here/collector_watch.py" --metrics "127.0.0.1:$mport" --pid "$pid" \
    --stdout "$tmp/load.json" --interval 0.1 --timeout "$eval_timeout" -- \
    /usr/bin/time -f '%U %S %M' -o "$tmp/load.time" \
    "$loadgen" --target "127.0.0.1:$port" "${client_sec[@]}" \
    --sensors "$sensors" --events-per-sensor "$per_sensor" --batch "$batch" --drift \
    --argv-bytes "$argv_bytes" --network-share "$share" --batch-bytes 262144 \
    ${DW_BENCH_LOADGEN_ARGS:-} \
    >"$tmp/watch.json" || watch_rc=$?
  if [[ -n $perf_pid ]]; then kill -INT "$perf_pid"; wait "$perf_pid" || true; fi
  if [[ $watch_rc -ne 0 || ! -s $tmp/load.json ]]; then
    cat "$tmp/load.json" >&2 2>/dev/null || true
    die "the load or its watcher failed (rc $watch_rc)"
  fi
  db_bytes=$(du -cb "$db"* | tail -1 | cut -f1)

  python3 - "$tmp/load.json" "$tmp/watch.json" "$db_bytes" "$tmp/load.time" "$sensors" "$eval_timeout" \
    "$argv_bytes" "$share" <<'PY' | tee "$json"
import json, sys
j = json.load(open(sys.argv[1]))
w = json.load(open(sys.argv[2]))
db_bytes, sensors = int(sys.argv[3]), int(sys.argv[5])
lg_user, lg_sys, lg_rss_kb = open(sys.argv[4]).read().split()[-3:]
lg_cpu = float(lg_user) + float(lg_sys)
ev = j["events_acked"]
stored = w["stored"]
evaluated_per_s = stored / w["done_s"] if w["evaluated_all"] and w["done_s"] else None
drift = w["alerts"].get("Package Manager Execution in Container", 0)
mib = lambda kb: round(kb / 1024, 1) if kb is not None else None
ok = (w["evaluated_all"] and w["load_rc"] == 0 and ev == j["events_sent"] and drift == sensors)
out = {
    "sensors": j["sensors"], "argv_bytes": int(sys.argv[7]), "network_share": int(sys.argv[8]),
    "network_events": j.get("network_events_sent", 0), "events_acked": ev, "stored": j["stored"], "duplicates": j["duplicates"],
    "status": j["status"], "wall_s": j["wall_s"],
    "events_per_s_acked": round(j["events_per_s"]),
    "events_stored": stored, "events_evaluated": w["evaluated"],
    "evaluated_all": w["evaluated_all"], "evaluated_s": w["done_s"],
    "events_per_s_evaluated": round(evaluated_per_s) if evaluated_per_s else None,
    "target_ratio": round(evaluated_per_s / 200000, 3) if evaluated_per_s else None,
    "acked_target_ratio": round(j["events_per_s"] / 200000, 3),
    "lag_events_p50": w["lag_p50"], "lag_events_p99": w["lag_p99"], "lag_events_max": w["lag_max"],
    "lag_samples": w["samples"],
    "collector_cpu_s": round(w["cpu_s"], 2),
    "collector_cpu_us_per_event": round(w["cpu_s"] * 1e6 / stored, 2) if stored else None,
    "collector_peak_rss_mib": mib(w["hwm_kb"]),
    "peak_rss_target_ok": w["hwm_kb"] <= 256 * 1024,
    "collector_rss_mib_p50": mib(w["rss_kb_p50"]), "collector_rss_mib_max_sampled": mib(w["rss_kb_max"]),
    "held_acks": w["held_acks"], "not_evaluated": w["not_evaluated"],
    "evaluated_from_memory": w["fed_events"], "feed_overflows": w["feed_overflows"],
    "oversize": w["oversize"], "budget_waits": w["budget_waits"],
    "status_detect": w["status_detect"],
    "alerts": w["alerts"],
    "drift_alerts": drift, "drift_alerts_expected": sensors,
    "drift_alerts_ok": drift == sensors,
    "db_bytes_per_event": round(db_bytes / ev) if ev else None,
    "loadgen_cpu_us_per_event": round(lg_cpu * 1e6 / ev, 2) if ev else None,
    "loadgen_peak_rss_mib": round(int(lg_rss_kb) / 1024, 1),
    # CPU time other processes took on the machine meanwhile (not the collector, loadgen or
    # the watcher): well above 0, the run shared the cores with something else.
    "other_cpu_s": round(w["machine_busy_s"] - w["cpu_s"] - lg_cpu - w["watcher_cpu_s"], 2),
    "watcher_cpu_s": round(w["watcher_cpu_s"], 2),
    "ok": ok,
}
print(json.dumps(out))
if not ok:
    why = []
    if w["load_rc"] != 0: why.append("dw-loadgen exited %d" % w["load_rc"])
    if ev != j["events_sent"]: why.append("%d of %d events acked" % (ev, j["events_sent"]))
    if not w["evaluated_all"]:
        why.append("detection did not evaluate every stored event within %s s after the load "
                   "(%d of %d evaluated, lag %d)" % (sys.argv[6], w["evaluated"],
                                                     stored, w["lag_final"]))
    if drift != sensors: why.append("%d of %d drift alerts" % (drift, sensors))
    print("collector_ingest: FAILED: " + "; ".join(why), file=sys.stderr)
    sys.exit(1)
PY
  dw_stop collector 20 || true
}

if [[ -z $compare ]]; then
  run_once "$network_share" "$tmp/bench.db" "$tmp/run.json"
  exit 0
fi

# Interleaved: exec-only, mix, mix, exec-only, ... each burst on a new collector and database.
for ((r = 1; r <= rounds; r++)); do
  if ((r % 2)); then order=(0 "$compare"); else order=("$compare" 0); fi
  for s in "${order[@]}"; do
    run_once "$s" "$tmp/bench-$s-$r.db" "$tmp/run-$s-$r.json" ".$s-$r"
    rm -f "$tmp/bench-$s-$r.db"*
  done
done
python3 - "$compare" "$tmp" "$rounds" <<'PY'
import json, statistics, sys
share, tmp, rounds = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
runs = {s: [json.load(open("%s/run-%d-%d.json" % (tmp, s, r))) for r in range(1, rounds + 1)]
        for s in (0, share)}
med = lambda s, k: statistics.median(d[k] for d in runs[s])
us0, us1 = med(0, "collector_cpu_us_per_event"), med(share, "collector_cpu_us_per_event")
ev0, ev1 = med(0, "events_per_s_evaluated"), med(share, "events_per_s_evaluated")
# The share as sent: a run's first event (the container) and its last (--drift) are no
# network events.
p = runs[share][0]["network_events"] / runs[share][0]["events_stored"]
out = {
    "bench": "collector_network", "network_share": share, "rounds": rounds,
    "sensors": runs[0][0]["sensors"], "events_per_run": runs[0][0]["events_stored"],
    "network_events_per_run": runs[share][0]["network_events"],
    "exec_only": {"collector_cpu_us_per_event": us0, "events_per_s_evaluated": ev0,
                  "collector_peak_rss_mib": max(d["collector_peak_rss_mib"] for d in runs[0]),
                  "collector_cpu_us_per_event_runs": [d["collector_cpu_us_per_event"] for d in runs[0]]},
    "mix": {"collector_cpu_us_per_event": us1, "events_per_s_evaluated": ev1,
            "collector_peak_rss_mib": max(d["collector_peak_rss_mib"] for d in runs[share]),
            "collector_cpu_us_per_event_runs": [d["collector_cpu_us_per_event"] for d in runs[share]]},
    "cpu_ratio_mix_over_exec_only": round(us1 / us0, 3),
    # Exec events taken to cost the same in both: what the network ones add, each.
    "network_event_cpu_us_derived": round((us1 - (1 - p) * us0) / p, 2),
    "network_over_exec_derived": round((us1 - (1 - p) * us0) / p / us0, 3),
    "other_cpu_s_max": max(d["other_cpu_s"] for s in runs for d in runs[s]),
    "drift_alerts_ok": all(d["drift_alerts_ok"] for s in runs for d in runs[s]),
}
print(json.dumps(out))
print("collector CPU per event, %d sensors x %d events, %d rounds interleaved (medians): "
      "exec-only %.2f us (%.0f events/s, peak RSS %.1f MiB); %d%% network %.2f us (%.0f events/s, "
      "peak RSS %.1f MiB); ratio %.2f; one network event ~%.2f us (%.2fx an exec)" % (
          out["sensors"], out["events_per_run"] // out["sensors"], rounds, us0, ev0,
          out["exec_only"]["collector_peak_rss_mib"], share, us1, ev1,
          out["mix"]["collector_peak_rss_mib"], out["cpu_ratio_mix_over_exec_only"],
          out["network_event_cpu_us_derived"], out["network_over_exec_derived"]))
PY
