//! Decides which settings to write (pure): desired values against the server's, by meaning.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::semantics::same_meaning;
use crate::values::{SettingScope, SettingValue, StoredSetting, guid_digits};

/// One change a write would make (`spec.mode: Plan`, and the `diff` command). Values of keys
/// taken from a Secret (and of `Email.Smtp.Password`) are never shown, not even as a hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlannedChange {
    /// The setting key.
    pub key: String,
    /// `Create` when the server has no value for the key yet, `Update` otherwise.
    pub change: ChangeKind,
    /// The server's value now (at most 256 characters); absent for a new or secret key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    /// The value the policy would write (at most 256 characters); absent for a secret key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired: Option<String>,
    /// True when the key's values are secret: the change is shown as "changed" only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub secret: bool,
}

/// Whether a planned change creates a setting or updates one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ChangeKind {
    /// The server holds no value for the key (in the policy's partition and user).
    Create,
    /// The server holds a value that means something else.
    Update,
}

/// What one reconcile has to write, and the ids the server already has.
#[derive(Debug, Default, PartialEq)]
pub struct SyncPlan {
    /// Settings whose stored value differs by meaning (or that do not exist yet), in spec order.
    pub writes: Vec<SettingValue>,
    /// The server's ids of the desired keys it already stores.
    pub ids: BTreeMap<String, i64>,
    /// The server's current value of each key in `writes` that it stores (may be secret: only
    /// [`planned_changes`] reads it, and it shows no secret).
    pub current: BTreeMap<String, String>,
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

/// The rows of `scope` only, by key in ASCII lower case: the contract does not say whether an
/// organization-level GET also returns user-level rows, so the operator never relies on it. The
/// service is .NET on SQL Server: it may answer a GUID in another case or format and a key in
/// another case, so ids are compared by value and keys case-insensitively.
fn rows_of<'a>(
    rows: &'a [StoredSetting],
    scope: &SettingScope,
) -> BTreeMap<String, &'a StoredSetting> {
    rows.iter()
        .filter(|s| {
            same_id(&s.partition_global_id, &scope.partition_global_id)
                && match (&s.user_id, &scope.user_id) {
                    (Some(a), Some(b)) => same_id(a, b),
                    (None, None) => true,
                    _ => false,
                }
        })
        .map(|s| (s.key.to_ascii_lowercase(), s))
        .collect()
}

/// The row `rows_of` holds for `key`, whatever its case.
fn row_for<'a>(rows: &BTreeMap<String, &'a StoredSetting>, key: &str) -> Option<&'a StoredSetting> {
    rows.get(&key.to_ascii_lowercase()).copied()
}

