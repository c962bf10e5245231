//! Which policy owns which setting (pure): two policies declaring the same (server, partition,
//! user, key) would overwrite each other on every resync, so the older one — by creation time,
//! then namespace and name — owns the key and the newer one must not write it.
//!
//! Only a policy that could write claims keys (the controller's `ownership::could_write`): one in `Enforce` mode, not
//! being deleted, whose last reconcile did not stop at something only its author can fix (an
//! invalid spec, a missing or unusable Secret, rejected or forbidden credentials, a server that
//! does not exist or does not allow its namespace, suspension). Otherwise a policy that never
//! writes — or a tenant's decoy — would block a valid newer one forever.
//!
//! [`ClaimIndex`] is plain data the controller keeps up to date from the policy watch; it costs a
//! few hundred bytes per policy: keys are held as 64-bit hashes of (server, partition, user,
//! key), whose collisions are negligible at any realistic number of keys.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use crate::api::IdentitySettingPolicy;
use crate::identity::types::guid_digits;

/// A policy's name as the index keys it: `namespace/name`.
pub type PolicyName = Arc<str>;

/// The keys one policy declares, and its age.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// `namespace/name`.
    pub name: PolicyName,
    /// Creation time, in seconds since the epoch (`i64::MAX` when unknown: youngest).
    pub created: i64,
    /// One hash per declared key, in spec order.
    pub keys: Box<[u64]>,
}

impl Claim {
    /// The claim of a policy whose server is at `server_url` (inline or referenced), or `None`
    /// for one being deleted (it no longer owns anything).
    pub fn of(policy: &IdentitySettingPolicy, server_url: &str) -> Option<Claim> {
        let meta = &policy.metadata;
        if meta.deletion_timestamp.is_some() {
            return None;
        }
        Some(Claim {
            name: policy_name(
                meta.namespace.as_deref().unwrap_or_default(),
                meta.name.as_deref().unwrap_or_default(),
            ),
            created: meta
                .creation_timestamp
                .as_ref()
                .map_or(i64::MAX, |t| t.0.as_second()),
            keys: key_hashes(policy, server_url).collect(),
        })
    }

    /// True when `self` is older than `other`, so owns what both declare.
    fn older_than(&self, other: &Claim) -> bool {
        (self.created, &self.name) < (other.created, &other.name)
    }
}

/// `namespace/name`.
pub fn policy_name(namespace: &str, name: &str) -> PolicyName {
    format!("{namespace}/{name}").into()
}

/// The hash of each of a policy's keys, in spec order: the server by its URL (scheme and host
/// in lower case, no trailing slash), partition and user by value (GUIDs in any format), the key
/// case-insensitively — as the identity service tells settings apart.
pub fn key_hashes<'a>(
    policy: &'a IdentitySettingPolicy,
    server_url: &str,
) -> impl Iterator<Item = u64> + 'a {
    let spec = &policy.spec;
    let url = match url::Url::parse(server_url.trim()) {
        Ok(u) => u.as_str().trim_end_matches('/').to_owned(),
        Err(_) => server_url.trim().trim_end_matches('/').to_owned(),
    };
    let id = |s: &str| guid_digits(s.trim()).unwrap_or_else(|| s.trim().to_owned());
    let partition = id(&spec.partition_global_id);
    let user = spec.user_id.as_deref().filter(|u| !u.is_empty()).map(id);
    spec.settings.iter().map(move |s| {
        // SipHash with fixed keys: the same in every process and replica.
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (&url, &partition, &user, s.key.to_ascii_lowercase()).hash(&mut h);
        h.finish()
    })
}

/// Every live policy's claim, and the claimants of each key.
#[derive(Debug, Default)]
pub struct ClaimIndex {
    claims: HashMap<PolicyName, Claim>,
    by_key: HashMap<u64, Claimants>,
}

/// The policies declaring one key: almost always one, kept without an allocation.
#[derive(Debug)]
enum Claimants {
    One(PolicyName),
    Many(Vec<PolicyName>),
}

impl Claimants {
    fn iter(&self) -> std::slice::Iter<'_, PolicyName> {
        match self {
            Claimants::One(name) => std::slice::from_ref(name).iter(),
            Claimants::Many(names) => names.iter(),
        }
    }

    fn add(&mut self, name: &PolicyName) {
        if self.iter().any(|n| n == name) {
            return;
        }
        match self {
            Claimants::One(first) => *self = Claimants::Many(vec![first.clone(), name.clone()]),
            Claimants::Many(names) => names.push(name.clone()),
        }
    }

    /// Removes `name`; false when no claimant is left.
    fn remove(&mut self, name: &PolicyName) -> bool {
        match self {
            Claimants::One(only) => only != name,
            Claimants::Many(names) => {
                names.retain(|n| n != name);
                match names.as_slice() {
                    [] => false,
                    [only] => {
                        let only = only.clone();
                        *self = Claimants::One(only);
                        true
                    }
                    _ => true,
                }
            }
        }
    }
}

