//! What the stand-in tests share: a kubeadm-layout PKI made with rcgen (ECDSA P-256, which kubeadm offers; one
//! RSA CA made with the `openssl` CLI where the RSA path matters), kubeconfigs, a fake etcd (a TCP listener:
//! the stand-in API server only needs etcd to be up), the stand-ins run through symlinks named after their
//! identity, their stderr collected, and `curl` as the HTTPS client. Every wait is bounded by [`PATIENCE`];
//! every process started is killed when its handle drops.
#![allow(dead_code)]

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub const BINARY: &str = env!("CARGO_BIN_EXE_k8s-standin");
/// How long a test waits for anything.
pub const PATIENCE: Duration = Duration::from_secs(10);
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn unb64(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("base64")
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// A CA: its key and certificate.
pub struct Ca {
    pub key: KeyPair,
    pub cert_pem: String,
}

impl Ca {
    pub fn new(cn: &str) -> Ca {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        Ca::with_key(cn, key)
    }

    pub fn with_key(cn: &str, key: KeyPair) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        let cert = params.self_signed(&key).expect("self-signed CA");
        Ca {
            key,
            cert_pem: cert.pem(),
        }
    }

    /// A leaf signed by this CA: (certificate PEM, key PEM).
    pub fn issue(
        &self,
        cn: &str,
        orgs: &[&str],
        server_names: &[&str],
        client: bool,
    ) -> (String, String) {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        for o in orgs {
            // rcgen keeps one value per attribute type; the tests need at most one O.
            params.distinguished_name.push(DnType::OrganizationName, *o);
        }
        for n in server_names {
            params
                .subject_alt_names
                .push(match n.parse::<std::net::IpAddr>() {
                    Ok(ip) => SanType::IpAddress(ip),
                    Err(_) => SanType::DnsName((*n).try_into().expect("dns name")),
                });
        }
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = if client {
            vec![ExtendedKeyUsagePurpose::ClientAuth]
        } else {
            vec![ExtendedKeyUsagePurpose::ServerAuth]
        };
        params.use_authority_key_identifier_extension = true;
        let issuer = Issuer::from_ca_cert_pem(&self.cert_pem, &self.key).expect("issuer");
        let cert = params.signed_by(&key, &issuer).expect("sign");
        (cert.pem(), key.serialize_pem())
    }
}

/// kubeadm's /etc/kubernetes and /etc/kubernetes/pki, in a temporary directory.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub ca: Ca,
    pub front_proxy_ca: Ca,
}

impl Pki {
    pub fn new() -> Pki {
        Pki::with_ca(Ca::new("kubernetes"))
    }

    pub fn with_ca(ca: Ca) -> Pki {
        let dir = tempfile::tempdir().expect("temporary directory");
        let pki = Pki {
            dir,
            ca,
            front_proxy_ca: Ca::new("front-proxy-ca"),
        };
        pki.write("ca.crt", &pki.ca.cert_pem);
        pki.write("ca.key", &pki.ca.key.serialize_pem());
        pki.write("front-proxy-ca.crt", &pki.front_proxy_ca.cert_pem);
        pki.write(
            "front-proxy-ca.key",
            &pki.front_proxy_ca.key.serialize_pem(),
        );
        let (cert, key) = pki.ca.issue(
            "kube-apiserver",
            &[],
            &[
                "127.0.0.1",
                "localhost",
                "kubernetes",
                "kubernetes.default.svc.cluster.local",
                "masters.test.k8s",
            ],
            false,
        );
        // Leaf first, then the CA, as the local cluster writes it.
        pki.write("apiserver.crt", &format!("{cert}{}", pki.ca.cert_pem));
        pki.write("apiserver.key", &key);
        pki.client(
            "apiserver-kubelet-client",
            "kube-apiserver-kubelet-client",
            &["kubeadm:cluster-admins"],
        );
        let (cert, key) = pki
            .front_proxy_ca
            .issue("front-proxy-client", &[], &[], true);
        pki.write("front-proxy-client.crt", &cert);
        pki.write("front-proxy-client.key", &key);
        let sa = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("sa key");
        pki.write("sa.key", &sa.serialize_pem());
        pki.write("sa.pub", &sa.public_key_pem());
        pki.client("admin", "kubernetes-admin", &["kubeadm:cluster-admins"]);
        pki.client("super-admin", "kubernetes-super-admin", &["system:masters"]);
        pki.client("controller-manager", "system:kube-controller-manager", &[]);
        pki.client("scheduler", "system:kube-scheduler", &[]);
        pki
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&p, text).expect("write");
        p
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).expect("read")
    }

    /// `<name>.crt` / `<name>.key`: a client certificate from the cluster CA.
    pub fn client(&self, name: &str, cn: &str, orgs: &[&str]) {
        let (cert, key) = self.ca.issue(cn, orgs, &[], true);
        self.write(&format!("{name}.crt"), &cert);
        self.write(&format!("{name}.key"), &key);
    }

    /// `<name>.conf`: a kubeconfig for `server` with the `<cert>.crt`/`.key` client certificate embedded.
    pub fn cert_kubeconfig(&self, name: &str, server: &str, cert: &str) -> PathBuf {
        let user = format!(
            "    client-certificate-data: {}\n    client-key-data: {}\n",
            b64(self.read(&format!("{cert}.crt"))),
            b64(self.read(&format!("{cert}.key")))
        );
        self.kubeconfig(name, server, &user)
    }

    /// `<name>.conf`: a kubeconfig for `server` with a bearer token.
    pub fn token_kubeconfig(&self, name: &str, server: &str, token: &str) -> PathBuf {
        self.kubeconfig(name, server, &format!("    token: {token}\n"))
    }

    fn kubeconfig(&self, name: &str, server: &str, user: &str) -> PathBuf {
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: {server}\n  name: kubernetes\ncontexts:\n- context:\n    cluster: kubernetes\n    user: u\n  name: u@kubernetes\ncurrent-context: u@kubernetes\npreferences: {{}}\nusers:\n- name: u\n  user:\n{user}",
            b64(&self.ca.cert_pem)
        );
        self.write(&format!("{name}.conf"), &text)
    }
}

