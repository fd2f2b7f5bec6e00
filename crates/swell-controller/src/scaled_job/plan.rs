//! What a ScaledJob asks for, decided from it and its watch caches alone. No client
//! required: every function here is pure and table-tested.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource as _, ResourceExt as _};
use swell_api::annotations::{self, labels};
use swell_api::{
    MultipleScalersCalculation, RolloutStrategy, ScaledJob, ScalingStrategyType, ValidationError,
};
use swell_scaling::jobs::{self, Calculation, Finished, JobCounts, Load, Strategy, TriggerLoad};

use crate::triggers::BuildError;

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Why a ScaledJob cannot be acted on: `Ready=False` with reason `ScaledJobCheckFailed`.
#[derive(Debug, thiserror::Error)]
pub enum CheckFailed {
    #[error("{}", swell_api::validation::format_errors(.0))]
    Invalid(Vec<ValidationError>),
    /// The API server refused a dry-run create of the Job the ScaledJob would make.
    #[error("spec.jobTargetRef is not a valid Job: {}", crate::kube_message(.0))]
    JobTemplate(kube::Error),
    #[error("{0}")]
    Build(Box<BuildError>),
}

impl From<BuildError> for CheckFailed {
    fn from(e: BuildError) -> Self {
        CheckFailed::Build(Box::new(e))
    }
}

impl CheckFailed {
    /// A low-cardinality label for logs and `swell_reconcile_errors_total`.
    pub fn category(&self) -> &'static str {
        match self {
            CheckFailed::Invalid(_) => "invalid",
            CheckFailed::JobTemplate(_) => "job_template",
            CheckFailed::Build(e) => e.category(),
        }
    }

    pub fn scaler_failed(&self) -> bool {
        matches!(self, CheckFailed::Build(e) if e.scaler_failed())
    }
}

/// What the annotations and spec let the controller do.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    Run,
    Pause,
}

pub fn admit(sj: &ScaledJob) -> Result<Admission, CheckFailed> {
    sj.validate().map_err(CheckFailed::Invalid)?;
    let paused =
        annotations::bool_annotation(sj.metadata.annotations.as_ref(), annotations::PAUSED);
    Ok(if paused {
        Admission::Pause
    } else {
        Admission::Run
    })
}

pub fn job_namespace(sj: &ScaledJob) -> String {
    sj.namespace().unwrap_or_default()
}

/// The Job a dry-run create checks: named after the ScaledJob, not generated, so the
/// API server's message is the same on every retry (validation runs before the name is
/// checked, so AlreadyExists means valid).
pub fn probe_job(sj: &ScaledJob) -> Job {
    let mut job = job_for(sj);
    job.metadata.generate_name = None;
    job.metadata.name = Some(sj.name_any().chars().take(63).collect());
    job
}

