//! Compares the generated CRDs with KEDA v2.21's published ones.
//!
//! The reference YAML is not part of the repository; the tests look for it next to the checkout
//! (`../../../shared/reference/keda-v2.21-crds/` from this crate) and skip when it is absent.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;

fn reference_dir() -> Option<PathBuf> {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference/keda-v2.21-crds");
    if dir.is_dir() {
        Some(dir)
    } else {
        println!(
            "skipping: KEDA reference CRDs not found at {}",
            dir.display()
        );
        None
    }
}

/// (generated CRD, reference CRD) as JSON, for each kind.
fn pairs() -> Option<Vec<(String, Value, Value)>> {
    let dir = reference_dir()?;
    let mut out = Vec::new();
    for crd in swell_api::crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        // controller-gen's file names: `<group>_<plural>.yaml`.
        let (plural, group) = name.split_once('.').unwrap_or((&name, ""));
        let path = dir.join(format!("{group}_{plural}.yaml"));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        // The ScaledJob CRD is 650 KB; lift the parser's default resource budget.
        let options = serde_saphyr::options! { budget: None };
        let reference: Value = serde_saphyr::from_str_with_options(&text, options)
            .unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()));
        let ours = serde_json::to_value(&crd).expect("CRD serialises to JSON");
        out.push((name, ours, reference));
    }
    Some(out)
}

fn at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(v, |v, k| &v[*k])
}

