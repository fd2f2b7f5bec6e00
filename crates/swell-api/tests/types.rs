//! Behaviour of the types themselves: status round trips, defaults that are read but never
//! written, lenient handling of values KEDA leaves open.

use serde_json::{Value, json};
use swell_api::{
    ClusterTriggerAuthentication, ConditionStatus, HealthStatusType, MetricTargetType,
    MultipleScalersCalculation, PropagationPolicy, RolloutStrategy, ScaledJob, ScaledObject,
    ScalingStrategyType, conditions, defaults,
};

fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(value: &Value) -> T {
    let typed: T = serde_json::from_value(value.clone()).expect("deserializes");
    assert_eq!(&serde_json::to_value(&typed).expect("serializes"), value);
    typed
}

/// A ScaledObject as KEDA leaves it after reconciling (from `kubectl get -o json` of the seed's
/// demo app), including every status field.
#[test]
fn scaled_object_status_round_trips() {
    let so: ScaledObject = round_trip(&json!({
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {
            "name": "demo-app-scaledobject",
            "namespace": "demo-ns",
            "labels": {"scaledobject.keda.sh/name": "demo-app-scaledobject"},
            "finalizers": ["finalizer.keda.sh"]
        },
        "spec": {
            "scaleTargetRef": {"name": "demo-app"},
            "minReplicaCount": 0,
            "maxReplicaCount": 10,
            "pollingInterval": 30,
            "triggers": [{
                "type": "aws-sqs-queue",
                "authenticationRef": {"name": "demo-app-trigger-auth-aws-credentials"},
                "metadata": {"queueURL": "https://sqs.ca-central-1.amazonaws.com/111122223333/demo-app-sqs", "queueLength": "2", "awsRegion": "ca-central-1", "identityOwner": "pod"}
            }]
        },
        "status": {
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "ScaledObjectReady", "message": "ScaledObject is defined correctly and is ready for scaling"},
                {"type": "Active", "status": "False", "reason": "ScalerNotActive", "message": "Scaling is not performed because triggers are not active"},
                {"type": "Fallback", "status": "False", "reason": "NoFallbackFound", "message": "No fallbacks are active on this scaled object"},
                {"type": "Paused", "status": "Unknown"}
            ],
            "externalMetricNames": ["s0-aws-sqs-demo-app"],
            "resourceMetricNames": ["cpu"],
            "compositeScalerName": "",
            "health": {"s0-aws-sqs-demo-app": {"numberOfFailures": 0, "status": "Happy"}},
            "hpaName": "keda-hpa-demo-app-scaledobject",
            "lastActiveTime": "2023-02-16T20:18:48Z",
            "originalReplicaCount": 1,
            "pausedReplicaCount": 0,
            "scaleTargetGVKR": {"group": "apps", "kind": "Deployment", "resource": "deployments", "version": "v1"},
            "scaleTargetKind": "apps/v1.Deployment",
            "triggersTypes": "aws-sqs-queue",
            "authenticationsTypes": "demo-app-trigger-auth-aws-credentials",
            "triggersActivity": {"s0-aws-sqs-demo-app": {"isActive": false}}
        }
    }));
    let ready = so.condition(conditions::READY).expect("has Ready");
    assert!(ready.is_true());
    assert_eq!(
        ready.reason.as_deref(),
        Some(conditions::ready::SCALED_OBJECT_READY)
    );
    let paused = so.condition(conditions::PAUSED).expect("has Paused");
    assert!(paused.is_unknown());
    let status = so.status.as_ref().expect("status");
    let health = &status.health.as_ref().expect("health")["s0-aws-sqs-demo-app"];
    assert_eq!(health.status, Some(HealthStatusType::Happy));
    assert_eq!(
        status.scale_target_gvkr.as_ref().map(|g| g.gvk_string()),
        Some("apps/v1.Deployment".to_owned())
    );
    assert_eq!(so.hpa_name(), "keda-hpa-demo-app-scaledobject");
}

#[test]
fn scaled_job_status_round_trips() {
    let sj: ScaledJob = round_trip(&json!({
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledJob",
        "metadata": {"name": "consumer"},
        "spec": {
            "jobTargetRef": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}},
            "triggers": [{"type": "rabbitmq", "metadata": {"queueName": "q"}}]
        },
        "status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "ScaledJobReady", "message": "ScaledJob is defined correctly and is ready to scaling"}],
            "lastActiveTime": "2026-01-02T03:04:05Z",
            "Paused": "false",
            "triggersTypes": "rabbitmq",
            "authenticationsTypes": "",
            "externalMetricNames": ["s0-rabbitmq-q"],
            "triggersActivity": {"s0-rabbitmq-q": {"isActive": true}}
        }
    }));
    assert_eq!(
        sj.status.as_ref().and_then(|s| s.paused.as_deref()),
        Some("false")
    );
}