/// A fake etcd: a TCP listener that accepts and drops connections.
pub struct Etcd {
    pub port: u16,
}

impl Etcd {
    pub fn start() -> Etcd {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind etcd");
        let port = listener.local_addr().expect("address").port();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                drop(stream);
            }
        });
        Etcd { port }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// The stderr lines of a running stand-in, collected by a thread.
#[derive(Default)]
pub struct Lines {
    lines: Mutex<Vec<String>>,
    changed: Condvar,
    closed: Mutex<bool>,
}

impl Lines {
    pub fn all(&self) -> Vec<String> {
        self.lines.lock().expect("lines").clone()
    }

    pub fn text(&self) -> String {
        self.all().join("\n")
    }

    /// Waits until a line contains `needle`; panics with every line after `patience`.
    pub fn wait_for_within(&self, needle: &str, patience: Duration) -> String {
        let deadline = Instant::now() + patience;
        let mut lines = self.lines.lock().expect("lines");
        loop {
            if let Some(line) = lines.iter().find(|l| l.contains(needle)) {
                return line.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no stderr line with {needle:?} within {patience:?}; got {lines:#?}"
            );
            lines = self.changed.wait_timeout(lines, left).expect("lines").0;
        }
    }

    pub fn wait_for(&self, needle: &str) -> String {
        self.wait_for_within(needle, PATIENCE)
    }

    pub fn has(&self, needle: &str) -> bool {
        self.all().iter().any(|l| l.contains(needle))
    }
}

/// A running stand-in, killed on drop.
pub struct Proc {
    pub child: Child,
    pub lines: Arc<Lines>,
    pub name: String,
}

/// A command running the stand-in as `name` (a symlink to the built binary in `dir/bin`).
pub fn stand_in(dir: &Path, name: &str) -> Command {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("bin directory");
    let link = bin.join(name);
    if !link.exists() {
        std::os::unix::fs::symlink(BINARY, &link).expect("symlink the stand-in");
    }
    let mut c = Command::new(link);
    c.env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

impl Proc {
    pub fn spawn(dir: &Path, name: &str, args: &[String]) -> Proc {
        Proc::spawn_command(stand_in(dir, name).args(args), name)
    }

    pub fn spawn_command(command: &mut Command, name: &str) -> Proc {
        let mut child = command.spawn().expect("start the stand-in");
        let lines = Arc::new(Lines::default());
        let pipe = child.stderr.take().expect("stderr pipe");
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                sink.lines.lock().expect("lines").push(line);
                sink.changed.notify_all();
            }
            *sink.closed.lock().expect("closed") = true;
            sink.changed.notify_all();
        });
        Proc {
            child,
            lines,
            name: name.to_string(),
        }
    }

    /// Waits (bounded) for the process to exit; its status and all its stderr.
    pub fn wait_exit(&mut self) -> (ExitStatus, String) {
        self.wait_exit_within(PATIENCE)
    }

    pub fn wait_exit_within(&mut self, patience: Duration) -> (ExitStatus, String) {
        let deadline = Instant::now() + patience;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll") {
                // Let the reader thread take the last lines.
                let until = Instant::now() + Duration::from_secs(2);
                while !*self.lines.closed.lock().expect("closed") && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(10));
                }
                return (status, self.lines.text());
            }
            assert!(
                Instant::now() < deadline,
                "{} still running after {patience:?}; stderr:\n{}",
                self.name,
                self.lines.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn running(&mut self) -> bool {
        self.child.try_wait().expect("poll").is_none()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Who a request is from.
#[derive(Clone, Copy)]
pub enum Cred<'a> {
    Anonymous,
    /// `<name>.crt` / `<name>.key` in the PKI directory.
    Cert(&'a str),
    /// Files at these paths (certificate, key).
    CertFiles(&'a Path, &'a Path),
    Token(&'a str),
}

/// What curl got.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub headers: Vec<String>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    pub fn header(&self, name: &str) -> Option<String> {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        self.headers.iter().find_map(|h| {
            h.to_ascii_lowercase()
                .strip_prefix(&prefix)
                .map(|v| v.trim().to_string())
        })
    }
}

