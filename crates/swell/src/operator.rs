//! `swell operator`: the ScaledObject controller under leader election, plus /metrics,
//! /healthz and /readyz on every replica (plain HTTP as KEDA's, or HTTPS with --metrics-tls).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use axum::routing::get;
use kube::Client;
use swell_controller::cloudwatch_adapter::CloudwatchAdapter;
use swell_controller::metrics::Metrics;
use swell_controller::run::{CurrentCtx, Settings, run_controllers};
use tokio_util::sync::CancellationToken;

use crate::serve::{self, MinTls};

#[derive(clap::Args, Debug)]
#[command(args_override_self = true)]
pub struct OperatorArgs {
    /// Path to a kubeconfig; in-cluster configuration or $KUBECONFIG when unset.
    #[arg(long, env = "SWELL_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Elect a leader through a Lease so that only one replica scales.
    #[arg(long, env = "SWELL_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
    /// The Lease's name.
    #[arg(
        long,
        env = "SWELL_LEADER_ELECTION_ID",
        default_value = "swell-operator"
    )]
    leader_election_id: String,
    /// The Lease's namespace (the pod's namespace in a cluster).
    #[arg(long, env = "POD_NAMESPACE", default_value = "keda")]
    namespace: String,
    /// This replica's identity in the Lease.
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    #[command(flatten)]
    leader_election: crate::leader::LeaderElectionArgs,
    #[command(flatten)]
    kube_api: crate::kube_api::KubeApiArgs,
    #[command(flatten)]
    outbound: crate::outbound::OutboundArgs,
    /// Where ClusterTriggerAuthentication secrets live (KEDA_CLUSTER_OBJECT_NAMESPACE).
    #[arg(long, env = "KEDA_CLUSTER_OBJECT_NAMESPACE")]
    cluster_object_namespace: Option<String>,
    /// Watch Secrets and ConfigMaps for rotation only in this namespace (set by the chart's
    /// rbac.restrictSecretAccess; default: the watched namespace, or all).
    #[arg(long, env = "SWELL_CREDENTIALS_NAMESPACE")]
    credentials_namespace: Option<String>,
    /// Address for /metrics, /healthz, /readyz and `swell explain`'s /explain/NS/NAME
    /// (plain HTTP, as KEDA's scrape, unless --metrics-tls).
    #[arg(
        long,
        env = "SWELL_METRICS_BIND_ADDRESS",
        default_value = "0.0.0.0:8080"
    )]
    metrics_bind_address: SocketAddr,
    /// Serve /metrics, /healthz and /readyz over HTTPS (a self-signed certificate) instead
    /// of plain HTTP.
    #[arg(long, env = "SWELL_METRICS_TLS", default_value_t = false, action = clap::ArgAction::Set)]
    metrics_tls: bool,
    /// Serve /metrics only to scrapers whose bearer token the API server accepts and
    /// authorizes to `get` the non-resource URL /metrics (TokenReview, SubjectAccessReview);
    /// needs --metrics-tls, so tokens never cross the network in the clear.
    #[arg(long, env = "SWELL_METRICS_AUTH", default_value_t = false, action = clap::ArgAction::Set)]
    metrics_auth: bool,
    /// Label keda_scaler_http_request_duration_seconds by namespace, scaled_resource,
    /// trigger_name and metric_name too, as KEDA's flag of the same name.
    #[arg(long, env = "SWELL_ENABLE_HIGH_CARDINALITY_METRICS_LABELS", default_value_t = false, action = clap::ArgAction::Set)]
    enable_high_cardinality_metrics_labels: bool,
    /// Push the metrics over OTLP (http/protobuf) under KEDA's OpenTelemetry names, to
    /// OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_METRICS_ENDPOINT, as KEDA's flag.
    #[arg(long, env = "SWELL_ENABLE_OPENTELEMETRY_METRICS", default_value_t = false, action = clap::ArgAction::Set)]
    enable_opentelemetry_metrics: bool,
    /// Minimum TLS version on Swell's ports.
    #[arg(
        long,
        env = "SWELL_MIN_TLS_VERSION",
        value_enum,
        default_value = "TLS12"
    )]
    min_tls_version: MinTls,
    /// Serve the external metrics API (external.metrics.k8s.io) on every replica.
    #[arg(long, env = "SWELL_METRICS_API", default_value_t = true, action = clap::ArgAction::Set)]
    metrics_api: bool,
    /// Address for the external metrics API (HTTPS, client certificates from the aggregator).
    #[arg(
        long,
        env = "SWELL_METRICS_API_BIND_ADDRESS",
        default_value = "0.0.0.0:6443"
    )]
    metrics_api_bind_address: SocketAddr,
    /// The Service in front of the metrics API: its DNS names go into the serving certificate.
    #[arg(
        long,
        env = "SWELL_METRICS_API_SERVICE",
        default_value = "keda-operator-metrics-apiserver"
    )]
    metrics_api_service: String,
    /// Keep this APIService's caBundle pointing at the generated CA ("" to leave it alone).
    #[arg(long, env = "SWELL_METRICS_API_APISERVICE", default_value = swell_metrics_api::APISERVICE_NAME)]
    metrics_api_apiservice: String,
    /// Serving certificate and key files for the metrics API (PEM); generated when unset.
    #[arg(
        long,
        env = "SWELL_METRICS_API_CERT_FILE",
        requires = "metrics_api_key_file"
    )]
    metrics_api_cert_file: Option<PathBuf>,
    #[arg(
        long,
        env = "SWELL_METRICS_API_KEY_FILE",
        requires = "metrics_api_cert_file"
    )]
    metrics_api_key_file: Option<PathBuf>,
    /// Other external-metrics servers (`NAME=URL[,…]`, HTTPS) asked for the metrics Swell
    /// does not own; off when empty. See the README's "Beside other metrics adapters".
    #[arg(long, env = "SWELL_METRICS_API_DELEGATES", default_value = "")]
    metrics_api_delegate: String,
    /// Holds `<NAME>/ca.crt` (verifies the delegate) and `<NAME>/tls.crt`, `<NAME>/tls.key`
    /// (the front-proxy client certificate Swell presents to it) for each delegate.
    #[arg(
        long,
        env = "SWELL_METRICS_API_DELEGATE_TLS_DIR",
        default_value = "/etc/swell/delegates"
    )]
    metrics_api_delegate_tls_dir: PathBuf,
    /// Seconds between reads of each delegate's metric list.
    #[arg(long, env = "SWELL_METRICS_API_DELEGATE_REFRESH", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    metrics_api_delegate_refresh: u64,
    /// Serve the k8s-cloudwatch-adapter's `ExternalMetric` objects (metrics.aws/v1alpha1)
    /// through the external metrics API, as the adapter did. See the README's "Migrating
    /// from k8s-cloudwatch-adapter".
    /// Land every ScaledObject's replicas on exactly ceil(value / target): the HPA's
    /// tolerance set to 0 (Kubernetes 1.35+) unless the ScaledObject's behavior sets one or
    /// its annotation autoscaling.swell.dev/exact-targets says "false". Off: KEDA's ±10%.
    #[arg(long, env = "SWELL_EXACT_TARGETS", default_value_t = false, action = clap::ArgAction::Set)]
    exact_targets: bool,
    #[arg(long, env = "SWELL_CLOUDWATCH_ADAPTER", default_value_t = false, action = clap::ArgAction::Set)]
    cloudwatch_adapter: bool,
    /// Serve the validating admission webhook (the same checks as `swell check --cluster`).
    #[arg(long, env = "SWELL_WEBHOOK", default_value_t = false, action = clap::ArgAction::Set)]
    webhook: bool,
    /// Address for the admission webhook (HTTPS).
    #[arg(
        long,
        env = "SWELL_WEBHOOK_BIND_ADDRESS",
        default_value = "0.0.0.0:9443"
    )]
    webhook_bind_address: SocketAddr,
    /// The Service in front of the webhook: its DNS names go into the serving certificate
    /// (with localhost and 127.0.0.1).
    #[arg(long, env = "SWELL_WEBHOOK_SERVICE", default_value = "swell-webhook")]
    webhook_service: String,
    /// Keep this ValidatingWebhookConfiguration's caBundle pointing at the generated CA
    /// ("" to leave it alone).
    #[arg(
        long,
        env = "SWELL_WEBHOOK_CONFIGURATION",
        default_value = "swell-admission"
    )]
    webhook_configuration: String,
    /// Watch only this namespace (KEDA's WATCH_NAMESPACE); all namespaces when unset.
    #[arg(long, env = "WATCH_NAMESPACE")]
    watch_namespace: Option<String>,
    /// ScaledObjects reconciled at once.
    #[arg(
        long,
        env = "KEDA_SCALEDOBJECT_CTRL_MAX_RECONCILES",
        default_value_t = 5
    )]
    max_reconciles: u16,
    /// ScaledJobs reconciled at once.
    #[arg(long, env = "KEDA_SCALEDJOB_CTRL_MAX_RECONCILES", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    scaled_job_max_reconciles: u16,
    /// Only ScaledObjects, ScaledJobs and their HPAs with these labels (KEDA's
    /// WATCH_LABEL_SELECTOR: `team=payments`, `tier in (gold,silver)`, `!canary`).
    #[arg(long, env = "WATCH_LABEL_SELECTOR")]
    watch_label_selector: Option<String>,
    /// Only (Cluster)TriggerAuthentications with these labels
    /// (WATCH_LABEL_SELECTOR_FOR_TRIGGERAUTH; independent of the one above).
    #[arg(long, env = "WATCH_LABEL_SELECTOR_FOR_TRIGGERAUTH")]
    watch_label_selector_for_triggerauth: Option<String>,
    /// The cluster's name in CloudEvents' `source` and `subject` when a CloudEventSource sets
    /// no `clusterName` (KEDA's flag and default).
    #[arg(
        long = "k8s-cluster-name",
        env = "SWELL_K8S_CLUSTER_NAME",
        default_value = "kubernetes-default"
    )]
    cluster_name: String,
    /// The cluster's DNS domain: serving certificates also name
    /// `<service>.<namespace>.svc.<domain>` (KEDA's --k8s-cluster-domain).
    #[arg(long = "k8s-cluster-domain", default_value = "cluster.local")]
    cluster_domain: String,
    /// KEDA's Go pprof endpoint; refused when set (see `profiling_refused`).
    #[arg(long, default_value = "")]
    profiling_bind_address: String,
}

