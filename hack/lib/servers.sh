# Helpers shared by the scripts that start a test server on loopback (redis.sh,
# postgresql.sh, rabbitmq.sh, mariadb.sh). Source it after defining `need`, `die` and `say`;
# the script defines `stop_dir DIR` (stop its server and watchdog, remove DIR).

# up_args "$@": the options `up` takes, into the caller's `dir` and `owner` (declared local
# there; bash scopes them dynamically). Checks that the owner is a running process.
# UP_USAGE_EXTRA: the script's own options, handled before this, for the usage line.
up_args() {
  while [ $# -gt 0 ]; do
    case $1 in
      --dir) [ $# -ge 2 ] || die "--dir needs a directory"; dir=$2; shift 2 ;;
      --owner-pid) [ $# -ge 2 ] || die "--owner-pid needs a PID"; owner=$2; shift 2 ;;
      *) die "unknown argument $1 (usage: ${0##*/} up [--dir DIR] [--owner-pid PID]${UP_USAGE_EXTRA:-})" ;;
    esac
  done
  need setsid "run the server in its own session"
  if [ -n "$owner" ]; then
    [[ "$owner" =~ ^[0-9]+$ ]] && kill -0 "$owner" 2>/dev/null || die "--owner-pid $owner is not a running process"
  fi
}

# cmd_down DIR: stops the server of DIR and removes it (nothing to do when DIR is gone).
cmd_down() {
  [ $# -eq 1 ] || die "usage: ${0##*/} down DIR"
  [ -d "$1" ] || { say "$1 does not exist; nothing to stop"; return 0; }
  stop_dir "$1"
  say "stopped and removed $1"
}

# free_ports N: N distinct free loopback ports, space-separated (all bound at once, so
# they differ; another process may still take one before the server binds it, which the
# callers retry).
free_ports() {
  need python3 "pick free ports"
  python3 -c '
import socket, sys
ss = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); ss.append(s)
print(" ".join(str(s.getsockname()[1]) for s in ss))' "$1"
}

# make_certs DIR: DIR/tls/{ca.crt,ca.key,server.crt,server.key}, a CA made for the run and a
# server certificate for 127.0.0.1 and localhost it signed (EC P-256, two days).
make_certs() {
  need openssl "make the server's certificates"
  mkdir -p "$1/tls"
  (
    cd "$1/tls"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=swell-test-ca \
      -keyout ca.key -out ca.crt
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
      -keyout server.key -out server.csr
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n' >ext.cnf
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
      -extfile ext.cnf -out server.crt
    chmod 600 server.key
  ) >"$1/tls.log" 2>&1 || { tail -n 20 "$1/tls.log" >&2; die "making the test certificates failed"; }
}
