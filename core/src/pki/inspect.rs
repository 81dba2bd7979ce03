//! Reading certificates and keys: PEM sections, private keys in the three forms openssl and kubeadm write
//! (PKCS#8 `PRIVATE KEY`, PKCS#1 `RSA PRIVATE KEY`, SEC1 `EC PRIVATE KEY`), whether a key belongs to a
//! certificate, whether a CA issued a certificate, validity, names, the kubeadm CA pin. Pure: bytes in.
//!
//! The public functions here take the file's bytes only; their errors name a generic label ("certificate",
//! "CA certificate", "private key"). Callers that know the path relabel with [`PkiError::at`].

use super::{Content, PkiError};
use base64::Engine as _;
use rcgen::{KeyPair, PublicKeyData as _};
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::{PemObject as _, SectionKind};
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::net::IpAddr;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer as _;
use x509_parser::x509::SubjectPublicKeyInfo;

pub(crate) const CERT_LABEL: &str = "certificate";
pub(crate) const CA_LABEL: &str = "CA certificate";
pub(crate) const KEY_LABEL: &str = "private key";
pub(crate) const COMBINED_LABEL: &str = "certificate and key file";

/// A private key and what it signs with. `Debug` shows the algorithm only.
pub(crate) struct PrivateKey {
    pub(crate) pair: KeyPair,
    pub(crate) is_rsa: bool,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("is_rsa", &self.is_rsa)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// The PEM sections in `bytes`, in order. Text around them (as `openssl x509 -text` leaves) is skipped.
fn sections(bytes: &[u8]) -> Result<Vec<(SectionKind, Vec<u8>)>, String> {
    <(SectionKind, Vec<u8>)>::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        // The PEM error says where the armour is broken; it never quotes the base64 text.
        .map_err(|e| format!("broken PEM ({e})"))
}

/// The DER of every certificate in `bytes` (PEM; or a single DER certificate).
pub(crate) fn cert_ders(path: &str, bytes: &[u8]) -> Result<Vec<Vec<u8>>, PkiError> {
    let unparsable = |reason: String| PkiError::Unparsable {
        path: path.to_string(),
        expected: Content::Certificate,
        reason,
    };
    let ders: Vec<Vec<u8>> = if bytes.first() == Some(&0x30) {
        vec![bytes.to_vec()]
    } else {
        sections(bytes)
            .map_err(unparsable)?
            .into_iter()
            .filter(|(kind, _)| *kind == SectionKind::Certificate)
            .map(|(_, der)| der)
            .collect()
    };
    if ders.is_empty() {
        return Err(unparsable("no CERTIFICATE block".to_string()));
    }
    for der in &ders {
        if let Err(e) = X509Certificate::from_der(der) {
            return Err(unparsable(format!("not an X.509 certificate ({e})")));
        }
    }
    Ok(ders)
}

/// The DER of the first certificate in `bytes`.
pub(crate) fn first_cert_der(path: &str, bytes: &[u8]) -> Result<Vec<u8>, PkiError> {
    let mut ders = cert_ders(path, bytes)?;
    Ok(ders.swap_remove(0))
}

/// A certificate that [`cert_ders`] accepted. Only for DER that was checked to parse.
pub(crate) fn parsed(der: &[u8]) -> X509Certificate<'_> {
    match X509Certificate::from_der(der) {
        Ok((_, cert)) => cert,
        Err(_) => panic!("internal error: a certificate checked to parse did not parse"),
    }
}

/// The first private key in `bytes`, in any of the three PEM forms. Errors never include key material.
pub(crate) fn private_key(path: &str, bytes: &[u8]) -> Result<PrivateKey, PkiError> {
    let unparsable = |reason: &str| PkiError::Unparsable {
        path: path.to_string(),
        expected: Content::PrivateKey,
        reason: reason.to_string(),
    };
    let sections = sections(bytes).map_err(|e| unparsable(&e))?;
    let Some((kind, der)) = sections.into_iter().find(|(kind, _)| {
        matches!(
            kind,
            SectionKind::PrivateKey | SectionKind::RsaPrivateKey | SectionKind::EcPrivateKey
        )
    }) else {
        return Err(unparsable(
            "no PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block (an encrypted key is not supported)",
        ));
    };
    let candidates: Vec<Vec<u8>> = match kind {
        SectionKind::RsaPrivateKey => vec![pkcs8_wrap(RSA_ALGORITHM, &der)],
        SectionKind::EcPrivateKey => vec![
            pkcs8_wrap(EC_P256_ALGORITHM, &der),
            pkcs8_wrap(EC_P384_ALGORITHM, &der),
        ],
        _ => vec![der],
    };
    for pkcs8 in candidates {
        if let Ok(pair) = KeyPair::try_from(&PrivatePkcs8KeyDer::from(pkcs8.as_slice())) {
            let is_rsa = pair.algorithm() == &rcgen::PKCS_RSA_SHA256;
            return Ok(PrivateKey { pair, is_rsa });
        }
    }
    Err(unparsable(
        "the key does not parse or is of an unsupported type (RSA 2048–8192 bits, ECDSA P-256/P-384 and Ed25519 \
         are supported)",
    ))
}

