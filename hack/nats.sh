#!/usr/bin/env bash
# Local NATS with JetStream for tests: Debian's nats-server, run as the current user (no system
# service), stores in a state directory, loopback only. Two deployments:
#   - one server ("solo") on 127.0.0.1: client port, HTTPS monitoring with a certificate for
#     127.0.0.1 from a CA made for the run (TLS offered to clients, plaintext allowed so tests
#     may speak the text protocol without TLS);
#   - a 3-node cluster ("n1".."n3") on 127.0.0.1, 127.0.0.2 and 127.0.0.3, each with the same
#     client, route and HTTP monitoring ports on its own address, as pods of a StatefulSet
#     (KEDA reaches a node's monitoring port at the address the node advertises to clients).
#
#   hack/nats.sh up [--dir DIR] [--owner-pid PID]
#        start; prints `export …` lines (eval "$(hack/nats.sh up)"), progress on stderr.
#        --owner-pid: a watchdog stops the servers and removes DIR when PID exits.
#   hack/nats.sh down DIR           stop the servers and watchdog, remove DIR (idempotent)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

die() { printf 'nats: %s\n' "$*" >&2; exit 1; }
say() { printf '[nats %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
need() { command -v "$1" >/dev/null || die "$1 is not installed (needed to $2); install it and retry"; }

# shellcheck source=lib/procs.sh
source "$here/lib/procs.sh"
# shellcheck source=lib/servers.sh
source "$here/lib/servers.sh"

NODES="solo n1 n2 n3"

stop_dir() { # DIR
  local dir=$1 n
  stop_pid "$dir/watchdog.pid" swell-nats-watchdog
  for n in $NODES; do stop_pid "$dir/$n.pid" "$dir/$n.conf"; done
  case "$dir" in /|"$HOME"|"") ;; *) rm -rf "$dir" ;; esac
}

start_node() { # DIR NAME: nats-server in its own session; its PID in DIR/NAME.pid
  setsid nats-server -c "$1/$2.conf" >"$1/$2.log" 2>&1 </dev/null &
  echo "$!" >"$1/$2.pid"
}

write_configs() { # DIR SOLO_CLIENT SOLO_HTTPS CLIENT ROUTE HTTP
  local dir=$1 i
  cat >"$dir/solo.conf" <<EOF
server_name: solo
listen: 127.0.0.1:$2
https: 127.0.0.1:$3
allow_non_tls: true
tls { cert_file: "$dir/tls/server.crt", key_file: "$dir/tls/server.key" }
jetstream { store_dir: "$dir/store/solo" }
EOF
  for i in 1 2 3; do
    cat >"$dir/n$i.conf" <<EOF
server_name: n$i
listen: 127.0.0.$i:$4
http: 127.0.0.$i:$6
jetstream { store_dir: "$dir/store/n$i" }
cluster {
  name: swell
  listen: 127.0.0.$i:$5
  routes: [nats-route://127.0.0.1:$5, nats-route://127.0.0.2:$5, nats-route://127.0.0.3:$5]
}
EOF
  done
}

# wait_ready DIR: 0 when every node logged "Server is ready", 1 when one exited on a port
# taken; dies on any other failure.
wait_ready() {
  local dir=$1 n deadline=$((SECONDS + 30)) pending
  while [ $SECONDS -lt $deadline ]; do
    pending=0
    for n in $NODES; do
      grep -q "Server is ready" "$dir/$n.log" 2>/dev/null && continue
      pending=1
      if ! alive "$(cat "$dir/$n.pid")"; then
        grep -qi "address already in use" "$dir/$n.log" && return 1
        say "$n exited; last lines of $dir/$n.log:"; tail -n 20 "$dir/$n.log" >&2 || true
        exit 1
      fi
    done
    [ $pending = 0 ] && return 0
    sleep 0.1
  done
  for n in $NODES; do tail -n 5 "$dir/$n.log" >&2 || true; done
  die "not ready after 30s (logs in $dir)"
}

# wait_meta_leader PORT: the cluster elected a JetStream meta leader (streams can be made).
wait_meta_leader() {
  local deadline=$((SECONDS + 30))
  while [ $SECONDS -lt $deadline ]; do
    curl -fsS "http://127.0.0.1:$1/jsz" 2>/dev/null | grep -q '"leader"' && return 0
    sleep 0.2
  done
  die "the cluster elected no JetStream meta leader in 30s"
}

cmd_up() {
  local dir="" owner=""
  up_args "$@"
  local t0=$SECONDS
  "$here/debian-packages.sh" nats-server=nats-server openssl=openssl curl=curl
  need nats-server "run NATS (apt-get install -y nats-server)"
  local t1=$SECONDS
  if [ -z "$dir" ]; then dir=$(mktemp -d "${TMPDIR:-/tmp}/swell-nats.XXXXXX"); fi
  [ -f "$dir/solo.pid" ] && die "$dir already holds NATS; stop it first with: hack/nats.sh down $dir"
  mkdir -p "$dir/store"
  dir=$(cd "$dir" && pwd)

  UP_DIR=$dir UP_DONE=0
  trap '[ "$UP_DONE" = 1 ] || stop_dir "$UP_DIR"' EXIT
  trap 'exit 130' INT TERM
  if [ -n "$owner" ]; then
    start_watchdog swell-nats-watchdog "$owner" "$dir" "$here/nats.sh" "$dir"
  fi
  make_certs "$dir"
  local attempt ports n
  for attempt in 1 2 3 4 5; do
    # solo client, solo https, cluster client, route, http (the cluster's on each address)
    read -r -a ports <<<"$(free_ports 5)"
    write_configs "$dir" "${ports[@]}"
    for n in $NODES; do start_node "$dir" "$n"; done
    wait_ready "$dir" && break
    for n in $NODES; do stop_pid "$dir/$n.pid" "$dir/$n.conf"; rm -f "$dir/$n.log"; done
    rm -rf "$dir/store"
    [ "$attempt" = 5 ] && die "no free ports after 5 attempts"
  done
  wait_meta_leader "${ports[4]}"
  UP_DONE=1
  say "nats-server $(nats-server --version | awk '{print $2}') up (solo and a 3-node cluster) in $((SECONDS - t1))s (package ready after $((t1 - t0))s; state: $dir)"
  echo "export SWELL_NATS_ADDR=127.0.0.1:${ports[0]}"
  echo "export SWELL_NATS_MONITOR=127.0.0.1:${ports[1]}"
  echo "export SWELL_NATS_TLS_CA=$dir/tls/ca.crt"
  echo "export SWELL_NATS_CLUSTER_ADDRS=127.0.0.1:${ports[2]},127.0.0.2:${ports[2]},127.0.0.3:${ports[2]}"
  echo "export SWELL_NATS_CLUSTER_MONITOR=127.0.0.1:${ports[4]}"
  echo "export SWELL_NATS_DIR=$dir"
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) shift; cmd_down "$@" ;;
  *) die "usage: nats.sh up|down … (see the top of hack/nats.sh)" ;;
esac
