//! The `kafka` scaler against a real Kafka broker (KRaft, started by `hack/kafka.sh`): the
//! client over plain, SASL (PLAIN, SCRAM-SHA-256/512) and TLS listeners, the scaler's
//! reading of a consumer group's lag (also over SASL OAUTHBEARER with real JWTs from the
//! local OAuth server, which the broker validates against its JWKS), and a Deployment
//! scaled 0 → 3 → 0 by the real HPA.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::metrics_api::{counter, operator_with_metrics_api};
use common::*;
use swell_scalers::kafka::{
    Cluster, ClusterKey, GroupOffsets, KafkaError, PartitionSet, Sasl, Tls, TokenSource,
};
use swell_scalers::{RawParams, Shared, TriggerInput, map};
use swell_testkit::{Kafka, OAuthServer, unique_suffix};

fn key(bootstrap: &str, sasl: Sasl, tls: Option<Tls>) -> ClusterKey {
    ClusterKey {
        bootstrap: vec![bootstrap.to_string()],
        sasl,
        tls,
        timeout: Duration::from_secs(10),
    }
}

fn plain(kafka: &Kafka) -> Cluster {
    Cluster::new(key(&kafka.bootstrap, Sasl::None, None)).unwrap()
}

/// (committed, latest) per partition of one topic.
fn flat(g: &GroupOffsets, topic: &str) -> Vec<(i32, i64, i64)> {
    g.topics
        .get(topic)
        .map(|ps| {
            ps.iter()
                .map(|(p, o)| (*p, o.committed, o.latest))
                .collect()
        })
        .unwrap_or_default()
}

/// A topic of 3 partitions holding 30, 5 and 0 records; the group committed 10 and 5 on
/// the first two and nothing on the third.
async fn seeded(c: &Cluster) -> (String, String) {
    let s = unique_suffix();
    let (topic, group) = (format!("orders-{s}"), format!("workers-{s}"));
    c.create_topic(&topic, 3).await.unwrap();
    assert_eq!(c.produce(&topic, 0, 30).await.unwrap(), 30);
    assert_eq!(c.produce(&topic, 1, 5).await.unwrap(), 5);
    c.commit(&group, &topic, &[(0, 10), (1, 5)]).await.unwrap();
    (topic, group)
}

