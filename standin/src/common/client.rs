//! A small blocking HTTPS client for the Kubernetes API: one request per connection (`Connection: close`),
//! JSON in and out, the server verified against the kubeconfig's CA, a client certificate or a bearer token as
//! the kubeconfig says. Bounded: 5 s to connect, 15 s per read or write, 4 MiB of answer.

use super::kubeconfig::{Credential, Kubeconfig};
use super::pki;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const IO_TIMEOUT: Duration = Duration::from_secs(15);
const MAX_ANSWER_BYTES: usize = 4 << 20;

/// An answer: the status and the body (JSON when it parses, else a string value).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    /// The `message` of a Status answer, or the body as text.
    pub fn message(&self) -> String {
        match self.body.get("message").and_then(Value::as_str) {
            Some(m) => m.to_string(),
            None => match &self.body {
                Value::String(s) => s.trim().to_string(),
                other => other.to_string(),
            },
        }
    }
}

/// A client for one API server and one identity.
#[derive(Clone)]
pub struct Client {
    host: String,
    port: u16,
    server_name: ServerName<'static>,
    /// The config with the client certificate (if any).
    config: Arc<ClientConfig>,
    /// The config with only the server's CA (for token clients derived from this one).
    anonymous_config: Arc<ClientConfig>,
    token: Option<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Client(https://{}:{})", self.host, self.port)
    }
}

/// `https://host[:port]` → (host, port). A path is not supported (none of the programs here use one).
pub fn parse_server(server: &str) -> Result<(String, u16), String> {
    let rest = server
        .strip_prefix("https://")
        .ok_or_else(|| format!("server {server:?} is not an https:// URL"))?;
    let authority = rest.trim_end_matches('/');
    if authority.contains('/') {
        return Err(format!(
            "server {server:?}: a path after the host is not supported"
        ));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("server {server:?}: unclosed [ in the host"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p
                .parse()
                .map_err(|_| format!("server {server:?}: bad port"))?,
            None => 443,
        };
        (h.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse()
                    .map_err(|_| format!("server {server:?}: bad port"))?,
            ),
            None => (authority.to_string(), 443),
        }
    };
    if host.is_empty() {
        return Err(format!("server {server:?} has no host"));
    }
    Ok((host, port))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Client {
    /// A client for the kubeconfig's server and user.
    pub fn from_kubeconfig(k: &Kubeconfig) -> Result<Client, String> {
        let shown = k.path.display();
        let (host, port) = parse_server(&k.server).map_err(|e| format!("{shown}: {e}"))?;
        let mut roots = RootCertStore::empty();
        let ca = k.ca_pem.as_ref().ok_or_else(|| {
            format!("{shown}: the cluster has no certificate-authority(-data); the stand-ins verify the server only against it")
        })?;
        for der in pki::certificates(ca).map_err(|e| format!("{shown}: the CA {e}"))? {
            roots
                .add(CertificateDer::from(der))
                .map_err(|e| format!("{shown}: the CA is not usable ({e})"))?;
        }
        let builder = || {
            ClientConfig::builder_with_provider(provider())
                .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
                .map(|b| b.with_root_certificates(roots.clone()))
                .map_err(|e| format!("cannot set up TLS: {e}"))
        };
        let anonymous_config = Arc::new(builder()?.with_no_client_auth());
        let (config, token) = match &k.credential {
            Credential::ClientCert { cert_pem, key_pem } => {
                let chain = CertificateDer::pem_slice_iter(cert_pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("{shown}: the client certificate: {e}"))?;
                let key = pki::private_key(key_pem)
                    .map_err(|e| format!("{shown}: the client key {e}"))?;
                let key = PrivateKeyDer::try_from(key.pkcs8.clone())
                    .map_err(|e| format!("{shown}: the client key: {e}"))?;
                let config = builder()?.with_client_auth_cert(chain, key).map_err(|e| {
                    format!("{shown}: the client certificate and key are not usable ({e})")
                })?;
                (Arc::new(config), None)
            }
            Credential::Token(t) => (anonymous_config.clone(), Some(t.clone())),
            Credential::None => (anonymous_config.clone(), None),
        };
        let name = k.tls_server_name.clone().unwrap_or_else(|| host.clone());
        let server_name = ServerName::try_from(name.clone())
            .map_err(|_| format!("{shown}: {name:?} is not a valid TLS server name"))?;
        Ok(Client {
            host,
            port,
            server_name,
            config,
            anonymous_config,
            token,
        })
    }

    /// The same server, authenticated with `token` instead (no client certificate).
    pub fn with_token(&self, token: &str) -> Client {
        Client {
            config: self.anonymous_config.clone(),
            token: Some(token.to_string()),
            ..self.clone()
        }
    }

    /// `https://host:port`.
    pub fn server(&self) -> String {
        if self.host.contains(':') {
            format!("https://[{}]:{}", self.host, self.port)
        } else {
            format!("https://{}:{}", self.host, self.port)
        }
    }

    /// GET `path`.
    pub fn get(&self, path: &str) -> Result<Reply, String> {
        self.call("GET", path, None)
    }

    /// One request. `Err` only when no HTTP answer came (connection, TLS, timeout); any status is `Ok`.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Reply, String> {
        let at = format!("{} {}", method, self.server() + path);
        let fail = |e: String| format!("{at}: {e}");
        let address = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| fail(format!("cannot resolve {}: {e}", self.host)))?
            .next()
            .ok_or_else(|| fail(format!("{} resolves to no address", self.host)))?;
        let tcp = TcpStream::connect_timeout(&address, CONNECT_TIMEOUT)
            .map_err(|e| fail(format!("cannot connect to {address}: {e}")))?;
        tcp.set_read_timeout(Some(IO_TIMEOUT))
            .and_then(|()| tcp.set_write_timeout(Some(IO_TIMEOUT)))
            .map_err(|e| fail(e.to_string()))?;
        let connection = ClientConnection::new(self.config.clone(), self.server_name.clone())
            .map_err(|e| fail(format!("cannot start TLS: {e}")))?;
        let mut tls = StreamOwned::new(connection, tcp);
        let body_bytes = body.map(|b| serde_json::to_vec(b).unwrap_or_default());
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: k8s-standin/{} (STAND-IN {})\r\nAccept: application/json\r\nConnection: close\r\n",
            self.host,
            env!("CARGO_PKG_VERSION"),
            super::name()
        );
        if let Some(token) = &self.token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        if let Some(b) = &body_bytes {
            let content_type = if method == "PATCH" {
                "application/merge-patch+json"
            } else {
                "application/json"
            };
            head.push_str(&format!(
                "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
                b.len()
            ));
        }
        head.push_str("\r\n");
        let mut request = head.into_bytes();
        if let Some(b) = body_bytes {
            request.extend(b);
        }
        tls.write_all(&request)
            .and_then(|()| tls.flush())
            .map_err(|e| fail(format!("sending the request failed: {e}")))?;
        let mut answer = Vec::new();
        let mut buffer = [0u8; 16 * 1024];
        loop {
            match tls.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buffer[..n]);
                    if answer.len() > MAX_ANSWER_BYTES {
                        return Err(fail(format!(
                            "the answer is larger than {MAX_ANSWER_BYTES} bytes"
                        )));
                    }
                    if complete(&answer) {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // A peer that closes without close_notify after a complete answer is fine.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !answer.is_empty() => {
                    break;
                }
                Err(e) => return Err(fail(format!("reading the answer failed: {e}"))),
            }
        }
        parse_answer(&answer).map_err(fail)
    }
}

