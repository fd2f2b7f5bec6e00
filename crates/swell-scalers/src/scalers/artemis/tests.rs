use super::*;
use crate::{RawParams, map};

type Pairs<'a> = &'a [(&'a str, &'a str)];

fn scaler(index: usize, meta: Pairs, auth: Pairs) -> Result<ArtemisScaler, ScalerError> {
    ArtemisScaler::new(
        &TriggerInput {
            index,
            type_: "artemis-queue".into(),
            params: RawParams {
                trigger_index: index,
                metadata: map(meta),
                auth: map(auth),
                // KEDA's `sampleArtemisResolvedEnv`.
                env: map(&[("myUserName", "artemis"), ("myPassword", "artemis")]),
                ..Default::default()
            },
            ..Default::default()
        },
        &Shared::default(),
    )
}

fn err(meta: Pairs, auth: Pairs) -> String {
    match scaler(0, meta, auth) {
        Ok(_) => panic!("{meta:?} {auth:?} was accepted"),
        Err(e) => e.to_string(),
    }
}

const TEMPLATE: &str = "http://localhost:8161/console/jolokia/read/org.apache.activemq.artemis:broker=\"broker-activemq\",component=addresses,address=\"test\",subcomponent=queues,routing-type=\"anycast\",queue=\"queue1\"/MessageCount";
const NO_BROKER: &str = "http://localhost:8161/console/jolokia/read/org.apache.activemq.artemis:broker=\"\",component=addresses,address=\"test\",subcomponent=queues,routing-type=\"anycast\",queue=\"queue1\"/MessageCount";
const TLS_TEMPLATE: &str = "https://localhost:8443/console/jolokia/read/org.apache.activemq.artemis:broker=\"broker-activemq\",component=addresses,address=\"test\",subcomponent=queues,routing-type=\"anycast\",queue=\"queue1\"/MessageCount";

fn fields(endpoint: &'static str, extra: Pairs<'static>) -> Vec<(&'static str, &'static str)> {
    [
        ("managementEndpoint", endpoint),
        ("queueName", "queue1"),
        ("brokerName", "broker-activemq"),
        ("brokerAddress", "test"),
        ("username", "myUserName"),
        ("password", "myPassword"),
    ]
    .iter()
    .chain(extra)
    .copied()
    .collect()
}

/// KEDA's `testArtemisMetadata`: each case, whether KEDA refuses it, and (refused) the
/// message Swell gives.
#[test]
fn keda_parse_metadata_table() {
    let base = fields("localhost:8161", &[]);
    let without = |key: &str| -> Vec<(&'static str, &'static str)> {
        base.iter()
            .map(|&(k, v)| if k == key { (k, "") } else { (k, v) })
            .collect()
    };
    let refused: &[(Vec<(&str, &str)>, &str)] = &[
        (vec![], "metadata.managementEndpoint: required"),
        (
            without("managementEndpoint"),
            "metadata.managementEndpoint: required",
        ),
        (without("queueName"), "metadata.queueName: required"),
        (without("brokerName"), "metadata.brokerName: required"),
        (without("brokerAddress"), "metadata.brokerAddress: required"),
        (without("username"), "username): required"),
        (without("password"), "password): required"),
        (
            vec![
                ("restApiTemplate", NO_BROKER),
                ("username", "u"),
                ("password", "p"),
            ],
            "metadata.restApiTemplate: can't parse restApiTemplate: no brokerName given",
        ),
    ];
    for (meta, want) in refused {
        let e = err(meta, &[]);
        assert!(e.contains(want), "{meta:?}: {e}");
    }
    let accepted: &[Vec<(&str, &str)>] = &[
        base.clone(),
        vec![
            ("restApiTemplate", TEMPLATE),
            ("username", "myUserName"),
            ("password", "myPassword"),
        ],
        fields("localhost:8443", &[("unsafeSsl", "true")]),
        fields("localhost:8443", &[("unsafeSsl", "false")]),
        vec![
            ("restApiTemplate", TLS_TEMPLATE),
            ("username", "u"),
            ("password", "p"),
            ("unsafeSsl", "true"),
        ],
        vec![
            ("restApiTemplate", TLS_TEMPLATE),
            ("username", "u"),
            ("password", "p"),
            ("unsafeSsl", "false"),
        ],
    ];
    for meta in accepted {
        scaler(0, meta, &[]).unwrap_or_else(|e| panic!("{meta:?}: {e}"));
    }
}

