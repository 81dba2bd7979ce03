//! The stand-in **kubelet**: TLS bootstrap as the real kubelet does it, then Node registration and a health
//! endpoint. It runs no pods.
//!
//! 1. `--config` (KubeletConfiguration, `kubelet.config.k8s.io/v1beta1`) must parse; `healthzBindAddress` /
//!    `healthzPort` (default 127.0.0.1:10248) serve `GET /healthz` → `ok`. The node name is
//!    `--hostname-override`, or the kernel's host name, lower-cased.
//! 2. If `--kubeconfig` exists and holds a client certificate for `system:node:<name>` that is valid now, it is
//!    used. Otherwise the bootstrap: `--bootstrap-kubeconfig` must load (else `error: ...`, exit 1); an ECDSA
//!    P-256 key (kept in `<cert-dir>/kubelet-client.key.tmp` until the certificate arrives, so a restart reuses it);
//!    a CSR for CN `system:node:<name>`, O `system:nodes`, posted as CertificateSigningRequest `node-csr-<digest>`
//!    (signer `kubernetes.io/kube-apiserver-client-kubelet`, usages digital signature + client auth) with the
//!    bootstrap credentials; polled until `status.certificate` (Denied or Failed: logged, new key, retried).
//!    The certificate and key go to `<cert-dir>/kubelet-client-<YYYY-MM-DD-HH-MM-SS>.pem` (0600) with the
//!    symlink `kubelet-client-current.pem`, and `--kubeconfig` (0600) is written as the real kubelet writes it:
//!    the bootstrap kubeconfig's server and CA, `client-certificate` and `client-key` = the current.pem path.
//! 3. The Node is registered with the new identity (`POST /api/v1/nodes`; one that exists is fine).
//!
//! Every failure is one log line saying what is wrong, and is retried after 5 s (never a busy loop).

use crate::common::client::Client;
use crate::common::flags::{self, Spec};
use crate::common::kubeconfig::{self, Credential};
use crate::common::{log, pki, read_small_file, str_at, time, write_atomic};
use base64::Engine as _;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The name this mode answers to.
pub const NAME: &str = "kubelet";

const RETRY: Duration = Duration::from_secs(5);
const SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";

struct Settings {
    node: String,
    cert_dir: PathBuf,
    kubeconfig: PathBuf,
    bootstrap_kubeconfig: Option<PathBuf>,
    healthz: Option<SocketAddr>,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Reads a KubeletConfiguration file: the health endpoint's address (None when `healthzPort: 0`).
pub fn read_config(path: &Path) -> Result<Option<SocketAddr>, String> {
    let shown = format!("--config {}", path.display());
    let bytes = read_small_file("--config", path)?;
    let config: Value = serde_yaml_ng::from_slice(&bytes).map_err(|e| {
        format!(
            "failed to load kubelet config file, path: {}, error: {e}",
            path.display()
        )
    })?;
    let kind = str_at(&config, &["kind"]);
    let version = str_at(&config, &["apiVersion"]);
    if kind != "KubeletConfiguration" || version != "kubelet.config.k8s.io/v1beta1" {
        return Err(format!(
            "{shown}: not a KubeletConfiguration (apiVersion {version:?}, kind {kind:?}; expected kubelet.config.k8s.io/v1beta1 KubeletConfiguration)"
        ));
    }
    let port = match config.get("healthzPort") {
        None => 10248,
        Some(p) => p
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| format!("{shown}: healthzPort {p} is not a port"))?,
    };
    if port == 0 {
        return Ok(None);
    }
    let address = match str_at(&config, &["healthzBindAddress"]) {
        "" => "127.0.0.1",
        a => a,
    };
    let ip: std::net::IpAddr = address
        .parse()
        .map_err(|_| format!("{shown}: healthzBindAddress {address:?} is not an IP address"))?;
    Ok(Some(SocketAddr::new(ip, port)))
}

/// Runs the stand-in kubelet; returns only on a start-up error.
pub fn run(args: &[String]) -> ExitCode {
    let settings = match settings(args) {
        Ok(s) => s,
        Err(e) => return crate::common::fail(&e),
    };
    if let Some(address) = settings.healthz {
        match crate::common::health::serve(address, || {
            ("text/plain; charset=utf-8", "ok".to_string())
        }) {
            Ok(at) => log(&format!("serving http://{at}/healthz")),
            Err(e) => log(&format!("healthz: {e}")),
        }
    }
    log(&format!("node name {:?}", settings.node));
    let client = loop {
        match identity(&settings) {
            Ok(Some(c)) => break c,
            Ok(None) => {}
            Err(Fatal(e)) => return crate::common::fail(&e),
        }
        std::thread::sleep(RETRY);
    };
    register(&client, &settings.node);
    log("the stand-in kubelet runs no pods; idling");
    crate::common::sleep_forever()
}

