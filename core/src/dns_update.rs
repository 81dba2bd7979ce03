//! Self-registration over RFC 2136 (pure): what a node adds its address to, the TSIG key it signs the UPDATE
//! with (read from the key file user data writes), and what a server's answer means to the operator.
//!
//! Opt-in per role file (`DNS_UPDATE_SERVER` and friends, see [`crate::role_file`]). A minion registers right after
//! its host checks — before it waits for the masters, so its address is in `minions.<cluster>.<domain>` (and
//! `weave-core.…` for a core member) before any minion's Weave decision can need it; a master registers once its
//! join objects exist, so a minion that resolves `masters.…` finds a master it can join. The agent re-asserts its
//! records whenever it restarts; `k8s-agent dns-deregister` (the unit's `ExecStop=`) deletes exactly the records
//! the state says were added (this address, these names), so a clean stop or shutdown leaves no stale record. A
//! node that dies without stopping (power loss, a terminated instance) leaves its record behind: something that
//! knows the fleet (the seeds' Auto Scaling Lambda, or a periodic sweep of records whose nodes are gone) must
//! reconcile it — the same limit kops' dns-controller has.
//!
//! The network side (reading the key file, source address, the signed UPDATE) is `k8s_agent::edge::dns_update`.

use crate::role_file::values::{DnsName, REDACTED};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

/// TTL of the records the agent adds, unless `DNS_UPDATE_TTL` says otherwise.
pub const DEFAULT_TTL_SECS: u32 = 30;
/// The largest TTL `DNS_UPDATE_TTL` may set (one day).
pub const MAX_TTL_SECS: u32 = 86_400;
/// A key file is read up to this size (a BIND key clause is ~100 bytes).
pub const MAX_KEY_FILE_BYTES: usize = 4096;
/// Shortest secret accepted (RFC 8945 §6: not shorter than half the HMAC's output; 128 bits for SHA-256).
pub const MIN_SECRET_BYTES: usize = 16;

/// The TSIG algorithms the agent signs with (the HMAC-SHA-2 family RFC 8945 recommends; MD5 and SHA-1 are not
/// offered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TsigAlgorithmName {
    #[default]
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

impl TsigAlgorithmName {
    /// `hmac-sha256`, …: the name BIND's `algorithm` statement and `tsig-keygen -a` use.
    pub fn parse(value: &str) -> Option<TsigAlgorithmName> {
        match value.trim_end_matches('.') {
            "hmac-sha256" => Some(TsigAlgorithmName::HmacSha256),
            "hmac-sha384" => Some(TsigAlgorithmName::HmacSha384),
            "hmac-sha512" => Some(TsigAlgorithmName::HmacSha512),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TsigAlgorithmName::HmacSha256 => "hmac-sha256",
            TsigAlgorithmName::HmacSha384 => "hmac-sha384",
            TsigAlgorithmName::HmacSha512 => "hmac-sha512",
        }
    }
}

impl fmt::Display for TsigAlgorithmName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A checked `DNS_UPDATE_*` configuration: where to send the UPDATE, for which zone, signed with which key, and
/// which names get this node's address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DnsUpdateConfig {
    /// The primary server that accepts updates for the zone (port 53 unless given).
    pub server: SocketAddr,
    /// The zone the records are in (the UPDATE's zone section).
    pub zone: DnsName,
    /// The TSIG key's name, as the server knows it.
    pub key_name: DnsName,
    pub algorithm: TsigAlgorithmName,
    /// The file holding the secret (user data writes it, mode 0600): a BIND key clause or the base64 secret.
    pub key_file: PathBuf,
    /// The full names this node's address is added to, e.g. `minions.prod.k8s`.
    pub records: Vec<DnsName>,
    pub ttl_secs: u32,
}

