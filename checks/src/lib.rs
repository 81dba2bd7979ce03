//! Host checks: the rules a node image must satisfy, run against a tree rooted at a directory — the staged image
//! tree during the build (`imagebuilder`), or `/` on a node (`k8s-agent check`). Each rule reads files only, under
//! the root (symlinks are resolved inside the root, see the `tree` submodule), and returns data; nothing here prints.
//!
//! Entry points: [`check_tree`] (all rules of [`RuleSet::Tree`]) and [`check`] (one rule set). The result is a
//! [`CheckReport`]: one [`CheckResult`] per rule and concerned file — a failing rule yields one result per file
//! that is wrong, a rule with nothing to say yields one `pass`. Every rule of the set appears at least once; a rule
//! that could not run because another failed (e.g. `binaries` without a readable lock) yields a `warn` that says so.
//!
//! # Rules ([`RuleId`], stable kebab-case names)
//! `image-lock`, `binaries`, `standin`, `cni-loopback`, `sysctl`, `modules-load`, `role-dropins`, `agent-unit`,
//! `containerd-config`, `sbom` — see each variant for what it checks.
//!
//! # JSON (`k8s-agent check --json`), format version 1
//! ```json
//! {
//!   "format_version": 1,
//!   "root": "/",                      // the tree checked, as given (a host path)
//!   "passed": false,                  // no result has status "fail"
//!   "summary": { "passed": 9, "failed": 1, "warnings": 1 },   // counts of results by status
//!   "standins": ["kubelet"],          // stand-in artifacts: a DEMO image when not empty
//!   "results": [
//!     { "rule": "sysctl",             // a RuleId name
//!       "status": "fail",             // "pass" | "fail" | "warn"
//!       "path": "/usr/lib/sysctl.d/90-kubernetes.conf",   // node path concerned, or null
//!       "message": "net.ipv4.ip_forward is not set to 1 — add `net.ipv4.ip_forward = 1` to ..." }
//!   ]
//! }
//! ```
//! Fields are only ever added (with a new `format_version` if their meaning changes); results keep rule order.
//!
//! # Adding rules
//! A new rule is a [`RuleId`] variant, an entry in [`RuleSet::rules`] and an arm in `run_rule`. Rules that look at
//! the running host rather than files (sysctls in effect, modules loaded, swap, cgroup v2) belong in a new
//! [`RuleSet`] variant, run only on a node, with their own context next to the `Tree` of file rules.

mod containerd;
mod image;
mod images;
mod live;
mod modules_load;
mod sysctl;
pub(crate) mod tree;
mod units;

use k8s_core::image_info::ImageLock;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
pub(crate) use tree::Tree;

pub use containerd::{CONTAINERD_CONFIG, ContainerdFinding, check_containerd_toml};
pub use image::CNI_LOOPBACK;
pub use live::HostView;
pub use modules_load::{MODULES_LOAD_FILE, REQUIRED_MODULES, parse_modules_load};
pub use sysctl::{REQUIRED_SYSCTLS, SYSCTL_FILE, SysctlEntry, parse_sysctl};
pub use units::{UnitFile, UnitSection, parse_unit};

/// Where the agent keeps the boot-time check results (relative to the root), for `status` and the support bundle.
pub const CHECKS_FILE: &str = "run/k8s-agent/checks.json";

/// Version of the JSON shape of [`CheckReport`].
pub const REPORT_FORMAT_VERSION: u32 = 1;

/// How many individual failures one rule reports before it sums the rest up in one result.
pub const MAX_FAILURES_PER_RULE: usize = 20;

/// One rule. The serialised name (kebab-case) is stable: scripts and the JSON output use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuleId {
    /// `/usr/share/k8s-image/lock.json` exists and parses; the rules that need it are skipped otherwise.
    ImageLock,
    /// Every file of the lock with an execute bit exists, is a regular file and is executable on disk.
    Binaries,
    /// Warns when artifacts are stand-ins: a DEMO image, not for real nodes.
    Standin,
    /// `/opt/cni/bin/loopback` exists and is executable (kubelet needs it for every pod sandbox).
    CniLoopback,
    /// `/usr/lib/sysctl.d/90-kubernetes.conf` sets ip_forward and bridge-nf-call-ip{,6}tables to 1.
    Sysctl,
    /// `/usr/lib/modules-load.d/kubernetes.conf` loads `overlay` and `br_netfilter`.
    ModulesLoad,
    /// Every role unit exists, carries its role's `ConditionPathExists=` in `<unit>.d/role.conf`, and is not
    /// enabled.
    RoleDropins,
    /// `k8s-agent.service` exists, is not masked, and is enabled: a `k8s-agent.service` entry in some `*.wants/`
    /// or `*.requires/` directory under `/etc/systemd/system` (or `/usr/lib/systemd/system`) that resolves, inside
    /// the tree, to a file.
    AgentUnit,
    /// `/etc/containerd/config.toml` is version 2 or 3, never devmapper, and runc uses `SystemdCgroup = true`.
    ContainerdConfig,
    /// Every file the SBOM lists is in the tree with its recorded sha256, and every lock file is in the SBOM.
    Sbom,
    /// Every container image of the lock is baked with its recorded sha256; containerd's sandbox image is baked.
    Images,
    /// Live: ip_forward and bridge-nf-call-ip{,6}tables are 1 in the running kernel.
    LiveSysctl,
    /// Live: the overlay filesystem is available and br_netfilter is loaded.
    LiveModules,
    /// Live: no swap is active.
    Swap,
    /// Live: /sys/fs/cgroup is cgroup v2 (unified).
    CgroupV2,
}

