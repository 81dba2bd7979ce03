//! The `containerd-config` rule: `/etc/containerd/config.toml` is a config containerd 1.7/2.x reads the way the
//! image means it — schema version 2 or 3, never the devmapper snapshotter (the seeds' devicemapper-on-loopback
//! postmortem), and runc in the systemd cgroup driver that kubelet's `cgroupDriver: systemd` expects.
//!
//! [`check_containerd_toml`] and [`sandbox_image`] are pure (text in, findings out); the rule reads the file and
//! renders them.

use super::{CheckResult, Context, RuleId, describe_io};
use toml::{Table, Value};

/// Where containerd reads its configuration (node path).
pub const CONTAINERD_CONFIG: &str = "/etc/containerd/config.toml";

/// The devmapper snapshotter's plugin table.
const DEVMAPPER_PLUGIN: &str = "io.containerd.snapshotter.v1.devmapper";

/// Key path of runc's options in config version 3 (containerd 2.x).
const RUNC_OPTIONS_V3: &[&str] = &[
    "plugins",
    "io.containerd.cri.v1.runtime",
    "containerd",
    "runtimes",
    "runc",
    "options",
];
/// Key path of runc's options in config version 2 (containerd 1.x).
const RUNC_OPTIONS_V2: &[&str] = &[
    "plugins",
    "io.containerd.grpc.v1.cri",
    "containerd",
    "runtimes",
    "runc",
    "options",
];

/// The sandbox (pause) image a containerd config names: version 3 `[plugins.'io.containerd.cri.v1.images'.pinned_images]
/// sandbox` (containerd 2.x), or version 2 `[plugins."io.containerd.grpc.v1.cri"] sandbox_image` (1.6/1.7).
pub fn sandbox_image(text: &str) -> Option<String> {
    let table: Table = text.parse().ok()?;
    let v3 = lookup(
        &table,
        &[
            "plugins",
            "io.containerd.cri.v1.images",
            "pinned_images",
            "sandbox",
        ],
    );
    let v2 = lookup(
        &table,
        &["plugins", "io.containerd.grpc.v1.cri", "sandbox_image"],
    );
    v3.or(v2).and_then(Value::as_str).map(str::to_string)
}

/// Something wrong with a containerd config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerdFinding {
    /// Not TOML; line and column start at 1.
    Parse {
        line: usize,
        column: usize,
        message: String,
    },
    /// No top-level `version`: containerd reads the file as version 1.
    MissingVersion,
    /// `version` is not 2 or 3 (the value as written in TOML).
    UnsupportedVersion(String),
    /// A `snapshotter` / `default_snapshotter` key is `"devmapper"` (its dotted key path).
    DevmapperSnapshotter { key: String },
    /// The devmapper snapshotter plugin is configured with a `pool_name`.
    DevmapperPool { key: String },
    /// runc's `SystemdCgroup` is not `true`. `found` is the value as written, if any; `other_version_path` is set
    /// when the option is only present under the other schema version's path, which this version does not read.
    SystemdCgroup {
        key: String,
        found: Option<String>,
        other_version_path: Option<String>,
    },
}

impl ContainerdFinding {
    /// What is wrong and what to do, for the check report.
    pub fn message(&self) -> String {
        match self {
            ContainerdFinding::Parse { line, column, message } => format!(
                "{CONTAINERD_CONFIG}:{line}:{column}: not valid TOML: {message} — fix the syntax there"
            ),
            ContainerdFinding::MissingVersion => {
                "has no `version`, so containerd reads it as version 1 — add `version = 3` (containerd 2.x) \
                 or `version = 2` (containerd 1.x) at the top"
                    .to_owned()
            }
            ContainerdFinding::UnsupportedVersion(found) => format!(
                "has `version = {found}`; this image expects 2 or 3 — set `version = 3` for containerd 2.x"
            ),
            ContainerdFinding::DevmapperSnapshotter { key } => format!(
                "`{key} = \"devmapper\"`: the devmapper snapshotter (devicemapper on loopback) is not supported \
                 here — use `overlayfs`"
            ),
            ContainerdFinding::DevmapperPool { key } => format!(
                "`{key}` configures the devmapper snapshotter — remove the `plugins.\"{DEVMAPPER_PLUGIN}\"` \
                 table and use overlayfs"
            ),
            ContainerdFinding::SystemdCgroup {
                key,
                found,
                other_version_path,
            } => {
                let what = match found {
                    Some(value) => format!("`{key}` is {value}"),
                    None => format!("`{key}` is not set (runc then uses cgroupfs)"),
                };
                let other = match other_version_path {
                    Some(path) => format!(" (it is set under `{path}`, which this config version does not read)"),
                    None => String::new(),
                };
                format!(
                    "{what}{other}; kubelet uses the systemd cgroup driver — set `SystemdCgroup = true` in \
                     [{}]",
                    key.trim_end_matches(".SystemdCgroup")
                )
            }
        }
    }
}

