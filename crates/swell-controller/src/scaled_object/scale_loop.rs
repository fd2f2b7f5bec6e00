//! One scale loop per ScaledObject: every pollingInterval, read every trigger (I/O), judge
//! the readings ([`plan::assess`]) and decide ([`swell_scaling::decide`]) purely, act on
//! `/scale`, and write the status and events [`status`] decides.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use jiff::Timestamp;
use kube::runtime::reflector::ObjectRef;
use swell_api::{Condition, ScaledObject, conditions, events};
use swell_scaling::{Decision, decide};
use tokio_util::sync::CancellationToken;

use crate::composite::COMPOSITE_METRIC_NAME;
use crate::context::{Ctx, Note};
use crate::loop_state::{LoopState, Reading};
use crate::loops::{Cause, Ticker};
use crate::metrics::{LoopLabels, ObjectLabels, ScalerLabels};
use crate::scaled_object::plan::{self, Assessment};
use crate::scaled_object::status::{self, Scaled};
use crate::triggers::TriggerRuntime;

pub fn spawn(
    ctx: Arc<Ctx>,
    key: ObjectRef<ScaledObject>,
    state: Arc<LoopState>,
    polling: Duration,
    cancel: CancellationToken,
) {
    tokio::spawn(async move {
        // Push triggers (external-push) wake the loop when their source says it is active.
        let wakes: Vec<_> = state
            .triggers
            .iter()
            .filter_map(|t| t.scaler.start_push())
            .collect();
        let labels = LoopLabels {
            namespace: key.namespace.clone().unwrap_or_default(),
            type_: "scaledobject",
            resource: key.name.clone(),
        };
        let mut ticker = Ticker::new(polling, cancel.clone(), wakes);
        while let Some(cause) = ticker.tick().await {
            if cause == Cause::Push {
                tracing::debug!(scaledobject = %key, "woken by a push trigger");
            }
            let Some(so) = ctx.store.get(&key) else { break };
            let started = Instant::now();
            tick(&ctx, &key, &so, &state, &cancel).await;
            if cancel.is_cancelled() {
                break; // stopped mid-pass: a deleted object's series stay gone
            }
            let took = started.elapsed().as_secs_f64();
            ctx.metrics.loop_latency.get_or_create(&labels).set(took);
        }
        tracing::debug!(scaledobject = %key, "scale loop stopped");
    });
}

/// Reads every polled trigger at once, recording each one's value, latency and errors
/// (unless the loop was stopped meanwhile).
async fn read_all(
    ctx: &Ctx,
    so: &ScaledObject,
    state: &LoopState,
    cancel: &CancellationToken,
) -> Vec<(String, Reading)> {
    let polled = state.triggers.iter().filter(|t| t.scaler.polled());
    let readings = join_all(polled.map(|t| async move {
        let started = Instant::now();
        let result = t.sample().await.map_err(Arc::new);
        (t, result, started.elapsed())
    }))
    .await;
    readings
        .into_iter()
        .map(|(t, result, took)| {
            if !cancel.is_cancelled() {
                record_reading(ctx, so, t, &result, took);
            }
            (t.spec.name().to_string(), result)
        })
        .collect()
}

/// The labels of one scaler metric of a ScaledObject, as KEDA's collector names them.
fn scaler_labels(so: &ScaledObject, metric: &str, scaler: &str, index: usize) -> ScalerLabels {
    ScalerLabels {
        namespace: so.metadata.namespace.clone().unwrap_or_default(),
        metric: metric.to_owned(),
        scaled_object: so.metadata.name.clone().unwrap_or_default(),
        scaler: scaler.to_owned(),
        trigger_index: index.to_string(),
        type_: "scaledobject".into(),
    }
}

/// Drops a deleted ScaledObject's series from /metrics, as KEDA's collector deletes them,
/// so dashboards and alerts stop showing it: one per trigger its loop ran (and the
/// composite), and the object's own.
pub fn forget_series(ctx: &Ctx, so: &ScaledObject, state: &LoopState) {
    let m = &ctx.metrics;
    let mut scalers: Vec<ScalerLabels> = state
        .triggers
        .iter()
        .map(|t| scaler_labels(so, t.spec.name(), &t.type_, t.index))
        .collect();
    if state.composite.is_some() {
        scalers.push(scaler_labels(
            so,
            COMPOSITE_METRIC_NAME,
            COMPOSITE_METRIC_NAME,
            0,
        ));
    }
    for l in &scalers {
        m.scaler_value.remove(l);
        m.scaler_latency.remove(l);
        m.scaler_active.remove(l);
        m.scaler_errors.remove(l);
    }
    let object = ObjectLabels {
        namespace: so.metadata.namespace.clone().unwrap_or_default(),
        scaled_object: so.metadata.name.clone().unwrap_or_default(),
    };
    m.object_errors.remove(&object);
    m.object_paused.remove(&object);
    m.loop_latency.remove(&LoopLabels {
        namespace: object.namespace.clone(),
        type_: "scaledobject",
        resource: object.scaled_object.clone(),
    });
}

fn record_reading(
    ctx: &Ctx,
    so: &ScaledObject,
    t: &TriggerRuntime,
    result: &Reading,
    took: Duration,
) {
    let m = &ctx.metrics;
    let labels = scaler_labels(so, t.spec.name(), &t.type_, t.index);
    m.scaler_latency
        .get_or_create(&labels)
        .set(took.as_secs_f64());
    match result {
        Ok(s) => {
            m.scaler_value.get_or_create(&labels).set(s.value);
            let active = if s.active { 1.0 } else { 0.0 };
            m.scaler_active.get_or_create(&labels).set(active);
        }
        Err(_) => {
            m.scaler_errors.get_or_create(&labels).inc();
        }
    }
}

