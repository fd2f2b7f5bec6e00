//! The `swell` binary: operator, metrics API server and CLI in one executable.

mod check;
mod explain;
mod kube_api;
mod leader;
mod logging;
mod metrics_auth;
mod operator;
mod otel;
mod outbound;
mod serve;
mod webhook;

use std::io::Write;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "swell",
    version,
    about = "Event-driven autoscaling for Kubernetes, compatible with KEDA",
    args_override_self = true
)]
struct Cli {
    /// Log level or filter (error, warn, info, debug, trace, or an EnvFilter directive such as
    /// `info,swell_scalers=debug`). When neither this nor SWELL_LOG_LEVEL is set, RUST_LOG is
    /// read, else info. AWS access key IDs are masked in every log line.
    #[arg(long, global = true, env = "SWELL_LOG_LEVEL")]
    log_level: Option<String>,
    /// Log format.
    #[arg(long, global = true, env = "SWELL_LOG_FORMAT", value_parser = ["text", "json"], default_value = "text")]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the version and exit.
    Version,
    /// Print the keda.sh CustomResourceDefinitions as multi-document YAML.
    ///
    /// Apply with `swell crds | kubectl apply --server-side -f -`.
    Crds {
        /// Print instead the k8s-cloudwatch-adapter's `ExternalMetric` CRD
        /// (`metrics.aws/v1alpha1`), which Swell serves with `--cloudwatch-adapter`.
        #[arg(long)]
        cloudwatch_adapter: bool,
    },
    /// Validate ScaledObjects, ScaledJobs and (Cluster)TriggerAuthentications before applying
    /// them, with the operator's own rules. Exit 0: valid (warnings allowed); 1: invalid;
    /// 2: unreadable input or YAML errors.
    Check(check::CheckArgs),
    /// Run the operator: reconcile ScaledObjects, own their HPAs, run the scale loops.
    Operator(Box<operator::OperatorArgs>),
    /// Explain why a ScaledObject's target has the replicas it has: each trigger against
    /// its targets, the HPA's arithmetic, cooldown, fallback and pause, in one sentence.
    /// Exit 0: explained; 1: the ScaledObject could not be read.
    Explain(explain::ExplainArgs),
}

fn main() -> anyhow::Result<std::process::ExitCode> {
    let cli = Cli::parse();
    if let Command::Check(args) = &cli.command {
        return Ok(std::process::ExitCode::from(check::run(args)));
    }
    if let Command::Explain(args) = &cli.command {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        return Ok(match runtime.block_on(explain::run(args)) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("swell explain: {e}");
                std::process::ExitCode::FAILURE
            }
        });
    }
    run(cli).map(|()| std::process::ExitCode::SUCCESS)
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Check(_) | Command::Explain(_) => Ok(()),
        Command::Operator(args) => {
            let rust_log = std::env::var("RUST_LOG").ok();
            let (directives, from) =
                logging::directives(cli.log_level.as_deref(), rust_log.as_deref());
            logging::init(&directives, &cli.log_format);
            tracing::debug!(filter = %directives, from, "logging");
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(operator::run(*args))
        }
        Command::Version => {
            println!("swell {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Crds { cloudwatch_adapter } => {
            let yaml = if cloudwatch_adapter {
                swell_api::yaml(vec![swell_api::cloudwatch_adapter_crd()])?
            } else {
                swell_api::crds_yaml()?
            };
            let mut out = std::io::stdout().lock();
            match out.write_all(yaml.as_bytes()).and_then(|()| out.flush()) {
                // `swell crds | head` is not an error.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                result => Ok(result?),
            }
        }
    }
}
