//! The work queue every reconcile passes before it does any I/O: it decides which policy goes
//! next, so that none is starved however many are due.
//!
//! kube-runtime's controller runs a due policy at once when it has a free slot; when it has
//! none, due policies wait in a hash set and leave it in hash order, so at the concurrency limit
//! a new or changed policy has no precedence over a routine resync and some policies are never
//! reached. Here the controller runs every due policy at once, and each waits in this queue
//! (cheaply: the reconcile proper is built only when it is admitted) until a slot is free:
//!
//! - at most `total` reconciles run at once, and at most `per_server` for one identity server
//!   (a slow server cannot take every slot from the others);
//! - urgent work — a new, changed or deleted policy, a changed Secret — goes before routine
//!   resyncs, but after [`URGENT_BURST`] urgent admissions in a row for one server the oldest
//!   routine one goes, so resyncs are delayed, never starved;
//! - within a class, the policy that has waited longest goes first (first come, first served).
//!
//! How long admitted work waited is the operator's backlog: [`WorkQueue::snapshot`] feeds the
//! queue metrics and the "cannot keep up" warning.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use kube::runtime::reflector::ObjectRef;
use tokio::sync::oneshot;

use crate::api::IdentitySettingPolicy;

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
    /// The policy.
    pub policy: ObjectRef<IdentitySettingPolicy>,
    /// The identity server it talks to (its URL), so one server's backlog does not hold up
    /// another's.
    pub server: Arc<str>,
    /// Its class.
    pub urgency: Urgency,
    /// Its resync interval: waiting longer than this means the operator is not keeping up.
    pub resync: Duration,
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
    waiting: HashMap<ObjectRef<IdentitySettingPolicy>, (Arc<str>, u64)>,
    /// Policies made urgent while not waiting: their next admission is urgent.
    marked: HashSet<ObjectRef<IdentitySettingPolicy>>,
}

#[derive(Default)]
struct ServerQueue {
    running: usize,
    urgent: BTreeMap<u64, Waiter>,
    routine: BTreeMap<u64, Waiter>,
    urgent_streak: u32,
}

struct Waiter {
    policy: ObjectRef<IdentitySettingPolicy>,
    since: Instant,
    resync: Duration,
    urgency: Urgency,
    admit: oneshot::Sender<Permit>,
}

impl WorkQueue {
    /// A queue running at most `total` reconciles at once, at most `per_server` of them for one
    /// identity server (both at least 1).
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

    /// Waits for a slot; `None` once the queue is closed (shutdown). Dropping the returned
    /// future gives up the place in the queue.
    pub async fn admit(self: &Arc<Self>, request: Request) -> Option<Permit> {
        let since = Instant::now();
        let (admit, admitted) = oneshot::channel();
        let seq = {
            let mut state = self.lock();
            if state.closed {
                return None;
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
                since,
                resync: request.resync,
                urgency,
                admit,
            };
            let server = state.servers.entry(request.server.clone()).or_default();
            match urgency {
                Urgency::Urgent => server.urgent.insert(seq, waiter),
                Urgency::Routine => server.routine.insert(seq, waiter),
            };
            state
                .waiting
                .insert(request.policy.clone(), (request.server.clone(), seq));
            self.dispatch(&mut state);
            seq
        };
        let mut place = Place {
            queue: self,
            policy: &request.policy,
            seq,
        };
        let permit = admitted.await.ok();
        place.seq = u64::MAX;
        permit
    }

    /// Makes a policy's waiting resync urgent, or its next admission if it is not waiting.
    pub fn expedite(&self, policy: &ObjectRef<IdentitySettingPolicy>) {
        let mut state = self.lock();
        if state.closed {
            return;
        }
        let Some((server, seq)) = state.waiting.get(policy).cloned() else {
            state.marked.insert(policy.clone());
            return;
        };
        if let Some(queue) = state.servers.get_mut(&server)
            && let Some(mut waiter) = queue.routine.remove(&seq)
        {
            waiter.urgency = Urgency::Urgent;
            queue.urgent.insert(seq, waiter);
        }
    }

    /// Forgets what the queue holds for a policy that no longer exists (an urgent mark).
    pub fn forget(&self, policy: &ObjectRef<IdentitySettingPolicy>) {
        self.lock().marked.remove(policy);
    }

