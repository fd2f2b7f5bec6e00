//! The `redis-cluster*` and `redis-sentinel*` scalers against real Redis topologies
//! (Debian's redis-server, started by `hack/redis-topo.sh`): a three-master cluster, where a
//! key on another master than the seed is read through the cluster client, and a master
//! found through a sentinel with its own password; lists and streams, shared connections,
//! servers that are down and wrong passwords; and Deployments scaled 0 → N → 0 by the
//! real HPA.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::metrics_api::{counter, operator_with_metrics_api};
use common::*;
use swell_scalers::redis_client::{RedisClients, Target, Topology};
use swell_scalers::tls::Secret;
use swell_scalers::{RawParams, Shared, TriggerInput, map};
use swell_testkit::{RedisTopo, unique_suffix};

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

/// The test's own connection to one data server, as the default user.
fn server(topo: &RedisTopo, address: &str) -> Target {
    Target {
        password: Some(Secret::new(topo.password.clone())),
        ..Target::standalone(address)
    }
}

/// The test's own cluster client, as the default user.
fn whole_cluster(topo: &RedisTopo) -> Target {
    Target {
        topology: Topology::Cluster,
        addresses: topo.cluster.clone(),
        ..server(topo, "")
    }
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

async fn sample_err(type_: &str, meta: &[(&str, &str)], auth: &[(&str, &str)]) -> String {
    let s = swell_scalers::build(&trigger(type_, 0, meta, auth), &Shared::default()).unwrap();
    s.sample().await.unwrap_err().to_string()
}

/// The master owning `key`'s slot, from `CLUSTER NODES` of the first master.
async fn owner(c: &RedisClients, topo: &RedisTopo, key: &str) -> String {
    let t = server(topo, &topo.cluster[0]);
    let slot: i64 = c
        .query(&t, redis::cmd("CLUSTER").arg("KEYSLOT").arg(key))
        .await
        .unwrap();
    let nodes: String = c
        .query(&t, redis::cmd("CLUSTER").arg("NODES"))
        .await
        .unwrap();
    for line in nodes.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let addr = f[1].split('@').next().unwrap();
        for range in &f[8..] {
            let (lo, hi) = range.split_once('-').unwrap_or((range, range));
            if (lo.parse::<i64>().unwrap()..=hi.parse().unwrap()).contains(&slot) {
                return addr.to_string();
            }
        }
    }
    panic!("no master owns slot {slot}: {nodes}");
}

/// A key named `prefix-…` whose slot lives on another master than the first.
async fn key_off_the_seed(c: &RedisClients, topo: &RedisTopo, prefix: &str) -> (String, String) {
    let s = unique_suffix();
    for i in 0.. {
        let key = format!("{prefix}-{s}-{i}");
        let at = owner(c, topo, &key).await;
        if at != topo.cluster[0] {
            return (key, at);
        }
    }
    unreachable!()
}

/// A list written straight to the master that owns it, read through the cluster client
/// seeded with the first master only; the first master itself answers MOVED. The ACL user
/// with hosts and ports; two triggers share the connection and the reading.
#[tokio::test(flavor = "multi_thread")]
async fn redis_cluster_reads_a_key_on_another_master() {
    let topo = RedisTopo::shared();
    let c = RedisClients::default();
    let (list, at) = key_off_the_seed(&c, topo, "jobs").await;
    run(&c, &server(topo, &at), &["RPUSH", &list, "a", "b", "c"]).await;
    let seed = topo.cluster[0].as_str();
    let pw = [("password", topo.password.as_str())];
    let meta = [("addresses", seed), ("listName", list.as_str())];
    assert_eq!(sample("redis-cluster", &meta, &pw).await, 3.0);
    let e = sample_err("redis", &[("address", seed), ("listName", &list)], &pw).await;
    assert!(
        e.contains(&format!("redis {seed}")) && e.contains("Moved"),
        "{e}"
    );

    let (host, port) = seed.split_once(':').unwrap();
    let acl = [
        ("username", topo.acl_user.as_str()),
        ("password", topo.acl_password.as_str()),
    ];
    let hosts = [
        ("hosts", host),
        ("ports", port),
        ("listName", list.as_str()),
    ];
    assert_eq!(sample("redis-cluster", &hosts, &acl).await, 3.0);

    let shared = Shared::default();
    let all = topo.cluster.join(",");
    let meta = [
        ("addresses", all.as_str()),
        ("listName", list.as_str()),
        ("activationListLength", "2"),
    ];
    let a = swell_scalers::build(&trigger("redis-cluster", 0, &meta, &pw), &shared).unwrap();
    let b = swell_scalers::build(&trigger("redis-cluster", 1, &meta, &pw), &shared).unwrap();
    assert_eq!(b.metric_spec().name(), format!("s1-redis-{list}"));
    let (sa, sb) = (a.sample().await.unwrap(), b.sample().await.unwrap());
    assert_eq!((sa.value, sa.active, sb.value), (3.0, true, 3.0));
    let calls = shared
        .upstream_calls
        .get_or_create(&vec![("scaler", "redis-cluster".to_string())])
        .get();
    assert_eq!(calls, 1, "the second trigger reused the first reading");
    assert_eq!(shared.redis.len(), 1, "one cluster connection");
}

