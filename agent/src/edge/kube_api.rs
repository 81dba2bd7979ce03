//! A small client for the Kubernetes REST API: what the agent needs to join a cluster, nothing more — GET an
//! object, POST one (201 or 409 AlreadyExists), read `/readyz`. JSON bodies; typed objects are made in
//! [`crate::pure::join_objects`] and checked in [`crate::pure::discovery`].
//!
//! Like the master probe ([`crate::edge::probe`]) it never resolves the API server's name itself when told where
//! to connect: the URL's host is used for SNI and certificate name verification, the connection goes to
//! `connect_to` (the master's own loopback, or the addresses the agent resolved). Trust is explicit
//! ([`ServerTrust`]): the cluster CA, or — only for kubeadm's first, unverified cluster-info fetch, whose answer is
//! then checked by signature and pin — any certificate. Identities ([`Identity`]): anonymous, a client certificate
//! (admin.conf, super-admin.conf), or a bearer token (the bootstrap token). Nothing secret is logged or put into an
//! error: errors name the URL and the HTTP status with the API server's `Status.message`.
//!
//! Bodies are read up to [`MAX_BODY_BYTES`]; every request ends within the client's timeout; redirects are not
//! followed; connections are not pooled.

use crate::edge::probe::{self, NoResolver, RecordingVerifier, Target};
use crate::plan::{CLUSTER_CA_FILE, ProbeResult};
use crate::role_file::Secret;
use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// Answers larger than this are refused (the objects the agent reads are a few KiB).
pub const MAX_BODY_BYTES: usize = 1 << 20;

const USER_AGENT: &str = concat!("k8s-agent/", env!("CARGO_PKG_VERSION"));

/// What the API server's certificate is checked against.
#[derive(Clone)]
pub enum ServerTrust {
    /// PEM CA certificate(s): webpki chain, validity and host name.
    CaPem(Vec<u8>),
    /// Any certificate (handshake signatures still checked). Only for the first cluster-info fetch.
    AnyCertificate,
}

/// Who the requests are made as.
#[derive(Clone)]
pub enum Identity {
    Anonymous,
    /// PEM certificate (chain) and PEM private key.
    ClientCertificate {
        cert_pem: Vec<u8>,
        key_pem: Secret,
    },
    /// `Authorization: Bearer …`.
    Bearer(Secret),
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Anonymous => f.write_str("Anonymous"),
            Identity::ClientCertificate { .. } => f.write_str("ClientCertificate(<redacted>)"),
            Identity::Bearer(_) => f.write_str("Bearer(<redacted>)"),
        }
    }
}

/// Why a request did not give an answer to use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KubeApiError {
    #[error("cannot set up the API client for {server}: {reason}")]
    Setup { server: String, reason: String },
    #[error("{0}")]
    Tls(String),
    #[error("{0}")]
    Unreachable(String),
    #[error("no answer from {url} in time")]
    Timeout { url: String },
    #[error("{method} {url}: HTTP {code}{}", if .message.is_empty() { String::new() } else { format!(": {}", .message) })]
    Status {
        method: &'static str,
        url: String,
        code: u16,
        /// `Status.message` from the API server, if it sent one.
        message: String,
    },
    #[error("{url}: the answer is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge { url: String },
}

impl KubeApiError {
    /// The HTTP status, when the server answered.
    pub fn code(&self) -> Option<u16> {
        match self {
            KubeApiError::Status { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// The outcome of a create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// 201 (or 200).
    New,
    /// 409 AlreadyExists: the caller compares with the existing object.
    AlreadyExists,
}

/// A client for one API server, one trust and one identity.
pub struct KubeApi {
    client: reqwest::Client,
    base: String,
    identity_words: &'static str,
    /// The addresses it connects to (for error messages; empty: the host's own resolution).
    connect_to: Vec<IpAddr>,
}

impl fmt::Debug for KubeApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubeApi")
            .field("base", &self.base)
            .field("identity", &self.identity_words)
            .finish_non_exhaustive()
    }
}

fn provider() -> Arc<CryptoProvider> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Arc::new(rustls::crypto::ring::default_provider())
}

