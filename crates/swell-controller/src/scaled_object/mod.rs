//! The ScaledObject controller, as a pipeline: [`plan::admit`] (validate, pause) →
//! [`resolve`] (target, authentication, scalers) → [`plan::plan`] (HPA and status, pure) →
//! [`apply`] (HPA, loop) → [`status`] (conditions and events, pure). Errors land in status
//! and events, never in a panic, and never touch other ScaledObjects.

pub mod apply;
pub mod plan;
pub mod resolve;
pub mod scale_loop;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use kube::ResourceExt as _;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::ObjectRef;
use swell_api::{ScaledObject, events};

use crate::context::{Ctx, Note, StatusError};
use crate::metrics::ObjectLabels;
use plan::{Admission, CheckFailed};

pub const FINALIZER: &str = "finalizer.keda.sh";
const CONTROLLER: &str = "scaled_object";

/// Why a reconcile failed (it is retried); check failures are not errors but status.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("{}", crate::kube_message(.0))]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Status(#[from] StatusError),
    #[error("the reconcile took longer than {0:?} (an API call got no answer); retrying")]
    Deadline(Duration),
}

impl Error {
    pub fn category(&self) -> &'static str {
        match self {
            Error::Finalizer(_) => "finalizer",
            Error::Kube(_) => "kube",
            Error::Status(e) => e.category(),
            Error::Deadline(_) => "deadline",
        }
    }
}

type Stop = crate::context::Stop<CheckFailed, Error>;

impl From<CheckFailed> for Stop {
    fn from(e: CheckFailed) -> Self {
        Stop::Check(e)
    }
}

impl From<crate::triggers::BuildError> for Stop {
    fn from(e: crate::triggers::BuildError) -> Self {
        Stop::Check(e.into())
    }
}

impl From<crate::target::TargetError> for Stop {
    fn from(e: crate::target::TargetError) -> Self {
        Stop::Check(e.into())
    }
}

impl From<StatusError> for Stop {
    fn from(e: StatusError) -> Self {
        Stop::Error(e.into())
    }
}

impl From<kube::Error> for Stop {
    fn from(e: kube::Error) -> Self {
        Stop::Error(e.into())
    }
}

pub async fn reconcile(so: Arc<ScaledObject>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    tracing::debug!(scaledobject = %ObjectRef::from(so.as_ref()), leader = ctx.leader, "reconcile");
    crate::context::within_deadline(reconcile_once(so, ctx))
        .await
        .unwrap_or(Err(Error::Deadline(crate::context::RECONCILE_DEADLINE)))
}

