//! The kube-runtime controller: watches policies and the Secrets they reference, and runs
//! [`reconciler::reconcile`] for each policy that needs it.

pub mod clients;
pub mod context;
mod deletion;
pub mod error;
pub mod events;
mod gather;
pub mod housekeeping;
pub mod index;
pub mod ownership;
mod prefetch;
pub mod queue;
pub mod reads;
pub mod reconciler;
pub mod restore;
pub mod resyncs;
pub mod secrets;
pub mod server_status;
pub mod server_watches;
pub mod servers;
pub mod watched;
mod write;

use std::sync::Arc;

use tokio::sync::oneshot;

use futures::{FutureExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use tracing::{info, warn};

use crate::api::IdentitySettingPolicy;
use crate::reconcile::claims::PolicyName;
use crate::reconcile::status::{event_action, truncate};
use context::Context;
use error::ReconcileError;
use events::{Event, EventType};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::core::error_boundary::InvalidObject;
use kube::runtime::controller::Action;
pub use watched::{Guarded, secret_names};
use watched::{controller_ref, policy_ref};

/// Which namespaces the operator watches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchScope {
    /// Every namespace (needs cluster-wide RBAC).
    All,
    /// Only these namespaces (RBAC per namespace is enough).
    Namespaces(Vec<String>),
}

/// Runs the controller until `shutdown` resolves; returns when every reconcile has finished.
/// `synced` is called once every watch has delivered its first list (policies and Secrets, in
/// every watched namespace): the moment the operator knows the world it reconciles. How many
/// reconciles run at once is the context's [`queue::WorkQueue`]'s to decide.
pub async fn run(
    ctx: Arc<Context>,
    scope: WatchScope,
    synced: impl FnOnce() + Send + 'static,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let shutdown = futures::future::FutureExt::shared(Box::pin(shutdown));
    // One controller (and one reflector) per namespace: a reflector fed by several watches
    // would treat each namespace's relist as the whole world and drop the others.
    let scopes: Vec<Option<String>> = match scope {
        WatchScope::All => vec![None],
        WatchScope::Namespaces(namespaces) => namespaces.into_iter().map(Some).collect(),
    };
    let server_scopes = scopes.clone();
    let mut lists = Vec::new();
    // Ownership of keys is known once every policy watch delivered its first list.
    let unlisted = Arc::new(std::sync::atomic::AtomicUsize::new(scopes.len()));
    ctx.ownership.listing();
    let mut stores = Vec::new();
    let runs: Vec<_> = scopes
        .into_iter()
        .map(|namespace| {
            let (policies_listed, policies_rx) = oneshot::channel();
            let (secrets_listed, secrets_rx) = oneshot::channel();
            lists.extend([policies_rx, secrets_rx]);
            let listed = FirstLists {
                policies: policies_listed,
                secrets: secrets_listed,
                unlisted: unlisted.clone(),
            };
            let (reader, writer) = reflector::store::<Guarded>();
            stores.push(reader.clone());
            run_one(
                ctx.clone(),
                namespace,
                (reader, writer),
                listed,
                shutdown.clone(),
            )
        })
        .collect();
    ctx.set_stores(stores);
    tokio::spawn(async move {
        // A sender dropped without sending (the controller stopped first) is no first list.
        if futures::future::join_all(lists)
            .await
            .iter()
            .all(Result::is_ok)
        {
            info!("first lists of policies and Secrets received");
            synced();
        }
    });
    let housekeeping = {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            supervise("housekeeping", || housekeeping::run(ctx.clone())).await;
        })
    };
    let servers = {
        let (ctx, shutdown) = (ctx.clone(), shutdown.clone());
        tokio::spawn(async move {
            supervise("server watches", || {
                server_watches::run(ctx.clone(), server_scopes.clone(), shutdown.clone())
            })
            .await;
        })
    };
    // Reconciles waiting for a slot end at once on shutdown instead of running one by one.
    let closing = {
        let (ctx, shutdown) = (ctx.clone(), shutdown.clone());
        tokio::spawn(async move {
            shutdown.await;
            ctx.queue.close();
        })
    };
    futures::future::join_all(runs).await;
    let _ = servers.await;
    housekeeping.abort();
    closing.abort();
}

