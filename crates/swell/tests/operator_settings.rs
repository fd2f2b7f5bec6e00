//! The operator settings KEDA users set by environment or flag, each against the real
//! control plane: WATCH_LABEL_SELECTOR(_FOR_TRIGGERAUTH), the leader-election durations,
//! --kube-api-qps/--kube-api-burst, --ca-dir and KEDA_HTTP_MIN_TLS_VERSION against an
//! HTTPS source with a private CA, and the settings Swell refuses, each with its message.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::coordination::v1::Lease;
use swell_testkit::{MetricServer, Operator, wait_until};

/// A ScaledObject labelled `labels` (a YAML map) reading `url`, spliced with `extra`.
fn labelled(name: &str, labels: &str, url: &str, extra: &str) -> String {
    scaled_object(name, name, url, extra).replacen(
        &format!("metadata: {{name: {name}}}"),
        &format!("metadata: {{name: {name}, labels: {labels}}}"),
        1,
    )
}

#[tokio::test]
async fn watch_label_selectors_scope_what_the_operator_sees() {
    let cluster = cluster();
    cluster
        .with_namespace("set-selector", |ns| async move {
            let source = MetricServer::start(10.0).await;
            for app in ["mine", "theirs", "hidden-auth"] {
                ns.apply(cluster, &deployment(app, 0)).unwrap();
            }
            ns.apply(cluster, &labelled("mine", "{team: a}", &source.url, ""))
                .unwrap();
            ns.apply(cluster, &labelled("theirs", "{team: b}", &source.url, ""))
                .unwrap();
            // A TriggerAuthentication without the auth selector's label is not seen, even by
            // a ScaledObject the other selector matches.
            let auth = "apiVersion: keda.sh/v1alpha1
kind: TriggerAuthentication
metadata: {name: unlabelled}
spec:
  secretTargetRef: []
";
            ns.apply(cluster, auth).unwrap();
            let uses_auth = "    authenticationRef: {name: unlabelled}\n    metadata: {url";
            let authed = labelled("hidden-auth", "{team: a}", &source.url, "").replacen(
                "    metadata: {url",
                uses_auth,
                1,
            );
            ns.apply(cluster, &authed).unwrap();
            let env = [
                ("WATCH_LABEL_SELECTOR", "team in (a)"),
                ("WATCH_LABEL_SELECTOR_FOR_TRIGGERAUTH", "shared=yes"),
            ];
            // A tight client-side limit still gets a reconcile through, only slower.
            let args = [
                "--leader-elect=false",
                "--kube-api-qps=5",
                "--kube-api-burst=5",
            ];
            let _op = Operator::start_env(cluster, swell(), &ns.name, None, &args, &env);
            wait_replicas(&ns, "mine", 1).await;
            wait_condition(&ns, "mine", "Ready", "True").await;
            let c = wait_condition(&ns, "hidden-auth", "Ready", "False").await;
            assert!(
                c.contains("unlabelled"),
                "names the unseen TriggerAuthentication: {c}"
            );
            // Everything was there before the operator started: had it seen `theirs`, the
            // same first pass would have given it conditions and an HPA.
            tokio::time::sleep(Duration::from_secs(3)).await;
            let theirs = so(&ns, "theirs").await;
            let conditions = theirs.status.and_then(|s| s.conditions).unwrap_or_default();
            assert!(conditions.is_empty(), "{conditions:?}");
            let hpa = ns
                .api::<HorizontalPodAutoscaler>()
                .get_opt("keda-hpa-theirs")
                .await;
            assert!(hpa.unwrap().is_none());
            assert_eq!(replicas(&ns, "theirs").await, Ok(0));
        })
        .await;
}

