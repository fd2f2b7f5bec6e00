//! AWS identity for scalers, following KEDA's rules, and SDK clients shared per identity.
//!
//! Swell's own identity comes from aws-config's default chain (environment, profile, IRSA
//! web identity, EKS Pod Identity / container credentials). A trigger either uses it, or
//! assumes a role with it (sts:AssumeRole), or uses static keys from a TriggerAuthentication.
//! One SDK client is kept per (identity, region, endpoint), so its credential cache is shared
//! and refreshed before expiry by the SDK. Swell's own credentials and each assumed role's
//! are also held per region ([`credentials::Cached`]): one STS call per validity period,
//! and a failing one retried after a backoff rather than on every poll.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_types::origin::Origin;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;

mod calls;
pub mod cloudwatch_batch;
mod credentials;
mod pod_identity;
mod secrets;

pub use calls::{AwsMetrics, CallLimits, Operation, PRICES, PRICES_AS_OF, price};
pub use pod_identity::EksCluster;
pub use secrets::{SecretChange, SecretRead, SecretVersion, secret_key_value};

use crate::upstream::{Code, UpstreamError, UpstreamKind};
use crate::{
    Field, MetricSpec, MetricType, Params, Sample, ScalerError, Shared, Source, TriggerInput,
};

pub use crate::tls::Secret;

/// Whose credentials a trigger uses.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Identity {
    /// Swell's own identity (the operator's).
    Operator,
    /// A role assumed with Swell's own identity.
    AssumeRole {
        role_arn: String,
        external_id: Option<String>,
    },
    /// Static keys from a TriggerAuthentication.
    Static {
        access_key_id: String,
        secret_access_key: Secret,
        session_token: Option<Secret>,
    },
}

impl Identity {
    /// For messages: never includes a secret.
    pub fn describe(&self) -> String {
        match self {
            Identity::Operator => "Swell's own identity".into(),
            Identity::AssumeRole { role_arn, .. } => {
                format!("role {role_arn} (assumed with Swell's own identity)")
            }
            Identity::Static { access_key_id, .. } => format!("access key {access_key_id}"),
        }
    }

    /// A short stable key (no secrets) for de-duplicating upstream calls.
    pub fn key(&self) -> String {
        match self {
            Identity::Operator => "operator".into(),
            Identity::AssumeRole {
                role_arn,
                external_id,
            } => format!("role:{role_arn}:{}", external_id.as_deref().unwrap_or("")),
            Identity::Static {
                access_key_id,
                secret_access_key,
                ..
            } => {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                secret_access_key.hash(&mut h);
                format!("keys:{access_key_id}:{:x}", h.finish())
            }
        }
    }
}

/// What the controller resolved about pod identity for a trigger.
#[derive(Clone, Debug, Default)]
pub struct PodIdentityInput {
    /// `podIdentity.provider` of the TriggerAuthentication (`aws`, `aws-eks`, `none`, …).
    pub provider: Option<String>,
    pub role_arn: Option<String>,
    pub external_id: Option<String>,
    /// `podIdentity.identityOwner` (`keda` | `workload`).
    pub identity_owner: Option<String>,
    /// The `eks.amazonaws.com/role-arn` annotation of the workload's ServiceAccount.
    pub workload_role_arn: Option<String>,
    /// `namespace/name` of that ServiceAccount, for messages.
    pub workload_service_account: String,
    /// Without the annotation: why its EKS Pod Identity association gave no role (none
    /// found, the lookup failed, or no cluster is configured), for the error's message.
    pub workload_role_lookup: Option<String>,
}

/// The annotation IRSA puts on a ServiceAccount.
pub const ROLE_ARN_ANNOTATION: &str = "eks.amazonaws.com/role-arn";

/// Auth parameters a trigger may carry (from its TriggerAuthentication).
#[derive(Clone, Debug, Default)]
pub struct AuthParams {
    pub role_arn: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
    pub session_token: Option<Secret>,
}

/// Why a trigger has no AWS identity.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error(
        "ServiceAccount {0} has no {ROLE_ARN_ANNOTATION} annotation{1}; annotate it with the workload's IAM role, \
         give it an EKS Pod Identity association (Swell finds it with --eks-cluster-name, chart aws.eksClusterName), \
         or use identityOwner: operator"
    )]
    NoWorkloadRole(String, String),
    #[error("podIdentity.provider {0} cannot authenticate to AWS; use aws")]
    NotAws(String),
    #[error("awsSecretAccessKey is missing from the TriggerAuthentication")]
    NoSecretKey,
    #[error(
        "no AWS credentials for identityOwner pod: add a TriggerAuthentication with podIdentity.provider aws \
         (or aws-eks), awsRoleArn, or awsAccessKeyID/awsSecretAccessKey; or set identityOwner: operator"
    )]
    NoCredentials,
}

/// KEDA's choice of identity (`pkg/scalers/aws/aws_common.go`, `scale_resolvers.go`).
pub fn resolve_identity(
    trigger_owner: &str,
    pod: &PodIdentityInput,
    auth: &AuthParams,
) -> Result<Identity, IdentityError> {
    let workload_role = || {
        pod.workload_role_arn.clone().ok_or_else(|| {
            let why = pod
                .workload_role_lookup
                .as_ref()
                .map(|w| format!(" and {w}"))
                .unwrap_or_default();
            IdentityError::NoWorkloadRole(pod.workload_service_account.clone(), why)
        })
    };
    let assume = |role_arn: String, external_id: Option<String>| Identity::AssumeRole {
        role_arn,
        external_id,
    };
    match pod.provider.as_deref() {
        Some("aws") => {
            if let Some(arn) = pod.role_arn.clone().filter(|a| !a.is_empty()) {
                return Ok(assume(arn, pod.external_id.clone()));
            }
            if pod.identity_owner.as_deref() == Some("workload") {
                return Ok(assume(workload_role()?, None));
            }
            Ok(match auth.role_arn.clone() {
                Some(arn) => assume(arn, None),
                None => Identity::Operator,
            })
        }
        Some("aws-eks") if trigger_owner != "operator" => Ok(assume(workload_role()?, None)),
        Some(p @ ("azure-workload" | "gcp")) => Err(IdentityError::NotAws(p.to_string())),
        _ => {
            if trigger_owner == "operator" {
                return Ok(Identity::Operator);
            }
            if let Some(arn) = auth.role_arn.clone() {
                return Ok(assume(arn, None));
            }
            match (&auth.access_key_id, &auth.secret_access_key) {
                (Some(id), Some(secret)) => Ok(Identity::Static {
                    access_key_id: id.clone(),
                    secret_access_key: secret.clone(),
                    session_token: auth.session_token.clone(),
                }),
                (Some(_), None) => Err(IdentityError::NoSecretKey),
                _ => Err(IdentityError::NoCredentials),
            }
        }
    }
}

