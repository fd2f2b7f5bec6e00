#!/usr/bin/env bash
# Local Kafka for tests: Apache Kafka's own jars from Maven Central (fetched once with
# Maven into a cache outside the repository), run as one KRaft node (broker and
# controller in one process) on free loopback ports, with its log and data in a state
# directory. Listeners: PLAINTEXT, SASL_PLAINTEXT (PLAIN, SCRAM-SHA-256/512 for the test
# user swell) and SSL (a certificate for 127.0.0.1 from a CA made for the run). With the
# local OAuth server's exports in the environment (hack/oauth.sh: SWELL_OAUTH_ISSUER,
# SWELL_OAUTH_JWKS_URL, SWELL_OAUTH_KAFKA_AUDIENCE, SWELL_OAUTH_TLS_CA), a fourth
# listener, OAUTH (SASL_PLAINTEXT, OAUTHBEARER), validates JWT access tokens with Kafka's
# OAuthBearerValidatorCallbackHandler (KIP-768) against that server's JWKS; without them
# Kafka starts without it and SWELL_KAFKA_OAUTH_BOOTSTRAP is not exported.
#
#   hack/kafka.sh fetch              fetch the jars if missing; prints the libs directory
#   hack/kafka.sh up [--dir DIR] [--owner-pid PID]
#        start; prints `export …` lines (eval "$(hack/kafka.sh up)"), progress on stderr.
#        --owner-pid: a watchdog stops Kafka and removes DIR when PID exits.
#   hack/kafka.sh down DIR           stop Kafka and watchdog, remove DIR (idempotent)
#
# Settings (environment): KAFKA_VERSION (default 4.1.1), SWELL_KAFKA_CACHE (default
# ~/.cache/swell/kafka-VERSION), JAVA (default `java` on PATH; Java 17 or newer),
# KAFKA_HEAP (default -Xmx384m).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

die() { printf 'kafka: %s\n' "$*" >&2; exit 1; }
say() { printf '[kafka %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
need() { command -v "$1" >/dev/null || die "$1 is not installed (needed to $2); install it and retry"; }

VERSION="${KAFKA_VERSION:-4.1.1}"
CACHE="${SWELL_KAFKA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/swell/kafka-$VERSION}"
JAVA_BIN="${JAVA:-java}"
HEAP="${KAFKA_HEAP:--Xmx384m}"
# Test-only credentials of the SASL listener (PLAIN and SCRAM-SHA-256/512).
SASL_USER=swell
SASL_PASSWORD=swell-test-secret

ensure_java() {
  command -v "$JAVA_BIN" >/dev/null && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "java is not installed; installing Debian's openjdk-17-jre-headless"
    flock -w 900 /tmp/swell-kafka-apt.lock env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y --no-install-recommends openjdk-17-jre-headless >/dev/null 2>&1 \
      || die "apt-get install -y openjdk-17-jre-headless failed (try apt-get update first)"
    command -v "$JAVA_BIN" >/dev/null && return 0
  fi
  die "java (17 or newer) is not installed; on Debian/Ubuntu: apt-get install -y openjdk-17-jre-headless (or set JAVA=/path/to/java)"
}

# fetch: the broker's jars in $CACHE/libs, fetched with Maven once (a lock serialises
# concurrent first uses; a partial fetch is never taken for a complete one).
RECIPE=2 # bump when the dependency list below changes: caches of older recipes are refetched

fetch() {
  if [ "$(cat "$CACHE/libs/.complete" 2>/dev/null)" = "$RECIPE" ]; then echo "$CACHE/libs"; return 0; fi
  need flock "serialise the jar fetch"
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.lock"
  flock -w 1800 9 || die "waited 30 minutes for another fetch of $CACHE"
  if [ "$(cat "$CACHE/libs/.complete" 2>/dev/null)" = "$RECIPE" ]; then echo "$CACHE/libs"; return 0; fi
  if ! command -v mvn >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      say "mvn is not installed; installing Debian's maven"
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends maven >/dev/null 2>&1 \
        || die "apt-get install -y maven failed (try apt-get update first)"
    else
      die "mvn is not installed (needed once to fetch Kafka $VERSION from Maven Central); apt-get install -y maven"
    fi
  fi
  local t0=$SECONDS
  say "fetching Apache Kafka $VERSION jars from Maven Central into $CACHE/libs (once; this takes a while)"
  rm -rf "$CACHE/libs" "$CACHE/libs.tmp" "$CACHE/pom"
  mkdir -p "$CACHE/pom"
  cat >"$CACHE/pom/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>invalid.swell</groupId>
  <artifactId>kafka-broker-libs</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>2.24.3</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>2.24.3</version></dependency>
  </dependencies>
</project>
EOF
  local log="$CACHE/fetch.log"
  if ! (cd "$CACHE/pom" && mvn -B -ntp dependency:copy-dependencies -DoutputDirectory="$CACHE/libs.tmp" \
        -DincludeScope=runtime >"$log" 2>&1); then
    tail -n 30 "$log" >&2
    die "mvn dependency:copy-dependencies failed (log: $log)"
  fi
  rm -rf "$CACHE/libs"
  mv "$CACHE/libs.tmp" "$CACHE/libs"
  echo "$RECIPE" >"$CACHE/libs/.complete"
  say "fetched $(ls "$CACHE/libs" | wc -l) jars ($(du -sh "$CACHE/libs" | cut -f1)) in $((SECONDS - t0))s"
  echo "$CACHE/libs"
}

# shellcheck source=lib/procs.sh
source "$here/lib/procs.sh"
STOP_GRACE=15 # the broker flushes its logs on TERM

stop_dir() { # DIR
  local dir=$1
  stop_pid "$dir/watchdog.pid" swell-kafka-watchdog
  stop_pid "$dir/kafka.pid" "$dir/server.properties"
  case "$dir" in /|"$HOME"|"") ;; *) rm -rf "$dir" ;; esac
}