impl KubeApi {
    /// `server` is `https://host:port`; `connect_to` empty means: resolve the host as usual.
    pub fn new(
        server: &str,
        connect_to: &[IpAddr],
        trust: &ServerTrust,
        identity: &Identity,
        timeout: Duration,
    ) -> Result<KubeApi, KubeApiError> {
        let setup = |reason: String| KubeApiError::Setup {
            server: server.to_string(),
            reason,
        };
        let base = server.trim_end_matches('/').to_string();
        let provider = provider();
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| setup(e.to_string()))?;
        let builder = match trust {
            ServerTrust::CaPem(pem) => {
                let mut roots = RootCertStore::empty();
                let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
                    .collect::<Result<_, _>>()
                    .map_err(|e| setup(format!("the CA is not PEM ({e})")))?;
                if certs.is_empty() {
                    return Err(setup("the CA holds no certificate".to_string()));
                }
                for cert in certs {
                    roots
                        .add(cert)
                        .map_err(|e| setup(format!("the CA cannot be a trust anchor ({e})")))?;
                }
                let verifier =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| setup(e.to_string()))?;
                builder.with_webpki_verifier(verifier)
            }
            ServerTrust::AnyCertificate => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(RecordingVerifier::new(provider))),
        };
        let (tls, identity_words, bearer) = match identity {
            Identity::Anonymous => (builder.with_no_client_auth(), "anonymous", None),
            Identity::ClientCertificate { cert_pem, key_pem } => {
                let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
                    .collect::<Result<_, _>>()
                    .map_err(|e| setup(format!("the client certificate is not PEM ({e})")))?;
                if chain.is_empty() {
                    return Err(setup("no client certificate".to_string()));
                }
                let key = PrivateKeyDer::from_pem_slice(key_pem.expose().as_bytes())
                    .map_err(|_| setup("the client key is not a PEM private key".to_string()))?;
                let tls = builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| setup(format!("the client certificate and key: {e}")))?;
                (tls, "client certificate", None)
            }
            Identity::Bearer(token) => (builder.with_no_client_auth(), "bearer token", Some(token)),
        };
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::ACCEPT,
            reqwest::header::HeaderValue::from_static("application/json"),
        );
        if let Some(token) = bearer {
            let mut value =
                reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                    .map_err(|_| setup("the token is not a valid header value".to_string()))?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let mut client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .default_headers(headers)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(0)
            .connect_timeout(timeout)
            .timeout(timeout)
            .user_agent(USER_AGENT);
        if !connect_to.is_empty() {
            let target =
                Target::new(&format!("{base}/"), connect_to).map_err(|e| setup(e.to_string()))?;
            client = client
                .dns_resolver(NoResolver)
                .resolve_to_addrs(&target.host, &target.addrs);
        }
        let client = client.build().map_err(|e| setup(probe::error_text(&e)))?;
        Ok(KubeApi {
            client,
            base,
            identity_words,
            connect_to: connect_to.to_vec(),
        })
    }

    /// The server URL this client talks to.
    /// A client as a kubeconfig file under `root` says (`conf`, relative: kubelet.conf, admin.conf): its server
    /// and client certificate (embedded or a file under `root`), the server verified against the cluster CA
    /// ([`CLUSTER_CA_FILE`]), connecting to `connect_to`. Errors name the file and what is wrong in it.
    pub fn from_kubeconfig(
        root: &std::path::Path,
        conf: &str,
        connect_to: &[IpAddr],
        timeout: Duration,
    ) -> Result<KubeApi, String> {
        let path = root.join(conf);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let config = crate::pure::kubeconfig::parse(&text)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let server = config
            .current_cluster()
            .map_err(|e| format!("{}: {e}", path.display()))?
            .server
            .clone();
        let user = config
            .current_user()
            .map_err(|e| format!("{}: {e}", path.display()))?
            .clone();
        let under = |p: &str| root.join(p.trim_start_matches('/'));
        let (cert_pem, key_pem) = match (&user.client_certificate_data, &user.client_certificate) {
            (Some(data), _) => (
                data.clone(),
                user.client_key_data.clone().unwrap_or_default(),
            ),
            (None, Some(file)) => {
                let pem =
                    std::fs::read(under(file)).map_err(|e| format!("cannot read {file}: {e}"))?;
                let key = match &user.client_key {
                    Some(k) if k != file => {
                        std::fs::read(under(k)).map_err(|e| format!("cannot read {k}: {e}"))?
                    }
                    _ => pem.clone(),
                };
                (pem, key)
            }
            (None, None) => return Err(format!("{} has no client certificate", path.display())),
        };
        let ca = std::fs::read(root.join(CLUSTER_CA_FILE))
            .map_err(|e| format!("cannot read /{CLUSTER_CA_FILE}: {e}"))?;
        let key = String::from_utf8(key_pem)
            .map_err(|_| format!("{}: the client key is not PEM text", path.display()))?;
        KubeApi::new(
            &server,
            connect_to,
            &ServerTrust::CaPem(ca),
            &Identity::ClientCertificate {
                cert_pem,
                key_pem: Secret::new(key),
            },
            timeout,
        )
        .map_err(|e| e.to_string())
    }

    pub fn server(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn transport_error(&self, e: &reqwest::Error, url: &str) -> KubeApiError {
        let target = match Target::new(url, &self.connect_to) {
            Ok(t) => t,
            Err(_) => {
                return KubeApiError::Unreachable(format!("{url}: {}", probe::error_text(e)));
            }
        };
        match probe::classify(e, &target, "the cluster CA") {
            ProbeResult::TlsUntrusted { message } => KubeApiError::Tls(message),
            ProbeResult::Timeout => KubeApiError::Timeout {
                url: url.to_string(),
            },
            ProbeResult::Unreachable { message } => KubeApiError::Unreachable(message),
            ProbeResult::Healthy | ProbeResult::HttpStatus { .. } => {
                KubeApiError::Unreachable(format!("{url}: {}", probe::error_text(e)))
            }
        }
    }

    async fn read_body(
        &self,
        mut response: reqwest::Response,
        url: &str,
    ) -> Result<Vec<u8>, KubeApiError> {
        if response
            .content_length()
            .is_some_and(|n| n > MAX_BODY_BYTES as u64)
        {
            return Err(KubeApiError::TooLarge {
                url: url.to_string(),
            });
        }
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > MAX_BODY_BYTES {
                        return Err(KubeApiError::TooLarge {
                            url: url.to_string(),
                        });
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(body),
                Err(e) => return Err(self.transport_error(&e, url)),
            }
        }
    }

    async fn status_error(
        &self,
        method: &'static str,
        url: &str,
        response: reqwest::Response,
    ) -> KubeApiError {
        let code = response.status().as_u16();
        let body = self.read_body(response, url).await.unwrap_or_default();
        KubeApiError::Status {
            method,
            url: url.to_string(),
            code,
            message: status_message(&body),
        }
    }

    /// GET `path`: the body on 200, `None` on 404, an error otherwise.
    pub async fn get(&self, path: &str) -> Result<Option<Vec<u8>>, KubeApiError> {
        let url = self.url(path);
        let response = self
            .client
            .get(&url)
            .send()
            .await
            .map_err(|e| self.transport_error(&e, &url))?;
        match response.status().as_u16() {
            200 => Ok(Some(self.read_body(response, &url).await?)),
            404 => Ok(None),
            _ => Err(self.status_error("GET", &url, response).await),
        }
    }

    /// The HTTP status of `GET path` (for `/readyz`), the body ignored.
    pub async fn status_of(&self, path: &str) -> Result<u16, KubeApiError> {
        let url = self.url(path);
        let response = self
            .client
            .get(&url)
            .send()
            .await
            .map_err(|e| self.transport_error(&e, &url))?;
        Ok(response.status().as_u16())
    }

    /// POST `body` (JSON) to the collection at `path`.
    pub async fn create(&self, path: &str, body: Vec<u8>) -> Result<Created, KubeApiError> {
        let url = self.url(path);
        let response = self
            .client
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| self.transport_error(&e, &url))?;
        match response.status().as_u16() {
            200..=202 => Ok(Created::New),
            409 => Ok(Created::AlreadyExists),
            _ => Err(self.status_error("POST", &url, response).await),
        }
    }

    /// POST `body` (JSON) to `path` (an RPC-style endpoint such as etcd's gateway): the body on 200, an error
    /// with the server's `message` otherwise.
    pub async fn post(&self, path: &str, body: Vec<u8>) -> Result<Vec<u8>, KubeApiError> {
        let url = self.url(path);
        let response = self
            .client
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| self.transport_error(&e, &url))?;
        match response.status().as_u16() {
            200 => self.read_body(response, &url).await,
            _ => Err(self.status_error("POST", &url, response).await),
        }
    }

    /// POST a SelfSubjectReview (what `kubectl auth whoami` does): the user name and groups the server sees.
    pub async fn whoami(&self) -> Result<(String, Vec<String>), KubeApiError> {
        let path = "/apis/authentication.k8s.io/v1/selfsubjectreviews";
        let url = self.url(path);
        let body =
            br#"{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}"#.to_vec();
        let response = self
            .client
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| self.transport_error(&e, &url))?;
        if !response.status().is_success() {
            return Err(self.status_error("POST", &url, response).await);
        }
        let body = self.read_body(response, &url).await?;
        let value: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| KubeApiError::Status {
                method: "POST",
                url: url.clone(),
                code: 200,
                message: format!("not a SelfSubjectReview ({e})"),
            })?;
        let info = &value["status"]["userInfo"];
        let user = info["username"].as_str().unwrap_or_default().to_string();
        let groups = info["groups"]
            .as_array()
            .map(|g| {
                g.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        Ok((user, groups))
    }
}

