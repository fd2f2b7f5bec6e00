#!/usr/bin/env bash
# Local Redis topologies for the redis-cluster* and redis-sentinel* tests: Debian's
# redis-server on free loopback ports, state and logs in a state directory.
# - a cluster of three masters (no replicas), created with `redis-cli --cluster create`,
#   each with a plain and a TLS port (a certificate for 127.0.0.1 from a CA made for the
#   run; Redis answers CLUSTER SLOTS with the port of the client's kind);
# - a master watched by one sentinel (`redis-server --sentinel`) under the name
#   swell-master; the sentinel wants its own password (default user) or its own ACL user.
# Every data server has a password for the default user and an ACL user with its own.
#
#   hack/redis-topo.sh up [--dir DIR] [--owner-pid PID]
#        start; prints `export …` lines (eval "$(hack/redis-topo.sh up)"), progress on stderr.
#        --owner-pid: a watchdog stops the servers and removes DIR when PID exits.
#   hack/redis-topo.sh down DIR      stop the servers and watchdog, remove DIR (idempotent)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

die() { printf 'redis-topo: %s\n' "$*" >&2; exit 1; }
say() { printf '[redis-topo %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
need() { command -v "$1" >/dev/null || die "$1 is not installed (needed to $2); install it and retry"; }

# Test-only credentials.
DEFAULT_PASSWORD=swell-redis-topo-default
ACL_USER=swell
ACL_PASSWORD=swell-redis-topo-secret
SENTINEL_PASSWORD=swell-sentinel-secret
SENTINEL_ACL_USER=swell-sentinel
SENTINEL_ACL_PASSWORD=swell-sentinel-acl-secret
MASTER_NAME=swell-master
# Servers: three cluster nodes, the sentinel's master, the sentinel.
SERVERS="node1 node2 node3 master sentinel"

# shellcheck source=lib/procs.sh
source "$here/lib/procs.sh"
# shellcheck source=lib/servers.sh
source "$here/lib/servers.sh"

stop_dir() { # DIR
  local dir=$1 s
  stop_pid "$dir/watchdog.pid" swell-redis-topo-watchdog
  for s in $SERVERS; do stop_pid "$dir/$s.pid" "$dir/$s.conf"; done
  case "$dir" in /|"$HOME"|"") ;; *) rm -rf "$dir" ;; esac
}

# write_conf NAME PORT EXTRA: a data server's (or the sentinel's) config in DIR/NAME.conf.
write_conf() {
  mkdir -p "$dir/$1"
  cat >"$dir/$1.conf" <<EOF
bind 127.0.0.1
protected-mode yes
port $2
daemonize no
# Keep the config path in the process title: stop_pid checks it before signalling.
proc-title-template "{title} {listen-addr} {config-file}"
dir $dir/$1
logfile ""
save ""
appendonly no
$3
EOF
}

data_users() {
  printf 'user default on >%s ~* &* +@all\nuser %s on >%s ~* &* +@all\n' \
    "$DEFAULT_PASSWORD" "$ACL_USER" "$ACL_PASSWORD"
}

# start NAME [--sentinel]: runs the server of DIR/NAME.conf, records its pid.
start() {
  setsid redis-server "$dir/$1.conf" "${@:2}" >"$dir/$1.log" 2>&1 </dev/null &
  echo "$!" >"$dir/$1.pid"
}

# ready NAME PATTERN: waits until NAME's log shows PATTERN; 1 when the server exited
# because its port was taken (the caller picks new ports), fatal otherwise.
ready() {
  local pid deadline=$((SECONDS + 60))
  pid=$(cat "$dir/$1.pid")
  while [ $SECONDS -lt $deadline ]; do
    grep -q "$2" "$dir/$1.log" 2>/dev/null && return 0
    if ! alive "$pid"; then
      grep -qi "address already in use" "$dir/$1.log" && return 1
      say "$1 exited; last lines of $dir/$1.log:"; tail -n 30 "$dir/$1.log" >&2 || true
      exit 1
    fi
    sleep 0.1
  done
  say "$1 not ready after 60s; last lines of $dir/$1.log:"; tail -n 30 "$dir/$1.log" >&2 || true
  exit 1
}

cli() { redis-cli --no-auth-warning -a "$DEFAULT_PASSWORD" "$@"; }

# wait_for DESCRIPTION COMMAND…: retries COMMAND (quiet) for 60s.
wait_for() {
  local what=$1 deadline=$((SECONDS + 60)); shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "$what not reached after 60s"
    sleep 0.2
  done
}

cluster_ok() { cli -p "$1" cluster info | grep -q '^cluster_state:ok'; }
master_known() {
  redis-cli --no-auth-warning -a "$SENTINEL_PASSWORD" -p "$sport" \
    sentinel get-master-addr-by-name "$MASTER_NAME" | grep -q "^$mport\$"
}

