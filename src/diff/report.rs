//! What `diff` prints: text for people, one JSON document for pipelines, and the exit status.

use std::fmt::Write as _;

use serde::Serialize;

use crate::api::{ChangeKind, PlannedChange};

use super::check::PolicyDiff;

/// Exit status: every policy in sync.
pub const EXIT_IN_SYNC: u8 = 0;
/// Exit status: an error (a policy not compared, a bad manifest, no policy).
pub const EXIT_ERROR: u8 = 1;
/// Exit status: some setting would change.
pub const EXIT_DRIFT: u8 = 2;

/// The JSON document `--output json` prints.
#[derive(Debug, Serialize)]
pub struct Report {
    /// One entry per policy, sorted by namespace and name.
    pub policies: Vec<PolicyReport>,
    /// The counts.
    pub summary: Summary,
}

/// One policy's entry.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyReport {
    /// The policy's namespace.
    pub namespace: String,
    /// The policy's name.
    pub name: String,
    /// The identity base URL.
    pub server: String,
    /// The organization.
    pub partition_global_id: String,
    /// The user, for user-level settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// True when the service holds every value of the policy (false after an error).
    pub in_sync: bool,
    /// What a sync would write; values of secret keys are never included.
    pub changes: Vec<PlannedChange>,
    /// Suspension and observe mode, which the operator would honour.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Why the policy could not be compared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How many settings the policy manages (shown in text only).
    #[serde(skip)]
    pub settings: usize,
}

/// How many policies ended which way.
#[derive(Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Policies compared or tried.
    pub policies: usize,
    /// In sync.
    pub in_sync: usize,
    /// With changes.
    pub drifted: usize,
    /// Not compared.
    pub errors: usize,
}

impl Report {
    /// The report of `diffs`, in the order given.
    pub fn new(diffs: Vec<PolicyDiff>) -> Self {
        let policies: Vec<PolicyReport> = diffs.into_iter().map(PolicyReport::from).collect();
        let mut summary = Summary {
            policies: policies.len(),
            ..Summary::default()
        };
        for p in &policies {
            match (&p.error, p.in_sync) {
                (Some(_), _) => summary.errors += 1,
                (None, true) => summary.in_sync += 1,
                (None, false) => summary.drifted += 1,
            }
        }
        Self { policies, summary }
    }

    /// 1 when a policy could not be compared, else 2 when something would change, else 0.
    pub fn exit_code(&self) -> u8 {
        if self.summary.errors > 0 {
            EXIT_ERROR
        } else if self.summary.drifted > 0 {
            EXIT_DRIFT
        } else {
            EXIT_IN_SYNC
        }
    }

    /// The report as one JSON document.
    pub fn json(&self) -> String {
        // Plain strings, numbers and booleans only: serialising cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The report as text: per policy a header and one line per change, then the counts.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for p in &self.policies {
            let user = p
                .user_id
                .as_ref()
                .map(|u| format!(", user {u}"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "identitysettingpolicy {}/{} ({}, partition {}{user}):",
                p.namespace, p.name, p.server, p.partition_global_id
            );
            for note in &p.notes {
                let _ = writeln!(out, "  note: {note}");
            }
            if let Some(error) = &p.error {
                let _ = writeln!(out, "  error: {error}");
            } else if p.in_sync {
                let _ = writeln!(out, "  in sync ({} settings)", p.settings);
            }
            for change in &p.changes {
                let _ = writeln!(out, "  {}", change_line(change));
            }
        }
        let s = &self.summary;
        let _ = writeln!(
            out,
            "{} {}: {} in sync, {} drifted, {} {}",
            s.policies,
            plural(s.policies, "policy", "policies"),
            s.in_sync,
            s.drifted,
            s.errors,
            plural(s.errors, "error", "errors"),
        );
        out
    }
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

/// `~ Key: "old" → "new"`, `+ Key: (not set) → "new"`, or the value-less form of a secret key.
fn change_line(change: &PlannedChange) -> String {
    const HIDDEN: &str = "(value from a Secret, not shown)";
    let key = &change.key;
    match (change.change, change.secret) {
        (ChangeKind::Update, true) => format!("~ {key}: changed {HIDDEN}"),
        (ChangeKind::Create, true) => format!("+ {key}: (not set) → {HIDDEN}"),
        (kind, false) => {
            let sign = if kind == ChangeKind::Create { '+' } else { '~' };
            let quoted = |v: &Option<String>| v.as_deref().map_or("(not set)".to_owned(), quote);
            format!(
                "{sign} {key}: {} → {}",
                quoted(&change.current),
                quoted(&change.desired)
            )
        }
    }
}

/// `value` in double quotes, on one line: control characters (line breaks, terminal escapes)
/// are escaped, quotes are not (JSON values stay readable; `--output json` is exact).
fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.push('"');
    out
}

