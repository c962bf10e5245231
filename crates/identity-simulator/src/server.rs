//! The HTTP routes that imitate the identity service: the Setting API, the client-credentials
//! token endpoint and the legacy ROPC endpoint.
//!
//! Request pipeline for the Setting API, in order: count, latency, read body, fault, method
//! (405), authentication (401), scope (403), then validation (400) and the store. Authentication
//! before validation matches ASP.NET, where authorization runs before model binding.
//!
//! Deviations from the real service (the contract is silent on these; the simulator is strict so
//! the operator cannot come to depend on leniency):
//! - paths are matched exactly (`/api/Setting`, no trailing slash, this casing); ASP.NET routing
//!   would also accept other casings and a trailing slash;
//! - a PUT without `Content-Type: application/json` (or `…+json`) gets 415, as ASP.NET's
//!   `[FromBody]` does;
//! - `partitionGlobalId` is required on GET too (the real service may fall back to the caller's
//!   organisation); an empty `userId` query parameter means organisation level (ASP.NET binds empty
//!   strings as null), while an empty `userId` string in a PUT body is refused with 400;
//! - JSON property names and query parameter names are matched case-insensitively, as ASP.NET
//!   does;
//! - a GET without `key` answers every row of the scope (a guess; the contract is silent);
//! - a PUT is validated as a whole before anything is stored; a key repeated within one PUT is
//!   written in order and each response element shows the value stored at that point;
//! - ROPC: tenancy name and user name are compared case-insensitively (ABP normalises them), the
//!   password exactly; wrong credentials answer 400 with the ABP envelope — the real status is
//!   unknown (ABP's default for a failed login may be 500); the body is not checked for a JSON
//!   `Content-Type`.

use super::load::Load;
use super::org_limits::{Kind, OrganizationLimiter};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use base64::Engine;
use serde::Serialize;
use serde_json::{Map, Value};

use super::auth::{ROPC_TOKEN_LIFETIME, TokenRejection, TokenStore, grant_scopes};
use super::checks::Checks;
use super::conn::ConnHandle;
use super::counters::{Counters, Endpoint};
use super::faults::{Faults, SettingFault};
use super::normalize::{normalize_value, try_normalize_value};
use super::responses::{
    abp_error, abp_token, forbidden, html_login_page, injected_failure, json_ok,
    method_not_allowed, oauth_error, problem, unauthorized, validation_problem,
};
use super::store::Store;
use super::{ClientApp, RopcUser, SimulatorConfig};
use identity_client::types::{SCOPE_SETTING, SCOPE_SETTING_READ, SettingScope, StoredSetting};

/// Largest request body read (ASP.NET's default is about 28 MB; settings bodies are small).
const BODY_LIMIT: usize = 1024 * 1024;

/// The ROPC endpoint's path; it lives outside the identity prefix.
pub(crate) const AUTHENTICATE_PATH: &str = "/api/account/authenticate";

/// State shared by the routes and the [`super::Simulator`] handle.
pub(crate) struct Shared {
    store: Mutex<Store>,
    pub(crate) tokens: Arc<TokenStore>,
    pub(crate) faults: Faults,
    pub(crate) counters: Counters,
    /// Answered GETs per scope, for the benchmark's "how long did a policy wait for a check".
    pub(crate) checks: Checks,
    /// Peak requests in flight and per second.
    pub(crate) load: Load,
    /// Per-organization limits (off unless a test sets them).
    pub(crate) organization_limits: OrganizationLimiter,
    clients: Vec<ClientApp>,
    ropc_users: Vec<RopcUser>,
    token_lifetime: Duration,
}

impl Shared {
    /// The state for `config`: its credentials, and the example's rows when asked.
    pub(crate) fn new(config: &SimulatorConfig) -> Self {
        let tokens = Arc::new(TokenStore::new(config.bearer_tokens.clone()));
        let faults = Faults::new(tokens.clone());
        faults.set_latency(config.setting_latency);
        Self {
            store: Mutex::new(
                if config.seed_example {
                    Store::with_example()
                } else {
                    Store::new()
                }
                .canonicalizing(config.canonicalize),
            ),
            faults,
            tokens,
            counters: Counters::default(),
            checks: Checks::default(),
            load: Load::default(),
            organization_limits: OrganizationLimiter::default(),
            clients: config.clients.clone(),
            ropc_users: config.ropc_users.clone(),
            token_lifetime: config.token_lifetime,
        }
    }

