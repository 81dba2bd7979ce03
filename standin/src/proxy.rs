//! The stand-in **kube-proxy**: checks that its credentials can do what kube-proxy does at start, then idles
//! (it programs no rules).
//!
//! `--config` (KubeProxyConfiguration, `kubeproxy.config.k8s.io/v1alpha1`) must parse; its
//! `clientConnection.kubeconfig` (or `--kubeconfig`) must load. With that identity it gets its Node
//! (`--hostname-override` or the host name; a missing Node is only a warning, as upstream), lists Services
//! and EndpointSlices — what system:node-proxier grants. A 401 or 403 is `error: ...` and exit 1 (systemd
//! restarts the unit); an unreachable API server is retried for 30 s first. `healthzBindAddress` (default
//! `0.0.0.0:10256`) serves `GET /healthz` with a JSON document as upstream's.

use crate::common::client::Client;
use crate::common::flags::{self, Spec};
use crate::common::{kubeconfig, log, read_small_file, str_at, time};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The name this mode answers to.
pub const NAME: &str = "kube-proxy";

/// What kube-proxy reads from its configuration file.
#[derive(Debug, PartialEq, Eq)]
pub struct Config {
    pub kubeconfig: Option<PathBuf>,
    pub healthz: Option<SocketAddr>,
}

/// Reads a KubeProxyConfiguration file.
pub fn read_config(path: &Path) -> Result<Config, String> {
    let shown = format!("--config {}", path.display());
    let bytes = read_small_file("--config", path)?;
    let config: Value =
        serde_yaml_ng::from_slice(&bytes).map_err(|e| format!("{shown}: does not parse ({e})"))?;
    let kind = str_at(&config, &["kind"]);
    let version = str_at(&config, &["apiVersion"]);
    if kind != "KubeProxyConfiguration" || version != "kubeproxy.config.k8s.io/v1alpha1" {
        return Err(format!(
            "{shown}: not a KubeProxyConfiguration (apiVersion {version:?}, kind {kind:?}; expected kubeproxy.config.k8s.io/v1alpha1 KubeProxyConfiguration)"
        ));
    }
    let kubeconfig = match str_at(&config, &["clientConnection", "kubeconfig"]) {
        "" => None,
        p => Some(PathBuf::from(p)),
    };
    let healthz = match config.get("healthzBindAddress").and_then(Value::as_str) {
        Some("") => None,
        Some(a) => Some(
            parse_address(a, 10256)
                .ok_or_else(|| format!("{shown}: healthzBindAddress {a:?} is not an address"))?,
        ),
        None => Some(SocketAddr::from(([0, 0, 0, 0], 10256))),
    };
    Ok(Config {
        kubeconfig,
        healthz,
    })
}

/// `ip:port`, `[ip6]:port` or a bare IP (with `default_port`).
fn parse_address(a: &str, default_port: u16) -> Option<SocketAddr> {
    a.parse::<SocketAddr>().ok().or_else(|| {
        a.parse::<std::net::IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, default_port))
    })
}

/// Runs the stand-in kube-proxy; returns only on an error.
pub fn run(args: &[String]) -> ExitCode {
    match start(args) {
        Ok(client) => idle(&client),
        Err(e) => crate::common::fail(&e),
    }
}

