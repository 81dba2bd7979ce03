//! End-to-end tests of the host checks: a complete, good image tree built in a temporary directory passes; each
//! required thing removed or broken fails with exactly the expected rule and node path. (The `k8s-agent check`
//! binary's exit codes and `--json` output: `agent/tests/check_cli.rs`, over the same fixture.)

mod support;

use support::tree_fixture::*;

#[test]
fn a_complete_tree_passes_every_rule() -> TestResult {
    let fixture = Fixture::good()?;
    let report = fixture.report();
    assert!(report.passed(), "{}", report.render_human());
    let summary = report.summary();
    assert_eq!(
        (summary.failed, summary.warnings),
        (0, 0),
        "{}",
        report.render_human()
    );
    for rule in RuleSet::Tree.rules() {
        assert!(
            report
                .results
                .iter()
                .any(|r| r.rule == *rule && r.status == Status::Pass),
            "no pass for {rule}:\n{}",
            report.render_human()
        );
    }
    assert!(report.standins.is_empty());
    assert!(!report.render_human().contains("DEMO"));
    Ok(())
}

/// When a case breaks the tree: before the lock and SBOM are written (the build produced a bad but consistent
/// image) or after (the tree changed since the build).
#[derive(Clone, Copy)]
enum When {
    BeforeSeal,
    AfterSeal,
}

struct Case {
    name: &'static str,
    when: When,
    breaks: fn(&Path) -> TestResult,
    /// Every failure expected, as `(rule, node path)`.
    expected: &'static [(RuleId, &'static str)],
    /// Text the first expected failure's message must contain.
    message: &'static str,
}

