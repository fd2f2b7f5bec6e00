//! Delegation end to end: Swell holds the cluster's one `v1beta1.external.metrics.k8s.io`
//! and forwards the metrics it does not own to a real prometheus-adapter (built from the Go
//! module proxy by hack/build-prometheus-adapter.sh) reading the tests' Prometheus, which
//! trusts Swell's client certificate as its front proxy. The real HPA controller reads both.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use http::{HeaderName, HeaderValue};
use swell_metrics_api::delegate::{DelegateClient, DelegateSpec, DelegateTls};
use swell_testkit::{
    Cluster, MetricServer, Operator, Prometheus, Reply, TestNamespace, wait_until,
};

/// The external metric the adapter's `externalRules` make of the Prometheus series.
const METRIC: &str = "adapter_queue_depth";
/// The CN of Swell's front-proxy client certificate, in the adapter's allowed names.
const SWELL_CN: &str = "swell-metrics-delegation";

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a leaf signed by it (`ext`: the extension lines), as `<name>.crt`/`<name>.key`.
fn issue(dir: &Path, ca: &str, name: &str, cn: &str, ext: &str) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={cn}"),
        ],
    );
    std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &format!("{name}.crt"),
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
}

/// The test's PKI: the adapter's serving certificate (for 127.0.0.1) and Swell's
/// front-proxy client certificate, each from its own CA; and the delegate directory Swell
/// reads (`<dir>/delegates/prom/{ca.crt,tls.crt,tls.key}`).
fn pki(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    for ca in ["serving-ca", "proxy-ca"] {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.crt"),
                "-days",
                "2",
                "-subj",
                &format!("/CN=test-{ca}"),
            ],
        );
    }
    issue(
        dir,
        "serving-ca",
        "adapter",
        "prometheus-adapter",
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    );
    issue(
        dir,
        "proxy-ca",
        "swell",
        SWELL_CN,
        "extendedKeyUsage=clientAuth\n",
    );
    let prom = dir.join("delegates/prom");
    std::fs::create_dir_all(&prom).unwrap();
    std::fs::copy(dir.join("serving-ca.crt"), prom.join("ca.crt")).unwrap();
    std::fs::copy(dir.join("swell.crt"), prom.join("tls.crt")).unwrap();
    std::fs::copy(dir.join("swell.key"), prom.join("tls.key")).unwrap();
    dir.join("delegates")
}

/// The prometheus-adapter binary: `SWELL_PROMETHEUS_ADAPTER`, or built (once, cached).
fn adapter_binary() -> PathBuf {
    if let Ok(p) = std::env::var("SWELL_PROMETHEUS_ADAPTER") {
        return p.into();
    }
    let script = swell_testkit::repo_root().join("hack/build-prometheus-adapter.sh");
    let out = Command::new(script)
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "building prometheus-adapter failed");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// A real prometheus-adapter on a loopback port, killed when dropped.
struct Adapter {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    cluster: &'static Cluster,
}

impl Adapter {
    fn start(cluster: &'static Cluster, dir: &Path) -> Adapter {
        let config = format!(
            r#"
rules: []
externalRules:
- seriesQuery: 'swell_test_value'
  resources: {{namespaced: false}}
  name: {{matches: "^swell_test_value$", as: "{METRIC}"}}
  metricsQuery: 'sum(<<.Series>>{{<<.LabelMatchers>>}})'
"#
        );
        std::fs::write(dir.join("adapter.yaml"), config).unwrap();
        let mut a = Adapter {
            child: None,
            port: metrics_api::free_port(),
            dir: dir.to_path_buf(),
            cluster,
        };
        a.restart();
        a
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("adapter.log")).unwrap_or_default()
    }

    /// (Re)starts it on the same port, appending to its log.
    fn restart(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("adapter.log"))
            .unwrap();
        let kubeconfig = self.cluster.kubeconfig.display().to_string();
        let d = |f: &str| self.dir.join(f).display().to_string();
        let child = Command::new(adapter_binary())
            .args([
                format!("--secure-port={}", self.port),
                "--bind-address=127.0.0.1".into(),
                format!("--tls-cert-file={}", d("adapter.crt")),
                format!("--tls-private-key-file={}", d("adapter.key")),
                format!("--cert-dir={}", d("")),
                // Swell is its front proxy now: trust Swell's CA and name for X-Remote-*.
                format!("--requestheader-client-ca-file={}", d("proxy-ca.crt")),
                format!("--requestheader-allowed-names={SWELL_CN}"),
                "--requestheader-username-headers=X-Remote-User".into(),
                "--requestheader-group-headers=X-Remote-Group".into(),
                "--requestheader-extra-headers-prefix=X-Remote-Extra-".into(),
                format!("--authentication-kubeconfig={kubeconfig}"),
                format!("--authorization-kubeconfig={kubeconfig}"),
                format!("--lister-kubeconfig={kubeconfig}"),
                format!("--prometheus-url={}", Prometheus::shared().url),
                format!("--config={}", d("adapter.yaml")),
                "--metrics-relist-interval=2s".into(),
                // httplog: one line per request, so the test sees what reached it.
                "--v=3".into(),
            ])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Requests for `path` the adapter logged.
    fn requests_for(&self, path: &str) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains("\"HTTP\"") && l.contains(&format!("URI=\"{path}")))
            .count()
    }
}

