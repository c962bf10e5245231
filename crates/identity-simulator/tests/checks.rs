//! `GET /_simulator/checks`: answered Setting GETs per scope, their longest gap, and the reset
//! that `DELETE /_simulator/counters` also does.

use std::time::Duration;

use identity_simulator::{Simulator, SimulatorConfig};
use serde_json::Value;

async fn token(http: &reqwest::Client, sim: &Simulator) -> String {
    let body: Value = http
        .post(format!("{}/connect/token", sim.base_url()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "operator"),
            ("client_secret", "operator-secret"),
        ])
        .send()
        .await
        .expect("token request")
        .json()
        .await
        .expect("token json");
    body["access_token"].as_str().expect("a token").to_owned()
}

async fn get_setting(http: &reqwest::Client, sim: &Simulator, token: &str, query: &str) -> u16 {
    http.get(format!(
        "{}/api/Setting?{query}&key=Auth.UserLockOut.IsEnabled",
        sim.base_url()
    ))
    .bearer_auth(token)
    .send()
    .await
    .expect("GET answers")
    .status()
    .as_u16()
}

async fn checks(http: &reqwest::Client, sim: &Simulator) -> Value {
    http.get(format!("{}/checks", sim.admin_url()))
        .send()
        .await
        .expect("checks answer")
        .json()
        .await
        .expect("checks json")
}

#[tokio::test]
async fn checks_track_gets_per_scope_and_reset_with_the_counters() {
    let sim = Simulator::start(SimulatorConfig::default())
        .await
        .expect("starts");
    let http = identity_client::http_client_builder().build().unwrap();
    let token = token(&http, &sim).await;
    assert_eq!(
        get_setting(&http, &sim, &token, "partitionGlobalId=a").await,
        200
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        get_setting(&http, &sim, &token, "partitionGlobalId=a").await,
        200
    );
    assert_eq!(
        get_setting(&http, &sim, &token, "partitionGlobalId=b&userId=u").await,
        200
    );
    // A GET refused before reaching the settings is no check.
    assert_eq!(
        get_setting(&http, &sim, "wrong", "partitionGlobalId=c").await,
        401
    );

    let report = checks(&http, &sim).await;
    let scopes = report["scopes"].as_array().expect("scopes");
    assert_eq!(scopes.len(), 2, "{report}");
    assert_eq!(scopes[0]["partitionGlobalId"], "a");
    assert_eq!(scopes[0]["gets"], 2);
    assert!(scopes[0].get("userId").is_none(), "{report}");
    let gap = scopes[0]["longestGapMs"].as_u64().expect("a number");
    assert!(gap >= 50, "{report}");
    assert_eq!(scopes[1]["userId"], "u");
    assert_eq!(
        (
            scopes[1]["gets"].as_u64(),
            scopes[1]["longestGapMs"].as_u64()
        ),
        (Some(1), Some(0))
    );
    let window = report["windowMs"].as_u64().expect("windowMs");
    assert!(
        window >= scopes[1]["lastGetMs"].as_u64().expect("lastGetMs"),
        "{report}"
    );

    let reset = http
        .delete(format!("{}/counters", sim.admin_url()))
        .send()
        .await
        .expect("reset answers");
    assert_eq!(reset.status(), 204);
    let report = checks(&http, &sim).await;
    assert_eq!(report["scopes"], serde_json::json!([]), "{report}");
    assert!(sim.checks().report().window_ms < 5_000);
    sim.shutdown().await;
}
