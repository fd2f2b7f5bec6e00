//! `TriggerAuthentication` and `ClusterTriggerAuthentication`: where triggers get credentials.

use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// TriggerAuthenticationSpec defines the various ways to authenticate
// clippy reads the repeated `printcolumn(type_ = …)` arguments as duplicate attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "keda.sh",
    version = "v1alpha1",
    kind = "TriggerAuthentication",
    plural = "triggerauthentications",
    singular = "triggerauthentication",
    shortname = "ta",
    shortname = "triggerauth",
    namespaced,
    status = "TriggerAuthenticationStatus",
    derive = "PartialEq",
    doc = "TriggerAuthentication defines how a trigger can authenticate",
    printcolumn(
        name = "PodIdentity",
        type_ = "string",
        json_path = ".spec.podIdentity.provider"
    ),
    printcolumn(
        name = "Secret",
        type_ = "string",
        json_path = ".spec.secretTargetRef[*].name"
    ),
    printcolumn(name = "Env", type_ = "string", json_path = ".spec.env[*].name"),
    printcolumn(
        name = "VaultAddress",
        type_ = "string",
        json_path = ".spec.hashiCorpVault.address"
    ),
    printcolumn(
        name = "ScaledObjects",
        type_ = "string",
        json_path = ".status.scaledobjects",
        priority = 1
    ),
    printcolumn(
        name = "ScaledJobs",
        type_ = "string",
        json_path = ".status.scaledjobs",
        priority = 1
    )
)]
#[serde(rename_all = "camelCase")]
pub struct TriggerAuthenticationSpec {
    /// AuthPodIdentity allows users to select the platform native identity
    /// mechanism
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_identity: Option<AuthPodIdentity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_target_ref: Option<Vec<AuthSecretTargetRef>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<AuthEnvironment>>,
    /// HashiCorpVault is used to authenticate using Hashicorp Vault
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hashi_corp_vault: Option<HashiCorpVault>,
    /// AzureServicePrincipal defines Microsoft Entra service principal credentials
    /// that can be shared by Azure scalers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub azure_service_principal: Option<AzureServicePrincipal>,
    /// AzureKeyVault is used to authenticate using Azure Key Vault
    #[serde(skip_serializing_if = "Option::is_none")]
    pub azure_key_vault: Option<AzureKeyVault>,
    /// AwsSecretManager is used to authenticate using AwsSecretManager
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws_secret_manager: Option<AwsSecretManager>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gcp_secret_manager: Option<GcpSecretManager>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_map_target_ref: Option<Vec<AuthConfigMapTargetRef>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bound_service_account_token: Option<Vec<BoundServiceAccountToken>>,
    /// FilePath specifies a file containing auth parameters as JSON `map[string]string`.
    /// When set, auth params are read directly from this file instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_path: Option<String>,
    #[serde(rename = "oauth2", skip_serializing_if = "Option::is_none")]
    pub oauth2: Option<OAuth2>,
}

/// ClusterTriggerAuthentication shares TriggerAuthentication's spec; the wrapper exists only
/// because the derive needs one spec type per kind. It derefs to [`TriggerAuthenticationSpec`].
// clippy reads the repeated `printcolumn(type_ = …)` arguments as duplicate attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "keda.sh",
    version = "v1alpha1",
    kind = "ClusterTriggerAuthentication",
    plural = "clustertriggerauthentications",
    singular = "clustertriggerauthentication",
    shortname = "cta",
    shortname = "clustertriggerauth",
    status = "TriggerAuthenticationStatus",
    derive = "PartialEq",
    doc = "ClusterTriggerAuthentication defines how a trigger can authenticate globally",
    printcolumn(
        name = "PodIdentity",
        type_ = "string",
        json_path = ".spec.podIdentity.provider"
    ),
    printcolumn(
        name = "Secret",
        type_ = "string",
        json_path = ".spec.secretTargetRef[*].name"
    ),
    printcolumn(name = "Env", type_ = "string", json_path = ".spec.env[*].name"),
    printcolumn(name = "FilePath", type_ = "string", json_path = ".spec.filePath"),
    printcolumn(
        name = "VaultAddress",
        type_ = "string",
        json_path = ".spec.hashiCorpVault.address"
    ),
    printcolumn(
        name = "ScaledObjects",
        type_ = "string",
        json_path = ".status.scaledobjects",
        priority = 1
    ),
    printcolumn(
        name = "ScaledJobs",
        type_ = "string",
        json_path = ".status.scaledjobs",
        priority = 1
    )
)]
#[serde(transparent)]
#[schemars(transparent)]
pub struct ClusterTriggerAuthenticationSpec(pub TriggerAuthenticationSpec);