impl From<PolicyDiff> for PolicyReport {
    fn from(diff: PolicyDiff) -> Self {
        let (in_sync, changes, error) = match diff.result {
            Ok(changes) => (changes.is_empty(), changes, None),
            Err(message) => (false, Vec::new(), Some(message)),
        };
        let (namespace, name) = diff.key;
        Self {
            namespace,
            name,
            server: diff.server,
            partition_global_id: diff.partition_global_id,
            user_id: diff.user_id,
            in_sync,
            changes,
            notes: diff.notes,
            error,
            settings: diff.settings,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diff(name: &str, result: Result<Vec<PlannedChange>, String>) -> PolicyDiff {
        PolicyDiff {
            key: ("ns".into(), name.into()),
            server: "https://x/identity_".into(),
            partition_global_id: "p".into(),
            user_id: (name == "u").then(|| "user-1".to_owned()),
            settings: 3,
            notes: Vec::new(),
            result,
        }
    }

    fn change(
        key: &str,
        kind: ChangeKind,
        current: Option<&str>,
        desired: Option<&str>,
        secret: bool,
    ) -> PlannedChange {
        PlannedChange {
            key: key.into(),
            change: kind,
            current: current.map(Into::into),
            desired: desired.map(Into::into),
            secret,
        }
    }

    #[test]
    fn text_shows_one_line_per_change_and_the_exit_code_follows_the_worst_policy() {
        let drifted = diff(
            "u",
            Ok(vec![
                change("A", ChangeKind::Update, Some("0"), Some("90"), false),
                change("B", ChangeKind::Create, None, Some("x"), false),
                change("Email.Smtp.Password", ChangeKind::Update, None, None, true),
                change("S", ChangeKind::Create, None, None, true),
            ]),
        );
        let report = Report::new(vec![diff("a", Ok(vec![])), drifted]);
        assert_eq!(report.exit_code(), EXIT_DRIFT);
        assert_eq!(
            report.text(),
            "identitysettingpolicy ns/a (https://x/identity_, partition p):\n  in sync (3 settings)\n\
             identitysettingpolicy ns/u (https://x/identity_, partition p, user user-1):\n\
             \x20 ~ A: \"0\" → \"90\"\n  + B: (not set) → \"x\"\n\
             \x20 ~ Email.Smtp.Password: changed (value from a Secret, not shown)\n\
             \x20 + S: (not set) → (value from a Secret, not shown)\n\
             2 policies: 1 in sync, 1 drifted, 0 errors\n"
        );
        let failed = Report::new(vec![diff("a", Err("boom".into())), diff("b", Ok(vec![]))]);
        assert_eq!(failed.exit_code(), EXIT_ERROR);
        assert!(failed.text().contains("  error: boom\n"));
        assert_eq!(
            Report::new(vec![diff("a", Ok(vec![]))]).exit_code(),
            EXIT_IN_SYNC
        );
    }

    #[test]
    fn values_stay_on_one_line_and_json_values_readable() {
        let line = change_line(&change(
            "J",
            ChangeKind::Update,
            Some("{\"A\":1}"),
            Some("two\nlines\u{1b}[31m"),
            false,
        ));
        assert_eq!(line, r#"~ J: "{"A":1}" → "two\nlines\u{1b}[31m""#);
    }

    #[test]
    fn json_has_every_field_a_pipeline_reads() {
        let report = Report::new(vec![diff("a", Err("boom".into()))]);
        let json: serde_json::Value = serde_json::from_str(&report.json()).expect("json");
        assert_eq!(
            json,
            serde_json::json!({
                "policies": [{"namespace": "ns", "name": "a", "server": "https://x/identity_",
                    "partitionGlobalId": "p", "inSync": false, "changes": [], "error": "boom"}],
                "summary": {"policies": 1, "inSync": 0, "drifted": 0, "errors": 1}
            })
        );
    }
}
