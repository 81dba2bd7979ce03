//! The `role-dropins` and `agent-unit` rules, and a minimal systemd unit file parser (sections and `key=value`
//! lines; enough to find conditions and `[Install]`, not a full systemd.syntax(7) implementation).

use super::{CheckResult, Context, RuleId, Tree, describe_io};
use k8s_core::node_role::{AGENT_UNIT, NodeRole, UNIT_DIR};

/// Directories (node paths) whose `*.wants/` and `*.requires/` subdirectories enable units.
const ENABLE_DIRS: &[&str] = &["/etc/systemd/system", "/usr/lib/systemd/system"];

/// Name of the drop-in every role unit carries.
const ROLE_DROPIN: &str = "role.conf";

/// A parsed unit file or drop-in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitFile {
    /// Sections in file order; a section name may repeat (systemd merges them).
    pub sections: Vec<UnitSection>,
}

/// One `[Section]` and its assignments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitSection {
    pub name: String,
    /// `(line, key, value)`, key and value trimmed; line numbers start at 1.
    pub entries: Vec<(usize, String, String)>,
}

/// Parses unit file text: `[Section]` headers, `key=value` lines (whitespace around `=` allowed), comments
/// starting with `#` or `;`, and lines continued with a trailing `\`. Assignments before the first section and
/// lines without `=` are dropped, as systemd ignores them.
pub fn parse_unit(text: &str) -> UnitFile {
    let mut unit = UnitFile::default();
    let mut lines = text.lines().enumerate();
    while let Some((index, raw)) = lines.next() {
        let line = index + 1;
        let mut logical = raw.trim().to_owned();
        if logical.starts_with('#') || logical.starts_with(';') {
            continue;
        }
        while logical.ends_with('\\') {
            logical.pop();
            logical.push(' ');
            // Comment lines inside a continuation are skipped, as systemd does.
            match lines
                .by_ref()
                .map(|(_, l)| l.trim())
                .find(|l| !l.starts_with('#') && !l.starts_with(';'))
            {
                Some(next) => logical.push_str(next),
                None => break,
            }
        }
        let logical = logical.trim();
        if logical.is_empty() {
            continue;
        }
        if let Some(name) = logical.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            unit.sections.push(UnitSection {
                name: name.trim().to_owned(),
                entries: Vec::new(),
            });
            continue;
        }
        if let (Some(section), Some((key, value))) =
            (unit.sections.last_mut(), logical.split_once('='))
        {
            section
                .entries
                .push((line, key.trim().to_owned(), value.trim().to_owned()));
        }
    }
    unit
}

impl UnitFile {
    /// True when the file has at least one `[name]` section.
    pub fn has_section(&self, name: &str) -> bool {
        self.sections.iter().any(|s| s.name == name)
    }

    /// Every value assigned to `key` in sections called `section`, in order, with its line.
    pub fn values<'a>(
        &'a self,
        section: &'a str,
        key: &'a str,
    ) -> impl Iterator<Item = (usize, &'a str)> + 'a {
        self.sections
            .iter()
            .filter(move |s| s.name == section)
            .flat_map(|s| s.entries.iter())
            .filter(move |(_, k, _)| k == key)
            .map(|(line, _, value)| (*line, value.as_str()))
    }

    /// Names of the sections that assign `key` = `value`.
    fn sections_with(&self, key: &str, value: &str) -> Vec<&str> {
        self.sections
            .iter()
            .filter(|s| s.entries.iter().any(|(_, k, v)| k == key && v == value))
            .map(|s| s.name.as_str())
            .collect()
    }
}

/// `ConditionPathExists=/etc/sysconfig/...` split into key and value.
fn condition(role: NodeRole) -> (String, String) {
    let line = role.condition_line();
    match line.split_once('=') {
        Some((key, value)) => (key.to_owned(), value.to_owned()),
        None => (line, String::new()),
    }
}

fn other(role: NodeRole) -> NodeRole {
    match role {
        NodeRole::Master => NodeRole::Minion,
        NodeRole::Minion => NodeRole::Master,
    }
}

