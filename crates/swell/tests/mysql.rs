//! The `mysql` scaler against a real MariaDB (Debian's mariadb-server, started by
//! `hack/mariadb.sh`): the connection from fields or a go-sql-driver DSN, its `tls` values,
//! a Unix socket, system variables, what a query may return, one pool per target shared by
//! triggers, a server that is down and a wrong password; and a Deployment scaled 0 → 3 → 0
//! by the real HPA.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::metrics_api::{counter, operator_with_metrics_api_env};
use common::*;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use mysql_async::prelude::Queryable as _;
use swell_scalers::upstream::UpstreamKind;
use swell_scalers::{RawParams, ScalerError, Shared, TriggerInput, map};
use swell_testkit::{Mysql, unique_suffix};

fn trigger(index: usize, meta: &[(&str, &str)], auth: &[(&str, &str)]) -> TriggerInput {
    TriggerInput {
        index,
        type_: "mysql".into(),
        params: RawParams {
            trigger_index: index,
            metadata: map(meta),
            auth: map(auth),
            ..Default::default()
        },
        polling_interval: Duration::from_secs(30),
        ..Default::default()
    }
}

/// The test's own connection, to make tables and rows.
async fn admin(db: &Mysql) -> mysql_async::Conn {
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(db.host.clone())
        .tcp_port(db.port.parse().unwrap())
        .user(Some(db.user.clone()))
        .pass(Some(db.password.clone()))
        .db_name(Some(db.db.clone()))
        .prefer_socket(false);
    mysql_async::Conn::new(opts).await.unwrap()
}

/// A table of `rows` jobs, its name.
async fn jobs(c: &mut mysql_async::Conn, rows: u32) -> String {
    let table = format!("jobs_{}", unique_suffix());
    c.query_drop(format!(
        "CREATE TABLE {table} (id INT AUTO_INCREMENT PRIMARY KEY, done BOOL NOT NULL DEFAULT 0)"
    ))
    .await
    .unwrap();
    for _ in 0..rows {
        c.query_drop(format!("INSERT INTO {table} () VALUES ()"))
            .await
            .unwrap();
    }
    table
}

async fn sample(meta: &[(&str, &str)], auth: &[(&str, &str)]) -> Result<f64, ScalerError> {
    let s = swell_scalers::build(&trigger(0, meta, auth), &Shared::default()).unwrap();
    s.sample().await.map(|s| s.value)
}

async fn read(meta: &[(&str, &str)], auth: &[(&str, &str)]) -> Result<f64, String> {
    sample(meta, auth).await.map_err(|e| e.to_string())
}

/// 1 when the connection the scaler reads on is encrypted, else 0.
const ENCRYPTED: &str = "SELECT COUNT(*) FROM information_schema.SESSION_STATUS \
    WHERE VARIABLE_NAME = 'Ssl_cipher' AND VARIABLE_VALUE <> ''";

