//! `CloudEventSource` and `ClusterCloudEventSource` (`eventing.keda.sh/v1alpha1`): where the
//! operator sends CloudEvents about the objects it manages.

use std::ops::{Deref, DerefMut};

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::open_enum::open_string_enum;
use crate::{AuthenticationRef, Condition, ValidationError};

/// CloudEventSourceSpec defines the spec of CloudEventSource
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "eventing.keda.sh",
    version = "v1alpha1",
    kind = "CloudEventSource",
    plural = "cloudeventsources",
    singular = "cloudeventsource",
    namespaced,
    status = "CloudEventSourceStatus",
    derive = "PartialEq",
    doc = "CloudEventSource defines how a KEDA event will be sent to event sink",
    printcolumn(
        name = "Active",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Active\")].status"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct CloudEventSourceSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_name: Option<String>,
    pub destination: Destination,
    /// AuthenticationRef points to the TriggerAuthentication or ClusterTriggerAuthentication object that
    /// is used to authenticate the scaler with the environment
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authentication_ref: Option<AuthenticationRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_subscription: Option<EventSubscription>,
}

/// ClusterCloudEventSource shares CloudEventSource's spec; the wrapper exists only because the
/// derive needs one spec type per kind. It derefs to [`CloudEventSourceSpec`].
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "eventing.keda.sh",
    version = "v1alpha1",
    kind = "ClusterCloudEventSource",
    plural = "clustercloudeventsources",
    singular = "clustercloudeventsource",
    status = "CloudEventSourceStatus",
    derive = "PartialEq",
    printcolumn(
        name = "Active",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Active\")].status"
    )
)]
#[serde(transparent)]
#[schemars(transparent)]
pub struct ClusterCloudEventSourceSpec(pub CloudEventSourceSpec);