impl RuleId {
    /// The stable name, as in the JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleId::ImageLock => "image-lock",
            RuleId::Binaries => "binaries",
            RuleId::Standin => "standin",
            RuleId::CniLoopback => "cni-loopback",
            RuleId::Sysctl => "sysctl",
            RuleId::ModulesLoad => "modules-load",
            RuleId::RoleDropins => "role-dropins",
            RuleId::AgentUnit => "agent-unit",
            RuleId::ContainerdConfig => "containerd-config",
            RuleId::Sbom => "sbom",
            RuleId::Images => "images",
            RuleId::LiveSysctl => "live-sysctl",
            RuleId::LiveModules => "live-modules",
            RuleId::Swap => "swap",
            RuleId::CgroupV2 => "cgroup-v2",
        }
    }

    /// True for rules that read the image lock (skipped with a warning when it cannot be read).
    fn needs_lock(self) -> bool {
        matches!(self, RuleId::Binaries | RuleId::Standin)
    }
}

impl std::fmt::Display for RuleId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A group of rules run together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuleSet {
    /// Rules that read files only: run on a staged image tree at build time and on `/` on a node.
    Tree,
    /// Rules about the running kernel (see the `live` submodule): sysctls in effect, modules, swap, cgroup v2.
    Live,
    /// `Tree` and `Live` together: `k8s-agent check` on a node.
    Node,
    /// What the agent runs at boot before starting units: `Node` without the SBOM rule (hashing every binary on
    /// each boot is `k8s-agent check`'s job, not the boot path's).
    Boot,
}

impl RuleSet {
    /// The rules of this set, in the order they run and are reported.
    pub fn rules(self) -> &'static [RuleId] {
        match self {
            RuleSet::Tree => &[
                RuleId::ImageLock,
                RuleId::Binaries,
                RuleId::Standin,
                RuleId::CniLoopback,
                RuleId::Sysctl,
                RuleId::ModulesLoad,
                RuleId::RoleDropins,
                RuleId::AgentUnit,
                RuleId::ContainerdConfig,
                RuleId::Sbom,
                RuleId::Images,
            ],
            RuleSet::Live => &[
                RuleId::LiveSysctl,
                RuleId::LiveModules,
                RuleId::Swap,
                RuleId::CgroupV2,
            ],
            RuleSet::Node => &[
                RuleId::ImageLock,
                RuleId::Binaries,
                RuleId::Standin,
                RuleId::CniLoopback,
                RuleId::Sysctl,
                RuleId::ModulesLoad,
                RuleId::RoleDropins,
                RuleId::AgentUnit,
                RuleId::ContainerdConfig,
                RuleId::Sbom,
                RuleId::Images,
                RuleId::LiveSysctl,
                RuleId::LiveModules,
                RuleId::Swap,
                RuleId::CgroupV2,
            ],
            RuleSet::Boot => &[
                RuleId::ImageLock,
                RuleId::Binaries,
                RuleId::Standin,
                RuleId::CniLoopback,
                RuleId::Sysctl,
                RuleId::ModulesLoad,
                RuleId::RoleDropins,
                RuleId::AgentUnit,
                RuleId::ContainerdConfig,
                RuleId::LiveSysctl,
                RuleId::LiveModules,
                RuleId::Swap,
                RuleId::CgroupV2,
            ],
        }
    }
}

/// Outcome of one rule for one concerned file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    /// Not a failure (the report still passes) but something a human must know.
    Warn,
}

impl Status {
    /// Upper-case label used in human output.
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Warn => "WARN",
        }
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    pub rule: RuleId,
    pub status: Status,
    /// The file concerned as a node path (`/usr/bin/kubelet`), never the host path of a staged tree.
    pub path: Option<String>,
    /// What is wrong and what to do about it (or, for a pass, what was checked).
    pub message: String,
}

