//! The status write as a JSON merge patch (RFC 7386) from the status the operator last saw to
//! the one it computed: only what changed travels, and the API server merges it without the
//! field-ownership bookkeeping a server-side apply costs (at a cold start of thousands of
//! policies, the API server's CPU is what limits the operator).
//!
//! The restore point record is never part of it: `restore` writes it under its own field
//! manager, so a status computed from a stale cache cannot set it back.

use serde_json::{Map, Value};

use crate::api::IdentitySettingPolicyStatus;

/// The patch body (`{"status": …}`) that turns `old` into `new`, leaving the restore point
/// record as it is; `None` when nothing changes.
pub fn status_patch(
    old: Option<&IdentitySettingPolicyStatus>,
    new: &IdentitySettingPolicyStatus,
) -> Option<Value> {
    let old = old.map(without_restore_point).unwrap_or(Value::Null);
    let new = without_restore_point(new);
    let patch = merge_patch(&old, &new)?;
    Some(serde_json::json!({ "status": patch }))
}

fn without_restore_point(status: &IdentitySettingPolicyStatus) -> Value {
    let mut value = serde_json::to_value(status).unwrap_or(Value::Null);
    if let Value::Object(fields) = &mut value {
        fields.remove("restorePoint");
    }
    value
}

/// The merge patch that turns `old` into `new`: for objects, the changed members (recursively)
/// and `null` for the removed ones; anything else is replaced whole. `None` when equal.
pub fn merge_patch(old: &Value, new: &Value) -> Option<Value> {
    if old == new {
        return None;
    }
    let (Value::Object(old), Value::Object(new)) = (old, new) else {
        return Some(new.clone());
    };
    let mut patch = Map::new();
    for (key, value) in new {
        let change = match old.get(key) {
            Some(before) => merge_patch(before, value),
            // A null in a merge patch removes: a new member is itself, never null.
            None => Some(value.clone()),
        };
        if let Some(change) = change {
            patch.insert(key.clone(), change);
        }
    }
    for key in old.keys() {
        if !new.contains_key(key) {
            patch.insert(key.clone(), Value::Null);
        }
    }
    Some(Value::Object(patch))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{RestorePointRecord, SyncInputs};
    use serde_json::json;

    /// RFC 7386's merge, to check a patch does what it says.
    fn apply(target: &Value, patch: &Value) -> Value {
        let Value::Object(patch) = patch else {
            return patch.clone();
        };
        let mut out = match target {
            Value::Object(t) => t.clone(),
            _ => Map::new(),
        };
        for (key, value) in patch {
            if value.is_null() {
                out.remove(key);
            } else {
                let merged = apply(out.get(key).unwrap_or(&Value::Null), value);
                out.insert(key.clone(), merged);
            }
        }
        Value::Object(out)
    }

    #[test]
    fn a_patch_turns_the_old_into_the_new_sending_only_what_changed() {
        let old = json!({"a": 1, "b": {"c": [1, 2], "d": "x"}, "gone": true, "same": "s"});
        let new = json!({"a": 2, "b": {"c": [1]}, "same": "s", "added": {"e": 1}});
        let patch = merge_patch(&old, &new).expect("a change");
        assert_eq!(
            patch,
            json!({"a": 2, "b": {"c": [1], "d": null}, "gone": null, "added": {"e": 1}})
        );
        assert_eq!(apply(&old, &patch), new);
        assert_eq!(merge_patch(&new, &new), None);
    }

    #[test]
    fn the_status_patch_clears_what_went_and_never_touches_the_restore_point() {
        let old = IdentitySettingPolicyStatus {
            observed_generation: Some(1),
            setting_count: Some(2),
            inputs: Some(SyncInputs {
                digest: "d1".into(),
                not_accepted: vec!["K".into()],
            }),
            restore_point: Some(Box::new(RestorePointRecord {
                secret_name: "p-restore".into(),
                digest: "r".into(),
                previous_digest: None,
            })),
            ..Default::default()
        };
        let new = IdentitySettingPolicyStatus {
            observed_generation: Some(2),
            inputs: Some(SyncInputs {
                digest: "d2".into(),
                not_accepted: vec![],
            }),
            ..Default::default()
        };
        let patch = status_patch(Some(&old), &new).expect("a change");
        assert_eq!(
            patch,
            json!({"status": {
                "observedGeneration": 2,
                "settingCount": null,
                "inputs": {"digest": "d2", "notAccepted": null},
            }})
        );
        let mut same = new.clone();
        same.restore_point = old.restore_point.clone();
        assert_eq!(
            status_patch(Some(&same), &new),
            None,
            "the record is not ours to clear"
        );
        assert_eq!(
            status_patch(None, &new),
            Some(json!({"status": {"observedGeneration": 2, "inputs": {"digest": "d2"}}}))
        );
    }
}
