//! What every TLS-speaking client of the scalers shares: secret values that are never
//! printed, and the certificate verifier behind `unsafeSsl`.

use std::fmt;

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

/// A secret value: compared and hashed by content, never printed.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The secret itself, to hand to a client; never to a message.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// `unsafeSsl: true`: the server's certificate is not checked (as KEDA's
/// `InsecureSkipVerify`); signatures still are, so the handshake stays well-formed.
#[derive(Debug)]
pub(crate) struct AcceptAnyCert(CryptoProvider);

impl AcceptAnyCert {
    pub(crate) fn new() -> AcceptAnyCert {
        AcceptAnyCert(rustls::crypto::aws_lc_rs::default_provider())
    }
}

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The oldest TLS version a scaler's connection accepts (KEDA's `KEDA_HTTP_MIN_TLS_VERSION`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MinTlsVersion {
    #[default]
    Tls12,
    Tls13,
}

impl MinTlsVersion {
    /// KEDA's spellings: `TLS12`, `TLS13` (and `1.2`, `1.3`).
    pub fn parse(v: &str) -> Option<MinTlsVersion> {
        match v {
            "TLS12" | "1.2" => Some(MinTlsVersion::Tls12),
            "TLS13" | "1.3" => Some(MinTlsVersion::Tls13),
            _ => None,
        }
    }

    fn versions(self) -> &'static [&'static rustls::SupportedProtocolVersion] {
        static TLS12: [&rustls::SupportedProtocolVersion; 2] =
            [&rustls::version::TLS13, &rustls::version::TLS12];
        static TLS13: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
        match self {
            MinTlsVersion::Tls12 => &TLS12,
            MinTlsVersion::Tls13 => &TLS13,
        }
    }
}

/// What the operator sets for every TLS connection scalers open: the oldest version, and the
/// CA certificates trusted besides the system's (KEDA's `--ca-dir`, default `/custom/ca`).
///
/// Process-wide, set once at start-up before any scaler exists, as KEDA's are: the system
/// root store it extends is process-wide too, and every scaler's TLS goes through here
/// without each scaler's configuration carrying it.
#[derive(Clone, Debug, Default)]
pub struct Outbound {
    pub min_version: MinTlsVersion,
    /// The certificates of the CA directories.
    pub extra_roots: Vec<CertificateDer<'static>>,
}

/// A CA directory that cannot be read at all (a file in it that is not PEM is only logged,
/// as KEDA does, so one bad file does not stop the operator).
#[derive(Debug, thiserror::Error)]
#[error("--ca-dir {dir}: {why}")]
pub struct CaDirError {
    dir: String,
    why: String,
}

/// Why a scaler's TLS configuration could not be built; each names the setting at fault.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TlsConfigError {
    #[error("ca is not PEM: {0}")]
    CaNotPem(String),
    #[error("ca holds no PEM certificate")]
    CaEmpty,
    #[error("ca: {0}")]
    CaRejected(String),
    #[error("cert is not PEM: {0}")]
    CertNotPem(String),
    #[error("cert holds no PEM certificate")]
    CertEmpty,
    #[error("key is not a PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    KeyNotPem,
    #[error("cert/key: {0}")]
    ClientAuth(String),
}

/// One connection's TLS settings, from its trigger.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClientTls<'a> {
    /// `unsafeSsl`: the server's certificate is not checked.
    pub unsafe_ssl: bool,
    /// A PEM CA bundle trusted besides the system's and the CA directories'.
    pub ca: Option<&'a str>,
    /// A client certificate chain and key (PEM), for mutual TLS.
    pub client_cert: Option<(&'a str, &'a Secret)>,
}

static OUTBOUND: std::sync::OnceLock<Outbound> = std::sync::OnceLock::new();
static SYSTEM_ROOTS: std::sync::OnceLock<Vec<CertificateDer<'static>>> = std::sync::OnceLock::new();

/// Sets the process's outbound TLS settings; false when they were already set or used.
pub fn configure(o: Outbound) -> bool {
    OUTBOUND.set(o).is_ok()
}

/// The process's outbound TLS settings (TLS 1.2+, system roots only, until configured).
pub fn outbound() -> &'static Outbound {
    OUTBOUND.get_or_init(Outbound::default)
}

/// The system's CA certificates, read once (they were read on every connection before).
fn system_roots() -> &'static [CertificateDer<'static>] {
    SYSTEM_ROOTS.get_or_init(|| rustls_native_certs::load_native_certs().certs)
}