impl Drop for Adapter {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            eprintln!("--- last lines of prometheus-adapter's log ---");
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

/// A client that reads `base` as Swell reads a delegate (this test's CA, Swell's cert).
fn client_as_swell(delegates: &Path, base: &str) -> DelegateClient {
    let spec = DelegateSpec {
        name: "prom".into(),
        base_url: base.into(),
    };
    let tls = DelegateTls::load("prom", &delegates.join("prom")).unwrap();
    DelegateClient::new(&spec, &tls, Duration::from_secs(10)).unwrap()
}

fn as_user(name: &str, group: &str) -> Vec<(HeaderName, HeaderValue)> {
    vec![
        (
            HeaderName::from_static("x-remote-user"),
            HeaderValue::from_str(name).unwrap(),
        ),
        (
            HeaderName::from_static("x-remote-group"),
            HeaderValue::from_str(group).unwrap(),
        ),
    ]
}

/// Waits until the adapter lists the metric (it relists Prometheus every 2 s).
async fn wait_listed(adapter: &Adapter, delegates: &Path) {
    let client = client_as_swell(delegates, &adapter.url());
    wait_until(
        "prometheus-adapter to list the external metric",
        WAIT,
        || async {
            let r = client
                .discover(&as_user("test", "system:masters"))
                .await
                .map_err(|e| e.to_string())?;
            if r.iter().any(|r| r["name"] == METRIC) {
                Ok(())
            } else {
                Err(format!("{r:?}"))
            }
        },
    )
    .await;
}

/// Prometheus scrapes `value` as `swell_test_value{target="<ns>"}`.
async fn prometheus_target(ns: &TestNamespace, value: f64) -> swell_testkit::ScrapeTarget {
    let prom = Prometheus::shared();
    let target = prom.scrape_target(&ns.name, value).await;
    let q = target.query();
    wait_until("Prometheus to scrape the test's target", WAIT, || async {
        let body = prom.query(&q).await.map_err(|e| e.to_string())?;
        if body.contains("\"value\":[") {
            Ok(())
        } else {
            Err(body)
        }
    })
    .await;
    target
}

/// Swell serving the metrics API as the cluster's APIService, delegating to `adapter`.
async fn swell_delegating(
    cluster: &'static Cluster,
    ns: &TestNamespace,
    adapter: &Adapter,
    delegates: &Path,
) -> (Operator, metrics_api::ApiServiceGuard) {
    let lock = metrics_api::take_apiservice().await;
    let port = metrics_api::free_port();
    let mut args = vec!["--leader-elect=false".to_string()];
    args.extend(metrics_api::serving_args(port));
    args.extend([
        format!("--metrics-api-delegate=prom={}", adapter.url()),
        format!("--metrics-api-delegate-tls-dir={}", delegates.display()),
        "--metrics-api-delegate-refresh=1".into(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let op = Operator::start(cluster, swell(), &ns.name, None, &args);
    let guard = metrics_api::register(cluster, ns, port, lock).await;
    (op, guard)
}

fn raw(cluster: &Cluster, kubeconfig: Option<&Path>, path: &str) -> Result<String, String> {
    let mut cmd = cluster.kubectl();
    if let Some(k) = kubeconfig {
        cmd.arg("--kubeconfig").arg(k);
    }
    let out = cmd.args(["get", "--raw", path]).output().unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn metric_path(ns: &str) -> String {
    format!(
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/{METRIC}?labelSelector=target%3D{ns}"
    )
}

fn plain_hpa(ns: &str, max: i32) -> String {
    format!(
        r#"
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {{name: plain}}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: plain}}
  minReplicas: 1
  maxReplicas: {max}
  metrics:
  - type: External
    external:
      metric: {{name: {METRIC}, selector: {{matchLabels: {{target: {ns}}}}}}}
      target: {{type: AverageValue, averageValue: "2"}}
"#
    )
}

/// Two real HPAs in one cluster through Swell's one APIService: `app` on a ScaledObject
/// (Swell's own metric), `plain` on prometheus-adapter's external metric (delegated).
/// Then the adapter goes down: Swell's metric keeps being served and scaling, the
/// adapter's gets a 503 naming the delegate; back up, `plain` scales again.
#[tokio::test(flavor = "multi_thread")]
async fn two_hpas_one_apiservice_and_a_delegate_that_goes_down() {
    swell();
    let cluster = cluster();
    cluster
        .with_namespace("deleg-two", |ns| async move {
            let dir = cluster.dir.join(format!("deleg-{}", ns.name));
            let delegates = pki(&dir);
            let target = prometheus_target(&ns, 8.0).await;
            let mut adapter = Adapter::start(cluster, &dir);
            wait_listed(&adapter, &delegates).await;

            let source = MetricServer::start(6.0).await;
            ns.apply(cluster, &deployment("app", 0)).unwrap();
            ns.apply(cluster, &deployment("plain", 1)).unwrap();
            ns.apply(cluster, &scaled_object("app", "app", &source.url, "")).unwrap();
            ns.apply(cluster, &plain_hpa(&ns.name, 6)).unwrap();
            let (op, _guard) = swell_delegating(cluster, &ns, &adapter, &delegates).await;

            // Swell's discovery document lists the union.
            let doc = raw(cluster, None, "/apis/external.metrics.k8s.io/v1beta1").unwrap();
            assert!(doc.contains("\"externalmetrics\"") && doc.contains(METRIC), "{doc}");

            wait_replicas(&ns, "app", 3).await; // 6 / 2, Swell's metric
            wait_replicas(&ns, "plain", 4).await; // 8 / 2, the adapter's
            // The adapter logs requests through klog, which flushes every few seconds.
            let path = format!(
                "/apis/external.metrics.k8s.io/v1beta1/namespaces/{}/{METRIC}",
                ns.name
            );
            wait_until("the adapter to log the HPA's reads through Swell", WAIT, || async {
                match adapter.requests_for(&path) {
                    0 => Err("no request logged yet".to_string()),
                    _ => Ok(()),
                }
            })
            .await;

            adapter.stop();
            let err = wait_until("the delegated metric to fail clearly", WAIT, || async {
                match raw(cluster, None, &metric_path(&ns.name)) {
                    Err(e) if e.contains("ServiceUnavailable") => Ok(e),
                    other => Err(format!("{other:?}")),
                }
            })
            .await;
            assert!(err.contains("delegate \"prom\"") && err.contains(METRIC), "{err}");
            assert!(err.contains("cannot be reached"), "{err}");
            // Swell's own metric is still served, and still scales.
            let own = format!(
                "/apis/external.metrics.k8s.io/v1beta1/namespaces/{}/s0-metric-api-value?labelSelector=scaledobject.keda.sh%2Fname%3Dapp",
                ns.name
            );
            let v = raw(cluster, None, &own).unwrap();
            assert!(v.contains("\"value\":\"6\""), "{v}");
            source.set(Reply::Value(10.0));
            wait_replicas(&ns, "app", 5).await;
            assert_eq!(replicas(&ns, "plain").await, Ok(4), "an error never scales");

            // Back up on the same address: delegated reads work again.
            target.set(12.0);
            adapter.restart();
            wait_replicas(&ns, "plain", 6).await;
            assert!(op.log_text().contains("delegated read failed"));
        })
        .await;
}

/// Swell's own SubjectAccessReview comes first: a caller without RBAC for
/// external.metrics.k8s.io gets Swell's 403 and the delegate never sees the request; with
/// RBAC the same read is answered by the delegate.
#[tokio::test(flavor = "multi_thread")]
async fn caller_without_rbac_gets_swells_403_not_the_delegates_answer() {
    swell();
    let cluster = cluster();
    cluster
        .with_namespace("deleg-403", |ns| async move {
            let dir = cluster.dir.join(format!("deleg-{}", ns.name));
            let delegates = pki(&dir);
            let _target = prometheus_target(&ns, 3.0).await;
            let adapter = Adapter::start(cluster, &dir);
            wait_listed(&adapter, &delegates).await;
            let (_op, _guard) = swell_delegating(cluster, &ns, &adapter, &delegates).await;
            ns.apply(
                cluster,
                &format!(
                    r#"
apiVersion: v1
kind: ServiceAccount
metadata: {{name: nobody}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: reader}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: read-external}}
rules:
- apiGroups: [external.metrics.k8s.io]
  resources: ["*"]
  verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: reader}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: read-external}}
subjects: [{{kind: ServiceAccount, name: reader, namespace: {ns}}}]
"#,
                    ns = ns.name
                ),
            )
            .unwrap();
            let path = metric_path(&ns.name);
            let uri = format!(
                "/apis/external.metrics.k8s.io/v1beta1/namespaces/{}/{METRIC}",
                ns.name
            );
            // Swell's discovery has listed it before the reads below.
            wait_until("Swell to list the delegate's metric", WAIT, || async {
                let doc = raw(cluster, None, "/apis/external.metrics.k8s.io/v1beta1")?;
                if doc.contains(METRIC) {
                    Ok(())
                } else {
                    Err(doc)
                }
            })
            .await;

