//! `artemis-queue`: an ActiveMQ Artemis queue's `MessageCount`, read over the broker's
//! Jolokia REST API as KEDA's `artemis_scaler.go` reads it: the URL from
//! `managementEndpoint`, `brokerName`, `brokerAddress` and `queueName` in KEDA's template
//! (routing type `anycast`), or from `restApiTemplate`.

use std::time::Duration;

use swell_scaling::naming::metric_name;

use super::jolokia::Read;
use crate::http::HttpClientKey;
use crate::metadata::shown;
use crate::tls::Secret;
use crate::{Field, MetricSpec, Params, Sample, Scaler, ScalerError, Shared, Source, TriggerInput};

const MANAGEMENT_ENDPOINT: Field = Field::new("managementEndpoint")
    .hint("host:port of the broker's web console, e.g. artemis:8161");
const QUEUE_NAME: Field = Field::new("queueName");
const BROKER_NAME: Field = Field::new("brokerName").hint("the broker's <name> in broker.xml");
const BROKER_ADDRESS: Field = Field::new("brokerAddress").hint("the address the queue is bound to");
const USERNAME: Field = Field::new("username").from(&[Source::Auth, Source::Metadata]);
const PASSWORD: Field = Field::new("password").from(&[Source::Auth, Source::Metadata]);
const REST_API_TEMPLATE: Field = Field::new("restApiTemplate");
const QUEUE_LENGTH: Field = Field::new("queueLength");
const ACTIVATION: Field = Field::new("activationQueueLength");
const CORS_HEADER: Field = Field::new("corsHeader");
const UNSAFE_SSL: Field = Field::new("unsafeSsl");
const CA: Field = Field::new("ca").from(&[Source::Auth]);
const CERT: Field = Field::new("cert").from(&[Source::Auth]);
const KEY: Field = Field::new("key").from(&[Source::Auth]);
const KEY_PASSWORD: Field = Field::new("keyPassword").from(&[Source::Auth]);

/// Every parameter, for unknown-key warnings.
pub const FIELDS: &[Field] = &[
    MANAGEMENT_ENDPOINT,
    QUEUE_NAME,
    BROKER_NAME,
    BROKER_ADDRESS,
    USERNAME,
    PASSWORD,
    REST_API_TEMPLATE,
    QUEUE_LENGTH,
    ACTIVATION,
    CORS_HEADER,
    UNSAFE_SSL,
    CA,
    CERT,
    KEY,
    KEY_PASSWORD,
];

/// KEDA's `defaultRestAPITemplate`.
pub const DEFAULT_TEMPLATE: &str = "http://<<managementEndpoint>>/console/jolokia/read/org.apache.activemq.artemis:broker=\"<<brokerName>>\",component=addresses,address=\"<<brokerAddress>>\",subcomponent=queues,routing-type=\"anycast\",queue=\"<<queueName>>\"/MessageCount";

/// Where the queue is: from the fields, or read back from `restApiTemplate` as KEDA does.
#[derive(Debug, Default, PartialEq)]
pub struct Names {
    pub endpoint: String,
    pub broker: String,
    pub address: String,
    pub queue: String,
}

pub struct ArtemisScaler {
    /// `None` only when a parameter is known at run time alone (offline `swell check`).
    read: Option<Read>,
    pub names: Names,
    target: f64,
    activation: f64,
    metric: String,
    metric_type: crate::MetricType,
    polling: Duration,
    shared: Shared,
}

impl ArtemisScaler {
    pub fn new(input: &TriggerInput, shared: &Shared) -> Result<ArtemisScaler, ScalerError> {
        let mut p = Params::new(&input.params);
        let built = Self::parse(input, shared, &mut p);
        p.finish()?;
        Ok(built)
    }

