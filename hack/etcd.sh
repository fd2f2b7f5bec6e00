#!/usr/bin/env bash
# Local etcd for scaler tests (not the control plane's): the etcd binary hack/build-tools.sh
# builds, one member on a free loopback port, TLS (a certificate for 127.0.0.1 from a CA made
# for the run), auth enabled with a root user and a test user whose role may read and write
# the keys under `swell/`. Users, roles and `auth enable` are set up through etcd's JSON
# gateway with curl before auth is on (no etcdctl is built).
#
#   hack/etcd.sh up [--dir DIR] [--owner-pid PID]
#        start; prints `export …` lines (eval "$(hack/etcd.sh up)"), progress on stderr.
#        --owner-pid: a watchdog stops etcd and removes DIR when PID exits.
#   hack/etcd.sh down DIR           stop etcd and watchdog, remove DIR (idempotent)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

die() { printf 'etcd: %s\n' "$*" >&2; exit 1; }
say() { printf '[etcd %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
need() { command -v "$1" >/dev/null || die "$1 is not installed (needed to $2); install it and retry"; }

# Test-only credentials.
ROOT_PASSWORD=swell-etcd-root-secret
TEST_USER=swell
TEST_PASSWORD=swell-etcd-secret
PREFIX=swell/

# shellcheck source=lib/procs.sh
source "$here/lib/procs.sh"
# shellcheck source=lib/servers.sh
source "$here/lib/servers.sh"

stop_dir() { # DIR
  local dir=$1
  stop_pid "$dir/watchdog.pid" swell-etcd-watchdog
  stop_pid "$dir/etcd.pid" "$dir/data"
  case "$dir" in /|"$HOME"|"") ;; *) rm -rf "$dir" ;; esac
}

start_server() { # DIR BIN CLIENT PEER
  local dir=$1
  setsid "$2/etcd" --name=swell-scalers --data-dir="$dir/data" \
    --listen-client-urls="https://127.0.0.1:$3" --advertise-client-urls="https://127.0.0.1:$3" \
    --listen-peer-urls="http://127.0.0.1:$4" --initial-advertise-peer-urls="http://127.0.0.1:$4" \
    --initial-cluster="swell-scalers=http://127.0.0.1:$4" \
    --cert-file="$dir/tls/server.crt" --key-file="$dir/tls/server.key" \
    --unsafe-no-fsync --log-level=warn --listen-metrics-urls="" \
    >"$dir/etcd.log" 2>&1 </dev/null &
  echo "$!" >"$dir/etcd.pid"
}

# api PATH JSON: a call to the JSON gateway (before auth is enabled).
api() {
  curl -fsS --cacert "$UP_DIR/tls/ca.crt" -X POST "https://127.0.0.1:$UP_PORT/v3/$1" -d "$2" >>"$UP_DIR/setup.log" 2>&1 ||
    { cat "$UP_DIR/setup.log" >&2; die "etcd API call $1 failed"; }
  echo >>"$UP_DIR/setup.log"
}

b64() { printf '%s' "$1" | base64 -w0; }

setup_auth() {
  api auth/role/add '{"name":"root"}'
  api auth/user/add "{\"name\":\"root\",\"password\":\"$ROOT_PASSWORD\"}"
  api auth/user/grant '{"user":"root","role":"root"}'
  api auth/role/add "{\"name\":\"$TEST_USER\"}"
  # READWRITE on [swell/, swell0): every key under the prefix.
  api auth/role/grant "{\"name\":\"$TEST_USER\",\"perm\":{\"permType\":\"READWRITE\",\"key\":\"$(b64 "$PREFIX")\",\"range_end\":\"$(b64 swell0)\"}}"
  api auth/user/add "{\"name\":\"$TEST_USER\",\"password\":\"$TEST_PASSWORD\"}"
  api auth/user/grant "{\"user\":\"$TEST_USER\",\"role\":\"$TEST_USER\"}"
  api auth/enable '{}'
}

cmd_up() {
  local dir="" owner=""
  up_args "$@"
  local t0=$SECONDS
  "$here/debian-packages.sh" openssl=openssl curl=curl
  local bin
  bin=$("$here/build-tools.sh") || die "could not build etcd (hack/build-tools.sh, see messages above)"
  [ -x "$bin/etcd" ] || die "no etcd in $bin"
  local t1=$SECONDS
  if [ -z "$dir" ]; then dir=$(mktemp -d "${TMPDIR:-/tmp}/swell-etcd.XXXXXX"); fi
  [ -f "$dir/etcd.pid" ] && die "$dir already holds etcd; stop it first with: hack/etcd.sh down $dir"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)

  UP_DIR=$dir UP_DONE=0
  trap '[ "$UP_DONE" = 1 ] || stop_dir "$UP_DIR"' EXIT
  trap 'exit 130' INT TERM
  if [ -n "$owner" ]; then
    start_watchdog swell-etcd-watchdog "$owner" "$dir" "$here/etcd.sh" "$dir"
  fi
  make_certs "$dir"
  local attempt ports pid ok
  for attempt in 1 2 3 4 5; do
    read -r -a ports <<<"$(free_ports 2)"
    start_server "$dir" "$bin" "${ports[0]}" "${ports[1]}"
    pid=$(cat "$dir/etcd.pid")
    ok=0
    local deadline=$((SECONDS + 30))
    while [ $SECONDS -lt $deadline ] && alive "$pid"; do
      if curl -fsS --cacert "$dir/tls/ca.crt" "https://127.0.0.1:${ports[0]}/health" 2>/dev/null | grep -q '"health":"true"'; then ok=1; break; fi
      sleep 0.1
    done
    [ $ok = 1 ] && break
    if alive "$pid"; then tail -n 20 "$dir/etcd.log" >&2; die "not healthy after 30s (log: $dir/etcd.log)"; fi
    grep -qi "address already in use" "$dir/etcd.log" || { tail -n 20 "$dir/etcd.log" >&2; die "etcd exited (log: $dir/etcd.log)"; }
    rm -rf "$dir/data" "$dir/etcd.pid" "$dir/etcd.log"
    [ "$attempt" = 5 ] && die "no free port after 5 attempts"
  done
  UP_PORT=${ports[0]}
  setup_auth
  UP_DONE=1
  say "etcd $("$bin/etcd" --version | awk '/etcd Version/ {print $3}') up on https://127.0.0.1:$UP_PORT with auth in $((SECONDS - t1))s (binary ready after $((t1 - t0))s; state: $dir)"
  echo "export SWELL_ETCD_ENDPOINT=127.0.0.1:$UP_PORT"
  echo "export SWELL_ETCD_TLS_CA=$dir/tls/ca.crt"
  echo "export SWELL_ETCD_USER=$TEST_USER"
  echo "export SWELL_ETCD_PASSWORD=$TEST_PASSWORD"
  echo "export SWELL_ETCD_PREFIX=$PREFIX"
  echo "export SWELL_ETCD_DIR=$dir"
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) shift; cmd_down "$@" ;;
  *) die "usage: etcd.sh up|down … (see the top of hack/etcd.sh)" ;;
esac
