//! The serving certificate: from files (reloaded when they change) or self-generated (a
//! CA and a leaf for the Service's DNS names, rotated before expiry), with the CA put in
//! the APIService's `caBundle` so the aggregator verifies us.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::{Api, Client};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::authn::provider;

/// The APIService KEDA (and so Swell) registers for the external metrics API.
pub const APISERVICE_NAME: &str = "v1beta1.external.metrics.k8s.io";

/// The oldest TLS version accepted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MinTls {
    #[default]
    Tls12,
    Tls13,
}

impl std::str::FromStr for MinTls {
    type Err = String;

    /// Accepts `1.2`/`1.3`, `TLS12`/`TLS13` and Go's `VersionTLS12`/`VersionTLS13`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = s.to_ascii_lowercase().replace(['.', '_', ' '], "");
        match norm.trim_start_matches("version").trim_start_matches("tls") {
            "12" => Ok(MinTls::Tls12),
            "13" => Ok(MinTls::Tls13),
            _ => Err(format!("unknown TLS version {s:?} (use 1.2 or 1.3)")),
        }
    }
}

impl MinTls {
    pub(crate) fn versions(self) -> &'static [&'static rustls::SupportedProtocolVersion] {
        static TLS12: [&rustls::SupportedProtocolVersion; 2] =
            [&rustls::version::TLS13, &rustls::version::TLS12];
        static TLS13: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
        match self {
            MinTls::Tls12 => &TLS12,
            MinTls::Tls13 => &TLS13,
        }
    }
}

/// Where the serving certificate comes from.
#[derive(Clone, Debug)]
pub enum CertSource {
    /// PEM files (e.g. from cert-manager); re-read every 30 s and swapped in when changed.
    Files {
        cert: PathBuf,
        key: PathBuf,
    },
    SelfSigned(SelfSigned),
}

/// A self-generated CA and serving certificate.
#[derive(Clone, Debug)]
pub struct SelfSigned {
    /// Subject alternative names. The aggregator dials with TLS ServerName
    /// `<service>.<namespace>.svc`, so that one must be here.
    pub dns_names: Vec<String>,
    /// Lifetime of each generated certificate; a new one is made when a third is left.
    pub validity: Duration,
    /// The APIService whose `caBundle` is kept pointing at our CA; `None` to leave it alone.
    pub apiservice: Option<String>,
    /// The ValidatingWebhookConfiguration whose webhooks' `clientConfig.caBundle` is kept
    /// pointing at our CA; `None` to leave it alone.
    pub validating_webhook: Option<String>,
}

impl SelfSigned {
    /// A certificate for the Service `service` in `namespace`, valid a year, kept in the
    /// `v1beta1.external.metrics.k8s.io` APIService.
    pub fn for_service(service: &str, namespace: &str) -> Self {
        SelfSigned {
            dns_names: vec![
                service.to_string(),
                format!("{service}.{namespace}"),
                format!("{service}.{namespace}.svc"),
                format!("{service}.{namespace}.svc.cluster.local"),
            ],
            validity: Duration::from_secs(365 * 24 * 3600),
            apiservice: Some(APISERVICE_NAME.to_string()),
            validating_webhook: None,
        }
    }
}

impl SelfSigned {
    /// Names the Service under the cluster's DNS domain too, when it is not `cluster.local`
    /// (KEDA's `--k8s-cluster-domain`).
    pub fn with_cluster_domain(mut self, service: &str, namespace: &str, domain: &str) -> Self {
        let name = format!("{service}.{namespace}.svc.{domain}");
        if !self.dns_names.contains(&name) {
            self.dns_names.push(name);
        }
        self
    }
}

