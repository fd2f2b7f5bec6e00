//! What a ScaledObject asks for, decided from it and what was resolved for it. No client
//! required: every function here is pure and table-tested.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use swell_api::annotations;
use swell_api::{
    GroupVersionKindResource, HealthStatus, HealthStatusType, ScaledObject, TriggerActivityStatus,
    ValidationError,
};
use swell_scalers::MetricSpec;
use swell_scaling::{DirectionPause, Health, HealthState, LoopFacts, Replicas};

use crate::composite::{
    COMPOSITE_METRIC_NAME, Composite, CompositeError, Source, composite_fallback, source,
};
use crate::loop_state::{LoopState, Reading, TriggerVerdict};
use crate::target::TargetError;
use crate::triggers::BuildError;

/// Why a ScaledObject cannot be acted on: `Ready=False` with reason `ScaledObjectCheckFailed`
/// and this message, until its spec or what it references changes.
#[derive(Debug, thiserror::Error)]
pub enum CheckFailed {
    #[error("{}", swell_api::validation::format_errors(.0))]
    Invalid(Vec<ValidationError>),
    #[error("annotation {}: {}", annotations::PAUSED_REPLICAS, annotations::paused_replicas_error(.0))]
    PausedReplicas(String),
    #[error("{0}")]
    Build(Box<BuildError>),
    #[error("applying HPA {name}: {}", crate::kube_message(.source))]
    Hpa { name: String, source: kube::Error },
    #[error("{0}")]
    Target(Box<TargetError>),
}

impl From<BuildError> for CheckFailed {
    fn from(e: BuildError) -> Self {
        CheckFailed::Build(Box::new(e))
    }
}

impl From<TargetError> for CheckFailed {
    fn from(e: TargetError) -> Self {
        CheckFailed::Target(Box::new(e))
    }
}

impl CheckFailed {
    /// A low-cardinality label for logs and `swell_reconcile_errors_total`.
    pub fn category(&self) -> &'static str {
        match self {
            CheckFailed::Invalid(_) | CheckFailed::PausedReplicas(_) => "invalid",
            CheckFailed::Build(e) => e.category(),
            CheckFailed::Hpa { .. } => "hpa",
            CheckFailed::Target(_) => "target",
        }
    }

    /// Whether a scaler failed (KEDA also records `KEDAScalerFailed`).
    pub fn scaler_failed(&self) -> bool {
        matches!(self, CheckFailed::Build(e) if e.scaler_failed())
    }
}

/// What the annotations and spec let the controller do.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    Run,
    /// `autoscaling.keda.sh/paused` (no replicas) or `paused-replicas: N`.
    Pause {
        replicas: Option<i32>,
    },
}

pub fn admit(so: &ScaledObject) -> Result<Admission, CheckFailed> {
    so.validate().map_err(CheckFailed::Invalid)?;
    let anns = so.metadata.annotations.as_ref();
    match annotations::paused_replicas(anns) {
        Some(Ok(n)) => Ok(Admission::Pause { replicas: Some(n) }),
        Some(Err(raw)) => Err(CheckFailed::PausedReplicas(raw.to_string())),
        None if annotations::bool_annotation(anns, annotations::PAUSED) => {
            Ok(Admission::Pause { replicas: None })
        }
        None => Ok(Admission::Run),
    }
}

/// The status fields a successful reconcile writes.
#[derive(Clone, Debug, PartialEq)]
pub struct Applied {
    pub target_kind: String,
    pub gvkr: GroupVersionKindResource,
    pub original_replicas: Option<i32>,
    pub hpa_name: String,
    pub external: Vec<String>,
    pub resource: Vec<String>,
    pub triggers_types: String,
    pub auth_types: Option<String>,
    /// What the loop last said of the triggers (Ready follows it).
    pub verdict: Option<TriggerVerdict>,
    /// `paused-scale-in` or `paused-scale-out` is set: Paused is True, as under KEDA, while
    /// the loop and the HPA go on in the other direction.
    pub direction_paused: bool,
    /// `composite-metric` while the HPA scales on a scalingModifiers formula.
    pub composite_scaler_name: Option<String>,
}

