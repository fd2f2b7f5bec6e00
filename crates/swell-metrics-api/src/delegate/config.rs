//! `--metrics-api-delegate NAME=URL[,…]` and each delegate's TLS files, parsed once into
//! [`DelegateSpec`]s. Files live in `<tls dir>/<NAME>/` (one Secret mounted per delegate):
//! `ca.crt` verifies the delegate's serving certificate; `tls.crt`/`tls.key` are the
//! client certificate Swell presents as the delegate's front proxy.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// One delegate as configured: a name and the base URL of its external metrics API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DelegateSpec {
    pub name: String,
    /// `https://host[:port][/prefix]`, without a trailing `/`.
    pub base_url: String,
}

/// The TLS material for one delegate, read from its directory.
#[derive(Clone, Debug)]
pub struct DelegateTls {
    pub ca: Vec<CertificateDer<'static>>,
    pub client_chain: Vec<CertificateDer<'static>>,
    pub client_key: std::sync::Arc<PrivateKeyDer<'static>>,
}

/// Delegation as the operator configures it; off when `delegates` is empty.
#[derive(Clone, Debug)]
pub struct DelegationConfig {
    pub delegates: Vec<(DelegateSpec, DelegateTls)>,
    /// How often each delegate's metric list is read again.
    pub refresh: Duration,
    /// Per request to a delegate (connect and answer).
    pub timeout: Duration,
}

/// Why the delegation settings cannot be used; each names the flag or file to fix.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error(
        "--metrics-api-delegate: entry {entry:?} is not NAME=URL (e.g. prometheus=https://prometheus-adapter.monitoring.svc:443)"
    )]
    NotNameEqualsUrl { entry: String },
    #[error(
        "--metrics-api-delegate: name {name:?} must be a DNS label (lowercase letters, digits, '-'; at most 63)"
    )]
    BadName { name: String },
    #[error("--metrics-api-delegate: name {name:?} is given twice")]
    DuplicateName { name: String },
    #[error(
        "--metrics-api-delegate {name}: URL {url:?} must be https://host[:port][/path] without query ({reason})"
    )]
    BadUrl {
        name: String,
        url: String,
        reason: String,
    },
    #[error(
        "delegate {name}: reading {path}: {reason} (mount the delegate's Secret with ca.crt, tls.crt and tls.key there, or set --metrics-api-delegate-tls-dir)"
    )]
    File {
        name: String,
        path: PathBuf,
        reason: String,
    },
}

impl ConfigError {
    /// A low-cardinality label for logs and metrics.
    pub fn category(&self) -> &'static str {
        match self {
            ConfigError::NotNameEqualsUrl { .. } | ConfigError::BadName { .. } => "bad_entry",
            ConfigError::DuplicateName { .. } => "duplicate",
            ConfigError::BadUrl { .. } => "bad_url",
            ConfigError::File { .. } => "tls_file",
        }
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn base_url(name: &str, url: &str) -> Result<String, ConfigError> {
    let bad = |reason: &str| ConfigError::BadUrl {
        name: name.to_string(),
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let uri: http::Uri = url.parse().map_err(|_| bad("not a URL"))?;
    if uri.scheme_str() != Some("https") {
        return Err(bad("the scheme must be https"));
    }
    let authority = uri.authority().ok_or_else(|| bad("no host"))?;
    if authority.as_str().contains('@') {
        return Err(bad("credentials do not belong in the URL"));
    }
    if authority.host().is_empty() {
        return Err(bad("no host"));
    }
    if uri.query().is_some() {
        return Err(bad("a query is not allowed"));
    }
    let path = uri.path().trim_end_matches('/');
    Ok(format!("https://{authority}{path}"))
}

/// Parses the flag's value: comma-separated `NAME=URL` entries (empty: no delegation).
pub fn parse_delegates(value: &str) -> Result<Vec<DelegateSpec>, ConfigError> {
    let mut out: Vec<DelegateSpec> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, url) = entry
            .split_once('=')
            .ok_or_else(|| ConfigError::NotNameEqualsUrl {
                entry: entry.to_string(),
            })?;
        let (name, url) = (name.trim(), url.trim());
        if !is_dns_label(name) {
            return Err(ConfigError::BadName {
                name: name.to_string(),
            });
        }
        if out.iter().any(|d| d.name == name) {
            return Err(ConfigError::DuplicateName {
                name: name.to_string(),
            });
        }
        out.push(DelegateSpec {
            name: name.to_string(),
            base_url: base_url(name, url)?,
        });
    }
    Ok(out)
}

