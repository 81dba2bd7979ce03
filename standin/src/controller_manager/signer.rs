//! The csrsigning controller's signer for `kubernetes.io/kube-apiserver-client-kubelet`, as upstream's
//! (pkg/controller/certificates/signer): the request must be a kubelet client CSR (upstream's
//! `ValidateKubeletClientCSR`: O exactly `[system:nodes]`, CN `system:node:<name>`, no SANs, usages exactly
//! {digital signature, key encipherment, client auth} or {digital signature, client auth}); the certificate
//! takes the subject and public key from the CSR and the key usages from `spec.usages`, is not a CA, is valid
//! from 5 minutes ago for `--cluster-signing-duration` (or `spec.expirationSeconds` if shorter), never beyond
//! the CA's own validity, and is signed by the cluster signing CA (RSA or ECDSA key).

use crate::common::pki::{self, CertInfo};
use rcgen::{
    CertificateSigningRequestParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use x509_parser::prelude::*;

/// The kubelet client signer's name.
pub const KUBELET_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";

/// The cluster signing CA.
pub struct Signer {
    ca_der: Vec<u8>,
    ca: CertInfo,
    key: KeyPair,
    /// `--cluster-signing-duration`, seconds.
    pub duration: i64,
}

/// What a kubelet client CSR says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsrSubject {
    pub common_name: String,
    pub organizations: Vec<String>,
    pub has_sans: bool,
}

/// Parses a CSR (DER) and checks its signature.
pub fn csr_subject(der: &[u8]) -> Result<CsrSubject, String> {
    let (_, csr) =
        X509CertificationRequest::from_der(der).map_err(|e| format!("unable to parse csr: {e}"))?;
    csr.verify_signature()
        .map_err(|_| "the CSR's signature does not verify".to_string())?;
    let subject = &csr.certification_request_info.subject;
    let common_name = subject
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .unwrap_or_default()
        .to_string();
    let organizations = subject
        .iter_organization()
        .filter_map(|a| a.as_str().ok())
        .map(str::to_string)
        .collect();
    let has_sans = csr.requested_extensions().is_some_and(|mut e| {
        e.any(|x| {
            matches!(
                x,
                x509_parser::extensions::ParsedExtension::SubjectAlternativeName(_)
            )
        })
    });
    Ok(CsrSubject {
        common_name,
        organizations,
        has_sans,
    })
}

/// upstream's ValidateKubeletClientCSR.
pub fn validate_kubelet_client(subject: &CsrSubject, usages: &[String]) -> Result<(), String> {
    if subject.organizations != ["system:nodes"] {
        return Err("subject organization is not system:nodes".into());
    }
    if subject.has_sans {
        return Err("DNS, email, IP and URI subjectAltNames are not allowed".into());
    }
    if !subject.common_name.starts_with("system:node:") {
        return Err("subject common name does not begin with system:node:".into());
    }
    let mut set: Vec<&str> = usages.iter().map(String::as_str).collect();
    set.sort_unstable();
    set.dedup();
    let with_rsa = ["client auth", "digital signature", "key encipherment"];
    let without = ["client auth", "digital signature"];
    if set != with_rsa && set != without {
        return Err("usages did not match [client auth digital signature key encipherment]".into());
    }
    Ok(())
}

impl Signer {
    /// From `--cluster-signing-cert-file` and `--cluster-signing-key-file` (checked to match).
    pub fn new(cert_pem: &[u8], key_pem: &[u8], duration: i64) -> Result<Signer, String> {
        let ca_der = pki::certificates(cert_pem)?.remove(0);
        let ca = pki::cert_info(&ca_der)?;
        let private = pki::private_key(key_pem)?;
        if private.public.raw != ca.public.raw {
            return Err("the key does not belong to the certificate".into());
        }
        if !ca.is_ca {
            return Err(format!(
                "the certificate (CN {:?}) is not a CA (basicConstraints CA:TRUE)",
                ca.common_name
            ));
        }
        let key = private.key_pair()?;
        Ok(Signer {
            ca_der,
            ca,
            key,
            duration,
        })
    }

