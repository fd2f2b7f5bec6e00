//! `swell operator` against the real local control plane: each test runs its own operator
//! process watching only its own namespace.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::Api;
use swell_api::ScaledObject;
use swell_testkit::{Cluster, MetricServer, Operator, Reply, wait_until};

#[tokio::test]
async fn activation_hpa_and_deactivation_after_cooldown() {
    let cluster = cluster();
    cluster
        .with_namespace("op-activate", |ns| async move {
            let source = MetricServer::start(0.0).await;
            ns.apply(cluster, &deployment("app", 0)).unwrap();
            ns.apply(cluster, &scaled_object("app", "app", &source.url, ""))
                .unwrap();
            let _op = Operator::start(cluster, swell(), &ns.name, None, &["--leader-elect=false"]);

            wait_condition(&ns, "app", "Ready", "True/ScaledObjectReady").await;
            wait_condition(&ns, "app", "Active", "False/ScalerNotActive").await;
            assert_eq!(
                replicas(&ns, "app").await,
                Ok(0),
                "inactive source must not activate"
            );

            let hpa = ns
                .api::<HorizontalPodAutoscaler>()
                .get("keda-hpa-app")
                .await
                .unwrap();
            let spec = hpa.spec;
            assert_eq!((spec.min_replicas, spec.max_replicas), (Some(1), 5));
            let metric = spec.metrics.unwrap()[0].external.clone().unwrap();
            assert_eq!(metric.metric.name, "s0-metric-api-value");
            assert_eq!(
                hpa.metadata.owner_references.unwrap()[0].kind,
                "ScaledObject"
            );
            let s = so(&ns, "app").await.status.unwrap();
            assert_eq!(
                s.external_metric_names,
                Some(vec!["s0-metric-api-value".to_string()])
            );
            assert_eq!(s.scale_target_kind.as_deref(), Some("apps/v1.Deployment"));
            assert_eq!(s.hpa_name.as_deref(), Some("keda-hpa-app"));
            assert_eq!(s.original_replica_count, Some(0));
            // KEDA's label on the ScaledObject itself.
            let labels = so(&ns, "app").await.metadata.labels.unwrap_or_default();
            assert_eq!(labels.get("scaledobject.keda.sh/name").map(String::as_str), Some("app"));

            source.set(Reply::Value(10.0));
            wait_replicas(&ns, "app", 1).await;
            // This operator serves no metrics API, so the HPA cannot read the metric: KEDA's
            // HPAActive says so with the HPA's own reason, and so does Ready (keda#7649).
            wait_condition(&ns, "app", "HPAActive", "False/FailedGetExternalMetric").await;
            let ready = wait_condition(&ns, "app", "Ready", "False/FailedGetExternalMetric").await;
            assert!(ready.contains("HPA is not actively scaling"), "{ready}");
            let note = wait_event(&ns, "KEDAScaleTargetActivated", "from 0 to 1").await;
            assert!(
                note.starts_with(&format!(
                    "Scaled apps/v1.Deployment {}/app from 0 to 1",
                    ns.name
                )),
                "{note}"
            );
            wait_condition(&ns, "app", "Active", "True/ScalerActive").await;
            assert!(
                so(&ns, "app")
                    .await
                    .status
                    .unwrap()
                    .last_active_time
                    .is_some()
            );

            source.set(Reply::Value(0.0));
            wait_replicas(&ns, "app", 0).await;
            wait_event(&ns, "KEDAScaleTargetDeactivated", "from 1 to 0").await;

            // autoscaling.keda.sh/force-activation keeps the target active with an inactive
            // source, as KEDA; taking it off lets the loop deactivate again.
            let force = "autoscaling.keda.sh/force-activation";
            annotate(&ns, "app", force, Some("true")).await;
            wait_replicas(&ns, "app", 1).await;
            wait_event(&ns, "KEDAScaleTargetActivated", "caused by forced activation annotation")
                .await;
            wait_condition(
                &ns,
                "app",
                "Active",
                "True/ScalerActive/Scaling is performed because activation is being forced by annotation",
            )
            .await;
            annotate(&ns, "app", force, None).await;
            wait_replicas(&ns, "app", 0).await;
        })
        .await;
}

