//! Identity clients shared between policies: one connection pool per identity server (URL and
//! CA) and one token cache per credential set, however many policies use them.
//!
//! Thousands of policies of one organization use one server and one set of credentials: with a
//! client each they would open thousands of connections, load the trust store thousands of
//! times and ask the (rate-limited) token endpoint for thousands of tokens at start.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::OnceCell;

use crate::api::ServerBudget;
use crate::identity::auth::Credentials;
use crate::identity::budget::{BudgetLimits, WindowLimits};
use crate::identity::client::{ClientConfig, Connection, IdentityClient, RequestObserver};
use crate::identity::error::IdentityError;
use crate::identity::redact::Redactor;
use crate::reconcile::resolve::Resolved;
use crate::reconcile::validate::ValidPolicy;
use crate::secret::SecretString;

/// How every connection is built.
#[derive(Clone)]
pub struct ConnectionSettings {
    /// Allow `http://` identity URLs.
    pub allow_http: bool,
    /// Timeout of one request.
    pub request_timeout: Duration,
    /// Idle connections kept per server.
    pub max_idle_connections: usize,
    /// Told about every request (metrics).
    pub observer: Option<Arc<dyn RequestObserver>>,
    /// Each server's request budget.
    pub budget: BudgetLimits,
    /// Per-organization limits of the servers that publish them.
    pub organization_limits: OrganizationLimits,
}

/// The servers whose identity service limits each organization (Automation Cloud), and the
/// limits the operator keeps to there.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OrganizationLimits {
    /// Their hosts: an identity URL on one of them, or on a subdomain, has the limits.
    pub hosts: Vec<String>,
    /// The operator's share of the published limits; `None`: none kept.
    pub limits: Option<WindowLimits>,
}

/// The hosts of Automation Cloud (their subdomains included).
pub const AUTOMATION_CLOUD_HOSTS: [&str; 4] = [
    "cloud.uipath.com",
    "staging.uipath.com",
    "alpha.uipath.com",
    "govcloud.uipath.us",
];

/// What UiPath publishes for Automation Cloud's Identity Server, per organization: 300 GET and
/// 160 PUT/PATCH/DELETE requests per 5 minutes, 429 beyond.
pub const AUTOMATION_CLOUD_LIMITS: WindowLimits = WindowLimits {
    window: Duration::from_secs(300),
    reads: 300,
    writes: 160,
};

/// The part of [`AUTOMATION_CLOUD_LIMITS`] the operator uses by default, leaving the rest to
/// the organization's own users and tools.
pub const AUTOMATION_CLOUD_SHARE: f64 = 0.5;

impl OrganizationLimits {
    /// The defaults: [`AUTOMATION_CLOUD_SHARE`] of [`AUTOMATION_CLOUD_LIMITS`] on
    /// [`AUTOMATION_CLOUD_HOSTS`].
    pub fn automation_cloud() -> Self {
        Self {
            hosts: AUTOMATION_CLOUD_HOSTS.map(String::from).to_vec(),
            limits: Some(AUTOMATION_CLOUD_LIMITS.share(AUTOMATION_CLOUD_SHARE)),
        }
    }

    /// The limits for a server at `base_url`, if it is one of the hosts.
    pub fn for_url(&self, base_url: &str) -> Option<WindowLimits> {
        let limits = self.limits?;
        let url = url::Url::parse(base_url.trim()).ok()?;
        let host = url.host_str()?.trim_end_matches('.').to_ascii_lowercase();
        self.hosts
            .iter()
            .map(|h| h.trim().trim_end_matches('.').to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .any(|h| host == h || host.ends_with(&format!(".{h}")))
            .then_some(limits)
    }
}

/// What makes two servers the same connection pool (and request budget).
#[derive(Clone, PartialEq, Eq, Hash)]
struct ServerKey {
    base_url: String,
    ca_pem: Option<Vec<u8>>,
    /// Limits a server definition sets, overriding the operator's flags.
    budget: ServerBudget,
}

/// What makes two policies share a token: the server and the credentials (which include the
/// auth method and scopes).
#[derive(Clone, PartialEq, Eq, Hash)]
struct TokenKey {
    server: ServerKey,
    credentials: Credentials,
}

type Built = Result<Connection, IdentityError>;

/// The shared connection pools and token caches. Entries live while a policy holds a client
/// built from them; [`IdentityClients::prune`] drops the rest.
pub struct IdentityClients {
    settings: ConnectionSettings,
    connections: Mutex<HashMap<ServerKey, Arc<OnceCell<Built>>>>,
    /// One client per credential set and server: its clones share the credentials, the token
    /// cache and the connection, so 10 000 policies with one Secret hold one copy of each.
    tokens: Mutex<HashMap<TokenKey, IdentityClient>>,
}

impl IdentityClients {
    /// No connection yet; they are built on first use.
    pub fn new(settings: ConnectionSettings) -> Self {
        Self {
            settings,
            connections: Mutex::default(),
            tokens: Mutex::default(),
        }
    }

