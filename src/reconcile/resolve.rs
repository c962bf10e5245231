//! Reads credentials and secret-valued settings out of already-fetched Secrets (pure).
//!
//! Fetching is the controller's job; this module only decides what the fetched data means, so
//! every rule about Secret keys is unit-tested without Kubernetes.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::AuthMethod;
use crate::identity::auth::Credentials;
use crate::identity::types::SettingValue;
use crate::reconcile::validate::{ValidPolicy, ValueOrigin};
use crate::secret::SecretString;

/// The data of one Secret: key → decoded bytes.
pub type SecretData = BTreeMap<String, Vec<u8>>;

/// Credentials Secret keys, fixed and documented in docs/user-guide.md (Credentials Secret).
pub mod keys {
    /// Client credentials: the external application's id.
    pub const CLIENT_ID: &str = "clientId";
    /// Client credentials: the external application's secret.
    pub const CLIENT_SECRET: &str = "clientSecret";
    /// Bearer token given as is.
    pub const TOKEN: &str = "token";
    /// Password (ROPC): user name or e-mail.
    pub const USERNAME: &str = "username";
    /// Password (ROPC): password.
    pub const PASSWORD: &str = "password";
    /// Password (ROPC): the tenant's name.
    pub const TENANCY_NAME: &str = "tenancyName";
}

/// Everything a reconcile needs from Secrets.
#[derive(Debug)]
pub struct Resolved {
    /// How to get a token.
    pub credentials: Credentials,
    /// An extra CA bundle, PEM.
    pub ca_pem: Option<Vec<u8>>,
    /// The desired settings with their values, in spec order.
    pub desired: Vec<SettingValue>,
    /// Every value read from a Secret (credentials and settings), so messages can be redacted.
    pub secret_values: Vec<SecretString>,
}

/// Why Secrets could not be turned into what the reconcile needs. Messages name Secrets and keys,
/// never values.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ResolveError {
    /// A referenced Secret does not exist.
    #[error(
        "Secret {name:?} not found in {}; create it or fix the reference",
        namespace.as_ref().map_or_else(|| "the policy's namespace".to_owned(), |ns| format!("namespace {ns:?}"))
    )]
    SecretNotFound {
        /// The Secret's name.
        name: String,
        /// Where it was looked for, when not in the policy's namespace (a
        /// `ClusterIdentityServer`'s `secretNamespace`).
        namespace: Option<String>,
    },
    /// A referenced key is not in the Secret.
    #[error("Secret {name:?} has no key {key:?}; add the key or fix the reference")]
    SecretKeyMissing {
        /// The Secret's name.
        name: String,
        /// The missing key.
        key: String,
    },
    /// A key's value is not UTF-8 text.
    #[error("Secret {name:?} key {key:?} is not UTF-8 text")]
    NotText {
        /// The Secret's name.
        name: String,
        /// The key.
        key: String,
    },
    /// The credentials Secret does not hold a usable set of keys.
    #[error("credentials Secret {name:?}: {problem}")]
    Credentials {
        /// The Secret's name.
        name: String,
        /// What is wrong, naming keys only.
        problem: String,
    },
}

/// Every Secret a policy reads, by name, when they are all in one namespace (no
/// `ClusterIdentityServer`).
pub fn referenced_secrets(policy: &ValidPolicy) -> BTreeSet<String> {
    let mut names = server_secrets(policy);
    names.extend(setting_secrets(policy));
    names
}

/// The Secrets of the policy's server (credentials and CA): in the policy's namespace, or in
/// [`ValidPolicy::server_secrets_namespace`].
pub fn server_secrets(policy: &ValidPolicy) -> BTreeSet<String> {
    let mut names = BTreeSet::from([policy.credentials_secret.clone()]);
    names.extend(policy.ca.iter().map(|r| r.name.clone()));
    names
}

/// The Secrets the policy's settings take values from, in the policy's namespace.
pub fn setting_secrets(policy: &ValidPolicy) -> BTreeSet<String> {
    policy
        .settings
        .iter()
        .filter_map(|s| match &s.source {
            ValueOrigin::Secret(r) => Some(r.name.clone()),
            ValueOrigin::Literal(_) => None,
        })
        .collect()
}

