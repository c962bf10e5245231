//! One reconcile of one policy: resolve → plan → write → status, with the I/O around the pure
//! steps in [`crate::reconcile`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use crate::controller::events::{Event, EventType};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{Instrument, info, info_span, warn};

use super::context::{Context, jittered};
use super::error;
use super::error::{ReconcileError, Recovery};
use super::restore;
use super::servers::HeldServer;
use crate::api::{
    DeletionPolicy, FIELD_MANAGER, FINALIZER, IdentitySettingPolicy, IdentitySettingPolicyStatus,
    SyncInputs,
};
use crate::identity::client::IdentityClient;
use crate::identity::redact::Redactor;
use crate::reconcile::claims::{PolicyName, conflict_message};
use crate::reconcile::decide::{AfterWrite, BeforeWrite, after_write, before_write};
use crate::reconcile::inputs::{self, SecretVersions};
use crate::reconcile::plan::{plan, planned_changes};
use crate::reconcile::resolve::{
    Resolved, SecretData, referenced_secrets, resolve, resolve_from, secret_keys, server_secrets,
    setting_secrets,
};
use crate::reconcile::restore::{SKIP_RESTORE_ANNOTATION, SavedScope, restore_writes};
use crate::reconcile::server_ref::{ServerRefError, referenced, scope_allowed};
use crate::reconcile::status::{
    Outcome, READY, event_action, event_worthy, next_status, reason, truncate, was_in_sync,
};
use crate::reconcile::validate::{
    Suspension, ValidPolicy, resync_interval, setting_scope, validate, validate_with,
};
use crate::secret::SecretString;

/// Reconciles one policy. Errors from the identity service or Secrets become status conditions
/// here; only a failed finalizer or status write is returned (and retried with backoff).
pub async fn reconcile(
    policy: Arc<IdentitySettingPolicy>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let span = info_span!("reconcile", policy = %ObjectRef::from_obj(&*policy));
    let lost = ctx.clone();
    // A replica that steps down drops its in-flight reconciles at once (an identity call can
    // take up to its retry budget): the new leader may start within the lease's margin.
    tokio::select! {
        biased;
        () = lost.leadership_lost() => Err(ReconcileError::NotLeading),
        result = reconcile_policy(policy, ctx).instrument(span) => result,
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
) -> Result<Action, ReconcileError> {
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
        return Ok(Action::await_change());
    }
    if !finalized && !needs_finalizer {
        return apply(policy, &ctx, &api, &oref).await;
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
        let released = remove_finalizer(&api, &policy).await?;
        info!("deletionPolicy Retain: finalizer removed");
        return apply(Arc::new(released), &ctx, &api, &oref).await;
    }
    // kube's finalizer helper adds our finalizer first (with a JSON-patch test, so a concurrent
    // change by someone else fails and is retried instead of lost), and removes it only after
    // `cleanup` succeeded.
    finalizer(&api, FINALIZER, policy, |event| async {
        match event {
            FinalizerEvent::Apply(policy) => apply(policy, &ctx, &api, &oref).await,
            FinalizerEvent::Cleanup(policy) => cleanup(policy, &ctx, &api, &oref).await,
        }
    })
    .await
    .map_err(ReconcileError::from)
}

