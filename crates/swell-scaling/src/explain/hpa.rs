//! The HPA controller's arithmetic with the numbers filled in, as
//! `pkg/controller/podautoscaler` computes it: one proposal per metric
//! (`replica_calculator.go`), the largest wins, then stabilization, the behavior's rate
//! policies and the min/max clamp (`horizontal.go`). The controller's own memory (recent
//! recommendations, scale events) is not visible from outside: where it matters the HPA's
//! conditions (`AbleToScale`, `ScalingLimited`) say what held it back, and the rate limits
//! here assume no scaling in the policy's period.

use serde::{Deserialize, Serialize};

/// How a metric's target is expressed (`target.type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TargetKind {
    Value,
    AverageValue,
    Utilization,
}

/// One of the HPA's metrics with what it reads now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HpaMetric {
    pub name: String,
    pub kind: TargetKind,
    pub target: f64,
    /// External metrics: the total the metrics API serves (for `AverageValue` too).
    /// Resource metrics: the pods' average (utilization in percent, or value).
    pub value: Option<f64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PolicyKind {
    Pods,
    Percent,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    pub kind: PolicyKind,
    pub value: i32,
    pub period_seconds: i32,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Select {
    #[default]
    Max,
    Min,
    Disabled,
}

/// `behavior.scaleUp` or `behavior.scaleDown`, as the API server defaulted it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rules {
    /// `None`: the controller's `--horizontal-pod-autoscaler-downscale-stabilization`.
    pub window_seconds: Option<i32>,
    pub select: Select,
    pub policies: Vec<Policy>,
    /// `tolerance` (Kubernetes 1.33+); `None`: the controller's (0.1 by default).
    pub tolerance: Option<f64>,
}

/// A condition of the HPA's status.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HpaCondition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

/// What the HPA `keda-hpa-<name>` says: its spec and status.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HpaFacts {
    pub name: String,
    pub min: i32,
    pub max: i32,
    /// `status.currentReplicas`.
    pub current: i32,
    /// `status.desiredReplicas`.
    pub desired: Option<i32>,
    pub metrics: Vec<HpaMetric>,
    pub up: Rules,
    pub down: Rules,
    pub conditions: Vec<HpaCondition>,
}

impl HpaFacts {
    pub fn condition(&self, type_: &str) -> Option<&HpaCondition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}

/// The controller's default tolerance (`--horizontal-pod-autoscaler-tolerance`).
pub const DEFAULT_TOLERANCE: f64 = 0.1;

/// The dead band around a usage ratio of 1 within which the HPA keeps the count.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tolerance {
    pub down: f64,
    pub up: f64,
}

impl Tolerance {
    pub fn of(h: &HpaFacts) -> Tolerance {
        Tolerance {
            down: h.down.tolerance.unwrap_or(DEFAULT_TOLERANCE),
            up: h.up.tolerance.unwrap_or(DEFAULT_TOLERANCE),
        }
    }

    pub fn within(self, ratio: f64) -> bool {
        1.0 - self.down <= ratio && ratio <= 1.0 + self.up
    }
}

/// One metric's proposal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Proposal {
    pub metric: String,
    /// The formula with its numbers, e.g. `ceil(8 / 2) = 4`.
    pub formula: String,
    pub ratio: f64,
    pub within_tolerance: bool,
    /// What the formula gives without the dead band.
    pub untolerated: i32,
    pub replicas: i32,
}

/// `n` for a formula: an integer without decimals, else up to three.
pub fn num(n: f64) -> String {
    let r = (n * 1000.0).round() / 1000.0;
    if r.fract() == 0.0 {
        format!("{r:.0}")
    } else {
        format!("{r}")
    }
}

fn ceil(x: f64) -> i32 {
    // Saturating: a replica count never exceeds i32.
    x.ceil().clamp(0.0, f64::from(i32::MAX)) as i32
}

