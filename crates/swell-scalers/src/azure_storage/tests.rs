use super::*;

const KEY: &str = "c2VjcmV0LWtleS1mb3ItdGVzdHM="; // base64("secret-key-for-tests")

fn shared_key(account: &str) -> Credential {
    Credential::SharedKey {
        account: account.into(),
        key: Secret::new(KEY),
    }
}

/// Connection strings as the Go SDK's `ParseConnectionString` reads them.
#[test]
fn reads_connection_strings_as_the_go_sdk() {
    let ok: &[(&str, Service, &str, Credential)] = &[
        (
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=c2VjcmV0LWtleS1mb3ItdGVzdHM=;EndpointSuffix=core.windows.net",
            Service::Queue,
            "https://acct.queue.core.windows.net/",
            shared_key("acct"),
        ),
        // Defaults: https and core.windows.net; a trailing ';' is fine.
        (
            "AccountName=acct;AccountKey=c2VjcmV0LWtleS1mb3ItdGVzdHM=;",
            Service::Blob,
            "https://acct.blob.core.windows.net/",
            shared_key("acct"),
        ),
        (
            "DefaultEndpointsProtocol=http;AccountName=acct;AccountKey=c2VjcmV0LWtleS1mb3ItdGVzdHM=;EndpointSuffix=core.chinacloudapi.cn",
            Service::Queue,
            "http://acct.queue.core.chinacloudapi.cn/",
            shared_key("acct"),
        ),
        // The service's own endpoint wins (Azurite's path-style URLs); the other's is unused.
        (
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=c2VjcmV0LWtleS1mb3ItdGVzdHM=;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;",
            Service::Queue,
            "http://127.0.0.1:10001/devstoreaccount1/",
            shared_key("devstoreaccount1"),
        ),
        (
            "BlobEndpoint=https://acct.blob.core.windows.net/;SharedAccessSignature=sv=2022-11-02&ss=b&sig=abc%3D",
            Service::Blob,
            "https://acct.blob.core.windows.net/",
            Credential::Sas(Secret::new("sv=2022-11-02&ss=b&sig=abc%3D")),
        ),
        // A SAS with AccountName only: the URL is made from it.
        (
            "AccountName=acct;SharedAccessSignature=?sv=1&sig=x",
            Service::Queue,
            "https://acct.queue.core.windows.net/",
            Credential::Sas(Secret::new("sv=1&sig=x")),
        ),
        // A key read from a file keeps its newline.
        (
            "AccountName=acct;AccountKey=c2VjcmV0LWtleS1mb3ItdGVzdHM=\n",
            Service::Queue,
            "https://acct.queue.core.windows.net/",
            shared_key("acct"),
        ),
    ];
    for (s, service, url, credential) in ok {
        let a = parse_connection_string(s, *service).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(a.url, *url, "{s}");
        assert_eq!(a.credential, *credential, "{s}");
    }
    let bad: &[(&str, &str)] = &[
        ("SAMPLE", "Key=Value"),
        ("", "Key=Value"),
        ("AccountName=acct", "AccountKey, or SharedAccessSignature"),
        (
            "AccountKey=c2VjcmV0LWtleS1mb3ItdGVzdHM=",
            "needs AccountName or QueueEndpoint",
        ),
        (
            "AccountName=acct;AccountKey=not base64!!",
            "AccountKey is not base64",
        ),
        (
            "QueueEndpoint=ftp://host/;SharedAccessSignature=sig=x",
            "not an http(s) URL",
        ),
        (
            "DefaultEndpointsProtocol=https;AccountName=a b;AccountKey=c2VjcmV0LWtleS1mb3ItdGVzdHM=",
            "not an http(s) URL",
        ),
    ];
    for (s, why) in bad {
        let e = parse_connection_string(s, Service::Queue).unwrap_err().0;
        assert!(e.contains(why), "{s}: {e}");
        assert!(!e.contains(KEY) && !e.contains("sig=x"), "{s}: {e}");
    }
}

