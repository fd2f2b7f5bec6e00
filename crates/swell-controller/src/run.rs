//! Wiring: one watch per kind, the ScaledObject and ScaledJob controllers, shared scaler
//! clients.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt as _, predicates, watcher};
use kube::{Api, Client, ResourceExt as _};
use swell_api::{ClusterTriggerAuthentication, ScaledObject, TriggerAuthentication};
use swell_scalers::UpstreamError;
use swell_scalers::scalers::kubernetes_workload::PodCounter;
use tokio_util::sync::CancellationToken;

use crate::context::Ctx;
use crate::metrics::Metrics;
use crate::scaledobject;
use crate::target::Targets;

/// Counts pods for `kubernetes-workload` triggers (a label-selected LIST per poll).
struct KubePods(Client);

#[async_trait::async_trait]
impl PodCounter for KubePods {
    async fn count_pods(&self, namespace: &str, selector: &str) -> Result<usize, UpstreamError> {
        let pods: Api<Pod> = Api::namespaced(self.0.clone(), namespace);
        let list = pods
            .list(&ListParams::default().labels(selector))
            .await
            .map_err(|e| UpstreamError::new(swell_scalers::UpstreamKind::Other, e.to_string()))?;
        Ok(list
            .items
            .iter()
            .filter(|p| {
                !matches!(
                    p.status.as_ref().and_then(|s| s.phase.as_deref()),
                    Some("Succeeded" | "Failed")
                )
            })
            .count())
    }
}

pub struct Settings {
    pub cluster_namespace: String,
    pub instance: String,
    pub concurrency: u16,
    pub watch_namespace: Option<String>,
    pub leader: bool,
}

/// The controller context currently running, for the metrics API.
pub type CurrentCtx = Arc<std::sync::RwLock<Option<Arc<Ctx>>>>;

/// The watch caches a context reads.
pub struct Stores {
    pub scaled_objects: Store<ScaledObject>,
    pub auths: Store<TriggerAuthentication>,
    pub cluster_auths: Store<ClusterTriggerAuthentication>,
}

/// The shared state, built before leadership so every replica can serve metrics later.
pub fn context(
    client: Client,
    metrics: Arc<Metrics>,
    stores: Stores,
    reconcile_now: futures::channel::mpsc::UnboundedSender<ObjectRef<ScaledObject>>,
    settings: &Settings,
) -> Arc<Ctx> {
    let reporter = Reporter {
        controller: "keda-operator".into(),
        instance: Some(settings.instance.clone()),
    };
    Arc::new(Ctx {
        recorder: Recorder::new(client.clone(), reporter),
        targets: Targets::default(),
        store: stores.scaled_objects,
        auths: stores.auths,
        cluster_auths: stores.cluster_auths,
        reconcile_now,
        loops: Default::default(),
        metric_misses: Default::default(),
        shared: swell_scalers::Shared {
            workloads: Some(Arc::new(KubePods(client.clone()))),
            upstream_calls: metrics.upstream_calls.clone(),
            ..Default::default()
        },
        cluster_namespace: settings.cluster_namespace.clone(),
        metrics,
        leader: settings.leader,
        client,
    })
}

/// One watch of an authentication kind: its cache, and its changes for the controller.
fn auth_watch<K>(
    api: Api<K>,
) -> (
    Store<K>,
    impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store::<K>();
    // Only spec changes matter (generation), not metadata or status updates.
    let stream = watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        .reflect(writer)
        .touched_objects()
        .predicate_filter(predicates::generation, Default::default());
    (store, stream)
}

/// The ScaledObjects whose triggers name this (Cluster)TriggerAuthentication.
fn referrers<K: kube::Resource>(
    scaled_objects: &Store<ScaledObject>,
    cluster: bool,
) -> impl Fn(K) -> Vec<ObjectRef<ScaledObject>> + Send + Sync + 'static {
    use swell_api::AuthenticationRefKind as Kind;
    let store = scaled_objects.clone();
    move |auth: K| {
        let (name, ns) = (auth.meta().name.clone(), auth.meta().namespace.clone());
        let wanted = if cluster {
            Kind::ClusterTriggerAuthentication
        } else {
            Kind::TriggerAuthentication
        };
        store
            .state()
            .iter()
            .filter(|so| cluster || so.metadata.namespace == ns)
            .filter(|so| {
                so.spec.triggers.iter().any(|t| {
                    t.authentication_ref
                        .as_ref()
                        .is_some_and(|r| r.kind() == wanted && Some(&r.name) == name.as_ref())
                })
            })
            .map(|so| ObjectRef::from(so.as_ref()))
            .collect()
    }
}

fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Runs the ScaledObject controller, and on the leader the ScaledJob controller, until
/// `shutdown` fires. A new leader takes over the loop states of the context `current` holds
/// (the follower's) before it answers metric requests, so the metrics API never loses an
/// object across the handover.
pub async fn run_controllers(
    client: Client,
    metrics: Arc<Metrics>,
    settings: Settings,
    shutdown: CancellationToken,
    current: CurrentCtx,
) {
    let (reader, writer) = reflector::store::<ScaledObject>();
    let (auths, auth_stream) =
        auth_watch::<TriggerAuthentication>(scoped(&client, settings.watch_namespace.as_deref()));
    let (cluster_auths, cluster_auth_stream) =
        auth_watch::<ClusterTriggerAuthentication>(Api::all(client.clone()));
    let (reconcile_now, rebuilds) = futures::channel::mpsc::unbounded();
    let stores = Stores {
        scaled_objects: reader.clone(),
        auths,
        cluster_auths,
    };
    let ctx = context(client.clone(), metrics, stores, reconcile_now, &settings);
    if let Ok(mut c) = current.write() {
        if let Some(previous) = c.as_ref().filter(|_| settings.leader) {
            ctx.adopt_loops(previous);
        }
        *c = Some(ctx.clone());
    }

    // Reconcile on spec, metadata and deletion changes, not on our own status writes.
    let so_api: Api<ScaledObject> = scoped(&client, settings.watch_namespace.as_deref());
    let so_stream = watcher(so_api, watcher::Config::default().any_semantic())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(
            |so: &ScaledObject| {
                use std::hash::{Hash, Hasher};
                let mut h = std::collections::hash_map::DefaultHasher::new();
                so.metadata.generation.hash(&mut h);
                so.annotations().hash(&mut h);
                so.labels().hash(&mut h);
                so.finalizers().hash(&mut h);
                so.metadata.deletion_timestamp.is_some().hash(&mut h);
                Some(h.finish())
            },
            Default::default(),
        );
    // Only HPAs we manage, and only when their spec changes (not every status sync).
    let hpa_api: Api<HorizontalPodAutoscaler> =
        scoped(&client, settings.watch_namespace.as_deref());
    let hpa_stream = watcher(
        hpa_api,
        watcher::Config::default().labels("app.kubernetes.io/managed-by=keda-operator"),
    )
    .default_backoff()
    .touched_objects()
    .predicate_filter(predicates::generation, Default::default());

    let jobs = settings.leader.then(|| {
        tokio::spawn(crate::scaledjob::run(
            ctx.clone(),
            settings.watch_namespace.clone(),
            settings.concurrency,
            shutdown.clone(),
        ))
    });
    let loops_ctx = ctx.clone();
    let so_shutdown = shutdown.clone();
    Controller::for_stream(so_stream, reader.clone())
        .owns_stream(hpa_stream)
        .watches_stream(auth_stream, referrers(&reader, false))
        .watches_stream(cluster_auth_stream, referrers(&reader, true))
        .reconcile_on(rebuilds)
        .with_config(kube::runtime::controller::Config::default().concurrency(settings.concurrency))
        .graceful_shutdown_on(async move { so_shutdown.cancelled().await })
        .run(scaledobject::reconcile, scaledobject::error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "reconcile");
            }
        })
        .await;
    shutdown.cancel();
    if let Some(jobs) = jobs {
        let _ = jobs.await;
    }
    // Leadership or the process ended: no loop may keep scaling. A follower's states stay
    // for the leader it may become (they run no loop).
    if let Ok(mut loops) = loops_ctx.loops.lock()
        && settings.leader
    {
        for (_, h) in loops.drain() {
            h.cancel.cancel();
        }
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
}
