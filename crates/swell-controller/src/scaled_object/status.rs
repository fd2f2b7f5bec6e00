//! A ScaledObject's conditions and events, decided from typed outcomes. No client required:
//! the reconciler and the scale loop both write status through these functions, so `Ready`
//! has one definition ([`ready`]) whoever writes it.

use jiff::Timestamp;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use swell_api::conditions::{self, fallback as fb, paused as pz, ready as rd};
use swell_api::status::{
    active_condition, find_condition, initial_conditions, set_condition, unpause,
};
use swell_api::{Condition, ConditionStatus, ScaledObjectStatus, events};
use swell_scaling::Decision;

use crate::context::Note;
use crate::loop_state::TriggerVerdict;
use crate::scaled_object::plan::{Applied, Assessment};

fn conditions_of(s: &mut ScaledObjectStatus) -> &mut Vec<Condition> {
    s.conditions.get_or_insert_with(initial_conditions)
}

fn is_true(s: &ScaledObjectStatus, type_: &str) -> bool {
    find_condition(s.conditions.as_deref(), type_).is_some_and(Condition::is_true)
}

/// `Ready` of a ScaledObject whose HPA is in place, from what its loop last concluded.
pub fn ready(verdict: Option<&TriggerVerdict>) -> Condition {
    match verdict {
        None | Some(TriggerVerdict::Healthy) => Condition::new(
            conditions::READY,
            ConditionStatus::True,
            rd::SCALED_OBJECT_READY,
            rd::SCALED_OBJECT_READY_MESSAGE,
        ),
        Some(TriggerVerdict::Partial(m)) => Condition::new(
            conditions::READY,
            ConditionStatus::Unknown,
            rd::PARTIAL_TRIGGER_ERROR,
            m,
        ),
        Some(TriggerVerdict::AllFailed(m)) => Condition::new(
            conditions::READY,
            ConditionStatus::False,
            rd::TRIGGER_ERROR,
            m,
        ),
    }
}

/// The check failed: not ready, with the message that names the problem.
pub fn check_failed(s: &mut ScaledObjectStatus, message: &str) {
    set_condition(
        conditions_of(s),
        Condition::new(
            conditions::READY,
            ConditionStatus::False,
            rd::SCALED_OBJECT_CHECK_FAILED,
            message,
        ),
    );
}

/// The HPA is in place and the loop (re)starts.
pub fn applied(s: &mut ScaledObjectStatus, a: &Applied) {
    let conds = conditions_of(s);
    set_condition(conds, ready(a.verdict.as_ref()));
    ready_follows_hpa(conds);
    if a.direction_paused {
        set_condition(conds, paused_condition());
    } else {
        unpause(
            conds,
            pz::SCALED_OBJECT_UNPAUSED,
            pz::SCALED_OBJECT_UNPAUSED_MESSAGE,
        );
    }
    let some = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    s.paused_replica_count = None;
    s.scale_target_kind = Some(a.target_kind.clone());
    s.scale_target_gvkr = Some(a.gvkr.clone());
    s.original_replica_count = a.original_replicas;
    s.hpa_name = Some(a.hpa_name.clone());
    s.external_metric_names = some(&a.external);
    s.resource_metric_names = some(&a.resource);
    s.triggers_types = Some(a.triggers_types.clone());
    s.authentications_types.clone_from(&a.auth_types);
    s.composite_scaler_name.clone_from(&a.composite_scaler_name);
}

/// Events for a successful reconcile, from the status it started from.
pub fn applied_notes(before: &ScaledObjectStatus, direction_paused: bool) -> Vec<Note> {
    let mut notes = Vec::new();
    let was_paused = is_true(before, conditions::PAUSED);
    if direction_paused && !was_paused {
        notes.push(paused_note());
    } else if was_paused && !direction_paused {
        notes.push(Note::normal(
            events::SCALED_OBJECT_UNPAUSED,
            "ScaledObject was unpaused",
        ));
    }
    if !is_true(before, conditions::READY) {
        notes.push(Note::normal(
            events::SCALED_OBJECT_READY,
            "ScaledObject is ready for scaling",
        ));
    }
    notes
}