    /// Every row of `scope`, ordered by id.
    pub(crate) fn stored(&self, scope: &SettingScope) -> Vec<StoredSetting> {
        self.store().all(scope)
    }

    /// An out-of-band change: normalised like a PUT (an invalid value is stored as given).
    pub(crate) fn set_directly(
        &self,
        scope: &SettingScope,
        key: &str,
        value: &str,
    ) -> StoredSetting {
        self.store().upsert(scope, key, normalize_value(key, value))
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The router for `prefix` (already normalised: empty or `/…` without trailing slash).
pub(crate) fn router(shared: Arc<Shared>, prefix: &str) -> Router {
    Router::new()
        .route(&format!("{prefix}/api/Setting"), any(setting))
        .route(&format!("{prefix}/connect/token"), any(token))
        .route(AUTHENTICATE_PATH, any(authenticate))
        .merge(super::admin::routes())
        .layer(middleware::from_fn(log_request))
        .with_state(shared)
}

/// Logs method, path and status at debug level; never headers, query or bodies (tokens, secrets).
async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    tracing::debug!(%method, %path, status = response.status().as_u16(), "simulator request");
    response
}

/// `{prefix}/api/Setting`.
async fn setting(
    State(app): State<Arc<Shared>>,
    ConnectInfo(conn): ConnectInfo<ConnHandle>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    app.counters
        .record(Endpoint::Setting, parts.method.as_str());
    let _in_flight = app.load.arrive();
    let latency = app.faults.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let body = match read_body(body).await {
        Ok(b) => b,
        Err(response) => return response,
    };
    match app.faults.take_setting_fault() {
        Some(SettingFault::Drop) => {
            // The response is never written: the killed connection fails the write.
            conn.kill();
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
        Some(SettingFault::Html) => return html_login_page(),
        Some(SettingFault::Fail {
            status,
            retry_after,
        }) => {
            return injected_failure(status, retry_after);
        }
        None => {}
    }
    let needed: &[&str] = match parts.method {
        Method::GET => &[SCOPE_SETTING, SCOPE_SETTING_READ],
        Method::PUT => &[SCOPE_SETTING],
        _ => return method_not_allowed("GET, PUT"),
    };
    if let Some(response) = refusal(&app, &parts.headers, needed) {
        return response;
    }
    if parts.method == Method::GET {
        get_settings(&app, parts.uri.query())
    } else {
        let answer = put_settings(&app, &parts.headers, &body);
        let delay = app.faults.answer_latency();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        answer
    }
}

async fn read_body(body: Body) -> Result<Bytes, Response> {
    axum::body::to_bytes(body, BODY_LIMIT).await.map_err(|_| {
        problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the request body is too large or was cut off",
        )
    })
}

/// The 401 for a missing or invalid bearer token, or the 403 when it has none of `needed`;
/// `None` when the request may go on.
fn refusal(app: &Shared, headers: &HeaderMap, needed: &[&str]) -> Option<Response> {
    let Some(token) = bearer_token(headers) else {
        return Some(unauthorized(TokenRejection::Missing));
    };
    match app.tokens.check(token) {
        Err(rejection) => Some(unauthorized(rejection)),
        Ok(scopes) if scopes.iter().any(|s| needed.contains(&s.as_str())) => None,
        Ok(_) => Some(forbidden()),
    }
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// `GET {prefix}/api/Setting?partitionGlobalId=…&userId=…&key=…&key=…`.
fn get_settings(app: &Shared, query: Option<&str>) -> Response {
    let mut partition: Option<String> = None;
    let mut user: Option<String> = None;
    let mut keys: Vec<String> = Vec::new();
    for (name, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match name.to_ascii_lowercase().as_str() {
            "partitionglobalid" if partition.is_none() => partition = Some(value.into_owned()),
            "userid" if user.is_none() => user = Some(value.into_owned()),
            "key" => keys.push(value.into_owned()),
            _ => {}
        }
    }
    let Some(partition) = partition.filter(|p| !p.is_empty()) else {
        return validation_problem("partitionGlobalId", "partitionGlobalId is required");
    };
    if let Err(retry_after) = app.organization_limits.admit(&partition, Kind::Read) {
        return injected_failure(429, Some(retry_after));
    }
    let scope = SettingScope {
        partition_global_id: partition,
        user_id: user.filter(|u| !u.is_empty()),
    };
    app.checks.record(&scope);
    let store = app.store();
    // Without any `key` every row of the scope is returned. The contract is silent on this; it is
    // a lenient guess at the real service, and the operator's client never sends such a GET.
    let rows = if keys.is_empty() {
        store.all(&scope)
    } else {
        store.get(&scope, &keys)
    };
    json_ok(&rows)
}

/// A PUT body that cannot be accepted: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {detail}")]
struct PutError {
    field: String,
    detail: String,
}

impl PutError {
    fn new(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            detail: detail.into(),
        }
    }
}

/// `PUT {prefix}/api/Setting`.
fn put_settings(app: &Shared, headers: &HeaderMap, body: &[u8]) -> Response {
    if !is_json(headers) {
        return problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the request body must be sent with Content-Type: application/json",
        );
    }
    let (scope, settings) = match parse_put(body) {
        Ok(parsed) => parsed,
        Err(e) => return validation_problem(&e.field, &e.detail),
    };
    if let Err(retry_after) = app
        .organization_limits
        .admit(&scope.partition_global_id, Kind::Write)
    {
        return injected_failure(429, Some(retry_after));
    }
    let mut normalised = Vec::with_capacity(settings.len());
    for (i, (key, value)) in settings.into_iter().enumerate() {
        match try_normalize_value(&key, &value) {
            Ok(v) => normalised.push((key, v)),
            Err(e) => return validation_problem(&format!("settings[{i}].value"), &e.0),
        }
    }
    let mut store = app.store();
    let rows: Vec<StoredSetting> = normalised
        .into_iter()
        .map(|(key, value)| store.upsert(&scope, &key, value))
        .collect();
    json_ok(&rows)
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// A property of a JSON object, its name matched case-insensitively (as ASP.NET binds).
fn property<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// The scope and the (key, value) pairs of a PUT body, or the first thing wrong with it.
fn parse_put(body: &[u8]) -> Result<(SettingScope, Vec<(String, String)>), PutError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(PutError::new("$", "a non-empty request body is required"));
    }
    let parsed: Value = serde_json::from_slice(body)
        .map_err(|e| PutError::new("$", format!("the request body is not valid JSON ({e})")))?;
    let Value::Object(object) = parsed else {
        return Err(PutError::new("$", "the request body must be a JSON object"));
    };
    let partition = match property(&object, "partitionGlobalId") {
        Some(Value::String(p)) if !p.is_empty() => p.clone(),
        Some(Value::String(_)) | Some(Value::Null) | None => {
            return Err(PutError::new(
                "partitionGlobalId",
                "partitionGlobalId is required",
            ));
        }
        Some(_) => {
            return Err(PutError::new(
                "partitionGlobalId",
                "partitionGlobalId must be a string",
            ));
        }
    };
    let user = match property(&object, "userId") {
        None | Some(Value::Null) => None,
        Some(Value::String(u)) if !u.is_empty() => Some(u.clone()),
        Some(Value::String(_)) => {
            return Err(PutError::new(
                "userId",
                "userId must not be empty (omit it or send null for organisation-level settings)",
            ));
        }
        Some(_) => return Err(PutError::new("userId", "userId must be a string or null")),
    };
    let items = match property(&object, "settings") {
        Some(Value::Array(items)) => items,
        None | Some(Value::Null) => {
            return Err(PutError::new("settings", "settings is required"));
        }
        Some(_) => return Err(PutError::new("settings", "settings must be an array")),
    };
    let settings = items
        .iter()
        .enumerate()
        .map(|(i, item)| parse_item(i, item))
        .collect::<Result<_, _>>()?;
    Ok((
        SettingScope {
            partition_global_id: partition,
            user_id: user,
        },
        settings,
    ))
}

