//! A minion's programs against the stand-in control plane: the kubelet's TLS bootstrap (bootstrap token →
//! CSR → approval and signing by the controller manager → kubelet-client-current.pem and kubelet.conf → Node
//! registered), kube-proxy with the kubelet's certificate (only with a system:node-proxier binding for
//! system:nodes), and the scheduler's identity checks.

mod support;

use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::*;

const SECRETS: &str = "/api/v1/namespaces/kube-system/secrets";

/// The control plane a join needs: API server, token, kubeadm's bindings, controller manager.
fn control_plane(pki: &Pki) -> (ApiServer, Proc) {
    let api = ApiServer::start(pki);
    api.create(SECRETS, &bootstrap_token("abcdef", "0123456789abcdef", &[]));
    for b in kubeadm_bindings() {
        api.create(CRB, &b);
    }
    let cm = start_controller_manager(pki, &api, "*,bootstrapsigner,tokencleaner");
    (api, cm)
}

struct Kubelet {
    args: Vec<String>,
    healthz: u16,
    kubeconfig: PathBuf,
    cert_dir: PathBuf,
}

fn kubelet(pki: &Pki, api: &ApiServer, token: &str, node: &str) -> Kubelet {
    let healthz = free_port();
    let config = pki.write(
        "kubelet/config.yaml",
        &format!(
            "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: systemd\nhealthzBindAddress: 127.0.0.1\nhealthzPort: {healthz}\nrotateCertificates: true\n"
        ),
    );
    let bootstrap = pki.token_kubeconfig("bootstrap-kubelet", &api.server(), token);
    let kubeconfig = pki.path("kubelet.conf");
    let cert_dir = pki.path("kubelet-pki");
    let args = vec![
        format!("--config={}", config.display()),
        format!("--bootstrap-kubeconfig={}", bootstrap.display()),
        format!("--kubeconfig={}", kubeconfig.display()),
        format!("--hostname-override={node}"),
        format!("--cert-dir={}", cert_dir.display()),
    ];
    Kubelet {
        args,
        healthz,
        kubeconfig,
        cert_dir,
    }
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
}

fn http_get(port: u16, path: &str) -> (String, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"])
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or((&text, ""));
    (code.to_string(), body.to_string())
}

