//! A ScaledJob's conditions and events, decided from typed outcomes. No client required.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use swell_api::conditions::{self, paused as pz, ready as rd};
use swell_api::status::{
    active_condition, find_condition, initial_conditions, set_condition, unpause,
};
use swell_api::{Condition, ConditionStatus, ScaledJobStatus, TriggerActivityStatus, events};

use crate::context::Note;

fn conditions_of(s: &mut ScaledJobStatus) -> &mut Vec<Condition> {
    s.conditions.get_or_insert_with(initial_conditions)
}

fn ready_condition(status: ConditionStatus, reason: &str, message: &str) -> Condition {
    Condition::new(conditions::READY, status, reason, message)
}

pub fn check_failed(s: &mut ScaledJobStatus, message: &str) {
    let c = ready_condition(ConditionStatus::False, rd::SCALED_JOB_CHECK_FAILED, message);
    set_condition(conditions_of(s), c);
}

pub fn paused(s: &mut ScaledJobStatus) {
    set_condition(
        conditions_of(s),
        Condition::new(
            conditions::PAUSED,
            ConditionStatus::True,
            pz::SCALED_JOB_PAUSED,
            pz::SCALED_JOB_PAUSED_MESSAGE,
        ),
    );
    s.paused = Some("true".into());
}

/// Whether the status says Paused (KEDA then records `ScaledJobUnpaused` on resuming).
pub fn is_paused(s: Option<&ScaledJobStatus>) -> bool {
    let conds = s.and_then(|s| s.conditions.as_deref());
    find_condition(conds, conditions::PAUSED).is_some_and(Condition::is_true)
}

/// The status fields a successful reconcile writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    pub triggers_types: String,
    pub auth_types: Option<String>,
    pub external: Vec<String>,
}

/// Ready (unless it already is), unpaused, and the trigger fields.
pub fn applied(s: &mut ScaledJobStatus, a: &Applied) {
    let conds = conditions_of(s);
    let ready = find_condition(Some(conds.as_slice()), conditions::READY)
        .is_some_and(|c| c.is_true() && c.reason.as_deref() == Some(rd::SCALED_JOB_READY));
    if !ready {
        let c = ready_condition(
            ConditionStatus::True,
            rd::SCALED_JOB_READY,
            rd::SCALED_JOB_READY_MESSAGE,
        );
        set_condition(conds, c);
    }
    unpause(
        conds,
        pz::SCALED_JOB_UNPAUSED,
        pz::SCALED_JOB_UNPAUSED_MESSAGE,
    );
    s.paused = None;
    s.triggers_types = Some(a.triggers_types.clone());
    s.authentications_types.clone_from(&a.auth_types);
    s.external_metric_names = (!a.external.is_empty()).then(|| a.external.clone());
}

/// What one poll found, for status.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Polled {
    pub active: bool,
    /// Triggers polled, and how many of them failed.
    pub polled: usize,
    pub failed: usize,
    pub activity: BTreeMap<String, TriggerActivityStatus>,
}

/// After one poll: Active, Ready (from how many triggers failed), last active time and
/// trigger activity.
pub fn after_poll(s: &mut ScaledJobStatus, p: &Polled, now: &Time) {
    let conds = conditions_of(s);
    set_condition(conds, active_condition(p.active, false));
    let ready = if p.polled > 0 && p.failed == p.polled {
        ready_condition(
            ConditionStatus::False,
            rd::TRIGGER_ERROR,
            rd::SCALED_JOB_TRIGGER_ERROR_MESSAGE,
        )
    } else if p.failed > 0 {
        ready_condition(
            ConditionStatus::Unknown,
            rd::PARTIAL_TRIGGER_ERROR,
            rd::SCALED_JOB_PARTIAL_TRIGGER_ERROR_MESSAGE,
        )
    } else {
        ready_condition(
            ConditionStatus::True,
            rd::SCALED_JOB_READY,
            rd::SCALED_JOB_READY_MESSAGE,
        )
    };
    set_condition(conds, ready);
    if p.active {
        s.last_active_time = Some(now.clone());
    }
    s.triggers_activity = (!p.activity.is_empty()).then(|| p.activity.clone());
}

