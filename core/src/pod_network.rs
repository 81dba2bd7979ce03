//! The routed-bridge pod network (`CNI=bridge`) — pure: the CNI configuration a node's pods get, which routes
//! to the other nodes' pods it needs, and what to change in the routes it has. The edge that reads the Node
//! objects and programs the kernel is `k8s_agent::edge::pod_network`.
//!
//! # Why it exists
//! Weave Net's maintained fork (`github.com/rajch/weave`) is what the image is meant to ship, but it cannot be
//! built here: the Go module proxy refuses it (`This module version is not available.` for v2.9.0, `@latest` and
//! `@v/list`). Rather than give pods no network, `CNI=bridge` gives them a real one with the CNI reference plugins,
//! as Kubernetes' own "kubenet"/flannel host-gw layouts do:
//! - kube-controller-manager allocates each Node a `/24` of [`POD_NETWORK_CIDR`] (`spec.podCIDR`,
//!   `--allocate-node-cidrs`);
//! - the agent writes `/etc/cni/net.d/10-bridge.conflist` ([`render_bridge_cni_config`]): the `bridge` plugin
//!   (`cni0`, the node's gateway) with `host-local` addresses from that `/24`, and `portmap` for hostPorts;
//! - the agent routes every other node's `/24` via that node's address ([`plan_routes`]) — the nodes are the A
//!   records of `minions.<cluster>.<domain>` (the same DNS answer Weave's decision reads), each matched to its Node
//!   object by `InternalIP` for its `podCIDR`; a Node whose address DNS does not list gets no route;
//! - pod traffic leaving the pod network is masqueraded to the node's address ([`egress_rule`]); traffic between
//!   pods keeps its addresses.
//!
//! It needs the nodes on one link (one subnet, as the local cluster's hub and a cloud VPC subnet are): routes go
//! via the node's address, with no encapsulation. The Weave decision is still computed and written
//! (`weave.env`), and `status` says it is not applied.
//!
//! Routes the agent owns carry the routing protocol number [`ROUTE_PROTOCOL`], so it never touches a route it did
//! not make ([`route_changes`]).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

/// The pod network: kube-controller-manager's `--cluster-cidr`, kube-proxy's `clusterCIDR`, Weave's
/// `IPALLOC_RANGE` — one range whichever network runs.
pub const POD_NETWORK_CIDR: Ipv4Cidr = Ipv4Cidr {
    addr: Ipv4Addr::new(10, 32, 0, 0),
    prefix: 12,
};
/// Where the bridge network's CNI configuration goes (relative to the node root).
pub const BRIDGE_CNI_CONFIG: &str = "etc/cni/net.d/10-bridge.conflist";
/// The bridge the pods of a node hang off (the `bridge` plugin creates it; its address is the pods' gateway).
pub const BRIDGE_NAME: &str = "cni0";
/// The routing protocol number of the routes the agent makes (`ip route … proto 107`); unassigned in
/// `/etc/iproute2/rt_protos`.
pub const ROUTE_PROTOCOL: u8 = 107;
/// Comment on the agent's masquerade rule (`iptables -m comment`), to find it again.
pub const EGRESS_RULE_COMMENT: &str = "k8s-agent: pod traffic leaving the pod network";

/// An IPv4 network `a.b.c.d/p` whose host bits are zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Ipv4Cidr {
    addr: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Cidr {
    /// Parses `10.32.1.0/24`; host bits set, a missing prefix or an IPv6 network are errors.
    pub fn parse(text: &str) -> Result<Ipv4Cidr, String> {
        let (addr, prefix) = text
            .split_once('/')
            .ok_or_else(|| format!("{text:?} is not a network (a.b.c.d/prefix)"))?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("{text:?} is not an IPv4 network"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= 32 && prefix.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| format!("{text:?} has no prefix length 0..32"))?;
        let cidr = Ipv4Cidr { addr, prefix };
        if cidr.network() != addr {
            return Err(format!(
                "{text:?} has host bits set (the network is {}/{prefix})",
                cidr.network()
            ));
        }
        Ok(cidr)
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        }
    }

    fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask())
    }

    /// True when `ip` is in this network.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr)
    }

    /// True when `other` lies wholly inside this network.
    pub fn covers(&self, other: &Ipv4Cidr) -> bool {
        other.prefix >= self.prefix && self.contains(other.addr)
    }

    /// The first host address: the bridge's, the pods' gateway.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr).wrapping_add(1))
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl TryFrom<String> for Ipv4Cidr {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        Ipv4Cidr::parse(&text)
    }
}

