//! Checks of a ScaledObject against the cluster it is meant for: the target exists and is
//! scalable, TriggerAuthentications exist, the workload's ServiceAccount has an IAM role when a
//! trigger needs one, cpu/memory Utilization triggers have requests to compare with, and no
//! other ScaledObject or HorizontalPodAutoscaler scales the same workload. Used by
//! `swell check --cluster` and the admission webhook; only reads.

use std::collections::BTreeMap;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{LimitRange, PodSpec, ResourceRequirements, ServiceAccount};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::ListParams;
use kube::{Api, Client};
use swell_api::{
    AuthenticationRefKind, ClusterTriggerAuthentication, ScaleTarget, ScaleTriggers, ScaledObject,
    TriggerAuthentication,
};

use crate::check::{AuthKnowledge, Finding};
use swell_controller::auth::needs_workload_role;
use swell_controller::target::{TargetError, Targets};
use swell_scaling::quantity::parse_quantity;

/// Who asks. Admission must not depend on the order objects are applied in, so what may
/// simply not exist yet (the target, a TriggerAuthentication, the ServiceAccount) is a warning
/// there and an error for `swell check --cluster`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Check,
    Admission,
}

impl Mode {
    fn not_yet(self, field: impl Into<String>, message: impl Into<String>) -> Finding {
        match self {
            Mode::Check => Finding::error(field, message),
            Mode::Admission => Finding::warning(field, message),
        }
    }
}

/// `(group, kind, name)` of a scale target, for comparing targets.
pub fn target_key(api_version: &str, kind: &str, name: &str) -> (String, String, String) {
    let group = match api_version.split_once('/') {
        Some((g, _)) => g,
        None => "",
    };
    (group.to_string(), kind.to_string(), name.to_string())
}

fn so_target_key(t: &ScaleTarget) -> (String, String, String) {
    target_key(t.api_version(), t.kind(), &t.name)
}

fn api_error(what: &str, e: &kube::Error) -> String {
    format!("cannot check {what}: {e}")
}

/// Completes what is known about each trigger's authentication from the cluster: a reference
/// not resolved by the input is read from the API server, and reported when it does not exist.
pub async fn resolve_auths(
    mode: Mode,
    client: &Client,
    ns: &str,
    triggers: &[ScaleTriggers],
    mut auths: Vec<AuthKnowledge>,
    out: &mut Vec<Finding>,
) -> Vec<AuthKnowledge> {
    auths.resize(triggers.len(), AuthKnowledge::None);
    // One read per trigger at most, and only for the triggers that are checked.
    let limit = swell_api::validation::MAX_TRIGGERS;
    for (i, (trigger, auth)) in triggers
        .iter()
        .zip(auths.iter_mut())
        .take(limit)
        .enumerate()
    {
        let Some(r) = &trigger.authentication_ref else {
            continue;
        };
        if !matches!(auth, AuthKnowledge::Unknown) || r.name.trim().is_empty() {
            continue;
        }
        let field = format!("spec.triggers[{i}].authenticationRef");
        let found = match r.kind() {
            AuthenticationRefKind::TriggerAuthentication => {
                Api::<TriggerAuthentication>::namespaced(client.clone(), ns)
                    .get_opt(&r.name)
                    .await
                    .map(|o| o.map(|ta| ta.spec))
            }
            AuthenticationRefKind::ClusterTriggerAuthentication => {
                Api::<ClusterTriggerAuthentication>::all(client.clone())
                    .get_opt(&r.name)
                    .await
                    .map(|o| o.map(|cta| cta.spec.0))
            }
        };
        match found {
            Ok(Some(spec)) => *auth = AuthKnowledge::Spec(Box::new(spec)),
            Ok(None) => {
                let scope = match r.kind() {
                    AuthenticationRefKind::TriggerAuthentication => {
                        format!(
                            "TriggerAuthentication {:?} not found in namespace {ns}",
                            r.name
                        )
                    }
                    AuthenticationRefKind::ClusterTriggerAuthentication => {
                        format!("ClusterTriggerAuthentication {:?} not found", r.name)
                    }
                };
                out.push(mode.not_yet(field, format!("{scope}; create it or fix the name")));
                *auth = AuthKnowledge::Missing;
            }
            Err(e) => {
                out.push(Finding::error(field, api_error("the authentication", &e)));
                *auth = AuthKnowledge::Missing;
            }
        }
    }
    auths
}

