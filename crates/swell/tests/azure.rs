//! The `azure-queue` and `azure-blob` scalers against a real Azure Storage emulator
//! (Azurite 3.35.0 from npm, started by `hack/azurite.sh`, with an account of its own).
//! Queues: both length strategies with invisible messages and more than a peek's 32, one
//! client per account shared by triggers, a server that is down, a wrong account key, a
//! missing queue, an untrusted certificate, a SAS connection string. Blobs: hierarchical,
//! recursive and glob counts with and without a prefix, more than one listing page, a SAS
//! connection string, a missing container, a wrong key. Each: a Deployment scaled
//! 0 → 3 → 0 by the real HPA over HTTPS.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::metrics_api::{counter, operator_with_metrics_api_env};
use common::*;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use reqwest::Method;
use swell_scalers::azure_storage::{self as az, Service, StorageClient};
use swell_scalers::upstream::UpstreamKind;
use swell_scalers::{RawParams, ScalerError, Shared, TriggerInput, map};
use swell_testkit::{Azurite, unique_suffix};

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

/// The test's own client for `service`, trusting the run's CA: to make queues and messages.
fn admin(s: &Azurite, service: Service) -> StorageClient {
    let mut b = reqwest::Client::builder();
    if let Some(ca) = &s.tls_ca {
        let pem = std::fs::read(ca).unwrap();
        b = b.add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap());
    }
    let account = az::parse_connection_string(&s.connection_string(), service).unwrap();
    StorageClient::new(b.build().unwrap(), account)
}

async fn call(
    c: &StorageClient,
    m: Method,
    path: &str,
    query: &[(&str, &str)],
    body: &str,
) -> String {
    let resp = c
        .send(m, path, query, &[], body.as_bytes().to_vec())
        .await
        .unwrap();
    resp.text().await.unwrap()
}

/// A new queue, its name.
async fn new_queue(c: &StorageClient) -> String {
    let q = format!("jobs-{}", unique_suffix());
    call(c, Method::PUT, &q, &[], "").await;
    q
}

async fn put_messages(c: &StorageClient, q: &str, n: usize) {
    let body = "<QueueMessage><MessageText>job &amp; more</MessageText></QueueMessage>";
    for _ in 0..n {
        call(c, Method::POST, &format!("{q}/messages"), &[], body).await;
    }
}

async fn sample(
    shared: &Shared,
    index: usize,
    meta: &[(&str, &str)],
    auth: &[(&str, &str)],
) -> Result<f64, ScalerError> {
    let s = swell_scalers::build(&trigger("azure-queue", index, meta, auth), shared)?;
    s.sample().await.map(|s| s.value)
}

fn calls(shared: &Shared, scaler: &str) -> u64 {
    shared
        .upstream_calls
        .get_or_create(&vec![("scaler", scaler.to_string())])
        .get()
}

