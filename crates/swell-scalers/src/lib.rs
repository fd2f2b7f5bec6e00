//! Scalers: each reads one event source and reports a metric value and whether the
//! source is active. One file per scaler under `scalers/`; parameters are declared with
//! [`metadata::Field`] and parsed by [`metadata::Params`].

pub mod aws;
pub mod azure_storage;
pub mod coalesce;
pub mod http;
pub mod http_auth;
pub mod kafka;
pub mod metadata;
pub mod oauth;
pub mod observe;
pub mod redis_client;
pub mod scalers;
pub mod tls;
pub mod upstream;

/// KEDA's external scaler gRPC contract, generated from `proto/externalscaler.proto`.
#[allow(clippy::all, clippy::pedantic, missing_docs, unreachable_pub)]
pub mod externalscaler {
    tonic::include_proto!("externalscaler");
}

/// etcd v3's KV and Auth services (a subset), generated from `proto/etcd.proto`.
#[allow(clippy::all, clippy::pedantic, missing_docs, unreachable_pub)]
pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
}

use std::collections::BTreeMap;

pub use metadata::{Field, Invalid, MetadataError, ParamError, Params, RawParams, Source};
pub use upstream::{UpstreamError, UpstreamKind};

/// How the HPA compares a metric with its target (`triggers[i].metricType`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MetricType {
    #[default]
    AverageValue,
    Value,
    Utilization,
}

impl MetricType {
    pub fn parse(s: Option<&str>) -> Option<MetricType> {
        Some(match s.unwrap_or("") {
            "" | "AverageValue" => MetricType::AverageValue,
            "Value" => MetricType::Value,
            "Utilization" => MetricType::Utilization,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::AverageValue => "AverageValue",
            MetricType::Value => "Value",
            MetricType::Utilization => "Utilization",
        }
    }
}

/// What a trigger asks of the HPA.
#[derive(Clone, Debug, PartialEq)]
pub enum MetricSpec {
    /// An external metric served by Swell, named `s<index>-…`.
    External {
        name: String,
        target: f64,
        metric_type: MetricType,
    },
    /// A resource metric (cpu or memory) the HPA reads from the metrics server.
    Resource {
        resource: String,
        metric_type: MetricType,
        target: String,
        container: Option<String>,
    },
}

impl MetricSpec {
    pub fn name(&self) -> &str {
        match self {
            MetricSpec::External { name, .. } => name,
            MetricSpec::Resource { resource, .. } => resource,
        }
    }
}

/// One reading of a source.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub value: f64,
    pub active: bool,
}

/// Why a reading failed. The message is shown in status and events, so it must never
/// contain credentials.
#[derive(Debug, thiserror::Error)]
pub enum ScalerError {
    #[error("{0}")]
    Metadata(#[from] MetadataError),
    #[error("unknown trigger type {0:?}; use one of: {1}")]
    UnknownType(String, String),
    #[error("{0}")]
    Upstream(#[from] UpstreamError),
    /// A state a built scaler should not be in (a client Swell did not give it, a schedule
    /// with no next time): said, never panicked on.
    #[error("{0}")]
    Internal(String),
    #[error(
        "this trigger has no external metric to read ({0} is read by the HPA from the metrics server)"
    )]
    NotPolled(&'static str),
}

impl ScalerError {
    /// A low-cardinality label for logs and metrics (`swell_reconcile_errors_total`).
    pub fn category(&self) -> &'static str {
        match self {
            ScalerError::Metadata(_) => "metadata",
            ScalerError::UnknownType(..) | ScalerError::NotPolled(_) => "unsupported",
            ScalerError::Upstream(e) => e.category(),
            ScalerError::Internal(_) => "internal",
        }
    }

    /// The KEDA reason for the condition and event this error gives a ScaledObject
    /// (`pkg/eventreason`): a trigger that cannot be built from its spec fails the check,
    /// one that cannot read its source is a failed scaler. (For a ScaledJob the check
    /// reason is `ScaledJobCheckFailed`.)
    pub fn reason(&self) -> &'static str {
        match self {
            ScalerError::Metadata(_) | ScalerError::UnknownType(..) => "ScaledObjectCheckFailed",
            ScalerError::Upstream(_) | ScalerError::Internal(_) | ScalerError::NotPolled(_) => {
                "KEDAScalerFailed"
            }
        }
    }

    /// This error as an upstream failure (for coalesced readings, which share one): an
    /// upstream error as it is, anything else as `Other` with its message.
    pub fn into_upstream(self) -> UpstreamError {
        match self {
            ScalerError::Upstream(e) => e,
            other => UpstreamError::new(upstream::UpstreamKind::Other, other.to_string()),
        }
    }

    /// The upstream failure, when that is what this is.
    pub fn upstream(&self) -> Option<&UpstreamError> {
        match self {
            ScalerError::Upstream(e) => Some(e),
            _ => None,
        }
    }
}

