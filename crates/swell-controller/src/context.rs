//! State shared by the reconciler and the scale loops.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource};
use swell_api::{ScaledJob, ScaledObject, ScaledObjectStatus};

use crate::auth::{SourceEvent, SourceRef};
use crate::loop_state::{JobLoopState, LoopState};
use crate::loops::Registry;
use crate::metrics::Metrics;
use crate::recorder::Recorder;
use crate::target::Targets;
use crate::triggers::Builder;

pub struct Ctx {
    pub client: Client,
    pub recorder: Recorder,
    pub targets: Targets,
    pub store: Store<ScaledObject>,
    /// The HPAs Swell manages, for their status (HPAActive).
    pub hpas: Store<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler>,
    /// Builds triggers (authentications, Secrets, shared scaler clients).
    pub builder: Builder,
    /// Asks the ScaledObject controller to reconcile an object now (a scale loop whose
    /// trigger failed wants its scalers rebuilt).
    pub reconcile_now: futures::channel::mpsc::UnboundedSender<ObjectRef<ScaledObject>>,
    /// Wakes the authentication controllers when an object that may name one changes.
    pub auth_wakes: crate::authentication::AuthWakes,
    /// The live state of every ScaledObject this replica serves.
    pub loops: Registry<ScaledObject, LoopState>,
    /// The job loops of every ScaledJob (the leader's only).
    pub job_loops: Registry<ScaledJob, JobLoopState>,
    /// ScaledObjects whose metrics the external metrics API was asked for and could not
    /// serve since their loop last started (each warned about once).
    pub metric_misses: Mutex<HashSet<ObjectRef<ScaledObject>>>,
    pub metrics: Arc<Metrics>,
    /// Only the leader scales, writes and records; followers build scalers so that they
    /// can answer the metrics API.
    pub leader: bool,
    /// The operator's default for `autoscaling.swell.dev/exact-targets`.
    pub exact_targets: bool,
    /// Sends the CloudEvents KEDA maps from published events to CloudEventSources' sinks.
    pub cloud_events: Arc<crate::cloud_events::Emitter>,
}

/// An event to record, decided by a pure status step and published by I/O.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
}

impl Note {
    pub fn normal(reason: &'static str, message: impl Into<String>) -> Note {
        Note {
            warning: false,
            reason,
            message: message.into(),
        }
    }

    pub fn warning(reason: &'static str, message: impl Into<String>) -> Note {
        Note {
            warning: true,
            reason,
            message: message.into(),
        }
    }
}

/// How a reconcile step ends early: a failed check `C` (written to status, retried slowly)
/// or an error `E` (retried by the controller's error policy).
pub enum Stop<C, E> {
    Check(C),
    Error(E),
}

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("{0} is gone")]
    Gone(String),
    #[error("patching status of {0}: {msg}", msg = crate::kube_message(.1))]
    Api(String, kube::Error),
    #[error("status of {0} kept changing under us; will retry on the next poll")]
    Conflict(String),
}

impl StatusError {
    pub fn category(&self) -> &'static str {
        match self {
            StatusError::Gone(_) => "gone",
            StatusError::Api(..) => "kube",
            StatusError::Conflict(_) => "conflict",
        }
    }
}

impl Ctx {
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        let reference: ObjectReference = obj.object_ref(&());
        // The one place events are published, so the one place CloudEvents are sent from.
        let meta = obj.meta();
        self.cloud_events.emit(
            &K::kind(&()),
            meta.namespace.as_deref(),
            meta.name.as_deref().unwrap_or_default(),
            reason,
            &note,
        );
        let note = truncate_note(note);
        if let Err(e) = self.recorder.publish(&reference, type_, reason, note).await {
            tracing::warn!(error = %e, reason, "publishing event");
        }
    }

    /// Publishes the events a status step decided on, in order.
    pub async fn record<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        notes: impl IntoIterator<Item = Note>,
    ) {
        for n in notes {
            let type_ = if n.warning {
                EventType::Warning
            } else {
                EventType::Normal
            };
            self.event(obj, type_, n.reason, n.message).await;
        }
    }

    /// Stops a ScaledObject's loop and forgets its state; whether there was one.
    pub fn stop_loop(&self, key: &ObjectRef<ScaledObject>) -> bool {
        self.forget_misses(key);
        self.loops.remove(key)
    }

    /// Registers a ScaledObject's live state, replacing (and stopping) any older one.
    pub fn set_loop(&self, key: ObjectRef<ScaledObject>, handle: crate::loops::Handle<LoopState>) {
        self.forget_misses(&key);
        self.loops.insert(key, handle);
    }

    /// Takes over a follower's loop states at leadership handover, before this context
    /// serves the metrics API.
    pub fn adopt_loops(&self, from: &Ctx) {
        self.loops.adopt(&from.loops);
    }

    /// `object` was reconciled or deleted: the authentications it names, or that list it,
    /// update their status.
    pub fn authentication_users_changed<T>(&self, object: &T)
    where
        T: crate::authentication::Triggered + kube::Resource,
    {
        let (auths, cluster) = (&self.builder.auths, &self.builder.cluster_auths);
        self.auth_wakes.users_changed(object, auths, cluster);
    }

    pub fn request_reconcile(&self, key: ObjectRef<ScaledObject>) {
        // Closed only when the controller has stopped, and then nothing needs rebuilding.
        let _ = self.reconcile_now.unbounded_send(key);
    }

    fn forget_misses(&self, key: &ObjectRef<ScaledObject>) {
        if let Ok(mut m) = self.metric_misses.lock() {
            m.remove(key);
        }
    }

    /// A Secret or ConfigMap changed: the ScaledObjects whose scalers were built from it,
    /// now marked stale; job loops built from it are told to rebuild.
    pub fn source_changed(&self, e: &SourceEvent<'_>) -> Vec<ObjectRef<ScaledObject>> {
        self.job_loops.select(|s| s.source_changed(e));
        self.loops.select(|s| s.source_changed(e))
    }

    /// The keys of the `awsSecretManager` secrets that the scalers of every loop were built
    /// from ([`crate::auth::AWS_SECRET`] sources).
    pub fn aws_secrets_in_use(&self) -> HashSet<String> {
        let keys = |sources: &[SourceRef]| -> Vec<String> {
            sources
                .iter()
                .filter(|s| s.kind == crate::auth::AWS_SECRET)
                .map(|s| s.name.clone())
                .collect()
        };
        let objects = self
            .loops
            .states()
            .into_iter()
            .flat_map(|s| keys(&s.sources));
        let jobs = self.job_loops.states().into_iter().flat_map(|s| {
            s.sources
                .lock()
                .map(|sources| keys(&sources))
                .unwrap_or_default()
        });
        objects.chain(jobs).collect()
    }

    /// Applies `mutate` to the latest known status and writes it only if it changed.
    pub async fn update_status(
        &self,
        key: &ObjectRef<ScaledObject>,
        mutate: impl Fn(&mut ScaledObjectStatus),
    ) -> Result<bool, StatusError> {
        update_status(&self.client, &self.store, key, mutate).await
    }
}

