//! Manifests as `swell check` and the admission webhook see them: YAML documents parsed into
//! keda.sh objects (with every decoding problem as a finding), then checked offline or against
//! the cluster. Pure except for [`check_with_cluster`]; never panics on any input.

use serde_json::Value;
use swell_api::{
    AuthenticationRefKind, ClusterTriggerAuthentication, ScaleTriggers, ScaledJob, ScaledObject,
    TriggerAuthentication,
};

use crate::check::{self, AuthKnowledge, Finding};
use crate::check_cluster;

/// A parsed keda.sh object (variants are named after the kinds).
#[allow(clippy::enum_variant_names)]
pub enum Object {
    ScaledObject(Box<ScaledObject>),
    ScaledJob(Box<ScaledJob>),
    TriggerAuthentication(Box<TriggerAuthentication>),
    ClusterTriggerAuthentication(Box<ClusterTriggerAuthentication>),
}

/// One document and what the check found.
pub struct Doc {
    /// `file:index`, the index counting documents from 0.
    pub location: String,
    /// `Kind namespace/name` (or `Kind name` for cluster-scoped objects).
    pub title: String,
    pub object: Option<Object>,
    pub findings: Vec<Finding>,
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

/// serde's message and path as a finding: a missing field is named in the path.
fn decode_error(err: &serde_path_to_error::Error<serde_json::Error>) -> Finding {
    let path = err.path().to_string();
    let inner = err.inner().to_string();
    let inner = inner
        .split(" at line ")
        .next()
        .unwrap_or(inner.as_str())
        .to_string();
    if let Some(name) = inner
        .strip_prefix("missing field `")
        .and_then(|r| r.strip_suffix('`'))
    {
        let field = if path == "." || path.is_empty() {
            name.to_string()
        } else {
            format!("{path}.{name}")
        };
        return Finding::error(field, format!("required; set {name}"));
    }
    let field = if path == "." { String::new() } else { path };
    if inner.starts_with("invalid type: null") {
        return Finding::error(field, format!("{inner}; give a value or remove the field"));
    }
    Finding::error(
        field,
        format!(
            "{inner}; fix the value's type (trigger metadata values are strings: quote numbers and booleans)"
        ),
    )
}

fn decode<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, Finding> {
    serde_path_to_error::deserialize(value).map_err(|e| decode_error(&e))
}

/// Reports every non-string trigger metadata value (the API server rejects them) and turns
/// it into a string, so the rest of the triggers' checks still run.
fn stringify_metadata(value: &mut Value, findings: &mut Vec<Finding>) {
    let Some(triggers) = value
        .pointer_mut("/spec/triggers")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for (i, trigger) in triggers.iter_mut().enumerate() {
        let Some(metadata) = trigger.get_mut("metadata").and_then(Value::as_object_mut) else {
            continue;
        };
        for (key, v) in metadata.iter_mut() {
            let text = match v {
                Value::String(_) => continue,
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Null => String::new(),
                other => {
                    findings.push(Finding::error(
                        format!("spec.triggers[{i}].metadata.{key}"),
                        "is a list or map; trigger metadata values are strings",
                    ));
                    *other = Value::String(String::new());
                    continue;
                }
            };
            findings.push(Finding::error(
                format!("spec.triggers[{i}].metadata.{key}"),
                format!("{text} is not a string and the API server will reject it; quote it: {key}: \"{text}\""),
            ));
            *v = Value::String(text);
        }
    }
}

/// Parses one document into a [`Doc`]; unknown kinds are skipped with a note.
pub fn parse_doc(location: String, value: Value) -> Doc {
    let kind = str_at(&value, &["kind"]).unwrap_or_default().to_string();
    let api_version = str_at(&value, &["apiVersion"]).unwrap_or_default();
    let name = str_at(&value, &["metadata", "name"]).unwrap_or("<no name>");
    let title = match str_at(&value, &["metadata", "namespace"]) {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    };
    let mut doc = Doc {
        location,
        title,
        object: None,
        findings: Vec::new(),
    };
    let group = api_version.split('/').next().unwrap_or_default();
    if group == "eventing.keda.sh"
        && matches!(
            kind.as_str(),
            "CloudEventSource" | "ClusterCloudEventSource"
        )
    {
        let api_version = api_version.to_string();
        check_cloud_event_source(&api_version, &kind, value, &mut doc.findings);
        return doc;
    }
    let keda = group == "keda.sh";
    if !keda
        || !matches!(
            kind.as_str(),
            "ScaledObject" | "ScaledJob" | "TriggerAuthentication" | "ClusterTriggerAuthentication"
        )
    {
        let what = if kind.is_empty() {
            "a document without kind".to_string()
        } else {
            format!("{api_version} {kind}")
        };
        doc.findings.push(Finding::note(
            "kind",
            format!("skipped: {what} is not a keda.sh ScaledObject, ScaledJob, TriggerAuthentication or ClusterTriggerAuthentication"),
        ));
        return doc;
    }
    if api_version != "keda.sh/v1alpha1" {
        doc.findings.push(Finding::error(
            "apiVersion",
            format!("{api_version:?} is not served; use keda.sh/v1alpha1"),
        ));
        return doc;
    }
    if str_at(&value, &["metadata", "name"]).is_none_or(str::is_empty) {
        doc.findings
            .push(Finding::error("metadata.name", "required; name the object"));
    }
    let mut value = value;
    // `triggers: null` is an empty list to KEDA (Go decodes null into a nil slice), so it gets
    // KEDA's "no triggers defined" rather than a decoding error about types.
    if let Some(t) = value.pointer_mut("/spec/triggers").filter(|t| t.is_null()) {
        *t = Value::Array(Vec::new());
    }
    stringify_metadata(&mut value, &mut doc.findings);
    let parsed = match kind.as_str() {
        "ScaledObject" => decode(value).map(|o| Object::ScaledObject(Box::new(o))),
        "ScaledJob" => decode(value).map(|o| Object::ScaledJob(Box::new(o))),
        "TriggerAuthentication" => {
            decode(value).map(|o| Object::TriggerAuthentication(Box::new(o)))
        }
        _ => decode(value).map(|o| Object::ClusterTriggerAuthentication(Box::new(o))),
    };
    match parsed {
        Ok(o) => doc.object = Some(o),
        Err(f) => doc.findings.push(f),
    }
    doc
}

/// A CloudEventSource or ClusterCloudEventSource: KEDA's webhook rules, and what Swell
/// refuses (destinations other than `http`).
fn check_cloud_event_source(
    api_version: &str,
    kind: &str,
    value: Value,
    findings: &mut Vec<Finding>,
) {
    if api_version != "eventing.keda.sh/v1alpha1" {
        findings.push(Finding::error(
            "apiVersion",
            format!("{api_version:?} is not served; use eventing.keda.sh/v1alpha1"),
        ));
        return;
    }
    if str_at(&value, &["metadata", "name"]).is_none_or(str::is_empty) {
        findings.push(Finding::error("metadata.name", "required; name the object"));
    }
    let spec = if kind == "CloudEventSource" {
        decode::<swell_api::CloudEventSource>(value).map(|o| o.spec)
    } else {
        decode::<swell_api::ClusterCloudEventSource>(value).map(|o| o.spec.0)
    };
    let spec = match spec {
        Ok(s) => s,
        Err(f) => return findings.push(f),
    };
    if let Err(errors) = spec.validate() {
        findings.extend(
            errors
                .into_iter()
                .map(|e| Finding::error(e.field, e.message)),
        );
    }
    if let Err(e) = spec.http_uri() {
        findings.push(Finding::error(e.field, e.message));
    }
}

/// The namespace a namespaced object lands in when the manifest leaves it out.
pub const DEFAULT_NAMESPACE: &str = "default";

fn namespace_of(meta: &kube::api::ObjectMeta, default_ns: &str) -> String {
    meta.namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| default_ns.to_string())
}

