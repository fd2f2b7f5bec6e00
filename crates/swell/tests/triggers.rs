//! Trigger inputs end to end: TriggerAuthentication sources, `…FromEnv`, and the built-in
//! scalers other than metrics-api (kubernetes-workload, cron, cpu/memory), plus /metrics.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use swell_testkit::{MetricServer, Operator, OtlpReceiver, Reply, wait_until};

#[tokio::test]
async fn trigger_authentication_and_env_feed_the_scaler() {
    let cluster = cluster();
    cluster
        .with_namespace("trg-auth", |ns| async move {
            let source = MetricServer::start(10.0).await;
            source.require_bearer("s3cr3t-t0ken");
            ns.apply(
                cluster,
                &format!(
                    r#"
apiVersion: v1
kind: Secret
metadata: {{name: api-token}}
stringData: {{token: s3cr3t-t0ken}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: api-mode}}
data: {{mode: bearer}}
---
apiVersion: keda.sh/v1alpha1
kind: TriggerAuthentication
metadata: {{name: api-auth}}
spec:
  secretTargetRef: [{{parameter: token, name: api-token, key: token}}]
  configMapTargetRef: [{{parameter: authMode, name: api-mode, key: mode}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: app}}
spec:
  replicas: 0
  selector: {{matchLabels: {{app: app}}}}
  template:
    metadata: {{labels: {{app: app}}}}
    spec:
      containers:
      - name: main
        image: nginx
        env: [{{name: METRIC_URL, value: "{url}"}}]
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {{name: app}}
spec:
  scaleTargetRef: {{name: app}}
  pollingInterval: 1
  cooldownPeriod: 2
  triggers:
  - type: metrics-api
    metadata: {{urlFromEnv: METRIC_URL, valueLocation: value, targetValue: "2", activationTargetValue: "3"}}
    authenticationRef: {{name: api-auth}}
"#,
                    url = source.url
                ),
            )
            .unwrap();
            let op = Operator::start(cluster, swell(), &ns.name, None, &["--leader-elect=false"]);
            wait_replicas(&ns, "app", 1).await;
            wait_condition(&ns, "app", "Ready", "True").await;
            let s = so(&ns, "app").await.status.unwrap();
            assert_eq!(s.authentications_types.as_deref(), Some("api-auth"));
            // The secret never reaches status, events or logs.
            let status_text = serde_json::to_string(&s).unwrap();
            assert!(!status_text.contains("s3cr3t"), "{status_text}");
            let notes = event_notes(&ns, "KEDAScalerFailed").await.join("\n") + &event_notes(&ns, "KEDAScaleTargetActivated").await.join("\n");
            assert!(!notes.contains("s3cr3t"));
            assert!(!op.log_text().contains("s3cr3t"));

            // A wrong token shows up as a scaler failure that names the endpoint, not the token.
            source.require_bearer("another");
            let c = wait_condition(&ns, "app", "Ready", "False/TriggerError").await;
            assert!(c.contains("401"), "{c}");
            assert!(!c.contains("s3cr3t"), "{c}");
            assert_eq!(replicas(&ns, "app").await, Ok(1), "errors never scale to zero");
        })
        .await;
}

#[tokio::test]
async fn kubernetes_workload_scaler_counts_pods() {
    let cluster = cluster();
    cluster
        .with_namespace("trg-workload", |ns| async move {
            ns.apply(cluster, &deployment("workers", 3)).unwrap();
            ns.apply(cluster, &deployment("app", 0)).unwrap();
            ns.apply(cluster, &deployment("by-node", 0)).unwrap();
            ns.apply(
                cluster,
                r#"
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: app}
spec:
  scaleTargetRef: {name: app}
  pollingInterval: 1
  cooldownPeriod: 2
  triggers:
  - type: kubernetes-workload
    metadata: {podSelector: app=workers, value: "1", activationValue: "2"}
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: by-node}
spec:
  scaleTargetRef: {name: by-node}
  pollingInterval: 1
  triggers:
  - type: kubernetes-workload
    metadata: {podSelector: app=workers, value: "1", activationValue: "2", groupByNode: "true"}
"#,
            )
            .unwrap();
            let _op = Operator::start(cluster, swell(), &ns.name, None, &["--leader-elect=false"]);
            wait_replicas(&ns, "app", 1).await;
            // groupByNode counts the nodes the pods run on: the cluster's one node, 1 ≤ 2.
            wait_condition(&ns, "by-node", "Active", "False").await;
            assert_eq!(replicas(&ns, "by-node").await, Ok(0));
            let s = so(&ns, "app").await.status.unwrap();
            assert_eq!(
                s.external_metric_names,
                Some(vec![format!("s0-workload-{}", ns.name)])
            );
            ns.apply(cluster, &deployment("workers", 1)).unwrap();
            wait_replicas(&ns, "app", 0).await;
        })
        .await;
}

