//! Resolving what triggers read besides their metadata: the scale target's container
//! environment (for `…FromEnv`) and (Cluster)TriggerAuthentication parameters.
//! Values resolved here are secrets: they never go into logs, status or events.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Container, PodSpec, Secret};
use kube::{Api, Client};
use swell_api::{
    AuthPodIdentity, AuthenticationRef, AuthenticationRefKind, ClusterTriggerAuthentication,
    IdentityOwner, PodIdentityProvider, TriggerAuthentication, TriggerAuthenticationSpec,
};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(
        "triggers[{index}].authenticationRef: {kind} {name:?} not found{scope}; create it or fix the name"
    )]
    NotFound {
        index: usize,
        kind: &'static str,
        name: String,
        scope: String,
    },
    #[error("{what}: {kind} {namespace}/{name} not found; create it or fix the reference")]
    MissingObject {
        what: String,
        kind: &'static str,
        namespace: String,
        name: String,
    },
    #[error("{what}: key {key:?} not found in {kind} {namespace}/{name}")]
    MissingKey {
        what: String,
        key: String,
        kind: &'static str,
        namespace: String,
        name: String,
    },
    #[error("{what}: {}", crate::kube_message(source))]
    Api { what: String, source: kube::Error },
    #[error("{0}")]
    Unsupported(String),
}

/// What one trigger's authentication resolved to.
#[derive(Clone, Debug, Default)]
pub struct ResolvedAuth {
    pub params: BTreeMap<String, String>,
    pub pod_identity: Option<AuthPodIdentity>,
    /// `TriggerAuthentication/name`, for `status.authenticationsTypes`.
    pub label: Option<String>,
}

/// Reads Secrets and ConfigMaps on demand (reconciles only, never the scale loop).
pub struct Resolver<'a> {
    pub client: &'a Client,
    /// Where a ClusterTriggerAuthentication's secrets live (KEDA's cluster object namespace).
    pub cluster_namespace: &'a str,
}

