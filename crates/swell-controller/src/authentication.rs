//! The (Cluster)TriggerAuthentication controller, as KEDA's: its finalizer `finalizer.keda.sh`
//! (so authentications made under KEDA, which carry it, can still be deleted under Swell), the
//! Added / Updated / Deleted events, and `status.scaledobjects` / `status.scaledjobs`, the
//! names of the ScaledObjects and ScaledJobs whose triggers name it (from the watch caches).
//! It consumes the one watch of its kind: a spec change also rebuilds the scalers of the
//! ScaledObjects that use it.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt as _};
use swell_api::{
    AuthenticationRefKind, ClusterTriggerAuthentication, ScaleTriggers, ScaledJob, ScaledObject,
    TriggerAuthentication, TriggerAuthenticationStatus, events,
};

use crate::context::{Ctx, Note};
use crate::scaled_object::FINALIZER;

/// How often the status is recomputed from the caches when nothing woke the controller; a
/// ScaledObject or ScaledJob that is reconciled or deleted wakes the authentications it
/// names or is listed by ([`AuthWakes`]).
const STATUS_EVERY: Duration = Duration::from_secs(300);

/// Wakes the authentication controllers for the authentications an object names or that
/// list it, so their status follows at once.
#[derive(Clone)]
pub struct AuthWakes {
    pub namespaced: UnboundedSender<ObjectRef<TriggerAuthentication>>,
    pub cluster: UnboundedSender<ObjectRef<ClusterTriggerAuthentication>>,
}

impl AuthWakes {
    /// The two channels and the streams each controller reconciles on.
    pub fn new() -> (
        AuthWakes,
        UnboundedReceiver<ObjectRef<TriggerAuthentication>>,
        UnboundedReceiver<ObjectRef<ClusterTriggerAuthentication>>,
    ) {
        let (namespaced, ns_rx) = futures::channel::mpsc::unbounded();
        let (cluster, cluster_rx) = futures::channel::mpsc::unbounded();
        (
            AuthWakes {
                namespaced,
                cluster,
            },
            ns_rx,
            cluster_rx,
        )
    }

    /// `object` was reconciled or deleted: wake what it names and what lists it.
    pub fn users_changed<T: Triggered + Resource>(
        &self,
        object: &T,
        auths: &Store<TriggerAuthentication>,
        cluster_auths: &Store<ClusterTriggerAuthentication>,
    ) {
        let ns = object.meta().namespace.as_deref();
        let name = object.meta().name.as_deref().unwrap_or_default();
        for r in object
            .triggers()
            .iter()
            .filter_map(|t| t.authentication_ref.as_ref())
        {
            // Closed only when the controllers stopped, and then nothing needs a status.
            match r.kind() {
                AuthenticationRefKind::TriggerAuthentication => {
                    let key = ObjectRef::new(&r.name).within(ns.unwrap_or_default());
                    let _ = self.namespaced.unbounded_send(key);
                }
                AuthenticationRefKind::ClusterTriggerAuthentication => {
                    let _ = self.cluster.unbounded_send(ObjectRef::new(&r.name));
                }
            }
        }
        for a in auths
            .state()
            .iter()
            .filter(|a| a.metadata.namespace.as_deref() == ns)
        {
            if lists(a.status.as_ref(), name) {
                let _ = self.namespaced.unbounded_send(ObjectRef::from(a.as_ref()));
            }
        }
        for a in cluster_auths.state() {
            if lists(a.status.as_ref(), name) {
                let _ = self.cluster.unbounded_send(ObjectRef::from(a.as_ref()));
            }
        }
    }
}

/// Whether a status lists `name` among its ScaledObjects or ScaledJobs.
fn lists(status: Option<&TriggerAuthenticationStatus>, name: &str) -> bool {
    let has = |v: &Option<String>| {
        v.as_deref()
            .is_some_and(|v| v.split(',').any(|n| n == name))
    };
    status.is_some_and(|s| has(&s.scaledobjects) || has(&s.scaledjobs))
}

/// What differs between the namespaced and the cluster kind.
pub trait Authentication:
    crate::watch::Watched + serde::Serialize + Resource<DynamicType = ()>
{
    const KIND: AuthenticationRefKind;
    const ADDED: &'static str;
    const ADDED_MESSAGE: &'static str;
    const UPDATED: &'static str;
    const DELETED: &'static str;
    const DELETED_MESSAGE: &'static str;
    fn status(&self) -> Option<&TriggerAuthenticationStatus>;
    fn api(client: kube::Client, namespace: Option<&str>) -> Api<Self>;
}