/// Metric names with capitals from user input, read by the real HPA controller (which asks
/// for them lowercased) through Swell's external metrics API: a cron trigger in
/// `Europe/Berlin` with a `,` in its schedule (KEDA's `Cm`) holds 3 replicas, and a
/// metrics-api trigger reading `data.Count` (6 / targetValue 2) takes its Deployment to 3.
/// Swell's own loop only ever activates to 1: 3 is the HPA's doing.
#[tokio::test(flavor = "multi_thread")]
async fn hpa_reads_metric_names_with_capitals() {
    let cluster = cluster();
    cluster
        .with_namespace("trg-caps", |ns| async move {
            let source = MetricServer::start(0.0).await;
            source.set(Reply::Json(r#"{"data": {"Count": 6}}"#.into()));
            ns.apply(cluster, &deployment("cron", 0)).unwrap();
            ns.apply(cluster, &deployment("api", 0)).unwrap();
            let so = |name: &str, trigger: &str| {
                format!(
                    r#"
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {{name: {name}}}
spec:
  scaleTargetRef: {{name: {name}}}
  pollingInterval: 1
  triggers:
  - {trigger}
"#
                )
            };
            // Inside the window: the next end (every minute) comes before the next start.
            let cron = r#"{type: cron, metadata: {timezone: Europe/Berlin, start: "0 0 1 1,7 *", end: "* * * * *", desiredReplicas: "3"}}"#;
            ns.apply(cluster, &so("cron", cron)).unwrap();
            let api = format!(
                r#"{{type: metrics-api, metadata: {{url: "{}", valueLocation: data.Count, targetValue: "2"}}}}"#,
                source.url
            );
            ns.apply(cluster, &so("api", &api)).unwrap();
            let (op, _guard) = common::metrics_api::operator_with_metrics_api(cluster, &ns).await;
            for (name, metric) in [
                ("cron", "s0-cron-Europe-Berlin-0011Cm7x-xxxxx"),
                ("api", "s0-metric-api-data-Count"),
            ] {
                wait_condition(&ns, name, "Ready", "True").await;
                let names = common::so(&ns, name).await.status.unwrap().external_metric_names;
                assert_eq!(names, Some(vec![metric.to_string()]));
            }
            wait_replicas(&ns, "cron", 3).await;
            wait_replicas(&ns, "api", 3).await;
            // Every read the HPA made of these two was answered: no miss was recorded.
            // (The counter is cluster-wide: other tests' HPAs ask this APIService too.)
            assert_eq!(event_notes(&ns, "MetricNotServed").await, Vec::<String>::new());
            let count = |code: &str| {
                common::metrics_api::counter(
                    &op,
                    &format!("swell_metrics_api_requests_total{{code=\"{code}\"}}"),
                )
            };
            assert!(count("200") > 0.0);

            // A metric the ScaledObject does not serve: NotFound naming what it serves,
            // counted, logged once at warning and recorded as a Warning event on it.
            let not_found = count("404");
            let path = format!(
                "/apis/external.metrics.k8s.io/v1beta1/namespaces/{}/s1-cron-nothing?labelSelector=scaledobject.keda.sh%2Fname%3Dcron",
                ns.name
            );
            for _ in 0..3 {
                let out = cluster.kubectl().args(["get", "--raw", &path]).output().unwrap();
                let err = String::from_utf8_lossy(&out.stderr);
                assert!(!out.status.success() && err.contains("NotFound"), "{err}");
            }
            let note = wait_event(&ns, "MetricNotServed", "s1-cron-nothing").await;
            assert!(note.contains("s0-cron-Europe-Berlin-0011Cm7x-xxxxx"), "{note}");
            assert!(count("404") >= not_found + 3.0);
            let warned = op.log_text().matches("has no metric s1-cron-nothing").count();
            assert_eq!(warned, 1, "one warning per ScaledObject, not one per request");
        })
        .await;
}

#[tokio::test]
async fn cron_scaler_activates_inside_its_window() {
    let cluster = cluster();
    cluster
        .with_namespace("trg-cron", |ns| async move {
            ns.apply(cluster, &deployment("inside", 0)).unwrap();
            ns.apply(cluster, &deployment("outside", 0)).unwrap();
            // Inside: the next end (every minute) comes before the next start (1 January).
            let so = |name: &str, start: &str, end: &str| {
                format!(
                    r#"
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {{name: {name}}}
spec:
  scaleTargetRef: {{name: {name}}}
  pollingInterval: 1
  triggers:
  - type: cron
    metadata: {{timezone: Europe/Paris, start: "{start}", end: "{end}", desiredReplicas: "2"}}
"#
                )
            };
            ns.apply(cluster, &so("inside", "0 0 1 1 *", "* * * * *"))
                .unwrap();
            ns.apply(cluster, &so("outside", "* * * * *", "0 0 1 1 *"))
                .unwrap();
            let _op = Operator::start(cluster, swell(), &ns.name, None, &["--leader-elect=false"]);
            wait_replicas(&ns, "inside", 1).await;
            wait_condition(&ns, "outside", "Active", "False").await;
            assert_eq!(replicas(&ns, "outside").await, Ok(0));
            let names = common::so(&ns, "inside")
                .await
                .status
                .unwrap()
                .external_metric_names
                .unwrap();
            assert_eq!(names, vec!["s0-cron-Europe-Paris-0011x-xxxxx".to_string()]);
        })
        .await;
}

#[tokio::test]
async fn cpu_and_memory_triggers_become_resource_metrics() {
    let cluster = cluster();
    cluster
        .with_namespace("trg-resource", |ns| async move {
            let source = MetricServer::start(0.0).await;
            ns.apply(cluster, &deployment("app", 2)).unwrap();
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
  minReplicaCount: 1
  triggers:
  - type: cpu
    metricType: Utilization
    metadata: {{value: "60"}}
  - type: memory
    metricType: AverageValue
    metadata: {{value: 512Mi, containerName: nginx}}
  - type: metrics-api
    metadata: {{url: "{url}", valueLocation: value, targetValue: "2"}}
"#,
                    url = source.url
                ),
            )
            .unwrap();
            let op = Operator::start(cluster, swell(), &ns.name, None, &["--leader-elect=false"]);
            wait_condition(&ns, "app", "Ready", "True").await;
            let hpa = ns
                .api::<HorizontalPodAutoscaler>()
                .get("keda-hpa-app")
                .await
                .unwrap();
            let metrics = hpa.spec.metrics.unwrap();
            let types: Vec<&str> = metrics.iter().map(|m| m.type_.as_str()).collect();
            assert_eq!(types, vec!["ContainerResource", "External", "Resource"]);
            let cpu = metrics[2].resource.clone().unwrap();
            assert_eq!(
                (
                    cpu.name.as_str(),
                    cpu.target.type_.as_str(),
                    cpu.target.average_utilization
                ),
                ("cpu", "Utilization", Some(60))
            );
            let mem = metrics[0].container_resource.clone().unwrap();
            assert_eq!(
                (
                    mem.container.as_str(),
                    mem.target.average_value.map(|q| q.0)
                ),
                ("nginx", Some("512Mi".to_string()))
            );
            let s = so(&ns, "app").await.status.unwrap();
            assert_eq!(
                s.resource_metric_names,
                Some(vec!["cpu".to_string(), "memory".to_string()])
            );

            // KEDA's Prometheus names on the operator's HTTPS endpoint.
            source.set(Reply::Value(1.0));
            let addr = op
                .metrics_addr()
                .expect("the operator logs its metrics address");
            let text = wait_until_metrics(&addr).await;
            for want in [
                "keda_build_info{",
                "keda_scaler_metrics_value{",
                "keda_scaler_active{",
                "keda_internal_scale_loop_latency_seconds{",
                "keda_scaled_object_paused{",
                "keda_resource_registered_total{",
                "keda_trigger_registered_total{type=\"metrics-api\"} 1",
            ] {
                assert!(text.contains(want), "{want} missing from /metrics:\n{text}");
            }
            assert!(text.contains("scaledObject=\"app\""), "{text}");
            let loop_latency = format!(
                "keda_internal_scale_loop_latency_seconds{{namespace=\"{}\",type=\"scaledobject\",resource=\"app\"}}",
                ns.name
            );
            assert!(text.contains(&loop_latency), "KEDA's loop latency labels:\n{text}");

            // A deleted ScaledObject's series leave /metrics, as under KEDA.
            ns.api::<swell_api::ScaledObject>().delete("app", &Default::default()).await.unwrap();
            wait_until("the deleted ScaledObject's series to leave /metrics", WAIT, || async {
                let text = metrics_text(&addr);
                // The HTTP request and empty-answer counters stay, as in KEDA.
                let ours = |l: &&str| l.contains("scaledObject=\"app\"") || l.contains(",resource=\"app\"");
                match text.lines().find(ours) {
                    None if text.contains("keda_build_info{") => Ok(()),
                    None => Err(format!("no answer: {text}")),
                    Some(l) => Err(l.to_string()),
                }
            })
            .await;
        })
        .await;
}