/// `ScaledJobActive` / `ScaledJobInactive` when activity changed since `was_active`.
pub fn activity_note(was_active: Option<bool>, active: bool) -> Option<Note> {
    if was_active == Some(active) {
        return None;
    }
    Some(if active {
        Note::normal(
            events::SCALED_JOB_ACTIVE,
            "ScaledJob is active: triggers have load",
        )
    } else {
        Note::normal(
            events::SCALED_JOB_INACTIVE,
            "ScaledJob is inactive: no trigger has load",
        )
    })
}

/// Events for the Jobs a poll created, and the first create that failed.
pub fn created_notes(created: i64, failure: Option<&str>) -> Vec<Note> {
    let mut notes = Vec::new();
    if created > 0 {
        notes.push(Note::normal(
            events::KEDA_JOBS_CREATED,
            format!("Created {created} jobs"),
        ));
    }
    if let Some(e) = failure {
        notes.push(Note::warning(
            events::KEDA_JOB_CREATE_FAILED,
            format!("Failed to create a Job from spec.jobTargetRef: {e}"),
        ));
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready_reason(s: &ScaledJobStatus) -> Option<String> {
        find_condition(s.conditions.as_deref(), conditions::READY).and_then(|c| c.reason.clone())
    }

    #[test]
    fn ready_follows_how_many_triggers_failed() {
        let now = Time(jiff::Timestamp::now());
        let cases = [
            (2, 0, rd::SCALED_JOB_READY),
            (2, 1, rd::PARTIAL_TRIGGER_ERROR),
            (2, 2, rd::TRIGGER_ERROR),
            (0, 0, rd::SCALED_JOB_READY),
        ];
        for (polled, failed, reason) in cases {
            let mut s = ScaledJobStatus::default();
            let p = Polled {
                polled,
                failed,
                ..Default::default()
            };
            after_poll(&mut s, &p, &now);
            assert_eq!(
                ready_reason(&s).as_deref(),
                Some(reason),
                "{polled}/{failed}"
            );
            assert!(s.last_active_time.is_none());
        }
    }

    #[test]
    fn check_failed_pause_and_apply_transitions() {
        let mut s = ScaledJobStatus::default();
        check_failed(&mut s, "spec.jobTargetRef is not a valid Job: …");
        assert_eq!(
            ready_reason(&s).as_deref(),
            Some(rd::SCALED_JOB_CHECK_FAILED)
        );
        paused(&mut s);
        assert_eq!(s.paused.as_deref(), Some("true"));
        let a = Applied {
            triggers_types: "cron".into(),
            auth_types: Some("ta".into()),
            external: vec!["s0-cron".into()],
        };
        applied(&mut s, &a);
        assert_eq!(ready_reason(&s).as_deref(), Some(rd::SCALED_JOB_READY));
        let p = find_condition(s.conditions.as_deref(), conditions::PAUSED).unwrap();
        assert_eq!(p.reason.as_deref(), Some(pz::SCALED_JOB_UNPAUSED));
        assert_eq!(s.paused, None);
        assert_eq!(s.authentications_types.as_deref(), Some("ta"));
    }

    #[test]
    fn activity_and_creation_events() {
        let reason = |n: Option<Note>| n.map(|n| n.reason);
        assert_eq!(
            reason(activity_note(None, false)),
            Some(events::SCALED_JOB_INACTIVE)
        );
        assert_eq!(
            reason(activity_note(Some(false), true)),
            Some(events::SCALED_JOB_ACTIVE)
        );
        assert_eq!(reason(activity_note(Some(true), true)), None);
        assert!(created_notes(0, None).is_empty());
        let notes = created_notes(2, Some("quota exceeded"));
        assert_eq!(notes[0].message, "Created 2 jobs");
        assert!(notes[1].warning && notes[1].message.ends_with("quota exceeded"));
    }
}
