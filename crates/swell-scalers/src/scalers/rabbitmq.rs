//! `rabbitmq`: scale on a queue's length or message rates, as KEDA's `rabbitmq_scaler.go`:
//! over AMQP (a passive `queue.declare` answers the message count) or through the
//! management API (`/api/queues/<vhost>/<queue>`, or the regex listing over several queues).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::uri::{AMQPScheme, AMQPUri, SASLMechanism};
use lapin::{Connection, ConnectionProperties};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use swell_scaling::naming::metric_name;

use crate::coalesce::Coalescer;
use crate::http::HttpClientKey;
use crate::metadata::{Invalid, MIN_TARGET, keda_duration};
use crate::tls::Secret;
use crate::upstream::{UpstreamError, UpstreamKind};
use crate::{Field, MetricSpec, Params, Sample, Scaler, ScalerError, Shared, Source, TriggerInput};

const HOST: Field = Field::new("host")
    .from(&[Source::Metadata, Source::Auth])
    .hint("amqp://user:password@host:5672/vhost or http://user:password@host:15672/vhost");
const QUEUE_NAME: Field = Field::new("queueName");
const MODE: Field = Field::new("mode");
const VALUE: Field = Field::new("value");
const QUEUE_LENGTH: Field =
    Field::new("queueLength").deprecated("use mode: QueueLength and value instead");
const ACTIVATION: Field = Field::new("activationValue");
const PROTOCOL: Field = Field::new("protocol").from(&[Source::Metadata, Source::Auth]);
const VHOST_NAME: Field = Field::new("vhostName").from(&[Source::Metadata, Source::Auth]);
const USE_REGEX: Field = Field::new("useRegex");
const EXCLUDE_UNACKED: Field = Field::new("excludeUnacknowledged");
const PAGE_SIZE: Field = Field::new("pageSize");
const OPERATION: Field = Field::new("operation");
const TIMEOUT: Field =
    Field::new("timeout").hint("milliseconds, or a Go duration such as 500ms or 5s");
/// KEDA reads these from the TriggerAuthentication or `…FromEnv`, never plain metadata.
const USERNAME: Field = Field::new("username").from(&[Source::Auth, Source::Metadata]);
const PASSWORD: Field = Field::new("password").from(&[Source::Auth, Source::Metadata]);
const TLS: Field = Field::new("tls").from(&[Source::Auth]);
const CA: Field = Field::new("ca").from(&[Source::Auth]);
const CERT: Field = Field::new("cert").from(&[Source::Auth]);
const KEY: Field = Field::new("key").from(&[Source::Auth]);
const KEY_PASSWORD: Field = Field::new("keyPassword").from(&[Source::Auth]);
const UNSAFE_SSL: Field = Field::new("unsafeSsl");

/// Every parameter, for unknown-key warnings.
pub const FIELDS: &[Field] = &[
    HOST,
    QUEUE_NAME,
    MODE,
    VALUE,
    QUEUE_LENGTH,
    ACTIVATION,
    PROTOCOL,
    VHOST_NAME,
    USE_REGEX,
    EXCLUDE_UNACKED,
    PAGE_SIZE,
    OPERATION,
    TIMEOUT,
    USERNAME,
    PASSWORD,
    TLS,
    CA,
    CERT,
    KEY,
    KEY_PASSWORD,
    UNSAFE_SSL,
];

/// TriggerAuthentication parameters of KEDA's that Swell does not support yet.
const UNSUPPORTED_AUTH: &[(&str, &str)] = &[
    ("workloadIdentityResource", "Azure workload identity"),
    ("oauthTokenURI", "OAuth2"),
    ("clientID", "OAuth2"),
    ("clientSecret", "OAuth2"),
    ("scopes", "OAuth2"),
    ("scope", "OAuth2"),
    ("endpointParams", "OAuth2"),
];

/// KEDA's default `queueLength` when neither it nor mode/value is given.
const DEFAULT_QUEUE_LENGTH: f64 = 20.0;
/// How long connecting over AMQP, and then each call, may take (KEDA takes no timeout there).
const AMQP_TIMEOUT: Duration = Duration::from_secs(10);

/// What the trigger scales on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    QueueLength,
    MessageRate,
    DeliverGetRate,
    PublishedToDeliveredRatio,
    ExpectedQueueConsumptionTime,
}

impl Mode {
    const NAMES: &[(&str, Mode)] = &[
        ("QueueLength", Mode::QueueLength),
        ("MessageRate", Mode::MessageRate),
        ("DeliverGetRate", Mode::DeliverGetRate),
        ("PublishedToDeliveredRatio", Mode::PublishedToDeliveredRatio),
        (
            "ExpectedQueueConsumptionTime",
            Mode::ExpectedQueueConsumptionTime,
        ),
    ];
}

/// How the queues a regex matches are combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    Sum,
    Avg,
    Max,
}

/// One reading of a queue (or of the queues a regex matched, combined).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct QueueStatus {
    /// Ready and unacknowledged messages, or ready ones only with `excludeUnacknowledged`.
    pub messages: f64,
    pub publish_rate: f64,
    pub deliver_get_rate: f64,
}

/// The metric and activity a reading gives, as KEDA's `GetMetricsAndActivity`.
pub fn evaluate(mode: Mode, activation: f64, s: QueueStatus) -> Sample {
    let (value, active) = match mode {
        Mode::QueueLength => (s.messages, s.messages > activation),
        Mode::MessageRate => (
            s.publish_rate,
            s.publish_rate > activation || s.messages > activation,
        ),
        Mode::DeliverGetRate => (s.deliver_get_rate, s.deliver_get_rate > activation),
        Mode::PublishedToDeliveredRatio => {
            let (p, d) = (s.publish_rate, s.deliver_get_rate);
            let ratio = match (p > 0.0, d > 0.0) {
                (true, false) => activation,
                (true, true) => p / d,
                _ => 0.0,
            };
            (ratio, ratio > activation || (p > 0.0 && d == 0.0))
        }
        Mode::ExpectedQueueConsumptionTime => {
            let (p, d, m) = (s.publish_rate, s.deliver_get_rate, s.messages);
            let eta = if m == 0.0 {
                0.0
            } else if d == 0.0 {
                activation
            } else {
                (p - d) / d + m / d
            };
            (eta, eta > activation || (d == 0.0 && m > 0.0))
        }
    };
    Sample { value, active }
}

/// TLS settings from the TriggerAuthentication (`tls: enable`).
#[derive(Clone, PartialEq, Eq, Hash)]
struct Tls {
    ca: Option<String>,
    client_cert: Option<(String, Secret)>,
    unsafe_ssl: bool,
}

/// One AMQP server as a trigger reaches it: what makes two connections different. The
/// host URI may hold the password, so nothing here is printed but `shown`.
#[derive(Clone, PartialEq, Eq, Hash)]
struct AmqpTarget {
    host: Secret,
    vhost: Option<String>,
    credentials: Option<(String, Secret)>,
    tls: Option<Tls>,
    /// `amqp://host:port/vhost`, for messages.
    shown: String,
}