/// What the input says about each trigger's authentication.
pub fn auth_knowledge(
    docs: &[Doc],
    ns: &str,
    triggers: &[ScaleTriggers],
    default_ns: &str,
) -> Vec<AuthKnowledge> {
    triggers
        .iter()
        .map(|t| {
            let Some(r) = &t.authentication_ref else {
                return AuthKnowledge::None;
            };
            let found = docs.iter().find_map(|d| match (&d.object, r.kind()) {
                (
                    Some(Object::TriggerAuthentication(ta)),
                    AuthenticationRefKind::TriggerAuthentication,
                ) if ta.metadata.name.as_deref() == Some(r.name.as_str())
                    && namespace_of(&ta.metadata, default_ns) == ns =>
                {
                    Some(ta.spec.clone())
                }
                (
                    Some(Object::ClusterTriggerAuthentication(cta)),
                    AuthenticationRefKind::ClusterTriggerAuthentication,
                ) if cta.metadata.name.as_deref() == Some(r.name.as_str()) => {
                    Some(cta.spec.0.clone())
                }
                _ => None,
            });
            found.map_or(AuthKnowledge::Unknown, |s| AuthKnowledge::Spec(Box::new(s)))
        })
        .collect()
}

type TargetKey = (String, String, String);

/// Every ScaledObject of the input as `(namespace, name, target)`.
fn siblings(docs: &[Doc], default_ns: &str) -> Vec<(String, String, TargetKey)> {
    docs.iter()
        .filter_map(|d| match &d.object {
            Some(Object::ScaledObject(so)) => {
                let t = &so.spec.scale_target_ref;
                Some((
                    namespace_of(&so.metadata, default_ns),
                    so.metadata.name.clone().unwrap_or_default(),
                    check_cluster::target_key(t.api_version(), t.kind(), &t.name),
                ))
            }
            _ => None,
        })
        .collect()
}

