//! When to try a transient failure again and how long to wait: exponential backoff with jitter,
//! `Retry-After`, and bounds on attempts and elapsed time. The decisions are pure functions; the
//! loop that sleeps is [`run`].
//!
//! A server's `Retry-After` is honoured, never shortened: when it fits (at most `max_backoff` and
//! within the remaining `max_elapsed`), the next attempt waits at least that long; when it does
//! not, the call ends with the error, which carries the `Retry-After` for the caller (the
//! controller requeues after it).

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use super::error::IdentityError;

/// How the client retries transient failures (429, 5xx, timeouts, broken connections) inside one
/// call, before reporting them to the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Most HTTP attempts per call, the first one included (default 5; 0 is treated as 1).
    pub max_attempts: u32,
    /// Delay before the first retry, doubled for each further one (default 200 ms).
    pub initial_backoff: Duration,
    /// Longest single delay (default 5 s). A server's `Retry-After` longer than this is not
    /// waited for inside the call: the call ends with the error instead.
    pub max_backoff: Duration,
    /// Longest time one call may take, retries and waits included (default 30 s). No retry is
    /// started that could not finish in time, and the last attempt's timeout is shortened to fit.
    /// Should be 2–3 × the client's per-attempt timeout (10 s by default), or a timed-out
    /// attempt is never retried.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            max_elapsed: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// No retries at all: one attempt.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }
}

/// The exponential part: `initial · 2^(failures-1)` capped at `max_backoff`, then "equal jitter":
/// the result lies in `[base/2, base]`, `jitter` in `[0, 1]` choosing where. Deterministic for a
/// given `jitter`, so tests can pin it.
pub fn backoff_delay(policy: &RetryPolicy, failures: u32, jitter: f64) -> Duration {
    let exp = failures.saturating_sub(1).min(30);
    let base = policy
        .initial_backoff
        .saturating_mul(1u32 << exp)
        .min(policy.max_backoff);
    base.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

/// The delay before the next attempt: the server's `Retry-After` plus a small positive jitter
/// (so many callers do not return in the same millisecond) when it sent one, otherwise
/// [`backoff_delay`]. `None` when the server asked for longer than `max_backoff`: the call should
/// end and leave the wait to its caller.
pub fn delay_for(
    policy: &RetryPolicy,
    failures: u32,
    retry_after: Option<Duration>,
    jitter: f64,
) -> Option<Duration> {
    match retry_after {
        Some(after) if after > policy.max_backoff => None,
        Some(after) => Some(after + retry_after_jitter(after).mul_f64(jitter.clamp(0.0, 1.0))),
        None => Some(backoff_delay(policy, failures, jitter)),
    }
}

/// The most added to a `Retry-After`: a tenth of it, between 50 ms and 1 s.
fn retry_after_jitter(after: Duration) -> Duration {
    (after / 10).clamp(Duration::from_millis(50), Duration::from_secs(1))
}

/// Whether to retry after `failures` failed attempts that took `elapsed` so far, waiting `delay`:
/// only when attempts remain and the wait ends before `max_elapsed` (leaving room for at least a
/// short attempt).
pub fn should_retry(
    policy: &RetryPolicy,
    failures: u32,
    elapsed: Duration,
    delay: Duration,
) -> bool {
    failures < policy.max_attempts.max(1)
        && elapsed
            .saturating_add(delay)
            .saturating_add(MIN_ATTEMPT_TIME)
            < policy.max_elapsed
}

/// An attempt needs at least this long to be worth starting.
const MIN_ATTEMPT_TIME: Duration = Duration::from_millis(50);

/// The longest wait a server may ask for (`Retry-After`): 15 minutes. A longer answer is taken
/// as this, so that no server-given number reaches time arithmetic unbounded (an
/// `Instant + u64::MAX s` overflows) and no server can park its policies for days.
pub const MAX_SERVER_DELAY: Duration = Duration::from_secs(15 * 60);

/// `Retry-After` in delay-seconds (RFC 9110 §10.2.3), clamped to [`MAX_SERVER_DELAY`]. The
/// HTTP-date form is not understood and yields `None` (the computed backoff is used instead);
/// the identity service sends seconds. Digits beyond `u64` are clamped too, not refused.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let digits = value.trim();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs = digits.parse::<u64>().unwrap_or(u64::MAX);
    Some(Duration::from_secs(secs).min(MAX_SERVER_DELAY))
}

