#!/usr/bin/env bash
# Local Apache ActiveMQ Artemis for tests: the release from Maven Central
# (org.apache.activemq:apache-artemis:VERSION:tar.gz:bin, fetched once with Maven into a cache
# outside the repository), one broker instance made with `artemis create` in a state
# directory and run as the current user. Login required (a test user with the admin role),
# the core acceptor and the embedded web server (console and Jolokia at /console/jolokia) on
# free loopback ports only; no AMQP/STOMP/MQTT/HornetQ acceptors. The console is served over
# HTTPS too, on another loopback port (a certificate for 127.0.0.1 from a CA made for the run).
# Tests make their own queues (Jolokia `exec` on the broker MBean).
#
#   hack/artemis.sh fetch              fetch the release if missing; prints its directory
#   hack/artemis.sh up [--dir DIR] [--owner-pid PID]
#        start; prints `export …` lines (eval "$(hack/artemis.sh up)"), progress on stderr.
#        --owner-pid: a watchdog stops the broker and removes DIR when PID exits.
#   hack/artemis.sh down DIR           stop the broker and watchdog, remove DIR (idempotent)
#
# Settings (environment): ARTEMIS_VERSION (default 2.40.0), SWELL_ARTEMIS_CACHE (default
# ~/.cache/swell/artemis-VERSION), JAVA_HOME or `java` on PATH (Java 17 or newer),
# ARTEMIS_HEAP (default 512M, the least the profile's -Xms512M allows).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

die() { printf 'artemis: %s\n' "$*" >&2; exit 1; }
say() { printf '[artemis %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
need() { command -v "$1" >/dev/null || die "$1 is not installed (needed to $2); install it and retry"; }

VERSION="${ARTEMIS_VERSION:-2.40.0}"
CACHE="${SWELL_ARTEMIS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/swell/artemis-$VERSION}"
HEAP="${ARTEMIS_HEAP:-512M}"
# Test-only credentials; the broker's name is what KEDA's brokerName must say.
TEST_USER=swell
TEST_PASSWORD=swell-artemis-secret
KEYSTORE_PASSWORD=swell-artemis-tls
BROKER_NAME=swell-artemis

# shellcheck source=lib/procs.sh
source "$here/lib/procs.sh"
# shellcheck source=lib/servers.sh
source "$here/lib/servers.sh"

# fetch: the unpacked release in $CACHE/apache-artemis-$VERSION, fetched with Maven once (a
# lock serialises concurrent first uses; a partial unpack is never taken for a complete one).
fetch() {
  local home="$CACHE/apache-artemis-$VERSION"
  if [ -f "$home/.complete" ]; then echo "$home"; return 0; fi
  need flock "serialise the fetch"
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.lock"
  flock -w 1800 9 || die "waited 30 minutes for another fetch of $CACHE"
  if [ -f "$home/.complete" ]; then echo "$home"; return 0; fi
  "$here/debian-packages.sh" mvn=maven >&2
  local t0=$SECONDS log="$CACHE/fetch.log"
  say "fetching Apache Artemis $VERSION from Maven Central into $CACHE (once)"
  rm -rf "$CACHE/dl" "$home"
  if ! (cd "$CACHE" && mvn -B -ntp dependency:copy \
        -Dartifact="org.apache.activemq:apache-artemis:$VERSION:tar.gz:bin" \
        -DoutputDirectory="$CACHE/dl" >"$log" 2>&1); then
    tail -n 30 "$log" >&2
    die "mvn dependency:copy failed (log: $log)"
  fi
  tar xzf "$CACHE/dl/apache-artemis-$VERSION-bin.tar.gz" -C "$CACHE" || die "unpacking the release failed"
  [ -x "$home/bin/artemis" ] || die "no $home/bin/artemis in the release"
  rm -rf "$CACHE/dl"
  touch "$home/.complete"
  say "fetched Artemis $VERSION ($(du -sh "$home" | cut -f1)) in $((SECONDS - t0))s"
  echo "$home"
}

stop_dir() { # DIR
  local dir=$1
  stop_pid "$dir/watchdog.pid" swell-artemis-watchdog
  stop_pid "$dir/artemis.pid" "$dir/instance"
  case "$dir" in /|"$HOME"|"") ;; *) rm -rf "$dir" ;; esac
}

create_instance() { # HOME DIR HTTP_PORT CORE_PORT: a fresh broker instance in DIR/instance
  local home=$1 dir=$2
  rm -rf "$dir/instance"
  "$home/bin/artemis" create --silent --force --name "$BROKER_NAME" \
    --user "$TEST_USER" --password "$TEST_PASSWORD" --require-login \
    --host 127.0.0.1 --http-host 127.0.0.1 --http-port "$3" --default-port "$4" \
    --no-amqp-acceptor --no-hornetq-acceptor --no-mqtt-acceptor --no-stomp-acceptor \
    --nio --no-fsync --no-autotune --java-memory "$HEAP" \
    "$dir/instance" >"$dir/create.log" 2>&1 \
    || { tail -n 20 "$dir/create.log" >&2; die "artemis create failed (log: $dir/create.log)"; }
  # A test broker must not refuse messages because the machine's disk is 90% full
  # (Artemis' default max-disk-usage): the tests' few messages need no such guard.
  sed -i 's|<max-disk-usage>[0-9]*</max-disk-usage>|<max-disk-usage>-1</max-disk-usage>|' \
    "$dir/instance/etc/broker.xml"
  grep -q '<max-disk-usage>-1</max-disk-usage>' "$dir/instance/etc/broker.xml" \
    || die "no max-disk-usage in $dir/instance/etc/broker.xml to turn off"
}

