//! Authentication the way an aggregated API server does it, configured from the ConfigMap
//! `kube-system/extension-apiserver-authentication`:
//! - a client certificate chaining to the request-header (front-proxy) CA whose CN is in
//!   the allowed names vouches for the user named in the `X-Remote-*` headers;
//! - otherwise a client certificate chaining to the client CA is the user (CN) and its
//!   groups (O);
//! - otherwise the request is anonymous, which this server rejects.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::{HeaderMap, HeaderName};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};

use crate::Error;

pub(crate) const CONFIGMAP_NAMESPACE: &str = "kube-system";
pub(crate) const CONFIGMAP_NAME: &str = "extension-apiserver-authentication";
const AUTHENTICATED: &str = "system:authenticated";

/// Who made a request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

struct RequestHeader {
    verifier: Arc<dyn ClientCertVerifier>,
    allowed_names: Vec<String>,
    username_headers: Vec<HeaderName>,
    uid_headers: Vec<HeaderName>,
    group_headers: Vec<HeaderName>,
    /// Lower-cased, as header names in `http` are.
    extra_prefixes: Vec<String>,
}

/// The authentication settings published by kube-apiserver.
pub struct Authentication {
    request_header: Option<RequestHeader>,
    client_ca: Option<Arc<dyn ClientCertVerifier>>,
    /// Both CAs' subjects, sent in the CertificateRequest: Go clients only send a
    /// certificate issued by one of them.
    hints: Vec<DistinguishedName>,
    data: BTreeMap<String, String>,
}

impl std::fmt::Debug for Authentication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authentication")
            .field("request_header", &self.request_header.is_some())
            .field(
                "allowed_names",
                &self.request_header.as_ref().map(|r| &r.allowed_names),
            )
            .field("client_ca", &self.client_ca.is_some())
            .finish()
    }
}

/// What a connection's client certificate proves, worked out once per connection.
#[derive(Clone, Debug, Default)]
pub(crate) struct Peer {
    /// CN of a certificate that chains to the request-header CA.
    front_proxy_cn: Option<String>,
    /// The user of a certificate that chains to the client CA.
    client_cert_user: Option<UserInfo>,
}

pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn roots(pem: &str, key: &str) -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let cert = cert.map_err(|e| Error::Authentication(format!("{key}: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| Error::Authentication(format!("{key}: {e}")))?;
    }
    Ok(roots)
}

fn verifier(roots: RootCertStore, key: &str) -> Result<Arc<dyn ClientCertVerifier>, Error> {
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| Error::Authentication(format!("{key}: {e}")))
}

/// A JSON list of strings (how kube-apiserver publishes the request-header settings).
fn string_list(data: &BTreeMap<String, String>, key: &str) -> Result<Vec<String>, Error> {
    match data.get(key).map(|s| s.trim()) {
        None | Some("") => Ok(Vec::new()),
        Some(s) => serde_json::from_str(s)
            .map_err(|e| Error::Authentication(format!("{key} is not a JSON list: {e}"))),
    }
}

fn header_names(data: &BTreeMap<String, String>, key: &str) -> Result<Vec<HeaderName>, Error> {
    string_list(data, key)?
        .iter()
        .map(|h| {
            HeaderName::from_bytes(h.as_bytes())
                .map_err(|e| Error::Authentication(format!("{key}: header {h:?}: {e}")))
        })
        .collect()
}

