//! Kubernetes event reasons, spelled exactly as KEDA emits them (`pkg/eventreason`), so event
//! filters and alerts written for KEDA keep matching.

// ScaledObject lifecycle.
pub const SCALED_OBJECT_READY: &str = "ScaledObjectReady";
pub const SCALED_OBJECT_CHECK_FAILED: &str = "ScaledObjectCheckFailed";
pub const SCALED_OBJECT_UPDATE_FAILED: &str = "ScaledObjectUpdateFailed";
/// KEDA emits this one as a Warning.
pub const SCALED_OBJECT_DELETED: &str = "ScaledObjectDeleted";
pub const SCALED_OBJECT_PAUSED: &str = "ScaledObjectPaused";
pub const SCALED_OBJECT_UNPAUSED: &str = "ScaledObjectUnpaused";
pub const SCALED_OBJECT_FALLBACK_ACTIVATED: &str = "ScaledObjectFallbackActivated";
pub const SCALED_OBJECT_FALLBACK_DEACTIVATED: &str = "ScaledObjectFallbackDeactivated";

// ScaledJob lifecycle.
pub const SCALED_JOB_READY: &str = "ScaledJobReady";
pub const SCALED_JOB_CHECK_FAILED: &str = "ScaledJobCheckFailed";
pub const SCALED_JOB_UPDATE_FAILED: &str = "ScaledJobUpdateFailed";
pub const SCALED_JOB_DELETED: &str = "ScaledJobDeleted";
pub const SCALED_JOB_PAUSED: &str = "ScaledJobPaused";
pub const SCALED_JOB_UNPAUSED: &str = "ScaledJobUnpaused";
pub const SCALED_JOB_PAUSE_FAILED: &str = "ScaledJobPauseFailed";
pub const SCALED_JOB_ACTIVE: &str = "ScaledJobActive";
pub const SCALED_JOB_INACTIVE: &str = "ScaledJobInactive";
pub const SCALED_JOB_ROLLOUT_CLEANUP_STARTED: &str = "ScaledJobRolloutCleanupStarted";
pub const SCALED_JOB_ROLLOUT_CLEANUP_COMPLETED: &str = "ScaledJobRolloutCleanupCompleted";
pub const SCALED_JOB_ROLLOUT_CLEANUP_FAILED: &str = "ScaledJobRolloutCleanupFailed";
pub const KEDA_JOBS_CREATED: &str = "KEDAJobsCreated";
pub const KEDA_JOB_CREATE_FAILED: &str = "KEDAJobCreateFailed";

// Scalers.
/// "Started scalers watch", then one "Scaler `<type>` is built" per trigger.
pub const KEDA_SCALERS_STARTED: &str = "KEDAScalersStarted";
pub const KEDA_SCALERS_STOPPED: &str = "KEDAScalersStopped";
/// Message is the scaler's error text.
pub const KEDA_SCALER_FAILED: &str = "KEDAScalerFailed";
/// A trigger failed as a source of the scalingModifiers formula.
pub const KEDA_METRIC_SOURCE_FAILED: &str = "KEDAMetricSourceFailed";
pub const KEDA_SCALER_INFO: &str = "KEDAScalerInfo";
/// Swell's own (KEDA has none): the external metrics API was asked for a metric of this
/// ScaledObject that it does not serve, so the HPA cannot scale on it.
pub const METRIC_NOT_SERVED: &str = "MetricNotServed";

// Scale target.
/// "Scaled apps/v1.Deployment ns/x from 0 to 1, triggered by …"
pub const KEDA_SCALE_TARGET_ACTIVATED: &str = "KEDAScaleTargetActivated";
/// "Deactivated apps/v1.Deployment ns/x from 1 to 0"
pub const KEDA_SCALE_TARGET_DEACTIVATED: &str = "KEDAScaleTargetDeactivated";
pub const KEDA_SCALE_TARGET_ACTIVATION_FAILED: &str = "KEDAScaleTargetActivationFailed";
pub const KEDA_SCALE_TARGET_DEACTIVATION_FAILED: &str = "KEDAScaleTargetDeactivationFailed";

// Authentication.
pub const TRIGGER_AUTHENTICATION_ADDED: &str = "TriggerAuthenticationAdded";
/// KEDA's constant for a *namespaced* TriggerAuthentication update carries the cluster kind's
/// string (a copy-paste slip upstream); kept identical so existing event filters match.
pub const TRIGGER_AUTHENTICATION_UPDATED: &str = "ClusterTriggerAuthenticationUpdated";
pub const TRIGGER_AUTHENTICATION_DELETED: &str = "TriggerAuthenticationDeleted";
pub const TRIGGER_AUTHENTICATION_FAILED: &str = "TriggerAuthenticationFailed";
pub const CLUSTER_TRIGGER_AUTHENTICATION_ADDED: &str = "ClusterTriggerAuthenticationAdded";
pub const CLUSTER_TRIGGER_AUTHENTICATION_UPDATED: &str = "ClusterTriggerAuthenticationUpdated";
pub const CLUSTER_TRIGGER_AUTHENTICATION_DELETED: &str = "ClusterTriggerAuthenticationDeleted";
pub const CLUSTER_TRIGGER_AUTHENTICATION_FAILED: &str = "ClusterTriggerAuthenticationFailed";