pub(super) fn check_role_dropins(ctx: &Context<'_>) -> Vec<CheckResult> {
    let mut results = Vec::new();
    let enabled = enabling_entries(&ctx.tree, RuleId::RoleDropins, &mut results);
    let mut units = 0;
    for role in NodeRole::ALL {
        for unit in role.units() {
            units += 1;
            check_role_unit(&ctx.tree, role, unit, &enabled, &mut results);
        }
    }
    if results.is_empty() {
        results.push(CheckResult::pass(
            RuleId::RoleDropins,
            None,
            format!(
                "{units} role units have their role condition in {ROLE_DROPIN} and none is enabled"
            ),
        ));
    }
    results
}

fn check_role_unit(
    tree: &Tree<'_>,
    role: NodeRole,
    unit: &str,
    enabled: &[(String, String)],
    results: &mut Vec<CheckResult>,
) {
    let rule = RuleId::RoleDropins;
    let unit_path = format!("/{UNIT_DIR}/{unit}");
    let dropin_dir = format!("/{UNIT_DIR}/{unit}.d");
    let role_conf = format!("{dropin_dir}/{ROLE_DROPIN}");
    let (key, want) = condition(role);
    let (_, unwanted) = condition(other(role));

    // Every file that sets the unit's conditions, in the order systemd applies them: the unit, then its drop-ins
    // sorted by name.
    let mut sources: Vec<(String, UnitFile)> = Vec::new();
    match tree.read_to_string(&unit_path) {
        Ok(text) => {
            let parsed = parse_unit(&text);
            // A warning, not a failure: upstream units (containerd, kubelet) ship an [Install] section, and it does
            // no harm as long as nothing enables the unit — which the check below fails on. It is still worth
            // knowing: `systemctl enable` or a preset would then start the unit at boot, before k8s-agent has
            // read the role and waited for the masters.
            if parsed.has_section("Install") {
                results.push(CheckResult::warn(
                    rule,
                    Some(&unit_path),
                    format!(
                        "has an [Install] section, so `systemctl enable` or a preset could enable it; {role} units \
                         are started by k8s-agent, never enabled — drop the [Install] section"
                    ),
                ));
            }
            sources.push((unit_path.clone(), parsed));
        }
        Err(err) => results.push(CheckResult::fail(
            rule,
            Some(&unit_path),
            format!(
                "{} — add {unit} (a {role} unit) to the image's units",
                describe_io(&err)
            ),
        )),
    }

    let role_dropin = match tree.read_to_string(&role_conf) {
        Ok(text) => Some(parse_unit(&text)),
        Err(err) => {
            results.push(CheckResult::fail(
                rule,
                Some(&role_conf),
                format!(
                    "{} — add it with `[Unit]` and `{}` so {unit} can only start on a {role}",
                    describe_io(&err),
                    role.condition_line()
                ),
            ));
            None
        }
    };
    let role_dropin_ok = role_dropin
        .as_ref()
        .is_some_and(|parsed| parsed.values("Unit", &key).any(|(_, v)| v == want));
    // Set when role.conf already has a failure of its own, so the checks below do not report it twice.
    let mut role_conf_reported = role_dropin.is_none();
    if let Some(parsed) = role_dropin.as_ref().filter(|_| !role_dropin_ok) {
        let elsewhere = parsed.sections_with(&key, &want);
        let message = if !elsewhere.is_empty() {
            format!(
                "has `{}` in [{}], not in [Unit] — move it into the [Unit] section",
                role.condition_line(),
                elsewhere.join("], [")
            )
        } else if parsed.values("Unit", &key).any(|(_, v)| v == unwanted) {
            format!(
                "has the {} condition `{key}={unwanted}`, but {unit} is a {role} unit — use `{}`",
                other(role),
                role.condition_line()
            )
        } else {
            format!(
                "does not contain `{}` in [Unit] — add it so {unit} can only start on a {role}",
                role.condition_line()
            )
        };
        results.push(CheckResult::fail(rule, Some(&role_conf), message));
        role_conf_reported = true;
    }

    match tree.read_dir_names(&dropin_dir) {
        Ok(names) => {
            for name in names.iter().filter(|n| n.ends_with(".conf")) {
                let path = format!("{dropin_dir}/{name}");
                if name == ROLE_DROPIN {
                    if let Some(parsed) = &role_dropin {
                        sources.push((path, parsed.clone()));
                    }
                    continue;
                }
                match tree.read_to_string(&path) {
                    Ok(text) => sources.push((path, parse_unit(&text))),
                    Err(err) => results.push(CheckResult::fail(
                        rule,
                        Some(&path),
                        format!("{} — fix or remove this drop-in", describe_io(&err)),
                    )),
                }
            }
        }
        Err(err) => results.push(CheckResult::fail(
            rule,
            Some(&dropin_dir),
            format!("{} — it must be a readable directory", describe_io(&err)),
        )),
    }

    // What systemd ends up with: an empty assignment resets the list.
    let mut effective: Vec<(&str, &str)> = Vec::new();
    let mut reset_by: Option<&str> = None;
    for (path, parsed) in &sources {
        for (_, value) in parsed.values("Unit", &key) {
            if value.is_empty() {
                effective.clear();
                reset_by = Some(path);
            } else {
                effective.push((path, value));
            }
        }
    }
    if role_dropin_ok && !effective.iter().any(|(_, v)| *v == want) {
        let culprit = reset_by.unwrap_or(&role_conf);
        results.push(CheckResult::fail(
            rule,
            Some(culprit),
            format!(
                "resets `{key}=` after {ROLE_DROPIN}, which drops the {role} condition — remove the empty assignment"
            ),
        ));
    }
    for (path, value) in &effective {
        if *value == unwanted && !(role_conf_reported && *path == role_conf) {
            results.push(CheckResult::fail(
                rule,
                Some(path),
                format!(
                    "requires `{unwanted}`, the {} role file, so the {role} unit {unit} could never start — remove it",
                    other(role)
                ),
            ));
        }
    }

    for (link, _) in enabled.iter().filter(|(_, name)| name == unit) {
        results.push(CheckResult::fail(
            rule,
            Some(link),
            format!(
                "enables {unit}: {role} units are started by k8s-agent, never enabled (enabled, it would start at \
                 boot before the agent has checked the role and the masters) — remove the link \
                 (`systemctl disable {unit}`)"
            ),
        ));
    }
}

