#!/usr/bin/env bash
# Local RabbitMQ for tests: Debian's rabbitmq-server, one private node with the management
# plugin, everything under a state directory and on free loopback ports: AMQP, AMQPS (a
# certificate for 127.0.0.1 from a CA made for the run; a client certificate from it logs in
# the test user with SASL EXTERNAL), the management API over HTTP and HTTPS, Erlang
# distribution and its own epmd (ERL_EPMD_PORT), so runs side by side never meet and `down`
# leaves no Erlang process behind. The default user has a password; a second vhost is
# made beside `/`.
#
#   hack/rabbitmq.sh up [--dir DIR] [--owner-pid PID]
#        start; prints `export …` lines (eval "$(hack/rabbitmq.sh up)"), progress on stderr.
#        --owner-pid: a watchdog stops RabbitMQ and epmd and removes DIR when PID exits.
#   hack/rabbitmq.sh down DIR           stop RabbitMQ, epmd and watchdog, remove DIR (idempotent)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

die() { printf 'rabbitmq: %s\n' "$*" >&2; exit 1; }
say() { printf '[rabbitmq %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
need() { command -v "$1" >/dev/null || die "$1 is not installed (needed to $2); install it and retry"; }

# Test-only credentials and the second vhost.
TEST_USER=swell
TEST_PASSWORD=swell-rabbit-secret
TEST_VHOST=swell

# shellcheck source=lib/procs.sh
source "$here/lib/procs.sh"
# shellcheck source=lib/servers.sh
source "$here/lib/servers.sh"

SERVER=/usr/lib/rabbitmq/bin/rabbitmq-server

stop_dir() { # DIR
  local dir=$1
  stop_pid "$dir/watchdog.pid" swell-rabbitmq-watchdog
  # The recorded PID is the server script's (the node runs under it, in its session);
  # epmd's command line names its port.
  stop_pid "$dir/rabbitmq.pid" "$SERVER"
  [ -f "$dir/epmd.port" ] && stop_pid "$dir/epmd.pid" "-port $(cat "$dir/epmd.port")"
  # Anything else Erlang started for this node (it names the state directory as HOME).
  local p
  for p in $(pgrep -x epmd; pgrep -x beam.smp); do
    if grep -qsxzF "HOME=$dir" "/proc/$p/environ"; then kill -KILL "$p" 2>/dev/null || true; fi
  done
  case "$dir" in /|"$HOME"|"") ;; *) rm -rf "$dir" ;; esac
}

# epmd_up PORT: an epmd answers on PORT.
epmd_up() {
  ERL_EPMD_PORT=$1 epmd -names >/dev/null 2>&1
}

# api METHOD PORT PATH [BODY]: one management API call as the test user; fails unless 2xx.
api() {
  python3 - "$@" "$TEST_USER" "$TEST_PASSWORD" <<'PY'
import base64, sys, urllib.request
method, port, path, *rest = sys.argv[1:]
body, (user, password) = (rest[0] if len(rest) == 3 else None), rest[-2:]
req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                             data=body.encode() if body is not None else None)
req.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
req.add_header("Content-Type", "application/json")
urllib.request.urlopen(req, timeout=5).read()
PY
}