/// `all` counts the queue's approximate message count, invisible messages included;
/// `visibleonly` the messages a peek sees, and the approximate count once a peek of 32 is
/// full (KEDA's rule). Triggers asking the same share one reading and one client.
#[tokio::test(flavor = "multi_thread")]
async fn azure_queue_counts_messages() {
    let s = Azurite::plain();
    let c = admin(s, Service::Queue);
    let q = new_queue(&c).await;
    let conn = s.connection_string();
    let auth = [("connection", conn.as_str())];
    let all = [("queueName", q.as_str()), ("queueLength", "2")];
    let visible = [
        ("queueName", q.as_str()),
        ("queueLengthStrategy", "visibleonly"),
    ];
    let fresh = Shared::default;
    assert_eq!(sample(&fresh(), 0, &all, &auth).await.unwrap(), 0.0);
    put_messages(&c, &q, 3).await;
    // Two messages taken by a consumer: invisible for a minute.
    let got = call(
        &c,
        Method::GET,
        &format!("{q}/messages"),
        &[("numofmessages", "2"), ("visibilitytimeout", "60")],
        "",
    )
    .await;
    assert_eq!(got.matches("<QueueMessage>").count(), 2, "{got}");
    assert_eq!(sample(&fresh(), 0, &all, &auth).await.unwrap(), 3.0);
    assert_eq!(sample(&fresh(), 0, &visible, &auth).await.unwrap(), 1.0);
    // 41 visible: the peek is full, so the approximate count (43) is read instead.
    put_messages(&c, &q, 40).await;
    assert_eq!(sample(&fresh(), 0, &visible, &auth).await.unwrap(), 43.0);

    let shared = Shared::default();
    let a = swell_scalers::build(&trigger("azure-queue", 0, &all, &auth), &shared).unwrap();
    let b = swell_scalers::build(&trigger("azure-queue", 1, &all, &auth), &shared).unwrap();
    assert_eq!(a.metric_spec().name(), "s0-azure-queue-".to_string() + &q);
    let (sa, sb) = (a.sample().await.unwrap(), b.sample().await.unwrap());
    assert_eq!((sa.value, sa.active, sb.value), (43.0, true, 43.0));
    assert_eq!(
        calls(&shared, "azure-queue"),
        1,
        "the second trigger reused the first reading"
    );
    let activation = [("queueName", q.as_str()), ("activationQueueLength", "43")];
    let o = swell_scalers::build(&trigger("azure-queue", 2, &activation, &auth), &shared).unwrap();
    let so = o.sample().await.unwrap();
    assert_eq!(
        (so.value, so.active),
        (43.0, false),
        "active only above activationQueueLength"
    );
    assert_eq!(
        calls(&shared, "azure-queue"),
        1,
        "the same question: still one reading"
    );
    let v = swell_scalers::build(&trigger("azure-queue", 3, &visible, &auth), &shared).unwrap();
    assert_eq!(v.sample().await.unwrap().value, 43.0);
    assert_eq!(
        calls(&shared, "azure-queue"),
        2,
        "another strategy is another reading"
    );
    assert_eq!(shared.azure.len(), 1, "one client for the account");

    // The same through a SAS connection string (read and process on queues).
    let sas = format!(
        "QueueEndpoint={};SharedAccessSignature={}",
        s.queue_endpoint,
        account_sas(s, "q", "rp")
    );
    assert_eq!(
        sample(&fresh(), 0, &visible, &[("connection", &sas)])
            .await
            .unwrap(),
        43.0
    );

    call(&c, Method::DELETE, &format!("{q}/messages"), &[], "").await;
    assert_eq!(sample(&fresh(), 0, &visible, &auth).await.unwrap(), 0.0);
}

/// A server nobody listens on, a wrong account key, a missing queue and (over HTTPS) a
/// certificate from a CA the system does not trust: each error names the queue's URL and
/// the cause, and says its kind; never the key.
#[tokio::test(flavor = "multi_thread")]
async fn azure_queue_errors_name_the_server_and_the_cause() {
    let s = Azurite::plain();
    let c = admin(s, Service::Queue);
    let q = new_queue(&c).await;
    let kind = |e: &ScalerError| e.upstream().map(|u| u.kind);
    let meta = [("queueName", q.as_str())];
    let read = |conn: String| async move {
        sample(&Shared::default(), 0, &meta, &[("connection", &conn)])
            .await
            .unwrap_err()
    };

    let down = common::metrics_api::free_port();
    let conn = format!(
        "AccountName={};AccountKey={};QueueEndpoint=http://127.0.0.1:{down}/{}",
        s.account, s.key, s.account
    );
    let e = read(conn).await;
    let msg = e.to_string();
    assert!(msg.contains(&format!("azure-queue: reading the queue's metadata: http://127.0.0.1:{down}/{}/{q}: cannot connect: ", s.account)) && msg.contains("refused"), "{msg}");
    assert_eq!(kind(&e), Some(UpstreamKind::Connect));

    let wrong = "d3Jvbmcta2V5LWZvci10aGUtdGVzdA==";
    let e = read(s.connection_string_with_key(wrong)).await;
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("{}/{q}: HTTP 403 ", s.queue_endpoint))
            && msg.contains("AccountKey or SharedAccessSignature"),
        "{msg}"
    );
    assert!(!msg.contains(wrong) && !msg.contains(&s.key), "{msg}");
    assert_eq!(kind(&e), Some(UpstreamKind::Auth));

    let e = sample(
        &Shared::default(),
        0,
        &[("queueName", "no-such-queue")],
        &[("connection", &s.connection_string())],
    )
    .await
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains(&format!(
            "{}/no-such-queue: HTTP 404 QueueNotFound",
            s.queue_endpoint
        )),
        "{msg}"
    );
    assert_eq!(kind(&e), Some(UpstreamKind::NotFound));

    // The HTTPS server's certificate is from the run's CA, which this process does not trust.
    let tls = Azurite::shared();
    let e = sample(
        &Shared::default(),
        0,
        &meta,
        &[("connection", &tls.connection_string())],
    )
    .await
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains(&tls.queue_endpoint)
            && msg.contains("cannot connect")
            && msg.to_lowercase().contains("certificate"),
        "{msg}"
    );
    assert_eq!(kind(&e), Some(UpstreamKind::Connect));
}

