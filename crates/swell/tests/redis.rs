//! The `redis` and `redis-streams` scalers against a real Redis (Debian's redis-server,
//! started by `hack/redis.sh`): readings of every key type and stream mode, one connection
//! per server shared by triggers, the default and an ACL user, TLS, a server that is down
//! and a wrong password; and Deployments scaled 0 → N → 0 by the real HPA.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::metrics_api::{counter, operator_with_metrics_api};
use common::*;
use swell_scalers::redis_client::{RedisClients, Target};
use swell_scalers::tls::Secret;
use swell_scalers::{RawParams, Shared, TriggerInput, map};
use swell_testkit::{Redis, unique_suffix};

fn trigger(
    type_: &str,
    index: usize,
    meta: &[(&str, &str)],
    auth: &[(&str, &str)],
) -> TriggerInput {
    TriggerInput {
        index,
        type_: type_.into(),
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

/// A client of the test's own, as the default user, to write the data the scalers read.
fn admin(redis: &Redis) -> (RedisClients, Target) {
    let target = Target {
        password: Some(Secret::new(redis.password.clone())),
        ..Target::standalone(redis.address.clone())
    };
    (RedisClients::default(), target)
}

async fn run(c: &RedisClients, t: &Target, args: &[&str]) {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    let _: redis::Value = c.query(t, &cmd).await.unwrap();
}

async fn sample(type_: &str, meta: &[(&str, &str)], auth: &[(&str, &str)]) -> f64 {
    let s = swell_scalers::build(&trigger(type_, 0, meta, auth), &Shared::default()).unwrap();
    s.sample().await.unwrap().value
}

/// Every key type KEDA's script measures, on the plain port as the default user and as an
/// ACL user, in another database, and over TLS (with the CA, and with unsafeSsl).
#[tokio::test(flavor = "multi_thread")]
async fn redis_reads_the_size_of_every_key_type() {
    let redis = Redis::shared();
    let (c, t) = admin(redis);
    let s = unique_suffix();
    let (list, set, zset, hash) = (
        format!("l-{s}"),
        format!("s-{s}"),
        format!("z-{s}"),
        format!("h-{s}"),
    );
    run(&c, &t, &["RPUSH", &list, "a", "b", "c"]).await;
    run(&c, &t, &["SADD", &set, "a", "b"]).await;
    run(
        &c,
        &t,
        &["ZADD", &zset, "1", "a", "2", "b", "3", "c", "4", "d"],
    )
    .await;
    run(&c, &t, &["HSET", &hash, "a", "1"]).await;
    let pw = [("password", redis.password.as_str())];
    let addr = redis.address.as_str();
    for (key, want) in [
        (&list, 3.0),
        (&set, 2.0),
        (&zset, 4.0),
        (&hash, 1.0),
        (&format!("none-{s}"), 0.0),
    ] {
        let got = sample("redis", &[("address", addr), ("listName", key)], &pw).await;
        assert_eq!(got, want, "{key}");
    }
    // An unsupported type is KEDA's script error, naming the server.
    let string = format!("str-{s}");
    run(&c, &t, &["SET", &string, "x"]).await;
    let scaler = swell_scalers::build(
        &trigger("redis", 0, &[("address", addr), ("listName", &string)], &pw),
        &Shared::default(),
    )
    .unwrap();
    let e = scaler.sample().await.unwrap_err().to_string();
    assert!(
        e.contains(&format!("redis {addr}")) && e.contains("unsupported key type: string"),
        "{e}"
    );

    // An ACL user; host and port instead of address.
    let (host, port) = addr.split_once(':').unwrap();
    let acl = [
        ("username", redis.acl_user.as_str()),
        ("password", redis.acl_password.as_str()),
    ];
    assert_eq!(
        sample(
            "redis",
            &[("host", host), ("port", port), ("listName", &list)],
            &acl
        )
        .await,
        3.0
    );
    // Another database holds other keys.
    let t1 = Target { db: 1, ..t.clone() };
    run(&c, &t1, &["RPUSH", &list, "only-in-db-1"]).await;
    assert_eq!(
        sample(
            "redis",
            &[
                ("address", addr),
                ("listName", &list),
                ("databaseIndex", "1")
            ],
            &pw
        )
        .await,
        1.0
    );

    // TLS: with the CA from the TriggerAuthentication, and with unsafeSsl; without either
    // the self-signed server is refused.
    let tls = redis.tls_address.as_str();
    let with_ca = [
        ("password", redis.password.as_str()),
        ("tls", "enable"),
        ("ca", redis.ca_pem.as_str()),
    ];
    assert_eq!(
        sample("redis", &[("address", tls), ("listName", &list)], &with_ca).await,
        3.0
    );
    assert_eq!(
        sample(
            "redis",
            &[
                ("address", tls),
                ("listName", &list),
                ("enableTLS", "true"),
                ("unsafeSsl", "true")
            ],
            &pw
        )
        .await,
        3.0
    );
    let scaler = swell_scalers::build(
        &trigger(
            "redis",
            0,
            &[("address", tls), ("listName", &list), ("enableTLS", "true")],
            &pw,
        ),
        &Shared::default(),
    )
    .unwrap();
    let e = scaler.sample().await.unwrap_err().to_string();
    assert!(e.contains(&format!("redis {tls}")), "{e}");
}

/// Two triggers on the same server and key share one connection and one reading; another
/// key on the same server shares the connection only.
#[tokio::test(flavor = "multi_thread")]
async fn redis_triggers_share_the_connection_and_the_reading() {
    let redis = Redis::shared();
    let (c, t) = admin(redis);
    let list = format!("shared-{}", unique_suffix());
    run(&c, &t, &["RPUSH", &list, "a", "b"]).await;
    let shared = Shared::default();
    let meta = [
        ("address", redis.address.as_str()),
        ("listName", list.as_str()),
        ("listLength", "1"),
        ("activationListLength", "1"),
    ];
    let pw = [("password", redis.password.as_str())];
    let a = swell_scalers::build(&trigger("redis", 0, &meta, &pw), &shared).unwrap();
    let b = swell_scalers::build(&trigger("redis", 1, &meta, &pw), &shared).unwrap();
    assert_eq!(a.metric_spec().name(), format!("s0-redis-{list}"));
    assert_eq!(b.metric_spec().name(), format!("s1-redis-{list}"));
    let (sa, sb) = (a.sample().await.unwrap(), b.sample().await.unwrap());
    assert_eq!((sa.value, sa.active), (2.0, true));
    assert_eq!(sb.value, 2.0);
    let calls = |name: &str| -> u64 {
        shared
            .upstream_calls
            .get_or_create(&vec![("scaler", name.to_string())])
            .get()
    };
    assert_eq!(
        calls("redis"),
        1,
        "the second trigger reused the first reading"
    );
    let other = [
        ("address", redis.address.as_str()),
        ("listName", "other"),
        ("activationListLength", "1"),
    ];
    let o = swell_scalers::build(&trigger("redis", 2, &other, &pw), &shared).unwrap();
    assert_eq!(
        (
            o.sample().await.unwrap().value,
            o.sample().await.unwrap().active
        ),
        (0.0, false)
    );
    assert_eq!(calls("redis"), 2);
    assert_eq!(shared.redis.len(), 1, "one connection to the server");
}

/// A server nobody listens on, and a wrong password: the error names the server and the
/// cause, and never the password.
#[tokio::test(flavor = "multi_thread")]
async fn redis_errors_name_the_server_and_the_cause() {
    let redis = Redis::shared();
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    for type_ in ["redis", "redis-streams"] {
        let meta = [
            ("address", down.as_str()),
            ("listName", "l"),
            ("stream", "s"),
        ];
        let s = swell_scalers::build(
            &trigger(type_, 0, &meta, &[("password", "x")]),
            &Shared::default(),
        )
        .unwrap();
        let e = s.sample().await.unwrap_err().to_string();
        assert!(
            e.contains(&format!("redis {down}")) && e.contains("refused"),
            "{type_}: {e}"
        );

        let meta = [
            ("address", redis.address.as_str()),
            ("listName", "l"),
            ("stream", "s"),
        ];
        for auth in [
            vec![("password", "wrong-secret")],
            vec![
                ("username", redis.acl_user.as_str()),
                ("password", "wrong-secret"),
            ],
        ] {
            let s =
                swell_scalers::build(&trigger(type_, 0, &meta, &auth), &Shared::default()).unwrap();
            let e = s.sample().await.unwrap_err().to_string();
            assert!(
                e.contains(&format!("redis {}", redis.address))
                    && e.contains("Password authentication failed"),
                "{type_}: {e}"
            );
            assert!(!e.contains("wrong-secret"), "{e}");
        }
        // No password at all for a server that wants one.
        let s = swell_scalers::build(&trigger(type_, 0, &meta, &[]), &Shared::default()).unwrap();
        let e = s.sample().await.unwrap_err().to_string();
        assert!(e.contains("NOAUTH"), "{type_}: {e}");
    }
}

/// A stream of 5 entries, a group that read 3 and acknowledged 1: length 5, pending 2,
/// lag 2; a group that does not exist lags by the whole stream, a stream that does not
/// exist by nothing.
#[tokio::test(flavor = "multi_thread")]
async fn redis_streams_reads_length_pending_and_lag() {
    let redis = Redis::shared();
    let (c, t) = admin(redis);
    let s = unique_suffix();
    let (stream, group) = (format!("st-{s}"), format!("g-{s}"));
    for i in 0..5 {
        run(&c, &t, &["XADD", &stream, "*", "n", &i.to_string()]).await;
    }
    run(&c, &t, &["XGROUP", "CREATE", &stream, &group, "0"]).await;
    let read: redis::streams::StreamReadReply = c
        .query(
            &t,
            redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg(&group)
                .arg("c1")
                .arg("COUNT")
                .arg(3)
                .arg("STREAMS")
                .arg(&stream)
                .arg(">"),
        )
        .await
        .unwrap();
    let ids: Vec<String> = read.keys[0].ids.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids.len(), 3);
    run(&c, &t, &["XACK", &stream, &group, &ids[0]]).await;

    let pw = [("password", redis.password.as_str())];
    let addr = redis.address.as_str();
    let cases: Vec<(Vec<(&str, &str)>, f64)> = vec![
        (vec![("stream", &stream)], 5.0),
        (vec![("stream", &stream), ("consumerGroup", &group)], 2.0),
        (
            vec![
                ("stream", &stream),
                ("consumerGroup", &group),
                ("lagCount", "1"),
            ],
            2.0,
        ),
        (
            vec![
                ("stream", &stream),
                ("consumerGroup", "no-such-group"),
                ("lagCount", "1"),
            ],
            5.0,
        ),
        (
            vec![
                ("stream", "no-such-stream"),
                ("consumerGroup", &group),
                ("lagCount", "1"),
            ],
            0.0,
        ),
    ];
    for (mut meta, want) in cases {
        meta.push(("address", addr));
        assert_eq!(sample("redis-streams", &meta, &pw).await, want, "{meta:?}");
    }
    // Pending entries of a group that does not exist: Redis's NOGROUP, naming the server.
    let scaler = swell_scalers::build(
        &trigger(
            "redis-streams",
            0,
            &[
                ("address", addr),
                ("stream", &stream),
                ("consumerGroup", "nope"),
            ],
            &pw,
        ),
        &Shared::default(),
    )
    .unwrap();
    let e = scaler.sample().await.unwrap_err().to_string();
    assert!(
        e.contains(&format!("redis {addr}")) && e.contains("NOGROUP"),
        "{e}"
    );
}

fn auth_manifest(password: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: redis-auth}}
stringData: {{password: "{password}"}}
---
apiVersion: keda.sh/v1alpha1
kind: TriggerAuthentication
metadata: {{name: redis-auth}}
spec:
  secretTargetRef: [{{parameter: password, name: redis-auth, key: password}}]
