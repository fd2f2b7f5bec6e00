use std::path::PathBuf;
use std::sync::OnceLock;

/// The local ActiveMQ "Classic" broker of this test process (see `hack/activemq.sh`): the
/// one named by `SWELL_ACTIVEMQ_*`, or one started on first use with a watchdog that stops
/// it when this process exits. Its Jolokia (the JVM agent at `/api/jolokia`, basic auth for
/// [`ActiveMq::user`]) listens on [`ActiveMq::endpoint`] (`127.0.0.1:port`), which is
/// KEDA's `managementEndpoint`; the broker's name is [`ActiveMq::broker`].
#[derive(Debug)]
pub struct ActiveMq {
    pub endpoint: String,
    pub broker: String,
    pub user: String,
    pub password: String,
    pub dir: PathBuf,
}

static SHARED: OnceLock<ActiveMq> = OnceLock::new();

impl ActiveMq {
    pub fn shared() -> &'static ActiveMq {
        SHARED.get_or_init(|| {
            crate::from_env_or_started("activemq.sh", &[], "ActiveMQ", |get| {
                Ok(ActiveMq {
                    endpoint: get("SWELL_ACTIVEMQ_ENDPOINT")?,
                    broker: get("SWELL_ACTIVEMQ_BROKER")?,
                    user: get("SWELL_ACTIVEMQ_USER")?,
                    password: get("SWELL_ACTIVEMQ_PASSWORD")?,
                    dir: PathBuf::from(get("SWELL_ACTIVEMQ_DIR")?),
                })
            })
        })
    }

    /// Jolokia's base URL (`http://127.0.0.1:port/api/jolokia/`).
    pub fn jolokia(&self) -> String {
        format!("http://{}/api/jolokia/", self.endpoint)
    }
}
