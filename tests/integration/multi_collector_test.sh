#!/bin/bash
# Several collectors sharing one PostgreSQL (issue 17), fed by dw-loadgen (plaintext on
# loopback), against a private PostgreSQL started here (pg_env.sh):
#   (a) two collectors, 50 simulated sensors split across them (25 each), 20,000 events each,
#       every run ending in a package-manager exec: 1M events stored exactly once, every drift
#       exec alerted once (50/50), each node evaluated by one collector (the leases split the
#       nodes between them);
#   (b) one half sent again to the other collector (a failover's resend): 0 new events, no
#       alert twice;
#   (c) collector A SIGKILLed: B takes A's nodes over once their leases expire, rebuilds their
#       state from the store, and evaluates what is sent after the kill: a drift exec of a run
#       whose earlier events A evaluated alerts once;
#   (d) a clean stop gives the leases back at once (no wait for them to expire);
#   (e) events deleted before they were evaluated (retention while detection lagged: here
#       deleted by hand behind a node's cursor moved back) are counted and alerted, not
#       passed over.
# Usage: multi_collector_test.sh BUILD_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/harness.sh"
source "$here/pg_env.sh"
dw_build "${1:?usage: multi_collector_test.sh BUILD_DIR}" collector loadgen dw
dw_harness dw_multi
dw_pg_start "$tmp/pg"
export DW_PG_DB=driftwatch
uri=$DW_PG_URI
sql() { dw_pg_psql "$1"; }

events=${DW_MULTI_EVENTS:-20000}  # per sensor
grep -q '^DW_SANITIZE:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null && events=${DW_MULTI_EVENTS:-2000}
total=$((50 * events))
drift_rule="Package Manager Execution in Container"
run=(--insecure --events-per-sensor "$events" --drift --boot-id 9e3c1f0a-1111-2222-3333-444455556666
  --sensor-start-ns 1764320000000000000)

