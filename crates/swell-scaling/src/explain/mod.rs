//! `swell explain`: why a ScaledObject's target has the replicas it has, from facts the
//! CLI gathers (the ScaledObject, its HPA, the target's `/scale`, the operator's
//! [`LoopReport`]). [`explain`] is pure: the same facts always give the same sentence.

pub mod hpa;
pub mod report;
mod sentence;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

pub use hpa::{HpaFacts, HpaMath};
pub use report::{HISTORY_LEN, History, LastReading, LoopReport, Point, PollReport, TriggerReport};

/// Everything `swell explain` read, at `now`.
#[derive(Clone, Debug, PartialEq)]
pub struct Facts {
    pub now: Timestamp,
    pub object: ObjectFacts,
    /// The target's `spec.replicas` through `/scale` (`None`: it could not be read).
    pub current: Option<i32>,
    /// The HPA `keda-hpa-<name>`; none while paused or before the first reconcile.
    pub hpa: Option<HpaFacts>,
    /// What the operator said (`None`: it could not be asked, or has no loop for it).
    pub operator: Option<LoopReport>,
}

/// What the ScaledObject's spec, annotations and status say.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObjectFacts {
    pub namespace: String,
    pub name: String,
    pub min: i32,
    pub max: i32,
    pub idle: Option<i32>,
    pub cooldown_seconds: i64,
    pub pause: Pause,
    pub fallback: Option<FallbackSpec>,
    pub triggers: Vec<TriggerSpec>,
    /// `status.lastActiveTime`.
    pub last_active: Option<Timestamp>,
    /// `status.conditions[Fallback]` is True.
    pub fallback_active: bool,
    /// `status.health[metric].numberOfFailures`.
    pub failures: BTreeMap<String, i32>,
    /// `Ready` when it is not True: `reason: message`.
    pub not_ready: Option<String>,
}

/// The pause annotations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pause {
    /// `autoscaling.keda.sh/paused-replicas`.
    pub replicas: Option<i32>,
    /// `autoscaling.keda.sh/paused: "true"`.
    pub paused: bool,
    pub scale_in: bool,
    pub scale_out: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FallbackSpec {
    pub failure_threshold: i32,
    pub replicas: i32,
    /// `static`, `currentReplicas`, …
    pub behavior: String,
}

/// A trigger of the spec: its activation target, found in its metadata.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TriggerSpec {
    pub index: usize,
    pub type_: String,
    /// The metadata key (`activationTargetValue`, `activationLagThreshold`, …) and value.
    pub activation: Option<(String, f64)>,
}

/// KEDA's scalers name every activation threshold `activation…`; unset means 0.
pub fn activation_of(metadata: &BTreeMap<String, String>) -> Option<(String, f64)> {
    metadata
        .iter()
        .filter(|(k, _)| k.starts_with("activation") && !k.ends_with("FromEnv"))
        .find_map(|(k, v)| v.trim().parse::<f64>().ok().map(|v| (k.clone(), v)))
}

/// What the explanation found, for tests and `-o json`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Case {
    Paused,
    Fallback,
    Failing,
    Activating,
    ScaleOutPaused,
    ScaleInPaused,
    Cooldown,
    Deactivating,
    Inactive,
    ScalingUp,
    ScalingDown,
    Steady,
    Tolerance,
    Stabilization,
    MaxReplicas,
    MinReplicas,
    ScalingDisabled,
    NoHpa,
    NoMetrics,
    Unknown,
}

/// One trigger, as explained.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TriggerLine {
    pub index: usize,
    #[serde(rename = "type")]
    pub type_: String,
    pub metric: String,
    pub metric_type: String,
    pub value: Option<f64>,
    pub error: Option<String>,
    pub target: Option<f64>,
    pub activation: Option<f64>,
    pub activation_key: Option<String>,
    pub active: Option<bool>,
    pub failures: i32,
}

