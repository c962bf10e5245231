//! `deletionPolicy: Restore` against the Kubernetes API: the restore point is a Secret named
//! `<policy>-restore` in the policy's namespace, owned by the policy (so Kubernetes removes it
//! with the policy), read before a write and updated with the keys about to be written first.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::context::Context;
use super::error::ReconcileError;
use super::reconciler::FIELD_MANAGER;
use crate::api::IdentitySettingPolicy;
use crate::reconcile::plan::SyncPlan;
use crate::reconcile::restore::{DATA_KEY, RestorePoint, parse, serialize, to_save};

/// The label that marks a restore point and names its policy.
pub const POLICY_LABEL: &str = "identitysettings.dev/restore-point-of";

/// The restore point's Secret name: `<policy>-restore`, shortened (with the policy's uid) when
/// that would pass Kubernetes' 253 characters.
pub fn secret_name(policy: &IdentitySettingPolicy) -> String {
    let name = policy.name_any();
    if name.len() + 8 <= 253 {
        return format!("{name}-restore");
    }
    let uid: String = policy.uid().unwrap_or_default().chars().take(8).collect();
    format!("{}-{uid}-restore", &name[..name.len().min(235)])
}

/// The values saved so far (none when the Secret does not exist yet). A Secret of that name
/// that this policy does not own is never read or overwritten.
pub async fn load(
    ctx: &Context,
    policy: &IdentitySettingPolicy,
) -> Result<RestorePoint, ReconcileError> {
    Ok(read(ctx, policy).await?.unwrap_or_default())
}

/// The saved values, or `None` when the Secret does not exist.
async fn read(
    ctx: &Context,
    policy: &IdentitySettingPolicy,
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
    parse(data.get(DATA_KEY).map(|b| b.0.as_slice()))
        .map(Some)
        .map_err(|problem| ReconcileError::RestorePoint(format!("Secret {name:?}: {problem}")))
}

/// Saves the values of the keys `plan` is about to write for the first time: creates the
/// Secret, or server-side applies it when it exists (a create racing another fails with 409
/// and is retried). Called before the write; when it fails, nothing is written.
pub async fn save_before_write(
    ctx: &Context,
    policy: &IdentitySettingPolicy,
    plan: &SyncPlan,
) -> Result<(), ReconcileError> {
    let existing = read(ctx, policy).await?;
    let exists = existing.is_some();
    let mut point = existing.unwrap_or_default();
    let new = to_save(plan, &point);
    if new.is_empty() {
        return Ok(());
    }
    point.extend(new);
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
    let data: BTreeMap<&str, String> =
        BTreeMap::from([(DATA_KEY, base64_encode(&serialize(&point)))]);
    let body = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": secret_name(policy),
            "labels": {POLICY_LABEL: label_value(&policy.name_any())},
            "ownerReferences": [owner],
        },
        "type": "Opaque",
        "data": data,
    });
    if exists {
        api.patch(
            &secret_name(policy),
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
