//! Certificates and keys as the Kubernetes programs read them: PEM files with certificates (`CERTIFICATE`),
//! private keys in PKCS#1 (`RSA PRIVATE KEY`), PKCS#8 (`PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`), public keys
//! (`PUBLIC KEY`, `RSA PUBLIC KEY`); and the checks made on them: a key belongs to a certificate, a certificate
//! is signed by a CA, a certificate is a CA, its subject's CN and O values.
//!
//! Keys are normalised to PKCS#8 (ring signs only from PKCS#8), so a kubeadm-style PKCS#1 key works everywhere.

use base64::Engine as _;
use x509_parser::prelude::*;

/// One PEM block: its label and its decoded bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub label: String,
    pub der: Vec<u8>,
}

/// Every PEM block in `text` (text outside blocks is ignored, as Go's `pem.Decode` does). An unterminated block
/// or bad base64 is an error.
pub fn blocks(text: &[u8]) -> Result<Vec<Block>, String> {
    let text = String::from_utf8_lossy(text);
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let line = line.trim();
        let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        else {
            continue;
        };
        let end = format!("-----END {label}-----");
        let mut body = String::new();
        let mut closed = false;
        for l in lines.by_ref() {
            let l = l.trim();
            if l == end {
                closed = true;
                break;
            }
            if l.contains(':') {
                // A PEM header (Proc-Type, DEK-Info): an encrypted key, which the programs do not read either.
                return Err(format!(
                    "the {label} block has PEM headers (an encrypted key?)"
                ));
            }
            body.push_str(l);
        }
        if !closed {
            return Err(format!("the {label} block has no END line"));
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(body.as_bytes())
            .map_err(|e| format!("the {label} block is not valid base64 ({e})"))?;
        out.push(Block {
            label: label.to_string(),
            der,
        });
    }
    Ok(out)
}

/// PEM for one block (64-character lines).
pub fn to_pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The certificates (DER) in a PEM file; at least one, each parseable.
pub fn certificates(text: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let certs: Vec<Vec<u8>> = blocks(text)?
        .into_iter()
        .filter(|b| b.label == "CERTIFICATE")
        .map(|b| b.der)
        .collect();
    if certs.is_empty() {
        return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".to_string());
    }
    for (i, der) in certs.iter().enumerate() {
        X509Certificate::from_der(der)
            .map_err(|e| format!("certificate {} does not parse ({e})", i + 1))?;
    }
    Ok(certs)
}

/// The kind of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
}

/// A public key: its kind and the raw key (the SubjectPublicKeyInfo's BIT STRING: an RSAPublicKey DER for RSA,
/// the uncompressed point for EC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub kind: KeyKind,
    pub raw: Vec<u8>,
    /// The DER SubjectPublicKeyInfo.
    pub spki: Vec<u8>,
}

/// A private key, normalised to PKCS#8, with its public half.
pub struct PrivateKey {
    pub pkcs8: Vec<u8>,
    pub public: PublicKey,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivateKey({:?}, secret not shown)", self.public.kind)
    }
}

impl PrivateKey {
    /// The key as rcgen's key pair (for signing certificates and CSRs).
    pub fn key_pair(&self) -> Result<rcgen::KeyPair, String> {
        rcgen::KeyPair::try_from(self.pkcs8.as_slice())
            .map_err(|e| format!("the key cannot be used for signing ({e})"))
    }

    /// PEM of the PKCS#8 form.
    pub fn pkcs8_pem(&self) -> String {
        to_pem("PRIVATE KEY", &self.pkcs8)
    }
}

const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];

/// DER: tag, length, content.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .iter()
            .copied()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// Reads one DER element from `input`: (tag, content, rest).
fn read_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let mut len = 0usize;
        for b in &rest[..n] {
            len = (len << 8) | usize::from(*b);
        }
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The named curve in a SEC1 ECPrivateKey (`[0]` parameters).
fn sec1_curve(der: &[u8]) -> Option<Vec<u8>> {
    let (tag, seq, _) = read_tlv(der)?;
    if tag != 0x30 {
        return None;
    }
    let (_, _, rest) = read_tlv(seq)?; // version
    let (_, _, mut rest) = read_tlv(rest)?; // privateKey
    while !rest.is_empty() {
        let (tag, content, next) = read_tlv(rest)?;
        if tag == 0xa0 {
            let (t, oid, _) = read_tlv(content)?;
            return (t == 0x06).then(|| oid.to_vec());
        }
        rest = next;
    }
    None
}

