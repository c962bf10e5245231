//! Request counters per endpoint and HTTP method, so tests can assert how often the operator
//! called the service (token caching, retries, no PUT when nothing drifted).
//!
//! Every request that reaches an endpoint's path is counted on arrival, before latency, faults,
//! authentication or validation — failed and faulted requests included.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;

/// The simulator's counted endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    /// `{prefix}/api/Setting` (GET and PUT).
    Setting,
    /// `{prefix}/connect/token` (client credentials).
    Token,
    /// `/api/account/authenticate` (legacy ROPC).
    Authenticate,
}

impl Endpoint {
    /// All endpoints, for reports.
    pub const ALL: [Endpoint; 3] = [Endpoint::Setting, Endpoint::Token, Endpoint::Authenticate];

    /// The name used in the admin API's JSON.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Setting => "setting",
            Endpoint::Token => "token",
            Endpoint::Authenticate => "authenticate",
        }
    }
}

/// Shared request counters; cloning is cheap and every clone sees the same numbers.
#[derive(Clone, Default)]
pub struct Counters {
    inner: Arc<Mutex<HashMap<(Endpoint, String), u64>>>,
}

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.snapshot()).finish()
    }
}

impl Counters {
    /// Requests seen for `endpoint` with `method` (`"GET"`, `"PUT"`, `"POST"`; case-insensitive).
    pub fn count(&self, endpoint: Endpoint, method: &str) -> u64 {
        let method = method.to_ascii_uppercase();
        self.lock().get(&(endpoint, method)).copied().unwrap_or(0)
    }

    /// Requests seen for `endpoint`, any method.
    pub fn total(&self, endpoint: Endpoint) -> u64 {
        self.lock()
            .iter()
            .filter(|((e, _), _)| *e == endpoint)
            .map(|(_, n)| n)
            .sum()
    }

    /// Sets every counter back to zero.
    pub fn reset(&self) {
        self.lock().clear();
    }

    /// Counts one request.
    pub(crate) fn record(&self, endpoint: Endpoint, method: &str) {
        *self
            .lock()
            .entry((endpoint, method.to_ascii_uppercase()))
            .or_insert(0) += 1;
    }

    /// All counters as `{"setting":{"GET":n,…},"token":{…},"authenticate":{…}}`.
    pub(crate) fn snapshot(&self) -> std::collections::BTreeMap<&'static str, CounterReport> {
        let map = self.lock();
        Endpoint::ALL
            .iter()
            .map(|e| {
                let by_method = map
                    .iter()
                    .filter(|((ep, _), _)| ep == e)
                    .map(|((_, m), n)| (m.clone(), *n))
                    .collect();
                let total = map
                    .iter()
                    .filter(|((ep, _), _)| ep == e)
                    .map(|(_, n)| n)
                    .sum();
                (e.name(), CounterReport { total, by_method })
            })
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(Endpoint, String), u64>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One endpoint's counters in the admin API.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CounterReport {
    total: u64,
    by_method: std::collections::BTreeMap<String, u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_endpoint_and_method_and_resets() {
        let c = Counters::default();
        let clone = c.clone();
        c.record(Endpoint::Setting, "GET");
        c.record(Endpoint::Setting, "get");
        clone.record(Endpoint::Setting, "PUT");
        c.record(Endpoint::Token, "POST");
        assert_eq!(c.count(Endpoint::Setting, "GET"), 2);
        assert_eq!(c.count(Endpoint::Setting, "put"), 1);
        assert_eq!(c.total(Endpoint::Setting), 3);
        assert_eq!(c.total(Endpoint::Authenticate), 0);
        let snap = serde_json::to_value(c.snapshot()).unwrap();
        assert_eq!(snap["setting"]["byMethod"]["GET"], 2);
        assert_eq!(snap["token"]["total"], 1);
        clone.reset();
        assert_eq!(c.total(Endpoint::Setting), 0);
    }
}