/// One metric's proposal at `current` replicas (≥ 1: at 0 the HPA is disabled).
pub fn propose(current: i32, m: &HpaMetric, tol: Tolerance) -> Option<Proposal> {
    let v = m.value?;
    let (t, cur) = (m.target, f64::from(current));
    if t <= 0.0 || current < 1 {
        return None;
    }
    let (ratio, untolerated, formula) = match m.kind {
        // replicaCount = ceil(usage / targetPerPod), usageRatio = usage / (target × current)
        TargetKind::AverageValue => (
            v / (t * cur),
            ceil(v / t),
            format!("ceil({} / {})", num(v), num(t)),
        ),
        // replicaCount = ceil(usageRatio × ready pods), usageRatio = value / target
        TargetKind::Value | TargetKind::Utilization => (
            v / t,
            ceil(v / t * cur),
            format!("ceil({} × {} / {})", current, num(v), num(t)),
        ),
    };
    let within = tol.within(ratio);
    let replicas = if within { current } else { untolerated };
    let formula = if within && untolerated != current {
        format!(
            "ratio {} is within [{}, {}]: keep {current}",
            num(ratio),
            num(1.0 - tol.down),
            num(1.0 + tol.up)
        )
    } else {
        format!("{formula} = {untolerated}")
    };
    Some(Proposal {
        metric: m.name.clone(),
        formula,
        ratio,
        within_tolerance: within,
        untolerated,
        replicas,
    })
}

/// The largest number of replicas the rules allow from `current` now, scaling up
/// (`calculateScaleUpLimitWithScalingRules`, no scale-up in the period assumed).
pub fn scale_up_limit(current: i32, r: &Rules) -> i32 {
    let proposals = r.policies.iter().map(|p| match p.kind {
        PolicyKind::Pods => current.saturating_add(p.value),
        PolicyKind::Percent => ceil(f64::from(current) * (1.0 + f64::from(p.value) / 100.0)),
    });
    match r.select {
        Select::Disabled => current,
        Select::Min => proposals.min().unwrap_or(current),
        Select::Max => proposals.max().unwrap_or(current),
    }
    .max(current)
}

/// The smallest number the rules allow from `current` now, scaling down
/// (`calculateScaleDownLimitWithBehaviors`, no scale-down in the period assumed).
pub fn scale_down_limit(current: i32, r: &Rules) -> i32 {
    let proposals = r.policies.iter().map(|p| match p.kind {
        PolicyKind::Pods => current.saturating_sub(p.value),
        // int32(periodStart × (1 − value/100)): truncated, as Go converts it
        PolicyKind::Percent => (f64::from(current) * (1.0 - f64::from(p.value) / 100.0)) as i32,
    });
    match r.select {
        Select::Disabled => current,
        // the smallest change is the largest count
        Select::Min => proposals.max().unwrap_or(current),
        Select::Max => proposals.min().unwrap_or(current),
    }
    .min(current)
}

/// What held the HPA's count where it is, if anything.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Hold {
    /// The leading metric is within the tolerance dead band.
    Tolerance,
    /// The stabilization window keeps an earlier recommendation.
    Stabilization {
        up: bool,
        window: Option<i32>,
    },
    MaxReplicas,
    MinReplicas,
    /// The behavior's policies allow no faster change now.
    Rate {
        up: bool,
    },
    /// `selectPolicy: Disabled` in that direction.
    Disabled {
        up: bool,
    },
}

/// The HPA's computation for the facts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HpaMath {
    pub current: i32,
    pub tolerance: Tolerance,
    pub proposals: Vec<Proposal>,
    /// The largest proposal (`None`: no metric could be read).
    pub proposed: Option<i32>,
    /// After the rate policies (no recent scaling assumed) and the min/max clamp.
    pub expected: Option<i32>,
    /// What the HPA itself says it wants.
    pub hpa_desired: Option<i32>,
    pub hold: Option<Hold>,
}

