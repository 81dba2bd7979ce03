//! Fuzz target: kubeadm token discovery's handling of what the API server sends — the cluster-info ConfigMap body
//! (`cluster_info_data`), its kubeconfig and detached JWS (`verify_cluster_info`) — against a fixed token and pin.
#![no_main]
use k8s_agent::pure::discovery::{DiscoveryTrust, cluster_info_data, verify_cluster_info};
use k8s_agent::role_file::values::{BootstrapToken, CaPin};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let token = BootstrapToken::parse("abcdef.0123456789abcdef").expect("token");
    let trust = DiscoveryTrust {
        pin: Some(CaPin::parse(&format!("sha256:{}", "ab".repeat(32))).expect("pin")),
        ca_file_certs: Vec::new(),
    };
    if let Ok(map) = cluster_info_data(data) {
        let _ = verify_cluster_info(&map, &token, &trust);
    }
});
