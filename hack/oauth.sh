#!/usr/bin/env bash
# Local OAuth 2.0 authorization server for tests: panva's oidc-provider (npm, cached in
# ~/.cache/swell) run by Node over HTTPS on a free loopback port, with a certificate from a CA
# made for the run. Issues client-credentials tokens (see hack/oauth/server.mjs) to a test
# client (opaque, checked by introspection), and JWT access tokens (keys at /jwks) to two more:
# one for the audience the test Kafka's OAUTHBEARER listener expects, one for another.
#
#   hack/oauth.sh up [--dir DIR] [--owner-pid PID] [--token-ttl SECONDS]
#        start; prints `export …` lines (eval "$(hack/oauth.sh up)"), progress on stderr.
#        --owner-pid: a watchdog stops the server and removes DIR when PID exits.
#        --token-ttl: how long its tokens live (default 3600).
#   hack/oauth.sh down DIR           stop the server and watchdog, remove DIR (idempotent)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

die() { printf 'oauth: %s\n' "$*" >&2; exit 1; }
say() { printf '[oauth %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
need() { command -v "$1" >/dev/null || die "$1 is not installed (needed to $2); install it and retry"; }

VERSION=9.13.3
CACHE="${SWELL_CACHE:-$HOME/.cache/swell}/oidc-provider-$VERSION"
# Test-only credentials.
CLIENT_ID=swell-scaler
CLIENT_SECRET=swell-oauth-secret
# Clients with JWT access tokens (same secret): for the audience below, and for another.
KAFKA_CLIENT_ID=swell-kafka
KAFKA_OTHER_CLIENT_ID=swell-kafka-elsewhere
KAFKA_AUDIENCE=https://kafka.swell.test

# shellcheck source=lib/procs.sh
source "$here/lib/procs.sh"
# shellcheck source=lib/servers.sh
source "$here/lib/servers.sh"

stop_dir() { # DIR
  local dir=$1
  stop_pid "$dir/watchdog.pid" swell-oauth-watchdog
  stop_pid "$dir/server.pid" "$dir/server.mjs"
  case "$dir" in /|"$HOME"|"") ;; *) rm -rf "$dir" ;; esac
}

install() { # oidc-provider into the cache, once
  [ -f "$CACHE/node_modules/oidc-provider/package.json" ] && return 0
  need npm "install oidc-provider from the npm registry"
  mkdir -p "$CACHE"
  npm install --no-audit --no-fund --prefix "$CACHE" "oidc-provider@$VERSION" >"$CACHE.install.log" 2>&1 ||
    { tail -n 20 "$CACHE.install.log" >&2; die "npm install oidc-provider@$VERSION failed"; }
}

cmd_up() {
  local dir="" owner="" ttl=3600 rest=()
  while [ $# -gt 0 ]; do
    case $1 in
      --token-ttl) [ $# -ge 2 ] || die "--token-ttl needs seconds"; ttl=$2; shift 2 ;;
      *) rest+=("$1"); shift ;;
    esac
  done
  [[ "$ttl" =~ ^[0-9]+$ ]] || die "--token-ttl $ttl is not a number of seconds"
  UP_USAGE_EXTRA=" [--token-ttl SECONDS]" up_args ${rest[@]+"${rest[@]}"}
  need node "run the authorization server"
  local t0=$SECONDS
  install
  local t1=$SECONDS
  if [ -z "$dir" ]; then dir=$(mktemp -d "${TMPDIR:-/tmp}/swell-oauth.XXXXXX"); fi
  [ -f "$dir/server.pid" ] && die "$dir already holds a server; stop it first with: hack/oauth.sh down $dir"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  UP_DIR=$dir UP_DONE=0
  trap '[ "$UP_DONE" = 1 ] || stop_dir "$UP_DIR"' EXIT
  trap 'exit 130' INT TERM
  [ -n "$owner" ] && start_watchdog swell-oauth-watchdog "$owner" "$dir" "$here/oauth.sh" "$dir"
  make_certs "$dir"
  local attempt port pid
  for attempt in 1 2 3 4 5; do
    port=$(free_ports 1)
    # Node resolves `import "oidc-provider"` from the script's directory upwards, so the
    # cached modules are linked in next to a copy of the script.
    ln -sfn "$CACHE/node_modules" "$dir/node_modules"
    cp "$here/oauth/server.mjs" "$dir/server.mjs"
    OAUTH_PORT=$port OAUTH_CLIENT_ID=$CLIENT_ID OAUTH_CLIENT_SECRET=$CLIENT_SECRET \
      OAUTH_KAFKA_CLIENT_ID=$KAFKA_CLIENT_ID OAUTH_KAFKA_OTHER_CLIENT_ID=$KAFKA_OTHER_CLIENT_ID \
      OAUTH_KAFKA_AUDIENCE=$KAFKA_AUDIENCE \
      OAUTH_TOKEN_TTL="$ttl" OAUTH_TLS_KEY="$dir/tls/server.key" \
      OAUTH_TLS_CERT="$dir/tls/server.crt" NODE_ENV=production \
      setsid node "$dir/server.mjs" >"$dir/server.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$dir/server.pid"
    local deadline=$((SECONDS + 30)) ok=0
    while [ $SECONDS -lt $deadline ]; do
      if grep -q "listening on" "$dir/server.log" 2>/dev/null; then ok=1; break; fi
      alive "$pid" || break
      sleep 0.1
    done
    [ $ok = 1 ] && break
    alive "$pid" && { tail -n 30 "$dir/server.log" >&2; die "not listening after 30s (log: $dir/server.log)"; }
    grep -q EADDRINUSE "$dir/server.log" || { tail -n 30 "$dir/server.log" >&2; die "the server exited (log: $dir/server.log)"; }
    [ "$attempt" = 5 ] && die "no free port after 5 attempts"
  done
  UP_DONE=1
  say "oidc-provider $VERSION up on https://127.0.0.1:$port in $((SECONDS - t1))s (package ready after $((t1 - t0))s; state: $dir)"
  echo "export SWELL_OAUTH_ISSUER=https://127.0.0.1:$port"
  echo "export SWELL_OAUTH_TOKEN_URL=https://127.0.0.1:$port/token"
  echo "export SWELL_OAUTH_INTROSPECTION_URL=https://127.0.0.1:$port/token/introspection"
  echo "export SWELL_OAUTH_CLIENT_ID=$CLIENT_ID"
  echo "export SWELL_OAUTH_CLIENT_SECRET=$CLIENT_SECRET"
  echo "export SWELL_OAUTH_JWKS_URL=https://127.0.0.1:$port/jwks"
  echo "export SWELL_OAUTH_KAFKA_CLIENT_ID=$KAFKA_CLIENT_ID"
  echo "export SWELL_OAUTH_KAFKA_OTHER_CLIENT_ID=$KAFKA_OTHER_CLIENT_ID"
  echo "export SWELL_OAUTH_KAFKA_AUDIENCE=$KAFKA_AUDIENCE"
  echo "export SWELL_OAUTH_TLS_CA=$dir/tls/ca.crt"
  echo "export SWELL_OAUTH_TOKEN_TTL=$ttl"
  echo "export SWELL_OAUTH_DIR=$dir"
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) shift; cmd_down "$@" ;;
  *) die "usage: oauth.sh up|down … (see the top of hack/oauth.sh)" ;;
esac