/// Everything a scaler may need to build itself.
#[derive(Clone, Debug, Default)]
pub struct TriggerInput {
    pub index: usize,
    pub type_: String,
    pub name: Option<String>,
    /// `triggers[i].metricType`, unset when the manifest leaves it out.
    pub metric_type: Option<MetricType>,
    pub namespace: String,
    pub scaled_object: String,
    pub params: RawParams,
    /// Pod identity resolved by the controller (TriggerAuthentication and ServiceAccount).
    pub pod_identity: aws::PodIdentityInput,
    /// The ScaledObject's polling interval: answers younger than this are shared.
    pub polling_interval: std::time::Duration,
}

/// A live trigger.
#[async_trait::async_trait]
pub trait Scaler: Send + Sync {
    /// The metric this trigger gives the HPA.
    fn metric_spec(&self) -> MetricSpec;

    /// Reads the source once. Resource triggers (cpu, memory) return `NotPolled`.
    async fn sample(&self) -> Result<Sample, ScalerError>;

    /// Identifies the upstream query, so triggers asking the same question share one call.
    /// `None` means the reading is cheap and local.
    fn upstream_key(&self) -> Option<String> {
        None
    }

    /// Whether the scale loop polls this trigger for activity.
    fn polled(&self) -> bool {
        true
    }

    /// Asks the source what the trigger needs before its metric is known (external:
    /// `GetMetricSpec`). Called once after [`build`], before [`Scaler::metric_spec`].
    async fn prepare(&mut self) -> Result<(), ScalerError> {
        Ok(())
    }

    /// Push scalers (external-push) start watching their source here and return what
    /// they notify when it reports activity; the scale loop then reads all triggers at
    /// once instead of waiting for its polling interval. Called once by the scale loop
    /// when it starts; the watch ends when the scaler is dropped.
    fn start_push(&self) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        None
    }
}

/// Upstream calls per scaler type (`swell_scaler_upstream_calls_total`).
pub type UpstreamCalls = prometheus_client::metrics::family::Family<
    Vec<(&'static str, String)>,
    prometheus_client::metrics::counter::Counter,
>;

/// Shared clients handed to scalers, so connections and answers are reused across triggers.
#[derive(Clone, Default)]
pub struct Shared {
    pub workloads: Option<std::sync::Arc<dyn scalers::kubernetes_workload::PodCounter>>,
    pub aws: aws::SharedAws,
    /// Azure Storage clients per service URL and credential (azure-queue, azure-blob).
    pub azure: std::sync::Arc<azure_storage::StorageClients>,
    pub sqs_counts: std::sync::Arc<
        coalesce::Coalescer<String, Result<scalers::aws_sqs_queue::QueueCounts, UpstreamError>>,
    >,
    /// HTTP clients per TLS configuration (prometheus, …).
    pub http: std::sync::Arc<http::HttpClients>,
    /// OAuth2 client-credentials tokens per client (prometheus, metrics-api `authModes: oauth`).
    pub oauth_tokens: std::sync::Arc<oauth::Tokens>,
    /// Single numeric answers shared by triggers asking the same question (prometheus, …).
    pub values: std::sync::Arc<coalesce::Coalescer<String, Result<f64, UpstreamError>>>,
    /// gRPC channels per address and TLS configuration (external, external-push).
    pub grpc: std::sync::Arc<scalers::external::GrpcChannels>,
    /// Kafka clusters per bootstrap servers and credentials (kafka).
    pub kafka: std::sync::Arc<kafka::KafkaClients>,
    /// Offsets read for a consumer group, shared by triggers asking the same (kafka).
    pub kafka_offsets:
        std::sync::Arc<coalesce::Coalescer<String, Result<kafka::GroupOffsets, UpstreamError>>>,
    /// Redis connections per server, credentials and TLS settings (redis, redis-streams).
    pub redis: std::sync::Arc<redis_client::RedisClients>,
    /// PostgreSQL clients per connection string (postgresql).
    pub postgres: std::sync::Arc<scalers::postgresql::PostgresClients>,
    /// MySQL pools per server, credentials and settings (mysql).
    pub mysql: std::sync::Arc<scalers::mysql::MysqlPools>,
    /// RabbitMQ AMQP connections per server and credentials, and shared readings (rabbitmq).
    pub rabbitmq: std::sync::Arc<scalers::rabbitmq::RabbitMqClients>,
    /// etcd clients per endpoints, TLS settings and credentials (etcd).
    pub etcd: std::sync::Arc<scalers::etcd::EtcdClients>,
    pub upstream_calls: UpstreamCalls,
    /// HTTP requests and empty answers, by trigger (KEDA's scaler HTTP metrics).
    pub observe: observe::ScalerMetrics,
}

impl Shared {
    pub fn count_upstream(&self, scaler: &str) {
        self.upstream_calls
            .get_or_create(&vec![("scaler", scaler.to_string())])
            .inc();
    }

    /// A single-number reading: triggers asking the same question (`key`) within
    /// `polling` share one `fetch`, counted as an upstream call of `scaler`; active when the
    /// value is above `activation`.
    pub async fn sample_value<F, Fut>(
        &self,
        scaler: &str,
        key: &str,
        polling: std::time::Duration,
        activation: f64,
        fetch: F,
    ) -> Result<Sample, ScalerError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<f64, UpstreamError>>,
    {
        let (value, upstream) = self.values.get(&key.to_string(), polling, fetch).await;
        if upstream {
            self.count_upstream(scaler);
        }
        let value = value.map_err(ScalerError::Upstream)?;
        Ok(Sample {
            value,
            active: value > activation,
        })
    }
}

/// Builds the scaler for a trigger.
pub fn build(input: &TriggerInput, shared: &Shared) -> Result<Box<dyn Scaler>, ScalerError> {
    scalers::build(input, shared)
}

/// Trigger types Swell knows.
pub fn known_types() -> impl Iterator<Item = &'static str> {
    scalers::REGISTRY.iter().map(|e| e.name)
}