/// `Status.message` of an error answer, shortened; empty when the body is not a Status.
fn status_message(body: &[u8]) -> String {
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("message")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_default();
    let mut message: String = message.chars().filter(|c| !c.is_control()).collect();
    if message.len() > 400 {
        let mut end = 400;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_messages_are_read_and_bounded() {
        assert_eq!(
            status_message(br#"{"kind":"Status","message":"secrets is forbidden: User \"x\""}"#),
            "secrets is forbidden: User \"x\""
        );
        assert_eq!(status_message(b"<html>"), "");
        let long = format!(r#"{{"message":"{}"}}"#, "é".repeat(500));
        assert!(status_message(long.as_bytes()).chars().count() <= 401);
    }

    #[test]
    fn identities_never_print_their_secrets() {
        let id = Identity::Bearer(Secret::new("abcdef.0123456789abcdef"));
        assert!(!format!("{id:?}").contains("0123456789abcdef"));
        let id = Identity::ClientCertificate {
            cert_pem: b"-----BEGIN CERTIFICATE-----".to_vec(),
            key_pem: Secret::new("-----BEGIN PRIVATE KEY-----"),
        };
        assert!(!format!("{id:?}").contains("PRIVATE"));
    }

    #[test]
    fn bad_setups_are_errors_not_panics() {
        let err = KubeApi::new(
            "https://masters.x.k8s:6443",
            &[],
            &ServerTrust::CaPem(b"not pem".to_vec()),
            &Identity::Anonymous,
            Duration::from_secs(1),
        )
        .expect_err("no CA");
        assert!(err.to_string().contains("holds no certificate"), "{err}");
        let err = KubeApi::new(
            "https://masters.x.k8s:6443",
            &[],
            &ServerTrust::AnyCertificate,
            &Identity::ClientCertificate {
                cert_pem: b"x".to_vec(),
                key_pem: Secret::new("y"),
            },
            Duration::from_secs(1),
        )
        .expect_err("no cert");
        assert!(err.to_string().contains("no client certificate"), "{err}");
    }
}
