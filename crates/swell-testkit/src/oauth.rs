use std::path::PathBuf;
use std::sync::OnceLock;

/// The local OAuth 2.0 authorization server of this test process (see `hack/oauth.sh`):
/// the one named by `SWELL_OAUTH_*`, or one started on first use with a watchdog that
/// stops it when this process exits. It issues client-credentials tokens to
/// [`OAuthServer::client_id`] over HTTPS, with a certificate from the CA
/// [`OAuthServer::tls_ca`] made for the run.
#[derive(Debug)]
pub struct OAuthServer {
    pub issuer: String,
    pub token_url: String,
    /// Its signing keys, for the JWT access tokens of [`OAuthServer::kafka_client_id`].
    pub jwks_url: String,
    pub introspection_url: String,
    pub client_id: String,
    pub client_secret: String,
    /// A client (same secret) whose tokens are JWTs for [`OAuthServer::kafka_audience`],
    /// the audience the test Kafka's OAUTHBEARER listener expects.
    pub kafka_client_id: String,
    /// A client (same secret) whose tokens are JWTs for another audience.
    pub kafka_other_client_id: String,
    pub kafka_audience: String,
    pub tls_ca: PathBuf,
    /// How long its tokens live, in seconds.
    pub token_ttl: u64,
}

static SHARED: OnceLock<OAuthServer> = OnceLock::new();
static SHORT_LIVED: OnceLock<OAuthServer> = OnceLock::new();

impl OAuthServer {
    pub fn shared() -> &'static OAuthServer {
        SHARED.get_or_init(|| {
            crate::from_env_or_started("oauth.sh", &[], "OAuth server", Self::from_exports)
        })
    }

    /// A second server, started for this process, whose tokens live 12 s: Go's `oauth2`
    /// (and Swell) treat them as expired 10 s early, so they are reused for about 2 s.
    pub fn short_lived() -> &'static OAuthServer {
        SHORT_LIVED.get_or_init(|| {
            let pid = std::process::id().to_string();
            let args = ["up", "--owner-pid", pid.as_str(), "--token-ttl", "12"];
            let vars = crate::run_script("oauth.sh", &args)
                .unwrap_or_else(|e| panic!("no short-lived OAuth server: {e:#}"));
            Self::from_exports(&|k: &str| {
                vars.iter()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| anyhow::anyhow!("{k} not set"))
            })
            .unwrap_or_else(|e| panic!("hack/oauth.sh --token-ttl: {e:#}"))
        })
    }

    fn from_exports(get: &dyn Fn(&str) -> anyhow::Result<String>) -> anyhow::Result<OAuthServer> {
        Ok(OAuthServer {
            issuer: get("SWELL_OAUTH_ISSUER")?,
            token_url: get("SWELL_OAUTH_TOKEN_URL")?,
            jwks_url: get("SWELL_OAUTH_JWKS_URL")?,
            kafka_client_id: get("SWELL_OAUTH_KAFKA_CLIENT_ID")?,
            kafka_other_client_id: get("SWELL_OAUTH_KAFKA_OTHER_CLIENT_ID")?,
            kafka_audience: get("SWELL_OAUTH_KAFKA_AUDIENCE")?,
            introspection_url: get("SWELL_OAUTH_INTROSPECTION_URL")?,
            client_id: get("SWELL_OAUTH_CLIENT_ID")?,
            client_secret: get("SWELL_OAUTH_CLIENT_SECRET")?,
            tls_ca: PathBuf::from(get("SWELL_OAUTH_TLS_CA")?),
            token_ttl: get("SWELL_OAUTH_TOKEN_TTL")?.parse()?,
        })
    }

    /// What `hack/kafka.sh` needs for its OAUTHBEARER listener.
    pub fn kafka_exports(&self) -> Vec<(String, String)> {
        [
            ("SWELL_OAUTH_ISSUER", self.issuer.clone()),
            ("SWELL_OAUTH_JWKS_URL", self.jwks_url.clone()),
            ("SWELL_OAUTH_KAFKA_AUDIENCE", self.kafka_audience.clone()),
            ("SWELL_OAUTH_TLS_CA", self.tls_ca.display().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// The run's CA, PEM.
    pub fn ca_pem(&self) -> String {
        std::fs::read_to_string(&self.tls_ca)
            .unwrap_or_else(|e| panic!("reading {}: {e}", self.tls_ca.display()))
    }
}