/// Metric values from whichever controller context is running (follower or leader).
struct Source {
    current: CurrentCtx,
    metrics: Arc<Metrics>,
    /// With `--cloudwatch-adapter`.
    cloudwatch: Option<Arc<CloudwatchAdapter>>,
}

impl Source {
    /// The `ExternalMetric` answering for `metric`, unless the selector names a ScaledObject.
    fn external_metric_for(
        &self,
        namespace: &str,
        metric: &str,
        selector: &str,
    ) -> Option<&CloudwatchAdapter> {
        let cw = self.cloudwatch.as_deref()?;
        let names_scaled_object =
            swell_controller::metric_source::scaled_object_from_selector(selector).is_ok();
        (!names_scaled_object && cw.serves(namespace, metric)).then_some(cw)
    }

    async fn values(
        &self,
        namespace: &str,
        metric: &str,
        selector: &str,
    ) -> Result<Vec<swell_metrics_api::MetricValue>, swell_metrics_api::MetricError> {
        use swell_controller::metric_source::MetricQueryError as Q;
        use swell_metrics_api::MetricError as E;
        let ctx = self
            .current
            .read()
            .ok()
            .and_then(|c| c.clone())
            .ok_or_else(|| E::Unavailable("starting".into()))?;
        let to_api = |e: Q| match e {
            Q::NotFound(m) => E::NotFound(m),
            Q::BadRequest(m) => E::BadRequest(m),
            Q::Unavailable(m) => E::Unavailable(m),
        };
        if let Some(cw) = self.external_metric_for(namespace, metric, selector) {
            let value = cw.value(namespace, metric).await.map_err(to_api)?;
            return Ok(vec![swell_metrics_api::MetricValue {
                metric_name: metric.to_string(),
                metric_labels: Default::default(),
                value,
                timestamp: jiff::Timestamp::now(),
            }]);
        }
        let name = swell_controller::metric_source::scaled_object_from_selector(selector)
            .map_err(to_api)?;
        let values = ctx.external_metric(namespace, name, metric).await;
        let values = values.map_err(to_api)?;
        let labels: std::collections::BTreeMap<String, String> = [(
            swell_api::annotations::labels::SCALED_OBJECT_NAME.to_string(),
            name.to_string(),
        )]
        .into();
        Ok(values
            .into_iter()
            .map(|v| swell_metrics_api::MetricValue {
                metric_name: v.name,
                metric_labels: labels.clone(),
                value: v.value,
                timestamp: jiff::Timestamp::now(),
            })
            .collect())
    }
}

