//! The `identity-settings-operator` binary: see [`identity_settings_operator::cli`].

use std::process::ExitCode;

use clap::Parser;
use identity_settings_operator::cli::{self, Cli, Command, LogFormat, usage_exit_code};
use identity_settings_operator::{apidocs, crdgen, diff, export, operator};
use tracing_subscriber::EnvFilter;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options (its `malloc_conf` string, read at its start): one arena (the operator's
/// memory is many small long-lived objects; more arenas mostly add unreturned free space, and
/// the per-thread caches keep the one arena uncontended), and free pages given back to the
/// system at once. Measured at 10 000 policies (docs/benchmarks.md): 2.2 MiB less peak RSS than
/// two arenas purged after a second, the same CPU (not measured apart at 100 000).
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: Option<&'static u8> =
    Some(&b"narenas:1,background_thread:true,dirty_decay_ms:0,muzzy_decay_ms:0\0"[0]);

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = usage_exit_code(&e, std::env::args_os().nth(1).as_deref());
            // Help and version go to stdout, usage errors to stderr, as clap would.
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let worker_threads = match &cli.command {
        Command::Run(args) => usize::from(args.worker_threads),
        // The one-shot commands wait on one request at a time.
        _ => 1,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(worker_threads)
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        // The operator runs as a task, on the workers: `block_on` would run it on this thread,
        // beside them, and every answer would cross threads (one worker, two busy threads).
        Command::Run(args) => runtime.block_on(async {
            match tokio::spawn(run_operator(args)).await {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("error: the operator stopped unexpectedly: {e}");
                    ExitCode::FAILURE
                }
            }
        }),
        other => runtime.block_on(command(other)),
    }
}

/// Runs a one-shot command.
async fn command(command: Command) -> ExitCode {
    match command {
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
        Command::Run(args) => run_operator(args).await,
    }
}

/// Runs the operator until it is stopped; exit code 2 for flags that do not fit together.
async fn run_operator(args: Box<cli::RunArgs>) -> ExitCode {
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

/// kube's span around each reconcile ("reconciling object"), off unless `RUST_LOG` names
/// `kube_runtime`: every policy waiting in the work queue holds one (about 500 bytes each, 5 MB
/// at a cold start of 10 000 policies, measured with heaptrack), and the operator's own
/// `reconcile{policy=...}` span already names the policy in every line.
const QUIET_KUBE_SPANS: &str = "kube_runtime::controller=warn";

/// Logs to stderr at `default_level` unless `RUST_LOG` says otherwise.
fn init_logging(format: LogFormat, default_level: &str) {
    let explicit = std::env::var("RUST_LOG").unwrap_or_default();
    let mut filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    if !explicit.contains("kube_runtime")
        && let Ok(quiet) = QUIET_KUBE_SPANS.parse()
    {
        filter = filter.add_directive(quiet);
    }
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