/// Hands out the current certificate; swapped on rotation without touching connections.
#[derive(Debug)]
pub(crate) struct Resolver(ArcSwap<CertifiedKey>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

struct Generated {
    ca_pem: String,
    key: Arc<CertifiedKey>,
    not_after: SystemTime,
}

fn cert_err(e: impl std::fmt::Display) -> Error {
    Error::Certificate(e.to_string())
}

fn generate(names: &[String], validity: Duration) -> Result<Generated, Error> {
    let now = time::OffsetDateTime::now_utc();
    // Tolerate clocks a little behind ours.
    let not_before = now - time::Duration::minutes(5);
    let not_after = now + time::Duration::try_from(validity).map_err(cert_err)?;

    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(cert_err)?;
    ca.distinguished_name = rcgen::DistinguishedName::new();
    ca.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("swell-metrics-api-ca@{}", now.unix_timestamp()),
    );
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    ca.not_before = not_before;
    ca.not_after = not_after;
    let ca_key = rcgen::KeyPair::generate().map_err(cert_err)?;
    let ca_pem = ca.self_signed(&ca_key).map_err(cert_err)?.pem();
    let issuer = rcgen::Issuer::new(ca, ca_key);

    let mut leaf = rcgen::CertificateParams::new(names.to_vec()).map_err(cert_err)?;
    leaf.distinguished_name = rcgen::DistinguishedName::new();
    if let Some(first) = names.first() {
        leaf.distinguished_name
            .push(rcgen::DnType::CommonName, first.as_str());
    }
    leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    leaf.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
    ];
    leaf.not_before = not_before;
    leaf.not_after = not_after;
    let leaf_key = rcgen::KeyPair::generate().map_err(cert_err)?;
    let cert = leaf.signed_by(&leaf_key, &issuer).map_err(cert_err)?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let key = CertifiedKey::from_der(vec![cert.der().clone()], key, &provider())?;
    Ok(Generated {
        ca_pem,
        key: Arc::new(key),
        not_after: SystemTime::now() + validity,
    })
}

fn load_files(cert: &std::path::Path, key: &std::path::Path) -> Result<Loaded, Error> {
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| Error::Certificate(format!("reading {}: {e}", p.display())))
    };
    let (cert_pem, key_pem) = (read(cert)?, read(key)?);
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Certificate(format!("{}: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(Error::Certificate(format!(
            "{} holds no certificate",
            cert.display()
        )));
    }
    let private = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| Error::Certificate(format!("{}: {e}", key.display())))?;
    let certified = CertifiedKey::from_der(chain, private, &provider())?;
    Ok(Loaded {
        key: Arc::new(certified),
        raw: (cert_pem, key_pem),
    })
}

struct Loaded {
    key: Arc<CertifiedKey>,
    raw: (Vec<u8>, Vec<u8>),
}

enum State {
    SelfSigned {
        current: Generated,
        /// PEM CAs in the APIService: the current one, plus the previous one after a
        /// rotation so connections made just before it still verify.
        bundle: String,
    },
    Files {
        raw: (Vec<u8>, Vec<u8>),
    },
}

/// The serving certificate and its upkeep: served through [`Certs::cert_resolver`], rotated
/// and published by [`Certs::maintain`]. Also used by Swell's admission webhook.
pub struct Certs {
    pub(crate) resolver: Arc<Resolver>,
    source: CertSource,
    state: Mutex<State>,
}

impl Certs {
    pub fn new(source: CertSource) -> Result<Certs, Error> {
        let (key, state) = match &source {
            CertSource::SelfSigned(s) => {
                let g = generate(&s.dns_names, s.validity)?;
                let bundle = g.ca_pem.clone();
                (g.key.clone(), State::SelfSigned { current: g, bundle })
            }
            CertSource::Files { cert, key } => {
                let l = load_files(cert, key)?;
                (l.key, State::Files { raw: l.raw })
            }
        };
        Ok(Certs {
            resolver: Arc::new(Resolver(ArcSwap::new(key))),
            source,
            state: Mutex::new(state),
        })
    }

    /// What rustls serves: always the current certificate.
    pub fn cert_resolver(&self) -> Arc<dyn ResolvesServerCert> {
        self.resolver.clone()
    }

    /// The PEM CA bundle clients should trust (self-signed certificates only).
    pub fn ca_bundle(&self) -> Option<String> {
        match &*self.state.lock().unwrap_or_else(|p| p.into_inner()) {
            State::SelfSigned { bundle, .. } => Some(bundle.clone()),
            State::Files { .. } => None,
        }
    }