impl Deref for ClusterTriggerAuthenticationSpec {
    type Target = TriggerAuthenticationSpec;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for ClusterTriggerAuthenticationSpec {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl From<TriggerAuthenticationSpec> for ClusterTriggerAuthenticationSpec {
    fn from(spec: TriggerAuthenticationSpec) -> Self {
        Self(spec)
    }
}

/// TriggerAuthenticationStatus defines the observed state of TriggerAuthentication
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TriggerAuthenticationStatus {
    /// Comma-joined names of the ScaledObjects using this authentication.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scaledobjects: Option<String>,
    /// Comma-joined names of the ScaledJobs using this authentication.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scaledjobs: Option<String>,
}

/// AuthPodIdentity allows users to select the platform native identity
/// mechanism
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthPodIdentity {
    /// PodIdentityProvider contains the list of providers
    pub provider: PodIdentityProvider,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_id: Option<String>,
    /// Set identityTenantId to override the default Azure tenant id. If this is set, then the IdentityID must also be set
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_tenant_id: Option<String>,
    /// Set identityAuthorityHost to override the default Azure authority host. If this is set, then the IdentityTenantID must also be set
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_authority_host: Option<String>,
    /// RoleArn sets the AWS RoleArn to be used. Mutually exclusive with IdentityOwner
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// ExternalID sets the External ID to be used when assuming an identity. This is only applicable when using AWS pod identity with a RoleArn.
    #[serde(rename = "externalID", skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// IdentityOwner configures which identity has to be used during auto discovery, keda or the scaled workload. Mutually exclusive with roleArn
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_owner: Option<IdentityOwner>,
}

impl AuthPodIdentity {
    /// `identityOwner` with KEDA's default (`keda`) applied.
    pub fn identity_owner(&self) -> IdentityOwner {
        self.identity_owner.unwrap_or_default()
    }

    /// `roleArn` when set and non-empty (KEDA treats "" as unset).
    pub fn role_arn(&self) -> Option<&str> {
        self.role_arn.as_deref().filter(|s| !s.is_empty())
    }

    /// `externalID` when set and non-empty (KEDA treats "" as unset).
    pub fn external_id(&self) -> Option<&str> {
        self.external_id.as_deref().filter(|s| !s.is_empty())
    }
}

/// PodIdentityProvider contains the list of providers
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum PodIdentityProvider {
    #[serde(rename = "azure-workload")]
    AzureWorkload,
    #[serde(rename = "gcp")]
    Gcp,
    #[serde(rename = "aws")]
    Aws,
    // Deprecated in KEDA ("will be removed in v3"); prefer `aws`.
    #[serde(rename = "aws-eks")]
    AwsEks,
    #[default]
    #[serde(rename = "none")]
    None,
}

/// Whose identity is used for pod identity: KEDA's own, or the scaled workload's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum IdentityOwner {
    #[default]
    Keda,
    Workload,
}

/// AuthSecretTargetRef is used to authenticate using a reference to a secret
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthSecretTargetRef {
    pub parameter: String,
    pub name: String,
    pub key: String,
}

/// AuthConfigMapTargetRef is used to authenticate using a reference to a config map
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthConfigMapTargetRef {
    pub parameter: String,
    pub name: String,
    pub key: String,
}

/// AuthEnvironment is used to authenticate using environment variables
/// in the destination ScaleTarget spec
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthEnvironment {
    pub parameter: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
}

/// HashiCorpVault is used to authenticate using Hashicorp Vault
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HashiCorpVault {
    pub address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// VaultAuthentication contains the list of Hashicorp Vault authentication methods
    pub authentication: VaultAuthentication,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mount: Option<String>,
    /// Credential defines the Hashicorp Vault credentials depending on the authentication method
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<Credential>,
    #[schemars(length(min = 1))]
    pub secrets: Vec<VaultSecret>,
}

/// VaultAuthentication contains the list of Hashicorp Vault authentication methods
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum VaultAuthentication {
    #[default]
    Token,
    Kubernetes,
}

/// Credential defines the Hashicorp Vault credentials depending on the authentication method
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Credential {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Path of a service account token file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
}

/// VaultSecret defines the mapping between the path of the secret in Vault to the parameter
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultSecret {
    pub parameter: String,
    pub path: String,
    pub key: String,
    /// VaultSecretType defines the type of vault secret
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<VaultSecretType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pki_data: Option<VaultPkiData>,
}

/// VaultSecretType defines the type of vault secret
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum VaultSecretType {
    // KEDA allows the empty string, meaning "detect from the engine".
    #[default]
    #[serde(rename = "")]
    Unset,
    #[serde(rename = "secretV2")]
    SecretV2,
    #[serde(rename = "secret")]
    Secret,
    #[serde(rename = "pki")]
    Pki,
}

/// Parameters for issuing a certificate from Vault's PKI engine.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultPkiData {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub common_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alt_names: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_sans: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri_sans: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other_sans: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

/// KEDA 2.21's Microsoft Entra service principal, shared by Azure scalers. In the schema so
/// the API server keeps it; Swell has no Azure scaler yet and refuses it by name.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzureServicePrincipal {
    pub client_id: String,
    pub tenant_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<ValueFromSecret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<ValueFromSecret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_certificate_password: Option<ValueFromSecret>,
    /// Cloud specifies the Azure cloud environment. Defaults to AzurePublicCloud.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud: Option<String>,
    /// ActiveDirectoryEndpoint is required when cloud is set to Private.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_directory_endpoint: Option<String>,
}