/// The cluster checks of one ScaledObject in namespace `ns`. `auths` comes from
/// [`resolve_auths`]; `siblings` are other ScaledObjects known besides the cluster's (e.g. the
/// rest of the input), as `(namespace, name, target)`.
pub async fn scaled_object(
    mode: Mode,
    client: &Client,
    so: &ScaledObject,
    ns: &str,
    auths: &[AuthKnowledge],
    siblings: &[(String, String, (String, String, String))],
) -> Vec<Finding> {
    let mut out = Vec::new();
    let name = so.metadata.name.as_deref().unwrap_or_default();
    let target_ref = &so.spec.scale_target_ref;
    let target_desc = format!("{} {}/{}", target_ref.kind(), ns, target_ref.name);

    // The target: a kind with /scale, and the object itself.
    let mut pod: Option<PodSpec> = None;
    match Targets::default().resolve(client, ns, target_ref).await {
        Ok(target) => match target.replicas(client).await {
            Ok(_) => match target.pod_spec(client).await {
                Ok(p) => pod = p,
                Err(e) => out.push(Finding::error("spec.scaleTargetRef", e.to_string())),
            },
            Err(TargetError::NotFound { .. }) => out.push(mode.not_yet(
                "spec.scaleTargetRef.name",
                format!("{target_desc} not found; create it first or fix spec.scaleTargetRef.name"),
            )),
            Err(e) => out.push(Finding::error("spec.scaleTargetRef", e.to_string())),
        },
        Err(e) => out.push(Finding::error("spec.scaleTargetRef", e.to_string())),
    }

    if let Some(pod) = &pod {
        let defaults = container_defaults(client, so, ns, &mut out).await;
        resource_requests(so, pod, &defaults, &mut out);
        workload_role(mode, client, so, ns, pod, auths, &mut out).await;
    }

    // Nothing else may scale the same workload.
    let key = so_target_key(target_ref);
    for (sib_ns, sib_name, sib_key) in siblings {
        if sib_ns == ns && sib_name != name && *sib_key == key {
            out.push(Finding::error(
                "spec.scaleTargetRef",
                format!("ScaledObject {ns}/{sib_name} also targets {target_desc}; a workload can have only one ScaledObject: merge their triggers into one"),
            ));
        }
    }
    match Api::<ScaledObject>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
    {
        Ok(list) => {
            for other in list.items {
                let other_name = other.metadata.name.as_deref().unwrap_or_default();
                if other_name != name
                    && so_target_key(&other.spec.scale_target_ref) == key
                    && !siblings.iter().any(|(n, s, _)| n == ns && s == other_name)
                {
                    out.push(Finding::error(
                        "spec.scaleTargetRef",
                        format!("ScaledObject {ns}/{other_name} already targets {target_desc}; a workload can have only one ScaledObject: merge their triggers into one"),
                    ));
                }
            }
        }
        Err(e) => out.push(Finding::error(
            "spec.scaleTargetRef",
            api_error("other ScaledObjects", &e),
        )),
    }
    let own_hpa = so.hpa_name();
    // KEDA lets a ScaledObject take over an HPA it names, and skips HPAs that opt out.
    let transfer = swell_api::annotations::bool_annotation(
        so.metadata.annotations.as_ref(),
        swell_api::annotations::TRANSFER_HPA_OWNERSHIP,
    );
    match Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
    {
        Ok(list) => {
            for hpa in list.items {
                let hpa_name = hpa.metadata.name.as_deref().unwrap_or_default();
                let spec = &hpa.spec;
                let r = &spec.scale_target_ref;
                let hpa_key = target_key(r.api_version.as_deref().unwrap_or(""), &r.kind, &r.name);
                // Another ScaledObject's HPA is already reported as that ScaledObject.
                let keda_owned = hpa
                    .metadata
                    .labels
                    .as_ref()
                    .is_some_and(|l| l.contains_key("scaledobject.keda.sh/name"));
                let opted_out = hpa
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(swell_api::annotations::VALIDATIONS_HPA_OWNERSHIP))
                    .is_some_and(|v| v == "false");
                let transferred = transfer && so.spec.custom_hpa_name() == Some(hpa_name);
                if hpa_name != own_hpa
                    && hpa_key == key
                    && !keda_owned
                    && !opted_out
                    && !transferred
                {
                    out.push(Finding::error(
                        "spec.scaleTargetRef",
                        format!("HorizontalPodAutoscaler {ns}/{hpa_name} already scales {target_desc}; two autoscalers would fight: delete it (Swell creates {own_hpa}), or take it over with the {} annotation and spec.advanced.horizontalPodAutoscalerConfig.name: {hpa_name}", swell_api::annotations::TRANSFER_HPA_OWNERSHIP),
                    ));
                }
            }
        }
        Err(e) => out.push(Finding::error(
            "spec.scaleTargetRef",
            api_error("HorizontalPodAutoscalers", &e),
        )),
    }
    out
}

