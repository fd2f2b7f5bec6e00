//! Resolving what triggers read besides their metadata: the scale target's container
//! environment (for `…FromEnv`) and (Cluster)TriggerAuthentication parameters.
//! Values resolved here are secrets: they never go into logs, status or events.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Container, EnvFromSource, EnvVar, PodSpec, Secret};
use kube::runtime::reflector::{ObjectRef, Store};
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
    /// Reading an `awsSecretManager` secret failed (or its identity cannot be had).
    #[error("{what}: {message}")]
    AwsSecretManager { what: String, message: String },
}

/// What one trigger's authentication resolved to.
#[derive(Clone, Debug, Default)]
pub struct ResolvedAuth {
    pub params: BTreeMap<String, String>,
    pub pod_identity: Option<AuthPodIdentity>,
    /// `TriggerAuthentication/name`, for `status.authenticationsTypes`.
    pub label: Option<String>,
    /// An `awsSecretManager` block, its credentials read: the builder reads the secrets
    /// (they need the AWS clients and the workload's identity).
    pub aws_secret_manager: Option<AwsSecrets>,
}

/// A TriggerAuthentication's `awsSecretManager`, with its static credentials (if any) read
/// from their Secrets.
#[derive(Clone, Debug)]
pub struct AwsSecrets {
    /// `Kind name`, for messages.
    pub owner: String,
    pub spec: swell_api::AwsSecretManager,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
}

/// Reads Secrets and ConfigMaps on demand (reconciles only, never the scale loop), and
/// (Cluster)TriggerAuthentications from their watch caches.
pub struct Resolver<'a> {
    pub client: &'a Client,
    /// Where a ClusterTriggerAuthentication's secrets live (KEDA's cluster object namespace).
    pub cluster_namespace: &'a str,
    pub auths: &'a Store<TriggerAuthentication>,
    pub cluster_auths: &'a Store<ClusterTriggerAuthentication>,
    /// The Secrets and ConfigMaps read, with their versions.
    pub read: std::sync::Mutex<Vec<SourceRef>>,
}

/// A Secret or ConfigMap that credentials or environment were read from, and its
/// resourceVersion then (`None`: it did not exist); or an `awsSecretManager` secret
/// ([`AWS_SECRET`]). A newer version of it means the scalers built from it are rebuilt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceRef {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    pub version: Option<String>,
}

/// The [`SourceRef::kind`] of an `awsSecretManager` secret: its name is the secret's
/// [`swell_scalers::aws::SecretRead::key`] (region, name, version asked for and identity),
/// its version the VersionId read, and its namespace empty.
pub const AWS_SECRET: &str = "AwsSecretsManagerSecret";

/// A Secret or ConfigMap as a watch event names it, at its current resourceVersion.
#[derive(Clone, Copy, Debug)]
pub struct SourceEvent<'a> {
    pub kind: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
    pub version: Option<&'a str>,
}

impl SourceEvent<'_> {
    /// Whether this event says one of `sources` has changed since it was read.
    pub fn changes_any(&self, sources: &[SourceRef]) -> bool {
        sources.iter().any(|s| {
            s.kind == self.kind
                && s.namespace == self.namespace
                && s.name == self.name
                && s.version.as_deref() != self.version
        })
    }
}

/// A kind whose keys hold values: Secrets and ConfigMaps.
trait KeyValues:
    kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
    + Clone
    + serde::de::DeserializeOwned
    + std::fmt::Debug
{
    const KIND: &'static str;
    /// The value under `key`, from either of the kind's two maps.
    fn value(&self, key: &str) -> Option<String>;
}

impl KeyValues for Secret {
    const KIND: &'static str = "Secret";
    fn value(&self, key: &str) -> Option<String> {
        let from_data = self.data.as_ref().and_then(|d| d.get(key));
        from_data
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
            .or_else(|| self.string_data.as_ref()?.get(key).cloned())
    }
}

