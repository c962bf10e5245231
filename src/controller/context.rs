//! State shared by every reconcile: API clients, caches, metrics and settings.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::runtime::reflector::ObjectRef;

use super::clients::{ConnectionSettings, IdentityClients, OrganizationLimits};
use super::events::EventPublisher;
use super::index::PolicyIndex;
use super::ownership::Ownership;
use super::queue::WorkQueue;
use super::reads::SharedReads;
use super::secrets::SecretCache;
use super::servers::ServerCatalog;
use super::watched::{Guarded, controller_ref};
use crate::api::{IdentitySettingPolicy, ServerBudget};
use crate::identity::auth::Credentials;
use crate::identity::budget::BudgetLimits;
use crate::identity::client::{IdentityClient, RequestObserver};
use crate::identity::error::IdentityError;
use crate::identity::retry::{RetryPolicy, backoff_delay};
use crate::metrics::Metrics;
use crate::reconcile::claims::{PolicyName, policy_name};
use kube::runtime::reflector::Store;

/// The index's name of a policy.
fn policy_key(policy: &ObjectRef<IdentitySettingPolicy>) -> PolicyName {
    policy_name(
        policy.namespace.as_deref().unwrap_or_default(),
        &policy.name,
    )
}

/// Operator-wide settings that affect reconciles.
#[derive(Clone, Debug)]
pub struct ReconcileSettings {
    /// Allow `http://` identity URLs (loopback and tests only).
    pub allow_insecure_http: bool,
    /// Timeout of one identity API request.
    pub request_timeout: Duration,
    /// Shortest and longest retry delay after a transient failure.
    pub backoff_min: Duration,
    /// See `backoff_min`.
    pub backoff_max: Duration,
    /// The longest one reconcile's identity calls may take together (token, every GET chunk,
    /// PUT, read-back), so a server that answers each request just under the request timeout
    /// cannot hold a reconcile slot (and its server's share of them) for minutes.
    pub reconcile_deadline: Duration,
    /// Reconciles running at once, at most, across all namespaces.
    pub concurrency: usize,
    /// Reconciles running at once against one identity server, at most.
    pub concurrency_per_server: usize,
    /// Each identity server's request budget (rate and in-flight limits).
    pub identity_budget: BudgetLimits,
    /// Per-organization limits of the servers that publish them (Automation Cloud).
    pub organization_limits: OrganizationLimits,
}

/// Default of [`ReconcileSettings::reconcile_deadline`]: two of the identity client's 30 s
/// call budgets.
pub const DEFAULT_RECONCILE_DEADLINE: Duration = Duration::from_secs(60);
/// Default of [`ReconcileSettings::concurrency`].
pub const DEFAULT_CONCURRENCY: usize = 32;
/// Default of [`ReconcileSettings::concurrency_per_server`].
pub const DEFAULT_CONCURRENCY_PER_SERVER: usize = 16;

impl Default for ReconcileSettings {
    fn default() -> Self {
        Self {
            allow_insecure_http: false,
            request_timeout: Duration::from_secs(10),
            backoff_min: Duration::from_secs(5),
            backoff_max: Duration::from_secs(300),
            reconcile_deadline: DEFAULT_RECONCILE_DEADLINE,
            concurrency: DEFAULT_CONCURRENCY,
            concurrency_per_server: DEFAULT_CONCURRENCY_PER_SERVER,
            identity_budget: BudgetLimits::default(),
            organization_limits: OrganizationLimits::default(),
        }
    }
}

