//! The validating admission webhook: the API server sends each keda.sh object being created
//! or updated, and gets back what `swell check --cluster` would say — errors deny the request
//! (with the same `field: message` text), warnings come back as admission warnings. What may
//! simply not exist yet (the target, a TriggerAuthentication, the ServiceAccount) only warns,
//! so the order of a `kubectl apply` does not matter.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::routing::post;
use serde_json::{Value, json};
use swell_check::check::{self, AuthKnowledge, Finding, Severity};
use swell_check::check_cluster::{self, Mode};
use swell_controller::metrics::WebhookMetrics;
use tokio::sync::Semaphore;

use swell_check::manifest::{Doc, Object, parse_doc};

/// KEDA's webhook paths; every one accepts any of the four kinds.
pub const PATHS: [&str; 4] = [
    "/validate-keda-sh-v1alpha1-scaledobject",
    "/validate-keda-sh-v1alpha1-scaledjob",
    "/validate-keda-sh-v1alpha1-triggerauthentication",
    "/validate-keda-sh-v1alpha1-clustertriggerauthentication",
];

/// The largest review: the API server takes request bodies up to 3 MiB, and an UPDATE's
/// review carries the object and its old version, plus the envelope. axum's default (2 MB)
/// answered 413 for objects near 1 MB, so they never got a finalizer with failurePolicy Fail.
pub const MAX_REVIEW_BYTES: usize = 2 * 3 * 1024 * 1024 + 256 * 1024;

/// How long a review may take when the API server does not say (`?timeout=`): below the
/// webhook's default and the chart's `timeoutSeconds` (10 s).
const DEFAULT_DEADLINE: Duration = Duration::from_secs(8);

/// Reviews checked at once; more wait (within their deadline). The checks run on blocking
/// threads, which a deadline cannot stop, so this bounds the CPU a flood of huge objects takes.
const CONCURRENT_REVIEWS: usize = 2;

#[derive(Clone)]
struct Reviewer {
    client: kube::Client,
    permits: Arc<Semaphore>,
    metrics: WebhookMetrics,
}

pub fn router(client: kube::Client, metrics: WebhookMetrics) -> axum::Router {
    let mut router = axum::Router::new();
    for path in PATHS {
        router = router.route(path, post(review));
    }
    router
        .layer(DefaultBodyLimit::max(MAX_REVIEW_BYTES))
        .with_state(Reviewer {
            client,
            permits: Arc::new(Semaphore::new(CONCURRENT_REVIEWS)),
            metrics,
        })
}

/// The deadline for one review: 80% of the API server's `timeout` query parameter (a Go
/// duration such as `10s`), else [`DEFAULT_DEADLINE`].
fn deadline(query: Option<&str>) -> Duration {
    query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|kv| kv.strip_prefix("timeout="))
        .and_then(go_duration)
        .map_or(DEFAULT_DEADLINE, |t| t.mul_f64(0.8))
}

/// A positive Go duration (the API server sends `10s`, `30s`, …).
fn go_duration(s: &str) -> Option<Duration> {
    match swell_scalers::metadata::go_duration(s) {
        Some((false, d)) if !d.is_zero() => Some(d),
        _ => None,
    }
}

/// Runs CPU-bound checking on a blocking thread, holding one of the reviewer's permits.
async fn blocking<T: Send + 'static>(
    permits: &Arc<Semaphore>,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let permit = permits
        .clone()
        .acquire_owned()
        .await
        .map_err(|e| e.to_string())?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        work()
    })
    .await
    .map_err(|e| format!("the check failed: {e}"))
}

