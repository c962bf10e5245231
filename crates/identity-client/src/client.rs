//! The identity Setting API client: configuration, token handling, retries and the two calls the
//! operator needs (GET and PUT `api/Setting`).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::Method;
use serde::de::DeserializeOwned;
use url::Url;

use super::auth::{Credentials, MAX_TOKEN_LIFETIME, ROPC_TOKEN_LIFETIME, Token, TokenCache};
use super::body;
use super::error::IdentityError;
use super::redact::Redactor;
use super::retry::{self, Budget};
use super::transport::{self, Answer, AttemptInfo};
use super::types::{
    AuthenticateRequest, AuthenticateResponse, PutSettingsRequest, SettingScope, SettingValue,
    StoredSetting, TokenResponse,
};
use super::urls;
use crate::secret::SecretString;

pub use super::budget::BudgetLimits;
use super::budget::{OrganizationBudgets, RequestBudget, RequestKind};
pub use super::observe::{Endpoint, RequestObserver, RequestOutcome};
pub use super::retry::RetryPolicy;

/// Default timeout of one HTTP attempt: a third of [`RetryPolicy::default`]'s `max_elapsed`.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything an [`IdentityClient`] is built from.
#[derive(Clone)]
pub struct ClientConfig {
    /// The identity base URL (`https://host/org/tenant/identity_`), with or without trailing slash.
    pub base_url: String,
    /// How to get a token.
    pub credentials: Credentials,
    /// Allow `http://` URLs (loopback tests and the demo only; default false).
    pub allow_http: bool,
    /// TCP/TLS connect timeout (default 5 s).
    pub connect_timeout: Duration,
    /// Timeout of one HTTP attempt, body included (default 10 s). Keep it well below
    /// `retry.max_elapsed` (the default is a third of it): an attempt that times out is only
    /// retried when time for another attempt is left in that budget.
    pub request_timeout: Duration,
    /// Retries of transient failures inside one call; `retry.max_elapsed` bounds the whole call
    /// and should be 2–3 × `request_timeout` so that a timed-out attempt can be retried.
    pub retry: RetryPolicy,
    /// An extra CA (PEM, one or more certificates) trusted in addition to the system roots.
    pub ca_certificate_pem: Option<Vec<u8>>,
    /// Told about every HTTP attempt (for metrics).
    pub observer: Option<Arc<dyn RequestObserver>>,
    /// Idle connections kept open to the server (default 16); more are opened when more
    /// requests run at once, and closed when they finish.
    pub max_idle_connections: usize,
    /// The server's request budget, shared by every client of the connection (default: no
    /// rate or in-flight limit; a 429 pauses every client either way).
    pub budget: BudgetLimits,
}

impl ClientConfig {
    /// A configuration with the defaults: https only, 5 s connect and 10 s request timeouts,
    /// [`RetryPolicy::default`] (30 s overall, so a timeout is retried), system roots, no observer.
    pub fn new(base_url: impl Into<String>, credentials: Credentials) -> Self {
        Self {
            base_url: base_url.into(),
            credentials,
            allow_http: false,
            connect_timeout: Duration::from_secs(5),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            retry: RetryPolicy::default(),
            ca_certificate_pem: None,
            observer: None,
            max_idle_connections: DEFAULT_MAX_IDLE_CONNECTIONS,
            budget: BudgetLimits::default(),
        }
    }
}

/// Default of [`ClientConfig::max_idle_connections`].
pub const DEFAULT_MAX_IDLE_CONNECTIONS: usize = 16;

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("base_url", &self.base_url)
            .field("credentials", &self.credentials)
            .field("allow_http", &self.allow_http)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("retry", &self.retry)
            .field(
                "ca_certificate_pem",
                &self.ca_certificate_pem.as_ref().map(Vec::len),
            )
            .field("observer", &self.observer.is_some())
            .field("max_idle_connections", &self.max_idle_connections)
            .field("budget", &self.budget)
            .finish()
    }
}

