//! Redis connections shared by the `redis*` triggers: how KEDA's `redisConnectionInfo`
//! parameters are read, and one connection per topology (a standalone server, a cluster, a
//! master found through sentinels), servers, credentials and TLS settings, reused by every
//! trigger that names them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::sentinel::{SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, IntoConnectionInfo as _, RedisConnectionInfo,
    TlsMode,
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
const SENTINEL_MASTER: Field = Field::new("sentinelMaster")
    .from(&[Source::Metadata, Source::Auth])
    .hint("the name the sentinels monitor the master under, e.g. mymaster");
const SENTINEL_USERNAME: Field =
    Field::new("sentinelUsername").from(&[Source::Metadata, Source::Auth]);
const SENTINEL_PASSWORD: Field =
    Field::new("sentinelPassword").from(&[Source::Metadata, Source::Auth]);

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

/// The parameters only the `redis-sentinel*` triggers read.
pub const SENTINEL_FIELDS: &[Field] = &[SENTINEL_MASTER, SENTINEL_USERNAME, SENTINEL_PASSWORD];

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

/// How the Redis servers are deployed, as the trigger type says.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Topology {
    /// `redis`, `redis-streams`: one server, the first address.
    Standalone,
    /// `redis-cluster*`: the addresses are seed nodes; each key is read on its slot's master.
    Cluster,
    /// `redis-sentinel*`: the addresses are sentinels, which name the current master.
    Sentinel(Sentinel),
}

/// How a `redis-sentinel*` trigger asks the sentinels.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Sentinel {
    /// `sentinelMaster`: the name the sentinels monitor the master under.
    pub master: String,
    /// `sentinelUsername`, `sentinelPassword`: the sentinels' own credentials.
    pub username: Option<String>,
    pub password: Option<Secret>,
}

impl std::fmt::Debug for Sentinel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sentinel")
            .field("master", &self.master)
            .field("username", &self.username)
            .field("password", &self.password.is_some())
            .finish()
    }
}

/// The Redis servers a trigger reaches, and how: what makes two connections different.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Target {
    pub topology: Topology,
    /// `host:port` as the trigger gave them: the server (standalone), the seed nodes
    /// (cluster) or the sentinels.
    pub addresses: Vec<String>,
    /// The data servers' credentials (not the sentinels').
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// `databaseIndex`; always 0 on a cluster, which has only that one (KEDA ignores it).
    pub db: i64,
    /// TLS towards every server, sentinels included (as go-redis's failover client).
    pub tls: Option<Tls>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("topology", &self.topology)
            .field("addresses", &self.addresses)
            .field("username", &self.username)
            .field("password", &self.password.is_some())
            .field("db", &self.db)
            .field("tls", &self.tls.as_ref().map(|t| t.unsafe_ssl))
            .finish()
    }
}

impl Target {
    /// One standalone server, without credentials or TLS.
    pub fn standalone(address: impl Into<String>) -> Target {
        Target {
            topology: Topology::Standalone,
            addresses: vec![address.into()],
            username: None,
            password: None,
            db: 0,
            tls: None,
        }
    }

    /// A key naming this target without its secrets, for coalescing.
    pub fn key(&self) -> String {
        use std::hash::{Hash as _, Hasher as _};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.hash(&mut h);
        format!("{}|{}|{:x}", self.addresses.join(","), self.db, h.finish())
    }

