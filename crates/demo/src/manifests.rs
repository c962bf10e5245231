//! Reading `examples/` for the demo: the Secrets and policies a user would `kubectl apply`, and
//! what the stand-ins need from them (credentials the simulator accepts, URLs pointing at it).
//!
//! Pure: files in, plain data out; nothing here talks to a server.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Secret;
use serde::Deserialize;
use serde_json::Value;

use identity_client::types::{SCOPE_SETTING, SCOPE_SETTING_READ};
use identity_settings_operator::api::IdentitySettingPolicy;
use identity_settings_operator::reconcile::resolve::keys;
use identity_simulator::{ClientApp, FixedToken, RopcUser};

/// One document of an examples file.
#[derive(Clone, Debug)]
pub enum Manifest {
    /// A `v1` Secret.
    Secret(Box<Secret>),
    /// An IdentitySettingPolicy.
    Policy(Box<IdentitySettingPolicy>),
}

/// Why the examples could not be read; names the file and document to fix.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The directory or a file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The directory holds no manifests.
    #[error("{path} holds no .yaml or .yml files")]
    Empty {
        /// The directory.
        path: PathBuf,
    },
    /// A document is not valid YAML or not a valid object of its kind.
    #[error("{path}, document {document}: {problem}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based index of the document in the file.
        document: usize,
        /// What is wrong.
        problem: String,
    },
}

/// Reads every `.yaml`/`.yml` file of `dir` in name order, each possibly holding several
/// documents. Only Secrets and IdentitySettingPolicies are accepted; like `kubectl apply`'s
/// strict field validation, a field the type does not know is an error rather than dropped.
pub fn load_dir(dir: &Path) -> Result<Vec<Manifest>, ManifestError> {
    let read_error = |source| ManifestError::Read {
        path: dir.to_owned(),
        source,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read_error)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(ManifestError::Empty {
            path: dir.to_owned(),
        });
    }
    let mut manifests = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).map_err(|source| ManifestError::Read {
            path: path.clone(),
            source,
        })?;
        manifests.extend(parse(&path, &text)?);
    }
    Ok(manifests)
}

/// Parses the documents of one file (`path` only names it in errors).
pub fn parse(path: &Path, text: &str) -> Result<Vec<Manifest>, ManifestError> {
    let mut out = Vec::new();
    for (index, document) in serde_norway::Deserializer::from_str(text).enumerate() {
        let invalid = |problem: String| ManifestError::Invalid {
            path: path.to_owned(),
            document: index + 1,
            problem,
        };
        let yaml =
            serde_norway::Value::deserialize(document).map_err(|e| invalid(e.to_string()))?;
        if yaml.is_null() {
            continue;
        }
        let json = serde_json::to_value(&yaml).map_err(|e| invalid(e.to_string()))?;
        out.push(manifest(json).map_err(invalid)?);
    }
    Ok(out)
}

fn manifest(json: Value) -> Result<Manifest, String> {
    let api_version = json.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = json.get("kind").and_then(Value::as_str).unwrap_or("");
    match (api_version, kind) {
        ("v1", "Secret") => typed::<Secret>(json).map(|s| Manifest::Secret(Box::new(s))),
        ("identitysettings.dev/v1alpha1", "IdentitySettingPolicy") => {
            typed::<IdentitySettingPolicy>(json).map(|p| Manifest::Policy(Box::new(p)))
        }
        _ => Err(format!(
            "{kind:?} of apiVersion {api_version:?}: the demo applies only v1 Secrets and \
             identitysettings.dev/v1alpha1 IdentitySettingPolicies"
        )),
    }
}

/// Deserializes `json` as `T`, refusing fields `T` would silently drop.
fn typed<T: serde::de::DeserializeOwned + serde::Serialize>(json: Value) -> Result<T, String> {
    let object: T = serde_json::from_value(json.clone()).map_err(|e| e.to_string())?;
    let round_trip = serde_json::to_value(&object).map_err(|e| e.to_string())?;
    match unknown_fields(&json, &round_trip, "") {
        unknown if unknown.is_empty() => Ok(object),
        unknown => Err(format!("unknown field(s) {}", unknown.join(", "))),
    }
}

