//! The `identity-simulator` binary, run as a user would run it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_identity-simulator");

#[tokio::test]
async fn simulate_says_where_it_listens_and_serves_the_setting_api() {
    let mut child = Command::new(BIN)
        .args(["--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut base_url = None;
    let mut banner = String::new();
    for line in lines.by_ref() {
        let line = line.expect("line");
        banner.push_str(&line);
        banner.push('\n');
        if let Some(url) = line.trim().strip_prefix("identity base URL:") {
            base_url = Some(url.trim().to_owned());
        }
        if line.contains("Ctrl-C") {
            break;
        }
    }
    let base_url = base_url.unwrap_or_else(|| panic!("no base URL in:\n{banner}"));
    assert!(
        banner.contains("client_id=operator"),
        "the banner names the accepted credentials:\n{banner}"
    );

    let http = identity_client::http_client_builder().build().unwrap();
    let token: serde_json::Value = http
        .post(format!("{base_url}/connect/token"))
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
    let access = token["access_token"].as_str().expect("a token");
    let settings: serde_json::Value = http
        .get(format!(
            "{base_url}/api/Setting?partitionGlobalId=magic-7&key=Auth.UserLockOut.IsEnabled"
        ))
        .bearer_auth(access)
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("json");
    assert_eq!(settings[0]["id"], 27);
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn latency_flag_delays_every_setting_request() {
    let mut child = Command::new(BIN)
        .args(["--port", "0", "--latency-ms", "300"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut base_url = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("line");
        if let Some(url) = line.trim().strip_prefix("identity base URL:") {
            base_url = Some(url.trim().to_owned());
        }
        if line.contains("Ctrl-C") {
            break;
        }
    }
    let base_url = base_url.expect("a base URL");
    let started = std::time::Instant::now();
    let status = identity_client::http_client_builder()
        .build()
        .expect("an HTTP client")
        .get(format!("{base_url}/api/Setting?partitionGlobalId=magic-7"))
        .send()
        .await
        .expect("GET answers")
        .status();
    let took = started.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, 401, "answered, after the latency, without a token");
    assert!(took >= std::time::Duration::from_millis(300), "{took:?}");
}
