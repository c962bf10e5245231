//! `identity-settings-operator export`, run as a team adopting the operator would run it: the
//! real binary against the identity simulator, credentials from the environment, then `diff`
//! on what it wrote.

#[path = "support/cli_run.rs"]
mod cli_run;

use std::path::Path;

use cli_run::{Output, run_binary};
use identity_settings_operator::identity::types::SettingScope;
use identity_simulator::{Endpoint, Simulator, SimulatorConfig};
use serde_json::Value;

/// The simulator's seeded partition: the contract example's seven `Auth.*` rows.
const PARTITION: &str = "magic-7";
/// The SMTP password the server holds: it must appear nowhere export writes or prints.
const SMTP_PASSWORD: &str = "smtp-live-pass-5e1d";
/// The credentials, from the environment as a pipeline would give them.
const CREDENTIALS: [(&str, &str); 2] = [
    (
        "IDENTITY_SETTINGS_SECRET_IDENTITY_ADMIN_CLIENTID",
        "operator",
    ),
    (
        "IDENTITY_SETTINGS_SECRET_IDENTITY_ADMIN_CLIENTSECRET",
        "operator-secret",
    ),
];

/// Runs the binary with `args` and `env` in a clean Secret environment.
async fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    run_binary(args, env).await
}

/// `export --server URL --partition magic-7 --allow-insecure-http ARGS`.
async fn export(url: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    export_from(url, PARTITION, args, env).await
}

/// `export --server URL --partition PARTITION --allow-insecure-http ARGS`.
async fn export_from(url: &str, partition: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut all = vec![
        "export",
        "--server",
        url,
        "--partition",
        partition,
        "--allow-insecure-http",
    ];
    all.extend_from_slice(args);
    run(&all, env).await
}

fn org() -> SettingScope {
    SettingScope::organization(PARTITION)
}

/// A server holding the seeded password and lockout rows, some SMTP settings (the password
/// among them) and one key the catalog does not know.
async fn live_server() -> Simulator {
    let sim = Simulator::start(SimulatorConfig::default())
        .await
        .expect("simulator starts");
    for (key, value) in [
        ("Email.Smtp.Host", "smtp.example.com"),
        ("Email.Smtp.Port", "587"),
        ("Email.Smtp.Password", SMTP_PASSWORD),
        ("Custom.Feature.Enabled", "True"),
    ] {
        sim.set_directly(&org(), key, value);
    }
    sim.counters().reset();
    sim
}

/// Every file under `dir`, by name.
fn files(dir: &Path) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(dir)
        .expect("the directory exists")
        .map(|e| {
            let path = e.expect("entry").path();
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            (name, std::fs::read_to_string(&path).expect("text"))
        })
        .collect();
    out.sort();
    out
}

fn yaml(text: &str) -> Value {
    serde_norway::from_str(text).expect("valid YAML")
}

