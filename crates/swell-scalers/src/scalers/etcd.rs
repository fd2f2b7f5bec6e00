//! `etcd`: scale on the number stored at a key, as KEDA's `etcd_scaler.go` reads it
//! (`strconv.ParseFloat` of the value of `watchKey`), over etcd v3's native gRPC API
//! (`KV.Range`; `Auth.Authenticate` for username and password, the token sent in the
//! `token` header as etcd's clients do). As KEDA's push scaler, the scale loop's trigger
//! also watches the key (`Watch.Watch` with progress notifications, re-watched when none
//! comes within twice `watchProgressNotifyInterval`, KEDA's backoff between watches): a
//! change wakes the loop, which then reads the key at once instead of at the next
//! `pollingInterval`. One client per endpoints, TLS settings and credentials, shared by the
//! triggers using it; identical polled readings are shared.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use swell_scaling::naming::{metric_name, normalize};
use tokio::sync::Notify;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint, Identity};

use crate::etcdserverpb::watch_request::RequestUnion;
use crate::etcdserverpb::{
    AuthenticateRequest, RangeRequest, auth_client::AuthClient, kv_client::KvClient,
};
use crate::etcdserverpb::{WatchCreateRequest, WatchRequest, watch_client::WatchClient};
use crate::metadata::shown;
use crate::tls::Secret;
use crate::upstream::{UpstreamError, UpstreamKind as K};
use crate::{Field, MetricSpec, Params, Sample, Scaler, ScalerError, Shared, Source, TriggerInput};

const ENDPOINTS: Field =
    Field::new("endpoints").hint("comma-separated host:port, e.g. etcd-0:2379,etcd-1:2379");
const WATCH_KEY: Field = Field::new("watchKey");
const VALUE: Field = Field::new("value");
const ACTIVATION: Field = Field::new("activationValue");
const PROGRESS: Field = Field::new("watchProgressNotifyInterval");
const USERNAME: Field = Field::new("username").from(&[Source::Auth, Source::Metadata]);
const PASSWORD: Field = Field::new("password").from(&[Source::Auth, Source::Metadata]);
const TLS: Field = Field::new("tls").from(&[Source::Auth]);
const CERT: Field = Field::new("cert").from(&[Source::Auth]);
const KEY: Field = Field::new("key").from(&[Source::Auth]);
const KEY_PASSWORD: Field = Field::new("keyPassword").from(&[Source::Auth]);
const CA: Field = Field::new("ca").from(&[Source::Auth]);

/// Every parameter, for unknown-key warnings.
pub const FIELDS: &[Field] = &[
    ENDPOINTS,
    WATCH_KEY,
    VALUE,
    ACTIVATION,
    PROGRESS,
    USERNAME,
    PASSWORD,
    TLS,
    CERT,
    KEY,
    KEY_PASSWORD,
    CA,
];

/// KEDA's timeout for reading the key.
const TIMEOUT: Duration = Duration::from_secs(5);

/// What makes two clients different. Holds credentials, so it is never printed.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ClientKey {
    endpoints: Vec<String>,
    tls: Option<TlsKey>,
    credentials: Option<(String, Secret)>,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct TlsKey {
    ca: Option<String>,
    client_cert: Option<(String, Secret)>,
}

pub struct EtcdScaler {
    key: ClientKey,
    watch_key: String,
    target: f64,
    activation: f64,
    metric: String,
    metric_type: crate::MetricType,
    polling: Duration,
    /// `watchProgressNotifyInterval`.
    progress: Duration,
    shared: Shared,
    push: Arc<Push>,
}

/// The watch of the scale loop's trigger.
#[derive(Default)]
struct Push {
    /// A change was seen since the last reading: read the key, not a shared answer.
    changed: AtomicBool,
    task: Mutex<Option<tokio::task::AbortHandle>>,
}

impl EtcdScaler {
    pub fn new(input: &TriggerInput, shared: &Shared) -> Result<EtcdScaler, ScalerError> {
        let mut p = Params::new(&input.params);
        let built = Self::parse(input, shared, &mut p);
        p.finish()?;
        Ok(built)
    }

