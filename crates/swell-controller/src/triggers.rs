//! Builds a ScaledObject's or ScaledJob's triggers: authentication, the workload's
//! environment and identity, then each scaler. Reads only.

use k8s_openapi::api::core::v1::{PodSpec, ServiceAccount};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client};
use swell_api::{ClusterTriggerAuthentication, ScaleTriggers, TriggerAuthentication};
use swell_scalers::observe::{Reader, Scope};
use swell_scalers::{MetricSpec, MetricType, RawParams, Sample, Scaler, ScalerError, TriggerInput};

use crate::auth::{AuthError, Resolver};
use crate::target::TargetError;

/// A trigger with its built scaler.
pub struct TriggerRuntime {
    pub index: usize,
    pub type_: String,
    pub spec: MetricSpec,
    pub scaler: Box<dyn Scaler>,
    pub use_cached_metrics: bool,
    /// Who reads, for the HTTP request and empty-answer metrics of its readings.
    pub scope: Scope,
}

impl TriggerRuntime {
    /// Reads the source once, its HTTP requests and empty answers recorded as this trigger's.
    pub async fn sample(&self) -> Result<Sample, ScalerError> {
        self.scope.run(self.scaler.sample()).await
    }
}

/// What owns the triggers.
pub struct Owner<'a> {
    /// `ScaledObject` or `ScaledJob`.
    pub kind: &'static str,
    pub namespace: &'a str,
    pub name: &'a str,
    pub triggers: &'a [ScaleTriggers],
    /// The pod template: container env (`…FromEnv`), the ServiceAccount (pod identity).
    pub pod: Option<&'a PodSpec>,
    pub env_source_container_name: Option<&'a str>,
    pub polling_interval: i32,
}

/// Everything building triggers reads: the API (Secrets, ConfigMaps, ServiceAccounts), the
/// watch caches of authentications, and the clients scalers share.
pub struct Builder {
    pub client: Client,
    pub shared: swell_scalers::Shared,
    /// Where ClusterTriggerAuthentication secrets are read (KEDA's cluster object namespace).
    pub cluster_namespace: String,
    /// Watch caches of the authentications triggers name (a change rebuilds their scalers).
    pub auths: Store<TriggerAuthentication>,
    pub cluster_auths: Store<ClusterTriggerAuthentication>,
}

