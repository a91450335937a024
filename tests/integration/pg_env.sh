#!/bin/bash
# pg_env.sh: a private PostgreSQL server for tests and benchmarks (issue 17), sourced after
# harness.sh. Debian 12's postgresql-15, installed when missing; a cluster made by initdb in
# a directory of the caller's, owned by the unprivileged `postgres` user (initdb and the
# server refuse root); the server on a private port of 127.0.0.1 and a private socket
# directory, started as a child of this shell and stopped by its PID, never by name.
#
#   dw_pg_start DIR   makes DIR/data when missing, starts the server; sets DW_PG_PID,
#                     DW_PG_PORT, DW_PG_SOCK and DW_PG_URI (postgresql://dw:...@127.0.0.1:PORT
#                     /driftwatch: role dw, password auth over TCP; database driftwatch)
#   dw_pg_stop DIR    fast shutdown (SIGINT) by PID, SIGKILL after 30 s; registered with
#                     dw_at_exit by dw_pg_start, so a failing test stops it too
#   dw_pg_psql SQL    runs SQL as the superuser over the private socket, unaligned output
#
# Local connections over the socket are trusted; the directory is 0700 and the postgres
# user's, so only root and postgres reach it. TCP takes SCRAM passwords only.

dw_pg_bin() {
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    [[ -n $d && -x $d/postgres ]] || return 1
    echo "$d"
}

dw_pg_check_deps() {
    if ! dw_pg_bin >/dev/null; then
        echo "pg_env: installing postgresql (Debian's)" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            postgresql postgresql-client >/dev/null || die "postgresql could not be installed"
    fi
    id -u postgres >/dev/null 2>&1 || die "no postgres user (Debian's postgresql-common makes it)"
    command -v setpriv >/dev/null || die "setpriv (util-linux) not found"
}

_dw_pg_as() { setpriv --reuid postgres --regid postgres --init-groups -- "$@"; }

_dw_pg_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

dw_pg_start() {
    local dir=${1:?usage: dw_pg_start DIR} bin pw i
    dw_pg_check_deps
    bin=$(dw_pg_bin)
    mkdir -p "$dir"
    # The server runs as postgres: it must pass through the caller's directory (mktemp's are
    # 0700), by search permission only.
    chmod a+x "$(dirname "$(realpath "$dir")")"
    chown postgres: "$dir"
    chmod 0700 "$dir"
    DW_PG_SOCK=$dir/sock
    mkdir -p "$DW_PG_SOCK"
    chown postgres: "$DW_PG_SOCK"
    chmod 0700 "$DW_PG_SOCK"
    if [[ ! -s $dir/data/PG_VERSION ]]; then
        pw=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
        echo "$pw" >"$dir/password"
        install -o postgres -m 0600 "$dir/password" "$dir/pwfile"
        _dw_pg_as "$bin/initdb" -D "$dir/data" -U postgres --pwfile="$dir/pwfile" \
            --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 \
            >"$dir/initdb.log" 2>&1 || die "initdb failed: $(tail -5 "$dir/initdb.log")"
        rm -f "$dir/pwfile"
    fi
    DW_PG_PORT=$(_dw_pg_free_port)
    # fsync stays on: tests of exactly-once commits mean it.
    # setpriv (not a shell function: that would fork a subshell) execs postgres: $! is its PID.
    setpriv --reuid postgres --regid postgres --init-groups -- "$bin/postgres" -D "$dir/data" -p "$DW_PG_PORT" -k "$DW_PG_SOCK" \
        -c listen_addresses=127.0.0.1 -c max_connections=200 -c shared_buffers=128MB \
        -c logging_collector=off >>"$dir/server.log" 2>&1 </dev/null &
    DW_PG_PID=$!
    echo "$DW_PG_PID" >"$dir/server.pid"
    dw_at_exit dw_pg_stop "$dir"
    for ((i = 0; i < 300; i++)); do
        dw_alive "$DW_PG_PID" || die "postgres exited at start: $(tail -5 "$dir/server.log")"
        if _dw_pg_as "$bin/pg_isready" -q -h "$DW_PG_SOCK" -p "$DW_PG_PORT" 2>/dev/null; then
            break
        fi
        sleep 0.1
    done
    ((i < 300)) || die "postgres did not accept connections within 30 s: $(tail -5 "$dir/server.log")"
    pw=$(cat "$dir/password")
    dw_pg_psql "DO \$\$ BEGIN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'dw') THEN
          CREATE ROLE dw LOGIN PASSWORD '$pw';
        END IF; END \$\$;" >/dev/null || die "could not make role dw"
    if [[ -z $(dw_pg_psql "SELECT 1 FROM pg_database WHERE datname = 'driftwatch'") ]]; then
        dw_pg_psql "CREATE DATABASE driftwatch OWNER dw" >/dev/null || die "could not make database driftwatch"
    fi
    DW_PG_URI="postgresql://dw:$pw@127.0.0.1:$DW_PG_PORT/driftwatch"
    export DW_PG_PID DW_PG_PORT DW_PG_SOCK DW_PG_URI
}

dw_pg_psql() {
    local bin
    bin=$(dw_pg_bin) || return 1
    _dw_pg_as "$bin/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$DW_PG_SOCK" -p "$DW_PG_PORT" \
        -U postgres -d "${DW_PG_DB:-postgres}" -c "$1"
}

dw_pg_stop() {
    local dir=${1:?usage: dw_pg_stop DIR} pid i
    pid=$(cat "$dir/server.pid" 2>/dev/null) || return 0
    [[ -n $pid ]] || return 0
    # Our child, by PID: a fast shutdown (SIGINT) ends sessions and checkpoints.
    if dw_alive "$pid"; then
        kill -INT "$pid" 2>/dev/null || true
        for ((i = 0; i < 300; i++)); do
            dw_alive "$pid" || break
            sleep 0.1
        done
        if dw_alive "$pid"; then
            echo "pg_env: postgres $pid did not stop within 30 s: SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || true
    rm -f "$dir/server.pid"
}