/// host/port/username/dbName with the password from the TriggerAuthentication; DSNs with
/// each `tls` value (`true` refuses the run's CA, which the system does not trust), over the
/// socket, with a system variable; and every kind of answer.
#[tokio::test(flavor = "multi_thread")]
async fn mysql_reads_a_query() {
    let db = Mysql::shared();
    let mut c = admin(db).await;
    let table = jobs(&mut c, 4).await;
    let count = format!("SELECT COUNT(*) FROM {table} WHERE NOT done");
    let fields = [
        ("query", count.as_str()),
        ("queryValue", "2"),
        ("host", db.host.as_str()),
        ("port", db.port.as_str()),
        ("username", db.user.as_str()),
        ("dbName", db.db.as_str()),
    ];
    assert_eq!(read(&fields, &[("password", &db.password)]).await, Ok(4.0));

    let q = |query: &'static str| [("query", query), ("queryValue", "1")];
    let with = |query: &'static str, dsn: &str| {
        let dsn = dsn.to_string();
        async move { read(&q(query), &[("connectionString", &dsn)]).await }
    };
    let counted = [("query", count.as_str()), ("queryValue", "2")];
    assert_eq!(
        read(&counted, &[("connectionString", &db.dsn(""))]).await,
        Ok(4.0)
    );
    for (params, encrypted) in [
        ("", 0.0),
        ("tls=false", 0.0),
        ("tls=skip-verify", 1.0),
        ("tls=preferred", 1.0),
    ] {
        assert_eq!(
            with(ENCRYPTED, &db.dsn(params)).await,
            Ok(encrypted),
            "{params}"
        );
    }
    let e = with(ENCRYPTED, &db.dsn("tls=true")).await.unwrap_err();
    assert!(
        e.contains(&format!("mysql {}:{}: ", db.host, db.port)) && e.contains("certificate"),
        "{e}"
    );
    let socket = format!("{}:{}@unix({})/{}", db.user, db.password, db.socket, db.db);
    assert_eq!(with(ENCRYPTED, &socket).await, Ok(0.0));
    let ansi = db.dsn("sql_mode=%27ANSI_QUOTES%27&timeout=5s&readTimeout=5s");
    assert_eq!(
        with("SELECT @@SESSION.sql_mode = 'ANSI_QUOTES'", &ansi).await,
        Ok(1.0)
    );

    for (query, want) in [
        ("SELECT 2.5", Ok(2.5)),
        (
            "SELECT CAST(12345678901234 AS DECIMAL(20,2))",
            Ok(12_345_678_901_234.0),
        ),
        ("SELECT '7'", Ok(7.0)),
        ("SELECT 1, 2 UNION ALL SELECT 3, 4", Ok(1.0)),
    ] {
        assert_eq!(with(query, &db.dsn("")).await, want, "{query}");
    }
    for (query, want) in [
        ("SELECT NULL", "returned NULL, not a number"),
        ("SELECT 'many'", "returned \"many\", not a number"),
        ("SELECT 1 FROM DUAL WHERE false", "returned no rows"),
        (
            "SELECT * FROM no_such_table",
            "ERROR 1146 (42S02): Table 'swell.no_such_table' doesn't exist",
        ),
    ] {
        let e = with(query, &db.dsn("")).await.unwrap_err();
        assert!(
            e.contains(&format!("mysql {}:{}: ", db.host, db.port)) && e.contains(want),
            "{query}: {e}"
        );
    }
}

/// A server that offers no TLS: `preferred` and `allowFallbackToPlaintext` fall back to
/// plaintext, `skip-verify` and `true` do not.
#[tokio::test(flavor = "multi_thread")]
async fn mysql_falls_back_to_plaintext_only_when_the_dsn_allows() {
    let db = Mysql::without_tls();
    let read = |params: &str| {
        let dsn = db.dsn(params);
        async move {
            let meta = [("query", ENCRYPTED), ("queryValue", "1")];
            read(&meta, &[("connectionString", &dsn)]).await
        }
    };
    assert_eq!(read("tls=preferred").await, Ok(0.0));
    assert_eq!(
        read("tls=skip-verify&allowFallbackToPlaintext=true").await,
        Ok(0.0)
    );
    for params in ["tls=skip-verify", "tls=true"] {
        let e = read(params).await.unwrap_err();
        assert!(
            e.contains(&format!(
                "mysql {}:{}: the server does not offer TLS",
                db.host, db.port
            )),
            "{params}: {e}"
        );
    }
}

