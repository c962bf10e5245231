//! What a check acted on, recorded in `status.inputs` (pure): a digest of the policy's declared
//! settings and the versions of the Secrets its values came from. Decisions that depend on
//! earlier checks — is a difference drift or a change, was this value refused before — read it
//! from status, so a restarted operator decides exactly as the one before it.

use std::collections::BTreeMap;

use crate::api::{IdentitySettingPolicyStatus, SyncInputs};

/// The Secrets a policy's values came from: (namespace, name) → resourceVersion.
pub type SecretVersions = BTreeMap<(String, String), String>;

/// The digest of the inputs: SHA-256 (hex) over the declared settings (`spec.settings` as
/// JSON: keys, literal values, Secret references — what anyone who reads the policy sees) and
/// each Secret's namespace, name and resourceVersion. A version says nothing about a value, so
/// the digest cannot either. Other spec edits (suspend, mode, resync) leave it as it is: a
/// difference found after them is drift, not a change.
pub fn digest(declared: &str, secrets: &SecretVersions) -> String {
    let mut text = format!("settings {}:{declared}\n", declared.len());
    for ((namespace, name), version) in secrets {
        // Lengths first: no two different lists give the same text.
        text.push_str(&format!(
            "secret {}:{namespace} {}:{name} {}:{version}\n",
            namespace.len(),
            name.len(),
            version.len()
        ));
    }
    let hash = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    hash.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `status` records a settled check of these same inputs (`None` recorded: a status
/// written before the record existed, taken as the same inputs — a difference then is drift).
pub fn same_inputs(status: Option<&IdentitySettingPolicyStatus>, digest: &str) -> bool {
    status
        .and_then(|s| s.inputs.as_ref())
        .is_none_or(|i| i.digest == digest)
}

/// The keys the identity service refused when these same inputs were written, if any.
pub fn refused_before<'a>(
    status: Option<&'a IdentitySettingPolicyStatus>,
    digest: &str,
) -> Option<&'a [String]> {
    status
        .and_then(|s| s.inputs.as_ref())
        .filter(|i| i.digest == digest && !i.not_accepted.is_empty())
        .map(|i| i.not_accepted.as_slice())
}

/// The record of a settled check: these inputs, and the keys refused (empty when the server
/// holds every value).
pub fn settled(digest: String, not_accepted: Vec<String>) -> SyncInputs {
    SyncInputs {
        digest,
        not_accepted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn versions(list: &[(&str, &str, &str)]) -> SecretVersions {
        list.iter()
            .map(|(ns, n, v)| (((*ns).into(), (*n).into()), (*v).into()))
            .collect()
    }

    #[test]
    fn the_digest_moves_with_the_declared_settings_and_each_secret_version() {
        let base = digest("[1]", &versions(&[("a", "s", "10")]));
        assert_eq!(base, digest("[1]", &versions(&[("a", "s", "10")])));
        assert_ne!(base, digest("[2]", &versions(&[("a", "s", "10")])));
        assert_ne!(base, digest("[1]", &versions(&[("a", "s", "11")])));
        assert_ne!(base, digest("[1]", &versions(&[("b", "s", "10")])));
        assert_ne!(base, digest("[1]", &versions(&[])));
        assert_eq!(base.len(), 64);
    }

    #[test]
    fn names_cannot_run_into_versions() {
        assert_ne!(
            digest("", &versions(&[("a", "s 1", "2")])),
            digest("", &versions(&[("a", "s", "1 2")]))
        );
    }

    #[test]
    fn refusals_count_only_for_the_inputs_they_were_made_for() {
        let status = IdentitySettingPolicyStatus {
            inputs: Some(settled("d1".into(), vec!["K".into()])),
            ..Default::default()
        };
        assert_eq!(
            refused_before(Some(&status), "d1"),
            Some(&["K".to_owned()][..])
        );
        assert_eq!(refused_before(Some(&status), "d2"), None);
        assert!(same_inputs(Some(&status), "d1"));
        assert!(!same_inputs(Some(&status), "d2"));
        assert!(
            same_inputs(None, "d2"),
            "no record: taken as the same inputs"
        );
    }
}
