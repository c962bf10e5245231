//! `deletionPolicy: Restore` against the Kubernetes API: the restore point is a Secret named
//! `<policy>-restore` in the policy's namespace, owned by the policy (so Kubernetes removes it
//! with the policy), read before a write and updated with the keys about to be written first.
//!
//! Three guards make it trustworthy:
//! - **Only points the operator wrote are used.** Before it writes the Secret, the operator
//!   records the SHA-256 of the content in `status.restorePoint` (a field manager of its own);
//!   a Secret whose content matches neither that digest nor the one before is refused, so a
//!   Secret pre-created by anyone who may create Secrets in the namespace is never written to
//!   the identity service with the policy's credentials.
//! - **It outlives the garbage collector.** The Secret carries a finalizer of the operator's,
//!   removed only once the policy's deletion is done: a foreground deletion or a namespace
//!   deletion, which delete dependents first, cannot remove it while the restore waits.
//! - **A lost one is reported.** A policy whose record says values were saved and whose Secret
//!   is gone shows `RestorePointUnusable` at deletion instead of finishing silently (unless its
//!   namespace is being deleted: then nobody could act on it, and the deletion goes on).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::context::Context;
use super::error::ReconcileError;
use crate::api::{FIELD_MANAGER, IdentitySettingPolicy, RestorePointRecord};
use crate::reconcile::plan::SyncPlan;
use crate::reconcile::restore::{DATA_KEY, RestorePoint, SavedScope, parse, serialize, to_save};
use crate::reconcile::validate::ValidPolicy;

/// The label that marks a restore point and names its policy.
pub const POLICY_LABEL: &str = "identitysettings.dev/restore-point-of";

/// The finalizer that keeps a restore point Secret until its policy's deletion is done.
pub const SECRET_FINALIZER: &str = "identitysettings.dev/restore-point";

/// The field manager of `status.restorePoint`, apart from the rest of the status (see
/// `reconcile::status_patch`).
const RECORD_MANAGER: &str = "identity-settings-operator-restore-point";

/// The restore point's Secret name: `<policy>-restore`, shortened (with the policy's uid) when
/// that would pass Kubernetes' 253 characters.
pub fn secret_name(policy: &IdentitySettingPolicy) -> String {
    let name = policy.name_any();
    if name.len() + 8 <= 253 {
        return format!("{name}-restore");
    }
    let uid: String = policy.uid().unwrap_or_default().chars().take(8).collect();
    let mut cut = name.len().min(235);
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}-{uid}-restore", name[..cut].trim_end_matches(['-', '.']))
}

/// SHA-256 of a restore point's content, in hex.
pub fn digest(content: &[u8]) -> String {
    let hash = ring::digest::digest(&ring::digest::SHA256, content);
    hash.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `content` is what the operator last recorded writing (or the content before that).
pub fn written_by_operator(record: Option<&RestorePointRecord>, content: &[u8]) -> bool {
    let Some(record) = record else {
        return false;
    };
    let found = digest(content);
    found == record.digest || record.previous_digest.as_ref() == Some(&found)
}

/// The policy's restore point record as the API server holds it now (not the cache's, which
/// may not show the operator's last record yet).
async fn current_record(
    ctx: &Context,
    policy: &IdentitySettingPolicy,
) -> Result<Option<RestorePointRecord>, ReconcileError> {
    let api: Api<IdentitySettingPolicy> =
        Api::namespaced(ctx.client.clone(), &policy.namespace().unwrap_or_default());
    let fresh = api.get(&policy.name_any()).await?;
    Ok(fresh.status.and_then(|s| s.restore_point).map(|r| *r))
}

/// The saved values, or `None` when the Secret does not exist. A Secret of that name that
/// this policy does not own, or whose content the operator did not write, is refused.
async fn read(
    ctx: &Context,
    policy: &IdentitySettingPolicy,
    record: Option<&RestorePointRecord>,
) -> Result<Option<RestorePoint>, ReconcileError> {
    let namespace = policy.namespace().unwrap_or_default();
    let name = secret_name(policy);
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let Some(secret) = api
        .get_opt(&name)
        .await
        .map_err(ReconcileError::SecretRead)?
    else {
        return Ok(None);
    };
    let owned = secret
        .owner_references()
        .iter()
        .any(|o| Some(&o.uid) == policy.metadata.uid.as_ref());
    if !owned {
        return Err(ReconcileError::RestorePoint(format!(
            "Secret {name:?} exists but is not this policy's restore point (no owner reference \
             to it); rename or delete that Secret so the operator can save the values to restore"
        )));
    }
    let data = secret.data.unwrap_or_default();
    let content = data
        .get(DATA_KEY)
        .map(|b| b.0.as_slice())
        .unwrap_or_default();
    if !written_by_operator(record, content) {
        return Err(ReconcileError::RestorePoint(format!(
            "Secret {name:?} was not written by the operator (its content does not match \
             status.restorePoint.digest), so its values are never written to the identity \
             service; delete that Secret to let the operator save a new restore point"
        )));
    }
    parse(Some(content))
        .map(Some)
        .map_err(|problem| ReconcileError::RestorePoint(format!("Secret {name:?}: {problem}")))
}

/// The saved values to write back when the policy is deleted; `None` when nothing was saved.
/// A restore point that the record says exists and that is gone is an error
/// (`RestorePointUnusable`): the values saved in it are lost, and the user decides.
pub async fn load_for_restore(
    ctx: &Context,
    policy: &IdentitySettingPolicy,
) -> Result<Option<RestorePoint>, ReconcileError> {
    let record = current_record(ctx, policy).await?;
    match read(ctx, policy, record.as_ref()).await? {
        Some(point) => Ok(Some(point)),
        None => match record {
            Some(record) => Err(ReconcileError::RestorePoint(format!(
                "the restore point Secret {:?} is gone although values were saved in it (a \
                 foreground or namespace deletion, or someone, deleted it); the saved values \
                 are lost",
                record.secret_name
            ))),
            None => Ok(None),
        },
    }
}

/// Saves the values of the keys `plan` is about to write for the first time in the policy's
/// scope: records the new content's digest in status, then creates the Secret, or server-side
/// applies it when it exists (a create racing another fails with 409 and is retried). Called
/// before the write; when it fails, nothing is written. Secret values of a shared server
/// (`ClusterIdentityServer`) are not copied into the tenant's namespace.
pub async fn save_before_write(
    ctx: &Context,
    policy: &IdentitySettingPolicy,
    valid: &ValidPolicy,
    plan: &SyncPlan,
) -> Result<(), ReconcileError> {
    let record = current_record(ctx, policy).await?;
    let existing = read(ctx, policy, record.as_ref()).await?;
    let exists = existing.is_some();
    let mut point = existing.unwrap_or_default();
    let scope = SavedScope::of(&valid.base_url, &valid.scope);
    let shared = valid.server_secrets_namespace.is_some();
    let new = to_save(plan, &point, &scope, |key| shared && valid.is_secret(key));
    if new.is_empty() {
        return Ok(());
    }
    point.add(&scope, new);
    let content = serialize(&point);
    let name = secret_name(policy);
    write_record(
        ctx,
        policy,
        &RestorePointRecord {
            secret_name: name.clone(),
            digest: digest(&content),
            previous_digest: record.map(|r| r.digest),
        },
    )
    .await?;
    let namespace = policy.namespace().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let owner = OwnerReference {
        api_version: IdentitySettingPolicy::api_version(&()).into_owned(),
        kind: IdentitySettingPolicy::kind(&()).into_owned(),
        name: policy.name_any(),
        uid: policy.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: None,
    };
    let data: BTreeMap<&str, String> = BTreeMap::from([(DATA_KEY, base64_encode(&content))]);
    let body = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "labels": {POLICY_LABEL: label_value(&policy.name_any())},
            "ownerReferences": [owner],
            "finalizers": [SECRET_FINALIZER],
        },
        "type": "Opaque",
        "data": data,
    });
    if exists {
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
        .map_err(ReconcileError::Kube)?;
    } else {
        let secret: Secret = serde_json::from_value(body)
            .map_err(|e| ReconcileError::Bug(format!("restore point Secret: {e}")))?;
        let params = kube::api::PostParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..Default::default()
        };
        api.create(&params, &secret)
            .await
            .map_err(ReconcileError::Kube)?;
    }
    Ok(())
}

