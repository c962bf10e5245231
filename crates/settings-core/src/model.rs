//! What a policy asks of the operator, as plain data (the CRD types in the operator embed these).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `Enforce` (default) writes every difference to the identity service; `Observe` never writes
/// and reports differences as `Ready=False`, reason `Drifted`; `Plan` never writes and lists
/// each change it would make in `status.plannedChanges`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SyncMode {
    /// Write every difference to the identity service.
    #[default]
    Enforce,
    /// Never write; report differences with `Ready=False`, reason `Drifted`.
    Observe,
    /// Never write; list the changes a write would make (key, current → desired; secret values
    /// never) in `status.plannedChanges`, with `Ready=False`, reason `ChangesPlanned`.
    Plan,
}
