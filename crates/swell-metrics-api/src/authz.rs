//! Delegated authorization: a SubjectAccessReview per (user, request attributes), with
//! decisions cached briefly.

use std::collections::HashMap;
use std::hash::BuildHasher as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::Api;
use kube::api::PostParams;

use crate::UserInfo;

/// What a request does, as kube-apiserver's RequestInfo would describe it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Attributes {
    Resource {
        verb: String,
        group: String,
        version: String,
        resource: String,
        subresource: String,
        namespace: String,
        name: String,
    },
    NonResource {
        verb: String,
        path: String,
    },
}

impl Attributes {
    /// Follows k8s.io/apiserver's `RequestInfoFactory` for `/apis/...` paths: a name-less
    /// GET of `namespaces/{ns}/{metric}` is verb `list` on resource `{metric}`, and
    /// `/apis`, `/apis/{group}` and `/apis/{group}/{version}` are non-resource paths.
    pub fn from_request(method: &http::Method, path: &str) -> Attributes {
        let method = method.as_str().to_ascii_lowercase();
        let parts: Vec<String> = path
            .split('/')
            .filter(|p| !p.is_empty())
            .map(|p| {
                percent_encoding::percent_decode_str(p)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect();
        if parts.len() < 4 || parts[0] != "apis" {
            return Attributes::NonResource {
                verb: method,
                path: path.to_string(),
            };
        }
        let (group, version) = (parts[1].clone(), parts[2].clone());
        let mut rest = &parts[3..];
        let mut namespace = String::new();
        if rest[0] == "namespaces" && rest.len() > 1 {
            namespace = rest[1].clone();
            // `namespaces/{ns}` alone (or its status/finalize) is the namespace itself.
            if rest.len() > 2 && !matches!(rest[2].as_str(), "status" | "finalize") {
                rest = &rest[2..];
            }
        }
        let resource = rest[0].clone();
        let name = rest.get(1).cloned().unwrap_or_default();
        let subresource = rest.get(2).cloned().unwrap_or_default();
        let verb = match method.as_str() {
            "get" | "head" if name.is_empty() => "list",
            "get" | "head" => "get",
            "post" => "create",
            "put" => "update",
            "patch" => "patch",
            "delete" if name.is_empty() => "deletecollection",
            "delete" => "delete",
            other => other,
        }
        .to_string();
        Attributes::Resource {
            verb,
            group,
            version,
            resource,
            subresource,
            namespace,
            name,
        }
    }

    /// The reason part of a 403 message, worded like kube-apiserver's.
    pub(crate) fn forbidden_message(&self, user: &str) -> String {
        match self {
            Attributes::Resource {
                verb,
                group,
                resource,
                namespace,
                name,
                ..
            } => {
                let what = if name.is_empty() {
                    format!("{resource}.{group} is forbidden")
                } else {
                    format!("{resource}.{group} {name:?} is forbidden")
                };
                let scope = if namespace.is_empty() {
                    "at the cluster scope".to_string()
                } else {
                    format!("in the namespace {namespace:?}")
                };
                format!(
                    "{what}: User {user:?} cannot {verb} resource {resource:?} in API group {group:?} {scope}"
                )
            }
            Attributes::NonResource { verb, path } => {
                format!("forbidden: User {user:?} cannot {verb} path {path:?}")
            }
        }
    }
}

/// An authorization decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
#[error("authorization check failed: {0}")]
pub struct AuthorizationError(pub String);

#[async_trait::async_trait]
pub trait Authorizer: Send + Sync + 'static {
    async fn authorize(
        &self,
        user: &UserInfo,
        attributes: &Attributes,
    ) -> Result<Decision, AuthorizationError>;
}

/// Asks kube-apiserver with a SubjectAccessReview (needs `system:auth-delegator`).
pub struct SubjectAccessReviewAuthorizer {
    client: kube::Client,
}

impl SubjectAccessReviewAuthorizer {
    pub fn new(client: kube::Client) -> Self {
        SubjectAccessReviewAuthorizer { client }
    }
}

pub(crate) fn review(user: &UserInfo, attributes: &Attributes) -> SubjectAccessReview {
    let non_empty = |s: &String| (!s.is_empty()).then(|| s.clone());
    let mut spec = SubjectAccessReviewSpec {
        user: Some(user.name.clone()),
        uid: non_empty(&user.uid),
        groups: Some(user.groups.clone()).filter(|g| !g.is_empty()),
        extra: Some(user.extra.clone()).filter(|e| !e.is_empty()),
        ..Default::default()
    };
    match attributes {
        Attributes::Resource {
            verb,
            group,
            version,
            resource,
            subresource,
            namespace,
            name,
        } => {
            spec.resource_attributes = Some(ResourceAttributes {
                verb: Some(verb.clone()),
                group: Some(group.clone()),
                version: Some(version.clone()),
                resource: Some(resource.clone()),
                subresource: non_empty(subresource),
                namespace: non_empty(namespace),
                name: non_empty(name),
                ..Default::default()
            })
        }
        Attributes::NonResource { verb, path } => {
            spec.non_resource_attributes = Some(NonResourceAttributes {
                verb: Some(verb.clone()),
                path: Some(path.clone()),
            })
        }
    }
    SubjectAccessReview {
        spec,
        ..Default::default()
    }
}

#[async_trait::async_trait]
impl Authorizer for SubjectAccessReviewAuthorizer {
    async fn authorize(
        &self,
        user: &UserInfo,
        attributes: &Attributes,
    ) -> Result<Decision, AuthorizationError> {
        let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let got = api
            .create(&PostParams::default(), &review(user, attributes))
            .await
            .map_err(|e| AuthorizationError(e.to_string()))?;
        let status = got.status.unwrap_or_default();
        let mut reason = status.reason.unwrap_or_default();
        if let Some(e) = status.evaluation_error.filter(|e| !e.is_empty()) {
            tracing::debug!(error = %e, "SubjectAccessReview evaluation error");
            if reason.is_empty() {
                reason = e;
            }
        }
        Ok(Decision {
            allowed: status.allowed && !status.denied.unwrap_or(false),
            reason,
        })
    }
}

struct Entry {
    user: UserInfo,
    attributes: Attributes,
    at: Instant,
    decision: Decision,
}

/// Caches an inner authorizer's allow and deny decisions for `ttl`, holding at most
/// `capacity` of them. Failed checks are not cached.
pub struct CachedAuthorizer<A> {
    inner: A,
    ttl: Duration,
    capacity: usize,
    hasher: std::collections::hash_map::RandomState,
    // Keyed by hash so a lookup needs no clones; entries compare in full, so a
    // collision can never hand one user another's decision.
    entries: Mutex<HashMap<u64, Vec<Entry>>>,
}

impl<A: Authorizer> CachedAuthorizer<A> {
    pub fn new(inner: A, ttl: Duration, capacity: usize) -> Self {
        CachedAuthorizer {
            inner,
            ttl,
            capacity: capacity.max(1),
            hasher: Default::default(),
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lookup(&self, key: u64, user: &UserInfo, attributes: &Attributes) -> Option<Decision> {
        let map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&key)?
            .iter()
            .find(|e| &e.user == user && &e.attributes == attributes)
            .filter(|e| e.at.elapsed() < self.ttl)
            .map(|e| e.decision.clone())
    }

    fn store(&self, key: u64, user: &UserInfo, attributes: &Attributes, decision: &Decision) {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= self.capacity {
            let ttl = self.ttl;
            map.retain(|_, v| {
                v.retain(|e| e.at.elapsed() < ttl);
                !v.is_empty()
            });
            // Still full of live entries: drop an arbitrary one rather than grow.
            if map.len() >= self.capacity
                && let Some(k) = map.keys().next().copied()
            {
                map.remove(&k);
            }
        }
        let slot = map.entry(key).or_default();
        slot.retain(|e| !(&e.user == user && &e.attributes == attributes));
        slot.push(Entry {
            user: user.clone(),
            attributes: attributes.clone(),
            at: Instant::now(),
            decision: decision.clone(),
        });
    }

    pub fn len(&self) -> usize {
        let map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        map.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait::async_trait]
impl<A: Authorizer> Authorizer for CachedAuthorizer<A> {
    async fn authorize(
        &self,
        user: &UserInfo,
        attributes: &Attributes,
    ) -> Result<Decision, AuthorizationError> {
        let key = self.hasher.hash_one((user, attributes));
        if let Some(d) = self.lookup(key, user, attributes) {
            return Ok(d);
        }
        let decision = self.inner.authorize(user, attributes).await?;
        self.store(key, user, attributes, &decision);
        Ok(decision)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn metric_get_is_list_on_the_metric_resource() {
        let a = Attributes::from_request(
            &http::Method::GET,
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/demo/s0-queue",
        );
        assert_eq!(
            a,
            Attributes::Resource {
                verb: "list".into(),
                group: "external.metrics.k8s.io".into(),
                version: "v1beta1".into(),
                resource: "s0-queue".into(),
                subresource: String::new(),
                namespace: "demo".into(),
                name: String::new(),
            }
        );
        assert_eq!(
            a.forbidden_message("bob"),
            r#"s0-queue.external.metrics.k8s.io is forbidden: User "bob" cannot list resource "s0-queue" in API group "external.metrics.k8s.io" in the namespace "demo""#
        );
    }

    #[test]
    fn discovery_is_non_resource() {
        for p in [
            "/apis",
            "/apis/external.metrics.k8s.io",
            "/apis/external.metrics.k8s.io/v1beta1",
            "/openapi/v2",
        ] {
            assert_eq!(
                Attributes::from_request(&http::Method::GET, p),
                Attributes::NonResource {
                    verb: "get".into(),
                    path: p.into()
                }
            );
        }
        let ns = Attributes::from_request(
            &http::Method::GET,
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/demo",
        );
        assert!(
            matches!(ns, Attributes::Resource { ref resource, ref name, ref verb, .. } if resource == "namespaces" && name == "demo" && verb == "get")
        );
    }

    #[test]
    fn review_carries_the_user() {
        let user = UserInfo {
            name: "alice".into(),
            uid: "u1".into(),
            groups: vec!["g".into()],
            extra: [("k".to_string(), vec!["v".to_string()])].into(),
        };
        let sar = review(
            &user,
            &Attributes::from_request(
                &http::Method::GET,
                "/apis/external.metrics.k8s.io/v1beta1/namespaces/demo/m",
            ),
        );
        let v = serde_json::to_value(&sar).unwrap();
        assert_eq!(
            v["spec"],
            serde_json::json!({
                "user": "alice", "uid": "u1", "groups": ["g"], "extra": {"k": ["v"]},
                "resourceAttributes": {"verb": "list", "group": "external.metrics.k8s.io",
                    "version": "v1beta1", "resource": "m", "namespace": "demo"}
            })
        );
        let sar = review(
            &UserInfo {
                name: "bob".into(),
                ..Default::default()
            },
            &Attributes::from_request(&http::Method::GET, "/apis"),
        );
        let v = serde_json::to_value(&sar).unwrap();
        assert_eq!(
            v["spec"],
            serde_json::json!({"user": "bob", "nonResourceAttributes": {"verb": "get", "path": "/apis"}})
        );
    }

    struct Counting(Arc<AtomicUsize>);

    #[async_trait::async_trait]
    impl Authorizer for Counting {
        async fn authorize(
            &self,
            user: &UserInfo,
            _: &Attributes,
        ) -> Result<Decision, AuthorizationError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(Decision {
                allowed: user.name == "alice",
                reason: String::new(),
            })
        }
    }

    #[tokio::test]
    async fn caches_allow_and_deny_briefly_and_boundedly() {
        let calls = Arc::new(AtomicUsize::new(0));
        let cache = CachedAuthorizer::new(Counting(calls.clone()), Duration::from_millis(200), 3);
        let user = |n: &str| UserInfo {
            name: n.into(),
            ..Default::default()
        };
        let attrs = Attributes::from_request(&http::Method::GET, "/apis");
        for _ in 0..3 {
            assert!(
                cache
                    .authorize(&user("alice"), &attrs)
                    .await
                    .unwrap()
                    .allowed
            );
            assert!(!cache.authorize(&user("bob"), &attrs).await.unwrap().allowed);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        tokio::time::sleep(Duration::from_millis(250)).await;
        cache.authorize(&user("alice"), &attrs).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        for n in ["c", "d", "e", "f", "g"] {
            cache.authorize(&user(n), &attrs).await.unwrap();
        }
        assert!(cache.len() <= 3, "{}", cache.len());
    }
}
