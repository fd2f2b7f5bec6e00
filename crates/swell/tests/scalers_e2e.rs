//! Scalers against real sources, end to end through `swell operator` on the local control
//! plane: prometheus (a real Prometheus scraping a value the test sets), external and
//! external-push (a gRPC external scaler served by the test), and the AWS scalers against
//! the local AWS (moto with IAM enforced): aws-cloudwatch, aws-dynamodb,
//! aws-dynamodb-streams, aws-kinesis-stream.

#![allow(clippy::unwrap_used)]

mod common;

use common::metrics_api::{counter, operator_with_metrics_api};
use common::*;
use swell_testkit::{Operator, Prometheus, wait_until};

/// 0 → 5 → 0 from a real Prometheus: the value it scrapes from the test goes 0 → 10 → 0;
/// Swell activates the Deployment and the real HPA, reading `s0-prometheus` through the
/// external metrics API, takes it to 10 / threshold 2 = 5 replicas.
#[tokio::test(flavor = "multi_thread")]
async fn prometheus_scales_through_the_hpa() {
    swell();
    let cluster = cluster();
    let prom = Prometheus::shared();
    cluster
        .with_namespace("sc-prom", |ns| async move {
            let target = prom.scrape_target(&ns.name, 0.0).await;
            let query = target.query();
            // Prometheus has scraped the target once the query answers.
            wait_until("Prometheus to scrape the test's target", WAIT, || async {
                let body = prom.query(&query).await.map_err(|e| e.to_string())?;
                if body.contains("\"value\":[") {
                    Ok(())
                } else {
                    Err(body)
                }
            })
            .await;
            ns.apply(cluster, &deployment("app", 0)).unwrap();
            ns.apply(
                cluster,
                &format!(
                    r#"
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {{name: app}}
spec:
  scaleTargetRef: {{name: app}}
  pollingInterval: 1
  cooldownPeriod: 2
  maxReplicaCount: 5
  triggers:
  - type: prometheus
    metadata:
      serverAddress: "{url}"
      query: '{query}'
      threshold: "2"
      activationThreshold: "3"
      ignoreNullValues: "false"
      customHeaders: "X-Scope-OrgID=swell"
      queryParameters: "stats=all"
"#,
                    url = prom.url,
                ),
            )
            .unwrap();
            let (op, _guard) = operator_with_metrics_api(cluster, &ns).await;
            wait_condition(&ns, "app", "Ready", "True").await;
            wait_condition(&ns, "app", "Active", "False").await;
            let s = so(&ns, "app").await.status.unwrap();
            assert_eq!(
                s.external_metric_names,
                Some(vec!["s0-prometheus".to_string()])
            );
            assert_eq!(replicas(&ns, "app").await, Ok(0));

            target.set(10.0);
            wait_replicas(&ns, "app", 5).await;
            wait_condition(&ns, "app", "HPAActive", "True/HPAActive").await;
            wait_event(&ns, "KEDAScaleTargetActivated", "from 0 to 1").await;
            assert!(
                counter(
                    &op,
                    "swell_scaler_upstream_calls_total{scaler=\"prometheus\"}"
                ) > 0.0
            );

            target.set(0.0);
            wait_replicas(&ns, "app", 0).await;
            // At zero the HPA is idle by design: HPAActive stays True, as KEDA's.
            wait_condition(&ns, "app", "HPAActive", "True/ScalingDisabled").await;

            // A query that selects nothing is an error with ignoreNullValues: false, and
            // errors never scale to zero... the workload is at zero already, so it stays.
            ns.apply(
                cluster,
                &format!(
                    r#"
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {{name: app}}
spec:
  scaleTargetRef: {{name: app}}
  pollingInterval: 1
  cooldownPeriod: 2
  maxReplicaCount: 5
  triggers:
  - type: prometheus
    metadata:
      serverAddress: "{url}"
      query: 'swell_test_value{{target="nobody"}}'
      threshold: "2"
      ignoreNullValues: "false"
"#,
                    url = prom.url,
                ),
            )
            .unwrap();
            let c = wait_condition(&ns, "app", "Ready", "False/TriggerError").await;
            assert!(c.contains("the result is empty"), "{c}");
        })
        .await;
}

/// A small external scaler: one metric, `Queue-Depth` (capitals, as a server may name it),
/// whose value the test sets; active when the value is positive. Streams activity changes on `StreamIsActive`.
mod fake_scaler {
    use std::collections::HashMap;
    use std::pin::Pin;
    use std::sync::{Arc, Mutex};

    use swell_scalers::externalscaler::external_scaler_server::{
        ExternalScaler, ExternalScalerServer,
    };
    use swell_scalers::externalscaler::{
        GetMetricSpecResponse, GetMetricsRequest, GetMetricsResponse, IsActiveResponse, MetricSpec,
        MetricValue, ScaledObjectRef,
    };
    use tokio::sync::watch;
    use tonic::{Request, Response, Status};

    #[derive(Clone)]
    pub struct FakeScaler {
        value: Arc<watch::Sender<f64>>,
        /// What IsActive answers: `None` follows the value, `Some(b)` is fixed (to tell
        /// a push from a poll).
        polled_active: Arc<Mutex<Option<bool>>>,
        pub seen: Arc<Mutex<Vec<ScaledObjectRef>>>,
    }

    impl FakeScaler {
        pub fn set(&self, v: f64) {
            self.value.send_replace(v);
        }

        pub fn fix_polled_active(&self, a: Option<bool>) {
            *self.polled_active.lock().unwrap() = a;
        }

        /// Serves on 127.0.0.1 (TLS with a certificate and key in PEM, if given);
        /// returns the port.
        pub async fn serve(tls: Option<(String, String)>) -> (FakeScaler, u16) {
            let fake = FakeScaler {
                value: Arc::new(watch::channel(0.0).0),
                polled_active: Arc::default(),
                seen: Arc::default(),
            };
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let mut builder = tonic::transport::Server::builder();
            if let Some((cert, key)) = tls {
                builder = builder
                    .tls_config(
                        tonic::transport::ServerTlsConfig::new()
                            .identity(tonic::transport::Identity::from_pem(cert, key)),
                    )
                    .unwrap();
            }
            let router = builder.add_service(ExternalScalerServer::new(fake.clone()));
            tokio::spawn(
                router
                    .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
            );
            (fake, port)
        }

