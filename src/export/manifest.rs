//! What `export` writes, decided from what was read (pure): the policies (one, or one per key
//! group with `--split`), each checked by the operator's own validation, and a Secret stub for
//! the secret-valued keys. Secret values never get here: a secret key arrives as
//! [`Found::Secret`], without its value.

use std::collections::BTreeMap;

use serde::Serialize;
use settings_core::catalog::{self, Group};

use crate::api::{
    IdentitySettingPolicy, IdentitySettingPolicySpec, SecretKeyRef, ServerRef, ServerSpec,
    SettingSpec, SyncMode, ValueSource,
};
use crate::reconcile::validate::validate;

use super::error::ExportError;

/// The annotation on each exported policy saying where and when it came from (a JSON object:
/// server, partition, user, time, operator and catalog versions).
pub const ORIGIN_ANNOTATION: &str = "identitysettings.dev/exported-from";

/// One key the server holds a value for.
#[derive(Clone, PartialEq, Eq)]
pub struct Read {
    /// The key, spelled as it was asked for.
    pub key: String,
    /// Its value, or only that a secret key has one.
    pub found: Found,
}

/// What the server holds for a key.
#[derive(Clone, PartialEq, Eq)]
pub enum Found {
    /// A value to write into the policy (in the form a client sends).
    Value(String),
    /// A secret-valued key has a value; the value was dropped when read.
    Secret,
}

/// Values may be sensitive to someone: `Debug` shows keys only.
impl std::fmt::Debug for Read {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let found = match self.found {
            Found::Value(_) => "Value(..)",
            Found::Secret => "Secret",
        };
        write!(f, "Read({}: {found})", self.key)
    }
}

/// How the exported policies reach their server.
#[derive(Clone, Debug, PartialEq)]
pub enum Server {
    /// Written into each policy (`spec.server`), with its credentials Secret.
    Inline(ServerSpec),
    /// A shared server definition (`spec.serverRef`); `connection` is still what was read,
    /// used to check the policies.
    Ref {
        /// The reference written.
        reference: ServerRef,
        /// The server read.
        connection: ServerSpec,
    },
}

/// Where and when the values were read, for the annotation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Origin {
    /// The server URL, without any password.
    pub server: String,
    /// The organization.
    pub partition: String,
    /// The user, for user-level settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// When, in UTC (RFC 3339, seconds).
    pub time: String,
    /// The operator's version.
    pub operator_version: String,
    /// The catalog's version ([`catalog::VERSION`]).
    pub catalog_version: String,
}

/// Everything besides the values that decides the manifests.
#[derive(Clone, Debug)]
pub struct Options {
    /// The policy's name, or the prefix of each policy's name with `split`.
    pub name: String,
    /// The manifests' namespace.
    pub namespace: String,
    /// The policies' mode.
    pub mode: SyncMode,
    /// One policy per [`Group`].
    pub split: bool,
    /// The server.
    pub server: Server,
    /// The organization.
    pub partition: String,
    /// The user, for user-level settings.
    pub user: Option<String>,
    /// Where and when.
    pub origin: Origin,
}

/// One manifest file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// Its file name in an output directory (`<name>.yaml`).
    pub file_name: String,
    /// The YAML document, comments first.
    pub yaml: String,
}

/// The name of the Secret stub holding the secret-valued keys.
pub fn secret_name(options: &Options) -> String {
    format!("{}-secrets", options.name)
}

/// The manifests for `read` (any order): the policies, by group order, then the Secret stub
/// when a secret-valued key has a value. Each policy's settings are sorted by key.
pub fn manifests(options: &Options, read: &[Read]) -> Result<Vec<Manifest>, ExportError> {
    let mut groups: BTreeMap<Option<Group>, Vec<&Read>> = BTreeMap::new();
    for r in read {
        let group = options.split.then(|| catalog::group_of(&r.key));
        groups.entry(group).or_default().push(r);
    }
    let secret = secret_name(options);
    let mut out = Vec::new();
    let mut secret_keys: Vec<(String, String)> = Vec::new();
    for (group, mut keys) in groups {
        keys.sort_by(|a, b| {
            (a.key.to_ascii_lowercase(), &a.key).cmp(&(b.key.to_ascii_lowercase(), &b.key))
        });
        let name = match group {
            Some(g) => format!("{}-{}", options.name, g.slug()),
            None => options.name.clone(),
        };
        let settings = keys
            .iter()
            .map(|r| match &r.found {
                Found::Value(v) => SettingSpec {
                    key: r.key.as_str().into(),
                    value: Some(v.clone()),
                    value_from: None,
                },
                Found::Secret => {
                    secret_keys.push((r.key.clone(), name.clone()));
                    SettingSpec {
                        key: r.key.as_str().into(),
                        value: None,
                        value_from: Some(Box::new(ValueSource {
                            secret_key_ref: SecretKeyRef {
                                name: secret.clone(),
                                key: r.key.clone(),
                            },
                        })),
                    }
                }
            })
            .collect();
        out.push(policy(options, &name, settings)?);
    }
    if !secret_keys.is_empty() {
        out.push(secret_stub(options, &secret, &secret_keys)?);
    }
    Ok(out)
}

