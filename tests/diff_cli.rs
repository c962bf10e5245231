//! `identity-settings-operator diff`, run as a CI pipeline would run it: the real binary against
//! the identity simulator, with manifests, a Secret directory and environment variables.

#[path = "support/cli_run.rs"]
mod cli_run;

use std::path::Path;

use cli_run::{Output, run_binary};
use identity_settings_operator::identity::types::SettingScope;
use identity_simulator::{Endpoint, Simulator, SimulatorConfig};

/// The simulator's seeded partition (the contract example's rows).
const PARTITION: &str = "magic-7";
/// Secret values that must never be printed.
const SMTP_NEW: &str = "smtp-pass-NEW-7f3a";
const SMTP_OLD: &str = "smtp-pass-OLD-91c2";
const CLIENT_SECRET: &str = "operator-secret";
const BEARER: &str = "static-admin-token";

impl Output {
    /// Fails when a secret value appears anywhere the user could see it.
    fn assert_no_secret(&self) {
        for secret in [SMTP_NEW, SMTP_OLD, CLIENT_SECRET, BEARER] {
            assert!(
                !self.stdout.contains(secret) && !self.stderr.contains(secret),
                "{secret} printed:\n{}\n{}",
                self.stdout,
                self.stderr
            );
        }
    }
}

/// Runs `diff --allow-insecure-http ARGS` with `env` added to a clean Secret environment.
async fn diff(args: &[&str], env: &[(&str, &str)]) -> Output {
    let args: Vec<&str> = ["diff", "--allow-insecure-http"]
        .into_iter()
        .chain(args.iter().copied())
        .collect();
    run_binary(&args, env).await
}

fn path(dir: &Path) -> &str {
    dir.to_str().expect("UTF-8 temp path")
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write manifest");
}

/// A policy of the seeded partition; `settings` is YAML list items, `creds` the credentials
/// Secret's name.
fn policy(name: &str, url: &str, creds: &str, settings: &str) -> String {
    format!(
        "apiVersion: identitysettings.dev/v1alpha1
kind: IdentitySettingPolicy
metadata:
  name: {name}
spec:
  server:
    url: {url}
    credentialsSecretRef:
      name: {creds}
  partitionGlobalId: {PARTITION}
  settings:
{settings}"
    )
}

/// Values the simulator holds from the start, in other spellings: the complexity in request
/// form (camelCase, Length a string, an omitted rule), the boolean capitalised.
const SEEDED_SETTINGS: &str = r#"    - key: Auth.Password.DefaultExpirationDays
      value: "0"
    - key: Auth.Password.PasswordComplexity
      value: '{"hasDigit":true,"hasLowercase":true,"Length":"8"}'
    - key: Auth.UserLockOut.IsEnabled
      value: "True"
"#;

const CLIENT_CREDENTIALS: &str = "apiVersion: v1
kind: Secret
metadata:
  name: identity-admin
type: Opaque
stringData:
  clientId: operator
  clientSecret: operator-secret
";

async fn simulator() -> Simulator {
    Simulator::start(SimulatorConfig::default())
        .await
        .expect("simulator starts")
}

fn org() -> SettingScope {
    SettingScope::organization(PARTITION)
}