const CASES: &[Case] = &[
    Case {
        name: "binary missing",
        when: When::BeforeSeal,
        breaks: |root| remove(root, "/usr/bin/kubelet"),
        expected: &[
            (RuleId::Binaries, "/usr/bin/kubelet"),
            (RuleId::Sbom, "/usr/bin/kubelet"),
        ],
        message: "is missing",
    },
    Case {
        name: "binary not executable",
        when: When::BeforeSeal,
        breaks: |root| chmod(root, "/usr/bin/kube-proxy", 0o644),
        expected: &[(RuleId::Binaries, "/usr/bin/kube-proxy")],
        message: "is not executable (mode 0644 on disk, the lock says 0755)",
    },
    Case {
        name: "CNI loopback missing",
        when: When::BeforeSeal,
        breaks: |root| remove(root, LOOPBACK),
        expected: &[
            (RuleId::CniLoopback, LOOPBACK),
            (RuleId::Binaries, LOOPBACK),
            (RuleId::Sbom, LOOPBACK),
        ],
        message: "is missing",
    },
    Case {
        name: "CNI loopback not executable",
        when: When::BeforeSeal,
        breaks: |root| chmod(root, LOOPBACK, 0o600),
        expected: &[
            (RuleId::CniLoopback, LOOPBACK),
            (RuleId::Binaries, LOOPBACK),
        ],
        message: "is not executable",
    },
    Case {
        name: "CNI loopback is an absolute symlink to a host file",
        when: When::BeforeSeal,
        breaks: |root| {
            remove(root, LOOPBACK)?;
            // /bin/sh exists on the host running the test, but not in the tree.
            symlink("/bin/sh", host(root, LOOPBACK))?;
            Ok(())
        },
        expected: &[
            (RuleId::CniLoopback, LOOPBACK),
            (RuleId::Binaries, LOOPBACK),
            (RuleId::Sbom, LOOPBACK),
        ],
        message: "is missing",
    },
    Case {
        name: "sysctl key missing",
        when: When::BeforeSeal,
        breaks: |root| {
            replace_in(
                root,
                SYSCTL,
                "net.bridge.bridge-nf-call-ip6tables = 1\n",
                "",
            )
        },
        expected: &[(RuleId::Sysctl, SYSCTL)],
        message: "net.bridge.bridge-nf-call-ip6tables is not set to 1",
    },
    Case {
        name: "sysctl key set to 0",
        when: When::BeforeSeal,
        breaks: |root| {
            replace_in(
                root,
                SYSCTL,
                "net.ipv4.ip_forward = 1",
                "net.ipv4.ip_forward = 0",
            )
        },
        expected: &[(RuleId::Sysctl, SYSCTL)],
        message: "net.ipv4.ip_forward is not set to 1 (line 2 sets it to `0`)",
    },
    Case {
        name: "br_netfilter not loaded",
        when: When::BeforeSeal,
        breaks: |root| replace_in(root, MODULES, "br_netfilter\n", "# br_netfilter\n"),
        expected: &[(RuleId::ModulesLoad, MODULES)],
        message: "add br_netfilter to /usr/lib/modules-load.d/kubernetes.conf",
    },
    Case {
        name: "role drop-in missing",
        when: When::BeforeSeal,
        breaks: |root| remove(root, &dropin("kubelet.service")),
        expected: &[
            (
                RuleId::RoleDropins,
                "/usr/lib/systemd/system/kubelet.service.d/role.conf",
            ),
            // The lock still lists it (as a build that lost it would).
            (
                RuleId::Sbom,
                "/usr/lib/systemd/system/kubelet.service.d/role.conf",
            ),
        ],
        message: "is missing",
    },
    Case {
        name: "drop-in with the other role's condition",
        when: When::BeforeSeal,
        breaks: |root| {
            replace_in(
                root,
                &dropin("kube-apiserver.service"),
                "kubernetes-masters",
                "kubernetes-minions",
            )
        },
        expected: &[(
            RuleId::RoleDropins,
            "/usr/lib/systemd/system/kube-apiserver.service.d/role.conf",
        )],
        message: "has the minion condition",
    },
    Case {
        name: "drop-in requiring both role files",
        when: When::BeforeSeal,
        breaks: |root| {
            replace_in(
                root,
                &dropin("kube-proxy.service"),
                "[Unit]\n",
                "[Unit]\nConditionPathExists=/etc/sysconfig/kubernetes-masters\n",
            )
        },
        expected: &[(
            RuleId::RoleDropins,
            "/usr/lib/systemd/system/kube-proxy.service.d/role.conf",
        )],
        message: "could never start",
    },
    Case {
        name: "empty drop-in",
        when: When::BeforeSeal,
        breaks: |root| write(root, &dropin("kube-scheduler.service"), b"", 0o644),
        expected: &[(
            RuleId::RoleDropins,
            "/usr/lib/systemd/system/kube-scheduler.service.d/role.conf",
        )],
        message: "does not contain `ConditionPathExists=/etc/sysconfig/kubernetes-masters` in [Unit]",
    },
    Case {
        name: "role condition outside [Unit]",
        when: When::BeforeSeal,
        breaks: |root| replace_in(root, &dropin("etcd.service"), "[Unit]", "[Service]"),
        expected: &[(
            RuleId::RoleDropins,
            "/usr/lib/systemd/system/etcd.service.d/role.conf",
        )],
        message: "not in [Unit]",
    },
    Case {
        name: "a later drop-in resets the role condition",
        when: When::BeforeSeal,
        breaks: |root| {
            write(
                root,
                "/usr/lib/systemd/system/weave.service.d/zz-override.conf",
                b"[Unit]\nConditionPathExists=\n",
                0o644,
            )
        },
        expected: &[(
            RuleId::RoleDropins,
            "/usr/lib/systemd/system/weave.service.d/zz-override.conf",
        )],
        message: "drops the minion condition",
    },
    Case {
        name: "role unit missing",
        when: When::BeforeSeal,
        breaks: |root| remove(root, &unit("weave.service")),
        expected: &[
            (RuleId::RoleDropins, "/usr/lib/systemd/system/weave.service"),
            (RuleId::Sbom, "/usr/lib/systemd/system/weave.service"),
        ],
        message: "is missing",
    },
    Case {
        name: "role unit enabled",
        when: When::BeforeSeal,
        breaks: |root| {
            symlink(
                "/usr/lib/systemd/system/kubelet.service",
                host(
                    root,
                    "/etc/systemd/system/multi-user.target.wants/kubelet.service",
                ),
            )?;
            Ok(())
        },
        expected: &[(
            RuleId::RoleDropins,
            "/etc/systemd/system/multi-user.target.wants/kubelet.service",
        )],
        message: "remove the link",
    },
    Case {
        name: "agent not enabled",
        when: When::BeforeSeal,
        breaks: |root| remove(root, AGENT_LINK),
        expected: &[(RuleId::AgentUnit, AGENT_LINK)],
        message: "is not enabled",
    },
    Case {
        name: "agent enabled by a dangling link",
        when: When::BeforeSeal,
        breaks: |root| {
            remove(root, AGENT_LINK)?;
            symlink(
                "/usr/lib/systemd/system/nothing.service",
                host(root, AGENT_LINK),
            )?;
            Ok(())
        },
        expected: &[(RuleId::AgentUnit, AGENT_LINK)],
        message: "dangling",
    },
    Case {
        name: "containerd uses devmapper",
        when: When::BeforeSeal,
        breaks: |root| replace_in(root, CONTAINERD, "\"overlayfs\"", "\"devmapper\""),
        expected: &[(RuleId::ContainerdConfig, CONTAINERD)],
        message: "devmapper",
    },
    Case {
        name: "containerd runc without SystemdCgroup",
        when: When::BeforeSeal,
        breaks: |root| {
            replace_in(
                root,
                CONTAINERD,
                "SystemdCgroup = true",
                "SystemdCgroup = false",
            )
        },
        expected: &[(RuleId::ContainerdConfig, CONTAINERD)],
        message: "SystemdCgroup` is false",
    },
    Case {
        name: "containerd config is not TOML",
        when: When::BeforeSeal,
        breaks: |root| replace_in(root, CONTAINERD, "version = 3\n", "version = = 3\n"),
        expected: &[(RuleId::ContainerdConfig, CONTAINERD)],
        message: "/etc/containerd/config.toml:1:",
    },
    Case {
        name: "a file differs from the SBOM",
        when: When::AfterSeal,
        breaks: |root| {
            write(
                root,
                "/usr/bin/kubectl",
                b"#!/bin/sh\necho tampered\n",
                0o755,
            )
        },
        expected: &[(RuleId::Sbom, "/usr/bin/kubectl")],
        message: "differs from the SBOM",
    },
    Case {
        name: "lock missing",
        when: When::AfterSeal,
        breaks: |root| remove(root, "/usr/share/k8s-image/lock.json"),
        expected: &[(RuleId::ImageLock, "/usr/share/k8s-image/lock.json")],
        message: "is missing",
    },
    Case {
        name: "lock not valid",
        when: When::AfterSeal,
        breaks: |root| {
            write(
                root,
                "/usr/share/k8s-image/lock.json",
                b"{\"lock_version\": 1}",
                0o644,
            )
        },
        expected: &[(RuleId::ImageLock, "/usr/share/k8s-image/lock.json")],
        message: "is not a valid image lock",
    },
    Case {
        name: "SBOM missing",
        when: When::AfterSeal,
        breaks: |root| remove(root, "/usr/share/k8s-image/sbom.spdx.json"),
        expected: &[(RuleId::Sbom, "/usr/share/k8s-image/sbom.spdx.json")],
        message: "is missing",
    },
];

