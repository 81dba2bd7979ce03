//! Token discovery as `kubeadm join --token … --discovery-token-ca-cert-hash sha256:…` does it, as pure
//! decisions over the bytes the API server sent: the `kube-public/cluster-info` ConfigMap, its detached JWS
//! signatures, and the CA pin.
//!
//! The join steps (kubeadm's `discovery/token`):
//! 1. GET cluster-info anonymously over TLS *without* verification (the pin is what makes it safe) and wait until
//!    `jws-kubeconfig-<token id>` appears (the controller manager's bootstrapsigner adds it): [`verify_cluster_info`]
//!    → [`DiscoveryError::NotSignedYet`] while it is missing.
//! 2. Verify the detached JWS with the token secret ([`verify_detached_jws`]): HS256 over
//!    `base64url(header) . base64url(kubeconfig)`, header `{"alg":"HS256","kid":"<id>"}`. A valid signature proves
//!    the sender knows the token secret — i.e. is the cluster the token was made for.
//! 3. Take the CA from the signed kubeconfig and check the pin: `sha256:` + hex(sha256(DER SubjectPublicKeyInfo))
//!    ([`crate::edge::probe::spki_sha256`]). With `CA_CERT_FILE` instead of (or as well as) a pin, the kubeconfig's
//!    CA must be one of the file's certificates.
//! 4. The caller GETs cluster-info again, now verified against that CA, and [`same_cluster_info`] checks that the
//!    kubeconfig is byte for byte the one that was verified.
//!
//! What comes out ([`DiscoveredCluster`]) is the API server's URL as the cluster publishes it and the CA, which the
//! agent writes to `/etc/kubernetes/pki/ca.crt` and into `bootstrap-kubelet.conf`. Nothing here holds a secret
//! longer than a call, and no error message contains the token secret.

use crate::kubeconfig;
use crate::role_file::{BootstrapToken, CaPin};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::collections::BTreeMap;
use std::fmt;

pub use crate::join_objects::{CLUSTER_INFO_NAME, CLUSTER_INFO_NAMESPACE, KUBECONFIG_KEY};
/// Data keys holding signatures: `jws-kubeconfig-<token id>`.
pub const JWS_KEY_PREFIX: &str = "jws-kubeconfig-";
/// A cluster-info answer larger than this is not read (it is a few KiB).
pub const MAX_CLUSTER_INFO_BYTES: usize = 1 << 20;

/// How the discovered CA is checked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DiscoveryTrust {
    /// `CA_CERT_HASH`.
    pub pin: Option<CaPin>,
    /// The DER certificates of `CA_CERT_FILE`, read by the caller.
    pub ca_file_certs: Vec<Vec<u8>>,
}

/// The cluster as cluster-info describes it, verified.
#[derive(Clone, PartialEq, Eq)]
pub struct DiscoveredCluster {
    /// `clusters[0].cluster.server`, e.g. `https://masters.prod.k8s:6443`.
    pub server: String,
    /// The CA certificate (PEM), exactly one.
    pub ca_pem: String,
    /// The signed kubeconfig text (for the verified re-fetch comparison).
    pub kubeconfig: String,
}

impl fmt::Debug for DiscoveredCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiscoveredCluster")
            .field("server", &self.server)
            .field("ca_pem_bytes", &self.ca_pem.len())
            .finish_non_exhaustive()
    }
}

/// Why discovery did not (yet) give a cluster. Each is a sentence for `status` with what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiscoveryError {
    /// The answer is not a ConfigMap with a `kubeconfig` key.
    Malformed { problem: String },
    /// No `jws-kubeconfig-<id>` yet; `signed_for` are the token ids that have a signature.
    NotSignedYet {
        token_id: String,
        signed_for: Vec<String>,
    },
    /// The signature is not a detached compact JWS with the expected header.
    BadJwsFormat { token_id: String, problem: String },
    /// The signature does not verify with this token's secret (wrong token, or the content was changed).
    BadSignature { token_id: String },
    /// The signed kubeconfig has no usable cluster (server and certificate-authority-data).
    BadKubeconfig { problem: String },
    /// The CA in cluster-info does not match `CA_CERT_HASH`.
    PinMismatch { pin: CaPin, found: String },
    /// The CA in cluster-info is not in `CA_CERT_FILE`.
    NotInCaFile { found: String },
    /// The verified re-fetch returned another kubeconfig than the one verified.
    ChangedBetweenFetches,
}

