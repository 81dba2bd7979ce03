//! The body of fuzz target `state_file`: the persisted state on resume (`/run/k8s-agent/state.json` is read back after a restart): parse,
//! then resume the phase machine from it; and the Weave decision a reboot reads back
//! (`/var/lib/k8s-agent/weave-decision.json`): parse, then apply the after-reboot rule to it.
//!
//! Shared by the fuzz binary (`fuzz/fuzz_targets/state_file.rs`) and the corpus replay of `cargo test`
//! (`imagebuilder/tests/fuzz_corpus_replay.rs`): one input, any bytes; a panic is a finding.
use k8s_core::plan::AgentState;
use k8s_core::weave::{ConsensusSize, KeptDecision, after_reboot};

/// Run one input through what the target covers.
pub fn run(data: &[u8]) {
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
}