/// The keys the policy reads from each Secret it names (credentials keys, the CA key, the
/// keys its settings take values from): all the operator keeps of a Secret's data, so that a
/// policy naming a large Secret costs the operator only the keys it uses.
pub fn secret_keys(policy: &ValidPolicy) -> BTreeMap<String, BTreeSet<String>> {
    let mut read: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    read.entry(policy.credentials_secret.clone())
        .or_default()
        .extend(
            [
                keys::CLIENT_ID,
                keys::CLIENT_SECRET,
                keys::TOKEN,
                keys::USERNAME,
                keys::PASSWORD,
                keys::TENANCY_NAME,
            ]
            .map(str::to_owned),
        );
    if let Some(ca) = &policy.ca {
        read.entry(ca.name.clone())
            .or_default()
            .insert(ca.key.clone());
    }
    for setting in &policy.settings {
        if let ValueOrigin::Secret(r) = &setting.source {
            read.entry(r.name.clone())
                .or_default()
                .insert(r.key.clone());
        }
    }
    read
}

/// Resolves credentials and values; `secrets` holds every Secret that exists (by name), all in
/// the policy's namespace.
pub fn resolve(
    policy: &ValidPolicy,
    secrets: &BTreeMap<String, SecretData>,
) -> Result<Resolved, ResolveError> {
    resolve_from(policy, secrets, secrets)
}

/// Resolves credentials and CA from `server` (the Secrets of the server's namespace, see
/// [`server_secrets`]) and setting values from `settings` (the policy's namespace).
pub fn resolve_from(
    policy: &ValidPolicy,
    server: &BTreeMap<String, SecretData>,
    settings: &BTreeMap<String, SecretData>,
) -> Result<Resolved, ResolveError> {
    let elsewhere = |e: ResolveError| match e {
        ResolveError::SecretNotFound { name, .. } => ResolveError::SecretNotFound {
            name,
            namespace: policy.server_secrets_namespace.clone(),
        },
        other => other,
    };
    let credentials = credentials(policy, server).map_err(elsewhere)?;
    let ca_pem = match &policy.ca {
        Some(r) => Some(lookup(server, &r.name, &r.key).map_err(elsewhere)?.to_vec()),
        None => None,
    };
    let secrets = settings;
    let mut secret_values = credentials.secrets();
    let mut desired = Vec::with_capacity(policy.settings.len());
    for s in &policy.settings {
        let value = match &s.source {
            ValueOrigin::Literal(v) => v.clone(),
            ValueOrigin::Secret(r) => {
                let value = text(secrets, &r.name, &r.key)?;
                secret_values.push(SecretString::new(value.clone()));
                value
            }
        };
        desired.push(SettingValue {
            key: s.key.clone(),
            value,
        });
    }
    Ok(Resolved {
        credentials,
        ca_pem,
        desired,
        secret_values,
    })
}

