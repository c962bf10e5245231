//! Keeps the [`ClaimIndex`] of every watched policy current, and tells the policies whose
//! ownership of a key changed (an older policy took it, or its owner dropped it or went away) to
//! reconcile now rather than at their next resync.

use std::sync::Mutex;

use tokio::sync::{broadcast, watch};

use super::error::reason;
use crate::api::IdentitySettingPolicy;
use crate::reconcile::claims::{Claim, ClaimIndex, PolicyName, policy_name};

/// How many nudges may wait for a controller; more are dropped (those policies still reconcile
/// at their resync).
const NUDGE_BACKLOG: usize = 1024;

/// The `Ready` reasons of a policy that cannot write until its author changes something: such
/// a policy owns no key.
pub const CANNOT_WRITE: &[&str] = &[
    reason::INVALID_SPEC,
    reason::SECRET_NOT_FOUND,
    reason::SECRET_INVALID,
    reason::CREDENTIALS_REJECTED,
    reason::FORBIDDEN,
    reason::ENDPOINT_NOT_FOUND,
    reason::SERVER_NOT_FOUND,
    reason::SERVER_NOT_ALLOWED,
    crate::reconcile::status::reason::SUSPENDED,
];

/// Whether the policy may own keys: it enforces (not `Observe` or `Plan`), is not suspended
/// by its spec, and has been reconciled (it has a `Ready` condition) with a reason other than
/// one of [`CANNOT_WRITE`]. A policy never reconciled yet owns nothing until its first status:
/// two new policies of one key may then each write it once.
pub fn could_write(policy: &IdentitySettingPolicy) -> bool {
    let spec = &policy.spec;
    if spec.mode() != crate::api::SyncMode::Enforce || spec.suspend == Some(true) {
        return false;
    }
    let ready = policy
        .status
        .iter()
        .flat_map(|s| &s.conditions)
        .find(|c| c.type_ == crate::reconcile::status::READY);
    ready.is_some_and(|c| !CANNOT_WRITE.contains(&c.reason.as_str()))
}

/// Ownership of keys between policies, fed by the policy watches.
pub struct Ownership {
    index: Mutex<ClaimIndex>,
    /// True once every watch delivered its first list: before that an older policy may simply
    /// not be known yet, and a newer one would write its keys once.
    complete: watch::Sender<bool>,
    /// Policies (`namespace/name`) to reconcile now.
    nudges: broadcast::Sender<PolicyName>,
}

impl Default for Ownership {
    fn default() -> Self {
        Self {
            index: Mutex::default(),
            // Complete until a controller says it is listing (see `listing`): a reconcile run
            // without the watches has no other policies to wait for.
            complete: watch::Sender::new(true),
            nudges: broadcast::Sender::new(NUDGE_BACKLOG),
        }
    }
}

impl Ownership {
    /// Records a policy as the watch shows it now, its server being at `server_url`: its keys
    /// are claimed only while it [`could_write`].
    pub fn observe(&self, policy: &IdentitySettingPolicy, server_url: &str) {
        let name = policy_name(
            policy.metadata.namespace.as_deref().unwrap_or_default(),
            policy.metadata.name.as_deref().unwrap_or_default(),
        );
        let claim = if could_write(policy) {
            Claim::of(policy, server_url)
        } else {
            None
        };
        self.update(&name, claim);
    }

    /// Forgets a deleted (or unreadable) policy's claim.
    pub fn forget(&self, namespace: &str, name: &str) {
        self.update(&policy_name(namespace, name), None);
    }

    fn update(&self, name: &PolicyName, claim: Option<Claim>) {
        let nudge = self.lock().update(name, claim);
        for other in nudge {
            // No receiver (no controller running) is fine: nothing to nudge.
            let _ = self.nudges.send(other);
        }
    }

    /// Drops the claims of policies `exists` says are gone (`namespace/name`).
    pub fn retain(&self, exists: impl Fn(&str) -> bool) {
        self.lock().retain(exists);
    }

    /// The watches are about to list: ownership is unknown until [`Ownership::mark_complete`].
    pub fn listing(&self) {
        self.complete.send_replace(false);
    }

    /// Every watch has delivered its first list: ownership is known.
    pub fn mark_complete(&self) {
        self.complete.send_replace(true);
    }

    /// Asks the controllers to reconcile `policy` now (no receiver, no controller: nothing to
    /// do).
    pub fn nudge(&self, policy: PolicyName) {
        let _ = self.nudges.send(policy);
    }

    /// The policies to reconcile because their ownership changed (or [`Ownership::nudge`]).
    pub fn nudges(&self) -> broadcast::Receiver<PolicyName> {
        self.nudges.subscribe()
    }

    /// Each of `policy`'s keys that an older policy owns: the key as this policy spells it and
    /// the owner's `namespace/name`. Waits until every watch has delivered its first list.
    pub async fn owned_by_others(
        &self,
        policy: &IdentitySettingPolicy,
        server_url: &str,
    ) -> Vec<(String, PolicyName)> {
        let mut complete = self.complete.subscribe();
        // A closed sender cannot happen while `self` lives.
        let _ = complete.wait_for(|c| *c).await;
        let Some(claim) = Claim::of(policy, server_url) else {
            return vec![];
        };
        self.lock()
            .owned_by_others(&claim)
            .into_iter()
            .filter_map(|(i, owner)| Some((policy.spec.settings.get(i)?.key.to_string(), owner)))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ClaimIndex> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }
}