fn assert_nothing_written(sim: &Simulator) {
    assert_eq!(
        sim.counters().count(Endpoint::Setting, "PUT"),
        0,
        "diff wrote to the identity service"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_sync_exits_0_even_when_the_server_spells_values_differently() {
    let sim = simulator().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let url = sim.base_url();
    write(
        dir.path(),
        "policy.yaml",
        &format!(
            "{}---\n{CLIENT_CREDENTIALS}",
            policy("password", &url, "identity-admin", SEEDED_SETTINGS)
        ),
    );

    let out = diff(&["-f", path(dir.path())], &[]).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(
        out.stdout,
        format!(
            "identitysettingpolicy default/password ({url}, partition {PARTITION}):\n  in sync (3 settings)\n\
             1 policy: 1 in sync, 0 drifted, 0 errors\n"
        )
    );
    out.assert_no_secret();
    assert_eq!(sim.counters().count(Endpoint::Setting, "GET"), 1);
    assert_nothing_written(&sim);
}

/// Two policies of one server and credential set, one with a Secret-valued setting.
fn drifted_world(dir: &Path, url: &str) {
    let smtp = policy(
        "smtp",
        url,
        "identity-admin",
        "    - key: Email.Smtp.Host
      value: smtp.example.com
    - key: Email.Smtp.Password
      valueFrom:
        secretKeyRef: {name: smtp-credentials, key: password}
",
    )
    .replace("  name: smtp\n", "  name: smtp\n  namespace: identity\n");
    let password = policy(
        "password",
        url,
        "identity-admin",
        &SEEDED_SETTINGS.replace(r#"value: "0""#, r#"value: "90""#),
    )
    .replace(
        "  name: password\n",
        "  name: password\n  namespace: identity\n",
    );
    write(dir, "10-password.yaml", &password);
    write(dir, "20-smtp.yml", &smtp);
    write(
        dir,
        "secrets.yaml",
        &format!(
            "{}---\napiVersion: v1\nkind: Secret\nmetadata: {{name: smtp-credentials, namespace: identity}}\n\
             data: {{password: c3RhbGU=}}\nstringData: {{password: {SMTP_NEW}}}\n---\n\
             apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: unrelated}}\ndata: {{a: b}}\n",
            CLIENT_CREDENTIALS.replace(
                "  name: identity-admin\n",
                "  name: identity-admin\n  namespace: identity\n"
            )
        ),
    );
    write(dir, "README.md", "not a manifest");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_exits_2_with_one_line_per_key_and_no_secret_value() {
    let sim = simulator().await;
    sim.set_directly(&org(), "Email.Smtp.Password", SMTP_OLD);
    // Stored normalised; still the same rules as the policy's request form.
    sim.set_directly(
        &org(),
        "Auth.Password.PasswordComplexity",
        r#"{"HasDigit":true,"HasLowercase":true,"Length":8}"#,
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let url = sim.base_url();
    drifted_world(dir.path(), &url);

    let out = diff(&["-f", path(dir.path())], &[]).await;
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    let expected = format!(
        "identitysettingpolicy identity/password ({url}, partition {PARTITION}):
  ~ Auth.Password.DefaultExpirationDays: \"0\" → \"90\"
identitysettingpolicy identity/smtp ({url}, partition {PARTITION}):
  + Email.Smtp.Host: (not set) → \"smtp.example.com\"
  ~ Email.Smtp.Password: changed (value from a Secret, not shown)
2 policies: 0 in sync, 2 drifted, 0 errors
"
    );
    assert_eq!(out.stdout, expected);
    assert_eq!(out.stderr, "");
    out.assert_no_secret();
    assert_nothing_written(&sim);
    assert_eq!(
        sim.counters().count(Endpoint::Token, "POST"),
        1,
        "one token for both policies of one server and credential set"
    );
    // Nothing changed on the server: a second run says the same.
    let again = diff(&["-f", path(dir.path())], &[]).await;
    assert_eq!(again.stdout, expected);
    assert_nothing_written(&sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_output_has_every_policy_change_and_a_summary() {
    let sim = simulator().await;
    sim.set_directly(&org(), "Email.Smtp.Password", SMTP_OLD);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = sim.base_url();
    drifted_world(dir.path(), &url);

    let out = diff(&["-f", path(dir.path()), "--output", "json"], &[]).await;
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    out.assert_no_secret();
    let json: serde_json::Value = serde_json::from_str(&out.stdout).expect("one JSON document");
    assert_eq!(
        json,
        serde_json::json!({
            "policies": [
                {
                    "namespace": "identity", "name": "password", "server": url,
                    "partitionGlobalId": PARTITION, "inSync": false,
                    "changes": [{"key": "Auth.Password.DefaultExpirationDays", "change": "Update",
                                 "current": "0", "desired": "90"}]
                },
                {
                    "namespace": "identity", "name": "smtp", "server": url,
                    "partitionGlobalId": PARTITION, "inSync": false,
                    "changes": [
                        {"key": "Email.Smtp.Host", "change": "Create", "desired": "smtp.example.com"},
                        {"key": "Email.Smtp.Password", "change": "Update", "secret": true}
                    ]
                }
            ],
            "summary": {"policies": 2, "inSync": 0, "drifted": 2, "errors": 0}
        })
    );
    assert_nothing_written(&sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_come_from_a_secrets_directory_and_from_the_environment() {
    let sim = simulator().await;
    let url = sim.base_url();
    let dir = tempfile::tempdir().expect("tempdir");
    let manifests = dir.path().join("manifests");
    std::fs::create_dir(&manifests).expect("mkdir");
    write(
        &manifests,
        "policies.yaml",
        &format!(
            "{}---\n{}",
            policy("from-dir", &url, "dir-creds", SEEDED_SETTINGS),
            policy("from-env", &url, "env-creds", SEEDED_SETTINGS),
        ),
    );
    // Laid out like a mounted Secret volume: keys are links into a timestamped directory.
    let volume = dir.path().join("secrets").join("dir-creds");
    let data = volume.join("..2026_05_01_12_00_00.000000001");
    std::fs::create_dir_all(&data).expect("mkdir");
    std::fs::write(data.join("clientId"), "operator").expect("write");
    std::fs::write(data.join("clientSecret"), CLIENT_SECRET).expect("write");
    std::os::unix::fs::symlink(&data, volume.join("..data")).expect("link");
    for key in ["clientId", "clientSecret"] {
        std::os::unix::fs::symlink(format!("..data/{key}"), volume.join(key)).expect("link");
    }
    let secrets_dir = dir.path().join("secrets");

    let out = diff(
        &[
            "-f",
            path(&manifests),
            "--secrets-dir",
            path(&secrets_dir),
            "--allow-server",
            &url,
        ],
        &[("IDENTITY_SETTINGS_SECRET_ENV_CREDS_TOKEN", BEARER)],
    )
    .await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("default/from-dir")
            && out.stdout.contains("default/from-env")
            && out
                .stdout
                .ends_with("2 policies: 2 in sync, 0 drifted, 0 errors\n"),
        "{}",
        out.stdout
    );
    out.assert_no_secret();
    assert_eq!(
        sim.counters().count(Endpoint::Token, "POST"),
        1,
        "the client credentials from the directory got a token; the bearer token is used as is"
    );
    assert_nothing_written(&sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_secret_is_an_error_that_says_where_to_put_it_and_the_rest_is_still_compared() {
    let sim = simulator().await;
    let url = sim.base_url();
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "a.yaml",
        &format!(
            "{}---\n{}---\n{CLIENT_CREDENTIALS}",
            policy("broken", &url, "nowhere", SEEDED_SETTINGS),
            policy("fine", &url, "identity-admin", SEEDED_SETTINGS),
        ),
    );

    let out = diff(&["-f", path(dir.path())], &[]).await;
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let error = out
        .stdout
        .lines()
        .find(|l| l.starts_with("  error: "))
        .unwrap_or_default();
    for needed in [
        "Secret \"nowhere\" not found",
        "-f directory",
        "--secrets-dir",
        "IDENTITY_SETTINGS_SECRET_NOWHERE_<KEY>",
    ] {
        assert!(error.contains(needed), "{needed} not in {error:?}");
    }
    assert!(
        out.stdout.contains("default/fine (")
            && out.stdout.contains("in sync (3 settings)")
            && out
                .stdout
                .ends_with("2 policies: 1 in sync, 0 drifted, 1 error\n"),
        "{}",
        out.stdout
    );

    let json = diff(&["-f", path(dir.path()), "-o", "json"], &[]).await;
    assert_eq!(json.code, 1);
    let json: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(json["policies"][0]["name"], "broken");
    assert_eq!(json["policies"][0]["inSync"], false);
    assert!(
        json["policies"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("\"nowhere\""))
    );
    assert_eq!(json["summary"]["errors"], 1);
    assert_nothing_written(&sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_manifest_or_command_line_exits_1_before_any_request() {
    let sim = simulator().await;
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "a.yaml",
        &format!(
            "{}---\nkind: [\n",
            policy("p", &sim.base_url(), "identity-admin", SEEDED_SETTINGS)
        ),
    );
    let out = diff(&["-f", path(dir.path()), "-n", "identity"], &[]).await;
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("a.yaml: document 2: not YAML"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stdout, "");

    let empty = tempfile::tempdir().expect("tempdir");
    let none = diff(&["-f", path(empty.path())], &[]).await;
    assert_eq!(none.code, 1);
    assert!(
        none.stderr.contains("no IdentitySettingPolicy"),
        "{}",
        none.stderr
    );

    let usage = diff(&["--no-such-flag"], &[]).await;
    assert_eq!(
        usage.code, 1,
        "a usage error is not drift: {}",
        usage.stderr
    );
    assert_eq!(sim.counters().total(Endpoint::Setting), 0);
    assert_eq!(sim.counters().total(Endpoint::Token), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_naming_server_definitions_are_compared_through_them_and_a_refused_namespace_is_an_error()
 {
    let sim = simulator().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let url = sim.base_url();
    // The cluster server's Secret lives in its own namespace; the namespaced one's in the
    // policy's.
    write(
        dir.path(),
        "servers.yaml",
        &format!(
            "apiVersion: identitysettings.dev/v1alpha1
kind: IdentityServer
metadata: {{name: acme}}
spec:
  url: {url}
  credentialsSecretRef: {{name: identity-admin}}
---
apiVersion: identitysettings.dev/v1alpha1
kind: ClusterIdentityServer
metadata: {{name: shared}}
spec:
  url: {url}
  credentialsSecretRef: {{name: platform-admin}}
  secretNamespace: identity-system
  allowedNamespaces: {{names: [identity]}}
  allowedPartitions: [{{partitionGlobalId: '*'}}]
---
apiVersion: v1
kind: Secret
metadata: {{name: platform-admin, namespace: identity-system}}
stringData: {{clientId: operator, clientSecret: operator-secret}}
"
        ),
    );
    write(dir.path(), "secret.yaml", CLIENT_CREDENTIALS);
    let using = |name: &str, kind: &str, server: &str, namespace: &str, value: &str| {
        format!(
            "apiVersion: identitysettings.dev/v1alpha1
kind: IdentitySettingPolicy
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  serverRef: {{kind: {kind}, name: {server}}}
  partitionGlobalId: {PARTITION}
  settings:
    - key: Auth.Password.DefaultExpirationDays
      value: \"{value}\"
"
        )
    };
    write(
        dir.path(),
        "policies.yaml",
        &[
            using("via-namespaced", "IdentityServer", "acme", "identity", "0"),
            using(
                "via-cluster",
                "ClusterIdentityServer",
                "shared",
                "identity",
                "90",
            ),
        ]
        .join("---\n"),
    );

    let out = diff(&["-f", path(dir.path()), "-n", "identity"], &[]).await;
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains(&format!(
            "identitysettingpolicy identity/via-cluster ({url}, partition {PARTITION}):
  ~ Auth.Password.DefaultExpirationDays: \"0\" → \"90\"
identitysettingpolicy identity/via-namespaced ({url}, partition {PARTITION}):
  in sync (1 settings)"
        )),
        "{}",
        out.stdout
    );
    out.assert_no_secret();

    // Another namespace may not use the cluster server: an error, and no request for it.
    write(
        dir.path(),
        "borrower.yaml",
        &using("borrow", "ClusterIdentityServer", "shared", "team-b", "7"),
    );
    let out = diff(&["-f", path(dir.path()), "-n", "identity"], &[]).await;
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("ClusterIdentityServer \"shared\" does not allow namespace \"team-b\""),
        "{}",
        out.stdout
    );
    assert_nothing_written(&sim);
}

/// Issue 19, item 14: in a CI step previewing a change, the manifests (and so the server URL)
/// come from the change's author and the credentials from the pipeline. Those credentials go
/// only to the servers `--allow-server` lists: a manifest naming another server gets an error
/// saying so, and that server sees no request at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_credentials_go_only_to_the_servers_allowed() {
    let ours = simulator().await;
    let attacker = simulator().await;
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "policies.yaml",
        &format!(
            "{}---\n{}",
            policy("ours", &ours.base_url(), "pipeline-creds", SEEDED_SETTINGS),
            policy(
                "exfiltrate",
                &attacker.base_url(),
                "pipeline-creds",
                SEEDED_SETTINGS
            ),
        ),
    );
    let env = [
        (
            "IDENTITY_SETTINGS_SECRET_PIPELINE_CREDS_CLIENTID",
            "operator",
        ),
        (
            "IDENTITY_SETTINGS_SECRET_PIPELINE_CREDS_CLIENTSECRET",
            CLIENT_SECRET,
        ),
    ];
    // The allowed server spelled differently (a trailing slash) is the same server.
    let allowed = format!("{}/", ours.base_url());
    let out = diff(&["-f", path(dir.path()), "--allow-server", &allowed], &env).await;
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("default/ours") && out.stdout.contains("in sync"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(&format!(
            "{} is not among the servers the credentials from --secrets-dir and the environment may be sent to",
            attacker.base_url()
        )),
        "{}",
        out.stdout
    );
    out.assert_no_secret();
    assert_eq!(
        attacker.counters().total(Endpoint::Token) + attacker.counters().total(Endpoint::Setting),
        0,
        "the server the manifest named got a request"
    );
    // Without any --allow-server, the pipeline's credentials go nowhere.
    let out = diff(&["-f", path(dir.path())], &env).await;
    assert_eq!(out.code, 1);
    assert_eq!(ours.counters().count(Endpoint::Token, "POST"), 1);
}
