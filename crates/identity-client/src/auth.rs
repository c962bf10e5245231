//! How the client gets a bearer token: the three credential kinds of the contract, and a token
//! cache that refreshes shortly before expiry with one request shared by all concurrent callers.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use super::error::IdentityError;
use super::types::SCOPE_SETTING;
use crate::secret::SecretString;

/// How to authenticate to the identity service. `Debug` shows no secret (they are
/// [`SecretString`]s); `Eq + Hash` let the controller key a client cache by credentials.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Credentials {
    /// External application, OAuth 2.0 client credentials at `{base}/connect/token`.
    ClientCredentials {
        /// The application id.
        client_id: String,
        /// The application secret.
        client_secret: SecretString,
        /// Scopes to ask for; empty means `PM.Setting`.
        scopes: Vec<String>,
    },
    /// A token given as is; never refreshed.
    BearerToken {
        /// The token.
        token: SecretString,
    },
    /// Legacy ROPC at the Orchestrator's `api/account/authenticate` (host administrators).
    Password {
        /// The full authenticate URL (`{orchestrator}/api/account/authenticate`).
        authenticate_url: String,
        /// The tenant's name.
        tenancy_name: String,
        /// User name or e-mail.
        username: String,
        /// The password.
        password: SecretString,
    },
}

impl Credentials {
    /// Whether a new token can be obtained after a 401 (not for a given bearer token).
    pub fn is_refreshable(&self) -> bool {
        !matches!(self, Credentials::BearerToken { .. })
    }

    /// The secret parts (client secret, token or password), so callers can redact them from
    /// text they did not write themselves.
    pub fn secrets(&self) -> Vec<SecretString> {
        match self {
            Credentials::ClientCredentials { client_secret, .. } => vec![client_secret.clone()],
            Credentials::BearerToken { token } => vec![token.clone()],
            Credentials::Password { password, .. } => vec![password.clone()],
        }
    }

    /// A short name of the kind, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Credentials::ClientCredentials { .. } => "client_credentials",
            Credentials::BearerToken { .. } => "bearer_token",
            Credentials::Password { .. } => "password",
        }
    }

    /// The `scope` form parameter: the scopes space-separated, `PM.Setting` when none are given.
    pub fn scope_param(scopes: &[String]) -> String {
        let scopes: Vec<&str> = scopes
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .collect();
        if scopes.is_empty() {
            SCOPE_SETTING.to_owned()
        } else {
            scopes.join(" ")
        }
    }

    /// Rejects credentials that cannot work (empty id, secret, token, user or password), naming
    /// the field, never its value.
    pub fn validate(&self) -> Result<(), IdentityError> {
        let empty = |field: &str| {
            Err(IdentityError::Configuration(format!(
                "{} credentials: {field} is empty",
                self.kind()
            )))
        };
        match self {
            Credentials::ClientCredentials {
                client_id,
                client_secret,
                ..
            } => {
                if client_id.trim().is_empty() {
                    return empty("client id");
                }
                if client_secret.is_empty() {
                    return empty("client secret");
                }
            }
            Credentials::BearerToken { token } => {
                if token.expose().trim().is_empty() {
                    return empty("token");
                }
            }
            Credentials::Password {
                username, password, ..
            } => {
                if username.trim().is_empty() {
                    return empty("username");
                }
                if password.is_empty() {
                    return empty("password");
                }
            }
        }
        Ok(())
    }
}

/// How long an ROPC token lives by default (the contract: 30 minutes).
pub const ROPC_TOKEN_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// Longest token lifetime the cache believes (24 h). A server's `expires_in` is clamped to it, so
/// that no value (up to `u64::MAX` seconds) can overflow the clock arithmetic, and a token is
/// refreshed at least daily.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// When to refresh a token of lifetime `lifetime` after it was obtained: at 90 % of its life or
/// 60 s before expiry, whichever is sooner, but never before half its life (so a very short-lived
/// token is still used for a while instead of being refreshed on every call).
pub fn refresh_delay(lifetime: Duration) -> Duration {
    let ninety = lifetime.mul_f64(0.9);
    let minute_before = lifetime.saturating_sub(Duration::from_secs(60));
    ninety.min(minute_before).max(lifetime / 2)
}

/// A token in use, with the generation that identifies it in the cache.
#[derive(Clone)]
pub struct Token {
    /// The bearer token.
    pub value: SecretString,
    /// Increases with every token fetched; 0 for a given bearer token.
    pub generation: u64,
}

struct Cached {
    token: Token,
    obtained: Instant,
    refresh_at: Instant,
    /// Until when the token may still be used when its refresh fails: its expiry less a margin
    /// for the trip to the server and clock differences.
    usable_until: Instant,
}