impl Authentication for TriggerAuthentication {
    const KIND: AuthenticationRefKind = AuthenticationRefKind::TriggerAuthentication;
    const ADDED: &'static str = events::TRIGGER_AUTHENTICATION_ADDED;
    const ADDED_MESSAGE: &'static str = "New TriggerAuthentication configured";
    const UPDATED: &'static str = events::TRIGGER_AUTHENTICATION_UPDATED;
    const DELETED: &'static str = events::TRIGGER_AUTHENTICATION_DELETED;
    const DELETED_MESSAGE: &'static str = "TriggerAuthentication was deleted";
    fn status(&self) -> Option<&TriggerAuthenticationStatus> {
        self.status.as_ref()
    }
    fn api(client: kube::Client, namespace: Option<&str>) -> Api<Self> {
        Api::namespaced(client, namespace.unwrap_or_default())
    }
}

impl Authentication for ClusterTriggerAuthentication {
    const KIND: AuthenticationRefKind = AuthenticationRefKind::ClusterTriggerAuthentication;
    const ADDED: &'static str = events::CLUSTER_TRIGGER_AUTHENTICATION_ADDED;
    const ADDED_MESSAGE: &'static str = "New ClusterTriggerAuthentication configured";
    const UPDATED: &'static str = events::CLUSTER_TRIGGER_AUTHENTICATION_UPDATED;
    const DELETED: &'static str = events::CLUSTER_TRIGGER_AUTHENTICATION_DELETED;
    const DELETED_MESSAGE: &'static str = "ClusterTriggerAuthentication was deleted";
    fn status(&self) -> Option<&TriggerAuthenticationStatus> {
        self.status.as_ref()
    }
    fn api(client: kube::Client, _: Option<&str>) -> Api<Self> {
        Api::all(client)
    }
}

/// The controller's state: the shared context, the ScaledJob cache (the leader's; empty on
/// a follower, which writes nothing), and the generation last handled per authentication.
pub struct AuthCtx {
    pub base: Arc<Ctx>,
    pub scaled_jobs: Store<ScaledJob>,
    seen: Mutex<HashMap<AuthKey, Seen>>,
}

/// An authentication's namespace (`None` for the cluster kind) and name.
type AuthKey = (Option<String>, String);

impl AuthCtx {
    fn seen(&self, key: &AuthKey) -> Option<Seen> {
        self.seen.lock().ok().and_then(|s| s.get(key).copied())
    }

    fn set_seen(&self, key: &AuthKey, seen: Option<Seen>) {
        if let Ok(mut s) = self.seen.lock() {
            match seen {
                Some(v) => s.insert(key.clone(), v),
                None => s.remove(key),
            };
        }
    }

    pub fn new(base: Arc<Ctx>, scaled_jobs: Store<ScaledJob>) -> Arc<AuthCtx> {
        Arc::new(AuthCtx {
            base,
            scaled_jobs,
            seen: Mutex::default(),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<kube::Error>>),
}

impl Error {
    pub fn category(&self) -> &'static str {
        "finalizer"
    }
}

/// An object with triggers that may name an authentication.
pub trait Triggered {
    fn triggers(&self) -> &[ScaleTriggers];
}

impl Triggered for ScaledObject {
    fn triggers(&self) -> &[ScaleTriggers] {
        &self.spec.triggers
    }
}

impl Triggered for ScaledJob {
    fn triggers(&self) -> &[ScaleTriggers] {
        &self.spec.triggers
    }
}

/// Pure: whether the triggers of `object` (in `namespace`) name the authentication `kind` named
/// `name` in `auth_namespace` (`None` for the cluster kind).
pub fn names_it<T: Triggered + ?Sized>(
    object: &T,
    namespace: Option<&str>,
    kind: AuthenticationRefKind,
    auth_namespace: Option<&str>,
    name: &str,
) -> bool {
    let same_scope =
        kind == AuthenticationRefKind::ClusterTriggerAuthentication || namespace == auth_namespace;
    same_scope
        && object.triggers().iter().any(|t| {
            t.authentication_ref
                .as_ref()
                .is_some_and(|r| r.kind() == kind && r.name == name)
        })
}

/// Pure: the names of the objects that name the authentication and are not being deleted,
/// sorted, comma-joined (KEDA's format), `None` when there are none.
pub fn users<'a, T: Triggered + Resource + 'a>(
    objects: impl IntoIterator<Item = &'a T>,
    kind: AuthenticationRefKind,
    auth_namespace: Option<&str>,
    name: &str,
) -> Option<String> {
    let names: BTreeSet<String> = objects
        .into_iter()
        // One being deleted no longer uses it (its cleanup wakes this controller).
        .filter(|o| o.meta().deletion_timestamp.is_none())
        .filter(|o| {
            names_it(
                *o,
                o.meta().namespace.as_deref(),
                kind,
                auth_namespace,
                name,
            )
        })
        .filter_map(|o| o.meta().name.clone())
        .collect();
    (!names.is_empty()).then(|| names.into_iter().collect::<Vec<_>>().join(","))
}

/// What this process knows of an authentication.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// It had no finalizer: this process added it, and its first Apply is still to come.
    FinalizerAdded,
    /// This generation was handled (announced, users rebuilt).
    Handled(Option<i64>),
}

