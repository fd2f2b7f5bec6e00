//! go-sql-driver/mysql's DSN, the format of KEDA's `connectionString`:
//! `[user[:password]@][net[(addr)]]/dbname[?param1=value1&paramN=valueN]`, read as the
//! driver's `ParseDSN` reads it (last `/`, then last `@` before it, first `:` for the
//! password) into the [`Target`] Swell connects to. Parameters the driver knows are
//! honoured, accepted because a number read by one query does not depend on them, or
//! refused with the reason; any other parameter is a system variable set on connect, as
//! the driver does. Pure: no I/O.

use std::time::Duration;

use crate::tls::Secret;

/// Where the server listens.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Addr {
    Tcp { host: String, port: u16 },
    Unix(String),
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Addr::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Addr::Tcp { host, port } => write!(f, "{host}:{port}"),
            Addr::Unix(path) => f.write_str(path),
        }
    }
}

/// The driver's `tls` parameter (KEDA registers no named TLS configurations).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tls {
    /// `false` or absent: plaintext.
    Off,
    /// `true`: TLS, the certificate checked against the system roots and the host name.
    Verify,
    /// `skip-verify`: TLS, the certificate not checked.
    SkipVerify,
    /// `preferred`: as `skip-verify`, plaintext when the server offers no TLS.
    Preferred,
}

/// One MySQL server and the credentials and settings to reach it: the key of a pool.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    pub user: String,
    pub password: Secret,
    pub addr: Addr,
    /// Empty: no default database.
    pub db: String,
    pub tls: Tls,
    /// Plaintext when the server offers no TLS (`tls=preferred`, `allowFallbackToPlaintext`).
    pub plaintext_fallback: bool,
    pub cleartext_passwords: bool,
    pub compress: bool,
    /// `timeout`: connecting.
    pub connect_timeout: Option<Duration>,
    /// `readTimeout`: the query's answer.
    pub read_timeout: Option<Duration>,
    /// `connectionAttributes`.
    pub attributes: Vec<(String, String)>,
    /// Unknown parameters: `SET name=value` on connect, values as written.
    pub system_vars: Vec<(String, String)>,
}

impl Target {
    /// What KEDA's host/port/username/password/dbName build (`mysql.NewConfig`, `tcp`).
    pub fn from_fields(host: &str, port: u16, user: &str, password: &str, db: &str) -> Target {
        Target {
            user: user.to_string(),
            password: Secret::new(password),
            addr: Addr::Tcp {
                host: host.to_string(),
                port,
            },
            db: db.to_string(),
            tls: Tls::Off,
            plaintext_fallback: false,
            cleartext_passwords: false,
            compress: false,
            connect_timeout: None,
            read_timeout: None,
            attributes: Vec::new(),
            system_vars: Vec::new(),
        }
    }
}

/// Why a connection string cannot be used. Never holds the password.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DsnError {
    #[error("no '/' before the database name; write user:password@tcp(host:port)/dbname")]
    NoSlash,
    #[error(
        "the address has no ')' right before the '/'; write user:password@tcp(host:port)/dbname"
    )]
    Addr,
    #[error("a ')' after the '/'; did you forget to escape a parameter value (a '/' is %2F)?")]
    Unescaped,
    #[error("network {0:?} is not supported; use tcp(host:port) or unix(/path/to/socket)")]
    Net(String),
    #[error("address {addr:?}: {why}")]
    BadAddr { addr: String, why: &'static str },
    #[error("the database name has an invalid %-escape")]
    DbEscape,
    #[error("parameter {key}: {why}")]
    Param { key: String, why: String },
}

fn param(key: &str, why: impl Into<String>) -> DsnError {
    DsnError::Param {
        key: key.to_string(),
        why: why.into(),
    }
}

