//! Every write one reconcile makes to Kubernetes — status, Events, our finalizer — each made
//! only while this replica leads. (The identity PUT is the client's, made by the reconciler
//! after its own leadership check; restore points are `restore`'s.)

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::warn;

use super::context::Context;
use super::error::ReconcileError;
use super::events::{Event, EventType};
use crate::api::{
    FIELD_MANAGER, FINALIZER, IdentitySettingPolicy, IdentitySettingPolicyStatus, SettingKey,
    SyncInputs,
};
use crate::reconcile::status::{
    Outcome, READY, event_action, event_worthy, next_status, reason, truncate, written_keys,
};
use crate::reconcile::status_patch::status_patch;

/// Removes our finalizer, keeping everyone else's; returns the policy as stored after it. The
/// resourceVersion makes the patch conditional: a concurrent change (someone else's finalizer
/// added) fails with 409 and is retried, instead of being undone.
pub(super) async fn remove_finalizer(
    ctx: &Context,
    api: &Api<IdentitySettingPolicy>,
    policy: &IdentitySettingPolicy,
) -> Result<IdentitySettingPolicy, ReconcileError> {
    if !ctx.leading() {
        return Err(ReconcileError::NotLeading);
    }
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

/// Publishes an Event (first, so a failed status write cannot lose it; not again when the
/// write was announced before it was made), writes status when it changed, and updates
/// metrics.
pub(super) async fn report(
    ctx: &Context,
    api: &Api<IdentitySettingPolicy>,
    policy: &IdentitySettingPolicy,
    oref: &ObjectRef<IdentitySettingPolicy>,
    outcome: &Outcome,
    announced: Option<&'static str>,
    settled: Option<&SyncInputs>,
) -> Result<(), ReconcileError> {
    // Events and status are writes too: a replica that no longer leads makes none.
    if !ctx.leading() {
        return Err(ReconcileError::NotLeading);
    }
    let keys: Vec<SettingKey> = policy.spec.settings.iter().map(|s| s.key.clone()).collect();
    let old = policy.status.as_ref();
    let old_reason = old
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == READY))
        .map(|c| c.reason.as_str());
    if event_worthy(old_reason, outcome) && announced != Some(outcome.reason()) {
        publish_event(ctx, policy, outcome, keys.len()).await;
    }
    let mut next = next_status(
        old,
        policy.meta().generation,
        &keys,
        outcome,
        jiff::Timestamp::now(),
    );
    if let Some(settled) = settled {
        next.inputs = Some(settled.clone());
    }
    if old != Some(&next)
        && let Some(stored) = write_status(api, &policy.name_any(), old, &next).await?
    {
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

/// Writes the policy's status as a merge patch from the status the cache holds (see
/// [`status_patch`]), as the operator's field manager; `None` when only the restore point
/// record, which is not this write's, differs.
async fn write_status(
    api: &Api<IdentitySettingPolicy>,
    name: &str,
    old: Option<&IdentitySettingPolicyStatus>,
    new: &IdentitySettingPolicyStatus,
) -> Result<Option<IdentitySettingPolicy>, ReconcileError> {
    let Some(patch) = status_patch(old, new) else {
        return Ok(None);
    };
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    Ok(Some(
        api.patch_status(name, &params, &Patch::Merge(&patch))
            .await?,
    ))
}

/// Publishes an Event with `reason` and `note` about the policy.
pub(super) async fn publish_note(
    ctx: &Context,
    policy: &IdentitySettingPolicy,
    type_: EventType,
    reason: &str,
    note: String,
) {
    // A replica that no longer leads publishes nothing (its reconcile is being dropped).
    if !ctx.leading() {
        return;
    }
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
/// (`Applied` or `DriftCorrected`) and the keys it writes, out of the policy's `total`.
pub(super) async fn publish_write(
    ctx: &Context,
    policy: &IdentitySettingPolicy,
    reason: &'static str,
    keys: &[String],
    total: usize,
) {
    let note = truncate(format!("writing {}", written_keys(keys, total)), 1024);
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