            let nobody = cluster.service_account_kubeconfig(&ns.name, "nobody").await;
            let err = raw(cluster, Some(&nobody), &path).unwrap_err();
            assert!(err.contains("Forbidden"), "{err}");
            assert!(
                err.contains(&format!("system:serviceaccount:{}:nobody", ns.name))
                    && err.contains("cannot list resource \"adapter_queue_depth\""),
                "{err}"
            );
            assert_eq!(adapter.requests_for(&uri), 0, "the delegate never saw it");

            let reader = cluster.service_account_kubeconfig(&ns.name, "reader").await;
            let ok = wait_until("the reader's delegated read", WAIT, || async {
                raw(cluster, Some(&reader), &path)
            })
            .await;
            assert!(
                ok.contains("\"metricName\":\"adapter_queue_depth\""),
                "{ok}"
            );
            assert!(ok.contains("\"value\":\"3\""), "{ok}");
            assert!(adapter.requests_for(&uri) > 0);
        })
        .await;
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

async fn timed_reads(
    client: &DelegateClient,
    url: &str,
    headers: &[(HeaderName, HeaderValue)],
) -> Vec<Duration> {
    for _ in 0..50 {
        client.get(url, headers).await.unwrap();
    }
    let mut out = Vec::with_capacity(1000);
    for _ in 0..1000 {
        let t = Instant::now();
        let (status, _) = client.get(url, headers).await.unwrap();
        out.push(t.elapsed());
        assert_eq!(status, 200);
    }
    out.sort();
    out
}

