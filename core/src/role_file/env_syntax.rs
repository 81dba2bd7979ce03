//! systemd `EnvironmentFile=` syntax, parsed the way systemd's `parse_env_file` (src/basic/env-file.c) does, but
//! stricter where systemd is silently lenient: what systemd would skip with a log line (or accept although it is
//! almost certainly a typo) is an error here, so a bad role file is caught by the agent with a line number instead
//! of being half-applied by the units that read the same file.
//!
//! Accepted, as systemd does:
//! - `KEY=value`; whitespace before the key, around `=` and at the end of an unquoted value is dropped;
//! - comment lines: the first non-blank character is `#` or `;` (a `#` after a value is part of the value —
//!   systemd has no trailing comments);
//! - blank lines;
//! - unquoted values: `\x` is `x`, and a backslash at the end of a line joins the next line (continuation);
//! - `'single quoted'` values: taken literally, may span lines;
//! - `"double quoted"` values: `\"`, `\\`, `` \` `` and `\$` are unescaped, backslash-newline is a continuation,
//!   any other `\x` is kept as the two characters `\x` (as the shell does);
//! - quoted and unquoted pieces are concatenated (`A="x"'y'z` is `xyz`), whitespace between pieces is dropped.
//!
//! Rejected here although systemd would go on (each with the line it starts on):
//! - a line with a key but no `=` (systemd skips it);
//! - a key that is not `[A-Za-z_][A-Za-z0-9_]*` (systemd skips it with a warning), including `export KEY=…`
//!   (shell syntax that systemd does not understand);
//! - a quote that is never closed (systemd takes the rest of the file as the value).
//!
//! Pure: works on `&str`, no I/O.

use std::fmt;

/// One `KEY=value` assignment, after unquoting, with the (1-based) line the key is on.
#[derive(Clone, PartialEq, Eq)]
pub struct EnvAssignment {
    pub key: String,
    pub value: String,
    pub line: usize,
}

impl fmt::Debug for EnvAssignment {
    /// Values of keys that look like they hold a secret are not printed (see [`looks_secret`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value: &dyn fmt::Debug = if looks_secret(&self.key) {
            &"<redacted>"
        } else {
            &self.value
        };
        f.debug_struct("EnvAssignment")
            .field("key", &self.key)
            .field("value", value)
            .field("line", &self.line)
            .finish()
    }
}

/// True for keys whose value must never be printed: the bootstrap token, and any key whose name says it holds a
/// token, secret, password, credential or private key. Used for unknown keys too, where the agent cannot know.
pub fn looks_secret(key: &str) -> bool {
    let upper = key.to_ascii_uppercase();
    [
        "TOKEN",
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "CREDENTIAL",
        "PRIVATE",
        "_KEY",
    ]
    .iter()
    .any(|word| upper.contains(word))
        || upper == "KEY"
}

/// What is wrong with a line, independent of which file it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyntaxProblem {
    /// A key without `=` (systemd ignores such lines; here it is an error).
    MissingEquals { text: String },
    /// `export KEY=value`: shell syntax, not systemd's.
    ExportPrefix { key: String },
    /// The key is not `[A-Za-z_][A-Za-z0-9_]*`.
    InvalidKey { key: String },
    /// A quote opened on this line is never closed.
    UnterminatedQuote { quote: char },
    /// The file is not UTF-8 text (the line is where the first invalid byte is).
    NotUtf8,
    /// The file is larger than the agent reads.
    TooLarge { limit: usize },
}

impl SyntaxProblem {
    /// What the operator can do about it.
    pub fn hint(&self) -> String {
        match self {
            SyntaxProblem::MissingEquals { .. } => {
                "every non-comment line must be KEY=value; start comments with '#'".to_string()
            }
            SyntaxProblem::ExportPrefix { key } => {
                format!("remove 'export': systemd's EnvironmentFile syntax is plain {key}=value")
            }
            SyntaxProblem::InvalidKey { .. } => {
                "keys are letters, digits and '_', not starting with a digit, e.g. CLUSTER_NAME"
                    .to_string()
            }
            SyntaxProblem::UnterminatedQuote { quote } => {
                format!(
                    "close the {quote}…{quote} quote (values may span lines only inside quotes)"
                )
            }
            SyntaxProblem::NotUtf8 => {
                "write the role file as UTF-8 (plain ASCII is enough)".to_string()
            }
            SyntaxProblem::TooLarge { limit } => {
                format!("a role file holds a few KEY=value lines; this one is over {limit} bytes")
            }
        }
    }
}

