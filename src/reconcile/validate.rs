//! Turns a policy's spec into checked plain data, or says exactly what to fix.
//!
//! The CRD schema refuses most bad input at `kubectl apply`, but not everything can be written as
//! a schema (and a policy may predate a schema change), so the controller checks again here and
//! reports `InvalidSpec` with a message naming the field.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::api::{
    AuthMethod, IdentitySettingPolicySpec, SecretKeyRef, ServerBudget, ServerKind, ServerSpec,
    SyncMode,
};
use crate::identity::types::SettingScope;

/// Settings whose value is a secret: they must come from a Secret, never from the spec.
pub const SECRET_SETTING_KEYS: &[&str] = &["Email.Smtp.Password"];

/// The resync interval when a policy does not set one.
pub const DEFAULT_RESYNC: Duration = Duration::from_secs(600);
/// The most settings one policy may hold (the CRD's `maxItems`): keeps a policy's reads and
/// writes, and the CEL cost of its rules, bounded.
pub const MAX_SETTINGS: usize = 256;
/// The shortest resync interval accepted, so a typo cannot hammer the identity service.
pub const MIN_RESYNC: Duration = Duration::from_secs(10);
/// The longest resync interval accepted: drift should be found within a day.
pub const MAX_RESYNC: Duration = Duration::from_secs(24 * 3600);

/// The organization (and user) a spec manages, as the identity API names it.
pub fn setting_scope(spec: &IdentitySettingPolicySpec) -> SettingScope {
    SettingScope {
        partition_global_id: spec.partition_global_id.trim().to_owned(),
        user_id: spec.user_id.clone().filter(|u| !u.is_empty()),
    }
}

/// A policy that passed every check, as plain data.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidPolicy {
    /// The identity base URL as given.
    pub base_url: String,
    /// The organization and optional user.
    pub scope: SettingScope,
    /// The credentials Secret's name.
    pub credentials_secret: String,
    /// The auth method, if stated; otherwise inferred from the Secret.
    pub auth: Option<AuthMethod>,
    /// OAuth scopes for client credentials (empty: the client's default).
    pub scopes: Vec<String>,
    /// The ROPC URL, for `Password`.
    pub authenticate_url: Option<String>,
    /// An extra CA bundle.
    pub ca: Option<SecretKeyRef>,
    /// Where the credentials and CA Secrets are: `None` for the policy's namespace (an inline
    /// server or an `IdentityServer`), a `ClusterIdentityServer`'s `secretNamespace` otherwise.
    pub server_secrets_namespace: Option<String>,
    /// The request budget the server definition asks for (inline servers: none).
    pub budget: ServerBudget,
    /// The settings in spec order.
    pub settings: Vec<DesiredSetting>,
    /// How often to check for drift.
    pub resync: Duration,
    /// Enforce or observe.
    pub mode: SyncMode,
    /// Whether (and until when) reads and writes are suspended.
    pub suspension: Option<Suspension>,
}

/// A policy's suspension, as its spec asks for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Suspension {
    /// `suspend: true` without `suspendUntil`: until `suspend` is set back to `false`.
    UntilResumed,
    /// `suspendUntil`: until that time.
    Until(jiff::Timestamp),
}

impl ValidPolicy {
    /// The same policy without the settings whose keys are in `keys` (exact spelling): what
    /// it may write while other policies own those keys.
    pub fn without(&self, keys: &[String]) -> ValidPolicy {
        ValidPolicy {
            settings: self
                .settings
                .iter()
                .filter(|s| !keys.contains(&s.key))
                .cloned()
                .collect(),
            ..self.clone()
        }
    }

    /// Whether `key`'s values are secret: taken from a Secret, or a known secret setting. Such
    /// values are never shown, in status or by the `diff` command.
    pub fn is_secret(&self, key: &str) -> bool {
        SECRET_SETTING_KEYS
            .iter()
            .any(|k| k.eq_ignore_ascii_case(key))
            || self.settings.iter().any(|s| {
                s.key.eq_ignore_ascii_case(key) && matches!(s.source, ValueOrigin::Secret(_))
            })
    }

    /// The suspension in force at `now`, if any: an indefinite one, or one whose time has not
    /// come yet.
    pub fn suspended_at(&self, now: jiff::Timestamp) -> Option<Suspension> {
        match self.suspension? {
            Suspension::Until(until) if until <= now => None,
            suspension => Some(suspension),
        }
    }
}

