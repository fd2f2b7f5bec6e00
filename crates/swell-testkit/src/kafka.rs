use std::path::PathBuf;
use std::sync::OnceLock;

use anyhow::Context as _;

/// The local Kafka of this test process (see `hack/kafka.sh`): the one named by
/// `SWELL_KAFKA_*`, or one started on first use with a watchdog that stops it when this
/// process exits. One KRaft node with three listeners: plain, SASL (PLAIN and
/// SCRAM-SHA-256/512 for [`Kafka::user`]) and TLS (a certificate from [`Kafka::ca_pem`]).
#[derive(Debug)]
pub struct Kafka {
    /// `host:port` of the PLAINTEXT listener.
    pub bootstrap: String,
    /// `host:port` of the SASL_PLAINTEXT listener.
    pub sasl_bootstrap: String,
    /// `host:port` of the SSL listener.
    pub tls_bootstrap: String,
    /// The CA that signed the SSL listener's certificate (PEM).
    pub ca_pem: String,
    pub user: String,
    pub password: String,
    pub dir: PathBuf,
}

static SHARED: OnceLock<Kafka> = OnceLock::new();

impl Kafka {
    pub fn shared() -> &'static Kafka {
        SHARED.get_or_init(|| {
            crate::from_env_or_started("kafka.sh", &[], "Kafka", Self::from_exports)
        })
    }

    fn from_exports(get: &dyn Fn(&str) -> anyhow::Result<String>) -> anyhow::Result<Kafka> {
        let ca_path = get("SWELL_KAFKA_TLS_CA")?;
        Ok(Kafka {
            bootstrap: get("SWELL_KAFKA_BOOTSTRAP")?,
            sasl_bootstrap: get("SWELL_KAFKA_SASL_BOOTSTRAP")?,
            tls_bootstrap: get("SWELL_KAFKA_TLS_BOOTSTRAP")?,
            ca_pem: std::fs::read_to_string(&ca_path)
                .with_context(|| format!("reading {ca_path}"))?,
            user: get("SWELL_KAFKA_SASL_USER")?,
            password: get("SWELL_KAFKA_SASL_PASSWORD")?,
            dir: PathBuf::from(get("SWELL_KAFKA_DIR")?),
        })
    }
}