fn documents(text: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_norway::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).expect("valid YAML"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_reads_only_and_diff_finds_the_server_in_sync_with_it() {
    let sim = live_server().await;
    let url = sim.base_url();
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join("adopted");
    let dir_arg = dir.to_str().expect("UTF-8 path");

    let out = export(
        &url,
        &[
            "-o",
            dir_arg,
            "--key",
            "Custom.Feature.Enabled",
            "--key",
            "Custom.Unset",
        ],
        &CREDENTIALS,
    )
    .await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    // Seven seeded Auth.* rows, three SMTP keys and the custom one; 16 + 2 keys asked.
    assert!(
        out.stderr
            .contains("11 keys exported, 7 known keys unset\n"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("Custom.Unset"), "{}", out.stderr);
    assert!(
        !out.stderr.contains("reading settings"),
        "progress is for terminals only: {}",
        out.stderr
    );
    assert_eq!(out.stdout, "", "with -o the manifests go to files");
    assert_eq!(
        sim.counters().count(Endpoint::Setting, "GET"),
        1,
        "one GET for 18 keys"
    );
    assert_eq!(
        sim.counters().total(Endpoint::Setting),
        1,
        "nothing but that GET"
    );
    assert_eq!(sim.counters().count(Endpoint::Token, "POST"), 1);

    let written = files(&dir);
    let names: Vec<&str> = written.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["identity-settings-secrets.yaml", "identity-settings.yaml"]
    );
    for (name, text) in &written {
        assert!(
            !text.contains(SMTP_PASSWORD),
            "{name} holds the SMTP password"
        );
    }
    for text in [&out.stdout, &out.stderr] {
        assert!(!text.contains(SMTP_PASSWORD) && !text.contains("operator-secret"));
    }

    let policy = yaml(&written[1].1);
    assert_eq!(policy["apiVersion"], "identitysettings.dev/v1alpha1");
    assert_eq!(policy["metadata"]["namespace"], "default");
    assert_eq!(policy["spec"]["mode"], "Observe");
    assert_eq!(policy["spec"]["server"]["url"], url.as_str());
    assert_eq!(
        policy["spec"]["server"]["credentialsSecretRef"]["name"],
        "identity-admin"
    );
    let settings = policy["spec"]["settings"].as_array().expect("settings");
    let keys: Vec<&str> = settings
        .iter()
        .map(|s| s["key"].as_str().expect("key"))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort_by_key(|k| k.to_ascii_lowercase());
    assert_eq!(keys, sorted, "keys in a stable, sorted order");
    assert_eq!(keys.len(), 11);
    let password = settings
        .iter()
        .find(|s| s["key"] == "Email.Smtp.Password")
        .expect("the password is exported");
    assert_eq!(
        password,
        &serde_json::json!({"key": "Email.Smtp.Password", "valueFrom": {"secretKeyRef":
            {"name": "identity-settings-secrets", "key": "Email.Smtp.Password"}}})
    );
    let complexity = settings
        .iter()
        .find(|s| s["key"] == "Auth.Password.PasswordComplexity")
        .and_then(|s| s["value"].as_str())
        .expect("complexity");
    assert!(
        !complexity.contains("RegexComplexity"),
        "exported in the form a client sends: {complexity}"
    );
    let origin: Value = serde_json::from_str(
        policy["metadata"]["annotations"]["identitysettings.dev/exported-from"]
            .as_str()
            .expect("the origin annotation"),
    )
    .expect("JSON");
    assert_eq!(origin["server"], url.as_str());
    assert_eq!(origin["partition"], PARTITION);
    assert_eq!(origin["operatorVersion"], env!("CARGO_PKG_VERSION"));
    let time = origin["time"].as_str().expect("time");
    assert!(
        time.ends_with('Z') && time.parse::<jiff::Timestamp>().is_ok(),
        "{time}"
    );

    let stub = yaml(&written[0].1);
    assert!(written[0].1.starts_with("# FILL IN"), "{}", written[0].1);
    assert_eq!(stub["kind"], "Secret");
    assert_eq!(stub["stringData"]["Email.Smtp.Password"], "");

    // As a user would: fill the stub in, then preview with diff against the same server.
    let mut filled = stub.clone();
    filled["stringData"]["Email.Smtp.Password"] = Value::from(SMTP_PASSWORD);
    std::fs::write(
        dir.join("identity-settings-secrets.yaml"),
        serde_json::to_string(&filled).expect("JSON"),
    )
    .expect("fill in the Secret");
    let diff_args = [
        "diff",
        "-f",
        dir_arg,
        "--allow-insecure-http",
        "--allow-server",
        &url,
    ];
    let diff = run(&diff_args, &CREDENTIALS).await;
    assert_eq!(diff.code, 0, "{}{}", diff.stdout, diff.stderr);
    assert!(
        diff.stdout.contains("in sync (11 settings)"),
        "{}",
        diff.stdout
    );
    assert_eq!(sim.counters().count(Endpoint::Setting, "PUT"), 0);

    // The round trip can fail: a change on the server is drift for the exported policy.
    sim.set_directly(&org(), "Email.Smtp.Port", "25");
    let drifted = run(&diff_args, &CREDENTIALS).await;
    assert_eq!(drifted.code, 2, "{}{}", drifted.stdout, drifted.stderr);
    assert!(
        drifted
            .stdout
            .contains("~ Email.Smtp.Port: \"25\" → \"587\""),
        "{}",
        drifted.stdout
    );

    // A second export into the same directory refuses to overwrite the filled-in Secret.
    let again = export(&url, &["-o", dir_arg], &CREDENTIALS).await;
    assert_eq!(again.code, 1, "{}", again.stderr);
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
    assert!(
        std::fs::read_to_string(dir.join("identity-settings-secrets.yaml"))
            .expect("kept")
            .contains(SMTP_PASSWORD)
    );
    assert_eq!(sim.counters().count(Endpoint::Setting, "PUT"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_prints_one_policy_per_group_naming_a_shared_server() {
    let sim = live_server().await;
    let out = export(
        &sim.base_url(),
        &[
            "--split",
            "--mode",
            "Enforce",
            "--server-ref",
            "ClusterIdentityServer/shared",
            "--name",
            "acme",
            "-n",
            "identity",
        ],
        &[(
            "IDENTITY_SETTINGS_SECRET_IDENTITY_ADMIN_TOKEN",
            "static-admin-token",
        )],
    )
    .await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(!out.stdout.contains(SMTP_PASSWORD) && !out.stderr.contains(SMTP_PASSWORD));
    assert!(!out.stdout.contains("static-admin-token"));
    assert!(
        out.stderr
            .contains("10 keys exported, 6 known keys unset\n"),
        "{}",
        out.stderr
    );
    let docs = documents(&out.stdout);
    let names: Vec<&str> = docs
        .iter()
        .map(|d| d["metadata"]["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        [
            "acme-password-policy",
            "acme-lockout",
            "acme-email",
            "acme-secrets"
        ],
        "no policy for a group without values (Custom.* was not asked for)"
    );
    for policy in &docs[..3] {
        assert_eq!(policy["metadata"]["namespace"], "identity");
        assert_eq!(policy["spec"]["mode"], "Enforce");
        assert!(policy["spec"].get("server").is_none());
        assert_eq!(
            policy["spec"]["serverRef"],
            serde_json::json!({"kind": "ClusterIdentityServer", "name": "shared"})
        );
    }
    assert_eq!(
        docs[0]["spec"]["settings"].as_array().map(Vec::len),
        Some(4)
    );
    assert_eq!(
        docs[1]["spec"]["settings"].as_array().map(Vec::len),
        Some(3)
    );
    assert_eq!(
        docs[2]["spec"]["settings"].as_array().map(Vec::len),
        Some(3)
    );
    assert_eq!(sim.counters().total(Endpoint::Setting), 1);
    assert_eq!(sim.counters().count(Endpoint::Setting, "GET"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_clear_error_with_exit_1_no_output_and_no_secret() {
    let sim = live_server().await;
    let url = sim.base_url();
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join("out");
    let dir_arg = dir.to_str().expect("UTF-8 path");
    let wrong_secret = [
        (
            "IDENTITY_SETTINGS_SECRET_IDENTITY_ADMIN_CLIENTID",
            "operator",
        ),
        (
            "IDENTITY_SETTINGS_SECRET_IDENTITY_ADMIN_CLIENTSECRET",
            "wrong-secret-3b9f",
        ),
    ];
    let wrong_token = [(
        "IDENTITY_SETTINGS_SECRET_IDENTITY_ADMIN_TOKEN",
        "wrong-token-7c2e",
    )];
    let wrong_prefix = url.replace("/identity_", "/identity");
    // (flags, server, partition, credentials, what the error says)
    type Case<'a> = (
        Vec<&'a str>,
        &'a str,
        &'a str,
        &'a [(&'a str, &'a str)],
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            vec![],
            &url,
            PARTITION,
            &wrong_secret,
            "rejected the credentials",
        ),
        (vec![], &url, PARTITION, &wrong_token, "401"),
        (vec![], &wrong_prefix, PARTITION, &CREDENTIALS, "404"),
        (
            vec![],
            &url,
            PARTITION,
            &[],
            "Secret \"identity-admin\" not found",
        ),
        (
            vec![],
            &url,
            "no-such-org",
            &CREDENTIALS,
            "holds no value for any of the 16 keys read in partition \"no-such-org\"",
        ),
        (
            vec!["--key", "not a key"],
            &url,
            PARTITION,
            &CREDENTIALS,
            "--key \"not a key\"",
        ),
        (
            vec!["--name", "Acme"],
            &url,
            PARTITION,
            &CREDENTIALS,
            "--name \"Acme\"",
        ),
        (
            vec![],
            "identity.example.com",
            PARTITION,
            &CREDENTIALS,
            "--server \"identity.example.com\" is not",
        ),
    ];
    for (extra, server, partition, env, expected) in cases {
        let mut args = vec!["-o", dir_arg];
        args.extend(extra);
        let out = export_from(server, partition, &args, env).await;
        assert_eq!(out.code, 1, "{expected}: {}{}", out.stdout, out.stderr);
        assert!(
            out.stderr.starts_with("error: ") && out.stderr.contains(expected),
            "{expected} not in {}",
            out.stderr
        );
        for secret in [
            "wrong-secret-3b9f",
            "wrong-token-7c2e",
            "operator-secret",
            SMTP_PASSWORD,
        ] {
            assert!(!out.stderr.contains(secret), "{secret} in {}", out.stderr);
        }
        assert_eq!(out.stdout, "");
        assert!(!dir.exists(), "{expected}: an error writes nothing");
    }
    let usage = run(&["export", "--server", &url], &CREDENTIALS).await;
    assert_eq!(usage.code, 2, "a missing --partition is a usage error");
    assert_eq!(sim.counters().count(Endpoint::Setting, "PUT"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_keys_are_read_in_as_few_gets_as_the_client_allows() {
    let sim = live_server().await;
    let extra: Vec<String> = (0..80)
        .map(|i| format!("Custom.Generated.Setting.Number{i:03}"))
        .collect();
    let mut args: Vec<&str> = Vec::new();
    for key in &extra {
        args.extend(["--key", key.as_str()]);
    }
    let out = export(&sim.base_url(), &args, &CREDENTIALS).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("10 keys exported, 86 known keys unset\n"),
        "{}",
        out.stderr
    );
    // The client's own split of these keys into URLs of at most 2 KB, more than one.
    let mut keys: Vec<String> = settings_core::catalog::KEYS
        .iter()
        .map(|k| k.key.to_owned())
        .collect();
    keys.extend(extra);
    let urls =
        identity_settings_operator::identity::urls::validate(&sim.base_url(), true, "base URL")
            .map(|base| {
                identity_settings_operator::identity::urls::settings_queries(&base, &org(), &keys)
            })
            .expect("the simulator's URL");
    let needed = urls.len();
    assert!(needed > 1, "the test needs more than one GET");
    assert_eq!(
        sim.counters().count(Endpoint::Setting, "GET"),
        needed as u64
    );
    assert_eq!(sim.counters().total(Endpoint::Setting), needed as u64);
}
