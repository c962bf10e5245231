//! Compares one policy with the identity service: the operator's own pure steps (validate,
//! resolve, plan) around one GET, and never a write.

use crate::api::{IdentitySettingPolicy, PlannedChange, ServerKind, SyncMode};
use crate::controller::clients::IdentityClients;
use crate::identity::client::IdentityClient;
use crate::identity::error::IdentityError;
use crate::identity::redact::Redactor;
use crate::reconcile::plan::{plan, planned_changes};
use crate::reconcile::resolve::{
    ResolveError, Resolved, resolve_from, server_secrets, setting_secrets,
};
use crate::reconcile::server_ref::{FoundServer, referenced};
use crate::reconcile::validate::{ValidPolicy, validate_with};
use std::collections::BTreeSet;

use super::load::{Manifests, ObjectKey};
use super::sources::{SecretSources, SourceError, env_var};

/// What comparing one policy found.
#[derive(Debug)]
pub struct PolicyDiff {
    /// The policy's namespace and name.
    pub key: ObjectKey,
    /// The identity base URL, as the policy gives it (without any password in it).
    pub server: String,
    /// The organization.
    pub partition_global_id: String,
    /// The user, for user-level settings.
    pub user_id: Option<String>,
    /// How many settings the policy manages.
    pub settings: usize,
    /// What the reader should know besides the changes (suspension, observe mode).
    pub notes: Vec<String>,
    /// The changes a sync would make, or why the policy could not be compared (redacted).
    pub result: Result<Vec<PlannedChange>, String>,
}

/// Why one policy could not be compared. Messages name Secrets and keys, never values.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The spec does not pass the operator's checks.
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    /// A referenced Secret is in no source.
    #[error(
        "Secret {name:?} not found: add its manifest to the -f directory (namespace {namespace:?}), \
         {dir_hint}, or set {env_hint}"
    )]
    SecretNotFound {
        /// The Secret's name.
        name: String,
        /// The policy's namespace.
        namespace: String,
        /// Where in `--secrets-dir` it would be.
        dir_hint: String,
        /// Which environment variables would hold it.
        env_hint: String,
    },
    /// A Secret source could not be read.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The Secrets do not hold what the policy needs.
    #[error(transparent)]
    Resolve(ResolveError),
    /// The policy's server is not one the pipeline's credentials may be sent to.
    #[error(
        "{url} is not among the servers the credentials from --secrets-dir and the environment may be sent to; add --allow-server {url} if it is yours (diff does not send those credentials to a server a manifest names unless it is listed)"
    )]
    ServerNotAllowed {
        /// The refused URL (without any password).
        url: String,
    },
    /// The identity service could not be read.
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

/// Compares `policy` with its identity service. Suspension is ignored (and noted): a preview
/// shows what the operator would do once the policy resumes.
pub async fn check(
    key: ObjectKey,
    policy: &IdentitySettingPolicy,
    servers: &Manifests,
    allowed: &AllowedServers,
    sources: &SecretSources,
    clients: &IdentityClients,
) -> PolicyDiff {
    let spec = &policy.spec;
    let namespace = key.0.clone();
    let found = spec.server_ref.as_ref().and_then(|r| match r.kind {
        ServerKind::IdentityServer => servers
            .servers
            .get(&(namespace.clone(), r.name.clone()))
            .map(FoundServer::Namespaced),
        ServerKind::ClusterIdentityServer => servers
            .cluster_servers
            .get(&(String::new(), r.name.clone()))
            .map(FoundServer::Cluster),
    });
    let server = match (&spec.server, found, &spec.server_ref) {
        (Some(server), _, _) => shown_url(&server.url),
        (None, Some(FoundServer::Namespaced(s)), _) => shown_url(&s.spec.connection.url),
        (None, Some(FoundServer::Cluster(s)), _) => shown_url(&s.spec.connection.url),
        (None, None, Some(r)) => format!("{} {}", r.kind.as_str(), r.name),
        (None, None, None) => String::new(),
    };
    let mut out = PolicyDiff {
        server,
        partition_global_id: spec.partition_global_id.clone(),
        user_id: spec.user_id.clone().filter(|u| !u.is_empty()),
        settings: spec.settings.len(),
        notes: Vec::new(),
        result: Ok(Vec::new()),
        key,
    };
    let referenced = match spec.server_ref.as_ref().filter(|_| spec.server.is_none()) {
        // Namespace labels are not in the manifests: a selector sees a namespace without any.
        Some(r) => match referenced(
            &namespace,
            &crate::reconcile::validate::setting_scope(spec),
            r,
            found,
            Some(&Default::default()),
        ) {
            Ok(server) => Some(server),
            Err(e) => {
                out.result = Err(format!(
                    "{e} (server definitions are read from the -f directory too)"
                ));
                return out;
            }
        },
        None => None,
    };
    let valid = match validate_with(spec, referenced) {
        Ok(valid) => valid,
        Err(problems) => {
            out.result = Err(CheckError::InvalidSpec(problems).to_string());
            return out;
        }
    };
    if let Some(suspension) = valid.suspended_at(jiff::Timestamp::now()) {
        out.notes
            .push(format!("{}; compared anyway", suspension.message()));
    }
    if valid.mode == SyncMode::Observe {
        out.notes.push(
            "mode Observe: the operator reports these differences but never writes them".into(),
        );
    }
    let mut redactor = Redactor::default();
    out.result = changes(&out.key.0, &valid, allowed, sources, clients, &mut redactor)
        .await
        .map_err(|e| redactor.redact(&e.to_string()));
    out
}

