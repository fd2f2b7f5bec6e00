//! The accept loop (tokio-rustls, so each connection's client certificate is known),
//! the router and the authentication/authorization guard in front of it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::Router;
use axum::extract::{Extension, Path, RawQuery, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{MethodRouter, get};
use futures::StreamExt as _;
use http::StatusCode;
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::runtime::{WatchStreamExt as _, watcher};
use rustls::pki_types::CertificateDer;
use tokio_util::sync::CancellationToken;
use tower::Service as _;

use crate::authn::{CONFIGMAP_NAME, CONFIGMAP_NAMESPACE, Peer, provider};
use crate::delegate::{self, Delegation, Route};
use crate::tls::{Certs, MinTls, Resolver};
use crate::{
    Attributes, Authentication, Authorizer, CachedAuthorizer, Config, Error, MetricSource,
    SubjectAccessReviewAuthorizer, UserInfo, api,
};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Authentication settings and the TLS configuration built from them, swapped together
/// when the ConfigMap changes. New connections pick up the new CAs.
struct Live {
    /// Bumped on every reload, so connections know to re-check their certificate.
    generation: u64,
    authn: Authentication,
    tls: Arc<rustls::ServerConfig>,
}

impl Live {
    fn new(
        generation: u64,
        authn: Authentication,
        resolver: Arc<Resolver>,
        min: MinTls,
    ) -> Result<Live, Error> {
        let mut tls = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(min.versions())?
            .with_client_cert_verifier(authn.tls_verifier())
            .with_cert_resolver(resolver);
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Live {
            generation,
            authn,
            tls: Arc::new(tls),
        })
    }
}

/// A connection's client certificate and what it proves under the current settings.
/// Classified at connect time and again only after a reload, so a CA taken out of the
/// ConfigMap stops vouching for connections already open (as Go re-verifies per request).
struct ConnPeer {
    chain: Option<Vec<CertificateDer<'static>>>,
    classified: Mutex<(u64, Arc<Peer>)>,
}

impl ConnPeer {
    fn new(chain: Option<&[CertificateDer<'_>]>, live: &Live) -> ConnPeer {
        let chain: Option<Vec<_>> =
            chain.map(|c| c.iter().map(|d| d.clone().into_owned()).collect());
        let peer = Arc::new(live.authn.classify(chain.as_deref()));
        ConnPeer {
            chain,
            classified: Mutex::new((live.generation, peer)),
        }
    }

    fn peer(&self, live: &Live) -> Arc<Peer> {
        let mut c = self.classified.lock().unwrap_or_else(|p| p.into_inner());
        if c.0 != live.generation {
            *c = (
                live.generation,
                Arc::new(live.authn.classify(self.chain.as_deref())),
            );
        }
        c.1.clone()
    }
}

/// Applies new ConfigMap data; `Ok(false)` when nothing changed.
fn reload(
    shared: &Shared,
    resolver: &Arc<Resolver>,
    min_tls: MinTls,
    data: &BTreeMap<String, String>,
) -> Result<bool, Error> {
    let current = shared.live.load_full();
    if current.authn.data() == data {
        return Ok(false);
    }
    let authn = Authentication::from_configmap_data(data)?;
    let live = Live::new(current.generation + 1, authn, resolver.clone(), min_tls)?;
    shared.live.store(Arc::new(live));
    Ok(true)
}

struct Shared {
    source: Arc<dyn MetricSource>,
    authorizer: Arc<dyn Authorizer>,
    live: ArcSwap<Live>,
    delegation: Option<Arc<Delegation>>,
}

/// A bound, not yet running server.
pub struct Server {
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    certs: Arc<Certs>,
    min_tls: MinTls,
    client: Option<kube::Client>,
}

impl Server {
    /// Binds `config.bind`, reads the authentication ConfigMap (failing if it cannot) and
    /// prepares the serving certificate. Authorization is by cached SubjectAccessReview.
    pub async fn bind(
        config: Config,
        source: Arc<dyn MetricSource>,
        client: kube::Client,
    ) -> Result<Server, Error> {
        let cm = Api::<ConfigMap>::namespaced(client.clone(), CONFIGMAP_NAMESPACE)
            .get(CONFIGMAP_NAME)
            .await
            .map_err(Error::AuthenticationConfigMap)?;
        let authn = Authentication::from_configmap_data(&cm.data.unwrap_or_default())?;
        let authorizer = Arc::new(CachedAuthorizer::new(
            SubjectAccessReviewAuthorizer::new(client.clone()),
            config.authz_cache_ttl,
            config.authz_cache_size,
        ));
        Self::bind_inner(config, source, authn, authorizer, Some(client)).await
    }

