//! Kubeconfig files as client-go reads them (YAML or JSON): the current context's cluster (`server`,
//! `certificate-authority` or `-data`, `tls-server-name`) and user (`client-certificate`/`client-key` files or
//! `-data`, `token` or `tokenFile`). Relative paths are relative to the kubeconfig's directory, as in client-go.
//! Errors name the file and say what is missing, in client-go's words where it has them.

use super::{pki, read_small_file};
use base64::Engine as _;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// How the user authenticates.
pub enum Credential {
    /// A client certificate and its key (PEM).
    ClientCert { cert_pem: Vec<u8>, key_pem: Vec<u8> },
    /// A bearer token.
    Token(String),
    /// Nothing (anonymous).
    None,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::ClientCert { .. } => write!(f, "ClientCert"),
            Credential::Token(t) => write!(f, "Token({} bytes)", t.len()),
            Credential::None => write!(f, "None"),
        }
    }
}

/// What a stand-in needs from a kubeconfig.
#[derive(Debug)]
pub struct Kubeconfig {
    pub path: PathBuf,
    pub server: String,
    /// The CA bundle (PEM) the server is verified against.
    pub ca_pem: Option<Vec<u8>>,
    pub tls_server_name: Option<String>,
    pub credential: Credential,
}

impl Kubeconfig {
    /// The client certificate's CN, when the user is a client certificate.
    pub fn client_common_name(&self) -> Option<String> {
        let Credential::ClientCert { cert_pem, .. } = &self.credential else {
            return None;
        };
        let der = pki::certificates(cert_pem).ok()?.into_iter().next()?;
        pki::cert_info(&der).ok().map(|i| i.common_name)
    }
}

fn named<'a>(config: &'a Value, list: &str, name: &str, item: &str) -> Option<&'a Value> {
    config
        .get(list)?
        .as_array()?
        .iter()
        .find(|e| e.get("name").and_then(Value::as_str) == Some(name))?
        .get(item)
}