/// Removes our finalizer, keeping everyone else's; returns the policy as stored after it. The
/// resourceVersion makes the patch conditional: a concurrent change (someone else's finalizer
/// added) fails with 409 and is retried, instead of being undone.
async fn remove_finalizer(
    api: &Api<IdentitySettingPolicy>,
    policy: &IdentitySettingPolicy,
) -> Result<IdentitySettingPolicy, ReconcileError> {
    let others: Vec<&String> = policy
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .collect();
    let patch = json!({"metadata": {
        "finalizers": others,
        "resourceVersion": policy.resource_version(),
    }});
    Ok(api
        .patch(
            &policy.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?)
}

/// Brings the server in line with the policy and reports the outcome in status.
async fn apply(
    policy: Arc<IdentitySettingPolicy>,
    ctx: &Context,
    api: &Api<IdentitySettingPolicy>,
    oref: &ObjectRef<IdentitySettingPolicy>,
) -> Result<Action, ReconcileError> {
    // Our own last write is not in the cache yet: deciding from the status it replaced would
    // undo it (an `Applied` rewritten as `InSync`). Look again once the cache caught up.
    if ctx.cache_lags(
        oref,
        policy.metadata.uid.as_deref(),
        policy.metadata.resource_version.as_deref(),
    ) {
        return Ok(Action::requeue(CACHE_LAG_RETRY));
    }

    let mut found = Findings::default();
    let now = jiff::Timestamp::now();
    let (outcome, action) = match validate_policy(ctx, &policy).await {
        Ok(valid) if let Some(suspension) = valid.suspended_at(now) => {
            // No Secret, token or identity call while suspended; look again when it ends.
            ctx.reset_backoff(oref);
            let action = match suspension {
                Suspension::UntilResumed => Action::await_change(),
                Suspension::Until(until) => Action::requeue(
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
    report(ctx, api, &policy, oref, &outcome, &found).await?;
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

/// Checks the policy with the server it uses: its inline `spec.server`, or the server its
/// `spec.serverRef` names, found in the watched server definitions (waiting for their first
/// list) and allowed for its namespace.
async fn validate_policy(
    ctx: &Context,
    policy: &IdentitySettingPolicy,
) -> Result<ValidPolicy, ReconcileError> {
    let Some(reference) = policy
        .spec
        .server_ref
        .as_ref()
        .filter(|_| policy.spec.server.is_none())
    else {
        return validate(&policy.spec).map_err(ReconcileError::InvalidSpec);
    };
    if !ctx.servers.wait_listed().await {
        return Err(ServerRefError::NotListed {
            kind: reference.kind.as_str(),
        }
        .into());
    }
    let namespace = policy.namespace().unwrap_or_default();
    let held = ctx.servers.lookup(&namespace, reference);
    let labels = ctx.servers.namespace_labels(&namespace);
    let referenced = referenced(
        &namespace,
        &setting_scope(&policy.spec),
        reference,
        held.as_ref().map(HeldServer::as_found),
        labels.as_ref(),
    )?;
    validate_with(&policy.spec, Some(referenced)).map_err(ReconcileError::InvalidSpec)
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
) -> (Outcome, Action) {
    let error = match result {
        Ok(outcome) => {
            ctx.reset_backoff(oref);
            return (outcome, Action::requeue(jittered(resync, rand::random())));
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
    (outcome, Action::requeue(delay))
}

/// Publishes an Event (first, so a failed status write cannot lose it; not again when the
/// write was announced before it was made), writes status when it changed, and updates
/// metrics.
async fn report(
    ctx: &Context,
    api: &Api<IdentitySettingPolicy>,
    policy: &IdentitySettingPolicy,
    oref: &ObjectRef<IdentitySettingPolicy>,
    outcome: &Outcome,
    found: &Findings,
) -> Result<(), ReconcileError> {
    // Events and status are writes too: a replica that no longer leads makes none.
    if !ctx.leading() {
        return Err(ReconcileError::NotLeading);
    }
    let keys: Vec<String> = policy.spec.settings.iter().map(|s| s.key.clone()).collect();
    let old = policy.status.as_ref();
    let old_reason = old
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == READY))
        .map(|c| c.reason.as_str());
    if event_worthy(old_reason, outcome) && found.announced != Some(outcome.reason()) {
        publish_event(ctx, policy, outcome, keys.len()).await;
    }
    let mut next = next_status(
        old,
        policy.meta().generation,
        &keys,
        outcome,
        jiff::Timestamp::now(),
    );
    if let Some(settled) = &found.settled {
        next.inputs = Some(settled.clone());
    }
    if old != Some(&next) {
        let stored = write_status(api, &policy.name_any(), &next).await?;
        ctx.expect_newer(
            oref,
            policy.metadata.uid.clone(),
            policy.metadata.resource_version.clone(),
            stored.metadata.resource_version.as_deref(),
        );
    }
    let corrected = match outcome {
        Outcome::Synced {
            reason: r, written, ..
        } if *r == reason::DRIFT_CORRECTED => written.len() as u64,
        _ => 0,
    };
    let drifted = matches!(outcome, Outcome::Drifted { .. } | Outcome::Planned { .. });
    ctx.metrics
        .record_reconcile(outcome.reason(), outcome.ready(), corrected, drifted);
    Ok(())
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
    let actual = client.get_settings(&valid.scope, &keys).await?;
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
    publish_write(ctx, policy, announced, &plan.keys(), valid.settings.len()).await;
    found.announced = Some(announced);
    let returned = client.put_settings(&valid.scope, &plan.writes).await?;
    let keys = plan.keys();
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

/// Resolves the policy's Secrets and gets a client of its identity server. Every secret value
/// read (and `also_secret`) goes to `redactor`, which the client applies to server texts before
/// it cuts them, and `decide` to the final message. Also returns the versions of the Secrets
/// the setting values came from (the inputs of [`crate::reconcile::inputs`]).
async fn connect(
    policy: &IdentitySettingPolicy,
    valid: &ValidPolicy,
    ctx: &Context,
    oref: &ObjectRef<IdentitySettingPolicy>,
    redactor: &mut Redactor,
    also_secret: &[&str],
) -> Result<(Resolved, IdentityClient, SecretVersions), ReconcileError> {
    let namespace = policy.namespace().unwrap_or_default();
    let mut versions = SecretVersions::new();
    let resolved = match &valid.server_secrets_namespace {
        // A ClusterIdentityServer: its Secrets are in its own namespace.
        Some(server_namespace) => {
            let server = fetch_secrets(ctx, valid, server_namespace, server_secrets(valid)).await?;
            let settings = fetch_secrets_versioned(
                ctx,
                valid,
                &namespace,
                setting_secrets(valid),
                &mut versions,
            )
            .await?;
            resolve_from(valid, &server, &settings)?
        }
        None => {
            let mut all = SecretVersions::new();
            let data = fetch_secrets_versioned(
                ctx,
                valid,
                &namespace,
                referenced_secrets(valid),
                &mut all,
            )
            .await?;
            let values_from = setting_secrets(valid);
            versions = all
                .into_iter()
                .filter(|((_, name), _)| values_from.contains(name))
                .collect();
            resolve(valid, &data)?
        }
    };
    *redactor = Redactor::new(
        resolved
            .secret_values
            .iter()
            .map(SecretString::expose)
            .chain(also_secret.iter().copied()),
    );
    let client = ctx
        .identity_client(
            oref,
            &valid.base_url,
            &resolved.credentials,
            resolved.ca_pem.as_deref(),
            valid.budget,
        )
        .await?
        .redacting(redactor.clone());
    Ok((resolved, client, versions))
}

/// The data of each of the Secrets `names` of `namespace` that exists: from the cache while the
/// version it was read at is current, else read from the API server (and cached). A failure to
/// read (RBAC, API server down) becomes a `KubernetesError` condition, retried with backoff.
/// Only the keys `valid` reads of each Secret (see [`secret_keys`]) are kept, in the cache and
/// in the answer.
pub(super) async fn fetch_secrets(
    ctx: &Context,
    valid: &ValidPolicy,
    namespace: &str,
    names: BTreeSet<String>,
) -> Result<BTreeMap<String, SecretData>, ReconcileError> {
    let mut versions = SecretVersions::new();
    fetch_secrets_versioned(ctx, valid, namespace, names, &mut versions).await
}

/// [`fetch_secrets`], adding each Secret's resourceVersion to `versions`.
async fn fetch_secrets_versioned(
    ctx: &Context,
    valid: &ValidPolicy,
    namespace: &str,
    names: BTreeSet<String>,
    versions: &mut SecretVersions,
) -> Result<BTreeMap<String, SecretData>, ReconcileError> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let wanted = secret_keys(valid);
    let none = BTreeSet::new();
    let mut data = BTreeMap::new();
    for name in names {
        let keys = wanted.get(&name).unwrap_or(&none);
        if let Some(cached) = ctx.secrets.get(namespace, &name, keys) {
            if let Some(version) = ctx.secrets.version(namespace, &name) {
                versions.insert((namespace.to_owned(), name.clone()), version);
            }
            data.insert(name, (*cached).clone());
            continue;
        }
        let secret = api
            .get_opt(&name)
            .await
            .map_err(ReconcileError::SecretRead)?;
        if let Some(secret) = secret {
            let version = secret.metadata.resource_version;
            if let Some(version) = &version {
                versions.insert((namespace.to_owned(), name.clone()), version.clone());
            }
            let held = ctx.secrets.insert(
                namespace,
                &name,
                version,
                keys,
                secret.data.unwrap_or_default(),
            );
            data.insert(name, (*held).clone());
        }
    }
    Ok(data)
}

/// Deletion. `Retain`: the settings stay and the finalizer goes at once — no identity or
/// Secret call, so a dead server or a deleted Secret never blocks it. `Restore`: the saved
/// values are written back first; while that fails, status says why and how to give up
/// (annotation `identitysettings.dev/skip-restore: "true"`), and deletion waits.
async fn cleanup(
    policy: Arc<IdentitySettingPolicy>,
    ctx: &Context,
    api: &Api<IdentitySettingPolicy>,
    oref: &ObjectRef<IdentitySettingPolicy>,
) -> Result<Action, ReconcileError> {
    let skip = policy
        .annotations()
        .get(SKIP_RESTORE_ANNOTATION)
        .is_some_and(|v| v == "true");
    if policy.spec.deletion_policy == Some(DeletionPolicy::Restore) && !skip {
        let mut redactor = Redactor::default();
        let namespace_going = ctx
            .servers
            .namespace_terminating(&policy.namespace().unwrap_or_default());
        match restore_saved(&policy, ctx, oref, &mut redactor).await {
            Ok(Some(note)) => {
                info!(%note, "policy deleted; saved values restored");
                publish_note(ctx, &policy, EventType::Normal, "Restored", note).await;
            }
            Ok(None) => info!("policy deleted; nothing was saved, so nothing to restore"),
            Err(error) if namespace_going && give_up_in_deleted_namespace(&policy, &error) => {
                // Nobody can act on it in a namespace being deleted (its Secrets go with it, and
                // nothing new may be created there): say so and let it go.
                let note = truncate(
                    redactor.redact(&format!(
                        "not restored, and the namespace is being deleted, so the policy goes \
                         anyway: {error}"
                    )),
                    1024,
                );
                warn!(%note, "restore skipped");
                publish_note(ctx, &policy, EventType::Warning, "RestoreSkipped", note).await;
            }
            Err(error) => {
                let message = redactor.redact(&format!(
                    "deletion waits to write back the values saved before the first write \
                     (deletionPolicy Restore): {error}; it is retried. To delete without \
                     restoring: kubectl annotate isp {} {SKIP_RESTORE_ANNOTATION}=true",
                    policy.name_any()
                ));
                warn!(%message, "could not restore saved values");
                // A restore point that cannot be used needs the user; anything else is retried.
                let reason = match &error {
                    ReconcileError::RestorePoint(_) => error::reason::RESTORE_POINT_UNUSABLE,
                    _ => error::reason::RESTORE_PENDING,
                };
                let outcome = Outcome::failed(reason, message);
                report(ctx, api, &policy, oref, &outcome, &Findings::default()).await?;
                return Err(error);
            }
        }
    } else {
        info!(
            skip_restore = skip,
            "policy deleted; settings retained on the identity service"
        );
    }
    // Restore or not, a restore point written once (the policy may have been Restore before)
    // carries the operator's finalizer: let it go with the policy.
    if policy.spec.deletion_policy == Some(DeletionPolicy::Restore)
        || policy
            .status
            .as_ref()
            .is_some_and(|s| s.restore_point.is_some())
    {
        restore::release(ctx, &policy).await?;
    }
    Ok(Action::await_change())
}

/// How long a restore in a namespace being deleted is retried after a transient error before
/// the policy goes without it: the namespace's deletion waits for it, and must not forever.
const RESTORE_GRACE_IN_DELETED_NAMESPACE: Duration = Duration::from_secs(5 * 60);

/// Whether a restore that failed with `error` in a namespace being deleted is given up: at once
/// when it needs the user (a missing Secret or restore point cannot come back there), after
/// [`RESTORE_GRACE_IN_DELETED_NAMESPACE`] since the deletion began when it is transient.
fn give_up_in_deleted_namespace(policy: &IdentitySettingPolicy, error: &ReconcileError) -> bool {
    if matches!(error, ReconcileError::RestorePoint(_)) || error.recovery() == Recovery::NeedsUser {
        return true;
    }
    let since = policy
        .metadata
        .deletion_timestamp
        .as_ref()
        .map(|t| jiff::Timestamp::now().duration_since(t.0));
    since.is_some_and(|d| {
        Duration::try_from(d).is_ok_and(|d| d >= RESTORE_GRACE_IN_DELETED_NAMESPACE)
    })
}

/// Writes the restore point's values back, each scope's into that scope; the note for the
/// Event, or `None` when nothing was saved. Only keys the policy manages (or managed: its
/// `status.appliedSettings`) are written, and only on the server it uses now.
async fn restore_saved(
    policy: &IdentitySettingPolicy,
    ctx: &Context,
    oref: &ObjectRef<IdentitySettingPolicy>,
    redactor: &mut Redactor,
) -> Result<Option<String>, ReconcileError> {
    let Some(point) = restore::load_for_restore(ctx, policy).await? else {
        return Ok(None);
    };
    if point.is_empty() {
        return Ok(None);
    }
    let valid = validate_policy(ctx, policy).await?;
    let managed: BTreeSet<String> = policy
        .spec
        .settings
        .iter()
        .map(|s| s.key.to_ascii_lowercase())
        .chain(
            policy
                .status
                .iter()
                .flat_map(|s| &s.applied_settings)
                .map(|a| a.key.to_ascii_lowercase()),
        )
        .collect();
    let current = SavedScope::of(&valid.base_url, &valid.scope);
    let (mut restores, elsewhere) = restore_writes(&point, &current, |k| {
        managed.contains(&k.to_ascii_lowercase())
    });
    // Through a shared server, only scopes it still lets this namespace manage are written.
    let namespace = policy.namespace().unwrap_or_default();
    let held = policy
        .spec
        .server_ref
        .as_ref()
        .and_then(|r| ctx.servers.lookup(&namespace, r));
    let before = restores.len();
    if let Some(HeldServer::Cluster(server)) = &held {
        restores.retain(|r| scope_allowed(&server.spec.allowed_partitions, &namespace, &r.scope));
    }
    let refused_scopes = before - restores.len();
    let mut restored = Vec::new();
    let mut unset = Vec::new();
    if restores.iter().any(|r| !r.writes.is_empty()) {
        // The saved values may be secrets: they are cut out of every message too.
        let saved: Vec<&str> = restores
            .iter()
            .flat_map(|r| &r.writes)
            .map(|w| w.value.as_str())
            .collect();
        let (_, client, _) = connect(policy, &valid, ctx, oref, redactor, &saved).await?;
        for restore in &restores {
            if restore.writes.is_empty() {
                continue;
            }
            if !ctx.leading() {
                return Err(ReconcileError::NotLeading);
            }
            client.put_settings(&restore.scope, &restore.writes).await?;
            restored.extend(restore.writes.iter().map(|w| w.key.clone()));
        }
    }
    for restore in &restores {
        unset.extend(restore.unset.iter().cloned());
    }
    let mut note = format!(
        "restored {} settings: {}",
        restored.len(),
        restored.join(", ")
    );
    if restores.len() > 1 {
        note.push_str(&format!(
            " (in {} organizations or users, each its own values)",
            restores.len()
        ));
    }
    if !unset.is_empty() {
        note.push_str(&format!(
            "; left as the policy set them (they had no value before, and the identity API \
             cannot delete a setting): {}",
            unset.join(", ")
        ));
    }
    if refused_scopes > 0 {
        note.push_str(&format!(
            "; not restored: values saved for {refused_scopes} organization(s) or user(s) the \
             ClusterIdentityServer no longer lets this namespace manage"
        ));
    }
    if !elsewhere.is_empty() {
        note.push_str(&format!(
            "; not restored: values saved on {} other server(s), which this policy no longer \
             uses (its credentials are not sent there)",
            elsewhere.len()
        ));
    }
    Ok(Some(truncate(note, 1024)))
}

async fn write_status(
    api: &Api<IdentitySettingPolicy>,
    name: &str,
    status: &IdentitySettingPolicyStatus,
) -> Result<IdentitySettingPolicy, ReconcileError> {
    // The restore point record has its own field manager (see `restore`): this apply never
    // owns it, so a status computed from a stale cache cannot set it back.
    let status = IdentitySettingPolicyStatus {
        restore_point: None,
        ..status.clone()
    };
    let body = json!({
        "apiVersion": IdentitySettingPolicy::api_version(&()),
        "kind": IdentitySettingPolicy::kind(&()),
        "status": status,
    });
    Ok(api
        .patch_status(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await?)
}

/// Publishes an Event with `reason` and `note` about the policy.
async fn publish_note(
    ctx: &Context,
    policy: &IdentitySettingPolicy,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.to_owned(),
        action: event_action(reason, &note),
        note: Some(note),
        secondary: None,
    };
    if let Err(e) = ctx.events.publish(&event, &policy.object_ref(&())).await {
        warn!(error = %e, "could not publish event");
    }
}

/// Announces a write before it is made: a Normal Event with the reason the write will report
/// (`Applied` or `DriftCorrected`) and the keys it writes.
async fn publish_write(
    ctx: &Context,
    policy: &IdentitySettingPolicy,
    reason: &'static str,
    keys: &[String],
    total: usize,
) {
    let note = truncate(
        format!(
            "writing {} of {total} settings: {}",
            keys.len(),
            keys.join(", ")
        ),
        1024,
    );
    publish_note(ctx, policy, EventType::Normal, reason, note).await;
}

/// Publishes the outcome as an Event (Normal when Ready, Warning otherwise).
async fn publish_event(
    ctx: &Context,
    policy: &IdentitySettingPolicy,
    outcome: &Outcome,
    total: usize,
) {
    let wrote = matches!(outcome, Outcome::Synced { written, .. } if !written.is_empty());
    let note = truncate(outcome.message(total), 1024);
    let event = Event {
        type_: if outcome.ready() {
            EventType::Normal
        } else {
            EventType::Warning
        },
        reason: outcome.reason().to_owned(),
        action: event_action(if wrote { "Apply" } else { "Sync" }, &note),
        note: Some(note),
        secondary: None,
    };
    if let Err(e) = ctx.events.publish(&event, &policy.object_ref(&())).await {
        warn!(error = %e, "could not publish event");
    }
}