/// Events for a scale loop started on new scalers (not for a rebuild with new credentials).
pub fn started_notes(trigger_types: &[&str]) -> Vec<Note> {
    let mut notes = vec![Note::normal(
        events::KEDA_SCALERS_STARTED,
        "Started scalers watch",
    )];
    notes.extend(trigger_types.iter().map(|t| {
        Note::normal(
            events::KEDA_SCALERS_STARTED,
            format!("Scaler {t} is built."),
        )
    }));
    notes
}

fn paused_condition() -> Condition {
    Condition::new(
        conditions::PAUSED,
        ConditionStatus::True,
        pz::SCALED_OBJECT_PAUSED,
        pz::SCALED_OBJECT_PAUSED_MESSAGE,
    )
}

/// The event for a ScaledObject becoming paused (wholly or in one direction).
pub fn paused_note() -> Note {
    Note::normal(events::SCALED_OBJECT_PAUSED, "ScaledObject was paused")
}

/// Paused: the HPA is gone, the target held at `replicas` when given.
pub fn paused(s: &mut ScaledObjectStatus, replicas: Option<i32>, kind: Option<String>) {
    set_condition(conditions_of(s), paused_condition());
    s.paused_replica_count = replicas;
    if kind.is_some() {
        s.scale_target_kind = kind;
    }
}

/// The loop could not read the target's replicas.
pub fn replicas_unknown(s: &mut ScaledObjectStatus, message: &str) {
    set_condition(
        conditions_of(s),
        Condition::new(
            conditions::READY,
            ConditionStatus::False,
            rd::ERROR_GETTING_CURRENT_REPLICAS,
            message,
        ),
    );
}

/// After one poll: Active, Fallback, Ready, last active time, health and activity.
pub fn after_poll(s: &mut ScaledObjectStatus, a: &Assessment, decision: Decision, now: Timestamp) {
    let conds = conditions_of(s);
    let cooling = decision == Decision::CoolingDown;
    let active = if a.forced {
        use conditions::active as act;
        let (reason, message) = (act::SCALER_ACTIVE, act::SCALER_FORCED_MESSAGE);
        Condition::new(conditions::ACTIVE, ConditionStatus::True, reason, message)
    } else {
        active_condition(a.active, cooling)
    };
    set_condition(conds, active);
    let fallback = if a.in_fallback {
        (
            ConditionStatus::True,
            fb::FALLBACK_EXISTS,
            fb::FALLBACK_EXISTS_MESSAGE,
        )
    } else {
        (
            ConditionStatus::False,
            fb::NO_FALLBACK_FOUND,
            fb::NO_FALLBACK_FOUND_MESSAGE,
        )
    };
    set_condition(
        conds,
        Condition::new(conditions::FALLBACK, fallback.0, fallback.1, fallback.2),
    );
    set_condition(conds, ready(Some(&a.verdict())));
    // As KEDA: an activation that paused-scale-out holds back is no activity yet.
    if a.active && decision != Decision::ScaleOutPaused {
        s.last_active_time = Some(Time(now));
    }
    s.health = (!a.health.is_empty()).then(|| a.health.clone());
    s.triggers_activity = (!a.activity.is_empty()).then(|| a.activity.clone());
}