fn settings(args: &[String]) -> Result<Settings, String> {
    let p = flags::parse(
        &Spec {
            program: NAME,
            values: &[
                "config",
                "bootstrap-kubeconfig",
                "kubeconfig",
                "hostname-override",
                "cert-dir",
                "node-ip",
            ],
            bools: &[],
        },
        args,
    )?;
    let healthz = match p.last("config").filter(|v| !v.is_empty()) {
        Some(c) => read_config(Path::new(c))?,
        None => Some(SocketAddr::from(([127, 0, 0, 1], 10248))),
    };
    let node = match p
        .last("hostname-override")
        .map(str::trim)
        .filter(|v| !v.is_empty())
    {
        Some(n) => n.to_ascii_lowercase(),
        None => crate::common::hostname(),
    };
    if node.is_empty() {
        return Err(
            "no node name: --hostname-override is empty and the kernel has no host name".into(),
        );
    }
    let kubeconfig = p
        .last("kubeconfig")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .ok_or("--kubeconfig is required by the stand-in (standalone mode is not supported)")?;
    Ok(Settings {
        node,
        cert_dir: PathBuf::from(
            p.last("cert-dir")
                .filter(|v| !v.is_empty())
                .unwrap_or("/var/lib/kubelet/pki"),
        ),
        kubeconfig,
        bootstrap_kubeconfig: p
            .last("bootstrap-kubeconfig")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from),
        healthz,
    })
}

/// A failure that ends the process (the real kubelet exits on these and systemd restarts it).
struct Fatal(String);

/// Why `--kubeconfig` cannot be used as it is (None: it can).
fn existing_kubeconfig_problem(settings: &Settings) -> Option<String> {
    let k = match kubeconfig::load("--kubeconfig", &settings.kubeconfig) {
        Ok(k) => k,
        Err(e) => return Some(e),
    };
    let Credential::ClientCert { cert_pem, .. } = &k.credential else {
        return Some("it holds no client certificate".into());
    };
    let info = match pki::certificates(cert_pem).and_then(|c| pki::cert_info(&c[0])) {
        Ok(i) => i,
        Err(e) => return Some(e),
    };
    let expected = format!("system:node:{}", settings.node);
    if info.common_name != expected {
        return Some(format!(
            "its client certificate is for {:?}, not {expected:?}",
            info.common_name
        ));
    }
    let now = time::now();
    if info.not_after <= now || info.not_before > now {
        return Some("its client certificate is not valid now (expired?)".into());
    }
    None
}

/// The client with the node's own identity: from `--kubeconfig`, or after a TLS bootstrap. `Ok(None)`: try again.
fn identity(settings: &Settings) -> Result<Option<Client>, Fatal> {
    if settings.kubeconfig.exists() {
        match existing_kubeconfig_problem(settings) {
            None => {
                let k = kubeconfig::load("--kubeconfig", &settings.kubeconfig).map_err(Fatal)?;
                return match Client::from_kubeconfig(&k) {
                    Ok(c) => {
                        log(&format!(
                            "using the client certificate in {}",
                            settings.kubeconfig.display()
                        ));
                        Ok(Some(c))
                    }
                    Err(e) => {
                        log(&e);
                        Ok(None)
                    }
                };
            }
            Some(why) => log(&format!(
                "--kubeconfig {}: {why}; starting the TLS bootstrap",
                settings.kubeconfig.display()
            )),
        }
    }
    let Some(path) = &settings.bootstrap_kubeconfig else {
        return Err(Fatal(format!(
            "--kubeconfig {} does not hold a usable client certificate and no --bootstrap-kubeconfig is given",
            settings.kubeconfig.display()
        )));
    };
    let bootstrap = kubeconfig::load("--bootstrap-kubeconfig", path)
        .map_err(|e| Fatal(format!("unable to load bootstrap kubeconfig: {e}")))?;
    let client = Client::from_kubeconfig(&bootstrap)
        .map_err(|e| Fatal(format!("unable to use bootstrap kubeconfig: {e}")))?;
    match bootstrap_once(settings, &client) {
        Ok((cert_pem, key_pem)) => {
            write_credentials(settings, &bootstrap, &cert_pem, &key_pem).map_err(Fatal)?;
            let k = kubeconfig::load("--kubeconfig", &settings.kubeconfig).map_err(Fatal)?;
            match Client::from_kubeconfig(&k) {
                Ok(c) => Ok(Some(c)),
                Err(e) => {
                    log(&e);
                    Ok(None)
                }
            }
        }
        Err(e) => {
            log(&format!(
                "TLS bootstrap: {e}; retrying in {}s",
                RETRY.as_secs()
            ));
            Ok(None)
        }
    }
}

