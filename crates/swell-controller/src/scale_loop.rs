//! One scale loop per ScaledObject: every pollingInterval, read every trigger, decide with
//! `swell_scaling::decide`, act on `/scale`, and record status and events.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::join_all;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use swell_api::conditions::{self, active as act, fallback as fb, ready};
use swell_api::status::set_condition;
use swell_api::{
    Condition, ConditionStatus, HealthStatus, HealthStatusType, ScaledObject,
    TriggerActivityStatus, events,
};
use swell_scalers::{MetricSpec, Sample, Scaler};
use swell_scaling::{Decision, Health, HealthState, LoopFacts, Replicas, decide};
use tokio_util::sync::CancellationToken;

use crate::context::Ctx;
use crate::metrics::{ObjectLabels, ScalerLabels};
use crate::target::Target;

/// A trigger with its built scaler.
pub struct TriggerRuntime {
    pub index: usize,
    pub type_: String,
    pub spec: MetricSpec,
    pub scaler: Box<dyn Scaler>,
    pub use_cached_metrics: bool,
}

/// What a loop knows; the metrics API reads the same state.
pub struct LoopState {
    pub target: Target,
    pub triggers: Vec<TriggerRuntime>,
    /// The (Cluster)TriggerAuthentications the triggers read (status `authenticationsTypes`).
    pub auth_names: Vec<String>,
    /// Their generations when the scalers were built (one per trigger, `None` without an
    /// authenticationRef): a changed one means the scalers are rebuilt.
    pub auth_versions: Vec<Option<i64>>,
    /// When the scalers were built: a failing loop asks for new ones at most once per
    /// polling interval.
    pub built_at: Instant,
    /// A trigger failed: the next reconcile rebuilds the scalers, re-reading credentials
    /// (KEDA's `refreshScaler`), so a rotated Secret is picked up without a spec change.
    pub stale: AtomicBool,
    /// Built to replace stale scalers of the same generation.
    pub rebuilt: bool,
    /// The last reading of each metric, by metric name.
    pub last: Mutex<HashMap<String, Result<Sample, String>>>,
    /// Live reads for the metrics API; concurrent identical requests share one.
    pub live: swell_scalers::coalesce::Coalescer<String, Result<Sample, String>>,
}

impl LoopState {
    pub fn new(
        target: Target,
        triggers: Vec<TriggerRuntime>,
        auth_names: Vec<String>,
        auth_versions: Vec<Option<i64>>,
    ) -> Self {
        LoopState {
            target,
            triggers,
            auth_names,
            auth_versions,
            built_at: Instant::now(),
            stale: AtomicBool::new(false),
            rebuilt: false,
            last: Default::default(),
            live: Default::default(),
        }
    }

    /// Whether these scalers still stand for the ScaledObject's inputs: not failed since
    /// they were built, and built from the (Cluster)TriggerAuthentications it names now.
    pub fn current(&self, auth_versions: &[Option<i64>]) -> bool {
        !self.stale.load(Ordering::Relaxed) && self.auth_versions == auth_versions
    }

    /// After a failed reading: whether to ask for a rebuild now (once per `polling`).
    fn rebuild_due(&self, polling: Duration) -> bool {
        self.built_at.elapsed() >= polling && !self.stale.swap(true, Ordering::Relaxed)
    }

    pub fn specs(&self) -> Vec<MetricSpec> {
        self.triggers.iter().map(|t| t.spec.clone()).collect()
    }

    pub fn metric_names(&self) -> Vec<String> {
        self.triggers
            .iter()
            .map(|t| t.spec.name().to_string())
            .collect()
    }
}

