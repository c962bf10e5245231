//! The identity simulator over real HTTP, checked against the contract
//! (`docs/identity-api.md`) with a plain reqwest client.

use std::time::{Duration, Instant};

use identity_settings_operator::identity::types::SettingScope;
use identity_simulator::{ClientApp, Endpoint, Simulator, SimulatorConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};

const EXAMPLE_REQUEST: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/identity-api/put-setting-request.json"
));
const EXAMPLE_RESPONSE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/identity-api/put-setting-response.json"
));

/// A form body as name/value pairs.
type Form = [(&'static str, &'static str)];

const ADMIN: &str = "static-admin-token";
const COMPLEXITY: &str = "Auth.Password.PasswordComplexity";

async fn start() -> Simulator {
    Simulator::start(SimulatorConfig::default()).await.unwrap()
}

async fn start_with(f: impl FnOnce(&mut SimulatorConfig)) -> Simulator {
    let mut config = SimulatorConfig::default();
    f(&mut config);
    Simulator::start(config).await.unwrap()
}

fn http() -> reqwest::Client {
    identity_client::http_client_builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn setting_url(sim: &Simulator) -> String {
    format!("{}/api/Setting", sim.base_url())
}

async fn put(sim: &Simulator, token: &str, body: &Value) -> reqwest::Response {
    http()
        .put(setting_url(sim))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn put_ok(sim: &Simulator, body: &Value) -> Value {
    let response = put(sim, ADMIN, body).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn get(sim: &Simulator, token: &str, query: &str) -> reqwest::Response {
    let url = format!("{}?{query}", setting_url(sim));
    http().get(url).bearer_auth(token).send().await.unwrap()
}

async fn get_ok(sim: &Simulator, query: &str) -> Value {
    let response = get(sim, ADMIN, query).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn token_request(sim: &Simulator, form: &[(&str, &str)]) -> reqwest::Response {
    let url = format!("{}/connect/token", sim.base_url());
    http().post(url).form(form).send().await.unwrap()
}

async fn client_token(sim: &Simulator, id: &str, secret: &str) -> String {
    let response = token_request(
        sim,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

async fn ropc(sim: &Simulator, tenancy: &str, user: &str, password: &str) -> reqwest::Response {
    let body =
        json!({"TenancyName": tenancy, "UsernameOrEmailAddress": user, "Password": password});
    http()
        .post(sim.authenticate_url())
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn settings_body(partition: &str, pairs: &[(&str, &str)]) -> Value {
    let settings: Vec<Value> = pairs
        .iter()
        .map(|(k, v)| json!({"key": k, "value": v}))
        .collect();
    json!({"settings": settings, "partitionGlobalId": partition})
}

fn ids_and_keys(rows: &Value) -> Vec<(i64, String)> {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_i64().unwrap(),
                r["key"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn assert_problem(response: reqwest::Response, status: StatusCode, detail_part: &str) {
    assert_eq!(response.status(), status);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/problem+json"),
        "{content_type}"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], status.as_u16());
    assert!(
        body["type"].is_string() && body["title"].is_string(),
        "{body}"
    );
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains(detail_part),
        "detail {detail:?} lacks {detail_part:?}"
    );
}

// ---- the contract's example ------------------------------------------------------------------

#[tokio::test]
async fn replaying_the_example_request_returns_the_example_response() {
    let sim = start().await;
    let request: Value = serde_json::from_str(EXAMPLE_REQUEST).unwrap();
    let expected: Value = serde_json::from_str(EXAMPLE_RESPONSE).unwrap();
    assert_eq!(put_ok(&sim, &request).await, expected);
    // Replaying again changes nothing: same ids, same stored values.
    assert_eq!(put_ok(&sim, &request).await, expected);
    // The normalised complexity is byte-equal to the example's.
    let rows = sim.stored(&SettingScope::organization("magic-7"));
    let complexity = rows.iter().find(|r| r.key == COMPLEXITY).unwrap();
    assert_eq!(
        Value::String(complexity.value.clone()),
        expected[1]["value"]
    );
    // A new key continues at 29.
    let created = put_ok(
        &sim,
        &settings_body("magic-7", &[("Email.Smtp.Host", "smtp.example.com")]),
    )
    .await;
    assert_eq!(created[0]["id"], 29);
}

#[tokio::test]
async fn without_seeding_the_first_row_gets_id_1() {
    let sim = start_with(|c| c.seed_example = false).await;
    assert_eq!(get_ok(&sim, "partitionGlobalId=magic-7").await, json!([]));
    let rows = put_ok(
        &sim,
        &settings_body("magic-7", &[("Auth.Password.PreviousUseLimit", "1")]),
    )
    .await;
    assert_eq!(rows[0]["id"], 1);
}

// ---- ids and order -----------------------------------------------------------------------------

#[tokio::test]
async fn ids_are_stable_per_row_and_responses_follow_request_order() {
    let sim = start().await;
    let first = put_ok(&sim, &settings_body("org-a", &[("b", "1"), ("a", "1")])).await;
    assert_eq!(ids_and_keys(&first), [(29, "b".into()), (30, "a".into())]);
    let other = put_ok(&sim, &settings_body("org-b", &[("a", "x")])).await;
    assert_eq!(other[0]["id"], 31, "one counter across partitions");
    let second = put_ok(
        &sim,
        &settings_body("org-a", &[("c", "2"), ("a", "2"), ("b", "2")]),
    )
    .await;
    assert_eq!(
        ids_and_keys(&second),
        [(32, "c".into()), (30, "a".into()), (29, "b".into())]
    );
    for row in second.as_array().unwrap() {
        assert_eq!(row["value"], "2");
        assert_eq!(row["partitionGlobalId"], "org-a");
        assert!(row.as_object().unwrap().contains_key("userId"));
        assert_eq!(row["userId"], Value::Null);
    }
    let empty = put_ok(&sim, &settings_body("org-a", &[])).await;
    assert_eq!(empty, json!([]));
}

#[tokio::test]
async fn user_level_rows_are_apart_from_organisation_rows() {
    let sim = start().await;
    let mut body = settings_body("org", &[("k", "user-value")]);
    body["userId"] = json!("user-1");
    let user_rows = put_ok(&sim, &body).await;
    assert_eq!(user_rows[0]["userId"], "user-1");
    let org_rows = put_ok(&sim, &settings_body("org", &[("k", "org-value")])).await;
    assert_ne!(org_rows[0]["id"], user_rows[0]["id"]);
    assert_eq!(
        get_ok(&sim, "partitionGlobalId=org&userId=user-1&key=k").await[0]["value"],
        "user-value"
    );
    assert_eq!(
        get_ok(&sim, "partitionGlobalId=org&key=k").await[0]["value"],
        "org-value"
    );
    assert_eq!(
        get_ok(&sim, "partitionGlobalId=org&userId=&key=k").await[0]["userId"],
        Value::Null
    );
    assert_eq!(sim.stored(&SettingScope::user("org", "user-1")).len(), 1);
}

#[tokio::test]
async fn get_follows_key_order_and_omits_absent_keys() {
    let sim = start().await;
    let q = "partitionGlobalId=magic-7&key=Auth.UserLockOut.IsEnabled&key=No.Such.Key&key=Auth.Password.DefaultExpirationDays";
    let rows = get_ok(&sim, q).await;
    assert_eq!(
        ids_and_keys(&rows),
        [
            (27, "Auth.UserLockOut.IsEnabled".into()),
            (4, "Auth.Password.DefaultExpirationDays".into())
        ]
    );
    assert_eq!(rows[0]["userId"], Value::Null);
    // Without keys: every row of the scope, ordered by id.
    let all = get_ok(&sim, "partitionGlobalId=magic-7").await;
    let ids: Vec<i64> = ids_and_keys(&all).into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, [1, 2, 3, 4, 26, 27, 28]);
    // Unknown partition: empty.
    assert_eq!(
        get_ok(&sim, "partitionGlobalId=nobody&key=a").await,
        json!([])
    );
    // Keys with URL-encoded characters.
    put_ok(&sim, &settings_body("p", &[("A b&c", "v")])).await;
    assert_eq!(
        get_ok(&sim, "partitionGlobalId=p&key=A%20b%26c").await[0]["value"],
        "v"
    );
}

#[tokio::test]
async fn get_without_partition_is_a_400() {
    let sim = start().await;
    assert_problem(
        get(&sim, ADMIN, "key=a").await,
        StatusCode::BAD_REQUEST,
        "partitionGlobalId",
    )
    .await;
    assert_problem(
        get(&sim, ADMIN, "partitionGlobalId=").await,
        StatusCode::BAD_REQUEST,
        "partitionGlobalId",
    )
    .await;
}

// ---- normalisation -----------------------------------------------------------------------------

#[tokio::test]
async fn password_complexity_is_normalised_and_other_values_are_not() {
    let sim = start().await;
    let sent = r#"{"hasUppercase":true,"hasSpecialCharacter":true,"hasDigit":false,"haslowercase":false,"length":12}"#;
    let rows = put_ok(
        &sim,
        &settings_body(
            "p",
            &[
                (COMPLEXITY, sent),
                ("Email.Smtp.Port", "0587"),
                ("Some.Flag", "True"),
            ],
        ),
    )
    .await;
    let stored: Value = serde_json::from_str(rows[0]["value"].as_str().unwrap()).unwrap();
    assert_eq!(
        stored,
        json!({
            "HasDigit": false, "HasLowercase": false, "HasSpecialCharacter": true, "HasUppercase": true,
            "Length": 12,
            "RegexComplexity": {
                "HasDigitRegex": "(?=.*\\d)", "HasLowercaseRegex": "(?=.*[a-z])",
                "HasSpecialCharacterRegex": "(?=.*[^a-zA-Z\\d])", "HasUppercaseRegex": "(?=.*[A-Z])",
                "LengthRegex": "{12,}", "Regex": "(?=.*[^a-zA-Z\\d])(?=.*[A-Z]).{12,}"
            }
        })
    );
    assert_eq!(rows[1]["value"], "0587");
    assert_eq!(rows[2]["value"], "True");
    // GET returns the stored (normalised) value, too.
    let got = get_ok(
        &sim,
        "partitionGlobalId=p&key=Auth.Password.PasswordComplexity",
    )
    .await;
    assert_eq!(got[0]["value"], rows[0]["value"]);
}

#[tokio::test]
async fn set_directly_is_normalised_and_visible_to_get() {
    let sim = start().await;
    let scope = SettingScope::organization("magic-7");
    let row = sim.set_directly(&scope, "Auth.Password.PreviousUseLimit", "7");
    assert_eq!(row.id, 3);
    let row = sim.set_directly(&scope, "Brand.New", "x");
    assert_eq!(row.id, 29);
    let complexity = r#"{"hasDigit":true,"hasLowercase":true,"hasSpecialCharacter":true,"hasUppercase":true,"Length":"9"}"#;
    let row = sim.set_directly(&scope, COMPLEXITY, complexity);
    assert!(row.value.contains(r#""Length":9"#), "{}", row.value);
    let got = get_ok(
        &sim,
        "partitionGlobalId=magic-7&key=Auth.Password.PreviousUseLimit",
    )
    .await;
    assert_eq!(got[0]["value"], "7");
}

// ---- validation ----------------------------------------------------------------------------------

#[tokio::test]
async fn invalid_put_bodies_are_400_problems_saying_what_is_wrong() {
    let sim = start().await;
    let raw = |body: &'static str| {
        http()
            .put(setting_url(&sim))
            .bearer_auth(ADMIN)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    assert_problem(
        raw("{not json").await.unwrap(),
        StatusCode::BAD_REQUEST,
        "not valid JSON",
    )
    .await;
    assert_problem(raw("").await.unwrap(), StatusCode::BAD_REQUEST, "non-empty").await;
    let cases: [(Value, &str); 8] = [
        (json!({"settings": []}), "partitionGlobalId is required"),
        (
            json!({"settings": [], "partitionGlobalId": ""}),
            "partitionGlobalId is required",
        ),
        (json!({"partitionGlobalId": "p"}), "settings is required"),
        (
            json!({"partitionGlobalId": "p", "settings": [{"key": "", "value": "1"}]}),
            "settings[0].key",
        ),
        (
            json!({"partitionGlobalId": "p", "settings": [{"key": "a", "value": 1}]}),
            "must be a string",
        ),
        (
            json!({"partitionGlobalId": "p", "settings": [{"key": "a", "value": true}]}),
            "must be a string",
        ),
        (
            json!({"partitionGlobalId": "p", "settings": [{"key": COMPLEXITY, "value": "{\"hasDigit\":true}"}]}),
            COMPLEXITY,
        ),
        (
            json!({"partitionGlobalId": "p", "settings": [{"key": COMPLEXITY, "value": "nope"}]}),
            "not valid JSON",
        ),
    ];
    for (body, detail) in cases {
        assert_problem(
            put(&sim, ADMIN, &body).await,
            StatusCode::BAD_REQUEST,
            detail,
        )
        .await;
    }
    // Nothing was stored by the failed requests, not even the valid elements of a rejected body.
    let mixed = json!({"partitionGlobalId": "p", "settings": [{"key": "ok", "value": "1"}, {"key": "bad", "value": 2}]});
    assert_eq!(
        put(&sim, ADMIN, &mixed).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert!(sim.stored(&SettingScope::organization("p")).is_empty());
    // Not JSON at all.
    let text = http()
        .put(setting_url(&sim))
        .bearer_auth(ADMIN)
        .body("key=value")
        .send()
        .await
        .unwrap();
    assert_problem(text, StatusCode::UNSUPPORTED_MEDIA_TYPE, "application/json").await;
}

#[tokio::test]
async fn unknown_paths_and_wrong_prefixes_are_404() {
    let sim = start().await;
    let root = format!("http://{}", sim.addr());
    for path in [
        "/api/Setting",
        "/identity/api/Setting",
        "/identity_/api/Settings",
        "/identity_/api/Setting/",
        "/nothing",
    ] {
        let response = http()
            .get(format!("{root}{path}?partitionGlobalId=magic-7"))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
    assert_eq!(sim.counters().total(Endpoint::Setting), 0);
    let nested = start_with(|c| c.prefix = "/org/tenant/identity_/".into()).await;
    assert!(
        nested.base_url().ends_with("/org/tenant/identity_"),
        "{}",
        nested.base_url()
    );
    assert_eq!(
        get(&nested, ADMIN, "partitionGlobalId=magic-7")
            .await
            .status(),
        StatusCode::OK
    );
    let bad = Simulator::start(SimulatorConfig {
        prefix: "no-slash".into(),
        ..SimulatorConfig::default()
    })
    .await;
    assert_eq!(bad.unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
}

#[tokio::test]
async fn other_methods_are_405_and_counted() {
    let sim = start().await;
    let response = http()
        .delete(setting_url(&sim))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let response = http()
        .get(format!("{}/connect/token", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(sim.counters().count(Endpoint::Setting, "DELETE"), 1);
    assert_eq!(sim.counters().count(Endpoint::Token, "GET"), 1);
}

// ---- authentication ------------------------------------------------------------------------------

#[tokio::test]
async fn client_credentials_token_has_the_contract_shape_and_works() {
    let sim = start().await;
    let response = token_request(
        &sim,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "operator"),
            ("client_secret", "operator-secret"),
            ("scope", "PM.Setting"),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "PM.Setting");
    let token = body["access_token"].as_str().unwrap();
    assert!(token.len() >= 32);
    assert_eq!(
        put(&sim, token, &settings_body("p", &[("a", "1")]))
            .await
            .status(),
        StatusCode::OK
    );
    // Tokens are random: a second one differs.
    assert_ne!(
        client_token(&sim, "operator", "operator-secret").await,
        token
    );
}

#[tokio::test]
async fn default_scope_is_every_allowed_scope_and_lifetime_follows_config() {
    let sim = start_with(|c| c.token_lifetime = Duration::from_secs(120)).await;
    let response = token_request(
        &sim,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "operator"),
            ("client_secret", "operator-secret"),
        ],
    )
    .await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["scope"], "PM.Setting PM.Setting.Read");
    assert_eq!(body["expires_in"], 120);
}

#[tokio::test]
async fn client_credentials_basic_auth_is_accepted_and_a_refused_one_gets_401() {
    let sim = start().await;
    let url = format!("{}/connect/token", sim.base_url());
    let response = http()
        .post(url)
        .basic_auth("operator", Some("operator-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // A client refused after Basic authentication gets 401 with a challenge (RFC 6749 §5.2);
    // refused form credentials get 400 (see token_endpoint_errors_follow_oauth).
    let response = http()
        .post(format!("{}/connect/token", sim.base_url()))
        .basic_auth("operator", Some("wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Basic")
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
}

#[tokio::test]
async fn token_endpoint_errors_follow_oauth() {
    let sim = start().await;
    let cases: [(&Form, StatusCode, &str); 6] = [
        (
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "operator"),
                ("client_secret", "wrong"),
            ],
            StatusCode::BAD_REQUEST,
            "invalid_client",
        ),
        (
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "nobody"),
                ("client_secret", "operator-secret"),
            ],
            StatusCode::BAD_REQUEST,
            "invalid_client",
        ),
        (
            &[("grant_type", "client_credentials")],
            StatusCode::BAD_REQUEST,
            "invalid_client",
        ),
        (
            &[
                ("grant_type", "password"),
                ("client_id", "operator"),
                ("client_secret", "operator-secret"),
            ],
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        ),
        (
            &[
                ("client_id", "operator"),
                ("client_secret", "operator-secret"),
            ],
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        ),
        (
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "reader"),
                ("client_secret", "reader-secret"),
                ("scope", "PM.Setting"),
            ],
            StatusCode::BAD_REQUEST,
            "invalid_scope",
        ),
    ];
    for (form, status, error) in cases {
        let response = token_request(&sim, form).await;
        assert_eq!(response.status(), status, "{form:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], error, "{form:?}");
    }
    assert_eq!(sim.counters().count(Endpoint::Token, "POST"), 6);
}

#[tokio::test]
async fn setting_api_needs_a_valid_token_with_the_right_scope() {
    let sim = start().await;
    let body = settings_body("p", &[("a", "1")]);
    // No token.
    let response = http()
        .put(setting_url(&sim))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let response = http()
        .get(format!("{}?partitionGlobalId=p", setting_url(&sim)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // Unknown token.
    assert_eq!(
        put(&sim, "made-up", &body).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get(&sim, "made-up", "partitionGlobalId=p").await.status(),
        StatusCode::UNAUTHORIZED
    );
    // Read-only token: GET yes, PUT no.
    let reader = client_token(&sim, "reader", "reader-secret").await;
    assert_eq!(
        get(&sim, &reader, "partitionGlobalId=p").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        put(&sim, &reader, &body).await.status(),
        StatusCode::FORBIDDEN
    );
    // A PM.Setting-only token may GET too.
    assert_eq!(
        get(&sim, ADMIN, "partitionGlobalId=p").await.status(),
        StatusCode::OK
    );
    // A client-credentials token without any settings scope: 403 on both.
    let other = start_with(|c| {
        c.clients.push(ClientApp {
            client_id: "x".into(),
            client_secret: "y".into(),
            allowed_scopes: vec!["OR.Folders".into()],
        })
    })
    .await;
    let none = client_token(&other, "x", "y").await;
    assert_eq!(
        get(&other, &none, "partitionGlobalId=p").await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        put(&other, &none, &body).await.status(),
        StatusCode::FORBIDDEN
    );
    // Auth comes before validation: an invalid body without a token is 401, not 400.
    let response = http()
        .put(setting_url(&sim))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(sim.stored(&SettingScope::organization("p")).is_empty());
}

#[tokio::test]
async fn tokens_expire_by_lifetime() {
    let sim = start_with(|c| c.token_lifetime = Duration::from_secs(1)).await;
    let token = client_token(&sim, "operator", "operator-secret").await;
    assert_eq!(
        get(&sim, &token, "partitionGlobalId=p").await.status(),
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let response = get(&sim, &token, "partitionGlobalId=p").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
}

#[tokio::test]
async fn expire_all_tokens_invalidates_issued_tokens_but_not_fixed_ones() {
    let sim = start().await;
    let cc = client_token(&sim, "operator", "operator-secret").await;
    let response = ropc(&sim, "Default", "admin", "admin-password").await;
    let ropc_token = response.json::<Value>().await.unwrap()["result"]
        .as_str()
        .unwrap()
        .to_owned();
    sim.faults().expire_all_tokens();
    assert_eq!(
        get(&sim, &cc, "partitionGlobalId=p").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get(&sim, &ropc_token, "partitionGlobalId=p").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get(&sim, ADMIN, "partitionGlobalId=p").await.status(),
        StatusCode::OK
    );
    // A fresh token works again.
    let fresh = client_token(&sim, "operator", "operator-secret").await;
    assert_eq!(
        get(&sim, &fresh, "partitionGlobalId=p").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn ropc_returns_the_abp_envelope_with_a_setting_token() {
    let sim = start().await;
    assert!(
        sim.authenticate_url()
            .ends_with("/api/account/authenticate")
    );
    assert!(!sim.authenticate_url().contains("identity_"));
    let response = ropc(&sim, "default", "ADMIN", "admin-password").await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["success"], true);
    assert_eq!(body["targetUrl"], Value::Null);
    assert_eq!(body["error"], Value::Null);
    assert_eq!(body["unAuthorizedRequest"], false);
    assert_eq!(body["__abp"], true);
    let token = body["result"].as_str().unwrap();
    assert_eq!(
        put(&sim, token, &settings_body("p", &[("a", "1")]))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(sim.counters().count(Endpoint::Authenticate, "POST"), 1);
}

#[tokio::test]
async fn ropc_refuses_wrong_credentials_and_malformed_bodies() {
    let sim = start().await;
    for (tenancy, user, password) in [
        ("Default", "admin", "wrong"),
        ("Other", "admin", "admin-password"),
        ("Default", "root", "admin-password"),
    ] {
        let response = ropc(&sim, tenancy, user, password).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["success"], false);
        assert_eq!(body["result"], Value::Null);
        assert_eq!(body["__abp"], true);
        assert!(body["error"]["message"].is_string(), "{body}");
    }
    let response = http()
        .post(sim.authenticate_url())
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(response.json::<Value>().await.unwrap()["success"], false);
    // ROPC does not exist under the prefix.
    let inside = format!("{}/api/account/authenticate", sim.base_url());
    assert_eq!(
        http().post(inside).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
}

// ---- faults --------------------------------------------------------------------------------------

#[tokio::test]
async fn fail_next_answers_the_status_with_retry_after_then_recovers() {
    let sim = start().await;
    sim.faults().fail_next(2, 503, Some(Duration::from_secs(2)));
    for _ in 0..2 {
        let response = get(&sim, ADMIN, "partitionGlobalId=magic-7").await;
        assert_eq!(response.headers()["retry-after"], "2");
        assert_problem(response, StatusCode::SERVICE_UNAVAILABLE, "simulated").await;
    }
    assert_eq!(
        get(&sim, ADMIN, "partitionGlobalId=magic-7").await.status(),
        StatusCode::OK
    );
    // Faulted PUTs do not write; no Retry-After when none was given.
    sim.faults().fail_next(1, 429, None);
    let response = put(&sim, ADMIN, &settings_body("p", &[("a", "1")])).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().get("retry-after").is_none());
    assert!(sim.stored(&SettingScope::organization("p")).is_empty());
    // Faults come before authentication, as a gateway's would.
    sim.faults().fail_next(1, 502, None);
    assert_eq!(
        get(&sim, "bogus", "partitionGlobalId=p").await.status(),
        StatusCode::BAD_GATEWAY
    );
    assert_eq!(sim.counters().count(Endpoint::Setting, "GET"), 4);
    assert_eq!(sim.counters().count(Endpoint::Setting, "PUT"), 1);
}

#[tokio::test]
async fn fail_next_token_hits_both_token_endpoints() {
    let sim = start().await;
    sim.faults().fail_next_token(2, 500);
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "operator"),
        ("client_secret", "operator-secret"),
    ];
    assert_problem(
        token_request(&sim, &form).await,
        StatusCode::INTERNAL_SERVER_ERROR,
        "simulated",
    )
    .await;
    assert_eq!(
        ropc(&sim, "Default", "admin", "admin-password")
            .await
            .status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(token_request(&sim, &form).await.status(), StatusCode::OK);
    // Setting requests are not affected by token faults.
    sim.faults().fail_next_token(1, 500);
    assert_eq!(
        get(&sim, ADMIN, "partitionGlobalId=p").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn latency_delays_every_setting_request() {
    let sim = start().await;
    sim.faults().set_latency(Duration::from_millis(300));
    let started = Instant::now();
    assert_eq!(
        get(&sim, ADMIN, "partitionGlobalId=p").await.status(),
        StatusCode::OK
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
    // A client timeout shorter than the latency fails.
    let short = identity_client::http_client_builder()
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let err = short
        .get(format!("{}?partitionGlobalId=p", setting_url(&sim)))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout());
    sim.faults().clear();
    let started = Instant::now();
    get(&sim, ADMIN, "partitionGlobalId=p").await;
    assert!(started.elapsed() < Duration::from_millis(300));
}

#[tokio::test]
async fn html_next_answers_a_login_page() {
    let sim = start().await;
    sim.faults().html_next(1);
    let response = get(&sim, ADMIN, "partitionGlobalId=magic-7").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let text = response.text().await.unwrap();
    assert!(text.starts_with("<!DOCTYPE html>"));
    assert!(serde_json::from_str::<Value>(&text).is_err());
    assert_eq!(
        get(&sim, ADMIN, "partitionGlobalId=magic-7").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn drop_next_closes_the_connection_without_a_response() {
    let sim = start().await;
    sim.faults().drop_next(2);
    let client = http();
    let url = format!("{}?partitionGlobalId=magic-7", setting_url(&sim));
    for _ in 0..2 {
        let err = client
            .get(&url)
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap_err();
        // Sent, then cut off: not a connect error, not a timeout (hyper: IncompleteMessage).
        assert!(
            err.is_request() && !err.is_connect() && !err.is_timeout(),
            "{err:?}"
        );
    }
    // A dropped PUT stores nothing.
    sim.faults().drop_next(1);
    assert!(
        client
            .put(setting_url(&sim))
            .bearer_auth(ADMIN)
            .json(&settings_body("p", &[("a", "1")]))
            .send()
            .await
            .is_err()
    );
    assert!(sim.stored(&SettingScope::organization("p")).is_empty());
    let response = client.get(&url).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(sim.counters().total(Endpoint::Setting), 4);
}

#[tokio::test]
async fn clear_removes_pending_faults() {
    let sim = start().await;
    let faults = sim.faults();
    faults.fail_next(5, 500, None);
    faults.html_next(5);
    faults.drop_next(5);
    faults.fail_next_token(5, 500);
    faults.clear();
    assert_eq!(
        get(&sim, ADMIN, "partitionGlobalId=p").await.status(),
        StatusCode::OK
    );
    client_token(&sim, "operator", "operator-secret").await;
}

// ---- counters ------------------------------------------------------------------------------------

#[tokio::test]
async fn counters_count_every_request_per_endpoint_and_method() {
    let sim = start().await;
    let counters = sim.counters();
    get(&sim, ADMIN, "partitionGlobalId=p").await;
    get(&sim, "bad", "partitionGlobalId=p").await;
    put(&sim, ADMIN, &json!({})).await;
    client_token(&sim, "operator", "operator-secret").await;
    ropc(&sim, "Default", "admin", "nope").await;
    assert_eq!(counters.count(Endpoint::Setting, "GET"), 2);
    assert_eq!(counters.count(Endpoint::Setting, "PUT"), 1);
    assert_eq!(counters.total(Endpoint::Setting), 3);
    assert_eq!(counters.count(Endpoint::Token, "POST"), 1);
    assert_eq!(counters.total(Endpoint::Authenticate), 1);
    counters.reset();
    assert_eq!(sim.counters().total(Endpoint::Setting), 0);
}

// ---- admin API -----------------------------------------------------------------------------------

#[tokio::test]
async fn admin_api_controls_faults_counters_and_data() {
    let sim = start().await;
    let admin = format!("http://{}/_simulator", sim.addr());
    let post_faults = |body: Value| http().post(format!("{admin}/faults")).json(&body).send();
    let response =
        post_faults(json!({"failNext": {"count": 1, "status": 503, "retryAfterSeconds": 1}}))
            .await
            .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let response = get(&sim, ADMIN, "partitionGlobalId=p").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "1");

    post_faults(json!({"htmlNext": 1, "latencyMs": 10}))
        .await
        .unwrap();
    assert!(
        get(&sim, ADMIN, "partitionGlobalId=p").await.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    post_faults(json!({"dropNext": 1})).await.unwrap();
    assert!(
        http()
            .get(format!("{}?partitionGlobalId=p", setting_url(&sim)))
            .bearer_auth(ADMIN)
            .send()
            .await
            .is_err()
    );
    post_faults(json!({"failNextToken": {"count": 1, "status": 500}}))
        .await
        .unwrap();
    assert_eq!(
        ropc(&sim, "Default", "admin", "admin-password")
            .await
            .status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    let token = client_token(&sim, "operator", "operator-secret").await;
    post_faults(json!({"expireTokens": true})).await.unwrap();
    assert_eq!(
        get(&sim, &token, "partitionGlobalId=p").await.status(),
        StatusCode::UNAUTHORIZED
    );
    post_faults(json!({"failNext": {"count": 3, "status": 500}}))
        .await
        .unwrap();
    post_faults(json!({"clear": true})).await.unwrap();
    assert_eq!(
        get(&sim, ADMIN, "partitionGlobalId=p").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        post_faults(json!({"bogus": 1})).await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        post_faults(json!({"failNext": {"count": 1, "status": 1}}))
            .await
            .unwrap()
            .status(),
        StatusCode::BAD_REQUEST
    );

    let counters: Value = http()
        .get(format!("{admin}/counters"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        counters["setting"]["byMethod"]["GET"],
        sim.counters().count(Endpoint::Setting, "GET")
    );
    assert_eq!(counters["authenticate"]["total"], 1);
    let reset = http()
        .delete(format!("{admin}/counters"))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    assert_eq!(sim.counters().total(Endpoint::Setting), 0);

    let changed = http()
        .post(format!("{admin}/settings"))
        .json(&json!({"partitionGlobalId": "magic-7", "key": "Auth.UserLockOut.IsEnabled", "value": "true"}))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.json::<Value>().await.unwrap()["id"], 27);
    let rows: Value = http()
        .get(format!("{admin}/settings?partitionGlobalId=magic-7"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 7);
    assert_eq!(rows[5]["value"], "true");
    // The admin API is not counted as Setting traffic.
    assert_eq!(sim.counters().total(Endpoint::Setting), 0);
}

#[tokio::test]
async fn shutdown_stops_listening() {
    let sim = start().await;
    let url = format!("{}?partitionGlobalId=p", setting_url(&sim));
    assert!(sim.base_url().starts_with("http://127.0.0.1:"));
    assert!(!sim.base_url().ends_with('/'));
    sim.shutdown().await;
    assert!(http().get(url).bearer_auth(ADMIN).send().await.is_err());
}
