//! Request counters by verb and by resource, so a benchmark can tell how many API calls an
//! operator made without keeping a log of every request (the request log is for tests).
//!
//! Counting is one small map update per request; the maps hold one entry per verb and per
//! resource/verb pair seen, so their size does not grow with the number of requests.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{Value, json};

use super::RecordedRequest;

/// Counts of the requests served, by verb and by resource. Cheap to clone; every clone shares
/// the same numbers.
#[derive(Clone, Debug, Default)]
pub struct RequestCounters {
    inner: Arc<Mutex<Counts>>,
}

#[derive(Debug, Default)]
struct Counts {
    by_verb: BTreeMap<String, u64>,
    by_resource: BTreeMap<String, u64>,
}

impl RequestCounters {
    /// Counts one request: under its verb, and under `{resource}/{verb}` (or
    /// `{resource}/{subresource}/{verb}`) when it addressed a resource. Discovery paths count
    /// by verb only.
    pub(crate) fn record(&self, request: &RecordedRequest) {
        let mut counts = self.lock();
        *counts.by_verb.entry(request.verb.clone()).or_insert(0) += 1;
        if request.resource.is_empty() {
            return;
        }
        let key = match &request.subresource {
            Some(sub) => format!("{}/{sub}/{}", request.resource, request.verb),
            None => format!("{}/{}", request.resource, request.verb),
        };
        *counts.by_resource.entry(key).or_insert(0) += 1;
    }

    /// Requests served with `verb` (`get`, `list`, `watch`, `create`, `patch`, ...).
    pub fn verb(&self, verb: &str) -> u64 {
        self.lock().by_verb.get(verb).copied().unwrap_or(0)
    }

    /// Requests for `key`, e.g. `secrets/get` or `identitysettingpolicies/status/patch`.
    pub fn resource(&self, key: &str) -> u64 {
        self.lock().by_resource.get(key).copied().unwrap_or(0)
    }

    /// Sets every counter back to zero.
    pub fn reset(&self) {
        *self.lock() = Counts::default();
    }

    /// `{"byVerb":{"get":n,...},"byResource":{"secrets/get":n,...}}`, as the admin route
    /// answers.
    pub fn snapshot(&self) -> Value {
        let counts = self.lock();
        json!({
            "byVerb": counts.by_verb,
            "byResource": counts.by_resource,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(verb: &str, resource: &str, subresource: Option<&str>) -> RecordedRequest {
        RecordedRequest {
            verb: verb.into(),
            group: String::new(),
            version: "v1".into(),
            resource: resource.into(),
            subresource: subresource.map(Into::into),
            namespace: None,
            name: None,
            patch_type: None,
            field_manager: None,
            user_agent: None,
            status: 200,
        }
    }

    #[test]
    fn counts_by_verb_and_resource_and_resets() {
        let c = RequestCounters::default();
        c.record(&request("get", "secrets", None));
        c.record(&request("get", "", None));
        c.record(&request("patch", "widgets", Some("status")));
        assert_eq!(c.verb("get"), 2);
        assert_eq!(c.resource("secrets/get"), 1);
        assert_eq!(c.resource("widgets/status/patch"), 1);
        let snap = c.snapshot();
        assert_eq!(snap["byVerb"]["patch"], 1);
        assert_eq!(snap["byResource"].as_object().map(|m| m.len()), Some(2));
        c.clone().reset();
        assert_eq!(c.verb("get"), 0);
    }
}
