//! Authentication, in the real API server's order and with its outcomes:
//!
//! 1. a client certificate verified against `--client-ca-file` → user = CN, groups = the O values;
//! 2. `Authorization: Bearer <token>`: a bootstrap token `<id>.<secret>` (with `--enable-bootstrap-token-auth`)
//!    checked against Secret `kube-system/bootstrap-token-<id>` as upstream's bootstrap authenticator does
//!    (type `bootstrap.kubernetes.io/token`, not being deleted, `token-secret` and `token-id` equal,
//!    `expiration` not passed — an unparseable one counts as passed —, `usage-bootstrap-authentication: "true"`,
//!    `auth-extra-groups` each `system:bootstrappers:...`) → `system:bootstrap:<id>` in `system:bootstrappers` +
//!    the extra groups; or a service-account token (see [`super::serviceaccount`]);
//! 3. nothing presented → `system:anonymous` in `system:unauthenticated` (with `--anonymous-auth`, the default).
//!
//! Credentials that are presented but do not authenticate (a certificate from another CA, a wrong or unknown
//! token) are `401 Unauthorized`, never anonymous. Every authenticated user also gets `system:authenticated`.

use super::serviceaccount::Tokens;
use super::store::{Key, Txn};
use super::tls::ClientCa;
use crate::common::{pki, str_at, time};
use base64::Engine as _;
use rustls::pki_types::CertificateDer;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Who a request is from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct User {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

impl User {
    /// `system:anonymous`.
    pub fn anonymous() -> User {
        User {
            name: "system:anonymous".into(),
            groups: vec!["system:unauthenticated".into()],
            ..User::default()
        }
    }

    fn authenticated(mut self) -> User {
        if !self.groups.iter().any(|g| g == "system:authenticated") {
            self.groups.push("system:authenticated".into());
        }
        self
    }

    /// `userInfo` as SelfSubjectReview and TokenReview write it.
    pub fn to_json(&self) -> Value {
        let mut v = json!({"username": self.name, "groups": self.groups});
        if !self.uid.is_empty() {
            v["uid"] = json!(self.uid);
        }
        if !self.extra.is_empty() {
            v["extra"] = json!(self.extra);
        }
        v
    }
}

/// The outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    User(User),
    /// 401; the reason is for the log only.
    Rejected(String),
}

/// What authentication needs from the server's configuration.
pub struct Authenticator<'a> {
    pub client_ca: Option<&'a ClientCa>,
    pub bootstrap_tokens: bool,
    pub anonymous: bool,
    pub tokens: &'a Tokens,
}