impl KeyValues for ConfigMap {
    const KIND: &'static str = "ConfigMap";
    fn value(&self, key: &str) -> Option<String> {
        let from_binary = || {
            let b = self.binary_data.as_ref()?.get(key)?;
            Some(String::from_utf8_lossy(&b.0).into_owned())
        };
        self.data
            .as_ref()
            .and_then(|d| d.get(key).cloned())
            .or_else(from_binary)
    }
}

impl Resolver<'_> {
    /// Reads a Secret or ConfigMap, remembering its version.
    async fn get_opt<K: KeyValues>(
        &self,
        what: &str,
        ns: &str,
        name: &str,
    ) -> Result<Option<K>, AuthError> {
        let got = Api::<K>::namespaced(self.client.clone(), ns)
            .get_opt(name)
            .await
            .map_err(|source| AuthError::Api {
                what: what.to_string(),
                source,
            })?;
        let version = got.as_ref().and_then(|o| o.meta().resource_version.clone());
        self.record(SourceRef {
            kind: K::KIND,
            namespace: ns.to_string(),
            name: name.to_string(),
            version,
        });
        Ok(got)
    }

    /// Remembers a source the scalers being built read.
    pub fn record(&self, source: SourceRef) {
        if let Ok(mut read) = self.read.lock() {
            read.push(source);
        }
    }

    async fn value<K: KeyValues>(
        &self,
        what: &str,
        ns: &str,
        name: &str,
        key: &str,
    ) -> Result<String, AuthError> {
        let obj: K = self
            .get_opt(what, ns, name)
            .await?
            .ok_or_else(|| missing(what.to_string(), K::KIND, ns, name))?;
        obj.value(key).ok_or_else(|| AuthError::MissingKey {
            what: what.to_string(),
            key: key.to_string(),
            kind: K::KIND,
            namespace: ns.to_string(),
            name: name.to_string(),
        })
    }

    /// The Secrets and ConfigMaps read so far.
    pub fn sources(&self) -> Vec<SourceRef> {
        self.read.lock().map(|r| r.clone()).unwrap_or_default()
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
            self.env_from(ns, &c.name, from, &mut env).await?;
        }
        for e in c.env.iter().flatten() {
            if let Some(v) = self.env_value(ns, &c.name, e).await? {
                env.insert(e.name.clone(), v);
            }
        }
        Ok(env)
    }

    /// One `envFrom` entry: every key of a ConfigMap or Secret, with its prefix.
    async fn env_from(
        &self,
        ns: &str,
        container: &str,
        from: &EnvFromSource,
        env: &mut BTreeMap<String, String>,
    ) -> Result<(), AuthError> {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(r) = &from.config_map_ref {
            let what = format!("container {container} envFrom configMapRef");
            let cm: Option<ConfigMap> = self.get_opt(&what, ns, &r.name).await?;
            match cm {
                Some(cm) => env.extend(
                    cm.data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (format!("{prefix}{k}"), v)),
                ),
                None if r.optional == Some(true) => {}
                None => return Err(missing(what, "ConfigMap", ns, &r.name)),
            }
        }
        if let Some(r) = &from.secret_ref {
            let what = format!("container {container} envFrom secretRef");
            let secret: Option<Secret> = self.get_opt(&what, ns, &r.name).await?;
            match secret {
                Some(s) => env.extend(s.data.unwrap_or_default().into_iter().map(|(k, v)| {
                    let v = String::from_utf8_lossy(&v.0).into_owned();
                    (format!("{prefix}{k}"), v)
                })),
                None if r.optional == Some(true) => {}
                None => return Err(missing(what, "Secret", ns, &r.name)),
            }
        }
        Ok(())
    }

    /// One `env` entry: its value, or the Secret or ConfigMap key it names (`None` when an
    /// optional reference is missing).
    async fn env_value(
        &self,
        ns: &str,
        container: &str,
        e: &EnvVar,
    ) -> Result<Option<String>, AuthError> {
        let what = format!("container {container} env {}", e.name);
        let from = match (&e.value, &e.value_from) {
            (Some(v), _) => return Ok(Some(v.clone())),
            (None, None) => return Ok(Some(String::new())),
            (None, Some(from)) => from,
        };
        let (value, optional) = if let Some(r) = &from.secret_key_ref {
            let v = self.value::<Secret>(&what, ns, &r.name, &r.key).await;
            (v, r.optional == Some(true))
        } else if let Some(r) = &from.config_map_key_ref {
            let v = self.value::<ConfigMap>(&what, ns, &r.name, &r.key).await;
            (v, r.optional == Some(true))
        } else {
            return Ok(None);
        };
        match value {
            Ok(v) => Ok(Some(v)),
            Err(_) if optional => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The (Cluster)TriggerAuthentication a trigger names, from the watch caches: its spec,
    /// the namespace its Secrets live in, and its kind.
    fn authentication(
        &self,
        index: usize,
        ns: &str,
        r: &AuthenticationRef,
    ) -> Result<(TriggerAuthenticationSpec, String, &'static str), AuthError> {
        let not_found = |kind, scope| AuthError::NotFound {
            index,
            kind,
            name: r.name.clone(),
            scope,
        };
        match r.kind() {
            AuthenticationRefKind::TriggerAuthentication => {
                let kind = "TriggerAuthentication";
                let key = ObjectRef::new(&r.name).within(ns);
                let ta = self
                    .auths
                    .get(&key)
                    .ok_or_else(|| not_found(kind, format!(" in namespace {ns}")))?;
                Ok((ta.spec.clone(), ns.to_string(), kind))
            }
            AuthenticationRefKind::ClusterTriggerAuthentication => {
                let kind = "ClusterTriggerAuthentication";
                let cta = self
                    .cluster_auths
                    .get(&ObjectRef::new(&r.name))
                    .ok_or_else(|| not_found(kind, String::new()))?;
                Ok((cta.spec.0.clone(), self.cluster_namespace.to_string(), kind))
            }
        }
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
        let (spec, secret_ns, kind) = self.authentication(index, ns, r)?;
        refuse_unsupported(&spec, kind, &r.name)?;
        let mut out = ResolvedAuth {
            label: Some(format!("{kind}/{}", r.name)),
            ..Default::default()
        };
        for s in spec.secret_target_ref.iter().flatten() {
            let what = format!("{kind} {} secretTargetRef {}", r.name, s.parameter);
            let v = self
                .value::<Secret>(&what, &secret_ns, &s.name, &s.key)
                .await?;
            out.params.insert(s.parameter.clone(), v);
        }
        for c in spec.config_map_target_ref.iter().flatten() {
            let what = format!("{kind} {} configMapTargetRef {}", r.name, c.parameter);
            let v = self
                .value::<ConfigMap>(&what, &secret_ns, &c.name, &c.key)
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
        if let Some(sm) = spec
            .aws_secret_manager
            .as_ref()
            .filter(|s| !s.secrets.is_empty())
        {
            let owner = format!("{kind} {}", r.name);
            out.aws_secret_manager = Some(self.aws_secrets(&owner, &secret_ns, sm).await?);
        }
        if let Some(o) = &spec.oauth2 {
            let secret = match &o.client_secret {
                Some(c) => {
                    let sk = &c.value_from.secret_key_ref;
                    let what = format!("{kind} {} oauth2.clientSecret", r.name);
                    self.value::<Secret>(&what, &secret_ns, &sk.name, &sk.key)
                        .await?
                }
                None => String::new(),
            };
            for (k, v) in o.parameters(secret) {
                out.params.insert(k.to_string(), v);
            }
        }
        out.pod_identity = spec.pod_identity;
        Ok(out)
    }
}

impl Resolver<'_> {
    /// Reads an `awsSecretManager`'s static credentials (KEDA's `credentials`), if it has them.
    async fn aws_secrets(
        &self,
        owner: &str,
        ns: &str,
        sm: &swell_api::AwsSecretManager,
    ) -> Result<AwsSecrets, AuthError> {
        let mut out = AwsSecrets {
            owner: owner.to_string(),
            spec: sm.clone(),
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
        };
        if let Some(c) = &sm.credentials {
            let read = |field: &'static str, v: &swell_api::ValueFromSecret| {
                let r = v.value_from.secret_key_ref.clone();
                let what = format!("{owner} awsSecretManager.credentials.{field}");
                async move { self.value::<Secret>(&what, ns, &r.name, &r.key).await }
            };
            out.access_key_id = Some(read("accessKey", &c.access_key).await?);
            out.secret_access_key = Some(read("accessSecretKey", &c.access_secret_key).await?);
            if let Some(t) = &c.access_token {
                out.session_token = Some(read("accessToken", t).await?);
            }
        }
        Ok(out)
    }
}