impl Cached {
    fn new(token: Token, lifetime: Duration) -> Self {
        let lifetime = lifetime.min(MAX_TOKEN_LIFETIME);
        let obtained = Instant::now();
        let margin = (lifetime / 10).min(Duration::from_secs(10));
        let at = |delay: Duration| obtained.checked_add(delay).unwrap_or(obtained);
        Self {
            token,
            obtained,
            refresh_at: at(refresh_delay(lifetime)),
            usable_until: at(lifetime - margin),
        }
    }

    /// The token, if it may still be used although a refresh is due (or failed).
    fn still_usable(&self, rejected: Option<u64>) -> Option<Token> {
        (Instant::now() < self.usable_until && rejected != Some(self.token.generation))
            .then(|| self.token.clone())
    }
}

#[derive(Default)]
struct State {
    cached: Option<Cached>,
    generation: u64,
    /// The last failed fetch and when it finished: callers that were already waiting get it too
    /// instead of each trying again.
    last_failure: Option<(Instant, IdentityError)>,
    /// After a failure that asking again cannot cure (credentials rejected, forbidden, a wrong
    /// URL): no fetch before this time, every caller gets that failure. A new credential set
    /// (the Secret changed) is a new cache, so it is tried at once.
    refused_until: Option<Instant>,
    /// Such failures in a row, for the backoff.
    refusals: u32,
}

/// The first wait after a token request that asking again cannot cure (1 minute), doubled for
/// each further one up to [`MAX_REFUSAL_BACKOFF`]: policies sharing a wrong password cost one
/// login attempt per backoff step, not one per policy per resync (which would lock the account).
pub const REFUSAL_BACKOFF: Duration = Duration::from_secs(60);
/// See [`REFUSAL_BACKOFF`].
pub const MAX_REFUSAL_BACKOFF: Duration = Duration::from_secs(3600);

/// The wait after the `refusals`-th refused token request in a row.
pub fn refusal_backoff(refusals: u32) -> Duration {
    REFUSAL_BACKOFF
        .saturating_mul(1u32 << refusals.saturating_sub(1).min(16))
        .min(MAX_REFUSAL_BACKOFF)
}

/// A token cache with single-flight refresh: the lock is held while a token is fetched, so
/// concurrent callers wait for that one request and then share its result (or its failure).
///
/// A proactive refresh (before expiry) that fails or is cancelled keeps the old token: it is
/// returned instead of the error until shortly before it expires, unless the server refused it.
#[derive(Default)]
pub struct TokenCache {
    state: Mutex<State>,
    fetches: AtomicU64,
}

impl TokenCache {
    /// A usable token: the cached one while fresh, else a new one from `fetch` (which returns the
    /// token and its lifetime). With `rejected` set to the generation the server just refused,
    /// that token is never returned again.
    pub async fn get<F, Fut>(&self, rejected: Option<u64>, fetch: F) -> Result<Token, IdentityError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(SecretString, Duration), IdentityError>>,
    {
        let asked = Instant::now();
        let mut state = self.state.lock().await;
        let now = Instant::now();
        if let Some(cached) = &state.cached {
            if rejected == Some(cached.token.generation) {
                // The server refused it: never hand it out again, not even as a fallback.
                state.cached = None;
            } else if now < cached.refresh_at || cached.obtained >= asked {
                return Ok(cached.token.clone());
            }
        }
        let fallback = |state: &State| state.cached.as_ref()?.still_usable(rejected);
        let refused = state.refused_until.is_some_and(|until| now < until);
        if let Some((at, error)) = &state.last_failure
            && (*at >= asked || refused)
        {
            return fallback(&state).ok_or_else(|| error.clone());
        }
        self.fetches.fetch_add(1, Ordering::Relaxed);
        match fetch().await {
            Ok((value, lifetime)) => {
                state.generation += 1;
                let token = Token {
                    value,
                    generation: state.generation,
                };
                state.cached = Some(Cached::new(token.clone(), lifetime));
                state.last_failure = None;
                state.refused_until = None;
                state.refusals = 0;
                Ok(token)
            }
            Err(error) => {
                let failed_at = Instant::now();
                if error.class() == crate::error::ErrorClass::Transient {
                    state.refusals = 0;
                    state.refused_until = None;
                } else {
                    state.refusals = state.refusals.saturating_add(1);
                    let wait = refusal_backoff(state.refusals);
                    state.refused_until = failed_at.checked_add(wait);
                }
                state.last_failure = Some((failed_at, error.clone()));
                match fallback(&state) {
                    Some(token) => {
                        tracing::debug!(
                            class = error.class().as_str(),
                            "token refresh failed; using the current token until it expires"
                        );
                        Ok(token)
                    }
                    None => Err(error),
                }
            }
        }
    }