    /// Binds without a cluster: fixed authentication settings (e.g. built from local
    /// CAs), the given authorizer, and no APIService patching. For benchmarks and tests.
    pub async fn bind_with(
        config: Config,
        source: Arc<dyn MetricSource>,
        authentication: Authentication,
        authorizer: Arc<dyn Authorizer>,
    ) -> Result<Server, Error> {
        Self::bind_inner(config, source, authentication, authorizer, None).await
    }

    async fn bind_inner(
        config: Config,
        source: Arc<dyn MetricSource>,
        authn: Authentication,
        authorizer: Arc<dyn Authorizer>,
        client: Option<kube::Client>,
    ) -> Result<Server, Error> {
        let certs = Arc::new(Certs::new(config.cert.clone())?);
        let delegation = match &config.delegation {
            Some(d) => Some(Arc::new(Delegation::new(d)?)),
            None => None,
        };
        let live = Live::new(0, authn, certs.resolver.clone(), config.min_tls)?;
        let listener = tokio::net::TcpListener::bind(config.bind)
            .await
            .map_err(|source| Error::Bind {
                addr: config.bind,
                source,
            })?;
        Ok(Server {
            listener,
            shared: Arc::new(Shared {
                source,
                authorizer,
                live: ArcSwap::from_pointee(live),
                delegation,
            }),
            certs,
            min_tls: config.min_tls,
            client,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// PEM CA(s) that verify the self-generated serving certificate; `None` with files.
    pub fn ca_bundle(&self) -> Option<String> {
        self.certs.ca_bundle()
    }

    /// Serves until `shutdown`, then lets open connections finish (up to 10 s).
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), Error> {
        let Server {
            listener,
            shared,
            certs,
            min_tls,
            client,
        } = self;
        let background = shutdown.child_token();
        let _stop_background = background.clone().drop_guard();
        {
            let (certs, client, token) = (certs.clone(), client.clone(), background.clone());
            tokio::spawn(async move { certs.maintain(client, token).await });
        }
        if let Some(delegation) = shared.delegation.clone() {
            let token = background.clone();
            tokio::spawn(async move { delegation.maintain(token).await });
        }
        if let Some(client) = client {
            let (shared, resolver, token) =
                (shared.clone(), certs.resolver.clone(), background.clone());
            tokio::spawn(async move {
                tokio::select! {
                    _ = token.cancelled() => {}
                    _ = watch_authentication(client, shared, resolver, min_tls) => {}
                }
            });
        }

        let router = router(shared.clone());
        let connections = tokio_util::task::TaskTracker::new();
        tracing::info!(addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "serving external.metrics.k8s.io");
        loop {
            let tcp = tokio::select! {
                _ = shutdown.cancelled() => break,
                a = listener.accept() => match a {
                    Ok((tcp, _)) => tcp,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = tcp.set_nodelay(true);
            let live = shared.live.load_full();
            let router = router.clone();
            let shutdown = shutdown.clone();
            connections.spawn(async move {
                let acceptor = tokio_rustls::TlsAcceptor::from(live.tls.clone());
                let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
                {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
                let peer = Arc::new(ConnPeer::new(tls.get_ref().1.peer_certificates(), &live));
                drop(live);
                let svc = hyper::service::service_fn(move |mut req: http::Request<_>| {
                    req.extensions_mut().insert(peer.clone());
                    router.clone().call(req)
                });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let conn = builder.serve_connection(TokioIo::new(tls), svc);
                tokio::pin!(conn);
                tokio::select! {
                    _ = conn.as_mut() => {}
                    _ = shutdown.cancelled() => {
                        conn.as_mut().graceful_shutdown();
                        let _ = tokio::time::timeout(DRAIN_TIMEOUT, conn).await;
                    }
                }
            });
        }
        connections.close();
        connections.wait().await;
        Ok(())
    }
}

/// Follows the ConfigMap so CA rotation reaches new connections without a restart.
async fn watch_authentication(
    client: kube::Client,
    shared: Arc<Shared>,
    resolver: Arc<Resolver>,
    min_tls: MinTls,
) {
    let api = Api::<ConfigMap>::namespaced(client, CONFIGMAP_NAMESPACE);
    let cfg = watcher::Config::default().fields(&format!("metadata.name={CONFIGMAP_NAME}"));
    let mut events = std::pin::pin!(watcher::watcher(api, cfg).default_backoff());
    while let Some(ev) = events.next().await {
        let cm = match ev {
            Ok(watcher::Event::Apply(cm) | watcher::Event::InitApply(cm)) => cm,
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "watching the authentication ConfigMap");
                continue;
            }
        };
        match reload(&shared, &resolver, min_tls, &cm.data.unwrap_or_default()) {
            Ok(true) => tracing::info!("authentication configuration reloaded"),
            Ok(false) => {}
            Err(e) => tracing::error!(error = %e, "ignoring invalid authentication ConfigMap"),
        }
    }
}

fn get_only<H, T>(handler: H) -> MethodRouter<Arc<Shared>>
where
    H: axum::handler::Handler<T, Arc<Shared>>,
    T: 'static,
{
    get(handler).fallback(|| async {
        api::status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
    })
}

fn router(shared: Arc<Shared>) -> Router {
    let doc = |body: Vec<u8>| {
        let body = Arc::new(body);
        move || {
            let body = body.clone();
            async move { api::json(StatusCode::OK, body.as_ref().clone()) }
        }
    };
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .route("/livez", get(|| async { "ok" }))
        .route("/apis", get_only(doc(api::api_group_list())))
        .route(
            "/apis/external.metrics.k8s.io",
            get_only(doc(api::api_group())),
        )
        .route(
            "/apis/external.metrics.k8s.io/v1beta1",
            get_only(resource_list),
        )
        .route(
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/{namespace}/{metric}",
            get_only(external_metric),
        )
        .fallback(|| async {
            api::status(
                StatusCode::NOT_FOUND,
                "NotFound",
                "the server could not find the requested resource",
            )
        })
        .layer(middleware::from_fn_with_state(shared.clone(), guard))
        .with_state(shared)
}

fn is_health(path: &str) -> bool {
    ["/healthz", "/readyz", "/livez"]
        .iter()
        .any(|p| path == *p || path.strip_prefix(p).is_some_and(|r| r.starts_with('/')))
}

/// Authenticates and authorizes everything except the health endpoints; the handlers
/// find the authenticated caller in the request's extensions.
async fn guard(State(shared): State<Arc<Shared>>, mut req: Request, next: Next) -> Response {
    if is_health(req.uri().path()) {
        return next.run(req).await;
    }
    let live = shared.live.load();
    let peer = req
        .extensions()
        .get::<Arc<ConnPeer>>()
        .map(|c| c.peer(&live))
        .unwrap_or_default();
    let Some(user) = live.authn.authenticate(&peer, req.headers()) else {
        tracing::debug!(path = %req.uri().path(), "unauthenticated request");
        return api::unauthorized();
    };
    let attributes = Attributes::from_request(req.method(), req.uri().path());
    tracing::debug!(user = %user.name, groups = ?user.groups, method = %req.method(), path = %req.uri().path(), version = ?req.version(), "request");
    // As Go's delegating authorizer: system:masters skips the SubjectAccessReview.
    if user.groups.iter().any(|g| g == "system:masters") {
        req.extensions_mut().insert(Arc::new(user));
        return next.run(req).await;
    }
    match shared.authorizer.authorize(&user, &attributes).await {
        Ok(d) if d.allowed => {
            req.extensions_mut().insert(Arc::new(user));
            next.run(req).await
        }
        Ok(d) => {
            let mut message = attributes.forbidden_message(&user.name);
            if !d.reason.is_empty() {
                message = format!("{message}: {}", d.reason);
            }
            api::status(StatusCode::FORBIDDEN, "Forbidden", &message)
        }
        Err(e) => {
            tracing::warn!(error = %e, user = %user.name, "authorization failed");
            api::status(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "authorization check failed",
            )
        }
    }
}

/// Swell's resources, and with delegation its delegates' too.
async fn resource_list(State(shared): State<Arc<Shared>>) -> Response {
    let own = api::own_resources();
    let resources = match &shared.delegation {
        Some(d) => d.catalog().union(own),
        None => own,
    };
    api::json(StatusCode::OK, api::api_resource_list_of(resources))
}

async fn external_metric(
    State(shared): State<Arc<Shared>>,
    Extension(user): Extension<Arc<UserInfo>>,
    Path((namespace, metric)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let selector = api::label_selector(query.as_deref());
    let served_here = || shared.source.serves(&namespace, &metric, &selector);
    if let Some(delegation) = &shared.delegation
        && let Route::Delegate(i) =
            delegate::route(&metric, &selector, &delegation.catalog(), served_here())
    {
        return delegation
            .forward(i, &user, &namespace, &metric, &selector)
            .await;
    }
    match shared
        .source
        .external_metric(&namespace, &metric, &selector)
        .await
    {
        Ok(values) => api::json(StatusCode::OK, api::external_metric_value_list(&values)),
        Err(e) => api::metric_error(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::tests::Ca;
    use crate::{CertSource, MetricError, MetricValue, SelfSigned};

    struct Nothing;

    #[async_trait::async_trait]
    impl MetricSource for Nothing {
        async fn external_metric(
            &self,
            _: &str,
            _: &str,
            _: &str,
        ) -> Result<Vec<MetricValue>, MetricError> {
            Err(MetricError::NotFound(String::new()))
        }
    }

    #[async_trait::async_trait]
    impl Authorizer for Nothing {
        async fn authorize(
            &self,
            _: &crate::UserInfo,
            _: &Attributes,
        ) -> Result<crate::Decision, crate::AuthorizationError> {
            Err(crate::AuthorizationError(String::new()))
        }
    }

    fn data(ca: &Ca) -> BTreeMap<String, String> {
        BTreeMap::from([("client-ca-file".to_string(), ca.pem.clone())])
    }

    #[test]
    fn ca_rotation_applies_to_new_and_open_connections() {
        let (old, new) = (Ca::new("old-ca"), Ca::new("new-ca"));
        let certs = Certs::new(CertSource::SelfSigned(SelfSigned {
            dns_names: vec!["localhost".into()],
            validity: Duration::from_secs(3600),
            apiservice: None,
            validating_webhook: None,
        }))
        .unwrap();
        let authn = Authentication::from_configmap_data(&data(&old)).unwrap();
        let live = Live::new(0, authn, certs.resolver.clone(), MinTls::Tls12).unwrap();
        let shared = Shared {
            source: Arc::new(Nothing),
            authorizer: Arc::new(Nothing),
            live: ArcSwap::from_pointee(live),
            delegation: None,
        };
        let user = |conn: &ConnPeer| {
            let live = shared.live.load();
            live.authn
                .authenticate(&conn.peer(&live), &http::HeaderMap::new())
                .map(|u| u.name)
        };
        let by_old = ConnPeer::new(Some(&[old.client("ann", &[])]), &shared.live.load());
        let by_new = ConnPeer::new(Some(&[new.client("ned", &[])]), &shared.live.load());
        assert_eq!(user(&by_old).as_deref(), Some("ann"));
        assert_eq!(user(&by_new), None);

        let tls_before = shared.live.load().tls.clone();
        assert!(!reload(&shared, &certs.resolver, MinTls::Tls12, &data(&old)).unwrap());
        assert!(reload(&shared, &certs.resolver, MinTls::Tls12, &data(&new)).unwrap());
        assert!(
            !Arc::ptr_eq(&tls_before, &shared.live.load().tls),
            "new connections get a TLS config with the new CA"
        );
        assert_eq!(user(&by_old), None, "the removed CA no longer vouches");
        assert_eq!(user(&by_new).as_deref(), Some("ned"));

        let mut bad = data(&new);
        bad.insert("requestheader-client-ca-file".into(), new.pem.clone());
        bad.insert("requestheader-allowed-names".into(), "not json".into());
        assert!(reload(&shared, &certs.resolver, MinTls::Tls12, &bad).is_err());
        assert_eq!(user(&by_new).as_deref(), Some("ned"), "bad data is ignored");
    }

    #[test]
    fn health_paths() {
        assert!(is_health("/healthz"));
        assert!(is_health("/readyz/ping"));
        assert!(!is_health("/healthzx"));
        assert!(!is_health("/apis"));
    }
}