pub fn spawn(
    ctx: Arc<Ctx>,
    key: ObjectRef<ScaledObject>,
    state: Arc<LoopState>,
    polling: Duration,
    cancel: CancellationToken,
) {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(polling);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Push triggers (external-push) wake the loop when their source says it is active.
        let wakes: Vec<_> = state
            .triggers
            .iter()
            .filter_map(|t| t.scaler.start_push())
            .collect();
        loop {
            let woken = async {
                if wakes.is_empty() {
                    std::future::pending::<()>().await;
                }
                futures::future::select_all(wakes.iter().map(|w| Box::pin(w.notified()))).await;
            };
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = interval.tick() => {}
                _ = woken => {
                    tracing::debug!(scaledobject = %key, "woken by a push trigger");
                    interval.reset();
                }
            }
            let Some(so) = ctx.store.get(&key) else { break };
            let started = Instant::now();
            tick(&ctx, &key, &so, &state).await;
            ctx.metrics
                .loop_latency
                .get_or_create(&ObjectLabels {
                    namespace: key.namespace.clone().unwrap_or_default(),
                    scaled_object: key.name.clone(),
                })
                .set(started.elapsed().as_secs_f64());
        }
        tracing::debug!(scaledobject = %key, "scale loop stopped");
    });
}

struct Reading<'a> {
    trigger: &'a TriggerRuntime,
    result: Result<Sample, String>,
}

async fn read_all(
    ctx: &Ctx,
    so: &ScaledObject,
    state: &LoopState,
) -> Vec<(String, Result<Sample, String>)> {
    let ns = so.metadata.namespace.clone().unwrap_or_default();
    let name = so.metadata.name.clone().unwrap_or_default();
    let readings = join_all(state.triggers.iter().filter(|t| t.scaler.polled()).map(
        |t| async move {
            let started = Instant::now();
            let result = t.scaler.sample().await.map_err(|e| e.to_string());
            (Reading { trigger: t, result }, started.elapsed())
        },
    ))
    .await;
    let mut out = Vec::new();
    for (r, took) in readings {
        let metric = r.trigger.spec.name().to_string();
        let labels = ScalerLabels {
            namespace: ns.clone(),
            metric: metric.clone(),
            scaled_object: name.clone(),
            scaler: r.trigger.type_.clone(),
            trigger_index: r.trigger.index.to_string(),
            type_: "scaledobject".into(),
        };
        ctx.metrics
            .scaler_latency
            .get_or_create(&labels)
            .set(took.as_secs_f64());
        match &r.result {
            Ok(s) => {
                ctx.metrics.scaler_value.get_or_create(&labels).set(s.value);
                ctx.metrics
                    .scaler_active
                    .get_or_create(&labels)
                    .set(if s.active { 1.0 } else { 0.0 });
            }
            Err(_) => {
                ctx.metrics.scaler_errors.get_or_create(&labels).inc();
            }
        }
        out.push((metric, r.result));
    }
    out
}

fn health_of(status: Option<&HealthStatus>) -> Health {
    match status {
        Some(h) => Health {
            failures: h.number_of_failures.unwrap_or(0),
            state: if h.status == Some(HealthStatusType::Failing) {
                HealthState::Failing
            } else {
                HealthState::Happy
            },
        },
        None => Health::default(),
    }
}

fn health_status(h: Health) -> HealthStatus {
    HealthStatus {
        number_of_failures: Some(h.failures),
        status: Some(if h.state == HealthState::Failing {
            HealthStatusType::Failing
        } else {
            HealthStatusType::Happy
        }),
    }
}

fn condition(type_: &str, status: ConditionStatus, reason: &str, message: &str) -> Condition {
    Condition::new(type_, status, reason, message)
}

/// A ScaledObject's polling interval (at least a second).
pub fn polling_of(so: &ScaledObject) -> Duration {
    polling_duration(so.spec.polling_interval())
}

/// `pollingInterval` seconds as a duration: at least a second, 30 s when negative.
pub fn polling_duration(seconds: i32) -> Duration {
    Duration::from_secs(u64::try_from(seconds).unwrap_or(30).max(1))
}

