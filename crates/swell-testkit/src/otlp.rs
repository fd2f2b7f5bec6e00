//! A local OTLP/HTTP metrics receiver (`hack/otlp-receiver`, built by
//! `hack/build-otlp-receiver.sh`): a child of the test, which also exits when the test
//! process does (its standard input closes), so nothing is left behind.

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

pub struct OtlpReceiver {
    child: Child,
    /// `http://127.0.0.1:PORT`, for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub endpoint: String,
    out: PathBuf,
}

/// One data point of one instrument as received: value and string/bool attributes.
#[derive(Clone, Debug)]
pub struct Point {
    pub value: f64,
    pub attributes: Vec<(String, String)>,
}

impl OtlpReceiver {
    pub fn start() -> OtlpReceiver {
        // `make test` builds it up front; a test run on its own builds it (cached).
        let bin = std::env::var("SWELL_OTLP_RECEIVER").unwrap_or_else(|_| {
            let script = crate::repo_root().join("hack/build-otlp-receiver.sh");
            let built = Command::new(&script)
                .stderr(Stdio::inherit())
                .output()
                .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
            assert!(built.status.success(), "{} failed", script.display());
            String::from_utf8_lossy(&built.stdout).trim().to_string()
        });
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let out = std::env::temp_dir().join(format!("swell-otlp-{}-{n}.jsonl", std::process::id()));
        let mut child = Command::new(&bin)
            .args(["-addr", "127.0.0.1:0", "-out"])
            .arg(&out)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {bin}: {e}"));
        let mut line = String::new();
        if let Some(stdout) = child.stdout.take() {
            let _ = BufReader::new(stdout).read_line(&mut line);
        }
        let addr = line
            .trim()
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("the OTLP receiver said {line:?}"))
            .to_string();
        OtlpReceiver {
            child,
            endpoint: format!("http://{addr}"),
            out,
        }
    }

    /// Every data point received so far for the instrument `name`.
    pub fn points(&self, name: &str) -> Vec<Point> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        let mut points = Vec::new();
        for export in text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        {
            let metrics = export["resourceMetrics"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|r| r["scopeMetrics"].as_array().into_iter().flatten())
                .flat_map(|s| s["metrics"].as_array().into_iter().flatten())
                .filter(|m| m["name"] == name);
            for m in metrics {
                for kind in ["gauge", "sum", "histogram"] {
                    for p in m[kind]["dataPoints"].as_array().into_iter().flatten() {
                        points.push(point(p));
                    }
                }
            }
        }
        points
    }
}

fn point(p: &Value) -> Point {
    // protojson writes int64 as a string; histograms carry a count.
    let number = |v: &Value| v.as_f64().or_else(|| v.as_str()?.parse().ok());
    let value = number(&p["asDouble"])
        .or_else(|| number(&p["asInt"]))
        .or_else(|| number(&p["count"]))
        .unwrap_or(f64::NAN);
    let attributes = p["attributes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            let v = &a["value"];
            let shown = v["stringValue"]
                .as_str()
                .map(str::to_string)
                .or_else(|| v["boolValue"].as_bool().map(|b| b.to_string()))
                .unwrap_or_else(|| v.to_string());
            (a["key"].as_str().unwrap_or_default().to_string(), shown)
        })
        .collect();
    Point { value, attributes }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.out);
    }
}