impl Suspension {
    /// What the `Ready` condition says about it.
    pub fn message(&self) -> String {
        match self {
            Suspension::UntilResumed => "suspended (spec.suspend is true): nothing is read or \
                written until it is set to false"
                .to_owned(),
            Suspension::Until(until) => format!(
                "suspended until {until} (spec.suspendUntil): nothing is read or written until \
                 then; the policy resumes by itself"
            ),
        }
    }
}

/// One desired setting before its value is resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredSetting {
    /// The key.
    pub key: String,
    /// Where its value comes from.
    pub source: ValueOrigin,
}

/// A literal value or a Secret key.
#[derive(Clone, PartialEq)]
pub enum ValueOrigin {
    /// Written in the policy (never a secret setting).
    Literal(String),
    /// Read from a Secret at reconcile time.
    Secret(SecretKeyRef),
}

/// A literal value may still be sensitive to someone; keep it out of logs anyway.
impl std::fmt::Debug for ValueOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ValueOrigin::Literal(_) => f.write_str("Literal(..)"),
            ValueOrigin::Secret(r) => write!(f, "Secret({}/{})", r.name, r.key),
        }
    }
}

/// The server definition a policy's `spec.serverRef` names, as found.
#[derive(Clone, Copy, Debug)]
pub struct ReferencedServer<'a> {
    /// Its kind.
    pub kind: ServerKind,
    /// Its name.
    pub name: &'a str,
    /// Its URL, credentials and CA.
    pub connection: &'a ServerSpec,
    /// A `ClusterIdentityServer`'s `secretNamespace`; `None` for an `IdentityServer`.
    pub secrets_namespace: Option<&'a str>,
    /// Its request budget.
    pub budget: ServerBudget,
}

/// Checks a spec whose server is written inline (`spec.server`); the error lists every
/// problem found, each naming its field.
pub fn validate(spec: &IdentitySettingPolicySpec) -> Result<ValidPolicy, String> {
    validate_with(spec, None)
}

/// Checks a spec with the server its `spec.serverRef` names (`referenced`, found by the
/// caller), or its inline `spec.server` when `referenced` is `None`.
pub fn validate_with(
    spec: &IdentitySettingPolicySpec,
    referenced: Option<ReferencedServer<'_>>,
) -> Result<ValidPolicy, String> {
    let oversized = oversized_fields(spec, referenced.as_ref().map(|r| r.connection));
    if !oversized.is_empty() {
        // Nothing is copied, parsed or built from a policy this large.
        return Err(oversized.join("; "));
    }
    let mut problems = Vec::new();
    let (server, field, secrets_namespace, budget) =
        match (&spec.server, &spec.server_ref, referenced) {
            (Some(_), Some(_), _) => {
                problems.push("spec: set exactly one of server and serverRef, not both".to_owned());
                (None, String::new(), None, ServerBudget::default())
            }
            (Some(server), None, _) => (
                Some(&**server),
                "spec.server".to_owned(),
                None,
                ServerBudget::default(),
            ),
            (None, Some(_), Some(r)) => (
                Some(r.connection),
                format!("{} {:?}: spec", r.kind.as_str(), r.name),
                r.secrets_namespace.map(str::to_owned),
                r.budget,
            ),
            (None, Some(r), None) => {
                problems.push(format!(
                    "spec.serverRef: {} {:?} was not looked up",
                    r.kind.as_str(),
                    r.name
                ));
                (None, String::new(), None, ServerBudget::default())
            }
            (None, None, _) => {
                problems.push(
                    "spec: set server (the identity service) or serverRef (an IdentityServer \
                     or ClusterIdentityServer)"
                        .to_owned(),
                );
                (None, String::new(), None, ServerBudget::default())
            }
        };
    if let Some(server) = server {
        check_server(server, &field, &mut problems);
    }
    if spec.partition_global_id.trim().is_empty() {
        problems.push("spec.partitionGlobalId: must not be empty".to_owned());
    }
    let settings = check_settings(spec, &mut problems);
    let resync = check_resync(spec.resync_interval.as_deref(), &mut problems);
    let suspension = check_suspension(spec, &mut problems);
    let Some(server) = server.filter(|_| problems.is_empty()) else {
        return Err(problems.join("; "));
    };
    Ok(ValidPolicy {
        base_url: server.url.trim().to_owned(),
        scope: setting_scope(spec),
        credentials_secret: server.credentials_secret_ref.name.clone(),
        auth: server.auth,
        scopes: server.scopes.clone().unwrap_or_default(),
        authenticate_url: server.authenticate_url.clone(),
        ca: server.ca_secret_ref.as_deref().cloned(),
        server_secrets_namespace: secrets_namespace,
        budget,
        settings,
        resync,
        mode: spec.mode(),
        suspension,
    })
}