/// `ParseDSN`.
pub fn parse(dsn: &str) -> Result<Target, DsnError> {
    let slash = dsn.rfind('/').ok_or(DsnError::NoSlash)?;
    let (mut user, mut password, mut net, mut addr) = ("", "", "", None);
    if slash > 0 {
        let left = &dsn[..slash];
        let at = left.rfind('@');
        if let Some(at) = at {
            let creds = &left[..at];
            match creds.find(':') {
                Some(c) => (user, password) = (&creds[..c], &creds[c + 1..]),
                None => user = creds,
            }
        }
        let proto = &left[at.map_or(0, |a| a + 1)..];
        match proto.find('(') {
            Some(open) => {
                let Some(inner) = proto[open + 1..].strip_suffix(')') else {
                    return Err(if proto[open + 1..].contains(')') {
                        DsnError::Unescaped
                    } else {
                        DsnError::Addr
                    });
                };
                net = &proto[..open];
                addr = Some(inner);
            }
            None => net = proto,
        }
    }
    let rest = &dsn[slash + 1..];
    let (db, params) = rest.split_once('?').unwrap_or((rest, ""));
    let db = unescape(db, false).ok_or(DsnError::DbEscape)?;
    let addr = address(if net.is_empty() { "tcp" } else { net }, addr)?;
    let mut t = Target::from_fields("", 0, user, password, &db);
    t.addr = addr;
    read_params(&mut t, params)?;
    if matches!(t.addr, Addr::Unix(_)) && !matches!(t.tls, Tls::Off | Tls::Preferred) {
        return Err(param(
            "tls",
            "TLS over a Unix socket is not supported (the socket is local); use tls=false or tcp(host:port)",
        ));
    }
    Ok(t)
}

/// `normalize` and `ensureHavePort`: tcp defaults to 127.0.0.1:3306 and port 3306.
fn address(net: &str, addr: Option<&str>) -> Result<Addr, DsnError> {
    let addr = addr.unwrap_or("");
    match net {
        "unix" => Ok(Addr::Unix(if addr.is_empty() {
            "/tmp/mysql.sock".into()
        } else {
            addr.to_string()
        })),
        "tcp" if addr.is_empty() => Ok(Addr::Tcp {
            host: "127.0.0.1".into(),
            port: 3306,
        }),
        "tcp" => {
            let (host, port) = split_host_port(addr).unwrap_or((addr, "3306"));
            let port = port
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or(DsnError::BadAddr {
                    addr: addr.to_string(),
                    why: "the port is not a number from 1 to 65535",
                })?;
            // Go dials the local system for an empty host.
            let host = if host.is_empty() { "127.0.0.1" } else { host };
            Ok(Addr::Tcp {
                host: host.to_string(),
                port,
            })
        }
        other => Err(DsnError::Net(other.to_string())),
    }
}

/// Go's `net.SplitHostPort`: `host:port` or `[v6]:port`; `None` when there is no port
/// (or an IPv6 address without brackets, which then gets the default port).
fn split_host_port(addr: &str) -> Option<(&str, &str)> {
    if let Some(inner) = addr.strip_prefix('[') {
        let (host, after) = inner.split_once(']')?;
        return after.strip_prefix(':').map(|port| (host, port));
    }
    let (host, port) = addr.rsplit_once(':')?;
    (!host.contains(':')).then_some((host, port))
}

/// The driver's `readBool`.
fn read_bool(key: &str, v: &str) -> Result<bool, DsnError> {
    match v {
        "1" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(param(
            key,
            format!("{v:?} is not a boolean (true or false)"),
        )),
    }
}

/// The `tls` parameter: a boolean or a mode (`skip-verify`, `preferred`, any case).
fn tls_mode(v: &str) -> Result<Tls, DsnError> {
    match read_bool("tls", v) {
        Ok(true) => Ok(Tls::Verify),
        Ok(false) => Ok(Tls::Off),
        Err(_) if v.eq_ignore_ascii_case("skip-verify") => Ok(Tls::SkipVerify),
        Err(_) if v.eq_ignore_ascii_case("preferred") => Ok(Tls::Preferred),
        Err(_) => Err(param(
            "tls",
            format!(
                "{v:?} is not a TLS mode; use true (verify the certificate), skip-verify, preferred or false (named TLS configurations are registered in Go code, which KEDA does not do)"
            ),
        )),
    }
}