/// KEDA's scaler HTTP metrics and empty-answer counter, on plain HTTP /metrics: each
/// trigger's requests by status code, their durations, and a prometheus query that
/// matched nothing.
#[tokio::test]
async fn scaler_requests_and_empty_answers_are_metered() {
    let cluster = cluster();
    cluster
        .with_namespace("trg-http-metrics", |ns| async move {
            let ok = MetricServer::start(3.0).await;
            let down = MetricServer::start(0.0).await;
            down.set(Reply::Fail(503));
            let empty = MetricServer::start(0.0).await;
            empty.set(Reply::Json(
                r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#.into(),
            ));
            ns.apply(cluster, &deployment("app", 1)).unwrap();
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
  minReplicaCount: 1
  triggers:
  - type: metrics-api
    name: ok
    metadata: {{url: "{ok}", valueLocation: value, targetValue: "2"}}
  - type: metrics-api
    metadata: {{url: "{down}", valueLocation: value, targetValue: "2"}}
  - type: prometheus
    name: empty
    metadata: {{serverAddress: "{empty}", query: "up", threshold: "1"}}
"#,
                    ok = ok.url,
                    down = down.url,
                    empty = empty.url
                ),
            )
            .unwrap();
            let op = Operator::start(cluster, swell(), &ns.name, None, &["--leader-elect=false"]);
            let n = &ns.name;
            let requests = |trigger: &str, scaler: &str, metric: &str, code: &str| {
                format!(
                    "keda_scaler_http_requests_total{{namespace=\"{n}\",scaled_resource=\"app\",scaler=\"{scaler}\",trigger_name=\"{trigger}\",metric_name=\"{metric}"
                ) + &format!("\",status_code=\"{code}\"}} ")
            };
            let text = wait_metrics(
                &op,
                &[
                    requests("ok", "metrics-api", "s0-metric-api-value", "200"),
                    requests("", "metrics-api", "s1-metric-api-value", "503"),
                    requests("empty", "prometheus", "s2-prometheus", "200"),
                    "keda_scaler_http_request_duration_seconds_bucket{le=\"+Inf\",scaler=\"prometheus\",status_code=\"200\"} ".into(),
                    "keda_scaler_http_request_duration_seconds_count{scaler=\"metrics-api\",status_code=\"503\"} ".into(),
                    format!("keda_scaler_empty_upstream_responses_total{{namespace=\"{n}\",scaledResource=\"app\",triggerName=\"empty\",metricName=\"s2-prometheus\",resourceType=\"ScaledObject\",ignoreNullValues=\"true\"}} "),
                ],
            )
            .await;
            // Only the prometheus trigger's empty answers count.
            let empties = text
                .lines()
                .filter(|l| l.starts_with("keda_scaler_empty_upstream_responses_total{"))
                .count();
            assert_eq!(empties, 1, "{text}");
        })
        .await;
}

