#!/usr/bin/env bash
# Local Redis for tests: Debian's redis-server, one standalone server on free loopback
# ports with its data and log in a state directory. A plain port and a TLS port (a
# certificate for 127.0.0.1 from a CA made for the run); the default user needs a password
# and an ACL user has its own.
#
#   hack/redis.sh up [--dir DIR] [--owner-pid PID]
#        start; prints `export …` lines (eval "$(hack/redis.sh up)"), progress on stderr.
#        --owner-pid: a watchdog stops Redis and removes DIR when PID exits.
#   hack/redis.sh down DIR           stop Redis and watchdog, remove DIR (idempotent)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

die() { printf 'redis: %s\n' "$*" >&2; exit 1; }
say() { printf '[redis %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
need() { command -v "$1" >/dev/null || die "$1 is not installed (needed to $2); install it and retry"; }

# Test-only credentials: the default user's password, and an ACL user with its own.
DEFAULT_PASSWORD=swell-redis-default
ACL_USER=swell
ACL_PASSWORD=swell-redis-secret

# shellcheck source=lib/procs.sh
source "$here/lib/procs.sh"
# shellcheck source=lib/servers.sh
source "$here/lib/servers.sh"

stop_dir() { # DIR
  local dir=$1
  stop_pid "$dir/watchdog.pid" swell-redis-watchdog
  stop_pid "$dir/redis.pid" "$dir/redis.conf"
  case "$dir" in /|"$HOME"|"") ;; *) rm -rf "$dir" ;; esac
}

cmd_up() {
  local dir="" owner=""
  up_args "$@"
  local t0=$SECONDS
  "$here/debian-packages.sh" redis-server=redis-server openssl=openssl
  local t1=$SECONDS
  if [ -z "$dir" ]; then dir=$(mktemp -d "${TMPDIR:-/tmp}/swell-redis.XXXXXX"); fi
  [ -f "$dir/redis.pid" ] && die "$dir already holds a Redis; stop it first with: hack/redis.sh down $dir"
  mkdir -p "$dir/data"
  dir=$(cd "$dir" && pwd)
  [[ "$dir" =~ ^[A-Za-z0-9_./+-]+$ ]] || die "state directory $dir has characters unsafe for the config"

  UP_DIR=$dir UP_DONE=0
  trap '[ "$UP_DONE" = 1 ] || stop_dir "$UP_DIR"' EXIT
  trap 'exit 130' INT TERM
  if [ -n "$owner" ]; then
    start_watchdog swell-redis-watchdog "$owner" "$dir" "$here/redis.sh" "$dir"
  fi
  make_certs "$dir"

  local attempt port tport pid
  for attempt in 1 2 3 4 5; do
    read -r port tport < <(free_ports 2)
    cat >"$dir/redis.conf" <<EOF
bind 127.0.0.1
protected-mode yes
port $port
tls-port $tport
tls-cert-file $dir/tls/server.crt
tls-key-file $dir/tls/server.key
tls-ca-cert-file $dir/tls/ca.crt
tls-auth-clients no
daemonize no
# Redis rewrites its process title; keep the config path in it so that stop_pid (which
# checks the command line before signalling a pid) recognises the server as ours.
proc-title-template "{title} {listen-addr} {config-file}"
dir $dir/data
logfile ""
save ""
appendonly no
user default on >$DEFAULT_PASSWORD ~* &* +@all
user $ACL_USER on >$ACL_PASSWORD ~* &* +@all
EOF
    setsid redis-server "$dir/redis.conf" >"$dir/redis.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$dir/redis.pid"
    local deadline=$((SECONDS + 60)) ok=0
    while [ $SECONDS -lt $deadline ]; do
      if grep -q "Ready to accept connections" "$dir/redis.log" 2>/dev/null; then ok=1; break; fi
      alive "$pid" || break
      sleep 0.1
    done
    [ $ok = 1 ] && break
    if alive "$pid"; then
      say "not started after 60s; last lines of $dir/redis.log:"; tail -n 30 "$dir/redis.log" >&2 || true
      exit 1
    fi
    grep -qi "address already in use" "$dir/redis.log" || {
      say "redis-server exited; last lines of $dir/redis.log:"; tail -n 30 "$dir/redis.log" >&2 || true
      exit 1
    }
    rm -f "$dir/redis.pid"
    [ "$attempt" = 5 ] && die "no free port after 5 attempts"
  done
  UP_DONE=1
  say "Redis $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') up on 127.0.0.1:$port (TLS $tport) in $((SECONDS - t1))s (package ready after $((t1 - t0))s; state: $dir)"
  echo "export SWELL_REDIS_ADDRESS=127.0.0.1:$port"
  echo "export SWELL_REDIS_TLS_ADDRESS=127.0.0.1:$tport"
  echo "export SWELL_REDIS_TLS_CA=$dir/tls/ca.crt"
  echo "export SWELL_REDIS_PASSWORD=$DEFAULT_PASSWORD"
  echo "export SWELL_REDIS_ACL_USER=$ACL_USER"
  echo "export SWELL_REDIS_ACL_PASSWORD=$ACL_PASSWORD"
  echo "export SWELL_REDIS_DIR=$dir"
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) shift; cmd_down "$@" ;;
  *) die "usage: redis.sh up|down … (see the top of hack/redis.sh)" ;;
esac
