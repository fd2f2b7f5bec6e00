//! Migration from the archived k8s-cloudwatch-adapter: its documented SQS example
//! (samples/sqs/deploy: an `ExternalMetric` and an HPA on `sqs-helloworld-length`) keeps
//! scaling with the adapter gone and `swell operator --cloudwatch-adapter` as the cluster's
//! external metrics API, against the local AWS (moto, IAM enforced).
//!
//! moto does not publish SQS's own CloudWatch metrics, so the test puts the datapoints
//! AWS/SQS would (`ApproximateNumberOfMessagesVisible` per `QueueName`).

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
use common::metrics_api::{counter, operator_with_metrics_api_env};
use common::*;
use swell_testkit::{Cluster, TestNamespace, wait_until};

/// The adapter's samples/sqs/deploy/externalmetric.yaml, but for the queue's name (one
/// per test run: moto's CloudWatch outlives a namespace).
fn external_metric(name: &str, queue: &str, extra: &str) -> String {
    format!(
        r#"
apiVersion: metrics.aws/v1alpha1
kind: ExternalMetric
metadata:
  name: {name}
spec:
  name: {name}{extra}
  queries:
    - id: sqs_helloworld_length
      metricStat:
        metric:
          namespace: "AWS/SQS"
          metricName: "ApproximateNumberOfMessagesVisible"
          dimensions:
            - name: QueueName
              value: "{queue}"
        period: 60
        stat: Average
        unit: Count
      returnData: true
"#
    )
}

/// The adapter's samples/sqs/deploy/hpa.yaml in autoscaling/v2 (its v2beta1 is gone).
const HPA: &str = r#"
kind: HorizontalPodAutoscaler
apiVersion: autoscaling/v2
metadata:
  name: sqs-consumer-scaler
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: sqs-consumer
  minReplicas: 1
  maxReplicas: 10
  metrics:
  - type: External
    external:
      metric:
        name: sqs-helloworld-length
      target:
        type: AverageValue
        averageValue: 30
"#;

