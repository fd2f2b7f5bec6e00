//! `postgresql`: scale on the number a query returns (first row, first column), as KEDA's
//! `postgresql_scaler.go`: the connection from `connection` (TriggerAuthentication or
//! `connectionFromEnv`) or from host/port/userName/dbName/sslmode and `password`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use swell_scaling::naming::{metric_name, normalize};
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::tls::Secret;
use crate::upstream::UpstreamError;
use crate::{Field, MetricSpec, Params, Sample, Scaler, ScalerError, Shared, Source, TriggerInput};

const QUERY: Field = Field::new("query").hint("a SQL query returning one number");
const TARGET: Field = Field::new("targetQueryValue");
const ACTIVATION: Field = Field::new("activationTargetQueryValue");
/// A libpq connection string or URL; holds the password, so KEDA reads it only from the
/// TriggerAuthentication or the container's environment (`connectionFromEnv`).
const CONNECTION: Field = Field::new("connection").from(&[Source::Auth, Source::Metadata]);
const HOST: Field = Field::new("host").from(&[Source::Auth, Source::Metadata]);
const PORT: Field = Field::new("port").from(&[Source::Auth, Source::Metadata]);
const USER_NAME: Field = Field::new("userName").from(&[Source::Auth, Source::Metadata]);
const DB_NAME: Field = Field::new("dbName").from(&[Source::Auth, Source::Metadata]);
const SSL_MODE: Field = Field::new("sslmode")
    .from(&[Source::Auth, Source::Metadata])
    .hint("disable, allow, prefer, require, verify-ca or verify-full");
const PASSWORD: Field = Field::new("password").from(&[Source::Auth, Source::Metadata]);

/// Every parameter, for unknown-key warnings.
pub const FIELDS: &[Field] = &[
    QUERY, TARGET, ACTIVATION, CONNECTION, HOST, PORT, USER_NAME, DB_NAME, SSL_MODE, PASSWORD,
];

/// How long connecting, and then the query, may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// KEDA's `escapePostgreConnectionParameter`: a value with whitespace, a quote or a
/// backslash is quoted, so it cannot add parameters of its own.
pub fn escape(v: &str) -> String {
    if !v.chars().any(char::is_whitespace) && !v.contains(['\'', '\\']) {
        return v.to_string();
    }
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// How the server's certificate is treated: libpq's sslmode, which tokio-postgres knows
/// only up to `require`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Verify {
    /// disable, allow, prefer, require: TLS when offered or required, certificate unchecked
    /// (as libpq without a root certificate).
    No,
    /// verify-ca, verify-full: the certificate is checked against the system roots and the
    /// host name.
    Full,
}

/// One connection string: the key that shares a client. Holds the password.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Conn(Secret);

pub struct PostgresScaler {
    conn: Conn,
    query: String,
    target: f64,
    activation: f64,
    metric: String,
    metric_type: crate::MetricType,
    polling: Duration,
    shared: Shared,
}

impl PostgresScaler {
    pub fn new(input: &TriggerInput, shared: &Shared) -> Result<PostgresScaler, ScalerError> {
        let mut p = Params::new(&input.params);
        let built = Self::parse(input, shared, &mut p);
        p.finish()?;
        Ok(built)
    }

    /// Reads the trigger into `p` without I/O (also for `swell check` and the webhook).
    pub fn parse(input: &TriggerInput, shared: &Shared, p: &mut Params<'_>) -> PostgresScaler {
        let query = p.string(QUERY);
        let target = p.target(TARGET);
        let activation = p.float(ACTIVATION, 0.0);
        for secret in ["connection", "password"] {
            if input.params.metadata.contains_key(secret) {
                p.error(
                    secret,
                    format!("holds credentials, so it is not read from trigger metadata (as KEDA); put {secret} in a TriggerAuthentication or use {secret}FromEnv"),
                );
            }
        }
        let conn = match p.opt_string(CONNECTION) {
            Some(c) => c,
            None if p.is_deferred("connection") => String::new(),
            None => {
                let mut parts = Vec::new();
                for (f, key) in [
                    (HOST, "host"),
                    (PORT, "port"),
                    (USER_NAME, "user"),
                    (DB_NAME, "dbname"),
                    (SSL_MODE, "sslmode"),
                ] {
                    match p.opt_string(f) {
                        Some(v) => parts.push(format!("{key}={}", escape(&v))),
                        None if p.is_deferred(f.name) => {}
                        None => p.error(
                            f.name,
                            format!("no {} given; set {} (or connection in the TriggerAuthentication){}", f.name, f.name, hint(f)),
                        ),
                    }
                }
                let password = p.opt_string(PASSWORD).unwrap_or_default();
                parts.push(format!("password={}", escape(&password)));
                parts.join(" ")
            }
        };
        PostgresScaler {
            conn: Conn(Secret::new(conn)),
            query,
            target,
            activation,
            metric: metric_name(input.index, &normalize("postgresql")),
            metric_type: input.metric_type.unwrap_or_default(),
            polling: input.polling_interval,
            shared: shared.clone(),
        }
    }