fn check_suspension(
    spec: &IdentitySettingPolicySpec,
    problems: &mut Vec<String>,
) -> Option<Suspension> {
    match spec.suspend_until.as_deref().map(str::trim) {
        Some(text) => match text.parse::<jiff::Timestamp>() {
            Ok(until) => Some(Suspension::Until(until)),
            Err(_) => {
                problems.push(format!(
                    "spec.suspendUntil: {text:?} is not an RFC 3339 time like \
                     2026-11-28T06:00:00Z"
                ));
                None
            }
        },
        None => (spec.suspend == Some(true)).then_some(Suspension::UntilResumed),
    }
}

/// Checks a server definition; `field` names where it is written (`spec.server`, or
/// `IdentityServer "acme": spec`).
/// The most size problems one message lists (a policy may have hundreds).
const MAX_SIZE_PROBLEMS: usize = 5;

/// Every field longer than its limit in [`crate::api::limits`] (the CRD's `maxLength`s), by
/// path and length, never by value: the first check, so that an object stored past the
/// schema cannot make the operator allocate in proportion to it.
pub fn oversized_fields(
    spec: &IdentitySettingPolicySpec,
    referenced: Option<&ServerSpec>,
) -> Vec<String> {
    use crate::api::limits::*;
    let mut problems = Vec::new();
    let mut count = 0usize;
    let mut check = |field: &dyn Fn() -> String, len: usize, max: usize| {
        if len > max {
            count += 1;
            if problems.len() < MAX_SIZE_PROBLEMS {
                problems.push(format!(
                    "{}: {len} characters, at most {max} are allowed",
                    field()
                ));
            }
        }
    };
    check(
        &|| "spec.partitionGlobalId".into(),
        spec.partition_global_id.len(),
        MAX_PARTITION,
    );
    if let Some(user) = &spec.user_id {
        check(&|| "spec.userId".into(), user.len(), MAX_USER_ID);
    }
    for text in [&spec.resync_interval, &spec.suspend_until]
        .into_iter()
        .flatten()
    {
        check(
            &|| "spec.resyncInterval/suspendUntil".into(),
            text.len(),
            MAX_TIME_TEXT,
        );
    }
    for server in [spec.server.as_deref(), referenced].into_iter().flatten() {
        check(&|| "server.url".into(), server.url.len(), MAX_URL);
        if let Some(a) = &server.authenticate_url {
            check(&|| "server.authenticateUrl".into(), a.len(), MAX_URL);
        }
        check(
            &|| "server.credentialsSecretRef.name".into(),
            server.credentials_secret_ref.name.len(),
            MAX_NAME,
        );
        if let Some(ca) = &server.ca_secret_ref {
            check(
                &|| "server.caSecretRef.name".into(),
                ca.name.len(),
                MAX_NAME,
            );
            check(
                &|| "server.caSecretRef.key".into(),
                ca.key.len(),
                MAX_SECRET_KEY,
            );
        }
        let scopes = server.scopes.as_deref().unwrap_or_default();
        check(&|| "server.scopes (items)".into(), scopes.len(), MAX_SCOPES);
        for scope in scopes.iter().take(MAX_SCOPES + 1) {
            check(&|| "server.scopes[]".into(), scope.len(), MAX_SCOPE);
        }
    }
    let mut values = 0usize;
    for (i, setting) in spec.settings.iter().enumerate().take(MAX_SETTINGS + 1) {
        check(
            &|| format!("spec.settings[{i}].key"),
            setting.key.len(),
            MAX_KEY,
        );
        if let Some(value) = &setting.value {
            check(
                &|| format!("spec.settings[{i}].value"),
                value.len(),
                MAX_VALUE,
            );
            values = values.saturating_add(value.len());
        }
        if let Some(from) = &setting.value_from {
            let r = &from.secret_key_ref;
            check(
                &|| format!("spec.settings[{i}].valueFrom.secretKeyRef.name"),
                r.name.len(),
                MAX_NAME,
            );
            check(
                &|| format!("spec.settings[{i}].valueFrom.secretKeyRef.key"),
                r.key.len(),
                MAX_SECRET_KEY,
            );
        }
    }
    check(
        &|| "spec.settings (all literal values together)".into(),
        values,
        MAX_VALUES_TOTAL,
    );
    if spec.settings.len() > MAX_SETTINGS {
        count += 1;
        problems.push(format!(
            "spec.settings: {} settings, at most {MAX_SETTINGS} (split the policy in two)",
            spec.settings.len()
        ));
    }
    if count > problems.len() {
        problems.push(format!(
            "and {} more fields over their limits",
            count - problems.len()
        ));
    }
    problems
}