fn missing(what: String, kind: &'static str, ns: &str, name: &str) -> AuthError {
    AuthError::MissingObject {
        what,
        kind,
        namespace: ns.into(),
        name: name.to_string(),
    }
}

/// Sources Swell does not read yet are refused by name, never silently ignored.
fn refuse_unsupported(
    spec: &TriggerAuthenticationSpec,
    kind: &str,
    name: &str,
) -> Result<(), AuthError> {
    let unsupported = [
        (spec.hashi_corp_vault.is_some(), "hashiCorpVault"),
        (spec.azure_key_vault.is_some(), "azureKeyVault"),
        (
            spec.azure_service_principal.is_some(),
            "azureServicePrincipal",
        ),
        (spec.gcp_secret_manager.is_some(), "gcpSecretManager"),
        (
            spec.bound_service_account_token.is_some(),
            "boundServiceAccountToken",
        ),
        (spec.file_path.is_some(), "filePath"),
    ];
    match unsupported.iter().find(|(set, _)| *set) {
        Some((_, field)) => Err(AuthError::Unsupported(format!(
            "{kind} {name}: spec.{field} is not supported by Swell yet; use secretTargetRef, configMapTargetRef, env or podIdentity"
        ))),
        None => Ok(()),
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
    (workload_role_arn, workload_role_lookup): (Option<String>, Option<String>),
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
        workload_role_lookup,
    }
}

