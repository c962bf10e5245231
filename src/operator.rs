//! Wires the pieces of `identity-settings-operator run` together: Kubernetes client, metrics
//! and health server, leader election, controller, shutdown on SIGTERM/Ctrl-C.

use crate::controller::clients::OrganizationLimits;
use crate::identity::budget::BudgetLimits;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{error, info};

use crate::cli::RunArgs;
use crate::controller::context::{Context, ReconcileSettings};
use crate::controller::{self, WatchScope};
use crate::health::{self, Health};
use crate::leader::{LeaderElector, LeaseConfig};
use crate::metrics::Metrics;

/// Why the operator stopped other than by a shutdown signal.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// No Kubernetes configuration could be loaded.
    #[error("cannot reach Kubernetes: {0}")]
    Kube(#[from] kube::Error),
    /// The HTTP port could not be bound.
    #[error("cannot serve HTTP: {0}")]
    Http(#[from] std::io::Error),
    /// Another replica took the Lease while this one was leading (or the election stopped).
    #[error("lost the leader lease; exiting so a restart rejoins the election cleanly")]
    LostLeadership,
}

/// The User-Agent of the operator's Kubernetes requests, so that audit logs (and the RBAC test)
/// can tell them from anyone else's.
pub const USER_AGENT: &str = concat!("identity-settings-operator/", env!("CARGO_PKG_VERSION"));

/// A Kubernetes client for `config` that names itself with [`USER_AGENT`].
pub fn kube_client(mut config: kube::Config) -> Result<kube::Client, kube::Error> {
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static(USER_AGENT),
    ));
    kube::Client::try_from(config)
}

/// Runs until SIGTERM/Ctrl-C (`Ok`) or a fatal error.
pub async fn run(args: RunArgs) -> Result<(), OperatorError> {
    let config = kube::Config::infer()
        .await
        .map_err(kube::Error::InferConfig)?;
    let client = kube_client(config)?;
    let metrics = Arc::new(Metrics::default());
    let health = Arc::new(Health::default());
    let listener = TcpListener::bind(SocketAddr::new(args.http_address, args.http_port)).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(forward_shutdown_signal(stop_tx.clone()));
    let server = tokio::spawn(health::serve(
        listener,
        metrics.clone(),
        health.clone(),
        wait_for(stop_rx.clone()),
    ));

    let identity = args.identity.clone().unwrap_or_else(default_identity);
    let settings = ReconcileSettings {
        allow_insecure_http: args.allow_insecure_http,
        request_timeout: args.identity_timeout,
        backoff_min: args.backoff_min,
        backoff_max: args.backoff_max,
        reconcile_deadline: args.reconcile_timeout,
        concurrency: usize::from(args.concurrency),
        concurrency_per_server: usize::from(args.identity_concurrency),
        identity_budget: BudgetLimits {
            requests_per_second: Some(args.identity_requests_per_second).filter(|r| *r > 0.0),
            max_in_flight: Some(usize::from(args.identity_max_in_flight)).filter(|n| *n > 0),
            per_organization: None,
        },
        organization_limits: OrganizationLimits {
            hosts: args.automation_cloud_hosts.clone(),
            limits: (args.automation_cloud_share > 0.0).then(|| {
                args.automation_cloud_limits
                    .share(args.automation_cloud_share)
            }),
        },
    };
    let ctx = Context::new(client.clone(), metrics, settings, Some(identity.clone()));
    let scope = watch_scope(&args.namespaces);

    let result = if args.leader_election {
        let lease = LeaseConfig {
            name: args.lease_name.clone(),
            namespace: args.lease_namespace.clone(),
            identity,
            lease_duration: args.lease_duration,
            renew_interval: args.lease_renew_interval,
        };
        run_as_elected(client, lease, ctx, scope, &health, stop_rx).await
    } else {
        // Ready once the first lists of policies and Secrets arrived, not before.
        let ready = health.clone();
        let synced = move || ready.set_ready(true);
        controller::run(Arc::new(ctx), scope, synced, wait_for(stop_rx)).await;
        Ok(())
    };
    // Whatever ended the controller ends the process: stop answering probes, then the server.
    health.set_ready(false);
    let _ = stop_tx.send(true);
    match server.await {
        Ok(Err(e)) => error!(error = %e, "HTTP server failed"),
        Err(e) => error!(error = %e, "HTTP server task failed"),
        Ok(Ok(())) => {}
    }
    result
}