impl fmt::Display for SyntaxProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyntaxProblem::MissingEquals { text } => write!(f, "{text:?} has no '='"),
            SyntaxProblem::ExportPrefix { key } => write!(f, "'export {key}' is shell syntax"),
            SyntaxProblem::InvalidKey { key } => write!(f, "{key:?} is not a valid variable name"),
            SyntaxProblem::UnterminatedQuote { quote } => {
                write!(f, "the {quote} quote opened here is never closed")
            }
            SyntaxProblem::NotUtf8 => f.write_str("the file is not UTF-8 text"),
            SyntaxProblem::TooLarge { limit } => write!(f, "the file is larger than {limit} bytes"),
        }
    }
}

/// A syntax problem and the (1-based) line it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: usize,
    pub problem: SyntaxProblem,
}

/// True for a valid environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Where the character-by-character parser is (the states of systemd's parser).
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    PreKey,
    Key,
    PreValue,
    Value,
    ValueEscape,
    SingleQuote,
    DoubleQuote,
    DoubleQuoteEscape,
    Comment,
}

/// Characters a backslash escapes inside double quotes (systemd's `SHELL_NEED_ESCAPE`).
const DOUBLE_QUOTE_ESCAPABLE: &[char] = &['"', '\\', '`', '$'];

fn is_newline(c: char) -> bool {
    c == '\n' || c == '\r'
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t' || is_newline(c)
}

/// The assignment being built.
#[derive(Default)]
struct Pending {
    key: String,
    value: String,
    line: usize,
    /// Byte length of `value` before a run of unescaped, unquoted trailing whitespace (trimmed at the end).
    trim_to: Option<usize>,
    /// Line and kind of the quote currently open.
    quote_line: usize,
}

/// Parse a whole file. Assignments come back in file order; duplicates are kept (the caller decides).
pub fn parse_env_file(text: &str) -> Result<Vec<EnvAssignment>, SyntaxError> {
    let mut out = Vec::new();
    let mut state = State::PreKey;
    let mut line = 1usize;
    let mut cur = Pending::default();

    for c in text.chars() {
        match state {
            State::PreKey => {
                if c == '#' || c == ';' {
                    state = State::Comment;
                } else if !is_blank(c) {
                    cur = Pending {
                        line,
                        ..Pending::default()
                    };
                    cur.key.push(c);
                    state = State::Key;
                }
            }
            State::Comment => {
                // Since systemd v254 a backslash does not continue a comment: it always ends at the newline.
                if is_newline(c) {
                    state = State::PreKey;
                }
            }
            State::Key => {
                if is_newline(c) {
                    return Err(SyntaxError {
                        line: cur.line,
                        problem: SyntaxProblem::MissingEquals {
                            text: cur.key.trim_end().to_string(),
                        },
                    });
                } else if c == '=' {
                    let key = cur.key.trim_end().to_string();
                    check_key(&key, cur.line)?;
                    cur.key = key;
                    state = State::PreValue;
                } else {
                    cur.key.push(c);
                }
            }
            State::PreValue => {
                if is_newline(c) {
                    out.push(finish(&mut cur));
                    state = State::PreKey;
                } else if c == '\'' {
                    cur.quote_line = line;
                    state = State::SingleQuote;
                } else if c == '"' {
                    cur.quote_line = line;
                    state = State::DoubleQuote;
                } else if c == '\\' {
                    state = State::ValueEscape;
                } else if !is_blank(c) {
                    cur.value.push(c);
                    state = State::Value;
                }
            }
            State::Value => {
                if is_newline(c) {
                    out.push(finish(&mut cur));
                    state = State::PreKey;
                } else if c == '\\' {
                    cur.trim_to = None;
                    state = State::ValueEscape;
                } else {
                    if !is_blank(c) {
                        cur.trim_to = None;
                    } else if cur.trim_to.is_none() {
                        cur.trim_to = Some(cur.value.len());
                    }
                    cur.value.push(c);
                }
            }
            State::ValueEscape => {
                // An escaped newline is a continuation: it disappears.
                if !is_newline(c) {
                    cur.value.push(c);
                }
                state = State::Value;
            }
            State::SingleQuote => {
                if c == '\'' {
                    state = State::PreValue;
                } else {
                    cur.value.push(c);
                }
            }
            State::DoubleQuote => {
                if c == '"' {
                    state = State::PreValue;
                } else if c == '\\' {
                    state = State::DoubleQuoteEscape;
                } else {
                    cur.value.push(c);
                }
            }
            State::DoubleQuoteEscape => {
                if DOUBLE_QUOTE_ESCAPABLE.contains(&c) {
                    cur.value.push(c);
                } else if c != '\n' {
                    cur.value.push('\\');
                    cur.value.push(c);
                }
                state = State::DoubleQuote;
            }
        }
        if c == '\n' {
            line += 1;
        }
    }

    match state {
        State::PreKey | State::Comment => {}
        State::Key => {
            return Err(SyntaxError {
                line: cur.line,
                problem: SyntaxProblem::MissingEquals {
                    text: cur.key.trim_end().to_string(),
                },
            });
        }
        State::PreValue | State::Value | State::ValueEscape => out.push(finish(&mut cur)),
        State::SingleQuote => {
            return Err(SyntaxError {
                line: cur.quote_line,
                problem: SyntaxProblem::UnterminatedQuote { quote: '\'' },
            });
        }
        State::DoubleQuote | State::DoubleQuoteEscape => {
            return Err(SyntaxError {
                line: cur.quote_line,
                problem: SyntaxProblem::UnterminatedQuote { quote: '"' },
            });
        }
    }
    Ok(out)
}