    /// How long until the cached token is due for refresh (zero when it is due now); `None`
    /// when no token is cached, or while a fetch holds the cache.
    pub fn refresh_due_in(&self) -> Option<Duration> {
        let state = self.state.try_lock().ok()?;
        let cached = state.cached.as_ref()?;
        Some(cached.refresh_at.saturating_duration_since(Instant::now()))
    }

    /// How many times a token was fetched (each fetch is one token request).
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::observe::Endpoint;

    #[test]
    fn refused_token_requests_back_off_from_a_minute_to_an_hour() {
        assert_eq!(refusal_backoff(1), Duration::from_secs(60));
        assert_eq!(refusal_backoff(2), Duration::from_secs(120));
        assert_eq!(refusal_backoff(7), MAX_REFUSAL_BACKOFF);
        assert_eq!(refusal_backoff(u32::MAX), MAX_REFUSAL_BACKOFF);
    }

    #[test]
    fn refresh_happens_before_expiry() {
        assert_eq!(
            refresh_delay(Duration::from_secs(3600)),
            Duration::from_secs(3240)
        );
        assert_eq!(
            refresh_delay(ROPC_TOKEN_LIFETIME),
            Duration::from_secs(1620)
        );
        assert_eq!(
            refresh_delay(Duration::from_secs(300)),
            Duration::from_secs(240)
        );
        assert_eq!(
            refresh_delay(Duration::from_secs(100)),
            Duration::from_secs(50)
        );
        assert_eq!(
            refresh_delay(Duration::from_secs(2)),
            Duration::from_secs(1)
        );
        assert_eq!(refresh_delay(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn scopes_default_and_join() {
        assert_eq!(Credentials::scope_param(&[]), "PM.Setting");
        assert_eq!(Credentials::scope_param(&[" ".into()]), "PM.Setting");
        assert_eq!(
            Credentials::scope_param(&["PM.Setting".into(), "PM.Setting.Read".into()]),
            "PM.Setting PM.Setting.Read"
        );
    }

    #[test]
    fn debug_redacts_and_validation_names_fields_only() {
        let c = Credentials::ClientCredentials {
            client_id: "app".into(),
            client_secret: "hunter2".into(),
            scopes: vec![],
        };
        assert!(!format!("{c:?}").contains("hunter2"));
        let p = Credentials::Password {
            authenticate_url: "https://h/api/account/authenticate".into(),
            tenancy_name: "Default".into(),
            username: "admin".into(),
            password: "".into(),
        };
        let err = p.validate().unwrap_err();
        assert!(err.to_string().contains("password is empty"));
        assert!(c.validate().is_ok());
        assert!(
            Credentials::BearerToken { token: " ".into() }
                .validate()
                .is_err()
        );
    }

    fn ok(value: &str, lifetime: Duration) -> Result<(SecretString, Duration), IdentityError> {
        Ok((SecretString::new(value), lifetime))
    }

    #[tokio::test]
    async fn cached_until_refresh_time_then_refetched() {
        let cache = TokenCache::default();
        let t1 = cache
            .get(None, || async { ok("a", Duration::from_secs(3600)) })
            .await
            .unwrap();
        let t2 = cache
            .get(None, || async { ok("b", Duration::from_secs(3600)) })
            .await
            .unwrap();
        assert_eq!(t1.value.expose(), "a");
        assert_eq!(t2.value.expose(), "a");
        assert_eq!(cache.fetches(), 1);
        let t3 = cache
            .get(Some(t1.generation), || async { ok("c", Duration::ZERO) })
            .await
            .unwrap();
        assert_eq!(t3.value.expose(), "c");
        // Lifetime zero: stale at once, so the next call fetches again.
        let t4 = cache
            .get(None, || async { ok("d", Duration::from_secs(60)) })
            .await
            .unwrap();
        assert_eq!(t4.value.expose(), "d");
        assert_eq!(cache.fetches(), 3);
    }

    fn unavailable() -> Result<(SecretString, Duration), IdentityError> {
        Err(IdentityError::Unavailable {
            endpoint: Endpoint::Token,
            url: "https://h/connect/token".into(),
            status: 503,
            retry_after: None,
            message: None,
        })
    }

    #[tokio::test]
    async fn extreme_lifetimes_neither_panic_nor_cache_forever() {
        let cache = TokenCache::default();
        let huge = Duration::from_secs(u64::MAX);
        let t1 = cache.get(None, || async { ok("a", huge) }).await.unwrap();
        let t2 = cache.get(None, || async { ok("b", huge) }).await.unwrap();
        assert_eq!((t1.value.expose(), t2.value.expose()), ("a", "a"));
        assert_eq!(cache.fetches(), 1);
        let t3 = cache
            .get(Some(t1.generation), || async { ok("c", Duration::MAX) })
            .await
            .unwrap();
        assert_eq!(t3.value.expose(), "c");

        // `expires_in: 0`: the caller that fetched it uses it, the next one fetches again, and a
        // failed refresh has nothing to fall back to.
        let zero = TokenCache::default();
        let t = zero
            .get(None, || async { ok("z", Duration::ZERO) })
            .await
            .unwrap();
        assert_eq!(t.value.expose(), "z");
        assert!(zero.get(None, || async { unavailable() }).await.is_err());
        assert_eq!(zero.fetches(), 2);
    }

    #[tokio::test]
    async fn a_failed_or_cancelled_refresh_keeps_the_token_until_it_expires() {
        let cache = TokenCache::default();
        let lifetime = Duration::from_secs(2);
        cache
            .get(None, || async { ok("a", lifetime) })
            .await
            .unwrap();
        // Past the refresh time (1 s), before the expiry (2 s, usable until 1.8 s).
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let cancelled = tokio::time::timeout(
            Duration::from_millis(20),
            cache.get(None, std::future::pending),
        )
        .await;
        assert!(cancelled.is_err());
        let t = cache.get(None, || async { unavailable() }).await.unwrap();
        assert_eq!(t.value.expose(), "a");
        assert_eq!(cache.fetches(), 3);
        // A token the server refused is not a fallback.
        assert!(
            cache
                .get(Some(t.generation), || async { unavailable() })
                .await
                .is_err()
        );
        let fresh = TokenCache::default();
        fresh
            .get(None, || async { ok("b", lifetime) })
            .await
            .unwrap();
        // After the expiry the failure is reported.
        tokio::time::sleep(Duration::from_millis(1900)).await;
        assert!(fresh.get(None, || async { unavailable() }).await.is_err());
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_fetch_and_its_failure() {
        let cache = Arc::new(TokenCache::default());
        let slow = || async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            ok("shared", Duration::from_secs(3600))
        };
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let cache = cache.clone();
                tokio::spawn(async move { cache.get(None, slow).await.map(|t| t.generation) })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), 1);
        }
        assert_eq!(cache.fetches(), 1);

        // All 50 were refused with generation 1: one refresh serves them all.
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let cache = cache.clone();
                tokio::spawn(async move { cache.get(Some(1), slow).await.map(|t| t.generation) })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), 2);
        }
        assert_eq!(cache.fetches(), 2);

        let failing = Arc::new(TokenCache::default());
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let cache = failing.clone();
                tokio::spawn(async move {
                    cache
                        .get(None, || async {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Err(IdentityError::Timeout {
                                endpoint: Endpoint::Token,
                                url: "https://h/connect/token".into(),
                            })
                        })
                        .await
                        .is_err()
                })
            })
            .collect();
        for t in tasks {
            assert!(t.await.unwrap());
        }
        assert_eq!(failing.fetches(), 1);
        // A timeout is not remembered: the next caller tries again.
        let _ = failing
            .get(None, || async { ok("later", Duration::from_secs(60)) })
            .await;
        assert_eq!(failing.fetches(), 2);
    }

    #[tokio::test]
    async fn rejected_credentials_are_not_tried_again_until_the_backoff_passes() {
        let cache = TokenCache::default();
        let rejected = || async {
            Err(IdentityError::Unauthorized {
                endpoint: Endpoint::Token,
                url: "https://h/connect/token".into(),
                status: 400,
                detail: Some("invalid_client".into()),
                hint: None,
            })
        };
        assert!(cache.get(None, rejected).await.is_err());
        for _ in 0..10 {
            let error = cache
                .get(None, rejected)
                .await
                .err()
                .expect("still refused");
            assert_eq!(error.class(), crate::error::ErrorClass::Authentication);
        }
        assert_eq!(cache.fetches(), 1, "one login attempt, ten callers told");
        // The backoff passed (as refusal_backoff says when): the next caller tries again.
        cache.state.lock().await.refused_until = Some(Instant::now());
        let token = cache
            .get(None, || async { ok("fixed", Duration::from_secs(60)) })
            .await;
        assert!(
            token.is_ok(),
            "fixed on the server side: found at the next step"
        );
        assert_eq!(cache.fetches(), 2);
    }
}
