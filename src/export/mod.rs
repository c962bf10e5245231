//! `identity-settings-operator export`: policies that describe what a live identity service
//! holds today, for teams adopting the operator on a server they already run.
//!
//! It checks the flags, finds the credentials as `diff` does ([`crate::diff::check::connect`]),
//! reads the catalog's keys and each `--key` with GETs only ([`read`]), decides the manifests
//! ([`manifest`]: policies in mode Observe by default, a Secret stub for secret-valued keys)
//! and writes them ([`output`]). Secret values are dropped as they are read: they reach no
//! output, message or log.

pub mod error;
pub mod manifest;
pub mod output;
pub mod read;

use std::collections::{BTreeMap, HashSet};
use std::io::{IsTerminal as _, Write as _};

use settings_core::catalog;

use crate::api::{
    IdentitySettingPolicySpec, LocalObjectRef, ServerSpec, SettingSpec, SyncMode, limits,
};
use crate::cli::{ExportArgs, ExportMode};
use crate::diff::check::{AllowedServers, connect, shown_url};
use crate::diff::sources::SecretSources;
use crate::identity::redact::Redactor;
use crate::identity::types::SettingScope;
use crate::reconcile::validate::validate;
use error::ExportError;
use manifest::{Options, Origin, Server};

/// Exit status: exported.
pub const EXIT_OK: u8 = 0;
/// Exit status: an error; nothing was written.
pub const EXIT_ERROR: u8 = 1;

/// Runs `export`; returns the exit status. Errors are printed on stderr, secrets cut out.
pub async fn run(args: &ExportArgs) -> u8 {
    let mut redactor = Redactor::default();
    match export(args, &mut redactor).await {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("error: {}", redactor.redact(&e.to_string()));
            EXIT_ERROR
        }
    }
}

async fn export(args: &ExportArgs, redactor: &mut Redactor) -> Result<(), ExportError> {
    check_flags(args)?;
    let keys = keys_to_read(&args.keys)?;
    let connection = ServerSpec {
        url: args.server.trim().to_owned(),
        credentials_secret_ref: LocalObjectRef {
            name: args.credentials_secret.clone(),
        },
        auth: None,
        scopes: None,
        authenticate_url: args.authenticate_url.clone(),
        ca_secret_ref: None,
    };
    let reader = IdentitySettingPolicySpec {
        server: Some(Box::new(connection.clone())),
        server_ref: None,
        partition_global_id: args.partition.trim().to_owned(),
        user_id: args.user.clone(),
        // The operator's checks want a setting; the reads name their own keys.
        settings: vec![SettingSpec {
            key: catalog::KEYS[0].key.into(),
            value: Some(String::new()),
            value_from: None,
        }],
        resync_interval: None,
        mode: None,
        deletion_policy: None,
        suspend: None,
        suspend_until: None,
    };
    let valid = validate(&reader).map_err(ExportError::Usage)?;
    let server = shown_url(&valid.base_url);
    // The servers named on this command line are the only ones the credentials go to.
    let named: Vec<String> = std::iter::once(&args.server)
        .chain(&args.authenticate_url)
        .cloned()
        .collect();
    let allowed = AllowedServers::new(&named);
    let sources = SecretSources::new(BTreeMap::new(), args.secrets_dir.clone());
    let clients = crate::diff::clients(args.allow_insecure_http, args.identity_timeout);
    let (client, _) = connect(
        &args.namespace,
        &valid,
        &allowed,
        &sources,
        &clients,
        redactor,
    )
    .await?;

    // UTC, whole seconds.
    let now = jiff::Timestamp::now();
    let time = jiff::Timestamp::from_second(now.as_second())
        .unwrap_or(now)
        .to_string();
    let mut progress = Progress::new();
    let result = read::read(&client, &valid.scope, &keys, &mut |done, total| {
        progress.show(done, total)
    })
    .await;
    // Cleared before anything else is printed, an error included.
    progress.finish();
    let found = result.map_err(|source| ExportError::Identity {
        server: server.clone(),
        source,
    })?;
    if found.is_empty() {
        return Err(ExportError::NothingSet {
            server,
            asked: keys.len(),
            partition: valid.scope.partition_global_id.clone(),
            user: valid
                .scope
                .user_id
                .as_ref()
                .map(|u| format!(", user {u:?}"))
                .unwrap_or_default(),
        });
    }

    let options = options(args, connection, &valid.scope, server, time);
    let manifests = manifest::manifests(&options, &found)?;
    match &args.output_dir {
        Some(dir) => {
            for path in output::to_dir(dir, &manifests)? {
                eprintln!("wrote {}", path.display());
            }
        }
        None => output::to_stdout(&manifests)?,
    }
    eprint!("{}", summary(&keys, &found, &options));
    Ok(())
}

