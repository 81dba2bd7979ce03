//! Which address a node advertises — a pure decision: a master's API server (`kube-apiserver --advertise-address`),
//! a minion's kubelet (`kubelet --node-ip`, the Node's InternalIP that kube-proxy and the API server use).
//!
//! Both programs, left alone, take the address of the interface that holds the default route: kube-apiserver exits
//! at once on a node without one ("Unable to find suitable network address … no default routes found"), kubelet
//! registers a Node without an address ("can't get ip address of node … no default routes found"). The local
//! cluster's nodes and many private networks have no default route; kubeadm always passes the flags. The rule here:
//!
//! 1. `ADVERTISE_ADDRESS` in the role file, when the user data sets it;
//! 2. else the node's only global unicast IPv4 address (loopback, link-local, unspecified and multicast addresses
//!    never count), or, with no IPv4 at all, its only global IPv6 address;
//! 3. else (several candidates, or none) no flag: the program chooses by the default route, as it would without
//!    the agent, and `status` says why no address was chosen.
//!
//! The executor writes the choice to [`NODE_ENV_FILE`] — a master before it starts the control plane
//! (`$KUBE_APISERVER_ADVERTISE` in `kube-apiserver.service`), a minion with its join files before kubelet starts
//! (`$KUBELET_NODE_IP` in `kubelet.service`); empty for rule 3.

use crate::node_role::NodeRole;
use std::net::IpAddr;

/// The environment file `kube-apiserver.service` (masters) and `kubelet.service` (minions) read, relative to the
/// node root.
pub const NODE_ENV_FILE: &str = "run/k8s-agent/node.env";

/// True for an address another node can reach this one at: not loopback, unspecified, multicast, link-local or
/// the IPv4 broadcast address.
pub fn is_advertisable(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_loopback()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_link_local()
                || v4.is_broadcast())
        }
        IpAddr::V6(v6) => {
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || v6.is_unicast_link_local())
        }
    }
}

/// What the agent chose, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdvertiseChoice {
    /// `ADVERTISE_ADDRESS` from the role file.
    RoleFile(IpAddr),
    /// The node's only candidate address.
    OnlyAddress(IpAddr),
    /// Several candidates: no flag, kube-apiserver decides by the default route.
    Several(Vec<IpAddr>),
    /// No candidate at all: no flag.
    NoAddress,
}

impl AdvertiseChoice {
    /// The address passed as `--advertise-address`, if any.
    pub fn address(&self) -> Option<IpAddr> {
        match self {
            AdvertiseChoice::RoleFile(a) | AdvertiseChoice::OnlyAddress(a) => Some(*a),
            AdvertiseChoice::Several(_) | AdvertiseChoice::NoAddress => None,
        }
    }

