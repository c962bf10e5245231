//! The command line: `run` (the operator), `diff` (a preview for CI), `export` (policies from
//! a live server), `crd`, `api-docs`, `reasons-docs` and `keys-docs`.
//! (The identity simulator and the no-cluster demo are binaries of their own crates, never part
//! of the operator.)
//!
//! Every `run` flag can also be set by an environment variable, which is how the Helm chart
//! configures the operator.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::identity::budget::WindowLimits;

/// Keeps UiPath Identity Server settings equal to IdentitySettingPolicy resources.
#[derive(Debug, Parser)]
#[command(name = "identity-settings-operator", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the operator against the cluster in KUBECONFIG or the in-cluster config.
    Run(Box<RunArgs>),
    /// Compare policy manifests with the identity service and print what the operator would
    /// change, writing nothing. Exit status: 0 in sync, 2 drift, 1 error.
    Diff(Box<DiffArgs>),
    /// Read the settings a live identity service holds and write IdentitySettingPolicy
    /// manifests (mode Observe by default) that describe them, sending only reads. Exit
    /// status: 0 exported, 1 error.
    Export(Box<ExportArgs>),
    /// Print the IdentitySettingPolicy CustomResourceDefinition as YAML.
    Crd,
    /// Print the API reference (docs/reference/api.md) generated from the CRD's schema.
    ApiDocs,
    /// Print the reasons reference (docs/reference/reasons.md) generated from the `Reason` type.
    ReasonsDocs,
    /// Print the known setting keys (docs/reference/setting-keys.md) from the catalog `export`
    /// reads.
    KeysDocs,
}