/// The kube-apiserver flags of units/kube-apiserver.service, for this PKI, port, etcd and data directory.
pub fn apiserver_flags(pki: &Pki, port: u16, etcd: &str, data: &Path) -> Vec<String> {
    let p = |n: &str| pki.path(n).display().to_string();
    vec![
        format!("--secure-port={port}"),
        "--bind-address=127.0.0.1".into(),
        format!("--etcd-servers={etcd}"),
        "--allow-privileged=true".into(),
        "--authorization-mode=Node,RBAC".into(),
        "--enable-admission-plugins=NodeRestriction".into(),
        "--enable-bootstrap-token-auth=true".into(),
        format!("--client-ca-file={}", p("ca.crt")),
        format!("--tls-cert-file={}", p("apiserver.crt")),
        format!("--tls-private-key-file={}", p("apiserver.key")),
        format!(
            "--kubelet-client-certificate={}",
            p("apiserver-kubelet-client.crt")
        ),
        format!("--kubelet-client-key={}", p("apiserver-kubelet-client.key")),
        "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname".into(),
        format!("--proxy-client-cert-file={}", p("front-proxy-client.crt")),
        format!("--proxy-client-key-file={}", p("front-proxy-client.key")),
        format!("--requestheader-client-ca-file={}", p("front-proxy-ca.crt")),
        "--requestheader-allowed-names=front-proxy-client".into(),
        format!("--service-account-issuer={ISSUER}"),
        format!("--service-account-key-file={}", p("sa.pub")),
        format!("--service-account-signing-key-file={}", p("sa.key")),
        "--service-cluster-ip-range=10.96.0.0/12".into(),
        format!("--stand-in-data-dir={}", data.display()),
    ]
}

/// Replaces `--flag=...` in `args` (or appends it); `None` removes it.
pub fn set_flag(args: &mut Vec<String>, flag: &str, value: Option<&str>) {
    let prefix = format!("--{flag}=");
    args.retain(|a| !a.starts_with(&prefix));
    if let Some(v) = value {
        args.push(format!("{prefix}{v}"));
    }
}

/// A running stand-in kube-apiserver.
pub struct ApiServer {
    pub proc: Proc,
    pub port: u16,
    pub etcd: Etcd,
    pub data: PathBuf,
    ca: PathBuf,
    certs: PathBuf,
}

impl ApiServer {
    pub fn start(pki: &Pki) -> ApiServer {
        ApiServer::start_with(pki, &[], None)
    }

    /// With extra flags and (to test persistence) a given data directory.
    pub fn start_with(pki: &Pki, extra: &[&str], data: Option<&Path>) -> ApiServer {
        let etcd = Etcd::start();
        let port = free_port();
        let data = data
            .map(Path::to_path_buf)
            .unwrap_or_else(|| pki.path("apiserver-data"));
        let mut args = apiserver_flags(pki, port, &etcd.url(), &data);
        args.extend(extra.iter().map(|s| s.to_string()));
        let proc = Proc::spawn(pki.dir.path(), "kube-apiserver", &args);
        proc.lines.wait_for("serving HTTPS on");
        ApiServer {
            proc,
            port,
            etcd,
            data,
            ca: pki.path("ca.crt"),
            certs: pki.dir.path().to_path_buf(),
        }
    }

