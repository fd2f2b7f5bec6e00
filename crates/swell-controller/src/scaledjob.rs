//! The ScaledJob controller: validate → pause → check the Job template with the API
//! server → build triggers → one job loop per ScaledJob that creates Jobs from the
//! triggers' queue lengths (`swell_scaling::jobs`) and trims the history.
//!
//! Jobs and their pods are read from watch caches (label `scaledjob.keda.sh/name`), never
//! listed per poll. Jobs this loop created but the cache has not shown yet still count, so
//! a slow watch cannot turn the same messages into duplicate Jobs.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use kube::api::{DeleteParams, PostParams, PropagationPolicy as KubePropagation};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt as _, watcher};
use kube::{Api, Resource as _, ResourceExt as _};
use swell_api::annotations::{self, labels};
use swell_api::conditions::{self, active as act, paused as pz, ready};
use swell_api::status::set_condition;
use swell_api::{
    Condition, ConditionStatus, MultipleScalersCalculation, PropagationPolicy, RolloutStrategy,
    ScaledJob, ScaledJobStatus, ScalingStrategyType, TriggerActivityStatus, events,
};
use swell_scalers::MetricSpec;
use swell_scaling::jobs::{self, Calculation, Finished, JobCounts, Strategy, TriggerLoad};
use tokio_util::sync::CancellationToken;

use crate::context::{Ctx, StatusError, update_status};
use crate::metrics::ScalerLabels;
use crate::scale_loop::TriggerRuntime;
use crate::triggers::{self, BuildError};

const VERSION: &str = env!("CARGO_PKG_VERSION");
/// A Job we created stays counted until the watch shows it, or this long.
const UNSEEN_GRACE: Duration = Duration::from_secs(60);

struct JobLoop {
    generation: i64,
    cancel: CancellationToken,
    trigger_types: Vec<String>,
}