/// `identityOwner`: `pod` (the default: a TriggerAuthentication's identity) or `operator`.
pub const OWNER: Field = Field::new("identityOwner");
const ROLE_ARN: Field = Field::new("awsRoleArn").from(&[Source::Auth, Source::Metadata]);
const KEY_ID: Field = Field::new("awsAccessKeyID").from(&[Source::Auth, Source::Metadata]);
const KEY_ID_ALT: Field = Field::new("awsAccessKeyId").from(&[Source::Auth]);
const SECRET: Field = Field::new("awsSecretAccessKey").from(&[Source::Auth, Source::Metadata]);
const TOKEN: Field = Field::new("awsSessionToken").from(&[Source::Auth]);

/// The identity parameters every AWS scaler takes, for unknown-key warnings.
pub const IDENTITY_FIELDS: &[Field] = &[OWNER, ROLE_ARN, KEY_ID, KEY_ID_ALT, SECRET, TOKEN];

/// Reads a trigger's identity parameters ([`IDENTITY_FIELDS`]) and resolves them with its
/// pod identity as KEDA does. A problem goes into `p` under `identityOwner`. `None` also
/// when offline (`swell check`) the credentials may come from a TriggerAuthentication that
/// cannot be read.
pub fn parse_identity(input: &TriggerInput, p: &mut Params<'_>) -> Option<Identity> {
    let owner = p.one_of(OWNER, &["pod", "operator"], "pod");
    let auth = AuthParams {
        role_arn: p.opt_string(ROLE_ARN),
        access_key_id: p.opt_string(KEY_ID).or_else(|| p.opt_string(KEY_ID_ALT)),
        secret_access_key: p.opt_string(SECRET).map(Secret::new),
        session_token: p.opt_string(TOKEN).map(Secret::new),
    };
    match resolve_identity(owner, &input.pod_identity, &auth) {
        Ok(identity) => Some(identity),
        Err(_) if input.params.auth_unknown && input.pod_identity.provider.is_none() => None,
        Err(e) => {
            p.error(OWNER.name, e.to_string());
            None
        }
    }
}

/// The identity [`parse_identity`] found, for a scaler being built (where the parameters
/// are known, so `None` has already been reported).
pub fn require_identity(identity: Option<Identity>) -> Result<Identity, ScalerError> {
    identity.ok_or_else(|| ScalerError::Internal("no AWS identity for this trigger".into()))
}

const CONNECT_TIMEOUT: Field = Field::new("swellAwsConnectTimeout")
    .hint("a Go duration such as 3s: how long to wait for a TCP/TLS connection");
const READ_TIMEOUT: Field = Field::new("swellAwsReadTimeout")
    .hint("a Go duration such as 10s: how long one attempt waits for the answer to begin");
const OPERATION_TIMEOUT: Field = Field::new("swellAwsOperationTimeout")
    .hint("a Go duration such as 20s: how long one call may take, retries included");
const MAX_ATTEMPTS: Field =
    Field::new("swellAwsMaxAttempts").hint("a whole number of attempts per call, 1 to 10");

/// Swell's own SDK settings every AWS scaler takes ([`parse_sdk_settings`]); KEDA has no
/// such parameters, hence the prefix.
pub const SDK_FIELDS: &[Field] = &[
    CONNECT_TIMEOUT,
    READ_TIMEOUT,
    OPERATION_TIMEOUT,
    MAX_ATTEMPTS,
];

/// The most attempts a trigger may ask for: more would hold a loop for minutes.
pub const MAX_ATTEMPTS_LIMIT: u32 = 10;

/// How an AWS SDK client of a trigger calls its service: connection and read timeouts per
/// attempt, a bound on the whole call (retries included) and how many attempts it makes.
/// The defaults bound a call to 20 s, so one endpoint that does not answer cannot stall
/// a polling loop (the SDK's own defaults have no read or operation timeout).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SdkSettings {
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub operation_timeout: Duration,
    pub max_attempts: u32,
}

impl Default for SdkSettings {
    fn default() -> SdkSettings {
        SdkSettings {
            connect_timeout: Duration::from_secs(3),
            read_timeout: Duration::from_secs(10),
            operation_timeout: Duration::from_secs(20),
            max_attempts: 3,
        }
    }
}

impl SdkSettings {
    /// Applied to a service's configuration; the SDK's standard retry strategy keeps its
    /// backoff and which errors it retries.
    fn apply(&self, conf: SdkConfig) -> SdkConfig {
        use aws_config::retry::RetryConfig;
        use aws_config::timeout::TimeoutConfig;
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(self.connect_timeout)
            .read_timeout(self.read_timeout)
            .operation_timeout(self.operation_timeout)
            .build();
        conf.into_builder()
            .timeout_config(timeouts)
            .retry_config(RetryConfig::standard().with_max_attempts(self.max_attempts))
            .build()
    }

