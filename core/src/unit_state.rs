//! One systemd unit as `k8s-agent status` and the metrics show it: the properties the systemd edge
//! (`k8s_agent::edge::systemd`) reads over D-Bus, as plain values.

use serde::{Deserialize, Serialize};

/// One unit as systemd sees it now (for `k8s-agent status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitState {
    pub unit: String,
    /// `loaded`, `not-found`, `masked`, `bad-setting`, … (`unknown` when systemd could not be asked).
    pub load_state: String,
    /// `active`, `inactive`, `failed`, `activating`, …
    pub active_state: String,
    /// Type-specific: `running`, `exited`, `dead`, `failed`, …
    pub sub_state: String,
    /// The unit's `Result` (`success`, `exit-code`, …); empty for unit types without one (targets, slices, devices).
    pub result: String,
    /// When the unit last entered the active state: µs since the Unix epoch (CLOCK_REALTIME), 0 if never.
    pub active_enter_timestamp_us: u64,
    /// When the unit last left the inactive state (its start began): µs since the Unix epoch, 0 if never.
    pub inactive_exit_timestamp_us: u64,
}
