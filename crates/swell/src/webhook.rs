//! The validating admission webhook: the API server sends each keda.sh object being created
//! or updated, and gets back what `swell check --cluster` would say — errors deny the request
//! (with the same `field: message` text), warnings come back as admission warnings. What may
//! simply not exist yet (the target, a TriggerAuthentication, the ServiceAccount) only warns,
//! so the order of a `kubectl apply` does not matter.

use axum::Json;
use axum::extract::State;
use axum::routing::post;
use serde_json::{Value, json};
use swell_controller::check::{self, AuthKnowledge, Finding, Severity};
use swell_controller::check_cluster::{self, Mode};

use swell_controller::manifest::{Doc, Object, parse_doc};

/// KEDA's webhook paths; every one accepts any of the four kinds.
pub const PATHS: [&str; 4] = [
    "/validate-keda-sh-v1alpha1-scaledobject",
    "/validate-keda-sh-v1alpha1-scaledjob",
    "/validate-keda-sh-v1alpha1-triggerauthentication",
    "/validate-keda-sh-v1alpha1-clustertriggerauthentication",
];

pub fn router(client: kube::Client) -> axum::Router {
    let mut router = axum::Router::new();
    for path in PATHS {
        router = router.route(path, post(review));
    }
    router.with_state(client)
}

async fn review(State(client): State<kube::Client>, Json(body): Json<Value>) -> Json<Value> {
    let request = &body["request"];
    let uid = request["uid"].clone();
    let (allowed, message, warnings) = decide(&client, request).await;
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

/// The findings for one admission request (CREATE or UPDATE of a keda.sh object).
pub async fn findings(client: &kube::Client, namespace: &str, object: Value) -> Vec<Finding> {
    let doc: Doc = parse_doc("admission".into(), object);
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
            out.extend(check::scaled_object(&so, &auths));
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
            out.extend(check::scaled_job(&sj, &auths));
        }
        Some(Object::TriggerAuthentication(ta)) => {
            out.extend(check::trigger_authentication(&ta.spec));
        }
        Some(Object::ClusterTriggerAuthentication(cta)) => {
            out.extend(check::trigger_authentication(&cta.spec));
        }
        None => {}
    }
    // Notes are for people reading `swell check`; the API server has nothing to show them in.
    out.retain(|f| f.severity != Severity::Note);
    out
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

async fn decide(client: &kube::Client, request: &Value) -> (bool, String, Vec<String>) {
    let operation = request["operation"].as_str().unwrap_or_default();
    if !matches!(operation, "CREATE" | "UPDATE") {
        return (true, String::new(), Vec::new());
    }
    let object = request["object"].clone();
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
    let found = findings(client, &namespace, object).await;
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
    let kind = request["kind"]["kind"].as_str().unwrap_or("object");
    tracing::debug!(kind, namespace, errors = errors.len(), "admission review");
    (errors.is_empty(), errors.join("; "), warnings)
}
