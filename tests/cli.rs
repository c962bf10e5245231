//! The operator binary's subcommands, run as a user would run them.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_identity-settings-operator");

#[test]
fn crd_prints_the_committed_crd() {
    let out = Command::new(BIN).arg("crd").output().expect("runs");
    assert!(out.status.success());
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crds/identitysettings.dev.yaml"
    ))
    .expect("committed CRD");
    assert_eq!(String::from_utf8_lossy(&out.stdout), committed);
}

#[test]
fn the_committed_api_reference_is_generated_from_the_current_crd() {
    let out = Command::new(BIN).arg("api-docs").output().expect("runs");
    assert!(out.status.success());
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/reference/api.md"
    ))
    .expect("docs/reference/api.md is committed");
    assert!(
        String::from_utf8_lossy(&out.stdout) == committed,
        "docs/reference/api.md is stale: run `cargo run -p identity-settings-operator -- api-docs > docs/reference/api.md`"
    );
}

#[test]
fn the_committed_reasons_reference_is_generated_from_the_reason_type() {
    let out = Command::new(BIN)
        .arg("reasons-docs")
        .output()
        .expect("runs");
    assert!(out.status.success());
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/reference/reasons.md"
    ))
    .expect("docs/reference/reasons.md is committed");
    assert!(
        String::from_utf8_lossy(&out.stdout) == committed,
        "docs/reference/reasons.md is stale: run `cargo run -p identity-settings-operator -- reasons-docs > docs/reference/reasons.md`"
    );
}

#[test]
fn the_committed_setting_keys_reference_is_generated_from_the_catalog() {
    let out = Command::new(BIN).arg("keys-docs").output().expect("runs");
    assert!(out.status.success());
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/reference/setting-keys.md"
    ))
    .expect("docs/reference/setting-keys.md is committed");
    assert!(
        String::from_utf8_lossy(&out.stdout) == committed,
        "docs/reference/setting-keys.md is stale: run `cargo run -p identity-settings-operator -- keys-docs > docs/reference/setting-keys.md`"
    );
}
