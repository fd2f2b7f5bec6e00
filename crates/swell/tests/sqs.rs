//! The seed scenario (KEDA in Amazon EKS, part 2) against local AWS with IAM enforced:
//! the seed's manifests with only the queue URL and endpoint changed (and, to keep the
//! suite fast, pollingInterval 1 and cooldownPeriod 2 instead of 30 and the default 300).
//! Swell's own identity is IRSA: AWS_ROLE_ARN and a projected-style ServiceAccount token.

#![allow(clippy::unwrap_used)]

mod common;

use aws_sdk_sqs::types::QueueAttributeName;
use common::*;
use swell_testkit::{
    Aws, Cluster, Operator, TestNamespace, allow, trust, unique_suffix, wait_until,
};

const REGION: &str = "ca-central-1";

/// AWS set up as the seed's Terraform does, with names unique to this test.
struct SeedAws {
    aws: &'static Aws,
    queue: String,
    queue_url: String,
    operator_role: String,
    demo_role: String,
}

impl SeedAws {
    /// A queue named `<queue_prefix>-<unique>`; a FIFO queue when the prefix ends in `.fifo`
    /// (`Orders-Queue.fifo` → `Orders-Queue-<unique>.fifo`).
    async fn new(queue_prefix: &str) -> SeedAws {
        let aws = Aws::shared();
        let s = unique_suffix();
        let queue = match queue_prefix.strip_suffix(".fifo") {
            Some(stem) => format!("{stem}-{s}.fifo"),
            None => format!("{queue_prefix}-{s}"),
        };
        let fifo = queue.ends_with(".fifo").then(|| "true".to_string());
        let queue_url = aws
            .sqs_in(&aws.admin, REGION)
            .create_queue()
            .queue_name(&queue)
            .set_attributes(fifo.map(|t| [(QueueAttributeName::FifoQueue, t)].into()))
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        // keda-operator: assumed through IRSA; permissions added per model.
        let operator_role = aws
            .create_role(&format!("keda-operator-{s}"), serde_json::json!({
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRoleWithWebIdentity",
                    "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/oidc.eks.local"}}]
            }), None)
            .await
            .unwrap();
        let demo_role = aws
            .create_role(&format!("demo-app-{s}"), trust(&[&operator_role]), None)
            .await
            .unwrap();
        SeedAws {
            aws,
            queue,
            queue_url,
            operator_role,
            demo_role,
        }
    }

    fn queue_arn(&self) -> String {
        format!(
            "arn:aws:sqs:{REGION}:{}:{}",
            self.aws.account_id, self.queue
        )
    }

    fn role_name(arn: &str) -> &str {
        arn.rsplit('/').next().unwrap_or(arn)
    }

    async fn allow_operator(&self, name: &str, actions: &[&str], resource: &str) {
        self.aws
            .put_role_policy(
                Self::role_name(&self.operator_role),
                name,
                allow(actions, resource),
            )
            .await
            .unwrap();
    }

    async fn allow_demo_app(&self, actions: &[&str], resource: &str) {
        self.aws
            .put_role_policy(
                Self::role_name(&self.demo_role),
                "demo-app-sqs-policy",
                allow(actions, resource),
            )
            .await
            .unwrap();
    }

    async fn send(&self, n: usize, delay: Option<i32>) {
        let sqs = self.aws.sqs_in(&self.aws.admin, REGION);
        let fifo = self.queue.ends_with(".fifo");
        for i in 0..n {
            sqs.send_message()
                .queue_url(&self.queue_url)
                .message_body(format!("m{i}"))
                .set_delay_seconds(delay)
                .set_message_group_id(fifo.then(|| "orders".to_string()))
                .set_message_deduplication_id(fifo.then(unique_suffix))
                .send()
                .await
                .unwrap();
        }
    }

    async fn purge(&self) {
        self.aws
            .sqs_in(&self.aws.admin, REGION)
            .purge_queue()
            .queue_url(&self.queue_url)
            .send()
            .await
            .unwrap();
    }

    async fn visible(&self) -> i64 {
        let out = self
            .aws
            .sqs_in(&self.aws.admin, REGION)
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .unwrap();
        out.attributes.unwrap()[&QueueAttributeName::ApproximateNumberOfMessages]
            .parse()
            .unwrap()
    }
}

