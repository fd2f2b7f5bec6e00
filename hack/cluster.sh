#!/usr/bin/env bash
# A real local Kubernetes control plane without Docker: etcd, kube-apiserver (with the
# aggregation layer), kube-controller-manager (real HPA controller), kube-scheduler and
# kwok (one fake node), all on loopback with free ports and a private state directory.
#
#   hack/cluster.sh up [--dir DIR] [--owner-pid PID]   start; prints `export …` lines
#   hack/cluster.sh down DIR                           stop everything, remove DIR
#   hack/cluster.sh token NAMESPACE SERVICEACCOUNT     mint a token (TokenRequest)
#
# Settings (environment): K8S_VERSION, HPA_SYNC_PERIOD (default 1s),
# HPA_DOWNSCALE_STABILIZATION (default 0s), HPA_TOLERANCE (default 0.1).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

die() { printf 'cluster: %s\n' "$*" >&2; exit 1; }
say() { printf '[cluster %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
need() { command -v "$1" >/dev/null || die "$1 is not installed (needed to $2); install it and retry"; }

free_ports() { # N -> N free loopback ports, one per line
  python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
for s in socks:
    print(s.getsockname()[1])
PY
}

# start NAME CMD... : run in its own session so `down` can kill the whole group.
start() {
  local name=$1; shift
  setsid "$@" >"$DIR/logs/$name.log" 2>&1 </dev/null &
  echo "$! $name" >>"$DIR/pids"
}

fail_with_log() { # NAME MESSAGE
  say "$2; last lines of $1.log:"
  tail -n 25 "$DIR/logs/$1.log" >&2 || true
  stop_dir "$DIR"
  exit 1
}

wait_for() { # NAME SECONDS CMD...
  local name=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    local pid; pid=$(awk -v n="$name" '$2==n{print $1}' "$DIR/pids" | tail -1)
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then fail_with_log "$name" "$name exited"; fi
    [ $SECONDS -lt $deadline ] || fail_with_log "$name" "$name not ready after ${secs}s"
    sleep 0.2
  done
}

pki() {
  local p="$DIR/pki"; mkdir -p "$p"
  (
    cd "$p"
    gen_ca() { openssl req -x509 -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.crt" -days 3650 -subj "/CN=$2" 2>/dev/null; }
    gen_cert() { # name ca subj ext
      openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$3" 2>/dev/null
      printf '%s\n' "$4" >"$1.ext"
      openssl x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" -CAcreateserial -days 3650 \
        -out "$1.crt" -extfile "$1.ext" 2>/dev/null
    }
    gen_ca ca swell-local-ca
    gen_ca front-proxy-ca swell-front-proxy-ca
    gen_cert apiserver ca "/CN=kube-apiserver" \
      "subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
extendedKeyUsage=serverAuth"
    gen_cert admin ca "/O=system:masters/CN=swell-admin" "extendedKeyUsage=clientAuth"
    gen_cert front-proxy-client front-proxy-ca "/CN=front-proxy-client" "extendedKeyUsage=clientAuth"
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  )
}

kubeconfig() {
  local p="$DIR/pki"
  cat >"$DIR/admin.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: swell-local
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority-data: $(base64 -w0 "$p/ca.crt")
users:
- name: swell-admin
  user:
    client-certificate-data: $(base64 -w0 "$p/admin.crt")
    client-key-data: $(base64 -w0 "$p/admin.key")
contexts:
- name: swell-local
  context: {cluster: swell-local, user: swell-admin, namespace: default}
current-context: swell-local
KC
}

cmd_up() {
  local owner=""
  DIR=""
  while [ $# -gt 0 ]; do
    case $1 in
      --dir) DIR=$2; shift 2 ;;
      --owner-pid) owner=$2; shift 2 ;;
      *) die "unknown argument $1 (usage: cluster.sh up [--dir DIR] [--owner-pid PID])" ;;
    esac
  done
  need openssl "make the cluster's certificates"
  need python3 "find free ports"
  need curl "probe the API server"
  need setsid "run components in their own sessions"
  local t0=$SECONDS
  BIN=$("$here/build-tools.sh") || die "could not build the Kubernetes tools (see messages above)"
  say "tools ready ($((SECONDS - t0))s)"
  if [ -z "$DIR" ]; then DIR=$(mktemp -d "${TMPDIR:-/tmp}/swell-cluster.XXXXXX"); fi
  [ -f "$DIR/pids" ] && die "$DIR already holds a cluster; stop it first with: hack/cluster.sh down $DIR"
  mkdir -p "$DIR/logs" "$DIR/etcd"; : >"$DIR/pids"
  DIR=$(cd "$DIR" && pwd)
  local ports; mapfile -t ports < <(free_ports 3)
  local etcd_port=${ports[0]} peer_port=${ports[1]}
  API_PORT=${ports[2]}
  pki; kubeconfig
  local p="$DIR/pki"

  if [ -n "$owner" ]; then
    # Tear the cluster down if the process that asked for it dies, however it dies.
    setsid bash -c 'while kill -0 "$1" 2>/dev/null && [ -f "$2/pids" ]; do sleep 1; done; [ -f "$2/pids" ] && exec "$3" down "$2"' \
      _ "$owner" "$DIR" "$here/cluster.sh" >/dev/null 2>&1 </dev/null &
    echo "$! watchdog" >>"$DIR/pids"
  fi

  start etcd "$BIN/etcd" --name=swell --data-dir="$DIR/etcd" \
    --listen-client-urls="http://127.0.0.1:$etcd_port" --advertise-client-urls="http://127.0.0.1:$etcd_port" \
    --listen-peer-urls="http://127.0.0.1:$peer_port" --initial-advertise-peer-urls="http://127.0.0.1:$peer_port" \
    --initial-cluster="swell=http://127.0.0.1:$peer_port" --unsafe-no-fsync --log-level=warn \
    --listen-metrics-urls="" 
  wait_for etcd 30 curl -sf "http://127.0.0.1:$etcd_port/health"

  start kube-apiserver "$BIN/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$etcd_port" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$API_PORT" \
    --cert-dir="$DIR/pki" --tls-cert-file="$p/apiserver.crt" --tls-private-key-file="$p/apiserver.key" \
    --client-ca-file="$p/ca.crt" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$p/sa.pub" --service-account-signing-key-file="$p/sa.key" \
    --service-cluster-ip-range=10.96.0.0/16 --allow-privileged=true \
    --authorization-mode=RBAC --anonymous-auth=false \
    --requestheader-client-ca-file="$p/front-proxy-ca.crt" --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$p/front-proxy-client.crt" --proxy-client-key-file="$p/front-proxy-client.key" \
    --profiling=false --v=1
  wait_for kube-apiserver 90 curl -sf --cacert "$p/ca.crt" --cert "$p/admin.crt" --key "$p/admin.key" \
    "https://127.0.0.1:$API_PORT/readyz"
  say "kube-apiserver ready on 127.0.0.1:$API_PORT"

  start kube-controller-manager "$BIN/kube-controller-manager" \
    --kubeconfig="$DIR/admin.kubeconfig" --secure-port=0 --leader-elect=false \
    --controllers=deployment-controller,replicaset-controller,statefulset-controller,job-controller,cronjob-controller,horizontal-pod-autoscaler-controller,garbage-collector-controller,namespace-controller,serviceaccount-controller,serviceaccount-token-controller,root-ca-certificate-publisher-controller,endpointslice-controller,endpointslice-mirroring-controller,ttl-after-finished-controller,pod-garbage-collector-controller,disruption-controller,node-lifecycle-controller \
    --service-account-private-key-file="$p/sa.key" --root-ca-file="$p/ca.crt" \
    --horizontal-pod-autoscaler-sync-period="${HPA_SYNC_PERIOD:-1s}" \
    --horizontal-pod-autoscaler-downscale-stabilization="${HPA_DOWNSCALE_STABILIZATION:-0s}" \
    --horizontal-pod-autoscaler-tolerance="${HPA_TOLERANCE:-0.1}" \
    --concurrent-horizontal-pod-autoscaler-syncs=10 --v=1
  start kube-scheduler "$BIN/kube-scheduler" --kubeconfig="$DIR/admin.kubeconfig" \
    --secure-port=0 --leader-elect=false --v=1
  start kwok "$BIN/kwok" --kubeconfig="$DIR/admin.kubeconfig" --config="$BIN/../kwok-stages-v2.yaml" \
    --manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --cidr=10.244.0.0/16 --node-ip=10.0.0.1 --node-lease-duration-seconds=40

  export KUBECONFIG="$DIR/admin.kubeconfig"
  "$BIN/kubectl" apply -f - >/dev/null <<'NODE'
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-0
  annotations: {kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: "0"}
  labels: {kubernetes.io/hostname: kwok-node-0, kubernetes.io/os: linux, kubernetes.io/arch: amd64, type: kwok}
status:
  allocatable: {cpu: "64", memory: 256Gi, pods: "500"}
  capacity: {cpu: "64", memory: 256Gi, pods: "500"}
NODE
  wait_for kwok 60 bash -c "'$BIN/kubectl' get node kwok-node-0 -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -q True"
  # The node-lifecycle controller lifts the not-ready taint once kwok reports Ready.
  wait_for kube-controller-manager 60 bash -c "[ -z \"\$('$BIN/kubectl' get node kwok-node-0 -o jsonpath='{.spec.taints}')\" ]"
  # Pods need the default ServiceAccount, made by the serviceaccount controller.
  wait_for kube-controller-manager 60 "$BIN/kubectl" -n default get serviceaccount default

  cat >"$DIR/env" <<ENV
export KUBECONFIG=$DIR/admin.kubeconfig
export PATH=$BIN:\$PATH
export SWELL_CLUSTER_DIR=$DIR
ENV
  say "cluster up in $((SECONDS - t0))s (state: $DIR)"
  cat "$DIR/env"
}

