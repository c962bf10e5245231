//! A stand-in for the UiPath identity service's Setting API, for tests and the no-cluster demo.
//!
//! It follows the contract in `docs/identity-api.md` to the letter; its value is
//! fidelity. [`Simulator::start`] runs an axum server on a local port and returns a handle to
//! inspect and steer it; [`serve_until_shutdown`] runs one for the `identity-simulator`
//! binary.
//!
//! # Endpoints
//!
//! | path | what |
//! | --- | --- |
//! | `PUT/GET {prefix}/api/Setting` | the Setting API ([`server`] documents the checks and their order) |
//! | `POST {prefix}/connect/token` | client credentials, OAuth 2.0 form body |
//! | `POST /api/account/authenticate` | legacy ROPC with the ABP envelope (outside the prefix) |
//! | `/_simulator/…` | the admin API ([`admin`]): faults, counters, checks per scope, stored rows, drift by hand |
//!
//! Any other path answers 404, so a client with the wrong prefix finds out.
//!
//! # Data
//!
//! Rows have database-style ids from one global counter (module `store`). With
//! [`SimulatorConfig::seed_example`] the partition `magic-7` starts with the contract example's
//! seven rows (ids 4, 1, 3, 2, 26, 27, 28, prior values plausible server defaults) and new rows
//! continue at 29, so replaying `put-setting-request.json` answers `put-setting-response.json`.
//! Values are stored as sent except `Auth.Password.PasswordComplexity` ([`normalize`]).
//!
//! # Auth
//!
//! Tokens are opaque random strings. Client-credentials tokens live
//! [`SimulatorConfig::token_lifetime`], ROPC tokens 30 minutes with scope `PM.Setting`, fixed
//! bearer tokens forever. PUT needs `PM.Setting`; GET needs `PM.Setting` or `PM.Setting.Read`.
//! Missing, unknown or expired token → 401; wrong scope → 403.
//!
//! # Faults and counters
//!
//! [`Faults`] injects failure statuses (with `Retry-After`), latency, HTML login pages, dropped
//! connections and token expiry; [`Counters`] counts every request per endpoint and method;
//! [`Checks`] tracks, per scope, the answered GETs and the longest gap between two.
//!
//! Tokens, secrets and setting values are never logged: requests are traced at debug level with
//! method, path and status only.

pub mod admin;
mod auth;
pub mod checks;
mod conn;
mod counters;
mod faults;
pub mod load;
pub mod normalize;
pub mod org_limits;
mod responses;
pub mod server;
mod store;

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use auth::ROPC_TOKEN_LIFETIME;
pub use checks::Checks;
pub use counters::{Counters, Endpoint};
pub use faults::Faults;

use conn::{ConnHandle, KillableListener};
use identity_client::types::{SCOPE_SETTING, SCOPE_SETTING_READ, SettingScope, StoredSetting};
use server::{AUTHENTICATE_PATH, Shared};

/// How long [`Simulator::shutdown`] waits for open requests before cutting them off.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How a simulator is started: where it listens, which credentials it accepts, what it holds.
#[derive(Clone, Debug)]
pub struct SimulatorConfig {
    /// Where to listen; port 0 picks a free port (default `127.0.0.1:0`).
    pub bind: SocketAddr,
    /// The identity path prefix (default `/identity_`); empty serves at the root. A trailing
    /// slash is ignored.
    pub prefix: String,
    /// External applications accepted by `connect/token`.
    pub clients: Vec<ClientApp>,
    /// Bearer tokens accepted as given, never expiring.
    pub bearer_tokens: Vec<FixedToken>,
    /// Users accepted by the ROPC endpoint.
    pub ropc_users: Vec<RopcUser>,
    /// Lifetime of client-credentials tokens (`expires_in`; default 3600 s).
    pub token_lifetime: Duration,
    /// Start with the contract example's rows in partition `magic-7` (default true).
    pub seed_example: bool,
    /// Answer like a .NET service on SQL Server might (default false): GUIDs compared by value
    /// and written back upper-case, keys compared case-insensitively and written back in the
    /// case they were first stored with. The contract is silent on both; the operator must
    /// cope either way.
    pub canonicalize: bool,
    /// Every Setting request waits this long before it is answered, from the start (the
    /// persistent `latencyMs` fault; default zero). Token requests are not delayed.
    pub setting_latency: Duration,
}

