use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The local Prometheus of this test process (see `hack/prometheus.sh`): the one named by
/// `SWELL_PROMETHEUS_URL`/`SWELL_PROMETHEUS_DIR`, or one started on first use with a
/// watchdog that stops it when this process exits.
#[derive(Debug)]
pub struct Prometheus {
    pub url: String,
    pub dir: PathBuf,
}

static SHARED: OnceLock<Prometheus> = OnceLock::new();

impl Prometheus {
    pub fn shared() -> &'static Prometheus {
        SHARED.get_or_init(|| {
            crate::from_env_or_started("prometheus.sh", &[], "Prometheus", Self::from_exports)
        })
    }

    fn from_exports(get: &dyn Fn(&str) -> anyhow::Result<String>) -> anyhow::Result<Prometheus> {
        Ok(Prometheus {
            url: get("SWELL_PROMETHEUS_URL")?,
            dir: PathBuf::from(get("SWELL_PROMETHEUS_DIR")?),
        })
    }

    /// Serves `swell_test_value <value>` on a loopback port and has Prometheus scrape it
    /// every second, labelled `target="<name>"`. Query it with [`ScrapeTarget::query`].
    pub async fn scrape_target(&self, name: &str, initial: f64) -> ScrapeTarget {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
        let value = Arc::new(Mutex::new(initial));
        let v = value.clone();
        let server = tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let v = v.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = tcp.read(&mut buf).await;
                    let value = v.lock().map(|g| *g).unwrap_or(f64::NAN);
                    let body = format!("# TYPE swell_test_value gauge\nswell_test_value {value}\n");
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tcp.write_all(resp.as_bytes()).await;
                    let _ = tcp.shutdown().await;
                });
            }
        });
        let file = self.dir.join("targets").join(format!("{name}.json"));
        let doc = serde_json::json!([{
            "targets": [format!("127.0.0.1:{port}")],
            "labels": {"target": name},
        }]);
        // Written aside and renamed, so Prometheus never reads half a file.
        let tmp = file.with_extension("tmp");
        std::fs::write(&tmp, doc.to_string())
            .and_then(|()| std::fs::rename(&tmp, &file))
            .unwrap_or_else(|e| panic!("writing {}: {e}", file.display()));
        ScrapeTarget {
            name: name.to_string(),
            value,
            file,
            server,
        }
    }

    /// Runs an instant query and returns the JSON answer's text.
    pub async fn query(&self, promql: &str) -> anyhow::Result<String> {
        let addr = self
            .url
            .strip_prefix("http://")
            .context("SWELL_PROMETHEUS_URL is not http://")?;
        let mut q = String::new();
        for b in promql.bytes() {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                q.push(b as char);
            } else {
                q.push_str(&format!("%{b:02X}"));
            }
        }
        let mut tcp = tokio::net::TcpStream::connect(addr).await?;
        let req = format!(
            "GET /api/v1/query?query={q} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        );
        tcp.write_all(req.as_bytes()).await?;
        let mut out = Vec::new();
        tcp.read_to_end(&mut out).await?;
        let text = String::from_utf8_lossy(&out).to_string();
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        Ok(body.to_string())
    }
}

/// A scrape target of the shared Prometheus; removed from it when dropped.
pub struct ScrapeTarget {
    pub name: String,
    value: Arc<Mutex<f64>>,
    file: PathBuf,
    server: tokio::task::JoinHandle<()>,
}

impl ScrapeTarget {
    pub fn set(&self, v: f64) {
        if let Ok(mut g) = self.value.lock() {
            *g = v;
        }
    }

    /// The PromQL selecting this target's value.
    pub fn query(&self) -> String {
        format!("swell_test_value{{target=\"{}\"}}", self.name)
    }
}

impl Drop for ScrapeTarget {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
        self.server.abort();
    }
}