/// Everything a reconcile needs besides the policy.
pub struct Context {
    /// The Kubernetes client.
    pub client: kube::Client,
    /// Publishes Kubernetes Events.
    pub events: EventPublisher,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Settings.
    pub settings: ReconcileSettings,
    /// Decides which due policy runs next.
    pub queue: Arc<WorkQueue>,
    /// Data of the Secrets policies read, by version.
    pub secrets: SecretCache,
    /// Identity connection pools and token caches shared between policies.
    pub clients: IdentityClients,
    /// The watched policies and what they reference: the one place that knows which exist.
    pub index: PolicyIndex,
    /// Reads shared by the policies of one read group (see [`super::reads`]).
    pub reads: SharedReads,
    /// The policy caches of the running controllers (one per watched namespace, or one).
    stores: std::sync::RwLock<Vec<Store<Guarded>>>,
    /// Which policy owns which key when several declare it.
    pub ownership: Ownership,
    /// The server definitions (`IdentityServer`, `ClusterIdentityServer`) policies name.
    pub servers: ServerCatalog,
    /// What this process remembers about each policy between reconciles.
    memory: Mutex<HashMap<PolicyName, PolicyMemory>>,
    /// Keys fingerprints of desired values with a random per-process secret, so a fingerprint
    /// says nothing about a secret value outside this process (it is never written anywhere).
    fingerprint_key: RandomState,
    /// With leader election: whether this replica leads (`Some(true)`). `None`: no election,
    /// this process always leads.
    leadership: Option<tokio::sync::watch::Receiver<Option<bool>>>,
}

/// In-memory state of one policy: caches only. Dropping any of it at any moment (a restart
/// does) changes no reason, no Event and no write — what a decision needs is in status
/// ([`crate::reconcile::inputs`]); this costs at most a new token or a short wait.
#[derive(Default)]
struct PolicyMemory {
    /// The identity client (a handle on the server's shared connection pool and the credential
    /// set's shared token cache) and a fingerprint of what it was built from: holding it keeps
    /// those alive between reconciles.
    client: Option<(u64, IdentityClient)>,
    /// Consecutive transient failures, for exponential backoff.
    failures: u32,
    /// After this process wrote the policy: the version it wrote over. A watch cache still
    /// showing that version lags behind our own write, and a reconcile waits for it instead of
    /// deciding from a status that is no longer there.
    lagging: Option<Expectation>,
}

/// The resourceVersion expectation of one write (see [`PolicyMemory::lagging`]).
struct Expectation {
    /// The policy object written to: a policy recreated under the same name is another one.
    uid: Option<String>,
    /// The resourceVersion the write replaced.
    stale: String,
    /// When the write was made: an expectation is given up after [`EXPECTATION_TIMEOUT`].
    since: std::time::Instant,
}

/// How long a reconcile waits at most for the cache to show our own write (a watch that lags
/// longer is broken; it is then decided from the cache as it is).
const EXPECTATION_TIMEOUT: Duration = Duration::from_secs(30);

impl Context {
    /// Builds the context; `instance` names this replica in Events.
    pub fn new(
        client: kube::Client,
        metrics: Arc<Metrics>,
        settings: ReconcileSettings,
        instance: Option<String>,
    ) -> Self {
        let clients = IdentityClients::new(ConnectionSettings {
            allow_http: settings.allow_insecure_http,
            request_timeout: settings.request_timeout,
            max_idle_connections: settings.concurrency_per_server,
            budget: settings.identity_budget,
            organization_limits: settings.organization_limits.clone(),
            observer: Some(metrics.clone() as Arc<dyn RequestObserver>),
        });
        Self {
            events: EventPublisher::new(client.clone(), "identity-settings-operator", instance),
            client,
            metrics,
            queue: WorkQueue::new(settings.concurrency, settings.concurrency_per_server),
            secrets: SecretCache::default(),
            clients,
            index: PolicyIndex::default(),
            reads: SharedReads::default(),
            stores: std::sync::RwLock::default(),
            ownership: Ownership::default(),
            servers: ServerCatalog::default(),
            settings,
            memory: Mutex::default(),
            fingerprint_key: RandomState::new(),
            leadership: None,
        }
    }

    /// Ties every write to leadership: reconciles stop the moment this replica steps down, and
    /// no identity PUT, Event or status write starts unless it leads.
    pub fn with_leadership(mut self, leading: tokio::sync::watch::Receiver<Option<bool>>) -> Self {
        self.leadership = Some(leading);
        self
    }

    /// Tells the context where the controllers' policy caches are.
    pub fn set_stores(&self, stores: Vec<Store<Guarded>>) {
        *self.stores.write().unwrap_or_else(|e| e.into_inner()) = stores;
    }

