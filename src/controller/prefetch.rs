//! The Secrets of the policies of the operator's first list, read while the rest of the list
//! arrives. The first reconciles wait for the whole list (the claims on keys are known only
//! then) and would then all wait for the GET of their shared credentials Secret: at a cold
//! start of 1 000 policies on a real API server, 44 ms of the 0.2 s before the first write.
//! Read ahead, the Secret is in the cache when they start.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use kube::ResourceExt;
use tokio::sync::mpsc;

use super::context::Context;
use super::gather::fetch_secrets;
use crate::api::IdentitySettingPolicy;
use crate::reconcile::resolve::referenced_secrets;
use crate::reconcile::validate::{ValidPolicy, validate};

use super::watched::secret_names;

/// Distinct Secrets read ahead per first list, at most, one at a time: a namespace of policies
/// naming thousands of Secrets costs no more than this, and its reconciles read the rest.
pub const LIMIT: usize = 16;

/// One read ahead: the Secrets `names` of `namespace`, with the keys `valid` reads of them.
pub struct Read {
    namespace: String,
    valid: ValidPolicy,
    names: BTreeSet<String>,
}

/// What to read ahead for a policy of the first list: the Secrets its inline server and its
/// settings name that were not read ahead yet (noted in `seen`, at most [`LIMIT`]). Policies
/// that name a server definition, that do not validate, that are suspended (whose reconcile
/// reads nothing) or being deleted are left to their reconcile. A policy whose Secrets were all
/// asked for already costs a lookup, not a validation: the usual case, many policies sharing
/// one credentials Secret.
pub fn to_read(
    seen: &mut HashSet<(String, String)>,
    policy: &IdentitySettingPolicy,
    now: jiff::Timestamp,
) -> Option<Read> {
    if policy.spec.server.is_none()
        || policy.metadata.deletion_timestamp.is_some()
        || seen.len() >= LIMIT
    {
        return None;
    }
    let namespace = policy.namespace().unwrap_or_default();
    let all_asked =
        secret_names(&policy.spec).all(|name| seen.contains(&(namespace.clone(), name.to_owned())));
    if all_asked {
        return None;
    }
    let valid = validate(&policy.spec).ok()?;
    if valid.suspended_at(now).is_some() {
        return None;
    }
    let names: BTreeSet<String> = referenced_secrets(&valid)
        .into_iter()
        .filter(|name| seen.len() < LIMIT && seen.insert((namespace.clone(), name.clone())))
        .collect();
    (!names.is_empty()).then_some(Read {
        namespace,
        valid,
        names,
    })
}

/// Reads ahead, during the first list of one policy watch; dropped when that list is done,
/// which ends its task once the reads already asked for are made.
pub struct SecretPrefetch {
    sender: mpsc::UnboundedSender<Read>,
    seen: HashSet<(String, String)>,
}

impl SecretPrefetch {
    /// Starts the task that makes the reads, one at a time, into the context's Secret cache.
    pub fn start(ctx: Arc<Context>) -> Self {
        let (sender, mut reads) = mpsc::unbounded_channel::<Read>();
        tokio::spawn(async move {
            while let Some(read) = reads.recv().await {
                // A failure is the reconcile's to report: it finds nothing cached and reads.
                // Cut off like a reconcile: a read that hangs holds the Secret's read turn,
                // which every reconcile reading that Secret waits for.
                let reading = fetch_secrets(&ctx, &read.valid, &read.namespace, read.names);
                let _ = tokio::time::timeout(ctx.settings.reconcile_deadline, reading).await;
            }
        });
        Self {
            sender,
            seen: HashSet::new(),
        }
    }

    /// A policy of the first list arrived.
    pub fn listed(&mut self, policy: &IdentitySettingPolicy) {
        if let Some(read) = to_read(&mut self.seen, policy, jiff::Timestamp::now()) {
            let _ = self.sender.send(read);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::watched::test_policy;

    fn now() -> jiff::Timestamp {
        jiff::Timestamp::now()
    }

    fn names(read: Option<Read>) -> Vec<String> {
        read.map(|r| r.names.into_iter().collect())
            .unwrap_or_default()
    }

    #[test]
    fn a_shared_secret_is_read_ahead_once() {
        let mut seen = HashSet::new();
        let first = test_policy("a", "p1", "creds", Some("smtp"));
        assert_eq!(names(to_read(&mut seen, &first, now())), ["creds", "smtp"]);
        let second = test_policy("a", "p2", "creds", None);
        assert!(
            to_read(&mut seen, &second, now()).is_none(),
            "already asked for"
        );
        let elsewhere = test_policy("b", "p3", "creds", None);
        assert_eq!(
            names(to_read(&mut seen, &elsewhere, now())),
            ["creds"],
            "another namespace's"
        );
    }

    #[test]
    fn policies_naming_a_server_or_invalid_ones_are_left_to_their_reconcile() {
        let mut seen = HashSet::new();
        let mut by_reference = test_policy("a", "p", "creds", None);
        by_reference.spec.server = None;
        assert!(to_read(&mut seen, &by_reference, now()).is_none());
        let mut invalid = test_policy("a", "q", "creds", None);
        invalid.spec.server.as_mut().expect("inline").url = "not a URL".into();
        assert!(to_read(&mut seen, &invalid, now()).is_none());
        assert!(seen.is_empty());
    }

    #[test]
    fn suspended_policies_and_policies_being_deleted_read_nothing_ahead() {
        let mut seen = HashSet::new();
        let mut suspended = test_policy("a", "p", "creds", None);
        suspended.spec.suspend = Some(true);
        assert!(to_read(&mut seen, &suspended, now()).is_none());
        let mut deleting = test_policy("a", "q", "creds", None);
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now()));
        assert!(to_read(&mut seen, &deleting, now()).is_none());
        assert!(seen.is_empty(), "nothing asked for");
    }

    #[test]
    fn no_more_than_the_limit_is_read_ahead() {
        let mut seen = HashSet::new();
        let asked: usize = (0..LIMIT + 10)
            .map(|i| test_policy("a", &format!("p{i}"), &format!("creds-{i}"), None))
            .map(|p| names(to_read(&mut seen, &p, now())).len())
            .sum();
        assert_eq!(asked, LIMIT);
    }
}