fn parse_item(i: usize, item: &Value) -> Result<(String, String), PutError> {
    let Value::Object(item) = item else {
        return Err(PutError::new(
            format!("settings[{i}]"),
            format!("settings[{i}] must be an object with key and value"),
        ));
    };
    let key = match property(item, "key") {
        Some(Value::String(k)) if !k.trim().is_empty() => k.clone(),
        Some(Value::String(_)) | Some(Value::Null) | None => {
            return Err(PutError::new(
                format!("settings[{i}].key"),
                format!("settings[{i}].key is required and must not be empty"),
            ));
        }
        Some(_) => {
            return Err(PutError::new(
                format!("settings[{i}].key"),
                format!("settings[{i}].key must be a string"),
            ));
        }
    };
    let value = match property(item, "value") {
        Some(Value::String(v)) => v.clone(),
        None | Some(Value::Null) => {
            return Err(PutError::new(
                format!("settings[{i}].value"),
                format!("settings[{i}].value (key {key}) is required"),
            ));
        }
        Some(other) => {
            return Err(PutError::new(
                format!("settings[{i}].value"),
                format!(
                    "settings[{i}].value (key {key}) must be a string, not a JSON {}; send numbers, booleans and structured values as strings",
                    json_kind(other)
                ),
            ));
        }
    };
    Ok((key, value))
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The OAuth 2.0 token response.
#[derive(Serialize)]
struct TokenBody {
    access_token: String,
    expires_in: u64,
    token_type: &'static str,
    scope: String,
}

/// `POST {prefix}/connect/token` with `grant_type=client_credentials`.
///
/// Order of checks: client authentication (`invalid_client`), then grant type (400
/// `unsupported_grant_type`, also when missing), then scopes (400 `invalid_scope`). Client
/// credentials are taken from an HTTP Basic header or from the form. A refused client gets 401
/// (with `WWW-Authenticate: Basic`) when it authenticated with Basic, else 400, as RFC 6749 §5.2
/// and IdentityServer's token error result do. `expires_in` is the configured lifetime in whole
/// seconds, even a huge one (`Duration::MAX` gives `u64::MAX`), so clients must cope with it.
async fn token(State(app): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    app.counters.record(Endpoint::Token, parts.method.as_str());
    let _in_flight = app.load.arrive();
    if parts.method != Method::POST {
        return method_not_allowed("POST");
    }
    if let Some(status) = app.faults.take_token_fault() {
        return injected_failure(status, None);
    }
    let body = match read_body(body).await {
        Ok(b) => b,
        Err(response) => return response,
    };
    let is_form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|e| {
            e.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            Some("the body must be application/x-www-form-urlencoded"),
        );
    }
    let form = Form::parse(&body);
    let basic = basic_credentials(&parts.headers);
    let invalid_client = || {
        if basic.is_some() {
            let mut response = oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", None);
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Basic"),
            );
            response
        } else {
            oauth_error(StatusCode::BAD_REQUEST, "invalid_client", None)
        }
    };
    let Some((client_id, client_secret)) = basic.clone().or_else(|| {
        Some((
            form.get("client_id")?.to_owned(),
            form.get("client_secret")?.to_owned(),
        ))
    }) else {
        return invalid_client();
    };
    let Some(client) = app
        .clients
        .iter()
        .find(|c| c.client_id == client_id && c.client_secret == client_secret)
    else {
        return invalid_client();
    };
    if form.get("grant_type") != Some("client_credentials") {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", None);
    }
    let Some(scopes) = grant_scopes(client, form.get("scope")) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_scope", None);
    };
    let scope = scopes.join(" ");
    let access_token = app.tokens.issue(scopes, app.token_lifetime);
    let mut response = json_ok(&TokenBody {
        access_token,
        expires_in: app.token_lifetime.as_secs(),
        token_type: "Bearer",
        scope,
    });
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    response
}