impl DnsUpdateConfig {
    /// `minions.prod.k8s via 10.0.0.2:53 (zone k8s, TSIG k8s-agent hmac-sha256)`.
    pub fn describe(&self) -> String {
        format!(
            "{} via {} (zone {}, TSIG {} {})",
            self.record_list(),
            self.server,
            self.zone,
            self.key_name,
            self.algorithm
        )
    }

    /// The record names, comma-separated.
    pub fn record_list(&self) -> String {
        self.records
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Parse `DNS_UPDATE_SERVER`: an IP address, optionally with a port (`10.0.0.2`, `10.0.0.2:5353`, `[fd00::2]:53`).
pub fn parse_server(value: &str) -> Option<SocketAddr> {
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return (addr.port() != 0).then_some(addr);
    }
    value
        .parse::<std::net::IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, 53))
}

/// Whether `name` is `zone` or below it.
pub fn in_zone(name: &DnsName, zone: &DnsName) -> bool {
    let (name, zone) = (name.as_str(), zone.as_str());
    name == zone
        || name
            .strip_suffix(zone)
            .is_some_and(|prefix| prefix.ends_with('.'))
}

/// A TSIG key: name, algorithm and the secret bytes. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct TsigKey {
    pub name: DnsName,
    pub algorithm: TsigAlgorithmName,
    secret: Vec<u8>,
}

impl TsigKey {
    /// The secret, for the one place that signs with it.
    pub fn secret(&self) -> &[u8] {
        &self.secret
    }
}

impl fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TsigKey")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .field("secret", &REDACTED)
            .finish()
    }
}

/// Why a key file cannot be used. The messages never quote the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyFileProblem {
    /// Neither a BIND key clause nor one base64 line.
    Syntax { line: usize, what: String },
    /// The secret is not base64.
    NotBase64,
    /// The secret decodes to fewer than [`MIN_SECRET_BYTES`] bytes.
    TooShort { bytes: usize },
    /// The clause names another key than `DNS_UPDATE_TSIG_NAME`.
    OtherName { found: String },
    /// The clause gives another algorithm than `DNS_UPDATE_TSIG_ALGORITHM`.
    OtherAlgorithm { found: String },
    /// More than one key clause.
    SeveralKeys,
}

impl fmt::Display for KeyFileProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyFileProblem::Syntax { line, what } => write!(
                f,
                "line {line}: {what} — write the `key \"NAME\" {{ algorithm …; secret \"…\"; }};` clause \
                 `tsig-keygen` prints, or only the base64 secret"
            ),
            KeyFileProblem::NotBase64 => f.write_str(
                "the secret is not base64 — copy it exactly as `tsig-keygen` printed it",
            ),
            KeyFileProblem::TooShort { bytes } => write!(
                f,
                "the secret is {bytes} bytes, fewer than {MIN_SECRET_BYTES} — make a new key with `tsig-keygen -a \
                 hmac-sha256 NAME`"
            ),
            KeyFileProblem::OtherName { found } => write!(
                f,
                "it holds the key {found:?}, not the one DNS_UPDATE_TSIG_NAME names — make them the same"
            ),
            KeyFileProblem::OtherAlgorithm { found } => write!(
                f,
                "it gives algorithm {found:?}, not the one DNS_UPDATE_TSIG_ALGORITHM names — make them the same \
                 (hmac-sha256, hmac-sha384 or hmac-sha512)"
            ),
            KeyFileProblem::SeveralKeys => {
                f.write_str("it holds more than one key clause — keep the one this node signs with")
            }
        }
    }
}