write_config() { # DIR PORT TLS_PORT MGMT_PORT MGMT_TLS_PORT
  local dir=$1
  cat >"$dir/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$2
listeners.ssl.default = 127.0.0.1:$3
ssl_options.cacertfile = $dir/tls/ca.crt
ssl_options.certfile = $dir/tls/server.crt
ssl_options.keyfile = $dir/tls/server.key
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = false
management.tcp.ip = 127.0.0.1
management.tcp.port = $4
management.ssl.ip = 127.0.0.1
management.ssl.port = $5
management.ssl.cacertfile = $dir/tls/ca.crt
management.ssl.certfile = $dir/tls/server.crt
management.ssl.keyfile = $dir/tls/server.key
# A client certificate logs in as its common name with SASL EXTERNAL (rabbitmq_auth_mechanism_ssl).
auth_mechanisms.1 = PLAIN
auth_mechanisms.2 = AMQPLAIN
auth_mechanisms.3 = EXTERNAL
ssl_cert_login_from = common_name
default_user = $TEST_USER
default_pass = $TEST_PASSWORD
default_vhost = /
default_user_tags.administrator = true
default_permissions.configure = .*
default_permissions.read = .*
default_permissions.write = .*
loopback_users = none
log.console = false
log.file.level = info
# Rates (message_stats.*_details.rate) every 5 s instead of 5 s…60 s buckets by default.
collect_statistics_interval = 1000
management.sample_retention_policies.global.minute = 5
management.sample_retention_policies.basic.minute = 5
management.sample_retention_policies.detailed.10 = 5
EOF
}

