use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::Context as _;
use futures::FutureExt as _;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

/// One real local control plane (see `hack/cluster.sh`).
#[derive(Debug)]
pub struct Cluster {
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
    /// Directory with kubectl, helm and the control-plane binaries.
    pub bin: PathBuf,
}

static SHARED: OnceLock<Cluster> = OnceLock::new();

impl Cluster {
    /// The cluster of this test run: the one named by `SWELL_CLUSTER_DIR`, or one started
    /// now for this process and torn down when it exits.
    pub fn shared() -> &'static Cluster {
        SHARED.get_or_init(|| {
            Self::from_env()
                .or_else(|_| Self::start())
                .unwrap_or_else(|e| panic!("no local cluster: {e:#}"))
        })
    }

    fn from_env() -> anyhow::Result<Cluster> {
        let dir = std::env::var("SWELL_CLUSTER_DIR").context("SWELL_CLUSTER_DIR not set")?;
        Self::from_dir(Path::new(&dir))
    }

    fn from_dir(dir: &Path) -> anyhow::Result<Cluster> {
        let env = std::fs::read_to_string(dir.join("env"))
            .with_context(|| format!("{} holds no running cluster", dir.display()))?;
        Self::from_exports(&crate::parse_exports(&env))
    }

    fn from_exports(vars: &[(String, String)]) -> anyhow::Result<Cluster> {
        let get = |k: &str| {
            vars.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .with_context(|| format!("cluster env lacks {k}"))
        };
        let path = get("PATH")?;
        Ok(Cluster {
            dir: get("SWELL_CLUSTER_DIR")?.into(),
            kubeconfig: get("KUBECONFIG")?.into(),
            bin: path.split(':').next().unwrap_or_default().into(),
        })
    }

    fn start() -> anyhow::Result<Cluster> {
        let pid = std::process::id().to_string();
        let vars = crate::run_script("cluster.sh", &["up", "--owner-pid", &pid])?;
        Self::from_exports(&vars)
    }

    /// An admin (system:masters) client.
    pub async fn client(&self) -> Client {
        self.client_from(&self.kubeconfig).await
    }

    async fn client_from(&self, kubeconfig: &Path) -> Client {
        let kc = Kubeconfig::read_from(kubeconfig)
            .unwrap_or_else(|e| panic!("reading {}: {e}", kubeconfig.display()));
        let cfg = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .unwrap_or_else(|e| panic!("kubeconfig {}: {e}", kubeconfig.display()));
        Client::try_from(cfg).unwrap_or_else(|e| panic!("kube client: {e}"))
    }

    /// `kubectl` bound to this cluster.
    pub fn kubectl(&self) -> std::process::Command {
        let mut c = std::process::Command::new(self.bin.join("kubectl"));
        c.env("KUBECONFIG", &self.kubeconfig);
        c
    }

    /// Mints a token for a ServiceAccount through the TokenRequest API.
    pub async fn token(&self, namespace: &str, service_account: &str) -> String {
        let api: Api<ServiceAccount> = Api::namespaced(self.client().await, namespace);
        let req = TokenRequest {
            spec: Some(TokenRequestSpec {
                audiences: None,
                expiration_seconds: Some(3600),
                bound_object_ref: None,
            }),
            ..Default::default()
        };
        let resp: TokenRequest = api
            .create_subresource("token", service_account, &PostParams::default(), &req)
            .await
            .unwrap_or_else(|e| panic!("TokenRequest for {namespace}/{service_account}: {e}"));
        resp.status.and_then(|s| s.token).unwrap_or_default()
    }

    /// Writes a kubeconfig that authenticates as a ServiceAccount, so a process can be run
    /// with exactly the RBAC that account has.
    pub async fn service_account_kubeconfig(
        &self,
        namespace: &str,
        service_account: &str,
    ) -> PathBuf {
        let token = self.token(namespace, service_account).await;
        let admin = std::fs::read_to_string(&self.kubeconfig).unwrap_or_default();
        let cluster_part = admin.split("users:").next().unwrap_or_default();
        let text = format!(
            "{cluster_part}users:\n- name: sa\n  user:\n    token: {token}\ncontexts:\n- name: sa\n  context: {{cluster: swell-local, user: sa, namespace: {namespace}}}\ncurrent-context: sa\n"
        );
        let path = self
            .dir
            .join(format!("sa-{namespace}-{service_account}.kubeconfig"));
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        path
    }

    /// A client that authenticates as a ServiceAccount.
    pub async fn service_account_client(&self, namespace: &str, service_account: &str) -> Client {
        let path = self
            .service_account_kubeconfig(namespace, service_account)
            .await;
        self.client_from(&path).await
    }

    /// Creates a fresh namespace for one test.
    pub async fn namespace(&self, prefix: &str) -> TestNamespace {
        let name = format!("{prefix}-{}", crate::unique_suffix());
        let client = self.client().await;
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {"swell.dev/test": "true"}}
        }))
        .unwrap_or_default();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
        TestNamespace { name, client }
    }

    /// Runs `test` in a fresh namespace and deletes the namespace afterwards, pass or fail.
    pub async fn with_namespace<F, Fut>(&self, prefix: &str, test: F)
    where
        F: FnOnce(TestNamespace) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let ns = self.namespace(prefix).await;
        let (name, client) = (ns.name.clone(), ns.client.clone());
        let outcome = std::panic::AssertUnwindSafe(test(ns)).catch_unwind().await;
        let _ = Api::<Namespace>::all(client)
            .delete(&name, &DeleteParams::background())
            .await;
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }
}

/// A namespace that belongs to one test.
#[derive(Clone)]
pub struct TestNamespace {
    pub name: String,
    pub client: Client,
}

impl TestNamespace {
    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// Applies YAML (one or more documents) with kubectl into this namespace.
    pub fn apply(&self, cluster: &Cluster, yaml: &str) -> anyhow::Result<String> {
        use std::io::Write as _;
        let mut child = cluster
            .kubectl()
            .args(["apply", "-n", &self.name, "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .context("starting kubectl")?;
        child
            .stdin
            .take()
            .context("kubectl stdin")?
            .write_all(yaml.as_bytes())?;
        let out = child.wait_with_output()?;
        if !out.status.success() {
            anyhow::bail!("kubectl apply: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}