/// KEDA's `testArtemisMetadataWithEmptyAuthParams` (empty username and password in the
/// TriggerAuthentication count as missing) and `testArtemisMetadataWithAuthParams`.
#[test]
fn keda_auth_params_tables() {
    let empty = [("username", ""), ("password", "")];
    let no_auth = [
        ("managementEndpoint", "localhost:8161"),
        ("queueName", "queue1"),
        ("brokerName", "broker-activemq"),
        ("brokerAddress", "test"),
    ];
    assert!(err(&[], &empty).contains("required"));
    let e = err(&no_auth, &empty);
    assert!(
        e.contains(
            "username): required; set username in the TriggerAuthentication or trigger metadata"
        ) && e.contains("password): required"),
        "{e}"
    );
    for key in [
        "managementEndpoint",
        "queueName",
        "brokerName",
        "brokerAddress",
    ] {
        let meta: Vec<_> = no_auth
            .iter()
            .map(|&(k, v)| (k, if k == key { "" } else { v }))
            .collect();
        assert!(
            err(&meta, &empty).contains(&format!("metadata.{key}: required")),
            "{key}"
        );
    }
    let s = scaler(0, &no_auth, &[("username", "admin"), ("password", "admin")]).unwrap();
    let read = s.read.unwrap();
    assert_eq!(
        (read.username.as_str(), read.password.expose()),
        ("admin", "admin")
    );
}

/// KEDA's `artemisMetricIdentifiers`, the URL KEDA's template makes (quotes sent as %22,
/// as Go's net/url sends them) and the values read back from a restApiTemplate.
#[test]
fn metric_name_and_url() {
    for (index, name) in [(0, "s0-artemis-queue1"), (1, "s1-artemis-queue1")] {
        let s = scaler(index, &fields("localhost:8161", &[]), &[]).unwrap();
        assert_eq!(s.metric_spec().name(), name);
        assert_eq!(
            s.metric_spec(),
            MetricSpec::External {
                name: name.into(),
                target: 10.0,
                metric_type: crate::MetricType::AverageValue
            }
        );
        assert_eq!(
            s.activation, 10.0,
            "KEDA's activationQueueLength default is 10"
        );
    }
    let s = scaler(0, &fields("localhost:8161", &[]), &[]).unwrap();
    assert_eq!(
        s.url().unwrap(),
        "http://localhost:8161/console/jolokia/read/org.apache.activemq.artemis:broker=%22broker-activemq%22,component=addresses,address=%22test%22,subcomponent=queues,routing-type=%22anycast%22,queue=%22queue1%22/MessageCount"
    );
    let t = [
        ("restApiTemplate", TEMPLATE),
        ("username", "u"),
        ("password", "p"),
    ];
    let s = scaler(0, &t, &[]).unwrap();
    assert_eq!(
        s.names,
        Names {
            endpoint: "localhost:8161".into(),
            broker: "\"broker-activemq\"".into(),
            address: "\"test\"".into(),
            queue: "\"queue1\"".into(),
        },
        "KEDA keeps the quotes"
    );
    assert_eq!(s.metric_spec().name(), "s0-artemis-\"queue1\"");
    assert_eq!(
        s.url().unwrap(),
        scaler(0, &fields("localhost:8161", &[]), &[])
            .unwrap()
            .url()
            .unwrap()
    );
    assert_eq!(s.origin(), Some("http://localhost:8161"));
}

/// KEDA's `TestArtemisDefaultCorsHeader` and `TestArtemisCorsHeader`.
#[test]
fn cors_header() {
    let s = scaler(0, &fields("localhost:8161", &[]), &[]).unwrap();
    assert_eq!(s.origin(), Some("http://localhost:8161"));
    let s = scaler(0, &fields("localhost:8161", &[("corsHeader", "test")]), &[]).unwrap();
    assert_eq!(s.origin(), Some("test"));
}

