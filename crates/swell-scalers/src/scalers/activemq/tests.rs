use super::*;
use crate::{RawParams, map};

type Pairs<'a> = &'a [(&'a str, &'a str)];
/// A case's name, metadata, TriggerAuthentication and what Swell says (`None`: accepted).
type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Pairs<'a>, Option<&'a str>);

fn scaler(index: usize, meta: Pairs, auth: Pairs) -> Result<ActiveMqScaler, ScalerError> {
    ActiveMqScaler::new(
        &TriggerInput {
            index,
            type_: "activemq".into(),
            params: RawParams {
                trigger_index: index,
                metadata: map(meta),
                auth: map(auth),
                env: map(&[("AMQ_USER", "env-user"), ("AMQ_PASSWORD", "env-pass")]),
                ..Default::default()
            },
            ..Default::default()
        },
        &Shared::default(),
    )
}

const TEMPLATE: &str = "http://localhost:8161/api/jolokia/read/org.apache.activemq:type=Broker,brokerName=localhost,destinationType=Queue,destinationName=testQueue/QueueSize";
const AUTH: Pairs = &[("username", "testUsername"), ("password", "pass123")];
const FIELDS3: Pairs = &[
    ("managementEndpoint", "localhost:8161"),
    ("destinationName", "testQueue"),
    ("brokerName", "localhost"),
];

fn with<'a>(base: Pairs<'a>, extra: Pairs<'a>) -> Vec<(&'a str, &'a str)> {
    base.iter().chain(extra).copied().collect()
}

/// KEDA's `testActiveMQMetadata`: (name, metadata, auth, None = accepted or Some(what
/// Swell says)). KEDA's `metricName` there is a key it does not read: Swell warns about it.
#[test]
fn keda_parse_metadata_table() {
    let target = &[("targetQueueSize", "10")][..];
    let metric = &[("targetQueueSize", "10"), ("metricName", "testMetricName")][..];
    let no_destination = [FIELDS3[0], FIELDS3[2]];
    let cases: Vec<Case> = vec![
        (
            "nothing passed",
            vec![],
            &[],
            Some("metadata.managementEndpoint: required"),
        ),
        (
            "properly formed metadata",
            with(
                FIELDS3,
                &[
                    ("targetQueueSize", "10"),
                    ("activationTargetQueueSize", "0"),
                ],
            ),
            AUTH,
            None,
        ),
        ("no metricName passed", with(FIELDS3, target), AUTH, None),
        (
            "Invalid targetQueueSize using a string",
            with(
                FIELDS3,
                &[("targetQueueSize", "AA"), ("metricName", "testMetricName")],
            ),
            AUTH,
            Some("metadata.targetQueueSize: \"AA\" is not an integer"),
        ),
        (
            "Invalid activatingTargetQueueSize using a string",
            with(
                FIELDS3,
                &[
                    ("targetQueueSize", "10"),
                    ("activationTargetQueueSize", "AA"),
                    ("metricName", "testMetricName"),
                ],
            ),
            AUTH,
            Some("metadata.activationTargetQueueSize: \"AA\" is not an integer"),
        ),
        (
            "missing management endpoint should fail",
            with(&FIELDS3[1..], metric),
            AUTH,
            Some("metadata.managementEndpoint: required"),
        ),
        (
            "missing destination name, should fail",
            with(&no_destination, metric),
            AUTH,
            Some("metadata.destinationName: required"),
        ),
        (
            "missing broker name, should fail",
            with(&FIELDS3[..2], metric),
            AUTH,
            Some("metadata.brokerName: required"),
        ),
        (
            "missing username, should fail",
            with(FIELDS3, metric),
            &AUTH[1..],
            Some("username): required"),
        ),
        (
            "missing password, should fail",
            with(FIELDS3, metric),
            &AUTH[..1],
            Some("password): required"),
        ),
        (
            "properly formed metadata with restAPITemplate",
            with(&[("restAPITemplate", TEMPLATE)], metric),
            AUTH,
            None,
        ),
        (
            "invalid restAPITemplate, should fail",
            with(&[("restAPITemplate", "testInvalidRestAPITemplate")], metric),
            AUTH,
            Some(
                "metadata.restAPITemplate: \"testInvalidRestAPITemplate\" is not an http:// or https:// URL",
            ),
        ),
        (
            "missing username, should fail",
            with(&[("restAPITemplate", TEMPLATE)], metric),
            &AUTH[1..],
            Some("username): required"),
        ),
        (
            "missing password, should fail",
            with(&[("restAPITemplate", TEMPLATE)], metric),
            &AUTH[..1],
            Some("password): required"),
        ),
    ];
    for (name, meta, auth, want) in cases {
        match (scaler(0, &meta, auth), want) {
            (Ok(s), None) => {
                let read = s.read.unwrap();
                assert_eq!(
                    read.password.expose(),
                    "pass123",
                    "{name}: the password from the configuration"
                );
            }
            (Err(e), Some(want)) => assert!(e.to_string().contains(want), "{name}: {e}"),
            (Ok(_), Some(want)) => panic!("{name}: accepted, want {want}"),
            (Err(e), None) => panic!("{name}: {e}"),
        }
    }
}