#[test]
fn each_broken_requirement_fails_with_its_rule_and_path() -> TestResult {
    for case in CASES {
        let mut fixture = Fixture::new(&[])?;
        match case.when {
            When::BeforeSeal => {
                (case.breaks)(fixture.root())?;
                fixture.seal()?;
            }
            When::AfterSeal => {
                fixture.seal()?;
                (case.breaks)(fixture.root())?;
            }
        }
        let report = fixture.report();
        assert!(
            !report.passed(),
            "{}: passed\n{}",
            case.name,
            report.render_human()
        );
        let expected: BTreeSet<(RuleId, String)> = case
            .expected
            .iter()
            .map(|(rule, path)| (*rule, (*path).to_owned()))
            .collect();
        assert_eq!(
            failures(&report),
            expected,
            "{}:\n{}",
            case.name,
            report.render_human()
        );
        let (rule, path) = case.expected[0];
        let first = report
            .failures()
            .find(|r| r.rule == rule && r.path.as_deref() == Some(path))
            .ok_or("expected failure not found")?;
        assert!(
            first.message.contains(case.message),
            "{}: message {:?} does not contain {:?}",
            case.name,
            first.message,
            case.message
        );
        // No failure ever names the host path of the staged tree.
        let root = fixture.root().display().to_string();
        assert!(
            report
                .results
                .iter()
                .all(|r| !r.message.contains(&root)
                    && !r.path.as_deref().unwrap_or("").contains(&root)),
            "{}: a result names the staged tree's host path",
            case.name
        );
    }
    Ok(())
}

#[test]
fn an_install_section_on_a_role_unit_only_warns() -> TestResult {
    let mut fixture = Fixture::new(&[])?;
    write(
        fixture.root(),
        &unit("containerd.service"),
        b"[Unit]\nDescription=containerd\n[Service]\nExecStart=/usr/bin/containerd\n[Install]\nWantedBy=multi-user.target\n",
        0o644,
    )?;
    fixture.seal()?;
    let report = fixture.report();
    assert!(report.passed(), "{}", report.render_human());
    let warnings: Vec<_> = report
        .results
        .iter()
        .filter(|r| r.status == Status::Warn)
        .collect();
    assert_eq!(warnings.len(), 1, "{}", report.render_human());
    assert_eq!(warnings[0].rule, RuleId::RoleDropins);
    assert_eq!(
        warnings[0].path.as_deref(),
        Some("/usr/lib/systemd/system/containerd.service")
    );
    assert!(warnings[0].message.contains("[Install]"));
    Ok(())
}

