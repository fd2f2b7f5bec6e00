//! `external` and `external-push`: a gRPC server implementing KEDA's
//! `externalscaler.ExternalScaler` (proto/externalscaler.proto) is the source.
//!
//! The metric comes from `GetMetricSpec` (asked when the trigger is built), each reading
//! is `GetMetrics` plus `IsActive`, and with `external-push` a `StreamIsActive` stream
//! wakes the scale loop as soon as the server says the source is active. One gRPC channel
//! is shared per address and TLS configuration.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use swell_scaling::naming::normalize;
use tokio::sync::Notify;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::externalscaler::external_scaler_client::ExternalScalerClient;
use crate::externalscaler::{GetMetricsRequest, ScaledObjectRef};
use crate::tls::Secret;
use crate::{
    Field, MetricSpec, Params, Sample, Scaler, ScalerError, Shared, Source, TriggerInput,
    UpstreamError, UpstreamKind,
};

const ADDRESS: Field = Field::new("scalerAddress")
    .hint("the gRPC server's host:port, e.g. my-scaler.default.svc:6000");
const ENABLE_TLS: Field = Field::new("enableTLS");
const UNSAFE_SSL: Field = Field::new("unsafeSsl");
const CA_CERT: Field = Field::new("caCert").from(&[Source::Auth]);
const CLIENT_CERT: Field = Field::new("tlsClientCert").from(&[Source::Auth]);
const CLIENT_KEY: Field = Field::new("tlsClientKey").from(&[Source::Auth]);

/// How long one unary call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// What makes two channels different. Holds key material, so it is never printed.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ChannelKey {
    pub address: String,
    pub tls: bool,
    pub unsafe_ssl: bool,
    pub ca: Option<String>,
    pub client_cert: Option<(String, Secret)>,
}

/// gRPC channels per address and TLS configuration.
#[derive(Default)]
pub struct GrpcChannels {
    channels: Mutex<HashMap<ChannelKey, Channel>>,
}