# up_servers: every server on fresh ports; 1 when a port was taken meanwhile.
up_servers() {
  local p b t
  read -r p1 p2 p3 b1 b2 b3 tp1 tp2 tp3 mport sport < <(free_ports 11)
  for i in 1 2 3; do
    eval "p=\$p$i b=\$b$i t=\$tp$i"
    write_conf "node$i" "$p" "cluster-enabled yes
cluster-port $b
tls-port $t
tls-cert-file $dir/tls/server.crt
tls-key-file $dir/tls/server.key
tls-ca-cert-file $dir/tls/ca.crt
tls-auth-clients no
tls-cluster yes
tls-replication yes
cluster-config-file $dir/node$i/nodes.conf
cluster-node-timeout 5000
masterauth $DEFAULT_PASSWORD
$(data_users)"
    start "node$i"
  done
  write_conf master "$mport" "$(data_users)"
  start master
  for s in node1 node2 node3 master; do ready "$s" "Ready to accept connections" || return 1; done
  # The sentinel rewrites its config; it wants a password of its own and the master's.
  write_conf sentinel "$sport" "requirepass $SENTINEL_PASSWORD
user $SENTINEL_ACL_USER on >$SENTINEL_ACL_PASSWORD ~* &* +@all
sentinel monitor $MASTER_NAME 127.0.0.1 $mport 1
sentinel auth-pass $MASTER_NAME $DEFAULT_PASSWORD
sentinel down-after-milliseconds $MASTER_NAME 60000"
  start sentinel --sentinel
  ready sentinel "Sentinel ID is" || return 1
}

cmd_up() {
  local dir="" owner=""
  up_args "$@"
  local t0=$SECONDS
  "$here/debian-packages.sh" redis-server=redis-server redis-cli=redis-tools
  need python3 "pick free ports"
  local t1=$SECONDS
  if [ -z "$dir" ]; then dir=$(mktemp -d "${TMPDIR:-/tmp}/swell-redis-topo.XXXXXX"); fi
  [ -f "$dir/node1.pid" ] && die "$dir already holds servers; stop them first with: hack/redis-topo.sh down $dir"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  [[ "$dir" =~ ^[A-Za-z0-9_./+-]+$ ]] || die "state directory $dir has characters unsafe for the config"

  UP_DIR=$dir UP_DONE=0
  trap '[ "$UP_DONE" = 1 ] || stop_dir "$UP_DIR"' EXIT
  trap 'exit 130' INT TERM
  if [ -n "$owner" ]; then
    start_watchdog swell-redis-topo-watchdog "$owner" "$dir" "$here/redis-topo.sh" "$dir"
  fi
  make_certs "$dir"

  local attempt p1 p2 p3 b1 b2 b3 tp1 tp2 tp3 mport sport
  for attempt in 1 2 3 4 5; do
    up_servers && break
    for s in $SERVERS; do stop_pid "$dir/$s.pid" "$dir/$s.conf"; done
    [ "$attempt" = 5 ] && die "no free ports after 5 attempts"
  done
  cli --cluster create "127.0.0.1:$p1" "127.0.0.1:$p2" "127.0.0.1:$p3" \
    --cluster-replicas 0 --cluster-yes >"$dir/cluster-create.log" 2>&1 ||
    { tail -n 30 "$dir/cluster-create.log" >&2; die "redis-cli --cluster create failed"; }
  for p in "$p1" "$p2" "$p3"; do wait_for "cluster_state:ok on $p" cluster_ok "$p"; done
  wait_for "the sentinel naming $MASTER_NAME" master_known
  UP_DONE=1
  say "Redis cluster up on 127.0.0.1:$p1,$p2,$p3 (TLS $tp1,$tp2,$tp3) and sentinel 127.0.0.1:$sport (master 127.0.0.1:$mport) in $((SECONDS - t1))s (packages ready after $((t1 - t0))s; state: $dir)"
  echo "export SWELL_REDIS_CLUSTER_ADDRESSES=127.0.0.1:$p1,127.0.0.1:$p2,127.0.0.1:$p3"
  echo "export SWELL_REDIS_CLUSTER_TLS_ADDRESSES=127.0.0.1:$tp1,127.0.0.1:$tp2,127.0.0.1:$tp3"
  echo "export SWELL_REDIS_TOPO_TLS_CA=$dir/tls/ca.crt"
  echo "export SWELL_REDIS_SENTINEL_ADDRESS=127.0.0.1:$sport"
  echo "export SWELL_REDIS_SENTINEL_PASSWORD=$SENTINEL_PASSWORD"
  echo "export SWELL_REDIS_SENTINEL_ACL_USER=$SENTINEL_ACL_USER"
  echo "export SWELL_REDIS_SENTINEL_ACL_PASSWORD=$SENTINEL_ACL_PASSWORD"
  echo "export SWELL_REDIS_SENTINEL_MASTER=$MASTER_NAME"
  echo "export SWELL_REDIS_MASTER_ADDRESS=127.0.0.1:$mport"
  echo "export SWELL_REDIS_TOPO_PASSWORD=$DEFAULT_PASSWORD"
  echo "export SWELL_REDIS_TOPO_ACL_USER=$ACL_USER"
  echo "export SWELL_REDIS_TOPO_ACL_PASSWORD=$ACL_PASSWORD"
  echo "export SWELL_REDIS_TOPO_DIR=$dir"
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) shift; cmd_down "$@" ;;
  *) die "usage: redis-topo.sh up|down … (see the top of hack/redis-topo.sh)" ;;
esac