/// Which resources a LimitRange of the namespace gives containers by default.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum ContainerDefaults {
    /// Those with a default request or limit above zero (`cpu`, `memory`).
    Known(Vec<String>),
    /// The LimitRanges could not be read: a missing request is then only a warning.
    #[default]
    Unknown,
}

/// The namespace's LimitRanges, read only when a cpu/memory Utilization trigger needs them.
async fn container_defaults(
    client: &Client,
    so: &ScaledObject,
    ns: &str,
    out: &mut Vec<Finding>,
) -> ContainerDefaults {
    if !so.spec.triggers.iter().any(|t| t.is_resource_metric()) {
        return ContainerDefaults::Known(Vec::new());
    }
    match Api::<LimitRange>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
    {
        Ok(list) => ContainerDefaults::Known(limit_range_defaults(&list.items)),
        Err(e) => {
            out.push(Finding::note("spec.triggers", api_error("LimitRanges", &e)));
            ContainerDefaults::Unknown
        }
    }
}

/// The resources some `type: Container` LimitRange item defaults (`default` or
/// `defaultRequest`) to more than zero, as KEDA's webhook reads them.
pub fn limit_range_defaults(ranges: &[LimitRange]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in ranges
        .iter()
        .filter_map(|r| r.spec.as_ref())
        .flat_map(|s| &s.limits)
    {
        if item.type_ != "Container" {
            continue;
        }
        for r in ["cpu", "memory"] {
            let set =
                positive(item.default.as_ref(), r) || positive(item.default_request.as_ref(), r);
            if set && !out.iter().any(|o| o == r) {
                out.push(r.to_string());
            }
        }
    }
    out
}

/// A request or limit above zero for `resource` (Kubernetes defaults a missing request to
/// the limit).
fn sets(resources: Option<&ResourceRequirements>, resource: &str) -> bool {
    resources.is_some_and(|r| {
        positive(r.requests.as_ref(), resource) || positive(r.limits.as_ref(), resource)
    })
}

/// `resource` is in `quantities` with a value above zero.
fn positive(quantities: Option<&BTreeMap<String, Quantity>>, resource: &str) -> bool {
    quantities
        .and_then(|m| m.get(resource))
        .and_then(|q| parse_quantity(&q.0))
        .is_some_and(|v| v > 0.0)
}

/// cpu/memory Utilization triggers compare usage with requests; without one the HPA cannot
/// compute it (KEDA's webhook rejects this too). A request may come from the container
/// (its request, or its limit), from pod-level resources, or from a LimitRange default.
pub fn resource_requests(
    so: &ScaledObject,
    pod: &PodSpec,
    defaults: &ContainerDefaults,
    out: &mut Vec<Finding>,
) {
    for (i, t) in so.spec.triggers.iter().enumerate() {
        if !t.is_resource_metric() {
            continue;
        }
        let utilization = t.metric_type.as_ref().map(|m| m.as_str()) == Some("Utilization")
            || t.metadata.get("type").map(String::as_str) == Some("Utilization");
        let r = t.type_.as_str();
        let defaulted = match defaults {
            ContainerDefaults::Known(d) => d.iter().any(|d| d == r),
            ContainerDefaults::Unknown => false,
        };
        if !utilization || defaulted || sets(pod.resources.as_ref(), r) {
            continue;
        }
        let container = t.metadata.get("containerName");
        for c in &pod.containers {
            if container.is_some_and(|n| *n != c.name) || sets(c.resources.as_ref(), r) {
                continue;
            }
            let message = format!(
                "the target's container {:?} has no {r} request, so {r} Utilization cannot be computed; set resources.requests.{r} on it (or a LimitRange default, or pod-level resources)",
                c.name
            );
            let field = format!("spec.triggers[{i}]");
            out.push(match defaults {
                ContainerDefaults::Known(_) => Finding::error(field, message),
                ContainerDefaults::Unknown => Finding::warning(field, message),
            });
        }
    }
}