    /// Reads the trigger into `p` without I/O (also for `swell check` and the webhook).
    pub fn parse(input: &TriggerInput, shared: &Shared, p: &mut Params<'_>) -> ArtemisScaler {
        let (template, names) = match p.opt_url(REST_API_TEMPLATE, true) {
            // A template that is not an http(s) URL is reported as such already.
            Some(t) if !(t.starts_with("http://") || t.starts_with("https://")) => {
                (t, Names::default())
            }
            Some(t) => {
                let names = template_names(&t).unwrap_or_else(|why| {
                    p.error(
                        "restApiTemplate",
                        format!("can't parse restApiTemplate: {why}"),
                    );
                    Names::default()
                });
                (t, names)
            }
            None => {
                let names = Names {
                    endpoint: endpoint(p, MANAGEMENT_ENDPOINT),
                    queue: p.string(QUEUE_NAME),
                    broker: p.string(BROKER_NAME),
                    address: p.string(BROKER_ADDRESS),
                };
                (DEFAULT_TEMPLATE.to_string(), names)
            }
        };
        let username = p.string(USERNAME);
        let password = p.string(PASSWORD);
        let target = count(p, QUEUE_LENGTH, 10, 1);
        let activation = count(p, ACTIVATION, 10, i64::MIN);
        let origin = p
            .opt_string(CORS_HEADER)
            .unwrap_or_else(|| format!("http://{}", names.endpoint));
        let client = tls(p);
        let url = fill(&template, &names);
        let url = match reqwest::Url::parse(&url) {
            Ok(u) if u.has_host() => Some(u),
            // A missing endpoint is reported as missing already.
            _ if names.endpoint.is_empty() => None,
            _ => {
                let field = if template == DEFAULT_TEMPLATE {
                    "managementEndpoint"
                } else {
                    "restApiTemplate"
                };
                p.error(
                    field,
                    format!("makes {} which is not a URL; give host:port", shown(&url)),
                );
                None
            }
        };
        let complete = !p.is_deferred("username") && !p.is_deferred("password");
        let read = url.filter(|_| complete).map(|url| Read {
            scaler: "artemis-queue",
            url,
            username,
            password: Secret::new(password),
            origin,
            json_content_type: false,
            client,
        });
        ArtemisScaler {
            read,
            metric: metric_name(input.index, &format!("artemis-{}", names.queue)),
            names,
            target,
            activation,
            metric_type: input.metric_type.unwrap_or_default(),
            polling: input.polling_interval,
            shared: shared.clone(),
        }
    }

    pub fn url(&self) -> Option<String> {
        self.read.as_ref().map(|r| r.url.to_string())
    }

    pub fn origin(&self) -> Option<&str> {
        self.read.as_ref().map(|r| r.origin.as_str())
    }
}

/// `managementEndpoint`: host:port, which KEDA's template puts after `http://`.
pub(super) fn endpoint(p: &mut Params<'_>, f: Field) -> String {
    let v = p.string(f);
    if v.contains('/') || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        p.error(
            f.name,
            format!("{} is not host:port (the URL is http://<managementEndpoint>/…); for https or another path use the URL template", shown(&v)),
        );
    }
    v
}

/// An integer count (KEDA's int64) of at least `min`, `default` when unset.
pub(super) fn count(p: &mut Params<'_>, f: Field, default: i64, min: i64) -> f64 {
    let n = p.or::<i64>(f, "an integer", default);
    if n < min {
        p.error(
            f.name,
            format!("must be at least {min} (the HPA's target is a positive quantity), got {n}"),
        );
    }
    n as f64
}

/// `unsafeSsl` and the TriggerAuthentication's `ca`, `cert`/`key`.
fn tls(p: &mut Params<'_>) -> HttpClientKey {
    let unsafe_ssl = p.bool(UNSAFE_SSL, false);
    let (ca, cert, key) = (p.opt_string(CA), p.opt_string(CERT), p.opt_string(KEY));
    if cert.is_some() != key.is_some() && !p.is_deferred("cert") && !p.is_deferred("key") {
        p.error("cert", "both cert and key must be provided");
    }
    if p.opt_string(KEY_PASSWORD).is_some() {
        p.error(
            "keyPassword",
            "an encrypted private key is not supported by Swell yet; give key unencrypted in PKCS#8, PKCS#1 or SEC1 PEM",
        );
    }
    HttpClientKey {
        unsafe_ssl,
        timeout: None, // KEDA's global HTTP timeout
        ca,
        client_cert: cert.zip(key.map(Secret::new)),
    }
}

