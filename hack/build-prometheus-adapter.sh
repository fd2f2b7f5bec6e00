#!/usr/bin/env bash
# Builds the real sigs.k8s.io/prometheus-adapter from the Go module proxy at a pinned
# version, cached per version outside the repository (as hack/build-tools.sh does for the
# control plane). The delegation tests run it as a second external-metrics server behind
# Swell. Prints the binary's path on stdout when done; progress goes to stderr.
set -euo pipefail

ADAPTER_VERSION="${PROMETHEUS_ADAPTER_VERSION:-0.12.0}"
CACHE="${SWELL_CACHE:-$HOME/.cache/swell}"
BIN="$CACHE/tools/prometheus-adapter-v$ADAPTER_VERSION/bin"
PKG=sigs.k8s.io/prometheus-adapter/cmd/adapter

say() { printf '[build-prometheus-adapter %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'build-prometheus-adapter: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null || die "go is not installed (needed only to build the test adapter); install Go >= 1.24"
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local
export GOPROXY="${GOPROXY:-https://proxy.golang.org}"

if [ ! -x "$BIN/prometheus-adapter" ]; then
  t0=$SECONDS
  d="$CACHE/tools/src/prometheus-adapter-$ADAPTER_VERSION"
  rm -rf "$d"; mkdir -p "$d" "$BIN"; cd "$d"
  go mod init local/prometheus-adapter >/dev/null 2>&1
  say "fetching sigs.k8s.io/prometheus-adapter@v$ADAPTER_VERSION"
  timeout 900 go get -tool "$PKG@v$ADAPTER_VERSION" >&2 \
    || die "cannot fetch sigs.k8s.io/prometheus-adapter@v$ADAPTER_VERSION from $GOPROXY"
  say "compiling prometheus-adapter v$ADAPTER_VERSION"
  go build -trimpath -ldflags "-s -w" -o "$BIN/prometheus-adapter.tmp" "$PKG"
  mv "$BIN/prometheus-adapter.tmp" "$BIN/prometheus-adapter"
  say "prometheus-adapter ready in $((SECONDS - t0))s"
fi
echo "$BIN/prometheus-adapter"
