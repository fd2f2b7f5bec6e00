//! Scale targets: any resource with a `/scale` subresource. Kinds are resolved through
//! discovery once and cached; replicas are read and written through `/scale`.

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::PodSpec;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::{Api, Client};
use swell_api::GroupVersionKindResource;

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error(
        "scaleTargetRef: {api_version} {kind} is not a kind this cluster serves ({detail}); check spec.scaleTargetRef.apiVersion and kind"
    )]
    UnknownKind {
        api_version: String,
        kind: String,
        detail: String,
    },
    #[error(
        "scaleTargetRef: {kind} has no /scale subresource, so it cannot be scaled; target a Deployment, StatefulSet or a resource with a scale subresource"
    )]
    NotScalable { kind: String },
    #[error(
        "scaleTargetRef: {kind} {namespace}/{name} not found; create it or fix spec.scaleTargetRef.name"
    )]
    NotFound {
        kind: String,
        namespace: String,
        name: String,
    },
    #[error("{action} {kind} {namespace}/{name}: {}", crate::kube_message(source))]
    Api {
        action: &'static str,
        kind: String,
        namespace: String,
        name: String,
        source: kube::Error,
    },
}

/// A resolved scale target.
#[derive(Clone, Debug)]
pub struct Target {
    pub resource: ApiResource,
    pub gvkr: GroupVersionKindResource,
    pub namespace: String,
    pub name: String,
}

impl Target {
    /// `apps/v1.Deployment`, as KEDA writes `status.scaleTargetKind`.
    pub fn kind_string(&self) -> String {
        self.gvkr.gvk_string()
    }

    fn api(&self, client: &Client) -> Api<DynamicObject> {
        Api::namespaced_with(client.clone(), &self.namespace, &self.resource)
    }

    fn api_err(&self, action: &'static str, source: kube::Error) -> TargetError {
        match &source {
            kube::Error::Api(s) if s.code == 404 => TargetError::NotFound {
                kind: self.gvkr.kind.clone(),
                namespace: self.namespace.clone(),
                name: self.name.clone(),
            },
            _ => TargetError::Api {
                action,
                kind: self.gvkr.kind.clone(),
                namespace: self.namespace.clone(),
                name: self.name.clone(),
                source,
            },
        }
    }

    /// `spec.replicas` through `/scale`.
    pub async fn replicas(&self, client: &Client) -> Result<i32, TargetError> {
        let scale = self
            .api(client)
            .get_scale(&self.name)
            .await
            .map_err(|e| self.api_err("reading /scale of", e))?;
        Ok(scale.spec.and_then(|s| s.replicas).unwrap_or(0))
    }

    /// Sets `spec.replicas` through `/scale`.
    pub async fn scale(&self, client: &Client, replicas: i32) -> Result<(), TargetError> {
        let patch = serde_json::json!({ "spec": { "replicas": replicas } });
        self.api(client)
            .patch_scale(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| self.api_err("scaling", e))?;
        Ok(())
    }

    /// The pod template's spec (`spec.template.spec`), for env and ServiceAccount lookups.
    pub async fn pod_spec(&self, client: &Client) -> Result<Option<PodSpec>, TargetError> {
        let obj = self
            .api(client)
            .get(&self.name)
            .await
            .map_err(|e| self.api_err("reading", e))?;
        let spec = obj.data.pointer("/spec/template/spec").cloned();
        Ok(spec.and_then(|s| serde_json::from_value(s).ok()))
    }
}

/// Resolves `scaleTargetRef`s, caching what discovery said about each kind.
#[derive(Default)]
pub struct Targets {
    kinds: Mutex<HashMap<(String, String), ApiResource>>,
}

impl Targets {
    pub async fn resolve(
        &self,
        client: &Client,
        namespace: &str,
        r: &swell_api::ScaleTarget,
    ) -> Result<Target, TargetError> {
        let (api_version, kind) = (r.api_version().to_string(), r.kind().to_string());
        let key = (api_version.clone(), kind.clone());
        let cached = self.kinds.lock().ok().and_then(|m| m.get(&key).cloned());
        let resource = match cached {
            Some(ar) => ar,
            None => {
                let (group, version) = match api_version.split_once('/') {
                    Some((g, v)) => (g.to_string(), v.to_string()),
                    None => (String::new(), api_version.clone()),
                };
                let gvk = GroupVersionKind::gvk(&group, &version, &kind);
                let (ar, caps) = kube::discovery::pinned_kind(client, &gvk)
                    .await
                    .map_err(|e| TargetError::UnknownKind {
                        api_version: api_version.clone(),
                        kind: kind.clone(),
                        detail: e.to_string(),
                    })?;
                if !caps
                    .subresources
                    .iter()
                    .any(|(sub, _)| sub.plural == "scale")
                {
                    return Err(TargetError::NotScalable {
                        kind: format!("{api_version}.{kind}"),
                    });
                }
                if let Ok(mut m) = self.kinds.lock() {
                    m.insert(key, ar.clone());
                }
                ar
            }
        };
        Ok(Target {
            gvkr: GroupVersionKindResource {
                group: resource.group.clone(),
                version: resource.version.clone(),
                kind: resource.kind.clone(),
                resource: resource.plural.clone(),
            },
            resource,
            namespace: namespace.to_string(),
            name: r.name.clone(),
        })
    }
}