/// `--enable-opentelemetry-metrics`: the operator pushes KEDA's `keda.*` instruments, with
/// KEDA's attributes, over OTLP/HTTP to a local receiver.
#[tokio::test]
async fn opentelemetry_metrics_reach_an_otlp_receiver() {
    let cluster = cluster();
    cluster
        .with_namespace("trg-otel", |ns| async move {
            let receiver = OtlpReceiver::start();
            let source = MetricServer::start(3.0).await;
            ns.apply(cluster, &deployment("app", 1)).unwrap();
            ns.apply(
                cluster,
                &scaled_object("app", "app", &source.url, "  minReplicaCount: 1"),
            )
            .unwrap();
            let _op = Operator::start_env(
                cluster,
                swell(),
                &ns.name,
                None,
                &[
                    "--leader-elect=false",
                    "--enable-opentelemetry-metrics=true",
                ],
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint.as_str()),
                    ("OTEL_METRIC_EXPORT_INTERVAL", "1000"),
                ],
            );
            let n = ns.name.clone();
            let has = |name: &str, want: &[(&str, &str)]| {
                let points = receiver.points(name);
                let found = points.iter().find(|p| {
                    want.iter()
                        .all(|(k, v)| p.attributes.iter().any(|(pk, pv)| pk == k && pv == v))
                });
                found
                    .map(|p| p.value)
                    .ok_or(format!("{name} {want:?} not among {points:?}"))
            };
            wait_until("KEDA's instruments at the OTLP receiver", WAIT, || async {
                let scaler = [
                    ("namespace", n.as_str()),
                    ("scaledObject", "app"),
                    ("scaler", "metrics-api"),
                    ("scalerIndex", "0"),
                    ("metric", "s0-metric-api-value"),
                ];
                let value = has("keda.scaler.metrics.value", &scaler)?;
                if value != 3.0 {
                    return Err(format!("keda.scaler.metrics.value is {value}"));
                }
                has("keda.scaler.active", &scaler)?;
                has("keda.scaler.metrics.latency.seconds", &scaler)?;
                has(
                    "keda.internal.scale.loop.latency.seconds",
                    &[
                        ("namespace", n.as_str()),
                        ("type", "scaledobject"),
                        ("name", "app"),
                    ],
                )?;
                has("keda.build.info", &[("goversion", "rust")])?;
                has(
                    "keda.resource.registered.count",
                    &[("namespace", n.as_str())],
                )?;
                has("keda.trigger.registered.count", &[("type", "metrics-api")])?;
                has(
                    "keda.scaler.http.requests.count",
                    &[
                        ("namespace", n.as_str()),
                        ("scaled_resource", "app"),
                        ("scaler", "metrics-api"),
                        ("metric_name", "s0-metric-api-value"),
                        ("status_code", "200"),
                    ],
                )?;
                has(
                    "keda.scaler.http.request.duration.seconds",
                    &[("scaler", "metrics-api"), ("status_code", "200")],
                )?;
                Ok(())
            })
            .await;
        })
        .await;
}

