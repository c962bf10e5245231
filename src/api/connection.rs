//! Where an identity service is and how to authenticate to it: the connection part that an
//! inline `spec.server` and the shared server definitions have in common, and the references
//! to Secrets it and policies use.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::limits;

/// Where the identity service is and how to authenticate to it. Secrets named here are read
/// from the namespace of the resource that names them (a policy, an `IdentityServer`), or from
/// a `ClusterIdentityServer`'s `secretNamespace`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerSpec {
    /// The identity base URL, e.g. `https://cloud.uipath.com/acme/identity_`. Taken as given
    /// (with or without a trailing slash); `https` is required unless the operator runs with
    /// `--allow-insecure-http`.
    #[schemars(
        length(min = 1, max = limits::MAX_URL),
        extend("x-kubernetes-validations" = [
            {"rule": "self.lowerAscii().startsWith('https://') || self.lowerAscii().startsWith('http://')", "message": "must be an https:// URL, such as https://cloud.uipath.com/acme/identity_"}
        ])
    )]
    pub url: String,
    /// The Secret holding the credentials (see `auth` for its keys).
    pub credentials_secret_ref: LocalObjectRef,
    /// How to get a token. When omitted it is inferred from the Secret's keys:
    /// `clientId`+`clientSecret` → `ClientCredentials`, `token` → `BearerToken`,
    /// `username`+`password` → `Password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthMethod>,
    /// OAuth scopes for `ClientCredentials` (default `PM.Setting`), at most 16.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = limits::MAX_SCOPES), inner(length(min = 1, max = limits::MAX_SCOPE)))]
    pub scopes: Option<Vec<String>>,
    /// The Orchestrator `.../api/account/authenticate` URL, required for `Password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = limits::MAX_URL))]
    pub authenticate_url: Option<String>,
    /// A Secret key holding a PEM CA bundle to trust in addition to the system roots.
    // Boxed: rarely set, and a policy's inline server is in every cached policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<Box<SecretKeyRef>>,
}

/// How to get a token. When omitted it is inferred from the credentials Secret's keys:
/// `clientId`+`clientSecret` → `ClientCredentials`, `token` → `BearerToken`,
/// `username`+`password` → `Password` (which also needs `authenticateUrl`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum AuthMethod {
    /// An external application's client id and secret (Secret keys `clientId`, `clientSecret`).
    ClientCredentials,
    /// A token used as given (Secret key `token`); rotate it by updating the Secret.
    BearerToken,
    /// Legacy host-administrator login (Secret keys `username`, `password`, optional `tenancyName`).
    Password,
}

/// A reference to an object by name (its namespace is given by where the reference is).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct LocalObjectRef {
    /// The object's name.
    #[schemars(length(min = 1, max = limits::MAX_NAME))]
    pub name: String,
}

/// One key of a Secret (in the namespace given by where the reference is).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct SecretKeyRef {
    /// The Secret's name.
    #[schemars(length(min = 1, max = limits::MAX_NAME))]
    pub name: String,
    /// The key inside the Secret's data.
    #[schemars(length(min = 1, max = limits::MAX_SECRET_KEY))]
    pub key: String,
}

#[cfg(test)]
impl ServerSpec {
    /// A server for unit tests: `url`, credentials Secret `credentials`, nothing else set.
    pub(crate) fn for_tests(url: &str, credentials: &str) -> Self {
        Self {
            url: url.into(),
            credentials_secret_ref: LocalObjectRef {
                name: credentials.into(),
            },
            auth: None,
            scopes: None,
            authenticate_url: None,
            ca_secret_ref: None,
        }
    }
}
