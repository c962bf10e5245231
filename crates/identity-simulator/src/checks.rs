//! When each scope was last checked: per partition (and user), how many Setting GETs it got,
//! when the first and last came and the longest gap between two of them, so a benchmark can tell
//! how long any policy waited for its drift check and which were never checked.
//!
//! Memory is a few integers per scope (no list of timestamps), whatever the number of GETs.
//! Only GETs that were answered from the store count (after latency, faults and
//! authentication): a check that failed did not look at the settings.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use serde::Serialize;

use identity_client::types::SettingScope;

/// Check tracking per scope, over a window that starts at creation or at the last
/// [`Checks::reset`]. Cheap to clone; every clone shares the same state.
#[derive(Clone, Debug)]
pub struct Checks {
    inner: Arc<Mutex<Window>>,
}

/// The current window.
#[derive(Debug)]
struct Window {
    start: Instant,
    scopes: HashMap<SettingScope, ScopeChecks>,
}

/// What is kept per scope, in milliseconds since the window's start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ScopeChecks {
    gets: u64,
    first_ms: u64,
    last_ms: u64,
    longest_gap_ms: u64,
}

impl Default for Checks {
    fn default() -> Self {
        Self {
            inner: Arc::new(Mutex::new(Window {
                start: Instant::now(),
                scopes: HashMap::new(),
            })),
        }
    }
}

impl Checks {
    /// Counts one answered Setting GET of `scope`, now.
    pub(crate) fn record(&self, scope: &SettingScope) {
        let mut window = self.lock();
        let now_ms = millis(window.start.elapsed());
        match window.scopes.get_mut(scope) {
            Some(c) => {
                c.gets += 1;
                c.longest_gap_ms = c.longest_gap_ms.max(now_ms.saturating_sub(c.last_ms));
                c.last_ms = now_ms;
            }
            None => {
                window.scopes.insert(
                    scope.clone(),
                    ScopeChecks {
                        gets: 1,
                        first_ms: now_ms,
                        last_ms: now_ms,
                        longest_gap_ms: 0,
                    },
                );
            }
        }
    }

    /// Forgets every scope and starts a new window now.
    pub fn reset(&self) {
        let mut window = self.lock();
        window.start = Instant::now();
        window.scopes.clear();
    }

    /// Every scope checked in the current window, ordered by scope.
    pub fn report(&self) -> ChecksReport {
        let window = self.lock();
        let mut scopes: Vec<ScopeReport> = window
            .scopes
            .iter()
            .map(|(scope, c)| ScopeReport {
                partition_global_id: scope.partition_global_id.clone(),
                user_id: scope.user_id.clone(),
                gets: c.gets,
                first_get_ms: c.first_ms,
                last_get_ms: c.last_ms,
                longest_gap_ms: c.longest_gap_ms,
            })
            .collect();
        scopes.sort_by(|a, b| {
            (&a.partition_global_id, &a.user_id).cmp(&(&b.partition_global_id, &b.user_id))
        });
        ChecksReport {
            window_ms: millis(window.start.elapsed()),
            scopes,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Window> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `GET /_simulator/checks`: the window's length so far and every scope checked in it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChecksReport {
    /// Milliseconds since the window started (creation or the last reset).
    pub window_ms: u64,
    /// Scopes with at least one answered GET in the window; a scope absent here was never
    /// checked.
    pub scopes: Vec<ScopeReport>,
}

/// One scope's checks; times in milliseconds since the window started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScopeReport {
    /// The partition.
    pub partition_global_id: String,
    /// The user, for user-level settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Answered Setting GETs.
    pub gets: u64,
    /// When the first came: how long the scope waited for its first check in the window.
    pub first_get_ms: u64,
    /// When the last came (`window_ms - last_get_ms` is the time since).
    pub last_get_ms: u64,
    /// The longest time between two consecutive GETs (0 with fewer than two).
    pub longest_gap_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_tracked_per_scope_and_reset_forgets_them() {
        let checks = Checks::default();
        let org = SettingScope::organization("p");
        let user = SettingScope::user("p", "u");
        checks.record(&org);
        std::thread::sleep(std::time::Duration::from_millis(30));
        checks.record(&org);
        checks.record(&user);
        let report = checks.report();
        assert_eq!(report.scopes.len(), 2);
        let o = &report.scopes[0];
        assert_eq!((o.user_id.as_deref(), o.gets), (None, 2));
        assert!(o.longest_gap_ms >= 30, "{o:?}");
        assert_eq!(o.longest_gap_ms, o.last_get_ms - o.first_get_ms);
        let u = &report.scopes[1];
        assert_eq!(
            (u.user_id.as_deref(), u.gets, u.longest_gap_ms),
            (Some("u"), 1, 0)
        );
        assert!(report.window_ms >= o.last_get_ms);
        checks.clone().reset();
        assert!(checks.report().scopes.is_empty());
    }
}
