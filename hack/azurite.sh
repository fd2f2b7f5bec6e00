#!/usr/bin/env bash
# Local Azure Storage for tests: Azurite (Microsoft's emulator, from the npm registry, cached
# under ~/.cache/swell) with the blob and queue services on free loopback ports, over HTTPS
# with a certificate for 127.0.0.1 from a CA made for the run, state in DIR, and a test
# account of its own (AZURITE_ACCOUNTS) instead of the well-known devstoreaccount1.
#
#   hack/azurite.sh up [--dir DIR] [--owner-pid PID] [--no-tls]
#        start; prints `export …` lines (eval "$(hack/azurite.sh up)"), progress on stderr.
#        --owner-pid: a watchdog stops Azurite and removes DIR when PID exits.
#        --no-tls: plain HTTP (for in-process tests, which cannot trust the run's CA).
#   hack/azurite.sh down DIR           stop Azurite and watchdog, remove DIR (idempotent)
#   hack/azurite.sh fetch              install Azurite into the cache only
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

die() { printf 'azurite: %s\n' "$*" >&2; exit 1; }
say() { printf '[azurite %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
need() { command -v "$1" >/dev/null || die "$1 is not installed (needed to $2); install it and retry"; }

AZURITE_VERSION=3.35.0
PREFIX="$HOME/.cache/swell/azurite-$AZURITE_VERSION"
AZURITE="$PREFIX/node_modules/azurite/dist/src/azurite.js"
# Test-only account; the key is made per run.
TEST_ACCOUNT=swellstore

# shellcheck source=lib/procs.sh
source "$here/lib/procs.sh"
# shellcheck source=lib/servers.sh
source "$here/lib/servers.sh"

stop_dir() {
  local dir=$1
  stop_pid "$dir/watchdog.pid" swell-azurite-watchdog
  stop_pid "$dir/azurite.pid" "$dir/data"
  case "$dir" in /|"$HOME"|"") ;; *) rm -rf "$dir" ;; esac
}

cmd_fetch() {
  [ -f "$AZURITE" ] && return 0
  need node "run Azurite (Node.js 18 or newer)"
  need npm "install Azurite from the npm registry"
  say "installing azurite@$AZURITE_VERSION from the npm registry into $PREFIX"
  local t0=$SECONDS
  npm install --silent --no-audit --no-fund --prefix "$PREFIX" "azurite@$AZURITE_VERSION" >&2 \
    || die "npm install --prefix $PREFIX azurite@$AZURITE_VERSION failed"
  [ -f "$AZURITE" ] || die "no $AZURITE after npm install"
  say "installed in $((SECONDS - t0))s"
}

start_server() { # DIR BLOB_PORT QUEUE_PORT TABLE_PORT TLS(0|1): Azurite in its own session
  local dir=$1 tls=()
  [ "$5" = 1 ] && tls=(--cert "$dir/tls/server.crt" --key "$dir/tls/server.key")
  # Swell's x-ms-version (2024-11-04) is older than this Azurite's newest (2025-11-05), so
  # no --skipApiVersionCheck; no --loose: Swell sends only what the API documents.
  AZURITE_ACCOUNTS="$TEST_ACCOUNT:$(cat "$dir/account.key")" setsid node "$AZURITE" \
    --location "$dir/data" --disableTelemetry \
    --blobHost 127.0.0.1 --blobPort "$2" --queueHost 127.0.0.1 --queuePort "$3" \
    --tableHost 127.0.0.1 --tablePort "$4" \
    "${tls[@]}" \
    >"$dir/azurite.log" 2>&1 </dev/null &
  echo "$!" >"$dir/azurite.pid"
}

cmd_up() {
  local dir="" owner="" tls=1 a rest=()
  for a in "$@"; do
    if [ "$a" = --no-tls ]; then tls=0; else rest+=("$a"); fi
  done
  UP_USAGE_EXTRA=" [--no-tls]" up_args ${rest[@]+"${rest[@]}"}
  local t0=$SECONDS
  cmd_fetch
  "$here/debian-packages.sh" openssl=openssl
  local t1=$SECONDS
  if [ -z "$dir" ]; then dir=$(mktemp -d "${TMPDIR:-/tmp}/swell-azurite.XXXXXX"); fi
  [ -f "$dir/azurite.pid" ] && die "$dir already holds an Azurite; stop it first with: hack/azurite.sh down $dir"
  mkdir -p "$dir/data"
  dir=$(cd "$dir" && pwd)

  UP_DIR=$dir UP_DONE=0
  trap '[ "$UP_DONE" = 1 ] || stop_dir "$UP_DIR"' EXIT
  trap 'exit 130' INT TERM
  if [ -n "$owner" ]; then
    start_watchdog swell-azurite-watchdog "$owner" "$dir" "$here/azurite.sh" "$dir"
  fi
  [ "$tls" = 1 ] && make_certs "$dir"
  (umask 077; openssl rand -base64 64 | tr -d '\n' >"$dir/account.key")

  local attempt ports blob queue table pid
  for attempt in 1 2 3 4 5; do
    ports=$(free_ports 3)
    read -r blob queue table <<<"$ports"
    start_server "$dir" "$blob" "$queue" "$table" "$tls"
    pid=$(cat "$dir/azurite.pid")
    local deadline=$((SECONDS + 60)) ok=0
    while [ $SECONDS -lt $deadline ]; do
      if grep -q "Azurite Queue service is successfully listening" "$dir/azurite.log" 2>/dev/null \
        && grep -q "Azurite Blob service is successfully listening" "$dir/azurite.log" 2>/dev/null; then
        ok=1; break
      fi
      alive "$pid" || break
      sleep 0.1
    done
    [ $ok = 1 ] && break
    if alive "$pid"; then
      say "not started after 60s; last lines of $dir/azurite.log:"; tail -n 30 "$dir/azurite.log" >&2 || true
      exit 1
    fi
    grep -qi "EADDRINUSE" "$dir/azurite.log" || {
      say "azurite exited; last lines of $dir/azurite.log:"; tail -n 30 "$dir/azurite.log" >&2 || true
      exit 1
    }
    rm -f "$dir/azurite.pid"
    [ "$attempt" = 5 ] && die "no free ports after 5 attempts"
  done
  UP_DONE=1
  local scheme=https
  [ "$tls" = 1 ] || scheme=http
  say "Azurite $AZURITE_VERSION up (blob 127.0.0.1:$blob, queue 127.0.0.1:$queue, $scheme) in $((SECONDS - t1))s (package ready after $((t1 - t0))s; state: $dir)"
  echo "export SWELL_AZURITE_ACCOUNT=$TEST_ACCOUNT"
  echo "export SWELL_AZURITE_KEY=$(cat "$dir/account.key")"
  echo "export SWELL_AZURITE_BLOB_ENDPOINT=$scheme://127.0.0.1:$blob/$TEST_ACCOUNT"
  echo "export SWELL_AZURITE_QUEUE_ENDPOINT=$scheme://127.0.0.1:$queue/$TEST_ACCOUNT"
  if [ "$tls" = 1 ]; then echo "export SWELL_AZURITE_TLS_CA=$dir/tls/ca.crt"; fi
  echo "export SWELL_AZURITE_DIR=$dir"
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) shift; cmd_down "$@" ;;
  fetch) shift; cmd_fetch ;;
  *) die "usage: azurite.sh up|down|fetch … (see the top of hack/azurite.sh)" ;;
esac