impl fmt::Display for DiscoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiscoveryError::Malformed { problem } => write!(
                f,
                "kube-public/cluster-info is not what kubeadm publishes ({problem}) — hint: on the master, \
                 `kubectl -n kube-public get configmap cluster-info -o yaml` must show a `kubeconfig` key"
            ),
            DiscoveryError::NotSignedYet {
                token_id,
                signed_for,
            } => {
                let others = if signed_for.is_empty() {
                    "no token at all".to_string()
                } else {
                    format!("only token id(s) {}", signed_for.join(", "))
                };
                write!(
                    f,
                    "cluster-info has no signature for token id {token_id} yet (it is signed for {others}) — the \
                     controller manager's bootstrapsigner signs it for every valid bootstrap token Secret; if this \
                     lasts, the token is unknown to the cluster or expired: check BOOTSTRAP_TOKEN in the role file \
                     against `kubeadm token list` on a master"
                )
            }
            DiscoveryError::BadJwsFormat { token_id, problem } => write!(
                f,
                "the cluster-info signature for token id {token_id} is malformed ({problem}) — hint: the API \
                 server or something in between is not a Kubernetes API server"
            ),
            DiscoveryError::BadSignature { token_id } => write!(
                f,
                "the cluster-info signature for token id {token_id} does not verify with BOOTSTRAP_TOKEN's secret — \
                 the token in the role file is wrong (its id exists, its secret differs) or the answer was \
                 tampered with: copy the token from `kubeadm token list` on a master"
            ),
            DiscoveryError::BadKubeconfig { problem } => write!(
                f,
                "the kubeconfig in cluster-info is not usable ({problem}) — hint: it needs one cluster with \
                 `server` and `certificate-authority-data`"
            ),
            DiscoveryError::PinMismatch { pin, found } => write!(
                f,
                "the cluster CA in cluster-info does not match CA_CERT_HASH {pin} (its public key hash is {found}) \
                 — this cluster is not the one the pin names: get the right pin on a master with `openssl x509 \
                 -pubkey -noout -in /etc/kubernetes/pki/ca.crt | openssl pkey -pubin -outform der | sha256sum`"
            ),
            DiscoveryError::NotInCaFile { found } => write!(
                f,
                "the cluster CA in cluster-info (public key hash {found}) is not in CA_CERT_FILE — hint: put the \
                 cluster's /etc/kubernetes/pki/ca.crt there"
            ),
            DiscoveryError::ChangedBetweenFetches => write!(
                f,
                "cluster-info changed between the unverified and the verified fetch — retrying (a token rotation \
                 or a changed CA makes this happen once)"
            ),
        }
    }
}

impl std::error::Error for DiscoveryError {}

impl DiscoveryError {
    /// Errors that retrying cannot fix without a change by the operator (wrong token secret, wrong pin). The
    /// others are waited on.
    pub fn needs_operator(&self) -> bool {
        matches!(
            self,
            DiscoveryError::BadSignature { .. }
                | DiscoveryError::PinMismatch { .. }
                | DiscoveryError::NotInCaFile { .. }
        )
    }
}

/// The `data` of the cluster-info ConfigMap from an API answer (a ConfigMap object as JSON).
pub fn cluster_info_data(body: &[u8]) -> Result<BTreeMap<String, String>, DiscoveryError> {
    #[derive(serde::Deserialize)]
    struct ConfigMap {
        kind: Option<String>,
        #[serde(default)]
        data: BTreeMap<String, String>,
    }
    if body.len() > MAX_CLUSTER_INFO_BYTES {
        return Err(DiscoveryError::Malformed {
            problem: format!("{} bytes, more than {MAX_CLUSTER_INFO_BYTES}", body.len()),
        });
    }
    let map: ConfigMap = serde_json::from_slice(body).map_err(|e| DiscoveryError::Malformed {
        problem: format!("not a JSON ConfigMap: {e}"),
    })?;
    if map.kind.as_deref().is_some_and(|k| k != "ConfigMap") {
        return Err(DiscoveryError::Malformed {
            problem: format!("kind is {:?}, not ConfigMap", map.kind.unwrap_or_default()),
        });
    }
    if !map.data.contains_key(KUBECONFIG_KEY) {
        return Err(DiscoveryError::Malformed {
            problem: "no data key `kubeconfig`".to_string(),
        });
    }
    Ok(map.data)
}

