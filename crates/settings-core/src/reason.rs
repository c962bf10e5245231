//! The reasons of a policy's `Ready` condition: stable names users and alerts match on, each
//! with whether `Ready` is true, how the operator recovers, and what to do. The reasons table
//! of the docs (`docs/reference/reasons.md`) is generated from [`Reason::ALL`].

/// How the operator goes on after a reason that is not a success.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recovery {
    /// Retried by itself, with exponential backoff per policy.
    Backoff,
    /// Needs a change by the user (the policy, its Secrets, the server): checked again at the
    /// resync interval, or at once when something it reads changes.
    NeedsUser,
}

/// A reason of the `Ready` condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// The server already held every value.
    InSync,
    /// Values from a new or changed policy (or a rotated Secret) were written.
    Applied,
    /// Values changed on the server behind the operator's back were written back.
    DriftCorrected,
    /// Observe mode: the server differs from the policy; nothing was written.
    Drifted,
    /// Plan mode: the server differs; the changes a write would make are in status.
    ChangesPlanned,
    /// `spec.suspend` or `spec.suspendUntil`: nothing was read or written.
    Suspended,
    /// The spec is invalid; the message names the field.
    InvalidSpec,
    /// A referenced Secret is missing.
    SecretNotFound,
    /// `spec.serverRef` names a server that does not exist.
    ServerNotFound,
    /// `spec.serverRef` names a `ClusterIdentityServer` that does not allow the namespace (or
    /// the partition, or user-level settings).
    ServerNotAllowed,
    /// A referenced Secret lacks a key, or its content cannot be used.
    SecretInvalid,
    /// The identity service refused the credentials (401).
    CredentialsRejected,
    /// The credentials lack `PM.Setting` or admin rights (403).
    Forbidden,
    /// The URL answered 404: the identity base URL is wrong.
    EndpointNotFound,
    /// The identity service refused the request (400): a value in the policy is wrong.
    ServerRejected,
    /// The identity service could not be reached, answered 5xx, or missed the deadline.
    ServerUnreachable,
    /// The identity service answered 429, or the server's request budget is used up.
    Throttled,
    /// `deletionPolicy: Restore`: deletion waits for the saved values to be written back.
    RestorePending,
    /// `deletionPolicy: Restore`: the restore point Secret cannot be used.
    RestorePointUnusable,
    /// Some keys are managed by an older policy for the same server, partition and user.
    Conflict,
    /// The identity service answered something that is not its API (a proxy login page, say).
    UnexpectedResponse,
    /// The server accepted a write but stored a value that does not mean what was sent.
    ValueNotAccepted,
    /// Talking to the Kubernetes API failed (or the operator met a bug: its logs say).
    KubernetesError,
}

impl Reason {
    /// Every reason, in the order the docs list them.
    pub const ALL: [Reason; 23] = [
        Reason::InSync,
        Reason::Applied,
        Reason::DriftCorrected,
        Reason::Drifted,
        Reason::ChangesPlanned,
        Reason::Suspended,
        Reason::InvalidSpec,
        Reason::SecretNotFound,
        Reason::ServerNotFound,
        Reason::ServerNotAllowed,
        Reason::SecretInvalid,
        Reason::CredentialsRejected,
        Reason::Forbidden,
        Reason::EndpointNotFound,
        Reason::ServerRejected,
        Reason::ServerUnreachable,
        Reason::Throttled,
        Reason::RestorePending,
        Reason::RestorePointUnusable,
        Reason::Conflict,
        Reason::UnexpectedResponse,
        Reason::ValueNotAccepted,
        Reason::KubernetesError,
    ];