/// Runs `swell operator` with IRSA: the keda-operator ServiceAccount's token and role.
async fn operator(cluster: &Cluster, ns: &TestNamespace, seed: &SeedAws) -> Operator {
    operator_env(cluster, ns, seed, &[]).await
}

/// [`operator`] with more environment.
async fn operator_env(
    cluster: &Cluster,
    ns: &TestNamespace,
    seed: &SeedAws,
    env: &[(&str, &str)],
) -> Operator {
    ns.apply(
        cluster,
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: keda-operator}\n",
    )
    .unwrap();
    let token = cluster.token(&ns.name, "keda-operator").await;
    let token_file = cluster.dir.join(format!("irsa-{}.token", ns.name));
    std::fs::write(&token_file, token).unwrap();
    Operator::start_env(
        cluster,
        swell(),
        &ns.name,
        None,
        &["--leader-elect=false"],
        &[
            ("AWS_ROLE_ARN", seed.operator_role.as_str()),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", token_file.to_str().unwrap()),
            ("AWS_REGION", "us-west-2"),
            ("AWS_ENDPOINT_URL", seed.aws.endpoint.as_str()),
        ]
        .into_iter()
        .chain(env.iter().copied())
        .collect::<Vec<_>>(),
    )
}

fn demo_app(role_arn: &str, name: &str) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  labels: {{app: {name}}}
  name: {name}
spec:
  replicas: 1
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      serviceAccountName: {name}-sa
      containers:
      - image: nginx
        name: nginx
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {name}-sa
  annotations:
    eks.amazonaws.com/role-arn: {role_arn}
"#
    )
}

fn pod_model_scaled_object(seed: &SeedAws, queue_url: &str) -> String {
    format!(
        r#"
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: demo-app-scaledobject
spec:
  minReplicaCount: 0  # scale down to 0
  maxReplicaCount: 10
  pollingInterval: 1
  cooldownPeriod: 2
  scaleTargetRef:
    name: demo-app    # name of our demo-app deployment
  triggers:
  - type: aws-sqs-queue
    authenticationRef:
      name: demo-app-trigger-auth-aws-credentials  # trigger auth object name
    metadata:
      queueURL: {queue_url}
      queueLength: "2" # 2 messages per pod
      awsRegion: {REGION}
      awsEndpoint: {endpoint}
      identityOwner: pod # defaults to pod if unset
---
apiVersion: keda.sh/v1alpha1
kind: TriggerAuthentication
metadata:
  name: demo-app-trigger-auth-aws-credentials
spec:
  podIdentity:
    provider: aws-eks # or aws-kiam when using kiam
"#,
        endpoint = seed.aws.endpoint
    )
}

fn operator_model_scaled_object(
    seed: &SeedAws,
    name: &str,
    target: &str,
    extra_meta: &str,
) -> String {
    format!(
        r#"
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: {name}
spec:
  minReplicaCount: 0
  maxReplicaCount: 10
  pollingInterval: 1
  cooldownPeriod: 2
  scaleTargetRef:
    name: {target}
  triggers:
  - type: aws-sqs-queue
    metadata:
      queueURL: {url}
      queueLength: "2"
      awsRegion: {REGION}
      awsEndpoint: {endpoint}
      identityOwner: operator # defaults to pod if unset
{extra_meta}
"#,
        url = seed.queue_url,
        endpoint = seed.aws.endpoint
    )
}

/// Scale 0 → active → 0 on messages, as in the blog.
async fn scale_cycle(ns: &TestNamespace, seed: &SeedAws, so_name: &str, target: &str) {
    // An empty queue: the seed's replica of 1 goes to 0.
    wait_replicas(ns, target, 0).await;
    wait_condition(ns, so_name, "Ready", "True/ScaledObjectReady").await;
    seed.send(4, None).await;
    wait_replicas(ns, target, 1).await;
    let note = wait_event(ns, "KEDAScaleTargetActivated", "from 0 to 1").await;
    assert!(
        note.starts_with(&format!(
            "Scaled apps/v1.Deployment {}/{target} from 0 to 1",
            ns.name
        )),
        "{note}"
    );
    let s = so(ns, so_name).await.status.unwrap();
    assert_eq!(
        s.external_metric_names,
        Some(vec![format!("s0-aws-sqs-{}", seed.queue)])
    );
    seed.purge().await;
    wait_replicas(ns, target, 0).await;
    wait_event(
        ns,
        "KEDAScaleTargetDeactivated",
        &format!(
            "Deactivated apps/v1.Deployment {}/{target} from 1 to 0",
            ns.name
        ),
    )
    .await;
}

