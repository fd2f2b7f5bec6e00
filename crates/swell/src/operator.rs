//! `swell operator`: the ScaledObject controller under leader election, plus HTTPS
//! /metrics, /healthz and /readyz on every replica.

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
    /// Lease duration in seconds; a new leader takes over at most this long after the old one dies.
    #[arg(long, env = "SWELL_LEASE_DURATION", default_value_t = 15)]
    lease_duration: u64,
    /// Where ClusterTriggerAuthentication secrets live (KEDA_CLUSTER_OBJECT_NAMESPACE).
    #[arg(long, env = "KEDA_CLUSTER_OBJECT_NAMESPACE")]
    cluster_object_namespace: Option<String>,
    /// Watch Secrets and ConfigMaps for rotation only in this namespace (set by the chart's
    /// rbac.restrictSecretAccess; default: the watched namespace, or all).
    #[arg(long, env = "SWELL_CREDENTIALS_NAMESPACE")]
    credentials_namespace: Option<String>,
    /// Address for HTTPS /metrics, /healthz, /readyz.
    #[arg(
        long,
        env = "SWELL_METRICS_BIND_ADDRESS",
        default_value = "0.0.0.0:8080"
    )]
    metrics_bind_address: SocketAddr,
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
    /// Milliseconds an HTTP scaler's request may take when its trigger sets no timeout
    /// (prometheus, metrics-api, rabbitmq over HTTP, nats-jetstream, artemis-queue,
    /// activemq, azure-*), KEDA's KEDA_HTTP_DEFAULT_TIMEOUT.
    #[arg(long, env = "KEDA_HTTP_DEFAULT_TIMEOUT", default_value_t = 3000, value_parser = clap::value_parser!(u64).range(1..))]
    http_default_timeout: u64,
    /// The cluster's name in CloudEvents' `source` and `subject` when a CloudEventSource sets
    /// no `clusterName` (KEDA's flag and default).
    #[arg(
        long = "k8s-cluster-name",
        env = "SWELL_K8S_CLUSTER_NAME",
        default_value = "kubernetes-default"
    )]
    k8s_cluster_name: String,
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
fn health_and_metrics(metrics: Arc<Metrics>, ready: Arc<AtomicBool>) -> axum::Router {
    let (m, r) = (metrics, ready);
    axum::Router::new()
        .route(
            "/metrics",
            get(move || async move {
                (
                    [(
                        "content-type",
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    m.encode(),
                )
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
    let cert = match (&args.metrics_api_cert_file, &args.metrics_api_key_file) {
        (Some(cert), Some(key)) => swell_metrics_api::CertSource::Files {
            cert: cert.clone(),
            key: key.clone(),
        },
        _ => {
            let mut s = swell_metrics_api::SelfSigned::for_service(
                &args.metrics_api_service,
                &args.namespace,
            );
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
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let mut s = swell_metrics_api::SelfSigned::for_service(&args.webhook_service, &args.namespace);
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
        crate::webhook::router(client.clone()),
        shutdown.clone(),
    );
    tokio::spawn(async move {
        if let Err(e) = serve::serve(addr, tls, router, stop.clone()).await {
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
    let lease =
        kube_lease_manager::LeaseManagerBuilder::new(client.clone(), &args.leader_election_id)
            .with_namespace(&args.namespace)
            .with_identity(identity)
            .with_duration(args.lease_duration)
            .with_grace(args.lease_duration.div_ceil(3).max(1))
            .build()
            .await
            .with_context(|| {
                format!(
                    "setting up Lease {}/{}",
                    args.namespace, args.leader_election_id
                )
            })?;
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
    let lost = loop {
        tokio::select! {
            _ = shutdown.cancelled() => break false,
            changed = leader.changed() => {
                if changed.is_err() || !*leader.borrow_and_update() {
                    break true;
                }
            }
        }
    };
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), controllers).await;
    drop(leader);
    let _ = tokio::time::timeout(Duration::from_secs(5), lease_task).await;
    if lost {
        anyhow::bail!(
            "lost leadership of Lease {}/{}",
            args.namespace,
            args.leader_election_id
        );
    }
    Ok(())
}

async fn client(path: Option<&PathBuf>) -> anyhow::Result<Client> {
    let config = match path {
        Some(p) => {
            let kc = kube::config::Kubeconfig::read_from(p)
                .with_context(|| format!("reading kubeconfig {}", p.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .context("loading kubeconfig")?
        }
        None => kube::Config::infer()
            .await
            .context("no kubeconfig and not running in a cluster")?,
    };
    Client::try_from(config).context("building the Kubernetes client")
}

pub async fn run(args: OperatorArgs) -> anyhow::Result<()> {
    let client = client(args.kubeconfig.as_ref()).await?;
    let identity = args
        .identity
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| format!("swell-{}", std::process::id()));
    let metrics = Arc::new(Metrics::new());
    let shutdown = CancellationToken::new();
    let ready = Arc::new(AtomicBool::new(false));

    let (certs, key) = serve::self_signed(vec!["localhost".into()])?;
    let tls = serve::server_config(certs, key, args.min_tls_version)?;
    let router = health_and_metrics(metrics.clone(), ready.clone());
    let server = tokio::spawn(serve::serve(
        args.metrics_bind_address,
        tls,
        router,
        shutdown.clone(),
    ));

    let sig = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
        sig.cancel();
    });

    let settings = |leader: bool| Settings {
        cluster_namespace: args
            .cluster_object_namespace
            .clone()
            .unwrap_or_else(|| args.namespace.clone()),
        credentials_namespace: args.credentials_namespace.clone().filter(|n| !n.is_empty()),
        instance: identity.clone(),
        concurrency: args.max_reconciles,
        watch_namespace: args.watch_namespace.clone().filter(|n| !n.is_empty()),
        leader,
        exact_targets: args.exact_targets,
        http_default_timeout: Duration::from_millis(args.http_default_timeout),
        cluster_name: args.k8s_cluster_name.clone(),
    };
    // The controller context serving metric values: a follower's until we lead.
    let current: CurrentCtx = Default::default();
    if args.metrics_api {
        start_metrics_api(&args, &client, &metrics, &current, &shutdown)?;
    } else if args.cloudwatch_adapter {
        anyhow::bail!(
            "--cloudwatch-adapter serves ExternalMetrics through the external metrics API: it needs --metrics-api=true"
        );
    }
    if args.webhook {
        start_webhook(&args, &client, &shutdown)?;
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
