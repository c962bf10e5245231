//! The one index of the watched policies, in the shape of linkerd's policy-controller index: fed
//! from one place in the policy watch streams ([`PolicyIndex::apply`] and
//! [`PolicyIndex::delete`] for each event, [`PolicyIndex::reset`] when a watch has listed
//! again), it answers which policies read a Secret or name a server definition, how many are
//! ready, and which are gone — so that whatever the process keeps for a policy goes with it,
//! on its Delete event or on a relist that no longer shows it, and by no other path.
//!
//! It holds what the specs and statuses say, nothing a reconcile decided: dropping it and
//! feeding it a relist rebuilds it exactly.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use settings_core::demand::Demand;

use kube::ResourceExt;

use super::servers::ServerChange;
use super::watched::{Guarded, name_of, secret_names};
use crate::api::{IdentitySettingPolicy, ServerRef};
use crate::identity::budget::WindowLimits;
use crate::identity::types::guid_digits;
pub use crate::metrics::PolicyCounts;
use crate::reconcile::claims::PolicyName;
use crate::reconcile::status::READY;
use crate::reconcile::validate::resync_interval;

/// The most other policies of its group a read is offered for: a GET's URL holds a few dozen
/// keys at most, so more would only cost time.
pub const GROUP_READ_MAX: usize = 64;

/// The watched policies and what they reference.
#[derive(Default)]
pub struct PolicyIndex {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    policies: HashMap<PolicyName, Entry>,
    /// `namespace/secret` → the policies of that namespace whose spec names the Secret.
    secret_readers: HashMap<Box<str>, HashSet<PolicyName>>,
    /// Read group → its policies, for groups of more than one (most have one).
    groups: HashMap<u64, Vec<PolicyName>>,
    /// Read group → how many policies, for every group.
    group_sizes: HashMap<u64, usize>,
    /// Policies whose `Ready` condition is `True`, and those with one that is not.
    ready: usize,
    not_ready: usize,
}

/// What one policy's spec and status say, as far as the index is concerned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Entry {
    /// `namespace/secret` of every Secret its spec names (valid or not).
    secrets: Box<[Box<str>]>,
    /// The server definition it names, if any.
    server: Option<ServerRef>,
    /// Its `Ready` condition: `None` before its first reconcile (and for an object that does
    /// not match the schema).
    ready: Option<bool>,
    /// The server (its URL as [`crate::identity::urls::server_identity`] writes it) and the
    /// organization (GUID digits, or the value in lower case) it reads, and how often.
    reads: Option<Reads>,
}

/// Where and how often a policy reads.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Reads {
    server: Box<str>,
    organization: Box<str>,
    every: Duration,
    /// Policies with the same group read the same server, organization and user with the same
    /// credentials: one GET can serve them all (a hash of those, never shown).
    group: u64,
}

/// An organization whose request budget cannot check all of its policies within their
/// `resyncInterval`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shortfall {
    /// The server, as [`crate::identity::urls::server_identity`] writes its URL.
    pub server: String,
    /// The organization.
    pub organization: String,
    /// Its policies on that server.
    pub policies: usize,
    /// The shortest `resyncInterval`, the same for all of them, that the budget would allow.
    pub fits: Duration,
}

impl Entry {
    fn of(guard: &Guarded, server_url: &str) -> Entry {
        let Ok(policy) = &guard.0 else {
            return Entry::default();
        };
        let partition = policy.spec.partition_global_id.trim();
        let reads = (!server_url.is_empty()).then(|| {
            let server = crate::identity::urls::server_identity(server_url);
            let organization =
                guid_digits(partition).unwrap_or_else(|| partition.to_ascii_lowercase());
            Reads {
                group: read_group(policy, &server, &organization),
                server: server.into(),
                organization: organization.into(),
                every: resync_interval(&policy.spec),
            }
        });
        let namespace = policy.namespace().unwrap_or_default();
        let mut secrets: Vec<Box<str>> = secret_names(&policy.spec)
            .map(|name| format!("{namespace}/{name}").into())
            .collect();
        secrets.sort();
        secrets.dedup();
        Entry {
            secrets: secrets.into(),
            server: policy.spec.server_ref.as_deref().cloned(),
            ready: ready_condition(policy),
            reads,
        }
    }
}