#[tokio::test]
async fn seed_pod_identity_owner_model() {
    let cluster = cluster();
    cluster
        .with_namespace("seed-pod", |ns| async move {
            let seed = SeedAws::new("demo-app-sqs").await;
            seed.allow_demo_app(&["sqs:GetQueueAttributes"], &seed.queue_arn())
                .await;
            seed.allow_operator("keda-operator-assume", &["sts:AssumeRole"], &seed.demo_role)
                .await;
            ns.apply(cluster, &demo_app(&seed.demo_role, "demo-app"))
                .unwrap();
            ns.apply(cluster, &pod_model_scaled_object(&seed, &seed.queue_url))
                .unwrap();
            let op = operator(cluster, &ns, &seed).await;
            scale_cycle(&ns, &seed, "demo-app-scaledobject", "demo-app").await;
            let s = so(&ns, "demo-app-scaledobject").await.status.unwrap();
            assert_eq!(
                s.authentications_types.as_deref(),
                Some("demo-app-trigger-auth-aws-credentials")
            );
            assert!(!op.log_text().contains("SecretAccessKey"));
        })
        .await;
}

/// The seed's pod model with EKS Pod Identity instead of IRSA (keda#6418): the workload's
/// ServiceAccount has no role annotation, but an EKS Pod Identity association of the
/// cluster (moto's EKS API, extended by hack/moto_launcher.py) names its role. Without
/// eks:ListPodIdentityAssociations Swell says so; granted, it finds the role, assumes it and
/// scales 0 → 1 → 0.
#[tokio::test]
async fn seed_pod_model_with_eks_pod_identity() {
    let cluster = cluster();
    cluster
        .with_namespace("seed-podid", |ns| async move {
            let seed = SeedAws::new("demo-app-sqs").await;
            seed.allow_demo_app(&["sqs:GetQueueAttributes"], &seed.queue_arn())
                .await;
            seed.allow_operator("keda-operator-assume", &["sts:AssumeRole"], &seed.demo_role)
                .await;
            let eks_name = format!("swell-{}", unique_suffix());
            let eks = aws_sdk_eks::Client::new(
                &seed
                    .aws
                    .config(&seed.aws.admin)
                    .into_builder()
                    .region(aws_sdk_eks::config::Region::new("us-west-2"))
                    .build(),
            );
            eks.create_cluster()
                .name(&eks_name)
                .role_arn(&seed.demo_role)
                .resources_vpc_config(
                    aws_sdk_eks::types::VpcConfigRequest::builder()
                        .subnet_ids("subnet-1")
                        .build(),
                )
                .send()
                .await
                .unwrap();
            eks.create_pod_identity_association()
                .cluster_name(&eks_name)
                .namespace(&ns.name)
                .service_account("demo-app-sa")
                .role_arn(&seed.demo_role)
                .send()
                .await
                .unwrap();
            let annotation = format!(
                "  annotations:\n    eks.amazonaws.com/role-arn: {}\n",
                seed.demo_role
            );
            let app = demo_app(&seed.demo_role, "demo-app");
            assert!(app.contains(&annotation));
            ns.apply(cluster, &app.replace(&annotation, "")).unwrap();
            ns.apply(cluster, &pod_model_scaled_object(&seed, &seed.queue_url))
                .unwrap();
            let env = [("SWELL_EKS_CLUSTER_NAME", eks_name.as_str())];
            let op = operator_env(cluster, &ns, &seed, &env).await;
            let c = wait_condition(&ns, "demo-app-scaledobject", "Ready", "False").await;
            assert!(
                c.contains("eks:ListPodIdentityAssociations")
                    && c.contains(&format!("{}/demo-app-sa", ns.name)),
                "{c}"
            );
            let cluster_arn = format!(
                "arn:aws:eks:us-west-2:{}:cluster/{eks_name}",
                seed.aws.account_id
            );
            seed.allow_operator(
                "keda-operator-pod-identity",
                &[
                    "eks:ListPodIdentityAssociations",
                    "eks:DescribePodIdentityAssociation",
                ],
                "*",
            )
            .await;
            eprintln!("granted eks pod identity reads on {cluster_arn} (policy on *)");
            scale_cycle(&ns, &seed, "demo-app-scaledobject", "demo-app").await;
            assert!(!op.log_text().contains("SecretAccessKey"));
        })
        .await;
}

