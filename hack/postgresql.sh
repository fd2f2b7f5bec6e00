#!/usr/bin/env bash
# Local PostgreSQL for tests: Debian's postgresql, one server (initdb into a state
# directory) on a free loopback port, run as the `postgres` system user when started as
# root (the server refuses root). Password (SCRAM) authentication for the superuser and a
# test user owning a test database; TLS offered (a certificate for 127.0.0.1 from a CA made
# for the run).
#
#   hack/postgresql.sh up [--dir DIR] [--owner-pid PID]
#        start; prints `export …` lines (eval "$(hack/postgresql.sh up)"), progress on stderr.
#        --owner-pid: a watchdog stops PostgreSQL and removes DIR when PID exits.
#   hack/postgresql.sh down DIR           stop PostgreSQL and watchdog, remove DIR (idempotent)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

die() { printf 'postgresql: %s\n' "$*" >&2; exit 1; }
say() { printf '[postgresql %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
need() { command -v "$1" >/dev/null || die "$1 is not installed (needed to $2); install it and retry"; }

# Test-only credentials.
SUPER_PASSWORD=swell-pg-super
TEST_USER=swell
TEST_PASSWORD=swell-pg-secret
TEST_DB=swell

# shellcheck source=lib/procs.sh
source "$here/lib/procs.sh"
# shellcheck source=lib/servers.sh
source "$here/lib/servers.sh"

pg_bin() { # the newest installed server's bin directory
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] && [ -x "$d/postgres" ] || die "no PostgreSQL server under /usr/lib/postgresql; apt-get install -y postgresql"
  echo "$d"
}

# Commands run as the postgres user when root (exec'd, so a recorded PID is the server's).
as_pg=()
[ "$(id -u)" = 0 ] && as_pg=(setpriv --reuid=postgres --regid=postgres --init-groups --)

stop_dir() { # DIR
  local dir=$1
  stop_pid "$dir/watchdog.pid" swell-postgresql-watchdog
  stop_pid "$dir/postgres.pid" "$dir/data"
  case "$dir" in /|"$HOME"|"") ;; *) rm -rf "$dir" ;; esac
}

cmd_up() {
  local dir="" owner=""
  up_args "$@"
  local t0=$SECONDS
  ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || "$here/debian-packages.sh" pg_ctlcluster=postgresql
  "$here/debian-packages.sh" openssl=openssl
  local bin t1=$SECONDS
  bin=$(pg_bin)
  if [ -z "$dir" ]; then dir=$(mktemp -d "${TMPDIR:-/tmp}/swell-postgresql.XXXXXX"); fi
  [ -f "$dir/postgres.pid" ] && die "$dir already holds a PostgreSQL; stop it first with: hack/postgresql.sh down $dir"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  [[ "$dir" =~ ^[A-Za-z0-9_./+-]+$ ]] || die "state directory $dir has characters unsafe for the config"

  UP_DIR=$dir UP_DONE=0
  trap '[ "$UP_DONE" = 1 ] || stop_dir "$UP_DIR"' EXIT
  trap 'exit 130' INT TERM
  if [ -n "$owner" ]; then
    start_watchdog swell-postgresql-watchdog "$owner" "$dir" "$here/postgresql.sh" "$dir"
  fi
  make_certs "$dir"
  printf '%s\n' "$SUPER_PASSWORD" >"$dir/pwfile"
  [ "$(id -u)" = 0 ] && chown -R postgres:postgres "$dir"
  chmod 755 "$dir"
  "${as_pg[@]}" test -x "$dir" || die "the postgres user cannot enter $dir; make its parent directories traversable (chmod o+x)"
  "${as_pg[@]}" "$bin/initdb" -D "$dir/data" -U postgres --pwfile="$dir/pwfile" --auth=scram-sha-256 \
    --no-sync -E UTF8 >"$dir/initdb.log" 2>&1 || { tail -n 20 "$dir/initdb.log" >&2; die "initdb failed (log: $dir/initdb.log)"; }

  local attempt port pid
  for attempt in 1 2 3 4 5; do
    port=$(free_ports 1)
    cat >"$dir/data/postgresql.auto.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
ssl = on
ssl_cert_file = '$dir/tls/server.crt'
ssl_key_file = '$dir/tls/server.key'
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 32MB
max_connections = 50
EOF
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir/data/postgresql.auto.conf"
    setsid "${as_pg[@]}" "$bin/postgres" -D "$dir/data" >"$dir/postgres.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$dir/postgres.pid"
    local deadline=$((SECONDS + 60)) ok=0
    while [ $SECONDS -lt $deadline ]; do
      if grep -q "ready to accept connections" "$dir/postgres.log" 2>/dev/null; then ok=1; break; fi
      alive "$pid" || break
      sleep 0.1
    done
    [ $ok = 1 ] && break
    if alive "$pid"; then
      say "not started after 60s; last lines of $dir/postgres.log:"; tail -n 30 "$dir/postgres.log" >&2 || true
      exit 1
    fi
    grep -qi "address already in use" "$dir/postgres.log" || {
      say "postgres exited; last lines of $dir/postgres.log:"; tail -n 30 "$dir/postgres.log" >&2 || true
      exit 1
    }
    rm -f "$dir/postgres.pid"
    [ "$attempt" = 5 ] && die "no free port after 5 attempts"
  done
  PGPASSWORD=$SUPER_PASSWORD "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -q \
    -c "CREATE USER $TEST_USER PASSWORD '$TEST_PASSWORD'" -c "CREATE DATABASE $TEST_DB OWNER $TEST_USER" \
    >"$dir/setup.log" 2>&1 || { cat "$dir/setup.log" >&2; die "creating the test user and database failed"; }
  UP_DONE=1
  say "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') up on 127.0.0.1:$port in $((SECONDS - t1))s (package ready after $((t1 - t0))s; state: $dir)"
  echo "export SWELL_POSTGRESQL_HOST=127.0.0.1"
  echo "export SWELL_POSTGRESQL_PORT=$port"
  echo "export SWELL_POSTGRESQL_USER=$TEST_USER"
  echo "export SWELL_POSTGRESQL_PASSWORD=$TEST_PASSWORD"
  echo "export SWELL_POSTGRESQL_DB=$TEST_DB"
  echo "export SWELL_POSTGRESQL_TLS_CA=$dir/tls/ca.crt"
  echo "export SWELL_POSTGRESQL_DIR=$dir"
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) shift; cmd_down "$@" ;;
  *) die "usage: postgresql.sh up|down … (see the top of hack/postgresql.sh)" ;;
esac