#[tokio::test]
async fn leader_election_takes_keda_s_durations() {
    let cluster = cluster();
    cluster
        .with_namespace("set-lease", |ns| async move {
            let env = [
                ("KEDA_OPERATOR_LEADER_ELECTION_LEASE_DURATION", "7s"),
                ("KEDA_OPERATOR_LEADER_ELECTION_RENEW_DEADLINE", "5s"),
                ("KEDA_OPERATOR_LEADER_ELECTION_RETRY_PERIOD", "1s"),
            ];
            let args = ["--leader-elect=true", "--identity", "one"];
            let op = Operator::start_env(cluster, swell(), &ns.name, None, &args, &env);
            let leases = ns.api::<Lease>();
            let renewed = || async {
                let l = leases
                    .get("swell-operator")
                    .await
                    .map_err(|e| e.to_string())?;
                let spec = l.spec.unwrap_or_default();
                match (spec.holder_identity.as_deref(), spec.lease_duration_seconds) {
                    (Some("one"), Some(7)) => spec.renew_time.ok_or("no renewTime".to_string()),
                    other => Err(format!("holder, duration: {other:?}")),
                }
            };
            let first = wait_until("the Lease held for 7s", WAIT, renewed).await;
            // Renewed every retry period, not only as the Lease nears expiry.
            wait_until("the Lease renewed", WAIT, || async {
                let now = renewed().await?;
                (now != first)
                    .then_some(())
                    .ok_or("not renewed yet".to_string())
            })
            .await;
            assert!(op.log_text().contains("became leader"));
        })
        .await;
}

/// Arguments, environment, and the message the operator stops with.
type Refused<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);

/// Settings Swell refuses: the operator stops at start-up with a message naming each.
#[tokio::test]
async fn refused_settings_stop_the_operator_with_their_reason() {
    let cluster = cluster();
    cluster
        .with_namespace("set-refused", |ns| async move {
            let cases: [Refused; 5] = [
                (
                    &["--profiling-bind-address=:8082"],
                    &[],
                    "no Go pprof endpoint",
                ),
                (
                    &[],
                    &[("WATCH_LABEL_SELECTOR", "team in (a")],
                    "WATCH_LABEL_SELECTOR \"team in (a\" is not a label selector",
                ),
                (
                    &[],
                    &[("KEDA_HTTP_MIN_TLS_VERSION", "TLS11")],
                    "TLS 1.2 and 1.3 only",
                ),
                (
                    &["--leader-elect=true"],
                    &[("KEDA_OPERATOR_LEADER_ELECTION_RENEW_DEADLINE", "20s")],
                    "LEASE_DURATION (15s) must be greater than RENEW_DEADLINE (20s)",
                ),
                (
                    &["--kube-api-qps=1", "--kube-api-burst=0"],
                    &[],
                    "--kube-api-burst must be at least 1",
                ),
            ];
            for (args, env, want) in cases {
                let mut op = Operator::start_env(cluster, swell(), &ns.name, None, args, env);
                let stopped = std::sync::Mutex::new(&mut op);
                wait_until(
                    &format!("the operator to refuse {want:?}"),
                    WAIT,
                    || async {
                        let running = stopped.lock().unwrap().running();
                        (!running).then_some(()).ok_or("still running".to_string())
                    },
                )
                .await;
                let log = op.log_text();
                assert!(log.contains(want), "wanted {want:?} in:\n{log}");
            }
        })
        .await;
}

/// A CA, and an HTTPS source (`{"value": 10}`) with a `localhost` certificate it signed,
/// speaking only `version`.
struct PrivateSource {
    url: String,
    ca_pem: String,
}

async fn private_source(version: &'static rustls::SupportedProtocolVersion) -> PrivateSource {
    use rustls::pki_types::PrivateKeyDer;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::from_params(&params, &ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[version])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = [0u8; 4096];
                let _ = tls.read(&mut buf).await;
                let body = "{\"value\": 10}";
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(resp.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    PrivateSource {
        url: format!("https://localhost:{port}/metric"),
        ca_pem: ca.pem(),
    }
}

#[tokio::test]
async fn a_ca_dir_is_trusted_and_the_minimum_tls_version_is_kept() {
    let cluster = cluster();
    cluster
        .with_namespace("set-ca-dir", |ns| async move {
            let tls12 = private_source(&rustls::version::TLS12).await;
            let dir = cluster
                .dir
                .join(format!("ca-dir-{}", swell_testkit::unique_suffix()));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("private-ca.crt"), &tls12.ca_pem).unwrap();
            ns.apply(cluster, &deployment("app", 0)).unwrap();
            ns.apply(cluster, &scaled_object("app", "app", &tls12.url, ""))
                .unwrap();
            let ca_dir = format!("--ca-dir={}", dir.display());
            // Without the CA the source's certificate is refused, named.
            let op = Operator::start(cluster, swell(), &ns.name, None, &["--leader-elect=false"]);
            let c = wait_condition(&ns, "app", "Ready", "False/TriggerError").await;
            assert!(c.to_lowercase().contains("certificate"), "{c}");
            drop(op);
            // Trusting the directory's CA, the same trigger reads and scales.
            let op = Operator::start(
                cluster,
                swell(),
                &ns.name,
                None,
                &["--leader-elect=false", &ca_dir],
            );
            wait_replicas(&ns, "app", 1).await;
            drop(op);
            // KEDA_HTTP_MIN_TLS_VERSION=TLS13 refuses the TLS 1.2-only source.
            let env = [("KEDA_HTTP_MIN_TLS_VERSION", "TLS13")];
            let args = ["--leader-elect=false", &ca_dir];
            let _op = Operator::start_env(cluster, swell(), &ns.name, None, &args, &env);
            let c = wait_condition(&ns, "app", "Ready", "False/TriggerError").await;
            assert!(c.to_lowercase().contains("version"), "{c}");
            std::fs::remove_dir_all(&dir).unwrap();
        })
        .await;
}

