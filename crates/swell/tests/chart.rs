//! The Helm chart (charts/swell) against the real local control plane: it lints, renders
//! to objects the API server accepts, installs, upgrades and uninstalls, ships the CRDs
//! `swell crds` prints, and `swell operator` run with the chart's own command line as the
//! chart's ServiceAccount gets through a whole scale cycle and serves the external metrics
//! API on its RBAC alone (while a missing rule shows up, named, in the ScaledObject's status).

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::helm::{chart_dir, helm, run};
use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, ServiceAccount};
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::Api;
use kube::api::{DeleteParams, ListParams};
use swell_api::ScaledObject;
use swell_testkit::{Cluster, MetricServer, Operator, Reply, TestNamespace, wait_until};

/// The seed scenario's values.yaml ("KEDA in Amazon EKS", Part 1), verbatim but for the
/// Terraform variable.
const SEED_VALUES: &str = "serviceAccount:
  annotations:
    eks.amazonaws.com/role-arn: arn:aws:iam::111122223333:role/keda-operator
";
const SEED_ROLE: &str = "arn:aws:iam::111122223333:role/keda-operator";
const SERVICE_ACCOUNT: &str = "keda-operator";

/// Writes the seed scenario's values.yaml and returns its path.
fn seed_values(cluster: &Cluster) -> PathBuf {
    let path = cluster.dir.join(format!(
        "seed-values-{}.yaml",
        swell_testkit::unique_suffix()
    ));
    std::fs::write(&path, SEED_VALUES).unwrap();
    path
}

/// `helm template RELEASE charts/swell --namespace NS ARGS…`, panicking with Helm's output
/// when it fails.
fn template(cluster: &Cluster, release: &str, namespace: &str, args: &[&str]) -> String {
    let ran = run(
        helm(cluster)
            .args(["template", release])
            .arg(chart_dir())
            .args(["--namespace", namespace])
            .args(args),
        None,
    );
    assert!(ran.ok, "helm template failed:\n{}", ran.text());
    ran.stdout
}

/// Objects applied for real from rendered YAML, deleted again (cluster-scoped ones too)
/// when dropped, pass or fail.
struct Applied {
    kubectl: PathBuf,
    kubeconfig: PathBuf,
    file: PathBuf,
}

impl Applied {
    fn apply(cluster: &Cluster, yaml: &str) -> Applied {
        let file = cluster.dir.join(format!(
            "chart-rbac-{}.yaml",
            swell_testkit::unique_suffix()
        ));
        std::fs::write(&file, yaml).unwrap();
        let applied = Applied {
            kubectl: cluster.bin.join("kubectl"),
            kubeconfig: cluster.kubeconfig.clone(),
            file,
        };
        let ran = run(
            cluster.kubectl().arg("apply").arg("-f").arg(&applied.file),
            None,
        );
        assert!(ran.ok, "kubectl apply failed:\n{}", ran.text());
        applied
    }
}

impl Drop for Applied {
    fn drop(&mut self) {
        let _ = Command::new(&self.kubectl)
            .env("KUBECONFIG", &self.kubeconfig)
            .args(["delete", "--ignore-not-found", "--wait=false", "-f"])
            .arg(&self.file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_file(&self.file);
    }
}

/// Runs `helm uninstall` when dropped, so a failing test leaves no release behind.
struct Release<'a> {
    cluster: &'a Cluster,
    name: String,
    namespace: String,
}

