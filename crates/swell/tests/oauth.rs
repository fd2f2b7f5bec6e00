//! OAuth 2.0 client-credentials tokens for the scalers that send a bearer token (prometheus,
//! metrics-api `authModes: oauth`), against a real authorization server (panva's
//! oidc-provider, started by `hack/oauth.sh`): fetched, checked by the server's own
//! introspection, cached and shared, renewed when they expire or are refused, refused
//! credentials named; and a TriggerAuthentication's `oauth2` block scaling a Deployment
//! 0 → 3 → 0 through the real HPA.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::metrics_api::operator_with_metrics_api;
use common::*;
use swell_scalers::{RawParams, Scaler, ScalerError, Shared, TriggerInput, UpstreamKind, map};
use swell_testkit::{MetricServer, OAuthServer, Reply};

/// The client's parameters, as a TriggerAuthentication's `oauth2` block resolves them.
fn client(idp: &OAuthServer, secret: &str) -> Vec<(String, String)> {
    [
        ("authModes", "oauth"),
        ("oauthTokenURI", idp.token_url.as_str()),
        ("clientID", idp.client_id.as_str()),
        ("clientSecret", secret),
        ("scopes", "metrics.read"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .chain([("ca".to_string(), idp.ca_pem())])
    .collect()
}

fn build(
    type_: &str,
    meta: &[(&str, &str)],
    auth: &[(String, String)],
    shared: &Shared,
) -> Box<dyn Scaler> {
    let auth: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let input = TriggerInput {
        type_: type_.into(),
        params: RawParams {
            metadata: map(meta),
            auth: map(&auth),
            ..Default::default()
        },
        polling_interval: Duration::from_secs(1),
        ..Default::default()
    };
    swell_scalers::build(&input, shared).unwrap()
}

fn metrics_api(url: &str, auth: &[(String, String)], shared: &Shared) -> Box<dyn Scaler> {
    build(
        "metrics-api",
        &[
            ("url", url),
            ("valueLocation", "value"),
            ("targetValue", "2"),
        ],
        auth,
        shared,
    )
}

/// What the authorization server says of a token (RFC 7662).
async fn introspect(idp: &OAuthServer, token: &str) -> serde_json::Value {
    let ca = reqwest::Certificate::from_pem(idp.ca_pem().as_bytes()).unwrap();
    let http = reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .unwrap();
    let body = format!("token={token}");
    let resp = http
        .post(&idp.introspection_url)
        .basic_auth(&idp.client_id, Some(&idp.client_secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    resp.json().await.unwrap()
}

async fn upstream_error(s: &dyn Scaler) -> swell_scalers::UpstreamError {
    match s.sample().await {
        Err(ScalerError::Upstream(e)) => e,
        other => panic!("want an upstream error, got {:?}", other.map(|s| s.value)),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn client_credentials_tokens_are_fetched_cached_shared_and_renewed() {
    let idp = OAuthServer::shared();
    let source = MetricServer::start(7.0).await;
    source.require_some_bearer();
    let shared = Shared::default();
    let auth = client(idp, &idp.client_secret);

    // A token from the server, which the server itself vouches for.
    let a = metrics_api(&source.url, &auth, &shared);
    assert_eq!(a.sample().await.unwrap().value, 7.0);
    let first = source.last_bearer().unwrap();
    let seen = introspect(idp, &first).await;
    assert_eq!(seen["active"], true, "{seen}");
    assert_eq!(seen["client_id"], idp.client_id.as_str(), "{seen}");
    assert_eq!(seen["scope"], "metrics.read", "{seen}");

    // Cached: the next poll, another trigger and a prometheus trigger with the same client
    // send the same token (the server would issue a new one for each request).
    a.sample().await.unwrap();
    metrics_api(&source.url, &auth, &shared)
        .sample()
        .await
        .unwrap();
    let prom = MetricServer::start(0.0).await;
    prom.require_some_bearer();
    prom.set(Reply::Json(
        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"4"]}]}}"#.into(),
    ));
    let base = prom.url.trim_end_matches("/metric").to_string();
    let p = build(
        "prometheus",
        &[
            ("serverAddress", &base),
            ("query", "up"),
            ("threshold", "1"),
        ],
        &auth,
        &shared,
    );
    assert_eq!(p.sample().await.unwrap().value, 4.0);
    for s in [&source, &prom] {
        assert_eq!(s.last_bearer().as_deref(), Some(first.as_str()));
    }

    // A token the source refuses is dropped: the next poll fetches another.
    source.require_bearer("not-the-token");
    assert_eq!(upstream_error(a.as_ref()).await.status, Some(401));
    source.require_some_bearer();
    a.sample().await.unwrap();
    let second = source.last_bearer().unwrap();
    assert_ne!(second, first);
    assert_eq!(introspect(idp, &second).await["active"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn expiring_tokens_are_renewed_before_they_expire() {
    let idp = OAuthServer::short_lived();
    let source = MetricServer::start(1.0).await;
    source.require_some_bearer();
    let s = metrics_api(
        &source.url,
        &client(idp, &idp.client_secret),
        &Shared::default(),
    );
    s.sample().await.unwrap();
    let first = source.last_bearer().unwrap();
    // 12 s tokens are renewed 10 s early, as Go's oauth2 does.
    tokio::time::sleep(Duration::from_secs(3)).await;
    s.sample().await.unwrap();
    let second = source.last_bearer().unwrap();
    assert_ne!(first, second, "a token 3 s into its 12 s life is renewed");
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_credentials_and_untrusted_servers_are_named() {
    let idp = OAuthServer::shared();
    let source = MetricServer::start(1.0).await;
    let wrong = metrics_api(
        &source.url,
        &client(idp, "n0t-the-secret"),
        &Shared::default(),
    );
    let e = upstream_error(wrong.as_ref()).await;
    assert_eq!(e.kind, UpstreamKind::Auth, "{e}");
    assert!(
        e.message.starts_with(&format!(
            "oauth2 token endpoint {} refused the client: 401 invalid_client",
            idp.token_url
        )),
        "{e}"
    );
    assert!(!e.message.contains("n0t-the-secret"), "{e}");
    assert_eq!(source.requests(), 0, "no token, no request to the source");

    // Without the run's CA the token endpoint's certificate is not trusted.
    let mut untrusted = client(idp, &idp.client_secret);
    untrusted.retain(|(k, _)| k != "ca");
    let e = upstream_error(metrics_api(&source.url, &untrusted, &Shared::default()).as_ref()).await;
    assert_eq!(e.kind, UpstreamKind::Connect, "{e}");
    assert!(e.message.contains("certificate"), "{e}");
}

/// A TriggerAuthentication's `oauth2` block (the client secret from a Secret, the CA from
/// another) on a metrics-api trigger with `authModes: oauth`: 0 → 3 → 0 through the real HPA.
#[tokio::test]
async fn an_oauth2_trigger_authentication_scales_through_the_hpa() {
    let cluster = cluster();
    cluster
        .with_namespace("oauth-hpa", |ns| async move {
            let idp = OAuthServer::shared();
            let source = MetricServer::start(0.0).await;
            source.require_some_bearer();
            let ca = idp.ca_pem().replace('\n', "\\n");
            ns.apply(
                cluster,
                &format!(
                    r#"
apiVersion: v1
kind: Secret
metadata: {{name: oauth}}
stringData: {{secret: "{secret}", ca: "{ca}"}}
---
apiVersion: keda.sh/v1alpha1
kind: TriggerAuthentication
metadata: {{name: idp}}
spec:
  secretTargetRef: [{{parameter: ca, name: oauth, key: ca}}]
  oauth2:
    type: clientCredentials
    clientId: {client}
    tokenUrl: {url}
    scopes: [metrics.read]
    clientSecret: {{valueFrom: {{secretKeyRef: {{name: oauth, key: secret}}}}}}
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {{name: app}}
spec:
  scaleTargetRef: {{name: app}}
  pollingInterval: 1
  cooldownPeriod: 2
  maxReplicaCount: 5
  triggers:
  - type: metrics-api
    metadata: {{url: "{source}", valueLocation: value, targetValue: "2", authModes: oauth}}
    authenticationRef: {{name: idp}}
"#,
                    secret = idp.client_secret,
                    client = idp.client_id,
                    url = idp.token_url,
                    source = source.url,
                ),
            )
            .unwrap();
            ns.apply(cluster, &deployment("app", 0)).unwrap();
            let (op, _guard) = operator_with_metrics_api(cluster, &ns).await;
            wait_condition(&ns, "app", "Ready", "True").await;
            source.set(Reply::Value(6.0));
            wait_replicas(&ns, "app", 3).await;
            let token = source.last_bearer().unwrap();
            assert_eq!(
                introspect(idp, &token).await["client_id"],
                idp.client_id.as_str()
            );

            let status = serde_json::to_string(&so(&ns, "app").await.status).unwrap();
            let events = event_notes(&ns, "KEDAScaleTargetActivated")
                .await
                .join("\n");
            for text in [status, events, op.log_text()] {
                assert!(!text.contains(&idp.client_secret) && !text.contains(&token));
            }
            source.set(Reply::Value(0.0));
            wait_replicas(&ns, "app", 0).await;
        })
        .await;
}
