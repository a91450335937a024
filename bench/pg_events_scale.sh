#!/usr/bin/env bash
# pg_events_scale.sh: do the shared store's indexes keep queries fast at 100M events, and what
# does retention cost? (issue 17)
#
# A private PostgreSQL 15 (tests/integration/pg_env.sh), the store's schema and daily
# partitions made by dw-pg-schema (lib/store/pg_schema), then ROWS generated events spread
# evenly over DAYS days (one partition each), NODES nodes and CONTAINERS containers, with a
# 200-byte payload (a typical exec event's protobuf), inserted by INSERT ... SELECT
# generate_series per day: the indexes are built as rows come, as at ingest. Then, each RUNS
# times with random parameters, the server's execution time (EXPLAIN ANALYZE) of the queries
# the collector and the CLI make:
#   detect-scan     a node's next 1000 events after its cursor (detection)
#   container-last  a container's latest 100 events (driftwatch events --container)
#   fleet-last      the latest 100 events after a time (driftwatch events --since)
#   node-window     a node's events in a 10-minute window (driftwatch events --node --since --until)
#   container-day   how many events a container had in a day
# and retention: dropping the oldest day's partition, against DELETE of a 1/24 of a day's
# rows (the SQLite store's way), scaled to a day. Then, unless ALERT_ROWS=0, the alerts on the
# same server and database: bench/pg_alerts_scale.sh (ALERT_ROWS generated alerts, the CLI's
# `driftwatch alerts` filters timed; its own table and {"bench": "pg_alerts_scale", ...} line).
#
# Usage (root):  bench/pg_events_scale.sh [BUILD_DIR]
#   env: ROWS=100000000 DAYS=10 NODES=100 CONTAINERS=10000 RUNS=20 PGDIR_BASE=/var/tmp
#        ALERT_ROWS=10000000 (0: no alerts part)
#   Disk: about 0.45 KB per row (table and indexes): 45 GB for 100M; and 2.3 KB per alert.
#   Minutes: about one per 6M rows here (100M: 12 minutes, 42 GB), and the alerts part's
#   (pg_alerts_scale.sh). The cluster directory is removed at the end.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
BUILD=$(cd "${1:-$REPO/build}" && pwd)
ROWS=${ROWS:-100000000}
DAYS=${DAYS:-10}
NODES=${NODES:-100}
CONTAINERS=${CONTAINERS:-10000}
RUNS=${RUNS:-20}
ALERT_ROWS=${ALERT_ROWS:-10000000}
source "$REPO/tests/integration/harness.sh"
source "$REPO/tests/integration/pg_env.sh"
[[ $EUID -eq 0 ]] || die "must run as root (the server runs as the postgres user)"
[[ -x $BUILD/tools/dw-pg-schema ]] || die "$BUILD/tools/dw-pg-schema not built"
((ROWS >= DAYS * NODES && CONTAINERS % NODES == 0)) || die "ROWS >= DAYS*NODES and CONTAINERS a multiple of NODES"
dw_harness dw-pg-scale
# A directory of its own under PGDIR_BASE, removed at the end (never a path given as is).
PGDIR=$(mktemp -d "${PGDIR_BASE:-/var/tmp}/dw-pg-scale.XXXXXX")
dw_at_exit rm -rf --one-file-system "$PGDIR"
need_kb=$((ROWS * 45 / 100 + ALERT_ROWS * 23 / 10))
free_kb=$(df -k --output=avail "$PGDIR" | tail -1)
((free_kb > need_kb)) || die "needs about $((need_kb >> 20)) GiB free under $PGDIR, has $((free_kb >> 20))"

dw_pg_start "$PGDIR/pg"
export DW_PG_DB=driftwatch
q() { dw_pg_psql "$1"; }
day_ns=86400000000000
day0=$(( ($(date +%s) / 86400 - DAYS) * day_ns ))
"$BUILD/tools/dw-pg-schema" --db "$DW_PG_URI" --from-ns "$day0" --days "$((DAYS - 1))" >/dev/null
per_day=$((ROWS / DAYS))
per_node_day=$((per_day / NODES))
echo "pg_events_scale: $ROWS events ($DAYS days x $per_day, $NODES nodes, $CONTAINERS containers), PostgreSQL $(q 'SHOW server_version'), $(nproc) CPUs"

t_load0=$(date +%s.%N)
for ((d = 0; d < DAYS; d++)); do
    start=$((day0 + d * day_ns))
    # Bulk load only: this session's commits need not wait for the WAL flush.
    q "SET synchronous_commit = off;
       INSERT INTO events(node, id, run_id, seq, time_ns, stored_ns, cid, kind, payload)
       SELECT 'node-' || lpad((g % $NODES)::text, 4, '0'),
              $((d * per_node_day)) + g / $NODES + 1,
              1 + g % $NODES,
              $((d * per_node_day)) + g / $NODES + 1,
              $start + g * $((day_ns / per_day)),
              $start + g * $((day_ns / per_day)) + 1000000,
              1 + g % $CONTAINERS,
              1 + g % 4,
              decode(repeat('a1b2c3d4', 50), 'hex')
       FROM generate_series(0::bigint, $((per_day - 1))) g" >/dev/null
    printf '  day %d loaded (%s s so far)\n' "$((d + 1))" "$(awk -v a="$(date +%s.%N)" -v b="$t_load0" 'BEGIN { printf "%.0f", a - b }')"