impl Drop for Release<'_> {
    fn drop(&mut self) {
        let _ = helm(self.cluster)
            .args(["uninstall", &self.name, "--namespace", &self.namespace])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The documents of multi-document YAML, each starting at its `---` line.
fn documents(all: &str) -> Vec<String> {
    let mut docs = Vec::new();
    let mut current = String::new();
    for line in all.split_inclusive('\n') {
        if line.trim_end() == "---" && !current.trim().is_empty() {
            docs.push(std::mem::take(&mut current));
        }
        current.push_str(line);
    }
    if !current.trim().is_empty() {
        docs.push(current);
    }
    docs
}

/// `keda.sh_scaledobjects.yaml` for the CRD named `scaledobjects.keda.sh`, as
/// hack/chart-crds.sh names the files.
fn crd_file_name(doc: &str) -> String {
    let name = doc
        .lines()
        .find_map(|l| l.strip_prefix("  name: "))
        .unwrap_or_else(|| panic!("a CRD without metadata.name:\n{doc}"))
        .trim();
    let (plural, group) = name.split_once('.').unwrap();
    format!("{group}_{plural}.yaml")
}

fn first_difference(want: &str, got: &str) -> String {
    for (i, (w, g)) in want.lines().zip(got.lines()).enumerate() {
        if w != g {
            return format!("line {}: swell crds has {w:?}, the chart has {g:?}", i + 1);
        }
    }
    format!(
        "swell crds has {} lines, the chart {}",
        want.lines().count(),
        got.lines().count()
    )
}

#[test]
fn crds_match_swell_crds() {
    let out = Command::new(swell()).arg("crds").output().unwrap();
    assert!(out.status.success(), "swell crds failed");
    let want: BTreeMap<String, String> = documents(&String::from_utf8(out.stdout).unwrap())
        .into_iter()
        .map(|d| (crd_file_name(&d), d))
        .collect();
    assert!(want.len() >= 4, "swell crds printed {:?}", want.keys());

    let dir = chart_dir().join("crds");
    let got: BTreeMap<String, String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();

    let mut problems = Vec::new();
    for (file, doc) in &want {
        match got.get(file) {
            None => problems.push(format!("{file} is missing")),
            Some(g) if g != doc => {
                problems.push(format!("{file} is stale: {}", first_difference(doc, g)));
            }
            Some(_) => {}
        }
    }
    for file in got.keys().filter(|f| !want.contains_key(*f)) {
        problems.push(format!("{file} is not a CRD swell crds prints"));
    }
    assert!(
        problems.is_empty(),
        "charts/swell/crds does not match `swell crds`; run hack/chart-crds.sh:\n  {}",
        problems.join("\n  ")
    );
}

/// The ExternalMetric CRD the chart installs with `cloudwatchAdapter.installCRD` is the one
/// `swell crds --cloudwatch-adapter` prints.
#[test]
fn external_metric_crd_matches_swell_crds() {
    let out = Command::new(swell())
        .args(["crds", "--cloudwatch-adapter"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "swell crds --cloudwatch-adapter failed"
    );
    let want = String::from_utf8(out.stdout).unwrap();
    assert!(want.contains("name: externalmetrics.metrics.aws"), "{want}");
    let file = chart_dir().join("files/metrics.aws_externalmetrics.yaml");
    let got = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(
        got == want,
        "{} does not match `swell crds --cloudwatch-adapter` ({}); run hack/chart-crds.sh",
        file.display(),
        first_difference(&want, &got)
    );
}

#[test]
fn helm_lint_passes() {
    let cluster = Cluster::shared();
    let values = seed_values(cluster);
    for extra in [
        vec![],
        vec!["-f", values.to_str().unwrap()],
        // Every optional branch of the templates.
        vec![
            "--set",
            "rbac.restrictSecretAccess=true,metricsApi.certificate.secretName=swell-tls,watchNamespace=apps,clusterObjectNamespace=keda-auth",
            "--set",
            "rbac.extraScaleTargets[0].apiGroups[0]=argoproj.io,rbac.extraScaleTargets[0].resources[0]=rollouts",
            "--set",
            "podAnnotations.a=b,nodeSelector.kubernetes\\.io/os=linux,extraArgs[0]=--max-reconciles=3",
            "--set",
            "webhook.enabled=true,webhook.failurePolicy=Fail,webhook.namespaceSelector.matchLabels.a=b",
        ],
        vec![
            "--set",
            "metricsApi.enabled=false,metrics.service.enabled=false",
        ],
    ] {
        let ran = run(
            helm(cluster)
                .args(["lint", "--strict"])
                .arg(chart_dir())
                .args(&extra),
            None,
        );
        assert!(
            ran.ok,
            "helm lint --strict {extra:?} failed:\n{}",
            ran.text()
        );
    }
    let _ = std::fs::remove_file(values);
}

#[tokio::test]
async fn template_applies_with_server_dry_run() {
    let cluster = Cluster::shared();
    cluster
        .with_namespace("chart-dry", |ns| async move {
            let values = seed_values(cluster);
            let yaml = template(
                cluster,
                "keda",
                &ns.name,
                &[
                    "--include-crds",
                    "-f",
                    values.to_str().unwrap(),
                    "--set",
                    "webhook.enabled=true",
                ],
            );
            let _ = std::fs::remove_file(values);

            // The seed's values.yaml lands on the ServiceAccount KEDA's IAM trust policy
            // names (system:serviceaccount:keda:keda-operator in the seed).
            let sa = documents(&yaml)
                .into_iter()
                .find(|d| d.contains("\nkind: ServiceAccount\n"))
                .expect("a ServiceAccount");
            assert!(
                sa.contains(&format!("\n  name: {SERVICE_ACCOUNT}\n")),
                "{sa}"
            );
            assert!(
                sa.contains(&format!("eks.amazonaws.com/role-arn: {SEED_ROLE}\n")),
                "{sa}"
            );

            // Other tests in this binary write the same CRDs and RBAC at the same time; an
            // optimistic-concurrency conflict there is retried, anything else fails 3 times.
            let mut ran = run(
                cluster
                    .kubectl()
                    .args(["apply", "--dry-run=server", "-f", "-"]),
                Some(&yaml),
            );
            for _ in 0..2 {
                if ran.ok || !ran.text().contains("the object has been modified") {
                    break;
                }
                eprintln!("retrying after a conflict:\n{}", ran.text());
                ran = run(
                    cluster
                        .kubectl()
                        .args(["apply", "--dry-run=server", "-f", "-"]),
                    Some(&yaml),
                );
            }
            assert!(
                ran.ok,
                "kubectl apply --dry-run=server failed:\n{}",
                ran.text()
            );
            eprintln!("{}", ran.stdout);
            let kinds = yaml.lines().filter(|l| l.starts_with("kind: ")).count();
            let accepted = ran
                .stdout
                .lines()
                .filter(|l| l.ends_with("(server dry run)"))
                .count();
            assert_eq!(accepted, kinds, "every object accepted:\n{}", ran.stdout);
            for object in [
                "customresourcedefinition.apiextensions.k8s.io/scaledjobs.keda.sh",
                "customresourcedefinition.apiextensions.k8s.io/scaledobjects.keda.sh",
                "deployment.apps/keda-operator",
                "serviceaccount/keda-operator",
                "service/keda-operator-metrics-apiserver",
                "apiservice.apiregistration.k8s.io/v1beta1.external.metrics.k8s.io",
                "rolebinding.rbac.authorization.k8s.io/keda-operator-auth-reader",
                "clusterrolebinding.rbac.authorization.k8s.io/keda-operator-auth-delegator",
                "service/keda-operator-webhook",
                "validatingwebhookconfiguration.admissionregistration.k8s.io/keda-operator-admission",
            ] {
                assert!(
                    ran.stdout.contains(object),
                    "{object} missing:\n{}",
                    ran.stdout
                );
            }
        })
        .await;
}

#[tokio::test]
async fn helm_install_upgrade_and_uninstall() {
    let cluster = cluster();
    cluster
        .with_namespace("chart-install", |ns| async move {
            let release = format!("swell-{}", swell_testkit::unique_suffix());
            let values = seed_values(cluster);
            // The APIService is cluster-wide and other tests' metrics servers may own it.
            let install = run(
                helm(cluster)
                    .args(["install", &release])
                    .arg(chart_dir())
                    .args(["--namespace", &ns.name, "-f", values.to_str().unwrap()])
                    .args(["--set", "metricsApi.apiService.create=false"])
                    // kwok's pods answer nothing: a registered webhook would make every
                    // keda.sh write of the other tests wait for its timeout.
                    .args(["--set", "webhook.enabled=false"])
                    .args(["--wait", "--timeout", "120s"]),
                None,
            );
            let guard = Release {
                cluster,
                name: release.clone(),
                namespace: ns.name.clone(),
            };
            assert!(install.ok, "helm install failed:\n{}", install.text());
            assert!(
                install.stdout.contains("STATUS: deployed"),
                "{}",
                install.stdout
            );

            // kwok runs the pods, so --wait saw two ready replicas.
            let name = format!("{release}-operator");
            let d = ns.api::<Deployment>().get(&name).await.unwrap();
            assert_eq!(d.status.and_then(|s| s.ready_replicas), Some(2));
            let pod = d.spec.unwrap().template.spec.unwrap();
            assert_eq!(pod.service_account_name.as_deref(), Some(SERVICE_ACCOUNT));
            let c = &pod.containers[0];
            assert_eq!(c.image.as_deref(), Some("swell:0.1.0"));
            let args = c.args.clone().unwrap();
            assert_eq!(args[0], "operator");
            assert!(
                args.contains(&"--leader-elect=true".to_string()),
                "{args:?}"
            );
            let sa = ns
                .api::<ServiceAccount>()
                .get(SERVICE_ACCOUNT)
                .await
                .unwrap();
            assert_eq!(
                sa.metadata.annotations.unwrap()["eks.amazonaws.com/role-arn"],
                SEED_ROLE
            );
            let roles: Api<ClusterRole> = Api::all(cluster.client().await);
            assert!(roles.get_opt(&name).await.unwrap().is_some());

            let upgrade = run(
                helm(cluster)
                    .args(["upgrade", &release])
                    .arg(chart_dir())
                    .args(["--namespace", &ns.name, "-f", values.to_str().unwrap()])
                    .args(["--set", "metricsApi.apiService.create=false"])
                    .args(["--set", "webhook.enabled=false"])
                    .args([
                        "--set",
                        "logging.format=json",
                        "--wait",
                        "--timeout",
                        "120s",
                    ]),
                None,
            );
            let _ = std::fs::remove_file(&values);
            assert!(upgrade.ok, "helm upgrade failed:\n{}", upgrade.text());
            let d = ns.api::<Deployment>().get(&name).await.unwrap();
            let args = d.spec.unwrap().template.spec.unwrap().containers[0]
                .args
                .clone()
                .unwrap();
            assert!(args.contains(&"--log-format=json".to_string()), "{args:?}");

            drop(guard);
            assert!(
                roles.get_opt(&name).await.unwrap().is_none(),
                "helm uninstall left ClusterRole {name}"
            );
        })
        .await;
}

/// The ScaledObject's world: a Secret and a ConfigMap read through a TriggerAuthentication,
/// a target whose env comes from a ConfigMap, and a second trigger that lists pods.
fn scale_cycle_objects(url: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: api-token}}
stringData: {{token: rbac-t0ken}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: api}}
data: {{mode: bearer, url: "{url}"}}
---
apiVersion: keda.sh/v1alpha1
kind: TriggerAuthentication
metadata: {{name: api-auth}}
spec:
  secretTargetRef: [{{parameter: token, name: api-token, key: token}}]
  configMapTargetRef: [{{parameter: authMode, name: api, key: mode}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: app}}
