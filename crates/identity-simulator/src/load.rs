//! The load the simulator saw: the most identity requests in flight at once and the most that
//! arrived within any one second, so a benchmark can show the operator stays within a request
//! budget (`GET /_simulator/load`, reset with the counters).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

/// Load figures; cloning is cheap and every clone sees the same numbers.
#[derive(Clone, Debug, Default)]
pub struct Load {
    inner: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    in_flight: u64,
    peak_in_flight: u64,
    /// Arrival times within the last second.
    recent: VecDeque<Instant>,
    peak_per_second: u64,
    requests: u64,
}

/// What `GET /_simulator/load` answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadReport {
    /// Identity requests (Setting, token, authenticate) since the last reset.
    pub requests: u64,
    /// The most of them in flight at once (from arrival until the answer is built).
    pub peak_in_flight: u64,
    /// The most that arrived within any sliding one-second window.
    pub peak_per_second: u64,
}

/// Counts one request as in flight until dropped.
pub(crate) struct InFlight {
    load: Load,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.load.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
    }
}

impl Load {
    /// A request arrived; it is in flight until the guard drops.
    pub(crate) fn arrive(&self) -> InFlight {
        let now = Instant::now();
        let mut state = self.lock();
        state.requests += 1;
        state.in_flight += 1;
        state.peak_in_flight = state.peak_in_flight.max(state.in_flight);
        while state
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            state.recent.pop_front();
        }
        state.recent.push_back(now);
        state.peak_per_second = state.peak_per_second.max(state.recent.len() as u64);
        InFlight { load: self.clone() }
    }

    /// The figures since the last reset.
    pub fn report(&self) -> LoadReport {
        let state = self.lock();
        LoadReport {
            requests: state.requests,
            peak_in_flight: state.peak_in_flight,
            peak_per_second: state.peak_per_second,
        }
    }

    /// Starts over (requests in flight stay counted as in flight).
    pub fn reset(&self) {
        let mut state = self.lock();
        let in_flight = state.in_flight;
        *state = State {
            in_flight,
            ..State::default()
        };
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn peaks_of_in_flight_and_per_second() {
        let load = Load::default();
        let a = load.arrive();
        let b = load.arrive();
        drop(a);
        let _c = load.arrive();
        drop(b);
        let r = load.report();
        assert_eq!((r.requests, r.peak_in_flight, r.peak_per_second), (3, 2, 3));
        load.reset();
        assert_eq!(load.report(), LoadReport::default());
    }
}