impl DelegateTls {
    /// Reads `ca.crt`, `tls.crt` and `tls.key` from `dir`.
    pub fn load(name: &str, dir: &Path) -> Result<DelegateTls, ConfigError> {
        let file = |f: &str, reason: String| ConfigError::File {
            name: name.to_string(),
            path: dir.join(f),
            reason,
        };
        let read = |f: &str| std::fs::read(dir.join(f)).map_err(|e| file(f, e.to_string()));
        let certs = |f: &str| -> Result<Vec<CertificateDer<'static>>, ConfigError> {
            let pem = read(f)?;
            let certs = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| file(f, format!("not PEM certificates: {e}")))?;
            if certs.is_empty() {
                return Err(file(f, "no certificate in it".into()));
            }
            Ok(certs)
        };
        let key = PrivateKeyDer::from_pem_slice(&read("tls.key")?)
            .map_err(|e| file("tls.key", format!("not a PEM private key: {e}")))?;
        Ok(DelegateTls {
            ca: certs("ca.crt")?,
            client_chain: certs("tls.crt")?,
            client_key: std::sync::Arc::new(key),
        })
    }
}

impl DelegationConfig {
    /// Parses `--metrics-api-delegate` and reads each delegate's files under `tls_dir`;
    /// `None` when no delegate is named.
    pub fn from_flags(
        delegates: &str,
        tls_dir: &Path,
        refresh: Duration,
    ) -> Result<Option<DelegationConfig>, ConfigError> {
        let specs = parse_delegates(delegates)?;
        if specs.is_empty() {
            return Ok(None);
        }
        let delegates = specs
            .into_iter()
            .map(|s| {
                let tls = DelegateTls::load(&s.name, &tls_dir.join(&s.name))?;
                Ok((s, tls))
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        Ok(Some(DelegationConfig {
            delegates,
            refresh,
            timeout: Duration::from_secs(10),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, url: &str) -> DelegateSpec {
        DelegateSpec {
            name: name.into(),
            base_url: url.into(),
        }
    }

    #[test]
    fn parses_entries() {
        let cases: &[(&str, Result<Vec<DelegateSpec>, &str>)] = &[
            ("", Ok(vec![])),
            (" , ", Ok(vec![])),
            (
                "prom=https://prometheus-adapter.monitoring.svc:443",
                Ok(vec![spec(
                    "prom",
                    "https://prometheus-adapter.monitoring.svc:443",
                )]),
            ),
            (
                "a=https://127.0.0.1:6443/, dd=https://datadog.dd.svc/prefix/",
                Ok(vec![
                    spec("a", "https://127.0.0.1:6443"),
                    spec("dd", "https://datadog.dd.svc/prefix"),
                ]),
            ),
            ("prom", Err("bad_entry")),
            ("Prom=https://x", Err("bad_entry")),
            ("-a=https://x", Err("bad_entry")),
            ("a=https://x,a=https://y", Err("duplicate")),
            ("a=http://x", Err("bad_url")),
            ("a=https://user:pw@x", Err("bad_url")),
            ("a=https://x/?q=1", Err("bad_url")),
            ("a=not a url", Err("bad_url")),
            ("a=", Err("bad_url")),
        ];
        for (input, want) in cases {
            let got = parse_delegates(input).map_err(|e| e.category());
            assert_eq!(&got, &want.clone(), "{input:?}");
        }
    }

    #[test]
    fn errors_name_the_flag_and_the_fix() {
        let e = parse_delegates("a=http://x").unwrap_err().to_string();
        assert!(
            e.contains("--metrics-api-delegate a") && e.contains("https"),
            "{e}"
        );
        let e = parse_delegates("oops").unwrap_err().to_string();
        assert!(e.contains("NAME=URL"), "{e}");
    }

    #[test]
    fn missing_files_name_the_path() {
        let dir = std::env::temp_dir().join(format!("swell-deleg-missing-{}", std::process::id()));
        let e =
            DelegationConfig::from_flags("p=https://x", &dir, Duration::from_secs(1)).unwrap_err();
        assert_eq!(e.category(), "tls_file");
        assert!(
            e.to_string()
                .contains(&dir.join("p").join("tls.key").display().to_string()),
            "{e}"
        );
        assert!(
            DelegationConfig::from_flags("", &dir, Duration::from_secs(1))
                .unwrap()
                .is_none()
        );
    }
}