impl Default for SimulatorConfig {
    /// Demo credentials (not real secrets): client `operator`/`operator-secret` with both scopes,
    /// read-only client `reader`/`reader-secret`, fixed token `static-admin-token` with
    /// `PM.Setting`, ROPC user `Default`/`admin`/`admin-password`.
    fn default() -> Self {
        Self {
            bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            prefix: "/identity_".to_owned(),
            clients: vec![
                ClientApp {
                    client_id: "operator".to_owned(),
                    client_secret: "operator-secret".to_owned(),
                    allowed_scopes: vec![SCOPE_SETTING.to_owned(), SCOPE_SETTING_READ.to_owned()],
                },
                ClientApp {
                    client_id: "reader".to_owned(),
                    client_secret: "reader-secret".to_owned(),
                    allowed_scopes: vec![SCOPE_SETTING_READ.to_owned()],
                },
            ],
            bearer_tokens: vec![FixedToken {
                token: "static-admin-token".to_owned(),
                scopes: vec![SCOPE_SETTING.to_owned()],
            }],
            ropc_users: vec![RopcUser {
                tenancy_name: "Default".to_owned(),
                username: "admin".to_owned(),
                password: "admin-password".to_owned(),
            }],
            token_lifetime: Duration::from_secs(3600),
            seed_example: true,
            canonicalize: false,
            setting_latency: Duration::ZERO,
        }
    }
}

/// An external application for the client-credentials grant.
#[derive(Clone)]
pub struct ClientApp {
    /// The application id.
    pub client_id: String,
    /// The application secret.
    pub client_secret: String,
    /// The scopes it may ask for; also what it gets when it asks for none.
    pub allowed_scopes: Vec<String>,
}

/// Shows the id and scopes, never the secret.
impl std::fmt::Debug for ClientApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientApp")
            .field("client_id", &self.client_id)
            .field("allowed_scopes", &self.allowed_scopes)
            .finish_non_exhaustive()
    }
}

/// A bearer token the Setting API accepts as given (the "token given directly" method).
#[derive(Clone)]
pub struct FixedToken {
    /// The token.
    pub token: String,
    /// Its scopes.
    pub scopes: Vec<String>,
}

/// Shows the scopes, never the token.
impl std::fmt::Debug for FixedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FixedToken")
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// A user for the legacy ROPC endpoint.
#[derive(Clone)]
pub struct RopcUser {
    /// The tenant's name (compared case-insensitively).
    pub tenancy_name: String,
    /// The user name or e-mail (compared case-insensitively).
    pub username: String,
    /// The password (compared exactly).
    pub password: String,
}

/// Shows tenant and user, never the password.
impl std::fmt::Debug for RopcUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RopcUser")
            .field("tenancy_name", &self.tenancy_name)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The handle of a running simulator. Dropping it starts a graceful shutdown;
/// [`Simulator::shutdown`] also waits for it.
pub struct Simulator {
    addr: SocketAddr,
    prefix: String,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<io::Result<()>>>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("base_url", &self.base_url())
            .finish_non_exhaustive()
    }
}

impl Simulator {
    /// Binds `config.bind` and serves until shut down. Fails when the address cannot be bound or
    /// the prefix is not a plain path (`InvalidInput`).
    pub async fn start(config: SimulatorConfig) -> io::Result<Simulator> {
        let prefix = normalize_prefix(&config.prefix)?;
        let listener = TcpListener::bind(config.bind).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(&config));
        let app = server::router(shared.clone(), &prefix)
            .into_make_service_with_connect_info::<ConnHandle>();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(KillableListener(listener), app)
                .with_graceful_shutdown(async move {
                    // A send or a dropped handle both mean: stop.
                    let _ = rx.await;
                })
                .await
        });
        tracing::debug!(%addr, prefix = %prefix, "identity simulator listening");
        Ok(Simulator {
            addr,
            prefix,
            shared,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The identity base URL, e.g. `http://127.0.0.1:PORT/identity_` (no trailing slash).
    pub fn base_url(&self) -> String {
        format!("http://{}{}", self.reachable_addr(), self.prefix)
    }

    /// The ROPC URL, e.g. `http://127.0.0.1:PORT/api/account/authenticate` (outside the prefix).
    pub fn authenticate_url(&self) -> String {
        format!("http://{}{AUTHENTICATE_PATH}", self.reachable_addr())
    }

    /// The admin API's root, e.g. `http://127.0.0.1:PORT/_simulator`.
    pub fn admin_url(&self) -> String {
        format!("http://{}/_simulator", self.reachable_addr())
    }

    /// Controls injected faults.
    pub fn faults(&self) -> Faults {
        self.shared.faults.clone()
    }

    /// Request counters.
    pub fn counters(&self) -> Counters {
        self.shared.counters.clone()
    }

    /// Peak identity requests in flight and per second (reset with the counters).
    pub fn load(&self) -> load::Load {
        self.shared.load.clone()
    }

    /// The published per-organization limits, enforced with 429s when a test turns them on.
    pub fn organization_limits(&self) -> org_limits::OrganizationLimiter {
        self.shared.organization_limits.clone()
    }

    /// Answered GETs per scope (reset with the counters by `DELETE /_simulator/counters`).
    pub fn checks(&self) -> Checks {
        self.shared.checks.clone()
    }

    /// Every row of that partition and user (only org-level rows when `user_id` is `None`),
    /// ordered by id.
    pub fn stored(&self, scope: &SettingScope) -> Vec<StoredSetting> {
        self.shared.stored(scope)
    }

    /// Changes a setting out of band ("drift made by hand"): normalised like a PUT, same id rules.
    /// Unlike a PUT, an invalid `PasswordComplexity` is stored as given.
    pub fn set_directly(&self, scope: &SettingScope, key: &str, value: &str) -> StoredSetting {
        self.shared.set_directly(scope, key, value)
    }

    /// Stops accepting connections and waits (up to 5 s) for open requests to finish.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(mut task) = self.task.take() {
            match tokio::time::timeout(SHUTDOWN_GRACE, &mut task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => {
                    tracing::debug!(error = %e, "identity simulator stopped with error")
                }
                Ok(Err(e)) => tracing::debug!(error = %e, "identity simulator task failed"),
                Err(_) => task.abort(),
            }
        }
    }

    /// The listening address, with an unspecified IP (`0.0.0.0`, `::`) replaced by loopback.
    fn reachable_addr(&self) -> SocketAddr {
        let ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        SocketAddr::new(ip, self.addr.port())
    }
}