    /// Reads the trigger into `p` without I/O (also for `swell check` and the webhook).
    pub fn parse(input: &TriggerInput, shared: &Shared, p: &mut Params<'_>) -> EtcdScaler {
        let endpoints: Vec<String> = p
            .string(ENDPOINTS)
            .split(',')
            .map(|e| e.trim().to_string())
            .filter(|e| !e.is_empty())
            .collect();
        let watch_key = p.string(WATCH_KEY);
        let target = p.target(VALUE);
        let activation = p.float(ACTIVATION, 0.0);
        let progress: i64 = p.or(PROGRESS, "a whole number of seconds", 600);
        if progress <= 0 {
            p.error(
                PROGRESS.name,
                "watchProgressNotifyInterval must be greater than 0",
            );
        }
        let credentials = credentials(input, p);
        let tls = tls(p);
        EtcdScaler {
            key: ClientKey {
                endpoints,
                tls,
                credentials,
            },
            metric: metric_name(input.index, &normalize(&format!("etcd-{watch_key}"))),
            watch_key,
            target,
            activation,
            metric_type: input.metric_type.unwrap_or_default(),
            polling: input.polling_interval,
            progress: Duration::from_secs(progress.max(1).unsigned_abs()),
            shared: shared.clone(),
            push: Arc::default(),
        }
    }

    fn coalesce_key(&self) -> String {
        use std::hash::{Hash as _, Hasher as _};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.key.hash(&mut h);
        format!("etcd|{:x}|{}", h.finish(), self.watch_key)
    }

    async fn read(&self) -> Result<f64, UpstreamError> {
        let client = self.shared.etcd.get(&self.key)?;
        let (endpoint, value) = client.get(self.watch_key.as_bytes()).await?;
        let Some(value) = value else {
            return Err(UpstreamError::new(
                K::NotFound,
                format!(
                    "etcd {endpoint}: watchKey {} doesn't exist",
                    shown(&self.watch_key)
                ),
            ));
        };
        let text = String::from_utf8_lossy(&value);
        match text.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(v),
            _ => Err(UpstreamError::bad_response(format!(
                "etcd {endpoint}: the value of {} is {}, not a number",
                shown(&self.watch_key),
                shown(&text)
            ))),
        }
    }
}

/// `username`/`password`: from the TriggerAuthentication or `…FromEnv`, both or neither.
fn credentials(input: &TriggerInput, p: &mut Params<'_>) -> Option<(String, Secret)> {
    for name in ["username", "password"] {
        if input.params.metadata.contains_key(name) {
            p.error(
                name,
                format!("is not read from trigger metadata (as KEDA); put {name} in a TriggerAuthentication or use {name}FromEnv"),
            );
        }
    }
    let user = p.opt_string(USERNAME);
    let password = p.opt_string(PASSWORD);
    let deferred = p.is_deferred("username") || p.is_deferred("password");
    match (user, password) {
        (Some(u), Some(pw)) => Some((u, Secret::new(pw))),
        (None, Some(_)) if !deferred => {
            p.error("username", "username must be provided with password");
            None
        }
        (Some(_), None) if !deferred => {
            p.error("password", "password must be provided with username");
            None
        }
        _ => None,
    }
}

/// `tls: enable|disable` (default disable) with `ca`, `cert`/`key`; KEDA's rules.
fn tls(p: &mut Params<'_>) -> Option<TlsKey> {
    let on = match p.opt_string(TLS).as_deref() {
        None | Some("disable") => false,
        Some("enable") => true,
        Some(other) => {
            p.error(
                "tls",
                format!(
                    "incorrect value for TLS given: {}; use enable or disable",
                    shown(other)
                ),
            );
            false
        }
    };
    let (cert, key, ca) = (p.opt_string(CERT), p.opt_string(KEY), p.opt_string(CA));
    if p.opt_string(KEY_PASSWORD).is_some() {
        p.error(
            "keyPassword",
            "an encrypted private key is not supported by Swell yet; give key unencrypted in PKCS#8, PKCS#1 or SEC1 PEM",
        );
    }
    if !on {
        return None;
    }
    let client_cert = match (cert, key) {
        (Some(c), Some(k)) => Some((c, Secret::new(k))),
        (None, Some(_)) => {
            p.error("cert", "cert must be provided with key");
            None
        }
        (Some(_), None) => {
            p.error("key", "key must be provided with cert");
            None
        }
        (None, None) => None,
    };
    Some(TlsKey { ca, client_cert })
}

