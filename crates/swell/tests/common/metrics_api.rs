//! The operator as the cluster's external metrics API, for tests where the real HPA
//! scales: one test of a test binary uses it at a time (the APIService is cluster-wide;
//! [`operator_with_metrics_api`] waits for the previous one to finish), and test binaries
//! run one after another.

use super::{WAIT, swell};
use swell_testkit::{Cluster, Operator, wait_until};

/// Held by the test that has the cluster's APIService.
static APISERVICE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Deletes the cluster-wide APIService even when the test fails, then lets the next test
/// of this binary register its own.
pub struct ApiServiceGuard(&'static Cluster, tokio::sync::MutexGuard<'static, ()>);

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
/// Waits while another test of this binary has it.
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
    let lock = APISERVICE.lock().await;
    let started = std::time::Instant::now();
    let port = free_port();
    let mut args = vec!["--leader-elect=false".to_string()];
    args.extend(serving_args(port));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let op = Operator::start_env(cluster, swell(), &ns.name, None, &args, env);
    let guard = register(cluster, ns, port, lock).await;
    eprintln!(
        "metrics API: APIService Available {:.1}s after `swell operator` started",
        started.elapsed().as_secs_f64()
    );
    (op, guard)
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The operator arguments serving the metrics API on `port` and keeping the APIService's
/// caBundle.
pub fn serving_args(port: u16) -> Vec<String> {
    [
        "--metrics-api-bind-address",
        &format!("127.0.0.1:{port}"),
        "--metrics-api-service",
        "swell-metrics",
        "--metrics-api-apiservice",
        "v1beta1.external.metrics.k8s.io",
    ]
    .map(String::from)
    .to_vec()
}

/// Takes the cluster's APIService for this test (waiting for the previous test of this
/// binary to release it).
pub async fn take_apiservice() -> tokio::sync::MutexGuard<'static, ()> {
    APISERVICE.lock().await
}

/// Registers the operator serving on `port` as the cluster's external metrics API and
/// waits until the aggregator reports it Available.
pub async fn register(
    cluster: &'static Cluster,
    ns: &swell_testkit::TestNamespace,
    port: u16,
    lock: tokio::sync::MutexGuard<'static, ()>,
) -> ApiServiceGuard {
    let guard = ApiServiceGuard(cluster, lock);
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
    guard
}

/// The value of a counter line on the operator's /metrics, 0 when absent.
pub fn counter(op: &Operator, prefix: &str) -> f64 {
    let addr = op.metrics_addr().unwrap();
    let out = std::process::Command::new("curl")
        .args(["-sk", &format!("http://{addr}/metrics")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or(0.0)
}