/// Reading defaults must not write them: an object that sets nothing serializes back to nothing.
#[test]
fn defaults_are_read_not_written() {
    let minimal = json!({
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "w"},
        "spec": {"scaleTargetRef": {"name": "w"}, "triggers": [{"type": "cron", "metadata": {}}]}
    });
    let so: ScaledObject = round_trip(&minimal);
    assert_eq!(so.spec.polling_interval(), defaults::POLLING_INTERVAL);
    assert_eq!(so.spec.cooldown_period(), 300);
    assert_eq!(so.spec.initial_cooldown_period(), 0);
    assert_eq!(so.spec.min_replica_count(), 0);
    assert_eq!(so.spec.max_replica_count(), 100);
    assert_eq!(so.spec.hpa_min_replicas(), 1);
    assert_eq!(so.spec.scale_target_ref.api_version(), "apps/v1");
    assert_eq!(so.spec.scale_target_ref.kind(), "Deployment");
    assert_eq!(
        so.spec.triggers[0].metric_type(),
        MetricTargetType::AverageValue
    );
    assert!(!so.spec.restore_to_original_replica_count());
    assert!(!so.spec.is_using_modifiers());
    assert_eq!(serde_json::to_value(&so).expect("serializes"), minimal);

    let sj: ScaledJob = round_trip(&json!({
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledJob",
        "metadata": {"name": "j"},
        "spec": {
            "jobTargetRef": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}},
            "triggers": [{"type": "cron", "metadata": {}}]
        }
    }));
    assert_eq!(sj.spec.polling_interval(), 30);
    assert_eq!(sj.spec.successful_jobs_history_limit(), 100);
    assert_eq!(sj.spec.failed_jobs_history_limit(), 100);
    assert_eq!(sj.spec.min_replica_count(), 0);
    assert_eq!(sj.spec.max_replica_count(), 100);
    assert_eq!(sj.spec.rollout_strategy(), RolloutStrategy::Immediate);
    assert_eq!(
        sj.spec.rollout_propagation_policy(),
        PropagationPolicy::Background
    );
    assert_eq!(sj.spec.scaling_strategy(), ScalingStrategyType::Default);
    assert_eq!(
        sj.spec.multiple_scalers_calculation(),
        MultipleScalersCalculation::Max
    );
    assert!(sj.spec.pending_pod_conditions().is_empty());
}

/// Explicit zero values and empty strings are user data, not "unset".
#[test]
fn explicit_values_survive() {
    let value = json!({
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "w"},
        "spec": {
            "scaleTargetRef": {"name": "w", "apiVersion": "", "kind": ""},
            "pollingInterval": 30,
            "cooldownPeriod": 0,
            "minReplicaCount": 0,
            "advanced": {"restoreToOriginalReplicaCount": false, "scalingModifiers": {}},
            "triggers": [{"type": "cron", "name": "", "useCachedMetrics": false, "metadata": {}, "metricType": "AverageValue"}]
        }
    });
    let so: ScaledObject = round_trip(&value);
    // Empty strings mean "use the default", as in KEDA.
    assert_eq!(so.spec.scale_target_ref.kind(), "Deployment");
    assert_eq!(so.spec.triggers[0].name(), None);
    assert_eq!(so.spec.cooldown_period(), 0);
}

/// Fields KEDA declares as free strings keep unknown values instead of failing to parse.
#[test]
fn open_strings_keep_unknown_values() {
    let value = json!({
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "w"},
        "spec": {
            "scaleTargetRef": {"name": "w"},
            "triggers": [{"type": "kafka", "metadata": {}, "metricType": "Averagevalue"}]
        },
        "status": {
            "conditions": [{"type": "Ready", "status": "Maybe"}],
            "health": {"m": {"status": "Sad"}}
        }
    });
    let so: ScaledObject = round_trip(&value);
    assert_eq!(
        so.spec.triggers[0].metric_type,
        Some(MetricTargetType::Other("Averagevalue".into()))
    );
    let ready = so.condition(conditions::READY).expect("has Ready");
    assert_eq!(ready.status, ConditionStatus::Other("Maybe".into()));
    assert!(ready.is_unknown());
    assert!(so.validate().is_err());
}

#[test]
fn cluster_trigger_authentication_shares_the_spec() {
    let value = json!({
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ClusterTriggerAuthentication",
        "metadata": {"name": "shared"},
        "spec": {"podIdentity": {"provider": "aws"}, "filePath": "/auth/x.json"},
        "status": {"scaledobjects": "a,b", "scaledjobs": "c"}
    });
    let cta: ClusterTriggerAuthentication = round_trip(&value);
    // Deref to the TriggerAuthentication spec.
    assert_eq!(cta.spec.file_path.as_deref(), Some("/auth/x.json"));
    assert!(cta.validate().is_ok());
}

#[test]
fn crds_keep_keda_defaults_and_rules() {
    let crds: Vec<Value> = swell_api::crds()
        .iter()
        .map(|c| serde_json::to_value(c).expect("serialises"))
        .collect();
    let schema = |name: &str| -> Value {
        crds.iter()
            .find(|c| c["metadata"]["name"] == name)
            .map(|c| c["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone())
            .unwrap_or(Value::Null)
    };
    let so = schema("scaledobjects.keda.sh");
    assert_eq!(
        so["properties"]["spec"]["properties"]["fallback"]["properties"]["behavior"]["default"],
        "static"
    );
    assert_eq!(
        so["properties"]["spec"]["x-kubernetes-validations"][0]["rule"],
        "!has(self.minReplicaCount) || self.minReplicaCount <= (has(self.maxReplicaCount) ? self.maxReplicaCount : 100)"
    );
    let ta = schema("triggerauthentications.keda.sh");
    assert_eq!(
        ta["properties"]["spec"]["properties"]["oauth2"]["properties"]["type"]["default"],
        "clientCredentials"
    );
    // The pod template keeps its full structure so the API server does not prune it.
    let sj = schema("scaledjobs.keda.sh");
    let pod = &sj["properties"]["spec"]["properties"]["jobTargetRef"]["properties"]["template"]["properties"]
        ["spec"];
    assert!(pod["properties"]["containers"]["items"]["properties"]["image"].is_object());
    assert!(pod.get("x-kubernetes-preserve-unknown-fields").is_none());
    // No schema carries `nullable`: KEDA's does not, so explicit nulls are pruned alike.
    for crd in &crds {
        assert!(!crd.to_string().contains("\"nullable\""));
    }
}
