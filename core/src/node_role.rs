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

/// When a unit starts in the bring-up: a minion starts containerd first (the baked container images are imported
/// into it before anything that runs them), then weave and kubelet, and kube-proxy only after kubelet's TLS bootstrap
/// (it runs with the kubelet's client certificate). A master starts all of its units in one go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitStage {
    /// containerd (minion).
    Runtime,
    /// A master's control plane; a minion's weave and kubelet.
    Node,
    /// kube-proxy (minion).
    AfterBootstrap,
}

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

    /// The units of one start stage ([`UnitStage`]), in start order.
    pub fn unit_group(self, stage: UnitStage) -> &'static [&'static str] {
        match (self, stage) {
            (NodeRole::Master, UnitStage::Node) => MASTER_UNITS,
            (NodeRole::Master, _) => &[],
            (NodeRole::Minion, UnitStage::Runtime) => &MINION_UNITS[..1],
            (NodeRole::Minion, UnitStage::Node) => &MINION_UNITS[1..3],
            (NodeRole::Minion, UnitStage::AfterBootstrap) => &MINION_UNITS[3..],
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
    fn the_minion_stages_cover_its_units_once_in_order() {
        assert_eq!(
            NodeRole::Minion.unit_group(UnitStage::Runtime),
            ["containerd.service"]
        );
        assert_eq!(
            NodeRole::Minion.unit_group(UnitStage::Node),
            ["weave.service", "kubelet.service"]
        );
        assert_eq!(
            NodeRole::Minion.unit_group(UnitStage::AfterBootstrap),
            ["kube-proxy.service"]
        );
        let all: Vec<&str> = [
            UnitStage::Runtime,
            UnitStage::Node,
            UnitStage::AfterBootstrap,
        ]
        .iter()
        .flat_map(|s| NodeRole::Minion.unit_group(*s).iter().copied())
        .collect();
        assert_eq!(all, MINION_UNITS);
        assert_eq!(NodeRole::Master.unit_group(UnitStage::Node), MASTER_UNITS);
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