/// What to write for a ScaledObject that runs: its HPA and its status.
pub struct Plan {
    pub hpa: HorizontalPodAutoscaler,
    pub applied: Applied,
}

/// `current_replicas` is the target's count now, read only when the status has no
/// `originalReplicaCount` yet (it is recorded once, for restore on delete).
/// `exact_targets` is the operator's default for the exact-targets annotation.
pub fn plan(
    so: &ScaledObject,
    state: &LoopState,
    current_replicas: Option<i32>,
    exact_targets: bool,
) -> Plan {
    let specs = state.specs();
    let names = |external: bool| -> Vec<String> {
        specs
            .iter()
            .filter(|s| matches!(s, MetricSpec::External { .. }) == external)
            .map(|s| s.name().to_string())
            .collect()
    };
    let types: Vec<&str> = so.spec.triggers.iter().map(|t| t.type_.as_str()).collect();
    let applied = Applied {
        target_kind: state.target.kind_string(),
        gvkr: state.target.gvkr.clone(),
        original_replicas: so
            .status
            .as_ref()
            .and_then(|s| s.original_replica_count)
            .or(current_replicas),
        hpa_name: so.hpa_name(),
        external: names(true),
        resource: names(false),
        triggers_types: types.join(","),
        auth_types: (!state.auth_names.is_empty()).then(|| state.auth_names.join(",")),
        verdict: state.verdict(),
        direction_paused: direction_pause(so) != DirectionPause::default(),
        composite_scaler_name: crate::hpa::composite_scaler_name(so),
    };
    Plan {
        hpa: crate::hpa::build(so, &state.target, &specs, exact_targets),
        applied,
    }
}

/// KEDA's `scaledobject.keda.sh/name=<name>` label on the ScaledObject itself (its metrics
/// adapter and users select ScaledObjects by it): the merge patch that sets it, when it is
/// missing or names something else.
pub fn name_label_patch(so: &ScaledObject) -> Option<serde_json::Value> {
    let name = so.metadata.name.as_deref()?;
    let key = annotations::labels::SCALED_OBJECT_NAME;
    let current = so.metadata.labels.as_ref().and_then(|l| l.get(key));
    (current.map(String::as_str) != Some(name))
        .then(|| serde_json::json!({"metadata": {"labels": {key: name}}}))
}

/// What one poll's readings say, before the replica decision.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Assessment {
    pub active: bool,
    /// Active because of `autoscaling.keda.sh/force-activation`, whatever the triggers say.
    pub forced: bool,
    /// A trigger failed and is not covered by fallback.
    pub error: bool,
    pub in_fallback: bool,
    pub all_failed: bool,
    pub active_metrics: Vec<String>,
    /// `metric: message` per failed trigger.
    pub errors: Vec<String>,
    pub health: BTreeMap<String, HealthStatus>,
    pub activity: BTreeMap<String, TriggerActivityStatus>,
    /// The scalingModifiers formula's value this poll, when it has one.
    pub composite: Option<f64>,
}

impl Assessment {
    /// KEDA's `force-activation`: the target is treated as active (activated from zero or
    /// idle, never deactivated) while the annotation is true.
    pub fn forced_by(mut self, annotations: Option<&BTreeMap<String, String>>) -> Self {
        use swell_api::annotations::{FORCE_ACTIVATION, bool_annotation};
        if bool_annotation(annotations, FORCE_ACTIVATION) {
            self.forced = true;
            self.active = true;
        }
        self
    }

    pub fn verdict(&self) -> TriggerVerdict {
        let message = self.errors.join("; ");
        match (self.error, self.all_failed) {
            (true, true) => TriggerVerdict::AllFailed(message),
            (true, false) => TriggerVerdict::Partial(message),
            (false, _) => TriggerVerdict::Healthy,
        }
    }
}

