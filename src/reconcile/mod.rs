//! The pure steps of a reconcile: validate the spec, resolve Secrets, plan the writes, compute
//! status. No Kubernetes or network I/O happens here; the controller does that around them.

pub mod claims;
pub mod decide;
pub mod inputs;
pub mod plan;
pub mod resolve;
pub mod restore;
pub mod server_ref;
pub mod status;
pub mod validate;
