//! The objects a benchmark run creates, in the shapes a user would `kubectl apply` (those of
//! `examples/` and the demo): namespace `bench`, the credentials Secret the simulator accepts,
//! and N policies, each managing five settings of its own partition.

use std::time::Duration;

use serde_json::{Value, json};

/// The namespace of every benchmark object (the operator watches only it).
pub const NAMESPACE: &str = "bench";
/// The credentials Secret every policy names.
pub const SECRET: &str = "identity-admin";
/// The simulator's default client (`SimulatorConfig::default()`), as its banner prints it.
const CLIENT_ID: &str = "operator";
const CLIENT_SECRET: &str = "operator-secret";

/// The key the apply-latency edits change (to [`edited_value`]).
pub const EDITED_KEY: &str = "Auth.Password.DefaultExpirationDays";
/// The key the drift step changes on the server (from "5" to [`DRIFT_VALUE`]).
pub const DRIFT_KEY: &str = "Auth.UserLockOut.MaxFailedAccessAttemptsBeforeLockout";
/// The value drift writes behind the operator's back.
pub const DRIFT_VALUE: &str = "7";

/// The five settings of every policy: literal values the contract (`docs/identity-api.md`)
/// lists, as `examples/password-policy.yaml` and `examples/lockout.yaml` set them.
const SETTINGS: [(&str, &str); 5] = [
    (EDITED_KEY, "90"),
    ("Auth.Password.PreviousUseLimit", "5"),
    ("Auth.Password.ShouldChangePasswordAfterFirstLogin", "true"),
    ("Auth.UserLockOut.IsEnabled", "true"),
    (DRIFT_KEY, "5"),
];

/// The name of policy `index`: `bench-00000`, `bench-00001`, ...
pub fn policy_name(index: usize) -> String {
    format!("bench-{index:05}")
}

/// A distinct, GUID-shaped partition per policy (the index is in the last group, so no two
/// collide; the first group is mixed so they do not look sequential).
pub fn partition(index: usize) -> String {
    let i = index as u64;
    let mixed = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
    format!("{mixed:08x}-be7c-4a11-8000-{i:012x}")
}

/// The namespace object.
pub fn namespace() -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
}

/// The client-credentials Secret the simulator accepts.
pub fn secret() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET, "namespace": NAMESPACE},
        "type": "Opaque",
        "stringData": {"clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET},
    })
}

/// Policy `index` against the identity base URL `server`, resynced every `resync`.
pub fn policy(index: usize, server: &str, resync: Duration) -> Value {
    json!({
        "apiVersion": "identitysettings.dev/v1alpha1",
        "kind": "IdentitySettingPolicy",
        "metadata": {"name": policy_name(index), "namespace": NAMESPACE},
        "spec": {
            "server": {"url": server, "credentialsSecretRef": {"name": SECRET}},
            "partitionGlobalId": partition(index),
            "settings": settings(None),
            "resyncInterval": format!("{}s", resync.as_secs()),
        },
    })
}

/// The settings list, with [`EDITED_KEY`] set to `edited` when given.
fn settings(edited: Option<&str>) -> Value {
    SETTINGS
        .iter()
        .map(|(key, value)| {
            let value = if *key == EDITED_KEY {
                edited.unwrap_or(value)
            } else {
                value
            };
            json!({"key": key, "value": value})
        })
        .collect()
}

/// A new valid value for edit number `edit` (never the initial "90", never repeated).
pub fn edited_value(edit: usize) -> String {
    (100 + edit).to_string()
}

/// The merge patch of one apply-latency edit. A merge patch replaces lists whole, so it carries
/// all five settings.
pub fn edit_patch(edit: usize) -> Value {
    json!({"spec": {"settings": settings(Some(&edited_value(edit)))}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_distinct_and_guid_shaped() {
        let all: std::collections::BTreeSet<String> = (0..20_000).map(partition).collect();
        assert_eq!(all.len(), 20_000);
        let p = partition(12_345);
        let groups: Vec<usize> = p.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12], "{p}");
    }

    #[test]
    fn a_policy_has_five_settings_and_an_edit_changes_one() {
        let p = policy(7, "http://sim/identity_", Duration::from_secs(30));
        assert_eq!(p["metadata"]["name"], "bench-00007");
        assert_eq!(p["spec"]["resyncInterval"], "30s");
        assert_eq!(p["spec"]["settings"].as_array().map(Vec::len), Some(5));
        let patch = edit_patch(3);
        let edited: Vec<&Value> = patch["spec"]["settings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["key"] == EDITED_KEY)
            .collect();
        assert_eq!(edited[0]["value"], "103");
    }
}