/// One Job as KEDA makes it: `generateName <sj>-`, KEDA's labels, the generation
/// annotation, a controller owner reference, and `restartPolicy: OnFailure` when unset.
pub fn job_for(sj: &ScaledJob) -> Job {
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
    let excluded = annotations::excluded_labels(
        sj.metadata.annotations.as_ref(),
        annotations::JOB_EXCLUDED_LABELS,
    );
    job_labels.extend(
        sj.labels()
            .iter()
            .filter(|(k, _)| !excluded.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    let mut job_annotations = BTreeMap::from([(
        annotations::SCALED_JOB_GENERATION.to_string(),
        sj.metadata.generation.unwrap_or_default().to_string(),
    )]);
    job_annotations.extend(sj.annotations().clone());
    let owner = sj.controller_owner_ref(&()).map(|mut o: OwnerReference| {
        o.block_owner_deletion = Some(true);
        o
    });
    Job {
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
    }
}

pub fn finished_type(job: &Job) -> Option<&'static str> {
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
pub fn count_jobs(
    jobs: &[Arc<Job>],
    pods: &[Arc<Pod>],
    pending_conditions: &[String],
) -> JobCounts {
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

/// Jobs made from an older generation, which rollout strategy `immediate` (the default)
/// deletes when the ScaledJob changes; `gradual` lets them finish.
pub fn stale_jobs(sj: &ScaledJob, mine: &[Arc<Job>]) -> Vec<String> {
    if sj.spec.rollout_strategy() == RolloutStrategy::Gradual {
        return Vec::new();
    }
    let current = sj.metadata.generation.unwrap_or_default().to_string();
    mine.iter()
        .filter(|j| {
            j.annotations()
                .get(annotations::SCALED_JOB_GENERATION)
                .is_some_and(|g| *g != current)
        })
        .map(|j| j.name_any())
        .collect()
}

/// Finished Jobs beyond successfulJobsHistoryLimit / failedJobsHistoryLimit, oldest first.
pub fn past_history_limit(sj: &ScaledJob, mine: &[Arc<Job>]) -> Vec<String> {
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
    let (mut complete, mut failed) = (Vec::new(), Vec::new());
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
    let spec = &sj.spec;
    let mut doomed =
        jobs::over_history_limit(&complete, i64::from(spec.successful_jobs_history_limit()));
    doomed.extend(jobs::over_history_limit(
        &failed,
        i64::from(spec.failed_jobs_history_limit()),
    ));
    doomed
}

/// What one poll decides: the combined load and how many Jobs to create.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PollPlan {
    pub load: Load,
    pub counts: JobCounts,
    pub create: i64,
}

/// `unseen` are Jobs created but not yet in the watch cache: they count as running and
/// pending, so a slow watch cannot turn the same messages into duplicate Jobs.
pub fn plan_poll(
    sj: &ScaledJob,
    loads: &[TriggerLoad],
    mine: &[Arc<Job>],
    pods: &[Arc<Pod>],
    unseen: usize,
) -> PollPlan {
    let min = i64::from(sj.spec.min_replica_count());
    let max = jobs::effective_max_replicas(min, i64::from(sj.spec.max_replica_count()));
    let load = jobs::combine(loads, calculation_of(sj), min, max);
    let mut counts = count_jobs(mine, pods, sj.spec.pending_pod_conditions());
    let unseen = i64::try_from(unseen).unwrap_or(i64::MAX);
    counts.running += unseen;
    counts.pending += unseen;
    let create = jobs::jobs_to_create(load, counts, strategy_of(sj), min, max);
    PollPlan {
        load,
        counts,
        create,
    }
}

/// The names of `mine`, to forget created Jobs the watch has since shown.
pub fn names(mine: &[Arc<Job>]) -> HashSet<String> {
    mine.iter().map(|j| j.name_any()).collect()
}

pub fn strategy_of(sj: &ScaledJob) -> Strategy {
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

pub fn calculation_of(sj: &ScaledJob) -> Calculation {
    match sj.spec.multiple_scalers_calculation() {
        MultipleScalersCalculation::Max => Calculation::Max,
        MultipleScalersCalculation::Min => Calculation::Min,
        MultipleScalersCalculation::Avg => Calculation::Avg,
        MultipleScalersCalculation::Sum => Calculation::Sum,
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
                         "labels": {"team": "a", "argocd.argoproj.io/instance": "w"},
                         "annotations": {"note": "x",
                                         "scaledjob.keda.sh/job-excluded-labels": "argocd.argoproj.io/instance, other"}},
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
        let job = job_for(&sj);
        let meta = &job.metadata;
        assert_eq!(meta.generate_name.as_deref(), Some("worker-"));
        let labels = meta.labels.clone().unwrap();
        assert_eq!(labels["scaledjob.keda.sh/name"], "worker");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "keda-operator");
        assert_eq!(labels["app.kubernetes.io/part-of"], "worker");
        assert_eq!(labels["team"], "a");
        assert!(
            !labels.contains_key("argocd.argoproj.io/instance"),
            "job-excluded-labels: {labels:?}"
        );
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

    fn with_generation(mut j: Arc<Job>, generation: &str) -> Arc<Job> {
        let job = Arc::make_mut(&mut j);
        job.metadata.annotations = Some(BTreeMap::from([(
            annotations::SCALED_JOB_GENERATION.to_string(),
            generation.to_string(),
        )]));
        j
    }

    #[test]
    fn rollout_deletes_older_generations_unless_gradual() {
        let mine = [
            with_generation(job("old", None), "2"),
            with_generation(job("new", None), "3"),
            job("unmarked", None),
        ];
        assert_eq!(stale_jobs(&sj(worker()), &mine), vec!["old".to_string()]);
        let mut gradual = worker();
        gradual["spec"]["rollout"] = serde_json::json!({"strategy": "gradual"});
        assert!(stale_jobs(&sj(gradual), &mine).is_empty());
    }

    #[test]
    fn history_keeps_the_newest_finished_jobs_per_limit() {
        let mut spec = worker();
        spec["spec"]["successfulJobsHistoryLimit"] = serde_json::json!(1);
        spec["spec"]["failedJobsHistoryLimit"] = serde_json::json!(0);
        let mine = [
            job("ok-1", Some("Complete")),
            job("ok-2", Some("Complete")),
            job("bad", Some("Failed")),
            job("running", None),
        ];
        let mut doomed = past_history_limit(&sj(spec), &mine);
        doomed.sort();
        assert_eq!(doomed.len(), 2, "{doomed:?}");
        assert!(doomed.contains(&"bad".to_string()));
        assert!(!doomed.contains(&"running".to_string()));
    }

    #[test]
    fn unseen_jobs_count_as_running_so_a_slow_watch_makes_no_duplicates() {
        let load = [TriggerLoad {
            queue_length: 3.0,
            target: 1.0,
            active: true,
        }];
        let sj = sj(worker());
        assert_eq!(plan_poll(&sj, &load, &[], &[], 0).create, 3);
        let p = plan_poll(&sj, &load, &[], &[], 2);
        assert_eq!((p.create, p.counts.running, p.counts.pending), (1, 2, 2));
        let idle = [TriggerLoad {
            queue_length: 0.0,
            target: 1.0,
            active: false,
        }];
        assert_eq!(plan_poll(&sj, &idle, &[], &[], 0).create, 0);
    }

    #[test]
    fn admission_and_probe_job() {
        assert_eq!(admit(&sj(worker())).unwrap(), Admission::Run);
        let mut paused = worker();
        paused["metadata"]["annotations"]["autoscaling.keda.sh/paused"] = "true".into();
        assert_eq!(admit(&sj(paused)).unwrap(), Admission::Pause);
        let probe = probe_job(&sj(worker()));
        assert_eq!(probe.metadata.name.as_deref(), Some("worker"));
        assert_eq!(probe.metadata.generate_name, None);
    }
}
