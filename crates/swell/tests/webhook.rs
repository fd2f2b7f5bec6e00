//! The admission webhook served by `swell operator`, called by the real API server: it rejects
//! what `swell check` rejects with the same message, plus what only the cluster shows (two
//! ScaledObjects on one workload, a foreign HPA, cpu without requests), and warns about
//! unknown metadata keys.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use swell_testkit::{Operator, wait_until};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn sqs_so(name: &str, target: &str, metadata: &str, extra: &str) -> String {
    format!(
        r#"apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {{name: {name}}}
spec:
  scaleTargetRef: {{name: {target}}}
{extra}
  triggers:
  - type: aws-sqs-queue
    metadata:
      queueURL: https://sqs.eu-west-1.amazonaws.com/111122223333/orders
      identityOwner: operator
{metadata}
"#
    )
}

/// `kubectl apply`: (success, stdout + stderr).
fn kubectl_apply(cluster: &swell_testkit::Cluster, ns: &str, yaml: &str) -> (bool, String) {
    use std::io::Write as _;
    let mut child = cluster
        .kubectl()
        .args(["apply", "-n", ns, "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// What `swell check` prints as `field: message` for the first error of `yaml`.
fn check_error(yaml: &str, ns: &str) -> String {
    use std::io::Write as _;
    let mut child = std::process::Command::new(swell())
        .args(["check", "-n", ns, "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text
        .lines()
        .find(|l| l.contains(": error: "))
        .unwrap_or_else(|| panic!("swell check found no error:\n{text}"));
    line.split_once(": error: ").unwrap().1.to_string()
}

/// Registers the webhook for `ns` only with failurePolicy Fail, starts the operator serving
/// it, and waits until the operator published its caBundle: (operator, configuration name,
/// the configurations' Api).
async fn serve_webhook(
    cluster: &swell_testkit::Cluster,
    ns: &swell_testkit::TestNamespace,
) -> (Operator, String, Api<ValidatingWebhookConfiguration>) {
    let n = ns.name.clone();
    // Registered before the operator starts, for this namespace only; the operator
    // fills in the caBundle.
    let port = free_port();
    let config_name = format!("swell-admission-{n}");
    let hook = |path: &str, resource: &str| {
        serde_json::json!({
            "name": format!("{resource}.{n}.swell.dev"),
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "failurePolicy": "Fail",
            "clientConfig": {"url": format!("https://127.0.0.1:{port}{path}")},
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": n}},
            "rules": [{
                "apiGroups": ["keda.sh"], "apiVersions": ["v1alpha1"],
                "operations": ["CREATE", "UPDATE"], "resources": [resource]
            }]
        })
    };
    let vwc: ValidatingWebhookConfiguration = serde_json::from_value(serde_json::json!({
        "metadata": {"name": config_name},
        "webhooks": [
            hook("/validate-keda-sh-v1alpha1-scaledobject", "scaledobjects"),
            hook("/validate-keda-sh-v1alpha1-triggerauthentication", "triggerauthentications"),
            hook("/validate-keda-sh-v1alpha1-scaledjob", "scaledjobs"),
        ]
    }))
    .unwrap();
    let vwcs: Api<ValidatingWebhookConfiguration> = Api::all(ns.client.clone());
    vwcs.create(&PostParams::default(), &vwc).await.unwrap();

    let bind = format!("127.0.0.1:{port}");
    let op = Operator::start(
        cluster,
        swell(),
        &n,
        None,
        &[
            "--leader-elect=false",
            "--webhook=true",
            "--webhook-bind-address",
            &bind,
            "--webhook-configuration",
            &config_name,
        ],
    );
    wait_until(
        "the operator to publish the webhook's caBundle",
        WAIT,
        || async {
            let v = vwcs.get(&config_name).await.map_err(|e| e.to_string())?;
            let all = v
                .webhooks
                .unwrap_or_default()
                .iter()
                .all(|w| w.client_config.ca_bundle.is_some());
            if all {
                Ok(())
            } else {
                Err("caBundle not set".to_string())
            }
        },
    )
    .await;
    (op, config_name, vwcs)
}

#[tokio::test]
async fn api_server_calls_the_webhook() {
    let cluster = cluster();
    cluster
        .with_namespace("webhook", |ns| async move {
            let n = ns.name.clone();
            ns.apply(
                cluster,
                &format!(
                    "{}\n---\n{}\n---\n{}\n---\n{}",
                    deployment("app", 1),
                    deployment("web", 1),
                    deployment("fought", 1),
                    r#"apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: manual}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: fought}
  minReplicas: 1
  maxReplicas: 3
  metrics: [{type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}}]
"#
                ),
            )
            .unwrap();

            let (_op, config_name, vwcs) = serve_webhook(cluster, &ns).await;

            // A valid ScaledObject goes through, and the API server really calls us: wait
            // until a bad one is rejected (the API server may not have seen the caBundle yet).
            let mismatch = sqs_so("region", "web", "      awsRegion: us-east-1", "");
            let want = check_error(&mismatch, &n);
            assert!(want.contains("differs from the queue URL's region"), "{want}");
            let got = wait_until("the webhook to reject a region mismatch", WAIT, || async {
                match kubectl_apply(cluster, &n, &mismatch) {
                    (false, out) if out.contains("denied the request") => Ok(out),
                    (ok, out) => {
                        if ok {
                            let _ = ns
                                .api::<swell_api::ScaledObject>()
                                .delete("region", &DeleteParams::default())
                                .await;
                        }
                        Err(out)
                    }
                }
            })
            .await;
            assert!(got.contains(&want), "swell check said {want:?}; the webhook said {got}");

            // Replica bounds: the same message as swell check. (min > max is already refused
            // by the CRD's CEL rule; idle ≥ min reaches the webhook.)
            let bounds = sqs_so(
                "bounds",
                "web",
                "      awsRegion: eu-west-1",
                "  idleReplicaCount: 2\n  minReplicaCount: 2",
            );
            let want = check_error(&bounds, &n);
            let (ok, out) = kubectl_apply(cluster, &n, &bounds);
            assert!(!ok && out.contains(&want), "want {want:?}, got {out}");

            // A formula over a trigger that does not exist.
            let formula = sqs_so(
                "formula",
                "web",
                "      awsRegion: eu-west-1",
                "  advanced:\n    scalingModifiers: {formula: \"queue * 2\", target: \"5\"}",
            );
            let want = check_error(&formula, &n);
            let (ok, out) = kubectl_apply(cluster, &n, &formula);
            assert!(!ok && out.contains(&want), "want {want:?}, got {out}");

            // KEDA's webhook metrics, on the operator's plain-HTTP /metrics: every
            // ScaledObject validated, and each refusal by KEDA's reason.
            let errors = |reason: &str| {
                format!("keda_webhook_scaled_object_validation_errors_total{{namespace=\"{n}\",action=\"create\",reason=\"{reason}\"}} ")
            };
            wait_metrics(
                &_op,
                &[
                    format!("keda_webhook_scaled_object_validations_total{{namespace=\"{n}\",action=\"create\"}} "),
                    errors("incorrect-triggers"),
                    errors("scaling-modifiers"),
                ],
            )
            .await;

            // A TriggerAuthentication that KEDA's rules reject.
            let ta = "apiVersion: keda.sh/v1alpha1
kind: TriggerAuthentication
metadata: {name: bad}
spec:
  podIdentity: {provider: aws, externalID: abc}
";
            let want = check_error(ta, &n);
            let (ok, out) = kubectl_apply(cluster, &n, ta);
            assert!(!ok && out.contains(&want), "want {want:?}, got {out}");

            // A ScaledJob: its spec is checked too.
            let job = "apiVersion: keda.sh/v1alpha1
kind: ScaledJob
metadata: {name: job}
spec:
  jobTargetRef:
    template:
      spec:
        containers: [{name: worker, image: busybox}]
        restartPolicy: Never
  triggers:
  - type: cron
    metricType: Value
    metadata: {timezone: UTC, start: \"0 8 * * *\", end: \"0 8 * * *\", desiredReplicas: \"1\"}
";
            let want = check_error(job, &n);
            let (ok, out) = kubectl_apply(cluster, &n, job);
            assert!(!ok && out.contains(&want), "want {want:?}, got {out}");
            assert!(out.contains("spec.triggers[0].metadata.end: start and end must differ"), "{out}");

            // Accepted with a warning for an unknown key.
            let first = sqs_so(
                "first",
                "app",
                "      awsRegion: eu-west-1\n      queueUrl: typo",
                "",
            );
            let (ok, out) = kubectl_apply(cluster, &n, &first);
            assert!(ok, "{out}");
            assert!(
                out.contains("Warning: spec.triggers[0].metadata.queueUrl: unknown key for aws-sqs-queue, ignored; did you mean queueURL?"),
                "{out}"
            );

            // Only the cluster knows these.
            let second = sqs_so("second", "app", "      awsRegion: eu-west-1", "");
            let (ok, out) = kubectl_apply(cluster, &n, &second);
            assert!(
                !ok && out.contains(&format!("spec.scaleTargetRef: ScaledObject {n}/first already targets Deployment {n}/app")),
                "{out}"
            );
            let fought = sqs_so("fought", "fought", "      awsRegion: eu-west-1", "");
            let (ok, out) = kubectl_apply(cluster, &n, &fought);
            assert!(
                !ok && out.contains(&format!("spec.scaleTargetRef: HorizontalPodAutoscaler {n}/manual already scales Deployment {n}/fought")),
                "{out}"
            );
            let cpu = "apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: cpu}
spec:
  scaleTargetRef: {name: web}
  minReplicaCount: 1
  triggers:
  - type: cpu
    metricType: Utilization
    metadata: {value: \"50\"}
";
            let (ok, out) = kubectl_apply(cluster, &n, cpu);
            assert!(
                !ok && out.contains("spec.triggers[0]: the target's container \"nginx\" has no cpu request"),
                "{out}"
            );
            // A LimitRange default gives the container its request: accepted, as by KEDA.
            ns.apply(
                cluster,
                "apiVersion: v1\nkind: LimitRange\nmetadata: {name: defaults}\nspec:\n  limits:\n  - type: Container\n    defaultRequest: {cpu: 100m}\n",
            )
            .unwrap();
            let (ok, out) = kubectl_apply(cluster, &n, cpu);
            assert!(ok, "{out}");

            // Updating the accepted one is still checked, and still allowed when valid.
            let (ok, out) = kubectl_apply(cluster, &n, &first.replace("queueUrl: typo", "queueLength: \"3\""));
            assert!(ok, "{out}");

            // An HPA created behind its back makes `first` invalid: metadata-only updates (the
            // operator's finalizer, annotations) still pass, spec changes do not.
            ns.apply(
                cluster,
                r#"apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: late}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: app}
  minReplicas: 1
  maxReplicas: 3
  metrics: [{type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}}]
"#,
            )
            .unwrap();
            let annotate = cluster
                .kubectl()
                .args(["annotate", "-n", &n, "scaledobject", "first", "team=payments"])
                .output()
                .unwrap();
            assert!(
                annotate.status.success(),
                "{}",
                String::from_utf8_lossy(&annotate.stderr)
            );
            let (ok, out) = kubectl_apply(
                cluster,
                &n,
                &first.replace("queueUrl: typo", "queueLength: \"4\""),
            );
            assert!(
                !ok && out.contains(&format!("HorizontalPodAutoscaler {n}/late already scales")),
                "{out}"
            );

            let _ = vwcs.delete(&config_name, &DeleteParams::default()).await;
        })
        .await;
}

/// Issue 17: with failurePolicy Fail, an object near 1 MB never got its finalizer (the UPDATE
/// review carries it twice, and the webhook answered 413 above 2 MB), so `Ready` stayed empty.
#[tokio::test]
async fn objects_near_a_megabyte_get_a_finalizer_and_a_status() {
    let cluster = cluster();
    cluster
        .with_namespace("webhook-big", |ns| async move {
            ns.apply(cluster, &deployment("app", 1)).unwrap();
            let (_op, config_name, vwcs) = serve_webhook(cluster, &ns).await;
            // 18 unknown metadata keys of 60 KB, each under the 64 KiB limit of a value: the
            // object is ~1.1 MB (annotations cannot hold it: the API server caps them at 256 KB).
            let mut metadata = serde_json::json!({
                "timezone": "UTC", "start": "0 0 * * *", "end": "59 23 * * *", "desiredReplicas": "2",
            });
            for i in 0..18 {
                metadata[format!("filler{i}")] = "x".repeat(60 * 1024).into();
            }
            let big: swell_api::ScaledObject = serde_json::from_value(serde_json::json!({
                "apiVersion": "keda.sh/v1alpha1",
                "kind": "ScaledObject",
                "metadata": {"name": "big"},
                "spec": {
                    "scaleTargetRef": {"name": "app"},
                    "triggers": [{"type": "cron", "metadata": metadata}],
                },
            }))
            .unwrap();
            let api = ns.api::<swell_api::ScaledObject>();
            // The API server may not have seen the caBundle yet: retry the create.
            wait_until("the 1.1 MB ScaledObject to be created", WAIT, || async {
                match api.create(&PostParams::default(), &big).await {
                    Ok(_) => Ok(()),
                    Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
                    Err(e) => Err(e.to_string()),
                }
            })
            .await;
            let ready = wait_condition(&ns, "big", "Ready", "True").await;
            let got = so(&ns, "big").await;
            let finalizers = got.metadata.finalizers.unwrap_or_default();
            assert!(
                finalizers.contains(&"finalizer.keda.sh".to_string()),
                "{finalizers:?} ({ready})"
            );
            let _ = vwcs.delete(&config_name, &DeleteParams::default()).await;
        })
        .await;
}

/// The operator's peak resident memory (VmHWM) in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_default()
}

/// Issue 17's hostile manifests through the real API server: each is refused with its field,
/// the operator's memory stays bounded (7,000 kafka ranges of 100,001 ids were 2.8 GB of ids
/// before) and a good ScaledObject is still accepted and gets its status afterwards.
#[tokio::test]
async fn hostile_objects_are_refused_with_their_field() {
    let cluster = cluster();
    cluster
        .with_namespace("webhook-hostile", |ns| async move {
            let n = ns.name.clone();
            ns.apply(cluster, &deployment("app", 1)).unwrap();
            let (op, config_name, vwcs) = serve_webhook(cluster, &ns).await;
            let so = |name: &str, trigger: &str, annotations: &str| {
                format!("apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {{name: {name}, annotations: {{{annotations}}}}}\nspec:\n  scaleTargetRef: {{name: app}}\n  triggers:\n  - {trigger}\n")
            };
            let kafka = |ranges: usize| {
                // No consumerGroup: refused, after the partitions are parsed.
                let limitation = vec!["0-100000"; ranges].join(",");
                format!("{{type: kafka, metadata: {{bootstrapServers: \"k:9092\", topic: t, partitionLimitation: \"{limitation}\"}}}}")
            };
            let metrics_api = |url: &str, target: &str| {
                format!("{{type: metrics-api, metadata: {{url: \"{url}\", valueLocation: v, targetValue: \"{target}\"}}}}")
            };
            let cron = "{type: cron, metadata: {timezone: UTC, start: \"0 0 * * *\", end: \"59 23 * * *\", desiredReplicas: \"1\"}}";
            let cases = [
                (so("ranges", &kafka(7_000), ""), "spec.triggers[0].metadata.consumerGroup: required"),
                (so("ranges-long", &kafka(12_000), ""), "spec.triggers[0].metadata.partitionLimitation: is 107999 bytes long; the limit is 65536"),
                (so("nan", &metrics_api("http://api/", "NaN"), ""), "spec.triggers[0].metadata.targetValue: \"NaN\" is not a finite number"),
                (so("negative", &metrics_api("http://api/", "-5"), ""), "spec.triggers[0].metadata.targetValue: must be greater than 0"),
                (so("crlf", &metrics_api("http://api/\\r\\nX-Injected: 1", "5"), ""), "spec.triggers[0].metadata.url: contains whitespace or a control character"),
                (so("paused", cron, "autoscaling.keda.sh/paused-replicas: \"-5\""), "metadata.annotations.autoscaling.keda.sh/paused-replicas: \"-5\" is not a whole number of replicas"),
            ];
            let mut first = true;
            for (yaml, want) in cases {
                let got = if first {
                    // The API server may not have seen the caBundle yet.
                    first = false;
                    wait_until("the webhook to refuse the first hostile object", WAIT, || async {
                        match kubectl_apply(cluster, &n, &yaml) {
                            (false, out) if out.contains("denied the request") => Ok(out),
                            (_, out) => Err(out),
                        }
                    })
                    .await
                } else {
                    let (ok, out) = kubectl_apply(cluster, &n, &yaml);
                    assert!(!ok, "{out}");
                    out
                };
                assert!(got.contains(want), "want {want:?}, got {got}");
            }
            let peak = peak_rss_kib(op.pid());
            assert!(peak < 400 * 1024, "the operator peaked at {peak} KiB");
            eprintln!("operator peak RSS after the hostile objects: {peak} KiB");
            let (ok, out) = kubectl_apply(cluster, &n, &so("good", cron, ""));
            assert!(ok, "{out}");
            wait_condition(&ns, "good", "Ready", "True").await;
            let _ = vwcs.delete(&config_name, &DeleteParams::default()).await;
        })
        .await;
}