#[tokio::test]
// KEDA documents idleReplicaCount 0 as the only working value: with idle ≥ 1 the HPA
// (minReplicas = min) raises the target itself.
async fn idle_replicas_and_minimum() {
    let cluster = cluster();
    cluster
        .with_namespace("op-idle", |ns| async move {
            let source = MetricServer::start(0.0).await;
            ns.apply(cluster, &deployment("app", 3)).unwrap();
            ns.apply(
                cluster,
                &scaled_object(
                    "app",
                    "app",
                    &source.url,
                    "  idleReplicaCount: 0\n  minReplicaCount: 2",
                ),
            )
            .unwrap();
            let _op = Operator::start(cluster, swell(), &ns.name, None, &["--leader-elect=false"]);
            wait_replicas(&ns, "app", 0).await;
            wait_event(&ns, "KEDAScaleTargetDeactivated", "from 3 to 0").await;
            source.set(Reply::Value(10.0));
            wait_replicas(&ns, "app", 2).await;
            wait_event(&ns, "KEDAScaleTargetActivated", "from 0 to 2").await;
        })
        .await;
}

#[tokio::test]
async fn pause_and_unpause() {
    let cluster = cluster();
    cluster
        .with_namespace("op-pause", |ns| async move {
            let source = MetricServer::start(10.0).await;
            ns.apply(cluster, &deployment("app", 1)).unwrap();
            ns.apply(cluster, &scaled_object("app", "app", &source.url, ""))
                .unwrap();
            let _op = Operator::start(cluster, swell(), &ns.name, None, &["--leader-elect=false"]);
            wait_condition(&ns, "app", "Ready", "True").await;
            let hpas = ns.api::<HorizontalPodAutoscaler>();

            annotate(&ns, "app", "autoscaling.keda.sh/paused-replicas", Some("3")).await;
            wait_replicas(&ns, "app", 3).await;
            wait_condition(&ns, "app", "Paused", "True/ScaledObjectPaused").await;
            assert_eq!(
                so(&ns, "app").await.status.unwrap().paused_replica_count,
                Some(3)
            );
            wait_until("the HPA to be deleted while paused", WAIT, || async {
                match hpas
                    .get_opt("keda-hpa-app")
                    .await
                    .map_err(|e| e.to_string())?
                {
                    None => Ok(()),
                    Some(_) => Err("HPA still exists".into()),
                }
            })
            .await;
            // While paused an inactive source scales nothing down.
            source.set(Reply::Value(0.0));
            tokio::time::sleep(Duration::from_secs(4)).await;
            assert_eq!(replicas(&ns, "app").await, Ok(3));

            annotate(&ns, "app", "autoscaling.keda.sh/paused-replicas", None).await;
            wait_condition(&ns, "app", "Paused", "False/ScaledObjectUnpaused").await;
            wait_until("the HPA to come back", WAIT, || async {
                hpas.get_opt("keda-hpa-app")
                    .await
                    .map_err(|e| e.to_string())?
                    .map(|_| ())
                    .ok_or("no HPA".to_string())
            })
            .await;
            assert_eq!(
                so(&ns, "app").await.status.unwrap().paused_replica_count,
                None
            );
            wait_replicas(&ns, "app", 0).await;
            wait_event(&ns, "ScaledObjectPaused", "").await;
        })
        .await;
}

