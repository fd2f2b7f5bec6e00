//! The outbound TLS settings against a real rustls server on loopback.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::{TcpListener, TcpStream};

use super::*;

/// A CA and a `localhost` certificate it signed.
struct Pki {
    ca_pem: String,
    ca_der: CertificateDer<'static>,
    leaf: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

fn pki() -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::from_params(&params, &ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    Pki {
        ca_pem: ca.pem(),
        ca_der: ca.der().clone(),
        leaf: leaf.der().clone(),
        key: PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
    }
}

/// A server speaking only `version`, answering one handshake per connection.
async fn server(p: &Pki, version: &'static rustls::SupportedProtocolVersion) -> u16 {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[version])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![p.leaf.clone()], p.key.clone_key())
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = acceptor.accept(tcp).await;
            });
        }
    });
    port
}

async fn handshake(o: &Outbound, port: u16) -> Result<(), String> {
    let config = o
        .client_config(ClientTls::default())
        .map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    connector
        .connect(name, tcp)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn a_ca_directory_is_trusted_and_the_oldest_version_is_kept() {
    let p = pki();
    let tls12 = server(&p, &rustls::version::TLS12).await;
    let trusting = |min_version| Outbound {
        min_version,
        extra_roots: vec![p.ca_der.clone()],
    };
    assert_eq!(
        handshake(&trusting(MinTlsVersion::Tls12), tls12).await,
        Ok(())
    );
    // Without the directory the server's CA is unknown.
    let e = handshake(&Outbound::default(), tls12).await.unwrap_err();
    assert!(e.contains("UnknownIssuer"), "{e}");
    // KEDA_HTTP_MIN_TLS_VERSION=TLS13 refuses a TLS 1.2 server.
    let e = handshake(&trusting(MinTlsVersion::Tls13), tls12)
        .await
        .unwrap_err();
    assert!(e.to_lowercase().contains("protocol"), "{e}");
    let tls13 = server(&p, &rustls::version::TLS13).await;
    assert_eq!(
        handshake(&trusting(MinTlsVersion::Tls13), tls13).await,
        Ok(())
    );
}

#[test]
fn a_ca_directory_is_read_as_keda_reads_it() {
    let p = pki();
    let dir = std::env::temp_dir().join(format!("swell-ca-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("..2026_12_02")).unwrap();
    std::fs::create_dir_all(dir.join("nested")).unwrap();
    std::fs::write(dir.join("ca.crt"), &p.ca_pem).unwrap();
    // Kubernetes' volume internals, subdirectories and files without PEM are skipped.
    std::fs::write(dir.join("..2026_12_02/ca.crt"), &p.ca_pem).unwrap();
    std::fs::write(dir.join("nested/ca.crt"), &p.ca_pem).unwrap();
    std::fs::write(dir.join("README"), "not a certificate").unwrap();
    let missing = dir.join("absent");
    let o = Outbound::new(MinTlsVersion::Tls12, &[dir.clone(), missing]).unwrap();
    assert_eq!(o.extra_roots, vec![p.ca_der.clone()]);
    // The PEM handed to tonic and redis holds the same certificate.
    let again: Vec<_> = {
        use rustls::pki_types::pem::PemObject as _;
        CertificateDer::pem_slice_iter(o.extra_roots_pem().as_bytes())
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(again, vec![p.ca_der]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_bad_trigger_ca_is_named() {
    let o = Outbound::default();
    let with_ca = |ca| ClientTls {
        ca: Some(ca),
        ..Default::default()
    };
    assert_eq!(
        o.client_config(with_ca("nothing here")).err(),
        Some(TlsConfigError::CaEmpty)
    );
    let key = Secret::new("not a key");
    let cert = pki().ca_pem;
    let t = ClientTls {
        client_cert: Some((&cert, &key)),
        ..Default::default()
    };
    assert_eq!(o.client_config(t).err(), Some(TlsConfigError::KeyNotPem));
}
