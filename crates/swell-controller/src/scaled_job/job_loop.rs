//! One job loop per ScaledJob: every pollingInterval, read the triggers' queue lengths
//! (I/O), decide how many Jobs to create ([`plan::plan_poll`], pure), create them, write
//! the status [`status`] decides, and trim the history.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt as _;
use kube::runtime::reflector::ObjectRef;
use swell_api::{ConditionStatus, ScaledJob, TriggerActivityStatus, conditions, events};
use swell_scalers::MetricSpec;
use swell_scaling::jobs::TriggerLoad;
use tokio_util::sync::CancellationToken;

use crate::context::Note;
use crate::loop_state::JobLoopState;
use crate::loops::Ticker;
use crate::metrics::ScalerLabels;
use crate::scaled_job::status::{self, Polled};
use crate::scaled_job::{JobCtx, apply, plan};
use crate::triggers::TriggerRuntime;

/// A Job we created stays counted until the watch shows it, or this long.
const UNSEEN_GRACE: Duration = Duration::from_secs(60);

/// A job loop's scalers and what they were built from.
pub struct Scalers {
    pub triggers: Vec<TriggerRuntime>,
    /// The generations of the (Cluster)TriggerAuthentications they read.
    pub versions: Vec<Option<i64>>,
    pub built_at: Instant,
}

impl Scalers {
    /// Rebuilds the scalers, re-reading their credentials, when a (Cluster)TriggerAuthentication
    /// they read has changed, or (at most once per `polling`) after a trigger failed, as
    /// KEDA's `refreshScaler`: a rotated Secret is picked up without a spec change.
    async fn refresh(
        &mut self,
        ctx: &JobCtx,
        sj: &ScaledJob,
        running: &JobLoopState,
        failed: bool,
        polling: Duration,
    ) {
        let versions = ctx.auth_versions(sj);
        let source_changed = running.take_stale();
        let retry = failed && self.built_at.elapsed() >= polling;
        if versions == self.versions && !source_changed && !retry {
            return;
        }
        self.built_at = Instant::now();
        let key = ObjectRef::from(sj);
        match ctx.build_triggers(sj).await {
            Ok(built) => {
                tracing::info!(scaledjob = %key, "rebuilt scalers: a trigger failed or its credentials changed");
                running.rebuilt(built.sources);
                self.triggers = built.triggers;
                self.versions = versions;
            }
            Err(e) => tracing::warn!(scaledjob = %key, error = %e, "rebuilding scalers"),
        }
    }
}

/// What a job loop remembers between polls.
#[derive(Default)]
struct Memory {
    /// Jobs created but not yet in the watch cache, with when.
    unseen: HashMap<String, Instant>,
    /// The last error reported per trigger, so one failure is one event, not one per poll.
    last_errors: HashMap<usize, String>,
    /// A trigger failed on the last poll.
    failed: bool,
}

pub async fn run(
    ctx: Arc<JobCtx>,
    key: ObjectRef<ScaledJob>,
    mut scalers: Scalers,
    running: Arc<JobLoopState>,
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
    let mut mem = Memory::default();
    let labels = crate::metrics::LoopLabels {
        namespace: key.namespace.clone().unwrap_or_default(),
        type_: "scaledjob",
        resource: key.name.clone(),
    };
    let mut ticker = Ticker::new(polling, cancel, Vec::new());
    while ticker.tick().await.is_some() {
        let Some(sj) = ctx.store.get(&key) else { break };
        let started = Instant::now();
        scalers.refresh(&ctx, &sj, &running, false, polling).await;
        tick(&ctx, &sj, &scalers.triggers, &mut mem).await;
        let took = started.elapsed().as_secs_f64();
        ctx.base
            .metrics
            .loop_latency
            .get_or_create(&labels)
            .set(took);
        scalers
            .refresh(&ctx, &sj, &running, mem.failed, polling)
            .await;
    }
    tracing::debug!(scaledjob = %key, "job loop stopped");
}

