//! The operator as the cluster's external metrics API, for tests where the real HPA
//! scales: only one test of a test binary may use it at a time (the APIService is
//! cluster-wide), and test binaries run one after another.

use super::{WAIT, swell};
use swell_testkit::{Cluster, Operator, wait_until};

/// Deletes the cluster-wide APIService even when the test fails.
pub struct ApiServiceGuard(&'static Cluster);

impl Drop for ApiServiceGuard {
    fn drop(&mut self) {
        let _ = self
            .0
            .kubectl()
            .args([
                "delete",
                "apiservice",
                "v1beta1.external.metrics.k8s.io",
                "--ignore-not-found",
                "--wait=false",
            ])
            .output();
    }
}

/// Starts an operator serving the external metrics API and registers it as the cluster's
/// `v1beta1.external.metrics.k8s.io`, so the real HPA controller reads Swell's metrics.
/// Only one test of this binary may do this.
pub async fn operator_with_metrics_api(
    cluster: &'static Cluster,
    ns: &swell_testkit::TestNamespace,
) -> (Operator, ApiServiceGuard) {
    operator_with_metrics_api_env(cluster, ns, &[]).await
}

/// [`operator_with_metrics_api`] with extra environment for the operator (its own AWS
/// identity, say).
pub async fn operator_with_metrics_api_env(
    cluster: &'static Cluster,
    ns: &swell_testkit::TestNamespace,
    env: &[(&str, &str)],
) -> (Operator, ApiServiceGuard) {
    let guard = ApiServiceGuard(cluster);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bind = format!("127.0.0.1:{port}");
    let op = Operator::start_env(
        cluster,
        swell(),
        &ns.name,
        None,
        &[
            "--leader-elect=false",
            "--metrics-api-bind-address",
            &bind,
            "--metrics-api-service",
            "swell-metrics",
            "--metrics-api-apiservice",
            "v1beta1.external.metrics.k8s.io",
        ],
        env,
    );
    ns.apply(
        cluster,
        &format!(
            r#"
apiVersion: v1
kind: Service
metadata: {{name: swell-metrics}}
spec: {{type: ExternalName, externalName: localhost}}
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {{name: v1beta1.external.metrics.k8s.io}}
spec:
  group: external.metrics.k8s.io
  version: v1beta1
  groupPriorityMinimum: 100
  versionPriority: 100
  service: {{name: swell-metrics, namespace: {ns}, port: {port}}}
"#,
            ns = ns.name
        ),
    )
    .unwrap();
    wait_until(
        "the APIService to be Available with Swell's CA",
        WAIT,
        || async {
            let out = cluster
                .kubectl()
                .args([
                    "get",
                    "apiservice",
                    "v1beta1.external.metrics.k8s.io",
                    "-o",
                    "jsonpath={.status.conditions[?(@.type==\"Available\")].status}",
                ])
                .output()
                .map_err(|e| e.to_string())?;
            let s = String::from_utf8_lossy(&out.stdout).to_string();
            if s == "True" {
                Ok(())
            } else {
                Err(format!("Available={s}"))
            }
        },
    )
    .await;
    (op, guard)
}

/// The value of a counter line on the operator's /metrics, 0 when absent.
pub fn counter(op: &Operator, prefix: &str) -> f64 {
    let addr = op.metrics_addr().unwrap();
    let out = std::process::Command::new("curl")
        .args(["-sk", &format!("https://{addr}/metrics")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or(0.0)
}