fn credentials(
    policy: &ValidPolicy,
    secrets: &BTreeMap<String, SecretData>,
) -> Result<Credentials, ResolveError> {
    let name = &policy.credentials_secret;
    let data = secrets
        .get(name)
        .ok_or_else(|| ResolveError::SecretNotFound {
            name: name.clone(),
            namespace: None,
        })?;
    let has = |k: &str| data.get(k).is_some_and(|v| !v.is_empty());
    let method = match policy.auth {
        Some(m) => m,
        None if has(keys::CLIENT_ID) || has(keys::CLIENT_SECRET) => AuthMethod::ClientCredentials,
        None if has(keys::TOKEN) => AuthMethod::BearerToken,
        None if has(keys::USERNAME) || has(keys::PASSWORD) => AuthMethod::Password,
        None => {
            return Err(ResolveError::Credentials {
                name: name.clone(),
                problem: "holds none of clientId/clientSecret, token, or username/password; add one set or state spec.server.auth".into(),
            });
        }
    };
    let secret = |k: &str| text(secrets, name, k).map(SecretString::from);
    match method {
        AuthMethod::ClientCredentials => Ok(Credentials::ClientCredentials {
            client_id: text(secrets, name, keys::CLIENT_ID)?,
            client_secret: secret(keys::CLIENT_SECRET)?,
            scopes: policy.scopes.clone(),
        }),
        AuthMethod::BearerToken => Ok(Credentials::BearerToken {
            token: secret(keys::TOKEN)?,
        }),
        AuthMethod::Password => {
            let authenticate_url = policy.authenticate_url.clone().ok_or_else(|| ResolveError::Credentials {
                name: name.clone(),
                problem: "holds username/password (Password auth), which needs spec.server.authenticateUrl".into(),
            })?;
            Ok(Credentials::Password {
                authenticate_url,
                // Optional: a host administrator logs in with an empty tenancy name.
                tenancy_name: match lookup(secrets, name, keys::TENANCY_NAME) {
                    Ok(_) => text(secrets, name, keys::TENANCY_NAME)?,
                    Err(ResolveError::SecretKeyMissing { .. }) => String::new(),
                    Err(other) => return Err(other),
                },
                username: text(secrets, name, keys::USERNAME)?,
                password: secret(keys::PASSWORD)?,
            })
        }
    }
}

fn lookup<'a>(
    secrets: &'a BTreeMap<String, SecretData>,
    name: &str,
    key: &str,
) -> Result<&'a [u8], ResolveError> {
    let data = secrets
        .get(name)
        .ok_or_else(|| ResolveError::SecretNotFound {
            name: name.to_owned(),
            namespace: None,
        })?;
    data.get(key)
        .map(Vec::as_slice)
        .ok_or_else(|| ResolveError::SecretKeyMissing {
            name: name.to_owned(),
            key: key.to_owned(),
        })
}

