#!/usr/bin/env bash
# Local MariaDB for tests: Debian's mariadb-server, one private mariadbd (mariadb-install-db
# into a state directory, no system service, no /etc/mysql config) on a free loopback port
# and a socket in the state directory, run as the current user. Grant tables on: a test user
# with a password (mysql_native_password) owning a test database; TLS offered (a certificate
# for 127.0.0.1 from a CA made for the run, so `tls=true` can be tested by trusting the CA).
#
#   hack/mariadb.sh up [--dir DIR] [--owner-pid PID] [--no-tls]
#        start; prints `export …` lines (eval "$(hack/mariadb.sh up)"), progress on stderr.
#        --owner-pid: a watchdog stops MariaDB and removes DIR when PID exits.
#        --no-tls: a server that offers no TLS (to test clients falling back to plaintext).
#   hack/mariadb.sh down DIR           stop MariaDB and watchdog, remove DIR (idempotent)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

die() { printf 'mariadb: %s\n' "$*" >&2; exit 1; }
say() { printf '[mariadb %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
need() { command -v "$1" >/dev/null || die "$1 is not installed (needed to $2); install it and retry"; }

# Test-only credentials.
TEST_USER=swell
TEST_PASSWORD=swell-mysql-secret
TEST_DB=swell

# shellcheck source=lib/procs.sh
source "$here/lib/procs.sh"
# shellcheck source=lib/servers.sh
source "$here/lib/servers.sh"

MARIADBD=/usr/sbin/mariadbd

stop_dir() { # DIR
  local dir=$1
  stop_pid "$dir/watchdog.pid" swell-mariadb-watchdog
  stop_pid "$dir/mariadbd.pid" "$dir/data"
  case "$dir" in /|"$HOME"|"") ;; *) rm -rf "$dir" ;; esac
}

# mariadbd refuses root unless told to stay root; as anyone else --user is not needed.
as_user=()
[ "$(id -u)" = 0 ] && as_user=(--user=root)

start_server() { # DIR PORT TLS(0|1): mariadbd in its own session; its PID in DIR/mariadbd.pid
  local dir=$1 port=$2 tls=()
  [ "$3" = 1 ] && tls=(--ssl-ca="$dir/tls/ca.crt" --ssl-cert="$dir/tls/server.crt" --ssl-key="$dir/tls/server.key")
  setsid "$MARIADBD" --no-defaults "${as_user[@]}" --datadir="$dir/data" --socket="$dir/mysqld.sock" \
    --pid-file="$dir/data/mariadbd.pid" --log-error="$dir/mariadbd.log" \
    --bind-address=127.0.0.1 --port="$port" --skip-name-resolve \
    "${tls[@]}" \
    --skip-log-bin --innodb-buffer-pool-size=16M --innodb-log-file-size=8M \
    --innodb-flush-log-at-trx-commit=0 --sync-frm=0 --max-connections=100 \
    >/dev/null 2>&1 </dev/null &
  echo "$!" >"$dir/mariadbd.pid"
}