#[tokio::test]
async fn seed_operator_identity_owner_model() {
    let cluster = cluster();
    cluster
        .with_namespace("seed-operator", |ns| async move {
            let seed = SeedAws::new("demo-app-sqs-operator").await;
            seed.allow_operator(
                "keda-operator-sqs",
                &["sqs:GetQueueAttributes"],
                &seed.queue_arn(),
            )
            .await;
            ns.apply(cluster, &demo_app(&seed.demo_role, "demo-app-operator"))
                .unwrap();
            ns.apply(
                cluster,
                &operator_model_scaled_object(&seed, "demo-app-operator", "demo-app-operator", ""),
            )
            .unwrap();
            let _op = operator(cluster, &ns, &seed).await;
            scale_cycle(&ns, &seed, "demo-app-operator", "demo-app-operator").await;
        })
        .await;
}

#[tokio::test]
async fn in_flight_and_delayed_messages_follow_the_flags() {
    let cluster = cluster();
    cluster
        .with_namespace("seed-flags", |ns| async move {
            let seed = SeedAws::new("flags").await;
            seed.allow_operator(
                "keda-operator-sqs",
                &["sqs:GetQueueAttributes"],
                &seed.queue_arn(),
            )
            .await;
            for (name, meta) in [
                ("default", ""),
                ("no-inflight", "      scaleOnInFlight: \"false\""),
                ("delayed", "      scaleOnDelayed: \"true\""),
            ] {
                ns.apply(cluster, &deployment(name, 0)).unwrap();
                ns.apply(
                    cluster,
                    &operator_model_scaled_object(&seed, name, name, meta),
                )
                .unwrap();
            }
            let _op = operator(cluster, &ns, &seed).await;
            for name in ["default", "no-inflight", "delayed"] {
                wait_condition(&ns, name, "Ready", "True").await;
            }
            // One delayed message: only the scaleOnDelayed trigger counts it.
            seed.send(1, Some(120)).await;
            wait_replicas(&ns, "delayed", 1).await;
            assert_eq!(replicas(&ns, "default").await, Ok(0));
            assert_eq!(replicas(&ns, "no-inflight").await, Ok(0));
            // One in-flight message (received, not deleted): counted unless scaleOnInFlight is false.
            seed.send(1, None).await;
            wait_until("the message to be visible", WAIT, || async {
                if seed.visible().await == 1 {
                    Ok(())
                } else {
                    Err("not yet".to_string())
                }
            })
            .await;
            let sqs = seed.aws.sqs_in(&seed.aws.admin, REGION);
            let got = sqs
                .receive_message()
                .queue_url(&seed.queue_url)
                .visibility_timeout(300)
                .send()
                .await
                .unwrap();
            assert_eq!(got.messages.unwrap_or_default().len(), 1);
            wait_replicas(&ns, "default", 1).await;
            wait_condition(&ns, "no-inflight", "Active", "False").await;
            assert_eq!(replicas(&ns, "no-inflight").await, Ok(0));
        })
        .await;
}