    /// The servers as errors name them: `redis host:port`, `redis cluster a:1,b:2`,
    /// `redis sentinel s:26379 master mymaster`.
    pub fn label(&self) -> String {
        let addresses = self.addresses.join(",");
        match &self.topology {
            Topology::Standalone => format!("redis {addresses}"),
            Topology::Cluster => format!("redis cluster {addresses}"),
            Topology::Sentinel(s) => format!("redis sentinel {addresses} master {:?}", s.master),
        }
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

/// Reads KEDA's `redisConnectionInfo` (plus `databaseIndex` and the TLS switches) into `p`
/// for a trigger of `kind`: the sentinel fields for [`Kind::Sentinel`] only.
pub fn parse(p: &mut Params<'_>, kind: Kind) -> Target {
    let addresses = parse_addresses(p);
    let username = p.opt_string(USERNAME);
    let password = p.opt_string(PASSWORD).map(Secret::new);
    let db: i64 = p.or(DATABASE_INDEX, "a whole number", 0);
    let tls = parse_tls(p);
    let (topology, addresses, db) = match kind {
        Kind::Standalone => (
            Topology::Standalone,
            addresses.into_iter().take(1).collect(),
            db,
        ),
        Kind::Cluster => (Topology::Cluster, addresses, 0),
        Kind::Sentinel => {
            // KEDA lets the master name be empty; the sentinels then know no such master,
            // which the reading reports (see `connect_sentinel`).
            let sentinel = Sentinel {
                master: p.opt_string(SENTINEL_MASTER).unwrap_or_default(),
                username: p.opt_string(SENTINEL_USERNAME),
                password: p.opt_string(SENTINEL_PASSWORD).map(Secret::new),
            };
            (Topology::Sentinel(sentinel), addresses, db)
        }
    };
    Target {
        topology,
        addresses,
        username,
        password,
        db,
        tls,
    }
}

/// Which topology a trigger type names (its `redis-cluster` / `redis-sentinel` prefix).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Standalone,
    Cluster,
    Sentinel,
}

/// `address`/`addresses`, then `host`/`hosts` joined with `port`/`ports`, as KEDA's
/// `validateRedisAddress`.
pub fn parse_addresses(p: &mut Params<'_>) -> Vec<String> {
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
    addresses
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

/// Why a Redis call failed, as status and events show it: the servers (`at`, a
/// [`Target::label`]) and the cause, never the credentials.
fn failed(at: &str, e: &redis::RedisError) -> ScalerError {
    use crate::upstream::UpstreamKind as K;
    let kind = if e.kind() == redis::ErrorKind::AuthenticationFailed
        || e.to_string().contains("NOAUTH")
        || e.to_string().contains("NOPERM")
        || e.to_string().contains("WRONGPASS")
    {
        K::Auth
    } else if e.kind() == redis::ErrorKind::MasterNameNotFoundBySentinel {
        K::NotFound
    } else if e.is_timeout() {
        K::Timeout
    } else if e.is_connection_refusal() || e.is_io_error() {
        K::Connect
    } else {
        K::Other
    };
    UpstreamError::new(kind, format!("{at}: {e}")).into()
}

/// [`failed`] naming the target's servers.
pub fn upstream(target: &Target, e: &redis::RedisError) -> ScalerError {
    failed(&target.label(), e)
}

/// A Redis answer Swell cannot use (`kind`), naming the servers.
pub fn refused(
    target: &Target,
    kind: crate::upstream::UpstreamKind,
    why: impl std::fmt::Display,
) -> ScalerError {
    UpstreamError::new(kind, format!("{}: {why}", target.label())).into()
}

fn bad_target(target: &Target, why: impl std::fmt::Display) -> ScalerError {
    refused(target, crate::upstream::UpstreamKind::BadResponse, why)
}

/// A live connection: to one server, or to a whole cluster (routing each key to its slot's
/// master). `at` names where it goes in errors (the master a sentinel named, with the name).
#[derive(Clone)]
struct Conn {
    link: Link,
    at: String,
}

#[derive(Clone)]
enum Link {
    Server(MultiplexedConnection),
    Cluster(ClusterConnection),
}

type Slot = Arc<tokio::sync::Mutex<Option<Conn>>>;

/// One connection per [`Target`], made on first use and made again after it broke (which,
/// behind sentinels, asks them for the master again).
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

    /// Runs one command on the target's connection (a cluster routes it by its key).
    pub async fn query<T: redis::FromRedisValue>(
        &self,
        target: &Target,
        cmd: &redis::Cmd,
    ) -> Result<T, ScalerError> {
        self.query_near(target, cmd, None).await
    }

    /// Runs a command without a key (`INFO`) on the server holding `key`: on a cluster the
    /// master of the key's slot, elsewhere the one server.
    pub async fn query_near<T: redis::FromRedisValue>(
        &self,
        target: &Target,
        cmd: &redis::Cmd,
        key: Option<&str>,
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
        let answer = match (&mut conn.link, key) {
            (Link::Server(c), _) => cmd.query_async(c).await,
            (Link::Cluster(c), None) => cmd.query_async(c).await,
            (Link::Cluster(c), Some(key)) => {
                let route = Route::with_key(key, SlotAddr::Master);
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route));
                match c.route_command(cmd.clone(), routing).await {
                    Ok(v) => redis::from_redis_value(v).map_err(redis::RedisError::from),
                    Err(e) => Err(e),
                }
            }
        };
        if let Err(e) = &answer
            && (e.is_connection_dropped() || e.is_io_error() || e.is_timeout())
        {
            // Reconnect on the next reading.
            *slot.lock().await = None;
        }
        answer.map_err(|e| failed(&conn.at, &e))
    }
}