impl From<Ipv4Cidr> for String {
    fn from(cidr: Ipv4Cidr) -> String {
        cidr.to_string()
    }
}

/// Checks a Node's `spec.podCIDR` before the agent builds anything on it: an IPv4 network inside
/// [`POD_NETWORK_CIDR`] with room for pods (a prefix of /16 to /28).
pub fn validate_pod_cidr(text: &str) -> Result<Ipv4Cidr, String> {
    let cidr = Ipv4Cidr::parse(text)?;
    if !POD_NETWORK_CIDR.covers(&cidr) {
        return Err(format!(
            "{cidr} is outside the pod network {POD_NETWORK_CIDR} (kube-controller-manager --cluster-cidr)"
        ));
    }
    if !(16..=28).contains(&cidr.prefix) {
        return Err(format!(
            "{cidr}: a node's pod range must be a /16 to /28 (kube-controller-manager --node-cidr-mask-size)"
        ));
    }
    Ok(cidr)
}

/// The node's CNI configuration: `bridge` on [`BRIDGE_NAME`] as the pods' gateway, `host-local` addresses from
/// `pod_cidr`, no masquerading by the plugin (the agent's [`egress_rule`] does it for off-network traffic only),
/// hairpin for a pod reaching itself through a Service, and `portmap` for hostPorts.
pub fn render_bridge_cni_config(pod_cidr: Ipv4Cidr) -> String {
    let config = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "k8s-pod-network",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE_NAME,
                "isGateway": true,
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{ "subnet": pod_cidr.to_string(), "gateway": pod_cidr.gateway().to_string() }]],
                    "routes": [{ "dst": "0.0.0.0/0" }]
                }
            },
            { "type": "portmap", "capabilities": { "portMappings": true } }
        ]
    });
    let mut text = serde_json::to_string_pretty(&config).unwrap_or_default();
    text.push('\n');
    text
}

/// The masquerade rule for pods' traffic leaving the pod network (to node addresses, the Internet), as
/// `iptables -t nat` arguments after the chain: `-s <pod_cidr> ! -d <pod network> … -j MASQUERADE`.
pub fn egress_rule(pod_cidr: Ipv4Cidr) -> Vec<String> {
    [
        "-s",
        &pod_cidr.to_string(),
        "!",
        "-d",
        &POD_NETWORK_CIDR.to_string(),
        "-m",
        "comment",
        "--comment",
        EGRESS_RULE_COMMENT,
        "-j",
        "MASQUERADE",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// What setting up this node's pod network came to (`k8s_agent::edge::pod_network::set_up`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetUpOutcome {
    /// CNI configuration written for the node's range, masquerade rule in place.
    Ready { pod_cidr: Ipv4Cidr },
    /// Not possible yet (no podCIDR allocated yet, the API server did not answer): say why, try again.
    NotYet { reason: String },
    /// Something on the host or in the answer is wrong: say what.
    Failed { reason: String },
}

/// A Node as the pod network needs it, from `GET /api/v1/nodes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEntry {
    pub name: String,
    pub internal_ip: Option<Ipv4Addr>,
    /// `spec.podCIDR` as the API gave it (checked by [`plan_routes`]).
    pub pod_cidr: Option<String>,
}

