//! The `identity-settings-demo` binary: see [`identity_settings_demo`].

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use identity_settings_operator::cli::parse_duration;
use tracing_subscriber::EnvFilter;

/// Try the operator without a cluster: apply examples/ to an in-process Kubernetes API emulator
/// and identity simulator, run the controller, print the result.
#[derive(Debug, Parser)]
#[command(name = "identity-settings-demo", version, about)]
struct Args {
    /// Directory of manifests (Secrets and IdentitySettingPolicies) to apply.
    #[arg(long, default_value = "examples")]
    examples: PathBuf,
    /// How long to wait for every policy to converge.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    timeout: Duration,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    // The operator's own log would drown the demo's progress: warnings and errors only.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let options = identity_settings_demo::DemoOptions {
        examples: args.examples,
        timeout: args.timeout,
    };
    match identity_settings_demo::run(options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
