//! The `postgresql` scaler against a real PostgreSQL (Debian's postgresql, started by
//! `hack/postgresql.sh`): the connection from fields or a connection string, TLS modes,
//! what a query may return, one client per connection shared by triggers, a server that is
//! down and a wrong password; and a Deployment scaled 0 → 3 → 0 by the real HPA.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::metrics_api::{counter, operator_with_metrics_api};
use common::*;
use swell_scalers::{RawParams, Shared, TriggerInput, map};
use swell_testkit::{Postgres, unique_suffix};

fn trigger(index: usize, meta: &[(&str, &str)], auth: &[(&str, &str)]) -> TriggerInput {
    TriggerInput {
        index,
        type_: "postgresql".into(),
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

/// The test's own client, to make tables and rows.
async fn admin(pg: &Postgres) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&pg.connection("disable"), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

/// A table of `rows` jobs, its name.
async fn jobs(c: &tokio_postgres::Client, rows: u32) -> String {
    let table = format!("jobs_{}", unique_suffix());
    c.batch_execute(&format!(
        "CREATE TABLE {table} (id serial PRIMARY KEY, done boolean NOT NULL DEFAULT false)"
    ))
    .await
    .unwrap();
    for _ in 0..rows {
        c.execute(&format!("INSERT INTO {table} DEFAULT VALUES"), &[])
            .await
            .unwrap();
    }
    table
}

async fn read(meta: &[(&str, &str)], auth: &[(&str, &str)]) -> Result<f64, String> {
    let s = swell_scalers::build(&trigger(0, meta, auth), &Shared::default()).unwrap();
    s.sample().await.map(|s| s.value).map_err(|e| e.to_string())
}

/// host/port/userName/dbName/sslmode with the password from the TriggerAuthentication, a
/// connection string (key/value and URL), TLS (`require`: encrypted, certificate unchecked;
/// `verify-full`: the run's self-signed CA is not trusted), and every kind of answer.
#[tokio::test(flavor = "multi_thread")]
async fn postgresql_reads_a_query() {
    let pg = Postgres::shared();
    let c = admin(pg).await;
    let table = jobs(&c, 4).await;
    let count = format!("SELECT count(*) FROM {table} WHERE NOT done");
    let fields = |sslmode: &'static str| -> Vec<(&str, &str)> {
        vec![
            ("query", count.as_str()),
            ("targetQueryValue", "2"),
            ("host", pg.host.as_str()),
            ("port", pg.port.as_str()),
            ("userName", pg.user.as_str()),
            ("dbName", pg.db.as_str()),
            ("sslmode", sslmode),
        ]
    };
    let pw = [("password", pg.password.as_str())];
    assert_eq!(read(&fields("disable"), &pw).await, Ok(4.0));
    assert_eq!(read(&fields("require"), &pw).await, Ok(4.0));
    assert_eq!(read(&fields("prefer"), &pw).await, Ok(4.0));
    let e = read(&fields("verify-full"), &pw).await.unwrap_err();
    assert!(
        e.contains(&format!("postgresql {}:{}", pg.host, pg.port)) && e.contains("certificate"),
        "{e}"
    );

    let url = format!(
        "postgresql://{}:{}@{}:{}/{}?sslmode=require",
        pg.user, pg.password, pg.host, pg.port, pg.db
    );
    for conn in [pg.connection("disable"), url] {
        let meta = [("query", count.as_str()), ("targetQueryValue", "2")];
        assert_eq!(read(&meta, &[("connection", conn.as_str())]).await, Ok(4.0));
    }

    let conn = pg.connection("disable");
    let auth = [("connection", conn.as_str())];
    for (query, want) in [
        ("SELECT 2.5::float8", Ok(2.5)),
        ("SELECT 12345678901234::numeric", Ok(12_345_678_901_234.0)),
        ("SELECT '7'::text", Ok(7.0)),
        ("SELECT 1, 2 UNION ALL SELECT 3, 4", Ok(1.0)),
    ] {
        assert_eq!(
            read(&[("query", query), ("targetQueryValue", "1")], &auth).await,
            want,
            "{query}"
        );
    }
    for (query, want) in [
        ("SELECT NULL::int", "returned NULL, not a number"),
        ("SELECT 'many'", "returned \"many\", not a number"),
        ("SELECT 1 WHERE false", "returned no rows"),
        (
            "SELECT * FROM no_such_table",
            "relation \"no_such_table\" does not exist",
        ),
    ] {
        let e = read(&[("query", query), ("targetQueryValue", "1")], &auth)
            .await
            .unwrap_err();
        assert!(
            e.contains(&format!("postgresql {}:{}", pg.host, pg.port)) && e.contains(want),
            "{query}: {e}"
        );
    }
}

/// Two triggers on the same connection and query share one client and one reading; another
/// query on it shares the client only.
#[tokio::test(flavor = "multi_thread")]
async fn postgresql_triggers_share_the_client_and_the_reading() {
    let pg = Postgres::shared();
    let c = admin(pg).await;
    let table = jobs(&c, 3).await;
    let count = format!("SELECT count(*) FROM {table}");
    let conn = pg.connection("disable");
    let auth = [("connection", conn.as_str())];
    let shared = Shared::default();
    let meta = [
        ("query", count.as_str()),
        ("targetQueryValue", "1"),
        ("activationTargetQueryValue", "2"),
    ];
    let a = swell_scalers::build(&trigger(0, &meta, &auth), &shared).unwrap();
    let b = swell_scalers::build(&trigger(1, &meta, &auth), &shared).unwrap();
    assert_eq!(a.metric_spec().name(), "s0-postgresql");
    assert_eq!(b.metric_spec().name(), "s1-postgresql");
    let (sa, sb) = (a.sample().await.unwrap(), b.sample().await.unwrap());
    assert_eq!((sa.value, sa.active), (3.0, true));
    assert_eq!(sb.value, 3.0);
    let calls = || -> u64 {
        shared
            .upstream_calls
            .get_or_create(&vec![("scaler", "postgresql".to_string())])
            .get()
    };
    assert_eq!(calls(), 1, "the second trigger reused the first reading");
    let other = [
        ("query", "SELECT 1"),
        ("targetQueryValue", "1"),
        ("activationTargetQueryValue", "2"),
    ];
    let o = swell_scalers::build(&trigger(2, &other, &auth), &shared).unwrap();
    let so = o.sample().await.unwrap();
    assert_eq!((so.value, so.active), (1.0, false));
    assert_eq!(calls(), 2);
    assert_eq!(
        shared.postgres.len(),
        1,
        "one client for the connection string"
    );
}

fn on_port(port: &str) -> Vec<(&str, &str)> {
    vec![
        ("query", "SELECT 1"),
        ("targetQueryValue", "1"),
        ("host", "127.0.0.1"),
        ("port", port),
        ("userName", "swell"),
        ("dbName", "swell"),
        ("sslmode", "disable"),
    ]
}

/// A server nobody listens on, and a wrong password: the error names the server and the
/// cause, never the password.
#[tokio::test(flavor = "multi_thread")]
async fn postgresql_errors_name_the_server_and_the_cause() {
    let pg = Postgres::shared();
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port().to_string()
    };
    let e = read(&on_port(&down), &[("password", "x")])
        .await
        .unwrap_err();
    assert!(
        e.contains(&format!("postgresql 127.0.0.1:{down}")) && e.contains("refused"),
        "{e}"
    );
    let port = pg.port.as_str();
    let e = read(&on_port(port), &[("password", "wrong-secret")])
        .await
        .unwrap_err();
    assert!(
        e.contains(&format!("postgresql 127.0.0.1:{port}"))
            && e.contains("password authentication failed for user \"swell\""),
        "{e}"
    );
    assert!(!e.contains("wrong-secret"), "{e}");
    let e = read(
        &[("query", "SELECT 1"), ("targetQueryValue", "1")],
        &[("connection", "host=h port=notaport")],
    )
    .await
    .unwrap_err();
    assert!(e.contains("the connection string is not valid"), "{e}");
}

