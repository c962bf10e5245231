//! Issue 19, item 1: every parser of what an identity service sends — `Retry-After`, token
//! answers, Setting rows, error bodies — takes any input without panicking and with bounded
//! output. Property tests (a fixed number of cases, so `cargo test` and CI run them for a
//! bounded time) plus a corpus of hostile answers in `tests/fixtures/server-answers/`.

use std::time::Duration;

use identity_settings_operator::identity::body::{
    describe_json_mismatch, oauth_error_code, server_message, token_error_message,
};
use identity_settings_operator::identity::retry::{MAX_SERVER_DELAY, parse_retry_after};
use identity_settings_operator::identity::types::{StoredSetting, TokenResponse};
use proptest::prelude::*;

/// The most any message taken from a server body may hold.
const MAX_MESSAGE: usize = 4096;

/// Runs every body parser on `body`; fails on a panic (the test) or an unbounded message.
fn parse_everything(body: &[u8]) {
    for message in [
        server_message(body),
        token_error_message(body),
        oauth_error_code(body),
    ]
    .into_iter()
    .flatten()
    {
        assert!(
            message.len() <= MAX_MESSAGE,
            "a {}-byte message",
            message.len()
        );
    }
    if let Err(e) = serde_json::from_slice::<Vec<StoredSetting>>(body) {
        let described = describe_json_mismatch(body, &e);
        assert!(
            described.len() <= MAX_MESSAGE,
            "a {}-byte description",
            described.len()
        );
    }
    if let Ok(token) = serde_json::from_slice::<TokenResponse>(body) {
        // What the cache does with a lifetime: clamped, whatever the number.
        let _ = identity_settings_operator::identity::auth::refresh_delay(
            Duration::from_secs(token.expires_in)
                .min(identity_settings_operator::identity::auth::MAX_TOKEN_LIFETIME),
        );
    }
    if let Ok(text) = std::str::from_utf8(body)
        && let Some(delay) = parse_retry_after(text)
    {
        assert!(delay <= MAX_SERVER_DELAY);
    }
}

#[test]
fn the_corpus_of_hostile_answers_is_parsed_without_panic() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/server-answers");
    let mut files = 0;
    for entry in std::fs::read_dir(dir).expect("the corpus") {
        let body = std::fs::read(entry.expect("entry").path()).expect("read");
        parse_everything(&body);
        files += 1;
    }
    assert!(files >= 5, "the corpus is there");
    assert_eq!(
        parse_retry_after("18446744073709551615"),
        Some(MAX_SERVER_DELAY)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_retry_after_is_clamped(text in "\\PC{0,40}", secs in any::<u64>()) {
        if let Some(delay) = parse_retry_after(&text) {
            prop_assert!(delay <= MAX_SERVER_DELAY);
        }
        let delay = parse_retry_after(&secs.to_string()).expect("digits");
        prop_assert!(delay <= MAX_SERVER_DELAY);
        prop_assert_eq!(delay, Duration::from_secs(secs).min(MAX_SERVER_DELAY));
    }

    #[test]
    fn any_bytes_are_parsed_without_panic(body in proptest::collection::vec(any::<u8>(), 0..4096)) {
        parse_everything(&body);
    }

    #[test]
    fn any_json_shaped_answer_is_parsed_without_panic(
        key in "\\PC{0,300}",
        value in "\\PC{0,300}",
        id in any::<i64>(),
        expires in any::<u64>(),
        detail in "\\PC{0,6000}",
    ) {
        let rows = serde_json::json!([{"id": id, "key": key, "value": value, "partitionGlobalId": "p", "userId": null}]);
        parse_everything(rows.to_string().as_bytes());
        let token = serde_json::json!({"access_token": value, "expires_in": expires, "token_type": "Bearer"});
        parse_everything(token.to_string().as_bytes());
        let problem = serde_json::json!({"title": key, "detail": detail, "errors": {key.clone(): [detail.clone()]}});
        parse_everything(problem.to_string().as_bytes());
        let oauth = serde_json::json!({"error": key, "error_description": detail});
        parse_everything(oauth.to_string().as_bytes());
    }
}