fn metrics_text(addr: &str) -> String {
    let out = std::process::Command::new("curl")
        .args(["-sk", &format!("http://{addr}/metrics")])
        .output()
        .map(|o| o.stdout)
        .unwrap_or_default();
    String::from_utf8_lossy(&out).into_owned()
}

async fn wait_until_metrics(addr: &str) -> String {
    // The loop latency is recorded when a whole pass is done, after its scaler values.
    wait_until(
        "/metrics to show a finished scale loop pass",
        WAIT,
        || async {
            let text = metrics_text(addr);
            if text.contains("keda_scaler_metrics_value{")
                && text.contains("keda_internal_scale_loop_latency_seconds{")
            {
                Ok(text)
            } else {
                Err(text)
            }
        },
    )
    .await
}

/// A metrics-api source behind a bearer token from a Secret, through a
/// TriggerAuthentication (`authMode: bearer`).
fn bearer_app(name: &str, secret: &str, url: &str, polling: u32) -> String {
    format!(
        r#"
apiVersion: keda.sh/v1alpha1
kind: TriggerAuthentication
metadata: {{name: {name}-auth}}
spec:
  secretTargetRef: [{{parameter: token, name: {secret}, key: token}}]
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {{name: {name}}}
spec:
  scaleTargetRef: {{name: {name}}}
  pollingInterval: {polling}
  triggers:
  - type: metrics-api
    metadata: {{url: "{url}", valueLocation: value, targetValue: "2", authMode: bearer}}
    authenticationRef: {{name: {name}-auth}}
"#
    )
}

fn token_secret(name: &str, token: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}}}\nstringData: {{token: {token}}}\n"
    )
}

