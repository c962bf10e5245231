//! The demo's report: plain-text tables of the policies and of what the identity service holds.
//!
//! Pure: data in, text out.

use std::collections::BTreeSet;

use identity_client::types::StoredSetting;
use identity_settings_operator::api::{IdentitySettingPolicy, SyncMode};
use identity_settings_operator::controller::error::{Recovery, recovery_of_reason};
use identity_settings_operator::reconcile::status::{READY, reason};

/// Longest value shown in the settings table; longer ones are cut with `…`.
const MAX_VALUE_CHARS: usize = 70;

/// Lays out `rows` under `headers` in columns two spaces apart.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        padded.join("  ").trim_end().to_owned() + "\n"
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out += &line(row.iter().map(String::as_str).collect());
    }
    out
}

/// Whether the policy's status describes its current generation.
fn observes_current_generation(policy: &IdentitySettingPolicy) -> bool {
    policy.status.as_ref().is_some_and(|s| {
        s.observed_generation.is_some() && s.observed_generation == policy.metadata.generation
    })
}

/// Whether a policy has converged: its current generation was observed and it reached its
/// steady state — Ready, or, in observe mode, drift reported (observe mode never writes).
pub fn converged(policy: &IdentitySettingPolicy) -> bool {
    let observing = policy.spec.mode == Some(SyncMode::Observe);
    observes_current_generation(policy)
        && match ready(policy) {
            Some(("True", _, _)) => true,
            Some(("False", r, _)) if r == reason::DRIFTED => observing,
            _ => false,
        }
}

/// Whether a policy is stuck on a failure that only a change by the user can fix (for its current
/// generation): waiting longer cannot make it converge.
pub fn needs_user(policy: &IdentitySettingPolicy) -> bool {
    observes_current_generation(policy)
        && ready(policy).is_some_and(|(status, reason, _)| {
            status == "False" && recovery_of_reason(reason) == Some(Recovery::NeedsUser)
        })
}

/// `namespace/name`, as the demo names a policy.
pub fn qualified_name(policy: &IdentitySettingPolicy) -> String {
    format!(
        "{}/{}",
        policy.metadata.namespace.as_deref().unwrap_or_default(),
        policy.metadata.name.as_deref().unwrap_or_default()
    )
}

/// The Ready condition: (status, reason, message).
pub fn ready(policy: &IdentitySettingPolicy) -> Option<(&str, &str, &str)> {
    policy
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == READY)
        .map(|c| (c.status.as_str(), c.reason.as_str(), c.message.as_str()))
}

/// One row per policy: namespace, name, Ready, reason, the server's ids, and the message
/// when not Ready.
pub fn policies(policies: &[IdentitySettingPolicy]) -> String {
    let rows: Vec<Vec<String>> = policies
        .iter()
        .map(|p| {
            let (status, reason, message) = ready(p).unwrap_or(("Unknown", "", ""));
            // In the policy's order of keys; `?` for a key the server has no id for yet.
            let ids: Vec<String> = p
                .spec
                .settings
                .iter()
                .map(|setting| {
                    p.status
                        .as_ref()
                        .and_then(|s| s.setting_ids.get(&setting.key))
                        .map_or_else(|| "?".to_owned(), |id| id.to_string())
                })
                .collect();
            vec![
                p.metadata.namespace.clone().unwrap_or_default(),
                p.metadata.name.clone().unwrap_or_default(),
                status.to_owned(),
                reason.to_owned(),
                ids.join(","),
                if status == "True" {
                    String::new()
                } else {
                    message.to_owned()
                },
            ]
        })
        .collect();
    render(
        &["NAMESPACE", "NAME", "READY", "REASON", "IDS", "MESSAGE"],
        &rows,
    )
}

/// One row per stored setting of one scope, by id. Values of `secret_keys` (settings whose
/// value came from a Secret) are never shown.
pub fn settings(stored: &[StoredSetting], secret_keys: &BTreeSet<String>) -> String {
    let mut stored: Vec<&StoredSetting> = stored.iter().collect();
    stored.sort_by_key(|s| s.id);
    let rows: Vec<Vec<String>> = stored
        .into_iter()
        .map(|s| {
            let value = if secret_keys.contains(&s.key) {
                "(from a Secret, not shown)".to_owned()
            } else {
                shorten(&s.value)
            };
            vec![s.id.to_string(), s.key.clone(), value]
        })
        .collect();
    render(&["ID", "KEY", "VALUE"], &rows)
}

fn shorten(value: &str) -> String {
    if value.chars().count() <= MAX_VALUE_CHARS {
        return value.to_owned();
    }
    let cut: String = value.chars().take(MAX_VALUE_CHARS - 1).collect();
    cut + "…"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_and_lines_have_no_trailing_spaces() {
        let text = render(
            &["A", "LONG HEADER"],
            &[
                vec!["wide cell".into(), "x".into()],
                vec!["b".into(), String::new()],
            ],
        );
        assert_eq!(text, "A          LONG HEADER\nwide cell  x\nb\n");
    }

    fn policy_with(mode: Option<SyncMode>, status: &str, reason: &str) -> IdentitySettingPolicy {
        let mut policy: IdentitySettingPolicy = serde_json::from_value(serde_json::json!({
            "apiVersion": "identitysettings.dev/v1alpha1",
            "kind": "IdentitySettingPolicy",
            "metadata": {"name": "p", "generation": 2},
            "spec": {"server": {"url": "https://h/identity_", "credentialsSecretRef": {"name": "c"}},
                     "partitionGlobalId": "org", "settings": [{"key": "A", "value": "1"}]},
            "status": {"observedGeneration": 2, "conditions": [{"type": "Ready", "status": status,
                "reason": reason, "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
        }))
        .expect("a valid policy");
        policy.spec.mode = mode;
        policy
    }

    #[test]
    fn ready_or_observed_drift_is_converged_and_failures_are_not() {
        assert!(converged(&policy_with(None, "True", "Applied")));
        assert!(converged(&policy_with(
            Some(SyncMode::Observe),
            "False",
            "Drifted"
        )));
        assert!(!converged(&policy_with(None, "False", "Drifted")));
        assert!(!converged(&policy_with(None, "False", "SecretNotFound")));
        assert!(needs_user(&policy_with(None, "False", "SecretNotFound")));
        assert!(!needs_user(&policy_with(
            None,
            "False",
            "ServerUnreachable"
        )));
        assert!(!needs_user(&policy_with(
            Some(SyncMode::Observe),
            "False",
            "Drifted"
        )));
        let mut stale = policy_with(None, "True", "Applied");
        stale.metadata.generation = Some(3);
        assert!(
            !converged(&stale),
            "an older generation's status is not convergence"
        );
    }

    #[test]
    fn secret_values_are_hidden_and_long_values_cut() {
        let stored = |key: &str, value: &str| StoredSetting {
            id: 7,
            key: key.into(),
            value: value.into(),
            partition_global_id: "org".into(),
            user_id: None,
        };
        let secret_keys = BTreeSet::from(["Email.Smtp.Password".to_owned()]);
        let text = settings(
            &[
                stored("Email.Smtp.Password", "hunter2"),
                stored("Long", &"x".repeat(100)),
            ],
            &secret_keys,
        );
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("(from a Secret, not shown)"), "{text}");
        assert!(text.contains(&format!("{}…", "x".repeat(69))), "{text}");
        assert!(!text.contains(&"x".repeat(70)), "{text}");
    }
}