/// One `host:port` of the target as the client addresses it, TLS settings included.
fn connection_addr(target: &Target, address: &str) -> Result<ConnectionAddr, ScalerError> {
    let (host, port) = address.rsplit_once(':').ok_or_else(|| {
        bad_target(
            target,
            format!("{address:?} is not host:port; set address to e.g. redis:6379"),
        )
    })?;
    let port = port
        .parse()
        .map_err(|_| bad_target(target, format!("port {port:?} is not a number")))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    Ok(match &target.tls {
        None => ConnectionAddr::Tcp(host, port),
        Some(t) => ConnectionAddr::TcpTls {
            host,
            port,
            insecure: t.unsafe_ssl,
            tls_params: None,
        },
    })
}

/// The CA and client certificate of `tls`, when it has either or the operator trusts CA
/// directories (else the client's own system roots). redis' roots replace the system's, so
/// the system's and the directories' are given too.
fn certificates(tls: &Tls) -> Option<redis::TlsCertificates> {
    let outbound = crate::tls::outbound();
    let custom = tls.ca.is_some() || !outbound.extra_roots.is_empty();
    let roots = custom.then(|| {
        format!(
            "{}{}",
            outbound.trusted_pem(),
            tls.ca.as_deref().unwrap_or("")
        )
    });
    (custom || tls.client_cert.is_some()).then(|| redis::TlsCertificates {
        client_tls: tls
            .client_cert
            .as_ref()
            .map(|(c, k)| redis::ClientTlsConfig {
                client_cert: c.as_bytes().to_vec(),
                client_key: k.expose().as_bytes().to_vec(),
            }),
        root_cert: roots.map(String::into_bytes),
    })
}

fn tls_mode(tls: &Tls) -> TlsMode {
    if tls.unsafe_ssl {
        TlsMode::Insecure
    } else {
        TlsMode::Secure
    }
}

fn config() -> AsyncConnectionConfig {
    AsyncConnectionConfig::new()
        .set_connection_timeout(Some(TIMEOUT))
        .set_response_timeout(Some(TIMEOUT))
}

async fn connect(target: &Target) -> Result<Conn, ScalerError> {
    match &target.topology {
        Topology::Standalone => connect_server(target).await,
        Topology::Cluster => connect_cluster(target).await,
        Topology::Sentinel(s) => connect_sentinel(target, s).await,
    }
}

async fn connect_server(target: &Target) -> Result<Conn, ScalerError> {
    let first = target.addresses.first().map_or("", String::as_str);
    let addr = connection_addr(target, first)?;
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
    let client = match target.tls.as_ref().and_then(certificates) {
        Some(certs) => Client::build_with_tls(info, certs),
        None => Client::open(info),
    }
    .map_err(|e| upstream(target, &e))?;
    let conn = client
        .get_multiplexed_async_connection_with_config(&config())
        .await
        .map_err(|e| upstream(target, &e))?;
    Ok(Conn {
        link: Link::Server(conn),
        at: target.label(),
    })
}

/// Seeds the cluster client with every address; it learns the slots from them and keeps
/// one connection per master.
async fn connect_cluster(target: &Target) -> Result<Conn, ScalerError> {
    let nodes = target
        .addresses
        .iter()
        .map(|a| connection_addr(target, a))
        .collect::<Result<Vec<_>, _>>()?;
    let mut b = redis::cluster::ClusterClientBuilder::new(nodes)
        .connection_timeout(TIMEOUT)
        .response_timeout(TIMEOUT)
        // A few quick retries (moved slots, a failover), not the default sixteen.
        .retries(3);
    if let Some(u) = &target.username {
        b = b.username(u);
    }
    if let Some(pw) = &target.password {
        b = b.password(pw.expose());
    }
    if let Some(t) = &target.tls {
        b = b.tls(tls_mode(t));
        if let Some(certs) = certificates(t) {
            b = b.certs(certs);
        }
    }
    let client = b.build().map_err(|e| upstream(target, &e))?;
    let conn = client
        .get_async_connection()
        .await
        .map_err(|e| upstream(target, &e))?;
    Ok(Conn {
        link: Link::Cluster(conn),
        at: target.label(),
    })
}