    fn coalesce_key(&self) -> String {
        use std::hash::{Hash as _, Hasher as _};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.conn.hash(&mut h);
        format!("postgresql|{:x}|{}", h.finish(), self.query)
    }

    async fn read(&self) -> Result<f64, ScalerError> {
        let client = self.shared.postgres.client(&self.conn).await?;
        let server = &client.1;
        let rows = tokio::time::timeout(TIMEOUT, client.0.simple_query(&self.query))
            .await
            .map_err(|_| upstream_msg(server, format!("the query took longer than {TIMEOUT:?}")))?
            .map_err(|e| upstream(server, &e))?;
        first_number(&rows).map_err(|why| upstream_msg(server, why))
    }
}

fn hint(f: Field) -> String {
    if f.hint.is_empty() {
        String::new()
    } else {
        format!(" ({})", f.hint)
    }
}

/// The first column of the first row, as KEDA scans it into a float64.
fn first_number(rows: &[SimpleQueryMessage]) -> Result<f64, String> {
    let row = rows
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .ok_or("could not query postgreSQL: the query returned no rows")?;
    let v = row
        .try_get(0)
        .map_err(|e| format!("could not query postgreSQL: {e}"))?
        .ok_or("could not query postgreSQL: the query returned NULL, not a number")?;
    v.trim()
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite())
        .ok_or_else(|| {
            format!(
                "could not query postgreSQL: the query returned {}, not a number",
                crate::metadata::shown(v)
            )
        })
}

/// Why a PostgreSQL call failed, naming the server and the cause (never the password).
fn upstream(server: &str, e: &tokio_postgres::Error) -> ScalerError {
    use crate::upstream::{Code, UpstreamKind as K};
    let mut msg = e.to_string();
    let mut kind = if e.is_closed() { K::Connect } else { K::Other };
    let mut code = None;
    if let Some(db) = e.as_db_error() {
        msg = format!("{}: {}", db.severity(), db.message());
        let sqlstate = db.code().code();
        // SQLSTATE classes: 28 authorization, 3D no database, 42P01 no table.
        kind = match sqlstate {
            c if c.starts_with("28") => K::Auth,
            c if c.starts_with("3D") || c == "42P01" => K::NotFound,
            _ => K::Other,
        };
        code = Some(Code::Sql(sqlstate.to_string()));
    } else if let Some(src) = std::error::Error::source(e) {
        msg = format!("{msg}: {src}");
        if src.is::<std::io::Error>() {
            kind = K::Connect;
        }
    }
    let err = UpstreamError::new(kind, format!("postgresql {server}: {msg}"));
    match code {
        Some(c) => err.with_code(c).into(),
        None => err.into(),
    }
}

fn upstream_msg(server: &str, why: impl std::fmt::Display) -> ScalerError {
    let kind = crate::upstream::UpstreamKind::BadResponse;
    UpstreamError::new(kind, format!("postgresql {server}: {why}")).into()
}

type Slot = Arc<tokio::sync::Mutex<Option<Arc<(Client, String)>>>>;

/// One client per connection string, made on first use and made again once closed.
#[derive(Default)]
pub struct PostgresClients {
    slots: Mutex<HashMap<Conn, Slot>>,
}