#[test]
fn the_kubelet_completes_the_tls_bootstrap_and_kube_proxy_runs_with_its_certificate() {
    let pki = Pki::new();
    let (api, cm) = control_plane(&pki);
    let k = kubelet(&pki, &api, "abcdef.0123456789abcdef", "Worker-1");
    let mut p = Proc::spawn(pki.dir.path(), "kubelet", &k.args);
    p.lines
        .wait_for_within("registered Node worker-1", Duration::from_secs(20));
    assert!(p.running());

    // kubelet.conf as the real kubelet writes it.
    assert_eq!(mode(&k.kubeconfig), 0o600);
    let conf = std::fs::read_to_string(&k.kubeconfig).unwrap();
    let current = k.cert_dir.join("kubelet-client-current.pem");
    assert!(
        conf.contains(&format!("client-certificate: {}", current.display())),
        "{conf}"
    );
    assert!(
        conf.contains(&format!("client-key: {}", current.display())),
        "{conf}"
    );
    assert!(
        conf.contains(&format!("server: {}", api.server())),
        "{conf}"
    );
    assert!(
        conf.contains(&format!(
            "certificate-authority-data: {}",
            b64(&pki.ca.cert_pem)
        )),
        "{conf}"
    );
    let target = std::fs::read_link(&current).expect("current.pem is a symlink");
    let file_name = target.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        file_name.starts_with("kubelet-client-20")
            && file_name.ends_with(".pem")
            && file_name.len() == "kubelet-client-2026-01-02-03-04-05.pem".len(),
        "{file_name}"
    );
    assert_eq!(mode(&target), 0o600);
    let pem = std::fs::read_to_string(&current).unwrap();
    assert!(
        pem.contains("-----BEGIN CERTIFICATE-----") && pem.contains("PRIVATE KEY-----"),
        "cert and key in one file"
    );
    let (cn, o, _) = subject(&pem);
    assert_eq!(
        (cn.as_str(), o),
        ("system:node:worker-1", vec!["system:nodes".to_string()])
    );
    let cert_only: String = pem
        .split_inclusive("-----END CERTIFICATE-----\n")
        .next()
        .unwrap()
        .to_string();
    assert!(openssl_verifies(&pki, &cert_only, "sslclient"));
    assert!(
        !k.cert_dir.join("kubelet-client.key.tmp").exists(),
        "the bootstrap key is cleaned up"
    );

    // The Node, registered with the node's own identity.
    let node = api.must(
        Cred::Cert("super-admin"),
        "GET",
        "/api/v1/nodes/worker-1",
        None,
        200,
    );
    assert_eq!(
        node["metadata"]["labels"]["kubernetes.io/hostname"],
        "worker-1"
    );
    api.proc
        .lines
        .wait_for("POST /api/v1/nodes 201 user=\"system:node:worker-1\"");
    cm.lines.wait_for("csrapproving: approved node-csr-");
    assert_eq!(
        http_get(k.healthz, "/healthz"),
        ("200".to_string(), "ok".to_string())
    );

    // A restart uses kubelet.conf and asks for nothing.
    drop(p);
    let p = Proc::spawn(pki.dir.path(), "kubelet", &k.args);
    p.lines.wait_for("using the client certificate in");
    p.lines.wait_for("Node worker-1 is registered already");
    assert!(!p.lines.has("created CertificateSigningRequest"));

    // kube-proxy with the kubelet's certificate (what the agent writes as kube-proxy.conf).
    let proxy_conf = pki.write(
        "kube-proxy.conf",
        &format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: {}\n  name: kubernetes\ncontexts:\n- context:\n    cluster: kubernetes\n    user: kube-proxy\n  name: kube-proxy@kubernetes\ncurrent-context: kube-proxy@kubernetes\nusers:\n- name: kube-proxy\n  user:\n    client-certificate: {c}\n    client-key: {c}\n",
            b64(&pki.ca.cert_pem),
            api.server(),
            c = current.display()
        ),
    );
    let health = free_port();
    let proxy_config = pki.write(
        "kube-proxy/config.yaml",
        &format!(
            "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nclientConnection:\n  kubeconfig: {}\nmode: iptables\nhealthzBindAddress: 127.0.0.1:{health}\n",
            proxy_conf.display()
        ),
    );
    let args = vec![
        format!("--config={}", proxy_config.display()),
        "--hostname-override=worker-1".to_string(),
    ];
    let mut proxy = Proc::spawn(pki.dir.path(), "kube-proxy", &args);
    let (status, stderr) = proxy.wait_exit();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error: failed to list *v1.EndpointSlice") && stderr.contains("403"),
        "{stderr}"
    );
    assert!(stderr.contains("system:node-proxier"), "{stderr}");

    api.create(
        CRB,
        &cluster_role_binding(
            "kubeadm:node-proxier",
            "system:node-proxier",
            &[("Group", "system:nodes")],
        ),
    );
    let mut proxy = Proc::spawn(pki.dir.path(), "kube-proxy", &args);
    proxy
        .lines
        .wait_for("listed 0 services and 0 endpointslices");
    let (code, body) = http_get(health, "/healthz");
    assert_eq!(code, "200", "{body}");
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["nodeEligible"], json!(true));
    std::thread::sleep(Duration::from_millis(500));
    assert!(proxy.running(), "{}", proxy.lines.text());
}