/// `parseDSNParams`.
fn read_params(t: &mut Target, params: &str) -> Result<(), DsnError> {
    for pair in params.split('&') {
        let Some((key, v)) = pair.split_once('=') else {
            continue;
        };
        let unescaped = || unescape(v, true).ok_or_else(|| param(key, "invalid %-escape"));
        match key {
            "tls" => t.tls = tls_mode(v)?,
            "allowFallbackToPlaintext" => t.plaintext_fallback |= read_bool(key, v)?,
            "allowCleartextPasswords" => t.cleartext_passwords = read_bool(key, v)?,
            "compress" => t.compress = read_bool(key, v)?,
            "allowNativePasswords" if !read_bool(key, v)? => {
                return Err(param(
                    key,
                    "false is not supported: the client always offers mysql_native_password; remove the parameter",
                ));
            }
            "allowOldPasswords" if read_bool(key, v)? => {
                return Err(param(
                    key,
                    "the pre-4.1 mysql_old_password method is not supported; give the user a current password",
                ));
            }
            // Settings a single numeric reading does not depend on: checked, then unused.
            "allowAllFiles"
            | "allowNativePasswords"
            | "allowOldPasswords"
            | "checkConnLiveness"
            | "clientFoundRows"
            | "columnsWithAlias"
            | "interpolateParams"
            | "multiStatements"
            | "parseTime"
            | "rejectReadOnly" => {
                read_bool(key, v)?;
            }
            "charset" | "collation" => {}
            "loc" => {
                unescaped()?;
            }
            "maxAllowedPacket" => {
                v.parse::<i64>()
                    .map_err(|_| param(key, format!("{v:?} is not a number of bytes")))?;
            }
            "timeout" => t.connect_timeout = Some(go_duration(key, v)?),
            "readTimeout" => t.read_timeout = Some(go_duration(key, v)?),
            "writeTimeout" | "timeTruncate" => {
                go_duration(key, v)?;
            }
            "connectionAttributes" => t.attributes = attributes(&unescaped()?)?,
            "serverPubKey" => {
                return Err(param(
                    key,
                    "server public keys are registered in Go code, which KEDA does not do; remove the parameter (TLS or a cached sha2 login does not need it)",
                ));
            }
            "strict" => {
                return Err(param(
                    key,
                    "removed from go-sql-driver/mysql; remove the parameter",
                ));
            }
            _ => t.system_vars.push((key.to_string(), unescaped()?)),
        }
    }
    t.plaintext_fallback |= t.tls == Tls::Preferred;
    Ok(())
}

/// `connectionAttributes`: `name:value,name:value`.
fn attributes(v: &str) -> Result<Vec<(String, String)>, DsnError> {
    v.split(',')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            kv.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .ok_or_else(|| param("connectionAttributes", format!("{kv:?} is not name:value")))
        })
        .collect()
}

/// Go's `time.ParseDuration` for the non-negative durations a timeout takes
/// (`30s`, `1m30s`, `1.5h`, `500ms`, `0`).
fn go_duration(key: &str, v: &str) -> Result<Duration, DsnError> {
    match crate::metadata::go_duration(v) {
        Some((false, d)) => Ok(d),
        _ => Err(param(
            key,
            format!("{v:?} is not a duration (e.g. 30s, 1m30s, 500ms)"),
        )),
    }
}