free_ports() { # N: N distinct free loopback ports
  need python3 "pick free ports"
  python3 -c '
import socket, sys
ss = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); ss.append(s)
print(" ".join(str(s.getsockname()[1]) for s in ss))' "$1"
}

cmd_up() {
  local dir="" owner=""
  while [ $# -gt 0 ]; do
    case $1 in
      --dir) [ $# -ge 2 ] || die "--dir needs a directory"; dir=$2; shift 2 ;;
      --owner-pid) [ $# -ge 2 ] || die "--owner-pid needs a PID"; owner=$2; shift 2 ;;
      *) die "unknown argument $1 (usage: kafka.sh up [--dir DIR] [--owner-pid PID])" ;;
    esac
  done
  need setsid "run Kafka in its own session"
  if [ -n "$owner" ]; then
    [[ "$owner" =~ ^[0-9]+$ ]] && kill -0 "$owner" 2>/dev/null || die "--owner-pid $owner is not a running process"
  fi
  local t0=$SECONDS
  ensure_java
  local libs
  libs=$(fetch)
  local t1=$SECONDS
  if [ -z "$dir" ]; then dir=$(mktemp -d "${TMPDIR:-/tmp}/swell-kafka.XXXXXX"); fi
  [ -f "$dir/kafka.pid" ] && die "$dir already holds a Kafka; stop it first with: hack/kafka.sh down $dir"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  [[ "$dir" =~ ^[A-Za-z0-9_./+-]+$ ]] || die "state directory $dir has characters unsafe for the config"

  UP_DIR=$dir UP_DONE=0
  trap '[ "$UP_DONE" = 1 ] || stop_dir "$UP_DIR"' EXIT
  trap 'exit 130' INT TERM

  if [ -n "$owner" ]; then
    start_watchdog swell-kafka-watchdog "$owner" "$dir" "$here/kafka.sh" "$dir"
  fi

  # A CA and a server certificate for 127.0.0.1, for the SSL listener.
  need openssl "make the TLS listener's certificates"
  mkdir -p "$dir/tls"
  (
    cd "$dir/tls"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=swell-test-ca \
      -keyout ca.key -out ca.crt
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
      -keyout server.key -out server.csr
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n' >ext.cnf
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
      -extfile ext.cnf -out server.crt
    openssl pkcs8 -topk8 -nocrypt -in server.key -out server.p8
    cat server.p8 server.crt >server.pem
  ) >"$dir/tls.log" 2>&1 || { tail -n 20 "$dir/tls.log" >&2; die "making the test certificates failed"; }

  cat >"$dir/log4j2.properties" <<EOF
status = error
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
EOF
  local java_opts=("$HEAP" -Xms128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto
    -Djava.awt.headless=true "-Dlog4j2.configurationFile=$dir/log4j2.properties")
  local oauth=0
  if [ -n "${SWELL_OAUTH_JWKS_URL:-}" ] && [ -n "${SWELL_OAUTH_KAFKA_AUDIENCE:-}" ] &&
     [ -n "${SWELL_OAUTH_ISSUER:-}" ] && [ -f "${SWELL_OAUTH_TLS_CA:-}" ]; then
    oauth=1
    # Kafka 4 fetches only the JWKS and token URLs this property allows.
    java_opts+=("-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls=$SWELL_OAUTH_JWKS_URL")
  else
    say "no SWELL_OAUTH_* exports (hack/oauth.sh): starting without the OAUTHBEARER listener"
  fi
  local attempt port cport oport pid cluster_id
  for attempt in 1 2 3 4 5; do
    read -r port sport tport cport oport < <(free_ports 5)
    rm -rf "$dir/data"
    cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,SASL_PLAINTEXT://127.0.0.1:$sport,SSL://127.0.0.1:$tport,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port,SASL_PLAINTEXT://127.0.0.1:$sport,SSL://127.0.0.1:$tport
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$SASL_USER="$SASL_PASSWORD";
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PEM
ssl.keystore.location=$dir/tls/server.pem
ssl.client.auth=none
log.dirs=$dir/data
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.retention.hours=1
EOF
    if [ $oauth = 1 ]; then
      # The listener's JWKS fetch trusts the OAuth server's CA (JAAS ssl.* options); the
      # broker itself never sends a token on it, but its login module wants a subject.
      # BrokerJwtValidator checks signatures (JWKS), issuer and audience: Kafka 4.1 would
      # otherwise pick ClientJwtValidator, which reads the claims without checking them.
      # Sessions last 5 s (KIP-368), so clients must renew them within a test.
      sed -i -e "s|^listeners=\(.*\)$|listeners=\1,OAUTH://127.0.0.1:$oport|" \
        -e "s|^advertised.listeners=\(.*\)$|advertised.listeners=\1,OAUTH://127.0.0.1:$oport|" \
        -e "s|^listener.security.protocol.map=\(.*\)$|listener.security.protocol.map=\1,OAUTH:SASL_PLAINTEXT|" \
        "$dir/server.properties"
      cat >>"$dir/server.properties" <<EOF
listener.name.oauth.sasl.enabled.mechanisms=OAUTHBEARER
listener.name.oauth.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub="swell-broker" ssl.truststore.type="PEM" ssl.truststore.location="$SWELL_OAUTH_TLS_CA";
listener.name.oauth.oauthbearer.sasl.server.callback.handler.class=org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler
listener.name.oauth.oauthbearer.connections.max.reauth.ms=5000
sasl.oauthbearer.jwks.endpoint.url=$SWELL_OAUTH_JWKS_URL
sasl.oauthbearer.jwt.validator.class=org.apache.kafka.common.security.oauthbearer.BrokerJwtValidator
sasl.oauthbearer.expected.audience=$SWELL_OAUTH_KAFKA_AUDIENCE
sasl.oauthbearer.expected.issuer=$SWELL_OAUTH_ISSUER
EOF
    fi
    # Not starting with "-", which kafka-storage would read as an option.
    cluster_id=$(python3 -c '
import base64, os
while True:
    i = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
    if not i.startswith("-"):
        break
print(i)')
    if ! "$JAVA_BIN" "${java_opts[@]}" -cp "$libs/*" kafka.tools.StorageTool format \
        -t "$cluster_id" -c "$dir/server.properties" --standalone \
        --add-scram "SCRAM-SHA-256=[name=$SASL_USER,password=$SASL_PASSWORD]" \
        --add-scram "SCRAM-SHA-512=[name=$SASL_USER,password=$SASL_PASSWORD]" >"$dir/format.log" 2>&1; then
      tail -n 20 "$dir/format.log" >&2
      die "formatting the KRaft storage failed (log: $dir/format.log)"
    fi
    setsid "$JAVA_BIN" "${java_opts[@]}" -cp "$libs/*" kafka.Kafka "$dir/server.properties" \
      >"$dir/kafka.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$dir/kafka.pid"
    local deadline=$((SECONDS + 120)) ok=0
    while [ $SECONDS -lt $deadline ]; do
      if grep -q "Kafka Server started" "$dir/kafka.log" 2>/dev/null; then ok=1; break; fi
      alive "$pid" || break
      sleep 0.2
    done
    [ $ok = 1 ] && break
    if alive "$pid"; then
      say "not started after 120s; last lines of $dir/kafka.log:"; tail -n 30 "$dir/kafka.log" >&2 || true
      exit 1
    fi
    grep -qi "address already in use" "$dir/kafka.log" || {
      say "kafka exited; last lines of $dir/kafka.log:"; tail -n 30 "$dir/kafka.log" >&2 || true
      exit 1
    }
    rm -f "$dir/kafka.pid"
    [ "$attempt" = 5 ] && die "no free port after 5 attempts"
  done
  UP_DONE=1
  say "Kafka $VERSION (KRaft) up on 127.0.0.1:$port in $((SECONDS - t1))s (jars ready after $((t1 - t0))s; state: $dir)"
  echo "export SWELL_KAFKA_BOOTSTRAP=127.0.0.1:$port"
  echo "export SWELL_KAFKA_SASL_BOOTSTRAP=127.0.0.1:$sport"
  echo "export SWELL_KAFKA_TLS_BOOTSTRAP=127.0.0.1:$tport"
  if [ $oauth = 1 ]; then echo "export SWELL_KAFKA_OAUTH_BOOTSTRAP=127.0.0.1:$oport"; fi
  echo "export SWELL_KAFKA_TLS_CA=$dir/tls/ca.crt"
  echo "export SWELL_KAFKA_SASL_USER=$SASL_USER"
  echo "export SWELL_KAFKA_SASL_PASSWORD=$SASL_PASSWORD"
  echo "export SWELL_KAFKA_DIR=$dir"
}

cmd_down() {
  [ $# -eq 1 ] || die "usage: kafka.sh down DIR"
  [ -d "$1" ] || { say "$1 does not exist; nothing to stop"; return 0; }
  stop_dir "$1"
  say "stopped and removed $1"
}

case "${1:-}" in
  fetch) shift; fetch ;;
  up) shift; cmd_up "$@" ;;
  down) shift; cmd_down "$@" ;;
  *) die "usage: kafka.sh fetch|up|down … (see the top of hack/kafka.sh)" ;;
esac