/// Log output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Flags of `run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Namespaces to watch, comma-separated; empty means all namespaces.
    #[arg(long, env = "WATCH_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Address for /metrics, /healthz and /readyz.
    #[arg(long, env = "HTTP_ADDRESS", default_value = "0.0.0.0")]
    pub http_address: IpAddr,
    /// Port for /metrics, /healthz and /readyz.
    #[arg(long, env = "HTTP_PORT", default_value_t = 8080)]
    pub http_port: u16,
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Policies reconciled at the same time, at most, across all watched namespaces. Due
    /// policies beyond it wait in a fair queue: new and changed policies first, then resyncs in
    /// the order they fell due.
    #[arg(long, env = "CONCURRENCY", default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,
    /// Threads that run the operator's work. One core is enough for 10 000 policies (about a
    /// fifth of it at a cold start against a real API server) and one thread wakes no other,
    /// so it costs less CPU than several (docs/benchmarks.md); raise it only when the operator
    /// keeps a core busy. Without it, the runtime would start one thread per core of the node,
    /// whatever the pod may use.
    #[arg(long, env = "WORKER_THREADS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub worker_threads: u16,
    /// Policies talking to one identity server (its URL) at the same time, at most (one done
    /// with its identity requests writes its status outside this share); also the idle
    /// connections kept open to it.
    #[arg(long, env = "IDENTITY_CONCURRENCY", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    pub identity_concurrency: u16,
    /// Requests per second to one identity server, at most, shared by all its policies (starts
    /// at least 1/rate apart); 0: no limit. A 429 from the server pauses all its policies for
    /// its Retry-After whatever this is.
    #[arg(long, env = "IDENTITY_REQUESTS_PER_SECOND", default_value_t = 0.0, value_parser = non_negative)]
    pub identity_requests_per_second: f64,
    /// Requests in flight to one identity server at once, at most; 0: no limit besides
    /// --identity-concurrency.
    #[arg(long, env = "IDENTITY_MAX_IN_FLIGHT", default_value_t = 0)]
    pub identity_max_in_flight: u16,
    /// Hosts of Automation Cloud, whose identity service publishes per-organization limits:
    /// requests to an identity URL on one of them (or a subdomain) are held to
    /// --automation-cloud-share of --automation-cloud-limits per organization, besides the
    /// limits above. Comma-separated; empty: none.
    #[arg(
        long,
        env = "AUTOMATION_CLOUD_HOSTS",
        value_delimiter = ',',
        default_value = "cloud.uipath.com,staging.uipath.com,alpha.uipath.com,govcloud.uipath.us"
    )]
    pub automation_cloud_hosts: Vec<String>,
    /// The limits Automation Cloud publishes for its identity service, per organization:
    /// `READS,WRITES/WINDOW` — Setting GETs and PUTs per window (UiPath: 300 GET and 160
    /// PUT/PATCH/DELETE per 5 minutes, 429 beyond).
    #[arg(long, env = "AUTOMATION_CLOUD_LIMITS", default_value = "300,160/5m", value_parser = parse_window_limits)]
    pub automation_cloud_limits: WindowLimits,
    /// The part of --automation-cloud-limits the operator uses (0 to 1), leaving the rest to
    /// the organization's own users and tools; 0: no per-organization limit.
    #[arg(long, env = "AUTOMATION_CLOUD_SHARE", default_value_t = 0.5, value_parser = share)]
    pub automation_cloud_share: f64,
    /// Take part in leader election (required when running more than one replica).
    #[arg(long, env = "LEADER_ELECTION", default_value_t = false)]
    pub leader_election: bool,
    /// The Lease used for leader election.
    #[arg(long, env = "LEASE_NAME", default_value = "identity-settings-operator")]
    pub lease_name: String,
    /// The Lease's namespace (the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// This replica's name in the Lease and in Events (defaults to the host name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// How long a leader's Lease lasts without renewal.
    #[arg(long, env = "LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,
    /// How often the Lease is renewed (or tried).
    #[arg(long, env = "LEASE_RENEW_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub lease_renew_interval: Duration,
    /// Allow plain http:// identity URLs whose host is a loopback address (127.0.0.0/8, ::1,
    /// localhost), for tests and local development; any other http URL is still refused.
    #[arg(long, env = "ALLOW_INSECURE_HTTP", default_value_t = false)]
    pub allow_insecure_http: bool,
    /// Timeout of one identity API request.
    #[arg(long, env = "IDENTITY_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub identity_timeout: Duration,
    /// Longest time one reconcile's identity calls may take together; a reconcile past it is
    /// reported `ServerUnreachable` and retried with backoff.
    #[arg(long, env = "RECONCILE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub reconcile_timeout: Duration,
    /// First retry delay after a transient failure (doubles up to --backoff-max).
    #[arg(long, env = "BACKOFF_MIN", default_value = "5s", value_parser = parse_duration)]
    pub backoff_min: Duration,
    /// Longest retry delay after transient failures.
    #[arg(long, env = "BACKOFF_MAX", default_value = "5m", value_parser = parse_duration)]
    pub backoff_max: Duration,
}

impl RunArgs {
    /// Checks the flags that only make sense together; the message names the flag to fix.
    pub fn check(&self) -> Result<(), String> {
        if self.backoff_min.is_zero() || self.backoff_min > self.backoff_max {
            return Err("--backoff-min must be above 0 and at most --backoff-max".into());
        }
        if self.lease_duration < Duration::from_secs(1) || self.lease_duration.subsec_nanos() != 0 {
            return Err(
                "--lease-duration must be whole seconds, at least 1s (a Lease counts in seconds)"
                    .into(),
            );
        }
        if self.lease_renew_interval.is_zero()
            || self
                .lease_renew_interval
                .checked_mul(2)
                .is_none_or(|twice| twice > self.lease_duration)
        {
            return Err(
                "--lease-renew-interval must be above 0 and at most half of --lease-duration"
                    .into(),
            );
        }
        if self.reconcile_timeout < self.identity_timeout {
            return Err("--reconcile-timeout must be at least --identity-timeout".into());
        }
        if self.identity_timeout.is_zero() {
            return Err("--identity-timeout must be above 0".into());
        }
        Ok(())
    }
}

