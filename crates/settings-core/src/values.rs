//! The settings model shared by the identity client, the simulator and the decisions: which
//! organization (and user) a setting belongs to, a value to write, a value the server stores.
//! Field names follow the identity API's contract (`docs/identity-api.md`).

use serde::{Deserialize, Serialize};

/// Which settings a call is about: an organization, and optionally one user in it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SettingScope {
    /// The organization's id (`partitionGlobalId`).
    pub partition_global_id: String,
    /// A user id for user-level settings; `None` for organization-level settings.
    pub user_id: Option<String>,
}

impl SettingScope {
    /// An organization-level scope.
    pub fn organization(partition_global_id: impl Into<String>) -> Self {
        Self {
            partition_global_id: partition_global_id.into(),
            user_id: None,
        }
    }

    /// A user-level scope.
    pub fn user(partition_global_id: impl Into<String>, user_id: impl Into<String>) -> Self {
        Self {
            partition_global_id: partition_global_id.into(),
            user_id: Some(user_id.into()),
        }
    }
}

/// One key and the value to store, as sent in a PUT body.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingValue {
    /// The setting key, e.g. `Auth.Password.DefaultExpirationDays`.
    pub key: String,
    /// The value as a string (structured values are JSON text).
    pub value: String,
}

/// Values may be secret (`Email.Smtp.Password`), so `Debug` shows the key only.
impl std::fmt::Debug for SettingValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SettingValue")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// One element of the array the server returns from PUT and GET.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredSetting {
    /// The server's row id for (partition, user, key); stable across updates.
    pub id: i64,
    /// The setting key.
    pub key: String,
    /// The value as the server stored it (possibly normalised).
    pub value: String,
    /// The organization.
    pub partition_global_id: String,
    /// The user, or `null` for organization-level settings.
    pub user_id: Option<String>,
}

/// Values may be secret, so `Debug` leaves them out.
impl std::fmt::Debug for StoredSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSetting")
            .field("id", &self.id)
            .field("key", &self.key)
            .field("partition_global_id", &self.partition_global_id)
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

/// The 32 hex digits of a GUID, lower-cased, or `None` when `text` is not one. Accepts the
/// forms a .NET service writes: any case, with or without braces and hyphens.
pub fn guid_digits(text: &str) -> Option<String> {
    let inner = text
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .unwrap_or(text);
    let digits: String = inner.chars().filter(|c| *c != '-').collect();
    let hyphens = inner.len() - digits.len();
    let well_formed = digits.len() == 32
        && digits.chars().all(|c| c.is_ascii_hexdigit())
        && (hyphens == 0 || (hyphens == 4 && inner.split('-').map(str::len).eq([8, 4, 4, 4, 12])));
    well_formed.then(|| digits.to_ascii_lowercase())
}