/// A management API request, built once from the trigger.
#[derive(Clone, PartialEq, Eq, Hash)]
struct HttpTarget {
    /// The request URL, without credentials.
    url: String,
    /// `http://host:port/sub`, for messages.
    shown: String,
    credentials: Option<(String, Secret)>,
    client: HttpClientKey,
    regex: Option<Operation>,
    exclude_unacked: bool,
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum Target {
    Amqp(AmqpTarget),
    Http(HttpTarget),
    /// The host cannot be read: why, naming the field.
    Invalid(String),
}

pub struct RabbitMqScaler {
    target: Target,
    queue: String,
    mode: Mode,
    value: f64,
    activation: f64,
    metric: String,
    metric_type: crate::MetricType,
    polling: Duration,
    shared: Shared,
}

/// Go's `url.QueryEscape`: everything but `A-Za-z0-9-_.~` escaped, a space as `+`.
pub fn query_escape(s: &str) -> String {
    utf8_percent_encode(s, UNRESERVED)
        .to_string()
        .replace("%20", "+")
}

const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A path segment: as [`query_escape`] but a space is `%20` (the management API reads a
/// `+` in a path as `+`).
fn path_escape(s: &str) -> String {
    utf8_percent_encode(s, UNRESERVED).to_string()
}

/// KEDA's `getVhostAndPathFromURL`: the last path segment of the host URL is the vhost
/// (`/%2F`, the default vhost, when empty), what comes before it a path prefix;
/// `vhostName` replaces the vhost.
pub fn vhost_and_path(raw_path: &str, vhost_name: &str) -> (String, String) {
    let parts: Vec<&str> = raw_path.split('/').collect();
    let mut vhost = format!("/{}", parts.last().copied().unwrap_or_default());
    let prefix: Vec<&str> = parts[..parts.len() - 1]
        .iter()
        .copied()
        .filter(|p| !p.is_empty())
        .collect();
    let path = if prefix.is_empty() {
        String::new()
    } else {
        format!("/{}", prefix.join("/"))
    };
    if !vhost_name.is_empty() {
        vhost = format!("/{}", path_escape(vhost_name));
    }
    if vhost == "/" {
        vhost = "/%2F".into();
    }
    (vhost, path)
}

impl RabbitMqScaler {
    pub fn new(input: &TriggerInput, shared: &Shared) -> Result<RabbitMqScaler, ScalerError> {
        let mut p = Params::new(&input.params);
        let built = Self::parse(input, shared, &mut p);
        p.finish()?;
        Ok(built)
    }

    /// Reads the trigger into `p` without I/O (also for `swell check` and the webhook).
    pub fn parse(input: &TriggerInput, shared: &Shared, p: &mut Params<'_>) -> RabbitMqScaler {
        let queue = p.string(QUEUE_NAME);
        let host = p.opt_string(HOST).map(|h| h.trim().to_string());
        if host.is_none() {
            p.string(HOST); // reports it missing (unless deferred)
        }
        refuse_unsupported(input, p);
        let protocol = protocol(p, host.as_deref());
        let (mode, value) = mode_and_value(p, protocol);
        let activation = p.float(ACTIVATION, 0.0);
        let vhost = p.opt_string(VHOST_NAME);
        let credentials = credentials(input, p);
        let (tls, unsafe_ssl) = tls(p);
        let regex = p.bool(USE_REGEX, false);
        let exclude_unacked = p.bool(EXCLUDE_UNACKED, false);
        let page_size: i64 = p.or(PAGE_SIZE, "a whole number", 100);
        if page_size < 1 {
            p.error("pageSize", "pageSize should be 1 or greater");
        }
        let operation = operation(p, regex);
        let timeout = match p.opt_string(TIMEOUT) {
            Some(v) => keda_duration(v.trim()).unwrap_or_else(|why| {
                p.error("timeout", why);
                Duration::ZERO
            }),
            None => Duration::ZERO,
        };
        let http_only = |p: &mut Params<'_>, on: bool, field: &str| {
            if on && protocol == Some(Protocol::Amqp) {
                p.error(field, format!("configure {field}=true only with HTTP protocol (an http:// or https:// host, or protocol: http)"));
            }
        };
        http_only(p, regex, "useRegex");
        http_only(p, exclude_unacked, "excludeUnacknowledged");
        if protocol == Some(Protocol::Amqp) && !timeout.is_zero() {
            p.error(
                "timeout",
                "AMQP protocol doesn't support custom timeouts; remove timeout or use the HTTP protocol",
            );
        }
        let how = How {
            vhost: vhost.unwrap_or_default(),
            credentials,
            tls,
            unsafe_ssl,
            timeout,
            page_size: regex.then_some(page_size),
            operation,
            exclude_unacked,
        };
        let target = target(protocol, &host.unwrap_or_default(), &queue, how);
        RabbitMqScaler {
            target,
            metric: metric_name(input.index, &format!("rabbitmq-{}", query_escape(&queue))),
            queue,
            mode,
            value,
            activation,
            metric_type: input.metric_type.unwrap_or_default(),
            polling: input.polling_interval,
            shared: shared.clone(),
        }
    }

    fn coalesce_key(&self) -> String {
        use std::hash::{Hash as _, Hasher as _};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.target.hash(&mut h);
        format!("rabbitmq|{:x}|{}", h.finish(), self.queue)
    }

    async fn read(&self) -> Result<QueueStatus, UpstreamError> {
        match &self.target {
            Target::Amqp(t) => {
                let messages = self.shared.rabbitmq.message_count(t, &self.queue).await?;
                Ok(QueueStatus {
                    messages: f64::from(messages),
                    ..Default::default()
                })
            }
            Target::Http(t) => {
                let client = self.shared.http.get(&t.client)?;
                http_read(&client, t).await
            }
            Target::Invalid(why) => Err(UpstreamError::new(UpstreamKind::Connect, why.clone())),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    Amqp,
    Http,
}

/// KEDA's protocol: given, or (`auto`) from the host's scheme. `None`: not known yet
/// (a host only known at run time) or wrong (reported).
fn protocol(p: &mut Params<'_>, host: Option<&str>) -> Option<Protocol> {
    match p.one_of(PROTOCOL, &["auto", "amqp", "http"], "auto") {
        "amqp" => return Some(Protocol::Amqp),
        "http" => return Some(Protocol::Http),
        _ => {}
    }
    let host = host?;
    let scheme = host.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("amqp" | "amqps") => Some(Protocol::Amqp),
        Some("http" | "https") => Some(Protocol::Http),
        other => {
            let scheme = other.unwrap_or_default();
            p.error(
                "host",
                format!(
                    "unknown host URL scheme: `{}`; use amqp://, amqps://, http:// or https://, or set protocol",
                    crate::metadata::cut(scheme)
                ),
            );
            None
        }
    }
}

/// KEDA's `validateTrigger`: `mode` and `value`, or the deprecated `queueLength`, or the
/// default (QueueLength 20).
fn mode_and_value(p: &mut Params<'_>, protocol: Option<Protocol>) -> (Mode, f64) {
    let queue_length = p.float(QUEUE_LENGTH, 0.0);
    let value = p.float(VALUE, 0.0);
    let mode = p.opt_string(MODE);
    let (mode, value, field) = match (queue_length != 0.0, mode, value != 0.0) {
        (false, None, false) => return (Mode::QueueLength, DEFAULT_QUEUE_LENGTH),
        (true, Some(_), _) | (true, _, true) => {
            p.error(
                "queueLength",
                "queueLength is deprecated; use mode and value (not both)",
            );
            return (Mode::QueueLength, queue_length);
        }
        (true, None, false) => (Mode::QueueLength, queue_length, "queueLength"),
        (false, None, true) => {
            p.error("mode", "mode must be specified (with value)");
            return (Mode::QueueLength, value);
        }
        (false, Some(m), v) => {
            if !v {
                p.error("value", "value must be specified (with mode)");
            }
            let names: Vec<&str> = Mode::NAMES.iter().map(|(n, _)| *n).collect();
            let Some((_, mode)) = Mode::NAMES.iter().find(|(n, _)| *n == m) else {
                p.error(
                    "mode",
                    format!(
                        "trigger mode {} must be one of {}",
                        crate::metadata::shown(&m),
                        names.join(", ")
                    ),
                );
                return (Mode::QueueLength, value);
            };
            (*mode, value, "value")
        }
    };
    if mode != Mode::QueueLength && protocol == Some(Protocol::Amqp) {
        p.error(
            "mode",
            format!("protocol amqp not supported; must be HTTP to use trigger mode {mode:?}"),
        );
    }
    if value != 0.0 && value < MIN_TARGET {
        p.error(
            field,
            format!("must be greater than 0 (at least {MIN_TARGET}: the HPA's target is a positive quantity in thousandths), got {value}"),
        );
    }
    (mode, value)
}

fn operation(p: &mut Params<'_>, regex: bool) -> Operation {
    // KEDA reads `operation` only with useRegex (and then fails every reading on a bad
    // one); Swell refuses the bad one at once and ignores it without useRegex, as KEDA.
    let Some(v) = p.opt_string(OPERATION) else {
        return Operation::Sum;
    };
    match v.as_str() {
        "sum" => Operation::Sum,
        "avg" => Operation::Avg,
        "max" => Operation::Max,
        _ if !regex => Operation::Sum,
        other => {
            p.error(
                "operation",
                format!(
                    "operation mode {} must be one of sum, avg, max",
                    crate::metadata::shown(other)
                ),
            );
            Operation::Sum
        }
    }
}

fn refuse_unsupported(input: &TriggerInput, p: &mut Params<'_>) {
    for secret in ["username", "password"] {
        if input.params.metadata.contains_key(secret) {
            p.error(
                secret,
                format!("is not read from trigger metadata (as KEDA); put {secret} in a TriggerAuthentication or use {secret}FromEnv"),
            );
        }
    }
    for (name, what) in UNSUPPORTED_AUTH {
        if input.params.auth.contains_key(*name) {
            p.error(
                name,
                format!("{what} (TriggerAuthentication parameter {name}) is not supported by Swell yet; use username and password"),
            );
        }
    }
}

/// `username` and `password`, together or not at all.
fn credentials(input: &TriggerInput, p: &mut Params<'_>) -> Option<(String, Secret)> {
    // Plain metadata is refused above; only the TriggerAuthentication and `…FromEnv` count.
    let plain = |k: &str| input.params.metadata.contains_key(k);
    let user = p.opt_string(USERNAME).filter(|_| !plain("username"));
    let password = p.opt_string(PASSWORD).filter(|_| !plain("password"));
    match (user, password) {
        (Some(u), Some(pw)) => Some((u, Secret::new(pw))),
        (None, None) => None,
        _ => {
            p.error("username", "username and password must be given together");
            None
        }
    }
}

/// `tls: enable`'s settings, and `unsafeSsl` (which KEDA's HTTP client honours alone too).
fn tls(p: &mut Params<'_>) -> (Option<Tls>, bool) {
    let on = match p.opt_string(TLS) {
        Some(v) if v == "enable" => true,
        Some(v) if v == "disable" => false,
        Some(v) => {
            p.error(
                "tls",
                format!(
                    "incorrect value for TLS given: {}; use enable or disable",
                    crate::metadata::shown(&v)
                ),
            );
            false
        }
        None => false,
    };
    let unsafe_ssl = p.bool(UNSAFE_SSL, false);
    let (cert, key, ca) = (p.opt_string(CERT), p.opt_string(KEY), p.opt_string(CA));
    if cert.is_some() != key.is_some() && !p.is_deferred("cert") && !p.is_deferred("key") {
        p.error("tls", "both key and certificate must be provided");
    }
    if p.opt_string(KEY_PASSWORD).is_some() {
        p.error(
            "keyPassword",
            "an encrypted private key is not supported by Swell yet; give key unencrypted in PKCS#8, PKCS#1 or SEC1 PEM",
        );
    }
    let client_cert = cert.zip(key.map(Secret::new));
    let enabled = on.then_some(Tls {
        ca,
        client_cert,
        unsafe_ssl,
    });
    (enabled, unsafe_ssl)
}

fn amqp_target(host: &str, how: How) -> Result<AmqpTarget, Invalid> {
    let mut t = AmqpTarget {
        host: Secret::new(host),
        vhost: Some(how.vhost).filter(|v| !v.is_empty()),
        credentials: how.credentials,
        // Over AMQP only `tls: enable` counts (KEDA ignores unsafeSsl alone there).
        tls: how.tls,
        shown: String::new(),
    };
    let uri = t.uri()?;
    t.shown = format!(
        "{}://{}:{}/{}",
        if uri.scheme == AMQPScheme::AMQPS {
            "amqps"
        } else {
            "amqp"
        },
        uri.authority.host,
        uri.authority.port,
        path_escape(&uri.vhost)
    );
    Ok(t)
}

impl AmqpTarget {
    /// The URI to connect to, with vhostName and username/password applied.
    fn uri(&self) -> Result<AMQPUri, Invalid> {
        let mut uri: AMQPUri = self.host.expose().parse().map_err(|_| {
            "is not an AMQP URI; use amqp://user:password@host:5672/vhost".to_string()
        })?;
        if let Some(v) = &self.vhost {
            uri.vhost = v.clone();
        }
        if let Some((u, pw)) = &self.credentials {
            uri.authority.userinfo.username = u.clone();
            uri.authority.userinfo.password = pw.expose().to_string();
        }
        // KEDA's SASL EXTERNAL: a client certificate and no password anywhere.
        if self.tls.as_ref().is_some_and(|t| t.client_cert.is_some())
            && self.credentials.is_none()
            && !has_password(self.host.expose())
        {
            uri.query.auth_mechanism = Some(SASLMechanism::External);
        }
        Ok(uri)
    }
}

/// Whether a URL's userinfo has a password (`user:pass@`).
fn has_password(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
}

/// Everything but the host and queue that decides how a queue is read.
struct How {
    vhost: String,
    credentials: Option<(String, Secret)>,
    tls: Option<Tls>,
    unsafe_ssl: bool,
    /// Zero: the default.
    timeout: Duration,
    /// With useRegex: the page size.
    page_size: Option<i64>,
    operation: Operation,
    exclude_unacked: bool,
}

/// The target a trigger reads. A host that is no URL fails every reading (as in KEDA,
/// which parses it only then), naming the field and the fix.
fn target(protocol: Option<Protocol>, host: &str, queue: &str, how: How) -> Target {
    let built = match protocol {
        Some(Protocol::Http) => http_target(host, queue, how).map(Target::Http),
        _ => amqp_target(host, how).map(Target::Amqp),
    };
    built.unwrap_or_else(|why| Target::Invalid(format!("rabbitmq: host {why}")))
}

/// KEDA's `getQueueInfoViaHTTP` URL, its credentials taken out of the URL.
fn http_target(host: &str, queue: &str, how: How) -> Result<HttpTarget, Invalid> {
    let bad = "is not a management API URL; use http://user:password@host:15672/vhost";
    let url = reqwest::Url::parse(host).map_err(|_| bad.to_string())?;
    if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
        return Err(bad.into());
    }
    let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
    let from_url = (!url.username().is_empty()).then(|| {
        let pw = url.password().map(decode).unwrap_or_default();
        (decode(url.username()), Secret::new(pw))
    });
    let (vhost, prefix) = vhost_and_path(url.path(), &how.vhost);
    let origin = url.origin().ascii_serialization();
    let base = format!("{origin}{prefix}/api/queues{vhost}");
    let request = match how.page_size {
        None => format!("{base}/{}", path_escape(queue)),
        Some(n) => format!(
            "{base}?page=1&use_regex=true&pagination=false&name={}&page_size={n}",
            query_escape(queue)
        ),
    };
    let tls = how.tls.unwrap_or(Tls {
        ca: None,
        client_cert: None,
        unsafe_ssl: how.unsafe_ssl,
    });
    // Without `timeout`, KEDA's global HTTP timeout.
    let timeout = (!how.timeout.is_zero()).then_some(how.timeout);
    Ok(HttpTarget {
        url: request,
        shown: format!("{origin}{prefix}"),
        credentials: how.credentials.or(from_url),
        client: HttpClientKey {
            unsafe_ssl: tls.unsafe_ssl,
            timeout,
            ca: tls.ca,
            client_cert: tls.client_cert,
        },
        regex: how.page_size.map(|_| how.operation),
        exclude_unacked: how.exclude_unacked,
    })
}

/// One queue's numbers from a management API queue object.
fn queue_numbers(q: &serde_json::Value, exclude_unacked: bool) -> QueueStatus {
    let num = |v: Option<&serde_json::Value>| v.and_then(serde_json::Value::as_f64).unwrap_or(0.0);
    let rate = |what: &str| num(q.pointer(&format!("/message_stats/{what}/rate")));
    let count = if exclude_unacked {
        "messages_ready"
    } else {
        "messages"
    };
    QueueStatus {
        messages: num(q.get(count)),
        publish_rate: rate("publish_details"),
        deliver_get_rate: rate("deliver_get_details"),
    }
}

/// KEDA's `getComposedQueue`; whole message counts are averaged with Go's integer division.
pub fn combine(op: Operation, queues: &[QueueStatus]) -> QueueStatus {
    let mut out = QueueStatus::default();
    if queues.is_empty() {
        return out;
    }
    for q in queues {
        match op {
            Operation::Sum | Operation::Avg => {
                out.messages += q.messages;
                out.publish_rate += q.publish_rate;
                out.deliver_get_rate += q.deliver_get_rate;
            }
            Operation::Max => {
                out.messages = out.messages.max(q.messages);
                out.publish_rate = out.publish_rate.max(q.publish_rate);
                out.deliver_get_rate = out.deliver_get_rate.max(q.deliver_get_rate);
            }
        }
    }
    if op == Operation::Avg {
        let n = queues.len() as f64;
        out.messages = (out.messages / n).trunc();
        out.publish_rate /= n;
        out.deliver_get_rate /= n;
    }
    out
}

/// What the management API answered, read as KEDA reads it.
fn http_answer(t: &HttpTarget, body: &serde_json::Value) -> Result<QueueStatus, UpstreamError> {
    let Some(op) = t.regex else {
        return Ok(queue_numbers(body, t.exclude_unacked));
    };
    let bad = |why: &str| UpstreamError::bad_response(format!("rabbitmq {}: {why}", t.shown));
    if body.get("page_count").and_then(serde_json::Value::as_i64) > Some(1) {
        return Err(bad(
            "regex matches more queues than can be recovered at once; raise pageSize or narrow queueName",
        ));
    }
    let items = body
        .get("items")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| bad("the queue listing has no items"))?;
    let queues: Vec<QueueStatus> = items
        .iter()
        .map(|q| queue_numbers(q, t.exclude_unacked))
        .collect();
    Ok(combine(op, &queues))
}