"#
    )
}

fn scaled(name: &str, trigger: &str) -> String {
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
{trigger}
"#
    )
}

/// 0 → 3 → 0: 12 entries in a list at listLength 4 is 3 replicas (a capital in the key: the
/// HPA asks for the metric lowercased); emptying the list takes
/// the Deployment back to 0. The password comes from a TriggerAuthentication; a second
/// ScaledObject with a wrong one gets KEDAScalerFailed naming the server and the failed authentication.
#[tokio::test(flavor = "multi_thread")]
async fn redis_scales_through_the_hpa() {
    swell();
    let cluster = cluster();
    let redis = Redis::shared();
    cluster
        .with_namespace("sc-redis", |ns| async move {
            let (c, t) = admin(redis);
            let list = format!("Jobs-{}", unique_suffix());
            ns.apply(cluster, &auth_manifest(&redis.password)).unwrap();
            ns.apply(cluster, &deployment("app", 0)).unwrap();
            let trigger = format!(
                "  - type: redis\n    metadata: {{address: \"{}\", listName: \"{list}\", listLength: \"4\"}}\n    authenticationRef: {{name: redis-auth}}",
                redis.address
            );
            ns.apply(cluster, &scaled("app", &trigger)).unwrap();
            ns.apply(cluster, &deployment("wrong", 0)).unwrap();
            ns.apply(
                cluster,
                "apiVersion: v1\nkind: Secret\nmetadata: {name: wrong}\nstringData: {password: not-the-password}\n---\napiVersion: keda.sh/v1alpha1\nkind: TriggerAuthentication\nmetadata: {name: wrong}\nspec:\n  secretTargetRef: [{parameter: password, name: wrong, key: password}]\n",
            )
            .unwrap();
            let wrong = format!(
                "  - type: redis\n    metadata: {{address: \"{}\", listName: \"{list}\"}}\n    authenticationRef: {{name: wrong}}",
                redis.address
            );
            ns.apply(cluster, &scaled("wrong", &wrong)).unwrap();

            let (op, _guard) = operator_with_metrics_api(cluster, &ns).await;
            wait_condition(&ns, "app", "Ready", "True").await;
            wait_condition(&ns, "app", "Active", "False").await;
            let st = so(&ns, "app").await.status.unwrap();
            assert_eq!(st.external_metric_names, Some(vec![format!("s0-redis-{list}")]));
            let e = wait_event(&ns, "KEDAScalerFailed", "Password authentication failed").await;
            assert!(e.contains(&format!("redis {}", redis.address)) && !e.contains("not-the-password"), "{e}");

            let items: Vec<String> = (0..12).map(|i| i.to_string()).collect();
            let mut push = vec!["RPUSH", list.as_str()];
            push.extend(items.iter().map(String::as_str));
            run(&c, &t, &push).await;
            wait_replicas(&ns, "app", 3).await;
            wait_event(&ns, "KEDAScaleTargetActivated", "from 0 to 1").await;
            assert!(counter(&op, "swell_scaler_upstream_calls_total{scaler=\"redis\"}") > 0.0);
            assert_eq!(replicas(&ns, "wrong").await, Ok(0), "the failing ScaledObject stays put");

            run(&c, &t, &["DEL", &list]).await;
            wait_replicas(&ns, "app", 0).await;
        })
        .await;
}

