#!/usr/bin/env bash
# Start a throwaway PostgreSQL server for the tests marked `postgres`, idempotently.
#
# Installs Debian's `postgresql` package when its server binaries are missing, creates a
# cluster in its own folder (never touching the system cluster), starts it on 127.0.0.1
# and prints the variables the tests read, ready for `eval`:
#
#   eval "$(.ci/postgres.sh)"      # exports MTA_TEST_POSTGRES_URL, and MTA_PG_STARTED=1 when
#                                  # this call started the server (so the caller stops it)
#   bash .ci/postgres.sh stop      # stops the server of this folder and port, if it runs
#
# Settings (environment): MTA_PG_PORT (55432), MTA_PG_DIR (/tmp/mta-postgres),
# MTA_PG_USER (mta), MTA_PG_PASSWORD (mta), MTA_PG_DB (mta_test).
# Everything but the final `export` lines goes to stderr.
set -euo pipefail

port="${MTA_PG_PORT:-55432}"
root="${MTA_PG_DIR:-/tmp/mta-postgres}"
user="${MTA_PG_USER:-mta}"
password="${MTA_PG_PASSWORD:-mta}"
database="${MTA_PG_DB:-mta_test}"
data="$root/data"

log() { echo "postgres.sh: $*" >&2; }

find_bindir() {
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

bindir="$(find_bindir)"

if [ "${1:-}" = "stop" ]; then
    if [ -n "$bindir" ] && [ -s "$data/postmaster.pid" ]; then
        log "stopping the server in $data"
        if [ "$(id -u)" = 0 ]; then
            su postgres -s /bin/sh -c "$(printf '%q ' "$bindir/pg_ctl" -D "$data" -m fast -w stop)" >&2
        else
            "$bindir/pg_ctl" -D "$data" -m fast -w stop >&2
        fi
    else
        log "no server running in $data"
    fi
    exit 0
fi

if [ -z "$bindir" ] || [ ! -x "$bindir/postgres" ]; then
    log "installing Debian's postgresql package"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends postgresql >&2
    bindir="$(find_bindir)"
fi

# The server refuses to run as root: as root, act as the `postgres` account the package
# creates; as anyone else, run as yourself.
if [ "$(id -u)" = 0 ]; then
    owner=postgres
    as_owner() { su postgres -s /bin/sh -c "$(printf '%q ' "$@")"; }
else
    owner="$(id -un)"
    as_owner() { "$@"; }
fi

mkdir -p "$root"
chown "$owner" "$root"
chmod 700 "$root"

if [ ! -s "$data/PG_VERSION" ]; then
    log "creating a cluster in $data"
    as_owner "$bindir/initdb" -D "$data" -U postgres -A trust --auth-host=scram-sha-256 \
        -E UTF8 --locale=C.UTF-8 >&2
fi

started=0
if ! as_owner "$bindir/pg_isready" -q -h "$root" -p "$port"; then
    log "starting the server on 127.0.0.1:$port"
    started=1
    # The socket lives in our folder, so no write access to /var/run/postgresql is needed;
    # fsync off because the data is thrown away and the tests should not wait on the disk.
    as_owner "$bindir/pg_ctl" -D "$data" -l "$root/server.log" -w -t 60 start \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $root -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" >&2
fi

psql_admin() { as_owner "$bindir/psql" -h "$root" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -qtA "$@"; }

# CREATEDB lets each test make (and drop) a database of its own, so parallel tests never
# share dagster's tables.
if [ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$user'")" != 1 ]; then
    psql_admin -c "CREATE ROLE \"$user\" LOGIN CREATEDB PASSWORD '$password'" >&2
fi
if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$database'")" != 1 ]; then
    psql_admin -c "CREATE DATABASE \"$database\" OWNER \"$user\"" >&2
fi

echo "export MTA_TEST_POSTGRES_URL=postgresql://$user:$password@127.0.0.1:$port/$database"
if [ "$started" = 1 ]; then
    echo "export MTA_PG_STARTED=1"
fi
