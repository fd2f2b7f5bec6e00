//! The ScaledJob controller, as a pipeline: [`plan::admit`] (validate, pause) → check the
//! Job template with the API server → build triggers → [`status`] → one job loop per
//! ScaledJob ([`job_loop`]) that creates Jobs from the triggers' queue lengths.
//!
//! Jobs and their pods are read from watch caches (label `scaledjob.keda.sh/name`), never
//! listed per poll.

pub mod apply;
pub mod job_loop;
pub mod plan;
pub mod status;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt as _;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::Event as FinalizerEvent;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt as _, watcher};
use swell_api::annotations::labels;
use swell_api::{ScaledJob, ScaledJobStatus, events};
use swell_scalers::MetricSpec;
use tokio_util::sync::CancellationToken;

use crate::context::{Ctx, Note, StatusError, update_status};
use crate::loop_state::JobLoopState;
use crate::loops::Handle;
use crate::triggers::{BuildError, Built, Owner};
use crate::watch::{reconciled_changes, scoped};
use plan::{Admission, CheckFailed};

const CONTROLLER: &str = "scaled_job";

type Stop = crate::context::Stop<CheckFailed, Error>;

impl From<CheckFailed> for Stop {
    fn from(e: CheckFailed) -> Self {
        Stop::Check(e)
    }
}

impl From<BuildError> for Stop {
    fn from(e: BuildError) -> Self {
        Stop::Check(e.into())
    }
}

impl From<StatusError> for Stop {
    fn from(e: StatusError) -> Self {
        Stop::Error(e.into())
    }
}

pub struct JobCtx {
    pub base: Arc<Ctx>,
    pub store: Store<ScaledJob>,
    pub jobs: Store<Job>,
    pub pods: Store<Pod>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Status(#[from] StatusError),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("the reconcile took longer than {0:?} (an API call got no answer); retrying")]
    Deadline(Duration),
}

impl Error {
    pub fn category(&self) -> &'static str {
        match self {
            Error::Status(e) => e.category(),
            Error::Finalizer(_) => "finalizer",
            Error::Deadline(_) => "deadline",
        }
    }
}

/// Runs the ScaledJob controller, with watch caches of its Jobs and their pods, until
/// `shutdown` fires. Only the leader runs it: followers have nothing to serve for jobs.
pub async fn run(
    base: Arc<Ctx>,
    (reader, writer): (Store<ScaledJob>, reflector::store::Writer<ScaledJob>),
    (watch_namespace, watch_selector): (Option<String>, Option<String>),
    concurrency: u16,
    shutdown: CancellationToken,
) {
    let client = base.client.clone();
    let ns = watch_namespace.as_deref();
    let selector = watcher::Config::default().labels(labels::SCALED_JOB_NAME);
    let (jobs, jobs_writer) = reflector::store::<Job>();
    let jobs_task = watcher(scoped::<Job>(&client, ns), selector.clone())
        .default_backoff()
        .reflect(jobs_writer)
        .for_each(|_| async {});
    let (pods, pods_writer) = reflector::store::<Pod>();
    let pods_task = watcher(scoped::<Pod>(&client, ns), selector)
        .default_backoff()
        .reflect(pods_writer)
        .for_each(|_| async {});
    let sj_stream = reconciled_changes(scoped(&client, ns), watch_selector.as_deref(), writer);
    let ctx = Arc::new(JobCtx {
        base,
        store: reader.clone(),
        jobs,
        pods,
    });
    let loops_ctx = ctx.clone();
    let controller = Controller::for_stream(sj_stream, reader)
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .graceful_shutdown_on({
            let s = shutdown.clone();
            async move { s.cancelled().await }
        })
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "scaledjob reconcile");
            }
        });
    tokio::select! {
        _ = controller => {}
        _ = jobs_task => {}
        _ = pods_task => {}
        _ = shutdown.cancelled() => {}
    }
    loops_ctx.base.job_loops.stop_all();
}

pub fn error_policy(sj: Arc<ScaledJob>, err: &Error, ctx: Arc<JobCtx>) -> Action {
    tracing::warn!(scaledjob = %ObjectRef::from(sj.as_ref()), error = %err, category = err.category(), "reconcile failed");
    ctx.base.metrics.reconcile_error(CONTROLLER, err.category());
    match err {
        Error::Deadline(_) => Action::requeue(Duration::from_secs(1)),
        _ => Action::requeue(Duration::from_secs(10)),
    }
}