#[test]
fn a_wrong_bootstrap_token_is_logged_and_retried() {
    let pki = Pki::new();
    let (api, _cm) = control_plane(&pki);
    let k = kubelet(&pki, &api, "abcdef.ffffffffffffffff", "worker-2");
    let mut p = Proc::spawn(pki.dir.path(), "kubelet", &k.args);
    let line = p.lines.wait_for("TLS bootstrap:");
    assert!(
        line.contains(
            "cannot create certificate signing request: 401 Unauthorized; retrying in 5s"
        ),
        "{line}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(p.running(), "the kubelet retries instead of exiting");
    assert!(!k.kubeconfig.exists());
    assert!(
        !p.lines.text().contains("ffffffffffffffff"),
        "the token is not logged"
    );
}

#[test]
fn the_kubelet_needs_its_bootstrap_kubeconfig_and_config() {
    let pki = Pki::new();
    let api = ApiServer::start(&pki);
    let k = kubelet(&pki, &api, "abcdef.0123456789abcdef", "worker-3");
    std::fs::remove_file(pki.path("bootstrap-kubelet.conf")).unwrap();
    let mut p = Proc::spawn(pki.dir.path(), "kubelet", &k.args);
    let (status, stderr) = p.wait_exit();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error: unable to load bootstrap kubeconfig: --bootstrap-kubeconfig"),
        "{stderr}"
    );
    assert!(
        stderr.contains("bootstrap-kubelet.conf: cannot read it"),
        "{stderr}"
    );

    pki.write("kubelet/config.yaml", "apiVersion: v1\nkind: Pod\n");
    let mut p = Proc::spawn(pki.dir.path(), "kubelet", &k.args);
    let (status, stderr) = p.wait_exit();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("not a KubeletConfiguration"), "{stderr}");
}

#[test]
fn kube_proxy_needs_a_kubeconfig_that_authenticates() {
    let pki = Pki::new();
    let api = ApiServer::start(&pki);
    let other = Pki::new();
    std::fs::copy(other.path("admin.crt"), pki.path("foreign.crt")).unwrap();
    std::fs::copy(other.path("admin.key"), pki.path("foreign.key")).unwrap();
    let conf = pki.cert_kubeconfig("foreign", &api.server(), "foreign");
    let config = pki.write(
        "kube-proxy/config.yaml",
        &format!("apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nclientConnection:\n  kubeconfig: {}\nhealthzBindAddress: \"\"\n", conf.display()),
    );
    let mut p = Proc::spawn(
        pki.dir.path(),
        "kube-proxy",
        &[
            format!("--config={}", config.display()),
            "--hostname-override=w".into(),
        ],
    );
    let (status, stderr) = p.wait_exit();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("401"), "{stderr}");

    let config = pki.write(
        "kube-proxy/config.yaml",
        &format!("apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nclientConnection:\n  kubeconfig: {}\n", pki.path("missing.conf").display()),
    );
    let mut p = Proc::spawn(
        pki.dir.path(),
        "kube-proxy",
        &[format!("--config={}", config.display())],
    );
    let (status, stderr) = p.wait_exit();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("clientConnection.kubeconfig") && stderr.contains("missing.conf"),
        "{stderr}"
    );
}

#[test]
fn the_scheduler_runs_only_as_system_kube_scheduler() {
    let pki = Pki::new();
    let api = ApiServer::start(&pki);
    let scheduler = pki.cert_kubeconfig("scheduler", &api.server(), "scheduler");
    let admin = pki.cert_kubeconfig("admin", &api.server(), "admin");
    let flags = |k: &Path, authz: &Path| {
        vec![
            format!("--kubeconfig={}", k.display()),
            format!("--authentication-kubeconfig={}", k.display()),
            format!("--authorization-kubeconfig={}", authz.display()),
            "--bind-address=127.0.0.1".into(),
            "--leader-elect=true".into(),
        ]
    };
    let mut p = Proc::spawn(
        pki.dir.path(),
        "kube-scheduler",
        &flags(&scheduler, &scheduler),
    );
    p.lines.wait_for("authenticated as system:kube-scheduler");
    std::thread::sleep(Duration::from_millis(300));
    assert!(p.running());

    let mut p = Proc::spawn(pki.dir.path(), "kube-scheduler", &flags(&admin, &admin));
    let (status, stderr) = p.wait_exit();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("CN \"kubernetes-admin\", not system:kube-scheduler"),
        "{stderr}"
    );

    let broken = pki.write("broken.conf", "users: {\n");
    let mut p = Proc::spawn(
        pki.dir.path(),
        "kube-scheduler",
        &flags(&scheduler, &broken),
    );
    let (status, stderr) = p.wait_exit();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--authorization-kubeconfig") && stderr.contains("broken.conf"),
        "{stderr}"
    );

    let missing = pki.path("none.conf");
    let mut p = Proc::spawn(pki.dir.path(), "kube-scheduler", &flags(&missing, &missing));
    let (status, stderr) = p.wait_exit();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--kubeconfig") && stderr.contains("none.conf: cannot read it"),
        "{stderr}"
    );
}
