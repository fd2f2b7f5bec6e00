//! `nats-jetstream`: scale on a JetStream consumer's lag, read from the NATS server's HTTP
//! monitoring endpoint (`/jsz?acc=…&consumers=true&config=true`) as KEDA's
//! `nats_jetstream_scaler.go` reads it: the lag is the consumer's `num_pending` plus its
//! `num_ack_pending`. On a cluster (`meta_cluster.cluster_size` > 1) only the consumer's
//! leader knows its numbers, so the leader is found and remembered as KEDA finds it: the
//! servers come from `/varz` (`connect_urls`, or the route `cluster.urls` when clients are not
//! told about the others), each is asked for its name and its `/jsz`, and the one that names
//! itself the consumer's leader is read from then on, until it no longer is.

use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;
use swell_scaling::naming::{metric_name, normalize};

use crate::http::HttpClientKey;
use crate::metadata::shown;
use crate::upstream::{UpstreamError, UpstreamKind as K};
use crate::{Field, MetricSpec, Params, Sample, Scaler, ScalerError, Shared, Source, TriggerInput};

const ENDPOINT: Field = Field::new("natsServerMonitoringEndpoint")
    .from(&[Source::Auth, Source::Metadata])
    .hint("the monitoring port as host:port, e.g. nats.nats.svc:8222");
const ACCOUNT: Field = Field::new("account").from(&[Source::Auth, Source::Metadata]);
const ACCOUNT_ID: Field = Field::new("accountID").from(&[Source::Auth, Source::Metadata]);
const STREAM: Field = Field::new("stream");
const CONSUMER: Field = Field::new("consumer");
const LAG: Field = Field::new("lagThreshold");
const ACTIVATION: Field = Field::new("activationLagThreshold");
const USE_HTTPS: Field = Field::new("useHttps");

/// Every parameter, for unknown-key warnings.
pub const FIELDS: &[Field] = &[
    ENDPOINT, ACCOUNT, ACCOUNT_ID, STREAM, CONSUMER, LAG, ACTIVATION, USE_HTTPS,
];

/// KEDA's default `lagThreshold`.
const DEFAULT_LAG: i64 = 10;

/// Where the monitoring endpoint is and what to ask it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    scheme: &'static str,
    /// `natsServerMonitoringEndpoint` as given: `host:port`.
    host: String,
    /// The port in it, which every node of a cluster is assumed to monitor on.
    port: Option<String>,
    /// `acc=…&config=true&consumers=true`, encoded as Go's `url.Values.Encode`.
    query: String,
}

impl Endpoint {
    fn new(use_https: bool, host: &str, account_id: &str) -> Endpoint {
        let port = host
            .rsplit_once(':')
            .map(|(_, p)| p.to_string())
            .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        Endpoint {
            scheme: if use_https { "https" } else { "http" },
            host: host.to_string(),
            port,
            query: format!(
                "acc={}&config=true&consumers=true",
                query_escape(account_id)
            ),
        }
    }

    /// `/jsz` on the given endpoint (KEDA's `monitoringURL`).
    pub fn jsz(&self) -> String {
        format!("{}://{}/jsz?{}", self.scheme, self.host, self.query)
    }

    /// `/varz` on the endpoint, or on `node` at the endpoint's port.
    fn varz(&self, node: Option<&str>) -> String {
        match node {
            None => format!("{}://{}/varz", self.scheme, self.host),
            Some(n) => format!("{}://{}/varz", self.scheme, self.with_port(n)),
        }
    }

    /// `/jsz` on an advertised node (`connect_urls`' host) at the endpoint's port.
    fn jsz_on_host(&self, node_host: &str) -> String {
        let host = self.with_port(node_host);
        format!("{}://{host}/jsz?{}", self.scheme, self.query)
    }

    /// `/jsz` on `<node>.<endpoint>`: a node named by its route URL's first label, reached
    /// through the endpoint's name (a headless Service's pod names, as KEDA builds them).
    fn jsz_by_node(&self, node: &str) -> String {
        format!("{}://{node}.{}/jsz?{}", self.scheme, self.host, self.query)
    }

