//! Table tests after KEDA's `pkg/scaling/modifiers/formula_test.go` and `pkg/fallback`.

use super::*;
use swell_scalers::MetricType;

fn so(modifiers: serde_json::Value, fallback: Option<serde_json::Value>) -> ScaledObject {
    let mut spec = serde_json::json!({
        "scaleTargetRef": {"name": "app"},
        "advanced": {"scalingModifiers": modifiers},
        "triggers": [
            {"type": "metrics-api", "name": "trigger1", "metadata": {}},
            {"type": "cpu", "name": "cpu", "metricType": "Utilization", "metadata": {"value": "50"}},
            {"type": "metrics-api", "name": "trigger2", "metadata": {}},
            {"type": "metrics-api", "metadata": {}},
        ]
    });
    if let (Some(f), Some(s)) = (fallback, spec.as_object_mut()) {
        s.insert("fallback".into(), f);
    }
    serde_json::from_value(serde_json::json!({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": "so", "namespace": "ns"},
        "spec": spec
    }))
    .unwrap()
}

fn specs() -> Vec<(usize, MetricSpec)> {
    let external = |name: &str| MetricSpec::External {
        name: name.into(),
        target: 1.0,
        metric_type: MetricType::AverageValue,
    };
    vec![
        (0, external("s0-metric1")),
        (
            1,
            MetricSpec::Resource {
                resource: "cpu".into(),
                metric_type: MetricType::Utilization,
                target: "50".into(),
                container: None,
            },
        ),
        (2, external("s2-metric2")),
        (3, external("s3-unnamed")),
    ]
}

fn composite(formula: &str, fallback: Option<serde_json::Value>) -> (ScaledObject, Composite) {
    let o = so(
        serde_json::json!({"formula": formula, "target": "2", "activationTarget": "3"}),
        fallback,
    );
    let specs = specs();
    let c = Composite::new(&o, specs.iter().map(|(i, s)| (*i, s)))
        .unwrap()
        .unwrap();
    (o, c)
}

fn v(x: f64) -> Source {
    Source::Value(x)
}

#[test]
fn without_a_formula_there_is_no_composite() {
    let specs = specs();
    for modifiers in [
        serde_json::json!({}),
        serde_json::json!({"formula": "", "target": ""}),
    ] {
        let o = so(modifiers, None);
        let c = Composite::new(&o, specs.iter().map(|(i, s)| (*i, s))).unwrap();
        assert!(c.is_none());
    }
}

#[test]
fn named_external_triggers_are_the_variables() {
    let specs = specs();
    let o = so(
        serde_json::json!({"formula": "cpu + 1", "target": "2"}),
        None,
    );
    let err = Composite::new(&o, specs.iter().map(|(i, s)| (*i, s))).unwrap_err();
    assert!(err.to_string().contains("cpu"), "{err}");
    let (_, c) = composite("trigger1 + trigger2", None);
    assert_eq!(c.inputs, ["s0-metric1", "s2-metric2"]);
    assert_eq!((c.target, c.activation), (2.0, 3.0));
}