/// KEDA's `parseAzureStorageEndpointSuffixTestDataset`, and AzureStackCloud refused.
#[test]
fn endpoint_suffixes_as_keda() {
    type Case<'a> = (
        Option<&'a str>,
        Option<&'a str>,
        Service,
        Result<&'a str, &'a str>,
    );
    let table: &[Case] = &[
        (None, None, Service::Queue, Ok("queue.core.windows.net")),
        (Some("InvalidCloud"), None, Service::Queue, Err("cloud")),
        (
            Some("AzureUSGovernmentCloud"),
            None,
            Service::Queue,
            Ok("queue.core.usgovcloudapi.net"),
        ),
        (Some("Private"), None, Service::Blob, Err("endpointSuffix")),
        (
            Some("Private"),
            Some("blob.core.private.cloud"),
            Service::Blob,
            Ok("blob.core.private.cloud"),
        ),
        (
            None,
            Some("ignored"),
            Service::Blob,
            Ok("blob.core.windows.net"),
        ),
        (
            Some("azurechinacloud"),
            None,
            Service::Blob,
            Ok("blob.core.chinacloudapi.cn"),
        ),
        (Some("AzureStackCloud"), None, Service::Blob, Err("cloud")),
    ];
    for (cloud, suffix, service, want) in table {
        let got = endpoint_suffix(*cloud, *suffix, *service);
        match (want, got) {
            (Ok(w), Ok(g)) => assert_eq!(*w, g, "{cloud:?} {suffix:?}"),
            (Err(field), Err((f, _))) => assert_eq!(*field, f, "{cloud:?} {suffix:?}"),
            (w, g) => panic!("{cloud:?} {suffix:?}: want {w:?}, got {g:?}"),
        }
    }
}

/// The string to sign has Microsoft's layout, and its HMAC matches one made by Python's hmac.
#[test]
fn signs_as_shared_key() {
    let ms = vec![
        ("x-ms-version".to_string(), "2024-11-04".to_string()),
        (
            "x-ms-date".to_string(),
            "Wed, 02 Dec 2026 00:00:00 GMT".to_string(),
        ),
    ];
    let s = string_to_sign(
        &reqwest::Method::GET,
        0,
        &ms,
        "acct",
        "/acct/q1",
        &[("comp", "metadata")],
    );
    assert_eq!(
        s,
        "GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:Wed, 02 Dec 2026 00:00:00 GMT\nx-ms-version:2024-11-04\n/acct/acct/q1\ncomp:metadata"
    );
    assert_eq!(
        sign(&Secret::new(KEY), &s),
        "ESfnfL4swyEgV1pKk/ixBi+KRX+n0i7k+gTEKj23qNQ="
    );
    // A body's length is signed; query names lowercased and sorted.
    let s = string_to_sign(
        &reqwest::Method::PUT,
        12,
        &ms,
        "a",
        "/c/b",
        &[("restype", "container"), ("Comp", "list")],
    );
    assert!(s.starts_with("PUT\n\n\n12\n"), "{s}");
    assert!(s.ends_with("/a/c/b\ncomp:list\nrestype:container"), "{s}");
}

#[test]
fn reads_xml_text() {
    let body = "<?xml version=\"1.0\"?><Error><Code>QueueNotFound</Code><Message>The specified queue does not exist.\nRequestId:1</Message></Error>";
    assert_eq!(xml_text(body, "Code").as_deref(), Some("QueueNotFound"));
    assert_eq!(
        xml_unescape("a&amp;b&lt;c&gt;&quot;&apos;&#65;&#x42;&bogus;"),
        "a&b<c>\"'AB&bogus;"
    );
    let e = answer_error("https://h/acct/q", 404, None, body);
    assert_eq!(e.kind, K::NotFound);
    assert_eq!(
        e.message,
        "https://h/acct/q: HTTP 404 QueueNotFound: The specified queue does not exist."
    );
    let e = answer_error(
        "https://h/acct/q",
        403,
        Some("AuthorizationFailure".into()),
        "",
    );
    assert_eq!(e.kind, K::Auth);
    assert!(
        e.message.contains("AccountKey or SharedAccessSignature"),
        "{}",
        e.message
    );
}

/// One client per account, whoever asks.
#[test]
fn one_client_per_account() {
    let http = HttpClients::default();
    let clients = StorageClients::default();
    let a = parse_connection_string(
        "AccountName=a;AccountKey=c2VjcmV0LWtleS1mb3ItdGVzdHM=",
        Service::Queue,
    )
    .unwrap();
    let b = parse_connection_string(
        "AccountName=b;AccountKey=c2VjcmV0LWtleS1mb3ItdGVzdHM=",
        Service::Queue,
    )
    .unwrap();
    let first = clients.get(&http, &a).unwrap();
    let again = clients.get(&http, &a).unwrap();
    assert!(Arc::ptr_eq(&first, &again));
    clients.get(&http, &b).unwrap();
    assert_eq!(clients.len(), 2);
    assert_eq!(http.len(), 1, "one HTTP client under both");
    assert!(!format!("{a:?}").contains(KEY), "the key is never printed");
}