fn start(args: &[String]) -> Result<Client, String> {
    let p = flags::parse(
        &Spec {
            program: NAME,
            values: &["config", "hostname-override", "kubeconfig"],
            bools: &[],
        },
        args,
    )?;
    let config = match p.last("config").filter(|v| !v.is_empty()) {
        Some(c) => read_config(Path::new(c))?,
        None => Config {
            kubeconfig: None,
            healthz: Some(SocketAddr::from(([0, 0, 0, 0], 10256))),
        },
    };
    let kubeconfig_path = p
        .last("kubeconfig")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or(config.kubeconfig)
        .ok_or("no kubeconfig: set clientConnection.kubeconfig in --config (the stand-in runs no in-cluster configuration)")?;
    let k = kubeconfig::load("clientConnection.kubeconfig", &kubeconfig_path)?;
    let client = Client::from_kubeconfig(&k)?;
    let node = match p
        .last("hostname-override")
        .map(str::trim)
        .filter(|v| !v.is_empty())
    {
        Some(n) => n.to_ascii_lowercase(),
        None => crate::common::hostname(),
    };
    if let Some(address) = config.healthz {
        let node_for_health = node.clone();
        let served = crate::common::health::serve(address, move || {
            let now = time::rfc3339(time::now());
            let body = json!({"lastUpdated": now, "currentTime": now, "nodeName": node_for_health, "nodeEligible": true, "standIn": "k8s-image demo"});
            ("application/json", body.to_string())
        });
        match served {
            Ok(at) => log(&format!("serving http://{at}/healthz")),
            Err(e) => log(&format!("healthz: {e}")),
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let get = |path: &str| -> Result<crate::common::client::Reply, String> {
        loop {
            match client.get(path) {
                Ok(r) => return Ok(r),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(e) => {
                    log(&format!("{e}; retrying"));
                    std::thread::sleep(Duration::from_secs(2));
                }
            }
        }
    };
    let denied = |r: &crate::common::client::Reply, what: &str| -> Result<(), String> {
        match r.status {
            401 | 403 => Err(format!(
                "{what} with {}: {} {} (kube-proxy needs the rights of ClusterRole system:node-proxier)",
                kubeconfig_path.display(),
                r.status,
                r.message()
            )),
            s if (200..300).contains(&s) => Ok(()),
            s => Err(format!("{what}: {s} {}", r.message())),
        }
    };
    let r = get(&format!("/api/v1/nodes/{node}"))?;
    if r.status == 404 {
        log(&format!(
            "Node {node:?} not found (yet); carrying on without its addresses"
        ));
    } else {
        denied(&r, &format!("failed to get node {node:?}"))?;
    }
    let services = get("/api/v1/services?limit=500")?;
    denied(&services, "failed to list *v1.Service")?;
    let slices = get("/apis/discovery.k8s.io/v1/endpointslices?limit=500")?;
    denied(&slices, "failed to list *v1.EndpointSlice")?;
    let count = |r: &crate::common::client::Reply| {
        r.body
            .get("items")
            .and_then(Value::as_array)
            .map_or(0, Vec::len)
    };
    log(&format!(
        "listed {} services and {} endpointslices from {} as node {node:?}; the stand-in programs no rules and now idles",
        count(&services),
        count(&slices),
        client.server()
    ));
    Ok(client)
}

fn idle(client: &Client) -> ExitCode {
    loop {
        std::thread::sleep(Duration::from_secs(30));
        match client.get("/apis/discovery.k8s.io/v1/endpointslices?limit=500") {
            Ok(r) if r.status == 200 => {}
            Ok(r) => log(&format!(
                "failed to list *v1.EndpointSlice: {} {}",
                r.status,
                r.message()
            )),
            Err(e) => log(&format!("failed to list *v1.EndpointSlice: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nodes_config_file_is_read() {
        let config = include_str!("../../files/etc/kubernetes/kube-proxy/config.yaml");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.yaml");
        std::fs::write(&p, config).unwrap();
        assert_eq!(
            read_config(&p).unwrap(),
            Config {
                kubeconfig: Some(PathBuf::from("/etc/kubernetes/kube-proxy.conf")),
                healthz: Some(SocketAddr::from(([0, 0, 0, 0], 10256))),
            }
        );
        std::fs::write(&p, "apiVersion: v1\nkind: Config\n").unwrap();
        assert!(
            read_config(&p)
                .unwrap_err()
                .contains("not a KubeProxyConfiguration")
        );
        assert_eq!(
            parse_address("127.0.0.1", 1),
            Some(SocketAddr::from(([127, 0, 0, 1], 1)))
        );
    }
}
