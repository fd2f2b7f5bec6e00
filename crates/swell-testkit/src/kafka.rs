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
            let vars: Vec<(String, String)> = std::env::vars().collect();
            Self::from_exports(&vars)
                .or_else(|_| {
                    let pid = std::process::id().to_string();
                    Self::from_exports(&crate::run_script(
                        "kafka.sh",
                        &["up", "--owner-pid", &pid],
                    )?)
                })
                .unwrap_or_else(|e| panic!("no local Kafka: {e:#}"))
        })
    }

    fn from_exports(vars: &[(String, String)]) -> anyhow::Result<Kafka> {
        let get = |k: &str| {
            vars.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .with_context(|| format!("{k} not set"))
        };
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
