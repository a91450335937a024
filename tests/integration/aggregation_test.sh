#!/bin/bash
# Alert aggregation (issue 19), driftwatch-collector fed by dw-loadgen (plaintext on loopback):
# one container running the same package manager exec 1,000 times (--drift-execs 1000), with
# a local rule matching it at Critical beside the shipped Error rule:
#   (a) aggregation on (the default 60 s window): one stored alert with count 1000 for the
#       Error rule, sent at once and its summary (driftwatch.count 1000) when the collector
#       stops; the Critical rule's 1,000 alerts each on their own; `driftwatch alerts` shows it;
#   (b) --aggregate-window 0: 1,000 stored and sent alerts;
#   (c) a 2 s window closes by the timer, without a further event or a stop;
#   (d) kill -9 in the middle of the burst, restart on the same database, the same events sent
#       again: still one alert with count 1000 (none lost, none counted twice).
# Usage: aggregation_test.sh BUILD_DIR
set -euo pipefail
source "$(dirname "$0")/harness.sh"
dw_build "${1:?usage: aggregation_test.sh BUILD_DIR}" collector loadgen dw
dw_harness dw_aggregation_test

drift_rule="Package Manager Execution in Container"
crit_rule="Test critical package manager"
cat >"$tmp/crit.yaml" <<EOF
- rule: $crit_rule
  desc: the shipped package manager rule's match, at Critical
  condition: spawned_process and container and proc.name = apk
  output: critical package manager (command=%proc.cmdline container=%container.name)
  priority: CRITICAL
  tags: [test]
EOF
# One sensor: its container, then 1,000 identical execs of apk in it.
burst=(--insecure --sensors 1 --node-prefix agg- --events-per-sensor 1001 --drift
  --drift-execs 1000 --boot-id 0a99a99a-1111-2222-3333-444455556666
  --sensor-start-ns 1764320000000000003)

start_collector() {  # start_collector NAME ARGS...: sets $port $mport
  local name=$1
  shift
  dw_collector_start "$name" --insecure --listen "127.0.0.1:${listen_port:-0}" \
    --db "$tmp/$name.db" --alerts-output "$tmp/$name.jsonl" --rules "$tmp/crit.yaml" \
    --metrics-address 127.0.0.1:0 "$@"
}
evaluated() { [[ $(metric driftwatch_collector_detect_lag_events) == 0 && $(metric driftwatch_collector_events_stored_total) -gt 0 ]]; }
wait_evaluated() { dw_wait 120 evaluated; }
sql() { sqlite3 "$tmp/$1.db" "$2"; }
rows() { sql "$1" "SELECT count(*) || '/' || coalesce(sum(count), 0) FROM alerts WHERE rule = '$2'"; }
# Lines of the output file for RULE: all, and those carrying driftwatch.count (their counts).
out_lines() { python3 - "$tmp/$1.jsonl" "$2" "${3:-all}" <<'PY'
import json, sys
path, rule, what = sys.argv[1:]
lines = [json.loads(l) for l in open(path) if l.strip()]
lines = [l for l in lines if l["rule"] == rule]
if what == "all":
    print(len(lines))
else:
    print(" ".join(str(l["output_fields"]["driftwatch.count"]) for l in lines
                   if "driftwatch.count" in l["output_fields"]) or "-")
PY
}

# (a) aggregation on, the default window.
start_collector a
"$loadgen" --target "127.0.0.1:$port" "${burst[@]}" >"$tmp/a.json" || true
expect "(a) all acked" "$(json "$tmp/a.json" 'j["events_acked"]')" 1001
wait_evaluated || fail "(a) detection did not catch up"
expect "(a) one stored alert with count 1000" "$(rows a "$drift_rule")" "1/1000"
expect "(a) Critical: 1000 alerts, each on its own" "$(rows a "$crit_rule")" "1000/1000"
expect "(a) repeats counted in /metrics" "$(metric driftwatch_collector_alerts_aggregated_total)" 999
expect "(a) and in /status" \
  "$(curl -sf "http://127.0.0.1:$mport/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["alerts_aggregated"])')" 999
expect "(a) the first alert sent at once, no summary while the window is open" \
  "$(out_lines a "$drift_rule") $(out_lines a "$drift_rule" counts)" "1 -"
"$dw" alerts --db "$tmp/a.db" --rule "$drift_rule" >"$tmp/a.cli.json"
expect "(a) driftwatch alerts: the count in output_fields" \
  "$(python3 -c 'import json,sys; print(" ".join(str(json.loads(l)["output_fields"]["driftwatch.count"]) for l in open(sys.argv[1])))' "$tmp/a.cli.json")" 1000
