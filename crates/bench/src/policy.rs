//! What the benchmark reads of a policy: its generation and its `Ready` condition. Every other
//! field is skipped while parsing, which keeps listing 10 000 policies cheap.

use serde::Deserialize;

/// The reason the operator writes after writing back values changed on the server
/// (`src/reconcile/status.rs`, `reason::DRIFT_CORRECTED`).
pub const DRIFT_CORRECTED: &str = "DriftCorrected";

/// A policy as listed.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Policy {
    /// The name, resource version and generation.
    #[serde(default)]
    pub metadata: Metadata,
    /// What the operator last wrote (none before its first reconcile).
    #[serde(default)]
    pub status: Option<Status>,
}

/// The metadata fields used.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    /// The name.
    #[serde(default)]
    pub name: String,
    /// The version of the object as stored (where a watch goes on from).
    #[serde(default)]
    pub resource_version: Option<String>,
    /// The spec's generation.
    #[serde(default)]
    pub generation: Option<i64>,
}

/// The status fields used.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// The generation the operator last reconciled.
    #[serde(default)]
    pub observed_generation: Option<i64>,
    /// The conditions (the operator maintains `Ready`).
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// One condition.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Condition {
    /// The type, e.g. `Ready`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// `True`, `False` or `Unknown`.
    #[serde(default)]
    pub status: String,
    /// The reason, e.g. `Applied`.
    #[serde(default)]
    pub reason: String,
}

/// A list answer.
#[derive(Debug, Default, Deserialize)]
pub struct PolicyList {
    /// The list's resource version (where a watch of the changes after it starts).
    #[serde(default)]
    pub metadata: ListMetadata,
    /// The policies.
    #[serde(default)]
    pub items: Vec<Policy>,
}

impl Policy {
    /// The `Ready` condition, if any.
    pub fn ready(&self) -> Option<&Condition> {
        self.status
            .as_ref()?
            .conditions
            .iter()
            .find(|c| c.kind == "Ready")
    }

    /// `Ready=True` for the current generation: the operator has applied this spec.
    pub fn converged(&self) -> bool {
        self.ready().is_some_and(|c| c.status == "True")
            && self.status.as_ref().and_then(|s| s.observed_generation) == self.metadata.generation
            && self.metadata.generation.is_some()
    }

    /// `Ready=True` with `reason`.
    pub fn ready_with(&self, reason: &str) -> bool {
        self.ready()
            .is_some_and(|c| c.status == "True" && c.reason == reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(status: &str) -> Policy {
        serde_json::from_str(&format!(
            r#"{{"metadata":{{"name":"p","generation":2}},"spec":{{"x":1}}{status}}}"#
        ))
        .expect("parses")
    }

    #[test]
    fn converged_needs_ready_true_for_the_current_generation() {
        assert!(!parse("").converged());
        let ready = r#","status":{"observedGeneration":2,"conditions":[{"type":"Ready","status":"True","reason":"DriftCorrected"}]}"#;
        assert!(parse(ready).converged());
        assert!(parse(ready).ready_with(DRIFT_CORRECTED));
        assert!(
            !parse(&ready.replace("\"observedGeneration\":2", "\"observedGeneration\":1"))
                .converged()
        );
        assert!(!parse(&ready.replace("True", "False")).converged());
    }
}

/// The list metadata used.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListMetadata {
    /// The resource version of the list.
    #[serde(default)]
    pub resource_version: String,
}

/// One event of a watch of policies (`ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK`, `ERROR`).
#[derive(Debug, Deserialize)]
pub struct WatchEvent {
    /// The event type.
    #[serde(rename = "type")]
    pub kind: String,
    /// The policy (a Status for `ERROR`; only a resource version for `BOOKMARK`).
    #[serde(default)]
    pub object: Policy,
}