/// Two ids are the same: GUIDs by value (any case; with or without braces and hyphens),
/// anything else exactly.
pub fn same_id(a: &str, b: &str) -> bool {
    match (guid_digits(a), guid_digits(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// The server's ids of the `written` keys, under the keys as written (the answer may spell them
/// in another case).
pub fn written_ids(
    written: &[SettingValue],
    returned: &[StoredSetting],
    scope: &SettingScope,
) -> BTreeMap<String, i64> {
    let rows = rows_of(returned, scope);
    written
        .iter()
        .filter_map(|w| row_for(&rows, &w.key).map(|s| (w.key.clone(), s.id)))
        .collect()
}

/// Compares desired settings with what a GET for `scope` returned.
pub fn plan(desired: &[SettingValue], actual: &[StoredSetting], scope: &SettingScope) -> SyncPlan {
    let stored = rows_of(actual, scope);
    let mut out = SyncPlan::default();
    for d in desired {
        match row_for(&stored, &d.key) {
            Some(s) => {
                out.ids.insert(d.key.clone(), s.id);
                if !same_meaning(&d.key, &d.value, &s.value) {
                    out.writes.push(d.clone());
                    out.current.insert(d.key.clone(), s.value.clone());
                }
            }
            None => out.writes.push(d.clone()),
        }
    }
    out
}

/// The longest value a planned change shows; longer ones are cut (with `…`).
pub const SHOWN_VALUE_CHARS: usize = 256;

/// The plan's writes as changes fit to show a user: `secret(key)` keys without any value, every
/// other value passed through `redact` (a literal value may happen to contain a secret) and cut
/// to [`SHOWN_VALUE_CHARS`].
pub fn planned_changes(
    plan: &SyncPlan,
    secret: impl Fn(&str) -> bool,
    redact: impl Fn(&str) -> String,
) -> Vec<PlannedChange> {
    let shown = |v: &str| cut(&redact(v), SHOWN_VALUE_CHARS);
    plan.writes
        .iter()
        .map(|w| {
            let current = plan.current.get(&w.key);
            let hidden = secret(&w.key);
            PlannedChange {
                key: w.key.clone(),
                change: if current.is_some() {
                    ChangeKind::Update
                } else {
                    ChangeKind::Create
                },
                current: current.filter(|_| !hidden).map(|v| shown(v)),
                desired: (!hidden).then(|| shown(&w.value)),
                secret: hidden,
            }
        })
        .collect()
}

/// `text` cut to at most `max` characters, ending in `…` when cut.
fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max.saturating_sub(1)) {
        Some((end, _)) if text.chars().count() > max => format!("{}…", &text[..end]),
        _ => text.to_owned(),
    }
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
            row_for(&by_key, &w.key).is_none_or(|s| !same_meaning(&w.key, &w.value, &s.value))
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

    /// What a .NET service on SQL Server may answer: the GUID upper-cased in braces, the key in
    /// its own case.
    fn canonicalised(id: i64, key: &str, value: &str) -> StoredSetting {
        StoredSetting {
            id,
            key: key.into(),
            value: value.into(),
            partition_global_id: "{3FA85F64-5717-4562-B3FC-2C963F66AFA6}".into(),
            user_id: Some("1B4E28BA2FA1-11D2-883F-0016D3CCA427".replace('-', "")),
        }
    }

    #[test]
    fn guids_match_by_value_and_keys_whatever_their_case() {
        let scope = SettingScope::user(
            "3fa85f64-5717-4562-b3fc-2c963f66afa6",
            "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
        );
        let desired = [
            want("Auth.UserLockOut.IsEnabled", "true"),
            want("Auth.Password.DefaultExpirationDays", "90"),
        ];
        let rows = [
            canonicalised(7, "AUTH.USERLOCKOUT.ISENABLED", "true"),
            canonicalised(8, "auth.password.defaultexpirationdays", "90"),
        ];
        let p = plan(&desired, &rows, &scope);
        assert!(p.in_sync(), "nothing to write: {:?}", p.keys());
        assert_eq!(
            p.ids,
            BTreeMap::from([
                ("Auth.Password.DefaultExpirationDays".into(), 8),
                ("Auth.UserLockOut.IsEnabled".into(), 7)
            ]),
            "ids under the policy's own keys"
        );
        assert!(not_accepted(&desired, &rows, &scope).is_empty());
        // A partition that is not a GUID is still compared exactly.
        let named = SettingScope::organization("magic-7");
        let mut row = have(1, "A", "1");
        row.partition_global_id = "MAGIC-7".into();
        assert!(!plan(&[want("A", "1")], &[row], &named).in_sync());
    }

    #[test]
    fn planned_changes_show_values_but_never_a_secret_one() {
        let desired = [
            want("A", "new"),
            want("Email.Smtp.Password", "hunter2-new"),
            want("C", "x".repeat(300).as_str()),
            want("D", "same"),
        ];
        let actual = [
            have(1, "A", "old"),
            have(2, "Email.Smtp.Password", "hunter2-old"),
            have(4, "D", "same"),
        ];
        let p = plan(&desired, &actual, &org());
        let changes = planned_changes(
            &p,
            |k| k == "Email.Smtp.Password",
            |v| v.replace("old", "***"),
        );
        assert_eq!(changes.len(), 3, "D is in sync");
        assert_eq!(
            changes[0],
            PlannedChange {
                key: "A".into(),
                change: ChangeKind::Update,
                current: Some("***".into()),
                desired: Some("new".into()),
                secret: false,
            }
        );
        assert_eq!(
            changes[1],
            PlannedChange {
                key: "Email.Smtp.Password".into(),
                change: ChangeKind::Update,
                current: None,
                desired: None,
                secret: true,
            }
        );
        let long = &changes[2];
        assert_eq!(long.change, ChangeKind::Create);
        assert_eq!(long.current, None);
        let shown = long.desired.as_deref().unwrap_or_default();
        assert_eq!(shown.chars().count(), SHOWN_VALUE_CHARS);
        assert!(shown.ends_with('…'));
        let json = serde_json::to_string(&changes).unwrap_or_default();
        assert!(!json.contains("hunter2"), "{json}");
    }

    #[test]
    fn reports_values_the_server_did_not_keep() {
        let written = [want("A", "1"), want("B", "2"), want("C", "3")];
        let returned = [have(1, "A", "1"), have(2, "B", "20")];
        assert_eq!(not_accepted(&written, &returned, &org()), ["B", "C"]);
    }
}
