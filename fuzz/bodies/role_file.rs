//! The body of fuzz target `role_file`: the role file parser (`k8s_core::role_file::parse_role_file`) for both roles, the redacted
//! rendering of whatever it accepts, and the TSIG key file parser (`DNS_UPDATE_TSIG_FILE`, also from user data).
//! Any panic, hang or runaway allocation is a finding.
//!
//! Shared by the fuzz binary (`fuzz/fuzz_targets/role_file.rs`) and the corpus replay of `cargo test`
//! (`imagebuilder/tests/fuzz_corpus_replay.rs`): one input, any bytes; a panic is a finding.
use k8s_core::node_role::NodeRole;

/// Run one input through what the target covers.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for (path, role) in [
        ("/etc/sysconfig/kubernetes-minions", NodeRole::Minion),
        ("/etc/sysconfig/kubernetes-masters", NodeRole::Master),
    ] {
        if let Ok(config) =
            k8s_core::role_file::parse_role_file(std::path::Path::new(path), role, &text)
        {
            let _ = config.redacted_lines();
        }
    }
    if let Ok(name) = k8s_core::role_file::DnsName::parse("k8s-agent") {
        use k8s_core::dns_update::{TsigAlgorithmName, parse_key_file};
        let _ = parse_key_file(&text, &name, TsigAlgorithmName::HmacSha256);
    }
}
