//! One reconcile of one policy, as a pipeline: the driver (leadership, finalizer, error
//! policy), then [`super::gather`] (every read: server definition, Secrets, the identity GET),
//! the pure decisions of [`crate::reconcile::decide`] (before and after a write), and
//! [`super::write`] (status, Events, the finalizer) — with the identity PUT and the restore
//! point the one write made here, after the leadership check. Deletion is [`super::deletion`].

use std::sync::Arc;
use std::time::Duration;

use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use tracing::{Instrument, info, info_span, warn};

use super::context::{Context, jittered};
use super::deletion::cleanup;
use super::error::{ReconcileError, Recovery};
use super::gather::{connect, forget_shared_read, read_current, validate_policy};
use super::queue::Permit;
use super::restore;
use super::resyncs::Next;
use super::write::{publish_write, remove_finalizer, report};
use crate::api::{DeletionPolicy, FINALIZER, IdentitySettingPolicy, SyncInputs};
use crate::identity::redact::Redactor;
use crate::reconcile::claims::{PolicyName, conflict_message};
use crate::reconcile::decide::{AfterWrite, BeforeWrite, after_write, before_write};
use crate::reconcile::inputs;
use crate::reconcile::plan::{plan, planned_changes};
use crate::reconcile::status::{Outcome, reason, was_in_sync};
use crate::reconcile::validate::{Suspension, ValidPolicy, resync_interval, validate};

/// Reconciles one policy. Errors from the identity service or Secrets become status conditions
/// here; only a failed finalizer or status write is returned (and retried with backoff).
pub async fn reconcile(
    policy: Arc<IdentitySettingPolicy>,
    ctx: Arc<Context>,
) -> Result<Next, ReconcileError> {
    reconcile_admitted(policy, ctx, None).await
}

/// Reconciles one policy the work queue admitted: the identity server's share of the queue
/// goes to the next policy as soon as this one is done talking to the server, before its
/// status write.
pub async fn reconcile_admitted(
    policy: Arc<IdentitySettingPolicy>,
    ctx: Arc<Context>,
    permit: Option<&Permit>,
) -> Result<Next, ReconcileError> {
    let span = info_span!("reconcile", policy = %ObjectRef::from_obj(&*policy));
    let lost = ctx.clone();
    // A replica that steps down drops its in-flight reconciles at once (an identity call can
    // take up to its retry budget): the new leader may start within the lease's margin.
    tokio::select! {
        biased;
        () = lost.leadership_lost() => Err(ReconcileError::NotLeading),
        result = reconcile_policy(policy, ctx, permit).instrument(span) => result,
    }
}

/// After a failed finalizer or status write: back off per policy.
pub fn error_policy(
    policy: Arc<IdentitySettingPolicy>,
    error: &ReconcileError,
    ctx: Arc<Context>,
) -> Action {
    let delay = ctx.next_backoff(&ObjectRef::from_obj(&*policy), None);
    warn!(policy = %ObjectRef::from_obj(&*policy), %error, ?delay, "reconcile failed; retrying");
    Action::requeue(delay)
}

async fn reconcile_policy(
    policy: Arc<IdentitySettingPolicy>,
    ctx: Arc<Context>,
    permit: Option<&Permit>,
) -> Result<Next, ReconcileError> {
    let _timer = ctx.metrics.reconcile_timer();
    let oref = ObjectRef::from_obj(&*policy);
    let namespace = policy.namespace().unwrap_or_default();
    let api: Api<IdentitySettingPolicy> = Api::namespaced(ctx.client.clone(), &namespace);
    // Only the deletion of a `Restore` policy has something to do (write the saved values
    // back), so only such a policy carries the finalizer: a `Retain` one is deleted at once,
    // whether the operator runs or not. A Restore policy whose spec can never be used, and that
    // carries no finalizer yet, gets none either (the API server also refuses to add one to an
    // object stored before its schema's rules, which it would fail now).
    let finalized = policy.finalizers().iter().any(|f| f == FINALIZER);
    let deleting = policy.metadata.deletion_timestamp.is_some();
    let restores = policy.spec.deletion_policy == Some(DeletionPolicy::Restore);
    let needs_finalizer = restores
        && (finalized || policy.spec.server_ref.is_some() || validate(&policy.spec).is_ok());
    if !finalized && deleting {
        return Ok(Next::OnChange);
    }
    if !finalized && !needs_finalizer {
        return apply(policy, &ctx, &api, &oref, permit).await;
    }
    if finalized && !needs_finalizer && !deleting {
        // Retain now, or a policy from a version that finalized every policy: neither its
        // restore point nor the finalizer is needed any more.
        if policy
            .status
            .as_ref()
            .is_some_and(|s| s.restore_point.is_some())
        {
            restore::release(&ctx, &policy).await?;
        }
        let released = remove_finalizer(&ctx, &api, &policy).await?;
        info!("deletionPolicy Retain: finalizer removed");
        return apply(Arc::new(released), &ctx, &api, &oref, permit).await;
    }
    // kube's finalizer helper adds our finalizer first (with a JSON-patch test, so a concurrent
    // change by someone else fails and is retried instead of lost), and removes it only after
    // `cleanup` succeeded. It speaks kube's `Action`, which does not tell its delay: what our
    // step decided is kept aside. When the helper only added the finalizer, that change brings
    // the policy back.
    let next = std::sync::Mutex::new(Next::OnChange);
    finalizer(&api, FINALIZER, policy, |event| async {
        let decided = match event {
            FinalizerEvent::Apply(policy) => apply(policy, &ctx, &api, &oref, permit).await?,
            FinalizerEvent::Cleanup(policy) => cleanup(policy, &ctx, &api, &oref).await?,
        };
        *next.lock().unwrap_or_else(|e| e.into_inner()) = decided;
        Ok::<_, ReconcileError>(Action::await_change())
    })
    .await
    .map_err(ReconcileError::from)?;
    Ok(next.into_inner().unwrap_or_else(|e| e.into_inner()))
}

