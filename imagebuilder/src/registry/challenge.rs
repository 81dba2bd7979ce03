//! `WWW-Authenticate` challenges (RFC 9110 §11.6.1) as registries send them on a 401, parsed into scheme and
//! parameters. Pure: no I/O.
//!
//! Registries send `Bearer realm="https://auth.example/token",service="registry.example",scope="repository:x:pull"`;
//! values may be quoted (with `\` escapes, and commas inside, as in `scope="repository:x:pull,push"`) or bare tokens,
//! and one header may hold several challenges (`Basic realm="x", Bearer realm="y"`). Parameter names are
//! case-insensitive and kept lower-case; the scheme is kept lower-case too.

use std::collections::BTreeMap;

/// One challenge: `scheme` (lower-case) and its `name=value` parameters (names lower-case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

/// Parses one `WWW-Authenticate` header value into its challenges, in order. Errors say where the text stops
/// making sense.
pub fn parse_www_authenticate(header: &str) -> Result<Vec<Challenge>, String> {
    let mut p = Parser {
        s: header.as_bytes(),
        i: 0,
    };
    let mut challenges: Vec<Challenge> = Vec::new();
    loop {
        p.skip_ws_and_commas();
        if p.done() {
            break;
        }
        let scheme = p
            .token()
            .ok_or_else(|| p.error("expected an auth scheme"))?;
        let mut params = BTreeMap::new();
        // At most one space-separated token68 (e.g. `Negotiate abc==`) or a list of auth-params.
        p.skip_ws();
        loop {
            let save = p.i;
            p.skip_ws_and_commas();
            if p.done() {
                break;
            }
            let Some(name) = p.token() else {
                return Err(p.error("expected a parameter name"));
            };
            p.skip_ws();
            if p.peek() != Some(b'=') {
                // Not `name=`: the start of the next challenge.
                p.i = save;
                break;
            }
            p.i += 1;
            p.skip_ws();
            let value = if p.peek() == Some(b'"') {
                p.quoted()?
            } else {
                p.token68_or_token()
                    .ok_or_else(|| p.error("expected a parameter value"))?
            };
            params.insert(name.to_ascii_lowercase(), value);
            p.skip_ws();
            match p.peek() {
                None | Some(b',') => {}
                Some(_) => return Err(p.error("expected ',' between parameters")),
            }
        }
        challenges.push(Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params,
        });
    }
    Ok(challenges)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn done(&self) -> bool {
        self.i >= self.s.len()
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    fn skip_ws_and_commas(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.i += 1;
        }
    }

    fn error(&self, what: &str) -> String {
        format!("{what} at byte {}", self.i)
    }

    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> Option<String> {
        let start = self.i;
        while self.peek().is_some_and(&f) {
            self.i += 1;
        }
        (self.i > start).then(|| String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    fn token(&mut self) -> Option<String> {
        self.take_while(is_tchar)
    }

    /// A bare value: token characters plus `/` and trailing `=` (token68), which some servers leave unquoted.
    fn token68_or_token(&mut self) -> Option<String> {
        self.take_while(|b| is_tchar(b) || b == b'/' || b == b'=' || b == b':')
    }

    fn quoted(&mut self) -> Result<String, String> {
        let open = self.i;
        self.i += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err(format!("unterminated quoted value starting at byte {open}")),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(String::from_utf8_lossy(&out).into_owned());
                }
                Some(b'\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(c) => {
                            out.push(c);
                            self.i += 1;
                        }
                        None => {
                            return Err(format!(
                                "unterminated quoted value starting at byte {open}"
                            ));
                        }
                    }
                }
                Some(c) => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(header: &str) -> Challenge {
        let mut all = parse_www_authenticate(header).unwrap_or_else(|e| panic!("{header}: {e}"));
        assert_eq!(all.len(), 1, "{header}: {all:?}");
        all.remove(0)
    }

    #[test]
    fn docker_hub_bearer_challenge() {
        let c = one(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:weaveworks/weave-kube:pull""#,
        );
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c.param("service"), Some("registry.docker.io"));
        assert_eq!(
            c.param("scope"),
            Some("repository:weaveworks/weave-kube:pull")
        );
    }

    #[test]
    fn commas_inside_quotes_escapes_spaces_and_case() {
        let c = one(
            r#"BEARER Realm = "https://r.example/t?x=1,y=2" , scope="repository:a/b:pull,push", error="insufficient_scope", note="say \"hi\"""#,
        );
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.param("realm"), Some("https://r.example/t?x=1,y=2"));
        assert_eq!(c.param("scope"), Some("repository:a/b:pull,push"));
        assert_eq!(c.param("error"), Some("insufficient_scope"));
        assert_eq!(c.param("note"), Some(r#"say "hi""#));
    }

    #[test]
    fn unquoted_values() {
        let c = one("Bearer realm=https://auth.example/token,service=reg.example");
        assert_eq!(c.param("realm"), Some("https://auth.example/token"));
        assert_eq!(c.param("service"), Some("reg.example"));
    }

    #[test]
    fn several_challenges_in_one_header() {
        let all = parse_www_authenticate(
            r#"Basic realm="Registry Realm", Bearer realm="https://a.example/token",scope="repository:x:pull,push""#,
        )
        .expect("parses");
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].scheme, "basic");
        assert_eq!(all[0].param("realm"), Some("Registry Realm"));
        assert_eq!(all[1].scheme, "bearer");
        assert_eq!(all[1].param("scope"), Some("repository:x:pull,push"));
    }

    #[test]
    fn bare_schemes_and_token68() {
        let all = parse_www_authenticate("Negotiate, Basic").expect("parses");
        let schemes: Vec<_> = all.iter().map(|c| c.scheme.as_str()).collect();
        assert_eq!(schemes, ["negotiate", "basic"]);
        assert!(all.iter().all(|c| c.params.is_empty()));
    }

    #[test]
    fn malformed_headers_are_errors_not_panics() {
        for h in [
            r#"Bearer realm="unterminated"#,
            r#"Bearer realm="x" junk"#,
            r#"Bearer realm="x\"#,
            "=x",
            r#"Bearer realm=, service="x""#,
        ] {
            assert!(parse_www_authenticate(h).is_err(), "{h:?} should not parse");
        }
        assert_eq!(
            parse_www_authenticate("").expect("empty is no challenge"),
            []
        );
    }
}