    /// Refuses every waiting and future admission (shutdown): waiting reconciles end at once
    /// instead of running one by one.
    pub fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.marked.clear();
        state.waiting.clear();
        for queue in state.servers.values_mut() {
            queue.urgent.clear();
            queue.routine.clear();
        }
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
    /// then the longest-waiting across servers.
    fn dispatch(self: &Arc<Self>, state: &mut State) {
        while state.running < self.total {
            let Some((server, urgent)) = self.next_candidate(state) else {
                return;
            };
            let Some(queue) = state.servers.get_mut(&server) else {
                return;
            };
            let popped = if urgent {
                queue.urgent_streak += 1;
                queue.urgent.pop_first()
            } else {
                queue.urgent_streak = 0;
                queue.routine.pop_first()
            };
            let Some((_, waiter)) = popped else { return };
            queue.running += 1;
            state.running += 1;
            state.waiting.remove(&waiter.policy);
            let permit = Permit {
                queue: Some(self.clone()),
                server: server.clone(),
                waited: waiter.since.elapsed(),
            };
            if let Err(unused) = waiter.admit.send(permit) {
                // The waiter gave up in the meantime: take the slot back without re-entering
                // the lock (`Permit::drop` would).
                unused.disarm();
                if let Some(queue) = state.servers.get_mut(&server) {
                    queue.running -= 1;
                }
                state.running -= 1;
            }
        }
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

    fn release(self: &Arc<Self>, server: &Arc<str>) {
        let mut state = self.lock();
        state.running = state.running.saturating_sub(1);
        if let Some(queue) = state.servers.get_mut(server) {
            queue.running = queue.running.saturating_sub(1);
            if queue.running == 0 && queue.urgent.is_empty() && queue.routine.is_empty() {
                state.servers.remove(server);
            }
        }
        self.dispatch(&mut state);
    }
}

/// A waiting admission's place; leaving it (the admission future dropped) removes it.
struct Place<'a> {
    queue: &'a Arc<WorkQueue>,
    policy: &'a ObjectRef<IdentitySettingPolicy>,
    /// `u64::MAX` once admitted or refused.
    seq: u64,
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        if self.seq == u64::MAX {
            return;
        }
        let mut state = self.queue.lock();
        if let Some((server, seq)) = state.waiting.get(self.policy).cloned()
            && seq == self.seq
        {
            state.waiting.remove(self.policy);
            if let Some(queue) = state.servers.get_mut(&server) {
                queue.urgent.remove(&seq);
                queue.routine.remove(&seq);
            }
        }
    }
}