/// TLS to every master: the seed's TLS port only, the CA from the TriggerAuthentication
/// (the cluster answers a TLS client with the masters' TLS ports); unsafeSsl without the
/// CA; neither, and the self-signed servers are refused, naming the cluster.
#[tokio::test(flavor = "multi_thread")]
async fn redis_cluster_reads_over_tls() {
    let topo = RedisTopo::shared();
    let c = RedisClients::default();
    let (list, at) = key_off_the_seed(&c, topo, "tls").await;
    run(&c, &server(topo, &at), &["RPUSH", &list, "a", "b"]).await;
    let seed = topo.cluster_tls[0].as_str();
    let meta = [("addresses", seed), ("listName", list.as_str())];
    let with_ca = [
        ("password", topo.password.as_str()),
        ("tls", "enable"),
        ("ca", topo.ca_pem.as_str()),
    ];
    assert_eq!(sample("redis-cluster", &meta, &with_ca).await, 2.0);
    let pw = [("password", topo.password.as_str())];
    let mut unsafe_meta = meta.to_vec();
    unsafe_meta.extend([("enableTLS", "true"), ("unsafeSsl", "true")]);
    assert_eq!(sample("redis-cluster", &unsafe_meta, &pw).await, 2.0);
    let mut checked = meta.to_vec();
    checked.push(("enableTLS", "true"));
    let e = sample_err("redis-cluster", &checked, &pw).await;
    assert!(e.contains(&format!("redis cluster {seed}")), "{e}");
}

/// A stream on another master than the seed: length, pending entries and lag (INFO asked
/// of the stream's master) through the cluster client, as for a standalone server.
#[tokio::test(flavor = "multi_thread")]
async fn redis_cluster_streams_reads_length_pending_and_lag() {
    let topo = RedisTopo::shared();
    let c = RedisClients::default();
    let (stream, _) = key_off_the_seed(&c, topo, "events").await;
    let group = format!("g-{}", unique_suffix());
    let t = whole_cluster(topo);
    fill_stream(&c, &t, &stream, &group).await;
    let pw = [("password", topo.password.as_str())];
    let seed = topo.cluster[0].as_str();
    for (meta, want) in stream_cases(&stream, &group) {
        let mut meta = meta;
        meta.push(("addresses", seed));
        let got = sample("redis-cluster-streams", &meta, &pw).await;
        assert_eq!(got, want, "{meta:?}");
    }
}

/// 5 entries, a group that read 3 and acknowledged 1.
async fn fill_stream(c: &RedisClients, t: &Target, stream: &str, group: &str) {
    for i in 0..5 {
        run(c, t, &["XADD", stream, "*", "n", &i.to_string()]).await;
    }
    run(c, t, &["XGROUP", "CREATE", stream, group, "0"]).await;
    let read: redis::streams::StreamReadReply = c
        .query(
            t,
            redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg(group)
                .arg("c1")
                .arg("COUNT")
                .arg(3)
                .arg("STREAMS")
                .arg(stream)
                .arg(">"),
        )
        .await
        .unwrap();
    run(c, t, &["XACK", stream, group, &read.keys[0].ids[0].id]).await;
}