/// What every credential set of one identity server shares: the HTTP connection pool (with its
/// trust store) and the server's URLs. Thousands of policies of one server use one connection
/// pool instead of one each. Cheap to clone.
///
/// Building one loads the system trust store (blocking file I/O): do it off the async runtime's
/// worker threads (`spawn_blocking`).
#[derive(Clone)]
pub struct Connection {
    inner: Arc<ConnectionInner>,
}

struct ConnectionInner {
    http: reqwest::Client,
    base_url: String,
    base: Url,
    token_url: Url,
    allow_http: bool,
    request_timeout: Duration,
    retry: RetryPolicy,
    observer: Option<Arc<dyn RequestObserver>>,
    budget: RequestBudget,
    /// Per organization and kind of Setting request, when the server has such limits.
    organizations: Option<OrganizationBudgets>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("base_url", &self.inner.base_url)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Builds the connection pool for `config`'s server; `config.credentials` is not used (one
    /// connection serves every credential set). Fails with class Configuration for a base URL
    /// that is not https (unless `allow_http`) or an unusable CA certificate. Makes no request.
    pub fn new(config: &ClientConfig) -> Result<Self, IdentityError> {
        let base = urls::validate(&config.base_url, config.allow_http, "base URL")?;
        let mut builder = crate::http_client_builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .pool_max_idle_per_host(config.max_idle_connections)
            .redirect(reqwest::redirect::Policy::none())
            .https_only(!config.allow_http)
            .user_agent(concat!(
                "identity-settings-operator/",
                env!("CARGO_PKG_VERSION")
            ));
        if let Some(pem) = &config.ca_certificate_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
                IdentityError::Configuration(format!("the CA certificate is not usable PEM: {e}"))
            })?;
            if certs.is_empty() {
                return Err(IdentityError::Configuration(
                    "the CA certificate PEM holds no certificate".into(),
                ));
            }
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder.build().map_err(|e| {
            IdentityError::Configuration(format!("could not build the HTTP client: {e}"))
        })?;
        Ok(Self {
            inner: Arc::new(ConnectionInner {
                http,
                base_url: config.base_url.clone(),
                token_url: urls::join(&base, urls::TOKEN_PATH),
                base,
                allow_http: config.allow_http,
                request_timeout: config.request_timeout,
                retry: config.retry.clone(),
                observer: config.observer.clone(),
                budget: RequestBudget::new(config.budget),
                organizations: config.budget.per_organization.map(OrganizationBudgets::new),
            }),
        })
    }

    /// A client of this server for `credentials`, getting its tokens from `tokens` (share one
    /// cache per credential set, so one token serves every policy that uses it). Fails with
    /// class Configuration for empty credentials or an unusable authenticate URL.
    pub fn client(
        &self,
        credentials: Credentials,
        tokens: Arc<TokenCache>,
    ) -> Result<IdentityClient, IdentityError> {
        credentials.validate()?;
        let authenticate_url = match &credentials {
            Credentials::Password {
                authenticate_url, ..
            } => Some(urls::validate(
                authenticate_url,
                self.inner.allow_http,
                "authenticate URL",
            )?),
            _ => None,
        };
        Ok(IdentityClient {
            connection: self.clone(),
            auth: Arc::new(Auth {
                credentials,
                authenticate_url,
                tokens,
            }),
            known_secrets: no_known_secrets(),
        })
    }

    /// Drops the per-organization budgets that are idle (see [`OrganizationBudgets::prune`]).
    pub fn prune_budgets(&self) {
        if let Some(organizations) = &self.inner.organizations {
            organizations.prune();
        }
    }

    /// How many handles (clients and clones) share this connection pool; 1 means only the
    /// caller's, so a cache may drop it.
    pub fn handles(&self) -> usize {
        Arc::strong_count(&self.inner)
    }
}

/// A client for one identity service and one set of credentials. Cheap to clone; clones share
/// the connection pool and the token cache.
#[derive(Clone)]
pub struct IdentityClient {
    connection: Connection,
    auth: Arc<Auth>,
    /// Secret values of the caller's (a policy's Secret-sourced settings): cut out of every
    /// server text before it is parsed or shortened.
    known_secrets: Arc<Redactor>,
}