impl ClaimIndex {
    /// Records a policy's claim (`None`: it is being deleted, or gone). Returns the policies to
    /// look at again: the younger claimants of every key this policy started or stopped
    /// declaring, whose ownership just changed. A claim that did not change returns none.
    pub fn update(&mut self, name: &PolicyName, claim: Option<Claim>) -> Vec<PolicyName> {
        let old = self.claims.get(name);
        if old == claim.as_ref() {
            return vec![];
        }
        let old_keys: Vec<u64> = old.map(|c| c.keys.to_vec()).unwrap_or_default();
        let new_keys: Vec<u64> = claim.iter().flat_map(|c| c.keys.iter().copied()).collect();
        let changed: Vec<u64> = old_keys
            .iter()
            .filter(|k| !new_keys.contains(k))
            .chain(new_keys.iter().filter(|k| !old_keys.contains(k)))
            .copied()
            .collect();
        let me = claim.clone().or_else(|| old.cloned());
        for key in &old_keys {
            if let Some(claimants) = self.by_key.get_mut(key)
                && !claimants.remove(name)
            {
                self.by_key.remove(key);
            }
        }
        match claim {
            Some(claim) => {
                for key in claim.keys.iter() {
                    match self.by_key.get_mut(key) {
                        Some(claimants) => claimants.add(name),
                        None => {
                            self.by_key.insert(*key, Claimants::One(name.clone()));
                        }
                    }
                }
                self.claims.insert(name.clone(), claim);
            }
            None => {
                self.claims.remove(name);
            }
        }
        let Some(me) = me else { return vec![] };
        let mut nudge: Vec<PolicyName> = changed
            .iter()
            .flat_map(|k| self.by_key.get(k).into_iter().flat_map(Claimants::iter))
            .filter(|n| self.claims.get(*n).is_some_and(|c| me.older_than(c)))
            .cloned()
            .collect();
        nudge.sort();
        nudge.dedup();
        nudge
    }

    /// For each key of `claim` owned by an older policy: its index in `claim.keys` and the
    /// owner's name.
    pub fn owned_by_others(&self, claim: &Claim) -> Vec<(usize, PolicyName)> {
        claim
            .keys
            .iter()
            .enumerate()
            .filter_map(|(i, key)| {
                let owner = self
                    .by_key
                    .get(key)?
                    .iter()
                    .filter(|n| **n != claim.name)
                    .filter_map(|n| self.claims.get(n))
                    .filter(|c| c.older_than(claim))
                    .min_by(|a, b| (a.created, &a.name).cmp(&(b.created, &b.name)))?;
                Some((i, owner.name.clone()))
            })
            .collect()
    }

    /// Drops the claims of policies `exists` says are gone (deletions a watch missed).
    pub fn retain(&mut self, exists: impl Fn(&str) -> bool) {
        let gone: Vec<PolicyName> = self.claims.keys().filter(|n| !exists(n)).cloned().collect();
        for name in gone {
            self.update(&name, None);
        }
    }

    /// How many policies hold claims.
    pub fn len(&self) -> usize {
        self.claims.len()
    }

    /// True when no policy holds a claim.
    pub fn is_empty(&self) -> bool {
        self.claims.is_empty()
    }
}

