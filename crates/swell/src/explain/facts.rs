//! The explanation's facts from the objects read: a ScaledObject and its HPA as the API
//! server returns them (defaults applied), and the operator's report.

use k8s_openapi::api::autoscaling::v2::{
    HPAScalingRules, HorizontalPodAutoscaler, MetricSpec, MetricStatus,
};
use swell_api::{ScaledObject, annotations, conditions};
use swell_scaling::explain::hpa::{
    HpaCondition, HpaFacts, HpaMetric, Policy, PolicyKind, Rules, Select, TargetKind,
};
use swell_scaling::explain::{FallbackSpec, LoopReport, ObjectFacts, Pause, TriggerSpec};
use swell_scaling::quantity::parse_quantity;

pub fn object(so: &ScaledObject) -> ObjectFacts {
    let spec = &so.spec;
    let anns = so.metadata.annotations.as_ref();
    let status = so.status.as_ref();
    let fallback = spec.fallback.as_ref().map(|f| FallbackSpec {
        failure_threshold: f.failure_threshold,
        replicas: f.replicas,
        behavior: serde_json::to_value(f.behavior())
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default(),
    });
    let ready = so.condition(conditions::READY).filter(|c| !c.is_true());
    ObjectFacts {
        namespace: so.metadata.namespace.clone().unwrap_or_default(),
        name: so.metadata.name.clone().unwrap_or_default(),
        min: spec.min_replica_count(),
        max: spec.max_replica_count(),
        idle: spec.idle_replica_count,
        cooldown_seconds: i64::from(spec.cooldown_period()),
        pause: Pause {
            replicas: annotations::paused_replicas(anns).and_then(Result::ok),
            paused: annotations::bool_annotation(anns, annotations::PAUSED),
            scale_in: annotations::bool_annotation(anns, annotations::PAUSED_SCALE_IN),
            scale_out: annotations::bool_annotation(anns, annotations::PAUSED_SCALE_OUT),
        },
        fallback,
        triggers: spec
            .triggers
            .iter()
            .enumerate()
            .map(|(index, t)| TriggerSpec {
                index,
                type_: t.type_.clone(),
                activation: swell_scaling::explain::activation_of(&t.metadata),
            })
            .collect(),
        last_active: status
            .and_then(|s| s.last_active_time.as_ref())
            .map(|t| t.0),
        fallback_active: so
            .condition(conditions::FALLBACK)
            .is_some_and(|c| c.is_true()),
        failures: status
            .and_then(|s| s.health.as_ref())
            .map(|h| {
                h.iter()
                    .map(|(m, h)| (m.clone(), h.number_of_failures.unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default(),
        not_ready: ready.map(|c| {
            format!(
                "{}: {}",
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default()
            )
        }),
    }
}

/// Kubernetes' default behavior where the HPA has none (`pkg/apis/autoscaling` defaults).
fn default_rules(up: bool) -> Rules {
    let percent = Policy {
        kind: PolicyKind::Percent,
        value: 100,
        period_seconds: 15,
    };
    if up {
        let pods = Policy {
            kind: PolicyKind::Pods,
            value: 4,
            period_seconds: 15,
        };
        Rules {
            window_seconds: Some(0),
            policies: vec![pods, percent],
            ..Default::default()
        }
    } else {
        Rules {
            policies: vec![percent],
            ..Default::default()
        }
    }
}

fn rules(r: Option<&HPAScalingRules>, up: bool) -> Rules {
    let Some(r) = r else {
        return default_rules(up);
    };
    let defaults = default_rules(up);
    let policies: Vec<Policy> = r
        .policies
        .iter()
        .flatten()
        .map(|p| Policy {
            kind: if p.type_ == "Pods" {
                PolicyKind::Pods
            } else {
                PolicyKind::Percent
            },
            value: p.value,
            period_seconds: p.period_seconds,
        })
        .collect();
    Rules {
        window_seconds: r.stabilization_window_seconds.or(defaults.window_seconds),
        select: match r.select_policy.as_deref() {
            Some("Min") => Select::Min,
            Some("Disabled") => Select::Disabled,
            _ => Select::Max,
        },
        policies: if policies.is_empty() {
            defaults.policies
        } else {
            policies
        },
        tolerance: r.tolerance.as_ref().and_then(|q| parse_quantity(&q.0)),
    }
}

/// The metric's name, target kind and target value.
fn target(m: &MetricSpec) -> Option<(String, TargetKind, f64)> {
    let (name, t) = match (&m.external, &m.resource, &m.container_resource) {
        (Some(e), _, _) => (e.metric.name.clone(), &e.target),
        (_, Some(r), _) => (r.name.clone(), &r.target),
        (_, _, Some(c)) => (c.name.clone(), &c.target),
        _ => return None,
    };
    let resource = m.external.is_none();
    let quantity = |q: &Option<k8s_openapi::apimachinery::pkg::api::resource::Quantity>| {
        q.as_ref().and_then(|q| parse_quantity(&q.0))
    };
    // A resource's average is per pod like a utilization: ceil(current × value / target).
    match t.type_.as_str() {
        "Utilization" => Some((
            name,
            TargetKind::Utilization,
            f64::from(t.average_utilization?),
        )),
        "AverageValue" if resource => {
            Some((name, TargetKind::Utilization, quantity(&t.average_value)?))
        }
        "AverageValue" => Some((name, TargetKind::AverageValue, quantity(&t.average_value)?)),
        _ => Some((name, TargetKind::Value, quantity(&t.value)?)),
    }
}

/// What the HPA read for `name`, as a total for external metrics.
fn current_value(
    statuses: &[MetricStatus],
    name: &str,
    kind: TargetKind,
    replicas: i32,
) -> Option<f64> {
    let q = |q: &Option<k8s_openapi::apimachinery::pkg::api::resource::Quantity>| {
        q.as_ref().and_then(|q| parse_quantity(&q.0))
    };
    statuses.iter().find_map(|s| {
        if let Some(e) = s.external.as_ref().filter(|e| e.metric.name == name) {
            return match kind {
                // the HPA shows ceil(total / replicas) per pod
                TargetKind::AverageValue => {
                    q(&e.current.average_value).map(|v| v * f64::from(replicas))
                }
                _ => q(&e.current.value),
            };
        }
        let r = s
            .resource
            .as_ref()
            .filter(|r| r.name == name)
            .map(|r| &r.current);
        let c = s
            .container_resource
            .as_ref()
            .filter(|c| c.name == name)
            .map(|c| &c.current);
        let cur = r.or(c)?;
        cur.average_utilization
            .map(f64::from)
            .or_else(|| q(&cur.average_value))
    })
}

/// The HPA's facts; an external metric's value is the operator's last reading when it has
/// one (exact, where the HPA's status rounds its average up to a milli-unit).
pub fn hpa(h: &HorizontalPodAutoscaler, operator: Option<&LoopReport>) -> HpaFacts {
    let spec = &h.spec;
    let status = h.status.clone().unwrap_or_default();
    let current = status.current_replicas.unwrap_or(0);
    let statuses = status.current_metrics.unwrap_or_default();
    let from_operator = |name: &str| {
        let t = operator?.triggers.iter().find(|t| t.metric == name)?;
        t.last.as_ref()?.value
    };
    let metrics = spec
        .metrics
        .iter()
        .flatten()
        .filter_map(target)
        .map(|(name, kind, target)| HpaMetric {
            value: from_operator(&name).or_else(|| current_value(&statuses, &name, kind, current)),
            name,
            kind,
            target,
        })
        .collect();
    let behavior = spec.behavior.as_ref();
    HpaFacts {
        name: h.metadata.name.clone().unwrap_or_default(),
        min: spec.min_replicas.unwrap_or(1),
        max: spec.max_replicas,
        current,
        desired: Some(status.desired_replicas),
        metrics,
        up: rules(behavior.and_then(|b| b.scale_up.as_ref()), true),
        down: rules(behavior.and_then(|b| b.scale_down.as_ref()), false),
        conditions: status
            .conditions
            .iter()
            .flatten()
            .map(|c| HpaCondition {
                type_: c.type_.clone(),
                status: c.status == "True",
                reason: c.reason.clone().unwrap_or_default(),
                message: c.message.clone().unwrap_or_default(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_hpa_reads_as_its_facts() {
        let h: HorizontalPodAutoscaler = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "keda-hpa-app"},
            "spec": {
                "scaleTargetRef": {"kind": "Deployment", "name": "app"},
                "minReplicas": 1, "maxReplicas": 5,
                "metrics": [{"type": "External", "external": {
                    "metric": {"name": "s0-metric-api-value"},
                    "target": {"type": "AverageValue", "averageValue": "2"}}}],
                "behavior": {"scaleUp": {"selectPolicy": "Max", "stabilizationWindowSeconds": 0,
                    "policies": [{"type": "Pods", "value": 1, "periodSeconds": 30}]}}
            },
            "status": {
                "currentReplicas": 2, "desiredReplicas": 3,
                "currentMetrics": [{"type": "External", "external": {
                    "metric": {"name": "s0-metric-api-value"},
                    "current": {"averageValue": "5"}}}],
                "conditions": [{"type": "ScalingLimited", "status": "True", "reason": "ScaleUpLimit", "message": "m"}]
            }
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let f = hpa(&h, None);
        assert_eq!((f.min, f.max, f.current, f.desired), (1, 5, 2, Some(3)));
        assert_eq!(f.metrics[0].kind, TargetKind::AverageValue);
        assert_eq!((f.metrics[0].target, f.metrics[0].value), (2.0, Some(10.0)));
        assert_eq!(f.up.policies[0].value, 1);
        assert_eq!(f.down.policies[0].kind, PolicyKind::Percent, "defaulted");
        assert!(f.conditions[0].status);
    }
}
