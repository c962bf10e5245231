//! Computes the next status from the last one and what a reconcile did (pure).
//!
//! Timestamps only move when something they describe changed, so a reconcile that finds nothing
//! new produces a status equal to the old one and the controller skips the write.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::{DriftedSetting, IdentitySettingPolicyStatus, SettingKey};

/// The condition type that says whether the identity service holds the policy's settings.
pub const READY: &str = "Ready";
/// The condition type that says whether the last check found keys differing on the identity
/// service and left them so (apart from `Ready`, which also covers errors and writes).
pub const DRIFTED: &str = "Drifted";

pub use settings_core::outcome::{Outcome, reason, written_keys};

/// True when `status` says `generation` was already in sync (Ready=True), or was suspended: a
/// suspension ending is no new policy, so what differs then is drift (when the desired values
/// are the ones last synced — the caller checks that).
pub fn was_in_sync(status: Option<&IdentitySettingPolicyStatus>, generation: Option<i64>) -> bool {
    status.is_some_and(|s| {
        s.observed_generation == generation
            && s.conditions
                .iter()
                .any(|c| c.type_ == READY && (c.status == "True" || c.reason == reason::SUSPENDED))
    })
}

/// The status after a reconcile of a policy with `generation` and the desired `keys`.
pub fn next_status(
    old: Option<&IdentitySettingPolicyStatus>,
    generation: Option<i64>,
    keys: &[SettingKey],
    outcome: &Outcome,
    now: Timestamp,
) -> IdentitySettingPolicyStatus {
    let empty = IdentitySettingPolicyStatus::default();
    let old = old.unwrap_or(&empty);
    let (ids, written): (Option<&BTreeMap<String, i64>>, &[String]) = match outcome {
        Outcome::Synced { ids, written, .. } => (Some(ids), written),
        Outcome::Drifted { ids, .. } | Outcome::Planned { ids, .. } => (Some(ids), &[]),
        Outcome::Failed { .. } => (None, &[]),
    };
    // The keys of the policy with the id this check found, or the one known before.
    let setting_ids = keys
        .iter()
        .filter_map(|k| {
            ids.and_then(|m| m.get(k.as_str()).copied())
                .or_else(|| old.setting_ids.get(k))
                .map(|id| (k.clone(), id))
        })
        .collect();
    let drift = next_drift(old, outcome, now);
    let mut conditions = vec![ready_condition(old, generation, outcome, keys.len(), now)];
    conditions.extend(drifted_condition(
        old,
        generation,
        outcome,
        &drift,
        keys.len(),
        now,
    ));
    let planned_changes = match outcome {
        Outcome::Planned { changes, .. } => changes.clone(),
        Outcome::Failed {
            differing: None, ..
        } => old.planned_changes.clone(),
        _ => vec![],
    };
    let mut next = IdentitySettingPolicyStatus {
        observed_generation: generation,
        conditions,
        setting_ids,
        setting_count: i32::try_from(keys.len()).ok(),
        last_sync_time: old.last_sync_time.clone(),
        last_applied_time: if written.is_empty() {
            old.last_applied_time.clone()
        } else {
            Some(Time(now))
        },
        drift,
        planned_changes,
        // Written by the restore point's own step (another field manager), kept as it is.
        restore_point: old.restore_point.clone(),
        // What the last settled check acted on: the caller replaces it when this one settled.
        inputs: old.inputs.clone(),
    };
    if &next != old && !matches!(outcome, Outcome::Failed { .. }) {
        next.last_sync_time = Some(Time(now));
    }
    next
}

/// The keys differing after this reconcile, each keeping when it was first found so; the last
/// check's list when this reconcile did not compare.
fn next_drift(
    old: &IdentitySettingPolicyStatus,
    outcome: &Outcome,
    now: Timestamp,
) -> Vec<DriftedSetting> {
    let Some(differing) = outcome.differing() else {
        return old.drift.clone();
    };
    let mut seen = std::collections::BTreeSet::new();
    differing
        .into_iter()
        .filter(|k| seen.insert(*k))
        .map(|key| DriftedSetting {
            key: SettingKey::new(key),
            detected_at: old
                .drift
                .iter()
                .find(|d| d.key == key)
                .map_or(Time(now), |d| d.detected_at.clone()),
        })
        .collect()
}