/// Length 5, pending 2, lag 2; a group that does not exist lags by the whole stream.
fn stream_cases<'a>(stream: &'a str, group: &'a str) -> Vec<(Vec<(&'a str, &'a str)>, f64)> {
    vec![
        (vec![("stream", stream)], 5.0),
        (vec![("stream", stream), ("consumerGroup", group)], 2.0),
        (
            vec![
                ("stream", stream),
                ("consumerGroup", group),
                ("lagCount", "1"),
            ],
            2.0,
        ),
        (
            vec![
                ("stream", stream),
                ("consumerGroup", "no-such-group"),
                ("lagCount", "1"),
            ],
            5.0,
        ),
    ]
}

/// The sentinel (with its own password) names the master; lists and streams are read
/// there, errors from the master name it and the sentinel.
#[tokio::test(flavor = "multi_thread")]
async fn redis_sentinel_reads_the_master_it_names() {
    let topo = RedisTopo::shared();
    let c = RedisClients::default();
    let master = server(topo, &topo.master);
    let s = unique_suffix();
    let (list, stream, group) = (format!("l-{s}"), format!("st-{s}"), format!("g-{s}"));
    run(&c, &master, &["RPUSH", &list, "a", "b"]).await;
    fill_stream(&c, &master, &stream, &group).await;
    let auth = [
        ("password", topo.password.as_str()),
        ("sentinelPassword", topo.sentinel_password.as_str()),
    ];
    let base = [
        ("addresses", topo.sentinel.as_str()),
        ("sentinelMaster", topo.master_name.as_str()),
    ];
    let mut meta = base.to_vec();
    meta.push(("listName", &list));
    assert_eq!(sample("redis-sentinel", &meta, &auth).await, 2.0);
    for (extra, want) in stream_cases(&stream, &group) {
        let mut meta = base.to_vec();
        meta.extend(extra);
        let got = sample("redis-sentinel-streams", &meta, &auth).await;
        assert_eq!(got, want, "{meta:?}");
    }
    // ACL users on the master and on the sentinel, the master name from the
    // TriggerAuthentication.
    let (host, port) = topo.sentinel.split_once(':').unwrap();
    let acl = [
        ("username", topo.acl_user.as_str()),
        ("password", topo.acl_password.as_str()),
        ("sentinelUsername", topo.sentinel_acl_user.as_str()),
        ("sentinelPassword", topo.sentinel_acl_password.as_str()),
        ("sentinelMaster", topo.master_name.as_str()),
    ];
    let hosts = [("host", host), ("port", port), ("listName", list.as_str())];
    assert_eq!(sample("redis-sentinel", &hosts, &acl).await, 2.0);

    // A key of a type KEDA's script refuses: the error names the master and the sentinel.
    let string = format!("str-{s}");
    run(&c, &master, &["SET", &string, "x"]).await;
    let mut meta = base.to_vec();
    meta.push(("listName", &string));
    let e = sample_err("redis-sentinel", &meta, &auth).await;
    let at = format!(
        "redis {} (master \"{}\" from sentinel {})",
        topo.master, topo.master_name, topo.sentinel
    );
    assert!(
        e.contains(&at) && e.contains("unsupported key type: string"),
        "{e}"
    );
}

