//! `redis`: scale on the length of a list (or the size of a set, sorted set or hash), and
//! `redis-streams`: on a stream's length, a consumer group's pending entries or its lag, as
//! KEDA's `redis_scaler.go` and `redis_streams_scaler.go`; on a standalone server, and as
//! `redis-cluster*` on a cluster (the key's slot master) and `redis-sentinel*` on the master
//! the sentinels name. One parser and one reading for the six types; only the connection
//! differs.

use std::time::Duration;

use swell_scaling::naming::{metric_name, normalize};

use crate::redis_client::{self, Kind, Target};
use crate::upstream::UpstreamKind;
use crate::{Field, MetricSpec, Params, Sample, Scaler, ScalerError, Shared, TriggerInput};

const LIST_NAME: Field = Field::new("listName").hint("the key of the list to measure");
const LIST_LENGTH: Field = Field::new("listLength");
const ACTIVATION_LIST_LENGTH: Field = Field::new("activationListLength");

/// The `redis` trigger's parameters, connection included.
pub const LIST_FIELDS: &[Field] = &[LIST_NAME, LIST_LENGTH, ACTIVATION_LIST_LENGTH];

const STREAM: Field = Field::new("stream").hint("the key of the stream");
const CONSUMER_GROUP: Field = Field::new("consumerGroup");
const PENDING_ENTRIES_COUNT: Field = Field::new("pendingEntriesCount");
const STREAM_LENGTH: Field = Field::new("streamLength");
const LAG_COUNT: Field = Field::new("lagCount");
const ACTIVATION_LAG_COUNT: Field = Field::new("activationLagCount");

/// The `redis-streams` trigger's parameters, connection included.
pub const STREAM_FIELDS: &[Field] = &[
    STREAM,
    CONSUMER_GROUP,
    PENDING_ENTRIES_COUNT,
    STREAM_LENGTH,
    LAG_COUNT,
    ACTIVATION_LAG_COUNT,
];

/// The six trigger types: name, topology, and whether it reads a stream.
const TYPES: &[(&str, Kind, bool)] = &[
    ("redis", Kind::Standalone, false),
    ("redis-cluster", Kind::Cluster, false),
    ("redis-cluster-streams", Kind::Cluster, true),
    ("redis-sentinel", Kind::Sentinel, false),
    ("redis-sentinel-streams", Kind::Sentinel, true),
    ("redis-streams", Kind::Standalone, true),
];

/// The topology and reading of trigger type `type_` (`redis` for a name not in [`TYPES`],
/// which the registry never passes).
fn type_of(type_: &str) -> (&'static str, Kind, bool) {
    TYPES
        .iter()
        .find(|t| t.0 == type_)
        .copied()
        .unwrap_or(TYPES[0])
}

/// KEDA's script: the size of the key whatever its type, 0 when it does not exist.
const LENGTH_SCRIPT: &str = r"
local listName = KEYS[1]
local listType = redis.call('type', listName).ok
if listType == 'zset' then
    return redis.call('zcard', listName)
elseif listType == 'set' then
    return redis.call('scard', listName)
elseif listType == 'hash' then
    return redis.call('hlen', listName)
elseif listType == 'list' or listType == 'none' then
    return redis.call('llen', listName)
else
    return redis.error_reply('ERR unsupported key type: ' .. listType)
end
";

/// What a trigger reads from Redis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reading {
    /// The size of the key `listName` (redis).
    Length(String),
    /// `XLEN stream` (redis-streams without consumerGroup).
    StreamLength(String),
    /// `XPENDING stream group` (redis-streams with consumerGroup).
    Pending { stream: String, group: String },
    /// The group's lag from `XINFO GROUPS` (redis-streams with consumerGroup and lagCount).
    Lag { stream: String, group: String },
}

pub struct RedisScaler {
    target: Target,
    reading: Reading,
    /// `listLength`, or the stream target of the reading.
    target_value: i64,
    activation: i64,
    /// The trigger type, for the upstream call counter.
    scaler: &'static str,
    metric: String,
    metric_type: crate::MetricType,
    polling: Duration,
    shared: Shared,
}

/// A whole-number target of at least 1 (KEDA takes 0, which the HPA then refuses).
fn whole_target(p: &mut Params<'_>, f: Field, default: i64) -> i64 {
    let v: i64 = p.or(f, "a whole number", default);
    if v < 1 {
        p.error(
            f.name,
            format!("must be at least 1 (the HPA's target is a positive quantity), got {v}"),
        );
    }
    v
}

impl RedisScaler {
    pub fn new(input: &TriggerInput, shared: &Shared) -> Result<RedisScaler, ScalerError> {
        let mut p = Params::new(&input.params);
        let built = Self::parse(input, shared, &mut p);
        p.finish()?;
        Ok(built)
    }

    /// Reads a `redis*` trigger into `p` without I/O (also for `swell check` and the
    /// admission webhook).
    pub fn parse(input: &TriggerInput, shared: &Shared, p: &mut Params<'_>) -> RedisScaler {
        let (scaler, kind, streams) = type_of(&input.type_);
        let target = redis_client::parse(p, kind);
        let (reading, target_value, activation, name) = if streams {
            let (reading, target_value, activation) = parse_stream(p);
            let stream = match &reading {
                Reading::StreamLength(s)
                | Reading::Pending { stream: s, .. }
                | Reading::Lag { stream: s, .. } => s.clone(),
                Reading::Length(_) => String::new(),
            };
            let name = format!("redis-streams-{stream}");
            (reading, target_value, activation, name)
        } else {
            let list = p.string(LIST_NAME);
            let target_value = whole_target(p, LIST_LENGTH, 5);
            let activation: i64 = p.or(ACTIVATION_LIST_LENGTH, "a whole number", 0);
            let name = format!("redis-{list}");
            (Reading::Length(list), target_value, activation, name)
        };
        RedisScaler {
            target,
            reading,
            target_value,
            activation,
            scaler,
            metric: metric_name(input.index, &normalize(&name)),
            metric_type: input.metric_type.unwrap_or_default(),
            polling: input.polling_interval,
            shared: shared.clone(),
        }
    }

    fn coalesce_key(&self) -> String {
        format!("{}|{}|{:?}", self.scaler, self.target.key(), self.reading)
    }