/// Judges one poll. `fallback_threshold` is set when the ScaledObject has a fallback;
/// `unpolled_only` when every trigger is read by the HPA alone (cpu, memory), which keeps
/// the workload active.
pub fn assess(
    readings: &[(String, Reading)],
    old_health: Option<&BTreeMap<String, HealthStatus>>,
    fallback_threshold: Option<i32>,
    unpolled_only: bool,
) -> Assessment {
    let mut a = Assessment {
        all_failed: !readings.is_empty() && readings.iter().all(|(_, r)| r.is_err()),
        ..Default::default()
    };
    for (metric, r) in readings {
        let h = health_of(old_health.and_then(|h| h.get(metric))).after(r.is_ok());
        match r {
            Ok(s) => {
                if s.active {
                    a.active = true;
                    a.active_metrics.push(metric.clone());
                }
                let is_active = Some(s.active);
                a.activity
                    .insert(metric.clone(), TriggerActivityStatus { is_active });
            }
            Err(e) => {
                a.errors.push(format!("{metric}: {e}"));
                // KEDA (since 2.19) counts a trigger in fallback as active, so fallback can
                // scale a workload up from zero.
                if fallback_threshold.is_some_and(|t| h.in_fallback(t)) {
                    a.in_fallback = true;
                    a.active = true;
                } else {
                    a.error = true;
                }
            }
        }
        a.health.insert(metric.clone(), health_status(h));
    }
    a.active |= unpolled_only;
    a
}

/// With a scalingModifiers formula, activity is the composite's (KEDA's
/// `getScaledObjectState`): active when it is above `activationTarget`, never while a
/// trigger fails outside fallback or the formula itself fails. `current` is the target's
/// replicas, for the fallback behaviours that follow them.
pub fn with_composite(
    mut a: Assessment,
    so: &ScaledObject,
    composite: &Composite,
    readings: &[(String, Reading)],
    current: i32,
) -> Assessment {
    let fallback = composite_fallback(so, composite, current);
    let sources: Vec<(&str, Source)> = readings
        .iter()
        .map(|(m, r)| {
            let failures = a
                .health
                .get(m)
                .and_then(|h| h.number_of_failures)
                .unwrap_or(0);
            let r = r.as_ref().map(|s| s.value);
            (m.as_str(), source(m, r, failures, fallback.as_ref()))
        })
        .collect();
    a.active_metrics.clear();
    a.active = false;
    match composite.evaluate(&sources, fallback.as_ref()) {
        // A failure outside fallback is already among the errors, from `assess`.
        Err(CompositeError::Sources(_)) => {}
        Err(e) => {
            a.error = true;
            a.errors.push(e.to_string());
        }
        Ok(value) => {
            a.composite = Some(value);
            a.active = !a.error && composite.active(value);
            if a.active {
                a.active_metrics.push(COMPOSITE_METRIC_NAME.to_owned());
            }
        }
    }
    a
}

/// The facts `swell_scaling::decide` needs, from the ScaledObject and this poll.
pub fn loop_facts(so: &ScaledObject, current: i32, a: &Assessment, now: Timestamp) -> LoopFacts {
    let spec = &so.spec;
    let status = so.status.as_ref();
    LoopFacts {
        current,
        replicas: Replicas {
            min: spec.min_replica_count(),
            max: spec.max_replica_count(),
            idle: spec.idle_replica_count,
        },
        active: a.active,
        error: a.error,
        fallback_configured: fallback_threshold(so).is_some(),
        last_active: status
            .and_then(|s| s.last_active_time.as_ref())
            .map(|t| t.0),
        created: so.metadata.creation_timestamp.as_ref().map_or(now, |t| t.0),
        cooldown: SignedDuration::from_secs(i64::from(spec.cooldown_period())),
        initial_cooldown: SignedDuration::from_secs(i64::from(spec.initial_cooldown_period())),
        now,
        paused: direction_pause(so),
    }
}