impl CheckResult {
    pub(crate) fn pass(rule: RuleId, path: Option<&str>, message: impl Into<String>) -> Self {
        Self::new(rule, Status::Pass, path, message)
    }

    pub(crate) fn fail(rule: RuleId, path: Option<&str>, message: impl Into<String>) -> Self {
        Self::new(rule, Status::Fail, path, message)
    }

    pub(crate) fn warn(rule: RuleId, path: Option<&str>, message: impl Into<String>) -> Self {
        Self::new(rule, Status::Warn, path, message)
    }

    fn new(rule: RuleId, status: Status, path: Option<&str>, message: impl Into<String>) -> Self {
        CheckResult {
            rule,
            status,
            path: path.map(tree::node_path),
            message: message.into(),
        }
    }
}

/// Counts of results by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    pub warnings: usize,
}

/// Everything one run of the checks found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// The tree that was checked (a host path; `/` on a node).
    pub root: PathBuf,
    /// Results in rule order.
    pub results: Vec<CheckResult>,
    /// Names of stand-in artifacts (from the lock). Not empty means a DEMO image.
    pub standins: Vec<String>,
}

impl CheckReport {
    /// True when no result failed (warnings allowed).
    pub fn passed(&self) -> bool {
        self.results.iter().all(|r| r.status != Status::Fail)
    }

    /// Counts of results by status.
    pub fn summary(&self) -> Summary {
        let mut summary = Summary::default();
        for result in &self.results {
            match result.status {
                Status::Pass => summary.passed += 1,
                Status::Fail => summary.failed += 1,
                Status::Warn => summary.warnings += 1,
            }
        }
        summary
    }

    /// Results that failed.
    pub fn failures(&self) -> impl Iterator<Item = &CheckResult> {
        self.results.iter().filter(|r| r.status == Status::Fail)
    }

    /// Human-readable report: a DEMO banner when there are stand-ins, one line per result
    /// (`FAIL sysctl /usr/lib/sysctl.d/90-kubernetes.conf: …`), and a summary line.
    pub fn render_human(&self) -> String {
        let mut out = String::new();
        if !self.standins.is_empty() {
            let _ = writeln!(
                out,
                "*** DEMO IMAGE: stand-ins replace {} — this image must not be used as a real node ***",
                self.standins.join(", ")
            );
        }
        for result in &self.results {
            let _ = match &result.path {
                Some(path) => writeln!(
                    out,
                    "{} {} {}: {}",
                    result.status.label(),
                    result.rule,
                    path,
                    result.message
                ),
                None => writeln!(
                    out,
                    "{} {}: {}",
                    result.status.label(),
                    result.rule,
                    result.message
                ),
            };
        }
        let summary = self.summary();
        let _ = writeln!(
            out,
            "{} passed, {} failed, {} warning{}",
            summary.passed,
            summary.failed,
            summary.warnings,
            if summary.warnings == 1 { "" } else { "s" }
        );
        out
    }
}

impl Serialize for CheckReport {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Json<'a> {
            format_version: u32,
            root: String,
            passed: bool,
            summary: Summary,
            standins: &'a [String],
            results: &'a [CheckResult],
        }
        Json {
            format_version: REPORT_FORMAT_VERSION,
            root: self.root.display().to_string(),
            passed: self.passed(),
            summary: self.summary(),
            standins: &self.standins,
            results: &self.results,
        }
        .serialize(serializer)
    }
}

/// Runs every rule of [`RuleSet::Tree`] against the tree rooted at `root`.
pub fn check_tree(root: &Path) -> CheckReport {
    check(root, RuleSet::Tree)
}

/// Runs one rule set against the tree rooted at `root` (live rules look at this host's /proc and /sys).
pub fn check(root: &Path, set: RuleSet) -> CheckReport {
    check_with_host(root, set, &HostView::default())
}

/// Runs one rule set; live rules look at `host`.
pub fn check_with_host(root: &Path, set: RuleSet, host: &HostView) -> CheckReport {
    let mut ctx = Context::new(root);
    ctx.host = host.clone();
    let mut results = Vec::new();
    for &rule in set.rules() {
        let mut found = if rule.needs_lock() && ctx.lock.is_err() {
            vec![CheckResult::warn(
                rule,
                None,
                "not checked: the image lock could not be read (see image-lock)",
            )]
        } else {
            run_rule(rule, &ctx)
        };
        cap_failures(rule, &mut found);
        results.extend(found);
    }
    let standins = match &ctx.lock {
        Ok(lock) => lock.standins().into_iter().map(str::to_owned).collect(),
        Err(_) => Vec::new(),
    };
    CheckReport {
        root: root.to_path_buf(),
        results,
        standins,
    }
}