/// The known secrets of a client that has none: one shared value, so that thousands of
/// clients cost no allocation each.
fn no_known_secrets() -> Arc<Redactor> {
    static NONE: std::sync::LazyLock<Arc<Redactor>> = std::sync::LazyLock::new(Arc::default);
    NONE.clone()
}

/// How one client authenticates.
struct Auth {
    credentials: Credentials,
    authenticate_url: Option<Url>,
    tokens: Arc<TokenCache>,
}

impl fmt::Debug for IdentityClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityClient")
            .field("base_url", &self.connection.inner.base_url)
            .field("credentials", &self.auth.credentials.kind())
            .finish_non_exhaustive()
    }
}

/// A request body, already serialized (so retries resend the same bytes).
enum Body<'a> {
    None,
    Json(&'a [u8]),
}

impl IdentityClient {
    /// Builds a client. Fails with class Configuration for a base URL that is not https (unless
    /// `allow_http`), an unusable CA certificate or empty credentials. Makes no request.
    pub fn new(config: ClientConfig) -> Result<Self, IdentityError> {
        let connection = Connection::new(&config)?;
        connection.client(config.credentials, Arc::default())
    }

    /// The base URL as configured.
    pub fn base_url(&self) -> &str {
        &self.connection.inner.base_url
    }

    /// `GET {base}/api/Setting` for `keys` in `scope`. Keys without a stored value are absent
    /// from the answer. An empty `keys` answers an empty list without any request: the contract
    /// does not say what a GET without `key` returns.
    pub async fn get_settings(
        &self,
        scope: &SettingScope,
        keys: &[String],
    ) -> Result<Vec<StoredSetting>, IdentityError> {
        // One GET per URL of at most 2 KB: a long key list would otherwise be refused by IIS
        // or a proxy in front of the service.
        // Only rows of keys asked for, once each, are kept: a server that answers more (or
        // the same row again) cannot make the rows of one read grow past the keys asked.
        let mut wanted: std::collections::HashSet<String> =
            keys.iter().map(|k| k.to_ascii_lowercase()).collect();
        let mut rows = Vec::with_capacity(keys.len().min(256));
        for url in urls::settings_queries(&self.connection.inner.base, scope, keys) {
            let chunk: Vec<StoredSetting> = self
                .setting_call(
                    Method::GET,
                    &url,
                    Body::None,
                    &[],
                    &scope.partition_global_id,
                )
                .await?;
            rows.extend(
                chunk
                    .into_iter()
                    .filter(|row| wanted.remove(&row.key.to_ascii_lowercase())),
            );
        }
        Ok(rows)
    }

    /// Whether one GET reads all of `keys` in `scope` (its URL stays within the length the
    /// client allows itself).
    pub fn reads_in_one_request(&self, scope: &SettingScope, keys: &[String]) -> bool {
        urls::settings_queries(&self.connection.inner.base, scope, keys).len() <= 1
    }

    /// Checks that the credentials get a token: the cached one while fresh, else one from the
    /// token endpoint (so at most one request per token lifetime, shared with every other
    /// client of these credentials). Answers how long until the token is due for refresh, or
    /// `None` for a given bearer token, which only a settings call could check.
    pub async fn check_token(&self) -> Result<Option<Duration>, IdentityError> {
        if matches!(self.auth.credentials, Credentials::BearerToken { .. }) {
            return Ok(None);
        }
        retry::run(&self.connection.inner.retry, |attempt, budget| {
            self.token(None, attempt, budget)
        })
        .await?;
        Ok(Some(self.auth.tokens.refresh_due_in().unwrap_or_default()))
    }