impl PostgresClients {
    pub fn len(&self) -> usize {
        self.slots.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    async fn client(&self, conn: &Conn) -> Result<Arc<(Client, String)>, ScalerError> {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.entry(conn.clone()).or_default().clone()
        };
        let mut guard = slot.lock().await;
        if let Some(c) = guard.as_ref().filter(|c| !c.0.is_closed()) {
            return Ok(c.clone());
        }
        let c = Arc::new(connect(conn).await?);
        *guard = Some(c.clone());
        Ok(c)
    }
}

/// The configuration tokio-postgres can read: `verify-ca`/`verify-full` become `require`
/// with certificate checks of our own.
fn config(conn: &str) -> Result<(tokio_postgres::Config, Verify), String> {
    let verify = if conn.contains("sslmode=verify-ca") || conn.contains("sslmode=verify-full") {
        Verify::Full
    } else {
        Verify::No
    };
    let readable = conn
        .replace("sslmode=verify-full", "sslmode=require")
        .replace("sslmode=verify-ca", "sslmode=require")
        .replace("sslmode=allow", "sslmode=prefer");
    let config = readable
        .parse::<tokio_postgres::Config>()
        .map_err(|e| format!("the connection string is not valid: {e}"))?;
    Ok((config, verify))
}

/// `host:port` of the first host, for messages.
fn server_name(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}")
}

async fn connect(conn: &Conn) -> Result<(Client, String), ScalerError> {
    let (mut config, verify) =
        config(conn.0.expose()).map_err(|why| upstream_msg("(connection)", why))?;
    let server = server_name(&config);
    config.connect_timeout(TIMEOUT);
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(rustls_config(verify, &server)?);
    let (client, connection) = tokio::time::timeout(TIMEOUT, config.connect(tls))
        .await
        .map_err(|_| upstream_msg(&server, format!("connecting took longer than {TIMEOUT:?}")))?
        .map_err(|e| upstream(&server, &e))?;
    // The connection task ends when the client is dropped or the server goes away; the
    // next reading then connects again.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok((client, server))
}

fn rustls_config(verify: Verify, server: &str) -> Result<rustls::ClientConfig, ScalerError> {
    let t = crate::tls::ClientTls {
        unsafe_ssl: verify == Verify::No,
        ..Default::default()
    };
    crate::tls::outbound()
        .client_config(t)
        .map_err(|e| upstream_msg(server, format!("TLS setup: {e}")))
}

#[async_trait::async_trait]
impl Scaler for PostgresScaler {
    fn metric_spec(&self) -> MetricSpec {
        MetricSpec::External {
            name: self.metric.clone(),
            target: self.target,
            metric_type: self.metric_type,
        }
    }

