//! The `swell` binary: operator, metrics API server and CLI in one executable.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "swell",
    version,
    about = "Event-driven autoscaling for Kubernetes, compatible with KEDA"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the version and exit.
    Version,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Version => {
            println!("swell {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
    }
}
