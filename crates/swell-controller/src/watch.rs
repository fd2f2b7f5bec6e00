//! Watch helpers both controllers use: one watch per kind, scoped to the watched namespace.

use futures::Stream;
use kube::runtime::reflector::store::Writer;
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client, ResourceExt as _};

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
pub fn reconciled_changes<K>(
    api: Api<K>,
    writer: Writer<K>,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    watcher(api, watcher::Config::default().any_semantic())
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
