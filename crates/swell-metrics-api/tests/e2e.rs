//! End-to-end tests against the real local control plane: the aggregation layer, the real
//! HPA controller, front-proxy authentication and SubjectAccessReview authorization.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use serde_json::json;
use support::{Ca, Identity, Reply, client_config, get_once};
use swell_metrics_api::{
    APISERVICE_NAME, CertSource, Config, MetricError, MetricSource, MetricValue, MinTls,
    SelfSigned, Server,
};
use swell_testkit::{Cluster, wait_until};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(120);
const SELECTOR: &str = "scaledobject.keda.sh/name=demo";
const METRIC_PATH: &str = "/apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/s0-demo?labelSelector=scaledobject.keda.sh%2Fname%3Ddemo";

/// Values per (namespace, metric), and every request seen.
#[derive(Default)]
struct Fake {
    values: Mutex<HashMap<(String, String), f64>>,
    seen: Mutex<Vec<(String, String, String)>>,
}

impl Fake {
    fn set(&self, ns: &str, metric: &str, v: f64) {
        self.values
            .lock()
            .unwrap()
            .insert((ns.into(), metric.into()), v);
    }
}

#[async_trait::async_trait]
impl MetricSource for Fake {
    async fn external_metric(
        &self,
        namespace: &str,
        metric: &str,
        selector: &str,
    ) -> Result<Vec<MetricValue>, MetricError> {
        self.seen
            .lock()
            .unwrap()
            .push((namespace.into(), metric.into(), selector.into()));
        let v = self
            .values
            .lock()
            .unwrap()
            .get(&(namespace.to_string(), metric.to_string()))
            .copied();
        match v {
            Some(value) if selector == SELECTOR => Ok(vec![MetricValue {
                metric_name: metric.into(),
                metric_labels: BTreeMap::from([(
                    "scaledobject.keda.sh/name".to_string(),
                    "demo".to_string(),
                )]),
                value,
                timestamp: jiff::Timestamp::now(),
            }]),
            Some(_) => Err(MetricError::BadRequest(format!(
                "unexpected selector {selector:?}"
            ))),
            None => Err(MetricError::NotFound(format!(
                "no metric {metric} in namespace {namespace}"
            ))),
        }
    }
}

fn pki(cluster: &Cluster, file: &str) -> String {
    std::fs::read_to_string(cluster.dir.join("pki").join(file)).unwrap()
}