"$dw" alerts --db "$tmp/a.db" --rule "$drift_rule" --table >"$tmp/a.table"
grep -q ' 1000+ ' "$tmp/a.table" && ok "(a) driftwatch alerts --table: COUNT 1000+ (open)" \
  || fail "(a) table: $(cat "$tmp/a.table")"
dw_stop a 60 || true
expect "(a) stop: the summary sent, count 1000" "$(out_lines a "$drift_rule") $(out_lines a "$drift_rule" counts)" "2 1000"
expect "(a) Critical: 1000 sent, no summary" "$(out_lines a "$crit_rule") $(out_lines a "$crit_rule" counts)" "1000 -"
expect "(a) the outbox is empty" "$(sql a "SELECT count(*) FROM deliveries")" 0
expect "(a) the aggregate is closed" "$(sql a "SELECT open_until_ns FROM alerts WHERE rule = '$drift_rule'")" 0

# (b) aggregation off.
start_collector b --aggregate-window 0
"$loadgen" --target "127.0.0.1:$port" "${burst[@]}" >"$tmp/b.json" || true
wait_evaluated || fail "(b) detection did not catch up"
expect "(b) 1000 stored alerts" "$(rows b "$drift_rule")" "1000/1000"
expect "(b) nothing aggregated" "$(metric driftwatch_collector_alerts_aggregated_total)" 0
dw_stop b 60 || true
expect "(b) 1000 sent, no summary" "$(out_lines b "$drift_rule") $(out_lines b "$drift_rule" counts)" "1000 -"

# (c) the window ends by the timer: no further event, no stop. (However the burst falls into
# 2 s windows, every aggregate closes and each one with repeats sends its count.)
start_collector c --aggregate-window 2s
"$loadgen" --target "127.0.0.1:$port" "${burst[@]}" >"$tmp/c.json" || true
wait_evaluated || fail "(c) detection did not catch up"
closed() { [[ $(sql c "SELECT count(*) FROM alerts WHERE open_until_ns != 0") == 0 ]]; }
dw_wait 60 closed || fail "(c) aggregates still open"
expect "(c) every exec counted once" "$(sql c "SELECT sum(count) FROM alerts WHERE rule = '$drift_rule'")" 1000
sent_counts() { out_lines c "$drift_rule" counts; }
want=$(sql c "SELECT group_concat(count, ' ') FROM (SELECT count FROM alerts WHERE rule = '$drift_rule' AND count > 1 ORDER BY id)")
has_summaries() { [[ $(sent_counts) == "${want:--}" ]]; }
dw_wait 10 has_summaries || true
expect "(c) each closed aggregate's count sent while running" "$(sent_counts)" "${want:--}"
dw_stop c 60 || true

# (d) kill -9 mid-burst (the sensor paced: 100 batches of 10, 20 ms apart), restart on the same
# port and database, the same events sent again. The window (1 h) outlasts the test.
start_collector d --aggregate-window 1h
listen_port=$port
"$loadgen" --target "127.0.0.1:$port" "${burst[@]}" --batch 10 --window 1 --interval-ms 20 \
  >"$tmp/d1.json" 2>/dev/null &
lg=$!
counted=0
for _ in $(seq 600); do
  counted=$(sql d "SELECT coalesce(sum(count), 0) FROM alerts WHERE rule = '$drift_rule'" 2>/dev/null || echo 0)
  [[ $counted -ge 200 ]] && break
  sleep 0.05
done
dw_kill d
wait "$lg" || true
counted=$(sql d "SELECT coalesce(sum(count), 0) FROM alerts WHERE rule = '$drift_rule'")
((counted > 0 && counted < 1000)) && ok "(d) killed mid-burst with $counted of 1000 counted" \
  || fail "(d) killed with $counted of 1000 counted: not in the middle of the burst"
start_collector d --aggregate-window 1h
"$loadgen" --target "127.0.0.1:$port" "${burst[@]}" >"$tmp/d2.json" || true
expect "(d) the resend is acked" "$(json "$tmp/d2.json" 'j["events_acked"]')" 1001
wait_evaluated || fail "(d) detection did not catch up"
expect "(d) every event stored once" "$(sql d "SELECT count(*), count(DISTINCT seq) FROM events")" "1001|1001"
expect "(d) one alert with count 1000 after the restart" "$(rows d "$drift_rule")" "1/1000"
expect "(d) Critical: 1000 alerts, none twice" "$(rows d "$crit_rule")" "1000/1000"
dw_stop d 60 || true
listen_port=
expect "(d) one summary, count 1000" "$(out_lines d "$drift_rule" counts)" 1000
dw_finish "all aggregation checks passed"
