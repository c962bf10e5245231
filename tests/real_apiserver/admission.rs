//! Admission for real: one bad manifest per CRD constraint, applied with the real kubectl, each
//! refused with a message that names what to fix; and every file in `examples/` accepted.

use serde_json::{Value, json};

use control_plane::{self, ControlPlane};

const NS: &str = "identity";

/// A policy the real server accepts; each case below breaks one thing in it.
fn good_policy(name: &str) -> Value {
    json!({
        "apiVersion": "identitysettings.dev/v1alpha1",
        "kind": "IdentitySettingPolicy",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "server": {
                "url": "https://cloud.example.com/acme/identity_",
                "credentialsSecretRef": {"name": "identity-admin"}
            },
            "partitionGlobalId": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
            "settings": [{"key": "Auth.Password.DefaultExpirationDays", "value": "90"}]
        }
    })
}

/// A ClusterIdentityServer with `allowedNamespaces` as given.
fn cluster_server(allowed: Value) -> Value {
    json!({
        "apiVersion": "identitysettings.dev/v1alpha1",
        "kind": "ClusterIdentityServer",
        "metadata": {"name": "shared"},
        "spec": {
            "url": "https://cloud.example.com/acme/identity_",
            "credentialsSecretRef": {"name": "identity-admin"},
            "secretNamespace": "identity-system",
            "allowedNamespaces": allowed
        }
    })
}

