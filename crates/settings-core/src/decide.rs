//! The sync decision (pure): given the plan, the mode and what the operator remembers, whether
//! to report, refuse or write — and, after a write, what it achieved. The controller only does
//! the I/O around these two functions: GET before [`before_write`], PUT between them.

use crate::model::SyncMode;
use crate::outcome::{Outcome, reason};
use crate::plan::{SyncPlan, not_accepted, written_ids};
use crate::values::{SettingScope, StoredSetting};

/// What to do once the server's values are known.
#[derive(Debug, PartialEq)]
pub enum BeforeWrite {
    /// Nothing to write: report this (`InSync`, or `Drifted` in observe mode).
    Report(Outcome),
    /// Plan mode: report the plan's writes as planned changes ([`Outcome::Planned`]).
    Plan,
    /// The server kept other values than these the last time the same desired state was
    /// written: writing again cannot help, so these keys are reported as not accepted.
    NotAccepted(Vec<String>),
    /// Write the plan's `writes`.
    Write,
}

/// Decides before writing. `rejected_before`: the keys the server did not accept the last time
/// this same desired state was written (`None` when it never refused any).
pub fn before_write(
    plan: &SyncPlan,
    mode: SyncMode,
    rejected_before: Option<&[String]>,
) -> BeforeWrite {
    if plan.in_sync() {
        return BeforeWrite::Report(Outcome::Synced {
            reason: reason::IN_SYNC,
            ids: plan.ids.clone(),
            written: vec![],
        });
    }
    match mode {
        SyncMode::Observe => {
            return BeforeWrite::Report(Outcome::Drifted {
                ids: plan.ids.clone(),
                keys: plan.keys(),
            });
        }
        SyncMode::Plan => return BeforeWrite::Plan,
        SyncMode::Enforce => {}
    }
    match rejected_before {
        Some(rejected) if plan.keys().iter().all(|k| rejected.contains(k)) => {
            BeforeWrite::NotAccepted(rejected.to_vec())
        }
        _ => BeforeWrite::Write,
    }
}

/// What a write achieved.
#[derive(Debug, PartialEq)]
pub enum AfterWrite {
    /// The server stored other values than these keys' (remember them: see [`before_write`]).
    NotAccepted(Vec<String>),
    /// Every value was stored: `Applied`, or `DriftCorrected` when the server had changed.
    Synced(Outcome),
}

