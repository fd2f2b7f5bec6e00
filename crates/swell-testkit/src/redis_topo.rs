use std::path::PathBuf;
use std::sync::OnceLock;

use anyhow::Context as _;

/// The local Redis cluster and sentinel of this test process (see `hack/redis-topo.sh`):
/// the ones named by `SWELL_REDIS_CLUSTER_*`/`SWELL_REDIS_SENTINEL_*`, or started on first
/// use with a watchdog that stops them when this process exits. Three cluster masters (a
/// plain and a TLS port each), and
/// a master watched by one sentinel; every data server has [`RedisTopo::password`] for the
/// default user and the ACL user [`RedisTopo::acl_user`].
#[derive(Debug)]
pub struct RedisTopo {
    /// `host:port` of each cluster master.
    pub cluster: Vec<String>,
    /// `host:port` of each cluster master's TLS port.
    pub cluster_tls: Vec<String>,
    /// The CA that signed the TLS ports' certificates (PEM).
    pub ca_pem: String,
    /// `host:port` of the sentinel.
    pub sentinel: String,
    /// The sentinel's own password.
    pub sentinel_password: String,
    /// An ACL user of the sentinel's, with its own password.
    pub sentinel_acl_user: String,
    pub sentinel_acl_password: String,
    /// The name the sentinel monitors the master under.
    pub master_name: String,
    /// `host:port` of the master behind the sentinel.
    pub master: String,
    /// The default user's password on every data server.
    pub password: String,
    pub acl_user: String,
    pub acl_password: String,
    pub dir: PathBuf,
}

static SHARED: OnceLock<RedisTopo> = OnceLock::new();

impl RedisTopo {
    pub fn shared() -> &'static RedisTopo {
        SHARED.get_or_init(|| {
            crate::from_env_or_started(
                "redis-topo.sh",
                &[],
                "Redis cluster and sentinel",
                Self::from_exports,
            )
        })
    }

    fn from_exports(get: &dyn Fn(&str) -> anyhow::Result<String>) -> anyhow::Result<RedisTopo> {
        let list = |v: String| v.split(',').map(str::to_string).collect();
        let ca_path = get("SWELL_REDIS_TOPO_TLS_CA")?;
        Ok(RedisTopo {
            cluster: list(get("SWELL_REDIS_CLUSTER_ADDRESSES")?),
            cluster_tls: list(get("SWELL_REDIS_CLUSTER_TLS_ADDRESSES")?),
            ca_pem: std::fs::read_to_string(&ca_path)
                .with_context(|| format!("reading {ca_path}"))?,
            sentinel: get("SWELL_REDIS_SENTINEL_ADDRESS")?,
            sentinel_password: get("SWELL_REDIS_SENTINEL_PASSWORD")?,
            sentinel_acl_user: get("SWELL_REDIS_SENTINEL_ACL_USER")?,
            sentinel_acl_password: get("SWELL_REDIS_SENTINEL_ACL_PASSWORD")?,
            master_name: get("SWELL_REDIS_SENTINEL_MASTER")?,
            master: get("SWELL_REDIS_MASTER_ADDRESS")?,
            password: get("SWELL_REDIS_TOPO_PASSWORD")?,
            acl_user: get("SWELL_REDIS_TOPO_ACL_USER")?,
            acl_password: get("SWELL_REDIS_TOPO_ACL_PASSWORD")?,
            dir: PathBuf::from(get("SWELL_REDIS_TOPO_DIR")?),
        })
    }
}
