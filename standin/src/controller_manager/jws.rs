//! The detached JWS the bootstrap signer puts into `kube-public/cluster-info`, exactly as
//! k8s.io/cluster-bootstrap/token/jws `ComputeDetachedSignature` makes it: go-jose's compact HS256 serialization
//! keyed with the token secret, protected header `{"alg":"HS256","kid":"<token id>"}` (go-jose marshals the
//! header map with sorted keys), then the payload part removed: `<header>..<signature>`.

use base64::Engine as _;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// `<header>..<signature>` over `content` for token `id` with secret `secret`.
pub fn detached_signature(content: &str, id: &str, secret: &str) -> String {
    let header = serde_json::json!({"alg": "HS256", "kid": id}).to_string();
    let protected = b64(header.as_bytes());
    let input = format!("{protected}.{}", b64(content.as_bytes()));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, input.as_bytes());
    format!("{protected}..{}", b64(tag.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_go_jose_s() {
        let sig = detached_signature("content", "abcdef", "0123456789abcdef");
        let (header, rest) = sig.split_once("..").unwrap();
        let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap();
        assert_eq!(decoded, br#"{"alg":"HS256","kid":"abcdef"}"#);
        assert_eq!(rest.len(), 43, "HS256 is 32 bytes, 43 base64url characters");
        assert_ne!(
            sig,
            detached_signature("content", "abcdef", "0123456789abcdeg")
        );
    }

    /// A signature made by kubeadm's Go code for content "hello" with token abcdef.0123456789abcdef would be
    /// checked here if one were at hand; instead, the HMAC is recomputed by hand.
    #[test]
    fn the_signature_is_hmac_sha256_over_header_dot_payload() {
        let sig = detached_signature("hello", "abcdef", "0123456789abcdef");
        let (header, tag) = sig.split_once("..").unwrap();
        let input = format!("{header}.{}", b64(b"hello"));
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"0123456789abcdef");
        let expected = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(tag)
            .unwrap();
        assert!(ring::hmac::verify(&key, input.as_bytes(), &expected).is_ok());
    }
}
