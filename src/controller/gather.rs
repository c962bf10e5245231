//! Every read one reconcile makes before anything is decided: the server definition a policy
//! names (from the watched ones), the Secrets it reads (from the cache while their version is
//! current) and a client of its identity server, whose GET is the last read.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;

use super::context::Context;
use super::error::ReconcileError;
use super::reads::group_read;
use super::servers::HeldServer;
use crate::api::IdentitySettingPolicy;
use crate::identity::client::IdentityClient;
use crate::identity::redact::Redactor;
use crate::identity::types::StoredSetting;
use crate::reconcile::claims::policy_name;
use crate::reconcile::inputs::SecretVersions;
use crate::reconcile::resolve::{
    Resolved, SecretData, referenced_secrets, resolve, resolve_from, secret_keys, server_secrets,
    setting_secrets,
};
use crate::reconcile::server_ref::{ServerRefError, referenced};
use crate::reconcile::validate::{ValidPolicy, setting_scope, validate, validate_with};
use crate::secret::SecretString;

/// Checks the policy with the server it uses: its inline `spec.server`, or the server its
/// `spec.serverRef` names, found in the watched server definitions (waiting for their first
/// list) and allowed for its namespace.
pub(super) async fn validate_policy(
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

/// Resolves the policy's Secrets and gets a client of its identity server. Every secret value
/// read (and `also_secret`) goes to `redactor`, which the client applies to server texts before
/// it cuts them, and `decide` to the final message. Also returns the versions of the Secrets
/// the setting values came from (the inputs of [`crate::reconcile::inputs`]).
pub(super) async fn connect(
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
        let from_cache = |versions: &mut SecretVersions| {
            let cached = ctx.secrets.get(namespace, &name, keys)?;
            if let Some(version) = ctx.secrets.version(namespace, &name) {
                versions.insert((namespace.to_owned(), name.clone()), version);
            }
            Some((*cached).clone())
        };
        if let Some(cached) = from_cache(versions) {
            data.insert(name, cached);
            continue;
        }
        let _turn = ctx.secrets.read_turn(namespace, &name).await;
        if let Some(cached) = from_cache(versions) {
            data.insert(name, cached);
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

/// The server's current rows of `keys` for the policy: from the answer its read group shared
/// moments ago, or from one GET that also asks for the keys of the group's other policies
/// (while they fit one request) — shared with them, who are then told to check now. A policy
/// alone in its group just reads its own keys.
pub(super) async fn read_current(
    ctx: &Context,
    policy: &IdentitySettingPolicy,
    valid: &ValidPolicy,
    client: &IdentityClient,
    keys: &[String],
) -> Result<Vec<StoredSetting>, ReconcileError> {
    let name = policy_name(&policy.namespace().unwrap_or_default(), &policy.name_any());
    let Some((group, others)) = ctx.index.read_group(&name) else {
        return Ok(client.get_settings(&valid.scope, keys).await?);
    };
    if let Some(rows) = ctx.reads.take(group, keys) {
        return Ok(rows);
    }
    if others.is_empty() {
        return Ok(client.get_settings(&valid.scope, keys).await?);
    }
    // Others not yet applied are reconciling anyway (a cold start): they are neither waited
    // for nor told; only a check of an applied policy (a resync) tells applied others.
    let resync = applied(policy);
    let theirs = others.iter().filter_map(|other| {
        let guard = ctx.watched(other)?;
        let other_policy = guard.0.as_ref().ok()?;
        // Not for a policy its author must fix first (a server its namespace may not use, a
        // missing Secret, suspension...): it reads nothing itself.
        if stopped(other_policy) {
            return None;
        }
        let keys = other_policy
            .spec
            .settings
            .iter()
            .map(|s| s.key.to_string())
            .collect();
        Some(((other, applied(other_policy)), keys))
    });
    let (asked, covered) = group_read(keys, theirs, |k| {
        client.reads_in_one_request(&valid.scope, k)
    });
    let pending = ctx.reads.begin(group);
    let rows = client.get_settings(&valid.scope, &asked).await?;
    if !covered.is_empty() {
        pending.share(&asked, &rows);
        for (other, other_applied) in covered {
            if resync && other_applied {
                ctx.check_now(other);
            }
        }
    }
    let wanted: BTreeSet<String> = keys.iter().map(|k| k.to_ascii_lowercase()).collect();
    Ok(rows
        .into_iter()
        .filter(|r| wanted.contains(&r.key.to_ascii_lowercase()))
        .collect())
}

/// Whether the policy's last reconcile stopped at something only its author can fix.
fn stopped(policy: &IdentitySettingPolicy) -> bool {
    policy
        .status
        .iter()
        .flat_map(|s| &s.conditions)
        .find(|c| c.type_ == crate::reconcile::status::READY)
        .is_some_and(|c| super::ownership::CANNOT_WRITE.contains(&c.reason.as_str()))
}

/// Whether the policy's current generation was applied (a check of it now is a resync).
fn applied(policy: &IdentitySettingPolicy) -> bool {
    policy.status.as_ref().and_then(|s| s.observed_generation) == policy.metadata.generation
        && policy.metadata.generation.is_some()
}

/// A write of `keys` to the policy's server, organization and user is about to be made, or has
/// been (call both): the answer its read group shared no longer holds for those keys.
pub(super) fn forget_shared_read(ctx: &Context, policy: &IdentitySettingPolicy, keys: &[String]) {
    let name = policy_name(&policy.namespace().unwrap_or_default(), &policy.name_any());
    if let Some((group, _)) = ctx.index.read_group(&name) {
        ctx.reads.written(group, keys);
    }
}