/// Every `*.wants/` and `*.requires/` entry (link or file) under [`ENABLE_DIRS`]: `(node path, unit name)`. A
/// directory that cannot be read is reported under `rule` and skipped.
fn enabling_entries(
    tree: &Tree<'_>,
    rule: RuleId,
    results: &mut Vec<CheckResult>,
) -> Vec<(String, String)> {
    let mut entries = Vec::new();
    for dir in ENABLE_DIRS {
        let names = match tree.read_dir_names(dir) {
            Ok(names) => names,
            Err(err) => {
                results.push(CheckResult::fail(
                    rule,
                    Some(dir),
                    format!(
                        "{} — cannot tell which units are enabled",
                        describe_io(&err)
                    ),
                ));
                continue;
            }
        };
        for name in names
            .iter()
            .filter(|n| n.ends_with(".wants") || n.ends_with(".requires"))
        {
            let sub = format!("{dir}/{name}");
            match tree.read_dir_names(&sub) {
                Ok(units) => entries.extend(
                    units
                        .into_iter()
                        .map(|unit| (format!("{sub}/{unit}"), unit)),
                ),
                Err(err) => results.push(CheckResult::fail(
                    rule,
                    Some(&sub),
                    format!("{} — cannot tell which units it enables", describe_io(&err)),
                )),
            }
        }
    }
    entries
}

