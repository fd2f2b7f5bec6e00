//! Delegation: metrics Swell does not own are read from other external-metrics servers
//! (prometheus-adapter, the Datadog Cluster Agent, …) that Swell fronts as the cluster's
//! one `v1beta1.external.metrics.k8s.io`.
//!
//! Identity: Swell calls each delegate as the aggregation layer would — over TLS with a
//! client certificate the delegate trusts as its front proxy (`--requestheader-client-ca-file`,
//! `--requestheader-allowed-names`) and `X-Remote-User`/`X-Remote-Group`/`X-Remote-Extra-*`
//! of the caller Swell authenticated and authorized, so the delegate's own authorization
//! still applies to the real caller. Nothing else of the caller's request is sent.

mod catalog;
mod client;
mod config;
mod route;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::response::Response;
use http::StatusCode;
use tokio_util::sync::CancellationToken;

pub use catalog::{Catalog, Listing};
pub use client::DelegateError;
pub use config::{ConfigError, DelegateSpec, DelegateTls, DelegationConfig, parse_delegates};
pub use route::{Route, identity_headers, is_swell_metric_name, metric_url, route};

use crate::{UserInfo, api};
pub use client::DelegateClient;

/// The identity Swell asserts when it reads a delegate's discovery document (allowed to
/// every authenticated user by the default `system:discovery` ClusterRole).
pub const DISCOVERY_USER: &str = "system:swell:metrics-api-delegation";

/// The delegates, their clients and their last known metric lists.
pub struct Delegation {
    clients: Vec<DelegateClient>,
    catalog: ArcSwap<Catalog>,
    refresh: Duration,
}

impl Delegation {
    pub fn new(config: &DelegationConfig) -> Result<Delegation, DelegateError> {
        let clients = config
            .delegates
            .iter()
            .map(|(spec, tls)| DelegateClient::new(spec, tls, config.timeout))
            .collect::<Result<Vec<_>, _>>()?;
        let catalog = Catalog::new(clients.iter().map(|c| c.name.clone()));
        Ok(Delegation {
            clients,
            catalog: ArcSwap::from_pointee(catalog),
            refresh: config.refresh,
        })
    }

    /// The current metric lists.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.load_full()
    }

    /// Reads every delegate's discovery document once, concurrently.
    pub async fn refresh_once(&self) {
        let user = UserInfo {
            name: DISCOVERY_USER.to_string(),
            uid: String::new(),
            groups: vec!["system:authenticated".to_string()],
            extra: Default::default(),
        };
        let headers = identity_headers(&user);
        let results =
            futures::future::join_all(self.clients.iter().map(|c| c.discover(&headers))).await;
        let old = self.catalog.load_full();
        let mut next = Catalog::default();
        for ((client, listing), result) in self.clients.iter().zip(&old.delegates).zip(results) {
            let result = result.map_err(|e| {
                if listing.error.is_none() {
                    tracing::warn!(delegate = %client.name, category = e.category(), error = %e, "delegate's metric list not read; keeping the last one");
                }
                e.to_string()
            });
            let listing = listing.refreshed(result);
            if listing.metrics != old_metrics(&old, &client.name) {
                tracing::info!(delegate = %client.name, metrics = listing.metrics.len(), "delegate's metric list changed");
            }
            next.delegates.push(listing);
        }
        self.catalog.store(Arc::new(next));
    }

    /// Refreshes the lists every `refresh` until `stop`.
    pub async fn maintain(&self, stop: CancellationToken) {
        loop {
            self.refresh_once().await;
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(self.refresh) => {}
            }
        }
    }

    /// Reads `metric` from the delegate at `index` as `user`. A delegate that cannot be
    /// reached is a 503 naming it; its own answers (its 403 or 404 too) are relayed.
    pub async fn forward(
        &self,
        index: usize,
        user: &UserInfo,
        namespace: &str,
        metric: &str,
        selector: &str,
    ) -> Response {
        let Some(client) = self.clients.get(index) else {
            return api::status(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "no such delegate",
            );
        };
        let url = metric_url(&client.base_url, namespace, metric, selector);
        match client.get(&url, &identity_headers(user)).await {
            Ok((status, body)) => relay(&client.name, status, body),
            Err(e) => {
                tracing::warn!(delegate = %client.name, category = e.category(), error = %e, metric, "delegated read failed");
                let message = format!("metric {metric}: {e}");
                api::status(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    &message,
                )
            }
        }
    }
}

fn old_metrics(old: &Catalog, name: &str) -> std::collections::BTreeSet<String> {
    old.delegates
        .iter()
        .find(|l| l.name == name)
        .map(|l| l.metrics.clone())
        .unwrap_or_default()
}

/// A delegate's answer as Swell's: JSON bodies pass as they are (a success, or its own
/// `Status`); anything else becomes a `Status` saying what the delegate sent.
fn relay(delegate: &str, status: StatusCode, body: hyper::body::Bytes) -> Response {
    let is_json = serde_json::from_slice::<serde_json::Value>(&body).is_ok_and(|v| v.is_object());
    if is_json {
        return api::json(status, body.to_vec());
    }
    let code = if status.is_success() {
        StatusCode::BAD_GATEWAY
    } else {
        status
    };
    let message = format!(
        "delegate {delegate:?} answered {} with a body that is not JSON: {}",
        status.as_u16(),
        message_of(&body)
    );
    api::status(code, "InternalError", &message)
}

/// A short printable excerpt of a body: its `Status` message if it has one.
pub(crate) fn message_of(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body)
        && let Some(m) = v["message"].as_str()
    {
        return m.to_string();
    }
    let text = String::from_utf8_lossy(body);
    let mut s: String = text.chars().filter(|c| !c.is_control()).take(200).collect();
    if text.chars().count() > 200 {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_passes_json_and_wraps_the_rest() {
        let ok = relay(
            "p",
            StatusCode::OK,
            br#"{"kind":"ExternalMetricValueList","items":[]}"#.as_slice().into(),
        );
        assert_eq!(ok.status(), 200);
        let forbidden = relay(
            "p",
            StatusCode::FORBIDDEN,
            br#"{"kind":"Status","code":403}"#.as_slice().into(),
        );
        assert_eq!(forbidden.status(), 403);
        assert_eq!(relay("p", StatusCode::OK, "<html>".into()).status(), 502);
        assert_eq!(
            relay("p", StatusCode::NOT_FOUND, "404 page not found".into()).status(),
            404
        );
    }

    #[test]
    fn messages() {
        assert_eq!(message_of(br#"{"message":"no"}"#), "no");
        assert_eq!(message_of(b"a\nb"), "ab");
        assert_eq!(message_of(&[b'x'; 300]).chars().count(), 201);
    }
}
