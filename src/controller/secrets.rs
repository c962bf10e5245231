//! The data of the Secrets policies read, fetched once per Secret version instead of once per
//! reconcile.
//!
//! The operator already watches Secrets' metadata (to reconcile the policies that read a Secret
//! that changed), which tells it each Secret's `resourceVersion`. A reconcile takes a Secret's
//! data from here while the version it was read at is still the current one, and reads it from
//! the API server (one GET) otherwise. So in steady state a resync makes no Kubernetes read, and
//! only the Secrets some policy references have their data in memory — never every Secret of the
//! watched namespaces, as a watch of whole Secrets would.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::ByteString;
use std::sync::{Arc, Mutex, MutexGuard};

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher;

use crate::reconcile::resolve::SecretData;

/// A Secret's namespace and name.
type SecretKey = (String, String);

/// Secret versions seen by the metadata watches, and the data of the referenced Secrets.
#[derive(Default)]
pub struct SecretCache {
    state: Mutex<State>,
    /// One turn per Secret for reading it from the API server: reconciles that find its data
    /// missing at the same moment (a cold start: 32 at once) read it once, not once each.
    turns: Mutex<HashMap<SecretKey, Arc<tokio::sync::Mutex<()>>>>,
}

#[derive(Default)]
struct State {
    /// The current `resourceVersion` of every Secret the watches saw.
    versions: HashMap<SecretKey, String>,
    /// Relists in progress, by watch scope (a namespace, or `None` for all): the versions they
    /// delivered so far. A relist replaces that scope's versions when it is done, so a Secret
    /// deleted while the watch was down is forgotten too.
    relists: HashMap<Option<String>, HashMap<SecretKey, String>>,
    /// Data read from the API server, with the version it was read at.
    data: HashMap<SecretKey, Cached>,
}

struct Cached {
    version: Option<String>,
    /// The keys asked for when it was read (those absent from the Secret included): the data
    /// holds these and no other key.
    asked: BTreeSet<String>,
    data: Arc<SecretData>,
}

