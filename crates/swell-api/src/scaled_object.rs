//! `ScaledObject`: scales any `/scale` resource through an HPA it owns.

use std::collections::BTreeMap;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscalerBehavior;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::defaults;
use crate::status::{Condition, GroupVersionKindResource, HealthStatus, TriggerActivityStatus};
use crate::trigger::ScaleTriggers;

/// ScaledObjectSpec is the spec for a ScaledObject resource
// clippy reads the repeated `printcolumn(type_ = …)` arguments as duplicate attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "keda.sh",
    version = "v1alpha1",
    kind = "ScaledObject",
    plural = "scaledobjects",
    singular = "scaledobject",
    shortname = "so",
    namespaced,
    status = "ScaledObjectStatus",
    derive = "PartialEq",
    doc = "ScaledObject is a specification for a ScaledObject resource",
    printcolumn(
        name = "ScaleTargetKind",
        type_ = "string",
        json_path = ".status.scaleTargetKind"
    ),
    printcolumn(
        name = "ScaleTargetName",
        type_ = "string",
        json_path = ".spec.scaleTargetRef.name"
    ),
    printcolumn(name = "Min", type_ = "integer", json_path = ".spec.minReplicaCount"),
    printcolumn(name = "Max", type_ = "integer", json_path = ".spec.maxReplicaCount"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Active",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Active\")].status"
    ),
    printcolumn(
        name = "Fallback",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Fallback\")].status"
    ),
    printcolumn(
        name = "Paused",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Paused\")].status"
    ),
    printcolumn(
        name = "Triggers",
        type_ = "string",
        json_path = ".status.triggersTypes"
    ),
    printcolumn(
        name = "Authentications",
        type_ = "string",
        json_path = ".status.authenticationsTypes"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "message": "minReplicaCount must be less than or equal to maxReplicaCount",
    "rule": "!has(self.minReplicaCount) || self.minReplicaCount <= (has(self.maxReplicaCount) ? self.maxReplicaCount : 100)"
}]))]
pub struct ScaledObjectSpec {
    /// ScaleTarget holds the reference to the scale target Object
    pub scale_target_ref: ScaleTarget,
    /// Seconds between trigger checks (default 30).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub polling_interval: Option<i32>,
    /// Seconds after creation before the first scale to zero (default 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub initial_cooldown_period: Option<i32>,
    /// Seconds after the last active trigger before scaling to zero/idle (default 300).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub cooldown_period: Option<i32>,
    /// Replica count while no trigger is active; must be below minReplicaCount.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub idle_replica_count: Option<i32>,
    /// Lower bound (default 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub min_replica_count: Option<i32>,
    /// Upper bound (default 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_replica_count: Option<i32>,
    /// AdvancedConfig specifies advance scaling options
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advanced: Option<AdvancedConfig>,
    #[schemars(length(min = 1))]
    pub triggers: Vec<ScaleTriggers>,
    /// Fallback is the spec for fallback options
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Fallback>,
}

impl ScaledObjectSpec {
    /// `pollingInterval` with KEDA's default applied.
    pub fn polling_interval(&self) -> i32 {
        self.polling_interval.unwrap_or(defaults::POLLING_INTERVAL)
    }

    /// `cooldownPeriod` with KEDA's default applied.
    pub fn cooldown_period(&self) -> i32 {
        self.cooldown_period.unwrap_or(defaults::COOLDOWN_PERIOD)
    }

    /// `initialCooldownPeriod` with KEDA's default applied.
    pub fn initial_cooldown_period(&self) -> i32 {
        self.initial_cooldown_period
            .unwrap_or(defaults::INITIAL_COOLDOWN_PERIOD)
    }

    /// `minReplicaCount` with KEDA's default applied.
    pub fn min_replica_count(&self) -> i32 {
        self.min_replica_count
            .unwrap_or(defaults::MIN_REPLICA_COUNT)
    }

    /// `maxReplicaCount` with KEDA's default applied.
    pub fn max_replica_count(&self) -> i32 {
        self.max_replica_count
            .unwrap_or(defaults::MAX_REPLICA_COUNT)
    }