/// The latency Swell adds to a delegated read: 1,000 sequential reads of the adapter's
/// metric, straight to the adapter and through Swell (its authentication, cached
/// authorization, routing and a kept-alive connection to the adapter). Prints p50/p99.
/// Run: `cargo test -p swell --test delegation -- --ignored --nocapture delegated_read_latency`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement, not a check: prints p50/p99"]
async fn delegated_read_latency() {
    swell();
    let cluster = cluster();
    cluster
        .with_namespace("deleg-bench", |ns| async move {
            let dir = cluster.dir.join(format!("deleg-{}", ns.name));
            let delegates = pki(&dir);
            let _target = prometheus_target(&ns, 3.0).await;
            let adapter = Adapter::start(cluster, &dir);
            wait_listed(&adapter, &delegates).await;
            // Swell serves the adapter's certificate (valid for 127.0.0.1), no APIService.
            let port = metrics_api::free_port();
            let d = |f: &str| dir.join(f).display().to_string();
            let args = [
                "--leader-elect=false".to_string(),
                format!("--metrics-api-bind-address=127.0.0.1:{port}"),
                format!("--metrics-api-cert-file={}", d("adapter.crt")),
                format!("--metrics-api-key-file={}", d("adapter.key")),
                format!("--metrics-api-delegate=prom={}", adapter.url()),
                format!("--metrics-api-delegate-tls-dir={}", delegates.display()),
                "--metrics-api-delegate-refresh=1".into(),
            ];
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let _op = Operator::start(cluster, swell(), &ns.name, None, &args);
            // To Swell as the aggregator would: the cluster's front-proxy client certificate.
            let pki_dir = cluster.dir.join("pki");
            let front = dir.join("front");
            std::fs::create_dir_all(&front).unwrap();
            std::fs::copy(dir.join("serving-ca.crt"), front.join("ca.crt")).unwrap();
            std::fs::copy(pki_dir.join("front-proxy-client.crt"), front.join("tls.crt")).unwrap();
            std::fs::copy(pki_dir.join("front-proxy-client.key"), front.join("tls.key")).unwrap();
            let via_swell = {
                let spec = DelegateSpec { name: "swell".into(), base_url: format!("https://127.0.0.1:{port}") };
                DelegateClient::new(&spec, &DelegateTls::load("swell", &front).unwrap(), Duration::from_secs(10)).unwrap()
            };
            let direct = client_as_swell(&delegates, &adapter.url());
            let headers = as_user("bench", "system:masters");
            let rel = format!(
                "/apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/{METRIC}?labelSelector=target%3D{ns}",
                ns = ns.name
            );
            let swell_url = format!("https://127.0.0.1:{port}{rel}");
            wait_until("Swell to delegate the metric", WAIT, || async {
                match via_swell.get(&swell_url, &headers).await {
                    Ok((s, _)) if s == 200 => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            })
            .await;
            let d = timed_reads(&direct, &format!("{}{rel}", adapter.url()), &headers).await;
            let s = timed_reads(&via_swell, &swell_url, &headers).await;
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            println!(
                "delegated read latency over 1000 reads: direct to prometheus-adapter p50 {:.2} ms p99 {:.2} ms; through Swell p50 {:.2} ms p99 {:.2} ms; Swell adds p50 {:.2} ms p99 {:.2} ms",
                ms(percentile(&d, 0.5)), ms(percentile(&d, 0.99)),
                ms(percentile(&s, 0.5)), ms(percentile(&s, 0.99)),
                ms(percentile(&s, 0.5)) - ms(percentile(&d, 0.5)),
                ms(percentile(&s, 0.99)) - ms(percentile(&d, 0.99)),
            );
        })
        .await;
}

/// The chart's `metricsApi.delegates` becomes the operator's flags, parsed by the same
/// function the operator uses, and one read-only Secret volume per delegate at the
/// directory the flag names; `helm lint --strict` passes with it.
#[test]
fn chart_renders_delegates() {
    let cluster = Cluster::shared();
    let chart = swell_testkit::repo_root().join("charts/swell");
    let values = r#"[{"name":"prometheus","url":"https://prometheus-adapter.monitoring.svc:443","secretName":"swell-delegate-prometheus"},{"name":"datadog","url":"https://datadog-cluster-agent-metrics-api.datadog.svc:8443","secretName":"swell-delegate-datadog"}]"#;
    let helm = |args: &[&str]| {
        let out = Command::new(cluster.bin.join("helm"))
            .args(args)
            .arg(&chart)
            .args(["--set-json", &format!("metricsApi.delegates={values}")])
            .env("HELM_CACHE_HOME", cluster.dir.join("helm/cache"))
            .env("HELM_CONFIG_HOME", cluster.dir.join("helm/config"))
            .env("HELM_DATA_HOME", cluster.dir.join("helm/data"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "helm {args:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    helm(&["lint", "--strict"]);
    let yaml = helm(&[
        "template",
        "swell",
        "--show-only",
        "templates/deployment.yaml",
    ]);
    let flag = |name: &str| {
        yaml.lines()
            .find_map(|l| l.trim().strip_prefix(&format!("- --{name}=")))
            .unwrap_or_else(|| panic!("no --{name} in\n{yaml}"))
            .to_string()
    };
    let specs =
        swell_metrics_api::delegate::parse_delegates(&flag("metrics-api-delegate")).unwrap();
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["prometheus", "datadog"]);
    assert_eq!(
        specs[1].base_url,
        "https://datadog-cluster-agent-metrics-api.datadog.svc:8443"
    );
    let dir = flag("metrics-api-delegate-tls-dir");
    assert_eq!(flag("metrics-api-delegate-refresh"), "30");
    for (name, secret) in [
        ("prometheus", "swell-delegate-prometheus"),
        ("datadog", "swell-delegate-datadog"),
    ] {
        assert!(
            yaml.contains(&format!(
                "mountPath: {dir}/{name}\n              readOnly: true"
            )),
            "{yaml}"
        );
        assert!(
            yaml.contains(&format!(
                "- name: delegate-{name}\n          secret:\n            secretName: {secret}"
            )),
            "{yaml}"
        );
    }
    // Off unless configured.
    let out = Command::new(cluster.bin.join("helm"))
        .args(["template", "swell"])
        .arg(&chart)
        .args(["--show-only", "templates/deployment.yaml"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("delegate"));
}