/// Where `diff` finds the Secrets a policy references, for its `--help`.
const DIFF_SECRETS_HELP: &str = "\
Secrets a policy references (credentials, valueFrom, caSecretRef) are looked up by name; the
first source that holds a Secret of that name supplies all of its keys:
  1. Secret manifests in DIR (apiVersion v1, kind Secret, in the policy's namespace; stringData
     wins over data, as in Kubernetes);
  2. --secrets-dir PATH: PATH/<secret-name>/<key>, one file per key, like a mounted Secret
     volume (any namespace);
  3. environment variables IDENTITY_SETTINGS_SECRET_<NAME>_<KEY>: the Secret's name and the key
     upper-cased, '-' and '.' written as '_', e.g. IDENTITY_SETTINGS_SECRET_IDENTITY_ADMIN_CLIENTSECRET
     for key clientSecret of Secret identity-admin (any namespace).

Nothing is written to the identity service. Secret values are never printed: a key whose value
comes from a Secret shows as \"changed\" only.

Exit status: 0 every policy in sync, 2 some setting would change, 1 an error (a policy could not
be compared, a manifest is bad, or DIR holds no policy).";

/// Output formats of `diff`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DiffOutput {
    /// Lines for people: one header per policy, one line per change.
    Text,
    /// One JSON document with every policy's changes and a summary, for pipelines.
    Json,
}

/// Flags of `diff`.
#[derive(Debug, clap::Args)]
#[command(after_help = DIFF_SECRETS_HELP)]
pub struct DiffArgs {
    /// The manifests: a directory (its *.yaml, *.yml and *.json files, by name) or one file.
    /// IdentitySettingPolicy and Secret documents are read; other kinds are ignored.
    #[arg(short = 'f', long = "filename", value_name = "DIR")]
    pub filename: PathBuf,
    /// Also read the directories inside DIR.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// The namespace of manifests that state none.
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// Secrets not in DIR, laid out like mounted Secret volumes: PATH/<secret-name>/<key>.
    #[arg(long, value_name = "PATH")]
    pub secrets_dir: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = DiffOutput::Text)]
    pub output: DiffOutput,
    /// Allow plain http:// identity URLs whose host is a loopback address (127.0.0.0/8, ::1,
    /// localhost), for tests and local development; any other http URL is still refused.
    #[arg(long, default_value_t = false)]
    pub allow_insecure_http: bool,
    /// Timeout of one identity API request.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub identity_timeout: Duration,
    /// An identity server (its base URL) that credentials from --secrets-dir and the
    /// environment may be sent to; repeat it, or list several separated by commas. A policy
    /// whose server (or authenticateUrl) is not listed is not compared when its credentials
    /// come from those sources: in CI, manifests come from a change's author, credentials from
    /// the pipeline. Credentials from Secret manifests in DIR need no listing.
    #[arg(
        long = "allow-server",
        value_name = "URL",
        env = "IDENTITY_SETTINGS_ALLOWED_SERVERS",
        value_delimiter = ','
    )]
    pub allow_servers: Vec<String>,
}

/// Where `export` finds credentials and what it writes, for its `--help`.
const EXPORT_HELP: &str = "\
Credentials are found as `diff` finds them, for the Secret named by --credentials-secret
(default identity-admin): --secrets-dir PATH/<secret-name>/<key>, or environment variables
IDENTITY_SETTINGS_SECRET_<NAME>_<KEY> (e.g. IDENTITY_SETTINGS_SECRET_IDENTITY_ADMIN_CLIENTID and
..._CLIENTSECRET). They are sent only to --server (and --authenticate-url).

The keys read are the catalog's (docs/reference/setting-keys.md) and each --key. Keys the
server holds no value for are left out; stderr says how many. A secret-valued key (such as
Email.Smtp.Password) is exported as a valueFrom reference to a Secret stub whose value is left
empty for you to fill in: export never writes or prints a secret value.

Only GET requests are sent, within Automation Cloud's per-organization limits on its hosts.

Exit status: 0 exported, 1 an error (nothing is written then), 2 a bad command line.";

/// The modes an exported policy can have (`spec.mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportMode {
    /// Report drift, never write (the default: adopt first, enforce later).
    Observe,
    /// List the changes a write would make in status, never write.
    Plan,
    /// Correct drift.
    Enforce,
}