    /// `minReplicas` for the HPA: the HPA cannot express zero, KEDA scales 0<->1 itself.
    pub fn hpa_min_replicas(&self) -> i32 {
        self.min_replica_count().max(defaults::HPA_MIN_REPLICAS)
    }

    /// The custom HPA name from `advanced.horizontalPodAutoscalerConfig.name`, if non-empty.
    pub fn custom_hpa_name(&self) -> Option<&str> {
        self.advanced
            .as_ref()?
            .horizontal_pod_autoscaler_config
            .as_ref()?
            .name
            .as_deref()
            .filter(|n| !n.is_empty())
    }

    /// The HPA name KEDA uses for a ScaledObject called `scaled_object_name`.
    pub fn hpa_name(&self, scaled_object_name: &str) -> String {
        match self.custom_hpa_name() {
            Some(name) => name.to_owned(),
            None => format!("{}{scaled_object_name}", defaults::HPA_NAME_PREFIX),
        }
    }

    /// `advanced.horizontalPodAutoscalerConfig.behavior`, copied verbatim into the HPA.
    pub fn hpa_behavior(&self) -> Option<&HorizontalPodAutoscalerBehavior> {
        self.advanced
            .as_ref()?
            .horizontal_pod_autoscaler_config
            .as_ref()?
            .behavior
            .as_ref()
    }

    /// `advanced.restoreToOriginalReplicaCount` with KEDA's default (false) applied.
    pub fn restore_to_original_replica_count(&self) -> bool {
        self.advanced
            .as_ref()
            .and_then(|a| a.restore_to_original_replica_count)
            .unwrap_or(false)
    }

    /// The scaling modifiers when they are in use. KEDA treats an all-empty
    /// `scalingModifiers: {}` as not set.
    pub fn scaling_modifiers(&self) -> Option<&ScalingModifiers> {
        self.advanced
            .as_ref()?
            .scaling_modifiers
            .as_ref()
            .filter(|m| !m.is_empty())
    }

    /// Whether `advanced.scalingModifiers` is in use.
    pub fn is_using_modifiers(&self) -> bool {
        self.scaling_modifiers().is_some()
    }

    /// Whether every trigger is cpu/memory; KEDA then treats the object as always active.
    pub fn has_only_resource_triggers(&self) -> bool {
        !self.triggers.is_empty() && self.triggers.iter().all(ScaleTriggers::is_resource_metric)
    }
}

/// ScaleTarget holds the reference to the scale target Object
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaleTarget {
    #[schemars(length(min = 1))]
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Container whose env resolves trigger parameters (default: the first container).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env_source_container_name: Option<String>,
}

impl ScaleTarget {
    /// `apiVersion` with KEDA's default (`apps/v1`) applied; empty counts as unset.
    pub fn api_version(&self) -> &str {
        self.api_version
            .as_deref()
            .filter(|s| !s.is_empty())
            .unwrap_or(defaults::SCALE_TARGET_API_VERSION)
    }

    /// `kind` with KEDA's default (`Deployment`) applied; empty counts as unset.
    pub fn kind(&self) -> &str {
        self.kind
            .as_deref()
            .filter(|s| !s.is_empty())
            .unwrap_or(defaults::SCALE_TARGET_KIND)
    }
}

/// AdvancedConfig specifies advance scaling options
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdvancedConfig {
    /// HorizontalPodAutoscalerConfig specifies horizontal scale config
    #[serde(skip_serializing_if = "Option::is_none")]
    pub horizontal_pod_autoscaler_config: Option<HorizontalPodAutoscalerConfig>,
    /// Scale the target back to `status.originalReplicaCount` when the ScaledObject is deleted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore_to_original_replica_count: Option<bool>,
    /// ScalingModifiers describes advanced scaling logic options like formula
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scaling_modifiers: Option<ScalingModifiers>,
}