/// Reads a `NodeList` (or one `Node`) into [`NodeEntry`]s; an answer that is not one names what is wrong.
pub fn parse_nodes(body: &[u8]) -> Result<Vec<NodeEntry>, String> {
    #[derive(Deserialize)]
    struct List {
        kind: Option<String>,
        #[serde(default)]
        items: Vec<Node>,
    }
    #[derive(Deserialize)]
    struct Node {
        #[serde(default)]
        metadata: Meta,
        #[serde(default)]
        spec: Spec,
        #[serde(default)]
        status: Status,
    }
    #[derive(Deserialize, Default)]
    struct Meta {
        #[serde(default)]
        name: String,
    }
    #[derive(Deserialize, Default)]
    struct Spec {
        #[serde(rename = "podCIDR")]
        pod_cidr: Option<String>,
    }
    #[derive(Deserialize, Default)]
    struct Status {
        #[serde(default)]
        addresses: Vec<Address>,
    }
    #[derive(Deserialize)]
    struct Address {
        #[serde(rename = "type")]
        kind: String,
        address: String,
    }
    let entry = |n: Node| NodeEntry {
        internal_ip: n
            .status
            .addresses
            .iter()
            .filter(|a| a.kind == "InternalIP")
            .find_map(|a| a.address.parse::<Ipv4Addr>().ok()),
        pod_cidr: n.spec.pod_cidr.filter(|c| !c.is_empty()),
        name: n.metadata.name,
    };
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the answer is not JSON: {e}"))?;
    match value.get("kind").and_then(|k| k.as_str()) {
        Some("Node") => {
            let node: Node =
                serde_json::from_value(value).map_err(|e| format!("not a Node: {e}"))?;
            Ok(vec![entry(node)])
        }
        _ => {
            let list: List =
                serde_json::from_value(value).map_err(|e| format!("not a NodeList: {e}"))?;
            if list.kind.as_deref() != Some("NodeList") {
                return Err(format!(
                    "expected a NodeList, got kind {:?}",
                    list.kind.unwrap_or_default()
                ));
            }
            Ok(list.items.into_iter().map(entry).collect())
        }
    }
}

/// One route the node needs: `cidr` via `via` (the node `node`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeRoute {
    pub cidr: Ipv4Cidr,
    pub via: Ipv4Addr,
    pub node: String,
}

/// The routes this node needs and why the others are left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoutePlan {
    pub routes: Vec<NodeRoute>,
    /// `minion3 (10.79.0.13): no podCIDR yet`.
    pub left_out: Vec<String>,
}

impl RoutePlan {
    /// Every node DNS lists has its route: nothing is expected to change soon. While not settled (a node listed
    /// but not registered yet, or without a podCIDR yet) the executor looks again after [`UNSETTLED_RESYNC`]
    /// instead of the Ready recheck's 30 s, so a new node's pods are reachable within seconds of its podCIDR.
    pub fn settled(&self) -> bool {
        self.left_out.is_empty()
    }
}

/// How soon the routes are looked at again while a listed node has none yet.
pub const UNSETTLED_RESYNC: std::time::Duration = std::time::Duration::from_secs(5);

/// The routes to the other nodes' pods: every node whose `InternalIP` is among `peers` (the minions' A records),
/// not this node (`own_addrs`), with a valid `podCIDR`, routed via that address. A podCIDR two nodes claim, or
/// one that covers this node's own, is left out with the reason (it would send one node's pods to another).
pub fn plan_routes(
    nodes: &[NodeEntry],
    peers: &[IpAddr],
    own_addrs: &[IpAddr],
    own_pod_cidr: Option<Ipv4Cidr>,
) -> RoutePlan {
    let mut plan = RoutePlan::default();
    let mut candidates: Vec<NodeRoute> = Vec::new();
    for node in nodes {
        let Some(ip) = node.internal_ip else {
            continue;
        };
        if own_addrs.contains(&IpAddr::V4(ip)) {
            continue;
        }
        if !peers.contains(&IpAddr::V4(ip)) {
            plan.left_out.push(format!(
                "{} ({ip}): not listed in the minions' DNS record",
                node.name
            ));
            continue;
        }
        let cidr = match node.pod_cidr.as_deref().map(validate_pod_cidr) {
            None => {
                plan.left_out
                    .push(format!("{} ({ip}): no podCIDR yet", node.name));
                continue;
            }
            Some(Err(e)) => {
                plan.left_out
                    .push(format!("{} ({ip}): podCIDR {e}", node.name));
                continue;
            }
            Some(Ok(c)) => c,
        };
        if own_pod_cidr.is_some_and(|own| own.covers(&cidr) || cidr.covers(&own)) {
            plan.left_out.push(format!(
                "{} ({ip}): podCIDR {cidr} overlaps this node's own",
                node.name
            ));
            continue;
        }
        candidates.push(NodeRoute {
            cidr,
            via: ip,
            node: node.name.clone(),
        });
    }
    for peer in peers {
        let IpAddr::V4(v4) = peer else { continue };
        if own_addrs.contains(peer) || nodes.iter().any(|n| n.internal_ip == Some(*v4)) {
            continue;
        }
        plan.left_out
            .push(format!("{peer}: no Node with this InternalIP yet"));
    }
    candidates.sort();
    for route in &candidates {
        let clash = candidates
            .iter()
            .any(|o| o != route && (o.cidr.covers(&route.cidr) || route.cidr.covers(&o.cidr)));
        if clash {
            plan.left_out.push(format!(
                "{} ({}): podCIDR {} overlaps another node's",
                route.node, route.via, route.cidr
            ));
        } else {
            plan.routes.push(route.clone());
        }
    }
    plan
}