/// Checks containerd config text; an empty list means it is fine.
pub fn check_containerd_toml(text: &str) -> Vec<ContainerdFinding> {
    let table: Table = match toml::from_str(text) {
        Ok(table) => table,
        Err(err) => {
            let (line, column) = err
                .span()
                .map_or((1, 1), |span| line_column(text, span.start));
            return vec![ContainerdFinding::Parse {
                line,
                column,
                message: err.message().trim().to_owned(),
            }];
        }
    };
    let mut findings = Vec::new();
    let version = match table.get("version") {
        None => {
            findings.push(ContainerdFinding::MissingVersion);
            None
        }
        Some(Value::Integer(v @ (2 | 3))) => Some(*v),
        Some(other) => {
            findings.push(ContainerdFinding::UnsupportedVersion(other.to_string()));
            None
        }
    };

    walk_snapshotters(&table, &mut Vec::new(), &mut findings);
    if let Some(Value::String(pool)) = lookup(&table, &["plugins", DEVMAPPER_PLUGIN, "pool_name"])
        && !pool.trim().is_empty()
    {
        findings.push(ContainerdFinding::DevmapperPool {
            key: render_key(&["plugins", DEVMAPPER_PLUGIN, "pool_name"]),
        });
    }

    if let Some(version) = version {
        let (path, other) = if version == 3 {
            (RUNC_OPTIONS_V3, RUNC_OPTIONS_V2)
        } else {
            (RUNC_OPTIONS_V2, RUNC_OPTIONS_V3)
        };
        let key_path: Vec<&str> = path.iter().copied().chain(["SystemdCgroup"]).collect();
        let other_path: Vec<&str> = other.iter().copied().chain(["SystemdCgroup"]).collect();
        match lookup(&table, &key_path) {
            Some(Value::Boolean(true)) => {}
            found => findings.push(ContainerdFinding::SystemdCgroup {
                key: render_key(&key_path),
                found: found.map(Value::to_string),
                other_version_path: lookup(&table, &other_path).map(|_| render_key(&other_path)),
            }),
        }
    }
    findings
}

/// Finds every `snapshotter` / `default_snapshotter` key set to `devmapper`, in tables and arrays of tables.
fn walk_snapshotters(table: &Table, path: &mut Vec<String>, findings: &mut Vec<ContainerdFinding>) {
    for (key, value) in table {
        path.push(key.clone());
        match value {
            Value::String(s)
                if (key == "snapshotter" || key == "default_snapshotter") && s == "devmapper" =>
            {
                let parts: Vec<&str> = path.iter().map(String::as_str).collect();
                findings.push(ContainerdFinding::DevmapperSnapshotter {
                    key: render_key(&parts),
                });
            }
            Value::Table(inner) => walk_snapshotters(inner, path, findings),
            Value::Array(items) => {
                for item in items {
                    if let Value::Table(inner) = item {
                        walk_snapshotters(inner, path, findings);
                    }
                }
            }
            _ => {}
        }
        path.pop();
    }
}

fn lookup<'a>(table: &'a Table, path: &[&str]) -> Option<&'a Value> {
    let (last, parents) = path.split_last()?;
    let mut current = table;
    for part in parents {
        current = current.get(*part)?.as_table()?;
    }
    current.get(*last)
}

