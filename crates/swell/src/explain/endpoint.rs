//! The operator's side: `/explain/NAMESPACE/NAME` on its metrics port (every replica),
//! read-only JSON of what its scale loop knows ([`LoopState::report`]). It is guarded as
//! `/metrics` is: with `--metrics-auth`, a bearer token allowed to `get` that non-resource
//! URL (RBAC: `nonResourceURLs: ["/explain/*"]`).
//!
//! [`LoopState::report`]: swell_controller::loop_state::LoopState::report

use std::sync::Arc;

use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse as _;
use axum::routing::get;
use kube::runtime::reflector::ObjectRef;
use swell_controller::run::CurrentCtx;
use swell_scaling::explain::LoopReport;

use crate::metrics_auth::{MetricsAuth, Refusal};

#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("this replica is starting; retry in a few seconds")]
    Starting,
    #[error(
        "no scale loop for ScaledObject {namespace}/{name} on this replica: it does not exist, \
         is paused (no loop runs then), failed its checks (see its Ready condition), or is \
         outside this operator's WATCH_NAMESPACE / WATCH_LABEL_SELECTOR"
    )]
    NoLoop { namespace: String, name: String },
    #[error(transparent)]
    Refused(#[from] Refusal),
}

impl EndpointError {
    fn status(&self) -> StatusCode {
        match self {
            EndpointError::Starting => StatusCode::SERVICE_UNAVAILABLE,
            EndpointError::NoLoop { .. } => StatusCode::NOT_FOUND,
            EndpointError::Refused(r) => r.status(),
        }
    }
}

async fn report(
    current: &CurrentCtx,
    auth: Option<&MetricsAuth>,
    headers: &HeaderMap,
    (namespace, name): (String, String),
) -> Result<LoopReport, EndpointError> {
    if let Some(auth) = auth {
        let header = headers.get("authorization").and_then(|v| v.to_str().ok());
        auth.check_path(header, &format!("/explain/{namespace}/{name}"))
            .await?;
    }
    let ctx = current
        .read()
        .ok()
        .and_then(|c| c.clone())
        .ok_or(EndpointError::Starting)?;
    let key = ObjectRef::new(&name).within(&namespace);
    let Some(state) = ctx.loops.get(&key) else {
        return Err(EndpointError::NoLoop { namespace, name });
    };
    let polling = ctx
        .store
        .get(&key)
        .map_or(30, |so| so.spec.polling_interval());
    let polling = swell_controller::loops::polling_duration(polling);
    Ok(state.report(&namespace, &name, ctx.leader, polling))
}

pub fn router(current: CurrentCtx, auth: Option<Arc<MetricsAuth>>) -> axum::Router {
    axum::Router::new().route(
        "/explain/{namespace}/{name}",
        get(
            move |Path(object): Path<(String, String)>, headers: HeaderMap| {
                let (current, auth) = (current.clone(), auth.clone());
                async move {
                    match report(&current, auth.as_deref(), &headers, object).await {
                        Ok(r) => axum::Json(r).into_response(),
                        Err(e) => (e.status(), e.to_string()).into_response(),
                    }
                }
            },
        ),
    )
}