start() {  # start NAME ARGS...: sets port_NAME, mport_NAME
  local name=$1
  shift
  dw_collector_start "$name" --insecure --listen 127.0.0.1:0 --db "$uri" \
    --metrics-address 127.0.0.1:0 --lease-owner "collector-$name" --lease-ms 2000 "$@"
  printf -v "port_$name" %s "$port"
  printf -v "mport_$name" %s "$mport"
}
m() {  # m NAME METRIC
  local v="mport_$1"
  mport=${!v} metric "$2"
}
caught_up() {  # every stored event evaluated by whoever owns its node
  [[ $(sql "SELECT coalesce(sum(h.last_id - coalesce(c.id, 0)), -1) FROM node_heads h
              LEFT JOIN detect_cursors c ON c.node = h.node") == 0 ]]
}
# Nodes with the alert / drift execs alerted (a repeat within the aggregation window is
# counted in its first alert's row).
drift_alerts() { sql "SELECT count(DISTINCT node) || '/' || sum(count) FROM alerts WHERE rule = '$drift_rule'"; }

# (a) two collectors, half of the sensors each.
step "(a) two collectors, 50 sensors x $events events"
start a
start b
"$loadgen" --target "127.0.0.1:$port_a" "${run[@]}" --sensors 25 --node-prefix a- >"$tmp/a.json" &
la=$!
"$loadgen" --target "127.0.0.1:$port_b" "${run[@]}" --sensors 25 --node-prefix b- >"$tmp/b.json" &
lb=$!
wait "$la" || true
wait "$lb" || true
expect "(a) every event acked" \
  "$(( $(json "$tmp/a.json" 'j["events_acked"]') + $(json "$tmp/b.json" 'j["events_acked"]') ))" "$total"
dw_wait 180 caught_up || fail "(a) detection did not catch up"
expect "(a) every event stored once" \
  "$(sql "SELECT count(*) || ' ' || count(DISTINCT (node, id)) || ' ' || count(DISTINCT (run_id, seq)) FROM events")" \
  "$total $total $total"
expect "(a) every drift exec alerted once" "$(drift_alerts)" "50/50"
expect "(a) every node leased by one of the two" \
  "$(sql "SELECT count(*) FROM detect_leases WHERE owner IN ('collector-a', 'collector-b')")" 50
owned_a=$(m a driftwatch_collector_detect_nodes_owned)
owned_b=$(m b driftwatch_collector_detect_nodes_owned)
expect "(a) the nodes shared between the collectors ($owned_a + $owned_b)" \
  "$((owned_a + owned_b)) $(( owned_a > 0 && owned_b > 0 ))" "50 1"
evaluated=$(( $(m a driftwatch_collector_detect_events_total) + $(m b driftwatch_collector_detect_events_total) ))
# A node that moved between the collectors while the burst ran is evaluated once per owner
# from its stored cursor: nothing twice beyond the rows an owner evaluated but had not
# committed when it gave the node back (none: a node goes back after its commit).
expect "(a) each stored event evaluated once" "$evaluated" "$total"

# A third collector under a running one's name is refused (both would pass each other's
# lease checks).
if timeout 30 "$collector" --insecure --listen 127.0.0.1:0 --db "$uri" --lease-owner collector-a \
    --lease-ms 2000 >"$tmp/dup.log" 2>&1; then
  fail "a second collector named collector-a started"
else
  check "a second collector named collector-a is refused: $(grep -o 'another running collector.*' "$tmp/dup.log" | head -1)" \
    grep -q "lease-owner collector-a: another running collector uses this name" "$tmp/dup.log"
fi

# (b) the a- sensors' runs sent again, to collector b.
step "(b) one half sent again to the other collector"
"$loadgen" --target "127.0.0.1:$port_b" "${run[@]}" --sensors 25 --node-prefix a- >"$tmp/resend.json" || true
expect "(b) the resend is acked" "$(json "$tmp/resend.json" 'j["events_acked"]')" $((25 * events))
expect "(b) nothing stored twice" "$(sql "SELECT count(*) FROM events")" "$total"
dw_wait 60 caught_up || fail "(b) detection did not catch up"
expect "(b) no alert twice" "$(drift_alerts)" "50/50"

# (c) A killed; its nodes go to B once their leases (2 s) expire. Runs with more events
# (seq after the first burst) go to B: their drift execs alert once more per node, by B.
step "(c) collector a killed"
dw_kill a
"$loadgen" --target "127.0.0.1:$port_b" --insecure --events-per-sensor $((events + 100)) \
  --first-seq $((events + 1)) --drift --boot-id 9e3c1f0a-1111-2222-3333-444455556666 \
  --sensor-start-ns 1764320000000000000 --sensors 25 --node-prefix a- >"$tmp/after.json" || true
expect "(c) the events after the kill acked by b" "$(json "$tmp/after.json" 'j["events_acked"]')" $((25 * 100))
dw_wait 60 caught_up || fail "(c) b did not evaluate a's nodes"
expect "(c) b owns every node" "$(m b driftwatch_collector_detect_nodes_owned)" 50
expect "(c) the drift execs after the kill alerted once each" "$(drift_alerts)" "50/75"
expect "(c) no alert stored twice" \
  "$(sql "SELECT count(*) FROM (SELECT event_key, rule FROM alerts GROUP BY 1, 2 HAVING count(*) > 1) d")" 0
grep -q "node a-0 taken" "$tmp/b.log" && ok "(c) b rebuilt a-0's state when it took the node" \
  || fail "(c) b's log does not say it took a-0"

# (d) a clean stop: the leases go back at once.
step "(d) b stops cleanly"
dw_stop b 30 || fail "(d) b did not stop"
expect "(d) no live lease left" \
  "$(sql "SELECT count(*) FROM detect_leases WHERE expires_ns > (extract(epoch FROM clock_timestamp()) * 1e9)::bigint")" 0
# (e) b-0's last 100 events deleted, its cursor moved back before them; a new collector takes
# the node over.
step "(e) events deleted before detection saw them"
sql "UPDATE detect_cursors SET id = id - 100 WHERE node = 'b-0';
     DELETE FROM events WHERE node = 'b-0' AND id > (SELECT id FROM detect_cursors WHERE node = 'b-0')" >/dev/null
start c
dw_wait 60 caught_up || fail "(e) c did not catch up"
expect "(e) the deleted events alerted as not evaluated" \
  "$(sql "SELECT count(*) FROM alerts WHERE node = 'b-0' AND rule = 'Event not evaluated' AND json LIKE '%\"sensor.loss.deleted_events\":100%'")" 1
expect "(e) and counted" "$(m c driftwatch_collector_detect_not_evaluated_total)" 100
dw_stop c 30 || fail "(e) c did not stop"
dw_finish "multi_collector: two collectors on one PostgreSQL"
