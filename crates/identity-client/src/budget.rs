//! One request budget per identity server, shared by every client of its [`Connection`]: at most
//! so many requests per second and in flight, and a pause for everyone when the server answers
//! 429. Without it, thousands of policies of one server would each honour a 429 on their own and
//! keep the server busy with requests it already refused.
//!
//! [`Connection`]: crate::client::Connection

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// The limits of a [`RequestBudget`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BudgetLimits {
    /// Requests started per second, at most: starts are at least `1/rate` apart, so no
    /// one-second window holds more than `rate` of them; `None`: no limit.
    pub requests_per_second: Option<f64>,
    /// Requests in flight at once, at most; `None`: no limit.
    pub max_in_flight: Option<usize>,
}

/// How long to pause after a 429 without `Retry-After`.
pub const DEFAULT_PAUSE: Duration = Duration::from_secs(5);

/// The budget did not allow a request before the caller's deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OverBudget {
    /// How long until the budget would have allowed it.
    pub wait: Duration,
    /// True when the wait is the server's own 429 pause (else the configured rate or
    /// in-flight limit).
    pub server_asked: bool,
}

/// Admission to one identity server. Cheap to share (`Arc`).
#[derive(Debug)]
pub struct RequestBudget {
    interval: Option<Duration>,
    in_flight: Option<Arc<Semaphore>>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// When the next request may start at the configured rate.
    next_at: Instant,
    /// No request starts before this (the server's last 429).
    paused_until: Option<Instant>,
}

/// Held while a request is in flight.
#[derive(Debug)]
pub struct Admission {
    _permit: Option<OwnedSemaphorePermit>,
}

impl RequestBudget {
    /// A budget with these limits (a rate of zero or less is no limit; in flight at least 1).
    pub fn new(limits: BudgetLimits) -> Self {
        let interval = limits
            .requests_per_second
            .filter(|r| r.is_finite() && *r > 0.0)
            .map(|r| Duration::from_secs_f64(1.0 / r));
        Self {
            interval,
            in_flight: limits
                .max_in_flight
                .map(|n| Arc::new(Semaphore::new(n.max(1)))),
            state: Mutex::new(State {
                next_at: Instant::now(),
                paused_until: None,
            }),
        }
    }

    /// Waits until a request may start, at most until `deadline`. Fails at once, without
    /// waiting, when the rate would keep it waiting past `deadline`, or the server's pause would
    /// last longer than `max_pause` (a caller should not hold its place that long).
    pub async fn admit(
        &self,
        deadline: Instant,
        max_pause: Duration,
    ) -> Result<Admission, OverBudget> {
        let start_at = self.reserve(deadline, max_pause)?;
        tokio::time::sleep_until(start_at).await;
        let permit = match &self.in_flight {
            None => None,
            Some(semaphore) => {
                match tokio::time::timeout_at(deadline, semaphore.clone().acquire_owned()).await {
                    Ok(Ok(permit)) => Some(permit),
                    // Never closed; a timeout means the server is saturated by our own requests.
                    _ => {
                        return Err(OverBudget {
                            wait: Duration::ZERO,
                            server_asked: false,
                        });
                    }
                }
            }
        };
        Ok(Admission { _permit: permit })
    }

    /// Takes the next start time within the rate, unless it would be after `deadline`.
    fn reserve(&self, deadline: Instant, max_pause: Duration) -> Result<Instant, OverBudget> {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let paused = state.paused_until.filter(|until| *until > now);
        if let Some(until) = paused
            && (until > deadline || until - now > max_pause)
        {
            return Err(OverBudget {
                wait: until - now,
                server_asked: true,
            });
        }
        let earliest = paused.unwrap_or(now);
        let Some(interval) = self.interval else {
            return Ok(earliest);
        };
        let start_at = state.next_at.max(earliest);
        if start_at > deadline {
            return Err(OverBudget {
                wait: start_at - now,
                server_asked: false,
            });
        }
        state.next_at = start_at + interval;
        Ok(start_at)
    }

    /// The server answered 429: no request of this budget starts for `retry_after` (or
    /// [`DEFAULT_PAUSE`]) — a longer pause already in force stays.
    pub fn pause(&self, retry_after: Option<Duration>) {
        let wait = retry_after
            .unwrap_or(DEFAULT_PAUSE)
            .min(crate::retry::MAX_SERVER_DELAY);
        let now = Instant::now();
        let until = now.checked_add(wait).unwrap_or(now);
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.paused_until = Some(state.paused_until.map_or(until, |p| p.max(until)));
    }

    /// How long the server's pause still lasts, if one is in force.
    pub fn paused_for(&self) -> Option<Duration> {
        let now = Instant::now();
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.paused_until.filter(|u| *u > now).map(|u| u - now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(3600);

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    #[tokio::test]
    async fn the_rate_spaces_requests_so_no_second_holds_more() {
        let budget = RequestBudget::new(BudgetLimits {
            requests_per_second: Some(100.0),
            max_in_flight: None,
        });
        let start = Instant::now();
        let mut starts = Vec::new();
        for _ in 0..50 {
            let _a = budget.admit(far(), LONG).await;
            starts.push(start.elapsed());
        }
        // Request i (from 0) never starts before i × 10 ms: no second holds more than 100.
        for (i, t) in starts.iter().enumerate() {
            let earliest = Duration::from_millis(10) * u32::try_from(i).unwrap_or(0);
            assert!(*t + Duration::from_millis(1) >= earliest, "{i} at {t:?}");
        }
    }

    #[tokio::test]
    async fn a_429_pauses_every_caller_and_a_short_deadline_fails_at_once() {
        let budget = RequestBudget::new(BudgetLimits::default());
        budget.pause(Some(Duration::from_millis(300)));
        let soon = Instant::now() + Duration::from_millis(100);
        let refused = budget.admit(soon, LONG).await.map(|_| ()).unwrap_err();
        assert!(refused.server_asked);
        assert!(refused.wait > Duration::from_millis(150));
        let start = Instant::now();
        let _a = budget.admit(far(), LONG).await;
        assert!(
            start.elapsed() >= Duration::from_millis(250),
            "waited out the pause"
        );
        // A pause longer than the caller will wait fails at once, whatever the deadline.
        budget.pause(Some(Duration::from_secs(10)));
        let refused = budget
            .admit(far(), Duration::from_secs(5))
            .await
            .map(|_| ());
        assert!(refused.is_err_and(|o| o.server_asked));
        // A shorter pause does not shorten a longer one.
        budget.pause(Some(Duration::from_secs(10)));
        budget.pause(Some(Duration::from_secs(1)));
        assert!(budget.paused_for() > Some(Duration::from_secs(9)));
    }

    #[tokio::test]
    async fn in_flight_is_bounded() {
        let budget = RequestBudget::new(BudgetLimits {
            requests_per_second: None,
            max_in_flight: Some(2),
        });
        let a = budget.admit(far(), LONG).await;
        let b = budget.admit(far(), LONG).await;
        let soon = Instant::now() + Duration::from_millis(100);
        assert!(
            budget.admit(soon, LONG).await.is_err(),
            "a third waits and times out"
        );
        drop(a);
        assert!(budget.admit(far(), LONG).await.is_ok());
        drop(b);
    }
}
