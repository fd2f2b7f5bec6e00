use std::path::PathBuf;
use std::sync::OnceLock;

/// The local ActiveMQ Artemis broker of this test process (see `hack/artemis.sh`): the one
/// named by `SWELL_ARTEMIS_*`, or one started on first use with a watchdog that stops it
/// when this process exits. Login required: [`Artemis::user`] has the admin role. Its web
/// console (with Jolokia at `/console/jolokia`) listens on [`Artemis::endpoint`]
/// (`127.0.0.1:port`), which is KEDA's `managementEndpoint`; the broker's name is
/// [`Artemis::broker`]. The console is served over HTTPS too, on [`Artemis::tls_endpoint`],
/// with a certificate for 127.0.0.1 from the CA [`Artemis::tls_ca`] made for the run.
#[derive(Debug)]
pub struct Artemis {
    pub endpoint: String,
    pub tls_endpoint: String,
    pub tls_ca: PathBuf,
    pub broker: String,
    pub user: String,
    pub password: String,
    pub dir: PathBuf,
}

static SHARED: OnceLock<Artemis> = OnceLock::new();

impl Artemis {
    pub fn shared() -> &'static Artemis {
        SHARED.get_or_init(|| {
            crate::from_env_or_started("artemis.sh", &[], "Artemis", |get| {
                Ok(Artemis {
                    endpoint: get("SWELL_ARTEMIS_ENDPOINT")?,
                    tls_endpoint: get("SWELL_ARTEMIS_TLS_ENDPOINT")?,
                    tls_ca: PathBuf::from(get("SWELL_ARTEMIS_TLS_CA")?),
                    broker: get("SWELL_ARTEMIS_BROKER")?,
                    user: get("SWELL_ARTEMIS_USER")?,
                    password: get("SWELL_ARTEMIS_PASSWORD")?,
                    dir: PathBuf::from(get("SWELL_ARTEMIS_DIR")?),
                })
            })
        })
    }

    /// Jolokia's base URL (`http://127.0.0.1:port/console/jolokia/`).
    pub fn jolokia(&self) -> String {
        format!("http://{}/console/jolokia/", self.endpoint)
    }
}
