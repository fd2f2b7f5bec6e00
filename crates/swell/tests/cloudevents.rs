//! CloudEventSources against the real local control plane: a running operator sends KEDA's
//! CloudEvents to a local HTTP sink that records every request.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use kube::Api;
use kube::api::DeleteParams;
use swell_api::{CloudEventSource, ClusterCloudEventSource};
use swell_testkit::{MetricServer, Operator, Received, RecordingSink, TestNamespace, wait_until};

const CLUSTER: &str = "test-cluster";

fn cloud_event_source(name: &str, uri: &str, subscription: &str) -> String {
    format!(
        r#"
apiVersion: eventing.keda.sh/v1alpha1
kind: CloudEventSource
metadata: {{name: {name}}}
spec:
  clusterName: {CLUSTER}
  destination:
    http: {{uri: "{uri}"}}
{subscription}
"#
    )
}

fn bad_scaled_object(name: &str, url: &str) -> String {
    scaled_object(name, "app", url, "").replace("targetValue: \"2\"", "targetValue: \"lots\"")
}

/// Waits for a CloudEvent of `type_` about `kind/name` in `namespace`.
async fn wait_cloud_event(
    sink: &RecordingSink,
    type_: &str,
    namespace: &str,
    kind: &str,
    name: &str,
) -> Received {
    let subject = format!("/{CLUSTER}/{namespace}/{kind}/{name}");
    wait_until(
        &format!("a {type_} CloudEvent about {subject}"),
        WAIT,
        || async {
            let got = sink.received();
            got.iter()
                .find(|r| {
                    r.header("ce-type") == type_
                        && r.header("ce-subject") == subject
                        && r.status == 200
                })
                .cloned()
                .ok_or_else(|| {
                    format!(
                        "{:?}",
                        got.iter()
                            .map(|r| (
                                r.header("ce-type").to_string(),
                                r.header("ce-subject").to_string(),
                                r.status
                            ))
                            .collect::<Vec<_>>()
                    )
                })
        },
    )
    .await
}

async fn ces_active(ns: &TestNamespace, name: &str) -> String {
    let ces = ns.api::<CloudEventSource>().get(name).await.unwrap();
    let c = ces.status.and_then(|s| s.conditions).unwrap_or_default();
    c.iter()
        .find(|c| c.type_ == "Active")
        .map(|c| {
            format!(
                "{}/{}/{}",
                c.status.as_str(),
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default()
            )
        })
        .unwrap_or_default()
}

async fn wait_ces_active(ns: &TestNamespace, name: &str, prefix: &str) -> String {
    wait_until(
        &format!("CloudEventSource {name} Active {prefix}"),
        WAIT,
        || async {
            let c = ces_active(ns, name).await;
            if c.starts_with(prefix) { Ok(c) } else { Err(c) }
        },
    )
    .await
}

/// Waits until the series `series` (name and labels) shows at least `min`.
async fn wait_metric(op: &Operator, series: &str, min: f64) {
    wait_until(
        &format!("/metrics to show {series} >= {min}"),
        WAIT,
        || async {
            let text = common::scrape(op);
            let value = text
                .lines()
                .find_map(|l| l.strip_prefix(series)?.trim().parse::<f64>().ok());
            match value {
                Some(v) if v >= min => Ok(()),
                _ => Err(text),
            }
        },
    )
    .await;
}