/// What makes two policies' reads the same: the server, the credentials (an inline server's
/// Secret and how it is used, or the server definition named), the organization and the user.
fn read_group(policy: &IdentitySettingPolicy, server: &str, organization: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let namespace = policy.metadata.namespace.as_deref().unwrap_or_default();
    let spec = &policy.spec;
    let user = spec
        .user_id
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| guid_digits(u).unwrap_or_else(|| u.to_ascii_lowercase()));
    let credentials = match (&spec.server, &spec.server_ref) {
        (Some(inline), _) => format!(
            "inline/{namespace}/{}/{:?}/{:?}/{:?}",
            inline.credentials_secret_ref.name, inline.auth, inline.scopes, inline.authenticate_url
        ),
        (None, Some(r)) => match r.kind {
            crate::api::ServerKind::IdentityServer => format!("isrv/{namespace}/{}", r.name),
            crate::api::ServerKind::ClusterIdentityServer => format!("cisrv/{}", r.name),
        },
        (None, None) => String::new(),
    };
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (server, credentials, organization, user).hash(&mut h);
    h.finish()
}

/// The policy's `Ready` condition, as a bool.
fn ready_condition(policy: &IdentitySettingPolicy) -> Option<bool> {
    let ready = policy
        .status
        .iter()
        .flat_map(|s| &s.conditions)
        .find(|c| c.type_ == READY)?;
    Some(ready.status == "True")
}

impl PolicyIndex {
    /// Records a policy as its watch shows it now, its server being at `server_url` (empty
    /// while unknown).
    pub fn apply(&self, guard: &Guarded, server_url: &str) {
        let name = name_of(guard);
        let entry = Entry::of(guard, server_url);
        let mut inner = self.lock();
        if inner.policies.get(&name) == Some(&entry) {
            return;
        }
        inner.remove(&name);
        inner.insert(name, entry);
    }

    /// Forgets a deleted policy; false when it was not known.
    pub fn delete(&self, name: &PolicyName) -> bool {
        self.lock().remove(name)
    }

    /// After a watch over `namespace` (`None`: every namespace) listed again: forgets the
    /// policies of that scope the list did not show (deleted while the watch was down), and
    /// returns them.
    pub fn reset(&self, namespace: Option<&str>, listed: &HashSet<PolicyName>) -> Vec<PolicyName> {
        let mut inner = self.lock();
        let gone: Vec<PolicyName> = inner
            .policies
            .keys()
            .filter(|name| namespace.is_none_or(|ns| namespace_of(name) == ns))
            .filter(|name| !listed.contains(*name))
            .cloned()
            .collect();
        for name in &gone {
            inner.remove(name);
        }
        gone
    }

    /// Whether the policy is watched.
    pub fn contains(&self, name: &PolicyName) -> bool {
        self.lock().policies.contains_key(name)
    }

    /// The index's own copy of a watched policy's name, for the other tables that keep the
    /// policy (the work queue, the resync clock, per-policy memory) to share instead of each
    /// holding a copy.
    pub fn shared_name(&self, name: &str) -> Option<PolicyName> {
        self.lock()
            .policies
            .get_key_value(name)
            .map(|(name, _)| name.clone())
    }

