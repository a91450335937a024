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
