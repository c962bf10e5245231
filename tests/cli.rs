//! The binary's subcommands, run as a user would run them.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_identity-settings-operator");

#[test]
fn crd_prints_the_committed_crd() {
    let out = Command::new(BIN).arg("crd").output().expect("runs");
    assert!(out.status.success());
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crds/identitysettingpolicies.identitysettings.dev.yaml"
    ))
    .expect("committed CRD");
    assert_eq!(String::from_utf8_lossy(&out.stdout), committed);
}

#[test]
fn the_committed_api_reference_is_generated_from_the_current_crd() {
    let out = Command::new(BIN).arg("api-docs").output().expect("runs");
    assert!(out.status.success());
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/api.md"))
        .expect("docs/api.md is committed");
    assert!(
        String::from_utf8_lossy(&out.stdout) == committed,
        "docs/api.md is stale: run `cargo run -- api-docs > docs/api.md`"
    );
}

#[tokio::test]
async fn simulate_says_where_it_listens_and_serves_the_setting_api() {
    let mut child = Command::new(BIN)
        .args(["simulate", "--port", "0"])
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

    let http = reqwest::Client::new();
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

/// Runs `demo` with `args`; (exit code, stdout, stderr).
fn demo(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .arg("demo")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn demo_applies_the_examples_and_every_policy_converges() {
    let (code, stdout, stderr) = demo(&[]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    for name in [
        "password-policy",
        "lockout",
        "smtp",
        "service-account-password",
    ] {
        let row = stdout
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .unwrap_or_else(|| panic!("no table row for {name}:\n{stdout}"));
        assert!(row.contains(" True "), "{row}");
        // The simulator starts empty: every policy's first sync wrote its values.
        assert!(row.contains(" Applied "), "{row}");
    }
    assert!(stdout.contains("Email.Smtp.Password"), "{stdout}");
    assert!(stdout.contains("All 4 policies converged."), "{stdout}");
    for secret in [
        "replace-with-the-smtp-password",
        "replace-with-the-application-secret",
        "replace-with-a-bearer-token",
        "replace-with-the-host-admin-password",
    ] {
        assert!(!stdout.contains(secret), "{secret} printed:\n{stdout}");
        assert!(!stderr.contains(secret), "{secret} logged:\n{stderr}");
    }
}

#[test]
fn a_demo_that_cannot_converge_stops_with_the_reason_instead_of_waiting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    // The password policy without the Secret it names.
    std::fs::copy(
        examples.join("password-policy.yaml"),
        dir.path().join("password-policy.yaml"),
    )
    .expect("copy");
    let path = dir.path().to_str().expect("utf-8 path");
    let (code, stdout, stderr) = demo(&["--examples", path, "--timeout", "5m"]);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    // A missing Secret needs the user: the demo says so instead of waiting out its timeout.
    assert!(stderr.contains("waiting cannot help"), "{stderr}");
    assert!(
        stderr.contains("password-policy: SecretNotFound"),
        "{stderr}"
    );
}

#[test]
fn a_demo_with_a_broken_manifest_names_the_file_and_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("typo.yaml"),
        "apiVersion: identitysettings.dev/v1alpha1\nkind: IdentitySettingPolicy\n\
         metadata: {name: p}\nspec:\n  server: {url: 'https://h/identity_', credentialsSecretRef: {name: c}}\n\
         \x20 partitionGlobalId: org\n  settings: [{key: A, value: '1'}]\n  resyncIntervall: 5m\n",
    )
    .expect("write");
    let path = dir.path().to_str().expect("utf-8 path");
    let (code, stdout, stderr) = demo(&["--examples", path]);
    assert_ne!(code, 0, "{stdout}");
    assert!(stderr.contains("typo.yaml, document 1"), "{stderr}");
    assert!(stderr.contains("spec.resyncIntervall"), "{stderr}");
}
