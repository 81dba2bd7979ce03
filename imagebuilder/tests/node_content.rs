//! Checks of the node content the image bakes: the systemd units in `units/` and the role drop-ins in `dropins/`.
//!
//! * `systemd_analyze_verify_passes` runs `tests/verify-units.sh` (systemd's own `systemd-analyze verify` on every
//!   unit with its drop-ins, staged in a temporary root, plus the boot-ordering checks with and without cloud-init)
//!   and fails with the script's output if any check fails. It needs `systemd-analyze` (Debian: package `systemd`).
//! * `role_units_have_drop_ins_and_no_install` reads the files with plain std I/O: every role unit has its
//!   `dropins/<unit>.d/role.conf` carrying its role's condition (and the other role's negated), no role unit has an
//!   `[Install]` section, `k8s-agent.service` has one, and `units/` matches the agent's role table
//!   (`k8s_core::node_role`), which the agent uses to decide what to start.

use k8s_core::node_role::{AGENT_UNIT, MASTER_UNITS, MINION_UNITS, NodeRole};
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Section headers (`[Unit]`, `[Install]`, ...) of a unit file or drop-in, comments ignored.
fn sections(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|l| l.starts_with('[') && l.ends_with(']'))
        .collect()
}

/// Non-comment, non-blank lines, trimmed.
fn directives(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .collect()
}

#[test]
fn systemd_analyze_verify_passes() {
    let root = workspace_root();
    let output = Command::new("bash")
        .arg("tests/verify-units.sh")
        .current_dir(&root)
        .output()
        .expect("running bash tests/verify-units.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "tests/verify-units.sh failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.ends_with(" passed, 0 failed"),
        "unexpected summary line {last:?}:\n{stdout}"
    );
}

#[test]
fn role_units_have_drop_ins_and_no_install() {
    let root = workspace_root();
    let units_dir = root.join("units");
    let dropins_dir = root.join("dropins");

    let on_disk: BTreeSet<String> = fs::read_dir(&units_dir)
        .unwrap_or_else(|e| panic!("listing {}: {e}", units_dir.display()))
        .map(|entry| {
            entry
                .expect("reading units/ entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(".service"))
        .collect();
    let expected: BTreeSet<String> = MASTER_UNITS
        .iter()
        .chain(MINION_UNITS)
        .chain([&AGENT_UNIT])
        .map(|u| (*u).to_owned())
        .collect();
    assert_eq!(
        on_disk, expected,
        "units/ and the agent's role table (k8s_core::node_role) disagree"
    );

    let mut problems = Vec::new();
    for role in NodeRole::ALL {
        let other = match role {
            NodeRole::Master => NodeRole::Minion,
            NodeRole::Minion => NodeRole::Master,
        };
        let wanted = role.condition_line();
        let negated = format!("ConditionPathExists=!/{}", other.role_file());
        for unit in role.units() {
            let unit_text = read(&units_dir.join(unit));
            if sections(&unit_text).contains(&"[Install]") {
                problems.push(format!(
                    "units/{unit}: role unit has an [Install] section (only {AGENT_UNIT} is enabled)"
                ));
            }
            let conf = dropins_dir.join(format!("{unit}.d")).join("role.conf");
            if !conf.is_file() {
                problems.push(format!(
                    "{role} unit {unit} has no dropins/{unit}.d/role.conf"
                ));
                continue;
            }
            let conf_text = read(&conf);
            let lines = directives(&conf_text);
            if sections(&conf_text) != ["[Unit]"] {
                problems.push(format!(
                    "dropins/{unit}.d/role.conf: expected exactly one [Unit] section"
                ));
            }
            if !lines.contains(&wanted.as_str()) {
                problems.push(format!("dropins/{unit}.d/role.conf: missing `{wanted}`"));
            }
            if !lines.contains(&negated.as_str()) {
                problems.push(format!("dropins/{unit}.d/role.conf: missing `{negated}`"));
            }
            let other_condition = other.condition_line();
            if lines.contains(&other_condition.as_str()) {
                problems.push(format!(
                    "dropins/{unit}.d/role.conf: {role} unit gated on the {other} role file (`{other_condition}`)"
                ));
            }
        }
    }

    let agent_text = read(&units_dir.join(AGENT_UNIT));
    if !sections(&agent_text).contains(&"[Install]") {
        problems.push(format!(
            "units/{AGENT_UNIT}: no [Install] section, so nothing would start the agent"
        ));
    }
    if dropins_dir.join(format!("{AGENT_UNIT}.d")).exists() {
        problems.push(format!(
            "dropins/{AGENT_UNIT}.d: the agent must not be gated on a role file"
        ));
    }

    assert!(
        problems.is_empty(),
        "node content problems:\n  {}",
        problems.join("\n  ")
    );
}