    fn connections(&self) -> MutexGuard<'_, HashMap<ServerKey, Arc<OnceCell<Built>>>> {
        self.connections.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn token_caches(&self) -> MutexGuard<'_, HashMap<TokenKey, IdentityClient>> {
        self.tokens.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A client of `base_url` (trusting `ca_pem` besides the system roots) for `credentials`,
    /// within `budget` where it sets a limit (else the operator's). The server's connection pool
    /// is built once, on a blocking thread (it loads the trust store from disk), by the first
    /// caller; concurrent callers wait for it.
    pub async fn client(
        &self,
        base_url: &str,
        credentials: &Credentials,
        ca_pem: Option<&[u8]>,
        budget: ServerBudget,
    ) -> Result<IdentityClient, IdentityError> {
        let server = ServerKey {
            base_url: crate::identity::urls::server_identity(base_url),
            ca_pem: ca_pem.map(<[u8]>::to_vec),
            budget,
        };
        let cell = self
            .connections()
            .entry(server.clone())
            .or_default()
            .clone();
        let connection = cell
            .get_or_init(|| self.build(&server, base_url))
            .await
            .clone()?;
        let key = TokenKey {
            server,
            credentials: credentials.clone(),
        };
        let mut clients = self.token_caches();
        if let Some(client) = clients.get(&key) {
            return Ok(client.clone());
        }
        let client = connection.client(credentials.clone(), Arc::default())?;
        clients.insert(key, client.clone());
        Ok(client)
    }

    /// A client for a checked and resolved policy or server definition (its URL, credentials,
    /// CA and budget) that cuts every secret it read out of server texts: `redactor` is set
    /// to those secrets.
    pub async fn client_for(
        &self,
        valid: &ValidPolicy,
        resolved: &Resolved,
        redactor: &mut Redactor,
    ) -> Result<IdentityClient, IdentityError> {
        *redactor = Redactor::new(resolved.secret_values.iter().map(SecretString::expose));
        Ok(self
            .client(
                &valid.base_url,
                &resolved.credentials,
                resolved.ca_pem.as_deref(),
                valid.budget,
            )
            .await?
            .redacting(redactor.clone()))
    }

    /// Builds the connection for the first spelling of a server's URL: requests go to the URL
    /// that the policy wrote (the key only groups spellings), so the pool and budget are shared.
    async fn build(&self, server: &ServerKey, base_url: &str) -> Built {
        // The credentials are not part of a connection; any value does.
        let mut config = ClientConfig::new(
            base_url.to_owned(),
            Credentials::BearerToken {
                token: "unused".into(),
            },
        );
        config.allow_http = self.settings.allow_http;
        config.request_timeout = self.settings.request_timeout;
        config.max_idle_connections = self.settings.max_idle_connections;
        config.ca_certificate_pem = server.ca_pem.clone();
        config.observer = self.settings.observer.clone();
        config.budget = limits(self.settings.budget, server.budget);
        config.budget.per_organization = self.settings.organization_limits.for_url(base_url);
        tokio::task::spawn_blocking(move || Connection::new(&config))
            .await
            .unwrap_or_else(|e| {
                Err(IdentityError::Configuration(format!(
                    "building the HTTP client failed: {e}"
                )))
            })
    }