/// Policies per page of a policy watch's list (kube's default is 500): at 1 000 policies the
/// first list is one request instead of two, which the first write waits for. A page's text
/// and objects are held at once while it is decoded, about 3 MB for 1 000 policies, early in
/// a start, well below the operator's peak.
const LIST_PAGE: u32 = 1000;

/// Told when one controller's watches delivered their first list.
struct FirstLists {
    policies: oneshot::Sender<()>,
    secrets: oneshot::Sender<()>,
    /// Policy watches still to deliver their first list (of all controllers).
    unlisted: Arc<std::sync::atomic::AtomicUsize>,
}

async fn run_one(
    ctx: Arc<Context>,
    namespace: Option<String>,
    (reader, writer): (Store<Guarded>, reflector::store::Writer<Guarded>),
    listed: FirstLists,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let watched_namespace = namespace.clone();
    let (policies, secrets): (Api<Guarded>, Api<PartialObjectMeta<Secret>>) = match &namespace {
        None => (Api::all(ctx.client.clone()), Api::all(ctx.client.clone())),
        Some(ns) => (
            Api::namespaced(ctx.client.clone(), ns),
            Api::namespaced(ctx.client.clone(), ns),
        ),
    };
    // Only spec changes (generation), our finalizer arriving or going and deletion start a
    // reconcile: the operator's own status writes must not trigger it again.
    let expedite_ctx = ctx.clone();
    let clock = resyncs::ResyncClock::new();
    let mut feed = PolicyFeed {
        ctx: ctx.clone(),
        clock: clock.clone(),
        namespace: namespace.clone(),
        listing: None,
        first_list: Some((listed.policies, listed.unlisted)),
        prefetch: Some(prefetch::SecretPrefetch::start(ctx.clone())),
    };
    let trigger = watcher(policies, watcher::Config::default().page_size(LIST_PAGE))
        .default_backoff()
        .reflect(writer)
        .inspect_ok(move |event| feed.observe(event))
        .applied_objects()
        .predicate_filter(spec_or_deletion, Default::default())
        .filter_map(|event| std::future::ready(logged_ok(event, "policy watch error")))
        // In as bare references (namespace and name): kube's scheduler keeps one per policy
        // for its next resync, twice, and one taken from the object would also carry its uid
        // and resourceVersion.
        .map(move |policy| {
            let name = watched::name_of(&policy);
            // A user's change goes before routine resyncs, also when its policy already waits.
            expedite_ctx.queue.expedite(&name);
            controller_ref(&name)
        });
    // Only *that* a Secret changed (and its version) matters here: the watch carries metadata
    // only, and reconciles read the data of the Secrets they use once per version (see
    // `secrets::SecretCache`), so no other Secret's data is ever held in memory.
    let mut secrets_listed = Some(listed.secrets);
    let secrets_ctx = ctx.clone();
    let secret_events = watcher(secrets, watcher::Config::default())
        .default_backoff()
        .inspect_ok(move |event| {
            secrets_ctx.secrets.observe(namespace.as_deref(), event);
            if matches!(event, watcher::Event::InitDone)
                && let Some(listed) = secrets_listed.take()
            {
                let _ = listed.send(());
            }
        })
        .touched_objects()
        .filter_map(|event| std::future::ready(logged_ok(event, "Secret watch error").map(Ok)));
    let mapper_ctx = ctx.clone();
    let latest = reader.clone();
    let nudges = ownership_nudges(ctx.clone(), watched_namespace.clone());
    let server_nudges =
        server_change_nudges(ctx.clone(), reader.clone(), watched_namespace.clone());
    // The work queue wakes a waiting policy through this when a slot is held for it.
    let (wake, woken) = tokio::sync::mpsc::unbounded_channel();
    let woken = futures::stream::unfold(woken, |mut woken| async move {
        let policy: PolicyName = woken.recv().await?;
        Some((policy, woken))
    });
    // And its resyncs fall due on the clock (a policy gone meanwhile is skipped).
    let due_ctx = ctx.clone();
    let due = clock
        .clone()
        .due()
        .filter(move |policy| std::future::ready(due_ctx.index.contains(policy)));
    let turns = futures::stream::select(woken, due).map(|policy| controller_ref(&policy));
    // The policy watch comes in through `reconcile_on(trigger)` below.
    Controller::for_stream(futures::stream::empty(), reader)
        // The work queue decides what runs; kube's limit only keeps it from starting a task for
        // every due policy at once (10 000 at a cold start of 10 000). At most `concurrency`
        // of its slots hold admitted reconciles; the others only ask the queue, which takes
        // microseconds, so its overflow (kept in a hash set, in no useful order) drains at once
        // into the queue, where the order is kept.
        .with_config(
            kube::runtime::controller::Config::default()
                .concurrency(kube_slots(ctx.settings.concurrency)),
        )
        .watches_stream(secret_events, move |secret: PartialObjectMeta<Secret>| {
            // Servers that read it: their policies are found through the server change.
            for change in mapper_ctx
                .servers
                .using_secret(&secret.namespace().unwrap_or_default(), &secret.name_any())
            {
                mapper_ctx.servers.announce(change);
            }
            let namespace = secret.namespace().unwrap_or_default();
            let readers = mapper_ctx
                .index
                .reading_secret(&namespace, &secret.name_any());
            readers
                .iter()
                .map(|name| {
                    mapper_ctx.queue.expedite(name);
                    controller_ref(name)
                })
                .collect::<Vec<_>>()
        })
        // A new or changed policy, or one being deleted.
        .reconcile_on(trigger)
        // A policy whose ownership of a key changed reconciles now, not at its next resync.
        .reconcile_on(nudges)
        // So does one whose server definition changed.
        .reconcile_on(server_nudges)
        // And one whose turn in the work queue came, or whose resync fell due.
        .reconcile_on(turns)
        .graceful_shutdown_on(shutdown)
        .run(
            move |guard, ctx| {
                admit_then_reconcile(guard, ctx, latest.clone(), wake.clone(), clock.clone())
            },
            error_policy_guarded,
            ctx,
        )
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => tracing::debug!(policy = %object, "reconciled"),
                Err(e) => warn!(error = %e, "controller error"),
            }
        })
        .await;
    info!("controller stopped");
}

