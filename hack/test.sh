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
report() {
  local rc=$?
  echo; echo "== phase timings =="; printf '  %s\n' "${phases[@]}"
  echo "  total                        $((SECONDS))s"
  exit $rc
}
trap report EXIT

command -v cargo >/dev/null || { echo "test: cargo is not installed (install Rust with rustup)" >&2; exit 1; }

echo "== building test tools (Go) and Rust tests in parallel =="
tools_log=$(mktemp)
"$here/build-tools.sh" >"$tools_log.out" 2> >(tee "$tools_log" >&2) &
tools_pid=$!
cargo fmt --all -- --check

cargo test --workspace --no-run
phase "rust build"
if ! wait "$tools_pid"; then echo "test: building the control-plane tools failed (log above)" >&2; exit 1; fi
phase "go tools (overlap wait)"
cargo clippy --workspace --all-targets -- -D warnings
phase "clippy"

echo "== Debian packages (musl-tools, buildah, prometheus) and the image: static binary (musl) and the Dockerfile's runtime stage, with buildah =="
"$here/debian-packages.sh" musl-gcc=musl-tools buildah=buildah prometheus=prometheus
"$here/image.sh" --profile dev localhost/swell:test
STORAGE_DRIVER=vfs buildah rmi localhost/swell:test >/dev/null
phase "static image"

echo "== Kafka broker jars (Maven Central, cached in ~/.cache/swell) =="
"$here/debian-packages.sh" java=openjdk-17-jre-headless mvn=maven openssl=openssl
"$here/kafka.sh" fetch >/dev/null
phase "kafka jars"

echo "== starting local control plane, AWS and Kafka =="
state=$(mktemp -d "${TMPDIR:-/tmp}/swell-test.XXXXXX")
cleanup() {
  "$here/cluster.sh" down "$state/cluster" || true
  "$here/aws.sh" down "$state/aws" || true
  "$here/kafka.sh" down "$state/kafka" || true
  rm -rf "$state"
}
trap 'cleanup; report' EXIT
eval "$("$here/cluster.sh" up --dir "$state/cluster" --owner-pid $$)"
eval "$("$here/aws.sh" up --dir "$state/aws" --owner-pid $$ --enforce)"
phase "start cluster + aws"
eval "$("$here/kafka.sh" up --dir "$state/kafka" --owner-pid $$)"
phase "start kafka"

echo "== cargo test =="
cargo test --workspace -- --test-threads="${TEST_THREADS:-4}"
phase "cargo test"