impl Permit {
    /// Frees nothing on drop: for a permit that was never handed out.
    fn disarm(mut self) {
        self.queue = None;
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(queue) = self.queue.take() {
            queue.release(&self.server);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    fn request(name: &str, server: &str, urgency: Urgency) -> Request {
        Request {
            policy: ObjectRef::new(name).within("ns"),
            server: server.into(),
            urgency,
            resync: Duration::from_secs(600),
        }
    }

    /// Puts `request` in the queue from a task that reports its name when admitted and then
    /// frees the slot at once; returns when it waits.
    async fn enqueue(
        queue: &Arc<WorkQueue>,
        request: Request,
        order: &mpsc::UnboundedSender<String>,
    ) {
        let before = queue.snapshot().waiting;
        let (queue2, order) = (queue.clone(), order.clone());
        tokio::spawn(async move {
            let name = request.policy.name.clone();
            if let Some(permit) = queue2.admit(request).await {
                let _ = order.send(name);
                drop(permit);
            }
        });
        while queue.snapshot().waiting == before {
            tokio::task::yield_now().await;
        }
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
        let busy = queue.admit(request("busy", "s", Urgency::Routine)).await;
        for (name, urgency) in [
            ("resync-1", Urgency::Routine),
            ("resync-2", Urgency::Routine),
            ("new", Urgency::Urgent),
            ("resync-3", Urgency::Routine),
            ("changed", Urgency::Urgent),
        ] {
            enqueue(&queue, request(name, "s", urgency), &tx).await;
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
        let busy = queue.admit(request("busy", "s", Urgency::Routine)).await;
        enqueue(&queue, request("resync", "s", Urgency::Routine), &tx).await;
        for i in 0..10 {
            enqueue(&queue, request(&format!("u{i}"), "s", Urgency::Urgent), &tx).await;
        }
        drop(busy);
        let order = drain(&mut rx, 11).await;
        let position = order.iter().position(|n| n == "resync");
        assert_eq!(position, Some(URGENT_BURST as usize), "{order:?}");
    }

    #[tokio::test]
    async fn one_busy_server_leaves_slots_to_the_others() {
        let queue = WorkQueue::new(3, 2);
        let a1 = queue.admit(request("a1", "a", Urgency::Routine)).await;
        let a2 = queue.admit(request("a2", "a", Urgency::Routine)).await;
        let (tx, mut rx) = mpsc::unbounded_channel();
        enqueue(&queue, request("a3", "a", Urgency::Urgent), &tx).await;
        assert_eq!(
            queue.snapshot().running,
            2,
            "the server's limit holds a3 back"
        );
        let b1 = queue.admit(request("b1", "b", Urgency::Routine)).await;
        assert!(b1.is_some(), "another server still gets the free slot");
        assert_eq!(queue.snapshot().running, 3);
        drop(a1);
        assert_eq!(drain(&mut rx, 1).await, ["a3"]);
        drop((a2, b1));
        assert_eq!(queue.snapshot(), Snapshot::default());
    }

    #[tokio::test]
    async fn expediting_moves_a_waiting_resync_ahead_and_marks_one_not_yet_waiting() {
        let queue = WorkQueue::new(1, 1);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let busy = queue.admit(request("busy", "s", Urgency::Routine)).await;
        enqueue(&queue, request("old", "s", Urgency::Routine), &tx).await;
        enqueue(
            &queue,
            request("secret-changed", "s", Urgency::Routine),
            &tx,
        )
        .await;
        queue.expedite(&ObjectRef::new("secret-changed").within("ns"));
        queue.expedite(&ObjectRef::new("later").within("ns"));
        enqueue(&queue, request("later", "s", Urgency::Routine), &tx).await;
        drop(busy);
        assert_eq!(drain(&mut rx, 3).await, ["secret-changed", "later", "old"]);
    }

    #[tokio::test]
    async fn giving_up_a_place_or_an_unclaimed_slot_loses_no_capacity() {
        let queue = WorkQueue::new(1, 1);
        let busy = queue.admit(request("busy", "s", Urgency::Routine)).await;
        let gave_up = tokio::time::timeout(
            Duration::from_millis(10),
            queue.admit(request("impatient", "s", Urgency::Urgent)),
        )
        .await;
        assert!(gave_up.is_err());
        assert_eq!(queue.snapshot().waiting, 0, "its place is gone");
        drop(busy);
        assert_eq!(queue.snapshot(), Snapshot::default());
        assert!(
            queue
                .admit(request("next", "s", Urgency::Routine))
                .await
                .is_some()
        );
        assert_eq!(queue.snapshot().running, 0);
    }

    #[tokio::test]
    async fn closing_refuses_waiting_and_new_work() {
        let queue = WorkQueue::new(1, 1);
        let busy = queue.admit(request("busy", "s", Urgency::Routine)).await;
        let waiting = {
            let queue = queue.clone();
            tokio::spawn(async move {
                queue
                    .admit(request("w", "s", Urgency::Urgent))
                    .await
                    .is_some()
            })
        };
        while queue.snapshot().waiting == 0 {
            tokio::task::yield_now().await;
        }
        queue.close();
        assert!(
            !waiting.await.expect("task"),
            "a waiting reconcile is refused"
        );
        assert!(
            queue
                .admit(request("n", "s", Urgency::Urgent))
                .await
                .is_none()
        );
        drop(busy);
        assert_eq!(queue.snapshot(), Snapshot::default());
    }

    #[tokio::test]
    async fn resyncs_waiting_longer_than_their_interval_are_overdue() {
        let queue = WorkQueue::new(1, 1);
        let busy = queue.admit(request("busy", "s", Urgency::Routine)).await;
        let (tx, _rx) = mpsc::unbounded_channel();
        let mut late = request("late", "s", Urgency::Routine);
        late.resync = Duration::ZERO;
        enqueue(&queue, late, &tx).await;
        enqueue(&queue, request("on-time", "s", Urgency::Routine), &tx).await;
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
