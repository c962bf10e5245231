//! The identity service's published per-organization limits, enforced: at most so many Setting
//! GETs and PUTs of one organization (partition) in any sliding window, a 429 with
//! `Retry-After` beyond — as Automation Cloud answers (300 GET and 160 PUT/PATCH/DELETE per 5
//! minutes). Off unless a test turns it on; it also reports the most requests of one
//! organization and kind any window held, and how many it refused.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// Reads or writes, as the limits count them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// GET.
    Read,
    /// PUT.
    Write,
}

/// The limits, when enforced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The sliding window.
    pub window: Duration,
    /// GETs of one organization per window.
    pub reads: u64,
    /// PUTs of one organization per window.
    pub writes: u64,
}

/// What the limiter saw since it was turned on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OrganizationLoad {
    /// The most GETs of one organization within one window (refused ones not counted).
    pub peak_reads: u64,
    /// The most PUTs of one organization within one window (refused ones not counted).
    pub peak_writes: u64,
    /// Requests answered 429 for being over a limit.
    pub refused: u64,
}

/// The limiter; cloning is cheap and every clone sees the same state.
#[derive(Clone, Debug, Default)]
pub struct OrganizationLimiter {
    inner: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    limits: Option<Limits>,
    /// Accepted requests' arrival times within the last window, per organization and kind.
    recent: HashMap<(String, Kind), VecDeque<Instant>>,
    load: OrganizationLoad,
}

impl OrganizationLimiter {
    /// Enforces `limits` from now on (`None`: no more), with fresh figures.
    pub fn set(&self, limits: Option<Limits>) {
        let mut state = self.lock();
        *state = State {
            limits,
            ..State::default()
        };
    }

    /// What it saw since it was set.
    pub fn load(&self) -> OrganizationLoad {
        self.lock().load
    }

    /// Counts a request of `organization` of `kind`; `Err(retry_after)` when it is over the
    /// limit (it is then not counted as served).
    pub fn admit(&self, organization: &str, kind: Kind) -> Result<(), Duration> {
        let mut state = self.lock();
        let Some(limits) = state.limits else {
            return Ok(());
        };
        let limit = match kind {
            Kind::Read => limits.reads,
            Kind::Write => limits.writes,
        };
        let now = Instant::now();
        let recent = state
            .recent
            .entry((organization.to_ascii_lowercase(), kind))
            .or_default();
        while recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= limits.window)
        {
            recent.pop_front();
        }
        if recent.len() as u64 >= limit {
            let oldest = recent.front().copied().unwrap_or(now);
            let retry_after = limits.window.saturating_sub(now.duration_since(oldest));
            state.load.refused += 1;
            return Err(retry_after);
        }
        recent.push_back(now);
        let held = recent.len() as u64;
        let peak = match kind {
            Kind::Read => &mut state.load.peak_reads,
            Kind::Write => &mut state.load.peak_writes,
        };
        *peak = (*peak).max(held);
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn over_the_limit_of_one_organization_is_refused_until_the_window_moves() {
        let limiter = OrganizationLimiter::default();
        assert_eq!(limiter.admit("a", Kind::Read), Ok(()), "off by default");
        limiter.set(Some(Limits {
            window: Duration::from_secs(10),
            reads: 2,
            writes: 1,
        }));
        assert_eq!(limiter.admit("a", Kind::Read), Ok(()));
        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(
            limiter.admit("A", Kind::Read),
            Ok(()),
            "organizations by value"
        );
        assert_eq!(
            limiter.admit("a", Kind::Read),
            Err(Duration::from_secs(6)),
            "until the first read leaves the window"
        );
        assert_eq!(
            limiter.admit("b", Kind::Read),
            Ok(()),
            "another organization"
        );
        assert_eq!(
            limiter.admit("a", Kind::Write),
            Ok(()),
            "writes count apart"
        );
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(limiter.admit("a", Kind::Read), Ok(()));
        assert_eq!(
            limiter.load(),
            OrganizationLoad {
                peak_reads: 2,
                peak_writes: 1,
                refused: 1
            }
        );
    }
}
