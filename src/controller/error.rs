//! Why a reconcile failed, as a stable condition reason and a class that decides the retry.

use crate::identity::error::{ErrorClass, IdentityError};
use crate::reconcile::resolve::ResolveError;
use crate::reconcile::server_ref::ServerRefError;

/// Condition reasons for failures; stable strings that users and alerts can match on. Each is
/// a [`Reason`] of the kube-free core, which also says how the operator recovers.
pub mod reason {
    use settings_core::reason::Reason;

    /// The spec is invalid; the message names the field.
    pub const INVALID_SPEC: &str = Reason::InvalidSpec.as_str();
    /// A referenced Secret is missing.
    pub const SECRET_NOT_FOUND: &str = Reason::SecretNotFound.as_str();
    /// A referenced Secret lacks a key, or its content cannot be used.
    pub const SECRET_INVALID: &str = Reason::SecretInvalid.as_str();
    /// The identity service refused the credentials (401).
    pub const CREDENTIALS_REJECTED: &str = Reason::CredentialsRejected.as_str();
    /// The credentials lack `PM.Setting` or admin rights (403).
    pub const FORBIDDEN: &str = Reason::Forbidden.as_str();
    /// The identity service could not be reached or answered 5xx.
    pub const SERVER_UNREACHABLE: &str = Reason::ServerUnreachable.as_str();
    /// The identity service answered 429, or the server's request budget is used up.
    pub const THROTTLED: &str = Reason::Throttled.as_str();
    /// The identity service refused the request (400): a value in the policy is wrong.
    pub const SERVER_REJECTED: &str = Reason::ServerRejected.as_str();
    /// The URL answered 404: the identity base URL is wrong.
    pub const ENDPOINT_NOT_FOUND: &str = Reason::EndpointNotFound.as_str();
    /// The identity service answered something that is not its API.
    pub const UNEXPECTED_RESPONSE: &str = Reason::UnexpectedResponse.as_str();
    /// The server accepted a write but stored a value that does not mean what was sent.
    pub const VALUE_NOT_ACCEPTED: &str = Reason::ValueNotAccepted.as_str();
    /// Talking to the Kubernetes API failed.
    pub const KUBERNETES_ERROR: &str = Reason::KubernetesError.as_str();
    /// `deletionPolicy: Restore`: the restore point Secret cannot be used.
    pub const RESTORE_POINT_UNUSABLE: &str = Reason::RestorePointUnusable.as_str();
    /// `deletionPolicy: Restore`: deletion waits for the saved values to be written back.
    pub const RESTORE_PENDING: &str = Reason::RestorePending.as_str();
    /// `spec.serverRef` names a server that does not exist.
    pub const SERVER_NOT_FOUND: &str = Reason::ServerNotFound.as_str();
    /// `spec.serverRef` names a `ClusterIdentityServer` that does not allow the namespace.
    pub const SERVER_NOT_ALLOWED: &str = Reason::ServerNotAllowed.as_str();
}

pub use settings_core::reason::Recovery;

/// A failed reconcile.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The spec is invalid.
    #[error("invalid policy: {0}")]
    InvalidSpec(String),
    /// Secrets could not be resolved.
    #[error(transparent)]
    Secrets(#[from] ResolveError),
    /// `spec.serverRef` cannot be used.
    #[error(transparent)]
    ServerRef(#[from] ServerRefError),
    /// The identity service call failed.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The identity calls of one reconcile did not finish within the reconcile deadline.
    #[error(
        "the identity service did not finish answering within the reconcile deadline of {}s; retrying with backoff",
        .0.as_secs()
    )]
    DeadlineExceeded(std::time::Duration),
    /// The server stored values that differ from what was written.
    #[error(
        "the identity service stored different values than written for {}; check that these values are valid for the server",
        .0.join(", ")
    )]
    NotAccepted(Vec<String>),
    /// The restore point Secret belongs to something else or holds no saved values.
    #[error("{0}")]
    RestorePoint(String),
    /// Reading a referenced Secret from the Kubernetes API failed (not: it does not exist).
    #[error(
        "cannot read Secrets from the Kubernetes API ({0}); check the operator's RBAC and the API server"
    )]
    SecretRead(kube::Error),
    /// A finalizer or status write to the Kubernetes API failed.
    #[error("Kubernetes API call failed: {0}")]
    Kube(#[from] kube::Error),
    /// This replica stopped leading: nothing more may be written.
    #[error("this replica no longer leads; writes stopped")]
    NotLeading,
    /// The finalizer could not even be patched (no name, a malformed finalizer name): a bug.
    #[error("operator bug: {0}")]
    Bug(String),
}