/// What `swell explain` is told of one poll: the assessment, the decision (`None` when
/// the target's replicas could not be read) and when the cooldown ends.
pub fn poll_report(
    so: &ScaledObject,
    a: &Assessment,
    current: Option<i32>,
    decision: Option<swell_scaling::Decision>,
    now: Timestamp,
) -> swell_scaling::explain::PollReport {
    let facts = loop_facts(so, current.unwrap_or(0), a, now);
    // The status update after this poll writes lastActiveTime = now when active (not when
    // paused-scale-out holds the activation back), as `status::after_poll`.
    let held = decision == Some(swell_scaling::Decision::ScaleOutPaused);
    let last_active = if a.active && !held {
        Some(now)
    } else {
        facts.last_active
    };
    let facts = LoopFacts {
        last_active,
        ..facts
    };
    let failures = a
        .health
        .iter()
        .map(|(m, h)| (m.clone(), h.number_of_failures.unwrap_or(0)))
        .collect();
    swell_scaling::explain::PollReport {
        at: now,
        current_replicas: current,
        decision,
        active: a.active,
        forced: a.forced,
        error: a.error,
        in_fallback: a.in_fallback,
        composite: a.composite,
        last_active_time: last_active,
        cooldown_ends: Some(swell_scaling::decision::cooldown_ends(&facts)),
        failures,
    }
}

/// `autoscaling.keda.sh/paused-scale-in` and `paused-scale-out`.
pub fn direction_pause(so: &ScaledObject) -> DirectionPause {
    let anns = so.metadata.annotations.as_ref();
    DirectionPause {
        scale_in: annotations::bool_annotation(anns, annotations::PAUSED_SCALE_IN),
        scale_out: annotations::bool_annotation(anns, annotations::PAUSED_SCALE_OUT),
    }
}

/// The fallback's failure threshold, when a fallback is configured (replicas ≠ 0).
pub fn fallback_threshold(so: &ScaledObject) -> Option<i32> {
    let f = so.spec.fallback.as_ref().filter(|f| f.replicas != 0)?;
    Some(f.failure_threshold)
}

fn health_of(status: Option<&HealthStatus>) -> Health {
    match status {
        Some(h) => Health {
            failures: h.number_of_failures.unwrap_or(0),
            state: if h.status == Some(HealthStatusType::Failing) {
                HealthState::Failing
            } else {
                HealthState::Happy
            },
        },
        None => Health::default(),
    }
}