/// KEDA's TLS tests: unsafeSsl (default false), ca/cert/key, cert and key together only;
/// an encrypted key (keyPassword) is refused by Swell.
#[test]
fn tls_params() {
    let meta = fields("localhost:8443", &[]);
    let s = scaler(0, &meta, &[]).unwrap();
    assert!(!s.read.unwrap().client.unsafe_ssl);
    let s = scaler(0, &fields("localhost:8443", &[("unsafeSsl", "true")]), &[]).unwrap();
    assert!(s.read.unwrap().client.unsafe_ssl);
    let s = scaler(
        0,
        &meta,
        &[("ca", "caaa"), ("cert", "ceert"), ("key", "keey")],
    )
    .unwrap();
    let c = s.read.unwrap().client;
    assert_eq!(c.ca.as_deref(), Some("caaa"));
    assert_eq!(
        c.client_cert
            .as_ref()
            .map(|(c, k)| (c.as_str(), k.expose())),
        Some(("ceert", "keey"))
    );
    let e = err(
        &meta,
        &[
            ("ca", "caaa"),
            ("cert", "ceert"),
            ("key", "keey"),
            ("keyPassword", "secret123"),
        ],
    );
    assert!(
        e.contains("keyPassword: an encrypted private key is not supported"),
        "{e}"
    );
    for auth in [
        [("ca", "caaa"), ("key", "keey")],
        [("ca", "caaa"), ("cert", "ceert")],
    ] {
        assert!(err(&meta, &auth).contains("both cert and key must be provided"));
    }
    let s = scaler(0, &meta, &[("ca", "caaa")]).unwrap();
    let c = s.read.unwrap().client;
    assert!(c.ca.is_some() && c.client_cert.is_none());
}

/// Counts are integers (KEDA's int64); a queueLength below 1 is refused (KEDA parses it and
/// the HPA refuses a zero target); usernameFromEnv/passwordFromEnv are read.
#[test]
fn counts_and_env() {
    let e = err(
        &fields(
            "h:1",
            &[("queueLength", "AA"), ("activationQueueLength", "1.5")],
        ),
        &[],
    );
    assert!(
        e.contains("metadata.queueLength: \"AA\" is not an integer"),
        "{e}"
    );
    assert!(
        e.contains("metadata.activationQueueLength: \"1.5\" is not an integer"),
        "{e}"
    );
    let e = err(&fields("h:1", &[("queueLength", "0")]), &[]);
    assert!(
        e.contains("metadata.queueLength: must be at least 1"),
        "{e}"
    );
    let s = scaler(
        0,
        &fields(
            "h:1",
            &[("queueLength", "5"), ("activationQueueLength", "-1")],
        ),
        &[],
    )
    .unwrap();
    assert_eq!((s.target, s.activation), (5.0, -1.0));
    let meta: Vec<_> = fields("h:1", &[])
        .into_iter()
        .filter(|(k, _)| !matches!(*k, "username" | "password"))
        .chain([
            ("usernameFromEnv", "myUserName"),
            ("passwordFromEnv", "myPassword"),
        ])
        .collect();
    let read = scaler(0, &meta, &[]).unwrap().read.unwrap();
    assert_eq!(
        (read.username.as_str(), read.password.expose()),
        ("artemis", "artemis")
    );
}

/// Templates KEDA cannot read (it panics on some): refused with the reason.
#[test]
fn bad_templates() {
    let auth = [("username", "u"), ("password", "p")];
    for (template, want) in [
        (
            "testInvalidRestAPITemplate",
            "is not an http:// or https:// URL",
        ),
        (
            "http://h:1/console/jolokia/read",
            "its path has no MBean name",
        ),
        (
            "http://h:1/read/x:broker=\"b\",address=\"a\"/MessageCount",
            "no queueName is given",
        ),
        (
            "http://h:1/read/x:queue=\"q\",broker=\"b\"/MessageCount",
            "no brokerAddress given",
        ),
        (
            "http://h:1/read/x:queue=%zz/MessageCount",
            "invalid URL escape \"%zz\"",
        ),
        (
            "http://h:1/read/x:queue=%+1/MessageCount",
            "invalid URL escape \"%+1\"",
        ),
        (
            "http://h:1/read/x:queue=%é/MessageCount",
            "invalid URL escape \"%é\"",
        ),
    ] {
        let meta = [("restApiTemplate", template), auth[0], auth[1]];
        let e = err(&meta, &[]);
        assert!(
            e.contains("metadata.restApiTemplate: ") && e.contains(want),
            "{template}: {e}"
        );
    }
    let e = err(&fields("http://h:1", &[]), &[]);
    assert!(
        e.contains("metadata.managementEndpoint: \"http://h:1\" is not host:port"),
        "{e}"
    );
}

#[test]
fn fills_placeholders_once() {
    let n = Names {
        endpoint: "e:1".into(),
        broker: "<<queueName>>".into(),
        address: "a".into(),
        queue: "q".into(),
    };
    assert_eq!(
        fill("<<brokerName>>/<<queueName>>/<<x>>", &n),
        "<<queueName>>/q/<<x>>"
    );
}
