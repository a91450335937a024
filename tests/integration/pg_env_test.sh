#!/bin/bash
# Self-check of pg_env.sh (issue 17's tests start a real PostgreSQL themselves): a cluster
# made as the postgres user, the server on a private port and socket, reached over TCP with
# the password of DW_PG_URI (and refused without it), restarted on the same data with it
# kept, stopped by PID with nothing of it left running, also when the test fails.
# Usage: pg_env_test.sh [BUILD_DIR] (unused)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/harness.sh"
source "$here/pg_env.sh"
dw_harness dwpg

step "start"
dw_pg_start "$tmp/pg"
[[ $(cat "/proc/$DW_PG_PID/comm") == postgres ]] || die "PID $DW_PG_PID is not postgres"
expect "the server runs as postgres" "$(stat -c %U "/proc/$DW_PG_PID")" postgres
expect "the version is Debian 12's" "$(dw_pg_psql 'SHOW server_version_num' | cut -c1-2)" 15
expect "listens on 127.0.0.1 only" "$(dw_pg_psql 'SHOW listen_addresses')" 127.0.0.1
expect "socket directory 0700" "$(stat -c %a "$DW_PG_SOCK")" 700

step "TCP with and without the password"
uri_host=${DW_PG_URI#*@}
check "dw connects over TCP with its password" \
    psql -X -q -A -t "$DW_PG_URI" -c "CREATE TABLE t(x int); INSERT INTO t VALUES (42)"
if PGCONNECT_TIMEOUT=5 psql -X -q -w "postgresql://dw:wrong@$uri_host" -c 'SELECT 1' 2>/dev/null; then
    fail "a wrong password was let in"
else
    ok "a wrong password is refused"
fi

step "restart on the same data"
old=$DW_PG_PID
dw_pg_stop "$tmp/pg"
dw_alive "$old" && die "postgres $old still running after dw_pg_stop"
ok "stopped by PID"
dw_pg_start "$tmp/pg"
[[ $DW_PG_PID != "$old" ]] || die "the same PID after a restart"
expect "data kept" "$(psql -X -q -A -t "$DW_PG_URI" -c 'SELECT x FROM t')" 42

step "stop"
pid=$DW_PG_PID
dw_pg_stop "$tmp/pg"
left=$(pgrep -f -- "-D $tmp/pg/data" || true)
expect "no server process of this cluster left" "$left" ""
dw_alive "$pid" && fail "postgres $pid still running" || ok "postgres $pid gone"
dw_finish "pg_env: a private PostgreSQL started, reached, restarted and stopped by PID"