#[test]
fn evaluates_as_keda() {
    // (formula, sources, fallback, want)
    let sm = Some(
        serde_json::json!({"failureThreshold": 3, "replicas": 7, "behavior": "scalingModifiers"}),
    );
    let stat = Some(serde_json::json!({"failureThreshold": 3, "replicas": 7}));
    type Case = (
        &'static str,
        Vec<(&'static str, Source)>,
        Option<serde_json::Value>,
        Result<f64, &'static str>,
    );
    let cases: Vec<Case> = vec![
        // KEDA's TestCalculateScalingModifiersFormula: 2 + 5 = 7.
        (
            "trigger1 + trigger2",
            vec![("s0-metric1", v(2.0)), ("s2-metric2", v(5.0))],
            None,
            Ok(7.0),
        ),
        // Milli precision, truncated as `SetMilli(int64(out * 1000))`.
        (
            "trigger1 / 3",
            vec![("s0-metric1", v(1.0)), ("s2-metric2", v(0.0))],
            None,
            Ok(0.333),
        ),
        (
            "max(trigger1, trigger2) * 2",
            vec![("s0-metric1", v(4.0)), ("s2-metric2", v(9.0))],
            None,
            Ok(18.0),
        ),
        (
            "trigger1 > 3 ? trigger2 : 0",
            vec![("s0-metric1", v(4.0)), ("s2-metric2", v(9.0))],
            None,
            Ok(9.0),
        ),
        // A failure not (yet) in fallback fails the composite, naming the trigger.
        (
            "trigger1 + trigger2",
            vec![
                ("s0-metric1", v(2.0)),
                ("s2-metric2", Source::Failed("s2-metric2: down".into())),
            ],
            None,
            Err("a trigger of the formula failed: s2-metric2: down"),
        ),
        // So does one that the formula does not read (KEDA fails the whole request).
        (
            "trigger1",
            vec![
                ("s0-metric1", v(2.0)),
                ("s3-unnamed", Source::Failed("s3-unnamed: down".into())),
            ],
            None,
            Err("s3-unnamed: down"),
        ),
        // A trigger in (static) fallback: the composite is the fallback value.
        (
            "trigger1 + trigger2",
            vec![
                ("s0-metric1", v(2.0)),
                ("s2-metric2", Source::Fallback(14.0)),
            ],
            stat.clone(),
            Ok(14.0),
        ),
        // behavior scalingModifiers: the failed trigger is nil, `??` picks the alternative.
        (
            "trigger1 ?? trigger2",
            vec![("s0-metric1", Source::Nil), ("s2-metric2", v(5.0))],
            sm.clone(),
            Ok(5.0),
        ),
        // TestCalculateScalingModifiersFormulaFallbackReplicas: all nil → replicas × target.
        (
            "trigger1 ?? trigger2",
            vec![("s0-metric1", Source::Nil), ("s2-metric2", Source::Nil)],
            sm.clone(),
            Ok(14.0),
        ),
        (
            "trigger1 ?? trigger2",
            vec![("s0-metric1", Source::Nil), ("s2-metric2", Source::Nil)],
            None,
            Err("gave nil and spec.fallback is not set"),
        ),
        // nil in arithmetic is a runtime error, as in expr-lang.
        (
            "trigger1 + trigger2",
            vec![("s0-metric1", Source::Nil), ("s2-metric2", v(5.0))],
            sm.clone(),
            Err("formula failed"),
        ),
        (
            "trigger1 / trigger2",
            vec![("s0-metric1", v(1.0)), ("s2-metric2", v(0.0))],
            None,
            Err("not a number"),
        ),
    ];
    for (formula, sources, fallback, want) in cases {
        let (o, c) = composite(formula, fallback);
        let f = composite_fallback(&o, &c, 1);
        let got = c.evaluate(&sources, f.as_ref()).map_err(|e| e.to_string());
        match (&got, want) {
            (Ok(g), Ok(w)) => assert!((g - w).abs() < 1e-9, "{formula}: {g} != {w}"),
            (Err(g), Err(w)) => assert!(g.contains(w), "{formula}: {g:?} lacks {w:?}"),
            _ => panic!("{formula}: {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn readings_become_sources_as_keda_gates_fallback() {
    let sm =
        serde_json::json!({"failureThreshold": 3, "replicas": 5, "behavior": "scalingModifiers"});
    let cur = serde_json::json!({"failureThreshold": 3, "replicas": 5, "behavior": "currentReplicasIfHigher"});
    let (o_sm, c) = composite("trigger1", Some(sm));
    let (o_cur, _) = composite("trigger1", Some(cur));
    let f_sm = composite_fallback(&o_sm, &c, 8);
    let f_cur = composite_fallback(&o_cur, &c, 8);
    let err: Result<f64, &str> = Err("down");
    // (reading, failures after it, fallback, want) — KEDA's gate is strictly `> threshold`.
    let cases = [
        (Ok(7.0), 0, f_sm.as_ref(), v(7.0)),
        (Ok(-3.0), 0, None, v(0.0)),
        (Ok(f64::NAN), 0, None, v(0.0)),
        (err, 3, f_sm.as_ref(), Source::Failed("m: down".into())),
        (err, 4, f_sm.as_ref(), Source::Nil),
        (err, 9, None, Source::Failed("m: down".into())),
        // currentReplicasIfHigher with 8 current: 8 × target 2.
        (err, 4, f_cur.as_ref(), Source::Fallback(16.0)),
    ];
    for (reading, failures, fallback, want) in cases {
        assert_eq!(
            source("m", reading, failures, fallback),
            want,
            "{reading:?} {failures}"
        );
    }
    assert_eq!(f_sm.map(|f| f.nil_value), Some(10.0));
}

#[test]
fn activation_is_strictly_above_the_activation_target() {
    let (_, c) = composite("trigger1", None);
    assert!(!c.active(3.0));
    assert!(c.active(3.001));
}
