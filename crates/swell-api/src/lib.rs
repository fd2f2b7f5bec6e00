//! Rust types for KEDA's `keda.sh/v1alpha1` API (KEDA 2.20), so existing KEDA manifests apply
//! unchanged to Swell.
//!
//! Optional fields are `Option` wherever KEDA uses a pointer or `omitempty`, so an unset value
//! stays unset through a read-modify-write; KEDA's runtime defaults live in [`defaults`] and are
//! read through accessor methods (e.g. [`ScaledObjectSpec::polling_interval`]) rather than
//! written into objects.

mod open_enum;

pub mod annotations;
mod cloud_event_source;
pub mod conditions;
mod crd;
pub mod defaults;
pub mod events;
pub mod external_metric;
pub mod formula;
mod scaled_job;
mod scaled_object;
pub mod status;
mod trigger;
mod trigger_authentication;
pub mod validation;

pub use cloud_event_source::*;
pub use crd::{Error, cloudwatch_adapter_crd, crds, crds_yaml, yaml};
pub use external_metric::{ExternalMetric, ExternalMetricSpec};
pub use scaled_job::*;
pub use scaled_object::*;
pub use status::{
    Condition, ConditionStatus, GroupVersionKindResource, HealthStatus, HealthStatusType,
    TriggerActivityStatus,
};
pub use trigger::*;
pub use trigger_authentication::*;
pub use validation::ValidationError;