/// KEDA's HPAActive (2.20.2): the HPA's own `ScalingActive`, mirrored. True while it scales,
/// and while it is idle by design at zero replicas (`ScalingDisabled`); False with the HPA's
/// reason (e.g. `FailedGetExternalMetric`) when it cannot. Ready is not touched: it says
/// whether the ScaledObject is valid. `None` (no HPA cached yet, or no ScalingActive
/// reported yet) leaves the last observed state in place.
pub fn hpa_active(hpa: Option<&HorizontalPodAutoscaler>) -> Option<Condition> {
    use conditions::hpa_active as ha;
    let conds = hpa?.status.as_ref()?.conditions.as_ref()?;
    let c = conds.iter().find(|c| c.type_ == "ScalingActive")?;
    let message = c.message.clone().unwrap_or_default();
    let (status, reason, message) = match (c.status.as_str(), c.reason.as_deref()) {
        ("True", _) => (
            ConditionStatus::True,
            ha::HPA_ACTIVE.to_string(),
            "HPA is actively scaling".to_string(),
        ),
        (_, Some(ha::SCALING_DISABLED)) => (
            ConditionStatus::True,
            ha::SCALING_DISABLED.to_string(),
            message,
        ),
        (_, reason) => (
            ConditionStatus::False,
            reason
                .filter(|r| !r.is_empty())
                .unwrap_or(ha::HPA_METRICS_UNAVAILABLE)
                .to_string(),
            format!("HPA is not actively scaling: {message}"),
        ),
    };
    Some(Condition::new(
        conditions::HPA_ACTIVE,
        status,
        &reason,
        &message,
    ))
}

/// Sets HPAActive when [`hpa_active`] observed it.
pub fn set_hpa_active(s: &mut ScaledObjectStatus, condition: Option<Condition>) {
    if let Some(c) = condition {
        set_condition(conditions_of(s), c);
    }
    ready_follows_hpa(conditions_of(s));
}

/// Ready tells the truth about scaling (keda#7649): while the triggers are healthy but the
/// HPA says it cannot scale (HPAActive False, e.g. `FailedGetExternalMetric` when no metric
/// reaches it), Ready is False with the HPA's reason and message. A trigger failure keeps
/// its own Ready, which names the trigger.
fn ready_follows_hpa(conds: &mut Vec<Condition>) {
    let Some(hpa) = find_condition(Some(conds.as_slice()), conditions::HPA_ACTIVE)
        .filter(|c| c.is_false())
        .cloned()
    else {
        return;
    };
    let healthy = find_condition(Some(conds.as_slice()), conditions::READY)
        .is_some_and(|r| r.reason.as_deref() == Some(rd::SCALED_OBJECT_READY));
    if healthy {
        let reason = hpa.reason.as_deref().unwrap_or_default();
        let message = hpa.message.as_deref().unwrap_or_default();
        let c = Condition::new(conditions::READY, ConditionStatus::False, reason, message);
        set_condition(conds, c);
    }
}

/// KEDA's `KEDAScalerInfo` Warning: a scaler accepted its parameters but noticed something
/// (an unknown metadata key, with the keys it knows; a deprecated parameter).
pub fn scaler_info(notice: String) -> Note {
    Note::warning(events::KEDA_SCALER_INFO, notice)
}

/// The event for entering or leaving fallback, when that changed.
pub fn fallback_note(was_in_fallback: bool, a: &Assessment) -> Option<Note> {
    match (was_in_fallback, a.in_fallback) {
        (false, true) => Some(Note::warning(
            events::SCALED_OBJECT_FALLBACK_ACTIVATED,
            "At least one trigger is falling back on this scaled object",
        )),
        (true, false) => Some(Note::normal(
            events::SCALED_OBJECT_FALLBACK_DEACTIVATED,
            "No fallbacks are active on this scaled object",
        )),
        _ => None,
    }
}

/// What a scale the loop attempted came to.
pub struct Scaled<'a> {
    /// `apps/v1.Deployment` and `namespace/name`.
    pub kind: &'a str,
    pub target: &'a str,
    pub from: i32,
    pub to: i32,
    /// The metrics that made it active.
    pub by: &'a [String],
    /// Activated by `autoscaling.keda.sh/force-activation`.
    pub forced: bool,
    /// The error's message when `/scale` refused.
    pub error: Option<String>,
}

