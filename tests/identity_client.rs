//! The identity client against the identity service simulator over loopback HTTP: every auth
//! mode, token caching and single-flight refresh, every error class, retries bounded in count and
//! time, and no secret in any error.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use identity_settings_operator::identity::auth::Credentials;
use identity_settings_operator::identity::client::{
    self, ClientConfig, IdentityClient, RequestObserver, RequestOutcome, RetryPolicy,
};
use identity_settings_operator::identity::error::{ErrorClass, IdentityError};
use identity_settings_operator::identity::redact::Redactor;
use identity_settings_operator::identity::types::{
    PutSettingsRequest, SettingScope, SettingValue, StoredSetting,
};
use identity_simulator::{Endpoint, Simulator, SimulatorConfig};

const EXAMPLE_REQUEST: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/identity-api/put-setting-request.json"
));
const EXAMPLE_RESPONSE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/identity-api/put-setting-response.json"
));

/// Every secret the tests use; none may appear in an error's Display or Debug.
const SECRETS: &[&str] = &[
    "operator-secret",
    "reader-secret",
    "wrong-secret",
    "static-admin-token",
    "admin-password",
    "wrong-password",
    "revoked-token-value",
    "smtp-hunter2",
];

const COMPLEXITY: &str = "Auth.Password.PasswordComplexity";

async fn start() -> Simulator {
    Simulator::start(SimulatorConfig::default()).await.unwrap()
}

fn operator() -> Credentials {
    Credentials::ClientCredentials {
        client_id: "operator".into(),
        client_secret: "operator-secret".into(),
        scopes: vec![],
    }
}

fn ropc(sim: &Simulator, password: &str) -> Credentials {
    Credentials::Password {
        authenticate_url: sim.authenticate_url(),
        tenancy_name: "Default".into(),
        username: "admin".into(),
        password: password.into(),
    }
}

/// Fast retries so the tests stay quick; http allowed for loopback.
fn config(base_url: impl Into<String>, credentials: Credentials) -> ClientConfig {
    let mut config = ClientConfig::new(base_url, credentials);
    config.allow_http = true;
    config.request_timeout = Duration::from_secs(5);
    config.retry = RetryPolicy {
        max_attempts: 4,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        max_elapsed: Duration::from_secs(5),
    };
    config
}

fn client(sim: &Simulator, credentials: Credentials) -> IdentityClient {
    IdentityClient::new(config(sim.base_url(), credentials)).unwrap()
}

fn org() -> SettingScope {
    SettingScope::organization("magic-7")
}

fn keys(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

fn setting(key: &str, value: &str) -> SettingValue {
    SettingValue {
        key: key.into(),
        value: value.into(),
    }
}

/// Checks the class and that no secret shows in Display or Debug; returns the Display text.
fn assert_error(error: &IdentityError, class: ErrorClass) -> String {
    let display = error.to_string();
    let debug = format!("{error:?}");
    for secret in SECRETS {
        assert!(!display.contains(secret), "{secret} in {display}");
        assert!(!debug.contains(secret), "{secret} in {debug}");
    }
    assert_eq!(error.class(), class, "{display}");
    display
}

/// Records every observed attempt.
#[derive(Default)]
struct Recorder(Mutex<Vec<(String, client::Endpoint, RequestOutcome)>>);

impl RequestObserver for Recorder {
    fn observe(&self, method: &str, endpoint: client::Endpoint, outcome: RequestOutcome) {
        self.0
            .lock()
            .unwrap()
            .push((method.to_owned(), endpoint, outcome));
    }
}

impl Recorder {
    fn seen(&self) -> Vec<(String, client::Endpoint, RequestOutcome)> {
        self.0.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn example_round_trip_with_client_credentials() {
    let sim = start().await;
    let client = client(&sim, operator());
    let request: PutSettingsRequest = serde_json::from_str(EXAMPLE_REQUEST).unwrap();
    let expected: Vec<StoredSetting> = serde_json::from_str(EXAMPLE_RESPONSE).unwrap();

    let written = client
        .put_settings(&org(), &request.settings)
        .await
        .unwrap();
    let ids: Vec<i64> = written.iter().map(|s| s.id).collect();
    assert_eq!(ids, vec![4, 1, 3, 2, 26, 27, 28]);
    assert_eq!(written, expected);

    let wanted: Vec<String> = request.settings.iter().map(|s| s.key.clone()).collect();
    let mut read = client.get_settings(&org(), &wanted).await.unwrap();
    read.sort_by_key(|s| s.id);
    let mut expected_sorted = expected.clone();
    expected_sorted.sort_by_key(|s| s.id);
    assert_eq!(read, expected_sorted);
    assert_eq!(sim.counters().count(Endpoint::Setting, "PUT"), 1);
    assert_eq!(sim.counters().count(Endpoint::Setting, "GET"), 1);
}

#[tokio::test]
async fn user_scope_and_missing_keys_and_trailing_slash() {
    let sim = start().await;
    let client = IdentityClient::new(config(format!("{}/", sim.base_url()), operator())).unwrap();
    let scope = SettingScope::user("org & co", "user/1");
    let written = client
        .put_settings(&scope, &[setting("Email.Smtp.Port", "587")])
        .await
        .unwrap();
    assert_eq!(written[0].user_id.as_deref(), Some("user/1"));
    assert_eq!(written[0].partition_global_id, "org & co");
    let read = client
        .get_settings(&scope, &keys(&["Email.Smtp.Port", "Email.Smtp.Host"]))
        .await
        .unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].value, "587");
    assert_eq!(sim.stored(&scope).len(), 1);
}

#[tokio::test]
async fn token_is_cached_across_calls_and_clones() {
    let sim = start().await;
    let client = client(&sim, operator());
    let clone = client.clone();
    for _ in 0..10 {
        client
            .get_settings(&org(), &keys(&[COMPLEXITY]))
            .await
            .unwrap();
        clone
            .get_settings(&org(), &keys(&[COMPLEXITY]))
            .await
            .unwrap();
    }
    assert_eq!(sim.counters().count(Endpoint::Token, "POST"), 1);
    assert_eq!(client.token_requests(), 1);
    assert_eq!(sim.counters().count(Endpoint::Setting, "GET"), 20);
}

async fn fifty_concurrent_reads(client: &IdentityClient) {
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.get_settings(&org(), &keys(&[COMPLEXITY])).await })
        })
        .collect();
    for task in tasks {
        let read = task.await.unwrap().unwrap();
        assert_eq!(read.len(), 1);
    }
}