    /// For a timeout's message: the settings in force, by their field names.
    pub fn describe(&self) -> String {
        format!(
            "{} {}, {} {}, {} {}, {} {}",
            CONNECT_TIMEOUT.name,
            go_format(self.connect_timeout),
            READ_TIMEOUT.name,
            go_format(self.read_timeout),
            OPERATION_TIMEOUT.name,
            go_format(self.operation_timeout),
            MAX_ATTEMPTS.name,
            self.max_attempts
        )
    }

    /// A timeout's message says which limits were in force and where to change them.
    fn explain_timeout(&self, mut err: UpstreamError) -> UpstreamError {
        if err.kind == UpstreamKind::Timeout {
            err.message = format!(
                "{}; no answer within the trigger's AWS SDK limits ({}): raise them in the trigger's metadata \
                 if the endpoint is slow, or check that it is reachable",
                err.message,
                self.describe()
            );
        }
        err
    }
}

/// A duration as Go prints short ones (`3s`, `250ms`), for messages.
fn go_format(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d.as_nanos().is_multiple_of(1_000_000) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{d:?}")
    }
}

/// Reads [`SDK_FIELDS`] (metadata only) into `p`, each problem under its field.
pub fn parse_sdk_settings(p: &mut Params<'_>) -> SdkSettings {
    let d = SdkSettings::default();
    let positive = |p: &mut Params<'_>, f: Field, default: Duration| match p.duration(f) {
        Some(v) if v.is_zero() => {
            p.error(f.name, "must be greater than 0");
            default
        }
        Some(v) => v,
        None => default,
    };
    let connect_timeout = positive(p, CONNECT_TIMEOUT, d.connect_timeout);
    let read_timeout = positive(p, READ_TIMEOUT, d.read_timeout);
    let operation_timeout = positive(p, OPERATION_TIMEOUT, d.operation_timeout);
    let max_attempts = match p.opt::<u32>(MAX_ATTEMPTS, "a whole number of attempts") {
        Some(n) if (1..=MAX_ATTEMPTS_LIMIT).contains(&n) => n,
        Some(n) => {
            p.error(
                MAX_ATTEMPTS.name,
                format!("must be from 1 to {MAX_ATTEMPTS_LIMIT}, {n} is given"),
            );
            d.max_attempts
        }
        None => d.max_attempts,
    };
    SdkSettings {
        connect_timeout,
        read_timeout,
        operation_timeout,
        max_attempts,
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct ConfigKey {
    identity: Identity,
    region: String,
}

/// A service client's key: identity and region, endpoint override, SDK settings, and the
/// client's type.
type ClientKey = (ConfigKey, Option<String>, SdkSettings, TypeId);

/// SDK configurations per identity and region, and service clients per identity, region
/// and endpoint, built once and shared; every call made through [`AwsClients::call`].
#[derive(Default)]
pub struct AwsClients {
    limiter: calls::Limiter,
    metrics: AwsMetrics,
    /// CloudWatch triggers asking in one `GetMetricData` call ([`cloudwatch_batch`]).
    pub cloudwatch_batches: cloudwatch_batch::Batches,
    /// The cluster whose EKS Pod Identity associations give workloads their roles.
    eks_cluster: Option<EksCluster>,
    pod_identity_roles: crate::coalesce::Coalescer<String, Result<Option<String>, UpstreamError>>,
    /// `awsSecretManager` secrets read ([`secrets`]).
    secrets: secrets::Secrets,
    /// Per region: the default chain with Swell's own credentials in a [`credentials::Cached`],
    /// shared by every identity there, so assuming several roles (or failing to) does not
    /// resolve Swell's own identity again.
    bases: tokio::sync::Mutex<HashMap<String, SdkConfig>>,
    configs: tokio::sync::Mutex<HashMap<ConfigKey, SdkConfig>>,
    /// Keyed by the client's type too: one map serves every service.
    clients: tokio::sync::Mutex<HashMap<ClientKey, Box<dyn Any + Send>>>,
}

/// Where one AWS call goes and as whom, for [`AwsClients::call`] and its messages.
pub struct Call<'a> {
    pub identity: &'a Identity,
    pub region: &'a str,
    pub sdk: &'a SdkSettings,
    pub operation: Operation,
    /// What is read, for messages (`queue … in eu-west-1`).
    pub resource: &'a str,
}

impl AwsClients {
    /// Clients whose calls keep to `limits` and are counted in `metrics`.
    pub fn new(limits: CallLimits, metrics: AwsMetrics) -> AwsClients {
        AwsClients {
            limiter: calls::Limiter::new(limits),
            metrics,
            ..Default::default()
        }
    }

    /// Workloads without an IRSA annotation get their EKS Pod Identity association's role
    /// in `cluster` ([`AwsClients::pod_identity_role`]).
    pub fn with_eks_cluster(mut self, cluster: Option<EksCluster>) -> AwsClients {
        self.eks_cluster = cluster;
        self
    }

    /// Runs one SDK call (`send`, billed as `units` of [`PRICES`]) within the rate limit of
    /// its identity, region and service, counts it, and turns its error into one that says
    /// what to fix ([`explain_sdk_error`]). A throttled answer backs the service off.
    pub async fn call<T, E, Fut>(
        &self,
        call: &Call<'_>,
        units: f64,
        send: impl FnOnce() -> Fut,
    ) -> Result<T, UpstreamError>
    where
        Fut: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: aws_sdk_sqs::error::ProvideErrorMetadata + std::error::Error + 'static,
    {
        let key = calls::Limiter::key(call.identity, call.region, call.operation);
        self.limiter.acquire(&key).await?;
        self.metrics.count(call.operation, units);
        let answer = send().await.map_err(|e| {
            let permission = call.operation.permission();
            explain_sdk_error(&e, call.identity, call.sdk, call.resource, &permission)
        });
        let throttled = matches!(&answer, Err(e) if e.kind == UpstreamKind::Throttled);
        self.limiter.finished(&key, throttled);
        answer
    }