#[tokio::test]
async fn seed_common_errors_are_explained_and_never_scale_to_zero() {
    let cluster = cluster();
    cluster
        .with_namespace("seed-errors", |ns| async move {
            let seed = SeedAws::new("errors").await;
            // The operator may assume any role, but the untrusting role's trust policy names nobody.
            seed.allow_operator("keda-operator-assume", &["sts:AssumeRole"], "*")
                .await;
            // A workload role that may read any queue, so that AWS answers NonExistentQueue
            // for a queue that does not exist (moto checks IAM before the queue).
            let reader = seed
                .aws
                .create_role(
                    &format!("reader-{}", unique_suffix()),
                    trust(&[&seed.operator_role]),
                    Some(allow(&["sqs:GetQueueAttributes"], "*")),
                )
                .await
                .unwrap();
            let untrusting = seed
                .aws
                .create_role(
                    &format!("untrusting-{}", unique_suffix()),
                    trust(&["arn:aws:iam::123456789012:user/nobody"]),
                    None,
                )
                .await
                .unwrap();
            ns.apply(cluster, &demo_app(&untrusting, "assume-denied"))
                .unwrap();
            ns.apply(
                cluster,
                &pod_model_scaled_object(&seed, &seed.queue_url)
                    .replace("name: demo-app-scaledobject", "name: assume-denied")
                    .replace("name: demo-app    #", "name: assume-denied    #"),
            )
            .unwrap();
            // The operator's own identity has no sqs permission on this queue.
            ns.apply(cluster, &deployment("queue-denied", 1)).unwrap();
            ns.apply(
                cluster,
                &operator_model_scaled_object(&seed, "queue-denied", "queue-denied", ""),
            )
            .unwrap();
            // A queue that does not exist.
            ns.apply(cluster, &demo_app(&reader, "no-queue")).unwrap();
            let missing = seed.queue_url.replace(&seed.queue, "does-not-exist");
            ns.apply(
                cluster,
                &pod_model_scaled_object(&seed, &missing)
                    .replace("name: demo-app-scaledobject", "name: no-queue")
                    .replace("name: demo-app    #", "name: no-queue    #"),
            )
            .unwrap();
            // A queue URL in another region than awsRegion.
            ns.apply(cluster, &deployment("wrong-region", 1)).unwrap();
            let other = format!(
                "https://sqs.eu-west-1.amazonaws.com/123456789012/{}",
                seed.queue
            );
            ns.apply(
                cluster,
                &operator_model_scaled_object(&seed, "wrong-region", "wrong-region", "")
                    .replace(&seed.queue_url, &other),
            )
            .unwrap();
            // A TriggerAuthentication that does not exist.
            ns.apply(cluster, &deployment("no-auth", 1)).unwrap();
            let no_auth = pod_model_scaled_object(&seed, &seed.queue_url)
                .replace("name: demo-app-scaledobject", "name: no-auth")
                .replace("name: demo-app    #", "name: no-auth    #")
                .replace(
                    "name: demo-app-trigger-auth-aws-credentials  #",
                    "name: missing-trigger-auth  #",
                );
            ns.apply(cluster, &no_auth).unwrap();
            let _op = operator(cluster, &ns, &seed).await;

            let e = wait_event(&ns, "KEDAScalerFailed", "sts:AssumeRole").await;
            assert!(
                e.contains(&format!("may not sts:AssumeRole {untrusting}"))
                    && e.contains("trust policy")
                    && e.contains("Swell's own role"),
                "{e}"
            );
            let e = wait_event(&ns, "KEDAScalerFailed", "lacks sqs:GetQueueAttributes").await;
            assert!(
                e.contains(
                    "Swell's own identity lacks sqs:GetQueueAttributes on arn:aws:sqs:ca-central-1"
                ),
                "{e}"
            );
            let e = wait_event(&ns, "KEDAScalerFailed", "NonExistentQueue").await;
            assert!(
                e.contains("does-not-exist does not exist; check queueURL, and that awsRegion"),
                "{e}"
            );
            let c = wait_condition(
                &ns,
                "wrong-region",
                "Ready",
                "False/ScaledObjectCheckFailed",
            )
            .await;
            assert!(c.contains("set awsRegion: eu-west-1"), "{c}");
            let c = wait_condition(&ns, "no-auth", "Ready", "False/ScaledObjectCheckFailed").await;
            assert!(
                c.contains("TriggerAuthentication \"missing-trigger-auth\" not found"),
                "{c}"
            );
            for name in ["assume-denied", "queue-denied", "no-queue"] {
                let c = wait_condition(&ns, name, "Ready", "False/TriggerError").await;
                assert!(!c.contains("SecretAccessKey"), "{c}");
                let health = so(&ns, name).await.status.unwrap().health.unwrap();
                assert!(
                    health
                        .values()
                        .all(|h| h.status.as_ref().map(|s| s.as_str()) == Some("Failing")),
                    "{health:?}"
                );
            }
            // Polled every second, the failing sts:AssumeRole is retried only after a backoff
            // (5 s, then 10 s, ...), and Swell's own IRSA credentials, held for their hour,
            // are not fetched again for it (before: both calls on every poll).
            let calls = || {
                let assume = seed
                    .aws
                    .count("AssumeRole", "RoleArn", &untrusting)
                    .unwrap();
                let own = (seed.aws)
                    .count("AssumeRoleWithWebIdentity", "RoleArn", &seed.operator_role)
                    .unwrap();
                (assume, own)
            };
            let before = calls();
            tokio::time::sleep(std::time::Duration::from_secs(12)).await;
            let after = calls();
            assert!(before.0 >= 1, "the AssumeRole was attempted: {before:?}");
            assert!(
                after.0 - before.0 <= 3,
                "AssumeRole retried without backoff: {before:?} → {after:?}"
            );
            assert_eq!(
                after.1, before.1,
                "own credentials fetched again: {before:?} → {after:?}"
            );
            // Well past the cooldown, nothing was scaled to zero.
            for name in [
                "assume-denied",
                "queue-denied",
                "no-queue",
                "wrong-region",
                "no-auth",
            ] {
                assert_eq!(
                    replicas(&ns, name).await,
                    Ok(1),
                    "{name} must keep its replicas"
                );
            }
        })
        .await;
}

