//! EKS Pod Identity for `identityOwner: workload` (KEDA's keda#6418 / keda#6706): a
//! workload whose ServiceAccount has no `eks.amazonaws.com/role-arn` annotation may still
//! have a role, from an EKS Pod Identity association of the cluster, namespace and
//! ServiceAccount. Swell finds it with its own identity (`eks:ListPodIdentityAssociations`,
//! `eks:DescribePodIdentityAssociation`) and then assumes it as it assumes an annotated role.

use std::time::Duration;

use super::{AwsClients, Call, Identity, Operation, SdkSettings};
use crate::upstream::{UpstreamError, UpstreamKind};

const LIST: Operation = Operation::new("eks", "ListPodIdentityAssociations");
const DESCRIBE: Operation = Operation::new("eks", "DescribePodIdentityAssociation");

/// An association's role is read again after this long (associations rarely change; a
/// failed lookup is not kept, so a fixed permission takes effect at the next reconcile).
pub const ROLE_TTL: Duration = Duration::from_secs(300);

/// The EKS cluster Swell runs in (`--eks-cluster-name`, chart `aws.eksClusterName`) and the
/// region of its EKS API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EksCluster {
    pub name: String,
    pub region: String,
}

impl AwsClients {
    /// The cluster configured for EKS Pod Identity lookups.
    pub fn eks_cluster(&self) -> Option<&EksCluster> {
        self.eks_cluster.as_ref()
    }

    /// The role of `namespace/service_account`'s EKS Pod Identity association; `Ok(None)`
    /// when no cluster is configured or the ServiceAccount has no association.
    pub async fn pod_identity_role(
        &self,
        namespace: &str,
        service_account: &str,
    ) -> Result<Option<String>, UpstreamError> {
        let Some(cluster) = self.eks_cluster.clone() else {
            return Ok(None);
        };
        let key = format!("{}|{namespace}|{service_account}", cluster.name);
        let (role, _) = self
            .pod_identity_roles
            .get(&key, ROLE_TTL, || {
                self.lookup_role(&cluster, namespace, service_account)
            })
            .await;
        if role.is_err() {
            self.pod_identity_roles.forget(&key);
        }
        role
    }

    async fn lookup_role(
        &self,
        cluster: &EksCluster,
        namespace: &str,
        service_account: &str,
    ) -> Result<Option<String>, UpstreamError> {
        let sdk = SdkSettings::default();
        let identity = Identity::Operator;
        let client = self
            .client(
                &identity,
                &cluster.region,
                None,
                &sdk,
                aws_sdk_eks::Client::new,
            )
            .await;
        let resource = format!(
            "the EKS Pod Identity associations of ServiceAccount {namespace}/{service_account} in cluster {}",
            cluster.name
        );
        let call = |operation| Call {
            identity: &identity,
            region: &cluster.region,
            sdk: &sdk,
            operation,
            resource: &resource,
        };
        let list = client
            .list_pod_identity_associations()
            .cluster_name(&cluster.name)
            .namespace(namespace)
            .service_account(service_account);
        let listed = self.call(&call(LIST), 1.0, || list.send()).await?;
        let Some(id) = listed
            .associations
            .unwrap_or_default()
            .into_iter()
            .find_map(|a| a.association_id)
        else {
            return Ok(None);
        };
        let describe = client
            .describe_pod_identity_association()
            .cluster_name(&cluster.name)
            .association_id(&id);
        let described = self.call(&call(DESCRIBE), 1.0, || describe.send()).await?;
        let role = described.association.and_then(|a| a.role_arn);
        role.map(Some).ok_or_else(|| {
            UpstreamError::new(
                UpstreamKind::BadResponse,
                format!("EKS Pod Identity association {id} of {resource} has no roleArn"),
            )
        })
    }
}