/// What the rules share: the tree and the lock, read once.
pub(crate) struct Context<'a> {
    pub(crate) tree: Tree<'a>,
    /// The parsed lock, or what is wrong with it ("is missing", …).
    pub(crate) lock: Result<ImageLock, String>,
    /// The running host's /proc and /sys, for the live rules.
    pub(crate) host: HostView,
}

impl<'a> Context<'a> {
    fn new(root: &'a Path) -> Self {
        let tree = Tree::new(root);
        Context {
            tree,
            lock: image::read_lock(&tree),
            host: HostView::default(),
        }
    }
}

fn run_rule(rule: RuleId, ctx: &Context<'_>) -> Vec<CheckResult> {
    match rule {
        RuleId::ImageLock => image::check_lock(ctx),
        RuleId::Binaries => image::check_binaries(ctx),
        RuleId::Standin => image::check_standins(ctx),
        RuleId::CniLoopback => image::check_cni_loopback(ctx),
        RuleId::Sysctl => sysctl::check(ctx),
        RuleId::ModulesLoad => modules_load::check(ctx),
        RuleId::RoleDropins => units::check_role_dropins(ctx),
        RuleId::AgentUnit => units::check_agent_unit(ctx),
        RuleId::ContainerdConfig => containerd::check(ctx),
        RuleId::Sbom => image::check_sbom(ctx),
        RuleId::Images => images::check(ctx),
        RuleId::LiveSysctl => live::check_sysctl(&ctx.host),
        RuleId::LiveModules => live::check_modules(&ctx.host),
        RuleId::Swap => live::check_swap(&ctx.host),
        RuleId::CgroupV2 => live::check_cgroup_v2(&ctx.host),
    }
}

/// Keeps the first [`MAX_FAILURES_PER_RULE`] failures of a rule and sums up the rest in one more failure.
fn cap_failures(rule: RuleId, results: &mut Vec<CheckResult>) {
    let failures = results.iter().filter(|r| r.status == Status::Fail).count();
    if failures <= MAX_FAILURES_PER_RULE {
        return;
    }
    let mut kept = 0;
    results.retain(|r| {
        if r.status != Status::Fail {
            return true;
        }
        kept += 1;
        kept <= MAX_FAILURES_PER_RULE
    });
    results.push(CheckResult::fail(
        rule,
        None,
        format!(
            "{} more failures of this rule not listed — fix the ones above and run the check again",
            failures - MAX_FAILURES_PER_RULE
        ),
    ));
}

/// Describes an I/O error on a node path for a message: "is missing" or "cannot be read (…)".
pub(crate) fn describe_io(err: &std::io::Error) -> String {
    if err.kind() == std::io::ErrorKind::NotFound {
        "is missing".to_owned()
    } else {
        format!("cannot be read ({err})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_names_match_serde_names() -> Result<(), serde_json::Error> {
        for &rule in RuleSet::Tree.rules() {
            assert_eq!(
                serde_json::to_string(&rule)?,
                format!("\"{}\"", rule.as_str())
            );
        }
        Ok(())
    }

    #[test]
    fn failures_are_capped_with_a_count() {
        let mut results: Vec<CheckResult> = (0..25)
            .map(|i| CheckResult::fail(RuleId::Sbom, Some(&format!("/f{i}")), "differs"))
            .collect();
        cap_failures(RuleId::Sbom, &mut results);
        assert_eq!(results.len(), MAX_FAILURES_PER_RULE + 1);
        assert_eq!(results[19].path.as_deref(), Some("/f19"));
        assert!(results[20].message.starts_with("5 more failures"));
        assert_eq!(results[20].path, None);
    }

    #[test]
    fn human_rendering_has_banner_lines_and_summary() {
        let report = CheckReport {
            root: PathBuf::from("/tmp/tree"),
            results: vec![
                CheckResult::fail(
                    RuleId::Sysctl,
                    Some("usr/lib/sysctl.d/90-kubernetes.conf"),
                    "net.ipv4.ip_forward is not set to 1 — add it",
                ),
                CheckResult::warn(RuleId::Standin, None, "demo"),
                CheckResult::pass(RuleId::Sbom, None, "ok"),
            ],
            standins: vec!["kubelet".to_owned()],
        };
        let text = report.render_human();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains("DEMO IMAGE") && lines[0].contains("kubelet"));
        assert_eq!(
            lines[1],
            "FAIL sysctl /usr/lib/sysctl.d/90-kubernetes.conf: net.ipv4.ip_forward is not set to 1 — add it"
        );
        assert_eq!(lines[2], "WARN standin: demo");
        assert_eq!(lines[4], "1 passed, 1 failed, 1 warning");
        assert!(!report.passed());
    }
}