impl From<kube::runtime::finalizer::Error<ReconcileError>> for ReconcileError {
    fn from(error: kube::runtime::finalizer::Error<ReconcileError>) -> Self {
        use kube::runtime::finalizer::Error;
        match error {
            Error::ApplyFailed(e) | Error::CleanupFailed(e) => e,
            Error::AddFinalizer(e) | Error::RemoveFinalizer(e) => ReconcileError::Kube(e),
            other => ReconcileError::Bug(other.to_string()),
        }
    }
}

impl ReconcileError {
    /// The `Ready` condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            ReconcileError::InvalidSpec(_) => reason::INVALID_SPEC,
            ReconcileError::Secrets(ResolveError::SecretNotFound { .. }) => {
                reason::SECRET_NOT_FOUND
            }
            ReconcileError::Secrets(_) => reason::SECRET_INVALID,
            ReconcileError::ServerRef(ServerRefError::NotFound { .. }) => reason::SERVER_NOT_FOUND,
            ReconcileError::ServerRef(ServerRefError::NotListed { .. }) => reason::KUBERNETES_ERROR,
            ReconcileError::ServerRef(
                ServerRefError::NotAllowed { .. } | ServerRefError::ScopeNotAllowed { .. },
            ) => reason::SERVER_NOT_ALLOWED,
            ReconcileError::Identity(e) => match e.class() {
                ErrorClass::Transient if throttled(e) => reason::THROTTLED,
                ErrorClass::Transient => reason::SERVER_UNREACHABLE,
                ErrorClass::Authentication => reason::CREDENTIALS_REJECTED,
                ErrorClass::Forbidden => reason::FORBIDDEN,
                ErrorClass::InvalidRequest => reason::SERVER_REJECTED,
                ErrorClass::NotFound => reason::ENDPOINT_NOT_FOUND,
                ErrorClass::Protocol => reason::UNEXPECTED_RESPONSE,
                ErrorClass::Configuration => reason::INVALID_SPEC,
            },
            ReconcileError::DeadlineExceeded(_) => reason::SERVER_UNREACHABLE,
            ReconcileError::NotAccepted(_) => reason::VALUE_NOT_ACCEPTED,
            ReconcileError::RestorePoint(_) => reason::RESTORE_POINT_UNUSABLE,
            ReconcileError::SecretRead(_)
            | ReconcileError::Kube(_)
            | ReconcileError::Bug(_)
            | ReconcileError::NotLeading => reason::KUBERNETES_ERROR,
        }
    }

    /// How long the server asked to wait, if it did.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            ReconcileError::Identity(e) => e.retry_after(),
            _ => None,
        }
    }

    /// Whether retrying soon can help.
    pub fn recovery(&self) -> Recovery {
        match self {
            ReconcileError::Identity(e) => match e.class() {
                ErrorClass::Transient | ErrorClass::Protocol => Recovery::Backoff,
                _ => Recovery::NeedsUser,
            },
            ReconcileError::SecretRead(_)
            | ReconcileError::DeadlineExceeded(_)
            | ReconcileError::ServerRef(ServerRefError::NotListed { .. })
            | ReconcileError::Kube(_)
            | ReconcileError::Bug(_)
            | ReconcileError::NotLeading => Recovery::Backoff,
            _ => Recovery::NeedsUser,
        }
    }
}

