#!/usr/bin/env bash
# pg_alerts_scale.sh: does `driftwatch alerts --db postgresql://...` stay fast, filter by
# filter, over millions of stored alerts? (issue 17) Called by bench/pg_events_scale.sh on its
# server and database after the events (ALERT_ROWS there), or on its own.
#
# The alerts table made by the store's real migrations (dw-pg-schema runs migration 2 of
# lib/store/pg_schema.cc, as the collector's PgAlertStore does), then ALERT_ROWS generated
# alerts, inserted by INSERT ... SELECT generate_series per day (the indexes built as rows
# come, as at ingest), times spread evenly over the DAYS days before now (id order is time
# order, as stored): NODES nodes; CONTAINERS containers (64-hex ids, two per pod, each on one
# node, 10 namespaces, 20 workloads), the containers' share skewed (container k of n gets
# alerts in proportion to about 1/sqrt(k/n): a few noisy ones, a long tail); the 20 shipped
# rules with their own priorities and a realistic skew (file writes 30%, baseline and shell
# rules next, each CRITICAL rule 0.1 to 0.4%); a message and Falco JSON (~700 bytes) as the
# collector stores them; one alert in 10 an aggregate of 2 to 50 repeats.
# Then, RUNS times each with random values, the wall time of the CLI (process, connection,
# query, JSON lines written to a file) for each filter:
#   floor           --node no-such-node --limit 100 (process start, connection, an empty
#                   index probe: what every row below pays)
#   none            --limit 100 (the newest 100 alerts)
#   node            --node N --limit 100
#   container       --container PREFIX (12 hex digits, as `docker ps` shows) --limit 100
#   pod             --pod NAME --limit 100
#   rule            --rule R --limit 100 (R by the rules' weights)
#   prio-critical   --priority critical --limit 100 (critical or more severe: 0.8%)
#   prio-warning    --priority warning --limit 100 (warning or more severe: ~44%)
#   since-until     --since T --until T+1h --limit 100, T anywhere in the DAYS days
#   window-all      --since T --until T+10m, no --limit: every match (~ALERT_ROWS/DAYS/144)
# and, for the last run's values, the server's execution time and scans of the same SQL
# (EXPLAIN ANALYZE of what lib/alerts/pg_alert_reader.cc sends). A filter whose median is
# over 100 ms gets its plan printed (EXPLAIN ANALYZE, BUFFERS) below the table.
#
# Usage (root):  bench/pg_alerts_scale.sh [BUILD_DIR]
#   env: ALERT_ROWS=10000000 DAYS=10 NODES=100 CONTAINERS=10000 RUNS=20 PGDIR_BASE=/var/tmp
#   LOAD_JOBS (sessions generating days at once: nproc). Disk: about 2.3 KB per alert (table
#   and indexes): 23 GB for 10M. About 17 minutes for 10M here (the load 14 of them, on 2
#   CPUs others were using too). DW_PG_REUSE=1 with pg_env.sh's DW_PG_* exported: that
#   server and database (bench/pg_events_scale.sh), else a private server whose cluster is
#   removed at the end.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
BUILD=$(cd "${1:-$REPO/build}" && pwd)
ALERT_ROWS=${ALERT_ROWS:-10000000}
DAYS=${DAYS:-10}
NODES=${NODES:-100}
CONTAINERS=${CONTAINERS:-10000}
RUNS=${RUNS:-20}
source "$REPO/tests/integration/harness.sh"
source "$REPO/tests/integration/pg_env.sh"
[[ $EUID -eq 0 ]] || die "must run as root (the server runs as the postgres user)"
dw_build "$BUILD" dw
[[ -x $BUILD/tools/dw-pg-schema ]] || die "$BUILD/tools/dw-pg-schema not built"
((ALERT_ROWS >= DAYS && CONTAINERS >= 2)) || die "ALERT_ROWS >= DAYS and CONTAINERS >= 2"
dw_harness dw-pg-alerts
need_kb=$((ALERT_ROWS * 23 / 10))
if [[ -n ${DW_PG_REUSE:-} ]]; then
    [[ -n ${DW_PG_URI:-} && -n ${DW_PG_SOCK:-} && -n ${DW_PG_PORT:-} ]] || die "DW_PG_REUSE=1 without DW_PG_URI, DW_PG_SOCK, DW_PG_PORT"
    free_kb=$(df -k --output=avail "$DW_PG_SOCK" | tail -1)
