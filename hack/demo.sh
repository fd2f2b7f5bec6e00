#!/usr/bin/env bash
# `make demo`: the seed's story (KEDA in Amazon EKS, part 2, pod identity owner model) on a
# laptop: local control plane, local AWS with IAM enforced, Swell with an IRSA identity,
# the demo-app and its ScaledObject, 4 messages in and purged: 0 → 2 → 0 through the real HPA and Swell's external
# metrics API. Cleans up.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/.."

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
ts() { while IFS= read -r line; do printf '%s  %s\n' "$(date +%H:%M:%S)" "$line"; done; }
state=$(mktemp -d "${TMPDIR:-/tmp}/swell-demo.XXXXXX")
pids=()
cleanup() {
  step "cleaning up"
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  "$here/cluster.sh" down "$state/cluster" >/dev/null 2>&1 || true
  "$here/aws.sh" down "$state/aws" >/dev/null 2>&1 || true
  rm -rf "$state"
  echo "done"
}
trap cleanup EXIT
t0=$SECONDS

step "building swell (cargo build)"
cargo build --bin swell
swell="$PWD/target/debug/swell"

step "starting the local control plane (the first run builds Kubernetes from source: ~20 min)"
eval "$("$here/cluster.sh" up --dir "$state/cluster" --owner-pid $$)"
kubectl get nodes

step "starting local AWS (moto, IAM enforced) and creating the seed's queue and roles"
eval "$("$here/aws.sh" up --dir "$state/aws" --owner-pid $$ --enforce)"
py=$("$here/aws.sh" python)
eval "$("$py" "$here/demo_aws.py" setup)"
echo "queue:          $DEMO_QUEUE_URL"
echo "keda-operator:  $DEMO_OPERATOR_ROLE   (Swell's own role, through IRSA)"
echo "demo-app:       $DEMO_APP_ROLE   (trusts keda-operator; may sqs:GetQueueAttributes)"

step "installing Swell's CRDs and running swell operator as keda/keda-operator (IRSA)"
"$swell" crds | kubectl apply --server-side -f - >/dev/null
kubectl create namespace keda >/dev/null
kubectl -n keda create serviceaccount keda-operator >/dev/null
kubectl -n keda annotate serviceaccount keda-operator "eks.amazonaws.com/role-arn=$DEMO_OPERATOR_ROLE" >/dev/null
kubectl -n keda create token keda-operator --duration=1h --audience=sts.amazonaws.com >"$state/token"
# The external metrics API: in a cluster the chart's Service points at the operator pods;
# here the operator runs on this machine, so the Service is an ExternalName for localhost.
metrics_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
kubectl apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Service
metadata: {name: keda-operator-metrics-apiserver, namespace: keda}
spec: {type: ExternalName, externalName: localhost}
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.external.metrics.k8s.io}
spec:
  group: external.metrics.k8s.io
  version: v1beta1
  groupPriorityMinimum: 100
  versionPriority: 100
  service: {name: keda-operator-metrics-apiserver, namespace: keda, port: $metrics_port}
YAML
AWS_ROLE_ARN="$DEMO_OPERATOR_ROLE" AWS_WEB_IDENTITY_TOKEN_FILE="$state/token" AWS_REGION=us-west-2 \
  AWS_ENDPOINT_URL="$SWELL_AWS_ENDPOINT" AWS_ACCESS_KEY_ID= AWS_SECRET_ACCESS_KEY= \
  "$swell" operator --namespace keda --leader-elect=true --metrics-bind-address 127.0.0.1:0 \
  --metrics-api-bind-address "127.0.0.1:$metrics_port" \
  >"$state/operator.log" 2>&1 &
pids+=($!)
if ! kubectl wait --for=condition=Available apiservice/v1beta1.external.metrics.k8s.io --timeout=60s >/dev/null; then
  echo "demo: the external metrics API did not become Available; operator log:" >&2
  tail -20 "$state/operator.log" >&2
  kubectl get apiservice v1beta1.external.metrics.k8s.io -o jsonpath='{.status.conditions}' >&2 || true
  exit 1
