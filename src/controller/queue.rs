//! The work queue every reconcile passes before it does any I/O: it decides which policy goes
//! next, so that none is starved however many are due.
//!
//! kube-runtime's controller runs a due policy at once when it has a free slot; when it has
//! none, due policies wait in a hash set and leave it in hash order, so at the concurrency limit
//! a new or changed policy has no precedence over a routine resync and some policies are never
//! reached. Nor can the controller run every due policy at once and let each wait here: it keeps
//! each running reconcile as a task in a map it polls whole on every wake-up, so 10 000 waiting
//! reconciles cost it time quadratic in their number (most of the operator's CPU at a cold
//! start) and a task each. So a due policy with no free slot is only *noted* here (a few hundred
//! bytes) and its reconcile ends at once; when its turn comes, the queue holds a slot for it and
//! wakes it through its controller ([`Wake`]), whose next reconcile of it takes the slot:
//!
//! - at most `total` reconciles run at once, and at most `per_server` of them talk to one
//!   identity server (a slow server cannot take every slot from the others); a reconcile done
//!   with its server ([`Permit::leave_server`]: what is left is its Kubernetes writes) keeps its
//!   slot but leaves the server's share to the next;
//! - urgent work — a new, changed or deleted policy, a changed Secret — goes before routine
//!   resyncs, but after [`URGENT_BURST`] urgent admissions in a row for one server the oldest
//!   routine one goes, so resyncs are delayed, never starved;
//! - within a class, the policy that has waited longest goes first (first come, first served).
//!
//! How long admitted work waited is the operator's backlog: [`WorkQueue::snapshot`] feeds the
//! queue metrics and the "cannot keep up" warning.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::reconcile::claims::PolicyName;

/// Urgent admissions in a row for one server before a waiting routine resync goes.
pub const URGENT_BURST: u32 = 4;

/// Whether work is owed to a user's action or is a routine resync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Urgency {
    /// A new, changed or deleted policy, or a Secret it reads changed.
    Urgent,
    /// The periodic check of a policy whose spec did not change.
    Routine,
}

/// One policy's request to run, as [`WorkQueue::admit`] is given it.
#[derive(Clone, Debug)]
pub struct Request {
    /// The policy (`namespace/name`); the queue keeps this one name for it, however many of
    /// its tables hold the policy.
    pub policy: PolicyName,
    /// The identity server it talks to (its URL), so one server's backlog does not hold up
    /// another's.
    pub server: Arc<str>,
    /// Its class.
    pub urgency: Urgency,
    /// Its resync interval: waiting longer than this means the operator is not keeping up.
    pub resync: Duration,
}

/// How the queue tells a controller that one of its policies, noted as waiting, may run now:
/// the controller reconciles it again (see [`WorkQueue::admit`]).
pub type Wake = mpsc::UnboundedSender<PolicyName>;

/// What [`WorkQueue::admit`] decided.
pub enum Admission {
    /// Run now, holding this slot.
    Granted(Permit),
    /// Noted as waiting: the policy's controller is woken when a slot is held for it.
    Waiting,
    /// Shutting down: run nothing.
    Closed,
}

/// The queue; shared by every controller of the process.
pub struct WorkQueue {
    total: usize,
    per_server: usize,
    state: Mutex<State>,
}

/// The right to run one reconcile; the slot is freed when it drops.
pub struct Permit {
    /// `None` once the slot is freed (or was never taken).
    queue: Option<Arc<WorkQueue>>,
    server: Arc<str>,
    /// Whether it still counts against its server's share.
    at_server: AtomicBool,
    /// How long the work waited to be admitted.
    pub waited: Duration,
}

/// The queue's state at one moment, for metrics and the backlog warning.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Reconciles waiting for a slot.
    pub waiting: usize,
    /// Reconciles running.
    pub running: usize,
    /// How long the longest-waiting one has waited so far.
    pub oldest_wait: Duration,
    /// Waiting routine resyncs that have waited longer than their own resync interval.
    pub overdue: usize,
}

#[derive(Default)]
struct State {
    closed: bool,
    running: usize,
    next_seq: u64,
    servers: HashMap<Arc<str>, ServerQueue>,
    /// Where each waiting policy is: its server and sequence number.
    waiting: HashMap<PolicyName, (Arc<str>, u64)>,
    /// Policies made urgent while not waiting: their next admission is urgent.
    marked: HashSet<PolicyName>,
    /// Slots held for woken policies until their next reconcile takes them.
    granted: HashMap<PolicyName, Permit>,
}

