//! Waiting for the operator: LIST the policies at an interval until every one satisfies a
//! condition, or a limit passes. Never hangs; a timeout is a result, not an error.

use std::time::{Duration, Instant};

use crate::error::Result;
use crate::kube::Kube;
use crate::policy::Policy;
use crate::process::Process;

/// How often progress is printed while waiting.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// A LIST may take at most this share of the time (the benchmark shares the cores with the
/// operator): the interval grows to 4 times the last LIST's duration when that is longer.
const LIST_SHARE_FACTOR: u32 = 4;

/// What a wait found.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Waited {
    /// From the wait's reference instant to the LIST that saw them all (or to the limit).
    pub elapsed: Duration,
    /// Policies that satisfied the condition at the last LIST.
    pub done: usize,
    /// Whether all of them did.
    pub all: bool,
}

/// What to wait for.
pub struct Wait<'a> {
    /// Progress label, e.g. `cold start`.
    pub what: &'a str,
    /// How many policies must satisfy `done`.
    pub count: usize,
    /// Times are measured from here.
    pub since: Instant,
    /// Give up this long after `since`.
    pub limit: Duration,
    /// The shortest time between two LISTs.
    pub interval: Duration,
}

/// LISTs until `count` policies satisfy `done` or the limit passes; fails only when a LIST fails
/// or the operator (when there is one: the reference client runs in the benchmark) exits.
pub async fn wait_all(
    kube: &Kube,
    mut operator: Option<&mut Process>,
    wait: Wait<'_>,
    done: impl Fn(&Policy) -> bool,
) -> Result<Waited> {
    let mut last_progress = Instant::now();
    loop {
        if let Some(operator) = operator.as_deref_mut() {
            operator.check_running()?;
        }
        let listed_at = Instant::now();
        let policies = kube.list_policies().await?;
        let list_took = listed_at.elapsed();
        let satisfied = policies.iter().filter(|p| done(p)).count();
        let elapsed = wait.since.elapsed();
        if satisfied >= wait.count {
            return Ok(Waited {
                elapsed,
                done: satisfied,
                all: true,
            });
        }
        if elapsed >= wait.limit {
            eprintln!(
                "  ! {}: only {satisfied}/{} after {:.0} s; giving up",
                wait.what,
                wait.count,
                elapsed.as_secs_f64()
            );
            return Ok(Waited {
                elapsed,
                done: satisfied,
                all: false,
            });
        }
        if last_progress.elapsed() >= PROGRESS_EVERY {
            eprintln!(
                "  {}: {satisfied}/{} after {:.0} s",
                wait.what,
                wait.count,
                elapsed.as_secs_f64()
            );
            last_progress = Instant::now();
        }
        let pause = wait.interval.max(list_took * LIST_SHARE_FACTOR);
        tokio::time::sleep(pause.saturating_sub(listed_at.elapsed())).await;
    }
}
