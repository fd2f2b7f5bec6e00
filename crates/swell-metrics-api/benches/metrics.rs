//! Latency and throughput of the metric GET, driven the way kube-apiserver's aggregator
//! drives it: TLS with the front-proxy client certificate, HTTP/2, `X-Remote-*` headers.
//!
//! No cluster: the request-header CA and front-proxy certificate are generated locally and
//! fed through the same ConfigMap parser, and the real decision cache sits in front of a
//! stand-in for the SubjectAccessReview call (a warm-up pass seeds it, as the HPA's
//! steady polling would). The source answers from an in-memory map, like the operator's
//! cached values. Client and server share this process and its cores.
//!
//! Run: `cargo bench -p swell-metrics-api --bench metrics` (REQUESTS, CONCURRENCY to tune).

#![allow(clippy::unwrap_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use swell_metrics_api::{
    Attributes, AuthorizationError, Authorizer, CachedAuthorizer, CertSource, Config, Decision,
    MetricError, MetricSource, MetricValue, SelfSigned, Server, UserInfo,
};
use tokio_util::sync::CancellationToken;

const NAMESPACE: &str = "bench";

/// N ScaledObjects' cached values, keyed by ScaledObject name.
struct Cached {
    values: HashMap<String, (String, f64)>,
    at: jiff::Timestamp,
}

#[async_trait::async_trait]
impl MetricSource for Cached {
    async fn external_metric(
        &self,
        _namespace: &str,
        metric: &str,
        selector: &str,
    ) -> Result<Vec<MetricValue>, MetricError> {
        let name = selector
            .strip_prefix("scaledobject.keda.sh/name=")
            .ok_or_else(|| MetricError::BadRequest(format!("selector {selector:?}")))?;
        match self.values.get(name) {
            Some((m, v)) if m == metric => Ok(vec![MetricValue {
                metric_name: metric.to_string(),
                metric_labels: BTreeMap::new(),
                value: *v,
                timestamp: self.at,
            }]),
            _ => Err(MetricError::NotFound(format!("{metric} for {name}"))),
        }
    }
}

/// Stands in for the SubjectAccessReview round trip; counts how often the cache misses.
struct SarStandIn(Arc<AtomicUsize>);

#[async_trait::async_trait]
impl Authorizer for SarStandIn {
    async fn authorize(
        &self,
        _: &UserInfo,
        _: &Attributes,
    ) -> Result<Decision, AuthorizationError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(Decision {
            allowed: true,
            reason: String::new(),
        })
    }
}

fn path(i: usize) -> String {
    format!(
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/{NAMESPACE}/s0-queue-{i}?labelSelector=scaledobject.keda.sh%2Fname%3Dso-{i}"
    )
}

type H2 = hyper::client::conn::http2::SendRequest<Empty<Bytes>>;

async fn connect(addr: SocketAddr, cfg: Arc<rustls::ClientConfig>) -> H2 {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(cfg)
        .connect(name, tcp)
        .await
        .unwrap();
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    send
}

async fn request(send: &mut H2, i: usize) -> Duration {
    let req = http::Request::get(format!("https://localhost{}", path(i)))
        .header(
            "x-remote-user",
            "system:serviceaccount:kube-system:horizontal-pod-autoscaler",
        )
        .header("x-remote-group", "system:serviceaccounts")
        .header("x-remote-group", "system:serviceaccounts:kube-system")
        .header("x-remote-group", "system:authenticated")
        .header("accept", "application/vnd.kubernetes.protobuf, */*")
        .body(Empty::new())
        .unwrap();
    let start = Instant::now();
    send.ready().await.unwrap();
    let resp = send.send_request(req).await.unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let took = start.elapsed();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    took
}

struct Outcome {
    p50: Duration,
    p99: Duration,
    rps: f64,
    sar_calls: usize,
}

