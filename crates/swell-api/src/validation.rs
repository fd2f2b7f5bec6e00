//! KEDA's admission and reconcile-time checks as pure functions.
//!
//! The CRD schema already enforces types, enums and minimums at the API server; these cover the
//! cross-field rules KEDA's webhook and controllers apply, and repeat the numeric bounds so
//! objects that never went through an API server (files, tests) get the same answer. Every rule
//! reports the JSON path of the field and how to fix it; all problems are returned at once.

use crate::formula::FormulaError;
use crate::scaled_object::{
    FallbackBehavior, ScaledObject, ScaledObjectSpec, ScalingModifiersMetricType,
};
use crate::trigger::{MetricTargetType, ScaleTriggers};
use crate::trigger_authentication::{
    AuthPodIdentity, IdentityOwner, OAuth2, PodIdentityProvider, TriggerAuthenticationSpec,
};
use crate::{
    ClusterTriggerAuthentication, ScaledJob, ScaledJobSpec, TriggerAuthentication, defaults,
};

/// Kubernetes label values (and DNS-1123 labels) are limited to 63 characters; KEDA uses the
/// ScaledObject name as a label value and the HPA name as an object name.
pub const MAX_NAME_LENGTH: usize = 63;

/// One problem in an object.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// JSON path of the offending field, e.g. `spec.triggers[1].name`.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Joins errors into one line each, for condition messages and CLI output.
pub fn format_errors(errors: &[ValidationError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

#[derive(Default)]
struct Errors(Vec<ValidationError>);

impl Errors {
    fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(ValidationError::new(field, message));
    }

    fn min(&mut self, field: &str, value: Option<i32>, min: i32) {
        if let Some(v) = value
            && v < min
        {
            self.push(field, format!("is {v}; must be at least {min}"));
        }
    }

    fn finish(self) -> Result<(), Vec<ValidationError>> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.0)
        }
    }
}

pub(crate) fn parse_float(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|v| v.is_finite())
}

/// The most triggers one object may have. KEDA sets none; each trigger is a scaler polled
/// and an HPA metric, and checking one costs up to a cluster read, so a hostile object with
/// tens of thousands would stall admission. Only the first ones are checked further.
pub const MAX_TRIGGERS: usize = 1000;

/// Trigger rules shared by ScaledObject and ScaledJob (KEDA's `ValidateTriggers`).
fn validate_triggers(triggers: &[ScaleTriggers], errors: &mut Errors) {
    if triggers.is_empty() {
        errors.push(
            "spec.triggers",
            "no triggers defined; add at least one trigger",
        );
    }
    if triggers.len() > MAX_TRIGGERS {
        errors.push(
            "spec.triggers",
            format!(
                "has {} triggers; the limit is {MAX_TRIGGERS} (only the first {MAX_TRIGGERS} are checked)",
                triggers.len()
            ),
        );
    }
    let triggers = &triggers[..triggers.len().min(MAX_TRIGGERS)];
    // A set: a list scanned per trigger is quadratic in a hostile object's trigger count.
    let mut seen: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
    for (i, trigger) in triggers.iter().enumerate() {
        let path = format!("spec.triggers[{i}]");
        if trigger.type_.trim().is_empty() {
            errors.push(
                format!("{path}.type"),
                "is empty; set the scaler type, e.g. aws-sqs-queue",
            );
        }
        if trigger.use_cached_metrics()
            && matches!(trigger.type_.as_str(), "cpu" | "memory" | "cron")
        {
            errors.push(
                format!("{path}.useCachedMetrics"),
                format!(
                    "property \"useCachedMetrics\" is not supported for {:?} scaler; remove it",
                    trigger.type_
                ),
            );
        }
        if let Some(name) = trigger.name()
            && !seen.insert(name)
        {
            errors.push(
                format!("{path}.name"),
                format!("triggerName {name:?} is defined multiple times, but it must be unique; rename one of them"),
            );
        }
        if let Some(auth) = &trigger.authentication_ref
            && auth.name.trim().is_empty()
        {
            errors.push(
                format!("{path}.authenticationRef.name"),
                "is empty; name the TriggerAuthentication or ClusterTriggerAuthentication to use",
            );
        }
    }
}