/// One etcd client: a lazily connected channel per endpoint (tried in order, starting from
/// the last that answered) and the auth token, fetched on first use and again when etcd
/// says it is no longer valid.
pub struct EtcdClient {
    channels: Vec<(String, Channel)>,
    credentials: Option<(String, Secret)>,
    token: tokio::sync::Mutex<Option<String>>,
    preferred: Mutex<usize>,
}

impl EtcdClient {
    fn new(key: &ClientKey) -> Result<EtcdClient, UpstreamError> {
        let channels = key
            .endpoints
            .iter()
            .map(|e| Ok((e.clone(), channel(e, key.tls.as_ref())?)))
            .collect::<Result<Vec<_>, UpstreamError>>()?;
        if channels.is_empty() {
            return Err(UpstreamError::new(K::Connect, "etcd: no endpoints"));
        }
        Ok(EtcdClient {
            channels,
            credentials: key.credentials.clone(),
            token: tokio::sync::Mutex::new(None),
            preferred: Mutex::new(0),
        })
    }

    /// The value at `key` (`None`: no such key) and the endpoint that answered. An
    /// endpoint that cannot be reached gives way to the next.
    async fn get(&self, key: &[u8]) -> Result<(String, Option<Vec<u8>>), UpstreamError> {
        let start = *self.preferred.lock().unwrap_or_else(|p| p.into_inner());
        let n = self.channels.len();
        let mut last = None;
        for i in (0..n).map(|i| (start + i) % n) {
            let (endpoint, channel) = &self.channels[i];
            match self.range(endpoint, channel, key).await {
                Ok(v) => {
                    *self.preferred.lock().unwrap_or_else(|p| p.into_inner()) = i;
                    return Ok((endpoint.clone(), v));
                }
                Err(e) if e.kind == K::Connect || e.kind == K::Timeout => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| UpstreamError::new(K::Connect, "etcd: no endpoints")))
    }

