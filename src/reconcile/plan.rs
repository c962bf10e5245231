//! Decides which settings to write (pure): desired values against the server's, by meaning.

use std::collections::BTreeMap;

use crate::identity::types::{SettingScope, SettingValue, StoredSetting};
use crate::semantics::same_meaning;

/// What one reconcile has to write, and the ids the server already has.
#[derive(Debug, Default, PartialEq)]
pub struct SyncPlan {
    /// Settings whose stored value differs by meaning (or that do not exist yet), in spec order.
    pub writes: Vec<SettingValue>,
    /// The server's ids of the desired keys it already stores.
    pub ids: BTreeMap<String, i64>,
}

impl SyncPlan {
    /// True when the server already holds every desired value.
    pub fn in_sync(&self) -> bool {
        self.writes.is_empty()
    }

    /// The keys that would be written.
    pub fn keys(&self) -> Vec<String> {
        self.writes.iter().map(|w| w.key.clone()).collect()
    }
}

/// The rows of `scope` only: the contract does not say whether an organization-level GET also
/// returns user-level rows, so the operator never relies on it.
fn rows_of<'a>(
    rows: &'a [StoredSetting],
    scope: &SettingScope,
) -> BTreeMap<&'a str, &'a StoredSetting> {
    rows.iter()
        .filter(|s| {
            s.partition_global_id == scope.partition_global_id && s.user_id == scope.user_id
        })
        .map(|s| (s.key.as_str(), s))
        .collect()
}

/// Compares desired settings with what a GET for `scope` returned.
pub fn plan(desired: &[SettingValue], actual: &[StoredSetting], scope: &SettingScope) -> SyncPlan {
    let stored = rows_of(actual, scope);
    let mut out = SyncPlan::default();
    for d in desired {
        match stored.get(d.key.as_str()) {
            Some(s) => {
                out.ids.insert(d.key.clone(), s.id);
                if !same_meaning(&d.key, &d.value, &s.value) {
                    out.writes.push(d.clone());
                }
            }
            None => out.writes.push(d.clone()),
        }
    }
    out
}

/// Keys the server answered for with a value that does not mean what was written: writing them
/// again would not help, so the controller reports them instead of looping.
pub fn not_accepted(
    written: &[SettingValue],
    returned: &[StoredSetting],
    scope: &SettingScope,
) -> Vec<String> {
    let by_key = rows_of(returned, scope);
    written
        .iter()
        .filter(|w| {
            by_key
                .get(w.key.as_str())
                .is_none_or(|s| !same_meaning(&w.key, &w.value, &s.value))
        })
        .map(|w| w.key.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org() -> SettingScope {
        SettingScope::organization("p")
    }

    #[test]
    fn rows_of_other_scopes_are_never_compared() {
        let mut user_row = have(5, "A", "1");
        user_row.user_id = Some("u1".into());
        let mut other_org = have(6, "A", "1");
        other_org.partition_global_id = "q".into();
        let p = plan(&[want("A", "1")], &[user_row.clone(), other_org], &org());
        assert_eq!(p.keys(), ["A"], "no org-level row: write it");
        assert!(p.ids.is_empty());
        let user = SettingScope::user("p", "u1");
        assert!(plan(&[want("A", "1")], &[user_row], &user).in_sync());
    }

    fn want(key: &str, value: &str) -> SettingValue {
        SettingValue {
            key: key.into(),
            value: value.into(),
        }
    }

    fn have(id: i64, key: &str, value: &str) -> StoredSetting {
        StoredSetting {
            id,
            key: key.into(),
            value: value.into(),
            partition_global_id: "p".into(),
            user_id: None,
        }
    }

    #[test]
    fn writes_only_what_differs_by_meaning_and_what_is_missing() {
        let desired = [
            want("A", "true"),
            want("B", "5"),
            want("C", "x"),
            want(
                "Auth.Password.PasswordComplexity",
                r#"{"hasDigit":true,"Length":"8"}"#,
            ),
        ];
        let actual = [
            have(1, "A", "True"),
            have(2, "B", "6"),
            have(
                9,
                "Auth.Password.PasswordComplexity",
                r#"{"HasDigit":true,"HasLowercase":false,"Length":8,"RegexComplexity":{}}"#,
            ),
        ];
        let p = plan(&desired, &actual, &org());
        assert_eq!(p.keys(), ["B", "C"]);
        assert_eq!(
            p.ids,
            BTreeMap::from([
                ("A".into(), 1),
                ("B".into(), 2),
                ("Auth.Password.PasswordComplexity".into(), 9)
            ])
        );
        assert!(!p.in_sync());
        assert!(plan(&desired[..1], &actual, &org()).in_sync());
    }

    #[test]
    fn reports_values_the_server_did_not_keep() {
        let written = [want("A", "1"), want("B", "2"), want("C", "3")];
        let returned = [have(1, "A", "1"), have(2, "B", "20")];
        assert_eq!(not_accepted(&written, &returned, &org()), ["B", "C"]);
    }
}