    /// `PUT {base}/api/Setting`: creates or updates `settings` in `scope`; answers the server's
    /// rows (ids and values as stored), in the order sent. Values of secret keys (see
    /// [`is_secret_key`]) are cut out of any server text an error quotes.
    pub async fn put_settings(
        &self,
        scope: &SettingScope,
        settings: &[SettingValue],
    ) -> Result<Vec<StoredSetting>, IdentityError> {
        let request = PutSettingsRequest {
            settings: settings.to_vec(),
            partition_global_id: scope.partition_global_id.clone(),
            user_id: scope.user_id.clone(),
        };
        let json = serde_json::to_vec(&request).map_err(|e| {
            IdentityError::Configuration(format!("could not serialize the settings: {e}"))
        })?;
        let url = urls::join(&self.connection.inner.base, urls::SETTING_PATH);
        let sent: Vec<&str> = settings
            .iter()
            .filter(|s| is_secret_key(&s.key))
            .map(|s| s.value.as_str())
            .collect();
        self.setting_call(
            Method::PUT,
            &url,
            Body::Json(&json),
            &sent,
            &scope.partition_global_id,
        )
        .await
    }

    /// How many token requests (client credentials or ROPC) this client and its clones made.
    pub fn token_requests(&self) -> u64 {
        self.auth.tokens.fetches()
    }

    /// This client, also cutting `secrets` out of every server text (before any message is
    /// extracted or cut to length). Shares the connection pool and tokens.
    pub fn redacting(&self, secrets: Redactor) -> IdentityClient {
        let known_secrets = if secrets.is_empty() {
            no_known_secrets()
        } else {
            Arc::new(secrets)
        };
        IdentityClient {
            connection: self.connection.clone(),
            auth: self.auth.clone(),
            known_secrets,
        }
    }

    /// How many handles on this client's credentials and tokens exist: this one and every
    /// client made from it (clones and [`Self::redacting`]). A cache of clients drops one that
    /// only it holds.
    pub fn handles(&self) -> usize {
        Arc::strong_count(&self.auth)
    }

    /// What to cut out of server texts: the credentials' secrets, the caller's known secrets,
    /// and `extra` (sent values).
    fn redactor(&self, extra: &[&str]) -> Redactor {
        let secrets = self.auth.credentials.secrets();
        let mut redactor = Redactor::new(secrets.iter().map(SecretString::expose));
        redactor.extend(&self.known_secrets);
        for secret in extra {
            redactor.add(secret);
        }
        redactor
    }

    /// One Setting call with retries; a 401 with refreshable credentials gets one refresh and
    /// one more try within the call. `sent` are secret values in the body, cut out of errors;
    /// `organization` is the partition the request is about (for per-organization limits).
    async fn setting_call<T: DeserializeOwned>(
        &self,
        method: Method,
        url: &Url,
        body: Body<'_>,
        sent: &[&str],
        organization: &str,
    ) -> Result<T, IdentityError> {
        let refreshed = AtomicBool::new(false);
        let secrets = self.redactor(sent);
        let call = SettingRequest {
            method: &method,
            url,
            body: &body,
            organization,
        };
        let answer = retry::run(&self.connection.inner.retry, |attempt, budget| {
            self.setting_attempt(&call, attempt, budget, &refreshed, &secrets)
        })
        .await?;
        decode_json(Endpoint::Setting, url.as_str(), &answer, &secrets)
    }

    async fn setting_attempt(
        &self,
        call: &SettingRequest<'_>,
        attempt: u32,
        budget: Budget,
        refreshed: &AtomicBool,
        secrets: &Redactor,
    ) -> Result<Answer, IdentityError> {
        let url = call.url;
        let token = self.token(None, attempt, budget).await?;
        let mut answer = self.send_setting(call, &token, attempt, budget).await?;
        if answer.status == 401
            && self.auth.credentials.is_refreshable()
            && !refreshed.swap(true, Ordering::SeqCst)
        {
            tracing::debug!("identity answered 401; refreshing the token once");
            let token = self.token(Some(token.generation), attempt, budget).await?;
            answer = self.send_setting(call, &token, attempt, budget).await?;
        }
        if answer.is_success() {
            Ok(answer)
        } else {
            let mut secrets = secrets.clone();
            secrets.add(token.value.expose());
            Err(answer.into_error(Endpoint::Setting, url.as_str(), &secrets))
        }
    }