else
    # A directory of its own under PGDIR_BASE, removed at the end (never a path given as is).
    PGDIR=$(mktemp -d "${PGDIR_BASE:-/var/tmp}/dw-pg-alerts.XXXXXX")
    dw_at_exit rm -rf --one-file-system "$PGDIR"
    free_kb=$(df -k --output=avail "$PGDIR" | tail -1)
fi
((free_kb > need_kb)) || die "needs about $((need_kb >> 20)) GiB free, has $((free_kb >> 20))"
[[ -n ${DW_PG_REUSE:-} ]] || dw_pg_start "$PGDIR/pg"
export DW_PG_DB=driftwatch
q() { dw_pg_psql "$1"; }
"$BUILD/tools/dw-pg-schema" --db "$DW_PG_URI" --days 0 >/dev/null
[[ $(q "SELECT count(*) FROM (SELECT 1 FROM alerts LIMIT 1) a") == 0 ]] || die "the alerts table is not empty"

day_ns=86400000000000
now_ns=$(($(date +%s%N) / 1000000000 * 1000000000))
t_first=$((now_ns - DAYS * day_ns))
per_day=$((ALERT_ROWS / DAYS))
step_ns=$((day_ns / per_day))
# The shipped rules (rules/driftwatch_rules.yaml), their priorities (0 emergency .. 7 debug)
# and weights per 1000 alerts.
RULES="('Container File System Write', 5, 300), ('Unexpected process for image', 4, 150),
  ('Container Shell Spawned', 4, 120), ('Unexpected connection for image', 5, 100),
  ('Container Image Mutable Tag', 5, 60), ('Container Writable Root Filesystem', 5, 60),
  ('Sensitive file read in container', 4, 40), ('Drift Detected (Container Image Modified Binary)', 4, 40),
  ('Package Manager Execution in Container', 3, 35), ('Unexpected listener for image', 5, 20),
  ('Unexpected sensitive read for image', 5, 20), ('Exec of Missing Binary in Container', 5, 15),
  ('Drift Prevention Dry Run', 4, 10), ('Forbidden Exec Attempt in Container', 4, 8),
  ('Container Image Not Approved', 3, 8), ('Container Drift Detected (chmod)', 3, 6),
  ('Drop and execute new binary in container', 2, 4), ('Drift Prevented', 2, 2),
  ('Execution from /dev/shm', 2, 1), ('Fileless execution via memfd_create', 2, 1)"
echo "pg_alerts_scale: $ALERT_ROWS alerts ($DAYS days x $per_day, $NODES nodes, $CONTAINERS containers, 20 rules), PostgreSQL $(q 'SHOW server_version'), $(nproc) CPUs"