#[tokio::test]
async fn direction_pauses_hold_the_loop() {
    let cluster = cluster();
    cluster
        .with_namespace("op-direction", |ns| async move {
            let source = MetricServer::start(10.0).await;
            ns.apply(cluster, &deployment("app", 0)).unwrap();
            ns.apply(cluster, &scaled_object("app", "app", &source.url, ""))
                .unwrap();
            let _op = Operator::start(cluster, swell(), &ns.name, None, &["--leader-elect=false"]);
            wait_replicas(&ns, "app", 1).await;

            // paused-scale-in: Paused (as KEDA), and an inactive source no longer takes the
            // target to zero, however long past the cooldown.
            let scale_in = "autoscaling.keda.sh/paused-scale-in";
            annotate(&ns, "app", scale_in, Some("true")).await;
            wait_condition(&ns, "app", "Paused", "True/ScaledObjectPaused").await;
            wait_event(&ns, "ScaledObjectPaused", "").await;
            source.set(Reply::Value(0.0));
            wait_condition(&ns, "app", "Active", "False/ScalerNotActive").await;
            tokio::time::sleep(Duration::from_secs(5)).await;
            assert_eq!(replicas(&ns, "app").await, Ok(1), "scale-in is paused");
            annotate(&ns, "app", scale_in, None).await;
            wait_condition(&ns, "app", "Paused", "False/ScaledObjectUnpaused").await;
            wait_replicas(&ns, "app", 0).await;

            // paused-scale-out: an active source no longer takes the target from zero.
            let scale_out = "autoscaling.keda.sh/paused-scale-out";
            annotate(&ns, "app", scale_out, Some("true")).await;
            wait_condition(&ns, "app", "Paused", "True/ScaledObjectPaused").await;
            source.set(Reply::Value(10.0));
            wait_condition(&ns, "app", "Active", "True/ScalerActive").await;
            tokio::time::sleep(Duration::from_secs(5)).await;
            assert_eq!(replicas(&ns, "app").await, Ok(0), "scale-out is paused");
            annotate(&ns, "app", scale_out, None).await;
            wait_replicas(&ns, "app", 1).await;
            let hpa = ns
                .api::<HorizontalPodAutoscaler>()
                .get("keda-hpa-app")
                .await
                .unwrap();
            let behavior = hpa.spec.behavior.unwrap_or_default();
            assert!(
                behavior.scale_up.and_then(|r| r.select_policy).is_none(),
                "the HPA's scale-up is enabled again"
            );
        })
        .await;
}

#[tokio::test]
async fn failing_source_holds_replicas_and_reports_fallback() {
    let cluster = cluster();
    cluster
        .with_namespace("op-fallback", |ns| async move {
            let source = MetricServer::start(10.0).await;
            let failing = MetricServer::start(10.0).await;
            ns.apply(cluster, &deployment("app", 0)).unwrap();
            ns.apply(cluster, &deployment("plain", 0)).unwrap();
            ns.apply(
                cluster,
                &scaled_object(
                    "app",
                    "app",
                    &source.url,
                    "  fallback: {failureThreshold: 2, replicas: 4}",
                ),
            )
            .unwrap();
            ns.apply(cluster, &scaled_object("plain", "plain", &failing.url, ""))
                .unwrap();
            let _op = Operator::start(cluster, swell(), &ns.name, None, &["--leader-elect=false"]);
            wait_replicas(&ns, "app", 1).await;
            wait_replicas(&ns, "plain", 1).await;

            source.set(Reply::Fail(503));
            failing.set(Reply::Fail(500));
            wait_condition(&ns, "app", "Fallback", "True/FallbackExists").await;
            let health = so(&ns, "app").await.status.unwrap().health.unwrap();
            let h = &health["s0-metric-api-value"];
            assert!(h.number_of_failures.unwrap_or(0) > 2, "{h:?}");
            assert_eq!(h.status.as_ref().map(|s| s.as_str()), Some("Failing"));
            let ready = wait_condition(&ns, "plain", "Ready", "False/TriggerError").await;
            assert!(
                ready.contains("500"),
                "the error names what failed: {ready}"
            );
            wait_event(&ns, "KEDAScalerFailed", "returned 500").await;
            // The same failure every poll is one Event counted in its series; a failure
            // that says something else is a new Event, not a recount of the old one.
            let series_of = |code: &'static str| {
                let ns = &ns;
                async move {
                    let events: Api<k8s_openapi::api::events::v1::Event> = ns.api();
                    let list = events
                        .list(&Default::default())
                        .await
                        .map_err(|e| e.to_string())?;
                    let same: Vec<_> = list
                        .items
                        .into_iter()
                        .filter(|e| e.reason.as_deref() == Some("KEDAScalerFailed"))
                        .filter(|e| e.note.as_deref().is_some_and(|n| n.contains(code)))
                        .filter(|e| {
                            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("plain")
                        })
                        .collect();
                    match same.as_slice() {
                        [one] => match one.series.as_ref().map(|s| s.count) {
                            Some(n) if n >= 2 => Ok(n),
                            other => Err(format!("series {other:?}")),
                        },
                        many => Err(format!("{} events", many.len())),
                    }
                }
            };
            wait_until("repeats of one failure in one event's series", WAIT, || {
                series_of("returned 500")
            })
            .await;
            failing.set(Reply::Fail(502));
            wait_event(&ns, "KEDAScalerFailed", "returned 502").await;
            // Well past the cooldown, neither workload was scaled to zero.
            tokio::time::sleep(Duration::from_secs(5)).await;
            assert_eq!(replicas(&ns, "app").await, Ok(1));
            assert_eq!(replicas(&ns, "plain").await, Ok(1));

            source.set(Reply::Value(10.0));
            wait_condition(&ns, "app", "Fallback", "False/NoFallbackFound").await;
            let health = so(&ns, "app").await.status.unwrap().health.unwrap();
            assert_eq!(health["s0-metric-api-value"].number_of_failures, Some(0));
        })
        .await;
}

