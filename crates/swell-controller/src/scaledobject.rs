//! The ScaledObject reconciler: validate → pause → resolve target and triggers → apply the
//! HPA → (re)start the scale loop → status. Errors land in status and events, never in a
//! panic, and never touch other ScaledObjects.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt as _};
use swell_api::annotations::{self};
use swell_api::conditions::{self, paused as pz, ready};
use swell_api::status::set_condition;
use swell_api::{Condition, ConditionStatus, ScaledObject, events};
use swell_scalers::MetricSpec;

use crate::context::{Ctx, LoopHandle};
use crate::hpa;
use crate::metrics::ObjectLabels;
use crate::scale_loop::{self, LoopState, TriggerRuntime};
use crate::target::Target;
use crate::triggers::BuildError;

pub const FINALIZER: &str = "finalizer.keda.sh";
const FIELD_MANAGER: &str = "swell-operator";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("{}", crate::kube_message(.0))]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Status(#[from] crate::context::StatusError),
}

pub async fn reconcile(so: Arc<ScaledObject>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if !ctx.leader {
        return Ok(observe(&so, &ctx).await);
    }
    let ns = so.namespace().unwrap_or_default();
    let api: Api<ScaledObject> = Api::namespaced(ctx.client.clone(), &ns);
    finalizer(&api, FINALIZER, so, |event| async {
        match event {
            FinalizerEvent::Apply(so) => apply(so, ctx.clone()).await,
            FinalizerEvent::Cleanup(so) => cleanup(so, ctx.clone()).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

pub fn error_policy(so: Arc<ScaledObject>, err: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(scaledobject = %ObjectRef::from(so.as_ref()), error = %err, "reconcile failed");
    Action::requeue(Duration::from_secs(10))
}

fn cond(type_: &str, status: ConditionStatus, reason: &str, message: &str) -> Condition {
    Condition::new(type_, status, reason, message)
}

/// Marks the ScaledObject not ready with a message that names the problem.
async fn check_failed(ctx: &Ctx, so: &ScaledObject, message: String) -> Result<Action, Error> {
    let key = ObjectRef::from(so);
    if ctx.stop_loop(&key) {
        ctx.event(
            so,
            EventType::Normal,
            events::KEDA_SCALERS_STOPPED,
            "Stopped scalers watch".into(),
        )
        .await;
    }
    let changed = ctx
        .update_status(&key, |s| {
            let conds = s
                .conditions
                .get_or_insert_with(swell_api::status::initial_conditions);
            set_condition(
                conds,
                cond(
                    conditions::READY,
                    ConditionStatus::False,
                    ready::SCALED_OBJECT_CHECK_FAILED,
                    &message,
                ),
            );
        })
        .await?;
    if changed {
        ctx.event(
            so,
            EventType::Warning,
            events::SCALED_OBJECT_CHECK_FAILED,
            message,
        )
        .await;
    }
    ctx.metrics
        .object_errors
        .get_or_create(&ObjectLabels {
            namespace: so.namespace().unwrap_or_default(),
            scaled_object: so.name_any(),
        })
        .inc();
    // A spec change wakes us; otherwise retry slowly for things outside the spec
    // (a TriggerAuthentication or target created later).
    Ok(Action::requeue(Duration::from_secs(30)))
}

async fn delete_hpa(ctx: &Ctx, so: &ScaledObject) -> Result<(), Error> {
    let api: Api<HorizontalPodAutoscaler> =
        Api::namespaced(ctx.client.clone(), &so.namespace().unwrap_or_default());
    match api
        .delete(&so.hpa_name(), &DeleteParams::background())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// A follower keeps scalers for the metrics API and changes nothing in the cluster.
async fn observe(so: &ScaledObject, ctx: &Ctx) -> Action {
    let key = ObjectRef::from(so);
    let anns = so.metadata.annotations.as_ref();
    let paused = annotations::paused_replicas(anns).is_some()
        || annotations::bool_annotation(anns, annotations::PAUSED);
    if so.metadata.deletion_timestamp.is_some() || paused || so.validate().is_err() {
        ctx.stop_loop(&key);
        return Action::await_change();
    }
    match state_for(ctx, so, &key).await {
        Ok(_) => Action::requeue(Duration::from_secs(300)),
        Err(_) => {
            ctx.stop_loop(&key);
            Action::requeue(Duration::from_secs(30))
        }
    }
}

/// What a ScaledObject resolves to: its target and live triggers.
struct Built {
    target: Target,
    triggers: Vec<TriggerRuntime>,
    auth_names: Vec<String>,
}

impl Built {
    fn into_state(self, auth_versions: Vec<Option<i64>>) -> LoopState {
        LoopState::new(self.target, self.triggers, self.auth_names, auth_versions)
    }
}

/// The loop state for this generation: the one already built (our running loop's, or a
/// follower's adopted at leadership handover) while it is current, else built now.
async fn state_for(
    ctx: &Ctx,
    so: &ScaledObject,
    key: &ObjectRef<ScaledObject>,
) -> Result<Arc<LoopState>, BuildError> {
    let generation = so.metadata.generation.unwrap_or_default();
    let versions =
        crate::triggers::auth_versions(ctx, so.namespace().as_deref(), &so.spec.triggers);
    let existing = ctx.loop_state(key, generation);
    if let Some(state) = existing.as_ref().filter(|s| s.current(&versions)) {
        return Ok(state.clone());
    }
    if existing.is_some() {
        tracing::info!(scaledobject = %key, "rebuilding scalers: a trigger failed or its authentication changed");
    }
    let mut state = build(ctx, so).await?.into_state(versions);
    state.rebuilt = existing.is_some();
    let state = Arc::new(state);
    // Serve the metrics API from it at once: the HPA applied next is read by the HPA
    // controller before the loop starts (after the status write), and must not get 404.
    ctx.set_loop(
        key.clone(),
        LoopHandle {
            generation,
            cancel: tokio_util::sync::CancellationToken::new(),
            state: state.clone(),
            spawned: false,
        },
    );
    Ok(state)
}

/// Resolves the target, authentication and environment, and builds every trigger's scaler.
/// Reads only; the leader and followers share it.
async fn build(ctx: &Ctx, so: &ScaledObject) -> Result<Built, BuildError> {
    let ns = so.namespace().unwrap_or_default();
    let target = match ctx
        .targets
        .resolve(&ctx.client, &ns, &so.spec.scale_target_ref)
        .await
    {
        Ok(t) => t,
        Err(e) => return Err(BuildError::check(e.to_string())),
    };
    let pod = match target.pod_spec(&ctx.client).await {
        Ok(p) => p,
        Err(e) => return Err(BuildError::check(e.to_string())),
    };

    let (triggers, auth_names) = crate::triggers::build(
        ctx,
        crate::triggers::Owner {
            namespace: &ns,
            name: &so.name_any(),
            triggers: &so.spec.triggers,
            pod: pod.as_ref(),
            env_source_container_name: so
                .spec
                .scale_target_ref
                .env_source_container_name
                .as_deref(),
            polling_interval: so.spec.polling_interval(),
        },
    )
    .await?;
    let mut seen = std::collections::BTreeSet::new();
    if let Some(dup) = triggers
        .iter()
        .map(|t| t.spec.name())
        .find(|n| !seen.insert(n.to_string()))
    {
        return Err(BuildError::check(format!(
            "metric name {dup} is used by two triggers; give them different metadata or names"
        )));
    }
    Ok(Built {
        target,
        triggers,
        auth_names,
    })
}

async fn apply(so: Arc<ScaledObject>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let key = ObjectRef::from(so.as_ref());
    let ns = so.namespace().unwrap_or_default();
    let so_labels = ObjectLabels {
        namespace: ns.clone(),
        scaled_object: so.name_any(),
    };

    if let Err(errors) = so.validate() {
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        return check_failed(&ctx, &so, text.join("; ")).await;
    }

    let anns = so.metadata.annotations.as_ref();
    let paused_replicas = annotations::paused_replicas(anns);
    let paused =
        paused_replicas.is_some() || annotations::bool_annotation(anns, annotations::PAUSED);
    if paused {
        ctx.metrics.object_paused.get_or_create(&so_labels).set(1);
        return pause(&ctx, &so, paused_replicas).await;
    }
    ctx.metrics.object_paused.get_or_create(&so_labels).set(0);

    let state = match state_for(&ctx, &so, &key).await {
        Ok(state) => state,
        Err(e) => {
            if e.scaler_failed {
                ctx.event(
                    so.as_ref(),
                    EventType::Warning,
                    events::KEDA_SCALER_FAILED,
                    e.message.clone(),
                )
                .await;
            }
            return check_failed(&ctx, &so, e.message).await;
        }
    };

    let (target, specs) = (&state.target, state.specs());
    let desired = hpa::build(&so, target, &specs);
    let hpa_api: Api<HorizontalPodAutoscaler> = Api::namespaced(ctx.client.clone(), &ns);
    let hpa_name = so.hpa_name();
    if let Err(e) = hpa_api
        .patch(
            &hpa_name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&desired),
        )
        .await
    {
        return check_failed(
            &ctx,
            &so,
            format!("applying HPA {hpa_name}: {}", crate::kube_message(&e)),
        )
        .await;
    }

    let original = match so.status.as_ref().and_then(|s| s.original_replica_count) {
        Some(n) => Some(n),
        None => target.replicas(&ctx.client).await.ok(),
    };
    let generation = so.metadata.generation.unwrap_or_default();
    let was_paused = so
        .condition(conditions::PAUSED)
        .is_some_and(Condition::is_true);
    let was_ready = so
        .condition(conditions::READY)
        .is_some_and(Condition::is_true);
    let external: Vec<String> = specs
        .iter()
        .filter(|s| matches!(s, MetricSpec::External { .. }))
        .map(|s| s.name().to_string())
        .collect();
    let resource: Vec<String> = specs
        .iter()
        .filter(|s| matches!(s, MetricSpec::Resource { .. }))
        .map(|s| s.name().to_string())
        .collect();
    let types: Vec<String> = so.spec.triggers.iter().map(|t| t.type_.clone()).collect();
    ctx.update_status(&key, |s| {
        let conds = s
            .conditions
            .get_or_insert_with(swell_api::status::initial_conditions);
        // The scale loop owns TriggerError; a clean rebuild clears only our own failure.
        let ours = swell_api::status::find_condition(Some(conds.as_slice()), conditions::READY)
            .is_none_or(|c| {
                c.reason.as_deref() != Some(ready::TRIGGER_ERROR)
                    && c.reason.as_deref() != Some(ready::PARTIAL_TRIGGER_ERROR)
            });
        if ours {
            set_condition(
                conds,
                cond(
                    conditions::READY,
                    ConditionStatus::True,
                    ready::SCALED_OBJECT_READY,
                    ready::SCALED_OBJECT_READY_MESSAGE,
                ),
            );
        }
        if was_paused {
            set_condition(
                conds,
                cond(
                    conditions::PAUSED,
                    ConditionStatus::False,
                    pz::SCALED_OBJECT_UNPAUSED,
                    pz::SCALED_OBJECT_UNPAUSED_MESSAGE,
                ),
            );
        }
        s.paused_replica_count = None;
        s.scale_target_kind = Some(target.kind_string());
        s.scale_target_gvkr = Some(target.gvkr.clone());
        s.original_replica_count = original;
        s.hpa_name = Some(hpa_name.clone());
        s.external_metric_names = (!external.is_empty()).then(|| external.clone());
        s.resource_metric_names = (!resource.is_empty()).then(|| resource.clone());
        s.triggers_types = Some(types.join(","));
        s.authentications_types =
            (!state.auth_names.is_empty()).then(|| state.auth_names.join(","));
    })
    .await?;
    // Only now: the loop's first poll may scale at once, and whoever sees that must also
    // see the status it follows from (originalReplicaCount, metric names, Ready).
    start_loop(&ctx, &so, key.clone(), state.clone(), generation).await;
    if was_paused {
        ctx.event(
            so.as_ref(),
            EventType::Normal,
            events::SCALED_OBJECT_UNPAUSED,
            "ScaledObject was unpaused".into(),
        )
        .await;
    }
    if !was_ready {
        ctx.event(
            so.as_ref(),
            EventType::Normal,
            events::SCALED_OBJECT_READY,
            "ScaledObject is ready for scaling".into(),
        )
        .await;
    }
    Ok(Action::requeue(Duration::from_secs(300)))
}

/// Starts (or keeps) the scale loop for this generation of the ScaledObject, on `state`.
async fn start_loop(
    ctx: &Arc<Ctx>,
    so: &ScaledObject,
    key: ObjectRef<ScaledObject>,
    state: Arc<LoopState>,
    generation: i64,
) {
    if ctx.loop_running(&key, generation) {
        return;
    }
    let types: Vec<String> = state.triggers.iter().map(|t| t.type_.clone()).collect();
    let cancel = tokio_util::sync::CancellationToken::new();
    let polling = scale_loop::polling_of(so);
    let rebuilt = state.rebuilt;
    ctx.set_loop(
        key.clone(),
        LoopHandle {
            generation,
            cancel: cancel.clone(),
            state: state.clone(),
            spawned: true,
        },
    );
    scale_loop::spawn(ctx.clone(), key, state, polling, cancel);
    // Scalers rebuilt for the same generation (new credentials) announce nothing new.
    if rebuilt {
        return;
    }
    ctx.event(
        so,
        EventType::Normal,
        events::KEDA_SCALERS_STARTED,
        "Started scalers watch".into(),
    )
    .await;
    for t in types {
        ctx.event(
            so,
            EventType::Normal,
            events::KEDA_SCALERS_STARTED,
            format!("Scaler {t} is built."),
        )
        .await;
    }
}

async fn pause(
    ctx: &Ctx,
    so: &ScaledObject,
    paused_replicas: Option<Result<i32, &str>>,
) -> Result<Action, Error> {
    let key = ObjectRef::from(so);
    let replicas = match paused_replicas {
        Some(Ok(n)) => Some(n),
        Some(Err(raw)) => {
            return check_failed(
                ctx,
                so,
                format!(
                    "annotation {}: {}",
                    annotations::PAUSED_REPLICAS,
                    annotations::paused_replicas_error(raw)
                ),
            )
            .await;
        }
        None => None,
    };
    ctx.stop_loop(&key);
    delete_hpa(ctx, so).await?;
    let mut kind = None;
    if let Some(n) = replicas {
        let ns = so.namespace().unwrap_or_default();
        match ctx
            .targets
            .resolve(&ctx.client, &ns, &so.spec.scale_target_ref)
            .await
        {
            Ok(t) => {
                if let Err(e) = t.scale(&ctx.client, n).await {
                    return check_failed(ctx, so, e.to_string()).await;
                }
                kind = Some(t.kind_string());
            }
            Err(e) => return check_failed(ctx, so, e.to_string()).await,
        }
    }
    let was_paused = so
        .condition(conditions::PAUSED)
        .is_some_and(Condition::is_true);
    ctx.update_status(&key, |s| {
        let conds = s
            .conditions
            .get_or_insert_with(swell_api::status::initial_conditions);
        set_condition(
            conds,
            cond(
                conditions::PAUSED,
                ConditionStatus::True,
                pz::SCALED_OBJECT_PAUSED,
                pz::SCALED_OBJECT_PAUSED_MESSAGE,
            ),
        );
        s.paused_replica_count = replicas;
        if kind.is_some() {
            s.scale_target_kind.clone_from(&kind);
        }
    })
    .await?;
    if !was_paused {
        ctx.event(
            so,
            EventType::Normal,
            events::SCALED_OBJECT_PAUSED,
            "ScaledObject was paused".into(),
        )
        .await;
    }
    Ok(Action::await_change())
}

async fn cleanup(so: Arc<ScaledObject>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let key = ObjectRef::from(so.as_ref());
    ctx.stop_loop(&key);
    let original = so.status.as_ref().and_then(|s| s.original_replica_count);
    if let (true, Some(n)) = (so.spec.restore_to_original_replica_count(), original) {
        let ns = so.namespace().unwrap_or_default();
        let restored = match ctx
            .targets
            .resolve(&ctx.client, &ns, &so.spec.scale_target_ref)
            .await
        {
            Ok(t) => t.scale(&ctx.client, n).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = restored {
            tracing::warn!(scaledobject = %key, error = %e, "restoring original replica count");
        }
    }
    delete_hpa(&ctx, &so).await?;
    ctx.event(
        so.as_ref(),
        EventType::Warning,
        events::SCALED_OBJECT_DELETED,
        "ScaledObject was deleted".into(),
    )
    .await;
    Ok(Action::await_change())
}