impl GrpcChannels {
    /// The channel for `key`; it connects on first use and reconnects on its own.
    pub fn get(&self, key: &ChannelKey) -> Result<Channel, UpstreamError> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = channels.get(key) {
            return Ok(c.clone());
        }
        let channel = connect(key)?;
        channels.insert(key.clone(), channel.clone());
        Ok(channel)
    }

    pub fn len(&self) -> usize {
        self.channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn connect(key: &ChannelKey) -> Result<Channel, UpstreamError> {
    let failed = |m: String| UpstreamError::new(UpstreamKind::Connect, m);
    let address = &key.address;
    let uri = if address.contains("://") {
        address.clone()
    } else if key.tls {
        format!("https://{address}")
    } else {
        format!("http://{address}")
    };
    let mut endpoint = Endpoint::from_shared(uri)
        .map_err(|e| failed(format!("scalerAddress {address:?} is not host:port: {e}")))?
        .connect_timeout(Duration::from_secs(3))
        .tcp_keepalive(Some(Duration::from_secs(30)));
    if key.tls {
        let mut tls = ClientTlsConfig::new();
        if let Some((cert, k)) = &key.client_cert {
            tls = tls.identity(Identity::from_pem(cert, k.expose()));
        }
        endpoint = if key.unsafe_ssl {
            endpoint.tls_config_with_verifier(tls, Arc::new(crate::tls::AcceptAnyCert::new()))
        } else {
            tls = with_roots(tls, key.ca.as_deref());
            endpoint.tls_config(tls)
        }
        .map_err(|e| {
            failed(format!(
                "TLS settings for {address}: {}",
                crate::aws::error_chain(&e)
            ))
        })?;
    }
    Ok(endpoint.connect_lazy())
}

/// The latest answer of the `StreamIsActive` stream, and the task reading it.
#[derive(Default)]
struct Push {
    active: Mutex<Option<bool>>,
    task: Mutex<Option<tokio::task::AbortHandle>>,
}

pub struct ExternalScaler {
    type_: &'static str,
    index: usize,
    channel_key: ChannelKey,
    reference: ScaledObjectRef,
    /// From `GetMetricSpec`: the server's metric name and target.
    spec: Option<(String, f64)>,
    metric_type: crate::MetricType,
    shared: Shared,
    push: Option<Arc<Push>>,
}

impl ExternalScaler {
    pub fn new(input: &TriggerInput, shared: &Shared) -> Result<ExternalScaler, ScalerError> {
        let mut p = Params::new(&input.params);
        let built = Self::parse(input, shared, &mut p);
        p.finish()?;
        built
    }

    /// Reads the trigger's parameters into `p` (every problem with its field) without I/O;
    /// `swell check` and the admission webhook call it too.
    pub fn parse(
        input: &TriggerInput,
        shared: &Shared,
        p: &mut Params<'_>,
    ) -> Result<ExternalScaler, ScalerError> {
        let address = p.url(ADDRESS, false);
        let enable_tls = p.bool(ENABLE_TLS, false);
        let unsafe_ssl = p.bool(UNSAFE_SSL, false);
        let ca = p.opt_string(CA_CERT);
        let cert = p.opt_string(CLIENT_CERT);
        let key = p.opt_string(CLIENT_KEY);
        let client_cert = match (cert, key) {
            (Some(c), Some(k)) => Some((c, Secret::new(k))),
            (None, None) => None,
            (Some(_), None) => {
                p.error(
                    "tlsClientKey",
                    "tlsClientCert is set but tlsClientKey is missing from the TriggerAuthentication",
                );
                None
            }
            (None, Some(_)) => {
                p.error(
                    "tlsClientCert",
                    "tlsClientKey is set but tlsClientCert is missing from the TriggerAuthentication",
                );
                None
            }
        };
        // KEDA hands the server the trigger's metadata as written, with `…FromEnv` values
        // resolved from the container's environment (under the same key).
        let mut scaler_metadata = HashMap::new();
        for (k, v) in &input.params.metadata {
            if k.ends_with("FromEnv") {
                if let Some(val) = input.params.env.get(v).filter(|s| !s.is_empty()) {
                    scaler_metadata.insert(k.clone(), val.clone());
                }
            } else {
                scaler_metadata.insert(k.clone(), v.clone());
            }
        }
        let tls = enable_tls || ca.is_some() || client_cert.is_some();
        let push = input.type_ == "external-push";
        Ok(ExternalScaler {
            type_: if push { "external-push" } else { "external" },
            index: input.index,
            channel_key: ChannelKey {
                address,
                tls,
                unsafe_ssl,
                ca,
                client_cert,
            },
            reference: ScaledObjectRef {
                name: input.scaled_object.clone(),
                namespace: input.namespace.clone(),
                scaler_metadata,
            },
            spec: None,
            metric_type: input.metric_type.unwrap_or_default(),
            shared: shared.clone(),
            push: push.then(Arc::default),
        })
    }

    fn client(&self) -> Result<ExternalScalerClient<Channel>, ScalerError> {
        let channel = self.shared.grpc.get(&self.channel_key)?;
        Ok(ExternalScalerClient::new(channel))
    }

    /// `e` said as the failure of `call` on this trigger's server.
    fn failed(&self, call: &str, e: UpstreamError) -> ScalerError {
        let message = format!(
            "{call} on external scaler {}: {}",
            self.channel_key.address, e.message
        );
        UpstreamError { message, ..e }.into()
    }

    /// An answer of `call` that Swell cannot use.
    fn bad_answer(&self, call: &str, what: impl Into<String>) -> ScalerError {
        self.failed(call, UpstreamError::bad_response(what))
    }

    async fn call<T, F>(&self, name: &str, f: F) -> Result<T, ScalerError>
    where
        F: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.shared.count_upstream(self.type_);
        match tokio::time::timeout(CALL_TIMEOUT, f).await {
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(status)) => Err(self.failed(
                name,
                UpstreamError::grpc(status.code(), status_text(&status)),
            )),
            Err(_) => Err(self.failed(
                name,
                UpstreamError::new(
                    UpstreamKind::Timeout,
                    format!("no answer within {}s", CALL_TIMEOUT.as_secs()),
                ),
            )),
        }
    }
}

fn status_text(s: &tonic::Status) -> String {
    let mut text = format!("{:?}: {}", s.code(), s.message());
    if let Some(src) = std::error::Error::source(s) {
        text.push_str(&format!(" ({})", crate::aws::error_chain(src)));
    }
    text
}

/// The target of a `MetricSpec`, as KEDA reads it: `targetSizeFloat` when positive,
/// otherwise the deprecated integer `targetSize`.
pub fn target_of(spec: &crate::externalscaler::MetricSpec) -> f64 {
    if spec.target_size_float > 0.0 {
        spec.target_size_float
    } else {
        spec.target_size as f64
    }
}