    /// One Setting request: first within its organization's limits (when the server has
    /// them), then the server's budget (in [`Self::send`]).
    async fn send_setting(
        &self,
        call: &SettingRequest<'_>,
        token: &Token,
        attempt: u32,
        budget: Budget,
    ) -> Result<Answer, IdentityError> {
        let SettingRequest {
            method, url, body, ..
        } = *call;
        self.admit_for_organization(call, budget).await?;
        let mut request = self
            .connection
            .inner
            .http
            .request(method.clone(), url.clone())
            .bearer_auth(token.value.expose())
            .header(reqwest::header::ACCEPT, "application/json");
        if let Body::Json(json) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(json.to_vec());
        }
        self.send(
            request,
            Endpoint::Setting,
            method.as_str(),
            url,
            attempt,
            budget,
        )
        .await
    }

    /// Waits for the organization's budget of this kind of request, if the server has one:
    /// fails `Throttled` when it would not allow the request within the call's budget.
    async fn admit_for_organization(
        &self,
        call: &SettingRequest<'_>,
        budget: Budget,
    ) -> Result<(), IdentityError> {
        let Some(organizations) = &self.connection.inner.organizations else {
            return Ok(());
        };
        let kind = if *call.method == Method::GET {
            RequestKind::Read
        } else {
            RequestKind::Write
        };
        let Some(organization) = organizations.of(call.organization, kind) else {
            return Ok(());
        };
        organization
            .admit(budget.deadline(), self.connection.inner.retry.max_backoff)
            .await
            .map(drop)
            .map_err(|over| IdentityError::Throttled {
                endpoint: Endpoint::Setting,
                url: call.url.to_string(),
                wait: over.wait,
                server_asked: false,
            })
    }

    /// One attempt of `request`, timed out at the attempt timeout and reported to the observer.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        endpoint: Endpoint,
        method: &str,
        url: &Url,
        attempt: u32,
        budget: Budget,
    ) -> Result<Answer, IdentityError> {
        let server = &self.connection.inner.budget;
        let _admission = server
            .admit(budget.deadline(), self.connection.inner.retry.max_backoff)
            .await
            .map_err(|over| IdentityError::Throttled {
                endpoint,
                url: url.to_string(),
                wait: over.wait,
                server_asked: over.server_asked,
            })?;
        let info = AttemptInfo {
            method,
            endpoint,
            url: url.as_str(),
            attempt,
            timeout: self.attempt_timeout(budget),
        };
        let answer =
            transport::send(request, info, self.connection.inner.observer.as_deref()).await?;
        if answer.status == 429 {
            // Every policy of this server waits, not only the one that was told; without a
            // Retry-After, as long as the longest retry delay.
            let retry = &self.connection.inner.retry;
            server.pause(answer.retry_after().or(Some(retry.max_backoff)));
        }
        Ok(answer)
    }

    fn attempt_timeout(&self, budget: Budget) -> Duration {
        self.connection
            .inner
            .request_timeout
            .min(budget.remaining())
    }

    /// The token to use: the given bearer token, or one from the cache (fetched when stale or
    /// when `rejected` names the cached one).
    async fn token(
        &self,
        rejected: Option<u64>,
        attempt: u32,
        budget: Budget,
    ) -> Result<Token, IdentityError> {
        match &self.auth.credentials {
            Credentials::BearerToken { token } => Ok(Token {
                value: token.clone(),
                generation: 0,
            }),
            Credentials::ClientCredentials {
                client_id,
                client_secret,
                scopes,
            } => {
                self.auth
                    .tokens
                    .get(rejected, || {
                        self.fetch_client_credentials(
                            client_id,
                            client_secret,
                            scopes,
                            attempt,
                            budget,
                        )
                    })
                    .await
            }
            Credentials::Password {
                tenancy_name,
                username,
                password,
                ..
            } => {
                self.auth
                    .tokens
                    .get(rejected, || {
                        self.fetch_ropc(tenancy_name, username, password, attempt, budget)
                    })
                    .await
            }
        }
    }

    /// `POST {base}/connect/token`, `grant_type=client_credentials`, credentials in the form.
    async fn fetch_client_credentials(
        &self,
        client_id: &str,
        client_secret: &SecretString,
        scopes: &[String],
        attempt: u32,
        budget: Budget,
    ) -> Result<(SecretString, Duration), IdentityError> {
        let url = &self.connection.inner.token_url;
        let scope = Credentials::scope_param(scopes);
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", client_secret.expose()),
            ("scope", scope.as_str()),
        ];
        let request = self
            .connection
            .inner
            .http
            .post(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form);
        let answer = self
            .send(request, Endpoint::Token, "POST", url, attempt, budget)
            .await?;
        let secrets = self.redactor(&[]);
        if !answer.is_success() {
            return Err(answer.into_error(Endpoint::Token, url.as_str(), &secrets));
        }
        let response: TokenResponse =
            decode_json(Endpoint::Token, url.as_str(), &answer, &secrets)?;
        if response.access_token.is_empty() {
            return Err(protocol_error(
                Endpoint::Token,
                url.as_str(),
                &answer,
                "the access_token is empty".to_owned(),
            ));
        }
        // Clamped so that no `expires_in` (up to u64::MAX) can overflow the cache's clock.
        let lifetime = Duration::from_secs(response.expires_in.min(MAX_TOKEN_LIFETIME.as_secs()));
        Ok((SecretString::new(response.access_token), lifetime))
    }

    /// `POST {authenticate_url}` with the ABP JSON body; the token is `result`.
    async fn fetch_ropc(
        &self,
        tenancy_name: &str,
        username: &str,
        password: &SecretString,
        attempt: u32,
        budget: Budget,
    ) -> Result<(SecretString, Duration), IdentityError> {
        let Some(url) = &self.auth.authenticate_url else {
            return Err(IdentityError::Configuration(
                "password credentials need an authenticate URL".into(),
            ));
        };
        let body = AuthenticateRequest {
            tenancy_name: tenancy_name.to_owned(),
            username_or_email_address: username.to_owned(),
            password: password.expose().to_owned(),
        };
        let json = serde_json::to_vec(&body).map_err(|e| {
            IdentityError::Configuration(format!("could not serialize the authenticate body: {e}"))
        })?;
        let request = self
            .connection
            .inner
            .http
            .post(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(json);
        let answer = self
            .send(
                request,
                Endpoint::Authenticate,
                "POST",
                url,
                attempt,
                budget,
            )
            .await?;
        let secrets = self.redactor(&[]);
        if !answer.is_success() {
            return Err(answer.into_error(Endpoint::Authenticate, url.as_str(), &secrets));
        }
        let response: AuthenticateResponse =
            decode_json(Endpoint::Authenticate, url.as_str(), &answer, &secrets)?;
        match response.result {
            Some(token) if response.success && !token.is_empty() => {
                Ok((SecretString::new(token), ROPC_TOKEN_LIFETIME))
            }
            _ => Err(secrets.scrub_error(IdentityError::Unauthorized {
                endpoint: Endpoint::Authenticate,
                url: url.to_string(),
                status: answer.status,
                detail: response
                    .error
                    .and_then(|e| body::value_message(&serde_json::json!({ "error": e }))),
                hint: Some(super::error::HINT_PASSWORD),
            })),
        }
    }
}

