//! `mysql`: scale on the number a query returns (first row, first column), as KEDA's
//! `mysql_scaler.go`: the server from `connectionString` (a go-sql-driver DSN, from the
//! TriggerAuthentication or `connectionStringFromEnv`) or from host/port/username/dbName
//! and `password`. One mysql_async pool per [`Target`], shared by the triggers using it.

pub mod dsn;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use mysql_async::prelude::Queryable as _;
use mysql_async::{Pool, Value};
use swell_scaling::naming::metric_name;

use self::dsn::{Target, Tls};
use crate::metadata::shown;
use crate::upstream::{Code, UpstreamError, UpstreamKind as K};
use crate::{Field, MetricSpec, Params, Sample, Scaler, ScalerError, Shared, Source, TriggerInput};

const QUERY: Field = Field::new("query").hint("a SQL query returning one number");
const QUERY_VALUE: Field = Field::new("queryValue");
const ACTIVATION: Field = Field::new("activationQueryValue");
/// A go-sql-driver DSN; holds the password, so KEDA reads it only from the
/// TriggerAuthentication or the container's environment (`connectionStringFromEnv`).
const CONNECTION_STRING: Field = Field::new("connectionString")
    .from(&[Source::Auth, Source::Metadata])
    .hint("user:password@tcp(host:port)/dbname");
const USERNAME: Field = Field::new("username").from(&[Source::Metadata, Source::Auth]);
const PASSWORD: Field = Field::new("password").from(&[Source::Auth, Source::Metadata]);
const HOST: Field = Field::new("host").from(&[Source::Metadata, Source::Auth]);
const PORT: Field = Field::new("port").from(&[Source::Metadata, Source::Auth]);
const DB_NAME: Field = Field::new("dbName").from(&[Source::Metadata, Source::Auth]);
const METRIC_NAME: Field = Field::new("metricName")
    .deprecated("KEDA ignores it: the metric is named s<index>-mysql-<dbName>; remove it");

/// Every parameter, for unknown-key warnings.
pub const FIELDS: &[Field] = &[
    QUERY,
    QUERY_VALUE,
    ACTIVATION,
    CONNECTION_STRING,
    USERNAME,
    PASSWORD,
    HOST,
    PORT,
    DB_NAME,
    METRIC_NAME,
];

/// How long connecting, and then the query, may take unless the DSN says
/// (`timeout`, `readTimeout`).
const TIMEOUT: Duration = Duration::from_secs(10);

pub struct MysqlScaler {
    /// `None` only when the connection is known at run time alone (offline `swell check`).
    target: Option<Target>,
    query: String,
    target_value: f64,
    activation: f64,
    metric: String,
    metric_type: crate::MetricType,
    polling: Duration,
    shared: Shared,
}

impl MysqlScaler {
    pub fn new(input: &TriggerInput, shared: &Shared) -> Result<MysqlScaler, ScalerError> {
        let mut p = Params::new(&input.params);
        let built = Self::parse(input, shared, &mut p);
        p.finish()?;
        Ok(built)
    }

    /// Reads the trigger into `p` without I/O (also for `swell check` and the webhook).
    pub fn parse(input: &TriggerInput, shared: &Shared, p: &mut Params<'_>) -> MysqlScaler {
        let query = p.string(QUERY);
        let target_value = p.target(QUERY_VALUE);
        let activation = p.float(ACTIVATION, 0.0);
        let _ = p.raw(METRIC_NAME);
        for secret in ["connectionString", "password"] {
            if input.params.metadata.contains_key(secret) {
                p.error(
                    secret,
                    format!("holds credentials, so it is not read from trigger metadata (as KEDA); put {secret} in a TriggerAuthentication or use {secret}FromEnv"),
                );
            }
        }
        let (target, db) = match p.opt_string(CONNECTION_STRING) {
            Some(dsn) => {
                let target = dsn::parse(&dsn)
                    .map_err(|e| {
                        p.error("connectionString", format!("not a go-sql-driver DSN: {e}"))
                    })
                    .ok();
                // KEDA names the metric after the text behind the last '/', parameters too.
                (
                    target,
                    dsn.rsplit('/').next().unwrap_or_default().to_string(),
                )
            }
            None if p.is_deferred("connectionString") => (None, String::new()),
            None => from_fields(p),
        };
        MysqlScaler {
            target,
            query,
            target_value,
            activation,
            metric: metric_name(input.index, &format!("mysql-{db}")),
            metric_type: input.metric_type.unwrap_or_default(),
            polling: input.polling_interval,
            shared: shared.clone(),
        }
    }

    fn coalesce_key(&self) -> String {
        use std::hash::{Hash as _, Hasher as _};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.target.hash(&mut h);
        format!("mysql|{:x}|{}", h.finish(), self.query)
    }