/// A parsed form body; the first occurrence of a parameter wins.
struct Form(Vec<(String, String)>);

impl Form {
    fn parse(body: &[u8]) -> Self {
        Self(
            url::form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `Authorization: Basic base64(urlencode(id):urlencode(secret))`, as RFC 6749 §2.3.1 describes.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |s: &str| -> String {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((unescape(id), unescape(secret)))
}

/// `POST /api/account/authenticate` (legacy ROPC, ABP envelope).
async fn authenticate(State(app): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    app.counters
        .record(Endpoint::Authenticate, parts.method.as_str());
    let _in_flight = app.load.arrive();
    if parts.method != Method::POST {
        return method_not_allowed("POST");
    }
    if let Some(status) = app.faults.take_token_fault() {
        return injected_failure(status, None);
    }
    let body = match read_body(body).await {
        Ok(b) => b,
        Err(response) => return response,
    };
    let Some((tenancy, username, password)) = parse_authenticate(&body) else {
        return abp_error(
            StatusCode::BAD_REQUEST,
            "Your request is not valid!",
            "TenancyName, UsernameOrEmailAddress and Password are required strings in a JSON body.",
        );
    };
    let known = app.ropc_users.iter().any(|u| {
        u.tenancy_name.eq_ignore_ascii_case(&tenancy)
            && u.username.eq_ignore_ascii_case(&username)
            && u.password == password
    });
    if !known {
        return abp_error(
            StatusCode::BAD_REQUEST,
            "Login failed!",
            "Invalid user name or password",
        );
    }
    abp_token(
        &app.tokens
            .issue(vec![SCOPE_SETTING.to_owned()], ROPC_TOKEN_LIFETIME),
    )
}

fn parse_authenticate(body: &[u8]) -> Option<(String, String, String)> {
    let Value::Object(object) = serde_json::from_slice::<Value>(body).ok()? else {
        return None;
    };
    let text = |name: &str| match property(&object, name) {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    let username = text("UsernameOrEmailAddress").filter(|u| !u.is_empty())?;
    let password = text("Password").filter(|p| !p.is_empty())?;
    // The host's tenancy may be sent empty; it then only matches a user configured with "".
    let tenancy = text("TenancyName").unwrap_or_default();
    Some((tenancy, username, password))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_body_errors_name_the_field() {
        let cases: [(&str, &str); 12] = [
            ("", "$"),
            ("{", "$"),
            ("[]", "$"),
            (r#"{"settings":[]}"#, "partitionGlobalId"),
            (
                r#"{"settings":[],"partitionGlobalId":""}"#,
                "partitionGlobalId",
            ),
            (r#"{"partitionGlobalId":"p"}"#, "settings"),
            (r#"{"partitionGlobalId":"p","settings":{}}"#, "settings"),
            (
                r#"{"partitionGlobalId":"p","settings":[{"key":"","value":"1"}]}"#,
                "settings[0].key",
            ),
            (
                r#"{"partitionGlobalId":"p","settings":[{"key":"a","value":"1"},{"key":"b","value":1}]}"#,
                "settings[1].value",
            ),
            (
                r#"{"partitionGlobalId":"p","settings":[{"key":"a"}]}"#,
                "settings[0].value",
            ),
            (r#"{"partitionGlobalId":"p","settings":[3]}"#, "settings[0]"),
            (
                r#"{"partitionGlobalId":"p","userId":"","settings":[]}"#,
                "userId",
            ),
        ];
        for (body, field) in cases {
            let err = parse_put(body.as_bytes()).unwrap_err();
            assert_eq!(err.field, field, "{body}: {err}");
        }
    }

    #[test]
    fn put_body_names_are_case_insensitive() {
        let (scope, settings) = parse_put(
            br#"{"PartitionGlobalId":"p","USERID":"u","Settings":[{"Key":"a","VALUE":"1"}]}"#,
        )
        .unwrap();
        assert_eq!(scope, SettingScope::user("p", "u"));
        assert_eq!(settings, [("a".to_owned(), "1".to_owned())]);
    }

    #[test]
    fn basic_credentials_are_url_decoded() {
        let mut headers = HeaderMap::new();
        let encoded = base64::engine::general_purpose::STANDARD.encode("my%20app:s%3Acret");
        headers.insert(
            header::AUTHORIZATION,
            format!("Basic {encoded}").parse().unwrap(),
        );
        assert_eq!(
            basic_credentials(&headers),
            Some(("my app".into(), "s:cret".into()))
        );
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, "bearer abc".parse().unwrap());
        assert_eq!(bearer_token(&headers), Some("abc"));
        headers.insert(header::AUTHORIZATION, "Bearer ".parse().unwrap());
        assert_eq!(bearer_token(&headers), None);
    }
}