pub struct JobCtx {
    pub base: Arc<Ctx>,
    pub store: Store<ScaledJob>,
    pub jobs: Store<Job>,
    pub pods: Store<Pod>,
    loops: Mutex<HashMap<ObjectRef<ScaledJob>, JobLoop>>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Status(#[from] StatusError),
}

/// Runs the ScaledJob controller, with watch caches of its Jobs and their pods, until
/// `shutdown` fires. Only the leader runs it: followers have nothing to serve for jobs.
pub async fn run(
    base: Arc<Ctx>,
    watch_namespace: Option<String>,
    concurrency: u16,
    shutdown: CancellationToken,
) {
    let client = base.client.clone();
    let (reader, writer) = reflector::store::<ScaledJob>();
    let (jobs, jobs_writer) = reflector::store::<Job>();
    let (pods, pods_writer) = reflector::store::<Pod>();
    let selector = watcher::Config::default().labels(labels::SCALED_JOB_NAME);
    let jobs_task = watcher(
        scoped::<Job>(&client, watch_namespace.as_deref()),
        selector.clone(),
    )
    .default_backoff()
    .reflect(jobs_writer)
    .for_each(|_| async {});
    let pods_task = watcher(scoped::<Pod>(&client, watch_namespace.as_deref()), selector)
        .default_backoff()
        .reflect(pods_writer)
        .for_each(|_| async {});
    let ctx = Arc::new(JobCtx {
        base,
        store: reader.clone(),
        jobs,
        pods,
        loops: Mutex::default(),
    });

    // Reconcile on spec, metadata and deletion changes, not on our own status writes.
    let sj_api: Api<ScaledJob> = scoped(&client, watch_namespace.as_deref());
    let sj_stream = watcher(sj_api, watcher::Config::default().any_semantic())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(
            |sj: &ScaledJob| {
                use std::hash::{Hash, Hasher};
                let mut h = std::collections::hash_map::DefaultHasher::new();
                sj.metadata.generation.hash(&mut h);
                sj.annotations().hash(&mut h);
                sj.labels().hash(&mut h);
                sj.metadata.deletion_timestamp.is_some().hash(&mut h);
                Some(h.finish())
            },
            Default::default(),
        );
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
    let drained: Vec<_> = loops_ctx
        .loops
        .lock()
        .map(|mut l| l.drain().collect())
        .unwrap_or_default();
    for (key, l) in drained {
        l.cancel.cancel();
        loops_ctx.count(&key, &l, -1);
    }
}

fn scoped<K>(client: &kube::Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

pub fn error_policy(sj: Arc<ScaledJob>, err: &Error, _ctx: Arc<JobCtx>) -> Action {
    tracing::warn!(scaledjob = %ObjectRef::from(sj.as_ref()), error = %err, "reconcile failed");
    Action::requeue(Duration::from_secs(10))
}

fn cond(type_: &str, status: ConditionStatus, reason: &str, message: &str) -> Condition {
    Condition::new(type_, status, reason, message)
}

impl JobCtx {
    fn stop_loop(&self, key: &ObjectRef<ScaledJob>) -> bool {
        let l = self.loops.lock().ok().and_then(|mut l| l.remove(key));
        if let Some(l) = &l {
            l.cancel.cancel();
            self.count(key, l, -1);
        }
        l.is_some()
    }

    /// `keda_resource_registered_total{type="scaled_job"}` and its triggers.
    fn count(&self, key: &ObjectRef<ScaledJob>, l: &JobLoop, delta: i64) {
        let types: Vec<&str> = l.trigger_types.iter().map(String::as_str).collect();
        self.base
            .count_resource("scaled_job", key.namespace.as_deref(), &types, delta);
    }

    fn loop_generation(&self, key: &ObjectRef<ScaledJob>) -> Option<i64> {
        self.loops
            .lock()
            .ok()
            .and_then(|l| l.get(key).map(|l| l.generation))
    }

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
}

/// Marks the ScaledJob not ready with a message that names the problem.
async fn check_failed(ctx: &JobCtx, sj: &ScaledJob, message: String) -> Result<Action, Error> {
    let key = ObjectRef::from(sj);
    ctx.stop_loop(&key);
    let changed = ctx
        .status(&key, |s| {
            let conds = s
                .conditions
                .get_or_insert_with(swell_api::status::initial_conditions);
            set_condition(
                conds,
                cond(
                    conditions::READY,
                    ConditionStatus::False,
                    ready::SCALED_JOB_CHECK_FAILED,
                    &message,
                ),
            );
        })
        .await?;
    if changed {
        ctx.base
            .event(
                sj,
                EventType::Warning,
                events::SCALED_JOB_CHECK_FAILED,
                message,
            )
            .await;
    }
    Ok(Action::requeue(Duration::from_secs(30)))
}

pub async fn reconcile(sj: Arc<ScaledJob>, ctx: Arc<JobCtx>) -> Result<Action, Error> {
    let key = ObjectRef::from(sj.as_ref());
    if sj.metadata.deletion_timestamp.is_some() {
        // The Jobs go with it (owner references); only the loop needs stopping.
        ctx.stop_loop(&key);
        return Ok(Action::await_change());
    }
    if let Err(errors) = sj.validate() {
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        return check_failed(&ctx, &sj, text.join("; ")).await;
    }
    if annotations::bool_annotation(sj.metadata.annotations.as_ref(), annotations::PAUSED) {
        return pause(&ctx, &sj).await;
    }
    let generation = sj.metadata.generation.unwrap_or_default();
    if ctx.loop_generation(&key) == Some(generation) {
        return Ok(Action::requeue(Duration::from_secs(300)));
    }

    // The API server is the judge of a JobSpec: a dry-run create names what is wrong with
    // jobTargetRef now, not when the first message arrives.
    // It is named after the ScaledJob, not generated, so the message is the same on every
    // retry; validation runs before the name is checked, so AlreadyExists means valid.
    if let Some(mut job) = job_for(&sj).pop() {
        job.metadata.generate_name = None;
        job.metadata.name = Some(sj.name_any().chars().take(63).collect());
        let api: Api<Job> = Api::namespaced(ctx.base.client.clone(), &job_namespace(&sj));
        let dry_run = PostParams {
            dry_run: true,
            ..Default::default()
        };
        if let Err(e) = api.create(&dry_run, &job).await
            && !matches!(&e, kube::Error::Api(s) if s.code == 409)
        {
            let message = format!(
                "spec.jobTargetRef is not a valid Job: {}",
                crate::kube_message(&e)
            );
            return check_failed(&ctx, &sj, message).await;
        }
    }

    let versions = auth_versions(&ctx, &sj);
    let built = build_triggers(&ctx, &sj).await;
    let (triggers, auth_names) = match built {
        Ok(b) => b,
        Err(BuildError {
            message,
            scaler_failed,
        }) => {
            if scaler_failed {
                ctx.base
                    .event(
                        sj.as_ref(),
                        EventType::Warning,
                        events::KEDA_SCALER_FAILED,
                        message.clone(),
                    )
                    .await;
            }
            return check_failed(&ctx, &sj, message).await;
        }
    };

    rollout_cleanup(&ctx, &sj, generation).await;

    let types: Vec<&str> = sj.spec.triggers.iter().map(|t| t.type_.as_str()).collect();
    let triggers_types = types.join(",");
    let auth_types = auth_names.join(",");
    let metric_names: Vec<String> = triggers
        .iter()
        .filter(|t| matches!(t.spec, MetricSpec::External { .. }))
        .map(|t| t.spec.name().to_string())
        .collect();
    let became_ready = ctx
        .status(&key, |s| {
            let conds = s
                .conditions
                .get_or_insert_with(swell_api::status::initial_conditions);
            let was_ready = conds.iter().any(|c| {
                c.type_ == conditions::READY
                    && c.is_true()
                    && c.reason.as_deref() == Some(ready::SCALED_JOB_READY)
            });
            if !was_ready {
                set_condition(
                    conds,
                    cond(
                        conditions::READY,
                        ConditionStatus::True,
                        ready::SCALED_JOB_READY,
                        ready::SCALED_JOB_READY_MESSAGE,
                    ),
                );
            }
            unpause_condition(conds);
            s.paused = None;
            s.triggers_types = Some(triggers_types.clone());
            s.authentications_types = (!auth_types.is_empty()).then(|| auth_types.clone());
            s.external_metric_names = (!metric_names.is_empty()).then(|| metric_names.clone());
        })
        .await?;
    if became_ready {
        ctx.base
            .event(
                sj.as_ref(),
                EventType::Normal,
                events::SCALED_JOB_READY,
                "ScaledJob is ready for scaling".into(),
            )
            .await;
    }
    ctx.base
        .event(
            sj.as_ref(),
            EventType::Normal,
            events::KEDA_SCALERS_STARTED,
            "Started scalers watch".into(),
        )
        .await;

    let cancel = CancellationToken::new();
    let job_loop_entry = JobLoop {
        generation,
        cancel: cancel.clone(),
        trigger_types: triggers.iter().map(|t| t.type_.clone()).collect(),
    };
    ctx.count(&key, &job_loop_entry, 1);
    let old = ctx
        .loops
        .lock()
        .ok()
        .and_then(|mut l| l.insert(key.clone(), job_loop_entry));
    if let Some(old) = old {
        old.cancel.cancel();
        ctx.count(&key, &old, -1);
    }
    let polling = crate::scale_loop::polling_duration(sj.spec.polling_interval());
    let scalers = Scalers {
        triggers,
        versions,
        built_at: Instant::now(),
    };
    tokio::spawn(job_loop(ctx.clone(), key, scalers, polling, cancel));
    Ok(Action::requeue(Duration::from_secs(300)))
}

fn unpause_condition(conds: &mut Vec<Condition>) {
    let was_paused = conds
        .iter()
        .any(|c| c.type_ == conditions::PAUSED && c.is_true());
    if was_paused {
        set_condition(
            conds,
            cond(
                conditions::PAUSED,
                ConditionStatus::False,
                pz::SCALED_JOB_UNPAUSED,
                pz::SCALED_JOB_UNPAUSED_MESSAGE,
            ),
        );
    }
}

async fn pause(ctx: &JobCtx, sj: &ScaledJob) -> Result<Action, Error> {
    let key = ObjectRef::from(sj);
    ctx.stop_loop(&key);
    let changed = ctx
        .status(&key, |s| {
            let conds = s
                .conditions
                .get_or_insert_with(swell_api::status::initial_conditions);
            set_condition(
                conds,
                cond(
                    conditions::PAUSED,
                    ConditionStatus::True,
                    pz::SCALED_JOB_PAUSED,
                    pz::SCALED_JOB_PAUSED_MESSAGE,
                ),
            );
            s.paused = Some("true".into());
        })
        .await?;
    if changed {
        ctx.base
            .event(
                sj,
                EventType::Normal,
                events::SCALED_JOB_PAUSED,
                pz::SCALED_JOB_PAUSED_MESSAGE.into(),
            )
            .await;
    }
    Ok(Action::await_change())
}

fn job_namespace(sj: &ScaledJob) -> String {
    sj.namespace().unwrap_or_default()
}

/// One Job as KEDA makes it: `generateName <sj>-`, KEDA's labels, the generation
/// annotation, a controller owner reference, and `restartPolicy: OnFailure` when unset.
fn job_for(sj: &ScaledJob) -> Vec<Job> {
    let name = sj.name_any();
    let mut spec = (*sj.spec.job_target_ref).clone();
    let template_meta = spec
        .template
        .metadata
        .get_or_insert_with(ObjectMeta::default);
    template_meta
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(labels::SCALED_JOB_NAME.into(), name.clone());
    if let Some(pod) = spec.template.spec.as_mut()
        && pod.restart_policy.as_deref().unwrap_or("").is_empty()
    {
        pod.restart_policy = Some("OnFailure".into());
    }
    let mut job_labels: BTreeMap<String, String> = [
        ("app.kubernetes.io/name", name.as_str()),
        ("app.kubernetes.io/version", VERSION),
        ("app.kubernetes.io/part-of", name.as_str()),
        ("app.kubernetes.io/managed-by", "keda-operator"),
        (labels::SCALED_JOB_NAME, name.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    job_labels.extend(sj.labels().clone());
    let mut job_annotations = BTreeMap::from([(
        annotations::SCALED_JOB_GENERATION.to_string(),
        sj.metadata.generation.unwrap_or_default().to_string(),
    )]);
    job_annotations.extend(sj.annotations().clone());
    let owner = sj.controller_owner_ref(&()).map(|mut o: OwnerReference| {
        o.block_owner_deletion = Some(true);
        o
    });
    vec![Job {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}-")),
            namespace: sj.namespace(),
            labels: Some(job_labels),
            annotations: Some(job_annotations),
            owner_references: owner.map(|o| vec![o]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }]
}

fn finished_type(job: &Job) -> Option<&'static str> {
    let conds = job.status.as_ref()?.conditions.as_ref()?;
    conds
        .iter()
        .find_map(|c| match (c.type_.as_str(), c.status.as_str()) {
            ("Complete", "True") => Some("Complete"),
            ("Failed", "True") => Some("Failed"),
            _ => None,
        })
}

/// Running (unfinished) Jobs, and those among them still waiting for a pod: no pod
/// Running or Succeeded, or with `pendingPodConditions`, a pod without all of them True.
fn count_jobs(jobs: &[Arc<Job>], pods: &[Arc<Pod>], pending_conditions: &[String]) -> JobCounts {
    let mut counts = JobCounts::default();
    for job in jobs.iter().filter(|j| finished_type(j).is_none()) {
        counts.running += 1;
        let job_name = job.name_any();
        let ns = job.namespace();
        let mine = pods.iter().filter(|p| {
            p.namespace() == ns
                && p.labels()
                    .get("batch.kubernetes.io/job-name")
                    .or(p.labels().get("job-name"))
                    == Some(&job_name)
        });
        let started = if pending_conditions.is_empty() {
            mine.into_iter().any(|p| {
                matches!(
                    p.status.as_ref().and_then(|s| s.phase.as_deref()),
                    Some("Running" | "Succeeded")
                )
            })
        } else {
            mine.into_iter().any(|p| {
                let conds = p.status.as_ref().and_then(|s| s.conditions.as_ref());
                pending_conditions.iter().all(|want| {
                    conds
                        .is_some_and(|cs| cs.iter().any(|c| &c.type_ == want && c.status == "True"))
                })
            })
        };
        if !started {
            counts.pending += 1;
        }
    }
    counts
}

/// With rollout strategy `immediate` (the default), Jobs made from an older generation of
/// the ScaledJob are deleted when it changes; `gradual` lets them finish.
async fn rollout_cleanup(ctx: &JobCtx, sj: &ScaledJob, generation: i64) {
    if sj.spec.rollout_strategy() == RolloutStrategy::Gradual {
        return;
    }
    let current = generation.to_string();
    let stale: Vec<Arc<Job>> = ctx
        .jobs_of(sj)
        .into_iter()
        .filter(|j| {
            j.annotations()
                .get(annotations::SCALED_JOB_GENERATION)
                .is_some_and(|g| *g != current)
        })
        .collect();
    if stale.is_empty() {
        return;
    }
    let policy = match sj.spec.rollout_propagation_policy() {
        PropagationPolicy::Foreground => KubePropagation::Foreground,
        PropagationPolicy::Background => KubePropagation::Background,
    };
    ctx.base
        .event(
            sj,
            EventType::Normal,
            events::SCALED_JOB_ROLLOUT_CLEANUP_STARTED,
            format!(
                "Rollout cleanup started: deleting {} jobs of an older generation",
                stale.len()
            ),
        )
        .await;
    let api: Api<Job> = Api::namespaced(ctx.base.client.clone(), &job_namespace(sj));
    let dp = DeleteParams {
        propagation_policy: Some(policy),
        ..Default::default()
    };
    let mut failed = Vec::new();
    for j in &stale {
        match api.delete(&j.name_any(), &dp).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => failed.push(format!("{}: {}", j.name_any(), crate::kube_message(&e))),
        }
    }
    if failed.is_empty() {
        ctx.base
            .event(
                sj,
                EventType::Normal,
                events::SCALED_JOB_ROLLOUT_CLEANUP_COMPLETED,
                format!(
                    "Deleted jobs owned by the previous version of the scaleJob: {} jobs deleted",
                    stale.len()
                ),
            )
            .await;
    } else {
        ctx.base
            .event(
                sj,
                EventType::Warning,
                events::SCALED_JOB_ROLLOUT_CLEANUP_FAILED,
                failed.join("; "),
            )
            .await;
    }
}

fn strategy_of(sj: &ScaledJob) -> Strategy {
    let s = sj.spec.scaling_strategy.clone().unwrap_or_default();
    match sj.spec.scaling_strategy() {
        ScalingStrategyType::Default => Strategy::Default,
        // A percentage that does not parse falls back to the default strategy, as in KEDA.
        ScalingStrategyType::Custom => match s.custom_scaling_running_job_percentage() {
            Ok(pct) => Strategy::Custom {
                queue_length_deduction: i64::from(s.custom_scaling_queue_length_deduction()),
                running_job_percentage: pct,
            },
            Err(_) => Strategy::Default,
        },
        ScalingStrategyType::Accurate => Strategy::Accurate,
        ScalingStrategyType::Eager => Strategy::Eager,
    }
}

fn calculation_of(sj: &ScaledJob) -> Calculation {
    match sj.spec.multiple_scalers_calculation() {
        MultipleScalersCalculation::Max => Calculation::Max,
        MultipleScalersCalculation::Min => Calculation::Min,
        MultipleScalersCalculation::Avg => Calculation::Avg,
        MultipleScalersCalculation::Sum => Calculation::Sum,
    }
}

/// A ScaledJob's triggers, built as a ScaledObject's are.
async fn build_triggers(
    ctx: &JobCtx,
    sj: &ScaledJob,
) -> Result<(Vec<TriggerRuntime>, Vec<String>), BuildError> {
    let ns = job_namespace(sj);
    triggers::build(
        &ctx.base,
        triggers::Owner {
            namespace: &ns,
            name: &sj.name_any(),
            triggers: &sj.spec.triggers,
            pod: sj.spec.job_target_ref.template.spec.as_ref(),
            env_source_container_name: sj.spec.env_source_container_name.as_deref(),
            polling_interval: sj.spec.polling_interval(),
        },
    )
    .await
}

fn auth_versions(ctx: &JobCtx, sj: &ScaledJob) -> Vec<Option<i64>> {
    triggers::auth_versions(&ctx.base, Some(&job_namespace(sj)), &sj.spec.triggers)
}

/// A job loop's scalers and what they were built from.
struct Scalers {
    triggers: Vec<TriggerRuntime>,
    /// The generations of the (Cluster)TriggerAuthentications they read.
    versions: Vec<Option<i64>>,
    built_at: Instant,
}

impl Scalers {
    /// Rebuilds the scalers, re-reading their credentials, when a (Cluster)TriggerAuthentication
    /// they read has changed, or (at most once per `polling`) after a trigger failed, as
    /// KEDA's `refreshScaler`: a rotated Secret is picked up without a spec change.
    async fn refresh(
        &mut self,
        ctx: &JobCtx,
        key: &ObjectRef<ScaledJob>,
        sj: &ScaledJob,
        failed: bool,
        polling: Duration,
    ) {
        let versions = auth_versions(ctx, sj);
        if versions == self.versions && !(failed && self.built_at.elapsed() >= polling) {
            return;
        }
        self.built_at = Instant::now();
        match build_triggers(ctx, sj).await {
            Ok((triggers, _)) => {
                tracing::info!(scaledjob = %key, "rebuilt scalers: a trigger failed or its authentication changed");
                self.triggers = triggers;
                self.versions = versions;
            }
            Err(e) => tracing::warn!(scaledjob = %key, error = %e.message, "rebuilding scalers"),
        }
    }
}

async fn job_loop(
    ctx: Arc<JobCtx>,
    key: ObjectRef<ScaledJob>,
    mut scalers: Scalers,
    polling: Duration,
    cancel: CancellationToken,
) {
    // The caches must be complete before counting Jobs from them.
    tokio::select! {
        _ = cancel.cancelled() => return,
        r = async { tokio::join!(ctx.jobs.wait_until_ready(), ctx.pods.wait_until_ready()) } => {
            if r.0.is_err() || r.1.is_err() {
                return;
            }
        }
    }
    let mut state = LoopMemory::default();
    let mut interval = tokio::time::interval(polling);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = interval.tick() => {}
        }
        let Some(sj) = ctx.store.get(&key) else { break };
        scalers.refresh(&ctx, &key, &sj, false, polling).await;
        tick(&ctx, &key, &sj, &scalers.triggers, &mut state).await;
        scalers
            .refresh(&ctx, &key, &sj, state.failed, polling)
            .await;
    }
    tracing::debug!(scaledjob = %key, "job loop stopped");
}