#[tokio::test]
async fn revoked_tokens_are_refreshed_once_for_fifty_concurrent_callers() {
    let sim = start().await;
    let client = client(&sim, operator());
    fifty_concurrent_reads(&client).await;
    assert_eq!(sim.counters().count(Endpoint::Token, "POST"), 1);

    sim.faults().expire_all_tokens();
    fifty_concurrent_reads(&client).await;
    assert_eq!(sim.counters().count(Endpoint::Token, "POST"), 2);
    assert_eq!(client.token_requests(), 2);
}

#[tokio::test]
async fn tokens_near_expiry_are_refreshed_once_for_fifty_concurrent_callers() {
    let sim = Simulator::start(SimulatorConfig {
        token_lifetime: Duration::from_secs(2),
        ..SimulatorConfig::default()
    })
    .await
    .unwrap();
    let client = client(&sim, operator());
    client
        .get_settings(&org(), &keys(&[COMPLEXITY]))
        .await
        .unwrap();
    client
        .get_settings(&org(), &keys(&[COMPLEXITY]))
        .await
        .unwrap();
    assert_eq!(sim.counters().count(Endpoint::Token, "POST"), 1);
    // Refreshed at half of a 2 s lifetime, before the server would refuse it.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    fifty_concurrent_reads(&client).await;
    assert_eq!(sim.counters().count(Endpoint::Token, "POST"), 2);
    // No request was refused: every GET succeeded the first time.
    assert_eq!(sim.counters().count(Endpoint::Setting, "GET"), 52);
}

#[tokio::test]
async fn bearer_token_is_used_as_given_and_never_refreshed() {
    let sim = start().await;
    let good = client(
        &sim,
        Credentials::BearerToken {
            token: "static-admin-token".into(),
        },
    );
    let written = good
        .put_settings(&org(), &[setting("Auth.UserLockOut.IsEnabled", "true")])
        .await
        .unwrap();
    assert_eq!(written[0].id, 27);

    let bad = client(
        &sim,
        Credentials::BearerToken {
            token: "revoked-token-value".into(),
        },
    );
    let err = bad
        .get_settings(&org(), &keys(&[COMPLEXITY]))
        .await
        .unwrap_err();
    let text = assert_error(&err, ErrorClass::Authentication);
    assert!(text.contains("401"), "{text}");
    assert_eq!(sim.counters().total(Endpoint::Token), 0);
    assert_eq!(sim.counters().count(Endpoint::Setting, "GET"), 1);
    assert_eq!(bad.token_requests(), 0);
}

