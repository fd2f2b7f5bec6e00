//! The one sentence: "N replicas because …", chosen in the order Swell and the HPA apply
//! their rules: pause first, then fallback and failures, then activation and cooldown (the
//! scale loop's), then the HPA's arithmetic between the minimum and the maximum.

use super::hpa::{Hold, HpaMath, Proposal, num};
use super::{Case, Explanation, Facts, TriggerLine};
use crate::Decision;

fn replicas(n: i32) -> String {
    if n == 1 {
        "1 replica".into()
    } else {
        format!("{n} replicas")
    }
}

fn set(e: &mut Explanation, case: Case, n: Option<i32>, because: String) {
    e.case = case;
    e.replicas = n;
    let head = n.map_or_else(|| "? replicas".to_string(), replicas);
    e.sentence = format!("{head} because {because}.");
}

/// As [`set`], for a count on its way from `current` to `n`: the sentence starts with the
/// replicas there are now, so it never reads as if `n` were already running.
fn set_moving(e: &mut Explanation, case: Case, current: i32, n: i32, because: String) {
    set(e, case, Some(n), because);
    if current != n {
        let tail = e.sentence.split_once(" because ").map_or("", |(_, t)| t);
        e.sentence = format!("{}, going to {n}, because {tail}", replicas(current));
    }
}

/// `s0-metric-api-value is 10 (activation target 3, activationTargetValue)`.
fn reading(t: &TriggerLine) -> String {
    match (&t.error, t.value) {
        (Some(err), _) => format!("{} fails ({err})", t.metric),
        (None, Some(v)) => {
            let act = t.activation.map_or_else(String::new, |a| {
                let key = t.activation_key.as_deref().unwrap_or("default");
                format!(", activation target {} ({key})", num(a))
            });
            format!("{} is {}{act}", t.metric, num(v))
        }
        (None, None) => format!("{} has not been read yet", t.metric),
    }
}

fn active_triggers(e: &Explanation) -> String {
    let active: Vec<String> = e
        .triggers
        .iter()
        .filter(|t| t.active == Some(true))
        .map(reading)
        .collect();
    if active.is_empty() {
        "the triggers are active".into()
    } else {
        active.join(" and ")
    }
}

fn inactive_triggers(e: &Explanation) -> String {
    let all: Vec<String> = e.triggers.iter().map(reading).collect();
    if all.is_empty() {
        "no trigger is active".into()
    } else {
        format!("no trigger is active: {}", all.join(", "))
    }
}

pub fn decide(f: &Facts, e: &mut Explanation) {
    let o = &f.object;
    let now = e.current;
    let poll = f.operator.as_ref().and_then(|r| r.last_poll.as_ref());
    if let Some(n) = o.pause.replicas {
        let why = format!(
            "the ScaledObject is paused at {n} (annotation autoscaling.keda.sh/paused-replicas); \
             Swell removed its HPA and holds the target there until the annotation is removed"
        );
        return set(e, Case::Paused, Some(n), why);
    }
    if o.pause.paused {
        let why = "the ScaledObject is paused (annotation autoscaling.keda.sh/paused): scaling \
                   stopped where it was until the annotation is removed";
        return set(e, Case::Paused, now, why.into());
    }
    if o.fallback_active || poll.is_some_and(|p| p.in_fallback) {
        return fallback(f, e);
    }
    if let Some(failing) = poll
        .filter(|p| p.error)
        .and(e.triggers.iter().find(|t| t.error.is_some()))
    {
        let why = format!(
            "{}, and a trigger that fails without a fallback (spec.fallback) never scales the \
             target: Swell keeps the count it has",
            reading(failing)
        );
        return set(e, Case::Failing, now, why);
    }
    let Some(current) = e.current else {
        let why = "the target's /scale could not be read".to_string();
        return set(e, Case::Unknown, None, why);
    };
    match e.active {
        Some(true) => active(f, e, current),
        Some(false) => inactive(f, e, current),
        None => {
            e.notes.push("the operator gave no trigger readings".into());
            hpa(f, e, current)
        }
    }
}