/// Flags of `export`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXPORT_HELP)]
pub struct ExportArgs {
    /// The identity base URL to read, e.g. https://cloud.uipath.com/acme/identity_.
    #[arg(long, value_name = "URL")]
    pub server: String,
    /// The organization (partitionGlobalId) whose settings are read.
    #[arg(long, value_name = "ID")]
    pub partition: String,
    /// A user id, to export that user's settings instead of the organization's.
    #[arg(long, value_name = "ID")]
    pub user: Option<String>,
    /// The credentials Secret: where credentials are looked up, and what the exported policy's
    /// server names.
    #[arg(long, value_name = "NAME", default_value = "identity-admin")]
    pub credentials_secret: String,
    /// The Orchestrator `.../api/account/authenticate` URL, for Password credentials.
    #[arg(long, value_name = "URL")]
    pub authenticate_url: Option<String>,
    /// Credentials laid out like a mounted Secret volume: PATH/<secret-name>/<key>.
    #[arg(long, value_name = "PATH")]
    pub secrets_dir: Option<PathBuf>,
    /// Name a shared server definition (IdentityServer/NAME or ClusterIdentityServer/NAME) in
    /// the exported policies instead of writing the server into each.
    #[arg(long, value_name = "KIND/NAME", value_parser = parse_server_ref)]
    pub server_ref: Option<crate::api::ServerRef>,
    /// Read this key too, besides the catalog's; repeat for more.
    #[arg(long = "key", value_name = "KEY")]
    pub keys: Vec<String>,
    /// The exported policies' mode.
    #[arg(long, value_enum, ignore_case = true, default_value_t = ExportMode::Observe)]
    pub mode: ExportMode,
    /// One policy per group of keys (password-policy, lockout, email, other) instead of one.
    #[arg(long)]
    pub split: bool,
    /// The policy's name (with --split, the prefix of each policy's name).
    #[arg(long, default_value = "identity-settings")]
    pub name: String,
    /// The namespace written into the manifests.
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// Write one file per manifest into DIR (created if missing; existing files are never
    /// overwritten) instead of printing them.
    #[arg(short = 'o', long = "output-dir", value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    /// Allow plain http:// identity URLs whose host is a loopback address (127.0.0.0/8, ::1,
    /// localhost), for tests and local development; any other http URL is still refused.
    #[arg(long, default_value_t = false)]
    pub allow_insecure_http: bool,
    /// Timeout of one identity API request.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub identity_timeout: Duration,
}

/// `IdentityServer/NAME` or `ClusterIdentityServer/NAME` (kinds case-insensitive).
pub fn parse_server_ref(text: &str) -> Result<crate::api::ServerRef, String> {
    use crate::api::{ServerKind, ServerRef};
    let bad =
        || format!("{text:?} is not KIND/NAME with KIND IdentityServer or ClusterIdentityServer");
    let (kind, name) = text.trim().split_once('/').ok_or_else(bad)?;
    let kind = [
        ServerKind::IdentityServer,
        ServerKind::ClusterIdentityServer,
    ]
    .into_iter()
    .find(|k| k.as_str().eq_ignore_ascii_case(kind.trim()))
    .ok_or_else(bad)?;
    let name = name.trim();
    if name.is_empty() || name.contains('/') {
        return Err(bad());
    }
    Ok(ServerRef {
        kind,
        name: name.to_owned(),
    })
}

/// The exit status for a command line clap refused. clap's own (2 for a usage error) is kept,
/// except for `diff`, where 2 means drift: a CI pipeline must not take a typo for drift.
pub fn usage_exit_code(error: &clap::Error, first_arg: Option<&std::ffi::OsStr>) -> u8 {
    match error.exit_code() {
        0 => 0,
        _ if first_arg.is_some_and(|a| a == "diff") => 1,
        code => u8::try_from(code).unwrap_or(2),
    }
}