async fn http_read(client: &reqwest::Client, t: &HttpTarget) -> Result<QueueStatus, UpstreamError> {
    let path = t.url.strip_prefix(&t.shown).unwrap_or(&t.url);
    let what = |why: String| format!("rabbitmq {}: GET {path}: {why}", t.shown);
    let mut req = client.get(&t.url);
    if let Some((u, pw)) = &t.credentials {
        req = req.basic_auth(u, Some(pw.expose()));
    }
    let resp = crate::observe::send(req).await.map_err(|e| {
        // The whole chain without the URL: "error sending request" alone hides the cause.
        let e = e.without_url();
        UpstreamError::reqwest(&e, what(crate::aws::error_chain(&e)))
    })?;
    let status = resp.status();
    let body = resp.text().await.map_err(|e| {
        let e = e.without_url();
        UpstreamError::reqwest(&e, what(e.to_string()))
    })?;
    if !status.is_success() {
        let why = format!("{status}: {}", crate::metadata::cut(body.trim()));
        return Err(UpstreamError::http(status.as_u16(), what(why)));
    }
    let json: serde_json::Value = serde_json::from_str(&body)
        .map_err(|e| UpstreamError::bad_response(what(format!("the answer is not JSON ({e})"))))?;
    http_answer(t, &json)
}