/// Nobody listening, wrong passwords (the data servers', the sentinel's), a master name
/// the sentinel does not know and none at all: each error names the servers and the cause,
/// never a password.
#[tokio::test(flavor = "multi_thread")]
async fn redis_topology_errors_name_the_server_and_the_cause() {
    let topo = RedisTopo::shared();
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let list = [("listName", "l"), ("stream", "s")];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut v = list.to_vec();
        v.extend_from_slice(extra);
        v
    };
    let down_ref: &'static str = Box::leak(down.clone().into_boxed_str());
    for type_ in ["redis-cluster", "redis-cluster-streams"] {
        let e = sample_err(type_, &with(&[("addresses", down_ref)]), &[]).await;
        assert!(e.contains(&format!("redis cluster {down}")), "{type_}: {e}");
        assert!(e.to_lowercase().contains("refused"), "{type_}: {e}");
        let seeds = topo.cluster.join(",");
        let e = sample_err(
            type_,
            &[
                ("addresses", seeds.as_str()),
                ("listName", "l"),
                ("stream", "s"),
            ],
            &[("password", "wrong-secret")],
        )
        .await;
        assert!(
            e.contains(&format!("redis cluster {seeds}")),
            "{type_}: {e}"
        );
        assert!(
            e.contains("WRONGPASS") || e.contains("authentication failed"),
            "{type_}: {e}"
        );
        assert!(!e.contains("wrong-secret"), "{e}");
    }
    let sentinel = topo.sentinel.as_str();
    let master = topo.master_name.as_str();
    for type_ in ["redis-sentinel", "redis-sentinel-streams"] {
        let e = sample_err(
            type_,
            &with(&[("addresses", down_ref), ("sentinelMaster", "m")]),
            &[],
        )
        .await;
        assert!(
            e.contains(&format!("redis sentinel {down} master \"m\"")),
            "{type_}: {e}"
        );
        let meta = [
            ("addresses", sentinel),
            ("sentinelMaster", master),
            ("listName", "l"),
            ("stream", "s"),
        ];
        // The sentinel's password is wrong.
        let e = sample_err(
            type_,
            &meta,
            &[
                ("password", topo.password.as_str()),
                ("sentinelPassword", "wrong-secret"),
            ],
        )
        .await;
        assert!(
            e.contains(&format!("redis sentinel {sentinel}")),
            "{type_}: {e}"
        );
        assert!(!e.contains("wrong-secret"), "{e}");
        // The master's password is wrong: the error names the master.
        let e = sample_err(
            type_,
            &meta,
            &[
                ("password", "wrong-secret"),
                ("sentinelPassword", topo.sentinel_password.as_str()),
            ],
        )
        .await;
        assert!(
            e.contains(&format!("redis {} (master", topo.master)),
            "{type_}: {e}"
        );
        assert!(!e.contains("wrong-secret"), "{e}");
        // A master the sentinel does not monitor, and no master name.
        let sp = [("sentinelPassword", topo.sentinel_password.as_str())];
        let unknown = [
            ("addresses", sentinel),
            ("sentinelMaster", "nope"),
            ("listName", "l"),
            ("stream", "s"),
        ];
        let e = sample_err(type_, &unknown, &sp).await;
        assert!(e.contains("master \"nope\""), "{type_}: {e}");
        let e = sample_err(type_, &with(&[("addresses", sentinel)]), &sp).await;
        assert!(e.contains("sentinelMaster is not set"), "{type_}: {e}");
    }
}

fn auth_manifest(name: &str, params: &[(&str, &str)]) -> String {
    let data: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}: \"{v}\""))
        .collect();
    let refs: Vec<String> = params
        .iter()
        .map(|(k, _)| format!("{{parameter: {k}, name: {name}, key: {k}}}"))
        .collect();
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}}}\nstringData: {{{}}}\n---\n\
         apiVersion: keda.sh/v1alpha1\nkind: TriggerAuthentication\nmetadata: {{name: {name}}}\n\
         spec:\n  secretTargetRef: [{}]\n",
        data.join(", "),
        refs.join(", ")
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

