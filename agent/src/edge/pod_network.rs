//! The routed-bridge pod network (`CNI=bridge`) on the host — the edge of [`crate::pure::pod_network`]: reads
//! the Node objects (kubelet's credentials on a minion, admin.conf on a master), writes the node's CNI
//! configuration, keeps the masquerade rule for pod traffic leaving the pod network (`iptables`) and the routes to
//! the other nodes' pods (`ip route … proto 107`). iproute2 and iptables are on every node (kube-proxy needs
//! iptables); calling them keeps the agent free of a netlink stack of its own.

use crate::edge::kube_api::{KubeApi, KubeApiError};
use crate::pure::pod_network::{
    self, InstalledRoute, Ipv4Cidr, NodeEntry, ROUTE_PROTOCOL, RouteChange, SetUpOutcome,
};
use k8s_core::atomic_file::atomic_write;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

/// Why the routes could not be brought in line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncError {
    /// The API server did not answer: nothing was changed.
    NoAnswer(String),
    /// Anything else (the answer, `ip`, `iptables`).
    Other(String),
}

/// A minion: reads its Node's `spec.podCIDR` with kubelet's credentials, writes the bridge CNI configuration for
/// it (only when it differs) and adds the masquerade rule for pod traffic leaving the pod network.
pub async fn set_up(
    root: &Path,
    node: &str,
    connect_to: &[IpAddr],
    timeout: Duration,
) -> SetUpOutcome {
    let api = match KubeApi::from_kubeconfig(
        root,
        crate::edge::health::KUBELET_CONF,
        connect_to,
        timeout,
    ) {
        Ok(api) => api,
        Err(reason) => return SetUpOutcome::Failed { reason },
    };
    let body = match api.get(&format!("/api/v1/nodes/{node}")).await {
        Ok(Some(body)) => body,
        Ok(None) => {
            return SetUpOutcome::NotYet {
                reason: format!("the Node {node} is not registered yet (kubelet registers it)"),
            };
        }
        Err(e @ (KubeApiError::Unreachable(_) | KubeApiError::Timeout { .. })) => {
            return SetUpOutcome::NotYet {
                reason: format!("the API server did not answer: {e}"),
            };
        }
        Err(e) => {
            return SetUpOutcome::Failed {
                reason: e.to_string(),
            };
        }
    };
    let entry = match pod_network::parse_nodes(&body) {
        Ok(mut nodes) if nodes.len() == 1 => nodes.remove(0),
        Ok(_) => {
            return SetUpOutcome::Failed {
                reason: format!("GET /api/v1/nodes/{node} did not answer one Node"),
            };
        }
        Err(e) => {
            return SetUpOutcome::Failed {
                reason: format!("GET /api/v1/nodes/{node}: {e}"),
            };
        }
    };
    let pod_cidr = match entry
        .pod_cidr
        .as_deref()
        .map(pod_network::validate_pod_cidr)
    {
        None => {
            return SetUpOutcome::NotYet {
                reason: format!(
                    "the Node {node} has no podCIDR yet (kube-controller-manager allocates it with \
                     --allocate-node-cidrs; `kubectl get node {node} -o jsonpath='{{.spec.podCIDR}}'`)"
                ),
            };
        }
        Some(Err(e)) => {
            return SetUpOutcome::Failed {
                reason: format!("the Node {node}'s podCIDR: {e}"),
            };
        }
        Some(Ok(c)) => c,
    };
    let path = root.join(pod_network::BRIDGE_CNI_CONFIG);
    let config = pod_network::render_bridge_cni_config(pod_cidr);
    if std::fs::read_to_string(&path).ok().as_deref() != Some(config.as_str()) {
        if let Some(dir) = path.parent()
            && let Err(e) = std::fs::create_dir_all(dir)
        {
            return SetUpOutcome::Failed {
                reason: format!("cannot create {}: {e}", dir.display()),
            };
        }
        if let Err(e) = atomic_write(&path, config.as_bytes(), 0o644) {
            return SetUpOutcome::Failed {
                reason: format!("cannot write {}: {e}", path.display()),
            };
        }
        tracing::info!(path = %path.display(), %pod_cidr, "pod network configuration written");
    }
    if let Err(reason) = ensure_egress_rule(pod_cidr).await {
        return SetUpOutcome::Failed { reason };
    }
    SetUpOutcome::Ready { pod_cidr }
}

