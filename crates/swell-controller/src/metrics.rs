//! Prometheus metrics under KEDA's names, so existing dashboards and alerts keep working.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// Label sets are plain pairs because KEDA's label names (`scaledObject`, `triggerIndex`,
/// `type`) are not Rust identifiers the derive could produce.
pub type LabelSet = Vec<(&'static str, String)>;

/// `namespace, metric, scaledObject, scaler, triggerIndex, type`, as KEDA labels scaler metrics.
#[derive(Clone, Debug)]
pub struct ScalerLabels {
    pub namespace: String,
    pub metric: String,
    pub scaled_object: String,
    pub scaler: String,
    pub trigger_index: String,
    pub type_: String,
}

impl ScalerLabels {
    fn set(&self) -> LabelSet {
        vec![
            ("namespace", self.namespace.clone()),
            ("metric", self.metric.clone()),
            ("scaledObject", self.scaled_object.clone()),
            ("scaler", self.scaler.clone()),
            ("triggerIndex", self.trigger_index.clone()),
            ("type", self.type_.clone()),
        ]
    }
}

/// `keda_internal_scale_loop_latency_seconds`' labels, as KEDA's collector names them.
#[derive(Clone, Debug)]
pub struct LoopLabels {
    pub namespace: String,
    /// `scaledobject` or `scaledjob`.
    pub type_: &'static str,
    /// The ScaledObject's or ScaledJob's name.
    pub resource: String,
}

impl LoopLabels {
    fn set(&self) -> LabelSet {
        vec![
            ("namespace", self.namespace.clone()),
            ("type", self.type_.to_string()),
            ("resource", self.resource.clone()),
        ]
    }
}

impl ToLabels for LoopLabels {
    fn to_labels(&self) -> LabelSet {
        self.set()
    }
}

/// `keda_scaled_job_errors_total`'s labels.
#[derive(Clone, Debug)]
pub struct JobLabels {
    pub namespace: String,
    pub scaled_job: String,
}

impl ToLabels for JobLabels {
    fn to_labels(&self) -> LabelSet {
        vec![
            ("namespace", self.namespace.clone()),
            ("scaledJob", self.scaled_job.clone()),
        ]
    }
}

#[derive(Clone, Debug)]
pub struct ObjectLabels {
    pub namespace: String,
    pub scaled_object: String,
}

impl ObjectLabels {
    fn set(&self) -> LabelSet {
        vec![
            ("namespace", self.namespace.clone()),
            ("scaledObject", self.scaled_object.clone()),
        ]
    }
}

/// A family keyed by one of the label structs above.
pub struct Labeled<L, M> {
    family: Family<LabelSet, M>,
    _l: std::marker::PhantomData<L>,
}

impl<L, M> Clone for Labeled<L, M> {
    fn clone(&self) -> Self {
        Labeled {
            family: self.family.clone(),
            _l: std::marker::PhantomData,
        }
    }
}

impl<L, M: Default> Default for Labeled<L, M> {
    fn default() -> Self {
        Labeled {
            family: Family::default(),
            _l: std::marker::PhantomData,
        }
    }
}

pub trait ToLabels {
    fn to_labels(&self) -> LabelSet;
}
impl ToLabels for ScalerLabels {
    fn to_labels(&self) -> LabelSet {
        self.set()
    }
}
impl ToLabels for ObjectLabels {
    fn to_labels(&self) -> LabelSet {
        self.set()
    }
}

impl<L: ToLabels, M: prometheus_client::metrics::TypedMetric + Default> Labeled<L, M> {
    pub fn get_or_create(&self, l: &L) -> impl std::ops::Deref<Target = M> + '_ {
        self.family.get_or_create(&l.to_labels())
    }

    /// Drops one series; whether it existed.
    pub fn remove(&self, l: &L) -> bool {
        self.family.remove(&l.to_labels())
    }
}

// --- CloudEventSources: KEDA's `keda_cloudeventsource_*` families. ---

/// `keda_cloudeventsource_events_emitted_total`'s labels, as KEDA's collector names them.
#[derive(Clone, Debug)]
pub struct CloudEventLabels {
    /// The event's object's namespace (KEDA's `eventData.Namespace`).
    pub namespace: String,
    /// The CloudEventSource's or ClusterCloudEventSource's name.
    pub cloudeventsource: String,
    /// The destination kind: `http`.
    pub eventsink: &'static str,
    /// `emitted` (delivered) or `failed` (one failed try, or dropped from a full queue).
    pub state: &'static str,
}

