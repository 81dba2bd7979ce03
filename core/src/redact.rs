//! Scrubbing secrets out of text that leaves the node (the support bundle). Two nets, both applied to every file:
//!
//! 1. **By content**: [`Secrets`] learns the node's actual secrets from the files that hold them (private keys in
//!    PEM, kubeconfigs' `client-key-data` and `token`, the role file's secret values such as `BOOTSTRAP_TOKEN`) and
//!    replaces every occurrence — also each 64-column line of a PEM body (a journal logs line by line), the body
//!    joined, and the base64 of the whole file (what a kubeconfig embeds).
//! 2. **By shape**, for secrets it was not told about: PEM `PRIVATE KEY` blocks, bootstrap tokens
//!    (`[a-z0-9]{6}.[a-z0-9]{16}` → the id is kept, the secret goes), and the values of `client-key-data:`,
//!    `token:` and secret-named `KEY=value` lines.
//!
//! [`Secrets::leaks`] then checks the result by content: the bundle is refused (nothing written) if any known
//! secret is still there. Pure: the caller reads the files.

use crate::role_file::values::BootstrapToken;
use base64::Engine;

/// What a scrubbed secret reads as (the same marker the role file's [`Secret`](crate::role_file::Secret) prints).
pub use crate::role_file::values::REDACTED;

/// Shorter strings are not treated as secrets by content (they would match ordinary text).
const MIN_SECRET_LEN: usize = 12;

/// The node's secrets, learned from the files that hold them.
#[derive(Debug, Default, Clone)]
pub struct Secrets {
    needles: Vec<String>,
    /// What was learned, by kind, for the bundle's report (no values).
    pub kinds: Vec<String>,
}

impl Secrets {
    pub fn new() -> Secrets {
        Secrets::default()
    }

    /// Adds one secret value (ignored when too short to match safely).
    pub fn add(&mut self, value: &str) {
        let value = value.trim();
        if value.len() >= MIN_SECRET_LEN && !self.needles.iter().any(|n| n == value) {
            self.needles.push(value.to_string());
        }
    }

    fn note(&mut self, kind: String) {
        if !self.kinds.contains(&kind) {
            self.kinds.push(kind);
        }
    }

    /// Learns the secrets in a file's text. `name` only labels what was learned.
    pub fn learn_file(&mut self, name: &str, text: &str) {
        let blocks = pem_private_blocks(text);
        if !blocks.is_empty() {
            self.note(format!("private key ({name})"));
            let whole = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
            self.add(&whole);
        }
        for block in blocks {
            let body: Vec<&str> = block
                .lines()
                .filter(|l| !l.starts_with("-----"))
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            for line in &body {
                self.add(line);
            }
            self.add(&body.concat());
            self.add(block);
        }
        for line in text.lines() {
            let trimmed = line.trim();
            if let Some(value) = yaml_secret_value(trimmed) {
                self.note(format!("kubeconfig credential ({name})"));
                self.add(value);
                if let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(value)
                    && let Ok(decoded) = String::from_utf8(decoded)
                {
                    self.learn_file(name, &decoded);
                }
                if let Some((id, secret)) = split_token(value) {
                    self.add(&format!("{id}.{secret}"));
                    self.add_token_secret(secret);
                }
            }
            if let Some(value) = bind_secret_value(trimmed) {
                self.note(format!("TSIG key ({name})"));
                self.add(value);
            }
            if let Some((key, value)) = env_secret(trimmed) {
                self.note(format!("{key} ({name})"));
                self.add(value);
                if let Some((_, secret)) = split_token(value) {
                    self.add_token_secret(secret);
                }
            }
        }
    }

