//! Pure checks of ScaledObjects and ScaledJobs, shared by `swell check`, the admission webhook
//! and (through the same scaler parsing) the reconciler, so they cannot disagree.
//!
//! A check sees one object plus whatever is known about its TriggerAuthentications; nothing
//! here does I/O. Values that only exist at run time (Secrets, the target container's
//! environment, the ServiceAccount's IAM role) are taken on trust and checked by
//! `swell check --cluster` or by the reconciler.

use std::collections::BTreeSet;
use std::fmt;

use swell_api::{
    ScaleTriggers, ScaledJob, ScaledObject, TriggerAuthenticationSpec, ValidationError,
};
use swell_controller::auth::pod_identity_input;
use swell_scalers::{MetricType, RawParams, ScalerError, TriggerInput};

/// How bad a finding is: errors fail the check, warnings and notes do not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
    Note,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        })
    }
}

/// One problem (or remark) about one field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    /// JSON path of the field, e.g. `spec.triggers[0].metadata.queueURL`.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl Finding {
    pub fn new(severity: Severity, field: impl Into<String>, message: impl Into<String>) -> Self {
        Finding {
            severity,
            field: field.into(),
            message: message.into(),
        }
    }
    pub fn error(field: impl Into<String>, message: impl Into<String>) -> Self {
        Finding::new(Severity::Error, field, message)
    }
    pub fn warning(field: impl Into<String>, message: impl Into<String>) -> Self {
        Finding::new(Severity::Warning, field, message)
    }
    pub fn note(field: impl Into<String>, message: impl Into<String>) -> Self {
        Finding::new(Severity::Note, field, message)
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Whether any finding is an error.
pub fn has_errors(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.severity == Severity::Error)
}

/// What is known about one trigger's authentication.
#[derive(Clone, Debug, Default)]
pub enum AuthKnowledge {
    /// The trigger has no `authenticationRef`.
    #[default]
    None,
    /// The referenced object's spec (its secret values stay unknown).
    Spec(Box<TriggerAuthenticationSpec>),
    /// The referenced object is not available to this check.
    Unknown,
    /// The referenced object does not exist (already reported).
    Missing,
}

/// The workload role placeholder used when the ServiceAccount cannot be read.
const ROLE_CHECKED_LATER: &str = "arn:aws:iam::000000000000:role/checked-with-cluster";

/// Whether a TriggerAuthentication provides parameters whose values live outside its spec.
fn provides_parameters(spec: &TriggerAuthenticationSpec) -> bool {
    spec.secret_target_ref
        .as_ref()
        .is_some_and(|v| !v.is_empty())
        || spec.env.as_ref().is_some_and(|v| !v.is_empty())
        || spec
            .config_map_target_ref
            .as_ref()
            .is_some_and(|v| !v.is_empty())
        || spec
            .bound_service_account_token
            .as_ref()
            .is_some_and(|v| !v.is_empty())
        || spec.hashi_corp_vault.is_some()
        || spec.azure_key_vault.is_some()
        || spec.azure_service_principal.is_some()
        || spec.aws_secret_manager.is_some()
        || spec.gcp_secret_manager.is_some()
        || spec.file_path.is_some()
        || spec.oauth2.is_some()
}