/// PKCS#8 PrivateKeyInfo around a key of algorithm `alg` (DER of the AlgorithmIdentifier's content).
fn wrap_pkcs8(algorithm: &[u8], key: &[u8]) -> Vec<u8> {
    let mut content = tlv(0x02, &[0]);
    content.extend(tlv(0x30, algorithm));
    content.extend(tlv(0x04, key));
    tlv(0x30, &content)
}

/// Parses the first private key in a PEM file (PKCS#1, PKCS#8 or SEC1).
pub fn private_key(text: &[u8]) -> Result<PrivateKey, String> {
    let Some(block) = blocks(text)?
        .into_iter()
        .find(|b| b.label.ends_with("PRIVATE KEY"))
    else {
        return Err(
            "holds no PEM private key (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)".to_string(),
        );
    };
    let pkcs8 = match block.label.as_str() {
        "PRIVATE KEY" => block.der,
        "RSA PRIVATE KEY" => {
            let mut alg = tlv(0x06, OID_RSA);
            alg.extend(tlv(0x05, &[]));
            wrap_pkcs8(&alg, &block.der)
        }
        "EC PRIVATE KEY" => {
            let curve = sec1_curve(&block.der)
                .ok_or("the EC PRIVATE KEY names no curve (SEC1 parameters missing)")?;
            let mut alg = tlv(0x06, OID_EC);
            alg.extend(tlv(0x06, &curve));
            wrap_pkcs8(&alg, &block.der)
        }
        other => {
            return Err(format!(
                "a {other} block is not a key this program reads (encrypted?)"
            ));
        }
    };
    let pair = rcgen::KeyPair::try_from(pkcs8.as_slice()).map_err(|e| {
        format!("the {} block is not a usable RSA (2048 bits or more), ECDSA P-256/P-384 or Ed25519 key ({e})", block.label)
    })?;
    let kind = if pair.algorithm() == &rcgen::PKCS_ECDSA_P256_SHA256 {
        KeyKind::EcP256
    } else if pair.algorithm() == &rcgen::PKCS_ECDSA_P384_SHA384 {
        KeyKind::EcP384
    } else if pair.algorithm() == &rcgen::PKCS_ED25519 {
        KeyKind::Ed25519
    } else {
        KeyKind::Rsa
    };
    use rcgen::PublicKeyData as _;
    let public = PublicKey {
        kind,
        raw: pair.public_key_raw().to_vec(),
        spki: pair.subject_public_key_info(),
    };
    Ok(PrivateKey { pkcs8, public })
}

/// A public key from a DER SubjectPublicKeyInfo.
pub fn public_key_from_spki(spki: &[u8]) -> Result<PublicKey, String> {
    let (_, info) = SubjectPublicKeyInfo::from_der(spki)
        .map_err(|e| format!("not a SubjectPublicKeyInfo ({e})"))?;
    let oid = info.algorithm.algorithm.as_bytes();
    let kind = if oid == OID_RSA {
        KeyKind::Rsa
    } else if oid == OID_EC {
        let curve = info
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .map(|o| o.as_bytes().to_vec())
            .unwrap_or_default();
        if curve == OID_P256 {
            KeyKind::EcP256
        } else if curve == OID_P384 {
            KeyKind::EcP384
        } else {
            return Err("an EC key on a curve other than P-256 or P-384".to_string());
        }
    } else if oid == OID_ED25519 {
        KeyKind::Ed25519
    } else {
        return Err("a public key of an unknown algorithm".to_string());
    };
    Ok(PublicKey {
        kind,
        raw: info.subject_public_key.data.to_vec(),
        spki: spki.to_vec(),
    })
}

/// The public keys in a PEM file, as kube-apiserver's `--service-account-key-file` reads it: `PUBLIC KEY`,
/// `RSA PUBLIC KEY`, and private keys (their public half). At least one.
pub fn public_keys(text: &[u8]) -> Result<Vec<PublicKey>, String> {
    let mut keys = Vec::new();
    for block in blocks(text)? {
        match block.label.as_str() {
            "PUBLIC KEY" => keys.push(public_key_from_spki(&block.der)?),
            "RSA PUBLIC KEY" => {
                let mut alg = tlv(0x06, OID_RSA);
                alg.extend(tlv(0x05, &[]));
                let mut bits = vec![0u8];
                bits.extend_from_slice(&block.der);
                let mut spki = tlv(0x30, &alg);
                spki.extend(tlv(0x03, &bits));
                keys.push(PublicKey {
                    kind: KeyKind::Rsa,
                    raw: block.der.clone(),
                    spki: tlv(0x30, &spki),
                });
            }
            l if l.ends_with("PRIVATE KEY") => {
                keys.push(private_key(to_pem(l, &block.der).as_bytes())?.public)
            }
            _ => {}
        }
    }
    if keys.is_empty() {
        return Err(
            "holds no PEM public key (PUBLIC KEY or RSA PUBLIC KEY) or private key".to_string(),
        );
    }
    Ok(keys)
}