impl ToLabels for CloudEventLabels {
    fn to_labels(&self) -> LabelSet {
        vec![
            ("namespace", self.namespace.clone()),
            ("cloudeventsource", self.cloudeventsource.clone()),
            ("eventsink", self.eventsink.to_string()),
            ("state", self.state.to_string()),
        ]
    }
}

/// The CloudEvent families, registered under `keda_cloudeventsource_…`.
#[derive(Default)]
pub struct CloudEventMetrics {
    pub emitted: Labeled<CloudEventLabels, Counter>,
    /// Events waiting in the sinks' queues, by the source's namespace ("" for cluster ones).
    queued: Family<LabelSet, Gauge>,
}

impl CloudEventMetrics {
    pub fn queued(&self, namespace: &str) -> impl std::ops::Deref<Target = Gauge> + '_ {
        self.queued
            .get_or_create(&vec![("namespace", namespace.to_string())])
    }

    fn register(&self, registry: &mut Reg<'_>) {
        registry.register(
            "cloudeventsource_events_emitted",
            "Measured the total number of emitted cloudevents. 'namespace': namespace of CloudEventSource 'cloudeventsource': name of CloudEventSource object. 'eventsink': destination of this emitted event 'state':indicated events emitted successfully or not",
            self.emitted.family.clone(),
        );
        registry.register(
            "cloudeventsource_events_queued",
            "Indicates how many events are still queue",
            self.queued.clone(),
        );
    }
}

// --- end of CloudEventSources ---

type FloatGauge = Gauge<f64, AtomicU64>;

pub struct Metrics {
    pub registry: Registry,
    pub scaler_value: Labeled<ScalerLabels, FloatGauge>,
    pub scaler_latency: Labeled<ScalerLabels, FloatGauge>,
    pub scaler_active: Labeled<ScalerLabels, FloatGauge>,
    pub scaler_errors: Labeled<ScalerLabels, Counter>,
    pub object_errors: Labeled<ObjectLabels, Counter>,
    pub job_errors: Labeled<JobLabels, Counter>,
    pub object_paused: Labeled<ObjectLabels, Gauge>,
    pub loop_latency: Labeled<LoopLabels, FloatGauge>,
    pub resources: Family<LabelSet, Gauge>,
    pub triggers: Family<LabelSet, Gauge>,
    /// Calls scalers made to their sources after de-duplication.
    pub upstream_calls: swell_scalers::UpstreamCalls,
    /// Metric value requests the external metrics API answered, by HTTP status code.
    pub metrics_api_requests: Family<LabelSet, Counter>,
    /// Reconciles that ended in an error, by controller and error category.
    pub reconcile_errors: Family<LabelSet, Counter>,
    /// Scalers' HTTP requests and empty answers (`keda_scaler_http_*`,
    /// `keda_scaler_empty_upstream_responses_total`).
    pub scalers: swell_scalers::observe::ScalerMetrics,
    /// AWS API calls and their estimated price (`swell_aws_*`).
    pub aws: swell_scalers::aws::AwsMetrics,
    /// The admission webhook's ScaledObject validations (`keda_webhook_*`).
    pub webhook: WebhookMetrics,
    /// Every registered family's exposed name (see [`Metrics::family_names`]).
    families: Vec<String>,
    pub cloud_events: CloudEventMetrics,
}

/// Registers families under one prefix, keeping their exposed names: the exposition leaves
/// out a family without series, so it cannot tell which exist.
struct Reg<'a> {
    registry: &'a mut Registry,
    prefix: &'static str,
    names: &'a mut Vec<String>,
}

impl Reg<'_> {
    fn register(
        &mut self,
        name: &str,
        help: &str,
        metric: impl prometheus_client::registry::Metric,
    ) {
        // prometheus-client appends `_total` to counters.
        let suffix = match metric.metric_type() {
            prometheus_client::metrics::MetricType::Counter => "_total",
            _ => "",
        };
        self.names.push(format!("{}_{name}{suffix}", self.prefix));
        self.registry.register(name, help, metric);
    }
}

/// `keda_webhook_scaled_object_validations_total{namespace,action}` and
/// `keda_webhook_scaled_object_validation_errors_total{namespace,action,reason}`.
#[derive(Clone, Default)]
pub struct WebhookMetrics {
    pub validations: Family<LabelSet, Counter>,
    pub validation_errors: Family<LabelSet, Counter>,
}

impl WebhookMetrics {
    /// One ScaledObject validated on `action` (`create`, `update`), as KEDA counts them.
    pub fn validation(&self, namespace: &str, action: &str) {
        self.validations
            .get_or_create(&vec![
                ("namespace", namespace.to_string()),
                ("action", action.to_string()),
            ])
            .inc();
    }

