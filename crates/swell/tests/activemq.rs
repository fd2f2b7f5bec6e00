//! The `activemq` scaler against a real ActiveMQ 5.17 broker (Debian's activemq with the
//! Jolokia JVM agent at /api/jolokia, started by `hack/activemq.sh`; basic auth, CORS strict
//! checking): a queue's QueueSize through KEDA's URL template and through
//! `restAPITemplate`, one HTTP client and one reading shared by triggers, a missing queue, a
//! server that is down, a wrong password and a refused Origin; and a Deployment scaled
//! 0 → 3 → 0 by the real HPA.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::metrics_api::{counter, free_port, operator_with_metrics_api};
use common::*;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use serde_json::json;
use swell_scalers::upstream::UpstreamKind;
use swell_scalers::{RawParams, ScalerError, Shared, TriggerInput, map};
use swell_testkit::{ActiveMq, unique_suffix};

fn trigger(index: usize, meta: &[(&str, &str)], auth: &[(&str, &str)]) -> TriggerInput {
    TriggerInput {
        index,
        type_: "activemq".into(),
        params: RawParams {
            trigger_index: index,
            metadata: map(meta),
            auth: map(auth),
            ..Default::default()
        },
        polling_interval: Duration::from_secs(30),
        ..Default::default()
    }
}

fn broker(mq: &ActiveMq) -> String {
    format!("org.apache.activemq:type=Broker,brokerName={}", mq.broker)
}

fn mbean(mq: &ActiveMq, queue: &str) -> String {
    format!(
        "{},destinationType=Queue,destinationName={queue}",
        broker(mq)
    )
}

/// A Jolokia `exec` as the test user; its `value`.
async fn exec(
    mq: &ActiveMq,
    mbean: &str,
    operation: &str,
    arguments: serde_json::Value,
) -> serde_json::Value {
    let body =
        json!({"type": "exec", "mbean": mbean, "operation": operation, "arguments": arguments});
    let resp: serde_json::Value = reqwest::Client::new()
        .post(mq.jolokia())
        .basic_auth(&mq.user, Some(&mq.password))
        .header("Origin", format!("http://{}", mq.endpoint))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resp["status"], 200, "{operation}: {resp}");
    resp["value"].clone()
}

/// A new queue, its name.
async fn queue(mq: &ActiveMq) -> String {
    let name = format!("jobs-{}", unique_suffix());
    exec(mq, &broker(mq), "addQueue(java.lang.String)", json!([name])).await;
    name
}

async fn send(mq: &ActiveMq, queue: &str, n: usize) {
    for i in 0..n {
        let args = json!([format!("job {i}")]);
        exec(
            mq,
            &mbean(mq, queue),
            "sendTextMessage(java.lang.String)",
            args,
        )
        .await;
    }
}

async fn purge(mq: &ActiveMq, queue: &str) {
    exec(mq, &mbean(mq, queue), "purge()", json!([])).await;
}

fn fields<'a>(mq: &'a ActiveMq, endpoint: &'a str, queue: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("managementEndpoint", endpoint),
        ("brokerName", mq.broker.as_str()),
        ("destinationName", queue),
        ("targetQueueSize", "2"),
    ]
}

async fn sample(meta: &[(&str, &str)], auth: &[(&str, &str)]) -> Result<f64, ScalerError> {
    let s = swell_scalers::build(&trigger(0, meta, auth), &Shared::default()).unwrap();
    s.sample().await.map(|s| s.value)
}

/// KEDA's template from the fields and the same URL as a restAPITemplate read the size;
/// two triggers share one HTTP client and one reading; a missing queue is Jolokia's 404.
#[tokio::test(flavor = "multi_thread")]
async fn activemq_reads_the_queue_size() {
    let mq = ActiveMq::shared();
    let q = queue(mq).await;
    send(mq, &q, 3).await;
    let auth = [
        ("username", mq.user.as_str()),
        ("password", mq.password.as_str()),
    ];
    let meta = fields(mq, &mq.endpoint, &q);
    assert_eq!(sample(&meta, &auth).await.unwrap(), 3.0);
    let template = format!(
        "http://{}/api/jolokia/read/{}/QueueSize",
        mq.endpoint,
        mbean(mq, &q)
    );
    let t = [("restAPITemplate", template.as_str())];
    assert_eq!(sample(&t, &auth).await.unwrap(), 3.0);

    let shared = Shared::default();
    let a = swell_scalers::build(&trigger(0, &meta, &auth), &shared).unwrap();
    let b = swell_scalers::build(&trigger(1, &meta, &auth), &shared).unwrap();
    assert_eq!(a.metric_spec().name(), format!("s0-activemq-{q}"));
    let (sa, sb) = (a.sample().await.unwrap(), b.sample().await.unwrap());
    assert_eq!((sa.value, sa.active, sb.value), (3.0, true, 3.0));
    let calls = shared
        .upstream_calls
        .get_or_create(&vec![("scaler", "activemq".to_string())])
        .get();
    assert_eq!(calls, 1, "the second trigger reused the first reading");
    assert_eq!(shared.http.len(), 1, "one HTTP client");

    let e = sample(&fields(mq, &mq.endpoint, "no-such-queue"), &auth)
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains(&format!(
            "activemq GET http://{}/api/jolokia/read/",
            mq.endpoint
        )) && msg.contains("Jolokia status 404: javax.management.InstanceNotFoundException"),
        "{msg}"
    );
    assert_eq!(e.upstream().map(|u| u.kind), Some(UpstreamKind::NotFound));
    purge(mq, &q).await;
    assert_eq!(sample(&meta, &auth).await.unwrap(), 0.0);
}

