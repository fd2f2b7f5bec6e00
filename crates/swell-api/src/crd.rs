//! The CustomResourceDefinitions, generated from the Rust types.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSON, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use kube::CustomResourceExt;
use serde_json::Value;

use crate::{
    CloudEventSource, ClusterCloudEventSource, ClusterTriggerAuthentication, ExternalMetric,
    ScaledJob, ScaledObject, TriggerAuthentication,
};

/// Errors from rendering the CRDs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("serialising CRD {name} to YAML: {source}")]
    Yaml {
        name: String,
        #[source]
        source: serde_saphyr::SerializeError,
    },
}

/// The four `keda.sh/v1alpha1` CRDs, in the order KEDA's release manifest lists them, then
/// the two `eventing.keda.sh/v1alpha1` ones.
pub fn crds() -> Vec<CustomResourceDefinition> {
    let mut cluster_sources = ClusterCloudEventSource::crd();
    // KEDA's ClusterCloudEventSource has no description (the derive writes a placeholder).
    for v in &mut cluster_sources.spec.versions {
        if let Some(root) = v
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            root.description = None;
        }
    }
    let mut crds = vec![
        ClusterTriggerAuthentication::crd(),
        ScaledJob::crd(),
        ScaledObject::crd(),
        TriggerAuthentication::crd(),
        CloudEventSource::crd(),
        cluster_sources,
    ];
    for crd in &mut crds {
        finish(crd);
    }
    crds
}

/// The `metrics.aws/v1alpha1` ExternalMetric CRD of the k8s-cloudwatch-adapter, for
/// clusters that no longer have the adapter's own (the chart's
/// `cloudwatchAdapter.installCRD`). Helm keeps it on uninstall: it holds the users' queries.
pub fn cloudwatch_adapter_crd() -> CustomResourceDefinition {
    let mut crd = ExternalMetric::crd();
    finish(&mut crd);
    crd.metadata.annotations = Some(
        [("helm.sh/resource-policy".to_string(), "keep".to_string())]
            .into_iter()
            .collect(),
    );
    crd
}

/// [`crds`] as one multi-document YAML stream, ready for `kubectl apply --server-side -f -`.
pub fn crds_yaml() -> Result<String, Error> {
    yaml(crds())
}

/// CRDs as one multi-document YAML stream.
pub fn yaml(crds: Vec<CustomResourceDefinition>) -> Result<String, Error> {
    let mut out = String::new();
    for crd in crds {
        let doc = serde_saphyr::to_string(&crd).map_err(|source| Error::Yaml {
            name: crd.metadata.name.clone().unwrap_or_default(),
            source,
        })?;
        out.push_str("---\n");
        out.push_str(&doc);
        if !doc.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out)
}

/// Adjustments the derive cannot express.
fn finish(crd: &mut CustomResourceDefinition) {
    // The API server would default this too, but an explicit value keeps `kubectl diff` against
    // KEDA's manifest quiet.
    crd.spec.names.list_kind = Some(format!("{}List", crd.spec.names.kind));

    for version in &mut crd.spec.versions {
        let Some(root) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        else {
            continue;
        };
        root.title = None;
        // kube marks every `Option` nullable; KEDA's CRD does not, so the API server prunes an
        // explicit `null` instead of storing it. Matching that keeps stored objects identical.
        walk(root, &mut |s| {
            s.nullable = None;
            if let Some(values) = s.enum_.as_mut() {
                values.retain(|v| !v.0.is_null());
            }
        });
        if let Some(job) = root
            .properties
            .as_mut()
            .and_then(|p| p.get_mut("spec"))
            .and_then(|s| s.properties.as_mut())
            .and_then(|p| p.get_mut("jobTargetRef"))
        {
            finish_embedded_job_spec(job);
        }
    }
}

/// Object fields that embed `corev1.LocalObjectReference`, whose `name` is `+default=""` in the
/// Kubernetes Go types: optional in practice, but required in the published OpenAPI that
/// k8s-openapi follows.
const LOCAL_OBJECT_REFERENCE_FIELDS: [&str; 8] = [
    "configMap",
    "configMapKeyRef",
    "configMapRef",
    "imagePullSecrets",
    "nodePublishSecretRef",
    "secret",
    "secretKeyRef",
    "secretRef",
];

