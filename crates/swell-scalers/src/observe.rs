//! What scalers observe while reading their sources, under KEDA's metric names: every
//! outbound HTTP request (`keda_scaler_http_requests_total`,
//! `keda_scaler_http_request_duration_seconds`) and every empty answer
//! (`keda_scaler_empty_upstream_responses_total`).
//!
//! KEDA attaches the trigger's identity to the request's context and its HTTP transport
//! reads it back; here the scale loop runs each reading inside [`Scope::run`] (a task-local),
//! and [`send`] and [`empty_response`] read it. Requests outside a reading (building a
//! scaler, fetching an OAuth token) are not recorded, as in KEDA.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

type LabelSet = Vec<(&'static str, String)>;

/// KEDA's buckets for `keda_scaler_http_request_duration_seconds`.
pub const HTTP_DURATION_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

fn duration_histogram() -> Histogram {
    Histogram::new(HTTP_DURATION_BUCKETS)
}

/// Another exporter's view of each request (OpenTelemetry's duration histogram, which no
/// observable instrument can read back): reader, status code label, seconds.
pub type RequestHook = Box<dyn Fn(&Reader, &str, f64) + Send + Sync>;

/// The families, shared by every scaler and registered by the operator's metrics.
#[derive(Clone)]
pub struct ScalerMetrics {
    pub http_requests: Family<LabelSet, Counter>,
    pub http_duration: Family<LabelSet, Histogram>,
    pub empty_upstream: Family<LabelSet, Counter>,
    /// KEDA's `--enable-high-cardinality-metrics-labels`: the duration histogram is labelled
    /// by the trigger too, not only by scaler and status code.
    pub high_cardinality: bool,
    /// Set once when OpenTelemetry export is on.
    pub request_hook: Arc<std::sync::OnceLock<RequestHook>>,
}

impl Default for ScalerMetrics {
    fn default() -> ScalerMetrics {
        ScalerMetrics::new(false)
    }
}

impl ScalerMetrics {
    pub fn new(high_cardinality: bool) -> ScalerMetrics {
        ScalerMetrics {
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(duration_histogram),
            empty_upstream: Family::default(),
            high_cardinality,
            request_hook: Arc::default(),
        }
    }
}

/// Who is reading: one trigger of one ScaledObject or ScaledJob.
#[derive(Clone, Debug, Default)]
pub struct Reader {
    pub namespace: String,
    /// The ScaledObject's or ScaledJob's name.
    pub scaled_resource: String,
    /// `ScaledObject` or `ScaledJob` (KEDA's `resourceType` label).
    pub resource_type: &'static str,
    /// The trigger type (`prometheus`, …).
    pub scaler: String,
    /// `triggers[i].name`, empty when unset.
    pub trigger_name: String,
    /// The metric name (`s0-prometheus`).
    pub metric_name: String,
}

/// A reader and where its observations go.
#[derive(Clone)]
pub struct Scope {
    pub reader: Arc<Reader>,
    pub sink: ScalerMetrics,
}

tokio::task_local! {
    static SCOPE: Scope;
}

impl Scope {
    /// Runs one reading with this scope current.
    pub async fn run<F: Future>(&self, reading: F) -> F::Output {
        SCOPE.scope(self.clone(), reading).await
    }
}

fn current() -> Option<Scope> {
    SCOPE.try_with(Scope::clone).ok()
}

/// KEDA's `status_code` label: the HTTP status, or `error` when no response came.
pub fn status_label(status: Option<u16>) -> String {
    status.map_or_else(|| "error".to_string(), |c| c.to_string())
}

/// `keda_scaler_http_requests_total`'s labels, in KEDA's order.
pub fn request_labels(r: &Reader, code: &str) -> LabelSet {
    vec![
        ("namespace", r.namespace.clone()),
        ("scaled_resource", r.scaled_resource.clone()),
        ("scaler", r.scaler.clone()),
        ("trigger_name", r.trigger_name.clone()),
        ("metric_name", r.metric_name.clone()),
        ("status_code", code.to_string()),
    ]
}

/// `keda_scaler_http_request_duration_seconds`' labels: scaler and status code, or all of
/// the request labels with high cardinality.
pub fn duration_labels(r: &Reader, code: &str, high_cardinality: bool) -> LabelSet {
    if high_cardinality {
        return request_labels(r, code);
    }
    vec![
        ("scaler", r.scaler.clone()),
        ("status_code", code.to_string()),
    ]
}

/// `keda_scaler_empty_upstream_responses_total`'s labels, in KEDA's order.
pub fn empty_labels(r: &Reader, ignore_null_values: bool) -> LabelSet {
    vec![
        ("namespace", r.namespace.clone()),
        ("scaledResource", r.scaled_resource.clone()),
        ("triggerName", r.trigger_name.clone()),
        ("metricName", r.metric_name.clone()),
        ("resourceType", r.resource_type.to_string()),
        ("ignoreNullValues", ignore_null_values.to_string()),
    ]
}

/// Sends `req`, recording it (status or `error`, and duration) for the current reader.
pub async fn send(req: reqwest::RequestBuilder) -> reqwest::Result<reqwest::Response> {
    request(req.send()).await
}

/// Awaits one HTTP request (`send()` or `execute()`), recording it for the current reader.
pub async fn request<F>(sent: F) -> reqwest::Result<reqwest::Response>
where
    F: Future<Output = reqwest::Result<reqwest::Response>>,
{
    let started = Instant::now();
    let result = sent.await;
    if let Some(scope) = current() {
        let status = result.as_ref().ok().map(|r| r.status().as_u16());
        let code = status_label(status);
        let took = started.elapsed().as_secs_f64();
        let (r, m) = (&scope.reader, &scope.sink);
        m.http_requests
            .get_or_create(&request_labels(r, &code))
            .inc();
        m.http_duration
            .get_or_create(&duration_labels(r, &code, m.high_cardinality))
            .observe(took);
        if let Some(hook) = m.request_hook.get() {
            hook(r, &code, took);
        }
    }
    result
}

/// Counts an empty answer (a query that matched nothing) for the current reader.
pub fn empty_response(ignore_null_values: bool) {
    if let Some(scope) = current() {
        scope
            .sink
            .empty_upstream
            .get_or_create(&empty_labels(&scope.reader, ignore_null_values))
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader() -> Reader {
        Reader {
            namespace: "ns".into(),
            scaled_resource: "so".into(),
            resource_type: "ScaledObject",
            scaler: "prometheus".into(),
            trigger_name: "t".into(),
            metric_name: "s0-prometheus".into(),
        }
    }

    #[test]
    fn label_sets_are_kedas() {
        let r = reader();
        let names = |l: &LabelSet| l.iter().map(|(k, _)| *k).collect::<Vec<_>>();
        let cases: [(LabelSet, &[&str]); 4] = [
            (
                request_labels(&r, "200"),
                &[
                    "namespace",
                    "scaled_resource",
                    "scaler",
                    "trigger_name",
                    "metric_name",
                    "status_code",
                ],
            ),
            (
                duration_labels(&r, "200", false),
                &["scaler", "status_code"],
            ),
            (
                duration_labels(&r, "error", true),
                &[
                    "namespace",
                    "scaled_resource",
                    "scaler",
                    "trigger_name",
                    "metric_name",
                    "status_code",
                ],
            ),
            (
                empty_labels(&r, true),
                &[
                    "namespace",
                    "scaledResource",
                    "triggerName",
                    "metricName",
                    "resourceType",
                    "ignoreNullValues",
                ],
            ),
        ];
        for (labels, want) in cases {
            assert_eq!(names(&labels), want);
        }
        assert_eq!(status_label(Some(404)), "404");
        assert_eq!(status_label(None), "error");
        assert_eq!(empty_labels(&r, false)[5].1, "false");
    }

    #[tokio::test]
    async fn records_only_inside_a_reading() {
        let sink = ScalerMetrics::default();
        empty_response(true);
        let scope = Scope {
            reader: Arc::new(reader()),
            sink: sink.clone(),
        };
        scope.run(async { empty_response(true) }).await;
        let labels = empty_labels(&reader(), true);
        assert_eq!(sink.empty_upstream.get_or_create(&labels).get(), 1);
        // A request nobody listens on fails to connect: `error`.
        let client = reqwest::Client::new();
        let req = client.get("http://127.0.0.1:9/");
        assert!(scope.run(send(req)).await.is_err());
        let r = reader();
        let total = sink
            .http_requests
            .get_or_create(&request_labels(&r, "error"));
        assert_eq!(total.get(), 1);
    }
}