#[derive(Default)]
struct ServerQueue {
    running: usize,
    urgent: BTreeMap<u64, Waiter>,
    routine: BTreeMap<u64, Waiter>,
    urgent_streak: u32,
}

struct Waiter {
    policy: PolicyName,
    since: Instant,
    resync: Duration,
    urgency: Urgency,
    wake: Wake,
}

impl WorkQueue {
    /// A queue running at most `total` reconciles at once, at most `per_server` of them talking
    /// to one identity server (both at least 1).
    pub fn new(total: usize, per_server: usize) -> Arc<Self> {
        Arc::new(Self {
            total: total.max(1),
            per_server: per_server.max(1),
            state: Mutex::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs the policy now if a slot is free (or held for it), else notes it as waiting and
    /// wakes it through `wake` when its turn comes. A policy already waiting keeps its place (a
    /// user's change moves it ahead: see [`Self::expedite`]).
    pub fn admit(self: &Arc<Self>, request: Request, wake: &Wake) -> Admission {
        let mut state = self.lock();
        if state.closed {
            return Admission::Closed;
        }
        if let Some(permit) = state.granted.remove(&request.policy) {
            return Admission::Granted(permit);
        }
        if state.waiting.contains_key(&request.policy) {
            return Admission::Waiting;
        }
        let urgency = if state.marked.remove(&request.policy) {
            Urgency::Urgent
        } else {
            request.urgency
        };
        let seq = state.next_seq;
        state.next_seq += 1;
        let waiter = Waiter {
            policy: request.policy.clone(),
            since: Instant::now(),
            resync: request.resync,
            urgency,
            wake: wake.clone(),
        };
        let server = state.servers.entry(request.server.clone()).or_default();
        match urgency {
            Urgency::Urgent => server.urgent.insert(seq, waiter),
            Urgency::Routine => server.routine.insert(seq, waiter),
        };
        state
            .waiting
            .insert(request.policy.clone(), (request.server, seq));
        match self.dispatch(&mut state, Some(&*request.policy)) {
            Some(permit) => Admission::Granted(permit),
            None => Admission::Waiting,
        }
    }

    /// Makes a policy's waiting resync urgent, or its next admission if it is not waiting.
    pub fn expedite(&self, policy: &str) {
        let mut state = self.lock();
        if state.closed {
            return;
        }
        let Some((server, seq)) = state.waiting.get(policy).cloned() else {
            state.marked.insert(policy.into());
            return;
        };
        if let Some(queue) = state.servers.get_mut(&server)
            && let Some(mut waiter) = queue.routine.remove(&seq)
        {
            waiter.urgency = Urgency::Urgent;
            queue.urgent.insert(seq, waiter);
        }
    }

    /// Forgets what the queue holds for a policy that no longer exists: an urgent mark, its
    /// place, a slot held for it.
    pub fn forget(&self, policy: &str) {
        let granted = {
            let mut state = self.lock();
            state.marked.remove(policy);
            if let Some((server, seq)) = state.waiting.remove(policy)
                && let Some(queue) = state.servers.get_mut(&server)
            {
                queue.urgent.remove(&seq);
                queue.routine.remove(&seq);
            }
            state.granted.remove(policy)
        };
        // Frees its slot (which takes the lock).
        drop(granted);
    }

    /// Refuses every waiting and future admission (shutdown): waiting reconciles end at once
    /// instead of running one by one.
    pub fn close(&self) {
        let granted = {
            let mut state = self.lock();
            state.closed = true;
            state.marked.clear();
            state.waiting.clear();
            for queue in state.servers.values_mut() {
                queue.urgent.clear();
                queue.routine.clear();
            }
            std::mem::take(&mut state.granted)
        };
        // Frees their slots (which takes the lock).
        drop(granted);
    }

    /// Depth, running count and backlog now.
    pub fn snapshot(&self) -> Snapshot {
        let state = self.lock();
        let now = Instant::now();
        let mut snapshot = Snapshot {
            running: state.running,
            waiting: state.waiting.len(),
            ..Snapshot::default()
        };
        for queue in state.servers.values() {
            for waiter in queue.urgent.values().chain(queue.routine.values()) {
                let waited = now.saturating_duration_since(waiter.since);
                snapshot.oldest_wait = snapshot.oldest_wait.max(waited);
                if waiter.urgency == Urgency::Routine && waited > waiter.resync {
                    snapshot.overdue += 1;
                }
            }
        }
        snapshot
    }

    /// Admits waiting work while slots are free: per server, urgent first (up to the burst),
    /// then the longest-waiting across servers. `asking`'s slot is returned; every other
    /// admitted policy's is held for it and its controller woken.
    fn dispatch(self: &Arc<Self>, state: &mut State, asking: Option<&str>) -> Option<Permit> {
        let mut mine = None;
        while state.running < self.total {
            let Some((server, urgent)) = self.next_candidate(state) else {
                break;
            };
            let Some(queue) = state.servers.get_mut(&server) else {
                break;
            };
            let popped = if urgent {
                queue.urgent_streak += 1;
                queue.urgent.pop_first()
            } else {
                queue.urgent_streak = 0;
                queue.routine.pop_first()
            };
            let Some((_, waiter)) = popped else { break };
            queue.running += 1;
            state.running += 1;
            state.waiting.remove(&waiter.policy);
            let permit = Permit {
                queue: Some(self.clone()),
                server: server.clone(),
                at_server: AtomicBool::new(true),
                waited: waiter.since.elapsed(),
            };
            if asking == Some(&*waiter.policy) {
                mine = Some(permit);
            } else if waiter.wake.send(waiter.policy.clone()).is_ok() {
                state.granted.insert(waiter.policy, permit);
            } else {
                // Its controller is gone: take the slot back without re-entering the lock
                // (`Permit::drop` would).
                permit.disarm();
                Self::leave(state, &server);
                state.running -= 1;
            }
        }
        mine
    }

    /// The server and class of the next work to admit, if any may run.
    fn next_candidate(&self, state: &State) -> Option<(Arc<str>, bool)> {
        let mut best: Option<(u64, Arc<str>, bool)> = None;
        for (server, queue) in &state.servers {
            if queue.running >= self.per_server {
                continue;
            }
            let routine_head = queue.routine.keys().next().copied();
            let urgent_head = queue.urgent.keys().next().copied();
            let pick = match (urgent_head, routine_head) {
                (Some(_), Some(r)) if queue.urgent_streak >= URGENT_BURST => Some((r, false)),
                (Some(u), _) => Some((u, true)),
                (None, Some(r)) => Some((r, false)),
                (None, None) => None,
            };
            let Some((seq, urgent)) = pick else { continue };
            // Urgent work anywhere goes before routine work elsewhere; then the oldest.
            let better = match &best {
                None => true,
                Some((best_seq, _, best_urgent)) => {
                    (urgent, std::cmp::Reverse(seq)) > (*best_urgent, std::cmp::Reverse(*best_seq))
                }
            };
            if better {
                best = Some((seq, server.clone(), urgent));
            }
        }
        best.map(|(_, server, urgent)| (server, urgent))
    }

    /// Frees a slot; `at_server`: also its share of its server.
    fn release(self: &Arc<Self>, server: &Arc<str>, at_server: bool) {
        let mut state = self.lock();
        state.running = state.running.saturating_sub(1);
        if at_server {
            Self::leave(&mut state, server);
        }
        self.dispatch(&mut state, None);
    }

    /// Frees a share of `server`, keeping the slot.
    fn leave_server(self: &Arc<Self>, server: &Arc<str>) {
        let mut state = self.lock();
        Self::leave(&mut state, server);
        self.dispatch(&mut state, None);
    }

    fn leave(state: &mut State, server: &Arc<str>) {
        if let Some(queue) = state.servers.get_mut(server) {
            queue.running = queue.running.saturating_sub(1);
            if queue.running == 0 && queue.urgent.is_empty() && queue.routine.is_empty() {
                state.servers.remove(server);
            }
        }
    }
}

impl Permit {
    /// Says the reconcile is done talking to its identity server: the next one may, while this
    /// one keeps its slot for what is left (its Kubernetes writes). Idempotent.
    pub fn leave_server(&self) {
        if self.at_server.swap(false, Ordering::AcqRel)
            && let Some(queue) = &self.queue
        {
            queue.leave_server(&self.server);
        }
    }

    /// Frees nothing on drop: for a permit that was never handed out.
    fn disarm(mut self) {
        self.queue = None;
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(queue) = self.queue.take() {
            queue.release(&self.server, *self.at_server.get_mut());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    fn request(name: &str, server: &str, urgency: Urgency) -> Request {
        Request {
            policy: name.into(),
            server: server.into(),
            urgency,
            resync: Duration::from_secs(600),
        }
    }

    /// Runs `request` now if the queue lets it (`None`: it waits, its wake-ups unheard).
    fn granted(queue: &Arc<WorkQueue>, request: Request) -> Option<Permit> {
        let (wake, _woken) = mpsc::unbounded_channel();
        match queue.admit(request, &wake) {
            Admission::Granted(permit) => Some(permit),
            Admission::Waiting | Admission::Closed => None,
        }
    }

    /// Puts `request` in the queue, where it must wait, as a controller would: a task that,
    /// once woken, asks again, reports its name when admitted and frees the slot at once.
    fn enqueue(queue: &Arc<WorkQueue>, request: Request, order: &mpsc::UnboundedSender<String>) {
        let (wake, mut woken) = mpsc::unbounded_channel();
        assert!(
            matches!(queue.admit(request.clone(), &wake), Admission::Waiting),
            "{} waits",
            request.policy
        );
        let (queue, order) = (queue.clone(), order.clone());
        tokio::spawn(async move {
            while let Some(policy) = woken.recv().await {
                assert_eq!(policy, request.policy);
                if let Admission::Granted(permit) = queue.admit(request.clone(), &wake) {
                    let _ = order.send(request.policy.to_string());
                    drop(permit);
                    return;
                }
            }
        });
    }

    async fn drain(order: &mut mpsc::UnboundedReceiver<String>, n: usize) -> Vec<String> {
        let mut names = Vec::new();
        for _ in 0..n {
            names.push(order.recv().await.expect("admitted"));
        }
        names
    }

    #[tokio::test]
    async fn urgent_work_goes_first_and_resyncs_in_the_order_they_came() {
        let queue = WorkQueue::new(1, 1);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let busy = granted(&queue, request("busy", "s", Urgency::Routine));
        for (name, urgency) in [
            ("resync-1", Urgency::Routine),
            ("resync-2", Urgency::Routine),
            ("new", Urgency::Urgent),
            ("resync-3", Urgency::Routine),
            ("changed", Urgency::Urgent),
        ] {
            enqueue(&queue, request(name, "s", urgency), &tx);
        }
        drop(busy);
        assert_eq!(
            drain(&mut rx, 5).await,
            ["new", "changed", "resync-1", "resync-2", "resync-3"]
        );
        assert_eq!(queue.snapshot(), Snapshot::default());
    }

    #[tokio::test]
    async fn a_stream_of_urgent_work_cannot_starve_a_resync() {
        let queue = WorkQueue::new(1, 1);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let busy = granted(&queue, request("busy", "s", Urgency::Routine));
        enqueue(&queue, request("resync", "s", Urgency::Routine), &tx);
        for i in 0..10 {
            enqueue(&queue, request(&format!("u{i}"), "s", Urgency::Urgent), &tx);
        }
        drop(busy);
        let order = drain(&mut rx, 11).await;
        let position = order.iter().position(|n| n == "resync");
        assert_eq!(position, Some(URGENT_BURST as usize), "{order:?}");
    }

    #[tokio::test]
    async fn one_busy_server_leaves_slots_to_the_others() {
        let queue = WorkQueue::new(3, 2);
        let a1 = granted(&queue, request("a1", "a", Urgency::Routine));
        let a2 = granted(&queue, request("a2", "a", Urgency::Routine));
        let (tx, mut rx) = mpsc::unbounded_channel();
        enqueue(&queue, request("a3", "a", Urgency::Urgent), &tx);
        assert_eq!(
            queue.snapshot().running,
            2,
            "the server's limit holds a3 back"
        );
        let b1 = granted(&queue, request("b1", "b", Urgency::Routine));
        assert!(b1.is_some(), "another server still gets the free slot");
        assert_eq!(queue.snapshot().running, 3);
        drop(a1);
        assert_eq!(drain(&mut rx, 1).await, ["a3"]);
        drop((a2, b1));
        assert_eq!(queue.snapshot(), Snapshot::default());
    }

    #[tokio::test]
    async fn a_reconcile_done_with_its_server_frees_the_servers_share_but_not_its_slot() {
        let queue = WorkQueue::new(2, 1);
        let a1 = granted(&queue, request("a1", "a", Urgency::Routine)).expect("slot");
        let (tx, mut rx) = mpsc::unbounded_channel();
        enqueue(&queue, request("a2", "a", Urgency::Routine), &tx);
        assert_eq!(
            queue.snapshot().running,
            1,
            "the server's share holds a2 back"
        );
        a1.leave_server();
        a1.leave_server();
        assert_eq!(
            drain(&mut rx, 1).await,
            ["a2"],
            "a2 talks to the server now"
        );
        let (tx, mut rx) = mpsc::unbounded_channel();
        let b1 = granted(&queue, request("b1", "b", Urgency::Routine));
        assert_eq!(
            queue.snapshot().running,
            2,
            "a1 still counts against the total"
        );
        enqueue(&queue, request("c1", "c", Urgency::Routine), &tx);
        assert_eq!(queue.snapshot().waiting, 1, "the total holds c1 back");
        drop(a1);
        assert_eq!(drain(&mut rx, 1).await, ["c1"]);
        drop(b1);
        assert_eq!(queue.snapshot(), Snapshot::default());
    }

    #[tokio::test]
    async fn expediting_moves_a_waiting_resync_ahead_and_marks_one_not_yet_waiting() {
        let queue = WorkQueue::new(1, 1);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let busy = granted(&queue, request("busy", "s", Urgency::Routine));
        enqueue(&queue, request("old", "s", Urgency::Routine), &tx);
        enqueue(
            &queue,
            request("secret-changed", "s", Urgency::Routine),
            &tx,
        );
        queue.expedite("secret-changed");
        queue.expedite("later");
        enqueue(&queue, request("later", "s", Urgency::Routine), &tx);
        drop(busy);
        assert_eq!(drain(&mut rx, 3).await, ["secret-changed", "later", "old"]);
    }

    #[tokio::test]
    async fn a_forgotten_policy_gives_up_its_place_and_the_slot_held_for_it() {
        let queue = WorkQueue::new(1, 1);
        let busy = granted(&queue, request("busy", "s", Urgency::Routine));
        let (wake, mut woken) = mpsc::unbounded_channel();
        let gone = request("gone", "s", Urgency::Urgent);
        assert!(matches!(
            queue.admit(gone.clone(), &wake),
            Admission::Waiting
        ));
        assert!(
            matches!(queue.admit(gone.clone(), &wake), Admission::Waiting),
            "asking again keeps its one place"
        );
        assert_eq!(queue.snapshot().waiting, 1);
        queue.forget(&gone.policy);
        assert_eq!(queue.snapshot().waiting, 0, "its place is gone");
        let held = request("held", "s", Urgency::Urgent);
        assert!(matches!(
            queue.admit(held.clone(), &wake),
            Admission::Waiting
        ));
        drop(busy);
        assert_eq!(woken.recv().await, Some(held.policy.clone()), "woken");
        assert_eq!(queue.snapshot().running, 1, "a slot is held for it");
        queue.forget(&held.policy);
        assert_eq!(queue.snapshot(), Snapshot::default());
        assert!(granted(&queue, request("next", "s", Urgency::Routine)).is_some());
        assert_eq!(queue.snapshot().running, 0);
    }

    #[tokio::test]
    async fn closing_refuses_waiting_and_new_work() {
        let queue = WorkQueue::new(1, 1);
        let busy = granted(&queue, request("busy", "s", Urgency::Routine));
        let (tx, mut rx) = mpsc::unbounded_channel();
        enqueue(&queue, request("w", "s", Urgency::Urgent), &tx);
        queue.close();
        assert_eq!(
            queue.snapshot().waiting,
            0,
            "the waiting reconcile is dropped"
        );
        let (wake, _woken) = mpsc::unbounded_channel();
        assert!(matches!(
            queue.admit(request("n", "s", Urgency::Urgent), &wake),
            Admission::Closed
        ));
        drop(busy);
        assert_eq!(queue.snapshot(), Snapshot::default());
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(rx.try_recv().is_err(), "w never ran");
    }

    #[tokio::test]
    async fn resyncs_waiting_longer_than_their_interval_are_overdue() {
        let queue = WorkQueue::new(1, 1);
        let busy = granted(&queue, request("busy", "s", Urgency::Routine));
        let (tx, _rx) = mpsc::unbounded_channel();
        let mut late = request("late", "s", Urgency::Routine);
        late.resync = Duration::ZERO;
        enqueue(&queue, late, &tx);
        enqueue(&queue, request("on-time", "s", Urgency::Routine), &tx);
        tokio::time::sleep(Duration::from_millis(5)).await;
        let snapshot = queue.snapshot();
        assert_eq!(
            (snapshot.waiting, snapshot.running, snapshot.overdue),
            (2, 1, 1)
        );
        assert!(snapshot.oldest_wait >= Duration::from_millis(5));
        drop(busy);
    }
}