        fn record(&self, r: &ScaledObjectRef) {
            self.seen.lock().unwrap().push(r.clone());
        }

        pub fn last_metadata(&self) -> HashMap<String, String> {
            self.seen
                .lock()
                .unwrap()
                .last()
                .map(|r| r.scaler_metadata.clone())
                .unwrap_or_default()
        }
    }

    type ActiveStream =
        Pin<Box<dyn tokio_stream::Stream<Item = Result<IsActiveResponse, Status>> + Send>>;

    #[tonic::async_trait]
    impl ExternalScaler for FakeScaler {
        async fn is_active(
            &self,
            req: Request<ScaledObjectRef>,
        ) -> Result<Response<IsActiveResponse>, Status> {
            self.record(req.get_ref());
            let fixed = *self.polled_active.lock().unwrap();
            let result = fixed.unwrap_or(*self.value.borrow() > 0.0);
            Ok(Response::new(IsActiveResponse { result }))
        }

        type StreamIsActiveStream = ActiveStream;

        async fn stream_is_active(
            &self,
            req: Request<ScaledObjectRef>,
        ) -> Result<Response<ActiveStream>, Status> {
            self.record(req.get_ref());
            // The current state at once, then every change.
            let stream = tokio_stream::wrappers::WatchStream::new(self.value.subscribe());
            let stream =
                tokio_stream::StreamExt::map(stream, |v| Ok(IsActiveResponse { result: v > 0.0 }));
            Ok(Response::new(Box::pin(stream)))
        }

        async fn get_metric_spec(
            &self,
            req: Request<ScaledObjectRef>,
        ) -> Result<Response<GetMetricSpecResponse>, Status> {
            self.record(req.get_ref());
            Ok(Response::new(GetMetricSpecResponse {
                metric_specs: vec![MetricSpec {
                    metric_name: "Queue-Depth".into(),
                    target_size: 0,
                    target_size_float: 2.0,
                }],
            }))
        }

        async fn get_metrics(
            &self,
            req: Request<GetMetricsRequest>,
        ) -> Result<Response<GetMetricsResponse>, Status> {
            let r = req.into_inner();
            if let Some(o) = &r.scaled_object_ref {
                self.record(o);
            }
            if r.metric_name != "Queue-Depth" {
                return Err(Status::not_found(format!("no metric {}", r.metric_name)));
            }
            Ok(Response::new(GetMetricsResponse {
                metric_values: vec![MetricValue {
                    metric_name: r.metric_name,
                    metric_value: 0,
                    metric_value_float: *self.value.borrow(),
                }],
            }))
        }
    }
}

use fake_scaler::FakeScaler;

/// A CA and a server certificate for localhost/127.0.0.1 signed by it (PEM).
fn tls_material() -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "swell-test-ca");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let server =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let cert = server.signed_by(&key, &issuer).unwrap();
    (ca_pem, cert.pem(), key.serialize_pem())
}

