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
DW_PG_URI=$DW_PG_URI "$build/tests/pg_tests" && ok "pg_tests" || fail "pg_tests"
dw_finish "pg_store: PgConn and migrations against a real PostgreSQL"
