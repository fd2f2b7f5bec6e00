//! `swell check --cluster` against the real local control plane.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;

fn sqs(name: &str, target: &str, owner: &str, auth: &str) -> String {
    let auth = if auth.is_empty() {
        String::new()
    } else {
        format!("\n    authenticationRef: {{name: {auth}}}")
    };
    format!(
        r#"apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {{name: {name}}}
spec:
  scaleTargetRef: {{name: {target}}}
  triggers:
  - type: aws-sqs-queue{auth}
    metadata:
      queueURL: https://sqs.eu-west-1.amazonaws.com/111122223333/orders
      awsRegion: eu-west-1
      identityOwner: {owner}
"#
    )
}

/// A Deployment whose pods run as a ServiceAccount with an IAM role and request cpu.
fn irsa(name: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      serviceAccountName: annotated
      containers: [{{name: app, image: app, resources: {{requests: {{cpu: 100m}}}}}}]
"#
    )
}

#[tokio::test]
async fn cluster_mode_checks_targets_identities_and_competitors() {
    let cluster = cluster();
    cluster
        .with_namespace("check", |ns| async move {
            ns.apply(
                cluster,
                &format!(
                    r#"{plain}
---
{taken}
---
{fought}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: annotated
  annotations: {{eks.amazonaws.com/role-arn: "arn:aws:iam::111122223333:role/irsa"}}
---
{irsa}
---
{irsa_b}
---
{plain_b}
---
{plain_c}
---
{plain_d}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {{name: manual}}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: fought}}
  minReplicas: 1
  maxReplicas: 3
  metrics: [{{type: Resource, resource: {{name: cpu, target: {{type: Utilization, averageUtilization: 50}}}}}}]
---
apiVersion: keda.sh/v1alpha1
kind: TriggerAuthentication
metadata: {{name: eks}}
spec:
  podIdentity: {{provider: aws-eks}}
---
{existing}
"#,
                    plain = deployment("plain", 1),
                    plain_b = deployment("plain-b", 1),
                    plain_c = deployment("plain-c", 1),
                    plain_d = deployment("plain-d", 1),
                    irsa = irsa("irsa"),
                    irsa_b = irsa("irsa-b"),
                    taken = deployment("taken", 1),
                    fought = deployment("fought", 1),
                    existing = sqs("existing", "taken", "operator", ""),
                ),
            )
            .unwrap();

            let cpu = r#"apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: cpu-no-requests}
spec:
  scaleTargetRef: {name: plain-d}
  minReplicaCount: 1
  triggers:
  - type: cpu
    metricType: Utilization
    metadata: {value: "50"}
"#;
            let cpu_ok = cpu
                .replace("cpu-no-requests", "cpu-with-requests")
                .replace("name: plain-d", "name: irsa-b");
            let not_scalable = sqs("not-scalable", "x", "operator", "").replace(
                "scaleTargetRef: {name: x}",
                "scaleTargetRef: {apiVersion: v1, kind: ConfigMap, name: x}",
            );
            let input = [
                sqs("ok", "plain", "operator", ""),
                sqs("missing-target", "nope", "operator", ""),
                not_scalable,
                sqs("missing-auth", "plain-b", "pod", "nope"),
                sqs("no-role", "plain-c", "pod", "eks"),
                sqs("with-role", "irsa", "pod", "eks"),
                sqs("duplicate", "taken", "operator", ""),
                sqs("fought", "fought", "operator", ""),
                cpu.to_string(),
                cpu_ok,
            ]
            .join("---\n");
            let dir = std::env::temp_dir().join(format!("swell-check-{}", ns.name));
            std::fs::create_dir_all(&dir).unwrap();
            let file = dir.join("input.yaml");
            std::fs::write(&file, &input).unwrap();

            let output = std::process::Command::new(swell())
                .args(["check", "--cluster", "-n", &ns.name, "-f"])
                .arg(&file)
                .env("KUBECONFIG", &cluster.kubeconfig)
                .output()
                .unwrap();
            let _ = std::fs::remove_dir_all(&dir);
            let out = String::from_utf8_lossy(&output.stdout).into_owned();
            let err = String::from_utf8_lossy(&output.stderr).into_owned();
            assert_eq!(output.status.code(), Some(1), "{out}\n{err}");
            let n = &ns.name;
            let lines: Vec<&str> = out.lines().collect();
            let line = |index: usize| -> Vec<&str> {
                let prefix = format!("input.yaml:{index}: ");
                lines
                    .iter()
                    .copied()
                    .filter(|l| l.contains(&prefix))
                    .collect()
            };
            let expect = |index: usize, want: &str| {
                let got = line(index);
                assert!(
                    got.iter().any(|l| l.contains(want)),
                    "document {index}: want {want:?}, got:\n{}",
                    got.join("\n")
                );
            };
            expect(0, "ScaledObject ok: ok");
            expect(
                1,
                &format!("error: spec.scaleTargetRef.name: Deployment {n}/nope not found"),
            );
            expect(2, "error: spec.scaleTargetRef: scaleTargetRef: v1.ConfigMap has no /scale subresource");
            expect(
                3,
                &format!("error: spec.triggers[0].authenticationRef: TriggerAuthentication \"nope\" not found in namespace {n}; create it or fix the name"),
            );
            expect(
                4,
                &format!("error: spec.triggers[0].authenticationRef: the workload's ServiceAccount {n}/default has no eks.amazonaws.com/role-arn annotation"),
            );
            expect(5, "ScaledObject with-role: ok");
            expect(
                6,
                &format!("error: spec.scaleTargetRef: ScaledObject {n}/existing already targets Deployment {n}/taken"),
            );
            expect(
                7,
                &format!("error: spec.scaleTargetRef: HorizontalPodAutoscaler {n}/manual already scales Deployment {n}/fought"),
            );
            expect(
                8,
                "error: spec.triggers[0]: the target's container \"nginx\" has no cpu request",
            );
            expect(9, "ScaledObject cpu-with-requests: ok");
        })
        .await;
}
