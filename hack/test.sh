#!/usr/bin/env bash
# `make test`: every test, against a real local control plane and local AWS that this
# script starts and always stops. Prints how long each phase took.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/.."

phases=()
phase_start=$SECONDS
phase() { # NAME: end the current phase under NAME
  phases+=("$(printf '%-28s %5ss' "$1" $((SECONDS - phase_start)))")
  phase_start=$SECONDS
}
report() { # RC: the script's exit status, kept whatever cleanup returned
  local rc=${1:-$?}
  echo; echo "== phase timings =="; printf '  %s\n' "${phases[@]}"
  echo "  total                        $((SECONDS))s"
  exit $rc
}
trap 'report $?' EXIT

command -v cargo >/dev/null || { echo "test: cargo is not installed (install Rust with rustup)" >&2; exit 1; }

# One Rust build for tests, lint and image (see hack/lib/rust-build.sh).
. "$here/lib/rust-build.sh"

echo "== Debian packages: musl-tools (the static build), buildah (the image), prometheus, java, maven, redis, postgresql, rabbitmq, mariadb, activemq, nats-server =="
"$here/debian-packages.sh" musl-gcc=musl-tools buildah=buildah prometheus=prometheus \
  java=openjdk-17-jre-headless mvn=maven openssl=openssl redis-server=redis-server redis-cli=redis-tools \
  pg_ctlcluster=postgresql rabbitmq-server=rabbitmq-server mariadbd=mariadb-server activemq=activemq \
  nats-server=nats-server
swell_rust_target_add
phase "debian packages"

echo "== building test tools (Go) and the Rust tree (tests + clippy lints, $swell_rust_target) in parallel =="
tools_log=$(mktemp)
"$here/build-tools.sh" >"$tools_log.out" 2> >(tee "$tools_log" >&2) &
tools_pid=$!
# The second external-metrics server the delegation tests run behind Swell (cached).
"$here/build-prometheus-adapter.sh" >"$tools_log.adapter" 2> >(tee "$tools_log.adapter-err" >&2) &
adapter_pid=$!
# The OTLP receiver the OpenTelemetry test exports to (cached).
"$here/build-otlp-receiver.sh" >"$tools_log.otlp" 2> >(tee "$tools_log.otlp-err" >&2) &
otlp_pid=$!
cargo fmt --all -- --check

cargo test --workspace --all-targets --no-run
phase "rust build + clippy"
if ! wait "$tools_pid"; then echo "test: building the control-plane tools failed (log above)" >&2; exit 1; fi
if ! wait "$adapter_pid"; then echo "test: building prometheus-adapter failed (log above)" >&2; exit 1; fi
SWELL_PROMETHEUS_ADAPTER="$(cat "$tools_log.adapter")"; export SWELL_PROMETHEUS_ADAPTER
if ! wait "$otlp_pid"; then echo "test: building the OTLP receiver failed (log above)" >&2; exit 1; fi
SWELL_OTLP_RECEIVER="$(cat "$tools_log.otlp")"; export SWELL_OTLP_RECEIVER
phase "go tools (overlap wait)"

echo "== the image: the static swell the tests run, in the Dockerfile's runtime stage, with buildah =="
"$here/image.sh" --binary "$swell_test_binary" localhost/swell:test
STORAGE_DRIVER=vfs buildah rmi localhost/swell:test >/dev/null
phase "static image"

echo "== Kafka broker jars, the Artemis release and the Jolokia agent (Maven Central, cached in ~/.cache/swell) =="
"$here/kafka.sh" fetch >/dev/null
"$here/artemis.sh" fetch >/dev/null
"$here/activemq.sh" fetch >/dev/null
phase "kafka jars"

# The event-source servers the tests read, each started by hack/<name>.sh (up --dir
# --owner-pid, printing its exports; down DIR). One table: starting, waiting and stopping
# all go through it. They start in seconds (Erlang and the JVM brokers in 5-25 s) and come up
# in the background while the control plane does.
servers=(redis redis-topo postgresql mariadb rabbitmq oauth artemis activemq nats etcd azurite)
echo "== starting local control plane, AWS, Kafka and the servers: ${servers[*]} =="
state=$(mktemp -d "${TMPDIR:-/tmp}/swell-test.XXXXXX")
chmod 711 "$state" # the postgres user runs PostgreSQL from a directory inside
cleanup() {
  "$here/cluster.sh" down "$state/cluster" || true
  "$here/aws.sh" down "$state/aws" || true
  "$here/kafka.sh" down "$state/kafka" || true
  local s
  for s in "${servers[@]}"; do "$here/$s.sh" down "$state/$s" || true; done
  rm -rf "$state"
}
trap 'rc=$?; cleanup; report $rc' EXIT
servers_t0=$SECONDS
declare -A server_pids=()
for s in "${servers[@]}"; do
  "$here/$s.sh" up --dir "$state/$s" --owner-pid $$ >"$state/$s.env" &
  server_pids[$s]=$!
done
eval "$("$here/cluster.sh" up --dir "$state/cluster" --owner-pid $$)"
eval "$("$here/aws.sh" up --dir "$state/aws" --owner-pid $$ --enforce)"
for s in "${servers[@]}"; do
  wait "${server_pids[$s]}" || { echo "test: hack/$s.sh up failed (log above)" >&2; exit 1; }
  eval "$(cat "$state/$s.env")"
done
echo "${servers[*]} ready $((SECONDS - servers_t0))s after their start (in parallel with the cluster)"
phase "start cluster+aws+servers"
eval "$("$here/kafka.sh" up --dir "$state/kafka" --owner-pid $$)"
phase "start kafka"

echo "== cargo test =="
cargo test --workspace -- --test-threads="${TEST_THREADS:-4}"
phase "cargo test"
