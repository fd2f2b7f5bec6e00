use std::path::PathBuf;
use std::sync::OnceLock;

/// The local Azurite of this test process (see `hack/azurite.sh`): the one named by
/// `SWELL_AZURITE_*` (HTTPS, a certificate for 127.0.0.1 from the CA [`Azurite::tls_ca`]
/// made for the run), or one started on first use with a watchdog that stops it when this
/// process exits. One storage account, [`Azurite::account`] with [`Azurite::key`].
#[derive(Debug)]
pub struct Azurite {
    pub account: String,
    pub key: String,
    /// Path-style service URLs, `https://127.0.0.1:<port>/<account>`.
    pub blob_endpoint: String,
    pub queue_endpoint: String,
    /// `None` for [`Azurite::plain`].
    pub tls_ca: Option<PathBuf>,
    pub dir: PathBuf,
}

static SHARED: OnceLock<Azurite> = OnceLock::new();
static PLAIN: OnceLock<Azurite> = OnceLock::new();

impl Azurite {
    pub fn shared() -> &'static Azurite {
        SHARED.get_or_init(|| {
            crate::from_env_or_started("azurite.sh", &[], "Azurite", Self::from_exports)
        })
    }

    /// A second Azurite, started for this process, over plain HTTP (`--no-tls`): for
    /// scalers run inside the test, whose system roots do not hold the run's CA.
    pub fn plain() -> &'static Azurite {
        PLAIN.get_or_init(|| {
            let pid = std::process::id().to_string();
            let args = ["up", "--owner-pid", pid.as_str(), "--no-tls"];
            let vars = crate::run_script("azurite.sh", &args)
                .unwrap_or_else(|e| panic!("no local Azurite without TLS: {e:#}"));
            Self::from_exports(&|k: &str| {
                vars.iter()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| anyhow::anyhow!("{k} not set"))
            })
            .unwrap_or_else(|e| panic!("hack/azurite.sh --no-tls: {e:#}"))
        })
    }

    fn from_exports(get: &dyn Fn(&str) -> anyhow::Result<String>) -> anyhow::Result<Azurite> {
        Ok(Azurite {
            account: get("SWELL_AZURITE_ACCOUNT")?,
            key: get("SWELL_AZURITE_KEY")?,
            blob_endpoint: get("SWELL_AZURITE_BLOB_ENDPOINT")?,
            queue_endpoint: get("SWELL_AZURITE_QUEUE_ENDPOINT")?,
            tls_ca: get("SWELL_AZURITE_TLS_CA").ok().map(PathBuf::from),
            dir: PathBuf::from(get("SWELL_AZURITE_DIR")?),
        })
    }

    /// A connection string for the account with `key` (the right one: [`Azurite::key`]),
    /// both service endpoints named, as Azurite's documentation writes them.
    pub fn connection_string_with_key(&self, key: &str) -> String {
        let proto = if self.tls_ca.is_some() {
            "https"
        } else {
            "http"
        };
        format!(
            "DefaultEndpointsProtocol={proto};AccountName={};AccountKey={key};BlobEndpoint={};QueueEndpoint={};",
            self.account, self.blob_endpoint, self.queue_endpoint
        )
    }

    pub fn connection_string(&self) -> String {
        self.connection_string_with_key(&self.key)
    }
}