/// Pure: the event a reconcile announces, once per generation. On first sight an
/// authentication that already carries the finalizer was announced by an earlier run.
pub fn announce(
    seen: Option<Seen>,
    generation: Option<i64>,
    has_finalizer: bool,
    name: &str,
    kinds: (&'static str, &'static str, &'static str),
) -> Option<Note> {
    let (added, added_message, updated) = kinds;
    match seen {
        Some(Seen::Handled(g)) if g == generation => None,
        None if has_finalizer => None,
        _ if generation == Some(1) => Some(Note::normal(added, added_message)),
        // KEDA's message for both kinds says ClusterTriggerAuthentication.
        _ => Some(Note::normal(
            updated,
            format!("ClusterTriggerAuthentication {name} is updated"),
        )),
    }
}

pub async fn reconcile<K: Authentication>(
    auth: Arc<K>,
    ctx: Arc<AuthCtx>,
) -> Result<Action, Error> {
    let key = (auth.meta().namespace.clone(), auth.name_any());
    let generation = auth.meta().generation;
    let seen = ctx.seen(&key);
    match seen {
        Some(Seen::Handled(g)) if g == generation => {}
        Some(Seen::Handled(_)) => rebuild_users::<K>(&ctx.base, &key, false),
        // First sight: only the users that are not Ready wait for it (created after them);
        // the others are reconciled anyway when the controllers start.
        _ => rebuild_users::<K>(&ctx.base, &key, true),
    }
    if !ctx.base.leader {
        ctx.set_seen(&key, Some(Seen::Handled(generation)));
        return Ok(Action::await_change());
    }
    let has_finalizer = auth.finalizers().iter().any(|f| f == FINALIZER);
    if !has_finalizer {
        // kube's finalizer helper adds it and ends this reconcile; the next one applies.
        ctx.set_seen(&key, Some(Seen::FinalizerAdded));
    }
    let api = K::api(ctx.base.client.clone(), key.0.as_deref());
    finalizer(&api, FINALIZER, auth, |event| async {
        match event {
            FinalizerEvent::Apply(a) => {
                let kinds = (K::ADDED, K::ADDED_MESSAGE, K::UPDATED);
                let note = announce(seen, generation, has_finalizer, &key.1, kinds);
                ctx.base.record(a.as_ref(), note).await;
                ctx.set_seen(&key, Some(Seen::Handled(generation)));
                write_status(&ctx, a.as_ref()).await?;
                Ok(Action::requeue(STATUS_EVERY))
            }
            FinalizerEvent::Cleanup(a) => {
                let note = Note::normal(K::DELETED, K::DELETED_MESSAGE);
                ctx.base.record(a.as_ref(), [note]).await;
                ctx.set_seen(&key, None);
                Ok(Action::await_change())
            }
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

pub fn error_policy<K: Authentication>(auth: Arc<K>, err: &Error, ctx: Arc<AuthCtx>) -> Action {
    tracing::warn!(authentication = %auth.name_any(), error = %err, "reconcile failed");
    ctx.base
        .metrics
        .reconcile_error("authentication", err.category());
    Action::requeue(Duration::from_secs(10))
}

/// Writes `status.scaledobjects` / `status.scaledjobs` when they differ from the caches'.
async fn write_status<K: Authentication>(ctx: &AuthCtx, auth: &K) -> Result<(), kube::Error> {
    let ns = auth.meta().namespace.as_deref();
    let name = auth.name_any();
    let sos = ctx.base.store.state();
    let sjs = ctx.scaled_jobs.state();
    let want = TriggerAuthenticationStatus {
        scaledobjects: users(sos.iter().map(AsRef::as_ref), K::KIND, ns, &name),
        scaledjobs: users(sjs.iter().map(AsRef::as_ref), K::KIND, ns, &name),
    };
    if auth.status().cloned().unwrap_or_default() == want {
        return Ok(());
    }
    let patch = serde_json::json!({"status": {
        "scaledobjects": want.scaledobjects, "scaledjobs": want.scaledjobs}});
    K::api(ctx.base.client.clone(), ns)
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// Asks the ScaledObject controller to rebuild the scalers of the objects that use the
/// authentication whose spec changed (`only_unready`: of those not Ready).
fn rebuild_users<K: Authentication>(ctx: &Ctx, (ns, name): &AuthKey, only_unready: bool) {
    for so in ctx.store.state() {
        let ready = so
            .condition(swell_api::conditions::READY)
            .is_some_and(swell_api::Condition::is_true);
        let namespace = so.metadata.namespace.as_deref();
        let uses = names_it(so.as_ref(), namespace, K::KIND, ns.as_deref(), name);
        if uses && !(only_unready && ready) {
            ctx.request_reconcile(ObjectRef::from(so.as_ref()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn so(ns: &str, name: &str, refs: &[(&str, &str)]) -> ScaledObject {
        let triggers: Vec<_> = refs
            .iter()
            .map(|(kind, auth)| {
                let r = match *kind {
                    "" => serde_json::json!({"name": auth}),
                    k => serde_json::json!({"kind": k, "name": auth}),
                };
                serde_json::json!({"type": "cron", "metadata": {}, "authenticationRef": r})
            })
            .collect();
        serde_json::from_value(serde_json::json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"scaleTargetRef": {"name": "app"}, "triggers": triggers}
        }))
        .unwrap()
    }

    #[test]
    fn users_are_the_objects_naming_it_in_its_scope() {
        let ta = AuthenticationRefKind::TriggerAuthentication;
        let cta = AuthenticationRefKind::ClusterTriggerAuthentication;
        let objects = [
            so("a", "web", &[("TriggerAuthentication", "aws")]),
            so(
                "a",
                "api",
                &[("", "aws"), ("TriggerAuthentication", "other")],
            ),
            so("b", "web", &[("TriggerAuthentication", "aws")]),
            so("a", "jobs", &[("ClusterTriggerAuthentication", "aws")]),
            so("b", "batch", &[("ClusterTriggerAuthentication", "aws")]),
            so("a", "none", &[]),
            {
                let mut gone = so("a", "gone", &[("TriggerAuthentication", "aws")]);
                gone.metadata.deletion_timestamp =
                    Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                        jiff::Timestamp::UNIX_EPOCH,
                    ));
                gone
            },
        ];
        let cases = [
            (ta, Some("a"), "aws", Some("api,web")),
            (ta, Some("b"), "aws", Some("web")),
            (ta, Some("a"), "other", Some("api")),
            (ta, Some("c"), "aws", None),
            (cta, None, "aws", Some("batch,jobs")),
            (cta, None, "other", None),
        ];
        for (kind, ns, name, want) in cases {
            assert_eq!(
                users(objects.iter(), kind, ns, name).as_deref(),
                want,
                "{kind:?} {ns:?}/{name}"
            );
        }
    }

    #[test]
    fn announcements_as_keda_once_per_generation() {
        let kinds = ("Added", "New TriggerAuthentication configured", "Updated");
        let reason = |n: Option<Note>| n.map(|n| n.reason);
        // (what this process saw, generation, already has the finalizer) → event
        let cases = [
            (None, Some(1), false, Some("Added")),
            (Some(Seen::FinalizerAdded), Some(1), true, Some("Added")),
            (Some(Seen::FinalizerAdded), Some(4), true, Some("Updated")),
            (None, Some(3), true, None),
            (Some(Seen::Handled(Some(1))), Some(1), true, None),
            (Some(Seen::Handled(Some(1))), Some(2), true, Some("Updated")),
        ];
        for (seen, generation, fin, want) in cases {
            assert_eq!(
                reason(announce(seen, generation, fin, "aws", kinds)),
                want,
                "{seen:?} {generation:?} {fin}"
            );
        }
        let n = announce(Some(Seen::Handled(Some(1))), Some(2), true, "aws", kinds).unwrap();
        assert_eq!(n.message, "ClusterTriggerAuthentication aws is updated");
    }
}
