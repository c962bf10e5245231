//! The settings table: rows keyed by (partition, user, key) with database-style row ids.
//!
//! One global id counter, like an identity column: a new row takes the next id, an update keeps
//! the row's id. Pure data, no I/O, so the id rules are unit-tested here.
//!
//! The contract is silent on how ids and keys compare. By default they are compared exactly;
//! with [`Store::canonicalizing`] the store answers as a .NET service on SQL Server might: GUIDs
//! compared by value and written back upper-case (hyphenated), keys compared case-insensitively
//! and written back as first stored. A user-level read returns only that user's rows, never
//! organisation-level rows as fallback.

use std::collections::BTreeMap;

use identity_client::types::{SettingScope, StoredSetting, guid_digits};

/// Where a row lives: its scope and key.
type RowKey = (SettingScope, String);

/// One stored row.
#[derive(Clone, PartialEq, Eq)]
struct Row {
    id: i64,
    /// The key as stored (the row key may be its lower-case form).
    key: String,
    value: String,
}

/// The id the example's data continues from: the contract's response shows ids up to 28.
pub(crate) const EXAMPLE_NEXT_ID: i64 = 29;

/// The partition of the contract's example.
pub(crate) const EXAMPLE_PARTITION: &str = "magic-7";

/// The rows seeded for the example partition: (id, key, prior value).
///
/// Ids come from the contract's response. The prior values are plausible server defaults (our
/// guess: no expiry, complexity digit+lowercase with length 8, no reuse limit, no forced change,
/// lockout enabled after 10 failures for 300 seconds), so replaying the example request changes
/// most of them and the response equals the example's.
pub(crate) const EXAMPLE_ROWS: [(i64, &str, &str); 7] = [
    (
        1,
        "Auth.Password.PasswordComplexity",
        EXAMPLE_PRIOR_COMPLEXITY,
    ),
    (
        2,
        "Auth.Password.ShouldChangePasswordAfterFirstLogin",
        "false",
    ),
    (3, "Auth.Password.PreviousUseLimit", "0"),
    (4, "Auth.Password.DefaultExpirationDays", "0"),
    (26, "Auth.UserLockOut.DefaultAccountLockoutSeconds", "300"),
    (27, "Auth.UserLockOut.IsEnabled", "true"),
    (
        28,
        "Auth.UserLockOut.MaxFailedAccessAttemptsBeforeLockout",
        "10",
    ),
];

/// The seeded complexity, given in request form and normalised when seeding.
const EXAMPLE_PRIOR_COMPLEXITY: &str = r#"{"HasDigit":true,"HasLowercase":true,"HasSpecialCharacter":false,"HasUppercase":false,"Length":8}"#;

/// The settings table.
#[derive(Clone)]
pub(crate) struct Store {
    next_id: i64,
    rows: BTreeMap<RowKey, Row>,
    canonical: bool,
}

impl Default for Store {
    fn default() -> Self {
        Self {
            next_id: 1,
            rows: BTreeMap::new(),
            canonical: false,
        }
    }
}

/// A GUID as SQL Server writes a uniqueidentifier: upper-case, hyphenated; other ids as given.
fn canonical_id(id: &str) -> String {
    match guid_digits(id) {
        Some(d) => format!(
            "{}-{}-{}-{}-{}",
            &d[..8],
            &d[8..12],
            &d[12..16],
            &d[16..20],
            &d[20..]
        )
        .to_ascii_uppercase(),
        None => id.to_owned(),
    }
}

impl Store {
    /// An empty table whose first row gets id 1.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// A table holding the contract example's prior rows, continuing at id 29.
    /// Compares and answers ids and keys as a .NET service on SQL Server might (see the module
    /// docs) when `on`.
    pub(crate) fn canonicalizing(mut self, on: bool) -> Self {
        self.canonical = on;
        self.rows = std::mem::take(&mut self.rows)
            .into_iter()
            .map(|((scope, key), row)| (self.row_key(&scope, &key), row))
            .collect();
        self
    }

    /// The scope as this store answers it.
    fn scope_of(&self, scope: &SettingScope) -> SettingScope {
        if !self.canonical {
            return scope.clone();
        }
        SettingScope {
            partition_global_id: canonical_id(&scope.partition_global_id),
            user_id: scope.user_id.as_deref().map(canonical_id),
        }
    }

    /// Where a key of a scope is stored.
    fn row_key(&self, scope: &SettingScope, key: &str) -> RowKey {
        let key = if self.canonical {
            key.to_ascii_lowercase()
        } else {
            key.to_owned()
        };
        (self.scope_of(scope), key)
    }

    pub(crate) fn with_example() -> Self {
        let mut store = Self::new();
        let scope = SettingScope::organization(EXAMPLE_PARTITION);
        for (id, key, value) in EXAMPLE_ROWS {
            let value = super::normalize::normalize_value(key, value);
            store.rows.insert(
                (scope.clone(), key.to_owned()),
                Row {
                    id,
                    key: key.to_owned(),
                    value,
                },
            );
        }
        store.next_id = EXAMPLE_NEXT_ID;
        store
    }

    /// Creates or updates one row; `value` must already be normalised.
    pub(crate) fn upsert(
        &mut self,
        scope: &SettingScope,
        key: &str,
        value: String,
    ) -> StoredSetting {
        let row_key = self.row_key(scope, key);
        let row = match self.rows.get_mut(&row_key) {
            Some(row) => {
                row.value = value;
                row.clone()
            }
            None => {
                let row = Row {
                    id: self.next_id,
                    key: key.to_owned(),
                    value,
                };
                self.next_id += 1;
                self.rows.insert(row_key.clone(), row.clone());
                row
            }
        };
        stored(&row_key.0, row)
    }