/// A route the kernel has that the agent made (protocol [`ROUTE_PROTOCOL`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledRoute {
    pub cidr: Ipv4Cidr,
    pub via: Option<Ipv4Addr>,
}

/// What to do to the kernel's routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteChange {
    /// `ip route replace <cidr> via <via> proto 107`.
    Set { cidr: Ipv4Cidr, via: Ipv4Addr },
    /// `ip route del <cidr> proto 107`.
    Remove { cidr: Ipv4Cidr },
}

/// The changes that turn the agent's `installed` routes into `wanted`: set what is missing or points elsewhere,
/// remove what is no longer wanted. Routes of other owners never appear in `installed`.
pub fn route_changes(wanted: &[NodeRoute], installed: &[InstalledRoute]) -> Vec<RouteChange> {
    let mut changes = Vec::new();
    for w in wanted {
        let have = installed
            .iter()
            .any(|i| i.cidr == w.cidr && i.via == Some(w.via));
        if !have {
            changes.push(RouteChange::Set {
                cidr: w.cidr,
                via: w.via,
            });
        }
    }
    for i in installed {
        if !wanted.iter().any(|w| w.cidr == i.cidr) {
            changes.push(RouteChange::Remove { cidr: i.cidr });
        }
    }
    changes
}

/// Reads `ip -4 -json route show proto 107`: the agent's routes. Entries that are not a network via a gateway
/// are kept with `via: None` (and so replaced or removed).
pub fn parse_installed_routes(json: &[u8]) -> Result<Vec<InstalledRoute>, String> {
    #[derive(Deserialize)]
    struct Route {
        dst: String,
        gateway: Option<String>,
    }
    if json.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let routes: Vec<Route> =
        serde_json::from_slice(json).map_err(|e| format!("`ip -json route` output: {e}"))?;
    let mut out = Vec::new();
    for r in routes {
        // `ip` prints a /32 without its prefix.
        let dst = if r.dst.contains('/') {
            r.dst.clone()
        } else {
            format!("{}/32", r.dst)
        };
        let Ok(cidr) = Ipv4Cidr::parse(&dst) else {
            continue;
        };
        out.push(InstalledRoute {
            cidr,
            via: r.gateway.and_then(|g| g.parse().ok()),
        });
    }
    Ok(out)
}