    /// Signs a CSR (DER) for `usages`; returns the certificate PEM.
    pub fn sign(
        &self,
        csr_der: &[u8],
        usages: &[String],
        expiration_seconds: Option<i64>,
        now: i64,
    ) -> Result<String, String> {
        let mut request = CertificateSigningRequestParams::from_der(&csr_der.to_vec().into())
            .map_err(|e| format!("the CSR cannot be read for signing: {e}"))?;
        let ttl = match expiration_seconds {
            Some(e) => self.duration.min(e.max(600)),
            None => self.duration,
        };
        let backdate = if ttl >= 8 * 3600 { 300 } else { 0 };
        let not_before = (now - backdate).max(self.ca.not_before);
        let not_after = (now + ttl).min(self.ca.not_after);
        let at = |t: i64| ::time::OffsetDateTime::from_unix_timestamp(t).map_err(|e| e.to_string());
        let p = &mut request.params;
        p.not_before = at(not_before)?;
        p.not_after = at(not_after)?;
        let mut serial = crate::common::random_bytes(16);
        serial[0] &= 0x7f;
        p.serial_number = Some(serial.into());
        p.is_ca = IsCa::ExplicitNoCa;
        p.use_authority_key_identifier_extension = true;
        p.key_usages = usages
            .iter()
            .filter_map(|u| match u.as_str() {
                "digital signature" => Some(KeyUsagePurpose::DigitalSignature),
                "key encipherment" => Some(KeyUsagePurpose::KeyEncipherment),
                "content commitment" => Some(KeyUsagePurpose::ContentCommitment),
                "key agreement" => Some(KeyUsagePurpose::KeyAgreement),
                "data encipherment" => Some(KeyUsagePurpose::DataEncipherment),
                _ => None,
            })
            .collect();
        p.extended_key_usages = usages
            .iter()
            .filter_map(|u| match u.as_str() {
                "client auth" => Some(ExtendedKeyUsagePurpose::ClientAuth),
                "server auth" => Some(ExtendedKeyUsagePurpose::ServerAuth),
                _ => None,
            })
            .collect();
        let issuer = Issuer::from_ca_cert_der(&self.ca_der.clone().into(), &self.key)
            .map_err(|e| format!("the signing CA cannot be used: {e}"))?;
        let cert = request
            .signed_by(&issuer)
            .map_err(|e| format!("signing failed: {e}"))?;
        if !pki::signed_by(cert.der(), &self.ca_der) {
            return Err("the issued certificate does not chain to the signing CA (its subject could not be reproduced)".into());
        }
        Ok(cert.pem())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca() -> (String, String) {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "kubernetes");
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn csr(cn: &str, o: &str) -> Vec<u8> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, o);
        params.serialize_request(&key).unwrap().der().to_vec()
    }

    #[test]
    fn kubelet_client_csrs_are_recognised_like_upstream() {
        let usages = |u: &[&str]| u.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let s = csr_subject(&csr("system:node:n1", "system:nodes")).unwrap();
        assert_eq!(
            validate_kubelet_client(&s, &usages(&["digital signature", "client auth"])),
            Ok(())
        );
        assert_eq!(
            validate_kubelet_client(
                &s,
                &usages(&["digital signature", "key encipherment", "client auth"])
            ),
            Ok(())
        );
        assert!(validate_kubelet_client(&s, &usages(&["client auth"])).is_err());
        assert!(
            validate_kubelet_client(
                &s,
                &usages(&["digital signature", "client auth", "server auth"])
            )
            .is_err()
        );
        let s = csr_subject(&csr("system:node:n1", "system:masters")).unwrap();
        assert!(
            validate_kubelet_client(&s, &usages(&["digital signature", "client auth"])).is_err()
        );
        let s = csr_subject(&csr("n1", "system:nodes")).unwrap();
        assert!(
            validate_kubelet_client(&s, &usages(&["digital signature", "client auth"])).is_err()
        );
    }

    #[test]
    fn signed_certificates_chain_to_the_ca() {
        let (cert, key) = ca();
        let signer = Signer::new(cert.as_bytes(), key.as_bytes(), 365 * 86400).unwrap();
        let now = crate::common::time::now();
        let pem = signer
            .sign(
                &csr("system:node:n1", "system:nodes"),
                &["digital signature".into(), "client auth".into()],
                None,
                now,
            )
            .unwrap();
        let der = pki::certificates(pem.as_bytes()).unwrap().remove(0);
        let info = pki::cert_info(&der).unwrap();
        assert_eq!(info.common_name, "system:node:n1");
        assert_eq!(info.organizations, vec!["system:nodes"]);
        assert!(!info.is_ca);
        assert!(info.not_after <= now + 365 * 86400 && info.not_before <= now - 299);
        let ca_der = pki::certificates(cert.as_bytes()).unwrap().remove(0);
        assert!(pki::signed_by(&der, &ca_der));
        let (_, other_key) = ca();
        assert!(Signer::new(cert.as_bytes(), other_key.as_bytes(), 1).is_err());
    }
}
