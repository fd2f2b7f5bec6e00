//! The writes a ScaledObject's reconcile makes: its HPA (server-side apply), pausing at a
//! replica count, restoring on delete, and starting its scale loop.

use std::sync::Arc;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt as _};
use swell_api::ScaledObject;

use crate::context::Ctx;
use crate::loop_state::LoopState;
use crate::loops::Handle;
use crate::scaled_object::plan::CheckFailed;
use crate::scaled_object::{scale_loop, status};
use crate::target::TargetError;

const FIELD_MANAGER: &str = "swell-operator";

fn hpas(ctx: &Ctx, so: &ScaledObject) -> Api<HorizontalPodAutoscaler> {
    Api::namespaced(ctx.client.clone(), &so.namespace().unwrap_or_default())
}

/// Puts KEDA's `scaledobject.keda.sh/name` label on the ScaledObject when it lacks it
/// ([`crate::scaled_object::plan::name_label_patch`]).
pub async fn ensure_name_label(ctx: &Ctx, so: &ScaledObject) -> Result<(), kube::Error> {
    let Some(patch) = crate::scaled_object::plan::name_label_patch(so) else {
        return Ok(());
    };
    let api: Api<ScaledObject> =
        Api::namespaced(ctx.client.clone(), &so.namespace().unwrap_or_default());
    api.patch(
        &so.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

pub async fn apply_hpa(
    ctx: &Ctx,
    so: &ScaledObject,
    hpa: &HorizontalPodAutoscaler,
) -> Result<(), CheckFailed> {
    let name = so.hpa_name();
    let params = PatchParams::apply(FIELD_MANAGER).force();
    match hpas(ctx, so)
        .patch(&name, &params, &Patch::Apply(hpa))
        .await
    {
        Ok(_) => Ok(()),
        Err(source) => Err(CheckFailed::Hpa { name, source }),
    }
}

pub async fn delete_hpa(ctx: &Ctx, so: &ScaledObject) -> Result<(), kube::Error> {
    match hpas(ctx, so)
        .delete(&so.hpa_name(), &DeleteParams::background())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Scales the target to `replicas` (paused-replicas, restore on delete); its kind string.
pub async fn scale_target(
    ctx: &Ctx,
    so: &ScaledObject,
    replicas: i32,
) -> Result<String, TargetError> {
    let ns = so.namespace().unwrap_or_default();
    let target = ctx
        .targets
        .resolve(&ctx.client, &ns, &so.spec.scale_target_ref)
        .await?;
    target.scale(&ctx.client, replicas).await?;
    Ok(target.kind_string())
}

/// Starts (or keeps) the scale loop for this generation of the ScaledObject, on `state`.
pub async fn start_loop(ctx: &Arc<Ctx>, so: &ScaledObject, state: Arc<LoopState>) {
    let key = ObjectRef::from(so);
    let generation = so.metadata.generation.unwrap_or_default();
    if ctx.loops.running(&key, generation) {
        return;
    }
    let handle = Handle {
        spawned: true,
        ..Handle::idle(generation, state.clone())
    };
    let cancel = handle.cancel.clone();
    ctx.set_loop(key.clone(), handle);
    let polling = crate::loops::polling_duration(so.spec.polling_interval());
    let notes = (!state.rebuilt).then(|| {
        let types: Vec<&str> = state.triggers.iter().map(|t| t.type_.as_str()).collect();
        status::started_notes(&types)
    });
    scale_loop::spawn(ctx.clone(), key, state, polling, cancel);
    // Scalers rebuilt for the same generation (new credentials) announce nothing new.
    if let Some(notes) = notes {
        ctx.record(so, notes).await;
    }
}
