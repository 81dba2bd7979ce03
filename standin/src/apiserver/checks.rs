//! Start-up checks: every file kube-apiserver's flags name is read and checked before anything listens, and a
//! problem is one `error: --flag file: what is wrong` line and exit status 1 (systemd shows the unit failed).
//!
//! | flag(s) | checked |
//! |---|---|
//! | `--client-ca-file` | PEM certificates, each a CA (basicConstraints CA:TRUE) |
//! | `--tls-cert-file` + `--tls-private-key-file` | the key belongs to the first certificate; that leaf is signed by a `--client-ca-file` CA (kubeadm's layout: ca.crt issues apiserver.crt) |
//! | `--kubelet-client-certificate` + `--kubelet-client-key` | the key belongs to the certificate; signed by a `--client-ca-file` CA |
//! | `--requestheader-client-ca-file` | PEM certificates, each a CA |
//! | `--proxy-client-cert-file` + `--proxy-client-key-file` | the key belongs to the certificate; signed by a `--requestheader-client-ca-file` CA |
//! | `--service-account-key-file` | PEM public keys (or private keys, whose public half is used) |
//! | `--service-account-signing-key-file` | a private key whose public half is in a `--service-account-key-file` |
//! | `--etcd-servers` | one of the URLs accepts a TCP connection within 5 s (etcd runs on the master) |
//!
//! The signed-by checks are kubeadm's layout rather than checks the real binary makes at start (it would
//! start, and clients would fail later); the stand-in refuses early so a wrong PKI shows at once.

use super::flags::Flags;
use super::tls::ClientCa;
use crate::common::pki::{self, PrivateKey, PublicKey};
use crate::common::read_small_file;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::{Duration, Instant};

/// How long the etcd check keeps trying.
pub const ETCD_WAIT: Duration = Duration::from_secs(5);

/// Everything the flags name, loaded and checked.
pub struct Loaded {
    pub serving_chain_pem: Vec<u8>,
    pub serving_chain_len: usize,
    pub serving_key: PrivateKey,
    pub client_ca: Option<ClientCa>,
    pub service_account_keys: Vec<PublicKey>,
    pub service_account_signing_key: PrivateKey,
    /// The etcd endpoints (host:port), for `/readyz`.
    pub etcd: Vec<String>,
}

fn shown(flag: &str, path: &Path) -> String {
    format!("--{flag} {}", path.display())
}

fn load_certs(flag: &str, path: &Path) -> Result<Vec<Vec<u8>>, String> {
    let bytes = read_small_file(&format!("--{flag}"), path)?;
    pki::certificates(&bytes).map_err(|e| format!("{}: {e}", shown(flag, path)))
}

fn load_ca(flag: &str, path: &Path) -> Result<Vec<Vec<u8>>, String> {
    let certs = load_certs(flag, path)?;
    for (i, der) in certs.iter().enumerate() {
        let info = pki::cert_info(der).map_err(|e| format!("{}: {e}", shown(flag, path)))?;
        if !info.is_ca {
            return Err(format!(
                "{}: certificate {} (CN {:?}) is not a CA certificate (basicConstraints CA:TRUE)",
                shown(flag, path),
                i + 1,
                info.common_name
            ));
        }
    }
    Ok(certs)
}

/// A certificate file (its certificates and its bytes) and its key.
type Pair = (Vec<Vec<u8>>, Vec<u8>, PrivateKey);

/// A certificate file and its key file: the key must belong to the first certificate.
fn load_pair(cert_flag: &str, cert: &Path, key_flag: &str, key: &Path) -> Result<Pair, String> {
    let bytes = read_small_file(&format!("--{cert_flag}"), cert)?;
    let certs =
        pki::certificates(&bytes).map_err(|e| format!("{}: {e}", shown(cert_flag, cert)))?;
    let key_bytes = read_small_file(&format!("--{key_flag}"), key)?;
    let private =
        pki::private_key(&key_bytes).map_err(|e| format!("{}: {e}", shown(key_flag, key)))?;
    let leaf = pki::cert_info(&certs[0]).map_err(|e| format!("{}: {e}", shown(cert_flag, cert)))?;
    if leaf.public.raw != private.public.raw {
        return Err(format!(
            "{} and {} do not match: the key does not belong to the first certificate (CN {:?})",
            shown(cert_flag, cert),
            shown(key_flag, key),
            leaf.common_name
        ));
    }
    Ok((certs, bytes, private))
}

fn check_signed(
    cert_flag: &str,
    cert: &Path,
    leaf: &[u8],
    ca_flag: &str,
    ca_path: &Path,
    cas: &[Vec<u8>],
) -> Result<(), String> {
    if cas.iter().any(|ca| pki::signed_by(leaf, ca)) {
        return Ok(());
    }
    let cn = pki::cert_info(leaf)
        .map(|i| i.common_name)
        .unwrap_or_default();
    Err(format!(
        "{}: the certificate (CN {cn:?}) is not signed by the CA in {}",
        shown(cert_flag, cert),
        shown(ca_flag, ca_path)
    ))
}