done
load_s=$(awk -v a="$(date +%s.%N)" -v b="$t_load0" 'BEGIN { printf "%.1f", a - b }')
q "ANALYZE events" >/dev/null
table_mb=$(q "SELECT sum(pg_table_size(c.oid)) / 1048576 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'events'::regclass" | cut -d. -f1)
index_mb=$(q "SELECT sum(pg_indexes_size(c.oid)) / 1048576 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'events'::regclass" | cut -d. -f1)
echo "  loaded in $load_s s ($(awk -v r="$ROWS" -v s="$load_s" 'BEGIN { printf "%.0f", r / s }') rows/s), table $table_mb MiB, indexes $index_mb MiB"

# The server's execution time of one query, ms (EXPLAIN ANALYZE runs it).
exec_ms() {
    q "EXPLAIN (ANALYZE, FORMAT JSON) $1" |
        python3 -c '
import collections, json, sys
j = json.load(sys.stdin)[0]
scans = collections.Counter()
def walk(n):
    if "Scan" in n["Node Type"]:
        scans[n["Node Type"].replace(" ", "-") + ("(" + n["Index Name"].split("_", 2)[-1] + ")" if "Index Name" in n else "")] += 1
    for c in n.get("Plans", []):
        walk(c)
walk(j["Plan"])
print("%.3f %s" % (j["Execution Time"], ",".join("%sx%d" % kv for kv in sorted(scans.items()))))'
}
last=$((day0 + (DAYS - 1) * day_ns))
declare -A MS PLAN
for name in detect-scan container-last fleet-last node-window container-day; do MS[$name]=; done
for ((r = 0; r < RUNS; r++)); do
    node=$(printf 'node-%04d' $((RANDOM % NODES)))
    cursor=$(( (RANDOM * 32768 + RANDOM) % (per_node_day * DAYS) ))
    cid=$((1 + (RANDOM * 32768 + RANDOM) % CONTAINERS))
    t=$((last + (RANDOM % 1440) * 60000000000))
    w=$((day0 + (RANDOM % DAYS) * day_ns + (RANDOM % 1430) * 60000000000))
    for name in detect-scan container-last fleet-last node-window container-day; do
        case $name in
        detect-scan) sql="SELECT id, payload FROM events WHERE node = '$node' AND id > $cursor ORDER BY id LIMIT 1000" ;;
        container-last) sql="SELECT id, time_ns, payload FROM events WHERE cid = $cid ORDER BY time_ns DESC LIMIT 100" ;;
        fleet-last) sql="SELECT id, time_ns, payload FROM events WHERE time_ns >= $t ORDER BY time_ns DESC LIMIT 100" ;;
        node-window) sql="SELECT id, payload FROM events WHERE node = '$node' AND time_ns BETWEEN $w AND $((w + 600000000000)) ORDER BY time_ns LIMIT 1000" ;;
        container-day) sql="SELECT count(*) FROM events WHERE cid = $cid AND time_ns >= $w AND time_ns < $((w + day_ns))" ;;
        esac
        read -r ms plan < <(exec_ms "$sql")
        MS[$name]+=" $ms"
        PLAN[$name]=$plan
    done
done

# Retention: the oldest day's partition dropped, against DELETE of an hour of a day.
oldest=$(q "SELECT min(c.relname) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'events'::regclass")
hour_end=$((day0 + day_ns + 3600000000000))
t0=$(date +%s.%N)
q "DELETE FROM events WHERE stored_ns >= $((day0 + day_ns)) AND stored_ns < $hour_end" >/dev/null
delete_s=$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%.2f", a - b }')
t0=$(date +%s.%N)
q "DROP TABLE $oldest" >/dev/null
drop_s=$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%.3f", a - b }')

echo
printf '  %-16s %10s %10s %10s  %s\n' query "median ms" "p95 ms" "max ms" "scans (last run)"
json_q=
for name in detect-scan container-last fleet-last node-window container-day; do
    # shellcheck disable=SC2086
    read -r med p95 mx < <(printf '%s\n' ${MS[$name]} | sort -n | awk '{ v[NR] = $1 } END {
        i = int(NR * 0.95 + 0.5); if (i < 1) i = 1; if (i > NR) i = NR
        printf "%s %s %s\n", (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2), v[i], v[NR] }')
    printf '  %-16s %10s %10s %10s  %s\n' "$name" "$med" "$p95" "$mx" "${PLAN[$name]}"
    json_q+="${json_q:+, }\"$name\": {\"median_ms\": $med, \"p95_ms\": $p95, \"max_ms\": $mx}"
done
echo "  retention: DROP of a day's partition ($per_day rows) $drop_s s; DELETE of an hour of a day $delete_s s (x24 for a day: $(awk -v s="$delete_s" 'BEGIN { printf "%.0f", s * 24 }') s)"
echo "{\"bench\": \"pg_events_scale\", \"rows\": $ROWS, \"days\": $DAYS, \"load_s\": $load_s, \"table_mib\": $table_mb, \"index_mib\": $index_mb, \"queries\": {$json_q}, \"drop_day_s\": $drop_s, \"delete_hour_s\": $delete_s}"

# The alerts, on this server and database (the events stay: one store, as in production).
if ((ALERT_ROWS > 0)); then
    echo
    DW_PG_REUSE=1 ALERT_ROWS=$ALERT_ROWS DAYS=$DAYS NODES=$NODES CONTAINERS=$CONTAINERS RUNS=$RUNS \
        bash "$HERE/pg_alerts_scale.sh" "$BUILD" || die "pg_alerts_scale.sh failed"
fi
