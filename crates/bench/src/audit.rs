//! Request counts from a real API server's audit log: what one user (the operator's
//! ServiceAccount) asked of the server, as a cluster admin would count it. One JSON line per
//! completed request (the control plane's audit policy omits the other stages).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::Path;

use serde::Deserialize;

use crate::error::{BenchError, Result};
use crate::kube::ApiCalls;

/// The fields of an audit event the counts need.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuditEvent {
    #[serde(default)]
    stage: String,
    #[serde(default)]
    verb: String,
    #[serde(default)]
    user: User,
    #[serde(default)]
    object_ref: Option<ObjectRef>,
}

#[derive(Deserialize, Default)]
struct User {
    #[serde(default)]
    username: String,
}

#[derive(Deserialize)]
struct ObjectRef {
    #[serde(default)]
    resource: String,
    #[serde(default)]
    subresource: Option<String>,
}

/// The requests of `user` completed after byte `from` of the audit log, and where the log ends
/// now (the next count's `from`). Watches are not counted: they are one long request each.
pub fn count(log: &Path, from: u64, user: &str) -> Result<(ApiCalls, u64)> {
    let file_error = |source| BenchError::File {
        path: log.display().to_string(),
        source,
    };
    let mut file = std::fs::File::open(log).map_err(file_error)?;
    file.seek(SeekFrom::Start(from)).map_err(file_error)?;
    let mut reader = BufReader::new(file);
    let mut calls = ApiCalls::default();
    let mut by_resource: BTreeMap<String, u64> = BTreeMap::new();
    let mut end = from;
    let mut line = String::new();
    loop {
        line.clear();
        let read = reader.read_line(&mut line).map_err(file_error)?;
        // A line still being written is left for the next count.
        if read == 0 || !line.ends_with('\n') {
            break;
        }
        end += read as u64;
        let Ok(event) = serde_json::from_str::<AuditEvent>(&line) else {
            continue;
        };
        if event.stage != "ResponseComplete" || event.user.username != user {
            continue;
        }
        match event.verb.as_str() {
            "get" | "list" => calls.reads += 1,
            "create" | "update" | "patch" | "delete" | "deletecollection" => calls.writes += 1,
            _ => continue,
        }
        let resource = event
            .object_ref
            .map_or_else(String::new, |o| match o.subresource {
                Some(sub) => format!("{}/{sub}", o.resource),
                None => o.resource,
            });
        *by_resource
            .entry(format!("{resource} {}", event.verb))
            .or_default() += 1;
    }
    calls.by_resource = by_resource
        .iter()
        .map(|(key, n)| format!("{key}={n}"))
        .collect::<Vec<_>>()
        .join(", ");
    Ok((calls, end))
}

/// The log's length now: counts from here on are of what follows.
pub fn end_of(log: &Path) -> u64 {
    std::fs::metadata(log).map_or(0, |m| m.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_users_completed_reads_and_writes_from_an_offset() {
        let dir = std::env::temp_dir().join(format!("bench-audit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let log = dir.join("audit.log");
        let line = |user: &str, verb: &str, resource: &str, sub: Option<&str>| {
            let sub = sub.map_or(String::new(), |s| format!(r#","subresource":"{s}""#));
            format!(
                r#"{{"kind":"Event","stage":"ResponseComplete","verb":"{verb}","user":{{"username":"{user}"}},"objectRef":{{"resource":"{resource}"{sub}}}}}"#
            ) + "\n"
        };
        let before = line("op", "patch", "identitysettingpolicies", Some("status"));
        std::fs::write(&log, &before).expect("write");
        let from = end_of(&log);
        let after = [
            line("op", "patch", "identitysettingpolicies", Some("status")),
            line("op", "create", "events", None),
            line("op", "list", "secrets", None),
            line("op", "watch", "secrets", None),
            line("admin", "create", "identitysettingpolicies", None),
        ]
        .concat()
            + r#"{"kind":"Event","stage":"ResponseComp"#;
        std::fs::write(&log, format!("{before}{after}")).expect("write");
        let (calls, end) = count(&log, from, "op").expect("counted");
        assert_eq!((calls.reads, calls.writes), (1, 2));
        assert_eq!(
            calls.by_resource,
            "events create=1, identitysettingpolicies/status patch=1, secrets list=1"
        );
        assert!(end < end_of(&log), "the unfinished line is left for later");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