impl JobCtx {
    async fn status(
        &self,
        key: &ObjectRef<ScaledJob>,
        mutate: impl Fn(&mut ScaledJobStatus),
    ) -> Result<bool, StatusError> {
        update_status(&self.base.client, &self.store, key, mutate).await
    }

    /// This ScaledJob's Jobs, from the watch cache.
    fn jobs_of(&self, sj: &ScaledJob) -> Vec<Arc<Job>> {
        let ns = sj.namespace();
        let name = sj.name_any();
        self.jobs
            .state()
            .into_iter()
            .filter(|j| {
                j.namespace() == ns && j.labels().get(labels::SCALED_JOB_NAME) == Some(&name)
            })
            .collect()
    }

    /// A ScaledJob's triggers, built as a ScaledObject's are.
    async fn build_triggers(&self, sj: &ScaledJob) -> Result<Built, BuildError> {
        let ns = plan::job_namespace(sj);
        self.base
            .builder
            .build(Owner {
                kind: "ScaledJob",
                namespace: &ns,
                name: &sj.name_any(),
                triggers: &sj.spec.triggers,
                pod: sj.spec.job_target_ref.template.spec.as_ref(),
                env_source_container_name: sj.spec.env_source_container_name.as_deref(),
                polling_interval: sj.spec.polling_interval(),
            })
            .await
    }

    fn auth_versions(&self, sj: &ScaledJob) -> Vec<Option<i64>> {
        let ns = plan::job_namespace(sj);
        self.base
            .builder
            .auth_versions(Some(&ns), &sj.spec.triggers)
    }
}

/// KEDA's finalizer (`finalizer.keda.sh`) on every ScaledJob, so one deleted while Swell
/// runs is seen (its loop stopped, `ScaledJobDeleted` recorded), and one that KEDA made is
/// released instead of staying in Terminating.
pub async fn reconcile(sj: Arc<ScaledJob>, ctx: Arc<JobCtx>) -> Result<Action, Error> {
    crate::context::within_deadline(reconcile_once(sj, ctx))
        .await
        .unwrap_or(Err(Error::Deadline(crate::context::RECONCILE_DEADLINE)))
}