    pub(crate) fn get(&self, scope: &SettingScope, keys: &[String]) -> Vec<StoredSetting> {
        let mut out: Vec<StoredSetting> = Vec::with_capacity(keys.len());
        let mut seen = Vec::with_capacity(keys.len());
        for key in keys {
            let row_key = self.row_key(scope, key);
            if seen.contains(&row_key) {
                continue;
            }
            if let Some(row) = self.rows.get(&row_key) {
                out.push(stored(&row_key.0, row.clone()));
            }
            seen.push(row_key);
        }
        out
    }

    pub(crate) fn all(&self, scope: &SettingScope) -> Vec<StoredSetting> {
        let scope = self.scope_of(scope);
        let mut out: Vec<StoredSetting> = self
            .rows
            .iter()
            .filter(|((s, _), _)| *s == scope)
            .map(|((s, _), row)| stored(s, row.clone()))
            .collect();
        out.sort_by_key(|s| s.id);
        out
    }
}

fn stored(scope: &SettingScope, row: Row) -> StoredSetting {
    StoredSetting {
        id: row.id,
        key: row.key,
        value: row.value,
        partition_global_id: scope.partition_global_id.clone(),
        user_id: scope.user_id.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(k: &[&str]) -> Vec<String> {
        k.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_canonicalizing_store_matches_guids_by_value_and_keys_in_any_case() {
        let mut s = Store::new().canonicalizing(true);
        let lower = SettingScope::organization("3fa85f64-5717-4562-b3fc-2c963f66afa6");
        let braced = SettingScope::organization("{3FA85F64-5717-4562-B3FC-2C963F66AFA6}");
        let first = s.upsert(&lower, "Auth.UserLockOut.IsEnabled", "true".into());
        assert_eq!(
            first.partition_global_id,
            "3FA85F64-5717-4562-B3FC-2C963F66AFA6"
        );
        let again = s.upsert(&braced, "AUTH.USERLOCKOUT.ISENABLED", "false".into());
        assert_eq!(again.id, first.id, "the same row");
        assert_eq!(
            again.key, "Auth.UserLockOut.IsEnabled",
            "the key as first stored"
        );
        let read = s.get(&lower, &keys(&["auth.userlockout.isenabled"]));
        assert_eq!((read[0].id, read[0].value.as_str()), (first.id, "false"));
        assert_eq!(s.all(&braced).len(), 1);
        // Plain mode compares exactly.
        let mut plain = Store::new();
        plain.upsert(&lower, "A", "1".into());
        assert!(plain.get(&braced, &keys(&["A"])).is_empty());
        assert!(plain.get(&lower, &keys(&["a"])).is_empty());
    }

    #[test]
    fn new_keys_take_the_next_id_and_updates_keep_it() {
        let mut s = Store::new();
        let org = SettingScope::organization("p");
        assert_eq!(s.upsert(&org, "a", "1".into()).id, 1);
        assert_eq!(s.upsert(&org, "b", "1".into()).id, 2);
        let updated = s.upsert(&org, "a", "2".into());
        assert_eq!((updated.id, updated.value.as_str()), (1, "2"));
        assert_eq!(s.upsert(&org, "c", "1".into()).id, 3);
    }

    #[test]
    fn one_counter_across_partitions_and_users() {
        let mut s = Store::new();
        let org = SettingScope::organization("p");
        let other = SettingScope::organization("q");
        let user = SettingScope::user("p", "u1");
        assert_eq!(s.upsert(&org, "a", "x".into()).id, 1);
        assert_eq!(s.upsert(&other, "a", "x".into()).id, 2);
        let row = s.upsert(&user, "a", "x".into());
        assert_eq!((row.id, row.user_id.as_deref()), (3, Some("u1")));
        assert_eq!(s.all(&org).len(), 1);
        assert_eq!(s.all(&user).len(), 1);
        assert_eq!(s.all(&SettingScope::user("p", "u2")).len(), 0);
    }

    #[test]
    fn get_follows_the_order_asked_and_skips_absent_and_repeated_keys() {
        let mut s = Store::new();
        let org = SettingScope::organization("p");
        for k in ["a", "b", "c"] {
            s.upsert(&org, k, k.into());
        }
        let got = s.get(&org, &keys(&["c", "zz", "a", "c"]));
        let got: Vec<(i64, &str)> = got.iter().map(|r| (r.id, r.key.as_str())).collect();
        assert_eq!(got, [(3, "c"), (1, "a")]);
    }

    #[test]
    fn all_is_ordered_by_id() {
        let mut s = Store::new();
        let org = SettingScope::organization("p");
        for k in ["z", "a", "m"] {
            s.upsert(&org, k, "v".into());
        }
        let ids: Vec<i64> = s.all(&org).iter().map(|r| r.id).collect();
        assert_eq!(ids, [1, 2, 3]);
    }

    #[test]
    fn example_seed_has_the_contract_ids_and_continues_at_29() {
        let mut s = Store::with_example();
        let org = SettingScope::organization(EXAMPLE_PARTITION);
        let ids: Vec<i64> = s.all(&org).iter().map(|r| r.id).collect();
        assert_eq!(ids, [1, 2, 3, 4, 26, 27, 28]);
        assert_eq!(s.upsert(&org, "Email.Smtp.Host", "smtp".into()).id, 29);
        assert_eq!(
            s.upsert(&org, "Auth.Password.PreviousUseLimit", "5".into())
                .id,
            3
        );
    }
}
