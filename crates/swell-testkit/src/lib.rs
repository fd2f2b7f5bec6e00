//! Test support for Swell's end-to-end tests.
//!
//! Every test run shares one real control plane and one local AWS: `make test` starts them
//! and exports their settings; a test binary run on its own (plain `cargo test`) starts its
//! own through the same scripts, and a watchdog tears them down when the process exits.
//! Each test gets its own namespace ([`TestNamespace`]) and waits with [`wait_until`], which
//! says what it last saw when it gives up.

mod activemq;
mod artemis;
mod aws;
mod azurite;
mod cluster;
mod etcd;
mod kafka;
mod mysql;
mod nats;
mod oauth;
mod operator;
mod otlp;
mod postgresql;
mod prometheus;
mod rabbitmq;
mod redis;
mod redis_topo;
mod sink;
mod wait;

pub use activemq::ActiveMq;
pub use artemis::Artemis;
pub use aws::{Aws, AwsKeys, allow, trust};
pub use azurite::Azurite;
pub use cluster::{Cluster, TestNamespace};
pub use etcd::Etcd;
pub use kafka::Kafka;
pub use mysql::Mysql;
pub use nats::{Msg, Nats, NatsConn};
pub use oauth::OAuthServer;
pub use operator::{MetricServer, Operator, Reply};
pub use otlp::{OtlpReceiver, Point};
pub use postgresql::Postgres;
pub use prometheus::{Prometheus, ScrapeTarget};
pub use rabbitmq::RabbitMq;
pub use redis::Redis;
pub use redis_topo::RedisTopo;
pub use sink::{Received, RecordingSink};
pub use wait::{Seen, wait_until};

use std::path::PathBuf;

/// The repository root, found from this crate's manifest directory.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|e| panic!("repository root not found: {e}"))
}

/// Parses `export KEY=VALUE` lines as printed by `hack/cluster.sh up` and `hack/aws.sh up`.
pub(crate) fn parse_exports(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("export "))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect()
}

/// Runs a harness script that prints `export` lines on stdout and returns them.
/// A harness server for this test process: the one its environment names (`make test`
/// exports them), else one started by `hack/<script> up --owner-pid <this process> [args]`,
/// whose watchdog stops it when this process exits. `read` takes the exported variables.
pub(crate) fn from_env_or_started<T>(
    script: &str,
    args: &[&str],
    what: &str,
    read: impl Fn(&dyn Fn(&str) -> anyhow::Result<String>) -> anyhow::Result<T>,
) -> T {
    let lookup = |vars: &[(String, String)]| {
        read(&|k: &str| {
            vars.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| anyhow::anyhow!("{k} not set"))
        })
    };
    let env: Vec<(String, String)> = std::env::vars().collect();
    lookup(&env)
        .or_else(|_| {
            let pid = std::process::id().to_string();
            let mut all = vec!["up", "--owner-pid", pid.as_str()];
            all.extend_from_slice(args);
            lookup(&run_script(script, &all)?)
        })
        .unwrap_or_else(|e| panic!("no local {what}: {e:#}"))
}

pub(crate) fn run_script(script: &str, args: &[&str]) -> anyhow::Result<Vec<(String, String)>> {
    run_script_with_env(script, args, &[])
}

/// [`run_script`] with more environment variables (another server's exports).
pub(crate) fn run_script_with_env(
    script: &str,
    args: &[&str],
    envs: &[(String, String)],
) -> anyhow::Result<Vec<(String, String)>> {
    let path = repo_root().join("hack").join(script);
    let out = std::process::Command::new(&path)
        .args(args)
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run {}: {e}", path.display()))?;
    if !out.status.success() {
        anyhow::bail!(
            "{} {} failed with {}",
            path.display(),
            args.join(" "),
            out.status
        );
    }
    Ok(parse_exports(&String::from_utf8_lossy(&out.stdout)))
}

/// A short random suffix for names that must not collide between tests or runs.
pub fn unique_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    format!("{:08x}", h.finish() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_export_lines() {
        let got = parse_exports("export A=1\nnoise\nexport PATH=/x:$PATH\n  export B=\"q\"\n");
        assert_eq!(
            got,
            vec![
                ("A".into(), "1".into()),
                ("PATH".into(), "/x:$PATH".into()),
                ("B".into(), "q".into())
            ]
        );
    }

    #[test]
    fn suffixes_differ() {
        assert_ne!(unique_suffix(), unique_suffix());
    }
}
