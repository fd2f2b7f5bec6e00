//! `--metrics-auth`: who may scrape `/metrics` on the HTTPS metrics port, decided by the
//! API server as controller-runtime's secure metrics (and kube-rbac-proxy) decide it: the
//! scraper's bearer token through a TokenReview, then a SubjectAccessReview for `get` on
//! the non-resource URL `/metrics`. Both answers are cached for a minute, so a Prometheus
//! scraping every 15 s costs the API server four reviews an hour.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::Api;
use kube::api::PostParams;
use swell_metrics_api::{Attributes, Authorizer as _, UserInfo};

/// How long a token's identity and its decision are kept.
const TTL: Duration = Duration::from_secs(60);
/// Tokens remembered at once; beyond it the oldest half is dropped.
const CAPACITY: usize = 1024;

/// Why a scrape is refused; each is the answer's status and body.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    #[error("a bearer token is required (Authorization: Bearer <ServiceAccount token>)")]
    NoToken,
    #[error("the token was not accepted by the API server")]
    Unauthenticated,
    #[error("{user} may not get {path}: {reason}")]
    Forbidden {
        user: String,
        path: String,
        reason: String,
    },
    #[error("could not check the token: {0}")]
    Unavailable(String),
}

impl Refusal {
    pub fn status(&self) -> axum::http::StatusCode {
        use axum::http::StatusCode as S;
        match self {
            Refusal::NoToken | Refusal::Unauthenticated => S::UNAUTHORIZED,
            Refusal::Forbidden { .. } => S::FORBIDDEN,
            Refusal::Unavailable(_) => S::SERVICE_UNAVAILABLE,
        }
    }
}

/// The bearer token of an `Authorization` header value, if it carries one.
pub fn bearer(header: Option<&str>) -> Option<&str> {
    let h = header?.trim();
    let (scheme, token) = h.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

pub struct MetricsAuth {
    client: kube::Client,
    authorizer:
        swell_metrics_api::CachedAuthorizer<swell_metrics_api::SubjectAccessReviewAuthorizer>,
    /// Token (hashed: never kept in the clear) → who it is, when reviewed.
    identities: Mutex<HashMap<u64, (Option<UserInfo>, Instant)>>,
    hasher: std::collections::hash_map::RandomState,
}

impl MetricsAuth {
    pub fn new(client: kube::Client) -> MetricsAuth {
        let sar = swell_metrics_api::SubjectAccessReviewAuthorizer::new(client.clone());
        MetricsAuth {
            client,
            authorizer: swell_metrics_api::CachedAuthorizer::new(sar, TTL, CAPACITY),
            identities: Mutex::default(),
            hasher: Default::default(),
        }
    }

    /// Whether the request with this `Authorization` header may read `/metrics`.
    pub async fn check(&self, authorization: Option<&str>) -> Result<(), Refusal> {
        self.check_path(authorization, "/metrics").await
    }

    /// Whether it may `get` the non-resource URL `path` (`/explain/NS/NAME` too, which
    /// RBAC grants with `nonResourceURLs: [/explain/*]`).
    pub async fn check_path(&self, authorization: Option<&str>, path: &str) -> Result<(), Refusal> {
        let token = bearer(authorization).ok_or(Refusal::NoToken)?;
        let user = self
            .identity(token)
            .await?
            .ok_or(Refusal::Unauthenticated)?;
        let attributes = Attributes::NonResource {
            verb: "get".into(),
            path: path.into(),
        };
        let decision = self
            .authorizer
            .authorize(&user, &attributes)
            .await
            .map_err(|e| Refusal::Unavailable(e.to_string()))?;
        if decision.allowed {
            Ok(())
        } else {
            Err(Refusal::Forbidden {
                user: user.name,
                path: path.to_string(),
                reason: decision.reason,
            })
        }
    }

    /// The token's user from a TokenReview (None: not authenticated), cached.
    async fn identity(&self, token: &str) -> Result<Option<UserInfo>, Refusal> {
        use std::hash::BuildHasher as _;
        let key = self.hasher.hash_one(token);
        if let Some((user, at)) = self.lock().get(&key)
            && at.elapsed() < TTL
        {
            return Ok(user.clone());
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_string(),
                ..Default::default()
            },
            ..Default::default()
        };
        let api: Api<TokenReview> = Api::all(self.client.clone());
        let got = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| Refusal::Unavailable(e.to_string()))?;
        let status = got.status.unwrap_or_default();
        let user = status
            .authenticated
            .unwrap_or(false)
            .then(|| status.user.unwrap_or_default())
            .map(|u| UserInfo {
                name: u.username.unwrap_or_default(),
                uid: u.uid.unwrap_or_default(),
                groups: u.groups.unwrap_or_default(),
                extra: u.extra.unwrap_or_default().into_iter().collect(),
            });
        let mut ids = self.lock();
        if ids.len() >= CAPACITY {
            ids.retain(|_, (_, at)| at.elapsed() < TTL / 2);
        }
        ids.insert(key, (user.clone(), Instant::now()));
        Ok(user)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (Option<UserInfo>, Instant)>> {
        self.identities.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_as_sent() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(Some("Bearer ")), None);
        assert_eq!(bearer(None), None);
    }
}
