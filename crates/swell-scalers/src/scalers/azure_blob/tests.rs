use super::*;
use crate::{RawParams, map};

type Pairs<'a> = &'a [(&'a str, &'a str)];

const CONN: &str = "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=c2VjcmV0LWtleS1mb3ItdGVzdHM=;EndpointSuffix=core.windows.net";

fn scaler(
    index: usize,
    meta: Pairs,
    auth: Pairs,
    provider: Option<&str>,
) -> Result<AzureBlobScaler, ScalerError> {
    let mut i = TriggerInput {
        index,
        type_: "azure-blob".into(),
        params: RawParams {
            trigger_index: index,
            metadata: map(meta),
            auth: map(auth),
            // KEDA's testAzBlobResolvedEnv, with a connection string that parses.
            env: map(&[("CONNECTION", CONN)]),
            ..Default::default()
        },
        ..Default::default()
    };
    i.pod_identity.provider = provider.map(str::to_string);
    AzureBlobScaler::new(&i, &Shared::default())
}

fn error(meta: Pairs, auth: Pairs, provider: Option<&str>) -> String {
    match scaler(0, meta, auth, provider) {
        Ok(_) => panic!("{meta:?} {auth:?} {provider:?}: accepted"),
        Err(e) => e.to_string(),
    }
}

const ENV: (&str, &str) = ("connectionFromEnv", "CONNECTION");

/// KEDA's `testAzBlobMetadata`: the cases it accepts with a connection string.
#[test]
fn accepts_keda_metadata_table() {
    let ok: &[(Pairs, Pairs, Option<&str>)] = &[
        (
            &[
                ENV,
                ("blobContainerName", "sample"),
                ("blobCount", "5"),
                ("blobDelimiter", "/"),
                ("blobPrefix", "blobsubpath"),
            ],
            &[],
            None,
        ),
        (
            &[
                ("blobContainerName", "sample_container"),
                ("blobCount", "5"),
            ],
            &[("connection", CONN)],
            Some("none"),
        ),
        (
            &[
                ENV,
                ("blobContainerName", "sample"),
                ("blobCount", "5"),
                ("globPattern", "foo**"),
            ],
            &[],
            None,
        ),
        (
            &[
                ENV,
                ("blobContainerName", "sample"),
                ("blobCount", "5"),
                ("recursive", "true"),
            ],
            &[],
            None,
        ),
        (
            &[
                ENV,
                ("blobContainerName", "sample"),
                ("blobCount", "5"),
                ("recursive", "false"),
            ],
            &[],
            None,
        ),
        (
            &[
                ENV,
                ("blobContainerName", "c"),
                ("cloud", "AzureGermanCloud"),
            ],
            &[],
            None,
        ),
        (
            &[
                ENV,
                ("blobContainerName", "c"),
                ("cloud", "Private"),
                ("endpointSuffix", "queue.core.private.cloud"),
            ],
            &[],
            None,
        ),
        (
            &[
                ENV,
                ("blobContainerName", "c"),
                ("cloud", ""),
                ("endpointSuffix", "ignored"),
            ],
            &[],
            None,
        ),
        // accountName is ignored with a connection string (KEDA logs it).
        (
            &[ENV, ("blobContainerName", "c"), ("accountName", "other")],
            &[],
            None,
        ),
    ];
    for (meta, auth, provider) in ok {
        if let Err(e) = scaler(0, meta, auth, *provider) {
            panic!("{meta:?}: {e}");
        }
    }
}

/// KEDA's refusals, each on its field; workload identity refused (KEDA accepts it).
#[test]
fn refuses_keda_metadata_table() {
    let bad: &[(Pairs, &str)] = &[
        (&[], "metadata.blobContainerName: required"),
        (&[], "(parameter connection): required"),
        (
            &[ENV, ("blobContainerName", "")],
            "metadata.blobContainerName: required",
        ),
        (
            &[ENV, ("blobContainerName", "sample"), ("blobCount", "AA")],
            "metadata.blobCount: \"AA\" is not a whole number",
        ),
        (
            &[
                ENV,
                ("blobContainerName", "sample"),
                ("blobCount", "1"),
                ("activationBlobCount", "AA"),
            ],
            "metadata.activationBlobCount: \"AA\" is not a whole number",
        ),
        (
            &[
                ENV,
                ("blobContainerName", "sample"),
                ("recursive", "invalid"),
            ],
            "metadata.recursive: \"invalid\" is not true or false",
        ),
        (
            &[
                ENV,
                ("blobContainerName", "sample"),
                ("globPattern", "[\\]"),
            ],
            "metadata.globPattern: \"[\\\\]\" is not a glob pattern",
        ),
        (
            &[ENV, ("blobContainerName", "c"), ("cloud", "InvalidCloud")],
            "metadata.cloud: \"InvalidCloud\" is not a cloud",
        ),
        (
            &[
                ENV,
                ("blobContainerName", "c"),
                ("cloud", "Private"),
                ("endpointSuffix", ""),
            ],
            "metadata.endpointSuffix: must be provided",
        ),
        (
            &[ENV, ("blobContainerName", "c"), ("blobCount", "0")],
            "metadata.blobCount: must be at least 1",
        ),
    ];
    for (meta, want) in bad {
        let e = error(meta, &[], None);
        assert!(e.contains(want), "{meta:?}: want {want:?} in {e}");
    }
    for meta in [
        &[
            ("accountName", "sample_acc"),
            ("blobContainerName", "sample_container"),
        ][..],
        &[
            ("accountName", ""),
            ("blobContainerName", "sample_container"),
        ][..],
    ] {
        let e = error(meta, &[], Some("azure-workload"));
        assert!(
            e.contains("authenticationRef: podIdentity provider azure-workload is not supported"),
            "{e}"
        );
    }
}

