//! Ready means working — pure: which health checks a node must pass before the agent calls it Ready (and keeps
//! passing while it is), and what their answers mean. The edge that asks is `k8s_agent::edge::health`.
//!
//! | role | check | why |
//! |---|---|---|
//! | master | etcd `http://127.0.0.1:2381/health` | etcd's own health (its metrics listener, loopback only) |
//! | master | kube-apiserver `https://127.0.0.1:6443/livez` | the API server is alive (readiness was checked before the join objects) |
//! | master | kube-controller-manager `https://127.0.0.1:10257/healthz` | it signs and approves kubelets' certificates |
//! | master | kube-scheduler `https://127.0.0.1:10259/healthz` | pods get nodes |
//! | minion | kubelet `http://127.0.0.1:10248/healthz` | kubelet's own health endpoint |
//! | minion | kube-proxy `http://127.0.0.1:10256/healthz` | 200 only once its rules are synced |
//! | minion (TLS join) | the Node object `<name>` is `Ready` | what `kubectl get nodes` shows: kubelet registered and reports the runtime and network ready |
//! | any, `CNI=bridge` | pod routes: one per other node the minions' record lists, via its address (set when missing) | pods reach pods on other nodes ([`crate::pod_network`]) |
//!
//! The HTTPS endpoints on loopback are the components' own self-signed serving certificates (kubeadm's layout):
//! the agent sends no credentials there and reads only the status code, so it does not verify them. The Node is read
//! with kubelet's own client certificate, the API server verified against the cluster CA.
//!
//! While Ready, the executor repeats the checks every [`READY_RECHECK`]: a unit that keeps restarting (or a Node
//! the API server reports NotReady) turns the node back to waiting in [`crate::plan::Phase::ComponentsHealthy`], with
//! the unit's state and its own last log line, until it is healthy again. A check that could not be made because the
//! API server did not answer (`unknown`) keeps a Ready node Ready: a master's outage is the master's problem, and
//! the minion's own components still answer. On the way up it counts as not healthy yet.

use crate::node_role::NodeRole;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How often a Ready node's checks are repeated.
pub const READY_RECHECK: Duration = Duration::from_secs(30);

/// One thing to check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum HealthCheck {
    /// `GET url` on loopback answers 200; `unit` runs the component.
    Endpoint {
        component: String,
        unit: String,
        url: String,
    },
    /// The Node object `node` has condition Ready=True (read with kubelet's credentials).
    NodeReady { node: String },
    /// `CNI=bridge`: the routes to the other nodes' pods match the Nodes the minions' record `minions` lists
    /// (brought in line when they do not: [`crate::pod_network`]); read with `kubeconfig` (relative to the
    /// root: kubelet.conf on a minion, admin.conf on a master); `node` is this node's Node name (a minion).
    PodRoutes {
        minions: String,
        kubeconfig: String,
        node: Option<String>,
    },
}

impl HealthCheck {
    /// Short name for sentences (`kubelet`, `node minion1`).
    pub fn label(&self) -> String {
        match self {
            HealthCheck::Endpoint { component, .. } => component.clone(),
            HealthCheck::NodeReady { node } => format!("node {node}"),
            HealthCheck::PodRoutes { .. } => "pod routes".to_string(),
        }
    }

    fn endpoint(component: &str, unit: &str, url: &str) -> HealthCheck {
        HealthCheck::Endpoint {
            component: component.to_string(),
            unit: unit.to_string(),
            url: url.to_string(),
        }
    }
}

/// How one check fared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReport {
    pub check: HealthCheck,
    pub healthy: bool,
    /// Not healthy only because it could not be asked (the API server did not answer).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unknown: bool,
    /// What was seen: `200`, `connection refused; kubelet.service activating/auto-restart (restarted 4 times),
    /// its last line: …`, `Ready=False (KubeletNotReady: …)`.
    pub detail: String,
}

/// The checks for a node of `role`; `node` is its Node name when kubelet joined over TLS (the Node can be read).
pub fn checks_for(role: NodeRole, node: Option<&str>) -> Vec<HealthCheck> {
    match role {
        NodeRole::Master => vec![
            HealthCheck::endpoint("etcd", "etcd.service", "http://127.0.0.1:2381/health"),
            HealthCheck::endpoint(
                "kube-apiserver",
                "kube-apiserver.service",
                "https://127.0.0.1:6443/livez",
            ),
            HealthCheck::endpoint(
                "kube-controller-manager",
                "kube-controller-manager.service",
                "https://127.0.0.1:10257/healthz",
            ),
            HealthCheck::endpoint(
                "kube-scheduler",
                "kube-scheduler.service",
                "https://127.0.0.1:10259/healthz",
            ),
        ],
        NodeRole::Minion => {
            let mut checks = vec![
                HealthCheck::endpoint(
                    "kubelet",
                    "kubelet.service",
                    "http://127.0.0.1:10248/healthz",
                ),
                HealthCheck::endpoint(
                    "kube-proxy",
                    "kube-proxy.service",
                    "http://127.0.0.1:10256/healthz",
                ),
            ];
            if let Some(node) = node {
                checks.push(HealthCheck::NodeReady {
                    node: node.to_string(),
                });
            }
            checks
        }
    }
}

