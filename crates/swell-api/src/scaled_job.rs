//! `ScaledJob`: creates Kubernetes Jobs from a template as trigger load appears.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::JobSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::defaults;
use crate::status::{Condition, TriggerActivityStatus};
use crate::trigger::ScaleTriggers;

/// ScaledJobSpec defines the desired state of ScaledJob
// clippy reads the repeated `printcolumn(type_ = …)` arguments as duplicate attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "keda.sh",
    version = "v1alpha1",
    kind = "ScaledJob",
    plural = "scaledjobs",
    singular = "scaledjob",
    shortname = "sj",
    namespaced,
    status = "ScaledJobStatus",
    derive = "PartialEq",
    doc = "ScaledJob is the Schema for the scaledjobs API",
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
pub struct ScaledJobSpec {
    /// JobSpec describes how the job execution will look like.
    pub job_target_ref: Box<JobSpec>,
    /// Seconds between trigger checks (default 30).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub polling_interval: Option<i32>,
    /// Finished successful Jobs to keep (default 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub successful_jobs_history_limit: Option<i32>,
    /// Finished failed Jobs to keep (default 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub failed_jobs_history_limit: Option<i32>,
    /// Container whose env resolves trigger parameters (default: the first container).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env_source_container_name: Option<String>,
    /// Jobs kept running even without load (default 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub min_replica_count: Option<i32>,
    /// Upper bound on running Jobs (default 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_replica_count: Option<i32>,
    /// Deprecated: Use Rollout.Strategy instead (see <https://github.com/kedacore/keda/issues/3596>).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout_strategy: Option<RolloutStrategy>,
    /// Rollout defines the strategy for job rollouts
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
    /// ScalingStrategy defines the strategy of Scaling
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scaling_strategy: Option<ScalingStrategy>,
    #[schemars(length(min = 1))]
    pub triggers: Vec<ScaleTriggers>,
}

impl ScaledJobSpec {
    /// `pollingInterval` with KEDA's default applied.
    pub fn polling_interval(&self) -> i32 {
        self.polling_interval.unwrap_or(defaults::POLLING_INTERVAL)
    }

    /// `successfulJobsHistoryLimit` with KEDA's default applied.
    pub fn successful_jobs_history_limit(&self) -> i32 {
        self.successful_jobs_history_limit
            .unwrap_or(defaults::SUCCESSFUL_JOBS_HISTORY_LIMIT)
    }

    /// `failedJobsHistoryLimit` with KEDA's default applied.
    pub fn failed_jobs_history_limit(&self) -> i32 {
        self.failed_jobs_history_limit
            .unwrap_or(defaults::FAILED_JOBS_HISTORY_LIMIT)
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

    /// The effective rollout strategy. The deprecated top-level `rolloutStrategy` wins when set,
    /// as in KEDA; anything but `gradual` deletes Jobs of older generations.
    pub fn rollout_strategy(&self) -> RolloutStrategy {
        self.rollout_strategy
            .or_else(|| self.rollout.as_ref().and_then(|r| r.strategy))
            .unwrap_or(RolloutStrategy::Immediate)
    }

    /// Delete propagation for Jobs removed by an immediate rollout (default background).
    pub fn rollout_propagation_policy(&self) -> PropagationPolicy {
        self.rollout
            .as_ref()
            .and_then(|r| r.propagation_policy)
            .unwrap_or(PropagationPolicy::Background)
    }

    /// `scalingStrategy.strategy` with KEDA's default applied.
    pub fn scaling_strategy(&self) -> ScalingStrategyType {
        self.scaling_strategy
            .as_ref()
            .and_then(|s| s.strategy)
            .unwrap_or_default()
    }

    /// `scalingStrategy.multipleScalersCalculation` with KEDA's default (`max`) applied.
    pub fn multiple_scalers_calculation(&self) -> MultipleScalersCalculation {
        self.scaling_strategy
            .as_ref()
            .and_then(|s| s.multiple_scalers_calculation)
            .unwrap_or_default()
    }

    /// `scalingStrategy.pendingPodConditions`, empty when unset.
    pub fn pending_pod_conditions(&self) -> &[String] {
        self.scaling_strategy
            .as_ref()
            .and_then(|s| s.pending_pod_conditions.as_deref())
            .unwrap_or_default()
    }
}

/// Rollout defines the strategy for job rollouts
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rollout {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy: Option<RolloutStrategy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub propagation_policy: Option<PropagationPolicy>,
}

/// What happens to running Jobs when the ScaledJob changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum RolloutStrategy {
    Gradual,
    Immediate,
}

/// Delete propagation for Jobs removed on rollout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum PropagationPolicy {
    Foreground,
    Background,
}

/// ScalingStrategy defines the strategy of Scaling
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScalingStrategy {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy: Option<ScalingStrategyType>,
    /// `custom` strategy: subtracted from the queue length.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_scaling_queue_length_deduction: Option<i32>,
    /// `custom` strategy: float, the share of running Jobs subtracted (a string in KEDA's API).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_scaling_running_job_percentage: Option<String>,
    /// Pod conditions that must all be true for a Job's pod to count as no longer pending.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_pod_conditions: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multiple_scalers_calculation: Option<MultipleScalersCalculation>,
}

impl ScalingStrategy {
    /// `customScalingQueueLengthDeduction` with its default (0) applied.
    pub fn custom_scaling_queue_length_deduction(&self) -> i32 {
        self.custom_scaling_queue_length_deduction
            .unwrap_or(defaults::CUSTOM_SCALING_QUEUE_LENGTH_DEDUCTION)
    }

    /// The parsed `customScalingRunningJobPercentage`: `Ok(1.0)` when unset, `Err(raw)` when it
    /// does not parse (KEDA then falls back to the `default` strategy).
    pub fn custom_scaling_running_job_percentage(&self) -> Result<f64, &str> {
        match self.custom_scaling_running_job_percentage.as_deref() {
            None => Ok(defaults::CUSTOM_SCALING_RUNNING_JOB_PERCENTAGE),
            Some(raw) => raw.trim().parse::<f64>().map_err(|_| raw),
        }
    }
}

/// How the number of Jobs to create is computed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ScalingStrategyType {
    #[default]
    Default,
    Custom,
    Accurate,
    Eager,
}

/// How the values of several triggers are combined.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum MultipleScalersCalculation {
    Min,
    Avg,
    Sum,
    #[default]
    Max,
}

/// ScaledJobStatus defines the observed state of ScaledJob
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaledJobStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_active_time: Option<Time>,
    /// Conditions an array representation to store multiple Conditions
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
    /// Capitalised in KEDA's API (json tag `Paused`).
    #[serde(rename = "Paused", skip_serializing_if = "Option::is_none")]
    pub paused: Option<String>,
    /// Comma-joined trigger types, shown by `kubectl get`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub triggers_types: Option<String>,
    /// Comma-joined authentication names, shown by `kubectl get`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authentications_types: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_metric_names: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub triggers_activity: Option<BTreeMap<String, TriggerActivityStatus>>,
}

impl ScaledJob {
    /// A condition from the status by type (see [`crate::conditions`]).
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        let conditions = self.status.as_ref()?.conditions.as_deref();
        crate::status::find_condition(conditions, type_)
    }
}