impl Resolver<'_> {
    async fn secret_value(
        &self,
        what: &str,
        ns: &str,
        name: &str,
        key: &str,
    ) -> Result<String, AuthError> {
        let secret = Api::<Secret>::namespaced(self.client.clone(), ns)
            .get_opt(name)
            .await
            .map_err(|source| AuthError::Api {
                what: what.to_string(),
                source,
            })?;
        let secret = secret.ok_or_else(|| AuthError::MissingObject {
            what: what.to_string(),
            kind: "Secret",
            namespace: ns.to_string(),
            name: name.to_string(),
        })?;
        let from_data = secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|b| String::from_utf8_lossy(&b.0).into_owned());
        let from_string = secret
            .string_data
            .as_ref()
            .and_then(|d| d.get(key))
            .cloned();
        from_data
            .or(from_string)
            .ok_or_else(|| AuthError::MissingKey {
                what: what.to_string(),
                key: key.to_string(),
                kind: "Secret",
                namespace: ns.to_string(),
                name: name.to_string(),
            })
    }

    async fn configmap_value(
        &self,
        what: &str,
        ns: &str,
        name: &str,
        key: &str,
    ) -> Result<String, AuthError> {
        let cm = Api::<ConfigMap>::namespaced(self.client.clone(), ns)
            .get_opt(name)
            .await
            .map_err(|source| AuthError::Api {
                what: what.to_string(),
                source,
            })?;
        let cm = cm.ok_or_else(|| AuthError::MissingObject {
            what: what.to_string(),
            kind: "ConfigMap",
            namespace: ns.to_string(),
            name: name.to_string(),
        })?;
        let from_data = cm.data.as_ref().and_then(|d| d.get(key)).cloned();
        let from_binary = cm
            .binary_data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|b| String::from_utf8_lossy(&b.0).into_owned());
        from_data
            .or(from_binary)
            .ok_or_else(|| AuthError::MissingKey {
                what: what.to_string(),
                key: key.to_string(),
                kind: "ConfigMap",
                namespace: ns.to_string(),
                name: name.to_string(),
            })
    }

    /// The environment of a container of the target, with `valueFrom` and `envFrom`
    /// resolved, as KEDA's `resolvedEnv`.
    pub async fn container_env(
        &self,
        ns: &str,
        pod: Option<&PodSpec>,
        container: Option<&str>,
    ) -> Result<BTreeMap<String, String>, AuthError> {
        let mut env = BTreeMap::new();
        let Some(c) = pick_container(pod, container) else {
            return Ok(env);
        };
        for from in c.env_from.iter().flatten() {
            let prefix = from.prefix.clone().unwrap_or_default();
            if let Some(r) = &from.config_map_ref {
                let what = format!("container {} envFrom configMapRef", c.name);
                if let Some(cm) = Api::<ConfigMap>::namespaced(self.client.clone(), ns)
                    .get_opt(&r.name)
                    .await
                    .map_err(|source| AuthError::Api {
                        what: what.clone(),
                        source,
                    })?
                {
                    for (k, v) in cm.data.unwrap_or_default() {
                        env.insert(format!("{prefix}{k}"), v);
                    }
                } else if r.optional != Some(true) {
                    return Err(AuthError::MissingObject {
                        what,
                        kind: "ConfigMap",
                        namespace: ns.into(),
                        name: r.name.clone(),
                    });
                }
            }
            if let Some(r) = &from.secret_ref {
                let what = format!("container {} envFrom secretRef", c.name);
                if let Some(s) = Api::<Secret>::namespaced(self.client.clone(), ns)
                    .get_opt(&r.name)
                    .await
                    .map_err(|source| AuthError::Api {
                        what: what.clone(),
                        source,
                    })?
                {
                    for (k, v) in s.data.unwrap_or_default() {
                        env.insert(
                            format!("{prefix}{k}"),
                            String::from_utf8_lossy(&v.0).into_owned(),
                        );
                    }
                } else if r.optional != Some(true) {
                    return Err(AuthError::MissingObject {
                        what,
                        kind: "Secret",
                        namespace: ns.into(),
                        name: r.name.clone(),
                    });
                }
            }
        }
        for e in c.env.iter().flatten() {
            let what = format!("container {} env {}", c.name, e.name);
            let value = match (&e.value, &e.value_from) {
                (Some(v), _) => Some(v.clone()),
                (None, Some(from)) => {
                    if let Some(r) = &from.secret_key_ref {
                        match self.secret_value(&what, ns, &r.name, &r.key).await {
                            Ok(v) => Some(v),
                            Err(_) if r.optional == Some(true) => None,
                            Err(e) => return Err(e),
                        }
                    } else if let Some(r) = &from.config_map_key_ref {
                        match self.configmap_value(&what, ns, &r.name, &r.key).await {
                            Ok(v) => Some(v),
                            Err(_) if r.optional == Some(true) => None,
                            Err(e) => return Err(e),
                        }
                    } else {
                        None
                    }
                }
                (None, None) => Some(String::new()),
            };
            if let Some(v) = value {
                env.insert(e.name.clone(), v);
            }
        }
        Ok(env)
    }

    /// Resolves one trigger's `authenticationRef`.
    pub async fn trigger_auth(
        &self,
        index: usize,
        ns: &str,
        auth_ref: Option<&AuthenticationRef>,
        pod: Option<&PodSpec>,
    ) -> Result<ResolvedAuth, AuthError> {
        let Some(r) = auth_ref else {
            return Ok(ResolvedAuth::default());
        };
        let (spec, secret_ns, kind): (TriggerAuthenticationSpec, &str, &'static str) =
            match r.kind() {
                AuthenticationRefKind::TriggerAuthentication => {
                    let ta = Api::<TriggerAuthentication>::namespaced(self.client.clone(), ns)
                        .get_opt(&r.name)
                        .await
                        .map_err(|source| AuthError::Api {
                            what: format!("triggers[{index}].authenticationRef"),
                            source,
                        })?
                        .ok_or_else(|| AuthError::NotFound {
                            index,
                            kind: "TriggerAuthentication",
                            name: r.name.clone(),
                            scope: format!(" in namespace {ns}"),
                        })?;
                    (ta.spec, ns, "TriggerAuthentication")
                }
                AuthenticationRefKind::ClusterTriggerAuthentication => {
                    let cta = Api::<ClusterTriggerAuthentication>::all(self.client.clone())
                        .get_opt(&r.name)
                        .await
                        .map_err(|source| AuthError::Api {
                            what: format!("triggers[{index}].authenticationRef"),
                            source,
                        })?
                        .ok_or_else(|| AuthError::NotFound {
                            index,
                            kind: "ClusterTriggerAuthentication",
                            name: r.name.clone(),
                            scope: String::new(),
                        })?;
                    (
                        cta.spec.0,
                        self.cluster_namespace,
                        "ClusterTriggerAuthentication",
                    )
                }
            };
        let mut out = ResolvedAuth {
            label: Some(format!("{kind}/{}", r.name)),
            ..Default::default()
        };
        let unsupported = [
            (spec.hashi_corp_vault.is_some(), "hashiCorpVault"),
            (spec.azure_key_vault.is_some(), "azureKeyVault"),
            (spec.gcp_secret_manager.is_some(), "gcpSecretManager"),
            (spec.aws_secret_manager.is_some(), "awsSecretManager"),
            (
                spec.bound_service_account_token.is_some(),
                "boundServiceAccountToken",
            ),
            (spec.file_path.is_some(), "filePath"),
        ];
        if let Some((_, field)) = unsupported.iter().find(|(set, _)| *set) {
            return Err(AuthError::Unsupported(format!(
                "{kind} {}: spec.{field} is not supported by Swell yet; use secretTargetRef, configMapTargetRef, env or podIdentity",
                r.name
            )));
        }
        for s in spec.secret_target_ref.iter().flatten() {
            let what = format!("{kind} {} secretTargetRef {}", r.name, s.parameter);
            let v = self.secret_value(&what, secret_ns, &s.name, &s.key).await?;
            out.params.insert(s.parameter.clone(), v);
        }
        for c in spec.config_map_target_ref.iter().flatten() {
            let what = format!("{kind} {} configMapTargetRef {}", r.name, c.parameter);
            let v = self
                .configmap_value(&what, secret_ns, &c.name, &c.key)
                .await?;
            out.params.insert(c.parameter.clone(), v);
        }
        for e in spec.env.iter().flatten() {
            let env = self
                .container_env(ns, pod, e.container_name.as_deref())
                .await?;
            if let Some(v) = env.get(&e.name) {
                out.params.insert(e.parameter.clone(), v.clone());
            }
        }
        out.pod_identity = spec.pod_identity;
        Ok(out)
    }
}