/// Brings the agent's routes in line with the nodes the minions' record lists (`peers`): lists the Nodes with
/// the credentials of `kubeconfig` (relative to `root`), plans ([`pod_network::plan_routes`]) and changes only
/// what differs. `node` is this node's Node name (a minion) or `None` (a master: no pods of its own). Returns
/// [`pod_network::describe`]'s line and whether the plan is [`pod_network::RoutePlan::settled`].
pub async fn sync_routes(
    root: &Path,
    kubeconfig: &str,
    node: Option<&str>,
    connect_to: &[IpAddr],
    peers: &[IpAddr],
    own_addrs: &[IpAddr],
    timeout: Duration,
) -> Result<(String, bool), SyncError> {
    let api = KubeApi::from_kubeconfig(root, kubeconfig, connect_to, timeout)
        .map_err(SyncError::Other)?;
    let body = match api.get("/api/v1/nodes").await {
        Ok(Some(body)) => body,
        Ok(None) => return Err(SyncError::Other("GET /api/v1/nodes: 404".into())),
        Err(e @ (KubeApiError::Unreachable(_) | KubeApiError::Timeout { .. })) => {
            return Err(SyncError::NoAnswer(format!(
                "the API server did not answer: {e}"
            )));
        }
        Err(e) => return Err(SyncError::Other(e.to_string())),
    };
    let nodes: Vec<NodeEntry> = pod_network::parse_nodes(&body)
        .map_err(|e| SyncError::Other(format!("GET /api/v1/nodes: {e}")))?;
    let own = node.and_then(|name| nodes.iter().find(|n| n.name == name));
    let own_pod_cidr = own
        .and_then(|n| n.pod_cidr.as_deref())
        .and_then(|c| pod_network::validate_pod_cidr(c).ok());
    let mut own_addrs = own_addrs.to_vec();
    if let Some(ip) = own.and_then(|n| n.internal_ip) {
        own_addrs.push(IpAddr::V4(ip));
    }
    let plan = pod_network::plan_routes(&nodes, peers, &own_addrs, own_pod_cidr);
    let installed = installed_routes().await.map_err(SyncError::Other)?;
    for change in pod_network::route_changes(&plan.routes, &installed) {
        apply(&change).await.map_err(SyncError::Other)?;
        tracing::info!(?change, "pod route changed");
    }
    Ok((pod_network::describe(own_pod_cidr, &plan), plan.settled()))
}

/// The routes the agent made (protocol [`ROUTE_PROTOCOL`]).
async fn installed_routes() -> Result<Vec<InstalledRoute>, String> {
    let proto = ROUTE_PROTOCOL.to_string();
    let out = run("ip", &["-4", "-json", "route", "show", "proto", &proto]).await?;
    pod_network::parse_installed_routes(out.as_bytes())
}

async fn apply(change: &RouteChange) -> Result<(), String> {
    let proto = ROUTE_PROTOCOL.to_string();
    match change {
        RouteChange::Set { cidr, via } => {
            let (cidr, via) = (cidr.to_string(), via.to_string());
            run(
                "ip",
                &["route", "replace", &cidr, "via", &via, "proto", &proto],
            )
            .await
            .map(drop)
        }
        RouteChange::Remove { cidr } => {
            let cidr = cidr.to_string();
            run("ip", &["route", "del", &cidr, "proto", &proto])
                .await
                .map(drop)
        }
    }
}

/// `iptables -t nat -C POSTROUTING <rule>`, and `-A` when it is not there.
async fn ensure_egress_rule(pod_cidr: Ipv4Cidr) -> Result<(), String> {
    let rule = pod_network::egress_rule(pod_cidr);
    let with = |op: &'static str| {
        let mut args: Vec<&str> = vec!["-w", "5", "-t", "nat", op, "POSTROUTING"];
        args.extend(rule.iter().map(String::as_str));
        args
    };
    if run("iptables", &with("-C")).await.is_ok() {
        return Ok(());
    }
    run("iptables", &with("-A")).await.map(drop)
}

/// Runs a host tool; its stdout, or an error with its exit and last stderr line.
async fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(10), cmd.output())
        .await
        .map_err(|_| format!("`{program} {}` did not finish in 10 s", args.join(" ")))?
        .map_err(|e| format!("cannot run {program}: {e} (is it installed?)"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            err.lines().last().unwrap_or("").trim()
        ))
    }
}
