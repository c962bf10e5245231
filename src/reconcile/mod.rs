//! The pure steps of a reconcile: validate the spec, resolve Secrets, plan the writes, compute
//! status. No Kubernetes or network I/O happens here; the controller does that around them.

pub mod claims;
/// Before and after a write (pure), from `settings-core`.
pub use settings_core::decide;
pub mod inputs;
/// The plan of a sync (pure), from `settings-core`.
pub use settings_core::plan;
pub mod resolve;
/// Restore points (pure), from `settings-core`.
pub use settings_core::restore;
pub mod server_ref;
pub mod status;
pub mod status_patch;
pub mod validate;