/// A parsed certificate's facts the programs look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub common_name: String,
    pub organizations: Vec<String>,
    pub is_ca: bool,
    pub not_before: i64,
    pub not_after: i64,
    pub public: PublicKey,
}

/// Facts about a DER certificate.
pub fn cert_info(der: &[u8]) -> Result<CertInfo, String> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| format!("not a certificate ({e})"))?;
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .unwrap_or_default()
        .to_string();
    let organizations = cert
        .subject()
        .iter_organization()
        .filter_map(|a| a.as_str().ok())
        .map(str::to_string)
        .collect();
    let is_ca = cert
        .basic_constraints()
        .ok()
        .flatten()
        .is_some_and(|b| b.value.ca);
    Ok(CertInfo {
        common_name,
        organizations,
        is_ca,
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        public: public_key_from_spki(cert.tbs_certificate.subject_pki.raw)?,
    })
}

/// Whether `cert` (DER) is issued by `ca` (DER): the issuer name equals the CA's subject and the CA's key
/// verifies the signature.
pub fn signed_by(cert: &[u8], ca: &[u8]) -> bool {
    let (Ok((_, cert)), Ok((_, ca))) = (
        X509Certificate::from_der(cert),
        X509Certificate::from_der(ca),
    ) else {
        return false;
    };
    cert.tbs_certificate.issuer.as_raw() == ca.tbs_certificate.subject.as_raw()
        && cert
            .verify_signature(Some(&ca.tbs_certificate.subject_pki))
            .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca() -> (rcgen::KeyPair, rcgen::Certificate) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "kubernetes");
        let cert = params.self_signed(&key).unwrap();
        (key, cert)
    }

    #[test]
    fn pkcs8_keys_match_their_certificates() {
        let (key, cert) = ca();
        let parsed = private_key(key.serialize_pem().as_bytes()).unwrap();
        let info = cert_info(cert.der()).unwrap();
        assert_eq!(parsed.public.raw, info.public.raw);
        assert_eq!(parsed.public.kind, KeyKind::EcP256);
        assert!(info.is_ca);
        assert_eq!(info.common_name, "kubernetes");
        assert!(signed_by(cert.der(), cert.der()));
    }

    #[test]
    fn sec1_keys_are_normalised() {
        // The SEC1 form of a P-256 key, built from the PKCS#8 one: the inner ECPrivateKey with [0] parameters.
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let pkcs8 = key.serialize_der();
        let (_, seq, _) = read_tlv(&pkcs8).unwrap();
        let (_, _, rest) = read_tlv(seq).unwrap();
        let (_, _, rest) = read_tlv(rest).unwrap();
        let (_, inner, _) = read_tlv(rest).unwrap();
        // ring writes the ECPrivateKey without [0]; add it as OpenSSL does.
        let (_, ec_seq, _) = read_tlv(inner).unwrap();
        let (_, _, after_version) = read_tlv(ec_seq).unwrap();
        let (_, private, public_part) = read_tlv(after_version).unwrap();
        let mut content = tlv(0x02, &[1]);
        content.extend(tlv(0x04, private));
        content.extend(tlv(0xa0, &tlv(0x06, OID_P256)));
        content.extend_from_slice(public_part);
        let sec1 = tlv(0x30, &content);
        let parsed = private_key(to_pem("EC PRIVATE KEY", &sec1).as_bytes()).unwrap();
        assert_eq!(parsed.public.raw, key.public_key_raw());
    }

    #[test]
    fn public_key_files_and_foreign_certificates() {
        let (key, cert) = ca();
        let keys = public_keys(key.public_key_pem().as_bytes()).unwrap();
        assert_eq!(keys[0].raw, key.public_key_raw());
        let (_, other) = ca();
        assert!(!signed_by(other.der(), cert.der()));
        assert!(public_keys(b"nothing").is_err());
        assert!(certificates(cert.pem().as_bytes()).is_ok());
        assert!(certificates(key.serialize_pem().as_bytes()).is_err());
        assert!(private_key(cert.pem().as_bytes()).is_err());
    }

    #[test]
    fn bad_pem_is_refused() {
        assert!(blocks(b"-----BEGIN CERTIFICATE-----\nAAAA\n").is_err());
        assert!(blocks(b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n").is_err());
        assert_eq!(blocks(b"no pem here").unwrap(), vec![]);
    }
}
