//! The KEDA-style manifests in `tests/manifests/` must deserialize into the Rust types,
//! re-serialize without losing or adding anything, pass KEDA's validation rules, and together
//! use every spec field of every kind.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use swell_api::{
    CloudEventSource, ClusterCloudEventSource, ClusterTriggerAuthentication, ScaledJob,
    ScaledObject, TriggerAuthentication, ValidationError,
};

struct Doc {
    file: String,
    value: Value,
}

fn manifests() -> Vec<Doc> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/manifests");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/manifests exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut docs = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("readable manifest");
        let values: Vec<Value> = serde_saphyr::from_str_multiple(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        docs.extend(values.into_iter().map(|value| Doc {
            file: file.clone(),
            value,
        }));
    }
    assert!(!docs.is_empty(), "no manifests found in {}", dir.display());
    docs
}

fn label(doc: &Doc) -> String {
    format!(
        "{} {}/{}",
        doc.file,
        doc.value["kind"].as_str().unwrap_or("?"),
        doc.value["metadata"]["name"].as_str().unwrap_or("?")
    )
}

/// Deserializes, re-serializes and compares, returning the typed object.
fn round_trip<T: DeserializeOwned + Serialize>(doc: &Doc, problems: &mut Vec<String>) -> Option<T> {
    let typed: T = match serde_json::from_value(doc.value.clone()) {
        Ok(t) => t,
        Err(e) => {
            problems.push(format!("{}: does not deserialize: {e}", label(doc)));
            return None;
        }
    };
    match serde_json::to_value(&typed) {
        Ok(back) if back == doc.value => {}
        Ok(back) => problems.push(format!(
            "{}: changed on round trip:\n  in:  {}\n  out: {}",
            label(doc),
            doc.value,
            back
        )),
        Err(e) => problems.push(format!("{}: does not serialize: {e}", label(doc))),
    }
    Some(typed)
}

fn check_valid(doc: &Doc, result: Result<(), Vec<ValidationError>>, problems: &mut Vec<String>) {
    if let Err(errors) = result {
        problems.push(format!(
            "{}: fails validation: {}",
            label(doc),
            swell_api::validation::format_errors(&errors)
        ));
    }
}

#[test]
fn manifests_round_trip_and_validate() {
    let mut problems = Vec::new();
    for doc in manifests() {
        match doc.value["kind"].as_str() {
            Some("ScaledObject") => {
                if let Some(so) = round_trip::<ScaledObject>(&doc, &mut problems) {
                    check_valid(&doc, so.validate(), &mut problems);
                }
            }
            Some("ScaledJob") => {
                if let Some(sj) = round_trip::<ScaledJob>(&doc, &mut problems) {
                    check_valid(&doc, sj.validate(), &mut problems);
                }
            }
            Some("TriggerAuthentication") => {
                if let Some(ta) = round_trip::<TriggerAuthentication>(&doc, &mut problems) {
                    check_valid(&doc, ta.validate(), &mut problems);
                }
            }
            Some("ClusterTriggerAuthentication") => {
                if let Some(cta) = round_trip::<ClusterTriggerAuthentication>(&doc, &mut problems) {
                    check_valid(&doc, cta.validate(), &mut problems);
                }
            }
            Some("CloudEventSource") => {
                if let Some(ces) = round_trip::<CloudEventSource>(&doc, &mut problems) {
                    check_valid(&doc, ces.spec.validate(), &mut problems);
                }
            }
            Some("ClusterCloudEventSource") => {
                if let Some(cces) = round_trip::<ClusterCloudEventSource>(&doc, &mut problems) {
                    check_valid(&doc, cces.spec.validate(), &mut problems);
                }
            }
            other => problems.push(format!("{}: unexpected kind {other:?}", label(&doc))),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Property paths of a schema (`spec.triggers[].name`); map values and the embedded JobSpec
/// (k8s-openapi's type, not ours) are not descended into.
fn schema_paths(schema: &Value, path: &str, out: &mut BTreeSet<String>) {
    out.insert(path.to_owned());
    if path == "spec.jobTargetRef" {
        return;
    }
    if let Some(props) = schema["properties"].as_object() {
        for (key, child) in props {
            schema_paths(child, &format!("{path}.{key}"), out);
        }
    }
    if schema["items"].is_object() {
        schema_paths(&schema["items"], &format!("{path}[]"), out);
    }
}

/// The same paths as used by a manifest.
fn value_paths(value: &Value, path: &str, out: &mut BTreeSet<String>) {
    out.insert(path.to_owned());
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                value_paths(child, &format!("{path}.{key}"), out);
            }
        }
        Value::Array(items) => {
            for item in items {
                value_paths(item, &format!("{path}[]"), out);
            }
        }
        _ => {}
    }
}

/// Fields whose type is used again elsewhere: covering the canonical path covers the copy.
const SAME_TYPE_AS: &[(&str, &str)] = &[
    ("spec.awsSecretManager.podIdentity", "spec.podIdentity"),
    ("spec.azureKeyVault.podIdentity", "spec.podIdentity"),
    ("spec.gcpSecretManager.podIdentity", "spec.podIdentity"),
];

fn canonical(path: &str) -> String {
    for (copy, original) in SAME_TYPE_AS {
        if let Some(rest) = path.strip_prefix(copy) {
            return format!("{original}{rest}");
        }
    }
    path.to_owned()
}

/// Spec fields the manifests deliberately leave out.
const NOT_COVERED: &[(&str, &str)] = &[
    // KEDA refuses to reconcile a ScaledJob whose triggers set metricType; the field exists only
    // because ScaledJob and ScaledObject share the trigger type (covered by ScaledObjects).
    ("ScaledJob", "spec.triggers[].metricType"),
];

#[test]
fn manifests_cover_every_spec_field() {
    let docs = manifests();
    let mut missing = Vec::new();
    for crd in swell_api::crds() {
        let kind = crd.spec.names.kind.clone();
        // TriggerAuthentication and ClusterTriggerAuthentication share one spec type, so their
        // manifests are counted together.
        let kinds: &[&str] = match kind.as_str() {
            "TriggerAuthentication" | "ClusterTriggerAuthentication" => {
                &["TriggerAuthentication", "ClusterTriggerAuthentication"]
            }
            "CloudEventSource" | "ClusterCloudEventSource" => {
                &["CloudEventSource", "ClusterCloudEventSource"]
            }
            other => &[other][..],
        };
        let crd = serde_json::to_value(&crd).expect("CRD serialises");
        let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
        let mut wanted = BTreeSet::new();
        schema_paths(spec, "spec", &mut wanted);

        let mut used = BTreeSet::new();
        for doc in docs
            .iter()
            .filter(|d| kinds.iter().any(|k| d.value["kind"] == *k))
        {
            value_paths(&doc.value["spec"], "spec", &mut used);
        }
        for path in wanted.difference(&used) {
            if used.contains(&canonical(path)) {
                continue;
            }
            if !NOT_COVERED.contains(&(kind.as_str(), path.as_str())) {
                missing.push(format!("{kind}: {path}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "spec fields no manifest uses:\n{}",
        missing.join("\n")
    );
}