/// Why an object's scalers could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{0}")]
    Target(#[from] TargetError),
    /// The target's container environment (`…FromEnv`) could not be read.
    #[error("{0}")]
    Env(#[source] AuthError),
    #[error("{0}")]
    Auth(#[source] AuthError),
    /// A scaler refused its parameters or its source (a `KEDAScalerFailed` event).
    #[error("triggers[{index}] ({type_}): {source}")]
    Scaler {
        index: usize,
        type_: String,
        source: ScalerError,
    },
    #[error("metric name {0} is used by two triggers; give them different metadata or names")]
    DuplicateMetric(String),
    /// Admission compiles the same formula over the same triggers; this guards objects
    /// that were stored without the webhook.
    #[error("spec.advanced.scalingModifiers.formula: {0}")]
    Formula(swell_api::formula::FormulaError),
}

impl BuildError {
    /// Whether a scaler failed (KEDA records `KEDAScalerFailed` besides the check failure).
    pub fn scaler_failed(&self) -> bool {
        matches!(self, BuildError::Scaler { .. })
    }

    /// A low-cardinality label for logs and `swell_reconcile_errors_total`.
    pub fn category(&self) -> &'static str {
        match self {
            BuildError::Target(_) => "target",
            BuildError::Env(_) | BuildError::Auth(_) => "authentication",
            BuildError::Scaler { .. } => "scaler",
            BuildError::DuplicateMetric(_) | BuildError::Formula(_) => "invalid",
        }
    }
}

impl Builder {
    /// The generation of each trigger's (Cluster)TriggerAuthentication as the watch caches
    /// see it now (`None` without an authenticationRef, or when it does not exist).
    pub fn auth_versions(
        &self,
        namespace: Option<&str>,
        triggers: &[ScaleTriggers],
    ) -> Vec<Option<i64>> {
        use swell_api::AuthenticationRefKind as Kind;
        triggers
            .iter()
            .map(|t| {
                let r = t.authentication_ref.as_ref()?;
                match r.kind() {
                    Kind::TriggerAuthentication => {
                        let key = ObjectRef::new(&r.name).within(namespace.unwrap_or_default());
                        self.auths.get(&key)?.metadata.generation
                    }
                    Kind::ClusterTriggerAuthentication => {
                        let key = ObjectRef::new(&r.name);
                        self.cluster_auths.get(&key)?.metadata.generation
                    }
                }
            })
            .collect()
    }

    /// Every trigger's scaler, and the names of the authentications they use.
    pub async fn build(&self, owner: Owner<'_>) -> Result<Built, BuildError> {
        let ns = owner.namespace;
        let resolver = Resolver {
            client: &self.client,
            cluster_namespace: &self.cluster_namespace,
            auths: &self.auths,
            cluster_auths: &self.cluster_auths,
            read: Default::default(),
        };
        // Authentications are read from the watch caches: wait for their first list, or a
        // trigger would be refused at start-up for an authentication not yet seen.
        let ready = futures::join!(
            self.auths.wait_until_ready(),
            self.cluster_auths.wait_until_ready()
        );
        if ready.0.is_err() || ready.1.is_err() {
            tracing::debug!("authentication caches closed: the controller is stopping");
        }
        let env = resolver
            .container_env(ns, owner.pod, owner.env_source_container_name)
            .await
            .map_err(BuildError::Env)?;
        let polling_interval = crate::loops::polling_duration(owner.polling_interval);
        let mut built = Built::default();
        for (index, t) in owner.triggers.iter().enumerate() {
            let mut auth = resolver
                .trigger_auth(index, ns, t.authentication_ref.as_ref(), owner.pod)
                .await
                .map_err(BuildError::Auth)?;
            if let Some(sm) = auth.aws_secret_manager.take() {
                let values = self
                    .aws_secret_values(&resolver, ns, owner.pod, &sm)
                    .await
                    .map_err(BuildError::Auth)?;
                auth.params.extend(values);
            }
            if let Some(r) = &t.authentication_ref {
                built.auth_names.push(r.name.clone());
            }
            let pod_identity = self
                .pod_identity_input(ns, owner.pod, auth.pod_identity.as_ref())
                .await;
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
            let trigger = self
                .build_one(&input, owner.kind, t.use_cached_metrics())
                .await?;
            built.triggers.push(trigger);
            if let Ok(checked) = swell_scalers::check(&input) {
                built.notices.extend(checked.warnings);
            }
        }
        built.sources = resolver.sources();
        Ok(built)
    }

    async fn build_one(
        &self,
        input: &TriggerInput,
        kind: &'static str,
        use_cached_metrics: bool,
    ) -> Result<TriggerRuntime, BuildError> {
        // Some scalers ask their source first (an external scaler's GetMetricSpec).
        let built = match swell_scalers::build(input, &self.shared) {
            Ok(mut scaler) => scaler.prepare().await.map(|()| scaler),
            Err(e) => Err(e),
        };
        let scaler = built.map_err(|source| BuildError::Scaler {
            index: input.index,
            type_: input.type_.clone(),
            source,
        })?;
        let spec = scaler.metric_spec();
        let reader = Reader {
            namespace: input.namespace.clone(),
            scaled_resource: input.scaled_object.clone(),
            resource_type: kind,
            scaler: input.type_.clone(),
            trigger_name: input.name.clone().unwrap_or_default(),
            metric_name: spec.name().to_string(),
        };
        Ok(TriggerRuntime {
            index: input.index,
            type_: input.type_.clone(),
            spec,
            scaler,
            use_cached_metrics,
            scope: Scope {
                reader: std::sync::Arc::new(reader),
                sink: self.shared.observe.clone(),
            },
        })
    }

    /// KEDA's `awsSecretManager`: each secret's value (or its `secretKey` in a JSON secret)
    /// under its `parameter`, read as the block's identity: its static `credentials`, or its
    /// `podIdentity` (`aws`: Swell's own role, `roleArn`, or the workload's role). Each
    /// secret is a source of the scalers: a new version of it rebuilds them.
    async fn aws_secret_values(
        &self,
        resolver: &Resolver<'_>,
        ns: &str,
        pod: Option<&PodSpec>,
        sm: &crate::auth::AwsSecrets,
    ) -> Result<Vec<(String, String)>, AuthError> {
        use swell_scalers::aws::{AuthParams, SecretVersion, resolve_identity, secret_key_value};
        let fail = |message: String| AuthError::AwsSecretManager {
            what: format!("{} awsSecretManager", sm.owner),
            message,
        };
        let provider = sm.spec.pod_identity.as_ref().map(|p| p.provider);
        let identity = match provider {
            None | Some(swell_api::PodIdentityProvider::None) => {
                let (Some(id), Some(key)) = (&sm.access_key_id, &sm.secret_access_key) else {
                    return Err(fail("credentials.accessKey and credentials.accessSecretKey are expected when not using a pod identity provider (as KEDA)".into()));
                };
                swell_scalers::aws::Identity::Static {
                    access_key_id: id.clone(),
                    secret_access_key: swell_scalers::tls::Secret::new(key.clone()),
                    session_token: sm
                        .session_token
                        .clone()
                        .map(swell_scalers::tls::Secret::new),
                }
            }
            Some(swell_api::PodIdentityProvider::Aws) => {
                let input = self
                    .pod_identity_input(ns, pod, sm.spec.pod_identity.as_ref())
                    .await;
                resolve_identity("pod", &input, &AuthParams::default())
                    .map_err(|e| fail(e.to_string()))?
            }
            Some(other) => {
                return Err(fail(format!(
                    "podIdentity provider {other:?} is not supported here; use aws or credentials (as KEDA)"
                )));
            }
        };
        let region = sm
            .spec
            .region
            .clone()
            .filter(|r| !r.is_empty())
            .or_else(|| std::env::var("AWS_REGION").ok())
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
            .ok_or_else(|| {
                fail("region is required (Swell has no AWS_REGION to fall back on)".into())
            })?;
        let mut out = Vec::new();
        for s in &sm.spec.secrets {
            let version = SecretVersion {
                name: &s.name,
                version_id: s.version_id.as_deref().filter(|v| !v.is_empty()),
                version_stage: s.version_stage.as_deref().filter(|v| !v.is_empty()),
            };
            let read = self
                .shared
                .aws
                .secret(&identity, &region, &version)
                .await
                .map_err(|e| fail(e.message))?;
            resolver.record(crate::auth::SourceRef {
                kind: crate::auth::AWS_SECRET,
                namespace: String::new(),
                name: read.key,
                version: read.version_id,
            });
            let value = read.value.expose();
            let value = match s.secret_key.as_deref().filter(|k| !k.is_empty()) {
                Some(key) => secret_key_value(&s.name, value, key).map_err(|e| fail(e.message))?,
                None => value.to_string(),
            };
            out.push((s.parameter.clone(), value));
        }
        Ok(out)
    }

    async fn pod_identity_input(
        &self,
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
        let role = if crate::auth::needs_workload_role(id) {
            self.workload_role(ns, &sa).await
        } else {
            (None, None)
        };
        crate::auth::pod_identity_input(ns, &sa, id, role)
    }

    /// The workload's role: its ServiceAccount's IRSA annotation, else its EKS Pod Identity
    /// association's; without one, why not (for the error's message).
    async fn workload_role(&self, ns: &str, sa: &str) -> (Option<String>, Option<String>) {
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), ns);
        let annotated = api
            .get_opt(sa)
            .await
            .ok()
            .flatten()
            .and_then(|s| s.metadata.annotations)
            .and_then(|a| a.get(swell_scalers::aws::ROLE_ARN_ANNOTATION).cloned());
        if annotated.is_some() {
            return (annotated, None);
        }
        match self.shared.aws.pod_identity_role(ns, sa).await {
            Ok(Some(role)) => (Some(role), None),
            Ok(None) => (
                None,
                self.shared
                    .aws
                    .eks_cluster()
                    .map(|c| format!("no EKS Pod Identity association in cluster {}", c.name)),
            ),
            Err(e) => (
                None,
                Some(format!(
                    "its EKS Pod Identity association could not be read: {}",
                    e.message
                )),
            ),
        }
    }
}

/// An object's built triggers and the authentications they read.
#[derive(Default)]
pub struct Built {
    pub triggers: Vec<TriggerRuntime>,
    /// The (Cluster)TriggerAuthentications named (status `authenticationsTypes`).
    pub auth_names: Vec<String>,
    /// The Secrets and ConfigMaps the credentials and environment came from.
    pub sources: Vec<crate::auth::SourceRef>,
    /// What the scalers' parsers noticed but accepted (unknown metadata keys, deprecated
    /// parameters): KEDA's `KEDAScalerInfo` events, recorded once per build.
    pub notices: Vec<String>,
}

impl Built {
    /// The first metric name two triggers share (the HPA would read one value for both).
    pub fn duplicate_metric(&self) -> Option<String> {
        let mut seen = std::collections::BTreeSet::new();
        self.triggers
            .iter()
            .map(|t| t.spec.name())
            .find(|n| !seen.insert(n.to_string()))
            .map(str::to_string)
    }

    pub fn trigger_types(&self) -> Vec<&str> {
        self.triggers.iter().map(|t| t.type_.as_str()).collect()
    }
}
