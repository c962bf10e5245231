//! State shared by every reconcile: API clients, caches, metrics and settings.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::runtime::reflector::ObjectRef;

use super::clients::{ConnectionSettings, IdentityClients};
use super::events::EventPublisher;
use super::ownership::Ownership;
use super::queue::WorkQueue;
use super::secrets::SecretCache;
use super::servers::ServerCatalog;
use crate::api::{IdentitySettingPolicy, IdentitySettingPolicyStatus, ServerBudget};
use crate::identity::auth::Credentials;
use crate::identity::budget::BudgetLimits;
use crate::identity::client::{IdentityClient, RequestObserver};
use crate::identity::error::IdentityError;
use crate::identity::retry::{RetryPolicy, backoff_delay};
use crate::identity::types::SettingValue;
use crate::metrics::Metrics;

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
    /// Which policy owns which key when several declare it.
    pub ownership: Ownership,
    /// The server definitions (`IdentityServer`, `ClusterIdentityServer`) policies name.
    pub servers: ServerCatalog,
    /// What this process remembers about each policy between reconciles.
    memory: Mutex<HashMap<ObjectRef<IdentitySettingPolicy>, PolicyMemory>>,
    /// Keys fingerprints of desired values with a random per-process secret, so a fingerprint
    /// says nothing about a secret value outside this process (it is never written anywhere).
    fingerprint_key: RandomState,
    /// With leader election: whether this replica leads (`Some(true)`). `None`: no election,
    /// this process always leads.
    leadership: Option<tokio::sync::watch::Receiver<Option<bool>>>,
}

/// In-memory state of one policy; lost on restart, which only costs a new token and may label
/// the first write after a restart `DriftCorrected` instead of `Applied`.
#[derive(Default)]
struct PolicyMemory {
    /// The identity client (a handle on the server's shared connection pool and the credential
    /// set's shared token cache) and a fingerprint of what it was built from: holding it keeps
    /// those alive between reconciles.
    client: Option<(u64, IdentityClient)>,
    /// Consecutive transient failures, for exponential backoff.
    failures: u32,
    /// Fingerprint of the desired values at the last successful sync: a write with the same
    /// desired values corrects drift; with different ones (a rotated Secret) it applies a change.
    synced: Option<u64>,
    /// Desired values the server would not keep, and the keys concerned: not written again
    /// until the desired values change.
    rejected: Option<(u64, Vec<String>)>,
    /// The last status this process wrote, and the status the watch cache showed then.
    status: Option<WrittenStatus>,
}

/// Status writes not yet seen in the watch cache, remembered so that a reconcile running on a
/// cache that lags behind (a Secret event right after an apply, say) starts from what was
/// written rather than from an older status — which would rewrite `Applied` as `InSync`.
struct WrittenStatus {
    /// The policy object written to: a policy recreated under the same name is another one.
    uid: Option<String>,
    /// Statuses our writes replaced that a lagging cache may still show.
    superseded: Vec<Option<IdentitySettingPolicyStatus>>,
    /// The status as the API server returned it after our last write (what the cache will show).
    written: IdentitySettingPolicyStatus,
}