/// Paths present in `given` but lost in `kept`.
fn unknown_fields(given: &Value, kept: &Value, at: &str) -> Vec<String> {
    match (given, kept) {
        (Value::Object(g), Value::Object(k)) => g
            .iter()
            .flat_map(|(name, value)| {
                let path = if at.is_empty() {
                    name.clone()
                } else {
                    format!("{at}.{name}")
                };
                match k.get(name) {
                    Some(kept) => unknown_fields(value, kept, &path),
                    None if value.is_null() => Vec::new(),
                    None => vec![path],
                }
            })
            .collect(),
        (Value::Array(g), Value::Array(k)) => g
            .iter()
            .zip(k)
            .enumerate()
            .flat_map(|(i, (g, k))| unknown_fields(g, k, &format!("{at}[{i}]")))
            .collect(),
        _ => Vec::new(),
    }
}

/// Credentials the simulator must accept so that the examples' Secrets work against it.
#[derive(Default)]
pub struct SimulatorCredentials {
    /// From Secrets with `clientId` and `clientSecret`.
    pub clients: Vec<ClientApp>,
    /// From Secrets with `token`.
    pub bearer_tokens: Vec<FixedToken>,
    /// From Secrets with `username` and `password`.
    pub ropc_users: Vec<RopcUser>,
}

/// The credentials found in `secrets`, in the formats the operator reads (docs/user-guide.md: Credentials
/// Secret keys). Every identity is an administrator with `PM.Setting`.
pub fn simulator_credentials<'a>(
    secrets: impl IntoIterator<Item = &'a Secret>,
) -> SimulatorCredentials {
    let mut out = SimulatorCredentials::default();
    for secret in secrets {
        let data = text_data(secret);
        let get = |key: &str| data.get(key).cloned();
        if let (Some(client_id), Some(client_secret)) =
            (get(keys::CLIENT_ID), get(keys::CLIENT_SECRET))
        {
            out.clients.push(ClientApp {
                client_id,
                client_secret,
                allowed_scopes: vec![SCOPE_SETTING.to_owned(), SCOPE_SETTING_READ.to_owned()],
            });
        }
        if let Some(token) = get(keys::TOKEN) {
            out.bearer_tokens.push(FixedToken {
                token,
                scopes: vec![SCOPE_SETTING.to_owned()],
            });
        }
        if let (Some(username), Some(password)) = (get(keys::USERNAME), get(keys::PASSWORD)) {
            out.ropc_users.push(RopcUser {
                tenancy_name: get(keys::TENANCY_NAME).unwrap_or_else(|| "Default".to_owned()),
                username,
                password,
            });
        }
    }
    out
}

/// A Secret's values as text, `stringData` over `data` as the API server merges them.
fn text_data(secret: &Secret) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = secret
        .data
        .iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), String::from_utf8(v.0.clone()).ok()?)))
        .collect();
    out.extend(
        secret
            .string_data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    out
}

