//! The `nats-jetstream` scaler against real NATS servers (Debian's nats-server, started by
//! `hack/nats.sh`): a consumer's lag from the monitoring endpoint of one server (HTTPS) and
//! of a 3-node cluster (the consumer's leader found among the nodes), a missing stream or
//! consumer, a server that is down and endpoints that are not NATS monitoring; and a
//! Deployment scaled 0 → 3 → 0 by the real HPA. Messages are made with the NATS text
//! protocol (`swell_testkit::NatsConn`).

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::metrics_api::{counter, operator_with_metrics_api_env};
use common::*;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use swell_scalers::upstream::UpstreamKind;
use swell_scalers::{RawParams, ScalerError, Shared, TriggerInput, map};
use swell_testkit::{Nats, NatsConn, unique_suffix};

fn trigger(meta: &[(&str, &str)]) -> TriggerInput {
    TriggerInput {
        type_: "nats-jetstream".into(),
        params: RawParams {
            metadata: map(meta),
            ..Default::default()
        },
        // Nothing shared between readings: each sample reads the server.
        polling_interval: Duration::ZERO,
        ..Default::default()
    }
}

async fn sample(meta: &[(&str, &str)]) -> Result<(f64, bool), ScalerError> {
    let s = swell_scalers::build(&trigger(meta), &Shared::default()).unwrap();
    s.sample().await.map(|s| (s.value, s.active))
}

fn meta<'a>(endpoint: &'a str, stream: &'a str, consumer: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("natsServerMonitoringEndpoint", endpoint),
        ("account", "$G"),
        ("stream", stream),
        ("consumer", consumer),
        ("lagThreshold", "2"),
        ("activationLagThreshold", "1"),
    ]
}

/// A stream on `subject.>` with `replicas` copies and a durable pull consumer: their names.
async fn stream(c: &mut NatsConn, replicas: u32) -> (String, String, serde_json::Value) {
    let name = format!("jobs{}", unique_suffix());
    let subjects = format!("{name}.>");
    c.create_stream(&name, &[subjects.as_str()], replicas)
        .await
        .unwrap();
    let consumer = c.create_consumer(&name, "workers").await.unwrap();
    (name, "workers".into(), consumer)
}

