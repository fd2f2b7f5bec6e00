use super::*;
use crate::{RawParams, map};

type Pairs<'a> = &'a [(&'a str, &'a str)];

const CONN: &str = "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=c2VjcmV0LWtleS1mb3ItdGVzdHM=;EndpointSuffix=core.windows.net";

fn input(index: usize, meta: Pairs, auth: Pairs, provider: Option<&str>) -> TriggerInput {
    let mut i = TriggerInput {
        index,
        type_: "azure-queue".into(),
        params: RawParams {
            trigger_index: index,
            metadata: map(meta),
            auth: map(auth),
            // KEDA's testAzQueueResolvedEnv, with a connection string that parses.
            env: map(&[("CONNECTION", CONN)]),
            ..Default::default()
        },
        ..Default::default()
    };
    i.pod_identity.provider = provider.map(str::to_string);
    i
}

fn scaler(
    index: usize,
    meta: Pairs,
    auth: Pairs,
    provider: Option<&str>,
) -> Result<AzureQueueScaler, ScalerError> {
    AzureQueueScaler::new(&input(index, meta, auth, provider), &Shared::default())
}

fn errors(meta: Pairs, auth: Pairs, provider: Option<&str>) -> String {
    match scaler(0, meta, auth, provider) {
        Ok(_) => panic!("{meta:?} {auth:?} {provider:?}: accepted"),
        Err(e) => e.to_string(),
    }
}

/// KEDA's `testAzQueueMetadata`: the cases KEDA accepts (those with a connection).
#[test]
fn accepts_keda_metadata_table() {
    let ok: &[(Pairs, Pairs, Option<&str>)] = &[
        (
            &[
                ("connectionFromEnv", "CONNECTION"),
                ("queueName", "sample"),
                ("queueLength", "5"),
            ],
            &[],
            None,
        ),
        (
            &[("queueName", "sample"), ("queueLength", "5")],
            &[("connection", CONN)],
            Some("none"),
        ),
        (
            &[
                ("connectionFromEnv", "CONNECTION"),
                ("queueName", "sample"),
                ("queueLength", "5"),
                ("queueLengthStrategy", "all"),
            ],
            &[],
            None,
        ),
        (
            &[
                ("connectionFromEnv", "CONNECTION"),
                ("queueName", "sample"),
                ("queueLength", "5"),
                ("queueLengthStrategy", "visibleonly"),
            ],
            &[],
            None,
        ),
        // KEDA reads `connection` from plain metadata too.
        (&[("connection", CONN), ("queueName", "sample")], &[], None),
        // cloud and endpointSuffix are checked (KEDA) though the connection string decides.
        (
            &[
                ("connectionFromEnv", "CONNECTION"),
                ("queueName", "q"),
                ("cloud", "AzurePublicCloud"),
            ],
            &[],
            None,
        ),
        (
            &[
                ("connectionFromEnv", "CONNECTION"),
                ("queueName", "q"),
                ("cloud", "Private"),
                ("endpointSuffix", "queue.core.private.cloud"),
            ],
            &[],
            None,
        ),
        (
            &[
                ("connectionFromEnv", "CONNECTION"),
                ("queueName", "q"),
                ("cloud", ""),
                ("endpointSuffix", "ignored"),
            ],
            &[],
            None,
        ),
    ];
    for (meta, auth, provider) in ok {
        if let Err(e) = scaler(0, meta, auth, *provider) {
            panic!("{meta:?} {auth:?}: {e}");
        }
    }
}