    fn with_port(&self, host: &str) -> String {
        match &self.port {
            Some(p) if host.contains(':') => format!("[{host}]:{p}"),
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        }
    }
}

/// Go's `url.QueryEscape`: unreserved characters stay, a space is `+`, the rest `%XX`.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The consumer leader found by an earlier reading (KEDA's `consumerLeader` and
/// `monitoringLeaderURL`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Leader {
    name: String,
    url: Option<String>,
}

pub struct NatsJetStreamScaler {
    /// `None` only when the endpoint is known at run time alone (offline `swell check`).
    endpoint: Option<Endpoint>,
    account: String,
    account_id: String,
    stream: String,
    consumer: String,
    lag_threshold: i64,
    activation: i64,
    metric: String,
    metric_type: crate::MetricType,
    polling: Duration,
    shared: Shared,
    leader: Mutex<Leader>,
}

impl NatsJetStreamScaler {
    pub fn new(input: &TriggerInput, shared: &Shared) -> Result<NatsJetStreamScaler, ScalerError> {
        let mut p = Params::new(&input.params);
        let built = Self::parse(input, shared, &mut p);
        p.finish()?;
        Ok(built)
    }

    /// Reads the trigger into `p` without I/O (also for `swell check` and the webhook).
    pub fn parse(input: &TriggerInput, shared: &Shared, p: &mut Params<'_>) -> NatsJetStreamScaler {
        let host = p.opt_url(ENDPOINT, false);
        if host.is_none() && !p.is_deferred(ENDPOINT.name) {
            let _ = p.string(ENDPOINT);
        }
        if let Some(h) = &host
            && (h.contains("://") || h.contains(['/', '@', '?', '#']))
        {
            p.error(
                ENDPOINT.name,
                format!(
                    "{} is not host:port; give the monitoring port's host:port without a scheme or path (useHttps: \"true\" for https)",
                    shown(h)
                ),
            );
        }
        let account = p.opt_string(ACCOUNT).unwrap_or_default();
        let mut account_id = p.opt_string(ACCOUNT_ID).unwrap_or_default();
        let unknown = p.is_deferred(ACCOUNT.name) || p.is_deferred(ACCOUNT_ID.name);
        if account.is_empty() && account_id.is_empty() && !unknown {
            p.error(
                ACCOUNT.name,
                "no account name or id given; set account (or accountID), e.g. \"$G\" for the default account",
            );
        }
        if account_id.is_empty() {
            account_id = account.clone();
        }
        let stream = p.string(STREAM);
        let consumer = p.string(CONSUMER);
        let lag_threshold: i64 = p.or(LAG, "a whole number", DEFAULT_LAG);
        if lag_threshold <= 0 {
            // KEDA parses it; the HPA refuses a target that is not positive.
            p.error(
                LAG.name,
                format!(
                    "must be greater than 0 (the HPA's target per replica), got {lag_threshold}"
                ),
            );
        }
        let activation: i64 = p.or(ACTIVATION, "a whole number", 0);
        let use_https = p.bool(USE_HTTPS, false);
        NatsJetStreamScaler {
            endpoint: host.map(|h| Endpoint::new(use_https, &h, &account_id)),
            account,
            account_id,
            metric: metric_name(input.index, &normalize(&format!("nats-jetstream-{stream}"))),
            stream,
            consumer,
            lag_threshold,
            activation,
            metric_type: input.metric_type.unwrap_or_default(),
            polling: input.polling_interval,
            shared: shared.clone(),
            leader: Mutex::new(Leader::default()),
        }
    }

    fn coalesce_key(&self) -> String {
        let url = self
            .endpoint
            .as_ref()
            .map(Endpoint::jsz)
            .unwrap_or_default();
        format!(
            "nats-jetstream|{url}|{}|{}|{}",
            self.account, self.stream, self.consumer
        )
    }

