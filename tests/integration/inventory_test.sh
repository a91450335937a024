#!/bin/bash
# Drift inventory replies between simulated sensors (dw-loadgen) and a real collector over
# gRPC: (a) a reply of 16 MiB to a command never sent is discarded after a walk over its
# bytes, logged with the node, counted, and the stream goes on (the collector's peak RSS
# before and after is printed); (b) a reply of about 19 MiB, over the 16 MiB message limit,
# arrives in chunks and is stored whole, marked incomplete as the sensor said;
# `driftwatch inventory` says so; (c) chunks out of order and (d) a reply over
# --inventory-max-bytes are discarded and counted, the command stored as failed, the stream
# goes on; (e) a reply in one message (a sensor from before chunks) is still taken.
# Usage: inventory_test.sh BUILD_DIR
set -euo pipefail
source "$(dirname "$0")/harness.sh"
dw_build "${1:?usage: inventory_test.sh BUILD_DIR}" collector loadgen dw
dw_harness dw_inventory_test

# The collectors take messages up to 16 MiB (the default is 2 MiB): a reply as large as
# an older sensor's single-message inventory must cost a walk over its bytes, not a parse.
start_collector() {  # start_collector NAME ARGS...: sets $port, $mport
  local name=$1
  shift
  dw_collector_start "$name" --insecure --listen 127.0.0.1:0 --db "$tmp/$name.db" \
    --metrics-address 127.0.0.1:0 --inventory-quiet-ms 200 --max-message-bytes 16777216 "$@"
}
discards() { metric driftwatch_collector_inventory_chunks_discarded_total "node=\"$1\",reason=\"$2\""; }
sim() {  # sim NAME PREFIX ARGS...: one simulated sensor, its JSON in $tmp/NAME.json
  local name=$1 prefix=$2
  shift 2
  "$loadgen" --target "127.0.0.1:$port" --insecure --sensors 1 --node-prefix "$prefix" \
    "$@" >"$tmp/$name.json" || true
}
inventory_stored() { "$dw" inventory --db "$tmp/main.db" --node "$1" --json >"$tmp/inv.json" 2>/dev/null; [[ -s $tmp/inv.json ]]; }
# stored NODE PYTHON-EXPR: evaluates EXPR on the node's newest stored inventory (`i`, as
# `driftwatch inventory --json` prints it) once one is stored (up to 20 s).
stored() {
  dw_wait 20 inventory_stored "$1" || true
  python3 -c "import json,sys; i=[json.loads(l) for l in open(sys.argv[1])][-1]; print($2)" \
    "$tmp/inv.json" 2>&1
}

start_collector main --inventory-max-bytes 33554432

# (a) 16 MiB of empty entries to a command never sent (the largest message the collector
# takes): parsed whole, ~800 MB; walked, its size.
hwm_before=$(dw_hwm_kb "$(dw_pid main)")
sim a stray- --events-per-sensor 100 --stray-inventory --stray-inventory-bytes 16777000
hwm_after=$(dw_hwm_kb "$(dw_pid main)")
echo "collector peak RSS: ${hwm_before} kB before a 16 MiB unsolicited inventory reply, ${hwm_after} kB after"
expect "(a) unsolicited reply: stream goes on, events after it stored" \
  "$(json "$tmp/a.json" '(j["status"], j["stored"])')" "({'OK': 1}, 100)"
grep -q "node stray-0: inventory reply chunk to command 424242 discarded (unsolicited: no such command outstanding on this stream)" \
  "$tmp/main.log" && ok "(a) logged with the node" || fail "(a) not logged: $(grep -i inventory "$tmp/main.log")"
expect "(a) counted" "$(discards stray-0 unsolicited)" 1

# (b) 70,000 entries of ~280 bytes: about 19 MiB, in chunks of about 1 MiB.
sim b big- --events-per-sensor 50 --drift --answer-inventory 30 --inventory-entries 70000 \
  --inventory-truncated
expect "(b) answered, stream ok" "$(json "$tmp/b.json" '(j["status"], j["inventories_answered"])')" \
  "({'OK': 1}, 1)"
expect "(b) stored whole" \
  "$(stored big-0 '(i["error"], len(i["entries"]), i["entries"][0]["path"][:8], i["entries"][-1]["path"][-5:], i["truncated"]["depth"])')" \
  "('', 70000, '/data/nn', '69999', True)"
"$dw" inventory --db "$tmp/main.db" --node big-0 payments/payments-api-7d9f8c6b5-x2x7q/api >"$tmp/b.table" || true
tail -2 "$tmp/b.table" | grep -q "^70000 change(s): 70000 added" &&
  tail -1 "$tmp/b.table" | grep -q "^the listing is incomplete: 1 directory below the depth cap (128 levels) not entered, the first /data/deep" &&
  ok "(b) driftwatch inventory says the listing is incomplete, and why" ||
  fail "(b) table: $(tail -3 "$tmp/b.table")"
"$dw" inventory --db "$tmp/main.db" --node big-0 >"$tmp/b.list"
grep -q " 70000+ " "$tmp/b.list" && grep -q "^+: the listing is incomplete" "$tmp/b.list" &&
  ok "(b) the listing marks it" || fail "(b) listing: $(cat "$tmp/b.list")"
[[ $(discards big-0 unsolicited) == 0 ]] && ok "(b) nothing discarded" || fail "(b) discards"

# (c) the second chunk first: the reply is discarded, all three chunks counted.
sim c order- --events-per-sensor 50 --drift --answer-inventory 30 --inventory-entries 10000 \
  --inventory-misorder
expect "(c) stream goes on" "$(json "$tmp/c.json" '(j["status"], j["stored"])')" "({'OK': 1}, 50)"
expect "(c) stored as failed" "$(stored order-0 '(i["error"], len(i["entries"]))')" \
  "('the collector discarded the reply (out_of_order): chunk 1, expected 0', 0)"
expect "(c) counted" "$(discards order-0 out_of_order)" 3

# (e) one message without chunk fields, as sensors sent before chunks.
sim e old- --events-per-sensor 50 --drift --answer-inventory 30
expect "(e) a reply in one message is stored" \
  "$(stored old-0 '(i["error"], [e["path"] for e in i["entries"]])')" \
  "('', ['/usr/local/bin/dropped', '/etc/motd'])"

# (d) a collector taking 1.5 MiB of replies per stream: the second chunk goes over.
start_collector small --inventory-max-bytes 1572864
sim d cap- --events-per-sensor 50 --drift --answer-inventory 30 --inventory-entries 10000
expect "(d) stream goes on" "$(json "$tmp/d.json" '(j["status"], j["stored"])')" "({'OK': 1}, 50)"
expect "(d) counted" "$(discards cap-0 over_cap)" 2
grep -q "node cap-0: inventory reply chunk to command 1 discarded (over_cap: the inventory replies this stream is joining would go over 1572864 bytes" \
  "$tmp/small.log" && ok "(d) logged" || fail "(d) not logged: $(grep -i inventory "$tmp/small.log")"
expect "(d) the command failed" "$(metric 'driftwatch_collector_inventories_total{result="failed"}')" 1
dw_finish "inventory_test: all passed"
