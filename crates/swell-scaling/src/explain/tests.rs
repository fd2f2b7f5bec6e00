use std::collections::BTreeMap;

use super::hpa::{HpaCondition, HpaMetric, Policy, PolicyKind, Rules, TargetKind};
use super::*;
use crate::Decision;

fn at(s: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + s).unwrap_or(Timestamp::UNIX_EPOCH)
}

const METRIC: &str = "s0-metric-api-value";

/// One metrics-api trigger (target 2 per replica, activation 3), min 0, max 10, cooldown
/// 300 s, last active at 0, now at 100, the target at `current` with the HPA agreeing.
fn facts(current: i32, value: f64) -> Facts {
    let active = value > 3.0;
    let hpa = HpaFacts {
        name: "keda-hpa-app".into(),
        min: 1,
        max: 10,
        current,
        desired: Some(current),
        metrics: vec![HpaMetric {
            name: METRIC.into(),
            kind: TargetKind::AverageValue,
            target: 2.0,
            value: Some(value),
        }],
        up: Rules {
            window_seconds: Some(0),
            policies: vec![
                Policy {
                    kind: PolicyKind::Pods,
                    value: 4,
                    period_seconds: 15,
                },
                Policy {
                    kind: PolicyKind::Percent,
                    value: 100,
                    period_seconds: 15,
                },
            ],
            ..Default::default()
        },
        down: Rules {
            window_seconds: Some(300),
            policies: vec![Policy {
                kind: PolicyKind::Percent,
                value: 100,
                period_seconds: 15,
            }],
            ..Default::default()
        },
        conditions: vec![],
    };
    Facts {
        now: at(100),
        object: ObjectFacts {
            namespace: "ns".into(),
            name: "app".into(),
            min: 0,
            max: 10,
            cooldown_seconds: 300,
            triggers: vec![TriggerSpec {
                index: 0,
                type_: "metrics-api".into(),
                activation: Some(("activationTargetValue".into(), 3.0)),
            }],
            last_active: Some(at(0)),
            ..Default::default()
        },
        current: Some(current),
        hpa: Some(hpa),
        operator: Some(LoopReport {
            namespace: "ns".into(),
            name: "app".into(),
            leader: true,
            polling_interval_seconds: 30,
            history_capacity: HISTORY_LEN,
            triggers: vec![TriggerReport {
                index: 0,
                type_: "metrics-api".into(),
                metric: METRIC.into(),
                metric_type: "AverageValue".into(),
                target: Some(2.0),
                polled: true,
                last: Some(LastReading {
                    value: Some(value),
                    active: Some(active),
                    error: None,
                }),
                history: vec![],
            }],
            last_poll: Some(PollReport {
                at: at(99),
                current_replicas: Some(current),
                decision: None,
                active,
                forced: false,
                error: false,
                in_fallback: false,
                composite: None,
                last_active_time: Some(if active { at(99) } else { at(0) }),
                cooldown_ends: Some(if active { at(399) } else { at(300) }),
                failures: BTreeMap::new(),
            }),
        }),
    }
}

fn poll(f: &mut Facts) -> &mut PollReport {
    f.operator
        .as_mut()
        .and_then(|o| o.last_poll.as_mut())
        .unwrap_or_else(|| panic!("no poll"))
}

fn hpa(f: &mut Facts) -> &mut HpaFacts {
    f.hpa.as_mut().unwrap_or_else(|| panic!("no hpa"))
}

fn condition(type_: &str, reason: &str) -> HpaCondition {
    HpaCondition {
        type_: type_.into(),
        status: true,
        reason: reason.into(),
        message: String::new(),
    }
}

fn failing(mut f: Facts, failures: i32) -> Facts {
    let op = f.operator.as_mut().unwrap_or_else(|| panic!("no operator"));
    op.triggers[0].last = Some(LastReading {
        error: Some("HTTP 500".into()),
        ..Default::default()
    });
    let p = op.last_poll.as_mut().unwrap_or_else(|| panic!("no poll"));
    p.failures.insert(METRIC.into(), failures);
    f
}