/// Two ScaledObjects of the input on one workload.
fn duplicate_targets(
    so: &ScaledObject,
    ns: &str,
    all: &[(String, String, TargetKey)],
) -> Vec<Finding> {
    let t = &so.spec.scale_target_ref;
    let key = check_cluster::target_key(t.api_version(), t.kind(), &t.name);
    let name = so.metadata.name.as_deref().unwrap_or_default();
    all.iter()
        .filter(|(n, other, k)| n == ns && other != name && *k == key)
        .map(|(_, other, _)| {
            Finding::error(
                "spec.scaleTargetRef",
                format!("ScaledObject {ns}/{other} also targets {} {ns}/{}; a workload can have only one ScaledObject: merge their triggers into one", t.kind(), t.name),
            )
        })
        .collect()
}

/// The offline checks of every parsed document.
pub fn check_offline(docs: &mut [Doc], default_ns: &str) {
    let all = siblings(docs, default_ns);
    let mut results = Vec::with_capacity(docs.len());
    for doc in docs.iter() {
        let findings = match &doc.object {
            Some(Object::ScaledObject(so)) => {
                let ns = namespace_of(&so.metadata, default_ns);
                let auths = auth_knowledge(docs, &ns, &so.spec.triggers, default_ns);
                let mut f = check::scaled_object(so, &auths);
                f.extend(duplicate_targets(so, &ns, &all));
                f
            }
            Some(Object::ScaledJob(sj)) => {
                let ns = namespace_of(&sj.metadata, default_ns);
                let auths = auth_knowledge(docs, &ns, &sj.spec.triggers, default_ns);
                check::scaled_job(sj, &auths)
            }
            Some(Object::TriggerAuthentication(ta)) => check::trigger_authentication(&ta.spec),
            Some(Object::ClusterTriggerAuthentication(cta)) => {
                check::trigger_authentication(&cta.spec)
            }
            None => Vec::new(),
        };
        results.push(findings);
    }
    for (doc, findings) in docs.iter_mut().zip(results) {
        doc.findings.extend(findings);
    }
}