    async fn base(&self, region: &str) -> SdkConfig {
        let mut bases = self.bases.lock().await;
        if let Some(b) = bases.get(region) {
            return b.clone();
        }
        let mut base = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region.to_string()))
            .load()
            .await;
        if let Some(own) = base.credentials_provider() {
            base = base
                .into_builder()
                .credentials_provider(credentials::Cached::shared(own))
                .build();
        }
        bases.insert(region.to_string(), base.clone());
        base
    }

    /// An identity's credentials, from its configuration's provider, which holds them until
    /// near expiry ([`credentials::Cached`]), so signing a request is not an STS call.
    async fn credentials(
        &self,
        identity: &Identity,
        region: &str,
    ) -> Result<Credentials, UpstreamError> {
        use aws_credential_types::provider::ProvideCredentials as _;
        let conf = self.config(identity, region).await;
        let provider = conf.credentials_provider().ok_or_else(|| {
            UpstreamError::new(
                UpstreamKind::Auth,
                format!("no AWS credentials for {}", identity.describe()),
            )
        })?;
        let creds = provider.provide_credentials().await.map_err(|e| {
            let kind = match e {
                aws_credential_types::provider::error::CredentialsError::ProviderTimedOut(_) => {
                    UpstreamKind::Timeout
                }
                _ => UpstreamKind::Auth,
            };
            let message = format!(
                "getting AWS credentials for {}: {}",
                identity.describe(),
                error_chain(&e)
            );
            UpstreamError::new(kind, message)
        })?;
        Ok(creds)
    }

    /// Signs an HTTP request with SigV4 for `service` in `region` (headers, as the SDKs do),
    /// e.g. an Amazon Managed Prometheus query (`aps`).
    pub async fn sign(
        &self,
        identity: &Identity,
        region: &str,
        service: &str,
        request: &mut reqwest::Request,
    ) -> Result<(), UpstreamError> {
        use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
        let failed = |what: String| UpstreamError::new(UpstreamKind::Other, what);
        let creds = self.credentials(identity, region).await?;
        let signer_identity: aws_smithy_runtime_api::client::identity::Identity = creds.into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&signer_identity)
            .region(region)
            .name(service)
            .time(std::time::SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| failed(format!("signing the request for {service}: {e}")))?
            .into();
        let headers: Vec<(&str, &str)> = request
            .headers()
            .iter()
            .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v)))
            .collect();
        let body = request
            .body()
            .and_then(|b| b.as_bytes())
            .unwrap_or_default();
        let signable = SignableRequest::new(
            request.method().as_str(),
            request.url().as_str(),
            headers.into_iter(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| failed(format!("signing the request for {service}: {e}")))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| failed(format!("signing the request for {service}: {e}")))?
            .into_parts();
        for (name, value) in instructions.headers() {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| failed(format!("signature header {name}: {e}")))?;
            let value = reqwest::header::HeaderValue::from_str(value)
                .map_err(|e| failed(format!("signature header {name}: {e}")))?;
            request.headers_mut().insert(name, value);
        }
        Ok(())
    }

    /// The SDK configuration for an identity in a region.
    pub async fn config(&self, identity: &Identity, region: &str) -> SdkConfig {
        let key = ConfigKey {
            identity: identity.clone(),
            region: region.to_string(),
        };
        let mut configs = self.configs.lock().await;
        if let Some(c) = configs.get(&key) {
            return c.clone();
        }
        let base = self.base(region).await;
        let conf = match identity {
            Identity::Operator => base,
            Identity::AssumeRole {
                role_arn,
                external_id,
            } => {
                let mut b = aws_config::sts::AssumeRoleProvider::builder(role_arn)
                    .session_name("swell")
                    .configure(&base);
                if let Some(id) = external_id {
                    b = b.external_id(id);
                }
                // Cached too: a failing AssumeRole is retried after a backoff, not every poll.
                let provider = SharedCredentialsProvider::new(b.build().await);
                base.into_builder()
                    .credentials_provider(credentials::Cached::shared(provider))
                    .build()
            }
            Identity::Static {
                access_key_id,
                secret_access_key,
                session_token,
            } => {
                let creds = Credentials::new(
                    access_key_id,
                    secret_access_key.expose(),
                    session_token.as_ref().map(|t| t.expose().to_string()),
                    None,
                    "swell-trigger-authentication",
                );
                base.into_builder()
                    .credentials_provider(SharedCredentialsProvider::new(creds))
                    .build()
            }
        };
        configs.insert(key, conf.clone());
        conf
    }

    /// A service client (`C` is e.g. `aws_sdk_sqs::Client`, `make` its `Client::new`) for an
    /// identity, region, optional endpoint override and SDK settings; the endpoint and the
    /// settings apply to this service only, not to the STS calls behind an assumed role.
    pub async fn client<C: Clone + Send + 'static>(
        &self,
        identity: &Identity,
        region: &str,
        endpoint: Option<&str>,
        sdk: &SdkSettings,
        make: impl FnOnce(&SdkConfig) -> C,
    ) -> C {
        let key = (
            ConfigKey {
                identity: identity.clone(),
                region: region.to_string(),
            },
            endpoint.map(str::to_string),
            *sdk,
            TypeId::of::<C>(),
        );
        if let Some(c) = self
            .clients
            .lock()
            .await
            .get(&key)
            .and_then(|c| c.downcast_ref::<C>())
        {
            return c.clone();
        }
        let mut conf = sdk.apply(self.config(identity, region).await);
        if let Some(ep) = endpoint {
            let mut b = conf.into_builder();
            b.set_endpoint_url(Some(ep.to_string()));
            // As if set on the service's own config: the trigger's awsEndpoint wins over an
            // AWS_ENDPOINT_URL_<SERVICE> in Swell's environment.
            b.insert_origin("endpoint_url", Origin::shared_config());
            conf = b.build();
        }
        let client = make(&conf);
        self.clients
            .lock()
            .await
            .insert(key, Box::new(client.clone()));
        client
    }

    /// An SQS client for an identity, region, optional endpoint override and SDK settings.
    pub async fn sqs(
        &self,
        identity: &Identity,
        region: &str,
        endpoint: Option<&str>,
        sdk: &SdkSettings,
    ) -> aws_sdk_sqs::Client {
        self.client(identity, region, endpoint, sdk, aws_sdk_sqs::Client::new)
            .await
    }

    /// A CloudWatch client for an identity, region, optional endpoint override and SDK
    /// settings.
    pub async fn cloudwatch(
        &self,
        identity: &Identity,
        region: &str,
        endpoint: Option<&str>,
        sdk: &SdkSettings,
    ) -> aws_sdk_cloudwatch::Client {
        self.client(
            identity,
            region,
            endpoint,
            sdk,
            aws_sdk_cloudwatch::Client::new,
        )
        .await
    }

    /// Presigns a GET of `url` with SigV4 in its query (`X-Amz-Expires` = `expires_in`, the
    /// session token when the credentials have one), as the SDKs' `PresignHTTP`; e.g. the
    /// Amazon MSK IAM token (`kafka-cluster`). Returns the URL and when it was signed.
    pub async fn presign(
        &self,
        identity: &Identity,
        region: &str,
        service: &str,
        url: &str,
        expires_in: Duration,
    ) -> Result<(reqwest::Url, std::time::SystemTime), UpstreamError> {
        let creds = self.credentials(identity, region).await?;
        let now = std::time::SystemTime::now();
        presign_url(creds, region, service, url, expires_in, now).map(|u| (u, now))
    }
}