/// Parses a success body as JSON of type `T`. A non-JSON content type (an HTML login page behind
/// a proxy, say) or a body of the wrong shape is a Protocol error. A sanitized prefix of the body,
/// with `secrets` cut out first, is quoted only for non-JSON Setting answers: JSON answers may
/// hold secret setting values and token-endpoint answers hold tokens, so for those only the
/// shape is described.
fn decode_json<T: DeserializeOwned>(
    endpoint: Endpoint,
    url: &str,
    answer: &Answer,
    secrets: &Redactor,
) -> Result<T, IdentityError> {
    let json_type = answer
        .content_type
        .as_deref()
        .is_none_or(body::is_json_content_type);
    if !json_type {
        let detail = if endpoint == Endpoint::Setting {
            let mut text = String::from_utf8_lossy(&answer.body).into_owned();
            secrets.scrub(&mut text);
            format!(
                "expected JSON; the body starts with: {}",
                body::sanitize_prefix(&text, body::PREFIX_CHARS)
            )
        } else {
            format!(
                "expected JSON, got {} bytes of {}",
                answer.body.len(),
                answer.content_type.as_deref().unwrap_or("none")
            )
        };
        return Err(secrets.scrub_error(protocol_error(endpoint, url, answer, detail)));
    }
    serde_json::from_slice(&answer.body).map_err(|e| {
        let detail = format!(
            "expected {}, got {}",
            expected_shape(endpoint),
            body::describe_json_mismatch(&answer.body, &e)
        );
        protocol_error(endpoint, url, answer, detail)
    })
}