/// The composite's value and activity, as KEDA records them: under the scaler and metric
/// name `composite-metric`, trigger index 0.
fn record_composite(ctx: &Ctx, so: &ScaledObject, value: f64, active: bool) {
    let labels = scaler_labels(so, COMPOSITE_METRIC_NAME, COMPOSITE_METRIC_NAME, 0);
    let m = &ctx.metrics;
    m.scaler_value.get_or_create(&labels).set(value);
    let active = if active { 1.0 } else { 0.0 };
    m.scaler_active.get_or_create(&labels).set(active);
}

async fn tick(
    ctx: &Ctx,
    key: &ObjectRef<ScaledObject>,
    so: &ScaledObject,
    state: &LoopState,
    cancel: &CancellationToken,
) {
    let readings = read_all(ctx, so, state, cancel).await;
    state.remember(&readings);
    let polling = crate::loops::polling_duration(so.spec.polling_interval());
    // Fresh credentials do not help a throttled source: its backoff is Swell's own.
    let rebuild_helps = |r: &Reading| match r {
        Err(e) => e.category() != "throttled",
        Ok(_) => false,
    };
    if readings.iter().any(|(_, r)| rebuild_helps(r)) && state.rebuild_due(polling) {
        tracing::info!(scaledobject = %key, "a trigger failed: rebuilding its scalers with fresh credentials");
        ctx.request_reconcile(key.clone());
    }
    let unpolled_only =
        !state.triggers.is_empty() && state.triggers.iter().all(|t| !t.scaler.polled());
    let old_health = so.status.as_ref().and_then(|s| s.health.as_ref());
    let a = plan::assess(
        &readings,
        old_health,
        plan::fallback_threshold(so),
        unpolled_only,
    );
    let current = state.target.replicas(&ctx.client).await;
    let a = match (&state.composite, &current) {
        (Some(c), Ok(n)) => plan::with_composite(a, so, c, &readings, *n),
        _ => a,
    }
    .forced_by(so.metadata.annotations.as_ref());
    report_errors(ctx, key, so, &a, state.composite.is_some()).await;
    if let Some(v) = a.composite {
        record_composite(ctx, so, v, a.active);
    }

    let current = match current {
        Ok(n) => n,
        Err(e) => {
            state.set_poll(plan::poll_report(so, &a, None, None, Timestamp::now()));
            let msg = e.to_string();
            let _ = ctx
                .update_status(key, |s| status::replicas_unknown(s, &msg))
                .await;
            return;
        }
    };
    let now = Timestamp::now();
    let decision = decide(&plan::loop_facts(so, current, &a, now));
    state.set_poll(plan::poll_report(
        so,
        &a,
        Some(current),
        Some(decision),
        now,
    ));
    if let Some(note) = act(ctx, state, decision, current, &a).await {
        ctx.record(so, [note]).await;
    }
    let was_in_fallback = so
        .condition(conditions::FALLBACK)
        .is_some_and(Condition::is_true);
    ctx.record(so, status::fallback_note(was_in_fallback, &a))
        .await;
    state.set_verdict(a.verdict());
    // A loop being stopped (a check failed, the object paused) leaves status to the
    // reconciler that stopped it.
    if cancel.is_cancelled() {
        return;
    }
    let hpa_key = ObjectRef::new(&so.hpa_name()).within(&state.target.namespace);
    let hpa_active = status::hpa_active(ctx.hpas.get(&hpa_key).as_deref());
    if let Err(e) = ctx
        .update_status(key, |s| {
            status::after_poll(s, &a, decision, now);
            status::set_hpa_active(s, hpa_active.clone());
        })
        .await
    {
        tracing::warn!(scaledobject = %key, error = %e, "status update");
    }
}

/// One `KEDAScalerFailed` event per failed trigger and poll, as KEDA records them;
/// `KEDAMetricSourceFailed` when the trigger is a source of a scalingModifiers formula.
async fn report_errors(
    ctx: &Ctx,
    key: &ObjectRef<ScaledObject>,
    so: &ScaledObject,
    a: &Assessment,
    composite: bool,
) {
    if a.errors.is_empty() {
        return;
    }
    let reason = if composite {
        events::KEDA_METRIC_SOURCE_FAILED
    } else {
        events::KEDA_SCALER_FAILED
    };
    let notes: Vec<Note> = a
        .errors
        .iter()
        .map(|e| Note::warning(reason, e.clone()))
        .collect();
    ctx.record(so, notes).await;
    let labels = ObjectLabels {
        namespace: key.namespace.clone().unwrap_or_default(),
        scaled_object: key.name.clone(),
    };
    ctx.metrics.object_errors.get_or_create(&labels).inc();
}

/// Carries out a scale decision on `/scale`; the event it calls for.
async fn act(
    ctx: &Ctx,
    state: &LoopState,
    decision: Decision,
    current: i32,
    a: &Assessment,
) -> Option<Note> {
    let (up, to) = match decision {
        Decision::Activate { to } | Decision::RaiseToMin { to } => (true, to),
        Decision::Deactivate { to } => (false, to),
        Decision::KeepActive
        | Decision::CoolingDown
        | Decision::HoldOnError
        | Decision::ScaleOutPaused
        | Decision::ScaleInPaused
        | Decision::Idle => {
            return None;
        }
    };
    let error = state
        .target
        .scale(&ctx.client, to)
        .await
        .err()
        .map(|e| e.to_string());
    let t = &state.target;
    let scaled = Scaled {
        kind: &t.kind_string(),
        target: &format!("{}/{}", t.namespace, t.name),
        from: current,
        to,
        by: &a.active_metrics,
        forced: a.forced,
        error,
    };
    Some(status::scale_note(up, &scaled))
}