/// `AlgorithmIdentifier` of rsaEncryption (with its NULL parameters).
const RSA_ALGORITHM: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];
/// `AlgorithmIdentifier` of id-ecPublicKey on prime256v1.
const EC_P256_ALGORITHM: &[u8] = &[
    0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
    0xce, 0x3d, 0x03, 0x01, 0x07,
];
/// `AlgorithmIdentifier` of id-ecPublicKey on secp384r1.
const EC_P384_ALGORITHM: &[u8] = &[
    0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b, 0x81, 0x04,
    0x00, 0x22,
];

/// PKCS#8 `PrivateKeyInfo { version 0, algorithm, privateKey OCTET STRING }` around a PKCS#1 or SEC1 key
/// (ring reads PKCS#8 only).
fn pkcs8_wrap(algorithm: &[u8], key: &[u8]) -> Vec<u8> {
    let mut body = vec![0x02, 0x01, 0x00];
    body.extend_from_slice(algorithm);
    body.push(0x04);
    der_len(&mut body, key.len());
    body.extend_from_slice(key);
    let mut out = vec![0x30];
    der_len(&mut out, body.len());
    out.extend_from_slice(&body);
    out
}

fn der_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// Whether `key` is the private half of the certificate's public key.
pub(crate) fn key_matches_cert_der(key: &PrivateKey, cert_der: &[u8]) -> bool {
    parsed(cert_der)
        .public_key()
        .subject_public_key
        .data
        .as_ref()
        == key.pair.der_bytes()
}

/// The public key of a PKIX `PUBLIC KEY` PEM (sa.pub), as the raw key bits.
pub(crate) fn public_key_bits(path: &str, bytes: &[u8]) -> Result<Vec<u8>, PkiError> {
    let unparsable = |reason: String| PkiError::Unparsable {
        path: path.to_string(),
        expected: Content::PublicKey,
        reason,
    };
    let sections = sections(bytes).map_err(unparsable)?;
    let Some((_, der)) = sections
        .into_iter()
        .find(|(kind, _)| *kind == SectionKind::PublicKey)
    else {
        return Err(unparsable("no PUBLIC KEY block".to_string()));
    };
    let (_, spki) = SubjectPublicKeyInfo::from_der(&der)
        .map_err(|e| unparsable(format!("not a SubjectPublicKeyInfo ({e})")))?;
    Ok(spki.subject_public_key.data.to_vec())
}

/// Why `cert_der` was not issued by `ca_der`, or `Ok`: the issuer name equals the CA's subject byte for byte
/// (Go, and so every Kubernetes component, compares them so), the authority key identifier (when both are
/// present) equals the CA's subject key identifier, and the CA's key verifies the signature.
pub(crate) fn issued_by(cert_der: &[u8], ca_der: &[u8]) -> Result<(), String> {
    let cert = parsed(cert_der);
    let ca = parsed(ca_der);
    if cert.issuer().as_raw() != ca.subject().as_raw() {
        return Err(format!(
            "its issuer is \"{}\", the CA is \"{}\"",
            cert.issuer(),
            ca.subject()
        ));
    }
    if let (Some(aki), Some(ski)) = (authority_key_id(&cert), subject_key_id(&ca))
        && aki != ski
    {
        return Err(
            "its authority key identifier is not the CA's subject key identifier".to_string(),
        );
    }
    cert.verify_signature(Some(ca.public_key()))
        .map_err(|e| format!("the CA's key does not verify its signature ({e})"))
}

fn authority_key_id<'a>(cert: &'a X509Certificate<'_>) -> Option<&'a [u8]> {
    cert.extensions()
        .iter()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                aki.key_identifier.as_ref().map(|k| k.0)
            }
            _ => None,
        })
}

