//! Proves the aggregation layer: an APIService backed by an ExternalName Service pointing at
//! localhost reaches a TLS server on 127.0.0.1, which sees the front-proxy client
//! certificate (signed by the CA the API server publishes) and the X-Remote-User header.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use swell_testkit::{Cluster, wait_until};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

#[derive(Debug, Clone)]
struct Seen {
    path: String,
    client_cert: bool,
    remote_user: Option<String>,
}

async fn serve(front_proxy_ca: &str, seen: Arc<Mutex<Vec<Seen>>>) -> u16 {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert =
        rcgen::CertificateParams::new(vec!["harness.swell-harness.svc".into(), "localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(front_proxy_ca.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let verifier = WebPkiClientVerifier::builder(Arc::new(roots))
        .allow_unauthenticated()
        .build()
        .unwrap();
    let cfg = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let client_cert = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .is_some_and(|c| !c.is_empty());
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf).to_string();
                let path = head
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_string();
                let remote_user = head
                    .lines()
                    .find_map(|l| {
                        l.strip_prefix("X-Remote-User: ")
                            .or_else(|| l.strip_prefix("x-remote-user: "))
                    })
                    .map(str::to_string);
                seen.lock().unwrap().push(Seen {
                    path: path.clone(),
                    client_cert,
                    remote_user,
                });
                let body = if path.starts_with("/apis/harness.swell.dev/v1alpha1/namespaces") {
                    r#"{"kind":"Status","apiVersion":"v1","status":"Success","message":"hello from 127.0.0.1"}"#
                } else {
                    r#"{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"harness.swell.dev/v1alpha1","resources":[{"name":"things","singularName":"","namespaced":true,"kind":"Thing","verbs":["get","list"]}]}"#
                };
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(resp.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    port
}

#[tokio::test]
async fn apiservice_reaches_a_loopback_server_with_front_proxy_identity() {
    let cluster = Cluster::shared();
    let client = cluster.client().await;
    let auth = Api::<ConfigMap>::namespaced(client.clone(), "kube-system")
        .get("extension-apiserver-authentication")
        .await
        .unwrap();
    let data = auth.data.unwrap_or_default();
    let ca = data
        .get("requestheader-client-ca-file")
        .expect("the API server publishes the front-proxy CA");
    assert_eq!(
        data.get("requestheader-allowed-names").map(String::as_str),
        Some(r#"["front-proxy-client"]"#)
    );

    let seen = Arc::new(Mutex::new(Vec::new()));
    let port = serve(ca, seen.clone()).await;
    cluster
        .with_namespace("swell-harness", |ns| async move {
            let apiservice = format!(
                r#"
apiVersion: v1
kind: Service
metadata: {{name: harness, namespace: {ns}}}
spec: {{type: ExternalName, externalName: localhost}}
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {{name: v1alpha1.harness.swell.dev}}
spec:
  group: harness.swell.dev
  version: v1alpha1
  groupPriorityMinimum: 100
  versionPriority: 100
  insecureSkipTLSVerify: true
  service: {{name: harness, namespace: {ns}, port: {port}}}
"#,
                ns = ns.name
            );
            ns.apply(cluster, &apiservice).unwrap();
            let kubectl = |args: &[&str]| {
                let out = cluster.kubectl().args(args).output().unwrap();
                String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
            };
            wait_until("the APIService to report Available=True", Duration::from_secs(90), || async {
                let s = kubectl(&["get", "apiservice", "v1alpha1.harness.swell.dev", "-o",
                    "jsonpath={.status.conditions[?(@.type==\"Available\")].status} {.status.conditions[?(@.type==\"Available\")].message}"]);
                if s.starts_with("True") { Ok(()) } else { Err(s) }
            })
            .await;
            let req = http::Request::get("/apis/harness.swell.dev/v1alpha1/namespaces/default/things")
                .body(Vec::new())
                .unwrap();
            let text = ns.client.request_text(req).await.unwrap();
            assert!(text.contains("hello from 127.0.0.1"), "{text}");
            let _ = kubectl(&["delete", "apiservice", "v1alpha1.harness.swell.dev", "--wait=false"]);
        })
        .await;

    let seen = seen.lock().unwrap().clone();
    let proxied = seen
        .iter()
        .find(|s| {
            s.path
                .starts_with("/apis/harness.swell.dev/v1alpha1/namespaces/default/things")
        })
        .unwrap_or_else(|| panic!("the request never reached the server; it saw {seen:?}"));
    assert!(
        proxied.client_cert,
        "the aggregator presents the front-proxy client certificate: {proxied:?}"
    );
    assert_eq!(
        proxied.remote_user.as_deref(),
        Some("swell-admin"),
        "{proxied:?}"
    );
}
