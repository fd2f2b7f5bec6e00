#!/usr/bin/env bash
# Builds the real Kubernetes control plane, etcd, kwok, kubectl and helm from the Go
# module proxy at pinned versions, cached per version outside the repository.
# Prints the bin directory on stdout when done; progress goes to stderr.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-3.6.16}"
KWOK_VERSION="${KWOK_VERSION:-0.8.0}"
HELM_VERSION="${HELM_VERSION:-3.22.0}"
CACHE="${SWELL_CACHE:-$HOME/.cache/swell}"
BIN="$CACHE/tools/k8s-v$K8S_VERSION-etcd-v$ETCD_VERSION-kwok-v$KWOK_VERSION-helm-v$HELM_VERSION/bin"

say() { printf '[build-tools %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'build-tools: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null || die "go is not installed (needed only to build the test control plane); install Go >= 1.24"

export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local
# Fail fast instead of hanging when the module proxy is unreachable.
export GOPROXY="${GOPROXY:-https://proxy.golang.org}"

mkdir -p "$BIN"
work="$CACHE/tools/src"
mkdir -p "$work"

timed() { local t0=$SECONDS; "$@"; say "  done in $((SECONDS - t0))s"; }

build_kube() {
  local want=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
  local missing=0; for b in "${want[@]}"; do [ -x "$BIN/$b" ] || missing=1; done
  [ $missing = 1 ] || return 0
  local d="$work/kube-$K8S_VERSION" minor=${K8S_VERSION#1.}; minor=${minor%%.*}
  local staging="v0.${K8S_VERSION#1.}"
  rm -rf "$d"; mkdir -p "$d"; cd "$d"
  go mod init local/kbins >/dev/null 2>&1
  say "downloading k8s.io/kubernetes@v$K8S_VERSION module (first time: ~1 GB of modules)"
  timeout 900 go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" >/dev/null \
    || die "cannot download k8s.io/kubernetes@v$K8S_VERSION from $GOPROXY (is the Go module proxy reachable?)"
  local kmod; kmod="$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/v$K8S_VERSION.mod"
  for m in $(awk '$1 ~ /^k8s\.io\// && $2=="v0.0.0"{print $1}' "$kmod"); do
    go mod edit -replace="$m=$m@$staging"
  done
  say "resolving dependencies"
  timeout 1200 go get -tool "k8s.io/kubernetes/cmd/kube-apiserver@v$K8S_VERSION" \
    "k8s.io/kubernetes/cmd/kube-controller-manager@v$K8S_VERSION" \
    "k8s.io/kubernetes/cmd/kube-scheduler@v$K8S_VERSION" \
    "k8s.io/kubernetes/cmd/kubectl@v$K8S_VERSION" >&2 2>/dev/null \
    || timeout 1200 go get -tool "k8s.io/kubernetes/cmd/kube-apiserver@v$K8S_VERSION" \
    "k8s.io/kubernetes/cmd/kube-controller-manager@v$K8S_VERSION" \
    "k8s.io/kubernetes/cmd/kube-scheduler@v$K8S_VERSION" \
    "k8s.io/kubernetes/cmd/kubectl@v$K8S_VERSION"
  local ld="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $p.gitVersion=v$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  for b in "${want[@]}"; do
    [ -x "$BIN/$b" ] && continue
    say "compiling $b v$K8S_VERSION (cold: several minutes each on 2 cores)"
    timed go build -trimpath -tags=selinux,notest,grpcnotrace -ldflags "$ld" -o "$BIN/$b.tmp" "k8s.io/kubernetes/cmd/$b"
    mv "$BIN/$b.tmp" "$BIN/$b"
  done
}

build_simple() { # name module-path version pkg
  local name=$1 mod=$2 ver=$3 pkg=$4
  [ -x "$BIN/$name" ] && return 0
  local d="$work/$name-$ver"
  rm -rf "$d"; mkdir -p "$d"; cd "$d"
  go mod init "local/$name" >/dev/null 2>&1
  say "fetching $mod@$ver"
  timeout 900 go get -tool "$pkg@$ver" >&2 || die "cannot fetch $mod@$ver from $GOPROXY"
  say "compiling $name $ver"
  timed go build -trimpath -ldflags "-s -w" -o "$BIN/$name.tmp" "$pkg"
  mv "$BIN/$name.tmp" "$BIN/$name"
}

# kwok's "fast" stages, with one addition: a Job's pod completes after the duration in its
# annotation pod-complete.stage.kwok.x-k8s.io/delay (as kwok's "general" stages allow), at
# once without it. ScaledJob tests use it to keep Jobs running for a while.
kwok_stages() {
  [ -f "$BIN/../kwok-stages-v2.yaml" ] && return 0
  local root; root="$(go env GOMODCACHE)/sigs.k8s.io/kwok@v$KWOK_VERSION/kustomize/stage"
  [ -d "$root" ] || die "kwok stages not found under $root"
  local out="$BIN/../kwok-stages.yaml.tmp"; : > "$out"
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
           pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    [ -f "$root/$f" ] || die "kwok stage $f missing in module"
    printf -- '---\n' >> "$out"
    if [ "$f" = pod/fast/pod-complete.yaml ]; then
      grep -q '^  next:' "$root/$f" || die "kwok stage $f changed shape (no 'next:')"
      awk '/^  next:/ { print "  delay:"; print "    durationMilliseconds: 0"; print "    durationFrom:";
                        print "      expressionFrom: '"'"'.metadata.annotations[\"pod-complete.stage.kwok.x-k8s.io/delay\"]'"'"'" }
           { print }' "$root/$f" >> "$out"
    else
      cat "$root/$f" >> "$out"
    fi
    printf '\n' >> "$out"
  done
  mv "$out" "$BIN/../kwok-stages-v2.yaml"
}

t0=$SECONDS
build_simple etcd go.etcd.io/etcd/server/v3 "v$ETCD_VERSION" go.etcd.io/etcd/server/v3
build_simple kwok sigs.k8s.io/kwok "v$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok
kwok_stages
build_kube
build_simple helm helm.sh/helm/v3 "v$HELM_VERSION" helm.sh/helm/v3/cmd/helm
[ $((SECONDS - t0)) -gt 2 ] && say "tools ready in $((SECONDS - t0))s at $BIN"
echo "$BIN"