impl Authenticator<'_> {
    /// Authenticates one request (`authorization`: the header's value, if any).
    pub fn authenticate(
        &self,
        txn: &Txn<'_>,
        authorization: Option<&str>,
        peer: Option<&[CertificateDer<'static>]>,
    ) -> Outcome {
        let mut errors = Vec::new();
        if let Some(chain) = peer.filter(|c| !c.is_empty()) {
            match self.x509(chain) {
                Ok(user) => return Outcome::User(user.authenticated()),
                Err(e) => errors.push(format!("client certificate: {e}")),
            }
        }
        if let Some(header) = authorization.map(str::trim).filter(|h| !h.is_empty()) {
            let token = header
                .strip_prefix("Bearer ")
                .or_else(|| header.strip_prefix("bearer "))
                .map(str::trim)
                .unwrap_or_default();
            if token.is_empty() {
                errors.push("the Authorization header is not a bearer token".to_string());
            } else {
                match self.token(txn, token) {
                    Ok(user) => return Outcome::User(user.authenticated()),
                    Err(e) => errors.push(e),
                }
            }
        }
        if !errors.is_empty() {
            return Outcome::Rejected(errors.join("; "));
        }
        if self.anonymous {
            Outcome::User(User::anonymous())
        } else {
            Outcome::Rejected("anonymous requests are off (--anonymous-auth=false)".into())
        }
    }

    fn x509(&self, chain: &[CertificateDer<'static>]) -> Result<User, String> {
        let ca = self
            .client_ca
            .ok_or("no --client-ca-file, so client certificates are not accepted")?;
        ca.verify(chain)?;
        let info = pki::cert_info(&chain[0])?;
        if info.common_name.is_empty() {
            return Err("the certificate has no CN".into());
        }
        Ok(User {
            name: info.common_name,
            groups: info.organizations,
            ..User::default()
        })
    }

    fn token(&self, txn: &Txn<'_>, token: &str) -> Result<User, String> {
        if let Some((id, secret)) = parse_bootstrap_token(token) {
            if !self.bootstrap_tokens {
                return Err(
                    "bootstrap token presented, but --enable-bootstrap-token-auth is off".into(),
                );
            }
            return bootstrap_user(txn, id, secret, time::now())
                .map_err(|e| format!("bootstrap token {id}: {e}"));
        }
        if token.matches('.').count() == 2 {
            let claims = self
                .tokens
                .verify(token, time::now())
                .map_err(|e| format!("service-account token: {e}"))?;
            let key = Key::new("serviceaccounts", &claims.namespace, &claims.name);
            let account = txn.get(&key).ok_or_else(|| {
                format!(
                    "service-account token: serviceaccounts {:?} in {:?} no longer exists",
                    claims.name, claims.namespace
                )
            })?;
            if str_at(account, &["metadata", "uid"]) != claims.uid {
                return Err(
                    "service-account token: the service account was recreated (uid differs)".into(),
                );
            }
            let mut extra = BTreeMap::new();
            extra.insert(
                "authentication.kubernetes.io/credential-id".to_string(),
                vec![format!("JTI={}", claims.id)],
            );
            return Ok(User {
                name: format!("system:serviceaccount:{}:{}", claims.namespace, claims.name),
                uid: claims.uid,
                groups: vec![
                    "system:serviceaccounts".into(),
                    format!("system:serviceaccounts:{}", claims.namespace),
                ],
                extra,
            });
        }
        Err("the bearer token is neither a bootstrap token nor a service-account token".into())
    }
}

/// `<id>.<secret>` with id `[a-z0-9]{6}` and secret `[a-z0-9]{16}`.
pub fn parse_bootstrap_token(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    let ok = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    (ok(id, 6) && ok(secret, 16)).then_some((id, secret))
}

/// A `data` value of a Secret, decoded (`""` when absent or not base64).
pub fn secret_data(secret: &Value, key: &str) -> String {
    let Some(v) = secret
        .get("data")
        .and_then(|d| d.get(key))
        .and_then(Value::as_str)
    else {
        return String::new();
    };
    base64::engine::general_purpose::STANDARD
        .decode(v)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Upstream's `HasExpired`: no expiration → never; an unparseable one → expired.
pub fn token_expired(secret: &Value, now: i64) -> bool {
    let expiration = secret_data(secret, "expiration");
    if expiration.is_empty() {
        return false;
    }
    match time::parse_rfc3339(&expiration) {
        Some(t) => t <= now,
        None => true,
    }
}

/// Upstream's `GetGroups`: `system:bootstrappers` plus each valid `auth-extra-groups` entry.
fn bootstrap_groups(secret: &Value) -> Result<Vec<String>, String> {
    let mut groups = vec!["system:bootstrappers".to_string()];
    let extra = secret_data(secret, "auth-extra-groups");
    for g in extra.split(',').map(str::trim).filter(|g| !g.is_empty()) {
        let rest = g.strip_prefix("system:bootstrappers:").unwrap_or_default();
        let valid = !rest.is_empty()
            && rest.len() <= 256
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b':' || b == b'-')
            && rest
                .bytes()
                .last()
                .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !valid {
            return Err(format!(
                "auth-extra-groups {g:?} does not match ^system:bootstrappers:[a-z0-9:-]{{0,255}}[a-z0-9]$"
            ));
        }
        if !groups.iter().any(|x| x == g) {
            groups.push(g.to_string());
        }
    }
    Ok(groups)
}

fn bootstrap_user(txn: &Txn<'_>, id: &str, secret: &str, now: i64) -> Result<User, String> {
    let name = format!("bootstrap-token-{id}");
    let stored = txn
        .get(&Key::new("secrets", "kube-system", &name))
        .ok_or_else(|| format!("no Secret kube-system/{name}"))?;
    if stored.pointer("/metadata/deletionTimestamp").is_some() {
        return Err("the Secret is being deleted".into());
    }
    if str_at(stored, &["type"]) != "bootstrap.kubernetes.io/token" || stored.get("data").is_none()
    {
        return Err("the Secret is not of type bootstrap.kubernetes.io/token".into());
    }
    let stored_secret = secret_data(stored, "token-secret");
    if !ring_constant_time_eq(stored_secret.as_bytes(), secret.as_bytes()) {
        return Err("token-secret does not match".into());
    }
    if secret_data(stored, "token-id") != id {
        return Err("token-id does not match the name".into());
    }
    if token_expired(stored, now) {
        return Err("the token has expired (or its expiration does not parse as RFC 3339)".into());
    }
    if secret_data(stored, "usage-bootstrap-authentication") != "true" {
        return Err("not marked usage-bootstrap-authentication=true".into());
    }
    Ok(User {
        name: format!("system:bootstrap:{id}"),
        groups: bootstrap_groups(stored)?,
        ..User::default()
    })
}

fn ring_constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(data: &[(&str, &str)]) -> Value {
        let mut d = serde_json::Map::new();
        for (k, v) in data {
            d.insert(
                (*k).into(),
                json!(base64::engine::general_purpose::STANDARD.encode(v)),
            );
        }
        json!({"type": "bootstrap.kubernetes.io/token", "data": d, "metadata": {"name": "bootstrap-token-abcdef"}})
    }

    #[test]
    fn token_syntax() {
        assert_eq!(
            parse_bootstrap_token("abcdef.0123456789abcdef"),
            Some(("abcdef", "0123456789abcdef"))
        );
        assert_eq!(parse_bootstrap_token("ABCDEF.0123456789abcdef"), None);
        assert_eq!(parse_bootstrap_token("abcdef.0123456789abcde"), None);
        assert_eq!(parse_bootstrap_token("eyJh.eyJ.sig"), None);
    }

    #[test]
    fn expiration_and_groups_follow_upstream() {
        let now = 1_800_000_000;
        assert!(!token_expired(&secret(&[]), now));
        assert!(token_expired(
            &secret(&[("expiration", "2000-01-01T00:00:00Z")]),
            now
        ));
        assert!(!token_expired(
            &secret(&[("expiration", "2100-01-01T00:00:00Z")]),
            now
        ));
        assert!(token_expired(&secret(&[("expiration", "next week")]), now));
        let g = bootstrap_groups(&secret(&[(
            "auth-extra-groups",
            "system:bootstrappers:kubeadm:default-node-token, system:bootstrappers:kubeadm:default-node-token",
        )]))
        .unwrap();
        assert_eq!(
            g,
            vec![
                "system:bootstrappers",
                "system:bootstrappers:kubeadm:default-node-token"
            ]
        );
        assert!(bootstrap_groups(&secret(&[("auth-extra-groups", "system:masters")])).is_err());
    }
}