impl ScaledObjectSpec {
    /// Checks KEDA's rules for a ScaledObject spec; see [`ScaledObject::validate`] for the rules
    /// that also need the object name.
    pub fn validate(&self) -> Result<(), Vec<ValidationError>> {
        let mut errors = Errors::default();
        self.validate_into(&mut errors);
        errors.finish()
    }

    fn validate_into(&self, errors: &mut Errors) {
        if self.scale_target_ref.name.trim().is_empty() {
            errors.push(
                "spec.scaleTargetRef.name",
                "is empty; name the Deployment, StatefulSet or other /scale resource to scale",
            );
        }
        errors.min("spec.pollingInterval", self.polling_interval, 1);
        errors.min("spec.cooldownPeriod", self.cooldown_period, 0);
        errors.min(
            "spec.initialCooldownPeriod",
            self.initial_cooldown_period,
            0,
        );
        errors.min("spec.idleReplicaCount", self.idle_replica_count, 0);
        errors.min("spec.minReplicaCount", self.min_replica_count, 0);
        errors.min("spec.maxReplicaCount", self.max_replica_count, 1);
        self.validate_replica_bounds(errors);
        validate_triggers(&self.triggers, errors);
        self.validate_metric_types(errors);
        self.validate_resource_only(errors);
        self.validate_fallback(errors);
        self.validate_scaling_modifiers(errors);
    }

    /// KEDA's `CheckReplicaCountBoundsAreValid`.
    fn validate_replica_bounds(&self, errors: &mut Errors) {
        let max = self.max_replica_count();
        if let Some(min) = self.min_replica_count
            && min > max
        {
            errors.push(
                "spec.minReplicaCount",
                format!("MinReplicaCount={min} must be less than or equal to MaxReplicaCount={max}; lower minReplicaCount or raise maxReplicaCount"),
            );
        }
        // KEDA compares against the HPA minimum (at least 1) when min is set, and 0 when unset.
        let min = match self.min_replica_count {
            Some(min) => min.max(defaults::HPA_MIN_REPLICAS),
            None => defaults::MIN_REPLICA_COUNT,
        };
        if let Some(idle) = self.idle_replica_count
            && idle >= min
        {
            errors.push(
                "spec.idleReplicaCount",
                format!("IdleReplicaCount={idle} must be less than MinReplicaCount={min}; lower idleReplicaCount or raise minReplicaCount"),
            );
        }
    }

    fn validate_metric_types(&self, errors: &mut Errors) {
        for (i, trigger) in self.triggers.iter().enumerate() {
            let Some(metric_type) = &trigger.metric_type else {
                continue;
            };
            let field = format!("spec.triggers[{i}].metricType");
            match (metric_type, trigger.is_resource_metric()) {
                (MetricTargetType::Other(value), _) => errors.push(
                    field,
                    format!("unknown metric type {value:?}; use AverageValue, Value or (cpu/memory only) Utilization"),
                ),
                (MetricTargetType::Utilization, false) => errors.push(
                    field,
                    format!("'Utilization' metric type is only supported for cpu and memory triggers, not {:?}; use AverageValue or Value", trigger.type_),
                ),
                // HPA resource metrics only support Utilization and AverageValue.
                (MetricTargetType::Value, true) => errors.push(
                    field,
                    format!("'Value' metric type is not supported for {:?} triggers; use Utilization or AverageValue", trigger.type_),
                ),
                _ => {}
            }
        }
    }

    /// KEDA's webhook rejects cpu/memory-only ScaledObjects that could scale to zero, because
    /// resource metrics cannot wake a workload from zero. Like KEDA it only checks targets whose
    /// pod template it reads (apps/v1 Deployment and StatefulSet).
    fn validate_resource_only(&self, errors: &mut Errors) {
        let target = &self.scale_target_ref;
        let pod_template_target = target.api_version() == defaults::SCALE_TARGET_API_VERSION
            && matches!(target.kind(), "Deployment" | "StatefulSet");
        if pod_template_target && self.has_only_resource_triggers() && self.min_replica_count() == 0
        {
            errors.push(
                "spec.minReplicaCount",
                "scaledobject has only cpu/memory triggers AND minReplica is 0 (scale to zero doesn't work in this case); set minReplicaCount to 1 or more, or add an event trigger",
            );
        }
    }

