//! One request budget per identity server, shared by every client of its [`Connection`]: at most
//! so many requests per second and in flight, and a pause for everyone when the server answers
//! 429. Without it, thousands of policies of one server would each honour a 429 on their own and
//! keep the server busy with requests it already refused.
//!
//! [`Connection`]: crate::client::Connection

use std::collections::HashMap;
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
    /// Setting requests per organization and kind (reads, writes) over a window, besides the
    /// server's limits above; `None`: none.
    pub per_organization: Option<WindowLimits>,
}

/// At most so many Setting reads (GET) and writes (PUT) of one organization per window: the
/// shape of the identity service's published limits (Automation Cloud: 300 GET and 160
/// PUT/PATCH/DELETE per organization per 5 minutes, 429 beyond). Requests of one organization
/// and kind start at least `window / limit` apart, so no window holds more than the limit (and
/// one: the request at its very start).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WindowLimits {
    /// The window the limits count in.
    pub window: Duration,
    /// Reads (GET) per window; 0: no limit.
    pub reads: u32,
    /// Writes (PUT, PATCH, DELETE) per window; 0: no limit.
    pub writes: u32,
}

impl WindowLimits {
    /// These limits scaled by `share` (0 to 1: the part the operator may use, leaving the rest
    /// to the organization's own users and tools), each at least 1.
    pub fn share(self, share: f64) -> WindowLimits {
        let scale = |n: u32| {
            if n == 0 {
                return 0;
            }
            let scaled = (f64::from(n) * share.clamp(0.0, 1.0)).floor();
            // In 1..=n: a float in range converts exactly.
            (scaled as u32).clamp(1, n)
        };
        WindowLimits {
            window: self.window,
            reads: scale(self.reads),
            writes: scale(self.writes),
        }
    }
}

/// What a Setting request does, as the published limits count it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// GET.
    Read,
    /// PUT, PATCH or DELETE.
    Write,
}

/// One spaced budget per (organization, kind) under [`WindowLimits`], made on first use. A
/// budget whose next start is already due holds nothing a fresh one would not, so
/// [`OrganizationBudgets::prune`] drops it: the map holds only organizations used within the
/// last interval.
#[derive(Debug)]
pub struct OrganizationBudgets {
    limits: WindowLimits,
    budgets: Mutex<HashMap<OrganizationKey, Arc<RequestBudget>>>,
}

/// An organization (its partition, lower case) and a kind of request.
type OrganizationKey = (Box<str>, RequestKind);

impl OrganizationBudgets {
    /// No budget yet; each is made on first use.
    pub fn new(limits: WindowLimits) -> Self {
        Self {
            limits,
            budgets: Mutex::default(),
        }
    }

    /// The budget of `organization`'s requests of `kind`, or `None` when that kind has no
    /// limit.
    pub fn of(&self, organization: &str, kind: RequestKind) -> Option<Arc<RequestBudget>> {
        let per_window = match kind {
            RequestKind::Read => self.limits.reads,
            RequestKind::Write => self.limits.writes,
        };
        if per_window == 0 || self.limits.window.is_zero() {
            return None;
        }
        let mut budgets = self.budgets.lock().unwrap_or_else(PoisonError::into_inner);
        let budget = budgets
            .entry((organization.to_ascii_lowercase().into(), kind))
            .or_insert_with(|| {
                Arc::new(RequestBudget::new(BudgetLimits {
                    requests_per_second: Some(
                        f64::from(per_window) / self.limits.window.as_secs_f64(),
                    ),
                    ..BudgetLimits::default()
                }))
            });
        Some(budget.clone())
    }

    /// Drops the budgets nobody holds whose next start is due (a fresh one would be the same).
    pub fn prune(&self) {
        let now = Instant::now();
        self.budgets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, budget| Arc::strong_count(budget) > 1 || budget.next_start() > now);
    }

    /// How many organizations' budgets are held.
    pub fn len(&self) -> usize {
        self.budgets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
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

    /// When the next request may start at the configured rate (now or earlier: at once).
    fn next_start(&self) -> Instant {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .next_at
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
            ..BudgetLimits::default()
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
            max_in_flight: Some(2),
            ..BudgetLimits::default()
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

    /// Automation Cloud's published limits.
    const PUBLISHED: WindowLimits = WindowLimits {
        window: Duration::from_secs(300),
        reads: 300,
        writes: 160,
    };

    #[test]
    fn a_share_of_the_published_limits_keeps_at_least_one_of_each() {
        assert_eq!(
            PUBLISHED.share(0.5),
            WindowLimits {
                window: Duration::from_secs(300),
                reads: 150,
                writes: 80
            }
        );
        assert_eq!(
            PUBLISHED.share(2.0),
            PUBLISHED,
            "clamped to the whole limit"
        );
        let tiny = PUBLISHED.share(0.0001);
        assert_eq!((tiny.reads, tiny.writes), (1, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn no_five_minute_window_holds_more_than_an_organizations_share() {
        let organizations = OrganizationBudgets::new(PUBLISHED.share(0.5));
        let reads = organizations
            .of("Org-A", RequestKind::Read)
            .expect("limited");
        let start = Instant::now();
        let mut starts = Vec::new();
        for _ in 0..400 {
            reads.admit(far(), LONG).await.map(drop).expect("admitted");
            starts.push(start.elapsed());
        }
        let window = Duration::from_secs(300);
        let most = starts
            .iter()
            .map(|from| {
                starts
                    .iter()
                    .filter(|t| *t >= from && **t < *from + window)
                    .count()
            })
            .max();
        assert_eq!(
            most,
            Some(150),
            "150 of the published 300 GETs per 5 minutes"
        );
        // Another organization, and the same one's writes, are not held up by these reads.
        let other = Instant::now();
        let b = organizations
            .of("org-b", RequestKind::Read)
            .expect("limited");
        b.admit(far(), LONG).await.map(drop).expect("admitted");
        let writes = organizations
            .of("ORG-A", RequestKind::Write)
            .expect("limited");
        writes.admit(far(), LONG).await.map(drop).expect("admitted");
        assert_eq!(other.elapsed(), Duration::ZERO);
        assert!(
            Arc::ptr_eq(
                &reads,
                &organizations
                    .of("ORG-A", RequestKind::Read)
                    .expect("limited")
            ),
            "organizations by value, whatever their case"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_organization_over_its_share_fails_fast_and_idle_ones_are_dropped() {
        let organizations = OrganizationBudgets::new(PUBLISHED.share(0.5));
        let writes = organizations.of("a", RequestKind::Write).expect("limited");
        writes.admit(far(), LONG).await.map(drop).expect("first");
        // The next write of this organization may start 300 s / 80 = 3.75 s later.
        let soon = Instant::now() + Duration::from_secs(1);
        let refused = writes.admit(soon, LONG).await.map(drop).unwrap_err();
        assert!(!refused.server_asked);
        assert!(refused.wait > Duration::from_secs(3), "{:?}", refused.wait);
        drop(writes);
        organizations.prune();
        assert_eq!(organizations.len(), 1, "its next write is not due yet");
        tokio::time::advance(Duration::from_secs(4)).await;
        organizations.prune();
        assert!(
            organizations.is_empty(),
            "due again: a fresh budget is the same"
        );
        assert!(
            OrganizationBudgets::new(WindowLimits {
                writes: 0,
                ..PUBLISHED
            })
            .of("a", RequestKind::Write)
            .is_none(),
            "0: no limit"
        );
    }
}
