//! `deletionPolicy: Restore` (pure): what the server held before the operator first wrote each
//! key, kept in a Secret owned by the policy (the values may be secrets), and what to write back
//! when the policy is deleted.
//!
//! Saved values are kept per scope — server, partition and user — so that a policy moved from
//! one organization to another restores each organization's own values, and never writes one's
//! into the other. Values saved for another server than the policy's at deletion are not
//! restored: that would send the policy's credentials to a server it no longer names.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::plan::SyncPlan;
use crate::urls::server_identity;
use crate::values::{SettingScope, SettingValue, guid_digits};

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

/// Where saved values came from: a server (its normalised URL), an organization and a user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavedScope {
    /// The server, as [`server_identity`] spells it.
    pub server: String,
    /// The organization.
    pub partition_global_id: String,
    /// The user, for user-level settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

impl SavedScope {
    /// The scope of a policy writing to `base_url` in `scope`.
    pub fn of(base_url: &str, scope: &SettingScope) -> Self {
        Self {
            server: server_identity(base_url),
            partition_global_id: scope.partition_global_id.clone(),
            user_id: scope.user_id.clone().filter(|u| !u.is_empty()),
        }
    }

    /// Whether both name the same settings (GUIDs compared by value, as the server does).
    pub fn same_as(&self, other: &SavedScope) -> bool {
        let same_id = |a: &str, b: &str| match (guid_digits(a), guid_digits(b)) {
            (Some(a), Some(b)) => a == b,
            _ => a.eq_ignore_ascii_case(b),
        };
        self.server == other.server
            && same_id(&self.partition_global_id, &other.partition_global_id)
            && match (&self.user_id, &other.user_id) {
                (Some(a), Some(b)) => same_id(a, b),
                (None, None) => true,
                _ => false,
            }
    }

    /// The identity API's scope.
    pub fn setting_scope(&self) -> SettingScope {
        SettingScope {
            partition_global_id: self.partition_global_id.clone(),
            user_id: self.user_id.clone(),
        }
    }
}

/// The values saved for one scope, by key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScopedValues {
    /// Where they came from; `None` in a restore point written before scopes were recorded
    /// (taken as the policy's scope at deletion, as then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<SavedScope>,
    /// The values by key.
    pub values: BTreeMap<String, SavedValue>,
}

/// A restore point: the saved values of every scope the policy wrote in.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestorePoint {
    /// One entry per scope, in the order first written.
    pub scopes: Vec<ScopedValues>,
}

impl RestorePoint {
    /// Whether nothing is saved.
    pub fn is_empty(&self) -> bool {
        self.scopes.iter().all(|s| s.values.is_empty())
    }

    /// The values saved for `scope` (legacy entries without a scope count as any).
    fn values_of(&self, scope: &SavedScope) -> Option<&BTreeMap<String, SavedValue>> {
        self.scopes
            .iter()
            .find(|s| s.scope.as_ref().is_none_or(|saved| saved.same_as(scope)))
            .map(|s| &s.values)
    }

    /// Adds `new` values of `scope` (keys already saved there keep their first value).
    pub fn add(&mut self, scope: &SavedScope, new: BTreeMap<String, SavedValue>) {
        let entry = match self
            .scopes
            .iter()
            .position(|s| s.scope.as_ref().is_none_or(|saved| saved.same_as(scope)))
        {
            Some(i) => &mut self.scopes[i],
            None => {
                self.scopes.push(ScopedValues {
                    scope: Some(scope.clone()),
                    values: BTreeMap::new(),
                });
                let last = self.scopes.len() - 1;
                &mut self.scopes[last]
            }
        };
        for (key, value) in new {
            entry.values.entry(key).or_insert(value);
        }
    }
}

/// The keys a write of `plan` in `scope` is about to change that `saved` does not hold for
/// that scope yet, with what the server holds now: to be saved before the write. Keys
/// `skip_value` says must not be copied (a shared server's secret values, which would land in
/// the tenant's namespace) are saved as "no value": they keep the policy's value on restore.
pub fn to_save(
    plan: &SyncPlan,
    saved: &RestorePoint,
    scope: &SavedScope,
    skip_value: impl Fn(&str) -> bool,
) -> BTreeMap<String, SavedValue> {
    let already = saved.values_of(scope);
    plan.writes
        .iter()
        .filter(|w| already.is_none_or(|v| !v.contains_key(&w.key)))
        .map(|w| {
            let value = if skip_value(&w.key) {
                None
            } else {
                plan.current.get(&w.key).cloned()
            };
            (w.key.clone(), SavedValue { value })
        })
        .collect()
}

/// What restoring one scope writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScopeRestore {
    /// Where to write.
    pub scope: SettingScope,
    /// The saved values of keys that had one.
    pub writes: Vec<SettingValue>,
    /// Keys that had no value: the identity API cannot delete a setting, so they stay as the
    /// policy left them.
    pub unset: Vec<String>,
}

/// What restoring `saved` writes, scope by scope, for a policy now writing to `current`
/// (server and scope): only keys `managed` accepts (keys the policy manages or managed), and
/// only scopes of the current server. Also answers the scopes of other servers, not restored.
pub fn restore_writes(
    saved: &RestorePoint,
    current: &SavedScope,
    managed: impl Fn(&str) -> bool,
) -> (Vec<ScopeRestore>, Vec<SavedScope>) {
    let mut restores = Vec::new();
    let mut elsewhere = Vec::new();
    for entry in &saved.scopes {
        let scope = entry.scope.clone().unwrap_or_else(|| current.clone());
        if scope.server != current.server {
            elsewhere.push(scope);
            continue;
        }
        let mut writes = Vec::new();
        let mut unset = Vec::new();
        for (key, value) in entry.values.iter().filter(|(k, _)| managed(k)) {
            match &value.value {
                Some(v) => writes.push(SettingValue {
                    key: key.clone(),
                    value: v.clone(),
                }),
                None => unset.push(key.clone()),
            }
        }
        restores.push(ScopeRestore {
            scope: scope.setting_scope(),
            writes,
            unset,
        });
    }
    (restores, elsewhere)
}

