//! The watches of `IdentityServer`s, `ClusterIdentityServer`s and namespaces: they fill the
//! [`super::servers::ServerCatalog`] policies look servers up in, announce changes, and drive
//! the server checks ([`super::server_status`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, predicates, watcher};
use tracing::{info, warn};

use super::context::Context;
use super::server_status::{ServerDefinition, check, retry_check};
use super::servers::ServerChange;
use crate::api::{ClusterIdentityServer, IdentityServer};

/// Runs every server watch and check until `shutdown` resolves. `namespaces`: the watched
/// namespaces (`None`: all).
pub async fn run(
    ctx: Arc<Context>,
    namespaces: Vec<Option<String>>,
    shutdown: impl Future<Output = ()> + Send + Sync + Clone + 'static,
) {
    // Every watch's first list must be in before a lookup may say "not found".
    let unlisted = Arc::new(AtomicUsize::new(namespaces.len() + 2));
    let mut namespaced_stores = Vec::new();
    let mut runs = Vec::new();
    for namespace in namespaces {
        let api: Api<IdentityServer> = match &namespace {
            None => Api::all(ctx.client.clone()),
            Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        };
        let (reader, writer) = reflector::store();
        namespaced_stores.push(reader.clone());
        let announce = |s: &IdentityServer| ServerChange::Namespaced {
            namespace: s.namespace().unwrap_or_default(),
            name: s.name_any(),
        };
        runs.push(run_kind(
            ctx.clone(),
            api,
            (reader, writer),
            announce,
            unlisted.clone(),
            shutdown.clone(),
        ));
    }
    let (cluster_reader, cluster_writer) = reflector::store();
    let cluster = run_kind(
        ctx.clone(),
        Api::<ClusterIdentityServer>::all(ctx.client.clone()),
        (cluster_reader.clone(), cluster_writer),
        |s: &ClusterIdentityServer| ServerChange::Cluster { name: s.name_any() },
        unlisted.clone(),
        shutdown.clone(),
    );
    let (namespace_reader, namespace_writer) = reflector::store();
    let namespace_labels = watch_namespaces(
        ctx.clone(),
        namespace_writer,
        unlisted.clone(),
        shutdown.clone(),
    );
    ctx.servers
        .listing(namespaced_stores, cluster_reader, namespace_reader);
    tokio::join!(futures::future::join_all(runs), cluster, namespace_labels);
}

/// Counts one first list; the last one makes the catalog ready.
fn listed(ctx: &Context, unlisted: &AtomicUsize) {
    if unlisted.fetch_sub(1, Ordering::AcqRel) == 1 {
        info!("first lists of server definitions and namespaces received");
        ctx.servers.mark_ready();
    }
}

/// One kind's watch: reflected into the catalog's store, changes announced, and each server
/// checked when its spec changes (and again when its token is due).
async fn run_kind<S: ServerDefinition>(
    ctx: Arc<Context>,
    api: Api<S>,
    (reader, writer): (Store<S>, reflector::store::Writer<S>),
    change_of: impl Fn(&S) -> ServerChange + Send + Sync + Clone + 'static,
    unlisted: Arc<AtomicUsize>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) where
    S::DynamicType: Default,
{
    let mut first_list = true;
    let events_ctx = ctx.clone();
    let deleted = change_of.clone();
    let changed_ctx = ctx.clone();
    let trigger = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .inspect_ok(move |event| match event {
            watcher::Event::InitDone if first_list => {
                first_list = false;
                listed(&events_ctx, &unlisted);
            }
            // A relist may hide deletions and changes: every serverRef is looked at again.
            watcher::Event::InitDone => events_ctx.servers.announce(ServerChange::All),
            watcher::Event::Delete(server) => events_ctx.servers.announce(deleted(server)),
            _ => {}
        })
        .applied_objects()
        // Spec changes only: the checks' own status writes must not trigger checks (or the
        // policies) again.
        .predicate_filter(predicates::generation, Default::default())
        .inspect_ok(move |server| {
            if changed_ctx.servers.is_ready() {
                changed_ctx.servers.announce(change_of(server));
            }
        });
    Controller::for_stream(trigger, reader)
        .graceful_shutdown_on(shutdown)
        .run(check, retry_check, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                warn!(error = %e, "server check error");
            }
        })
        .await;
}

/// The namespaces' metadata (labels, for cluster servers' selectors); a change is announced.
async fn watch_namespaces(
    ctx: Arc<Context>,
    writer: reflector::store::Writer<PartialObjectMeta<Namespace>>,
    unlisted: Arc<AtomicUsize>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let mut first_list = true;
    let api: Api<PartialObjectMeta<Namespace>> = Api::all(ctx.client.clone());
    // Errors (an API server restart, a 410) are logged and the watch goes on from a relist:
    // ending it would freeze the labels that allow namespaces to use cluster servers.
    let events = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .for_each(|event| {
            let event = match event {
                Ok(event) => event,
                Err(e) => {
                    warn!(error = %e, "namespace watch failed; retrying");
                    return std::future::ready(());
                }
            };
            match &event {
                watcher::Event::InitDone if first_list => {
                    first_list = false;
                    listed(&ctx, &unlisted);
                }
                watcher::Event::InitDone => ctx.servers.announce(ServerChange::All),
                watcher::Event::Apply(ns) | watcher::Event::Delete(ns) => {
                    ctx.servers.announce(ServerChange::Namespace {
                        name: ns.name_any(),
                    });
                }
                _ => {}
            }
            std::future::ready(())
        });
    tokio::select! {
        () = events => warn!("namespace watch ended"),
        () = shutdown => {}
    }
}