#[tokio::test]
async fn web_identity_failure_is_reported_as_webidentityerr() {
    let cluster = cluster();
    cluster
        .with_namespace("seed-webid", |ns| async move {
            let seed = SeedAws::new("webid").await;
            ns.apply(cluster, &deployment("app", 1)).unwrap();
            ns.apply(
                cluster,
                &operator_model_scaled_object(&seed, "app", "app", ""),
            )
            .unwrap();
            let _op = Operator::start_env(
                cluster,
                swell(),
                &ns.name,
                None,
                &["--leader-elect=false"],
                &[
                    ("AWS_ROLE_ARN", seed.operator_role.as_str()),
                    ("AWS_WEB_IDENTITY_TOKEN_FILE", "/nonexistent/token"),
                    ("AWS_REGION", "us-west-2"),
                    ("AWS_ENDPOINT_URL", seed.aws.endpoint.as_str()),
                ],
            );
            // The token is missing: the message names the variable, the path and the fix,
            // not the trust policy (which is the hint when STS refuses a readable token).
            let e = wait_event(&ns, "KEDAScalerFailed", "WebIdentityErr").await;
            assert!(
                e.contains("AWS_WEB_IDENTITY_TOKEN_FILE=/nonexistent/token")
                    && e.contains("is the token mounted?")
                    && !e.contains("trust policy"),
                "{e}"
            );
            tokio::time::sleep(std::time::Duration::from_secs(3)).await;
            assert_eq!(replicas(&ns, "app").await, Ok(1));
        })
        .await;
}

#[tokio::test]
async fn one_upstream_call_per_queue_and_identity() {
    let cluster = cluster();
    cluster
        .with_namespace("seed-dedup", |ns| async move {
            let seed = SeedAws::new("shared").await;
            seed.allow_operator(
                "keda-operator-sqs",
                &["sqs:GetQueueAttributes"],
                &seed.queue_arn(),
            )
            .await;
            for name in ["a", "b", "c"] {
                ns.apply(cluster, &deployment(name, 0)).unwrap();
                ns.apply(
                    cluster,
                    &operator_model_scaled_object(&seed, name, name, "")
                        .replace("pollingInterval: 1", "pollingInterval: 2"),
                )
                .unwrap();
            }
            let op = operator(cluster, &ns, &seed).await;
            for name in ["a", "b", "c"] {
                wait_condition(&ns, name, "Ready", "True").await;
            }
            let addr = op.metrics_addr().unwrap();
            let calls = || {
                let out = std::process::Command::new("curl")
                    .args(["-sk", &format!("http://{addr}/metrics")])
                    .output()
                    .unwrap();
                let text = String::from_utf8_lossy(&out.stdout).to_string();
                text.lines()
                    .find(|l| {
                        l.starts_with("swell_scaler_upstream_calls_total{scaler=\"aws-sqs-queue\"}")
                    })
                    .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                    .ok_or_else(|| format!("no upstream call counter in:\n{text}"))
            };
            // Ready comes with the status write, before the scale loop's first poll: the
            // counter exists from that poll on.
            let before = wait_until("the first upstream call", WAIT, || async { calls() }).await;
            tokio::time::sleep(std::time::Duration::from_secs(10)).await;
            let made = calls().unwrap() - before;
            // Three ScaledObjects polling every 2 s for 10 s would make about 15 calls
            // unshared; shared, about 5. Only the upper bound is asserted: a loaded machine
            // polls less often, never more (CI once saw 2).
            assert!(
                (1.0..=8.0).contains(&made),
                "upstream calls in 10 s: {made}"
            );
        })
        .await;
}

