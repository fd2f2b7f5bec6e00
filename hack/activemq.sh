#!/usr/bin/env bash
# Local Apache ActiveMQ "Classic" for tests: Debian's activemq (5.17), one broker run as the
# current user from a state directory with its own activemq.xml (no system service, no
# /etc/activemq instance): JMX on without a remote connector, non-persistent, one OpenWire
# transport connector on a free loopback port. Debian's package has no web console, so
# Jolokia's JVM agent (org.jolokia:jolokia-jvm from Maven Central, fetched once into a
# cache outside the repository) serves Jolokia on another free loopback port at
# /api/jolokia, with basic auth for a test user and CORS strict checking as the console's
# Jolokia has: KEDA's default URL template works unchanged. Tests make their own queues
# (Jolokia `exec` of addQueue on the broker MBean).
#
#   hack/activemq.sh fetch             fetch the Jolokia agent if missing; prints its path
#   hack/activemq.sh up [--dir DIR] [--owner-pid PID]
#        start; prints `export …` lines (eval "$(hack/activemq.sh up)"), progress on stderr.
#        --owner-pid: a watchdog stops the broker and removes DIR when PID exits.
#   hack/activemq.sh down DIR          stop the broker and watchdog, remove DIR (idempotent)
#
# Settings (environment): JOLOKIA_VERSION (default 1.7.2), SWELL_JOLOKIA_CACHE (default
# ~/.cache/swell/jolokia-VERSION), ACTIVEMQ_HEAP (default -Xmx256m).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

die() { printf 'activemq: %s\n' "$*" >&2; exit 1; }
say() { printf '[activemq %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
need() { command -v "$1" >/dev/null || die "$1 is not installed (needed to $2); install it and retry"; }

JOLOKIA_VERSION="${JOLOKIA_VERSION:-1.7.2}"
CACHE="${SWELL_JOLOKIA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/swell/jolokia-$JOLOKIA_VERSION}"
HEAP="${ACTIVEMQ_HEAP:--Xmx256m}"
ACTIVEMQ_HOME=/usr/share/activemq
# Test-only credentials; the broker's name is what KEDA's brokerName must say.
TEST_USER=swell
TEST_PASSWORD=swell-activemq-secret
BROKER_NAME=swell-activemq

# shellcheck source=lib/procs.sh
source "$here/lib/procs.sh"
# shellcheck source=lib/servers.sh
source "$here/lib/servers.sh"

# fetch: the agent jar (in 1.7 the main artifact is the agent: it has Premain-Class), fetched
# with Maven once under a lock; a partial download is never taken for a complete one.
fetch() {
  local jar="$CACHE/jolokia-jvm-$JOLOKIA_VERSION.jar"
  if [ -f "$jar" ]; then echo "$jar"; return 0; fi
  need flock "serialise the fetch"
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.lock"
  flock -w 900 9 || die "waited 15 minutes for another fetch of $CACHE"
  if [ -f "$jar" ]; then echo "$jar"; return 0; fi
  "$here/debian-packages.sh" mvn=maven >&2
  local t0=$SECONDS log="$CACHE/fetch.log"
  say "fetching the Jolokia $JOLOKIA_VERSION JVM agent from Maven Central into $CACHE (once)"
  rm -rf "$CACHE/dl"
  if ! (cd "$CACHE" && mvn -B -ntp dependency:copy -Dartifact="org.jolokia:jolokia-jvm:$JOLOKIA_VERSION" \
        -DoutputDirectory="$CACHE/dl" >"$log" 2>&1); then
    tail -n 30 "$log" >&2
    die "mvn dependency:copy failed (log: $log)"
  fi
  mv "$CACHE/dl/jolokia-jvm-$JOLOKIA_VERSION.jar" "$jar.tmp" && mv "$jar.tmp" "$jar"
  rm -rf "$CACHE/dl"
  say "fetched the Jolokia agent in $((SECONDS - t0))s"
  echo "$jar"
}

stop_dir() { # DIR
  local dir=$1
  stop_pid "$dir/watchdog.pid" swell-activemq-watchdog
  stop_pid "$dir/activemq.pid" "$dir/conf"
  case "$dir" in /|"$HOME"|"") ;; *) rm -rf "$dir" ;; esac
}