/// The parameters a TriggerAuthentication lists, by name (KEDA's resolver sets exactly
/// these); `None` when they cannot be known offline (`filePath` is read at run time).
fn listed_parameters(spec: &TriggerAuthenticationSpec) -> Option<BTreeSet<String>> {
    if spec.file_path.is_some() {
        return None;
    }
    let mut names: Vec<&str> = Vec::new();
    names.extend(
        spec.secret_target_ref
            .iter()
            .flatten()
            .map(|r| r.parameter.as_str()),
    );
    names.extend(
        spec.config_map_target_ref
            .iter()
            .flatten()
            .map(|r| r.parameter.as_str()),
    );
    names.extend(spec.env.iter().flatten().map(|r| r.parameter.as_str()));
    let oauth2 = spec.oauth2.iter().flat_map(|o| o.parameters(String::new()));
    names.extend(oauth2.map(|(name, _)| name));
    names.extend(
        spec.bound_service_account_token
            .iter()
            .flatten()
            .map(|r| r.parameter.as_str()),
    );
    names.extend(
        spec.hashi_corp_vault
            .iter()
            .flat_map(|v| v.secrets.iter().map(|s| s.parameter.as_str())),
    );
    names.extend(
        spec.azure_key_vault
            .iter()
            .flat_map(|v| v.secrets.iter().map(|s| s.parameter.as_str())),
    );
    names.extend(
        spec.gcp_secret_manager
            .iter()
            .flat_map(|v| v.secrets.iter().map(|s| s.parameter.as_str())),
    );
    names.extend(
        spec.aws_secret_manager
            .iter()
            .flat_map(|v| v.secrets.iter().map(|s| s.parameter.as_str())),
    );
    Some(names.into_iter().map(str::to_owned).collect())
}

fn validation(errors: Vec<ValidationError>) -> impl Iterator<Item = Finding> {
    errors
        .into_iter()
        .map(|e| Finding::error(e.field, e.message))
}

/// A scaler's warning `triggers[i]…: message` as a finding under `spec.`.
fn scaler_warning(index: usize, warning: &str) -> Finding {
    match warning.split_once(": ") {
        Some((field, message)) if field.starts_with("triggers[") => {
            Finding::warning(format!("spec.{field}"), message)
        }
        _ => Finding::warning(format!("spec.triggers[{index}]"), warning),
    }
}

/// Builds the scaler input exactly as the reconciler does, minus what needs the cluster.
fn trigger_input(
    index: usize,
    trigger: &ScaleTriggers,
    ns: &str,
    owner: &str,
    auth: &AuthKnowledge,
) -> TriggerInput {
    let auth_lists = match auth {
        AuthKnowledge::Spec(spec) => listed_parameters(spec).map(|names| {
            let name = trigger.authentication_ref.as_ref().map(|r| r.name.clone());
            (name.unwrap_or_default(), names)
        }),
        _ => None,
    };
    let (auth_unknown, pod_identity) = match auth {
        AuthKnowledge::None => (false, Default::default()),
        AuthKnowledge::Unknown | AuthKnowledge::Missing => (true, Default::default()),
        AuthKnowledge::Spec(spec) => (
            provides_parameters(spec),
            spec.pod_identity
                .as_ref()
                .map(|id| {
                    pod_identity_input(
                        ns,
                        "<service account>",
                        id,
                        (Some(ROLE_CHECKED_LATER.into()), None),
                    )
                })
                .unwrap_or_default(),
        ),
    };
    TriggerInput {
        index,
        type_: trigger.type_.clone(),
        name: trigger.name().map(str::to_string),
        metric_type: trigger
            .metric_type
            .as_ref()
            .and_then(|m| MetricType::parse(Some(m.as_str()))),
        namespace: ns.to_string(),
        scaled_object: owner.to_string(),
        params: RawParams {
            trigger_index: index,
            metadata: trigger.metadata.clone(),
            env_unknown: true,
            auth_unknown,
            auth_lists,
            ..Default::default()
        },
        pod_identity,
        polling_interval: std::time::Duration::from_secs(30),
    }
}