/// Asks the sentinels for the master's address, then connects to it with the data
/// credentials; errors after that name the master.
async fn connect_sentinel(target: &Target, s: &Sentinel) -> Result<Conn, ScalerError> {
    if s.master.is_empty() {
        let why = "sentinelMaster is not set; set it to the name the sentinels monitor the \
                   master under";
        return Err(refused(
            target,
            crate::upstream::UpstreamKind::NotFound,
            why,
        ));
    }
    let mut sentinel = sentinel_client(target, s)?;
    let at = |addr: &dyn std::fmt::Display| {
        let sentinels = target.addresses.join(",");
        format!(
            "redis {addr} (master {:?} from sentinel {sentinels})",
            s.master
        )
    };
    let found = tokio::time::timeout(TIMEOUT, sentinel.async_get_client())
        .await
        .map_err(|_| refused(target, crate::upstream::UpstreamKind::Timeout, "no answer"))?;
    let master = match found {
        Ok(master) => master,
        // The client checks the master's role as soon as the sentinels name it: an
        // authentication failure there is the master's credentials, not the sentinels'.
        Err(e) if e.kind() == redis::ErrorKind::AuthenticationFailed => {
            return Err(match named_master(&mut sentinel, &s.master).await {
                Some(addr) => failed(&at(&addr), &e),
                None => upstream(target, &e),
            });
        }
        Err(e) => return Err(upstream(target, &e)),
    };
    let at = at(master.get_connection_info().addr());
    let conn = master
        .get_multiplexed_async_connection_with_config(&config())
        .await
        .map_err(|e| failed(&at, &e))?;
    Ok(Conn {
        link: Link::Server(conn),
        at,
    })
}

/// The sentinel client: the sentinels' credentials towards them, the data credentials and
/// database towards the master they name, TLS towards both.
fn sentinel_client(
    target: &Target,
    s: &Sentinel,
) -> Result<redis::sentinel::SentinelClient, ScalerError> {
    let sentinels = target
        .addresses
        .iter()
        .map(|a| connection_addr(target, a))
        .collect::<Result<Vec<_>, _>>()?;
    let mut b = SentinelClientBuilder::new(sentinels, &s.master, SentinelServerType::Master)
        .map_err(|e| upstream(target, &e))?
        .set_client_to_redis_db(target.db);
    if let Some(u) = &target.username {
        b = b.set_client_to_redis_username(u);
    }
    if let Some(pw) = &target.password {
        b = b.set_client_to_redis_password(pw.expose());
    }
    if let Some(u) = &s.username {
        b = b.set_client_to_sentinel_username(u);
    }
    if let Some(pw) = &s.password {
        b = b.set_client_to_sentinel_password(pw.expose());
    }
    if let Some(t) = &target.tls {
        b = b
            .set_client_to_redis_tls_mode(tls_mode(t))
            .set_client_to_sentinel_tls_mode(tls_mode(t));
        if let Some(certs) = certificates(t) {
            b = b
                .set_client_to_redis_certificates(certs.clone())
                .set_client_to_sentinel_certificates(certs);
        }
    }
    b.build().map_err(|e| upstream(target, &e))
}

/// The `host:port` a sentinel names for `master`, when one answers with the sentinel
/// credentials.
async fn named_master(
    sentinel: &mut redis::sentinel::SentinelClient,
    master: &str,
) -> Option<String> {
    let client = sentinel.async_get_sentinel_client().await.ok()?;
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config())
        .await
        .ok()?;
    let (host, port): (String, u16) = redis::cmd("SENTINEL")
        .arg("get-master-addr-by-name")
        .arg(master)
        .query_async(&mut conn)
        .await
        .ok()?;
    Some(format!("{host}:{port}"))
}
