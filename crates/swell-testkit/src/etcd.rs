use std::path::PathBuf;
use std::sync::OnceLock;

/// The local etcd of this test process for the etcd scaler (see `hack/etcd.sh`; not the
/// control plane's): the one named by `SWELL_ETCD_*`, or one started on first use with a
/// watchdog that stops it when this process exits. TLS with a certificate for 127.0.0.1 from
/// the CA [`Etcd::tls_ca`] made for the run; auth enabled, [`Etcd::user`] may read and write
/// the keys under [`Etcd::prefix`].
#[derive(Debug)]
pub struct Etcd {
    /// `127.0.0.1:port` (https).
    pub endpoint: String,
    pub tls_ca: PathBuf,
    pub user: String,
    pub password: String,
    pub prefix: String,
    pub dir: PathBuf,
}

static SHARED: OnceLock<Etcd> = OnceLock::new();

impl Etcd {
    pub fn shared() -> &'static Etcd {
        SHARED.get_or_init(|| {
            crate::from_env_or_started("etcd.sh", &[], "etcd", |get| {
                Ok(Etcd {
                    endpoint: get("SWELL_ETCD_ENDPOINT")?,
                    tls_ca: PathBuf::from(get("SWELL_ETCD_TLS_CA")?),
                    user: get("SWELL_ETCD_USER")?,
                    password: get("SWELL_ETCD_PASSWORD")?,
                    prefix: get("SWELL_ETCD_PREFIX")?,
                    dir: PathBuf::from(get("SWELL_ETCD_DIR")?),
                })
            })
        })
    }
}