/// Why an AMQP call failed, naming the server and the cause (never the password).
fn amqp_error(t: &AmqpTarget, e: &lapin::Error) -> UpstreamError {
    use lapin::ErrorKind as E;
    let kind = match e.kind() {
        E::ProtocolError(p) => match p.get_id() {
            403 | 530 => UpstreamKind::Auth,
            404 => UpstreamKind::NotFound,
            _ => UpstreamKind::Other,
        },
        E::IOError(_) | E::InvalidConnectionState(_) | E::MissingHeartbeatError => {
            UpstreamKind::Connect
        }
        _ => UpstreamKind::Other,
    };
    let mut msg = e.to_string();
    if let E::IOError(io) = e.kind()
        && let Some(inner) = std::error::Error::source(&**io)
    {
        msg = format!("{msg}: {inner}");
    }
    UpstreamError::new(kind, format!("rabbitmq {}: {msg}", t.shown))
}

fn amqp_timeout(t: &AmqpTarget, what: &str) -> UpstreamError {
    UpstreamError::new(
        UpstreamKind::Timeout,
        format!(
            "rabbitmq {}: {what} took longer than {AMQP_TIMEOUT:?}",
            t.shown
        ),
    )
}

type Slot = Arc<tokio::sync::Mutex<Option<Arc<Connection>>>>;

/// AMQP connections, one per server, credentials and TLS settings, made on first use and
/// made again once closed; and readings shared by the triggers asking the same.
#[derive(Default)]
pub struct RabbitMqClients {
    slots: Mutex<HashMap<AmqpTarget, Slot>>,
    readings: Coalescer<String, Result<QueueStatus, UpstreamError>>,
}

impl RabbitMqClients {
    /// AMQP connections made or being made.
    pub fn len(&self) -> usize {
        self.slots.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    async fn connection(&self, t: &AmqpTarget) -> Result<Arc<Connection>, UpstreamError> {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.entry(t.clone()).or_default().clone()
        };
        let mut guard = slot.lock().await;
        if let Some(c) = guard.as_ref().filter(|c| c.status().connected()) {
            return Ok(c.clone());
        }
        let c = Arc::new(connect(t).await?);
        *guard = Some(c.clone());
        Ok(c)
    }

    /// The queue's message count: a passive `queue.declare` on a channel of its own (a
    /// missing queue closes the channel, so one trigger's 404 never fails another's).
    async fn message_count(&self, t: &AmqpTarget, queue: &str) -> Result<u32, UpstreamError> {
        let conn = self.connection(t).await?;
        let call = async {
            let channel = conn.create_channel().await?;
            let options = QueueDeclareOptions {
                passive: true,
                ..Default::default()
            };
            let declared = channel
                .queue_declare(queue.into(), options, FieldTable::default())
                .await;
            if channel.status().connected() {
                let _ = channel.close(200, "OK".into()).await;
            }
            declared.map(|q| q.message_count())
        };
        tokio::time::timeout(AMQP_TIMEOUT, call)
            .await
            .map_err(|_| amqp_timeout(t, "queue.declare"))?
            .map_err(|e| amqp_error(t, &e))
    }
}

async fn connect(t: &AmqpTarget) -> Result<Connection, UpstreamError> {
    let uri = t
        .uri()
        .map_err(|why| UpstreamError::bad_response(format!("rabbitmq: host {why}")))?;
    let tls = match uri.scheme {
        AMQPScheme::AMQPS => Some(Arc::new(tls_config(t.tls.as_ref()).map_err(|why| {
            UpstreamError::new(
                UpstreamKind::Connect,
                format!("rabbitmq {}: TLS: {why}", t.shown),
            )
        })?)),
        AMQPScheme::AMQP => None,
    };
    let runtime = lapin::runtime::default_runtime().map_err(|e| amqp_error(t, &e))?;
    let props = ConnectionProperties::default().with_connection_name("swell".into());
    let dial = Connection::connector(
        uri,
        runtime,
        async move |uri, runtime| {
            let (host, port) = (uri.authority.host.clone(), uri.authority.port);
            let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
                .await?
                .collect();
            let stream = lapin::AsyncTcpStream::connect(&runtime, addrs).await?;
            match &tls {
                Some(config) => {
                    let connector = lapin::tcp::RustlsConnector::from(config.clone());
                    Ok(stream.into_rustls(&connector, &host).await?)
                }
                None => Ok(stream),
            }
        },
        props,
    );
    tokio::time::timeout(AMQP_TIMEOUT, dial)
        .await
        .map_err(|_| amqp_timeout(t, "connecting"))?
        .map_err(|e| amqp_error(t, &e))
}

/// The rustls configuration for amqps://: the operator's roots plus `ca`, or no check with
/// `unsafeSsl`; the client certificate when given.
fn tls_config(tls: Option<&Tls>) -> Result<rustls::ClientConfig, Invalid> {
    let t = crate::tls::ClientTls {
        unsafe_ssl: tls.is_some_and(|t| t.unsafe_ssl),
        ca: tls.and_then(|t| t.ca.as_deref()),
        client_cert: tls.and_then(|t| t.client_cert.as_ref().map(|(c, k)| (c.as_str(), k))),
    };
    crate::tls::outbound()
        .client_config(t)
        .map_err(|e| Invalid(e.to_string()))
}