/// The namespaces to watch: entries trimmed, empty ones dropped, duplicates removed (two
/// controllers on one namespace would reconcile the same policy twice at once); none means all.
pub fn watch_scope(namespaces: &[String]) -> WatchScope {
    let unique: BTreeSet<String> = namespaces
        .iter()
        .map(|n| n.trim())
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect();
    if unique.is_empty() {
        WatchScope::All
    } else {
        WatchScope::Namespaces(unique.into_iter().collect())
    }
}

/// Waits for leadership, runs the controller while leading, releases the Lease on shutdown.
/// Returns `Err(LostLeadership)` when the Lease is lost: the process then exits and its restart
/// rejoins the election with a clean state.
async fn run_as_elected(
    client: kube::Client,
    lease: LeaseConfig,
    ctx: Context,
    scope: WatchScope,
    health: &Health,
    mut stop: watch::Receiver<bool>,
) -> Result<(), OperatorError> {
    let (leading_tx, mut leading) = watch::channel(None);
    // Every write of the controller checks this; a step-down also cancels in-flight reconciles.
    let ctx = Arc::new(ctx.with_leadership(leading.clone()));
    let campaign = tokio::spawn(LeaderElector::new(client.clone(), lease.clone()).run(leading_tx));
    info!(lease = %lease.name, identity = %lease.identity, "waiting for the leader lease");
    loop {
        let state = *leading.borrow_and_update();
        if state.is_some() {
            // Leader or standby: either way this replica knows its role.
            health.set_ready(true);
        }
        if state == Some(true) {
            break;
        }
        tokio::select! {
            changed = leading.changed() => if changed.is_err() { return Err(OperatorError::LostLeadership) },
            _ = stop.wait_for(|s| *s) => { campaign.abort(); return Ok(()) }
        }
    }
    info!("leading: starting the controller");
    let lost = {
        let mut leading = leading.clone();
        async move {
            let _ = leading.wait_for(|l| *l != Some(true)).await;
        }
    };
    let (lost_tx, lost_rx) = watch::channel(false);
    let shutdown = {
        let mut stop = stop.clone();
        async move {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => {}
                () = lost => { let _ = lost_tx.send(true); }
            }
        }
    };
    // A leader has been ready since it knew its role (a standby must pass the probe too).
    controller::run(ctx, scope, || {}, shutdown).await;
    campaign.abort();
    if *lost_rx.borrow() {
        error!("lost the leader lease; the controller stopped");
        return Err(OperatorError::LostLeadership);
    }
    if let Err(e) = LeaderElector::new(client, lease).release().await {
        error!(error = %e, "could not release the leader lease");
    }
    Ok(())
}

async fn wait_for(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn forward_shutdown_signal(stop: watch::Sender<bool>) {
    shutdown_signal().await;
    info!("shutdown signal received");
    let _ = stop.send(true);
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! { _ = term.recv() => {}, _ = tokio::signal::ctrl_c() => {} }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn default_identity() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    let suffix: u32 = rand::random();
    if host.is_empty() {
        format!("operator-{suffix:08x}")
    } else {
        format!("{host}-{suffix:08x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_are_trimmed_and_deduplicated() {
        let given = ["b", " a", "a ", "", " "].map(str::to_owned);
        assert_eq!(
            watch_scope(&given),
            WatchScope::Namespaces(vec!["a".into(), "b".into()])
        );
        assert_eq!(watch_scope(&[]), WatchScope::All);
        assert_eq!(watch_scope(&[" ".to_owned()]), WatchScope::All);
    }
}