/// Runs every check, in the order of the table above.
pub fn load(flags: &Flags) -> Result<Loaded, String> {
    let client_cas = match &flags.client_ca_file {
        Some(p) => Some((p, load_ca("client-ca-file", p)?)),
        None => None,
    };
    let (serving, serving_chain_pem, serving_key) = load_pair(
        "tls-cert-file",
        &flags.tls_cert_file,
        "tls-private-key-file",
        &flags.tls_private_key_file,
    )?;
    if let Some((ca_path, cas)) = &client_cas {
        check_signed(
            "tls-cert-file",
            &flags.tls_cert_file,
            &serving[0],
            "client-ca-file",
            ca_path,
            cas,
        )?;
    }
    if let (Some(cert), Some(key)) = (&flags.kubelet_client_certificate, &flags.kubelet_client_key)
    {
        let (certs, _, _) = load_pair(
            "kubelet-client-certificate",
            cert,
            "kubelet-client-key",
            key,
        )?;
        if let Some((ca_path, cas)) = &client_cas {
            check_signed(
                "kubelet-client-certificate",
                cert,
                &certs[0],
                "client-ca-file",
                ca_path,
                cas,
            )?;
        }
    }
    let requestheader_cas = match &flags.requestheader_client_ca_file {
        Some(p) => Some((p, load_ca("requestheader-client-ca-file", p)?)),
        None => None,
    };
    if let (Some(cert), Some(key)) = (&flags.proxy_client_cert_file, &flags.proxy_client_key_file) {
        let (certs, _, _) =
            load_pair("proxy-client-cert-file", cert, "proxy-client-key-file", key)?;
        if let Some((ca_path, cas)) = &requestheader_cas {
            check_signed(
                "proxy-client-cert-file",
                cert,
                &certs[0],
                "requestheader-client-ca-file",
                ca_path,
                cas,
            )?;
        }
    }
    let mut service_account_keys = Vec::new();
    for path in &flags.service_account_key_files {
        let bytes = read_small_file("--service-account-key-file", path)?;
        service_account_keys.extend(
            pki::public_keys(&bytes)
                .map_err(|e| format!("{}: {e}", shown("service-account-key-file", path)))?,
        );
    }
    let signing_path = &flags.service_account_signing_key_file;
    let signing_bytes = read_small_file("--service-account-signing-key-file", signing_path)?;
    let service_account_signing_key = pki::private_key(&signing_bytes).map_err(|e| {
        format!(
            "{}: {e}",
            shown("service-account-signing-key-file", signing_path)
        )
    })?;
    if !service_account_keys
        .iter()
        .any(|k| k.raw == service_account_signing_key.public.raw)
    {
        let files: Vec<String> = flags
            .service_account_key_files
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        return Err(format!(
            "{}: its public key is not in --service-account-key-file {} (tokens it signs could not be verified)",
            shown("service-account-signing-key-file", signing_path),
            files.join(", ")
        ));
    }
    if !matches!(
        service_account_signing_key.public.kind,
        pki::KeyKind::Rsa | pki::KeyKind::EcP256
    ) {
        return Err(format!(
            "{}: the stand-in signs service-account tokens with RSA (RS256) or ECDSA P-256 (ES256) keys only",
            shown("service-account-signing-key-file", signing_path)
        ));
    }
    let etcd = check_etcd(&flags.etcd_servers)?;
    let client_ca = match client_cas {
        Some((path, certs)) => Some(
            ClientCa::new(&certs).map_err(|e| format!("{}: {e}", shown("client-ca-file", path)))?,
        ),
        None => None,
    };
    Ok(Loaded {
        serving_chain_len: serving.len(),
        serving_chain_pem,
        serving_key,
        client_ca,
        service_account_keys,
        service_account_signing_key,
        etcd,
    })
}

/// `http://host:port` → `host:port`.
pub fn etcd_endpoint(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .or_else(|| url.strip_prefix("unix://").map(|_| ""))
        .ok_or_else(|| format!("--etcd-servers {url:?}: not an http:// or https:// URL"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Err(format!(
            "--etcd-servers {url:?}: the stand-in reaches etcd over TCP only (host:port)"
        ));
    }
    if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        Ok(authority.to_string())
    } else {
        Ok(format!("{authority}:2379"))
    }
}

/// Whether one endpoint accepts a TCP connection within `timeout`.
pub fn reachable(endpoint: &str, timeout: Duration) -> Result<(), String> {
    let addresses: Vec<SocketAddr> = endpoint
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {endpoint}: {e}"))?
        .collect();
    let mut last = format!("{endpoint} resolves to no address");
    for address in addresses {
        match TcpStream::connect_timeout(&address, timeout) {
            Ok(_) => return Ok(()),
            Err(e) => last = format!("connect to {address}: {e}"),
        }
    }
    Err(last)
}

fn check_etcd(urls: &[String]) -> Result<Vec<String>, String> {
    let endpoints = urls
        .iter()
        .map(|u| etcd_endpoint(u))
        .collect::<Result<Vec<_>, _>>()?;
    let deadline = Instant::now() + ETCD_WAIT;
    loop {
        let mut last = String::new();
        for e in &endpoints {
            match reachable(e, Duration::from_millis(500)) {
                Ok(()) => return Ok(endpoints),
                Err(why) => last = why,
            }
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "--etcd-servers {}: no etcd server accepts connections ({last}) after {}s; like the real \
                 kube-apiserver, the stand-in does not start without its storage (it keeps the objects in \
                 --stand-in-data-dir, but needs etcd to be up)",
                urls.join(","),
                ETCD_WAIT.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_urls_become_endpoints() {
        assert_eq!(
            etcd_endpoint("http://127.0.0.1:2379").unwrap(),
            "127.0.0.1:2379"
        );
        assert_eq!(
            etcd_endpoint("https://etcd.local").unwrap(),
            "etcd.local:2379"
        );
        assert_eq!(etcd_endpoint("http://[::1]:2379/").unwrap(), "[::1]:2379");
        assert!(etcd_endpoint("127.0.0.1:2379").is_err());
        assert!(etcd_endpoint("unix:///run/etcd.sock").is_err());
    }

    #[test]
    fn a_closed_port_is_unreachable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = listener.local_addr().unwrap().to_string();
        assert!(reachable(&open, Duration::from_secs(1)).is_ok());
        drop(listener);
        assert!(reachable(&open, Duration::from_secs(1)).is_err());
    }
}
