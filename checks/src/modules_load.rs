//! The `modules-load` rule: `/usr/lib/modules-load.d/kubernetes.conf` loads the kernel modules containerd and
//! bridged pod networking need, and a parser for modules-load.d(5) syntax.

use super::{CheckResult, Context, RuleId, describe_io};

/// Where the image's module list lives (node path).
pub const MODULES_LOAD_FILE: &str = "/usr/lib/modules-load.d/kubernetes.conf";

/// Modules that must be loaded at boot: `overlay` (containerd's snapshotter) and `br_netfilter` (without it the
/// `net.bridge.*` sysctls do not exist; systemd-sysctl re-applies them when it loads).
pub const REQUIRED_MODULES: &[&str] = &["overlay", "br_netfilter"];

/// Module names listed in modules-load.d(5) text, in order: one per line, blank lines and lines starting with `#`
/// or `;` ignored, whitespace trimmed.
pub fn parse_modules_load(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#') && !line.starts_with(';'))
        .map(str::to_owned)
        .collect()
}

/// modprobe treats `-` and `_` in module names alike.
fn same_module(a: &str, b: &str) -> bool {
    a.replace('-', "_") == b.replace('-', "_")
}

pub(super) fn check(ctx: &Context<'_>) -> Vec<CheckResult> {
    let rule = RuleId::ModulesLoad;
    let text = match ctx.tree.read_to_string(MODULES_LOAD_FILE) {
        Ok(text) => text,
        Err(err) => {
            return vec![CheckResult::fail(
                rule,
                Some(MODULES_LOAD_FILE),
                format!(
                    "{} — install it listing {}, one per line",
                    describe_io(&err),
                    REQUIRED_MODULES.join(" and ")
                ),
            )];
        }
    };
    let listed = parse_modules_load(&text);
    let mut results = Vec::new();
    for module in REQUIRED_MODULES {
        if !listed.iter().any(|m| same_module(m, module)) {
            results.push(CheckResult::fail(
                rule,
                Some(MODULES_LOAD_FILE),
                format!("{module} is not listed — add {module} to {MODULES_LOAD_FILE}"),
            ));
        }
    }
    if results.is_empty() {
        results.push(CheckResult::pass(
            rule,
            Some(MODULES_LOAD_FILE),
            format!("loads {}", REQUIRED_MODULES.join(" and ")),
        ));
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_modules_without_comments() {
        assert_eq!(
            parse_modules_load(
                "# for containerd\noverlay\n  ; bridge\n\n br_netfilter \n#br_netfilter\n"
            ),
            vec!["overlay", "br_netfilter"]
        );
    }

    #[test]
    fn dashes_and_underscores_are_the_same_module() {
        assert!(same_module("br-netfilter", "br_netfilter"));
        assert!(!same_module("br_netfilte", "br_netfilter"));
    }
}
