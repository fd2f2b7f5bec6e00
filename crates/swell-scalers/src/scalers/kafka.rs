//! `kafka`: scale on a consumer group's lag (KEDA's `kafka` scaler): for each partition of
//! the topic (or of every topic the group has committed offsets for), the high watermark
//! minus the committed offset, summed and capped at partitions × `lagThreshold`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use swell_scaling::naming::{metric_name, normalize};

use crate::aws::{Secret, parse_identity};
use crate::kafka::{ClusterKey, GroupOffsets, PartitionSet, Sasl, Tls, TokenSource, Tokens};
use crate::oauth::OAuthClient;
use crate::{Field, MetricSpec, Params, Sample, Scaler, ScalerError, Shared, Source, TriggerInput};

const BOOTSTRAP: Field = Field::new("bootstrapServers")
    .hint("comma-separated host:port of the brokers, e.g. kafka-0.kafka:9092,kafka-1.kafka:9092");
const GROUP: Field = Field::new("consumerGroup").hint("the consumer group whose lag to read");
const TOPIC: Field = Field::new("topic");
const PARTITION_LIMITATION: Field =
    Field::new("partitionLimitation").hint("partition ids and ranges, e.g. 0,1,4-6");
const LAG_THRESHOLD: Field = Field::new("lagThreshold");
const ACTIVATION_LAG_THRESHOLD: Field = Field::new("activationLagThreshold");
const OFFSET_RESET_POLICY: Field = Field::new("offsetResetPolicy");
const ALLOW_IDLE: Field = Field::new("allowIdleConsumers");
const EXCLUDE_PERSISTENT: Field = Field::new("excludePersistentLag");
const SCALE_TO_ZERO_INVALID: Field = Field::new("scaleToZeroOnInvalidOffset");
const LIMIT_TO_LAG: Field = Field::new("limitToPartitionsWithLag");
const EVEN: Field = Field::new("ensureEvenDistributionOfPartitions");
const VERSION: Field = Field::new("version");
/// sarama's `Metadata.Full`. Swell's client always reads only the topics a trigger needs, so
/// the setting changes no reading; KEDA's rule that `false` needs a `topic` is kept.
const FULL_METADATA: Field = Field::new("fullMetadata");
const SASL: Field = Field::new("sasl").from(&[Source::Metadata, Source::Auth]);
const USERNAME: Field = Field::new("username").from(&[Source::Auth]);
const PASSWORD: Field = Field::new("password").from(&[Source::Auth]);
const TLS: Field = Field::new("tls").from(&[Source::Metadata, Source::Auth]);
const CERT: Field = Field::new("cert").from(&[Source::Auth]);
const KEY: Field = Field::new("key").from(&[Source::Auth]);
const KEY_PASSWORD: Field = Field::new("keyPassword").from(&[Source::Auth]);
const CA: Field = Field::new("ca").from(&[Source::Auth]);
const UNSAFE_SSL: Field = Field::new("unsafeSsl");
const TOKEN_PROVIDER: Field =
    Field::new("saslTokenProvider").from(&[Source::Metadata, Source::Auth]);
const SCOPES: Field = Field::new("scopes").from(&[Source::Auth]);
const TOKEN_ENDPOINT: Field = Field::new("oauthTokenEndpointUri").from(&[Source::Auth]);
const EXTENSIONS: Field = Field::new("oauthExtensions")
    .from(&[Source::Auth])
    .hint("key=value pairs, comma-separated, e.g. logicalCluster=lkc-1,identityPoolId=pool-2");
const AWS_REGION: Field = Field::new("awsRegion");

/// Every parameter, for unknown-key warnings.
pub const FIELDS: &[Field] = &[
    BOOTSTRAP,
    GROUP,
    TOPIC,
    PARTITION_LIMITATION,
    LAG_THRESHOLD,
    ACTIVATION_LAG_THRESHOLD,
    OFFSET_RESET_POLICY,
    ALLOW_IDLE,
    EXCLUDE_PERSISTENT,
    SCALE_TO_ZERO_INVALID,
    LIMIT_TO_LAG,
    EVEN,
    VERSION,
    FULL_METADATA,
    SASL,
    USERNAME,
    PASSWORD,
    TLS,
    CERT,
    KEY,
    KEY_PASSWORD,
    CA,
    UNSAFE_SSL,
    TOKEN_PROVIDER,
    SCOPES,
    TOKEN_ENDPOINT,
    EXTENSIONS,
    AWS_REGION,
];

/// How long one request to a broker may take, connecting included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The lag rules, as KEDA applies them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LagRules {
    pub lag_threshold: i64,
    /// `offsetResetPolicy: earliest`.
    pub earliest: bool,
    pub scale_to_zero_on_invalid_offset: bool,
    pub exclude_persistent_lag: bool,
    pub allow_idle_consumers: bool,
    pub limit_to_partitions_with_lag: bool,
    pub ensure_even_distribution: bool,
}

impl Default for LagRules {
    fn default() -> Self {
        LagRules {
            lag_threshold: 10,
            earliest: false,
            scale_to_zero_on_invalid_offset: false,
            exclude_persistent_lag: false,
            allow_idle_consumers: false,
            limit_to_partitions_with_lag: false,
            ensure_even_distribution: false,
        }
    }
}

/// Committed offsets seen at the previous reading, for `excludePersistentLag`.
pub type Previous = HashMap<(String, i32), i64>;

/// One partition's lag: (lag for the metric, lag counting persistent lag for activity).
pub fn partition_lag(
    rules: &LagRules,
    topic: &str,
    partition: i32,
    committed: i64,
    latest: i64,
    previous: &mut Previous,
) -> (i64, i64) {
    if committed < 0 {
        // No committed offset yet.
        if !rules.earliest {
            let v = if rules.scale_to_zero_on_invalid_offset {
                0
            } else {
                1
            };
            return (v, v);
        }
        if rules.scale_to_zero_on_invalid_offset {
            return (0, 0);
        }
        return (latest, latest);
    }
    let lag = latest - committed;
    if rules.exclude_persistent_lag {
        let key = (topic.to_string(), partition);
        match previous.get(&key) {
            Some(&prev) if prev == committed => return (0, lag),
            _ => {
                previous.insert(key, committed);
            }
        }
    }
    (lag, lag)
}

