//! The two node roles, the role file each one is selected by, and which systemd units belong to which role.
//!
//! This table is the single source for the agent (which units to start), the checks (every role unit has its
//! drop-in) and the image builder.

use serde::{Deserialize, Serialize};

/// Path (relative to the root) of the role file cloud-init writes on a master.
pub const MASTER_ROLE_FILE: &str = "etc/sysconfig/kubernetes-masters";
/// Path (relative to the root) of the role file cloud-init writes on a minion.
pub const MINION_ROLE_FILE: &str = "etc/sysconfig/kubernetes-minions";

/// Where units and their drop-ins live in the image (relative to the root).
pub const UNIT_DIR: &str = "usr/lib/systemd/system";

/// Units a master starts, in start order.
pub const MASTER_UNITS: &[&str] = &[
    "etcd.service",
    "kube-apiserver.service",
    "kube-controller-manager.service",
    "kube-scheduler.service",
];

/// Units a minion starts, in start order.
pub const MINION_UNITS: &[&str] = &[
    "containerd.service",
    "weave.service",
    "kubelet.service",
    "kube-proxy.service",
];

/// How many of [`MINION_UNITS`] start before kubelet's TLS bootstrap: kube-proxy runs with the kubelet's client
/// certificate, so it starts only once kubelet has one.
pub const MINION_UNITS_BEFORE_BOOTSTRAP: usize = 3;

/// The agent's own unit: the only unit enabled in the image.
pub const AGENT_UNIT: &str = "k8s-agent.service";

/// What a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeRole {
    Master,
    Minion,
}

impl NodeRole {
    /// Both roles, masters first.
    pub const ALL: [NodeRole; 2] = [NodeRole::Master, NodeRole::Minion];

    /// The role file (relative to the root) that selects this role.
    pub fn role_file(self) -> &'static str {
        match self {
            NodeRole::Master => MASTER_ROLE_FILE,
            NodeRole::Minion => MINION_ROLE_FILE,
        }
    }

    /// The units this role starts, in order.
    pub fn units(self) -> &'static [&'static str] {
        match self {
            NodeRole::Master => MASTER_UNITS,
            NodeRole::Minion => MINION_UNITS,
        }
    }

    /// The units of a start phase: a master starts all of its units at once; a minion starts containerd, weave
    /// and kubelet, waits for kubelet's TLS bootstrap, then starts kube-proxy (`after_bootstrap`).
    pub fn unit_group(self, after_bootstrap: bool) -> &'static [&'static str] {
        match (self, after_bootstrap) {
            (NodeRole::Master, false) => MASTER_UNITS,
            (NodeRole::Master, true) => &[],
            (NodeRole::Minion, false) => &MINION_UNITS[..MINION_UNITS_BEFORE_BOOTSTRAP],
            (NodeRole::Minion, true) => &MINION_UNITS[MINION_UNITS_BEFORE_BOOTSTRAP..],
        }
    }

    /// The `ConditionPathExists=` line every unit of this role carries in its `role.conf` drop-in.
    pub fn condition_line(self) -> String {
        format!("ConditionPathExists=/{}", self.role_file())
    }

    /// Lower-case name, as used in output.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeRole::Master => "master",
            NodeRole::Minion => "minion",
        }
    }
}

impl std::fmt::Display for NodeRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_unit_belongs_to_both_roles() {
        for unit in MASTER_UNITS {
            assert!(!MINION_UNITS.contains(unit), "{unit} is in both roles");
        }
        assert!(!MASTER_UNITS.contains(&AGENT_UNIT) && !MINION_UNITS.contains(&AGENT_UNIT));
    }

    #[test]
    fn the_minion_groups_split_at_kube_proxy() {
        assert_eq!(
            NodeRole::Minion.unit_group(false),
            ["containerd.service", "weave.service", "kubelet.service"]
        );
        assert_eq!(NodeRole::Minion.unit_group(true), ["kube-proxy.service"]);
        assert_eq!(NodeRole::Master.unit_group(false), MASTER_UNITS);
    }

    #[test]
    fn condition_lines_name_absolute_role_files() {
        assert_eq!(
            NodeRole::Master.condition_line(),
            "ConditionPathExists=/etc/sysconfig/kubernetes-masters"
        );
        assert_eq!(
            NodeRole::Minion.condition_line(),
            "ConditionPathExists=/etc/sysconfig/kubernetes-minions"
        );
    }
}