load_day() {  # D: the D-th day's alerts
    local d=$1 start=$((t_first + $1 * day_ns))
    # One row of arrays (rule of each 1/1000 of the weight; names, priorities, workloads,
    # namespaces); per alert a container (skewed), its pod, node and names, a rule.
    q "SET synchronous_commit = off;
       SELECT setseed($((d + 1)) / 100.0);
       INSERT INTO alerts(time_ns, stored_ns, node, container_id, container_name, pod_name,
                          pod_namespace, rule, priority, event_key, message, json, count,
                          first_ns, last_ns, agg_key, open_until_ns)
       WITH r(name, prio, weight) AS (VALUES $RULES),
       k AS (SELECT array_agg(name ORDER BY ord) AS names, array_agg(prio ORDER BY ord) AS prios,
                    array_agg(weight ORDER BY ord) AS weights
             FROM (SELECT *, row_number() OVER () AS ord FROM r) x),
       w AS (SELECT (SELECT array_agg(i ORDER BY i, n) FROM k, generate_subscripts(k.weights, 1) i,
                            generate_series(1, k.weights[i]) n) AS pick,
                    ARRAY['payments', 'checkout', 'search', 'ingest', 'billing', 'auth', 'web',
                          'batch', 'monitoring', 'kube-system'] AS nss,
                    ARRAY['api', 'worker', 'frontend', 'cron', 'gateway', 'cache', 'indexer',
                          'exporter', 'scheduler', 'router', 'uploader', 'mailer', 'db-proxy',
                          'queue', 'auth', 'reporter', 'sync', 'loader', 'notifier', 'agent'] AS wls),
       g AS (SELECT g, $start + g * $step_ns + (random() * $step_ns)::bigint AS t,
                    1 + floor($CONTAINERS * power(random(), 2))::bigint AS cid,
                    w.pick[1 + floor(random() * 1000)::int] AS ri,
                    random() < 0.1 AS agg, 2 + floor(random() * 49)::int AS reps
             FROM generate_series(0::bigint, $((per_day - 1))) g, w),
       c AS (SELECT g.*, 'node-' || lpad((cid % $NODES)::text, 4, '0') AS node,
                    md5(cid::text) || md5('c' || cid) AS id,
                    w.wls[1 + ((cid - 1) / 2) % 20] AS workload,
                    CASE WHEN cid % 2 = 0 THEN 'sidecar' ELSE w.wls[1 + ((cid - 1) / 2) % 20] END AS cname,
                    w.nss[1 + ((cid - 1) / 2 / 20) % 10] AS ns,
                    w.wls[1 + ((cid - 1) / 2) % 20] || '-' || substr(md5('p' || (cid - 1) / 2), 1, 10) || '-' ||
                      substr(md5('q' || (cid - 1) / 2), 1, 5) AS pod,
                    k.names[ri] AS rule, k.prios[ri] AS prio
             FROM g, w, k),
       m AS (SELECT c.*, rule || ' (user=root command=sh -c /usr/local/bin/' || workload ||
                      '-update --once container_id=' || left(id, 12) || ' container_name=' || cname ||
                      ' image=registry.example.com/' || ns || '/' || workload || ':1.42.0 k8s.ns=' || ns ||
                      ' k8s.pod=' || pod || ')' AS msg
             FROM c)
       SELECT t, t + 1000000000 + (random() * 2e9)::bigint, node, id, cname, pod, ns, rule, prio,
              node || '/9e3c1f0a-1111-2222-3333-' || lpad(to_hex(cid), 12, '0') || '/1764320000000000000/' || ($((d * per_day)) + g),
              msg,
              json_build_object('hostname', node,
                  'output', to_char(to_timestamp(t / 1e9) AT TIME ZONE 'UTC', 'HH24:MI:SS.US') || ': ' ||
                            (ARRAY['Emergency', 'Alert', 'Critical', 'Error', 'Warning', 'Notice', 'Informational', 'Debug'])[prio + 1] ||
                            ' ' || msg,
                  'output_fields', json_build_object('container.id', left(id, 12),
                      'container.image', 'registry.example.com/' || ns || '/' || workload || ':1.42.0',
                      'container.image.id', 'sha256:' || md5(workload) || md5(ns),
                      'container.image.repository', 'registry.example.com/' || ns || '/' || workload,
                      'container.name', cname, 'evt.time', t, 'k8s.ns.name', ns, 'k8s.pod.name', pod,
                      'proc.cmdline', 'sh -c /usr/local/bin/' || workload || '-update --once',
                      'user.name', 'root'),
                  'priority', (ARRAY['Emergency', 'Alert', 'Critical', 'Error', 'Warning', 'Notice', 'Informational', 'Debug'])[prio + 1],
                  'rule', rule, 'source', 'syscall', 'tags', json_build_array('container', 'drift'),
                  'time', to_char(to_timestamp(t / 1e9) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'))::text,
              CASE WHEN agg THEN reps ELSE 1 END, t,
              CASE WHEN agg THEN t + reps * 1000000000::bigint ELSE t END,
              CASE WHEN prio > 2 THEN node || chr(10) || id || chr(10) || rule ELSE '' END, 0
       FROM m" >/dev/null
    printf '  day %d loaded (%s s so far)\n' "$((d + 1))" "$(awk -v a="$(date +%s.%N)" -v b="$t_load0" 'BEGIN { printf "%.0f", a - b }')"
}
# The generation is CPU-bound in one backend: LOAD_JOBS sessions at once, each a day at a time.
jobs=${LOAD_JOBS:-$(nproc)}
t_load0=$(date +%s.%N)
pids=()
for ((j = 0; j < jobs; j++)); do
    (for ((d = j; d < DAYS; d += jobs)); do load_day "$d"; done) &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || die "loading alerts failed"; done
load_s=$(awk -v a="$(date +%s.%N)" -v b="$t_load0" 'BEGIN { printf "%.1f", a - b }')
q "ANALYZE alerts" >/dev/null
read -r rows table_mb index_mb json_b < <(q "SELECT count(*), pg_table_size('alerts') / 1048576, pg_indexes_size('alerts') / 1048576,
    coalesce((SELECT avg(length(json))::int FROM (SELECT json FROM alerts TABLESAMPLE SYSTEM (1)) s), 0) FROM alerts" | tr '|' ' ')
echo "  loaded $rows in $load_s s ($(awk -v r="$rows" -v s="$load_s" 'BEGIN { printf "%.0f", r / s }') rows/s), table $table_mb MiB, indexes $index_mb MiB, JSON ~$json_b bytes an alert"
q "SELECT '  by priority (0 emergency .. 7 debug): ' || string_agg(p || ' ' || pct || '%', ', ' ORDER BY p)
   FROM (SELECT priority AS p, round(100.0 * count(*) / $rows, 2) AS pct FROM alerts GROUP BY 1) x"
mapfile -t rule_pick < <(q "WITH r(name, prio, weight) AS (VALUES $RULES) SELECT name FROM r, generate_series(1, weight)")
iso() { date -u -d "@$(($1 / 1000000000))" +%Y-%m-%dT%H:%M:%SZ; }
sqlq() { printf "'%s'" "${1//\'/\'\'}"; }
cols="id, time_ns, stored_ns, node, container_id, container_name, pod_name, pod_namespace, rule, priority, message, json, count, first_ns, last_ns, open_until_ns <> 0 AS open"
# The SQL the CLI sends (lib/alerts/pg_alert_reader.cc, Filter::Select), values inline.
cli_sql() {  # WHERE LIMIT(0: none)
    if (($2 == 0)); then
        echo "SELECT $cols FROM alerts WHERE true$1 ORDER BY time_ns, id"
    else
        echo "SELECT * FROM (SELECT $cols FROM alerts WHERE true$1 ORDER BY time_ns DESC, id DESC LIMIT $2) AS newest ORDER BY time_ns, id"
    fi
}
# The server's execution time (ms) and scans of one query (EXPLAIN ANALYZE runs it).
exec_ms() {
    q "EXPLAIN (ANALYZE, FORMAT JSON) $1" | python3 -c '
import collections, json, sys
j = json.load(sys.stdin)[0]
scans = collections.Counter()
def walk(n):
    if "Scan" in n["Node Type"]:
        scans[n["Node Type"].replace(" ", "-") + ("(" + n["Index Name"] + ")" if "Index Name" in n else "")] += 1
    for c in n.get("Plans", []):
        walk(c)
walk(j["Plan"])
print("%.1f %s" % (j["Execution Time"], ",".join("%sx%d" % kv for kv in sorted(scans.items()))))'
}

names=(floor none node container pod rule prio-critical prio-warning since-until window-all)
declare -A MS ROWS ARGS SQL SRV PLAN
for name in "${names[@]}"; do MS[$name]=; ROWS[$name]=; done
for ((r = 0; r < RUNS; r++)); do
    node=$(printf 'node-%04d' $((RANDOM % NODES)))
    cid=$((1 + (RANDOM * 32768 + RANDOM) % CONTAINERS))
    cprefix=$(printf '%s' "$cid" | md5sum | cut -c1-12)
    pod=$(q "SELECT pod_name FROM alerts WHERE container_id LIKE '$cprefix%' LIMIT 1")
    [[ -n $pod ]] || pod=no-such-pod
    rule=${rule_pick[RANDOM % ${#rule_pick[@]}]}
    t=$((t_first + (RANDOM * 32768 + RANDOM) % (DAYS * 86400 - 3600) * 1000000000))
    for name in "${names[@]}"; do
        case $name in
        floor) args=(--node no-such-node --limit 100); where=" AND node = 'no-such-node'"; lim=100 ;;
        none) args=(--limit 100); where=; lim=100 ;;
        node) args=(--node "$node" --limit 100); where=" AND node = '$node'"; lim=100 ;;
        container) args=(--container "$cprefix" --limit 100); where=" AND container_id LIKE '$cprefix%'"; lim=100 ;;
        pod) args=(--pod "$pod" --limit 100); where=" AND pod_name = '$pod'"; lim=100 ;;
        rule) args=(--rule "$rule" --limit 100); where=" AND rule = $(sqlq "$rule")"; lim=100 ;;
        prio-critical) args=(--priority critical --limit 100); where=" AND priority <= 2"; lim=100 ;;
        prio-warning) args=(--priority warning --limit 100); where=" AND priority <= 4"; lim=100 ;;
        since-until) args=(--since "$(iso "$t")" --until "$(iso $((t + 3600000000000)))" --limit 100)
            where=" AND time_ns >= $t AND time_ns < $((t + 3600000000000))"; lim=100 ;;
        window-all) args=(--since "$(iso "$t")" --until "$(iso $((t + 600000000000)))")
            where=" AND time_ns >= $t AND time_ns < $((t + 600000000000))"; lim=0 ;;
        esac
        t0=${EPOCHREALTIME/./}
        "$dw" alerts --db "$DW_PG_URI" "${args[@]}" >"$tmp/out" || die "driftwatch alerts ${args[*]} failed"
        t1=${EPOCHREALTIME/./}
        MS[$name]+=" $(awk -v a="$t1" -v b="$t0" 'BEGIN { printf "%.1f", (a - b) / 1000 }')"
        ROWS[$name]+=" $(wc -l <"$tmp/out")"
        ARGS[$name]=${args[*]}
        SQL[$name]=$(cli_sql "$where" "$lim")
    done