/// Brings the server in line with the policy and reports the outcome in status.
async fn apply(
    policy: Arc<IdentitySettingPolicy>,
    ctx: &Context,
    api: &Api<IdentitySettingPolicy>,
    oref: &ObjectRef<IdentitySettingPolicy>,
    permit: Option<&Permit>,
) -> Result<Next, ReconcileError> {
    // Our own last write is not in the cache yet: deciding from the status it replaced would
    // undo it (an `Applied` rewritten as `InSync`). Look again once the cache caught up.
    if ctx.cache_lags(
        oref,
        policy.metadata.uid.as_deref(),
        policy.metadata.resource_version.as_deref(),
    ) {
        return Ok(Next::After(CACHE_LAG_RETRY));
    }

    let mut found = Findings::default();
    let now = jiff::Timestamp::now();
    let (outcome, action) = match validate_policy(ctx, &policy).await {
        Ok(valid) if let Some(suspension) = valid.suspended_at(now) => {
            // No Secret, token or identity call while suspended; look again when it ends.
            ctx.reset_backoff(oref);
            let action = match suspension {
                Suspension::UntilResumed => Next::OnChange,
                Suspension::Until(until) => Next::After(
                    Duration::try_from(until.duration_since(now))
                        .unwrap_or_default()
                        .saturating_add(Duration::from_secs(1)),
                ),
            };
            info!(until = ?suspension, "policy suspended; nothing read or written");
            let outcome = Outcome::failed(reason::SUSPENDED, suspension.message());
            (outcome, action)
        }
        Ok(valid) => {
            // Claims of policies naming a server use its URL once the servers are listed.
            ctx.servers.wait_listed().await;
            let owned = ctx
                .ownership
                .owned_by_others(&policy, &valid.base_url)
                .await;
            let deadline = ctx.settings.reconcile_deadline;
            let calls = async {
                if owned.is_empty() {
                    sync(&policy, &valid, ctx, oref, &mut found).await
                } else {
                    sync_unowned(&policy, &valid, &owned, ctx, oref, &mut found).await
                }
            };
            let result = tokio::time::timeout(deadline, calls)
                .await
                .unwrap_or(Err(ReconcileError::DeadlineExceeded(deadline)));
            decide(ctx, oref, result, valid.resync, &mut found)
        }
        Err(error) => decide(
            ctx,
            oref,
            Err(error),
            resync_interval(&policy.spec),
            &mut found,
        ),
    };
    // What is left is Kubernetes writes: the next policy may talk to the server.
    if let Some(permit) = permit {
        permit.leave_server();
    }
    report(
        ctx,
        api,
        &policy,
        oref,
        &outcome,
        found.announced,
        found.settled.as_ref(),
    )
    .await?;
    Ok(action)
}

/// How soon a reconcile that found the cache behind our own write looks again.
const CACHE_LAG_RETRY: Duration = Duration::from_millis(200);

/// What one reconcile found on its way, besides its outcome.
#[derive(Default)]
struct Findings {
    /// The secret values read (and saved values written), cut out of every message.
    redactor: Redactor,
    /// The keys found differing, for status should the write fail.
    differing: Option<Vec<String>>,
    /// The inputs the check settled (in sync, or written and refused): `status.inputs`.
    settled: Option<SyncInputs>,
    /// The reason of the Event already published before the write (see [`sync`]).
    announced: Option<&'static str>,
}

/// Turns a sync result into what status shows and when to look again: the resync interval after
/// success or an error that needs the user; exponential backoff (or the server's `Retry-After`)
/// after a transient one.
fn decide(
    ctx: &Context,
    oref: &ObjectRef<IdentitySettingPolicy>,
    result: Result<Outcome, ReconcileError>,
    resync: Duration,
    found: &mut Findings,
) -> (Outcome, Next) {
    let error = match result {
        Ok(outcome) => {
            ctx.reset_backoff(oref);
            return (outcome, Next::After(jittered(resync, rand::random())));
        }
        Err(error) => error,
    };
    let delay = match error.recovery() {
        Recovery::Backoff => ctx.next_backoff(oref, error.retry_after()),
        Recovery::NeedsUser => {
            ctx.reset_backoff(oref);
            jittered(resync, rand::random())
        }
    };
    // The server's own words may quote a value it refused: take every secret out first.
    let message = found.redactor.redact(&error.to_string());
    warn!(reason = error.reason(), %message, ?delay, "policy not in sync");
    let outcome = Outcome::Failed {
        reason: error.reason(),
        message,
        differing: found.differing.take(),
    };
    (outcome, Next::After(delay))
}