/// The event for a scale: activated (from zero or up to min) or deactivated, or its failure.
pub fn scale_note(up: bool, s: &Scaled<'_>) -> Note {
    let Scaled {
        kind,
        target,
        from,
        to,
        ..
    } = s;
    match (up, &s.error) {
        (true, None) => {
            let by = if s.forced {
                ", caused by forced activation annotation".to_string()
            } else if s.by.is_empty() {
                String::new()
            } else {
                format!(", triggered by {}", s.by.join(","))
            };
            Note::normal(
                events::KEDA_SCALE_TARGET_ACTIVATED,
                format!("Scaled {kind} {target} from {from} to {to}{by}"),
            )
        }
        (true, Some(e)) => Note::warning(
            events::KEDA_SCALE_TARGET_ACTIVATION_FAILED,
            format!("Failed to scale {kind} {target} from {from} to {to}: {e}"),
        ),
        (false, None) => Note::normal(
            events::KEDA_SCALE_TARGET_DEACTIVATED,
            format!("Deactivated {kind} {target} from {from} to {to}"),
        ),
        (false, Some(e)) => Note::warning(
            events::KEDA_SCALE_TARGET_DEACTIVATION_FAILED,
            format!("Failed to deactivate {kind} {target}: {e}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use swell_api::annotations;
    use swell_api::conditions::active as act;

    fn ready_of(s: &ScaledObjectStatus) -> (ConditionStatus, String, String) {
        let c = find_condition(s.conditions.as_deref(), conditions::READY).unwrap();
        (
            c.status.clone(),
            c.reason.clone().unwrap_or_default(),
            c.message.clone().unwrap_or_default(),
        )
    }

    #[test]
    fn ready_follows_the_loops_verdict() {
        let cases = [
            (None, ConditionStatus::True, rd::SCALED_OBJECT_READY),
            (
                Some(TriggerVerdict::Healthy),
                ConditionStatus::True,
                rd::SCALED_OBJECT_READY,
            ),
            (
                Some(TriggerVerdict::Partial("s1: down".into())),
                ConditionStatus::Unknown,
                rd::PARTIAL_TRIGGER_ERROR,
            ),
            (
                Some(TriggerVerdict::AllFailed("s0: down".into())),
                ConditionStatus::False,
                rd::TRIGGER_ERROR,
            ),
        ];
        for (verdict, status, reason) in cases {
            let c = ready(verdict.as_ref());
            assert_eq!(c.status, status, "{verdict:?}");
            assert_eq!(c.reason.as_deref(), Some(reason), "{verdict:?}");
        }
    }

    fn applied_fields() -> Applied {
        Applied {
            target_kind: "apps/v1.Deployment".into(),
            gvkr: Default::default(),
            original_replicas: Some(2),
            hpa_name: "keda-hpa-so".into(),
            external: vec!["s0-cron".into()],
            resource: vec![],
            triggers_types: "cron".into(),
            auth_types: None,
            verdict: None,
            direction_paused: false,
            composite_scaler_name: None,
        }
    }

    #[test]
    fn check_failed_then_applied_then_trigger_error() {
        let mut s = ScaledObjectStatus::default();
        check_failed(&mut s, "scaleTargetRef: Deployment ns/app not found");
        let (st, reason, msg) = ready_of(&s);
        assert_eq!(
            (st, reason.as_str()),
            (ConditionStatus::False, rd::SCALED_OBJECT_CHECK_FAILED)
        );
        assert!(msg.contains("not found"));

        let mut a = applied_fields();
        applied(&mut s, &a);
        assert_eq!(ready_of(&s).1, rd::SCALED_OBJECT_READY);
        assert_eq!(s.hpa_name.as_deref(), Some("keda-hpa-so"));
        assert_eq!(s.external_metric_names, Some(vec!["s0-cron".to_string()]));
        assert_eq!(s.resource_metric_names, None);

        // A rebuild while the loop reports failures keeps its verdict, not Ready=True.
        a.verdict = Some(TriggerVerdict::AllFailed("s0-cron: down".into()));
        applied(&mut s, &a);
        assert_eq!(
            ready_of(&s),
            (
                ConditionStatus::False,
                rd::TRIGGER_ERROR.to_string(),
                "s0-cron: down".to_string()
            )
        );
    }

    #[test]
    fn pause_and_unpause_transitions() {
        let mut s = ScaledObjectStatus::default();
        assert_eq!(
            applied_notes(&s, false)
                .iter()
                .map(|n| n.reason)
                .collect::<Vec<_>>(),
            vec![events::SCALED_OBJECT_READY],
            "first apply: Ready"
        );
        paused(&mut s, Some(0), Some("apps/v1.Deployment".into()));
        assert!(is_true(&s, conditions::PAUSED));
        assert_eq!(s.paused_replica_count, Some(0));
        let notes = applied_notes(&s, false);
        applied(&mut s, &applied_fields());
        assert!(!is_true(&s, conditions::PAUSED));
        assert_eq!(s.paused_replica_count, None);
        let reasons: Vec<_> = notes.iter().map(|n| n.reason).collect();
        assert_eq!(
            reasons,
            vec![events::SCALED_OBJECT_UNPAUSED, events::SCALED_OBJECT_READY]
        );
        assert!(
            applied_notes(&s, false).is_empty(),
            "ready and unpaused: no event"
        );
    }

    #[test]
    fn a_direction_pause_is_paused_with_the_loop_running() {
        let reasons = |notes: Vec<Note>| notes.iter().map(|n| n.reason).collect::<Vec<_>>();
        let mut s = ScaledObjectStatus::default();
        applied(&mut s, &applied_fields());
        let a = Applied {
            direction_paused: true,
            ..applied_fields()
        };
        let notes = applied_notes(&s, true);
        applied(&mut s, &a);
        assert!(is_true(&s, conditions::PAUSED) && is_true(&s, conditions::READY));
        assert_eq!(reasons(notes), vec![events::SCALED_OBJECT_PAUSED]);
        assert!(applied_notes(&s, true).is_empty(), "still paused: no event");
        // The annotation removed: unpaused, with its event.
        let notes = applied_notes(&s, false);
        applied(&mut s, &applied_fields());
        assert!(!is_true(&s, conditions::PAUSED));
        assert_eq!(reasons(notes), vec![events::SCALED_OBJECT_UNPAUSED]);
    }

    #[test]
    fn after_poll_sets_active_fallback_and_ready() {
        let now = Timestamp::now();
        let cases = [
            (true, false, Decision::KeepActive, act::SCALER_ACTIVE, true),
            (
                false,
                false,
                Decision::CoolingDown,
                act::SCALER_COOLDOWN,
                false,
            ),
            (false, false, Decision::Idle, act::SCALER_NOT_ACTIVE, false),
            (true, true, Decision::KeepActive, act::SCALER_ACTIVE, true),
        ];
        // Forced activation: Active=True with KEDA's message, and the activity stamped.
        let mut s = ScaledObjectStatus::default();
        let a = Assessment::default().forced_by(Some(
            &[(
                annotations::FORCE_ACTIVATION.to_string(),
                "true".to_string(),
            )]
            .into(),
        ));
        after_poll(&mut s, &a, Decision::Activate { to: 1 }, now);
        let c = find_condition(s.conditions.as_deref(), conditions::ACTIVE).unwrap();
        assert_eq!(c.status, ConditionStatus::True);
        assert_eq!(c.message.as_deref(), Some(act::SCALER_FORCED_MESSAGE));
        assert!(s.last_active_time.is_some());
        for (active, in_fallback, decision, reason, stamped) in cases {
            let mut s = ScaledObjectStatus::default();
            let a = Assessment {
                active,
                in_fallback,
                ..Default::default()
            };
            after_poll(&mut s, &a, decision, now);
            let c = find_condition(s.conditions.as_deref(), conditions::ACTIVE).unwrap();
            assert_eq!(c.reason.as_deref(), Some(reason), "{decision:?}");
            assert_eq!(is_true(&s, conditions::FALLBACK), in_fallback);
            assert_eq!(s.last_active_time.is_some(), stamped);
            assert_eq!(ready_of(&s).1, rd::SCALED_OBJECT_READY);
        }
    }

    #[test]
    fn fallback_events_only_on_change() {
        let on = Assessment {
            in_fallback: true,
            ..Default::default()
        };
        let off = Assessment::default();
        let f = |was, a| fallback_note(was, a).map(|n: Note| (n.warning, n.reason));
        assert_eq!(
            f(false, &on),
            Some((true, events::SCALED_OBJECT_FALLBACK_ACTIVATED))
        );
        assert_eq!(
            f(true, &off),
            Some((false, events::SCALED_OBJECT_FALLBACK_DEACTIVATED))
        );
        assert_eq!(f(true, &on), None);
        assert_eq!(f(false, &off), None);
    }

    #[test]
    fn scale_events_say_what_was_scaled_and_why() {
        let by = vec!["s0-aws-sqs-orders".to_string()];
        let scaled = |error: Option<&str>| Scaled {
            kind: "apps/v1.Deployment",
            target: "ns/app",
            from: 0,
            to: 1,
            by: &by,
            forced: false,
            error: error.map(str::to_string),
        };
        let n = scale_note(true, &scaled(None));
        assert_eq!(
            (n.reason, n.message.as_str()),
            (
                events::KEDA_SCALE_TARGET_ACTIVATED,
                "Scaled apps/v1.Deployment ns/app from 0 to 1, triggered by s0-aws-sqs-orders"
            )
        );
        let forced = Scaled {
            forced: true,
            ..scaled(None)
        };
        assert_eq!(
            scale_note(true, &forced).message,
            "Scaled apps/v1.Deployment ns/app from 0 to 1, caused by forced activation annotation"
        );
        let n = scale_note(true, &scaled(Some("forbidden")));
        assert!(n.warning && n.reason == events::KEDA_SCALE_TARGET_ACTIVATION_FAILED);
        assert!(n.message.ends_with(": forbidden"), "{}", n.message);
        let n = scale_note(false, &scaled(None));
        assert_eq!(n.reason, events::KEDA_SCALE_TARGET_DEACTIVATED);
        let n = scale_note(false, &scaled(Some("gone")));
        assert_eq!(
            n.message,
            "Failed to deactivate apps/v1.Deployment ns/app: gone"
        );
        assert_eq!(
            started_notes(&["cron", "kafka"])
                .iter()
                .map(|n| n.message.as_str())
                .collect::<Vec<_>>(),
            vec![
                "Started scalers watch",
                "Scaler cron is built.",
                "Scaler kafka is built."
            ]
        );
    }

    #[test]
    fn hpa_active_mirrors_the_hpas_scaling_active() {
        use conditions::hpa_active as ha;
        let hpa = |conds: serde_json::Value| -> HorizontalPodAutoscaler {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "keda-hpa-so"},
                "spec": {"maxReplicas": 3, "scaleTargetRef": {"kind": "Deployment", "name": "app"}},
                "status": {"currentReplicas": 1, "desiredReplicas": 1, "conditions": conds}
            }))
            .unwrap()
        };
        let active = |status: &str, reason: &str, message: &str| {
            serde_json::json!([{"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale"},
                {"type": "ScalingActive", "status": status, "reason": reason, "message": message}])
        };
        use ConditionStatus::{False, True};
        let disabled = "scaling is disabled since the replica count of the target is zero";
        // (the HPA's ScalingActive status, reason, message) → HPAActive.
        let cases = [
            (
                ("True", "ValidMetricFound", ""),
                (True, ha::HPA_ACTIVE, "HPA is actively scaling".to_string()),
            ),
            (
                ("False", ha::SCALING_DISABLED, disabled),
                (True, ha::SCALING_DISABLED, disabled.to_string()),
            ),
            (
                (
                    "False",
                    "FailedGetExternalMetric",
                    "unable to get external metric",
                ),
                (
                    False,
                    "FailedGetExternalMetric",
                    "HPA is not actively scaling: unable to get external metric".to_string(),
                ),
            ),
            (
                ("False", "", "no reason"),
                (
                    False,
                    ha::HPA_METRICS_UNAVAILABLE,
                    "HPA is not actively scaling: no reason".to_string(),
                ),
            ),
        ];
        for ((status, reason, message), (want_status, want_reason, want_message)) in cases {
            let got = hpa_active(Some(&hpa(active(status, reason, message)))).unwrap();
            assert_eq!(got.type_, conditions::HPA_ACTIVE);
            assert_eq!(
                (got.status, got.reason.as_deref(), got.message.as_deref()),
                (want_status, Some(want_reason), Some(want_message.as_str())),
                "{reason}"
            );
        }
        // Not observed: left as it was.
        assert_eq!(hpa_active(None), None);
        assert_eq!(
            hpa_active(Some(&hpa(
                serde_json::json!([{"type": "AbleToScale", "status": "True"}])
            ))),
            None
        );
        let mut s = ScaledObjectStatus::default();
        set_hpa_active(
            &mut s,
            hpa_active(Some(&hpa(active("False", "FailedGetExternalMetric", "x")))),
        );
        set_hpa_active(&mut s, None);
        let c = find_condition(s.conditions.as_deref(), conditions::HPA_ACTIVE).unwrap();
        assert_eq!(
            c.status,
            ConditionStatus::False,
            "kept while the HPA cannot be observed"
        );
    }

    /// keda#7649: Ready is False with the HPA's words while the HPA cannot scale and the
    /// triggers are fine; it recovers with the HPA; a trigger failure keeps its own Ready.
    #[test]
    fn ready_follows_an_hpa_that_cannot_scale() {
        use ConditionStatus::{False, True, Unknown};
        let hpa = |status: ConditionStatus, reason: &str| {
            Condition::new(
                conditions::HPA_ACTIVE,
                status,
                reason,
                "HPA is not actively scaling: x",
            )
        };
        let healthy = Assessment::default();
        let partial = Assessment {
            error: true,
            errors: vec!["s0-x: down".into()],
            ..Assessment::default()
        };
        // (this poll, HPAActive) → Ready (status, reason)
        let cases = [
            (
                &healthy,
                hpa(False, "FailedGetExternalMetric"),
                (False, "FailedGetExternalMetric"),
            ),
            (
                &healthy,
                hpa(True, "HPAActive"),
                (True, rd::SCALED_OBJECT_READY),
            ),
            (
                &healthy,
                hpa(True, "ScalingDisabled"),
                (True, rd::SCALED_OBJECT_READY),
            ),
            (
                &partial,
                hpa(False, "FailedGetExternalMetric"),
                (Unknown, rd::PARTIAL_TRIGGER_ERROR),
            ),
        ];
        for (a, hpa_condition, (status, reason)) in cases {
            let mut s = ScaledObjectStatus::default();
            after_poll(&mut s, a, Decision::Idle, Timestamp::UNIX_EPOCH);
            set_hpa_active(&mut s, Some(hpa_condition.clone()));
            let ready = find_condition(s.conditions.as_deref(), conditions::READY).unwrap();
            assert_eq!(
                (&ready.status, ready.reason.as_deref()),
                (&status, Some(reason)),
                "{hpa_condition:?}"
            );
            // A reconcile in between says the same.
            applied(&mut s, &applied_fields());
            let again = find_condition(s.conditions.as_deref(), conditions::READY).unwrap();
            if a.error {
                continue; // the reconcile's verdict (None here) is not this poll's
            }
            assert_eq!(
                (&again.status, again.reason.as_deref()),
                (&status, Some(reason))
            );
        }
    }
}