/// The longest duration any flag takes. Nothing the operator times needs more, and the bound
/// keeps every sum and product of durations far from overflowing.
pub const MAX_DURATION_FLAG: Duration = Duration::from_secs(24 * 3600);

/// A number of requests per second: finite and not negative.
fn non_negative(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && n >= 0.0 => Ok(n),
        _ => Err(format!(
            "{text:?} is not a number of requests per second (0 or more)"
        )),
    }
}

/// A share between 0 and 1.
fn share(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(n) if (0.0..=1.0).contains(&n) => Ok(n),
        _ => Err(format!("{text:?} is not a share between 0 and 1")),
    }
}

/// `READS,WRITES/WINDOW`, e.g. `300,160/5m`.
pub fn parse_window_limits(text: &str) -> Result<WindowLimits, String> {
    let bad = || format!("{text:?} is not READS,WRITES/WINDOW such as 300,160/5m");
    let (counts, window) = text.trim().split_once('/').ok_or_else(bad)?;
    let (reads, writes) = counts.split_once(',').ok_or_else(bad)?;
    let count = |n: &str| n.trim().parse::<u32>().map_err(|_| bad());
    Ok(WindowLimits {
        reads: count(reads)?,
        writes: count(writes)?,
        window: parse_duration(window.trim())?,
    })
}

