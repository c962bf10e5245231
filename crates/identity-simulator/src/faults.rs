//! Injected failures, so tests can drive the operator's retry, backoff and error paths.
//!
//! Pending faults are consumed one per request, in arrival order. When several kinds are pending
//! at once a request takes them in this precedence: drop, HTML, failure status. Faults hit before
//! authentication (as a proxy or gateway in front of the service would) and a faulted request never
//! reaches the store.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::auth::TokenStore;

/// Controls the faults of a running simulator; cloning is cheap and every clone controls the same
/// simulator.
#[derive(Clone)]
pub struct Faults {
    state: Arc<Mutex<FaultState>>,
    tokens: Arc<TokenStore>,
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults")
            .field("state", &*self.lock())
            .finish_non_exhaustive()
    }
}

/// What is pending.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct FaultState {
    fail: Option<Failure>,
    fail_token: Option<Failure>,
    latency: Duration,
    answer_latency: Duration,
    html: u32,
    drop: u32,
}

/// A pending failure status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Failure {
    remaining: u32,
    status: u16,
    retry_after: Option<Duration>,
}

impl Failure {
    /// Consumes one, returning what to answer.
    fn take(slot: &mut Option<Failure>) -> Option<Failure> {
        let f = slot.as_mut()?;
        if f.remaining == 0 {
            *slot = None;
            return None;
        }
        f.remaining -= 1;
        let taken = *f;
        if f.remaining == 0 {
            *slot = None;
        }
        Some(taken)
    }
}

/// The fault a Setting request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SettingFault {
    /// Close the connection without answering.
    Drop,
    /// Answer 200 with an HTML login page.
    Html,
    /// Answer `status` with a problem body.
    Fail {
        status: u16,
        retry_after: Option<Duration>,
    },
}

impl Faults {
    pub(crate) fn new(tokens: Arc<TokenStore>) -> Self {
        Self {
            state: Arc::default(),
            tokens,
        }
    }

    /// The next `n` Setting requests (GET or PUT) answer `status` with a JSON problem body and,
    /// when given, a `Retry-After` header in whole seconds (rounded up). Replaces an earlier
    /// pending `fail_next`. A status that is not a valid HTTP status is answered as 500.
    pub fn fail_next(&self, n: u32, status: u16, retry_after: Option<Duration>) {
        self.lock().fail = (n > 0).then_some(Failure {
            remaining: n,
            status,
            retry_after,
        });
    }

    /// The next `n` token requests (client credentials or ROPC, counted together) answer `status`
    /// with a JSON problem body. Replaces an earlier pending `fail_next_token`.
    pub fn fail_next_token(&self, n: u32, status: u16) {
        self.lock().fail_token = (n > 0).then_some(Failure {
            remaining: n,
            status,
            retry_after: None,
        });
    }

    /// Every Setting request waits this long before anything else; zero turns it off.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// Every PUT the store took waits this long before its answer is sent (a slow way back):
    /// the write is made, the client does not know yet. Zero turns it off.
    pub fn set_answer_latency(&self, latency: Duration) {
        self.lock().answer_latency = latency;
    }

    /// The next `n` Setting requests answer 200 with `Content-Type: text/html` and a login page,
    /// as a misconfigured proxy would.
    pub fn html_next(&self, n: u32) {
        self.lock().html = n;
    }

    /// The next `n` Setting requests are read and then the connection is closed without any
    /// response.
    pub fn drop_next(&self, n: u32) {
        self.lock().drop = n;
    }

    /// Every token issued so far (client credentials and ROPC) becomes invalid now: its next use
    /// gets 401. Fixed bearer tokens from the configuration are not affected.
    pub fn expire_all_tokens(&self) {
        self.tokens.expire_all();
    }

    /// Removes every pending fault and the latency.
    pub fn clear(&self) {
        *self.lock() = FaultState::default();
    }

    /// The configured latency for Setting requests.
    pub(crate) fn latency(&self) -> Duration {
        self.lock().latency
    }

    /// The configured delay of PUT answers (see [`Self::set_answer_latency`]).
    pub(crate) fn answer_latency(&self) -> Duration {
        self.lock().answer_latency
    }

    /// Consumes the fault the next Setting request gets, if any.
    pub(crate) fn take_setting_fault(&self) -> Option<SettingFault> {
        let mut state = self.lock();
        if state.drop > 0 {
            state.drop -= 1;
            return Some(SettingFault::Drop);
        }
        if state.html > 0 {
            state.html -= 1;
            return Some(SettingFault::Html);
        }
        Failure::take(&mut state.fail).map(|f| SettingFault::Fail {
            status: f.status,
            retry_after: f.retry_after,
        })
    }

    /// Consumes the failure status the next token request gets, if any.
    pub(crate) fn take_token_fault(&self) -> Option<u16> {
        Failure::take(&mut self.lock().fail_token).map(|f| f.status)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FaultState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn faults() -> Faults {
        Faults::new(Arc::new(TokenStore::new(Vec::new())))
    }

    #[test]
    fn failures_are_consumed_one_per_request() {
        let f = faults();
        f.fail_next(2, 503, Some(Duration::from_secs(1)));
        let expected = SettingFault::Fail {
            status: 503,
            retry_after: Some(Duration::from_secs(1)),
        };
        assert_eq!(f.take_setting_fault(), Some(expected));
        assert_eq!(f.take_setting_fault(), Some(expected));
        assert_eq!(f.take_setting_fault(), None);
    }

    #[test]
    fn precedence_is_drop_then_html_then_failure() {
        let f = faults();
        f.fail_next(1, 500, None);
        f.html_next(1);
        f.drop_next(1);
        assert_eq!(f.take_setting_fault(), Some(SettingFault::Drop));
        assert_eq!(f.take_setting_fault(), Some(SettingFault::Html));
        assert!(matches!(
            f.take_setting_fault(),
            Some(SettingFault::Fail { status: 500, .. })
        ));
        assert_eq!(f.take_setting_fault(), None);
    }

    #[test]
    fn token_faults_are_separate_and_clear_resets_everything() {
        let f = faults();
        f.fail_next_token(1, 429);
        f.set_latency(Duration::from_millis(5));
        assert_eq!(f.take_setting_fault(), None);
        assert_eq!(f.take_token_fault(), Some(429));
        assert_eq!(f.take_token_fault(), None);
        f.fail_next(0, 500, None);
        assert_eq!(f.take_setting_fault(), None);
        f.drop_next(3);
        f.clear();
        assert_eq!(f.take_setting_fault(), None);
        assert_eq!(f.latency(), Duration::ZERO);
    }
}
