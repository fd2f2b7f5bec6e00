//! The writes a ScaledJob makes: Jobs created from its template, Jobs of older
//! generations and past the history limits deleted.

use k8s_openapi::api::batch::v1::Job;
use kube::api::{DeleteParams, PostParams, PropagationPolicy as KubePropagation};
use kube::{Api, ResourceExt as _};
use swell_api::{PropagationPolicy, ScaledJob, events};

use crate::context::{Ctx, Note};
use crate::scaled_job::plan::{self, CheckFailed};

fn jobs(ctx: &Ctx, sj: &ScaledJob) -> Api<Job> {
    Api::namespaced(ctx.client.clone(), &plan::job_namespace(sj))
}

/// The API server is the judge of a JobSpec: a dry-run create names what is wrong with
/// jobTargetRef now, not when the first message arrives.
pub async fn check_job_template(ctx: &Ctx, sj: &ScaledJob) -> Result<(), CheckFailed> {
    let dry_run = PostParams {
        dry_run: true,
        ..Default::default()
    };
    match jobs(ctx, sj).create(&dry_run, &plan::probe_job(sj)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(CheckFailed::JobTemplate(e)),
    }
}

/// Creates `n` Jobs; the names created and the first error, which stops the rest.
pub async fn create_jobs(ctx: &Ctx, sj: &ScaledJob, n: i64) -> (Vec<String>, Option<String>) {
    let api = jobs(ctx, sj);
    let job = plan::job_for(sj);
    let mut created = Vec::new();
    for _ in 0..n {
        match api.create(&PostParams::default(), &job).await {
            Ok(j) => created.push(j.name_any()),
            Err(e) => return (created, Some(crate::kube_message(&e))),
        }
    }
    (created, None)
}

/// Deletes Jobs of an older generation (rollout strategy `immediate`), with events.
pub async fn rollout_cleanup(ctx: &Ctx, sj: &ScaledJob, stale: &[String]) {
    if stale.is_empty() {
        return;
    }
    let started = Note::normal(
        events::SCALED_JOB_ROLLOUT_CLEANUP_STARTED,
        format!(
            "Rollout cleanup started: deleting {} jobs of an older generation",
            stale.len()
        ),
    );
    ctx.record(sj, [started]).await;
    let policy = match sj.spec.rollout_propagation_policy() {
        PropagationPolicy::Foreground => KubePropagation::Foreground,
        PropagationPolicy::Background => KubePropagation::Background,
    };
    let dp = DeleteParams {
        propagation_policy: Some(policy),
        ..Default::default()
    };
    let api = jobs(ctx, sj);
    let mut failed = Vec::new();
    for name in stale {
        match api.delete(name, &dp).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => failed.push(format!("{name}: {}", crate::kube_message(&e))),
        }
    }
    let done = if failed.is_empty() {
        Note::normal(
            events::SCALED_JOB_ROLLOUT_CLEANUP_COMPLETED,
            format!(
                "Deleted jobs owned by the previous version of the scaleJob: {} jobs deleted",
                stale.len()
            ),
        )
    } else {
        Note::warning(events::SCALED_JOB_ROLLOUT_CLEANUP_FAILED, failed.join("; "))
    };
    ctx.record(sj, [done]).await;
}

/// Deletes finished Jobs past the history limits; stops at the first refusal.
pub async fn delete_history(ctx: &Ctx, sj: &ScaledJob, doomed: Vec<String>) {
    if doomed.is_empty() {
        return;
    }
    let api = jobs(ctx, sj);
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