fn check_server(server: &ServerSpec, field: &str, problems: &mut Vec<String>) {
    match url::Url::parse(server.url.trim()) {
        Ok(u) if u.scheme() == "https" || u.scheme() == "http" => {}
        Ok(u) => problems.push(format!("{field}.url: scheme {:?} is not https", u.scheme())),
        Err(e) => problems.push(format!("{field}.url: not a URL ({e})")),
    }
    if server.credentials_secret_ref.name.is_empty() {
        problems.push(format!(
            "{field}.credentialsSecretRef.name: must not be empty"
        ));
    }
    if server.auth == Some(AuthMethod::Password) && server.authenticate_url.is_none() {
        problems.push(format!(
            "{field}.authenticateUrl: required when auth is Password (the Orchestrator's \
             .../api/account/authenticate URL)"
        ));
    }
    if let Some(a) = &server.authenticate_url
        && url::Url::parse(a).is_err()
    {
        problems.push(format!("{field}.authenticateUrl: not a URL"));
    }
    let scopes = server.scopes.as_deref().unwrap_or_default();
    if scopes
        .iter()
        .any(|s| s.trim().is_empty() || s.contains(' '))
    {
        problems.push(format!(
            "{field}.scopes: each scope must be one non-empty word"
        ));
    }
}

/// A server definition checked on its own (to check its credentials): a policy with its
/// server and no settings. `secrets_namespace`: a `ClusterIdentityServer`'s.
pub fn validate_server(
    server: &ServerSpec,
    secrets_namespace: Option<&str>,
    budget: ServerBudget,
) -> Result<ValidPolicy, String> {
    let mut problems = Vec::new();
    check_server(server, "spec", &mut problems);
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    Ok(ValidPolicy {
        base_url: server.url.trim().to_owned(),
        scope: SettingScope::organization(""),
        credentials_secret: server.credentials_secret_ref.name.clone(),
        auth: server.auth,
        scopes: server.scopes.clone().unwrap_or_default(),
        authenticate_url: server.authenticate_url.clone(),
        ca: server.ca_secret_ref.as_deref().cloned(),
        server_secrets_namespace: secrets_namespace.map(str::to_owned),
        budget,
        settings: Vec::new(),
        resync: DEFAULT_RESYNC,
        mode: SyncMode::Enforce,
        suspension: None,
    })
}

/// The resync interval a spec asks for (the default when it asks for none or a bad one): what
/// the work queue needs, whether or not the rest of the spec is valid.
pub fn resync_interval(spec: &IdentitySettingPolicySpec) -> Duration {
    check_resync(spec.resync_interval.as_deref(), &mut Vec::new())
}

fn check_settings(
    spec: &IdentitySettingPolicySpec,
    problems: &mut Vec<String>,
) -> Vec<DesiredSetting> {
    if spec.settings.is_empty() {
        problems.push("spec.settings: list at least one setting".to_owned());
    }
    let mut seen = BTreeSet::new();
    let mut settings = Vec::with_capacity(spec.settings.len());
    for (i, s) in spec.settings.iter().enumerate() {
        let field = format!("spec.settings[{i}]");
        if s.key.trim().is_empty() {
            problems.push(format!("{field}.key: must not be empty"));
            continue;
        }
        // Keys compare case-insensitively, as the identity service's database does.
        if !seen.insert(s.key.to_ascii_lowercase()) {
            problems.push(format!(
                "{field}.key: {:?} is listed twice (keys are compared case-insensitively)",
                s.key
            ));
        }
        let source = match (&s.value, &s.value_from) {
            (Some(_), Some(_)) | (None, None) => {
                problems.push(format!(
                    "{field} ({}): set exactly one of value and valueFrom",
                    s.key
                ));
                continue;
            }
            (Some(_), None)
                if SECRET_SETTING_KEYS
                    .iter()
                    .any(|k| k.eq_ignore_ascii_case(&s.key)) =>
            {
                problems.push(format!(
                    "{field} ({}): is a secret; move it to a Secret and use valueFrom.secretKeyRef",
                    s.key
                ));
                continue;
            }
            (Some(v), None) => ValueOrigin::Literal(v.clone()),
            (None, Some(from)) => ValueOrigin::Secret(from.secret_key_ref.clone()),
        };
        settings.push(DesiredSetting {
            key: s.key.to_string(),
            source,
        });
    }
    settings
}