fn text(
    secrets: &BTreeMap<String, SecretData>,
    name: &str,
    key: &str,
) -> Result<String, ResolveError> {
    let bytes = lookup(secrets, name, key)?;
    String::from_utf8(bytes.to_vec()).map_err(|_| ResolveError::NotText {
        name: name.to_owned(),
        key: key.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::SecretKeyRef;
    use crate::identity::types::SettingScope;
    use crate::reconcile::validate::DesiredSetting;

    fn policy() -> ValidPolicy {
        ValidPolicy {
            base_url: "https://x/identity_".into(),
            scope: SettingScope::organization("p"),
            credentials_secret: "creds".into(),
            auth: None,
            scopes: vec![],
            authenticate_url: None,
            ca: None,
            server_secrets_namespace: None,
            budget: Default::default(),
            settings: vec![
                DesiredSetting {
                    key: "A".into(),
                    source: ValueOrigin::Literal("1".into()),
                },
                DesiredSetting {
                    key: "Email.Smtp.Password".into(),
                    source: ValueOrigin::Secret(SecretKeyRef {
                        name: "smtp".into(),
                        key: "password".into(),
                    }),
                },
            ],
            resync: std::time::Duration::from_secs(60),
            mode: crate::api::SyncMode::Enforce,
            suspension: None,
        }
    }

    fn data(pairs: &[(&str, &str)]) -> SecretData {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn infers_the_auth_method_from_the_secret_keys() {
        let p = policy();
        let mut secrets = BTreeMap::from([("smtp".to_owned(), data(&[("password", "pw")]))]);
        secrets.insert(
            "creds".into(),
            data(&[("clientId", "id"), ("clientSecret", "s3cr3t")]),
        );
        let r = resolve(&p, &secrets).expect("resolved");
        assert!(
            matches!(r.credentials, Credentials::ClientCredentials { ref client_id, .. } if client_id == "id")
        );
        assert_eq!(r.desired[1].value, "pw");
        let secret: Vec<&str> = r.secret_values.iter().map(SecretString::expose).collect();
        assert_eq!(
            secret,
            ["s3cr3t", "pw"],
            "the client secret and the Secret-sourced value"
        );
        secrets.insert("creds".into(), data(&[("token", "t0k")]));
        assert!(matches!(
            resolve(&p, &secrets).expect("ok").credentials,
            Credentials::BearerToken { .. }
        ));
        secrets.insert(
            "creds".into(),
            data(&[
                ("username", "u"),
                ("password", "p"),
                ("tenancyName", "Default"),
            ]),
        );
        let err = resolve(&p, &secrets).expect_err("needs the URL");
        assert!(err.to_string().contains("authenticateUrl"));
        let mut p2 = p.clone();
        p2.authenticate_url = Some("https://x/api/account/authenticate".into());
        assert!(matches!(
            resolve(&p2, &secrets).expect("ok").credentials,
            Credentials::Password { .. }
        ));
    }

    #[test]
    fn a_password_secret_without_tenancy_name_logs_in_to_the_host() {
        let mut p = policy();
        p.authenticate_url = Some("https://x/api/account/authenticate".into());
        let secrets = BTreeMap::from([
            ("smtp".to_owned(), data(&[("password", "pw")])),
            (
                "creds".to_owned(),
                data(&[("username", "admin"), ("password", "p")]),
            ),
        ]);
        let resolved = resolve(&p, &secrets).expect("tenancyName is optional");
        assert!(matches!(
            resolved.credentials,
            Credentials::Password { ref tenancy_name, ref username, .. }
                if tenancy_name.is_empty() && username == "admin"
        ));
    }

    #[test]
    fn missing_secrets_and_keys_are_named_without_values() {
        let p = policy();
        let mut secrets = BTreeMap::new();
        assert_eq!(
            resolve(&p, &secrets).expect_err("missing"),
            ResolveError::SecretNotFound {
                name: "creds".into(),
                namespace: None,
            }
        );
        secrets.insert(
            "creds".to_owned(),
            data(&[("clientId", "id"), ("clientSecret", "s3cr3t")]),
        );
        assert_eq!(
            resolve(&p, &secrets).expect_err("missing"),
            ResolveError::SecretNotFound {
                name: "smtp".into(),
                namespace: None,
            }
        );
        secrets.insert("smtp".to_owned(), data(&[("user", "x")]));
        let err = resolve(&p, &secrets).expect_err("missing key");
        assert_eq!(
            err,
            ResolveError::SecretKeyMissing {
                name: "smtp".into(),
                key: "password".into()
            }
        );
        secrets.insert("creds".to_owned(), data(&[("clientId", "id")]));
        let err = resolve(&p, &secrets).expect_err("incomplete");
        assert!(err.to_string().contains("clientSecret") && !err.to_string().contains("s3cr3t"));
        secrets.insert("creds".to_owned(), data(&[("other", "x")]));
        assert!(matches!(
            resolve(&p, &secrets),
            Err(ResolveError::Credentials { .. })
        ));
    }

    #[test]
    fn lists_every_referenced_secret() {
        let mut p = policy();
        p.ca = Some(SecretKeyRef {
            name: "ca".into(),
            key: "ca.crt".into(),
        });
        let names: Vec<_> = referenced_secrets(&p).into_iter().collect();
        assert_eq!(names, ["ca", "creds", "smtp"]);
    }

    #[test]
    fn a_cluster_servers_credentials_come_from_its_namespace_and_setting_values_from_the_policys() {
        let mut p = policy();
        p.server_secrets_namespace = Some("identity-system".into());
        let server = BTreeMap::from([(
            "creds".to_owned(),
            data(&[("clientId", "id"), ("clientSecret", "s3cr3t")]),
        )]);
        let settings = BTreeMap::from([("smtp".to_owned(), data(&[("password", "pw")]))]);
        let resolved = resolve_from(&p, &server, &settings).expect("resolved");
        assert_eq!(resolved.desired[1].value, "pw");
        let err = resolve_from(&p, &settings, &server).expect_err("credentials elsewhere");
        assert_eq!(
            err.to_string(),
            "Secret \"creds\" not found in namespace \"identity-system\"; create it or fix the reference"
        );
        assert_eq!(
            server_secrets(&p).into_iter().collect::<Vec<_>>(),
            ["creds"]
        );
        assert_eq!(
            setting_secrets(&p).into_iter().collect::<Vec<_>>(),
            ["smtp"]
        );
    }
}