/// KEDA's `TestActiveMQDefaultCorsHeader`, `TestActiveMQCorsHeader` and
/// `TestParseDefaultTargetQueueSize`; credentials in metadata and from the environment.
#[test]
fn cors_defaults_and_credentials() {
    let creds = [("username", "myUserName"), ("password", "myPassword")];
    let meta = with(FIELDS3, &creds);
    let s = scaler(0, &meta, &[]).unwrap();
    assert_eq!(s.origin(), Some("http://localhost:8161"));
    assert_eq!((s.target, s.activation), (10.0, 0.0));
    let s = scaler(0, &with(&meta, &[("corsHeader", "test")]), &[]).unwrap();
    assert_eq!(s.origin(), Some("test"));
    let env = with(
        FIELDS3,
        &[
            ("usernameFromEnv", "AMQ_USER"),
            ("passwordFromEnv", "AMQ_PASSWORD"),
        ],
    );
    let read = scaler(0, &env, &[]).unwrap().read.unwrap();
    assert_eq!(
        (read.username.as_str(), read.password.expose()),
        ("env-user", "env-pass")
    );
    assert!(
        read.json_content_type,
        "KEDA sends Content-Type: application/json"
    );
    let e = scaler(0, &with(&meta, &[("targetQueueSize", "0")]), &[])
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("metadata.targetQueueSize: must be at least 1"),
        "{e}"
    );
}

/// KEDA's `activeMQMetricIdentifiers` and `getMonitoringEndpointData`.
#[test]
fn metric_names_and_endpoints() {
    let s = scaler(0, &with(FIELDS3, &[("targetQueueSize", "10")]), AUTH).unwrap();
    assert_eq!(s.metric_spec().name(), "s0-activemq-testQueue");
    assert_eq!(
        s.url().unwrap(),
        "http://localhost:8161/api/jolokia/read/org.apache.activemq:type=Broker,brokerName=localhost,destinationType=Queue,destinationName=testQueue/QueueSize"
    );
    let s = scaler(
        1,
        &[("restAPITemplate", TEMPLATE), ("targetQueueSize", "10")],
        AUTH,
    )
    .unwrap();
    assert_eq!(s.metric_spec().name(), "s1-activemq-testQueue");
    assert_eq!(
        s.names,
        Names {
            endpoint: "localhost:8161".into(),
            broker: "localhost".into(),
            destination: "testQueue".into()
        }
    );
    let https = "https://myBrokerHost:8162/api/jolokia/read/org.apache.activemq:type=Broker,brokerName=myBrokerName,destinationType=Queue,destinationName=keda-test/QueueSize";
    let s = scaler(
        0,
        &[("restAPITemplate", https), ("targetQueueSize", "10")],
        AUTH,
    )
    .unwrap();
    // The parsed URL lowercases the host (as a host name is); the Origin keeps it as written.
    assert_eq!(
        s.url().unwrap(),
        https.replace("myBrokerHost", "mybrokerhost")
    );
    assert_eq!(s.origin(), Some("http://myBrokerHost:8162"));
}

/// The template is a Go html/template: placeholders in a restAPITemplate are filled, values
/// are HTML-escaped as KEDA escapes them, and an action Swell cannot run is refused.
#[test]
fn template_execution() {
    let n = Names {
        endpoint: "h:1".into(),
        broker: "b".into(),
        destination: "a+b&'c\"<>".into(),
    };
    assert_eq!(
        execute(
            "{{.ManagementEndpoint}}/{{ .BrokerName }}/{{.DestinationName}}",
            &n
        )
        .unwrap(),
        "h:1/b/a&#43;b&amp;&#39;c&#34;&lt;&gt;"
    );
    let t = "http://h:1/api/jolokia/read/org.apache.activemq:type=Broker,brokerName=b,destinationType=Queue,destinationName=q/{{.Nope}}";
    let e = scaler(0, &[("restAPITemplate", t)], AUTH)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("metadata.restAPITemplate: {{.Nope}} is not supported"),
        "{e}"
    );
    let t = "http://h:1/api/jolokia/read/org.apache.activemq:type=Broker,brokerName=b,destinationType=Queue,destinationName=q/{{.BrokerName";
    let e = scaler(0, &[("restAPITemplate", t)], AUTH)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("unclosed action"), "{e}");
    // A template with placeholders for the values it also holds: filled from them.
    let t = "http://h:1/api/jolokia/read/org.apache.activemq:type=Broker,brokerName=b,destinationType=Queue,destinationName=q/{{.DestinationName}}";
    let s = scaler(0, &[("restAPITemplate", t)], AUTH).unwrap();
    assert!(
        s.url().unwrap().ends_with("destinationName=q/q"),
        "{:?}",
        s.url()
    );
}

/// Templates KEDA cannot read (it panics on some): refused with the reason.
#[test]
fn bad_templates() {
    for (t, want) in [
        ("http://h:1/api/jolokia/read", "its path has no MBean name"),
        (
            "http://h:1/read/org.apache.activemq:type=Broker,brokerName=b/QueueSize",
            "no destinationName is given",
        ),
        (
            "http://h:1/read/org.apache.activemq:type=Broker,destinationName=q/QueueSize",
            "no brokerName given",
        ),
    ] {
        let e = scaler(0, &[("restAPITemplate", t)], AUTH)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("metadata.restAPITemplate: unable to parse ActiveMQ restAPITemplate: ")
                && e.contains(want),
            "{t}: {e}"
        );
    }
    let e = scaler(
        0,
        &[
            ("managementEndpoint", "http://h:1"),
            ("destinationName", "q"),
            ("brokerName", "b"),
        ],
        AUTH,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.contains("metadata.managementEndpoint: \"http://h:1\" is not host:port"),
        "{e}"
    );
}
