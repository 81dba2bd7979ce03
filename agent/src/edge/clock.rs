//! The wall clock, read in one place: milliseconds since the epoch (what the state, the timeline and the metrics
//! record). The pure core takes the time as an argument.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the epoch.
pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