    /// Rotates and re-publishes until `shutdown`. The first pass runs at once, so a fresh
    /// server patches the APIService straight away; until a publish succeeds (the APIService
    /// or webhook configuration not created yet, the API server not reachable yet) it is
    /// retried after 1 s, 2 s, then every 4 s (one GET), not at the next regular pass up to a
    /// minute later: an APIService applied after the server started is trusted within seconds.
    pub async fn maintain(&self, client: Option<Client>, shutdown: CancellationToken) {
        let every = match &self.source {
            CertSource::SelfSigned(s) => {
                (s.validity / 20).clamp(Duration::from_secs(1), Duration::from_secs(60))
            }
            CertSource::Files { .. } => Duration::from_secs(30),
        };
        let mut retry = Duration::from_secs(1);
        loop {
            let published = match &self.source {
                CertSource::SelfSigned(s) => self.self_signed_pass(s, client.as_ref()).await,
                CertSource::Files { cert, key } => {
                    self.files_pass(cert, key);
                    true
                }
            };
            let wait = if published { every } else { retry.min(every) };
            retry = if published {
                Duration::from_secs(1)
            } else {
                (retry * 2).min(Duration::from_secs(4))
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    fn files_pass(&self, cert: &std::path::Path, key: &std::path::Path) {
        let unchanged = |raw: &(Vec<u8>, Vec<u8>)| {
            std::fs::read(cert).ok().as_ref() == Some(&raw.0)
                && std::fs::read(key).ok().as_ref() == Some(&raw.1)
        };
        if let State::Files { raw } = &*self.state.lock().unwrap_or_else(|p| p.into_inner())
            && unchanged(raw)
        {
            return;
        }
        match load_files(cert, key) {
            Ok(l) => {
                self.resolver.0.store(l.key);
                *self.state.lock().unwrap_or_else(|p| p.into_inner()) = State::Files { raw: l.raw };
                tracing::info!(cert = %cert.display(), "reloaded the serving certificate");
            }
            // Mid-update (cert written, key not yet): keep serving the old pair.
            Err(e) => tracing::warn!(error = %e, "serving certificate files not reloaded"),
        }
    }

    /// One rotation/publication pass; false when the caBundle could not be published.
    async fn self_signed_pass(&self, s: &SelfSigned, client: Option<&Client>) -> bool {
        let (due, expired, old_ca, bundle) = {
            let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let State::SelfSigned { current, bundle } = &*st else {
                return true;
            };
            let left = current
                .not_after
                .duration_since(SystemTime::now())
                .unwrap_or_default();
            (
                left < s.validity / 3,
                left.is_zero(),
                current.ca_pem.clone(),
                bundle.clone(),
            )
        };
        if !due {
            let Some(client) = client else {
                return true;
            };
            let Err(e) = publish(client, s, &bundle).await else {
                return true;
            };
            if is_not_found(&e) {
                tracing::debug!("APIService or ValidatingWebhookConfiguration not registered yet");
            } else {
                tracing::warn!(error = %e, "caBundle not updated; retrying");
            }
            return false;
        }
        let next = match generate(&s.dns_names, s.validity) {
            Ok(g) => g,
            Err(e) => {
                tracing::error!(error = %e, "generating the next serving certificate");
                return true;
            }
        };
        let bundle = format!("{}{}", next.ca_pem, old_ca);
        // Publish the new CA before serving with it, so the aggregator never sees a
        // certificate it cannot verify.
        if let Some(client) = client
            && let Err(e) = publish(client, s, &bundle).await
            && !expired
            && !is_not_found(&e)
        {
            tracing::warn!(error = %e, "rotation postponed: caBundle not updated");
            return false;
        }
        self.resolver.0.store(next.key.clone());
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = State::SelfSigned {
            current: next,
            bundle,
        };
        tracing::info!("rotated the serving certificate");
        true
    }
}

/// Puts `bundle` in every configured caBundle; the first error, after trying them all.
async fn publish(client: &Client, s: &SelfSigned, bundle: &str) -> Result<(), kube::Error> {
    let mut first = None;
    if let Some(name) = s.apiservice.as_deref()
        && let Err(e) = on_conflict_retry(|| ensure_ca_bundle(client, name, bundle)).await
    {
        first.get_or_insert(e);
    }
    if let Some(name) = s.validating_webhook.as_deref()
        && let Err(e) = on_conflict_retry(|| ensure_webhook_ca_bundle(client, name, bundle)).await
    {
        first.get_or_insert(e);
    }
    first.map_or(Ok(()), Err)
}

/// Re-reads and writes again when another writer got in between (the aggregator updates
/// the APIService's status, other replicas their CAs): waiting for the next pass, up to a
/// minute, would leave the API unavailable that long.
async fn on_conflict_retry<F, Fut>(mut write: F) -> Result<(), kube::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), kube::Error>>,
{
    let mut attempt = 0u32;
    loop {
        match write().await {
            Err(kube::Error::Api(s)) if s.code == 409 && attempt < 8 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
            }
            other => return other,
        }
    }
}

/// At most this many CAs are kept in a caBundle (APIService or webhook): every replica has
/// its own CA, and each must stay trusted while the others publish theirs.
const MAX_WEBHOOK_CAS: usize = 8;

/// The PEM certificates of a bundle, each normalised to end with a newline.
fn pem_blocks(bundle: &str) -> Vec<String> {
    const END: &str = "-----END CERTIFICATE-----";
    bundle
        .split_inclusive(END)
        .map(str::trim)
        .filter(|b| b.ends_with(END))
        .map(|b| format!("{b}\n"))
        .collect()
}

/// The caBundle a replica publishes: `current` unchanged when it already trusts every CA of
/// `ours`; otherwise ours first, then the others' (so other replicas keep working), capped.
fn merged_bundle(current: &str, ours: &str) -> Option<String> {
    let have = pem_blocks(current);
    let mine = pem_blocks(ours);
    if mine.iter().all(|b| have.contains(b)) {
        return None;
    }
    let mut out = mine.clone();
    out.extend(have.into_iter().filter(|b| !mine.contains(b)));
    out.truncate(MAX_WEBHOOK_CAS.max(mine.len()));
    Some(out.concat())
}

/// Makes every webhook of ValidatingWebhookConfiguration `name` trust `bundle` (our current
/// and previous CA), keeping the CAs other replicas published (read, change, replace; a
/// conflicting writer makes it retry on the next pass).
pub async fn ensure_webhook_ca_bundle(
    client: &Client,
    name: &str,
    bundle: &str,
) -> Result<(), kube::Error> {
    use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
    let api: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let mut current = api.get(name).await?;
    let mut changed = false;
    for hook in current.webhooks.iter_mut().flatten() {
        let have = hook
            .client_config
            .ca_bundle
            .as_ref()
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
            .unwrap_or_default();
        if let Some(next) = merged_bundle(&have, bundle) {
            hook.client_config.ca_bundle = Some(k8s_openapi::ByteString(next.into_bytes()));
            changed = true;
        }
    }
    if changed {
        api.replace(name, &kube::api::PostParams::default(), &current)
            .await?;
        tracing::info!(
            validatingwebhookconfiguration = name,
            "published the serving CA in caBundle"
        );
    }
    Ok(())
}

/// No APIService registered: nobody to tell, so rotation need not wait.
fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.is_not_found())
}