/// The pod network's state for `status`, one line: `bridge cni0 10.32.1.0/24; routes: 10.32.2.0/24 via
/// 10.79.0.12 (minion2)`.
pub fn describe(own: Option<Ipv4Cidr>, plan: &RoutePlan) -> String {
    let own = match own {
        Some(c) => format!("bridge {BRIDGE_NAME} {c}"),
        None => "no pods here (routes only)".to_string(),
    };
    let routes = if plan.routes.is_empty() {
        "no other node yet".to_string()
    } else {
        plan.routes
            .iter()
            .map(|r| format!("{} via {} ({})", r.cidr, r.via, r.node))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut line = format!("{own}; routes: {routes}");
    if !plan.left_out.is_empty() {
        line.push_str(&format!("; left out: {}", plan.left_out.join(", ")));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Ipv4Cidr {
        Ipv4Cidr::parse(s).unwrap()
    }

    fn node(name: &str, ip: &str, pod_cidr: Option<&str>) -> NodeEntry {
        NodeEntry {
            name: name.into(),
            internal_ip: Some(ip.parse().unwrap()),
            pod_cidr: pod_cidr.map(String::from),
        }
    }

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn networks_parse_strictly() {
        assert_eq!(cidr("10.32.1.0/24").to_string(), "10.32.1.0/24");
        assert!(
            Ipv4Cidr::parse("10.32.1.5/24")
                .unwrap_err()
                .contains("host bits")
        );
        assert!(Ipv4Cidr::parse("10.32.1.0").is_err());
        assert!(Ipv4Cidr::parse("10.32.1.0/33").is_err());
        assert!(Ipv4Cidr::parse("10.32.1.0/+4").is_err());
        assert!(Ipv4Cidr::parse("fd00::/64").is_err());
        assert!(cidr("10.32.0.0/12").covers(&cidr("10.47.255.0/24")));
        assert!(!cidr("10.32.0.0/12").covers(&cidr("10.48.0.0/24")));
        assert_eq!(cidr("10.32.1.0/24").gateway(), Ipv4Addr::new(10, 32, 1, 1));
    }

    #[test]
    fn a_pod_cidr_must_be_inside_the_pod_network_and_sized_for_pods() {
        assert!(validate_pod_cidr("10.32.7.0/24").is_ok());
        assert!(
            validate_pod_cidr("10.244.1.0/24")
                .unwrap_err()
                .contains("outside")
        );
        assert!(
            validate_pod_cidr("10.32.0.0/30")
                .unwrap_err()
                .contains("/16 to /28")
        );
        assert!(
            validate_pod_cidr("10.32.0.0/12")
                .unwrap_err()
                .contains("/16 to /28")
        );
    }

    #[test]
    fn the_cni_config_is_a_bridge_with_the_nodes_range_and_no_plugin_masquerade() {
        let text = render_bridge_cni_config(cidr("10.32.3.0/24"));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let bridge = &v["plugins"][0];
        assert_eq!(bridge["type"], "bridge");
        assert_eq!(bridge["bridge"], "cni0");
        assert_eq!(bridge["ipMasq"], false);
        assert_eq!(bridge["ipam"]["ranges"][0][0]["subnet"], "10.32.3.0/24");
        assert_eq!(bridge["ipam"]["ranges"][0][0]["gateway"], "10.32.3.1");
        assert_eq!(v["plugins"][1]["type"], "portmap");
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn node_lists_are_read_and_wrong_answers_named() {
        let body = br#"{"kind":"NodeList","items":[
            {"metadata":{"name":"minion1"},"spec":{"podCIDR":"10.32.1.0/24"},
             "status":{"addresses":[{"type":"Hostname","address":"minion1"},{"type":"InternalIP","address":"10.79.0.11"}]}},
            {"metadata":{"name":"minion2"},"spec":{},"status":{"addresses":[]}}]}"#;
        let nodes = parse_nodes(body).unwrap();
        assert_eq!(
            nodes[0],
            node("minion1", "10.79.0.11", Some("10.32.1.0/24"))
        );
        assert_eq!(nodes[1].internal_ip, None);
        assert_eq!(nodes[1].pod_cidr, None);
        assert!(parse_nodes(b"<html>").unwrap_err().contains("not JSON"));
        assert!(
            parse_nodes(br#"{"kind":"Status","items":[]}"#)
                .unwrap_err()
                .contains("NodeList")
        );
        let one = br#"{"kind":"Node","metadata":{"name":"m"},"spec":{"podCIDR":"10.32.9.0/24"}}"#;
        assert_eq!(
            parse_nodes(one).unwrap()[0].pod_cidr.as_deref(),
            Some("10.32.9.0/24")
        );
    }

    #[test]
    fn routes_go_to_the_nodes_dns_lists_and_not_to_this_one() {
        let nodes = vec![
            node("minion1", "10.79.0.11", Some("10.32.1.0/24")),
            node("minion2", "10.79.0.12", Some("10.32.2.0/24")),
            node("minion3", "10.79.0.13", None),
            node("stray", "10.79.0.99", Some("10.32.9.0/24")),
        ];
        let plan = plan_routes(
            &nodes,
            &ips(&["10.79.0.11", "10.79.0.12", "10.79.0.13"]),
            &ips(&["10.79.0.11"]),
            Some(cidr("10.32.1.0/24")),
        );
        assert_eq!(
            plan.routes,
            vec![NodeRoute {
                cidr: cidr("10.32.2.0/24"),
                via: "10.79.0.12".parse().unwrap(),
                node: "minion2".into()
            }]
        );
        assert_eq!(plan.left_out.len(), 2, "{:?}", plan.left_out);
        assert!(!plan.settled());
        assert!(
            plan.left_out
                .iter()
                .any(|l| l.contains("minion3") && l.contains("no podCIDR"))
        );
        assert!(
            plan.left_out
                .iter()
                .any(|l| l.contains("stray") && l.contains("DNS"))
        );
        assert!(
            describe(Some(cidr("10.32.1.0/24")), &plan)
                .contains("10.32.2.0/24 via 10.79.0.12 (minion2)")
        );
    }

    #[test]
    fn a_listed_address_without_a_node_is_not_settled_and_a_full_set_is() {
        let nodes = vec![
            node("minion1", "10.79.0.11", Some("10.32.1.0/24")),
            node("minion2", "10.79.0.12", Some("10.32.2.0/24")),
        ];
        let own = ips(&["10.79.0.11"]);
        let early = plan_routes(
            &nodes,
            &ips(&["10.79.0.11", "10.79.0.12", "10.79.0.13"]),
            &own,
            None,
        );
        assert_eq!(early.routes.len(), 1);
        assert_eq!(
            early.left_out,
            vec!["10.79.0.13: no Node with this InternalIP yet"]
        );
        assert!(!early.settled());
        let full = plan_routes(&nodes, &ips(&["10.79.0.11", "10.79.0.12"]), &own, None);
        assert!(full.settled(), "{:?}", full.left_out);
    }

    #[test]
    fn overlapping_pod_ranges_get_no_route() {
        let nodes = vec![
            node("a", "10.79.0.11", Some("10.32.2.0/24")),
            node("b", "10.79.0.12", Some("10.32.2.0/24")),
            node("c", "10.79.0.13", Some("10.32.1.0/24")),
            node("d", "10.79.0.14", Some("10.32.5.0/24")),
        ];
        let plan = plan_routes(
            &nodes,
            &ips(&["10.79.0.11", "10.79.0.12", "10.79.0.13", "10.79.0.14"]),
            &ips(&["10.79.0.10"]),
            Some(cidr("10.32.1.0/24")),
        );
        assert_eq!(plan.routes.len(), 1);
        assert_eq!(plan.routes[0].node, "d");
        assert_eq!(plan.left_out.len(), 3, "{:?}", plan.left_out);
    }

    #[test]
    fn changes_set_what_is_missing_or_elsewhere_and_remove_the_rest() {
        let wanted = vec![
            NodeRoute {
                cidr: cidr("10.32.2.0/24"),
                via: "10.79.0.12".parse().unwrap(),
                node: "m2".into(),
            },
            NodeRoute {
                cidr: cidr("10.32.3.0/24"),
                via: "10.79.0.13".parse().unwrap(),
                node: "m3".into(),
            },
        ];
        let installed = vec![
            InstalledRoute {
                cidr: cidr("10.32.2.0/24"),
                via: Some("10.79.0.12".parse().unwrap()),
            },
            InstalledRoute {
                cidr: cidr("10.32.3.0/24"),
                via: Some("10.79.0.99".parse().unwrap()),
            },
            InstalledRoute {
                cidr: cidr("10.32.4.0/24"),
                via: Some("10.79.0.14".parse().unwrap()),
            },
        ];
        assert_eq!(
            route_changes(&wanted, &installed),
            vec![
                RouteChange::Set {
                    cidr: cidr("10.32.3.0/24"),
                    via: "10.79.0.13".parse().unwrap()
                },
                RouteChange::Remove {
                    cidr: cidr("10.32.4.0/24")
                }
            ]
        );
        assert!(route_changes(&wanted[..1], &installed[..1]).is_empty());
    }

    #[test]
    fn ip_json_routes_are_read() {
        let json = br#"[{"dst":"10.32.2.0/24","gateway":"10.79.0.12","dev":"host0","protocol":"107","flags":[]},
                        {"dst":"10.32.9.9","dev":"host0","flags":[]}]"#;
        let routes = parse_installed_routes(json).unwrap();
        assert_eq!(routes[0].via, Some("10.79.0.12".parse().unwrap()));
        assert_eq!(routes[1].cidr, cidr("10.32.9.9/32"));
        assert_eq!(routes[1].via, None);
        assert!(parse_installed_routes(b"\n").unwrap().is_empty());
        assert!(parse_installed_routes(b"garbage").is_err());
    }

    #[test]
    fn the_egress_rule_masquerades_only_what_leaves_the_pod_network() {
        let rule = egress_rule(cidr("10.32.1.0/24")).join(" ");
        assert!(rule.starts_with("-s 10.32.1.0/24 ! -d 10.32.0.0/12 "));
        assert!(rule.ends_with("-j MASQUERADE"));
    }
}