/// What a job loop remembers between polls.
#[derive(Default)]
struct LoopMemory {
    /// Jobs created but not yet in the watch cache, with when.
    unseen: HashMap<String, Instant>,
    /// The last error reported per trigger, so one failure is one event, not one per poll.
    last_errors: HashMap<usize, String>,
    /// A trigger failed on the last poll.
    failed: bool,
}

async fn tick(
    ctx: &JobCtx,
    key: &ObjectRef<ScaledJob>,
    sj: &ScaledJob,
    triggers: &[TriggerRuntime],
    mem: &mut LoopMemory,
) {
    let ns = job_namespace(sj);
    let name = sj.name_any();
    let mut loads = Vec::new();
    let mut errors = Vec::new();
    let mut activity = BTreeMap::new();
    let polled: Vec<&TriggerRuntime> = triggers
        .iter()
        .filter(|t| t.scaler.polled() && matches!(t.spec, MetricSpec::External { .. }))
        .collect();
    let readings = futures::future::join_all(
        polled
            .iter()
            .map(|t| async move { t.scaler.sample().await }),
    )
    .await;
    for (t, r) in polled.iter().zip(readings) {
        let MetricSpec::External { target, .. } = t.spec else {
            continue;
        };
        let labels = ScalerLabels {
            namespace: ns.clone(),
            metric: t.spec.name().to_string(),
            scaled_object: name.clone(),
            scaler: t.type_.clone(),
            trigger_index: t.index.to_string(),
            type_: "scaledjob".into(),
        };
        match r {
            Ok(s) => {
                mem.last_errors.remove(&t.index);
                ctx.base
                    .metrics
                    .scaler_value
                    .get_or_create(&labels)
                    .set(s.value);
                ctx.base
                    .metrics
                    .scaler_active
                    .get_or_create(&labels)
                    .set(if s.active { 1.0 } else { 0.0 });
                activity.insert(
                    t.spec.name().to_string(),
                    TriggerActivityStatus {
                        is_active: Some(s.active),
                    },
                );
                loads.push(TriggerLoad {
                    queue_length: s.value,
                    target,
                    active: s.active,
                });
            }
            Err(e) => {
                ctx.base.metrics.scaler_errors.get_or_create(&labels).inc();
                let msg = e.to_string();
                if mem.last_errors.get(&t.index) != Some(&msg) {
                    ctx.base
                        .event(
                            sj,
                            EventType::Warning,
                            events::KEDA_SCALER_FAILED,
                            msg.clone(),
                        )
                        .await;
                    mem.last_errors.insert(t.index, msg.clone());
                }
                errors.push(msg);
            }
        }
    }

    mem.failed = !errors.is_empty();
    let min = i64::from(sj.spec.min_replica_count());
    let max = jobs::effective_max_replicas(min, i64::from(sj.spec.max_replica_count()));
    let load = jobs::combine(&loads, calculation_of(sj), min, max);

    let mine = ctx.jobs_of(sj);
    let seen: std::collections::HashSet<String> = mine.iter().map(|j| j.name_any()).collect();
    mem.unseen
        .retain(|n, at| !seen.contains(n) && at.elapsed() < UNSEEN_GRACE);
    let pods = ctx.pods.state();
    let mut counts = count_jobs(&mine, &pods, sj.spec.pending_pod_conditions());
    let unseen = i64::try_from(mem.unseen.len()).unwrap_or(i64::MAX);
    counts.running += unseen;
    counts.pending += unseen;
    let n = jobs::jobs_to_create(load, counts, strategy_of(sj), min, max);
    tracing::debug!(scaledjob = %key, ?load, ?counts, create = n, "job loop");

    let mut create_errors = Vec::new();
    let mut created = 0;
    if n > 0 {
        let api: Api<Job> = Api::namespaced(ctx.base.client.clone(), &ns);
        let template = job_for(sj);
        if let Some(job) = template.first() {
            for _ in 0..n {
                match api.create(&PostParams::default(), job).await {
                    Ok(j) => {
                        created += 1;
                        mem.unseen.insert(j.name_any(), Instant::now());
                    }
                    Err(e) => {
                        create_errors.push(crate::kube_message(&e));
                        break;
                    }
                }
            }
        }
    }
    if created > 0 {
        ctx.base
            .event(
                sj,
                EventType::Normal,
                events::KEDA_JOBS_CREATED,
                format!("Created {created} jobs"),
            )
            .await;
    }
    if let Some(e) = create_errors.first() {
        ctx.base
            .event(
                sj,
                EventType::Warning,
                events::KEDA_JOB_CREATE_FAILED,
                format!("Failed to create a Job from spec.jobTargetRef: {e}"),
            )
            .await;
    }

    let all_failed = !polled.is_empty() && errors.len() == polled.len();
    let now = Time(jiff::Timestamp::now());
    let active = load.active;
    let before = sj.condition(conditions::ACTIVE).map(|c| c.status.clone());
    let written = ctx
        .status(key, |s| {
            let conds = s
                .conditions
                .get_or_insert_with(swell_api::status::initial_conditions);
            if active {
                s.last_active_time = Some(now.clone());
                set_condition(
                    conds,
                    cond(
                        conditions::ACTIVE,
                        ConditionStatus::True,
                        act::SCALER_ACTIVE,
                        act::SCALER_ACTIVE_MESSAGE,
                    ),
                );
            } else {
                set_condition(
                    conds,
                    cond(
                        conditions::ACTIVE,
                        ConditionStatus::False,
                        act::SCALER_NOT_ACTIVE,
                        act::SCALER_NOT_ACTIVE_MESSAGE,
                    ),
                );
            }
            let ready_cond = if all_failed {
                cond(
                    conditions::READY,
                    ConditionStatus::False,
                    ready::TRIGGER_ERROR,
                    ready::SCALED_JOB_TRIGGER_ERROR_MESSAGE,
                )
            } else if !errors.is_empty() {
                cond(
                    conditions::READY,
                    ConditionStatus::Unknown,
                    ready::PARTIAL_TRIGGER_ERROR,
                    ready::SCALED_JOB_PARTIAL_TRIGGER_ERROR_MESSAGE,
                )
            } else {
                cond(
                    conditions::READY,
                    ConditionStatus::True,
                    ready::SCALED_JOB_READY,
                    ready::SCALED_JOB_READY_MESSAGE,
                )
            };
            set_condition(conds, ready_cond);
            s.triggers_activity = (!activity.is_empty()).then(|| activity.clone());
        })
        .await;
    if let Err(e) = written {
        tracing::debug!(scaledjob = %key, error = %e, "job loop status");
    }
    let now_active = if active {
        ConditionStatus::True
    } else {
        ConditionStatus::False
    };
    if before != Some(now_active) {
        let (reason, note) = if active {
            (
                events::SCALED_JOB_ACTIVE,
                "ScaledJob is active: triggers have load",
            )
        } else {
            (
                events::SCALED_JOB_INACTIVE,
                "ScaledJob is inactive: no trigger has load",
            )
        };
        ctx.base
            .event(sj, EventType::Normal, reason, note.into())
            .await;
    }

    cleanup_history(ctx, sj, &mine).await;
}

