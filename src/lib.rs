//! identity-settings-operator: keeps UiPath Identity Server organization settings equal to
//! `IdentitySettingPolicy` resources.
//!
//! The crate is a library plus the operator's binary. The identity client is a crate of its own
//! (`identity-client`, re-exported here as [`identity`]) that knows nothing about Kubernetes;
//! value semantics and planning are pure; the controller joins them to kube-rs. The stand-ins
//! (the `kube-emulator` and `identity-simulator` crates) and the no-cluster demo are separate
//! crates the operator never depends on.

/// The identity service client, from the `identity-client` crate.
pub use identity_client as identity;
/// Secret strings that never print, from the `identity-client` crate.
pub use identity_client::secret;

pub mod api;
pub mod apidocs;
pub mod cli;
pub mod controller;
pub mod crdgen;
pub mod diff;
pub mod export;
pub mod health;
pub mod leader;
pub mod metrics;
pub mod operator;
pub mod reconcile;
/// What values mean, from the kube-free `settings-core` crate.
pub use settings_core::semantics;