/// `--metrics-tls --metrics-auth`: /metrics answers only a token the API server accepts and
/// authorizes for `get /metrics`; probes stay open for the kubelet.
#[tokio::test]
async fn metrics_auth_asks_the_api_server_who_may_scrape() {
    let cluster = cluster();
    cluster
        .with_namespace("set-metrics-auth", |ns| async move {
            let kubectl = |args: &[&str], stdin: Option<&str>| {
                use std::io::Write as _;
                let mut child = cluster
                    .kubectl()
                    .args(args)
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap();
                if let Some(input) = stdin {
                    child
                        .stdin
                        .take()
                        .unwrap()
                        .write_all(input.as_bytes())
                        .unwrap();
                }
                let out = child.wait_with_output().unwrap();
                assert!(
                    out.status.success(),
                    "kubectl {args:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                String::from_utf8_lossy(&out.stdout).trim().to_string()
            };
            let n = &ns.name;
            kubectl(&["-n", n, "create", "serviceaccount", "scraper"], None);
            let token = kubectl(&["-n", n, "create", "token", "scraper"], None);
            let args = [
                "--leader-elect=false",
                "--metrics-tls=true",
                "--metrics-auth=true",
            ];
            let op = Operator::start(cluster, swell(), n, None, &args);
            let addr = wait_until("the metrics port", WAIT, || async {
                op.metrics_addr().ok_or("not yet".to_string())
            })
            .await;
            let http = reqwest::Client::builder()
                .danger_accept_invalid_certs(true)
                .build()
                .unwrap();
            let get = |path: &'static str, token: Option<String>| {
                let (http, addr) = (http.clone(), addr.clone());
                async move {
                    let mut req = http.get(format!("https://{addr}{path}"));
                    if let Some(t) = token {
                        req = req.bearer_auth(t);
                    }
                    let r = req.send().await.unwrap();
                    (r.status().as_u16(), r.text().await.unwrap())
                }
            };
            assert_eq!(get("/healthz", None).await.0, 200, "probes need no token");
            let (code, body) = get("/metrics", None).await;
            assert_eq!(code, 401, "{body}");
            assert_eq!(get("/metrics", Some("not-a-token".into())).await.0, 401);
            let (code, body) = get("/metrics", Some(token.clone())).await;
            assert_eq!(code, 403, "{body}");
            assert!(
                body.contains(&format!("system:serviceaccount:{n}:scraper")),
                "{body}"
            );
            // Granted `get /metrics`, the same token scrapes (once the cached denial expires).
            let role = format!("swell-scrape-{n}");
            let rbac = format!(
                "apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: {role}}}
rules: [{{nonResourceURLs: [/metrics], verbs: [get]}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: {role}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {role}}}
subjects: [{{kind: ServiceAccount, name: scraper, namespace: {n}}}]
"
            );
            kubectl(&["apply", "-f", "-"], Some(&rbac));
            let body = wait_until(
                "the scraper to be let in",
                Duration::from_secs(150),
                || async {
                    match get("/metrics", Some(token.clone())).await {
                        (200, body) => Ok(body),
                        (code, body) => Err(format!("{code}: {body}")),
                    }
                },
            )
            .await;
            assert!(body.contains("keda_build_info"), "{body}");
            kubectl(&["delete", "clusterrole,clusterrolebinding", &role], None);
        })
        .await;
}