/// One policy, checked as the operator would check it.
fn policy(
    options: &Options,
    name: &str,
    settings: Vec<SettingSpec>,
) -> Result<Manifest, ExportError> {
    let (server, server_ref, connection) = match &options.server {
        Server::Inline(spec) => (Some(Box::new(spec.clone())), None, spec),
        Server::Ref {
            reference,
            connection,
        } => (None, Some(Box::new(reference.clone())), connection),
    };
    let spec = IdentitySettingPolicySpec {
        server,
        server_ref,
        partition_global_id: options.partition.clone(),
        user_id: options.user.clone(),
        settings,
        resync_interval: None,
        mode: Some(options.mode),
        deletion_policy: None,
        suspend: None,
        suspend_until: None,
    };
    // A referenced server is not here to look up: check the rest with the server read.
    let checked = IdentitySettingPolicySpec {
        server: Some(Box::new(connection.clone())),
        server_ref: None,
        ..spec.clone()
    };
    validate(&checked).map_err(|problems| ExportError::Invalid {
        name: name.to_owned(),
        problems,
    })?;
    let mut object = IdentitySettingPolicy::new(name, spec);
    object.metadata.namespace = Some(options.namespace.clone());
    // Plain strings only: serialising cannot fail.
    let origin = serde_json::to_string(&options.origin).unwrap_or_default();
    object.metadata.annotations = Some(BTreeMap::from([(ORIGIN_ANNOTATION.to_owned(), origin)]));
    let yaml = serde_norway::to_string(&object).map_err(|e| ExportError::Render {
        name: name.to_owned(),
        problem: e.to_string(),
    })?;
    let o = &options.origin;
    let user = o
        .user
        .as_ref()
        .map(|u| format!(", user {u}"))
        .unwrap_or_default();
    let mode = match options.mode {
        SyncMode::Observe => {
            "# mode Observe: the operator reports differences and never writes; set Enforce once\n\
             # the values are the ones you want kept.\n"
        }
        SyncMode::Plan => {
            "# mode Plan: the operator lists the changes it would make and never writes.\n"
        }
        SyncMode::Enforce => {
            "# mode Enforce: the operator writes these values back when they drift.\n"
        }
    };
    Ok(Manifest {
        file_name: format!("{name}.yaml"),
        yaml: format!(
            "# Exported from {}, partition {}{user}, at {}\n\
             # by identity-settings-operator {} (catalog {}).\n{mode}{yaml}",
            o.server, o.partition, o.time, o.operator_version, o.catalog_version
        ),
    })
}

/// A Secret as written: fields in the order people expect.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SecretStub<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: StubMeta<'a>,
    #[serde(rename = "type")]
    type_: &'static str,
    string_data: BTreeMap<&'a str, &'static str>,
}

#[derive(Serialize)]
struct StubMeta<'a> {
    name: &'a str,
    namespace: &'a str,
}

