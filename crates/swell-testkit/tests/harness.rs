//! Proves the harness is real: a real scheduler and kwok run pods, the real job and HPA
//! controllers act, the aggregation layer proxies to a server on loopback, ServiceAccount
//! tokens carry only their RBAC, and local AWS enforces IAM.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde_json::json;
use swell_testkit::{Cluster, wait_until};

const WAIT: Duration = Duration::from_secs(120);

fn from_json<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).expect("test fixture is valid")
}

#[tokio::test]
async fn deployment_pods_become_running_and_ready() {
    let cluster = Cluster::shared();
    cluster
        .with_namespace("harness-deploy", |ns| async move {
            let deploy: Deployment = from_json(json!({
                "metadata": {"name": "web"},
                "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                  "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}}
            }));
            ns.api::<Deployment>()
                .create(&PostParams::default(), &deploy)
                .await
                .unwrap();
            let pods = ns.api::<Pod>();
            wait_until(
                "2 pods Running and Ready on the kwok node",
                WAIT,
                || async {
                    let list = pods
                        .list(&ListParams::default().labels("app=web"))
                        .await
                        .map_err(|e| e.to_string())?;
                    let summary: Vec<String> = list
                        .items
                        .iter()
                        .map(|p| {
                            let s = p.status.clone().unwrap_or_default();
                            let ready = s
                                .conditions
                                .unwrap_or_default()
                                .iter()
                                .any(|c| c.type_ == "Ready" && c.status == "True");
                            format!(
                                "{}:{}:{}:ready={ready}",
                                p.metadata.name.clone().unwrap_or_default(),
                                s.phase.unwrap_or_default(),
                                p.spec
                                    .as_ref()
                                    .and_then(|s| s.node_name.clone())
                                    .unwrap_or_default()
                            )
                        })
                        .collect();
                    let ok = summary
                        .iter()
                        .filter(|s| s.contains(":Running:kwok-node-0:ready=true"))
                        .count()
                        == 2;
                    if ok {
                        Ok(())
                    } else {
                        Err(format!("{summary:?}"))
                    }
                },
            )
            .await;
            let d = ns.api::<Deployment>();
            wait_until("deployment reports 2 ready replicas", WAIT, || async {
                let s = d
                    .get("web")
                    .await
                    .map_err(|e| e.to_string())?
                    .status
                    .unwrap_or_default();
                if s.ready_replicas == Some(2) {
                    Ok(())
                } else {
                    Err(format!("{s:?}"))
                }
            })
            .await;
        })
        .await;
}

#[tokio::test]
async fn job_completes() {
    let cluster = Cluster::shared();
    cluster
        .with_namespace("harness-job", |ns| async move {
            let job: Job = from_json(json!({
                "metadata": {"name": "once"},
                "spec": {"template": {"spec": {"restartPolicy": "Never",
                    "containers": [{"name": "work", "image": "busybox", "command": ["true"]}]}}}
            }));
            let jobs = ns.api::<Job>();
            jobs.create(&PostParams::default(), &job).await.unwrap();
            wait_until("the Job to report Complete", WAIT, || async {
                let s = jobs
                    .get("once")
                    .await
                    .map_err(|e| e.to_string())?
                    .status
                    .unwrap_or_default();
                let done = s
                    .conditions
                    .clone()
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Complete" && c.status == "True");
                if done && s.succeeded == Some(1) {
                    Ok(())
                } else {
                    Err(format!("{s:?}"))
                }
            })
            .await;
        })
        .await;
}

#[tokio::test]
async fn hpa_controller_reports_missing_external_metrics() {
    let cluster = Cluster::shared();
    cluster
        .with_namespace("harness-hpa", |ns| async move {
            let deploy: Deployment = from_json(json!({
                "metadata": {"name": "app"},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "app"}},
                  "template": {"metadata": {"labels": {"app": "app"}},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}
            }));
            ns.api::<Deployment>().create(&PostParams::default(), &deploy).await.unwrap();
            let hpa: HorizontalPodAutoscaler = from_json(json!({
                "metadata": {"name": "app"},
                "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "app"},
                  "minReplicas": 1, "maxReplicas": 5,
                  "metrics": [{"type": "External", "external": {
                     "metric": {"name": "s0-queue", "selector": {"matchLabels": {"scaledobject.keda.sh/name": "app"}}},
                     "target": {"type": "AverageValue", "averageValue": "5"}}}]}
            }));
            let hpas = ns.api::<HorizontalPodAutoscaler>();
            hpas.create(&PostParams::default(), &hpa).await.unwrap();
            wait_until("the HPA controller to report FailedGetExternalMetric", WAIT, || async {
                let s = hpas.get("app").await.map_err(|e| e.to_string())?.status.unwrap_or_default();
                let conds = s.conditions.unwrap_or_default();
                if conds.iter().any(|c| c.type_ == "ScalingActive" && c.status == "False"
                    && c.reason.as_deref() == Some("FailedGetExternalMetric")) {
                    Ok(())
                } else {
                    Err(format!("{conds:?}"))
                }
            }).await;
        })
        .await;
}

#[tokio::test]
async fn service_account_token_carries_only_its_rbac() {
    let cluster = Cluster::shared();
    cluster
        .with_namespace("harness-sa", |ns| async move {
            ns.apply(
                cluster,
                r#"
apiVersion: v1
kind: ServiceAccount
metadata: {name: reader}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: read-pods}
rules: [{apiGroups: [""], resources: [pods], verbs: [list]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: reader}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: read-pods}
subjects: [{kind: ServiceAccount, name: reader}]
"#,
            )
            .unwrap();
            let client = cluster.service_account_client(&ns.name, "reader").await;
            let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
            pods.list(&ListParams::default())
                .await
                .expect("the role grants list pods");
            let sas: Api<ServiceAccount> = Api::namespaced(client, &ns.name);
            match sas.list(&ListParams::default()).await {
                Err(kube::Error::Api(s)) if s.code == 403 => {
                    assert!(
                        s.message
                            .contains(&format!("system:serviceaccount:{}:reader", ns.name)),
                        "{}",
                        s.message
                    );
                }
                other => panic!("expected 403 listing serviceaccounts, got {other:?}"),
            }
        })
        .await;
}