impl SecretCache {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes in one event of the Secret metadata watch of `scope` (a namespace, or `None` for a
    /// cluster-wide watch).
    pub fn observe(&self, scope: Option<&str>, event: &watcher::Event<PartialObjectMeta<Secret>>) {
        let mut state = self.lock();
        let key = |s: &PartialObjectMeta<Secret>| (s.namespace().unwrap_or_default(), s.name_any());
        match event {
            watcher::Event::Apply(secret) => {
                let version = secret.resource_version().unwrap_or_default();
                state.versions.insert(key(secret), version);
            }
            watcher::Event::Delete(secret) => {
                let key = key(secret);
                state.versions.remove(&key);
                state.data.remove(&key);
            }
            watcher::Event::Init => {
                state
                    .relists
                    .insert(scope.map(str::to_owned), HashMap::new());
            }
            watcher::Event::InitApply(secret) => {
                let version = secret.resource_version().unwrap_or_default();
                if let Some(relist) = state.relists.get_mut(&scope.map(str::to_owned)) {
                    relist.insert(key(secret), version);
                }
            }
            watcher::Event::InitDone => {
                let Some(relist) = state.relists.remove(&scope.map(str::to_owned)) else {
                    return;
                };
                let in_scope = |(namespace, _): &SecretKey| scope.is_none_or(|s| s == namespace);
                state.versions.retain(|k, _| !in_scope(k));
                state
                    .data
                    .retain(|k, c| !in_scope(k) || relist.get(k) == c.version.as_ref());
                state.versions.extend(relist);
            }
        }
    }

    /// The Secret's data (its `keys` that exist), if it was read at the version the watch
    /// last reported and with these keys asked for.
    pub fn get(
        &self,
        namespace: &str,
        name: &str,
        keys: &BTreeSet<String>,
    ) -> Option<Arc<SecretData>> {
        let state = self.lock();
        let key = (namespace.to_owned(), name.to_owned());
        let cached = state.data.get(&key)?;
        let current = state.versions.get(&key)?;
        (cached.version.as_ref() == Some(current) && keys.is_subset(&cached.asked))
            .then(|| cached.data.clone())
    }

    /// The Secret's version as the watch last reported it (the version [`Self::get`] serves).
    pub fn version(&self, namespace: &str, name: &str) -> Option<String> {
        self.lock()
            .versions
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Keeps `keys` (and the keys asked for before at the same version) of a Secret just read
    /// from the API server at `version`, dropping the rest of `data`; returns what is kept.
    pub fn insert(
        &self,
        namespace: &str,
        name: &str,
        version: Option<String>,
        keys: &BTreeSet<String>,
        mut data: BTreeMap<String, ByteString>,
    ) -> Arc<SecretData> {
        let mut state = self.lock();
        let key = (namespace.to_owned(), name.to_owned());
        let mut asked = keys.clone();
        if let Some(before) = state.data.get(&key).filter(|c| c.version == version) {
            asked.extend(before.asked.iter().cloned());
        }
        let kept: SecretData = asked
            .iter()
            .filter_map(|k| data.remove(k).map(|v| (k.clone(), v.0)))
            .collect();
        let kept = Arc::new(kept);
        state.data.insert(
            key,
            Cached {
                version,
                asked,
                data: kept.clone(),
            },
        );
        kept
    }

    /// Waits for the turn to read the Secret from the API server; look in the cache again
    /// once it is yours (whoever had it before may have just read it).
    pub async fn read_turn(&self, namespace: &str, name: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let turn = {
            let mut turns = self.turns.lock().unwrap_or_else(|e| e.into_inner());
            // Turns nobody holds or waits for go, so the map holds only Secrets being read.
            turns.retain(|_, t| Arc::strong_count(t) > 1);
            turns
                .entry((namespace.to_owned(), name.to_owned()))
                .or_default()
                .clone()
        };
        turn.lock_owned().await
    }

    /// Drops the data of Secrets no policy references any more.
    pub fn retain(&self, referenced: impl Fn(&str, &str) -> bool) {
        self.lock()
            .data
            .retain(|(ns, name), _| referenced(ns, name));
    }

    /// How many Secrets' data are held.
    pub fn len(&self) -> usize {
        self.lock().data.len()
    }

    /// Whether no Secret's data is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ObjectMeta;

    #[tokio::test]
    async fn one_reader_at_a_time_per_secret_and_no_turn_kept_once_done() {
        let cache = SecretCache::default();
        let first = cache.read_turn("ns", "a").await;
        let other = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            cache.read_turn("ns", "a"),
        )
        .await;
        assert!(other.is_err(), "a second reader of the same Secret waits");
        let _b = cache.read_turn("ns", "b").await;
        drop(first);
        drop(cache.read_turn("ns", "a").await);
        drop(_b);
        let _c = cache.read_turn("ns", "c").await;
        let turns = cache.turns.lock().expect("lock");
        assert_eq!(turns.len(), 1, "only the turn being held is kept");
    }
    use kube::core::PartialObjectMetaExt;

    fn secret(ns: &str, name: &str, version: &str) -> PartialObjectMeta<Secret> {
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            resource_version: Some(version.into()),
            ..ObjectMeta::default()
        }
        .into_response_partial()
    }

    fn data(value: &str) -> SecretData {
        SecretData::from([("k".to_owned(), value.as_bytes().to_vec())])
    }

    /// The keys the tests' policies read.
    fn k() -> BTreeSet<String> {
        BTreeSet::from(["k".to_owned()])
    }

    /// A Secret's data as the API server sends it: key `k` and a large key no policy reads.
    fn raw(value: &str) -> BTreeMap<String, ByteString> {
        BTreeMap::from([
            ("k".to_owned(), ByteString(value.as_bytes().to_vec())),
            ("unread".to_owned(), ByteString(vec![0; 512 * 1024])),
        ])
    }