/// Credentials that rotate, with no change to the ScaledObject (its generation stays):
/// 1. the source starts wanting a new token, so the trigger fails; the Secret gets the new
///    token and the scalers, rebuilt after the failure as KEDA's `refreshScaler` does,
///    read it: healthy again within about one pollingInterval;
/// 2. with a 300 s pollingInterval (no poll would come for minutes), the
///    TriggerAuthentication is pointed at another Secret: its watch rebuilds the scalers
///    at once and the new loop reads with the new token straight away.
#[tokio::test]
async fn rotated_secret_and_trigger_authentication_are_picked_up() {
    let cluster = cluster();
    cluster
        .with_namespace("trg-rotate", |ns| async move {
            let source = MetricServer::start(10.0).await;
            source.require_bearer("first-token");
            let slow = MetricServer::start(10.0).await;
            slow.require_bearer("alpha-token");
            for (name, token) in [("rotating", "first-token"), ("alpha", "alpha-token"), ("beta", "beta-token")] {
                ns.apply(cluster, &token_secret(name, token)).unwrap();
            }
            ns.apply(cluster, &deployment("app", 0)).unwrap();
            ns.apply(cluster, &deployment("slow", 0)).unwrap();
            ns.apply(cluster, &bearer_app("app", "rotating", &source.url, 2)).unwrap();
            ns.apply(cluster, &bearer_app("slow", "alpha", &slow.url, 300)).unwrap();
            let op = Operator::start(cluster, swell(), &ns.name, None, &["--leader-elect=false"]);
            wait_replicas(&ns, "app", 1).await;
            wait_replicas(&ns, "slow", 1).await;
            wait_triggers_ready(&ns, "app").await;
            let generation = common::so(&ns, "app").await.metadata.generation;

            // 1. The Secret rotates.
            source.require_bearer("second-token");
            let c = wait_condition(&ns, "app", "Ready", "False/TriggerError").await;
            assert!(c.contains("401"), "{c}");
            let fixed = std::time::Instant::now();
            ns.apply(cluster, &token_secret("rotating", "second-token")).unwrap();
            wait_triggers_ready(&ns, "app").await;
            eprintln!(
                "rotation: Secret fixed → Ready True in {:.1}s (pollingInterval 2s)",
                fixed.elapsed().as_secs_f64()
            );
            assert_eq!(common::so(&ns, "app").await.metadata.generation, generation);
            assert_eq!(replicas(&ns, "app").await, Ok(1));

            // 2. The TriggerAuthentication rotates, long before the next poll.
            slow.require_bearer("beta-token");
            let before = slow.requests();
            let patched = std::time::Instant::now();
            ns.apply(cluster, &bearer_app("slow", "beta", &slow.url, 300)).unwrap();
            wait_until("the slow ScaledObject to poll with the new token", WAIT, || async {
                let ready = condition(&common::so(&ns, "slow").await, "Ready");
                if slow.requests() > before && triggers_ready(&ready) {
                    Ok(())
                } else {
                    Err(format!("{} requests since, Ready {ready}", slow.requests() - before))
                }
            })
            .await;
            eprintln!(
                "rotation: TriggerAuthentication changed → polled with its Secret in {:.1}s (pollingInterval 300s)",
                patched.elapsed().as_secs_f64()
            );
            // 3. The Secret changes while its old value still works: nothing fails, so only
            // the Secret watch can tell; the next poll uses the new value.
            source.accept_any_bearer();
            let changed = std::time::Instant::now();
            ns.apply(cluster, &token_secret("rotating", "third-token")).unwrap();
            wait_until("the poll to send the changed Secret's token", WAIT, || async {
                match source.last_bearer() {
                    Some(t) if t == "third-token" => Ok(()),
                    other => Err(format!("last token {other:?}")),
                }
            })
            .await;
            eprintln!(
                "rotation: Secret changed (old value still valid) → used in {:.1}s (pollingInterval 2s)",
                changed.elapsed().as_secs_f64()
            );
            assert!(triggers_ready(&condition(&common::so(&ns, "app").await, "Ready")));
            assert!(op.log_text().contains("credentials changed"));
            let logs = op.log_text();
            assert!(!logs.contains("second-token") && !logs.contains("beta-token"));
            assert!(!logs.contains("third-token"));
        })
        .await;
}

/// Ready as far as the triggers go: True, or False only because the HPA cannot read the
/// metric (operators started without the external metrics API, as here).
fn triggers_ready(ready: &str) -> bool {
    ready.starts_with("True") || ready.starts_with("False/FailedGetExternalMetric")
}

async fn wait_triggers_ready(ns: &swell_testkit::TestNamespace, name: &str) -> String {
    wait_until(&format!("{name}'s triggers to be ready"), WAIT, || async {
        let c = condition(&common::so(ns, name).await, "Ready");
        if triggers_ready(&c) { Ok(c) } else { Err(c) }
    })
    .await
}