    async fn read(&self) -> Result<f64, UpstreamError> {
        let Some(target) = &self.target else {
            return Err(UpstreamError::new(
                K::Other,
                "mysql: the connection is not known",
            ));
        };
        let server = target.addr.to_string();
        let mut conn = self.shared.mysql.conn(target).await?;
        let read = target
            .read_timeout
            .filter(|d| !d.is_zero())
            .unwrap_or(TIMEOUT);
        let row = tokio::time::timeout(read, conn.query_first::<mysql_async::Row, _>(&self.query))
            .await
            .map_err(|_| timed_out(&server, format!("the query took longer than {read:?}")))?
            .map_err(|e| upstream(&server, &e))?;
        first_number(row.and_then(|mut r| r.take::<Value, _>(0))).map_err(|why| {
            UpstreamError::bad_response(format!("mysql {server}: could not query MySQL: {why}"))
        })
    }
}

/// A field the DSN cannot do without, reported when missing.
fn required(p: &mut Params<'_>, f: Field) -> Option<String> {
    let v = p.opt_string(f);
    if v.is_none() && !p.is_deferred(f.name) {
        let n = f.name;
        p.error(
            n,
            format!("no {n} given; set {n} (or connectionString in the TriggerAuthentication)"),
        );
    }
    v
}

/// KEDA's host/port/username/dbName and password. KEDA would also take a missing host,
/// port or username and fail only when connecting; Swell says so at once.
fn from_fields(p: &mut Params<'_>) -> (Option<Target>, String) {
    let host = required(p, HOST);
    let port = required(p, PORT).and_then(|v| match v.parse::<u16>() {
        Ok(n) if n > 0 => Some(n),
        _ => {
            p.error(
                "port",
                format!("{} is not a port number (1 to 65535)", shown(&v)),
            );
            None
        }
    });
    let user = required(p, USERNAME);
    let password = p.opt_string(PASSWORD).unwrap_or_default();
    let db = p.opt_string(DB_NAME).unwrap_or_default();
    let target = match (host, port, user) {
        (Some(h), Some(port), Some(u)) => Some(Target::from_fields(&h, port, &u, &password, &db)),
        _ => None,
    };
    (target, db)
}

/// The first column of the first row (`None`: no row), as KEDA scans it into a float64.
fn first_number(first: Option<Value>) -> Result<f64, String> {
    let n = match first.ok_or("the query returned no rows")? {
        Value::NULL => return Err("the query returned NULL, not a number".into()),
        Value::Int(i) => i as f64,
        Value::UInt(u) => u as f64,
        Value::Float(f) => f64::from(f),
        Value::Double(d) => d,
        Value::Bytes(b) => {
            let text = String::from_utf8_lossy(&b);
            text.parse::<f64>()
                .map_err(|_| format!("the query returned {}, not a number", shown(&text)))?
        }
        Value::Date(..) | Value::Time(..) => {
            return Err("the query returned a date or time, not a number".into());
        }
    };
    if n.is_finite() {
        Ok(n)
    } else {
        Err(format!("the query returned {n}, not a finite number"))
    }
}

fn timed_out(server: &str, why: String) -> UpstreamError {
    UpstreamError::new(K::Timeout, format!("mysql {server}: {why}"))
}

/// Why a MySQL call failed, naming the server and the cause (never the password).
fn upstream(server: &str, e: &mysql_async::Error) -> UpstreamError {
    use mysql_async::{DriverError as D, Error as E, IoError};
    let (kind, msg) = match e {
        E::Server(s) => {
            let err = UpstreamError::new(
                server_error_kind(s.code),
                format!("mysql {server}: ERROR {} ({}): {}", s.code, s.state, s.message),
            );
            return err.with_code(Code::Sql(s.state.clone()));
        }
        E::Io(IoError::Io(io)) if io.kind() == std::io::ErrorKind::TimedOut => (K::Timeout, io.to_string()),
        E::Io(IoError::Io(io)) => (K::Connect, io.to_string()),
        E::Io(IoError::Tls(t)) => (K::Connect, format!("TLS: {t}")),
        E::Driver(D::NoClientSslFlagFromServer) => (
            K::Connect,
            "the server does not offer TLS; use tls=preferred to fall back to plaintext, or tls=false".into(),
        ),
        E::Driver(d @ (D::ConnectionClosed | D::PoolDisconnected)) => (K::Connect, d.to_string()),
        E::Driver(d) => (K::Other, d.to_string()),
        other => (K::Other, other.to_string()),
    };
    UpstreamError::new(kind, format!("mysql {server}: {msg}"))
}