fn indent(pem: &str, by: usize) -> String {
    let pad = " ".repeat(by);
    pem.lines()
        .map(|l| format!("{pad}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `external` over TLS (the server's CA from a TriggerAuthentication's Secret): the metric
/// name comes from GetMetricSpec (`Queue-Depth`, which the HPA controller asks for
/// lowercased), the trigger's metadata reaches the server, and the Deployment goes
/// 0 → 3 → 0 (the HPA: 6 / target 2) as the server's value goes 0 → 6 → 0.
#[tokio::test]
async fn external_scaler_over_tls() {
    swell();
    let cluster = cluster();
    cluster
        .with_namespace("sc-ext", |ns| async move {
            let (ca, cert, key) = tls_material();
            let (fake, port) = FakeScaler::serve(Some((cert, key))).await;
            ns.apply(cluster, &deployment("app", 0)).unwrap();
            ns.apply(
                cluster,
                &format!(
                    r#"
apiVersion: v1
kind: Secret
metadata: {{name: scaler-ca}}
stringData:
  ca.crt: |
{ca}
---
apiVersion: keda.sh/v1alpha1
kind: TriggerAuthentication
metadata: {{name: scaler-tls}}
spec:
  secretTargetRef: [{{parameter: caCert, name: scaler-ca, key: ca.crt}}]
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {{name: app}}
spec:
  scaleTargetRef: {{name: app}}
  pollingInterval: 1
  cooldownPeriod: 2
  triggers:
  - type: external
    metadata: {{scalerAddress: "localhost:{port}", queue: orders, team: payments}}
    authenticationRef: {{name: scaler-tls}}
"#,
                    ca = indent(&ca, 4)
                ),
            )
            .unwrap();
            let (op, _guard) = operator_with_metrics_api(cluster, &ns).await;
            wait_condition(&ns, "app", "Ready", "True").await;
            wait_condition(&ns, "app", "Active", "False").await;
            let s = so(&ns, "app").await.status.unwrap();
            assert_eq!(
                s.external_metric_names,
                Some(vec!["s0-Queue-Depth".to_string()])
            );
            let md = fake.last_metadata();
            assert_eq!(md.get("queue").map(String::as_str), Some("orders"));
            assert_eq!(md.get("team").map(String::as_str), Some("payments"));
            assert!(!md.contains_key("caCert"), "{md:?}");
            let seen = fake.seen.lock().unwrap().last().cloned().unwrap();
            assert_eq!(
                (seen.name.as_str(), seen.namespace.as_str()),
                ("app", ns.name.as_str())
            );

            fake.set(6.0);
            wait_replicas(&ns, "app", 3).await;
            wait_event(
                &ns,
                "KEDAScaleTargetActivated",
                "triggered by s0-Queue-Depth",
            )
            .await;
            assert!(
                counter(
                    &op,
                    "swell_scaler_upstream_calls_total{scaler=\"external\"}"
                ) > 0.0
            );
            fake.set(0.0);
            wait_replicas(&ns, "app", 0).await;
            assert!(!op.log_text().contains("BEGIN CERTIFICATE"));
        })
        .await;
}

/// `external-push`: with a 300 s pollingInterval, the stream saying active activates the
/// Deployment at once (the test prints how fast); saying inactive again (cooldownPeriod 0)
/// takes it back to zero, again without a poll. IsActive is pinned to false.
#[tokio::test]
async fn external_push_activates_without_waiting_for_the_poll() {
    swell();
    let cluster = cluster();
    cluster
        .with_namespace("sc-push", |ns| async move {
            let (fake, port) = FakeScaler::serve(None).await;
            fake.fix_polled_active(Some(false));
            ns.apply(cluster, &deployment("app", 0)).unwrap();
            ns.apply(
                cluster,
                &format!(
                    r#"
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {{name: app}}
spec:
  scaleTargetRef: {{name: app}}
  pollingInterval: 300
  cooldownPeriod: 0
  triggers:
  - type: external-push
    metadata: {{scalerAddress: "127.0.0.1:{port}"}}
"#
                ),
            )
            .unwrap();
            let op = Operator::start(cluster, swell(), &ns.name, None, &["--leader-elect=false"]);
            wait_condition(&ns, "app", "Active", "False").await;
            // The loop's first poll is done; the next one is 300 s away, beyond WAIT: only
            // the push can activate it in time.
            let started = std::time::Instant::now();
            fake.set(5.0);
            wait_replicas(&ns, "app", 1).await;
            eprintln!(
                "external-push: activated {:.2}s after the stream said active",
                started.elapsed().as_secs_f64()
            );
            assert!(op.log_text().contains("woken by a push trigger"));
            assert!(
                counter(
                    &op,
                    "swell_scaler_upstream_calls_total{scaler=\"external-push\"}"
                ) > 0.0
            );
            fake.set(0.0);
            wait_replicas(&ns, "app", 0).await;
        })
        .await;
}

/// `aws-cloudwatch` against the local AWS (moto, IAM enforced): a reader with only
/// cloudwatch:GetMetricData (static keys from a TriggerAuthentication) scales the
/// Deployment 0 → 5 → 0 (the HPA: 10 / targetMetricValue 2) as the newest datapoint goes
/// 10 → 0.
#[tokio::test]
async fn aws_cloudwatch_scales_on_the_newest_datapoint() {
    swell();
    let cluster = cluster();
    let aws = swell_testkit::Aws::shared();
    cluster
        .with_namespace("sc-cw", |ns| async move {
            let reader = format!("cw-reader-{}", swell_testkit::unique_suffix());
            let keys = aws
                .create_user(
                    &reader,
                    Some(swell_testkit::allow(&["cloudwatch:GetMetricData"], "*")),
                )
                .await
                .unwrap();
            let trigger = format!(
                r#"
  - type: aws-cloudwatch
    metadata:
      namespace: Swell/Test
      metricName: QueueDepth
      dimensionName: QueueName
      dimensionValue: "{queue}"
      metricStat: Maximum
      metricStatPeriod: "1"
      metricCollectionTime: "60"
      targetMetricValue: "2"
      activationTargetMetricValue: "3"
      minMetricValue: "0"
      awsRegion: "{region}"
      awsAccountId: "{account}"
      awsEndpoint: "{endpoint}""#,
                queue = ns.name,
                region = aws.region,
                account = aws.account_id,
                endpoint = aws.endpoint,
            );
            let (op, _guard) = start_aws_app(&ns, &keys, &trigger, "s0-aws-cloudwatch").await;
            put_queue_depth(&ns.name, 10.0, 2).await;
            wait_replicas(&ns, "app", 5).await;
            // awsAccountId is sent on the query (moto answers for its one account either way).
            let sent = aws.requests().unwrap().into_iter().filter(|r| r.action == "GetMetricData");
            let accounts = sent
                .filter(|r| serde_json::Value::Object(r.params.clone()).to_string().contains(&ns.name))
                .map(|r| r.param("MetricDataQueries.member.1.AccountId").map(str::to_string))
                .collect::<Vec<_>>();
            assert!(!accounts.is_empty(), "no GetMetricData recorded");
            assert!(accounts.iter().all(|a| a.as_deref() == Some(aws.account_id.as_str())), "{accounts:?}");
            assert!(
                counter(
                    &op,
                    "swell_scaler_upstream_calls_total{scaler=\"aws-cloudwatch\"}"
                ) > 0.0
            );
            put_queue_depth(&ns.name, 0.0, 1).await;
            wait_replicas(&ns, "app", 0).await;

            // An identity without cloudwatch:GetMetricData is told what to grant.
            let denied = access_denied(
                &ns,
                "cloudwatch:GetMetricData",
                &format!(
                    r#"
  - type: aws-cloudwatch
    metadata: {{namespace: Swell/Test, metricName: QueueDepth, dimensionName: QueueName, dimensionValue: x,
      targetMetricValue: "2", minMetricValue: "0", awsRegion: "{region}", awsEndpoint: "{endpoint}"}}"#,
                    region = aws.region,
                    endpoint = aws.endpoint,
                ),
            )
            .await;
            let logs = op.log_text();
            assert!(!logs.contains(&keys.secret_access_key) && !logs.contains(&denied.secret_access_key));
        })
        .await;
}

/// A Secret and a TriggerAuthentication `name` handing the scaler these static keys.
fn static_keys_auth(name: &str, keys: &swell_testkit::AwsKeys) -> String {
    format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: {name}-keys}}
stringData: {{id: "{id}", secret: "{secret}"}}
---
apiVersion: keda.sh/v1alpha1
kind: TriggerAuthentication
metadata: {{name: {name}}}
spec:
  secretTargetRef:
  - {{parameter: awsAccessKeyID, name: {name}-keys, key: id}}
  - {{parameter: awsSecretAccessKey, name: {name}-keys, key: secret}}
"#,
        id = keys.access_key_id,
        secret = keys.secret_access_key,
    )
}

/// Deployment `app` at 0 and ScaledObject `app` (pollingInterval 1, cooldownPeriod 2) with
/// `trigger` (a YAML list item, without authenticationRef) read with static `keys`; starts
/// the operator as the cluster's external metrics API (the real HPA scales past 1) and
/// waits until the ScaledObject is Ready, inactive, and names `metric`.
async fn start_aws_app(
    ns: &swell_testkit::TestNamespace,
    keys: &swell_testkit::AwsKeys,
    trigger: &str,
    metric: &str,
) -> (Operator, common::metrics_api::ApiServiceGuard) {
    let cluster = cluster();
    ns.apply(cluster, &deployment("app", 0)).unwrap();
    ns.apply(cluster, &aws_app(keys, trigger, "")).unwrap();
    let (op, guard) = operator_with_metrics_api(cluster, ns).await;
    wait_condition(ns, "app", "Ready", "True").await;
    wait_condition(ns, "app", "Active", "False").await;
    let s = so(ns, "app").await.status.unwrap();
    assert_eq!(s.external_metric_names, Some(vec![metric.to_string()]));
    (op, guard)
}