/// 0 → 2 → 0 on a consumer group's pending entries: 6 read and unacknowledged at
/// pendingEntriesCount 3 is 2 replicas; acknowledging them takes the Deployment to 0.
#[tokio::test(flavor = "multi_thread")]
async fn redis_streams_scales_through_the_hpa() {
    swell();
    let cluster = cluster();
    let redis = Redis::shared();
    cluster
        .with_namespace("sc-redis-streams", |ns| async move {
            let (c, t) = admin(redis);
            let s = unique_suffix();
            let (stream, group) = (format!("events-{s}"), format!("workers-{s}"));
            run(&c, &t, &["XGROUP", "CREATE", &stream, &group, "$", "MKSTREAM"]).await;
            ns.apply(cluster, &auth_manifest(&redis.password)).unwrap();
            ns.apply(cluster, &deployment("app", 0)).unwrap();
            let trigger = format!(
                "  - type: redis-streams\n    metadata: {{address: \"{}\", stream: \"{stream}\", consumerGroup: \"{group}\", pendingEntriesCount: \"3\"}}\n    authenticationRef: {{name: redis-auth}}",
                redis.address
            );
            ns.apply(cluster, &scaled("app", &trigger)).unwrap();
            let (op, _guard) = operator_with_metrics_api(cluster, &ns).await;
            wait_condition(&ns, "app", "Ready", "True").await;
            wait_condition(&ns, "app", "Active", "False").await;
            assert_eq!(replicas(&ns, "app").await, Ok(0));

            for i in 0..6 {
                run(&c, &t, &["XADD", &stream, "*", "n", &i.to_string()]).await;
            }
            let read: redis::streams::StreamReadReply = c
                .query(&t, redis::cmd("XREADGROUP").arg("GROUP").arg(&group).arg("c1").arg("STREAMS").arg(&stream).arg(">"))
                .await
                .unwrap();
            let ids: Vec<String> = read.keys[0].ids.iter().map(|e| e.id.clone()).collect();
            assert_eq!(ids.len(), 6);
            wait_replicas(&ns, "app", 2).await;
            assert!(counter(&op, "swell_scaler_upstream_calls_total{scaler=\"redis-streams\"}") > 0.0);

            let mut ack = vec!["XACK", stream.as_str(), group.as_str()];
            ack.extend(ids.iter().map(String::as_str));
            run(&c, &t, &ack).await;
            wait_replicas(&ns, "app", 0).await;
        })
        .await;
}