#[tokio::test(flavor = "multi_thread")]
async fn client_reads_a_groups_offsets_on_every_listener() {
    let kafka = Kafka::shared();
    let c = plain(kafka);
    let (topic, group) = seeded(&c).await;
    let want = vec![(0, 10, 30), (1, 5, 5), (2, -1, 0)];

    let g = c
        .group_offsets(&group, Some(&topic), &PartitionSet::default())
        .await
        .unwrap();
    assert_eq!(flat(&g, &topic), want);
    // No topic: every topic the group committed offsets for, all its partitions.
    let g = c
        .group_offsets(&group, None, &PartitionSet::default())
        .await
        .unwrap();
    assert_eq!(g.topics.len(), 1);
    assert_eq!(flat(&g, &topic), want);
    let g = c
        .group_offsets(&group, Some(&topic), &PartitionSet::from([0, 2]))
        .await
        .unwrap();
    assert_eq!(flat(&g, &topic), vec![(0, 10, 30), (2, -1, 0)]);
    // A group that never committed has no topics to read.
    let g = c
        .group_offsets("nobody", None, &PartitionSet::default())
        .await
        .unwrap();
    assert!(g.topics.is_empty());
    let e = c
        .group_offsets(&group, Some("no-such-topic"), &PartitionSet::default())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("UnknownTopicOrPartition"), "{e}");
    let e = c
        .group_offsets(&group, Some(&topic), &PartitionSet::from([7]))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no active partitions"), "{e}");

    for (name, sasl) in [
        (
            "PLAIN",
            Sasl::Plain {
                user: kafka.user.clone(),
                password: swell_scalers::aws::Secret::new(kafka.password.clone()),
            },
        ),
        (
            "SCRAM-SHA-256",
            Sasl::Scram {
                sha512: false,
                user: kafka.user.clone(),
                password: swell_scalers::aws::Secret::new(kafka.password.clone()),
            },
        ),
        (
            "SCRAM-SHA-512",
            Sasl::Scram {
                sha512: true,
                user: kafka.user.clone(),
                password: swell_scalers::aws::Secret::new(kafka.password.clone()),
            },
        ),
    ] {
        let c = Cluster::new(key(&kafka.sasl_bootstrap, sasl, None)).unwrap();
        let g = c
            .group_offsets(&group, Some(&topic), &PartitionSet::default())
            .await;
        assert_eq!(flat(&g.unwrap(), &topic), want, "{name}");
    }
    for sasl in [
        Sasl::Plain {
            user: kafka.user.clone(),
            password: swell_scalers::aws::Secret::new("wrong"),
        },
        Sasl::Scram {
            sha512: false,
            user: kafka.user.clone(),
            password: swell_scalers::aws::Secret::new("wrong"),
        },
    ] {
        let c = Cluster::new(key(&kafka.sasl_bootstrap, sasl, None)).unwrap();
        let e = c
            .group_offsets(&group, Some(&topic), &PartitionSet::default())
            .await
            .unwrap_err();
        assert!(matches!(e, KafkaError::Auth { .. }), "{e}");
        assert!(!e.to_string().contains("wrong"), "{e}");
        let upstream = swell_scalers::UpstreamError::from(e.clone());
        assert_eq!(
            (upstream.category(), upstream.message),
            ("auth", e.to_string())
        );
    }

    let tls = |ca: Option<String>, unsafe_ssl: bool| {
        Cluster::new(key(
            &kafka.tls_bootstrap,
            Sasl::None,
            Some(Tls {
                ca,
                client_cert: None,
                unsafe_ssl,
            }),
        ))
        .unwrap()
    };
    let g = tls(Some(kafka.ca_pem.clone()), false)
        .group_offsets(&group, Some(&topic), &PartitionSet::default())
        .await;
    assert_eq!(flat(&g.unwrap(), &topic), want, "TLS with the CA");
    let g = tls(None, true)
        .group_offsets(&group, Some(&topic), &PartitionSet::default())
        .await;
    assert_eq!(flat(&g.unwrap(), &topic), want, "TLS, unsafeSsl");
    let e = tls(None, false)
        .group_offsets(&group, Some(&topic), &PartitionSet::default())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("TLS handshake"), "{e}");
    assert_eq!(swell_scalers::UpstreamError::from(e).category(), "connect");

    // A topic the cluster does not have: the broker's code survives as not_found.
    let e = plain(kafka)
        .group_offsets(&group, Some("no-such-topic"), &PartitionSet::default())
        .await
        .unwrap_err();
    assert!(matches!(e, KafkaError::Refused { code: 3, .. }), "{e:?}");
    let upstream = swell_scalers::UpstreamError::from(e);
    assert_eq!(upstream.category(), "not_found", "{upstream}");
    assert_eq!(upstream.code, Some(swell_scalers::upstream::Code::Kafka(3)));
    assert!(
        upstream.message.contains("UnknownTopicOrPartition (3)"),
        "{upstream}"
    );
}