/// Whether a pod identity reads the workload ServiceAccount's IAM role.
pub fn needs_workload_role(id: &AuthPodIdentity) -> bool {
    matches!(id.provider, PodIdentityProvider::AwsEks)
        || (matches!(id.provider, PodIdentityProvider::Aws)
            && id.identity_owner == Some(IdentityOwner::Workload))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every source Swell does not read is refused by its field name, never ignored.
    #[test]
    fn unsupported_sources_are_refused_by_name() {
        let cases = [
            (
                serde_json::json!({"hashiCorpVault": {"address": "https://v", "authentication": "token", "secrets": []}}),
                "hashiCorpVault",
            ),
            (
                serde_json::json!({"azureKeyVault": {"vaultUri": "https://kv", "secrets": [{"parameter": "p", "name": "n"}]}}),
                "azureKeyVault",
            ),
            (
                serde_json::json!({"azureServicePrincipal": {"clientId": "c", "tenantId": "t"}}),
                "azureServicePrincipal",
            ),
            (
                serde_json::json!({"filePath": "/etc/auth.json"}),
                "filePath",
            ),
        ];
        for (spec, field) in cases {
            let spec: TriggerAuthenticationSpec = serde_json::from_value(spec).unwrap();
            match refuse_unsupported(&spec, "TriggerAuthentication", "auth") {
                Err(AuthError::Unsupported(m)) => assert!(
                    m.contains(&format!(
                        "TriggerAuthentication auth: spec.{field} is not supported"
                    )),
                    "{m}"
                ),
                other => panic!("{field}: {other:?}"),
            }
        }
        let fine: TriggerAuthenticationSpec = serde_json::from_value(
            serde_json::json!({"secretTargetRef": [{"parameter": "p", "name": "s", "key": "k"}]}),
        )
        .unwrap();
        assert!(refuse_unsupported(&fine, "TriggerAuthentication", "auth").is_ok());
    }
}