/// Go's `url.PathUnescape` (`plus` false) and `url.QueryUnescape` (`plus`: `+` is a space).
fn unescape(s: &str, plus: bool) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                if !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16) -> Addr {
        Addr::Tcp {
            host: host.into(),
            port,
        }
    }

    /// The driver's `testDSNs` shapes (dsn_test.go) that KEDA users write.
    #[test]
    fn reads_dsns_like_go_sql_driver() {
        let cases: &[(&str, &str, &str, Addr, &str)] = &[
            (
                "username:password@protocol(address)/dbname?param=value",
                "",
                "",
                tcp("", 0),
                "",
            ),
            (
                "user:pass@tcp(db.example:3307)/stats",
                "user",
                "pass",
                tcp("db.example", 3307),
                "stats",
            ),
            (
                "user@tcp(db.example)/stats",
                "user",
                "",
                tcp("db.example", 3306),
                "stats",
            ),
            (
                "user:p@ss:w/rd@tcp(h:1)/d",
                "user",
                "p@ss:w/rd",
                tcp("h", 1),
                "d",
            ),
            (
                "user:pass@tcp([::1]:3306)/d",
                "user",
                "pass",
                tcp("::1", 3306),
                "d",
            ),
            (
                "user:pass@tcp(::1)/d",
                "user",
                "pass",
                tcp("::1", 3306),
                "d",
            ),
            (
                "user:pass@tcp/d",
                "user",
                "pass",
                tcp("127.0.0.1", 3306),
                "d",
            ),
            ("user:pass@/d", "user", "pass", tcp("127.0.0.1", 3306), "d"),
            (
                "user:pass@tcp(:3309)/d",
                "user",
                "pass",
                tcp("127.0.0.1", 3309),
                "d",
            ),
            ("/d", "", "", tcp("127.0.0.1", 3306), "d"),
            ("/", "", "", tcp("127.0.0.1", 3306), ""),
            (
                "user@unix(/run/mysqld/mysqld.sock)/d",
                "user",
                "",
                Addr::Unix("/run/mysqld/mysqld.sock".into()),
                "d",
            ),
            (
                "user@unix/d",
                "user",
                "",
                Addr::Unix("/tmp/mysql.sock".into()),
                "d",
            ),
            (
                "u:p@tcp(h:1)/my%2Fdb%20x?tls=false",
                "u",
                "p",
                tcp("h", 1),
                "my/db x",
            ),
        ];
        for (dsn, user, password, addr, db) in &cases[1..] {
            let t = parse(dsn).unwrap_or_else(|e| panic!("{dsn}: {e}"));
            assert_eq!(
                (t.user.as_str(), t.password.expose(), &t.addr, t.db.as_str()),
                (*user, *password, addr, *db),
                "{dsn}"
            );
        }
        // The driver's own placeholder example names an unknown network.
        assert_eq!(parse(cases[0].0), Err(DsnError::Net("protocol".into())));
    }

    /// KEDA's TestMetadataToConnectionStrBuildNew: the string KEDA formats from the fields
    /// reads back as the target Swell builds from them.
    #[test]
    fn fields_are_the_dsn_keda_formats() {
        assert_eq!(
            parse("test_username:pass@tcp(test_host:3306)/test_dbname").unwrap(),
            Target::from_fields("test_host", 3306, "test_username", "pass", "test_dbname")
        );
    }

    #[test]
    fn maps_tls_values() {
        for (q, tls, fallback) in [
            ("", Tls::Off, false),
            ("?tls=false", Tls::Off, false),
            ("?tls=0", Tls::Off, false),
            ("?tls=true", Tls::Verify, false),
            ("?tls=1", Tls::Verify, false),
            ("?tls=True", Tls::Verify, false),
            ("?tls=skip-verify", Tls::SkipVerify, false),
            ("?tls=SKIP-VERIFY", Tls::SkipVerify, false),
            ("?tls=preferred", Tls::Preferred, true),
            ("?tls=true&allowFallbackToPlaintext=true", Tls::Verify, true),
            (
                "?allowFallbackToPlaintext=true&tls=skip-verify",
                Tls::SkipVerify,
                true,
            ),
        ] {
            let t = parse(&format!("u:p@tcp(h:1)/d{q}")).unwrap();
            assert_eq!((t.tls, t.plaintext_fallback), (tls, fallback), "{q}");
        }
        let e = parse("u:p@tcp(h:1)/d?tls=custom").unwrap_err().to_string();
        assert!(
            e.contains("parameter tls: \"custom\" is not a TLS mode; use true"),
            "{e}"
        );
        let e = parse("u@unix(/s)/d?tls=true").unwrap_err().to_string();
        assert!(e.contains("TLS over a Unix socket is not supported"), "{e}");
        assert_eq!(
            parse("u@unix(/s)/d?tls=preferred").unwrap().tls,
            Tls::Preferred
        );
    }

    #[test]
    fn reads_parameters() {
        let t = parse(
            "u:p@tcp(h:1)/d?timeout=1m30s&readTimeout=500ms&writeTimeout=2s&charset=utf8mb4,utf8\
             &parseTime=true&loc=Europe%2FParis&compress=1&allowCleartextPasswords=true\
             &connectionAttributes=app:swell,team:infra&sql_mode=%27ANSI%27&time_zone=%27%2B00:00%27&novalue",
        )
        .unwrap();
        assert_eq!(t.connect_timeout, Some(Duration::from_secs(90)));
        assert_eq!(t.read_timeout, Some(Duration::from_millis(500)));
        assert!(t.compress && t.cleartext_passwords);
        assert_eq!(
            t.attributes,
            [
                ("app".into(), "swell".into()),
                ("team".into(), "infra".into())
            ]
        );
        assert_eq!(
            t.system_vars,
            [
                ("sql_mode".into(), "'ANSI'".into()),
                ("time_zone".into(), "'+00:00'".into())
            ]
        );
    }

    #[test]
    fn refuses_what_it_cannot_honour_with_the_reason() {
        for (dsn, want) in [
            ("user:pass@tcp(h:1)", DsnError::NoSlash.to_string()),
            ("user:pass@tcp(h:1/d", DsnError::Addr.to_string()),
            (
                "u:p@tcp(h:1)/d?loc=Europe/Paris)",
                DsnError::Unescaped.to_string(),
            ),
            ("u:p@tcp(h)x/d", DsnError::Unescaped.to_string()),
            (
                "u:p@tcp4(h:1)/d",
                "network \"tcp4\" is not supported".into(),
            ),
            (
                "u:p@tcp(h:mysql)/d",
                "address \"h:mysql\": the port is not a number".into(),
            ),
            (
                "u:p@tcp(h:0)/d",
                "the port is not a number from 1 to 65535".into(),
            ),
            ("u:p@tcp(h:1)/d%zz", DsnError::DbEscape.to_string()),
            (
                "u:p@tcp(h:1)/d?parseTime=yes",
                "parameter parseTime: \"yes\" is not a boolean".into(),
            ),
            (
                "u:p@tcp(h:1)/d?timeout=10",
                "parameter timeout: \"10\" is not a duration".into(),
            ),
            (
                "u:p@tcp(h:1)/d?timeout=-1s",
                "parameter timeout: \"-1s\" is not a duration".into(),
            ),
            (
                "u:p@tcp(h:1)/d?serverPubKey=k",
                "parameter serverPubKey: server public keys".into(),
            ),
            (
                "u:p@tcp(h:1)/d?allowNativePasswords=false",
                "parameter allowNativePasswords: false is not supported".into(),
            ),
            (
                "u:p@tcp(h:1)/d?allowOldPasswords=1",
                "parameter allowOldPasswords".into(),
            ),
            (
                "u:p@tcp(h:1)/d?strict=true",
                "parameter strict: removed".into(),
            ),
            (
                "u:p@tcp(h:1)/d?maxAllowedPacket=lots",
                "parameter maxAllowedPacket".into(),
            ),
            (
                "u:p@tcp(h:1)/d?connectionAttributes=a",
                "\"a\" is not name:value".into(),
            ),
            (
                "u:p@tcp(h:1)/d?x=%4",
                "parameter x: invalid %-escape".into(),
            ),
            (
                "u:p@tcp(h:1)/d?x=%+1",
                "parameter x: invalid %-escape".into(),
            ),
        ] {
            let e = parse(dsn)
                .err()
                .unwrap_or_else(|| panic!("{dsn} parsed"))
                .to_string();
            assert!(e.contains(&want), "{dsn}: want {want:?} in {e:?}");
            assert!(!e.contains(":p@"), "{e}");
        }
    }

    #[test]
    fn reads_go_durations() {
        for (v, want) in [
            ("0", Duration::ZERO),
            ("30s", Duration::from_secs(30)),
            ("1.5h", Duration::from_secs(5400)),
            ("2h45m", Duration::from_secs(9900)),
            ("250ms", Duration::from_millis(250)),
            ("10us", Duration::from_micros(10)),
            ("+1s", Duration::from_secs(1)),
        ] {
            assert_eq!(go_duration("timeout", v), Ok(want), "{v}");
        }
        for v in ["", "s", "1", "1x", "1.2.3s", "-5s", "1s2"] {
            assert!(go_duration("timeout", v).is_err(), "{v}");
        }
    }

    #[test]
    fn addresses_show_as_host_port() {
        assert_eq!(tcp("db", 3306).to_string(), "db:3306");
        assert_eq!(tcp("::1", 3306).to_string(), "[::1]:3306");
        assert_eq!(Addr::Unix("/s".into()).to_string(), "/s");
    }
}
