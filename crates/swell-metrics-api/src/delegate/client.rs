//! HTTPS to one delegate: rustls with the delegate's CA and Swell's front-proxy client
//! certificate; only the headers [`super::route`] builds are sent.

use std::time::Duration;

use http::{HeaderName, HeaderValue, StatusCode};
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::config::{DelegateSpec, DelegateTls};
use crate::authn::provider;

/// A delegate's answer larger than this is refused (a metric list is a few KiB).
const MAX_BODY: usize = 4 << 20;

/// Why a delegate gave no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum DelegateError {
    #[error("delegate {delegate}: TLS settings: {source}")]
    Tls {
        delegate: String,
        source: rustls::Error,
    },
    #[error("delegate {delegate:?} ({url}) cannot be reached: {reason}")]
    Unreachable {
        delegate: String,
        url: String,
        reason: String,
    },
    #[error("delegate {delegate:?} ({url}) did not answer within {after:?}")]
    Timeout {
        delegate: String,
        url: String,
        after: Duration,
    },
    #[error("delegate {delegate:?} ({url}): reading the answer: {reason}")]
    Body {
        delegate: String,
        url: String,
        reason: String,
    },
    #[error("delegate {delegate:?} ({url}): discovery answered {status}: {reason}")]
    Discovery {
        delegate: String,
        url: String,
        status: u16,
        reason: String,
    },
}

impl DelegateError {
    /// A low-cardinality label for logs and metrics.
    pub fn category(&self) -> &'static str {
        match self {
            DelegateError::Tls { .. } => "tls_config",
            DelegateError::Unreachable { .. } => "unreachable",
            DelegateError::Timeout { .. } => "timeout",
            DelegateError::Body { .. } => "body",
            DelegateError::Discovery { .. } => "discovery",
        }
    }
}

/// The whole cause chain, so "connection refused" is said rather than "client error".
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let part = c.to_string();
        if !s.contains(&part) {
            s.push_str(": ");
            s.push_str(&part);
        }
        cur = c.source();
    }
    s
}

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

/// An HTTPS client for one delegate (public so tests and benchmarks read delegates the way
/// Swell does).
pub struct DelegateClient {
    pub name: String,
    pub base_url: String,
    client: Client<Https, Empty<Bytes>>,
    timeout: Duration,
}

impl DelegateClient {
    pub fn new(
        spec: &DelegateSpec,
        tls: &DelegateTls,
        timeout: Duration,
    ) -> Result<DelegateClient, DelegateError> {
        let err = |source| DelegateError::Tls {
            delegate: spec.name.clone(),
            source,
        };
        let mut roots = rustls::RootCertStore::empty();
        for c in &tls.ca {
            roots.add(c.clone()).map_err(err)?;
        }
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(err)?
            .with_root_certificates(roots)
            .with_client_auth_cert(tls.client_chain.clone(), tls.client_key.clone_key())
            .map_err(err)?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_only()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        Ok(DelegateClient {
            name: spec.name.clone(),
            base_url: spec.base_url.clone(),
            client: Client::builder(TokioExecutor::new()).build(https),
            timeout,
        })
    }

    /// GETs `url` with exactly `headers` (and `Accept: application/json`).
    pub async fn get(
        &self,
        url: &str,
        headers: &[(HeaderName, HeaderValue)],
    ) -> Result<(StatusCode, Bytes), DelegateError> {
        let unreachable = |reason: String| DelegateError::Unreachable {
            delegate: self.name.clone(),
            url: url.to_string(),
            reason,
        };
        let mut req = http::Request::get(url)
            .header(http::header::ACCEPT, "application/json")
            .body(Empty::<Bytes>::new())
            .map_err(|e| unreachable(e.to_string()))?;
        req.headers_mut().extend(headers.iter().cloned());
        let exchange = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| unreachable(chain(&e)))?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| DelegateError::Body {
                    delegate: self.name.clone(),
                    url: url.to_string(),
                    reason: chain(e.as_ref()),
                })?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| DelegateError::Timeout {
                delegate: self.name.clone(),
                url: url.to_string(),
                after: self.timeout,
            })?
    }

    /// The delegate's `APIResource`s from `GET …/apis/external.metrics.k8s.io/v1beta1`.
    pub async fn discover(
        &self,
        headers: &[(HeaderName, HeaderValue)],
    ) -> Result<Vec<serde_json::Value>, DelegateError> {
        let url = format!("{}/apis/external.metrics.k8s.io/v1beta1", self.base_url);
        let (status, body) = self.get(&url, headers).await?;
        let bad = |reason: String| DelegateError::Discovery {
            delegate: self.name.clone(),
            url: url.clone(),
            status: status.as_u16(),
            reason,
        };
        if !status.is_success() {
            return Err(bad(super::message_of(&body)));
        }
        let doc: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| bad(format!("not an APIResourceList: {e}")))?;
        if doc["groupVersion"] != "external.metrics.k8s.io/v1beta1" {
            return Err(bad(format!(
                "groupVersion is {}, not external.metrics.k8s.io/v1beta1",
                doc["groupVersion"]
            )));
        }
        Ok(doc["resources"].as_array().cloned().unwrap_or_default())
    }
}
