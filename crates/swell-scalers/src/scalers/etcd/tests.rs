use super::*;
use crate::{RawParams, map};

type Pairs<'a> = &'a [(&'a str, &'a str)];

fn scaler(index: usize, meta: Pairs, auth: Pairs) -> Result<EtcdScaler, ScalerError> {
    EtcdScaler::new(
        &TriggerInput {
            index,
            type_: "etcd".into(),
            params: RawParams {
                trigger_index: index,
                metadata: map(meta),
                auth: map(auth),
                ..Default::default()
            },
            ..Default::default()
        },
        &Shared::default(),
    )
}

const VALID: Pairs = &[
    ("endpoints", "172.0.0.1:2379,172.0.0.2:2379,172.0.0.3:2379"),
    ("watchKey", "length"),
    ("value", "5.5"),
    ("activationValue", "0.5"),
    ("watchProgressNotifyInterval", "600"),
];

/// KEDA's `parseEtcdMetadataTestDataset` and `etcdMetricIdentifiers`.
#[test]
fn parses_keda_metadata_table() {
    let s = scaler(0, VALID, &[]).unwrap();
    assert_eq!(
        s.key.endpoints,
        ["172.0.0.1:2379", "172.0.0.2:2379", "172.0.0.3:2379"]
    );
    assert_eq!(
        s.metric_spec(),
        MetricSpec::External {
            name: "s0-etcd-length".into(),
            target: 5.5,
            metric_type: crate::MetricType::AverageValue
        }
    );
    assert_eq!(s.activation, 0.5);
    let one: Pairs = &[
        ("endpoints", "172.0.0.1:2379"),
        ("watchKey", "var"),
        ("value", "5.5"),
        ("activationValue", "0.5"),
        ("watchProgressNotifyInterval", "600"),
    ];
    let s = scaler(1, one, &[]).unwrap();
    assert_eq!(s.key.endpoints, ["172.0.0.1:2379"]);
    assert_eq!(s.metric_spec().name(), "s1-etcd-var");
    let base = |k: &'static str, v: &'static str| -> Vec<(&'static str, &'static str)> {
        let mut m: Vec<_> = [
            ("endpoints", "172.0.0.1:2379"),
            ("watchKey", "length"),
            ("value", "5"),
            ("activationValue", "0"),
            ("watchProgressNotifyInterval", "600"),
        ]
        .into_iter()
        .filter(|(n, _)| *n != k)
        .collect();
        m.push((k, v));
        m
    };
    for (k, v, want) in [
        ("endpoints", "", "metadata.endpoints: required"),
        ("watchKey", "", "metadata.watchKey: required"),
        ("value", "a", "metadata.value: \"a\" is not a number"),
        (
            "activationValue",
            "b",
            "metadata.activationValue: \"b\" is not a number",
        ),
        (
            "watchProgressNotifyInterval",
            "0",
            "watchProgressNotifyInterval must be greater than 0",
        ),
    ] {
        let e = scaler(0, &base(k, v), &[]).err().unwrap().to_string();
        assert!(e.contains(want), "{k}={v}: {e}");
    }
}

/// KEDA's `parseEtcdAuthParamsTestDataset`. KEDA takes `keyPassword`; Swell refuses it,
/// as its other scalers do, until encrypted keys are read.
#[test]
fn parses_keda_auth_table() {
    let ok: &[(Pairs, bool)] = &[
        (
            &[
                ("tls", "enable"),
                ("ca", "caaa"),
                ("cert", "ceert"),
                ("key", "keey"),
            ],
            true,
        ),
        (
            &[("tls", "enable"), ("cert", "ceert"), ("key", "keey")],
            true,
        ),
        (&[("tls", "enable"), ("ca", "caaa")], true),
        (&[("username", "root"), ("password", "admin")], false),
    ];
    for (auth, tls) in ok {
        let s = scaler(0, VALID, auth).unwrap();
        assert_eq!(s.key.tls.is_some(), *tls, "{auth:?}");
    }
    let s = scaler(0, VALID, &[("username", "root"), ("password", "admin")]).unwrap();
    assert_eq!(
        s.key.credentials.as_ref().map(|c| c.0.as_str()),
        Some("root")
    );
    for (auth, want) in [
        (
            &[("tls", "enable"), ("ca", "caaa"), ("key", "keey")][..],
            "cert must be provided with key",
        ),
        (
            &[("tls", "enable"), ("ca", "caaa"), ("cert", "ceert")][..],
            "key must be provided with cert",
        ),
        (
            &[
                ("tls", "yes"),
                ("ca", "caaa"),
                ("cert", "ceert"),
                ("key", "keey"),
            ][..],
            "incorrect value for TLS given: \"yes\"",
        ),
        (
            &[("username", "root")][..],
            "password must be provided with username",
        ),
        (
            &[("password", "admin")][..],
            "username must be provided with password",
        ),
        (
            &[
                ("tls", "enable"),
                ("cert", "c"),
                ("key", "k"),
                ("keyPassword", "p"),
            ][..],
            "keyPassword: an encrypted private key is not supported",
        ),
    ] {
        let e = scaler(0, VALID, auth).err().unwrap().to_string();
        assert!(e.contains(want), "{auth:?}: {e}");
    }
    let mut plain = VALID.to_vec();
    plain.push(("password", "admin"));
    let e = scaler(0, &plain, &[]).err().unwrap().to_string();
    assert!(
        e.contains("metadata.password: is not read from trigger metadata"),
        "{e}"
    );
    assert!(!e.contains("admin"), "{e}");
}

/// A port nobody listens on: a connection error naming the endpoint; with two endpoints
/// the second is tried and named.
#[tokio::test]
async fn says_why_no_endpoint_answers() {
    let down = |_: ()| {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .to_string()
    };
    let (a, b) = (down(()), down(()));
    let eps = format!("{a},{b}");
    let meta: Pairs = &[("endpoints", &eps), ("watchKey", "k"), ("value", "1")];
    let e = scaler(0, meta, &[]).unwrap().sample().await.unwrap_err();
    assert_eq!(e.upstream().map(|u| u.kind), Some(K::Connect), "{e}");
    assert!(e.to_string().contains(&format!("etcd {b}: ")), "{e}");
}