#[tokio::test]
async fn a_token_obtained_elsewhere_stays_out_of_errors() {
    let sim = start().await;
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "operator"),
        ("client_secret", "operator-secret"),
        ("scope", "PM.Setting"),
    ];
    let body = form
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let response: serde_json::Value = identity_client::http_client_builder()
        .build()
        .unwrap()
        .post(format!("{}/connect/token", sim.base_url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = response["access_token"].as_str().unwrap().to_owned();
    let client = client(
        &sim,
        Credentials::BearerToken {
            token: token.clone().into(),
        },
    );
    client
        .get_settings(&org(), &keys(&[COMPLEXITY]))
        .await
        .unwrap();
    sim.faults().expire_all_tokens();
    let err = client
        .get_settings(&org(), &keys(&[COMPLEXITY]))
        .await
        .unwrap_err();
    assert_error(&err, ErrorClass::Authentication);
    assert!(!err.to_string().contains(&token));
    assert!(!format!("{err:?}").contains(&token));
}

#[tokio::test]
async fn ropc_gets_a_token_caches_it_and_refreshes_after_a_401() {
    let sim = start().await;
    let client = client(&sim, ropc(&sim, "admin-password"));
    let written = client
        .put_settings(&org(), &[setting("Auth.Password.PreviousUseLimit", "3")])
        .await
        .unwrap();
    assert_eq!(written[0].id, 3);
    client
        .get_settings(&org(), &keys(&[COMPLEXITY]))
        .await
        .unwrap();
    assert_eq!(sim.counters().count(Endpoint::Authenticate, "POST"), 1);
    assert_eq!(sim.counters().total(Endpoint::Token), 0);

    sim.faults().expire_all_tokens();
    fifty_concurrent_reads(&client).await;
    assert_eq!(sim.counters().count(Endpoint::Authenticate, "POST"), 2);
}

#[tokio::test]
async fn ropc_with_a_wrong_password_is_an_authentication_error() {
    let sim = start().await;
    let client = client(&sim, ropc(&sim, "wrong-password"));
    let err = client
        .get_settings(&org(), &keys(&[COMPLEXITY]))
        .await
        .unwrap_err();
    let text = assert_error(&err, ErrorClass::Authentication);
    assert!(text.contains("Login failed"), "{text}");
    assert_eq!(sim.counters().total(Endpoint::Setting), 0);
}

#[tokio::test]
async fn a_wrong_client_secret_is_an_authentication_error_without_retries() {
    let sim = start().await;
    let client = client(
        &sim,
        Credentials::ClientCredentials {
            client_id: "operator".into(),
            client_secret: "wrong-secret".into(),
            scopes: vec![],
        },
    );
    let err = client
        .get_settings(&org(), &keys(&[COMPLEXITY]))
        .await
        .unwrap_err();
    let text = assert_error(&err, ErrorClass::Authentication);
    assert!(text.contains("invalid_client"), "{text}");
    // Form-posted client credentials are refused with 400 `invalid_client` (RFC 6749 §5.2).
    assert_eq!(err.status(), Some(400), "{text}");
    assert_eq!(sim.counters().count(Endpoint::Token, "POST"), 1);
    assert_eq!(sim.counters().total(Endpoint::Setting), 0);
}

#[tokio::test]
async fn a_second_401_after_the_refresh_is_an_authentication_error() {
    let sim = start().await;
    let client = client(&sim, operator());
    sim.faults().fail_next(2, 401, None);
    let err = client
        .get_settings(&org(), &keys(&[COMPLEXITY]))
        .await
        .unwrap_err();
    assert_error(&err, ErrorClass::Authentication);
    assert_eq!(sim.counters().count(Endpoint::Token, "POST"), 2);
    assert_eq!(sim.counters().count(Endpoint::Setting, "GET"), 2);
    // One 401 only: the refresh fixes it.
    sim.faults().fail_next(1, 401, None);
    client
        .get_settings(&org(), &keys(&[COMPLEXITY]))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_reader_may_read_but_not_write() {
    let sim = start().await;
    let reader = client(
        &sim,
        Credentials::ClientCredentials {
            client_id: "reader".into(),
            client_secret: "reader-secret".into(),
            scopes: vec!["PM.Setting.Read".into()],
        },
    );
    reader
        .get_settings(&org(), &keys(&[COMPLEXITY]))
        .await
        .unwrap();
    let err = reader
        .put_settings(&org(), &[setting("Auth.UserLockOut.IsEnabled", "true")])
        .await
        .unwrap_err();
    let text = assert_error(&err, ErrorClass::Forbidden);
    assert!(text.contains("403"), "{text}");
    assert_eq!(sim.counters().count(Endpoint::Setting, "PUT"), 1);

    // Asking for a scope the application does not have is refused at the token endpoint.
    let greedy = client(
        &sim,
        Credentials::ClientCredentials {
            client_id: "reader".into(),
            client_secret: "reader-secret".into(),
            scopes: vec![],
        },
    );
    let err = greedy
        .get_settings(&org(), &keys(&[COMPLEXITY]))
        .await
        .unwrap_err();
    let text = assert_error(&err, ErrorClass::Forbidden);
    assert!(text.contains("invalid_scope"), "{text}");
}

#[tokio::test]
async fn an_invalid_value_is_an_invalid_request_with_the_servers_message() {
    let sim = start().await;
    let client = client(&sim, operator());
    let err = client
        .put_settings(
            &org(),
            &[
                setting(COMPLEXITY, "{\"Length\":\"many\"}"),
                setting("Email.Smtp.Password", "smtp-hunter2"),
            ],
        )
        .await
        .unwrap_err();
    let text = assert_error(&err, ErrorClass::InvalidRequest);
    assert!(text.contains("400"), "{text}");
    assert!(
        text.contains("Length") || text.contains(COMPLEXITY),
        "{text}"
    );
    assert_eq!(sim.counters().count(Endpoint::Setting, "PUT"), 1);
}

#[tokio::test]
async fn a_wrong_prefix_is_not_found_with_the_url_tried() {
    let sim = start().await;
    let base = sim.base_url().replace("/identity_", "/identity");
    let not_found_url = |credentials| {
        let base = base.clone();
        async move {
            let client = IdentityClient::new(config(base, credentials)).unwrap();
            let err = client
                .get_settings(&org(), &keys(&[COMPLEXITY]))
                .await
                .unwrap_err();
            let text = assert_error(&err, ErrorClass::NotFound);
            let IdentityError::NotFound { url } = &err else {
                panic!("{err:?}")
            };
            assert!(text.contains(url.as_str()), "{text}");
            url.clone()
        }
    };
    // With client credentials the token endpoint is the first to answer 404.
    assert_eq!(
        not_found_url(operator()).await,
        format!("{base}/connect/token")
    );
    let bearer = Credentials::BearerToken {
        token: "static-admin-token".into(),
    };
    assert_eq!(
        not_found_url(bearer).await,
        format!("{base}/api/Setting?partitionGlobalId=magic-7&key={COMPLEXITY}")
    );
}

#[tokio::test]
async fn http_is_refused_unless_allowed() {
    let sim = start().await;
    let err = IdentityClient::new(ClientConfig::new(sim.base_url(), operator())).unwrap_err();
    let text = assert_error(&err, ErrorClass::Configuration);
    assert!(text.contains("http"), "{text}");
    let mut password = ClientConfig::new(
        "https://identity.example/identity_",
        ropc(&sim, "admin-password"),
    );
    password.allow_http = false;
    let err = IdentityClient::new(password).unwrap_err();
    assert_error(&err, ErrorClass::Configuration);
    assert_eq!(sim.counters().total(Endpoint::Token), 0);
}

#[tokio::test]
async fn server_errors_and_throttling_are_retried_then_succeed() {
    let sim = start().await;
    let recorder = Arc::new(Recorder::default());
    let mut config = config(sim.base_url(), operator());
    config.observer = Some(recorder.clone());
    let client = IdentityClient::new(config).unwrap();

    sim.faults().fail_next(2, 503, None);
    client
        .get_settings(&org(), &keys(&[COMPLEXITY]))
        .await
        .unwrap();
    assert_eq!(sim.counters().count(Endpoint::Setting, "GET"), 3);

    sim.faults().fail_next(2, 429, None);
    client
        .put_settings(&org(), &[setting("Auth.UserLockOut.IsEnabled", "true")])
        .await
        .unwrap();
    assert_eq!(sim.counters().count(Endpoint::Setting, "PUT"), 3);

    let seen = recorder.seen();
    let setting = |method: &str, status: u16| {
        seen.iter()
            .filter(|(m, e, o)| {
                m == method
                    && *e == client::Endpoint::Setting
                    && *o == RequestOutcome::Status(status)
            })
            .count()
    };
    assert_eq!(setting("GET", 503), 2);
    assert_eq!(setting("GET", 200), 1);
    assert_eq!(setting("PUT", 429), 2);
    assert_eq!(setting("PUT", 200), 1);
    assert_eq!(
        seen.iter()
            .filter(|(m, e, _)| m == "POST" && *e == client::Endpoint::Token)
            .count(),
        1
    );
    assert_eq!(seen.len(), 7);
}

#[tokio::test]
async fn token_endpoint_failures_are_retried() {
    let sim = start().await;
    let client = client(&sim, operator());
    sim.faults().fail_next_token(2, 503);
    client
        .get_settings(&org(), &keys(&[COMPLEXITY]))
        .await
        .unwrap();
    assert_eq!(sim.counters().count(Endpoint::Token, "POST"), 3);
}

#[tokio::test]
async fn persistent_server_errors_exhaust_the_attempts() {
    let sim = start().await;
    let client = client(&sim, operator());
    sim.faults().fail_next(100, 500, None);
    let err = client
        .get_settings(&org(), &keys(&[COMPLEXITY]))
        .await
        .unwrap_err();
    let text = assert_error(&err, ErrorClass::Transient);
    assert!(
        matches!(err, IdentityError::RetriesExhausted { attempts: 4, .. }),
        "{text}"
    );
    assert!(text.contains("500"), "{text}");
    assert_eq!(err.status(), Some(500));
    assert_eq!(sim.counters().count(Endpoint::Setting, "GET"), 4);
}

#[tokio::test]
async fn a_retry_after_that_fits_is_waited_for() {
    let sim = start().await;
    let mut honoured = config(sim.base_url(), operator());
    honoured.retry.max_backoff = Duration::from_secs(5);
    let client = IdentityClient::new(honoured).unwrap();
    client
        .get_settings(&org(), &keys(&[COMPLEXITY]))
        .await
        .unwrap();

    sim.faults().fail_next(1, 429, Some(Duration::from_secs(1)));
    let start = Instant::now();
    client
        .get_settings(&org(), &keys(&[COMPLEXITY]))
        .await
        .unwrap();
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_secs(1), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert_eq!(sim.counters().count(Endpoint::Setting, "GET"), 3);
}

#[tokio::test]
async fn a_retry_after_longer_than_max_backoff_ends_the_call_with_it() {
    let sim = start().await;
    // max_backoff is 50 ms here: a 30 s Retry-After is not waited for, nor cut short.
    let client = client(&sim, operator());
    client
        .get_settings(&org(), &keys(&[COMPLEXITY]))
        .await
        .unwrap();
    sim.faults()
        .fail_next(1, 503, Some(Duration::from_secs(30)));
    let start = Instant::now();
    let err = client
        .get_settings(&org(), &keys(&[COMPLEXITY]))
        .await
        .unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    let text = assert_error(&err, ErrorClass::Transient);
    assert!(text.contains("retry after 30s"), "{text}");
    // The caller learns how long the server asked to wait, and nothing was sent in between.
    assert_eq!(err.retry_after(), Some(Duration::from_secs(30)));
    assert_eq!(sim.counters().count(Endpoint::Setting, "GET"), 2);

    // Also when it is within max_backoff but longer than the time left in max_elapsed.
    let mut config = config(sim.base_url(), operator());
    config.retry.max_backoff = Duration::from_secs(10);
    config.retry.max_elapsed = Duration::from_secs(2);
    let short = IdentityClient::new(config).unwrap();
    sim.faults().fail_next(1, 429, Some(Duration::from_secs(7)));
    let start = Instant::now();
    let err = short
        .get_settings(&org(), &keys(&[COMPLEXITY]))
        .await
        .unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(1));
    assert_error(&err, ErrorClass::Transient);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
}

#[tokio::test]
async fn retries_stop_at_max_elapsed() {
    let sim = start().await;
    let mut config = config(sim.base_url(), operator());
    config.retry = RetryPolicy {
        max_attempts: 1000,
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        max_elapsed: Duration::from_secs(1),
    };
    let client = IdentityClient::new(config).unwrap();
    client
        .get_settings(&org(), &keys(&[COMPLEXITY]))
        .await
        .unwrap();
    sim.faults().fail_next(10_000, 503, None);
    let start = Instant::now();
    let err = client
        .get_settings(&org(), &keys(&[COMPLEXITY]))
        .await
        .unwrap_err();
    let elapsed = start.elapsed();
    assert_error(&err, ErrorClass::Transient);
    assert!(elapsed < Duration::from_millis(1200), "{elapsed:?}");
    let attempts = sim.counters().count(Endpoint::Setting, "GET") - 1;
    assert!((3..1000).contains(&attempts), "{attempts}");
}

#[tokio::test]
async fn an_html_page_is_a_protocol_error_naming_content_type_and_prefix() {
    let sim = start().await;
    let client = client(&sim, operator());
    sim.faults().html_next(1);
    let err = client
        .get_settings(&org(), &keys(&[COMPLEXITY]))
        .await
        .unwrap_err();
    let text = assert_error(&err, ErrorClass::Protocol);
    assert!(text.contains("text/html"), "{text}");
    assert!(text.contains("<!DOCTYPE html>"), "{text}");
    let IdentityError::Protocol { detail, .. } = &err else {
        panic!("{err:?}")
    };
    let quoted = detail
        .split_once("starts with: ")
        .map(|(_, q)| q)
        .unwrap_or_default();
    assert!(quoted.starts_with("<!DOCTYPE html>"), "{detail}");
    assert!(quoted.chars().count() <= 121, "{detail}");
    assert!(!detail.contains('\n'));
    assert_eq!(sim.counters().count(Endpoint::Setting, "GET"), 1);
}

#[tokio::test]
async fn dropped_connections_are_retried_then_reported_as_transient() {
    let sim = start().await;
    let recorder = Arc::new(Recorder::default());
    let mut config = config(sim.base_url(), operator());
    config.observer = Some(recorder.clone());
    let client = IdentityClient::new(config).unwrap();

    sim.faults().drop_next(1);
    client
        .get_settings(&org(), &keys(&[COMPLEXITY]))
        .await
        .unwrap();
    assert_eq!(sim.counters().count(Endpoint::Setting, "GET"), 2);
    assert!(
        recorder
            .seen()
            .iter()
            .any(|(_, _, o)| *o == RequestOutcome::ConnectionError)
    );

    sim.faults().drop_next(100);
    let err = client
        .get_settings(&org(), &keys(&[COMPLEXITY]))
        .await
        .unwrap_err();
    let text = assert_error(&err, ErrorClass::Transient);
    assert!(text.contains("gave up after 4 attempts"), "{text}");
}

#[tokio::test]
async fn slow_answers_time_out_as_transient() {
    let sim = start().await;
    let recorder = Arc::new(Recorder::default());
    let mut config = config(sim.base_url(), operator());
    config.request_timeout = Duration::from_millis(200);
    config.retry.max_attempts = 2;
    config.observer = Some(recorder.clone());
    let client = IdentityClient::new(config).unwrap();
    sim.faults().set_latency(Duration::from_secs(2));
    let start = Instant::now();
    let err = client
        .get_settings(&org(), &keys(&[COMPLEXITY]))
        .await
        .unwrap_err();
    let text = assert_error(&err, ErrorClass::Transient);
    assert!(text.contains("timed out"), "{text}");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    let timeouts = recorder
        .seen()
        .iter()
        .filter(|(_, _, o)| *o == RequestOutcome::Timeout)
        .count();
    assert_eq!(timeouts, 2);

    sim.faults().clear();
    client
        .get_settings(&org(), &keys(&[COMPLEXITY]))
        .await
        .unwrap();
}

#[tokio::test]
async fn an_empty_key_list_reads_nothing_without_a_request() {
    let sim = start().await;
    let client = client(&sim, operator());
    let read = client.get_settings(&org(), &[]).await.unwrap();
    assert!(read.is_empty());
    assert_eq!(sim.counters().total(Endpoint::Setting), 0);
    assert_eq!(sim.counters().total(Endpoint::Token), 0);
}

#[tokio::test]
async fn a_token_lifetime_beyond_the_clock_is_clamped_not_a_panic() {
    // The simulator then sends `expires_in: u64::MAX`.
    let sim = Simulator::start(SimulatorConfig {
        token_lifetime: Duration::MAX,
        ..SimulatorConfig::default()
    })
    .await
    .unwrap();
    let client = client(&sim, operator());
    for _ in 0..3 {
        client
            .get_settings(&org(), &keys(&[COMPLEXITY]))
            .await
            .unwrap();
    }
    assert_eq!(client.token_requests(), 1);
    assert_eq!(sim.counters().count(Endpoint::Setting, "GET"), 3);
}

#[tokio::test]
async fn a_failed_proactive_refresh_keeps_using_the_valid_token() {
    let sim = Simulator::start(SimulatorConfig {
        token_lifetime: Duration::from_secs(2),
        ..SimulatorConfig::default()
    })
    .await
    .unwrap();
    let mut config = config(sim.base_url(), operator());
    config.retry = RetryPolicy::none();
    let client = IdentityClient::new(config).unwrap();
    client
        .get_settings(&org(), &keys(&[COMPLEXITY]))
        .await
        .unwrap();
    // Past the refresh time (half of 2 s), before the expiry; the token endpoint is down.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    sim.faults().fail_next_token(100, 503);
    client
        .get_settings(&org(), &keys(&[COMPLEXITY]))
        .await
        .unwrap();
    assert_eq!(sim.counters().count(Endpoint::Token, "POST"), 2);
    assert_eq!(sim.counters().count(Endpoint::Setting, "GET"), 2);
}

#[tokio::test]
async fn a_connect_that_hangs_times_out_at_the_connect_timeout() {
    // A listener that never accepts, its queue filled: further connection attempts get no answer.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut held = Vec::new();
    loop {
        match tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            Ok(Ok(stream)) => held.push(stream),
            Ok(Err(e)) => panic!("connect failed instead of hanging: {e}"),
            Err(_) => break,
        }
        assert!(held.len() < 64, "the listen queue never filled");
    }
    let recorder = Arc::new(Recorder::default());
    let mut config = config(
        format!("http://{addr}/identity_"),
        Credentials::BearerToken {
            token: "static-admin-token".into(),
        },
    );
    config.connect_timeout = Duration::from_millis(300);
    config.request_timeout = Duration::from_secs(10);
    config.retry = RetryPolicy::none();
    config.observer = Some(recorder.clone());
    let client = IdentityClient::new(config).unwrap();
    let start = Instant::now();
    let err = client
        .get_settings(&org(), &keys(&[COMPLEXITY]))
        .await
        .unwrap_err();
    let elapsed = start.elapsed();
    let text = assert_error(&err, ErrorClass::Transient);
    assert!(text.contains("timed out"), "{text}");
    assert!(elapsed >= Duration::from_millis(250), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert_eq!(
        recorder.seen().last().map(|(_, _, o)| *o),
        Some(RequestOutcome::Timeout)
    );
    drop(listener);
}

/// What a stand-in server answers: status, content type, body.
type Reply = (u16, &'static str, String);

/// A stand-in identity service on loopback for answers the simulator cannot give: `answer` gets
/// the method, the path and the request body. Returns the identity base URL.
async fn stand_in(answer: fn(&str, &str, &str) -> Reply) -> String {
    use axum::extract::Request;
    use axum::response::IntoResponse;
    let app = axum::Router::new().fallback(move |request: Request| async move {
        let method = request.method().as_str().to_owned();
        let path = request.uri().path().to_owned();
        let body = axum::body::to_bytes(request.into_body(), 1 << 20)
            .await
            .unwrap_or_default();
        let (status, content_type, body) = answer(&method, &path, &String::from_utf8_lossy(&body));
        (
            axum::http::StatusCode::from_u16(status).unwrap(),
            [("content-type", content_type)],
            body,
        )
            .into_response()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/identity_")
}

/// A token for everyone; Setting answers come from `setting`.
fn with_token(method: &str, path: &str, body: &str, setting: fn(&str, &str) -> Reply) -> Reply {
    if path.ends_with("/connect/token") {
        let token = r#"{"access_token":"stand-in-token","expires_in":3600,"token_type":"Bearer"}"#;
        return (200, "application/json", token.to_owned());
    }
    setting(method, body)
}

#[tokio::test]
async fn a_secret_with_whitespace_echoed_in_a_400_is_redacted() {
    let base = stand_in(|method, path, body| {
        with_token(method, path, body, |_, body| {
            // An ASP.NET-style message quoting the (decoded) value it refused.
            let sent: serde_json::Value = serde_json::from_str(body).unwrap();
            let value = sent["settings"][1]["value"].as_str().unwrap().to_owned();
            let detail = format!("The value '{value}' is not allowed for Email.Smtp.Password.");
            let problem = serde_json::json!({ "title": "Bad Request", "detail": detail });
            (400, "application/problem+json", problem.to_string())
        })
    })
    .await;
    let client = IdentityClient::new(config(base, operator())).unwrap();
    let secret = "smtp  hunter2\tlast\n x";
    let err = client
        .put_settings(
            &org(),
            &[
                setting("Email.Smtp.Port", "587"),
                setting("Email.Smtp.Password", secret),
            ],
        )
        .await
        .unwrap_err();
    let text = assert_error(&err, ErrorClass::InvalidRequest);
    assert!(
        text.contains("is not allowed for Email.Smtp.Password"),
        "{text}"
    );
    assert!(text.contains("<redacted>"), "{text}");
    for part in ["hunter2", "last"] {
        assert!(!text.contains(part), "{part} in {text}");
        assert!(!format!("{err:?}").contains(part), "{part} in {err:?}");
    }
}

#[tokio::test]
async fn a_secret_echoed_in_an_html_page_is_redacted_from_the_protocol_error() {
    let base = stand_in(|method, path, body| {
        with_token(method, path, body, |_, body| {
            // A web application firewall page echoing the blocked request.
            let page = format!("<html><body>Request blocked: {body}</body></html>");
            (200, "text/html; charset=utf-8", page)
        })
    })
    .await;
    let client = IdentityClient::new(config(base, operator())).unwrap();
    let err = client
        .put_settings(&org(), &[setting("Email.Smtp.Password", "smtp-hunter2")])
        .await
        .unwrap_err();
    let text = assert_error(&err, ErrorClass::Protocol);
    assert!(text.contains("Request blocked"), "{text}");
    assert!(text.contains("<redacted>"), "{text}");
}

/// A gateway page echoing the token request's form, client secret included.
fn echo_page(body: &str) -> String {
    format!("<html><body>Bad gateway for {body}</body></html>")
}

/// Checks that a token-endpoint error quotes nothing of [`echo_page`].
fn assert_page_not_quoted(err: &IdentityError, class: ErrorClass) -> String {
    let text = assert_error(err, class);
    for quoted in ["<html", "Bad gateway", "client_secret", "grant_type"] {
        assert!(!text.contains(quoted), "{quoted} in {text}");
    }
    text
}

#[tokio::test]
async fn token_endpoint_error_pages_are_never_quoted() {
    let base = stand_in(|_, _, body| (400, "text/html", echo_page(body))).await;
    let client = IdentityClient::new(config(base, operator())).unwrap();
    let err = client
        .get_settings(&org(), &keys(&[COMPLEXITY]))
        .await
        .unwrap_err();
    let text = assert_page_not_quoted(&err, ErrorClass::InvalidRequest);
    assert!(text.contains("bytes of text/html, not quoted"), "{text}");

    let base = stand_in(|_, _, body| (502, "text/html", echo_page(body))).await;
    let client = IdentityClient::new(config(base, operator())).unwrap();
    let err = client
        .get_settings(&org(), &keys(&[COMPLEXITY]))
        .await
        .unwrap_err();
    assert_page_not_quoted(&err, ErrorClass::Transient);

    // A 200 that is not JSON: described, not quoted.
    let base = stand_in(|_, _, body| (200, "text/html", echo_page(body))).await;
    let client = IdentityClient::new(config(base, operator())).unwrap();
    let err = client
        .get_settings(&org(), &keys(&[COMPLEXITY]))
        .await
        .unwrap_err();
    assert_page_not_quoted(&err, ErrorClass::Protocol);
}

#[tokio::test]
async fn a_setting_answer_of_the_wrong_json_shape_is_a_protocol_error() {
    let base = stand_in(|method, path, body| {
        with_token(method, path, body, |_, _| {
            let wrong = r#"{"items":[{"key":"Email.Smtp.Password","value":"smtp-hunter2"}]}"#;
            (200, "application/json", wrong.to_owned())
        })
    })
    .await;
    let client = IdentityClient::new(config(base, operator())).unwrap();
    let err = client
        .get_settings(&org(), &keys(&["Email.Smtp.Password"]))
        .await
        .unwrap_err();
    let text = assert_error(&err, ErrorClass::Protocol);
    assert!(text.contains("a JSON array of settings"), "{text}");
    assert!(text.contains("an object"), "{text}");
    assert!(!text.contains("items"), "{text}");
}

/// A secret-valued setting under a key the client cannot know is secret (no `.Password`).
const API_KEY: &str = "Custom.Integration.ApiKey";
const API_KEY_VALUE: &str = r#"k3y-"quoted"&<tagged>-tail-of-the-secret"#;

/// A client told the policy's secret values, as the operator tells it.
fn redacting_client(base: String) -> IdentityClient {
    IdentityClient::new(config(base, operator()))
        .unwrap()
        .redacting(Redactor::new([API_KEY_VALUE]))
}

#[tokio::test]
async fn a_secret_value_cut_in_half_by_the_message_limit_is_still_redacted() {
    let base = stand_in(|method, path, body| {
        with_token(method, path, body, |_, body| {
            // A long message that quotes the value right where the client cuts messages.
            let sent: serde_json::Value = serde_json::from_str(body).unwrap();
            let value = sent["settings"][0]["value"].as_str().unwrap().to_owned();
            let detail = format!("{} refused: {value}", "x".repeat(380));
            let problem = serde_json::json!({ "title": "Bad Request", "detail": detail });
            (400, "application/problem+json", problem.to_string())
        })
    })
    .await;
    let err = redacting_client(base)
        .put_settings(&org(), &[setting(API_KEY, API_KEY_VALUE)])
        .await
        .unwrap_err();
    let text = format!("{err} {err:?}");
    for part in ["k3y", "quoted", "tagged"] {
        assert!(!text.contains(part), "{part} in {text}");
    }
}

#[tokio::test]
async fn a_secret_value_echoed_json_or_html_escaped_in_a_2_kb_page_is_redacted() {
    let base = stand_in(|method, path, body| {
        with_token(method, path, body, |_, body| {
            // A proxy page echoing the request twice: as JSON, then HTML-escaped.
            let html = body
                .replace('&', "&amp;")
                .replace('"', "&quot;")
                .replace('<', "&lt;")
                .replace('>', "&gt;");
            let page = format!(
                "<html><body>blocked {body} / {html} {}</body></html>",
                " ".repeat(2048)
            );
            (502, "text/html", page)
        })
    })
    .await;
    let err = redacting_client(base)
        .put_settings(&org(), &[setting(API_KEY, API_KEY_VALUE)])
        .await
        .unwrap_err();
    let text = format!("{err} {err:?}");
    for part in ["k3y", "quoted", "tagged", "tail-of-the-secret"] {
        assert!(!text.contains(part), "{part} in {text}");
    }
}