impl Authentication {
    /// Parses the ConfigMap's data. Missing CAs disable that way of authenticating.
    pub fn from_configmap_data(data: &BTreeMap<String, String>) -> Result<Self, Error> {
        let mut hints = Vec::new();
        let ca = |key: &str| -> Result<Option<RootCertStore>, Error> {
            match data.get(key).filter(|s| !s.trim().is_empty()) {
                Some(pem) => Ok(Some(roots(pem, key)?).filter(|r| !r.is_empty())),
                None => Ok(None),
            }
        };
        let request_header = match ca("requestheader-client-ca-file")? {
            Some(r) => {
                hints.extend(r.subjects());
                Some(RequestHeader {
                    verifier: verifier(r, "requestheader-client-ca-file")?,
                    allowed_names: string_list(data, "requestheader-allowed-names")?,
                    username_headers: header_names(data, "requestheader-username-headers")?,
                    uid_headers: header_names(data, "requestheader-uid-headers")?,
                    group_headers: header_names(data, "requestheader-group-headers")?,
                    extra_prefixes: string_list(data, "requestheader-extra-headers-prefix")?
                        .iter()
                        .map(|p| p.to_ascii_lowercase())
                        .collect(),
                })
            }
            None => None,
        };
        let client_ca = match ca("client-ca-file")? {
            Some(r) => {
                hints.extend(r.subjects());
                Some(verifier(r, "client-ca-file")?)
            }
            None => None,
        };
        Ok(Authentication {
            request_header,
            client_ca,
            hints,
            data: data.clone(),
        })
    }

    pub(crate) fn data(&self) -> &BTreeMap<String, String> {
        &self.data
    }

    /// The TLS-level verifier: asks for a certificate but accepts any (checking only
    /// that the client holds its key), like Go's `tls.RequestClientCert`, so a certificate
    /// from an unknown CA gets a 401 rather than a failed handshake. The chain is
    /// checked in [`Authentication::classify`].
    pub(crate) fn tls_verifier(&self) -> Arc<dyn ClientCertVerifier> {
        Arc::new(RequestClientCert {
            hints: self.hints.clone(),
            algorithms: provider().signature_verification_algorithms,
        })
    }

    /// Checks the peer's certificate chain against each CA.
    pub(crate) fn classify(&self, chain: Option<&[CertificateDer<'_>]>) -> Peer {
        let Some((leaf, intermediates)) = chain.and_then(|c| c.split_first()) else {
            return Peer::default();
        };
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(leaf) else {
            return Peer::default();
        };
        let subject = cert.subject();
        let cn = subject
            .iter_common_name()
            .next()
            .and_then(|a| a.as_str().ok())
            .unwrap_or_default()
            .to_string();
        let now = UnixTime::now();
        let chains_to = |v: &Arc<dyn ClientCertVerifier>| {
            v.verify_client_cert(leaf, intermediates, now).is_ok()
        };
        let front_proxy_cn = self
            .request_header
            .as_ref()
            .filter(|rh| chains_to(&rh.verifier))
            .map(|_| cn.clone());
        // Go's x509 authenticator: no CN, no user.
        let client_cert_user = self
            .client_ca
            .as_ref()
            .filter(|v| !cn.is_empty() && chains_to(v))
            .map(|_| UserInfo {
                name: cn.clone(),
                groups: subject
                    .iter_organization()
                    .filter_map(|o| o.as_str().ok())
                    .map(str::to_string)
                    .collect(),
                ..UserInfo::default()
            });
        Peer {
            front_proxy_cn,
            client_cert_user,
        }
    }

    /// The request's user, or `None` (→ 401). Headers count only behind a front-proxy
    /// certificate with an allowed CN.
    pub(crate) fn authenticate(&self, peer: &Peer, headers: &HeaderMap) -> Option<UserInfo> {
        let mut user = match (&self.request_header, &peer.front_proxy_cn) {
            (Some(rh), Some(cn)) if rh.allows(cn) => rh.user_from_headers(headers),
            _ => None,
        }
        .or_else(|| peer.client_cert_user.clone())?;
        // Like Go's AuthenticatedGroupAdder: RBAC's discovery rules (e.g. for the
        // aggregator's /openapi/v2 fetch as `system:aggregator`) rely on this group.
        if !user
            .groups
            .iter()
            .any(|g| g == AUTHENTICATED || g == "system:unauthenticated")
        {
            user.groups.push(AUTHENTICATED.to_string());
        }
        Some(user)
    }
}

impl RequestHeader {
    /// An empty list allows any CN.
    fn allows(&self, cn: &str) -> bool {
        self.allowed_names.is_empty() || self.allowed_names.iter().any(|n| n == cn)
    }

