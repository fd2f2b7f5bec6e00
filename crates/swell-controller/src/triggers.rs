//! Builds a ScaledObject's or ScaledJob's triggers: authentication, the workload's
//! environment and identity, then each scaler. Reads only.

use k8s_openapi::api::core::v1::{PodSpec, ServiceAccount};
use kube::Api;
use swell_api::ScaleTriggers;
use swell_scalers::{MetricType, RawParams, TriggerInput};

use crate::auth::Resolver;
use crate::context::Ctx;
use crate::scale_loop::TriggerRuntime;

/// What owns the triggers.
pub struct Owner<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub triggers: &'a [ScaleTriggers],
    /// The pod template: container env (`…FromEnv`), the ServiceAccount (pod identity).
    pub pod: Option<&'a PodSpec>,
    pub env_source_container_name: Option<&'a str>,
    pub polling_interval: i32,
}

/// Why the triggers could not be built. `scaler_failed` means a scaler refused its
/// parameters (a `KEDAScalerFailed` event), not a missing object.
pub struct BuildError {
    pub message: String,
    pub scaler_failed: bool,
}

impl BuildError {
    pub(crate) fn check(message: String) -> BuildError {
        BuildError {
            message,
            scaler_failed: false,
        }
    }
}

/// The generation of each trigger's (Cluster)TriggerAuthentication as the watch caches see
/// it now (`None` without an authenticationRef, or when it does not exist).
pub fn auth_versions(
    ctx: &Ctx,
    namespace: Option<&str>,
    triggers: &[ScaleTriggers],
) -> Vec<Option<i64>> {
    use kube::runtime::reflector::ObjectRef;
    use swell_api::AuthenticationRefKind as Kind;
    triggers
        .iter()
        .map(|t| {
            let r = t.authentication_ref.as_ref()?;
            match r.kind() {
                Kind::TriggerAuthentication => {
                    let key = ObjectRef::new(&r.name).within(namespace.unwrap_or_default());
                    ctx.auths.get(&key)?.metadata.generation
                }
                Kind::ClusterTriggerAuthentication => {
                    let key = ObjectRef::new(&r.name);
                    ctx.cluster_auths.get(&key)?.metadata.generation
                }
            }
        })
        .collect()
}

/// Every trigger's scaler, and the names of the authentications they use.
pub async fn build(
    ctx: &Ctx,
    owner: Owner<'_>,
) -> Result<(Vec<TriggerRuntime>, Vec<String>), BuildError> {
    let ns = owner.namespace;
    let resolver = Resolver {
        client: &ctx.client,
        cluster_namespace: &ctx.cluster_namespace,
    };
    let env = resolver
        .container_env(ns, owner.pod, owner.env_source_container_name)
        .await
        .map_err(|e| BuildError::check(e.to_string()))?;
    let polling_interval = crate::scale_loop::polling_duration(owner.polling_interval);
    let mut triggers = Vec::new();
    let mut auth_names = Vec::new();
    for (index, t) in owner.triggers.iter().enumerate() {
        let auth = resolver
            .trigger_auth(index, ns, t.authentication_ref.as_ref(), owner.pod)
            .await
            .map_err(|e| BuildError::check(e.to_string()))?;
        if let Some(r) = &t.authentication_ref {
            auth_names.push(r.name.clone());
        }
        let pod_identity = pod_identity_input(ctx, ns, owner.pod, auth.pod_identity.as_ref()).await;
        let input = TriggerInput {
            index,
            type_: t.type_.clone(),
            name: t.name().map(str::to_string),
            metric_type: t
                .metric_type
                .as_ref()
                .and_then(|m| MetricType::parse(Some(m.as_str()))),
            namespace: ns.to_string(),
            scaled_object: owner.name.to_string(),
            params: RawParams {
                trigger_index: index,
                metadata: t.metadata.clone(),
                auth: auth.params,
                env: env.clone(),
                ..Default::default()
            },
            pod_identity,
            polling_interval,
        };
        // Some scalers ask their source first (an external scaler's GetMetricSpec).
        let built = match swell_scalers::build(&input, &ctx.shared) {
            Ok(mut scaler) => scaler.prepare().await.map(|()| scaler),
            Err(e) => Err(e),
        };
        match built {
            Ok(scaler) => triggers.push(TriggerRuntime {
                index,
                type_: t.type_.clone(),
                spec: scaler.metric_spec(),
                scaler,
                use_cached_metrics: t.use_cached_metrics(),
            }),
            Err(e) => {
                return Err(BuildError {
                    message: format!("triggers[{index}] ({}): {e}", t.type_),
                    scaler_failed: true,
                });
            }
        }
    }
    Ok((triggers, auth_names))
}

async fn pod_identity_input(
    ctx: &Ctx,
    ns: &str,
    pod: Option<&PodSpec>,
    identity: Option<&swell_api::AuthPodIdentity>,
) -> swell_scalers::aws::PodIdentityInput {
    let Some(id) = identity else {
        return Default::default();
    };
    let sa = pod
        .and_then(|p| p.service_account_name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".into());
    let workload_role_arn = if crate::auth::needs_workload_role(id) {
        let api: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), ns);
        api.get_opt(&sa)
            .await
            .ok()
            .flatten()
            .and_then(|s| s.metadata.annotations)
            .and_then(|a| a.get(swell_scalers::aws::ROLE_ARN_ANNOTATION).cloned())
    } else {
        None
    };
    crate::auth::pod_identity_input(ns, &sa, id, workload_role_arn)
}
