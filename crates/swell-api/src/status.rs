//! Status building blocks shared by ScaledObject and ScaledJob.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::conditions;
use crate::open_enum::open_string_enum;

// KEDA's own shape, not `metav1.Condition`: no `lastTransitionTime` or `observedGeneration`.
/// Condition to store the condition state
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Type of condition
    #[serde(rename = "type")]
    pub type_: String,
    /// Status of the condition, one of True, False, Unknown.
    pub status: ConditionStatus,
    /// The reason for the condition's last transition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A human readable message indicating details about the transition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Condition {
    /// A condition of `type_` with the given status, reason and message.
    pub fn new(
        type_: &str,
        status: ConditionStatus,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_: type_.to_owned(),
            status,
            reason: Some(reason.into()),
            message: Some(message.into()),
        }
    }

    pub fn is_true(&self) -> bool {
        self.status == ConditionStatus::True
    }

    pub fn is_false(&self) -> bool {
        self.status == ConditionStatus::False
    }

    /// Unknown, or any value KEDA does not define.
    pub fn is_unknown(&self) -> bool {
        !self.is_true() && !self.is_false()
    }
}

open_string_enum! {
    /// Status of the condition, one of True, False, Unknown.
    pub enum ConditionStatus {
        True => "True",
        False => "False",
        Unknown => "Unknown",
    }
}

/// The conditions KEDA creates before the first reconcile: Ready, Active and Fallback start
/// Unknown; Paused starts False (notes §2).
pub fn initial_conditions() -> Vec<Condition> {
    let unknown = |t: &str| Condition {
        type_: t.to_owned(),
        status: ConditionStatus::Unknown,
        reason: None,
        message: None,
    };
    vec![
        unknown(conditions::READY),
        unknown(conditions::ACTIVE),
        unknown(conditions::FALLBACK),
        Condition {
            type_: conditions::PAUSED.to_owned(),
            status: ConditionStatus::False,
            reason: None,
            message: None,
        },
    ]
}

/// Looks up a condition by type in an optional list.
/// `Active`, as KEDA sets it: active, cooling down (ScaledObjects only), or not active.
pub fn active_condition(active: bool, cooling_down: bool) -> Condition {
    use conditions::active as a;
    let (status, reason, message) = match (active, cooling_down) {
        (true, _) => (
            ConditionStatus::True,
            a::SCALER_ACTIVE,
            a::SCALER_ACTIVE_MESSAGE,
        ),
        (false, true) => (
            ConditionStatus::False,
            a::SCALER_COOLDOWN,
            a::SCALER_COOLDOWN_MESSAGE,
        ),
        (false, false) => (
            ConditionStatus::False,
            a::SCALER_NOT_ACTIVE,
            a::SCALER_NOT_ACTIVE_MESSAGE,
        ),
    };
    Condition::new(conditions::ACTIVE, status, reason, message)
}

/// Sets `Paused=False` with `reason` and `message` when the object was paused; whether it was.
pub fn unpause(conds: &mut Vec<Condition>, reason: &str, message: &str) -> bool {
    let was_paused =
        find_condition(Some(conds.as_slice()), conditions::PAUSED).is_some_and(Condition::is_true);
    if was_paused {
        let c = Condition::new(conditions::PAUSED, ConditionStatus::False, reason, message);
        set_condition(conds, c);
    }
    was_paused
}

pub fn find_condition<'a>(
    conditions: Option<&'a [Condition]>,
    type_: &str,
) -> Option<&'a Condition> {
    conditions?.iter().find(|c| c.type_ == type_)
}

/// Replaces the condition of the same type, or appends it; returns whether anything changed so
/// callers can skip a status write.
pub fn set_condition(conditions: &mut Vec<Condition>, condition: Condition) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == condition.type_) {
        Some(existing) if *existing == condition => false,
        Some(existing) => {
            *existing = condition;
            true
        }
        None => {
            conditions.push(condition);
            true
        }
    }
}

/// GroupVersionKindResource provides unified structure for
/// schema.GroupVersionKind and Resource
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupVersionKindResource {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub resource: String,
}

impl GroupVersionKindResource {
    /// `apps/v1.Deployment`, the form KEDA puts in `status.scaleTargetKind` and event messages.
    pub fn gvk_string(&self) -> String {
        if self.group.is_empty() {
            format!("{}.{}", self.version, self.kind)
        } else {
            format!("{}/{}.{}", self.group, self.version, self.kind)
        }
    }
}

/// HealthStatus is the status for a ScaledObject's health
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number_of_failures: Option<i32>,
    /// HealthStatusType is an indication of whether the health status is happy or failing
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<HealthStatusType>,
}

open_string_enum! {
    /// HealthStatusType is an indication of whether the health status is happy or failing
    pub enum HealthStatusType {
        Happy => "Happy",
        Failing => "Failing",
    }
}

/// TriggerActivityStatus represents the activity status of an external trigger
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TriggerActivityStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_active: Option<bool>,
}