fn trigger(index: usize, meta: &[(&str, &str)], auth: &[(&str, &str)]) -> TriggerInput {
    TriggerInput {
        index,
        type_: "kafka".into(),
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

/// Two triggers on the same cluster and group share one cluster client and one reading.
#[tokio::test(flavor = "multi_thread")]
async fn scaler_reads_the_lag_and_shares_the_cluster() {
    let kafka = Kafka::shared();
    let (topic, group) = seeded(&plain(kafka)).await;
    let shared = Shared::default();
    let meta = [
        ("bootstrapServers", kafka.sasl_bootstrap.as_str()),
        ("consumerGroup", group.as_str()),
        ("topic", topic.as_str()),
        ("lagThreshold", "5"),
    ];
    let auth = [
        ("sasl", "scram_sha256"),
        ("username", kafka.user.as_str()),
        ("password", kafka.password.as_str()),
    ];
    let a = swell_scalers::build(&trigger(0, &meta, &auth), &shared).unwrap();
    let b = swell_scalers::build(&trigger(1, &meta, &auth), &shared).unwrap();
    assert_eq!(a.metric_spec().name(), format!("s0-kafka-{topic}"));
    // 20 + 0 + 1 (no committed offset, latest: 1) = 21, under 3 partitions × 5 = 15: 15.
    let sa = a.sample().await.unwrap();
    let sb = b.sample().await.unwrap();
    assert_eq!((sa.value, sa.active), (15.0, true));
    assert_eq!(sb.value, 15.0);
    assert_eq!(shared.kafka.len(), 1);
    let calls: u64 = shared
        .upstream_calls
        .get_or_create(&vec![("scaler", "kafka".to_string())])
        .get();
    assert_eq!(calls, 1, "the second trigger reused the first reading");

    let c = swell_scalers::build(
        &trigger(
            2,
            &[
                ("bootstrapServers", kafka.bootstrap.as_str()),
                ("consumerGroup", group.as_str()),
                ("allowIdleConsumers", "true"),
                ("scaleToZeroOnInvalidOffset", "true"),
            ],
            &[],
        ),
        &shared,
    )
    .unwrap();
    assert_eq!(c.metric_spec().name(), format!("s2-kafka-{group}-topics"));
    assert_eq!(c.sample().await.unwrap().value, 20.0);
    assert_eq!(shared.kafka.len(), 2);
}

/// A TriggerAuthentication's parameters for `sasl: oauthbearer` with `client`'s credentials.
fn oauth_auth<'a>(
    idp: &'a OAuthServer,
    ca: &'a str,
    client: &'a str,
    secret: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("sasl", "oauthbearer"),
        ("username", client),
        ("password", secret),
        ("oauthTokenEndpointUri", idp.token_url.as_str()),
        ("scopes", "kafka"),
        ("oauthExtensions", "traceId=swell"),
        ("ca", ca),
    ]
}

/// `sasl: oauthbearer`: a client-credentials JWT from the OAuth server (`ca` trusted for
/// its token endpoint), sent with an extension, reads the lag through the OAUTHBEARER
/// listener; a wrong client secret is the token endpoint's error, and a token for another
/// audience is the broker's.
#[tokio::test(flavor = "multi_thread")]
async fn scaler_reads_the_lag_over_oauthbearer() {
    let kafka = Kafka::shared();
    let idp = OAuthServer::shared();
    let Some(listener) = kafka.oauth_bootstrap.as_deref() else {
        panic!(
            "the Kafka in SWELL_KAFKA_* has no OAUTHBEARER listener: start hack/kafka.sh with hack/oauth.sh's exports in its environment"
        );
    };
    let (topic, group) = seeded(&plain(kafka)).await;
    let shared = Shared::default();
    let meta = [
        ("bootstrapServers", listener),
        ("consumerGroup", group.as_str()),
        ("topic", topic.as_str()),
        ("lagThreshold", "5"),
    ];
    let ca = idp.ca_pem();
    let (id, other, secret) = (
        idp.kafka_client_id.as_str(),
        idp.kafka_other_client_id.as_str(),
        idp.client_secret.as_str(),
    );
    let auth = |client, secret| oauth_auth(idp, &ca, client, secret);
    let good = swell_scalers::build(&trigger(0, &meta, &auth(id, secret)), &shared).unwrap();
    // 20 + 0 + 1 = 21, capped at 3 partitions × 5.
    let s = good.sample().await.unwrap();
    assert_eq!((s.value, s.active), (15.0, true));

    let wrong = "not-the-secret-7f3a";
    let bad = swell_scalers::build(&trigger(1, &meta, &auth(id, wrong)), &shared).unwrap();
    let e = bad.sample().await.unwrap_err().to_string();
    let want = format!(
        "getting the SASL OAUTHBEARER token for Kafka broker {listener}: oauth2 token endpoint {} refused the client: 401 invalid_client",
        idp.token_url
    );
    assert!(e.contains(&want), "{e}");
    assert!(!e.contains(wrong), "{e}");

    let elsewhere =
        swell_scalers::build(&trigger(2, &meta, &auth(other, secret)), &shared).unwrap();
    let e = elsewhere.sample().await.unwrap_err().to_string();
    let want = format!(
        "SASL authentication with Kafka broker {listener} failed: the broker rejected the token of oauth2 token endpoint {} (status invalid_token",
        idp.token_url
    );
    assert!(e.contains(&want), "{e}");
    assert!(e.contains("SaslAuthenticationFailed (58)"), "{e}");
    assert!(!e.contains("eyJ"), "no token in the message: {e}");
}

