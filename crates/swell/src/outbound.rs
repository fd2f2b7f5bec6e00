//! The operator's settings for the connections scalers open, under KEDA's names:
//! `KEDA_HTTP_DEFAULT_TIMEOUT`, `KEDA_HTTP_MIN_TLS_VERSION`, `KEDA_HTTP_DISABLE_KEEP_ALIVE`
//! and `--ca-dir`.

use std::path::PathBuf;
use std::time::Duration;

use swell_scalers::http::HttpSettings;
use swell_scalers::tls::{MinTlsVersion, Outbound};

#[derive(clap::Args, Debug, Clone)]
pub struct OutboundArgs {
    /// Milliseconds an HTTP scaler's request may take when its trigger sets no timeout
    /// (prometheus, metrics-api, rabbitmq over HTTP, nats-jetstream, artemis-queue,
    /// activemq, azure-*), KEDA's KEDA_HTTP_DEFAULT_TIMEOUT.
    #[arg(long, env = "KEDA_HTTP_DEFAULT_TIMEOUT", default_value_t = 3000, value_parser = clap::value_parser!(u64).range(1..))]
    http_default_timeout: u64,
    /// The oldest TLS version scalers' connections accept: TLS12 or TLS13.
    #[arg(long, env = "KEDA_HTTP_MIN_TLS_VERSION", default_value = "TLS12", value_parser = min_tls)]
    http_min_tls_version: MinTlsVersion,
    /// Close each HTTP scaler connection after its answer instead of keeping it for the next.
    #[arg(long, env = "KEDA_HTTP_DISABLE_KEEP_ALIVE", default_value = "false", value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::Set)]
    http_disable_keep_alive: bool,
    /// A directory of PEM CA certificates scalers trust besides the system's (repeatable;
    /// a missing directory is skipped, as KEDA's default /custom/ca usually is).
    #[arg(long = "ca-dir", default_value = "/custom/ca")]
    ca_dirs: Vec<PathBuf>,
    /// KEDA's TLS 1.2 cipher suite list: refused when set (see `configure_tls`).
    #[arg(
        long,
        env = "KEDA_HTTP_TLS_CIPHER_LIST",
        default_value = "",
        hide = true
    )]
    http_tls_cipher_list: String,
    /// AWS API calls per second Swell allows itself per identity, region and service (a
    /// token bucket; CloudWatch's default GetMetricData quota is 50 per region).
    #[arg(long, env = "SWELL_AWS_API_QPS", default_value_t = 20.0, value_parser = positive_rate)]
    aws_api_qps: f64,
    /// Calls the bucket allows at once after a quiet period.
    #[arg(long, env = "SWELL_AWS_API_BURST", default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..))]
    aws_api_burst: u32,
    /// Seconds between reads of each `awsSecretManager` secret named by stage (AWSCURRENT
    /// unless `versionStage` says otherwise): a stage moved to a new version rebuilds the
    /// scalers built from it. A secret pinned by `versionId` is read once.
    #[arg(long, env = "SWELL_AWS_SECRET_REFRESH_SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    aws_secret_refresh_seconds: u64,
    /// The EKS cluster Swell runs in: workloads whose ServiceAccount has no IRSA annotation
    /// get the role of their EKS Pod Identity association (identityOwner: workload / aws-eks).
    #[arg(long, env = "SWELL_EKS_CLUSTER_NAME", default_value = "")]
    eks_cluster_name: String,
    /// The region of that cluster's EKS API (default: AWS_REGION, else AWS_DEFAULT_REGION).
    #[arg(long, env = "SWELL_EKS_REGION", default_value = "")]
    eks_region: String,
}

fn positive_rate(v: &str) -> Result<f64, String> {
    match v.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!(
            "{v:?} is not a number of calls per second above 0, such as 20 or 0.5"
        )),
    }
}

fn min_tls(v: &str) -> Result<MinTlsVersion, String> {
    match v {
        "TLS10" | "TLS11" => Err(format!(
            "{v} is refused: Swell's TLS (rustls) speaks TLS 1.2 and 1.3 only; use TLS12 or TLS13"
        )),
        _ => MinTlsVersion::parse(v).ok_or_else(|| format!("{v:?} is not TLS12 or TLS13")),
    }
}

impl OutboundArgs {
    /// The EKS cluster for Pod Identity lookups, when named.
    pub fn eks_cluster(&self) -> anyhow::Result<Option<swell_scalers::aws::EksCluster>> {
        if self.eks_cluster_name.is_empty() {
            return Ok(None);
        }
        let region = [self.eks_region.clone()]
            .into_iter()
            .chain(std::env::var("AWS_REGION").ok())
            .chain(std::env::var("AWS_DEFAULT_REGION").ok())
            .find(|r| !r.is_empty());
        let Some(region) = region else {
            anyhow::bail!(
                "--eks-cluster-name {} needs the cluster's region: set --eks-region (SWELL_EKS_REGION) or AWS_REGION",
                self.eks_cluster_name
            );
        };
        Ok(Some(swell_scalers::aws::EksCluster {
            name: self.eks_cluster_name.clone(),
            region,
        }))
    }

    /// The AWS calls' rate limit.
    pub fn aws_limits(&self) -> swell_scalers::aws::CallLimits {
        swell_scalers::aws::CallLimits {
            qps: self.aws_api_qps,
            burst: self.aws_api_burst,
        }
    }

    /// The HTTP clients' settings.
    /// How often `awsSecretManager` secrets are read again for a new version.
    pub fn aws_secret_refresh(&self) -> Duration {
        Duration::from_secs(self.aws_secret_refresh_seconds)
    }

    pub fn http(&self) -> HttpSettings {
        HttpSettings {
            default_timeout: Duration::from_millis(self.http_default_timeout),
            keep_alive: !self.http_disable_keep_alive,
        }
    }

    /// Sets the process's TLS settings for scalers: the oldest version and the CA
    /// directories' certificates, read now.
    pub fn configure_tls(&self) -> anyhow::Result<()> {
        if !self.http_tls_cipher_list.is_empty() {
            anyhow::bail!(
                "KEDA_HTTP_TLS_CIPHER_LIST is not supported: Swell's TLS (rustls) offers only \
                 modern AEAD cipher suites and does not take a list; unset it"
            );
        }
        let o = Outbound::new(self.http_min_tls_version, &self.ca_dirs)?;
        if !swell_scalers::tls::configure(o) {
            anyhow::bail!("scalers' TLS settings were used before they were set");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keda_tls_versions() {
        assert_eq!(min_tls("TLS12"), Ok(MinTlsVersion::Tls12));
        assert_eq!(min_tls("TLS13"), Ok(MinTlsVersion::Tls13));
        assert!(
            min_tls("TLS11")
                .unwrap_err()
                .contains("TLS 1.2 and 1.3 only")
        );
        assert!(
            min_tls("tls1.3")
                .unwrap_err()
                .contains("not TLS12 or TLS13")
        );
    }
}
