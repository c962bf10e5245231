//! Leader election with a `coordination.k8s.io/v1` Lease, so that with several replicas only
//! one writes to the identity service and another takes over when it stops.
//!
//! kube-rs has no built-in leader election, and the crate that fits kube 5
//! (`kube-lease-manager` 0.13) was weighed and not taken: it decides expiry by this node's wall
//! clock against the Lease's `renewTime`, keeps reporting leadership while a renewal hangs (no
//! cut-off before another replica may take over), counts durations in whole seconds, and
//! writes with patches (a `patch` grant on Leases the chart does not need today). The guarantees
//! below are what the operator's safety rests on, so the protocol stays here, small and tested.
//!
//! This follows client-go's protocol: the holder renews
//! `renewTime` every `renew_interval`; a candidate takes the Lease over once `renewTime +
//! leaseDurationSeconds` has passed; every write carries the `resourceVersion` it read, so two
//! candidates racing for it cannot both win (the loser gets 409 Conflict).

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{info, warn};

/// How a replica takes part in the election.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// The Lease's name.
    pub name: String,
    /// The Lease's namespace (usually the operator's own).
    pub namespace: String,
    /// This replica's identity (the pod name).
    pub identity: String,
    /// How long a Lease stays valid without renewal.
    pub lease_duration: Duration,
    /// How often the holder renews, and candidates retry.
    pub renew_interval: Duration,
}

/// What to do with the Lease as it is now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// No Lease exists: create it, holding it.
    Create,
    /// We hold it: renew.
    Renew,
    /// Someone else held it but let it expire (or released it): take it over.
    TakeOver,
    /// Someone else holds it.
    Follow(String),
}

/// Decides from the Lease's spec and `unchanged_for`: how long this replica has seen the same
/// Lease record (by its own monotonic clock, as client-go does — comparing the holder's
/// `renewTime` with the local wall clock would let clock skew decide). Pure.
pub fn decide(
    lease: Option<&LeaseSpec>,
    me: &str,
    unchanged_for: Duration,
    default_duration: Duration,
) -> Decision {
    let Some(spec) = lease else {
        return Decision::Create;
    };
    let holder = spec.holder_identity.as_deref().unwrap_or_default();
    if holder == me {
        return Decision::Renew;
    }
    if holder.is_empty() {
        return Decision::TakeOver;
    }
    let duration = spec.lease_duration_seconds.map_or(default_duration, |s| {
        Duration::from_secs(u64::try_from(s).unwrap_or_default())
    });
    if unchanged_for >= duration {
        Decision::TakeOver
    } else {
        Decision::Follow(holder.to_owned())
    }
}

/// The spec we write when we hold the Lease.
fn held_spec(
    previous: Option<&LeaseSpec>,
    cfg: &LeaseConfig,
    now: Timestamp,
    take_over: bool,
) -> LeaseSpec {
    let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
    LeaseSpec {
        holder_identity: Some(cfg.identity.clone()),
        lease_duration_seconds: i32::try_from(cfg.lease_duration.as_secs()).ok(),
        acquire_time: if take_over || previous.is_none() {
            Some(MicroTime(now))
        } else {
            previous.and_then(|p| p.acquire_time.clone())
        },
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(if take_over {
            transitions + 1
        } else {
            transitions
        }),
        ..LeaseSpec::default()
    }
}

/// Acquires and renews the Lease.
pub struct LeaderElector {
    api: Api<Lease>,
    cfg: LeaseConfig,
    /// The Lease record last seen (its resourceVersion) and when this replica first saw it.
    observed: std::sync::Mutex<Option<(String, Instant)>>,
}

impl LeaderElector {
    /// An elector for the Lease in `cfg`.
    pub fn new(client: kube::Client, cfg: LeaseConfig) -> Self {
        Self {
            api: Api::namespaced(client, &cfg.namespace),
            cfg,
            observed: std::sync::Mutex::default(),
        }
    }

