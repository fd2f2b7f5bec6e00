//! ScaledJobs end to end: `swell operator` against the real control plane (the real Job
//! controller; kwok runs and completes the pods) and local AWS with IAM enforced.
//!
//! A Job's pod completes after the duration in its `pod-complete.stage.kwok.x-k8s.io/delay`
//! annotation (hack/build-tools.sh adds that to kwok's stages), so a test decides how long
//! its Jobs run.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{ListParams, Patch, PatchParams};
use swell_api::ScaledJob;
use swell_testkit::{
    Aws, Cluster, MetricServer, Operator, Reply, TestNamespace, unique_suffix, wait_until,
};

const REGION: &str = "ca-central-1";

async fn jobs(ns: &TestNamespace, sj: &str) -> Vec<Job> {
    ns.api::<Job>()
        .list(&ListParams::default().labels(&format!("scaledjob.keda.sh/name={sj}")))
        .await
        .unwrap()
        .items
}

fn finished(j: &Job) -> Option<String> {
    j.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        .map(|c| c.type_.clone())
}

fn names(js: &[Job]) -> BTreeSet<String> {
    js.iter().filter_map(|j| j.metadata.name.clone()).collect()
}

async fn sj_condition(ns: &TestNamespace, name: &str, type_: &str) -> String {
    let sj = ns.api::<ScaledJob>().get(name).await.unwrap();
    sj.condition(type_)
        .map(|c| {
            format!(
                "{}/{}/{}",
                c.status.as_str(),
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default()
            )
        })
        .unwrap_or_default()
}

async fn wait_sj_condition(ns: &TestNamespace, name: &str, type_: &str, prefix: &str) -> String {
    wait_until(
        &format!("ScaledJob {name} condition {type_} to start with {prefix}"),
        WAIT,
        || async {
            let c = sj_condition(ns, name, type_).await;
            if c.starts_with(prefix) { Ok(c) } else { Err(c) }
        },
    )
    .await
}

/// A ScaledJob; `extra` is spliced into spec, `pod` into the pod template's spec.
fn scaled_job(name: &str, extra: &str, pod_annotations: &str, pod: &str, trigger: &str) -> String {
    format!(
        r#"
apiVersion: keda.sh/v1alpha1
kind: ScaledJob
metadata: {{name: {name}}}
spec:
  pollingInterval: 1
{extra}
  jobTargetRef:
    backoffLimit: 0
    template:
      metadata:
        annotations: {{{pod_annotations}}}
      spec:
        containers: [{{name: worker, image: busybox}}]
{pod}
  triggers:
{trigger}
"#
    )
}

struct Queue {
    aws: &'static Aws,
    url: String,
}

impl Queue {
    async fn new() -> Queue {
        let aws = Aws::shared();
        let url = aws
            .sqs_in(&aws.admin, REGION)
            .create_queue()
            .queue_name(format!("jobs-{}", unique_suffix()))
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        Queue { aws, url }
    }

    async fn send(&self, n: usize) {
        let sqs = self.aws.sqs_in(&self.aws.admin, REGION);
        for i in 0..n {
            sqs.send_message()
                .queue_url(&self.url)
                .message_body(format!("m{i}"))
                .send()
                .await
                .unwrap();
        }
    }

    async fn purge(&self) {
        self.aws
            .sqs_in(&self.aws.admin, REGION)
            .purge_queue()
            .queue_url(&self.url)
            .send()
            .await
            .unwrap();
    }

    /// The seed's trigger, read with Swell's own identity (identityOwner: operator).
    fn trigger(&self) -> String {
        format!(
            r#"  - type: aws-sqs-queue
    metadata:
      queueURL: {url}
      queueLength: "1"
      awsRegion: {REGION}
      awsEndpoint: {endpoint}
      identityOwner: operator"#,
            url = self.url,
            endpoint = self.aws.endpoint
        )
    }