/// KEDA's placeholders replaced in one pass (Go's strings.Replacer).
fn fill(template: &str, n: &Names) -> String {
    let pairs = [
        ("<<managementEndpoint>>", n.endpoint.as_str()),
        ("<<queueName>>", n.queue.as_str()),
        ("<<brokerName>>", n.broker.as_str()),
        ("<<brokerAddress>>", n.address.as_str()),
    ];
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    'outer: while !rest.is_empty() {
        for (from, to) in pairs {
            if let Some(tail) = rest.strip_prefix(from) {
                out.push_str(to);
                rest = tail;
                continue 'outer;
            }
        }
        let mut chars = rest.chars();
        out.extend(chars.next());
        rest = chars.as_str();
    }
    out
}

/// KEDA's `getAPIParameters`: the host, and `broker`, `address` and `queue` from the object
/// name between the path's first and second `:` up to the next `/`, read as a query with
/// `,` for `&` and `""` dropped (so quoted values keep their quotes, as in KEDA).
pub fn template_names(template: &str) -> Result<Names, String> {
    let endpoint = host_as_written(template)?;
    // The path as written (the parsed one has its quotes escaped).
    let after_scheme = template.split_once("://").map_or(template, |(_, r)| r);
    let path = after_scheme.find('/').map_or("", |i| &after_scheme[i..]);
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let object = path
        .split(':')
        .nth(1)
        .ok_or("its path has no MBean name (no ':')")?;
    let object = object.split('/').next().unwrap_or_default();
    let query = object.replace(',', "&").replace("\"\"", "");
    let values = parse_query(&query)?;
    let get = |key: &str| {
        values
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let names = Names {
        endpoint,
        address: get("address"),
        queue: get("queue"),
        broker: get("broker"),
    };
    if names.address.is_empty() {
        return Err("no brokerAddress given".into());
    }
    if names.queue.is_empty() {
        return Err("no queueName is given".into());
    }
    if names.broker.is_empty() {
        return Err(format!("no brokerName given: {template}"));
    }
    Ok(names)
}

/// Go's `u.Host` of a URL: host and port as written (the parsed URL lowercases the host),
/// without user info.
pub(super) fn host_as_written(template: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(template).map_err(|e| format!("not a URL ({e})"))?;
    if !url.has_host() {
        return Err("the URL has no host".into());
    }
    let after_scheme = template.split_once("://").map_or(template, |(_, r)| r);
    let authority = after_scheme
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default();
    Ok(authority
        .rsplit('@')
        .next()
        .unwrap_or(authority)
        .to_string())
}

/// Go's url.ParseQuery: `&`-separated `key=value`, each unescaped (`%XX`, `+` as a space);
/// a `;` or a bad escape is an error.
pub(super) fn parse_query(q: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for part in q.split('&').filter(|s| !s.is_empty()) {
        if part.contains(';') {
            return Err("invalid semicolon separator in query".into());
        }
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        out.push((unescape(k)?, unescape(v)?));
    }
    Ok(out)
}

fn unescape(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                // Two hex digits (from_str_radix alone would take a sign).
                let hex = s
                    .get(i + 1..i + 3)
                    .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
                let b = hex
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        let bad: String = s.get(i..).unwrap_or_default().chars().take(3).collect();
                        format!("invalid URL escape {}", shown(&bad))
                    })?;
                out.push(b);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| "an escape is not UTF-8".into())
}

#[async_trait::async_trait]
impl Scaler for ArtemisScaler {
    fn metric_spec(&self) -> MetricSpec {
        MetricSpec::External {
            name: self.metric.clone(),
            target: self.target,
            metric_type: self.metric_type,
        }
    }

    async fn sample(&self) -> Result<Sample, ScalerError> {
        let Some(read) = &self.read else {
            return Err(ScalerError::Internal(
                "artemis-queue: the endpoint is not known".into(),
            ));
        };
        let key = read.coalesce_key();
        self.shared
            .sample_value("artemis-queue", &key, self.polling, self.activation, || {
                read.get(&self.shared)
            })
            .await
    }

    fn upstream_key(&self) -> Option<String> {
        self.read.as_ref().map(Read::coalesce_key)
    }
}

#[cfg(test)]
mod tests;
