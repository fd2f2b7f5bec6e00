//! The `artemis-queue` scaler against a real ActiveMQ Artemis 2.40 broker (started by
//! `hack/artemis.sh`, login required, Jolokia with CORS strict checking): a queue's
//! MessageCount through KEDA's URL template and through `restApiTemplate` (over HTTPS too:
//! `ca`, `unsafeSsl`), one HTTP client
//! and one reading shared by triggers, a missing queue, a server that is down, a wrong
//! password and a refused Origin; and a Deployment scaled 0 → 3 → 0 by the real HPA.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::metrics_api::{counter, free_port, operator_with_metrics_api};
use common::*;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use serde_json::json;
use swell_scalers::upstream::UpstreamKind;
use swell_scalers::{RawParams, ScalerError, Shared, TriggerInput, map};
use swell_testkit::{Artemis, unique_suffix};

fn trigger(index: usize, meta: &[(&str, &str)], auth: &[(&str, &str)]) -> TriggerInput {
    TriggerInput {
        index,
        type_: "artemis-queue".into(),
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

/// The queue's MBean name (anycast, bound to the address of the same name).
fn mbean(mq: &Artemis, queue: &str) -> String {
    format!(
        "org.apache.activemq.artemis:broker=\"{}\",component=addresses,address=\"{queue}\",subcomponent=queues,routing-type=\"anycast\",queue=\"{queue}\"",
        mq.broker
    )
}

/// A Jolokia `exec` as the test user; its `value`.
async fn exec(
    mq: &Artemis,
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

/// A new anycast queue, its name.
async fn queue(mq: &Artemis) -> String {
    let name = format!("jobs-{}", unique_suffix());
    let config = json!({"name": name, "address": name, "routing-type": "ANYCAST"}).to_string();
    let broker = format!("org.apache.activemq.artemis:broker=\"{}\"", mq.broker);
    exec(
        mq,
        &broker,
        "createQueue(java.lang.String,boolean)",
        json!([config, false]),
    )
    .await;
    name
}

async fn send(mq: &Artemis, queue: &str, n: usize) {
    for i in 0..n {
        let op = "sendMessage(java.util.Map,int,java.lang.String,boolean,java.lang.String,java.lang.String)";
        let args = json!([{}, 3, format!("job {i}"), true, null, null]);
        exec(mq, &mbean(mq, queue), op, args).await;
    }
}

async fn purge(mq: &Artemis, queue: &str) {
    exec(mq, &mbean(mq, queue), "removeAllMessages()", json!([])).await;
}

fn fields<'a>(mq: &'a Artemis, endpoint: &'a str, queue: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("managementEndpoint", endpoint),
        ("brokerName", mq.broker.as_str()),
        ("brokerAddress", queue),
        ("queueName", queue),
        ("queueLength", "2"),
        ("activationQueueLength", "0"),
    ]
}

async fn sample(meta: &[(&str, &str)], auth: &[(&str, &str)]) -> Result<f64, ScalerError> {
    let s = swell_scalers::build(&trigger(0, meta, auth), &Shared::default()).unwrap();
    s.sample().await.map(|s| s.value)
}

/// KEDA's template from the fields and the same URL as a restApiTemplate read the count;
/// two triggers share one HTTP client and one reading; a missing queue is Jolokia's 404.
#[tokio::test(flavor = "multi_thread")]
async fn artemis_reads_the_message_count() {
    let mq = Artemis::shared();
    let q = queue(mq).await;
    send(mq, &q, 3).await;
    let auth = [
        ("username", mq.user.as_str()),
        ("password", mq.password.as_str()),
    ];
    let meta = fields(mq, &mq.endpoint, &q);
    assert_eq!(sample(&meta, &auth).await.unwrap(), 3.0);

    // The same URL as a restApiTemplate, as KEDA's users write it (quotes and all).
    let template = format!(
        "http://{}/console/jolokia/read/{}/MessageCount",
        mq.endpoint,
        mbean(mq, &q)
    );
    let t = [("restApiTemplate", template.as_str())];
    assert_eq!(sample(&t, &auth).await.unwrap(), 3.0);

    let shared = Shared::default();
    let a = swell_scalers::build(&trigger(0, &meta, &auth), &shared).unwrap();
    let b = swell_scalers::build(&trigger(1, &meta, &auth), &shared).unwrap();
    assert_eq!(a.metric_spec().name(), format!("s0-artemis-{q}"));
    let (sa, sb) = (a.sample().await.unwrap(), b.sample().await.unwrap());
    assert_eq!((sa.value, sa.active, sb.value), (3.0, true, 3.0));
    let calls = shared
        .upstream_calls
        .get_or_create(&vec![("scaler", "artemis-queue".to_string())])
        .get();
    assert_eq!(calls, 1, "the second trigger reused the first reading");
    assert_eq!(shared.http.len(), 1, "one HTTP client");

    let missing = fields(mq, &mq.endpoint, "no-such-queue");
    let e = sample(&missing, &auth).await.unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains(&format!(
            "artemis-queue GET http://{}/console/jolokia/read/",
            mq.endpoint
        )) && msg.contains("Jolokia status 404: javax.management.InstanceNotFoundException"),
        "{msg}"
    );
    assert_eq!(e.upstream().map(|u| u.kind), Some(UpstreamKind::NotFound));
    purge(mq, &q).await;
    assert_eq!(sample(&meta, &auth).await.unwrap(), 0.0);
}

