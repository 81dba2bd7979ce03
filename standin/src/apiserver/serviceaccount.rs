//! Service-account tokens: the bound tokens the TokenRequest API issues (`POST
//! /api/v1/namespaces/<ns>/serviceaccounts/<name>/token`), signed with `--service-account-signing-key-file` (RS256
//! for RSA, ES256 for P-256, `kid` = base64url(sha256(SubjectPublicKeyInfo)) as upstream), and their
//! verification against `--service-account-key-file` (issuer, audience, expiry, and the ServiceAccount still
//! existing with the same uid, as `--service-account-lookup` does by default).
//!
//! This is what the controller manager's `--use-service-account-credentials` rides on: each controller acts as
//! its own service account (bootstrap-signer, token-cleaner, certificate-controller), and RBAC grants those.

use crate::common::pki::{KeyKind, PrivateKey, PublicKey};
use base64::Engine as _;
use serde_json::{Value, json};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(text: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| "not base64url".to_string())
}

/// upstream's key id: base64url(sha256(DER SubjectPublicKeyInfo)).
pub fn key_id(key: &PublicKey) -> String {
    b64(ring::digest::digest(&ring::digest::SHA256, &key.spki).as_ref())
}

/// Signs the JWS signing input.
type Sign = Box<dyn Fn(&[u8]) -> Result<Vec<u8>, String>>;

/// The token settings from the flags.
pub struct Tokens {
    pub issuers: Vec<String>,
    pub audiences: Vec<String>,
    pub keys: Vec<PublicKey>,
    pub signer: PrivateKey,
}

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub id: String,
}

impl Tokens {
    /// A signed token for service account `namespace/name` (uid `uid`), valid for `seconds` from `now`.
    pub fn issue(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        audiences: &[String],
        seconds: i64,
        now: i64,
    ) -> Result<String, String> {
        let rng = ring::rand::SystemRandom::new();
        let (alg, sign): (&str, Sign) = match self.signer.public.kind {
            KeyKind::Rsa => {
                let pair = ring::signature::RsaKeyPair::from_pkcs8(&self.signer.pkcs8)
                    .map_err(|e| format!("the signing key: {e}"))?;
                (
                    "RS256",
                    Box::new(move |m: &[u8]| {
                        let mut sig = vec![0u8; pair.public().modulus_len()];
                        pair.sign(&ring::signature::RSA_PKCS1_SHA256, &rng, m, &mut sig)
                            .map_err(|_| "signing failed".to_string())?;
                        Ok(sig)
                    }),
                )
            }
            KeyKind::EcP256 => {
                let pair = ring::signature::EcdsaKeyPair::from_pkcs8(
                    &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    &self.signer.pkcs8,
                    &rng,
                )
                .map_err(|e| format!("the signing key: {e}"))?;
                let rng = ring::rand::SystemRandom::new();
                (
                    "ES256",
                    Box::new(move |m: &[u8]| {
                        pair.sign(&rng, m)
                            .map(|s| s.as_ref().to_vec())
                            .map_err(|_| "signing failed".to_string())
                    }),
                )
            }
            _ => return Err("the signing key is neither RSA nor ECDSA P-256".to_string()),
        };
        let header = json!({"alg": alg, "kid": key_id(&self.signer.public)});
        let claims = json!({
            "aud": audiences,
            "exp": now + seconds,
            "iat": now,
            "iss": self.issuers.first().cloned().unwrap_or_default(),
            "jti": crate::common::uuid(),
            "kubernetes.io": {
                "namespace": namespace,
                "serviceaccount": {"name": name, "uid": uid},
            },
            "nbf": now,
            "sub": format!("system:serviceaccount:{namespace}:{name}"),
        });
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature = sign(input.as_bytes())?;
        Ok(format!("{input}.{}", b64(&signature)))
    }

    /// Checks the signature, issuer, audience and times. The caller checks the account still exists.
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, String> {
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("not a JWT".to_string());
        };
        let header: Value =
            serde_json::from_slice(&unb64(h)?).map_err(|_| "bad JWT header".to_string())?;
        let signature = unb64(s)?;
        let input = format!("{h}.{c}");
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let verified = self.keys.iter().any(|k| {
            let algorithm: &dyn ring::signature::VerificationAlgorithm = match (alg, k.kind) {
                ("RS256", KeyKind::Rsa) => &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                ("ES256", KeyKind::EcP256) => &ring::signature::ECDSA_P256_SHA256_FIXED,
                _ => return false,
            };
            ring::signature::UnparsedPublicKey::new(algorithm, &k.raw)
                .verify(input.as_bytes(), &signature)
                .is_ok()
        });
        if !verified {
            return Err(
                "the signature does not verify with any --service-account-key-file key".to_string(),
            );
        }
        let claims: Value =
            serde_json::from_slice(&unb64(c)?).map_err(|_| "bad JWT claims".to_string())?;
        let iss = claims
            .get("iss")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !self.issuers.iter().any(|i| i == iss) {
            return Err(format!("issuer {iss:?} is not a --service-account-issuer"));
        }
        let auds: Vec<&str> = match claims.get("aud") {
            Some(Value::String(a)) => vec![a.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        if !auds.iter().any(|a| self.audiences.iter().any(|x| x == a)) {
            return Err("the token's audiences are not accepted (--api-audiences)".to_string());
        }
        let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
        let nbf = claims.get("nbf").and_then(Value::as_i64).unwrap_or(0);
        // upstream allows 60 s of clock skew.
        if now > exp + 60 || now + 60 < nbf {
            return Err("the token has expired or is not valid yet".to_string());
        }
        let k8s = claims.get("kubernetes.io").cloned().unwrap_or_default();
        let text = |v: &Value, path: &[&str]| crate::common::str_at(v, path).to_string();
        let out = Claims {
            namespace: text(&k8s, &["namespace"]),
            name: text(&k8s, &["serviceaccount", "name"]),
            uid: text(&k8s, &["serviceaccount", "uid"]),
            id: text(&claims, &["jti"]),
        };
        if out.namespace.is_empty() || out.name.is_empty() {
            return Err("the token names no service account".to_string());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::pki;

    fn tokens(key: &rcgen::KeyPair) -> Tokens {
        let signer = pki::private_key(key.serialize_pem().as_bytes()).unwrap();
        Tokens {
            issuers: vec!["https://kubernetes.default.svc.cluster.local".into()],
            audiences: vec!["https://kubernetes.default.svc.cluster.local".into()],
            keys: vec![signer.public.clone()],
            signer,
        }
    }

    #[test]
    fn issued_tokens_verify_and_forgeries_do_not() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let t = tokens(&key);
        let now = 1_800_000_000;
        let token = t
            .issue(
                "kube-system",
                "bootstrap-signer",
                "u-1",
                &t.audiences.clone(),
                3600,
                now,
            )
            .unwrap();
        let claims = t.verify(&token, now + 10).unwrap();
        assert_eq!(
            (claims.namespace.as_str(), claims.name.as_str()),
            ("kube-system", "bootstrap-signer")
        );
        assert!(t.verify(&token, now + 7200).is_err(), "expired");
        let other = tokens(&rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap());
        assert!(other.verify(&token, now).is_err(), "another key");
        let wrong_aud = t
            .issue("kube-system", "x", "u", &["other".into()], 3600, now)
            .unwrap();
        assert!(t.verify(&wrong_aud, now).is_err());
        assert!(t.verify("abc.def", now).is_err());
    }
}