/// `""` or `/a/b` (no trailing slash); refuses characters axum's router would read as patterns,
/// and segments starting with `:` (axum 0.8 panics on those, taking them for 0.7 captures).
fn normalize_prefix(prefix: &str) -> io::Result<String> {
    let trimmed = prefix.trim_end_matches('/');
    let plain = trimmed.is_empty()
        || (trimmed.starts_with('/')
            && !trimmed.contains("//")
            && !trimmed.split('/').any(|segment| segment.starts_with(':'))
            && !trimmed
                .chars()
                .any(|c| matches!(c, '{' | '}' | '*' | '?' | '#') || c.is_whitespace()));
    if plain {
        Ok(trimmed.to_owned())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("simulator prefix {prefix:?} must be empty or a plain path starting with '/'"),
        ))
    }
}

/// Runs a simulator for `identity-settings-operator simulate`: prints where it listens and which
/// (demo) credentials it accepts, then serves until Ctrl-C (or SIGTERM on Unix).
pub async fn serve_until_shutdown(config: SimulatorConfig) -> io::Result<()> {
    let banner = banner_credentials(&config);
    let simulator = Simulator::start(config).await?;
    println!("identity service simulator listening");
    println!("  identity base URL:  {}", simulator.base_url());
    println!("  authenticate URL:   {}", simulator.authenticate_url());
    println!("  admin API:          {}", simulator.admin_url());
    print!("{banner}");
    println!("press Ctrl-C to stop");
    wait_for_stop_signal().await?;
    simulator.shutdown().await;
    Ok(())
}

/// The accepted credentials, for the start-up banner. These are the simulator's own demo
/// credentials, printed on purpose so a demo user can copy them.
fn banner_credentials(config: &SimulatorConfig) -> String {
    let mut out = String::from("accepted credentials (simulator demo values, not real secrets):\n");
    for c in &config.clients {
        out.push_str(&format!(
            "  client credentials: client_id={} client_secret={} scopes=[{}]\n",
            c.client_id,
            c.client_secret,
            c.allowed_scopes.join(" ")
        ));
    }
    for t in &config.bearer_tokens {
        out.push_str(&format!(
            "  bearer token: {} scopes=[{}]\n",
            t.token,
            t.scopes.join(" ")
        ));
    }
    for u in &config.ropc_users {
        out.push_str(&format!(
            "  ROPC user: TenancyName={} UsernameOrEmailAddress={} Password={}\n",
            u.tenancy_name, u.username, u.password
        ));
    }
    if !config.setting_latency.is_zero() {
        out.push_str(&format!(
            "setting latency: {} ms per Setting request\n",
            config.setting_latency.as_millis()
        ));
    }
    if config.seed_example {
        out.push_str("seeded: partition magic-7 with the contract example's rows (next id 29)\n");
    }
    out
}

#[cfg(unix)]
async fn wait_for_stop_signal() -> io::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r,
        _ = term.recv() => Ok(()),
    }
}

#[cfg(not(unix))]
async fn wait_for_stop_signal() -> io::Result<()> {
    tokio::signal::ctrl_c().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_normalised_or_refused() {
        assert_eq!(normalize_prefix("/identity_").unwrap(), "/identity_");
        assert_eq!(
            normalize_prefix("/org/tenant/identity_/").unwrap(),
            "/org/tenant/identity_"
        );
        assert_eq!(normalize_prefix("/").unwrap(), "");
        assert_eq!(normalize_prefix("").unwrap(), "");
        for bad in [
            "identity_",
            "/{x}",
            "/a//b",
            "/a b",
            "/*",
            "/:org/identity_",
            "/a/:b/",
        ] {
            assert!(normalize_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let config = SimulatorConfig::default();
        let shown = format!("{config:?}");
        for secret in [
            "operator-secret",
            "reader-secret",
            "static-admin-token",
            "admin-password",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("operator"));
    }

    #[test]
    fn banner_lists_every_credential() {
        let banner = banner_credentials(&SimulatorConfig::default());
        for shown in [
            "operator-secret",
            "reader",
            "static-admin-token",
            "admin-password",
        ] {
            assert!(banner.contains(shown), "{shown}");
        }
    }
}