spec:
  replicas: 0
  selector: {{matchLabels: {{app: app}}}}
  template:
    metadata: {{labels: {{app: app}}}}
    spec:
      containers:
      - name: main
        image: nginx
        env: [{{name: METRIC_URL, valueFrom: {{configMapKeyRef: {{name: api, key: url}}}}}}]
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {{name: app}}
spec:
  scaleTargetRef: {{name: app}}
  pollingInterval: 1
  cooldownPeriod: 2
  maxReplicaCount: 5
  triggers:
  - type: metrics-api
    metadata: {{urlFromEnv: METRIC_URL, valueLocation: value, targetValue: "2", activationTargetValue: "3"}}
    authenticationRef: {{name: api-auth}}
  - type: kubernetes-workload
    metadata: {{podSelector: app=nothing-here, value: "1", activationValue: "5"}}
"#
    )
}

/// A release name of its own, so a test's ClusterRole and bindings collide with no other's.
fn unique_release() -> String {
    format!("rbac-{}", swell_testkit::unique_suffix())
}

/// Renders only the chart's RBAC and ServiceAccount for `release` in `ns`, with `values`
/// (`--set …` arguments).
fn render_rbac(cluster: &Cluster, release: &str, ns: &TestNamespace, values: &[&str]) -> String {
    let mut args = vec![
        "--show-only",
        "templates/rbac.yaml",
        "--show-only",
        "templates/serviceaccount.yaml",
    ];
    args.extend(values);
    template(cluster, release, &ns.name, &args)
}