#[tokio::test]
async fn restores_original_replicas_on_delete() {
    let cluster = cluster();
    cluster
        .with_namespace("op-restore", |ns| async move {
            let source = MetricServer::start(0.0).await;
            ns.apply(cluster, &deployment("app", 3)).unwrap();
            ns.apply(
                cluster,
                &scaled_object(
                    "app",
                    "app",
                    &source.url,
                    "  advanced: {restoreToOriginalReplicaCount: true}",
                ),
            )
            .unwrap();
            let _op = Operator::start(cluster, swell(), &ns.name, None, &["--leader-elect=false"]);
            wait_replicas(&ns, "app", 0).await;
            assert_eq!(
                so(&ns, "app").await.status.unwrap().original_replica_count,
                Some(3)
            );
            assert!(
                so(&ns, "app")
                    .await
                    .metadata
                    .finalizers
                    .unwrap_or_default()
                    .contains(&"finalizer.keda.sh".to_string())
            );
            ns.api::<ScaledObject>()
                .delete("app", &Default::default())
                .await
                .unwrap();
            wait_replicas(&ns, "app", 3).await;
            let sos = ns.api::<ScaledObject>();
            wait_until("the ScaledObject and its HPA to be gone", WAIT, || async {
                let so = sos.get_opt("app").await.map_err(|e| e.to_string())?;
                let hpa = ns
                    .api::<HorizontalPodAutoscaler>()
                    .get_opt("keda-hpa-app")
                    .await
                    .map_err(|e| e.to_string())?;
                if so.is_none() && hpa.is_none() {
                    Ok(())
                } else {
                    Err(format!("so={} hpa={}", so.is_some(), hpa.is_some()))
                }
            })
            .await;
        })
        .await;
}

#[tokio::test]
async fn statefulset_and_custom_resource_targets() {
    let cluster = cluster();
    ns_crd(cluster);
    cluster
        .with_namespace("op-targets", |ns| async move {
            let source = MetricServer::start(10.0).await;
            ns.apply(
                cluster,
                r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  replicas: 0
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: c, image: postgres}]}
---
apiVersion: test.swell.dev/v1
kind: Widget
metadata: {name: w}
spec: {replicas: 0}
"#,
            )
            .unwrap();
            let sts = scaled_object("db", "db", &source.url, "").replace(
                "scaleTargetRef: {name: db}",
                "scaleTargetRef: {apiVersion: apps/v1, kind: StatefulSet, name: db}",
            );
            let widget = scaled_object("w", "w", &source.url, "").replace(
                "scaleTargetRef: {name: w}",
                "scaleTargetRef: {apiVersion: test.swell.dev/v1, kind: Widget, name: w}",
            );
            ns.apply(cluster, &sts).unwrap();
            ns.apply(cluster, &widget).unwrap();
            let _op = Operator::start(cluster, swell(), &ns.name, None, &["--leader-elect=false"]);
            wait_event(
                &ns,
                "KEDAScaleTargetActivated",
                &format!("Scaled apps/v1.StatefulSet {}/db from 0 to 1", ns.name),
            )
            .await;
            wait_event(
                &ns,
                "KEDAScaleTargetActivated",
                &format!("Scaled test.swell.dev/v1.Widget {}/w from 0 to 1", ns.name),
            )
            .await;
            let s = so(&ns, "w").await.status.unwrap();
            assert_eq!(
                s.scale_target_gvkr.map(|g| g.resource),
                Some("widgets".to_string())
            );
            let out = cluster
                .kubectl()
                .args([
                    "-n",
                    &ns.name,
                    "get",
                    "widget",
                    "w",
                    "-o",
                    "jsonpath={.spec.replicas}",
                ])
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout), "1");
        })
        .await;
}