/// 0 → 3 → 0 on a cluster: 12 entries in a list on another master than the first at
/// listLength 4 is 3 replicas; deleting it takes the Deployment back to 0. A second
/// ScaledObject with a wrong password gets KEDAScalerFailed naming the cluster.
#[tokio::test(flavor = "multi_thread")]
async fn redis_cluster_scales_through_the_hpa() {
    swell();
    let cluster = cluster();
    let topo = RedisTopo::shared();
    cluster
        .with_namespace("sc-redis-cluster", |ns| async move {
            let c = RedisClients::default();
            let t = whole_cluster(topo);
            let (list, _) = key_off_the_seed(&c, topo, "jobs").await;
            let seeds = topo.cluster.join(",");
            ns.apply(cluster, &auth_manifest("cluster-auth", &[("password", &topo.password)])).unwrap();
            ns.apply(cluster, &auth_manifest("wrong", &[("password", "not-the-password")])).unwrap();
            for (name, auth) in [("app", "cluster-auth"), ("wrong", "wrong")] {
                ns.apply(cluster, &deployment(name, 0)).unwrap();
                let trigger = format!(
                    "  - type: redis-cluster\n    metadata: {{addresses: \"{seeds}\", listName: \"{list}\", listLength: \"4\"}}\n    authenticationRef: {{name: {auth}}}"
                );
                ns.apply(cluster, &scaled(name, &trigger)).unwrap();
            }
            let (op, _guard) = operator_with_metrics_api(cluster, &ns).await;
            wait_condition(&ns, "app", "Ready", "True").await;
            wait_condition(&ns, "app", "Active", "False").await;
            let e = wait_event(&ns, "KEDAScalerFailed", &format!("redis cluster {seeds}")).await;
            assert!(!e.contains("not-the-password"), "{e}");

            let items: Vec<String> = (0..12).map(|i| i.to_string()).collect();
            let mut push = vec!["RPUSH", list.as_str()];
            push.extend(items.iter().map(String::as_str));
            run(&c, &t, &push).await;
            wait_replicas(&ns, "app", 3).await;
            assert!(counter(&op, "swell_scaler_upstream_calls_total{scaler=\"redis-cluster\"}") > 0.0);
            assert_eq!(replicas(&ns, "wrong").await, Ok(0), "the failing ScaledObject stays put");

            run(&c, &t, &["DEL", &list]).await;
            wait_replicas(&ns, "app", 0).await;
        })
        .await;
}

/// 0 → 2 → 0 behind a sentinel: 6 entries read and not acknowledged at
/// pendingEntriesCount 3 is 2 replicas; acknowledging them takes the Deployment to 0. The
/// master's and the sentinel's passwords and the master name come from a
/// TriggerAuthentication.
#[tokio::test(flavor = "multi_thread")]
async fn redis_sentinel_streams_scales_through_the_hpa() {
    swell();
    let cluster = cluster();
    let topo = RedisTopo::shared();
    cluster
        .with_namespace("sc-redis-sentinel", |ns| async move {
            let c = RedisClients::default();
            let t = server(topo, &topo.master);
            let s = unique_suffix();
            let (stream, group) = (format!("events-{s}"), format!("workers-{s}"));
            run(&c, &t, &["XGROUP", "CREATE", &stream, &group, "$", "MKSTREAM"]).await;
            let auth = [
                ("password", topo.password.as_str()),
                ("sentinelPassword", topo.sentinel_password.as_str()),
                ("sentinelMaster", topo.master_name.as_str()),
            ];
            ns.apply(cluster, &auth_manifest("sentinel-auth", &auth)).unwrap();
            ns.apply(cluster, &deployment("app", 0)).unwrap();
            let trigger = format!(
                "  - type: redis-sentinel-streams\n    metadata: {{addresses: \"{}\", stream: \"{stream}\", consumerGroup: \"{group}\", pendingEntriesCount: \"3\"}}\n    authenticationRef: {{name: sentinel-auth}}",
                topo.sentinel
            );
            ns.apply(cluster, &scaled("app", &trigger)).unwrap();
            let (op, _guard) = operator_with_metrics_api(cluster, &ns).await;
            wait_condition(&ns, "app", "Ready", "True").await;
            wait_condition(&ns, "app", "Active", "False").await;
            let st = so(&ns, "app").await.status.unwrap();
            assert_eq!(st.external_metric_names, Some(vec![format!("s0-redis-streams-{stream}")]));

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
            assert!(counter(&op, "swell_scaler_upstream_calls_total{scaler=\"redis-sentinel-streams\"}") > 0.0);

            let mut ack = vec!["XACK", stream.as_str(), group.as_str()];
            ack.extend(ids.iter().map(String::as_str));
            run(&c, &t, &ack).await;
            wait_replicas(&ns, "app", 0).await;
        })
        .await;
}
