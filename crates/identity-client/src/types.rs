//! The Setting API's wire format, shared by the client and the simulator.
//!
//! Field names follow the contract (`docs/identity-api.md`) exactly: camelCase,
//! every `value` a string, `userId` present as `null` for organization-level settings.

use serde::{Deserialize, Serialize};

pub use settings_core::values::{SettingScope, SettingValue, StoredSetting, guid_digits};

/// The body of `PUT {base}/api/Setting`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PutSettingsRequest {
    /// The settings to create or update, in the order the response will follow.
    pub settings: Vec<SettingValue>,
    /// The organization.
    pub partition_global_id: String,
    /// The user, for user-level settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

/// A successful OAuth 2.0 token response from `POST {base}/connect/token`.
#[derive(Clone, Serialize, Deserialize)]
pub struct TokenResponse {
    /// The bearer token.
    pub access_token: String,
    /// Lifetime in seconds.
    pub expires_in: u64,
    /// Always `Bearer`.
    pub token_type: String,
    /// The scopes granted, space-separated.
    #[serde(default)]
    pub scope: Option<String>,
}

/// The body of the legacy ROPC call `POST {orchestrator}/api/account/authenticate`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AuthenticateRequest {
    /// The tenant's name.
    pub tenancy_name: String,
    /// The host administrator's user name or e-mail.
    pub username_or_email_address: String,
    /// The password.
    pub password: String,
}

/// The response of the ROPC call; `result` is the access token.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticateResponse {
    /// The access token, when `success` is true.
    pub result: Option<String>,
    /// Unused by the operator; part of the ABP envelope.
    #[serde(default)]
    pub target_url: Option<String>,
    /// Whether authentication succeeded.
    pub success: bool,
    /// The error, when `success` is false.
    #[serde(default)]
    pub error: Option<serde_json::Value>,
    /// Part of the ABP envelope.
    #[serde(default)]
    pub un_authorized_request: bool,
    /// Part of the ABP envelope.
    #[serde(default, rename = "__abp")]
    pub abp: bool,
}

/// The scope the operator asks for by default: enough to read and write settings.
pub const SCOPE_SETTING: &str = "PM.Setting";
/// The read-only scope the contract allows for GET.
pub const SCOPE_SETTING_READ: &str = "PM.Setting.Read";