/// The metric value and the lag that decides activity, from one reading of the offsets.
pub fn total_lag(rules: &LagRules, offsets: &GroupOffsets, previous: &mut Previous) -> (i64, i64) {
    let (mut total, mut with_persistent, mut partitions, mut with_lag) = (0i64, 0i64, 0i64, 0i64);
    for (topic, parts) in &offsets.topics {
        for (&p, o) in parts {
            let (lag, lag_p) = partition_lag(rules, topic, p, o.committed, o.latest, previous);
            total += lag;
            with_persistent += lag_p;
            if lag > 0 {
                with_lag += 1;
            }
        }
        partitions += parts.len() as i64;
    }
    let threshold = rules.lag_threshold.max(1);
    if !rules.allow_idle_consumers
        || rules.limit_to_partitions_with_lag
        || rules.ensure_even_distribution
    {
        let mut upper = partitions;
        if rules.ensure_even_distribution {
            total = next_balanced_factor(total, partitions, threshold) * threshold;
        }
        if rules.limit_to_partitions_with_lag {
            upper = with_lag;
        }
        if total / threshold > upper {
            total = upper * threshold;
        }
    }
    (total, with_persistent)
}

/// The smallest divisor of `partitions` whose consumers at `threshold` cover `lag`.
fn next_balanced_factor(lag: i64, partitions: i64, threshold: i64) -> i64 {
    (1..=partitions.max(0))
        .filter(|f| partitions % f == 0)
        .find(|f| f * threshold >= lag)
        .unwrap_or(partitions)
}

/// The most entries (ids or ranges) `partitionLimitation` may list: ranges cover any topic.
pub const MAX_PARTITION_ENTRIES: usize = 10_000;

/// `0,1,4-6` → the ranges 0-1 and 4-6. Kept as ranges, so the work and memory follow the
/// text, not the ids it spans; KEDA expands them into a list of ids.
pub fn parse_partitions(s: &str) -> Result<PartitionSet, crate::Invalid> {
    let mut ranges = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if ranges.len() == MAX_PARTITION_ENTRIES {
            return Err(crate::Invalid(format!(
                "lists more than {MAX_PARTITION_ENTRIES} partition ids and ranges; use ranges such as 0-99"
            )));
        }
        let bad = || {
            crate::Invalid(format!(
                "{} is not a partition id or a range such as 4-6",
                crate::metadata::shown(part)
            ))
        };
        let id = |t: &str| t.trim().parse::<i32>().ok().filter(|p| *p >= 0);
        let range = match part.split_once('-') {
            Some((a, b)) => id(a).zip(id(b)).filter(|(a, b)| a <= b),
            None => id(part).map(|p| (p, p)),
        };
        let (a, b) = range.ok_or_else(bad)?;
        ranges.push(a..=b);
    }
    Ok(PartitionSet::new(ranges))
}

pub struct KafkaScaler {
    cluster: ClusterKey,
    group: String,
    topic: Option<String>,
    partitions: PartitionSet,
    rules: LagRules,
    activation: i64,
    metric: String,
    metric_type: crate::MetricType,
    polling: Duration,
    previous: Mutex<Previous>,
    shared: Shared,
}

/// `sasl` and its credentials, as KEDA's `parseSASL`; `tls_on` and the trigger's `ca` for
/// OAUTHBEARER.
fn parse_sasl(input: &TriggerInput, p: &mut Params<'_>, tls_on: bool, ca: Option<&str>) -> Sasl {
    let sasl_mode = p.one_of(
        SASL,
        &[
            "none",
            "plaintext",
            "scram_sha256",
            "scram_sha512",
            "oauthbearer",
            "gssapi",
        ],
        "none",
    );
    // Checked whatever `sasl` is, as KEDA's typed config checks its enum.
    let provider = p.one_of(TOKEN_PROVIDER, &["bearer", "aws_msk_iam"], "bearer");
    match sasl_mode {
        "plaintext" | "scram_sha256" | "scram_sha512" => {
            let user = p.opt_string(USERNAME);
            let password = p.opt_string(PASSWORD);
            if user.is_none() && !p.is_deferred("username") {
                p.error(
                        "sasl",
                        format!("sasl {sasl_mode} needs username in the TriggerAuthentication (no username given)"),
                    );
            }
            if password.is_none() && !p.is_deferred("password") {
                p.error(
                        "sasl",
                        format!("sasl {sasl_mode} needs password in the TriggerAuthentication (no password given)"),
                    );
            }
            let (user, password) = (
                user.unwrap_or_default(),
                Secret::new(password.unwrap_or_default()),
            );
            if sasl_mode == "plaintext" {
                Sasl::Plain { user, password }
            } else {
                Sasl::Scram {
                    sha512: sasl_mode == "scram_sha512",
                    user,
                    password,
                }
            }
        }
        "oauthbearer" => parse_oauthbearer(input, p, provider, tls_on, ca),
        "gssapi" => {
            p.error(
                    "sasl",
                    "sasl gssapi is not supported by Swell yet; use plaintext, scram_sha256, scram_sha512 or oauthbearer",
                );
            Sasl::None
        }
        _ => Sasl::None,
    }
}

