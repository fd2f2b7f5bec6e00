//! The `external.metrics.k8s.io/v1beta1` API server that the HPA controller reaches through
//! kube-apiserver's aggregation layer, behaving like KEDA's metrics server.
//!
//! It knows nothing about ScaledObjects: values come from a [`MetricSource`]. Requests are
//! authenticated like any aggregated API server (front-proxy request headers or client
//! certificates, from `kube-system/extension-apiserver-authentication`) and authorized with
//! delegated SubjectAccessReviews.
//!
//! With [`delegate`] configured, metrics it does not own are read from other
//! external-metrics servers, as their front proxy, after its own authorization.
//!
//! The server's identity needs: a RoleBinding in `kube-system` to
//! `extension-apiserver-authentication-reader` (get/list/watch of the ConfigMap), a
//! ClusterRoleBinding to `system:auth-delegator` (SubjectAccessReviews), and with a
//! self-generated certificate `get`/`patch` on the APIService
//! `v1beta1.external.metrics.k8s.io`.

mod api;
mod authn;
mod authz;
pub mod delegate;
mod server;
mod tls;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use authn::{Authentication, UserInfo};
pub use authz::{
    Attributes, AuthorizationError, Authorizer, CachedAuthorizer, Decision,
    SubjectAccessReviewAuthorizer,
};
pub use server::Server;
pub use tls::{
    APISERVICE_NAME, CertSource, Certs, MinTls, SelfSigned, ensure_webhook_ca_bundle,
    patch_apiservice_ca_bundle,
};

/// The API group and version served.
pub const GROUP: &str = "external.metrics.k8s.io";
pub const VERSION: &str = "v1beta1";

/// Where metric values come from; the operator implements it.
#[async_trait::async_trait]
pub trait MetricSource: Send + Sync + 'static {
    /// Values for `metric` in `namespace` for the given label selector (e.g.
    /// `scaledobject.keda.sh/name=demo`; empty when the request had none).
    async fn external_metric(
        &self,
        namespace: &str,
        metric: &str,
        selector: &str,
    ) -> Result<Vec<MetricValue>, MetricError>;

    /// Whether the source answers for `metric` although its name is not one Swell gives its
    /// ScaledObjects' metrics (e.g. a k8s-cloudwatch-adapter `ExternalMetric`), so that it
    /// is not sent to a delegate.
    fn serves(&self, _namespace: &str, _metric: &str, _selector: &str) -> bool {
        false
    }
}

/// One item of an `ExternalMetricValueList`.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricValue {
    pub metric_name: String,
    pub metric_labels: BTreeMap<String, String>,
    pub value: f64,
    pub timestamp: jiff::Timestamp,
}

/// Why a [`MetricSource`] has no values; each maps to an HTTP status.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum MetricError {
    /// 404: no such metric (or no ScaledObject matches the selector).
    #[error("{0}")]
    NotFound(String),
    /// 400: the request cannot be answered as asked (e.g. a malformed selector).
    #[error("{0}")]
    BadRequest(String),
    /// 503: the value cannot be produced right now (e.g. the upstream failed).
    #[error("{0}")]
    Unavailable(String),
}

impl MetricError {
    /// The HTTP status the API answers with.
    pub fn status(&self) -> http::StatusCode {
        match self {
            MetricError::NotFound(_) => http::StatusCode::NOT_FOUND,
            MetricError::BadRequest(_) => http::StatusCode::BAD_REQUEST,
            MetricError::Unavailable(_) => http::StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The `Status` reason Kubernetes clients read.
    pub fn reason(&self) -> &'static str {
        match self {
            MetricError::NotFound(_) => "NotFound",
            MetricError::BadRequest(_) => "BadRequest",
            MetricError::Unavailable(_) => "ServiceUnavailable",
        }
    }
}

/// How the server runs.
#[derive(Clone, Debug)]
pub struct Config {
    pub bind: SocketAddr,
    pub min_tls: MinTls,
    pub cert: CertSource,
    /// How long an authorization decision (allow or deny) is reused.
    pub authz_cache_ttl: Duration,
    /// At most this many cached decisions.
    pub authz_cache_size: usize,
    /// Other external-metrics servers for the metrics Swell does not own; off when `None`.
    pub delegation: Option<delegate::DelegationConfig>,
}

impl Config {
    pub fn new(bind: SocketAddr, cert: CertSource) -> Self {
        Config {
            bind,
            min_tls: MinTls::Tls12,
            cert,
            authz_cache_ttl: Duration::from_secs(10),
            authz_cache_size: 16_384,
            delegation: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("reading ConfigMap kube-system/extension-apiserver-authentication: {0}")]
    AuthenticationConfigMap(#[source] kube::Error),
    #[error("invalid authentication configuration: {0}")]
    Authentication(String),
    #[error("serving certificate: {0}")]
    Certificate(String),
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("metrics API delegation: {0}")]
    Delegation(#[from] delegate::DelegateError),
}

/// Serves the external metrics API until `shutdown` fires. `client` reads the
/// authentication ConfigMap (RoleBinding to `extension-apiserver-authentication-reader`),
/// creates SubjectAccessReviews (`system:auth-delegator`) and, with a self-signed
/// certificate, patches the APIService's `caBundle`.
pub async fn serve(
    config: Config,
    source: Arc<dyn MetricSource>,
    client: kube::Client,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<(), Error> {
    Server::bind(config, source, client)
        .await?
        .run(shutdown)
        .await
}