/// Loads `path`. `what` names the flag or role in errors (e.g. `--kubeconfig`).
pub fn load(what: &str, path: &Path) -> Result<Kubeconfig, String> {
    let shown = format!("{what} {}", path.display());
    let bytes = read_small_file(what, path)?;
    let text = String::from_utf8(bytes).map_err(|_| format!("{shown}: not UTF-8 text"))?;
    let config: Value = serde_yaml_ng::from_str(&text)
        .map_err(|e| format!("{shown}: not a kubeconfig (YAML does not parse: {e})"))?;
    if !config.is_object() {
        return Err(format!("{shown}: not a kubeconfig (not a YAML mapping)"));
    }
    if let Some(kind) = config.get("kind").and_then(Value::as_str)
        && kind != "Config"
    {
        return Err(format!(
            "{shown}: kind is {kind:?}, a kubeconfig has kind Config"
        ));
    }
    let base = path.parent().unwrap_or(Path::new("."));
    let resolve = |p: &str| -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base.join(p)
        }
    };
    let context_name = config
        .get("current-context")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if context_name.is_empty() {
        return Err(format!(
            "{shown}: invalid configuration: no current-context is set"
        ));
    }
    let context = named(&config, "contexts", context_name, "context").ok_or_else(|| {
        format!("{shown}: invalid configuration: context was not found for specified context: {context_name}")
    })?;
    let cluster_name = context
        .get("cluster")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let cluster = named(&config, "clusters", cluster_name, "cluster").ok_or_else(|| {
        format!("{shown}: invalid configuration: context {context_name:?} names cluster {cluster_name:?}, which is not in the file")
    })?;
    let server = cluster
        .get("server")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if server.is_empty() {
        return Err(format!(
            "{shown}: invalid configuration: no server found for cluster {cluster_name:?}"
        ));
    }
    let decode = |field: &str, v: &str| -> Result<Vec<u8>, String> {
        base64::engine::general_purpose::STANDARD
            .decode(v.trim())
            .map_err(|_| format!("{shown}: {field} is not valid base64"))
    };
    let file = |field: &str, p: &str| -> Result<Vec<u8>, String> {
        read_small_file(&format!("{shown}: {field}"), &resolve(p))
    };
    let ca_pem = match (
        cluster
            .get("certificate-authority-data")
            .and_then(Value::as_str),
        cluster.get("certificate-authority").and_then(Value::as_str),
    ) {
        (Some(d), _) if !d.is_empty() => Some(decode("certificate-authority-data", d)?),
        (_, Some(p)) if !p.is_empty() => Some(file("certificate-authority", p)?),
        _ => None,
    };
    if let Some(ca) = &ca_pem {
        pki::certificates(ca)
            .map_err(|e| format!("{shown}: the cluster's certificate authority {e}"))?;
    }
    let tls_server_name = cluster
        .get("tls-server-name")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string);

    let user_name = context
        .get("user")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let user = named(&config, "users", user_name, "user");
    let field = |k: &str| {
        user.and_then(|u| u.get(k))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let cert_pem = match (
        field("client-certificate-data"),
        field("client-certificate"),
    ) {
        (Some(d), _) => Some(decode("client-certificate-data", d)?),
        (_, Some(p)) => Some(file("client-certificate", p)?),
        _ => None,
    };
    let key_pem = match (field("client-key-data"), field("client-key")) {
        (Some(d), _) => Some(decode("client-key-data", d)?),
        (_, Some(p)) => Some(file("client-key", p)?),
        _ => None,
    };
    let credential = match (cert_pem, key_pem) {
        (Some(cert_pem), Some(key_pem)) => {
            let certs = pki::certificates(&cert_pem)
                .map_err(|e| format!("{shown}: the client certificate {e}"))?;
            let key =
                pki::private_key(&key_pem).map_err(|e| format!("{shown}: the client key {e}"))?;
            let info = pki::cert_info(&certs[0])
                .map_err(|e| format!("{shown}: the client certificate is {e}"))?;
            if info.public.raw != key.public.raw {
                return Err(format!(
                    "{shown}: tls: private key does not match public key (the client key does not belong to the client certificate)"
                ));
            }
            Credential::ClientCert { cert_pem, key_pem }
        }
        (Some(_), None) => {
            return Err(format!(
                "{shown}: invalid configuration: client-cert-data or client-cert requires client-key-data or client-key"
            ));
        }
        (None, Some(_)) => {
            return Err(format!(
                "{shown}: invalid configuration: client-key-data or client-key requires client-cert-data or client-cert"
            ));
        }
        (None, None) => match (field("token"), field("tokenFile")) {
            (Some(t), _) => Credential::Token(t.trim().to_string()),
            (_, Some(p)) => Credential::Token(
                String::from_utf8_lossy(&file("tokenFile", p)?)
                    .trim()
                    .to_string(),
            ),
            _ => Credential::None,
        },
    };
    Ok(Kubeconfig {
        path: path.to_path_buf(),
        server,
        ca_pem,
        tls_server_name,
        credential,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn token_kubeconfig_with_a_relative_ca_file() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = params.self_signed(&key).unwrap();
        write(dir.path(), "ca.crt", &ca.pem());
        let path = write(
            dir.path(),
            "bootstrap.conf",
            "apiVersion: v1\nkind: Config\nclusters:\n- name: k\n  cluster:\n    server: https://127.0.0.1:6443\n    certificate-authority: ca.crt\ncontexts:\n- name: c\n  context: {cluster: k, user: u}\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: abcdef.0123456789abcdef\n",
        );
        let k = load("--bootstrap-kubeconfig", &path).unwrap();
        assert_eq!(k.server, "https://127.0.0.1:6443");
        assert!(k.ca_pem.is_some());
        assert!(matches!(k.credential, Credential::Token(ref t) if t == "abcdef.0123456789abcdef"));
    }

    #[test]
    fn errors_name_the_file_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.conf");
        let err = load("--kubeconfig", &missing).unwrap_err();
        assert!(
            err.contains("--kubeconfig") && err.contains("cannot read"),
            "{err}"
        );
        let p = write(dir.path(), "a.conf", "{not yaml: [");
        assert!(
            load("--kubeconfig", &p)
                .unwrap_err()
                .contains("does not parse")
        );
        let p = write(
            dir.path(),
            "b.conf",
            "apiVersion: v1\nkind: Config\ncurrent-context: x\n",
        );
        assert!(
            load("--kubeconfig", &p)
                .unwrap_err()
                .contains("context was not found")
        );
        let p = write(
            dir.path(),
            "c.conf",
            "apiVersion: v1\nkind: Config\ncurrent-context: x\ncontexts:\n- name: x\n  context: {cluster: k, user: u}\nclusters:\n- name: k\n  cluster: {}\n",
        );
        assert!(load("--kubeconfig", &p).unwrap_err().contains("no server"));
    }
}