    pub fn server(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// One request with curl (verified against the cluster CA).
    pub fn curl(
        &self,
        cred: Cred<'_>,
        method: &str,
        path: &str,
        body: Option<&Value>,
        extra: &[&str],
    ) -> Answer {
        let mut c = Command::new("curl");
        c.args(["-sS", "-i", "--max-time", "10", "--cacert"])
            .arg(&self.ca)
            .args(["-X", method]);
        match cred {
            Cred::Anonymous => {}
            Cred::Cert(name) => {
                c.arg("--cert").arg(self.certs.join(format!("{name}.crt")));
                c.arg("--key").arg(self.certs.join(format!("{name}.key")));
            }
            Cred::CertFiles(cert, key) => {
                c.arg("--cert").arg(cert).arg("--key").arg(key);
            }
            Cred::Token(t) => {
                c.arg("-H").arg(format!("Authorization: Bearer {t}"));
            }
        }
        if body.is_some() {
            let content_type = if method == "PATCH" {
                "application/merge-patch+json"
            } else {
                "application/json"
            };
            c.args([
                "-H",
                &format!("Content-Type: {content_type}"),
                "--data-binary",
                "@-",
            ]);
        }
        c.args(extra).arg(format!("{}{path}", self.server()));
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("cannot run curl (is it installed?)");
        if let Some(b) = body {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(b.to_string().as_bytes())
                .expect("write body");
        } else {
            drop(child.stdin.take());
        }
        let output = child.wait_with_output().expect("curl output");
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        assert!(
            status != 0 || !output.status.success(),
            "curl answered nothing: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Answer {
            status,
            body: body.to_string(),
            headers: lines.map(str::to_string).collect(),
        }
    }

    /// A JSON request: status and body.
    pub fn call(
        &self,
        cred: Cred<'_>,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let a = self.curl(cred, method, path, body, &[]);
        let v = serde_json::from_str(&a.body).unwrap_or(Value::String(a.body.clone()));
        (a.status, v)
    }

    /// A request that must answer `expected`; the body.
    pub fn must(
        &self,
        cred: Cred<'_>,
        method: &str,
        path: &str,
        body: Option<&Value>,
        expected: u16,
    ) -> Value {
        let (status, v) = self.call(cred, method, path, body);
        assert_eq!(
            status,
            expected,
            "{method} {path}: {v:#}\nserver log:\n{}",
            self.proc.lines.text()
        );
        v
    }

    /// `kubeadm:cluster-admins` → cluster-admin, created with super-admin.conf's identity, as kubeadm does.
    pub fn bind_cluster_admins(&self) {
        self.must(
            Cred::Cert("super-admin"),
            "POST",
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            Some(&cluster_role_binding(
                "kubeadm:cluster-admins",
                "cluster-admin",
                &[("Group", "kubeadm:cluster-admins")],
            )),
            201,
        );
    }

    /// Creates an object as super-admin.
    pub fn create(&self, path: &str, object: &Value) -> Value {
        self.must(Cred::Cert("super-admin"), "POST", path, Some(object), 201)
    }
}

pub fn cluster_role_binding(name: &str, role: &str, subjects: &[(&str, &str)]) -> Value {
    let subjects: Vec<Value> = subjects
        .iter()
        .map(|(kind, n)| json!({"kind": kind, "apiGroup": "rbac.authorization.k8s.io", "name": n}))
        .collect();
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": subjects,
    })
}

pub const CRB: &str = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings";
pub const CSRS: &str = "/apis/certificates.k8s.io/v1/certificatesigningrequests";
pub const SSR: &str = "/apis/authentication.k8s.io/v1/selfsubjectreviews";

/// The bootstrap-token Secret kubeadm creates.
pub fn bootstrap_token(id: &str, secret: &str, extra: &[(&str, &str)]) -> Value {
    let mut data = serde_json::Map::new();
    for (k, v) in [
        ("token-id", id),
        ("token-secret", secret),
        ("usage-bootstrap-authentication", "true"),
        ("usage-bootstrap-signing", "true"),
        (
            "auth-extra-groups",
            "system:bootstrappers:kubeadm:default-node-token",
        ),
    ]
    .into_iter()
    .chain(extra.iter().copied())
    {
        data.insert(k.into(), json!(v));
    }
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": format!("bootstrap-token-{id}"), "namespace": "kube-system"},
        "type": "bootstrap.kubernetes.io/token",
        "stringData": data,
    })
}