/// The `CNI=bridge` route check of a node of `role` (`node`: a minion's Node name), against the minions' record.
pub fn pod_routes_check(role: NodeRole, node: Option<&str>, minions: &str) -> HealthCheck {
    HealthCheck::PodRoutes {
        minions: minions.to_string(),
        kubeconfig: match role {
            NodeRole::Master => "etc/kubernetes/admin.conf".to_string(),
            NodeRole::Minion => "etc/kubernetes/kubelet.conf".to_string(),
        },
        node: node.map(str::to_string),
    }
}

/// True when every check passed (and there was at least one).
pub fn all_healthy(reports: &[HealthReport]) -> bool {
    !reports.is_empty() && reports.iter().all(|r| r.healthy)
}

/// While Ready: every check passed or could not be asked (see the module documentation).
pub fn still_ready(reports: &[HealthReport]) -> bool {
    reports.iter().all(|r| r.healthy || r.unknown)
}

/// The failing checks in one sentence: `kubelet: …; node minion1: …`.
pub fn failing_summary(reports: &[HealthReport]) -> String {
    reports
        .iter()
        .filter(|r| !r.healthy)
        .map(|r| format!("{}: {}", r.check.label(), r.detail))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Of a unit's last log lines (oldest first), the last one that reads as an error — a klog error or fatal line
/// (`E1205 …`, `F1205 …`), or one that says error/failed/fatal/refused — else the last line; `None` when empty.
pub fn last_error_line(text: &str) -> Option<&str> {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("-- No entries --"))
        .collect();
    let klog_error = |l: &str| {
        let b = l.as_bytes();
        b.len() > 5 && (b[0] == b'E' || b[0] == b'F') && b[1..5].iter().all(u8::is_ascii_digit)
    };
    let says_error = |l: &str| {
        let lower = l.to_ascii_lowercase();
        ["error", "failed", "fatal", "refused", "unknown flag"]
            .iter()
            .any(|w| lower.contains(w))
    };
    lines
        .iter()
        .rev()
        .find(|l| klog_error(l))
        .or_else(|| lines.iter().rev().find(|l| says_error(l)))
        .or(lines.last())
        .copied()
}

/// The Ready condition of a Node object, from its JSON (`GET /api/v1/nodes/<name>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeReadiness {
    /// `True`, `False` or `Unknown`; `None` when the Node has no Ready condition yet.
    pub status: Option<String>,
    pub reason: Option<String>,
    pub message: Option<String>,
    /// `status.nodeInfo.kubeletVersion`.
    pub kubelet_version: Option<String>,
}

impl NodeReadiness {
    pub fn is_ready(&self) -> bool {
        self.status.as_deref() == Some("True")
    }