/// HorizontalPodAutoscalerConfig specifies horizontal scale config
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HorizontalPodAutoscalerConfig {
    /// HorizontalPodAutoscalerBehavior configures the scaling behavior of the target
    /// in both Up and Down directions (scaleUp and scaleDown fields respectively).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub behavior: Option<HorizontalPodAutoscalerBehavior>,
    /// HPA name (default `keda-hpa-<scaledobject>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// ScalingModifiers describes advanced scaling logic options like formula
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScalingModifiers {
    /// expr-lang expression over trigger names, e.g. `(queue_a + queue_b) / 2`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub formula: Option<String>,
    /// Target value of the composite metric; must parse as a float > 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activation_target: Option<String>,
    /// MetricTargetType specifies the type of metric being targeted, and should be either
    /// "Value", "AverageValue", or "Utilization"
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric_type: Option<ScalingModifiersMetricType>,
}

impl ScalingModifiers {
    /// KEDA compares against the zero value, so empty strings count as unset.
    pub fn is_empty(&self) -> bool {
        let blank = |s: &Option<String>| s.as_deref().is_none_or(str::is_empty);
        blank(&self.formula)
            && blank(&self.target)
            && blank(&self.activation_target)
            && self.metric_type.is_none()
    }

    /// `target` as a number (admission requires one greater than 0).
    pub fn target_value(&self) -> Option<f64> {
        self.target
            .as_deref()
            .and_then(crate::validation::parse_float)
    }

    /// `activationTarget` as a number, KEDA's default 0 when unset.
    pub fn activation_value(&self) -> f64 {
        self.activation_target
            .as_deref()
            .and_then(crate::validation::parse_float)
            .unwrap_or(0.0)
    }

    /// `metricType` with KEDA's default (`AverageValue`) applied.
    pub fn metric_type(&self) -> ScalingModifiersMetricType {
        self.metric_type.unwrap_or_default()
    }
}

/// The metric target type of the composite metric.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ScalingModifiersMetricType {
    #[default]
    AverageValue,
    Value,
}

/// Fallback is the spec for fallback options
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Fallback {
    /// Consecutive failures of a metric before fallback replicas are used.
    #[schemars(range(min = 0))]
    pub failure_threshold: i32,
    /// Replica count to report while falling back.
    #[schemars(range(min = 0))]
    pub replicas: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "static"))]
    pub behavior: Option<FallbackBehavior>,
}

impl Fallback {
    /// `behavior` with the CRD default (`static`) applied.
    pub fn behavior(&self) -> FallbackBehavior {
        self.behavior.unwrap_or_default()
    }
}

/// How the fallback replica count is derived.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum FallbackBehavior {
    /// Always `fallback.replicas`.
    #[default]
    Static,
    /// The current replica count.
    CurrentReplicas,
    /// max(current, fallback.replicas).
    CurrentReplicasIfHigher,
    /// min(current, fallback.replicas).
    CurrentReplicasIfLower,
    /// A failing trigger is nil in the formula so `??` can substitute it.
    ScalingModifiers,
}

/// ScaledObjectStatus is the status for a ScaledObject resource
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaledObjectStatus {
    /// e.g. `apps/v1.Deployment`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale_target_kind: Option<String>,
    /// GroupVersionKindResource provides unified structure for
    /// schema.GroupVersionKind and Resource
    #[serde(rename = "scaleTargetGVKR", skip_serializing_if = "Option::is_none")]
    pub scale_target_gvkr: Option<GroupVersionKindResource>,
    /// Replica count of the target before KEDA first scaled it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_replica_count: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_active_time: Option<Time>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_metric_names: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_metric_names: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub composite_scaler_name: Option<String>,
    /// Conditions an array representation to store multiple Conditions
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
    /// Per-metric failure counters that drive fallback.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<BTreeMap<String, HealthStatus>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused_replica_count: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hpa_name: Option<String>,
    /// Comma-joined trigger types, shown by `kubectl get`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub triggers_types: Option<String>,
    /// Comma-joined authentication names, shown by `kubectl get`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authentications_types: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub triggers_activity: Option<BTreeMap<String, TriggerActivityStatus>>,
}

impl ScaledObject {
    /// The HPA name KEDA uses for this object.
    pub fn hpa_name(&self) -> String {
        self.spec
            .hpa_name(self.metadata.name.as_deref().unwrap_or_default())
    }

    /// A condition from the status by type (see [`crate::conditions`]).
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        let conditions = self.status.as_ref()?.conditions.as_deref();
        crate::status::find_condition(conditions, type_)
    }
}