#[test]
fn names_scope_and_printer_columns_match_keda() {
    let Some(pairs) = pairs() else { return };
    let mut diffs = Vec::new();
    for (name, ours, reference) in &pairs {
        let paths: &[&[&str]] = &[
            &["metadata", "name"],
            &["spec", "group"],
            &["spec", "scope"],
            &["spec", "names", "kind"],
            &["spec", "names", "listKind"],
            &["spec", "names", "plural"],
            &["spec", "names", "singular"],
            &["spec", "names", "shortNames"],
            &["spec", "names", "categories"],
        ];
        for path in paths {
            if at(ours, path) != at(reference, path) {
                diffs.push(format!(
                    "{name}: {}: ours {} vs KEDA {}",
                    path.join("."),
                    at(ours, path),
                    at(reference, path)
                ));
            }
        }
        let versions = |v: &Value| {
            v["spec"]["versions"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        };
        let (ours_v, ref_v) = (versions(ours), versions(reference));
        if ours_v.len() != ref_v.len() {
            diffs.push(format!(
                "{name}: {} versions vs KEDA {}",
                ours_v.len(),
                ref_v.len()
            ));
        }
        for (o, r) in ours_v.iter().zip(&ref_v) {
            for key in [
                "name",
                "served",
                "storage",
                "subresources",
                "additionalPrinterColumns",
            ] {
                if o[key] != r[key] {
                    diffs.push(format!(
                        "{name}: versions[].{key}: ours {} vs KEDA {}",
                        o[key], r[key]
                    ));
                }
            }
        }
    }
    assert!(
        diffs.is_empty(),
        "differences from KEDA:\n{}",
        diffs.join("\n")
    );
}

/// What a difference is about, so exceptions can be narrow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Aspect {
    Missing,
    Extra,
    Type,
    Enum,
    Required,
    Keyword(&'static str),
}

/// Differences from KEDA's schema that are allowed, each with the reason.
/// (path prefix, aspect): the prefix is a schema path like `spec.jobTargetRef`.
const EXCEPTIONS: &[(&str, Aspect, &str)] = &[
    // k8s-openapi's schemas for embedded Kubernetes types carry no server-side-apply markers,
    // so lists are atomic and structs granular. Only field-manager merging differs; values are
    // stored and validated the same, and the Job API checks key uniqueness on creation.
    (
        "spec.jobTargetRef",
        Aspect::Keyword("x-kubernetes-list-type"),
        "SSA markers",
    ),
    (
        "spec.jobTargetRef",
        Aspect::Keyword("x-kubernetes-list-map-keys"),
        "SSA markers",
    ),
    (
        "spec.jobTargetRef",
        Aspect::Keyword("x-kubernetes-map-type"),
        "SSA markers",
    ),
    (
        "spec.advanced.horizontalPodAutoscalerConfig.behavior",
        Aspect::Keyword("x-kubernetes-list-type"),
        "SSA markers",
    ),
    // Quantities are `x-kubernetes-int-or-string` without KEDA's regex; a malformed quantity is
    // still rejected by the Job or HPA API when Swell creates the object.
    (
        "spec.jobTargetRef",
        Aspect::Keyword("pattern"),
        "quantity regex",
    ),
    (
        "spec.advanced.horizontalPodAutoscalerConfig.behavior",
        Aspect::Keyword("pattern"),
        "quantity regex",
    ),
    // Embedded ObjectMeta: k8s-openapi lists every ObjectMeta field, controller-gen only the
    // five that make sense in a template. The API server ignores the rest in a pod template.
    (
        "spec.jobTargetRef.template.metadata",
        Aspect::Extra,
        "full ObjectMeta",
    ),
    (
        "spec.jobTargetRef.template.spec.volumes[].ephemeral.volumeClaimTemplate.metadata",
        Aspect::Extra,
        "full ObjectMeta",
    ),
];

struct Diff {
    path: String,
    aspect: Aspect,
    detail: String,
}

fn schema_type(s: &Value) -> Value {
    if s["x-kubernetes-int-or-string"] == Value::Bool(true) {
        Value::String("int-or-string".into())
    } else {
        s["type"].clone()
    }
}

fn string_set(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter(|x| !x.is_null())
        .map(ToString::to_string)
        .collect()
}

const KEYWORDS: &[&str] = &[
    "format",
    "minimum",
    "maximum",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "pattern",
    "default",
    "nullable",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-validations",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
];

fn numbers_equal(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn compare(path: &str, reference: &Value, ours: &Value, diffs: &mut Vec<Diff>) {
    let mut push = |aspect, detail: String| {
        diffs.push(Diff {
            path: path.to_owned(),
            aspect,
            detail,
        })
    };
    if ours.is_null() {
        push(Aspect::Missing, "not in our schema".into());
        return;
    }
    if schema_type(reference) != schema_type(ours) {
        push(
            Aspect::Type,
            format!(
                "KEDA {} vs ours {}",
                schema_type(reference),
                schema_type(ours)
            ),
        );
    }
    let (re, oe) = (string_set(&reference["enum"]), string_set(&ours["enum"]));
    if re != oe {
        push(Aspect::Enum, format!("KEDA {re:?} vs ours {oe:?}"));
    }
    let (rr, or) = (
        string_set(&reference["required"]),
        string_set(&ours["required"]),
    );
    if rr != or {
        push(Aspect::Required, format!("KEDA {rr:?} vs ours {or:?}"));
    }
    for key in KEYWORDS {
        let (r, o) = (&reference[*key], &ours[*key]);
        if !numbers_equal(r, o) {
            push(Aspect::Keyword(key), format!("KEDA {r} vs ours {o}"));
        }
    }

    let empty = serde_json::Map::new();
    let props = |v: &Value| v["properties"].as_object().unwrap_or(&empty).clone();
    let (rp, op) = (props(reference), props(ours));
    for (key, r) in &rp {
        compare(
            &format!("{path}.{key}"),
            r,
            op.get(key).unwrap_or(&Value::Null),
            diffs,
        );
    }
    for key in op.keys().filter(|k| !rp.contains_key(*k)) {
        diffs.push(Diff {
            path: format!("{path}.{key}"),
            aspect: Aspect::Extra,
            detail: "only in our schema".into(),
        });
    }
    if reference["items"].is_object() {
        compare(
            &format!("{path}[]"),
            &reference["items"],
            &ours["items"],
            diffs,
        );
    }
    if reference["additionalProperties"].is_object() {
        compare(
            &format!("{path}{{}}"),
            &reference["additionalProperties"],
            &ours["additionalProperties"],
            diffs,
        );
    }
}

fn excepted(diff: &Diff) -> Option<usize> {
    EXCEPTIONS.iter().position(|(prefix, aspect, _)| {
        *aspect == diff.aspect
            && diff.path.starts_with(prefix)
            && matches!(
                diff.path.as_bytes().get(prefix.len()),
                None | Some(b'.' | b'[' | b'{')
            )
    })
}

#[test]
fn schemas_match_keda() {
    let Some(pairs) = pairs() else { return };
    let mut unexplained = Vec::new();
    let mut used = vec![false; EXCEPTIONS.len()];
    for (name, ours, reference) in &pairs {
        let root = |v: &Value| v["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone();
        let (ours, reference) = (root(ours), root(reference));
        let mut diffs = Vec::new();
        for part in ["spec", "status"] {
            compare(
                part,
                &reference["properties"][part],
                &ours["properties"][part],
                &mut diffs,
            );
        }
        for diff in diffs {
            match excepted(&diff) {
                Some(i) => used[i] = true,
                None => unexplained.push(format!(
                    "{name}: {} ({:?}): {}",
                    diff.path, diff.aspect, diff.detail
                )),
            }
        }
    }
    for (i, (prefix, aspect, why)) in EXCEPTIONS.iter().enumerate() {
        if !used[i] {
            unexplained.push(format!(
                "stale exception ({prefix}, {aspect:?}, {why}) matched nothing; remove it"
            ));
        }
    }
    assert!(
        unexplained.is_empty(),
        "{} schema differences from KEDA:\n{}",
        unexplained.len(),
        unexplained.join("\n")
    );
}

/// Client-side `kubectl apply` stores the whole object as JSON in an annotation capped at
/// 256 KiB; server-side apply has no such cap, but staying under it keeps both working.
#[test]
fn crds_fit_client_side_apply() {
    const LIMIT: usize = 262_144;
    for crd in swell_api::crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let json = serde_json::to_string(&crd).expect("CRD serialises");
        let yaml = serde_saphyr::to_string(&crd).expect("CRD serialises");
        println!(
            "{name}: {} bytes JSON, {} bytes YAML",
            json.len(),
            yaml.len()
        );
        assert!(json.len() < LIMIT / 2, "{name} is {} bytes", json.len());
    }
}

#[test]
fn crds_yaml_is_six_documents() {
    let yaml = swell_api::crds_yaml().expect("renders");
    let docs: Vec<Value> = serde_saphyr::from_str_multiple_with_options(
        &yaml,
        serde_saphyr::options! { budget: None },
    )
    .expect("parses back");
    let names: Vec<&str> = docs
        .iter()
        .filter_map(|d| d["metadata"]["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "clustertriggerauthentications.keda.sh",
            "scaledjobs.keda.sh",
            "scaledobjects.keda.sh",
            "triggerauthentications.keda.sh",
            "cloudeventsources.eventing.keda.sh",
            "clustercloudeventsources.eventing.keda.sh",
        ]
    );
    // The YAML must carry exactly what `crds()` builds.
    let direct: Vec<Value> = swell_api::crds()
        .iter()
        .map(|c| serde_json::to_value(c).expect("serialises"))
        .collect();
    assert_eq!(docs, direct);
}
