//! The demo's report: plain-text tables of the policies and of what the identity service holds.
//!
//! Pure: data in, text out.

use std::collections::BTreeSet;

use crate::api::IdentitySettingPolicy;
use crate::identity::types::StoredSetting;

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

/// Whether a policy has converged: its current generation was observed and it is Ready.
pub fn converged(policy: &IdentitySettingPolicy) -> bool {
    let Some(status) = &policy.status else {
        return false;
    };
    status.observed_generation.is_some()
        && status.observed_generation == policy.metadata.generation
        && ready(policy).is_some_and(|(status, _, _)| status == "True")
}

/// The Ready condition: (status, reason, message).
pub fn ready(policy: &IdentitySettingPolicy) -> Option<(&str, &str, &str)> {
    policy
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status.as_str(), c.reason.as_str(), c.message.as_str()))
}

/// One row per policy: namespace, name, Ready, reason, the server's ids, and the message
/// when not Ready.
pub fn policies(policies: &[IdentitySettingPolicy]) -> String {
    let rows: Vec<Vec<String>> = policies
        .iter()
        .map(|p| {
            let (status, reason, message) = ready(p).unwrap_or(("Unknown", "", ""));
            let ids: Vec<String> = p
                .status
                .iter()
                .flat_map(|s| &s.applied_settings)
                .map(|a| a.id.map_or_else(|| "?".to_owned(), |id| id.to_string()))
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