/// The console over HTTPS through restApiTemplate: the run's CA from the
/// TriggerAuthentication (`ca`) is trusted; without it the certificate is refused, unless
/// `unsafeSsl`.
#[tokio::test(flavor = "multi_thread")]
async fn artemis_reads_over_https() {
    let mq = Artemis::shared();
    let q = queue(mq).await;
    send(mq, &q, 2).await;
    let ca = std::fs::read_to_string(&mq.tls_ca).unwrap();
    let template = format!(
        "https://{}/console/jolokia/read/{}/MessageCount",
        mq.tls_endpoint,
        mbean(mq, &q)
    );
    let meta = [("restApiTemplate", template.as_str())];
    let creds = [
        ("username", mq.user.as_str()),
        ("password", mq.password.as_str()),
    ];
    let with_ca = [creds[0], creds[1], ("ca", ca.as_str())];
    assert_eq!(sample(&meta, &with_ca).await.unwrap(), 2.0);
    let e = sample(&meta, &creds).await.unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("artemis-queue GET https://{}/", mq.tls_endpoint))
            && msg.contains("certificate"),
        "{msg}"
    );
    assert_eq!(e.upstream().map(|u| u.kind), Some(UpstreamKind::Connect));
    let unsafe_ssl = [meta[0], ("unsafeSsl", "true")];
    assert_eq!(sample(&unsafe_ssl, &creds).await.unwrap(), 2.0);
}

/// A server nobody listens on, a wrong password and an Origin Jolokia does not allow: the
/// error names the URL and the cause, and says its kind; never the password.
#[tokio::test(flavor = "multi_thread")]
async fn artemis_errors_name_the_server_and_the_cause() {
    let mq = Artemis::shared();
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
        msg.contains(&format!("artemis-queue GET http://{down}/console/jolokia/"))
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
        msg.contains("403 Forbidden (check username and password)"),
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

/// 0 → 3 → 0: 9 messages at queueLength 3 is 3 replicas; purging the queue takes the
/// Deployment back to 0. The credentials come from a TriggerAuthentication's Secret and the
/// metric is named as KEDA names it. A ScaledObject with a wrong password gets
/// KEDAScalerFailed and stays put.
#[tokio::test(flavor = "multi_thread")]
async fn artemis_scales_through_the_hpa() {
    swell();
    let cluster = cluster();
    let mq = Artemis::shared();
    cluster
        .with_namespace("sc-artemis", |ns| async move {
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
  - type: artemis-queue
    metadata:
      managementEndpoint: "{}"
      brokerName: "{}"
      brokerAddress: "{q}"
      queueName: "{q}"
      queueLength: "3"
      activationQueueLength: "0"
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
            let e = wait_event(&ns, "KEDAScalerFailed", "403 Forbidden").await;
            assert!(e.contains("artemis-queue GET http://") && !e.contains("not-the-password"), "{e}");

            send(mq, &q, 9).await;
            wait_replicas(&ns, "app", 3).await;
            wait_event(&ns, "KEDAScaleTargetActivated", "from 0 to 1").await;
            let hpa = ns.api::<HorizontalPodAutoscaler>().get("keda-hpa-app").await.unwrap();
            let metric = hpa.spec.metrics.and_then(|m| m.into_iter().next());
            let name = metric.and_then(|m| m.external).map(|e| e.metric.name);
            assert_eq!(name, Some(format!("s0-artemis-{q}")));
            assert!(counter(&op, "swell_scaler_upstream_calls_total{scaler=\"artemis-queue\"}") > 0.0);
            assert_eq!(replicas(&ns, "wrong").await, Ok(0), "the failing ScaledObject stays put");

            purge(mq, &q).await;
            wait_replicas(&ns, "app", 0).await;
        })
        .await;
}
