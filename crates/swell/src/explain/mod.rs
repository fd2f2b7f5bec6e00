//! `swell explain NAMESPACE/NAME`: why a ScaledObject's target has the replicas it has.
//! Reads (with the user's kubeconfig) the ScaledObject, its HPA and the target's `/scale`,
//! asks the operator what only it knows (`/explain/NAMESPACE/NAME` on its metrics port),
//! and prints [`swell_scaling::explain::explain`]'s answer.

pub mod endpoint;
mod facts;
mod render;

use std::path::PathBuf;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject};
use swell_api::ScaledObject;
use swell_scaling::explain::{Explanation, Facts, LoopReport};

#[derive(clap::Args, Debug)]
pub struct ExplainArgs {
    /// The ScaledObject, as NAMESPACE/NAME.
    object: String,
    /// The operator's metrics port, e.g. `http://127.0.0.1:8080` through `kubectl
    /// port-forward`. Default: the API server's service proxy to --operator-service.
    #[arg(long)]
    operator: Option<String>,
    /// The operator's namespace, for the service proxy.
    #[arg(long, default_value = "keda")]
    operator_namespace: String,
    /// The operator's metrics Service and port as the service proxy names them
    /// (`[https:]NAME:PORT`; `https:` with the operator's `--metrics-tls`).
    #[arg(long, default_value = "keda-operator:metrics")]
    operator_service: String,
    /// A bearer token for --operator when the operator runs with --metrics-auth (the
    /// service proxy does not forward one).
    #[arg(long, env = "SWELL_OPERATOR_TOKEN", hide_env_values = true)]
    operator_token: Option<String>,
    /// Accept the self-signed certificate of an operator with --metrics-tls (--operator).
    #[arg(long)]
    insecure_skip_tls_verify: bool,
    /// Path to a kubeconfig; $KUBECONFIG or ~/.kube/config when unset.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long, value_parser = ["text", "json"], default_value = "text")]
    output: String,
}

/// Why `swell explain` could not explain; each names what to check.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("{0:?} is not NAMESPACE/NAME (e.g. `swell explain default/my-app`)")]
    Name(String),
    #[error("loading the kubeconfig: {0} (set --kubeconfig or $KUBECONFIG)")]
    Kubeconfig(String),
    #[error("reading ScaledObject {object}: {msg} (check the name and that you may get scaledobjects.keda.sh)", msg = swell_controller::kube_message(.source))]
    ScaledObject { object: String, source: kube::Error },
    #[error("reading HPA {name}: {msg} (you need get on horizontalpodautoscalers)", msg = swell_controller::kube_message(.source))]
    Hpa { name: String, source: kube::Error },
    #[error(
        "--operator {url:?}: {detail} (expected the operator's metrics address, e.g. http://127.0.0.1:8080)"
    )]
    OperatorUrl { url: String, detail: String },
    #[error(
        "{0} applies to --operator only (the service proxy uses your kubeconfig's credentials); add --operator URL or drop {0}"
    )]
    OnlyWithOperator(&'static str),
    #[error("writing the explanation: {0}")]
    Output(String),
}

/// Why the operator's report is missing; the explanation goes on without it.
#[derive(Debug, thiserror::Error)]
enum OperatorError {
    #[error("asking the operator through the service proxy {path}: {msg} (set --operator-namespace/--operator-service, or port-forward and use --operator)", msg = swell_controller::kube_message(.source))]
    Proxy { path: String, source: kube::Error },
    #[error("asking the operator at {url}: {detail}")]
    Direct { url: String, detail: String },
    #[error("the operator's answer from {from} is not a report: {detail}")]
    Decode { from: String, detail: String },
}

async fn client(path: Option<&PathBuf>) -> Result<Client, ExplainError> {
    let k = |e: &dyn std::fmt::Display| ExplainError::Kubeconfig(e.to_string());
    let config = match path {
        Some(p) => {
            let kc = kube::config::Kubeconfig::read_from(p).map_err(|e| k(&e))?;
            kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .map_err(|e| k(&e))?
        }
        None => kube::Config::infer().await.map_err(|e| k(&e))?,
    };
    Client::try_from(config).map_err(|e| k(&e))
}