/// The polled triggers' readings as loads, recording metrics and one event per new error.
async fn read_loads(
    ctx: &JobCtx,
    sj: &ScaledJob,
    triggers: &[TriggerRuntime],
    mem: &mut Memory,
) -> (Vec<TriggerLoad>, Polled) {
    let polled: Vec<(&TriggerRuntime, f64)> = triggers
        .iter()
        .filter(|t| t.scaler.polled())
        .filter_map(|t| match t.spec {
            MetricSpec::External { target, .. } => Some((t, target)),
            MetricSpec::Resource { .. } => None,
        })
        .collect();
    let readings = futures::future::join_all(polled.iter().map(|(t, _)| t.sample())).await;
    let mut loads = Vec::new();
    let mut p = Polled {
        polled: polled.len(),
        ..Default::default()
    };
    let mut notes = Vec::new();
    for ((t, target), r) in polled.iter().zip(readings) {
        let labels = labels(sj, t);
        let m = &ctx.base.metrics;
        match r {
            Ok(s) => {
                mem.last_errors.remove(&t.index);
                m.scaler_value.get_or_create(&labels).set(s.value);
                let active = if s.active { 1.0 } else { 0.0 };
                m.scaler_active.get_or_create(&labels).set(active);
                let activity = TriggerActivityStatus {
                    is_active: Some(s.active),
                };
                p.activity.insert(t.spec.name().to_string(), activity);
                loads.push(TriggerLoad {
                    queue_length: s.value,
                    target: *target,
                    active: s.active,
                });
            }
            Err(e) => {
                m.scaler_errors.get_or_create(&labels).inc();
                let job = crate::metrics::JobLabels {
                    namespace: labels.namespace.clone(),
                    scaled_job: labels.scaled_object.clone(),
                };
                m.job_errors.get_or_create(&job).inc();
                p.failed += 1;
                let msg = e.to_string();
                if mem.last_errors.get(&t.index) != Some(&msg) {
                    notes.push(Note::warning(events::KEDA_SCALER_FAILED, msg.clone()));
                    mem.last_errors.insert(t.index, msg);
                }
            }
        }
    }
    ctx.base.record(sj, notes).await;
    mem.failed = p.failed > 0;
    (loads, p)
}

fn labels(sj: &ScaledJob, t: &TriggerRuntime) -> ScalerLabels {
    ScalerLabels {
        namespace: plan::job_namespace(sj),
        metric: t.spec.name().to_string(),
        scaled_object: sj.name_any(),
        scaler: t.type_.clone(),
        trigger_index: t.index.to_string(),
        type_: "scaledjob".into(),
    }
}

/// Whether the ScaledJob, as the watch shows it now, still runs: a pause (or deletion)
/// that arrived while this tick read its triggers must not be followed by new Jobs. The
/// cache sees the annotation before the reconcile that stops this loop writes `Paused`.
fn still_running(ctx: &JobCtx, key: &ObjectRef<ScaledJob>) -> bool {
    ctx.store.get(key).is_some_and(|now| {
        now.metadata.deletion_timestamp.is_none()
            && matches!(super::plan::admit(&now), Ok(super::plan::Admission::Run))
    })
}

async fn tick(ctx: &JobCtx, sj: &ScaledJob, triggers: &[TriggerRuntime], mem: &mut Memory) {
    let key = ObjectRef::from(sj);
    let (loads, mut polled) = read_loads(ctx, sj, triggers, mem).await;
    let mine = ctx.jobs_of(sj);
    let seen = plan::names(&mine);
    mem.unseen
        .retain(|n, at| !seen.contains(n) && at.elapsed() < UNSEEN_GRACE);
    let pods = ctx.pods.state();
    let planned = plan::plan_poll(sj, &loads, &mine, &pods, mem.unseen.len());
    tracing::debug!(scaledjob = %key, ?planned, "job loop");

    let (created, failure) = if planned.create > 0 && still_running(ctx, &key) {
        apply::create_jobs(&ctx.base, sj, planned.create).await
    } else {
        (Vec::new(), None)
    };
    let count = i64::try_from(created.len()).unwrap_or(i64::MAX);
    mem.unseen
        .extend(created.into_iter().map(|n| (n, Instant::now())));
    ctx.base
        .record(sj, status::created_notes(count, failure.as_deref()))
        .await;

    polled.active = planned.load.active;
    let now = Time(jiff::Timestamp::now());
    let was_active = sj
        .condition(conditions::ACTIVE)
        .and_then(|c| match c.status {
            ConditionStatus::True => Some(true),
            ConditionStatus::False => Some(false),
            _ => None,
        });
    let written = ctx
        .status(&key, |s| status::after_poll(s, &polled, &now))
        .await;
    if let Err(e) = written {
        tracing::debug!(scaledjob = %key, error = %e, "job loop status");
    }
    ctx.base
        .record(sj, status::activity_note(was_active, polled.active))
        .await;
    apply::delete_history(&ctx.base, sj, plan::past_history_limit(sj, &mine)).await;
}