/// The value of a `MetricValue`, as KEDA reads it.
pub fn value_of(v: &crate::externalscaler::MetricValue) -> f64 {
    if v.metric_value_float > 0.0 {
        v.metric_value_float
    } else {
        v.metric_value as f64
    }
}

#[async_trait::async_trait]
impl Scaler for ExternalScaler {
    fn metric_spec(&self) -> MetricSpec {
        let (name, target) = self
            .spec
            .clone()
            .unwrap_or_else(|| (normalize(self.type_), 0.0));
        MetricSpec::External {
            // KEDA's GenerateMetricNameWithIndex: the server's name, unchanged.
            name: format!("s{}-{name}", self.index),
            target,
            metric_type: self.metric_type,
        }
    }

    async fn prepare(&mut self) -> Result<(), ScalerError> {
        let mut client = self.client()?;
        let reference = self.reference.clone();
        let resp = self
            .call("GetMetricSpec", client.get_metric_spec(reference))
            .await?;
        let spec = match resp.metric_specs.as_slice() {
            [] => {
                return Err(self.bad_answer("GetMetricSpec", "the answer holds no metric spec"));
            }
            [one] => one.clone(),
            many => {
                return Err(self.bad_answer(
                    "GetMetricSpec",
                    format!(
                        "the answer holds {} metric specs; Swell reads one per trigger",
                        many.len()
                    ),
                ));
            }
        };
        if spec.metric_name.is_empty() {
            return Err(self.bad_answer("GetMetricSpec", "the metric spec has no metricName"));
        }
        self.spec = Some((spec.metric_name.clone(), target_of(&spec)));
        Ok(())
    }

    async fn sample(&self) -> Result<Sample, ScalerError> {
        let Some((name, _)) = &self.spec else {
            return Err(ScalerError::Internal(
                "the external scaler's metric spec is not known yet".into(),
            ));
        };
        let mut client = self.client()?;
        let req = GetMetricsRequest {
            scaled_object_ref: Some(self.reference.clone()),
            metric_name: name.clone(),
        };
        let metrics = self.call("GetMetrics", client.get_metrics(req)).await?;
        let value = metrics
            .metric_values
            .iter()
            .find(|v| v.metric_name == *name)
            .or(metrics.metric_values.first())
            .map(value_of)
            .ok_or_else(|| self.bad_answer("GetMetrics", "the answer holds no metric value"))?;
        let active = self
            .call("IsActive", client.is_active(self.reference.clone()))
            .await?
            .result;
        // A push scaler's stream may have said active before the server's IsActive does.
        let pushed = self
            .push
            .as_ref()
            .is_some_and(|p| *p.active.lock().unwrap_or_else(|e| e.into_inner()) == Some(true));
        Ok(Sample {
            value,
            active: active || pushed,
        })
    }

    fn upstream_key(&self) -> Option<String> {
        Some(format!(
            "{}|{}|{}/{}",
            self.type_, self.channel_key.address, self.reference.namespace, self.reference.name
        ))
    }

    fn start_push(&self) -> Option<Arc<Notify>> {
        let push = self.push.clone()?;
        let wake = Arc::new(Notify::new());
        let client = match self.client() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "external-push: no channel; polling only");
                return Some(wake);
            }
        };
        let task = tokio::spawn(stream_is_active(
            client,
            self.reference.clone(),
            push.clone(),
            wake.clone(),
            self.shared.clone(),
            self.channel_key.address.clone(),
        ));
        if let Some(old) = push
            .task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(task.abort_handle())
        {
            old.abort();
        }
        Some(wake)
    }
}

impl Drop for ExternalScaler {
    fn drop(&mut self) {
        if let Some(p) = &self.push
            && let Some(t) = p.task.lock().unwrap_or_else(|e| e.into_inner()).take()
        {
            t.abort();
        }
    }
}