#[async_trait::async_trait]
impl swell_metrics_api::MetricSource for Source {
    async fn external_metric(
        &self,
        namespace: &str,
        metric: &str,
        selector: &str,
    ) -> Result<Vec<swell_metrics_api::MetricValue>, swell_metrics_api::MetricError> {
        let result = self.values(namespace, metric, selector).await;
        let code = result
            .as_ref()
            .map_or_else(|e| e.status().as_u16(), |_| 200);
        self.metrics.metrics_api_request(code);
        result
    }

    fn serves(&self, namespace: &str, metric: &str, selector: &str) -> bool {
        self.external_metric_for(namespace, metric, selector)
            .is_some()
    }
}

/// `/metrics` (OpenMetrics text), `/healthz`, `/livez` and `/readyz` (503 until `ready`).
fn health_and_metrics(
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    auth: Option<Arc<crate::metrics_auth::MetricsAuth>>,
) -> axum::Router {
    use axum::response::IntoResponse as _;
    let (m, r) = (metrics, ready);
    axum::Router::new()
        .route(
            "/metrics",
            get(move |headers: axum::http::HeaderMap| async move {
                if let Some(auth) = &auth {
                    let header = headers.get("authorization").and_then(|v| v.to_str().ok());
                    if let Err(refused) = auth.check(header).await {
                        return (refused.status(), refused.to_string()).into_response();
                    }
                }
                let text = "application/openmetrics-text; version=1.0.0; charset=utf-8";
                ([("content-type", text)], m.encode()).into_response()
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route("/livez", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || async move {
                if r.load(Ordering::Relaxed) {
                    (axum::http::StatusCode::OK, "ok")
                } else {
                    (axum::http::StatusCode::SERVICE_UNAVAILABLE, "starting")
                }
            }),
        )
}

/// Serves the external metrics API on this replica (followers too), with the values of
/// whichever controller context runs, and with `--cloudwatch-adapter` the ExternalMetrics.
fn start_metrics_api(
    args: &OperatorArgs,
    client: &Client,
    metrics: &Arc<Metrics>,
    current: &CurrentCtx,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let cert =
        match (&args.metrics_api_cert_file, &args.metrics_api_key_file) {
            (Some(cert), Some(key)) => swell_metrics_api::CertSource::Files {
                cert: cert.clone(),
                key: key.clone(),
            },
            _ => {
                let (svc, ns) = (&args.metrics_api_service, &args.namespace);
                let mut s = swell_metrics_api::SelfSigned::for_service(svc, ns)
                    .with_cluster_domain(svc, ns, &args.cluster_domain);
                s.apiservice = Some(args.metrics_api_apiservice.clone()).filter(|a| !a.is_empty());
                swell_metrics_api::CertSource::SelfSigned(s)
            }
        };
    let mut config = swell_metrics_api::Config::new(args.metrics_api_bind_address, cert);
    config.delegation = swell_metrics_api::delegate::DelegationConfig::from_flags(
        &args.metrics_api_delegate,
        &args.metrics_api_delegate_tls_dir,
        Duration::from_secs(args.metrics_api_delegate_refresh),
    )?;
    config.min_tls = match args.min_tls_version {
        MinTls::Tls12 => swell_metrics_api::MinTls::Tls12,
        MinTls::Tls13 => swell_metrics_api::MinTls::Tls13,
    };
    let cloudwatch = args.cloudwatch_adapter.then(|| {
        let shared = swell_scalers::Shared {
            aws: Arc::new(swell_scalers::aws::AwsClients::new(
                args.outbound.aws_limits(),
                metrics.aws.clone(),
            )),
            upstream_calls: metrics.upstream_calls.clone(),
            ..Default::default()
        };
        let region = std::env::var("AWS_REGION")
            .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
            .ok();
        let ns = args.watch_namespace.as_deref().filter(|n| !n.is_empty());
        CloudwatchAdapter::start(client, ns, shared, region, shutdown.clone())
    });
    let source: Arc<dyn swell_metrics_api::MetricSource> = Arc::new(Source {
        current: current.clone(),
        metrics: metrics.clone(),
        cloudwatch,
    });
    let (c, stop) = (client.clone(), shutdown.clone());
    tokio::spawn(async move {
        if let Err(e) = swell_metrics_api::serve(config, source, c, stop.clone()).await {
            tracing::error!(error = %e, "external metrics API stopped");
            stop.cancel();
        }
    });
    Ok(())
}

/// Serves the validating admission webhook on this replica, keeping its certificate and the
/// ValidatingWebhookConfiguration's caBundle current.
fn start_webhook(
    args: &OperatorArgs,
    client: &Client,
    metrics: &Metrics,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let (svc, ns) = (&args.webhook_service, &args.namespace);
    let mut s = swell_metrics_api::SelfSigned::for_service(svc, ns).with_cluster_domain(
        svc,
        ns,
        &args.cluster_domain,
    );
    s.dns_names
        .extend(["localhost".to_string(), "127.0.0.1".to_string()]);
    s.apiservice = None;
    s.validating_webhook = Some(args.webhook_configuration.clone()).filter(|a| !a.is_empty());
    let certs = Arc::new(
        swell_metrics_api::Certs::new(swell_metrics_api::CertSource::SelfSigned(s))
            .context("webhook serving certificate")?,
    );
    let tls = serve::resolver_config(certs.cert_resolver(), args.min_tls_version)?;
    let (c, stop) = (client.clone(), shutdown.clone());
    let maintained = certs.clone();
    tokio::spawn(async move { maintained.maintain(Some(c), stop).await });
    let (addr, router, stop) = (
        args.webhook_bind_address,
        crate::webhook::router(client.clone(), metrics.webhook.clone()),
        shutdown.clone(),
    );
    tokio::spawn(async move {
        if let Err(e) = serve::serve(addr, Some(tls), router, stop.clone(), "the webhook").await {
            tracing::error!(error = %e, "admission webhook stopped");
            stop.cancel();
        }
    });

    Ok(())
}

/// Follows until this replica holds the Lease, then runs the controllers as leader until
/// shutdown or until the Lease is lost (an error: the process must end).
async fn lead(
    args: &OperatorArgs,
    identity: &str,
    client: &Client,
    metrics: &Arc<Metrics>,
    settings: &dyn Fn(bool) -> Settings,
    current: &CurrentCtx,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let timing = crate::leader::Timing::from_args(&args.leader_election)?;
    let (ns, id) = (&args.namespace, &args.leader_election_id);
    let lease = crate::leader::manager(client, ns, id, identity, timing).await?;
    let (mut leader, lease_task) = lease.watch().await;
    // Until we lead, keep scalers ready for metric requests without acting.
    let follow = shutdown.child_token();
    let follower = tokio::spawn(run_controllers(
        client.clone(),
        metrics.clone(),
        settings(false),
        follow.clone(),
        current.clone(),
    ));
    tracing::info!(identity, lease = %args.leader_election_id, "waiting for leadership");
    loop {
        if *leader.borrow_and_update() {
            break;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            changed = leader.changed() => changed.context("lease manager stopped")?,
        }
    }
    tracing::info!(identity, "became leader");
    follow.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), follower).await;
    let stop = shutdown.child_token();
    let controllers = tokio::spawn(run_controllers(
        client.clone(),
        metrics.clone(),
        settings(true),
        stop.clone(),
        current.clone(),
    ));
    // Losing the lease ends the process, as controller-runtime does: a replica that
    // might still be scaling must not keep running beside the new leader.
    let stuck = crate::leader::renew_deadline_passed(client, ns, id, identity, timing);
    let mut stuck = std::pin::pin!(stuck);
    let lost = loop {
        tokio::select! {
            _ = shutdown.cancelled() => break None,
            unrenewed = &mut stuck => break Some(format!(
                "Lease {ns}/{id} not renewed for {}s (renew deadline {}s)",
                unrenewed.as_secs(),
                timing.renew_deadline
            )),
            changed = leader.changed() => {
                if changed.is_err() || !*leader.borrow_and_update() {
                    break Some(format!("lost leadership of Lease {ns}/{id}"));
                }
            }
        }
    };
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), controllers).await;
    drop(leader);
    let _ = tokio::time::timeout(Duration::from_secs(5), lease_task).await;
    match lost {
        Some(why) => anyhow::bail!(why),
        None => Ok(()),
    }
}

