//! When each policy is looked at again if nothing changes: its resync, a retry, the end of a
//! suspension — one small entry per policy.
//!
//! kube-runtime's scheduler would keep the same (a reconcile's `Action::requeue`) in two hash
//! tables and a timer slab keyed by the whole object reference, about 700 bytes per policy:
//! with 10 000 policies, more than any other part of the operator but the cached policies. The
//! clock keeps a due time and a shared name per policy, and wakes the policy through its
//! controller when it falls due.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::Stream;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::reconcile::claims::PolicyName;

/// What a reconcile decided about the next one, when nothing changes meanwhile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Look again after this long.
    After(Duration),
    /// Only a change (of the policy, a Secret it reads, its server) brings it back.
    OnChange,
}

/// The longest wait the clock keeps: a later time (the end of a suspension a year away) is
/// looked at after two days, and the reconcile then decides again. Above the longest resync
/// interval (24 h) with its jitter (up to 10 %), so that no resync loses its spread. Also keeps
/// `now + wait` from overflowing, whatever a reconcile asked.
pub const LONGEST_WAIT: Duration = Duration::from_secs(2 * 24 * 60 * 60);

/// The policies of one controller waiting for their next look, in due order.
#[derive(Default)]
pub struct ResyncClock {
    state: Mutex<State>,
    /// Told when a policy is due before every other one (the sleeper must wake earlier).
    sooner: Notify,
}

#[derive(Default)]
struct State {
    /// Due times in order; the sequence number tells apart policies due at the same instant.
    due: BTreeMap<(Instant, u64), PolicyName>,
    /// Where each policy is in `due`.
    places: HashMap<PolicyName, (Instant, u64)>,
    next_seq: u64,
}

impl ResyncClock {
    /// An empty clock.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Schedules `policy` for `after` from now (at most [`LONGEST_WAIT`]), replacing the time
    /// it had: the latest reconcile knows best.
    pub fn schedule(&self, policy: PolicyName, after: Duration) {
        let now = Instant::now();
        let at = now
            .checked_add(after.min(LONGEST_WAIT))
            .unwrap_or(now + LONGEST_WAIT);
        if self.place(policy, at) {
            self.sooner.notify_one();
        }
    }

    /// Puts `policy` at `at`; whether it is now the first due.
    fn place(&self, policy: PolicyName, at: Instant) -> bool {
        let mut state = self.lock();
        let seq = state.next_seq;
        state.next_seq += 1;
        if let Some(old) = state.places.insert(policy.clone(), (at, seq)) {
            state.due.remove(&old);
        }
        state.due.insert((at, seq), policy);
        state.due.keys().next() == Some(&(at, seq))
    }

    /// Forgets a policy that is gone, or whose next look is decided elsewhere.
    pub fn cancel(&self, policy: &str) {
        let mut state = self.lock();
        if let Some(place) = state.places.remove(policy) {
            state.due.remove(&place);
        }
    }

    /// How many policies are scheduled.
    pub fn len(&self) -> usize {
        self.lock().places.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes the policies due at `now`, in due order, and tells when the next one falls due.
    fn take_due(&self, now: Instant) -> (Vec<PolicyName>, Option<Instant>) {
        let mut state = self.lock();
        let later = state.due.split_off(&(now, u64::MAX));
        let due = std::mem::replace(&mut state.due, later);
        let names: Vec<PolicyName> = due.into_values().collect();
        for name in &names {
            state.places.remove(name);
        }
        (names, state.due.keys().next().map(|(at, _)| *at))
    }

    /// The policies as they fall due, for as long as the clock exists.
    pub fn due(self: Arc<Self>) -> impl Stream<Item = PolicyName> + Send + 'static {
        futures::stream::unfold(
            (self, std::collections::VecDeque::new()),
            |(clock, mut ready)| async move {
                loop {
                    if let Some(policy) = ready.pop_front() {
                        return Some((policy, (clock, ready)));
                    }
                    let (due, next) = clock.take_due(Instant::now());
                    if !due.is_empty() {
                        ready.extend(due);
                        continue;
                    }
                    match next {
                        Some(at) => {
                            tokio::select! {
                                () = tokio::time::sleep_until(at) => {}
                                () = clock.sooner.notified() => {}
                            }
                        }
                        None => clock.sooner.notified().await,
                    }
                }
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn name(n: &str) -> PolicyName {
        n.into()
    }

    #[test]
    fn policies_fall_due_in_time_order_and_a_new_schedule_replaces_the_old() {
        let clock = ResyncClock::new();
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        clock.place(name("ns/a"), at(30));
        clock.place(name("ns/b"), at(10));
        clock.place(name("ns/c"), at(20));
        // `a` was looked at again meanwhile: its new time replaces the old one.
        clock.place(name("ns/a"), at(5));
        assert_eq!(clock.len(), 3);

        let (due, next) = clock.take_due(at(10));
        assert_eq!(due, [name("ns/a"), name("ns/b")]);
        assert_eq!(next, Some(at(20)));
        let (due, next) = clock.take_due(at(60));
        assert_eq!(due, [name("ns/c")], "a is due once, not twice");
        assert_eq!(next, None);
        assert!(clock.is_empty());
    }

    #[test]
    fn a_cancelled_policy_never_falls_due() {
        let clock = ResyncClock::new();
        let start = Instant::now();
        clock.place(name("ns/gone"), start);
        clock.place(name("ns/kept"), start);
        clock.cancel("ns/gone");
        clock.cancel("ns/never-scheduled");
        let (due, _) = clock.take_due(start + Duration::from_secs(1));
        assert_eq!(due, [name("ns/kept")]);
    }

    #[test]
    fn the_longest_resync_keeps_its_jitter() {
        let clock = ResyncClock::new();
        let longest = crate::controller::context::jittered(Duration::from_secs(24 * 3600), 1.0);
        let before = Instant::now();
        clock.schedule(name("ns/daily"), longest);
        let (_, next) = clock.take_due(before);
        let wait = next.expect("scheduled").duration_since(before);
        assert!(
            wait >= longest && wait < longest + Duration::from_secs(60),
            "{wait:?} for a resync of {longest:?}"
        );
    }

    #[test]
    fn any_wait_is_kept_without_overflow_and_at_most_the_longest() {
        let clock = ResyncClock::new();
        clock.schedule(name("ns/far"), Duration::MAX);
        let (due, next) = clock.take_due(Instant::now());
        assert!(due.is_empty());
        let next = next.expect("scheduled");
        assert!(next <= Instant::now() + LONGEST_WAIT);
        assert!(next > Instant::now() + LONGEST_WAIT - Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn the_stream_wakes_for_a_sooner_policy_scheduled_while_it_sleeps() {
        let start = Instant::now();
        let clock = ResyncClock::new();
        clock.schedule(name("ns/hourly"), Duration::from_secs(3600));
        let mut due = Box::pin(clock.clone().due());
        // The stream sleeps until the hourly one; a policy due in 10 s must not wait for it.
        let sooner = {
            let clock = clock.clone();
            async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                clock.schedule(name("ns/soon"), Duration::from_secs(10));
            }
        };
        let (first, ()) = tokio::join!(due.next(), sooner);
        assert_eq!(first, Some(name("ns/soon")));
        assert_eq!(
            start.elapsed().as_secs(),
            11,
            "due 10 s after it was scheduled"
        );
        assert_eq!(due.next().await, Some(name("ns/hourly")));
        assert_eq!(start.elapsed().as_secs(), 3600);
    }
}