    /// Drops connection pools and token caches no client uses any more, and idle
    /// per-organization budgets.
    pub fn prune(&self) {
        self.token_caches().retain(|_, client| client.handles() > 1);
        self.connections().retain(|_, cell| match cell.get() {
            Some(Ok(connection)) => {
                // Organizations whose spacing has passed hold nothing a fresh budget would not.
                connection.prune_budgets();
                connection.handles() > 1
            }
            // A failed build is retried on next use; one in progress is kept.
            Some(Err(_)) => false,
            None => Arc::strong_count(cell) > 1,
        });
    }

    /// How many connection pools and token caches are held.
    pub fn sizes(&self) -> (usize, usize) {
        (self.connections().len(), self.token_caches().len())
    }
}

/// The operator's limits with those a server definition sets in their place.
fn limits(operator: BudgetLimits, server: ServerBudget) -> BudgetLimits {
    BudgetLimits {
        requests_per_second: server
            .requests_per_second
            .map(f64::from)
            .or(operator.requests_per_second),
        max_in_flight: server
            .max_in_flight
            .and_then(|n| usize::try_from(n).ok())
            .or(operator.max_in_flight),
        per_organization: operator.per_organization,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretString;

    fn clients() -> IdentityClients {
        IdentityClients::new(ConnectionSettings {
            allow_http: true,
            request_timeout: Duration::from_secs(1),
            max_idle_connections: 4,
            observer: None,
            budget: Default::default(),
            organization_limits: OrganizationLimits::default(),
        })
    }

    #[test]
    fn automation_cloud_hosts_and_their_subdomains_have_the_limits_others_do_not() {
        let limits = WindowLimits {
            window: Duration::from_secs(300),
            reads: 150,
            writes: 80,
        };
        let cloud = OrganizationLimits {
            hosts: vec!["cloud.uipath.com".into(), " Staging.UiPath.com ".into()],
            limits: Some(limits),
        };
        for url in [
            "https://cloud.uipath.com/acme/identity_",
            "https://CLOUD.uipath.com./acme/identity_",
            "https://eu.cloud.uipath.com/acme/identity_",
            "https://staging.uipath.com/acme/identity_",
        ] {
            assert_eq!(cloud.for_url(url), Some(limits), "{url}");
        }
        for url in [
            "https://identity.example.com/identity_",
            "https://notcloud.uipath.com/acme/identity_",
            "https://cloud.uipath.com.example.net/identity_",
            "not a url",
        ] {
            assert_eq!(cloud.for_url(url), None, "{url}");
        }
        let off = OrganizationLimits {
            limits: None,
            ..cloud
        };
        assert_eq!(off.for_url("https://cloud.uipath.com/acme/identity_"), None);
    }

    fn app(secret: &str) -> Credentials {
        Credentials::ClientCredentials {
            client_id: "app".into(),
            client_secret: SecretString::new(secret),
            scopes: vec![],
        }
    }

    #[tokio::test]
    async fn policies_of_one_server_share_its_pool_and_of_one_credential_set_its_token() {
        let clients = clients();
        let url = "http://127.0.0.1:9/identity_";
        let held: Vec<IdentityClient> = futures::future::try_join_all((0..50).map(|_| {
            let credentials = app("s1");
            let clients = &clients;
            async move {
                clients
                    .client(url, &credentials, None, ServerBudget::default())
                    .await
            }
        }))
        .await
        .expect("clients");
        assert_eq!(
            clients.sizes(),
            (1, 1),
            "50 policies, one pool, one token cache"
        );
        assert_eq!(
            held[0].handles(),
            51,
            "the 50 share one client, one copy of the credentials (and the cache holds it)"
        );
        let other_app = clients
            .client(url, &app("s2"), None, ServerBudget::default())
            .await
            .expect("client");
        let other_ca = clients
            .client(url, &app("s1"), Some(b"not a pem"), ServerBudget::default())
            .await
            .expect_err("an unusable CA is refused");
        assert!(other_ca.to_string().contains("CA"), "{other_ca}");
        assert_eq!(clients.sizes(), (2, 2));

        clients.prune();
        assert_eq!(clients.sizes(), (1, 2), "the failed build is not kept");
        drop(other_app);
        clients.prune();
        assert_eq!(clients.sizes(), (1, 1));
        drop(held);
        clients.prune();
        assert_eq!(
            clients.sizes(),
            (0, 0),
            "nothing outlives the policies using it"
        );
    }
}