/// ScaledObject `app` (pollingInterval 1, cooldownPeriod 2, then the `advanced` YAML lines)
/// with `trigger` (a YAML list item, without authenticationRef) read with static `keys`.
fn aws_app(keys: &swell_testkit::AwsKeys, trigger: &str, advanced: &str) -> String {
    format!(
        r#"{auth}
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {{name: app}}
spec:
  scaleTargetRef: {{name: app}}
  pollingInterval: 1
  cooldownPeriod: 2{advanced}
  triggers:{trigger}
    authenticationRef: {{name: app-auth}}
"#,
        auth = static_keys_auth("app-auth", keys),
    )
}

/// A ScaledObject `denied` with `trigger` (a YAML list item, without authenticationRef)
/// read by an IAM user without any permission: its Ready condition must be a TriggerError
/// that says AccessDenied and names `permission`, and the Deployment stays at 0.
/// Returns the user's keys (they must never be logged).
async fn access_denied(
    ns: &swell_testkit::TestNamespace,
    permission: &str,
    trigger: &str,
) -> swell_testkit::AwsKeys {
    let cluster = cluster();
    let aws = swell_testkit::Aws::shared();
    let user = format!("denied-{}", swell_testkit::unique_suffix());
    let keys = aws.create_user(&user, None).await.unwrap();
    ns.apply(cluster, &deployment("denied", 0)).unwrap();
    ns.apply(
        cluster,
        &format!(
            r#"{auth}
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {{name: denied}}
spec:
  scaleTargetRef: {{name: denied}}
  pollingInterval: 1
  triggers:{trigger}
    authenticationRef: {{name: denied-auth}}
"#,
            auth = static_keys_auth("denied-auth", &keys),
        ),
    )
    .unwrap();
    let c = wait_condition(ns, "denied", "Ready", "False/TriggerError").await;
    assert!(c.contains("AccessDenied") && c.contains(permission), "{c}");
    eprintln!("{permission} denied: {c}");
    assert_eq!(replicas(ns, "denied").await, Ok(0));
    keys
}

/// `aws-dynamodb` against the local AWS: a reader with only dynamodb:Query (static keys)
/// counts the items of one partition (`Select: COUNT`); items of another partition do not
/// count. 1 item (≤ activationTargetValue 2) leaves the Deployment at 0, 4 items take it to
/// 2 (the HPA, through the external metrics API; the table name has capitals), deleting
/// them takes it back to 0. An identity without dynamodb:Query is told so.
#[tokio::test]
async fn aws_dynamodb_scales_on_the_items_a_query_counts() {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
        ScalarAttributeType,
    };
    swell();
    let cluster = cluster();
    let aws = swell_testkit::Aws::shared();
    cluster
        .with_namespace("sc-ddb", |ns| async move {
            // Capitals: the HPA controller asks for `s0-aws-dynamodb-orderstable-…`.
            let table = format!("OrdersTable-{}", ns.name);
            let db = aws_sdk_dynamodb::Client::new(&aws.config(&aws.admin));
            let attr = |n: &str| {
                AttributeDefinition::builder()
                    .attribute_name(n)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap()
            };
            let key = |n: &str, t: KeyType| {
                KeySchemaElement::builder()
                    .attribute_name(n)
                    .key_type(t)
                    .build()
                    .unwrap()
            };
            db.create_table()
                .table_name(&table)
                .attribute_definitions(attr("queue"))
                .attribute_definitions(attr("id"))
                .key_schema(key("queue", KeyType::Hash))
                .key_schema(key("id", KeyType::Range))
                .billing_mode(BillingMode::PayPerRequest)
                .send()
                .await
                .unwrap();
            let put = |queue: &'static str, id: String| {
                let (db, table) = (db.clone(), table.clone());
                async move {
                    db.put_item()
                        .table_name(table)
                        .item("queue", AttributeValue::S(queue.into()))
                        .item("id", AttributeValue::S(id))
                        .send()
                        .await
                        .unwrap();
                }
            };
            put("work", "0".into()).await;
            for i in 0..5 {
                put("other", i.to_string()).await;
            }
            let reader = format!("ddb-reader-{}", swell_testkit::unique_suffix());
            let keys = aws
                .create_user(
                    &reader,
                    Some(swell_testkit::allow(&["dynamodb:Query"], "*")),
                )
                .await
                .unwrap();
            let trigger = |table: &str| {
                format!(
                    r##"
  - type: aws-dynamodb
    metadata:
      tableName: "{table}"
      awsRegion: "{region}"
      awsEndpoint: "{endpoint}"
      keyConditionExpression: "#q = :q"
      expressionAttributeNames: '{{"#q": "queue"}}'
      expressionAttributeValues: '{{":q": {{"S": "work"}}}}'
      targetValue: "2"
      activationTargetValue: "2""##,
                    region = aws.region,
                    endpoint = aws.endpoint,
                )
            };
            let metric = format!("s0-aws-dynamodb-{table}");
            let (op, _guard) = start_aws_app(&ns, &keys, &trigger(&table), &metric).await;
            for i in 1..4 {
                put("work", i.to_string()).await;
            }
            // 4 items / targetValue 2: the HPA takes it past the loop's 1.
            wait_replicas(&ns, "app", 2).await;
            wait_event(&ns, "KEDAScaleTargetActivated", "aws-dynamodb").await;
            assert!(
                counter(
                    &op,
                    "swell_scaler_upstream_calls_total{scaler=\"aws-dynamodb\"}"
                ) > 0.0
            );
            for i in 0..4 {
                db.delete_item()
                    .table_name(&table)
                    .key("queue", AttributeValue::S("work".into()))
                    .key("id", AttributeValue::S(i.to_string()))
                    .send()
                    .await
                    .unwrap();
            }
            wait_replicas(&ns, "app", 0).await;

            let denied = access_denied(&ns, "dynamodb:Query", &trigger(&table)).await;
            let logs = op.log_text();
            assert!(
                !logs.contains(&keys.secret_access_key)
                    && !logs.contains(&denied.secret_access_key)
            );
        })
        .await;
}

