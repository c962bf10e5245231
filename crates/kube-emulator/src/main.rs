//! The `kube-emulator` binary: the Kubernetes API emulator in a process of its own, so a
//! benchmark can measure the operator against it without sharing a process (or CPU accounting)
//! with the stand-in.
//!
//! Prints exactly one line on stdout once listening, the base URL, and serves until SIGTERM or
//! Ctrl-C. It records no requests (the request log is for tests) but counts them: see
//! `/_emulator/counters` in the library's docs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use kube_emulator::{EmulatorConfig, KubeEmulator, ResourceKind, resource_kinds_from_crd};

/// Serves the Kubernetes API emulator on loopback (plain HTTP, no authentication).
#[derive(Debug, Parser)]
#[command(name = "kube-emulator", version, about)]
struct Args {
    /// Port to listen on (loopback only); 0 picks a free port.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// CustomResourceDefinition YAML files whose resources to serve.
    #[arg(long = "crd", value_name = "FILE", num_args = 1..)]
    crds: Vec<PathBuf>,
    /// Change events kept for watch resume (all resources together). A real API server keeps
    /// about 75 s of history per resource; thousands of objects changing at once need a large
    /// window here, or watches fall behind it and relist (410 Expired).
    #[arg(long, default_value_t = 1000)]
    watch_history: usize,
}

/// The resource kinds of every CRD file, or which file is wrong.
fn load_crds(files: &[PathBuf]) -> Result<Vec<ResourceKind>, String> {
    let mut kinds = Vec::new();
    for file in files {
        let yaml = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        kinds.extend(
            resource_kinds_from_crd(&yaml).map_err(|e| format!("{}: {e}", file.display()))?,
        );
    }
    Ok(kinds)
}

#[cfg(unix)]
async fn wait_for_stop_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r,
        _ = term.recv() => Ok(()),
    }
}

#[cfg(not(unix))]
async fn wait_for_stop_signal() -> std::io::Result<()> {
    tokio::signal::ctrl_c().await
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let custom_resources = match load_crds(&args.crds) {
        Ok(kinds) => kinds,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let config = EmulatorConfig {
        bind: SocketAddr::from(([127, 0, 0, 1], args.port)),
        custom_resources,
        request_log: 0,
        watch_history: args.watch_history,
        ..EmulatorConfig::default()
    };
    let emulator = match KubeEmulator::start(config).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: cannot listen on port {}: {e}", args.port);
            return ExitCode::FAILURE;
        }
    };
    println!("{}", emulator.url());
    let stopped = wait_for_stop_signal().await;
    emulator.shutdown().await;
    match stopped {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot wait for a stop signal: {e}");
            ExitCode::FAILURE
        }
    }
}