    /// The name in status (`reason` of the `Ready` condition).
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::InSync => "InSync",
            Reason::Applied => "Applied",
            Reason::DriftCorrected => "DriftCorrected",
            Reason::Drifted => "Drifted",
            Reason::ChangesPlanned => "ChangesPlanned",
            Reason::Suspended => "Suspended",
            Reason::InvalidSpec => "InvalidSpec",
            Reason::SecretNotFound => "SecretNotFound",
            Reason::ServerNotFound => "ServerNotFound",
            Reason::ServerNotAllowed => "ServerNotAllowed",
            Reason::SecretInvalid => "SecretInvalid",
            Reason::CredentialsRejected => "CredentialsRejected",
            Reason::Forbidden => "Forbidden",
            Reason::EndpointNotFound => "EndpointNotFound",
            Reason::ServerRejected => "ServerRejected",
            Reason::ServerUnreachable => "ServerUnreachable",
            Reason::Throttled => "Throttled",
            Reason::RestorePending => "RestorePending",
            Reason::RestorePointUnusable => "RestorePointUnusable",
            Reason::Conflict => "Conflict",
            Reason::UnexpectedResponse => "UnexpectedResponse",
            Reason::ValueNotAccepted => "ValueNotAccepted",
            Reason::KubernetesError => "KubernetesError",
        }
    }

    /// The reason named `name`, if it is one.
    pub fn parse(name: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// Whether `Ready` is `True` with this reason.
    pub const fn ready(self) -> bool {
        matches!(
            self,
            Reason::InSync | Reason::Applied | Reason::DriftCorrected
        )
    }

    /// How the operator goes on; `None` for a success and for the modes and states that are
    /// what the user asked for (observe, plan, suspend), which are looked at again at the
    /// resync interval.
    pub const fn recovery(self) -> Option<Recovery> {
        match self {
            Reason::InSync
            | Reason::Applied
            | Reason::DriftCorrected
            | Reason::Drifted
            | Reason::ChangesPlanned
            | Reason::Suspended
            | Reason::Conflict => None,
            Reason::ServerUnreachable
            | Reason::Throttled
            | Reason::UnexpectedResponse
            | Reason::KubernetesError
            | Reason::RestorePending => Some(Recovery::Backoff),
            Reason::InvalidSpec
            | Reason::SecretNotFound
            | Reason::ServerNotFound
            | Reason::ServerNotAllowed
            | Reason::SecretInvalid
            | Reason::CredentialsRejected
            | Reason::Forbidden
            | Reason::EndpointNotFound
            | Reason::ServerRejected
            | Reason::RestorePointUnusable
            | Reason::ValueNotAccepted => Some(Recovery::NeedsUser),
        }
    }

    /// What it means and what to do, for the docs' table.
    pub const fn guidance(self) -> &'static str {
        match self {
            Reason::InSync => {
                "the server already held every value of this generation (or again does, after a failure)"
            }
            Reason::Applied => {
                "values from a new or changed policy, or from a rotated Secret, were written (announced by a Normal Event `Applied` just before the write)"
            }
            Reason::DriftCorrected => {
                "someone changed values on the server; they were written back (the message lists the keys)"
            }
            Reason::Drifted => {
                "observe mode: values differ (listed in the message and in `status.drift`); nothing written"
            }
            Reason::ChangesPlanned => {
                "plan mode: values differ; the changes a write would make are in `status.plannedChanges`; nothing written"
            }
            Reason::Suspended => {
                "`spec.suspend` or `spec.suspendUntil`: nothing is read or written; the message says until when"
            }
            Reason::InvalidSpec => {
                "the message names the field to fix (a policy that does not even match the schema gets a Warning Event `InvalidSpec` instead and is skipped)"
            }
            Reason::SecretNotFound => {
                "create the named Secret in the policy's namespace (a ClusterIdentityServer's: in its `secretNamespace`), or fix the reference"
            }
            Reason::ServerNotFound => {
                "`spec.serverRef` names an IdentityServer (in the policy's namespace) or ClusterIdentityServer that does not exist: create it or fix the reference"
            }
            Reason::ServerNotAllowed => {
                "the ClusterIdentityServer's `allowedNamespaces` does not include the policy's namespace, or its `allowedPartitions` does not list the partition (or user-level settings) for it: add it, or use another server"
            }
            Reason::SecretInvalid => {
                "the Secret lacks a key, or its keys match no credential format"
            }
            Reason::CredentialsRejected => {
                "the server answered 401: fix the credentials in the Secret"
            }
            Reason::Forbidden => "403: grant the application `PM.Setting`, or use an administrator",
            Reason::EndpointNotFound => {
                "404: the identity base URL (prefix) is wrong; the message shows the URL tried"
            }
            Reason::ServerRejected => "400: the server's message says which value is invalid",
            Reason::ServerUnreachable => {
                "network error, timeout, 5xx, or the reconcile deadline (`--reconcile-timeout`) passed: retried with backoff, nothing to do unless it lasts"
            }
            Reason::Throttled => {
                "the identity service answered 429 (to this or another policy of the same server), or the server's request budget is used up: nothing sent until the wait is over, then retried by itself"
            }
            Reason::RestorePending => {
                "the policy is being deleted with `deletionPolicy: Restore` and the saved values could not be written back yet: retried; to give up, annotate `identitysettings.dev/skip-restore=true`"
            }
            Reason::RestorePointUnusable => {
                "a Secret `<policy>-restore` exists that the policy does not own or the operator did not write (its content does not match `status.restorePoint`): delete it; or, at deletion, the restore point is gone although values were saved: annotate `identitysettings.dev/skip-restore=true` to let the policy go"
            }
            Reason::Conflict => {
                "an older policy manages some of the same keys (same server, partition and user): the message names the keys and the owner; this policy does not write them. Remove them from one of the policies"
            }
            Reason::UnexpectedResponse => {
                "not the identity API answered (e.g. a proxy's login page): check the URL"
            }
            Reason::ValueNotAccepted => {
                "the server stored something else than written: check the value (not written again until the declared settings or their Secrets change)"
            }
            Reason::KubernetesError => {
                "Secrets could not be read (RBAC, API server): retried with backoff. A failed finalizer or status write cannot show here; it is logged (`reconcile failed; retrying`) and retried with backoff"
            }
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The reasons table of `docs/reference/reasons.md`, generated so that it cannot disagree with
/// the code.
pub fn reference() -> String {
    let mut out = String::from(
        "<!-- Generated by `identity-settings-operator reasons-docs > docs/reference/reasons.md`; do not edit. -->\n\n\
         # Conditions: reasons and what to do\n\n\
         Each reason of a policy's `Ready` condition, what it means and what to do about it, and \
         how the operator goes on: *retried* (by itself, with backoff), *needs you* (checked \
         again when the policy or what it reads changes, and at the resync interval), or — for \
         successes and the states you asked for — nothing. The \
         [user guide](../user-guide.md#conditions-reasons-and-what-to-do) explains the \
         `Drifted` condition, retries and Events.\n\n\
         | Ready | reason | goes on | meaning / what to do |\n\
         | --- | --- | --- | --- |\n",
    );
    for reason in Reason::ALL {
        let ready = if reason.ready() { "True" } else { "False" };
        let goes_on = match reason.recovery() {
            Some(Recovery::Backoff) => "retried",
            Some(Recovery::NeedsUser) => "needs you",
            None => "—",
        };
        out.push_str(&format!(
            "| {ready} | `{reason}` | {goes_on} | {} |\n",
            reason.guidance()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_one_name_and_parses_back() {
        let mut names: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        for reason in Reason::ALL {
            assert_eq!(Reason::parse(reason.as_str()), Some(reason));
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Reason::ALL.len(), "two reasons share a name");
        assert_eq!(Reason::parse("NoSuchReason"), None);
    }

    #[test]
    fn successes_need_no_recovery_and_failures_say_how() {
        for reason in Reason::ALL {
            if reason.ready() {
                assert_eq!(reason.recovery(), None, "{reason}");
            }
        }
        assert_eq!(Reason::Throttled.recovery(), Some(Recovery::Backoff));
        assert_eq!(Reason::Forbidden.recovery(), Some(Recovery::NeedsUser));
    }
}