/// KEDA's `azBlobMetricIdentifiers` and `Validate`: the prefix gets the delimiter, recursive
/// and globs list flat, a glob's leading '/' is dropped (`TestAzBlobGlobPatternLeadingSlash`).
#[test]
fn metric_names_and_listing() {
    let s = scaler(
        0,
        &[
            ENV,
            ("blobContainerName", "sample"),
            ("blobCount", "5"),
            ("blobDelimiter", "/"),
            ("blobPrefix", "blobsubpath"),
        ],
        &[],
        None,
    )
    .unwrap();
    assert_eq!(s.metric_spec().name(), "s0-azure-blob-sample");
    assert_eq!(
        (s.listing.prefix.as_str(), s.listing.delimiter.as_str()),
        ("blobsubpath/", "/")
    );
    let s = scaler(
        1,
        &[ENV, ("blobContainerName", "sample_container")],
        &[],
        None,
    )
    .unwrap();
    assert_eq!(s.metric_spec().name(), "s1-azure-blob-sample_container");
    assert_eq!(
        (
            s.target,
            s.activation,
            s.listing.prefix.as_str(),
            s.listing.delimiter.as_str()
        ),
        (5.0, 0.0, "", "/")
    );
    let s = scaler(
        0,
        &[
            ENV,
            ("blobContainerName", "c"),
            ("blobPrefix", "logs"),
            ("recursive", "true"),
        ],
        &[],
        None,
    )
    .unwrap();
    assert_eq!(
        (s.listing.prefix.as_str(), s.listing.delimiter.as_str()),
        ("logs", "")
    );
    let s = scaler(
        0,
        &[
            ENV,
            ("blobContainerName", "c"),
            ("blobPrefix", "logs"),
            ("blobDelimiter", "-"),
        ],
        &[],
        None,
    )
    .unwrap();
    assert_eq!(
        (s.listing.prefix.as_str(), s.listing.delimiter.as_str()),
        ("logs-", "-")
    );
    for (pattern, name, want) in [
        (
            "/folderA/subFolderA/*.json",
            "folderA/subFolderA/part-fileA.json",
            true,
        ),
        ("/folderA/**", "folderA/subFolderA/part-fileA.json", true),
        (
            "folderA/subFolderA/*.json",
            "folderA/subFolderA/part-fileA.json",
            true,
        ),
        (
            "/folderA/subFolderA/*.json",
            "folderB/subFolderC/fileE.txt",
            false,
        ),
    ] {
        let s = scaler(
            0,
            &[
                ENV,
                ("blobContainerName", "c"),
                ("globPattern", pattern),
                ("blobPrefix", "folderA"),
            ],
            &[],
            None,
        )
        .unwrap();
        let (_, g) = s.listing.glob.as_ref().unwrap();
        assert_eq!(g.matches(name), want, "{pattern} {name}");
        assert_eq!(
            (s.listing.prefix.as_str(), s.listing.delimiter.as_str()),
            ("folderA/", ""),
            "flat under the prefix"
        );
    }
}

#[test]
fn reads_list_blobs_pages() {
    let xml = r#"<?xml version="1.0" encoding="utf-8"?><EnumerationResults ServiceEndpoint="https://h/" ContainerName="c"><Prefix>a/</Prefix><Delimiter>/</Delimiter><Blobs><Blob><Name>a/x&amp;y.txt</Name><Properties><Content-Length>1</Content-Length></Properties></Blob><BlobPrefix><Name>a/sub/</Name></BlobPrefix><Blob><Name Encoded="true">a/%EF%BF%BE.txt</Name></Blob></Blobs><NextMarker>2!abc</NextMarker></EnumerationResults>"#;
    let page = parse_page(xml).unwrap();
    assert_eq!(
        page.names,
        vec!["a/x&y.txt".to_string(), "a/\u{fffe}.txt".to_string()]
    );
    assert_eq!(page.next_marker.as_deref(), Some("2!abc"));
    let last =
        parse_page("<EnumerationResults><Blobs /><NextMarker /></EnumerationResults>").unwrap();
    assert_eq!(
        last,
        Page {
            names: vec![],
            next_marker: None
        }
    );
    assert_eq!(parse_page("<Error/>"), None);
}

/// The same listing shares a reading; another prefix does not.
#[test]
fn coalesces_the_same_question() {
    let a = scaler(
        0,
        &[ENV, ("blobContainerName", "c"), ("blobPrefix", "p")],
        &[],
        None,
    )
    .unwrap();
    let b = scaler(
        2,
        &[
            ENV,
            ("blobContainerName", "c"),
            ("blobPrefix", "p"),
            ("blobCount", "9"),
        ],
        &[],
        None,
    )
    .unwrap();
    let c = scaler(
        0,
        &[ENV, ("blobContainerName", "c"), ("blobPrefix", "q")],
        &[],
        None,
    )
    .unwrap();
    assert_eq!(a.upstream_key(), b.upstream_key());
    assert_ne!(a.upstream_key(), c.upstream_key());
}
