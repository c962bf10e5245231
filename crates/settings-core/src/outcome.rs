//! What a reconcile found or did, reduced to what status shows (and the success reasons' names).

use std::collections::BTreeMap;

use crate::plan::PlannedChange;

/// Reasons of the `Ready` condition; stable strings users and alerts can match on.
pub mod reason {
    use crate::reason::Reason;

    /// The server already held every value.
    pub const IN_SYNC: &str = Reason::InSync.as_str();
    /// Values from a new or changed policy were written.
    pub const APPLIED: &str = Reason::Applied.as_str();
    /// Values changed on the server behind the operator's back were written back.
    pub const DRIFT_CORRECTED: &str = Reason::DriftCorrected.as_str();
    /// Observe mode: the server differs from the policy; nothing was written.
    pub const DRIFTED: &str = Reason::Drifted.as_str();
    /// `spec.suspend` or `spec.suspendUntil`: nothing was read or written.
    pub const SUSPENDED: &str = Reason::Suspended.as_str();
    /// Plan mode: the server differs; the changes a write would make are in status.
    pub const CHANGES_PLANNED: &str = Reason::ChangesPlanned.as_str();
    /// Some keys are managed by an older policy for the same server, partition and user: they
    /// are not written by this one.
    pub const CONFLICT: &str = Reason::Conflict.as_str();
}

/// What a reconcile found or did, reduced to what status shows.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The server now holds every desired value.
    Synced {
        /// The reason: [`reason::IN_SYNC`], [`reason::APPLIED`] or [`reason::DRIFT_CORRECTED`].
        reason: &'static str,
        /// The server's id of every desired key.
        ids: BTreeMap<String, i64>,
        /// The keys written in this reconcile.
        written: Vec<String>,
    },
    /// Observe mode found differences.
    Drifted {
        /// Ids of the keys the server has.
        ids: BTreeMap<String, i64>,
        /// The keys that differ.
        keys: Vec<String>,
    },
    /// Plan mode found differences: what a write would change.
    Planned {
        /// Ids of the keys the server has.
        ids: BTreeMap<String, i64>,
        /// The changes, without secret values.
        changes: Vec<PlannedChange>,
    },
    /// The reconcile failed; `reason` is a stable name, `message` says what to fix.
    Failed {
        /// The condition reason.
        reason: &'static str,
        /// A message without secrets.
        message: String,
        /// The keys found differing before it failed (a failed or refused write), or `None`
        /// when it failed before comparing: status then keeps what the last check found.
        differing: Option<Vec<String>>,
    },
}

impl Outcome {
    /// The `Ready` condition's reason for this outcome.
    pub fn reason(&self) -> &'static str {
        match self {
            Outcome::Synced { reason, .. } | Outcome::Failed { reason, .. } => reason,
            Outcome::Drifted { .. } => reason::DRIFTED,
            Outcome::Planned { .. } => reason::CHANGES_PLANNED,
        }
    }

    /// A failure before anything was compared.
    pub fn failed(reason: &'static str, message: String) -> Self {
        Outcome::Failed {
            reason,
            message,
            differing: None,
        }
    }

    /// The keys that differ on the server after this reconcile, if it compared at all.
    pub fn differing(&self) -> Option<Vec<&str>> {
        match self {
            Outcome::Synced { .. } => Some(vec![]),
            Outcome::Drifted { keys, .. } => Some(keys.iter().map(String::as_str).collect()),
            Outcome::Planned { changes, .. } => {
                Some(changes.iter().map(|c| c.key.as_str()).collect())
            }
            Outcome::Failed { differing, .. } => differing
                .as_ref()
                .map(|keys| keys.iter().map(String::as_str).collect()),
        }
    }

    /// Whether `Ready` is true.
    pub fn ready(&self) -> bool {
        matches!(self, Outcome::Synced { .. })
    }

    /// The human message for the `Ready` condition.
    pub fn message(&self, total: usize) -> String {
        match self {
            Outcome::Synced { written, .. } if written.is_empty() => {
                format!("all {total} settings hold the policy's values")
            }
            Outcome::Synced {
                written, reason, ..
            } => {
                let why = if *reason == reason::DRIFT_CORRECTED {
                    "changed on the server; wrote back"
                } else {
                    "wrote"
                };
                format!("{why} {}", written_keys(written, total))
            }
            Outcome::Drifted { keys, .. } => format!(
                "{} of {total} settings differ from the policy (observe mode, not written): {}",
                keys.len(),
                keys.join(", ")
            ),
            Outcome::Planned { changes, .. } => format!(
                "{} of {total} settings would change (plan mode, nothing written; see \
                 status.plannedChanges): {}",
                changes.len(),
                changes
                    .iter()
                    .map(|c| c.key.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Outcome::Failed { message, .. } => message.clone(),
        }
    }
}

/// The settings a write covers, for its message and Event: `all 5 settings` when they are all
/// of the policy's (which lists them; every status write and Event of a new policy carries
/// this text), else `2 of 5 settings: A, B`.
pub fn written_keys<K: AsRef<str>>(keys: &[K], total: usize) -> String {
    if keys.len() == total && total > 1 {
        return format!("all {total} settings");
    }
    let names: Vec<&str> = keys.iter().map(AsRef::as_ref).collect();
    format!("{} of {total} settings: {}", keys.len(), names.join(", "))
}