/// The Secret and TriggerAuthentication holding `connection`.
fn secret(name: &str, conn: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}}}\nstringData: {{connection: \"{conn}\"}}\n---\napiVersion: keda.sh/v1alpha1\nkind: TriggerAuthentication\nmetadata: {{name: {name}}}\nspec:\n  secretTargetRef:\n  - {{parameter: connection, name: {name}, key: connection}}\n"
    )
}

/// 0 → 3 → 0 over HTTPS (the run's CA trusted by the operator through SSL_CERT_FILE): 12
/// messages at queueLength 4 is 3 replicas; clearing them takes the Deployment back to 0.
/// A ScaledObject with a wrong account key and one pointed at a server that is down get
/// KEDAScalerFailed naming the queue's URL and the cause, and stay put.
#[tokio::test(flavor = "multi_thread")]
async fn azure_queue_scales_through_the_hpa() {
    swell();
    let cluster = cluster();
    let s = Azurite::shared();
    cluster
        .with_namespace("sc-azq", |ns| async move {
            let c = admin(s, Service::Queue);
            let q = new_queue(&c).await;
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
  - type: azure-queue
    metadata: {{queueName: {q}, queueLength: "4"}}
    authenticationRef: {{name: {auth}}}
"#
                )
            };
            let down = common::metrics_api::free_port();
            let down_conn = format!(
                "AccountName={};AccountKey={};QueueEndpoint=https://127.0.0.1:{down}/{}",
                s.account, s.key, s.account
            );
            let wrong = "d3Jvbmcta2V5LWZvci10aGUtdGVzdA==";
            ns.apply(cluster, &secret("az-conn", &s.connection_string()))
                .unwrap();
            ns.apply(
                cluster,
                &secret("az-wrong", &s.connection_string_with_key(wrong)),
            )
            .unwrap();
            ns.apply(cluster, &secret("az-down", &down_conn)).unwrap();
            for (name, auth) in [
                ("app", "az-conn"),
                ("wrong", "az-wrong"),
                ("down", "az-down"),
            ] {
                ns.apply(cluster, &deployment(name, 0)).unwrap();
                ns.apply(cluster, &so(name, auth)).unwrap();
            }

            let ca = s.tls_ca.as_ref().unwrap().display().to_string();
            let (op, _guard) =
                operator_with_metrics_api_env(cluster, &ns, &[("SSL_CERT_FILE", ca.as_str())])
                    .await;
            wait_condition(&ns, "app", "Ready", "True").await;
            wait_condition(&ns, "app", "Active", "False").await;
            let e = wait_event(&ns, "KEDAScalerFailed", "HTTP 403").await;
            assert!(
                e.contains(&format!("{}/{q}: HTTP 403", s.queue_endpoint))
                    && !e.contains(wrong)
                    && !e.contains(&s.key),
                "{e}"
            );
            let e = wait_event(
                &ns,
                "KEDAScalerFailed",
                &format!("https://127.0.0.1:{down}/"),
            )
            .await;
            assert!(e.contains("cannot connect") && e.contains("refused"), "{e}");

            put_messages(&c, &q, 12).await;
            wait_replicas(&ns, "app", 3).await;
            wait_event(&ns, "KEDAScaleTargetActivated", "from 0 to 1").await;
            let hpa = ns
                .api::<HorizontalPodAutoscaler>()
                .get("keda-hpa-app")
                .await
                .unwrap();
            let metric = hpa.spec.metrics.and_then(|m| m.into_iter().next());
            let name = metric.and_then(|m| m.external).map(|e| e.metric.name);
            assert_eq!(name, Some(format!("s0-azure-queue-{q}")));
            assert!(
                counter(
                    &op,
                    "swell_scaler_upstream_calls_total{scaler=\"azure-queue\"}"
                ) > 0.0
            );
            assert_eq!(
                replicas(&ns, "wrong").await,
                Ok(0),
                "the failing ScaledObject stays put"
            );
            assert_eq!(
                replicas(&ns, "down").await,
                Ok(0),
                "the failing ScaledObject stays put"
            );

            call(&c, Method::DELETE, &format!("{q}/messages"), &[], "").await;
            wait_replicas(&ns, "app", 0).await;
        })
        .await;
}