/// Why `--profiling-bind-address` is refused rather than ignored.
fn profiling_refused() -> &'static str {
    "--profiling-bind-address: Swell has no Go pprof endpoint to serve (it is not a Go \
     program); unset it (chart: profiling.operator.enabled=false) and profile the process \
     with perf, or read /metrics"
}

/// A label selector as KEDA reads one: unset, empty or `""` means none.
fn selector(v: Option<&String>) -> Option<String> {
    v.map(|s| s.trim())
        .filter(|s| !s.is_empty() && *s != "\"\"")
        .map(String::from)
}

/// The two watch label selectors, each tried once against the API server (its parser is
/// the one that counts) so that a malformed one stops the operator at start-up, named,
/// instead of failing every watch.
async fn check_selectors(
    client: &Client,
    args: &OperatorArgs,
) -> anyhow::Result<(Option<String>, Option<String>)> {
    use kube::api::ListParams;
    let so = selector(args.watch_label_selector.as_ref());
    let ta = selector(args.watch_label_selector_for_triggerauth.as_ref());
    for (name, sel) in [
        ("WATCH_LABEL_SELECTOR", &so),
        ("WATCH_LABEL_SELECTOR_FOR_TRIGGERAUTH", &ta),
    ] {
        let Some(sel) = sel else { continue };
        let api: kube::Api<swell_api::ScaledObject> = kube::Api::all(client.clone());
        let lp = ListParams::default().labels(sel).limit(1);
        if let Err(kube::Error::Api(e)) = api.list_metadata(&lp).await
            && e.code == 400
        {
            anyhow::bail!("{name} {sel:?} is not a label selector: {}", e.message);
        }
    }
    Ok((so, ta))
}

