//! Issuing: fresh ECDSA P-256 keys, the self-signed front-proxy CA, and leaf certificates signed by a CA the
//! user supplied (RSA or ECDSA) or one generated here. Profiles as kubeadm's `pkiutil`: notBefore = now − 5 min,
//! leaves one year, CAs ten years; leaves carry the issuer's authority key identifier, their own subject key
//! identifier, basicConstraints CA:FALSE (critical), keyUsage digitalSignature (+ keyEncipherment for an RSA
//! key); CAs basicConstraints CA:TRUE (critical), keyUsage keyCertSign, cRLSign, digitalSignature.
//!
//! Pure apart from the randomness of key generation and ECDSA signatures; the time is an argument.

use super::inspect::{self, PrivateKey, Usage};
use super::{BACKDATE_SECS, CA_VALIDITY_SECS, LEAF_VALIDITY_SECS, PkiError};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls_pki_types::CertificateDer;
use std::fmt;
use std::net::IpAddr;
use x509_parser::time::ASN1Time;

/// A certificate and its fresh key, both PEM. `Debug` omits the key.
pub(crate) struct Issued {
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
}

impl fmt::Debug for Issued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issued")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// What a leaf certificate says about its subject.
pub(crate) struct Leaf<'a> {
    pub(crate) cn: &'a str,
    pub(crate) org: Option<&'a str>,
    pub(crate) usage: Usage,
    pub(crate) dns: &'a [String],
    pub(crate) ips: &'a [IpAddr],
}

/// A CA that can sign: its certificate and its key. `Debug` omits the key.
pub(crate) struct Signer {
    /// Where its certificate lives (for messages).
    pub(crate) cert_path: &'static str,
    pub(crate) cert_der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("cert_path", &self.cert_path)
            .field("key", &"<redacted>")
            .finish()
    }
}

fn generate_failed(path: &str, e: impl fmt::Display) -> PkiError {
    PkiError::Generate {
        path: path.to_string(),
        reason: e.to_string(),
    }
}

fn fresh_key(path: &str) -> Result<KeyPair, PkiError> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| generate_failed(path, e))
}

/// A fresh ECDSA P-256 key pair: the private key (PKCS#8 `PRIVATE KEY` PEM) and the public key (PKIX
/// `PUBLIC KEY` PEM), for sa.key / sa.pub.
pub(crate) fn key_pair_pems(path: &str) -> Result<(String, String), PkiError> {
    let key = fresh_key(path)?;
    Ok((key_pem(&key), key.public_key_pem()))
}

pub(crate) fn key_pem(key: &KeyPair) -> String {
    inspect::pem_encode("PRIVATE KEY", key.serialized_der())
}

fn validity(
    params: &mut CertificateParams,
    path: &str,
    now: i64,
    lifetime: i64,
) -> Result<(), PkiError> {
    let at = |secs: i64| {
        ASN1Time::from_timestamp(secs)
            .map(|t| t.to_datetime())
            .map_err(|e| generate_failed(path, e))
    };
    params.not_before = at(now - BACKDATE_SECS)?;
    params.not_after = at(now + lifetime)?;
    Ok(())
}

fn subject(cn: &str, org: Option<&str>) -> DistinguishedName {
    // O before CN, as Go (and so kubeadm) orders a subject.
    let mut dn = DistinguishedName::new();
    if let Some(org) = org {
        dn.push(DnType::OrganizationName, org);
    }
    dn.push(DnType::CommonName, cn);
    dn
}

impl Signer {
    /// A signer from a CA certificate and key that were read and checked (the key matches the certificate).
    pub(crate) fn existing(
        cert_path: &'static str,
        cert_der: Vec<u8>,
        key: PrivateKey,
    ) -> Result<Signer, PkiError> {
        let issuer = Issuer::from_ca_cert_der(&CertificateDer::from(cert_der.as_slice()), key.pair)
            .map_err(|e| PkiError::UnsupportedCa {
                path: cert_path.to_string(),
                reason: e.to_string(),
            })?;
        Ok(Signer {
            cert_path,
            cert_der,
            issuer,
        })
    }

    /// A new self-signed CA `cn` (front-proxy-ca) with a fresh key; the signer and the key's PEM.
    pub(crate) fn new_ca(
        cert_path: &'static str,
        cn: &str,
        now: i64,
    ) -> Result<(Signer, String), PkiError> {
        let key = fresh_key(cert_path)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = subject(cn, None);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
        ];
        validity(&mut params, cert_path, now, CA_VALIDITY_SECS)?;
        let cert = params
            .self_signed(&key)
            .map_err(|e| generate_failed(cert_path, e))?;
        let pem = key_pem(&key);
        let signer = Signer {
            cert_path,
            cert_der: cert.der().to_vec(),
            issuer: Issuer::new(params, key),
        };
        Ok((signer, pem))
    }

    /// The CA certificate as PEM.
    pub(crate) fn cert_pem(&self) -> String {
        inspect::pem_encode("CERTIFICATE", &self.cert_der)
    }

    /// A leaf certificate for `leaf` with a fresh ECDSA P-256 key, valid from now − 5 min for one year. The
    /// result is checked against the CA as any existing file would be (names byte for byte, key identifiers,
    /// signature), so a CA whose subject rcgen cannot reproduce is reported instead of producing certificates
    /// no Kubernetes component would accept.
    pub(crate) fn issue(&self, path: &str, leaf: &Leaf<'_>, now: i64) -> Result<Issued, PkiError> {
        let key = fresh_key(path)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = subject(leaf.cn, leaf.org);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if key.algorithm() == &rcgen::PKCS_RSA_SHA256 {
            params.key_usages.push(KeyUsagePurpose::KeyEncipherment);
        }
        params.extended_key_usages = match leaf.usage {
            Usage::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
            Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
            Usage::ServerAndClient => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        };
        params.use_authority_key_identifier_extension = true;
        for name in leaf.dns {
            let ia5 = name
                .as_str()
                .try_into()
                .map_err(|e| generate_failed(path, e))?;
            push_unique(&mut params.subject_alt_names, SanType::DnsName(ia5));
        }
        for ip in leaf.ips {
            push_unique(&mut params.subject_alt_names, SanType::IpAddress(*ip));
        }
        validity(&mut params, path, now, LEAF_VALIDITY_SECS)?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| generate_failed(path, e))?;
        inspect::issued_by(cert.der(), &self.cert_der).map_err(|reason| {
            PkiError::UnsupportedCa {
                path: self.cert_path.to_string(),
                reason: format!("a certificate issued with it does not check: {reason}"),
            }
        })?;
        Ok(Issued {
            cert_pem: inspect::pem_encode("CERTIFICATE", cert.der()),
            key_pem: key_pem(&key),
        })
    }
}

fn push_unique(list: &mut Vec<SanType>, san: SanType) {
    if !list.contains(&san) {
        list.push(san);
    }
}
