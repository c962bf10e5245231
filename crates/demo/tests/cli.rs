//! The `identity-settings-demo` binary, run as a user would run it (from the repository root,
//! where `examples/` is).

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_identity-settings-demo");

/// Runs `demo` with `args`; (exit code, stdout, stderr).
fn demo(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
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
    let examples = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples"));
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