/// The saved values from the Secret's data; a malformed one is an error naming the Secret key,
/// never its content. A restore point written before scopes were recorded (key → value) reads
/// as one entry without a scope.
pub fn parse(data: Option<&[u8]>) -> Result<RestorePoint, String> {
    let Some(bytes) = data else {
        return Ok(RestorePoint::default());
    };
    let malformed = || format!("key {DATA_KEY:?} does not hold the saved values (JSON)");
    if let Ok(point) = serde_json::from_slice::<RestorePoint>(bytes) {
        return Ok(point);
    }
    let legacy: BTreeMap<String, SavedValue> =
        serde_json::from_slice(bytes).map_err(|_| malformed())?;
    Ok(RestorePoint {
        scopes: vec![ScopedValues {
            scope: None,
            values: legacy,
        }],
    })
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

    fn scope(url: &str, partition: &str) -> SavedScope {
        SavedScope::of(url, &SettingScope::organization(partition))
    }

    fn plan(current: &[(&str, &str)]) -> SyncPlan {
        SyncPlan {
            writes: vec![value("A", "new"), value("B", "new"), value("C", "new")],
            ids: BTreeMap::new(),
            current: current
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    fn saved(v: Option<&str>) -> SavedValue {
        SavedValue {
            value: v.map(str::to_owned),
        }
    }

    #[test]
    fn only_the_first_value_before_a_write_is_kept_and_absent_keys_stay() {
        let p1 = scope("https://h/identity_", "P1");
        let mut point = RestorePoint::default();
        point.add(
            &p1,
            BTreeMap::from([("C".to_owned(), saved(Some("first")))]),
        );
        let new = to_save(&plan(&[("A", "90"), ("C", "x")]), &point, &p1, |_| false);
        assert_eq!(
            new,
            BTreeMap::from([
                ("A".to_owned(), saved(Some("90"))),
                ("B".to_owned(), saved(None)),
            ]),
            "C keeps the value from before the first write"
        );
        point.add(&p1, new);
        let round = parse(Some(&serialize(&point))).expect("parses");
        assert_eq!(round, point);
        let (restores, elsewhere) = restore_writes(&round, &p1, |_| true);
        assert!(elsewhere.is_empty());
        let keys: Vec<_> = restores[0]
            .writes
            .iter()
            .map(|w| (w.key.as_str(), w.value.as_str()))
            .collect();
        assert_eq!(keys, [("A", "90"), ("C", "first")]);
        assert_eq!(restores[0].unset, ["B"]);
        assert!(parse(Some(b"not json")).is_err());
        assert_eq!(parse(None), Ok(RestorePoint::default()));
    }

    #[test]
    fn each_scope_gets_its_own_values_back_and_other_servers_none() {
        let p1 = scope("https://h/identity_", "P1");
        let p2 = scope("https://H/identity_/", "P2");
        let mut point = RestorePoint::default();
        point.add(
            &p1,
            to_save(&plan(&[("A", "p1-a")]), &point, &p1, |_| false),
        );
        point.add(
            &p2,
            to_save(&plan(&[("A", "p2-a")]), &point, &p2, |_| false),
        );
        let elsewhere = scope("https://attacker.example/identity_", "P1");
        point.add(
            &elsewhere,
            BTreeMap::from([("A".to_owned(), saved(Some("x")))]),
        );
        let (restores, other_servers) = restore_writes(&point, &p2, |_| true);
        let by_scope: Vec<_> = restores
            .iter()
            .map(|r| {
                (
                    r.scope.partition_global_id.as_str(),
                    r.writes[0].value.as_str(),
                )
            })
            .collect();
        assert_eq!(by_scope, [("P1", "p1-a"), ("P2", "p2-a")]);
        assert_eq!(other_servers, [elsewhere]);
    }

    #[test]
    fn keys_the_policy_never_managed_are_not_restored() {
        let p1 = scope("https://h/identity_", "P1");
        let mut point = RestorePoint::default();
        point.add(
            &p1,
            BTreeMap::from([
                ("A".to_owned(), saved(Some("1"))),
                ("Forged.Key".to_owned(), saved(Some("evil"))),
            ]),
        );
        let (restores, _) = restore_writes(&point, &p1, |k| k == "A");
        assert_eq!(restores[0].writes, [value("A", "1")]);
    }

    #[test]
    fn secret_values_of_a_shared_server_are_not_copied() {
        let p1 = scope("https://h/identity_", "P1");
        let new = to_save(
            &plan(&[("A", "1"), ("B", "smtp-pass")]),
            &RestorePoint::default(),
            &p1,
            |k| k == "B",
        );
        assert_eq!(new["B"], saved(None));
        assert_eq!(new["A"], saved(Some("1")));
    }

    #[test]
    fn a_legacy_restore_point_restores_into_the_current_scope() {
        let legacy = br#"{"A":{"value":"90"},"B":{}}"#;
        let point = parse(Some(legacy)).expect("legacy");
        let p1 = scope("https://h/identity_", "P1");
        let (restores, _) = restore_writes(&point, &p1, |_| true);
        assert_eq!(restores[0].scope.partition_global_id, "P1");
        assert_eq!(restores[0].writes, [value("A", "90")]);
        assert_eq!(restores[0].unset, ["B"]);
    }
}
