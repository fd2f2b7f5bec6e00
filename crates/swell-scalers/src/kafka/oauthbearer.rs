//! SASL OAUTHBEARER (RFC 7628, KIP-255) for the Kafka client: the token comes from an OAuth
//! 2.0 token endpoint (client credentials, through [`crate::oauth::Tokens`]) or is an Amazon
//! MSK IAM token (a SigV4-presigned `kafka-cluster:Connect` URL, as AWS's
//! aws-msk-iam-sasl-signer libraries build it). Tokens are never logged or put in messages.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;

use crate::aws::{Identity, SharedAws};
use crate::http::{HttpClientKey, HttpClients};
use crate::oauth::OAuthClient;
use crate::tls::Secret;
use crate::upstream::UpstreamError;

/// How long an MSK IAM token is valid (the signer libraries' `X-Amz-Expires`).
pub const MSK_TOKEN_LIFETIME: Duration = Duration::from_secs(900);
/// The presigned action and service of an MSK IAM token.
const MSK_ACTION: &str = "kafka-cluster:Connect";
const MSK_SERVICE: &str = "kafka-cluster";
/// The signer libraries add their name and version in this (unsigned) query parameter.
const MSK_USER_AGENT: &str = concat!("swell-kafka-scaler/", env!("CARGO_PKG_VERSION"));

/// Where a trigger's OAUTHBEARER token comes from (`saslTokenProvider`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TokenSource {
    /// `bearer`: a client-credentials token from `oauthTokenEndpointUri`, sent with the
    /// `oauthExtensions`. `ca` (the trigger's) is trusted for the token endpoint too.
    Client {
        client: OAuthClient,
        ca: Option<String>,
        extensions: Vec<(String, String)>,
    },
    /// `aws_msk_iam`: a token signed with the trigger's AWS identity for `region`.
    MskIam { identity: Identity, region: String },
}

impl TokenSource {
    /// For messages: names the endpoint or identity, never a secret.
    pub fn describe(&self) -> String {
        match self {
            TokenSource::Client { client, .. } => {
                format!("the token of oauth2 token endpoint {}", client.token_uri)
            }
            TokenSource::MskIam { identity, region } => format!(
                "the Amazon MSK IAM token of {} in {region}",
                identity.describe()
            ),
        }
    }
}

/// What tokens are fetched with: the scalers' shared token cache, HTTP clients and AWS
/// clients.
#[derive(Clone, Default)]
pub struct Tokens {
    pub oauth: Arc<crate::oauth::Tokens>,
    pub http: Arc<HttpClients>,
    pub aws: SharedAws,
}

impl Tokens {
    /// The SASL OAUTHBEARER initial client response for a new connection: a cached OAuth
    /// token while fresh (else a new one), or an MSK IAM token signed now.
    pub async fn initial_response(&self, source: &TokenSource) -> Result<Secret, UpstreamError> {
        match source {
            TokenSource::Client {
                client,
                ca,
                extensions,
            } => {
                let key = HttpClientKey {
                    ca: ca.clone(),
                    ..Default::default()
                };
                let http = self.http.get(&key)?;
                // `Bearer <token>`: the `auth` value RFC 7628 §3.1 wants.
                let header = self.oauth.header(&http, client).await?;
                Ok(initial_response(header.expose(), extensions))
            }
            TokenSource::MskIam { identity, region } => {
                let url = msk_url(region);
                let (signed, _) = self
                    .aws
                    .presign(identity, region, MSK_SERVICE, &url, MSK_TOKEN_LIFETIME)
                    .await?;
                let token = msk_token(signed);
                Ok(initial_response(&format!("Bearer {}", token.expose()), &[]))
            }
        }
    }

    /// The broker refused the token: an OAuth one is not reused.
    pub fn refused(&self, source: &TokenSource) {
        if let TokenSource::Client { client, .. } = source {
            self.oauth.forget(client);
        }
    }
}

/// `n,,\x01auth=<auth>\x01<key>=<value>\x01…\x01` (RFC 7628 §3.1, no authzid).
pub fn initial_response(auth: &str, extensions: &[(String, String)]) -> Secret {
    let mut msg = format!("n,,\x01auth={auth}\x01");
    for (k, v) in extensions {
        msg.push_str(&format!("{k}={v}\x01"));
    }
    msg.push('\x01');
    Secret::new(msg)
}

/// The URL an MSK IAM token presigns, before signing.
pub fn msk_url(region: &str) -> String {
    let action: String = form_urlencoded::byte_serialize(MSK_ACTION.as_bytes()).collect();
    format!("https://kafka.{region}.amazonaws.com/?Action={action}")
}

/// The presigned URL with Swell's `User-Agent` parameter, base64url without padding.
pub fn msk_token(mut signed: reqwest::Url) -> Secret {
    signed
        .query_pairs_mut()
        .append_pair("User-Agent", MSK_USER_AGENT);
    Secret::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signed.as_str()))
}

/// The broker's error challenge (RFC 7628 §3.2.2: a JSON object with `status` and maybe
/// `scope` and `openid-configuration`), for the message; never echoes anything else.
pub fn server_error(challenge: &[u8]) -> String {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(challenge) else {
        return "an error challenge that is not JSON".into();
    };
    let field = |k: &str| map.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let mut out = format!(
        "status {}",
        field("status").unwrap_or_else(|| "unknown".into())
    );
    if let Some(scope) = field("scope") {
        out.push_str(&format!(", scope {scope:?}"));
    }
    if let Some(conf) = field("openid-configuration") {
        out.push_str(&format!(", openid-configuration {conf}"));
    }
    out
}

/// Why an `oauthExtensions` entry cannot be sent (RFC 7628 §3.1: `key = 1*ALPHA`, values
/// of visible characters, spaces and tabs; `auth` is the token's own key).
pub fn check_extension(key: &str, value: &str) -> Option<String> {
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Some(format!(
            "extension key {key:?} must be letters only (RFC 7628)"
        ));
    }
    if key == "auth" {
        return Some("extension key \"auth\" is reserved for the token".into());
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_graphic() || b == b' ' || b == b'\t')
    {
        return Some(format!(
            "extension {key}'s value must be visible ASCII characters, spaces or tabs"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_responses_follow_rfc7628() {
        let ext = vec![
            ("logicalCluster".to_string(), "lkc-1".to_string()),
            ("identityPoolId".to_string(), "pool-2".to_string()),
        ];
        assert_eq!(
            initial_response("Bearer abc", &ext).expose(),
            "n,,\x01auth=Bearer abc\x01logicalCluster=lkc-1\x01identityPoolId=pool-2\x01\x01"
        );
        assert_eq!(
            initial_response("Bearer abc", &[]).expose(),
            "n,,\x01auth=Bearer abc\x01\x01"
        );
    }

    #[test]
    fn error_challenges_are_summarised() {
        assert_eq!(
            server_error(br#"{"status":"invalid_token","scope":"kafka"}"#),
            "status invalid_token, scope \"kafka\""
        );
        assert_eq!(server_error(b"nope"), "an error challenge that is not JSON");
    }

    #[test]
    fn extensions_are_checked() {
        assert_eq!(check_extension("logicalCluster", "lkc-1 x"), None);
        assert!(check_extension("auth", "x").is_some());
        assert!(check_extension("a_b", "x").is_some());
        assert!(check_extension("", "x").is_some());
        assert!(check_extension("a", "x\x01y").is_some());
    }
}