/// The planned changes; fills `redactor` with every secret value read.
async fn changes(
    namespace: &str,
    valid: &ValidPolicy,
    allowed: &AllowedServers,
    sources: &SecretSources,
    clients: &IdentityClients,
    redactor: &mut Redactor,
) -> Result<Vec<PlannedChange>, CheckError> {
    let (client, resolved) = connect(namespace, valid, allowed, sources, clients, redactor).await?;
    let keys: Vec<String> = resolved.desired.iter().map(|d| d.key.clone()).collect();
    let actual = client.get_settings(&valid.scope, &keys).await?;
    let plan = plan(&resolved.desired, &actual, &valid.scope);
    Ok(planned_changes(
        &plan,
        |k| valid.is_secret(k),
        |v| redactor.redact(v),
    ))
}

/// A client for `valid` (a policy in `namespace`) with the credentials and setting values
/// its Secrets hold in `sources`, as `diff` and `export` take them: credentials from the
/// pipeline (not a Secret manifest in the directory) go only to servers `allowed` lists.
/// Makes no request; fills `redactor` with every secret value read.
pub async fn connect(
    namespace: &str,
    valid: &ValidPolicy,
    allowed: &AllowedServers,
    sources: &SecretSources,
    clients: &IdentityClients,
    redactor: &mut Redactor,
) -> Result<(IdentityClient, Resolved), CheckError> {
    let server_namespace = valid
        .server_secrets_namespace
        .as_deref()
        .unwrap_or(namespace);
    let server = sources.secrets_named(server_namespace, valid, server_secrets(valid))?;
    let settings = sources.secrets_named(namespace, valid, setting_secrets(valid))?;
    let resolved = resolve_from(valid, &server, &settings).map_err(|e| match e {
        ResolveError::SecretNotFound {
            name,
            namespace: elsewhere,
        } => not_found(elsewhere.as_deref().unwrap_or(namespace), name, sources),
        other => CheckError::Resolve(other),
    })?;
    // Credentials the pipeline supplied (not a Secret manifest of the change itself) go only
    // to the servers it allows.
    let from_pipeline = server
        .keys()
        .any(|name| !sources.in_manifests(server_namespace, name));
    if from_pipeline {
        for url in std::iter::once(&valid.base_url).chain(valid.authenticate_url.as_ref()) {
            if !allowed.allows(url) {
                return Err(CheckError::ServerNotAllowed {
                    url: shown_url(url),
                });
            }
        }
    }
    let client = clients.client_for(valid, &resolved, redactor).await?;
    Ok((client, resolved))
}

/// The error for a Secret in no source, saying where it could be put.
fn not_found(namespace: &str, name: String, sources: &SecretSources) -> CheckError {
    let dir_hint = match sources.secrets_dir() {
        Some(dir) => format!(
            "a directory {} with one file per key",
            dir.join(&name).display()
        ),
        None => format!(
            "pass --secrets-dir PATH with a directory PATH/{name}/ holding one file per key"
        ),
    };
    // env_var(name, "") ends in the `_` before the key.
    let env_hint = format!("{}<KEY> for each key", env_var(&name, ""));
    CheckError::SecretNotFound {
        namespace: namespace.to_owned(),
        name,
        dir_hint,
        env_hint,
    }
}

/// The servers `diff --allow-server` lists: the only ones that the pipeline's credentials
/// (from `--secrets-dir` and the environment) are sent to. URLs compare as one server does
/// (see [`crate::identity::urls::server_identity`]).
#[derive(Clone, Debug, Default)]
pub struct AllowedServers(BTreeSet<String>);

impl AllowedServers {
    /// The listed URLs; empty entries are ignored.
    pub fn new<'a>(urls: impl IntoIterator<Item = &'a String>) -> Self {
        Self(
            urls.into_iter()
                .map(|u| u.trim())
                .filter(|u| !u.is_empty())
                .map(crate::identity::urls::server_identity)
                .collect(),
        )
    }

    /// Whether `url` is one of the listed servers.
    pub fn allows(&self, url: &str) -> bool {
        self.0
            .contains(&crate::identity::urls::server_identity(url))
    }
}

/// The URL as given, unless it holds a password (then without it).
pub fn shown_url(raw: &str) -> String {
    match url::Url::parse(raw.trim()) {
        Ok(u) if u.password().is_some() => crate::identity::urls::display_safe(raw),
        _ => raw.trim().to_owned(),
    }
}
