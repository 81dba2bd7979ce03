//! The agent end to end on a real booted systemd (systemd-nspawn), against a real DNS server (dnsmasq) and a real
//! TLS server (openssl s_server) in the node's own network namespace.
//!
//! The node gets the repository's real units and role drop-ins, the agent binary and `k8s-agent.service`; the
//! Kubernetes daemons themselves are replaced by test doubles (drop-ins named `test-double.conf` that make each
//! `ExecStart=` a `sleep`; the "API server" is `openssl s_server -WWW` serving `/readyz` and a cluster-info
//! ConfigMap whose JWS the test computes with `openssl dgst -hmac`, not with the agent's code; the test plays
//! kubelet's TLS bootstrap by writing kubelet.conf and a CA-signed client certificate), because what is under test
//! is the agent: role file → host checks → waiting on `masters.prod.k8s` (NXDOMAIN, then refused) → token
//! discovery over verified TLS → healthy → Weave env from `minions.prod.k8s` → containerd, weave, kubelet started
//! over D-Bus in order → waiting for kubelet's credentials (kube-proxy not started yet) → kube-proxy → waiting until
//! the components answer their health checks (test doubles again: `python3 -m http.server` in the node's network
//! namespace answers kubelet's :10248/healthz and kube-proxy's :10256/healthz, the "API server" serves the Node
//! object, Ready=True, to kubelet's client certificate) → Ready. Then:
//! the role drop-in keeps a master unit off this minion; a SIGKILLed agent is restarted by systemd and resumes
//! without restarting units or rewriting weave.env; the bootstrap token never reaches the journal, the state or
//! `status`.

use k8s_agent::systemd::SystemdClient;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_k8s-agent");
const TOKEN_SECRET: &str = "0123456789abcdef";
const MINION_UNITS: [&str; 4] = [
    "containerd.service",
    "weave.service",
    "kubelet.service",
    "kube-proxy.service",
];