/// The named container, or the first one, as KEDA picks `envSourceContainerName`.
fn pick_container<'a>(pod: Option<&'a PodSpec>, name: Option<&str>) -> Option<&'a Container> {
    let containers = &pod?.containers;
    match name.filter(|n| !n.is_empty()) {
        Some(n) => containers.iter().find(|c| c.name == n),
        None => containers.first(),
    }
}

/// Converts a TriggerAuthentication's `podIdentity` into what scalers read. `workload_role_arn`
/// is the ServiceAccount's `eks.amazonaws.com/role-arn`, when known.
pub fn pod_identity_input(
    ns: &str,
    service_account: &str,
    id: &AuthPodIdentity,
    workload_role_arn: Option<String>,
) -> swell_scalers::aws::PodIdentityInput {
    let provider = match id.provider {
        PodIdentityProvider::Aws => "aws",
        PodIdentityProvider::AwsEks => "aws-eks",
        PodIdentityProvider::AzureWorkload => "azure-workload",
        PodIdentityProvider::Gcp => "gcp",
        PodIdentityProvider::None => "none",
    };
    swell_scalers::aws::PodIdentityInput {
        provider: Some(provider.to_string()),
        role_arn: id.role_arn.clone(),
        external_id: id.external_id.clone(),
        identity_owner: id.identity_owner.map(|o| {
            if o == IdentityOwner::Workload {
                "workload".into()
            } else {
                "keda".into()
            }
        }),
        workload_role_arn,
        workload_service_account: format!("{ns}/{service_account}"),
    }
}

/// Whether a pod identity reads the workload ServiceAccount's IAM role.
pub fn needs_workload_role(id: &AuthPodIdentity) -> bool {
    matches!(id.provider, PodIdentityProvider::AwsEks)
        || (matches!(id.provider, PodIdentityProvider::Aws)
            && id.identity_owner == Some(IdentityOwner::Workload))
}
