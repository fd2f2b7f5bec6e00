//! HTTP clients shared between triggers: one per TLS configuration and timeout, so
//! connections (and TLS sessions) to the same server are reused across ScaledObjects.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::tls::Secret;

/// What makes two clients different. Holds key material, so it is never printed.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct HttpClientKey {
    pub unsafe_ssl: bool,
    /// `None`: the operator's default, [`HttpClients::default_timeout`].
    pub timeout: Option<Duration>,
    /// A PEM CA bundle to trust in addition to the system roots.
    pub ca: Option<String>,
    /// A client certificate and key (PEM), for mutual TLS.
    pub client_cert: Option<(String, Secret)>,
}

impl std::fmt::Debug for HttpClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClientKey")
            .field("unsafe_ssl", &self.unsafe_ssl)
            .field("timeout", &self.timeout)
            .field("ca", &self.ca.is_some())
            .field("client_cert", &self.client_cert.is_some())
            .finish()
    }
}

/// Why a client could not be built (a bad certificate or key).
#[derive(Debug, thiserror::Error)]
pub enum HttpClientError {
    #[error("ca is not a PEM certificate: {0}")]
    Ca(String),
    #[error("cert/key are not a PEM certificate and private key: {0}")]
    ClientCert(String),
    #[error("building the HTTP client: {0}")]
    Build(String),
}

impl From<HttpClientError> for crate::UpstreamError {
    /// A client that cannot be built cannot connect: its TLS settings are wrong.
    fn from(e: HttpClientError) -> crate::UpstreamError {
        crate::UpstreamError::new(crate::UpstreamKind::Connect, e.to_string())
    }
}

/// KEDA's global HTTP timeout for scalers, unless `KEDA_HTTP_DEFAULT_TIMEOUT` says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

/// The cache.
pub struct HttpClients {
    clients: Mutex<HashMap<HttpClientKey, reqwest::Client>>,
    default_timeout: Duration,
}

impl Default for HttpClients {
    fn default() -> HttpClients {
        HttpClients::with_default_timeout(DEFAULT_TIMEOUT)
    }
}

impl HttpClients {
    /// Clients whose requests time out after `timeout` unless their key says otherwise
    /// (the operator's `KEDA_HTTP_DEFAULT_TIMEOUT`).
    pub fn with_default_timeout(timeout: Duration) -> HttpClients {
        HttpClients {
            clients: Mutex::default(),
            default_timeout: timeout,
        }
    }

    pub fn default_timeout(&self) -> Duration {
        self.default_timeout
    }

    /// The client for `key`, built on first use.
    pub fn get(&self, key: &HttpClientKey) -> Result<reqwest::Client, HttpClientError> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(key) {
            return Ok(c.clone());
        }
        let client = build(key, key.timeout.unwrap_or(self.default_timeout))?;
        clients.insert(key.clone(), client.clone());
        Ok(client)
    }

    /// How many distinct clients exist (tests).
    pub fn len(&self) -> usize {
        self.clients.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn build(key: &HttpClientKey, timeout: Duration) -> Result<reqwest::Client, HttpClientError> {
    let mut b = reqwest::Client::builder()
        .timeout(timeout)
        .danger_accept_invalid_certs(key.unsafe_ssl);
    if let Some(ca) = &key.ca {
        let certs = reqwest::Certificate::from_pem_bundle(ca.as_bytes())
            .map_err(|e| HttpClientError::Ca(e.to_string()))?;
        if certs.is_empty() {
            return Err(HttpClientError::Ca("no certificate found".into()));
        }
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    if let Some((cert, key)) = &key.client_cert {
        let pem = format!("{}\n{}", key.expose(), cert);
        let id = reqwest::Identity::from_pem(pem.as_bytes())
            .map_err(|e| HttpClientError::ClientCert(e.to_string()))?;
        b = b.identity(id);
    }
    b.build().map_err(|e| HttpClientError::Build(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_client_per_configuration() {
        let c = HttpClients::default();
        let a = HttpClientKey {
            timeout: Some(Duration::from_secs(3)),
            ..Default::default()
        };
        c.get(&a).unwrap();
        c.get(&a).unwrap();
        assert_eq!(c.len(), 1);
        c.get(&HttpClientKey {
            unsafe_ssl: true,
            ..a.clone()
        })
        .unwrap();
        assert_eq!(c.len(), 2);
        let bad = HttpClientKey {
            ca: Some("not pem".into()),
            ..a
        };
        assert!(matches!(c.get(&bad), Err(HttpClientError::Ca(_))));
    }
}