cmd_up() {
  local dir="" owner="" tls=1 a rest=()
  for a in "$@"; do
    if [ "$a" = --no-tls ]; then tls=0; else rest+=("$a"); fi
  done
  UP_USAGE_EXTRA=" [--no-tls]" up_args ${rest[@]+"${rest[@]}"}
  local t0=$SECONDS
  [ -x "$MARIADBD" ] || "$here/debian-packages.sh" mariadbd=mariadb-server
  "$here/debian-packages.sh" openssl=openssl
  [ -x "$MARIADBD" ] || die "no $MARIADBD; apt-get install -y mariadb-server"
  need mariadb-install-db "create the data directory (apt-get install -y mariadb-server)"
  need mariadb "create the test user (apt-get install -y mariadb-client)"
  local t1=$SECONDS
  if [ -z "$dir" ]; then dir=$(mktemp -d "${TMPDIR:-/tmp}/swell-mariadb.XXXXXX"); fi
  [ -f "$dir/mariadbd.pid" ] && die "$dir already holds a MariaDB; stop it first with: hack/mariadb.sh down $dir"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  # A Unix socket path is at most 107 bytes.
  [ ${#dir} -le 90 ] || die "state directory $dir is too long for a socket path; use a shorter --dir"

  UP_DIR=$dir UP_DONE=0
  trap '[ "$UP_DONE" = 1 ] || stop_dir "$UP_DIR"' EXIT
  trap 'exit 130' INT TERM
  if [ -n "$owner" ]; then
    start_watchdog swell-mariadb-watchdog "$owner" "$dir" "$here/mariadb.sh" "$dir"
  fi
  [ "$tls" = 1 ] && make_certs "$dir"
  # The current OS user gets unix_socket access as the server's administrator.
  mariadb-install-db --no-defaults "${as_user[@]}" --datadir="$dir/data" --auth-root-authentication-method=socket --auth-root-socket-user="$(id -un)" \
    --skip-test-db >"$dir/install-db.log" 2>&1 || { tail -n 20 "$dir/install-db.log" >&2; die "mariadb-install-db failed (log: $dir/install-db.log)"; }

  local attempt port pid
  for attempt in 1 2 3 4 5; do
    port=$(free_ports 1)
    start_server "$dir" "$port" "$tls"
    pid=$(cat "$dir/mariadbd.pid")
    local deadline=$((SECONDS + 60)) ok=0
    while [ $SECONDS -lt $deadline ]; do
      if grep -q "ready for connections" "$dir/mariadbd.log" 2>/dev/null; then ok=1; break; fi
      alive "$pid" || break
      sleep 0.1
    done
    [ $ok = 1 ] && break
    if alive "$pid"; then
      say "not started after 60s; last lines of $dir/mariadbd.log:"; tail -n 30 "$dir/mariadbd.log" >&2 || true
      exit 1
    fi
    grep -qi "address already in use" "$dir/mariadbd.log" || {
      say "mariadbd exited; last lines of $dir/mariadbd.log:"; tail -n 30 "$dir/mariadbd.log" >&2 || true
      exit 1
    }
    rm -f "$dir/mariadbd.pid" "$dir/mariadbd.log"
    [ "$attempt" = 5 ] && die "no free port after 5 attempts"
  done
  mariadb --no-defaults --socket="$dir/mysqld.sock" -u "$(id -un)" -e "
    CREATE USER '$TEST_USER'@'%' IDENTIFIED BY '$TEST_PASSWORD';
    CREATE DATABASE $TEST_DB;
    GRANT ALL ON $TEST_DB.* TO '$TEST_USER'@'%';" \
    >"$dir/setup.log" 2>&1 || { cat "$dir/setup.log" >&2; die "creating the test user and database failed"; }
  UP_DONE=1
  say "MariaDB $("$MARIADBD" --version | awk '{print $3}') up on 127.0.0.1:$port in $((SECONDS - t1))s (package ready after $((t1 - t0))s; state: $dir)"
  echo "export SWELL_MYSQL_HOST=127.0.0.1"
  echo "export SWELL_MYSQL_PORT=$port"
  echo "export SWELL_MYSQL_SOCKET=$dir/mysqld.sock"
  echo "export SWELL_MYSQL_USER=$TEST_USER"
  echo "export SWELL_MYSQL_PASSWORD=$TEST_PASSWORD"
  echo "export SWELL_MYSQL_DB=$TEST_DB"
  if [ "$tls" = 1 ]; then echo "export SWELL_MYSQL_TLS_CA=$dir/tls/ca.crt"; fi
  echo "export SWELL_MYSQL_DIR=$dir"
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) shift; cmd_down "$@" ;;
  *) die "usage: mariadb.sh up|down … (see the top of hack/mariadb.sh)" ;;
esac
