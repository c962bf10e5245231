//! State shared by every reconcile: API clients, caches, metrics and settings.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;

use crate::api::IdentitySettingPolicy;
use crate::identity::auth::Credentials;
use crate::identity::client::{ClientConfig, IdentityClient, RequestObserver};
use crate::identity::error::IdentityError;
use crate::metrics::Metrics;

/// Operator-wide settings that affect reconciles.
#[derive(Clone, Debug)]
pub struct ReconcileSettings {
    /// Allow `http://` identity URLs (loopback and tests only).
    pub allow_insecure_http: bool,
    /// Timeout of one identity API request.
    pub request_timeout: Duration,
    /// Shortest and longest retry delay after a transient failure.
    pub backoff_min: Duration,
    /// See `backoff_min`.
    pub backoff_max: Duration,
}

impl Default for ReconcileSettings {
    fn default() -> Self {
        Self {
            allow_insecure_http: false,
            request_timeout: Duration::from_secs(30),
            backoff_min: Duration::from_secs(5),
            backoff_max: Duration::from_secs(300),
        }
    }
}

/// Everything a reconcile needs besides the policy.
pub struct Context {
    /// The Kubernetes client.
    pub client: kube::Client,
    /// Publishes Kubernetes Events.
    pub recorder: Recorder,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Settings.
    pub settings: ReconcileSettings,
    /// One identity client per policy, kept while its URL and credentials stay the same so its
    /// token cache survives between reconciles.
    clients: Mutex<HashMap<ObjectRef<IdentitySettingPolicy>, CachedClient>>,
    /// Consecutive transient failures per policy, for exponential backoff.
    failures: Mutex<HashMap<ObjectRef<IdentitySettingPolicy>, u32>>,
    /// The referenced Secrets' resourceVersions at the last successful sync, so a write caused by
    /// a rotated Secret is not mistaken for drift.
    secret_versions: Mutex<HashMap<ObjectRef<IdentitySettingPolicy>, SecretVersions>>,
}

/// Secret name → resourceVersion.
pub type SecretVersions = std::collections::BTreeMap<String, String>;

/// What an identity client was built from; a change means a new client (and a new token).
#[derive(Clone, PartialEq, Eq)]
struct ClientKey {
    base_url: String,
    credentials: Credentials,
    ca_pem: Option<Vec<u8>>,
}

struct CachedClient {
    key: ClientKey,
    client: IdentityClient,
}

impl Context {
    /// Builds the context; `instance` names this replica in Events.
    pub fn new(
        client: kube::Client,
        metrics: Arc<Metrics>,
        settings: ReconcileSettings,
        instance: Option<String>,
    ) -> Self {
        let reporter = Reporter {
            controller: "identity-settings-operator".into(),
            instance,
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            settings,
            clients: Mutex::default(),
            failures: Mutex::default(),
            secret_versions: Mutex::default(),
        }
    }

    /// The identity client for a policy, reused while URL, credentials and CA are unchanged.
    pub fn identity_client(
        &self,
        policy: &ObjectRef<IdentitySettingPolicy>,
        base_url: &str,
        credentials: &Credentials,
        ca_pem: Option<&[u8]>,
    ) -> Result<IdentityClient, IdentityError> {
        let key = ClientKey {
            base_url: base_url.to_owned(),
            credentials: credentials.clone(),
            ca_pem: ca_pem.map(<[u8]>::to_vec),
        };
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(cached) = clients.get(policy)
            && cached.key == key
        {
            return Ok(cached.client.clone());
        }
        let mut config = ClientConfig::new(base_url, credentials.clone());
        config.allow_http = self.settings.allow_insecure_http;
        config.request_timeout = self.settings.request_timeout;
        config.ca_certificate_pem = key.ca_pem.clone();
        config.observer = Some(self.metrics.clone() as Arc<dyn RequestObserver>);
        let client = IdentityClient::new(config)?;
        clients.insert(
            policy.clone(),
            CachedClient {
                key,
                client: client.clone(),
            },
        );
        Ok(client)
    }

    /// Forgets a deleted policy's client, backoff and Secret state.
    pub fn forget(&self, policy: &ObjectRef<IdentitySettingPolicy>) {
        self.clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(policy);
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(policy);
        let mut versions = self
            .secret_versions
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        versions.remove(policy);
    }

    /// Whether the policy's Secrets changed since its last successful sync in this process.
    pub fn secrets_changed(
        &self,
        policy: &ObjectRef<IdentitySettingPolicy>,
        now: &SecretVersions,
    ) -> bool {
        let known = self
            .secret_versions
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        known.get(policy).is_some_and(|before| before != now)
    }

    /// Records the Secrets a successful sync used.
    pub fn remember_secrets(
        &self,
        policy: &ObjectRef<IdentitySettingPolicy>,
        versions: SecretVersions,
    ) {
        let mut known = self
            .secret_versions
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        known.insert(policy.clone(), versions);
    }

    /// Records a transient failure and returns how long to wait before the next try.
    pub fn next_backoff(&self, policy: &ObjectRef<IdentitySettingPolicy>) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = failures.entry(policy.clone()).or_insert(0);
        *n = n.saturating_add(1);
        backoff_delay(
            *n,
            self.settings.backoff_min,
            self.settings.backoff_max,
            rand::random::<f64>(),
        )
    }

    /// Clears the failure count after a reconcile that did not fail transiently.
    pub fn reset_backoff(&self, policy: &ObjectRef<IdentitySettingPolicy>) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(policy);
    }
}

/// Exponential backoff: `min · 2^(failures-1)`, capped at `max`, with up to 20 % jitter taken off
/// (`jitter` in `[0, 1)`) so many policies failing together do not retry in lockstep.
pub fn backoff_delay(failures: u32, min: Duration, max: Duration, jitter: f64) -> Duration {
    let exp = failures.saturating_sub(1).min(20);
    let base = min.saturating_mul(1u32 << exp).min(max);
    base.mul_f64(1.0 - 0.2 * jitter.clamp(0.0, 1.0))
}

/// Adds up to 10 % to a resync interval so policies created together spread out.
pub fn jittered(interval: Duration, jitter: f64) -> Duration {
    interval.mul_f64(1.0 + 0.1 * jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitter_only_shortens() {
        let (min, max) = (Duration::from_secs(5), Duration::from_secs(300));
        assert_eq!(backoff_delay(1, min, max, 0.0), Duration::from_secs(5));
        assert_eq!(backoff_delay(2, min, max, 0.0), Duration::from_secs(10));
        assert_eq!(backoff_delay(4, min, max, 0.0), Duration::from_secs(40));
        assert_eq!(backoff_delay(30, min, max, 0.0), max);
        assert_eq!(backoff_delay(1, min, max, 1.0), Duration::from_secs(4));
        assert_eq!(
            jittered(Duration::from_secs(100), 1.0),
            Duration::from_secs(110)
        );
    }
}