    async fn read(&self) -> Result<i64, ScalerError> {
        let redis = &self.shared.redis;
        let t = &self.target;
        match &self.reading {
            Reading::Length(list) => {
                let mut cmd = redis::cmd("EVAL");
                cmd.arg(LENGTH_SCRIPT).arg(1).arg(list);
                redis.query(t, &cmd).await
            }
            Reading::StreamLength(stream) => redis.query(t, redis::cmd("XLEN").arg(stream)).await,
            Reading::Pending { stream, group } => {
                let reply: redis::streams::StreamPendingReply = redis
                    .query(t, redis::cmd("XPENDING").arg(stream).arg(group))
                    .await?;
                Ok(i64::try_from(reply.count()).unwrap_or(i64::MAX))
            }
            Reading::Lag { stream, group } => self.lag(stream, group).await,
        }
    }

    /// KEDA's lag reading: Redis 7 or newer (asked of the server holding the stream); no
    /// stream is 0; a group that is not there (yet) lags by the whole stream.
    async fn lag(&self, stream: &str, group: &str) -> Result<i64, ScalerError> {
        let redis = &self.shared.redis;
        let t = &self.target;
        let info: String = redis
            .query_near(t, redis::cmd("INFO").arg("server"), Some(stream))
            .await?;
        let major = redis_major_version(&info)
            .map_err(|why| redis_client::refused(t, UpstreamKind::BadResponse, why))?;
        if major < 7 {
            let why = format!("redis version 7+ required for lag (the server runs {major})");
            return Err(redis_client::refused(t, UpstreamKind::Unsupported, why));
        }
        let groups: Result<redis::streams::StreamInfoGroupsReply, ScalerError> = redis
            .query(t, redis::cmd("XINFO").arg("GROUPS").arg(stream))
            .await;
        match groups {
            Err(e) if e.to_string().contains("no such key") => return Ok(0),
            Ok(reply) => {
                if let Some(g) = reply.groups.iter().find(|g| g.name == group) {
                    return Ok(g.lag.map_or(0, |l| i64::try_from(l).unwrap_or(i64::MAX)));
                }
            }
            // As KEDA: any other failure falls back to the stream's length.
            Err(_) => {}
        }
        redis.query(t, redis::cmd("XLEN").arg(stream)).await
    }
}

/// KEDA's choice of reading for redis-streams: a consumer group with `lagCount` reads the
/// lag, a group without it the pending entries, no group the stream's length.
fn parse_stream(p: &mut Params<'_>) -> (Reading, i64, i64) {
    let stream = p.string(STREAM);
    let group = p.opt_string(CONSUMER_GROUP);
    let pending: i64 = p.or(PENDING_ENTRIES_COUNT, "a whole number", 5);
    let length: i64 = p.or(STREAM_LENGTH, "a whole number", 5);
    let lag: i64 = p.or(LAG_COUNT, "a whole number", 0);
    let activation: i64 = p.or(ACTIVATION_LAG_COUNT, "a whole number", 0);
    let (reading, value, field) = match group {
        Some(group) if lag != 0 => (Reading::Lag { stream, group }, lag, LAG_COUNT),
        Some(group) => (
            Reading::Pending { stream, group },
            pending,
            PENDING_ENTRIES_COUNT,
        ),
        None => (Reading::StreamLength(stream), length, STREAM_LENGTH),
    };
    if value < 1 {
        p.error(
            field.name,
            format!("must be at least 1 (the HPA's target is a positive quantity), got {value}"),
        );
    }
    (reading, value, activation)
}

/// The major version in an `INFO server` answer (`redis_version:7.0.15`).
fn redis_major_version(info: &str) -> Result<i64, &'static str> {
    let line = info
        .lines()
        .find_map(|l| l.trim().strip_prefix("redis_version:"))
        .ok_or("could not find Redis version number")?;
    line.split('.')
        .next()
        .and_then(|m| m.trim().parse().ok())
        .ok_or("redis version could not be converted to number")
}

#[async_trait::async_trait]
impl Scaler for RedisScaler {
    fn metric_spec(&self) -> MetricSpec {
        MetricSpec::External {
            name: self.metric.clone(),
            target: self.target_value as f64,
            metric_type: self.metric_type,
        }
    }

