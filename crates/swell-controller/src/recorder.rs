//! Publishes `events.k8s.io/v1` Events, counting repeats into a series as client-go does.
//!
//! kube-runtime's `Recorder` keys its series on type, reason and action but not the note,
//! so a second `KEDAScalerFailed` with another error (or a second activation by another
//! trigger) within six minutes only bumps the first event's count and keeps its old
//! message. client-go's recorder keys on the note too; so does this one.

use std::collections::HashMap;
use std::sync::Mutex;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::events::EventType;
use kube::{Api, Client};

/// How long a repeat joins the earlier event's series (client-go's and kube's window).
const SERIES_WINDOW: SignedDuration = SignedDuration::from_mins(6);

/// What makes two events the same: everything but the time.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    regarding: (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    ),
    warning: bool,
    reason: String,
    note: String,
}

/// The event a repeat updates.
struct Seen {
    namespace: String,
    name: String,
    count: i32,
    last: Timestamp,
}

pub struct Recorder {
    client: Client,
    controller: String,
    instance: String,
    seen: Mutex<HashMap<Key, Seen>>,
}

impl Recorder {
    pub fn new(client: Client, controller: String, instance: String) -> Self {
        Recorder {
            client,
            controller,
            instance,
            seen: Mutex::default(),
        }
    }

    /// Creates the event, or counts it into the series of the same event (same object,
    /// type, reason and note) published less than six minutes ago.
    pub async fn publish(
        &self,
        regarding: &ObjectReference,
        type_: EventType,
        reason: &str,
        note: String,
    ) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let warning = type_ == EventType::Warning;
        let key = Key {
            regarding: (
                regarding.namespace.clone(),
                regarding.kind.clone(),
                regarding.name.clone(),
                regarding.uid.clone(),
            ),
            warning,
            reason: reason.to_string(),
            note: note.clone(),
        };
        if let Some((ns, name, count)) = self.repeat(&key, now) {
            let series = EventSeries {
                count,
                last_observed_time: MicroTime(now),
            };
            let patch = serde_json::json!({ "series": series });
            let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), &ns);
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                // The event expired (the API server's event TTL) or was deleted: a new one.
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                other => return other.map(drop),
            }
        }
        let event = self.event(regarding, warning, reason, note, now);
        let ns = event.metadata.namespace.clone().unwrap_or_default();
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), &ns);
        let created = api.create(&PostParams::default(), &event).await?;
        let seen = Seen {
            namespace: ns,
            name: created.metadata.name.unwrap_or_default(),
            count: 1,
            last: now,
        };
        if let Ok(mut m) = self.seen.lock() {
            m.retain(|_, s| s.last + SERIES_WINDOW > now);
            m.insert(key, seen);
        }
        Ok(())
    }

    /// The event `key` repeats and its new count, when it was seen within the window.
    fn repeat(&self, key: &Key, now: Timestamp) -> Option<(String, String, i32)> {
        let mut m = self.seen.lock().ok()?;
        let s = m.get_mut(key).filter(|s| s.last + SERIES_WINDOW > now)?;
        s.count += 1;
        s.last = now;
        Some((s.namespace.clone(), s.name.clone(), s.count))
    }

    fn event(
        &self,
        regarding: &ObjectReference,
        warning: bool,
        reason: &str,
        note: String,
        now: Timestamp,
    ) -> K8sEvent {
        let name = regarding.name.as_deref().unwrap_or(&self.controller);
        K8sEvent {
            action: Some(reason.to_string()),
            reason: Some(reason.to_string()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            note: Some(note),
            metadata: ObjectMeta {
                namespace: Some(
                    regarding
                        .namespace
                        .clone()
                        .unwrap_or_else(|| "default".into()),
                ),
                name: Some(format!("{name}.{:x}", now.as_nanosecond())),
                ..Default::default()
            },
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            type_: Some(if warning { "Warning" } else { "Normal" }.to_string()),
            ..Default::default()
        }
    }
}