fn check_resync(text: Option<&str>, problems: &mut Vec<String>) -> Duration {
    let Some(text) = text else {
        return DEFAULT_RESYNC;
    };
    match parse_duration(text) {
        Some(d) if (MIN_RESYNC..=MAX_RESYNC).contains(&d) => d,
        Some(_) => {
            problems.push(format!(
                "spec.resyncInterval: {text:?} is not between 10s and 24h"
            ));
            DEFAULT_RESYNC
        }
        None => {
            problems.push(format!(
                "spec.resyncInterval: {text:?} is not a duration like 30s, 10m or 1h"
            ));
            DEFAULT_RESYNC
        }
    }
}

/// Parses Go-style durations made of `<number><unit>` parts (`ms`, `s`, `m`, `h`): `1h30m`, `45s`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (0.001, 2)
        } else if rest.starts_with('s') {
            (1.0, 1)
        } else if rest.starts_with('m') {
            (60.0, 1)
        } else if rest.starts_with('h') {
            (3600.0, 1)
        } else {
            return None;
        };
        total += number * unit;
        rest = &rest[len..];
    }
    Duration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ServerSpec, SettingSpec, ValueSource};

    fn spec() -> IdentitySettingPolicySpec {
        IdentitySettingPolicySpec {
            server: Some(Box::new(ServerSpec::for_tests(
                "https://cloud.example.com/acme/identity_",
                "admin",
            ))),
            server_ref: None,
            partition_global_id: "magic-7".into(),
            user_id: None,
            settings: vec![SettingSpec {
                key: "Auth.UserLockOut.IsEnabled".into(),
                value: Some("false".into()),
                value_from: None,
            }],
            resync_interval: None,
            mode: None,
            deletion_policy: None,
            suspend: None,
            suspend_until: None,
        }
    }

    #[test]
    fn an_oversized_policy_is_refused_by_field_and_length_without_its_content() {
        let mut huge = spec();
        huge.partition_global_id = "P".repeat(300_000);
        huge.settings = (0..300)
            .map(|i| SettingSpec {
                key: format!("Custom.{}{i}", "K".repeat(200)).into(),
                value: Some("v".repeat(5000)),
                value_from: None,
            })
            .collect();
        let message = validate(&huge).expect_err("oversized");
        assert!(
            message.starts_with("spec.partitionGlobalId: 300000 characters, at most 128"),
            "{message}"
        );
        assert!(
            message.contains("more fields over their limits"),
            "{message}"
        );
        assert!(message.contains("300 settings, at most 256"), "{message}");
        assert!(message.len() < 1024, "{} bytes", message.len());
        assert!(!message.contains("PPPP") && !message.contains("vvvv"));
    }

    #[test]
    fn the_smtp_password_is_a_secret_in_any_case() {
        let mut s = spec();
        s.settings = vec![SettingSpec {
            key: "email.smtp.PASSWORD".into(),
            value: Some("hunter2".into()),
            value_from: None,
        }];
        let message = validate(&s).expect_err("a literal secret");
        assert!(message.contains("is a secret"), "{message}");
        assert!(!message.contains("hunter2"));
    }

    #[test]
    fn suspension_lasts_until_resumed_or_until_its_time() {
        let now: jiff::Timestamp = "2026-11-27T12:00:00Z".parse().expect("time");
        assert_eq!(validate(&spec()).expect("valid").suspended_at(now), None);

        let mut s = spec();
        s.suspend = Some(true);
        let v = validate(&s).expect("valid");
        assert_eq!(v.suspended_at(now), Some(Suspension::UntilResumed));
        assert!(
            v.suspension
                .expect("suspended")
                .message()
                .contains("spec.suspend")
        );

        s.suspend_until = Some("2026-11-27T13:00:00+01:00".into());
        let v = validate(&s).expect("valid");
        assert_eq!(
            v.suspended_at(now),
            None,
            "13:00+01:00 is now: resumed by itself"
        );
        s.suspend = None;
        s.suspend_until = Some("2026-11-27T12:30:00Z".into());
        let v = validate(&s).expect("valid");
        let until = v.suspended_at(now).expect("suspended");
        assert!(
            until.message().contains("2026-11-27T12:30:00Z"),
            "{}",
            until.message()
        );
        assert_eq!(
            v.suspended_at("2026-11-27T12:30:00Z".parse().expect("t")),
            None
        );

        s.suspend_until = Some("tomorrow".into());
        let problem = validate(&s).expect_err("refused");
        assert!(problem.contains("spec.suspendUntil"), "{problem}");
    }

    #[test]
    fn a_plain_policy_is_valid_with_defaults() {
        let v = validate(&spec()).expect("valid");
        assert_eq!(v.resync, DEFAULT_RESYNC);
        assert_eq!(v.mode, SyncMode::Enforce);
        assert_eq!(v.scope, SettingScope::organization("magic-7"));
        assert_eq!(v.settings[0].source, ValueOrigin::Literal("false".into()));
    }

    #[test]
    fn keys_that_differ_only_in_case_are_one_key() {
        // The identity service compares keys case-insensitively (SQL collation): two such keys
        // would fight over one row.
        let mut s = spec();
        s.settings.push(SettingSpec {
            key: "auth.userlockout.isenabled".into(),
            value: Some("true".into()),
            value_from: None,
        });
        let problems = validate(&s).expect_err("one key twice");
        assert!(
            problems
                .contains("spec.settings[1].key: \"auth.userlockout.isenabled\" is listed twice"),
            "{problems}"
        );
    }

    #[test]
    fn more_settings_than_the_schema_allows_are_refused() {
        let with = |count: usize| IdentitySettingPolicySpec {
            settings: (0..count)
                .map(|i| SettingSpec {
                    key: format!("Custom.Key{i}").into(),
                    value: Some("1".into()),
                    value_from: None,
                })
                .collect(),
            ..spec()
        };
        let problems = validate(&with(MAX_SETTINGS + 1)).expect_err("too many");
        assert!(
            problems.contains("spec.settings: 257 settings, at most 256"),
            "{problems}"
        );
        assert!(validate(&with(MAX_SETTINGS)).is_ok());
    }

    #[test]
    fn every_problem_is_named_with_its_field() {
        let mut s = spec();
        s.server.as_mut().expect("inline").url = "ftp://x".into();
        s.settings.push(s.settings[0].clone());
        s.settings.push(SettingSpec {
            key: "Email.Smtp.Password".into(),
            value: Some("pw".into()),
            value_from: None,
        });
        s.settings.push(SettingSpec {
            key: "A.B".into(),
            value: None,
            value_from: None,
        });
        s.resync_interval = Some("5s".into());
        let err = validate(&s).expect_err("invalid");
        assert!(err.contains("spec.server.url"), "{err}");
        assert!(
            err.contains("spec.settings[1].key: \"Auth.UserLockOut.IsEnabled\" is listed twice"),
            "{err}"
        );
        assert!(
            err.contains("spec.settings[2] (Email.Smtp.Password): is a secret"),
            "{err}"
        );
        assert!(
            err.contains("spec.settings[3] (A.B): set exactly one"),
            "{err}"
        );
        assert!(err.contains("spec.resyncInterval"), "{err}");
        assert!(
            !err.contains("pw"),
            "a secret value leaked into the message: {err}"
        );
    }

    #[test]
    fn secret_settings_from_a_secret_are_fine() {
        let mut s = spec();
        s.settings.push(SettingSpec {
            key: "Email.Smtp.Password".into(),
            value: None,
            value_from: Some(Box::new(ValueSource {
                secret_key_ref: SecretKeyRef {
                    name: "smtp".into(),
                    key: "password".into(),
                },
            })),
        });
        let v = validate(&s).expect("valid");
        assert!(matches!(&v.settings[1].source, ValueOrigin::Secret(r) if r.name == "smtp"));
    }

    #[test]
    fn password_auth_needs_its_url() {
        let mut s = spec();
        s.server.as_mut().expect("inline").auth = Some(AuthMethod::Password);
        assert!(
            validate(&s)
                .expect_err("invalid")
                .contains("spec.server.authenticateUrl")
        );
    }

    #[test]
    fn durations_parse_like_kubernetes_ones() {
        assert_eq!(parse_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration(""), None);
        let mut problems = vec![];
        assert_eq!(
            check_resync(Some("5000000000000000h"), &mut problems),
            DEFAULT_RESYNC
        );
        assert_eq!(check_resync(Some("25h"), &mut problems), DEFAULT_RESYNC);
        assert_eq!(check_resync(Some("24h"), &mut problems), MAX_RESYNC);
        assert_eq!(problems.len(), 2, "{problems:?}");
    }
}
