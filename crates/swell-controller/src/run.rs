//! Wiring: one watch per kind, the ScaledObject and ScaledJob controllers, shared scaler
//! clients.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::ListParams;
use kube::core::PartialObjectMeta;
use kube::runtime::Controller;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::{Api, Client};
use swell_api::{ClusterTriggerAuthentication, ScaledJob, ScaledObject, TriggerAuthentication};
use swell_scalers::UpstreamError;
use swell_scalers::scalers::kubernetes_workload::{PodCounter, PodInfo};
use tokio_util::sync::CancellationToken;

use crate::auth::SourceEvent;
use crate::authentication::{self, AuthCtx, AuthWakes, Authentication};
use crate::context::Ctx;
use crate::loops::Registry;
use crate::metrics::Metrics;
use crate::recorder::Recorder;
use crate::scaled_object;
use crate::target::Targets;
use crate::triggers::Builder;
use crate::watch::{managed_hpas, metadata_changes, reconciled_changes, scoped};

/// Lists pods for `kubernetes-workload` triggers (a label-selected LIST per poll).
struct KubePods(Client);

#[async_trait::async_trait]
impl PodCounter for KubePods {
    async fn pods(&self, namespace: &str, selector: &str) -> Result<Vec<PodInfo>, UpstreamError> {
        let pods: Api<Pod> = Api::namespaced(self.0.clone(), namespace);
        let list = pods
            .list(&ListParams::default().labels(selector))
            .await
            .map_err(|e| UpstreamError::new(swell_scalers::UpstreamKind::Other, e.to_string()))?;
        Ok(list
            .items
            .into_iter()
            .map(|p| PodInfo {
                phase: p.status.and_then(|s| s.phase),
                node: p.spec.and_then(|s| s.node_name),
            })
            .collect())
    }
}

pub struct Settings {
    pub cluster_namespace: String,
    /// Where Secrets and ConfigMaps are watched for rotation, when narrower than
    /// `watch_namespace` (the chart's `rbac.restrictSecretAccess`).
    pub credentials_namespace: Option<String>,
    pub instance: String,
    pub concurrency: u16,
    pub watch_namespace: Option<String>,
    /// Only ScaledObjects, ScaledJobs and HPAs with these labels (`WATCH_LABEL_SELECTOR`).
    pub watch_label_selector: Option<String>,
    /// Only (Cluster)TriggerAuthentications with these labels
    /// (`WATCH_LABEL_SELECTOR_FOR_TRIGGERAUTH`).
    pub auth_label_selector: Option<String>,
    /// ScaledJobs reconciled at once (KEDA_SCALEDJOB_CTRL_MAX_RECONCILES).
    pub scaled_job_concurrency: u16,
    /// KEDA's --k8s-cluster-name, for CloudEvents.
    pub cluster_name: String,
    pub leader: bool,
    /// `--exact-targets`: ScaledObjects without the annotation get no HPA dead band.
    pub exact_targets: bool,
    /// HTTP scalers' clients (KEDA_HTTP_DEFAULT_TIMEOUT, KEDA_HTTP_DISABLE_KEEP_ALIVE).
    pub http: swell_scalers::http::HttpSettings,
    /// AWS calls' rate limit per identity, region and service (`--aws-api-qps/burst`).
    pub aws_limits: swell_scalers::aws::CallLimits,
    /// The EKS cluster whose Pod Identity associations give workloads their roles.
    pub eks_cluster: Option<swell_scalers::aws::EksCluster>,
    /// How often `awsSecretManager` secrets named by stage are read again
    /// (`--aws-secret-refresh-seconds`).
    pub aws_secret_refresh: Duration,
}

/// The controller context currently running, for the metrics API.
pub type CurrentCtx = Arc<std::sync::RwLock<Option<Arc<Ctx>>>>;

/// The watch caches a context reads.
pub struct Stores {
    pub scaled_objects: Store<ScaledObject>,
    pub hpas: Store<HorizontalPodAutoscaler>,
    pub auths: Store<TriggerAuthentication>,
    pub cluster_auths: Store<ClusterTriggerAuthentication>,
}