/// A new container with `blobs` uploaded, its name.
async fn new_container(c: &StorageClient, blobs: &[&str]) -> String {
    let name = format!("files-{}", unique_suffix());
    call(c, Method::PUT, &name, &[("restype", "container")], "").await;
    upload(c, &name, blobs).await;
    name
}

async fn upload(c: &StorageClient, container: &str, blobs: &[&str]) {
    for b in blobs {
        let path = format!("{container}/{b}");
        c.send(
            Method::PUT,
            &path,
            &[],
            &[("x-ms-blob-type", "BlockBlob")],
            b"data".to_vec(),
        )
        .await
        .unwrap();
    }
}

/// An account SAS (version 2020-12-06 and later) for the services `ss` with permissions `sp`.
fn account_sas(s: &Azurite, ss: &str, sp: &str) -> String {
    let (srt, se, spr, sv) = ("sco", "2099-01-01T00:00:00Z", "https,http", "2024-11-04");
    let to_sign = format!(
        "{}\n{sp}\n{ss}\n{srt}\n\n{se}\n\n{spr}\n{sv}\n\n",
        s.account
    );
    let sig = az::sign(&swell_scalers::tls::Secret::new(&s.key), &to_sign);
    let sig = az::encode(&sig);
    format!(
        "sv={sv}&ss={ss}&srt={srt}&sp={sp}&se={se}&spr={}&sig={sig}",
        az::encode(spr)
    )
}

async fn count(shared: &Shared, meta: &[(&str, &str)], conn: &str) -> Result<f64, ScalerError> {
    let s = swell_scalers::build(
        &trigger("azure-blob", 0, meta, &[("connection", conn)]),
        shared,
    )?;
    s.sample().await.map(|s| s.value)
}