#[test]
fn a_missing_lock_skips_the_rules_that_need_it_with_warnings() -> TestResult {
    let fixture = Fixture::good()?;
    remove(fixture.root(), "/usr/share/k8s-image/lock.json")?;
    let report = fixture.report();
    for rule in [RuleId::Binaries, RuleId::Standin] {
        let results: Vec<_> = report.results.iter().filter(|r| r.rule == rule).collect();
        assert_eq!(results.len(), 1, "{rule}");
        assert_eq!(results[0].status, Status::Warn);
        assert!(
            results[0].message.contains("not checked"),
            "{}",
            results[0].message
        );
    }
    Ok(())
}

#[test]
fn many_sbom_mismatches_are_capped() -> TestResult {
    let fixture = Fixture::good()?;
    for i in 0..30 {
        write(
            fixture.root(),
            &format!("/usr/share/doc/extra/{i}"),
            b"x",
            0o644,
        )?;
    }
    // Re-seal with the extra files, then change them all.
    let mut fixture = fixture;
    fixture.seal()?;
    for i in 0..30 {
        write(
            fixture.root(),
            &format!("/usr/share/doc/extra/{i}"),
            b"y",
            0o644,
        )?;
    }
    let report = fixture.report();
    let sbom: Vec<_> = report
        .failures()
        .filter(|r| r.rule == RuleId::Sbom)
        .collect();
    assert_eq!(sbom.len(), 21);
    assert_eq!(sbom[20].path, None);
    assert!(
        sbom[20].message.starts_with("10 more failures"),
        "{}",
        sbom[20].message
    );
    Ok(())
}

#[test]
fn standins_warn_that_the_image_is_a_demo() -> TestResult {
    let mut fixture = Fixture::new(&["kubernetes", "etcd"])?;
    fixture.seal()?;
    let report = fixture.report();
    assert!(report.passed(), "{}", report.render_human());
    assert_eq!(report.standins, vec!["kubernetes", "etcd"]);
    let warnings: Vec<_> = report
        .results
        .iter()
        .filter(|r| r.status == Status::Warn)
        .collect();
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].rule, RuleId::Standin);
    assert!(
        warnings[0].message.contains("DEMO IMAGE"),
        "{}",
        warnings[0].message
    );
    assert!(
        warnings[0]
            .message
            .contains("must not be used as a real node")
    );
    let human = report.render_human();
    assert!(
        human
            .lines()
            .next()
            .is_some_and(|l| l.contains("DEMO IMAGE")),
        "{human}"
    );
    assert!(human.ends_with("warning\n"), "{human}");
    Ok(())
}

/// The repository's own node content (units/, dropins/, sysctl.d/, modules-load.d/, files/ — laid out as
/// imagebuilder stages them) passes the rules about it. Directories that do not exist yet are skipped.
#[test]
fn the_repository_node_content_passes() -> TestResult {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let layout: &[(&str, &str)] = &[
        ("units", "/usr/lib/systemd/system"),
        ("dropins", "/usr/lib/systemd/system"),
        ("sysctl.d", "/usr/lib/sysctl.d"),
        ("modules-load.d", "/usr/lib/modules-load.d"),
        ("files", ""),
    ];
    let mut fixture = Fixture::new(&[])?;
    let mut copied = 0;
    for (sub, dest) in layout {
        let dir = repo.join(sub);
        if !dir.is_dir() {
            continue;
        }
        let mut files = Vec::new();
        walk(&dir, &dir, &mut files)?;
        for rel in files {
            if rel.starts_with('.') || rel.starts_with("README") {
                continue;
            }
            write(
                fixture.root(),
                &format!("{dest}/{rel}"),
                &std::fs::read(dir.join(&rel))?,
                0o644,
            )?;
            copied += 1;
        }
    }
    if copied == 0 {
        eprintln!("no node content in the repository yet; nothing to check");
        return Ok(());
    }
    fixture.seal()?;
    let report = fixture.report();
    assert!(report.passed(), "{}", report.render_human());
    Ok(())
}