    /// One round: returns whether this replica holds the Lease afterwards.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let current = self.api.get_opt(&self.cfg.name).await?;
        let spec = current.as_ref().and_then(|l| l.spec.clone());
        let version = current
            .as_ref()
            .and_then(|l| l.metadata.resource_version.clone());
        let unchanged_for = self.unchanged_for(version.unwrap_or_default());
        let decision = decide(
            spec.as_ref(),
            &self.cfg.identity,
            unchanged_for,
            self.cfg.lease_duration,
        );
        let result = match decision {
            Decision::Follow(holder) => {
                tracing::debug!(%holder, "another replica leads");
                return Ok(false);
            }
            Decision::Create => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.cfg.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(held_spec(None, &self.cfg, now, false)),
                };
                self.api
                    .create(&PostParams::default(), &lease)
                    .await
                    .map(|_| ())
            }
            Decision::Renew | Decision::TakeOver => {
                let mut lease = current.unwrap_or_default();
                lease.spec = Some(held_spec(
                    spec.as_ref(),
                    &self.cfg,
                    now,
                    decision == Decision::TakeOver,
                ));
                if decision == Decision::TakeOver {
                    info!(lease = %self.cfg.name, "taking over the leader lease");
                }
                self.api
                    .replace(&self.cfg.name, &PostParams::default(), &lease)
                    .await
                    .map(|_| ())
            }
        };
        match result {
            Ok(()) => Ok(true),
            // Someone else wrote first: they are the leader this round.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// How long the Lease record has stayed at `version`, by this replica's clock.
    fn unchanged_for(&self, version: String) -> Duration {
        let mut observed = self.observed.lock().unwrap_or_else(|e| e.into_inner());
        match observed.as_ref() {
            Some((seen, since)) if *seen == version => since.elapsed(),
            _ => {
                *observed = Some((version, Instant::now()));
                Duration::ZERO
            }
        }
    }

    /// Gives the Lease up on shutdown so another replica takes over at once.
    pub async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.cfg.name).await? else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.cfg.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        self.api
            .replace(&self.cfg.name, &PostParams::default(), &lease)
            .await
            .map(|_| ())
    }

    /// Campaigns forever, publishing `Some(true)` while this replica leads.
    ///
    /// Like client-go, leadership is only claimed for a *renew deadline* (2/3 of the lease
    /// duration) counted from the start of the last successful round, and every round is cut off
    /// at that deadline: a renewal hanging on a dead connection makes this replica step down
    /// before any other replica may take the Lease over, so two never lead at once (given clocks
    /// that agree to well within a third of the lease duration).
    pub async fn run(self, leading: watch::Sender<Option<bool>>) {
        let deadline = renew_deadline(self.cfg.lease_duration);
        let mut renewed_at: Option<Instant> = None;
        loop {
            let started = Instant::now();
            let round = tokio::time::timeout(deadline, self.try_acquire_or_renew());
            match step_down_on_expiry(round, &mut renewed_at, deadline, &leading).await {
                Ok(Ok(true)) => renewed_at = Some(started),
                Ok(Ok(false)) => renewed_at = None,
                Ok(Err(e)) => warn!(error = %e, "leader lease round failed"),
                Err(_) => warn!(?deadline, "leader lease round timed out"),
            }
            if renewed_at.is_some_and(|t| t.elapsed() >= deadline) {
                renewed_at = None;
            }
            publish(&leading, renewed_at.is_some());
            let pause = tokio::time::sleep(self.cfg.renew_interval);
            step_down_on_expiry(pause, &mut renewed_at, deadline, &leading).await;
        }
    }
}

/// Runs `work`, but the moment the renew deadline passes publishes that this replica no longer
/// leads — without waiting for `work` (a hung request, say) to finish.
async fn step_down_on_expiry<T>(
    work: impl Future<Output = T>,
    renewed_at: &mut Option<Instant>,
    deadline: Duration,
    leading: &watch::Sender<Option<bool>>,
) -> T {
    tokio::pin!(work);
    loop {
        let Some(expiry) = renewed_at.map(|t| t + deadline) else {
            return work.await;
        };
        tokio::select! {
            out = &mut work => return out,
            () = tokio::time::sleep_until(expiry) => {
                warn!("leader lease not renewed in time; stepping down");
                *renewed_at = None;
                publish(leading, false);
            }
        }
    }
}

fn publish(leading: &watch::Sender<Option<bool>>, is_leader: bool) {
    leading.send_if_modified(|v| {
        let changed = *v != Some(is_leader);
        *v = Some(is_leader);
        changed
    });
}

/// How long a leader may go without a successful renewal before it steps down.
pub fn renew_deadline(lease_duration: Duration) -> Duration {
    lease_duration.mul_f64(2.0 / 3.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).expect("valid")
    }

    fn spec(holder: &str, renewed: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(at(renewed))),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn decisions_follow_client_go_rules() {
        let d = Duration::from_secs(15);
        let secs = Duration::from_secs;
        assert_eq!(decide(None, "a", secs(0), d), Decision::Create);
        assert_eq!(
            decide(Some(&spec("a", 0)), "a", secs(100), d),
            Decision::Renew
        );
        assert_eq!(
            decide(Some(&spec("b", 0)), "a", secs(10), d),
            Decision::Follow("b".into())
        );
        assert_eq!(
            decide(Some(&spec("b", 0)), "a", secs(15), d),
            Decision::TakeOver
        );
        assert_eq!(
            decide(Some(&LeaseSpec::default()), "a", secs(0), d),
            Decision::TakeOver
        );
        // A renewTime far in the past (a skewed clock) does not matter while the record changes.
        assert_eq!(
            decide(Some(&spec("b", -100_000)), "a", secs(1), d),
            Decision::Follow("b".into())
        );
    }

    #[tokio::test]
    async fn a_hung_renewal_steps_down_at_the_deadline_without_waiting_for_it() {
        let (tx, rx) = watch::channel(Some(true));
        let mut renewed_at = Some(Instant::now());
        let hung = std::future::pending::<()>();
        let deadline = Duration::from_millis(150);
        let waited = tokio::time::timeout(
            Duration::from_millis(600),
            step_down_on_expiry(hung, &mut renewed_at, deadline, &tx),
        )
        .await;
        assert!(waited.is_err(), "the hung work never finishes");
        assert_eq!(
            *rx.borrow(),
            Some(false),
            "stepped down while the work hung"
        );
        assert_eq!(
            renew_deadline(Duration::from_secs(15)),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn taking_over_counts_a_transition_and_renewing_keeps_the_acquire_time() {
        let cfg = LeaseConfig {
            name: "l".into(),
            namespace: "n".into(),
            identity: "a".into(),
            lease_duration: Duration::from_secs(15),
            renew_interval: Duration::from_secs(5),
        };
        let mut prev = spec("b", 0);
        prev.lease_transitions = Some(3);
        let taken = held_spec(Some(&prev), &cfg, at(20), true);
        assert_eq!(taken.lease_transitions, Some(4));
        assert_eq!(taken.acquire_time, Some(MicroTime(at(20))));
        let renewed = held_spec(Some(&taken), &cfg, at(25), false);
        assert_eq!(renewed.acquire_time, Some(MicroTime(at(20))));
        assert_eq!(renewed.renew_time, Some(MicroTime(at(25))));
        assert_eq!(renewed.lease_transitions, Some(4));
    }
}