    /// A `Range` on one endpoint, signing in first when there are credentials, and once
    /// more when the token is refused.
    async fn range(
        &self,
        endpoint: &str,
        channel: &Channel,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, UpstreamError> {
        for attempt in 0..2 {
            let token = self.token(endpoint, channel, attempt > 0).await?;
            let mut req = tonic::Request::new(RangeRequest {
                key: key.to_vec(),
                ..Default::default()
            });
            req.set_timeout(TIMEOUT);
            if let Some(t) = &token {
                let v = t.parse().map_err(|_| {
                    UpstreamError::bad_response(format!(
                        "etcd {endpoint}: the auth token is not a header value"
                    ))
                })?;
                req.metadata_mut().insert("token", v);
            }
            match KvClient::new(channel.clone()).range(req).await {
                Ok(r) => return Ok(r.into_inner().kvs.into_iter().next().map(|kv| kv.value)),
                Err(s)
                    if token.is_some()
                        && attempt == 0
                        && s.message().contains("invalid auth token") =>
                {
                    continue;
                }
                Err(s) => return Err(status(endpoint, &s)),
            }
        }
        Err(UpstreamError::new(
            K::Auth,
            format!("etcd {endpoint}: the auth token was refused twice"),
        ))
    }

    /// The auth token (`None` without credentials); a new one when `fresh`.
    async fn token(
        &self,
        endpoint: &str,
        channel: &Channel,
        fresh: bool,
    ) -> Result<Option<String>, UpstreamError> {
        let Some((user, password)) = &self.credentials else {
            return Ok(None);
        };
        let mut token = self.token.lock().await;
        if let Some(t) = token.as_ref().filter(|_| !fresh) {
            return Ok(Some(t.clone()));
        }
        let mut req = tonic::Request::new(AuthenticateRequest {
            name: user.clone(),
            password: password.expose().to_string(),
        });
        req.set_timeout(TIMEOUT);
        let answer = AuthClient::new(channel.clone())
            .authenticate(req)
            .await
            .map_err(|s| {
                let mut e = status(endpoint, &s);
                if s.message().contains("authentication failed") {
                    e.kind = K::Auth;
                }
                e
            })?;
        *token = Some(answer.into_inner().token);
        Ok(token.clone())
    }
}

impl EtcdClient {
    /// Watches `key` on the endpoint that answered last until the watch ends or fails,
    /// calling `seen` with each new value (KEDA's: a value that is not a number is 0). No
    /// message (progress notifications included) within `2 × progress` ends it.
    async fn watch(
        &self,
        key: &[u8],
        progress: Duration,
        fresh_token: bool,
        mut seen: impl FnMut(f64),
    ) -> Result<(), UpstreamError> {
        let i = *self.preferred.lock().unwrap_or_else(|p| p.into_inner());
        let (endpoint, channel) = &self.channels[i % self.channels.len()];
        let token = self.token(endpoint, channel, fresh_token).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let create = WatchCreateRequest {
            key: key.to_vec(),
            progress_notify: true,
            ..Default::default()
        };
        let _ = tx
            .send(WatchRequest {
                request_union: Some(RequestUnion::CreateRequest(create)),
            })
            .await;
        let mut req = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
        if let Some(t) = token.as_deref().and_then(|t| t.parse().ok()) {
            req.metadata_mut().insert("token", t);
        }
        // clientv3.WithRequireLeader: a member cut off from the leader ends the watch.
        req.metadata_mut().insert(
            "hasleader",
            tonic::metadata::MetadataValue::from_static("true"),
        );
        let mut stream = WatchClient::new(channel.clone())
            .watch(req)
            .await
            .map_err(|s| status(endpoint, &s))?
            .into_inner();
        // The request stream stays open while the watch lasts: closing it ends the watch.
        let _open = tx;
        loop {
            let next = tokio::time::timeout(progress * 2, stream.message()).await;
            let answer = match next {
                Err(_) => {
                    return Err(UpstreamError::new(
                        K::Timeout,
                        format!(
                            "etcd {endpoint}: no watch progress notification in {:?}",
                            progress * 2
                        ),
                    ));
                }
                Ok(Err(s)) => return Err(status(endpoint, &s)),
                Ok(Ok(None)) => return Ok(()),
                Ok(Ok(Some(a))) => a,
            };
            if answer.canceled {
                let why = answer.cancel_reason;
                return Err(UpstreamError::new(
                    K::Other,
                    format!("etcd {endpoint}: watch canceled: {why}"),
                ));
            }
            for event in answer.events {
                let value = event.kv.map(|kv| kv.value).unwrap_or_default();
                seen(
                    String::from_utf8_lossy(&value)
                        .parse::<f64>()
                        .unwrap_or(0.0),
                );
            }
        }
    }
}

/// Watches the key for as long as the scaler lives, as KEDA's `Run`: again after each end,
/// 2 s later doubling to 1 min. A change marks the next reading fresh and wakes the loop.
async fn watch(
    client: Arc<EtcdClient>,
    key: String,
    progress: Duration,
    push: Arc<Push>,
    wake: Arc<Notify>,
    shared: Shared,
) {
    let mut backoff = Duration::from_secs(2);
    let mut fresh_token = false;
    loop {
        shared.count_upstream("etcd");
        let seen = |_: f64| {
            push.changed.store(true, Ordering::SeqCst);
            wake.notify_one();
        };
        match client
            .watch(key.as_bytes(), progress, fresh_token, seen)
            .await
        {
            Ok(()) => fresh_token = false,
            Err(e) => {
                fresh_token = e.message.contains("invalid auth token");
                tracing::warn!(error = %e, "etcd watch");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(60));
    }
}

/// A lazily connected channel to one endpoint (`host:port`, or a URL with its scheme).
fn channel(endpoint: &str, tls: Option<&TlsKey>) -> Result<Channel, UpstreamError> {
    let failed = |m: String| UpstreamError::new(K::Connect, format!("etcd {endpoint}: {m}"));
    let uri = match (endpoint.contains("://"), tls.is_some()) {
        (true, _) => endpoint.to_string(),
        (false, true) => format!("https://{endpoint}"),
        (false, false) => format!("http://{endpoint}"),
    };
    let mut e = Endpoint::from_shared(uri)
        .map_err(|e| failed(format!("not host:port: {e}")))?
        .connect_timeout(TIMEOUT)
        .tcp_keepalive(Some(Duration::from_secs(30)));
    if let Some(t) = tls {
        let mut config = ClientTlsConfig::new();
        config = crate::scalers::external::with_roots(config, t.ca.as_deref());
        if let Some((cert, key)) = &t.client_cert {
            config = config.identity(Identity::from_pem(cert, key.expose()));
        }
        e = e
            .tls_config(config)
            .map_err(|e| failed(format!("TLS settings: {}", crate::aws::error_chain(&e))))?;
    }
    Ok(e.connect_lazy())
}

/// A failed call, naming the endpoint and the cause (never the password).
fn status(endpoint: &str, s: &tonic::Status) -> UpstreamError {
    use std::error::Error as _;
    let mut why = s.message().to_string();
    if let Some(src) = s.source() {
        why = format!("{why}: {}", crate::aws::error_chain(src));
    }
    let mut e = UpstreamError::grpc(s.code(), format!("etcd {endpoint}: {why}"));
    if s.code() == tonic::Code::Unavailable {
        e.kind = K::Connect;
    }
    e
}

/// One client per endpoints, TLS settings and credentials, made on first use.
#[derive(Default)]
pub struct EtcdClients {
    clients: Mutex<HashMap<ClientKey, Arc<EtcdClient>>>,
}

impl EtcdClients {
    fn get(&self, key: &ClientKey) -> Result<Arc<EtcdClient>, UpstreamError> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(key) {
            return Ok(c.clone());
        }
        let client = Arc::new(EtcdClient::new(key)?);
        clients.insert(key.clone(), client.clone());
        Ok(client)
    }

    pub fn len(&self) -> usize {
        self.clients.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait::async_trait]
impl Scaler for EtcdScaler {
    fn metric_spec(&self) -> MetricSpec {
        MetricSpec::External {
            name: self.metric.clone(),
            target: self.target,
            metric_type: self.metric_type,
        }
    }

    async fn sample(&self) -> Result<Sample, ScalerError> {
        if self.push.changed.swap(false, Ordering::SeqCst) {
            // The watch saw a change: this reading is the key's, not a shared older one.
            self.shared.count_upstream("etcd");
            let value = self.read().await?;
            return Ok(Sample {
                value,
                active: value > self.activation,
            });
        }
        self.shared
            .sample_value(
                "etcd",
                &self.coalesce_key(),
                self.polling,
                self.activation,
                || self.read(),
            )
            .await
    }

    fn upstream_key(&self) -> Option<String> {
        Some(self.coalesce_key())
    }

    fn start_push(&self) -> Option<Arc<Notify>> {
        let wake = Arc::new(Notify::new());
        let client = match self.shared.etcd.get(&self.key) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "etcd: no client to watch with; polling only");
                return Some(wake);
            }
        };
        let task = tokio::spawn(watch(
            client,
            self.watch_key.clone(),
            self.progress,
            self.push.clone(),
            wake.clone(),
            self.shared.clone(),
        ));
        let mut slot = self.push.task.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = slot.replace(task.abort_handle()) {
            old.abort();
        }
        Some(wake)
    }
}

impl Drop for EtcdScaler {
    fn drop(&mut self) {
        if let Some(t) = self
            .push
            .task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            t.abort();
        }
    }
}

#[cfg(test)]
mod tests;
