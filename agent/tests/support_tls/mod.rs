//! Test support for the probe tests: a throw-away PKI made with rcgen and a minimal HTTP/1.1 server on
//! 127.0.0.1 (TLS through tokio-rustls, plain, or one that accepts and never answers) that counts connections
//! and records what it was asked. Shared by several test crates: not every one uses every item.
#![allow(dead_code)]

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub const CLUSTER_INFO_PATH: &str = "/api/v1/namespaces/kube-public/configmaps/cluster-info";

/// A certificate authority.
pub struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pub der: CertificateDer<'static>,
    pub pem: String,
}

/// A server certificate and its key.
pub struct Leaf {
    pub der: CertificateDer<'static>,
    key: Vec<u8>,
}

impl Leaf {
    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.clone()))
    }

    /// The certificate and the PKCS#8 key as PEM (for servers that are not ours, e.g. `openssl s_server`).
    pub fn pem_pair(&self) -> (String, String) {
        (pem("CERTIFICATE", &self.der), pem("PRIVATE KEY", &self.key))
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap_or(""))
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("self-signed CA");
        Ca {
            der: cert.der().clone(),
            pem: cert.pem(),
            params,
            key,
        }
    }

    /// `sha256:<hex>` of the CA's SubjectPublicKeyInfo, computed from rcgen's key (independently of the agent).
    pub fn pin(&self) -> String {
        format!(
            "sha256:{}",
            hex::encode(Sha256::digest(self.key.subject_public_key_info()))
        )
    }

    pub fn issue(&self, sans: &[&str]) -> Leaf {
        self.issue_with(sans, |_| {})
    }

    pub fn issue_expired(&self, sans: &[&str]) -> Leaf {
        self.issue_with(sans, |params| {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        })
    }

    fn issue_with(&self, sans: &[&str], tweak: impl FnOnce(&mut CertificateParams)) -> Leaf {
        let names: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("leaf params");
        params
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        tweak(&mut params);
        let key = KeyPair::generate().expect("leaf key");
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).expect("signed leaf");
        Leaf {
            der: cert.der().clone(),
            key: key.serialize_der(),
        }
    }
}

/// kubeadm's cluster-info ConfigMap (as the API server returns it) whose kubeconfig carries `ca_pem`.
pub fn cluster_info_json(ca_pem: &str) -> String {
    use base64::Engine as _;
    let data = base64::engine::general_purpose::STANDARD.encode(ca_pem.as_bytes());
    let kubeconfig = format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {data}\n    server: \
         https://masters.prod.k8s:6443\n  name: \"\"\ncontexts: null\ncurrent-context: \"\"\nkind: Config\n\
         preferences: {{}}\nusers: null\n"
    );
    serde_json::json!({
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {"name": "cluster-info", "namespace": "kube-public"},
        "data": {"kubeconfig": kubeconfig, "jws-kubeconfig-abcdef": "eyJhbGciOiJIUzI1NiIsImtpZCI6ImFiY2RlZiJ9..x"}
    })
    .to_string()
}

/// How the server talks.
pub enum Wire {
    /// TLS with this chain (leaf first) and key.
    Tls {
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    },
    /// Plain HTTP.
    Plain,
    /// Accepts connections and never reads or writes.
    Silent,
}

impl Wire {
    pub fn tls(leaf: &Leaf, extra: &[&CertificateDer<'static>]) -> Wire {
        let mut chain = vec![leaf.der.clone()];
        chain.extend(extra.iter().map(|c| (*c).clone()));
        Wire::Tls {
            chain,
            key: leaf.key(),
        }
    }
}

/// What the server answers.
pub struct Behaviour {
    /// Statuses for `/readyz` and `/healthz`, in order; the last one repeats.
    pub health: Vec<u16>,
    /// The body for cluster-info (404 when `None`).
    pub cluster_info: Option<String>,
}

impl Behaviour {
    pub fn healthy() -> Behaviour {
        Behaviour {
            health: vec![200],
            cluster_info: None,
        }
    }

    pub fn with_cluster_info(ca_pem: &str) -> Behaviour {
        Behaviour {
            health: vec![200],
            cluster_info: Some(cluster_info_json(ca_pem)),
        }
    }
}

#[derive(Default)]
pub struct Seen {
    /// TCP connections accepted.
    pub connections: AtomicUsize,
    /// Request paths, in order.
    pub paths: Mutex<Vec<String>>,
    /// Header names of every request (lower case).
    pub header_names: Mutex<Vec<String>>,
    /// SNI names of completed TLS handshakes.
    pub sni: Mutex<Vec<String>>,
}

pub struct Server {
    pub port: u16,
    pub seen: Arc<Seen>,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    pub fn connections(&self) -> usize {
        self.seen.connections.load(Ordering::SeqCst)
    }

    pub fn paths(&self) -> Vec<String> {
        self.seen.paths.lock().expect("paths").clone()
    }
}

pub async fn start(wire: Wire, behaviour: Behaviour) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    let port = listener.local_addr().expect("local addr").port();
    let seen = Arc::new(Seen::default());
    let acceptor = match &wire {
        Wire::Tls { chain, key } => {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("TLS versions")
                .with_no_client_auth()
                .with_single_cert(chain.clone(), key.clone_key())
                .expect("server certificate");
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
        }
        _ => None,
    };
    let silent = matches!(wire, Wire::Silent);
    let health = Arc::new(Mutex::new(VecDeque::from(behaviour.health)));
    let cluster_info = Arc::new(behaviour.cluster_info);
    let task_seen = seen.clone();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            task_seen.connections.fetch_add(1, Ordering::SeqCst);
            if silent {
                held.push(stream);
                continue;
            }
            let (seen, health, cluster_info, acceptor) = (
                task_seen.clone(),
                health.clone(),
                cluster_info.clone(),
                acceptor.clone(),
            );
            tokio::spawn(async move {
                match acceptor {
                    Some(acceptor) => {
                        if let Ok(tls) = acceptor.accept(stream).await {
                            if let Some(name) = tls.get_ref().1.server_name() {
                                seen.sni.lock().expect("sni").push(name.to_string());
                            }
                            serve(tls, &seen, &health, &cluster_info).await;
                        }
                    }
                    None => serve(stream, &seen, &health, &cluster_info).await,
                }
            });
        }
    });
    Server { port, seen, task }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    seen: &Seen,
    health: &Mutex<VecDeque<u16>>,
    cluster_info: &Option<String>,
) {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
        if request.len() > 64 * 1024 {
            return;
        }
    }
    let text = String::from_utf8_lossy(&request).to_string();
    let mut lines = text.split("\r\n");
    let path = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or("")
        .to_string();
    seen.header_names.lock().expect("headers").extend(
        lines
            .filter_map(|l| l.split_once(':'))
            .map(|(name, _)| name.trim().to_ascii_lowercase()),
    );
    seen.paths.lock().expect("paths").push(path.clone());
    let (status, body) = match path.as_str() {
        "/readyz" | "/healthz" => {
            let mut queue = health.lock().expect("health");
            let status = if queue.len() > 1 {
                queue.pop_front()
            } else {
                queue.front().copied()
            };
            let status = status.unwrap_or(200);
            (
                status,
                if status == 200 {
                    "ok".to_string()
                } else {
                    "not ready".to_string()
                },
            )
        }
        CLUSTER_INFO_PATH => match cluster_info {
            Some(body) => (200, body.clone()),
            None => (404, "{\"kind\":\"Status\",\"code\":404}".to_string()),
        },
        _ => (404, "not found".to_string()),
    };
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Whatever",
    };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}