/// The operator's report on `ns/name`, through the service proxy or `--operator`.
async fn operator_report(
    client: &Client,
    args: &ExplainArgs,
    ns: &str,
    name: &str,
) -> Result<LoopReport, OperatorError> {
    let path = format!("/explain/{ns}/{name}");
    let (from, body) = match &args.operator {
        Some(base) => {
            let url = format!("{}{path}", base.trim_end_matches('/'));
            let direct = |detail: String| OperatorError::Direct {
                url: url.clone(),
                detail,
            };
            let http = reqwest::Client::builder()
                .tls_danger_accept_invalid_certs(args.insecure_skip_tls_verify)
                .timeout(std::time::Duration::from_secs(10))
                .build()
                .map_err(|e| direct(e.to_string()))?;
            let mut req = http.get(&url);
            if let Some(t) = &args.operator_token {
                req = req.bearer_auth(t);
            }
            let resp = req.send().await.map_err(|e| direct(e.to_string()))?;
            let status = resp.status();
            let text = resp.text().await.map_err(|e| direct(e.to_string()))?;
            if !status.is_success() {
                return Err(direct(format!("HTTP {status}: {}", text.trim())));
            }
            (url, text)
        }
        None => {
            let proxy = format!(
                "/api/v1/namespaces/{}/services/{}/proxy{path}",
                args.operator_namespace, args.operator_service
            );
            let req =
                http::Request::get(&proxy)
                    .body(Vec::new())
                    .map_err(|e| OperatorError::Decode {
                        from: proxy.clone(),
                        detail: e.to_string(),
                    })?;
            let text = client
                .request_text(req)
                .await
                .map_err(|source| OperatorError::Proxy {
                    path: proxy.clone(),
                    source,
                })?;
            (proxy, text)
        }
    };
    serde_json::from_str(&body).map_err(|e| OperatorError::Decode {
        from,
        detail: e.to_string(),
    })
}

/// The target's `spec.replicas` through `/scale` (`None` when it cannot be read).
async fn target_replicas(client: &Client, so: &ScaledObject, ns: &str) -> Option<i32> {
    let gvkr = so.status.as_ref()?.scale_target_gvkr.as_ref()?;
    let api_version = if gvkr.group.is_empty() {
        gvkr.version.clone()
    } else {
        format!("{}/{}", gvkr.group, gvkr.version)
    };
    let ar = ApiResource {
        group: gvkr.group.clone(),
        version: gvkr.version.clone(),
        api_version,
        kind: gvkr.kind.clone(),
        plural: gvkr.resource.clone(),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    let scale = api.get_scale(&so.spec.scale_target_ref.name).await.ok()?;
    scale.spec.and_then(|s| s.replicas)
}

/// Everything explain needs; the operator's error, if it could not be asked, as a note.
async fn gather(
    client: &Client,
    args: &ExplainArgs,
    ns: &str,
    name: &str,
) -> Result<(Facts, Option<String>), ExplainError> {
    let so = Api::<ScaledObject>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .map_err(|source| ExplainError::ScaledObject {
            object: format!("{ns}/{name}"),
            source,
        })?;
    let hpa_name = so.hpa_name();
    let hpa = Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), ns)
        .get_opt(&hpa_name)
        .await
        .map_err(|source| ExplainError::Hpa {
            name: hpa_name,
            source,
        })?;
    let (operator, note) = match operator_report(client, args, ns, name).await {
        Ok(r) => (Some(r), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let facts = Facts {
        now: jiff::Timestamp::now(),
        object: facts::object(&so),
        current: target_replicas(client, &so, ns).await,
        hpa: hpa.as_ref().map(|h| facts::hpa(h, operator.as_ref())),
        operator,
    };
    Ok((facts, note))
}

/// `-o json`: the explanation, and the operator's report as it came.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonOut<'a> {
    #[serde(flatten)]
    explanation: &'a Explanation,
    operator: Option<&'a LoopReport>,
    operator_error: Option<&'a str>,
}

pub async fn run(args: &ExplainArgs) -> Result<(), ExplainError> {
    let (ns, name) = args
        .object
        .split_once('/')
        .filter(|(ns, n)| !ns.is_empty() && !n.is_empty() && !n.contains('/'))
        .ok_or_else(|| ExplainError::Name(args.object.clone()))?;
    if args.operator.is_none() {
        if args.operator_token.is_some() {
            return Err(ExplainError::OnlyWithOperator("--operator-token"));
        }
        if args.insecure_skip_tls_verify {
            return Err(ExplainError::OnlyWithOperator("--insecure-skip-tls-verify"));
        }
    }
    if let Some(url) = &args.operator
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return Err(ExplainError::OperatorUrl {
            url: url.clone(),
            detail: "not an http:// or https:// URL".into(),
        });
    }
    let client = client(args.kubeconfig.as_ref()).await?;
    let (facts, note) = gather(&client, args, ns, name).await?;
    let e = swell_scaling::explain::explain(&facts);
    let out = if args.output == "json" {
        let json = JsonOut {
            explanation: &e,
            operator: facts.operator.as_ref(),
            operator_error: note.as_deref(),
        };
        serde_json::to_string_pretty(&json).map_err(|e| ExplainError::Output(e.to_string()))? + "\n"
    } else {
        render::text(&facts, &e, note.as_deref())
    };
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(ExplainError::Output(e.to_string()))
        }
        _ => Ok(()),
    }
}
