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
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsConfigError),
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

/// The operator's settings for every scaler's HTTP client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpSettings {
    /// For requests whose trigger sets no timeout (`KEDA_HTTP_DEFAULT_TIMEOUT`).
    pub default_timeout: Duration,
    /// Keep idle connections for the next request; false closes each after its answer
    /// (`KEDA_HTTP_DISABLE_KEEP_ALIVE=true`).
    pub keep_alive: bool,
}

impl Default for HttpSettings {
    fn default() -> HttpSettings {
        HttpSettings {
            default_timeout: DEFAULT_TIMEOUT,
            keep_alive: true,
        }
    }
}

/// The cache.
#[derive(Default)]
pub struct HttpClients {
    clients: Mutex<HashMap<HttpClientKey, reqwest::Client>>,
    settings: HttpSettings,
}

impl HttpClients {
    pub fn new(settings: HttpSettings) -> HttpClients {
        HttpClients {
            clients: Mutex::default(),
            settings,
        }
    }

    /// The client for `key`, built on first use.
    pub fn get(&self, key: &HttpClientKey) -> Result<reqwest::Client, HttpClientError> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(key) {
            return Ok(c.clone());
        }
        let client = build(key, &self.settings)?;
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

/// A client with the operator's TLS settings (oldest version, CA directories) and the key's.
fn build(key: &HttpClientKey, s: &HttpSettings) -> Result<reqwest::Client, HttpClientError> {
    let mut tls = crate::tls::outbound().client_config(crate::tls::ClientTls {
        unsafe_ssl: key.unsafe_ssl,
        ca: key.ca.as_deref(),
        client_cert: key.client_cert.as_ref().map(|(c, k)| (c.as_str(), k)),
    })?;
    // A preconfigured TLS backend negotiates only what it lists.
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let mut b = reqwest::Client::builder()
        .timeout(key.timeout.unwrap_or(s.default_timeout))
        .tls_backend_preconfigured(tls);
    if !s.keep_alive {
        b = b.pool_max_idle_per_host(0);
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
        assert!(matches!(
            c.get(&bad),
            Err(HttpClientError::Tls(crate::tls::TlsConfigError::CaEmpty))
        ));
    }

    /// An HTTP/1.1 server that keeps connections open; counts the connections it accepts.
    async fn keep_alive_server() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let accepted = std::sync::Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    // One answer per request read, on the same connection.
                    while tcp.read(&mut buf).await.is_ok_and(|n| n > 0) {
                        let ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                        if tcp.write_all(ok.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (url, accepted)
    }

    #[tokio::test]
    async fn keep_alive_is_kept_unless_disabled() {
        use std::sync::atomic::Ordering;
        for (keep_alive, connections) in [(true, 1), (false, 3)] {
            let (url, accepted) = keep_alive_server().await;
            let clients = HttpClients::new(HttpSettings {
                keep_alive,
                ..Default::default()
            });
            let client = clients.get(&HttpClientKey::default()).unwrap();
            for _ in 0..3 {
                let r = client.get(&url).send().await.unwrap();
                assert_eq!(r.text().await.unwrap(), "ok");
            }
            assert_eq!(
                accepted.load(Ordering::SeqCst),
                connections,
                "keep_alive {keep_alive}"
            );
        }
    }
}
