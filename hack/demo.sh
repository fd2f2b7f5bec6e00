#!/usr/bin/env bash
# `make demo`: builds what is missing, starts a local control plane and local AWS, shows
# them working, and cleans up. It grows into the full seed scenario as Swell does.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/.."

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
state=$(mktemp -d "${TMPDIR:-/tmp}/swell-demo.XXXXXX")
cleanup() {
  step "cleaning up"
  "$here/cluster.sh" down "$state/cluster" || true
  "$here/aws.sh" down "$state/aws" || true
  rm -rf "$state"
}
trap cleanup EXIT

step "building swell (cargo build --release)"
cargo build --release --bin swell
./target/release/swell version

step "starting the local control plane (first run builds Kubernetes from source: ~15 min)"
eval "$("$here/cluster.sh" up --dir "$state/cluster" --owner-pid $$)"
kubectl version
kubectl get nodes -o wide

step "starting local AWS (moto, IAM enforced)"
eval "$("$here/aws.sh" up --dir "$state/aws" --owner-pid $$ --enforce)"
echo "endpoint: $SWELL_AWS_ENDPOINT"

step "a Deployment of 2 on the fake node"
kubectl create namespace demo-ns
kubectl -n demo-ns create deployment demo-app --image=nginx --replicas=2
kubectl -n demo-ns rollout status deployment/demo-app --timeout=120s
kubectl -n demo-ns get pods -o wide

step "the real HPA controller, asking for an external metric nobody serves yet"
kubectl -n demo-ns apply -f - <<'YAML'
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: demo-app}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: demo-app}
  minReplicas: 1
  maxReplicas: 5
  metrics:
  - type: External
    external:
      metric: {name: s0-aws-sqs-demo-app-sqs, selector: {matchLabels: {scaledobject.keda.sh/name: demo-app}}}
      target: {type: AverageValue, averageValue: "5"}
YAML
for _ in $(seq 1 60); do
  kubectl -n demo-ns get events --field-selector reason=FailedGetExternalMetric -o name | grep -q . && break
  sleep 1
done
kubectl -n demo-ns get events --field-selector involvedObject.kind=HorizontalPodAutoscaler
step "done: Swell's operator and metrics API take it from here (see README)"