fn expected_shape(endpoint: Endpoint) -> &'static str {
    match endpoint {
        Endpoint::Setting => "a JSON array of settings",
        Endpoint::Token => "an OAuth 2.0 token response",
        Endpoint::Authenticate => "an ABP authenticate response",
    }
}

/// A Protocol error about a success `answer` that is not what the API sends.
fn protocol_error(endpoint: Endpoint, url: &str, answer: &Answer, detail: String) -> IdentityError {
    IdentityError::Protocol {
        endpoint,
        url: url.to_owned(),
        status: answer.status,
        content_type: answer.content_type.clone().unwrap_or_else(|| "none".into()),
        detail,
    }
}

/// Whether a setting key names a secret (`Email.Smtp.Password`), judged by its last segment.
pub fn is_secret_key(key: &str) -> bool {
    key.rsplit('.')
        .next()
        .is_some_and(|last| last.eq_ignore_ascii_case("password"))
}

/// What one Setting call sends, the same on every attempt.
#[derive(Clone, Copy)]
struct SettingRequest<'a> {
    method: &'a Method,
    url: &'a Url,
    body: &'a Body<'a>,
    /// The partition the request is about.
    organization: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documentation() {
        let c = ClientConfig::new(
            "https://h/identity_",
            Credentials::BearerToken { token: "t".into() },
        );
        assert_eq!(c.connect_timeout, Duration::from_secs(5));
        assert_eq!(c.request_timeout, Duration::from_secs(10));
        assert_eq!(c.retry, RetryPolicy::default());
        // A timed-out attempt must leave room for at least one more.
        assert!(c.retry.max_elapsed >= c.request_timeout * 2);
        assert!(!c.allow_http);
        assert!(!format!("{c:?}").contains("\"t\""));
    }

    #[test]
    fn new_validates_url_and_ca() {
        let creds = Credentials::BearerToken {
            token: "tok".into(),
        };
        let e = IdentityClient::new(ClientConfig::new("http://h/identity_", creds.clone()))
            .unwrap_err();
        assert_eq!(e.class(), super::super::error::ErrorClass::Configuration);
        let mut c = ClientConfig::new("https://h/identity_/", creds.clone());
        c.ca_certificate_pem = Some(b"not a pem".to_vec());
        let e = IdentityClient::new(c).unwrap_err();
        assert_eq!(e.class(), super::super::error::ErrorClass::Configuration);
        let client = IdentityClient::new(ClientConfig::new("https://h/identity_/", creds)).unwrap();
        assert_eq!(client.base_url(), "https://h/identity_/");
        assert_eq!(
            client.connection.inner.token_url.as_str(),
            "https://h/identity_/connect/token"
        );
    }

    #[test]
    fn secret_keys() {
        assert!(is_secret_key("Email.Smtp.Password"));
        assert!(is_secret_key("password"));
        assert!(!is_secret_key("Auth.Password.PasswordComplexity"));
    }
}
