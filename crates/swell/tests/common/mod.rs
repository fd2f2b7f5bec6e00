//! Helpers shared by the operator's end-to-end tests.

#![allow(dead_code, clippy::unwrap_used)]

pub mod helm;
pub mod metrics_api;

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Event;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use swell_api::ScaledObject;
use swell_testkit::{Cluster, TestNamespace, wait_until};

pub const WAIT: Duration = Duration::from_secs(90);

pub fn swell() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_swell"))
}

pub fn cluster() -> &'static Cluster {
    let c = Cluster::shared();
    c.install_crds(swell());
    c
}

pub fn deployment(name: &str, replicas: i32) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, labels: {{app: {name}}}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec: {{containers: [{{name: nginx, image: nginx}}]}}
"#
    )
}

/// A ScaledObject with one metrics-api trigger reading `url`; `extra` is spliced into spec.
pub fn scaled_object(name: &str, target: &str, url: &str, extra: &str) -> String {
    format!(
        r#"
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {{name: {name}}}
spec:
  scaleTargetRef: {{name: {target}}}
  pollingInterval: 1
  cooldownPeriod: 2
  maxReplicaCount: 5
{extra}
  triggers:
  - type: metrics-api
    metadata: {{url: "{url}", valueLocation: value, targetValue: "2", activationTargetValue: "3"}}
"#
    )
}

pub async fn replicas(ns: &TestNamespace, name: &str) -> Result<i32, String> {
    let d = ns
        .api::<Deployment>()
        .get(name)
        .await
        .map_err(|e| e.to_string())?;
    Ok(d.spec.and_then(|s| s.replicas).unwrap_or(-1))
}

pub async fn wait_replicas(ns: &TestNamespace, name: &str, want: i32) {
    wait_until(
        &format!("deployment {name} to have {want} replicas"),
        WAIT,
        || async {
            match replicas(ns, name).await? {
                n if n == want => Ok(()),
                n => Err(format!("replicas={n}")),
            }
        },
    )
    .await;
}

pub async fn so(ns: &TestNamespace, name: &str) -> ScaledObject {
    ns.api::<ScaledObject>().get(name).await.unwrap()
}

pub fn condition(so: &ScaledObject, type_: &str) -> String {
    so.condition(type_)
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

pub async fn wait_condition(ns: &TestNamespace, name: &str, type_: &str, prefix: &str) -> String {
    wait_until(
        &format!("{name} condition {type_} to start with {prefix}"),
        WAIT,
        || async {
            let c = condition(&so(ns, name).await, type_);
            if c.starts_with(prefix) { Ok(c) } else { Err(c) }
        },
    )
    .await
}

pub async fn event_notes(ns: &TestNamespace, reason: &str) -> Vec<String> {
    let events: Api<Event> = ns.api();
    let list = events
        .list(&ListParams::default().fields(&format!("reason={reason}")))
        .await
        .unwrap();
    list.items.into_iter().filter_map(|e| e.message).collect()
}

pub async fn wait_event(ns: &TestNamespace, reason: &str, contains: &str) -> String {
    wait_until(
        &format!("a {reason} event containing {contains:?}"),
        WAIT,
        || async {
            let notes = event_notes(ns, reason).await;
            notes
                .iter()
                .find(|n| n.contains(contains))
                .cloned()
                .ok_or(format!("{notes:?}"))
        },
    )
    .await
}

pub async fn annotate(ns: &TestNamespace, name: &str, key: &str, value: Option<&str>) {
    let patch = serde_json::json!({"metadata": {"annotations": {key: value}}});
    ns.api::<ScaledObject>()
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

/// The operator's /metrics, scraped as KEDA's chart scrapes it: plain HTTP.
pub fn scrape(op: &swell_testkit::Operator) -> String {
    let Some(addr) = op.metrics_addr() else {
        return String::new();
    };
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "10", &format!("http://{addr}/metrics")])
        .output()
        .map(|o| o.stdout)
        .unwrap_or_default();
    String::from_utf8_lossy(&out).into_owned()
}

/// Waits until /metrics has a line starting with each of `prefixes`; the whole text.
pub async fn wait_metrics(op: &swell_testkit::Operator, prefixes: &[String]) -> String {
    wait_until("/metrics to show the series", WAIT, || async {
        let text = scrape(op);
        let missing: Vec<&String> = prefixes
            .iter()
            .filter(|p| !text.lines().any(|l| l.starts_with(p.as_str())))
            .collect();
        if missing.is_empty() {
            Ok(text)
        } else {
            Err(format!("missing {missing:?} in:\n{text}"))
        }
    })
    .await
}