/// KEDA's scalingModifiers through the real HPA: two triggers combined by a formula give a
/// replica count neither gives alone, activation follows the composite, a failing source is
/// a `KEDAMetricSourceFailed` event, and `behavior: scalingModifiers` makes it nil for `??`.
#[tokio::test]
async fn scaling_modifiers_scale_on_the_composite_metric() {
    let cluster = cluster();
    cluster
        .with_namespace("trg-formula", |ns| async move {
            let a = MetricServer::start(3.0).await;
            let b = MetricServer::start(5.0).await;
            ns.apply(cluster, &deployment("app", 0)).unwrap();
            let so = format!(
                r#"
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {{name: app}}
spec:
  scaleTargetRef: {{name: app}}
  pollingInterval: 1
  cooldownPeriod: 2
  maxReplicaCount: 10
  fallback: {{failureThreshold: 1, replicas: 4, behavior: scalingModifiers}}
  advanced:
    scalingModifiers: {{formula: "(a ?? 6) + b", target: "2", activationTarget: "9"}}
  triggers:
  - {{type: metrics-api, name: a, metadata: {{url: "{}", valueLocation: value, targetValue: "2"}}}}
  - {{type: metrics-api, name: b, metadata: {{url: "{}", valueLocation: value, targetValue: "2"}}}}
"#,
                a.url, b.url
            );
            ns.apply(cluster, &so).unwrap();
            let (op, _guard) = common::metrics_api::operator_with_metrics_api(cluster, &ns).await;
            wait_condition(&ns, "app", "Ready", "True").await;
            let status = common::so(&ns, "app").await.status.unwrap();
            assert_eq!(
                status.composite_scaler_name.as_deref(),
                Some("composite-metric")
            );
            let hpa = ns
                .api::<HorizontalPodAutoscaler>()
                .get("keda-hpa-app")
                .await
                .unwrap();
            let metrics = hpa.spec.metrics.unwrap_or_default();
            let names: Vec<String> = metrics
                .iter()
                .filter_map(|m| m.external.as_ref().map(|e| e.metric.name.clone()))
                .collect();
            assert_eq!(names, ["composite-metric"]);

            // 3 + 5 = 8 is not above activationTarget 9, though each trigger is active alone.
            wait_condition(&ns, "app", "Active", "False").await;
            tokio::time::sleep(Duration::from_secs(3)).await;
            assert_eq!(replicas(&ns, "app").await, Ok(0));

            // 3 + 7 = 10: active, and the HPA lands on 10 / 2 = 5 (a alone: 2, b alone: 4).
            b.set(Reply::Value(7.0));
            wait_replicas(&ns, "app", 5).await;
            let raw = read_composite(cluster, &ns.name).await;
            assert!(raw.contains(r#""value":"10""#), "{raw}");
            // The composite's value on /metrics, under KEDA's scaler name for it.
            let text = wait_until_metrics(&op.metrics_addr().unwrap()).await;
            let line = text
                .lines()
                .find(|l| {
                    l.starts_with("keda_scaler_metrics_value{")
                        && l.contains(r#"scaler="composite-metric""#)
                })
                .unwrap_or_else(|| panic!("no composite-metric value in:\n{text}"));
            assert!(line.ends_with(" 10") || line.ends_with(" 10.0"), "{line}");

            // a fails: first a KEDAMetricSourceFailed naming it; past failureThreshold it is
            // nil under behavior scalingModifiers, so `a ?? 6` gives 6 + 7 = 13 → 7 replicas.
            a.set(Reply::Fail(500));
            let note = wait_event(&ns, "KEDAMetricSourceFailed", "s0-metric-api-value").await;
            assert!(note.contains("500"), "{note}");
            wait_replicas(&ns, "app", 7).await;

            // Back to zero once the composite is not above the activation target.
            a.set(Reply::Value(0.0));
            b.set(Reply::Value(1.0));
            wait_replicas(&ns, "app", 0).await;
        })
        .await;
}

/// The composite metric as the HPA reads it, through the API server's aggregation layer.
async fn read_composite(cluster: &swell_testkit::Cluster, ns: &str) -> String {
    let path = format!(
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/composite-metric?labelSelector=scaledobject.keda.sh%2Fname%3Dapp"
    );
    wait_until("composite-metric to be served", WAIT, || async {
        let out = kubectl_output(cluster, &["get", "--raw", &path]).await;
        let body = String::from_utf8_lossy(&out.stdout).to_string();
        if out.status.success() && body.contains(r#""value":"10""#) {
            Ok(body)
        } else {
            Err(format!("{body}{}", String::from_utf8_lossy(&out.stderr)))
        }
    })
    .await
}

/// keda#5486 ("it often does not scale on the actual target value"): inside the HPA's ±10%
/// dead band a changed value never moves the replicas. Swell's opt-in exact targets (the
/// HPA's tolerance 0) land them on ceil(value / target).
#[tokio::test]
async fn exact_targets_remove_the_hpa_dead_band() {
    let cluster = cluster();
    cluster
        .with_namespace("trg-exact", |ns| async move {
            let source = MetricServer::start(100.0).await;
            ns.apply(cluster, &deployment("app", 0)).unwrap();
            let so = format!(
                r#"
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {{name: app}}
spec:
  scaleTargetRef: {{name: app}}
  pollingInterval: 1
  maxReplicaCount: 20
  triggers:
  - {{type: metrics-api, metadata: {{url: "{}", valueLocation: value, targetValue: "10", activationTargetValu: "1"}}}}
"#,
                source.url
            );
            ns.apply(cluster, &so).unwrap();
            let (_op, _guard) = common::metrics_api::operator_with_metrics_api(cluster, &ns).await;
            wait_replicas(&ns, "app", 10).await;
            // A misspelt key is accepted and named, as KEDA's KEDAScalerInfo does.
            let info = wait_event(&ns, "KEDAScalerInfo", "activationTargetValu").await;
            assert!(info.contains("did you mean activationTargetValue?"), "{info}");
            // 105 / (10 × 10) = 1.05, inside the default 10% tolerance: KEDA's behaviour.
            source.set(Reply::Value(105.0));
            tokio::time::sleep(Duration::from_secs(5)).await;
            assert_eq!(replicas(&ns, "app").await, Ok(10));

            annotate(
                &ns,
                "app",
                "autoscaling.swell.dev/exact-targets",
                Some("true"),
            )
            .await;
            wait_replicas(&ns, "app", 11).await;
            let hpa = ns
                .api::<HorizontalPodAutoscaler>()
                .get("keda-hpa-app")
                .await
                .unwrap();
            let behavior = hpa.spec.behavior.unwrap_or_default();
            let tolerance = behavior.scale_up.and_then(|r| r.tolerance).map(|q| q.0);
            assert_eq!(tolerance.as_deref(), Some("0"));
            // Down too: 95 is inside the band below, and lands on 10.
            source.set(Reply::Value(95.0));
            wait_replicas(&ns, "app", 10).await;

            // A value that is not a boolean is refused, naming the annotation.
            annotate(
                &ns,
                "app",
                "autoscaling.swell.dev/exact-targets",
                Some("yes"),
            )
            .await;
            let ready = wait_condition(&ns, "app", "Ready", "False").await;
            assert!(
                ready.contains("autoscaling.swell.dev/exact-targets"),
                "{ready}"
            );
        })
        .await;
}

/// keda#7649: Ready tells the truth about scaling. The APIService pointed at a port nothing
/// serves: the HPA cannot get the metric, and Ready turns False with the HPA's reason; put
/// back, Ready recovers.
#[tokio::test]
async fn ready_says_when_the_hpa_cannot_read_the_metric() {
    let cluster = cluster();
    cluster
        .with_namespace("trg-ready", |ns| async move {
            let source = MetricServer::start(4.0).await;
            ns.apply(cluster, &deployment("app", 0)).unwrap();
            ns.apply(cluster, &scaled_object("app", "app", &source.url, ""))
                .unwrap();
            let (_op, _guard) = common::metrics_api::operator_with_metrics_api(cluster, &ns).await;
            wait_replicas(&ns, "app", 2).await;
            wait_condition(&ns, "app", "HPAActive", "True/HPAActive").await;
            wait_condition(&ns, "app", "Ready", "True/ScaledObjectReady").await;

            let apiservice = "apiservice/v1beta1.external.metrics.k8s.io";
            let port = kubectl(
                cluster,
                &["get", apiservice, "-o", "jsonpath={.spec.service.port}"],
            )
            .await;
            let patch = |port: String| format!(r#"{{"spec":{{"service":{{"port":{port}}}}}}}"#);
            let unused = common::metrics_api::free_port().to_string();
            kubectl(
                cluster,
                &["patch", apiservice, "--type=merge", "-p", &patch(unused)],
            )
            .await;
            let ready = wait_condition(&ns, "app", "Ready", "False/FailedGetExternalMetric").await;
            assert!(ready.contains("s0-metric-api-value"), "{ready}");

            kubectl(
                cluster,
                &["patch", apiservice, "--type=merge", "-p", &patch(port)],
            )
            .await;
            wait_condition(&ns, "app", "Ready", "True/ScaledObjectReady").await;
            wait_condition(&ns, "app", "HPAActive", "True/HPAActive").await;
        })
        .await;
}

/// kubectl run off the runtime (it blocks; the runtime also serves the metric sources).
async fn kubectl_output(cluster: &swell_testkit::Cluster, args: &[&str]) -> std::process::Output {
    let mut cmd = cluster.kubectl();
    cmd.args(args);
    tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap()
}

/// kubectl's stdout; a failure fails the test.
async fn kubectl(cluster: &swell_testkit::Cluster, args: &[&str]) -> String {
    let out = kubectl_output(cluster, args).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "kubectl {args:?}: {stderr}");
    String::from_utf8_lossy(&out.stdout).to_string()
}