    /// KEDA's `CheckFallbackValid`.
    fn validate_fallback(&self, errors: &mut Errors) {
        let Some(fallback) = &self.fallback else {
            return;
        };
        errors.min(
            "spec.fallback.failureThreshold",
            Some(fallback.failure_threshold),
            0,
        );
        errors.min("spec.fallback.replicas", Some(fallback.replicas), 0);
        match self.scaling_modifiers() {
            Some(modifiers) => {
                if modifiers.metric_type() == ScalingModifiersMetricType::Value {
                    errors.push(
                        "spec.advanced.scalingModifiers.metricType",
                        "when using scalingModifiers, metricType must be AverageValue to have fallback enabled; change it or remove spec.fallback",
                    );
                }
            }
            None => {
                // Fallback synthesises a per-pod value, which only an AverageValue external
                // metric can carry.
                let supported = self.triggers.iter().any(|t| {
                    !t.is_resource_metric() && t.metric_type() == MetricTargetType::AverageValue
                });
                if !supported {
                    errors.push(
                        "spec.fallback",
                        "at least one trigger (that is not cpu or memory) has to have the `AverageValue` type for the fallback to be enabled; add such a trigger or remove spec.fallback",
                    );
                }
            }
        }
        if fallback.behavior() == FallbackBehavior::ScalingModifiers
            && self
                .scaling_modifiers()
                .and_then(|m| m.formula.as_deref())
                .is_none_or(str::is_empty)
        {
            errors.push(
                "spec.fallback.behavior",
                "behavior scalingModifiers needs spec.advanced.scalingModifiers.formula; set a formula or choose another behavior",
            );
        }
    }

    /// KEDA's `ValidateAndCompileScalingModifiers`: compile the formula over the named
    /// triggers, then run it once with every trigger at -1.
    fn validate_scaling_modifiers(&self, errors: &mut Errors) {
        let Some(modifiers) = self.scaling_modifiers() else {
            return;
        };
        const PATH: &str = "spec.advanced.scalingModifiers";
        let formula = modifiers.formula.as_deref().unwrap_or_default();
        if formula.trim().is_empty() {
            errors.push(
                format!("{PATH}.formula"),
                "is mandatory when scalingModifiers is set; write an expression over trigger names, e.g. \"(a + b) / 2\"",
            );
            return;
        }
        match modifiers.target.as_deref().filter(|t| !t.is_empty()) {
            None => errors.push(
                format!("{PATH}.target"),
                "formula is given but target is empty; set the target value of the composite metric, e.g. \"10\"",
            ),
            Some(target) => {
                if !parse_float(target).is_some_and(|v| v > 0.0) {
                    errors.push(
                        format!("{PATH}.target"),
                        format!("{target:?} is not a number greater than 0; use e.g. \"10\" or \"2.5\""),
                    );
                }
            }
        }
        if let Some(activation) = modifiers
            .activation_target
            .as_deref()
            .filter(|t| !t.is_empty())
            && parse_float(activation).is_none()
        {
            errors.push(
                format!("{PATH}.activationTarget"),
                format!("{activation:?} is not a number; use e.g. \"0\" or \"1.5\""),
            );
        }
        // KEDA exposes only named, non-resource triggers to the formula.
        let known: Vec<&str> = self
            .triggers
            .iter()
            .filter(|t| !t.is_resource_metric())
            .filter_map(ScaleTriggers::name)
            .collect();
        match crate::formula::compile(formula, &known) {
            Ok(compiled) => {
                // KEDA's webhook also runs the formula once, with every trigger at -1.
                if let Err(e) = compiled.eval(&vec![Some(-1.0); known.len()]) {
                    errors.push(
                        format!("{PATH}.formula"),
                        format!("fails when run with every trigger at -1, as KEDA's webhook runs it: {e}"),
                    );
                }
            }
            Err(FormulaError::UnknownNames { at, names, .. }) => {
                let hint = if known.is_empty() {
                    "no trigger has a name yet".to_owned()
                } else {
                    format!("named triggers: {}", known.join(", "))
                };
                let which = if names.len() == 1 {
                    "which is not the name of a trigger"
                } else {
                    "which are not the names of triggers"
                };
                errors.push(
                    format!("{PATH}.formula"),
                    format!(
                        "refers to {} {which}, at {at}; set `name` on the trigger (cpu/memory triggers cannot be used) ({hint})",
                        names.join(", ")
                    ),
                );
            }
            Err(e) => errors.push(format!("{PATH}.formula"), e.to_string()),
        }
    }