/// Parse a key file: the clause BIND's `tsig-keygen` prints (`key "name" { algorithm hmac-sha256; secret
/// "…"; };`, `#`, `//` and `/* */` comments allowed), or a file holding only the base64 secret. The clause's name
/// and algorithm must be the configured ones.
pub fn parse_key_file(
    text: &str,
    name: &DnsName,
    algorithm: TsigAlgorithmName,
) -> Result<TsigKey, KeyFileProblem> {
    let tokens = tokenize(text)?;
    let secret_b64 = if tokens.first().is_some_and(|t| t.text == "key") {
        parse_clause(&tokens, name, algorithm)?
    } else {
        match tokens.as_slice() {
            [only] if !only.quoted => only.text.clone(),
            [] => {
                return Err(KeyFileProblem::Syntax {
                    line: 1,
                    what: "the file is empty".to_string(),
                });
            }
            [_, second, ..] => {
                return Err(KeyFileProblem::Syntax {
                    line: second.line,
                    what: "more than the secret on its own".to_string(),
                });
            }
            [only] => {
                return Err(KeyFileProblem::Syntax {
                    line: only.line,
                    what: "a quoted string where the bare secret or `key` was expected".to_string(),
                });
            }
        }
    };
    use base64::Engine as _;
    let secret = base64::engine::general_purpose::STANDARD
        .decode(secret_b64.as_bytes())
        .map_err(|_| KeyFileProblem::NotBase64)?;
    if secret.len() < MIN_SECRET_BYTES {
        return Err(KeyFileProblem::TooShort {
            bytes: secret.len(),
        });
    }
    Ok(TsigKey {
        name: name.clone(),
        algorithm,
        secret,
    })
}

#[derive(Debug)]
struct Token {
    text: String,
    quoted: bool,
    line: usize,
}

fn tokenize(text: &str) -> Result<Vec<Token>, KeyFileProblem> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            c if c.is_whitespace() => {}
            '#' => skip_line(&mut chars, &mut line),
            '/' if chars.peek() == Some(&'/') => skip_line(&mut chars, &mut line),
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let start = line;
                let mut last = ' ';
                loop {
                    match chars.next() {
                        Some('/') if last == '*' => break,
                        Some(c) => {
                            if c == '\n' {
                                line += 1;
                            }
                            last = c;
                        }
                        None => {
                            return Err(KeyFileProblem::Syntax {
                                line: start,
                                what: "a /* comment that is not closed".to_string(),
                            });
                        }
                    }
                }
            }
            '{' | '}' | ';' => tokens.push(Token {
                text: c.to_string(),
                quoted: false,
                line,
            }),
            '"' => {
                let start = line;
                let mut value = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\n') | None => {
                            return Err(KeyFileProblem::Syntax {
                                line: start,
                                what: "a quoted string that is not closed on its line".to_string(),
                            });
                        }
                        Some(c) => value.push(c),
                    }
                }
                tokens.push(Token {
                    text: value,
                    quoted: true,
                    line: start,
                });
            }
            c => {
                let mut value = c.to_string();
                while let Some(&next) = chars.peek() {
                    if next.is_whitespace() || matches!(next, '{' | '}' | ';' | '"') {
                        break;
                    }
                    value.push(next);
                    chars.next();
                }
                tokens.push(Token {
                    text: value,
                    quoted: false,
                    line,
                });
            }
        }
    }
    Ok(tokens)
}

fn skip_line(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, line: &mut usize) {
    for c in chars.by_ref() {
        if c == '\n' {
            *line += 1;
            break;
        }
    }
}