/// A custom resource with a status subresource.
pub trait WithStatus:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + serde::de::DeserializeOwned
    + std::fmt::Debug
{
    type Status: serde::Serialize + Clone + Default + PartialEq;
    fn status_ref(&self) -> Option<&Self::Status>;
}

impl WithStatus for ScaledObject {
    type Status = ScaledObjectStatus;
    fn status_ref(&self) -> Option<&ScaledObjectStatus> {
        self.status.as_ref()
    }
}

impl WithStatus for swell_api::ScaledJob {
    type Status = swell_api::ScaledJobStatus;
    fn status_ref(&self) -> Option<&swell_api::ScaledJobStatus> {
        self.status.as_ref()
    }
}

/// Applies `mutate` to the latest known status in `store` and writes it only if it
/// changed. The write is conditional on the resourceVersion the change was computed from,
/// so the reconciler and the loop never overwrite each other's fields.
pub async fn update_status<K: WithStatus>(
    client: &Client,
    store: &Store<K>,
    key: &ObjectRef<K>,
    mutate: impl Fn(&mut K::Status),
) -> Result<bool, StatusError> {
    let ns = key.namespace.clone().unwrap_or_default();
    let api: Api<K> = Api::namespaced(client.clone(), &ns);
    for attempt in 0..8u32 {
        let Some(obj) = store.get(key) else {
            return Err(StatusError::Gone(key.to_string()));
        };
        let old = obj.status_ref().cloned().unwrap_or_default();
        let mut new = old.clone();
        mutate(&mut new);
        if new == old {
            return Ok(false);
        }
        let patch = serde_json::json!({
            "metadata": { "resourceVersion": obj.meta().resource_version },
            "status": merge_patch_value(&old, &new),
        });
        match api
            .patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => {
                // Our store lags the write that beat us; let the watch catch up.
                tokio::time::sleep(std::time::Duration::from_millis(
                    50 * u64::from(attempt + 1),
                ))
                .await;
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {
                return Err(StatusError::Gone(key.to_string()));
            }
            Err(e) => return Err(StatusError::Api(key.to_string(), e)),
        }
    }
    Err(StatusError::Conflict(key.to_string()))
}

/// Events carry at most 1024 characters of note.
fn truncate_note(mut note: String) -> String {
    const MAX: usize = 1024;
    if note.len() > MAX {
        let mut end = MAX - 3;
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
        note.push_str("...");
    }
    note
}

/// A JSON merge patch turning `old` into `new`: fields that disappeared become null.
fn merge_patch_value<S: serde::Serialize>(old: &S, new: &S) -> serde_json::Value {
    let mut n = serde_json::to_value(new).unwrap_or_default();
    let o = serde_json::to_value(old).unwrap_or_default();
    if let (Some(nm), Some(om)) = (n.as_object_mut(), o.as_object()) {
        for k in om.keys() {
            nm.entry(k.clone()).or_insert(serde_json::Value::Null);
        }
    }
    n
}

/// How long one reconcile may take. Its steps are a few API calls, yet under load some
/// were seen to get no answer at all (the client's read timeout is 295 s), which left an
/// object unreconciled for minutes. Past this the attempt is dropped, its requests (and
/// their connections) with it, and retried at once; the steps are idempotent.
pub const RECONCILE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs one reconcile attempt within [`RECONCILE_DEADLINE`]; `None` when it ran out.
pub async fn within_deadline<T>(attempt: impl std::future::Future<Output = T>) -> Option<T> {
    tokio::time::timeout(RECONCILE_DEADLINE, attempt).await.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_notes_fit_an_event() {
        let n = truncate_note("é".repeat(2000));
        assert!(n.len() <= 1024 && n.ends_with("..."));
        assert_eq!(truncate_note("short".into()), "short");
    }

    #[test]
    fn removed_fields_become_null() {
        let old = ScaledObjectStatus {
            paused_replica_count: Some(2),
            hpa_name: Some("h".into()),
            ..Default::default()
        };
        let new = ScaledObjectStatus {
            hpa_name: Some("h".into()),
            ..Default::default()
        };
        let v = merge_patch_value(&old, &new);
        assert_eq!(v["pausedReplicaCount"], serde_json::Value::Null);
        assert_eq!(v["hpaName"], "h");
    }
}