/// `aws-kinesis-stream` against the local AWS: a reader with only
/// kinesis:DescribeStreamSummary (static keys) reads the open shard count. 2 shards (≤
/// activationShardCount 2) leave the Deployment at 0; UpdateShardCount to 4 takes it to 4
/// (the HPA; the stream name has capitals), back to 2 takes it to 0. An identity without the permission is told so.
#[tokio::test]
async fn aws_kinesis_stream_scales_on_open_shards() {
    use aws_sdk_kinesis::types::ScalingType;
    swell();
    let cluster = cluster();
    let aws = swell_testkit::Aws::shared();
    cluster
        .with_namespace("sc-kin", |ns| async move {
            // Capitals: the HPA controller asks for `s0-aws-kinesis-clicks-…`.
            let stream = format!("Clicks-{}", ns.name);
            let kin = aws_sdk_kinesis::Client::new(&aws.config(&aws.admin));
            kin.create_stream()
                .stream_name(&stream)
                .shard_count(2)
                .send()
                .await
                .unwrap();
            let reshard = |n: i32| {
                let (kin, stream) = (kin.clone(), stream.clone());
                async move {
                    kin.update_shard_count()
                        .stream_name(stream)
                        .target_shard_count(n)
                        .scaling_type(ScalingType::UniformScaling)
                        .send()
                        .await
                        .unwrap();
                }
            };
            let reader = format!("kin-reader-{}", swell_testkit::unique_suffix());
            let keys = aws
                .create_user(
                    &reader,
                    Some(swell_testkit::allow(
                        &["kinesis:DescribeStreamSummary"],
                        "*",
                    )),
                )
                .await
                .unwrap();
            let trigger = format!(
                r#"
  - type: aws-kinesis-stream
    metadata:
      streamName: "{stream}"
      awsRegion: "{region}"
      awsEndpoint: "{endpoint}"
      shardCount: "1"
      activationShardCount: "2""#,
                region = aws.region,
                endpoint = aws.endpoint,
            );
            let metric = format!("s0-aws-kinesis-{stream}");
            let (op, _guard) = start_aws_app(&ns, &keys, &trigger, &metric).await;
            reshard(4).await;
            // 4 shards / shardCount 1: the HPA takes it past the loop's 1.
            wait_replicas(&ns, "app", 4).await;
            assert!(
                counter(
                    &op,
                    "swell_scaler_upstream_calls_total{scaler=\"aws-kinesis-stream\"}"
                ) > 0.0
            );
            reshard(2).await;
            wait_replicas(&ns, "app", 0).await;

            let denied = access_denied(&ns, "kinesis:DescribeStreamSummary", &trigger).await;
            let logs = op.log_text();
            assert!(
                !logs.contains(&keys.secret_access_key)
                    && !logs.contains(&denied.secret_access_key)
            );
        })
        .await;
}

/// `aws-dynamodb-streams` against the local AWS: a reader with only dynamodb:DescribeTable
/// and dynamodb:DescribeStream (static keys) counts the shards of the table's latest stream
/// (moto gives a stream one shard). 1 shard > activationShardCount 0 takes the Deployment to
/// 1 and the reading is 1; activationShardCount 1 takes it back to 0. A table without a
/// stream is said to have none; an identity without either permission is told which.
#[tokio::test]
async fn aws_dynamodb_streams_scales_on_the_streams_shards() {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        StreamSpecification, StreamViewType,
    };
    swell();
    let cluster = cluster();
    let aws = swell_testkit::Aws::shared();
    cluster
        .with_namespace("sc-ddbs", |ns| async move {
            let db = aws_sdk_dynamodb::Client::new(&aws.config(&aws.admin));
            let create = |table: String, stream: bool| {
                let db = db.clone();
                async move {
                    let spec = StreamSpecification::builder()
                        .stream_enabled(true)
                        .stream_view_type(StreamViewType::NewImage)
                        .build()
                        .unwrap();
                    db.create_table()
                        .table_name(table)
                        .attribute_definitions(
                            AttributeDefinition::builder()
                                .attribute_name("id")
                                .attribute_type(ScalarAttributeType::S)
                                .build()
                                .unwrap(),
                        )
                        .key_schema(
                            KeySchemaElement::builder()
                                .attribute_name("id")
                                .key_type(KeyType::Hash)
                                .build()
                                .unwrap(),
                        )
                        .billing_mode(BillingMode::PayPerRequest)
                        .set_stream_specification(stream.then_some(spec))
                        .send()
                        .await
                        .unwrap();
                }
            };
            // Capitals: the HPA controller asks for `s0-aws-dynamodb-streams-events-…`.
            let table = format!("Events-{}", ns.name);
            let plain = format!("plain-{}", ns.name);
            create(table.clone(), true).await;
            create(plain.clone(), false).await;
            let reader = format!("ddbs-reader-{}", swell_testkit::unique_suffix());
            let reads = ["dynamodb:DescribeTable", "dynamodb:DescribeStream"];
            let keys = aws
                .create_user(&reader, Some(swell_testkit::allow(&reads, "*")))
                .await
                .unwrap();
            let trigger = |table: &str, activation: u32| {
                format!(
                    r#"
  - type: aws-dynamodb-streams
    metadata:
      tableName: "{table}"
      awsRegion: "{region}"
      awsEndpoint: "{endpoint}"
      shardCount: "1"
      activationShardCount: "{activation}""#,
                    region = aws.region,
                    endpoint = aws.endpoint,
                )
            };
            let app = |activation: u32| {
                format!(
                    r#"{auth}
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {{name: app}}
spec:
  scaleTargetRef: {{name: app}}
  pollingInterval: 1
  cooldownPeriod: 2
  triggers:{trigger}
    authenticationRef: {{name: app-auth}}
"#,
                    auth = static_keys_auth("app-auth", &keys),
                    trigger = trigger(&table, activation),
                )
            };
            ns.apply(cluster, &deployment("app", 0)).unwrap();
            ns.apply(cluster, &app(0)).unwrap();
            let (op, _guard) = operator_with_metrics_api(cluster, &ns).await;
            wait_replicas(&ns, "app", 1).await;
            wait_condition(&ns, "app", "Active", "True").await;
            let s = so(&ns, "app").await.status.unwrap();
            let metric = format!("s0-aws-dynamodb-streams-{table}");
            assert_eq!(s.external_metric_names, Some(vec![metric.clone()]));
            wait_event(&ns, "KEDAScaleTargetActivated", "aws-dynamodb-streams").await;
            // The reading is the stream's one shard.
            wait_until("the shard count on /metrics", WAIT, || async {
                let v = scaler_value(&op, &ns.name, &metric);
                v.filter(|v| *v == 1.0).map(drop).ok_or(format!("{v:?}"))
            })
            .await;
            // 1 shard is not above activationShardCount 1.
            ns.apply(cluster, &app(1)).unwrap();
            wait_replicas(&ns, "app", 0).await;

            // A table without a stream.
            ns.apply(cluster, &deployment("plain", 0)).unwrap();
            ns.apply(
                cluster,
                &format!(
                    r#"
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {{name: plain}}
spec:
  scaleTargetRef: {{name: plain}}
  pollingInterval: 1
  triggers:{trigger}
    authenticationRef: {{name: app-auth}}
"#,
                    trigger = trigger(&plain, 0),
                ),
            )
            .unwrap();
            let c = wait_condition(&ns, "plain", "Ready", "False/TriggerError").await;
            assert!(
                c.contains("has no stream") && c.contains("enable DynamoDB Streams"),
                "{c}"
            );

            let denied = access_denied(&ns, "dynamodb:DescribeTable", &trigger(&table, 0)).await;
            let logs = op.log_text();
            assert!(
                !logs.contains(&keys.secret_access_key)
                    && !logs.contains(&denied.secret_access_key)
            );
            // DescribeTable allowed, DescribeStream not.
            ns.apply(cluster, &deployment("half", 0)).unwrap();
            let half = format!("ddbs-half-{}", swell_testkit::unique_suffix());
            let keys = aws
                .create_user(
                    &half,
                    Some(swell_testkit::allow(&["dynamodb:DescribeTable"], "*")),
                )
                .await
                .unwrap();
            ns.apply(
                cluster,
                &format!(
                    r#"{auth}
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {{name: half}}
spec:
  scaleTargetRef: {{name: half}}
  pollingInterval: 1
  triggers:{trigger}
    authenticationRef: {{name: half-auth}}
"#,
                    auth = static_keys_auth("half-auth", &keys),
                    trigger = trigger(&table, 0),
                ),
            )
            .unwrap();
            let c = wait_condition(&ns, "half", "Ready", "False/TriggerError").await;
            assert!(
                c.contains("AccessDenied") && c.contains("dynamodb:DescribeStream"),
                "{c}"
            );
        })
        .await;
}