/// A default value in [`EMBEDDED_DEFAULTS`].
#[derive(Clone, Copy)]
enum Lit {
    Str(&'static str),
    Bool(bool),
}

/// `+default` markers of the Kubernetes Go types that k8s-openapi's schemas leave out, keyed by
/// (parent field, field). controller-gen puts them in KEDA's CRD, so the API server fills them in.
const EMBEDDED_DEFAULTS: [(&str, &str, Lit); 11] = [
    ("azureDisk", "fsType", Lit::Str("ext4")),
    ("azureDisk", "readOnly", Lit::Bool(false)),
    ("fileKeyRef", "optional", Lit::Bool(false)),
    ("grpc", "service", Lit::Str("")),
    ("iscsi", "iscsiInterface", Lit::Str("default")),
    ("ports", "protocol", Lit::Str("TCP")),
    ("rbd", "keyring", Lit::Str("/etc/ceph/keyring")),
    ("rbd", "pool", Lit::Str("rbd")),
    ("rbd", "user", Lit::Str("admin")),
    ("scaleIO", "fsType", Lit::Str("xfs")),
    ("scaleIO", "storageMode", Lit::Str("ThinProvisioned")),
];

/// Makes the k8s-openapi JobSpec schema behave like the controller-gen one in KEDA's CRD.
fn finish_embedded_job_spec(job: &mut JSONSchemaProps) {
    // The embedded batch/v1 JobSpec carries ~500 KB of upstream field documentation. Keeping
    // the structure (so the API server validates and does not prune pod templates) but
    // dropping those descriptions keeps the CRD under the 256 KiB annotation limit of
    // client-side `kubectl apply`.
    let keep = job.description.take();
    walk(job, &mut |s| s.description = None);
    job.description = keep;

    walk_fields(job, None, &mut |field, schema| {
        if LOCAL_OBJECT_REFERENCE_FIELDS.contains(&field) {
            default_reference_name(schema);
        }
        for (parent, name, default) in EMBEDDED_DEFAULTS {
            if parent != field {
                continue;
            }
            if let Some(prop) = schema.properties.as_mut().and_then(|p| p.get_mut(name)) {
                prop.default = Some(JSON(match default {
                    Lit::Str(s) => Value::String(s.to_owned()),
                    Lit::Bool(b) => Value::Bool(b),
                }));
            }
        }
    });
}

fn default_reference_name(schema: &mut JSONSchemaProps) {
    let Some(name) = schema.properties.as_mut().and_then(|p| p.get_mut("name")) else {
        return;
    };
    name.default = Some(JSON(Value::String(String::new())));
    if let Some(required) = schema.required.as_mut() {
        required.retain(|r| r != "name");
        if required.is_empty() {
            schema.required = None;
        }
    }
}

/// Like [`walk`], but tells `f` the name of the field the schema belongs to; array items count
/// as their array's field, map values as their map's.
fn walk_fields(
    schema: &mut JSONSchemaProps,
    field: Option<&str>,
    f: &mut impl FnMut(&str, &mut JSONSchemaProps),
) {
    if let Some(field) = field {
        f(field, schema);
    }
    for (name, child) in schema.properties.iter_mut().flat_map(|p| p.iter_mut()) {
        walk_fields(child, Some(name), f);
    }
    match schema.items.as_mut() {
        Some(JSONSchemaPropsOrArray::Schema(s)) => walk_fields(s, field, f),
        Some(JSONSchemaPropsOrArray::Schemas(list)) => {
            list.iter_mut().for_each(|s| walk_fields(s, field, f))
        }
        None => {}
    }
    if let Some(JSONSchemaPropsOrBool::Schema(s)) = schema.additional_properties.as_mut() {
        walk_fields(s, field, f);
    }
}

/// Applies `f` to `schema` and every schema nested in it.
fn walk(schema: &mut JSONSchemaProps, f: &mut impl FnMut(&mut JSONSchemaProps)) {
    f(schema);
    for child in schema.properties.iter_mut().flat_map(|p| p.values_mut()) {
        walk(child, f);
    }
    match schema.items.as_mut() {
        Some(JSONSchemaPropsOrArray::Schema(s)) => walk(s, f),
        Some(JSONSchemaPropsOrArray::Schemas(list)) => list.iter_mut().for_each(|s| walk(s, f)),
        None => {}
    }
    if let Some(JSONSchemaPropsOrBool::Schema(s)) = schema.additional_properties.as_mut() {
        walk(s, f);
    }
    for list in [
        schema.all_of.as_mut(),
        schema.any_of.as_mut(),
        schema.one_of.as_mut(),
    ]
    .into_iter()
    .flatten()
    {
        list.iter_mut().for_each(|s| walk(s, f));
    }
    if let Some(not) = schema.not.as_mut() {
        walk(not, f);
    }
}
