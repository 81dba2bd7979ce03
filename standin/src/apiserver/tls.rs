//! The TLS side: the serving chain and key from `--tls-cert-file` / `--tls-private-key-file` (served as given,
//! every certificate in the file, leaf first), and client certificates as the real API server takes them.
//!
//! Go's API server asks for a client certificate without requiring one and verifies it in the x509
//! authenticator, so a certificate from another CA gets `401 Unauthorized`, not a failed handshake. The same
//! here: [`OptionalClientCert`] asks for a certificate (hinting the `--client-ca-file` subjects, which Go
//! clients need to pick their certificate), checks only the handshake signature (proof of the key), and
//! [`ClientCa::verify`] checks the chain after the handshake.

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};
use std::sync::Arc;

/// The client CA: verifies presented chains (client auth EKU, validity, signature) with webpki.
#[derive(Debug, Clone)]
pub struct ClientCa {
    verifier: Arc<dyn ClientCertVerifier>,
}

impl ClientCa {
    /// From the DER certificates of `--client-ca-file`.
    pub fn new(certs: &[Vec<u8>]) -> Result<ClientCa, String> {
        let mut roots = RootCertStore::empty();
        for der in certs {
            roots
                .add(CertificateDer::from(der.clone()))
                .map_err(|e| format!("a certificate is not usable as a trust anchor ({e})"))?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| format!("cannot build the client certificate verifier ({e})"))?;
        Ok(ClientCa { verifier })
    }

    /// Verifies a presented chain (leaf first). The error says why (for the log, never sent to the client).
    pub fn verify(&self, chain: &[CertificateDer<'_>]) -> Result<(), String> {
        let (leaf, intermediates) = chain.split_first().ok_or("no certificate")?;
        self.verifier
            .verify_client_cert(leaf, intermediates, UnixTime::now())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Asks for a client certificate without requiring one; see the module documentation.
#[derive(Debug)]
pub struct OptionalClientCert {
    ca: Option<ClientCa>,
    schemes: Vec<SignatureScheme>,
}

impl ClientCertVerifier for OptionalClientCert {
    fn offer_client_auth(&self) -> bool {
        self.ca.is_some()
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.ca
            .as_ref()
            .map_or(&[], |ca| ca.verifier.root_hint_subjects())
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Checked after the handshake (ClientCa::verify), so that a bad certificate is a 401.
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes.clone()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server configuration: the chain and key (already checked to match), optional client certificates.
pub fn server_config(
    chain_pem: &[u8],
    key_pkcs8: Vec<u8>,
    client_ca: Option<ClientCa>,
) -> Result<Arc<ServerConfig>, String> {
    let chain = CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("--tls-cert-file: not a valid PEM file ({e})"))?;
    let key =
        PrivateKeyDer::try_from(key_pkcs8).map_err(|e| format!("--tls-private-key-file: {e}"))?;
    let provider = provider();
    let verifier = Arc::new(OptionalClientCert {
        ca: client_ca,
        schemes: provider
            .signature_verification_algorithms
            .supported_schemes(),
    });
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| {
            format!(
                "--tls-cert-file and --tls-private-key-file are not a usable pair ({e}); the first certificate in \
                 the file must be the leaf that belongs to the key"
            )
        })?;
    Ok(Arc::new(config))
}
