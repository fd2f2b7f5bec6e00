//! Redis connections shared by the `redis` and `redis-streams` triggers: how KEDA's
//! `redisConnectionInfo` parameters are read, and one multiplexed connection per server,
//! credentials and TLS settings, reused by every trigger that names them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, IntoConnectionInfo as _, RedisConnectionInfo,
};

use crate::tls::Secret;
use crate::upstream::UpstreamError;
use crate::{Field, Params, ScalerError, Source};

const ADDRESS: Field = Field::new("address")
    .from(&[Source::Metadata, Source::Auth])
    .hint("host:port of the Redis server, e.g. redis.cache:6379");
const ADDRESSES: Field = Field::new("addresses").from(&[Source::Metadata, Source::Auth]);
const HOST: Field = Field::new("host").from(&[Source::Metadata, Source::Auth]);
const HOSTS: Field = Field::new("hosts").from(&[Source::Metadata, Source::Auth]);
const PORT: Field = Field::new("port").from(&[Source::Metadata, Source::Auth]);
const PORTS: Field = Field::new("ports").from(&[Source::Metadata, Source::Auth]);
const USERNAME: Field = Field::new("username").from(&[Source::Metadata, Source::Auth]);
const PASSWORD: Field = Field::new("password").from(&[Source::Metadata, Source::Auth]);
const DATABASE_INDEX: Field = Field::new("databaseIndex");
const ENABLE_TLS: Field = Field::new("enableTLS");
const TLS: Field = Field::new("tls").from(&[Source::Auth]);
const UNSAFE_SSL: Field = Field::new("unsafeSsl");
const CERT: Field = Field::new("cert").from(&[Source::Auth]);
/// KEDA reads the client certificate as `Cert` or `cert`.
const CERT_CAPITAL: Field = Field::new("Cert").from(&[Source::Auth]);
const KEY: Field = Field::new("key").from(&[Source::Auth]);
const KEY_PASSWORD: Field = Field::new("keyPassword").from(&[Source::Auth]);
const CA: Field = Field::new("ca").from(&[Source::Auth]);

/// The connection parameters every Redis trigger reads.
pub const FIELDS: &[Field] = &[
    ADDRESS,
    ADDRESSES,
    HOST,
    HOSTS,
    PORT,
    PORTS,
    USERNAME,
    PASSWORD,
    DATABASE_INDEX,
    ENABLE_TLS,
    TLS,
    UNSAFE_SSL,
    CERT,
    CERT_CAPITAL,
    KEY,
    KEY_PASSWORD,
    CA,
];

/// How long connecting, and then each command, may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// TLS towards the server (`enableTLS: true` or `tls: enable`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Tls {
    /// PEM CA certificates to trust instead of the system roots.
    pub ca: Option<String>,
    /// PEM client certificate and key, for mutual TLS.
    pub client_cert: Option<(String, Secret)>,
    /// Do not check the server's certificate.
    pub unsafe_ssl: bool,
}

/// One Redis server as a trigger reaches it: what makes two connections different.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// `host:port`, as the trigger gave it.
    pub address: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub db: i64,
    pub tls: Option<Tls>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("address", &self.address)
            .field("username", &self.username)
            .field("password", &self.password.is_some())
            .field("db", &self.db)
            .field("tls", &self.tls.as_ref().map(|t| t.unsafe_ssl))
            .finish()
    }
}

impl Target {
    /// A key naming this target without its secrets, for coalescing.
    pub fn key(&self) -> String {
        use std::hash::{Hash as _, Hasher as _};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.hash(&mut h);
        format!("{}|{}|{:x}", self.address, self.db, h.finish())
    }
}

