//! End-to-end tests of the host checks: a complete, good image tree built in a temporary directory passes; each
//! required thing removed or broken fails with exactly the expected rule and node path; the `k8s-agent check`
//! binary exits 0 / 1 / 2 and its `--json` output parses.

use k8s_agent::checks::{CheckReport, RuleId, RuleSet, Status, check_tree};
use k8s_agent::image_info::{
    IMAGE_INFO_DIR, ImageLock, InstalledFile, LOCK_FILE, LOCK_SCHEMA_VERSION, LockedArtifact,
    SBOM_FILE, SpdxChecksum, SpdxCreationInfo, SpdxDocument, SpdxFile,
};
use k8s_agent::node_role::{AGENT_UNIT, NodeRole, UNIT_DIR};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tempfile::TempDir;

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

const SYSCTL: &str = "/usr/lib/sysctl.d/90-kubernetes.conf";
const MODULES: &str = "/usr/lib/modules-load.d/kubernetes.conf";
const CONTAINERD: &str = "/etc/containerd/config.toml";
const LOOPBACK: &str = "/opt/cni/bin/loopback";
const AGENT_LINK: &str = "/etc/systemd/system/multi-user.target.wants/k8s-agent.service";

const GOOD_SYSCTL: &str = "# kubernetes\nnet.ipv4.ip_forward = 1\nnet.bridge.bridge-nf-call-iptables = 1\n\
                           net.bridge.bridge-nf-call-ip6tables = 1\n";
const GOOD_MODULES: &str = "# kubernetes\noverlay\nbr_netfilter\n";
const GOOD_CONTAINERD: &str = r#"version = 3

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"

[plugins."io.containerd.cri.v1.runtime".containerd]
  default_runtime_name = "runc"