/// Two triggers on the same server and query share one pool and one reading; another query
/// on it shares the pool only.
#[tokio::test(flavor = "multi_thread")]
async fn mysql_triggers_share_the_pool_and_the_reading() {
    let db = Mysql::shared();
    let mut c = admin(db).await;
    let table = jobs(&mut c, 3).await;
    let count = format!("SELECT COUNT(*) FROM {table}");
    let dsn = db.dsn("");
    let auth = [("connectionString", dsn.as_str())];
    let shared = Shared::default();
    let meta = [
        ("query", count.as_str()),
        ("queryValue", "1"),
        ("activationQueryValue", "2"),
    ];
    let a = swell_scalers::build(&trigger(0, &meta, &auth), &shared).unwrap();
    let b = swell_scalers::build(&trigger(1, &meta, &auth), &shared).unwrap();
    assert_eq!(a.metric_spec().name(), "s0-mysql-swell");
    assert_eq!(b.metric_spec().name(), "s1-mysql-swell");
    let (sa, sb) = (a.sample().await.unwrap(), b.sample().await.unwrap());
    assert_eq!((sa.value, sa.active), (3.0, true));
    assert_eq!(sb.value, 3.0);
    let calls = || -> u64 {
        shared
            .upstream_calls
            .get_or_create(&vec![("scaler", "mysql".to_string())])
            .get()
    };
    assert_eq!(calls(), 1, "the second trigger reused the first reading");
    let other = [
        ("query", "SELECT 1"),
        ("queryValue", "1"),
        ("activationQueryValue", "2"),
    ];
    let o = swell_scalers::build(&trigger(2, &other, &auth), &shared).unwrap();
    let so = o.sample().await.unwrap();
    assert_eq!((so.value, so.active), (1.0, false));
    assert_eq!(calls(), 2);
    assert_eq!(shared.mysql.len(), 1, "one pool for the server");
}

fn on_port<'a>(port: &'a str, db: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("query", "SELECT 1"),
        ("queryValue", "1"),
        ("host", "127.0.0.1"),
        ("port", port),
        ("username", "swell"),
        ("dbName", db),
    ]
}

/// A server nobody listens on, a wrong password and a database the user may not use: the
/// error names the server and the cause, and says its kind; never the password.
#[tokio::test(flavor = "multi_thread")]
async fn mysql_errors_name_the_server_and_the_cause() {
    let db = Mysql::shared();
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port().to_string()
    };
    let kind = |e: &ScalerError| e.upstream().map(|u| u.kind);
    let e = sample(&on_port(&down, "swell"), &[("password", "x")])
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("mysql 127.0.0.1:{down}: ")) && msg.contains("refused"),
        "{msg}"
    );
    assert_eq!(kind(&e), Some(UpstreamKind::Connect));

    let port = db.port.as_str();
    let e = sample(&on_port(port, "swell"), &[("password", "wrong-secret")])
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains(&format!(
            "mysql 127.0.0.1:{port}: ERROR 1045 (28000): Access denied for user 'swell'@'127.0.0.1' (using password: YES)"
        )),
        "{msg}"
    );
    assert!(!msg.contains("wrong-secret"), "{msg}");
    assert_eq!(kind(&e), Some(UpstreamKind::Auth));

    let e = sample(&on_port(port, "mysql"), &[("password", &db.password)])
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("Access denied for user 'swell'@'%' to database 'mysql'"),
        "{e}"
    );
    assert_eq!(kind(&e), Some(UpstreamKind::Auth));
}

