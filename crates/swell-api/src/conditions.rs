//! Condition types, reasons and messages, spelled exactly as KEDA writes them so dashboards,
//! `kubectl wait --for=condition=…` and alerts built for KEDA keep working.

// Condition types.
pub const READY: &str = "Ready";
pub const ACTIVE: &str = "Active";
pub const FALLBACK: &str = "Fallback";
pub const PAUSED: &str = "Paused";
/// Mirrors the HPA's `ScalingActive` condition (KEDA 2.20.2+).
pub const HPA_ACTIVE: &str = "HPAActive";

/// Condition statuses (`metav1.ConditionStatus`).
pub mod status {
    pub const TRUE: &str = "True";
    pub const FALSE: &str = "False";
    pub const UNKNOWN: &str = "Unknown";
}

/// Ready condition reasons.
pub mod ready {
    /// True: ScaledObject accepted and scaling.
    pub const SCALED_OBJECT_READY: &str = "ScaledObjectReady";
    /// True: ScaledJob accepted and scaling.
    pub const SCALED_JOB_READY: &str = "ScaledJobReady";
    /// False: the spec failed a check; message is `<msg>: <err>`.
    pub const SCALED_OBJECT_CHECK_FAILED: &str = "ScaledObjectCheckFailed";
    /// False: the ScaledJob spec failed a check.
    pub const SCALED_JOB_CHECK_FAILED: &str = "ScaledJobCheckFailed";
    /// False: every trigger failed.
    pub const TRIGGER_ERROR: &str = "TriggerError";
    /// Unknown: some triggers failed, at least one is active.
    pub const PARTIAL_TRIGGER_ERROR: &str = "PartialTriggerError";
    /// False: the target's replica count could not be read.
    pub const ERROR_GETTING_CURRENT_REPLICAS: &str = "ErrorGettingCurrentReplicas";

    pub const SCALED_OBJECT_READY_MESSAGE: &str =
        "ScaledObject is defined correctly and is ready for scaling";
    pub const SCALED_JOB_READY_MESSAGE: &str =
        "ScaledJob is defined correctly and is ready to scaling";
    pub const SCALED_OBJECT_TRIGGER_ERROR_MESSAGE: &str =
        "Triggers defined in ScaledObject are not working correctly";
    pub const SCALED_JOB_TRIGGER_ERROR_MESSAGE: &str =
        "Triggers defined in ScaledJob are not working correctly";
    pub const SCALED_OBJECT_PARTIAL_TRIGGER_ERROR_MESSAGE: &str =
        "Some triggers defined in ScaledObject are not working correctly";
    pub const SCALED_JOB_PARTIAL_TRIGGER_ERROR_MESSAGE: &str =
        "Some triggers defined in ScaledJob are not working correctly";
}

/// Active condition reasons.
pub mod active {
    pub const SCALER_ACTIVE: &str = "ScalerActive";
    pub const SCALER_NOT_ACTIVE: &str = "ScalerNotActive";
    /// False: inactive but still inside `cooldownPeriod`.
    pub const SCALER_COOLDOWN: &str = "ScalerCooldown";
    pub const UNKNOWN_STATE: &str = "UnknownState";

    pub const SCALER_ACTIVE_MESSAGE: &str = "Scaling is performed because triggers are active";
    /// True under `autoscaling.keda.sh/force-activation` (KEDA's message).
    pub const SCALER_FORCED_MESSAGE: &str =
        "Scaling is performed because activation is being forced by annotation";
    pub const SCALER_NOT_ACTIVE_MESSAGE: &str =
        "Scaling is not performed because triggers are not active";
    pub const SCALER_COOLDOWN_MESSAGE: &str = "Scaler cooling down because triggers are not active";
}

/// Fallback condition reasons.
pub mod fallback {
    pub const FALLBACK_EXISTS: &str = "FallbackExists";
    pub const NO_FALLBACK_FOUND: &str = "NoFallbackFound";

    pub const FALLBACK_EXISTS_MESSAGE: &str =
        "At least one trigger is falling back on this scaled object";
    pub const NO_FALLBACK_FOUND_MESSAGE: &str = "No fallbacks are active on this scaled object";
}

/// Paused condition reasons.
pub mod paused {
    pub const SCALED_OBJECT_PAUSED: &str = "ScaledObjectPaused";
    pub const SCALED_OBJECT_UNPAUSED: &str = "ScaledObjectUnpaused";
    pub const SCALED_JOB_PAUSED: &str = "ScaledJobPaused";
    pub const SCALED_JOB_UNPAUSED: &str = "ScaledJobUnpaused";
    pub const SCALED_JOB_STOP_SCALE_LOOP_FAILED: &str = "ScaledJobStopScaleLoopFailed";

    pub const SCALED_OBJECT_PAUSED_MESSAGE: &str = "ScaledObject is paused";
    pub const SCALED_OBJECT_UNPAUSED_MESSAGE: &str = "pause annotation removed for ScaledObject";
    pub const SCALED_JOB_PAUSED_MESSAGE: &str = "ScaledJob is paused";
    pub const SCALED_JOB_UNPAUSED_MESSAGE: &str = "ScaledJob is unpaused";
}

/// HPAActive condition reasons. When False, KEDA copies the HPA's own `ScalingActive` reason,
/// so these are not exhaustive.
pub mod hpa_active {
    pub const HPA_ACTIVE: &str = "HPAActive";
    /// True while the target is at zero and the HPA is idle by design.
    pub const SCALING_DISABLED: &str = "ScalingDisabled";
    /// False when the HPA reports no reason of its own.
    pub const HPA_METRICS_UNAVAILABLE: &str = "HPAMetricsUnavailable";
}