/// Decides after the PUT answered `returned`. `server_changed`: the policy was in sync for
/// this generation and its desired values are the ones last synced, so the difference was made
/// on the server (drift) rather than by a change of the policy or its Secrets.
pub fn after_write(
    plan: SyncPlan,
    returned: &[StoredSetting],
    scope: &SettingScope,
    server_changed: bool,
) -> AfterWrite {
    let rejected = not_accepted(&plan.writes, returned, scope);
    if !rejected.is_empty() {
        return AfterWrite::NotAccepted(rejected);
    }
    let mut ids = plan.ids;
    ids.extend(written_ids(&plan.writes, returned, scope));
    AfterWrite::Synced(Outcome::Synced {
        reason: if server_changed {
            reason::DRIFT_CORRECTED
        } else {
            reason::APPLIED
        },
        ids,
        written: plan.writes.into_iter().map(|w| w.key).collect(),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::values::SettingValue;

    fn scope() -> SettingScope {
        SettingScope::organization("p-1")
    }

    fn value(key: &str, value: &str) -> SettingValue {
        SettingValue {
            key: key.into(),
            value: value.into(),
        }
    }

    fn stored(id: i64, key: &str, value: &str) -> StoredSetting {
        StoredSetting {
            id,
            key: key.into(),
            value: value.into(),
            partition_global_id: "p-1".into(),
            user_id: None,
        }
    }

    /// One key the server has (id 1) and one to write.
    fn plan_with_a_write() -> SyncPlan {
        SyncPlan {
            writes: vec![value("A.Write", "new")],
            ids: BTreeMap::from([("A.Keep".to_owned(), 1)]),
            current: BTreeMap::new(),
        }
    }

    #[test]
    fn nothing_to_write_is_in_sync_in_every_mode() {
        let plan = SyncPlan {
            writes: vec![],
            ids: BTreeMap::from([("A.Keep".to_owned(), 1)]),
            current: BTreeMap::new(),
        };
        for mode in [SyncMode::Enforce, SyncMode::Observe, SyncMode::Plan] {
            assert_eq!(
                before_write(&plan, mode, None),
                BeforeWrite::Report(Outcome::Synced {
                    reason: reason::IN_SYNC,
                    ids: plan.ids.clone(),
                    written: vec![],
                })
            );
        }
    }

    #[test]
    fn observe_mode_reports_the_differing_keys_and_never_writes() {
        let plan = plan_with_a_write();
        let rejected = vec!["A.Write".to_owned()];
        for remembered in [None, Some(rejected.as_slice())] {
            assert_eq!(
                before_write(&plan, SyncMode::Observe, remembered),
                BeforeWrite::Report(Outcome::Drifted {
                    ids: plan.ids.clone(),
                    keys: vec!["A.Write".into()],
                })
            );
        }
    }

    #[test]
    fn plan_mode_plans_instead_of_writing_even_what_was_refused_before() {
        let plan = plan_with_a_write();
        let refused = vec!["A.Write".to_owned()];
        for remembered in [None, Some(refused.as_slice())] {
            assert_eq!(
                before_write(&plan, SyncMode::Plan, remembered),
                BeforeWrite::Plan
            );
        }
    }

    #[test]
    fn enforce_mode_writes_unless_the_same_values_were_refused_before() {
        let plan = plan_with_a_write();
        assert_eq!(
            before_write(&plan, SyncMode::Enforce, None),
            BeforeWrite::Write
        );
        let refused = vec!["A.Write".to_owned()];
        assert_eq!(
            before_write(&plan, SyncMode::Enforce, Some(&refused)),
            BeforeWrite::NotAccepted(refused.clone())
        );
        // A refusal of other keys does not stop a write of this one.
        let other = vec!["A.Other".to_owned()];
        assert_eq!(
            before_write(&plan, SyncMode::Enforce, Some(&other)),
            BeforeWrite::Write
        );
    }

    #[test]
    fn a_write_stored_as_sent_is_applied_with_every_id() {
        let after = after_write(
            plan_with_a_write(),
            &[stored(7, "A.Write", "new")],
            &scope(),
            false,
        );
        assert_eq!(
            after,
            AfterWrite::Synced(Outcome::Synced {
                reason: reason::APPLIED,
                ids: BTreeMap::from([("A.Keep".to_owned(), 1), ("A.Write".to_owned(), 7)]),
                written: vec!["A.Write".into()],
            })
        );
    }

    #[test]
    fn an_answer_in_another_key_case_keeps_the_ids_under_the_policys_keys() {
        let mut row = stored(7, "A.WRITE", "new");
        row.partition_global_id = "P-1".into();
        let canonical = SettingScope::organization("p-1");
        // Not a GUID: "P-1" is another partition, so nothing was accepted.
        assert_eq!(
            after_write(plan_with_a_write(), &[row.clone()], &canonical, false),
            AfterWrite::NotAccepted(vec!["A.Write".into()])
        );
        row.partition_global_id = "p-1".into();
        let AfterWrite::Synced(Outcome::Synced { ids, .. }) =
            after_write(plan_with_a_write(), &[row], &canonical, false)
        else {
            panic!("accepted")
        };
        assert_eq!(ids.get("A.Write"), Some(&7));
        assert!(!ids.contains_key("A.WRITE"));
    }

    #[test]
    fn a_write_after_a_change_on_the_server_is_a_drift_correction() {
        let after = after_write(
            plan_with_a_write(),
            &[stored(7, "A.Write", "new")],
            &scope(),
            true,
        );
        assert!(matches!(
            after,
            AfterWrite::Synced(Outcome::Synced { reason: r, .. }) if r == reason::DRIFT_CORRECTED
        ));
    }

    #[test]
    fn a_value_the_server_stored_otherwise_is_not_accepted() {
        let after = after_write(
            plan_with_a_write(),
            &[stored(7, "A.Write", "something else")],
            &scope(),
            false,
        );
        assert_eq!(after, AfterWrite::NotAccepted(vec!["A.Write".into()]));
        // No row for the key at all: not accepted either.
        let after = after_write(plan_with_a_write(), &[], &scope(), false);
        assert_eq!(after, AfterWrite::NotAccepted(vec!["A.Write".into()]));
    }
}