/// A watch event, or `None` for a watch error, which is logged. No error may reach kube's
/// controller as a trigger: it would pause *every* trigger — resyncs falling due, wake-ups,
/// nudges — for a backoff, and the watches already back off by themselves before they retry.
fn logged_ok<T>(event: Result<T, watcher::Error>, what: &'static str) -> Option<T> {
    event
        .inspect_err(|error| warn!(%error, "{what}; retrying"))
        .ok()
}

/// kube-runtime's concurrency for a work queue of `concurrency` slots: those, and
/// [`ADMISSION_SLOTS`] more for reconciles that only ask the queue.
fn kube_slots(concurrency: usize) -> u16 {
    u16::try_from(concurrency.saturating_add(ADMISSION_SLOTS)).unwrap_or(u16::MAX)
}

/// kube-runtime slots beyond the work queue's, for reconciles that only ask the queue for a
/// slot and end at once when they must wait.
const ADMISSION_SLOTS: usize = 64;

/// The policies of `namespace` (`None`: all) whose ownership of a key changed, expedited in the
/// work queue.
fn ownership_nudges(
    ctx: Arc<Context>,
    namespace: Option<String>,
) -> impl futures::Stream<Item = ObjectRef<Guarded>> + Send + 'static {
    let receiver = ctx.ownership.nudges();
    futures::stream::unfold(receiver, |mut receiver| async move {
        loop {
            match receiver.recv().await {
                Ok(policy) => return Some((policy, receiver)),
                // Dropped nudges: those policies reconcile at their resync.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
    .filter(move |policy| {
        let ours = namespace
            .as_deref()
            .is_none_or(|ns| index::namespace_of(policy) == ns);
        std::future::ready(ours)
    })
    .map(move |policy| {
        ctx.queue.expedite(&policy);
        controller_ref(&policy)
    })
}

/// The policies of this controller's namespace (`None`: all) that a server change concerns:
/// they are observed again (the server's URL may have changed) and expedited in the work
/// queue.
fn server_change_nudges(
    ctx: Arc<Context>,
    store: Store<Guarded>,
    namespace: Option<String>,
) -> impl futures::Stream<Item = ObjectRef<Guarded>> + Send + 'static {
    let receiver = ctx.servers.changes();
    let changes = futures::stream::unfold(receiver, |mut receiver| async move {
        loop {
            match receiver.recv().await {
                Ok(change) => return Some((change, receiver)),
                // Dropped changes: those policies reconcile at their resync.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    changes.flat_map(move |change| {
        let concerned: Vec<ObjectRef<Guarded>> = ctx
            .index
            .naming_server(&change)
            .iter()
            .filter(|name| {
                namespace
                    .as_deref()
                    .is_none_or(|ns| index::namespace_of(name) == ns)
            })
            .filter_map(|name| {
                let guard = store.get(&controller_ref(name))?;
                guard.0.as_ref().ok()?;
                observe(&ctx, &guard);
                ctx.queue.expedite(name);
                Some(controller_ref(name))
            })
            .collect();
        futures::stream::iter(concerned)
    })
}

/// Feeds the one place that follows a policy watch: the [`index::PolicyIndex`], key
/// ownership, and what the process keeps for a policy, which goes when the index says the
/// policy is gone (its Delete event, or a relist that no longer shows it).
struct PolicyFeed {
    ctx: Arc<Context>,
    /// This controller's resync clock: a policy that is gone leaves it.
    clock: Arc<resyncs::ResyncClock>,
    /// The watch's namespace (`None`: every namespace): a relist resets only its own.
    namespace: Option<String>,
    /// During a relist: the policies listed so far.
    listing: Option<std::collections::HashSet<PolicyName>>,
    /// Until the first list is done: whom to tell, and how many policy watches (of all
    /// controllers) have yet to deliver theirs.
    first_list: Option<(oneshot::Sender<()>, Arc<std::sync::atomic::AtomicUsize>)>,
    /// Until the first list is done: its policies' Secrets read ahead.
    prefetch: Option<prefetch::SecretPrefetch>,
}

impl PolicyFeed {
    fn observe(&mut self, event: &watcher::Event<Guarded>) {
        let ctx = &self.ctx;
        match event {
            watcher::Event::Init => self.listing = Some(Default::default()),
            watcher::Event::InitApply(guard) => {
                if let Some(listing) = &mut self.listing {
                    listing.insert(watched::name_of(guard));
                }
                if let (Some(prefetch), Ok(policy)) = (&mut self.prefetch, &guard.0) {
                    prefetch.listed(policy);
                }
                self.applied(guard);
            }
            watcher::Event::Apply(guard) => self.applied(guard),
            watcher::Event::InitDone => {
                let listed = self.listing.take().unwrap_or_default();
                for gone in ctx.index.reset(self.namespace.as_deref(), &listed) {
                    ctx.forget(&gone);
                    self.clock.cancel(&gone);
                }
                // The first list is seen on the watch itself: `Store::wait_until_ready` wakes
                // only one of several waiters, and the controller is already one.
                self.prefetch = None;
                if let Some((listed, unlisted)) = self.first_list.take() {
                    let _ = listed.send(());
                    if unlisted.fetch_sub(1, std::sync::atomic::Ordering::AcqRel) == 1 {
                        ctx.ownership.mark_complete();
                    }
                }
            }
            watcher::Event::Delete(gone) => {
                let name = watched::name_of(gone);
                ctx.index.delete(&name);
                ctx.forget(&name);
                self.clock.cancel(&name);
            }
        }
        ctx.metrics.record_policies(ctx.index.counts());
    }

    fn applied(&self, guard: &Guarded) {
        observe(&self.ctx, guard);
        self.ctx
            .drop_met_expectation(&policy_ref(guard), guard.meta().resource_version.as_deref());
    }
}

/// Records a policy as it is now, with its server's URL as known now (a server definition's
/// may change): in the index, and its claim on keys.
fn observe(ctx: &Context, guard: &Guarded) {
    match &guard.0 {
        Ok(policy) => {
            let url = ctx.servers.claim_url(policy);
            ctx.index.apply(guard, &url);
            ctx.ownership.observe(policy, &url);
        }
        Err(_) => {
            ctx.index.apply(guard, "");
            ctx.ownership
                .forget(&guard.namespace().unwrap_or_default(), &guard.name_any());
        }
    }
}

/// Reconciles the policy if the work queue has a slot for it, as it is then (it may have
/// changed or gone since it was due); else the queue notes it as waiting and this ends at once:
/// its turn comes through `wake`, so thousands of waiting policies cost neither a task nor a
/// future each. When to look at it again goes on `clock` (see [`resyncs`]), not in kube's
/// scheduler, which only brings back failed reconciles (with backoff).
async fn admit_then_reconcile(
    guard: Arc<Guarded>,
    ctx: Arc<Context>,
    store: Store<Guarded>,
    wake: queue::Wake,
    clock: Arc<resyncs::ResyncClock>,
) -> Result<Action, ReconcileError> {
    let mut request = housekeeping::queue_request(&guard);
    if let Some(shared) = ctx.index.shared_name(&request.policy) {
        request.policy = shared;
    }
    let name = request.policy.clone();
    let resync = request.resync;
    let next = match ctx.queue.admit(request, &wake) {
        queue::Admission::Granted(permit) => run_admitted(permit, &guard, ctx, &store).await,
        // Its turn comes through `wake`; it keeps a resync all the same, so that a wake-up
        // lost for whatever reason costs at most one interval (its next reconcile also takes a
        // slot held for it).
        queue::Admission::Waiting => Ok(resyncs::Next::After(resync)),
        queue::Admission::Closed => Ok(resyncs::Next::OnChange),
    };
    match next {
        Ok(resyncs::Next::After(after)) => clock.schedule(name, after),
        Ok(resyncs::Next::OnChange) | Err(_) => clock.cancel(&name),
    }
    next.map(|_| Action::await_change())
}

/// Reconciles the policy as the cache holds it now, holding `permit`.
async fn run_admitted(
    permit: queue::Permit,
    guard: &Guarded,
    ctx: Arc<Context>,
    store: &Store<Guarded>,
) -> Result<resyncs::Next, ReconcileError> {
    ctx.metrics.record_queue_wait(permit.waited);
    let Some(guard) = store.get(&ObjectRef::from_obj(guard)) else {
        return Ok(resyncs::Next::OnChange);
    };
    // A panic in one reconcile (a bug, whatever input provoked it) fails that reconcile only:
    // it is retried with backoff, and the controller, its watches and the process go on.
    let result = std::panic::AssertUnwindSafe(Box::pin(reconcile_guarded(guard, ctx, &permit)))
        .catch_unwind()
        .await
        .unwrap_or_else(|_| {
            Err(ReconcileError::Bug(
                "the reconcile panicked (see the operator's log); retrying with backoff".into(),
            ))
        });
    drop(permit);
    result
}

/// Runs the background task `start` makes until it returns; when it panics, logs it and starts
/// it again after a second, so that one bug in a watch or a periodic pass neither ends the
/// process nor silently stops that work.
pub(crate) async fn supervise<F>(task: &'static str, start: impl Fn() -> F)
where
    F: Future<Output = ()> + Send + 'static,
{
    loop {
        match tokio::spawn(start()).await {
            Err(e) if e.is_panic() => {
                tracing::error!(task, "background task panicked; starting it again");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            _ => return,
        }
    }
}

/// Reconciles a policy, or reports one that does not match the schema.
async fn reconcile_guarded(
    guard: Arc<Guarded>,
    ctx: Arc<Context>,
    permit: &queue::Permit,
) -> Result<resyncs::Next, ReconcileError> {
    match &guard.0 {
        Ok(policy) => {
            reconciler::reconcile_admitted(Arc::new(policy.clone()), ctx, Some(permit)).await
        }
        Err(invalid) => {
            report_invalid(&ctx, invalid).await;
            Ok(resyncs::Next::OnChange)
        }
    }
}

fn error_policy_guarded(guard: Arc<Guarded>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    match &guard.0 {
        Ok(policy) => reconciler::error_policy(Arc::new(policy.clone()), error, ctx),
        Err(_) => Action::await_change(),
    }
}

/// Logs and publishes a Warning Event for an object that does not deserialize; it is skipped
/// until it changes.
async fn report_invalid(ctx: &Context, invalid: &InvalidObject) {
    let meta = &invalid.metadata;
    warn!(namespace = ?meta.namespace, name = ?meta.name, error = %invalid.error, "skipping a policy that does not match the schema");
    let reference = ObjectReference {
        api_version: Some(IdentitySettingPolicy::api_version(&()).into_owned()),
        kind: Some(IdentitySettingPolicy::kind(&()).into_owned()),
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        ..ObjectReference::default()
    };
    let note = truncate(
        format!(
            "the policy does not match the IdentitySettingPolicy schema: {}; fix it and apply again",
            invalid.error
        ),
        1024,
    );
    let event = Event {
        type_: EventType::Warning,
        reason: error::reason::INVALID_SPEC.into(),
        action: event_action("Sync", &note),
        note: Some(note),
        secondary: None,
    };
    if let Err(e) = ctx.events.publish(&event, &reference).await {
        warn!(error = %e, "could not publish event");
    }
}

/// The predicate: a new generation, our finalizer added or removed, or the start of deletion.
fn spec_or_deletion(policy: &Guarded) -> Option<u64> {
    let meta = policy.meta();
    let generation = u64::try_from(meta.generation.unwrap_or_default()).unwrap_or_default();
    let deleting = u64::from(meta.deletion_timestamp.is_some());
    // Giving up a restore on deletion is an annotation, not a spec change.
    let skip_restore = u64::from(
        meta.annotations
            .as_ref()
            .and_then(|a| a.get(crate::reconcile::restore::SKIP_RESTORE_ANNOTATION))
            .is_some_and(|v| v == "true"),
    );
    let finalized = u64::from(
        meta.finalizers
            .iter()
            .flatten()
            .any(|f| f == crate::api::FINALIZER),
    );
    Some(
        generation
            .wrapping_mul(8)
            .wrapping_add(skip_restore * 4)
            .wrapping_add(deleting * 2)
            .wrapping_add(finalized),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::SecretKeyRef;

    fn policy(ns: &str, name: &str, creds: &str, smtp: Option<&str>) -> IdentitySettingPolicy {
        crate::controller::watched::test_policy(ns, name, creds, smtp)
    }

    #[test]
    fn only_generation_our_finalizer_and_deletion_change_the_predicate() {
        let mut p = policy("a", "p", "creds", None);
        p.metadata.generation = Some(3);
        let unfinalized = spec_or_deletion(&Guarded(Ok(p.clone())));
        p.metadata.finalizers = Some(vec![crate::api::FINALIZER.into()]);
        let base = spec_or_deletion(&Guarded(Ok(p.clone())));
        assert_ne!(
            base, unfinalized,
            "our finalizer arriving starts the first apply"
        );
        p.metadata.resource_version = Some("99".into());
        p.metadata.finalizers = Some(vec!["x".into(), crate::api::FINALIZER.into()]);
        p.status = Some(Default::default());
        assert_eq!(
            spec_or_deletion(&Guarded(Ok(p.clone()))),
            base,
            "status and other metadata writes are ignored"
        );
        p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            jiff::Timestamp::now(),
        ));
        assert_ne!(spec_or_deletion(&Guarded(Ok(p.clone()))), base);
        p.metadata.deletion_timestamp = None;
        p.metadata.generation = Some(4);
        assert_ne!(spec_or_deletion(&Guarded(Ok(p))), base);
    }

    #[test]
    fn the_secrets_a_spec_names_are_the_ones_a_valid_policy_reads() {
        let mut p = policy("a", "p", "creds", Some("smtp"));
        p.spec.server.as_mut().expect("inline").ca_secret_ref = Some(Box::new(SecretKeyRef {
            name: "ca".into(),
            key: "ca.crt".into(),
        }));
        let valid = crate::reconcile::validate::validate(&p.spec).expect("valid");
        let mut named: Vec<&str> = secret_names(&p.spec).collect();
        named.sort();
        named.dedup();
        let read: Vec<String> = crate::reconcile::resolve::referenced_secrets(&valid)
            .into_iter()
            .collect();
        assert_eq!(
            named, read,
            "a Secret read but not watched would never trigger a reconcile"
        );
    }
}
