use std::path::PathBuf;
use std::sync::OnceLock;

use anyhow::Context as _;

/// The local Kafka of this test process (see `hack/kafka.sh`): the one named by
/// `SWELL_KAFKA_*`, or one started on first use with a watchdog that stops it when this
/// process exits. One KRaft node with four listeners: plain, SASL (PLAIN and
/// SCRAM-SHA-256/512 for [`Kafka::user`]), TLS (a certificate from [`Kafka::ca_pem`]) and
/// OAUTHBEARER (JWTs of the local OAuth server, [`crate::OAuthServer`], which is started
/// first when Kafka is).
#[derive(Debug)]
pub struct Kafka {
    /// `host:port` of the PLAINTEXT listener.
    pub bootstrap: String,
    /// `host:port` of the SASL_PLAINTEXT listener.
    pub sasl_bootstrap: String,
    /// `host:port` of the SSL listener.
    pub tls_bootstrap: String,
    /// `host:port` of the OAUTHBEARER listener (SASL_PLAINTEXT); `None` when the Kafka named
    /// by the environment was started without the OAuth server's exports.
    pub oauth_bootstrap: Option<String>,
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
            let lookup = |vars: &[(String, String)]| {
                Self::from_exports(&|k: &str| {
                    vars.iter()
                        .find(|(n, _)| n == k)
                        .map(|(_, v)| v.clone())
                        .ok_or_else(|| anyhow::anyhow!("{k} not set"))
                })
            };
            let env: Vec<(String, String)> = std::env::vars().collect();
            lookup(&env)
                .or_else(|_| {
                    // Started here: with the OAuth server's exports, for the OAUTHBEARER listener.
                    let pid = std::process::id().to_string();
                    let envs = crate::OAuthServer::shared().kafka_exports();
                    let args = ["up", "--owner-pid", pid.as_str()];
                    lookup(&crate::run_script_with_env("kafka.sh", &args, &envs)?)
                })
                .unwrap_or_else(|e| panic!("no local Kafka: {e:#}"))
        })
    }

    fn from_exports(get: &dyn Fn(&str) -> anyhow::Result<String>) -> anyhow::Result<Kafka> {
        let ca_path = get("SWELL_KAFKA_TLS_CA")?;
        Ok(Kafka {
            bootstrap: get("SWELL_KAFKA_BOOTSTRAP")?,
            sasl_bootstrap: get("SWELL_KAFKA_SASL_BOOTSTRAP")?,
            tls_bootstrap: get("SWELL_KAFKA_TLS_BOOTSTRAP")?,
            oauth_bootstrap: get("SWELL_KAFKA_OAUTH_BOOTSTRAP").ok(),
            ca_pem: std::fs::read_to_string(&ca_path)
                .with_context(|| format!("reading {ca_path}"))?,
            user: get("SWELL_KAFKA_SASL_USER")?,
            password: get("SWELL_KAFKA_SASL_PASSWORD")?,
            dir: PathBuf::from(get("SWELL_KAFKA_DIR")?),
        })
    }
}