/// The shared state, built before leadership so every replica can serve metrics later.
pub fn context(
    client: Client,
    metrics: Arc<Metrics>,
    stores: Stores,
    reconcile_now: futures::channel::mpsc::UnboundedSender<ObjectRef<ScaledObject>>,
    auth_wakes: AuthWakes,
    settings: &Settings,
) -> Arc<Ctx> {
    let http = Arc::new(swell_scalers::http::HttpClients::new(settings.http));
    let cloud_events = Arc::new(crate::cloud_events::Emitter::new(
        client.clone(),
        http.clone(),
        metrics.clone(),
        settings.cluster_name.clone(),
        settings.cluster_namespace.clone(),
    ));
    let builder = Builder {
        client: client.clone(),
        shared: swell_scalers::Shared {
            workloads: Some(Arc::new(KubePods(client.clone()))),
            http,
            aws: Arc::new(
                swell_scalers::aws::AwsClients::new(settings.aws_limits, metrics.aws.clone())
                    .with_eks_cluster(settings.eks_cluster.clone()),
            ),
            upstream_calls: metrics.upstream_calls.clone(),
            observe: metrics.scalers.clone(),
            ..Default::default()
        },
        cluster_namespace: settings.cluster_namespace.clone(),
        auths: stores.auths,
        cluster_auths: stores.cluster_auths,
    };
    Arc::new(Ctx {
        recorder: Recorder::new(
            client.clone(),
            "keda-operator".into(),
            settings.instance.clone(),
        ),
        targets: Targets::default(),
        store: stores.scaled_objects,
        hpas: stores.hpas,
        builder,
        reconcile_now,
        auth_wakes,
        loops: Registry::new("scaled_object", metrics.clone()),
        job_loops: Registry::new("scaled_job", metrics.clone()),
        metric_misses: Default::default(),
        metrics,
        leader: settings.leader,
        exact_targets: settings.exact_targets,
        cloud_events,
        client,
    })
}

/// What the ScaledObject controller consumes besides the Secrets and ConfigMaps it watches.
struct ScaledObjectWatches<S, H> {
    reader: Store<ScaledObject>,
    scaled_objects: S,
    hpas: H,
    rebuilds: futures::channel::mpsc::UnboundedReceiver<ObjectRef<ScaledObject>>,
}

/// The ScaledObject controller, until `shutdown`: its objects' changes, the HPAs it owns,
/// the Secrets and ConfigMaps its scalers were built from, and rebuild requests.
async fn run_scaled_objects<S, H>(
    ctx: Arc<Ctx>,
    w: ScaledObjectWatches<S, H>,
    settings: &Settings,
    shutdown: CancellationToken,
) where
    S: futures::Stream<Item = Result<ScaledObject, kube::runtime::watcher::Error>> + Send + 'static,
    H: futures::Stream<Item = Result<HorizontalPodAutoscaler, kube::runtime::watcher::Error>>
        + Send
        + 'static,
{
    // Secrets and ConfigMaps are watched for their metadata only and cached nowhere, so
    // memory does not grow with Secrets no trigger reads (KEDA's keda#7728).
    let credentials_ns = settings
        .credentials_namespace
        .as_deref()
        .or(settings.watch_namespace.as_deref());
    let secrets = metadata_changes::<Secret>(scoped(&ctx.client, credentials_ns));
    let config_maps = metadata_changes::<ConfigMap>(scoped(&ctx.client, credentials_ns));
    Controller::for_stream(w.scaled_objects, w.reader)
        .owns_stream(w.hpas)
        .watches_stream(secrets, source_referrers(ctx.clone(), "Secret"))
        .watches_stream(config_maps, source_referrers(ctx.clone(), "ConfigMap"))
        .reconcile_on(w.rebuilds)
        .with_config(kube::runtime::controller::Config::default().concurrency(settings.concurrency))
        .graceful_shutdown_on(async move { shutdown.cancelled().await })
        .run(scaled_object::reconcile, scaled_object::error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "reconcile");
            }
        })
        .await;
}