/// Budget handed to each attempt: the time left before `max_elapsed`.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    deadline: Instant,
}

impl Budget {
    /// When the call must be done: no wait for the server's request budget may go past it.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Time left, never zero-length (an attempt always gets [`MIN_ATTEMPT_TIME`]).
    pub fn remaining(&self) -> Duration {
        self.deadline
            .saturating_duration_since(Instant::now())
            .max(MIN_ATTEMPT_TIME)
    }
}

/// Runs `attempt` until it succeeds, fails with a non-transient error, or the policy says stop.
/// Attempt numbers start at 1. A transient failure that is not retried is wrapped in
/// [`IdentityError::RetriesExhausted`] when more than one attempt was made.
pub async fn run<T, F, Fut>(policy: &RetryPolicy, mut attempt: F) -> Result<T, IdentityError>
where
    F: FnMut(u32, Budget) -> Fut,
    Fut: Future<Output = Result<T, IdentityError>>,
{
    let start = Instant::now();
    let budget = Budget {
        deadline: start + policy.max_elapsed,
    };
    let mut failures = 0u32;
    loop {
        let error = match attempt(failures + 1, budget).await {
            Ok(value) => return Ok(value),
            Err(e) if !e.is_retryable() => return Err(e),
            Err(e) => e,
        };
        failures += 1;
        let delay = delay_for(policy, failures, error.retry_after(), rand::random::<f64>())
            .filter(|delay| should_retry(policy, failures, start.elapsed(), *delay));
        let Some(delay) = delay else {
            if failures == 1 {
                return Err(error);
            }
            return Err(IdentityError::RetriesExhausted {
                attempts: failures,
                elapsed: start.elapsed(),
                last: Box::new(error),
            });
        };
        tracing::debug!(
            attempt = failures,
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            class = error.class().as_str(),
            "identity request failed transiently; retrying"
        );
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy::default()
    }

    #[test]
    fn backoff_doubles_then_caps_and_jitter_stays_in_the_upper_half() {
        let p = policy();
        assert_eq!(backoff_delay(&p, 1, 1.0), Duration::from_millis(200));
        assert_eq!(backoff_delay(&p, 2, 1.0), Duration::from_millis(400));
        assert_eq!(backoff_delay(&p, 3, 1.0), Duration::from_millis(800));
        assert_eq!(backoff_delay(&p, 20, 1.0), Duration::from_secs(5));
        assert_eq!(backoff_delay(&p, u32::MAX, 1.0), Duration::from_secs(5));
        assert_eq!(backoff_delay(&p, 1, 0.0), Duration::from_millis(100));
        for failures in 1..40 {
            for j in [0.0, 0.3, 0.999, 1.0, -5.0, 7.0] {
                let d = backoff_delay(&p, failures, j);
                let base = backoff_delay(&p, failures, 1.0);
                assert!(d >= base / 2 && d <= base && d <= p.max_backoff);
            }
        }
    }

    #[test]
    fn retry_after_is_waited_at_least_or_ends_the_call() {
        let p = policy();
        assert_eq!(
            delay_for(&p, 1, Some(Duration::from_secs(2)), 0.0),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            delay_for(&p, 1, Some(Duration::from_secs(2)), 1.0),
            Some(Duration::from_millis(2200))
        );
        assert_eq!(
            delay_for(&p, 1, Some(Duration::ZERO), 1.0),
            Some(Duration::from_millis(50))
        );
        assert_eq!(
            delay_for(&p, 1, Some(Duration::from_secs(5)), 1.0),
            Some(Duration::from_millis(5500))
        );
        assert_eq!(delay_for(&p, 1, Some(Duration::from_secs(6)), 0.0), None);
        assert_eq!(delay_for(&p, 1, Some(Duration::from_secs(3600)), 0.0), None);
        assert_eq!(
            delay_for(&p, 1, None, 1.0),
            Some(Duration::from_millis(200))
        );
    }

    fn throttled(after: Duration) -> IdentityError {
        IdentityError::Unavailable {
            endpoint: super::super::observe::Endpoint::Setting,
            url: "https://h/api/Setting".into(),
            status: 429,
            retry_after: Some(after),
            message: None,
        }
    }

    #[tokio::test]
    async fn run_returns_a_retry_after_that_does_not_fit_at_once() {
        // Longer than max_backoff.
        let start = Instant::now();
        let mut calls = 0;
        let result: Result<(), _> = run(&policy(), |_, _| {
            calls += 1;
            async { Err(throttled(Duration::from_secs(30))) }
        })
        .await;
        assert_eq!(calls, 1);
        assert_eq!(
            result.unwrap_err().retry_after(),
            Some(Duration::from_secs(30))
        );
        assert!(start.elapsed() < Duration::from_millis(500));

        // Within max_backoff but past the remaining budget.
        let tight = RetryPolicy {
            max_elapsed: Duration::from_secs(2),
            ..policy()
        };
        let mut calls = 0;
        let result: Result<(), _> = run(&tight, |_, _| {
            calls += 1;
            async { Err(throttled(Duration::from_secs(3))) }
        })
        .await;
        assert_eq!(calls, 1);
        assert_eq!(
            result.unwrap_err().retry_after(),
            Some(Duration::from_secs(3))
        );
        assert!(start.elapsed() < Duration::from_millis(500));
    }

    #[test]
    fn retry_after_parsing() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("18446744073709551615"),
            Some(MAX_SERVER_DELAY)
        );
        assert_eq!(
            parse_retry_after("99999999999999999999999999"),
            Some(MAX_SERVER_DELAY)
        );
        assert_eq!(parse_retry_after("+3"), None);
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after("1.5"), None);
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    #[test]
    fn retries_stop_at_max_attempts_or_max_elapsed() {
        let p = policy();
        let short = Duration::from_millis(100);
        assert!(should_retry(&p, 1, Duration::ZERO, short));
        assert!(should_retry(&p, 4, Duration::ZERO, short));
        assert!(!should_retry(&p, 5, Duration::ZERO, short));
        assert!(!should_retry(
            &p,
            1,
            Duration::from_secs(29),
            Duration::from_secs(1)
        ));
        assert!(!should_retry(
            &RetryPolicy {
                max_attempts: 0,
                ..p.clone()
            },
            1,
            Duration::ZERO,
            short
        ));
    }

    #[tokio::test]
    async fn run_gives_up_within_max_elapsed() {
        let p = RetryPolicy {
            max_attempts: 100,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(40),
            max_elapsed: Duration::from_millis(300),
        };
        let start = Instant::now();
        let mut calls = 0;
        let result: Result<(), _> = run(&p, |_, _| {
            calls += 1;
            async {
                Err(IdentityError::Timeout {
                    endpoint: super::super::observe::Endpoint::Setting,
                    url: "https://h/api/Setting".into(),
                })
            }
        })
        .await;
        let err = result.unwrap_err();
        assert!(start.elapsed() < Duration::from_millis(300));
        assert!(calls > 2);
        assert!(
            matches!(err, IdentityError::RetriesExhausted { attempts, .. } if attempts == calls)
        );
        assert_eq!(err.class(), super::super::error::ErrorClass::Transient);
    }

    #[tokio::test]
    async fn run_does_not_retry_permanent_errors() {
        let mut calls = 0;
        let result: Result<(), _> = run(&policy(), |_, _| {
            calls += 1;
            async {
                Err(IdentityError::NotFound {
                    url: "https://h/x".into(),
                })
            }
        })
        .await;
        assert!(matches!(result, Err(IdentityError::NotFound { .. })));
        assert_eq!(calls, 1);
    }
}