    async fn sample(&self) -> Result<Sample, ScalerError> {
        self.shared
            .sample_value(
                "postgresql",
                &self.coalesce_key(),
                self.polling,
                self.activation,
                || async { self.read().await.map_err(ScalerError::into_upstream) },
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

    fn scaler(
        index: usize,
        meta: Pairs,
        auth: Pairs,
        env: Pairs,
    ) -> Result<PostgresScaler, ScalerError> {
        PostgresScaler::new(
            &TriggerInput {
                index,
                type_: "postgresql".into(),
                params: RawParams {
                    trigger_index: index,
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

    /// KEDA's `testPostgreSQLMetadata` and `postgreSQLMetricIdentifiers`: parsed, with
    /// their metric names. KEDA's plain metadata `connection` is not read (the case then
    /// fails for want of a host); Swell says so instead of "no host given".
    #[test]
    fn parses_keda_metadata_table() {
        let env: Pairs = &[
            ("test_connection_string", "postgresql://localhost:5432"),
            ("test_connection_string2", "postgresql://test@localhost"),
        ];
        let ok: &[Pairs] = &[
            &[
                ("query", "test_query"),
                ("targetQueryValue", "5"),
                ("connectionFromEnv", "test_connection_string"),
            ],
            &[
                ("query", "test_query"),
                ("targetQueryValue", "5"),
                ("connectionFromEnv", "test_connection_string2"),
            ],
            &[
                ("query", "test_query"),
                ("targetQueryValue", "5"),
                ("activationTargetQueryValue", "3"),
                ("connectionFromEnv", "test_connection_string2"),
            ],
            &[
                ("query", "test_query"),
                ("targetQueryValue", "5"),
                ("host", "test_host"),
                ("port", "test_port"),
                ("userName", "test_user_name"),
                ("dbName", "test_db_name"),
                ("sslmode", "test_ssl_mode"),
            ],
            &[
                ("query", "test_query"),
                ("targetQueryValue", "5"),
                ("host", "test_host"),
                ("port", "test_port"),
                ("userName", "test_user_name"),
                ("dbName", "test_db_name"),
                ("sslmode", "test_ssl_mode"),
                ("metricName", "scaler_sql_data"),
            ],
        ];
        for (i, meta) in ok.iter().enumerate() {
            let s = scaler(i, meta, &[], env).unwrap_or_else(|e| panic!("case {i}: {e}"));
            assert_eq!(s.metric_spec().name(), format!("s{i}-postgresql"));
            assert_eq!(s.target, 5.0);
        }
        assert_eq!(scaler(0, ok[2], &[], env).unwrap().activation, 3.0);
        for meta in [
            &[
                ("query", "test_query"),
                ("targetQueryValue", "5"),
                ("connection", "postgresql://localhost:5432"),
            ][..],
            &[
                ("query", "test_query"),
                ("targetQueryValue", "5"),
                (
                    "connection",
                    "postgresql://username:password@localhost:5432",
                ),
            ],
        ] {
            let e = scaler(0, meta, &[], &[]).err().unwrap().to_string();
            assert!(
                e.contains("triggers[0].metadata.connection: holds credentials"),
                "{e}"
            );
            assert!(!e.contains("username:password"), "{e}");
        }
    }

    /// KEDA's `testPostgreSQLConnectionstring` and its whitespace-escaping test.
    #[test]
    fn builds_the_connection_string_like_keda() {
        let cases: &[(Pairs, Pairs, Pairs, &str)] = &[
            (
                &[
                    ("query", "q"),
                    ("targetQueryValue", "5"),
                    ("connectionFromEnv", "CONNECTION_ENV"),
                ],
                &[],
                &[("CONNECTION_ENV", "test_connection_from_env")],
                "test_connection_from_env",
            ),
            (
                &[("query", "q"), ("targetQueryValue", "5")],
                &[("connection", "test_connection_from_auth")],
                &[],
                "test_connection_from_auth",
            ),
            (
                &[
                    ("query", "q"),
                    ("targetQueryValue", "5"),
                    ("host", "localhost"),
                    ("port", "1234"),
                    ("dbName", "testDb"),
                    ("userName", "user"),
                    ("sslmode", "required"),
                ],
                &[],
                &[],
                "host=localhost port=1234 user=user dbname=testDb sslmode=required password=",
            ),
            (
                &[
                    ("query", "q"),
                    ("targetQueryValue", "5"),
                    ("host", "host1,host2"),
                    ("port", "1234"),
                    ("dbName", "testDb"),
                    ("userName", "user"),
                    ("sslmode", "required"),
                ],
                &[],
                &[],
                "host=host1,host2 port=1234 user=user dbname=testDb sslmode=required password=",
            ),
            (
                &[
                    ("query", "q"),
                    ("targetQueryValue", "5"),
                    ("host", "db.example"),
                    ("port", "5432"),
                    ("dbName", "testdb"),
                    ("userName", "user\tsslmode=disable"),
                    ("sslmode", "require"),
                ],
                &[("password", "secret\nhost=attacker")],
                &[],
                "host=db.example port=5432 user='user\tsslmode=disable' dbname=testdb sslmode=require password='secret\nhost=attacker'",
            ),
            // The TriggerAuthentication wins over metadata, as KEDA's order says.
            (
                &[
                    ("query", "q"),
                    ("targetQueryValue", "5"),
                    ("host", "meta"),
                    ("port", "1"),
                    ("dbName", "d"),
                    ("userName", "u"),
                    ("sslmode", "disable"),
                ],
                &[("host", "auth"), ("password", "pw")],
                &[],
                "host=auth port=1 user=u dbname=d sslmode=disable password=pw",
            ),
        ];
        for (meta, auth, env, want) in cases {
            let s = scaler(0, meta, auth, env).unwrap();
            assert_eq!(s.conn.0.expose(), *want);
        }
    }

    /// KEDA's `TestEscapePostgreConnectionParameter`.
    #[test]
    fn escapes_like_keda() {
        for (input, want) in [
            ("simple", "simple"),
            ("with space", "'with space'"),
            ("user\tsslmode=disable", "'user\tsslmode=disable'"),
            ("user\nhost=attacker", "'user\nhost=attacker'"),
            ("user'name", "'user\\'name'"),
            (r"user\name", r"'user\\name'"),
            (r"user\'name", r"'user\\\'name'"),
        ] {
            assert_eq!(escape(input), want, "{input:?}");
        }
        // tokio-postgres reads the escaped value back whole.
        let c: tokio_postgres::Config = format!(
            "host=h user={} password={}",
            escape("a b'c"),
            escape("x\ny")
        )
        .parse()
        .unwrap();
        assert_eq!(c.get_user(), Some("a b'c"));
        assert_eq!(c.get_password(), Some(&b"x\ny"[..]));
    }

    #[test]
    fn refuses_bad_input_with_the_field() {
        let cases: &[(Pairs, Pairs, &str)] = &[
            (
                &[],
                &[("connection", "c")],
                "triggers[0].metadata.query: required",
            ),
            (
                &[("query", "q")],
                &[("connection", "c")],
                "triggers[0].metadata.targetQueryValue: required",
            ),
            (
                &[("query", "q"), ("targetQueryValue", "0")],
                &[("connection", "c")],
                "targetQueryValue: must be greater than 0",
            ),
            (
                &[("query", "q"), ("targetQueryValue", "x")],
                &[("connection", "c")],
                "targetQueryValue: \"x\" is not a number",
            ),
            (
                &[
                    ("query", "q"),
                    ("targetQueryValue", "1"),
                    ("activationTargetQueryValue", "y"),
                ],
                &[("connection", "c")],
                "activationTargetQueryValue: \"y\" is not a number",
            ),
            (
                &[("query", "q"), ("targetQueryValue", "1")],
                &[],
                "triggers[0].metadata.host: no host given",
            ),
            (
                &[("query", "q"), ("targetQueryValue", "1"), ("host", "h")],
                &[],
                "triggers[0].metadata.port: no port given",
            ),
            (
                &[
                    ("query", "q"),
                    ("targetQueryValue", "1"),
                    ("host", "h"),
                    ("port", "1"),
                    ("userName", "u"),
                    ("dbName", "d"),
                ],
                &[],
                "triggers[0].metadata.sslmode: no sslmode given",
            ),
            (
                &[
                    ("query", "q"),
                    ("targetQueryValue", "1"),
                    ("password", "hunter2"),
                ],
                &[("connection", "c")],
                "triggers[0].metadata.password: holds credentials",
            ),
        ];
        for (meta, auth, want) in cases {
            let e = scaler(0, meta, auth, &[])
                .err()
                .expect("invalid")
                .to_string();
            assert!(e.contains(want), "want {want:?} in {e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn reads_sslmodes() {
        let (c, v) = config("host=h sslmode=verify-full password=p").unwrap();
        assert_eq!(
            (c.get_ssl_mode(), v),
            (tokio_postgres::config::SslMode::Require, Verify::Full)
        );
        let (c, v) = config("postgresql://u@h/db?sslmode=verify-ca").unwrap();
        assert_eq!(
            (c.get_ssl_mode(), v),
            (tokio_postgres::config::SslMode::Require, Verify::Full)
        );
        let (c, v) = config("host=h sslmode=disable").unwrap();
        assert_eq!(
            (c.get_ssl_mode(), v),
            (tokio_postgres::config::SslMode::Disable, Verify::No)
        );
        assert!(
            config("host=h sslmode=required")
                .unwrap_err()
                .contains("not valid")
        );
        assert_eq!(
            server_name(&config("host=db port=6432").unwrap().0),
            "db:6432"
        );
    }

    #[test]
    fn secrets_stay_out_of_the_key() {
        let s = scaler(
            0,
            &[("query", "q"), ("targetQueryValue", "1")],
            &[("connection", "postgresql://u:hunter2@h/db")],
            &[],
        )
        .unwrap();
        assert!(!s.coalesce_key().contains("hunter2"));
    }
}