/// Reads `StreamIsActive` for as long as the scaler lives, reconnecting with KEDA's
/// backoff (2 s doubling to 1 min, reset after a stream that ended cleanly). Turning
/// active wakes the scale loop at once, and so does turning inactive again.
async fn stream_is_active(
    mut client: ExternalScalerClient<Channel>,
    reference: ScaledObjectRef,
    push: Arc<Push>,
    wake: Arc<Notify>,
    shared: Shared,
    address: String,
) {
    let mut backoff = Duration::from_secs(2);
    loop {
        shared.count_upstream("external-push");
        match client.stream_is_active(reference.clone()).await {
            Ok(resp) => {
                let mut stream = resp.into_inner();
                loop {
                    match stream.message().await {
                        Ok(Some(m)) => {
                            let before = push
                                .active
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .replace(m.result);
                            // Only changes wake the loop (as KEDA's RequestScale on each
                            // message would act): a server repeating itself costs nothing.
                            if (m.result && before != Some(true))
                                || (!m.result && before == Some(true))
                            {
                                wake.notify_one();
                            }
                        }
                        Ok(None) => {
                            backoff = Duration::from_secs(2);
                            break;
                        }
                        Err(s) => {
                            tracing::warn!(scaler = %address, error = %status_text(&s), "StreamIsActive");
                            break;
                        }
                    }
                }
            }
            Err(s) => {
                tracing::warn!(scaler = %address, error = %status_text(&s), "StreamIsActive")
            }
        }
        // A broken stream says nothing about activity any more.
        *push.active.lock().unwrap_or_else(|e| e.into_inner()) = None;
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(60));
    }
}