/// The ScaledObjects whose scalers were built from this Secret or ConfigMap, changed since
/// (ScaledJobs built from it are told to rebuild too).
fn source_referrers<K: kube::Resource>(
    ctx: Arc<Ctx>,
    kind: &'static str,
) -> impl Fn(PartialObjectMeta<K>) -> Vec<ObjectRef<ScaledObject>> + Send + Sync + 'static {
    move |m| {
        let (Some(ns), Some(name)) = (&m.metadata.namespace, &m.metadata.name) else {
            return Vec::new();
        };
        let event = SourceEvent {
            kind,
            namespace: ns,
            name,
            version: m.metadata.resource_version.as_deref(),
        };
        let changed = ctx.source_changed(&event);
        if !changed.is_empty() {
            tracing::info!(
                kind,
                namespace = ns,
                name,
                objects = changed.len(),
                "credentials changed: rebuilding the scalers built from them"
            );
        }
        changed
    }
}

/// Runs one authentication kind's controller until `shutdown` fires.
async fn auth_controller<K: Authentication>(
    (changes, woken): (
        impl futures::Stream<Item = Result<K, kube::runtime::watcher::Error>> + Send + 'static,
        futures::channel::mpsc::UnboundedReceiver<ObjectRef<K>>,
    ),
    store: Store<K>,
    ctx: Arc<AuthCtx>,
    shutdown: CancellationToken,
) {
    Controller::for_stream(changes, store)
        .reconcile_on(woken)
        .graceful_shutdown_on(async move { shutdown.cancelled().await })
        .run(
            authentication::reconcile::<K>,
            authentication::error_policy::<K>,
            ctx,
        )
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "authentication reconcile");
            }
        })
        .await;
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
    let (auths, auth_writer) = reflector::store::<TriggerAuthentication>();
    let auth_selector = settings.auth_label_selector.as_deref();
    let auth_stream = reconciled_changes(
        scoped(&client, settings.watch_namespace.as_deref()),
        auth_selector,
        auth_writer,
    );
    let (cluster_auths, cluster_auth_writer) = reflector::store::<ClusterTriggerAuthentication>();
    let cluster_auth_stream =
        reconciled_changes(Api::all(client.clone()), auth_selector, cluster_auth_writer);
    let (scaled_jobs, scaled_jobs_writer) = reflector::store::<ScaledJob>();
    let (reconcile_now, rebuilds) = futures::channel::mpsc::unbounded();
    let selector = settings.watch_label_selector.as_deref();
    let (hpas, hpa_stream) = managed_hpas(
        scoped::<HorizontalPodAutoscaler>(&client, settings.watch_namespace.as_deref()),
        selector,
    );
    let stores = Stores {
        scaled_objects: reader.clone(),
        hpas,
        auths: auths.clone(),
        cluster_auths: cluster_auths.clone(),
    };
    let (auth_wakes, auth_woken, cluster_auth_woken) = AuthWakes::new();
    let ctx = context(
        client.clone(),
        metrics,
        stores,
        reconcile_now,
        auth_wakes,
        &settings,
    );
    publish(&current, &ctx, settings.leader);

    let so_stream = reconciled_changes(
        scoped(&client, settings.watch_namespace.as_deref()),
        selector,
        writer,
    );
    let leader_tasks = spawn_leader_tasks(
        &ctx,
        &settings,
        (scaled_jobs.clone(), scaled_jobs_writer),
        &shutdown,
    );
    let side_tasks = spawn_side_tasks(
        &ctx,
        ((auth_stream, auth_woken), auths),
        ((cluster_auth_stream, cluster_auth_woken), cluster_auths),
        scaled_jobs,
        &settings,
        &shutdown,
    );
    let loops_ctx = ctx.clone();
    let watches = ScaledObjectWatches {
        reader,
        scaled_objects: so_stream,
        hpas: hpa_stream,
        rebuilds,
    };
    run_scaled_objects(ctx, watches, &settings, shutdown.clone()).await;
    shutdown.cancel();
    for task in leader_tasks.into_iter().chain(side_tasks) {
        let _ = task.await;
    }
    // Leadership or the process ended: no loop may keep scaling. A follower's states stay
    // for the leader it may become (they run no loop).
    if settings.leader {
        loops_ctx.loops.stop_all();
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
}

