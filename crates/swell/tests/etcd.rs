//! The `etcd` scaler against a real etcd (the binary `hack/build-tools.sh` builds, started
//! with TLS and auth by `hack/etcd.sh`): the number at `watchKey` over TLS with a username
//! and password, a missing key and a value that is not a number, a wrong password, a server
//! that is down, one client shared by triggers; and a Deployment scaled 0 → 3 → 0 by the
//! real HPA; the watch of the key waking the scale loop. Keys are written with the same
//! vendored etcd gRPC API.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::metrics_api::{counter, operator_with_metrics_api};
use common::*;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use swell_scalers::etcdserverpb::{
    AuthenticateRequest, PutRequest, auth_client::AuthClient, kv_client::KvClient,
};
use swell_scalers::upstream::UpstreamKind;
use swell_scalers::{RawParams, ScalerError, Shared, TriggerInput, map};
use swell_testkit::{Etcd, unique_suffix};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

fn trigger(index: usize, meta: &[(&str, &str)], auth: &[(&str, &str)]) -> TriggerInput {
    TriggerInput {
        index,
        type_: "etcd".into(),
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

fn ca(db: &Etcd) -> String {
    std::fs::read_to_string(&db.tls_ca).unwrap()
}

/// The TriggerAuthentication parameters of the test user over TLS.
fn auth(db: &Etcd) -> Vec<(&'static str, String)> {
    vec![
        ("tls", "enable".into()),
        ("ca", ca(db)),
        ("username", db.user.clone()),
        ("password", db.password.clone()),
    ]
}

async fn sample(
    meta: &[(&str, &str)],
    auth: &[(&'static str, String)],
) -> Result<(f64, bool), ScalerError> {
    let auth: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let s = swell_scalers::build(&trigger(0, meta, &auth), &Shared::default()).unwrap();
    s.sample().await.map(|s| (s.value, s.active))
}

/// Writes `value` at `key` as the test user.
async fn put(db: &Etcd, key: &str, value: &str) {
    let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca(db)));
    let channel: Channel = Endpoint::from_shared(format!("https://{}", db.endpoint))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let token = AuthClient::new(channel.clone())
        .authenticate(AuthenticateRequest {
            name: db.user.clone(),
            password: db.password.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .token;
    let mut req = tonic::Request::new(PutRequest {
        key: key.into(),
        value: value.into(),
        ..Default::default()
    });
    req.metadata_mut().insert("token", token.parse().unwrap());
    KvClient::new(channel).put(req).await.unwrap();
}

fn key(db: &Etcd) -> String {
    format!("{}jobs-{}", db.prefix, unique_suffix())
}

/// TLS with the run's CA and password sign-in: the number at the key, activation, a key
/// that does not exist and one that is not a number; two triggers share one client and one
/// reading.
#[tokio::test(flavor = "multi_thread")]
async fn etcd_reads_the_key() {
    let db = Etcd::shared();
    let k = key(db);
    let meta = [
        ("endpoints", db.endpoint.as_str()),
        ("watchKey", k.as_str()),
        ("value", "2"),
        ("activationValue", "3"),
    ];
    let e = sample(&meta, &auth(db)).await.unwrap_err();
    assert_eq!(
        e.upstream().map(|u| u.kind),
        Some(UpstreamKind::NotFound),
        "{e}"
    );
    assert!(
        e.to_string().contains(&format!(
            "etcd {}: watchKey \"{k}\" doesn't exist",
            db.endpoint
        )),
        "{e}"
    );
    put(db, &k, "3").await;
    assert_eq!(sample(&meta, &auth(db)).await.unwrap(), (3.0, false));
    put(db, &k, "7.5").await;
    assert_eq!(sample(&meta, &auth(db)).await.unwrap(), (7.5, true));
    put(db, &k, "many").await;
    let e = sample(&meta, &auth(db)).await.unwrap_err();
    assert!(e.to_string().contains("is \"many\", not a number"), "{e}");

    put(db, &k, "4").await;
    let shared = Shared::default();
    let a: Vec<(&str, String)> = auth(db);
    let a: Vec<(&str, &str)> = a.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let one = swell_scalers::build(&trigger(0, &meta, &a), &shared).unwrap();
    let two = swell_scalers::build(&trigger(1, &meta, &a), &shared).unwrap();
    assert_eq!(
        one.metric_spec().name(),
        format!("s0-etcd-{}", k.replace('/', "-"))
    );
    assert_eq!(one.sample().await.unwrap().value, 4.0);
    assert_eq!(two.sample().await.unwrap().value, 4.0);
    let calls = shared
        .upstream_calls
        .get_or_create(&vec![("scaler", "etcd".to_string())])
        .get();
    assert_eq!(calls, 1, "the second trigger reused the first reading");
    assert_eq!(shared.etcd.len(), 1, "one client");
}

/// A wrong password, no credentials on a server with auth, a CA that did not sign the
/// server's certificate, and a server that is down: errors name the endpoint and the cause,
/// never the password.
#[tokio::test(flavor = "multi_thread")]
async fn etcd_errors_name_the_endpoint_and_the_cause() {
    let db = Etcd::shared();
    let k = key(db);
    let meta = [
        ("endpoints", db.endpoint.as_str()),
        ("watchKey", k.as_str()),
        ("value", "2"),
    ];
    let mut wrong = auth(db);
    wrong[3].1 = "not-the-password".into();
    let e = sample(&meta, &wrong).await.unwrap_err();
    assert_eq!(
        e.upstream().map(|u| u.kind),
        Some(UpstreamKind::Auth),
        "{e}"
    );
    assert!(
        e.to_string().contains(&format!("etcd {}: ", db.endpoint))
            && e.to_string().contains("authentication failed"),
        "{e}"
    );
    assert!(!e.to_string().contains("not-the-password"), "{e}");
    let e = sample(&meta, &auth(db)[..2]).await.unwrap_err();
    assert!(e.to_string().contains("user name is empty"), "{e}");
    let e = sample(&meta, &[("tls", "enable".into())])
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains(&format!("etcd {}: ", db.endpoint)),
        "{e}"
    );
    let down = format!("127.0.0.1:{}", common::metrics_api::free_port());
    let meta = [
        ("endpoints", down.as_str()),
        ("watchKey", k.as_str()),
        ("value", "2"),
    ];
    let e = sample(&meta, &auth(db)).await.unwrap_err();
    assert_eq!(
        e.upstream().map(|u| u.kind),
        Some(UpstreamKind::Connect),
        "{e}"
    );
    assert!(e.to_string().contains(&format!("etcd {down}: ")), "{e}");
}

/// 0 → 3 → 0: 6 at value 2 is 3 replicas; 0 takes the Deployment back to 0. TLS, the CA and
/// the credentials come from a TriggerAuthentication's Secret; the metric is named as KEDA
/// names it. A ScaledObject with a wrong password gets KEDAScalerFailed and stays put.
#[tokio::test(flavor = "multi_thread")]
async fn etcd_scales_through_the_hpa() {
    swell();
    let cluster = cluster();
    let db = Etcd::shared();
    cluster
        .with_namespace("sc-etcd", |ns| async move {
            let k = key(db);
            put(db, &k, "0").await;
            let secret = |name: &str, password: &str| {
                let ca = ca(db).replace('\n', "\\n");
                format!(
                    "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}}}\nstringData: {{tls: enable, ca: \"{ca}\", username: {}, password: \"{password}\"}}\n---\napiVersion: keda.sh/v1alpha1\nkind: TriggerAuthentication\nmetadata: {{name: {name}}}\nspec:\n  secretTargetRef:\n  - {{parameter: tls, name: {name}, key: tls}}\n  - {{parameter: ca, name: {name}, key: ca}}\n  - {{parameter: username, name: {name}, key: username}}\n  - {{parameter: password, name: {name}, key: password}}\n",
                    db.user
                )
            };
            let so = |name: &str| {
                format!(
                    "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {{name: {name}}}\nspec:\n  scaleTargetRef: {{name: {name}}}\n  pollingInterval: 1\n  cooldownPeriod: 2\n  maxReplicaCount: 10\n  triggers:\n  - type: etcd\n    metadata: {{endpoints: \"{}\", watchKey: \"{k}\", value: \"2\"}}\n    authenticationRef: {{name: {name}}}\n",
                    db.endpoint
                )
            };
            ns.apply(cluster, &secret("app", &db.password)).unwrap();
            ns.apply(cluster, &secret("wrong", "not-the-password")).unwrap();
            for name in ["app", "wrong"] {
                ns.apply(cluster, &deployment(name, 0)).unwrap();
                ns.apply(cluster, &so(name)).unwrap();
            }
            let (op, _guard) = operator_with_metrics_api(cluster, &ns).await;
            wait_condition(&ns, "app", "Ready", "True").await;
            wait_condition(&ns, "app", "Active", "False").await;
            let e = wait_event(&ns, "KEDAScalerFailed", "authentication failed").await;
            assert!(e.contains(&format!("etcd {}: ", db.endpoint)) && !e.contains("not-the-password"), "{e}");

            put(db, &k, "6").await;
            wait_replicas(&ns, "app", 3).await;
            wait_event(&ns, "KEDAScaleTargetActivated", "from 0 to 1").await;
            let hpa = ns.api::<HorizontalPodAutoscaler>().get("keda-hpa-app").await.unwrap();
            let metric = hpa.spec.metrics.and_then(|m| m.into_iter().next());
            let name = metric.and_then(|m| m.external).map(|e| e.metric.name);
            assert_eq!(name, Some(format!("s0-etcd-{}", k.replace('/', "-"))));
            assert!(counter(&op, "swell_scaler_upstream_calls_total{scaler=\"etcd\"}") > 0.0);
            assert_eq!(replicas(&ns, "wrong").await, Ok(0), "the failing ScaledObject stays put");

            put(db, &k, "0").await;
            wait_replicas(&ns, "app", 0).await;
        })
        .await;
}

/// Push, as KEDA's etcd scaler: with a pollingInterval of an hour, the first reading (at
/// the loop's start) finds 0 and the next poll is an hour away, so only the watch of the key
/// can activate the Deployment when the key is set.
#[tokio::test(flavor = "multi_thread")]
async fn etcd_watch_wakes_the_scale_loop() {
    swell();
    let cluster = cluster();
    let db = Etcd::shared();
    cluster
        .with_namespace("sc-etcd-push", |ns| async move {
            let k = key(db);
            put(db, &k, "0").await;
            let ca = ca(db).replace('\n', "\\n");
            let manifest = format!(
                "apiVersion: v1\nkind: Secret\nmetadata: {{name: push}}\nstringData: {{tls: enable, ca: \"{ca}\", username: {}, password: \"{}\"}}\n---\napiVersion: keda.sh/v1alpha1\nkind: TriggerAuthentication\nmetadata: {{name: push}}\nspec:\n  secretTargetRef:\n  - {{parameter: tls, name: push, key: tls}}\n  - {{parameter: ca, name: push, key: ca}}\n  - {{parameter: username, name: push, key: username}}\n  - {{parameter: password, name: push, key: password}}\n---\napiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {{name: app}}\nspec:\n  scaleTargetRef: {{name: app}}\n  pollingInterval: 3600\n  triggers:\n  - type: etcd\n    metadata: {{endpoints: \"{}\", watchKey: \"{k}\", value: \"2\", activationValue: \"1\"}}\n    authenticationRef: {{name: push}}\n",
                db.user, db.password, db.endpoint
            );
            ns.apply(cluster, &deployment("app", 0)).unwrap();
            ns.apply(cluster, &manifest).unwrap();
            let (_op, _guard) = operator_with_metrics_api(cluster, &ns).await;
            wait_condition(&ns, "app", "Active", "False").await;
            put(db, &k, "5").await;
            wait_event(&ns, "KEDAScaleTargetActivated", "from 0 to 1").await;
            wait_condition(&ns, "app", "Active", "True").await;
        })
        .await;
}
