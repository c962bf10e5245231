//! `identity-settings-operator diff -f DIR`: what the operator would change, without a cluster
//! and without writing, for CI pipelines (like `kubectl diff`).
//!
//! It reads policy and Secret manifests ([`load`]), finds the Secrets they reference there, in
//! `--secrets-dir` or in the environment ([`sources`]), compares each policy with its identity
//! service by the operator's own rules ([`check`]: validate, resolve, one GET, plan) and prints
//! the changes ([`report`]). One token serves every policy of a server and credential set, as in
//! the operator ([`IdentityClients`]).

pub mod check;
pub mod load;
pub mod report;
pub mod sources;

use std::io::Write as _;

use futures::StreamExt;

use crate::cli::{DiffArgs, DiffOutput};
use crate::controller::clients::{ConnectionSettings, IdentityClients, OrganizationLimits};
use report::{EXIT_ERROR, Report};
use sources::SecretSources;

/// Policies compared at the same time (also the idle connections kept per server).
const CONCURRENCY: usize = 8;

/// The identity clients of a command that only reads (`diff`, `export`): http only when
/// `allow_http` (loopback), `request_timeout` per request, and the per-organization limits the
/// operator keeps to on Automation Cloud (`run`'s defaults), so a preview or an export reads as
/// the operator would.
pub fn clients(allow_http: bool, request_timeout: std::time::Duration) -> IdentityClients {
    IdentityClients::new(ConnectionSettings {
        allow_http,
        request_timeout,
        max_idle_connections: CONCURRENCY,
        observer: None,
        budget: Default::default(),
        organization_limits: OrganizationLimits::automation_cloud(),
    })
}

/// Runs `diff`; returns the exit status (0 in sync, 2 drift, 1 error). Per-policy errors are
/// part of the report; an unreadable directory, a bad manifest or no policy at all stop before
/// any identity request.
pub async fn run(args: &DiffArgs) -> u8 {
    let mut manifests = match load::load(&args.filename, args.recursive, &args.namespace) {
        Ok(manifests) => manifests,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_ERROR;
        }
    };
    if manifests.policies.is_empty() {
        eprintln!(
            "error: no IdentitySettingPolicy ({}) in {}",
            load::POLICY_API_VERSION,
            args.filename.display()
        );
        return EXIT_ERROR;
    }
    if let Some(dir) = args.secrets_dir.as_deref().filter(|d| !d.is_dir()) {
        eprintln!("error: --secrets-dir {} is not a directory", dir.display());
        return EXIT_ERROR;
    }
    let policies = std::mem::take(&mut manifests.policies);
    let sources = SecretSources::new(
        std::mem::take(&mut manifests.secrets),
        args.secrets_dir.clone(),
    );
    let clients = clients(args.allow_insecure_http, args.identity_timeout);
    let allowed = check::AllowedServers::new(&args.allow_servers);
    let (servers, allowed, sources, clients) = (&manifests, &allowed, &sources, &clients);
    let diffs = futures::stream::iter(policies)
        .map(|(key, policy)| async move {
            check::check(key, &policy, servers, allowed, sources, clients).await
        })
        .buffered(CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    let report = Report::new(diffs);
    let text = match args.output {
        DiffOutput::Text => report.text(),
        DiffOutput::Json => report.json() + "\n",
    };
    if let Err(e) = std::io::stdout().lock().write_all(text.as_bytes()) {
        eprintln!("error: cannot write the report: {e}");
        return EXIT_ERROR;
    }
    report.exit_code()
}
