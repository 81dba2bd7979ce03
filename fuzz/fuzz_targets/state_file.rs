//! Fuzz target: the persisted state on resume (`/run/k8s-agent/state.json` is read back after a restart): parse,
//! then resume the phase machine from it; and the Weave decision a reboot reads back
//! (`/var/lib/k8s-agent/weave-decision.json`): parse, then apply the after-reboot rule to it.
#![no_main]
use k8s_agent::plan::AgentState;
use k8s_agent::weave::{ConsensusSize, KeptDecision, after_reboot};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(state) = serde_json::from_slice::<AgentState>(data) {
        let _ = AgentState::resume(state, 1_767_225_600_000);
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(kept) = KeptDecision::parse(text)
        && let Ok(n) = ConsensusSize::new(3)
    {
        let local = ["10.0.0.2".parse().expect("an address")];
        let _ = after_reboot(&kept, "prod", n, &local);
        let _ = after_reboot(&kept, &kept.cluster, kept.decision.n, &local);
    }
});
