//! KEDA's runtime defaults.
//!
//! KEDA applies these in the operator, not in the CRD, so they are never written into user
//! objects; read them through the accessor methods on the spec types.

/// `pollingInterval` (seconds) for ScaledObject and ScaledJob.
pub const POLLING_INTERVAL: i32 = 30;
/// `cooldownPeriod` (seconds).
pub const COOLDOWN_PERIOD: i32 = 300;
/// `initialCooldownPeriod` (seconds).
pub const INITIAL_COOLDOWN_PERIOD: i32 = 0;
/// `minReplicaCount` for ScaledObject and ScaledJob.
pub const MIN_REPLICA_COUNT: i32 = 0;
/// `maxReplicaCount` for ScaledObject and ScaledJob.
pub const MAX_REPLICA_COUNT: i32 = 100;
/// The HPA cannot go below one replica; KEDA handles 0 itself.
pub const HPA_MIN_REPLICAS: i32 = 1;
/// ScaledJob `successfulJobsHistoryLimit`.
pub const SUCCESSFUL_JOBS_HISTORY_LIMIT: i32 = 100;
/// ScaledJob `failedJobsHistoryLimit`.
pub const FAILED_JOBS_HISTORY_LIMIT: i32 = 100;
/// `scaleTargetRef.apiVersion`.
pub const SCALE_TARGET_API_VERSION: &str = "apps/v1";
/// `scaleTargetRef.kind`.
pub const SCALE_TARGET_KIND: &str = "Deployment";
/// Prefix of the generated HPA name (`keda-hpa-<scaledobject>`).
pub const HPA_NAME_PREFIX: &str = "keda-hpa-";
/// Metric name of the single external metric that replaces all triggers when
/// `advanced.scalingModifiers` is used.
pub const COMPOSITE_METRIC_NAME: &str = "composite-metric";
/// ScaledJob `scalingStrategy.customScalingRunningJobPercentage` when unset.
pub const CUSTOM_SCALING_RUNNING_JOB_PERCENTAGE: f64 = 1.0;
/// ScaledJob `scalingStrategy.customScalingQueueLengthDeduction` when unset.
pub const CUSTOM_SCALING_QUEUE_LENGTH_DEDUCTION: i32 = 0;