fn repo_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn sh(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A booted node; dropping it stops the helper processes and runs `node.sh down`.
struct Node {
    name: String,
    leader: u32,
    helpers: Vec<Child>,
}

impl Node {
    fn root(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root", self.leader))
    }

    fn netns(&self) -> String {
        format!("k8s-test-{}", self.name)
    }

    fn inside(&self, args: &[&str]) -> std::process::Output {
        Command::new("nsenter")
            .args(["-t", &self.leader.to_string(), "-a", "--"])
            .args(args)
            .output()
            .expect("nsenter")
    }

    fn write(&self, path: &str, contents: &[u8], mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        let target = self.root().join(path.trim_start_matches('/'));
        std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir in node");
        std::fs::write(&target, contents)
            .unwrap_or_else(|e| panic!("write {}: {e}", target.display()));
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    fn status_json(&self) -> (i32, serde_json::Value) {
        let out = self.inside(&["/usr/bin/k8s-agent", "status", "--json"]);
        let v = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        (out.status.code().unwrap_or(-1), v)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if std::thread::panicking() && self.leader != 0 {
            let j = self.inside(&["journalctl", "--no-pager", "-n", "60", "-u", "k8s-agent"]);
            eprintln!("--- agent journal:\n{}", String::from_utf8_lossy(&j.stdout));
            let s = self.inside(&["/usr/bin/k8s-agent", "status"]);
            eprintln!("--- status:\n{}", String::from_utf8_lossy(&s.stdout));
        }
        for child in &mut self.helpers {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new(repo_root().join("tests/nspawn/node.sh"))
            .args(["down", &self.name])
            .output();
    }
}

fn wait_until<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// CA + leaf for masters.prod.k8s, as PEM (the leaf's private key too), and the CA to sign kubelet's certificate.
fn certificates() -> (
    String,
    String,
    String,
    rcgen::Issuer<'static, rcgen::KeyPair>,
) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().expect("leaf key");
    let leaf = CertificateParams::new(vec!["masters.prod.k8s".to_string()])
        .expect("leaf params")
        .signed_by(&leaf_key, &issuer)
        .expect("leaf");
    (ca.pem(), leaf.pem(), leaf_key.serialize_pem(), issuer)
}

/// What kubelet's TLS bootstrap leaves: a client certificate for `system:node:<node>` (O system:nodes) with its key
/// in one PEM, as kubelet writes kubelet-client-current.pem.
fn kubelet_client_pem(issuer: &rcgen::Issuer<'static, rcgen::KeyPair>, node: &str) -> String {
    use rcgen::{CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair};
    let key = KeyPair::generate().expect("kubelet key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "system:nodes");
    dn.push(DnType::CommonName, format!("system:node:{node}"));
    params.distinguished_name = dn;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, issuer).expect("kubelet cert");
    format!("{}{}", cert.pem(), key.serialize_pem())
}

/// base64url without padding.
fn b64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The detached JWS the controller manager's bootstrapsigner puts into cluster-info, computed with the openssl CLI
/// (HMAC-SHA256), so the agent's verification is checked against an implementation that is not its own.
fn openssl_detached_jws(payload: &str, token_id: &str, secret: &str) -> String {
    let header = b64url(format!(r#"{{"alg":"HS256","kid":"{token_id}"}}"#).as_bytes());
    let input = format!("{header}.{}", b64url(payload.as_bytes()));
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-binary", "-hmac", secret])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl dgst");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("openssl dgst");
    assert!(
        out.status.success() && out.stdout.len() == 32,
        "openssl dgst -hmac"
    );
    format!("{header}..{}", b64url(&out.stdout))
}

/// A web root for `openssl s_server -WWW`: `/readyz` and kube-public/cluster-info (signed for the test token).
fn api_server_files(dir: &std::path::Path, ca_pem: &str) {
    use base64::Engine as _;
    let kubeconfig = format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: https://masters.prod.k8s:6443\n  name: \"\"\ncontexts: null\ncurrent-context: \"\"\nkind: Config\npreferences: {{}}\nusers: null\n",
        base64::engine::general_purpose::STANDARD.encode(ca_pem)
    );
    let jws = openssl_detached_jws(&kubeconfig, "abcdef", TOKEN_SECRET);
    let configmap = serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cluster-info", "namespace": "kube-public"},
        "data": {"kubeconfig": kubeconfig, "jws-kubeconfig-abcdef": jws},
    });
    let path = dir.join("api/v1/namespaces/kube-public/configmaps");
    std::fs::create_dir_all(&path).expect("web root");
    std::fs::write(path.join("cluster-info"), configmap.to_string()).expect("cluster-info");
    std::fs::write(dir.join("readyz"), "ok").expect("readyz");
    // The Node kubelet would have registered, Ready (read by the agent's health check with kubelet's certificate).
    let nodes = dir.join("api/v1/nodes");
    std::fs::create_dir_all(&nodes).expect("web root");
    let node = serde_json::json!({
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": "e2e-minion"},
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
            "message": "test double: kubelet is posting ready status"}]},
    });
    std::fs::write(nodes.join("e2e-minion"), node.to_string()).expect("node");
}

/// Test double for a component's health endpoint: `python3 -m http.server` on 127.0.0.1:`port` in the node's
/// network namespace, serving a `healthz` file (200).
fn health_endpoint_double(ns: &str, port: u16, dir: &std::path::Path) -> Child {
    std::fs::create_dir_all(dir).expect("health dir");
    std::fs::write(dir.join("healthz"), "ok").expect("healthz");
    Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "python3",
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
        ])
        .arg(port.to_string())
        .arg("--directory")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 -m http.server")
}