async fn run(objects: usize, requests: usize, concurrency: usize, connections: usize) -> Outcome {
    let proxy_ca = support::Ca::generate("bench-front-proxy-ca");
    let proxy = proxy_ca.client("front-proxy-client", None);
    let data: BTreeMap<String, String> = [
        ("requestheader-client-ca-file", proxy_ca.pem.as_str()),
        ("requestheader-allowed-names", r#"["front-proxy-client"]"#),
        ("requestheader-username-headers", r#"["X-Remote-User"]"#),
        ("requestheader-group-headers", r#"["X-Remote-Group"]"#),
        (
            "requestheader-extra-headers-prefix",
            r#"["X-Remote-Extra-"]"#,
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let authn = swell_metrics_api::Authentication::from_configmap_data(&data).unwrap();
    let sar_calls = Arc::new(AtomicUsize::new(0));
    let authorizer = Arc::new(CachedAuthorizer::new(
        SarStandIn(sar_calls.clone()),
        Duration::from_secs(10),
        16_384,
    ));
    let source = Arc::new(Cached {
        values: (0..objects)
            .map(|i| (format!("so-{i}"), (format!("s0-queue-{i}"), i as f64 * 0.5)))
            .collect(),
        at: jiff::Timestamp::now(),
    });
    let config = Config::new(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        CertSource::SelfSigned(SelfSigned {
            dns_names: vec!["localhost".into()],
            validity: Duration::from_secs(3600),
            apiservice: None,
            validating_webhook: None,
        }),
    );
    let server = Server::bind_with(config, source, authn, authorizer)
        .await
        .unwrap();
    let (addr, ca) = (server.local_addr(), server.ca_bundle().unwrap());
    let stop = CancellationToken::new();
    let running = tokio::spawn(server.run(stop.clone()));

    let mut cfg = (*support::client_config(&ca, Some(&proxy), rustls::DEFAULT_VERSIONS)).clone();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let cfg = Arc::new(cfg);
    let mut conns = Vec::new();
    for _ in 0..connections {
        conns.push(connect(addr, cfg.clone()).await);
    }

    // Warm-up: every object once, which seeds the decision cache.
    let per = objects.div_ceil(concurrency);
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let mut send = conns[w % connections].clone();
        tasks.push(tokio::spawn(async move {
            for i in (w * per)..((w + 1) * per).min(objects) {
                request(&mut send, i).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let warm_calls = sar_calls.load(Ordering::Relaxed);

    let per = requests / concurrency;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let mut send = conns[w % connections].clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per);
            // Spread over all objects, as the HPA controller polls every ScaledObject.
            for k in 0..per {
                lat.push(request(&mut send, (w * per + k) * 7919 % objects).await);
            }
            lat
        }));
    }
    let mut all = Vec::with_capacity(requests);
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = start.elapsed();
    all.sort();
    stop.cancel();
    drop(conns);
    let _ = running.await;
    Outcome {
        p50: all[all.len() / 2],
        p99: all[all.len() * 99 / 100],
        rps: all.len() as f64 / elapsed.as_secs_f64(),
        sar_calls: sar_calls.load(Ordering::Relaxed) - warm_calls,
    }
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; a plain `cargo test --benches` run passes nothing
    // useful either, so a short smoke run is the default outside `cargo bench`.
    let benching = std::env::args().any(|a| a == "--bench");
    let requests = env("REQUESTS", if benching { 20_000 } else { 500 });
    let concurrency = env("CONCURRENCY", 64);
    let connections = env("CONNECTIONS", 4);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "{requests} GETs per size after a warm-up pass over every object; {concurrency} in flight over {connections} HTTP/2 connections; {} CPUs",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!(
        "{:>8} {:>10} {:>10} {:>10} {:>16}",
        "objects", "p50", "p99", "req/s", "SAR cache misses"
    );
    for objects in [100, 1_000, 10_000] {
        let o = rt.block_on(run(objects, requests, concurrency, connections));
        println!(
            "{objects:>8} {:>10.2?} {:>10.2?} {:>10.0} {:>16}",
            o.p50, o.p99, o.rps, o.sar_calls
        );
    }
}