async fn tick(ctx: &Ctx, key: &ObjectRef<ScaledObject>, so: &ScaledObject, state: &LoopState) {
    let readings = read_all(ctx, so, state).await;
    if readings.iter().any(|(_, r)| r.is_err()) && state.rebuild_due(polling_of(so)) {
        tracing::info!(scaledobject = %key, "a trigger failed: rebuilding its scalers with fresh credentials");
        ctx.request_reconcile(key.clone());
    }
    if let Ok(mut last) = state.last.lock() {
        for (m, r) in &readings {
            last.insert(m.clone(), r.clone());
        }
    }
    let status = so.status.clone().unwrap_or_default();
    let old_health = status.health.clone().unwrap_or_default();
    let fallback = so.spec.fallback.clone().filter(|f| f.replicas != 0);
    let mut health = BTreeMap::new();
    let mut activity = BTreeMap::new();
    let (mut active, mut error, mut in_fallback) = (false, false, false);
    let mut active_metrics = Vec::new();
    let mut errors = Vec::new();
    for (metric, r) in &readings {
        let prev = health_of(old_health.get(metric));
        let h = prev.after(r.is_ok());
        match r {
            Ok(s) => {
                if s.active {
                    active = true;
                    active_metrics.push(metric.clone());
                }
                activity.insert(
                    metric.clone(),
                    TriggerActivityStatus {
                        is_active: Some(s.active),
                    },
                );
            }
            Err(e) => {
                errors.push(format!("{metric}: {e}"));
                // KEDA (since 2.19) counts a trigger in fallback as active, so fallback can
                // scale a workload up from zero.
                if fallback
                    .as_ref()
                    .is_some_and(|f| h.in_fallback(f.failure_threshold))
                {
                    in_fallback = true;
                    active = true;
                } else {
                    error = true;
                }
            }
        }
        health.insert(metric.clone(), health_status(h));
    }
    if !state.triggers.is_empty() && state.triggers.iter().all(|t| !t.scaler.polled()) {
        active = true;
    }
    for e in &errors {
        ctx.event(
            so,
            EventType::Warning,
            events::KEDA_SCALER_FAILED,
            e.clone(),
        )
        .await;
    }
    if !errors.is_empty() {
        ctx.metrics
            .object_errors
            .get_or_create(&ObjectLabels {
                namespace: key.namespace.clone().unwrap_or_default(),
                scaled_object: key.name.clone(),
            })
            .inc();
    }

    let now = Timestamp::now();
    let current = match state.target.replicas(&ctx.client).await {
        Ok(n) => n,
        Err(e) => {
            let msg = e.to_string();
            let _ = ctx
                .update_status(key, |s| {
                    let conds = s
                        .conditions
                        .get_or_insert_with(swell_api::status::initial_conditions);
                    set_condition(
                        conds,
                        condition(
                            conditions::READY,
                            ConditionStatus::False,
                            ready::ERROR_GETTING_CURRENT_REPLICAS,
                            &msg,
                        ),
                    );
                })
                .await;
            return;
        }
    };
    let spec = &so.spec;
    let facts = LoopFacts {
        current,
        replicas: Replicas {
            min: spec.min_replica_count(),
            max: spec.max_replica_count(),
            idle: spec.idle_replica_count,
        },
        active,
        error,
        fallback_configured: fallback.is_some(),
        last_active: status.last_active_time.as_ref().map(|t| t.0),
        created: so
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0)
            .unwrap_or(now),
        cooldown: SignedDuration::from_secs(i64::from(spec.cooldown_period())),
        initial_cooldown: SignedDuration::from_secs(i64::from(spec.initial_cooldown_period())),
        now,
    };
    let decision = decide(&facts);
    let kind = state.target.kind_string();
    let target_name = format!("{}/{}", state.target.namespace, state.target.name);
    match decision {
        Decision::Activate { to } | Decision::RaiseToMin { to } => {
            match state.target.scale(&ctx.client, to).await {
                Ok(()) => {
                    let by = if active_metrics.is_empty() {
                        String::new()
                    } else {
                        format!(", triggered by {}", active_metrics.join(","))
                    };
                    ctx.event(
                        so,
                        EventType::Normal,
                        events::KEDA_SCALE_TARGET_ACTIVATED,
                        format!("Scaled {kind} {target_name} from {current} to {to}{by}"),
                    )
                    .await;
                }
                Err(e) => {
                    ctx.event(
                        so,
                        EventType::Warning,
                        events::KEDA_SCALE_TARGET_ACTIVATION_FAILED,
                        format!("Failed to scale {kind} {target_name} from {current} to {to}: {e}"),
                    )
                    .await;
                }
            }
        }
        Decision::Deactivate { to } => match state.target.scale(&ctx.client, to).await {
            Ok(()) => {
                ctx.event(
                    so,
                    EventType::Normal,
                    events::KEDA_SCALE_TARGET_DEACTIVATED,
                    format!("Deactivated {kind} {target_name} from {current} to {to}"),
                )
                .await;
            }
            Err(e) => {
                ctx.event(
                    so,
                    EventType::Warning,
                    events::KEDA_SCALE_TARGET_DEACTIVATION_FAILED,
                    format!("Failed to deactivate {kind} {target_name}: {e}"),
                )
                .await;
            }
        },
        Decision::KeepActive | Decision::CoolingDown | Decision::HoldOnError | Decision::Idle => {}
    }

    let was_fallback = so
        .condition(conditions::FALLBACK)
        .is_some_and(Condition::is_true);
    if in_fallback != was_fallback {
        let reason = if in_fallback {
            events::SCALED_OBJECT_FALLBACK_ACTIVATED
        } else {
            events::SCALED_OBJECT_FALLBACK_DEACTIVATED
        };
        let note = if in_fallback {
            "At least one trigger is falling back on this scaled object"
        } else {
            "No fallbacks are active on this scaled object"
        };
        ctx.event(
            so,
            if in_fallback {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason,
            note.into(),
        )
        .await;
    }
    let all_failed = !readings.is_empty() && readings.iter().all(|(_, r)| r.is_err());
    let error_message = errors.join("; ");
    let res = ctx
        .update_status(key, |s| {
            let conds = s
                .conditions
                .get_or_insert_with(swell_api::status::initial_conditions);
            let active_cond = if active {
                condition(
                    conditions::ACTIVE,
                    ConditionStatus::True,
                    act::SCALER_ACTIVE,
                    act::SCALER_ACTIVE_MESSAGE,
                )
            } else if decision == Decision::CoolingDown {
                condition(
                    conditions::ACTIVE,
                    ConditionStatus::False,
                    act::SCALER_COOLDOWN,
                    act::SCALER_COOLDOWN_MESSAGE,
                )
            } else {
                condition(
                    conditions::ACTIVE,
                    ConditionStatus::False,
                    act::SCALER_NOT_ACTIVE,
                    act::SCALER_NOT_ACTIVE_MESSAGE,
                )
            };
            set_condition(conds, active_cond);
            set_condition(
                conds,
                if in_fallback {
                    condition(
                        conditions::FALLBACK,
                        ConditionStatus::True,
                        fb::FALLBACK_EXISTS,
                        fb::FALLBACK_EXISTS_MESSAGE,
                    )
                } else {
                    condition(
                        conditions::FALLBACK,
                        ConditionStatus::False,
                        fb::NO_FALLBACK_FOUND,
                        fb::NO_FALLBACK_FOUND_MESSAGE,
                    )
                },
            );
            // The loop owns only the trigger-error states of Ready; the reconciler marks it
            // ready once the HPA and status are in place.
            let loop_owned =
                swell_api::status::find_condition(Some(conds.as_slice()), conditions::READY)
                    .and_then(|c| c.reason.as_deref())
                    .is_some_and(|r| {
                        r == ready::TRIGGER_ERROR || r == ready::PARTIAL_TRIGGER_ERROR
                    });
            let ready = if error && all_failed {
                Some(condition(
                    conditions::READY,
                    ConditionStatus::False,
                    ready::TRIGGER_ERROR,
                    &error_message,
                ))
            } else if error {
                Some(condition(
                    conditions::READY,
                    ConditionStatus::Unknown,
                    ready::PARTIAL_TRIGGER_ERROR,
                    &error_message,
                ))
            } else if loop_owned {
                Some(condition(
                    conditions::READY,
                    ConditionStatus::True,
                    ready::SCALED_OBJECT_READY,
                    ready::SCALED_OBJECT_READY_MESSAGE,
                ))
            } else {
                None
            };
            if let Some(ready) = ready {
                set_condition(conds, ready);
            }
            if active {
                s.last_active_time = Some(Time(now));
            }
            s.health = if health.is_empty() {
                None
            } else {
                Some(health.clone())
            };
            s.triggers_activity = if activity.is_empty() {
                None
            } else {
                Some(activity.clone())
            };
        })
        .await;
    if let Err(e) = res {
        tracing::warn!(scaledobject = %key, error = %e, "status update");
    }
}
