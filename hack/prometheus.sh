#!/usr/bin/env bash
# Local Prometheus for tests: Debian's `prometheus` binary run directly (never as a system
# service) on a free loopback port, with a private config and TSDB in a state directory.
# It scrapes every second the targets listed in DIR/targets/*.json (file service
# discovery), so a test adds a target by writing one file there.
#
#   hack/prometheus.sh up [--dir DIR] [--owner-pid PID]
#        start; prints `export …` lines (eval "$(hack/prometheus.sh up)"), progress on stderr.
#        --owner-pid: a watchdog stops Prometheus and removes DIR when PID exits.
#   hack/prometheus.sh down DIR     stop Prometheus and watchdog, remove DIR (idempotent)
#
# Settings (environment): PROMETHEUS (the binary; default `prometheus` on PATH). When it
# is missing and apt-get can run as root, the Debian package is installed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

die() { printf 'prometheus: %s\n' "$*" >&2; exit 1; }
say() { printf '[prometheus %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
need() { command -v "$1" >/dev/null || die "$1 is not installed (needed to $2); install it and retry"; }

PROM_BIN="${PROMETHEUS:-prometheus}"

ensure_prometheus() {
  command -v "$PROM_BIN" >/dev/null && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    need flock "serialise the package install"
    say "prometheus is not installed; installing Debian's package (apt-get install -y prometheus)"
    local log
    log=$(mktemp "${TMPDIR:-/tmp}/swell-prometheus-apt.XXXXXX")
    # Two test processes may get here at once: one installs, the other waits.
    if ! flock -w 900 /tmp/swell-prometheus-apt.lock \
        env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus >"$log" 2>&1; then
      die "apt-get install -y prometheus failed: $(tail -n 1 "$log"); log: $log (try apt-get update first)"
    fi
    rm -f "$log"
    command -v "$PROM_BIN" >/dev/null && return 0
  fi
  die "the prometheus binary is not installed; on Debian/Ubuntu: apt-get install -y prometheus (or set PROMETHEUS=/path/to/prometheus)"
}

# shellcheck source=lib/procs.sh
source "$here/lib/procs.sh"

stop_dir() { # DIR
  local dir=$1
  stop_pid "$dir/watchdog.pid" swell-prometheus-watchdog
  stop_pid "$dir/prometheus.pid" "$dir/prometheus.yml"
  case "$dir" in /|"$HOME"|"") ;; *) rm -rf "$dir" ;; esac
}

free_port() {
  need python3 "pick a free port"
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

cmd_up() {
  local dir="" owner=""
  while [ $# -gt 0 ]; do
    case $1 in
      --dir) [ $# -ge 2 ] || die "--dir needs a directory"; dir=$2; shift 2 ;;
      --owner-pid) [ $# -ge 2 ] || die "--owner-pid needs a PID"; owner=$2; shift 2 ;;
      *) die "unknown argument $1 (usage: prometheus.sh up [--dir DIR] [--owner-pid PID])" ;;
    esac
  done
  need curl "probe Prometheus"
  need setsid "run Prometheus in its own session"
  if [ -n "$owner" ]; then
    [[ "$owner" =~ ^[0-9]+$ ]] && kill -0 "$owner" 2>/dev/null || die "--owner-pid $owner is not a running process"
  fi
  local t0=$SECONDS
  ensure_prometheus
  if [ -z "$dir" ]; then dir=$(mktemp -d "${TMPDIR:-/tmp}/swell-prometheus.XXXXXX"); fi
  [ -f "$dir/prometheus.pid" ] && die "$dir already holds a Prometheus; stop it first with: hack/prometheus.sh down $dir"
  mkdir -p "$dir/targets" "$dir/data"
  dir=$(cd "$dir" && pwd)
  [[ "$dir" =~ ^[A-Za-z0-9_./+-]+$ ]] || die "state directory $dir has characters unsafe for the config"
  cat >"$dir/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
- job_name: swell-test
  file_sd_configs:
  - files: ["$dir/targets/*.json"]
    refresh_interval: 1s
EOF

  UP_DIR=$dir UP_DONE=0
  trap '[ "$UP_DONE" = 1 ] || stop_dir "$UP_DIR"' EXIT
  trap 'exit 130' INT TERM

  if [ -n "$owner" ]; then
    # Tear down when the owner exits, however it exits (its start time guards PID reuse).
    start_watchdog swell-prometheus-watchdog "$owner" "$dir" "$here/prometheus.sh" "$dir"
  fi

  # A port picked free may be taken before Prometheus binds it: retry a few times.
  local attempt port="" pid
  for attempt in 1 2 3 4 5; do
    port=$(free_port)
    setsid "$PROM_BIN" --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
      --web.listen-address="127.0.0.1:$port" --storage.tsdb.retention.time=1h \
      >"$dir/prometheus.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$dir/prometheus.pid"
    local deadline=$((SECONDS + 30)) ok=0
    while [ $SECONDS -lt $deadline ]; do
      if curl -sf --noproxy '*' --max-time 2 -o /dev/null "http://127.0.0.1:$port/-/ready"; then ok=1; break; fi
      alive "$pid" || break
      sleep 0.1
    done
    [ $ok = 1 ] && break
    if alive "$pid"; then
      say "not ready after 30s; last lines of $dir/prometheus.log:"; tail -n 30 "$dir/prometheus.log" >&2 || true
      exit 1
    fi
    grep -q "address already in use" "$dir/prometheus.log" || {
      say "prometheus exited; last lines of $dir/prometheus.log:"; tail -n 30 "$dir/prometheus.log" >&2 || true
      exit 1
    }
    rm -f "$dir/prometheus.pid"
    [ "$attempt" = 5 ] && die "no free port after 5 attempts"
  done
  UP_DONE=1
  say "$("$PROM_BIN" --version 2>&1 | head -n 1) up on http://127.0.0.1:$port in $((SECONDS - t0))s (state: $dir)"
  echo "export SWELL_PROMETHEUS_URL=http://127.0.0.1:$port"
  echo "export SWELL_PROMETHEUS_DIR=$dir"
}

cmd_down() {
  [ $# -eq 1 ] || die "usage: prometheus.sh down DIR"
  [ -d "$1" ] || { say "$1 does not exist; nothing to stop"; return 0; }
  stop_dir "$1"
  say "stopped and removed $1"
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) shift; cmd_down "$@" ;;
  *) die "usage: prometheus.sh up|down … (see the top of hack/prometheus.sh)" ;;
esac
