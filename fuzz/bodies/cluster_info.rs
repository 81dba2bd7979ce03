//! The body of fuzz target `cluster_info`: kubeadm token discovery's handling of what the API server sends — the cluster-info ConfigMap body
//! (`cluster_info_data`), its kubeconfig and detached JWS (`verify_cluster_info`) — against a fixed token and pin.
//!
//! Shared by the fuzz binary (`fuzz/fuzz_targets/cluster_info.rs`) and the corpus replay of `cargo test`
//! (`imagebuilder/tests/fuzz_corpus_replay.rs`): one input, any bytes; a panic is a finding.
use k8s_core::discovery::{DiscoveryTrust, cluster_info_data, verify_cluster_info};
use k8s_core::role_file::values::{BootstrapToken, CaPin};

/// Run one input through what the target covers.
pub fn run(data: &[u8]) {
    let token = BootstrapToken::parse("abcdef.0123456789abcdef").expect("token");
    let trust = DiscoveryTrust {
        pin: Some(CaPin::parse(&format!("sha256:{}", "ab".repeat(32))).expect("pin")),
        ca_file_certs: Vec::new(),
    };
    if let Ok(map) = cluster_info_data(data) {
        let _ = verify_cluster_info(&map, &token, &trust);
    }
}