pub(super) fn check_agent_unit(ctx: &Context<'_>) -> Vec<CheckResult> {
    let rule = RuleId::AgentUnit;
    let tree = &ctx.tree;
    let mut results = Vec::new();
    let unit_path = format!("/{UNIT_DIR}/{AGENT_UNIT}");
    match tree.metadata(&unit_path) {
        Ok(meta) if meta.is_file() => {}
        Ok(_) => results.push(CheckResult::fail(
            rule,
            Some(&unit_path),
            "is not a regular file — install units/k8s-agent.service there",
        )),
        Err(err) => results.push(CheckResult::fail(
            rule,
            Some(&unit_path),
            format!(
                "{} — install units/k8s-agent.service there",
                describe_io(&err)
            ),
        )),
    }

    let mask = format!("/etc/systemd/system/{AGENT_UNIT}");
    if let Ok(meta) = tree.symlink_metadata(&mask)
        && meta.file_type().is_symlink()
        && tree
            .resolve_parent(&mask)
            .and_then(std::fs::read_link)
            .is_ok_and(|target| target.as_os_str() == "/dev/null")
    {
        results.push(CheckResult::fail(
            rule,
            Some(&mask),
            format!("masks {AGENT_UNIT}, so it never starts — remove the link (`systemctl unmask {AGENT_UNIT}`)"),
        ));
    }

    let links: Vec<String> = enabling_entries(tree, rule, &mut results)
        .into_iter()
        .filter(|(_, name)| name == AGENT_UNIT)
        .map(|(link, _)| link)
        .collect();
    if links.is_empty() {
        results.push(CheckResult::fail(
            rule,
            Some(&format!("/etc/systemd/system/multi-user.target.wants/{AGENT_UNIT}")),
            format!(
                "is missing: {AGENT_UNIT} is not enabled, and it is the one unit that brings the node up — \
                 `systemctl enable {AGENT_UNIT}`, or link /{UNIT_DIR}/{AGENT_UNIT} there"
            ),
        ));
    }
    for link in &links {
        if !tree.metadata(link).is_ok_and(|meta| meta.is_file()) {
            results.push(CheckResult::fail(
                rule,
                Some(link),
                format!(
                    "points to nothing in the tree (a dangling link) — link it to /{UNIT_DIR}/{AGENT_UNIT} \
                     (`systemctl enable {AGENT_UNIT}`)"
                ),
            ));
        }
    }
    if results.is_empty() {
        results.push(CheckResult::pass(
            rule,
            Some(&unit_path),
            format!("{AGENT_UNIT} is enabled by {}", links.join(", ")),
        ));
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sections_entries_and_comments() {
        let unit = parse_unit(
            "ignored=before section\n# comment\n[Unit]\nDescription = etcd\n; other\nConditionPathExists=/a\n\n\
             [Service]\nExecStart=/usr/bin/etcd \\\n  --name x \\\n# inside\n  --data-dir /var\n[Install]\n\
             WantedBy=multi-user.target\nnot an assignment\n",
        );
        let names: Vec<&str> = unit.sections.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["Unit", "Service", "Install"]);
        assert_eq!(
            unit.sections[0].entries,
            vec![
                (4, "Description".to_owned(), "etcd".to_owned()),
                (6, "ConditionPathExists".to_owned(), "/a".to_owned())
            ]
        );
        assert_eq!(
            unit.values("Service", "ExecStart").collect::<Vec<_>>(),
            vec![(9, "/usr/bin/etcd  --name x  --data-dir /var")]
        );
        assert!(unit.has_section("Install"));
        assert!(!unit.has_section("Mount"));
    }

    #[test]
    fn repeated_sections_merge() {
        let unit = parse_unit("[Unit]\nA=1\n[Service]\nA=2\n[Unit]\nA=3\n");
        assert_eq!(
            unit.values("Unit", "A").collect::<Vec<_>>(),
            vec![(2, "1"), (6, "3")]
        );
    }

    #[test]
    fn condition_splits_the_role_line() {
        assert_eq!(
            condition(NodeRole::Minion),
            (
                "ConditionPathExists".to_owned(),
                "/etc/sysconfig/kubernetes-minions".to_owned()
            )
        );
    }
}
