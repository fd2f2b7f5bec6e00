//! Table-driven tests for the validation helpers: each KEDA rule with accepted and rejected
//! cases. A rejected case names the field path that must be reported and a fragment of the
//! message.

use std::collections::BTreeMap;

use serde_json::json;
use swell_api::{
    AdvancedConfig, AuthPodIdentity, AuthenticationRef, Fallback, FallbackBehavior,
    HorizontalPodAutoscalerConfig, IdentityOwner, MetricTargetType, OAuth2, PodIdentityProvider,
    ScaleTriggers, ScaledJob, ScaledObject, ScalingModifiers, ScalingModifiersMetricType,
    TriggerAuthentication, ValidationError,
};

struct Case<T> {
    name: &'static str,
    mutate: fn(&mut T),
    /// `None`: accepted. `Some((field, fragment))`: rejected with an error on `field`.
    expect: Option<(&'static str, &'static str)>,
}

fn run<T: Clone>(
    base: &T,
    cases: &[Case<T>],
    validate: fn(&T) -> Result<(), Vec<ValidationError>>,
) {
    let mut failures = Vec::new();
    for case in cases {
        let mut object = base.clone();
        (case.mutate)(&mut object);
        let result = validate(&object);
        match (case.expect, &result) {
            (None, Ok(())) => {}
            (None, Err(errors)) => failures.push(format!(
                "{}: expected accepted, got {}",
                case.name,
                swell_api::validation::format_errors(errors)
            )),
            (Some((field, _)), Ok(())) => failures.push(format!(
                "{}: expected an error on {field}, got none",
                case.name
            )),
            (Some((field, fragment)), Err(errors)) => {
                let hit = errors
                    .iter()
                    .any(|e| e.field == field && e.message.contains(fragment));
                if !hit {
                    failures.push(format!(
                        "{}: expected {field} containing {fragment:?}, got {}",
                        case.name,
                        swell_api::validation::format_errors(errors)
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn trigger(type_: &str) -> ScaleTriggers {
    ScaleTriggers {
        type_: type_.to_owned(),
        metadata: BTreeMap::from([("value".to_owned(), "1".to_owned())]),
        ..ScaleTriggers::default()
    }
}

fn named(type_: &str, name: &str) -> ScaleTriggers {
    ScaleTriggers {
        name: Some(name.to_owned()),
        ..trigger(type_)
    }
}

fn modifiers(formula: &str, target: &str) -> Option<AdvancedConfig> {
    Some(AdvancedConfig {
        scaling_modifiers: Some(ScalingModifiers {
            formula: Some(formula.to_owned()),
            target: Some(target.to_owned()),
            ..ScalingModifiers::default()
        }),
        ..AdvancedConfig::default()
    })
}

fn fallback() -> Option<Fallback> {
    Some(Fallback {
        failure_threshold: 3,
        replicas: 5,
        behavior: None,
    })
}

fn base_scaled_object() -> ScaledObject {
    serde_json::from_value(json!({
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "worker", "namespace": "default"},
        "spec": {
            "scaleTargetRef": {"name": "worker"},
            "minReplicaCount": 0,
            "maxReplicaCount": 10,
            "triggers": [{
                "type": "aws-sqs-queue",
                "metadata": {"queueURL": "https://sqs.eu-west-1.amazonaws.com/1/q", "queueLength": "5"}
            }]
        }
    }))
    .expect("base ScaledObject deserializes")
}

fn only_cpu(so: &mut ScaledObject) {
    so.spec.triggers = vec![trigger("cpu")];
}

#[test]
fn scaled_object_rules() {
    let cases: &[Case<ScaledObject>] = &[
        Case {
            name: "base",
            mutate: |_| {},
            expect: None,
        },
        // Replica bounds.
        Case {
            name: "min equals max",
            mutate: |so| {
                so.spec.min_replica_count = Some(5);
                so.spec.max_replica_count = Some(5)
            },
            expect: None,
        },
        Case {
            name: "min above max",
            mutate: |so| so.spec.min_replica_count = Some(11),
            expect: Some((
                "spec.minReplicaCount",
                "MinReplicaCount=11 must be less than or equal to MaxReplicaCount=10",
            )),
        },
        Case {
            name: "min above default max",
            mutate: |so| {
                so.spec.max_replica_count = None;
                so.spec.min_replica_count = Some(101)
            },
            expect: Some(("spec.minReplicaCount", "MaxReplicaCount=100")),
        },
        Case {
            name: "max zero",
            mutate: |so| so.spec.max_replica_count = Some(0),
            expect: Some(("spec.maxReplicaCount", "must be at least 1")),
        },
        Case {
            name: "min negative",
            mutate: |so| so.spec.min_replica_count = Some(-1),
            expect: Some(("spec.minReplicaCount", "must be at least 0")),
        },
        Case {
            name: "idle below min",
            mutate: |so| {
                so.spec.min_replica_count = Some(2);
                so.spec.idle_replica_count = Some(0)
            },
            expect: None,
        },
        Case {
            name: "idle equals min",
            mutate: |so| {
                so.spec.min_replica_count = Some(2);
                so.spec.idle_replica_count = Some(2)
            },
            expect: Some((
                "spec.idleReplicaCount",
                "IdleReplicaCount=2 must be less than MinReplicaCount=2",
            )),
        },
        Case {
            name: "idle above min",
            mutate: |so| {
                so.spec.min_replica_count = Some(1);
                so.spec.idle_replica_count = Some(3)
            },
            expect: Some(("spec.idleReplicaCount", "must be less than")),
        },
        Case {
            name: "idle with min unset",
            mutate: |so| {
                so.spec.min_replica_count = None;
                so.spec.idle_replica_count = Some(0)
            },
            expect: Some(("spec.idleReplicaCount", "MinReplicaCount=0")),
        },
        // KEDA compares an explicit min of 0 as the HPA minimum, 1.
        Case {
            name: "idle 0 with explicit min 0",
            mutate: |so| so.spec.idle_replica_count = Some(0),
            expect: None,
        },
        Case {
            name: "idle negative",
            mutate: |so| so.spec.idle_replica_count = Some(-1),
            expect: Some(("spec.idleReplicaCount", "must be at least 0")),
        },
        // Timing bounds.
        Case {
            name: "polling interval 1",
            mutate: |so| so.spec.polling_interval = Some(1),
            expect: None,
        },
        Case {
            name: "polling interval 0",
            mutate: |so| so.spec.polling_interval = Some(0),
            expect: Some(("spec.pollingInterval", "must be at least 1")),
        },
        Case {
            name: "cooldown 0",
            mutate: |so| so.spec.cooldown_period = Some(0),
            expect: None,
        },
        Case {
            name: "cooldown negative",
            mutate: |so| so.spec.cooldown_period = Some(-1),
            expect: Some(("spec.cooldownPeriod", "must be at least 0")),
        },
        Case {
            name: "initial cooldown negative",
            mutate: |so| so.spec.initial_cooldown_period = Some(-5),
            expect: Some(("spec.initialCooldownPeriod", "must be at least 0")),
        },
        // Scale target.
        Case {
            name: "empty target name",
            mutate: |so| so.spec.scale_target_ref.name = String::new(),
            expect: Some(("spec.scaleTargetRef.name", "is empty")),
        },
        // Triggers.
        Case {
            name: "no triggers",
            mutate: |so| so.spec.triggers.clear(),
            expect: Some(("spec.triggers", "at least one trigger")),
        },
        Case {
            name: "empty trigger type",
            mutate: |so| so.spec.triggers[0].type_ = " ".into(),
            expect: Some(("spec.triggers[0].type", "is empty")),
        },
        Case {
            name: "unique trigger names",
            mutate: |so| {
                so.spec.triggers = vec![
                    named("aws-sqs-queue", "a"),
                    named("aws-sqs-queue", "b"),
                    trigger("cron"),
                    trigger("cron"),
                ]
            },
            expect: None,
        },
        Case {
            name: "duplicate trigger names",
            mutate: |so| so.spec.triggers = vec![named("aws-sqs-queue", "a"), named("kafka", "a")],
            expect: Some(("spec.triggers[1].name", "\"a\" is defined multiple times")),
        },
        Case {
            name: "empty authenticationRef name",
            mutate: |so| {
                so.spec.triggers[0].authentication_ref = Some(AuthenticationRef {
                    name: String::new(),
                    kind: None,
                })
            },
            expect: Some(("spec.triggers[0].authenticationRef.name", "is empty")),
        },
        Case {
            name: "useCachedMetrics on sqs",
            mutate: |so| so.spec.triggers[0].use_cached_metrics = Some(true),
            expect: None,
        },
        Case {
            name: "useCachedMetrics on cpu",
            mutate: |so| {
                so.spec.min_replica_count = Some(1);
                so.spec.triggers[0] = trigger("cpu");
                so.spec.triggers[0].use_cached_metrics = Some(true)
            },
            expect: Some((
                "spec.triggers[0].useCachedMetrics",
                "not supported for \"cpu\"",
            )),
        },
        Case {
            name: "useCachedMetrics on cron",
            mutate: |so| {
                so.spec.triggers.push(trigger("cron"));
                so.spec.triggers[1].use_cached_metrics = Some(true)
            },
            expect: Some(("spec.triggers[1].useCachedMetrics", "\"cron\"")),
        },
        Case {
            name: "useCachedMetrics false on memory",
            mutate: |so| {
                so.spec.min_replica_count = Some(1);
                so.spec.triggers[0] = trigger("memory");
                so.spec.triggers[0].use_cached_metrics = Some(false)
            },
            expect: None,
        },
        // Metric types.
        Case {
            name: "AverageValue on sqs",
            mutate: |so| so.spec.triggers[0].metric_type = Some(MetricTargetType::AverageValue),
            expect: None,
        },
        Case {
            name: "Value on sqs",
            mutate: |so| so.spec.triggers[0].metric_type = Some(MetricTargetType::Value),
            expect: None,
        },
        Case {
            name: "Utilization on sqs",
            mutate: |so| so.spec.triggers[0].metric_type = Some(MetricTargetType::Utilization),
            expect: Some((
                "spec.triggers[0].metricType",
                "only supported for cpu and memory",
            )),
        },
        Case {
            name: "Utilization on cpu",
            mutate: |so| {
                so.spec.min_replica_count = Some(1);
                so.spec.triggers[0] = trigger("cpu");
                so.spec.triggers[0].metric_type = Some(MetricTargetType::Utilization)
            },
            expect: None,
        },
        Case {
            name: "Value on memory",
            mutate: |so| {
                so.spec.min_replica_count = Some(1);
                so.spec.triggers[0] = trigger("memory");
                so.spec.triggers[0].metric_type = Some(MetricTargetType::Value)
            },
            expect: Some((
                "spec.triggers[0].metricType",
                "'Value' metric type is not supported",
            )),
        },
        Case {
            name: "unknown metric type",
            mutate: |so| so.spec.triggers[0].metric_type = Some("averagevalue".into()),
            expect: Some((
                "spec.triggers[0].metricType",
                "unknown metric type \"averagevalue\"",
            )),
        },
        // cpu/memory-only objects cannot scale to zero.
        Case {
            name: "cpu only with min 1",
            mutate: |so| {
                only_cpu(so);
                so.spec.min_replica_count = Some(1)
            },
            expect: None,
        },
        Case {
            name: "cpu only with min 0",
            mutate: only_cpu,
            expect: Some((
                "spec.minReplicaCount",
                "only cpu/memory triggers AND minReplica is 0",
            )),
        },
        Case {
            name: "cpu only with min unset",
            mutate: |so| {
                only_cpu(so);
                so.spec.min_replica_count = None
            },
            expect: Some(("spec.minReplicaCount", "scale to zero")),
        },
        Case {
            name: "cpu only StatefulSet",
            mutate: |so| {
                only_cpu(so);
                so.spec.scale_target_ref.kind = Some("StatefulSet".into())
            },
            expect: Some(("spec.minReplicaCount", "scale to zero")),
        },
        // KEDA only inspects Deployments and StatefulSets here.
        Case {
            name: "cpu only custom resource",
            mutate: |so| {
                only_cpu(so);
                so.spec.scale_target_ref.api_version = Some("argoproj.io/v1alpha1".into());
                so.spec.scale_target_ref.kind = Some("Rollout".into())
            },
            expect: None,
        },
        Case {
            name: "cpu plus event trigger with min 0",
            mutate: |so| so.spec.triggers.push(trigger("cpu")),
            expect: None,
        },
        // Fallback.
        Case {
            name: "fallback with default metric type",
            mutate: |so| so.spec.fallback = fallback(),
            expect: None,
        },
        Case {
            name: "fallback with zero values",
            mutate: |so| {
                so.spec.fallback = Some(Fallback {
                    failure_threshold: 0,
                    replicas: 0,
                    behavior: None,
                })
            },
            expect: None,
        },
        Case {
            name: "fallback negative threshold",
            mutate: |so| {
                so.spec.fallback = Some(Fallback {
                    failure_threshold: -1,
                    replicas: 1,
                    behavior: None,
                })
            },
            expect: Some(("spec.fallback.failureThreshold", "must be at least 0")),
        },
        Case {
            name: "fallback negative replicas",
            mutate: |so| {
                so.spec.fallback = Some(Fallback {
                    failure_threshold: 1,
                    replicas: -1,
                    behavior: None,
                })
            },
            expect: Some(("spec.fallback.replicas", "must be at least 0")),
        },
        Case {
            name: "fallback with cpu-only triggers",
            mutate: |so| {
                only_cpu(so);
                so.spec.min_replica_count = Some(1);
                so.spec.fallback = fallback()
            },
            expect: Some(("spec.fallback", "has to have the `AverageValue` type")),
        },
        Case {
            name: "fallback with only Value triggers",
            mutate: |so| {
                so.spec.triggers[0].metric_type = Some(MetricTargetType::Value);
                so.spec.fallback = fallback()
            },
            expect: Some(("spec.fallback", "AverageValue")),
        },
        Case {
            name: "fallback with one AverageValue among Value",
            mutate: |so| {
                so.spec.triggers[0].metric_type = Some(MetricTargetType::Value);
                so.spec.triggers.push(trigger("kafka"));
                so.spec.fallback = fallback()
            },
            expect: None,
        },
        Case {
            name: "fallback with cpu and an event trigger",
            mutate: |so| {
                so.spec.triggers.push(trigger("cpu"));
                so.spec.fallback = fallback()
            },
            expect: None,
        },
        Case {
            name: "fallback with modifiers AverageValue",
            mutate: |so| {
                so.spec.triggers[0].name = Some("q".into());
                so.spec.advanced = modifiers("q * 2", "5");
                so.spec.fallback = fallback()
            },
            expect: None,
        },
        Case {
            name: "fallback with modifiers Value",
            mutate: |so| {
                so.spec.triggers[0].name = Some("q".into());
                so.spec.advanced = modifiers("q * 2", "5");
                if let Some(m) = so
                    .spec
                    .advanced
                    .as_mut()
                    .and_then(|a| a.scaling_modifiers.as_mut())
                {
                    m.metric_type = Some(ScalingModifiersMetricType::Value)
                }
                so.spec.fallback = fallback()
            },
            expect: Some((
                "spec.advanced.scalingModifiers.metricType",
                "must be AverageValue to have fallback enabled",
            )),
        },
        Case {
            name: "modifiers Value without fallback",
            mutate: |so| {
                so.spec.triggers[0].name = Some("q".into());
                so.spec.advanced = modifiers("q", "5");
                if let Some(m) = so
                    .spec
                    .advanced
                    .as_mut()
                    .and_then(|a| a.scaling_modifiers.as_mut())
                {
                    m.metric_type = Some(ScalingModifiersMetricType::Value)
                }
            },
            expect: None,
        },
        Case {
            name: "fallback behavior scalingModifiers with formula",
            mutate: |so| {
                so.spec.triggers[0].name = Some("q".into());
                so.spec.advanced = modifiers("q ?? 3", "5");
                so.spec.fallback = Some(Fallback {
                    failure_threshold: 3,
                    replicas: 5,
                    behavior: Some(FallbackBehavior::ScalingModifiers),
                })
            },
            expect: None,
        },
        Case {
            name: "fallback behavior scalingModifiers without formula",
            mutate: |so| {
                so.spec.fallback = Some(Fallback {
                    failure_threshold: 3,
                    replicas: 5,
                    behavior: Some(FallbackBehavior::ScalingModifiers),
                })
            },
            expect: Some((
                "spec.fallback.behavior",
                "needs spec.advanced.scalingModifiers.formula",
            )),
        },
        Case {
            name: "fallback behavior currentReplicas",
            mutate: |so| {
                so.spec.fallback = Some(Fallback {
                    failure_threshold: 3,
                    replicas: 5,
                    behavior: Some(FallbackBehavior::CurrentReplicas),
                })
            },
            expect: None,
        },
        // Scaling modifiers.
        Case {
            name: "formula over named triggers",
            mutate: |so| {
                so.spec.triggers = vec![named("aws-sqs-queue", "a"), named("kafka", "b")];
                so.spec.advanced = modifiers("(a + b) / 2", "2.5")
            },
            expect: None,
        },
        Case {
            name: "empty modifiers are ignored",
            mutate: |so| {
                so.spec.advanced = Some(AdvancedConfig {
                    scaling_modifiers: Some(ScalingModifiers::default()),
                    ..AdvancedConfig::default()
                })
            },
            expect: None,
        },
        Case {
            name: "modifiers without formula",
            mutate: |so| {
                so.spec.advanced = Some(AdvancedConfig {
                    scaling_modifiers: Some(ScalingModifiers {
                        target: Some("5".into()),
                        ..ScalingModifiers::default()
                    }),
                    ..AdvancedConfig::default()
                })
            },
            expect: Some(("spec.advanced.scalingModifiers.formula", "is mandatory")),
        },
        Case {
            name: "formula without target",
            mutate: |so| {
                so.spec.triggers[0].name = Some("q".into());
                so.spec.advanced = modifiers("q", "")
            },
            expect: Some(("spec.advanced.scalingModifiers.target", "target is empty")),
        },
        Case {
            name: "target zero",
            mutate: |so| {
                so.spec.triggers[0].name = Some("q".into());
                so.spec.advanced = modifiers("q", "0")
            },
            expect: Some(("spec.advanced.scalingModifiers.target", "greater than 0")),
        },
        Case {
            name: "target negative",
            mutate: |so| {
                so.spec.triggers[0].name = Some("q".into());
                so.spec.advanced = modifiers("q", "-2")
            },
            expect: Some(("spec.advanced.scalingModifiers.target", "greater than 0")),
        },
        Case {
            name: "target not a number",
            mutate: |so| {
                so.spec.triggers[0].name = Some("q".into());
                so.spec.advanced = modifiers("q", "ten")
            },
            expect: Some((
                "spec.advanced.scalingModifiers.target",
                "\"ten\" is not a number",
            )),
        },
        Case {
            name: "activation target not a number",
            mutate: |so| {
                so.spec.triggers[0].name = Some("q".into());
                so.spec.advanced = modifiers("q", "5");
                if let Some(m) = so
                    .spec
                    .advanced
                    .as_mut()
                    .and_then(|a| a.scaling_modifiers.as_mut())
                {
                    m.activation_target = Some("x".into())
                }
            },
            expect: Some((
                "spec.advanced.scalingModifiers.activationTarget",
                "is not a number",
            )),
        },
        Case {
            name: "formula with unnamed trigger",
            mutate: |so| so.spec.advanced = modifiers("q * 2", "5"),
            expect: Some((
                "spec.advanced.scalingModifiers.formula",
                "refers to q which is not the name of a trigger",
            )),
        },
        Case {
            name: "formula with unknown name",
            mutate: |so| {
                so.spec.triggers[0].name = Some("q".into());
                so.spec.advanced = modifiers("q + other", "5")
            },
            expect: Some((
                "spec.advanced.scalingModifiers.formula",
                "named triggers: q",
            )),
        },
        Case {
            name: "formula with a cpu trigger name",
            mutate: |so| {
                so.spec.triggers = vec![named("aws-sqs-queue", "q"), named("cpu", "load")];
                so.spec.advanced = modifiers("q + load", "5")
            },
            expect: Some(("spec.advanced.scalingModifiers.formula", "refers to load")),
        },
        Case {
            name: "formula with unbalanced parentheses",
            mutate: |so| {
                so.spec.triggers[0].name = Some("q".into());
                so.spec.advanced = modifiers("(q + 1", "5")
            },
            expect: Some((
                "spec.advanced.scalingModifiers.formula",
                "line 1, column 7: `(` at line 1, column 1 is not closed; add `)`",
            )),
        },
        Case {
            name: "formula with a stray operator",
            mutate: |so| {
                so.spec.triggers[0].name = Some("q".into());
                so.spec.advanced = modifiers("q + * 2", "5")
            },
            expect: Some((
                "spec.advanced.scalingModifiers.formula",
                "line 1, column 5: unexpected `*`",
            )),
        },
        Case {
            name: "formula with a bool result, refused when run at -1 as KEDA does",
            mutate: |so| {
                so.spec.triggers[0].name = Some("q".into());
                so.spec.advanced = modifiers("q > 1", "5")
            },
            expect: Some((
                "spec.advanced.scalingModifiers.formula",
                "evaluated to a bool, not a number",
            )),
        },
        Case {
            name: "formula with nil coalescing and a closure",
            mutate: |so| {
                so.spec.triggers = vec![named("aws-sqs-queue", "a"), named("kafka", "b")];
                so.spec.advanced = modifiers("count([a, b], {# > 1}) > 1 ? 5 : a ?? b ?? 0", "5")
            },
            expect: None,
        },
        Case {
            name: "formula with functions and literals",
            mutate: |so| {
                so.spec.triggers[0].name = Some("q".into());
                so.spec.advanced = modifiers("q > 10 ? max(q, 20) : float('3')", "5")
            },
            expect: None,
        },
    ];
    run(&base_scaled_object(), cases, ScaledObject::validate);
}

#[test]
fn scaled_object_name_lengths() {
    let cases: &[Case<ScaledObject>] = &[
        // keda-hpa- (9) + 54 = 63.
        Case {
            name: "name of 54",
            mutate: |so| so.metadata.name = Some("a".repeat(54)),
            expect: None,
        },
        Case {
            name: "name of 55 makes the HPA name too long",
            mutate: |so| so.metadata.name = Some("a".repeat(55)),
            expect: Some(("metadata.name", "HPA name \"keda-hpa-aaaa")),
        },
        Case {
            name: "name of 55 with a short HPA name",
            mutate: |so| {
                so.metadata.name = Some("a".repeat(55));
                so.spec.advanced = Some(AdvancedConfig {
                    horizontal_pod_autoscaler_config: Some(HorizontalPodAutoscalerConfig {
                        name: Some("short".into()),
                        behavior: None,
                    }),
                    ..AdvancedConfig::default()
                })
            },
            expect: None,
        },
        Case {
            name: "name of 64",
            mutate: |so| {
                so.metadata.name = Some("a".repeat(64));
                so.spec.advanced = Some(AdvancedConfig {
                    horizontal_pod_autoscaler_config: Some(HorizontalPodAutoscalerConfig {
                        name: Some("short".into()),
                        behavior: None,
                    }),
                    ..AdvancedConfig::default()
                })
            },
            expect: Some((
                "metadata.name",
                "is 64 characters long; must be no more than 63",
            )),
        },
        Case {
            name: "custom HPA name of 64",
            mutate: |so| {
                so.spec.advanced = Some(AdvancedConfig {
                    horizontal_pod_autoscaler_config: Some(HorizontalPodAutoscalerConfig {
                        name: Some("h".repeat(64)),
                        behavior: None,
                    }),
                    ..AdvancedConfig::default()
                })
            },
            expect: Some((
                "spec.advanced.horizontalPodAutoscalerConfig.name",
                "set spec.advanced.horizontalPodAutoscalerConfig.name to a shorter name",
            )),
        },
        Case {
            name: "empty custom HPA name falls back to the default",
            mutate: |so| {
                so.spec.advanced = Some(AdvancedConfig {
                    horizontal_pod_autoscaler_config: Some(HorizontalPodAutoscalerConfig {
                        name: Some(String::new()),
                        behavior: None,
                    }),
                    ..AdvancedConfig::default()
                })
            },
            expect: None,
        },
    ];
    run(&base_scaled_object(), cases, ScaledObject::validate);
}

#[test]
fn scaled_object_reports_every_problem_at_once() {
    let mut so = base_scaled_object();
    so.spec.min_replica_count = Some(20);
    so.spec.polling_interval = Some(0);
    so.spec.triggers.push(trigger("aws-sqs-queue"));
    so.spec.triggers[1].metric_type = Some(MetricTargetType::Utilization);
    let errors = so.validate().expect_err("invalid");
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.pollingInterval",
            "spec.minReplicaCount",
            "spec.triggers[1].metricType"
        ],
        "{errors:?}"
    );
    // The spec-only entry point gives the same answer minus the name rules.
    assert_eq!(so.spec.validate().expect_err("invalid"), errors);
}

#[test]
fn scaled_object_warnings() {
    let mut so = base_scaled_object();
    assert!(so.spec.warnings().is_empty());
    so.spec.min_replica_count = Some(2);
    so.spec.polling_interval = Some(30);
    so.spec.cooldown_period = Some(300);
    let warnings = so.spec.warnings();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].contains("PollingInterval is configured but is not relevant"));
    assert!(warnings[1].contains("CooldownPeriod is configured but is not relevant"));
    so.spec.idle_replica_count = Some(0);
    assert!(so.spec.warnings().is_empty());
}

fn base_scaled_job() -> ScaledJob {
    serde_json::from_value(json!({
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledJob",
        "metadata": {"name": "consumer"},
        "spec": {
            "jobTargetRef": {"template": {"spec": {
                "containers": [{"name": "c", "image": "busybox"}],
                "restartPolicy": "Never"
            }}},
            "triggers": [{"type": "rabbitmq", "metadata": {"queueName": "q", "value": "5"}}]
        }
    }))
    .expect("base ScaledJob deserializes")
}

#[test]
fn scaled_job_rules() {
    let cases: &[Case<ScaledJob>] = &[
        Case {
            name: "base",
            mutate: |_| {},
            expect: None,
        },
        Case {
            name: "all bounds at their minimum",
            mutate: |sj| {
                sj.spec.polling_interval = Some(1);
                sj.spec.successful_jobs_history_limit = Some(0);
                sj.spec.failed_jobs_history_limit = Some(0);
                sj.spec.min_replica_count = Some(0);
                sj.spec.max_replica_count = Some(1)
            },
            expect: None,
        },
        Case {
            name: "polling interval 0",
            mutate: |sj| sj.spec.polling_interval = Some(0),
            expect: Some(("spec.pollingInterval", "must be at least 1")),
        },
        Case {
            name: "negative successful history",
            mutate: |sj| sj.spec.successful_jobs_history_limit = Some(-1),
            expect: Some(("spec.successfulJobsHistoryLimit", "must be at least 0")),
        },
        Case {
            name: "negative failed history",
            mutate: |sj| sj.spec.failed_jobs_history_limit = Some(-1),
            expect: Some(("spec.failedJobsHistoryLimit", "must be at least 0")),
        },
        Case {
            name: "negative min",
            mutate: |sj| sj.spec.min_replica_count = Some(-1),
            expect: Some(("spec.minReplicaCount", "must be at least 0")),
        },
        Case {
            name: "max zero",
            mutate: |sj| sj.spec.max_replica_count = Some(0),
            expect: Some(("spec.maxReplicaCount", "must be at least 1")),
        },
        Case {
            name: "no triggers",
            mutate: |sj| sj.spec.triggers.clear(),
            expect: Some(("spec.triggers", "at least one trigger")),
        },
        Case {
            name: "duplicate names",
            mutate: |sj| sj.spec.triggers = vec![named("rabbitmq", "q"), named("kafka", "q")],
            expect: Some(("spec.triggers[1].name", "must be unique")),
        },
        Case {
            name: "metricType set",
            mutate: |sj| sj.spec.triggers[0].metric_type = Some(MetricTargetType::AverageValue),
            expect: Some((
                "spec.triggers[0].metricType",
                "cannot be set in ScaledJob triggers",
            )),
        },
        // KEDA only logs that useCachedMetrics does nothing for ScaledJobs.
        Case {
            name: "useCachedMetrics on rabbitmq",
            mutate: |sj| sj.spec.triggers[0].use_cached_metrics = Some(true),
            expect: None,
        },
        Case {
            name: "useCachedMetrics on cron",
            mutate: |sj| {
                sj.spec.triggers[0] = trigger("cron");
                sj.spec.triggers[0].use_cached_metrics = Some(true)
            },
            expect: Some(("spec.triggers[0].useCachedMetrics", "not supported")),
        },
    ];
    run(&base_scaled_job(), cases, ScaledJob::validate);
}

fn base_trigger_authentication() -> TriggerAuthentication {
    TriggerAuthentication::new("auth", Default::default())
}

fn identity(provider: PodIdentityProvider) -> Option<AuthPodIdentity> {
    Some(AuthPodIdentity {
        provider,
        ..AuthPodIdentity::default()
    })
}

fn oauth2(token_url: &str) -> Option<OAuth2> {
    Some(OAuth2 {
        client_id: "keda".into(),
        token_url: token_url.into(),
        ..OAuth2::default()
    })
}

fn set_identity(ta: &mut TriggerAuthentication, f: fn(&mut AuthPodIdentity)) {
    if let Some(identity) = ta.spec.pod_identity.as_mut() {
        f(identity);
    }
}

#[test]
fn trigger_authentication_rules() {
    let cases: &[Case<TriggerAuthentication>] = &[
        Case {
            name: "empty spec",
            mutate: |_| {},
            expect: None,
        },
        // AWS.
        Case {
            name: "aws plain",
            mutate: |ta| ta.spec.pod_identity = identity(PodIdentityProvider::Aws),
            expect: None,
        },
        Case {
            name: "aws roleArn with keda owner",
            mutate: |ta| {
                ta.spec.pod_identity = identity(PodIdentityProvider::Aws);
                set_identity(ta, |i| {
                    i.role_arn = Some("arn:aws:iam::1:role/r".into());
                    i.identity_owner = Some(IdentityOwner::Keda)
                })
            },
            expect: None,
        },
        Case {
            name: "aws roleArn with workload owner",
            mutate: |ta| {
                ta.spec.pod_identity = identity(PodIdentityProvider::Aws);
                set_identity(ta, |i| {
                    i.role_arn = Some("arn:aws:iam::1:role/r".into());
                    i.identity_owner = Some(IdentityOwner::Workload)
                })
            },
            expect: Some((
                "spec.podIdentity.roleArn",
                "can't be set when identityOwner is workload",
            )),
        },
        Case {
            name: "aws empty roleArn with workload owner",
            mutate: |ta| {
                ta.spec.pod_identity = identity(PodIdentityProvider::Aws);
                set_identity(ta, |i| {
                    i.role_arn = Some(String::new());
                    i.identity_owner = Some(IdentityOwner::Workload)
                })
            },
            expect: None,
        },
        Case {
            name: "aws externalID with roleArn",
            mutate: |ta| {
                ta.spec.pod_identity = identity(PodIdentityProvider::Aws);
                set_identity(ta, |i| {
                    i.role_arn = Some("arn:aws:iam::1:role/r".into());
                    i.external_id = Some("x".into())
                })
            },
            expect: None,
        },
        Case {
            name: "aws externalID without roleArn",
            mutate: |ta| {
                ta.spec.pod_identity = identity(PodIdentityProvider::Aws);
                set_identity(ta, |i| i.external_id = Some("x".into()))
            },
            expect: Some(("spec.podIdentity.externalID", "requires roleArn")),
        },
        Case {
            name: "aws externalID with empty roleArn",
            mutate: |ta| {
                ta.spec.pod_identity = identity(PodIdentityProvider::Aws);
                set_identity(ta, |i| {
                    i.external_id = Some("x".into());
                    i.role_arn = Some(String::new())
                })
            },
            expect: Some(("spec.podIdentity.externalID", "requires roleArn")),
        },
        // KEDA applies the AWS rules to provider `aws` only.
        Case {
            name: "aws-eks is not checked",
            mutate: |ta| {
                ta.spec.pod_identity = identity(PodIdentityProvider::AwsEks);
                set_identity(ta, |i| i.external_id = Some("x".into()))
            },
            expect: None,
        },
        // Azure.
        Case {
            name: "azure with ids",
            mutate: |ta| {
                ta.spec.pod_identity = identity(PodIdentityProvider::AzureWorkload);
                set_identity(ta, |i| {
                    i.identity_id = Some("id".into());
                    i.identity_tenant_id = Some("t".into());
                    i.identity_authority_host = Some("https://login".into())
                })
            },
            expect: None,
        },
        Case {
            name: "azure without ids",
            mutate: |ta| ta.spec.pod_identity = identity(PodIdentityProvider::AzureWorkload),
            expect: None,
        },
        Case {
            name: "azure empty identityId",
            mutate: |ta| {
                ta.spec.pod_identity = identity(PodIdentityProvider::AzureWorkload);
                set_identity(ta, |i| i.identity_id = Some(String::new()))
            },
            expect: Some(("spec.podIdentity.identityId", "is set but empty")),
        },
        Case {
            name: "azure authority without tenant",
            mutate: |ta| {
                ta.spec.pod_identity = identity(PodIdentityProvider::AzureWorkload);
                set_identity(ta, |i| {
                    i.identity_authority_host = Some("https://login".into())
                })
            },
            expect: Some((
                "spec.podIdentity.identityTenantId",
                "must be set when identityAuthorityHost is set",
            )),
        },
        Case {
            name: "azure empty tenant",
            mutate: |ta| {
                ta.spec.pod_identity = identity(PodIdentityProvider::AzureWorkload);
                set_identity(ta, |i| i.identity_tenant_id = Some(String::new()))
            },
            expect: Some(("spec.podIdentity.identityTenantId", "is set but empty")),
        },
        // OAuth2.
        Case {
            name: "oauth2 https",
            mutate: |ta| ta.spec.oauth2 = oauth2("https://auth.example.com/token"),
            expect: None,
        },
        Case {
            name: "oauth2 http with port and userinfo",
            mutate: |ta| ta.spec.oauth2 = oauth2("HTTP://u:p@auth:8080/token?x=1"),
            expect: None,
        },
        Case {
            name: "oauth2 empty client id",
            mutate: |ta| {
                ta.spec.oauth2 = oauth2("https://auth/token");
                if let Some(o) = ta.spec.oauth2.as_mut() {
                    o.client_id = String::new()
                }
            },
            expect: Some(("spec.oauth2.clientId", "is required")),
        },
        Case {
            name: "oauth2 empty token url",
            mutate: |ta| ta.spec.oauth2 = oauth2(""),
            expect: Some(("spec.oauth2.tokenUrl", "is required")),
        },
        Case {
            name: "oauth2 ftp token url",
            mutate: |ta| ta.spec.oauth2 = oauth2("ftp://auth/token"),
            expect: Some(("spec.oauth2.tokenUrl", "valid http or https URL")),
        },
        Case {
            name: "oauth2 token url without host",
            mutate: |ta| ta.spec.oauth2 = oauth2("https:///token"),
            expect: Some(("spec.oauth2.tokenUrl", "valid http or https URL")),
        },
        Case {
            name: "oauth2 relative token url",
            mutate: |ta| ta.spec.oauth2 = oauth2("/token"),
            expect: Some(("spec.oauth2.tokenUrl", "valid http or https URL")),
        },
    ];
    run(
        &base_trigger_authentication(),
        cases,
        TriggerAuthentication::validate,
    );
}