    /// Learns a TSIG key file (`DNS_UPDATE_TSIG_FILE`): the secret of a `tsig-keygen` clause or the bare base64
    /// line, and the whole file base64-encoded (as user data's `encoding: b64` carries it).
    pub fn learn_tsig_key_file(&mut self, name: &str, text: &str) {
        self.note(format!("TSIG key ({name})"));
        self.add(&base64::engine::general_purpose::STANDARD.encode(text.as_bytes()));
        for line in text.lines().map(str::trim) {
            if let Some(value) = bind_secret_value(line) {
                self.add(value);
            } else if !line.is_empty()
                && !line.starts_with('#')
                && !line.starts_with("//")
                && !line.contains(' ')
                && !line.contains('{')
                && !line.contains('}')
            {
                self.add(line);
            }
        }
    }

    /// A bootstrap token's 16-character secret (long enough to match on its own).
    fn add_token_secret(&mut self, secret: &str) {
        if !self.needles.iter().any(|n| n == secret) {
            self.needles.push(secret.to_string());
        }
    }

    /// The text with every known secret and every secret-shaped value replaced, and how many replacements.
    pub fn scrub(&self, text: &str) -> (String, usize) {
        let mut count = 0;
        let mut out = replace_pem_blocks(text, &mut count);
        let mut needles: Vec<&String> = self.needles.iter().collect();
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        for needle in needles {
            let n = out.matches(needle.as_str()).count();
            if n > 0 {
                count += n;
                out = out.replace(needle.as_str(), REDACTED);
            }
        }
        let mut lines: Vec<String> = Vec::new();
        for line in out.split_inclusive('\n') {
            let (body, end) = match line.strip_suffix('\n') {
                Some(b) => (b, "\n"),
                None => (line, ""),
            };
            let mut body = body.to_string();
            if let Some(value) = yaml_secret_value(body.trim())
                && value != REDACTED
            {
                body = body.replacen(value, REDACTED, 1);
                count += 1;
            }
            if let Some((_, value)) = env_secret(body.trim())
                && value != REDACTED
            {
                let value = value.to_string();
                body = body.replacen(&value, REDACTED, 1);
                count += 1;
            }
            let (body, n) = scrub_token_shapes(&body);
            count += n;
            lines.push(body + end);
        }
        (lines.concat(), count)
    }

    /// How many known secrets (and PEM private keys of any origin) are still in `text`: 0 when clean.
    pub fn leaks(&self, text: &str) -> usize {
        self.needles
            .iter()
            .filter(|n| text.contains(n.as_str()))
            .count()
            + pem_private_blocks(text).len()
    }

    /// How many secret values are known.
    pub fn len(&self) -> usize {
        self.needles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }
}

/// The PEM blocks of private keys (`-----BEGIN … PRIVATE KEY-----` … `-----END … PRIVATE KEY-----`).
fn pem_private_blocks(text: &str) -> Vec<&str> {
    let mut blocks = Vec::new();
    let mut rest = text;
    let mut offset = 0;
    while let Some(begin) = rest.find("-----BEGIN ") {
        let after = &rest[begin..];
        let Some(header_end) = after
            .find("-----\n")
            .or_else(|| after[11..].find("-----").map(|i| i + 11))
        else {
            break;
        };
        let header = &after[..header_end];
        if let Some(end) = after.find("-----END ")
            && let Some(close) = after[end + 9..].find("-----")
        {
            let stop = end + 9 + close + 5;
            if header.contains("PRIVATE KEY") {
                blocks.push(&text[offset + begin..offset + begin + stop]);
            }
            offset += begin + stop;
            rest = &text[offset..];
        } else {
            break;
        }
    }
    blocks
}

fn replace_pem_blocks(text: &str, count: &mut usize) -> String {
    let mut out = text.to_string();
    for block in pem_private_blocks(text) {
        let n = out.matches(block).count();
        *count += n;
        out = out.replace(block, "<redacted private key>");
    }
    out
}