/// What the controllers run with, from the command line.
fn controller_settings(
    args: &OperatorArgs,
    eks_cluster: &Option<swell_scalers::aws::EksCluster>,
    identity: &str,
    (watch_label_selector, auth_label_selector): &(Option<String>, Option<String>),
    leader: bool,
) -> Settings {
    Settings {
        cluster_namespace: args
            .cluster_object_namespace
            .clone()
            .unwrap_or_else(|| args.namespace.clone()),
        credentials_namespace: args.credentials_namespace.clone().filter(|n| !n.is_empty()),
        instance: identity.to_string(),
        concurrency: args.max_reconciles,
        watch_namespace: args.watch_namespace.clone().filter(|n| !n.is_empty()),
        watch_label_selector: watch_label_selector.clone(),
        auth_label_selector: auth_label_selector.clone(),
        scaled_job_concurrency: args.scaled_job_max_reconciles,
        cluster_name: args.cluster_name.clone(),
        leader,
        exact_targets: args.exact_targets,
        http: args.outbound.http(),
        aws_limits: args.outbound.aws_limits(),
        eks_cluster: eks_cluster.clone(),
        aws_secret_refresh: args.outbound.aws_secret_refresh(),
    }
}

pub async fn run(args: OperatorArgs) -> anyhow::Result<()> {
    if !args.profiling_bind_address.is_empty() {
        anyhow::bail!(profiling_refused());
    }
    if args.metrics_auth && !args.metrics_tls {
        anyhow::bail!(
            "--metrics-auth needs --metrics-tls: scrapers' tokens must not cross the network in the clear"
        );
    }
    if args.leader_elect {
        crate::leader::Timing::from_args(&args.leader_election)?;
    }
    args.outbound.configure_tls()?;
    let eks_cluster = args.outbound.eks_cluster()?;
    let client = crate::kube_api::client(args.kubeconfig.as_ref(), &args.kube_api).await?;
    let identity = args
        .identity
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| format!("swell-{}", std::process::id()));
    let metrics = Arc::new(Metrics::with_high_cardinality(
        args.enable_high_cardinality_metrics_labels,
    ));
    let shutdown = CancellationToken::new();
    let ready = Arc::new(AtomicBool::new(false));
    // Held until the operator returns: dropping it flushes the last measurements.
    let _otel = if args.enable_opentelemetry_metrics {
        Some(crate::otel::start(metrics.clone())?)
    } else {
        None
    };

    let tls = if args.metrics_tls {
        let (certs, key) = serve::self_signed(vec!["localhost".into()])?;
        Some(serve::server_config(certs, key, args.min_tls_version)?)
    } else {
        None
    };
    let auth = args
        .metrics_auth
        .then(|| Arc::new(crate::metrics_auth::MetricsAuth::new(client.clone())));
    // The controller context serving metric values and explanations: a follower's until
    // we lead.
    let current: CurrentCtx = Default::default();
    let router = health_and_metrics(metrics.clone(), ready.clone(), auth.clone())
        .merge(crate::explain::endpoint::router(current.clone(), auth));
    let server = tokio::spawn(serve::serve(
        args.metrics_bind_address,
        tls,
        router,
        shutdown.clone(),
        "/metrics",
    ));

    let sig = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
        sig.cancel();
    });

    let selectors = check_selectors(&client, &args).await?;
    let settings =
        |leader: bool| controller_settings(&args, &eks_cluster, &identity, &selectors, leader);
    if args.metrics_api {
        start_metrics_api(&args, &client, &metrics, &current, &shutdown)?;
    } else if args.cloudwatch_adapter {
        anyhow::bail!(
            "--cloudwatch-adapter serves ExternalMetrics through the external metrics API: it needs --metrics-api=true"
        );
    }
    if args.webhook {
        start_webhook(&args, &client, &metrics, &shutdown)?;
    }
    ready.store(true, Ordering::Relaxed);
    if args.leader_elect {
        lead(
            &args, &identity, &client, &metrics, &settings, &current, &shutdown,
        )
        .await?;
    } else {
        run_controllers(
            client.clone(),
            metrics.clone(),
            settings(true),
            shutdown.clone(),
            current.clone(),
        )
        .await;
    }
    shutdown.cancel();
    let _ = server.await;
    Ok(())
}