/// `Drifted`: there (True) while keys differ and were not written back, gone once a check found
/// (or made) every value as the policy says — an abnormal condition is only shown while it
/// holds, which also keeps every status write of a policy in sync one condition smaller;
/// unchanged by a reconcile that did not compare.
fn drifted_condition(
    old: &IdentitySettingPolicyStatus,
    generation: Option<i64>,
    outcome: &Outcome,
    drift: &[DriftedSetting],
    total: usize,
    now: Timestamp,
) -> Option<Condition> {
    // Only a `True` one: a `False` one written by an earlier version goes at the next write.
    let previous = old
        .conditions
        .iter()
        .find(|c| c.type_ == DRIFTED && c.status == "True");
    if outcome.differing().is_none() {
        return previous.cloned();
    }
    if drift.is_empty() {
        return None;
    }
    let since = drift.iter().map(|d| d.detected_at.0).min().unwrap_or(now);
    let keys: Vec<&str> = drift.iter().map(|d| d.key.as_str()).collect();
    let message = format!(
        "{} of {total} settings differ from the policy on the identity service (first found \
         {since}; see status.drift): {}",
        drift.len(),
        keys.join(", ")
    );
    Some(Condition {
        type_: DRIFTED.to_owned(),
        status: "True".to_owned(),
        reason: reason::DRIFTED.to_owned(),
        message: truncate(message, 1024),
        observed_generation: generation,
        last_transition_time: previous.map_or(Time(now), |c| c.last_transition_time.clone()),
    })
}

fn ready_condition(
    old: &IdentitySettingPolicyStatus,
    generation: Option<i64>,
    outcome: &Outcome,
    total: usize,
    now: Timestamp,
) -> Condition {
    let status = if outcome.ready() { "True" } else { "False" };
    let previous = old.conditions.iter().find(|c| c.type_ == READY);
    // "In sync" after a write of this very generation is what the write already said: keep the
    // condition, so the check after an apply writes nothing.
    if let (
        Some(c),
        Outcome::Synced {
            reason: reason::IN_SYNC,
            ..
        },
    ) = (previous, outcome)
        && c.status == "True"
        && c.observed_generation == generation
        && (c.reason == reason::APPLIED || c.reason == reason::DRIFT_CORRECTED)
    {
        return c.clone();
    }
    let last_transition_time = match previous {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => Time(now),
    };
    Condition {
        type_: READY.to_owned(),
        status: status.to_owned(),
        reason: outcome.reason().to_owned(),
        message: truncate(outcome.message(total), 1024),
        observed_generation: generation,
        last_transition_time,
    }
}

/// Whether an outcome deserves an Event: a write, or a move to a different `Ready` reason —
/// never the same failure or a quiet in-sync check again.
pub fn event_worthy(old_reason: Option<&str>, outcome: &Outcome) -> bool {
    let wrote = matches!(outcome, Outcome::Synced { written, .. } if !written.is_empty());
    wrote || (old_reason != Some(outcome.reason()) && outcome.reason() != reason::IN_SYNC)
}

/// Cuts `s` to at most `max` bytes on a character boundary (condition messages and Event notes
/// stay readable; Events are capped at 1 KiB by convention).
pub fn truncate(mut s: String, max: usize) -> String {
    const ELLIPSIS: char = '…';
    if s.len() > max {
        // Room for the ellipsis, so the result is never longer than `max` (the API server
        // refuses an Event whose note exceeds 1024 bytes).
        let mut cut = max.saturating_sub(ELLIPSIS.len_utf8());
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push(ELLIPSIS);
    }
    s
}