[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
  SystemdCgroup = true
"#;

/// Executables by artifact.
const EXECUTABLES: &[(&str, &[&str])] = &[
    (
        "kubernetes",
        &[
            "/usr/bin/kube-apiserver",
            "/usr/bin/kube-controller-manager",
            "/usr/bin/kube-scheduler",
            "/usr/bin/kubelet",
            "/usr/bin/kube-proxy",
            "/usr/bin/kubectl",
        ],
    ),
    ("etcd", &["/usr/bin/etcd", "/usr/bin/etcdctl"]),
    ("containerd", &["/usr/bin/containerd", "/usr/bin/runc"]),
    (
        "cni-plugins",
        &[
            "/opt/cni/bin/bridge",
            "/opt/cni/bin/host-local",
            LOOPBACK,
            "/opt/cni/bin/portmap",
        ],
    ),
    ("k8s-agent", &["/usr/bin/k8s-agent"]),
];

/// Node path of a unit file.
fn unit(name: &str) -> String {
    format!("/{UNIT_DIR}/{name}")
}

/// Node path of a role unit's drop-in.
fn dropin(name: &str) -> String {
    format!("/{UNIT_DIR}/{name}.d/role.conf")
}

/// Host path of a node path under `root`.
fn host(root: &Path, node_path: &str) -> PathBuf {
    root.join(node_path.trim_start_matches('/'))
}

fn write(root: &Path, node_path: &str, content: &[u8], mode: u32) -> TestResult {
    let path = host(root, node_path);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&path, content)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn chmod(root: &Path, node_path: &str, mode: u32) -> TestResult {
    std::fs::set_permissions(host(root, node_path), std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn remove(root: &Path, node_path: &str) -> TestResult {
    std::fs::remove_file(host(root, node_path))?;
    Ok(())
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A staged image tree: every file the checks require, plus the lock and the SBOM written by [`Fixture::seal`].
struct Fixture {
    dir: TempDir,
    lock: ImageLock,
}

impl Fixture {
    /// Writes every required file; `standins` names artifacts marked as stand-ins. Call [`Fixture::seal`] next.
    fn new(standins: &[&str]) -> TestResult<Self> {
        let dir = tempfile::tempdir()?;
        let root = dir.path();
        let mut artifacts = Vec::new();
        for (name, paths) in EXECUTABLES {
            let mut files = Vec::new();
            for path in *paths {
                let content = format!("#!/bin/sh\necho {path}\n");
                write(root, path, content.as_bytes(), 0o755)?;
                files.push(InstalledFile {
                    path: (*path).to_owned(),
                    mode: 0o755,
                    sha256: sha256_hex(content.as_bytes()),
                });
            }
            artifacts.push(artifact(name, standins.contains(name), files));
        }

        let mut content: Vec<(String, String)> = vec![
            (SYSCTL.to_owned(), GOOD_SYSCTL.to_owned()),
            (MODULES.to_owned(), GOOD_MODULES.to_owned()),
            (CONTAINERD.to_owned(), GOOD_CONTAINERD.to_owned()),
            (
                unit(AGENT_UNIT),
                "[Unit]\nDescription=k8s-agent\n\n[Service]\nExecStart=/usr/bin/k8s-agent run\n\n[Install]\n\
                 WantedBy=multi-user.target\n"
                    .to_owned(),
            ),
        ];
        for role in NodeRole::ALL {
            for name in role.units() {
                let service = name.trim_end_matches(".service");
                content.push((
                    unit(name),
                    format!(
                        "[Unit]\nDescription={service}\n\n[Service]\nExecStart=/usr/bin/{service}\n"
                    ),
                ));
                content.push((
                    dropin(name),
                    format!("# role gate\n[Unit]\n{}\n", role.condition_line()),
                ));
            }
        }
        let mut files = Vec::new();
        for (path, text) in &content {
            write(root, path, text.as_bytes(), 0o644)?;
            files.push(InstalledFile {
                path: path.clone(),
                mode: 0o644,
                sha256: sha256_hex(text.as_bytes()),
            });
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        artifacts.push(artifact("node-content", false, files));

        let link = host(root, AGENT_LINK);
        if let Some(parent) = link.parent() {
            std::fs::create_dir_all(parent)?;
        }
        // Absolute, as `systemctl enable` writes it: it must resolve inside the tree, not on this host.
        symlink(format!("/{UNIT_DIR}/{AGENT_UNIT}"), link)?;

        let lock = ImageLock {
            lock_version: LOCK_SCHEMA_VERSION,
            image_name: "test-node".into(),
            kubernetes_version: "1.35.0".into(),
            arch: "amd64".into(),
            source_date_epoch: 1_700_000_000,
            host_packages: vec!["conntrack".into(), "socat".into()],
            artifacts,
        };
        Ok(Fixture { dir, lock })
    }

    /// A complete, good, sealed tree.
    fn good() -> TestResult<Self> {
        let mut fixture = Fixture::new(&[])?;
        fixture.seal()?;
        Ok(fixture)
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Writes the lock (sha256 of every file that exists taken from disk, as a build would) and an SBOM of every
    /// regular file outside /usr/share/k8s-image/.
    fn seal(&mut self) -> TestResult {
        let root = self.dir.path().to_path_buf();
        for artifact in &mut self.lock.artifacts {
            for file in &mut artifact.files {
                if let Ok(bytes) = std::fs::read(host(&root, &file.path)) {
                    file.sha256 = sha256_hex(&bytes);
                }
            }
        }
        write(
            &root,
            &format!("/{IMAGE_INFO_DIR}/{LOCK_FILE}"),
            serde_json::to_string(&self.lock)?.as_bytes(),
            0o644,
        )?;

        let mut regular = Vec::new();
        walk(&root, &root, &mut regular)?;
        regular.sort();
        let info_prefix = format!("{IMAGE_INFO_DIR}/");
        let mut files = Vec::new();
        for (i, rel) in regular
            .iter()
            .filter(|rel| !rel.starts_with(&info_prefix))
            .enumerate()
        {
            files.push(SpdxFile {
                spdx_id: format!("SPDXRef-File-{i}"),
                file_name: format!("./{rel}"),
                checksums: vec![SpdxChecksum {
                    algorithm: "SHA256".into(),
                    checksum_value: sha256_hex(&std::fs::read(root.join(rel))?),
                }],
                license_concluded: "NOASSERTION".into(),
                copyright_text: "NOASSERTION".into(),
            });
        }
        let sbom = SpdxDocument {
            spdx_version: "SPDX-2.3".into(),
            spdx_id: "SPDXRef-DOCUMENT".into(),
            name: "test-node".into(),
            data_license: "CC0-1.0".into(),
            document_namespace: "https://example.invalid/spdx/test-node".into(),
            creation_info: SpdxCreationInfo {
                created: "2023-11-14T22:13:20Z".into(),
                creators: vec!["Tool: check_tree test".into()],
            },
            packages: vec![],
            files,
            relationships: vec![],
        };
        write(
            &root,
            &format!("/{IMAGE_INFO_DIR}/{SBOM_FILE}"),
            serde_json::to_string(&sbom)?.as_bytes(),
            0o644,
        )?;
        Ok(())
    }

    fn report(&self) -> CheckReport {
        check_tree(self.root())
    }
}

fn artifact(name: &str, standin: bool, files: Vec<InstalledFile>) -> LockedArtifact {
    LockedArtifact {
        name: name.to_owned(),
        version: "1.0.0".to_owned(),
        url: format!("https://example.invalid/{name}.tar.gz"),
        checksum: format!("sha256:{}", "0".repeat(64)),
        checksum_source: "manifest".to_owned(),
        standin,
        files,
        image: None,
        go: None,
    }
}

/// Relative paths of every regular file (symlinks not followed).
fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> TestResult {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk(root, &entry.path(), out)?;
        } else if kind.is_file() {
            let rel = entry
                .path()
                .strip_prefix(root)?
                .to_string_lossy()
                .into_owned();
            out.push(rel);
        }
    }
    Ok(())
}

/// `(rule, node path)` of every failure; `""` for results without a path.
fn failures(report: &CheckReport) -> BTreeSet<(RuleId, String)> {
    report
        .failures()
        .map(|r| (r.rule, r.path.clone().unwrap_or_default()))
        .collect()
}

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

fn replace_in(root: &Path, node_path: &str, from: &str, to: &str) -> TestResult {
    let path = host(root, node_path);
    let text = std::fs::read_to_string(&path)?;
    assert!(text.contains(from), "{node_path} does not contain {from:?}");
    std::fs::write(&path, text.replace(from, to))?;
    Ok(())
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

fn run_binary(args: &[&str]) -> TestResult<Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_k8s-agent"))
        .args(args)
        .output()?)
}

fn root_arg(fixture: &Fixture) -> TestResult<&str> {
    fixture
        .root()
        .to_str()
        .ok_or_else(|| "temp dir is not UTF-8".into())
}

#[test]
fn the_binary_exits_0_on_a_good_tree_and_1_on_a_broken_one() -> TestResult {
    let good = Fixture::good()?;
    let out = run_binary(&["check", "--root", root_arg(&good)?])?;
    let stdout = String::from_utf8(out.stdout)?;
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("PASS sysctl /usr/lib/sysctl.d/90-kubernetes.conf: "),
        "{stdout}"
    );
    assert!(
        stdout.ends_with(" passed, 0 failed, 0 warnings\n"),
        "{stdout}"
    );

    let out = run_binary(&["check", "--root", root_arg(&good)?, "--json"])?;
    assert_eq!(out.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(json["format_version"], 1);
    assert_eq!(json["passed"], true);
    assert_eq!(json["root"], root_arg(&good)?);
    assert_eq!(json["summary"]["failed"], 0);
    assert_eq!(json["standins"], serde_json::json!([]));

    let mut broken = Fixture::new(&[])?;
    replace_in(
        broken.root(),
        SYSCTL,
        "net.ipv4.ip_forward = 1",
        "net.ipv4.ip_forward = 0",
    )?;
    broken.seal()?;
    let out = run_binary(&["check", "--root", root_arg(&broken)?])?;
    let stdout = String::from_utf8(out.stdout)?;
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(
            "FAIL sysctl /usr/lib/sysctl.d/90-kubernetes.conf: net.ipv4.ip_forward is not set to 1"
        ),
        "{stdout}"
    );

    let out = run_binary(&["check", "--json", "--root", root_arg(&broken)?])?;
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(json["passed"], false);
    assert_eq!(json["summary"]["failed"], 1);
    let results = json["results"]
        .as_array()
        .ok_or("results is not an array")?;
    let failed: Vec<_> = results.iter().filter(|r| r["status"] == "fail").collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["rule"], "sysctl");
    assert_eq!(failed[0]["path"], SYSCTL);
    assert!(failed[0]["message"].is_string());
    Ok(())
}

#[test]
fn the_binary_exits_2_when_the_check_cannot_run() -> TestResult {
    let dir = tempfile::tempdir()?;
    let missing = dir.path().join("missing");
    let out = run_binary(&["check", "--root", missing.to_str().ok_or("not UTF-8")?])?;
    let stderr = String::from_utf8(out.stderr)?;
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.starts_with("error: cannot use --root "), "{stderr}");
    assert!(stderr.contains("\nhint: "), "{stderr}");
    assert!(out.stdout.is_empty());

    let file = dir.path().join("file");
    std::fs::write(&file, "")?;
    let out = run_binary(&["check", "--root", file.to_str().ok_or("not UTF-8")?])?;
    assert_eq!(out.status.code(), Some(2));

    let out = run_binary(&["check", "--no-such-flag"])?;
    assert_eq!(out.status.code(), Some(2));
    let out = run_binary(&["--help"])?;
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8(out.stdout)?.contains("Exit codes:"));
    Ok(())
}