/// The `Conflict` message: which keys, owned by whom, and what to do. `owners` pairs each of
/// this policy's keys that another owns with the owner.
pub fn conflict_message(owners: &[(String, PolicyName)], total: usize) -> String {
    let mut by_owner: Vec<(&PolicyName, Vec<&str>)> = Vec::new();
    for (key, owner) in owners {
        match by_owner.iter_mut().find(|(o, _)| *o == owner) {
            Some((_, keys)) => keys.push(key),
            None => by_owner.push((owner, vec![key])),
        }
    }
    let parts: Vec<String> = by_owner
        .iter()
        .map(|(owner, keys)| format!("{} (owned by older policy {owner})", keys.join(", ")))
        .collect();
    format!(
        "{} of {total} settings are also managed by an older policy for the same server, \
         partition and user, so this policy does not write them: {}; remove them from one of \
         the policies",
        owners.len(),
        parts.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{IdentitySettingPolicySpec, SettingSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn policy(ns: &str, name: &str, created: i64, keys: &[&str]) -> IdentitySettingPolicy {
        let settings = keys
            .iter()
            .map(|k| SettingSpec {
                key: (*k).into(),
                value: Some("1".into()),
                value_from: None,
            })
            .collect();
        let mut spec = IdentitySettingPolicySpec::for_tests(
            "https://Cloud.Example/acme/identity_/",
            "c",
            settings,
        );
        spec.partition_global_id = "3fa85f64-5717-4562-b3fc-2c963f66afa6".into();
        let mut p = IdentitySettingPolicy::new(name, spec);
        p.metadata.namespace = Some(ns.into());
        p.metadata.creation_timestamp = Some(Time(
            jiff::Timestamp::from_second(created).unwrap_or_default(),
        ));
        p
    }

    fn url(p: &IdentitySettingPolicy) -> String {
        p.spec
            .server
            .as_ref()
            .map(|s| s.url.clone())
            .unwrap_or_default()
    }

    fn add(index: &mut ClaimIndex, p: &IdentitySettingPolicy) -> Vec<PolicyName> {
        let claim = Claim::of(p, &url(p));
        let name = policy_name(
            p.metadata.namespace.as_deref().unwrap_or_default(),
            p.metadata.name.as_deref().unwrap_or_default(),
        );
        index.update(&name, claim)
    }

    fn owners(index: &ClaimIndex, p: &IdentitySettingPolicy) -> Vec<(usize, String)> {
        let claim = Claim::of(p, &url(p)).unwrap_or_else(|| panic!("live"));
        index
            .owned_by_others(&claim)
            .into_iter()
            .map(|(i, n)| (i, n.to_string()))
            .collect()
    }

    #[test]
    fn the_older_policy_owns_shared_keys_whatever_their_spelling() {
        let mut index = ClaimIndex::default();
        let older = policy("a", "first", 100, &["Auth.X", "Auth.Y"]);
        let mut newer = policy("b", "second", 200, &["AUTH.X", "Auth.Z"]);
        // The same server and partition, written otherwise.
        newer.spec.server.as_mut().expect("inline").url =
            "https://cloud.example/acme/identity_".into();
        newer.spec.partition_global_id = "{3FA85F64-5717-4562-B3FC-2C963F66AFA6}".into();
        assert!(add(&mut index, &older).is_empty());
        assert!(add(&mut index, &newer).is_empty(), "nobody younger to tell");
        assert_eq!(owners(&index, &newer), [(0, "a/first".to_owned())]);
        assert!(owners(&index, &older).is_empty());
    }

    #[test]
    fn same_creation_time_goes_by_namespace_and_name_and_other_scopes_never_conflict() {
        let mut index = ClaimIndex::default();
        let a = policy("ns", "a", 100, &["K"]);
        let b = policy("ns", "b", 100, &["K"]);
        let mut user = policy("ns", "c", 50, &["K"]);
        user.spec.user_id = Some("u1".into());
        let mut other_server = policy("ns", "d", 50, &["K"]);
        other_server.spec.server.as_mut().expect("inline").url =
            "https://other.example/identity_".into();
        for p in [&b, &a, &user, &other_server] {
            add(&mut index, p);
        }
        assert_eq!(owners(&index, &b), [(0, "ns/a".to_owned())]);
        assert!(owners(&index, &a).is_empty());
        assert!(owners(&index, &user).is_empty() && owners(&index, &other_server).is_empty());
    }

    #[test]
    fn when_the_owner_goes_or_drops_the_key_the_younger_claimants_are_named() {
        let mut index = ClaimIndex::default();
        let a = policy("ns", "a", 100, &["K", "L"]);
        let b = policy("ns", "b", 200, &["K"]);
        let c = policy("ns", "c", 300, &["L"]);
        for p in [&a, &b, &c] {
            add(&mut index, p);
        }
        // A status update (the same claim) nudges nobody.
        assert!(add(&mut index, &a).is_empty());
        // a stops declaring K: b now owns it.
        let a_without_k = policy("ns", "a", 100, &["L"]);
        assert_eq!(
            add(&mut index, &a_without_k),
            ["ns/b".into()] as [PolicyName; 1]
        );
        assert!(owners(&index, &b).is_empty());
        // a is deleted: c owns L.
        let mut deleting = a_without_k.clone();
        deleting.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        assert_eq!(
            add(&mut index, &deleting),
            ["ns/c".into()] as [PolicyName; 1]
        );
        assert!(owners(&index, &c).is_empty());
        // An older policy arriving takes K from b: b is told.
        let older = policy("ns", "z", 50, &["K"]);
        assert_eq!(add(&mut index, &older), ["ns/b".into()] as [PolicyName; 1]);
        index.retain(|n| n != "ns/z");
        assert!(owners(&index, &b).is_empty());
        assert_eq!(index.len(), 2);
    }

    #[test]
    fn the_message_groups_keys_by_owner() {
        let owners = vec![
            ("A".to_owned(), PolicyName::from("x/one")),
            ("B".to_owned(), PolicyName::from("y/two")),
            ("C".to_owned(), PolicyName::from("x/one")),
        ];
        let m = conflict_message(&owners, 5);
        assert!(m.starts_with("3 of 5 settings"), "{m}");
        assert!(m.contains("A, C (owned by older policy x/one); B (owned by older policy y/two)"));
    }
}