/// How many superseded statuses are kept; more writes than this within one cache lag are not
/// expected (each needs a reconcile).
const MAX_SUPERSEDED: usize = 8;

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
            observer: Some(metrics.clone() as Arc<dyn RequestObserver>),
        });
        Self {
            events: EventPublisher::new(client.clone(), "identity-settings-operator", instance),
            client,
            metrics,
            queue: WorkQueue::new(settings.concurrency, settings.concurrency_per_server),
            secrets: SecretCache::default(),
            clients,
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
        f(memory.entry(policy.clone()).or_default())
    }

    /// Reads a policy's memory without creating it: a read never brings back a forgotten policy.
    fn read_memory<T>(
        &self,
        policy: &ObjectRef<IdentitySettingPolicy>,
        f: impl FnOnce(Option<&PolicyMemory>) -> T,
    ) -> T {
        let memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        f(memory.get(policy))
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

    /// Forgets every policy `exists` says is gone (a deletion the watch never reported: a
    /// relist after an outage, a finalizer removed by hand), and the shared clients, Secret data
    /// and queue marks only they used.
    pub fn retain(&self, exists: impl Fn(&ObjectRef<IdentitySettingPolicy>) -> bool) -> usize {
        let gone: Vec<_> = {
            let mut memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
            let gone = memory.keys().filter(|p| !exists(p)).cloned().collect();
            memory.retain(|p, _| exists(p));
            gone
        };
        for policy in &gone {
            self.metrics.forget_policy(&policy.to_string());
        }
        self.queue.retain(&exists);
        self.clients.prune();
        gone.len()
    }

    /// Drops remembered status writes the watch cache has caught up with (`current` gives a
    /// policy's status as cached), so a policy's memory is a few numbers between reconciles.
    pub fn drop_caught_up_statuses<'a>(
        &self,
        current: impl Fn(&ObjectRef<IdentitySettingPolicy>) -> Option<&'a IdentitySettingPolicyStatus>,
    ) {
        let mut memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        for (policy, m) in memory.iter_mut() {
            if m.status
                .as_ref()
                .is_some_and(|w| current(policy) == Some(&w.written))
            {
                m.status = None;
            }
        }
    }

    /// Forgets everything about a deleted policy.
    pub fn forget(&self, policy: &ObjectRef<IdentitySettingPolicy>) {
        self.memory
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(policy);
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
        if let Some(m) = memory.get_mut(policy) {
            m.failures = 0;
        }
    }

    /// A fingerprint of desired values (keyed per process; never stored or shown).
    pub fn fingerprint(&self, desired: &[SettingValue]) -> u64 {
        let mut hasher = self.fingerprint_key.build_hasher();
        for d in desired {
            d.key.hash(&mut hasher);
            d.value.hash(&mut hasher);
        }
        hasher.finish()
    }

    /// Whether a write now corrects drift: the desired values are the ones last synced (or
    /// unknown, after a restart).
    pub fn same_desired_as_last_sync(
        &self,
        policy: &ObjectRef<IdentitySettingPolicy>,
        fingerprint: u64,
    ) -> bool {
        self.read_memory(policy, |m| {
            m.and_then(|m| m.synced).is_none_or(|f| f == fingerprint)
        })
    }

    /// Records a successful sync of these desired values.
    pub fn remember_synced(&self, policy: &ObjectRef<IdentitySettingPolicy>, fingerprint: u64) {
        self.with_memory(policy, |m| {
            m.synced = Some(fingerprint);
            m.rejected = None;
        });
    }

    /// The keys the server would not keep for exactly these desired values, if so.
    pub fn rejected_keys(
        &self,
        policy: &ObjectRef<IdentitySettingPolicy>,
        fingerprint: u64,
    ) -> Option<Vec<String>> {
        self.read_memory(policy, |m| {
            m?.rejected
                .as_ref()
                .filter(|(f, _)| *f == fingerprint)
                .map(|(_, k)| k.clone())
        })
    }

    /// The status a reconcile should start from when the cached policy (`uid`) shows `cached`:
    /// the one this process last wrote while the cache still shows a status that write
    /// superseded; `None` when the cache is current — it caught up, or shows a status someone
    /// else wrote — which also ends the remembering.
    pub fn newer_status(
        &self,
        policy: &ObjectRef<IdentitySettingPolicy>,
        uid: Option<&str>,
        cached: Option<&IdentitySettingPolicyStatus>,
    ) -> Option<IdentitySettingPolicyStatus> {
        let mut memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        let m = memory.get_mut(policy)?;
        {
            let lagging = m.status.as_ref().is_some_and(|w| {
                w.uid.as_deref() == uid
                    && Some(&w.written) != cached
                    && w.superseded.iter().any(|s| s.as_ref() == cached)
            });
            if lagging {
                m.status.as_ref().map(|w| w.written.clone())
            } else {
                m.status = None;
                None
            }
        }
    }

    /// Records a status write to the policy `uid`: `written` as the server returned it, over
    /// `started_from` (the status the reconcile began with) while the cache showed `cached`.
    pub fn remember_status(
        &self,
        policy: &ObjectRef<IdentitySettingPolicy>,
        uid: Option<String>,
        started_from: Option<IdentitySettingPolicyStatus>,
        cached: Option<IdentitySettingPolicyStatus>,
        written: IdentitySettingPolicyStatus,
    ) {
        self.with_memory(policy, |m| {
            let mut superseded = match m.status.take() {
                Some(w) if w.uid == uid => w.superseded,
                _ => Vec::new(),
            };
            for status in [cached, started_from] {
                if !superseded.contains(&status) {
                    superseded.push(status);
                }
            }
            if superseded.len() > MAX_SUPERSEDED {
                superseded.drain(..superseded.len() - MAX_SUPERSEDED);
            }
            m.status = Some(WrittenStatus {
                uid,
                superseded,
                written,
            });
        });
    }

    /// Forgets remembered status writes (after a failed write: what the server holds is unknown,
    /// so the cache is trusted).
    pub fn forget_status(&self, policy: &ObjectRef<IdentitySettingPolicy>) {
        let mut memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = memory.get_mut(policy) {
            m.status = None;
        }
    }

    /// Records that the server would not keep these desired values for `keys`.
    pub fn remember_rejected(
        &self,
        policy: &ObjectRef<IdentitySettingPolicy>,
        fingerprint: u64,
        keys: Vec<String>,
    ) {
        self.with_memory(policy, |m| m.rejected = Some((fingerprint, keys)));
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

    fn desired(value: &str) -> Vec<SettingValue> {
        vec![SettingValue {
            key: "A".into(),
            value: value.into(),
        }]
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
    async fn fingerprints_tell_drift_from_new_desired_values() {
        let ctx = context();
        let p = ObjectRef::new("p").within("ns");
        let (v1, v2) = (
            ctx.fingerprint(&desired("1")),
            ctx.fingerprint(&desired("2")),
        );
        assert_ne!(v1, v2);
        assert!(
            ctx.same_desired_as_last_sync(&p, v1),
            "unknown after a restart: counts as drift"
        );
        ctx.remember_synced(&p, v1);
        assert!(ctx.same_desired_as_last_sync(&p, v1));
        assert!(
            !ctx.same_desired_as_last_sync(&p, v2),
            "a rotated Secret is a change, not drift"
        );
    }

    #[tokio::test]
    async fn rejected_values_are_remembered_until_the_desired_values_change() {
        let ctx = context();
        let p = ObjectRef::new("p").within("ns");
        let v1 = ctx.fingerprint(&desired("010"));
        ctx.remember_rejected(&p, v1, vec!["A".into()]);
        assert_eq!(ctx.rejected_keys(&p, v1), Some(vec!["A".into()]));
        assert_eq!(ctx.rejected_keys(&p, ctx.fingerprint(&desired("10"))), None);
        ctx.remember_synced(&p, v1);
        assert_eq!(ctx.rejected_keys(&p, v1), None, "a later success clears it");
        ctx.forget(&p);
    }

    #[tokio::test]
    async fn a_lagging_cache_yields_the_status_last_written_until_it_catches_up() {
        let ctx = context();
        let p = ObjectRef::new("p").within("ns");
        let status = |generation| IdentitySettingPolicyStatus {
            observed_generation: Some(generation),
            ..IdentitySettingPolicyStatus::default()
        };
        let uid = Some("u1");
        assert_eq!(ctx.newer_status(&p, uid, None), None, "nothing written yet");

        // First write over no status; a second one before the cache showed the first.
        ctx.remember_status(&p, uid.map(Into::into), None, None, status(1));
        assert_eq!(ctx.newer_status(&p, uid, None), Some(status(1)));
        ctx.remember_status(&p, uid.map(Into::into), Some(status(1)), None, status(2));
        assert_eq!(ctx.newer_status(&p, uid, None), Some(status(2)));
        assert_eq!(
            ctx.newer_status(&p, uid, Some(&status(1))),
            Some(status(2)),
            "the cache showing the intermediate write still lags"
        );

        assert_eq!(
            ctx.newer_status(&p, uid, Some(&status(2))),
            None,
            "caught up"
        );
        assert_eq!(
            ctx.newer_status(&p, uid, None),
            None,
            "after catching up, a cleared status is news, not lag"
        );

        ctx.remember_status(&p, uid.map(Into::into), None, None, status(1));
        assert_eq!(
            ctx.newer_status(&p, Some("u2"), None),
            None,
            "a policy recreated under the same name is another object"
        );
        ctx.remember_status(&p, uid.map(Into::into), None, None, status(1));
        assert_eq!(
            ctx.newer_status(&p, uid, Some(&status(7))),
            None,
            "a status this process never replaced is the cache's own news"
        );
        ctx.remember_status(&p, uid.map(Into::into), None, None, status(1));
        ctx.forget_status(&p);
        assert_eq!(
            ctx.newer_status(&p, uid, None),
            None,
            "forgotten after a failed write"
        );
    }

    #[tokio::test]
    async fn reads_never_create_memory_and_gone_policies_are_pruned() {
        let ctx = context();
        let (a, b, never) = (
            ObjectRef::new("a").within("ns"),
            ObjectRef::new("b").within("ns"),
            ObjectRef::new("never-reconciled").within("ns"),
        );
        let fp = ctx.fingerprint(&desired("1"));
        ctx.remember_synced(&a, fp);
        ctx.remember_synced(&b, fp);
        assert!(ctx.same_desired_as_last_sync(&never, fp));
        assert_eq!(ctx.rejected_keys(&never, fp), None);
        assert_eq!(ctx.newer_status(&never, None, None), None);
        ctx.reset_backoff(&never);
        ctx.forget_status(&never);
        assert_eq!(ctx.remembered_policies(), 2, "reads created no entry");
        assert_eq!(ctx.retain(|p| *p == a), 1, "b is gone");
        assert_eq!(ctx.remembered_policies(), 1);
    }

    #[tokio::test]
    async fn a_status_write_the_cache_shows_is_no_longer_remembered() {
        let ctx = context();
        let p = ObjectRef::new("p").within("ns");
        let written = IdentitySettingPolicyStatus {
            observed_generation: Some(1),
            ..IdentitySettingPolicyStatus::default()
        };
        ctx.remember_status(&p, Some("u".into()), None, None, written.clone());
        ctx.drop_caught_up_statuses(|_| None);
        assert_eq!(
            ctx.newer_status(&p, Some("u"), None),
            Some(written.clone()),
            "still lagging: kept"
        );
        ctx.drop_caught_up_statuses(|_| Some(&written));
        assert_eq!(
            ctx.newer_status(&p, Some("u"), None),
            None,
            "caught up: dropped"
        );
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