write_config() { # DIR OPENWIRE_PORT
  local dir=$1
  mkdir -p "$dir/conf" "$dir/data"
  cat >"$dir/conf/activemq.xml" <<EOF
<beans xmlns="http://www.springframework.org/schema/beans"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="http://www.springframework.org/schema/beans http://www.springframework.org/schema/beans/spring-beans.xsd
  http://activemq.apache.org/schema/core http://activemq.apache.org/schema/core/activemq-core.xsd">
  <broker xmlns="http://activemq.apache.org/schema/core" brokerName="$BROKER_NAME" useJmx="true"
          persistent="false" schedulerSupport="false" dataDirectory="$dir/data">
    <!-- The MBeans Jolokia reads; no RMI connector. -->
    <managementContext><managementContext createConnector="false"/></managementContext>
    <systemUsage><systemUsage>
      <memoryUsage><memoryUsage limit="64 mb"/></memoryUsage>
      <tempUsage><tempUsage limit="256 mb"/></tempUsage>
      <storeUsage><storeUsage limit="256 mb"/></storeUsage>
    </systemUsage></systemUsage>
    <transportConnectors>
      <transportConnector name="openwire" uri="tcp://127.0.0.1:$2"/>
    </transportConnectors>
  </broker>
</beans>
EOF
  # As the web console's Jolokia: only loopback origins, checked on the server side too.
  cat >"$dir/conf/jolokia-access.xml" <<'EOF'
<restrict><cors><allow-origin>*://127.0.0.1*</allow-origin><strict-checking/></cors></restrict>
EOF
  # Debian's broker logs through log4j 1.2 (found on the classpath, in conf).
  cat >"$dir/conf/log4j.properties" <<'EOF'
log4j.rootLogger=INFO, out
log4j.logger.org.springframework=WARN
log4j.logger.org.apache.xbean=WARN
log4j.appender.out=org.apache.log4j.ConsoleAppender
log4j.appender.out.layout=org.apache.log4j.PatternLayout
log4j.appender.out.layout.ConversionPattern=%d{ISO8601} %-5p %m (%c)%n
EOF
}

start_broker() { # DIR JOLOKIA_JAR JOLOKIA_PORT: the JVM in its own session; its PID in DIR/activemq.pid
  local dir=$1
  local agent="host=127.0.0.1,port=$3,agentContext=/api/jolokia,user=$TEST_USER,password=$TEST_PASSWORD"
  agent+=",policyLocation=file://$dir/conf/jolokia-access.xml,discoveryEnabled=false"
  setsid java "$HEAP" -Xms64m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
    "-javaagent:$2=$agent" \
    -Dactivemq.classpath="$dir/conf" -Dactivemq.home="$ACTIVEMQ_HOME" -Dactivemq.base="$dir" \
    -Dactivemq.conf="$dir/conf" -Dactivemq.data="$dir/data" \
    -jar "$ACTIVEMQ_HOME/bin/activemq.jar" start "xbean:file:$dir/conf/activemq.xml" \
    >"$dir/activemq.log" 2>&1 </dev/null &
  echo "$!" >"$dir/activemq.pid"
}