fn kubectl(cluster: &Cluster, args: &[&str]) -> (bool, String) {
    let out = cluster.kubectl().args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// `kubectl apply` without a default namespace (the YAML names its namespaces).
fn apply(cluster: &Cluster, yaml: &str) {
    use std::io::Write as _;
    let mut child = cluster
        .kubectl()
        .args(["apply", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kubectl apply: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn localhost0() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn log_init() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "swell_metrics_api=info".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Direct requests to the port, with the cluster's real CAs and RBAC (no APIService).
// Multi-threaded: the test blocks on kubectl while the server must keep answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn direct_requests_are_authenticated_and_authorized() {
    log_init();
    let cluster = Cluster::shared();
    let fake = Arc::new(Fake::default());
    let cert = SelfSigned {
        dns_names: vec!["localhost".into()],
        validity: Duration::from_secs(3600),
        apiservice: None,
        validating_webhook: None,
    };
    let server = Server::bind(
        Config::new(localhost0(), CertSource::SelfSigned(cert)),
        fake.clone(),
        cluster.client().await,
    )
    .await
    .unwrap();
    let (addr, ca) = (server.local_addr(), server.ca_bundle().unwrap());
    let stop = CancellationToken::new();
    let running = tokio::spawn(server.run(stop.clone()));

    cluster
        .with_namespace("swell-mapi-direct", |ns| {
            let fake = fake.clone();
            let ca = ca.clone();
            async move {
                fake.set(&ns.name, "s0-demo", 2.5);
                fake.set(&ns.name, "s0-other", 7.0);
                // alice may list the metric s0-demo in this namespace, nothing else.
                ns.apply(
                    cluster,
                    r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: metric-reader}
rules:
- {apiGroups: [external.metrics.k8s.io], resources: [s0-demo], verbs: [list]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: alice}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: metric-reader}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}]
"#,
                )
                .unwrap();
                let path = METRIC_PATH.replace("{ns}", &ns.name);
                let front_proxy = Identity::from_pem(
                    &pki(cluster, "front-proxy-client.crt"),
                    &pki(cluster, "front-proxy-client.key"),
                );
                let front_proxy_ca =
                    Ca::from_pem(&pki(cluster, "front-proxy-ca.crt"), &pki(cluster, "front-proxy-ca.key"));
                let client_ca = Ca::from_pem(&pki(cluster, "ca.crt"), &pki(cluster, "ca.key"));
                let v12 = rustls::DEFAULT_VERSIONS;
                let as_proxy = client_config(&ca, Some(&front_proxy), v12);
                let get = |cfg, path: String, headers: Vec<(&'static str, &'static str)>| async move {
                    get_once(addr, cfg, &path, &headers).await.unwrap()
                };
                let expect = |r: &Reply, code: u16, what: &str| {
                    assert_eq!(r.status, code, "{what}: {}", r.body);
                    assert_eq!(r.content_type, "application/json", "{what}");
                    assert!(!r.body.contains("2500m"), "{what} leaked the value: {}", r.body);
                };
                // The authorization cache would otherwise make the RBAC above race the first
                // request: wait until RBAC has it.
                wait_until("alice's RoleBinding to take effect", WAIT, || {
                    let (as_proxy, path) = (as_proxy.clone(), path.clone());
                    async move {
                        let r = get_once(addr, as_proxy, &path, &[("X-Remote-User", "alice")])
                            .await?;
                        if r.status == 200 { Ok(()) } else { Err(r.body) }
                    }
                })
                .await;

                let none = client_config(&ca, None, v12);
                let r = get(none.clone(), path.clone(), vec![]).await;
                expect(&r, 401, "no client certificate");
                assert_eq!(r.json()["reason"], "Unauthorized");
                println!("401 without a client certificate: {}", r.body);
                let r = get(none.clone(), path.clone(), vec![("X-Remote-User", "swell-admin"), ("X-Remote-Group", "system:masters")]).await;
                expect(&r, 401, "X-Remote-User without the front-proxy certificate");

                let stranger = Ca::generate("stranger-ca").client("front-proxy-client", None);
                let r = get(client_config(&ca, Some(&stranger), v12), path.clone(), vec![("X-Remote-User", "swell-admin"), ("X-Remote-Group", "system:masters")]).await;
                expect(&r, 401, "client certificate from another CA");

                let wrong_cn = front_proxy_ca.client("not-the-proxy", None);
                let r = get(client_config(&ca, Some(&wrong_cn), v12), path.clone(), vec![("X-Remote-User", "swell-admin"), ("X-Remote-Group", "system:masters")]).await;
                expect(&r, 401, "front-proxy CA certificate with a CN not in allowed names");

                // A client-CA user is themselves, whatever X-Remote-User says.
                let mallory = client_ca.client("mallory", None);
                let r = get(client_config(&ca, Some(&mallory), v12), path.clone(), vec![("X-Remote-User", "alice")]).await;
                expect(&r, 403, "client certificate user without RBAC");
                assert!(r.body.contains(r#"User \"mallory\""#), "{}", r.body);

                let r = get(as_proxy.clone(), path.clone(), vec![("X-Remote-User", "bob"), ("X-Remote-Group", "system:authenticated")]).await;
                expect(&r, 403, "front-proxy user without RBAC");
                let status = r.json();
                assert_eq!(status["reason"], "Forbidden");
                let message = status["message"].as_str().unwrap();
                assert!(message.contains(&format!(r#"User "bob" cannot list resource "s0-demo" in API group "external.metrics.k8s.io" in the namespace "{}""#, ns.name)), "{message}");
                println!("403 for bob: {message}");

                let r = get(as_proxy.clone(), path.clone(), vec![("X-Remote-User", "alice"), ("Accept", "application/vnd.kubernetes.protobuf, application/json")]).await;
                assert_eq!(r.status, 200, "{}", r.body);
                assert_eq!(r.content_type, "application/json");
                let list = r.json();
                println!("200 for alice: {list}");
                assert_eq!(list["kind"], "ExternalMetricValueList");
                assert_eq!(list["items"][0]["value"], "2500m");
                assert_eq!(list["items"][0]["metricName"], "s0-demo");

                // RBAC is per metric name: alice may not read s0-other.
                let other = path.replace("s0-demo", "s0-other");
                let r = get(as_proxy.clone(), other, vec![("X-Remote-User", "alice")]).await;
                assert_eq!(r.status, 403, "{}", r.body);
                assert!(!r.body.contains("\"7\""), "{}", r.body);

                // A client-CA admin (system:masters) sees discovery, 404s and NotFound.
                let admin = Identity::from_pem(&pki(cluster, "admin.crt"), &pki(cluster, "admin.key"));
                let as_admin = client_config(&ca, Some(&admin), v12);
                let r = get(as_admin.clone(), "/apis".into(), vec![]).await;
                assert_eq!((r.status, r.json()["kind"].clone()), (200, json!("APIGroupList")), "{}", r.body);
                for p in ["/openapi/v2", "/openapi/v3"] {
                    let r = get(as_admin.clone(), p.into(), vec![]).await;
                    assert_eq!(r.status, 404, "{p}: {}", r.body);
                }
                let missing = path.replace("s0-demo", "s0-missing");
                let r = get(as_admin.clone(), missing, vec![]).await;
                assert_eq!((r.status, r.json()["reason"].clone()), (404, json!("NotFound")), "{}", r.body);

                for p in ["/healthz", "/readyz", "/livez"] {
                    let r = get(none.clone(), p.into(), vec![]).await;
                    assert_eq!(r.status, 200, "{p}");
                }
                let seen = fake.seen.lock().unwrap().clone();
                assert!(
                    seen.iter().all(|(_, m, s)| m != "s0-demo" || s == SELECTOR),
                    "{seen:?}"
                );
                assert!(
                    !seen.iter().any(|(_, m, _)| m == "s0-other"),
                    "denied requests never reach the source: {seen:?}"
                );
            }
        })
        .await;
    stop.cancel();
    running.await.unwrap().unwrap();
}

/// Only TLS 1.3 when asked.
#[tokio::test]
async fn tls13_minimum_refuses_tls12_clients() {
    let front_proxy_ca = Ca::generate("fp");
    let data = BTreeMap::from([(
        "requestheader-client-ca-file".to_string(),
        front_proxy_ca.pem.clone(),
    )]);
    let authn = swell_metrics_api::Authentication::from_configmap_data(&data).unwrap();
    let mut config = Config::new(
        localhost0(),
        CertSource::SelfSigned(SelfSigned {
            dns_names: vec!["localhost".into()],
            validity: Duration::from_secs(3600),
            apiservice: None,
            validating_webhook: None,
        }),
    );
    config.min_tls = MinTls::Tls13;
    let server = Server::bind_with(config, Arc::new(Fake::default()), authn, Arc::new(AllowAll))
        .await
        .unwrap();
    let (addr, ca) = (server.local_addr(), server.ca_bundle().unwrap());
    let stop = CancellationToken::new();
    let running = tokio::spawn(server.run(stop.clone()));
    let v12 = client_config(&ca, None, &[&rustls::version::TLS12]);
    let err = get_once(addr, v12, "/healthz", &[]).await.err().unwrap();
    assert!(err.starts_with("TLS"), "{err}");
    let v13 = client_config(&ca, None, &[&rustls::version::TLS13]);
    assert_eq!(
        get_once(addr, v13, "/healthz", &[]).await.unwrap().status,
        200
    );
    stop.cancel();
    running.await.unwrap().unwrap();
}

struct AllowAll;

#[async_trait::async_trait]
impl swell_metrics_api::Authorizer for AllowAll {
    async fn authorize(
        &self,
        _: &swell_metrics_api::UserInfo,
        _: &swell_metrics_api::Attributes,
    ) -> Result<swell_metrics_api::Decision, swell_metrics_api::AuthorizationError> {
        Ok(swell_metrics_api::Decision {
            allowed: true,
            reason: String::new(),
        })
    }
}

/// Deletes the APIService and the cluster-wide RBAC made for the test, pass or fail.
struct Cleanup {
    cluster: &'static Cluster,
    label: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let label = format!("swell.dev/metrics-api-test={}", self.label);
        let _ = kubectl(
            self.cluster,
            &[
                "delete",
                "apiservice",
                APISERVICE_NAME,
                "--ignore-not-found",
            ],
        );
        let _ = kubectl(
            self.cluster,
            &["delete", "clusterrolebinding,clusterrole", "-l", &label],
        );
        let _ = kubectl(
            self.cluster,
            &["delete", "rolebinding", "-n", "kube-system", "-l", &label],
        );
    }
}

fn apiservice_field(cluster: &Cluster, jsonpath: &str) -> String {
    kubectl(
        cluster,
        &[
            "get",
            "apiservice",
            APISERVICE_NAME,
            "-o",
            &format!("jsonpath={jsonpath}"),
        ],
    )
    .1
}

fn available(cluster: &Cluster) -> Result<(), String> {
    let s = apiservice_field(
        cluster,
        r#"{.status.conditions[?(@.type=="Available")].status} {.status.conditions[?(@.type=="Available")].message}"#,
    );
    if s.starts_with("True") {
        Ok(())
    } else {
        Err(s)
    }
}

/// Everything that needs the (one per cluster) APIService, in one test: registration with
/// the self-generated CA, reads through the aggregator, a real HPA scaling on the value,
/// RBAC through the API server, and certificate rotation.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn aggregated_external_metrics_drive_a_real_hpa() {
    log_init();
    let cluster = Cluster::shared();
    wait_until(
        "no other v1beta1.external.metrics.k8s.io APIService",
        Duration::from_secs(60),
        || async {
            let (ok, out) = kubectl(cluster, &["get", "apiservice", APISERVICE_NAME]);
            if ok { Err(out) } else { Ok(()) }
        },
    )
    .await;
    let fake = Arc::new(Fake::default());
    cluster
        .with_namespace("swell-mapi", |ns| {
            let fake = fake.clone();
            async move {
                let _cleanup = Cleanup { cluster, label: ns.name.clone() };
                let n = &ns.name;
                // The server runs as a ServiceAccount with exactly the RBAC production needs.
                let rbac = format!(
                    r#"
apiVersion: v1
kind: ServiceAccount
metadata: {{name: swell-metrics, namespace: {n}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: {n}-auth-delegator, labels: {{swell.dev/metrics-api-test: {n}}}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:auth-delegator"}}
subjects: [{{kind: ServiceAccount, name: swell-metrics, namespace: {n}}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: {n}-auth-reader, namespace: kube-system, labels: {{swell.dev/metrics-api-test: {n}}}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: extension-apiserver-authentication-reader}}
subjects: [{{kind: ServiceAccount, name: swell-metrics, namespace: {n}}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: {n}-apiservice, labels: {{swell.dev/metrics-api-test: {n}}}}}
rules:
- {{apiGroups: [apiregistration.k8s.io], resources: [apiservices], resourceNames: [{APISERVICE_NAME}], verbs: [get, patch]}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: {n}-apiservice, labels: {{swell.dev/metrics-api-test: {n}}}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {n}-apiservice}}
subjects: [{{kind: ServiceAccount, name: swell-metrics, namespace: {n}}}]
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: nobody, namespace: {n}}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: getter, namespace: {n}}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: lister, namespace: {n}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: get-metric, namespace: {n}}}
rules: [{{apiGroups: [external.metrics.k8s.io], resources: [s0-demo], verbs: [get]}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: getter, namespace: {n}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: get-metric}}
subjects: [{{kind: ServiceAccount, name: getter, namespace: {n}}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: list-metric, namespace: {n}}}
rules: [{{apiGroups: [external.metrics.k8s.io], resources: [s0-demo], verbs: [list]}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: lister, namespace: {n}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: list-metric}}
subjects: [{{kind: ServiceAccount, name: lister, namespace: {n}}}]
"#
                );
                apply(cluster, &rbac);
                let sa = format!("system:serviceaccount:{n}:swell-metrics");
                wait_until("the server's RBAC to take effect", WAIT, || async {
                    for check in [["create", "subjectaccessreviews.authorization.k8s.io"], ["patch", &format!("apiservices.apiregistration.k8s.io/{APISERVICE_NAME}")]] {
                        let (ok, out) = kubectl(cluster, &["auth", "can-i", check[0], check[1], "--as", &sa]);
                        if !ok { return Err(format!("{check:?}: {out}")); }
                    }
                    Ok(())
                })
                .await;
                let server_client = cluster.service_account_client(n, "swell-metrics").await;

                fake.set(n, "s0-demo", 2.5);
                let mut cert = SelfSigned::for_service("swell-metrics", n);
                cert.dns_names.push("localhost".into());
                // Short-lived so the test also sees a rotation (due when a third is left).
                cert.validity = Duration::from_secs(60);
                let server = Server::bind(
                    Config::new(localhost0(), CertSource::SelfSigned(cert)),
                    fake.clone(),
                    server_client,
                )
                .await
                .unwrap();
                let port = server.local_addr().port();
                let first_ca = server.ca_bundle().unwrap();

                // Registered as a chart would: no caBundle yet, verification on.
                ns.apply(cluster, &format!(r#"
apiVersion: v1
kind: Service
metadata: {{name: swell-metrics, namespace: {n}}}
spec: {{type: ExternalName, externalName: localhost}}
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {{name: {APISERVICE_NAME}}}
spec:
  group: external.metrics.k8s.io
  version: v1beta1
  groupPriorityMinimum: 100
  versionPriority: 100
  insecureSkipTLSVerify: false
  service: {{name: swell-metrics, namespace: {n}, port: {port}}}
"#)).unwrap();
                let stop = CancellationToken::new();
                let _stop = stop.clone().drop_guard();
                let running = tokio::spawn(server.run(stop.clone()));

                wait_until("the APIService to report Available=True", WAIT, || async { available(cluster) }).await;
                let bundle = apiservice_field(cluster, "{.spec.caBundle}");
                let decoded: k8s_openapi::ByteString = serde_json::from_value(json!(bundle)).unwrap();
                assert_eq!(String::from_utf8(decoded.0).unwrap(), first_ca, "caBundle is our CA");
                // `false` is omitted when stored.
                assert_ne!(apiservice_field(cluster, "{.spec.insecureSkipTLSVerify}"), "true");
                println!("APIService: {}", apiservice_field(cluster, r#"{.status.conditions[?(@.type=="Available")]}"#));

                // The aggregator's proxy may lag the Available condition by a moment.
                let raw = |path: String| async move {
                    let what = format!("kubectl get --raw {path}");
                    wait_until(&what, WAIT, || async {
                        let (ok, out) = kubectl(cluster, &["get", "--raw", &path]);
                        if ok { Ok(serde_json::from_str::<serde_json::Value>(&out).unwrap()) } else { Err(out) }
                    })
                    .await
                };
                let resources = raw("/apis/external.metrics.k8s.io/v1beta1".into()).await;
                assert_eq!(resources["resources"][0]["name"], "externalmetrics");
                let path = METRIC_PATH.replace("{ns}", n);
                let list = raw(path.clone()).await;
                println!("kubectl get --raw {path}\n{list}");
                assert_eq!(list["items"][0]["value"], "2500m");
                assert_eq!(list["items"][0]["metricLabels"]["scaledobject.keda.sh/name"], "demo");
                let (ok, out) = kubectl(cluster, &["get", "--raw", &path.replace("s0-demo", "s0-missing")]);
                assert!(!ok && out.contains("NotFound"), "{out}");

                // Through the API server as ServiceAccounts: no RBAC and `get` are refused
                // (the metric read is `list`), `list` is allowed.
                let through = |sa: &'static str| {
                    let path = path.clone();
                    async move {
                        let client = cluster.service_account_client(n, sa).await;
                        client.request_text(http::Request::get(path).body(Vec::new()).unwrap()).await
                    }
                };
                for sa in ["nobody", "getter"] {
                    let err = through(sa).await.unwrap_err();
                    let text = err.to_string();
                    println!("{sa}: {text}");
                    assert!(matches!(&err, kube::Error::Api(s) if s.code == 403), "{sa}: {text}");
                    assert!(text.contains(&format!("system:serviceaccount:{n}:{sa}")), "{text}");
                    assert!(!text.contains("2500m"), "{text}");
                }
                let text = through("lister").await.unwrap();
                assert!(text.contains("2500m"), "{text}");

                // A second replica with its own CA (the chart runs two): it adds its CA and
                // keeps the first's, so the aggregator can reach either replica.
                let mut cert_b = SelfSigned::for_service("swell-metrics", n);
                cert_b.dns_names.push("localhost".into());
                let server_b = Server::bind(
                    Config::new(localhost0(), CertSource::SelfSigned(cert_b)),
                    fake.clone(),
                    cluster.service_account_client(n, "swell-metrics").await,
                )
                .await
                .unwrap();
                let port_b = server_b.local_addr().port();
                let ca_b = server_b.ca_bundle().unwrap();
                let stop_b = CancellationToken::new();
                let _stop_b = stop_b.clone().drop_guard();
                let running_b = tokio::spawn(server_b.run(stop_b.clone()));
                let bundle = wait_until("both replicas' CAs in the caBundle", WAIT, || async {
                    let now = apiservice_field(cluster, "{.spec.caBundle}");
                    let decoded: k8s_openapi::ByteString = serde_json::from_value(json!(now)).map_err(|e| e.to_string())?;
                    let pem = String::from_utf8_lossy(&decoded.0).into_owned();
                    if pem.contains(&ca_b) && pem.contains(&first_ca) { Ok(now) } else { Err(pem) }
                })
                .await;
                let reads_via = |port: u16| {
                    let path = path.clone();
                    async move {
                        let patch = format!(r#"{{"spec":{{"service":{{"port":{port}}}}}}}"#);
                        let (ok, out) = kubectl(cluster, &["patch", "apiservice", APISERVICE_NAME, "--type=merge", "-p", &patch]);
                        assert!(ok, "{out}");
                        wait_until(&format!("reads through the replica on port {port}"), WAIT, || async {
                            available(cluster)?;
                            let (ok, out) = kubectl(cluster, &["get", "--raw", &path]);
                            if ok && out.contains("2500m") { Ok(()) } else { Err(out) }
                        })
                        .await;
                    }
                };
                reads_via(port_b).await;
                reads_via(port).await;
                // Several passes later the first replica's CA is still there.
                tokio::time::sleep(Duration::from_secs(3)).await;
                let (ok, out) = kubectl(cluster, &["get", "--raw", &path]);
                assert!(ok && out.contains("2500m"), "{out}");

                // A real HPA on a Deployment: AverageValue 1 with a value of 4 → 4 replicas.
                let deploy: Deployment = serde_json::from_value(json!({
                    "metadata": {"name": "demo"},
                    "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "demo"}},
                      "template": {"metadata": {"labels": {"app": "demo"}},
                        "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}
                })).unwrap();
                ns.api::<Deployment>().create(&Default::default(), &deploy).await.unwrap();
                fake.set(n, "s0-demo", 4.0);
                let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({
                    "metadata": {"name": "demo"},
                    "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "demo"},
                      "minReplicas": 1, "maxReplicas": 10,
                      "metrics": [{"type": "External", "external": {
                         "metric": {"name": "s0-demo", "selector": {"matchLabels": {"scaledobject.keda.sh/name": "demo"}}},
                         "target": {"type": "AverageValue", "averageValue": "1"}}}]}
                })).unwrap();
                let hpas = ns.api::<HorizontalPodAutoscaler>();
                hpas.create(&Default::default(), &hpa).await.unwrap();
                let deployments = ns.api::<Deployment>();
                let scaled_to = |want: i32, current: &'static str| {
                    let (hpas, deployments) = (hpas.clone(), deployments.clone());
                    async move {
                        let d = deployments.get("demo").await.map_err(|e| e.to_string())?;
                        let replicas = d.spec.and_then(|s| s.replicas).unwrap_or_default();
                        let h = hpas.get("demo").await.map_err(|e| e.to_string())?;
                        let status = h.status.unwrap_or_default();
                        let metric = status.current_metrics.unwrap_or_default().first()
                            .and_then(|m| m.external.clone())
                            .and_then(|e| e.current.average_value)
                            .map(|q| q.0);
                        let seen = format!("replicas={replicas} hpa.currentReplicas={:?} currentMetrics.external.averageValue={metric:?}", status.current_replicas);
                        if replicas == want && status.current_replicas == Some(want) && metric.as_deref() == Some(current) {
                            Ok(seen)
                        } else {
                            Err(seen)
                        }
                    }
                };
                let up = wait_until("the HPA to scale the Deployment 1 → 4", WAIT, || scaled_to(4, "1")).await;
                println!("scaled up: {up}");
                fake.set(n, "s0-demo", 0.5);
                let down = wait_until("the HPA to scale the Deployment back to 1", WAIT, || scaled_to(1, "500m")).await;
                println!("scaled down: {down}");
                let seen = fake.seen.lock().unwrap().clone();
                assert!(seen.iter().any(|(ns, m, s)| ns == n && m == "s0-demo" && s == SELECTOR), "{seen:?}");

                // Rotation: a new CA joins the bundle (the old one stays) and reads keep working.
                let rotated = wait_until("the serving certificate to rotate", WAIT, || async {
                    let now = apiservice_field(cluster, "{.spec.caBundle}");
                    if now != bundle { Ok(now) } else { Err("caBundle unchanged".to_string()) }
                })
                .await;
                let decoded: k8s_openapi::ByteString = serde_json::from_value(json!(rotated)).unwrap();
                let pem = String::from_utf8(decoded.0).unwrap();
                assert!(pem.contains(&first_ca) && pem.contains(&ca_b), "{pem}");
                assert!(!pem.starts_with(&first_ca) && !pem.starts_with(&ca_b), "the new CA leads: {pem}");
                wait_until("reads after rotation", WAIT, || async {
                    available(cluster)?;
                    let (ok, out) = kubectl(cluster, &["get", "--raw", &path]);
                    if ok && out.contains("500m") { Ok(()) } else { Err(out) }
                })
                .await;
                println!("rotated caBundle now holds {} certificates; reads still work", pem.matches("BEGIN CERTIFICATE").count());

                stop.cancel();
                running.await.unwrap().unwrap();
                stop_b.cancel();
                running_b.await.unwrap().unwrap();
            }
        })
        .await;
    let (ok, _) = kubectl(cluster, &["get", "apiservice", APISERVICE_NAME]);
    assert!(!ok, "the APIService is gone after the test");
}