    /// One refused, with KEDA's `reason` (`incorrect-triggers`, …).
    pub fn validation_error(&self, namespace: &str, action: &str, reason: &str) {
        self.validation_errors
            .get_or_create(&vec![
                ("namespace", namespace.to_string()),
                ("action", action.to_string()),
                ("reason", reason.to_string()),
            ])
            .inc();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::with_high_cardinality(false)
    }

    /// With KEDA's `--enable-high-cardinality-metrics-labels`: HTTP request durations are
    /// labelled by trigger too.
    pub fn with_high_cardinality(high_cardinality: bool) -> Metrics {
        let mut root = Registry::default();
        let m = Metrics {
            scaler_value: Labeled::default(),
            scaler_latency: Labeled::default(),
            scaler_active: Labeled::default(),
            scaler_errors: Labeled::default(),
            object_errors: Labeled::default(),
            job_errors: Labeled::default(),
            object_paused: Labeled::default(),
            loop_latency: Labeled::default(),
            resources: Family::default(),
            triggers: Family::default(),
            upstream_calls: Default::default(),
            metrics_api_requests: Family::default(),
            reconcile_errors: Family::default(),
            scalers: swell_scalers::observe::ScalerMetrics::new(high_cardinality),
            aws: Default::default(),
            webhook: WebhookMetrics::default(),
            families: Vec::new(),
            cloud_events: CloudEventMetrics::default(),
            registry: Registry::default(),
        };
        let mut families = Vec::new();
        m.register_swell(&mut Reg {
            registry: root.sub_registry_with_prefix("swell"),
            prefix: "swell",
            names: &mut families,
        });
        m.register_keda(&mut Reg {
            registry: root.sub_registry_with_prefix("keda"),
            prefix: "keda",
            names: &mut families,
        });
        Metrics {
            registry: root,
            families,
            ..m
        }
    }

    /// Swell's own families (`swell_…`).
    fn register_swell(&self, registry: &mut Reg<'_>) {
        let m = self;
        registry.register(
            "scaler_upstream_calls",
            "Calls to event sources, after sharing between triggers",
            m.upstream_calls.clone(),
        );
        registry.register(
            "aws_api_calls",
            "AWS API calls scalers made (after batching and sharing), by IAM service and operation",
            m.aws.calls.clone(),
        );
        registry.register(
            "aws_estimated_cost_dollars",
            "Estimated price of those calls in US dollars, from AWS's per-request list prices \
             (us-east-1; see docs/aws.md)",
            m.aws.cost.clone(),
        );
        registry.register(
            "metrics_api_requests",
            "Metric value requests to the external metrics API, by HTTP status code",
            m.metrics_api_requests.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconciles that failed, by controller (scaled_object, scaled_job) and error category",
            m.reconcile_errors.clone(),
        );
    }

    /// KEDA's families under KEDA's names (`keda_…`), so dashboards and alerts keep working.
    fn register_keda(&self, registry: &mut Reg<'_>) {
        let m = self;
        let build: Family<LabelSet, Gauge> = Family::default();
        build
            .get_or_create(&vec![
                ("version", env!("CARGO_PKG_VERSION").to_string()),
                (
                    "git_commit",
                    option_env!("SWELL_GIT_COMMIT")
                        .unwrap_or("unknown")
                        .to_string(),
                ),
                ("goversion", "rust".to_string()),
                ("goos", std::env::consts::OS.to_string()),
                ("goarch", std::env::consts::ARCH.to_string()),
            ])
            .set(1);
        registry.register(
            "build_info",
            "Swell build information (KEDA-compatible name)",
            build,
        );
        registry.register(
            "scaler_metrics_value",
            "The current value of each scaler's metric",
            m.scaler_value.family.clone(),
        );
        registry.register(
            "scaler_metrics_latency_seconds",
            "Latency of retrieving each scaler's metric",
            m.scaler_latency.family.clone(),
        );
        registry.register(
            "scaler_active",
            "1 when the scaler is active, 0 otherwise",
            m.scaler_active.family.clone(),
        );
        registry.register(
            "scaler_detail_errors",
            "Errors per scaler",
            m.scaler_errors.family.clone(),
        );
        registry.register(
            "scaled_object_errors",
            "Errors per ScaledObject",
            m.object_errors.family.clone(),
        );
        registry.register(
            "scaled_job_errors",
            "Number of scaled job errors",
            m.job_errors.family.clone(),
        );
        registry.register(
            "scaled_object_paused",
            "1 when the ScaledObject is paused",
            m.object_paused.family.clone(),
        );
        registry.register(
            "internal_scale_loop_latency_seconds",
            "Time one scale loop pass took",
            m.loop_latency.family.clone(),
        );
        registry.register(
            "resource_registered_total",
            "ScaledObjects per namespace",
            m.resources.clone(),
        );
        registry.register(
            "trigger_registered_total",
            "Triggers per type and namespace",
            m.triggers.clone(),
        );
        registry.register(
            "scaler_empty_upstream_responses",
            "Number of times a query returns an empty result",
            m.scalers.empty_upstream.clone(),
        );
        registry.register(
            "scaler_http_requests",
            "Total number of outbound HTTP requests issued during scaler metric collection",
            m.scalers.http_requests.clone(),
        );
        registry.register(
            "scaler_http_request_duration_seconds",
            "Duration in seconds of outbound HTTP requests issued during scaler metric collection",
            m.scalers.http_duration.clone(),
        );
        registry.register(
            "webhook_scaled_object_validations",
            "Total number of scaled object validations",
            m.webhook.validations.clone(),
        );
        registry.register(
            "webhook_scaled_object_validation_errors",
            "Total number of scaled object validating errors",
            m.webhook.validation_errors.clone(),
        );
        m.cloud_events.register(registry);
    }