fn subject_key_id<'a>(cert: &'a X509Certificate<'_>) -> Option<&'a [u8]> {
    cert.extensions()
        .iter()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(ski) => Some(ski.0),
            _ => None,
        })
}

/// Whether the certificate may issue certificates: basicConstraints CA:TRUE and, if keyUsage is present,
/// keyCertSign.
pub(crate) fn is_ca(cert_der: &[u8]) -> bool {
    let cert = parsed(cert_der);
    let ca = matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
    let may_sign = match cert.key_usage() {
        Ok(Some(ku)) => ku.value.key_cert_sign(),
        Ok(None) => true,
        Err(_) => false,
    };
    ca && may_sign
}

/// notBefore and notAfter, Unix seconds.
pub(crate) fn validity_of(cert_der: &[u8]) -> (i64, i64) {
    let cert = parsed(cert_der);
    (
        cert.validity().not_before.timestamp(),
        cert.validity().not_after.timestamp(),
    )
}

/// Checks `now` lies within the certificate's validity.
pub(crate) fn check_valid_at(path: &str, cert_der: &[u8], now: i64) -> Result<(), PkiError> {
    let (not_before, not_after) = validity_of(cert_der);
    if now < not_before {
        return Err(PkiError::NotYetValid {
            path: path.to_string(),
            not_before,
            now,
        });
    }
    if now > not_after {
        return Err(PkiError::Expired {
            path: path.to_string(),
            not_after,
            now,
        });
    }
    Ok(())
}

/// An extended key usage a certificate must allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Usage {
    Server,
    Client,
    /// Both: etcd's server and peer certificates (etcd dials its peers with its peer certificate, and since 3.2
    /// wants clientAuth on the server certificate too).
    ServerAndClient,
}

impl Usage {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Usage::Server => "serverAuth",
            Usage::Client => "clientAuth",
            Usage::ServerAndClient => "serverAuth and clientAuth",
        }
    }
}

/// Whether the certificate allows `usage` (no extendedKeyUsage extension allows everything, as in Go).
pub(crate) fn allows(cert_der: &[u8], usage: Usage) -> bool {
    match parsed(cert_der).extended_key_usage() {
        Ok(None) => true,
        Ok(Some(eku)) => {
            eku.value.any
                || match usage {
                    Usage::Server => eku.value.server_auth,
                    Usage::Client => eku.value.client_auth,
                    Usage::ServerAndClient => eku.value.server_auth && eku.value.client_auth,
                }
        }
        Err(_) => false,
    }
}

/// The DNS names and IP addresses among the certificate's subject alternative names.
pub(crate) fn sans(cert_der: &[u8]) -> (Vec<String>, Vec<IpAddr>) {
    let cert = parsed(cert_der);
    let mut dns = Vec::new();
    let mut ips = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => dns.push(d.to_string()),
                GeneralName::IPAddress(bytes) => match bytes.len() {
                    4 => ips.push(IpAddr::from(
                        <[u8; 4]>::try_from(*bytes).unwrap_or_default(),
                    )),
                    16 => ips.push(IpAddr::from(
                        <[u8; 16]>::try_from(*bytes).unwrap_or_default(),
                    )),
                    _ => {}
                },
                _ => {}
            }
        }
    }
    (dns, ips)
}

/// Whether a DNS SAN covers `host` (exact, case-insensitive, or a `*.` wildcard for one label).
pub(crate) fn dns_covers(sans: &[String], host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    sans.iter().any(|san| {
        let san = san.trim_end_matches('.').to_ascii_lowercase();
        match san.strip_prefix("*.") {
            Some(suffix) => host
                .split_once('.')
                .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
            None => san == host,
        }
    })
}

/// The subject's CN (the first; empty when none) and O values.
pub(crate) fn identity_of(cert_der: &[u8]) -> (String, Vec<String>) {
    let cert = parsed(cert_der);
    let subject = cert.subject();
    let text = |attr: &x509_parser::x509::AttributeTypeAndValue<'_>| {
        attr.as_str().unwrap_or_default().to_string()
    };
    let cn = subject
        .iter_common_name()
        .next()
        .map(text)
        .unwrap_or_default();
    let orgs = subject.iter_organization().map(text).collect();
    (cn, orgs)
}

/// A certificate as PEM text (64-column base64, LF).
pub(crate) fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

// ---- public helpers (the minion side uses them too) ----