/// A server nobody listens on, a wrong password and an Origin Jolokia does not allow: the
/// error names the URL and the cause, and says its kind; never the password.
#[tokio::test(flavor = "multi_thread")]
async fn activemq_errors_name_the_server_and_the_cause() {
    let mq = ActiveMq::shared();
    let q = queue(mq).await;
    let kind = |e: &ScalerError| e.upstream().map(|u| u.kind);
    let down = format!("127.0.0.1:{}", free_port());
    let auth = [
        ("username", mq.user.as_str()),
        ("password", mq.password.as_str()),
    ];
    let e = sample(&fields(mq, &down, &q), &auth).await.unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("activemq GET http://{down}/api/jolokia/"))
            && msg.contains("refused"),
        "{msg}"
    );
    assert_eq!(kind(&e), Some(UpstreamKind::Connect));

    let wrong = [
        ("username", mq.user.as_str()),
        ("password", "not-the-password"),
    ];
    let e = sample(&fields(mq, &mq.endpoint, &q), &wrong)
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("401 Unauthorized (check username and password)"),
        "{msg}"
    );
    assert!(!msg.contains("not-the-password"), "{msg}");
    assert_eq!(kind(&e), Some(UpstreamKind::Auth));

    let mut evil = fields(mq, &mq.endpoint, &q);
    evil.push(("corsHeader", "http://evil.example"));
    let e = sample(&evil, &auth).await.unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains(
            "Jolokia status 403: java.lang.Exception : Origin http://evil.example is not allowed"
        ),
        "{msg}"
    );
    assert_eq!(kind(&e), Some(UpstreamKind::Auth));
}

/// 0 → 3 → 0: 9 messages at targetQueueSize 3 is 3 replicas; purging the queue takes the
/// Deployment back to 0. The credentials come from a TriggerAuthentication's Secret and the
/// metric is named as KEDA names it. A ScaledObject with a wrong password gets
/// KEDAScalerFailed and stays put.
#[tokio::test(flavor = "multi_thread")]
async fn activemq_scales_through_the_hpa() {
    swell();
    let cluster = cluster();
    let mq = ActiveMq::shared();
    cluster
        .with_namespace("sc-activemq", |ns| async move {
            let q = queue(mq).await;
            let auth = |name: &str, password: &str| {
                format!(
                    "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}}}\nstringData: {{username: \"{}\", password: \"{password}\"}}\n---\napiVersion: keda.sh/v1alpha1\nkind: TriggerAuthentication\nmetadata: {{name: {name}}}\nspec:\n  secretTargetRef:\n  - {{parameter: username, name: {name}, key: username}}\n  - {{parameter: password, name: {name}, key: password}}\n",
                    mq.user
                )
            };
            let so = |name: &str, auth: &str| {
                format!(
                    r#"
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {{name: {name}}}
spec:
  scaleTargetRef: {{name: {name}}}
  pollingInterval: 1
  cooldownPeriod: 2
  maxReplicaCount: 10
  triggers:
  - type: activemq
    metadata:
      managementEndpoint: "{}"
      brokerName: "{}"
      destinationName: "{q}"
      targetQueueSize: "3"
    authenticationRef: {{name: {auth}}}
"#,
                    mq.endpoint, mq.broker
                )
            };
            ns.apply(cluster, &auth("mq-auth", &mq.password)).unwrap();
            ns.apply(cluster, &auth("mq-wrong", "not-the-password")).unwrap();
            for name in ["app", "wrong"] {
                ns.apply(cluster, &deployment(name, 0)).unwrap();
            }
            ns.apply(cluster, &so("app", "mq-auth")).unwrap();
            ns.apply(cluster, &so("wrong", "mq-wrong")).unwrap();

            let (op, _guard) = operator_with_metrics_api(cluster, &ns).await;
            wait_condition(&ns, "app", "Ready", "True").await;
            wait_condition(&ns, "app", "Active", "False").await;
            let e = wait_event(&ns, "KEDAScalerFailed", "401 Unauthorized").await;
            assert!(e.contains("activemq GET http://") && !e.contains("not-the-password"), "{e}");

            send(mq, &q, 9).await;
            wait_replicas(&ns, "app", 3).await;
            wait_event(&ns, "KEDAScaleTargetActivated", "from 0 to 1").await;
            let hpa = ns.api::<HorizontalPodAutoscaler>().get("keda-hpa-app").await.unwrap();
            let metric = hpa.spec.metrics.and_then(|m| m.into_iter().next());
            let name = metric.and_then(|m| m.external).map(|e| e.metric.name);
            assert_eq!(name, Some(format!("s0-activemq-{q}")));
            assert!(counter(&op, "swell_scaler_upstream_calls_total{scaler=\"activemq\"}") > 0.0);
            assert_eq!(replicas(&ns, "wrong").await, Ok(0), "the failing ScaledObject stays put");

            purge(mq, &q).await;
            wait_replicas(&ns, "app", 0).await;
        })
        .await;
}
