use std::path::PathBuf;
use std::sync::OnceLock;

use anyhow::Context as _;

/// The local Redis of this test process (see `hack/redis.sh`): the one named by
/// `SWELL_REDIS_*`, or one started on first use with a watchdog that stops it when this
/// process exits. One standalone server with a plain and a TLS port; the default user has
/// [`Redis::password`] and the ACL user [`Redis::acl_user`] its own.
#[derive(Debug)]
pub struct Redis {
    /// `host:port` of the plain port.
    pub address: String,
    /// `host:port` of the TLS port.
    pub tls_address: String,
    /// The CA that signed the TLS port's certificate (PEM).
    pub ca_pem: String,
    /// The default user's password.
    pub password: String,
    pub acl_user: String,
    pub acl_password: String,
    pub dir: PathBuf,
}

static SHARED: OnceLock<Redis> = OnceLock::new();

impl Redis {
    pub fn shared() -> &'static Redis {
        SHARED.get_or_init(|| {
            crate::from_env_or_started("redis.sh", &[], "Redis", Self::from_exports)
        })
    }

    fn from_exports(get: &dyn Fn(&str) -> anyhow::Result<String>) -> anyhow::Result<Redis> {
        let ca_path = get("SWELL_REDIS_TLS_CA")?;
        Ok(Redis {
            address: get("SWELL_REDIS_ADDRESS")?,
            tls_address: get("SWELL_REDIS_TLS_ADDRESS")?,
            ca_pem: std::fs::read_to_string(&ca_path)
                .with_context(|| format!("reading {ca_path}"))?,
            password: get("SWELL_REDIS_PASSWORD")?,
            acl_user: get("SWELL_REDIS_ACL_USER")?,
            acl_password: get("SWELL_REDIS_ACL_PASSWORD")?,
            dir: PathBuf::from(get("SWELL_REDIS_DIR")?),
        })
    }
}