/// `key NAME { (algorithm A; | secret "S";)* };` — returns the secret's base64.
fn parse_clause(
    tokens: &[Token],
    name: &DnsName,
    algorithm: TsigAlgorithmName,
) -> Result<String, KeyFileProblem> {
    let syntax = |token: Option<&Token>, what: &str| KeyFileProblem::Syntax {
        line: token.or(tokens.last()).map_or(1, |t| t.line),
        what: what.to_string(),
    };
    let mut it = tokens.iter().skip(1);
    let key_name = it
        .next()
        .filter(|t| !matches!(t.text.as_str(), "{" | "}" | ";") || t.quoted)
        .ok_or_else(|| syntax(None, "`key` without a name"))?;
    if key_name.text.trim_end_matches('.') != name.as_str() {
        return Err(KeyFileProblem::OtherName {
            found: key_name.text.clone(),
        });
    }
    let open = it.next();
    if !open.is_some_and(|t| t.text == "{" && !t.quoted) {
        return Err(syntax(open, "`{` expected after the key's name"));
    }
    let mut secret = None;
    let mut found_algorithm = None;
    loop {
        let statement = it.next();
        match statement.map(|t| (t.text.as_str(), t.quoted)) {
            Some(("}", false)) => break,
            Some(("algorithm", false)) => {
                let value = it
                    .next()
                    .ok_or_else(|| syntax(statement, "`algorithm` without a value"))?;
                found_algorithm = Some(value.text.clone());
            }
            Some(("secret", false)) => {
                let value = it
                    .next()
                    .filter(|t| t.quoted)
                    .ok_or_else(|| syntax(statement, "`secret` needs a quoted value"))?;
                secret = Some(value.text.clone());
            }
            Some((other, _)) => {
                return Err(syntax(
                    statement,
                    &format!("unexpected {other:?} in the key clause (only algorithm and secret)"),
                ));
            }
            None => return Err(syntax(None, "the key clause is not closed with `};`")),
        }
        let end = it.next();
        if !end.is_some_and(|t| t.text == ";" && !t.quoted) {
            return Err(syntax(end.or(statement), "`;` expected after a statement"));
        }
    }
    let end = it.next();
    if !end.is_some_and(|t| t.text == ";" && !t.quoted) {
        return Err(syntax(end, "`;` expected after the key clause's `}`"));
    }
    if let Some(extra) = it.next() {
        return Err(if extra.text == "key" {
            KeyFileProblem::SeveralKeys
        } else {
            syntax(Some(extra), "something after the key clause")
        });
    }
    match found_algorithm {
        Some(found) if TsigAlgorithmName::parse(&found.to_ascii_lowercase()) != Some(algorithm) => {
            return Err(KeyFileProblem::OtherAlgorithm { found });
        }
        _ => {}
    }
    secret.ok_or_else(|| syntax(None, "the key clause has no `secret`"))
}