/// What the manifests are built from besides the values.
fn options(
    args: &ExportArgs,
    connection: ServerSpec,
    scope: &SettingScope,
    server: String,
    time: String,
) -> Options {
    Options {
        name: args.name.clone(),
        namespace: args.namespace.clone(),
        mode: match args.mode {
            ExportMode::Observe => SyncMode::Observe,
            ExportMode::Plan => SyncMode::Plan,
            ExportMode::Enforce => SyncMode::Enforce,
        },
        split: args.split,
        server: match &args.server_ref {
            Some(reference) => Server::Ref {
                reference: reference.clone(),
                connection,
            },
            None => Server::Inline(connection),
        },
        partition: scope.partition_global_id.clone(),
        user: scope.user_id.clone(),
        origin: Origin {
            server,
            partition: scope.partition_global_id.clone(),
            user: scope.user_id.clone(),
            time,
            operator_version: env!("CARGO_PKG_VERSION").to_owned(),
            catalog_version: catalog::VERSION.to_owned(),
        },
    }
}

/// The lines printed on stderr after an export: `N keys exported, M known keys unset`, the
/// unset keys, and the Secret stub to fill in.
fn summary(keys: &[String], found: &[manifest::Read], options: &Options) -> String {
    let unset: Vec<&str> = keys
        .iter()
        .filter(|k| !found.iter().any(|f| &f.key == *k))
        .map(String::as_str)
        .collect();
    let mut out = format!(
        "{} keys exported, {} known keys unset\n",
        found.len(),
        unset.len()
    );
    if !unset.is_empty() {
        out.push_str(&format!("unset: {}\n", unset.join(", ")));
    }
    if found.iter().any(|f| f.found == manifest::Found::Secret) {
        out.push_str(&format!(
            "fill in Secret {:?} before applying: export leaves secret values out\n",
            manifest::secret_name(options)
        ));
    }
    out
}

/// Refuses flag values the manifests could not carry, naming the flag.
fn check_flags(args: &ExportArgs) -> Result<(), ExportError> {
    let usage = |m: String| Err(ExportError::Usage(m));
    let Ok(server) = url::Url::parse(args.server.trim()) else {
        return usage(format!(
            "--server {:?} is not an identity base URL such as \
             https://cloud.uipath.com/acme/identity_",
            args.server
        ));
    };
    if server.password().is_some() {
        return usage(
            "--server: the URL holds a password; give the credentials in the credentials Secret \
             (--credentials-secret), not in the URL"
                .into(),
        );
    }
    if let Some(dir) = args.secrets_dir.as_deref().filter(|d| !d.is_dir()) {
        return usage(format!(
            "--secrets-dir {} is not a directory",
            dir.display()
        ));
    }
    if args.partition.trim().is_empty() {
        return usage("--partition must not be empty".into());
    }
    if args.user.as_deref().is_some_and(|u| u.trim().is_empty()) {
        return usage("--user must not be empty (omit it for organization settings)".into());
    }
    // `<name>-password-policy` is the longest name made from it.
    let longest_suffix = "-password-policy".len();
    for (flag, value, max) in [
        ("--name", &args.name, 63 - longest_suffix),
        ("--namespace", &args.namespace, limits::MAX_NAMESPACE),
        (
            "--credentials-secret",
            &args.credentials_secret,
            limits::MAX_NAME,
        ),
    ] {
        if !is_dns_label(value, max) {
            return usage(format!(
                "{flag} {value:?} is not a Kubernetes name: lower-case letters, digits and '-', \
                 starting and ending with a letter or digit, at most {max} characters"
            ));
        }
    }
    Ok(())
}