    /// Mirrors k8s.io/apiserver's requestheader authenticator.
    fn user_from_headers(&self, headers: &HeaderMap) -> Option<UserInfo> {
        let first = |names: &[HeaderName]| {
            names.iter().find_map(|n| {
                headers
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .filter(|v| !v.is_empty())
                    .map(str::to_string)
            })
        };
        let name = first(&self.username_headers)?;
        let groups = self
            .group_headers
            .iter()
            .flat_map(|n| headers.get_all(n))
            .filter_map(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .collect();
        let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for prefix in &self.extra_prefixes {
            for (h, v) in headers {
                let Some(key) = h.as_str().strip_prefix(prefix.as_str()) else {
                    continue;
                };
                let Ok(v) = v.to_str() else { continue };
                // Extra keys are percent-encoded in header names (e.g. `%2F` for `/`).
                let key = percent_encoding::percent_decode_str(key)
                    .decode_utf8()
                    .map(|k| k.into_owned())
                    .unwrap_or_else(|_| key.to_string());
                extra.entry(key).or_default().push(v.to_string());
            }
        }
        Some(UserInfo {
            name,
            uid: first(&self.uid_headers).unwrap_or_default(),
            groups,
            extra,
        })
    }
}

#[derive(Debug)]
struct RequestClientCert {
    hints: Vec<DistinguishedName>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for RequestClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) struct Ca {
        pub pem: String,
        issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    }

    impl Ca {
        pub fn new(cn: &str) -> Ca {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, cn);
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params.key_usages = vec![
                rcgen::KeyUsagePurpose::KeyCertSign,
                rcgen::KeyUsagePurpose::DigitalSignature,
            ];
            let cert = params.self_signed(&key).unwrap();
            Ca {
                pem: cert.pem(),
                issuer: rcgen::Issuer::new(params, key),
            }
        }