fn health_status(h: Health) -> HealthStatus {
    HealthStatus {
        number_of_failures: Some(h.failures),
        status: Some(if h.state == HealthState::Failing {
            HealthStatusType::Failing
        } else {
            HealthStatusType::Happy
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use swell_scalers::{Sample, ScalerError};

    fn so(annotations: serde_json::Value, extra_spec: serde_json::Value) -> ScaledObject {
        let mut spec = serde_json::json!({
            "scaleTargetRef": {"name": "app"},
            "triggers": [{"type": "cron", "metadata": {"timezone": "UTC",
                "start": "0 * * * *", "end": "1 * * * *", "desiredReplicas": "2"}}]
        });
        if let (Some(s), Some(e)) = (spec.as_object_mut(), extra_spec.as_object()) {
            s.extend(e.clone());
        }
        serde_json::from_value(serde_json::json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": "so", "namespace": "ns", "annotations": annotations},
            "spec": spec
        }))
        .unwrap()
    }

    #[test]
    fn admission_reads_pause_annotations_and_validation() {
        let none = serde_json::json!({});
        let cases: Vec<(
            serde_json::Value,
            serde_json::Value,
            Result<Admission, &str>,
        )> = vec![
            (none.clone(), none.clone(), Ok(Admission::Run)),
            (
                serde_json::json!({"autoscaling.keda.sh/paused": "true"}),
                none.clone(),
                Ok(Admission::Pause { replicas: None }),
            ),
            (
                serde_json::json!({"autoscaling.keda.sh/paused": "false"}),
                none.clone(),
                Ok(Admission::Run),
            ),
            (
                serde_json::json!({"autoscaling.keda.sh/paused-replicas": "3"}),
                none.clone(),
                Ok(Admission::Pause { replicas: Some(3) }),
            ),
            (
                serde_json::json!({"autoscaling.keda.sh/paused-replicas": "three"}),
                none.clone(),
                Err("invalid"),
            ),
            (
                none.clone(),
                serde_json::json!({"minReplicaCount": 5, "maxReplicaCount": 2}),
                Err("invalid"),
            ),
        ];
        for (anns, spec, want) in cases {
            let got = admit(&so(anns.clone(), spec));
            match (got, want) {
                (Ok(a), Ok(w)) => assert_eq!(a, w, "{anns}"),
                (Err(e), Err(category)) => {
                    assert_eq!(e.category(), category, "{anns}");
                    assert!(!e.scaler_failed());
                }
                (got, want) => panic!("{anns}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn a_bad_paused_replicas_annotation_names_itself() {
        let anns = serde_json::json!({"autoscaling.keda.sh/paused-replicas": "three"});
        let e = admit(&so(anns, serde_json::json!({}))).unwrap_err();
        assert!(
            e.to_string()
                .contains("autoscaling.keda.sh/paused-replicas")
                && e.to_string().contains("three"),
            "{e}"
        );
    }

    fn ok(value: f64, active: bool) -> Reading {
        Ok(Sample { value, active })
    }

    fn failed() -> Reading {
        Err(Arc::new(ScalerError::NotPolled("cpu")))
    }

    fn health(failures: i32) -> BTreeMap<String, HealthStatus> {
        BTreeMap::from([(
            "s1-b".to_string(),
            HealthStatus {
                number_of_failures: Some(failures),
                status: Some(HealthStatusType::Failing),
            },
        )])
    }

    #[test]
    fn each_poll_is_judged_by_activity_errors_and_fallback() {
        struct Case {
            name: &'static str,
            readings: Vec<(String, Reading)>,
            health: BTreeMap<String, HealthStatus>,
            fallback: Option<i32>,
            unpolled_only: bool,
            active: bool,
            verdict: fn(&TriggerVerdict) -> bool,
            in_fallback: bool,
        }
        let m = |s: &str| s.to_string();
        let cases = [
            Case {
                name: "one active trigger",
                readings: vec![(m("s0-a"), ok(5.0, true)), (m("s1-b"), ok(0.0, false))],
                health: BTreeMap::new(),
                fallback: None,
                unpolled_only: false,
                active: true,
                verdict: |v| *v == TriggerVerdict::Healthy,
                in_fallback: false,
            },
            Case {
                name: "one of two failed",
                readings: vec![(m("s0-a"), ok(0.0, false)), (m("s1-b"), failed())],
                health: BTreeMap::new(),
                fallback: None,
                unpolled_only: false,
                active: false,
                verdict: |v| matches!(v, TriggerVerdict::Partial(m) if m.starts_with("s1-b: ")),
                in_fallback: false,
            },
            Case {
                name: "all failed",
                readings: vec![(m("s1-b"), failed())],
                health: BTreeMap::new(),
                fallback: None,
                unpolled_only: false,
                active: false,
                verdict: |v| matches!(v, TriggerVerdict::AllFailed(_)),
                in_fallback: false,
            },
            Case {
                name: "failed past the fallback threshold counts as active",
                readings: vec![(m("s1-b"), failed())],
                health: health(3),
                fallback: Some(3),
                unpolled_only: false,
                active: true,
                verdict: |v| *v == TriggerVerdict::Healthy,
                in_fallback: true,
            },
            Case {
                name: "failed below the fallback threshold is an error",
                readings: vec![(m("s1-b"), failed())],
                health: health(0),
                fallback: Some(3),
                unpolled_only: false,
                active: false,
                verdict: |v| matches!(v, TriggerVerdict::AllFailed(_)),
                in_fallback: false,
            },
            Case {
                name: "cpu and memory only keep the workload active",
                readings: vec![],
                health: BTreeMap::new(),
                fallback: None,
                unpolled_only: true,
                active: true,
                verdict: |v| *v == TriggerVerdict::Healthy,
                in_fallback: false,
            },
        ];
        for c in cases {
            let a = assess(&c.readings, Some(&c.health), c.fallback, c.unpolled_only);
            assert_eq!(a.active, c.active, "{}", c.name);
            assert_eq!(a.in_fallback, c.in_fallback, "{}", c.name);
            assert!((c.verdict)(&a.verdict()), "{}: {:?}", c.name, a.verdict());
            assert_eq!(a.health.len(), c.readings.len(), "{}", c.name);
        }
    }

    #[test]
    fn health_counts_consecutive_failures_and_resets() {
        let readings = vec![("s1-b".to_string(), failed())];
        let a = assess(&readings, Some(&health(2)), None, false);
        assert_eq!(a.health["s1-b"].number_of_failures, Some(3));
        let readings = vec![("s1-b".to_string(), ok(1.0, true))];
        let a = assess(&readings, Some(&health(2)), None, false);
        assert_eq!(a.health["s1-b"].number_of_failures, Some(0));
        assert_eq!(a.health["s1-b"].status, Some(HealthStatusType::Happy));
        assert_eq!(a.active_metrics, vec!["s1-b".to_string()]);
    }

    /// `force-activation` as KEDA reads it (`getBoolAnnotation`: absent false, Go booleans,
    /// anything else true): active whatever the triggers say, so a target at zero is
    /// activated and one running is never deactivated.
    #[test]
    fn force_activation_makes_the_target_active() {
        let inactive = vec![("s0-a".to_string(), ok(0.0, false))];
        let cases = [
            (None, false),
            (Some("true"), true),
            (Some("1"), true),
            (Some("yes"), true),
            (Some("false"), false),
            (Some("F"), false),
        ];
        for (value, forced) in cases {
            let ann: BTreeMap<String, String> = value
                .map(|v| (annotations::FORCE_ACTIVATION.to_string(), v.to_string()))
                .into_iter()
                .collect();
            let a = assess(&inactive, None, None, false).forced_by(Some(&ann));
            assert_eq!((a.active, a.forced), (forced, forced), "{value:?}");
            assert!(a.active_metrics.is_empty(), "no trigger made it active");
            let now = Timestamp::now();
            let so = so(serde_json::json!({}), serde_json::json!({}));
            let want = if forced {
                swell_scaling::Decision::Activate { to: 1 }
            } else {
                swell_scaling::Decision::Idle
            };
            assert_eq!(swell_scaling::decide(&loop_facts(&so, 0, &a, now)), want);
        }
    }

    #[test]
    fn the_name_label_is_added_or_corrected_once() {
        let label = annotations::labels::SCALED_OBJECT_NAME;
        let mut o = so(serde_json::json!({}), serde_json::json!({}));
        let want = serde_json::json!({"metadata": {"labels": {label: "so"}}});
        assert_eq!(name_label_patch(&o), Some(want.clone()));
        o.metadata.labels = Some([(label.to_string(), "other".to_string())].into());
        assert_eq!(name_label_patch(&o), Some(want));
        o.metadata.labels = Some([(label.to_string(), "so".to_string())].into());
        assert_eq!(name_label_patch(&o), None);
    }

    #[test]
    fn loop_facts_read_the_spec_and_fallback() {
        let now = Timestamp::now();
        let spec = serde_json::json!({"minReplicaCount": 1, "maxReplicaCount": 7,
            "cooldownPeriod": 45, "fallback": {"failureThreshold": 2, "replicas": 4}});
        let so = so(serde_json::json!({}), spec);
        let a = Assessment {
            active: true,
            ..Default::default()
        };
        let f = loop_facts(&so, 3, &a, now);
        assert_eq!((f.current, f.replicas.min, f.replicas.max), (3, 1, 7));
        assert!(f.active && !f.error && f.fallback_configured);
        assert_eq!(f.cooldown, SignedDuration::from_secs(45));
        assert_eq!(f.created, now, "no creation time: now");
        assert_eq!(fallback_threshold(&so), Some(2));
    }
}
