//! The operator's decisions without Kubernetes: the catalog of known setting keys, the settings
//! model, what values mean, the plan of a sync, what to do before and after a write, restore
//! points, and the reasons a policy's status gives. It depends on neither kube, k8s-openapi nor
//! tokio (`cargo tree -e normal -p settings-core` shows it): everything here is plain data and
//! pure functions, tested alone.

pub mod catalog;
pub mod decide;
pub mod demand;
pub mod model;
pub mod outcome;
pub mod plan;
pub mod reason;
pub mod restore;
pub mod semantics;
pub mod urls;
pub mod values;