        pub fn client(&self, cn: &str, orgs: &[&str]) -> CertificateDer<'static> {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, cn);
            for o in orgs {
                params
                    .distinguished_name
                    .push(rcgen::DnType::OrganizationName, *o);
            }
            params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
            params.signed_by(&key, &self.issuer).unwrap().der().clone()
        }
    }

    fn data(rh: &Ca, client: &Ca, allowed: &str) -> BTreeMap<String, String> {
        [
            ("requestheader-client-ca-file", rh.pem.as_str()),
            ("client-ca-file", client.pem.as_str()),
            ("requestheader-allowed-names", allowed),
            ("requestheader-username-headers", r#"["X-Remote-User"]"#),
            ("requestheader-group-headers", r#"["X-Remote-Group"]"#),
            (
                "requestheader-extra-headers-prefix",
                r#"["X-Remote-Extra-"]"#,
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn remote(user: &str) -> HeaderMap {
        headers(&[
            ("X-Remote-User", user),
            ("X-Remote-Group", "system:authenticated"),
            ("X-Remote-Group", "team-a"),
            ("X-Remote-Extra-Scopes", "a"),
            ("X-Remote-Extra-Scopes", "b"),
            ("X-Remote-Extra-Example.com%2Fkey", "v"),
        ])
    }

    #[test]
    fn front_proxy_headers_are_trusted_only_with_an_allowed_proxy_cert() {
        let (rh, client) = (Ca::new("front-proxy-ca"), Ca::new("client-ca"));
        let auth =
            Authentication::from_configmap_data(&data(&rh, &client, r#"["front-proxy-client"]"#))
                .unwrap();

        let proxy = auth.classify(Some(&[rh.client("front-proxy-client", &[])]));
        let user = auth.authenticate(&proxy, &remote("alice")).unwrap();
        assert_eq!(user.name, "alice");
        assert_eq!(
            user.groups,
            ["system:authenticated", "team-a"],
            "no second copy"
        );
        assert_eq!(
            user.extra,
            BTreeMap::from([
                ("scopes".to_string(), vec!["a".to_string(), "b".to_string()]),
                ("example.com/key".to_string(), vec!["v".to_string()]),
            ])
        );
        // Front-proxy cert without a user header: nobody.
        assert_eq!(auth.authenticate(&proxy, &HeaderMap::new()), None);

        // CN not in allowed names: headers ignored, and the front-proxy CA is not a client CA.
        let other = auth.classify(Some(&[rh.client("someone-else", &[])]));
        assert_eq!(auth.authenticate(&other, &remote("alice")), None);

        // A client-CA user sending X-Remote-User is still themselves.
        let bob = auth.classify(Some(&[client.client("bob", &["devs"])]));
        let user = auth.authenticate(&bob, &remote("alice")).unwrap();
        assert_eq!(user.name, "bob");
        assert_eq!(user.groups, ["devs", "system:authenticated"]);
        assert!(user.extra.is_empty());

        // An unknown CA, or no certificate: anonymous.
        let stranger = Ca::new("stranger");
        let s = auth.classify(Some(&[stranger.client("front-proxy-client", &[])]));
        assert_eq!(auth.authenticate(&s, &remote("alice")), None);
        assert_eq!(
            auth.authenticate(&auth.classify(None), &remote("alice")),
            None
        );
        // A front-proxy-named cert from the client CA is just a user called that.
        let p = auth.classify(Some(&[client.client("front-proxy-client", &[])]));
        assert_eq!(
            auth.authenticate(&p, &remote("alice")).unwrap().name,
            "front-proxy-client"
        );
    }

    #[test]
    fn empty_allowed_names_allow_any_front_proxy_cn() {
        let (rh, client) = (Ca::new("front-proxy-ca"), Ca::new("client-ca"));
        for allowed in ["[]", ""] {
            let auth = Authentication::from_configmap_data(&data(&rh, &client, allowed)).unwrap();
            let p = auth.classify(Some(&[rh.client("anything", &[])]));
            assert_eq!(
                auth.authenticate(&p, &remote("alice")).unwrap().name,
                "alice"
            );
        }
    }

    #[test]
    fn uid_and_first_username_header() {
        let (rh, client) = (Ca::new("front-proxy-ca"), Ca::new("client-ca"));
        let mut d = data(&rh, &client, "[]");
        d.insert(
            "requestheader-username-headers".into(),
            r#"["X-User-A", "X-Remote-User"]"#.into(),
        );
        d.insert(
            "requestheader-uid-headers".into(),
            r#"["X-Remote-Uid"]"#.into(),
        );
        let auth = Authentication::from_configmap_data(&d).unwrap();
        let p = auth.classify(Some(&[rh.client("proxy", &[])]));
        let u = auth
            .authenticate(
                &p,
                &headers(&[
                    ("X-User-A", ""),
                    ("X-Remote-User", "carol"),
                    ("X-Remote-Uid", "42"),
                ]),
            )
            .unwrap();
        assert_eq!((u.name.as_str(), u.uid.as_str()), ("carol", "42"));
    }

    #[test]
    fn bad_configuration_is_an_error() {
        let (rh, client) = (Ca::new("a"), Ca::new("b"));
        let mut full = data(&rh, &client, "not json");
        assert!(Authentication::from_configmap_data(&full).is_err());
        full.insert("client-ca-file".into(), "garbage".into());
        full.insert("requestheader-allowed-names".into(), "[]".into());
        // No PEM blocks at all: no client CA, not an error.
        assert!(Authentication::from_configmap_data(&full).is_ok());
        // Nothing configured: everyone is anonymous.
        let none = Authentication::from_configmap_data(&BTreeMap::new()).unwrap();
        let p = none.classify(Some(&[client.client("bob", &[])]));
        assert_eq!(none.authenticate(&p, &remote("alice")), None);
    }
}
