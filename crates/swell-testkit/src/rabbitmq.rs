use std::path::PathBuf;
use std::sync::OnceLock;

/// The local RabbitMQ of this test process (see `hack/rabbitmq.sh`): the one named by
/// `SWELL_RABBITMQ_*`, or one started on first use with a watchdog that stops it when this
/// process exits. [`RabbitMq::user`] (an administrator, with a password) may use the default
/// vhost `/` and [`RabbitMq::vhost`]; AMQPS is offered with a certificate for 127.0.0.1 from
/// the CA at [`RabbitMq::ca`], and the management API on [`RabbitMq::http_port`] (HTTPS on
/// [`RabbitMq::https_port`]).
#[derive(Debug)]
pub struct RabbitMq {
    pub amqp_port: String,
    pub amqps_port: String,
    pub http_port: String,
    /// The management API over HTTPS (the same certificate as AMQPS).
    pub https_port: String,
    pub user: String,
    pub password: String,
    pub vhost: String,
    pub ca: PathBuf,
    /// A client certificate (CN = the test user) and its key, from the same CA: with SASL
    /// EXTERNAL it logs in as [`RabbitMq::user`] without a password.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub dir: PathBuf,
}

static SHARED: OnceLock<RabbitMq> = OnceLock::new();

impl RabbitMq {
    pub fn shared() -> &'static RabbitMq {
        SHARED.get_or_init(|| {
            crate::from_env_or_started("rabbitmq.sh", &[], "RabbitMQ", Self::from_exports)
        })
    }

    fn from_exports(get: &dyn Fn(&str) -> anyhow::Result<String>) -> anyhow::Result<RabbitMq> {
        Ok(RabbitMq {
            amqp_port: get("SWELL_RABBITMQ_AMQP_PORT")?,
            amqps_port: get("SWELL_RABBITMQ_AMQPS_PORT")?,
            http_port: get("SWELL_RABBITMQ_HTTP_PORT")?,
            https_port: get("SWELL_RABBITMQ_HTTPS_PORT")?,
            user: get("SWELL_RABBITMQ_USER")?,
            password: get("SWELL_RABBITMQ_PASSWORD")?,
            vhost: get("SWELL_RABBITMQ_VHOST")?,
            ca: PathBuf::from(get("SWELL_RABBITMQ_TLS_CA")?),
            client_cert: PathBuf::from(get("SWELL_RABBITMQ_CLIENT_CERT")?),
            client_key: PathBuf::from(get("SWELL_RABBITMQ_CLIENT_KEY")?),
            dir: PathBuf::from(get("SWELL_RABBITMQ_DIR")?),
        })
    }

    /// `amqp://user:password@127.0.0.1:port/<vhost>` (the vhost as given, escaped by the caller).
    pub fn amqp_url(&self, vhost: &str) -> String {
        format!(
            "amqp://{}:{}@127.0.0.1:{}/{vhost}",
            self.user, self.password, self.amqp_port
        )
    }

    /// The management API's base URL, without credentials.
    pub fn http_base(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }
}