    /// The policy `namespace/name` as the controllers' cache holds it now.
    pub fn watched(&self, name: &str) -> Option<Arc<Guarded>> {
        let reference = controller_ref(name);
        self.stores
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find_map(|store| store.get(&reference))
    }

    /// Asks the controllers to reconcile the policy `namespace/name` now (the channel a change
    /// of key ownership uses too).
    pub fn check_now(&self, name: &str) {
        self.ownership.nudge(name.into());
    }

    /// Whether this replica may write now.
    pub fn leading(&self) -> bool {
        self.leadership
            .as_ref()
            .is_none_or(|l| *l.borrow() == Some(true))
    }

    /// Resolves when this replica stops leading; never without leader election.
    pub async fn leadership_lost(&self) {
        match &self.leadership {
            Some(leading) => {
                let mut leading = leading.clone();
                let _ = leading.wait_for(|l| *l != Some(true)).await;
            }
            None => std::future::pending().await,
        }
    }

    fn with_memory<T>(
        &self,
        policy: &ObjectRef<IdentitySettingPolicy>,
        f: impl FnOnce(&mut PolicyMemory) -> T,
    ) -> T {
        let mut memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        let key = policy_key(policy);
        if let Some(kept) = memory.get_mut(&key) {
            return f(kept);
        }
        let key = self.index.shared_name(&key).unwrap_or(key);
        f(memory.entry(key).or_default())
    }

    /// Reads a policy's memory without creating it: a read never brings back a forgotten policy.
    fn read_memory<T>(
        &self,
        policy: &ObjectRef<IdentitySettingPolicy>,
        f: impl FnOnce(Option<&PolicyMemory>) -> T,
    ) -> T {
        let memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        f(memory.get(&policy_key(policy)))
    }

    /// The identity client for a policy: a handle on the shared pool of its server and the
    /// shared token cache of its credentials, kept while URL, credentials and CA are unchanged.
    pub async fn identity_client(
        &self,
        policy: &ObjectRef<IdentitySettingPolicy>,
        base_url: &str,
        credentials: &Credentials,
        ca_pem: Option<&[u8]>,
        budget: ServerBudget,
    ) -> Result<IdentityClient, IdentityError> {
        let built_from = self
            .fingerprint_key
            .hash_one((base_url, credentials, ca_pem, budget));
        let kept = self.read_memory(policy, |m| {
            m.and_then(|m| m.client.as_ref())
                .filter(|(f, _)| *f == built_from)
                .map(|(_, c)| c.clone())
        });
        if let Some(client) = kept {
            return Ok(client);
        }
        let client = self
            .clients
            .client(base_url, credentials, ca_pem, budget)
            .await?;
        self.with_memory(policy, |m| m.client = Some((built_from, client.clone())));
        Ok(client)
    }

