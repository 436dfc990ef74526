#!/usr/bin/env bash
# A private, throw-away PostgreSQL server for the store tests (tests marked `postgres`).
#
#   eval "$(bash .ci/postgres.sh)"            start a cluster in a new temp dir; prints on stdout
#                                             export SREVAL_TEST_PG_URL=... and export SREVAL_TEST_PG_DIR=...
#   eval "$(bash .ci/postgres.sh start DIR)"  same in DIR; reuses the cluster there if it is already set up
#   bash .ci/postgres.sh stop "$SREVAL_TEST_PG_DIR"   stop the server and delete DIR
#
# The server listens on 127.0.0.1 only (and a Unix socket inside DIR), trusts local connections, and runs
# without fsync: it holds nothing worth keeping. initdb refuses to run as root, so as root the server
# runs as the `postgres` user. Installs the Debian `postgresql` package when no initdb is found.
# Everything except the export lines goes to stderr, so the output can be eval'ed.
set -euo pipefail

DB_NAME=sreval_test
FIRST_PORT=54329

log() { echo "postgres.sh: $*" >&2; }
die() { log "$*"; exit 1; }

# Run a server-side command as the cluster owner.
as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_bin() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -z "$dir" ] && command -v initdb >/dev/null; then
        dir=$(dirname "$(command -v initdb)")
    fi
    echo "$dir"
}

apt_install() {
    apt-get install -y -q "$@" >&2 || { apt-get update -q >&2 && apt-get install -y -q "$@" >&2; }
}

install_postgres() {
    command -v apt-get >/dev/null || die "no PostgreSQL found and no apt-get to install it"
    log "PostgreSQL not found; installing the Debian package"
    export DEBIAN_FRONTEND=noninteractive
    # Only our private cluster is wanted: keep the package from creating and starting a 'main' one
    # (as the official postgres Docker image does).
    apt_install postgresql-common
    sed -ri 's/^#?[[:space:]]*create_main_cluster[[:space:]]*=.*/create_main_cluster = false/' \
        /etc/postgresql-common/createcluster.conf
    apt_install postgresql
}

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

free_port() {
    local port=$FIRST_PORT
    while port_in_use "$port"; do
        port=$((port + 1))
        [ "$port" -lt $((FIRST_PORT + 100)) ] || die "no free port in $FIRST_PORT..$port"
    done
    echo "$port"
}

fail_with_log() {
    log "$1; last lines of $DIR/postgres.log:"
    tail -n 30 "$DIR/postgres.log" >&2 2>/dev/null || true
    exit 1
}

start() {
    DIR=${1:-}
    local bin port
    bin=$(pg_bin)
    if [ -z "$bin" ]; then
        install_postgres
        bin=$(pg_bin)
        [ -n "$bin" ] || die "installed postgresql but still no initdb"
    fi
    if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
        die "running as root but there is no 'postgres' user to own the cluster"
    fi

    if [ -z "$DIR" ]; then
        DIR=$(mktemp -d "${TMPDIR:-/tmp}/sreval-pg.XXXXXX")
    fi
    mkdir -p "$DIR"
    DIR=$(cd "$DIR" && pwd)
    if [ "$(id -u)" = 0 ]; then chown postgres: "$DIR"; fi
    chmod 700 "$DIR"

    if [ ! -s "$DIR/data/PG_VERSION" ]; then
        log "creating cluster in $DIR/data"
        as_owner "$bin/initdb" -D "$DIR/data" -U postgres -E UTF8 --no-locale \
            --auth-local=trust --auth-host=trust >"$DIR/initdb.log" 2>&1 \
            || { cat "$DIR/initdb.log" >&2; die "initdb failed"; }
    fi

    if as_owner "$bin/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1; then
        port=$(cat "$DIR/port")
        log "reusing the server already running in $DIR on port $port"
    else
        port=$(free_port)
        echo "$port" >"$DIR/port"
        log "starting server on 127.0.0.1:$port"
        local options="-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$DIR"
        options+=" -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        as_owner "$bin/pg_ctl" -D "$DIR/data" -l "$DIR/postgres.log" -w -t 60 -o "$options" start >&2 \
            || fail_with_log "pg_ctl could not start the server"
    fi

    local tries=0
    until "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres; do
        tries=$((tries + 1))
        [ "$tries" -lt 60 ] || fail_with_log "server on port $port not ready after 30 s"
        sleep 0.5
    done

    local exists
    exists=$("$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -tA \
        -c "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'") || fail_with_log "psql could not connect"
    if [ -z "$exists" ]; then
        "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres "$DB_NAME" || fail_with_log "createdb $DB_NAME failed"
    fi
    log "ready; stop it with: bash .ci/postgres.sh stop $DIR"
    echo "export SREVAL_TEST_PG_URL=postgresql+psycopg2://postgres@127.0.0.1:$port/$DB_NAME"
    echo "export SREVAL_TEST_PG_DIR=$DIR"
}

stop() {
    DIR=${1:?usage: postgres.sh stop DIR}
    [ -d "$DIR/data" ] || die "$DIR holds no cluster"
    local bin
    bin=$(pg_bin)
    if as_owner "$bin/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1; then
        as_owner "$bin/pg_ctl" -D "$DIR/data" -m fast -w stop >&2
    fi
    rm -rf "$DIR"
    log "stopped and removed $DIR"
}

case "${1:-start}" in
    start) start "${2:-}" ;;
    stop) stop "${2:-}" ;;
    *) die "usage: postgres.sh [start [DIR] | stop DIR]" ;;
esac