/// A kind's changes, the wakes of its objects, and its cache.
type AuthWatch<S, K> = (
    (S, futures::channel::mpsc::UnboundedReceiver<ObjectRef<K>>),
    Store<K>,
);

/// Every replica's tasks besides the ScaledObject controller: the authentication
/// controllers, which consume their kinds' watches (a spec change rebuilds the
/// ScaledObjects that use it through `reconcile_now`), and the `awsSecretManager` refresh.
fn spawn_side_tasks<A, C>(
    ctx: &Arc<Ctx>,
    (auth_changes, auths): AuthWatch<A, TriggerAuthentication>,
    (cluster_changes, cluster_auths): AuthWatch<C, ClusterTriggerAuthentication>,
    scaled_jobs: Store<ScaledJob>,
    settings: &Settings,
    shutdown: &CancellationToken,
) -> [tokio::task::JoinHandle<()>; 3]
where
    A: futures::Stream<Item = Result<TriggerAuthentication, kube::runtime::watcher::Error>>
        + Send
        + 'static,
    C: futures::Stream<Item = Result<ClusterTriggerAuthentication, kube::runtime::watcher::Error>>
        + Send
        + 'static,
{
    let auth_ctx = AuthCtx::new(ctx.clone(), scaled_jobs);
    [
        tokio::spawn(auth_controller(
            auth_changes,
            auths,
            auth_ctx.clone(),
            shutdown.clone(),
        )),
        tokio::spawn(auth_controller(
            cluster_changes,
            cluster_auths,
            auth_ctx,
            shutdown.clone(),
        )),
        tokio::spawn(refresh_aws_secrets(
            ctx.clone(),
            settings.aws_secret_refresh,
            shutdown.clone(),
        )),
    ]
}

/// The leader's own controllers: ScaledJobs, and CloudEvents (only the leader publishes
/// events, so only it delivers them). None on a follower.
fn spawn_leader_tasks(
    ctx: &Arc<Ctx>,
    settings: &Settings,
    scaled_jobs: (Store<ScaledJob>, reflector::store::Writer<ScaledJob>),
    shutdown: &CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    if !settings.leader {
        return Vec::new();
    }
    let cloud_events = tokio::spawn(crate::cloud_events::run(
        ctx.cloud_events.clone(),
        settings.watch_namespace.clone(),
        shutdown.clone(),
    ));
    let jobs = tokio::spawn(crate::scaled_job::run(
        ctx.clone(),
        scaled_jobs,
        (
            settings.watch_namespace.clone(),
            settings.watch_label_selector.clone(),
        ),
        settings.scaled_job_concurrency,
        shutdown.clone(),
    ));
    vec![cloud_events, jobs]
}

/// Reads the `awsSecretManager` secrets in use again every `every` (the ones named by
/// stage), until `shutdown`; one whose stage moved to a new version rebuilds the scalers
/// built from it, as a changed Kubernetes Secret does.
async fn refresh_aws_secrets(ctx: Arc<Ctx>, every: Duration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let in_use = ctx.aws_secrets_in_use();
        // Half the interval: a secret read just after a tick is read again at the next one.
        let changes = ctx
            .builder
            .shared
            .aws
            .refresh_secrets(&in_use, every / 2)
            .await;
        for change in changes {
            let event = SourceEvent {
                kind: crate::auth::AWS_SECRET,
                namespace: "",
                name: &change.key,
                version: change.version_id.as_deref(),
            };
            let stale = ctx.source_changed(&event);
            tracing::info!(
                secret = %change.key,
                version = change.version_id.as_deref().unwrap_or(""),
                objects = stale.len(),
                "an awsSecretManager secret has a new version: rebuilding the scalers built from it"
            );
            for key in stale {
                ctx.request_reconcile(key);
            }
        }
    }
}

/// Makes `ctx` the one the metrics API reads; a new leader first adopts the follower's
/// loop states, so the metrics API keeps answering through the handover.
fn publish(current: &CurrentCtx, ctx: &Arc<Ctx>, leader: bool) {
    if let Ok(mut c) = current.write() {
        if let Some(previous) = c.as_ref().filter(|_| leader) {
            ctx.adopt_loops(previous);
        }
        *c = Some(ctx.clone());
    }
}