done
for name in "${names[@]}"; do read -r "SRV[$name]" "PLAN[$name]" < <(exec_ms "${SQL[$name]}"); done

stats() {  # VALUES...: median p95 max
    printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END {
        i = int(NR * 0.95 + 0.5); if (i < 1) i = 1; if (i > NR) i = NR
        printf "%s %s %s\n", (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2), v[i], v[NR] }'
}
echo
echo "  driftwatch alerts --db postgresql://... over $rows alerts, $RUNS runs each (wall ms of the CLI; server ms: EXPLAIN ANALYZE of the last run's SQL)"
printf '  %-14s %9s %8s %8s %9s %7s  %-44s %s\n' filter "median ms" "p95 ms" "max ms" "server ms" rows "scans (last run)" "last run's arguments"
json_q=
slow=()
for name in "${names[@]}"; do
    # shellcheck disable=SC2086
    read -r med p95 mx < <(stats ${MS[$name]})
    # shellcheck disable=SC2086
    read -r rmed _ _ < <(stats ${ROWS[$name]})
    printf '  %-14s %9s %8s %8s %9s %7s  %-44s %s\n' "$name" "$med" "$p95" "$mx" "${SRV[$name]}" "$rmed" "${PLAN[$name]}" "${ARGS[$name]}"
    json_q+="${json_q:+, }\"$name\": {\"median_ms\": $med, \"p95_ms\": $p95, \"max_ms\": $mx, \"server_ms_last\": ${SRV[$name]}, \"rows_median\": $rmed}"
    awk -v m="$med" 'BEGIN { exit !(m > 100) }' && slow+=("$name")
done
for name in "${slow[@]}"; do
    echo
    echo "  SLOW (median > 100 ms): $name (driftwatch alerts ${ARGS[$name]}); its plan:"
    q "EXPLAIN (ANALYZE, BUFFERS) ${SQL[$name]}" | sed 's/^/    /'
done
echo "{\"bench\": \"pg_alerts_scale\", \"rows\": $rows, \"days\": $DAYS, \"load_s\": $load_s, \"table_mib\": $table_mb, \"index_mib\": $index_mb, \"queries\": {$json_q}, \"slow\": [$(printf '"%s",' "${slow[@]}" | sed 's/,$//')]}"
