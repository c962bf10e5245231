//! Tokens: issuing opaque random tokens, recognising them on the Setting API, expiring them.
//!
//! Tokens are random opaque strings (64 hex characters), not JWTs: the operator must treat them
//! as opaque, which is also right for the real service. The real service issues JWTs whose
//! expiry the operator could read; the simulator's cannot be read, so the operator must rely on
//! `expires_in` as the contract says.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::{ClientApp, FixedToken};

/// How long a ROPC token lives (the contract: 30 minutes by default).
pub const ROPC_TOKEN_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// How long an expired token is remembered (so its use reads as "expired", not "unknown").
const FORGET_AFTER: Duration = Duration::from_secs(3600);

/// Why a bearer token was refused; shown in the `WWW-Authenticate` header, never with the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TokenRejection {
    /// No `Authorization: Bearer …` header.
    #[error("no bearer token")]
    Missing,
    /// The token was never issued (or was forgotten).
    #[error("the token is not known")]
    Unknown,
    /// The token's lifetime is over or it was expired by a fault.
    #[error("the token expired")]
    Expired,
}

/// One issued token.
struct Issued {
    scopes: Vec<String>,
    expires_at: Instant,
}

/// The tokens the Setting API accepts.
pub(crate) struct TokenStore {
    fixed: Vec<FixedToken>,
    issued: Mutex<HashMap<String, Issued>>,
}

impl TokenStore {
    /// A store accepting `fixed` tokens as given, forever.
    pub(crate) fn new(fixed: Vec<FixedToken>) -> Self {
        Self {
            fixed,
            issued: Mutex::default(),
        }
    }

    /// Issues a new random token with `scopes`, valid for `lifetime` (a lifetime beyond what the
    /// clock can represent, like `Duration::MAX`, means as long as it can: never expired).
    pub(crate) fn issue(&self, scopes: Vec<String>, lifetime: Duration) -> String {
        let token = random_token();
        let now = Instant::now();
        let expires_at = saturating_add(now, lifetime);
        let mut issued = self.lock();
        issued.retain(|_, t| {
            t.expires_at
                .checked_add(FORGET_AFTER)
                .is_none_or(|forget_at| forget_at > now)
        });
        issued.insert(token.clone(), Issued { scopes, expires_at });
        token
    }

    /// The scopes of a valid token.
    pub(crate) fn check(&self, token: &str) -> Result<Vec<String>, TokenRejection> {
        if let Some(fixed) = self.fixed.iter().find(|f| f.token == token) {
            return Ok(fixed.scopes.clone());
        }
        let issued = self.lock();
        let t = issued.get(token).ok_or(TokenRejection::Unknown)?;
        if Instant::now() >= t.expires_at {
            return Err(TokenRejection::Expired);
        }
        Ok(t.scopes.clone())
    }

    /// Makes every issued token expired now.
    pub(crate) fn expire_all(&self) {
        let now = Instant::now();
        for t in self.lock().values_mut() {
            t.expires_at = t.expires_at.min(now);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Issued>> {
        self.issued.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `at + duration`, or the latest instant the clock can represent after `at` when that
/// overflows (halving the duration until it fits; ends at `at` itself at the latest).
fn saturating_add(at: Instant, mut duration: Duration) -> Instant {
    loop {
        if let Some(later) = at.checked_add(duration) {
            return later;
        }
        duration /= 2;
    }
}

/// The scopes a client-credentials request gets: all allowed ones when none are asked for,
/// otherwise the ones asked (deduplicated, in the order asked) if every one is allowed.
pub(crate) fn grant_scopes(client: &ClientApp, requested: Option<&str>) -> Option<Vec<String>> {
    let asked: Vec<&str> = requested.unwrap_or("").split_whitespace().collect();
    if asked.is_empty() {
        return Some(client.allowed_scopes.clone());
    }
    let mut granted: Vec<String> = Vec::with_capacity(asked.len());
    for scope in asked {
        if !client.allowed_scopes.iter().any(|a| a == scope) {
            return None;
        }
        if !granted.iter().any(|g| g == scope) {
            granted.push(scope.to_owned());
        }
    }
    Some(granted)
}

/// 32 random bytes from the thread's cryptographic generator, hex-encoded.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> ClientApp {
        ClientApp {
            client_id: "c".into(),
            client_secret: "s".into(),
            allowed_scopes: vec!["PM.Setting".into(), "PM.Setting.Read".into()],
        }
    }

    #[test]
    fn issued_tokens_are_random_and_carry_their_scopes() {
        let store = TokenStore::new(Vec::new());
        let a = store.issue(vec!["PM.Setting".into()], Duration::from_secs(60));
        let b = store.issue(vec![], Duration::from_secs(60));
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(store.check(&a), Ok(vec!["PM.Setting".to_owned()]));
        assert_eq!(store.check("nope"), Err(TokenRejection::Unknown));
    }

    #[test]
    fn tokens_expire_by_lifetime_and_by_fault_but_fixed_ones_do_not() {
        let store = TokenStore::new(vec![FixedToken {
            token: "fixed".into(),
            scopes: vec![],
        }]);
        let short = store.issue(vec![], Duration::ZERO);
        assert_eq!(store.check(&short), Err(TokenRejection::Expired));
        let long = store.issue(vec![], Duration::from_secs(3600));
        assert!(store.check(&long).is_ok());
        store.expire_all();
        assert_eq!(store.check(&long), Err(TokenRejection::Expired));
        assert!(store.check("fixed").is_ok());
        let fresh = store.issue(vec![], Duration::from_secs(3600));
        assert!(store.check(&fresh).is_ok());
    }

    #[test]
    fn a_lifetime_beyond_the_clock_means_never_expired() {
        let store = TokenStore::new(Vec::new());
        let forever = store.issue(vec![], Duration::MAX);
        assert!(store.check(&forever).is_ok());
        // Issuing again runs the forgetting pass over the far-future token without overflow.
        let other = store.issue(vec![], Duration::MAX);
        assert!(store.check(&forever).is_ok());
        assert!(store.check(&other).is_ok());
    }

    #[test]
    fn scopes_default_to_all_allowed_and_refuse_unknown_ones() {
        let c = client();
        assert_eq!(grant_scopes(&c, None), Some(c.allowed_scopes.clone()));
        assert_eq!(grant_scopes(&c, Some("  ")), Some(c.allowed_scopes.clone()));
        assert_eq!(
            grant_scopes(&c, Some("PM.Setting.Read PM.Setting.Read")),
            Some(vec!["PM.Setting.Read".to_owned()])
        );
        assert_eq!(grant_scopes(&c, Some("PM.Setting OR.Admin")), None);
    }
}