/// Deletes finished Jobs beyond successfulJobsHistoryLimit / failedJobsHistoryLimit,
/// oldest first.
async fn cleanup_history(ctx: &JobCtx, sj: &ScaledJob, mine: &[Arc<Job>]) {
    let finished_at = |j: &Job| -> Option<i64> {
        let st = j.status.as_ref()?;
        let t = st.completion_time.as_ref().map(|t| t.0).or_else(|| {
            st.conditions
                .as_ref()?
                .iter()
                .find(|c| c.type_ == "Failed" && c.status == "True")
                .and_then(|c| c.last_transition_time.as_ref().map(|t| t.0))
        })?;
        Some(t.as_millisecond())
    };
    let mut complete = Vec::new();
    let mut failed = Vec::new();
    for j in mine {
        let f = Finished {
            id: j.name_any(),
            finished_at: finished_at(j),
        };
        match finished_type(j) {
            Some("Complete") => complete.push(f),
            Some("Failed") => failed.push(f),
            _ => {}
        }
    }
    let mut doomed = jobs::over_history_limit(
        &complete,
        i64::from(sj.spec.successful_jobs_history_limit()),
    );
    doomed.extend(jobs::over_history_limit(
        &failed,
        i64::from(sj.spec.failed_jobs_history_limit()),
    ));
    if doomed.is_empty() {
        return;
    }
    let api: Api<Job> = Api::namespaced(ctx.base.client.clone(), &job_namespace(sj));
    let dp = DeleteParams::background();
    for name in doomed {
        match api.delete(&name, &dp).await {
            Ok(_) => tracing::debug!(job = name, "deleted past the history limit"),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                tracing::warn!(job = name, error = %crate::kube_message(&e), "deleting a Job past the history limit");
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{JobCondition, JobSpec, JobStatus};
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus, PodTemplateSpec};

    fn sj(json: serde_json::Value) -> ScaledJob {
        serde_json::from_value(json).unwrap()
    }

    fn worker() -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledJob",
            "metadata": {"name": "worker", "namespace": "ns", "uid": "u-1", "generation": 3,
                         "labels": {"team": "a"}, "annotations": {"note": "x"}},
            "spec": {
                "jobTargetRef": {"template": {"spec": {"containers": [{"name": "w", "image": "busybox"}]}}},
                "triggers": [{"type": "cron", "metadata": {"timezone": "UTC", "start": "0 * * * *",
                              "end": "1 * * * *", "desiredReplicas": "1"}}]
            }
        })
    }

    #[test]
    fn jobs_are_made_as_keda_makes_them() {
        let sj = sj(worker());
        let job = job_for(&sj).remove(0);
        let meta = &job.metadata;
        assert_eq!(meta.generate_name.as_deref(), Some("worker-"));
        let labels = meta.labels.clone().unwrap();
        assert_eq!(labels["scaledjob.keda.sh/name"], "worker");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "keda-operator");
        assert_eq!(labels["app.kubernetes.io/part-of"], "worker");
        assert_eq!(labels["team"], "a");
        let anns = meta.annotations.clone().unwrap();
        assert_eq!(anns["scaledjob.keda.sh/generation"], "3");
        assert_eq!(anns["note"], "x");
        let owner = &meta.owner_references.clone().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("ScaledJob", Some(true))
        );
        let spec = job.spec.unwrap();
        assert_eq!(
            spec.template.spec.unwrap().restart_policy.as_deref(),
            Some("OnFailure")
        );
        assert_eq!(
            spec.template.metadata.unwrap().labels.unwrap()["scaledjob.keda.sh/name"],
            "worker"
        );
    }

    fn job(name: &str, finished: Option<&str>) -> Arc<Job> {
        Arc::new(Job {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            spec: Some(JobSpec {
                template: PodTemplateSpec {
                    metadata: None,
                    spec: Some(PodSpec::default()),
                },
                ..Default::default()
            }),
            status: Some(JobStatus {
                conditions: finished.map(|t| {
                    vec![JobCondition {
                        type_: t.into(),
                        status: "True".into(),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
        })
    }

    fn pod(job: &str, phase: &str, conditions: &[&str]) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(format!("{job}-pod")),
                namespace: Some("ns".into()),
                labels: Some(BTreeMap::from([(
                    "batch.kubernetes.io/job-name".to_string(),
                    job.to_string(),
                )])),
                ..Default::default()
            },
            spec: None,
            status: Some(PodStatus {
                phase: Some(phase.into()),
                conditions: Some(
                    conditions
                        .iter()
                        .map(|c| PodCondition {
                            type_: c.to_string(),
                            status: "True".into(),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
        })
    }

    #[test]
    fn running_and_pending_jobs_are_counted_from_their_pods() {
        let jobs = [
            job("a", None),
            job("b", None),
            job("c", None),
            job("done", Some("Complete")),
            job("gone", Some("Failed")),
        ];
        let pods = [
            pod("a", "Running", &["PodScheduled", "Ready"]),
            pod("b", "Pending", &["PodScheduled"]),
        ];
        assert_eq!(
            count_jobs(&jobs, &pods, &[]),
            JobCounts {
                running: 3,
                pending: 2
            }
        );
        // With pendingPodConditions, a Job is pending until a pod has all of them.
        let want = vec!["PodScheduled".to_string(), "Ready".to_string()];
        assert_eq!(count_jobs(&jobs, &pods, &want).pending, 2);
        let want = vec!["PodScheduled".to_string()];
        assert_eq!(count_jobs(&jobs, &pods, &want).pending, 1);
    }
}