/// The operator container's arguments (after `operator`) and literal environment, as the
/// chart's Deployment renders them.
fn chart_command(
    cluster: &Cluster,
    release: &str,
    ns: &TestNamespace,
    values: &[&str],
) -> (Vec<String>, Vec<(String, String)>) {
    let mut args = vec!["--show-only", "templates/deployment.yaml"];
    args.extend(values);
    let yaml = template(cluster, release, &ns.name, &args);
    let ran = run(
        cluster
            .kubectl()
            .args(["create", "--dry-run=client", "-o", "json", "-f", "-"]),
        Some(&yaml),
    );
    assert!(ran.ok, "kubectl create --dry-run=client:\n{}", ran.text());
    let d: Deployment = serde_json::from_str(&ran.stdout).unwrap();
    let c = d.spec.unwrap().template.spec.unwrap().containers.remove(0);
    let args = c.args.unwrap();
    assert_eq!(args[0], "operator", "{args:?}");
    let env = c
        .env
        .unwrap_or_default()
        .into_iter()
        .filter_map(|e| Some((e.name, e.value?)))
        .collect();
    (args[1..].to_vec(), env)
}

/// Starts `swell operator` as the chart's ServiceAccount with the chart's own command line,
/// changed only where a process on this machine must differ from a pod: loopback ports
/// chosen by the kernel (tests run side by side) and no APIService to publish a CA in (the
/// cluster's one external.metrics APIService belongs to other tests).
async fn start_chart_operator(
    cluster: &'static Cluster,
    release: &str,
    ns: &TestNamespace,
    values: &[&str],
    extra_env: &[(&str, &str)],
) -> Operator {
    let kubeconfig = cluster
        .service_account_kubeconfig(&ns.name, SERVICE_ACCOUNT)
        .await;
    let (mut args, mut env) = chart_command(cluster, release, ns, values);
    assert!(
        args.contains(&"--leader-elect=true".to_string()),
        "{args:?}"
    );
    args.extend(
        [
            "--metrics-bind-address=127.0.0.1:0",
            "--metrics-api-bind-address=127.0.0.1:0",
            "--metrics-api-apiservice=",
            // Tests run several of these at once: no fixed port, and no cluster-wide
            // webhook configuration to publish a CA to.
            "--webhook-bind-address=127.0.0.1:0",
            "--webhook-configuration=",
        ]
        .map(String::from),
    );
    // What the downward API gives the pod.
    env.push(("POD_NAME".into(), format!("{release}-operator-0")));
    env.push(("POD_NAMESPACE".into(), ns.name.clone()));
    env.extend(
        extra_env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Operator::start_env(cluster, swell(), &ns.name, Some(&kubeconfig), &args, &env)
}

/// The `addr=` of the first log line containing `marker`.
fn logged_addr(op: &Operator, marker: &str) -> Result<String, String> {
    let text = op.log_text();
    let line = text
        .lines()
        .find(|l| l.contains(marker))
        .ok_or(format!("no {marker:?} in the log yet"))?;
    let rest = &line[line.find("addr=").ok_or("no addr=")? + 5..];
    Ok(rest
        .split(|c: char| c.is_whitespace() || c == '\u{1b}')
        .next()
        .unwrap_or_default()
        .to_string())
}

/// GETs `path` from the operator's external metrics API the way kube-apiserver's aggregator
/// does: the front-proxy client certificate plus X-Remote-User/-Group naming the HPA
/// controller. Returns the HTTP status and body.
fn aggregator_get(cluster: &Cluster, addr: &str, path: &str) -> (String, String) {
    let pki = cluster.dir.join("pki");
    let ran = run(
        Command::new("curl")
            .args(["-sS", "-k", "--max-time", "10", "--cert"])
            .arg(pki.join("front-proxy-client.crt"))
            .arg("--key")
            .arg(pki.join("front-proxy-client.key"))
            .args([
                "-H",
                "X-Remote-User: system:serviceaccount:kube-system:horizontal-pod-autoscaler",
                "-H",
                "X-Remote-Group: system:serviceaccounts",
                "-H",
                "X-Remote-Group: system:authenticated",
                "-w",
                "\n%{http_code}",
            ])
            .arg(format!("https://{addr}{path}")),
        None,
    );
    assert!(ran.ok, "curl failed:\n{}", ran.text());
    let (body, status) = ran.stdout.rsplit_once('\n').unwrap_or_default();
    (status.to_string(), body.to_string())
}

/// `kubectl auth can-i VERB RESOURCE` as the chart's ServiceAccount.
fn can_i(cluster: &Cluster, ns: &TestNamespace, verb: &str, resource: &str) -> String {
    let ran = run(
        cluster.kubectl().args([
            "auth",
            "can-i",
            verb,
            resource,
            "--as",
            &format!("system:serviceaccount:{}:{SERVICE_ACCOUNT}", ns.name),
        ]),
        None,
    );
    ran.stdout.trim().to_string()
}

async fn warning_notes(ns: &TestNamespace) -> Vec<String> {
    let events: Api<Event> = ns.api();
    events
        .list(&ListParams::default().fields("type=Warning"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|e| e.message)
        .collect()
}

// Multi-threaded: the MetricServer must keep answering while the test waits on curl.
#[tokio::test(flavor = "multi_thread")]
async fn chart_rbac_is_enough_for_a_scale_cycle() {
    let cluster = cluster();
    cluster
        .with_namespace("chart-rbac", |ns| async move {
            let release = unique_release();
            let _rbac = Applied::apply(cluster, &render_rbac(cluster, &release, &ns, &[]));
            let source = MetricServer::start(0.0).await;
            source.require_bearer("rbac-t0ken");
            ns.apply(cluster, &scale_cycle_objects(&source.url))
                .unwrap();
            let op = start_chart_operator(cluster, &release, &ns, &[], &[]).await;

            // Leader election through the Lease the Role allows.
            let holder = wait_until("the operator to hold the Lease", WAIT, || async {
                let lease = ns
                    .api::<Lease>()
                    .get_opt("swell-operator")
                    .await
                    .map_err(|e| e.to_string())?;
                lease
                    .and_then(|l| l.spec)
                    .and_then(|s| s.holder_identity)
                    .ok_or("no holder yet".to_string())
            })
            .await;
            // POD_NAME (the downward API in the chart) is the replica's identity.
            assert_eq!(holder, format!("{release}-operator-0"));

            wait_condition(&ns, "app", "Ready", "True/ScaledObjectReady").await;
            wait_condition(&ns, "app", "Active", "False/ScalerNotActive").await;
            assert_eq!(replicas(&ns, "app").await, Ok(0));
            let status = so(&ns, "app").await.status.unwrap();
            assert_eq!(status.authentications_types.as_deref(), Some("api-auth"));
            assert_eq!(status.hpa_name.as_deref(), Some("keda-hpa-app"));

            source.set(Reply::Value(10.0));
            wait_replicas(&ns, "app", 1).await;
            wait_condition(&ns, "app", "Active", "True/ScalerActive").await;
            wait_event(&ns, "KEDAScaleTargetActivated", "from 0 to 1").await;

            // The external metrics API, asked as the aggregator asks on the HPA controller's
            // behalf: it read the front-proxy CA from kube-system (the auth-reader
            // RoleBinding) and authorizes with a SubjectAccessReview (system:auth-delegator).
            let addr = wait_until("the metrics API to listen", WAIT, || async {
                logged_addr(&op, "serving external.metrics.k8s.io")
            })
            .await;
            let path = format!(
                "/apis/external.metrics.k8s.io/v1beta1/namespaces/{}/s0-metric-api-value?labelSelector=scaledobject.keda.sh%2Fname%3Dapp",
                ns.name
            );
            let (status, body) = aggregator_get(cluster, &addr, &path);
            eprintln!("GET {path} -> {status} {body}");
            assert_eq!(status, "200", "{body}");
            assert!(body.contains(r#""value":"10""#), "{body}");
            // A negative reading is served as 0, as KEDA 2.20.2 does: the HPA never sees it.
            source.set(Reply::Value(-5.0));
            let (status, body) = aggregator_get(cluster, &addr, &path);
            assert_eq!(status, "200", "{body}");
            assert!(body.contains(r#""value":"0""#), "{body}");
            // Publishing the CA is not run here (the cluster's APIService belongs to other
            // tests); the authorizer says the calls it makes are allowed, on that APIService only.
            let apiservice = "apiservices.apiregistration.k8s.io/v1beta1.external.metrics.k8s.io";
            assert_eq!(can_i(cluster, &ns, "get", apiservice), "yes");
            assert_eq!(can_i(cluster, &ns, "patch", apiservice), "yes");
            assert_eq!(
                can_i(cluster, &ns, "patch", "apiservices.apiregistration.k8s.io/v1beta1.metrics.k8s.io"),
                "no"
            );
            // The webhook reads LimitRange defaults for cpu/memory Utilization triggers.
            assert_eq!(can_i(cluster, &ns, "list", "limitranges"), "yes");

            source.set(Reply::Value(0.0));
            wait_replicas(&ns, "app", 0).await;
            wait_event(&ns, "KEDAScaleTargetDeactivated", "from 1 to 0").await;

            // Deletion: the finalizer cleans up the HPA and lets the ScaledObject go.
            ns.api::<ScaledObject>()
                .delete("app", &DeleteParams::default())
                .await
                .unwrap();
            wait_until("the ScaledObject and its HPA to be gone", WAIT, || async {
                let so = ns.api::<ScaledObject>().get_opt("app").await;
                let hpa = ns
                    .api::<HorizontalPodAutoscaler>()
                    .get_opt("keda-hpa-app")
                    .await;
                match (so, hpa) {
                    (Ok(None), Ok(None)) => Ok(()),
                    (so, hpa) => Err(format!(
                        "ScaledObject present: {:?}, HPA present: {:?}",
                        so.map(|o| o.is_some()),
                        hpa.map(|h| h.is_some())
                    )),
                }
            })
            .await;

            let log = op.log_text();
            assert!(log.contains("became leader"), "{log}");
            let denied: Vec<&str> = log
                .lines()
                .filter(|l| l.to_ascii_lowercase().contains("forbidden"))
                .collect();
            assert!(
                denied.is_empty(),
                "the operator was denied:\n{}",
                denied.join("\n")
            );
            let warnings = warning_notes(&ns).await;
            assert!(
                !warnings
                    .iter()
                    .any(|n| n.to_ascii_lowercase().contains("forbidden")),
                "{warnings:?}"
            );
        })
        .await;
}

/// The rule the next test removes: the HPA writes (server-side apply and delete).
const HPA_WRITE_RULE: &str = "  - apiGroups: [autoscaling]
    resources: [horizontalpodautoscalers]
    verbs: [create, patch, delete]
";

#[tokio::test]
async fn a_missing_rule_is_named_in_the_scaledobject_status() {
    let cluster = cluster();
    cluster
        .with_namespace("chart-norbac", |ns| async move {
            let release = unique_release();
            let rendered = render_rbac(cluster, &release, &ns, &[]);
            assert_eq!(
                rendered.matches(HPA_WRITE_RULE).count(),
                1,
                "rbac.yaml no longer has the HPA write rule this test removes:\n{rendered}"
            );
            let _rbac = Applied::apply(cluster, &rendered.replace(HPA_WRITE_RULE, ""));

            let source = MetricServer::start(0.0).await;
            ns.apply(cluster, &deployment("app", 0)).unwrap();
            ns.apply(cluster, &scaled_object("app", "app", &source.url, ""))
                .unwrap();
            let _op = start_chart_operator(cluster, &release, &ns, &[], &[]).await;

            let ready = wait_condition(&ns, "app", "Ready", "False/ScaledObjectCheckFailed").await;
            eprintln!("Ready condition: {ready}");
            let user = format!("system:serviceaccount:{}:{SERVICE_ACCOUNT}", ns.name);
            for needle in [
                "applying HPA keda-hpa-app",
                r#"horizontalpodautoscalers.autoscaling "keda-hpa-app" is forbidden"#,
                &format!(r#"User "{user}""#),
                r#"cannot patch resource "horizontalpodautoscalers""#,
            ] {
                assert!(ready.contains(needle), "{needle:?} not in {ready:?}");
            }
            wait_event(&ns, "ScaledObjectCheckFailed", "cannot patch resource").await;
            assert!(
                ns.api::<HorizontalPodAutoscaler>()
                    .get_opt("keda-hpa-app")
                    .await
                    .unwrap()
                    .is_none()
            );
        })
        .await;
}

const STATUS_WRITE_RULE: &str = "  - apiGroups: [keda.sh]
    resources: [scaledobjects/status]
    verbs: [get, patch]
";

/// As KEDA: a status write the API server refuses is a `ScaledObjectUpdateFailed` Warning
/// naming the refusal (status itself cannot say it).
#[tokio::test]
async fn a_refused_status_write_is_a_scaled_object_update_failed_event() {
    let cluster = cluster();
    cluster
        .with_namespace("chart-nostatus", |ns| async move {
            let release = unique_release();
            let rendered = render_rbac(cluster, &release, &ns, &[]);
            assert_eq!(
                rendered.matches(STATUS_WRITE_RULE).count(),
                1,
                "rbac.yaml no longer has the status rule this test removes:\n{rendered}"
            );
            let _rbac = Applied::apply(cluster, &rendered.replace(STATUS_WRITE_RULE, ""));
            let source = MetricServer::start(0.0).await;
            ns.apply(cluster, &deployment("app", 0)).unwrap();
            ns.apply(cluster, &scaled_object("app", "app", &source.url, ""))
                .unwrap();
            let _op = start_chart_operator(cluster, &release, &ns, &[], &[]).await;
            let note = wait_event(&ns, "ScaledObjectUpdateFailed", "forbidden").await;
            assert!(note.contains("scaledobjects/status"), "{note}");
        })
        .await;
}

/// `cloudwatchAdapter.enabled`: the chart's operator, as the chart's ServiceAccount, serves a
/// k8s-cloudwatch-adapter ExternalMetric (the CRD from the chart's `installCRD` template)
/// on the RBAC the value adds — list and watch of externalmetrics, nothing more.
#[tokio::test(flavor = "multi_thread")]
async fn chart_rbac_serves_cloudwatch_adapter_metrics() {
    let cluster = cluster();
    let aws = swell_testkit::Aws::shared();
    cluster
        .with_namespace("chart-cw", |ns| async move {
            let release = unique_release();
            let on = ["--set", "cloudwatchAdapter.enabled=true"];
            // Without installCRD the chart leaves the adapter's own CRD alone.
            let plain = template(cluster, &release, &ns.name, &on);
            assert!(
                !plain.contains("externalmetrics.metrics.aws\n"),
                "the CRD is rendered only with installCRD"
            );
            assert!(plain.contains("- --cloudwatch-adapter=true"), "{plain}");
            let refused = run(
                helm(cluster)
                    .args(["template", &release])
                    .arg(chart_dir())
                    .args(on)
                    .args(["--set", "metricsApi.enabled=false"]),
                None,
            );
            assert!(!refused.ok && refused.text().contains("set metricsApi.enabled too"), "{}", refused.text());
            let only_crd = [
                "--set",
                "cloudwatchAdapter.installCRD=true",
                "--show-only",
                "templates/externalmetric-crd.yaml",
            ];
            let crd = template(cluster, &release, &ns.name, &[&on[..], &only_crd].concat());
            let ran = run(cluster.kubectl().args(["apply", "--server-side", "-f", "-"]), Some(&crd));
            assert!(ran.ok, "{}", ran.text());
            let ran = run(cluster.kubectl().args(["wait", "--for=condition=Established", "crd/externalmetrics.metrics.aws"]), None);
            assert!(ran.ok, "{}", ran.text());

            let resource = "externalmetrics.metrics.aws";
            let _off = Applied::apply(cluster, &render_rbac(cluster, &release, &ns, &[]));
            assert_eq!(can_i(cluster, &ns, "list", resource), "no");
            drop(_off);
            let _rbac = Applied::apply(cluster, &render_rbac(cluster, &release, &ns, &on));
            assert_eq!(can_i(cluster, &ns, "watch", resource), "yes");
            assert_eq!(can_i(cluster, &ns, "create", resource), "no");

            let me = format!("chart-cw-{}", swell_testkit::unique_suffix());
            let keys = aws
                .create_user(&me, Some(swell_testkit::allow(&["cloudwatch:GetMetricData"], "*")))
                .await
                .unwrap();
            ns.apply(
                cluster,
                "apiVersion: metrics.aws/v1alpha1\nkind: ExternalMetric\nmetadata: {name: queue-length}\n\
                 spec:\n  name: queue-length\n  queries:\n  - id: q\n    metricStat:\n      \
                 metric: {namespace: Swell/Chart, metricName: Nothing}\n      period: 60\n      stat: Sum\n",
            )
            .unwrap();
            let env = [
                ("AWS_ACCESS_KEY_ID", keys.access_key_id.as_str()),
                ("AWS_SECRET_ACCESS_KEY", keys.secret_access_key.as_str()),
                ("AWS_REGION", aws.region.as_str()),
                ("AWS_ENDPOINT_URL", aws.endpoint.as_str()),
            ];
            let op = start_chart_operator(cluster, &release, &ns, &on, &env).await;
            let addr = wait_until("the metrics API to listen", WAIT, || async {
                logged_addr(&op, "serving external.metrics.k8s.io")
            })
            .await;
            let path = format!("/apis/external.metrics.k8s.io/v1beta1/namespaces/{}/queue-length", ns.name);
            // No datapoint: the adapter's 0.
            let body = wait_until("the ExternalMetric to be served", WAIT, || async {
                match aggregator_get(cluster, &addr, &path) {
                    (s, b) if s == "200" => Ok(b),
                    other => Err(format!("{other:?}")),
                }
            })
            .await;
            assert!(body.contains(r#""metricName":"queue-length""#) && body.contains(r#""value":"0""#), "{body}");
            let log = op.log_text();
            assert!(!log.to_ascii_lowercase().contains("forbidden"), "{log}");
        })
        .await;
}