    /// The name of every family /metrics exposes (`keda_…`, `swell_…`), series or not, as a
    /// scrape shows them before histogram suffixes (`_bucket`, `_sum`, `_count`).
    pub fn family_names(&self) -> Vec<String> {
        self.families.clone()
    }

    /// Counts one answered metric value request.
    pub fn metrics_api_request(&self, code: u16) {
        self.metrics_api_requests
            .get_or_create(&vec![("code", code.to_string())])
            .inc();
    }

    /// Counts a failed reconcile of `controller` (`scaled_object`, `scaled_job`).
    pub fn reconcile_error(&self, controller: &'static str, category: &'static str) {
        self.reconcile_errors
            .get_or_create(&vec![
                ("controller", controller.to_string()),
                ("category", category.to_string()),
            ])
            .inc();
    }

    /// `keda_resource_registered_total` and `keda_trigger_registered_total`: a ScaledObject
    /// or ScaledJob (`kind`) and its triggers registered (`delta` 1) or gone (-1).
    pub fn count_registered(&self, kind: &str, namespace: &str, triggers: &[&str], delta: i64) {
        self.resources
            .get_or_create(&vec![
                ("type", kind.to_string()),
                ("namespace", namespace.to_string()),
            ])
            .inc_by(delta);
        for t in triggers {
            self.triggers
                .get_or_create(&vec![("type", t.to_string())])
                .inc_by(delta);
        }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
#[path = "metrics_chart_tests.rs"]
mod chart_files;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_keda_names() {
        let m = Metrics::new();
        let l = ScalerLabels {
            namespace: "ns".into(),
            metric: "s0-x".into(),
            scaled_object: "so".into(),
            scaler: "metrics-api".into(),
            trigger_index: "0".into(),
            type_: "scaledobject".into(),
        };
        m.scaler_value.get_or_create(&l).set(3.0);
        m.scaler_errors.get_or_create(&l).inc();
        m.object_paused
            .get_or_create(&ObjectLabels {
                namespace: "ns".into(),
                scaled_object: "so".into(),
            })
            .set(1);
        let lo = LoopLabels {
            namespace: "ns".into(),
            type_: "scaledjob",
            resource: "sj".into(),
        };
        m.loop_latency.get_or_create(&lo).set(0.5);
        let text = m.encode();
        for name in [
            "keda_internal_scale_loop_latency_seconds{namespace=\"ns\",type=\"scaledjob\",resource=\"sj\"} 0.5",
            "keda_build_info",
            "keda_scaler_metrics_value{",
            "keda_scaler_detail_errors_total{",
            "keda_scaled_object_paused{",
            "scaledObject=\"so\"",
            "triggerIndex=\"0\"",
        ] {
            assert!(text.contains(name), "{name} missing in:\n{text}");
        }
        let ce = CloudEventLabels {
            namespace: "ns".into(),
            cloudeventsource: "ces".into(),
            eventsink: "http",
            state: "emitted",
        };
        m.cloud_events.emitted.get_or_create(&ce).inc();
        m.cloud_events.queued("ns").set(2);
        let text = m.encode();
        for line in [
            "keda_cloudeventsource_events_emitted_total{namespace=\"ns\",cloudeventsource=\"ces\",eventsink=\"http\",state=\"emitted\"} 1",
            "keda_cloudeventsource_events_queued{namespace=\"ns\"} 2",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing in:\n{text}"
            );
        }
        // A removed series leaves the exposition.
        assert!(m.scaler_value.remove(&l) && !m.scaler_value.remove(&l));
        assert!(!m.encode().contains("keda_scaler_metrics_value{"));
    }
}
