//! The TLS side: the certificate chain and key from `--tls-cert-file` / `--tls-private-key-file`, made into a
//! rustls server configuration (ring provider, TLS 1.3 and 1.2, no client certificates asked for).
//!
//! The certificate file is served **as given**, every certificate in it, in its order (leaf first). kubeadm's
//! `apiserver.crt` holds only the leaf; a file holding the leaf followed by the CA lets a client that knows only
//! the CA's key hash (kubeadm's `--discovery-token-ca-cert-hash`, the agent's `CA_CERT_HASH`) find the CA in the
//! presented chain, since the stand-in serves no `cluster-info` ConfigMap to discover it from.
//!
//! Errors name the flag and the file: a missing or unreadable file, a file without a PEM certificate or key, a
//! key that does not belong to the leaf.

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

/// PEM files larger than this are refused (a certificate chain or key is a few KiB).
const MAX_PEM_BYTES: u64 = 1 << 20;

/// A ready server configuration and what it serves.
pub struct Tls {
    pub config: Arc<ServerConfig>,
    /// How many certificates the chain holds (leaf included).
    pub chain_len: usize,
}

/// Loads the chain and key and builds the server configuration.
pub fn load(cert_file: &Path, key_file: &Path) -> Result<Tls, String> {
    let cert_pem = read_pem_file("--tls-cert-file", cert_file)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            format!(
                "--tls-cert-file {}: not a valid PEM file ({e})",
                cert_file.display()
            )
        })?;
    if chain.is_empty() {
        return Err(format!(
            "--tls-cert-file {}: holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            cert_file.display()
        ));
    }

    let key_pem = read_pem_file("--tls-private-key-file", key_file)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => format!(
            "--tls-private-key-file {}: holds no PEM private key (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)",
            key_file.display()
        ),
        e => format!("--tls-private-key-file {}: not a valid PEM file ({e})", key_file.display()),
    })?;

    let chain_len = chain.len();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| {
            format!(
                "--tls-cert-file {} and --tls-private-key-file {} are not a usable pair ({e}); the first \
                 certificate in the file must be the leaf that belongs to the key",
                cert_file.display(),
                key_file.display()
            )
        })?;
    Ok(Tls {
        config: Arc::new(config),
        chain_len,
    })
}

/// Reads a PEM file of at most [`MAX_PEM_BYTES`]; the error names the flag and the file.
fn read_pem_file(flag: &str, path: &Path) -> Result<Vec<u8>, String> {
    let cannot = |e: std::io::Error| format!("{flag} {}: cannot read it ({e})", path.display());
    let file = std::fs::File::open(path).map_err(cannot)?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(format!(
            "{flag} {}: larger than {MAX_PEM_BYTES} bytes, not a certificate or key file",
            path.display()
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("apiserver.crt");
        let key = dir.path().join("apiserver.key");
        let err = load(&cert, &key).err().unwrap();
        assert!(
            err.starts_with("--tls-cert-file ") && err.contains(&*cert.to_string_lossy()),
            "{err}"
        );
        assert!(err.contains("cannot read"), "{err}");
    }

    #[test]
    fn a_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("apiserver.crt");
        std::fs::write(&cert, "not pem\n").unwrap();
        let err = load(&cert, &dir.path().join("k")).err().unwrap();
        assert!(err.contains("holds no PEM certificate"), "{err}");
    }

    #[test]
    fn a_key_file_without_a_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("apiserver.crt");
        let key = dir.path().join("apiserver.key");
        // Any base64 body parses as a PEM certificate; rustls checks it against the key later.
        std::fs::write(
            &cert,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        std::fs::write(
            &key,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let err = load(&cert, &key).err().unwrap();
        assert!(
            err.starts_with("--tls-private-key-file ") && err.contains("holds no PEM private key"),
            "{err}"
        );
    }

    #[test]
    fn oversized_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("huge.crt");
        std::fs::write(&cert, vec![b'A'; (MAX_PEM_BYTES + 1) as usize]).unwrap();
        let err = load(&cert, &cert).err().unwrap();
        assert!(err.contains("larger than"), "{err}");
    }
}