    /// One sentence for `status` and the journal, for a node of `role`.
    pub fn describe(&self, role: NodeRole) -> String {
        let (who, program) = match role {
            NodeRole::Master => ("the API server advertises", "kube-apiserver"),
            NodeRole::Minion => ("kubelet registers the node with", "kubelet"),
        };
        match self {
            AdvertiseChoice::RoleFile(a) => format!("{who} {a} (ADVERTISE_ADDRESS)"),
            AdvertiseChoice::OnlyAddress(a) => {
                format!("{who} {a} (the node's only global address)")
            }
            AdvertiseChoice::Several(all) => format!(
                "the node has {} global addresses ({}): {program} chooses by the default route; set \
                 ADVERTISE_ADDRESS in the role file to choose",
                all.len(),
                all.iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            AdvertiseChoice::NoAddress => {
                format!(
                    "the node has no global address yet: {program} chooses by the default route"
                )
            }
        }
    }

    /// [`NODE_ENV_FILE`] for a node of `role`.
    pub fn render_env(&self, role: NodeRole) -> String {
        let (variable, flag) = match role {
            NodeRole::Master => ("KUBE_APISERVER_ADVERTISE", "--advertise-address"),
            NodeRole::Minion => ("KUBELET_NODE_IP", "--node-ip"),
        };
        let value = self
            .address()
            .map(|a| format!("{flag}={a}"))
            .unwrap_or_default();
        format!(
            "# Written by k8s-agent: {}.\n{variable}={value}\n",
            self.describe(role)
        )
    }
}

/// Applies the rule of the module documentation.
pub fn choose(from_role_file: Option<IpAddr>, local_addrs: &[IpAddr]) -> AdvertiseChoice {
    if let Some(a) = from_role_file {
        return AdvertiseChoice::RoleFile(a);
    }
    let mut candidates: Vec<IpAddr> = local_addrs
        .iter()
        .copied()
        .filter(is_advertisable)
        .collect();
    candidates.sort();
    candidates.dedup();
    let v4: Vec<IpAddr> = candidates.iter().copied().filter(IpAddr::is_ipv4).collect();
    let pool = if v4.is_empty() { candidates } else { v4 };
    match pool.as_slice() {
        [] => AdvertiseChoice::NoAddress,
        [one] => AdvertiseChoice::OnlyAddress(*one),
        _ => AdvertiseChoice::Several(pool),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    #[test]
    fn the_role_file_wins() {
        assert_eq!(
            choose(Some(ip("192.0.2.7")), &[ip("10.79.0.10")]),
            AdvertiseChoice::RoleFile(ip("192.0.2.7"))
        );
    }

    #[test]
    fn the_only_global_ipv4_address_is_chosen() {
        let addrs = [
            ip("127.0.0.1"),
            ip("10.79.0.10"),
            ip("::1"),
            ip("fe80::1"),
            ip("169.254.3.4"),
        ];
        let choice = choose(None, &addrs);
        assert_eq!(choice, AdvertiseChoice::OnlyAddress(ip("10.79.0.10")));
        assert_eq!(
            choice.render_env(NodeRole::Master),
            "# Written by k8s-agent: the API server advertises 10.79.0.10 (the node's only global address).\n\
             KUBE_APISERVER_ADVERTISE=--advertise-address=10.79.0.10\n"
        );
        assert_eq!(
            choice.render_env(NodeRole::Minion),
            "# Written by k8s-agent: kubelet registers the node with 10.79.0.10 (the node's only global address).\n\
             KUBELET_NODE_IP=--node-ip=10.79.0.10\n"
        );
        // IPv4 is preferred over a global IPv6 address beside it.
        assert_eq!(
            choose(None, &[ip("2001:db8::5"), ip("10.0.0.5")]),
            AdvertiseChoice::OnlyAddress(ip("10.0.0.5"))
        );
        assert_eq!(
            choose(None, &[ip("2001:db8::5"), ip("::1")]),
            AdvertiseChoice::OnlyAddress(ip("2001:db8::5"))
        );
    }

    #[test]
    fn several_or_none_leave_the_choice_to_kube_apiserver() {
        let choice = choose(None, &[ip("10.0.0.5"), ip("10.1.0.5"), ip("10.0.0.5")]);
        assert_eq!(
            choice,
            AdvertiseChoice::Several(vec![ip("10.0.0.5"), ip("10.1.0.5")])
        );
        assert_eq!(choice.address(), None);
        assert!(
            choice
                .render_env(NodeRole::Master)
                .ends_with("\nKUBE_APISERVER_ADVERTISE=\n")
        );
        assert!(
            choice
                .render_env(NodeRole::Minion)
                .ends_with("\nKUBELET_NODE_IP=\n")
        );
        assert!(
            choice
                .describe(NodeRole::Minion)
                .contains("kubelet chooses by the default route; set ADVERTISE_ADDRESS")
        );
        assert_eq!(choose(None, &[ip("127.0.0.1")]), AdvertiseChoice::NoAddress);
    }

    #[test]
    fn only_reachable_addresses_can_be_advertised() {
        for bad in [
            "127.0.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "169.254.1.1",
            "255.255.255.255",
            "::",
            "::1",
            "fe80::1",
            "ff02::1",
        ] {
            assert!(!is_advertisable(&ip(bad)), "{bad}");
        }
        for good in ["10.79.0.10", "192.0.2.1", "2001:db8::1", "fd00::1"] {
            assert!(is_advertisable(&ip(good)), "{good}");
        }
    }
}