/// What an UPDATE's response code means, for the status line: the code's name and what the operator does.
pub fn explain_rcode(rcode: &str, tsig_error: Option<&str>) -> String {
    match (rcode, tsig_error) {
        ("NOTAUTH", Some("BADSIG")) | (_, Some("BADSIG")) => {
            "the server does not accept the signature (TSIG BADSIG): the secret in the key file is not the one \
             the server has for this key name"
                .to_string()
        }
        ("NOTAUTH", Some("BADKEY")) | (_, Some("BADKEY")) => {
            "the server does not know this key name or algorithm (TSIG BADKEY): make DNS_UPDATE_TSIG_NAME and \
             DNS_UPDATE_TSIG_ALGORITHM the server's"
                .to_string()
        }
        (_, Some("BADTIME")) => {
            "the server's clock and this node's differ by more than the TSIG fudge (BADTIME): fix the time \
             (chrony/systemd-timesyncd)"
                .to_string()
        }
        ("NOTAUTH", _) => "the server is not authoritative for the zone, or refused the key (NOTAUTH): check \
                           DNS_UPDATE_ZONE and that the key is allowed to update it"
            .to_string(),
        ("REFUSED", _) => "the server refused the update (REFUSED): its update policy (allow-update / \
                           update-policy) must grant this key the zone"
            .to_string(),
        ("NOTZONE", _) => {
            "a record is not inside the zone (NOTZONE): check DNS_UPDATE_ZONE and DNS_UPDATE_RECORDS".to_string()
        }
        ("SERVFAIL", _) => "the server failed to apply it (SERVFAIL): see its log (a read-only zone file, a \
                            journal it cannot write)"
            .to_string(),
        (other, _) => format!("the server answered {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> DnsName {
        DnsName::parse(s).expect("test name")
    }

    const SECRET: &str = "Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5d2FsZG8=";

    #[test]
    fn reads_what_tsig_keygen_prints() {
        let text = format!(
            "key \"k8s-agent\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{SECRET}\";\n}};\n"
        );
        let key = parse_key_file(&text, &name("k8s-agent"), TsigAlgorithmName::HmacSha256)
            .expect("tsig-keygen output");
        assert_eq!(key.secret(), b"foobarbazquxquuxcorgegraultgarplywaldo");
        assert!(!format!("{key:?}").contains("foobar"));
    }

    #[test]
    fn reads_a_bare_secret_and_comments() {
        let text = format!("# made by tsig-keygen\n{SECRET}\n");
        parse_key_file(&text, &name("k"), TsigAlgorithmName::HmacSha512).expect("bare secret");
        let text = format!("/* a\n comment */ key k. {{ // trailing\n secret \"{SECRET}\"; }};");
        parse_key_file(&text, &name("k"), TsigAlgorithmName::HmacSha256).expect("comments");
    }

    #[test]
    fn names_what_is_wrong_without_the_secret() {
        let algo = TsigAlgorithmName::HmacSha256;
        let other = format!("key \"other\" {{ algorithm hmac-sha256; secret \"{SECRET}\"; }};");
        assert_eq!(
            parse_key_file(&other, &name("k8s-agent"), algo),
            Err(KeyFileProblem::OtherName {
                found: "other".into()
            })
        );
        let sha1 = format!("key k {{ algorithm hmac-sha1; secret \"{SECRET}\"; }};");
        assert!(matches!(
            parse_key_file(&sha1, &name("k"), algo),
            Err(KeyFileProblem::OtherAlgorithm { .. })
        ));
        assert_eq!(
            parse_key_file("c2hvcnQ=", &name("k"), algo),
            Err(KeyFileProblem::TooShort { bytes: 5 })
        );
        assert_eq!(
            parse_key_file("not*base64!", &name("k"), algo),
            Err(KeyFileProblem::NotBase64)
        );
        let unclosed = "key k { secret \"abc";
        let err = parse_key_file(unclosed, &name("k"), algo).expect_err("unclosed");
        assert!(!err.to_string().contains("abc"), "{err}");
        assert!(matches!(
            parse_key_file("key k { secret \"x\"; };\nkey k { };", &name("k"), algo),
            Err(KeyFileProblem::SeveralKeys)
        ));
        assert!(matches!(
            parse_key_file("", &name("k"), algo),
            Err(KeyFileProblem::Syntax { .. })
        ));
        assert!(matches!(
            parse_key_file("key k { secret \"x\" }", &name("k"), algo),
            Err(KeyFileProblem::Syntax { .. })
        ));
    }

    #[test]
    fn servers_and_zones() {
        assert_eq!(parse_server("10.0.0.2"), "10.0.0.2:53".parse().ok());
        assert_eq!(parse_server("10.0.0.2:5353"), "10.0.0.2:5353".parse().ok());
        assert_eq!(parse_server("[fd00::2]:53"), "[fd00::2]:53".parse().ok());
        assert_eq!(parse_server("fd00::2"), "[fd00::2]:53".parse().ok());
        assert_eq!(parse_server("ns1.example"), None);
        assert_eq!(parse_server("10.0.0.2:0"), None);
        assert!(in_zone(&name("minions.prod.k8s"), &name("k8s")));
        assert!(in_zone(&name("k8s"), &name("k8s")));
        assert!(!in_zone(&name("minions.prod.xk8s"), &name("k8s")));
        assert!(!in_zone(&name("k8s"), &name("prod.k8s")));
    }

    #[test]
    fn refusals_say_what_to_do() {
        assert!(explain_rcode("NOTAUTH", Some("BADSIG")).contains("secret"));
        assert!(explain_rcode("NOTAUTH", Some("BADKEY")).contains("DNS_UPDATE_TSIG_NAME"));
        assert!(explain_rcode("REFUSED", None).contains("update-policy"));
        assert!(explain_rcode("YXDOMAIN", None).contains("YXDOMAIN"));
    }
}