/// [`AwsClients::presign`] with the credentials and signing time given.
pub fn presign_url(
    creds: Credentials,
    region: &str,
    service: &str,
    url: &str,
    expires_in: Duration,
    time: std::time::SystemTime,
) -> Result<reqwest::Url, UpstreamError> {
    use aws_sigv4::http_request::{
        SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
    };
    let failed = |e: &dyn std::fmt::Display| {
        UpstreamError::new(
            UpstreamKind::Other,
            format!("presigning {service} in {region}: {e}"),
        )
    };
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(expires_in);
    let signer_identity: aws_smithy_runtime_api::client::identity::Identity = creds.into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&signer_identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| failed(&e))?
        .into();
    let signable = SignableRequest::new("GET", url, std::iter::empty(), SignableBody::Bytes(&[]))
        .map_err(|e| failed(&e))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| failed(&e))?
        .into_parts();
    let mut signed = reqwest::Url::parse(url).map_err(|e| failed(&e))?;
    {
        let mut query = signed.query_pairs_mut();
        for (name, value) in instructions.params() {
            query.append_pair(name, value);
        }
    }
    Ok(signed)
}

const SHARDS: Field = Field::new("shardCount").hint("the number of shards per replica");
const ACTIVATION_SHARDS: Field = Field::new("activationShardCount");
const ENDPOINT: Field = Field::new("awsEndpoint");
/// The parameters of a trigger on a shard count besides the resource and its region
/// ([`ShardCount`]).
pub const SHARD_COUNT_FIELDS: &[Field] = &[SHARDS, ACTIVATION_SHARDS, ENDPOINT];

/// A trigger scaling to one replica per `shardCount` shards (`aws-kinesis-stream`,
/// `aws-dynamodb-streams`), before any client exists: all but the resource it counts.
pub struct ShardCount {
    region: String,
    endpoint: Option<String>,
    identity: Option<Identity>,
    sdk: SdkSettings,
    shards: i64,
    activation: i64,
}

impl ShardCount {
    /// Reads and checks the parameters without I/O (the region from `region`, whose
    /// sources differ by scaler in KEDA); every problem goes into `p`.
    pub fn parse(input: &TriggerInput, p: &mut Params<'_>, region: Field) -> ShardCount {
        // An empty value is unset, as in KEDA's typed config: the default.
        let shards: i64 = p.or(SHARDS, "a whole number of shards", 2);
        if shards <= 0 {
            p.error(
                SHARDS.name,
                format!("must be greater than 0, {shards} is given"),
            );
        }
        let activation: i64 = p.or(ACTIVATION_SHARDS, "a whole number of shards", 0);
        let region = p.string(region);
        let endpoint = p.opt_url(ENDPOINT, false);
        let identity = parse_identity(input, p);
        let sdk = parse_sdk_settings(p);
        ShardCount {
            region,
            endpoint,
            identity,
            sdk,
            shards,
            activation,
        }
    }

    /// The trigger, giving the HPA `metric` (normalized, after the trigger's index).
    pub fn trigger(
        self,
        input: &TriggerInput,
        shared: &Shared,
        metric: &str,
    ) -> Result<AwsTrigger, ScalerError> {
        use swell_scaling::naming::{metric_name, normalize};
        Ok(AwsTrigger {
            metric: metric_name(input.index, &normalize(metric)),
            identity: require_identity(self.identity)?,
            sdk: self.sdk,
            region: self.region,
            endpoint: self.endpoint,
            metric_type: input.metric_type.unwrap_or_default(),
            target: self.shards as f64,
            activation: self.activation as f64,
            polling: input.polling_interval,
            shared: shared.clone(),
        })
    }
}

/// What every AWS trigger that reads one number has besides its question: where and as
/// whom it asks, and the metric it gives the HPA.
pub struct AwsTrigger {
    pub region: String,
    pub endpoint: Option<String>,
    pub identity: Identity,
    pub sdk: SdkSettings,
    pub metric: String,
    pub metric_type: MetricType,
    pub target: f64,
    pub activation: f64,
    pub polling: Duration,
    pub shared: Shared,
}

