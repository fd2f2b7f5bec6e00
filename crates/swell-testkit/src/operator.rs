use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::Cluster;

static CRDS: OnceLock<()> = OnceLock::new();

impl Cluster {
    /// Installs Swell's CRDs (from `swell crds`) once per process; idempotent across runs.
    pub fn install_crds(&self, swell: &Path) {
        CRDS.get_or_init(|| {
            let crds = Command::new(swell)
                .arg("crds")
                .output()
                .unwrap_or_else(|e| panic!("running swell crds: {e}"));
            assert!(
                crds.status.success(),
                "swell crds: {}",
                String::from_utf8_lossy(&crds.stderr)
            );
            let mut apply = self
                .kubectl()
                .args(["apply", "--server-side", "--force-conflicts", "-f", "-"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("kubectl: {e}"));
            if let Some(mut stdin) = apply.stdin.take() {
                use std::io::Write as _;
                let _ = stdin.write_all(&crds.stdout);
            }
            let status = apply.wait().unwrap_or_else(|e| panic!("kubectl: {e}"));
            assert!(status.success(), "applying CRDs failed");
            // kubectl 1.36's `wait` errors out instead of waiting while a fresh CRD has no
            // status.conditions yet, so retry it.
            let mut last = String::new();
            for _ in 0..300 {
                let wait = self
                    .kubectl()
                    .args([
                        "wait",
                        "--for=condition=Established",
                        "--timeout=60s",
                        "crd/scaledobjects.keda.sh",
                        "crd/scaledjobs.keda.sh",
                        "crd/triggerauthentications.keda.sh",
                        "crd/clustertriggerauthentications.keda.sh",
                        "crd/cloudeventsources.eventing.keda.sh",
                        "crd/clustercloudeventsources.eventing.keda.sh",
                    ])
                    .output()
                    .unwrap_or_else(|e| panic!("kubectl wait: {e}"));
                if wait.status.success() {
                    return;
                }
                last = String::from_utf8_lossy(&wait.stderr).to_string();
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            panic!("CRDs not established: {last}");
        });
    }
}

/// A `swell operator` process, killed when dropped. Its log is kept in the cluster's
/// state directory and its tail is printed if the test fails.
pub struct Operator {
    child: Child,
    pub log: PathBuf,
}

impl Operator {
    /// Starts `swell operator` watching `namespace`, with extra arguments.
    pub fn start(
        cluster: &Cluster,
        swell: &Path,
        namespace: &str,
        kubeconfig: Option<&Path>,
        extra: &[&str],
    ) -> Operator {
        Self::start_env(cluster, swell, namespace, kubeconfig, extra, &[])
    }

    /// Like [`Operator::start`], with extra environment (e.g. Swell's own AWS identity).
    /// AWS credentials of the test process are not inherited.
    pub fn start_env(
        cluster: &Cluster,
        swell: &Path,
        namespace: &str,
        kubeconfig: Option<&Path>,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Operator {
        let log = cluster.dir.join(format!(
            "operator-{namespace}-{}.log",
            crate::unique_suffix()
        ));
        let file = std::fs::File::create(&log)
            .unwrap_or_else(|e| panic!("creating {}: {e}", log.display()));
        let err = file.try_clone().unwrap_or_else(|e| panic!("log file: {e}"));
        let child = Command::new(swell)
            .args([
                "--log-level",
                "info,swell=debug,swell_controller=debug",
                "operator",
                "--watch-namespace",
                namespace,
            ])
            .arg("--kubeconfig")
            .arg(kubeconfig.unwrap_or(&cluster.kubeconfig))
            .args([
                "--metrics-bind-address",
                "127.0.0.1:0",
                "--metrics-api-bind-address",
                "127.0.0.1:0",
                "--metrics-api-apiservice",
                "",
                "--namespace",
                namespace,
            ])
            .args(extra)
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .envs(env.iter().copied())
            .stdout(file)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", swell.display()));
        Operator { child, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The address the operator logged for /metrics and health (plain HTTP unless it runs
    /// with `--metrics-tls`).
    pub fn metrics_addr(&self) -> Option<String> {
        let text = self.log_text();
        let line = text.lines().find(|l| l.contains("serving /metrics over"))?;
        let i = line.find("addr=")?;
        let rest = &line[i + 5..];
        Some(
            rest.split(|c: char| c.is_whitespace() || c == '\u{1b}')
                .next()?
                .to_string(),
        )
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let text = self.log_text();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            eprintln!("--- last lines of {} ---", self.log.display());
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

/// What a [`MetricServer`] answers.
#[derive(Clone, Debug)]
pub enum Reply {
    /// `{"value": N}`.
    Value(f64),
    /// This JSON body, as it is.
    Json(String),
    Fail(u16),
    /// Accept the request and never answer (a source that hangs).
    Hang,
    /// `{"value": N}`, after this long (a slow source).
    Slow(std::time::Duration, f64),
}

/// A tiny HTTP server on 127.0.0.1 answering `{"value": N}` for the `metrics-api` scaler.
pub struct MetricServer {
    pub url: String,
    reply: Arc<Mutex<Reply>>,
    requests: Arc<Mutex<u64>>,
    bearer: Arc<Mutex<Option<Bearer>>>,
    last_bearer: Arc<Mutex<Option<String>>>,
}

/// The bearer token a [`MetricServer`] wants.
#[derive(Clone, Debug)]
enum Bearer {
    Exact(String),
    /// Any token, so long as one is sent (tokens the test cannot know in advance).
    Some,
}

impl MetricServer {
    pub async fn start(initial: f64) -> MetricServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
        let reply = Arc::new(Mutex::new(Reply::Value(initial)));
        let requests = Arc::new(Mutex::new(0u64));
        let bearer: Arc<Mutex<Option<Bearer>>> = Arc::default();
        let last_bearer: Arc<Mutex<Option<String>>> = Arc::default();
        let (r, n, b, seen) = (
            reply.clone(),
            requests.clone(),
            bearer.clone(),
            last_bearer.clone(),
        );
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let (r, n, b, seen) = (r.clone(), n.clone(), b.clone(), seen.clone());
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let len = tcp.read(&mut buf).await.unwrap_or(0);
                    let raw = String::from_utf8_lossy(&buf[..len]).into_owned();
                    let head = raw.to_ascii_lowercase();
                    if let Ok(mut n) = n.lock() {
                        *n += 1;
                    }
                    // The token as sent (header names and the scheme are case-insensitive).
                    let prefix = "authorization: bearer ";
                    let sent = raw
                        .lines()
                        .find(|l| l.to_ascii_lowercase().starts_with(prefix))
                        .and_then(|l| l.get(prefix.len()..))
                        .map(|t| t.trim().to_string());
                    if let (Some(t), Ok(mut seen)) = (sent.clone(), seen.lock()) {
                        *seen = Some(t);
                    }
                    let want = b.lock().ok().and_then(|g| g.clone());
                    let authorized = match want {
                        None => true,
                        Some(Bearer::Some) => sent.is_some(),
                        Some(Bearer::Exact(t)) => head
                            .contains(&format!("authorization: bearer {}", t.to_ascii_lowercase())),
                    };
                    let reply = if authorized {
                        r.lock().map(|g| g.clone()).unwrap_or(Reply::Fail(500))
                    } else {
                        Reply::Fail(401)
                    };
                    let (status, body) = match reply {
                        Reply::Value(v) => (200, format!("{{\"value\": {v}}}")),
                        Reply::Json(body) => (200, body),
                        Reply::Hang => {
                            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
                            return;
                        }
                        Reply::Fail(code) => (code, "{\"error\": \"down\"}".to_string()),
                        Reply::Slow(after, v) => {
                            tokio::time::sleep(after).await;
                            (200, format!("{{\"value\": {v}}}"))
                        }
                    };
                    let resp = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tcp.write_all(resp.as_bytes()).await;
                    let _ = tcp.shutdown().await;
                });
            }
        });
        MetricServer {
            url: format!("http://127.0.0.1:{port}/metric"),
            reply,
            requests,
            bearer,
            last_bearer,
        }
    }

    /// From now on, answer whatever bearer token is sent (or none).
    pub fn accept_any_bearer(&self) {
        if let Ok(mut b) = self.bearer.lock() {
            *b = None;
        }
    }

    /// The bearer token of the last request, as sent, if it sent one.
    pub fn last_bearer(&self) -> Option<String> {
        self.last_bearer.lock().ok().and_then(|b| b.clone())
    }

    /// From now on, answer 401 unless `Authorization: Bearer <token>` is sent.
    pub fn require_bearer(&self, token: &str) {
        if let Ok(mut b) = self.bearer.lock() {
            *b = Some(Bearer::Exact(token.to_string()));
        }
    }

    /// From now on, answer 401 unless some bearer token is sent.
    pub fn require_some_bearer(&self) {
        if let Ok(mut b) = self.bearer.lock() {
            *b = Some(Bearer::Some);
        }
    }

    pub fn set(&self, reply: Reply) {
        if let Ok(mut r) = self.reply.lock() {
            *r = reply;
        }
    }

    pub fn requests(&self) -> u64 {
        self.requests.lock().map(|n| *n).unwrap_or_default()
    }
}