/// Resolves Secrets, reads the server, writes what differs; returns what happened, and notes in
/// `found` the secret values read, the keys found differing and the inputs settled.
///
/// A write is announced by its Event before the PUT: should the process die between the PUT
/// and the status write, the write still shows in what users see (and the restarted operator,
/// finding the server in sync, writes nothing more).
async fn sync(
    policy: &IdentitySettingPolicy,
    valid: &ValidPolicy,
    ctx: &Context,
    oref: &ObjectRef<IdentitySettingPolicy>,
    found: &mut Findings,
) -> Result<Outcome, ReconcileError> {
    let (resolved, client, versions) =
        connect(policy, valid, ctx, oref, &mut found.redactor, &[]).await?;
    let keys: Vec<String> = resolved.desired.iter().map(|d| d.key.clone()).collect();
    let actual = read_current(ctx, policy, valid, &client, &keys).await?;
    let plan = plan(&resolved.desired, &actual, &valid.scope);
    found.differing = Some(plan.keys());
    let status = policy.status.as_ref();
    let declared = serde_json::to_string(&policy.spec.settings).unwrap_or_default();
    let digest = inputs::digest(&declared, &versions);
    match before_write(&plan, valid.mode, inputs::refused_before(status, &digest)) {
        BeforeWrite::Report(outcome) => {
            if let Outcome::Drifted { keys, .. } = &outcome {
                info!(?keys, "settings differ from the policy (observe mode)");
            } else {
                found.settled = Some(inputs::settled(digest, vec![]));
            }
            return Ok(outcome);
        }
        BeforeWrite::Plan => {
            let changes =
                planned_changes(&plan, |k| valid.is_secret(k), |v| found.redactor.redact(v));
            info!(keys = ?plan.keys(), "settings differ from the policy (plan mode)");
            return Ok(Outcome::Planned {
                ids: plan.ids,
                changes,
            });
        }
        BeforeWrite::NotAccepted(keys) => return Err(ReconcileError::NotAccepted(keys)),
        BeforeWrite::Write => {}
    }
    if !ctx.leading() {
        return Err(ReconcileError::NotLeading);
    }
    if policy.spec.deletion_policy == Some(DeletionPolicy::Restore) {
        restore::save_before_write(ctx, policy, valid, &plan).await?;
    }
    // Drift when this generation was in sync with these same inputs; else a change applied.
    let server_changed =
        was_in_sync(status, policy.meta().generation) && inputs::same_inputs(status, &digest);
    let announced = if server_changed {
        reason::DRIFT_CORRECTED
    } else {
        reason::APPLIED
    };
    // Out of all the policy's keys: a sync of the keys no older policy owns is not "all".
    let total = policy.spec.settings.len();
    publish_write(ctx, policy, announced, &plan.keys(), total).await;
    found.announced = Some(announced);
    let keys = plan.keys();
    forget_shared_read(ctx, policy, &keys);
    let put = client.put_settings(&valid.scope, &plan.writes).await;
    forget_shared_read(ctx, policy, &keys);
    let returned = put?;
    match after_write(plan, &returned, &valid.scope, server_changed) {
        AfterWrite::NotAccepted(rejected) => {
            found.settled = Some(inputs::settled(digest, rejected.clone()));
            Err(ReconcileError::NotAccepted(rejected))
        }
        AfterWrite::Synced(outcome) => {
            found.settled = Some(inputs::settled(digest, vec![]));
            info!(?keys, reason = outcome.reason(), "wrote settings");
            Ok(outcome)
        }
    }
}

/// Syncs only the keys no older policy owns, then reports `Conflict` naming the others and
/// their owners (with what the sync of the rest found). Owned keys are never read or written.
async fn sync_unowned(
    policy: &IdentitySettingPolicy,
    valid: &ValidPolicy,
    owned: &[(String, PolicyName)],
    ctx: &Context,
    oref: &ObjectRef<IdentitySettingPolicy>,
    found: &mut Findings,
) -> Result<Outcome, ReconcileError> {
    let keys: Vec<String> = owned.iter().map(|(k, _)| k.clone()).collect();
    let rest = valid.without(&keys);
    let total = valid.settings.len();
    let mut message = conflict_message(owned, total);
    let mut left = Some(vec![]);
    if !rest.settings.is_empty() {
        let outcome = sync(policy, &rest, ctx, oref, found).await?;
        message.push_str(&format!(
            ". The other settings: {}",
            outcome.message(rest.settings.len())
        ));
        left = outcome
            .differing()
            .map(|d| d.into_iter().map(str::to_owned).collect());
    }
    info!(?keys, "keys owned by an older policy; not written");
    Ok(Outcome::Failed {
        reason: reason::CONFLICT,
        message,
        differing: left,
    })
}