/// 0 → 3 → 0: 9 jobs not done at targetQueryValue 3 is 3 replicas; marking them done takes
/// the Deployment back to 0. host/port/dbName/sslmode in metadata, userName and password
/// from a TriggerAuthentication's Secret; a second ScaledObject with a wrong password gets
/// KEDAScalerFailed naming the server and the cause, and stays put.
#[tokio::test(flavor = "multi_thread")]
async fn postgresql_scales_through_the_hpa() {
    swell();
    let cluster = cluster();
    let pg = Postgres::shared();
    cluster
        .with_namespace("sc-postgresql", |ns| async move {
            let c = admin(pg).await;
            let table = jobs(&c, 0).await;
            let auth = |name: &str, password: &str| {
                format!(
                    "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}}}\nstringData: {{user: \"{}\", password: \"{password}\"}}\n---\napiVersion: keda.sh/v1alpha1\nkind: TriggerAuthentication\nmetadata: {{name: {name}}}\nspec:\n  secretTargetRef:\n  - {{parameter: userName, name: {name}, key: user}}\n  - {{parameter: password, name: {name}, key: password}}\n",
                    pg.user
                )
            };
            let so = |name: &str, auth: &str| {
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
  - type: postgresql
    metadata:
      host: "{host}"
      port: "{port}"
      dbName: "{db}"
      sslmode: require
      query: "SELECT count(*) FROM {table} WHERE NOT done"
      targetQueryValue: "3"
    authenticationRef: {{name: {auth}}}
"#,
                    host = pg.host,
                    port = pg.port,
                    db = pg.db,
                )
            };
            ns.apply(cluster, &auth("pg-auth", &pg.password)).unwrap();
            ns.apply(cluster, &auth("pg-wrong", "not-the-password")).unwrap();
            for name in ["app", "wrong"] {
                ns.apply(cluster, &deployment(name, 0)).unwrap();
            }
            ns.apply(cluster, &so("app", "pg-auth")).unwrap();
            ns.apply(cluster, &so("wrong", "pg-wrong")).unwrap();

            let (op, _guard) = operator_with_metrics_api(cluster, &ns).await;
            wait_condition(&ns, "app", "Ready", "True").await;
            wait_condition(&ns, "app", "Active", "False").await;
            let e = wait_event(&ns, "KEDAScalerFailed", "password authentication failed").await;
            assert!(e.contains(&format!("postgresql {}:{}", pg.host, pg.port)) && !e.contains("not-the-password"), "{e}");

            for _ in 0..9 {
                c.execute(&format!("INSERT INTO {table} DEFAULT VALUES"), &[]).await.unwrap();
            }
            wait_replicas(&ns, "app", 3).await;
            wait_event(&ns, "KEDAScaleTargetActivated", "from 0 to 1").await;
            assert!(counter(&op, "swell_scaler_upstream_calls_total{scaler=\"postgresql\"}") > 0.0);
            assert_eq!(replicas(&ns, "wrong").await, Ok(0), "the failing ScaledObject stays put");

            c.execute(&format!("UPDATE {table} SET done = true"), &[]).await.unwrap();
            wait_replicas(&ns, "app", 0).await;
        })
        .await;
}