/// AzureKeyVault is used to authenticate using Azure Key Vault
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzureKeyVault {
    pub vault_uri: String,
    #[schemars(length(min = 1))]
    pub secrets: Vec<AzureKeyVaultSecret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials: Option<AzureKeyVaultCredentials>,
    /// AuthPodIdentity allows users to select the platform native identity
    /// mechanism
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_identity: Option<AuthPodIdentity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud: Option<AzureKeyVaultCloudInfo>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzureKeyVaultSecret {
    pub parameter: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzureKeyVaultCredentials {
    pub client_id: String,
    pub tenant_id: String,
    pub client_secret: ValueFromSecret,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzureKeyVaultCloudInfo {
    /// `AzurePublicCloud`, `AzureChinaCloud`, … or `Private` with the two endpoints below.
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(
        rename = "keyVaultResourceURL",
        skip_serializing_if = "Option::is_none"
    )]
    pub key_vault_resource_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_directory_endpoint: Option<String>,
}

/// A value read from a key of a Secret in the authentication's namespace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValueFromSecret {
    pub value_from: ValueFrom,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValueFrom {
    pub secret_key_ref: SecretKeyRef,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    pub name: String,
    pub key: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcpSecretManager {
    #[schemars(length(min = 1))]
    pub secrets: Vec<GcpSecretManagerSecret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials: Option<GcpCredentials>,
    /// AuthPodIdentity allows users to select the platform native identity
    /// mechanism
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_identity: Option<AuthPodIdentity>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcpSecretManagerSecret {
    pub parameter: String,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcpCredentials {
    pub client_secret: ValueFromSecret,
}

/// AwsSecretManager is used to authenticate using AwsSecretManager
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsSecretManager {
    #[schemars(length(min = 1))]
    pub secrets: Vec<AwsSecretManagerSecret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials: Option<AwsSecretManagerCredentials>,
    /// AuthPodIdentity allows users to select the platform native identity
    /// mechanism
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_identity: Option<AuthPodIdentity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsSecretManagerCredentials {
    pub access_key: ValueFromSecret,
    pub access_secret_key: ValueFromSecret,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_token: Option<ValueFromSecret>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsSecretManagerSecret {
    pub parameter: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_stage: Option<String>,
    /// Key inside a JSON secret value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_key: Option<String>,
}

/// A service account token requested through the TokenRequest API.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BoundServiceAccountToken {
    pub parameter: String,
    pub service_account_name: String,
}

/// OAuth2 client-credentials flow; the token is passed to the scaler as a bearer token.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OAuth2 {
    // Required in the CRD but defaulted by the API server, so stored objects always have it.
    #[serde(rename = "type")]
    #[schemars(extend("default" = "clientCredentials"))]
    pub type_: OAuth2GrantType,
    pub client_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<ValueFromSecret>,
    pub token_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_url_params: Option<BTreeMap<String, String>>,
}

impl OAuth2 {
    /// The trigger parameters the block provides, with their values, as KEDA's resolver
    /// sets them (`scale_resolvers.go`): `clientSecret` is the value read from the Secret,
    /// scopes are comma-joined and `tokenUrlParams` URL-encoded into `endpointParams`.
    pub fn parameters(&self, client_secret: String) -> Vec<(&'static str, String)> {
        let mut out = vec![
            ("oauthTokenURI", self.token_url.clone()),
            ("clientID", self.client_id.clone()),
            ("clientSecret", client_secret),
        ];
        if let Some(scopes) = self.scopes.as_ref().filter(|s| !s.is_empty()) {
            out.push(("scopes", scopes.join(",")));
        }
        if let Some(params) = self.token_url_params.as_ref().filter(|p| !p.is_empty()) {
            let mut q = form_urlencoded::Serializer::new(String::new());
            q.extend_pairs(params);
            out.push(("endpointParams", q.finish()));
        }
        out
    }
}

/// The OAuth2 grant; KEDA only supports client credentials.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum OAuth2GrantType {
    #[default]
    ClientCredentials,
}