async fn review(
    State(reviewer): State<Reviewer>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Json<Value> {
    let limit = deadline(query.as_deref());
    let until = tokio::time::Instant::now() + limit;
    // Parsing a review of several MB is CPU work too: off the async workers with the rest.
    let parsed = blocking(&reviewer.permits, move || {
        serde_json::from_slice::<Value>(&body).map_err(|e| format!("not an AdmissionReview: {e}"))
    });
    let (uid, decided) = match tokio::time::timeout_at(until, parsed).await {
        Ok(Ok(Ok(mut body))) => {
            let request = body.get_mut("request").map(Value::take).unwrap_or_default();
            let uid = request["uid"].clone();
            let decided = tokio::time::timeout_at(until, decide(&reviewer, request)).await;
            (uid, decided.ok())
        }
        Ok(Ok(Err(e)) | Err(e)) => (Value::Null, Some((false, e, Vec::new()))),
        Err(_) => (Value::Null, None),
    };
    let (allowed, message, warnings) = decided.unwrap_or_else(|| {
        tracing::warn!(deadline = ?limit, "admission review took too long; refused");
        let message = format!(
            "Swell could not check this object within {} ms (it is too large or too complex, or the webhook is busy); make it smaller or try again",
            limit.as_millis()
        );
        (false, message, Vec::new())
    });
    let mut response = json!({ "uid": uid, "allowed": allowed });
    if !allowed {
        response["status"] = json!({ "code": 403, "reason": "Invalid", "message": message });
    }
    if !warnings.is_empty() {
        response["warnings"] = json!(warnings);
    }
    Json(json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": response,
    }))
}

/// The findings for one admission request (CREATE or UPDATE of a keda.sh object): the
/// offline checks on a blocking thread, the cluster's between them on the async workers.
async fn findings(
    reviewer: &Reviewer,
    namespace: &str,
    object: Value,
) -> Result<Vec<Finding>, String> {
    let (client, permits) = (&reviewer.client, &reviewer.permits);
    let doc: Doc = blocking(permits, move || parse_doc("admission".into(), object)).await?;
    let mut out = doc.findings;
    let ns = namespace.to_string();
    match doc.object {
        Some(Object::ScaledObject(so)) => {
            let auths = unknown_auths(&so.spec.triggers);
            let auths = check_cluster::resolve_auths(
                Mode::Admission,
                client,
                &ns,
                &so.spec.triggers,
                auths,
                &mut out,
            )
            .await;
            let (so, auths, offline) = blocking(permits, move || {
                let f = check::scaled_object(&so, &auths);
                (so, auths, f)
            })
            .await?;
            out.extend(offline);
            out.extend(
                check_cluster::scaled_object(Mode::Admission, client, &so, &ns, &auths, &[]).await,
            );
        }
        Some(Object::ScaledJob(sj)) => {
            let auths = unknown_auths(&sj.spec.triggers);
            let auths = check_cluster::resolve_auths(
                Mode::Admission,
                client,
                &ns,
                &sj.spec.triggers,
                auths,
                &mut out,
            )
            .await;
            out.extend(blocking(permits, move || check::scaled_job(&sj, &auths)).await?);
        }
        Some(Object::TriggerAuthentication(ta)) => {
            out.extend(blocking(permits, move || check::trigger_authentication(&ta.spec)).await?);
        }
        Some(Object::ClusterTriggerAuthentication(cta)) => {
            out.extend(blocking(permits, move || check::trigger_authentication(&cta.spec)).await?);
        }
        None => {}
    }
    // Notes are for people reading `swell check`; the API server has nothing to show them in.
    out.retain(|f| f.severity != Severity::Note);
    Ok(out)
}

fn unknown_auths(triggers: &[swell_api::ScaleTriggers]) -> Vec<AuthKnowledge> {
    triggers
        .iter()
        .map(|t| match t.authentication_ref {
            Some(_) => AuthKnowledge::Unknown,
            None => AuthKnowledge::None,
        })
        .collect()
}

