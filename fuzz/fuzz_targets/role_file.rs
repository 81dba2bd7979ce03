//! Fuzz target: the role file parser (`k8s_agent::role_file::parse_role_file`) for both roles, and the redacted
//! rendering of whatever it accepts. Any panic, hang or runaway allocation is a finding.
#![no_main]
use k8s_agent::node_role::NodeRole;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for (path, role) in [
        ("/etc/sysconfig/kubernetes-minions", NodeRole::Minion),
        ("/etc/sysconfig/kubernetes-masters", NodeRole::Master),
    ] {
        if let Ok(config) =
            k8s_agent::role_file::parse_role_file(std::path::Path::new(path), role, &text)
        {
            let _ = config.redacted_lines();
        }
    }
});
