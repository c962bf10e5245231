//! `deletionPolicy: Restore` (pure): what the server held before the operator first wrote each
//! key, kept in a Secret owned by the policy (the values may be secrets), and what to write back
//! when the policy is deleted.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::identity::types::SettingValue;
use crate::reconcile::plan::SyncPlan;

/// The Secret key holding the saved values (JSON).
pub const DATA_KEY: &str = "values.json";

/// The annotation that lets a deletion go on without restoring (value `"true"`), when the
/// identity service cannot be reached or the saved values are not wanted back.
pub const SKIP_RESTORE_ANNOTATION: &str = "identitysettings.dev/skip-restore";

/// What one key held before the operator's first write to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavedValue {
    /// The value; `None` when the server had no value for the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// The saved values by key, as written to the Secret.
pub type RestorePoint = BTreeMap<String, SavedValue>;

/// The keys a write of `plan` is about to change that `saved` does not hold yet, with what the
/// server holds now: to be saved before the write.
pub fn to_save(plan: &SyncPlan, saved: &RestorePoint) -> RestorePoint {
    plan.writes
        .iter()
        .filter(|w| !saved.contains_key(&w.key))
        .map(|w| {
            (
                w.key.clone(),
                SavedValue {
                    value: plan.current.get(&w.key).cloned(),
                },
            )
        })
        .collect()
}

/// What restoring `saved` writes (keys that had a value), and the keys that had none: the
/// identity API cannot delete a setting, so those stay as the policy left them.
pub fn restore_writes(saved: &RestorePoint) -> (Vec<SettingValue>, Vec<String>) {
    let mut writes = Vec::new();
    let mut unset = Vec::new();
    for (key, saved) in saved {
        match &saved.value {
            Some(value) => writes.push(SettingValue {
                key: key.clone(),
                value: value.clone(),
            }),
            None => unset.push(key.clone()),
        }
    }
    (writes, unset)
}

/// The saved values from the Secret's data; a malformed one is an error naming the Secret key,
/// never its content.
pub fn parse(data: Option<&[u8]>) -> Result<RestorePoint, String> {
    match data {
        None => Ok(RestorePoint::new()),
        Some(bytes) => serde_json::from_slice(bytes)
            .map_err(|_| format!("key {DATA_KEY:?} does not hold the saved values (JSON)")),
    }
}

/// The Secret's data for `point`.
pub fn serialize(point: &RestorePoint) -> Vec<u8> {
    serde_json::to_vec(point).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(key: &str, value: &str) -> SettingValue {
        SettingValue {
            key: key.into(),
            value: value.into(),
        }
    }

    #[test]
    fn only_the_first_value_before_a_write_is_kept_and_absent_keys_stay() {
        let plan = SyncPlan {
            writes: vec![value("A", "new"), value("B", "new"), value("C", "new")],
            ids: BTreeMap::new(),
            current: BTreeMap::from([
                ("A".to_owned(), "90".to_owned()),
                ("C".to_owned(), "x".to_owned()),
            ]),
        };
        let already = RestorePoint::from([(
            "C".to_owned(),
            SavedValue {
                value: Some("first".into()),
            },
        )]);
        let new = to_save(&plan, &already);
        assert_eq!(
            new,
            RestorePoint::from([
                (
                    "A".to_owned(),
                    SavedValue {
                        value: Some("90".into())
                    }
                ),
                ("B".to_owned(), SavedValue { value: None }),
            ]),
            "C keeps the value from before the first write"
        );
        let mut all = already.clone();
        all.extend(new);
        let round = parse(Some(&serialize(&all))).unwrap_or_default();
        assert_eq!(round, all);
        let (writes, unset) = restore_writes(&round);
        let keys: Vec<_> = writes
            .iter()
            .map(|w| (w.key.as_str(), w.value.as_str()))
            .collect();
        assert_eq!(keys, [("A", "90"), ("C", "first")]);
        assert_eq!(unset, ["B"]);
        assert!(parse(Some(b"not json")).is_err());
        assert_eq!(parse(None), Ok(RestorePoint::new()));
    }
}