start_node() { # DIR PORT TLS_PORT DIST_PORT MGMT_PORT EPMD_PORT MGMT_TLS_PORT: 0 up, 1 port taken, else die
  local dir=$1 port=$2 tport=$3 dport=$4 mport=$5 eport=$6 msport=$7 pid
  write_config "$dir" "$port" "$tport" "$mport" "$msport"
  echo "$eport" >"$dir/epmd.port"
  # Our own epmd on our own port, in the foreground so its PID is known and stopped; up
  # before the node, which must not start one itself (`epmd -daemon` leaves the session and
  # would outlive `down`).
  setsid epmd -address 127.0.0.1 -port "$eport" >"$dir/epmd.log" 2>&1 </dev/null &
  echo $! >"$dir/epmd.pid"
  until epmd_up "$eport"; do
    alive "$(cat "$dir/epmd.pid")" || { rm -f "$dir/epmd.pid"; return 1; } # port taken
    sleep 0.05
  done
  (
    export HOME=$dir ERL_EPMD_PORT=$eport ERL_EPMD_ADDRESS=127.0.0.1
    export RABBITMQ_NODENAME=$NODENAME RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT=$port
    export RABBITMQ_DIST_PORT=$dport RABBITMQ_CONF_ENV_FILE=$dir/rabbitmq-env.conf
    # Distribution on loopback only (it listens on every interface by default).
    export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1} -start_epmd false"
    export RABBITMQ_CONFIG_FILE=$dir/rabbitmq.conf RABBITMQ_ADVANCED_CONFIG_FILE=$dir/advanced.config
    export RABBITMQ_MNESIA_BASE=$dir/mnesia RABBITMQ_LOG_BASE=$dir/log
    export RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins RABBITMQ_PID_FILE=$dir/node.pid
    exec setsid "$SERVER" >"$dir/rabbitmq.log" 2>&1 </dev/null
  ) &
  pid=$!
  echo "$pid" >"$dir/rabbitmq.pid"
  local deadline=$((SECONDS + 120))
  while [ $SECONDS -lt $deadline ]; do
    api GET "$mport" /api/overview 2>/dev/null && return 0
    alive "$pid" || break
    sleep 0.2
  done
  if alive "$pid"; then
    say "not ready after 120s; last lines of $dir/log:"; tail -n 30 "$dir"/log/*.log >&2 || true
    exit 1
  fi
  if grep -qsi "eaddrinuse" "$dir"/log/*.log "$dir/rabbitmq.log"; then
    stop_pid "$dir/epmd.pid" "-port $eport"
    rm -rf "$dir/mnesia" "$dir/log" "$dir/rabbitmq.pid"
    return 1
  fi
  say "rabbitmq-server exited; last lines:"; tail -n 30 "$dir/rabbitmq.log" "$dir"/log/*.log >&2 || true
  exit 1
}

make_client_cert() { # DIR: DIR/tls/client.{crt,key} for the test user, from the run's CA
  (
    cd "$1/tls"
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$TEST_USER" \
      -keyout client.key -out client.csr
    printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n' >client.cnf
    openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
      -extfile client.cnf -out client.crt
  ) >>"$1/tls.log" 2>&1 || { tail -n 20 "$1/tls.log" >&2; die "making the client certificate failed"; }
}

cmd_up() {
  local dir="" owner=""
  up_args "$@"
  local t0=$SECONDS
  [ -x "$SERVER" ] || "$here/debian-packages.sh" rabbitmq-server=rabbitmq-server
  "$here/debian-packages.sh" openssl=openssl
  [ -x "$SERVER" ] || die "$SERVER is missing; apt-get install -y rabbitmq-server"
  need epmd "run Erlang's port mapper for the node"
  local t1=$SECONDS
  if [ -z "$dir" ]; then dir=$(mktemp -d "${TMPDIR:-/tmp}/swell-rabbitmq.XXXXXX"); fi
  [ -f "$dir/rabbitmq.pid" ] && die "$dir already holds a RabbitMQ; stop it first with: hack/rabbitmq.sh down $dir"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  [[ "$dir" =~ ^[A-Za-z0-9_./+-]+$ ]] || die "state directory $dir has characters unsafe for the config"

  UP_DIR=$dir UP_DONE=0
  trap '[ "$UP_DONE" = 1 ] || stop_dir "$UP_DIR"' EXIT
  trap 'exit 130' INT TERM
  if [ -n "$owner" ]; then
    start_watchdog swell-rabbitmq-watchdog "$owner" "$dir" "$here/rabbitmq.sh" "$dir"
  fi
  make_certs "$dir"
  make_client_cert "$dir"
  echo '[rabbitmq_management,rabbitmq_auth_mechanism_ssl].' >"$dir/enabled_plugins"
  : >"$dir/rabbitmq-env.conf"
  # Unique per run: two nodes of one name on one host cannot both register.
  NODENAME="swell-$(basename "$dir" | tr -c 'A-Za-z0-9\n' -)-$$@localhost"

  local attempt port tport dport mport eport msport
  for attempt in 1 2 3 4 5; do
    read -r port tport dport mport eport msport < <(free_ports 6)
    start_node "$dir" "$port" "$tport" "$dport" "$mport" "$eport" "$msport" && break
    [ "$attempt" = 5 ] && die "no free ports after 5 attempts"
  done
  api PUT "$mport" "/api/vhosts/$TEST_VHOST" '{}'
  api PUT "$mport" "/api/permissions/$TEST_VHOST/$TEST_USER" '{"configure":".*","write":".*","read":".*"}'
  UP_DONE=1
  local version
  version=$(dpkg-query -W -f '${Version}' rabbitmq-server 2>/dev/null || echo '?')
  say "RabbitMQ $version up on 127.0.0.1:$port (AMQPS $tport, management $mport and TLS $msport, dist $dport, epmd $eport) in $((SECONDS - t1))s (package ready after $((t1 - t0))s; state: $dir)"
  echo "export SWELL_RABBITMQ_AMQP_PORT=$port"
  echo "export SWELL_RABBITMQ_AMQPS_PORT=$tport"
  echo "export SWELL_RABBITMQ_HTTP_PORT=$mport"
  echo "export SWELL_RABBITMQ_HTTPS_PORT=$msport"
  echo "export SWELL_RABBITMQ_USER=$TEST_USER"
  echo "export SWELL_RABBITMQ_PASSWORD=$TEST_PASSWORD"
  echo "export SWELL_RABBITMQ_VHOST=$TEST_VHOST"
  echo "export SWELL_RABBITMQ_TLS_CA=$dir/tls/ca.crt"
  echo "export SWELL_RABBITMQ_CLIENT_CERT=$dir/tls/client.crt"
  echo "export SWELL_RABBITMQ_CLIENT_KEY=$dir/tls/client.key"
  echo "export SWELL_RABBITMQ_DIR=$dir"
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) shift; cmd_down "$@" ;;
  *) die "usage: rabbitmq.sh up|down … (see the top of hack/rabbitmq.sh)" ;;
esac