    /// Non-fatal advice KEDA's webhook returns as admission warnings.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        // With min > 0 and no idle mode the HPA owns all scaling, so KEDA's own loop never acts.
        if self.min_replica_count() > 0 && self.idle_replica_count.is_none() {
            if self.polling_interval.is_some() {
                warnings.push("spec.pollingInterval: PollingInterval is configured but is not relevant when minReplicaCount > 0 and idleReplicaCount is not set; the HPA drives scaling".to_owned());
            }
            if self.cooldown_period.is_some() {
                warnings.push("spec.cooldownPeriod: CooldownPeriod is configured but is not relevant when minReplicaCount > 0 and idleReplicaCount is not set; the HPA's scaleDown stabilization applies instead".to_owned());
            }
        }
        warnings
    }
}

impl ScaledObject {
    /// [`ScaledObjectSpec::validate`] plus the name-length rules.
    pub fn validate(&self) -> Result<(), Vec<ValidationError>> {
        let mut errors = Errors::default();
        let name = self.metadata.name.as_deref().unwrap_or_default();
        if name.len() > MAX_NAME_LENGTH {
            errors.push(
                "metadata.name",
                format!("scaledobject name is {} characters long; must be no more than {MAX_NAME_LENGTH} because it is used as the scaledobject.keda.sh/name label value", name.len()),
            );
        }
        let hpa_name = self.hpa_name();
        if hpa_name.len() > MAX_NAME_LENGTH {
            let field = if self.spec.custom_hpa_name().is_some() {
                "spec.advanced.horizontalPodAutoscalerConfig.name"
            } else {
                "metadata.name"
            };
            errors.push(
                field,
                format!("HPA name {hpa_name:?} is {} characters long; must be no more than {MAX_NAME_LENGTH}; set spec.advanced.horizontalPodAutoscalerConfig.name to a shorter name or shorten the scaledobject name", hpa_name.len()),
            );
        }
        if let Some(Err(raw)) =
            crate::annotations::paused_replicas(self.metadata.annotations.as_ref())
        {
            errors.push(
                format!(
                    "metadata.annotations.{}",
                    crate::annotations::PAUSED_REPLICAS
                ),
                crate::annotations::paused_replicas_error(raw),
            );
        }
        if let Some(Err(raw)) =
            crate::annotations::exact_targets(self.metadata.annotations.as_ref())
        {
            errors.push(
                format!("metadata.annotations.{}", crate::annotations::EXACT_TARGETS),
                format!("{raw:?} is not a boolean; use \"true\" or \"false\" (or remove it for the operator's default)"),
            );
        }
        self.spec.validate_into(&mut errors);
        errors.finish()
    }
}

impl ScaledJobSpec {
    /// Checks KEDA's rules for a ScaledJob spec.
    pub fn validate(&self) -> Result<(), Vec<ValidationError>> {
        let mut errors = Errors::default();
        errors.min("spec.pollingInterval", self.polling_interval, 1);
        errors.min(
            "spec.successfulJobsHistoryLimit",
            self.successful_jobs_history_limit,
            0,
        );
        errors.min(
            "spec.failedJobsHistoryLimit",
            self.failed_jobs_history_limit,
            0,
        );
        errors.min("spec.minReplicaCount", self.min_replica_count, 0);
        errors.min("spec.maxReplicaCount", self.max_replica_count, 1);
        validate_triggers(&self.triggers, &mut errors);
        for (i, trigger) in self.triggers.iter().enumerate() {
            // Jobs are not scaled through an HPA, so there is no metric target.
            if trigger.metric_type.is_some() {
                errors.push(
                    format!("spec.triggers[{i}].metricType"),
                    "metricType cannot be set in ScaledJob triggers; remove it",
                );
            }
        }
        errors.finish()
    }
}