impl AwsTrigger {
    pub fn metric_spec(&self) -> MetricSpec {
        MetricSpec::External {
            name: self.metric.clone(),
            target: self.target,
            metric_type: self.metric_type,
        }
    }

    /// The service client for this trigger's identity, region and endpoint.
    pub async fn client<C: Clone + Send + 'static>(&self, make: impl FnOnce(&SdkConfig) -> C) -> C {
        self.shared
            .aws
            .client(
                &self.identity,
                &self.region,
                self.endpoint.as_deref(),
                &self.sdk,
                make,
            )
            .await
    }

    /// [`AwsClients::call`] as this trigger's identity, in its region.
    pub async fn call<T, E, Fut>(
        &self,
        operation: Operation,
        resource: &str,
        units: f64,
        send: impl FnOnce() -> Fut,
    ) -> Result<T, UpstreamError>
    where
        Fut: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: aws_sdk_sqs::error::ProvideErrorMetadata + std::error::Error + 'static,
    {
        let call = Call {
            identity: &self.identity,
            region: &self.region,
            sdk: &self.sdk,
            operation,
            resource,
        };
        self.shared.aws.call(&call, units, send).await
    }

    /// The key of `question` asked of `scaler`'s service as this identity.
    pub fn upstream_key(&self, scaler: &str, question: &str) -> String {
        format!("{scaler}|{question}|{}", self.identity.key())
    }

    /// One reading, shared with the triggers asking the same question of the same place.
    pub async fn sample<F, Fut>(
        &self,
        scaler: &str,
        question: &str,
        fetch: F,
    ) -> Result<Sample, ScalerError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<f64, UpstreamError>>,
    {
        let key = format!(
            "{}|{}|{}",
            self.upstream_key(scaler, question),
            self.region,
            self.endpoint.as_deref().unwrap_or("")
        );
        self.shared
            .sample_value(scaler, &key, self.polling, self.activation, fetch)
            .await
    }
}

/// An error and its sources as one line, without Debug noise.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !t.is_empty() && !parts.last().is_some_and(|p| p.contains(&t)) {
            parts.push(t);
        }
        cur = s.source();
    }
    parts.join(": ")
}

/// Shared handle.
pub type SharedAws = Arc<AwsClients>;

/// [`explain`] for an error of any AWS SDK call: its service error code, HTTP status and
/// chain; a call that got no answer is a timeout or a connection failure, and a timeout
/// names the trigger's [`SdkSettings`].
pub fn explain_sdk_error<E>(
    e: &SdkError<E, HttpResponse>,
    identity: &Identity,
    sdk: &SdkSettings,
    resource: &str,
    action: &str,
) -> UpstreamError
where
    E: aws_sdk_sqs::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    use aws_sdk_sqs::error::ProvideErrorMetadata as _;
    let mut err = explain(e.code(), &error_chain(e), identity, resource, action);
    if err.kind == UpstreamKind::Other {
        err.kind = transport_kind(e);
    }
    if let Some(r) = e.raw_response() {
        err.status = Some(r.status().as_u16());
        if err.kind == UpstreamKind::Other && err.code.is_none() {
            err.kind = UpstreamKind::from_http_status(r.status().as_u16());
        }
    }
    sdk.explain_timeout(err)
}

/// What an SDK error without a service error code says about the call.
fn transport_kind<E>(e: &SdkError<E, HttpResponse>) -> UpstreamKind {
    match e {
        SdkError::TimeoutError(_) => UpstreamKind::Timeout,
        SdkError::DispatchFailure(d) if d.is_timeout() => UpstreamKind::Timeout,
        SdkError::DispatchFailure(d) if d.is_io() => UpstreamKind::Connect,
        SdkError::ResponseError(_) => UpstreamKind::BadResponse,
        _ => UpstreamKind::Other,
    }
}

/// Turns an SDK error into a message that says what to fix, keeping its code and kind.
/// `code` is the service error code when the SDK parsed one; `text` is the full error chain.
pub fn explain(
    code: Option<&str>,
    text: &str,
    identity: &Identity,
    resource: &str,
    action: &str,
) -> UpstreamError {
    explain_with(
        code,
        text,
        identity,
        resource,
        action,
        &WebIdentity::from_env(),
    )
}

/// Swell's own web identity token (IRSA), as [`explain`] reports on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebIdentity {
    /// `AWS_WEB_IDENTITY_TOKEN_FILE` is not set.
    None,
    /// The token file, and why it cannot be read (`None`: it can).
    Token {
        path: String,
        unreadable: Option<String>,
    },
}

impl WebIdentity {
    /// From `AWS_WEB_IDENTITY_TOKEN_FILE`, opening the file to see whether it can be read.
    pub fn from_env() -> WebIdentity {
        let Some(path) = std::env::var_os("AWS_WEB_IDENTITY_TOKEN_FILE") else {
            return WebIdentity::None;
        };
        let unreadable = std::fs::File::open(&path).err().map(|e| e.to_string());
        WebIdentity::Token {
            path: path.to_string_lossy().into_owned(),
            unreadable,
        }
    }
}

/// [`explain`], told about Swell's own web identity token.
pub fn explain_with(
    code: Option<&str>,
    text: &str,
    identity: &Identity,
    resource: &str,
    action: &str,
    web: &WebIdentity,
) -> UpstreamError {
    let (kind, message) = explain_message(code, text, identity, resource, action, web);
    let err = UpstreamError::new(kind, message);
    match code {
        Some(c) => err.with_code(Code::Aws(c.to_string())),
        None => err,
    }
}