#[async_trait::async_trait]
impl Scaler for RabbitMqScaler {
    fn metric_spec(&self) -> MetricSpec {
        MetricSpec::External {
            name: self.metric.clone(),
            target: self.value,
            metric_type: self.metric_type,
        }
    }

    async fn sample(&self) -> Result<Sample, ScalerError> {
        let key = self.coalesce_key();
        let (status, upstream) = self
            .shared
            .rabbitmq
            .readings
            .get(&key, self.polling, || self.read())
            .await;
        if upstream {
            self.shared.count_upstream("rabbitmq");
        }
        Ok(evaluate(self.mode, self.activation, status?))
    }

    fn upstream_key(&self) -> Option<String> {
        Some(self.coalesce_key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RawParams, map};

    type Pairs<'a> = &'a [(&'a str, &'a str)];

    /// KEDA's `sampleRabbitMqResolvedEnv`.
    const ENV: Pairs = &[
        ("myHostSecret", "amqp://user:sercet@somehost.com:5236/vhost"),
        ("myUsernameSecret", "user"),
        ("myPasswordSecret", "Password"),
    ];

    fn scaler(index: usize, meta: Pairs, auth: Pairs) -> Result<RabbitMqScaler, ScalerError> {
        RabbitMqScaler::new(
            &TriggerInput {
                index,
                type_: "rabbitmq".into(),
                params: RawParams {
                    trigger_index: index,
                    metadata: map(meta),
                    auth: map(auth),
                    env: map(ENV),
                    ..Default::default()
                },
                ..Default::default()
            },
            &Shared::default(),
        )
    }

    /// KEDA's `testRabbitMQMetadata`: (metadata, auth, KEDA refuses it).
    #[test]
    fn parses_keda_metadata_table() {
        let h = "myHostSecret";
        let cases: &[(Pairs, Pairs, bool)] = &[
            (&[], &[], true),
            (
                &[
                    ("queueLength", "10"),
                    ("queueName", "sample"),
                    ("hostFromEnv", h),
                ],
                &[],
                false,
            ),
            (
                &[
                    ("queueLength", "AA"),
                    ("queueName", "sample"),
                    ("hostFromEnv", h),
                ],
                &[],
                true,
            ),
            (&[("queueLength", "AA"), ("queueName", "sample")], &[], true),
            (&[("queueLength", "10"), ("hostFromEnv", h)], &[], true),
            (
                &[("queueLength", "10"), ("hostFromEnv", h)],
                &[("host", h)],
                true,
            ),
            (
                &[
                    ("queueLength", "10"),
                    ("queueName", "sample"),
                    ("host", h),
                    ("protocol", "http"),
                ],
                &[],
                false,
            ),
            (
                &[
                    ("queueLength", "10"),
                    ("queueName", "namespace/name"),
                    ("hostFromEnv", h),
                ],
                &[],
                false,
            ),
            (
                &[
                    ("vhostName", "myVhost"),
                    ("queueName", "namespace/name"),
                    ("hostFromEnv", h),
                ],
                &[],
                false,
            ),
            (
                &[
                    ("vhostName", ""),
                    ("queueName", "namespace/name"),
                    ("hostFromEnv", h),
                ],
                &[],
                false,
            ),
            (
                &[("queueName", "sample"), ("hostFromEnv", h)],
                &[("protocol", "http")],
                false,
            ),
            (
                &[("queueName", "sample"), ("host", "something://")],
                &[],
                true,
            ),
            (&[("queueName", "sample"), ("host", "http://")], &[], false),
            (&[("queueName", "sample"), ("host", "https://")], &[], false),
            (
                &[
                    ("queueLength", "10"),
                    ("mode", "QueueLength"),
                    ("queueName", "sample"),
                    ("host", "https://"),
                ],
                &[],
                true,
            ),
            (
                &[
                    ("queueLength", "10"),
                    ("value", "20"),
                    ("queueName", "sample"),
                    ("host", "https://"),
                ],
                &[],
                true,
            ),
            (
                &[
                    ("queueLength", "10"),
                    ("mode", "QueueLength"),
                    ("value", "20"),
                    ("queueName", "sample"),
                    ("host", "https://"),
                ],
                &[],
                true,
            ),
            (
                &[
                    ("mode", "QueueLength"),
                    ("queueName", "sample"),
                    ("host", "https://"),
                ],
                &[],
                true,
            ),
            (
                &[
                    ("value", "20"),
                    ("queueName", "sample"),
                    ("host", "https://"),
                ],
                &[],
                true,
            ),
            (
                &[
                    ("mode", "QueueLength"),
                    ("value", "20"),
                    ("queueName", "sample"),
                    ("host", "https://"),
                ],
                &[],
                false,
            ),
            (
                &[
                    ("mode", "Feelings"),
                    ("value", "20"),
                    ("queueName", "sample"),
                    ("host", "https://"),
                ],
                &[],
                true,
            ),
            (
                &[
                    ("mode", "QueueLength"),
                    ("value", "lots"),
                    ("queueName", "sample"),
                    ("host", "https://"),
                ],
                &[],
                true,
            ),
            (
                &[
                    ("mode", "QueueLength"),
                    ("value", "20"),
                    ("queueName", "sample"),
                    ("host", "amqps://"),
                ],
                &[],
                false,
            ),
            (
                &[
                    ("mode", "MessageRate"),
                    ("value", "1000"),
                    ("queueName", "sample"),
                    ("host", "amqps://"),
                ],
                &[],
                true,
            ),
            (
                &[
                    ("mode", "MessageRate"),
                    ("value", "1000"),
                    ("queueName", "sample"),
                    ("host", "amqp://"),
                ],
                &[],
                true,
            ),
            (
                &[
                    ("mode", "MessageRate"),
                    ("value", "1000"),
                    ("queueName", "sample"),
                    ("host", "http://"),
                ],
                &[],
                false,
            ),
            (
                &[
                    ("mode", "MessageRate"),
                    ("value", "1000"),
                    ("queueName", "sample"),
                    ("host", "https://"),
                ],
                &[],
                false,
            ),
            (
                &[
                    ("mode", "DeliverGetRate"),
                    ("value", "1000"),
                    ("queueName", "sample"),
                    ("host", "amqps://"),
                ],
                &[],
                true,
            ),
            (
                &[
                    ("mode", "DeliverGetRate"),
                    ("value", "1000"),
                    ("queueName", "sample"),
                    ("host", "amqp://"),
                ],
                &[],
                true,
            ),
            (
                &[
                    ("mode", "DeliverGetRate"),
                    ("value", "1000"),
                    ("queueName", "sample"),
                    ("host", "http://"),
                ],
                &[],
                false,
            ),
            (
                &[
                    ("mode", "DeliverGetRate"),
                    ("value", "1000"),
                    ("queueName", "sample"),
                    ("host", "https://"),
                ],
                &[],
                false,
            ),
            (
                &[
                    ("queueName", "sample"),
                    ("host", "amqps://"),
                    ("useRegex", "true"),
                ],
                &[],
                true,
            ),
            (
                &[
                    ("queueName", "sample"),
                    ("host", "http://"),
                    ("useRegex", "true"),
                ],
                &[],
                false,
            ),
            (
                &[
                    ("mode", "MessageRate"),
                    ("value", "1000"),
                    ("queueName", "sample"),
                    ("host", "http://"),
                    ("useRegex", "true"),
                ],
                &[],
                false,
            ),
            (
                &[
                    ("mode", "DeliverGetRate"),
                    ("value", "1000"),
                    ("queueName", "sample"),
                    ("host", "http://"),
                    ("useRegex", "true"),
                ],
                &[],
                false,
            ),
            (
                &[
                    ("mode", "QueueLength"),
                    ("value", "1000"),
                    ("queueName", "sample"),
                    ("host", "http://"),
                    ("useRegex", "true"),
                ],
                &[],
                false,
            ),
            (
                &[
                    ("mode", "QueueLength"),
                    ("value", "1000"),
                    ("queueName", "sample"),
                    ("host", "http://"),
                    ("timeout", "1000"),
                ],
                &[],
                false,
            ),
            (
                &[
                    ("mode", "QueueLength"),
                    ("value", "1000"),
                    ("queueName", "sample"),
                    ("host", "http://"),
                    ("timeout", "-10"),
                ],
                &[],
                true,
            ),
            (
                &[
                    ("mode", "QueueLength"),
                    ("value", "1000"),
                    ("queueName", "sample"),
                    ("host", "http://"),
                    ("timeout", "error"),
                ],
                &[],
                true,
            ),
            (
                &[
                    ("mode", "QueueLength"),
                    ("value", "1000"),
                    ("queueName", "sample"),
                    ("host", "amqp://"),
                    ("timeout", "10"),
                ],
                &[],
                true,
            ),
            (
                &[
                    ("mode", "MessageRate"),
                    ("value", "1000"),
                    ("queueName", "sample"),
                    ("host", "http://"),
                    ("useRegex", "true"),
                    ("pageSize", "100"),
                ],
                &[],
                false,
            ),
            (
                &[
                    ("mode", "MessageRate"),
                    ("value", "1000"),
                    ("queueName", "sample"),
                    ("host", "http://"),
                    ("useRegex", "true"),
                    ("pageSize", "-1"),
                ],
                &[],
                true,
            ),
            (
                &[
                    ("mode", "MessageRate"),
                    ("value", "1000"),
                    ("queueName", "sample"),
                    ("host", "http://"),
                    ("useRegex", "true"),
                    ("pageSize", "a"),
                ],
                &[],
                true,
            ),
            (
                &[
                    ("mode", "DeliverGetRate"),
                    ("value", "1000"),
                    ("queueName", "sample"),
                    ("host", "http://"),
                    ("useRegex", "true"),
                    ("pageSize", "100"),
                ],
                &[],
                false,
            ),
            (
                &[
                    ("mode", "DeliverGetRate"),
                    ("value", "1000"),
                    ("queueName", "sample"),
                    ("host", "http://"),
                    ("useRegex", "true"),
                    ("pageSize", "-1"),
                ],
                &[],
                true,
            ),
            (
                &[
                    ("mode", "DeliverGetRate"),
                    ("value", "1000"),
                    ("queueName", "sample"),
                    ("host", "http://"),
                    ("useRegex", "true"),
                    ("pageSize", "a"),
                ],
                &[],
                true,
            ),
            (
                &[
                    ("activationValue", "10"),
                    ("queueLength", "20"),
                    ("queueName", "sample"),
                    ("hostFromEnv", h),
                ],
                &[],
                false,
            ),
            (
                &[
                    ("activationValue", "AA"),
                    ("queueLength", "10"),
                    ("queueName", "sample"),
                    ("hostFromEnv", h),
                ],
                &[],
                true,
            ),
            (
                &[
                    ("mode", "QueueLength"),
                    ("value", "1000"),
                    ("queueName", "sample"),
                    ("host", "http://"),
                    ("useRegex", "true"),
                    ("excludeUnacknowledged", "true"),
                ],
                &[],
                false,
            ),
            (
                &[
                    ("mode", "QueueLength"),
                    ("value", "1000"),
                    ("queueName", "sample"),
                    ("host", "amqp://"),
                    ("useRegex", "true"),
                    ("excludeUnacknowledged", "true"),
                ],
                &[],
                true,
            ),
            (
                &[
                    ("queueName", "sample"),
                    ("host", "https://"),
                    ("unsafeSsl", "true"),
                ],
                &[],
                false,
            ),
            (
                &[
                    ("queueName", "sample"),
                    ("host", "https://"),
                    ("unsafeSsl", "random"),
                ],
                &[],
                true,
            ),
        ];
        for (i, (meta, auth, refused)) in cases.iter().enumerate() {
            let got = scaler(0, meta, auth);
            assert_eq!(
                got.is_err(),
                *refused,
                "case {i}: {:?}",
                got.err().map(|e| e.to_string())
            );
        }
    }

    /// KEDA's `testRabbitMQAuthParamData`. Azure workload identity and OAuth2, which KEDA
    /// accepts, are refused as not supported; KEDA's own refusals stay refusals.
    #[test]
    fn parses_keda_auth_table() {
        let meta: Pairs = &[("queueName", "sample"), ("hostFromEnv", "myHostSecret")];
        let cases: &[(Pairs, Pairs, bool)] = &[
            (
                meta,
                &[
                    ("tls", "enable"),
                    ("ca", "caaa"),
                    ("cert", "ceert"),
                    ("key", "keey"),
                ],
                false,
            ),
            (
                meta,
                &[("tls", "enable"), ("cert", "ceert"), ("key", "keey")],
                false,
            ),
            (meta, &[("tls", "enable"), ("ca", "caaa")], false),
            (
                meta,
                &[("tls", "enable"), ("ca", "caaa"), ("key", "kee")],
                true,
            ),
            (
                meta,
                &[("tls", "enable"), ("ca", "caaa"), ("cert", "ceert")],
                true,
            ),
            (
                meta,
                &[
                    ("tls", "yes"),
                    ("ca", "caaa"),
                    ("cert", "ceert"),
                    ("key", "kee"),
                ],
                true,
            ),
            (
                meta,
                &[("username", "user"), ("password", "PASSWORD")],
                false,
            ),
            (meta, &[("username", "user")], true),
            (meta, &[("password", "PASSWORD")], true),
            (meta, &[("vhostName", "myVhost")], false),
            (meta, &[("vhostName", "")], false),
            (
                &[
                    ("queueName", "sample"),
                    ("hostFromEnv", "myHostSecret"),
                    ("usernameFromEnv", "myUsernameSecret"),
                    ("passwordFromEnv", "myPasswordSecret"),
                ],
                &[],
                false,
            ),
            (
                &[
                    ("queueName", "sample"),
                    ("hostFromEnv", "myHostSecret"),
                    ("usernameFromEnv", "myUsernameSecret"),
                ],
                &[],
                true,
            ),
            (
                &[
                    ("queueName", "sample"),
                    ("hostFromEnv", "myHostSecret"),
                    ("passwordFromEnv", "myPasswordSecret"),
                ],
                &[],
                true,
            ),
            // Swell: encrypted keys, workload identity and OAuth2 are not supported yet.
            (
                meta,
                &[
                    ("tls", "enable"),
                    ("cert", "ceert"),
                    ("key", "keey"),
                    ("keyPassword", "p"),
                ],
                true,
            ),
            (
                meta,
                &[("workloadIdentityResource", "rabbitmq-resource-id")],
                true,
            ),
            (
                &[
                    ("queueName", "sample"),
                    ("host", "http://localhost:15672"),
                    ("protocol", "http"),
                ],
                &[
                    ("oauthTokenURI", "https://oauth.example.com/token"),
                    ("clientID", "c"),
                    ("clientSecret", "s"),
                ],
                true,
            ),
            // Plain metadata credentials are not read by KEDA; Swell says so.
            (
                &[
                    ("queueName", "sample"),
                    ("hostFromEnv", "myHostSecret"),
                    ("username", "u"),
                    ("password", "hunter2"),
                ],
                &[],
                true,
            ),
        ];
        for (i, (meta, auth, refused)) in cases.iter().enumerate() {
            let got = scaler(0, meta, auth);
            let shown = got
                .as_ref()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert_eq!(got.is_err(), *refused, "case {i}: {shown}");
            assert!(!shown.contains("hunter2"), "{shown}");
        }
        let s = scaler(
            0,
            meta,
            &[
                ("tls", "enable"),
                ("ca", "caaa"),
                ("cert", "ceert"),
                ("key", "keey"),
            ],
        )
        .unwrap();
        let Target::Amqp(t) = &s.target else {
            panic!("amqp")
        };
        let tls = t.tls.as_ref().unwrap();
        assert_eq!(tls.ca.as_deref(), Some("caaa"));
        assert_eq!(
            tls.client_cert
                .as_ref()
                .map(|(c, k)| (c.as_str(), k.expose())),
            Some(("ceert", "keey"))
        );
    }

    /// KEDA's `testDefaultQueueLength`, `rabbitMQMetricIdentifiers` and the metric name's
    /// escaping.
    #[test]
    fn defaults_and_metric_names() {
        for meta in [
            &[("queueName", "sample"), ("hostFromEnv", "myHostSecret")][..],
            &[
                ("queueName", "sample"),
                ("hostFromEnv", "myHostSecret"),
                ("protocol", "http"),
            ],
        ] {
            let s = scaler(0, meta, &[]).unwrap();
            assert_eq!((s.mode, s.value), (Mode::QueueLength, DEFAULT_QUEUE_LENGTH));
        }
        let s = scaler(
            0,
            &[
                ("queueLength", "10"),
                ("queueName", "sample"),
                ("hostFromEnv", "myHostSecret"),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(s.metric_spec().name(), "s0-rabbitmq-sample");
        assert_eq!(s.value, 10.0);
        let s = scaler(
            1,
            &[
                ("queueLength", "10"),
                ("queueName", "namespace/name"),
                ("hostFromEnv", "myHostSecret"),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(s.metric_spec().name(), "s1-rabbitmq-namespace-2Fname");
        assert_eq!(query_escape("a b/c~d"), "a+b%2Fc~d");
        // The deprecated queueLength warns.
        let raw = RawParams {
            metadata: map(&[
                ("queueLength", "10"),
                ("queueName", "q"),
                ("host", "amqp://h"),
            ]),
            ..Default::default()
        };
        let mut p = Params::new(&raw);
        let _ = RabbitMqScaler::parse(
            &TriggerInput {
                params: raw.clone(),
                ..Default::default()
            },
            &Shared::default(),
            &mut p,
        );
        let (errors, warnings) = p.into_parts();
        assert!(errors.is_empty(), "{errors:?}");
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("queueLength: deprecated")),
            "{warnings:?}"
        );
    }

    /// KEDA's `getVhostAndPathFromURLTestData`: (raw path, vhostName, vhost, path prefix).
    #[test]
    fn splits_vhost_and_path_like_keda() {
        let root = "/%2F";
        let cases = [
            ("myVhost", "", "/myVhost", ""),
            ("%2FmyVhost", "", "/%2FmyVhost", ""),
            ("/", "", root, ""),
            ("//", "", root, ""),
            ("/%2F", "", root, ""),
            ("", "", root, ""),
            ("sub1/myVhost", "", "/myVhost", "/sub1"),
            ("sub1/", "overridenVhost", "/overridenVhost", "/sub1"),
            ("myVhost", "overridenVhost", "/overridenVhost", ""),
            ("sub1/%2FmyVhost", "", "/%2FmyVhost", "/sub1"),
            ("sub1/", "", root, "/sub1"),
            ("sub1/", "myVhost", "/myVhost", "/sub1"),
            ("sub1//", "", root, "/sub1"),
            ("sub1/%2F", "", root, "/sub1"),
            ("sub1/sub2/myVhost", "", "/myVhost", "/sub1/sub2"),
            (
                "sub1/sub2/myVhost",
                "overridenVhost",
                "/overridenVhost",
                "/sub1/sub2",
            ),
            ("sub1/sub2/%2FmyVhost", "", "/%2FmyVhost", "/sub1/sub2"),
            ("sub1/sub2/", "", root, "/sub1/sub2"),
            ("sub1/sub2/", "myVhost", "/myVhost", "/sub1/sub2"),
            ("sub1/sub2//", "", root, "/sub1/sub2"),
            ("sub1/sub2/%2F", "", root, "/sub1/sub2"),
            // vhostName is escaped; "/" is the default vhost.
            ("", "/", root, ""),
            ("/api", "a b", "/a%20b", ""),
        ];
        for (raw, over, vhost, path) in cases {
            assert_eq!(
                vhost_and_path(raw, over),
                (vhost.to_string(), path.to_string()),
                "{raw:?} {over:?}"
            );
        }
    }

    fn http(meta: Pairs) -> HttpTarget {
        let mut all = vec![("queueName", "evaluate_trials"), ("protocol", "http")];
        all.extend_from_slice(meta);
        match scaler(0, &all, &[]).unwrap().target {
            Target::Http(t) => t,
            _ => panic!("not http"),
        }
    }

    /// The management API URLs KEDA's stubs expect, with credentials moved out of the URL.
    #[test]
    fn builds_management_urls_like_keda() {
        let t = http(&[("host", "http://u:p%40ss@rabbit:15672/sub1/vh")]);
        assert_eq!(
            t.url,
            "http://rabbit:15672/sub1/api/queues/vh/evaluate_trials"
        );
        assert_eq!(t.shown, "http://rabbit:15672/sub1");
        assert_eq!(
            t.credentials
                .as_ref()
                .map(|(u, p)| (u.as_str(), p.expose())),
            Some(("u", "p@ss"))
        );
        assert_eq!(t.client.timeout, None, "KEDA's global HTTP timeout");
        let t = http(&[
            ("host", "https://rabbit"),
            ("useRegex", "true"),
            ("queueName", "^evaluate_trials$"),
            ("pageSize", "200"),
            ("timeout", "1500"),
        ]);
        assert_eq!(
            t.url,
            "https://rabbit/api/queues/%2F?page=1&use_regex=true&pagination=false&name=%5Eevaluate_trials%24&page_size=200"
        );
        assert_eq!(
            (t.regex, t.client.timeout),
            (Some(Operation::Sum), Some(Duration::from_millis(1500)))
        );
        let t = http(&[
            ("host", "http://rabbit:15672/"),
            ("vhostName", "my vhost"),
            ("queueName", "a/b c"),
        ]);
        assert_eq!(t.url, "http://rabbit:15672/api/queues/my%20vhost/a%2Fb%20c");
        // unsafeSsl applies to the HTTP client without tls: enable, as in KEDA.
        assert!(
            http(&[("host", "https://r"), ("unsafeSsl", "true")])
                .client
                .unsafe_ssl
        );
        // username/password from the TriggerAuthentication replace the URL's.
        let s = scaler(
            0,
            &[("queueName", "q"), ("host", "http://a:b@r/")],
            &[("username", "x"), ("password", "y")],
        )
        .unwrap();
        let Target::Http(t) = s.target else { panic!() };
        assert_eq!(
            t.credentials.map(|(u, p)| (u, p.expose().to_string())),
            Some(("x".into(), "y".into()))
        );
    }

    fn json(s: &str) -> serde_json::Value {
        serde_json::from_str(s).unwrap()
    }

    fn q(m: i64, unacked: i64, publish: f64, deliver: f64) -> String {
        format!(
            r#"{{"messages": {m}, "messages_unacknowledged": {unacked}, "message_stats": {{"publish_details": {{"rate": {publish}}}, "deliver_get_details": {{"rate": {deliver}}}}}, "name": "evaluate_trials"}}"#
        )
    }

    /// KEDA's `testQueueInfoTestData`: (answer, metadata, active).
    #[test]
    fn activity_like_keda() {
        let ql: Pairs = &[("queueLength", "10")];
        let mql: Pairs = &[("value", "100"), ("mode", "QueueLength")];
        let mr: Pairs = &[("value", "100"), ("mode", "MessageRate")];
        let dg: Pairs = &[("value", "100"), ("mode", "DeliverGetRate")];
        let cases: &[(String, Pairs, bool)] = &[
            (q(4, 1, 0.0, 0.0), ql, true),
            (q(1, 1, 0.0, 0.0), ql, true),
            (q(1, 0, 0.0, 0.0), ql, true),
            (q(0, 0, 0.0, 0.0), ql, false),
            (q(4, 1, 1.4, 0.8), ql, true),
            (q(0, 0, 1.4, 2.0), ql, false),
            (q(4, 1, 0.0, 1.3), mql, true),
            (q(0, 0, 0.0, 0.0), mql, false),
            (q(0, 0, 1.4, 0.0), mql, false),
            (q(4, 1, 0.0, 1.3), mr, true),
            (q(1, 0, 0.0, 1.0), mr, true),
            (q(0, 0, 0.0, 0.0), mr, false),
            (q(0, 0, 1.4, 0.0), mr, true),
            (q(30, 10, 5.0, 1.0), dg, true),
            (q(10, 0, 0.0, 12.5), dg, true),
            (q(0, 0, 0.0, 0.0), dg, false),
        ];
        for (i, (answer, meta, active)) in cases.iter().enumerate() {
            let mut all = vec![("queueName", "evaluate_trials"), ("host", "http://r")];
            all.extend_from_slice(meta);
            let s = scaler(0, &all, &[]).unwrap();
            let Target::Http(t) = &s.target else { panic!() };
            let status = http_answer(t, &json(answer)).unwrap();
            assert_eq!(
                evaluate(s.mode, s.activation, status).active,
                *active,
                "case {i}"
            );
        }
        // Without message_stats (a queue nobody published to) the rates are 0.
        let s = queue_numbers(&json(r#"{"messages": 3, "messages_ready": 2}"#), true);
        assert_eq!(
            s,
            QueueStatus {
                messages: 2.0,
                ..Default::default()
            }
        );
    }

    /// KEDA's `testExpectedQueueConsumptionTimeTestData` (value 1, activationValue 1), and
    /// PublishedToDeliveredRatio's cases.
    #[test]
    fn rates_and_ratios_like_keda() {
        let st = |m, p, d| QueueStatus {
            messages: m,
            publish_rate: p,
            deliver_get_rate: d,
        };
        let eta = Mode::ExpectedQueueConsumptionTime;
        for (s, value, active) in [
            (st(0.0, 0.0, 0.0), 0.0, false),
            (st(0.0, 0.0, 2.0), 0.0, false),
            (st(10.0, 3.0, 0.0), 1.0, true),
            (st(10.0, 3.0, 2.0), 5.5, true),
            (st(4.0, 0.0, 2.0), 1.0, false),
        ] {
            assert_eq!(evaluate(eta, 1.0, s), Sample { value, active }, "{s:?}");
        }
        let ratio = Mode::PublishedToDeliveredRatio;
        assert_eq!(
            evaluate(ratio, 2.0, st(0.0, 4.0, 0.0)),
            Sample {
                value: 2.0,
                active: true
            }
        );
        assert_eq!(
            evaluate(ratio, 1.0, st(0.0, 4.0, 2.0)),
            Sample {
                value: 2.0,
                active: true
            }
        );
        assert_eq!(
            evaluate(ratio, 1.0, st(0.0, 0.0, 2.0)),
            Sample {
                value: 0.0,
                active: false
            }
        );
        assert_eq!(
            evaluate(Mode::MessageRate, 0.0, st(0.0, 1.5, 0.0)).value,
            1.5
        );
    }

    /// KEDA's regex tables (`testRegexQueueInfoTestData`, `getSum`, `getAverage`,
    /// `TestRegexQueueMissingError`).
    #[test]
    fn combines_regex_listings_like_keda() {
        let list = |qs: &[String]| json(&format!(r#"{{"items": [{}]}}"#, qs.join(",")));
        let target = |op: &str, extra: Pairs| {
            let mut all = vec![
                ("host", "http://r"),
                ("useRegex", "true"),
                ("operation", op),
            ];
            all.extend_from_slice(extra);
            http(&all)
        };
        let sum = target("sum", &[]);
        let s = http_answer(&sum, &list(&[q(4, 1, 0.0, 0.0), q(4, 1, 0.0, 0.0)])).unwrap();
        assert_eq!(s.messages, 8.0);
        assert_eq!(
            http_answer(&sum, &list(&[])).unwrap(),
            QueueStatus::default()
        );
        let ready = target("sum", &[("excludeUnacknowledged", "true")]);
        let body = json(
            r#"{"items":[{"messages": 4, "messages_ready": 3},{"messages": 4, "messages_ready": 3}]}"#,
        );
        assert_eq!(http_answer(&ready, &body).unwrap().messages, 6.0);
        let max = target("max", &[]);
        let s = http_answer(&max, &list(&[q(8, 0, 0.0, 2.0), q(4, 0, 0.0, 4.0)])).unwrap();
        assert_eq!((s.messages, s.deliver_get_rate), (8.0, 4.0));
        let avg = target("avg", &[]);
        let s = http_answer(&avg, &list(&[q(5, 0, 1.0, 3.0), q(6, 0, 3.0, 5.0)])).unwrap();
        assert_eq!(
            s,
            QueueStatus {
                messages: 5.0,
                publish_rate: 2.0,
                deliver_get_rate: 4.0
            }
        );
        let more = json(r#"{"items":[], "filtered_count": 250, "page": 1, "page_count": 3}"#);
        let e = http_answer(&sum, &more).unwrap_err();
        assert!(
            e.message.contains("more queues than can be recovered"),
            "{e}"
        );
        let one = json(r#"{"items":[], "filtered_count": 250, "page": 1, "page_count": 1}"#);
        assert!(http_answer(&sum, &one).is_ok());
        let e = scaler(
            0,
            &[
                ("queueName", "q"),
                ("host", "http://r"),
                ("useRegex", "true"),
                ("operation", "median"),
            ],
            &[],
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            e.contains("operation: operation mode \"median\" must be one of sum, avg, max"),
            "{e}"
        );
        // Without useRegex KEDA never reads operation.
        assert!(
            scaler(
                0,
                &[
                    ("queueName", "q"),
                    ("host", "http://r"),
                    ("operation", "median")
                ],
                &[]
            )
            .is_ok()
        );
    }

    /// The AMQP URI: vhostName and credentials applied, SASL EXTERNAL as KEDA's
    /// `buildAMQPConfig` picks it, nothing secret in what is shown.
    #[test]
    fn builds_amqp_uris_like_keda() {
        let amqp = |meta: Pairs, auth: Pairs| match scaler(0, meta, auth).unwrap().target {
            Target::Amqp(t) => t,
            _ => panic!("not amqp"),
        };
        let t = amqp(
            &[
                ("queueName", "q"),
                ("hostFromEnv", "myHostSecret"),
                ("vhostName", "other"),
            ],
            &[("username", "x"), ("password", "hunter2")],
        );
        let uri = t.uri().unwrap();
        assert_eq!(
            (uri.vhost.as_str(), uri.authority.userinfo.username.as_str()),
            ("other", "x")
        );
        assert_eq!(uri.authority.userinfo.password, "hunter2");
        assert_eq!(t.shown, "amqp://somehost.com:5236/other");
        let t = amqp(&[("queueName", "q"), ("host", "amqp://u:sercet@h/")], &[]);
        assert_eq!(t.shown, "amqp://h:5672/", "the empty vhost");
        let t = amqp(&[("queueName", "q"), ("host", "amqp://h")], &[]);
        assert_eq!(t.shown, "amqp://h:5672/%2F", "the default vhost");
        let cert: Pairs = &[("tls", "enable"), ("cert", "c"), ("key", "k")];
        let external = |host: &str, auth: Pairs| {
            let t = amqp(&[("queueName", "q"), ("host", host)], auth);
            t.uri().unwrap().query.auth_mechanism == Some(SASLMechanism::External)
        };
        assert!(external("amqps://rabbit.namespace.svc:5671/", cert));
        assert!(external("amqps://CN=username@rabbit:5671/", cert));
        assert!(!external("amqps://user:pass@rabbit:5671/", cert));
        assert!(!external(
            "amqps://rabbit:5671/",
            &[("tls", "enable"), ("ca", "c")]
        ));
        assert!(!external(
            "amqps://rabbit:5671/",
            &[
                ("tls", "enable"),
                ("cert", "c"),
                ("key", "k"),
                ("username", "u"),
                ("password", "p")
            ]
        ));
        assert!(!external("amqps://rabbit:5671/", &[]));
        // A host that is no AMQP URI fails its readings, naming the field, never echoing it.
        let s = scaler(
            0,
            &[("queueName", "q"), ("host", "amqp://u:hunter2@h:notaport")],
            &[],
        )
        .unwrap();
        let Target::Invalid(why) = &s.target else {
            panic!("invalid")
        };
        assert!(
            why.contains("host is not an AMQP URI") && !why.contains("hunter2"),
            "{why}"
        );
        assert!(!s.coalesce_key().contains("hunter2"));
    }
}