/// The offline checks plus the cluster's: missing TriggerAuthentications are read from the
/// API server (so their parameters are checked), and each ScaledObject's target, identity and
/// competing autoscalers are looked at.
pub async fn check_with_cluster(docs: &mut [Doc], client: &kube::Client, default_ns: &str) {
    let default_ns = default_ns.to_string();
    let all = siblings(docs, &default_ns);
    let mut results = Vec::with_capacity(docs.len());
    for doc in docs.iter() {
        let mut out = Vec::new();
        match &doc.object {
            Some(Object::ScaledObject(so)) => {
                let ns = namespace_of(&so.metadata, &default_ns);
                let auths = auth_knowledge(docs, &ns, &so.spec.triggers, &default_ns);
                let auths = check_cluster::resolve_auths(
                    check_cluster::Mode::Check,
                    client,
                    &ns,
                    &so.spec.triggers,
                    auths,
                    &mut out,
                )
                .await;
                out.extend(check::scaled_object(so, &auths));
                out.extend(
                    check_cluster::scaled_object(
                        check_cluster::Mode::Check,
                        client,
                        so,
                        &ns,
                        &auths,
                        &all,
                    )
                    .await,
                );
            }
            Some(Object::ScaledJob(sj)) => {
                let ns = namespace_of(&sj.metadata, &default_ns);
                let auths = auth_knowledge(docs, &ns, &sj.spec.triggers, &default_ns);
                let auths = check_cluster::resolve_auths(
                    check_cluster::Mode::Check,
                    client,
                    &ns,
                    &sj.spec.triggers,
                    auths,
                    &mut out,
                )
                .await;
                out.extend(check::scaled_job(sj, &auths));
            }
            Some(Object::TriggerAuthentication(ta)) => {
                out.extend(check::trigger_authentication(&ta.spec));
            }
            Some(Object::ClusterTriggerAuthentication(cta)) => {
                out.extend(check::trigger_authentication(&cta.spec));
            }
            None => {}
        }
        results.push(out);
    }
    for (doc, findings) in docs.iter_mut().zip(results) {
        doc.findings.extend(findings);
    }
}

/// Parses YAML text (one or more documents) named `name`: the documents, or why the text is
/// not YAML / not Kubernetes objects.
pub fn parse_text(name: &str, text: &str) -> (Vec<Doc>, Vec<String>) {
    let mut docs = Vec::new();
    let mut unreadable = Vec::new();
    let values: Vec<Value> = match serde_saphyr::from_str_multiple(text) {
        Ok(v) => v,
        Err(e) => {
            unreadable.push(format!("{name}: not valid YAML: {e}"));
            return (docs, unreadable);
        }
    };
    for (index, value) in values.into_iter().enumerate() {
        if value.is_null() {
            continue;
        }
        if !value.is_object() {
            unreadable.push(format!(
                "{name}:{index}: not a Kubernetes object (a YAML mapping with apiVersion and kind)"
            ));
            continue;
        }
        docs.push(parse_doc(format!("{name}:{index}"), value));
    }
    (docs, unreadable)
}

/// The fuzzing harness (also run by the normal tests over a corpus): arbitrary bytes as a
/// manifest, and as `key=value` trigger metadata for every scaler. Must never panic.
pub fn exercise(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (mut docs, _) = parse_text("fuzz", &text);
    check_offline(&mut docs, DEFAULT_NAMESPACE);
    let metadata: std::collections::BTreeMap<String, String> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for type_ in swell_scalers::known_types() {
        for (auth_unknown, env_unknown) in [(false, false), (true, true)] {
            let input = swell_scalers::TriggerInput {
                type_: (*type_).to_string(),
                params: swell_scalers::RawParams {
                    metadata: metadata.clone(),
                    auth: metadata.clone(),
                    env: metadata.clone(),
                    env_unknown,
                    auth_unknown,
                    ..Default::default()
                },
                ..Default::default()
            };
            let _ = swell_scalers::check(&input);
        }
    }
}
