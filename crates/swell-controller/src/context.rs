//! State shared by the reconciler and the scale loops.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource};
use swell_api::{ScaledObject, ScaledObjectStatus};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::scale_loop::LoopState;
use crate::target::Targets;

/// A running scale loop and what it was built from.
pub struct LoopHandle {
    /// The ScaledObject generation the loop's scalers were built from.
    pub generation: i64,
    pub cancel: CancellationToken,
    pub state: Arc<LoopState>,
    /// A scale loop runs on `state` (the leader's); a follower's state only serves the
    /// metrics API until a leader adopts it.
    pub spawned: bool,
}

pub struct Ctx {
    pub client: Client,
    pub recorder: Recorder,
    pub targets: Targets,
    pub store: Store<ScaledObject>,
    /// Watch caches of the authentications triggers name (a change rebuilds their scalers).
    pub auths: Store<swell_api::TriggerAuthentication>,
    pub cluster_auths: Store<swell_api::ClusterTriggerAuthentication>,
    /// Asks the ScaledObject controller to reconcile an object now (a scale loop whose
    /// trigger failed wants its scalers rebuilt).
    pub reconcile_now: futures::channel::mpsc::UnboundedSender<ObjectRef<ScaledObject>>,
    pub loops: Mutex<HashMap<ObjectRef<ScaledObject>, LoopHandle>>,
    /// ScaledObjects whose metrics the external metrics API was asked for and could not
    /// serve since their loop last started (each warned about once).
    pub metric_misses: Mutex<HashSet<ObjectRef<ScaledObject>>>,
    pub shared: swell_scalers::Shared,
    /// Where ClusterTriggerAuthentication secrets are read (KEDA's cluster object namespace).
    pub cluster_namespace: String,
    pub metrics: Arc<Metrics>,
    /// Only the leader scales, writes and records; followers build scalers so that they
    /// can answer the metrics API.
    pub leader: bool,
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

impl Ctx {
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        let reference: ObjectReference = obj.object_ref(&());
        let note = truncate_note(note);
        let ev = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: reason.into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &reference).await {
            tracing::warn!(error = %e, reason, "publishing event");
        }
    }

    pub fn stop_loop(&self, key: &ObjectRef<ScaledObject>) -> bool {
        let handle = self.loops.lock().ok().and_then(|mut l| l.remove(key));
        self.forget_misses(key);
        match handle {
            Some(h) => {
                h.cancel.cancel();
                self.count_registered(key, &h.state, -1);
                true
            }
            None => false,
        }
    }

    /// The loop state built from this generation of the ScaledObject, if any.
    pub fn loop_state(
        &self,
        key: &ObjectRef<ScaledObject>,
        generation: i64,
    ) -> Option<Arc<LoopState>> {
        let loops = self.loops.lock().ok()?;
        let h = loops.get(key).filter(|h| h.generation == generation)?;
        Some(h.state.clone())
    }

    /// Whether a scale loop already runs for this generation.
    pub fn loop_running(&self, key: &ObjectRef<ScaledObject>, generation: i64) -> bool {
        self.loops.lock().ok().is_some_and(|l| {
            l.get(key)
                .is_some_and(|h| h.generation == generation && h.spawned)
        })
    }

    /// Takes over a follower's loop states at leadership handover, before this context
    /// serves the metrics API: their scalers keep answering without a gap, and the leader's
    /// first reconcile starts its loops on them instead of building every scaler again.
    pub fn adopt_loops(&self, from: &Ctx) {
        let taken: Vec<_> = from
            .loops
            .lock()
            .map(|mut l| l.drain().collect())
            .unwrap_or_default();
        if let Ok(mut mine) = self.loops.lock() {
            mine.extend(taken);
        }
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

    /// Records a ScaledObject's live state, replacing (and stopping) any older one.
    pub fn set_loop(&self, key: ObjectRef<ScaledObject>, handle: LoopHandle) {
        self.count_registered(&key, &handle.state, 1);
        self.forget_misses(&key);
        let old = self
            .loops
            .lock()
            .ok()
            .and_then(|mut l| l.insert(key.clone(), handle));
        if let Some(old) = old {
            old.cancel.cancel();
            self.count_registered(&key, &old.state, -1);
        }
    }

    /// `keda_resource_registered_total` and `keda_trigger_registered_total`.
    fn count_registered(&self, key: &ObjectRef<ScaledObject>, state: &LoopState, delta: i64) {
        let types: Vec<&str> = state.triggers.iter().map(|t| t.type_.as_str()).collect();
        self.count_resource("scaled_object", key.namespace.as_deref(), &types, delta);
    }

    /// Counts a registered ScaledObject or ScaledJob (`kind`) and its triggers.
    pub fn count_resource(
        &self,
        kind: &str,
        namespace: Option<&str>,
        triggers: &[&str],
        delta: i64,
    ) {
        self.metrics
            .resources
            .get_or_create(&vec![
                ("type", kind.to_string()),
                ("namespace", namespace.unwrap_or_default().to_string()),
            ])
            .inc_by(delta);
        for t in triggers {
            self.metrics
                .triggers
                .get_or_create(&vec![("type", t.to_string())])
                .inc_by(delta);
        }
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