/// Whether the request was held back by the server's request budget or refused with 429.
fn throttled(e: &IdentityError) -> bool {
    match e {
        IdentityError::Throttled { .. } => true,
        IdentityError::RetriesExhausted { last, .. } => throttled(last),
        other => other.status() == Some(429),
    }
}

/// The recovery a failure reason in a policy's status stands for, so that readers of status (the
/// demo) can tell "retrying" from "waiting for a fix"; `None` for reasons that are not failures.
pub fn recovery_of_reason(r: &str) -> Option<Recovery> {
    settings_core::reason::Reason::parse(r).and_then(|r| r.recovery())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::client::Endpoint;
    use crate::identity::error::{FailedResponse, error_for_response};

    fn answered(status: u16) -> ReconcileError {
        ReconcileError::Identity(error_for_response(FailedResponse {
            endpoint: Endpoint::Setting,
            url: "https://id.example/identity_/api/Setting",
            status,
            retry_after: None,
            content_type: Some("application/json"),
            www_authenticate: None,
            location: None,
            body: br#"{"title":"bad value"}"#,
        }))
    }

    #[test]
    fn every_server_answer_maps_to_a_reason_and_a_recovery() {
        let cases = [
            (401, reason::CREDENTIALS_REJECTED, Recovery::NeedsUser),
            (403, reason::FORBIDDEN, Recovery::NeedsUser),
            (400, reason::SERVER_REJECTED, Recovery::NeedsUser),
            (404, reason::ENDPOINT_NOT_FOUND, Recovery::NeedsUser),
            (429, reason::THROTTLED, Recovery::Backoff),
            (503, reason::SERVER_UNREACHABLE, Recovery::Backoff),
        ];
        for (status, want_reason, want_recovery) in cases {
            let e = answered(status);
            assert_eq!(
                (e.reason(), e.recovery()),
                (want_reason, want_recovery),
                "HTTP {status}"
            );
            assert_eq!(recovery_of_reason(e.reason()), Some(e.recovery()));
        }
    }

    #[test]
    fn spec_and_secret_problems_wait_for_the_user() {
        let cases = [
            (
                ReconcileError::InvalidSpec("x".into()),
                reason::INVALID_SPEC,
            ),
            (
                ReconcileError::Secrets(ResolveError::SecretNotFound {
                    name: "s".into(),
                    namespace: None,
                }),
                reason::SECRET_NOT_FOUND,
            ),
            (
                ReconcileError::Secrets(ResolveError::SecretKeyMissing {
                    name: "s".into(),
                    key: "k".into(),
                }),
                reason::SECRET_INVALID,
            ),
            (
                ReconcileError::NotAccepted(vec!["A".into()]),
                reason::VALUE_NOT_ACCEPTED,
            ),
            (
                ReconcileError::ServerRef(ServerRefError::NotFound {
                    kind: "IdentityServer",
                    name: "acme".into(),
                    namespace: Some("identity".into()),
                }),
                reason::SERVER_NOT_FOUND,
            ),
            (
                ReconcileError::ServerRef(ServerRefError::NotAllowed {
                    name: "shared".into(),
                    namespace: "team-b".into(),
                    detail: String::new(),
                }),
                reason::SERVER_NOT_ALLOWED,
            ),
        ];
        for (e, want) in cases {
            assert_eq!(e.reason(), want);
            assert_eq!(e.recovery(), Recovery::NeedsUser, "{want}");
            assert_eq!(recovery_of_reason(want), Some(Recovery::NeedsUser));
        }
        assert_eq!(recovery_of_reason("Applied"), None);
    }

    #[test]
    fn server_definitions_that_cannot_be_listed_are_retried() {
        let e = ReconcileError::ServerRef(ServerRefError::NotListed {
            kind: "ClusterIdentityServer",
        });
        assert_eq!(
            (e.reason(), e.recovery()),
            (reason::KUBERNETES_ERROR, Recovery::Backoff)
        );
        assert!(e.to_string().contains("kubectl apply -f crds/"), "{e}");
    }
}
