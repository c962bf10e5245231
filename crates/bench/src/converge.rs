//! Waiting for the operator: list the policies, then watch them until every one satisfies a
//! condition, or a limit passes. Never hangs; a timeout is a result, not an error.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::kube::Kube;
use crate::policy::{Policy, WatchEvent};
use crate::process::Process;

/// How often progress is printed while waiting.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// How often the limit and the operator are checked while the watch is quiet.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// What a wait found.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Waited {
    /// From the wait's reference instant to the event that made them all (or to the limit).
    pub elapsed: Duration,
    /// Policies that satisfied the condition at the end.
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
}

/// Lists once, then watches, until `count` policies satisfy `done` or the limit passes; fails
/// only when a request fails or the operator (when there is one: the reference client runs in
/// the benchmark) exits. A watch costs the API server one event per change, where polling a
/// LIST of thousands of policies would cost it more the longer the wait (and so favour short
/// runs).
pub async fn wait_all(
    kube: &Kube,
    mut operator: Option<&mut Process>,
    wait: Wait<'_>,
    done: impl Fn(&Policy) -> bool,
) -> Result<Waited> {
    let mut last_progress = Instant::now();
    // Per policy name, whether it satisfies `done`.
    let mut policies: HashMap<String, bool> = HashMap::new();
    let mut from: Option<String> = None;
    loop {
        let resource_version = match from.take() {
            Some(version) => version,
            None => {
                let list = kube.list_policies().await?;
                policies = list
                    .items
                    .iter()
                    .map(|p| (p.metadata.name.clone(), done(p)))
                    .collect();
                list.metadata.resource_version
            }
        };
        let mut watch = kube.watch_policies(&resource_version).await?;
        let mut seen = resource_version;
        loop {
            if let Some(operator) = operator.as_deref_mut() {
                operator.check_running()?;
            }
            let satisfied = policies.values().filter(|d| **d).count();
            let elapsed = wait.since.elapsed();
            if satisfied >= wait.count || elapsed >= wait.limit {
                let all = satisfied >= wait.count;
                if !all {
                    eprintln!(
                        "  ! {}: only {satisfied}/{} after {:.0} s; giving up",
                        wait.what,
                        wait.count,
                        elapsed.as_secs_f64()
                    );
                }
                return Ok(Waited {
                    elapsed,
                    done: satisfied,
                    all,
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
            let event = match tokio::time::timeout(LOOK_EVERY, watch.next()).await {
                Err(_) => continue,
                Ok(event) => event?,
            };
            let Some(WatchEvent { kind, object }) = event else {
                // The server ended the watch: go on from the last version seen.
                from = Some(seen);
                break;
            };
            if let Some(version) = &object.metadata.resource_version {
                seen.clone_from(version);
            }
            match kind.as_str() {
                "ADDED" | "MODIFIED" => {
                    let satisfies = done(&object);
                    policies.insert(object.metadata.name, satisfies);
                }
                "DELETED" => {
                    policies.remove(&object.metadata.name);
                }
                "BOOKMARK" => {}
                // Too old a version (or another error): list again.
                _ => break,
            }
        }
    }
}
