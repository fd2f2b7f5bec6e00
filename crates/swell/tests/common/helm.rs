//! Running helm (and other commands) against the test cluster, for the chart's tests.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use swell_testkit::Cluster;

pub fn chart_dir() -> PathBuf {
    swell_testkit::repo_root().join("charts/swell")
}

/// The output of a finished command.
pub struct Ran {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

pub fn run(cmd: &mut Command, stdin: Option<&str>) -> Ran {
    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    Ran {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn helm(cluster: &Cluster) -> Command {
    let mut c = Command::new(cluster.bin.join("helm"));
    c.env("KUBECONFIG", &cluster.kubeconfig)
        // Keep Helm's caches and config out of the user's home.
        .env("HELM_CACHE_HOME", cluster.dir.join("helm/cache"))
        .env("HELM_CONFIG_HOME", cluster.dir.join("helm/config"))
        .env("HELM_DATA_HOME", cluster.dir.join("helm/data"));
    c
}
