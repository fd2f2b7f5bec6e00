//! Every read a ScaledObject's reconcile makes: its target (discovery, `/scale`), the pod
//! template's environment and identity, authentications, and each trigger's scaler. The
//! leader and followers share it; it writes nothing but the registry.

use std::sync::Arc;

use kube::ResourceExt as _;
use kube::runtime::reflector::ObjectRef;
use swell_api::ScaledObject;

use crate::composite::Composite;
use crate::context::Ctx;
use crate::loop_state::LoopState;
use crate::loops::Handle;
use crate::triggers::{BuildError, Owner};

/// The loop state for this generation: the one already built (our running loop's, or a
/// follower's adopted at leadership handover) while it is current, else built now.
pub async fn state_for(
    ctx: &Ctx,
    so: &ScaledObject,
    key: &ObjectRef<ScaledObject>,
) -> Result<Arc<LoopState>, BuildError> {
    let generation = so.metadata.generation.unwrap_or_default();
    let versions = ctx
        .builder
        .auth_versions(so.namespace().as_deref(), &so.spec.triggers);
    let existing = ctx.loops.state(key, generation);
    if let Some(state) = existing.as_ref().filter(|s| s.current(&versions)) {
        return Ok(state.clone());
    }
    let mut state = build(ctx, so, versions).await?;
    if let Some(old) = &existing {
        tracing::info!(scaledobject = %key, "rebuilding scalers: a trigger failed or its authentication changed");
        state = state.replacing(old);
    }
    let state = Arc::new(state);
    // Serve the metrics API from it at once: the HPA applied next is read by the HPA
    // controller before the loop starts (after the status write), and must not get 404.
    ctx.set_loop(key.clone(), Handle::idle(generation, state.clone()));
    Ok(state)
}

/// Resolves the target, authentication and environment, and builds every trigger's scaler.
async fn build(
    ctx: &Ctx,
    so: &ScaledObject,
    auth_versions: Vec<Option<i64>>,
) -> Result<LoopState, BuildError> {
    let ns = so.namespace().unwrap_or_default();
    let target_ref = &so.spec.scale_target_ref;
    let target = ctx.targets.resolve(&ctx.client, &ns, target_ref).await?;
    let pod = target.pod_spec(&ctx.client).await?;
    let built = ctx
        .builder
        .build(Owner {
            kind: "ScaledObject",
            namespace: &ns,
            name: &so.name_any(),
            triggers: &so.spec.triggers,
            pod: pod.as_ref(),
            env_source_container_name: target_ref.env_source_container_name.as_deref(),
            polling_interval: so.spec.polling_interval(),
        })
        .await?;
    if let Some(dup) = built.duplicate_metric() {
        return Err(BuildError::DuplicateMetric(dup));
    }
    let mut state = LoopState::new(target, built, auth_versions);
    let specs = state.triggers.iter().map(|t| (t.index, &t.spec));
    state.composite = Composite::new(so, specs).map_err(BuildError::Formula)?;
    Ok(state)
}

/// The target's replicas now, read only when the status has no `originalReplicaCount` yet.
pub async fn replicas_to_remember(ctx: &Ctx, so: &ScaledObject, state: &LoopState) -> Option<i32> {
    if so
        .status
        .as_ref()
        .is_some_and(|s| s.original_replica_count.is_some())
    {
        return None;
    }
    state.target.replicas(&ctx.client).await.ok()
}