/// kubeadm's CA pin: `sha256:<hex of sha256(DER SubjectPublicKeyInfo)>` of the first certificate in
/// `ca_pem_or_der` (PEM, or one DER certificate). Equals
/// `openssl x509 -pubkey -noout | openssl pkey -pubin -outform der | sha256sum`.
pub fn ca_cert_hash(ca_pem_or_der: &[u8]) -> Result<String, PkiError> {
    let der = first_cert_der(CA_LABEL, ca_pem_or_der)?;
    let cert = parsed(&der);
    Ok(format!(
        "sha256:{}",
        hex::encode(Sha256::digest(cert.public_key().raw))
    ))
}

/// The subject CN and O values of the first certificate in `cert_pem` — the user name and groups the API
/// server authenticates a client certificate as (e.g. `system:node:<name>` and `[system:nodes]`).
pub fn client_cert_identity(cert_pem: &[u8]) -> Result<(String, Vec<String>), PkiError> {
    let der = first_cert_der(CERT_LABEL, cert_pem)?;
    Ok(identity_of(&der))
}

/// Checks that the first certificate of `ca_pem` issued the first certificate of `cert_pem`: issuer name,
/// key identifiers and signature (see [`PkiError::NotSignedBy`]). Validity is not looked at
/// ([`check_cert_valid_at`] does that).
pub fn verify_signed_by(cert_pem: &[u8], ca_pem: &[u8]) -> Result<(), PkiError> {
    let cert = first_cert_der(CERT_LABEL, cert_pem)?;
    let ca = first_cert_der(CA_LABEL, ca_pem)?;
    issued_by(&cert, &ca).map_err(|reason| PkiError::NotSignedBy {
        path: CERT_LABEL.to_string(),
        ca: CA_LABEL.to_string(),
        reason,
    })
}

/// notBefore and notAfter of the first certificate in `cert_pem`, as Unix seconds.
pub fn cert_validity(cert_pem: &[u8]) -> Result<(i64, i64), PkiError> {
    let der = first_cert_der(CERT_LABEL, cert_pem)?;
    Ok(validity_of(&der))
}

/// Checks that `now_unix` lies within the validity of the first certificate in `cert_pem`
/// ([`PkiError::Expired`] / [`PkiError::NotYetValid`]).
pub fn check_cert_valid_at(cert_pem: &[u8], now_unix: i64) -> Result<(), PkiError> {
    let der = first_cert_der(CERT_LABEL, cert_pem)?;
    check_valid_at(CERT_LABEL, &der, now_unix)
}

/// Checks that the private key in `key_pem` belongs to the first certificate in `cert_pem`
/// ([`PkiError::KeyMismatch`]).
pub fn check_key_matches_cert(cert_pem: &[u8], key_pem: &[u8]) -> Result<(), PkiError> {
    let cert = first_cert_der(CERT_LABEL, cert_pem)?;
    let key = private_key(KEY_LABEL, key_pem)?;
    if key_matches_cert_der(&key, &cert) {
        Ok(())
    } else {
        Err(PkiError::KeyMismatch {
            key: KEY_LABEL.to_string(),
            cert: CERT_LABEL.to_string(),
        })
    }
}

/// Checks a combined PEM — certificate and private key in one file, as the kubelet writes
/// `/var/lib/kubelet/pki/kubelet-client-current.pem` — holds a key matching its (first) certificate.
/// Relabel the error with the file's path: `check_combined_pem(pem).map_err(|e| e.at(path))`.
pub fn check_combined_pem(pem: &[u8]) -> Result<(), PkiError> {
    let cert = first_cert_der(COMBINED_LABEL, pem)?;
    let key = private_key(COMBINED_LABEL, pem)?;
    if key_matches_cert_der(&key, &cert) {
        Ok(())
    } else {
        Err(PkiError::KeyMismatch {
            key: COMBINED_LABEL.to_string(),
            cert: COMBINED_LABEL.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_lengths_are_minimal() {
        let mut out = Vec::new();
        der_len(&mut out, 0x7f);
        der_len(&mut out, 0x80);
        der_len(&mut out, 0x1234);
        assert_eq!(out, [0x7f, 0x81, 0x80, 0x82, 0x12, 0x34]);
    }

    #[test]
    fn wildcards_cover_one_label() {
        let sans = vec!["*.prod.k8s".to_string(), "Kubernetes".to_string()];
        assert!(dns_covers(&sans, "masters.prod.k8s"));
        assert!(dns_covers(&sans, "kubernetes"));
        assert!(!dns_covers(&sans, "a.masters.prod.k8s"));
        assert!(!dns_covers(&sans, "prod.k8s"));
    }
}
