use super::*;
use crate::{RawParams, map};

type Pairs<'a> = &'a [(&'a str, &'a str)];
/// Metadata, TriggerAuthentication parameters and the metric name KEDA gives them.
type Case = (
    Vec<(&'static str, &'static str)>,
    Pairs<'static>,
    &'static str,
);

fn scaler(index: usize, meta: Pairs, auth: Pairs, env: Pairs) -> Result<MysqlScaler, ScalerError> {
    MysqlScaler::new(
        &TriggerInput {
            index,
            type_: "mysql".into(),
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

/// KEDA's `testMySQLResolvedEnv`.
const ENV: Pairs = &[
    ("MYSQL_USERNAME", "test_username"),
    ("MYSQL_PASSWORD", "pass"),
    (
        "MYSQL_CONN_STR",
        "user@tcp(http://my.mysql.dev:3306)/stats_db",
    ),
];

/// KEDA's server fields, from a TriggerAuthentication.
const FIELDS: Pairs<'static> = &[
    ("host", "test_host"),
    ("port", "3306"),
    ("username", "test_username"),
    ("password", "MYSQL_PASSWORD"),
    ("dbName", "test_dbname"),
];

/// KEDA's query and queryValue with `extra`.
fn with(extra: Pairs<'static>) -> Vec<(&'static str, &'static str)> {
    [("query", "query"), ("queryValue", "12")]
        .iter()
        .chain(extra)
        .copied()
        .collect()
}

/// KEDA's `testMySQLMetadata` and `mySQLMetricIdentifiers`. KEDA's `port: test_port`
/// parses there and fails only when connecting; Swell refuses it at once, so the accepted
/// cases use a number and the refusal is checked on its own.
#[test]
fn parses_keda_metadata_table() {
    let ok: &[Case] = &[
        (
            with(&[("connectionStringFromEnv", "MYSQL_CONN_STR")]),
            &[],
            "s0-mysql-stats_db",
        ),
        (
            with(&[
                ("host", "test_host"),
                ("port", "3306"),
                ("username", "test_username"),
                ("passwordFromEnv", "MYSQL_PASSWORD"),
                ("dbName", "test_dbname"),
            ]),
            &[],
            "s1-mysql-test_dbname",
        ),
        (
            with(&[
                ("host", "test_host"),
                ("port", "3306"),
                ("usernameFromEnv", "MYSQL_USERNAME"),
                ("passwordFromEnv", "MYSQL_PASSWORD"),
                ("dbName", "test_dbname"),
            ]),
            &[],
            "s2-mysql-test_dbname",
        ),
        (with(&[]), FIELDS, "s3-mysql-test_dbname"),
    ];
    for (i, (meta, auth, metric)) in ok.iter().enumerate() {
        let s = scaler(i, meta, auth, ENV).unwrap_or_else(|e| panic!("case {i}: {e}"));
        assert_eq!(s.metric_spec().name(), *metric, "case {i}");
        assert_eq!((s.target_value, s.activation), (12.0, 0.0));
    }
    // Both forms name the same server as the DSN KEDA builds from the fields.
    let built = Target::from_fields("test_host", 3306, "test_username", "pass", "test_dbname");
    assert_eq!(scaler(0, &ok[1].0, &[], ENV).unwrap().target, Some(built));
    let from_auth = scaler(0, &ok[3].0, ok[3].1, ENV).unwrap().target.unwrap();
    assert_eq!(from_auth.password.expose(), "MYSQL_PASSWORD");
    // TestMetadataToConnectionStrUseConnStr: the connection string as given.
    assert_eq!(
        scaler(0, &ok[0].0, &[], ENV).unwrap().target,
        Some(dsn::parse("user@tcp(http://my.mysql.dev:3306)/stats_db").unwrap())
    );
}

/// The failing cases of KEDA's `testMySQLMetadata`, and the port KEDA takes on trust.
#[test]
fn refuses_keda_error_cases() {
    let mut aa = FIELDS.to_vec();
    aa.retain(|(k, _)| *k != "username");
    for (meta, auth, env, want) in [
        (vec![], FIELDS, ENV, "triggers[0].metadata.query: required"),
        (
            with(&[("activationQueryValue", "AA")]),
            FIELDS,
            ENV,
            "activationQueryValue: \"AA\" is not a number",
        ),
        (
            with(&[("activationQueryValue", "AA")]),
            &aa[..],
            &[][..],
            "triggers[0].metadata.username: no username given",
        ),
        (
            with(&[("host", "h"), ("port", "test_port"), ("username", "u")]),
            &[],
            ENV,
            "port: \"test_port\" is not a port number",
        ),
    ] {
        let e = scaler(0, &meta, auth, env)
            .err()
            .expect("invalid")
            .to_string();
        assert!(e.contains(want), "want {want:?} in {e}");
    }
}

#[test]
fn the_metric_is_named_after_the_text_behind_the_last_slash() {
    for (dsn, want) in [
        ("u:p@tcp(h:3306)/orders", "s0-mysql-orders"),
        (
            "u:p@tcp(h:3306)/orders?tls=true",
            "s0-mysql-orders?tls=true",
        ),
        ("u:p@tcp(db.example:3306)/", "s0-mysql-"),
    ] {
        let s = scaler(
            0,
            &[("query", "q"), ("queryValue", "1")],
            &[("connectionString", dsn)],
            &[],
        )
        .unwrap();
        assert_eq!(s.metric_spec().name(), want, "{dsn}");
    }
    let s = scaler(
        0,
        &[
            ("query", "q"),
            ("queryValue", "1"),
            ("host", "h"),
            ("port", "1"),
            ("username", "u"),
        ],
        &[],
        &[],
    );
    assert_eq!(s.unwrap().metric_spec().name(), "s0-mysql-");
}

#[test]
fn refuses_bad_input_with_the_field() {
    let conn: Pairs = &[("connectionString", "u:hunter2@tcp(h:3306)/d")];
    let cases: &[(Pairs, Pairs, &str)] = &[
        (
            &[("query", "q")],
            conn,
            "triggers[0].metadata.queryValue: required",
        ),
        (
            &[("query", "q"), ("queryValue", "0")],
            conn,
            "queryValue: must be greater than 0",
        ),
        (
            &[("query", "q"), ("queryValue", "x")],
            conn,
            "queryValue: \"x\" is not a number",
        ),
        (
            &[("query", "q"), ("queryValue", "1")],
            &[],
            "triggers[0].metadata.host: no host given",
        ),
        (
            &[("query", "q"), ("queryValue", "1"), ("host", "h")],
            &[],
            "triggers[0].metadata.port: no port given",
        ),
        (
            &[
                ("query", "q"),
                ("queryValue", "1"),
                ("host", "h"),
                ("port", "70000"),
            ],
            &[],
            "port: \"70000\" is not a port number",
        ),
        (
            &[
                ("query", "q"),
                ("queryValue", "1"),
                ("connectionString", "u:hunter2@tcp(h:3306)/d"),
            ],
            &[],
            "triggers[0].metadata.connectionString: holds credentials",
        ),
        (
            &[("query", "q"), ("queryValue", "1"), ("password", "hunter2")],
            conn,
            "triggers[0].metadata.password: holds credentials",
        ),
        (
            &[("query", "q"), ("queryValue", "1")],
            &[("connectionString", "u:hunter2@tcp(h:3306)/d?tls=custom")],
            "connectionString: not a go-sql-driver DSN: parameter tls: \"custom\" is not a TLS mode",
        ),
        (
            &[("query", "q"), ("queryValue", "1")],
            &[("connectionString", "u:hunter2@h:3306/d")],
            "connectionString: not a go-sql-driver DSN: network \"h:3306\" is not supported",
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
fn reads_the_first_column_as_keda_scans_a_float() {
    for (v, want) in [
        (Value::Bytes(b"42".to_vec()), Ok(42.0)),
        (Value::Bytes(b"2.50".to_vec()), Ok(2.5)),
        (Value::Bytes(b"-3e2".to_vec()), Ok(-300.0)),
        (Value::Int(-7), Ok(-7.0)),
        (Value::UInt(7), Ok(7.0)),
        (Value::Double(0.25), Ok(0.25)),
        (
            Value::NULL,
            Err("the query returned NULL, not a number".to_string()),
        ),
        (
            Value::Bytes(b"many".to_vec()),
            Err("the query returned \"many\", not a number".to_string()),
        ),
        (
            Value::Bytes(b"NaN".to_vec()),
            Err("the query returned NaN, not a finite number".to_string()),
        ),
        (
            Value::Date(2026, 1, 1, 0, 0, 0, 0),
            Err("the query returned a date or time, not a number".to_string()),
        ),
    ] {
        assert_eq!(first_number(Some(v.clone())), want, "{v:?}");
    }
    assert_eq!(
        first_number(None),
        Err("the query returned no rows".to_string())
    );
}

#[test]
fn server_errors_say_their_kind() {
    for (code, kind) in [
        (1045, K::Auth),
        (1044, K::Auth),
        (1142, K::Auth),
        (1049, K::NotFound),
        (1146, K::NotFound),
        (1064, K::Other),
    ] {
        assert_eq!(server_error_kind(code), kind, "{code}");
    }
    let e = mysql_async::Error::Server(mysql_async::ServerError {
        code: 1045,
        message: "Access denied for user 'u'@'10.0.0.1' (using password: YES)".into(),
        state: "28000".into(),
    });
    let u = upstream("db:3306", &e);
    assert_eq!((u.kind, u.code), (K::Auth, Some(Code::Sql("28000".into()))));
    assert_eq!(
        u.message,
        "mysql db:3306: ERROR 1045 (28000): Access denied for user 'u'@'10.0.0.1' (using password: YES)"
    );
}

#[test]
fn falls_back_to_plaintext_only_when_allowed_and_tls_is_missing() {
    let no_tls = mysql_async::Error::Driver(mysql_async::DriverError::NoClientSslFlagFromServer);
    let refused = mysql_async::Error::Io(mysql_async::IoError::Io(
        std::io::ErrorKind::ConnectionRefused.into(),
    ));
    let dsn = |q: &str| dsn::parse(&format!("u:p@tcp(h:1)/d{q}")).unwrap();
    for (q, e, want) in [
        ("?tls=preferred", &no_tls, true),
        ("?tls=true&allowFallbackToPlaintext=true", &no_tls, true),
        ("?tls=preferred", &refused, false),
        ("?tls=true", &no_tls, false),
        ("?tls=skip-verify", &no_tls, false),
        ("?allowFallbackToPlaintext=true", &no_tls, false),
    ] {
        assert_eq!(falls_back(&dsn(q), e), want, "{q} {e}");
    }
}

#[test]
fn secrets_stay_out_of_the_key_and_debug() {
    let s = scaler(
        0,
        &[("query", "q"), ("queryValue", "1")],
        &[("connectionString", "u:hunter2@tcp(h:1)/d")],
        &[],
    )
    .unwrap();
    assert!(!s.coalesce_key().contains("hunter2"));
    assert!(!format!("{:?}", s.target).contains("hunter2"));
}