/// KEDA's `parseOAuthParams`: `saslTokenProvider` `bearer` (client id and secret in
/// `username`/`password`, `oauthTokenEndpointUri`, `scopes`, `oauthExtensions`) or
/// `aws_msk_iam` (`tls: enable`, `awsRegion`, the trigger's AWS identity).
fn parse_oauthbearer(
    input: &TriggerInput,
    p: &mut Params<'_>,
    provider: &str,
    tls_on: bool,
    ca: Option<&str>,
) -> Sasl {
    let prefix = "error parsing OAuth token provider configuration";
    if provider == "aws_msk_iam" {
        if !tls_on && !p.is_deferred("tls") {
            p.error(
                "tls",
                format!("{prefix}: TLS is required for AWS MSK authentication; set tls: enable"),
            );
        }
        let region = p.opt_string(AWS_REGION);
        if region.is_none() && !p.is_deferred("awsRegion") {
            p.error("awsRegion", format!("{prefix}: no awsRegion given"));
        }
        return match (parse_identity(input, p), region) {
            (Some(identity), Some(region)) => {
                Sasl::OAuthBearer(TokenSource::MskIam { identity, region })
            }
            _ => Sasl::None,
        };
    }
    let missing = |p: &mut Params<'_>, f: Field, what: &str| {
        let v = p.opt_string(f);
        if v.is_none() && !p.is_deferred(f.name) {
            p.error(
                "sasl",
                format!(
                    "{prefix}: no {what} given ({} in the TriggerAuthentication)",
                    f.name
                ),
            );
        }
        v.unwrap_or_default()
    };
    let client_id = missing(p, USERNAME, "username");
    let secret = missing(p, PASSWORD, "password");
    let token_uri = missing(p, TOKEN_ENDPOINT, "oauth token endpoint uri");
    let scopes = p
        .opt_string(SCOPES)
        .map(|s| {
            s.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let mut extensions = Vec::new();
    for ext in p.opt_string(EXTENSIONS).iter().flat_map(|e| e.split(',')) {
        match ext.split('=').collect::<Vec<_>>()[..] {
            [k, v] => match crate::kafka::oauthbearer::check_extension(k, v) {
                Some(why) => p.error("oauthExtensions", format!("{prefix}: {why}")),
                None => extensions.push((k.to_string(), v.to_string())),
            },
            _ => p.error(
                "oauthExtensions",
                format!("{prefix}: invalid OAuthBearer extension, must be of format key=value"),
            ),
        }
    }
    let client = OAuthClient {
        token_uri,
        client_id,
        client_secret: Secret::new(secret),
        scopes,
        params: Vec::new(),
    };
    Sasl::OAuthBearer(TokenSource::Client {
        client,
        ca: ca.map(str::to_string),
        extensions,
    })
}

/// What sarama's `ParseKafkaVersion` accepts: `0.x.y.z` before Kafka 1, `x.y.z` since.
/// `bootstrapServers`: a comma-separated list of host:port.
fn parse_bootstrap(p: &mut Params<'_>) -> Vec<String> {
    let bootstrap: Vec<String> = p
        .string(BOOTSTRAP)
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    for b in &bootstrap {
        let port_ok = !b.chars().any(|c| c.is_control() || c.is_whitespace())
            && b.rsplit_once(':')
                .is_some_and(|(h, port)| !h.is_empty() && port.parse::<u16>().is_ok());
        if !port_ok {
            p.error(
                "bootstrapServers",
                format!(
                    "{} is not host:port (e.g. kafka:9092)",
                    crate::metadata::shown(b)
                ),
            );
        }
    }
    bootstrap
}

/// The lag rules and the activation lag, with the combinations KEDA refuses.
fn parse_rules(p: &mut Params<'_>, no_topic: bool) -> (LagRules, i64) {
    let lag_threshold: i64 = p.or(LAG_THRESHOLD, "a whole number", 10);
    if lag_threshold <= 0 {
        p.error(
            "lagThreshold",
            format!("must be a positive number, got {lag_threshold}"),
        );
    }
    let activation: i64 = p.or(ACTIVATION_LAG_THRESHOLD, "a whole number", 0);
    if activation < 0 {
        p.error(
            "activationLagThreshold",
            format!("must be 0 or more, got {activation}"),
        );
    }
    let earliest = p.one_of(OFFSET_RESET_POLICY, &["latest", "earliest"], "latest") == "earliest";
    let rules = LagRules {
        lag_threshold: lag_threshold.max(1),
        earliest,
        allow_idle_consumers: p.bool(ALLOW_IDLE, false),
        exclude_persistent_lag: p.bool(EXCLUDE_PERSISTENT, false),
        scale_to_zero_on_invalid_offset: p.bool(SCALE_TO_ZERO_INVALID, false),
        limit_to_partitions_with_lag: p.bool(LIMIT_TO_LAG, false),
        ensure_even_distribution: p.bool(EVEN, false),
    };
    if rules.allow_idle_consumers && rules.limit_to_partitions_with_lag {
        p.error(
            "limitToPartitionsWithLag",
            "allowIdleConsumers and limitToPartitionsWithLag cannot be set simultaneously; \
             drop one",
        );
    }
    if rules.limit_to_partitions_with_lag && rules.ensure_even_distribution {
        p.error(
            "ensureEvenDistributionOfPartitions",
            "limitToPartitionsWithLag and ensureEvenDistributionOfPartitions cannot be set \
             simultaneously; drop one",
        );
    }
    if no_topic && !p.is_deferred("topic") {
        if rules.limit_to_partitions_with_lag {
            p.error(
                "topic",
                "topic must be specified when using limitToPartitionsWithLag",
            );
        }
        if rules.ensure_even_distribution {
            p.error(
                "topic",
                "topic must be specified when using ensureEvenDistributionOfPartitions",
            );
        }
    }
    (rules, activation)
}

/// `tls: enable`'s settings, and the `ca` (an OAUTHBEARER token endpoint trusts it too).
fn parse_tls(p: &mut Params<'_>) -> (Option<Tls>, Option<String>) {
    let tls_on = p.one_of(TLS, &["enable", "disable"], "disable") == "enable";
    let unsafe_ssl = p.bool(UNSAFE_SSL, false);
    let (cert, key, ca) = (p.opt_string(CERT), p.opt_string(KEY), p.opt_string(CA));
    let ca_for_token = ca.clone();
    if p.opt_string(KEY_PASSWORD).is_some() {
        p.error(
            "tls",
            "keyPassword (an encrypted private key) is not supported by Swell yet; give key \
             unencrypted in PKCS#8, PKCS#1 or SEC1 PEM",
        );
    }
    let tls = if tls_on {
        if cert.is_some() != key.is_some() && !p.is_deferred("cert") && !p.is_deferred("key") {
            p.error("tls", "cert and key must both be provided or both be empty");
        }
        Some(Tls {
            ca,
            client_cert: cert.zip(key.map(Secret::new)),
            unsafe_ssl,
        })
    } else {
        None
    };
    (tls, ca_for_token)
}

fn sarama_version(v: &str) -> bool {
    let parts: Vec<&str> = v.split('.').collect();
    let numbers = parts
        .iter()
        .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    let wanted = if v.starts_with('0') { 4 } else { 3 };
    v.len() >= 5 && numbers && parts.len() == wanted
}

impl KafkaScaler {
    pub fn new(input: &TriggerInput, shared: &Shared) -> Result<KafkaScaler, ScalerError> {
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
    ) -> Result<KafkaScaler, ScalerError> {
        let bootstrap = parse_bootstrap(p);
        let group = p.string(GROUP);
        let topic = p.opt_string(TOPIC);
        if !p.bool(FULL_METADATA, true) && topic.is_none() {
            p.error(
                "fullMetadata",
                "topic must be specified when fullMetadata is false",
            );
        }
        let mut partitions = match p.opt_string(PARTITION_LIMITATION) {
            Some(s) => parse_partitions(&s).unwrap_or_else(|e| {
                p.error("partitionLimitation", e);
                PartitionSet::default()
            }),
            None => PartitionSet::default(),
        };
        // As KEDA: without a topic the limitation means nothing and is dropped.
        if topic.is_none() {
            partitions = PartitionSet::default();
        }
        let (rules, activation) = parse_rules(p, topic.is_none());
        if let Some(v) = p.opt_string(VERSION)
            && !sarama_version(&v)
        {
            p.error(
                "version",
                format!("{v:?} is not a Kafka version such as 2.8.0 or 0.10.2.1 (as sarama's ParseKafkaVersion; Swell negotiates the protocol version, so this is only checked)"),
            );
        }

        let (tls, ca_for_token) = parse_tls(p);
        let sasl = parse_sasl(input, p, tls.is_some(), ca_for_token.as_deref());

        let name = match &topic {
            Some(t) => format!("kafka-{t}"),
            None => format!("kafka-{group}-topics"),
        };
        Ok(KafkaScaler {
            cluster: ClusterKey {
                bootstrap,
                sasl,
                tls,
                timeout: REQUEST_TIMEOUT,
            },
            group,
            topic,
            partitions,
            rules,
            activation,
            metric: metric_name(input.index, &normalize(&name)),
            metric_type: input.metric_type.unwrap_or_default(),
            polling: input.polling_interval,
            previous: Mutex::new(Previous::new()),
            shared: shared.clone(),
        })
    }

    /// Everything that identifies the question; holds secrets, so it is only hashed.
    fn coalesce_key(&self) -> String {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (&self.cluster, &self.partitions).hash(&mut h);
        format!(
            "kafka|{}|{}|{}|{:x}",
            self.cluster.bootstrap.join(","),
            self.group,
            self.topic.as_deref().unwrap_or(""),
            h.finish()
        )
    }

    async fn fetch(&self) -> Result<GroupOffsets, crate::UpstreamError> {
        let tokens = Tokens {
            oauth: self.shared.oauth_tokens.clone(),
            http: self.shared.http.clone(),
            aws: self.shared.aws.clone(),
        };
        let cluster = self.shared.kafka.get(&self.cluster, &tokens)?;
        Ok(cluster
            .group_offsets(&self.group, self.topic.as_deref(), &self.partitions)
            .await?)
    }
}

#[async_trait::async_trait]
impl Scaler for KafkaScaler {
    fn metric_spec(&self) -> MetricSpec {
        MetricSpec::External {
            name: self.metric.clone(),
            target: self.rules.lag_threshold as f64,
            metric_type: self.metric_type,
        }
    }

    async fn sample(&self) -> Result<Sample, ScalerError> {
        let (offsets, upstream) = self
            .shared
            .kafka_offsets
            .get(&self.coalesce_key(), self.polling, || self.fetch())
            .await;
        if upstream {
            self.shared.count_upstream("kafka");
        }
        let offsets = offsets.map_err(ScalerError::Upstream)?;
        let (lag, lag_with_persistent) = {
            let mut previous = self.previous.lock().unwrap_or_else(|p| p.into_inner());
            total_lag(&self.rules, &offsets, &mut previous)
        };
        Ok(Sample {
            value: lag as f64,
            active: lag_with_persistent > self.activation,
        })
    }

    fn upstream_key(&self) -> Option<String> {
        Some(self.coalesce_key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::PartitionOffsets;
    use crate::{RawParams, map};

    fn scaler(meta: &[(&str, &str)], auth: &[(&str, &str)]) -> Result<KafkaScaler, ScalerError> {
        KafkaScaler::new(
            &TriggerInput {
                index: 1,
                type_: "kafka".into(),
                params: RawParams {
                    trigger_index: 1,
                    metadata: map(meta),
                    auth: map(auth),
                    ..Default::default()
                },
                ..Default::default()
            },
            &Shared::default(),
        )
    }

    type Pairs = Vec<(&'static str, &'static str)>;

    fn with(extra: &[(&'static str, &'static str)]) -> Pairs {
        let mut v = vec![
            ("bootstrapServers", "kafka-0:9092, kafka-1:9092"),
            ("consumerGroup", "my-group"),
            ("topic", "orders"),
        ];
        v.extend_from_slice(extra);
        v
    }

    /// sarama's `ParseKafkaVersion` (which KEDA calls on `version`): four numbers before
    /// Kafka 1, three since.
    #[test]
    fn versions_are_read_as_sarama_reads_them() {
        for v in ["1.0.0", "2.8.1", "3.9.0", "0.10.2.1", "0.8.2.0", "10.0.0"] {
            assert!(sarama_version(v), "{v}");
        }
        for v in [
            "2.8", "2.8.0.0", "0.10.2", "latest", "v2.8.0", "2.8.x", "1..0", "0.1.2",
        ] {
            assert!(!sarama_version(v), "{v}");
        }
    }

    #[test]
    fn parses_valid_metadata() {
        type Check = fn(&KafkaScaler);
        let cases: Vec<(Pairs, Pairs, Check)> = vec![
            (with(&[]), vec![], |s| {
                assert_eq!(
                    s.metric_spec(),
                    MetricSpec::External {
                        name: "s1-kafka-orders".into(),
                        target: 10.0,
                        metric_type: crate::MetricType::AverageValue
                    }
                );
                assert_eq!(s.cluster.bootstrap, vec!["kafka-0:9092", "kafka-1:9092"]);
                assert_eq!(s.rules, LagRules::default());
                assert_eq!(s.activation, 0);
                assert_eq!(s.cluster.sasl, Sasl::None);
                assert!(s.cluster.tls.is_none());
            }),
            (
                vec![("bootstrapServers", "k:9092"), ("consumerGroup", "g.1")],
                vec![],
                |s| {
                    assert_eq!(s.metric_spec().name(), "s1-kafka-g-1-topics");
                    assert!(s.topic.is_none());
                },
            ),
            (
                with(&[
                    ("lagThreshold", "50"),
                    ("activationLagThreshold", "3"),
                    ("offsetResetPolicy", "earliest"),
                    ("allowIdleConsumers", "true"),
                    ("excludePersistentLag", "true"),
                    ("scaleToZeroOnInvalidOffset", "true"),
                    ("partitionLimitation", "0, 2,4-6"),
                    ("version", "2.8.1"),
                ]),
                vec![],
                |s| {
                    assert_eq!(s.rules.lag_threshold, 50);
                    assert_eq!(s.activation, 3);
                    assert!(s.rules.earliest);
                    assert!(s.rules.allow_idle_consumers);
                    assert!(s.rules.exclude_persistent_lag);
                    assert!(s.rules.scale_to_zero_on_invalid_offset);
                    assert_eq!(s.partitions, PartitionSet::new([0..=0, 2..=2, 4..=6]));
                },
            ),
            (
                vec![
                    ("bootstrapServers", "k:9092"),
                    ("consumerGroup", "g"),
                    ("partitionLimitation", "1,2"),
                ],
                vec![],
                // Without a topic, KEDA drops the limitation.
                |s| assert!(s.partitions.is_empty()),
            ),
            (with(&[("limitToPartitionsWithLag", "true")]), vec![], |s| {
                assert!(s.rules.limit_to_partitions_with_lag)
            }),
            (
                with(&[("sasl", "scram_sha512")]),
                vec![
                    ("username", "u"),
                    ("password", "p"),
                    ("tls", "enable"),
                    ("ca", "CA"),
                ],
                |s| {
                    assert_eq!(
                        s.cluster.sasl,
                        Sasl::Scram {
                            sha512: true,
                            user: "u".into(),
                            password: Secret::new("p")
                        }
                    );
                    let tls = s.cluster.tls.as_ref().expect("tls");
                    assert_eq!(tls.ca.as_deref(), Some("CA"));
                    assert!(tls.client_cert.is_none());
                },
            ),
            (
                with(&[("unsafeSsl", "true")]),
                vec![
                    ("sasl", "plaintext"),
                    ("username", "u"),
                    ("password", "p"),
                    ("tls", "enable"),
                    ("cert", "C"),
                    ("key", "K"),
                ],
                |s| {
                    assert!(matches!(s.cluster.sasl, Sasl::Plain { .. }));
                    let tls = s.cluster.tls.as_ref().expect("tls");
                    assert!(tls.unsafe_ssl && tls.client_cert.is_some());
                },
            ),
            (with(&[("tls", "disable"), ("sasl", "none")]), vec![], |s| {
                assert!(s.cluster.tls.is_none());
                assert_eq!(s.cluster.sasl, Sasl::None);
            }),
        ];
        for (i, (meta, auth, check)) in cases.iter().enumerate() {
            let s = scaler(meta, auth).unwrap_or_else(|e| panic!("case {i}: {e}"));
            check(&s);
        }
    }

    #[test]
    fn rejects_invalid_metadata() {
        let cases: Vec<(Pairs, Pairs, Vec<&str>)> = vec![
            (
                vec![],
                vec![],
                vec![
                    "triggers[1].metadata.bootstrapServers: required",
                    "triggers[1].metadata.consumerGroup: required",
                ],
            ),
            (
                vec![("bootstrapServers", "kafka"), ("consumerGroup", "g")],
                vec![],
                vec!["triggers[1].metadata.bootstrapServers: \"kafka\" is not host:port"],
            ),
            (
                with(&[("lagThreshold", "ten")]),
                vec![],
                vec!["triggers[1].metadata.lagThreshold: \"ten\" is not a whole number"],
            ),
            (
                with(&[("lagThreshold", "0")]),
                vec![],
                vec!["triggers[1].metadata.lagThreshold: must be a positive number"],
            ),
            (
                with(&[("lagThreshold", "1.5")]),
                vec![],
                vec!["triggers[1].metadata.lagThreshold: \"1.5\" is not a whole number"],
            ),
            (
                with(&[("activationLagThreshold", "-1")]),
                vec![],
                vec!["triggers[1].metadata.activationLagThreshold: must be 0 or more"],
            ),
            (
                with(&[("offsetResetPolicy", "newest")]),
                vec![],
                vec![
                    "triggers[1].metadata.offsetResetPolicy: \"newest\" is not one of latest, earliest",
                ],
            ),
            (
                with(&[
                    ("allowIdleConsumers", "true"),
                    ("limitToPartitionsWithLag", "true"),
                ]),
                vec![],
                vec![
                    "allowIdleConsumers and limitToPartitionsWithLag cannot be set simultaneously",
                ],
            ),
            (
                with(&[
                    ("ensureEvenDistributionOfPartitions", "true"),
                    ("limitToPartitionsWithLag", "true"),
                ]),
                vec![],
                vec![
                    "limitToPartitionsWithLag and ensureEvenDistributionOfPartitions cannot be set simultaneously",
                ],
            ),
            (
                vec![
                    ("bootstrapServers", "k:9092"),
                    ("consumerGroup", "g"),
                    ("limitToPartitionsWithLag", "true"),
                ],
                vec![],
                vec![
                    "triggers[1].metadata.topic: topic must be specified when using limitToPartitionsWithLag",
                ],
            ),
            (
                with(&[("partitionLimitation", "1,x,3")]),
                vec![],
                vec!["triggers[1].metadata.partitionLimitation: \"x\" is not a partition id"],
            ),
            (
                with(&[("allowIdleConsumers", "maybe")]),
                vec![],
                vec!["triggers[1].metadata.allowIdleConsumers: \"maybe\" is not true or false"],
            ),
            (
                with(&[]),
                vec![("sasl", "scram_sha256")],
                vec!["no username given", "no password given"],
            ),
            (
                with(&[]),
                vec![("sasl", "kerberos")],
                vec!["triggers[1].metadata.sasl: \"kerberos\" is not one of none"],
            ),
            (
                with(&[("sasl", "gssapi")]),
                vec![],
                vec!["sasl gssapi is not supported by Swell yet"],
            ),
            (
                with(&[]),
                vec![("tls", "on")],
                vec!["triggers[1].metadata.tls: \"on\" is not one of enable, disable"],
            ),
            (
                with(&[]),
                vec![("tls", "enable"), ("cert", "C")],
                vec!["cert and key must both be provided or both be empty"],
            ),
            (
                with(&[("version", "latest")]),
                vec![],
                vec!["triggers[1].metadata.version: \"latest\" is not a Kafka version"],
            ),
            (
                vec![
                    ("bootstrapServers", "kafka-0:9092"),
                    ("consumerGroup", "g"),
                    ("fullMetadata", "false"),
                ],
                vec![],
                vec![
                    "triggers[1].metadata.fullMetadata: topic must be specified when fullMetadata is false",
                ],
            ),
        ];
        for (meta, auth, wants) in cases {
            let e = match scaler(&meta, &auth) {
                Ok(_) => panic!("{meta:?} {auth:?} should be refused"),
                Err(e) => e.to_string(),
            };
            for want in wants {
                assert!(e.contains(want), "want {want:?} in {e}");
            }
        }
    }

    #[test]
    fn secrets_stay_out_of_messages_and_keys() {
        let s = scaler(
            &with(&[]),
            &[
                ("sasl", "plaintext"),
                ("username", "u"),
                ("password", "hunter2"),
            ],
        )
        .unwrap();
        assert!(!format!("{:?}", s.cluster).contains("hunter2"));
        assert!(!s.coalesce_key().contains("hunter2"));
    }

    const IDP: &str = "https://website.com";

    /// KEDA's `parseKafkaOAuthbearerAuthParamsTestDataset`, the cases that parse.
    #[test]
    fn parses_oauthbearer_like_keda() {
        let bearer = |extra: &[(&'static str, &'static str)]| {
            let mut v: Pairs = vec![
                ("sasl", "oauthbearer"),
                ("username", "admin"),
                ("password", "admin"),
                ("oauthTokenEndpointUri", IDP),
                ("tls", "disable"),
            ];
            v.extend_from_slice(extra);
            v
        };
        // (auth, scopes, extensions)
        type Case = (Pairs, Vec<&'static str>, Pairs);
        let cases: Vec<Case> = vec![
            (bearer(&[("scopes", "scope")]), vec!["scope"], vec![]),
            (
                bearer(&[("saslTokenProvider", "bearer"), ("scopes", "scope")]),
                vec!["scope"],
                vec![],
            ),
            (
                bearer(&[("scopes", "scope1, scope2")]),
                vec!["scope1", "scope2"],
                vec![],
            ),
            (bearer(&[]), vec![], vec![]),
            (
                bearer(&[("oauthExtensions", "extensionfoo=bar")]),
                vec![],
                vec![("extensionfoo", "bar")],
            ),
            (
                bearer(&[(
                    "oauthExtensions",
                    "logicalCluster=lkc-1,identityPoolId=pool-2",
                )]),
                vec![],
                vec![("logicalCluster", "lkc-1"), ("identityPoolId", "pool-2")],
            ),
        ];
        for (auth, scopes, extensions) in cases {
            let s = scaler(&with(&[]), &auth).unwrap_or_else(|e| panic!("{auth:?}: {e}"));
            let Sasl::OAuthBearer(TokenSource::Client {
                client,
                ca,
                extensions: got,
            }) = &s.cluster.sasl
            else {
                panic!("{auth:?}: {:?}", s.cluster.sasl);
            };
            assert_eq!(client.token_uri, IDP);
            assert_eq!(client.client_id, "admin");
            assert_eq!(client.client_secret, Secret::new("admin"));
            assert_eq!(client.scopes, scopes, "{auth:?}");
            assert!(ca.is_none());
            let want: Vec<(String, String)> = extensions
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            assert_eq!(got, &want, "{auth:?}");
            assert!(s.cluster.tls.is_none());
        }
        // MSK IAM with static keys or a role, the region from the metadata.
        let msk = [
            vec![
                ("sasl", "oauthbearer"),
                ("saslTokenProvider", "aws_msk_iam"),
                ("tls", "enable"),
                ("awsAccessKeyID", "none"),
                ("awsSecretAccessKey", "none"),
            ],
            vec![
                ("sasl", "oauthbearer"),
                ("saslTokenProvider", "aws_msk_iam"),
                ("tls", "enable"),
                ("awsRoleArn", "arn:aws:iam::123456789012:role/msk"),
            ],
        ];
        for auth in msk {
            let s = scaler(&with(&[("awsRegion", "eu-west-1")]), &auth).unwrap();
            let Sasl::OAuthBearer(TokenSource::MskIam { identity, region }) = &s.cluster.sasl
            else {
                panic!("{auth:?}: {:?}", s.cluster.sasl);
            };
            assert_eq!(region, "eu-west-1");
            assert!(
                matches!(
                    identity,
                    crate::aws::Identity::Static { .. } | crate::aws::Identity::AssumeRole { .. }
                ),
                "{identity:?}"
            );
            assert!(s.cluster.tls.is_some());
        }
    }

    /// KEDA's failing OAUTHBEARER cases, and Swell's checks of the extensions.
    #[test]
    fn rejects_oauthbearer_like_keda() {
        let msk: Pairs = vec![
            ("sasl", "oauthbearer"),
            ("saslTokenProvider", "aws_msk_iam"),
        ];
        let with_msk = |extra: &[(&'static str, &'static str)]| {
            let mut v = msk.clone();
            v.extend_from_slice(extra);
            v
        };
        let cases: Vec<(Pairs, Pairs, Vec<&str>)> = vec![
            (
                with(&[]),
                vec![
                    ("sasl", "oauthbearer"),
                    ("username", "admin"),
                    ("password", "admin"),
                    ("scopes", "scope"),
                    ("oauthTokenEndpointUri", ""),
                ],
                vec![
                    "triggers[1].metadata.sasl: error parsing OAuth token provider configuration: no oauth token endpoint uri given",
                ],
            ),
            (
                with(&[]),
                vec![("sasl", "oauthbearer"), ("oauthTokenEndpointUri", IDP)],
                vec!["no username given", "no password given"],
            ),
            (
                with(&[]),
                vec![
                    ("sasl", "oauthbearer"),
                    ("username", "admin"),
                    ("password", "admin"),
                    ("oauthTokenEndpointUri", IDP),
                    ("oauthExtensions", "extension_foo=bar,extension_bazbaz"),
                ],
                vec![
                    "oauthExtensions: error parsing OAuth token provider configuration: invalid OAuthBearer extension, must be of format key=value",
                ],
            ),
            (
                with(&[]),
                vec![
                    ("sasl", "oauthbearer"),
                    ("username", "admin"),
                    ("password", "admin"),
                    ("oauthTokenEndpointUri", IDP),
                    ("oauthExtensions", "auth=x"),
                ],
                vec!["extension key \"auth\" is reserved"],
            ),
            (
                with(&[]),
                vec![("sasl", "oauthbearer"), ("saslTokenProvider", "kerberos")],
                vec!["saslTokenProvider: \"kerberos\" is not one of bearer, aws_msk_iam"],
            ),
            (
                with(&[("awsRegion", "eu-west-1")]),
                with_msk(&[
                    ("tls", "disable"),
                    ("awsAccessKeyID", "none"),
                    ("awsSecretAccessKey", "none"),
                ]),
                vec!["TLS is required for AWS MSK authentication"],
            ),
            (
                with(&[]),
                with_msk(&[
                    ("tls", "enable"),
                    ("awsAccessKeyID", "none"),
                    ("awsSecretAccessKey", "none"),
                ]),
                vec![
                    "triggers[1].metadata.awsRegion: error parsing OAuth token provider configuration: no awsRegion given",
                ],
            ),
            // No credentials and no pod identity.
            (
                with(&[("awsRegion", "eu-west-1")]),
                with_msk(&[("tls", "enable")]),
                vec!["identityOwner"],
            ),
        ];
        for (meta, auth, wants) in cases {
            let e = match scaler(&meta, &auth) {
                Ok(s) => panic!("{meta:?} {auth:?} should be refused: {:?}", s.cluster),
                Err(e) => e.to_string(),
            };
            for want in wants {
                assert!(e.contains(want), "want {want:?} in {e}");
            }
        }
    }

    /// SigV4 signing key and signature by hand (AWS's published algorithm), so the check
    /// does not reuse the signer that made the token.
    fn sigv4(secret: &str, date: &str, region: &str, service: &str, to_sign: &str) -> String {
        use aws_lc_rs::hmac;
        let mac = |key: &[u8], data: &str| {
            hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data.as_bytes())
                .as_ref()
                .to_vec()
        };
        let k = mac(format!("AWS4{secret}").as_bytes(), &date[..8]);
        let k = mac(&k, region);
        let k = mac(&k, service);
        let k = mac(&k, "aws4_request");
        mac(&k, to_sign)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn uri_encode(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    }

    /// The MSK IAM token is what aws-msk-iam-sasl-signer builds: a presigned GET of
    /// `kafka-cluster:Connect` on `kafka.<region>.amazonaws.com`, valid 900 s, with the
    /// session token, signed over what it carries; base64url without padding.
    #[tokio::test]
    async fn msk_iam_tokens_are_presigned_connect_urls() {
        use base64::Engine as _;
        let s = scaler(
            &with(&[("awsRegion", "eu-west-1")]),
            &[
                ("sasl", "oauthbearer"),
                ("saslTokenProvider", "aws_msk_iam"),
                ("tls", "enable"),
                ("awsAccessKeyID", "AKIDSWELLTEST"),
                ("awsSecretAccessKey", "c2VjcmV0LWtleQ"),
                ("awsSessionToken", "session/token+1"),
            ],
        )
        .unwrap();
        let Sasl::OAuthBearer(source) = &s.cluster.sasl else {
            panic!("{:?}", s.cluster.sasl);
        };
        let first = Tokens::default().initial_response(source).await.unwrap();
        let first = first.expose();
        let token = first
            .strip_prefix("n,,\x01auth=Bearer ")
            .and_then(|t| t.strip_suffix("\x01\x01"))
            .unwrap_or_else(|| panic!("{first:?}"));
        assert!(!token.contains('='), "no padding");
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .unwrap();
        let url = reqwest::Url::parse(std::str::from_utf8(&raw).unwrap()).unwrap();
        assert_eq!(url.scheme(), "https");
        assert_eq!(url.host_str(), Some("kafka.eu-west-1.amazonaws.com"));
        assert_eq!(url.path(), "/");
        let q: std::collections::BTreeMap<String, String> =
            url.query_pairs().into_owned().collect();
        let get = |k: &str| {
            q.get(k)
                .cloned()
                .unwrap_or_else(|| panic!("no {k} in {url}"))
        };
        assert_eq!(get("Action"), "kafka-cluster:Connect");
        assert_eq!(get("X-Amz-Algorithm"), "AWS4-HMAC-SHA256");
        assert_eq!(get("X-Amz-Expires"), "900");
        assert_eq!(get("X-Amz-SignedHeaders"), "host");
        assert_eq!(get("X-Amz-Security-Token"), "session/token+1");
        assert!(get("User-Agent").starts_with("swell-kafka-scaler/"));
        let date = get("X-Amz-Date");
        let scope = format!("{}/eu-west-1/kafka-cluster/aws4_request", &date[..8]);
        assert_eq!(get("X-Amz-Credential"), format!("AKIDSWELLTEST/{scope}"));

        // Sign what the token carries (all but the signature and the unsigned User-Agent),
        // at its date, with the secret: the same signature.
        let query: Vec<String> = q
            .iter()
            .filter(|(k, _)| *k != "X-Amz-Signature" && *k != "User-Agent")
            .map(|(k, v)| format!("{}={}", uri_encode(k), uri_encode(v)))
            .collect();
        let empty_sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let canonical = format!(
            "GET\n/\n{}\nhost:kafka.eu-west-1.amazonaws.com\n\nhost\n{empty_sha256}",
            query.join("&")
        );
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
        let hashed: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        let to_sign = format!("AWS4-HMAC-SHA256\n{date}\n{scope}\n{hashed}");
        let want = sigv4(
            "c2VjcmV0LWtleQ",
            &date,
            "eu-west-1",
            "kafka-cluster",
            &to_sign,
        );
        assert_eq!(get("X-Amz-Signature"), want, "{url}");
        // The secret key never travels.
        assert!(!url.as_str().contains("c2VjcmV0LWtleQ"));
    }

    #[test]
    fn oauthbearer_secrets_stay_out_of_messages_and_keys() {
        let s = scaler(
            &with(&[]),
            &[
                ("sasl", "oauthbearer"),
                ("username", "u"),
                ("password", "hunter2"),
                ("oauthTokenEndpointUri", IDP),
            ],
        )
        .unwrap();
        assert!(!format!("{:?}", s.cluster).contains("hunter2"));
        assert!(!s.coalesce_key().contains("hunter2"));
    }

    fn offsets(parts: &[(&str, i32, i64, i64)]) -> GroupOffsets {
        let mut g = GroupOffsets::default();
        for &(t, p, committed, latest) in parts {
            g.topics
                .entry(t.to_string())
                .or_default()
                .insert(p, PartitionOffsets { committed, latest });
        }
        g
    }

    #[test]
    fn computes_lag_like_keda() {
        let base = LagRules::default();
        let three = offsets(&[("t", 0, 10, 30), ("t", 1, 5, 5), ("t", 2, 0, 7)]);
        // (rules, offsets, metric, activity lag)
        let cases: Vec<(LagRules, GroupOffsets, i64, i64)> = vec![
            (base, three.clone(), 27, 27),
            // Capped at partitions × threshold.
            (
                base,
                offsets(&[("t", 0, 0, 100), ("t", 1, 0, 100), ("t", 2, 0, 100)]),
                30,
                300,
            ),
            (
                LagRules {
                    allow_idle_consumers: true,
                    ..base
                },
                offsets(&[("t", 0, 0, 100), ("t", 1, 0, 100), ("t", 2, 0, 100)]),
                300,
                300,
            ),
            // Only partitions with lag count.
            (
                LagRules {
                    limit_to_partitions_with_lag: true,
                    ..base
                },
                offsets(&[("t", 0, 0, 100), ("t", 1, 5, 5), ("t", 2, 9, 9)]),
                10,
                100,
            ),
            // No committed offset, latest: 1 per partition (0 with scaleToZeroOnInvalidOffset).
            (base, offsets(&[("t", 0, -1, 50), ("t", 1, -1, 0)]), 2, 2),
            (
                LagRules {
                    scale_to_zero_on_invalid_offset: true,
                    ..base
                },
                offsets(&[("t", 0, -1, 50)]),
                0,
                0,
            ),
            // No committed offset, earliest: the whole partition (KEDA reads the high
            // watermark), or 0 with scaleToZeroOnInvalidOffset.
            (
                LagRules {
                    earliest: true,
                    allow_idle_consumers: true,
                    ..base
                },
                offsets(&[("t", 0, -1, 50)]),
                50,
                50,
            ),
            (
                LagRules {
                    earliest: true,
                    scale_to_zero_on_invalid_offset: true,
                    ..base
                },
                offsets(&[("t", 0, -1, 50)]),
                0,
                0,
            ),
            // Several topics (no topic set): partitions of all count for the cap.
            (
                base,
                offsets(&[("a", 0, 0, 100), ("b", 0, 0, 100), ("b", 1, 0, 1)]),
                30,
                201,
            ),
            // Even distribution: the smallest divisor of 6 partitions covering the lag.
            (
                LagRules {
                    ensure_even_distribution: true,
                    ..base
                },
                offsets(&[
                    ("t", 0, 0, 25),
                    ("t", 1, 0, 0),
                    ("t", 2, 0, 0),
                    ("t", 3, 0, 0),
                    ("t", 4, 0, 0),
                    ("t", 5, 0, 0),
                ]),
                30,
                25,
            ),
            (base, GroupOffsets::default(), 0, 0),
        ];
        for (i, (rules, o, metric, active)) in cases.into_iter().enumerate() {
            let got = total_lag(&rules, &o, &mut Previous::new());
            assert_eq!(got, (metric, active), "case {i}");
        }
    }

    #[test]
    fn excludes_persistent_lag() {
        let rules = LagRules {
            exclude_persistent_lag: true,
            allow_idle_consumers: true,
            ..LagRules::default()
        };
        let mut prev = Previous::new();
        let a = offsets(&[("t", 0, 10, 30)]);
        assert_eq!(total_lag(&rules, &a, &mut prev), (20, 20));
        // Same committed offset as before: the consumer is stuck; it does not scale out,
        // but the lag still counts for activity.
        assert_eq!(total_lag(&rules, &a, &mut prev), (0, 20));
        let b = offsets(&[("t", 0, 12, 30)]);
        assert_eq!(total_lag(&rules, &b, &mut prev), (18, 18));
    }

    #[test]
    fn parses_partition_lists() {
        assert_eq!(
            parse_partitions("0,1, 3-5"),
            Ok(PartitionSet::new([0..=1, 3..=5]))
        );
        assert_eq!(parse_partitions(""), Ok(PartitionSet::default()));
        assert!(parse_partitions("5-3").is_err());
        assert!(parse_partitions("-1").is_err());
        assert!(parse_partitions("a").is_err());
        assert!(parse_partitions("1-2-3").is_err());
        // Overlapping and adjacent entries merge; membership is a search, not a scan.
        let set = parse_partitions("9, 0-3, 2-5, 6, 100-2147483647").unwrap_or_default();
        assert_eq!(set.ranges(), &[0..=6, 9..=9, 100..=i32::MAX]);
        for (p, want) in [
            (0, true),
            (6, true),
            (7, false),
            (9, true),
            (99, false),
            (i32::MAX, true),
        ] {
            assert_eq!(set.contains(p), want, "{p}");
        }
    }

    /// Issue 17: 1,000 ranges of 100,000 ids took 423 MB and 3.4 s, 12,000 aborted on a 6.5 GB
    /// allocation; the ranges are now kept as ranges, and their number is capped.
    #[test]
    fn partition_limitation_is_bounded_by_its_text() {
        let trigger = |limitation: String| TriggerInput {
            type_: "kafka".into(),
            params: RawParams {
                metadata: [
                    ("bootstrapServers", "k:9092".to_string()),
                    ("consumerGroup", "g".into()),
                    ("topic", "t".into()),
                    ("partitionLimitation", limitation),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
                ..Default::default()
            },
            ..Default::default()
        };
        let start = std::time::Instant::now();
        let wide = vec!["0-100000"; 6_000].join(",");
        let checked = crate::scalers::check(&trigger(wide.clone())).unwrap_or_default();
        assert!(checked.errors.is_empty(), "{:?}", checked.errors);
        assert_eq!(parse_partitions(&wide).map(|s| s.ranges().len()), Ok(1));
        let ids: Vec<String> = (0..=MAX_PARTITION_ENTRIES).map(|p| p.to_string()).collect();
        let checked = crate::scalers::check(&trigger(ids.join(","))).unwrap_or_default();
        let text = format!("{:?}", checked.errors);
        assert!(
            text.contains("partitionLimitation")
                && text.contains("lists more than 10000 partition ids and ranges"),
            "{text}"
        );
        // 12,000 ranges, as in the issue: longer than any metadata value may be.
        let longest = vec!["0-100000"; 12_000].join(",");
        let checked = crate::scalers::check(&trigger(longest)).unwrap_or_default();
        let text = format!("{:?}", checked.errors);
        assert!(text.contains("the limit is 65536"), "{text}");
        // Generous: it took seconds per check before, on any machine.
        assert!(
            start.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
    }
}