/// (case, how it breaks the good policy — or the object that replaces it — and what the
/// refusal must say).
type Case = (&'static str, fn(&mut Value), &'static [&'static str]);

fn cases() -> Vec<Case> {
    vec![
        (
            "both value and valueFrom",
            |p| {
                p["spec"]["settings"][0]["valueFrom"] =
                    json!({"secretKeyRef": {"name": "s", "key": "k"}})
            },
            &["spec.settings[0]", "set exactly one of value and valueFrom"],
        ),
        (
            "neither value nor valueFrom",
            |p| p["spec"]["settings"] = json!([{"key": "Auth.UserLockOut.IsEnabled"}]),
            &["spec.settings[0]", "set exactly one of value and valueFrom"],
        ),
        (
            "Email.Smtp.Password as a literal",
            |p| p["spec"]["settings"] = json!([{"key": "Email.Smtp.Password", "value": "hunter2"}]),
            &[
                "spec.settings[0]",
                "Email.Smtp.Password is a secret: take it from a Secret",
            ],
        ),
        (
            "a key with a space",
            |p| p["spec"]["settings"][0]["key"] = json!("Auth Password"),
            &["spec.settings[0].key", "should match"],
        ),
        (
            "a key with an empty segment",
            |p| p["spec"]["settings"][0]["key"] = json!("Auth..Password"),
            &["spec.settings[0].key", "should match"],
        ),
        (
            "a key longer than 128 characters",
            |p| p["spec"]["settings"][0]["key"] = json!("A".repeat(129)),
            &["spec.settings[0].key", "Too long"],
        ),
        // Issue 19, item 2: every string has a bound, so one policy cannot make the operator
        // allocate without limit.
        (
            "a 300 000-character partitionGlobalId",
            |p| p["spec"]["partitionGlobalId"] = json!("p".repeat(300_000)),
            &["spec.partitionGlobalId", "Too long"],
        ),
        (
            "a userId longer than 128 characters",
            |p| p["spec"]["userId"] = json!("u".repeat(129)),
            &["spec.userId", "Too long"],
        ),
        (
            "a server url longer than 1024 characters",
            |p| p["spec"]["server"]["url"] = json!(format!("https://h/{}", "a".repeat(1100))),
            &["spec.server.url", "Too long"],
        ),
        (
            "a value longer than 4096 characters",
            |p| p["spec"]["settings"][0]["value"] = json!("v".repeat(4097)),
            &["spec.settings[0].value", "Too long"],
        ),
        (
            "a Secret name longer than 253 characters",
            |p| p["spec"]["server"]["credentialsSecretRef"]["name"] = json!("s".repeat(254)),
            &["spec.server.credentialsSecretRef.name", "Too long"],
        ),
        (
            "more than 32 768 characters of values in all",
            |p| {
                p["spec"]["settings"] = (0..9)
                    .map(|i| json!({"key": format!("Custom.Key{i}"), "value": "v".repeat(4000)}))
                    .collect();
            },
            &["spec.settings", "at most 32768 characters in all"],
        ),
        // Issue 19, item 11: what the operator refuses, the API server refuses first.
        (
            "email.smtp.password (any case) as a literal",
            |p| p["spec"]["settings"] = json!([{"key": "email.smtp.PASSWORD", "value": "hunter2"}]),
            &[
                "spec.settings[0]",
                "Email.Smtp.Password is a secret: take it from a Secret",
            ],
        ),
        (
            "a resyncInterval below 10s",
            |p| p["spec"]["resyncInterval"] = json!("1s"),
            &["spec.resyncInterval", "must be between 10s and 24h"],
        ),
        (
            "a resyncInterval above 24h",
            |p| p["spec"]["resyncInterval"] = json!("25h"),
            &["spec.resyncInterval", "must be between 10s and 24h"],
        ),
        (
            "a server url that is not http(s)",
            |p| p["spec"]["server"]["url"] = json!("ftp://cloud.example.com/identity_"),
            &["spec.server.url", "must be an https:// URL"],
        ),
        (
            "two keys that differ only in case",
            |p| {
                p["spec"]["settings"] = json!([
                    {"key": "Auth.UserLockOut.IsEnabled", "value": "true"},
                    {"key": "auth.userlockout.isenabled", "value": "false"}
                ])
            },
            &["spec.settings", "keys are compared case-insensitively"],
        ),
        (
            "empty settings",
            |p| p["spec"]["settings"] = json!([]),
            &["spec.settings", "should have at least 1 items"],
        ),
        (
            "more than 256 settings",
            |p| {
                p["spec"]["settings"] = (0..257)
                    .map(|i| json!({"key": format!("Custom.Key{i}"), "value": "1"}))
                    .collect();
            },
            &["spec.settings", "must have at most 256 items"],
        ),
        (
            "a duplicate key",
            |p| {
                p["spec"]["settings"] = json!([
                    {"key": "Auth.UserLockOut.IsEnabled", "value": "true"},
                    {"key": "Auth.UserLockOut.IsEnabled", "value": "false"}
                ])
            },
            &["spec.settings[1]", "Duplicate value"],
        ),
        (
            "an unknown mode",
            |p| p["spec"]["mode"] = json!("Enforcing"),
            &["spec.mode", "Unsupported value", "\"Enforce\", \"Observe\""],
        ),
        (
            "an unknown deletionPolicy",
            |p| p["spec"]["deletionPolicy"] = json!("Delete"),
            &["spec.deletionPolicy", "Unsupported value", "\"Retain\""],
        ),
        (
            "an unknown auth",
            |p| p["spec"]["server"]["auth"] = json!("Kerberos"),
            &["spec.server.auth", "Unsupported value"],
        ),
        (
            "a resyncInterval that is not a duration",
            |p| p["spec"]["resyncInterval"] = json!("ten minutes"),
            &["spec.resyncInterval", "should match"],
        ),
        (
            "a suspendUntil that is not an RFC 3339 time",
            |p| p["spec"]["suspendUntil"] = json!("tomorrow morning"),
            &["spec.suspendUntil", "date-time"],
        ),
        (
            "no server url",
            |p| {
                p["spec"]["server"].as_object_mut().map(|s| s.remove("url"));
            },
            &["spec.server.url", "Required value"],
        ),
        (
            "no credentials Secret",
            |p| {
                p["spec"]["server"]
                    .as_object_mut()
                    .map(|s| s.remove("credentialsSecretRef"));
            },
            &["spec.server.credentialsSecretRef", "Required value"],
        ),
        (
            "no partitionGlobalId",
            |p| {
                p["spec"]
                    .as_object_mut()
                    .map(|s| s.remove("partitionGlobalId"));
            },
            &["spec.partitionGlobalId", "Required value"],
        ),
        (
            "an empty partitionGlobalId",
            |p| p["spec"]["partitionGlobalId"] = json!(""),
            &["spec.partitionGlobalId", "at least 1 chars long"],
        ),
        (
            "no settings",
            |p| {
                p["spec"].as_object_mut().map(|s| s.remove("settings"));
            },
            &["spec.settings", "Required value"],
        ),
        (
            "a number as a value",
            |p| p["spec"]["settings"][0]["value"] = json!(90),
            &["spec.settings[0].value", "must be of type string"],
        ),
        (
            "a string as settings",
            |p| p["spec"]["settings"] = json!("Auth.UserLockOut.IsEnabled=true"),
            &["spec.settings", "must be of type array"],
        ),
        (
            "both server and serverRef",
            |p| p["spec"]["serverRef"] = json!({"kind": "IdentityServer", "name": "acme"}),
            &[
                "spec",
                "set exactly one of server (the identity service written here) and serverRef",
            ],
        ),
        (
            "neither server nor serverRef",
            |p| {
                p["spec"].as_object_mut().map(|s| s.remove("server"));
            },
            &[
                "spec",
                "set exactly one of server (the identity service written here) and serverRef",
            ],
        ),
        (
            "a serverRef of an unknown kind",
            |p| {
                p["spec"].as_object_mut().map(|s| s.remove("server"));
                p["spec"]["serverRef"] = json!({"kind": "VaultServer", "name": "acme"});
            },
            &[
                "spec.serverRef.kind",
                "Unsupported value",
                "\"ClusterIdentityServer\"",
            ],
        ),
        (
            "a ClusterIdentityServer that does not say who may use it",
            |p| *p = cluster_server(json!({})),
            &[
                "spec.allowedNamespaces",
                "name the allowed namespaces (names), select them by label (selector), or both",
            ],
        ),
        (
            "a ClusterIdentityServer that does not say where its Secret lives",
            |p| {
                *p = cluster_server(json!({"names": ["identity"]}));
                p["spec"]
                    .as_object_mut()
                    .map(|s| s.remove("secretNamespace"));
            },
            &["spec.secretNamespace", "Required value"],
        ),
        (
            "an IdentityServer with requestsPerSecond 0",
            |p| {
                *p = json!({
                    "apiVersion": "identitysettings.dev/v1alpha1",
                    "kind": "IdentityServer",
                    "metadata": {"name": "zero-rate", "namespace": NS},
                    "spec": {
                        "url": "https://cloud.example.com/acme/identity_",
                        "credentialsSecretRef": {"name": "identity-admin"},
                        "requestsPerSecond": 0
                    }
                })
            },
            &[
                "spec.requestsPerSecond",
                "should be greater than or equal to 1",
            ],
        ),
        (
            "a valueFrom without a Secret name",
            |p| p["spec"]["settings"] = json!([{"key": "Email.Smtp.Password", "valueFrom": {"secretKeyRef": {"key": "password"}}}]),
            &[
                "spec.settings[0].valueFrom.secretKeyRef.name",
                "Required value",
            ],
        ),
    ]
}

/// Each bad manifest, applied with the real kubectl, is refused; kubectl's message names the
/// field and says what is wrong; nothing is stored.
pub async fn every_bad_manifest_is_refused_with_a_message_naming_the_field() {
    let bin = control_plane::selected().expect("selected");
    let plane = ControlPlane::start(&bin, &[NS]).await;
    let mut wrong = Vec::new();
    for (index, (case, mutate, expected)) in cases().into_iter().enumerate() {
        let name = format!("bad-{index}");
        let mut manifest = good_policy(&name);
        mutate(&mut manifest);
        let out = plane
            .kubectl_output(&["apply", "-f", "-"], Some(&manifest.to_string()))
            .await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            wrong.push(format!("{case}: accepted"));
        } else if let Some(missing) = expected.iter().find(|e| !stderr.contains(*e)) {
            wrong.push(format!(
                "{case}: the refusal does not say {missing:?}: {stderr}"
            ));
        }
    }
    let stored = plane.kubectl(&["get", "isp", "-n", NS, "-o", "name"]).await;
    assert!(
        wrong.is_empty(),
        "the real server's admission differs from what the CRD promises:\n{}",
        wrong.join("\n")
    );
    assert!(
        stored.trim().is_empty(),
        "refused policies were stored: {stored}"
    );

    // The good policy itself is accepted, so each refusal above is its case's doing.
    let out = plane
        .kubectl_output(
            &["apply", "-f", "-"],
            Some(&good_policy("good").to_string()),
        )
        .await;
    assert!(
        out.status.success(),
        "the good policy is refused: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every file in `examples/` and `examples/shared-servers/` passes the real server's admission
/// (`--dry-run=server`).
pub async fn every_example_is_accepted() {
    let bin = control_plane::selected().expect("selected");
    let plane = ControlPlane::start(&bin, &[NS]).await;
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let mut files: Vec<_> = [examples.to_owned(), format!("{examples}/shared-servers")]
        .iter()
        .flat_map(|dir| std::fs::read_dir(dir).expect("examples/"))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for file in files {
        let path = file.to_string_lossy();
        let out = plane
            .kubectl_output(&["apply", "--dry-run=server", "-n", NS, "-f", &path], None)
            .await;
        assert!(
            out.status.success(),
            "{path} is refused: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("(server dry run)"), "{path}: {stdout}");
    }
}
