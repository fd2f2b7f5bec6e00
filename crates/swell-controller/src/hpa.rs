//! The HPA Swell owns for a ScaledObject, built as a pure function of the ScaledObject and
//! its triggers' metric specs, then server-side applied.

use std::collections::BTreeMap;

use k8s_openapi::api::autoscaling::v2::{
    ContainerResourceMetricSource, CrossVersionObjectReference, ExternalMetricSource,
    HPAScalingRules, HorizontalPodAutoscaler, HorizontalPodAutoscalerBehavior,
    HorizontalPodAutoscalerSpec, MetricIdentifier, MetricSpec as HpaMetric, MetricTarget,
    ResourceMetricSource,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::Resource as _;
use swell_api::annotations::{self, labels};
use swell_api::defaults::COMPOSITE_METRIC_NAME;
use swell_api::{ScaledObject, ScalingModifiersMetricType};
use swell_scalers::{MetricSpec, MetricType};
use swell_scaling::quantity::milli_quantity;

use crate::target::Target;

fn truncate63(s: &str) -> String {
    s.chars().take(63).collect()
}

fn metric_target(metric_type: MetricType, value: Quantity) -> MetricTarget {
    match metric_type {
        MetricType::Value => MetricTarget {
            type_: "Value".into(),
            value: Some(value),
            ..Default::default()
        },
        MetricType::Utilization => MetricTarget {
            type_: "Utilization".into(),
            ..Default::default()
        },
        MetricType::AverageValue => MetricTarget {
            type_: "AverageValue".into(),
            average_value: Some(value),
            ..Default::default()
        },
    }
}

/// One HPA metric per trigger, sorted by type as KEDA sorts them.
pub fn hpa_metrics(so_name: &str, specs: &[MetricSpec]) -> Vec<HpaMetric> {
    let mut out: Vec<HpaMetric> = specs
        .iter()
        .map(|s| match s {
            MetricSpec::External {
                name,
                target,
                metric_type,
            } => HpaMetric {
                type_: "External".into(),
                external: Some(ExternalMetricSource {
                    metric: MetricIdentifier {
                        name: name.clone(),
                        selector: Some(LabelSelector {
                            match_labels: Some(BTreeMap::from([(
                                labels::SCALED_OBJECT_NAME.to_string(),
                                so_name.to_string(),
                            )])),
                            ..Default::default()
                        }),
                    },
                    target: metric_target(*metric_type, Quantity(milli_quantity(*target))),
                }),
                ..Default::default()
            },
            MetricSpec::Resource {
                resource,
                metric_type,
                target,
                container,
            } => {
                let mut t = metric_target(*metric_type, Quantity(target.clone()));
                if *metric_type == MetricType::Utilization {
                    t.average_utilization = target.parse().ok();
                }
                match container {
                    Some(c) => HpaMetric {
                        type_: "ContainerResource".into(),
                        container_resource: Some(ContainerResourceMetricSource {
                            container: c.clone(),
                            name: resource.clone(),
                            target: t,
                        }),
                        ..Default::default()
                    },
                    None => HpaMetric {
                        type_: "Resource".into(),
                        resource: Some(ResourceMetricSource {
                            name: resource.clone(),
                            target: t,
                        }),
                        ..Default::default()
                    },
                }
            }
        })
        .collect();
    out.sort_by(|a, b| a.type_.cmp(&b.type_));
    out
}

/// The metrics the HPA scales on: one per trigger, or with a scalingModifiers formula (and a
/// target above 0) the resource triggers' and then the one `composite-metric`, as KEDA's
/// `getScaledObjectMetricSpecs` replaces the external metrics.
pub fn metrics(so: &ScaledObject, specs: &[MetricSpec]) -> Vec<HpaMetric> {
    let name = so.metadata.name.clone().unwrap_or_default();
    let Some((target, metric_type)) = composite_target(so) else {
        return hpa_metrics(&name, specs);
    };
    let resources: Vec<MetricSpec> = specs
        .iter()
        .filter(|s| matches!(s, MetricSpec::Resource { .. }))
        .cloned()
        .collect();
    let mut out = hpa_metrics(&name, &resources);
    out.extend(hpa_metrics(
        &name,
        &[MetricSpec::External {
            name: COMPOSITE_METRIC_NAME.into(),
            target,
            metric_type,
        }],
    ));
    out
}

/// The composite metric's target, when the formula replaces the triggers' metrics.
fn composite_target(so: &ScaledObject) -> Option<(f64, MetricType)> {
    let m = so.spec.scaling_modifiers()?;
    m.formula.as_deref().filter(|f| !f.trim().is_empty())?;
    let target = m.target_value().filter(|t| *t > 0.0)?;
    let metric_type = match m.metric_type() {
        ScalingModifiersMetricType::AverageValue => MetricType::AverageValue,
        ScalingModifiersMetricType::Value => MetricType::Value,
    };
    Some((target, metric_type))
}

/// `status.compositeScalerName`: set while the HPA scales on the composite metric.
pub fn composite_scaler_name(so: &ScaledObject) -> Option<String> {
    composite_target(so).map(|_| COMPOSITE_METRIC_NAME.to_owned())
}

/// Swell's exact targets: tolerance 0 in each direction the behavior leaves unset, so the
/// HPA acts on any difference from `ceil(value / target)` (keda#5486).
fn exact(behavior: &mut Option<HorizontalPodAutoscalerBehavior>) {
    let b = behavior.get_or_insert_with(Default::default);
    for rules in [&mut b.scale_up, &mut b.scale_down] {
        let r = rules.get_or_insert_with(Default::default);
        r.tolerance.get_or_insert_with(|| Quantity("0".into()));
    }
}

/// The desired HPA; `exact_targets` is the operator's default for
/// [`annotations::EXACT_TARGETS`].
pub fn build(
    so: &ScaledObject,
    target: &Target,
    specs: &[MetricSpec],
    exact_targets: bool,
) -> HorizontalPodAutoscaler {
    let name = so.metadata.name.clone().unwrap_or_default();
    let hpa_name = so.hpa_name();
    let so_annotations = so.metadata.annotations.clone();
    let excluded =
        annotations::excluded_labels(so_annotations.as_ref(), annotations::HPA_EXCLUDED_LABELS);
    let mut hpa_labels: BTreeMap<String, String> = so
        .metadata
        .labels
        .iter()
        .flatten()
        .filter(|(k, _)| !excluded.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    hpa_labels.insert("app.kubernetes.io/name".into(), truncate63(&hpa_name));
    hpa_labels.insert(
        "app.kubernetes.io/version".into(),
        env!("CARGO_PKG_VERSION").into(),
    );
    hpa_labels.insert("app.kubernetes.io/part-of".into(), truncate63(&name));
    hpa_labels.insert(
        "app.kubernetes.io/managed-by".into(),
        "keda-operator".into(),
    );

    let mut behavior = so.spec.hpa_behavior().cloned();
    let disable = |rules: &mut Option<HPAScalingRules>| {
        rules.get_or_insert_with(Default::default).select_policy = Some("Disabled".into());
    };
    if annotations::bool_annotation(so_annotations.as_ref(), annotations::PAUSED_SCALE_IN) {
        disable(
            &mut behavior
                .get_or_insert_with(HorizontalPodAutoscalerBehavior::default)
                .scale_down,
        );
    }
    if annotations::bool_annotation(so_annotations.as_ref(), annotations::PAUSED_SCALE_OUT) {
        disable(
            &mut behavior
                .get_or_insert_with(HorizontalPodAutoscalerBehavior::default)
                .scale_up,
        );
    }
    let exact_here = annotations::exact_targets(so_annotations.as_ref()).and_then(Result::ok);
    if exact_here.unwrap_or(exact_targets) {
        exact(&mut behavior);
    }

    HorizontalPodAutoscaler {
        metadata: ObjectMeta {
            name: Some(hpa_name),
            namespace: so.metadata.namespace.clone(),
            labels: Some(hpa_labels),
            annotations: so_annotations,
            owner_references: so.controller_owner_ref(&()).map(|r| vec![r]),
            ..Default::default()
        },
        spec: HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some(target.resource.api_version.clone()),
                kind: target.resource.kind.clone(),
                name: target.name.clone(),
            },
            min_replicas: Some(so.spec.hpa_min_replicas()),
            max_replicas: so.spec.max_replica_count(),
            metrics: Some(metrics(so, specs)),
            behavior,
        },
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ApiResource;
    use swell_api::GroupVersionKindResource;

    fn so(yaml: serde_json::Value) -> ScaledObject {
        serde_json::from_value(yaml).expect("valid ScaledObject")
    }

    fn deployment() -> Target {
        Target {
            resource: ApiResource {
                group: "apps".into(),
                version: "v1".into(),
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                plural: "deployments".into(),
            },
            gvkr: GroupVersionKindResource {
                group: "apps".into(),
                version: "v1".into(),
                kind: "Deployment".into(),
                resource: "deployments".into(),
            },
            namespace: "ns".into(),
            name: "app".into(),
        }
    }

    #[test]
    fn builds_keda_shaped_hpa() {
        let o = so(serde_json::json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": "demo", "namespace": "ns", "uid": "u1", "labels": {"team": "a", "skip": "x"},
                         "annotations": {"scaledobject.keda.sh/hpa-excluded-labels": "skip", "autoscaling.keda.sh/paused-scale-in": "true"}},
            "spec": {"scaleTargetRef": {"name": "app"}, "minReplicaCount": 0, "maxReplicaCount": 7,
                     "advanced": {"horizontalPodAutoscalerConfig": {"behavior": {"scaleUp": {"stabilizationWindowSeconds": 3}}}},
                     "triggers": [{"type": "metrics-api", "metadata": {}}]}
        }));
        let specs = vec![
            MetricSpec::External {
                name: "s0-metric-api-v".into(),
                target: 2.5,
                metric_type: MetricType::AverageValue,
            },
            MetricSpec::Resource {
                resource: "cpu".into(),
                metric_type: MetricType::Utilization,
                target: "60".into(),
                container: None,
            },
        ];
        let hpa = build(&o, &deployment(), &specs, false);
        assert_eq!(hpa.metadata.name.as_deref(), Some("keda-hpa-demo"));
        let l = hpa.metadata.labels.clone().unwrap_or_default();
        assert_eq!(l.get("team").map(String::as_str), Some("a"));
        assert!(!l.contains_key("skip"));
        assert_eq!(
            l.get("app.kubernetes.io/managed-by").map(String::as_str),
            Some("keda-operator")
        );
        let owner = hpa.metadata.owner_references.clone().unwrap_or_default();
        assert_eq!(
            owner.first().map(|o| (o.kind.as_str(), o.controller)),
            Some(("ScaledObject", Some(true)))
        );
        let spec = hpa.spec.clone();
        assert_eq!((spec.min_replicas, spec.max_replicas), (Some(1), 7));
        assert_eq!(spec.scale_target_ref.kind, "Deployment");
        let metrics = spec.metrics.unwrap_or_default();
        assert_eq!(metrics[0].type_, "External");
        let ext = metrics[0].external.clone().unwrap_or_default();
        assert_eq!(ext.metric.name, "s0-metric-api-v");
        assert_eq!(ext.target.average_value, Some(Quantity("2500m".into())));
        assert_eq!(
            metrics[1]
                .resource
                .as_ref()
                .and_then(|r| r.target.average_utilization),
            Some(60)
        );
        let behavior = spec.behavior.unwrap_or_default();
        assert_eq!(
            behavior
                .scale_up
                .and_then(|r| r.stabilization_window_seconds),
            Some(3)
        );
        assert_eq!(
            behavior.scale_down.and_then(|r| r.select_policy).as_deref(),
            Some("Disabled")
        );
    }

    #[test]
    fn custom_name_and_value_targets() {
        let o = so(serde_json::json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": "demo", "namespace": "ns", "uid": "u1"},
            "spec": {"scaleTargetRef": {"name": "app"}, "minReplicaCount": 3,
                     "advanced": {"horizontalPodAutoscalerConfig": {"name": "mine"}},
                     "triggers": [{"type": "cron", "metadata": {}}]}
        }));
        let specs = vec![MetricSpec::External {
            name: "s0-x".into(),
            target: 4.0,
            metric_type: MetricType::Value,
        }];
        let hpa = build(&o, &deployment(), &specs, false);
        assert_eq!(hpa.metadata.name.as_deref(), Some("mine"));
        let spec = hpa.spec;
        assert_eq!((spec.min_replicas, spec.max_replicas), (Some(3), 100));
        let t = spec.metrics.unwrap_or_default()[0]
            .external
            .clone()
            .unwrap_or_default()
            .target;
        assert_eq!(
            (t.type_.as_str(), t.value),
            ("Value", Some(Quantity("4".into())))
        );
    }

    #[test]
    fn a_formula_replaces_the_external_metrics_with_composite_metric() {
        let with = |modifiers: serde_json::Value| {
            so(serde_json::json!({
                "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
                "metadata": {"name": "demo", "namespace": "ns", "uid": "u1"},
                "spec": {"scaleTargetRef": {"name": "app"},
                         "advanced": {"scalingModifiers": modifiers},
                         "triggers": [{"type": "cron", "name": "a", "metadata": {}}]}
            }))
        };
        let specs = vec![
            MetricSpec::External {
                name: "s0-cron".into(),
                target: 1.0,
                metric_type: MetricType::AverageValue,
            },
            MetricSpec::Resource {
                resource: "memory".into(),
                metric_type: MetricType::AverageValue,
                target: "100Mi".into(),
                container: Some("app".into()),
            },
        ];
        // (scalingModifiers, metric names and targets the HPA gets, compositeScalerName)
        let cases = [
            (
                serde_json::json!({"formula": "a * 2", "target": "2.5"}),
                vec![
                    ("ContainerResource", "memory", "100Mi"),
                    ("External", "composite-metric", "AverageValue 2500m"),
                ],
                Some("composite-metric"),
            ),
            (
                serde_json::json!({"formula": "a", "target": "4", "metricType": "Value"}),
                vec![
                    ("ContainerResource", "memory", "100Mi"),
                    ("External", "composite-metric", "Value 4"),
                ],
                Some("composite-metric"),
            ),
            // No formula (only a target): the triggers' own metrics, as KEDA.
            (
                serde_json::json!({"target": "4"}),
                vec![
                    ("ContainerResource", "memory", "100Mi"),
                    ("External", "s0-cron", "AverageValue 1"),
                ],
                None,
            ),
        ];
        for (modifiers, want, composite) in cases {
            let o = with(modifiers.clone());
            let got: Vec<(String, String, String)> = metrics(&o, &specs)
                .into_iter()
                .map(|m| match (m.external, m.container_resource) {
                    (Some(e), _) => {
                        let t = e.target;
                        let q = t.average_value.or(t.value).map(|q| q.0).unwrap_or_default();
                        (m.type_, e.metric.name, format!("{} {q}", t.type_))
                    }
                    (_, Some(c)) => {
                        let q = c.target.average_value.map(|q| q.0).unwrap_or_default();
                        (m.type_, c.name, q)
                    }
                    _ => (m.type_, String::new(), String::new()),
                })
                .collect();
            let want: Vec<(String, String, String)> = want
                .into_iter()
                .map(|(a, b, c)| (a.into(), b.into(), c.into()))
                .collect();
            assert_eq!(got, want, "{modifiers}");
            assert_eq!(
                composite_scaler_name(&o).as_deref(),
                composite,
                "{modifiers}"
            );
        }
    }

    #[test]
    fn exact_targets_set_tolerance_zero_where_the_behavior_leaves_it_unset() {
        let with = |annotations: serde_json::Value, behavior: serde_json::Value| {
            so(serde_json::json!({
                "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
                "metadata": {"name": "demo", "namespace": "ns", "annotations": annotations},
                "spec": {"scaleTargetRef": {"name": "app"},
                         "advanced": {"horizontalPodAutoscalerConfig": {"behavior": behavior}},
                         "triggers": [{"type": "cron", "metadata": {}}]}
            }))
        };
        let on = serde_json::json!({"autoscaling.swell.dev/exact-targets": "true"});
        let off = serde_json::json!({"autoscaling.swell.dev/exact-targets": "false"});
        let none = serde_json::json!({});
        let own = serde_json::json!({"scaleDown": {"tolerance": "50m"}});
        // (annotations, behavior, operator default, (scaleUp, scaleDown) tolerances)
        let cases = [
            (none.clone(), none.clone(), false, (None, None)),
            (on.clone(), none.clone(), false, (Some("0"), Some("0"))),
            (none.clone(), none.clone(), true, (Some("0"), Some("0"))),
            (off, none.clone(), true, (None, None)),
            // The ScaledObject's own tolerance wins.
            (on, own.clone(), false, (Some("0"), Some("50m"))),
            (none, own, false, (None, Some("50m"))),
        ];
        for (annotations, behavior, default, want) in cases {
            let o = with(annotations.clone(), behavior.clone());
            let b = build(&o, &deployment(), &[], default).spec.behavior;
            let tolerance =
                |r: Option<&HPAScalingRules>| r.and_then(|r| r.tolerance.clone()).map(|q| q.0);
            let got = (
                tolerance(b.as_ref().and_then(|b| b.scale_up.as_ref())),
                tolerance(b.as_ref().and_then(|b| b.scale_down.as_ref())),
            );
            let want = (want.0.map(String::from), want.1.map(String::from));
            assert_eq!(got, want, "{annotations} {behavior} {default}");
        }
    }
}