/// `client-key-data: VALUE`, `token: VALUE`, `client-key: …`-style YAML lines: the value.
fn yaml_secret_value(line: &str) -> Option<&str> {
    let line = line.strip_prefix("- ").unwrap_or(line);
    for key in ["client-key-data:", "token:", "password:"] {
        if let Some(value) = line.strip_prefix(key) {
            let value = value.trim().trim_matches('"').trim_matches('\'');
            if !value.is_empty() {
                return Some(value);
            }
        }
    }
    None
}

/// `KEY=value` with a secret-looking key (as the role file's redaction decides): the key and the value.
fn env_secret(line: &str) -> Option<(&str, &str)> {
    let line = line.strip_prefix("export ").unwrap_or(line);
    let (key, value) = line.split_once('=')?;
    let key = key.trim();
    if key.is_empty()
        || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        || !crate::role_file::env_syntax::looks_secret(key)
    {
        return None;
    }
    let value = value.trim().trim_matches('"').trim_matches('\'');
    (!value.is_empty()).then_some((key, value))
}

/// `abcdef.0123456789abcdef` → (`abcdef`, `0123456789abcdef`) when the whole value is a bootstrap token (as the
/// role file's [`BootstrapToken::parse`] decides).
fn split_token(value: &str) -> Option<(&str, &str)> {
    BootstrapToken::parse(value).ok()?;
    value.split_once('.')
}

