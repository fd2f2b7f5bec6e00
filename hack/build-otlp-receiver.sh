#!/usr/bin/env bash
# Builds hack/otlp-receiver (a minimal OTLP/HTTP metrics receiver on the OpenTelemetry
# project's protocol definitions, go.opentelemetry.io/proto/otlp) from the Go module proxy,
# cached per source and version outside the repository. The OpenTelemetry tests export to
# it. Prints the binary's path on stdout when done; progress goes to stderr.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

OTLP_PROTO_VERSION="${OTLP_PROTO_VERSION:-1.9.0}"
PROTOBUF_VERSION="${GO_PROTOBUF_VERSION:-1.36.11}"
CACHE="${SWELL_CACHE:-$HOME/.cache/swell}"

say() { printf '[build-otlp-receiver %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'build-otlp-receiver: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null || die "go is not installed (needed only to build the test OTLP receiver); install Go >= 1.24"
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local
export GOPROXY="${GOPROXY:-https://proxy.golang.org}"

sum=$(sha256sum "$here/otlp-receiver/main.go" | cut -c1-12)
BIN="$CACHE/tools/otlp-receiver-$OTLP_PROTO_VERSION-$sum/bin"
if [ ! -x "$BIN/otlp-receiver" ]; then
  t0=$SECONDS
  d="$CACHE/tools/src/otlp-receiver-$OTLP_PROTO_VERSION-$sum"
  rm -rf "$d"; mkdir -p "$d" "$BIN"; cd "$d"
  cp "$here/otlp-receiver/main.go" .
  go mod init local/otlp-receiver >/dev/null 2>&1
  say "fetching go.opentelemetry.io/proto/otlp@v$OTLP_PROTO_VERSION"
  timeout 600 go get "go.opentelemetry.io/proto/otlp@v$OTLP_PROTO_VERSION" "google.golang.org/protobuf@v$PROTOBUF_VERSION" >&2 \
    || die "cannot fetch go.opentelemetry.io/proto/otlp@v$OTLP_PROTO_VERSION from $GOPROXY"
  timeout 600 go mod tidy >&2 || die "go mod tidy failed"
  say "compiling otlp-receiver"
  go build -trimpath -ldflags "-s -w" -o "$BIN/otlp-receiver.tmp" .
  mv "$BIN/otlp-receiver.tmp" "$BIN/otlp-receiver"
  say "otlp-receiver ready in $((SECONDS - t0))s"
fi
echo "$BIN/otlp-receiver"