/// KEDA's refusals, each on its field.
#[test]
fn refuses_keda_metadata_table() {
    let bad: &[(Pairs, Pairs, &str)] = &[
        (&[], &[], "metadata.queueName: required"),
        (
            &[],
            &[],
            "(parameter connection): required; set connection in the TriggerAuthentication or trigger metadata",
        ),
        (
            &[("connectionFromEnv", "CONNECTION"), ("queueName", "")],
            &[],
            "metadata.queueName: required",
        ),
        (
            &[
                ("connectionFromEnv", "CONNECTION"),
                ("queueName", "sample"),
                ("queueLength", "AA"),
            ],
            &[],
            "metadata.queueLength: \"AA\" is not a whole number",
        ),
        (
            &[
                ("connectionFromEnv", "CONNECTION"),
                ("queueName", "sample"),
                ("queueLength", "1"),
                ("activationQueueLength", "AA"),
            ],
            &[],
            "metadata.activationQueueLength: \"AA\" is not a whole number",
        ),
        (
            &[
                ("connectionFromEnv", "CONNECTION"),
                ("queueName", "sample"),
                ("queueLengthStrategy", "invalid"),
            ],
            &[],
            "metadata.queueLengthStrategy: \"invalid\" is not one of all, visibleonly",
        ),
        (
            &[
                ("connectionFromEnv", "CONNECTION"),
                ("queueName", "q"),
                ("cloud", "InvalidCloud"),
            ],
            &[],
            "metadata.cloud: \"InvalidCloud\" is not a cloud",
        ),
        (
            &[
                ("connectionFromEnv", "CONNECTION"),
                ("queueName", "q"),
                ("cloud", "Private"),
                ("endpointSuffix", ""),
            ],
            &[],
            "metadata.endpointSuffix: must be provided for cloud: Private",
        ),
        // KEDA's int64: not a fraction; Swell: not 0 either (the HPA refuses a 0 target).
        (
            &[
                ("connectionFromEnv", "CONNECTION"),
                ("queueName", "q"),
                ("queueLength", "1.5"),
            ],
            &[],
            "metadata.queueLength: \"1.5\" is not a whole number",
        ),
        (
            &[
                ("connectionFromEnv", "CONNECTION"),
                ("queueName", "q"),
                ("queueLength", "0"),
            ],
            &[],
            "metadata.queueLength: must be at least 1",
        ),
        // KEDA takes the connection string as it comes; Swell reads it at once.
        (
            &[("connection", "SAMPLE"), ("queueName", "q")],
            &[],
            "metadata.connection: is not a storage connection string",
        ),
    ];
    for (meta, auth, want) in bad {
        let e = errors(meta, auth, None);
        assert!(e.contains(want), "{meta:?}: want {want:?} in {e}");
    }
}

/// KEDA accepts podIdentity azure-workload with accountName; Swell cannot get Entra tokens,
/// so it refuses it (with or without accountName), naming the field; other providers as KEDA.
#[test]
fn refuses_workload_identity() {
    for meta in [
        &[("accountName", "sample_acc"), ("queueName", "sample_queue")][..],
        &[("accountName", ""), ("queueName", "sample_queue")][..],
        &[
            ("accountName", "sample_acc"),
            ("queueName", "sample_queue"),
            ("cloud", "AzurePublicCloud"),
        ][..],
    ] {
        let e = errors(meta, &[], Some("azure-workload"));
        assert!(e.contains("triggers[0].authenticationRef: podIdentity provider azure-workload is not supported"), "{e}");
    }
    let e = errors(
        &[("queueName", "q"), ("connection", CONN)],
        &[],
        Some("aws"),
    );
    assert!(
        e.contains("podIdentity provider \"aws\" is not supported for azure storage"),
        "{e}"
    );
}

/// KEDA's `azQueueMetricIdentifiers`, defaults and the activation rule.
#[test]
fn metric_names_defaults_and_activation() {
    let s = scaler(
        0,
        &[
            ("connectionFromEnv", "CONNECTION"),
            ("queueName", "sample"),
            ("queueLength", "5"),
        ],
        &[],
        None,
    )
    .unwrap();
    assert_eq!(s.metric_spec().name(), "s0-azure-queue-sample");
    let s = scaler(
        1,
        &[
            ("connectionFromEnv", "CONNECTION"),
            ("queueName", "sample_queue"),
        ],
        &[],
        None,
    )
    .unwrap();
    assert_eq!(s.metric_spec().name(), "s1-azure-queue-sample_queue");
    assert_eq!((s.target, s.activation, s.visible_only), (5.0, 0.0, false));
    assert_eq!(
        s.account.as_ref().map(|a| a.url.as_str()),
        Some("https://acct.queue.core.windows.net/")
    );
}

/// Triggers on the same queue and strategy share a reading; another strategy does not.
#[test]
fn coalesces_the_same_question() {
    let base = [("connectionFromEnv", "CONNECTION"), ("queueName", "q")];
    let a = scaler(0, &base, &[], None).unwrap();
    let b = scaler(3, &[base[0], base[1], ("queueLength", "9")], &[], None).unwrap();
    let c = scaler(
        0,
        &[base[0], base[1], ("queueLengthStrategy", "visibleonly")],
        &[],
        None,
    )
    .unwrap();
    assert_eq!(a.upstream_key(), b.upstream_key());
    assert_ne!(a.upstream_key(), c.upstream_key());
    assert!(
        !a.upstream_key().unwrap_or_default().contains("c2VjcmV0"),
        "no key in the coalescing key"
    );
}
