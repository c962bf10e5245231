//! The measurements after cold start: steady-state cost per resync, apply latency of single
//! edits, and how long the operator takes to correct drift on every policy.

use std::time::{Duration, Instant};

use crate::converge::{Wait, Waited, wait_all};
use crate::error::Result;
use crate::kube::ApiCalls;
use crate::manifests;
use crate::policy::DRIFT_CORRECTED;
use crate::process::Process;
use crate::sim::IdentityCalls;
use crate::world::World;

/// How many edits the apply-latency step makes.
pub const EDITS: usize = 200;
/// How often one edited policy is read while waiting for it.
const EDIT_POLL: Duration = Duration::from_millis(2);
/// How long one edit may take before it is counted as not applied.
const EDIT_LIMIT: Duration = Duration::from_secs(60);

/// The steady-state window, in resync intervals: at least one resync of every policy.
pub const STEADY_WINDOW: f64 = 1.15;

/// Steady-state requests per policy per resync interval.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Steady {
    /// Identity Setting GETs.
    pub get: f64,
    /// Identity Setting PUTs.
    pub put: f64,
    /// Identity token requests.
    pub token: f64,
    /// Kubernetes reads (get, list).
    pub reads: f64,
    /// Kubernetes writes (create, update, patch, delete).
    pub writes: f64,
}

/// Watches a quiet operator for 1.15 resync intervals and divides the counts by the number of
/// policies: the operator adds at most 10 % jitter to each policy's interval, so in that window
/// every policy resyncs once (a few twice, if their resync fell in the window's first 5-15 %).
pub async fn steady(world: &World, count: usize, resync: Duration) -> Result<Steady> {
    world.sim.reset().await?;
    world.kube.reset_counters().await?;
    tokio::time::sleep(resync.mul_f64(STEADY_WINDOW)).await;
    let identity: IdentityCalls = world.sim.calls().await?;
    let api: ApiCalls = world.kube.api_calls().await?;
    eprintln!("  steady Kubernetes requests: {}", api.by_resource);
    let per = |n: u64| n as f64 / count as f64;
    Ok(Steady {
        get: per(identity.get),
        put: per(identity.put),
        token: per(identity.token),
        reads: per(api.reads),
        writes: per(api.writes),
    })
}

/// Apply latency percentiles, milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Edits not applied within the limit (left out of the percentiles).
    pub timed_out: usize,
}

/// [`EDITS`] sequential edits spread over the policies: each changes one setting by merge
/// patch; the time is from the patch's answer until the policy is `Ready=True` for the new
/// generation.
pub async fn apply_latency(world: &World, count: usize) -> Result<Latency> {
    let step = (count / EDITS).max(1);
    let mut samples = Vec::with_capacity(EDITS);
    let mut timed_out = 0;
    for edit in 0..EDITS {
        let name = manifests::policy_name((edit * step) % count);
        let generation = world
            .kube
            .patch_policy(&name, &manifests::edit_patch(edit))
            .await?;
        let patched = Instant::now();
        loop {
            let policy = world.kube.get_policy(&name).await?;
            if policy.converged() && policy.metadata.generation == Some(generation) {
                samples.push(patched.elapsed().as_secs_f64() * 1000.0);
                break;
            }
            if patched.elapsed() > EDIT_LIMIT {
                timed_out += 1;
                eprintln!("  ! edit {edit} of {name} not applied within {EDIT_LIMIT:?}");
                break;
            }
            tokio::time::sleep(EDIT_POLL).await;
        }
    }
    samples.sort_by(f64::total_cmp);
    Ok(Latency {
        p50: percentile(&samples, 50.0),
        p90: percentile(&samples, 90.0),
        p99: percentile(&samples, 99.0),
        timed_out,
    })
}

/// The nearest-rank percentile of sorted `samples` (NaN when empty).
pub fn percentile(samples: &[f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let rank = (p / 100.0 * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

/// Changes one setting of every policy's partition on the server, then waits until every
/// policy reports `DriftCorrected` (the operator notices at its next resync). Times are from
/// the end of the injection.
pub async fn drift(
    world: &World,
    operator: &mut Process,
    count: usize,
    resync: Duration,
) -> Result<Waited> {
    let injecting = Instant::now();
    world.sim.drift(count).await?;
    eprintln!(
        "  drift injected into {count} partitions in {:.1} s",
        injecting.elapsed().as_secs_f64()
    );
    let wait = Wait {
        what: "drift correction",
        count,
        since: Instant::now(),
        limit: resync.mul_f64(1.5) + Duration::from_secs(120),
    };
    wait_all(&world.kube, Some(operator), wait, |p| {
        p.ready_with(DRIFT_CORRECTED)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let samples: Vec<f64> = (1..=200).map(f64::from).collect();
        assert_eq!(percentile(&samples, 50.0), 100.0);
        assert_eq!(percentile(&samples, 90.0), 180.0);
        assert_eq!(percentile(&samples, 99.0), 198.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert!(percentile(&[], 50.0).is_nan());
    }
}