impl Deref for ClusterCloudEventSourceSpec {
    type Target = CloudEventSourceSpec;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for ClusterCloudEventSourceSpec {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl From<CloudEventSourceSpec> for ClusterCloudEventSourceSpec {
    fn from(spec: CloudEventSourceSpec) -> Self {
        Self(spec)
    }
}

/// CloudEventSourceStatus defines the observed state of CloudEventSource
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CloudEventSourceStatus {
    /// Conditions an array representation to store multiple Conditions
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
}

/// Destination defines the various ways to emit events
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Destination {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<CloudEventHttp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub azure_event_grid_topic: Option<AzureEventGridTopicSpec>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CloudEventHttp {
    pub uri: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AzureEventGridTopicSpec {
    pub endpoint: String,
}

/// EventSubscription defines filters for events
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventSubscription {
    // `default` keeps the field optional in the schema (`schema_with` alone makes it required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "event_types_schema")]
    pub included_event_types: Option<Vec<CloudEventType>>,
    // `default` keeps the field optional in the schema (`schema_with` alone makes it required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "event_types_schema")]
    pub excluded_event_types: Option<Vec<CloudEventType>>,
}

open_string_enum! {
    /// A CloudEvent type KEDA emits (`apis/eventing/v1alpha1/cloudevent_types.go`).
    pub enum CloudEventType {
        ScaledObjectReady => "keda.scaledobject.ready.v1",
        ScaledObjectFailed => "keda.scaledobject.failed.v1",
        ScaledObjectRemoved => "keda.scaledobject.removed.v1",
        ScaledObjectPaused => "keda.scaledobject.paused.v1",
        ScaledObjectUnpaused => "keda.scaledobject.unpaused.v1",
        ScaledJobReady => "keda.scaledjob.ready.v1",
        ScaledJobFailed => "keda.scaledjob.failed.v1",
        ScaledJobRemoved => "keda.scaledjob.removed.v1",
        ScaledJobPaused => "keda.scaledjob.paused.v1",
        ScaledJobUnpaused => "keda.scaledjob.unpaused.v1",
        ScaledJobRolloutCleanupStarted => "keda.scaledjob.rolloutcleanup.started.v1",
        ScaledJobRolloutCleanupCompleted => "keda.scaledjob.rolloutcleanup.completed.v1",
        ScaledJobRolloutCleanupFailed => "keda.scaledjob.rolloutcleanup.failed.v1",
        TriggerAuthenticationCreated => "keda.authentication.triggerauthentication.created.v1",
        TriggerAuthenticationUpdated => "keda.authentication.triggerauthentication.updated.v1",
        TriggerAuthenticationRemoved => "keda.authentication.triggerauthentication.removed.v1",
        ClusterTriggerAuthenticationCreated => "keda.authentication.clustertriggerauthentication.created.v1",
        ClusterTriggerAuthenticationUpdated => "keda.authentication.clustertriggerauthentication.updated.v1",
        ClusterTriggerAuthenticationRemoved => "keda.authentication.clustertriggerauthentication.removed.v1",
    }
}

impl CloudEventType {
    /// Every type, in the CRD's enum order.
    pub const ALL: [CloudEventType; 19] = [
        CloudEventType::ScaledObjectReady,
        CloudEventType::ScaledObjectFailed,
        CloudEventType::ScaledObjectRemoved,
        CloudEventType::ScaledObjectPaused,
        CloudEventType::ScaledObjectUnpaused,
        CloudEventType::ScaledJobReady,
        CloudEventType::ScaledJobFailed,
        CloudEventType::ScaledJobRemoved,
        CloudEventType::ScaledJobPaused,
        CloudEventType::ScaledJobUnpaused,
        CloudEventType::ScaledJobRolloutCleanupStarted,
        CloudEventType::ScaledJobRolloutCleanupCompleted,
        CloudEventType::ScaledJobRolloutCleanupFailed,
        CloudEventType::TriggerAuthenticationCreated,
        CloudEventType::TriggerAuthenticationUpdated,
        CloudEventType::TriggerAuthenticationRemoved,
        CloudEventType::ClusterTriggerAuthenticationCreated,
        CloudEventType::ClusterTriggerAuthenticationUpdated,
        CloudEventType::ClusterTriggerAuthenticationRemoved,
    ];
}

/// The CRD lists the known types as an enum, so the API server refuses a misspelt one.
fn event_types_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let values: Vec<&str> = CloudEventType::ALL.iter().map(|t| t.as_str()).collect();
    schemars::json_schema!({
        "type": "array",
        "items": { "type": "string", "enum": values }
    })
}

impl CloudEventSourceSpec {
    /// KEDA's validating webhook for both kinds: included and excluded types are exclusive,
    /// and every type must be one KEDA emits.
    pub fn validate(&self) -> Result<(), Vec<ValidationError>> {
        let mut errors = Vec::new();
        let subscription = self.event_subscription.clone().unwrap_or_default();
        let field = "spec.eventSubscription";
        if subscription.included_event_types.is_some()
            && subscription.excluded_event_types.is_some()
        {
            errors.push(ValidationError::new(
                field,
                "setting included types and excluded types at the same time is not supported",
            ));
        }
        for (list, name) in [
            (&subscription.included_event_types, "includedEventType"),
            (&subscription.excluded_event_types, "excludedEventType"),
        ] {
            for (i, t) in list.iter().flatten().enumerate() {
                if !t.is_known() {
                    errors.push(ValidationError::new(
                        format!("{field}.{name}s[{i}]"),
                        format!(
                            "{name}: {t} in cloudeventsource/clustercloudeventsource spec is not supported"
                        ),
                    ));
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// The HTTP sink's URI. Swell delivers only over `http`: an `azureEventGridTopic`
    /// destination is refused by name rather than silently dropping events.
    pub fn http_uri(&self) -> Result<&str, ValidationError> {
        let field = "spec.destination";
        match (
            &self.destination.http,
            &self.destination.azure_event_grid_topic,
        ) {
            (Some(http), _) if http.uri.is_empty() => Err(ValidationError::new(
                format!("{field}.http.uri"),
                "uri cannot be empty",
            )),
            (Some(http), _) => Ok(&http.uri),
            (None, Some(_)) => Err(ValidationError::new(
                format!("{field}.azureEventGridTopic"),
                "Swell supports only the http destination; azureEventGridTopic is not supported",
            )),
            (None, None) => Err(ValidationError::new(
                field,
                "no destination is defined: set destination.http.uri",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: serde_json::Value) -> CloudEventSourceSpec {
        serde_json::from_value(v).expect("spec deserializes")
    }

    #[test]
    fn keda_webhook_rules() {
        let http = serde_json::json!({"http": {"uri": "http://sink"}});
        let cases = [
            (serde_json::json!({}), None),
            (
                serde_json::json!({"excludedEventTypes": ["keda.scaledobject.ready.v1"]}),
                None,
            ),
            (
                serde_json::json!({"includedEventTypes": [], "excludedEventTypes": []}),
                Some("setting included types and excluded types at the same time"),
            ),
            (
                serde_json::json!({"includedEventTypes": ["keda.scaledobject.nope.v1"]}),
                Some("includedEventType: keda.scaledobject.nope.v1 in"),
            ),
        ];
        for (subscription, want) in cases {
            let s =
                spec(serde_json::json!({"destination": http, "eventSubscription": subscription}));
            let got = s
                .validate()
                .err()
                .map(|e| crate::validation::format_errors(&e));
            match (want, got) {
                (None, None) => {}
                (Some(w), Some(g)) => assert!(g.contains(w), "{g}"),
                (w, g) => panic!("{subscription}: want {w:?}, got {g:?}"),
            }
        }
    }

    #[test]
    fn only_http_destinations() {
        let ok = spec(serde_json::json!({"destination": {"http": {"uri": "http://sink/x"}}}));
        assert_eq!(ok.http_uri().ok(), Some("http://sink/x"));
        let azure =
            spec(serde_json::json!({"destination": {"azureEventGridTopic": {"endpoint": "e"}}}));
        let e = azure
            .http_uri()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("supports only the http destination"), "{e}");
        let empty = spec(serde_json::json!({"destination": {"http": {"uri": ""}}}));
        assert!(empty.http_uri().is_err());
        let none = spec(serde_json::json!({"destination": {}}));
        assert!(none.http_uri().is_err());
    }

    #[test]
    fn event_types_round_trip() {
        for t in CloudEventType::ALL {
            assert_eq!(CloudEventType::from(t.as_str()), t);
        }
        assert!(!CloudEventType::from("x").is_known());
    }
}