/// Steps 1–3: the signature for `token`, the CA pin / file, and the cluster it describes.
pub fn verify_cluster_info(
    data: &BTreeMap<String, String>,
    token: &BootstrapToken,
    trust: &DiscoveryTrust,
) -> Result<DiscoveredCluster, DiscoveryError> {
    let content = data
        .get(KUBECONFIG_KEY)
        .ok_or_else(|| DiscoveryError::Malformed {
            problem: "no data key `kubeconfig`".to_string(),
        })?;
    let key = format!("{JWS_KEY_PREFIX}{}", token.id());
    let Some(jws) = data.get(&key) else {
        return Err(DiscoveryError::NotSignedYet {
            token_id: token.id().to_string(),
            signed_for: data
                .keys()
                .filter_map(|k| k.strip_prefix(JWS_KEY_PREFIX))
                .map(str::to_string)
                .collect(),
        });
    };
    verify_detached_jws(jws, content.as_bytes(), token.id(), token.secret_part())?;

    let config = kubeconfig::parse(content).map_err(|e| DiscoveryError::BadKubeconfig {
        problem: e.to_string(),
    })?;
    let cluster = config
        .current_cluster()
        .map_err(|e| DiscoveryError::BadKubeconfig {
            problem: e.to_string(),
        })?;
    if !cluster.server.starts_with("https://") {
        return Err(DiscoveryError::BadKubeconfig {
            problem: "its server is not an https:// URL".to_string(),
        });
    }
    let server = cluster.server.clone();
    let ca_pem = cluster.certificate_authority_data.clone().ok_or_else(|| {
        DiscoveryError::BadKubeconfig {
            problem: "no certificate-authority-data".to_string(),
        }
    })?;
    let ca_text = String::from_utf8(ca_pem).map_err(|_| DiscoveryError::BadKubeconfig {
        problem: "certificate-authority-data is not PEM text".to_string(),
    })?;
    let ders = pem_certificates(&ca_text);
    let [ca_der] = ders.as_slice() else {
        return Err(DiscoveryError::BadKubeconfig {
            problem: format!(
                "certificate-authority-data holds {} certificates, not one",
                ders.len()
            ),
        });
    };
    let found = spki_sha256(ca_der)
        .map(|d| format!("sha256:{}", hex::encode(d)))
        .map_err(|e| DiscoveryError::BadKubeconfig {
            problem: e.to_string(),
        })?;
    if let Some(pin) = &trust.pin
        && found != pin.to_string()
    {
        return Err(DiscoveryError::PinMismatch {
            pin: pin.clone(),
            found,
        });
    }
    if !trust.ca_file_certs.is_empty() && !trust.ca_file_certs.iter().any(|c| c == ca_der) {
        return Err(DiscoveryError::NotInCaFile { found });
    }
    Ok(DiscoveredCluster {
        server,
        ca_pem: ca_text,
        kubeconfig: content.clone(),
    })
}

/// Step 4: the verified re-fetch must carry the same kubeconfig.
pub fn same_cluster_info(
    verified: &DiscoveredCluster,
    refetched: &BTreeMap<String, String>,
) -> Result<(), DiscoveryError> {
    match refetched.get(KUBECONFIG_KEY) {
        Some(k) if *k == verified.kubeconfig => Ok(()),
        _ => Err(DiscoveryError::ChangedBetweenFetches),
    }
}

