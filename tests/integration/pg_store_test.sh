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
if "$build/cli/driftwatch" events --db "${DW_PG_URI%/*}/postgres" >/dev/null 2>"$tmp/foreign.err"; then
    fail "events from a database without the store's schema"
else
    check "a database without the store's schema is named, without the password: $(cat "$tmp/foreign.err")" \
        bash -c '! grep -qF "$1" "$2" && grep -q "not a driftwatch store" "$2"' _ "${DW_PG_URI#*://dw:}" "$tmp/foreign.err"
fi
dw_finish "pg_store: PgConn and migrations against a real PostgreSQL"
