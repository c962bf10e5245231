//! What deleting a policy does: nothing for `Retain` (it has no finalizer); for `Restore`, the
//! values saved before the first write go back, each scope's into that scope, before the
//! finalizer is removed — or the deletion waits, saying why, unless the namespace itself is
//! being deleted.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;
use tracing::{info, warn};

use super::context::Context;
use super::error::{self, ReconcileError, Recovery};
use super::events::EventType;
use super::gather::{connect, forget_shared_read, validate_policy};
use super::restore;
use super::resyncs::Next;
use super::servers::HeldServer;
use super::write::{publish_note, report};
use crate::api::{DeletionPolicy, IdentitySettingPolicy};
use crate::identity::redact::Redactor;
use crate::reconcile::restore::{SKIP_RESTORE_ANNOTATION, SavedScope, restore_writes};
use crate::reconcile::server_ref::scope_allowed;
use crate::reconcile::status::{Outcome, truncate};

/// Deletion. `Retain`: the settings stay and the finalizer goes at once — no identity or
/// Secret call, so a dead server or a deleted Secret never blocks it. `Restore`: the saved
/// values are written back first; while that fails, status says why and how to give up
/// (annotation `identitysettings.dev/skip-restore: "true"`), and deletion waits.
pub(super) async fn cleanup(
    policy: Arc<IdentitySettingPolicy>,
    ctx: &Context,
    api: &Api<IdentitySettingPolicy>,
    oref: &ObjectRef<IdentitySettingPolicy>,
) -> Result<Next, ReconcileError> {
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
                report(ctx, api, &policy, oref, &outcome, None, None).await?;
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
    Ok(Next::OnChange)
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
/// `status.settingIds`) are written, and only on the server it uses now.
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
                .flat_map(|s| s.setting_ids.keys())
                .map(|k| k.to_ascii_lowercase()),
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
            let keys: Vec<String> = restore.writes.iter().map(|w| w.key.clone()).collect();
            forget_shared_read(ctx, policy, &keys);
            let put = client.put_settings(&restore.scope, &restore.writes).await;
            forget_shared_read(ctx, policy, &keys);
            put?;
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