    /// Swell with the admin user's keys as its own identity.
    fn operator(&self, cluster: &Cluster, ns: &TestNamespace) -> Operator {
        Operator::start_env(
            cluster,
            swell(),
            &ns.name,
            None,
            &["--leader-elect=false"],
            &[
                ("AWS_ACCESS_KEY_ID", self.aws.admin.access_key_id.as_str()),
                (
                    "AWS_SECRET_ACCESS_KEY",
                    self.aws.admin.secret_access_key.as_str(),
                ),
                ("AWS_REGION", REGION),
            ],
        )
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sqs_messages_become_jobs_up_to_max_then_more_as_they_finish() {
    let cluster = cluster();
    cluster
        .with_namespace("sj-sqs", |ns| async move {
            let queue = Queue::new().await;
            let _op = queue.operator(cluster, &ns);
            ns.apply(
                cluster,
                &scaled_job(
                    "worker",
                    "  maxReplicaCount: 3\n  successfulJobsHistoryLimit: 2\n  failedJobsHistoryLimit: 1",
                    r#""pod-complete.stage.kwok.x-k8s.io/delay": "6s""#,
                    "",
                    &queue.trigger(),
                )
                .replace(
                    "metadata: {name: worker}",
                    "metadata: {name: worker, labels: {team: a, skip-me: x}, \
                     annotations: {scaledjob.keda.sh/job-excluded-labels: skip-me}}",
                ),
            )
            .unwrap();
            wait_sj_condition(&ns, "worker", "Ready", "True/ScaledJobReady").await;
            wait_sj_condition(&ns, "worker", "Active", "False/ScalerNotActive").await;
            assert!(jobs(&ns, "worker").await.is_empty(), "no messages, no Jobs");

            // 5 messages, one per Job, at most 3 at once: 3 Jobs.
            queue.send(5).await;
            let first = wait_until("3 Jobs", WAIT, || async {
                let js = jobs(&ns, "worker").await;
                if js.len() >= 3 { Ok(js) } else { Err(format!("{} Jobs", js.len())) }
            })
            .await;
            assert_eq!(first.len(), 3, "{:?}", names(&first));
            wait_event(&ns, "KEDAJobsCreated", "Created 3 jobs").await;
            assert!(sj_condition(&ns, "worker", "Active").await.starts_with("True/ScalerActive"));

            // KEDA's shape: generateName, labels, the generation annotation, controller owner.
            let j = &first[0];
            assert!(j.metadata.name.as_deref().unwrap().starts_with("worker-"));
            let labels = j.metadata.labels.clone().unwrap();
            assert_eq!(labels["app.kubernetes.io/managed-by"], "keda-operator");
            assert_eq!(labels["scaledjob.keda.sh/name"], "worker");
            // The ScaledJob's labels, but not those job-excluded-labels names.
            assert_eq!(labels.get("team").map(String::as_str), Some("a"));
            assert!(!labels.contains_key("skip-me"), "{labels:?}");
            assert_eq!(
                j.metadata.annotations.clone().unwrap()["scaledjob.keda.sh/generation"],
                "1"
            );
            let owner = &j.metadata.owner_references.clone().unwrap()[0];
            assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("ScaledJob", "worker"));

            // While they run (6 s each, polls every second), no more are made, and never
            // more than 3 run at once; as they finish, new ones take the messages.
            let seen = std::sync::Mutex::new(names(&first));
            let all = wait_until("Jobs beyond the first 3 as those finish", WAIT, || async {
                let js = jobs(&ns, "worker").await;
                let running = js.iter().filter(|j| finished(j).is_none()).count();
                assert!(running <= 3, "{running} Jobs running at once, max is 3");
                let mut seen = seen.lock().unwrap();
                seen.extend(names(&js));
                if seen.len() >= 6 {
                    Ok(seen.clone())
                } else {
                    Err(format!("{} Jobs so far", seen.len()))
                }
            })
            .await;
            assert!(all.len() >= 6);

            // Purged: the running ones finish, none follow, history keeps the newest 2.
            queue.purge().await;
            wait_sj_condition(&ns, "worker", "Active", "False/ScalerNotActive").await;
            let after = wait_until("all Jobs done and the history trimmed to 2", WAIT, || async {
                let js = jobs(&ns, "worker").await;
                let done = js.iter().filter(|j| finished(j).as_deref() == Some("Complete")).count();
                if done == js.len() && done == 2 { Ok(js) } else {
                    Err(format!("{} Jobs, {done} complete", js.len()))
                }
            })
            .await;
            assert_eq!(after.len(), 2);
            tokio::time::sleep(Duration::from_secs(3)).await;
            assert_eq!(jobs(&ns, "worker").await.len(), 2, "no Job after the purge");
        })
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pending_jobs_are_counted_so_messages_are_not_taken_twice() {
    let cluster = cluster();
    cluster
        .with_namespace("sj-pending", |ns| async move {
            let queue = Queue::new().await;
            let _op = queue.operator(cluster, &ns);
            // No node matches, so every pod stays Pending: the Jobs never start.
            let unschedulable = "        nodeSelector: {swell.test/nowhere: \"true\"}";
            for (name, strategy) in [("accurate", "accurate"), ("default", "default")] {
                ns.apply(
                    cluster,
                    &scaled_job(
                        name,
                        &format!(
                            "  maxReplicaCount: 10\n  scalingStrategy: {{strategy: {strategy}}}"
                        ),
                        "",
                        unschedulable,
                        &queue.trigger(),
                    ),
                )
                .unwrap();
            }
            wait_sj_condition(&ns, "accurate", "Ready", "True").await;
            wait_sj_condition(&ns, "default", "Ready", "True").await;
            queue.send(2).await;
            for name in ["accurate", "default"] {
                wait_until(&format!("{name}: 2 Jobs"), WAIT, || async {
                    match jobs(&ns, name).await.len() {
                        2 => Ok(()),
                        n => Err(format!("{n} Jobs")),
                    }
                })
                .await;
            }
            // Several polls later, the 2 messages still have 2 Jobs each.
            tokio::time::sleep(Duration::from_secs(5)).await;
            for name in ["accurate", "default"] {
                let js = jobs(&ns, name).await;
                assert_eq!(js.len(), 2, "{name}: {:?}", names(&js));
            }
            // A third message: one more Job each, not three.
            queue.send(1).await;
            for name in ["accurate", "default"] {
                wait_until(&format!("{name}: 3 Jobs"), WAIT, || async {
                    match jobs(&ns, name).await.len() {
                        3 => Ok(()),
                        n => Err(format!("{n} Jobs")),
                    }
                })
                .await;
            }
            tokio::time::sleep(Duration::from_secs(4)).await;
            for name in ["accurate", "default"] {
                assert_eq!(jobs(&ns, name).await.len(), 3, "{name}");
            }
        })
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_job_target_ref_is_named_then_fixed() {
    let cluster = cluster();
    cluster
        .with_namespace("sj-invalid", |ns| async move {
            let source = MetricServer::start(2.0).await;
            let op = Operator::start(cluster, swell(), &ns.name, None, &["--leader-elect=false"]);
            let trigger = format!(
                "  - type: metrics-api\n    metadata: {{url: \"{}\", valueLocation: value, targetValue: \"1\"}}",
                source.url
            );
            // restartPolicy Always is valid for a pod but not for a Job's pod.
            ns.apply(
                cluster,
                &scaled_job("bad", "", "", "        restartPolicy: Always", &trigger),
            )
            .unwrap();
            let ready = wait_sj_condition(&ns, "bad", "Ready", "False/ScaledJobCheckFailed").await;
            for needle in [
                "spec.jobTargetRef is not a valid Job",
                r#"Job.batch "bad" is invalid: spec.template.spec.restartPolicy"#,
                "OnFailure",
            ] {
                assert!(ready.contains(needle), "{needle:?} not in {ready:?}");
            }
            wait_event(&ns, "ScaledJobCheckFailed", "restartPolicy").await;
            assert!(jobs(&ns, "bad").await.is_empty());

            // Fixed: ready, and the metric's 2 become 2 Jobs.
            ns.apply(
                cluster,
                &scaled_job("bad", "", "", "        restartPolicy: Never", &trigger),
            )
            .unwrap();
            wait_sj_condition(&ns, "bad", "Ready", "True/ScaledJobReady").await;
            wait_until("2 Jobs", WAIT, || async {
                match jobs(&ns, "bad").await.len() {
                    n if n >= 2 => Ok(()),
                    n => Err(format!("{n} Jobs")),
                }
            })
            .await;

            // KEDA's Prometheus names count the ScaledJob and read its scaler.
            let addr = op.metrics_addr().expect("the operator logs its metrics address");
            let registered = format!(
                "keda_resource_registered_total{{type=\"scaled_job\",namespace=\"{}\"}} 1",
                ns.name
            );
            let value = "keda_scaler_metrics_value{";
            wait_until("/metrics to count the ScaledJob", WAIT, || async {
                let out = std::process::Command::new("curl")
                    .args(["-sk", &format!("http://{addr}/metrics")])
                    .output()
                    .map_err(|e| e.to_string())?;
                let text = String::from_utf8_lossy(&out.stdout).to_string();
                let loop_latency = format!(
                    "keda_internal_scale_loop_latency_seconds{{namespace=\"{}\",type=\"scaledjob\",resource=\"bad\"}}",
                    ns.name
                );
                let ok = text.contains(&registered)
                    && text.contains(&loop_latency)
                    && text.lines().any(|l| l.starts_with(value) && l.contains("type=\"scaledjob\"") && l.contains("scaledObject=\"bad\""));
                if ok { Ok(()) } else { Err(text) }
            })
            .await;
            // A failing source counts as the ScaledJob's error, under KEDA's name.
            source.set(Reply::Fail(500));
            let errors = format!("keda_scaled_job_errors_total{{namespace=\"{}\",scaledJob=\"bad\"}}", ns.name);
            wait_until("/metrics to count the ScaledJob's error", WAIT, || async {
                let out = std::process::Command::new("curl")
                    .args(["-sk", &format!("http://{addr}/metrics")])
                    .output()
                    .map_err(|e| e.to_string())?;
                let text = String::from_utf8_lossy(&out.stdout).to_string();
                if text.contains(&errors) { Ok(()) } else { Err(text) }
            })
            .await;
        })
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pause_stops_new_jobs_and_a_new_generation_replaces_running_ones() {
    let cluster = cluster();
    cluster
        .with_namespace("sj-pause", |ns| async move {
            let source = MetricServer::start(0.0).await;
            let _op = Operator::start(cluster, swell(), &ns.name, None, &["--leader-elect=false"]);
            let trigger = format!(
                "  - type: metrics-api\n    metadata: {{url: \"{}\", valueLocation: value, targetValue: \"1\"}}",
                source.url
            );
            let long = r#""pod-complete.stage.kwok.x-k8s.io/delay": "300s""#;
            let manifest = scaled_job(
                "w",
                "  maxReplicaCount: 2",
                long,
                "        restartPolicy: Never",
                &trigger,
            );
            ns.apply(cluster, &manifest).unwrap();
            wait_sj_condition(&ns, "w", "Ready", "True").await;

            let sjs = ns.api::<ScaledJob>();
            let pause = |v: Option<&'static str>| {
                let sjs = sjs.clone();
                async move {
                    let patch = serde_json::json!({"metadata": {"annotations": {"autoscaling.keda.sh/paused": v}}});
                    sjs.patch("w", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
                }
            };
            pause(Some("true")).await;
            wait_sj_condition(&ns, "w", "Paused", "True/ScaledJobPaused").await;
            source.set(swell_testkit::Reply::Value(2.0));
            tokio::time::sleep(Duration::from_secs(4)).await;
            assert!(jobs(&ns, "w").await.is_empty(), "paused: no Jobs");

            pause(None).await;
            wait_sj_condition(&ns, "w", "Paused", "False/ScaledJobUnpaused").await;
            wait_event(&ns, "ScaledJobUnpaused", "").await;
            let v1 = wait_until("2 Jobs after unpausing", WAIT, || async {
                let js = jobs(&ns, "w").await;
                if js.len() == 2 { Ok(names(&js)) } else { Err(format!("{} Jobs", js.len())) }
            })
            .await;

            // A spec change (generation 2) with the default rollout (immediate): the running
            // generation-1 Jobs are deleted and generation-2 Jobs take their place.
            let patch = serde_json::json!({"spec": {"jobTargetRef": {"activeDeadlineSeconds": 600}}});
            sjs.patch("w", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
            wait_event(&ns, "ScaledJobRolloutCleanupCompleted", "2 jobs deleted").await;
            wait_until("2 generation-2 Jobs and none of generation 1", WAIT, || async {
                let js = jobs(&ns, "w").await;
                let live: Vec<&Job> = js.iter().filter(|j| j.metadata.deletion_timestamp.is_none()).collect();
                let gens: Vec<String> = live
                    .iter()
                    .map(|j| j.metadata.annotations.clone().unwrap_or_default()["scaledjob.keda.sh/generation"].clone())
                    .collect();
                let old = live.iter().any(|j| v1.contains(j.metadata.name.as_deref().unwrap_or("")));
                if !old && gens == ["2", "2"] { Ok(()) } else { Err(format!("generations {gens:?}, old left: {old}")) }
            })
            .await;

            // KEDA's finalizer, so a deletion is seen and a KEDA-made ScaledJob is released.
            let finalizers = sjs.get("w").await.unwrap().metadata.finalizers;
            assert_eq!(finalizers, Some(vec!["finalizer.keda.sh".to_string()]));
            sjs.delete("w", &Default::default()).await.unwrap();
            wait_event(&ns, "ScaledJobDeleted", "ScaledJob was deleted").await;
            wait_until("the ScaledJob to be gone", WAIT, || async {
                match sjs.get_opt("w").await {
                    Ok(None) => Ok(()),
                    other => Err(format!("{:?}", other.map(|o| o.map(|sj| sj.metadata.finalizers)))),
                }
            })
            .await;
        })
        .await;
}

/// A ScaledJob's credentials rotate without a spec change: its metrics-api source starts
/// wanting a new bearer token (the trigger fails, KEDAScalerFailed names the 401); the
/// Secret behind its TriggerAuthentication gets the token, the job loop rebuilds its
/// scalers after the failure, and the source's 2 become Jobs.
#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_secret_is_picked_up_by_the_job_loop() {
    let cluster = cluster();
    cluster
        .with_namespace("sj-rotate", |ns| async move {
            let source = MetricServer::start(0.0).await;
            source.require_bearer("old-token");
            let secret = |token: &str| {
                format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: tok}}\nstringData: {{token: {token}}}\n")
            };
            ns.apply(cluster, &secret("old-token")).unwrap();
            ns.apply(
                cluster,
                "apiVersion: keda.sh/v1alpha1\nkind: TriggerAuthentication\nmetadata: {name: tok}\nspec:\n  secretTargetRef: [{parameter: token, name: tok, key: token}]\n",
            )
            .unwrap();
            let trigger = format!(
                "  - type: metrics-api\n    metadata: {{url: \"{}\", valueLocation: value, targetValue: \"1\", authMode: bearer}}\n    authenticationRef: {{name: tok}}",
                source.url
            );
            ns.apply(cluster, &scaled_job("rotate", "  maxReplicaCount: 2", "", "", &trigger))
                .unwrap();
            let _op = Operator::start(cluster, swell(), &ns.name, None, &["--leader-elect=false"]);
            wait_sj_condition(&ns, "rotate", "Ready", "True/ScaledJobReady").await;

            source.require_bearer("new-token");
            wait_event(&ns, "KEDAScalerFailed", "401").await;
            assert!(jobs(&ns, "rotate").await.is_empty());
            ns.apply(cluster, &secret("new-token")).unwrap();
            source.set(swell_testkit::Reply::Value(2.0));
            wait_until("2 Jobs from the rotated credentials", WAIT, || async {
                match jobs(&ns, "rotate").await.len() {
                    n if n >= 2 => Ok(()),
                    n => Err(format!("{n} Jobs")),
                }
            })
            .await;
        })
        .await;
}