    /// How many policies this process keeps memory for.
    pub fn remembered_policies(&self) -> usize {
        self.memory.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Drops the memory of policies the index does not hold (one whose reconcile was still
    /// running when it went, and left something behind), and the shared clients only they
    /// used; returns how many were dropped.
    pub fn prune(&self) -> usize {
        let gone: Vec<_> = {
            let memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
            memory
                .keys()
                .filter(|p| !self.index.contains(p))
                .cloned()
                .collect()
        };
        for policy in &gone {
            self.forget(policy);
        }
        self.clients.prune();
        gone.len()
    }

    /// Ends the expectation of a policy whose cache now shows `version`, if that is not the
    /// version our write replaced: a policy's memory is a few numbers between reconciles.
    pub fn drop_met_expectation(
        &self,
        policy: &ObjectRef<IdentitySettingPolicy>,
        version: Option<&str>,
    ) {
        let mut memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = memory.get_mut(&policy_key(policy))
            && m.lagging
                .as_ref()
                .is_some_and(|e| version != Some(e.stale.as_str()))
        {
            m.lagging = None;
        }
    }

    /// Forgets everything the process keeps for a policy that is gone (`namespace/name`): its
    /// memory, its urgent mark in the queue, its claim on keys.
    pub fn forget(&self, policy: &PolicyName) {
        let (namespace, name) = policy.split_once('/').unwrap_or(("", policy));
        self.memory
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(policy);
        self.queue.forget(policy);
        self.ownership.forget(namespace, name);
    }

    /// Records a transient failure and returns how long to wait before the next try: exponential
    /// backoff, or longer when the server asked for it with `Retry-After` (up to the maximum).
    pub fn next_backoff(
        &self,
        policy: &ObjectRef<IdentitySettingPolicy>,
        retry_after: Option<Duration>,
    ) -> Duration {
        let failures = self.with_memory(policy, |m| {
            m.failures = m.failures.saturating_add(1);
            m.failures
        });
        let bounds = RetryPolicy {
            initial_backoff: self.settings.backoff_min,
            max_backoff: self.settings.backoff_max,
            ..RetryPolicy::default()
        };
        let delay = backoff_delay(&bounds, failures, rand::random::<f64>());
        delay
            .max(retry_after.unwrap_or_default())
            .min(self.settings.backoff_max)
    }

    /// Clears the failure count after a reconcile that did not fail transiently.
    pub fn reset_backoff(&self, policy: &ObjectRef<IdentitySettingPolicy>) {
        let mut memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = memory.get_mut(&policy_key(policy)) {
            m.failures = 0;
        }
    }

    /// Whether the cached policy (`uid` at `version`) is the one this process last wrote
    /// over: the cache has not caught up with our own write yet. Ends the expectation once it
    /// has (or after [`EXPECTATION_TIMEOUT`]).
    pub fn cache_lags(
        &self,
        policy: &ObjectRef<IdentitySettingPolicy>,
        uid: Option<&str>,
        version: Option<&str>,
    ) -> bool {
        let mut memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        let Some(m) = memory.get_mut(&policy_key(policy)) else {
            return false;
        };
        let lags = m.lagging.as_ref().is_some_and(|e| {
            e.uid.as_deref() == uid
                && version == Some(e.stale.as_str())
                && e.since.elapsed() < EXPECTATION_TIMEOUT
        });
        if !lags {
            m.lagging = None;
        }
        lags
    }

    /// Records that this process wrote the policy `uid`, replacing version `stale` with
    /// `written` (as the API server answered). A write that changed nothing (the same version)
    /// expects nothing.
    pub fn expect_newer(
        &self,
        policy: &ObjectRef<IdentitySettingPolicy>,
        uid: Option<String>,
        stale: Option<String>,
        written: Option<&str>,
    ) {
        let Some(stale) = stale.filter(|s| Some(s.as_str()) != written) else {
            return;
        };
        self.with_memory(policy, |m| {
            m.lagging = Some(Expectation {
                uid,
                stale,
                since: std::time::Instant::now(),
            });
        });
    }
}

/// Adds up to 10 % to a resync interval so policies created together spread out (saturating:
/// never panics, whatever the interval).
pub fn jittered(interval: Duration, jitter: f64) -> Duration {
    let extra = Duration::try_from_secs_f64(interval.as_secs_f64() * 0.1 * jitter.clamp(0.0, 1.0))
        .unwrap_or_default();
    interval.saturating_add(extra)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A context whose Kubernetes client points nowhere: these tests never call the API.
    fn context() -> Context {
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("uri"));
        let client = kube::Client::try_from(config).expect("client");
        let settings = ReconcileSettings {
            backoff_min: Duration::from_secs(4),
            backoff_max: Duration::from_secs(60),
            ..ReconcileSettings::default()
        };
        Context::new(client, Arc::new(Metrics::default()), settings, None)
    }

    #[tokio::test]
    async fn backoff_grows_per_policy_honours_retry_after_and_resets() {
        let ctx = context();
        let (a, b) = (
            ObjectRef::new("a").within("ns"),
            ObjectRef::new("b").within("ns"),
        );
        let first = ctx.next_backoff(&a, None);
        assert!(
            (Duration::from_secs(2)..=Duration::from_secs(4)).contains(&first),
            "{first:?}"
        );
        let second = ctx.next_backoff(&a, None);
        assert!(
            (Duration::from_secs(4)..=Duration::from_secs(8)).contains(&second),
            "{second:?}"
        );
        assert!(
            ctx.next_backoff(&b, None) <= Duration::from_secs(4),
            "policies back off independently"
        );
        assert_eq!(
            ctx.next_backoff(&b, Some(Duration::from_secs(30))),
            Duration::from_secs(30)
        );
        assert_eq!(
            ctx.next_backoff(&b, Some(Duration::from_secs(3600))),
            Duration::from_secs(60),
            "capped"
        );
        ctx.reset_backoff(&a);
        assert!(ctx.next_backoff(&a, None) <= Duration::from_secs(4));
    }

    #[tokio::test]
    async fn a_cache_showing_the_version_we_wrote_over_lags_until_it_moves() {
        let ctx = context();
        let p = ObjectRef::new("p").within("ns");
        assert!(
            !ctx.cache_lags(&p, Some("u"), Some("1")),
            "nothing written yet"
        );
        ctx.expect_newer(&p, Some("u".into()), Some("1".into()), Some("2"));
        assert!(
            ctx.cache_lags(&p, Some("u"), Some("1")),
            "still the old version"
        );
        assert!(!ctx.cache_lags(&p, Some("u2"), Some("1")), "another object");
        assert!(!ctx.cache_lags(&p, Some("u"), Some("2")), "caught up");
        assert!(
            !ctx.cache_lags(&p, Some("u"), Some("1")),
            "once caught up, the expectation is gone"
        );
    }

    #[tokio::test]
    async fn a_write_that_changed_nothing_expects_nothing() {
        let ctx = context();
        let p = ObjectRef::new("p").within("ns");
        ctx.expect_newer(&p, Some("u".into()), Some("1".into()), Some("1"));
        assert!(!ctx.cache_lags(&p, Some("u"), Some("1")));
        assert_eq!(ctx.remembered_policies(), 0);
    }

    #[tokio::test]
    async fn reads_never_create_memory_and_policies_the_index_lacks_are_pruned() {
        let ctx = context();
        let (a, b, never) = (
            ObjectRef::new("a").within("ns"),
            ObjectRef::new("b").within("ns"),
            ObjectRef::new("never-reconciled").within("ns"),
        );
        let mut watched = IdentitySettingPolicy::new(
            "a",
            crate::api::IdentitySettingPolicySpec::for_tests("https://x/identity_", "c", vec![]),
        );
        watched.metadata.namespace = Some("ns".into());
        ctx.index.apply(
            &crate::controller::Guarded(Ok(watched)),
            "https://x/identity_",
        );
        ctx.expect_newer(&a, None, Some("1".into()), Some("2"));
        ctx.expect_newer(&b, None, Some("1".into()), Some("2"));
        assert!(!ctx.cache_lags(&never, None, Some("1")));
        ctx.reset_backoff(&never);
        assert_eq!(ctx.remembered_policies(), 2, "reads created no entry");
        assert_eq!(ctx.prune(), 1, "b is not watched");
        assert_eq!(ctx.remembered_policies(), 1);
        ctx.forget(&policy_key(&a));
        assert_eq!(ctx.remembered_policies(), 0);
    }

    #[tokio::test]
    async fn expectations_the_cache_met_are_dropped() {
        let ctx = context();
        let p = ObjectRef::new("p").within("ns");
        ctx.expect_newer(&p, Some("u".into()), Some("1".into()), Some("2"));
        ctx.drop_met_expectation(&p, Some("1"));
        assert!(
            ctx.cache_lags(&p, Some("u"), Some("1")),
            "still lagging: kept"
        );
        ctx.drop_met_expectation(&p, Some("2"));
        assert!(!ctx.cache_lags(&p, Some("u"), Some("1")), "met: dropped");
    }

    #[test]
    fn jitter_adds_at_most_a_tenth_and_saturates() {
        assert_eq!(
            jittered(Duration::from_secs(100), 0.0),
            Duration::from_secs(100)
        );
        assert_eq!(
            jittered(Duration::from_secs(100), 1.0),
            Duration::from_secs(110)
        );
        assert_eq!(
            jittered(Duration::MAX, 1.0),
            Duration::MAX,
            "saturates instead of panicking"
        );
    }
}
