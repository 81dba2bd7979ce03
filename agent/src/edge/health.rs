//! Runs the health checks [`crate::pure::health`] decides (the edge): `GET` on the components' loopback health
//! endpoints, the Node object read with kubelet's own credentials, and — for a failing component — its unit's state
//! and its own last log line (`journalctl -u UNIT -n 1`), so the reason a node is not Ready is the component's.

use crate::edge::kube_api::{Identity, KubeApi, KubeApiError, ServerTrust};
use crate::pure::health::{self, HealthCheck, HealthReport};
use crate::systemd::UnitState;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

/// kubelet's kubeconfig after its TLS bootstrap (kubeadm's path), relative to the root.
pub const KUBELET_CONF: &str = "etc/kubernetes/kubelet.conf";
/// At most this much of a unit's last log line goes into a reason.
const MAX_LOG_LINE: usize = 300;

/// Runs every check; `unit_states` are the units' live states (for failing endpoints), `connect_to` the masters.
pub async fn check(
    root: &Path,
    checks: &[HealthCheck],
    connect_to: &[IpAddr],
    unit_states: &[UnitState],
    timeout: Duration,
) -> Vec<HealthReport> {
    let mut reports = Vec::with_capacity(checks.len());
    for c in checks {
        let (healthy, unknown, detail) = match c {
            HealthCheck::Endpoint { unit, url, .. } => match endpoint(url, timeout).await {
                Ok(200) => (true, false, "200".to_string()),
                Ok(code) => (
                    false,
                    false,
                    format!(
                        "{url} answered HTTP {code}{}",
                        unit_words(unit, unit_states).await
                    ),
                ),
                Err(reason) => (
                    false,
                    false,
                    format!("{reason}{}", unit_words(unit, unit_states).await),
                ),
            },
            HealthCheck::NodeReady { node } => {
                match node_ready(root, node, connect_to, timeout).await {
                    Ok(readiness) => (readiness.is_ready(), false, readiness.describe()),
                    Err(NodeReadError::NoAnswer(reason)) => (false, true, reason),
                    Err(NodeReadError::Other(reason)) => (false, false, reason),
                }
            }
            // Needs the resolver: the executor runs it ([`crate::edge::pod_network::sync_routes`]).
            HealthCheck::PodRoutes { .. } => {
                (false, true, "checked by the executor, not here".to_string())
            }
        };
        reports.push(HealthReport {
            check: c.clone(),
            healthy,
            unknown,
            detail,
        });
    }
    reports
}

/// The status code of `GET url` (loopback; a self-signed serving certificate is accepted: nothing is sent).
async fn endpoint(url: &str, timeout: Duration) -> Result<u16, String> {
    let Some((base, path)) = split_url(url) else {
        return Err(format!("{url} is not a URL"));
    };
    let api = KubeApi::new(
        base,
        &[],
        &ServerTrust::AnyCertificate,
        &Identity::Anonymous,
        timeout,
    )
    .map_err(|e| e.to_string())?;
    api.status_of(path).await.map_err(|e| e.to_string())
}

/// `https://127.0.0.1:6443/livez` → (`https://127.0.0.1:6443`, `/livez`).
fn split_url(url: &str) -> Option<(&str, &str)> {
    let after_scheme = url.find("://")? + 3;
    let slash = url[after_scheme..].find('/')? + after_scheme;
    Some((&url[..slash], &url[slash..]))
}

/// `; kubelet.service activating/auto-restart, its last line: …` for a failing component.
async fn unit_words(unit: &str, unit_states: &[UnitState]) -> String {
    let state = unit_states
        .iter()
        .find(|s| s.unit == unit)
        .map(|s| format!("; {unit} {}/{}", s.active_state, s.sub_state))
        .unwrap_or_default();
    let line = last_log_line(unit).await;
    match line {
        Some(line) => format!("{state}, its last line: {line}"),
        None => state,
    }
}

/// The unit's own last error on this boot: of the last lines its processes logged (not systemd's lines about the
/// unit), the last one that reads as an error ([`crate::pure::health::last_error_line`]), shortened.
async fn last_log_line(unit: &str) -> Option<String> {
    let mut cmd = tokio::process::Command::new("journalctl");
    cmd.args([
        "-b",
        &format!("_SYSTEMD_UNIT={unit}"),
        "-n",
        "40",
        "-o",
        "cat",
        "--no-pager",
    ])
    .stdin(std::process::Stdio::null())
    .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(5), cmd.output())
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = health::last_error_line(&text)?;
    let mut short: String = line.chars().take(MAX_LOG_LINE).collect();
    if short.len() < line.len() {
        short.push('…');
    }
    Some(short)
}

/// Why the Node could not be read.
enum NodeReadError {
    /// The API server did not answer (refused, unreachable, timed out).
    NoAnswer(String),
    /// Anything else: kubelet's files, the answer, a refusal.
    Other(String),
}

impl From<String> for NodeReadError {
    fn from(reason: String) -> Self {
        NodeReadError::Other(reason)
    }
}

/// The Node's Ready condition, read with kubelet's credentials (its kubeconfig names the server and the client
/// certificate), the API server verified against the cluster CA, connecting to one of the masters.
async fn node_ready(
    root: &Path,
    node: &str,
    connect_to: &[IpAddr],
    timeout: Duration,
) -> Result<health::NodeReadiness, NodeReadError> {
    let api = KubeApi::from_kubeconfig(root, KUBELET_CONF, connect_to, timeout)?;
    match api.get(&format!("/api/v1/nodes/{node}")).await {
        Ok(Some(body)) => Ok(health::node_readiness(&body)?),
        Ok(None) => Err(NodeReadError::Other(format!(
            "the Node {node} does not exist in the API yet (kubelet registers it; `journalctl -u kubelet`)"
        ))),
        Err(e @ (KubeApiError::Unreachable(_) | KubeApiError::Timeout { .. })) => Err(
            NodeReadError::NoAnswer(format!("the API server did not answer: {e}")),
        ),
        Err(e) => Err(NodeReadError::Other(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_base_and_path() {
        assert_eq!(
            split_url("https://127.0.0.1:6443/livez"),
            Some(("https://127.0.0.1:6443", "/livez"))
        );
        assert_eq!(
            split_url("http://127.0.0.1:10248/healthz"),
            Some(("http://127.0.0.1:10248", "/healthz"))
        );
        assert_eq!(split_url("127.0.0.1"), None);
    }
}