/// Points a policy at the simulator: its identity base URL and, when set, its authenticate URL.
/// Returns the URL the policy named, for the demo to say what it replaced (empty for a policy
/// naming a server definition, which the demo does not use).
pub fn point_at_simulator(
    policy: &mut IdentitySettingPolicy,
    base_url: &str,
    authenticate_url: &str,
) -> String {
    let Some(server) = policy.spec.server.as_mut() else {
        return String::new();
    };
    if server.authenticate_url.is_some() {
        server.authenticate_url = Some(authenticate_url.to_owned());
    }
    std::mem::replace(&mut server.url, base_url.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Vec<Manifest>, ManifestError> {
        parse(Path::new("x.yaml"), text)
    }

    const POLICY: &str = "apiVersion: identitysettings.dev/v1alpha1
kind: IdentitySettingPolicy
metadata: {name: p}
spec:
  server: {url: 'https://h/identity_', credentialsSecretRef: {name: c}}
  partitionGlobalId: org
  settings: [{key: A, value: '1'}]
";

    #[test]
    fn documents_of_both_kinds_are_read_and_empty_ones_skipped() {
        let text = format!(
            "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: c}}\nstringData: {{token: t}}\n---\n{POLICY}---\n"
        );
        let manifests = parse_str(&text).expect("parses");
        assert!(matches!(
            &manifests[..],
            [Manifest::Secret(_), Manifest::Policy(_)]
        ));
    }

    #[test]
    fn a_misspelled_field_is_refused_with_its_path() {
        let text = POLICY.replace(
            "partitionGlobalId: org",
            "partitionGlobalId: org\n  userID: u",
        );
        let e = parse_str(&text).expect_err("refused").to_string();
        assert!(e.contains("x.yaml, document 1"), "{e}");
        assert!(e.contains("spec.userID"), "{e}");
    }

    #[test]
    fn other_kinds_are_refused_by_name() {
        let e = parse_str("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: m}\n")
            .expect_err("refused")
            .to_string();
        assert!(e.contains("\"ConfigMap\""), "{e}");
    }

    #[test]
    fn secrets_become_the_credentials_the_operator_would_read() {
        let manifests = parse_str(
            "apiVersion: v1\nkind: Secret\nmetadata: {name: a}\nstringData: {clientId: i, clientSecret: s}\n---\n\
             apiVersion: v1\nkind: Secret\nmetadata: {name: b}\ndata: {token: dG9r}\n---\n\
             apiVersion: v1\nkind: Secret\nmetadata: {name: c}\nstringData: {username: u, password: p}\n---\n\
             apiVersion: v1\nkind: Secret\nmetadata: {name: d}\nstringData: {password: only}\n",
        )
        .expect("parses");
        let secrets = manifests.iter().filter_map(|m| match m {
            Manifest::Secret(s) => Some(s.as_ref()),
            Manifest::Policy(_) => None,
        });
        let creds = simulator_credentials(secrets);
        assert_eq!(creds.clients.len(), 1);
        assert_eq!(creds.clients[0].client_id, "i");
        assert_eq!(creds.bearer_tokens.len(), 1);
        assert_eq!(creds.bearer_tokens[0].token, "tok");
        assert_eq!(creds.ropc_users.len(), 1);
        assert_eq!(creds.ropc_users[0].tenancy_name, "Default");
    }

    #[test]
    fn pointing_at_the_simulator_replaces_both_urls_and_returns_the_old_one() {
        let Manifest::Policy(mut policy) = parse_str(POLICY).expect("parses").remove(0) else {
            panic!("a policy");
        };
        let old = point_at_simulator(&mut policy, "http://sim/identity_", "http://sim/auth");
        assert_eq!(old, "https://h/identity_");
        let server = policy.spec.server.as_mut().expect("inline");
        assert_eq!(server.url, "http://sim/identity_");
        assert_eq!(server.authenticate_url, None);
        server.authenticate_url = Some("https://h/api/account/authenticate".into());
        point_at_simulator(&mut policy, "http://sim/identity_", "http://sim/auth");
        assert_eq!(
            policy
                .spec
                .server
                .as_ref()
                .and_then(|s| s.authenticate_url.as_deref()),
            Some("http://sim/auth")
        );
    }

    #[test]
    fn the_shipped_examples_load() {
        let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples"));
        let manifests = load_dir(dir).expect("examples/ load");
        let policies = manifests
            .iter()
            .filter(|m| matches!(m, Manifest::Policy(_)))
            .count();
        assert!(policies >= 4, "{policies} policies in examples/");
    }
}