/// Every trigger's metadata through its scaler's parser.
fn check_triggers(
    triggers: &[ScaleTriggers],
    ns: &str,
    owner: &str,
    auths: &[AuthKnowledge],
    out: &mut Vec<Finding>,
) {
    // Past the limit (reported by the spec validation) nothing is checked: bounded work.
    let limit = swell_api::validation::MAX_TRIGGERS;
    for (index, trigger) in triggers.iter().take(limit).enumerate() {
        let auth = auths.get(index).cloned().unwrap_or_default();
        if let (AuthKnowledge::Unknown, Some(r)) = (&auth, &trigger.authentication_ref)
            && !r.name.trim().is_empty()
        {
            out.push(Finding::note(
                format!("spec.triggers[{index}].authenticationRef"),
                format!(
                    "{:?} {:?} is not among the checked objects; the parameters it provides are not checked (add it to the input, or use --cluster)",
                    r.kind(),
                    r.name
                ),
            ));
        }
        if trigger.type_.trim().is_empty() {
            continue; // reported by the spec validation
        }
        let input = trigger_input(index, trigger, ns, owner, &auth);
        match swell_scalers::check(&input) {
            Ok(checked) => {
                out.extend(
                    checked
                        .errors
                        .into_iter()
                        .map(|p| Finding::error(spec_path(index, &p.field), p.message)),
                );
                out.extend(checked.warnings.iter().map(|w| scaler_warning(index, w)));
            }
            Err(ScalerError::Metadata(e)) => out.extend(
                e.0.into_iter()
                    .map(|p| Finding::error(spec_path(index, &p.field), p.message)),
            ),
            Err(ScalerError::UnknownType(t, known)) => out.push(Finding::error(
                format!("spec.triggers[{index}].type"),
                format!("unknown trigger type {t:?}; use one of: {known}"),
            )),
            Err(e) => out.push(Finding::error(
                format!("spec.triggers[{index}]"),
                e.to_string(),
            )),
        }
    }
}

fn spec_path(index: usize, field: &str) -> String {
    if field.starts_with("triggers[") {
        format!("spec.{field}")
    } else {
        format!("spec.triggers[{index}].{field}")
    }
}

/// Checks a ScaledObject: KEDA's rules, every trigger's metadata, and the advice KEDA gives
/// as admission warnings. `auths[i]` is what is known about trigger `i`'s authentication.
pub fn scaled_object(so: &ScaledObject, auths: &[AuthKnowledge]) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Err(errors) = so.validate() {
        out.extend(validation(errors));
    }
    let ns = so.metadata.namespace.as_deref().unwrap_or("default");
    let name = so.metadata.name.as_deref().unwrap_or_default();
    check_triggers(&so.spec.triggers, ns, name, auths, &mut out);
    out.extend(
        so.spec
            .warnings()
            .into_iter()
            .map(|w| match w.split_once(": ") {
                Some((field, message)) => Finding::warning(field, message),
                None => Finding::warning("spec", w),
            }),
    );
    out
}

/// Checks a ScaledJob's spec: KEDA's rules, the job template, every trigger's metadata.
pub fn scaled_job(sj: &ScaledJob, auths: &[AuthKnowledge]) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Err(errors) = sj.validate() {
        out.extend(validation(errors));
    }
    let spec = &sj.spec;
    let containers = spec
        .job_target_ref
        .template
        .spec
        .as_ref()
        .map_or(0, |p| p.containers.len());
    if containers == 0 {
        out.push(Finding::error(
            "spec.jobTargetRef.template.spec.containers",
            "the job template has no containers; describe the Job's pod under jobTargetRef.template",
        ));
    }
    if let (Some(min), Some(max)) = (spec.min_replica_count, spec.max_replica_count)
        && min > max
    {
        out.push(Finding::error(
            "spec.minReplicaCount",
            format!("MinReplicaCount={min} must be less than or equal to MaxReplicaCount={max}; lower minReplicaCount or raise maxReplicaCount"),
        ));
    }
    let ns = sj.metadata.namespace.as_deref().unwrap_or("default");
    let name = sj.metadata.name.as_deref().unwrap_or_default();
    check_triggers(&spec.triggers, ns, name, auths, &mut out);
    out
}

/// Checks a TriggerAuthentication or ClusterTriggerAuthentication spec.
pub fn trigger_authentication(spec: &TriggerAuthenticationSpec) -> Vec<Finding> {
    match spec.validate() {
        Ok(()) => Vec::new(),
        Err(errors) => validation(errors).collect(),
    }
}