/// Puts `value` for `queue` 90 s and 150 s ago: inside the adapter's window (the five
/// minutes before the current minute) whatever the second.
async fn put_queue_length(cw: &aws_sdk_cloudwatch::Client, queue: &str, value: f64) {
    for ago in [90, 150] {
        let at = SystemTime::now() - Duration::from_secs(ago);
        cw.put_metric_data()
            .namespace("AWS/SQS")
            .metric_data(
                MetricDatum::builder()
                    .metric_name("ApproximateNumberOfMessagesVisible")
                    .dimensions(Dimension::builder().name("QueueName").value(queue).build())
                    .timestamp(aws_sdk_cloudwatch::primitives::DateTime::from(at))
                    .unit(aws_sdk_cloudwatch::types::StandardUnit::Count)
                    .value(value)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
}

fn install_crd(cluster: &Cluster) {
    let crd = std::process::Command::new(swell())
        .args(["crds", "--cloudwatch-adapter"])
        .output()
        .unwrap();
    assert!(crd.status.success());
    let mut apply = cluster
        .kubectl()
        .args(["apply", "--server-side", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    apply.stdin.take().unwrap().write_all(&crd.stdout).unwrap();
    assert!(
        apply.wait().unwrap().success(),
        "applying the ExternalMetric CRD"
    );
    let established = cluster
        .kubectl()
        .args([
            "wait",
            "--for=condition=Established",
            "crd/externalmetrics.metrics.aws",
        ])
        .output()
        .unwrap();
    assert!(established.status.success());
}

/// `kubectl get --raw` of an external metric: the body, or the error kubectl printed.
fn raw_metric(cluster: &Cluster, ns: &TestNamespace, metric: &str) -> Result<String, String> {
    let path = format!(
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/{}/{metric}",
        ns.name
    );
    let out = cluster
        .kubectl()
        .args(["get", "--raw", &path])
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

async fn wait_raw_error(cluster: &Cluster, ns: &TestNamespace, metric: &str, want: &str) -> String {
    wait_until(&format!("{metric} to fail with {want:?}"), WAIT, || async {
        match raw_metric(cluster, ns, metric) {
            Err(e) if e.contains(want) => Ok(e),
            other => Err(format!("{other:?}")),
        }
    })
    .await
}

/// The sample's HPA scales on the sample's ExternalMetric read through Swell: 100 visible
/// messages at 30 per replica → 4; the object switched to another queue (70) and to a
/// cross-account `roleArn` → 3. A role without cloudwatch:GetMetricData and an invalid
/// period are named in the metrics API's answer.
#[tokio::test(flavor = "multi_thread")]
async fn the_adapters_sqs_sample_scales_through_swell() {
    swell();
    let cluster = cluster();
    let aws = swell_testkit::Aws::shared();
    install_crd(cluster);
    cluster
        .with_namespace("cw-adapter", |ns| async move {
            let suffix = swell_testkit::unique_suffix();
            let (queue, other) = (format!("helloworld-{suffix}"), format!("other-{suffix}"));
            // Swell's own identity: GetMetricData, and the right to assume the roles below.
            let me = format!("swell-cw-{suffix}");
            let keys = aws
                .create_user(
                    &me,
                    Some(swell_testkit::allow(
                        &["cloudwatch:GetMetricData", "sts:AssumeRole"],
                        "*",
                    )),
                )
                .await
                .unwrap();
            let trust = swell_testkit::trust(&[&aws.user_arn(&me)]);
            let reader = aws
                .create_role(
                    &format!("cw-reader-{suffix}"),
                    trust.clone(),
                    Some(swell_testkit::allow(&["cloudwatch:GetMetricData"], "*")),
                )
                .await
                .unwrap();
            let nothing = aws
                .create_role(&format!("cw-nothing-{suffix}"), trust, None)
                .await
                .unwrap();
            let cw = aws_sdk_cloudwatch::Client::new(&aws.config(&aws.admin));
            put_queue_length(&cw, &queue, 100.0).await;
            put_queue_length(&cw, &other, 70.0).await;

            ns.apply(cluster, &deployment("sqs-consumer", 1)).unwrap();
            ns.apply(
                cluster,
                &external_metric("sqs-helloworld-length", &queue, ""),
            )
            .unwrap();
            ns.apply(cluster, HPA).unwrap();
            let env = [
                ("SWELL_CLOUDWATCH_ADAPTER", "true"),
                ("AWS_ACCESS_KEY_ID", keys.access_key_id.as_str()),
                ("AWS_SECRET_ACCESS_KEY", keys.secret_access_key.as_str()),
                ("AWS_REGION", aws.region.as_str()),
                ("AWS_ENDPOINT_URL", aws.endpoint.as_str()),
            ];
            let (op, _guard) = operator_with_metrics_api_env(cluster, &ns, &env).await;
            wait_replicas(&ns, "sqs-consumer", 4).await;
            let body = raw_metric(cluster, &ns, "sqs-helloworld-length").unwrap();
            assert!(
                body.contains(r#""metricName":"sqs-helloworld-length""#),
                "{body}"
            );
            assert!(body.contains(r#""value":"100""#), "{body}");
            let calls = "swell_scaler_upstream_calls_total{scaler=\"aws-cloudwatch\"}";
            assert!(counter(&op, calls) > 0.0);

            // A spec change is served at once: another queue, read through an assumed role.
            let role = format!("\n  roleArn: {reader}\n  region: {}", aws.region);
            ns.apply(
                cluster,
                &external_metric("sqs-helloworld-length", &other, &role),
            )
            .unwrap();
            wait_replicas(&ns, "sqs-consumer", 3).await;

            let denied = format!("\n  roleArn: {nothing}");
            ns.apply(cluster, &external_metric("denied", &queue, &denied))
                .unwrap();
            let e = wait_raw_error(cluster, &ns, "denied", "cloudwatch:GetMetricData").await;
            assert!(e.contains("ExternalMetric"), "{e}");
            let bad = external_metric("bad-period", &queue, "").replace("period: 60", "period: 90");
            ns.apply(cluster, &bad).unwrap();
            wait_raw_error(
                cluster,
                &ns,
                "bad-period",
                "spec.queries[0].metricStat.period",
            )
            .await;

            // Neither the served metrics nor Swell's log carry the keys.
            let logs = op.log_text();
            assert!(!logs.contains(&keys.secret_access_key));
            assert_eq!(replicas(&ns, "sqs-consumer").await, Ok(3));
        })
        .await;
}