impl ScaledJob {
    /// Same as [`ScaledJobSpec::validate`]; for symmetry with [`ScaledObject::validate`].
    pub fn validate(&self) -> Result<(), Vec<ValidationError>> {
        self.spec.validate()
    }
}

impl TriggerAuthenticationSpec {
    /// KEDA's TriggerAuthentication webhook rules.
    pub fn validate(&self) -> Result<(), Vec<ValidationError>> {
        let mut errors = Errors::default();
        if let Some(identity) = &self.pod_identity {
            validate_pod_identity(identity, "spec.podIdentity", &mut errors);
        }
        if let Some(oauth2) = &self.oauth2 {
            validate_oauth2(oauth2, &mut errors);
        }
        errors.finish()
    }
}

impl TriggerAuthentication {
    pub fn validate(&self) -> Result<(), Vec<ValidationError>> {
        self.spec.validate()
    }
}

impl ClusterTriggerAuthentication {
    pub fn validate(&self) -> Result<(), Vec<ValidationError>> {
        self.spec.validate()
    }
}

fn validate_pod_identity(identity: &AuthPodIdentity, path: &str, errors: &mut Errors) {
    let empty = |v: &Option<String>| v.as_deref() == Some("");
    match identity.provider {
        PodIdentityProvider::AzureWorkload => {
            if empty(&identity.identity_id) {
                errors.push(
                    format!("{path}.identityId"),
                    "is set but empty; remove it or set the managed identity client id",
                );
            }
            let has_authority = identity
                .identity_authority_host
                .as_deref()
                .is_some_and(|h| !h.is_empty());
            let has_tenant = identity
                .identity_tenant_id
                .as_deref()
                .is_some_and(|t| !t.is_empty());
            if has_authority && !has_tenant {
                errors.push(
                    format!("{path}.identityTenantId"),
                    "must be set when identityAuthorityHost is set",
                );
            } else if !has_authority && empty(&identity.identity_tenant_id) {
                errors.push(
                    format!("{path}.identityTenantId"),
                    "is set but empty; remove it or set the tenant id",
                );
            }
        }
        PodIdentityProvider::Aws => {
            if identity.role_arn().is_some() && identity.identity_owner() == IdentityOwner::Workload
            {
                errors.push(
                    format!("{path}.roleArn"),
                    "roleArn can't be set when identityOwner is workload (the workload's own role is used); remove roleArn or set identityOwner: keda",
                );
            }
            if identity.external_id().is_some() && identity.role_arn().is_none() {
                errors.push(
                    format!("{path}.externalID"),
                    "externalID requires roleArn to be set (it is passed when assuming that role); set roleArn or remove externalID",
                );
            }
        }
        PodIdentityProvider::Gcp | PodIdentityProvider::AwsEks | PodIdentityProvider::None => {}
    }
}

fn validate_oauth2(oauth2: &OAuth2, errors: &mut Errors) {
    if oauth2.client_id.trim().is_empty() {
        errors.push(
            "spec.oauth2.clientId",
            "is required when oauth2 is configured",
        );
    }
    if oauth2.token_url.trim().is_empty() {
        errors.push(
            "spec.oauth2.tokenUrl",
            "is required when oauth2 is configured",
        );
    } else if !is_http_url(&oauth2.token_url) {
        errors.push(
            "spec.oauth2.tokenUrl",
            format!("{:?} must be a valid http or https URL, e.g. https://login.example.com/oauth2/token", oauth2.token_url),
        );
    }
}

/// Mirrors KEDA's check with Go's `url.Parse`: an http(s) scheme and a non-empty host.
fn is_http_url(raw: &str) -> bool {
    let Some((scheme, rest)) = raw.split_once("://") else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return false;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    !host.is_empty() && !raw.contains(char::is_whitespace)
}