/// [`explain_with`]'s kind and message.
fn explain_message(
    code: Option<&str>,
    text: &str,
    identity: &Identity,
    resource: &str,
    action: &str,
    web: &WebIdentity,
) -> (UpstreamKind, String) {
    let assume_denied = text.contains("sts:AssumeRole")
        && (text.contains("AccessDenied") || text.contains("not authorized"));
    let own_credentials_failed =
        text.contains("loading credentials") || text.contains("failed to load credentials");
    let uses_own = !matches!(identity, Identity::Static { .. });
    if let (Identity::AssumeRole { role_arn, .. }, true) = (identity, assume_denied) {
        return (
            UpstreamKind::Auth,
            format!(
                "AccessDenied: Swell's identity may not sts:AssumeRole {role_arn} ({text}); check both policies: \
                 (1) the trust policy of {role_arn} must allow Swell's role to assume it, and \
                 (2) Swell's own role must have an identity policy allowing sts:AssumeRole on {role_arn}"
            ),
        );
    }
    let irsa = web != &WebIdentity::None;
    if let (
        WebIdentity::Token {
            path,
            unreadable: Some(why),
        },
        true,
    ) = (web, uses_own)
        && (own_credentials_failed || text.contains("AssumeRoleWithWebIdentity"))
    {
        return (
            UpstreamKind::Auth,
            format!(
                "WebIdentityErr: Swell's own IRSA token cannot be read: AWS_WEB_IDENTITY_TOKEN_FILE={path}: {why}; \
                 is the token mounted? EKS mounts it when Swell's ServiceAccount has the {ROLE_ARN_ANNOTATION} \
                 annotation and the pod was created after it was added: check the pod's volumes, or restart it ({text})"
            ),
        );
    }
    if text.contains("AssumeRoleWithWebIdentity") || (irsa && uses_own && own_credentials_failed) {
        return (
            UpstreamKind::Auth,
            format!(
                "WebIdentityErr: Swell's own IRSA credentials failed ({text}); check the trust policy of the role in AWS_ROLE_ARN \
                 names this cluster's OIDC provider and Swell's ServiceAccount"
            ),
        );
    }
    let kind = match code {
        Some(c) => UpstreamKind::from_aws_code(c),
        None if own_credentials_failed => UpstreamKind::Auth,
        None => UpstreamKind::Other,
    };
    let message = match code {
        Some("AccessDenied" | "AccessDeniedException") => format!(
            "AccessDenied: {} lacks {action} on {resource}; grant it in that identity's IAM policy ({text})",
            identity.describe()
        ),
        Some("AWS.SimpleQueueService.NonExistentQueue" | "QueueDoesNotExist") => format!(
            "NonExistentQueue: {resource} does not exist; check queueURL, and that awsRegion is the region the queue is in ({text})"
        ),
        Some("ResourceNotFoundException") => format!(
            "ResourceNotFoundException: {resource} does not exist; check its name, and that awsRegion is the region it is in ({text})"
        ),
        Some("InvalidClientTokenId" | "UnrecognizedClientException") => {
            format!(
                "InvalidClientTokenId: AWS does not recognise the access key of {} ({text})",
                identity.describe()
            )
        }
        Some("SignatureDoesNotMatch" | "InvalidSignatureException") => {
            format!(
                "SignatureDoesNotMatch: the secret key of {} is wrong ({text})",
                identity.describe()
            )
        }
        _ => text.to_string(),
    };
    (kind, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(provider: Option<&str>) -> PodIdentityInput {
        PodIdentityInput {
            provider: provider.map(str::to_string),
            workload_role_arn: Some("arn:aws:iam::1:role/demo-app".into()),
            workload_service_account: "demo-ns/demo-app-sa".into(),
            ..Default::default()
        }
    }

    fn role(arn: &str) -> Identity {
        Identity::AssumeRole {
            role_arn: arn.into(),
            external_id: None,
        }
    }

    #[test]
    fn seed_models() {
        // Pod identity owner: aws-eks reads the workload's ServiceAccount annotation.
        assert_eq!(
            resolve_identity("pod", &pod(Some("aws-eks")), &AuthParams::default()),
            Ok(role("arn:aws:iam::1:role/demo-app"))
        );
        // Operator identity owner: no TriggerAuthentication needed.
        assert_eq!(
            resolve_identity(
                "operator",
                &PodIdentityInput::default(),
                &AuthParams::default()
            ),
            Ok(Identity::Operator)
        );
        assert_eq!(
            resolve_identity("operator", &pod(Some("aws-eks")), &AuthParams::default()),
            Ok(Identity::Operator)
        );
    }

    #[test]
    fn provider_aws() {
        let mut p = pod(Some("aws"));
        assert_eq!(
            resolve_identity("pod", &p, &AuthParams::default()),
            Ok(Identity::Operator)
        );
        p.identity_owner = Some("workload".into());
        assert_eq!(
            resolve_identity("pod", &p, &AuthParams::default()),
            Ok(role("arn:aws:iam::1:role/demo-app"))
        );
        p.role_arn = Some("arn:aws:iam::1:role/x".into());
        p.external_id = Some("ext".into());
        assert_eq!(
            resolve_identity("operator", &p, &AuthParams::default()),
            Ok(Identity::AssumeRole {
                role_arn: "arn:aws:iam::1:role/x".into(),
                external_id: Some("ext".into())
            })
        );
        let mut p = pod(Some("aws"));
        p.identity_owner = Some("keda".into());
        let auth = AuthParams {
            role_arn: Some("arn:aws:iam::1:role/r".into()),
            ..Default::default()
        };
        assert_eq!(
            resolve_identity("pod", &p, &auth),
            Ok(role("arn:aws:iam::1:role/r"))
        );
    }

    #[test]
    fn static_keys_and_errors() {
        let auth = AuthParams {
            access_key_id: Some("AKIA1".into()),
            secret_access_key: Some(Secret::new("s")),
            ..Default::default()
        };
        let id = resolve_identity("pod", &PodIdentityInput::default(), &auth).unwrap();
        assert!(matches!(id, Identity::Static { .. }));
        assert!(
            !format!("{id:?}").contains("\"s\""),
            "secrets are redacted: {id:?}"
        );
        assert!(!id.key().contains(":s"));
        let e = resolve_identity("pod", &PodIdentityInput::default(), &AuthParams::default())
            .unwrap_err();
        assert_eq!(e, IdentityError::NoCredentials);
        assert!(e.to_string().contains("identityOwner: operator"), "{e}");
        let mut p = pod(Some("aws-eks"));
        p.workload_role_arn = None;
        let e = resolve_identity("pod", &p, &AuthParams::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(
                "ServiceAccount demo-ns/demo-app-sa has no eks.amazonaws.com/role-arn annotation"
            ),
            "{e}"
        );
    }

    #[test]
    fn explains_common_errors() {
        let r = role("arn:aws:iam::1:role/demo-app");
        let m = explain(
            Some("AccessDenied"),
            "User: arn:aws:iam::1:user/keda is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::1:role/demo-app",
            &r,
            "q",
            "sqs:GetQueueAttributes",
        );
        assert_eq!(m.kind, UpstreamKind::Auth);
        assert_eq!(m.code, Some(Code::Aws("AccessDenied".into())));
        let m = m.message;
        assert!(
            m.contains("(1) the trust policy of arn:aws:iam::1:role/demo-app")
                && m.contains("(2) Swell's own role"),
            "{m}"
        );
        let m = explain(
            Some("AccessDenied"),
            "denied",
            &Identity::Operator,
            "arn:aws:sqs:r:1:q",
            "sqs:GetQueueAttributes",
        );
        assert_eq!(m.category(), "auth");
        let m = m.message;
        assert!(
            m.contains("Swell's own identity lacks sqs:GetQueueAttributes on arn:aws:sqs:r:1:q"),
            "{m}"
        );
        let m = explain(
            None,
            "failed: AssumeRoleWithWebIdentity: AccessDenied",
            &Identity::Operator,
            "q",
            "a",
        );
        assert!(m.message.starts_with("WebIdentityErr"), "{m}");
        assert_eq!(m.kind, UpstreamKind::Auth);
        let failed = "an error occurred while loading credentials: No such file";
        let readable = WebIdentity::Token {
            path: "/var/run/secrets/eks.amazonaws.com/serviceaccount/token".into(),
            unreadable: None,
        };
        let m = explain_with(None, failed, &Identity::Operator, "q", "a", &readable);
        assert!(m.message.starts_with("WebIdentityErr"), "{m}");
        assert!(m.message.contains("trust policy"), "{m}");
        // A token that cannot be read is named, with the path; not the trust policy.
        let missing = WebIdentity::Token {
            path: "/var/run/secrets/eks.amazonaws.com/serviceaccount/token".into(),
            unreadable: Some("No such file or directory (os error 2)".into()),
        };
        for text in [
            failed,
            "failed: AssumeRoleWithWebIdentity: could not read token",
        ] {
            let m = explain_with(None, text, &Identity::Operator, "q", "a", &missing).message;
            assert!(
                m.starts_with(
                    "WebIdentityErr: Swell's own IRSA token cannot be read: AWS_WEB_IDENTITY_TOKEN_FILE=\
                     /var/run/secrets/eks.amazonaws.com/serviceaccount/token: No such file or directory"
                ) && m.contains("is the token mounted?")
                    && !m.contains("trust policy"),
                "{m}"
            );
        }
        // Static keys never use the token.
        let keys = Identity::Static {
            access_key_id: "AKIA".into(),
            secret_access_key: Secret::new("s"),
            session_token: None,
        };
        let m = explain_with(None, failed, &keys, "q", "a", &missing);
        assert!(!m.message.contains("token cannot be read"), "{m}");
        let m = explain_with(
            None,
            "an error occurred while loading credentials: No such file",
            &Identity::Operator,
            "q",
            "a",
            &WebIdentity::None,
        );
        assert!(!m.message.starts_with("WebIdentityErr"), "{m}");
        assert_eq!(m.kind, UpstreamKind::Auth);
    }

    /// Each AWS family's codes keep their kind, code and a message naming what to fix.
    #[test]
    fn codes_survive_into_the_error() {
        let table = [
            (
                "AccessDenied",
                "sqs:GetQueueAttributes",
                "auth",
                "lacks sqs:GetQueueAttributes",
            ),
            (
                "AccessDeniedException",
                "dynamodb:Query",
                "auth",
                "lacks dynamodb:Query",
            ),
            (
                "AWS.SimpleQueueService.NonExistentQueue",
                "sqs:GetQueueAttributes",
                "not_found",
                "NonExistentQueue",
            ),
            (
                "ResourceNotFoundException",
                "kinesis:DescribeStreamSummary",
                "not_found",
                "does not exist",
            ),
            (
                "InvalidClientTokenId",
                "cloudwatch:GetMetricData",
                "auth",
                "does not recognise the access key",
            ),
            (
                "SignatureDoesNotMatch",
                "cloudwatch:GetMetricData",
                "auth",
                "secret key",
            ),
            (
                "ThrottlingException",
                "kinesis:DescribeStreamSummary",
                "throttled",
                "ThrottlingException",
            ),
            (
                "InternalFailure",
                "sqs:GetQueueAttributes",
                "upstream",
                "InternalFailure",
            ),
        ];
        for (code, action, category, said) in table {
            let e = explain_with(
                Some(code),
                &format!("service error: {code}"),
                &Identity::Operator,
                "r",
                action,
                &WebIdentity::None,
            );
            assert_eq!(e.category(), category, "{code}");
            assert_eq!(e.code, Some(Code::Aws(code.into())), "{code}");
            assert!(e.message.contains(said), "{code}: {e}");
        }
    }
}