/// The OAUTHBEARER listener ends a session after 5 s (`connections.max.reauth.ms`, KIP-368:
/// a request after that closes the connection); the client replaces its connection, with a
/// token fetched or taken from the cache, before then, so a reading after 5 s still works.
#[tokio::test(flavor = "multi_thread")]
async fn oauthbearer_sessions_are_renewed_before_the_broker_ends_them() {
    let kafka = Kafka::shared();
    let idp = OAuthServer::shared();
    let Some(listener) = kafka.oauth_bootstrap.as_deref() else {
        panic!(
            "the Kafka in SWELL_KAFKA_* has no OAUTHBEARER listener: start hack/kafka.sh with hack/oauth.sh's exports in its environment"
        );
    };
    let (topic, group) = seeded(&plain(kafka)).await;
    let client = swell_scalers::oauth::OAuthClient {
        token_uri: idp.token_url.clone(),
        client_id: idp.kafka_client_id.clone(),
        client_secret: swell_scalers::tls::Secret::new(idp.client_secret.clone()),
        scopes: vec!["kafka".into()],
        params: vec![],
    };
    let source = TokenSource::Client {
        client,
        ca: Some(idp.ca_pem()),
        extensions: vec![],
    };
    let c = Cluster::new(key(listener, Sasl::OAuthBearer(source), None)).unwrap();
    let all = PartitionSet::default();
    let first = c.group_offsets(&group, Some(&topic), &all).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5500)).await;
    let second = c.group_offsets(&group, Some(&topic), &all).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(
        flat(&second, &topic),
        vec![(0, 10, 30), (1, 5, 5), (2, -1, 0)]
    );
}

/// 0 → 3 → 0: 10 records on each of 3 partitions with nothing consumed is a lag of 30,
/// over `lagThreshold` 5 that is 6 replicas, capped at 3 (one per partition); committing
/// to the high watermarks takes the lag, and the Deployment, back to 0.
#[tokio::test(flavor = "multi_thread")]
async fn kafka_scales_through_the_hpa() {
    swell();
    let cluster = cluster();
    let kafka = Kafka::shared();
    cluster
        .with_namespace("sc-kafka", |ns| async move {
            let c = plain(kafka);
            let s = unique_suffix();
            // Capitals in the topic and group: the HPA controller asks for the metric name
            // lowercased, and must still reach 3 replicas.
            let (topic, group) = (format!("Orders-{s}"), format!("Billing-{s}"));
            c.create_topic(&topic, 3).await.unwrap();
            c.commit(&group, &topic, &[(0, 0), (1, 0), (2, 0)])
                .await
                .unwrap();
            ns.apply(cluster, &deployment("app", 0)).unwrap();
            ns.apply(
                cluster,
                &format!(
                    r#"
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {{name: app}}
spec:
  scaleTargetRef: {{name: app}}
  pollingInterval: 1
  cooldownPeriod: 2
  maxReplicaCount: 10
  triggers:
  - type: kafka
    metadata:
      bootstrapServers: "{bootstrap}"
      consumerGroup: "{group}"
      topic: "{topic}"
      lagThreshold: "5"
      offsetResetPolicy: earliest
"#,
                    bootstrap = kafka.bootstrap,
                ),
            )
            .unwrap();
            let (op, _guard) = operator_with_metrics_api(cluster, &ns).await;
            wait_condition(&ns, "app", "Ready", "True").await;
            wait_condition(&ns, "app", "Active", "False").await;
            let st = so(&ns, "app").await.status.unwrap();
            assert_eq!(
                st.external_metric_names,
                Some(vec![format!("s0-kafka-{topic}")])
            );
            assert_eq!(replicas(&ns, "app").await, Ok(0));

            for p in 0..3 {
                c.produce(&topic, p, 10).await.unwrap();
            }
            wait_replicas(&ns, "app", 3).await;
            wait_event(&ns, "KEDAScaleTargetActivated", "from 0 to 1").await;
            assert!(counter(&op, "swell_scaler_upstream_calls_total{scaler=\"kafka\"}") > 0.0);

            c.commit(&group, &topic, &[(0, 10), (1, 10), (2, 10)])
                .await
                .unwrap();
            wait_replicas(&ns, "app", 0).await;
        })
        .await;
}