async fn decide(reviewer: &Reviewer, mut request: Value) -> (bool, String, Vec<String>) {
    let operation = request["operation"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if !matches!(operation.as_str(), "CREATE" | "UPDATE") {
        return (true, String::new(), Vec::new());
    }
    // `get_mut`, not `[]`: indexing a non-object for writing panics.
    let object = request
        .get_mut("object")
        .map(Value::take)
        .unwrap_or_default();
    // Like KEDA: changes that leave the spec alone (finalizers, labels, annotations) and
    // objects being deleted pass, so a deletion never hangs on an object that became invalid.
    if operation == "UPDATE"
        && (object["spec"] == request["oldObject"]["spec"]
            || !object["metadata"]["deletionTimestamp"].is_null())
    {
        return (true, String::new(), Vec::new());
    }
    let namespace = request["namespace"]
        .as_str()
        .or_else(|| object["metadata"]["namespace"].as_str())
        .unwrap_or_default()
        .to_string();
    let kind = request["kind"]["kind"]
        .as_str()
        .unwrap_or("object")
        .to_string();
    let action = operation.to_ascii_lowercase();
    if kind == "ScaledObject" {
        reviewer.metrics.validation(&namespace, &action);
    }
    let found = match findings(reviewer, &namespace, object).await {
        Ok(f) => f,
        Err(e) => return (false, e, Vec::new()),
    };
    let errors: Vec<String> = found
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(ToString::to_string)
        .collect();
    let warnings: Vec<String> = found
        .iter()
        .filter(|f| f.severity == Severity::Warning)
        .map(ToString::to_string)
        .collect();
    if let Some(first) = found.iter().find(|f| f.severity == Severity::Error) {
        let reason = validation_reason(first);
        // KEDA's ScaledJob webhook checks (and counts) only the triggers.
        if kind == "ScaledObject" || (kind == "ScaledJob" && reason == "incorrect-triggers") {
            reviewer
                .metrics
                .validation_error(&namespace, &action, reason);
        }
    }
    tracing::debug!(%kind, namespace, errors = errors.len(), "admission review");
    (errors.is_empty(), errors.join("; "), warnings)
}

/// KEDA's `reason` label of `keda_webhook_scaled_object_validation_errors_total` for the
/// first error found: by the field it names (and, for the target, what it says).
fn validation_reason(f: &Finding) -> &'static str {
    let field = f.field.as_str();
    let under = |prefix: &str| {
        field == prefix
            || field.starts_with(&format!("{prefix}."))
            || field.starts_with(&format!("{prefix}["))
    };
    if under("spec.triggers") {
        if f.message.contains(" request") && f.message.contains("Utilization") {
            return "missing-requests";
        }
        return "incorrect-triggers";
    }
    if under("spec.advanced.scalingModifiers") {
        return "scaling-modifiers";
    }
    if under("spec.fallback") {
        return "incorrect-fallback";
    }
    let too_long = f.message.contains("long");
    if under("spec.advanced.horizontalPodAutoscalerConfig.name") && too_long {
        return "hpa-name-too-long";
    }
    if under("metadata.name") && too_long {
        return "name-too-long";
    }
    if [
        "spec.minReplicaCount",
        "spec.maxReplicaCount",
        "spec.idleReplicaCount",
    ]
    .iter()
    .any(|p| under(p))
    {
        return "incorrect-replicas";
    }
    if under("spec.scaleTargetRef") {
        if f.message.starts_with("HorizontalPodAutoscaler ") {
            return "other-hpa";
        }
        if f.message.starts_with("ScaledObject ") {
            return "other-scaled-object";
        }
    }
    "other"
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[test]
    fn validation_reasons_are_kedas() {
        let cases = [
            (
                "spec.triggers[0].metadata.query",
                "is required",
                "incorrect-triggers",
            ),
            (
                "spec.triggers[1]",
                "the target's container \"a\" has no cpu request, so cpu Utilization cannot be computed",
                "missing-requests",
            ),
            (
                "spec.advanced.scalingModifiers.formula",
                "bad",
                "scaling-modifiers",
            ),
            ("spec.fallback.replicas", "bad", "incorrect-fallback"),
            ("spec.minReplicaCount", "above max", "incorrect-replicas"),
            ("spec.idleReplicaCount", "bad", "incorrect-replicas"),
            ("metadata.name", "too long", "name-too-long"),
            ("metadata.name", "required; name the object", "other"),
            (
                "spec.advanced.horizontalPodAutoscalerConfig.name",
                "too long",
                "hpa-name-too-long",
            ),
            (
                "spec.scaleTargetRef",
                "ScaledObject ns/b already targets apps/v1 Deployment a",
                "other-scaled-object",
            ),
            (
                "spec.scaleTargetRef",
                "HorizontalPodAutoscaler ns/h already scales it",
                "other-hpa",
            ),
            ("spec.scaleTargetRef", "Deployment a not found", "other"),
            ("spec.pollingIntervalX", "bad", "other"),
        ];
        for (field, message, want) in cases {
            let f = Finding::error(field, message);
            assert_eq!(validation_reason(&f), want, "{field}: {message}");
        }
    }

    #[test]
    fn deadline_follows_the_api_servers_timeout() {
        assert_eq!(go_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(go_duration("0s"), None);
        assert_eq!(go_duration("-5s"), None);
        assert_eq!(deadline(Some("timeout=10s")), Duration::from_secs(8));
        assert_eq!(deadline(Some("a=b&timeout=30s")), Duration::from_secs(24));
        assert_eq!(deadline(None), DEFAULT_DEADLINE);
        assert_eq!(deadline(Some("timeout=soon")), DEFAULT_DEADLINE);
    }

    /// POSTs `body` to the webhook router over plain HTTP: the status line and the body.
    async fn post(body: &[u8]) -> (String, String) {
        post_with(body, "10s").await
    }

    async fn post_with(body: &[u8], timeout: &str) -> (String, String) {
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let router = router(
            kube::Client::try_from(config).unwrap(),
            WebhookMetrics::default(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, router).await });
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST {}?timeout={timeout} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            PATHS[0],
            body.len()
        );
        tcp.write_all(head.as_bytes()).await.unwrap();
        // The server may answer (413) before reading it all.
        let _ = tcp.write_all(body).await;
        let mut answer = Vec::new();
        let _ = tcp.read_to_end(&mut answer).await;
        server.abort();
        let text = String::from_utf8_lossy(&answer).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        (
            head.lines().next().unwrap_or_default().to_string(),
            body.to_string(),
        )
    }

    /// Issue 17: an UPDATE review of an object near 1 MB carries it twice (and the API server
    /// takes objects up to 3 MiB); axum's default limit of 2 MB answered 413.
    #[tokio::test]
    async fn takes_an_update_review_of_two_large_copies() {
        let object = json!({
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledObject",
            "metadata": {"name": "big", "annotations": {"big": "x".repeat(2 << 20)}},
            "spec": {"scaleTargetRef": {"name": "app"}, "triggers": []},
        });
        let review = json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "u-1",
                "operation": "UPDATE",
                "kind": {"kind": "ScaledObject"},
                "object": object,
                "oldObject": object,
            },
        });
        let body = serde_json::to_vec(&review).unwrap();
        assert!(body.len() > 4 << 20 && body.len() < MAX_REVIEW_BYTES);
        let (status, answer) = post(&body).await;
        assert!(status.contains(" 200 "), "{status}");
        let answer: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(answer["response"]["uid"], "u-1");
        assert_eq!(answer["response"]["allowed"], true, "{answer}");
        // Past its deadline (from the API server's timeout), a review is refused with a
        // message rather than left to hold the webhook.
        let (status, answer) = post_with(&body, "1ms").await;
        assert!(status.contains(" 200 "), "{status}");
        let answer: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(answer["response"]["allowed"], false, "{answer}");
        let message = answer["response"]["status"]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(
            message.contains("could not check this object within 0 ms"),
            "{message}"
        );
        // Past the limit: refused before it is read into memory.
        let (status, _) = post(&vec![b' '; MAX_REVIEW_BYTES + 1]).await;
        assert!(status.contains(" 413 "), "{status}");
    }
}