fi
echo "external.metrics.k8s.io is Available (Swell published its CA in the APIService)"

step "applying the seed's demo-app.yaml and ScaledObject (pollingInterval 5s, cooldownPeriod 10s for the demo)"
kubectl create namespace demo-ns >/dev/null
kubectl apply -f - <<YAML
apiVersion: apps/v1
kind: Deployment
metadata:
  labels:
    app: demo-app
  name: demo-app
  namespace: demo-ns
spec:
  replicas: 1
  selector:
    matchLabels:
      app: demo-app
  template:
    metadata:
      labels:
        app: demo-app
    spec:
      serviceAccountName: demo-app-sa
      containers:
      - image: nginx
        name: nginx
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: demo-app-sa
  namespace: demo-ns
  annotations:
    eks.amazonaws.com/role-arn: $DEMO_APP_ROLE
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: demo-app-scaledobject
  namespace: demo-ns
spec:
  minReplicaCount: 0  # scale down to 0
  maxReplicaCount: 10
  pollingInterval: 5
  cooldownPeriod: 10
  scaleTargetRef:
    name: demo-app    # name of our demo-app deployment
  triggers:
  - type: aws-sqs-queue
    authenticationRef:
      name: demo-app-trigger-auth-aws-credentials  # trigger auth object name
    metadata:
      queueURL: $DEMO_QUEUE_URL
      queueLength: "2" # 2 messages per pod
      awsRegion: ca-central-1
      awsEndpoint: $SWELL_AWS_ENDPOINT
      identityOwner: pod # defaults to pod if unset
---
apiVersion: keda.sh/v1alpha1
kind: TriggerAuthentication
metadata:
  name: demo-app-trigger-auth-aws-credentials
  namespace: demo-ns
spec:
  podIdentity:
    provider: aws-eks # or aws-kiam when using kiam
YAML

replicas() { kubectl -n demo-ns get deployment demo-app -o jsonpath='{.spec.replicas}'; }
wait_replicas() { # CMP N SECONDS
  for _ in $(seq 1 "$3"); do
    local r; r=$(replicas)
    if [ "$1" = eq ] && [ "$r" = "$2" ]; then return 0; fi
    if [ "$1" = ge ] && [ "$r" -ge "$2" ]; then return 0; fi
    sleep 1
  done
  echo "demo: gave up waiting for replicas $1 $2 (now $(replicas)); operator log:" >&2
  tail -20 "$state/operator.log" >&2
  exit 1
}

step "kubectl get pods -n demo-ns -w  (live)"
kubectl -n demo-ns get pods -w --output-watch-events 2>/dev/null > >(ts) &
pids+=($!)

wait_replicas eq 0 90
kubectl -n demo-ns wait --for=jsonpath='{.status.conditions[?(@.type=="Ready")].status}'=True scaledobject/demo-app-scaledobject --timeout=60s >/dev/null
echo ">>> the queue is empty: demo-app is at 0 replicas"
step "sending 4 messages to demo-app-sqs"
"$py" "$here/demo_aws.py" send 4
wait_replicas ge 1 90
echo ">>> Swell activated demo-app (0 → 1); the HPA takes it from here: 4 messages / queueLength 2"
wait_replicas eq 2 90
echo ">>> demo-app is at $(replicas) replicas"
kubectl -n demo-ns get hpa keda-hpa-demo-app-scaledobject
kubectl -n demo-ns get scaledobject demo-app-scaledobject
step "purging the queue"
"$py" "$here/demo_aws.py" purge
wait_replicas eq 0 120
sleep 2
echo ">>> demo-app is back at 0 replicas"

step "kubectl get events -n demo-ns"
kubectl -n demo-ns get events --sort-by=.lastTimestamp \
  | grep -E "REASON|KEDA|ScaledObject|ScalingReplicaSet|SuccessfulRescale" || true
step "the story took $((SECONDS - t0))s"
