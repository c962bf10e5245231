//! What runs beside the reconciles: how a due policy enters the work queue, and a periodic pass
//! that prunes state of policies that are gone, publishes the queue's figures and warns when the
//! operator cannot keep up with the resync intervals.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::Resource;
use tracing::{debug, warn};

use super::context::Context;
use super::queue::{Request, Snapshot, Urgency};
use super::watched::Guarded;
use crate::api::FINALIZER;
use crate::api::IdentitySettingPolicySpec;
use crate::metrics::QueueFigures;
use crate::reconcile::validate::{DEFAULT_RESYNC, resync_interval};

/// How often the pass runs.
pub const PERIOD: Duration = Duration::from_secs(5);

/// How often, at most, the "cannot keep up" warning is logged.
pub const WARNING_INTERVAL: Duration = Duration::from_secs(60);

/// How a due policy enters the work queue. Urgent: a policy never applied, changed since last
/// applied (a new generation), being deleted, or not yet carrying our finalizer; anything else
/// is a routine resync (including retries after a failure, so a broken server's retries do not
/// crowd out its other policies' changes).
pub fn queue_request(guard: &Guarded) -> Request {
    let meta = guard.meta();
    let policy = super::watched::name_of(guard);
    let Ok(valid) = &guard.0 else {
        return Request {
            policy,
            server: "".into(),
            urgency: Urgency::Urgent,
            resync: DEFAULT_RESYNC,
        };
    };
    let applied = valid
        .status
        .as_ref()
        .and_then(|s| s.observed_generation)
        .is_some_and(|g| Some(g) == meta.generation);
    // Only Restore policies carry the finalizer: one that has it and should not, or should
    // and has not, is due at once.
    let finalized = meta.finalizers.iter().flatten().any(|f| f == FINALIZER);
    let restores = valid.spec.deletion_policy == Some(crate::api::DeletionPolicy::Restore);
    let urgent = !applied || finalized != restores || meta.deletion_timestamp.is_some();
    Request {
        policy,
        server: server_key(&valid.spec, meta.namespace.as_deref().unwrap_or_default()).into(),
        urgency: if urgent {
            Urgency::Urgent
        } else {
            Urgency::Routine
        },
        resync: resync_interval(&valid.spec),
    }
}

/// What the work queue tells servers apart by (its per-server concurrency): the inline URL, or
/// the server definition a policy names.
fn server_key(spec: &IdentitySettingPolicySpec, namespace: &str) -> String {
    match (&spec.server, &spec.server_ref) {
        (Some(server), _) => crate::identity::urls::server_identity(&server.url),
        (None, Some(r)) => match r.kind {
            crate::api::ServerKind::IdentityServer => {
                format!("IdentityServer/{namespace}/{}", r.name)
            }
            crate::api::ServerKind::ClusterIdentityServer => {
                format!("ClusterIdentityServer/{}", r.name)
            }
        },
        (None, None) => String::new(),
    }
}

/// Runs the pass every [`PERIOD`] until aborted.
pub async fn run(ctx: Arc<Context>) {
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_warning: Option<Instant> = None;
    let mut last_budget_warning: Option<Instant> = None;
    loop {
        tick.tick().await;
        prune(&ctx);
        let shortfalls = ctx
            .index
            .shortfalls(|server| ctx.settings.organization_limits.for_url(server));
        ctx.metrics.record_budget(
            shortfalls.len(),
            shortfalls.first().map(|s| s.fits).unwrap_or_default(),
        );
        if let Some(worst) = shortfalls.first()
            && last_budget_warning.is_none_or(|at| at.elapsed() >= WARNING_INTERVAL)
        {
            warn!(
                organizations = shortfalls.len(),
                server = %worst.server,
                organization = %worst.organization,
                policies = worst.policies,
                fitting_resync_seconds = worst.fits.as_secs(),
                "the per-organization request budget (Automation Cloud's published limits, \
                 --automation-cloud-share) cannot check every policy within its resyncInterval; \
                 raise the policies' resyncInterval to the one that fits, or the share"
            );
            last_budget_warning = Some(Instant::now());
        }
        let snapshot = ctx.queue.snapshot();
        ctx.metrics.record_queue(figures(snapshot));
        if snapshot.overdue > 0 && last_warning.is_none_or(|at| at.elapsed() >= WARNING_INTERVAL) {
            warn!(
                overdue = snapshot.overdue,
                waiting = snapshot.waiting,
                running = snapshot.running,
                oldest_wait_seconds = snapshot.oldest_wait.as_secs(),
                "the operator cannot keep up: resyncs are waiting longer than their policies' \
                 resync interval; raise --concurrency / --identity-concurrency or the policies' \
                 resyncInterval"
            );
            last_warning = Some(Instant::now());
        }
    }
}

fn figures(snapshot: Snapshot) -> QueueFigures {
    QueueFigures {
        waiting: snapshot.waiting,
        running: snapshot.running,
        oldest_wait_seconds: snapshot.oldest_wait.as_secs_f64(),
        overdue: snapshot.overdue,
    }
}

/// Drops what the process still keeps for policies the index does not hold (a reconcile still
/// running when its policy went may leave some behind), and Secret data nothing reads.
fn prune(ctx: &Context) {
    ctx.reads.prune();
    let forgotten = ctx.prune();
    if forgotten > 0 {
        debug!(forgotten, "pruned state of policies that no longer exist");
    }
    // The server definitions' Secrets (credentials, CA) are read too.
    let servers_read: HashSet<(String, String)> = ctx.servers.secrets_read().into_iter().collect();
    ctx.secrets.retain(|ns, name| {
        ctx.index.is_secret_read(ns, name)
            || servers_read.contains(&(ns.to_owned(), name.to_owned()))
    });
}