fn apiservice_api(client: &Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("apiregistration.k8s.io", "v1", "APIService");
    Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(&gvk, "apiservices"),
    )
}

fn base64(pem: &str) -> String {
    // ByteString serializes as base64, as the API expects for `caBundle`.
    serde_json::to_value(k8s_openapi::ByteString(pem.as_bytes().to_vec()))
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Sets `spec.caBundle` of APIService `name` to `ca_bundle_pem` and turns off
/// `insecureSkipTLSVerify` (the two must not both be set).
pub async fn patch_apiservice_ca_bundle(
    client: &Client,
    name: &str,
    ca_bundle_pem: &str,
) -> Result<(), kube::Error> {
    let patch = serde_json::json!({
        "spec": {"caBundle": base64(ca_bundle_pem), "insecureSkipTLSVerify": false}
    });
    apiservice_api(client)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// Makes the APIService trust `bundle` (our current and previous CA) while keeping the CAs
/// other replicas published: every replica serves with its own CA and the aggregator may
/// pick any of them. Patches only when something is missing, so the periodic check costs
/// one GET; the patch is conditional on the resourceVersion read, so two replicas adding
/// theirs at once cannot drop each other's (the loser retries on its next pass).
async fn ensure_ca_bundle(client: &Client, name: &str, bundle: &str) -> Result<(), kube::Error> {
    let current = apiservice_api(client).get(name).await?;
    let spec = &current.data["spec"];
    let have = serde_json::from_value::<k8s_openapi::ByteString>(spec["caBundle"].clone())
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .unwrap_or_default();
    let insecure = spec["insecureSkipTLSVerify"].as_bool() == Some(true);
    let next = match merged_bundle(&have, bundle) {
        Some(next) => next,
        None if insecure => have,
        None => return Ok(()),
    };
    let patch = serde_json::json!({
        "metadata": {"resourceVersion": current.metadata.resource_version},
        "spec": {"caBundle": base64(&next), "insecureSkipTLSVerify": false}
    });
    apiservice_api(client)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    tracing::info!(apiservice = name, "published the serving CA in caBundle");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_tls_parses() {
        for (s, v) in [
            ("1.2", MinTls::Tls12),
            ("TLS12", MinTls::Tls12),
            ("VersionTLS13", MinTls::Tls13),
            ("tls1.3", MinTls::Tls13),
        ] {
            assert_eq!(s.parse::<MinTls>().unwrap(), v, "{s}");
        }
        assert!("1.1".parse::<MinTls>().is_err());
    }

    #[test]
    fn generated_leaf_chains_to_the_ca_for_the_service_name() {
        let s = SelfSigned::for_service("swell-metrics", "swell");
        let g = generate(&s.dns_names, s.validity).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(g.ca_pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider(),
        )
        .build()
        .unwrap();
        use rustls::client::danger::ServerCertVerifier as _;
        let name = rustls::pki_types::ServerName::try_from("swell-metrics.swell.svc").unwrap();
        verifier
            .verify_server_cert(
                &g.key.cert[0],
                &[],
                &name,
                &[],
                rustls::pki_types::UnixTime::now(),
            )
            .unwrap();
        let other = rustls::pki_types::ServerName::try_from("other.swell.svc").unwrap();
        assert!(
            verifier
                .verify_server_cert(
                    &g.key.cert[0],
                    &[],
                    &other,
                    &[],
                    rustls::pki_types::UnixTime::now()
                )
                .is_err()
        );
    }

    #[tokio::test]
    async fn short_lived_certificates_rotate_and_keep_the_old_ca_in_the_bundle() {
        let s = SelfSigned {
            dns_names: vec!["x.y.svc".into()],
            validity: Duration::from_secs(3),
            apiservice: None,
            validating_webhook: None,
        };
        let certs = Certs::new(CertSource::SelfSigned(s.clone())).unwrap();
        let first = certs.ca_bundle().unwrap();
        let first_cert = certs.resolver.0.load_full().cert[0].clone();
        certs.self_signed_pass(&s, None).await;
        assert_eq!(certs.ca_bundle().unwrap(), first, "not due yet");
        tokio::time::sleep(Duration::from_millis(2100)).await;
        certs.self_signed_pass(&s, None).await;
        let second = certs.ca_bundle().unwrap();
        assert_ne!(second, first);
        assert!(second.ends_with(&first), "old CA kept: {second}");
        assert_ne!(certs.resolver.0.load_full().cert[0], first_cert);
    }

    #[test]
    fn files_load_and_reload() {
        let dir = std::env::temp_dir().join(format!(
            "swell-metrics-api-test-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |cn: &str| {
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = rcgen::CertificateParams::new(vec![cn.to_string()])
                .unwrap()
                .self_signed(&key)
                .unwrap();
            std::fs::write(dir.join("tls.crt"), cert.pem()).unwrap();
            std::fs::write(dir.join("tls.key"), key.serialize_pem()).unwrap();
            cert.der().clone()
        };
        let a = write("a.svc");
        let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
        let certs = Certs::new(CertSource::Files {
            cert: cert.clone(),
            key: key.clone(),
        })
        .unwrap();
        assert_eq!(certs.resolver.0.load_full().cert[0], a);
        assert!(certs.ca_bundle().is_none());
        let b = write("b.svc");
        certs.files_pass(&cert, &key);
        assert_eq!(certs.resolver.0.load_full().cert[0], b);
        std::fs::write(&key, "broken").unwrap();
        certs.files_pass(&cert, &key);
        assert_eq!(certs.resolver.0.load_full().cert[0], b, "kept on error");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn webhook_bundles_keep_other_replicas_cas() {
        let pem =
            |n: &str| format!("-----BEGIN CERTIFICATE-----\n{n}\n-----END CERTIFICATE-----\n");
        let (a, b) = (pem("A"), pem("B"));
        assert_eq!(merged_bundle("", &a), Some(a.clone()));
        assert_eq!(merged_bundle(&a, &a), None, "already trusted");
        let both = merged_bundle(&a, &b).unwrap();
        assert_eq!(both, format!("{b}{a}"));
        // Replica A sees both and leaves them alone: no flapping between replicas.
        assert_eq!(merged_bundle(&both, &a), None);
        // Old CAs fall off after MAX_WEBHOOK_CAS.
        let many: String = (0..20).map(|i| pem(&i.to_string())).collect();
        let next = merged_bundle(&many, &a).unwrap();
        assert_eq!(pem_blocks(&next).len(), MAX_WEBHOOK_CAS);
        assert!(next.starts_with(&a));
    }

    #[test]
    fn base64_of_pem() {
        assert_eq!(base64("hi"), "aGk=");
    }
}
