//! Prometheus metrics, served as text on `/metrics`.
//!
//! Every label has a small, fixed set of values (a reason, a method, a status code) — never an
//! object name or an error text — so the series count stays bounded however many policies exist.

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

/// How many policies are watched, and how many are (not) ready: what the policy gauges show.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PolicyCounts {
    /// Every watched policy.
    pub watched: usize,
    /// With `Ready=True`.
    pub ready: usize,
    /// With a `Ready` condition that is not `True` (a policy never reconciled has none).
    pub not_ready: usize,
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
    watched: Gauge,
    queue_waiting: Gauge,
    queue_running: Gauge,
    queue_oldest_wait: Gauge<f64, AtomicU64>,
    queue_overdue: Gauge,
    organizations_over_budget: Gauge,
    budget_fitting_resync: Gauge<f64, AtomicU64>,
    queue_wait: Histogram,
}

/// The work queue as [`Metrics::record_queue`] is told it.
#[derive(Clone, Copy, Debug, Default)]
pub struct QueueFigures {
    /// Reconciles waiting for a slot.
    pub waiting: usize,
    /// Reconciles running.
    pub running: usize,
    /// Seconds the longest-waiting one has waited.
    pub oldest_wait_seconds: f64,
    /// Routine resyncs waiting longer than their resync interval.
    pub overdue: usize,
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
            "Reconciles in observe or plan mode that found settings differing from the policy",
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
        let watched = Gauge::default();
        registry.register(
            "policies_watched",
            "Policies in the watched namespaces (those not yet reconciled count here, not in identity_settings_policies)",
            watched.clone(),
        );
        let queue_waiting = Gauge::default();
        registry.register(
            "queue_waiting",
            "Reconciles due and waiting for a slot in the work queue",
            queue_waiting.clone(),
        );
        let queue_running = Gauge::default();
        registry.register("queue_running", "Reconciles running", queue_running.clone());
        let queue_oldest_wait = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "queue_oldest_wait_seconds",
            "How long the longest-waiting due reconcile has waited for a slot",
            queue_oldest_wait.clone(),
        );
        let queue_overdue = Gauge::default();
        registry.register(
            "queue_overdue",
            "Due resyncs that have waited longer than their policy's resync interval: the operator is not keeping up",
            queue_overdue.clone(),
        );
        let organizations_over_budget = Gauge::default();
        registry.register(
            "organizations_over_budget",
            "Organizations whose per-organization request budget (Automation Cloud's published limits) cannot check all of their policies within their resyncInterval",
            organizations_over_budget.clone(),
        );
        let budget_fitting_resync = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "budget_fitting_resync_seconds",
            "The resyncInterval that would fit the organization furthest over its budget (0 when all fit)",
            budget_fitting_resync.clone(),
        );
        let queue_wait = Histogram::new(exponential_buckets(0.001, 4.0, 10));
        registry.register(
            "queue_wait_seconds",
            "Time due reconciles waited for a slot",
            queue_wait.clone(),
        );
        Self {
            watched,
            queue_waiting,
            queue_running,
            queue_oldest_wait,
            queue_overdue,
            organizations_over_budget,
            budget_fitting_resync,
            queue_wait,
            registry,
            reconciles,
            reconcile_duration,
            drift_corrections,
            drift_detected,
            identity_requests,
            policies,
            last_sync,
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

    /// Counts a finished reconcile.
    pub fn record_reconcile(&self, reason: &str, ready: bool, drift_corrected: u64, drifted: bool) {
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
    }

    /// Sets the policy gauges from the index: watched, and by their `Ready` condition.
    pub fn record_policies(&self, counts: PolicyCounts) {
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.watched.set(count(counts.watched));
        for (ready, n) in [("true", counts.ready), ("false", counts.not_ready)] {
            self.policies
                .get_or_create(&ReadyLabels {
                    ready: ready.into(),
                })
                .set(count(n));
        }
    }

    /// Sets the work queue gauges.
    pub fn record_queue(&self, figures: QueueFigures) {
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.queue_waiting.set(count(figures.waiting));
        self.queue_running.set(count(figures.running));
        self.queue_oldest_wait.set(figures.oldest_wait_seconds);
        self.queue_overdue.set(count(figures.overdue));
    }

    /// Sets the budget gauges: how many organizations are over their budget, and the interval
    /// that would fit the one furthest over.
    pub fn record_budget(&self, over: usize, fits: std::time::Duration) {
        self.organizations_over_budget
            .set(i64::try_from(over).unwrap_or(i64::MAX));
        self.budget_fitting_resync.set(fits.as_secs_f64());
    }

    /// Records how long an admitted reconcile waited for its slot.
    pub fn record_queue_wait(&self, waited: std::time::Duration) {
        self.queue_wait.observe(waited.as_secs_f64());
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
        m.record_reconcile("Applied", true, 2, false);
        m.record_reconcile("ServerUnreachable", false, 0, false);
        m.record_policies(PolicyCounts {
            watched: 3,
            ready: 1,
            not_ready: 1,
        });
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
        assert!(
            text.contains("identity_settings_policies_watched 3"),
            "{text}"
        );
    }
}