cmd_up() {
  local dir="" owner=""
  up_args "$@"
  local t0=$SECONDS
  "$here/debian-packages.sh" java=openjdk-17-jre-headless curl=curl
  [ -f "$ACTIVEMQ_HOME/bin/activemq.jar" ] || "$here/debian-packages.sh" activemq=activemq
  [ -f "$ACTIVEMQ_HOME/bin/activemq.jar" ] || die "no $ACTIVEMQ_HOME/bin/activemq.jar; apt-get install -y activemq"
  local jar
  jar=$(fetch)
  local t1=$SECONDS
  if [ -z "$dir" ]; then dir=$(mktemp -d "${TMPDIR:-/tmp}/swell-activemq.XXXXXX"); fi
  [ -f "$dir/activemq.pid" ] && die "$dir already holds a broker; stop it first with: hack/activemq.sh down $dir"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  [[ "$dir" =~ ^[A-Za-z0-9_./+-]+$ ]] || die "state directory $dir has characters unsafe for the config"

  UP_DIR=$dir UP_DONE=0
  trap '[ "$UP_DONE" = 1 ] || stop_dir "$UP_DIR"' EXIT
  trap 'exit 130' INT TERM
  if [ -n "$owner" ]; then
    start_watchdog swell-activemq-watchdog "$owner" "$dir" "$here/activemq.sh" "$dir"
  fi

  local attempt http_port wire_port pid log="$dir/activemq.log" url code=""
  for attempt in 1 2 3 4 5; do
    read -r http_port wire_port < <(free_ports 2)
    rm -f "$dir/ready.json"
    write_config "$dir" "$wire_port"
    start_broker "$dir" "$jar" "$http_port"
    pid=$(cat "$dir/activemq.pid")
    # Ready when Jolokia answers for the broker's MBean (the broker has registered it).
    url="http://127.0.0.1:$http_port/api/jolokia/read/org.apache.activemq:type=Broker,brokerName=$BROKER_NAME/BrokerVersion"
    local deadline=$((SECONDS + 120))
    while [ $SECONDS -lt $deadline ] && alive "$pid"; do
      code=$(curl -s -o "$dir/ready.json" -w '%{http_code}' -u "$TEST_USER:$TEST_PASSWORD" \
        -H "Origin: http://127.0.0.1:$http_port" "$url" || true)
      if [ "$code" = 200 ] && grep -q '"status":200' "$dir/ready.json"; then break; fi
      sleep 0.2
    done
    grep -q '"status":200' "$dir/ready.json" 2>/dev/null && alive "$pid" && break
    if alive "$pid"; then
      say "not ready after 120s (Jolokia: $code); last lines of $log:"; tail -n 30 "$log" >&2 || true
      exit 1
    fi
    grep -qi "address already in use\|BindException" "$log" || {
      say "the broker exited; last lines of $log:"; tail -n 30 "$log" >&2 || true
      exit 1
    }
    rm -f "$dir/activemq.pid"
    [ "$attempt" = 5 ] && die "no free port after 5 attempts"
  done
  UP_DONE=1
  local version
  version=$(sed -n 's/.*"value":"\([^"]*\)".*/\1/p' "$dir/ready.json")
  say "ActiveMQ $version up (Jolokia on 127.0.0.1:$http_port/api/jolokia, OpenWire on $wire_port) in $((SECONDS - t1))s (package and agent ready after $((t1 - t0))s; state: $dir)"
  echo "export SWELL_ACTIVEMQ_ENDPOINT=127.0.0.1:$http_port"
  echo "export SWELL_ACTIVEMQ_OPENWIRE=127.0.0.1:$wire_port"
  echo "export SWELL_ACTIVEMQ_BROKER=$BROKER_NAME"
  echo "export SWELL_ACTIVEMQ_USER=$TEST_USER"
  echo "export SWELL_ACTIVEMQ_PASSWORD=$TEST_PASSWORD"
  echo "export SWELL_ACTIVEMQ_DIR=$dir"
}

case "${1:-}" in
  fetch) shift; fetch ;;
  up) shift; cmd_up "$@" ;;
  down) shift; cmd_down "$@" ;;
  *) die "usage: activemq.sh fetch|up|down … (see the top of hack/activemq.sh)" ;;
esac