    async fn sample(&self) -> Result<Sample, ScalerError> {
        self.shared
            .sample_value(
                self.scaler,
                &self.coalesce_key(),
                self.polling,
                self.activation as f64,
                || async {
                    self.read()
                        .await
                        .map(|n| n as f64)
                        .map_err(ScalerError::into_upstream)
                },
            )
            .await
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

    fn input(type_: &str, index: usize, meta: Pairs, auth: Pairs, env: Pairs) -> TriggerInput {
        TriggerInput {
            index,
            type_: type_.into(),
            params: RawParams {
                trigger_index: index,
                metadata: map(meta),
                auth: map(auth),
                env: map(env),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// KEDA's `testRedisResolvedEnv`.
    const ENV: Pairs = &[
        ("REDIS_HOST", "none"),
        ("REDIS_PORT", "6379"),
        ("REDIS_USERNAME", "none"),
        ("REDIS_PASSWORD", "none"),
    ];

    fn list(meta: Pairs, auth: Pairs) -> Result<RedisScaler, ScalerError> {
        RedisScaler::new(&input("redis", 0, meta, auth, ENV), &Shared::default())
    }

    /// KEDA's `testRedisMetadata`, with listLength "0" (valid in KEDA, a zero HPA target
    /// that the API server refuses) raised to "1": (metadata, auth, error, TLS on).
    #[test]
    fn parses_keda_redis_metadata_table() {
        let cases: &[(Pairs, Pairs, bool, bool)] = &[
            (&[], &[], true, false),
            (
                &[
                    ("listName", "mylist"),
                    ("listLength", "10"),
                    ("addressFromEnv", "REDIS_HOST"),
                    ("passwordFromEnv", "REDIS_PASSWORD"),
                ],
                &[],
                false,
                false,
            ),
            (
                &[
                    ("listName", "mylist"),
                    ("listLength", "10"),
                    ("hostFromEnv", "REDIS_HOST"),
                    ("portFromEnv", "REDIS_PORT"),
                    ("passwordFromEnv", "REDIS_PASSWORD"),
                ],
                &[],
                false,
                false,
            ),
            (
                &[
                    ("listName", "mylist"),
                    ("listLength", "10"),
                    ("addressFromEnv", "REDIS_HOST"),
                    ("host", "REDIS_HOST"),
                    ("port", "REDIS_PORT"),
                    ("passwordFromEnv", "REDIS_PASSWORD"),
                ],
                &[],
                false,
                false,
            ),
            (
                &[
                    ("listName", "mylist"),
                    ("listLength", "10"),
                    ("hostFromEnv", "REDIS_HOST"),
                    ("passwordFromEnv", "REDIS_PASSWORD"),
                ],
                &[],
                true,
                false,
            ),
            (
                &[
                    ("listName", "mylist"),
                    ("listLength", "10"),
                    ("address", ""),
                    ("password", ""),
                ],
                &[],
                true,
                false,
            ),
            (
                &[
                    ("listName", "mylist"),
                    ("listLength", "AA"),
                    ("addressFromEnv", "REDIS_HOST"),
                    ("password", ""),
                ],
                &[],
                true,
                false,
            ),
            (
                &[
                    ("listName", "mylist"),
                    ("listLength", "1"),
                    ("activationListLength", "AA"),
                    ("addressFromEnv", "REDIS_HOST"),
                    ("password", ""),
                ],
                &[],
                true,
                false,
            ),
            (
                &[
                    ("listName", "mylist"),
                    ("listLength", "1"),
                    ("addressFromEnv", "REDIS_WRONG"),
                    ("password", ""),
                ],
                &[],
                true,
                false,
            ),
            (
                &[
                    ("listName", "mylist"),
                    ("listLength", "1"),
                    ("addressFromEnv", "REDIS_WRONG"),
                ],
                &[("password", "")],
                true,
                false,
            ),
            (
                &[("listName", "mylist"), ("listLength", "1")],
                &[("address", "localhost:6379")],
                false,
                false,
            ),
            (
                &[("listName", "mylist"), ("listLength", "1")],
                &[("host", "localhost"), ("port", "6379")],
                false,
                false,
            ),
            (
                &[("listName", "mylist"), ("listLength", "1")],
                &[
                    ("address", "localhost:6379"),
                    ("tls", "enable"),
                    ("ca", "caaa"),
                    ("cert", "ceert"),
                    ("key", "keey"),
                ],
                false,
                true,
            ),
            (
                &[("listName", "mylist"), ("listLength", "1")],
                &[
                    ("address", "localhost:6379"),
                    ("tls", "enable"),
                    ("cert", "ceert"),
                    ("key", "keey"),
                ],
                false,
                true,
            ),
            // KEDA accepts keyPassword (an encrypted key); Swell refuses it with a message.
            (
                &[("listName", "mylist"), ("listLength", "1")],
                &[
                    ("address", "localhost:6379"),
                    ("tls", "enable"),
                    ("cert", "ceert"),
                    ("key", "keey"),
                    ("keyPassword", "keeyPassword"),
                ],
                true,
                true,
            ),
            (
                &[("listName", "mylist"), ("listLength", "1")],
                &[
                    ("address", "localhost:6379"),
                    ("tls", "enable"),
                    ("ca", "caaa"),
                ],
                false,
                true,
            ),
            (
                &[
                    ("listName", "mylist"),
                    ("listLength", "1"),
                    ("enableTLS", "true"),
                ],
                &[("address", "localhost:6379")],
                false,
                true,
            ),
            (
                &[
                    ("listName", "mylist"),
                    ("listLength", "1"),
                    ("enableTLS", "true"),
                ],
                &[("address", "localhost:6379"), ("tls", "disable")],
                true,
                true,
            ),
            (
                &[("listName", "mylist"), ("listLength", "1")],
                &[("host", "localhost")],
                true,
                false,
            ),
        ];
        for (i, (meta, auth, is_error, tls)) in cases.iter().enumerate() {
            match list(meta, auth) {
                Ok(s) => {
                    assert!(!is_error, "case {i}: expected an error");
                    assert_eq!(s.target.tls.is_some(), *tls, "case {i}");
                    if let Some(t) = &s.target.tls {
                        let get = |k: &str| {
                            auth.iter()
                                .find(|(n, _)| *n == k)
                                .map(|(_, v)| v.to_string())
                        };
                        assert_eq!(t.ca, get("ca"), "case {i}");
                        assert_eq!(
                            t.client_cert.as_ref().map(|(c, _)| c.clone()),
                            get("cert"),
                            "case {i}"
                        );
                    }
                }
                Err(e) => assert!(is_error, "case {i}: {e}"),
            }
        }
    }

    #[test]
    fn reads_the_connection_like_keda() {
        let s = list(
            &[
                ("listName", "mylist"),
                ("addressFromEnv", "REDIS_HOST"),
                ("host", "h"),
                ("port", "1"),
            ],
            &[("username", "u"), ("password", "p")],
        )
        .unwrap();
        // The first address wins for a standalone server.
        assert_eq!(s.target.addresses, vec!["none"]);
        assert_eq!(s.target.username.as_deref(), Some("u"));
        assert_eq!(s.target_value, 5, "listLength defaults to 5");
        assert_eq!(s.activation, 0);
        assert_eq!(s.target.db, 0);
        // hosts and ports in auth params, trimmed.
        let mut p_raw = input(
            "redis",
            0,
            &[("listName", "l")],
            &[("hosts", "   a, b,    c "), ("ports", "1, 2, 3")],
            &[],
        )
        .params;
        p_raw.trigger_index = 0;
        let mut p = Params::new(&p_raw);
        let addresses = redis_client::parse_addresses(&mut p);
        assert_eq!(addresses, vec!["a:1", "b:2", "c:3"]);
        let mut p_raw = input("redis", 0, &[], &[("addresses", ":7001, :7002")], &[]).params;
        p_raw.trigger_index = 0;
        let mut p = Params::new(&p_raw);
        assert_eq!(
            redis_client::parse_addresses(&mut p),
            vec![":7001", ":7002"]
        );
        // Metadata wins over the TriggerAuthentication, as KEDA's order says.
        let s = list(
            &[("listName", "l"), ("address", "m:1"), ("username", "meta")],
            &[("address", "a:1"), ("username", "auth")],
        )
        .unwrap();
        assert_eq!(
            (s.target.addresses[0].as_str(), s.target.username.as_deref()),
            ("m:1", Some("meta"))
        );
    }

    #[test]
    fn refuses_bad_input_with_the_field_and_fix() {
        let cases: &[(Pairs, &str)] = &[
            (
                &[("address", "r:6379")],
                "triggers[0].metadata.listName: required",
            ),
            (
                &[("listName", "l")],
                "triggers[0].metadata.address: no addresses or hosts given",
            ),
            (
                &[("listName", "l"), ("hosts", "a, b, c"), ("ports", "1, 2")],
                "triggers[0].metadata.hosts: not enough hosts or ports given: 3 hosts and 2 ports",
            ),
            (
                &[("listName", "l"), ("address", "r:1"), ("listLength", "0")],
                "triggers[0].metadata.listLength: must be at least 1",
            ),
            (
                &[("listName", "l"), ("address", "r:1"), ("listLength", "1.5")],
                "triggers[0].metadata.listLength: \"1.5\" is not a whole number",
            ),
            (
                &[
                    ("listName", "l"),
                    ("address", "r:1"),
                    ("databaseIndex", "x"),
                ],
                "triggers[0].metadata.databaseIndex: \"x\" is not a whole number",
            ),
            (
                &[("listName", "l"), ("address", "r:1"), ("enableTLS", "no")],
                "triggers[0].metadata.enableTLS: \"no\" is not true or false",
            ),
            (
                &[
                    ("listName", "l"),
                    ("address", "r:1"),
                    ("enableTLS", "true"),
                    ("unsafeSsl", "maybe"),
                ],
                "triggers[0].metadata.unsafeSsl: \"maybe\" is not true or false",
            ),
        ];
        for (meta, want) in cases {
            let e = list(meta, &[]).err().expect("invalid").to_string();
            assert!(e.contains(want), "want {want:?} in {e}");
        }
        let e = list(&[("listName", "l"), ("address", "r:1")], &[("tls", "on")])
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("\"on\" is not one of enable, disable"), "{e}");
        let e = list(
            &[("listName", "l"), ("address", "r:1")],
            &[("tls", "enable"), ("cert", "c")],
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("cert and key must both be provided"), "{e}");
    }

    #[test]
    fn metric_names_like_keda() {
        let meta: Pairs = &[
            ("listName", "mylist"),
            ("listLength", "10"),
            ("addressFromEnv", "REDIS_HOST"),
            ("passwordFromEnv", "REDIS_PASSWORD"),
        ];
        for (index, want) in [(0, "s0-redis-mylist"), (1, "s1-redis-mylist")] {
            let s = RedisScaler::new(&input("redis", index, meta, &[], ENV), &Shared::default())
                .unwrap();
            assert_eq!(s.metric_spec().name(), want);
        }
        let meta: Pairs = &[
            ("stream", "my-stream"),
            ("consumerGroup", "my-stream-consumer-group"),
            ("pendingEntriesCount", "5"),
            ("address", "REDIS_SERVICE"),
            ("password", "REDIS_PASSWORD"),
            ("databaseIndex", "0"),
            ("enableTLS", "true"),
        ];
        for (index, want) in [
            (0, "s0-redis-streams-my-stream"),
            (1, "s1-redis-streams-my-stream"),
        ] {
            let s = RedisScaler::new(
                &input("redis-streams", index, meta, &[], &[]),
                &Shared::default(),
            )
            .unwrap();
            assert_eq!(s.metric_spec().name(), want);
        }
    }

    fn stream(meta: Pairs, auth: Pairs, env: Pairs) -> Result<RedisScaler, ScalerError> {
        RedisScaler::new(
            &input("redis-streams", 0, meta, auth, env),
            &Shared::default(),
        )
    }

    /// KEDA's `TestParseRedisStreamsMetadata` (pending and lag) tables.
    #[test]
    fn parses_keda_streams_tables() {
        let env: Pairs = &[
            ("REDIS_SERVICE", "myredis:6379"),
            ("REDIS_HOST", "myredis"),
            ("REDIS_PORT", "6379"),
            ("REDIS_USERNAME", "foobarred"),
            ("REDIS_PASSWORD", "foobarred"),
        ];
        let auth: Pairs = &[("username", "foobarred"), ("password", "foobarred")];
        let cases: &[(Pairs, Pairs, Reading, i64, bool)] = &[
            (
                &[
                    ("stream", "my-stream"),
                    ("consumerGroup", "my-stream-consumer-group"),
                    ("pendingEntriesCount", "5"),
                    ("addressFromEnv", "REDIS_SERVICE"),
                    ("usernameFromEnv", "REDIS_USERNAME"),
                    ("passwordFromEnv", "REDIS_PASSWORD"),
                    ("databaseIndex", "0"),
                    ("enableTLS", "true"),
                ],
                &[],
                Reading::Pending {
                    stream: "my-stream".into(),
                    group: "my-stream-consumer-group".into(),
                },
                5,
                true,
            ),
            (
                &[
                    ("stream", "my-stream"),
                    ("consumerGroup", "my-stream-consumer-group"),
                    ("pendingEntriesCount", "15"),
                    ("hostFromEnv", "REDIS_HOST"),
                    ("port", "REDIS_PORT"),
                    ("usernameFromEnv", "REDIS_USERNAME"),
                    ("passwordFromEnv", "REDIS_PASSWORD"),
                    ("databaseIndex", "0"),
                    ("enableTLS", "false"),
                ],
                auth,
                Reading::Pending {
                    stream: "my-stream".into(),
                    group: "my-stream-consumer-group".into(),
                },
                15,
                false,
            ),
            (
                &[
                    ("stream", "my-stream"),
                    ("consumerGroup", "my-stream-consumer-group"),
                    ("lagCount", "5"),
                    ("activationLagCount", "3"),
                    ("addressFromEnv", "REDIS_SERVICE"),
                    ("usernameFromEnv", "REDIS_USERNAME"),
                    ("passwordFromEnv", "REDIS_PASSWORD"),
                    ("databaseIndex", "0"),
                    ("enableTLS", "true"),
                ],
                &[],
                Reading::Lag {
                    stream: "my-stream".into(),
                    group: "my-stream-consumer-group".into(),
                },
                5,
                true,
            ),
            (
                &[
                    ("stream", "my-stream"),
                    ("consumerGroup", "my-stream-consumer-group"),
                    ("lagCount", "2"),
                    ("activationLagCount", "3"),
                    ("hostFromEnv", "REDIS_HOST"),
                    ("port", "REDIS_PORT"),
                    ("usernameFromEnv", "REDIS_USERNAME"),
                    ("passwordFromEnv", "REDIS_PASSWORD"),
                    ("databaseIndex", "0"),
                    ("enableTLS", "false"),
                ],
                auth,
                Reading::Lag {
                    stream: "my-stream".into(),
                    group: "my-stream-consumer-group".into(),
                },
                2,
                false,
            ),
            (
                &[("stream", "s"), ("streamLength", "7"), ("address", "r:1")],
                &[],
                Reading::StreamLength("s".into()),
                7,
                false,
            ),
        ];
        for (i, (meta, auth, reading, value, tls)) in cases.iter().enumerate() {
            let s = stream(meta, auth, env).unwrap_or_else(|e| panic!("case {i}: {e}"));
            assert_eq!(&s.reading, reading, "case {i}");
            assert_eq!(s.target_value, *value, "case {i}");
            assert_eq!(s.target.tls.is_some(), *tls, "case {i}");
            if i < 4 {
                assert_eq!(s.target.username.as_deref(), Some("foobarred"), "case {i}");
                assert_eq!(
                    s.target.password.as_ref().map(|p| p.expose()),
                    Some("foobarred"),
                    "case {i}"
                );
            }
        }
        let s = stream(
            &[
                ("stream", "s"),
                ("consumerGroup", "g"),
                ("lagCount", "5"),
                ("activationLagCount", "3"),
                ("address", "r:1"),
            ],
            &[],
            &[],
        )
        .unwrap();
        assert_eq!(s.activation, 3);
    }

    /// KEDA's `TestParseRedisStreamsMetadataForInvalidCases`.
    #[test]
    fn refuses_keda_invalid_streams_cases() {
        let env: Pairs = &[
            ("REDIS_SERVER", "myredis:6379"),
            ("REDIS_HOST", "myredis"),
            ("REDIS_PORT", "6379"),
            ("REDIS_PASSWORD", ""),
        ];
        let cases: &[(&str, Pairs)] = &[
            (
                "missing address as well as host/port",
                &[
                    ("stream", "my-stream"),
                    ("pendingEntriesCount", "5"),
                    ("lagCount", "5"),
                    ("consumerGroup", "my-stream-consumer-group"),
                ],
            ),
            (
                "host present but missing port",
                &[
                    ("stream", "my-stream"),
                    ("pendingEntriesCount", "5"),
                    ("lagCount", "5"),
                    ("consumerGroup", "my-stream-consumer-group"),
                    ("host", "REDIS_HOST"),
                ],
            ),
            (
                "port present but missing host",
                &[
                    ("stream", "my-stream"),
                    ("pendingEntriesCount", "5"),
                    ("lagCount", "5"),
                    ("consumerGroup", "my-stream-consumer-group"),
                    ("port", "REDIS_PORT"),
                ],
            ),
            (
                "missing stream",
                &[
                    ("pendingEntriesCount", "5"),
                    ("consumerGroup", "my-stream-consumer-group"),
                    ("address", "REDIS_HOST"),
                ],
            ),
            (
                "invalid lag",
                &[
                    ("stream", "my-stream"),
                    ("consumerGroup", "my-stream-consumer-group"),
                    ("pendingEntriesCount", "5"),
                    ("lagCount", "junk"),
                    ("host", "REDIS_HOST"),
                    ("port", "REDIS_PORT"),
                    ("databaseIndex", "0"),
                    ("enableTLS", "false"),
                ],
            ),
            (
                "invalid pendingEntriesCount",
                &[
                    ("stream", "my-stream"),
                    ("consumerGroup", "my-stream-consumer-group"),
                    ("pendingEntriesCount", "junk"),
                    ("host", "REDIS_HOST"),
                    ("port", "REDIS_PORT"),
                    ("databaseIndex", "0"),
                    ("enableTLS", "false"),
                ],
            ),
            (
                "invalid streamLength",
                &[
                    ("stream", "my-stream"),
                    ("streamLength", "junk"),
                    ("host", "REDIS_HOST"),
                    ("port", "REDIS_PORT"),
                    ("databaseIndex", "0"),
                    ("enableTLS", "false"),
                ],
            ),
            (
                "invalid databaseIndex",
                &[
                    ("stream", "my-stream"),
                    ("consumerGroup", "my-stream-consumer-group"),
                    ("pendingEntriesCount", "15"),
                    ("address", "REDIS_SERVER"),
                    ("databaseIndex", "junk"),
                    ("enableTLS", "false"),
                ],
            ),
            (
                "invalid enableTLS",
                &[
                    ("stream", "my-stream"),
                    ("consumerGroup", "my-stream-consumer-group"),
                    ("pendingEntriesCount", "15"),
                    ("address", "REDIS_SERVER"),
                    ("databaseIndex", "1"),
                    ("enableTLS", "no"),
                ],
            ),
        ];
        for (name, meta) in cases {
            assert!(stream(meta, &[], env).is_err(), "{name}: expected an error");
        }
    }

    #[test]
    fn secrets_stay_out_of_keys_and_debug() {
        let s = list(
            &[("listName", "l"), ("address", "r:1")],
            &[("password", "hunter2")],
        )
        .unwrap();
        assert!(!s.coalesce_key().contains("hunter2"));
        assert!(!format!("{:?}", s.target).contains("hunter2"));
        let other = list(
            &[("listName", "l"), ("address", "r:1")],
            &[("password", "other")],
        )
        .unwrap();
        assert_ne!(
            s.coalesce_key(),
            other.coalesce_key(),
            "other credentials, other reading"
        );
    }

    /// What a parsed cluster or sentinel target should hold.
    #[derive(Default)]
    struct Want {
        addresses: &'static [&'static str],
        username: Option<&'static str>,
        password: Option<&'static str>,
        /// `Some(unsafeSsl)` when TLS is on.
        tls: Option<bool>,
        master: &'static str,
        sentinel_username: Option<&'static str>,
        sentinel_password: Option<&'static str>,
    }

    const ABC: &[&str] = &["a:1", "b:2", "c:3"];
    const HOSTS: Pairs = &[("hosts", "a, b, c"), ("ports", "1, 2, 3")];

    fn check_target(case: &str, t: &Target, want: &Want, sentinel: bool) {
        assert_eq!(t.addresses, want.addresses, "{case}");
        assert_eq!(t.username.as_deref(), want.username, "{case}");
        assert_eq!(
            t.password.as_ref().map(|p| p.expose()),
            want.password,
            "{case}"
        );
        assert_eq!(t.tls.as_ref().map(|t| t.unsafe_ssl), want.tls, "{case}");
        match &t.topology {
            redis_client::Topology::Sentinel(s) => {
                assert!(sentinel, "{case}");
                assert_eq!(s.master, want.master, "{case}");
                assert_eq!(s.username.as_deref(), want.sentinel_username, "{case}");
                assert_eq!(
                    s.password.as_ref().map(|p| p.expose()),
                    want.sentinel_password,
                    "{case}"
                );
            }
            other => {
                assert!(!sentinel, "{case}");
                assert_eq!(other, &redis_client::Topology::Cluster, "{case}");
            }
        }
    }

    fn with(
        base: Pairs<'static>,
        extra: &[(&'static str, &'static str)],
    ) -> Vec<(&'static str, &'static str)> {
        let mut v: Vec<(&str, &str)> = base.to_vec();
        v.extend_from_slice(extra);
        v
    }

    /// KEDA's `TestParseRedisClusterMetadata` and `TestParseRedisSentinelMetadata` (the
    /// same cases; the sentinel ones only for redis-sentinel): (name, metadata, auth,
    /// Err(message part) or Ok(target)), each with listName `mylist` unless it says.
    #[test]
    fn parses_keda_cluster_and_sentinel_list_tables() {
        type Case = (
            &'static str,
            Vec<(&'static str, &'static str)>,
            Pairs<'static>,
            Result<Want, &'static str>,
        );
        let list = |extra: &[(&'static str, &'static str)]| with(&[("listName", "mylist")], extra);
        let common: Vec<Case> = vec![
            (
                "empty metadata",
                vec![],
                &[],
                Err("no addresses or hosts given"),
            ),
            (
                "unequal number of hosts/ports",
                list(&[("hosts", "a, b, c"), ("ports", "1, 2")]),
                &[],
                Err("not enough hosts or ports given"),
            ),
            (
                "no list name",
                with(HOSTS, &[("listLength", "5")]),
                &[],
                Err("listName: required"),
            ),
            (
                "invalid list length",
                with(HOSTS, &[("listName", "mylist"), ("listLength", "invalid")]),
                &[],
                Err("listLength: \"invalid\" is not a whole number"),
            ),
            (
                "address is defined in auth params",
                list(&[]),
                &[("addresses", ":7001, :7002")],
                Ok(Want {
                    addresses: &[":7001", ":7002"],
                    ..Want::default()
                }),
            ),
            (
                "hosts and ports given in auth params",
                list(&[]),
                &[("hosts", "   a, b,    c "), ("ports", "1, 2, 3")],
                Ok(Want {
                    addresses: ABC,
                    ..Want::default()
                }),
            ),
            (
                "username given in authParams",
                with(HOSTS, &[("listName", "mylist")]),
                &[("username", "username")],
                Ok(Want {
                    addresses: ABC,
                    username: Some("username"),
                    ..Want::default()
                }),
            ),
            (
                "username given in metadata",
                with(HOSTS, &[("listName", "mylist"), ("username", "username")]),
                &[],
                Ok(Want {
                    addresses: ABC,
                    username: Some("username"),
                    ..Want::default()
                }),
            ),
            (
                "username given in metadata from env",
                with(
                    HOSTS,
                    &[
                        ("listName", "mylist"),
                        ("usernameFromEnv", "REDIS_USERNAME"),
                    ],
                ),
                &[],
                Ok(Want {
                    addresses: ABC,
                    username: Some("none"),
                    ..Want::default()
                }),
            ),
            (
                "password given in authParams",
                with(HOSTS, &[("listName", "mylist")]),
                &[("password", "password")],
                Ok(Want {
                    addresses: ABC,
                    password: Some("password"),
                    ..Want::default()
                }),
            ),
            (
                "password given in metadata from env",
                with(
                    HOSTS,
                    &[
                        ("listName", "mylist"),
                        ("passwordFromEnv", "REDIS_PASSWORD"),
                    ],
                ),
                &[],
                Ok(Want {
                    addresses: ABC,
                    password: Some("none"),
                    ..Want::default()
                }),
            ),
            (
                "tls enabled without setting unsafeSsl",
                list(&[("enableTLS", "true")]),
                &[("addresses", ":7001, :7002")],
                Ok(Want {
                    addresses: &[":7001", ":7002"],
                    tls: Some(false),
                    ..Want::default()
                }),
            ),
            (
                "tls enabled with unsafeSsl true",
                list(&[("enableTLS", "true"), ("unsafeSsl", "true")]),
                &[("addresses", ":7001, :7002")],
                Ok(Want {
                    addresses: &[":7001", ":7002"],
                    tls: Some(true),
                    ..Want::default()
                }),
            ),
        ];
        let m = |extra: &[(&'static str, &'static str)]| {
            with(HOSTS, &with(&[("listName", "mylist")], extra))
        };
        let sentinel_only: Vec<Case> = vec![
            (
                "sentinelUsername given in authParams",
                m(&[]),
                &[("sentinelUsername", "sentinelUsername")],
                Ok(Want {
                    addresses: ABC,
                    sentinel_username: Some("sentinelUsername"),
                    ..Want::default()
                }),
            ),
            (
                "sentinelUsername given in metadata",
                m(&[("sentinelUsername", "sentinelUsername")]),
                &[],
                Ok(Want {
                    addresses: ABC,
                    sentinel_username: Some("sentinelUsername"),
                    ..Want::default()
                }),
            ),
            (
                "sentinelUsername given in metadata from env",
                m(&[("sentinelUsernameFromEnv", "REDIS_SENTINEL_USERNAME")]),
                &[],
                Ok(Want {
                    addresses: ABC,
                    sentinel_username: Some("none"),
                    ..Want::default()
                }),
            ),
            (
                "sentinelPassword given in authParams",
                m(&[]),
                &[("sentinelPassword", "sentinelPassword")],
                Ok(Want {
                    addresses: ABC,
                    sentinel_password: Some("sentinelPassword"),
                    ..Want::default()
                }),
            ),
            (
                "sentinelPassword given in metadata from env",
                m(&[("sentinelPasswordFromEnv", "REDIS_SENTINEL_PASSWORD")]),
                &[],
                Ok(Want {
                    addresses: ABC,
                    sentinel_password: Some("none"),
                    ..Want::default()
                }),
            ),
            (
                "sentinelMaster given in authParams",
                m(&[]),
                &[("sentinelMaster", "sentinelMaster")],
                Ok(Want {
                    addresses: ABC,
                    master: "sentinelMaster",
                    ..Want::default()
                }),
            ),
            (
                "sentinelMaster given in metadata",
                m(&[("sentinelMaster", "sentinelMaster")]),
                &[],
                Ok(Want {
                    addresses: ABC,
                    master: "sentinelMaster",
                    ..Want::default()
                }),
            ),
            (
                "sentinelMaster given in metadata from env",
                m(&[("sentinelMasterFromEnv", "REDIS_SENTINEL_MASTER")]),
                &[],
                Ok(Want {
                    addresses: ABC,
                    master: "none",
                    ..Want::default()
                }),
            ),
        ];
        let run = |type_: &str, cases: &[Case]| {
            for (name, meta, auth, want) in cases {
                let case = format!("{type_}: {name}");
                let got = RedisScaler::new(
                    &input(type_, 0, meta, auth, SENTINEL_ENV),
                    &Shared::default(),
                );
                match (got, want) {
                    (Ok(s), Ok(want)) => {
                        check_target(&case, &s.target, want, type_ == "redis-sentinel");
                        assert_eq!(s.reading, Reading::Length("mylist".into()), "{case}");
                        assert_eq!(s.target_value, 5, "{case}: listLength defaults to 5");
                    }
                    (Err(e), Err(part)) => assert!(e.to_string().contains(part), "{case}: {e}"),
                    (Ok(_), Err(part)) => panic!("{case}: accepted, want {part:?}"),
                    (Err(e), Ok(_)) => panic!("{case}: {e}"),
                }
            }
        };
        run("redis-cluster", &common);
        run("redis-sentinel", &common);
        run("redis-sentinel", &sentinel_only);
    }

    /// KEDA's `testRedisResolvedEnv` with the sentinel variables.
    const SENTINEL_ENV: Pairs = &[
        ("REDIS_HOST", "none"),
        ("REDIS_PORT", "6379"),
        ("REDIS_USERNAME", "none"),
        ("REDIS_PASSWORD", "none"),
        ("REDIS_SENTINEL_MASTER", "none"),
        ("REDIS_SENTINEL_USERNAME", "none"),
        ("REDIS_SENTINEL_PASSWORD", "none"),
    ];

    /// KEDA's `TestParseRedisClusterStreamsMetadata` and
    /// `TestParseRedisSentinelStreamsMetadata`: the reading chosen, its target and the
    /// activation, for both types (the connection fields are the list tables' above).
    #[test]
    fn parses_keda_cluster_and_sentinel_streams_tables() {
        let pending = |n: i64| {
            (
                Reading::Pending {
                    stream: "my-stream".into(),
                    group: "consumer1".into(),
                },
                n,
            )
        };
        let lag = |n: i64| {
            (
                Reading::Lag {
                    stream: "my-stream".into(),
                    group: "consumer1".into(),
                },
                n,
            )
        };
        let length = |n: i64| (Reading::StreamLength("my-stream".into()), n);
        let seeds: Pairs = &[("addresses", ":7001, :7002")];
        type Case<'a> = (Pairs<'a>, Pairs<'a>, Result<(Reading, i64, i64), &'a str>);
        let cases: Vec<Case> = vec![
            (&[], &[], Err("no addresses or hosts given")),
            (
                &[("hosts", "a, b, c"), ("ports", "1, 2")],
                &[],
                Err("not enough hosts or ports given"),
            ),
            (
                &[
                    ("hosts", "a, b, c"),
                    ("ports", "1, 2, 3"),
                    ("pendingEntriesCount", "5"),
                ],
                &[],
                Err("stream: required"),
            ),
            (
                &[
                    ("stream", "my-stream"),
                    ("hosts", "a, b, c"),
                    ("ports", "1, 2, 3"),
                    ("consumerGroup", "consumer1"),
                    ("pendingEntriesCount", "invalid"),
                ],
                &[],
                Err("pendingEntriesCount: \"invalid\" is not a whole number"),
            ),
            (
                &[
                    ("stream", "my-stream"),
                    ("hosts", "a, b, c"),
                    ("ports", "1, 2, 3"),
                    ("consumerGroup", "consumer1"),
                    ("pendingEntriesCount", "5"),
                    ("lagCount", "junk"),
                ],
                &[],
                Err("lagCount: \"junk\" is not a whole number"),
            ),
            (
                &[
                    ("stream", "my-stream"),
                    ("lagCount", "6"),
                    ("activationLagCount", "3"),
                    ("consumerGroup", "consumer1"),
                ],
                seeds,
                Ok({
                    let (r, n) = lag(6);
                    (r, n, 3)
                }),
            ),
            (
                &[
                    ("stream", "my-stream"),
                    ("lagCount", "7"),
                    ("activationLagCount", "0"),
                    ("consumerGroup", "consumer1"),
                ],
                seeds,
                Ok({
                    let (r, n) = lag(7);
                    (r, n, 0)
                }),
            ),
            (
                &[
                    ("stream", "my-stream"),
                    ("pendingEntriesCount", "5"),
                    ("consumerGroup", "consumer1"),
                ],
                &[("hosts", "   a, b,    c "), ("ports", "1, 2, 3")],
                Ok({
                    let (r, n) = pending(5);
                    (r, n, 0)
                }),
            ),
            (
                &[("stream", "my-stream")],
                seeds,
                Ok({
                    let (r, n) = length(5);
                    (r, n, 0)
                }),
            ),
            (
                &[("stream", "my-stream"), ("consumerGroup", "consumer1")],
                seeds,
                Ok({
                    let (r, n) = pending(5);
                    (r, n, 0)
                }),
            ),
            (
                &[
                    ("hosts", "a"),
                    ("ports", "1"),
                    ("stream", "my-stream"),
                    ("streamLength", "15"),
                ],
                &[],
                Ok({
                    let (r, n) = length(15);
                    (r, n, 0)
                }),
            ),
            (
                &[
                    ("hosts", "a"),
                    ("ports", "1"),
                    ("stream", "my-stream"),
                    ("streamLength", "15"),
                    ("lagCount", "70"),
                    ("activationLagCount", "3"),
                    ("consumerGroup", "consumer1"),
                ],
                &[],
                Ok({
                    let (r, n) = lag(70);
                    (r, n, 3)
                }),
            ),
            (
                &[
                    ("hosts", "a"),
                    ("ports", "1"),
                    ("stream", "my-stream"),
                    ("streamLength", "15"),
                    ("pendingEntriesCount", "5"),
                    ("consumerGroup", "consumer1"),
                ],
                &[],
                Ok({
                    let (r, n) = pending(5);
                    (r, n, 0)
                }),
            ),
            (
                &[
                    ("hosts", "a"),
                    ("ports", "1"),
                    ("stream", "my-stream"),
                    ("streamLength", "15"),
                    ("pendingEntriesCount", "30"),
                ],
                &[],
                Ok({
                    let (r, n) = length(15);
                    (r, n, 0)
                }),
            ),
            // KEDA's "tls in auth param" takes keyPassword; Swell refuses an encrypted key.
            (
                &[
                    ("hosts", "a, b, c"),
                    ("ports", "1, 2, 3"),
                    ("stream", "my-stream"),
                    ("consumerGroup", "consumer1"),
                ],
                &[
                    ("password", "password"),
                    ("tls", "enable"),
                    ("ca", "caaa"),
                    ("cert", "ceert"),
                    ("key", "keey"),
                    ("keyPassword", "keeyPassword"),
                ],
                Err("keyPassword (an encrypted private key) is not supported"),
            ),
        ];
        for type_ in ["redis-cluster-streams", "redis-sentinel-streams"] {
            for (i, (meta, auth, want)) in cases.iter().enumerate() {
                let got = RedisScaler::new(
                    &input(type_, 0, meta, auth, SENTINEL_ENV),
                    &Shared::default(),
                );
                match (got, want) {
                    (Ok(s), Ok((reading, value, activation))) => {
                        assert_eq!(&s.reading, reading, "{type_} case {i}");
                        assert_eq!(
                            (s.target_value, s.activation),
                            (*value, *activation),
                            "{type_} case {i}"
                        );
                        assert_eq!(s.metric_spec().name(), "s0-redis-streams-my-stream");
                        assert_eq!(s.scaler, type_);
                    }
                    (Err(e), Err(part)) => {
                        assert!(e.to_string().contains(part), "{type_} case {i}: {e}")
                    }
                    (Ok(_), Err(part)) => panic!("{type_} case {i}: accepted, want {part:?}"),
                    (Err(e), Ok(_)) => panic!("{type_} case {i}: {e}"),
                }
            }
        }
    }

    /// The topology follows the type; a cluster has database 0 whatever databaseIndex
    /// says (KEDA does not pass it on); each type counts its own upstream calls and names
    /// its metric as KEDA; another topology on the same addresses is another connection.
    #[test]
    fn types_pick_the_topology() {
        let meta: Pairs = &[
            ("listName", "mylist"),
            ("addresses", "a:1, b:2"),
            ("databaseIndex", "3"),
        ];
        let target = |type_: &str| {
            RedisScaler::new(&input(type_, 1, meta, &[], &[]), &Shared::default()).unwrap()
        };
        let standalone = target("redis");
        assert_eq!(
            standalone.target.addresses,
            vec!["a:1"],
            "a standalone server is the first"
        );
        assert_eq!(standalone.target.db, 3);
        let cluster = target("redis-cluster");
        assert_eq!(cluster.target.topology, redis_client::Topology::Cluster);
        assert_eq!((cluster.target.addresses.len(), cluster.target.db), (2, 0));
        assert_eq!(cluster.metric_spec().name(), "s1-redis-mylist");
        assert_eq!(cluster.scaler, "redis-cluster");
        let sentinel = target("redis-sentinel");
        assert_eq!(sentinel.target.db, 3);
        assert!(matches!(
            sentinel.target.topology,
            redis_client::Topology::Sentinel(_)
        ));
        assert_ne!(cluster.coalesce_key(), sentinel.coalesce_key());
        assert_eq!(cluster.target.label(), "redis cluster a:1,b:2");
        assert_eq!(
            sentinel.target.label(),
            "redis sentinel a:1,b:2 master \"\""
        );
        // Sentinel secrets stay out of keys, labels and Debug.
        let s = RedisScaler::new(
            &input(
                "redis-sentinel",
                0,
                meta,
                &[("sentinelPassword", "hunter2"), ("sentinelMaster", "m")],
                &[],
            ),
            &Shared::default(),
        )
        .unwrap();
        for shown in [
            s.coalesce_key(),
            s.target.label(),
            format!("{:?}", s.target),
        ] {
            assert!(!shown.contains("hunter2"), "{shown}");
        }
    }

    #[test]
    fn reads_the_server_version() {
        assert_eq!(
            redis_major_version("# Server\r\nredis_version:7.0.15\r\nredis_git_sha1:0\r\n"),
            Ok(7)
        );
        assert_eq!(redis_major_version("redis_version:6.2.1\n"), Ok(6));
        assert!(redis_major_version("nothing").is_err());
        assert!(redis_major_version("redis_version:x.1").is_err());
    }
}