#[test]
fn each_case_has_its_sentence() {
    let scaling_up = {
        let mut f = facts(2, 8.0);
        hpa(&mut f).desired = Some(4);
        f
    };
    let tolerance = facts(4, 8.5);
    let stabilization = {
        let mut f = facts(4, 4.0);
        hpa(&mut f).conditions = vec![condition("AbleToScale", "ScaleDownStabilized")];
        f
    };
    let cooldown = {
        let mut f = facts(2, 1.0);
        poll(&mut f).decision = Some(Decision::CoolingDown);
        f
    };
    let paused = {
        let mut f = facts(2, 8.0);
        f.object.pause.replicas = Some(3);
        f.hpa = None;
        f
    };
    let fallback = {
        let mut f = failing(facts(2, 0.0), 4);
        f.object.fallback = Some(FallbackSpec {
            failure_threshold: 3,
            replicas: 6,
            behavior: "static".into(),
        });
        poll(&mut f).in_fallback = true;
        f
    };
    let failing_without_fallback = {
        let mut f = failing(facts(2, 0.0), 1);
        poll(&mut f).error = true;
        f
    };
    let at_zero = facts(0, 1.0);
    let activating = facts(0, 8.0);
    let at_max = {
        let mut f = facts(10, 40.0);
        hpa(&mut f).conditions = vec![condition("ScalingLimited", "TooManyReplicas")];
        f
    };
    let steady = facts(4, 8.0);
    let cases = [
        (
            scaling_up,
            Case::ScalingUp,
            4,
            "s0-metric-api-value is 8 against a target of 2 per replica: ceil(8 / 2) = 4; the HPA is scaling up from 2",
        ),
        (
            tolerance,
            Case::Tolerance,
            4,
            "ratio 1.063 is within [0.9, 1.1]: keep 4: within the HPA's tolerance band 0.9..1.1",
        ),
        (
            stabilization,
            Case::Stabilization,
            4,
            "scale-down stabilization window (300 s) keeps the highest recommendation of that window; the metrics alone ask for 2 replicas",
        ),
        (
            cooldown,
            Case::Cooldown,
            2,
            "the cooldown (cooldownPeriod 300 s) ends at 2023-11-14T22:18:20Z: in 200 s Swell takes it to 0",
        ),
        (
            paused,
            Case::Paused,
            3,
            "paused at 3 (annotation autoscaling.keda.sh/paused-replicas)",
        ),
        (
            fallback,
            Case::Fallback,
            6,
            "s0-metric-api-value failed 4 times in a row, more than fallback.failureThreshold 3",
        ),
        (
            failing_without_fallback,
            Case::Failing,
            2,
            "s0-metric-api-value fails (HTTP 500), and a trigger that fails without a fallback",
        ),
        (
            at_zero,
            Case::Inactive,
            0,
            "no trigger is active: s0-metric-api-value is 1, activation target 3 (activationTargetValue)",
        ),
        (
            activating,
            Case::Activating,
            1,
            "s0-metric-api-value is 8, activation target 3 (activationTargetValue): Swell activates the target from 0 to 1",
        ),
        (
            at_max,
            Case::MaxReplicas,
            10,
            "ceil(40 / 2) = 20, capped by maxReplicaCount 10",
        ),
        (
            steady,
            Case::Steady,
            4,
            "s0-metric-api-value is 8 against a target of 2 per replica: ceil(8 / 2) = 4",
        ),
    ];
    for (f, case, n, part) in cases {
        let e = explain(&f);
        let head = match (case, n) {
            // On its way there from 2 (the fixture's current count).
            (Case::ScalingUp | Case::ScalingDown, n) => {
                format!("2 replicas, going to {n}, because ")
            }
            (_, 1) => "1 replica because ".to_string(),
            (_, n) => format!("{n} replicas because "),
        };
        assert!(e.sentence.starts_with(&head), "{case:?}: {}", e.sentence);
        assert!(e.sentence.contains(part), "{case:?}: {}", e.sentence);
        assert_eq!((e.case, e.replicas), (case, Some(n)), "{}", e.sentence);
        assert_eq!(
            e.sentence.matches(". ").count(),
            0,
            "one sentence: {}",
            e.sentence
        );
    }
}

#[test]
fn cooldown_and_deactivation_time_come_from_the_operator() {
    let mut f = facts(2, 1.0);
    let e = explain(&f);
    let c = e.cooldown.unwrap_or_else(|| panic!("no cooldown"));
    assert_eq!((c.ends, c.remaining_seconds, c.to), (at(300), 200, 0));
    // the loop's own decision wins over the clock
    poll(&mut f).decision = Some(Decision::Deactivate { to: 0 });
    assert_eq!(explain(&f).case, Case::Deactivating);
    // without the operator, the status' lastActiveTime and the spec's cooldown
    f.operator = None;
    f.now = at(10);
    let e = explain(&f);
    assert_eq!(e.cooldown.map(|c| c.remaining_seconds), Some(290));
}

#[test]
fn direction_pauses_and_idle() {
    let mut f = facts(0, 8.0);
    f.object.pause.scale_out = true;
    assert_eq!(explain(&f).case, Case::ScaleOutPaused);
    let mut f = facts(2, 1.0);
    f.object.pause.scale_in = true;
    assert_eq!(explain(&f).case, Case::ScaleInPaused);
    // at idle, inactive: nothing to do
    let mut f = facts(1, 1.0);
    f.object.idle = Some(1);
    f.object.min = 3;
    let e = explain(&f);
    assert_eq!(
        (e.case, e.replicas),
        (Case::Inactive, Some(1)),
        "{}",
        e.sentence
    );
}

#[test]
fn activation_targets_are_found_in_the_metadata() {
    let md: BTreeMap<String, String> = [("activationLagThreshold", "5"), ("lagThreshold", "10")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(
        activation_of(&md),
        Some(("activationLagThreshold".into(), 5.0))
    );
    assert_eq!(activation_of(&BTreeMap::new()), None);
}

#[test]
fn the_explanation_serializes() {
    let e = explain(&facts(4, 8.0));
    let json = serde_json::to_value(&e).unwrap_or_default();
    assert_eq!(json["case"], "Steady");
    assert_eq!(json["hpa"]["proposals"][0]["replicas"], 4);
}