/// Verifies a detached compact JWS (`<header>..<signature>`) over `payload`: HS256 keyed with `secret`, header
/// `alg` = `HS256` and `kid` = `token_id`. The comparison is constant-time (ring's HMAC verify).
pub fn verify_detached_jws(
    jws: &str,
    payload: &[u8],
    token_id: &str,
    secret: &str,
) -> Result<(), DiscoveryError> {
    let bad = |problem: &str| DiscoveryError::BadJwsFormat {
        token_id: token_id.to_string(),
        problem: problem.to_string(),
    };
    let mut parts = jws.trim().split('.');
    let (Some(header_b64), Some(middle), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("not three dot-separated parts"));
    };
    if !middle.is_empty() {
        return Err(bad(
            "the payload part is not empty (not a detached signature)",
        ));
    }
    let header = URL_SAFE_NO_PAD
        .decode(header_b64)
        .map_err(|_| bad("the header is not base64url"))?;
    #[derive(serde::Deserialize)]
    struct Header {
        alg: String,
        kid: Option<String>,
        crit: Option<serde_json::Value>,
    }
    let header: Header =
        serde_json::from_slice(&header).map_err(|_| bad("the header is not a JSON object"))?;
    if header.alg != "HS256" {
        return Err(bad(&format!("alg is {:?}, not HS256", header.alg)));
    }
    if header.kid.as_deref() != Some(token_id) {
        return Err(bad(&format!(
            "kid is {:?}, not the token id",
            header.kid.unwrap_or_default()
        )));
    }
    if header.crit.is_some() {
        return Err(bad("it has critical header parameters"));
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .map_err(|_| bad("the signature is not base64url"))?;
    let signing_input = format!("{header_b64}.{}", URL_SAFE_NO_PAD.encode(payload));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    ring::hmac::verify(&key, signing_input.as_bytes(), &signature).map_err(|_| {
        DiscoveryError::BadSignature {
            token_id: token_id.to_string(),
        }
    })
}

/// The detached JWS Kubernetes' bootstrapsigner computes (go-jose compact serialisation, HS256, header
/// `{"alg":"HS256","kid":"<id>"}`, payload removed). The agent never signs cluster-info itself — that is the
/// controller manager's job — but tests and the stand-in use this to make signatures to verify.
pub fn detached_jws(payload: &[u8], token_id: &str, secret: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"HS256","kid":"{token_id}"}}"#));
    let signing_input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(payload));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, signing_input.as_bytes());
    format!("{header}..{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// The DER certificates in a PEM text (other blocks ignored).
pub fn pem_certificates(pem: &str) -> Vec<Vec<u8>> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .filter_map(Result::ok)
        .map(|c| c.as_ref().to_vec())
        .collect()
}

/// A certificate that does not parse as DER X.509 (what [`spki_sha256`] returns).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a DER X.509 certificate ({reason})")]
pub struct NotACertificate {
    pub reason: String,
}