    /// The policies of `namespace` whose spec names the Secret `name`.
    pub fn reading_secret(&self, namespace: &str, name: &str) -> Vec<PolicyName> {
        let key = format!("{namespace}/{name}");
        self.lock()
            .secret_readers
            .get(key.as_str())
            .map(|readers| readers.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether some policy's spec names the Secret `namespace/name`.
    pub fn is_secret_read(&self, namespace: &str, name: &str) -> bool {
        let key = format!("{namespace}/{name}");
        self.lock().secret_readers.contains_key(key.as_str())
    }

    /// The policies a change of server definitions concerns.
    pub fn naming_server(&self, change: &ServerChange) -> Vec<PolicyName> {
        self.lock()
            .policies
            .iter()
            .filter(|(name, entry)| {
                entry
                    .server
                    .as_ref()
                    .is_some_and(|r| change.concerns(namespace_of(name), r))
            })
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The organizations whose budget (`limits_for` a server URL, if it has per-organization
    /// limits) cannot check all of their policies within their `resyncInterval`, largest
    /// shortfall first.
    pub fn shortfalls(&self, limits_for: impl Fn(&str) -> Option<WindowLimits>) -> Vec<Shortfall> {
        let inner = self.lock();
        let mut demand: HashMap<(&str, &str), Demand> = HashMap::new();
        for reads in inner.policies.values().filter_map(|e| e.reads.as_ref()) {
            demand
                .entry((&reads.server, &reads.organization))
                .or_default()
                .add(reads.every);
        }
        let mut found: Vec<Shortfall> = demand
            .into_iter()
            .filter_map(|((server, organization), demand)| {
                let limits = limits_for(server)?;
                let fits = demand.shortfall(limits.reads, limits.window)?;
                Some(Shortfall {
                    server: server.to_owned(),
                    organization: organization.to_owned(),
                    policies: demand.policies,
                    fits,
                })
            })
            .collect();
        found.sort_by(|a, b| {
            (b.fits, &a.server, &a.organization).cmp(&(a.fits, &b.server, &b.organization))
        });
        found
    }

    /// The policy's read group and up to [`GROUP_READ_MAX`] other policies in it (none for
    /// most policies): one GET can serve them all (as many as fit one request).
    pub fn read_group(&self, name: &PolicyName) -> Option<(u64, Vec<PolicyName>)> {
        let inner = self.lock();
        let group = inner.policies.get(name)?.reads.as_ref()?.group;
        let others = inner
            .groups
            .get(&group)
            .map(|members| {
                members
                    .iter()
                    .filter(|m| *m != name)
                    .take(GROUP_READ_MAX)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        Some((group, others))
    }

    /// How many policies are watched, and ready.
    pub fn counts(&self) -> PolicyCounts {
        let inner = self.lock();
        PolicyCounts {
            watched: inner.policies.len(),
            ready: inner.ready,
            not_ready: inner.not_ready,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    fn insert(&mut self, name: PolicyName, entry: Entry) {
        if let Some(reads) = &entry.reads {
            self.join(reads.group, &name);
        }
        for secret in &entry.secrets {
            self.secret_readers
                .entry(secret.clone())
                .or_default()
                .insert(name.clone());
        }
        match entry.ready {
            Some(true) => self.ready += 1,
            Some(false) => self.not_ready += 1,
            None => {}
        }
        self.policies.insert(name, entry);
    }

    fn remove(&mut self, name: &PolicyName) -> bool {
        let Some(entry) = self.policies.remove(name) else {
            return false;
        };
        if let Some(reads) = &entry.reads {
            self.leave(reads.group, name);
        }
        for secret in &entry.secrets {
            if let Some(readers) = self.secret_readers.get_mut(secret) {
                readers.remove(name);
                if readers.is_empty() {
                    self.secret_readers.remove(secret);
                }
            }
        }
        match entry.ready {
            Some(true) => self.ready -= 1,
            Some(false) => self.not_ready -= 1,
            None => {}
        }
        true
    }
}

impl Inner {
    /// Adds `name` to a read group; members are listed once a group has two.
    fn join(&mut self, group: u64, name: &PolicyName) {
        let size = self.group_sizes.entry(group).or_default();
        *size += 1;
        if *size == 1 {
            return;
        }
        let members = self.groups.entry(group).or_default();
        if *size == 2 {
            // The first member was not listed: find it.
            let first = self
                .policies
                .iter()
                .find(|(other, e)| {
                    *other != name && e.reads.as_ref().is_some_and(|r| r.group == group)
                })
                .map(|(other, _)| other.clone());
            members.extend(first);
        }
        members.push(name.clone());
    }

    /// Removes `name` from its read group.
    fn leave(&mut self, group: u64, name: &PolicyName) {
        let Some(size) = self.group_sizes.get_mut(&group) else {
            return;
        };
        *size -= 1;
        if *size == 0 {
            self.group_sizes.remove(&group);
        }
        if let Some(members) = self.groups.get_mut(&group) {
            members.retain(|m| m != name);
            if members.len() < 2 {
                self.groups.remove(&group);
            }
        }
    }
}

/// The namespace part of `namespace/name`.
pub fn namespace_of(name: &str) -> &str {
    name.split_once('/').map_or("", |(ns, _)| ns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{IdentitySettingPolicyStatus, ServerKind};
    use crate::reconcile::claims::policy_name;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
    use std::sync::Arc;

    fn policy(ns: &str, name: &str, creds: &str, smtp: Option<&str>) -> IdentitySettingPolicy {
        crate::controller::watched::test_policy(ns, name, creds, smtp)
    }

    fn guard(p: &IdentitySettingPolicy) -> Guarded {
        Guarded(Ok(p.clone()))
    }

    fn with_ready(mut p: IdentitySettingPolicy, status: &str) -> IdentitySettingPolicy {
        p.status = Some(IdentitySettingPolicyStatus {
            conditions: vec![Condition {
                type_: READY.into(),
                status: status.into(),
                last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    jiff::Timestamp::UNIX_EPOCH,
                ),
                message: String::new(),
                observed_generation: None,
                reason: "Test".into(),
            }],
            ..IdentitySettingPolicyStatus::default()
        });
        p
    }

    impl PolicyIndex {
        fn apply_for_tests(&self, guard: &Guarded) {
            self.apply(guard, "https://x/identity_");
        }
    }

    fn sorted(mut names: Vec<PolicyName>) -> Vec<String> {
        names.sort();
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn a_secret_maps_to_exactly_the_policies_of_its_namespace_that_name_it() {
        let index = PolicyIndex::default();
        for p in [
            policy("a", "uses-creds", "creds", None),
            policy("a", "uses-smtp", "other", Some("smtp")),
            policy("b", "same-name-elsewhere", "creds", None),
        ] {
            index.apply_for_tests(&guard(&p));
        }
        assert_eq!(sorted(index.reading_secret("a", "creds")), ["a/uses-creds"]);
        assert_eq!(sorted(index.reading_secret("a", "smtp")), ["a/uses-smtp"]);
        assert_eq!(
            sorted(index.reading_secret("b", "creds")),
            ["b/same-name-elsewhere"]
        );
        assert!(index.reading_secret("a", "unrelated").is_empty());
        assert!(!index.is_secret_read("a", "unrelated"));
    }

    #[test]
    fn the_name_handed_out_is_the_indexs_own_copy() {
        let index = PolicyIndex::default();
        index.apply_for_tests(&guard(&policy("a", "p", "creds", None)));
        let first = index.shared_name("a/p").expect("watched");
        let second = index.shared_name("a/p").expect("watched");
        assert!(Arc::ptr_eq(&first, &second), "one copy, shared");
        assert_eq!(&*first, "a/p");
        assert_eq!(index.shared_name("a/unknown"), None);
    }

    #[test]
    fn a_changed_spec_moves_its_secret_and_a_deletion_releases_it() {
        let index = PolicyIndex::default();
        index.apply_for_tests(&guard(&policy("a", "p", "old", None)));
        index.apply_for_tests(&guard(&policy("a", "p", "new", None)));
        assert!(
            !index.is_secret_read("a", "old"),
            "the old Secret is no longer read"
        );
        assert_eq!(sorted(index.reading_secret("a", "new")), ["a/p"]);
        assert!(index.delete(&policy_name("a", "p")));
        assert!(!index.is_secret_read("a", "new"));
        assert!(!index.delete(&policy_name("a", "p")), "already gone");
        assert_eq!(index.counts(), PolicyCounts::default());
    }

    #[test]
    fn a_relist_forgets_exactly_the_unlisted_policies_of_its_scope() {
        let index = PolicyIndex::default();
        for (ns, name) in [("a", "kept"), ("a", "gone"), ("b", "other-scope")] {
            index.apply_for_tests(&guard(&policy(ns, name, "creds", None)));
        }
        let listed: HashSet<PolicyName> = [policy_name("a", "kept")].into_iter().collect();
        assert_eq!(sorted(index.reset(Some("a"), &listed)), ["a/gone"]);
        assert!(
            index.contains(&policy_name("b", "other-scope")),
            "another watch's"
        );
        assert_eq!(sorted(index.reading_secret("a", "creds")), ["a/kept"]);
        assert_eq!(
            sorted(index.reset(None, &listed)),
            ["b/other-scope"],
            "a watch of every namespace lists them all"
        );
        assert_eq!(index.counts().watched, 1);
    }

    #[test]
    fn ready_counts_follow_the_ready_condition_and_skip_policies_never_reconciled() {
        let index = PolicyIndex::default();
        let p = policy("a", "p", "creds", None);
        index.apply_for_tests(&guard(&p));
        index.apply_for_tests(&guard(&with_ready(
            policy("a", "q", "creds", None),
            "False",
        )));
        assert_eq!(
            index.counts(),
            PolicyCounts {
                watched: 2,
                ready: 0,
                not_ready: 1
            }
        );
        index.apply_for_tests(&guard(&with_ready(p.clone(), "True")));
        index.apply_for_tests(&guard(&with_ready(p, "True")));
        assert_eq!(
            index.counts(),
            PolicyCounts {
                watched: 2,
                ready: 1,
                not_ready: 1
            }
        );
        index.delete(&policy_name("a", "q"));
        assert_eq!(index.counts().not_ready, 0);
    }

    #[test]
    fn a_server_change_concerns_the_policies_naming_that_server() {
        let index = PolicyIndex::default();
        let mut named = policy("a", "named", "creds", None);
        named.spec.server = None;
        named.spec.server_ref = Some(Box::new(ServerRef {
            kind: ServerKind::IdentityServer,
            name: "idp".into(),
        }));
        index.apply_for_tests(&guard(&named));
        index.apply_for_tests(&guard(&policy("a", "inline", "creds", None)));
        let change = |ns: &str, name: &str| ServerChange::Namespaced {
            namespace: ns.into(),
            name: name.into(),
        };
        assert_eq!(
            sorted(index.naming_server(&change("a", "idp"))),
            ["a/named"]
        );
        assert!(index.naming_server(&change("b", "idp")).is_empty());
        assert_eq!(sorted(index.naming_server(&ServerChange::All)), ["a/named"]);
    }

    #[test]
    fn policies_reading_the_same_organization_with_the_same_credentials_form_a_group() {
        let index = PolicyIndex::default();
        let a = policy("a", "one", "creds", None);
        let mut b = policy("a", "two", "creds", None);
        b.spec.partition_global_id = b.spec.partition_global_id.to_uppercase();
        let other_creds = policy("a", "three", "other", None);
        let mut other_org = policy("a", "four", "creds", None);
        other_org.spec.partition_global_id = "another-org".into();
        let elsewhere = policy("b", "five", "creds", None);
        for p in [&a, &b, &other_creds, &other_org, &elsewhere] {
            index.apply_for_tests(&guard(p));
        }
        let (group, others) = index.read_group(&policy_name("a", "one")).expect("indexed");
        assert_eq!(
            sorted(others),
            ["a/two"],
            "same org (any case), same Secret"
        );
        let (same, _) = index.read_group(&policy_name("a", "two")).expect("indexed");
        assert_eq!(group, same);
        for alone in [("a", "three"), ("a", "four"), ("b", "five")] {
            let (_, others) = index
                .read_group(&policy_name(alone.0, alone.1))
                .expect("indexed");
            assert!(others.is_empty(), "{alone:?} reads alone");
        }
        index.delete(&policy_name("a", "two"));
        let (_, others) = index.read_group(&policy_name("a", "one")).expect("indexed");
        assert!(others.is_empty(), "the group shrank");
    }
}
