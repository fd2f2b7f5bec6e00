//! Triggers, shared by ScaledObject and ScaledJob.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::open_enum::open_string_enum;

/// Trigger types that become HPA `Resource` metrics instead of external metrics.
pub const RESOURCE_TRIGGER_TYPES: [&str; 2] = ["cpu", "memory"];

/// ScaleTriggers reference the scaler that will be used
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaleTriggers {
    /// Scaler type, e.g. `aws-sqs-queue`, `cpu`, `cron`.
    #[serde(rename = "type")]
    #[schemars(length(min = 1))]
    pub type_: String,
    /// Optional name; the variable name in `advanced.scalingModifiers.formula`. Must be unique.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Serve the HPA from the value cached by the polling loop instead of querying the scaler.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub use_cached_metrics: Option<bool>,
    /// Scaler-specific parameters.
    pub metadata: BTreeMap<String, String>,
    /// AuthenticationRef points to the TriggerAuthentication or ClusterTriggerAuthentication object that
    /// is used to authenticate the scaler with the environment
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authentication_ref: Option<AuthenticationRef>,
    /// MetricTargetType specifies the type of metric being targeted, and should be either
    /// "Value", "AverageValue", or "Utilization"
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric_type: Option<MetricTargetType>,
}

impl ScaleTriggers {
    /// Whether this trigger is a `cpu` or `memory` (HPA resource metric) trigger.
    pub fn is_resource_metric(&self) -> bool {
        RESOURCE_TRIGGER_TYPES.contains(&self.type_.as_str())
    }

    /// The metric target type with KEDA's default (`AverageValue`) applied.
    pub fn metric_type(&self) -> MetricTargetType {
        self.metric_type
            .clone()
            .unwrap_or(MetricTargetType::AverageValue)
    }

    /// `useCachedMetrics` with KEDA's default (false) applied.
    pub fn use_cached_metrics(&self) -> bool {
        self.use_cached_metrics.unwrap_or(false)
    }

    /// The trigger name, treating an empty string as unset like KEDA does.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref().filter(|n| !n.is_empty())
    }
}

/// AuthenticationRef points to the TriggerAuthentication or ClusterTriggerAuthentication object that
/// is used to authenticate the scaler with the environment
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticationRef {
    pub name: String,
    /// Kind of the resource being referred to. Defaults to TriggerAuthentication.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<AuthenticationRefKind>,
}

impl AuthenticationRef {
    /// The referenced kind with KEDA's default (`TriggerAuthentication`) applied.
    pub fn kind(&self) -> AuthenticationRefKind {
        self.kind
            .unwrap_or(AuthenticationRefKind::TriggerAuthentication)
    }
}

/// Kind of the resource being referred to. Defaults to TriggerAuthentication.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum AuthenticationRefKind {
    #[default]
    TriggerAuthentication,
    ClusterTriggerAuthentication,
}

open_string_enum! {
    /// MetricTargetType specifies the type of metric being targeted, and should be either
    /// "Value", "AverageValue", or "Utilization"
    pub enum MetricTargetType {
        /// Per-pod average of the metric (KEDA's default).
        AverageValue => "AverageValue",
        /// Raw metric value.
        Value => "Value",
        /// Percentage of the pod resource request; cpu/memory triggers only.
        Utilization => "Utilization",
    }
}