/// KEDA's counts: the blobs directly under the prefix (virtual folders are not blobs),
/// everything below it with `recursive`, the names a glob matches in a flat listing; the
/// same through a SAS connection string; a missing container and a wrong key.
#[tokio::test(flavor = "multi_thread")]
async fn azure_blob_counts_blobs() {
    let s = Azurite::plain();
    let c = admin(s, Service::Blob);
    let blobs = [
        "a.txt",
        "logs/1.json",
        "logs/2.json",
        "logs/old/3.json",
        "logs/x.csv",
        "data/4.json",
    ];
    let name = new_container(&c, &blobs).await;
    let conn = s.connection_string();
    let n = name.as_str();
    let table: &[(&[(&str, &str)], f64)] = &[
        (&[], 1.0),
        (&[("recursive", "true")], 6.0),
        (&[("blobPrefix", "logs")], 3.0),
        (&[("blobPrefix", "logs"), ("recursive", "true")], 4.0),
        (&[("blobPrefix", "logs/old")], 1.0),
        (&[("blobPrefix", "nothing")], 0.0),
        (&[("globPattern", "*.json")], 4.0),
        (&[("globPattern", "/logs/*.json")], 3.0),
        (&[("globPattern", "*.csv"), ("blobPrefix", "logs")], 1.0),
        (&[("globPattern", "{a,data/*}.{txt,json}")], 2.0),
        (&[("blobDelimiter", "."), ("blobPrefix", "logs/1")], 1.0),
    ];
    for (extra, want) in table {
        let mut meta = vec![("blobContainerName", n)];
        meta.extend_from_slice(extra);
        assert_eq!(
            count(&Shared::default(), &meta, &conn).await.unwrap(),
            *want,
            "{extra:?}"
        );
    }

    let shared = Shared::default();
    let meta = [
        ("blobContainerName", n),
        ("recursive", "true"),
        ("activationBlobCount", "6"),
    ];
    let a = swell_scalers::build(
        &trigger("azure-blob", 0, &meta, &[("connection", &conn)]),
        &shared,
    )
    .unwrap();
    let b = swell_scalers::build(
        &trigger("azure-blob", 1, &meta, &[("connection", &conn)]),
        &shared,
    )
    .unwrap();
    assert_eq!(a.metric_spec().name(), format!("s0-azure-blob-{name}"));
    let (sa, sb) = (a.sample().await.unwrap(), b.sample().await.unwrap());
    assert_eq!(
        (sa.value, sa.active, sb.value),
        (6.0, false, 6.0),
        "active only above activationBlobCount"
    );
    assert_eq!(
        calls(&shared, "azure-blob"),
        1,
        "the second trigger reused the first reading"
    );

    let sas = format!(
        "BlobEndpoint={};SharedAccessSignature={}",
        s.blob_endpoint,
        account_sas(s, "b", "rl")
    );
    assert_eq!(
        count(
            &Shared::default(),
            &[("blobContainerName", n), ("recursive", "true")],
            &sas
        )
        .await
        .unwrap(),
        6.0
    );

    let kind = |e: &ScalerError| e.upstream().map(|u| u.kind);
    let e = count(
        &Shared::default(),
        &[("blobContainerName", "no-such-container")],
        &conn,
    )
    .await
    .unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains(&format!("azure-blob: listing the container's blobs: {}/no-such-container: HTTP 404 ContainerNotFound", s.blob_endpoint)), "{msg}");
    assert_eq!(kind(&e), Some(UpstreamKind::NotFound));
    let wrong = "d3Jvbmcta2V5LWZvci10aGUtdGVzdA==";
    let e = count(
        &Shared::default(),
        &[("blobContainerName", n)],
        &s.connection_string_with_key(wrong),
    )
    .await
    .unwrap_err();
    let msg = e.to_string();
    eprintln!("wrong key: {msg}");
    assert!(
        msg.contains(&format!("{}/{name}: HTTP 403", s.blob_endpoint)) && !msg.contains(wrong),
        "{msg}"
    );
    assert_eq!(kind(&e), Some(UpstreamKind::Auth));
    let bad_sas = sas.replace("sp=rl", "sp=r");
    let e = count(&Shared::default(), &[("blobContainerName", n)], &bad_sas)
        .await
        .unwrap_err();
    let msg = e.to_string();
    eprintln!("altered SAS: {msg}");
    assert!(msg.contains("HTTP 403") && !msg.contains("sig="), "{msg}");
}

