//! Live host rules: what the running kernel says, not what files say. They read `/proc` and `/sys` of the host
//! the agent runs on (a [`HostView`], so tests can point them at a prepared directory), never the `--root` tree.
//!
//! - `live-sysctl`: `net.ipv4.ip_forward` and `net.bridge.bridge-nf-call-ip{,6}tables` are 1 in `/proc/sys`
//!   (the bridge keys exist only once `br_netfilter` is loaded: their absence is reported as that).
//! - `live-modules`: `overlay` is a known filesystem (`/proc/filesystems`) and `br_netfilter` is loaded
//!   (`/sys/module/br_netfilter`, or its sysctls under `/proc/sys/net/bridge/`: a built-in br_netfilter without
//!   parameters has no `/sys/module` entry) — built-in or module, either is fine.
//! - `swap`: no active swap in `/proc/swaps` (kubelet's `failSwapOn: true`).
//! - `cgroup-v2`: `/sys/fs/cgroup` is the unified hierarchy (`cgroup.controllers` at its top); Kubernetes 1.35's
//!   kubelet refuses cgroup v1, and a hybrid layout is v1 for kubelet's purposes.

use super::{CheckResult, RuleId};
use std::path::PathBuf;

/// Where the live rules look: the host's `/proc` and `/sys` (or a test directory standing in for them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostView {
    pub proc_dir: PathBuf,
    pub sys_dir: PathBuf,
}

impl Default for HostView {
    fn default() -> Self {
        HostView {
            proc_dir: PathBuf::from("/proc"),
            sys_dir: PathBuf::from("/sys"),
        }
    }
}

/// The sysctls that must be 1 on a node, as `/proc/sys` relative paths.
const LIVE_SYSCTLS: &[(&str, &str)] = &[
    ("net.ipv4.ip_forward", "net/ipv4/ip_forward"),
    (
        "net.bridge.bridge-nf-call-iptables",
        "net/bridge/bridge-nf-call-iptables",
    ),
    (
        "net.bridge.bridge-nf-call-ip6tables",
        "net/bridge/bridge-nf-call-ip6tables",
    ),
];

pub(crate) fn check_sysctl(host: &HostView) -> Vec<CheckResult> {
    let rule = RuleId::LiveSysctl;
    let mut out = Vec::new();
    for (key, rel) in LIVE_SYSCTLS {
        let path = host.proc_dir.join("sys").join(rel);
        let node_path = format!("/proc/sys/{rel}");
        match std::fs::read_to_string(&path) {
            Ok(v) if v.trim() == "1" => {}
            Ok(v) => out.push(CheckResult::fail(
                rule,
                Some(&node_path),
                format!(
                    "{key} is {} in the running kernel, not 1 — run `sysctl --system` (systemd-sysctl applies \
                     /usr/lib/sysctl.d/90-kubernetes.conf at boot) and check nothing in /etc/sysctl.d overrides it",
                    v.trim()
                ),
            )),
            Err(_) if rel.starts_with("net/bridge/") => out.push(CheckResult::fail(
                rule,
                Some(&node_path),
                format!(
                    "{key} does not exist: br_netfilter is not loaded — `modprobe br_netfilter` then \
                     `sysctl --system` (modules-load.d loads it at boot)"
                ),
            )),
            Err(e) => out.push(CheckResult::fail(
                rule,
                Some(&node_path),
                format!("{key} cannot be read: {e}"),
            )),
        }
    }
    if out.is_empty() {
        out.push(CheckResult::pass(
            rule,
            None,
            "ip_forward and bridge-nf-call-ip{,6}tables are 1 in the running kernel",
        ));
    }
    out
}

pub(crate) fn check_modules(host: &HostView) -> Vec<CheckResult> {
    let rule = RuleId::LiveModules;
    let mut out = Vec::new();
    let filesystems =
        std::fs::read_to_string(host.proc_dir.join("filesystems")).unwrap_or_default();
    if !filesystems
        .lines()
        .any(|l| l.split_whitespace().last() == Some("overlay"))
    {
        out.push(CheckResult::fail(
            rule,
            Some("/proc/filesystems"),
            "the overlay filesystem is not available — `modprobe overlay` (containerd's overlayfs snapshotter needs it)",
        ));
    }
    if !host.sys_dir.join("module/br_netfilter").exists()
        && !host
            .proc_dir
            .join("sys/net/bridge/bridge-nf-call-iptables")
            .exists()
    {
        out.push(CheckResult::fail(
            rule,
            Some("/sys/module/br_netfilter"),
            "br_netfilter is not loaded — `modprobe br_netfilter` (pod traffic on the bridge must pass iptables)",
        ));
    }
    if out.is_empty() {
        out.push(CheckResult::pass(
            rule,
            None,
            "overlay and br_netfilter are available",
        ));
    }
    out
}

