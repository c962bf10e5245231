//! The kube-runtime controller: watches policies and the Secrets they reference, and runs
//! [`reconciler::reconcile`] for each policy that needs it.

pub mod context;
pub mod error;
pub mod reconciler;

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use tracing::{info, warn};

use crate::api::{IdentitySettingPolicy, IdentitySettingPolicySpec};
use context::Context;

/// Which namespaces the operator watches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchScope {
    /// Every namespace (needs cluster-wide RBAC).
    All,
    /// Only these namespaces (RBAC per namespace is enough).
    Namespaces(Vec<String>),
}

/// Runs the controller until `shutdown` resolves; returns when every reconcile has finished.
pub async fn run(
    ctx: Arc<Context>,
    scope: WatchScope,
    concurrency: u16,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let shutdown = futures::future::FutureExt::shared(Box::pin(shutdown));
    match scope {
        WatchScope::All => {
            let policies = Api::all(ctx.client.clone());
            let secrets = Api::all(ctx.client.clone());
            run_one(ctx, policies, secrets, concurrency, shutdown).await;
        }
        WatchScope::Namespaces(namespaces) => {
            // One controller (and one reflector) per namespace: a reflector fed by several watches
            // would treat each namespace's relist as the whole world and drop the others.
            let runs = namespaces.into_iter().map(|ns| {
                let policies = Api::namespaced(ctx.client.clone(), &ns);
                let secrets = Api::namespaced(ctx.client.clone(), &ns);
                run_one(
                    ctx.clone(),
                    policies,
                    secrets,
                    concurrency,
                    shutdown.clone(),
                )
            });
            futures::future::join_all(runs).await;
        }
    }
}

async fn run_one(
    ctx: Arc<Context>,
    policies: Api<IdentitySettingPolicy>,
    secrets: Api<Secret>,
    concurrency: u16,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let (reader, writer) = reflector::store();
    // Only spec changes (generation) and deletion start a reconcile: the operator's own status
    // writes and finalizer patches must not trigger it again.
    let trigger = watcher(policies, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(spec_or_deletion, Default::default());
    let store = reader.clone();
    let secret_events = watcher(secrets, watcher::Config::default())
        .default_backoff()
        .touched_objects();
    Controller::for_stream(trigger, reader)
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .watches_stream(secret_events, move |secret: Secret| {
            policies_using(&store, &secret)
        })
        .graceful_shutdown_on(shutdown)
        .run(reconciler::reconcile, reconciler::error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => tracing::debug!(policy = %object, "reconciled"),
                Err(e) => warn!(error = %e, "controller error"),
            }
        })
        .await;
    info!("controller stopped");
}

/// The predicate: a new generation or the start of deletion.
fn spec_or_deletion(policy: &IdentitySettingPolicy) -> Option<u64> {
    let generation = policy.meta().generation.unwrap_or_default() as u64;
    let deleting = u64::from(policy.meta().deletion_timestamp.is_some());
    Some(generation.wrapping_mul(2).wrapping_add(deleting))
}

/// The policies in the Secret's namespace that read it.
fn policies_using(
    store: &Store<IdentitySettingPolicy>,
    secret: &Secret,
) -> Vec<ObjectRef<IdentitySettingPolicy>> {
    let (Some(namespace), name) = (secret.namespace(), secret.name_any()) else {
        return vec![];
    };
    store
        .state()
        .iter()
        .filter(|p| p.namespace().as_deref() == Some(namespace.as_str()))
        .filter(|p| secret_names(&p.spec).any(|n| n == name))
        .map(|p| ObjectRef::from_obj(&**p))
        .collect()
}

/// Every Secret name a spec mentions, valid or not.
pub fn secret_names(spec: &IdentitySettingPolicySpec) -> impl Iterator<Item = &str> {
    std::iter::once(spec.server.credentials_secret_ref.name.as_str())
        .chain(spec.server.ca_secret_ref.iter().map(|r| r.name.as_str()))
        .chain(
            spec.settings
                .iter()
                .filter_map(|s| s.value_from.as_ref())
                .map(|v| v.secret_key_ref.name.as_str()),
        )
}