/// Bootstrap-token-shaped words anywhere in a line: the id stays, the secret goes.
fn scrub_token_shapes(line: &str) -> (String, usize) {
    let bytes = line.as_bytes();
    let tokenish = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut out = String::with_capacity(line.len());
    let mut count = 0;
    let mut i = 0;
    while i < bytes.len() {
        let boundary_before = i == 0 || !tokenish(bytes[i - 1]);
        if boundary_before
            && i + 23 <= bytes.len()
            && bytes[i..i + 6].iter().all(|b| tokenish(*b))
            && bytes[i + 6] == b'.'
            && bytes[i + 7..i + 23].iter().all(|b| tokenish(*b))
            && (i + 23 == bytes.len() || !tokenish(bytes[i + 23]))
            && bytes[i + 7..i + 23].iter().any(|b| b.is_ascii_digit())
        {
            out.push_str(&line[i..i + 7]);
            out.push_str(REDACTED);
            count += 1;
            i += 23;
        } else {
            let c = line[i..].chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
    }
    (out, count)
}

/// The value of a BIND `secret "…";` statement (a TSIG key clause), if the line is one.
fn bind_secret_value(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("secret")?.trim_start();
    let rest = rest.strip_prefix('"')?;
    let value = &rest[..rest.find('"')?];
    (!value.is_empty()).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "-----BEGIN PRIVATE KEY-----\n\
        MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgevZzL1gdAFr88hb2\n\
        OF/2NxApJCzGCEDdfSp6VQO30hyhRANCAAQRWz+jn65BtOMvdyHKcvjBeBSDZH2r\n\
        1RTwjmYSi9R/zpBnuQ4EiMnCqfMPWiZqB4QdbAd0E7oH50VpuZ1P087G\n\
        -----END PRIVATE KEY-----\n";
    const TOKEN: &str = "abcdef.0123456789abcdef";

    fn learned() -> Secrets {
        let mut s = Secrets::new();
        s.learn_file("/etc/kubernetes/pki/ca.key", KEY);
        s.learn_file(
            "/etc/sysconfig/kubernetes-minions",
            &format!("CLUSTER_NAME=prod\nBOOTSTRAP_TOKEN={TOKEN}\n"),
        );
        let kubeconfig = format!(
            "users:\n- name: x\n  user:\n    client-key-data: {}\n",
            base64::engine::general_purpose::STANDARD.encode(KEY)
        );
        s.learn_file("/etc/kubernetes/admin.conf", &kubeconfig);
        s
    }

    #[test]
    fn known_secrets_are_gone_in_every_form_a_log_can_hold() {
        let s = learned();
        let body_line = KEY.lines().nth(1).expect("line");
        let b64 = base64::engine::general_purpose::STANDARD.encode(KEY);
        let text = format!(
            "journal: kubelet[1]: {body_line}\nwhole:\n{KEY}\nembedded: {b64}\nsecret alone: 0123456789abcdef\n\
             token: {TOKEN}\nflag --token={TOKEN} done\n"
        );
        assert!(s.leaks(&text) > 0);
        let (clean, n) = s.scrub(&text);
        assert_eq!(s.leaks(&clean), 0, "{clean}");
        assert!(n >= 5, "{n}: {clean}");
        assert!(clean.contains("abcdef.<redacted>") || clean.contains("<redacted>"));
        assert!(!clean.contains("0123456789abcdef"), "{clean}");
        assert!(!clean.contains(body_line), "{clean}");
    }

    #[test]
    fn unknown_secrets_are_caught_by_their_shape() {
        let s = Secrets::new();
        let text = format!(
            "{KEY}token: zzzzzz.zzzzzzzzzzzzzzz9\nTSIG_KEY=c2VjcmV0IHRzaWcga2V5\nclient-key-data: QUJD\n\
             the id stays: qwerty.1234567890asdfgh here\nNODE=minion1\n"
        );
        let (clean, _) = s.scrub(&text);
        assert!(!clean.contains("MIGHAgEA"), "{clean}");
        assert!(!clean.contains("zzzzzzzzzzzzzzz9"), "{clean}");
        assert!(!clean.contains("c2VjcmV0IHRzaWcga2V5"), "{clean}");
        assert!(!clean.contains("QUJD"), "{clean}");
        assert!(clean.contains("qwerty.<redacted> here"), "{clean}");
        assert!(clean.contains("NODE=minion1"), "{clean}");
    }

    #[test]
    fn ordinary_text_is_left_alone() {
        let s = learned();
        let text = "phase ready since 12:00:01Z\nunit kubelet.service active/running\nsha256:0123abcd\n\
                    masters.local.k8s → 10.79.0.10 (ttl 1 s)\n";
        let (clean, n) = s.scrub(text);
        assert_eq!(clean, text);
        assert_eq!(n, 0);
    }

    #[test]
    fn public_certificates_are_not_secrets() {
        let mut s = Secrets::new();
        let cert =
            "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ\n-----END CERTIFICATE-----\n";
        s.learn_file("ca.crt", cert);
        assert!(s.is_empty());
        assert_eq!(s.scrub(cert).0, cert);
    }

    #[test]
    fn tsig_keys_are_learned_from_clauses_bare_files_and_user_data() {
        let clause = "key \"k8s-agent\" {\n\talgorithm hmac-sha256;\n\tsecret \"DHTzaW3PXtTTty1P/+6QxydDLmwTkfa6EDVL+MQZkjc=\";\n};\n";
        let mut secrets = Secrets::new();
        secrets.learn_tsig_key_file("/etc/k8s-agent/dns-update.key", clause);
        let (scrubbed, n) =
            secrets.scrub("signed with DHTzaW3PXtTTty1P/+6QxydDLmwTkfa6EDVL+MQZkjc= today");
        assert!(n >= 1 && !scrubbed.contains("DHTzaW3P"), "{scrubbed}");
        let b64 = base64::engine::general_purpose::STANDARD.encode(clause.as_bytes());
        assert_eq!(
            secrets.leaks(&format!("content: {b64}")),
            1,
            "user data carries the file base64-encoded"
        );
        let mut bare = Secrets::new();
        bare.learn_tsig_key_file("/k", "# a comment\nc2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0\n");
        assert_eq!(bare.leaks("x c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0 y"), 1);
        // Any file holding a clause (a copy in a journal, a config) teaches it too.
        let mut any = Secrets::new();
        any.learn_file("/etc/bind/named.conf", clause);
        assert_eq!(any.leaks("DHTzaW3PXtTTty1P/+6QxydDLmwTkfa6EDVL+MQZkjc="), 1);
    }
}