/// Parses a duration flag (`30s`, `5m`, `1h`, at most 24h), with a message clap shows for a
/// bad one.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    match crate::reconcile::validate::parse_duration(text) {
        Some(d) if d <= MAX_DURATION_FLAG => Ok(d),
        Some(_) => Err(format!("{text:?} is longer than 24h")),
        None => Err(format!("{text:?} is not a duration like 30s, 5m or 1h")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn namespaces_split_on_commas_and_durations_parse() {
        let cli =
            Cli::try_parse_from(["x", "run", "--namespaces", "a,b", "--lease-duration", "2s"])
                .expect("parses");
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        assert_eq!(args.namespaces, ["a", "b"]);
        assert_eq!(args.lease_duration, Duration::from_secs(2));
        assert!(Cli::try_parse_from(["x", "run", "--lease-duration", "2"]).is_err());
        assert!(Cli::try_parse_from(["x", "run", "--concurrency", "0"]).is_err());
    }

    /// One worker thread unless asked: not one per core of the node the pod landed on.
    #[test]
    fn the_operator_runs_on_one_thread_unless_asked() {
        assert_eq!(run_args(&[]).worker_threads, 1);
        assert_eq!(run_args(&["--worker-threads", "4"]).worker_threads, 4);
        for bad in ["0", "65"] {
            assert!(Cli::try_parse_from(["x", "run", "--worker-threads", bad]).is_err());
        }
    }

    #[test]
    fn diff_flags_parse_and_a_bad_diff_command_line_is_an_error_not_drift() {
        let cli = Cli::try_parse_from(["x", "diff", "-f", "dir", "-o", "json", "-n", "ns"])
            .expect("parses");
        let Command::Diff(args) = cli.command else {
            panic!("not diff")
        };
        assert_eq!(args.filename, PathBuf::from("dir"));
        assert_eq!(args.output, DiffOutput::Json);
        assert_eq!(args.namespace, "ns");
        assert!(!args.allow_insecure_http && !args.recursive);
        let err = Cli::try_parse_from(["x", "diff", "--bogus"]).expect_err("unknown flag");
        assert_eq!(usage_exit_code(&err, Some("diff".as_ref())), 1);
        let err = Cli::try_parse_from(["x", "run", "--bogus"]).expect_err("unknown flag");
        assert_eq!(usage_exit_code(&err, Some("run".as_ref())), 2);
        let help = Cli::try_parse_from(["x", "diff", "--help"]).expect_err("help");
        assert_eq!(usage_exit_code(&help, Some("diff".as_ref())), 0);
        assert!(help.to_string().contains("IDENTITY_SETTINGS_SECRET_"));
    }

    #[test]
    fn export_flags_parse_with_modes_as_the_crd_spells_them_and_server_refs_by_kind() {
        use crate::api::ServerKind;
        let cli = Cli::try_parse_from([
            "x",
            "export",
            "--server",
            "https://h/identity_",
            "--partition",
            "p",
            "--mode",
            "Enforce",
            "--server-ref",
            "clusteridentityserver/shared",
            "--key",
            "A.B",
            "--key",
            "C.D",
            "-o",
            "out",
        ])
        .expect("parses");
        let Command::Export(args) = cli.command else {
            panic!("not export")
        };
        assert_eq!(args.mode, ExportMode::Enforce);
        assert_eq!(args.keys, ["A.B", "C.D"]);
        assert_eq!(args.output_dir, Some(PathBuf::from("out")));
        assert_eq!(args.credentials_secret, "identity-admin");
        let reference = args.server_ref.expect("a server ref");
        assert_eq!(
            (reference.kind, reference.name.as_str()),
            (ServerKind::ClusterIdentityServer, "shared")
        );
        for bad in [
            "shared",
            "Secret/x",
            "IdentityServer/",
            "IdentityServer/a/b",
        ] {
            assert!(parse_server_ref(bad).is_err(), "{bad}");
        }
        let defaults = Cli::try_parse_from(["x", "export", "--server", "u", "--partition", "p"])
            .expect("parses");
        let Command::Export(args) = defaults.command else {
            panic!("not export")
        };
        assert_eq!(args.mode, ExportMode::Observe);
        assert!(!args.split && args.output_dir.is_none());
    }

    fn run_args(extra: &[&str]) -> RunArgs {
        let cli = Cli::try_parse_from(["x", "run"].iter().chain(extra)).expect("parses");
        match cli.command {
            Command::Run(args) => *args,
            _ => panic!("not run"),
        }
    }

    #[test]
    fn absurd_durations_are_refused_by_name_and_nothing_panics() {
        // Half the largest Duration (doubling it overflowed), and just over the bound.
        for huge in ["3000000000000000h", "25h", "1441m"] {
            for flag in [
                "--lease-duration",
                "--lease-renew-interval",
                "--identity-timeout",
                "--backoff-min",
                "--backoff-max",
            ] {
                let err = Cli::try_parse_from(["x", "run", flag, huge])
                    .expect_err("over a day is refused")
                    .to_string();
                assert!(err.contains(flag) && err.contains("24h"), "{err}");
            }
        }
        assert!(
            run_args(&["--lease-renew-interval", "24h"])
                .check()
                .is_err()
        );
        assert_eq!(MAX_DURATION_FLAG, Duration::from_secs(24 * 3600));
    }

    #[test]
    fn automation_cloud_limits_default_to_half_the_published_ones() {
        use crate::controller::clients::{
            AUTOMATION_CLOUD_HOSTS, AUTOMATION_CLOUD_LIMITS, AUTOMATION_CLOUD_SHARE,
        };
        let args = run_args(&[]);
        assert_eq!(args.automation_cloud_limits, AUTOMATION_CLOUD_LIMITS);
        assert_eq!(args.automation_cloud_share, AUTOMATION_CLOUD_SHARE);
        assert_eq!(args.automation_cloud_hosts, AUTOMATION_CLOUD_HOSTS);
        for bad in [
            &["--automation-cloud-share", "1.5"][..],
            &["--automation-cloud-limits", "300/5m"],
            &["--automation-cloud-limits", "300,160"],
            &["--automation-cloud-limits", "a,b/5m"],
        ] {
            assert!(
                Cli::try_parse_from(["x", "run"].iter().chain(bad)).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn flags_that_contradict_each_other_are_refused() {
        assert_eq!(run_args(&[]).check(), Ok(()));
        let bad = [
            &["--backoff-min", "0s"][..],
            &["--backoff-min", "10m", "--backoff-max", "1m"],
            &["--lease-duration", "1500ms"],
            &["--lease-duration", "10s", "--lease-renew-interval", "6s"],
            &["--identity-timeout", "0s"],
        ];
        for flags in bad {
            assert!(run_args(flags).check().is_err(), "{flags:?} accepted");
        }
    }
}