/// The kubeadm bindings a join needs: TLS bootstrap, auto-approval of bootstrap and renewal CSRs.
pub fn kubeadm_bindings() -> Vec<Value> {
    vec![
        cluster_role_binding(
            "kubeadm:kubelet-bootstrap",
            "system:node-bootstrapper",
            &[("Group", "system:bootstrappers:kubeadm:default-node-token")],
        ),
        cluster_role_binding(
            "kubeadm:node-autoapprove-bootstrap",
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            &[("Group", "system:bootstrappers:kubeadm:default-node-token")],
        ),
        cluster_role_binding(
            "kubeadm:node-autoapprove-certificate-rotation",
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            &[("Group", "system:nodes")],
        ),
    ]
}

/// A kubelet-style CSR object for `cn`/`o` (key generated): (object, key PEM).
pub fn kubelet_csr(name: &str, cn: &str, o: &str) -> (Value, String) {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::OrganizationName, o);
    params.distinguished_name.push(DnType::CommonName, cn);
    let pem = params
        .serialize_request(&key)
        .expect("csr")
        .pem()
        .expect("pem");
    (
        json!({
            "apiVersion": "certificates.k8s.io/v1",
            "kind": "CertificateSigningRequest",
            "metadata": {"name": name},
            "spec": {
                "request": b64(pem),
                "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
                "usages": ["digital signature", "client auth"],
            },
        }),
        key.serialize_pem(),
    )
}

/// Polls `check` every 200 ms for up to `patience`; true when it returned true.
pub fn eventually(patience: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + patience;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The controller manager's flags (units/kube-controller-manager.service) for this PKI.
pub fn controller_manager_flags(pki: &Pki, controllers: &str) -> Vec<String> {
    let p = |n: &str| pki.path(n).display().to_string();
    vec![
        format!("--kubeconfig={}", p("controller-manager.conf")),
        format!(
            "--authentication-kubeconfig={}",
            p("controller-manager.conf")
        ),
        format!(
            "--authorization-kubeconfig={}",
            p("controller-manager.conf")
        ),
        "--bind-address=127.0.0.1".into(),
        "--leader-elect=true".into(),
        "--use-service-account-credentials=true".into(),
        format!("--controllers={controllers}"),
        format!("--client-ca-file={}", p("ca.crt")),
        format!("--requestheader-client-ca-file={}", p("front-proxy-ca.crt")),
        format!("--root-ca-file={}", p("ca.crt")),
        format!("--cluster-signing-cert-file={}", p("ca.crt")),
        format!("--cluster-signing-key-file={}", p("ca.key")),
        format!("--service-account-private-key-file={}", p("sa.key")),
        "--service-cluster-ip-range=10.96.0.0/12".into(),
        "--stand-in-sync-period=0.2".into(),
    ]
}

/// Starts the controller manager with `controllers` and waits until it runs.
pub fn start_controller_manager(pki: &Pki, api: &ApiServer, controllers: &str) -> Proc {
    pki.cert_kubeconfig("controller-manager", &api.server(), "controller-manager");
    let proc = Proc::spawn(
        pki.dir.path(),
        "kube-controller-manager",
        &controller_manager_flags(pki, controllers),
    );
    proc.lines.wait_for("running ");
    proc
}

/// The PEM certificate from a CSR's status, if issued.
pub fn issued(csr: &Value) -> Option<String> {
    csr.pointer("/status/certificate")
        .and_then(Value::as_str)
        .map(|c| String::from_utf8(unb64(c)).expect("utf-8"))
}

/// (CN, O values, DER) of the first certificate in a PEM text.
pub fn subject(pem: &str) -> (String, Vec<String>, Vec<u8>) {
    use x509_parser::prelude::*;
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).expect("pem");
    let (_, cert) = X509Certificate::from_der(&p.contents).expect("certificate");
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .unwrap_or_default()
        .to_string();
    let o = cert
        .subject()
        .iter_organization()
        .filter_map(|a| a.as_str().ok())
        .map(str::to_string)
        .collect();
    (cn, o, p.contents.clone())
}

/// Whether the PEM certificate verifies against the CA with `openssl verify` (an independent check).
pub fn openssl_verifies(pki: &Pki, cert_pem: &str, purpose: &str) -> bool {
    let file = pki.write("to-verify.pem", cert_pem);
    let out = Command::new("openssl")
        .args(["verify", "-purpose", purpose, "-CAfile"])
        .arg(pki.path("ca.crt"))
        .arg(&file)
        .output()
        .expect("openssl");
    out.status.success()
}