/// The HPA's arithmetic at its current replicas.
pub fn compute(h: &HpaFacts) -> HpaMath {
    let tolerance = Tolerance::of(h);
    let proposals: Vec<Proposal> = h
        .metrics
        .iter()
        .filter_map(|m| propose(h.current, m, tolerance))
        .collect();
    let proposed = proposals.iter().map(|p| p.replicas).max();
    let expected = proposed.map(|p| limited(h, p));
    let hold = proposed.and_then(|p| hold(h, &proposals, p, expected));
    HpaMath {
        current: h.current,
        tolerance,
        proposals,
        proposed,
        expected,
        hpa_desired: h.desired,
        hold,
    }
}

/// `proposed` after the rate policies and min/max, as `convertDesiredReplicasWithBehaviorRate`.
fn limited(h: &HpaFacts, proposed: i32) -> i32 {
    let up = scale_up_limit(h.current, &h.up).min(h.max);
    let down = scale_down_limit(h.current, &h.down).max(h.min);
    proposed.clamp(down.min(up), up.max(down))
}

/// Why the count stays short of the proposal: the HPA's conditions first (they know its
/// history), else what the arithmetic shows.
fn hold(
    h: &HpaFacts,
    proposals: &[Proposal],
    proposed: i32,
    expected: Option<i32>,
) -> Option<Hold> {
    let wanted = h.desired.or(expected).unwrap_or(h.current);
    let up = proposed > h.current;
    let able = h.condition("AbleToScale").map(|c| c.reason.as_str());
    if matches!(able, Some("ScaleUpStabilized" | "ScaleDownStabilized")) && wanted != proposed {
        let up = able == Some("ScaleUpStabilized");
        let window = if up {
            h.up.window_seconds
        } else {
            h.down.window_seconds
        };
        return Some(Hold::Stabilization { up, window });
    }
    let limited = h.condition("ScalingLimited").filter(|c| c.status);
    match limited.map(|c| c.reason.as_str()) {
        Some("TooManyReplicas") => return Some(Hold::MaxReplicas),
        Some("TooFewReplicas") => return Some(Hold::MinReplicas),
        Some("ScaleUpLimit") => return Some(Hold::Rate { up: true }),
        Some("ScaleDownLimit") => return Some(Hold::Rate { up: false }),
        _ => {}
    }
    if proposed == h.current {
        let leading = proposals.iter().find(|p| p.replicas == proposed);
        return leading
            .filter(|p| p.within_tolerance && p.untolerated != h.current)
            .map(|_| Hold::Tolerance);
    }
    let rules = if up { &h.up } else { &h.down };
    if rules.select == Select::Disabled {
        return Some(Hold::Disabled { up });
    }
    match wanted {
        w if w == proposed => None,
        w if up && w >= h.max => Some(Hold::MaxReplicas),
        w if !up && w <= h.min => Some(Hold::MinReplicas),
        _ => Some(Hold::Rate { up }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(kind: TargetKind, target: f64, value: f64) -> HpaMetric {
        HpaMetric {
            name: "s0-metric".into(),
            kind,
            target,
            value: Some(value),
        }
    }

    const TOL: Tolerance = Tolerance { down: 0.1, up: 0.1 };

    #[test]
    fn proposals_follow_the_replica_calculator() {
        // (current, kind, target, value, replicas, within tolerance)
        let cases = [
            (2, TargetKind::AverageValue, 2.0, 8.0, 4, false),
            (4, TargetKind::AverageValue, 2.0, 8.5, 4, true),
            (4, TargetKind::AverageValue, 2.0, 9.0, 5, false),
            (2, TargetKind::Value, 10.0, 30.0, 6, false),
            (3, TargetKind::Value, 10.0, 10.5, 3, true),
            (4, TargetKind::Utilization, 50.0, 20.0, 2, false),
            (1, TargetKind::AverageValue, 2.0, 0.0, 0, false),
        ];
        for (current, kind, target, value, want, within) in cases {
            let p = propose(current, &metric(kind, target, value), TOL);
            let p = p.unwrap_or_else(|| panic!("{current} {kind:?}"));
            assert_eq!((p.replicas, p.within_tolerance), (want, within), "{p:?}");
        }
        let p = propose(2, &metric(TargetKind::AverageValue, 2.0, 8.0), TOL);
        assert_eq!(p.map(|p| p.formula), Some("ceil(8 / 2) = 4".into()));
        assert!(propose(0, &metric(TargetKind::Value, 1.0, 1.0), TOL).is_none());
    }

    #[test]
    fn rate_limits_follow_the_policies() {
        let rules = |select, policies: &[(PolicyKind, i32)]| Rules {
            select,
            policies: policies
                .iter()
                .map(|&(kind, value)| Policy {
                    kind,
                    value,
                    period_seconds: 15,
                })
                .collect(),
            ..Default::default()
        };
        // Kubernetes' default scale-up: max(+4 pods, +100%).
        let default_up = rules(
            Select::Max,
            &[(PolicyKind::Pods, 4), (PolicyKind::Percent, 100)],
        );
        assert_eq!(scale_up_limit(1, &default_up), 5);
        assert_eq!(scale_up_limit(10, &default_up), 20);
        let min_up = rules(
            Select::Min,
            &[(PolicyKind::Pods, 4), (PolicyKind::Percent, 100)],
        );
        assert_eq!(scale_up_limit(10, &min_up), 14);
        assert_eq!(scale_up_limit(3, &rules(Select::Disabled, &[])), 3);
        let down = rules(Select::Max, &[(PolicyKind::Percent, 50)]);
        assert_eq!(scale_down_limit(5, &down), 2, "int32(5 × 0.5) truncates");
        let down_pods = rules(
            Select::Min,
            &[(PolicyKind::Pods, 1), (PolicyKind::Percent, 50)],
        );
        assert_eq!(scale_down_limit(10, &down_pods), 9);
    }

    #[test]
    fn holds_from_conditions_and_arithmetic() {
        let cond = |type_: &str, reason: &str| HpaCondition {
            type_: type_.into(),
            status: true,
            reason: reason.into(),
            message: String::new(),
        };
        let facts = |current, value, desired, conditions| HpaFacts {
            name: "keda-hpa-app".into(),
            min: 1,
            max: 5,
            current,
            desired: Some(desired),
            metrics: vec![metric(TargetKind::AverageValue, 2.0, value)],
            up: Rules {
                policies: vec![Policy {
                    kind: PolicyKind::Pods,
                    value: 4,
                    period_seconds: 15,
                }],
                ..Default::default()
            },
            down: Rules::default(),
            conditions,
        };
        let hold = |f: HpaFacts| compute(&f).hold;
        assert_eq!(hold(facts(2, 8.0, 4, vec![])), None, "scaling up freely");
        assert_eq!(hold(facts(4, 8.5, 4, vec![])), Some(Hold::Tolerance));
        assert_eq!(
            hold(facts(
                4,
                2.0,
                4,
                vec![cond("AbleToScale", "ScaleDownStabilized")]
            )),
            Some(Hold::Stabilization {
                up: false,
                window: None
            })
        );
        assert_eq!(
            hold(facts(
                5,
                20.0,
                5,
                vec![cond("ScalingLimited", "TooManyReplicas")]
            )),
            Some(Hold::MaxReplicas)
        );
        assert_eq!(hold(facts(1, 8.0, 4, vec![])), None, "1 + 4 pods reaches 4");
        let m = compute(&facts(1, 40.0, 5, vec![]));
        assert_eq!((m.proposed, m.expected), (Some(20), Some(5)));
        assert_eq!(m.hold, Some(Hold::MaxReplicas));
    }
}
