//! Watch helpers both controllers use: one watch per kind, scoped to the watched namespace.

use futures::Stream;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, Store, store::Writer};
use kube::runtime::{WatchStreamExt as _, predicates, watcher};
use kube::{Api, Client, ResourceExt as _};

/// What a watched kind must be.
pub trait Watched:
    kube::Resource<DynamicType = ()>
    + Clone
    + std::fmt::Debug
    + serde::de::DeserializeOwned
    + Send
    + Sync
    + 'static
{
}

impl<K> Watched for K where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static
{
}

/// An API for `K` in the watched namespace, or in all of them.
pub fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// The objects a controller reconciles: changes to spec (generation), labels, annotations,
/// finalizers and deletion, not its own status writes; `writer` keeps the store current.
/// Only objects matching `selector` are seen (KEDA's `WATCH_LABEL_SELECTOR`), filtered by
/// the API server.
pub fn reconciled_changes<K>(
    api: Api<K>,
    selector: Option<&str>,
    writer: Writer<K>,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: Watched,
{
    watcher(api, selected(selector).any_semantic())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(
            |obj: &K| {
                use std::hash::{Hash, Hasher};
                let mut h = std::collections::hash_map::DefaultHasher::new();
                obj.meta().generation.hash(&mut h);
                obj.annotations().hash(&mut h);
                obj.labels().hash(&mut h);
                obj.finalizers().hash(&mut h);
                obj.meta().deletion_timestamp.is_some().hash(&mut h);
                Some(h.finish())
            },
            Default::default(),
        )
}

/// A watch of the objects `selector` matches, or of all.
fn selected(selector: Option<&str>) -> watcher::Config {
    match selector {
        Some(s) => watcher::Config::default().labels(s),
        None => watcher::Config::default(),
    }
}

/// A cache of `K` and its spec changes (generation), for kinds a controller reads and
/// reacts to (TriggerAuthentications).
pub fn spec_watch<K: Watched>(
    api: Api<K>,
) -> (
    Store<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
) {
    let (store, writer) = reflector::store::<K>();
    let stream = watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        .reflect(writer)
        .touched_objects()
        .predicate_filter(predicates::generation, Default::default());
    (store, stream)
}

/// Changes to `K`'s objects, metadata only and kept nowhere: memory does not grow with how
/// many there are; a change is looked up by name by whoever reads the stream.
pub fn metadata_changes<K>(
    api: Api<PartialObjectMeta<K>>,
) -> impl Stream<Item = Result<PartialObjectMeta<K>, watcher::Error>> + Send + 'static
where
    PartialObjectMeta<K>: Watched,
{
    watcher(api, watcher::Config::default())
        .default_backoff()
        .touched_objects()
}

/// The HPAs Swell manages (KEDA's `app.kubernetes.io/managed-by` label): a cache (the scale
/// loop reads their status from it, for HPAActive) and their spec changes (not every status
/// sync), for the controller that owns them. Managed fields are dropped from the cache.
/// With `selector` (KEDA's `WATCH_LABEL_SELECTOR`; HPAs carry their ScaledObject's labels),
/// only the matching ones.
pub fn managed_hpas(
    api: Api<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler>,
    selector: Option<&str>,
) -> (
    Store<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler>,
    impl Stream<
        Item = Result<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler, watcher::Error>,
    > + Send
    + 'static,
) {
    let (store, writer) = reflector::store();
    let managed = "app.kubernetes.io/managed-by=keda-operator";
    let managed = match selector {
        Some(s) => watcher::Config::default().labels(&format!("{managed},{s}")),
        None => watcher::Config::default().labels(managed),
    };
    let stream = watcher(api, managed)
        .default_backoff()
        .modify(|h| h.managed_fields_mut().clear())
        .reflect(writer)
        .touched_objects()
        .predicate_filter(predicates::generation, Default::default());
    (store, stream)
}

/// Every change to `K`'s objects as the watcher reports it (applies, deletes and relists),
/// for state kept per object outside a store (the CloudEventSources' sinks).
pub fn all_events<K: Watched>(
    api: Api<K>,
) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static {
    watcher(api, watcher::Config::default().any_semantic()).default_backoff()
}
