//! `swell explain` against the real local control plane: an operator serving the external
//! metrics API (so the real HPA scales), a metrics-api trigger, and the built binary asked
//! through `--operator` for its sentence while the workload scales up, cools down and is
//! paused.

#![allow(clippy::unwrap_used)]

mod common;

use common::metrics_api::operator_with_metrics_api;
use common::*;
use swell_testkit::{MetricServer, Operator, Reply, wait_until};

/// Target 2 per replica, activation 3, max 5; the HPA adds one pod per 30 s, so it is seen
/// scaling up for minutes; a cooldown of 10 minutes, so it is seen cooling down.
fn scaled_object(url: &str) -> String {
    format!(
        r#"
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {{name: app}}
spec:
  scaleTargetRef: {{name: app}}
  pollingInterval: 1
  cooldownPeriod: 600
  maxReplicaCount: 5
  advanced:
    horizontalPodAutoscalerConfig:
      behavior:
        scaleUp:
          stabilizationWindowSeconds: 0
          policies: [{{type: Pods, value: 1, periodSeconds: 30}}]
        scaleDown:
          stabilizationWindowSeconds: 0
          policies: [{{type: Percent, value: 100, periodSeconds: 1}}]
  triggers:
  - type: metrics-api
    metadata: {{url: "{url}", valueLocation: value, targetValue: "2", activationTargetValue: "3"}}
"#
    )
}

/// Runs the built `swell explain` against the operator's metrics port.
fn explain(op: &Operator, object: &str, json: bool) -> Result<String, String> {
    let addr = op
        .metrics_addr()
        .ok_or("the operator has not logged its metrics address")?;
    let mut cmd = std::process::Command::new(swell());
    cmd.args(["explain", object, "--operator", &format!("http://{addr}")])
        .arg("--kubeconfig")
        .arg(&cluster().kubeconfig);
    if json {
        cmd.args(["-o", "json"]);
    }
    let out = cmd.output().map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!(
            "exit {:?}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(stdout)
}

/// Waits until the text output's last line (the sentence) contains `want`; the whole text.
async fn wait_sentence(op: &Operator, object: &str, want: &str) -> String {
    wait_until(
        &format!("swell explain to say {want:?}"),
        WAIT * 3,
        || async {
            let text = explain(op, object, false)?;
            let sentence = text.lines().last().unwrap_or_default();
            if sentence.contains(want) {
                eprintln!("--- swell explain {object}\n{text}");
                Ok(text)
            } else {
                Err(text)
            }
        },
    )
    .await
}

#[tokio::test]
async fn explains_scaling_up_cooldown_and_pause() {
    let cluster = cluster();
    cluster
        .with_namespace("explain", |ns| async move {
            let source = MetricServer::start(10.0).await;
            ns.apply(cluster, &deployment("app", 0)).unwrap();
            ns.apply(cluster, &scaled_object(&source.url)).unwrap();
            let (op, _apiservice) = operator_with_metrics_api(cluster, &ns).await;
            let object = format!("{}/app", ns.name);

            // Activated 0 → 1, then the HPA goes towards ceil(10 / 2) = 5, a pod per 30 s.
            let text = wait_sentence(&op, &object, "the HPA is scaling up from").await;
            let sentence = text.lines().last().unwrap();
            assert!(sentence.contains(", going to 5, because s0-metric-api-value is 10 against a target of 2 per replica: ceil(10 / 2) = 5"), "{text}");
            assert!(text.contains("[0] metrics-api s0-metric-api-value: 10, target 2 AverageValue, activation 3 (activationTargetValue): active"), "{text}");
            assert!(text.contains("samples over"), "a sparkline of the history: {text}");
            assert!(text.contains("scale-up: window 0s, 1 pods/30s (Max)"), "{text}");

            let json = explain(&op, &object, true).unwrap();
            let v: serde_json::Value = serde_json::from_str(&json).unwrap();
            assert_eq!(v["case"], "ScalingUp", "{json}");
            assert_eq!(v["hpa"]["proposals"][0]["replicas"], 5, "{json}");
            assert!(v["operator"]["triggers"][0]["history"].as_array().is_some_and(|h| !h.is_empty()), "{json}");
            assert_eq!(v["operator"]["lastPoll"]["active"], true, "{json}");

            // Inactive above zero: the scale loop waits for the 600 s cooldown.
            source.set(Reply::Value(0.0));
            let text = wait_sentence(&op, &object, "the cooldown (cooldownPeriod 600 s) ends at").await;
            let sentence = text.lines().last().unwrap();
            assert!(sentence.contains("because no trigger is active: s0-metric-api-value is 0, activation target 3"), "{text}");
            assert!(sentence.contains("Swell takes it to 0"), "{text}");
            assert!(text.contains("Cooldown: last active "), "{text}");

            // Paused at 2: the operator runs no loop, the annotation says it all.
            annotate(&ns, "app", "autoscaling.keda.sh/paused-replicas", Some("2")).await;
            wait_replicas(&ns, "app", 2).await;
            let text = wait_sentence(&op, &object, "the ScaledObject is paused at 2").await;
            assert!(text.lines().last().unwrap().starts_with("2 replicas because"), "{text}");
            let json = explain(&op, &object, true).unwrap();
            let v: serde_json::Value = serde_json::from_str(&json).unwrap();
            assert_eq!((v["case"].as_str(), v["replicas"].as_i64()), (Some("Paused"), Some(2)), "{json}");
        })
        .await;
}

#[tokio::test]
async fn a_bad_name_is_refused_and_an_unknown_object_named() {
    let cluster = cluster();
    let out = std::process::Command::new(swell())
        .args(["explain", "no-slash"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"no-slash\" is not NAMESPACE/NAME"));
    // Settings of --operator without it would be ignored: refused by name instead.
    for flag in ["--operator-token=t", "--insecure-skip-tls-verify"] {
        let out = std::process::Command::new(swell())
            .args(["explain", "default/app", flag])
            .env_remove("SWELL_OPERATOR_TOKEN")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{flag}");
        let err = String::from_utf8_lossy(&out.stderr);
        let name = flag.split('=').next().unwrap_or(flag);
        assert!(
            err.contains(&format!("{name} applies to --operator only")),
            "{err}"
        );
    }
    let out = std::process::Command::new(swell())
        .args(["explain", "default/does-not-exist", "--kubeconfig"])
        .arg(&cluster.kubeconfig)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("reading ScaledObject default/does-not-exist"),
        "{err}"
    );
}
