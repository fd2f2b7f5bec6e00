//! Serving Swell's ports: HTTPS with a self-signed certificate made at start-up unless one
//! is supplied, or plain HTTP (the metrics port's default, as KEDA's), and an axum router on
//! each accepted connection.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_util::sync::CancellationToken;

/// The oldest TLS version a port accepts.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum MinTls {
    #[value(name = "TLS12", alias = "1.2")]
    Tls12,
    #[value(name = "TLS13", alias = "1.3")]
    Tls13,
}

/// A self-signed certificate for the given DNS names.
pub fn self_signed(
    names: Vec<String>,
) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let key = rcgen::KeyPair::generate().context("generating a key")?;
    let cert = rcgen::CertificateParams::new(names)
        .context("certificate names")?
        .self_signed(&key)
        .context("self-signing")?;
    let key = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes())
        .context("encoding the key")?;
    Ok((vec![cert.der().clone()], key))
}

/// A TLS configuration serving whatever certificate `resolver` hands out (rotated ones too).
pub fn resolver_config(
    resolver: Arc<dyn rustls::server::ResolvesServerCert>,
    min: MinTls,
) -> anyhow::Result<rustls::ServerConfig> {
    let mut cfg = rustls::ServerConfig::builder_with_protocol_versions(versions(min))
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

fn versions(min: MinTls) -> &'static [&'static rustls::SupportedProtocolVersion] {
    static TLS12: [&rustls::SupportedProtocolVersion; 2] =
        [&rustls::version::TLS13, &rustls::version::TLS12];
    static TLS13: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
    match min {
        MinTls::Tls12 => &TLS12,
        MinTls::Tls13 => &TLS13,
    }
}

pub fn server_config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    min: MinTls,
) -> anyhow::Result<rustls::ServerConfig> {
    let mut cfg = rustls::ServerConfig::builder_with_protocol_versions(versions(min))
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("building the TLS configuration")?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Serves `router` on `addr` until `shutdown` fires: over TLS with `tls`, else plain HTTP.
/// `what` names the server in the log line giving its address.
pub async fn serve(
    addr: SocketAddr,
    tls: Option<rustls::ServerConfig>,
    router: axum::Router,
    shutdown: CancellationToken,
    what: &'static str,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let acceptor = tls.map(|t| tokio_rustls::TlsAcceptor::from(Arc::new(t)));
    let addr = listener.local_addr().unwrap_or(addr);
    let scheme = if acceptor.is_some() { "HTTPS" } else { "HTTP" };
    tracing::info!(%addr, "serving {what} over {scheme}");
    loop {
        let (tcp, _) = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept");
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            match acceptor {
                Some(acceptor) => {
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        connection(TokioIo::new(tls), router).await;
                    }
                }
                None => connection(TokioIo::new(tcp), router).await,
            }
        });
    }
}

/// Serves one accepted connection (HTTP/1.1 or h2) until it closes.
async fn connection<I>(io: TokioIo<I>, router: axum::Router)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper_util::service::TowerToHyperService::new(router);
    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection(io, svc)
        .await;
}
