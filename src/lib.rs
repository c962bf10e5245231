//! identity-settings-operator: keeps UiPath Identity Server organization settings equal to
//! `IdentitySettingPolicy` resources.
//!
//! The crate is a library plus one binary. The domain pieces (identity client, value semantics,
//! planning) know nothing about Kubernetes; the controller joins them to kube-rs. The two
//! stand-ins — [`simulator`] for the identity service and [`kube_emulator`] for the Kubernetes
//! API — are test support and power the no-cluster demo; they are never on the operator's
//! runtime path in a cluster.

pub mod api;
pub mod apidocs;
pub mod cli;
pub mod controller;
pub mod crdgen;
pub mod demo;
pub mod health;
pub mod identity;
pub mod kube_emulator;
pub mod leader;
pub mod metrics;
pub mod operator;
pub mod reconcile;
pub mod secret;
pub mod semantics;
pub mod simulator;