/// With the workload's identity (`aws-eks`, or `aws` with identityOwner workload), the
/// workload's ServiceAccount must name an IAM role.
async fn workload_role(
    mode: Mode,
    client: &Client,
    so: &ScaledObject,
    ns: &str,
    pod: &PodSpec,
    auths: &[AuthKnowledge],
    out: &mut Vec<Finding>,
) {
    let sa = pod
        .service_account_name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".into());
    for (i, t) in so.spec.triggers.iter().enumerate() {
        if t.type_ != "aws-sqs-queue"
            || t.metadata.get("identityOwner").map(String::as_str) == Some("operator")
        {
            continue;
        }
        let Some(AuthKnowledge::Spec(spec)) = auths.get(i) else {
            continue;
        };
        let Some(id) = &spec.pod_identity else {
            continue;
        };
        if !needs_workload_role(id) || id.role_arn().is_some() {
            continue;
        }
        let field = format!("spec.triggers[{i}].authenticationRef");
        match Api::<ServiceAccount>::namespaced(client.clone(), ns)
            .get_opt(&sa)
            .await
        {
            Ok(Some(account)) => {
                let role = account
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(swell_scalers::aws::ROLE_ARN_ANNOTATION))
                    .filter(|r| !r.is_empty());
                if role.is_none() {
                    out.push(mode.not_yet(
                        field,
                        format!(
                            "the workload's ServiceAccount {ns}/{sa} has no {} annotation, which the pod identity owner model needs unless the ServiceAccount has an EKS Pod Identity association (Swell reads it when installed with aws.eksClusterName); annotate it with the workload's IAM role, associate it, or set identityOwner: operator",
                            swell_scalers::aws::ROLE_ARN_ANNOTATION
                        ),
                    ));
                }
            }
            Ok(None) => out.push(mode.not_yet(
                field,
                format!("the workload's ServiceAccount {ns}/{sa} does not exist; create it with the {} annotation", swell_scalers::aws::ROLE_ARN_ANNOTATION),
            )),
            Err(e) => out.push(Finding::error(field, api_error("the ServiceAccount", &e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn so(trigger: serde_json::Value) -> ScaledObject {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": "web", "namespace": "ns"},
            "spec": {"scaleTargetRef": {"name": "web"}, "minReplicaCount": 1, "triggers": [trigger]}
        }))
        .unwrap()
    }

    fn pod(json: serde_json::Value) -> PodSpec {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn limit_range_defaults_for_containers_only() {
        let ranges: Vec<LimitRange> = serde_json::from_value(serde_json::json!([
            {"spec": {"limits": [{"type": "Container", "defaultRequest": {"cpu": "100m"}}]}},
            {"spec": {"limits": [{"type": "Pod", "default": {"memory": "1Gi"}}]}},
            {"spec": {"limits": [{"type": "Container", "default": {"memory": "0"}}]}}
        ]))
        .unwrap();
        assert_eq!(limit_range_defaults(&ranges), vec!["cpu".to_string()]);
        assert!(limit_range_defaults(&[]).is_empty());
    }

    #[test]
    fn where_a_utilization_trigger_finds_its_request() {
        use crate::check::Severity;
        let cpu = so(
            serde_json::json!({"type": "cpu", "metricType": "Utilization", "metadata": {"value": "50"}}),
        );
        let bare = serde_json::json!({"containers": [{"name": "nginx", "image": "nginx"}]});
        let known =
            |d: &[&str]| ContainerDefaults::Known(d.iter().map(|s| s.to_string()).collect());
        // (pod, defaults, severity of the finding or none)
        let cases = [
            (
                "no request anywhere",
                bare.clone(),
                known(&[]),
                Some(Severity::Error),
            ),
            (
                "LimitRanges unreadable",
                bare.clone(),
                ContainerDefaults::Unknown,
                Some(Severity::Warning),
            ),
            ("a LimitRange default", bare.clone(), known(&["cpu"]), None),
            (
                "another resource's default",
                bare.clone(),
                known(&["memory"]),
                Some(Severity::Error),
            ),
            (
                "the container's request",
                serde_json::json!({"containers": [{"name": "nginx", "resources": {"requests": {"cpu": "250m"}}}]}),
                known(&[]),
                None,
            ),
            (
                "only a limit (the request defaults to it)",
                serde_json::json!({"containers": [{"name": "nginx", "resources": {"limits": {"cpu": "1"}}}]}),
                known(&[]),
                None,
            ),
            (
                "a zero request",
                serde_json::json!({"containers": [{"name": "nginx", "resources": {"requests": {"cpu": "0"}}}]}),
                known(&[]),
                Some(Severity::Error),
            ),
            (
                "pod-level resources",
                serde_json::json!({"resources": {"requests": {"cpu": "1"}}, "containers": [{"name": "nginx"}]}),
                known(&[]),
                None,
            ),
        ];
        for (name, p, defaults, want) in cases {
            let mut out = Vec::new();
            resource_requests(&cpu, &pod(p), &defaults, &mut out);
            assert_eq!(out.first().map(|f| f.severity), want, "{name}: {out:?}");
            if let Some(f) = out.first() {
                assert!(
                    f.message.contains("has no cpu request") && f.message.contains("LimitRange"),
                    "{name}: {f:?}"
                );
            }
        }
        // AverageValue needs no request.
        let avg = so(
            serde_json::json!({"type": "cpu", "metricType": "AverageValue", "metadata": {"value": "500m"}}),
        );
        let mut out = Vec::new();
        resource_requests(&avg, &pod(bare), &known(&[]), &mut out);
        assert!(out.is_empty(), "{out:?}");
    }
}
