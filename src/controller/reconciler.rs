//! One reconcile of one policy: resolve → plan → write → status, with the I/O around the pure
//! steps in [`crate::reconcile`].

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{Instrument, info, info_span, warn};

use super::context::{Context, SecretVersions, jittered};
use super::error::{ReconcileError, Recovery};
use crate::api::{FINALIZER, IdentitySettingPolicy, IdentitySettingPolicyStatus, SyncMode};
use crate::reconcile::plan::{not_accepted, plan};
use crate::reconcile::resolve::{SecretData, referenced_secrets, resolve};
use crate::reconcile::status::{Outcome, next_status, reason};
use crate::reconcile::validate::{DEFAULT_RESYNC, ValidPolicy, validate};

/// The field manager name for server-side apply of status.
pub const FIELD_MANAGER: &str = "identity-settings-operator";

/// Reconciles one policy. Errors from the identity service or Secrets become status conditions
/// here; only a failure to talk to Kubernetes itself is returned (and retried with backoff).
pub async fn reconcile(
    policy: Arc<IdentitySettingPolicy>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let span = info_span!("reconcile", policy = %ObjectRef::from_obj(&*policy));
    reconcile_policy(policy, ctx).instrument(span).await
}

/// After a Kubernetes API error: back off per policy.
pub fn error_policy(
    policy: Arc<IdentitySettingPolicy>,
    error: &ReconcileError,
    ctx: Arc<Context>,
) -> Action {
    let delay = ctx.next_backoff(&ObjectRef::from_obj(&*policy));
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

    if policy.meta().deletion_timestamp.is_some() {
        return cleanup(&api, &policy, &ctx, &oref).await;
    }
    ensure_finalizer(&api, &policy).await?;

    let valid = validate(&policy.spec).map_err(ReconcileError::InvalidSpec);
    let resync = valid.as_ref().map_or(DEFAULT_RESYNC, |v| v.resync);
    let keys: Vec<String> = policy.spec.settings.iter().map(|s| s.key.clone()).collect();
    let result = match valid {
        Ok(valid) => sync(&policy, &valid, &ctx, &oref, &namespace).await,
        Err(e) => Err(e),
    };
    let (outcome, action) = match result {
        Ok(outcome) => {
            ctx.reset_backoff(&oref);
            (outcome, Action::requeue(jittered(resync, rand::random())))
        }
        Err(ReconcileError::Kube(e)) => return Err(ReconcileError::Kube(e)),
        Err(error) => {
            let action = match error.recovery() {
                Recovery::Backoff => Action::requeue(ctx.next_backoff(&oref)),
                Recovery::NeedsUser => {
                    ctx.reset_backoff(&oref);
                    Action::requeue(jittered(resync, rand::random()))
                }
            };
            warn!(reason = error.reason(), %error, "policy not in sync");
            (
                Outcome::Failed {
                    reason: error.reason(),
                    message: error.to_string(),
                },
                action,
            )
        }
    };

    let old = policy.status.as_ref();
    let next = next_status(
        old,
        policy.meta().generation,
        &keys,
        &outcome,
        jiff::Timestamp::now(),
    );
    if old != Some(&next) {
        write_status(&api, &policy.name_any(), &next).await?;
    }
    publish_event(&ctx, &policy, old, &outcome, keys.len()).await;
    let corrected = match &outcome {
        Outcome::Synced {
            reason: r, written, ..
        } if *r == reason::DRIFT_CORRECTED => written.len() as u64,
        _ => 0,
    };
    ctx.metrics.record_reconcile(
        &oref.to_string(),
        outcome.reason(),
        outcome.ready(),
        corrected,
        matches!(outcome, Outcome::Drifted { .. }),
    );
    Ok(action)
}

/// Resolves Secrets, reads the server, writes what differs; returns what happened.
async fn sync(
    policy: &IdentitySettingPolicy,
    valid: &ValidPolicy,
    ctx: &Context,
    oref: &ObjectRef<IdentitySettingPolicy>,
    namespace: &str,
) -> Result<Outcome, ReconcileError> {
    let (secrets, versions) = fetch_secrets(ctx, namespace, valid).await?;
    let resolved = resolve(valid, &secrets)?;
    let client = ctx.identity_client(
        oref,
        &valid.base_url,
        &resolved.credentials,
        resolved.ca_pem.as_deref(),
    )?;
    let keys: Vec<String> = resolved.desired.iter().map(|d| d.key.clone()).collect();
    let actual = client.get_settings(&valid.scope, &keys).await?;
    let plan = plan(&resolved.desired, &actual);
    if plan.in_sync() {
        ctx.remember_secrets(oref, versions);
        return Ok(Outcome::Synced {
            reason: reason::IN_SYNC,
            ids: plan.ids,
            written: vec![],
        });
    }
    if valid.mode == SyncMode::Observe {
        let keys = plan.keys();
        info!(?keys, "settings differ from the policy (observe mode)");
        return Ok(Outcome::Drifted {
            ids: plan.ids,
            keys,
        });
    }
    let written = client.put_settings(&valid.scope, &plan.writes).await?;
    let rejected = not_accepted(&plan.writes, &written);
    if !rejected.is_empty() {
        return Err(ReconcileError::NotAccepted(rejected));
    }
    let drift = was_in_sync(policy) && !ctx.secrets_changed(oref, &versions);
    let reason = if drift {
        reason::DRIFT_CORRECTED
    } else {
        reason::APPLIED
    };
    ctx.remember_secrets(oref, versions);
    info!(keys = ?plan.keys(), reason, "wrote settings");
    let mut ids = plan.ids;
    ids.extend(written.iter().map(|s| (s.key.clone(), s.id)));
    Ok(Outcome::Synced {
        reason,
        ids,
        written: plan.writes.into_iter().map(|w| w.key).collect(),
    })
}

