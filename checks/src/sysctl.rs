//! The `sysctl` rule: `/usr/lib/sysctl.d/90-kubernetes.conf` sets the kernel parameters Kubernetes networking
//! needs, and a parser for sysctl.d(5) syntax.

use super::{CheckResult, Context, RuleId, describe_io};

/// Where the image's sysctl settings live (node path).
pub const SYSCTL_FILE: &str = "/usr/lib/sysctl.d/90-kubernetes.conf";

/// Parameters that must be `1`: pods are routed (ip_forward) and bridged pod traffic passes iptables (kube-proxy).
pub const REQUIRED_SYSCTLS: &[&str] = &[
    "net.ipv4.ip_forward",
    "net.bridge.bridge-nf-call-iptables",
    "net.bridge.bridge-nf-call-ip6tables",
];

/// One line of a sysctl.d file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SysctlEntry {
    /// `key = value`; `key` normalised to dots.
    Set {
        line: usize,
        key: String,
        value: String,
        /// The line started with `-`: a failure to set it is not an error.
        ignore_failure: bool,
    },
    /// A non-comment line that is not `key = value` (systemd-sysctl ignores it with a warning).
    Invalid { line: usize, text: String },
}

/// Parses sysctl.d(5) text: `key = value`, comments starting with `#` or `;`, an optional `-` prefix, keys that
/// use `/` as separator (if the first separator is `/`, slashes and dots swap, so `net/ipv4/ip_forward` is
/// `net.ipv4.ip_forward`). Blank and comment lines are dropped; line numbers start at 1.
pub fn parse_sysctl(text: &str) -> Vec<SysctlEntry> {
    let mut entries = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        let (ignore_failure, body) = match trimmed.strip_prefix('-') {
            Some(rest) => (true, rest.trim_start()),
            None => (false, trimmed),
        };
        match body.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => entries.push(SysctlEntry::Set {
                line,
                key: normalize_key(key.trim()),
                value: value.trim().to_owned(),
                ignore_failure,
            }),
            _ => entries.push(SysctlEntry::Invalid {
                line,
                text: trimmed.to_owned(),
            }),
        }
    }
    entries
}

/// sysctl.d(5): "if the first separator is a slash, remaining slashes and dots are swapped".
fn normalize_key(key: &str) -> String {
    match key.find(['.', '/']) {
        Some(first) if key.as_bytes()[first] == b'/' => key
            .chars()
            .map(|c| match c {
                '/' => '.',
                '.' => '/',
                other => other,
            })
            .collect(),
        _ => key.to_owned(),
    }
}

/// The value the file leaves a key at (the last assignment wins), with its line.
fn effective<'a>(entries: &'a [SysctlEntry], wanted: &str) -> Option<(usize, &'a str)> {
    entries.iter().rev().find_map(|entry| match entry {
        SysctlEntry::Set {
            line, key, value, ..
        } if key == wanted => Some((*line, value.as_str())),
        _ => None,
    })
}

pub(super) fn check(ctx: &Context<'_>) -> Vec<CheckResult> {
    let rule = RuleId::Sysctl;
    let text = match ctx.tree.read_to_string(SYSCTL_FILE) {
        Ok(text) => text,
        Err(err) => {
            return vec![CheckResult::fail(
                rule,
                Some(SYSCTL_FILE),
                format!(
                    "{} — install the repository's sysctl.d/90-kubernetes.conf there (it sets {} to 1)",
                    describe_io(&err),
                    REQUIRED_SYSCTLS.join(", ")
                ),
            )];
        }
    };
    let entries = parse_sysctl(&text);
    let mut results = Vec::new();
    for entry in &entries {
        if let SysctlEntry::Invalid { line, text } = entry {
            results.push(CheckResult::warn(
                rule,
                Some(SYSCTL_FILE),
                format!("line {line} `{text}` is not `key = value`; systemd-sysctl ignores it — fix or remove it"),
            ));
        }
    }
    for key in REQUIRED_SYSCTLS {
        match effective(&entries, key) {
            Some((_, "1")) => {}
            Some((line, value)) => results.push(CheckResult::fail(
                rule,
                Some(SYSCTL_FILE),
                format!("{key} is not set to 1 (line {line} sets it to `{value}`) — change it to `{key} = 1`"),
            )),
            None => results.push(CheckResult::fail(
                rule,
                Some(SYSCTL_FILE),
                format!("{key} is not set to 1 — add `{key} = 1`"),
            )),
        }
    }
    if results.is_empty() {
        results.push(CheckResult::pass(
            rule,
            Some(SYSCTL_FILE),
            format!("sets {} to 1", REQUIRED_SYSCTLS.join(", ")),
        ));
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(line: usize, key: &str, value: &str, ignore_failure: bool) -> SysctlEntry {
        SysctlEntry::Set {
            line,
            key: key.to_owned(),
            value: value.to_owned(),
            ignore_failure,
        }
    }

    #[test]
    fn parses_keys_values_comments_and_prefixes() {
        let text = "# comment\n; other comment\n\n  net.ipv4.ip_forward=1\n-net/bridge/bridge-nf-call-iptables = 1 \n\
                    net.ipv4.conf.all.rp_filter\t=\t2\n";
        assert_eq!(
            parse_sysctl(text),
            vec![
                set(4, "net.ipv4.ip_forward", "1", false),
                set(5, "net.bridge.bridge-nf-call-iptables", "1", true),
                set(6, "net.ipv4.conf.all.rp_filter", "2", false),
            ]
        );
    }

    #[test]
    fn slash_keys_swap_dots_and_slashes() {
        assert_eq!(
            normalize_key("net/ipv4/conf/enp3s0.200/forwarding"),
            "net.ipv4.conf.enp3s0/200.forwarding"
        );
        assert_eq!(
            normalize_key("net.ipv4.conf.enp3s0/200.forwarding"),
            "net.ipv4.conf.enp3s0/200.forwarding"
        );
    }

    #[test]
    fn lines_without_assignment_are_invalid() {
        assert_eq!(
            parse_sysctl("net.ipv4.ip_forward\n= 1\n"),
            vec![
                SysctlEntry::Invalid {
                    line: 1,
                    text: "net.ipv4.ip_forward".to_owned()
                },
                SysctlEntry::Invalid {
                    line: 2,
                    text: "= 1".to_owned()
                },
            ]
        );
    }

    #[test]
    fn the_last_assignment_wins() {
        let entries = parse_sysctl("net.ipv4.ip_forward = 1\nnet.ipv4.ip_forward = 0\n");
        assert_eq!(effective(&entries, "net.ipv4.ip_forward"), Some((2, "0")));
        assert_eq!(
            effective(&entries, "net.bridge.bridge-nf-call-iptables"),
            None
        );
    }
}
