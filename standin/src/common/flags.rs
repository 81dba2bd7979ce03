//! Command lines the way the Kubernetes binaries read them (spf13/pflag), as far as the stand-ins need.
//!
//! Spelling: `--flag=value` or `--flag value`, one or two leading dashes, `_` and `-` interchangeable in names;
//! for a single-valued flag the last occurrence wins, a repeatable one (e.g. `--service-account-key-file`)
//! collects every occurrence. A boolean flag is `--flag` (true) or `--flag=<bool>` (pflag's spellings: 1, t,
//! true, TRUE, True, 0, f, false, ...); it never takes the next argument. A flag the stand-in does not read is
//! accepted and ignored; without `=` it takes the next argument as its value unless that looks like a flag (so
//! the units' boolean flags such as `--allow-privileged` work either way). Positional arguments are an error, as
//! in the real binaries; empty arguments (an unset variable in a systemd `ExecStart=`) are skipped.

use std::collections::BTreeMap;

/// The flags one stand-in reads.
pub struct Spec<'a> {
    /// The program, for messages (`kube-apiserver does not take any arguments`).
    pub program: &'a str,
    /// Flags that take a value.
    pub values: &'a [&'a str],
    /// Boolean flags.
    pub bools: &'a [&'a str],
}

/// The parsed command line: every occurrence of every known flag, in order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Parsed {
    values: BTreeMap<String, Vec<String>>,
}

impl Parsed {
    /// The last value given for `name`.
    pub fn last(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .and_then(|v| v.last())
            .map(String::as_str)
    }

    /// Every value given for `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.values
            .get(name)
            .map(|v| v.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// A boolean flag's value, `default` when not given.
    pub fn bool(&self, name: &str, default: bool) -> Result<bool, String> {
        match self.last(name) {
            None => Ok(default),
            Some(v) => parse_bool(v).ok_or_else(|| {
                format!("invalid argument {v:?} for \"--{name}\" flag: strconv.ParseBool: parsing {v:?}: invalid syntax")
            }),
        }
    }

    /// A comma-separated list flag (pflag's StringSlice): every occurrence, split on commas, trimmed, without
    /// empty items.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.all(name)
            .iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }
}

/// pflag's (Go's strconv.ParseBool) spellings.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Parses `args` (without `argv[0]`). The error is one sentence for stderr.
pub fn parse(spec: &Spec<'_>, args: &[String]) -> Result<Parsed, String> {
    let mut parsed = Parsed::default();
    let positional =
        |arg: &str| format!("{} does not take any arguments, got {arg:?}", spec.program);
    let mut rest = args.iter().peekable();
    while let Some(arg) = rest.next() {
        if arg.is_empty() {
            continue;
        }
        if arg == "--" {
            if let Some(extra) = rest.find(|a| !a.is_empty()) {
                return Err(positional(extra));
            }
            break;
        }
        let Some(body) = arg
            .strip_prefix("--")
            .or_else(|| arg.strip_prefix('-'))
            .filter(|b| !b.is_empty() && !b.starts_with('-') && !b.starts_with('='))
        else {
            return Err(positional(arg));
        };
        let (raw_name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let name = raw_name.replace('_', "-");
        if spec.bools.contains(&name.as_str()) {
            let value = inline.unwrap_or_else(|| "true".to_string());
            if parse_bool(&value).is_none() {
                return Err(format!(
                    "invalid argument {value:?} for \"--{name}\" flag: strconv.ParseBool: parsing {value:?}: invalid syntax"
                ));
            }
            parsed.values.entry(name).or_default().push(value);
            continue;
        }
        if !spec.values.contains(&name.as_str()) {
            // Ignored; swallow a separate value if there is one.
            if inline.is_none() && rest.peek().is_some_and(|next| !next.starts_with('-')) {
                rest.next();
            }
            continue;
        }
        let value = match inline {
            Some(v) => v,
            None => rest
                .next()
                .cloned()
                .ok_or_else(|| format!("flag needs an argument: --{name}"))?,
        };
        parsed.values.entry(name).or_default().push(value);
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: Spec<'static> = Spec {
        program: "kube-test",
        values: &["config", "key-file"],
        bools: &["anonymous-auth"],
    };

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn values_inline_separate_last_wins_and_repeats_kept() {
        let p = parse(
            &SPEC,
            &strings(&[
                "--config",
                "a",
                "-config=b",
                "--key_file=1",
                "--key-file",
                "2",
            ]),
        )
        .unwrap();
        assert_eq!(p.last("config"), Some("b"));
        assert_eq!(p.all("key-file"), vec!["1", "2"]);
        assert_eq!(p.last("other"), None);
    }

    #[test]
    fn bools_never_take_the_next_argument() {
        let p = parse(&SPEC, &strings(&["--anonymous-auth", "--config=x"])).unwrap();
        assert_eq!(p.bool("anonymous-auth", false), Ok(true));
        let p = parse(&SPEC, &strings(&["--anonymous-auth=false"])).unwrap();
        assert_eq!(p.bool("anonymous-auth", true), Ok(false));
        assert!(parse(&SPEC, &strings(&["--anonymous-auth", "false"])).is_err());
        assert!(parse(&SPEC, &strings(&["--anonymous-auth=maybe"])).is_err());
        assert_eq!(Parsed::default().bool("anonymous-auth", true), Ok(true));
    }

    #[test]
    fn unknown_flags_are_ignored_with_their_values() {
        let p = parse(
            &SPEC,
            &strings(&["--v", "2", "--leader-elect", "--config=c", "--x=y"]),
        )
        .unwrap();
        assert_eq!(p.last("config"), Some("c"));
    }

    #[test]
    fn positional_arguments_are_refused() {
        let err = parse(&SPEC, &strings(&["serve"])).unwrap_err();
        assert!(
            err.contains("kube-test does not take any arguments"),
            "{err}"
        );
        assert!(parse(&SPEC, &strings(&["--", "x"])).is_err());
        assert!(parse(&SPEC, &strings(&["--"])).is_ok());
        assert!(parse(&SPEC, &strings(&["-"])).is_err());
        assert!(parse(&SPEC, &strings(&["---x"])).is_err());
        assert!(parse(&SPEC, &strings(&["", ""])).is_ok());
    }

    #[test]
    fn a_known_flag_without_a_value_is_an_error() {
        let err = parse(&SPEC, &strings(&["--config"])).unwrap_err();
        assert!(err.contains("--config"), "{err}");
    }

    #[test]
    fn lists_split_on_commas() {
        let p = parse(&SPEC, &strings(&["--config=a, b,,c", "--config=d"])).unwrap();
        assert_eq!(p.list("config"), vec!["a", "b", "c", "d"]);
    }
}