/// True when the last status says this generation was already in sync: a difference found now
/// was made on the server or in a referenced Secret (told apart by the caller), not in the spec.
fn was_in_sync(policy: &IdentitySettingPolicy) -> bool {
    policy.status.as_ref().is_some_and(|s| {
        s.observed_generation == policy.meta().generation
            && s.conditions
                .iter()
                .any(|c| c.type_ == crate::reconcile::status::READY && c.status == "True")
    })
}

/// Reads every referenced Secret that exists: its data, and its resourceVersion.
async fn fetch_secrets(
    ctx: &Context,
    namespace: &str,
    valid: &ValidPolicy,
) -> Result<(BTreeMap<String, SecretData>, SecretVersions), ReconcileError> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let (mut data, mut versions) = (BTreeMap::new(), SecretVersions::new());
    for name in referenced_secrets(valid) {
        if let Some(secret) = api.get_opt(&name).await? {
            let version = secret.metadata.resource_version.clone().unwrap_or_default();
            versions.insert(name.clone(), version);
            let bytes = secret.data.unwrap_or_default();
            data.insert(name, bytes.into_iter().map(|(k, v)| (k, v.0)).collect());
        }
    }
    Ok((data, versions))
}

async fn ensure_finalizer(
    api: &Api<IdentitySettingPolicy>,
    policy: &IdentitySettingPolicy,
) -> Result<(), ReconcileError> {
    if policy.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(());
    }
    let mut finalizers = policy.finalizers().to_vec();
    finalizers.push(FINALIZER.to_owned());
    patch_finalizers(api, policy, finalizers).await
}

/// The finalizer list is replaced with a resourceVersion precondition, so a concurrent change
/// by someone else makes this fail with 409 and the reconcile retry, instead of losing theirs.
async fn patch_finalizers(
    api: &Api<IdentitySettingPolicy>,
    policy: &IdentitySettingPolicy,
    finalizers: Vec<String>,
) -> Result<(), ReconcileError> {
    let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": policy.resource_version()}});
    api.patch(
        &policy.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

/// Deletion with the only policy there is, `Retain`: the settings stay, the finalizer goes at
/// once — no identity or Secret call, so a dead server or a deleted Secret never blocks it.
async fn cleanup(
    api: &Api<IdentitySettingPolicy>,
    policy: &IdentitySettingPolicy,
    ctx: &Context,
    oref: &ObjectRef<IdentitySettingPolicy>,
) -> Result<Action, ReconcileError> {
    if policy.finalizers().iter().any(|f| f == FINALIZER) {
        let rest = policy
            .finalizers()
            .iter()
            .filter(|f| *f != FINALIZER)
            .cloned()
            .collect();
        patch_finalizers(api, policy, rest).await?;
        info!("policy deleted; settings retained on the identity service");
    }
    ctx.forget(oref);
    ctx.metrics.forget_policy(&oref.to_string());
    Ok(Action::await_change())
}

async fn write_status(
    api: &Api<IdentitySettingPolicy>,
    name: &str,
    status: &IdentitySettingPolicyStatus,
) -> Result<(), ReconcileError> {
    let body = json!({
        "apiVersion": IdentitySettingPolicy::api_version(&()),
        "kind": IdentitySettingPolicy::kind(&()),
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await?;
    Ok(())
}

/// Events mark changes, never repetitions: a write, or a move to a different `Ready` reason.
async fn publish_event(
    ctx: &Context,
    policy: &IdentitySettingPolicy,
    old: Option<&IdentitySettingPolicyStatus>,
    outcome: &Outcome,
    total: usize,
) {
    let old_reason = old
        .and_then(|s| {
            s.conditions
                .iter()
                .find(|c| c.type_ == crate::reconcile::status::READY)
        })
        .map(|c| c.reason.as_str());
    let wrote = matches!(outcome, Outcome::Synced { written, .. } if !written.is_empty());
    if !wrote && old_reason == Some(outcome.reason()) {
        return;
    }
    if !wrote && outcome.reason() == reason::IN_SYNC {
        return;
    }
    let type_ = if outcome.ready() {
        EventType::Normal
    } else {
        EventType::Warning
    };
    let event = Event {
        type_,
        reason: outcome.reason().to_owned(),
        note: Some(truncate_note(outcome.message(total))),
        action: if wrote { "Apply".into() } else { "Sync".into() },
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &policy.object_ref(&())).await {
        warn!(error = %e, "could not publish event");
    }
}

fn truncate_note(mut note: String) -> String {
    const MAX: usize = 1024;
    if note.len() > MAX {
        let mut cut = MAX;
        while !note.is_char_boundary(cut) {
            cut -= 1;
        }
        note.truncate(cut);
    }
    note
}