/// A comma-separated list, trimmed, as KEDA reads `[]string` parameters.
fn list(p: &mut Params<'_>, one: Field, many: Field) -> Vec<String> {
    p.opt_string(one)
        .or_else(|| p.opt_string(many))
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// Reads KEDA's `redisConnectionInfo` (plus `databaseIndex` and the TLS switches) into `p`.
/// Returns every address given: a standalone server uses the first.
pub fn parse(p: &mut Params<'_>) -> (Vec<String>, Target) {
    let mut addresses = list(p, ADDRESS, ADDRESSES);
    let hosts = list(p, HOST, HOSTS);
    let ports = list(p, PORT, PORTS);
    let unequal = !hosts.is_empty() && !ports.is_empty() && hosts.len() != ports.len();
    if !hosts.is_empty() && !ports.is_empty() {
        if !unequal {
            addresses.extend(hosts.iter().zip(&ports).map(|(h, p)| join_host_port(h, p)));
        } else {
            p.error(
                "hosts",
                format!(
                    "not enough hosts or ports given: {} hosts and {} ports; give one port per host",
                    hosts.len(),
                    ports.len()
                ),
            );
        }
    }
    let deferred = ["address", "addresses", "host", "hosts", "port", "ports"]
        .iter()
        .any(|f| p.is_deferred(f));
    if addresses.is_empty() && !unequal && !deferred {
        p.error(
            "address",
            "no addresses or hosts given; set address (host:port), or host and port, in trigger \
             metadata or the TriggerAuthentication",
        );
    }
    let username = p.opt_string(USERNAME);
    let password = p.opt_string(PASSWORD).map(Secret::new);
    let db: i64 = p.or(DATABASE_INDEX, "a whole number", 0);
    let tls = parse_tls(p);
    let target = Target {
        address: addresses.first().cloned().unwrap_or_default(),
        username,
        password,
        db,
        tls,
    };
    (addresses, target)
}

fn join_host_port(host: &str, port: &str) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// KEDA's `SetEnableTLS`: `enableTLS` (a boolean) in the metadata or `tls` (enable/disable)
/// in the TriggerAuthentication, not both.
fn parse_tls(p: &mut Params<'_>) -> Option<Tls> {
    let in_metadata = p.opt_string(ENABLE_TLS).is_some();
    let in_auth = p.opt_string(TLS).is_some();
    if in_metadata && in_auth {
        p.error(
            "enableTLS",
            "unable to set `tls` in both ScaledObject and TriggerAuthentication together; keep one",
        );
    }
    let on = if in_auth {
        p.one_of(TLS, &["enable", "disable"], "disable") == "enable"
    } else {
        p.bool(ENABLE_TLS, false)
    };
    let unsafe_ssl = p.bool(UNSAFE_SSL, false);
    let cert = p.opt_string(CERT_CAPITAL).or_else(|| p.opt_string(CERT));
    let (key, ca) = (p.opt_string(KEY), p.opt_string(CA));
    if p.opt_string(KEY_PASSWORD).is_some() {
        p.error(
            "tls",
            "keyPassword (an encrypted private key) is not supported by Swell yet; give key \
             unencrypted in PKCS#8, PKCS#1 or SEC1 PEM",
        );
    }
    if !on {
        return None;
    }
    if cert.is_some() != key.is_some() && !p.is_deferred("cert") && !p.is_deferred("key") {
        p.error("tls", "cert and key must both be provided or both be empty");
    }
    Some(Tls {
        ca,
        client_cert: cert.zip(key.map(Secret::new)),
        unsafe_ssl,
    })
}

/// Why a Redis call failed, as status and events show it: the server and the cause, never
/// the credentials.
pub fn upstream(target: &Target, e: &redis::RedisError) -> ScalerError {
    use crate::upstream::UpstreamKind as K;
    let kind = if e.kind() == redis::ErrorKind::AuthenticationFailed
        || e.to_string().contains("NOAUTH")
        || e.to_string().contains("NOPERM")
    {
        K::Auth
    } else if e.is_timeout() {
        K::Timeout
    } else if e.is_connection_refusal() || e.is_io_error() {
        K::Connect
    } else {
        K::Other
    };
    UpstreamError::new(kind, format!("redis {}: {e}", target.address)).into()
}

/// A Redis answer Swell cannot use (`kind`), naming the server.
pub fn refused(
    target: &Target,
    kind: crate::upstream::UpstreamKind,
    why: impl std::fmt::Display,
) -> ScalerError {
    UpstreamError::new(kind, format!("redis {}: {why}", target.address)).into()
}

fn bad_target(target: &Target, why: impl std::fmt::Display) -> ScalerError {
    refused(target, crate::upstream::UpstreamKind::BadResponse, why)
}

type Slot = Arc<tokio::sync::Mutex<Option<MultiplexedConnection>>>;

/// One connection per [`Target`], made on first use and made again after it broke.
#[derive(Default)]
pub struct RedisClients {
    slots: Mutex<HashMap<Target, Slot>>,
}

impl RedisClients {
    /// Connections made or being made.
    pub fn len(&self) -> usize {
        self.slots.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Runs one command on the target's connection.
    pub async fn query<T: redis::FromRedisValue>(
        &self,
        target: &Target,
        cmd: &redis::Cmd,
    ) -> Result<T, ScalerError> {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.entry(target.clone()).or_default().clone()
        };
        let mut conn = {
            let mut guard = slot.lock().await;
            match guard.as_ref() {
                Some(c) => c.clone(),
                None => {
                    let c = connect(target).await?;
                    *guard = Some(c.clone());
                    c
                }
            }
        };
        let answer = cmd.query_async(&mut conn).await;
        if let Err(e) = &answer
            && (e.is_connection_dropped() || e.is_io_error() || e.is_timeout())
        {
            // Reconnect on the next reading.
            *slot.lock().await = None;
        }
        answer.map_err(|e| upstream(target, &e))
    }
}

fn address(target: &Target) -> Result<(String, u16), ScalerError> {
    let (host, port) = target.address.rsplit_once(':').ok_or_else(|| {
        bad_target(
            target,
            "the address is not host:port; set address to e.g. redis:6379",
        )
    })?;
    let port = port
        .parse()
        .map_err(|_| bad_target(target, format!("port {port:?} is not a number")))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok((host.to_string(), port))
}

async fn connect(target: &Target) -> Result<MultiplexedConnection, ScalerError> {
    let (host, port) = address(target)?;
    let addr = match &target.tls {
        None => ConnectionAddr::Tcp(host, port),
        Some(t) => ConnectionAddr::TcpTls {
            host,
            port,
            insecure: t.unsafe_ssl,
            tls_params: None,
        },
    };
    let mut settings = RedisConnectionInfo::default().set_db(target.db);
    if let Some(u) = &target.username {
        settings = settings.set_username(u);
    }
    if let Some(pw) = &target.password {
        settings = settings.set_password(pw.expose());
    }
    let info = addr
        .into_connection_info()
        .map_err(|e| upstream(target, &e))?
        .set_redis_settings(settings);
    let client = match &target.tls {
        Some(t) if t.ca.is_some() || t.client_cert.is_some() => {
            let certs = redis::TlsCertificates {
                client_tls: t.client_cert.as_ref().map(|(c, k)| redis::ClientTlsConfig {
                    client_cert: c.as_bytes().to_vec(),
                    client_key: k.expose().as_bytes().to_vec(),
                }),
                root_cert: t.ca.as_ref().map(|c| c.as_bytes().to_vec()),
            };
            Client::build_with_tls(info, certs)
        }
        _ => Client::open(info),
    }
    .map_err(|e| upstream(target, &e))?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(TIMEOUT))
        .set_response_timeout(Some(TIMEOUT));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|e| upstream(target, &e))
}