/// 0 → 3 → 0 over HTTPS: 6 blobs under `jobs/` at blobCount 2 is 3 replicas; deleting them
/// takes the Deployment back to 0. A wrong key and a server that is down fail, named.
#[tokio::test(flavor = "multi_thread")]
async fn azure_blob_scales_through_the_hpa() {
    swell();
    let cluster = cluster();
    let s = Azurite::shared();
    cluster
        .with_namespace("sc-azb", |ns| async move {
            let c = admin(s, Service::Blob);
            let container = new_container(&c, &["other.txt", "jobs/sub/deep.txt"]).await;
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
  - type: azure-blob
    metadata: {{blobContainerName: {container}, blobPrefix: jobs, blobCount: "2"}}
    authenticationRef: {{name: {auth}}}
"#
                )
            };
            let down = common::metrics_api::free_port();
            let down_conn = format!(
                "AccountName={};AccountKey={};BlobEndpoint=https://127.0.0.1:{down}/{}",
                s.account, s.key, s.account
            );
            let wrong = "d3Jvbmcta2V5LWZvci10aGUtdGVzdA==";
            ns.apply(cluster, &secret("az-conn", &s.connection_string()))
                .unwrap();
            ns.apply(
                cluster,
                &secret("az-wrong", &s.connection_string_with_key(wrong)),
            )
            .unwrap();
            ns.apply(cluster, &secret("az-down", &down_conn)).unwrap();
            for (name, auth) in [
                ("app", "az-conn"),
                ("wrong", "az-wrong"),
                ("down", "az-down"),
            ] {
                ns.apply(cluster, &deployment(name, 0)).unwrap();
                ns.apply(cluster, &so(name, auth)).unwrap();
            }

            let ca = s.tls_ca.as_ref().unwrap().display().to_string();
            let (op, _guard) =
                operator_with_metrics_api_env(cluster, &ns, &[("SSL_CERT_FILE", ca.as_str())])
                    .await;
            wait_condition(&ns, "app", "Ready", "True").await;
            wait_condition(&ns, "app", "Active", "False").await;
            let e = wait_event(&ns, "KEDAScalerFailed", "HTTP 403").await;
            assert!(
                e.contains(&format!("{}/{container}: HTTP 403", s.blob_endpoint))
                    && !e.contains(wrong),
                "{e}"
            );
            let e = wait_event(
                &ns,
                "KEDAScalerFailed",
                &format!("https://127.0.0.1:{down}/"),
            )
            .await;
            assert!(e.contains("cannot connect") && e.contains("refused"), "{e}");

            let jobs: Vec<String> = (0..6).map(|i| format!("jobs/{i}.json")).collect();
            let jobs: Vec<&str> = jobs.iter().map(String::as_str).collect();
            upload(&c, &container, &jobs).await;
            wait_replicas(&ns, "app", 3).await;
            wait_event(&ns, "KEDAScaleTargetActivated", "from 0 to 1").await;
            let hpa = ns
                .api::<HorizontalPodAutoscaler>()
                .get("keda-hpa-app")
                .await
                .unwrap();
            let metric = hpa.spec.metrics.and_then(|m| m.into_iter().next());
            let name = metric.and_then(|m| m.external).map(|e| e.metric.name);
            assert_eq!(name, Some(format!("s0-azure-blob-{container}")));
            assert!(
                counter(
                    &op,
                    "swell_scaler_upstream_calls_total{scaler=\"azure-blob\"}"
                ) > 0.0
            );
            assert_eq!(
                replicas(&ns, "wrong").await,
                Ok(0),
                "the failing ScaledObject stays put"
            );
            assert_eq!(
                replicas(&ns, "down").await,
                Ok(0),
                "the failing ScaledObject stays put"
            );

            for j in &jobs {
                call(&c, Method::DELETE, &format!("{container}/{j}"), &[], "").await;
            }
            wait_replicas(&ns, "app", 0).await;
        })
        .await;
}

/// More blobs than one List Blobs page holds (5000, the service's and Azurite's most): the
/// count follows `NextMarker` to the last page, flat and hierarchical alike.
#[tokio::test(flavor = "multi_thread")]
async fn azure_blob_reads_every_page() {
    let s = Azurite::plain();
    let c = std::sync::Arc::new(admin(s, Service::Blob));
    let name = new_container(&c, &[]).await;
    let mut uploads = tokio::task::JoinSet::new();
    for worker in 0..16usize {
        let (c, name) = (c.clone(), name.clone());
        uploads.spawn(async move {
            let blobs: Vec<String> = (worker..5003)
                .step_by(16)
                .map(|i| format!("many/{i:05}"))
                .collect();
            let blobs: Vec<&str> = blobs.iter().map(String::as_str).collect();
            upload(&c, &name, &blobs).await;
        });
    }
    while let Some(done) = uploads.join_next().await {
        done.unwrap();
    }
    let conn = s.connection_string();
    let page = call(
        &c,
        Method::GET,
        &name,
        &[("restype", "container"), ("comp", "list")],
        "",
    )
    .await;
    assert!(
        page.contains("<NextMarker>") && page.matches("<Blob>").count() == 5000,
        "one page is not all"
    );
    for extra in [("recursive", "true"), ("blobPrefix", "many")] {
        let meta = [("blobContainerName", name.as_str()), extra];
        assert_eq!(
            count(&Shared::default(), &meta, &conn).await.unwrap(),
            5003.0,
            "{extra:?}"
        );
    }
}