async fn reconcile_once(so: Arc<ScaledObject>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if !ctx.leader {
        return Ok(observe(&so, &ctx).await);
    }
    let api: Api<ScaledObject> =
        Api::namespaced(ctx.client.clone(), &so.namespace().unwrap_or_default());
    finalizer(&api, FINALIZER, so, |event| async {
        match event {
            FinalizerEvent::Apply(so) => run(so, ctx.clone()).await,
            FinalizerEvent::Cleanup(so) => cleanup(so, ctx.clone()).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

pub fn error_policy(so: Arc<ScaledObject>, err: &Error, ctx: Arc<Ctx>) -> Action {
    tracing::warn!(scaledobject = %ObjectRef::from(so.as_ref()), error = %err, category = err.category(), "reconcile failed");
    ctx.metrics.reconcile_error(CONTROLLER, err.category());
    match err {
        Error::Deadline(_) => Action::requeue(Duration::from_secs(1)),
        _ => Action::requeue(Duration::from_secs(10)),
    }
}

fn labels(so: &ScaledObject) -> ObjectLabels {
    ObjectLabels {
        namespace: so.namespace().unwrap_or_default(),
        scaled_object: so.name_any(),
    }
}

/// A follower keeps scalers for the metrics API and changes nothing in the cluster.
async fn observe(so: &ScaledObject, ctx: &Ctx) -> Action {
    let key = ObjectRef::from(so);
    let runs =
        so.metadata.deletion_timestamp.is_none() && matches!(plan::admit(so), Ok(Admission::Run));
    if !runs {
        ctx.stop_loop(&key);
        return Action::await_change();
    }
    match resolve::state_for(ctx, so, &key).await {
        Ok(_) => Action::requeue(Duration::from_secs(300)),
        Err(e) => {
            // The leader reports it in status; a follower only says why it cannot serve.
            tracing::warn!(scaledobject = %key, error = %e, "follower: cannot build the scalers to serve the metrics API");
            ctx.stop_loop(&key);
            Action::requeue(Duration::from_secs(30))
        }
    }
}

async fn run(so: Arc<ScaledObject>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let admission = plan::admit(&so);
    let paused = matches!(admission, Ok(Admission::Pause { .. }));
    ctx.metrics
        .object_paused
        .get_or_create(&labels(&so))
        .set(i64::from(paused));
    let outcome = match admission {
        Ok(Admission::Run) => scale(&so, &ctx).await,
        Ok(Admission::Pause { replicas }) => pause(&so, &ctx, replicas).await,
        Err(e) => Err(Stop::Check(e)),
    };
    match outcome {
        Ok(action) => Ok(action),
        Err(Stop::Error(e)) => {
            if let Error::Status(StatusError::Api(..)) = &e {
                // As KEDA: a status write the API server refused is a Warning event.
                let note = Note::warning(events::SCALED_OBJECT_UPDATE_FAILED, e.to_string());
                ctx.record(so.as_ref(), [note]).await;
            }
            Err(e)
        }
        Err(Stop::Check(failed)) => check_failed(&ctx, &so, failed).await,
    }
}

/// resolve → plan → apply HPA → status → start the loop.
async fn scale(so: &ScaledObject, ctx: &Arc<Ctx>) -> Result<Action, Stop> {
    let key = ObjectRef::from(so);
    apply::ensure_name_label(ctx, so).await?;
    let state = resolve::state_for(ctx, so, &key).await?;
    let current = resolve::replicas_to_remember(ctx, so, &state).await;
    let plan = plan::plan(so, &state, current, ctx.exact_targets);
    apply::apply_hpa(ctx, so, &plan.hpa).await?;
    let before = so.status.clone().unwrap_or_default();
    ctx.update_status(&key, |s| status::applied(s, &plan.applied))
        .await?;
    // Only now: the loop's first poll may scale at once, and whoever sees that must also
    // see the status it follows from (originalReplicaCount, metric names, Ready).
    let notices = state.take_notices();
    apply::start_loop(ctx, so, state).await;
    let mut notes = status::applied_notes(&before, plan.applied.direction_paused);
    notes.extend(notices.into_iter().map(status::scaler_info));
    ctx.record(so, notes).await;
    ctx.authentication_users_changed(so);
    Ok(Action::requeue(Duration::from_secs(300)))
}

/// Paused: no loop, no HPA, the target held at `replicas` when given.
async fn pause(so: &ScaledObject, ctx: &Ctx, replicas: Option<i32>) -> Result<Action, Stop> {
    let key = ObjectRef::from(so);
    ctx.stop_loop(&key);
    apply::delete_hpa(ctx, so).await?;
    let kind = match replicas {
        Some(n) => Some(apply::scale_target(ctx, so, n).await?),
        None => None,
    };
    let was_paused = so
        .condition(swell_api::conditions::PAUSED)
        .is_some_and(swell_api::Condition::is_true);
    ctx.update_status(&key, |s| status::paused(s, replicas, kind.clone()))
        .await?;
    if !was_paused {
        ctx.record(so, [status::paused_note()]).await;
    }
    Ok(Action::await_change())
}

/// Marks the ScaledObject not ready with a message that names the problem.
async fn check_failed(ctx: &Ctx, so: &ScaledObject, failed: CheckFailed) -> Result<Action, Error> {
    let key = ObjectRef::from(so);
    let message = failed.to_string();
    ctx.metrics.reconcile_error(CONTROLLER, failed.category());
    let mut notes = Vec::new();
    if failed.scaler_failed() {
        notes.push(Note::warning(events::KEDA_SCALER_FAILED, message.clone()));
    }
    if ctx.stop_loop(&key) {
        notes.push(Note::normal(
            events::KEDA_SCALERS_STOPPED,
            "Stopped scalers watch",
        ));
    }
    // Recorded before the status write, which may fail and be retried.
    ctx.record(so, notes).await;
    let changed = ctx
        .update_status(&key, |s| status::check_failed(s, &message))
        .await?;
    if changed {
        let note = Note::warning(events::SCALED_OBJECT_CHECK_FAILED, message);
        ctx.record(so, [note]).await;
    }
    ctx.metrics.object_errors.get_or_create(&labels(so)).inc();
    // A spec change wakes us; otherwise retry slowly for things outside the spec
    // (a TriggerAuthentication or target created later).
    Ok(Action::requeue(Duration::from_secs(30)))
}

async fn cleanup(so: Arc<ScaledObject>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let key = ObjectRef::from(so.as_ref());
    // Stopped first, so its last pass cannot record a series again.
    let state = ctx.loops.get(&key);
    ctx.stop_loop(&key);
    if let Some(state) = state {
        scale_loop::forget_series(&ctx, &so, &state);
    }
    let original = so.status.as_ref().and_then(|s| s.original_replica_count);
    if let (true, Some(n)) = (so.spec.restore_to_original_replica_count(), original)
        && let Err(e) = apply::scale_target(&ctx, &so, n).await
    {
        tracing::warn!(scaledobject = %key, error = %e, "restoring original replica count");
    }
    apply::delete_hpa(&ctx, &so).await?;
    let note = Note::warning(events::SCALED_OBJECT_DELETED, "ScaledObject was deleted");
    ctx.record(so.as_ref(), [note]).await;
    ctx.authentication_users_changed(so.as_ref());
    Ok(Action::await_change())
}