/// Deletes a cluster-scoped object when the test ends, pass or fail.
struct DeleteOnDrop(&'static swell_testkit::Cluster, String);

impl Drop for DeleteOnDrop {
    fn drop(&mut self) {
        let _ = self
            .0
            .kubectl()
            .args(["delete", &self.1, "--wait=false"])
            .output();
    }
}

#[tokio::test]
async fn scaled_object_ready_failed_and_removed() {
    let cluster = cluster();
    cluster
        .with_namespace("ce-life", |ns| async move {
            let sink = RecordingSink::start().await;
            let source = MetricServer::start(0.0).await;
            ns.apply(cluster, &cloud_event_source("ces", &sink.url, "")).unwrap();
            let op = Operator::start(cluster, swell(), &ns.name, None, &["--leader-elect=false"]);
            let c = wait_ces_active(&ns, "ces", "True/CloudEventSourceActive").await;
            assert!(c.ends_with("Is configured to send events to the configured destination"), "{c}");

            ns.apply(cluster, &deployment("app", 0)).unwrap();
            ns.apply(cluster, &scaled_object("app", "app", &source.url, "")).unwrap();
            let ready = wait_cloud_event(&sink, "keda.scaledobject.ready.v1", &ns.name, "scaledobject", "app").await;
            // KEDA's attributes, in HTTP binary mode: the operator's namespace is `ns` here.
            assert_eq!(ready.method, "POST");
            assert_eq!(ready.path, "/events");
            assert_eq!(ready.header("ce-specversion"), "1.0");
            assert_eq!(ready.header("ce-source"), format!("/{CLUSTER}/{}/keda", ns.name));
            assert_eq!(ready.header("content-type"), "application/json");
            assert!(!ready.header("ce-id").is_empty() && !ready.header("ce-time").is_empty());
            let data = ready.json();
            assert_eq!(data["reason"], "ScaledObjectReady");
            assert!(data["message"].as_str().unwrap_or_default().contains("ready for scaling"), "{data}");

            ns.apply(cluster, &bad_scaled_object("bad", &source.url)).unwrap();
            let failed = wait_cloud_event(&sink, "keda.scaledobject.failed.v1", &ns.name, "scaledobject", "bad").await;
            assert_eq!(failed.json()["reason"], "ScaledObjectCheckFailed");
            assert!(failed.body.contains("is not a number"), "{}", failed.body);

            ns.api::<swell_api::ScaledObject>().delete("app", &DeleteParams::default()).await.unwrap();
            let removed = wait_cloud_event(&sink, "keda.scaledobject.removed.v1", &ns.name, "scaledobject", "app").await;
            assert_eq!(removed.json()["message"], "ScaledObject was deleted");

            // Nothing about other kinds' routine events (activation and the like).
            assert!(sink.received().iter().all(|r| r.header("ce-type").starts_with("keda.scaledobject.")));
            wait_metric(&op, &format!(
                "keda_cloudeventsource_events_emitted_total{{namespace=\"{}\",cloudeventsource=\"ces\",eventsink=\"http\",state=\"emitted\"}}",
                ns.name
            ), 3.0).await;
            let drained = format!("keda_cloudeventsource_events_queued{{namespace=\"{}\"}} 0", ns.name);
            wait_until("the sink's queue to drain", WAIT, || async {
                let text = common::scrape(&op);
                if text.lines().any(|l| l == drained) { Ok(()) } else { Err(text) }
            })
            .await;
        })
        .await;
}

#[tokio::test]
async fn exclude_filter_retries_and_refusals() {
    let cluster = cluster();
    cluster
        .with_namespace("ce-filter", |ns| async move {
            let sink = RecordingSink::start().await;
            let source = MetricServer::start(0.0).await;
            let exclude = "  eventSubscription:\n    excludedEventTypes: [keda.scaledobject.failed.v1]";
            ns.apply(cluster, &cloud_event_source("ces", &sink.url, exclude)).unwrap();
            // What Swell cannot honour is refused in the Active condition, by name.
            let azure = "apiVersion: eventing.keda.sh/v1alpha1\nkind: CloudEventSource\nmetadata: {name: azure}\nspec:\n  destination:\n    azureEventGridTopic: {endpoint: \"https://t.eventgrid.azure.net/api/events\"}\n";
            ns.apply(cluster, azure).unwrap();
            let both = "  eventSubscription:\n    includedEventTypes: [keda.scaledobject.ready.v1]\n    excludedEventTypes: [keda.scaledobject.failed.v1]";
            ns.apply(cluster, &cloud_event_source("both", &sink.url, both)).unwrap();
            // The first delivery is refused once: it is retried.
            sink.answer(&[500]);
            let op = Operator::start(cluster, swell(), &ns.name, None, &["--leader-elect=false"]);
            wait_ces_active(&ns, "ces", "True/CloudEventSourceActive").await;
            let c = wait_ces_active(&ns, "azure", "False/CloudEventSourceFailed").await;
            assert!(c.contains("Swell supports only the http destination"), "{c}");
            let c = wait_ces_active(&ns, "both", "False/CloudEventSourceFailed").await;
            assert!(c.contains("setting included types and excluded types at the same time is not supported"), "{c}");

            ns.apply(cluster, &deployment("app", 0)).unwrap();
            ns.apply(cluster, &scaled_object("app", "app", &source.url, "")).unwrap();
            let ready = wait_cloud_event(&sink, "keda.scaledobject.ready.v1", &ns.name, "scaledobject", "app").await;
            let tries: Vec<u16> = sink
                .received()
                .iter()
                .filter(|r| r.header("ce-id") == ready.header("ce-id"))
                .map(|r| r.status)
                .collect();
            assert_eq!(tries, [500, 200], "the refused event is sent again");
            wait_metric(&op, &format!(
                "keda_cloudeventsource_events_emitted_total{{namespace=\"{}\",cloudeventsource=\"ces\",eventsink=\"http\",state=\"failed\"}}",
                ns.name
            ), 1.0).await;

            // The excluded type never arrives: the removal after it does, and a sink's
            // events arrive in order.
            ns.apply(cluster, &bad_scaled_object("bad", &source.url)).unwrap();
            wait_event(&ns, "ScaledObjectCheckFailed", "is not a number").await;
            ns.api::<swell_api::ScaledObject>().delete("bad", &DeleteParams::default()).await.unwrap();
            wait_cloud_event(&sink, "keda.scaledobject.removed.v1", &ns.name, "scaledobject", "bad").await;
            assert!(sink.of_type("keda.scaledobject.failed.v1").is_empty(), "{:?}", sink.received());

            // An event refused 5 times is given up: Active says so, as KEDA; the next one
            // delivered sets it back.
            sink.answer(&[500, 500, 500, 500, 500]);
            ns.apply(cluster, &deployment("app2", 0)).unwrap();
            ns.apply(cluster, &scaled_object("app2", "app2", &source.url, ""))
                .unwrap();
            let c = wait_ces_active(&ns, "ces", "False/CloudEventSourceFailed").await;
            assert!(c.ends_with("Failed to send events to the configured destination"), "{c}");
            let subject = format!("/{CLUSTER}/{}/scaledobject/app2", ns.name);
            let tries: Vec<u16> = sink
                .received()
                .iter()
                .filter(|r| r.header("ce-subject") == subject)
                .map(|r| r.status)
                .collect();
            assert_eq!(tries, [500; 5], "5 tries, then given up");
            ns.api::<swell_api::ScaledObject>()
                .delete("app2", &DeleteParams::default())
                .await
                .unwrap();
            wait_cloud_event(&sink, "keda.scaledobject.removed.v1", &ns.name, "scaledobject", "app2").await;
            wait_ces_active(&ns, "ces", "True/CloudEventSourceActive").await;
            drop(op);
        })
        .await;
}

#[tokio::test]
async fn cluster_source_hears_every_namespace() {
    let cluster = cluster();
    let sink = RecordingSink::start().await;
    let source = MetricServer::start(0.0).await;
    let name = format!("cces-{}", std::process::id());
    let cces = format!(
        "apiVersion: eventing.keda.sh/v1alpha1\nkind: ClusterCloudEventSource\nmetadata: {{name: {name}}}\nspec:\n  clusterName: {CLUSTER}\n  destination:\n    http: {{uri: \"{}\"}}\n  eventSubscription:\n    includedEventTypes: [keda.scaledobject.ready.v1]\n",
        sink.url
    );
    let _cleanup = DeleteOnDrop(
        cluster,
        format!("clustercloudeventsource.eventing.keda.sh/{name}"),
    );
    let (name_ref, cces_ref, sink_ref, source_ref) = (&name, &cces, &sink, &source);
    cluster
        .with_namespace("ce-a", |a| async move {
            cluster
                .with_namespace("ce-b", |b| async move {
                    // Each operator watches its own namespace and every ClusterCloudEventSource.
                    a.apply(cluster, cces_ref).unwrap();
                    let _op_a =
                        Operator::start(cluster, swell(), &a.name, None, &["--leader-elect=false"]);
                    let _op_b =
                        Operator::start(cluster, swell(), &b.name, None, &["--leader-elect=false"]);
                    for ns in [&a, &b] {
                        ns.apply(cluster, &deployment("app", 0)).unwrap();
                        ns.apply(cluster, &scaled_object("app", "app", &source_ref.url, ""))
                            .unwrap();
                    }
                    for ns in [&a, &b] {
                        wait_cloud_event(
                            sink_ref,
                            "keda.scaledobject.ready.v1",
                            &ns.name,
                            "scaledobject",
                            "app",
                        )
                        .await;
                    }
                    // Operators of other tests may send here too; only included types come.
                    assert!(
                        sink_ref
                            .received()
                            .iter()
                            .all(|r| r.header("ce-type") == "keda.scaledobject.ready.v1")
                    );
                    let api = Api::<ClusterCloudEventSource>::all(a.client.clone());
                    wait_until("the ClusterCloudEventSource to be Active", WAIT, || async {
                        let got = api.get(name_ref).await.map_err(|e| e.to_string())?;
                        let c = got.status.and_then(|s| s.conditions).unwrap_or_default();
                        if c.iter()
                            .any(|c| c.type_ == "Active" && c.status.as_str() == "True")
                        {
                            Ok(())
                        } else {
                            Err(format!("{c:?}"))
                        }
                    })
                    .await;
                })
                .await;
        })
        .await;
}
