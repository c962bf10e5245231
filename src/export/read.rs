//! Reads the keys to export from the identity service: GETs only, as few as the client's URL
//! length allows ([`batches`]), each within the server's request budget (the client waits for
//! it). A secret-valued key's value is dropped as soon as it is read.

use settings_core::catalog;
use settings_core::semantics::without_derived;

use crate::identity::client::{IdentityClient, is_secret_key};
use crate::identity::error::IdentityError;
use crate::identity::types::SettingScope;
use crate::reconcile::validate::SECRET_SETTING_KEYS;

use super::manifest::{Found, Read};

/// Whether `key`'s value is a secret: the catalog says so, the operator's validation requires
/// it from a Secret, or the identity client treats it as one (a `…Password` key).
pub fn is_secret(key: &str) -> bool {
    catalog::is_secret(key)
        || SECRET_SETTING_KEYS
            .iter()
            .any(|k| k.eq_ignore_ascii_case(key))
        || is_secret_key(key)
}

/// `keys` cut into consecutive groups, each as long as `fits` allows (a key that fits alone
/// nowhere gets a group of its own; the client splits it further if it must).
pub fn batches(keys: &[String], fits: impl Fn(&[String]) -> bool) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    let mut current: Vec<String> = Vec::new();
    for key in keys {
        current.push(key.clone());
        if current.len() > 1 && !fits(&current) {
            current.pop();
            out.push(std::mem::take(&mut current));
            current.push(key.clone());
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Reads `keys` in `scope`, one GET per batch; `progress(done, total)` is told after each.
/// Answers the keys the server holds a value for, spelled as asked, in the order asked.
pub async fn read(
    client: &IdentityClient,
    scope: &SettingScope,
    keys: &[String],
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<Read>, IdentityError> {
    let mut found = Vec::new();
    let mut done = 0;
    progress(done, keys.len());
    for batch in batches(keys, |b| client.reads_in_one_request(scope, b)) {
        let rows = client.get_settings(scope, &batch).await?;
        for key in &batch {
            let Some(row) = rows.iter().find(|r| r.key.eq_ignore_ascii_case(key)) else {
                continue;
            };
            let found_value = if is_secret(key) {
                Found::Secret
            } else {
                Found::Value(without_derived(key, &row.value))
            };
            found.push(Read {
                key: key.clone(),
                found: found_value,
            });
        }
        done += batch.len();
        progress(done, keys.len());
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_as_long_as_allowed_and_keep_the_order() {
        let keys: Vec<String> = (1..=7).map(|i| format!("K{i}")).collect();
        let three = batches(&keys, |b| b.len() <= 3);
        assert_eq!(
            three,
            [vec!["K1", "K2", "K3"], vec!["K4", "K5", "K6"], vec!["K7"]]
        );
        assert_eq!(batches(&keys, |_| true).len(), 1);
        assert_eq!(
            batches(&keys, |_| false).len(),
            7,
            "one key per GET at worst"
        );
        assert!(batches(&[], |_| true).is_empty());
    }

    #[test]
    fn secret_keys_are_the_catalogs_and_any_password() {
        assert!(is_secret("Email.Smtp.Password"));
        assert!(is_secret("Custom.Relay.Password"));
        assert!(!is_secret("Auth.Password.PasswordComplexity"));
        for key in SECRET_SETTING_KEYS {
            assert!(
                catalog::is_secret(key),
                "{key} is secret but not in the catalog"
            );
        }
    }
}