/// The Secret the policies' `valueFrom`s name: every key with an empty value and a comment
/// saying to fill it in.
fn secret_stub(
    options: &Options,
    name: &str,
    keys: &[(String, String)],
) -> Result<Manifest, ExportError> {
    let stub = SecretStub {
        api_version: "v1",
        kind: "Secret",
        metadata: StubMeta {
            name,
            namespace: &options.namespace,
        },
        type_: "Opaque",
        string_data: keys.iter().map(|(k, _)| (k.as_str(), "")).collect(),
    };
    let yaml = serde_norway::to_string(&stub).map_err(|e| ExportError::Render {
        name: name.to_owned(),
        problem: e.to_string(),
    })?;
    let mut comments = String::from(
        "# FILL IN before applying: the identity service holds a value for each key below, and\n\
         # export never copies a secret value out of it. Put the value the service should keep\n\
         # under each key (stringData: plain text). Applied empty, a policy in mode Enforce\n\
         # would write the empty value.\n",
    );
    for (key, policy) in keys {
        comments.push_str(&format!(
            "#   {key}: the value of {key} (policy {policy})\n"
        ));
    }
    Ok(Manifest {
        file_name: format!("{name}.yaml"),
        yaml: comments + &yaml,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{LocalObjectRef, ServerKind};

    fn server() -> ServerSpec {
        ServerSpec {
            url: "https://cloud.uipath.com/acme/identity_".into(),
            credentials_secret_ref: LocalObjectRef {
                name: "identity-admin".into(),
            },
            auth: None,
            scopes: None,
            authenticate_url: None,
            ca_secret_ref: None,
        }
    }

    fn options(split: bool) -> Options {
        Options {
            name: "acme".into(),
            namespace: "identity".into(),
            mode: SyncMode::Observe,
            split,
            server: Server::Inline(server()),
            partition: "magic-7".into(),
            user: None,
            origin: Origin {
                server: "https://cloud.uipath.com/acme/identity_".into(),
                partition: "magic-7".into(),
                user: None,
                time: "2026-12-05T05:00:00Z".into(),
                operator_version: "0.1.0".into(),
                catalog_version: catalog::VERSION.into(),
            },
        }
    }

    fn read() -> Vec<Read> {
        let value = |k: &str, v: &str| Read {
            key: k.into(),
            found: Found::Value(v.into()),
        };
        vec![
            value("Email.Smtp.Host", "smtp.example.com"),
            value("Custom.Flag", "on"),
            Read {
                key: "Email.Smtp.Password".into(),
                found: Found::Secret,
            },
            value("Auth.UserLockOut.IsEnabled", "true"),
            value("Auth.Password.DefaultExpirationDays", "90"),
        ]
    }

    fn parse(yaml: &str) -> serde_json::Value {
        serde_norway::from_str(yaml).expect("valid YAML")
    }

    #[test]
    fn one_policy_holds_every_key_sorted_with_the_secret_as_a_reference_and_a_stub() {
        let out = manifests(&options(false), &read()).expect("manifests");
        let names: Vec<&str> = out.iter().map(|m| m.file_name.as_str()).collect();
        assert_eq!(names, ["acme.yaml", "acme-secrets.yaml"]);
        let policy = parse(&out[0].yaml);
        assert_eq!(policy["kind"], "IdentitySettingPolicy");
        assert_eq!(policy["metadata"]["namespace"], "identity");
        assert_eq!(policy["spec"]["mode"], "Observe");
        assert!(policy.get("status").is_none(), "{}", out[0].yaml);
        let keys: Vec<&str> = policy["spec"]["settings"]
            .as_array()
            .expect("settings")
            .iter()
            .map(|s| s["key"].as_str().expect("key"))
            .collect();
        assert_eq!(
            keys,
            [
                "Auth.Password.DefaultExpirationDays",
                "Auth.UserLockOut.IsEnabled",
                "Custom.Flag",
                "Email.Smtp.Host",
                "Email.Smtp.Password"
            ]
        );
        assert_eq!(
            policy["spec"]["settings"][4],
            serde_json::json!({"key": "Email.Smtp.Password",
                "valueFrom": {"secretKeyRef": {"name": "acme-secrets", "key": "Email.Smtp.Password"}}})
        );
        let origin: serde_json::Value = serde_json::from_str(
            policy["metadata"]["annotations"][ORIGIN_ANNOTATION]
                .as_str()
                .expect("annotation"),
        )
        .expect("JSON");
        assert_eq!(origin["server"], "https://cloud.uipath.com/acme/identity_");
        assert_eq!(origin["time"], "2026-12-05T05:00:00Z");
        assert_eq!(origin["operatorVersion"], "0.1.0");
        assert_eq!(
            policy["spec"]["server"]["credentialsSecretRef"]["name"],
            "identity-admin"
        );

        let stub = &out[1].yaml;
        assert!(stub.starts_with("# FILL IN"), "{stub}");
        assert_eq!(
            parse(stub),
            serde_json::json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "acme-secrets", "namespace": "identity"},
                "type": "Opaque", "stringData": {"Email.Smtp.Password": ""}})
        );
        assert_eq!(
            manifests(&options(false), &read()).expect("again"),
            out,
            "the same input gives the same bytes"
        );
    }

    #[test]
    fn split_makes_one_policy_per_group_and_a_server_ref_replaces_the_server() {
        let mut opts = options(true);
        opts.server = Server::Ref {
            reference: ServerRef {
                kind: ServerKind::ClusterIdentityServer,
                name: "shared".into(),
            },
            connection: server(),
        };
        opts.mode = SyncMode::Enforce;
        let out = manifests(&opts, &read()).expect("manifests");
        let names: Vec<&str> = out.iter().map(|m| m.file_name.as_str()).collect();
        assert_eq!(
            names,
            [
                "acme-password-policy.yaml",
                "acme-lockout.yaml",
                "acme-email.yaml",
                "acme-other.yaml",
                "acme-secrets.yaml"
            ]
        );
        let email = parse(&out[2].yaml);
        assert_eq!(email["spec"]["settings"].as_array().map(Vec::len), Some(2));
        assert!(email["spec"].get("server").is_none());
        assert_eq!(
            email["spec"]["serverRef"],
            serde_json::json!({"kind": "ClusterIdentityServer", "name": "shared"})
        );
        assert_eq!(email["spec"]["mode"], "Enforce");
        assert!(out[4].yaml.contains("(policy acme-email)"));
    }

    #[test]
    fn a_policy_the_operator_would_refuse_is_an_error_naming_it() {
        let huge = Read {
            key: "Custom.Huge".into(),
            found: Found::Value("x".repeat(crate::api::limits::MAX_VALUE + 1)),
        };
        let err = manifests(&options(false), &[huge]).expect_err("too long");
        assert!(
            matches!(&err, ExportError::Invalid { name, .. } if name == "acme"),
            "{err}"
        );
        assert!(!err.to_string().contains("xxxx"), "{err}");
    }
}