/// The lag of a consumer on a 3-node cluster, read through a node that is not the
/// consumer's leader (its leader found as KEDA finds it: the nodes' `/varz` names and
/// `/jsz` answers), as messages are published, fetched and acknowledged; then a stream
/// and a consumer that do not exist, which are errors as in KEDA (no leader is found).
#[tokio::test(flavor = "multi_thread")]
async fn nats_jetstream_reads_the_lag_on_a_cluster() {
    let nats = Nats::shared();
    let mut c = NatsConn::connect(&nats.cluster_addrs[0]).await.unwrap();
    let (s, consumer, created) = stream(&mut c, 3).await;
    let leader = created["cluster"]["leader"].as_str().unwrap().to_string();
    // n1 is 127.0.0.1, n2 127.0.0.2, …: read through a node that is not the leader.
    let port = nats.cluster_monitor.rsplit(':').next().unwrap();
    let other = (1..=3).find(|i| format!("n{i}") != leader).unwrap();
    let endpoint = format!("127.0.0.{other}:{port}");
    let m = meta(&endpoint, &s, &consumer);
    assert_eq!(sample(&m).await.unwrap(), (0.0, false));
    let subject = format!("{s}.job");
    c.publish_acked(&subject, 5).await.unwrap();
    assert_eq!(sample(&m).await.unwrap(), (5.0, true));
    assert_eq!(c.fetch_and_ack(&s, &consumer, 4).await.unwrap(), 4);
    assert_eq!(
        sample(&m).await.unwrap(),
        (1.0, false),
        "1 is not above activation 1"
    );

    // One scaler keeps reading as messages come and go (its remembered leader).
    let one = swell_scalers::build(&trigger(&m), &Shared::default()).unwrap();
    for (publish, fetch, want) in [(3, 0, 4.0), (0, 4, 0.0)] {
        c.publish_acked(&subject, publish).await.unwrap();
        c.fetch_and_ack(&s, &consumer, fetch).await.unwrap();
        // The acks reach the consumer's leader, whose monitoring endpoint the scaler reads,
        // shortly after the client's ack returns: wait for it rather than race it.
        swell_testkit::wait_until(&format!("a lag of {want}"), WAIT, || async {
            match one.sample().await {
                Ok(s) if s.value == want => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
    }

    let e = sample(&meta(&endpoint, "NoSuchStream", &consumer))
        .await
        .unwrap_err();
    assert_eq!(
        e.upstream().map(|u| u.kind),
        Some(UpstreamKind::NotFound),
        "{e}"
    );
    // On a cluster KEDA looks for the leader of what is not there, and says so.
    assert!(
        e.to_string().contains(&format!(
            "nats-jetstream {endpoint}: leader node not found for consumer \"workers\" of stream \"NoSuchStream\""
        )),
        "{e}"
    );
    let e = sample(&meta(&endpoint, &s, "nobody")).await.unwrap_err();
    assert_eq!(
        e.upstream().map(|u| u.kind),
        Some(UpstreamKind::NotFound),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("leader node not found for consumer \"nobody\""),
        "{e}"
    );
}

/// One server with HTTPS monitoring: read with `useHttps` (the run's CA is not trusted by
/// this process, so the certificate is refused, naming the endpoint); plain HTTP to the
/// HTTPS port, the client port (not HTTP at all) and a port nobody listens on fail naming
/// the URL and the cause.
#[tokio::test(flavor = "multi_thread")]
async fn nats_jetstream_errors_name_the_endpoint_and_the_cause() {
    let nats = Nats::shared();
    let mut c = NatsConn::connect(&nats.addr).await.unwrap();
    let (s, consumer, _) = stream(&mut c, 1).await;
    let mut https = meta(&nats.monitor, &s, &consumer);
    https.push(("useHttps", "true"));
    let e = sample(&https).await.unwrap_err().to_string();
    assert!(
        e.contains(&format!(
            "nats-jetstream GET https://{}/jsz?acc=%24G",
            nats.monitor
        )) && e.contains("certificate"),
        "{e}"
    );
    let e = sample(&meta(&nats.monitor, &s, &consumer))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("returned 400"), "{e}");
    let e = sample(&meta(&nats.addr, &s, &consumer)).await.unwrap_err();
    assert!(
        e.to_string()
            .contains(&format!("GET http://{}/jsz", nats.addr)),
        "{e}"
    );
    let down = common::metrics_api::free_port().to_string();
    let down = format!("127.0.0.1:{down}");
    let e = sample(&meta(&down, &s, &consumer)).await.unwrap_err();
    assert_eq!(
        e.upstream().map(|u| u.kind),
        Some(UpstreamKind::Connect),
        "{e}"
    );
    assert!(e.to_string().contains("refused"), "{e}");
}

/// 0 → 3 → 0: 6 messages at lagThreshold 2 is 3 replicas; fetching and acknowledging them
/// takes the Deployment back to 0. The endpoint comes from a TriggerAuthentication, over
/// HTTPS (`useHttps`, the run's CA trusted by the operator through SSL_CERT_FILE); the metric
/// is named as KEDA names it. ScaledObjects pointed at a server that is down and at the
/// client port (not HTTP) get KEDAScalerFailed naming the endpoint, and stay put.
#[tokio::test(flavor = "multi_thread")]
async fn nats_jetstream_scales_through_the_hpa() {
    swell();
    let cluster = cluster();
    let nats = Nats::shared();
    cluster
        .with_namespace("sc-nats", |ns| async move {
            let mut c = NatsConn::connect(&nats.addr).await.unwrap();
            let (s, consumer, _) = stream(&mut c, 1).await;
            let so = |name: &str, auth: &str, endpoint: &str| {
                let auth = if auth.is_empty() { String::new() } else { format!("    authenticationRef: {{name: {auth}}}\n") };
                let endpoint = if endpoint.is_empty() { String::new() } else { format!("      natsServerMonitoringEndpoint: \"{endpoint}\"\n") };
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
  - type: nats-jetstream
    metadata:
      account: "$G"
      stream: "{s}"
      consumer: "{consumer}"
      lagThreshold: "2"
      useHttps: "true"
{endpoint}{auth}"#
                )
            };
            let auth = format!(
                "apiVersion: v1\nkind: Secret\nmetadata: {{name: nats-mon}}\nstringData: {{endpoint: \"{}\"}}\n---\napiVersion: keda.sh/v1alpha1\nkind: TriggerAuthentication\nmetadata: {{name: nats-mon}}\nspec:\n  secretTargetRef:\n  - {{parameter: natsServerMonitoringEndpoint, name: nats-mon, key: endpoint}}\n",
                nats.monitor
            );
            ns.apply(cluster, &auth).unwrap();
            let down = format!("127.0.0.1:{}", common::metrics_api::free_port());
            for name in ["app", "down", "garbage"] {
                ns.apply(cluster, &deployment(name, 0)).unwrap();
            }
            ns.apply(cluster, &so("app", "nats-mon", "")).unwrap();
            ns.apply(cluster, &so("down", "", &down)).unwrap();
            ns.apply(cluster, &so("garbage", "", &nats.addr)).unwrap();

            let ca = nats.tls_ca.display().to_string();
            let (op, _guard) =
                operator_with_metrics_api_env(cluster, &ns, &[("SSL_CERT_FILE", ca.as_str())]).await;
            wait_condition(&ns, "app", "Ready", "True").await;
            wait_condition(&ns, "app", "Active", "False").await;
            let e = wait_event(&ns, "KEDAScalerFailed", &format!("GET https://{down}/jsz")).await;
            assert!(e.contains("refused"), "{e}");
            wait_event(&ns, "KEDAScalerFailed", &format!("GET https://{}/jsz", nats.addr)).await;

            c.publish_acked(&format!("{s}.job"), 6).await.unwrap();
            wait_replicas(&ns, "app", 3).await;
            wait_event(&ns, "KEDAScaleTargetActivated", "from 0 to 1").await;
            let hpa = ns.api::<HorizontalPodAutoscaler>().get("keda-hpa-app").await.unwrap();
            let metric = hpa.spec.metrics.and_then(|m| m.into_iter().next());
            let name = metric.and_then(|m| m.external).map(|e| e.metric.name);
            assert_eq!(name, Some(format!("s0-nats-jetstream-{s}")));
            assert!(counter(&op, "swell_scaler_upstream_calls_total{scaler=\"nats-jetstream\"}") > 0.0);
            assert_eq!(replicas(&ns, "down").await, Ok(0), "the failing ScaledObject stays put");
            assert_eq!(replicas(&ns, "garbage").await, Ok(0), "the failing ScaledObject stays put");

            assert_eq!(c.fetch_and_ack(&s, &consumer, 10).await.unwrap(), 6);
            wait_replicas(&ns, "app", 0).await;
        })
        .await;
}