/// Whether `answer` holds a complete response (head and `Content-Length` bytes of body).
fn complete(answer: &[u8]) -> bool {
    let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    length.is_some_and(|n| answer.len() >= end + 4 + n)
}

fn parse_answer(answer: &[u8]) -> Result<Reply, String> {
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("the server closed the connection without a complete answer")?;
    let head = String::from_utf8_lossy(&answer[..end]);
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| "the answer has no HTTP status line".to_string())?;
    let lower = head.to_ascii_lowercase();
    let mut body = answer[end + 4..].to_vec();
    if let Some(n) = lower
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        body.truncate(n);
    }
    let body = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    Ok(Reply { status, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_are_parsed() {
        assert_eq!(
            parse_server("https://127.0.0.1:6443").unwrap(),
            ("127.0.0.1".into(), 6443)
        );
        assert_eq!(
            parse_server("https://masters.c.k8s:6443/").unwrap(),
            ("masters.c.k8s".into(), 6443)
        );
        assert_eq!(
            parse_server("https://[::1]:6443").unwrap(),
            ("::1".into(), 6443)
        );
        assert_eq!(
            parse_server("https://example").unwrap(),
            ("example".into(), 443)
        );
        assert!(parse_server("http://127.0.0.1:8080").is_err());
        assert!(parse_server("https://h:p").is_err());
        assert!(parse_server("https://h:1/api").is_err());
    }

    #[test]
    fn answers_are_parsed() {
        let r = parse_answer(
            b"HTTP/1.1 403 Forbidden\r\nContent-Length: 16\r\n\r\n{\"message\":\"no\"}",
        )
        .unwrap();
        assert_eq!(r.status, 403);
        assert_eq!(r.message(), "no");
        assert!(complete(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
        assert!(!complete(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok"));
        let r = parse_answer(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").unwrap();
        assert_eq!(r.message(), "ok");
    }
}
