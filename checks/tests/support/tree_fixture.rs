//! The staged-image-tree fixture of the host-check tests: a complete, good image tree in a temporary directory,
//! and helpers to break it. Shared by `checks/tests/check_tree.rs` (the rules) and `agent/tests/check_cli.rs`
//! (the `k8s-agent check` binary), each of which uses part of it.
#![allow(dead_code, unused_imports)]

pub use k8s_checks::{CheckReport, RuleId, RuleSet, Status, check_tree};
pub use k8s_core::image_info::{
    IMAGE_INFO_DIR, ImageLock, InstalledFile, LOCK_FILE, LOCK_SCHEMA_VERSION, LockedArtifact,
    SBOM_FILE, SpdxChecksum, SpdxCreationInfo, SpdxDocument, SpdxFile,
};
pub use k8s_core::node_role::{AGENT_UNIT, NodeRole, UNIT_DIR};
pub use sha2::{Digest, Sha256};
pub use std::collections::BTreeSet;
pub use std::os::unix::fs::{PermissionsExt, symlink};
pub use std::path::{Path, PathBuf};
pub use tempfile::TempDir;

pub type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

pub const SYSCTL: &str = "/usr/lib/sysctl.d/90-kubernetes.conf";
pub const MODULES: &str = "/usr/lib/modules-load.d/kubernetes.conf";
pub const CONTAINERD: &str = "/etc/containerd/config.toml";
pub const LOOPBACK: &str = "/opt/cni/bin/loopback";
pub const AGENT_LINK: &str = "/etc/systemd/system/multi-user.target.wants/k8s-agent.service";

pub const GOOD_SYSCTL: &str = "# kubernetes\nnet.ipv4.ip_forward = 1\nnet.bridge.bridge-nf-call-iptables = 1\n\
                           net.bridge.bridge-nf-call-ip6tables = 1\n";
pub const GOOD_MODULES: &str = "# kubernetes\noverlay\nbr_netfilter\n";
pub const GOOD_CONTAINERD: &str = r#"version = 3

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
pub const EXECUTABLES: &[(&str, &[&str])] = &[
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
pub fn unit(name: &str) -> String {
    format!("/{UNIT_DIR}/{name}")
}

/// Node path of a role unit's drop-in.
pub fn dropin(name: &str) -> String {
    format!("/{UNIT_DIR}/{name}.d/role.conf")
}

/// Host path of a node path under `root`.
pub fn host(root: &Path, node_path: &str) -> PathBuf {
    root.join(node_path.trim_start_matches('/'))
}

pub fn write(root: &Path, node_path: &str, content: &[u8], mode: u32) -> TestResult {
    let path = host(root, node_path);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&path, content)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

pub fn chmod(root: &Path, node_path: &str, mode: u32) -> TestResult {
    std::fs::set_permissions(host(root, node_path), std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

pub fn remove(root: &Path, node_path: &str) -> TestResult {
    std::fs::remove_file(host(root, node_path))?;
    Ok(())
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A staged image tree: every file the checks require, plus the lock and the SBOM written by [`Fixture::seal`].
pub struct Fixture {
    dir: TempDir,
    lock: ImageLock,
}

impl Fixture {
    /// Writes every required file; `standins` names artifacts marked as stand-ins. Call [`Fixture::seal`] next.
    pub fn new(standins: &[&str]) -> TestResult<Self> {
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
    pub fn good() -> TestResult<Self> {
        let mut fixture = Fixture::new(&[])?;
        fixture.seal()?;
        Ok(fixture)
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Writes the lock (sha256 of every file that exists taken from disk, as a build would) and an SBOM of every
    /// regular file outside /usr/share/k8s-image/.
    pub fn seal(&mut self) -> TestResult {
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

    pub fn report(&self) -> CheckReport {
        check_tree(self.root())
    }
}

pub fn artifact(name: &str, standin: bool, files: Vec<InstalledFile>) -> LockedArtifact {
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
pub fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> TestResult {
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
pub fn failures(report: &CheckReport) -> BTreeSet<(RuleId, String)> {
    report
        .failures()
        .map(|r| (r.rule, r.path.clone().unwrap_or_default()))
        .collect()
}

pub fn replace_in(root: &Path, node_path: &str, from: &str, to: &str) -> TestResult {
    let path = host(root, node_path);
    let text = std::fs::read_to_string(&path)?;
    assert!(text.contains(from), "{node_path} does not contain {from:?}");
    std::fs::write(&path, text.replace(from, to))?;
    Ok(())
}