fn unit_prop(node: &Node, unit: &str, prop: &str) -> String {
    let out = node.inside(&["systemctl", "show", "-P", prop, unit]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn minion_comes_up_in_order_and_survives_a_killed_agent() {
    let missing: Vec<&str> = [
        "debootstrap",
        "systemd-nspawn",
        "dnsmasq",
        "openssl",
        "nsenter",
        "ip",
    ]
    .into_iter()
    .filter(|t| !have(t))
    .collect();
    if !missing.is_empty() || !nix::unistd::geteuid().is_root() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have root and {missing:?}"
        );
        eprintln!("skipped: needs root and {missing:?}");
        return;
    }
    let rootfs = sh(&mut Command::new(
        repo_root().join("tests/nspawn/rootfs.sh"),
    ));
    let rootfs = rootfs.lines().last().expect("rootfs path").to_string();
    let mut node = Node {
        name: "e2e-minion".to_string(),
        leader: 0,
        helpers: Vec::new(),
    };
    let out =
        sh(Command::new(repo_root().join("tests/nspawn/node.sh"))
            .args(["up", &node.name, &rootfs]));
    node.leader = out
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .expect("leader pid");
    let ns = node.netns();

    // The node's network: 10.77.0.2 is this minion, 10.77.0.1 the masters' endpoint; dnsmasq on 127.0.0.53.
    for args in [
        vec![
            "link", "add", "k8s0", "type", "veth", "peer", "name", "k8s1",
        ],
        vec!["addr", "add", "10.77.0.2/24", "dev", "k8s0"],
        vec!["addr", "add", "10.77.0.1/24", "dev", "k8s0"],
        vec!["link", "set", "k8s0", "up"],
        vec!["link", "set", "k8s1", "up"],
    ] {
        sh(Command::new("ip").args(["-n", &ns]).args(&args));
    }
    let work = tempfile::tempdir().expect("tempdir");
    let hosts = work.path().join("hosts");
    std::fs::write(&hosts, "10.77.0.2 minions.prod.k8s\n").expect("hosts");
    let dnsmasq = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns,
            "dnsmasq",
            "--no-daemon",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
        ])
        .arg(format!("--addn-hosts={}", hosts.display()))
        .args([
            "--listen-address=127.0.0.53",
            "--bind-interfaces",
            "--user=root",
            "--local=/k8s/",
            "--local-ttl=1",
        ])
        .stderr(Stdio::null())
        .spawn()
        .expect("dnsmasq");
    let dnsmasq_pid = dnsmasq.id();
    node.helpers.push(dnsmasq);

    // The node: agent binary, real units and role drop-ins, test doubles for the daemons, resolv.conf, CA, role.
    let (ca, leaf, leaf_key, issuer) = certificates();
    node.write(
        "/usr/bin/k8s-agent",
        &std::fs::read(BIN).expect("agent binary"),
        0o755,
    );
    for entry in std::fs::read_dir(repo_root().join("units")).expect("units") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name")
            .to_string();
        node.write(
            &format!("/etc/systemd/system/{name}"),
            &std::fs::read(&path).expect("unit"),
            0o644,
        );
    }
    for entry in std::fs::read_dir(repo_root().join("dropins")).expect("dropins") {
        let dir = entry.expect("entry").path();
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name")
            .to_string();
        let role = std::fs::read(dir.join("role.conf")).expect("role.conf");
        node.write(
            &format!("/etc/systemd/system/{name}/role.conf"),
            &role,
            0o644,
        );
        // Test double: the daemon is a sleep (weave keeps its required EnvironmentFile=/run/k8s-agent/weave.env).
        node.write(
            &format!("/etc/systemd/system/{name}/test-double.conf"),
            b"# test double: the real binary is replaced by a sleep\n[Service]\nType=simple\nExecStartPre=\nExecStart=\nExecStart=/bin/sleep infinity\n",
            0o644,
        );
    }
    node.write(
        "/etc/systemd/system/k8s-agent.service.d/test.conf",
        b"[Service]\nRestartSec=1s\nEnvironment=K8S_AGENT_LOG=debug\n",
        0o644,
    );
    node.write("/etc/resolv.conf", b"nameserver 127.0.0.53\n", 0o644);
    // The image's lock (test double: an image that bakes no container images, so ImportImages has nothing to do;
    // containerd here is a sleep. tests/local/images.sh imports real images into a real containerd).
    let lock = k8s_agent::image_info::ImageLock {
        lock_version: k8s_agent::image_info::LOCK_SCHEMA_VERSION,
        image_name: "node-e2e-test-double".into(),
        kubernetes_version: "1.35.0".into(),
        arch: "amd64".into(),
        source_date_epoch: 0,
        host_packages: Vec::new(),
        artifacts: Vec::new(),
    };
    node.write(
        "/usr/share/k8s-image/lock.json",
        &serde_json::to_vec(&lock).expect("lock json"),
        0o644,
    );
    node.write("/etc/kubernetes/pki/ca.crt", ca.as_bytes(), 0o644);
    node.write(
        "/etc/sysconfig/kubernetes-minions",
        format!(
            "CLUSTER_NAME=prod\nCA_CERT_FILE=/etc/kubernetes/pki/ca.crt\nWEAVE_CONSENSUS=1\nHOST_CHECKS=warn\nBOOTSTRAP_TOKEN=abcdef.{TOKEN_SECRET}\n"
        )
        .as_bytes(),
        0o600,
    );
    let www = work.path().join("www");
    api_server_files(&www, &ca);
    let leaf_path = work.path().join("leaf.pem");
    let key_path = work.path().join("leaf.key");
    std::fs::write(&leaf_path, &leaf).expect("leaf");
    std::fs::write(&key_path, &leaf_key).expect("key");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let bus = format!(
        "unix:path=/proc/{}/root/run/dbus/system_bus_socket",
        node.leader
    );
    let client = rt
        .block_on(SystemdClient::at_address(&bus))
        .expect("connect to the node's systemd");
    rt.block_on(async {
        systemd_zbus::ManagerProxy::new(client.connection())
            .await
            .expect("manager")
            .reload()
            .await
            .expect("reload")
    });
    let started = rt
        .block_on(client.start_units(&["k8s-agent.service".to_string()], Duration::from_secs(30)));
    assert!(
        started.is_ok(),
        "k8s-agent.service did not start: {started:?}"
    );

    // 1. No masters record: the agent waits, and says so in `status` and in systemd's StatusText (sd_notify).
    let (code, v) = wait_until(
        "the agent to wait on NXDOMAIN",
        Duration::from_secs(30),
        || {
            let (code, v) = node.status_json();
            (v["phase"] == "resolve-masters" && v["masters"]["result"]["kind"] == "nx-domain")
                .then_some((code, v))
        },
    );
    assert_eq!(code, 3, "status exit code while waiting: {v}");
    assert!(
        v["blocking"]
            .as_str()
            .unwrap_or("")
            .contains("masters.prod.k8s"),
        "{v}"
    );
    wait_until("sd_notify STATUS=", Duration::from_secs(10), || {
        unit_prop(&node, "k8s-agent.service", "StatusText")
            .contains("masters.prod.k8s")
            .then_some(())
    });
    for unit in MINION_UNITS {
        assert_eq!(
            unit_prop(&node, unit, "ActiveState"),
            "inactive",
            "{unit} started before the master answered"
        );
    }

    // 2. The record appears but nothing answers on 6443 yet: still waiting, now in token discovery.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&hosts)
        .and_then(|mut f| f.write_all(b"10.77.0.1 masters.prod.k8s\n"))
        .expect("add masters record");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(dnsmasq_pid as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .expect("reload dnsmasq");
    wait_until(
        "the agent to try discovery at the master",
        Duration::from_secs(30),
        || (node.status_json().1["phase"] == "discovery").then_some(()),
    );
    std::thread::sleep(Duration::from_millis(500));
    for unit in MINION_UNITS {
        assert_eq!(
            unit_prop(&node, unit, "ActiveState"),
            "inactive",
            "{unit} started before the master answered"
        );
    }

    // 3. The master answers over TLS (a certificate for masters.prod.k8s from the CA in CA_CERT_FILE), with
    //    cluster-info signed for the token and /readyz.
    let healthy_at = k8s_agent::executor::now_millis();
    let server = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns,
            "openssl",
            "s_server",
            "-quiet",
            "-WWW",
            "-accept",
            "10.77.0.1:6443",
        ])
        .arg("-cert")
        .arg(&leaf_path)
        .arg("-key")
        .arg(&key_path)
        .current_dir(&www)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_server");
    node.helpers.push(server);

    // 4. Joined by discovery; containerd, weave, kubelet run; kube-proxy waits for kubelet's credentials.
    let v = wait_until("kubelet's TLS bootstrap", Duration::from_secs(60), || {
        let v = node.status_json().1;
        (v["phase"] == "kubelet-bootstrap").then_some(v)
    });
    assert_eq!(
        v["join"]["discovered_server"], "https://masters.prod.k8s:6443",
        "{v}"
    );
    assert!(
        v["blocking"]
            .as_str()
            .unwrap_or("")
            .contains("kubelet has not written /etc/kubernetes/kubelet.conf"),
        "{v}"
    );
    let bootstrap =
        std::fs::read_to_string(node.root().join("etc/kubernetes/bootstrap-kubelet.conf"))
            .expect("bootstrap-kubelet.conf");
    assert!(
        bootstrap.contains(&format!("token: abcdef.{TOKEN_SECRET}"))
            && bootstrap.contains("server: https://masters.prod.k8s:6443"),
        "{bootstrap}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        unit_prop(&node, "kube-proxy.service", "ActiveState"),
        "inactive",
        "kube-proxy started before kubelet had credentials"
    );
    assert_eq!(unit_prop(&node, "kubelet.service", "ActiveState"), "active");
    node.write(
        "/var/lib/kubelet/pki/kubelet-client-current.pem",
        kubelet_client_pem(&issuer, "e2e-minion").as_bytes(),
        0o600,
    );
    let kubelet_conf = bootstrap
        .replace(
            &format!("token: abcdef.{TOKEN_SECRET}"),
            "client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem\n    client-key: /var/lib/kubelet/pki/kubelet-client-current.pem",
        )
        .replace("tls-bootstrap-token-user", "default-auth");
    node.write(
        "/etc/kubernetes/kubelet.conf",
        kubelet_conf.as_bytes(),
        0o600,
    );

    // 5. Every unit runs, but nothing answers a health check yet: not Ready, and the reason names the components.
    let v = wait_until("the health checks", Duration::from_secs(60), || {
        let v = node.status_json().1;
        (v["phase"] == "components-healthy").then_some(v)
    });
    std::thread::sleep(Duration::from_secs(2));
    let v2 = node.status_json().1;
    assert_eq!(v2["condition"], "waiting", "{v} / {v2}");
    let blocking = v2["blocking"].as_str().unwrap_or("");
    assert!(
        blocking.starts_with("waiting until the node's components are healthy: kubelet:")
            && blocking.contains("kube-proxy:"),
        "{v2}"
    );
    let health_root = www.join("health");
    node.helpers.push(health_endpoint_double(
        &ns,
        10248,
        &health_root.join("kubelet"),
    ));
    node.helpers.push(health_endpoint_double(
        &ns,
        10256,
        &health_root.join("kube-proxy"),
    ));

    let (code, v) = wait_until("Ready", Duration::from_secs(60), || {
        let (code, v) = node.status_json();
        (v["condition"] == "ready").then_some((code, v))
    });
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["weave"]["ipalloc_init"], "consensus=1", "{v}");
    assert_eq!(v["weave"]["peers"], serde_json::json!(["10.77.0.2"]), "{v}");
    let transitions = v["transitions"].as_array().expect("transitions");
    let start_units_at = transitions
        .iter()
        .find(|t| t["phase"] == "start-units")
        .and_then(|t| t["at"].as_u64())
        .expect("start-units transition");
    assert!(
        start_units_at >= healthy_at,
        "units were started before the master was healthy"
    );
    eprintln!(
        "master healthy → start-units: {} ms",
        start_units_at - healthy_at
    );

    let weave_env =
        std::fs::read_to_string(node.root().join("run/k8s-agent/weave.env")).expect("weave.env");
    assert!(
        weave_env.contains("IPALLOC_INIT=consensus=1"),
        "{weave_env}"
    );
    assert!(weave_env.contains("10.77.0.2"), "{weave_env}");
    let mut entered = Vec::new();
    for unit in MINION_UNITS {
        assert_eq!(unit_prop(&node, unit, "ActiveState"), "active", "{unit}");
        entered.push(
            unit_prop(&node, unit, "ActiveEnterTimestampMonotonic")
                .parse::<u64>()
                .expect("timestamp"),
        );
    }
    assert!(
        entered.windows(2).all(|w| w[0] <= w[1]),
        "units started out of order: {entered:?}"
    );
    for unit in ["etcd.service", "kube-apiserver.service"] {
        assert_eq!(
            unit_prop(&node, unit, "ActiveState"),
            "inactive",
            "master unit {unit} ran on a minion"
        );
    }

    assert_eq!(
        v["join"]["kubelet_credentials"]["subject"], "system:node:e2e-minion",
        "{v}"
    );

    // 5. The safety net: a master unit cannot start on a minion, even when asked.
    let refused = rt.block_on(client.start_units(
        &["kube-apiserver.service".to_string()],
        Duration::from_secs(20),
    ));
    match refused {
        Err((_, failure)) => assert_eq!(failure.result, "condition-failed", "{failure:?}"),
        Ok(s) => panic!("kube-apiserver started on a minion: {s:?}"),
    }

    // 6. SIGKILL the agent: systemd restarts it; it resumes Ready without restarting units or rewriting weave.env.
    let old_pid = unit_prop(&node, "k8s-agent.service", "MainPID");
    let weave_mtime = std::fs::metadata(node.root().join("run/k8s-agent/weave.env"))
        .and_then(|m| m.modified())
        .expect("mtime");
    let out = node.inside(&["sh", "-c", &format!("kill -9 {old_pid}")]);
    assert!(out.status.success(), "kill the agent");
    wait_until("the agent to be restarted", Duration::from_secs(30), || {
        let pid = unit_prop(&node, "k8s-agent.service", "MainPID");
        (pid != old_pid
            && pid != "0"
            && unit_prop(&node, "k8s-agent.service", "ActiveState") == "active")
            .then_some(())
    });
    let (code, v) = wait_until("Ready after the restart", Duration::from_secs(30), || {
        let (code, v) = node.status_json();
        (v["condition"] == "ready" && v["restarts"].as_u64().unwrap_or(0) >= 1).then_some((code, v))
    });
    assert_eq!(code, 0, "{v}");
    for (unit, before) in MINION_UNITS.iter().zip(&entered) {
        let now: u64 = unit_prop(&node, unit, "ActiveEnterTimestampMonotonic")
            .parse()
            .expect("timestamp");
        assert_eq!(now, *before, "{unit} was restarted by the resumed agent");
    }
    let mtime = std::fs::metadata(node.root().join("run/k8s-agent/weave.env"))
        .and_then(|m| m.modified())
        .expect("mtime");
    assert_eq!(
        mtime, weave_mtime,
        "weave.env was rewritten after weave started"
    );

    // 7. The bootstrap token's secret is nowhere but bootstrap-kubelet.conf (0600): not in the journal, the state,
    //    `status`.
    let journal = node.inside(&["journalctl", "--no-pager", "-o", "cat"]);
    assert!(
        !String::from_utf8_lossy(&journal.stdout).contains(TOKEN_SECRET),
        "token in the journal"
    );
    let state =
        std::fs::read_to_string(node.root().join("run/k8s-agent/state.json")).expect("state");
    assert!(!state.contains(TOKEN_SECRET), "token in state.json");
    let status = node.inside(&["/usr/bin/k8s-agent", "status"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(!text.contains(TOKEN_SECRET), "token in status");
    assert!(text.contains("READY"), "{text}");
    eprintln!("{text}");
}
