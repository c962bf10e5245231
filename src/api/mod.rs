//! The custom resources (`identitysettings.dev/v1alpha1`): `IdentitySettingPolicy` here, and
//! the shared server definitions `IdentityServer` and `ClusterIdentityServer` in [`server`].
//!
//! These Rust types are the single source of the CRDs: `crds/` is generated from them
//! (`identity-settings-operator crd`) and a test fails when the committed YAML is stale.

pub mod connection;
pub mod key;
pub mod limits;
pub mod server;
pub mod setting_ids;

pub use connection::{AuthMethod, LocalObjectRef, SecretKeyRef, ServerSpec};
pub use key::SettingKey;
pub use setting_ids::SettingIds;

pub use settings_core::model::SyncMode;
pub use settings_core::plan::{ChangeKind, PlannedChange};

pub use server::{
    AllowedNamespaces, AllowedPartition, ClusterIdentityServer, ClusterIdentityServerSpec,
    IdentityServer, IdentityServerSpec, IdentityServerStatus, ServerBudget, ServerKind, ServerRef,
};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The API group of every resource this operator owns.
pub const GROUP: &str = "identitysettings.dev";

/// The field manager of the operator's server-side applies (status, restore points).
pub const FIELD_MANAGER: &str = "identity-settings-operator";

/// The finalizer the operator puts on policies so it sees their deletion.
pub const FINALIZER: &str = "identitysettings.dev/finalizer";

/// Desired organization (or user) settings of one identity service, and how to reach it.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "identitysettings.dev",
    version = "v1alpha1",
    kind = "IdentitySettingPolicy",
    plural = "identitysettingpolicies",
    shortname = "isp",
    doc = "Organization (or user) settings of a UiPath identity service that the operator keeps equal to this policy.",
    namespaced,
    status = "IdentitySettingPolicyStatus",
    printcolumn = r#"{"name":"Partition","type":"string","jsonPath":".spec.partitionGlobalId"}"#,
    printcolumn = r#"{"name":"Settings","type":"integer","jsonPath":".status.settingCount"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.server) != has(self.serverRef)", "message": "set exactly one of server (the identity service written here) and serverRef (an IdentityServer or ClusterIdentityServer)"}
]))]
pub struct IdentitySettingPolicySpec {
    /// The identity service and the credentials to use with it, written in the policy. Set
    /// this or `serverRef`.
    // Boxed, as the other fields that are often absent: every cached policy is one allocation
    // of this struct's size (`the_cached_policy_fits_a_small_allocation`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<Box<ServerSpec>>,
    /// A shared server definition to use instead of `server`: an `IdentityServer` in the
    /// policy's namespace, or a `ClusterIdentityServer` that allows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_ref: Option<Box<ServerRef>>,
    /// The organization whose settings are managed (`partitionGlobalId` in the identity API).
    #[schemars(length(min = 1, max = limits::MAX_PARTITION))]
    pub partition_global_id: String,
    /// A user id, for user-level settings. Omit for organization-level settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = limits::MAX_USER_ID))]
    pub user_id: Option<String>,
    /// The settings to keep, at most 256, with at most 32 768 characters of literal values in
    /// all. Each key appears once, compared case-insensitively (as the identity service does).
    #[schemars(
        length(min = 1, max = 256),
        extend(
            "x-kubernetes-list-type" = "map",
            "x-kubernetes-list-map-keys" = ["key"],
            "x-kubernetes-validations" = [
                {"rule": "self.map(a, a.key.lowerAscii()).all(k, self.exists_one(b, b.key.lowerAscii() == k))", "message": "each key may appear once; keys are compared case-insensitively (the identity service does)"},
                {"rule": "self.map(s, has(s.value) ? size(s.value) : 0).sum() <= 32768", "message": "the literal values may hold at most 32768 characters in all; split the policy in two"}
            ]
        )
    )]
    pub settings: Vec<SettingSpec>,
    /// How often the settings are checked for drift when nothing changed, as a duration such as
    /// `30s`, `10m` or `1h` (default `10m`, between `10s` and `24h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"),
        length(max = limits::MAX_TIME_TEXT),
        extend("x-kubernetes-validations" = [
            {"rule": "!self.matches('^([0-9]+(\\\\.[0-9]+)?(ms|s|m|h))+$') || (duration(self) >= duration('10s') && duration(self) <= duration('24h'))", "message": "must be between 10s and 24h"}
        ])
    )]
    pub resync_interval: Option<String>,
    /// `Enforce` (default) corrects drift; `Observe` only reports it and never writes; `Plan`
    /// never writes and lists the changes it would make in `status.plannedChanges`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<SyncMode>,
    /// What happens to the settings when the policy is deleted: `Retain` (default) leaves them;
    /// `Restore` writes back the values saved before the operator's first write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,
    /// `true` stops every read and write of this policy — for emergency manual edits on the
    /// identity service — until it is set back to `false` (or until `suspendUntil` passes, when
    /// that is set too). Status says `Ready=False`, reason `Suspended`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
    /// Suspends the policy until this time (RFC 3339, e.g. `2026-11-28T06:00:00Z`), with or
    /// without `suspend`; afterwards it resumes by itself and corrects what changed meanwhile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"), length(max = limits::MAX_TIME_TEXT))]
    pub suspend_until: Option<String>,
}