fn fallback(f: &Facts, e: &mut Explanation) {
    let Some(spec) = &f.object.fallback else {
        let (why, now) = (
            String::from("Swell reports the Fallback condition, but the spec has no fallback"),
            e.current,
        );
        return set(e, Case::Fallback, now, why);
    };
    let failing: Vec<String> = e
        .triggers
        .iter()
        .filter(|t| t.failures > spec.failure_threshold)
        .map(|t| format!("{} failed {} times in a row", t.metric, t.failures))
        .collect();
    let failing = if failing.is_empty() {
        "a trigger failed".to_string()
    } else {
        failing.join(" and ")
    };
    let n = match spec.behavior.as_str() {
        "static" | "" => Some(spec.replicas),
        _ => f.hpa.as_ref().and_then(|h| h.desired).or(e.current),
    };
    let why = format!(
        "{failing}, more than fallback.failureThreshold {}: Swell serves the HPA the value \
         that gives fallback.replicas {} (behavior {}) until the trigger reads again",
        spec.failure_threshold,
        spec.replicas,
        if spec.behavior.is_empty() {
            "static"
        } else {
            &spec.behavior
        }
    );
    set(e, Case::Fallback, n, why)
}

fn active(f: &Facts, e: &mut Explanation, current: i32) {
    let o = &f.object;
    let below = current == 0 || (o.idle.is_some() && current < o.min);
    if !below {
        return hpa(f, e, current);
    }
    let triggers = active_triggers(e);
    if o.pause.scale_out {
        let why = format!(
            "{triggers}, but annotation autoscaling.keda.sh/paused-scale-out holds the target at {current}"
        );
        return set(e, Case::ScaleOutPaused, Some(current), why);
    }
    let to = o.min.max(1);
    let why = format!(
        "{triggers}: Swell activates the target from {current} to {to}, then the HPA scales it \
         between {} and {}",
        o.min.max(1),
        o.max
    );
    set(e, Case::Activating, Some(to), why)
}

fn inactive(f: &Facts, e: &mut Explanation, current: i32) {
    let poll = f.operator.as_ref().and_then(|r| r.last_poll.as_ref());
    let triggers = inactive_triggers(e);
    let Some(c) = e.cooldown.clone() else {
        let at_idle = f.object.idle.is_some_and(|i| current <= i);
        if current > 0 && f.object.min > 0 && !at_idle {
            // the HPA holds it between its minimum and maximum
            return hpa(f, e, current);
        }
        return set(e, Case::Inactive, Some(current), triggers);
    };
    if f.object.pause.scale_in {
        let why = format!(
            "{triggers}, but annotation autoscaling.keda.sh/paused-scale-in keeps the target from \
             going to {}",
            c.to
        );
        return set(e, Case::ScaleInPaused, Some(current), why);
    }
    let cooling = poll
        .and_then(|p| p.decision)
        .map_or(c.remaining_seconds > 0, |d| d == Decision::CoolingDown);
    let since = c
        .last_active
        .map_or_else(|| "the start".to_string(), |t| t.to_string());
    if cooling {
        let why = format!(
            "{triggers}; it was last active at {since} and the cooldown (cooldownPeriod {} s) \
             ends at {}: in {} s Swell takes it to {}",
            f.object.cooldown_seconds, c.ends, c.remaining_seconds, c.to
        );
        return set(e, Case::Cooldown, Some(current), why);
    }
    let why = format!(
        "{triggers}; the cooldown ended at {}, so Swell takes the target to {} now",
        c.ends, c.to
    );
    set(e, Case::Deactivating, Some(c.to), why)
}

/// `s0-… is 8 against a target of 2 per replica: ceil(8 / 2) = 4`.
fn leading(e: &Explanation, p: &Proposal) -> String {
    let t = e.triggers.iter().find(|t| t.metric == p.metric);
    let m = t;
    let per = match m.map(|t| t.metric_type.as_str()) {
        Some("AverageValue") => " per replica",
        _ => "",
    };
    match m.and_then(|t| t.value.zip(t.target)) {
        Some((v, target)) => format!(
            "{} is {} against a target of {}{per}: {}",
            p.metric,
            num(v),
            num(target),
            p.formula
        ),
        None => format!("{}: {}", p.metric, p.formula),
    }
}