add_tls_binding() { # DIR HTTPS_PORT: the console also over HTTPS (a PKCS#12 keystore)
  local dir=$1
  python3 - "$dir/instance/etc/bootstrap.xml" "$2" "$dir/tls/server.p12" "$KEYSTORE_PASSWORD" <<'EOF'
import sys
path, port, store, password = sys.argv[1:]
xml = open(path).read()
binding = f'''       <binding name="artemis-tls" uri="https://127.0.0.1:{port}" keyStorePath="{store}" keyStorePassword="{password}" keyStoreType="PKCS12">
           <app name="console-tls" url="console" war="console.war"/>
       </binding>
   </web>'''
if "   </web>" not in xml:
    sys.exit("no </web> in " + path)
open(path, "w").write(xml.replace("   </web>", binding, 1))
EOF
}

cmd_up() {
  local dir="" owner=""
  up_args "$@"
  local t0=$SECONDS
  "$here/debian-packages.sh" java=openjdk-17-jre-headless openssl=openssl
  need curl "wait for the console"
  local home
  home=$(fetch)
  local t1=$SECONDS
  if [ -z "$dir" ]; then dir=$(mktemp -d "${TMPDIR:-/tmp}/swell-artemis.XXXXXX"); fi
  [ -f "$dir/artemis.pid" ] && die "$dir already holds a broker; stop it first with: hack/artemis.sh down $dir"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)

  UP_DIR=$dir UP_DONE=0
  trap '[ "$UP_DONE" = 1 ] || stop_dir "$UP_DIR"' EXIT
  trap 'exit 130' INT TERM
  if [ -n "$owner" ]; then
    start_watchdog swell-artemis-watchdog "$owner" "$dir" "$here/artemis.sh" "$dir"
  fi

  make_certs "$dir"
  openssl pkcs12 -export -in "$dir/tls/server.crt" -inkey "$dir/tls/server.key" -name server \
    -out "$dir/tls/server.p12" -passout "pass:$KEYSTORE_PASSWORD" 2>>"$dir/tls.log" \
    || die "making the console's keystore failed (log: $dir/tls.log)"
  local attempt http_port https_port core_port pid log="$dir/artemis.log"
  for attempt in 1 2 3 4 5; do
    read -r http_port https_port core_port < <(free_ports 3)
    create_instance "$home" "$dir" "$http_port" "$core_port"
    add_tls_binding "$dir" "$https_port"
    setsid "$dir/instance/bin/artemis" run >"$log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$dir/artemis.pid"
    local deadline=$((SECONDS + 120)) ok=0
    while [ $SECONDS -lt $deadline ]; do
      # AMQ241002: Jolokia is served (the console's web app is deployed).
      if grep -q "AMQ241002" "$log" 2>/dev/null; then ok=1; break; fi
      alive "$pid" || break
      sleep 0.1
    done
    [ $ok = 1 ] && break
    if alive "$pid"; then
      say "not started after 120s; last lines of $log:"; tail -n 30 "$log" >&2 || true
      exit 1
    fi
    grep -qi "address already in use" "$log" || {
      say "the broker exited; last lines of $log:"; tail -n 30 "$log" >&2 || true
      exit 1
    }
    rm -f "$dir/artemis.pid"
    [ "$attempt" = 5 ] && die "no free port after 5 attempts"
  done
  # Jolokia answers a version request once the broker's MBeans are registered.
  local origin="http://127.0.0.1:$http_port" code=""
  for _ in $(seq 1 100); do
    code=$(curl -s -o /dev/null -w '%{http_code}' -u "$TEST_USER:$TEST_PASSWORD" -H "Origin: $origin" \
      "$origin/console/jolokia/version" || true)
    [ "$code" = 200 ] && break
    sleep 0.2
  done
  [ "$code" = 200 ] || die "Jolokia at $origin/console/jolokia did not answer 200 (last: $code; log: $log)"
  UP_DONE=1
  say "Artemis $VERSION up (console and Jolokia on 127.0.0.1:$http_port, HTTPS $https_port, core on $core_port) in $((SECONDS - t1))s (release ready after $((t1 - t0))s; state: $dir)"
  echo "export SWELL_ARTEMIS_ENDPOINT=127.0.0.1:$http_port"
  echo "export SWELL_ARTEMIS_TLS_ENDPOINT=127.0.0.1:$https_port"
  echo "export SWELL_ARTEMIS_TLS_CA=$dir/tls/ca.crt"
  echo "export SWELL_ARTEMIS_CORE=127.0.0.1:$core_port"
  echo "export SWELL_ARTEMIS_BROKER=$BROKER_NAME"
  echo "export SWELL_ARTEMIS_USER=$TEST_USER"
  echo "export SWELL_ARTEMIS_PASSWORD=$TEST_PASSWORD"
  echo "export SWELL_ARTEMIS_DIR=$dir"
}

case "${1:-}" in
  fetch) shift; fetch ;;
  up) shift; cmd_up "$@" ;;
  down) shift; cmd_down "$@" ;;
  *) die "usage: artemis.sh fetch|up|down … (see the top of hack/artemis.sh)" ;;
esac