fn check_key(key: &str, line: usize) -> Result<(), SyntaxError> {
    if let Some(rest) = key.strip_prefix("export")
        && rest.starts_with([' ', '\t'])
        && is_valid_key(rest.trim_start())
    {
        return Err(SyntaxError {
            line,
            problem: SyntaxProblem::ExportPrefix {
                key: rest.trim_start().to_string(),
            },
        });
    }
    if !is_valid_key(key) {
        return Err(SyntaxError {
            line,
            problem: SyntaxProblem::InvalidKey {
                key: key.to_string(),
            },
        });
    }
    Ok(())
}

fn finish(cur: &mut Pending) -> EnvAssignment {
    let mut value = std::mem::take(&mut cur.value);
    if let Some(len) = cur.trim_to.take() {
        value.truncate(len);
    }
    EnvAssignment {
        key: std::mem::take(&mut cur.key),
        value,
        line: cur.line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Vec<(String, String, usize)> {
        match parse_env_file(text) {
            Ok(entries) => entries
                .into_iter()
                .map(|e| (e.key, e.value, e.line))
                .collect(),
            Err(e) => panic!("unexpected error {e:?} for {text:?}"),
        }
    }

    fn one(text: &str) -> String {
        let entries = parse(text);
        assert_eq!(entries.len(), 1, "{text:?} gave {entries:?}");
        entries[0].1.clone()
    }

    fn err(text: &str) -> SyntaxError {
        match parse_env_file(text) {
            Ok(entries) => panic!("{text:?} parsed as {entries:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn plain_assignments_comments_and_blank_lines() {
        let text = "# written by cloud-init\n\n; another comment\nCLUSTER_NAME=cncfdemo\n  DNS_DOMAIN=k8s\n";
        assert_eq!(
            parse(text),
            vec![
                ("CLUSTER_NAME".to_string(), "cncfdemo".to_string(), 4),
                ("DNS_DOMAIN".to_string(), "k8s".to_string(), 5),
            ]
        );
    }

    #[test]
    fn the_seed_role_file_parses() {
        let text = "CLUSTER_NAME=cncfdemo\nCLOUD_PROVIDER=--cloud-provider=aws\n\
                    KUBELET_HOSTNAME=--hostname-override=ip-172-20-0-12.us-west-2.compute.internal\n";
        let entries = parse(text);
        assert_eq!(entries[1].1, "--cloud-provider=aws");
        assert_eq!(
            entries[2].1,
            "--hostname-override=ip-172-20-0-12.us-west-2.compute.internal"
        );
    }

    #[test]
    fn whitespace_around_key_equals_and_value_is_dropped() {
        assert_eq!(
            parse("  KEY \t=  value  \t\n"),
            vec![("KEY".into(), "value".into(), 1)]
        );
        assert_eq!(one("KEY=a b  c  "), "a b  c");
    }

    #[test]
    fn empty_values() {
        assert_eq!(one("KEY="), "");
        assert_eq!(one("KEY=   \n"), "");
        assert_eq!(one("KEY=\"\""), "");
    }

    #[test]
    fn no_trailing_newline_at_end_of_file() {
        assert_eq!(one("KEY=value"), "value");
    }

    #[test]
    fn crlf_line_endings() {
        assert_eq!(
            parse("A=1\r\nB=2\r\n"),
            vec![("A".into(), "1".into(), 1), ("B".into(), "2".into(), 2)]
        );
    }

    #[test]
    fn hash_after_a_value_is_part_of_the_value() {
        assert_eq!(one("KEY=value # not a comment"), "value # not a comment");
    }

    #[test]
    fn single_quotes_are_literal() {
        assert_eq!(one(r#"KEY='a \"b\" $c \\ d'"#), r#"a \"b\" $c \\ d"#);
        assert_eq!(one("KEY='two\nlines'"), "two\nlines");
    }

    #[test]
    fn double_quote_escapes_follow_systemd() {
        assert_eq!(one(r#"KEY="q\" b\\ t\` d\$""#), r#"q" b\ t` d$"#);
        // Other escapes keep their backslash, like the shell.
        assert_eq!(one(r#"KEY="a\nb\x""#), r#"a\nb\x"#);
        // Backslash-newline inside double quotes is a continuation.
        assert_eq!(one("KEY=\"one \\\ntwo\""), "one two");
        // Whitespace inside quotes is kept.
        assert_eq!(one("KEY=\"  padded  \""), "  padded  ");
    }

    #[test]
    fn unquoted_escapes_and_continuation() {
        assert_eq!(one(r"KEY=a\ b\\c\#"), r"a b\c#");
        assert_eq!(one("KEY=one\\\n  two"), "one  two");
        // An escaped trailing space is kept.
        assert_eq!(one("KEY=a\\ "), "a ");
        let entries = parse("A=one\\\ntwo\nB=3\n");
        assert_eq!(
            entries,
            vec![
                ("A".into(), "onetwo".into(), 1),
                ("B".into(), "3".into(), 3)
            ]
        );
    }

    #[test]
    fn pieces_are_concatenated() {
        assert_eq!(one(r#"KEY="x"'y'z"#), "xyz");
        assert_eq!(one(r#"KEY="x" "y""#), "xy");
    }

    #[test]
    fn comment_with_trailing_backslash_does_not_continue() {
        assert_eq!(
            parse("# comment \\\nKEY=v\n"),
            vec![("KEY".into(), "v".into(), 2)]
        );
    }

    #[test]
    fn duplicates_are_kept_for_the_caller() {
        assert_eq!(parse("A=1\nA=2\n").len(), 2);
    }

    #[test]
    fn line_without_equals_is_an_error() {
        assert_eq!(
            err("A=1\njust words\n"),
            SyntaxError {
                line: 2,
                problem: SyntaxProblem::MissingEquals {
                    text: "just words".into()
                }
            }
        );
        assert_eq!(err("A=1\nB").line, 2);
    }

    #[test]
    fn export_is_rejected_with_a_hint() {
        let e = err("export CLUSTER_NAME=prod\n");
        assert_eq!(
            e,
            SyntaxError {
                line: 1,
                problem: SyntaxProblem::ExportPrefix {
                    key: "CLUSTER_NAME".into()
                }
            }
        );
        assert!(e.problem.hint().contains("remove 'export'"));
    }

    #[test]
    fn invalid_keys_are_rejected() {
        for key in ["1ABC", "A-B", "A.B", "A B", "ÄB"] {
            let e = err(&format!("{key}=v\n"));
            assert_eq!(
                e.problem,
                SyntaxProblem::InvalidKey {
                    key: key.to_string()
                },
                "{key}"
            );
        }
        assert!(is_valid_key("_A1") && is_valid_key("a") && !is_valid_key(""));
    }

    #[test]
    fn unterminated_quotes_name_the_line_they_open_on() {
        assert_eq!(
            err("A=1\nB=\"open\n\nC=3\n"),
            SyntaxError {
                line: 2,
                problem: SyntaxProblem::UnterminatedQuote { quote: '"' }
            }
        );
        assert_eq!(
            err("B='x").problem,
            SyntaxProblem::UnterminatedQuote { quote: '\'' }
        );
    }

    #[test]
    fn lines_are_counted_through_multi_line_values() {
        let entries = parse("A='x\ny'\nB=2\n");
        assert_eq!(entries[1], ("B".into(), "2".into(), 3));
    }

    #[test]
    fn debug_hides_secret_looking_values() {
        let token = EnvAssignment {
            key: "BOOTSTRAP_TOKEN".into(),
            value: "abcdef.0123456789abcdef".into(),
            line: 1,
        };
        let shown = format!("{token:?}");
        assert!(
            !shown.contains("0123456789abcdef") && shown.contains("<redacted>"),
            "{shown}"
        );
        let plain = EnvAssignment {
            key: "CLUSTER_NAME".into(),
            value: "prod".into(),
            line: 1,
        };
        assert!(format!("{plain:?}").contains("prod"));
        assert!(
            looks_secret("AWS_SECRET_ACCESS_KEY")
                && looks_secret("JOIN_TOKEN")
                && !looks_secret("KUBELET")
        );
    }
}