/// The key kept while bootstrapping (created when missing).
fn bootstrap_key(cert_dir: &Path) -> Result<(rcgen::KeyPair, String), String> {
    let path = cert_dir.join("kubelet-client.key.tmp");
    if let Ok(bytes) = std::fs::read(&path)
        && let Ok(k) = pki::private_key(&bytes)
        && let Ok(pair) = k.key_pair()
    {
        return Ok((pair, k.pkcs8_pem()));
    }
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| format!("cannot make a key: {e}"))?;
    let pem = pair.serialize_pem();
    write_atomic(&path, pem.as_bytes(), 0o600)?;
    Ok((pair, pem))
}

/// One bootstrap attempt: the certificate and key PEM.
fn bootstrap_once(settings: &Settings, client: &Client) -> Result<(String, String), String> {
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&settings.cert_dir)
            .map_err(|e| {
                format!(
                    "cannot create the cert dir {}: {e}",
                    settings.cert_dir.display()
                )
            })?;
    }
    let (key, key_pem) = bootstrap_key(&settings.cert_dir)?;
    let cn = format!("system:node:{}", settings.node);
    let mut params =
        rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "system:nodes");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn.clone());
    let csr_pem = params
        .serialize_request(&key)
        .and_then(|c| c.pem())
        .map_err(|e| format!("cannot make the CSR: {e}"))?;
    let digest = ring::digest::digest(
        &ring::digest::SHA512,
        format!(
            "{}|{cn}|system:nodes|digital signature,client auth",
            b64(key.public_key_raw())
        )
        .as_bytes(),
    );
    let name = format!(
        "node-csr-{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest.as_ref()[..32])
    );
    let csr = json!({
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {
            "request": b64(csr_pem.as_bytes()),
            "signerName": SIGNER,
            "usages": ["digital signature", "client auth"],
        },
    });
    let base = "/apis/certificates.k8s.io/v1/certificatesigningrequests";
    let r = client.call("POST", base, Some(&csr))?;
    match r.status {
        201 => log(&format!(
            "created CertificateSigningRequest {name} for {cn} (signer {SIGNER}); waiting for approval"
        )),
        409 => {
            let existing = client.get(&format!("{base}/{name}"))?;
            if existing.status != 200
                || str_at(&existing.body, &["spec", "request"])
                    != str_at(&csr, &["spec", "request"])
            {
                return Err(format!(
                    "CertificateSigningRequest {name} exists with another request"
                ));
            }
            log(&format!(
                "CertificateSigningRequest {name} exists already; waiting for it"
            ));
        }
        s => {
            return Err(format!(
                "cannot create certificate signing request: {s} {}",
                r.message()
            ));
        }
    }
    let started = Instant::now();
    let mut last_note = Instant::now();
    loop {
        let r = client.get(&format!("{base}/{name}"))?;
        if r.status != 200 {
            return Err(format!(
                "cannot read CertificateSigningRequest {name}: {} {}",
                r.status,
                r.message()
            ));
        }
        let conditions = r
            .body
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for c in &conditions {
            let t = str_at(c, &["type"]);
            if matches!(t, "Denied" | "Failed") && str_at(c, &["status"]) == "True" {
                let _ = std::fs::remove_file(settings.cert_dir.join("kubelet-client.key.tmp"));
                return Err(format!(
                    "CertificateSigningRequest {name} is {}: {} {}",
                    t.to_ascii_lowercase(),
                    str_at(c, &["reason"]),
                    str_at(c, &["message"])
                ));
            }
        }
        let certificate = str_at(&r.body, &["status", "certificate"]);
        if !certificate.is_empty() {
            let pem = base64::engine::general_purpose::STANDARD
                .decode(certificate)
                .map_err(|_| {
                    format!("CertificateSigningRequest {name}: status.certificate is not base64")
                })?;
            let der = pki::certificates(&pem).map_err(|e| format!("the issued certificate {e}"))?;
            let info = pki::cert_info(&der[0])?;
            if info.public.raw != key.public_key_raw() || info.common_name != cn {
                return Err(format!(
                    "the certificate issued for {name} is not for this key and {cn}"
                ));
            }
            log(&format!(
                "CertificateSigningRequest {name} approved and issued after {}s",
                started.elapsed().as_secs()
            ));
            return Ok((String::from_utf8_lossy(&pem).into_owned(), key_pem));
        }
        if last_note.elapsed() >= Duration::from_secs(30) {
            log(&format!(
                "still waiting for CertificateSigningRequest {name} to be approved and signed"
            ));
            last_note = Instant::now();
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Writes the dated PEM, the current.pem symlink, and `--kubeconfig`, as the real kubelet does.
fn write_credentials(
    settings: &Settings,
    bootstrap: &kubeconfig::Kubeconfig,
    cert_pem: &str,
    key_pem: &str,
) -> Result<(), String> {
    let dir = &settings.cert_dir;
    let dated = dir.join(format!(
        "kubelet-client-{}.pem",
        time::file_stamp(time::now())
    ));
    let mut both = cert_pem.to_string();
    if !both.ends_with('\n') {
        both.push('\n');
    }
    both.push_str(key_pem);
    write_atomic(&dated, both.as_bytes(), 0o600)?;
    let current = dir.join("kubelet-client-current.pem");
    let updating = dir.join("kubelet-client-current.pem.updating");
    let _ = std::fs::remove_file(&updating);
    std::os::unix::fs::symlink(&dated, &updating)
        .and_then(|()| std::fs::rename(&updating, &current))
        .map_err(|e| {
            format!(
                "cannot point {} at {}: {e}",
                current.display(),
                dated.display()
            )
        })?;
    let _ = std::fs::remove_file(dir.join("kubelet-client.key.tmp"));
    let ca = bootstrap.ca_pem.as_deref().map(b64).unwrap_or_default();
    let current_path = current.display().to_string();
    let text = format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {ca}\n    server: {}\n  name: default-cluster\ncontexts:\n- context:\n    cluster: default-cluster\n    namespace: default\n    user: default-auth\n  name: default-context\ncurrent-context: default-context\nkind: Config\npreferences: {{}}\nusers:\n- name: default-auth\n  user:\n    client-certificate: {current_path}\n    client-key: {current_path}\n",
        bootstrap.server
    );
    write_atomic(&settings.kubeconfig, text.as_bytes(), 0o600)?;
    log(&format!(
        "wrote {} (-> {}) and {}",
        current.display(),
        dated.display(),
        settings.kubeconfig.display()
    ));
    Ok(())
}

/// Registers the Node, retrying until the API server takes it.
fn register(client: &Client, node: &str) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let body = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node,
            "labels": {
                "kubernetes.io/hostname": node,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": arch,
                "beta.kubernetes.io/os": "linux",
                "beta.kubernetes.io/arch": arch,
            },
            "annotations": {"k8s-image.example.invalid/stand-in": "STAND-IN kubelet (k8s-image demo), runs no pods"},
        },
        "spec": {},
    });
    loop {
        match client.call("POST", "/api/v1/nodes", Some(&body)) {
            Ok(r) if r.status == 201 => {
                log(&format!("registered Node {node}"));
                return;
            }
            Ok(r) if r.status == 409 => {
                log(&format!("Node {node} is registered already"));
                return;
            }
            Ok(r) => log(&format!(
                "unable to register node {node:?} with API server: {} {}",
                r.status,
                r.message()
            )),
            Err(e) => log(&format!(
                "unable to register node {node:?} with API server: {e}"
            )),
        }
        std::thread::sleep(RETRY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nodes_config_file_is_read() {
        let config = include_str!("../../files/etc/kubernetes/kubelet/config.yaml");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.yaml");
        std::fs::write(&p, config).unwrap();
        assert_eq!(
            read_config(&p).unwrap(),
            Some(SocketAddr::from(([127, 0, 0, 1], 10248)))
        );
        std::fs::write(&p, "apiVersion: v1\nkind: Pod\n").unwrap();
        assert!(
            read_config(&p)
                .unwrap_err()
                .contains("not a KubeletConfiguration")
        );
        std::fs::write(&p, "[").unwrap();
        assert!(
            read_config(&p)
                .unwrap_err()
                .contains("failed to load kubelet config file")
        );
        std::fs::write(&p, "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nhealthzPort: 0\n").unwrap();
        assert_eq!(read_config(&p).unwrap(), None);
    }
}
