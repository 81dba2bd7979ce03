//! Fuzz target: the persisted state on resume (`/run/k8s-agent/state.json` is read back after a restart): parse,
//! then resume the phase machine from it.
#![no_main]
use k8s_agent::plan::AgentState;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(state) = serde_json::from_slice::<AgentState>(data) {
        let _ = AgentState::resume(state, 1_767_225_600_000);
    }
});