/// The system's roots, the operator's CA directories' (`--ca-dir`) and the trigger's `ca`.
pub(crate) fn with_roots(tls: ClientTlsConfig, ca: Option<&str>) -> ClientTlsConfig {
    let mut tls = tls.with_native_roots();
    let extra = crate::tls::outbound().extra_roots_pem();
    if !extra.is_empty() {
        tls = tls.ca_certificate(Certificate::from_pem(extra));
    }
    match ca {
        Some(ca) => tls.ca_certificate(Certificate::from_pem(ca)),
        None => tls,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RawParams, map};

    fn scaler(
        type_: &str,
        meta: &[(&str, &str)],
        auth: &[(&str, &str)],
        env: &[(&str, &str)],
    ) -> Result<ExternalScaler, ScalerError> {
        ExternalScaler::new(
            &TriggerInput {
                index: 1,
                type_: type_.into(),
                namespace: "ns".into(),
                scaled_object: "so".into(),
                params: RawParams {
                    trigger_index: 1,
                    metadata: map(meta),
                    auth: map(auth),
                    env: map(env),
                    ..Default::default()
                },
                ..Default::default()
            },
            &Shared::default(),
        )
    }

    #[test]
    fn parses_valid_metadata() {
        let s = scaler(
            "external",
            &[
                ("scalerAddress", "scaler.ns.svc:6000"),
                ("queue", "orders"),
                ("urlFromEnv", "URL"),
                ("missingFromEnv", "NOPE"),
            ],
            &[],
            &[("URL", "http://x")],
        )
        .unwrap();
        assert_eq!(s.channel_key.address, "scaler.ns.svc:6000");
        assert!(!s.channel_key.tls);
        assert_eq!(s.reference.name, "so");
        assert_eq!(s.reference.namespace, "ns");
        let md = &s.reference.scaler_metadata;
        assert_eq!(md.get("queue").map(String::as_str), Some("orders"));
        assert_eq!(
            md.get("scalerAddress").map(String::as_str),
            Some("scaler.ns.svc:6000")
        );
        assert_eq!(md.get("urlFromEnv").map(String::as_str), Some("http://x"));
        assert!(!md.contains_key("missingFromEnv"));
        assert!(s.push.is_none());

        let s = scaler(
            "external-push",
            &[("scalerAddress", "h:1")],
            &[
                ("caCert", "CA"),
                ("tlsClientCert", "C"),
                ("tlsClientKey", "K"),
            ],
            &[],
        )
        .unwrap();
        assert!(s.channel_key.tls && s.push.is_some());
        assert_eq!(s.channel_key.ca.as_deref(), Some("CA"));
        // Auth parameters are not metadata: they never reach the external server.
        assert!(!s.reference.scaler_metadata.contains_key("caCert"));

        let s = scaler(
            "external",
            &[
                ("scalerAddress", "h:1"),
                ("enableTLS", "true"),
                ("unsafeSsl", "true"),
            ],
            &[],
            &[],
        )
        .unwrap();
        assert!(s.channel_key.tls && s.channel_key.unsafe_ssl);
        // Before GetMetricSpec the name is a placeholder.
        assert_eq!(s.metric_spec().name(), "s1-external");
    }

    type Pairs = Vec<(&'static str, &'static str)>;

    #[test]
    fn rejects_invalid_metadata() {
        // (metadata, authentication parameters, expected messages)
        let cases: Vec<(Pairs, Pairs, Vec<&str>)> = vec![
            (
                vec![],
                vec![],
                vec!["triggers[1].metadata.scalerAddress: required"],
            ),
            (
                vec![("scalerAddress", "h:1"), ("enableTLS", "yes")],
                vec![],
                vec!["triggers[1].metadata.enableTLS: \"yes\" is not true or false"],
            ),
            (
                vec![("scalerAddress", "h:1"), ("unsafeSsl", "2")],
                vec![("tlsClientCert", "C")],
                vec![
                    "triggers[1].metadata.unsafeSsl: \"2\" is not true or false",
                    "triggers[1].metadata.tlsClientKey: tlsClientCert is set but tlsClientKey is missing",
                ],
            ),
        ];
        for (meta, auth, wants) in cases {
            let e = scaler("external", &meta, &auth, &[])
                .err()
                .expect("invalid")
                .to_string();
            for w in wants {
                assert!(e.contains(w), "want {w:?} in {e}");
            }
        }
    }

    #[test]
    fn reads_targets_and_values_like_keda() {
        use crate::externalscaler::{MetricSpec as Spec, MetricValue};
        let spec = |size, float| Spec {
            metric_name: "m".into(),
            target_size: size,
            target_size_float: float,
        };
        assert_eq!(target_of(&spec(5, 0.0)), 5.0);
        assert_eq!(target_of(&spec(5, 2.5)), 2.5);
        let v = |n, f| MetricValue {
            metric_name: "m".into(),
            metric_value: n,
            metric_value_float: f,
        };
        assert_eq!(value_of(&v(7, 0.0)), 7.0);
        assert_eq!(value_of(&v(7, 0.5)), 0.5);
    }

    #[tokio::test]
    async fn one_channel_per_address_and_tls() {
        let shared = Shared::default();
        let key = |address: &str, tls| ChannelKey {
            address: address.into(),
            tls,
            unsafe_ssl: false,
            ca: None,
            client_cert: None,
        };
        shared.grpc.get(&key("127.0.0.1:1", false)).unwrap();
        shared.grpc.get(&key("127.0.0.1:1", false)).unwrap();
        shared.grpc.get(&key("127.0.0.1:2", false)).unwrap();
        shared.grpc.get(&key("127.0.0.1:1", true)).unwrap();
        assert_eq!(shared.grpc.len(), 3);
        assert!(shared.grpc.get(&key("bad host:1", false)).is_err());
    }

    /// A gRPC server for the tests: one metric, `jobs`, whose value the test sets; active
    /// while positive; `StreamIsActive` sends the state at once and on every change.
    mod server {
        use std::pin::Pin;
        use std::sync::Arc;

        use tokio::sync::watch;
        use tonic::{Request, Response, Status};

        use crate::externalscaler::external_scaler_server::{ExternalScaler, ExternalScalerServer};
        use crate::externalscaler::*;

        #[derive(Clone)]
        pub struct Fake(pub Arc<watch::Sender<f64>>);

        type Stream =
            Pin<Box<dyn tokio_stream::Stream<Item = Result<IsActiveResponse, Status>> + Send>>;

        #[tonic::async_trait]
        impl ExternalScaler for Fake {
            async fn is_active(
                &self,
                _: Request<ScaledObjectRef>,
            ) -> Result<Response<IsActiveResponse>, Status> {
                Ok(Response::new(IsActiveResponse {
                    result: *self.0.borrow() > 0.0,
                }))
            }
            type StreamIsActiveStream = Stream;
            async fn stream_is_active(
                &self,
                _: Request<ScaledObjectRef>,
            ) -> Result<Response<Stream>, Status> {
                let mut rx = self.0.subscribe();
                let s = async_stream(move |tx: tokio::sync::mpsc::Sender<_>| async move {
                    loop {
                        let v = *rx.borrow_and_update();
                        if tx
                            .send(Ok(IsActiveResponse { result: v > 0.0 }))
                            .await
                            .is_err()
                            || rx.changed().await.is_err()
                        {
                            break;
                        }
                    }
                });
                Ok(Response::new(s))
            }
            async fn get_metric_spec(
                &self,
                r: Request<ScaledObjectRef>,
            ) -> Result<Response<GetMetricSpecResponse>, Status> {
                let md = &r.get_ref().scaler_metadata;
                if md.get("queue").map(String::as_str) != Some("orders") {
                    return Err(Status::invalid_argument("queue metadata missing"));
                }
                Ok(Response::new(GetMetricSpecResponse {
                    metric_specs: vec![MetricSpec {
                        metric_name: "jobs".into(),
                        target_size: 4,
                        target_size_float: 0.0,
                    }],
                }))
            }
            async fn get_metrics(
                &self,
                r: Request<GetMetricsRequest>,
            ) -> Result<Response<GetMetricsResponse>, Status> {
                Ok(Response::new(GetMetricsResponse {
                    metric_values: vec![MetricValue {
                        metric_name: r.into_inner().metric_name,
                        metric_value: *self.0.borrow() as i64,
                        metric_value_float: 0.0,
                    }],
                }))
            }
        }

        /// A stream fed by a task.
        fn async_stream<F, Fut>(f: F) -> Stream
        where
            F: FnOnce(tokio::sync::mpsc::Sender<Result<IsActiveResponse, Status>>) -> Fut,
            Fut: std::future::Future<Output = ()> + Send + 'static,
        {
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            tokio::spawn(f(tx));
            Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
        }

        pub async fn start() -> (Arc<watch::Sender<f64>>, u16) {
            let value = Arc::new(watch::channel(0.0).0);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let port = listener.local_addr().expect("addr").port();
            let svc = ExternalScalerServer::new(Fake(value.clone()));
            tokio::spawn(
                tonic::transport::Server::builder()
                    .add_service(svc)
                    .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
            );
            (value, port)
        }
    }

    #[tokio::test]
    async fn reads_and_pushes_through_a_real_grpc_server() {
        let (value, port) = server::start().await;
        let address = format!("127.0.0.1:{port}");
        let mut s = scaler(
            "external-push",
            &[("scalerAddress", &address), ("queue", "orders")],
            &[],
            &[],
        )
        .unwrap();
        s.prepare().await.unwrap();
        assert_eq!(
            s.metric_spec(),
            MetricSpec::External {
                name: "s1-jobs".into(),
                target: 4.0,
                metric_type: crate::MetricType::AverageValue
            }
        );
        assert_eq!(
            s.sample().await.unwrap(),
            Sample {
                value: 0.0,
                active: false
            }
        );
        let wake = s.start_push().expect("a push scaler has a wake");
        // Turning active wakes the loop; so does turning inactive again.
        value.send_replace(3.0);
        tokio::time::timeout(Duration::from_secs(30), wake.notified())
            .await
            .expect("woken by StreamIsActive");
        assert_eq!(
            s.sample().await.unwrap(),
            Sample {
                value: 3.0,
                active: true
            }
        );
        value.send_replace(0.0);
        tokio::time::timeout(Duration::from_secs(30), wake.notified())
            .await
            .expect("woken again when inactive");
        let calls = s
            .shared
            .upstream_calls
            .get_or_create(&vec![("scaler", "external-push".to_string())])
            .get();
        // GetMetricSpec, 2 × (GetMetrics + IsActive), StreamIsActive.
        assert_eq!(calls, 6);
        // A plain external trigger has no push.
        let plain = scaler("external", &[("scalerAddress", &address)], &[], &[]).unwrap();
        assert!(plain.start_push().is_none());
        // A server that refuses: the error names the call and the address.
        let mut bad = scaler("external", &[("scalerAddress", &address)], &[], &[]).unwrap();
        let err = bad.prepare().await.unwrap_err();
        let code = err.upstream().and_then(|u| u.code.clone());
        assert_eq!(
            code,
            Some(crate::upstream::Code::Grpc(tonic::Code::InvalidArgument))
        );
        assert_eq!(
            (err.category(), err.reason()),
            ("upstream", "KEDAScalerFailed")
        );
        let e = err.to_string();
        assert!(
            e.contains(&format!("GetMetricSpec on external scaler {address}"))
                && e.contains("queue metadata missing"),
            "{e}"
        );
        // Nobody listening: the status gRPC gives is Unavailable, a connection failure.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().to_string()
        };
        let mut gone = scaler("external", &[("scalerAddress", &closed)], &[], &[]).unwrap();
        let err = gone.prepare().await.unwrap_err();
        assert_eq!(err.category(), "connect", "{err}");
    }
}