/// What deleting the policy does to the settings it managed: `Retain` (default) leaves them;
/// `Restore` writes back the values they had before the operator first changed them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DeletionPolicy {
    /// Leave the settings as they are.
    #[default]
    Retain,
    /// Before its first write to a key, the operator saves the key's value in a Secret owned by
    /// the policy (`<name>-restore`); on deletion it writes the saved values back, then lets
    /// the policy go. Keys that had no value keep the policy's (the identity API cannot delete
    /// a setting). Deletion waits while the server cannot be reached; the annotation
    /// `identitysettings.dev/skip-restore: "true"` lets it go without restoring.
    Restore,
}

/// One setting: its key and either a literal value or a value read from a Secret.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.value) != has(self.valueFrom)", "message": "set exactly one of value and valueFrom"},
    {"rule": "self.key.lowerAscii() != 'email.smtp.password' || has(self.valueFrom)", "message": "Email.Smtp.Password is a secret: take it from a Secret with valueFrom.secretKeyRef"}
]))]
pub struct SettingSpec {
    /// The setting key, e.g. `Auth.Password.DefaultExpirationDays`. Unknown keys are allowed.
    #[schemars(
        regex(pattern = r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"),
        length(max = limits::MAX_KEY)
    )]
    pub key: SettingKey,
    /// The value as a string, even for numbers and booleans; structured values are JSON text
    /// (at most 4 096 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = limits::MAX_VALUE))]
    pub value: Option<String>,
    /// Take the value from a Secret instead (required for secrets such as `Email.Smtp.Password`).
    // Boxed: most settings are literal, and every cached policy would otherwise carry room for
    // a Secret reference per setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<Box<ValueSource>>,
}

/// Where a setting's value comes from when it is not written in the policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValueSource {
    /// A key of a Secret in the policy's namespace.
    pub secret_key_ref: SecretKeyRef,
}

/// What the operator last observed and did. Written only by the operator; holds no setting values.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentitySettingPolicyStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` tells whether the identity service holds the policy's settings, and why not;
    /// `Drifted` is there while keys differ on the identity service and were not written back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The identity service's id of each key of the policy (key → id), for the keys the
    /// service has.
    #[serde(default, skip_serializing_if = "SettingIds::is_empty")]
    pub setting_ids: SettingIds,
    /// How many settings the policy manages (shown by `kubectl get isp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setting_count: Option<i32>,
    /// When the operator last changed this status after checking the identity service. A check
    /// that finds nothing new writes nothing, so the operator never triggers itself; the metric
    /// `identity_settings_last_sync_timestamp_seconds` shows every check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<Time>,
    /// When the operator last wrote settings to the identity service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_time: Option<Time>,
    /// The keys whose value on the identity service differed from the policy at the last check
    /// and was not written back (observe and plan mode, or a write that failed), each with when
    /// it was first found differing. Empty when the server holds every value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["key"]))]
    pub drift: Vec<DriftedSetting>,
    /// `spec.mode: Plan` only: the changes a write would make, found at the last check.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["key"]))]
    pub planned_changes: Vec<PlannedChange>,
    /// `deletionPolicy: Restore`: the restore point the operator wrote. A Secret of that name
    /// whose content does not match is not used (anyone who can create Secrets in the
    /// namespace could have written it), and one that is gone when the policy is deleted is
    /// reported instead of silently skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_point: Option<Box<RestorePointRecord>>,
    /// What the last settled check acted on, so that a restarted operator decides as the one
    /// before it would have: whether a difference found next is drift (same inputs) or a change
    /// (new inputs), and which keys the identity service refused for these inputs (not written
    /// again until they change). Never a value: a digest of versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<SyncInputs>,
}

/// The inputs a check acted on (see [`IdentitySettingPolicyStatus::inputs`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncInputs {
    /// SHA-256 (hex) of the declared settings (`spec.settings`) and the resourceVersions of
    /// the Secrets their values came from — never of a Secret's value.
    #[schemars(length(max = 64))]
    pub digest: String,
    /// The keys the identity service did not keep when these inputs were written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub not_accepted: Vec<String>,
}

/// The record of a restore point the operator wrote: its Secret and a digest of its content.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestorePointRecord {
    /// The Secret holding the saved values.
    pub secret_name: String,
    /// SHA-256 (hex) of the saved values as last written.
    pub digest: String,
    /// The digest before the last save: a save interrupted between this record and the Secret
    /// write leaves the Secret at this content, which is still the operator's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_digest: Option<String>,
}

/// A key found differing from the policy on the identity service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DriftedSetting {
    /// The setting key.
    pub key: SettingKey,
    /// When a check first found the key differing (kept while it stays so).
    pub detected_at: Time,
}

#[cfg(test)]
impl IdentitySettingPolicySpec {
    /// A spec for unit tests: the identity service at `url`, credentials Secret `credentials`,
    /// partition `p`, these settings and every optional field unset.
    pub(crate) fn for_tests(url: &str, credentials: &str, settings: Vec<SettingSpec>) -> Self {
        Self {
            server: Some(Box::new(ServerSpec::for_tests(url, credentials))),
            server_ref: None,
            partition_global_id: "p".into(),
            user_id: None,
            settings,
            resync_interval: None,
            mode: None,
            deletion_policy: None,
            suspend: None,
            suspend_until: None,
        }
    }
}

impl IdentitySettingPolicySpec {
    /// The effective sync mode.
    pub fn mode(&self) -> SyncMode {
        self.mode.unwrap_or_default()
    }
}