/// sha256 of the DER SubjectPublicKeyInfo of a certificate — kubeadm's `--discovery-token-ca-cert-hash` (and
/// the role file's `CA_CERT_HASH`), the same as `openssl x509 -pubkey -noout -in ca.crt | openssl pkey -pubin
/// -outform der | sha256sum`.
pub fn spki_sha256(cert_der: &[u8]) -> Result<[u8; 32], NotACertificate> {
    use sha2::Digest as _;
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).map_err(|e| NotACertificate {
        reason: e.to_string(),
    })?;
    Ok(sha2::Sha256::digest(cert.public_key().raw).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "abcdef";
    const SECRET: &str = "0123456789abcdef";

    fn token() -> BootstrapToken {
        BootstrapToken::parse(&format!("{ID}.{SECRET}")).expect("token")
    }

    #[test]
    fn a_signature_made_as_kubernetes_makes_it_verifies() {
        let payload = b"apiVersion: v1\nkind: Config\n";
        let jws = detached_jws(payload, ID, SECRET);
        let (header, rest) = jws.split_once("..").expect("detached");
        assert_eq!(
            URL_SAFE_NO_PAD.decode(header).expect("b64"),
            br#"{"alg":"HS256","kid":"abcdef"}"#
        );
        assert!(!rest.is_empty());
        verify_detached_jws(&jws, payload, ID, SECRET).expect("verifies");
    }

    #[test]
    fn a_known_signature_from_rfc_7515_style_inputs_is_stable() {
        // HMAC-SHA256 over a fixed input: if this changes, so did the signing input's construction.
        let jws = detached_jws(b"payload", "abcdef", "0123456789abcdef");
        assert_eq!(jws, detached_jws(b"payload", "abcdef", "0123456789abcdef"));
        assert!(jws.starts_with("eyJhbGciOiJIUzI1NiIsImtpZCI6ImFiY2RlZiJ9.."));
    }

    #[test]
    fn wrong_secret_or_changed_payload_is_a_bad_signature() {
        let jws = detached_jws(b"content", ID, SECRET);
        assert_eq!(
            verify_detached_jws(&jws, b"content", ID, "ffffffffffffffff"),
            Err(DiscoveryError::BadSignature {
                token_id: ID.into()
            })
        );
        assert_eq!(
            verify_detached_jws(&jws, b"content!", ID, SECRET),
            Err(DiscoveryError::BadSignature {
                token_id: ID.into()
            })
        );
    }

    #[test]
    fn malformed_signatures_are_named() {
        let good = detached_jws(b"c", ID, SECRET);
        let (header, sig) = good.split_once("..").expect("detached");
        let cases = [
            ("a.b".to_string(), "not three dot-separated parts"),
            (format!("{header}.eA.{sig}"), "not empty"),
            (format!("!!..{sig}"), "not base64url"),
            (
                format!(
                    "{}..{sig}",
                    URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"abcdef"}"#)
                ),
                "alg is \"none\"",
            ),
            (
                format!(
                    "{}..{sig}",
                    URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","kid":"zzzzzz"}"#)
                ),
                "kid is \"zzzzzz\"",
            ),
            (
                format!(
                    "{}..{sig}",
                    URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","kid":"abcdef","crit":["x"]}"#)
                ),
                "critical",
            ),
        ];
        for (jws, want) in cases {
            match verify_detached_jws(&jws, b"c", ID, SECRET) {
                Err(DiscoveryError::BadJwsFormat { problem, .. }) => {
                    assert!(problem.contains(want), "{jws}: {problem}")
                }
                other => panic!("{jws}: {other:?}"),
            }
        }
    }

    #[test]
    fn missing_signature_lists_the_signed_token_ids() {
        let mut data = BTreeMap::new();
        data.insert(KUBECONFIG_KEY.to_string(), "x".to_string());
        data.insert(format!("{JWS_KEY_PREFIX}zzzzzz"), "x..y".to_string());
        match verify_cluster_info(&data, &token(), &DiscoveryTrust::default()) {
            Err(e @ DiscoveryError::NotSignedYet { .. }) => {
                assert_eq!(
                    e,
                    DiscoveryError::NotSignedYet {
                        token_id: ID.into(),
                        signed_for: vec!["zzzzzz".into()]
                    }
                );
                assert!(e.to_string().contains("only token id(s) zzzzzz"));
                assert!(!e.needs_operator());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn cluster_info_must_be_a_configmap_with_a_kubeconfig() {
        assert!(matches!(
            cluster_info_data(b"not json"),
            Err(DiscoveryError::Malformed { .. })
        ));
        assert!(matches!(
            cluster_info_data(br#"{"kind":"Status","data":{"kubeconfig":"x"}}"#),
            Err(DiscoveryError::Malformed { .. })
        ));
        assert!(matches!(
            cluster_info_data(br#"{"kind":"ConfigMap","data":{}}"#),
            Err(DiscoveryError::Malformed { .. })
        ));
        let big = vec![b' '; MAX_CLUSTER_INFO_BYTES + 1];
        assert!(matches!(
            cluster_info_data(&big),
            Err(DiscoveryError::Malformed { .. })
        ));
        let data = cluster_info_data(
            br#"{"kind":"ConfigMap","apiVersion":"v1","data":{"kubeconfig":"k","jws-kubeconfig-abcdef":"s"}}"#,
        )
        .expect("parsed");
        assert_eq!(data.len(), 2);
    }

    #[test]
    fn no_message_contains_the_token_secret() {
        let errors = [
            DiscoveryError::BadSignature {
                token_id: ID.into(),
            },
            DiscoveryError::NotSignedYet {
                token_id: ID.into(),
                signed_for: vec![],
            },
        ];
        for e in errors {
            assert!(!e.to_string().contains(SECRET), "{e}");
            assert!(!format!("{e:?}").contains(SECRET));
        }
    }
}