    /// `Ready=True (kubelet v1.37.2)`, `Ready=False (KubeletNotReady: container runtime network not ready)`.
    pub fn describe(&self) -> String {
        let status = self.status.as_deref().unwrap_or("(no Ready condition yet)");
        let why = match (&self.reason, &self.message) {
            (Some(r), Some(m)) if !m.is_empty() => format!("{r}: {m}"),
            (Some(r), _) => r.clone(),
            (None, Some(m)) => m.clone(),
            (None, None) => String::new(),
        };
        let version = self
            .kubelet_version
            .as_ref()
            .map(|v| format!("kubelet {v}"))
            .unwrap_or_default();
        let extra: Vec<&str> = [why.as_str(), version.as_str()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect();
        if extra.is_empty() {
            format!("Ready={status}")
        } else {
            format!("Ready={status} ({})", extra.join(", "))
        }
    }
}

/// The part of a Node object the Ready check reads (`status.conditions`, `status.nodeInfo.kubeletVersion`): a small
/// view rather than k8s-openapi's whole `Node`, whose deserializer would add about 100 KiB to the agent.
#[derive(Deserialize)]
struct NodeView {
    #[serde(default)]
    status: Option<NodeStatusView>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NodeStatusView {
    #[serde(default)]
    conditions: Vec<NodeConditionView>,
    #[serde(default)]
    node_info: Option<NodeInfoView>,
}

#[derive(Deserialize)]
struct NodeConditionView {
    #[serde(rename = "type")]
    type_: String,
    status: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NodeInfoView {
    #[serde(default)]
    kubelet_version: Option<String>,
}

/// Reads the Ready condition out of a Node's JSON.
pub fn node_readiness(json: &[u8]) -> Result<NodeReadiness, String> {
    let node: NodeView = serde_json::from_slice(json)
        .map_err(|e| format!("the API server's Node is not a Node: {e}"))?;
    let status = node.status;
    let ready = status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
    Ok(NodeReadiness {
        status: ready.map(|c| c.status.clone()),
        reason: ready.and_then(|c| c.reason.clone()),
        message: ready.and_then(|c| c.message.clone()),
        kubelet_version: status
            .as_ref()
            .and_then(|s| s.node_info.as_ref())
            .and_then(|i| i.kubelet_version.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minion_checks_kubelet_kube_proxy_and_its_node() {
        let checks = checks_for(NodeRole::Minion, Some("minion1"));
        let labels: Vec<String> = checks.iter().map(HealthCheck::label).collect();
        assert_eq!(labels, ["kubelet", "kube-proxy", "node minion1"]);
        assert_eq!(checks_for(NodeRole::Minion, None).len(), 2);
        let master: Vec<String> = checks_for(NodeRole::Master, None)
            .iter()
            .map(HealthCheck::label)
            .collect();
        assert_eq!(
            master,
            [
                "etcd",
                "kube-apiserver",
                "kube-controller-manager",
                "kube-scheduler"
            ]
        );
    }

    #[test]
    fn every_check_must_pass_and_the_failing_ones_are_named() {
        let ok = |c: HealthCheck| HealthReport {
            check: c,
            healthy: true,
            unknown: false,
            detail: "200".into(),
        };
        let mut reports: Vec<HealthReport> = checks_for(NodeRole::Minion, Some("m1"))
            .into_iter()
            .map(ok)
            .collect();
        assert!(all_healthy(&reports));
        assert!(!all_healthy(&[]));
        reports[1].healthy = false;
        reports[1].detail = "connection refused".into();
        assert!(!all_healthy(&reports));
        assert!(!still_ready(&reports));
        assert_eq!(failing_summary(&reports), "kube-proxy: connection refused");
        // The Node could not be read (the API server is down): not enough to reach Ready, not enough to leave it.
        reports[1].healthy = true;
        reports[2].healthy = false;
        reports[2].unknown = true;
        assert!(!all_healthy(&reports));
        assert!(still_ready(&reports));
    }

    #[test]
    fn a_units_last_error_is_picked_out_of_its_log() {
        let crash = "I1205 10:09:48.6 861 server.go:1] \"Starting\"\n\
                     E1205 10:09:48.69 861 run.go:72] \"command failed\" err=\"unable to create proxier\"\n\
                     I1205 10:09:48.70 861 server.go:2] \"bye\"\n";
        assert_eq!(
            last_error_line(crash),
            Some(
                "E1205 10:09:48.69 861 run.go:72] \"command failed\" err=\"unable to create proxier\""
            )
        );
        let usage = "Error: unknown flag: --no-such-flag\nUsage:\n  kube-proxy [flags]\n      --v Level  log level\n";
        assert_eq!(
            last_error_line(usage),
            Some("Error: unknown flag: --no-such-flag")
        );
        assert_eq!(last_error_line("I1205 all good\n"), Some("I1205 all good"));
        assert_eq!(last_error_line("-- No entries --\n"), None);
    }

    #[test]
    fn the_ready_condition_is_read_from_the_node() -> Result<(), String> {
        let ready = node_readiness(
            br#"{"apiVersion":"v1","kind":"Node","metadata":{"name":"m1"},
                 "status":{"conditions":[{"type":"MemoryPressure","status":"False"},
                   {"type":"Ready","status":"True","reason":"KubeletReady","message":"kubelet is posting ready status"}],
                   "nodeInfo":{"kubeletVersion":"v1.37.2","architecture":"amd64","bootID":"","containerRuntimeVersion":"",
                     "kernelVersion":"","kubeProxyVersion":"","machineID":"","operatingSystem":"linux","osImage":"","systemUUID":""}}}"#,
        )?;
        assert!(ready.is_ready());
        assert_eq!(
            ready.describe(),
            "Ready=True (KubeletReady: kubelet is posting ready status, kubelet v1.37.2)"
        );
        let not_ready = node_readiness(
            br#"{"metadata":{"name":"m1"},"status":{"conditions":[{"type":"Ready","status":"False",
                 "reason":"KubeletNotReady","message":"container runtime network not ready"}]}}"#,
        )?;
        assert!(!not_ready.is_ready());
        assert!(
            not_ready
                .describe()
                .contains("KubeletNotReady: container runtime network not ready")
        );
        let fresh = node_readiness(br#"{"metadata":{"name":"m1"}}"#)?;
        assert!(!fresh.is_ready());
        assert_eq!(fresh.describe(), "Ready=(no Ready condition yet)");
        assert!(node_readiness(b"<html>").is_err());
        Ok(())
    }
}
