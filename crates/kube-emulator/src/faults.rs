//! Fault injection: lets tests see how an operator copes with a misbehaving apiserver.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

/// Handle for injecting faults into a running emulator. Cheap to clone; all clones share state,
/// which survives [`super::KubeEmulator::restart`].
#[derive(Clone, Debug)]
pub struct EmulatorFaults {
    inner: Arc<FaultState>,
}

#[derive(Debug, Clone)]
struct Failure {
    remaining: u32,
    status: u16,
    /// Only requests for this resource (plural, e.g. `secrets`) fail; `None`: every request.
    resource: Option<String>,
}

#[derive(Debug)]
struct FaultState {
    /// Remaining injected failures, their HTTP status, and the resource they are limited to.
    fail: Mutex<Option<Failure>>,
    /// Bumped by `drop_watches`; every open watch ends when it changes.
    drop_tx: watch::Sender<u64>,
}

impl EmulatorFaults {
    pub(crate) fn new() -> Self {
        Self {
            inner: Arc::new(FaultState {
                fail: Mutex::new(None),
                drop_tx: watch::channel(0).0,
            }),
        }
    }

    /// Ends every open watch now (the response body finishes cleanly, as when an apiserver
    /// instance closes a watch); new watches are served normally.
    pub fn drop_watches(&self) {
        self.inner.drop_tx.send_modify(|g| *g += 1);
    }

    /// The next `n` requests (of any verb; watches already streaming are unaffected) are
    /// answered with a Kubernetes `Status` error of HTTP `status`. A 429 carries `Retry-After: 1`.
    /// Note that kube-rs's default client retries 429, 503 and 504 on its own.
    ///
    /// Arming replaces any failures still pending (from this or [`Self::fail_next_for`]); it
    /// does not add to them.
    pub fn fail_next(&self, n: u32, status: u16) {
        self.arm(n, status, None);
    }

    /// Like [`Self::fail_next`], but only requests for `resource` (its plural, e.g. `secrets`)
    /// fail, so a test can aim at one kind of call while its own calls go through. The plural
    /// is matched alone, so `events` hits both the core and the `events.k8s.io` Event APIs.
    /// Like `fail_next`, it replaces failures still pending.
    pub fn fail_next_for(&self, n: u32, status: u16, resource: &str) {
        self.arm(n, status, Some(resource.to_owned()));
    }

    fn arm(&self, n: u32, status: u16, resource: Option<String>) {
        let mut fail = self
            .inner
            .fail
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *fail = (n > 0).then_some(Failure {
            remaining: n,
            status,
            resource,
        });
    }

    /// Cancels pending injected failures.
    pub fn clear(&self) {
        self.fail_next(0, 0);
    }

    /// Consumes one pending failure that applies to a request for `resource`, returning its
    /// status code.
    pub(crate) fn take_failure(&self, resource: &str) -> Option<u16> {
        let mut fail = self
            .inner
            .fail
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let f = fail.clone()?;
        if f.resource.as_deref().is_some_and(|r| r != resource) {
            return None;
        }
        *fail = (f.remaining > 1).then_some(Failure {
            remaining: f.remaining - 1,
            ..f.clone()
        });
        Some(f.status)
    }

    /// A receiver that changes whenever `drop_watches` is called.
    pub(crate) fn drop_signal(&self) -> watch::Receiver<u64> {
        self.inner.drop_tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_next_counts_down() {
        let f = EmulatorFaults::new();
        f.fail_next(2, 500);
        assert_eq!(f.take_failure("secrets"), Some(500));
        assert_eq!(f.take_failure("leases"), Some(500));
        assert_eq!(f.take_failure("secrets"), None);
        f.fail_next(5, 429);
        f.clear();
        assert_eq!(f.take_failure("secrets"), None);
    }

    #[test]
    fn fail_next_for_only_hits_its_resource() {
        let f = EmulatorFaults::new();
        f.fail_next_for(1, 500, "secrets");
        assert_eq!(f.take_failure("leases"), None);
        assert_eq!(f.take_failure("secrets"), Some(500));
        assert_eq!(f.take_failure("secrets"), None);
    }

    #[test]
    fn drop_watches_signals_subscribers() {
        let f = EmulatorFaults::new();
        let rx = f.drop_signal();
        assert!(!rx.has_changed().unwrap());
        f.drop_watches();
        assert!(rx.has_changed().unwrap());
    }
}