/// Whether `name` is a DNS label (RFC 1123) of at most `max` characters.
fn is_dns_label(name: &str, max: usize) -> bool {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    !name.is_empty()
        && name.len() <= max
        && name.chars().all(ok_char)
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// The catalog's keys, then each `--key` not among them (compared case-insensitively, as the
/// identity service compares keys), in the order given.
fn keys_to_read(extra: &[String]) -> Result<Vec<String>, ExportError> {
    let mut keys: Vec<String> = catalog::KEYS.iter().map(|k| k.key.to_owned()).collect();
    let mut seen: HashSet<String> = keys.iter().map(|k| k.to_ascii_lowercase()).collect();
    for key in extra {
        let key = key.trim();
        let segment_ok = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        if key.len() > limits::MAX_KEY || !key.split('.').all(segment_ok) {
            return Err(ExportError::Usage(format!(
                "--key {key:?} is not a setting key: dot-separated parts of letters, digits, '_' \
                 and '-', at most {} characters",
                limits::MAX_KEY
            )));
        }
        if seen.insert(key.to_ascii_lowercase()) {
            keys.push(key.to_owned());
        }
    }
    Ok(keys)
}

/// `reading settings: 8/16 keys` on stderr while the reads run, only when stderr is a
/// terminal (a pipeline's log gets the summary line only).
struct Progress {
    on: bool,
}

impl Progress {
    fn new() -> Self {
        Self {
            on: std::io::stderr().is_terminal(),
        }
    }

    fn show(&mut self, done: usize, total: usize) {
        if self.on {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\rreading settings: {done}/{total} keys");
            let _ = err.flush();
        }
    }

    /// Clears the progress line.
    fn finish(&mut self) {
        if self.on {
            eprint!("\r\x1b[K");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[test]
    fn extra_keys_come_after_the_catalog_once_each_and_bad_ones_are_refused() {
        let keys = keys_to_read(&[
            "Custom.B".into(),
            "email.smtp.host".into(),
            "Custom.A".into(),
            "custom.b".into(),
        ])
        .expect("keys");
        assert_eq!(keys.len(), catalog::KEYS.len() + 2);
        assert_eq!(&keys[catalog::KEYS.len()..], ["Custom.B", "Custom.A"]);
        for bad in [
            "",
            "a..b",
            "has space",
            ".x",
            &"k".repeat(limits::MAX_KEY + 1),
        ] {
            let err = keys_to_read(&[bad.to_owned()]).expect_err(bad);
            assert!(err.to_string().starts_with("--key"), "{err}");
        }
    }

    #[test]
    fn the_summary_counts_exported_and_unset_keys_and_names_the_stub_to_fill_in() {
        let args = crate::cli::Cli::try_parse_from([
            "x",
            "export",
            "--server",
            "https://h/identity_",
            "--partition",
            "p",
            "--name",
            "acme",
        ])
        .expect("parses");
        let crate::cli::Command::Export(args) = args.command else {
            panic!("not export")
        };
        let connection = ServerSpec {
            url: "https://h/identity_".into(),
            credentials_secret_ref: LocalObjectRef {
                name: "identity-admin".into(),
            },
            auth: None,
            scopes: None,
            authenticate_url: None,
            ca_secret_ref: None,
        };
        let scope = SettingScope::organization("p");
        let options = options(
            &args,
            connection,
            &scope,
            "https://h/identity_".into(),
            "t".into(),
        );
        let keys: Vec<String> = ["A", "B", "Email.Smtp.Password"].map(String::from).to_vec();
        let found = [manifest::Read {
            key: "A".into(),
            found: manifest::Found::Value("1".into()),
        }];
        assert_eq!(
            summary(&keys, &found, &options),
            "1 keys exported, 2 known keys unset\nunset: B, Email.Smtp.Password\n"
        );
        let found = [manifest::Read {
            key: "Email.Smtp.Password".into(),
            found: manifest::Found::Secret,
        }];
        assert_eq!(
            summary(&keys, &found, &options),
            "1 keys exported, 2 known keys unset\nunset: A, B\n\
             fill in Secret \"acme-secrets\" before applying: export leaves secret values out\n"
        );
    }

    #[test]
    fn names_must_be_kubernetes_names_short_enough_for_the_group_suffix() {
        assert!(is_dns_label("identity-settings", 47));
        for bad in ["", "Upper", "-x", "x-", "a_b", &"a".repeat(48)] {
            assert!(!is_dns_label(bad, 47), "{bad:?}");
        }
    }
}