stop_dir() {
  local dir=$1
  [ -f "$dir/pids" ] || return 0
  local pids; pids=$(awk '{print $1}' "$dir/pids")
  # Whole sessions: a component's children go too. The watchdog is ourselves maybe; skip $$.
  for pid in $pids; do [ "$pid" = "$$" ] || kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; done
  local deadline=$((SECONDS + 15))
  for pid in $pids; do
    [ "$pid" = "$$" ] && continue
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  done
  rm -f "$dir/pids"
  case "$dir" in /|"$HOME") ;; *) rm -rf "$dir" ;; esac
}

cmd_down() {
  [ $# -eq 1 ] || die "usage: cluster.sh down DIR"
  [ -d "$1" ] || { say "$1 does not exist; nothing to stop"; return 0; }
  stop_dir "$1"
  say "stopped and removed $1"
}

cmd_token() {
  [ $# -ge 2 ] || die "usage: cluster.sh token NAMESPACE SERVICEACCOUNT [DURATION]"
  [ -n "${KUBECONFIG:-}" ] || die "KUBECONFIG is not set; eval the output of 'hack/cluster.sh up' first"
  kubectl -n "$1" create token "$2" --duration="${3:-1h}"
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) shift; cmd_down "$@" ;;
  token) shift; cmd_token "$@" ;;
  *) die "usage: cluster.sh up|down|token …" ;;
esac