    #[test]
    fn only_the_keys_policies_read_are_kept() {
        let cache = SecretCache::default();
        cache.observe(Some("a"), &watcher::Event::Apply(secret("a", "creds", "1")));
        let kept = cache.insert("a", "creds", Some("1".into()), &k(), raw("v1"));
        assert_eq!(*kept, data("v1"), "the unread 512 KiB key is not kept");
        let more = BTreeSet::from(["k".to_owned(), "other".to_owned()]);
        assert_eq!(
            cache.get("a", "creds", &more),
            None,
            "a key not asked for before is read again"
        );
        cache.insert(
            "a",
            "creds",
            Some("1".into()),
            &BTreeSet::from(["other".to_owned()]),
            raw("v1"),
        );
        assert_eq!(
            cache.get("a", "creds", &more).as_deref(),
            Some(&data("v1")),
            "both policies' keys are served (other does not exist)"
        );
    }

    #[test]
    fn data_is_served_while_its_version_is_current() {
        let cache = SecretCache::default();
        cache.observe(Some("a"), &watcher::Event::Apply(secret("a", "creds", "1")));
        assert_eq!(cache.get("a", "creds", &k()), None, "never read");
        cache.insert("a", "creds", Some("1".into()), &k(), raw("v1"));
        assert_eq!(cache.get("a", "creds", &k()).as_deref(), Some(&data("v1")));
        cache.observe(Some("a"), &watcher::Event::Apply(secret("a", "creds", "2")));
        assert_eq!(
            cache.get("a", "creds", &k()),
            None,
            "changed: read it again"
        );
        cache.insert("a", "creds", Some("2".into()), &k(), raw("v2"));
        assert_eq!(cache.get("a", "creds", &k()).as_deref(), Some(&data("v2")));
        cache.observe(
            Some("a"),
            &watcher::Event::Delete(secret("a", "creds", "2")),
        );
        assert_eq!(cache.get("a", "creds", &k()), None);
        assert!(cache.is_empty(), "a deleted Secret's data is dropped");
    }

    #[test]
    fn a_read_the_watch_has_not_confirmed_is_read_again() {
        let cache = SecretCache::default();
        cache.insert("a", "creds", Some("5".into()), &k(), raw("v5"));
        assert_eq!(
            cache.get("a", "creds", &k()),
            None,
            "the watch has not seen it yet"
        );
        cache.observe(None, &watcher::Event::Apply(secret("a", "creds", "5")));
        assert!(cache.get("a", "creds", &k()).is_some());
    }

    #[test]
    fn a_relist_forgets_secrets_deleted_while_the_watch_was_down_in_its_scope_only() {
        let cache = SecretCache::default();
        for (ns, name) in [("a", "kept"), ("a", "gone"), ("b", "other")] {
            cache.observe(Some(ns), &watcher::Event::Apply(secret(ns, name, "1")));
            cache.insert(ns, name, Some("1".into()), &k(), raw(name));
        }
        cache.observe(Some("a"), &watcher::Event::Init);
        cache.observe(
            Some("a"),
            &watcher::Event::InitApply(secret("a", "kept", "1")),
        );
        assert!(
            cache.get("a", "gone", &k()).is_some(),
            "nothing changes before the relist ends"
        );
        cache.observe(Some("a"), &watcher::Event::InitDone);
        assert!(cache.get("a", "kept", &k()).is_some());
        assert_eq!(cache.get("a", "gone", &k()), None);
        assert!(
            cache.get("b", "other", &k()).is_some(),
            "another namespace's watch"
        );
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn data_of_secrets_no_policy_reads_is_dropped() {
        let cache = SecretCache::default();
        cache.insert("a", "used", Some("1".into()), &k(), raw("x"));
        cache.insert("a", "unused", Some("1".into()), &k(), raw("y"));
        cache.retain(|_, name| name == "used");
        assert_eq!(cache.len(), 1);
    }
}