/// 0 → 3 → 0: 9 rows at queryValue 3 is 3 replicas; deleting them takes the Deployment back
/// to 0. The connection string (`tls=true`, the run's CA trusted by the operator through
/// SSL_CERT_FILE) comes from a TriggerAuthentication's Secret, and the metric is named as
/// KEDA names it, `?tls=true` included. A ScaledObject with a wrong password and one
/// pointed at a server that is down get KEDAScalerFailed naming the server and the cause,
/// and stay put.
#[tokio::test(flavor = "multi_thread")]
async fn mysql_scales_through_the_hpa() {
    swell();
    let cluster = cluster();
    let db = Mysql::shared();
    cluster
        .with_namespace("sc-mysql", |ns| async move {
            let mut c = admin(db).await;
            let table = jobs(&mut c, 0).await;
            let secret = |name: &str, key: &str, value: &str| {
                format!(
                    "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}}}\nstringData: {{{key}: \"{value}\"}}\n---\napiVersion: keda.sh/v1alpha1\nkind: TriggerAuthentication\nmetadata: {{name: {name}}}\nspec:\n  secretTargetRef:\n  - {{parameter: {key}, name: {name}, key: {key}}}\n"
                )
            };
            let so = |name: &str, auth: &str, server: &str| {
                format!(
                    r#"
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {{name: {name}}}
spec:
  scaleTargetRef: {{name: {name}}}
  pollingInterval: 1
  cooldownPeriod: 2
  maxReplicaCount: 10
  triggers:
  - type: mysql
    metadata:
      query: "SELECT COUNT(*) FROM {table}"
      queryValue: "3"
{server}
    authenticationRef: {{name: {auth}}}
"#
                )
            };
            let fields = |port: &str| {
                format!(
                    "      host: \"{}\"\n      port: \"{port}\"\n      username: \"{}\"\n      dbName: \"{}\"",
                    db.host, db.user, db.db
                )
            };
            let down = common::metrics_api::free_port().to_string();
            ns.apply(cluster, &secret("my-conn", "connectionString", &db.dsn("tls=true"))).unwrap();
            ns.apply(cluster, &secret("my-wrong", "password", "not-the-password")).unwrap();
            for name in ["app", "wrong", "down"] {
                ns.apply(cluster, &deployment(name, 0)).unwrap();
            }
            ns.apply(cluster, &so("app", "my-conn", "")).unwrap();
            ns.apply(cluster, &so("wrong", "my-wrong", &fields(&db.port))).unwrap();
            ns.apply(cluster, &so("down", "my-wrong", &fields(&down))).unwrap();

            let ca = db.tls_ca.as_ref().unwrap().display().to_string();
            let (op, _guard) =
                operator_with_metrics_api_env(cluster, &ns, &[("SSL_CERT_FILE", ca.as_str())]).await;
            wait_condition(&ns, "app", "Ready", "True").await;
            wait_condition(&ns, "app", "Active", "False").await;
            let e = wait_event(&ns, "KEDAScalerFailed", "Access denied").await;
            assert!(
                e.contains(&format!("mysql {}:{}: ERROR 1045 (28000): Access denied for user 'swell'", db.host, db.port))
                    && !e.contains("not-the-password"),
                "{e}"
            );
            let e = wait_event(&ns, "KEDAScalerFailed", &format!("mysql 127.0.0.1:{down}: ")).await;
            assert!(e.contains("refused"), "{e}");

            for _ in 0..9 {
                c.query_drop(format!("INSERT INTO {table} () VALUES ()")).await.unwrap();
            }
            wait_replicas(&ns, "app", 3).await;
            wait_event(&ns, "KEDAScaleTargetActivated", "from 0 to 1").await;
            // The HPA went from 1 to 3 reading the metric KEDA's name gives it.
            let hpa = ns.api::<HorizontalPodAutoscaler>().get("keda-hpa-app").await.unwrap();
            let metric = hpa.spec.metrics.and_then(|m| m.into_iter().next());
            let name = metric.and_then(|m| m.external).map(|e| e.metric.name);
            assert_eq!(name.as_deref(), Some("s0-mysql-swell?tls=true"));
            assert!(counter(&op, "swell_scaler_upstream_calls_total{scaler=\"mysql\"}") > 0.0);
            assert_eq!(replicas(&ns, "wrong").await, Ok(0), "the failing ScaledObject stays put");
            assert_eq!(replicas(&ns, "down").await, Ok(0), "the failing ScaledObject stays put");

            c.query_drop(format!("DELETE FROM {table}")).await.unwrap();
            wait_replicas(&ns, "app", 0).await;
        })
        .await;
}