impl Outbound {
    /// The settings with the certificates of `dirs` (each file's PEM certificates; missing
    /// directories, subdirectories and Kubernetes' `..data` links are skipped, as KEDA does).
    pub fn new(
        min_version: MinTlsVersion,
        dirs: &[std::path::PathBuf],
    ) -> Result<Outbound, CaDirError> {
        let mut extra_roots = Vec::new();
        for dir in dirs {
            extra_roots.extend(ca_dir(dir)?);
        }
        Ok(Outbound {
            min_version,
            extra_roots,
        })
    }

    /// The protocol versions connections offer.
    pub fn versions(&self) -> &'static [&'static rustls::SupportedProtocolVersion] {
        self.min_version.versions()
    }

    /// The system's and the CA directories' certificates.
    pub fn trusted(&self) -> impl Iterator<Item = &CertificateDer<'static>> {
        system_roots().iter().chain(&self.extra_roots)
    }

    /// The system roots, the CA directories' and `ca`'s certificates.
    pub fn roots(&self, ca: Option<&str>) -> Result<rustls::RootCertStore, TlsConfigError> {
        use rustls::pki_types::pem::PemObject as _;
        let mut roots = rustls::RootCertStore::empty();
        roots.add_parsable_certificates(self.trusted().cloned());
        if let Some(ca) = ca {
            let certs: Vec<_> = CertificateDer::pem_slice_iter(ca.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| TlsConfigError::CaNotPem(e.to_string()))?;
            if certs.is_empty() {
                return Err(TlsConfigError::CaEmpty);
            }
            for c in certs {
                roots
                    .add(c)
                    .map_err(|e| TlsConfigError::CaRejected(e.to_string()))?;
            }
        }
        Ok(roots)
    }

    /// A rustls configuration for one connection: these settings and the trigger's.
    pub fn client_config(&self, t: ClientTls<'_>) -> Result<rustls::ClientConfig, TlsConfigError> {
        use rustls::pki_types::PrivateKeyDer;
        use rustls::pki_types::pem::PemObject as _;
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(self.versions())
            .map_err(|e| TlsConfigError::ClientAuth(e.to_string()))?;
        let builder = if t.unsafe_ssl {
            builder
                .dangerous()
                .with_custom_certificate_verifier(std::sync::Arc::new(AcceptAnyCert::new()))
        } else {
            builder.with_root_certificates(self.roots(t.ca)?)
        };
        let Some((cert, key)) = t.client_cert else {
            return Ok(builder.with_no_client_auth());
        };
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| TlsConfigError::CertNotPem(e.to_string()))?;
        if chain.is_empty() {
            return Err(TlsConfigError::CertEmpty);
        }
        let key = PrivateKeyDer::from_pem_slice(key.expose().as_bytes())
            .map_err(|_| TlsConfigError::KeyNotPem)?;
        builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| TlsConfigError::ClientAuth(e.to_string()))
    }

    /// The CA directories' certificates as PEM, for clients that add PEM roots to the
    /// system's (tonic); empty without CA directories.
    pub fn extra_roots_pem(&self) -> String {
        pem(&self.extra_roots)
    }

    /// The system's and the CA directories' certificates as PEM, for clients whose PEM roots
    /// replace the system's (redis).
    pub fn trusted_pem(&self) -> String {
        pem(self.trusted())
    }
}

fn pem<'a>(certs: impl IntoIterator<Item = &'a CertificateDer<'static>>) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut pem = String::new();
    for c in certs {
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        for line in b64.encode(c.as_ref()).as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
    }
    pem
}

/// The certificates in one CA directory.
fn ca_dir(dir: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, CaDirError> {
    use rustls::pki_types::pem::PemObject as _;
    let err = |why: String| CaDirError {
        dir: dir.display().to_string(),
        why,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::debug!(dir = %dir.display(), "no CA directory; no custom CAs from it");
            return Ok(Vec::new());
        }
        Err(e) => return Err(err(e.to_string())),
    };
    let mut names: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    names.sort();
    let mut certs = Vec::new();
    for path in names {
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(".."));
        if hidden || std::fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
            continue;
        }
        let read = std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|pem| {
                CertificateDer::pem_slice_iter(&pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| e.to_string())
            });
        match read {
            Ok(found) if !found.is_empty() => certs.extend(found),
            Ok(_) => {
                tracing::warn!(file = %path.display(), "CA file holds no PEM certificate; skipped")
            }
            Err(why) => tracing::warn!(file = %path.display(), %why, "CA file unreadable; skipped"),
        }
    }
    tracing::info!(dir = %dir.display(), certificates = certs.len(), "custom CAs trusted by scalers");
    Ok(certs)
}

#[cfg(test)]
mod tests;
