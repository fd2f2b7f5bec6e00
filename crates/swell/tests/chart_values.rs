//! KEDA values compatibility of the Helm chart (docs/keda-values.md): Swell's chart rendered
//! with KEDA 2.20.2's own default values file and with realistic KEDA values files (IRSA on
//! EKS; ServiceMonitor + PrometheusRule + PDB + NetworkPolicy; custom CA volume + extra env +
//! priority class), each server-side dry-run against the real API server and its objects
//! asserted; KEDA keys that cannot apply to Swell's one Deployment fail `helm template` with
//! a message naming the key, and only when they differ from KEDA's default.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::helm::{Ran, chart_dir, helm, run};
use serde_json::{Value, json};
use swell_testkit::Cluster;

const KEDA_DEFAULTS: &str = "keda-2.20.2-values.yaml";
const IRSA: &str = "irsa-eks.yaml";
const MONITORING: &str = "monitoring-pdb-netpol.yaml";
const CUSTOM_CA: &str = "custom-ca-env-priority.yaml";
const ROLE: &str = "arn:aws:iam::111122223333:role/keda-operator";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/chart-values")
        .join(name)
}

/// `helm template keda charts/swell -n NS -f FILE… ARGS…`.
fn render(cluster: &Cluster, namespace: &str, files: &[&str], args: &[&str]) -> Ran {
    let mut cmd = helm(cluster);
    cmd.args(["template", "keda"])
        .arg(chart_dir())
        .args(["--namespace", namespace]);
    for f in files {
        cmd.arg("-f").arg(fixture(f));
    }
    run(cmd.args(args), None)
}

/// The rendered objects, parsed.
fn objects(yaml: &str) -> Vec<Value> {
    let docs: Vec<Value> = serde_saphyr::from_str_multiple(yaml)
        .unwrap_or_else(|e| panic!("rendered YAML does not parse: {e}\n{yaml}"));
    docs.into_iter().filter(|d| d.is_object()).collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| {
            let have: Vec<String> = objects
                .iter()
                .map(|o| format!("{}/{}", o["kind"], o["metadata"]["name"]))
                .collect();
            panic!("no {kind} {name} among {have:?}")
        })
}

fn container(objects: &[Value]) -> &Value {
    &find(objects, "Deployment", "keda-operator")["spec"]["template"]["spec"]["containers"][0]
}