fn hpa(f: &Facts, e: &mut Explanation, current: i32) {
    let Some(h) = &f.hpa else {
        let why = format!("no HPA keda-hpa-{} exists yet to scale it", f.object.name);
        return set(e, Case::NoHpa, Some(current), why);
    };
    let Some(math) = e.hpa.clone() else {
        let why = format!(
            "the HPA {} sees {} replicas and does not scale from 0",
            h.name, h.current
        );
        return set(e, Case::ScalingDisabled, Some(current), why);
    };
    let Some(lead) = math.proposals.iter().max_by_key(|p| p.replicas).cloned() else {
        let active = h.condition("ScalingActive").filter(|c| !c.status);
        let why = active.map_or_else(
            || format!("the HPA {} has no metric value to compute with", h.name),
            |c| {
                format!(
                    "the HPA cannot read its metrics ({}: {})",
                    c.reason, c.message
                )
            },
        );
        return set(e, Case::NoMetrics, Some(current), why);
    };
    held(f, e, &math, &lead, current)
}

fn held(f: &Facts, e: &mut Explanation, m: &HpaMath, p: &Proposal, current: i32) {
    let text = leading(e, p);
    let (lead, p) = (text.as_str(), p);
    let proposed = m.proposed.unwrap_or(current);
    let wanted = m.hpa_desired.or(m.expected).unwrap_or(current);
    let o = &f.object;
    let (case, n, why) = match &m.hold {
        Some(Hold::Tolerance) => {
            let t = m.tolerance;
            let band = format!("{}..{}", num(1.0 - t.down), num(1.0 + t.up));
            (
                Case::Tolerance,
                current,
                format!("{lead}: within the HPA's tolerance band {band}, so it keeps {current}"),
            )
        }
        Some(Hold::Stabilization { up, window }) => {
            let dir = if *up { "scale-up" } else { "scale-down" };
            let pick = if *up { "lowest" } else { "highest" };
            let w = window.map_or_else(|| "the controller's default".into(), |w| format!("{w} s"));
            let why = format!(
                "the HPA's {dir} stabilization window ({w}) keeps the {pick} recommendation of \
                 that window; the metrics alone ask for {}: {lead}",
                replicas(proposed)
            );
            (Case::Stabilization, wanted, why)
        }
        Some(Hold::MaxReplicas) => (
            Case::MaxReplicas,
            o.max,
            format!("{lead}, capped by maxReplicaCount {}", o.max),
        ),
        Some(Hold::MinReplicas) => (
            Case::MinReplicas,
            o.min.max(1),
            format!("{lead}, raised to the HPA's minReplicas {}", o.min.max(1)),
        ),
        Some(Hold::Disabled { up }) => {
            let dir = if *up { "scaleUp" } else { "scaleDown" };
            (
                Case::ScalingDisabled,
                current,
                format!("{lead}, but behavior.{dir}.selectPolicy is Disabled"),
            )
        }
        Some(Hold::Rate { up: true }) => (
            Case::ScalingUp,
            proposed.min(o.max),
            format!(
                "{lead}; the HPA is scaling up from {current} as fast as its scale-up policies allow"
            ),
        ),
        Some(Hold::Rate { up: false }) => (
            Case::ScalingDown,
            proposed.max(o.min.max(1)),
            format!(
                "{lead}; the HPA is scaling down from {current} as fast as its scale-down policies allow"
            ),
        ),
        None if wanted > current => (
            Case::ScalingUp,
            wanted,
            format!("{lead}; the HPA is scaling up from {current}"),
        ),
        None if wanted < current => (
            Case::ScalingDown,
            wanted,
            format!("{lead}; the HPA is scaling down from {current}"),
        ),
        None => (Case::Steady, current, lead.to_string()),
    };
    let moving = matches!(case, Case::ScalingUp | Case::ScalingDown);
    if m.proposals.len() > 1 {
        e.notes.push(format!(
            "with several metrics the HPA follows the one asking for the most replicas: {}",
            p.metric
        ));
    }
    let lead_type = e.triggers.iter().find(|t| t.metric == p.metric);
    if lead_type.is_some_and(|t| t.metric_type == "Value") {
        e.notes.push(
            "a Value target is multiplied by the ready pods; this assumes all are ready".into(),
        );
    }
    if moving {
        set_moving(e, case, current, n, why);
    } else {
        set(e, case, Some(n), why);
    }
}