    fn remembered(&self) -> Leader {
        self.leader
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn remember(&self, leader: Leader) {
        *self.leader.lock().unwrap_or_else(|p| p.into_inner()) = leader;
    }

    /// One reading, as KEDA's `getNATSJetstreamMonitoringData` and `getMaxMsgLag`.
    async fn read(&self) -> Result<f64, UpstreamError> {
        let Some(endpoint) = &self.endpoint else {
            return Err(UpstreamError::new(
                K::Other,
                "nats-jetstream: the monitoring endpoint is not known",
            ));
        };
        // KEDA's HTTP client for scalers: the global timeout.
        let client = self.shared.http.get(&HttpClientKey::default())?;
        let cached = self.remembered();
        let url = cached.url.clone().unwrap_or_else(|| endpoint.jsz());
        let jsz = match get_json(&client, &url).await {
            Ok(v) => v,
            Err(e) => {
                // A leader that cannot be reached is not remembered: the next reading starts
                // from the endpoint again (KEDA gets the same by rebuilding the scaler).
                self.remember(Leader::default());
                return Err(e);
            }
        };
        let cluster_size = jsz["meta_cluster"]["cluster_size"].as_i64().unwrap_or(0);
        let mut found = self.locate(&jsz);
        let mut leader = cached.clone();
        if let Some(name) = &found.leader {
            leader.name = name.clone();
        }
        // The remembered leader no longer has the consumer: forget it (and the stream).
        if !cached.name.is_empty() && found.leader.is_none() {
            leader = Leader::default();
            found.stream = None;
        }
        let same_leader =
            found.leader.is_some() && !cached.name.is_empty() && cached.name == leader.name;
        if !same_leader && cluster_size > 1 {
            match self.find_leader(&client, endpoint).await {
                Ok((jsz, node_url)) => {
                    let found = self.locate(&jsz);
                    self.remember(Leader {
                        name: found.leader.clone().unwrap_or_default(),
                        url: Some(node_url.clone()),
                    });
                    return self.lag(&found, &node_url);
                }
                Err(e) => {
                    self.remember(leader);
                    return Err(e);
                }
            }
        }
        self.remember(leader);
        self.lag(&found, &url)
    }

    /// Asks every node of the cluster until one names itself the consumer's leader: its
    /// `/jsz` answer and URL.
    async fn find_leader(
        &self,
        client: &reqwest::Client,
        endpoint: &Endpoint,
    ) -> Result<(Value, String), UpstreamError> {
        let varz = get_json(client, &endpoint.varz(None)).await?;
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut urls = strings(&varz["connect_urls"]);
        let advertised = !urls.is_empty();
        if !advertised {
            urls = strings(&varz["cluster"]["urls"]);
        }
        for u in urls {
            let (node, node_url) = if advertised {
                // nats-1.nats.svc:4222 -> nats-1.nats.svc, 172.0.1.3:4222 -> 172.0.1.3
                let host = u.split(':').next().unwrap_or_default();
                let info = get_json(client, &endpoint.varz(Some(host))).await?;
                let name = info["server_name"].as_str().unwrap_or_default().to_string();
                (name, endpoint.jsz_on_host(host))
            } else {
                // nats-1.nats.nats.svc:6222 -> nats-1, read at nats-1.<endpoint>
                let node = u.split('.').next().unwrap_or_default().to_string();
                let url = endpoint.jsz_by_node(&node);
                (node, url)
            };
            let jsz = get_json(client, &node_url).await?;
            if self.locate(&jsz).leader.as_deref() == Some(node.as_str()) {
                return Ok((jsz, node_url));
            }
        }
        Err(UpstreamError::new(
            K::NotFound,
            format!(
                "nats-jetstream {}: leader node not found for consumer {:?} of stream {:?}",
                endpoint.host, self.consumer, self.stream
            ),
        ))
    }

    /// The stream and the consumer in a `/jsz` answer, as KEDA's
    /// `setNATSJetStreamMonitoringData`: the first account with the name or id, the stream
    /// where the consumer is (else the last stream of that name), the consumer's leader.
    fn locate(&self, jsz: &Value) -> Found {
        let mut found = Found::default();
        let empty = Vec::new();
        let list = |v: &Value| v.as_array().unwrap_or(&empty).clone();
        for account in list(&jsz["account_details"]) {
            let id = account["id"].as_str().unwrap_or_default();
            let name = account["name"].as_str().unwrap_or_default();
            if id != self.account_id && name != self.account {
                continue;
            }
            for stream in list(&account["stream_detail"]) {
                if stream["name"].as_str() != Some(self.stream.as_str()) {
                    continue;
                }
                found.stream = Some(stream.clone());
                for consumer in list(&stream["consumer_detail"]) {
                    if consumer["name"].as_str() == Some(self.consumer.as_str()) {
                        let leader = consumer["cluster"]["leader"].as_str().unwrap_or_default();
                        found.leader = Some(leader.to_string());
                        return found;
                    }
                }
            }
        }
        found
    }

    /// KEDA's `getMaxMsgLag`: `num_pending + num_ack_pending` of the consumer.
    fn lag(&self, found: &Found, url: &str) -> Result<f64, UpstreamError> {
        let not_found =
            |what: String| UpstreamError::new(K::NotFound, format!("nats-jetstream {url}: {what}"));
        let Some(stream) = &found.stream else {
            return Err(not_found(format!(
                "stream {:?} not found in account {:?}",
                self.stream, self.account_id
            )));
        };
        let consumers = stream["consumer_detail"].as_array();
        let consumer = consumers
            .into_iter()
            .flatten()
            .find(|c| c["name"].as_str() == Some(self.consumer.as_str()));
        let Some(c) = consumer else {
            return Err(not_found(format!(
                "consumer {:?} not found in stream {:?}",
                self.consumer, self.stream
            )));
        };
        let n = |k: &str| c[k].as_i64().unwrap_or(0);
        Ok((n("num_pending") + n("num_ack_pending")) as f64)
    }
}

/// What one `/jsz` answer says about the trigger's stream and consumer.
#[derive(Default)]
struct Found {
    stream: Option<Value>,
    /// `Some` when the consumer was found: its leader's name (empty on a single server).
    leader: Option<String>,
}

/// GETs a monitoring URL and reads its JSON; errors name the URL and the cause.
async fn get_json(client: &reqwest::Client, url: &str) -> Result<Value, UpstreamError> {
    let resp = crate::observe::send(client.get(url)).await.map_err(|e| {
        let e = e.without_url();
        let why = crate::aws::error_chain(&e);
        UpstreamError::reqwest(&e, format!("nats-jetstream GET {url}: {why}"))
    })?;
    let status = resp.status();
    if !status.is_success() {
        return Err(UpstreamError::http(
            status.as_u16(),
            format!("nats-jetstream GET {url} returned {status}"),
        ));
    }
    let body = resp.bytes().await.map_err(|e| {
        let e = e.without_url();
        UpstreamError::reqwest(&e, format!("nats-jetstream reading {url}: {e}"))
    })?;
    let v: Value = serde_json::from_slice(&body).map_err(|e| {
        UpstreamError::bad_response(format!(
            "nats-jetstream GET {url}: not the NATS monitoring JSON ({e}): {}",
            shown(&String::from_utf8_lossy(&body))
        ))
    })?;
    if !v.is_object() {
        return Err(UpstreamError::bad_response(format!(
            "nats-jetstream GET {url}: not the NATS monitoring JSON (not an object)"
        )));
    }
    Ok(v)
}

#[async_trait::async_trait]
impl Scaler for NatsJetStreamScaler {
    fn metric_spec(&self) -> MetricSpec {
        MetricSpec::External {
            name: self.metric.clone(),
            target: self.lag_threshold as f64,
            metric_type: self.metric_type,
        }
    }

    async fn sample(&self) -> Result<Sample, ScalerError> {
        self.shared
            .sample_value(
                "nats-jetstream",
                &self.coalesce_key(),
                self.polling,
                self.activation as f64,
                || self.read(),
            )
            .await
    }

    fn upstream_key(&self) -> Option<String> {
        Some(self.coalesce_key())
    }
}

#[cfg(test)]
mod tests;