fn args(objects: &[Value]) -> Vec<String> {
    container(objects)["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

fn env(objects: &[Value], name: &str) -> Option<String> {
    container(objects)["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .map(|e| e["value"].as_str().unwrap_or_default().to_string())
}

/// `kubectl apply --dry-run=server` of everything rendered; every object must be accepted.
/// Other test binaries write the same CRDs and RBAC at the same time: an
/// optimistic-concurrency conflict is retried, anything else fails.
fn dry_run(cluster: &Cluster, yaml: &str) {
    let apply = || {
        run(
            cluster
                .kubectl()
                .args(["apply", "--dry-run=server", "-f", "-"]),
            Some(yaml),
        )
    };
    let mut ran = apply();
    for _ in 0..2 {
        if ran.ok || !ran.text().contains("the object has been modified") {
            break;
        }
        ran = apply();
    }
    assert!(
        ran.ok,
        "kubectl apply --dry-run=server failed:\n{}",
        ran.text()
    );
    let accepted = ran
        .stdout
        .lines()
        .filter(|l| l.ends_with("(server dry run)"))
        .count();
    assert_eq!(
        accepted,
        objects(yaml).len(),
        "every object accepted:\n{}",
        ran.stdout
    );
}

/// Renders, dry-runs and parses; panics with Helm's message when rendering fails.
fn render_ok(cluster: &Cluster, namespace: &str, files: &[&str], args: &[&str]) -> Vec<Value> {
    let ran = render(cluster, namespace, files, args);
    assert!(
        ran.ok,
        "helm template {files:?} {args:?} failed:\n{}",
        ran.text()
    );
    dry_run(cluster, &ran.stdout);
    objects(&ran.stdout)
}

/// The chart's copy of KEDA's defaults (what it compares values with) is the fixture.
#[test]
fn chart_carries_keda_default_values_verbatim() {
    let fixture = std::fs::read_to_string(fixture(KEDA_DEFAULTS)).unwrap();
    let chart = std::fs::read_to_string(chart_dir().join("files/keda-values.yaml")).unwrap();
    assert!(
        fixture == chart,
        "charts/swell/files/keda-values.yaml differs from the fixture"
    );
    assert!(fixture.contains("1444d00d90d7668cf7f53f270777d039371d90d0"));
    assert!(fixture.contains("\nserviceAccount:\n  operator:\n"));
}

#[test]
fn helm_lint_passes_with_keda_values() {
    let cluster = Cluster::shared();
    for files in [
        vec![KEDA_DEFAULTS],
        vec![IRSA],
        vec![MONITORING],
        vec![CUSTOM_CA],
        vec![KEDA_DEFAULTS, CUSTOM_CA],
    ] {
        let mut cmd = helm(cluster);
        cmd.args(["lint", "--strict"]).arg(chart_dir());
        for f in &files {
            cmd.arg("-f").arg(fixture(f));
        }
        let ran = run(&mut cmd, None);
        assert!(ran.ok, "helm lint --strict {files:?}:\n{}", ran.text());
    }
}

/// KEDA's own values.yaml installs unchanged, with KEDA's meaning: one replica, KEDA's probe
/// timings, console logs as text, TLS 1.3 on the served ports, the ServiceAccount
/// keda-operator, the webhook with failurePolicy Ignore, the metrics API.
#[tokio::test]
async fn keda_default_values_render_and_dry_run() {
    let cluster = common::cluster();
    cluster
        .with_namespace("chart-keda-defaults", |ns| async move {
            let objects = render_ok(cluster, &ns.name, &[KEDA_DEFAULTS], &["--include-crds"]);
            let d = find(&objects, "Deployment", "keda-operator");
            assert_eq!(d["spec"]["replicas"], 1);
            assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
            let pod = &d["spec"]["template"]["spec"];
            assert_eq!(pod["serviceAccountName"], "keda-operator");
            assert_eq!(pod["dnsPolicy"], "ClusterFirst");
            assert_eq!(pod["enableServiceLinks"], true);
            assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
            let c = container(&objects);
            assert_eq!(c["imagePullPolicy"], "Always");
            assert_eq!(
                c["livenessProbe"],
                json!({"httpGet": {"path": "/healthz", "port": "metrics", "scheme": "HTTP"},
                       "initialDelaySeconds": 25, "periodSeconds": 10, "timeoutSeconds": 1,
                       "failureThreshold": 3, "successThreshold": 1})
            );
            assert_eq!(c["readinessProbe"]["initialDelaySeconds"], 20);
            assert_eq!(c["resources"]["limits"]["memory"], "1000Mi");
            assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
            let a = args(&objects);
            for want in [
                "--log-level=info",
                "--log-format=text",
                "--metrics-api=true",
                "--webhook=true",
                "--metrics-bind-address=0.0.0.0:8080",
                "--metrics-api-bind-address=0.0.0.0:6443",
            ] {
                assert!(a.contains(&want.to_string()), "{want} not in {a:?}");
            }
            // KEDA's defaults are the binary's own: no flag for them.
            assert!(!a.iter().any(|x| x.starts_with("--k8s-cluster")), "{a:?}");
            assert_eq!(
                env(&objects, "SWELL_MIN_TLS_VERSION").as_deref(),
                Some("TLS13")
            );
            assert_eq!(
                env(&objects, "KEDA_HTTP_DEFAULT_TIMEOUT").as_deref(),
                Some("3000")
            );
            assert_eq!(
                env(&objects, "KEDA_HTTP_MIN_TLS_VERSION").as_deref(),
                Some("TLS12")
            );
            assert_eq!(env(&objects, "KEDA_HTTP_DISABLE_KEEP_ALIVE"), None);
            let hook = find(
                &objects,
                "ValidatingWebhookConfiguration",
                "keda-operator-admission",
            );
            assert_eq!(hook["webhooks"][0]["failurePolicy"], "Ignore");
            assert_eq!(hook["webhooks"][0]["timeoutSeconds"], 10);
            let api = find(&objects, "Service", "keda-operator-metrics-apiserver");
            assert_eq!(api["spec"]["type"], "ClusterIP");
            assert_eq!(api["spec"]["ports"][0]["port"], 443);
            find(&objects, "APIService", "v1beta1.external.metrics.k8s.io");
            find(
                &objects,
                "CustomResourceDefinition",
                "scaledobjects.keda.sh",
            );
            let sa = find(&objects, "ServiceAccount", "keda-operator");
            assert!(sa["metadata"]["annotations"].is_null(), "{sa}");
            for kind in ["PodDisruptionBudget", "NetworkPolicy", "ServiceMonitor"] {
                assert!(
                    !objects.iter().any(|o| o["kind"] == kind),
                    "{kind} rendered"
                );
            }
        })
        .await;
}

/// The seed's IRSA set up in KEDA 2.20's spelling, alone and on top of KEDA's defaults.
#[tokio::test]
async fn irsa_on_eks_values_render_and_dry_run() {
    let cluster = common::cluster();
    cluster
        .with_namespace("chart-irsa", |ns| async move {
            for files in [vec![IRSA], vec![KEDA_DEFAULTS, IRSA]] {
                let objects = render_ok(cluster, &ns.name, &files, &[]);
                let sa = find(&objects, "ServiceAccount", "keda-operator");
                assert_eq!(
                    sa["metadata"]["annotations"],
                    json!({
                        "eks.amazonaws.com/role-arn": ROLE,
                        "eks.amazonaws.com/audience": "sts.amazonaws.com",
                        "eks.amazonaws.com/sts-regional-endpoints": "true",
                        "eks.amazonaws.com/token-expiration": "3600",
                    }),
                    "{files:?}"
                );
                let d = find(&objects, "Deployment", "keda-operator");
                assert_eq!(d["spec"]["replicas"], 2);
                assert_eq!(
                    d["spec"]["template"]["spec"]["serviceAccountName"],
                    "keda-operator"
                );
                assert_eq!(env(&objects, "AWS_REGION").as_deref(), Some("eu-west-1"));
                let a = args(&objects);
                assert!(a.contains(&"--log-level=debug".into()), "{a:?}");
                assert!(a.contains(&"--log-format=json".into()), "{a:?}");
                let binding = find(&objects, "ClusterRoleBinding", "keda-operator");
                assert_eq!(binding["subjects"][0]["name"], "keda-operator");
            }
        })
        .await;
}

/// Minimal monitoring.coreos.com CRDs (schema-less) so the API server can dry-run the
/// Prometheus Operator objects; deleted when dropped. The test cluster has no Prometheus
/// Operator: what these objects say is asserted on the rendered YAML.
struct MonitoringCrds<'a>(&'a Cluster);

impl<'a> MonitoringCrds<'a> {
    fn install(cluster: &'a Cluster) -> Self {
        let crd = |plural: &str, kind: &str| {
            format!(
                "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {plural}.monitoring.coreos.com
  labels: {{swell.dev/test: chart-values}}
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {{plural: {plural}, kind: {kind}, singular: {}}}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}
---
",
                kind.to_lowercase()
            )
        };
        let yaml = [
            crd("servicemonitors", "ServiceMonitor"),
            crd("podmonitors", "PodMonitor"),
            crd("prometheusrules", "PrometheusRule"),
        ]
        .concat();
        let ran = run(cluster.kubectl().args(["apply", "-f", "-"]), Some(&yaml));
        assert!(ran.ok, "{}", ran.text());
        let ran = run(
            cluster.kubectl().args([
                "wait",
                "--for=condition=Established",
                "crd",
                "-l",
                "swell.dev/test=chart-values",
            ]),
            None,
        );
        assert!(ran.ok, "{}", ran.text());
        MonitoringCrds(cluster)
    }
}

impl Drop for MonitoringCrds<'_> {
    fn drop(&mut self) {
        let _ = self
            .0
            .kubectl()
            .args([
                "delete",
                "crd",
                "-l",
                "swell.dev/test=chart-values",
                "--wait=false",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// ServiceMonitor (plain HTTP), PrometheusRule (KEDA's `alerts` as a group), PodMonitor,
/// PodDisruptionBudget and one NetworkPolicy for the one pod.
#[tokio::test]
async fn monitoring_pdb_and_network_policy_render_and_dry_run() {
    let cluster = common::cluster();
    let _crds = MonitoringCrds::install(cluster);
    cluster
        .with_namespace("chart-monitoring", |ns| async move {
            for files in [vec![MONITORING], vec![KEDA_DEFAULTS, MONITORING]] {
                let objects = render_ok(
                    cluster,
                    &ns.name,
                    &files,
                    &["--set", "prometheus.operator.podMonitor.enabled=true"],
                );
                let sm = find(&objects, "ServiceMonitor", "keda-operator");
                assert_eq!(sm["metadata"]["namespace"], ns.name.as_str());
                assert_eq!(sm["metadata"]["labels"]["release"], "kube-prometheus-stack");
                let ep = &sm["spec"]["endpoints"][0];
                assert_eq!(ep["port"], "metrics");
                assert_eq!(ep["scheme"], "http");
                assert_eq!(ep["path"], "/metrics");
                assert_eq!(ep["interval"], "30s");
                assert_eq!(ep["relabelings"][0]["targetLabel"], "node");
                // It selects the metrics Service, and only that one.
                let selector = sm["spec"]["selector"]["matchLabels"].as_object().unwrap();
                let selected: Vec<&Value> = objects
                    .iter()
                    .filter(|o| o["kind"] == "Service")
                    .filter(|o| {
                        selector
                            .iter()
                            .all(|(k, v)| &o["metadata"]["labels"][k.as_str()] == v)
                    })
                    .collect();
                assert_eq!(selected.len(), 1, "{selected:?}");
                assert_eq!(selected[0]["spec"]["ports"][0]["name"], "metrics");
                let pm = find(&objects, "PodMonitor", "keda-operator");
                assert_eq!(pm["spec"]["podMetricsEndpoints"][0]["scheme"], "http");

                let rule = find(&objects, "PrometheusRule", "keda-operator");
                let groups = rule["spec"]["groups"].as_array().unwrap();
                let extra = groups
                    .iter()
                    .find(|g| g["name"] == "keda-operator")
                    .unwrap();
                assert_eq!(extra["rules"][0]["alert"], "KedaScalerErrors");
                assert!(
                    extra["rules"][0]["annotations"]["summary"]
                        .as_str()
                        .unwrap()
                        .contains("{{ $labels.scaler }}")
                );

                let pdb = find(&objects, "PodDisruptionBudget", "keda-operator");
                assert_eq!(pdb["spec"]["minAvailable"], 1);
                let pod_labels = &find(&objects, "Deployment", "keda-operator")["spec"]["template"]
                    ["metadata"]["labels"];
                for (k, v) in pdb["spec"]["selector"]["matchLabels"].as_object().unwrap() {
                    assert_eq!(&pod_labels[k.as_str()], v, "PDB selects the pods");
                }

                let np = find(&objects, "NetworkPolicy", "keda-operator");
                let ports: Vec<i64> = np["spec"]["ingress"][0]["ports"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p["port"].as_i64().unwrap())
                    .collect();
                assert_eq!(ports, [8080, 6443, 9443], "metrics, metrics API, webhook");
                let egress = np["spec"]["egress"].as_array().unwrap();
                assert_eq!(egress.len(), 4, "{egress:?}");
                assert_eq!(egress[3]["to"][0]["ipBlock"]["cidr"], "0.0.0.0/0");
            }
        })
        .await;
}

/// A custom CA at /custom/ca (declared twice, kept once), extra env, a priority class from
/// extraObjects, KEDA's HTTP settings, label selector, cluster name, strategy, labels and
/// annotations on every object.
#[tokio::test]
async fn custom_ca_env_and_priority_class_render_and_dry_run() {
    let cluster = common::cluster();
    cluster
        .with_namespace("chart-custom-ca", |ns| async move {
            for files in [vec![CUSTOM_CA], vec![KEDA_DEFAULTS, CUSTOM_CA]] {
                let objects = render_ok(cluster, &ns.name, &files, &[]);
                let pc = find(&objects, "PriorityClass", "keda-critical");
                assert_eq!(pc["description"], "Autoscaling (keda)");
                let d = find(&objects, "Deployment", "keda-operator");
                assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 0);
                let pod = &d["spec"]["template"];
                assert_eq!(pod["spec"]["priorityClassName"], "keda-critical");
                assert_eq!(
                    pod["metadata"]["annotations"]["owner"],
                    "platform@corp.example"
                );
                assert_eq!(
                    pod["spec"]["volumes"],
                    json!([{"name": "custom-ca", "secret": {"secretName": "corp-ca"}}])
                );
                let c = container(&objects);
                assert_eq!(
                    c["volumeMounts"],
                    json!([{"name": "custom-ca", "mountPath": "/custom/ca", "readOnly": true}])
                );
                let a = args(&objects);
                assert!(a.contains(&"--ca-dir=/custom/ca".into()), "{a:?}");
                assert!(a.contains(&"--k8s-cluster-name=prod-eu".into()), "{a:?}");
                for (name, value) in [
                    ("HTTPS_PROXY", "http://proxy.corp.example:3128"),
                    ("KEDA_OPERATOR_LEADER_ELECTION_LEASE_DURATION", "30s"),
                    ("KEDA_HTTP_DEFAULT_TIMEOUT", "5000"),
                    ("KEDA_HTTP_DISABLE_KEEP_ALIVE", "true"),
                    ("WATCH_LABEL_SELECTOR", "tier in (gold,silver)"),
                ] {
                    assert_eq!(env(&objects, name).as_deref(), Some(value), "{name}");
                }
                for o in &objects {
                    if o["kind"] == "PriorityClass" || o["kind"] == "CustomResourceDefinition" {
                        continue;
                    }
                    let m = &o["metadata"];
                    assert_eq!(m["labels"]["team"], "platform", "{}", o["kind"]);
                    assert_eq!(
                        m["annotations"]["owner"], "platform@corp.example",
                        "{}",
                        o["kind"]
                    );
                }
            }
        })
        .await;
}

/// KEDA keys and how they land: refused ones fail naming the key (only when changed from
/// KEDA's default), per-component ones must agree with the operator's, and KEDA's
/// spellings of Swell's own settings win.
#[test]
fn keda_keys_are_refused_by_name_or_applied() {
    let cluster = Cluster::shared();
    // (values, expected words in the failure)
    let refused: &[(&str, &[&str])] = &[
        (
            "certificates.certManager.enabled=true",
            &[
                "certificates.certManager",
                "metricsApi.certificate.secretName",
            ],
        ),
        (
            "podIdentity.azureWorkload.enabled=true",
            &["podIdentity.azureWorkload", "Azure Workload Identity"],
        ),
        ("podIdentity.gcp.enabled=true", &["podIdentity.gcp"]),
        ("crds.install=false", &["crds.install", "--skip-crds"]),
        (
            "image.keda.registry=registry.corp.example",
            &["image.keda", "image.repository"],
        ),
        (
            "metricsServer.replicaCount=3",
            &[
                "metricsServer.replicaCount",
                "operator.replicaCount",
                "one Deployment",
            ],
        ),
        (
            "resources.metricServer.limits.cpu=2",
            &["resources.metricServer", "resources.operator"],
        ),
        (
            "webhooks.affinity.podAntiAffinity.x=y",
            &["webhooks.affinity", "operator.affinity"],
        ),
        (
            "networkPolicy.enabled=true",
            &["networkPolicy.flavor=cilium", "kubernetes"],
        ),
        (
            "logging.operator.level=2",
            &["logging.operator.level=2", "debug"],
        ),
        (
            "logging.operator.timeEncoding=epoch",
            &["logging.operator.timeEncoding"],
        ),
        (
            "logging.metricServer.zapLevel=debug",
            &["logging.metricServer"],
        ),
        ("http.maxIdleConns=10", &["http.maxIdleConns"]),
        (
            "webhooks.port=9444",
            &["webhooks.port", "webhook.bindAddress"],
        ),
        (
            "profiling.webhooks.enabled=true",
            &["profiling.webhooks", "pprof"],
        ),
        (
            "profiling.operator.enabled=true",
            &["profiling.operator", "no Go pprof endpoint"],
        ),
        (
            "metrics.tls.auth=true",
            &["metrics.tls.auth needs metrics.tls.enabled"],
        ),
        (
            "prometheus.webhooks.serviceMonitor.enabled=true",
            &["prometheus.webhooks.serviceMonitor"],
        ),
        (
            "prometheus.operator.serviceMonitor.enabled=true,prometheus.operator.serviceMonitor.scheme=https",
            &["scheme=https", "metrics.tls.enabled"],
        ),
        (
            "extraArgs.metricsAdapter.v=4",
            &["extraArgs.metricsAdapter"],
        ),
        (
            "podAnnotations.keda.a=1,podAnnotations.webhooks.a=2",
            &["pod annotations", "\"a\""],
        ),
        (
            "podDisruptionBudget.operator.minAvailable=1,podDisruptionBudget.operator.maxUnavailable=1",
            &["not both"],
        ),
    ];
    for (set, words) in refused {
        let ran = render(cluster, "keda", &[KEDA_DEFAULTS], &["--set", set]);
        assert!(!ran.ok, "--set {set} rendered:\n{}", ran.stdout);
        for w in *words {
            assert!(
                ran.stderr.contains(w),
                "--set {set}: {w:?} not in\n{}",
                ran.stderr
            );
        }
    }

    // (values, Deployment/webhook facts that must hold)
    let applied: &[(&str, &str)] = &[
        // The three components agree: fine.
        (
            "operator.replicaCount=3,metricsServer.replicaCount=3,webhooks.replicaCount=3",
            "replicas: 3",
        ),
        ("webhooks.enabled=false", "- --webhook=false"),
        ("webhooks.failurePolicy=Fail", "failurePolicy: Fail"),
        ("webhooks.timeoutSeconds=5", "timeoutSeconds: 5"),
        ("metricsServer.enabled=false", "- --metrics-api=false"),
        (
            "prometheus.operator.port=9090",
            "- --metrics-bind-address=0.0.0.0:9090",
        ),
        (
            "service.portHttpsTarget=7443",
            "- --metrics-api-bind-address=0.0.0.0:7443",
        ),
        (
            "operator.leaderElectionID=keda-lease",
            "- --leader-election-id=keda-lease",
        ),
        (
            "opentelemetry.operator.enabled=true",
            "- --enable-opentelemetry-metrics=true",
        ),
        (
            "opentelemetry.collector.uri=http://otel:4318",
            "value: \"http://otel:4318\"",
        ),
        ("extraArgs.keda.kube-api-qps=40", "- \"--kube-api-qps=40\""),
        (
            "clusterDomain=corp.local",
            "- --k8s-cluster-domain=corp.local",
        ),
        (
            "certificates.operator.apiServicePatching.enabled=false",
            "- --metrics-api-apiservice=\n",
        ),
        (
            "permissions.operator.restrict.secret=true",
            "name: SWELL_CREDENTIALS_NAMESPACE",
        ),
        (
            "global.image.registry=registry.corp.example",
            "image: \"registry.corp.example/swell:",
        ),
        (
            "priorityClassName.operator=high",
            "priorityClassName: \"high\"",
        ),
        (
            "podAnnotations.keda.a=1,podAnnotations.webhooks.b=2",
            "b: \"2\"",
        ),
        ("metrics.tls.enabled=true", "scheme: HTTPS"),
        (
            "metrics.tls.enabled=true,metrics.tls.auth=true",
            "- --metrics-auth=true",
        ),
        (
            "rbac.controlPlaneServiceAccountsNamespace=kube-auth",
            "namespace: kube-auth",
        ),
        (
            "customManagedBy=argocd",
            "app.kubernetes.io/managed-by: argocd",
        ),
        (
            "rbac.aggregateToDefaultRoles=true",
            "rbac.authorization.k8s.io/aggregate-to-view: \"true\"",
        ),
    ];
    // Without KEDA's file: `--set` cannot add keys below its nulls (certificates.operator)
    // nor turn its string priorityClassName into a map.
    for (set, want) in applied {
        let ran = render(cluster, "keda", &[], &["--set", set]);
        assert!(ran.ok, "--set {set}:\n{}", ran.text());
        assert!(
            ran.stdout.contains(want),
            "--set {set}: {want:?} not in\n{}",
            ran.stdout
        );
    }
    // Swell's own spellings keep working without KEDA's file.
    let ran = render(
        cluster,
        "keda",
        &[],
        &[
            "--set",
            "webhook.failurePolicy=Fail,resources.operator=null,resources.limits.cpu=3",
        ],
    );
    assert!(ran.ok, "{}", ran.text());
    assert!(ran.stdout.contains("failurePolicy: Fail"), "{}", ran.stdout);
    assert!(ran.stdout.contains("cpu: 3"), "{}", ran.stdout);
}