/// Records `record` in `status.restorePoint` (server-side apply, its own field manager).
async fn write_record(
    ctx: &Context,
    policy: &IdentitySettingPolicy,
    record: &RestorePointRecord,
) -> Result<(), ReconcileError> {
    let api: Api<IdentitySettingPolicy> =
        Api::namespaced(ctx.client.clone(), &policy.namespace().unwrap_or_default());
    let body = json!({
        "apiVersion": IdentitySettingPolicy::api_version(&()),
        "kind": IdentitySettingPolicy::kind(&()),
        "status": {"restorePoint": record},
    });
    api.patch_status(
        &policy.name_any(),
        &PatchParams::apply(RECORD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await?;
    Ok(())
}

/// Lets the restore point Secret go with its policy: removes the operator's finalizer from it,
/// keeping anyone else's. Nothing to do when the Secret or the finalizer is not there.
pub async fn release(ctx: &Context, policy: &IdentitySettingPolicy) -> Result<(), ReconcileError> {
    let namespace = policy.namespace().unwrap_or_default();
    let name = secret_name(policy);
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let Some(secret) = api
        .get_opt(&name)
        .await
        .map_err(ReconcileError::SecretRead)?
    else {
        return Ok(());
    };
    let finalizers = secret.finalizers();
    if !finalizers.iter().any(|f| f == SECRET_FINALIZER) {
        return Ok(());
    }
    let others: Vec<&String> = finalizers
        .iter()
        .filter(|f| *f != SECRET_FINALIZER)
        .collect();
    // The resourceVersion makes it conditional: a concurrent change (someone else's finalizer
    // added) fails with 409 and is retried, instead of being undone.
    let patch = json!({"metadata": {
        "finalizers": others,
        "resourceVersion": secret.resource_version(),
    }});
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(ReconcileError::Kube(e)),
    }
}

/// A label value (at most 63 characters) naming the policy.
fn label_value(name: &str) -> &str {
    let mut end = name.len().min(63);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].trim_end_matches(['-', '.', '_'])
}

fn base64_encode(bytes: &[u8]) -> String {
    // k8s-openapi's ByteString serializes as base64.
    serde_json::to_value(k8s_openapi::ByteString(bytes.to_vec()))
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_content_the_operator_recorded_is_its_own() {
        let ours = br#"{"scopes":[]}"#;
        let record = RestorePointRecord {
            secret_name: "p-restore".into(),
            digest: digest(ours),
            previous_digest: Some(digest(b"older")),
        };
        assert!(written_by_operator(Some(&record), ours));
        assert!(
            written_by_operator(Some(&record), b"older"),
            "a save cut short"
        );
        assert!(!written_by_operator(
            Some(&record),
            br#"{"scopes":[{"values":{}}]}"#
        ));
        assert!(
            !written_by_operator(None, ours),
            "no record: not the operator's"
        );
        assert_eq!(
            digest(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