/// An Event's `action`: `verb` plus a digest of the note. The event publisher folds Events with the
/// same type, reason, action and object into one series and keeps the first note, so without
/// the digest a second `Applied` within minutes would show the first write's keys. Events with
/// the same note still fold. (`kubectl describe` does not show the action.)
pub fn event_action(verb: &str, note: &str) -> String {
    use std::hash::{Hash, Hasher};
    // SipHash with fixed keys: the same note gives the same digest in every process.
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    note.hash(&mut hasher);
    format!("{verb}-{:08x}", hasher.finish() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).expect("valid")
    }

    fn keys() -> Vec<SettingKey> {
        vec!["A".into(), "B".into()]
    }

    fn synced(reason: &'static str, written: &[&str]) -> Outcome {
        Outcome::Synced {
            reason,
            ids: BTreeMap::from([("A".into(), 4), ("B".into(), 7)]),
            written: written.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn events_with_other_notes_get_other_actions() {
        let first = event_action("Apply", "wrote 3 of 3 settings: A, B, C");
        let second = event_action("Apply", "wrote 1 of 3 settings: A");
        assert_ne!(first, second);
        assert_eq!(
            first,
            event_action("Apply", "wrote 3 of 3 settings: A, B, C")
        );
        assert!(first.starts_with("Apply-") && first.len() <= 128);
    }

    #[test]
    fn duplicate_spec_keys_never_make_a_status_the_schema_refuses() {
        // An object stored before the schema forbade duplicates: its status names each key once.
        let keys: Vec<SettingKey> = ["A.B", "A.B", "C.D"].map(SettingKey::from).to_vec();
        let outcome = Outcome::Failed {
            reason: "InvalidSpec",
            message: "spec.settings[1].key: \"A.B\" is listed twice".into(),
            differing: None,
        };
        let old = IdentitySettingPolicyStatus {
            setting_ids: [("A.B".into(), 1), ("C.D".into(), 2)].into_iter().collect(),
            ..IdentitySettingPolicyStatus::default()
        };
        let next = next_status(Some(&old), Some(1), &keys, &outcome, Timestamp::UNIX_EPOCH);
        let listed: Vec<(&str, i64)> = next
            .setting_ids
            .iter()
            .map(|(k, id)| (k.as_str(), id))
            .collect();
        assert_eq!(listed, [("A.B", 1), ("C.D", 2)]);
        assert_eq!(
            serde_json::to_value(&next.setting_ids).expect("serializes"),
            serde_json::json!({"A.B": 1, "C.D": 2})
        );
    }

    #[test]
    fn an_applied_policy_records_ids_times_and_a_ready_condition_only() {
        let s = next_status(
            None,
            Some(1),
            &keys(),
            &synced(reason::APPLIED, &["A", "B"]),
            t(0),
        );
        assert_eq!(s.observed_generation, Some(1));
        assert_eq!(s.setting_ids.get("A"), Some(4));
        assert_eq!(s.setting_ids.get("B"), Some(7));
        assert_eq!(
            s.conditions.len(),
            1,
            "no Drifted condition while nothing drifts: {:?}",
            s.conditions
        );
        assert_eq!(s.conditions[0].status, "True");
        assert_eq!(s.conditions[0].reason, "Applied");
        assert_eq!(
            s.conditions[0].message, "wrote all 2 settings",
            "a write of every key does not list them"
        );
        let partial = next_status(
            Some(&s),
            Some(2),
            &keys(),
            &synced(reason::APPLIED, &["B"]),
            t(5),
        );
        assert_eq!(partial.conditions[0].message, "wrote 1 of 2 settings: B");
        assert_eq!(s.last_applied_time, Some(Time(t(0))));
        assert_eq!(s.last_sync_time, Some(Time(t(0))));
        assert_eq!(s.setting_count, Some(2));
    }

    #[test]
    fn an_in_sync_check_after_an_apply_changes_nothing() {
        let s1 = next_status(
            None,
            Some(1),
            &keys(),
            &synced(reason::APPLIED, &["A", "B"]),
            t(0),
        );
        let s2 = next_status(
            Some(&s1),
            Some(1),
            &keys(),
            &synced(reason::IN_SYNC, &[]),
            t(60),
        );
        assert_eq!(s2, s1, "nothing new: the same status, so no write");
    }

    #[test]
    fn in_sync_replaces_a_failure_and_an_older_generation() {
        let failed = Outcome::Failed {
            reason: "ServerUnreachable",
            message: "down".into(),
            differing: None,
        };
        let s1 = next_status(None, Some(1), &keys(), &failed, t(0));
        let s2 = next_status(
            Some(&s1),
            Some(1),
            &keys(),
            &synced(reason::IN_SYNC, &[]),
            t(60),
        );
        assert_eq!(s2.conditions[0].reason, "InSync");
        assert_eq!(s2.conditions[0].status, "True");
        assert_eq!(s2.conditions[0].last_transition_time, Time(t(60)));
        let s3 = next_status(
            Some(&s2),
            Some(1),
            &keys(),
            &synced(reason::IN_SYNC, &[]),
            t(120),
        );
        assert_eq!(s3, s2);
        let applied = next_status(
            Some(&s2),
            Some(1),
            &keys(),
            &synced(reason::APPLIED, &["A"]),
            t(180),
        );
        let newer = next_status(
            Some(&applied),
            Some(2),
            &keys(),
            &synced(reason::IN_SYNC, &[]),
            t(240),
        );
        assert_eq!(
            newer.conditions[0].reason, "InSync",
            "a new generation found in sync says so"
        );
        assert_eq!(
            newer.conditions[0].last_transition_time,
            Time(t(60)),
            "still True since t60"
        );
    }

    #[test]
    fn a_failure_keeps_known_ids_and_moves_the_transition_time() {
        let s1 = next_status(
            None,
            Some(1),
            &keys(),
            &synced(reason::APPLIED, &["A", "B"]),
            t(0),
        );
        let failed = Outcome::Failed {
            reason: "ServerUnreachable",
            message: "connection refused".into(),
            differing: None,
        };
        let s2 = next_status(Some(&s1), Some(2), &keys(), &failed, t(30));
        assert_eq!(s2.conditions[0].status, "False");
        assert_eq!(s2.conditions[0].last_transition_time, Time(t(30)));
        assert_eq!(s2.setting_ids.get("B"), Some(7));
        assert_eq!(
            s2.last_sync_time,
            Some(Time(t(0))),
            "a failed sync is not a sync"
        );
        assert_eq!(next_status(Some(&s2), Some(2), &keys(), &failed, t(90)), s2);
    }

    #[test]
    fn events_mark_writes_and_changes_of_reason_only() {
        let failed = Outcome::Failed {
            reason: "Forbidden",
            message: "403".into(),
            differing: None,
        };
        assert!(event_worthy(None, &failed));
        assert!(event_worthy(Some("InSync"), &failed));
        assert!(
            !event_worthy(Some("Forbidden"), &failed),
            "the same failure again"
        );
        assert!(event_worthy(
            Some("Applied"),
            &synced(reason::DRIFT_CORRECTED, &["A"])
        ));
        assert!(
            event_worthy(Some("Applied"), &synced(reason::APPLIED, &["A"])),
            "every write"
        );
        assert!(
            !event_worthy(Some("Applied"), &synced(reason::IN_SYNC, &[])),
            "a quiet check"
        );
        assert!(
            !event_worthy(Some("Forbidden"), &synced(reason::IN_SYNC, &[])),
            "recovery shows in status"
        );
        let drifted = Outcome::Drifted {
            ids: BTreeMap::new(),
            keys: vec!["A".into()],
        };
        assert!(event_worthy(None, &drifted));
        assert!(!event_worthy(Some("Drifted"), &drifted));
    }

    fn condition<'a>(s: &'a IdentitySettingPolicyStatus, type_: &str) -> &'a Condition {
        s.conditions
            .iter()
            .find(|c| c.type_ == type_)
            .unwrap_or_else(|| panic!("no {type_} condition in {s:?}"))
    }

    #[test]
    fn drift_is_per_key_keeps_its_first_time_and_has_its_own_condition_while_it_lasts() {
        let drifted = |keys: &[&str]| Outcome::Drifted {
            ids: BTreeMap::new(),
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
        };
        let s1 = next_status(None, Some(1), &keys(), &drifted(&["A"]), t(0));
        assert_eq!(s1.drift.len(), 1);
        assert_eq!(s1.drift[0].detected_at, Time(t(0)));
        assert_eq!(condition(&s1, DRIFTED).status, "True");
        assert!(condition(&s1, DRIFTED).message.contains(": A"));
        let s2 = next_status(Some(&s1), Some(1), &keys(), &drifted(&["A", "B"]), t(60));
        let times: Vec<_> = s2
            .drift
            .iter()
            .map(|d| (d.key.as_str(), d.detected_at.0))
            .collect();
        assert_eq!(
            times,
            [("A", t(0)), ("B", t(60))],
            "A keeps when it was first found"
        );
        assert_eq!(
            condition(&s2, DRIFTED).last_transition_time,
            Time(t(0)),
            "still True"
        );
        // A failure before comparing keeps what the last check found.
        let unreachable = Outcome::failed("ServerUnreachable", "down".into());
        let s3 = next_status(Some(&s2), Some(1), &keys(), &unreachable, t(90));
        assert_eq!(s3.drift, s2.drift);
        assert_eq!(condition(&s3, DRIFTED), condition(&s2, DRIFTED));
        // A failed write leaves its keys drifted.
        let refused = Outcome::Failed {
            reason: "NotAccepted",
            message: "B".into(),
            differing: Some(vec!["B".into()]),
        };
        let s4 = next_status(Some(&s3), Some(1), &keys(), &refused, t(100));
        assert_eq!(s4.drift.len(), 1);
        assert_eq!(s4.drift[0].detected_at, Time(t(60)));
        // Written back (or found in sync): no drift, no Drifted condition, Ready True.
        let s5 = next_status(
            Some(&s4),
            Some(1),
            &keys(),
            &synced(reason::DRIFT_CORRECTED, &["B"]),
            t(120),
        );
        assert!(s5.drift.is_empty());
        assert!(
            s5.conditions.iter().all(|c| c.type_ != DRIFTED),
            "{:?}",
            s5.conditions
        );
        assert_eq!(condition(&s5, READY).status, "True");
        let s6 = next_status(
            Some(&s5),
            Some(1),
            &keys(),
            &synced(reason::IN_SYNC, &[]),
            t(180),
        );
        assert_eq!(s6, s5, "a quiet check writes nothing");
    }

    #[test]
    fn a_false_drifted_condition_of_an_earlier_version_goes_at_the_next_write() {
        let mut old = next_status(
            None,
            Some(1),
            &keys(),
            &synced(reason::APPLIED, &["A", "B"]),
            t(0),
        );
        old.conditions.push(Condition {
            type_: DRIFTED.to_owned(),
            status: "False".to_owned(),
            reason: "NoDrift".to_owned(),
            message: "the identity service held every value of the policy at the last check"
                .to_owned(),
            observed_generation: Some(1),
            last_transition_time: Time(t(0)),
        });
        let in_sync = synced(reason::IN_SYNC, &[]);
        let next = next_status(Some(&old), Some(1), &keys(), &in_sync, t(60));
        assert!(next.conditions.iter().all(|c| c.type_ != DRIFTED));
        let unreachable = Outcome::failed("ServerUnreachable", "down".into());
        let next = next_status(Some(&old), Some(1), &keys(), &unreachable, t(60));
        assert!(next.conditions.iter().all(|c| c.type_ != DRIFTED));
    }

    #[test]
    fn plan_mode_lists_its_changes_until_a_check_finds_none() {
        let change = crate::api::PlannedChange {
            key: "A".into(),
            change: crate::api::ChangeKind::Update,
            current: Some("1".into()),
            desired: Some("2".into()),
            secret: false,
        };
        let planned = Outcome::Planned {
            ids: BTreeMap::from([("A".into(), 4)]),
            changes: vec![change.clone()],
        };
        let s1 = next_status(None, Some(1), &keys(), &planned, t(0));
        assert_eq!(s1.planned_changes, [change]);
        assert_eq!(condition(&s1, READY).reason, reason::CHANGES_PLANNED);
        assert_eq!(condition(&s1, READY).status, "False");
        assert_eq!(condition(&s1, DRIFTED).status, "True");
        assert_eq!(s1.drift[0].key, "A");
        assert_eq!(s1.setting_ids.get("A"), Some(4));
        assert_eq!(
            next_status(Some(&s1), Some(1), &keys(), &planned, t(60)),
            s1
        );
        let unreachable = Outcome::failed("ServerUnreachable", "down".into());
        let s2 = next_status(Some(&s1), Some(1), &keys(), &unreachable, t(90));
        assert_eq!(s2.planned_changes, s1.planned_changes, "kept while unknown");
        let s3 = next_status(
            Some(&s2),
            Some(2),
            &keys(),
            &synced(reason::IN_SYNC, &[]),
            t(120),
        );
        assert!(s3.planned_changes.is_empty() && s3.drift.is_empty());
    }

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        for text in ["é".repeat(600), "x".repeat(2000), "€".repeat(400)] {
            let m = truncate(text, 1024);
            assert!(m.len() <= 1024 && m.len() >= 1020, "{}", m.len());
            assert!(m.ends_with('…'));
        }
        assert_eq!(truncate("short".into(), 1024), "short");
    }

    #[test]
    fn in_sync_means_ready_for_this_very_generation() {
        let ready = |status: &str| IdentitySettingPolicyStatus {
            observed_generation: Some(3),
            conditions: vec![Condition {
                type_: READY.into(),
                status: status.into(),
                reason: "InSync".into(),
                message: String::new(),
                last_transition_time: Time(jiff::Timestamp::UNIX_EPOCH),
                observed_generation: Some(3),
            }],
            ..IdentitySettingPolicyStatus::default()
        };
        assert!(was_in_sync(Some(&ready("True")), Some(3)));
        assert!(!was_in_sync(Some(&ready("True")), Some(4)));
        assert!(!was_in_sync(Some(&ready("False")), Some(3)));
        assert!(!was_in_sync(None, Some(3)));
        let mut suspended = ready("False");
        suspended.conditions[0].reason = reason::SUSPENDED.into();
        assert!(
            was_in_sync(Some(&suspended), Some(3)),
            "a suspension ending finds drift, not a new policy"
        );
        assert!(
            !was_in_sync(Some(&suspended), Some(4)),
            "unless the spec changed since"
        );
    }
}
