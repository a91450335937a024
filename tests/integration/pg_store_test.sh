#!/bin/bash
# The shared store's PostgreSQL code (lib/store/pg_conn) against a real server: a private
# PostgreSQL (pg_env.sh) started here, the gtests of tests/pg run with DW_PG_URI pointing at
# it, the server stopped by PID.
# Usage: pg_store_test.sh BUILD_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/harness.sh"
source "$here/pg_env.sh"
build=$(cd "${1:?usage: pg_store_test.sh BUILD_DIR}" && pwd)
[[ -x $build/tests/pg_tests ]] || die "$build/tests/pg_tests not built"
dw_harness dwpgs
dw_pg_start "$tmp/pg"
# The test databases are made by dw, the tests' role.
dw_pg_psql "ALTER ROLE dw CREATEDB" >/dev/null
# The two-collector run: 1M events (about 10 s here); 200k under the sanitizers (a Debug
# build, several times slower), where what counts is memory safety, not volume.
two=${DW_PG_TWO_EVENTS:-1000000}
grep -q '^DW_SANITIZE:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null && two=${DW_PG_TWO_EVENTS:-200000}
DW_PG_URI=$DW_PG_URI DW_PG_TWO_EVENTS=$two "$build/tests/pg_tests" && ok "pg_tests" || fail "pg_tests"
# The CLI on the database pg_event_reader_test leaves: driftwatch events --db postgresql://.
reader_uri=${DW_PG_URI%/*}/dw_reader
"$build/cli/driftwatch" events --db "$reader_uri" --node n1 >"$tmp/events.jsonl" 2>"$tmp/events.err" ||
    fail "driftwatch events --db postgresql://: $(cat "$tmp/events.err")"
expect "driftwatch events --db postgresql:// --node n1" \
    "$(python3 -c 'import json, sys; print(" ".join("%s:%s" % (e["evt.hostname"], e["container.name"]) for e in map(json.loads, open(sys.argv[1]))))' "$tmp/events.jsonl")" \
    "n1:web n1:web"
# The CLI on the database pg_alert_store_test leaves (EveryFilterGivesWhatSqliteGives):
# driftwatch alerts and driftwatch inventory --db postgresql://.
alerts_uri=${DW_PG_URI%/*}/dw_alert_reader
"$build/cli/driftwatch" alerts --db "$alerts_uri" --node n2 --limit 2 >"$tmp/alerts.jsonl" 2>"$tmp/alerts.err" ||
    fail "driftwatch alerts --db postgresql://: $(cat "$tmp/alerts.err")"
expect "driftwatch alerts --db postgresql:// --node n2 --limit 2: the newest two, oldest first" \
    "$(python3 -c 'import json, sys; print(" ".join("%s:%s" % (a["hostname"], a["output_fields"]["container.id"]) for a in map(json.loads, open(sys.argv[1]))))' "$tmp/alerts.jsonl")" \
    "n2:aaaaaaaaaaaa n2:host"
"$build/cli/driftwatch" alerts --db "$alerts_uri" --rule Repeated --table >"$tmp/alerts.txt" 2>"$tmp/alerts.err" ||
    fail "driftwatch alerts --table --db postgresql://: $(cat "$tmp/alerts.err")"
check "driftwatch alerts --table --db postgresql://: the aggregate of 4, still open" \
    grep -q "Repeated" "$tmp/alerts.txt"
check "driftwatch alerts --table --db postgresql://: its count" grep -qE "  4\+ +Repeated" "$tmp/alerts.txt"
"$build/cli/driftwatch" inventory --db "$alerts_uri" --all --json >"$tmp/inventory.jsonl" 2>"$tmp/inventory.err" ||
    fail "driftwatch inventory --db postgresql://: $(cat "$tmp/inventory.err")"
expect "driftwatch inventory --db postgresql:// --all --json" \
    "$(python3 -c 'import json, sys; print(" ".join("%s:%s" % (i["node"], i["container.name"]) for i in map(json.loads, open(sys.argv[1]))))' "$tmp/inventory.jsonl")" \
    "n1:web n1:api n2:web"
# The CLI on the database PgStoreStatusTest leaves: driftwatch status --db postgresql://,
# the fleet as the store records it (three nodes, leases of collector-a and of collector-b,
# whose lease ran out; collector-a and collector-c alive).
status_uri=${DW_PG_URI%/*}/dw_status
"$build/cli/driftwatch" status --db "$status_uri" >"$tmp/status.txt" 2>"$tmp/status.err" ||
    fail "driftwatch status --db postgresql://: $(cat "$tmp/status.err")"
check "driftwatch status --db postgresql://: the store, its schema and the live collectors: $(head -1 "$tmp/status.txt")" \
    grep -qE "^store +postgresql://.*/dw_status: PostgreSQL, schema version [0-9]+; collectors alive: collector-a, collector-c$" "$tmp/status.txt"
check "driftwatch status --db postgresql://: the password is not printed" \
    bash -c '! grep -qF "$1" "$2"' _ "${DW_PG_URI#*://dw:}" "$tmp/status.txt"
check "driftwatch status --db postgresql://: n1, 2 streams, 7 stored, 4 missing, lag 5, evaluated by collector-a" \
    grep -qE "^n1 +2 +[0-9]+[smhd] ago +7 +4 +5 +collector-a$" "$tmp/status.txt"
check "driftwatch status --db postgresql://: n2's lease ran out" \
    grep -qE "^n2 +0 +[0-9]+[smhd] ago +1 +0 +1 +collector-b \(expired\)$" "$tmp/status.txt"
check "driftwatch status --db postgresql://: n3, evaluated by nobody" \
    grep -qE "^n3 +1 +[0-9]+[smhd] ago +0 +0 +0 +-$" "$tmp/status.txt"
"$build/cli/driftwatch" status --db "$status_uri" --json >"$tmp/status.json" 2>"$tmp/status.err" ||
    fail "driftwatch status --db postgresql:// --json: $(cat "$tmp/status.err")"
expect "driftwatch status --db postgresql:// --json: node:lag:owner:expired, and the collectors" \
    "$(python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(" ".join("%s:%s:%s:%s" % (n["node"], n["detect_lag_events"], n["evaluated_by"], n["lease_expired"]) for n in d["nodes"]), ",".join(d["collectors"]), d["backend"])' "$tmp/status.json")" \
    "n1:5:collector-a:False n2:1:collector-b:True n3:0:None:False collector-a,collector-c postgresql"
if "$build/cli/driftwatch" status --db "${DW_PG_URI%/*}/postgres" >/dev/null 2>"$tmp/foreign-status.err"; then
    fail "status from a database without the store's schema"
else
    check "status: a database without the store's schema is named, without the password: $(cat "$tmp/foreign-status.err")" \
        bash -c '! grep -qF "$1" "$2" && grep -q "not a driftwatch store" "$2"' _ "${DW_PG_URI#*://dw:}" "$tmp/foreign-status.err"
fi
if "$build/cli/driftwatch" status --db "$status_uri" --collector >/dev/null 2>"$tmp/both.err"; then
    fail "status --db with --collector"
else
    check "status: --db and --collector together are refused: $(cat "$tmp/both.err")" \
        grep -q "excludes" "$tmp/both.err"
fi
if "$build/cli/driftwatch" alerts --db "${DW_PG_URI%/*}/postgres" >/dev/null 2>"$tmp/foreign-alerts.err"; then
    fail "alerts from a database without the store's schema"
else
    check "alerts: a database without the store's schema is named, without the password: $(cat "$tmp/foreign-alerts.err")" \
        bash -c '! grep -qF "$1" "$2" && grep -q "not a driftwatch store" "$2"' _ "${DW_PG_URI#*://dw:}" "$tmp/foreign-alerts.err"
fi
if "$build/cli/driftwatch" events --db "${DW_PG_URI%/*}/postgres" >/dev/null 2>"$tmp/foreign.err"; then
    fail "events from a database without the store's schema"
else
    check "a database without the store's schema is named, without the password: $(cat "$tmp/foreign.err")" \
        bash -c '! grep -qF "$1" "$2" && grep -q "not a driftwatch store" "$2"' _ "${DW_PG_URI#*://dw:}" "$tmp/foreign.err"
fi
dw_finish "pg_store: PgConn and migrations against a real PostgreSQL"