/// The reading of `metric` of namespace `ns` on the operator's /metrics
/// (`keda_scaler_metrics_value`), if it is there.
fn scaler_value(op: &Operator, ns: &str, metric: &str) -> Option<f64> {
    // Either case: the label may carry the HPA's lowercased name.
    let text = common::scrape(op).to_lowercase();
    let ns = format!("namespace=\"{ns}\"");
    let metric = format!("metric=\"{}\"", metric.to_lowercase());
    text.lines()
        .find(|l| {
            l.starts_with("keda_scaler_metrics_value{") && l.contains(&ns) && l.contains(&metric)
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// A TriggerAuthentication's `awsSecretManager` (KEDA's): the bearer token of a metrics-api
/// trigger is a key of a JSON secret in the local Secrets Manager (moto, IAM enforced), read
/// with static credentials from a Kubernetes Secret; credentials without
/// `secretsmanager:GetSecretValue` on it are refused, and Ready names the permission. The
/// ScaledObjects sharing the authentication share one read of the secret (counted at moto),
/// and a rotation (a new AWSCURRENT version, the old token refused from then on) rebuilds
/// their triggers with the new token.
#[tokio::test(flavor = "multi_thread")]
async fn aws_secret_manager_feeds_a_trigger_authentication() {
    let cluster = cluster();
    cluster
        .with_namespace("sc-sm", |ns| async move {
            let aws = swell_testkit::Aws::shared();
            let sm = aws_sdk_secretsmanager::Client::new(&aws.config(&aws.admin));
            let name = format!("swell/{}", ns.name);
            let created = sm
                .create_secret()
                .name(&name)
                .secret_string(r#"{"token": "s3cr3t-from-sm", "other": 1}"#)
                .send()
                .await
                .unwrap();
            assert!(created.arn.is_some_and(|a| a.contains(&name)));
            let reader = aws
                .create_user(
                    &format!("{}-reader", ns.name),
                    Some(swell_testkit::allow(
                        &["secretsmanager:GetSecretValue"],
                        "*", // moto evaluates these policies on "*" only, not the ARN
                    )),
                )
                .await
                .unwrap();
            let nobody = aws
                .create_user(&format!("{}-nobody", ns.name), None)
                .await
                .unwrap();
            let source = swell_testkit::MetricServer::start(10.0).await;
            source.require_bearer("s3cr3t-from-sm");
            for (so, keys) in [("app", &reader), ("denied", &nobody)] {
                ns.apply(cluster, &deployment(so, 0)).unwrap();
                ns.apply(
                    cluster,
                    &secret_manager_app(so, keys, &aws.region, &name, &source.url),
                )
                .unwrap();
            }
            let sharing = ["app-b", "app-c", "app-d"];
            for so in sharing {
                ns.apply(cluster, &deployment(so, 0)).unwrap();
                ns.apply(cluster, &secret_manager_user(so, "app-sm", &source.url))
                    .unwrap();
            }
            let env = [("AWS_ENDPOINT_URL_SECRETS_MANAGER", aws.endpoint.as_str())];
            // Each secret in use is read again once per tick (the first, at start, finds
            // none): the build's one read, plus one per REFRESH since.
            const REFRESH: u64 = 20;
            let refresh = format!("--aws-secret-refresh-seconds={REFRESH}");
            let started = std::time::Instant::now();
            let op = Operator::start_env(
                cluster,
                swell(),
                &ns.name,
                None,
                &["--leader-elect=false", &refresh],
                &env,
            );
            for so in std::iter::once("app").chain(sharing) {
                wait_replicas(&ns, so, 1).await;
            }
            // One read for the four objects (KEDA reads it for each scaler it builds).
            let reads = secret_reads(&reader, &name);
            let bound = 1 + started.elapsed().as_secs() / REFRESH;
            assert!(
                (1..=bound as usize).contains(&reads),
                "{reads} reads of {name} for 4 objects in {:?}",
                started.elapsed()
            );

            sm.put_secret_value()
                .secret_id(&name)
                .secret_string(r#"{"token": "rotated-in-sm"}"#)
                .send()
                .await
                .unwrap();
            source.require_bearer("rotated-in-sm");
            wait_until("the rotated token to reach the source", WAIT, || async {
                match source.last_bearer() {
                    Some(t) if t == "rotated-in-sm" => Ok(()),
                    other => Err(format!("last token {:?}", other.map(|t| t.len()))),
                }
            })
            .await;
            // Every object's trigger reads with the new token (a refused one is a
            // TriggerError), and none lost its replica meanwhile.
            for name in std::iter::once("app").chain(sharing) {
                wait_until(&format!("{name}'s trigger to read again"), WAIT, || async {
                    let c = condition(&so(&ns, name).await, "Ready");
                    if c.starts_with("False/TriggerError") {
                        Err(c)
                    } else {
                        Ok(())
                    }
                })
                .await;
                assert_eq!(replicas(&ns, name).await, Ok(1), "{name}");
            }
            let c = wait_condition(&ns, "denied", "Ready", "False/ScaledObjectCheckFailed").await;
            assert!(
                c.contains("awsSecretManager")
                    && c.contains("secretsmanager:GetSecretValue")
                    && c.contains(&name),
                "{c}"
            );
            assert_eq!(replicas(&ns, "denied").await, Ok(0));
            let logs = op.log_text();
            for token in ["s3cr3t-from-sm", "rotated-in-sm", &reader.secret_access_key] {
                assert!(!logs.contains(token) && !c.contains(token));
            }
            assert!(logs.contains("has a new version"), "{logs}");
        })
        .await;
}

fn secret_manager_app(
    name: &str,
    keys: &swell_testkit::AwsKeys,
    region: &str,
    secret: &str,
    url: &str,
) -> String {
    format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: {name}-aws}}
stringData: {{id: "{id}", key: "{key}"}}
---
apiVersion: keda.sh/v1alpha1
kind: TriggerAuthentication
metadata: {{name: {name}-sm}}
spec:
  awsSecretManager:
    region: {region}
    credentials:
      accessKey: {{valueFrom: {{secretKeyRef: {{name: {name}-aws, key: id}}}}}}
      accessSecretKey: {{valueFrom: {{secretKeyRef: {{name: {name}-aws, key: key}}}}}}
    secrets:
    - {{parameter: token, name: "{secret}", secretKey: token}}
---{user}"#,
        id = keys.access_key_id,
        key = keys.secret_access_key,
        user = secret_manager_user(name, &format!("{name}-sm"), url),
    )
}

/// A ScaledObject reading the metrics-api source with the bearer token of the
/// TriggerAuthentication `auth` (one of [`secret_manager_app`]'s).
fn secret_manager_user(name: &str, auth: &str, url: &str) -> String {
    format!(
        r#"
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {{name: {name}}}
spec:
  scaleTargetRef: {{name: {name}}}
  pollingInterval: 1
  cooldownPeriod: 2
  triggers:
  - type: metrics-api
    metadata: {{url: "{url}", valueLocation: value, targetValue: "10", activationTargetValue: "3", authMode: bearer}}
    authenticationRef: {{name: {auth}}}
"#
    )
}

/// The GetSecretValue calls of `secret` moto has received signed with `keys`.
fn secret_reads(keys: &swell_testkit::AwsKeys, secret: &str) -> usize {
    let aws = swell_testkit::Aws::shared();
    aws.requests()
        .unwrap()
        .into_iter()
        .filter(|r| {
            r.action == "GetSecretValue"
                && r.param("SecretId") == Some(secret)
                && r.access_key.as_ref() == Some(&keys.access_key_id)
        })
        .count()
}

/// Puts one CloudWatch datapoint (`Swell/Test` `QueueDepth`, dimension `QueueName=queue`)
/// `ago` seconds old, as the AWS admin.
async fn put_queue_depth(queue: &str, value: f64, ago: u64) {
    let aws = swell_testkit::Aws::shared();
    let cw = aws_sdk_cloudwatch::Client::new(&aws.config(&aws.admin));
    let at = std::time::SystemTime::now() - std::time::Duration::from_secs(ago);
    let dimension = aws_sdk_cloudwatch::types::Dimension::builder()
        .name("QueueName")
        .value(queue)
        .build();
    cw.put_metric_data()
        .namespace("Swell/Test")
        .metric_data(
            aws_sdk_cloudwatch::types::MetricDatum::builder()
                .metric_name("QueueDepth")
                .dimensions(dimension)
                .timestamp(aws_sdk_cloudwatch::primitives::DateTime::from(at))
                .value(value)
                .build(),
        )
        .send()
        .await
        .unwrap();
}

/// The GetMetricData calls moto has received signed with `keys`, each as its number of
/// queries.
fn get_metric_data_calls(keys: &swell_testkit::AwsKeys) -> Vec<usize> {
    let aws = swell_testkit::Aws::shared();
    aws.requests()
        .unwrap()
        .into_iter()
        .filter(|r| {
            r.action == "GetMetricData" && r.access_key.as_ref() == Some(&keys.access_key_id)
        })
        .map(|r| {
            r.params
                .keys()
                .filter(|k| k.starts_with("MetricDataQueries.member.") && k.ends_with(".Id"))
                .count()
        })
        .collect()
}

/// 200 ScaledObjects, each with a CloudWatch trigger on its own queue's metric, read as one
/// identity: Swell asks for all 200 metrics in one GetMetricData call per polling interval
/// (⌈200/500⌉ = 1), where KEDA makes one call per trigger per poll (200). Counted at moto.
#[tokio::test(flavor = "multi_thread")]
async fn cloudwatch_triggers_share_one_call_per_polling_interval() {
    const N: usize = 200;
    const POLLING: u64 = 10;
    swell();
    let cluster = cluster();
    let aws = swell_testkit::Aws::shared();
    cluster
        .with_namespace("sc-cw-batch", |ns| async move {
            let reader = format!("cw-batch-{}", swell_testkit::unique_suffix());
            let policy = swell_testkit::allow(&["cloudwatch:GetMetricData"], "*");
            let keys = aws.create_user(&reader, Some(policy)).await.unwrap();
            let mut yaml = static_keys_auth("batch-auth", &keys);
            for i in 0..N {
                yaml.push_str(&format!(
                    r#"
---
{deployment}
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {{name: app-{i}}}
spec:
  scaleTargetRef: {{name: app-{i}}}
  pollingInterval: {POLLING}
  triggers:
  - type: aws-cloudwatch
    metadata: {{namespace: Swell/Test, metricName: QueueDepth, dimensionName: QueueName, dimensionValue: "batch-{i}",
      metricStatPeriod: "60", metricCollectionTime: "60", targetMetricValue: "5", minMetricValue: "0",
      awsRegion: "{region}", awsEndpoint: "{endpoint}"}}
    authenticationRef: {{name: batch-auth}}
"#,
                    deployment = deployment(&format!("app-{i}"), 0),
                    region = aws.region,
                    endpoint = aws.endpoint,
                ));
            }
            ns.apply(cluster, &yaml).unwrap();
            let op = Operator::start(cluster, swell(), &ns.name, None, &["--leader-elect=false"]);
            // Every trigger is in the batch once a call asks for all N.
            let full = wait_until("a GetMetricData call with all 200 queries", std::time::Duration::from_secs(300), || async {
                let calls = get_metric_data_calls(&keys);
                if calls.last() == Some(&N) { Ok(calls.len()) } else { Err(format!("calls so far (queries each): {calls:?}")) }
            })
            .await;
            let window = 3 * POLLING;
            tokio::time::sleep(std::time::Duration::from_secs(window)).await;
            let calls = get_metric_data_calls(&keys);
            let steady = &calls[full..];
            eprintln!(
                "{N} CloudWatch ScaledObjects: {} GetMetricData calls to fill the batch, then {} in {window}s \
                 ({:?} queries each); KEDA: {N} per {POLLING}s interval",
                full,
                steady.len(),
                steady
            );
            assert!(
                steady.len() <= (window / POLLING) as usize + 1,
                "more than one call per polling interval: {steady:?}"
            );
            assert!(steady.iter().all(|&q| q == N), "a call did not ask for every trigger: {steady:?}");
            let counted = counter(&op, "swell_aws_api_calls_total{service=\"cloudwatch\",operation=\"GetMetricData\"}");
            assert!(counted >= calls.len() as f64, "swell_aws_api_calls_total says {counted}, moto saw {}", calls.len());
            // $0.01 per 1,000 metrics requested.
            let cost = counter(&op, "swell_aws_estimated_cost_dollars_total{service=\"cloudwatch\",operation=\"GetMetricData\"}");
            assert!(cost >= N as f64 * 0.00001, "estimated cost {cost}");
            assert!(!op.log_text().contains(&keys.secret_access_key));
        })
        .await;
}

/// CloudWatch throttles Swell (moto answers every call of the trigger's identity with
/// `Throttling`): the replicas the metric gave (2) stay, through several backoffs and HPA
/// syncs, with the ScaledObject saying it is throttled; once AWS answers again the trigger
/// reads values again.
#[tokio::test]
async fn a_throttled_cloudwatch_holds_the_replicas() {
    swell();
    let cluster = cluster();
    let aws = swell_testkit::Aws::shared();
    cluster
        .with_namespace("sc-cw-throttle", |ns| async move {
            let reader = format!("cw-throttled-{}", swell_testkit::unique_suffix());
            let policy = swell_testkit::allow(&["cloudwatch:GetMetricData"], "*");
            let keys = aws.create_user(&reader, Some(policy)).await.unwrap();
            let trigger = format!(
                r#"
  - type: aws-cloudwatch
    metadata: {{namespace: Swell/Test, metricName: QueueDepth, dimensionName: QueueName, dimensionValue: "{queue}",
      metricStat: Maximum, metricStatPeriod: "1", metricCollectionTime: "60", targetMetricValue: "5",
      minMetricValue: "0", awsRegion: "{region}", awsEndpoint: "{endpoint}"}}"#,
                queue = ns.name,
                region = aws.region,
                endpoint = aws.endpoint,
            );
            // The HPA may scale down at once: a metric read as 0 while throttled would show.
            ns.apply(cluster, &deployment("app", 0)).unwrap();
            let advanced = "
  advanced:
    horizontalPodAutoscalerConfig:
      behavior:
        scaleDown: {stabilizationWindowSeconds: 0}";
            ns.apply(cluster, &aws_app(&keys, &trigger, advanced)).unwrap();
            let (op, _guard) = operator_with_metrics_api(cluster, &ns).await;
            wait_condition(&ns, "app", "Ready", "True").await;
            put_queue_depth(&ns.name, 10.0, 2).await;
            wait_replicas(&ns, "app", 2).await;

            aws.throttle(&keys, Some(true)).await.unwrap();
            let c = wait_condition(&ns, "app", "Ready", "False/TriggerError").await;
            assert!(c.contains("Throttling") || c.contains("throttled"), "{c}");
            // Several throttled calls (the SDK's retries, then Swell's backoffs of 5 s, 10 s,
            // …) span more than the cooldown and two HPA syncs.
            wait_until("moto to refuse 9 throttled calls", std::time::Duration::from_secs(180), || async {
                let n = aws.throttle(&keys, None).await.map_err(|e| e.to_string())?;
                if n >= 9 { Ok(()) } else { Err(format!("{n} refused")) }
            })
            .await;
            assert_eq!(replicas(&ns, "app").await, Ok(2), "throttling must never take replicas away");
            let c = condition(&so(&ns, "app").await, "Ready");
            assert!(c.contains("throttled") && c.contains("holds the replicas") || c.contains("Throttling"), "{c}");
            assert!(counter(&op, "keda_scaler_detail_errors_total") >= 1.0);

            aws.throttle(&keys, Some(false)).await.unwrap();
            wait_condition(&ns, "app", "Ready", "True").await;
            assert_eq!(replicas(&ns, "app").await, Ok(2));
            assert!(!op.log_text().contains(&keys.secret_access_key));
        })
        .await;
}