/// A CRD with a /scale subresource, for custom-resource targets.
fn ns_crd(cluster: &Cluster) {
    let crd = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.test.swell.dev}
spec:
  group: test.swell.dev
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, properties: {replicas: {type: integer}}}
          status: {type: object, properties: {replicas: {type: integer}}}
"#;
    let mut c = cluster
        .kubectl()
        .args(["apply", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    c.stdin.take().unwrap().write_all(crd.as_bytes()).unwrap();
    assert!(c.wait().unwrap().success());
    let ok = cluster
        .kubectl()
        .args([
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/widgets.test.swell.dev",
        ])
        .status()
        .unwrap();
    assert!(ok.success());
}

#[tokio::test]
async fn missing_trigger_authentication_is_named() {
    let cluster = cluster();
    cluster
        .with_namespace("op-noauth", |ns| async move {
            let source = MetricServer::start(10.0).await;
            ns.apply(cluster, &deployment("app", 0)).unwrap();
            let so_yaml = scaled_object("app", "app", &source.url, "").replace(
                "activationTargetValue: \"3\"}",
                "activationTargetValue: \"3\"}\n    authenticationRef: {name: keda-trigger-auth-missing}",
            );
            ns.apply(cluster, &so_yaml).unwrap();
            let _op = Operator::start(cluster, swell(), &ns.name, None, &["--leader-elect=false"]);
            let c = wait_condition(&ns, "app", "Ready", "False/ScaledObjectCheckFailed").await;
            assert!(c.contains("TriggerAuthentication \"keda-trigger-auth-missing\" not found"), "{c}");
            wait_event(&ns, "ScaledObjectCheckFailed", "keda-trigger-auth-missing").await;
            assert_eq!(replicas(&ns, "app").await, Ok(0));

            // Creating it later heals the ScaledObject without touching the spec.
            ns.apply(cluster, "apiVersion: keda.sh/v1alpha1\nkind: TriggerAuthentication\nmetadata: {name: keda-trigger-auth-missing}\nspec: {}\n").unwrap();
            wait_condition(&ns, "app", "Ready", "True").await;
            wait_replicas(&ns, "app", 1).await;

            // As KEDA: the TriggerAuthentication gets KEDA's finalizer, its events, and a
            // status naming the ScaledObjects that use it.
            let tas = ns.api::<swell_api::TriggerAuthentication>();
            let name = "keda-trigger-auth-missing";
            let users = |want: Option<&'static str>| {
                let tas = tas.clone();
                async move {
                    let ta = tas.get(name).await.map_err(|e| e.to_string())?;
                    let fin = ta.metadata.finalizers.unwrap_or_default();
                    let got = ta.status.and_then(|s| s.scaledobjects);
                    if fin.contains(&"finalizer.keda.sh".to_string()) && got.as_deref() == want {
                        Ok(())
                    } else {
                        Err(format!("finalizers {fin:?}, scaledobjects {got:?}"))
                    }
                }
            };
            wait_until("the finalizer and status.scaledobjects", WAIT, || users(Some("app"))).await;
            wait_event(&ns, "TriggerAuthenticationAdded", "New TriggerAuthentication configured").await;
            ns.apply(cluster, "apiVersion: keda.sh/v1alpha1\nkind: TriggerAuthentication\nmetadata: {name: keda-trigger-auth-missing}\nspec: {secretTargetRef: []}\n").unwrap();
            wait_event(&ns, "ClusterTriggerAuthenticationUpdated", "keda-trigger-auth-missing is updated").await;
            ns.api::<ScaledObject>().delete("app", &Default::default()).await.unwrap();
            wait_until("status.scaledobjects emptied", WAIT, || users(None)).await;
            tas.delete(name, &Default::default()).await.unwrap();
            wait_until("the TriggerAuthentication to be deleted", WAIT, || async {
                match tas.get_opt(name).await.map_err(|e| e.to_string())? {
                    None => Ok(()),
                    Some(_) => Err("still there".to_string()),
                }
            })
            .await;
            wait_event(&ns, "TriggerAuthenticationDeleted", "TriggerAuthentication was deleted").await;
        })
        .await;
}

