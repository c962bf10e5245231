//! Wires the pieces of `identity-settings-operator run` together: Kubernetes client, metrics
//! and health server, leader election, controller, shutdown on SIGTERM/Ctrl-C.

use std::net::SocketAddr;
use std::sync::Arc;

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
    /// Another replica took the Lease while this one was leading.
    #[error("lost the leader lease; exiting so a restart rejoins the election cleanly")]
    LostLeadership,
}

/// Runs until SIGTERM/Ctrl-C (`Ok`) or a fatal error.
pub async fn run(args: RunArgs) -> Result<(), OperatorError> {
    let client = kube::Client::try_default().await?;
    let metrics = Arc::new(Metrics::default());
    let health = Arc::new(Health::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(forward_shutdown_signal(stop_tx));

    let addr = SocketAddr::new(args.http_address, args.http_port);
    let listener_stop = wait_for(stop_rx.clone());
    let server = tokio::spawn(health::serve(
        addr,
        metrics.clone(),
        health.clone(),
        listener_stop,
    ));

    let identity = args.identity.clone().unwrap_or_else(default_identity);
    let settings = ReconcileSettings {
        allow_insecure_http: args.allow_insecure_http,
        request_timeout: args.identity_timeout,
        backoff_min: args.backoff_min,
        backoff_max: args.backoff_max,
    };
    let ctx = Arc::new(Context::new(
        client.clone(),
        metrics,
        settings,
        Some(identity.clone()),
    ));
    let scope = if args.namespaces.iter().all(|n| n.is_empty()) {
        WatchScope::All
    } else {
        WatchScope::Namespaces(
            args.namespaces
                .iter()
                .filter(|n| !n.is_empty())
                .cloned()
                .collect(),
        )
    };

    let result = if args.leader_election {
        let lease = LeaseConfig {
            name: args.lease_name.clone(),
            namespace: args.lease_namespace.clone(),
            identity,
            lease_duration: args.lease_duration,
            renew_interval: args.lease_renew_interval,
        };
        run_as_elected(client, lease, ctx, scope, args.concurrency, health, stop_rx).await
    } else {
        health.set_ready(true);
        controller::run(ctx, scope, args.concurrency, wait_for(stop_rx)).await;
        Ok(())
    };
    if let Ok(Err(e)) = server.await {
        error!(error = %e, "HTTP server failed");
    }
    result
}

/// Waits for leadership, runs the controller while leading, releases the Lease on shutdown.
async fn run_as_elected(
    client: kube::Client,
    lease: LeaseConfig,
    ctx: Arc<Context>,
    scope: WatchScope,
    concurrency: u16,
    health: Arc<Health>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), OperatorError> {
    let (leading_tx, mut leading) = watch::channel(None);
    let campaign = tokio::spawn(LeaderElector::new(client.clone(), lease.clone()).run(leading_tx));
    info!(lease = %lease.name, identity = %lease.identity, "waiting for the leader lease");
    loop {
        let state = *leading.borrow_and_update();
        if state.is_some() {
            health.set_ready(true);
        }
        if state == Some(true) {
            break;
        }
        tokio::select! {
            changed = leading.changed() => if changed.is_err() { return Ok(()) },
            _ = stop.changed() => { campaign.abort(); return Ok(()) }
        }
    }
    info!("leading: starting the controller");
    let (lost_tx, lost_rx) = watch::channel(false);
    let mut watch_leading = leading.clone();
    tokio::spawn(async move {
        while watch_leading.changed().await.is_ok() {
            if *watch_leading.borrow() != Some(true) {
                let _ = lost_tx.send(true);
                return;
            }
        }
    });
    let shutdown = {
        let (mut stop, mut lost) = (stop.clone(), lost_rx.clone());
        async move {
            tokio::select! { _ = stop.wait_for(|s| *s) => {}, _ = lost.wait_for(|l| *l) => {} }
        }
    };
    controller::run(ctx, scope, concurrency, shutdown).await;
    campaign.abort();
    if *lost_rx.borrow() {
        return Err(OperatorError::LostLeadership);
    }
    if let Err(e) = LeaderElector::new(client, lease).release().await {
        error!(error = %e, "could not release the leader lease");
    }
    let _ = stop.changed().await;
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
