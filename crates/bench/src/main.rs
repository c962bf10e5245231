//! The benchmark (`cargo run --release --locked -p identity-settings-bench -- [--policies
//! 100,1000,10000] [--resync 30s] [--slow-policies 1000] [--operator-arg=--foo ...]`): the real
//! operator binary against the Kubernetes API emulator and the identity simulator, each in its
//! own process, with a fresh set per policy count. Prints a Markdown table on stdout and
//! progress on stderr; never part of `cargo test`.
//!
//! Per policy count: cold start until every policy is Ready for its generation, identity
//! requests per policy during it, operator memory and CPU, requests per policy per resync in a
//! quiet steady state, the latency of 200 single edits, and the time to correct drift on every
//! policy. Then an idle run (10 policies) and a slow-service run (100 ms per Setting request).
//! `--write docs/benchmarks.md` also puts the report into that document.
//!
//! `--api-server real` measures against a real kube-apiserver and etcd instead: per policy
//! count, the cold start of a minimal reference client (the floor) and the operator's, their
//! Kubernetes requests from the API server's audit log, the API server's CPU, and an operator
//! restart over policies in sync.

mod audit;
mod binaries;
mod cli;
mod converge;
mod doc;
mod error;
mod http;
mod kube;
mod machine;
mod manifests;
mod measure;
mod policy;
mod process;
mod procfs;
mod real_report;
mod reference;
mod report;
mod run;
mod runs;
mod sim;
mod world;

use std::process::ExitCode;

use clap::Parser;

use real_report::RealReport;
use report::Report;
use run::Setup;
use world::ApiServer;

#[tokio::main]
async fn main() -> ExitCode {
    let args = cli::Args::parse();
    if let Err(problem) = args.check() {
        eprintln!("error: {problem}");
        return ExitCode::from(2);
    }
    let bins = match binaries::build() {
        Ok(bins) => bins,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let api = match args.api_server {
        cli::ApiServerKind::Emulator => ApiServer::Emulator,
        cli::ApiServerKind::Real => match binaries::control_plane() {
            Ok(bin) => ApiServer::Real(bin),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let root = std::env::temp_dir().join(format!("identity-settings-bench-{}", std::process::id()));
    eprintln!("• run directory (kubeconfigs, logs): {}", root.display());
    let setup = Setup {
        bins: &bins,
        operator_args: &args.operator_args,
        root: &root,
        api: &api,
    };
    if let ApiServer::Real(bin) = &api {
        return real(&args, &setup, bin).await;
    }

    let mut scale = Vec::new();
    for &count in &args.policies {
        let row = run::scale(&setup, count, args.resync).await;
        if let Err(e) = &row {
            eprintln!("  ! {count} policies: {e}");
        }
        scale.push((count, row.map_err(|e| e.to_string())));
    }
    let idle = run::idle(&setup, args.resync)
        .await
        .map_err(|e| e.to_string());
    let slow = match args.slow_policies {
        0 => None,
        count => Some(run::slow(&setup, count).await.map_err(|e| e.to_string())),
    };

    let budget = match args.budget_policies {
        0 => None,
        count => Some(
            run::budget(&setup, count, args.budget_rps, args.budget_in_flight)
                .await
                .map_err(|e| e.to_string()),
        ),
    };

    let failed = scale.iter().any(|(_, r)| r.is_err())
        || idle.is_err()
        || slow.as_ref().is_some_and(Result::is_err)
        || budget.as_ref().is_some_and(Result::is_err);
    let report = Report {
        machine: machine::describe(),
        measured: machine::measured_at(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        resync: args.resync,
        scale,
        slow,
        idle,
        budget,
    };
    for (_, row) in &report.scale {
        if let Ok(row) = row {
            eprintln!(
                "• operator log of {} policies: {} ({} WARN lines)",
                row.count,
                row.log.display(),
                row.warn_lines.map_or("n/a".into(), |w| w.to_string())
            );
        }
    }
    publish(
        &report.markdown(),
        args.write.as_deref(),
        doc::EMULATOR,
        failed,
    )
}

/// The real-apiserver mode: one [`run::real_scale`] per policy count, and its report.
async fn real(args: &cli::Args, setup: &Setup<'_>, bin: &std::path::Path) -> ExitCode {
    let mut rows = Vec::new();
    for &count in &args.policies {
        let row = median_of_runs(setup, count, args).await;
        rows.push((count, row));
    }
    for row in rows.iter().filter_map(|(_, r)| r.as_ref().ok()) {
        eprintln!(
            "• operator log of {} policies: {}",
            row.count,
            row.log.display()
        );
    }
    let failed = rows.iter().any(|(_, r)| r.is_err());
    let report = RealReport {
        machine: machine::describe(),
        measured: machine::measured_at(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        resync: args.resync,
        api_server: binaries::version_of(&bin.join("kube-apiserver")),
        rows,
    };
    publish(&report.markdown(), args.write.as_deref(), doc::REAL, failed)
}

/// `args.runs` runs of `count` policies on the real API server, as one row of medians; the
/// first failed run ends them and is the row.
async fn median_of_runs(
    setup: &Setup<'_>,
    count: usize,
    args: &cli::Args,
) -> Result<run::RealRow, String> {
    let mut rows = Vec::new();
    for run in 1..=args.runs {
        let suffix = if args.runs > 1 {
            eprintln!("• {count} policies, run {run} of {}", args.runs);
            format!("-run{run}")
        } else {
            String::new()
        };
        let row = run::real_scale(setup, count, &suffix, args.resync)
            .await
            .map_err(|e| {
                eprintln!("  ! {count} policies: {e}");
                e.to_string()
            })?;
        rows.push(row);
    }
    runs::median_row(rows).ok_or_else(|| "no run".to_owned())
}

/// Prints the report, writes it between `markers` of the `write` document if given, and
/// answers the exit code: failure when a run failed or the document could not be written.
fn publish(
    markdown: &str,
    write: Option<&std::path::Path>,
    markers: doc::Markers,
    failed: bool,
) -> ExitCode {
    print!("{markdown}");
    if let Some(path) = write {
        match doc::write(path, markdown, markers) {
            Ok(()) => eprintln!("• wrote the report into {}", path.display()),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