#[tokio::test]
async fn invalid_specs_are_reported_with_the_field() {
    let cluster = cluster();
    cluster
        .with_namespace("op-invalid", |ns| async move {
            let source = MetricServer::start(10.0).await;
            ns.apply(cluster, &deployment("app", 0)).unwrap();
            // The CRD's own validation refuses min > max before Swell sees it.
            let err = ns
                .apply(
                    cluster,
                    &scaled_object("bounds", "app", &source.url, "  minReplicaCount: 9"),
                )
                .expect_err("min > max is refused");
            let err = err.to_string();
            assert!(
                err.contains("minReplicaCount must be less than or equal to maxReplicaCount"),
                "{err}"
            );

            let unknown = scaled_object("unknown", "app", &source.url, "")
                .replace("type: metrics-api", "type: no-such-scaler");
            let bad_meta = scaled_object("badmeta", "app", &source.url, "")
                .replace("targetValue: \"2\"", "targetValue: \"lots\"");
            let idle = scaled_object(
                "idle",
                "app",
                &source.url,
                "  idleReplicaCount: 3\n  minReplicaCount: 2",
            );
            let good = scaled_object("good", "app2", &source.url, "");
            ns.apply(cluster, &deployment("app2", 0)).unwrap();
            for y in [&unknown, &bad_meta, &idle, &good] {
                ns.apply(cluster, y).unwrap();
            }
            let _op = Operator::start(cluster, swell(), &ns.name, None, &["--leader-elect=false"]);
            let c = wait_condition(&ns, "unknown", "Ready", "False/ScaledObjectCheckFailed").await;
            assert!(c.contains("unknown trigger type \"no-such-scaler\""), "{c}");
            let c = wait_condition(&ns, "badmeta", "Ready", "False/ScaledObjectCheckFailed").await;
            assert!(
                c.contains("triggers[0].metadata.targetValue: \"lots\" is not a number"),
                "{c}"
            );
            let c = wait_condition(&ns, "idle", "Ready", "False/ScaledObjectCheckFailed").await;
            assert!(c.contains("idleReplicaCount"), "{c}");
            // The broken ones disturb nothing else.
            wait_replicas(&ns, "app2", 1).await;
            assert_eq!(replicas(&ns, "app").await, Ok(0));
        })
        .await;
}

#[tokio::test]
async fn leader_hand_over_between_two_operators() {
    let cluster = cluster();
    cluster
        .with_namespace("op-leader", |ns| async move {
            let source = MetricServer::start(0.0).await;
            ns.apply(cluster, &deployment("app", 0)).unwrap();
            ns.apply(cluster, &scaled_object("app", "app", &source.url, ""))
                .unwrap();
            let args = ["--leader-elect=true", "--lease-duration", "4"];
            let mut a = Operator::start(
                cluster,
                swell(),
                &ns.name,
                None,
                &[&args[..], &["--identity", "a"]].concat(),
            );
            let mut b = Operator::start(
                cluster,
                swell(),
                &ns.name,
                None,
                &[&args[..], &["--identity", "b"]].concat(),
            );
            let holder = || async {
                let out = cluster
                    .kubectl()
                    .args([
                        "-n",
                        &ns.name,
                        "get",
                        "lease",
                        "swell-operator",
                        "-o",
                        "jsonpath={.spec.holderIdentity}",
                    ])
                    .output()
                    .map_err(|e| e.to_string())?;
                let h = String::from_utf8_lossy(&out.stdout).to_string();
                if h == "a" || h == "b" {
                    Ok(h)
                } else {
                    Err(format!("holder={h:?}"))
                }
            };
            let first = wait_until("a leader to hold the Lease", WAIT, holder).await;
            wait_condition(&ns, "app", "Ready", "True").await;
            // Only the leader logs reconciles.
            let (leader, follower) = if first == "a" {
                (&mut a, &mut b)
            } else {
                (&mut b, &mut a)
            };
            assert!(follower.log_text().contains("waiting for leadership"));
            assert!(!follower.log_text().contains("became leader"));
            leader.kill();
            let second = wait_until("the other operator to take the Lease", WAIT, || async {
                let h = holder().await?;
                if h != first {
                    Ok(h)
                } else {
                    Err(format!("still {h}"))
                }
            })
            .await;
            assert_ne!(first, second);
            assert!(follower.running());
            // The new leader scales.
            source.set(Reply::Value(10.0));
            wait_replicas(&ns, "app", 1).await;
            assert!(follower.log_text().contains("became leader"));
        })
        .await;
}