/// The cooldown, while an inactive target waits to be deactivated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cooldown {
    pub last_active: Option<Timestamp>,
    pub ends: Timestamp,
    pub remaining_seconds: i64,
    /// Where deactivation takes the target (idle replicas or 0).
    pub to: i32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    pub namespace: String,
    pub name: String,
    pub case: Case,
    /// The N of the sentence: where the target is, or is being taken.
    pub replicas: Option<i32>,
    /// "N replicas because …".
    pub sentence: String,
    pub current: Option<i32>,
    pub active: Option<bool>,
    pub triggers: Vec<TriggerLine>,
    pub hpa: Option<HpaMath>,
    pub cooldown: Option<Cooldown>,
    /// Things worth knowing that the sentence leaves out.
    pub notes: Vec<String>,
}

/// Joins the operator's triggers with the spec's activation targets and failure counts.
fn trigger_lines(f: &Facts) -> Vec<TriggerLine> {
    let Some(op) = &f.operator else {
        return Vec::new();
    };
    op.triggers
        .iter()
        .map(|t| {
            let spec = f.object.triggers.iter().find(|s| s.index == t.index);
            let activation = spec.and_then(|s| s.activation.clone());
            let last = t.last.clone().unwrap_or_default();
            let failures = op
                .last_poll
                .as_ref()
                .and_then(|p| p.failures.get(&t.metric).copied())
                .or_else(|| f.object.failures.get(&t.metric).copied())
                .unwrap_or(0);
            TriggerLine {
                index: t.index,
                type_: t.type_.clone(),
                metric: t.metric.clone(),
                metric_type: t.metric_type.clone(),
                value: last.value,
                error: last.error,
                target: t.target,
                activation_key: activation.as_ref().map(|a| a.0.clone()),
                activation: activation.map(|a| a.1).or(t.polled.then_some(0.0)),
                active: last.active,
                failures,
            }
        })
        .collect()
}

/// Where deactivation takes the target.
fn deactivation_target(o: &ObjectFacts) -> i32 {
    o.idle.unwrap_or(0)
}

/// The cooldown's state, when the target is above where deactivation would take it.
fn cooldown(f: &Facts, current: i32) -> Option<Cooldown> {
    let o = &f.object;
    let to = deactivation_target(o);
    let deactivates = o.idle.is_some_and(|i| current > i) || (current > 0 && o.min == 0);
    if !deactivates {
        return None;
    }
    let poll = f.operator.as_ref().and_then(|r| r.last_poll.as_ref());
    let last_active = poll.and_then(|p| p.last_active_time).or(o.last_active);
    let ends = poll
        .and_then(|p| p.cooldown_ends)
        .or_else(|| last_active.map(|t| t + jiff::SignedDuration::from_secs(o.cooldown_seconds)))?;
    let remaining_seconds = ends.duration_since(f.now).as_secs().max(0);
    Some(Cooldown {
        last_active,
        ends,
        remaining_seconds,
        to,
    })
}

/// Explains the facts: each trigger, the HPA's arithmetic, the cooldown, and one sentence.
pub fn explain(f: &Facts) -> Explanation {
    let triggers = trigger_lines(f);
    let poll = f.operator.as_ref().and_then(|r| r.last_poll.as_ref());
    let current = f
        .current
        .or(poll.and_then(|p| p.current_replicas))
        .or(f.hpa.as_ref().map(|h| h.current));
    let active = poll.map(|p| p.active).or_else(|| {
        triggers
            .iter()
            .filter_map(|t| t.active)
            .reduce(|a, b| a || b)
    });
    let hpa = f.hpa.as_ref().filter(|h| h.current >= 1).map(hpa::compute);
    let cooldown = current.and_then(|c| cooldown(f, c));
    let mut e = Explanation {
        namespace: f.object.namespace.clone(),
        name: f.object.name.clone(),
        case: Case::Unknown,
        replicas: current,
        sentence: String::new(),
        current,
        active,
        triggers,
        hpa,
        cooldown,
        notes: Vec::new(),
    };
    if f.operator.as_ref().is_some_and(|r| !r.leader) {
        e.notes.push(
            "the operator replica that answered is a follower: it runs no scale loop, so its \
             readings and cooldown are missing; ask the leader (the Lease's holder) with \
             --operator through kubectl port-forward"
                .into(),
        );
    }
    sentence::decide(f, &mut e);
    e
}
