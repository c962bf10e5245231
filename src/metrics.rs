//! Prometheus metrics, served as text on `/metrics`.
//!
//! Every label has a small, fixed set of values (a reason, a method, a status code) — never an
//! object name or an error text — so the series count stays bounded however many policies exist.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::identity::client::{Endpoint, RequestObserver, RequestOutcome};

/// Labels of the reconcile counter: the `Ready` reason the reconcile ended with.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// A condition reason such as `InSync` or `ServerUnreachable`.
    pub result: String,
}

/// Labels of the identity API request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `GET`, `PUT` or `POST`.
    pub method: String,
    /// `setting`, `token` or `authenticate`.
    pub endpoint: String,
    /// The HTTP status code, or `timeout` / `connection_error` / `error`.
    pub status: String,
}

/// Labels of the policies gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReadyLabels {
    /// `true` or `false`.
    pub ready: String,
}

/// All metrics of the operator, registered under the `identity_settings` prefix.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ResultLabels, Counter>,
    reconcile_duration: Histogram,
    drift_corrections: Counter,
    drift_detected: Counter,
    identity_requests: Family<RequestLabels, Counter>,
    policies: Family<ReadyLabels, Gauge>,
    last_sync: Gauge<f64, AtomicU64>,
    ready_by_policy: Mutex<HashMap<String, bool>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("identity_settings");
        let reconciles = Family::<ResultLabels, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciles by the Ready reason they ended with",
            reconciles.clone(),
        );
        let reconcile_duration = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        registry.register(
            "reconcile_duration_seconds",
            "Time one reconcile took",
            reconcile_duration.clone(),
        );
        let drift_corrections = Counter::default();
        registry.register(
            "drift_corrections",
            "Settings changed on the identity service behind the operator's back and written back",
            drift_corrections.clone(),
        );
        let drift_detected = Counter::default();
        registry.register(
            "drift_detected",
            "Reconciles in observe mode that found settings differing from the policy",
            drift_detected.clone(),
        );
        let identity_requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "identity_requests",
            "HTTP requests to the identity service by method, endpoint and status",
            identity_requests.clone(),
        );
        let policies = Family::<ReadyLabels, Gauge>::default();
        registry.register(
            "policies",
            "Policies by their Ready condition",
            policies.clone(),
        );
        let last_sync = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "last_sync_timestamp_seconds",
            "Unix time of the last reconcile that confirmed a policy in sync",
            last_sync.clone(),
        );
        Self {
            registry,
            reconciles,
            reconcile_duration,
            drift_corrections,
            drift_detected,
            identity_requests,
            policies,
            last_sync,
            ready_by_policy: Mutex::default(),
        }
    }
}

impl Metrics {
    /// Renders every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Starts timing a reconcile; the time is recorded when the guard drops.
    pub fn reconcile_timer(&self) -> ReconcileTimer<'_> {
        ReconcileTimer {
            histogram: &self.reconcile_duration,
            start: Instant::now(),
        }
    }

    /// Counts a finished reconcile and updates the per-state policy gauge.
    pub fn record_reconcile(
        &self,
        policy: &str,
        reason: &str,
        ready: bool,
        drift_corrected: u64,
        drifted: bool,
    ) {
        self.reconciles
            .get_or_create(&ResultLabels {
                result: reason.to_owned(),
            })
            .inc();
        self.drift_corrections.inc_by(drift_corrected);
        if drifted {
            self.drift_detected.inc();
        }
        if ready {
            let now = jiff::Timestamp::now().as_millisecond() as f64 / 1000.0;
            self.last_sync.set(now);
        }
        let mut states = self
            .ready_by_policy
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        states.insert(policy.to_owned(), ready);
        self.publish_states(&states);
    }

    /// Forgets a deleted policy.
    pub fn forget_policy(&self, policy: &str) {
        let mut states = self
            .ready_by_policy
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        states.remove(policy);
        self.publish_states(&states);
    }

    fn publish_states(&self, states: &HashMap<String, bool>) {
        let ready = states.values().filter(|r| **r).count() as i64;
        self.policies
            .get_or_create(&ReadyLabels {
                ready: "true".into(),
            })
            .set(ready);
        self.policies
            .get_or_create(&ReadyLabels {
                ready: "false".into(),
            })
            .set(states.len() as i64 - ready);
    }
}

impl RequestObserver for Metrics {
    fn observe(&self, method: &str, endpoint: Endpoint, outcome: RequestOutcome) {
        let labels = RequestLabels {
            method: method.to_owned(),
            endpoint: endpoint_name(endpoint).to_owned(),
            status: outcome_name(&outcome),
        };
        self.identity_requests.get_or_create(&labels).inc();
    }
}

fn endpoint_name(endpoint: Endpoint) -> &'static str {
    match endpoint {
        Endpoint::Setting => "setting",
        Endpoint::Token => "token",
        Endpoint::Authenticate => "authenticate",
    }
}

fn outcome_name(outcome: &RequestOutcome) -> String {
    match outcome {
        RequestOutcome::Status(code) => code.to_string(),
        RequestOutcome::Timeout => "timeout".into(),
        RequestOutcome::ConnectionError => "connection_error".into(),
        RequestOutcome::Other => "error".into(),
    }
}

/// Records a reconcile's duration when dropped, whichever way the reconcile returns.
pub struct ReconcileTimer<'a> {
    histogram: &'a Histogram,
    start: Instant,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.histogram.observe(self.start.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_the_policy_gauge() {
        let m = Metrics::default();
        m.record_reconcile("ns/a", "Applied", true, 2, false);
        m.record_reconcile("ns/b", "ServerUnreachable", false, 0, false);
        {
            let _t = m.reconcile_timer();
        }
        m.observe("PUT", Endpoint::Setting, RequestOutcome::Status(200));
        let text = m.render();
        assert!(
            text.contains(r#"identity_settings_reconciles_total{result="Applied"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("identity_settings_drift_corrections_total 2"),
            "{text}"
        );
        assert!(
            text.contains(r#"identity_settings_policies{ready="true"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"identity_settings_policies{ready="false"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"identity_settings_identity_requests_total{method="PUT",endpoint="setting",status="200"} 1"#), "{text}");
        assert!(
            text.contains("identity_settings_reconcile_duration_seconds_count 1"),
            "{text}"
        );
        m.forget_policy("ns/b");
        assert!(
            m.render()
                .contains(r#"identity_settings_policies{ready="false"} 0"#)
        );
    }
}