/// The leader killed while the HPA's path keeps reading: the surviving replica served the
/// metrics API as a follower and must keep answering through its own promotion (it adopts
/// the follower's scalers instead of starting empty), then scale as the new leader.
#[tokio::test(flavor = "multi_thread")]
async fn leader_kill_keeps_the_metrics_api_answering() {
    use common::metrics_api::{free_port, register, serving_args, take_apiservice};
    let cluster = cluster();
    cluster
        .with_namespace("op-failover", |ns| async move {
            let source = MetricServer::start(0.0).await;
            ns.apply(cluster, &deployment("app", 0)).unwrap();
            ns.apply(cluster, &scaled_object("app", "app", &source.url, ""))
                .unwrap();
            let lock = take_apiservice().await;
            let start = |identity: &str, port: u16| {
                let mut args: Vec<String> = ["--leader-elect=true", "--lease-duration", "4", "--identity", identity]
                    .map(String::from)
                    .to_vec();
                args.extend(serving_args(port));
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                Operator::start(cluster, swell(), &ns.name, None, &args)
            };
            // `a` leads first; `b` follows and is the one the aggregator reads.
            let mut a = start("a", free_port());
            wait_until("a to become leader", WAIT, || async {
                a.log_text()
                    .contains("became leader")
                    .then_some(())
                    .ok_or_else(|| "not yet".to_string())
            })
            .await;
            wait_condition(&ns, "app", "Ready", "True").await;
            let port = free_port();
            let b = start("b", port);
            let _guard = register(cluster, &ns, port, lock).await;
            let path = format!(
                "/apis/external.metrics.k8s.io/v1beta1/namespaces/{}/s0-metric-api-value?labelSelector=scaledobject.keda.sh%2Fname%3Dapp",
                ns.name
            );
            let read = || {
                let out = cluster.kubectl().args(["get", "--raw", &path]).output().unwrap();
                out.status.success().then_some(()).ok_or_else(|| String::from_utf8_lossy(&out.stderr).to_string())
            };
            wait_until("b to answer as a follower", WAIT, || async { read() }).await;

            a.kill();
            let (mut reads, mut failures) = (0, Vec::new());
            let promoted = std::time::Instant::now();
            // Through b's promotion and a few seconds past it.
            let (mut after, mut led) = (None, 0.0);
            while after.is_none_or(|t: std::time::Instant| t.elapsed().as_secs() < 3) {
                reads += 1;
                if let Err(e) = read() {
                    failures.push(e);
                }
                if after.is_none() && b.log_text().contains("became leader") {
                    after = Some(std::time::Instant::now());
                    led = promoted.elapsed().as_secs_f64();
                }
                assert!(promoted.elapsed() < WAIT, "b never became leader");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            eprintln!(
                "failover: {reads} metric reads, {} failed; b led {:.1}s after the kill",
                failures.len(),
                led
            );
            assert!(failures.is_empty(), "{failures:?}");
            // The new leader acts on the scalers it adopted, and the HPA reads them from it:
            // 10 / targetValue 2 = 5 replicas.
            source.set(Reply::Value(10.0));
            wait_replicas(&ns, "app", 5).await;
        })
        .await;
}

/// Drill: the operator killed with SIGKILL in the middle of scale cycles, three times, a new
/// one started each time; the workload follows the source every time (0 → 1 → 0), and
/// deleting the ScaledObject with the last operator restores the original 3 replicas and
/// leaves no HPA and no finalizer behind.
#[tokio::test]
async fn kill_9_during_scale_cycles_then_delete_restores_the_original() {
    let cluster = cluster();
    cluster
        .with_namespace("op-kill9", |ns| async move {
            let source = MetricServer::start(0.0).await;
            ns.apply(cluster, &deployment("app", 3)).unwrap();
            let restore = "  advanced: {restoreToOriginalReplicaCount: true}";
            ns.apply(cluster, &scaled_object("app", "app", &source.url, restore))
                .unwrap();
            let start =
                || Operator::start(cluster, swell(), &ns.name, None, &["--leader-elect=false"]);
            let mut op = start();
            wait_replicas(&ns, "app", 0).await;
            for cycle in 0..3 {
                source.set(Reply::Value(10.0));
                wait_replicas(&ns, "app", 1).await;
                op.kill();
                source.set(Reply::Value(0.0));
                op = start();
                wait_replicas(&ns, "app", 0).await;
                // Killed again right after it scaled down, before anything else settles.
                op.kill();
                op = start();
                eprintln!("kill -9 drill: cycle {cycle} done");
            }
            assert_eq!(
                so(&ns, "app").await.status.unwrap().original_replica_count,
                Some(3)
            );
            ns.api::<ScaledObject>()
                .delete("app", &Default::default())
                .await
                .unwrap();
            wait_replicas(&ns, "app", 3).await;
            wait_until("the ScaledObject and its HPA to be gone", WAIT, || async {
                let so = ns
                    .api::<ScaledObject>()
                    .get_opt("app")
                    .await
                    .map_err(|e| e.to_string())?;
                let hpa = ns
                    .api::<HorizontalPodAutoscaler>()
                    .get_opt("keda-hpa-app")
                    .await
                    .map_err(|e| e.to_string())?;
                match (so, hpa) {
                    (None, None) => Ok(()),
                    (so, hpa) => Err(format!(
                        "so={:?} hpa={}",
                        so.map(|s| s.metadata.finalizers),
                        hpa.is_some()
                    )),
                }
            })
            .await;
            drop(op);
        })
        .await;
}

/// KEDA_HTTP_DEFAULT_TIMEOUT in the operator's environment: a trigger without its own
/// timeout waits that long, so a source answering in 4 s (past KEDA's default 3 s) is read.
#[tokio::test]
async fn keda_http_default_timeout_sets_the_triggers_timeout() {
    let cluster = cluster();
    cluster
        .with_namespace("op-http-timeout", |ns| async move {
            let source = MetricServer::start(0.0).await;
            source.set(Reply::Slow(Duration::from_secs(4), 10.0));
            ns.apply(cluster, &deployment("app", 0)).unwrap();
            ns.apply(cluster, &scaled_object("app", "app", &source.url, ""))
                .unwrap();
            let args = ["--leader-elect=false"];
            let env = [("KEDA_HTTP_DEFAULT_TIMEOUT", "10000")];
            let _op = Operator::start_env(cluster, swell(), &ns.name, None, &args, &env);
            wait_replicas(&ns, "app", 1).await;
            let ready = condition(&so(&ns, "app").await, "Ready");
            assert!(!ready.contains("TriggerError"), "no timeout: {ready}");
        })
        .await;
}

/// Drill: a source that accepts the connection and never answers. The trigger fails on
/// the scaler's timeout (named in Ready), the busy workload is never scaled to zero well
/// past its cooldown, and it recovers when the source answers again.
#[tokio::test]
async fn a_hanging_source_never_scales_to_zero() {
    let cluster = cluster();
    cluster
        .with_namespace("op-hang", |ns| async move {
            let source = MetricServer::start(10.0).await;
            ns.apply(cluster, &deployment("app", 0)).unwrap();
            ns.apply(cluster, &scaled_object("app", "app", &source.url, ""))
                .unwrap();
            let _op = Operator::start(cluster, swell(), &ns.name, None, &["--leader-elect=false"]);
            wait_replicas(&ns, "app", 1).await;
            source.set(Reply::Hang);
            let ready = wait_condition(&ns, "app", "Ready", "False/TriggerError").await;
            assert!(
                ready.to_lowercase().contains("time"),
                "names the timeout: {ready}"
            );
            tokio::time::sleep(Duration::from_secs(6)).await;
            assert_eq!(replicas(&ns, "app").await, Ok(1), "never scaled to zero");
            source.set(Reply::Value(10.0));
            // The trigger recovered; what is left is the HPA's own problem (this operator
            // serves no metrics API), which Ready now names instead of the timeout.
            wait_condition(&ns, "app", "Ready", "False/FailedGetExternalMetric").await;
            assert_eq!(replicas(&ns, "app").await, Ok(1));
        })
        .await;
}