pub(crate) fn check_swap(host: &HostView) -> Vec<CheckResult> {
    let rule = RuleId::Swap;
    let swaps = match std::fs::read_to_string(host.proc_dir.join("swaps")) {
        Ok(s) => s,
        Err(e) => {
            return vec![CheckResult::fail(
                rule,
                Some("/proc/swaps"),
                format!("cannot be read: {e}"),
            )];
        }
    };
    let active: Vec<&str> = swaps
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    if active.is_empty() {
        vec![CheckResult::pass(rule, None, "no swap is active")]
    } else {
        vec![CheckResult::fail(
            rule,
            Some("/proc/swaps"),
            format!(
                "swap is active on {} — kubelet refuses to start with swap (failSwapOn: true): `swapoff -a` and \
                 remove it from /etc/fstab",
                active.join(", ")
            ),
        )]
    }
}

pub(crate) fn check_cgroup_v2(host: &HostView) -> Vec<CheckResult> {
    let rule = RuleId::CgroupV2;
    if host.sys_dir.join("fs/cgroup/cgroup.controllers").exists() {
        vec![CheckResult::pass(
            rule,
            None,
            "/sys/fs/cgroup is the unified (v2) hierarchy",
        )]
    } else {
        let hybrid = host
            .sys_dir
            .join("fs/cgroup/unified/cgroup.controllers")
            .exists();
        vec![CheckResult::fail(
            rule,
            Some("/sys/fs/cgroup"),
            format!(
                "/sys/fs/cgroup is cgroup v1{} — kubelet 1.35 refuses cgroup v1: boot with \
                 systemd.unified_cgroup_hierarchy=1 (the default of current distributions)",
                if hybrid {
                    " (hybrid: v2 only at /sys/fs/cgroup/unified)"
                } else {
                    ""
                }
            ),
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Status;

    /// A directory standing in for /proc and /sys (a test double of the host's kernel view).
    fn fake_host(
        sysctl: &[(&str, &str)],
        modules: &[&str],
        swaps: &str,
        v2: bool,
    ) -> (tempfile::TempDir, HostView) {
        let dir = tempfile::tempdir().expect("tempdir");
        let proc_dir = dir.path().join("proc");
        let sys_dir = dir.path().join("sys");
        for (rel, value) in sysctl {
            let p = proc_dir.join("sys").join(rel);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, format!("{value}\n")).expect("write");
        }
        std::fs::create_dir_all(&proc_dir).expect("mkdir");
        std::fs::write(
            proc_dir.join("filesystems"),
            "nodev\tsysfs\nnodev\toverlay\n",
        )
        .expect("write");
        std::fs::write(proc_dir.join("swaps"), swaps).expect("write");
        for m in modules {
            std::fs::create_dir_all(sys_dir.join("module").join(m)).expect("mkdir");
        }
        std::fs::create_dir_all(sys_dir.join("fs/cgroup")).expect("mkdir");
        if v2 {
            std::fs::write(sys_dir.join("fs/cgroup/cgroup.controllers"), "cpu memory\n")
                .expect("write");
        }
        (dir, HostView { proc_dir, sys_dir })
    }

    const HEADER: &str = "Filename\tType\tSize\tUsed\tPriority\n";
    const GOOD_SYSCTL: &[(&str, &str)] = &[
        ("net/ipv4/ip_forward", "1"),
        ("net/bridge/bridge-nf-call-iptables", "1"),
        ("net/bridge/bridge-nf-call-ip6tables", "1"),
    ];

    #[test]
    fn a_good_host_passes_every_live_rule() {
        let (_d, host) = fake_host(GOOD_SYSCTL, &["br_netfilter"], HEADER, true);
        for results in [
            check_sysctl(&host),
            check_modules(&host),
            check_swap(&host),
            check_cgroup_v2(&host),
        ] {
            assert!(
                results.iter().all(|r| r.status == Status::Pass),
                "{results:?}"
            );
        }
    }

    #[test]
    fn a_built_in_br_netfilter_without_a_sys_module_entry_counts_as_loaded() {
        let (_d, host) = fake_host(GOOD_SYSCTL, &[], HEADER, true);
        let modules = check_modules(&host);
        assert!(
            modules.iter().all(|r| r.status == Status::Pass),
            "{modules:?}"
        );
    }

    #[test]
    fn each_live_problem_is_named() {
        let (_d, host) = fake_host(
            &[("net/ipv4/ip_forward", "0")],
            &[],
            &format!("{HEADER}/swapfile file 1024 0 -2\n"),
            false,
        );
        let sysctl = check_sysctl(&host);
        assert_eq!(sysctl.len(), 3);
        assert!(
            sysctl[0].message.contains("is 0 in the running kernel"),
            "{:?}",
            sysctl[0]
        );
        assert!(
            sysctl[1].message.contains("br_netfilter is not loaded"),
            "{:?}",
            sysctl[1]
        );
        let modules = check_modules(&host);
        assert_eq!(
            modules.iter().filter(|r| r.status == Status::Fail).count(),
            1
        );
        assert_eq!(modules[0].path.as_deref(), Some("/sys/module/br_netfilter"));
        let swap = check_swap(&host);
        assert!(swap[0].message.contains("/swapfile"), "{swap:?}");
        let cg = check_cgroup_v2(&host);
        assert_eq!(cg[0].status, Status::Fail);
    }
}
