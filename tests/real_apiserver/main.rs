//! The real-apiserver suite: what only a real control plane can judge — admission of the CRD's
//! schema and CEL rules, `kubectl` output, the Helm chart installed by the real `helm`, and the
//! Kubernetes API emulator measured against the real server.
//!
//! Runs when `CONTROL_PLANE_BIN` names the binaries `tests/control-plane/build` made
//! (`bash tests/control-plane/test` does both). Without it, this target says so and runs
//! nothing: plain `cargo test` needs no Go. (The end-to-end scenarios themselves are in
//! `tests/e2e` and run on both backends.)
//!
//! A small runner instead of libtest, so that an unselected run reports "not selected" rather
//! than a list of tests that passed without doing anything.

#[allow(dead_code)]
#[path = "../e2e/harness.rs"]
mod harness;
#[allow(dead_code)]
#[path = "../e2e/rbac.rs"]
mod rbac;

mod admission;
mod differential;
mod helm_chart;
mod kubectl_view;

use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;

type TestFn = fn() -> Pin<Box<dyn Future<Output = ()> + Send>>;

macro_rules! tests {
    ($($path:path),* $(,)?) => {
        vec![$((stringify!($path), (|| Box::pin($path()) as Pin<Box<dyn Future<Output = ()> + Send>>) as TestFn)),*]
    };
}

fn main() -> ExitCode {
    if control_plane::selected().is_none() {
        println!(
            "real-apiserver suite not selected: set {} to the directory `bash tests/control-plane/build` prints \
             (or run `bash tests/control-plane/test`)",
            control_plane::BIN_ENV
        );
        return ExitCode::SUCCESS;
    }
    let all: Vec<(&str, TestFn)> = tests![
        admission::every_bad_manifest_is_refused_with_a_message_naming_the_field,
        admission::every_example_is_accepted,
        kubectl_view::kubectl_shows_the_columns_conditions_and_events,
        helm_chart::helm_installs_upgrades_and_uninstalls_the_chart,
        differential::the_emulator_answers_like_the_real_apiserver,
    ];
    // Like libtest: arguments that are not flags are name filters.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let selected: Vec<_> = all
        .into_iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())))
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    println!("\nrunning {} real-apiserver tests", selected.len());
    let mut failed = Vec::new();
    for (name, test) in selected {
        let started = std::time::Instant::now();
        let outcome = runtime.block_on(async { tokio::spawn(test()).await });
        let secs = started.elapsed().as_secs_f32();
        match outcome {
            Ok(()) => println!("test {name} ... ok ({secs:.1} s)"),
            Err(_) => {
                println!("test {name} ... FAILED ({secs:.1} s)");
                failed.push(name);
            }
        }
    }
    if failed.is_empty() {
        println!("\nreal-apiserver suite: ok");
        ExitCode::SUCCESS
    } else {
        println!(
            "\nreal-apiserver suite: {} failed: {failed:?}",
            failed.len()
        );
        ExitCode::FAILURE
    }
}