/// `plugins."io.containerd.cri.v1.runtime".containerd` — bare keys as is, others quoted.
fn render_key(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|part| {
            if !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                (*part).to_owned()
            } else {
                format!("{part:?}")
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

pub(super) fn check(ctx: &Context<'_>) -> Vec<CheckResult> {
    let rule = RuleId::ContainerdConfig;
    let path = Some(CONTAINERD_CONFIG);
    let text = match ctx.tree.read_to_string(CONTAINERD_CONFIG) {
        Ok(text) => text,
        Err(err) => {
            return vec![CheckResult::fail(
                rule,
                path,
                format!(
                    "{} — install a containerd config with `version = 3`, the overlayfs snapshotter and \
                     `SystemdCgroup = true`",
                    describe_io(&err)
                ),
            )];
        }
    };
    let findings = check_containerd_toml(&text);
    if findings.is_empty() {
        return vec![CheckResult::pass(
            rule,
            path,
            "version 2/3, no devmapper, runc with SystemdCgroup = true",
        )];
    }
    findings
        .iter()
        .map(|finding| CheckResult::fail(rule, path, finding.message()))
        .collect()
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_sandbox_image_is_read_from_either_config_version() {
        let v3 = "version = 3\n[plugins.'io.containerd.cri.v1.images'.pinned_images]\nsandbox = 'registry.k8s.io/pause:3.10.1'\n";
        assert_eq!(
            sandbox_image(v3).as_deref(),
            Some("registry.k8s.io/pause:3.10.1")
        );
        let v2 = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\nsandbox_image = \"registry.k8s.io/pause:3.10\"\n";
        assert_eq!(
            sandbox_image(v2).as_deref(),
            Some("registry.k8s.io/pause:3.10")
        );
        assert_eq!(sandbox_image("version = 3\n"), None);
        assert_eq!(sandbox_image("not toml ["), None);
    }

    use super::*;

    const GOOD_V3: &str = r#"
version = 3
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
[plugins."io.containerd.cri.v1.runtime".containerd]
  default_runtime_name = "runc"
[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
  SystemdCgroup = true
"#;

    const GOOD_V2: &str = r#"
version = 2
[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "overlayfs"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  SystemdCgroup = true
"#;

    #[test]
    fn good_v3_and_v2_configs_pass() {
        assert_eq!(check_containerd_toml(GOOD_V3), vec![]);
        assert_eq!(check_containerd_toml(GOOD_V2), vec![]);
    }

    #[test]
    fn parse_errors_name_line_and_column() {
        let findings = check_containerd_toml("version = 3\n[plugins\nfoo = 1\n");
        match findings.as_slice() {
            [ContainerdFinding::Parse { line, column, .. }] => assert_eq!((*line, *column), (2, 9)),
            other => panic!("expected one parse error, got {other:?}"),
        }
        let message = findings[0].message();
        assert!(
            message.starts_with("/etc/containerd/config.toml:2:9: "),
            "{message}"
        );
    }

    #[test]
    fn version_must_be_2_or_3() {
        assert!(check_containerd_toml("[plugins]\n").contains(&ContainerdFinding::MissingVersion));
        assert!(
            check_containerd_toml("version = 1\n")
                .contains(&ContainerdFinding::UnsupportedVersion("1".into()))
        );
        assert!(
            check_containerd_toml("version = \"3\"\n")
                .contains(&ContainerdFinding::UnsupportedVersion("\"3\"".into()))
        );
    }

    #[test]
    fn devmapper_anywhere_fails() {
        let text = GOOD_V3.replace("\"overlayfs\"", "\"devmapper\"");
        assert_eq!(
            check_containerd_toml(&text),
            vec![ContainerdFinding::DevmapperSnapshotter {
                key: "plugins.\"io.containerd.cri.v1.images\".snapshotter".into()
            }]
        );
        let text = format!("{GOOD_V3}\n[[proxy]]\ndefault_snapshotter = \"devmapper\"\n");
        assert_eq!(
            check_containerd_toml(&text),
            vec![ContainerdFinding::DevmapperSnapshotter {
                key: "proxy.default_snapshotter".into()
            }]
        );
        let text = format!(
            "{GOOD_V3}\n[plugins.\"{DEVMAPPER_PLUGIN}\"]\npool_name = \"containerd-pool\"\n"
        );
        assert_eq!(
            check_containerd_toml(&text),
            vec![ContainerdFinding::DevmapperPool {
                key: "plugins.\"io.containerd.snapshotter.v1.devmapper\".pool_name".into()
            }]
        );
        // An unconfigured devmapper plugin (empty pool) is what containerd itself skips.
        let text = format!("{GOOD_V3}\n[plugins.\"{DEVMAPPER_PLUGIN}\"]\npool_name = \"\"\n");
        assert_eq!(check_containerd_toml(&text), vec![]);
    }

    #[test]
    fn systemd_cgroup_must_be_true_at_the_versions_path() {
        let key_v3 = "plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.runc.options.SystemdCgroup";
        let key_v2 =
            "plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options.SystemdCgroup";
        assert_eq!(
            check_containerd_toml(
                &GOOD_V3.replace("SystemdCgroup = true", "SystemdCgroup = false")
            ),
            vec![ContainerdFinding::SystemdCgroup {
                key: key_v3.into(),
                found: Some("false".into()),
                other_version_path: None
            }]
        );
        assert_eq!(
            check_containerd_toml(&GOOD_V3.replace("SystemdCgroup = true", "")),
            vec![ContainerdFinding::SystemdCgroup {
                key: key_v3.into(),
                found: None,
                other_version_path: None
            }]
        );
        // A version-2 file relabelled as version 3: the option is where version 3 does not look.
        let findings = check_containerd_toml(&GOOD_V2.replace("version = 2", "version = 3"));
        assert_eq!(
            findings,
            vec![ContainerdFinding::SystemdCgroup {
                key: key_v3.into(),
                found: None,
                other_version_path: Some(key_v2.into())
            }]
        );
        assert!(
            findings[0]
                .message()
                .contains("which this config version does not read")
        );
    }

    #[test]
    fn line_columns_count_characters() {
        assert_eq!(line_column("ab\ncdé\nx", 0), (1, 1));
        assert_eq!(line_column("ab\ncdé\nx", 3), (2, 1));
        assert_eq!(line_column("ab\ncdé\nx", 8), (3, 1));
        assert_eq!(line_column("ab\ncdé\nx", 7), (2, 4));
        assert_eq!(line_column("ab", 100), (1, 3));
    }
}