/// The whole seed story through the real HPA controller and Swell's external metrics API
/// (registered through the aggregation layer, CA published by Swell): 4 messages → 2
/// replicas, 6 with queueLength 2 → 3, purge → 0. The queue is a FIFO queue with capitals
/// (`Orders-Queue-<unique>.fifo`): the HPA controller asks for the metric lowercased.
#[tokio::test(flavor = "multi_thread")]
async fn seed_scales_through_the_hpa_and_the_metrics_api() {
    let cluster = cluster();
    cluster
        .with_namespace("seed-hpa", |ns| async move {
            let seed = SeedAws::new("Orders-Queue.fifo").await;
            seed.allow_demo_app(&["sqs:GetQueueAttributes"], &seed.queue_arn()).await;
            seed.allow_operator("keda-operator-assume", &["sts:AssumeRole"], &seed.demo_role).await;
            ns.apply(cluster, &demo_app(&seed.demo_role, "demo-app")).unwrap();
            ns.apply(cluster, &pod_model_scaled_object(&seed, &seed.queue_url)).unwrap();
            ns.apply(cluster, "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: keda-operator}\n").unwrap();
            let token = cluster.token(&ns.name, "keda-operator").await;
            let token_file = cluster.dir.join(format!("irsa-{}.token", ns.name));
            std::fs::write(&token_file, token).unwrap();
            let (op, _guard) = metrics_api::operator_with_metrics_api_env(
                cluster,
                &ns,
                &[
                    ("AWS_ROLE_ARN", seed.operator_role.as_str()),
                    ("AWS_WEB_IDENTITY_TOKEN_FILE", token_file.to_str().unwrap()),
                    ("AWS_REGION", "us-west-2"),
                    ("AWS_ENDPOINT_URL", seed.aws.endpoint.as_str()),
                ],
            )
            .await;

            wait_replicas(&ns, "demo-app", 0).await;
            seed.send(4, None).await;
            wait_replicas(&ns, "demo-app", 2).await;
            wait_event(&ns, "KEDAScaleTargetActivated", "from 0 to 1").await;
            // The HPA read the metric through the aggregation layer; the name answers in
            // the case the trigger made it and lowercased, as the HPA controller asks.
            let metric = format!("s0-aws-sqs-{}", seed.queue.replace('.', "-"));
            assert!(metric.contains("Orders-Queue") && metric.ends_with("-fifo"), "{metric}");
            for name in [metric.clone(), metric.to_lowercase()] {
                let raw = cluster
                    .kubectl()
                    .args([
                        "get",
                        "--raw",
                        &format!(
                            "/apis/external.metrics.k8s.io/v1beta1/namespaces/{}/{name}?labelSelector=scaledobject.keda.sh%2Fname%3Ddemo-app-scaledobject",
                            ns.name
                        ),
                    ])
                    .output()
                    .unwrap();
                let text = String::from_utf8_lossy(&raw.stdout);
                assert!(text.contains("\"value\":\"4\""), "{name}: {text}{}", String::from_utf8_lossy(&raw.stderr));
            }
            seed.send(2, None).await;
            wait_replicas(&ns, "demo-app", 3).await;
            seed.purge().await;
            wait_replicas(&ns, "demo-app", 0).await;
            assert!(!op.log_text().contains("forbidden"));
        })
        .await;
}
