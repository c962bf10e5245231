//! The `IdentityServer` (namespaced) and `ClusterIdentityServer` (cluster-scoped) resources: one
//! identity service and its credentials, defined once and named by many policies
//! (`spec.serverRef`) instead of repeated in each.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::connection::ServerSpec;

/// An identity service and its credentials, usable by the policies of this namespace.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "identitysettings.dev",
    version = "v1alpha1",
    kind = "IdentityServer",
    plural = "identityservers",
    shortname = "isrv",
    doc = "A UiPath identity service and the credentials to use with it, named by the policies of this namespace in spec.serverRef.",
    namespaced,
    status = "IdentityServerStatus",
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".spec.url"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct IdentityServerSpec {
    /// Where the service is and how to authenticate; Secrets are read from this namespace.
    #[serde(flatten)]
    pub connection: ServerSpec,
    /// The request budget every policy using this server shares.
    #[serde(flatten)]
    pub budget: ServerBudget,
}

/// An identity service and its credentials, usable by the policies of the namespaces it allows.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "identitysettings.dev",
    version = "v1alpha1",
    kind = "ClusterIdentityServer",
    plural = "clusteridentityservers",
    shortname = "cisrv",
    doc = "A UiPath identity service and the credentials to use with it, for the policies of the namespaces in spec.allowedNamespaces.",
    status = "IdentityServerStatus",
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".spec.url"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterIdentityServerSpec {
    /// Where the service is and how to authenticate; Secrets are read from `secretNamespace`.
    #[serde(flatten)]
    pub connection: ServerSpec,
    /// The namespace of `credentialsSecretRef` and `caSecretRef`: keep it one that only the
    /// team owning the credentials can read.
    #[schemars(length(min = 1, max = 63))]
    pub secret_namespace: String,
    /// The namespaces whose policies may use this server. Any other namespace's policy gets
    /// `Ready=False`, reason `ServerNotAllowed`, and nothing is read or written for it.
    pub allowed_namespaces: AllowedNamespaces,
    /// The organizations (and whether their users' settings) the allowed namespaces may manage
    /// through this server: the credentials may reach many, a tenant only these. A policy
    /// whose partition (or user-level scope) is not listed for its namespace gets `Ready=False`,
    /// reason `ServerNotAllowed`, and nothing is read or written for it. Empty: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub allowed_partitions: Vec<AllowedPartition>,
    /// The request budget every policy using this server shares.
    #[serde(flatten)]
    pub budget: ServerBudget,
}

/// One organization a `ClusterIdentityServer` lets policies manage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AllowedPartition {
    /// The organization (`partitionGlobalId`), compared as the identity service does (GUIDs in
    /// any format); `*` stands for every organization the credentials reach.
    #[schemars(length(min = 1, max = 128))]
    pub partition_global_id: String,
    /// Which of the allowed namespaces may manage it; omitted: every allowed namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 63)))]
    pub namespaces: Option<Vec<String>>,
    /// Whether user-level settings (a policy's `userId`) of the organization may be managed
    /// too (default `false`: organization-level settings only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_settings: Option<bool>,
}

/// Which namespaces may use a `ClusterIdentityServer`: those named, and those whose labels
/// match the selector. An empty selector (`selector: {}`) allows every namespace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.names) || has(self.selector)", "message": "name the allowed namespaces (names), select them by label (selector), or both; selector: {} allows every namespace"}
]))]
pub struct AllowedNamespaces {
    /// Namespaces allowed by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256), inner(length(min = 1, max = super::limits::MAX_NAMESPACE)))]
    pub names: Option<Vec<String>>,
    /// Namespaces allowed by their labels (`matchLabels`, `matchExpressions`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// How many requests all policies using one server may send (by every operator replica's
/// work, since only the leader sends any). Unset: no limit of that kind; `429 Too Many
/// Requests` pauses every policy of the server either way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerBudget {
    /// Requests per second to this server, token requests included (overrides the operator's
    /// `--identity-requests-per-second`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub requests_per_second: Option<u32>,
    /// Requests in flight to this server at once (overrides `--identity-max-in-flight`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_in_flight: Option<u32>,
}

/// What the operator last found checking a server's credentials.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentityServerStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`: the token endpoint issued a token for the credentials (checked at most once per
    /// token lifetime; a `BearerToken` cannot be checked without a settings call, so it shows
    /// `Unknown`, reason `NotCheckable`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// When the credentials were last checked with the token endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_checked_time: Option<Time>,
}

/// A policy's reference to a shared server definition.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerRef {
    /// `IdentityServer` (in the policy's namespace) or `ClusterIdentityServer`.
    pub kind: ServerKind,
    /// The server's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// The two kinds of shared server definition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ServerKind {
    /// An `IdentityServer` in the policy's namespace.
    IdentityServer,
    /// A `ClusterIdentityServer` that allows the policy's namespace.
    ClusterIdentityServer,
}

impl ServerKind {
    /// The kind's name, as written in `serverRef.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            ServerKind::IdentityServer => "IdentityServer",
            ServerKind::ClusterIdentityServer => "ClusterIdentityServer",
        }
    }
}
