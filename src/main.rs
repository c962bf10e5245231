//! The `identity-settings-operator` binary: see [`identity_settings_operator::cli`].

use std::process::ExitCode;

use clap::Parser;
use identity_settings_operator::cli::{Cli, Command, LogFormat, usage_exit_code};
use identity_settings_operator::{apidocs, crdgen, diff, export, operator};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = usage_exit_code(&e, std::env::args_os().nth(1).as_deref());
            // Help and version go to stdout, usage errors to stderr, as clap would.
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match cli.command {
        Command::Crd => match crdgen::crd_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: cannot render the CRD: {e}");
                ExitCode::FAILURE
            }
        },
        Command::ApiDocs => {
            print!("{}", apidocs::reference());
            ExitCode::SUCCESS
        }
        Command::ReasonsDocs => {
            print!("{}", settings_core::reason::reference());
            ExitCode::SUCCESS
        }
        Command::KeysDocs => {
            print!("{}", settings_core::catalog::reference());
            ExitCode::SUCCESS
        }
        Command::Diff(args) => ExitCode::from(diff::run(&args).await),
        Command::Export(args) => ExitCode::from(export::run(&args).await),
        Command::Run(args) => {
            if let Err(problem) = args.check() {
                eprintln!("error: {problem}");
                return ExitCode::from(2);
            }
            init_logging(args.log_format, "info");
            match operator::run(*args).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "operator stopped");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Logs to stderr at `default_level` unless `RUST_LOG` says otherwise.
fn init_logging(format: LogFormat, default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    // Colours only on a terminal: log files and collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