/// Helper for scalers' tests: trigger `index` of `type_` with these metadata and
/// TriggerAuthentication parameters.
#[cfg(test)]
pub fn trigger_input(
    type_: &str,
    index: usize,
    meta: &[(&str, &str)],
    auth: &[(&str, &str)],
) -> TriggerInput {
    TriggerInput {
        index,
        type_: type_.into(),
        params: RawParams {
            trigger_index: index,
            metadata: map(meta),
            auth: map(auth),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Helper for scalers: a metadata map from pairs (tests).
pub fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Checks a trigger's parameters without I/O, with the same parsing as [`build`].
pub fn check(input: &TriggerInput) -> Result<scalers::Checked, ScalerError> {
    scalers::check(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind of error has its label and its KEDA reason.
    #[test]
    fn categories_and_reasons() {
        let metadata = ScalerError::Metadata(MetadataError(vec![ParamError {
            field: "triggers[0].metadata.queueURL".into(),
            message: "is required".into(),
        }]));
        let mut table = vec![
            (metadata, "metadata", "ScaledObjectCheckFailed"),
            (
                ScalerError::UnknownType("nope".into(), "cron".into()),
                "unsupported",
                "ScaledObjectCheckFailed",
            ),
            (
                ScalerError::NotPolled("cpu"),
                "unsupported",
                "KEDAScalerFailed",
            ),
            (
                ScalerError::Internal("no client".into()),
                "internal",
                "KEDAScalerFailed",
            ),
        ];
        for (kind, category) in [
            (UpstreamKind::Auth, "auth"),
            (UpstreamKind::NotFound, "not_found"),
            (UpstreamKind::Throttled, "throttled"),
            (UpstreamKind::Timeout, "timeout"),
            (UpstreamKind::Connect, "connect"),
            (UpstreamKind::BadResponse, "bad_response"),
            (UpstreamKind::Unsupported, "unsupported"),
            (UpstreamKind::Other, "upstream"),
        ] {
            let e = UpstreamError::new(kind, "GET http://p: refused").with_status(500);
            table.push((e.into(), category, "KEDAScalerFailed"));
        }
        for (e, category, reason) in table {
            assert_eq!((e.category(), e.reason()), (category, reason), "{e:?}");
        }
        // The message is the upstream's own, unchanged by the structure around it.
        let e = ScalerError::from(UpstreamError::http(403, "GET http://p returned 403"));
        assert_eq!(e.to_string(), "GET http://p returned 403");
        assert_eq!(e.upstream().and_then(|u| u.status), Some(403));
    }
}
