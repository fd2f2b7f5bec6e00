//! The KEDA-documentation manifests in `crates/swell-api/tests/manifests/` (together they use
//! every spec field of every kind) apply unchanged to a real API server with Swell's CRDs,
//! and come back from it without any field pruned.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;

#[tokio::test]
async fn keda_documentation_manifests_apply_unchanged() {
    let cluster = cluster();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../swell-api/tests/manifests");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(
        files.len() >= 10,
        "expected the manifest set in {}",
        dir.display()
    );
    cluster
        .with_namespace("manifests", |ns| async move {
            let mut cluster_scoped = Vec::new();
            for file in &files {
                let text = std::fs::read_to_string(file).unwrap();
                let out = ns
                    .apply(cluster, &text)
                    .unwrap_or_else(|e| panic!("{} does not apply: {e}", file.display()));
                for line in out.lines() {
                    if line.starts_with("clustertriggerauthentication")
                        || line.starts_with("clustercloudeventsource")
                    {
                        cluster_scoped.push(
                            line.split_whitespace()
                                .next()
                                .unwrap_or_default()
                                .to_string(),
                        );
                    }
                }
                // Read each object back and compare its spec with what was sent.
                for doc in text.split("\n---").filter(|d| d.contains("kind:")) {
                    let sent: serde_json::Value =
                        serde_json::to_value(serde_saphyr_value(doc)).unwrap();
                    let kind = sent["kind"].as_str().unwrap().to_lowercase();
                    let name = sent["metadata"]["name"].as_str().unwrap();
                    let group = sent["apiVersion"]
                        .as_str()
                        .unwrap()
                        .split('/')
                        .next()
                        .unwrap();
                    let mut get = cluster.kubectl();
                    get.args(["get", &format!("{kind}.{group}"), name, "-o", "json"]);
                    if !kind.starts_with("cluster") {
                        get.args(["-n", &ns.name]);
                    }
                    let got = get.output().unwrap();
                    assert!(
                        got.status.success(),
                        "get {kind}/{name}: {}",
                        String::from_utf8_lossy(&got.stderr)
                    );
                    let stored: serde_json::Value = serde_json::from_slice(&got.stdout).unwrap();
                    assert_contained(
                        &sent["spec"],
                        &stored["spec"],
                        &format!("{}: {kind}/{name}.spec", file.display()),
                    );
                }
            }
            for obj in cluster_scoped {
                let _ = cluster
                    .kubectl()
                    .args(["delete", &obj, "--wait=false"])
                    .output();
            }
        })
        .await;
}

/// Parses one YAML document into JSON (kubectl already accepted it).
fn serde_saphyr_value(doc: &str) -> serde_json::Value {
    serde_saphyr::from_str(doc).unwrap_or_else(|e| panic!("yaml: {e}: {doc}"))
}

/// Every field sent is stored with the same value (the server may add defaults).
fn assert_contained(sent: &serde_json::Value, stored: &serde_json::Value, path: &str) {
    use serde_json::Value;
    match (sent, stored) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let Some(w) = b.get(k) else {
                    panic!("{path}.{k} was pruned by the API server")
                };
                assert_contained(v, w, &format!("{path}.{k}"));
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "{path}: list length changed");
            for (i, (v, w)) in a.iter().zip(b).enumerate() {
                assert_contained(v, w, &format!("{path}[{i}]"));
            }
        }
        (Value::Number(a), Value::Number(b)) => assert_eq!(a.as_f64(), b.as_f64(), "{path}"),
        (a, b) => assert_eq!(a, b, "{path}"),
    }
}