async fn reconcile_once(sj: Arc<ScaledJob>, ctx: Arc<JobCtx>) -> Result<Action, Error> {
    let api: kube::Api<ScaledJob> =
        kube::Api::namespaced(ctx.base.client.clone(), &sj.namespace().unwrap_or_default());
    kube::runtime::finalizer(&api, crate::scaled_object::FINALIZER, sj, |event| async {
        match event {
            FinalizerEvent::Apply(sj) => run_job(sj, ctx.clone()).await,
            FinalizerEvent::Cleanup(sj) => cleanup(sj, ctx.clone()).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

/// The Jobs go with the ScaledJob (owner references); only the loop needs stopping.
async fn cleanup(sj: Arc<ScaledJob>, ctx: Arc<JobCtx>) -> Result<Action, Error> {
    ctx.base.job_loops.remove(&ObjectRef::from(sj.as_ref()));
    let note = Note::warning(events::SCALED_JOB_DELETED, "ScaledJob was deleted");
    ctx.base.record(sj.as_ref(), [note]).await;
    ctx.base.authentication_users_changed(sj.as_ref());
    Ok(Action::await_change())
}

async fn run_job(sj: Arc<ScaledJob>, ctx: Arc<JobCtx>) -> Result<Action, Error> {
    ctx.base.authentication_users_changed(sj.as_ref());
    let result = admit_and_run(&sj, &ctx).await;
    if let Err(e @ Error::Status(StatusError::Api(..))) = &result {
        // As KEDA: a status write the API server refused is a Warning event.
        let note = Note::warning(events::SCALED_JOB_UPDATE_FAILED, e.to_string());
        ctx.base.record(sj.as_ref(), [note]).await;
    }
    result
}

async fn admit_and_run(sj: &Arc<ScaledJob>, ctx: &Arc<JobCtx>) -> Result<Action, Error> {
    let key = ObjectRef::from(sj.as_ref());
    let generation = sj.metadata.generation.unwrap_or_default();
    match plan::admit(sj) {
        Err(failed) => check_failed(ctx, sj, failed).await,
        Ok(Admission::Pause) => pause(ctx, sj).await,
        Ok(Admission::Run) if ctx.base.job_loops.running(&key, generation) => {
            Ok(Action::requeue(Duration::from_secs(300)))
        }
        Ok(Admission::Run) => match start(ctx, sj).await {
            Ok(action) => Ok(action),
            Err(Stop::Error(e)) => Err(e),
            Err(Stop::Check(failed)) => check_failed(ctx, sj, failed).await,
        },
    }
}

/// Checks the template, builds the triggers, marks the ScaledJob ready and starts its loop.
async fn start(ctx: &Arc<JobCtx>, sj: &ScaledJob) -> Result<Action, Stop> {
    let key = ObjectRef::from(sj);
    apply::check_job_template(&ctx.base, sj).await?;
    let versions = ctx.auth_versions(sj);
    let built = ctx.build_triggers(sj).await?;
    apply::rollout_cleanup(&ctx.base, sj, &plan::stale_jobs(sj, &ctx.jobs_of(sj))).await;
    let applied = status::Applied {
        triggers_types: sj
            .spec
            .triggers
            .iter()
            .map(|t| t.type_.as_str())
            .collect::<Vec<_>>()
            .join(","),
        auth_types: (!built.auth_names.is_empty()).then(|| built.auth_names.join(",")),
        external: built
            .triggers
            .iter()
            .filter(|t| matches!(t.spec, MetricSpec::External { .. }))
            .map(|t| t.spec.name().to_string())
            .collect(),
    };
    let was_paused = status::is_paused(sj.status.as_ref());
    let became_ready = ctx.status(&key, |s| status::applied(s, &applied)).await?;
    let mut notes = Vec::new();
    if was_paused {
        notes.push(Note::normal(
            events::SCALED_JOB_UNPAUSED,
            swell_api::conditions::paused::SCALED_JOB_UNPAUSED_MESSAGE,
        ));
    }
    if became_ready {
        notes.push(Note::normal(
            events::SCALED_JOB_READY,
            "ScaledJob is ready for scaling",
        ));
    }
    notes.push(Note::normal(
        events::KEDA_SCALERS_STARTED,
        "Started scalers watch",
    ));
    notes.extend(
        built
            .notices
            .iter()
            .cloned()
            .map(crate::scaled_object::status::scaler_info),
    );
    ctx.base.record(sj, notes).await;

    let generation = sj.metadata.generation.unwrap_or_default();
    let types = built
        .trigger_types()
        .iter()
        .map(|t| t.to_string())
        .collect();
    let running = Arc::new(JobLoopState::new(types, built.sources.clone()));
    let handle = Handle {
        spawned: true,
        ..Handle::idle(generation, running.clone())
    };
    let cancel = handle.cancel.clone();
    ctx.base.job_loops.insert(key.clone(), handle);
    let polling = crate::loops::polling_duration(sj.spec.polling_interval());
    let scalers = job_loop::Scalers {
        triggers: built.triggers,
        versions,
        built_at: Instant::now(),
    };
    tokio::spawn(job_loop::run(
        ctx.clone(),
        key,
        scalers,
        running,
        polling,
        cancel,
    ));
    Ok(Action::requeue(Duration::from_secs(300)))
}

async fn pause(ctx: &JobCtx, sj: &ScaledJob) -> Result<Action, Error> {
    let key = ObjectRef::from(sj);
    ctx.base.job_loops.remove(&key);
    if ctx.status(&key, status::paused).await? {
        let note = Note::normal(
            events::SCALED_JOB_PAUSED,
            swell_api::conditions::paused::SCALED_JOB_PAUSED_MESSAGE,
        );
        ctx.base.record(sj, [note]).await;
    }
    Ok(Action::await_change())
}

/// Marks the ScaledJob not ready with a message that names the problem.
async fn check_failed(ctx: &JobCtx, sj: &ScaledJob, failed: CheckFailed) -> Result<Action, Error> {
    let key = ObjectRef::from(sj);
    let message = failed.to_string();
    ctx.base
        .metrics
        .reconcile_error(CONTROLLER, failed.category());
    ctx.base.job_loops.remove(&key);
    let mut notes = Vec::new();
    if failed.scaler_failed() {
        notes.push(Note::warning(events::KEDA_SCALER_FAILED, message.clone()));
    }
    // Recorded before the status write, which may fail and be retried.
    ctx.base.record(sj, notes).await;
    if ctx
        .status(&key, |s| status::check_failed(s, &message))
        .await?
    {
        let note = Note::warning(events::SCALED_JOB_CHECK_FAILED, message);
        ctx.base.record(sj, [note]).await;
    }
    Ok(Action::requeue(Duration::from_secs(30)))
}