/// MySQL's error numbers for refusals and for what does not exist.
fn server_error_kind(code: u16) -> K {
    match code {
        // access denied (user, database, table, column, privilege, no password given)
        1044 | 1045 | 1142 | 1143 | 1227 | 1698 => K::Auth,
        // unknown database, table
        1049 | 1146 => K::NotFound,
        _ => K::Other,
    }
}

/// Whether a failed connection is tried again in plaintext: the DSN allows it
/// (`tls=preferred`, `allowFallbackToPlaintext`) and the server offers no TLS.
fn falls_back(target: &Target, e: &mysql_async::Error) -> bool {
    target.plaintext_fallback
        && target.tls != Tls::Off
        && matches!(
            e,
            mysql_async::Error::Driver(mysql_async::DriverError::NoClientSslFlagFromServer)
        )
}

/// One pool per target, made on first use; a target that falls back to plaintext keeps
/// its plaintext pool.
#[derive(Default)]
pub struct MysqlPools {
    pools: Mutex<HashMap<Target, Pool>>,
}

impl MysqlPools {
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Target, Pool>> {
        self.pools.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn conn(&self, target: &Target) -> Result<mysql_async::Conn, UpstreamError> {
        let server = target.addr.to_string();
        let pool = self
            .lock()
            .entry(target.clone())
            .or_insert_with(|| Pool::new(opts(target, target.tls != Tls::Off)))
            .clone();
        let connect = target
            .connect_timeout
            .filter(|d| !d.is_zero())
            .unwrap_or(TIMEOUT);
        let get = |pool: Pool| async move {
            tokio::time::timeout(connect, pool.get_conn())
                .await
                .map_err(|_| None)?
                .map_err(Some)
        };
        let too_slow = || timed_out(&server, format!("connecting took longer than {connect:?}"));
        match get(pool).await {
            Ok(c) => Ok(c),
            Err(Some(e)) if falls_back(target, &e) => {
                let plain = Pool::new(opts(target, false));
                self.lock().insert(target.clone(), plain.clone());
                get(plain)
                    .await
                    .map_err(|e| e.map_or_else(too_slow, |e| upstream(&server, &e)))
            }
            Err(e) => Err(e.map_or_else(too_slow, |e| upstream(&server, &e))),
        }
    }
}

/// The client's options for a target, with TLS or without.
fn opts(t: &Target, tls: bool) -> mysql_async::Opts {
    use mysql_async::{OptsBuilder, PoolConstraints, PoolOpts};
    let constraints = PoolConstraints::new(0, 4).unwrap_or_default();
    let mut b = OptsBuilder::default()
        .user((!t.user.is_empty()).then(|| t.user.clone()))
        .pass(Some(t.password.expose().to_string()))
        .db_name((!t.db.is_empty()).then(|| t.db.clone()))
        // Never swap a loopback TCP connection for the server's socket (it skips TLS).
        .prefer_socket(false)
        .pool_opts(PoolOpts::default().with_constraints(constraints))
        .enable_cleartext_plugin(t.cleartext_passwords)
        .compression(t.compress.then(mysql_async::Compression::default))
        .connect_attributes(t.attributes.iter().cloned().collect());
    b = match &t.addr {
        dsn::Addr::Tcp { host, port } => b.ip_or_hostname(host.clone()).tcp_port(*port),
        dsn::Addr::Unix(path) => b.socket(Some(path.clone())),
    };
    if !t.system_vars.is_empty() {
        let set: Vec<String> = t
            .system_vars
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        b = b.init(vec![format!("SET {}", set.join(", "))]);
    }
    if tls {
        b = b.ssl_opts(ssl_opts(t.tls));
    }
    b.into()
}

/// `true`: the system roots (as Go's crypto/tls) and the host name; `skip-verify` and
/// `preferred`: no check.
fn ssl_opts(tls: Tls) -> mysql_async::SslOpts {
    let opts = mysql_async::SslOpts::default();
    match tls {
        Tls::Verify => {
            let roots = crate::tls::outbound()
                .trusted()
                .map(|c| c.to_vec().into())
                .collect();
            opts.with_disable_built_in_roots(true)
                .with_root_certs(roots)
        }
        Tls::SkipVerify | Tls::Preferred | Tls::Off => opts
            .with_danger_accept_invalid_certs(true)
            .with_danger_skip_domain_validation(true),
    }
}

#[async_trait::async_trait]
impl Scaler for MysqlScaler {
    fn metric_spec(&self) -> MetricSpec {
        MetricSpec::External {
            name: self.metric.clone(),
            target: self.target_value,
            metric_type: self.metric_type,
        }
    }

    async fn sample(&self) -> Result<Sample, ScalerError> {
        self.shared
            .sample_value(
                "mysql",
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
}

#[cfg(test)]
mod tests;
