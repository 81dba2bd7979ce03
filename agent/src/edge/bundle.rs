//! `k8s-agent bundle`: one tar.gz an operator can attach to a ticket when a node does not join. It gathers, from the
//! node at `root`:
//!
//! | member                         | from                                                                  |
//! |--------------------------------|-----------------------------------------------------------------------|
//! | `status.txt`, `status.json`    | `status --timeline` / `status --json` (with the boot timeline)        |
//! | `state.json`, `checks.json`    | `/run/k8s-agent/` (the agent's persisted state and boot checks)       |
//! | `weave-decision.json`          | `/var/lib/k8s-agent/` (the Weave decision kept across reboots)        |
//! | `checks-now.txt`               | the image and host checks, run now                                    |
//! | `dns.json`                     | the last answers for `masters.` and `minions.<cluster>.<domain>`      |
//! | `role-file/<name>`             | `/etc/sysconfig/kubernetes-{masters,minions}`, secrets redacted       |
//! | `journal/<unit>.txt`           | `journalctl -b -u <unit>` for the agent and every role unit           |
//! | `lock.json`                    | `/usr/share/k8s-image/lock.json` (the image's artifacts and versions) |
//! | `versions.txt`                 | agent, kernel, OS release, the lock's artifact versions               |
//! | `cloud-init/{status,result}.json` | `/run/cloud-init/`                                                 |
//! | `metrics/k8s-agent.prom`       | the metrics file, when written                                        |
//! | `README.txt`                   | what is in it and what was redacted (counts and kinds, no values)     |
//!
//! Secrets: before anything is packed, [`crate::pure::redact::Secrets`] learns every secret the node holds (private
//! keys and kubeconfigs under `/etc/kubernetes` and `/var/lib/kubelet/pki`, the role file's secret values, the
//! cloud-init user data that carried them, `*.key` files under `/etc/k8s-agent`), every member is scrubbed, and
//! the bundle is refused — nothing written — if a known secret survived in any member. The file is written to a
//! temporary name next to `--out` and renamed (mode 0600).

use crate::pure::redact::Secrets;
use crate::status::StatusReport;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The directory every member sits under in the archive.
pub const TOP: &str = "k8s-agent-bundle";

/// Files larger than this are not read for secrets or packed whole (journals are capped by line count).
const MAX_FILE: u64 = 4 << 20;
/// Journal lines per unit (the most recent).
const JOURNAL_LINES: &str = "20000";

/// What a bundle holds, for the command's output.
#[derive(Debug, Clone)]
pub struct Written {
    pub path: PathBuf,
    pub members: Vec<(String, usize)>,
    pub redactions: usize,
    pub secret_kinds: Vec<String>,
    pub secrets_known: usize,
}

impl Written {
    pub fn render_human(&self) -> String {
        let mut out = format!(
            "bundle {} ({} files)\n",
            self.path.display(),
            self.members.len()
        );
        for (name, size) in &self.members {
            out.push_str(&format!("  {size:>9}  {name}\n"));
        }
        out.push_str(&format!(
            "secrets: {} value(s) known on this node (from {}); {} occurrence(s) redacted; none left in the bundle\n",
            self.secrets_known,
            summarize_kinds(&self.secret_kinds),
            self.redactions
        ));
        out
    }
}

/// `private key (/a), private key (/b), BOOTSTRAP_TOKEN (/c)` → `2 private key files, 1 BOOTSTRAP_TOKEN file`.
fn summarize_kinds(kinds: &[String]) -> String {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for k in kinds {
        let kind = k.split(" (").next().unwrap_or(k).to_string();
        match counts.iter_mut().find(|(n, _)| *n == kind) {
            Some((_, c)) => *c += 1,
            None => counts.push((kind, 1)),
        }
    }
    if counts.is_empty() {
        return "no files".to_string();
    }
    counts
        .iter()
        .map(|(k, c)| format!("{c} {k} file{}", if *c == 1 { "" } else { "s" }))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The node's host name (for the default file name): `/etc/hostname` under `root`, else the kernel's.
pub fn host_name(root: &Path) -> String {
    let from_file = std::fs::read_to_string(root.join("etc/hostname"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    let name = from_file.unwrap_or_else(|| {
        nix::sys::utsname::uname()
            .map(|u| u.nodename().to_string_lossy().into_owned())
            .unwrap_or_else(|_| "node".to_string())
    });
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn read_small(path: &Path) -> Option<Vec<u8>> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() || meta.len() > MAX_FILE {
        return None;
    }
    std::fs::read(path).ok()
}

/// Every regular file below `dir` (not following symlinks), depth-first, bounded.
fn files_below(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            files_below(&entry.path(), out);
        } else if kind.is_file() && out.len() < 10_000 {
            out.push(entry.path());
        }
    }
}

/// Learns every secret the node at `root` holds.
pub fn learn_secrets(root: &Path) -> Secrets {
    let mut secrets = Secrets::new();
    let mut files = Vec::new();
    for dir in ["etc/kubernetes", "var/lib/kubelet/pki", "etc/k8s-agent"] {
        files_below(&root.join(dir), &mut files);
    }
    for file in [
        "etc/sysconfig/kubernetes-masters",
        "etc/sysconfig/kubernetes-minions",
        "var/lib/cloud/instance/user-data.txt",
        "var/lib/cloud/instance/user-data.txt.i",
        "var/lib/cloud/instance/cloud-config.txt",
    ] {
        files.push(root.join(file));
    }
    for file in files {
        if let Some(bytes) = read_small(&file) {
            let name = file
                .strip_prefix(root)
                .map(|p| format!("/{}", p.display()))
                .unwrap_or_else(|_| file.display().to_string());
            secrets.learn_file(&name, &String::from_utf8_lossy(&bytes));
        }
    }
    // The TSIG key file the role file names (anywhere: user data decides where it goes).
    if let crate::role_file::RoleLoad::Parsed(config) = crate::edge::role_file::load(root)
        && let Some(update) = &config.dns_update
    {
        let file = root.join(
            update
                .key_file
                .strip_prefix("/")
                .unwrap_or(&update.key_file),
        );
        if let Some(bytes) = read_small(&file) {
            secrets.learn_tsig_key_file(
                &update.key_file.display().to_string(),
                &String::from_utf8_lossy(&bytes),
            );
        }
    }
    secrets
}

fn journal(root: &Path, unit: &str) -> String {
    let mut cmd = std::process::Command::new("journalctl");
    cmd.args([
        "-b",
        "--no-pager",
        "-o",
        "short-iso-precise",
        "-n",
        JOURNAL_LINES,
        "-u",
        unit,
    ]);
    if root != Path::new("/") {
        cmd.arg(format!("--root={}", root.display()));
    }
    match cmd.output() {
        Ok(out) => {
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            if !out.status.success() {
                text.push_str(&format!(
                    "\n(journalctl exited with {}: {})\n",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            text
        }
        Err(e) => format!("(journalctl could not run: {e})\n"),
    }
}

fn versions(root: &Path, lock_text: Option<&str>) -> String {
    let mut out = format!("k8s-agent {}\n", env!("CARGO_PKG_VERSION"));
    if let Ok(u) = nix::sys::utsname::uname() {
        out.push_str(&format!(
            "kernel {} {} {}\n",
            u.sysname().to_string_lossy(),
            u.release().to_string_lossy(),
            u.machine().to_string_lossy()
        ));
    }
    if let Ok(os) = std::fs::read_to_string(root.join("etc/os-release")) {
        for line in os
            .lines()
            .filter(|l| l.starts_with("PRETTY_NAME=") || l.starts_with("VERSION_ID="))
        {
            out.push_str(&format!("os {line}\n"));
        }
    }
    if let Some(lock) = lock_text.and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok()) {
        let field = |k: &str| {
            lock.get(k)
                .and_then(|v| v.as_str())
                .unwrap_or("?")
                .to_string()
        };
        out.push_str(&format!(
            "image {} for Kubernetes {}\n",
            field("image_name"),
            field("kubernetes_version")
        ));
        for a in lock
            .get("artifacts")
            .and_then(|a| a.as_array())
            .into_iter()
            .flatten()
        {
            let s = |k: &str| a.get(k).and_then(|v| v.as_str()).unwrap_or("?");
            let standin = if a.get("standin").and_then(|v| v.as_bool()) == Some(true) {
                "  STAND-IN"
            } else {
                ""
            };
            out.push_str(&format!(
                "artifact {} {}{standin}\n",
                s("name"),
                s("version")
            ));
        }
    }
    out
}

/// Gathers the members (name, text) of the bundle of the node at `root`, unscrubbed.
pub fn gather(root: &Path, report: &StatusReport) -> Vec<(String, String)> {
    let mut members: Vec<(String, String)> = Vec::new();
    let text_of = |name: &str, path: &Path, members: &mut Vec<(String, String)>| {
        if let Some(bytes) = read_small(path) {
            members.push((
                name.to_string(),
                String::from_utf8_lossy(&bytes).into_owned(),
            ));
        }
    };
    members.push((
        "status.txt".into(),
        format!(
            "{}\n{}",
            report.render_human(),
            report.timeline.render_human()
        ),
    ));
    members.push((
        "status.json".into(),
        serde_json::to_string_pretty(report).unwrap_or_default() + "\n",
    ));
    text_of(
        "state.json",
        &root.join(crate::plan::STATE_FILE),
        &mut members,
    );
    text_of(
        "checks.json",
        &root.join(k8s_checks::CHECKS_FILE),
        &mut members,
    );
    text_of(
        "weave-decision.json",
        &root.join(crate::weave::WEAVE_DECISION_FILE),
        &mut members,
    );
    let set = if root == Path::new("/") {
        crate::checks::RuleSet::Node
    } else {
        crate::checks::RuleSet::Tree
    };
    members.push((
        "checks-now.txt".into(),
        crate::checks::check(root, set).render_human(),
    ));
    members.push((
        "dns.json".into(),
        serde_json::to_string_pretty(&serde_json::json!({
            "masters": report.masters,
            "minions": report.minions,
        }))
        .unwrap_or_default()
            + "\n",
    ));
    for name in ["kubernetes-masters", "kubernetes-minions"] {
        text_of(
            &format!("role-file/{name}"),
            &root.join("etc/sysconfig").join(name),
            &mut members,
        );
    }
    let lock_path = crate::image_info::ImageLock::path_under(root);
    let lock_text = read_small(&lock_path).map(|b| String::from_utf8_lossy(&b).into_owned());
    if let Some(lock) = &lock_text {
        members.push(("lock.json".into(), lock.clone()));
    }
    members.push(("versions.txt".into(), versions(root, lock_text.as_deref())));
    for name in ["status.json", "result.json"] {
        text_of(
            &format!("cloud-init/{name}"),
            &root.join("run/cloud-init").join(name),
            &mut members,
        );
    }
    let metrics_dir = match crate::edge::role_file::load(root) {
        crate::role_file::RoleLoad::Parsed(config) => config.metrics_dir.clone(),
        _ => None,
    };
    if let Some(dir) = crate::edge::metrics::target_dir(root, metrics_dir.as_deref()) {
        text_of(
            "metrics/k8s-agent.prom",
            &dir.join(crate::pure::metrics::FILE_NAME),
            &mut members,
        );
    }
    let mut units = vec!["k8s-agent.service".to_string()];
    units.extend(report.units.iter().map(|u| u.unit.clone()));
    if report.units.is_empty() {
        units.extend(report.units_started.iter().cloned());
    }
    units.dedup();
    for unit in units {
        members.push((format!("journal/{unit}.txt"), journal(root, &unit)));
    }
    members
}

/// Scrubs every member; an error names the first member in which a known secret survived.
pub fn scrub(
    secrets: &Secrets,
    members: Vec<(String, String)>,
) -> Result<(Vec<(String, String)>, usize), String> {
    let mut total = 0;
    let mut out = Vec::with_capacity(members.len());
    for (name, text) in members {
        let (clean, n) = secrets.scrub(&text);
        if secrets.leaks(&clean) > 0 {
            return Err(format!(
                "refusing to write the bundle: a secret of this node survived scrubbing in {name}"
            ));
        }
        total += n;
        out.push((name, clean));
    }
    Ok((out, total))
}

fn readme(secrets: &Secrets, redactions: usize, now_ms: u64) -> String {
    format!(
        "k8s-agent support bundle, written {} by k8s-agent {}.\n\
         See `k8s-agent bundle --help` and the README's \"Support bundle\" section for what each file is.\n\n\
         Secrets: {} secret value(s) known on this node ({}) were searched for in every file, with PEM private\n\
         keys, bootstrap tokens and credential-looking values of any origin; {} occurrence(s) were replaced by\n\
         `{}`. No key material, token secret or kubeconfig is included.\n",
        crate::pure::utc::rfc3339((now_ms / 1000) as i64),
        env!("CARGO_PKG_VERSION"),
        secrets.len(),
        if secrets.kinds.is_empty() {
            "none".to_string()
        } else {
            secrets.kinds.join(", ")
        },
        redactions,
        crate::pure::redact::REDACTED
    )
}

/// Gathers, scrubs, checks and writes the bundle to `out` (atomically). Nothing is written on error.
pub fn write(
    root: &Path,
    report: &StatusReport,
    out: &Path,
    now_ms: u64,
) -> Result<Written, String> {
    let secrets = learn_secrets(root);
    let (mut members, redactions) = scrub(&secrets, gather(root, report))?;
    members.insert(
        0,
        ("README.txt".into(), readme(&secrets, redactions, now_ms)),
    );

    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = out
        .file_name()
        .ok_or_else(|| format!("--out {} names no file", out.display()))?
        .to_string_lossy()
        .into_owned();
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        let gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        for (name, text) in &members {
            let mut header = tar::Header::new_gnu();
            header.set_size(text.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(now_ms / 1000);
            header.set_entry_type(tar::EntryType::Regular);
            header.set_cksum();
            tar.append_data(&mut header, format!("{TOP}/{name}"), text.as_bytes())?;
        }
        let gz = tar.into_inner()?;
        let mut file = gz.finish()?;
        file.flush()?;
        file.sync_all()?;
        std::fs::rename(&tmp, out)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("cannot write {}: {e}", out.display()));
    }
    Ok(Written {
        path: out.to_path_buf(),
        members: members.iter().map(|(n, t)| (n.clone(), t.len())).collect(),
        redactions,
        secret_kinds: secrets.kinds.clone(),
        secrets_known: secrets.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    const TOKEN: &str = "q7x2kd.m4v9c0zt8p1ys6ha";

    /// A node root holding every kind of secret a node has, some of them also leaked into files the bundle packs.
    fn node_root() -> (tempfile::TempDir, Vec<String>) {
        let root = tempfile::tempdir().expect("tempdir");
        let r = root.path();
        let key = rcgen::KeyPair::generate().expect("key").serialize_pem();
        let kubelet_key = rcgen::KeyPair::generate().expect("key").serialize_pem();
        // An HA master's etcd CA key, one directory further down.
        let etcd_key = rcgen::KeyPair::generate().expect("key").serialize_pem();
        let write = |rel: &str, text: &str| {
            let path = r.join(rel);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
            std::fs::write(path, text).expect("write");
        };
        write("etc/kubernetes/pki/ca.key", &key);
        write("etc/kubernetes/pki/etcd/ca.key", &etcd_key);
        write(
            "etc/kubernetes/admin.conf",
            &format!(
                "apiVersion: v1\nusers:\n- name: admin\n  user:\n    client-key-data: {}\n",
                base64::engine::general_purpose::STANDARD.encode(&kubelet_key)
            ),
        );
        write(
            "etc/kubernetes/bootstrap-kubelet.conf",
            &format!("users:\n- name: b\n  user:\n    token: {TOKEN}\n"),
        );
        write(
            "etc/sysconfig/kubernetes-minions",
            &format!(
                "CLUSTER_NAME=lab\nBOOTSTRAP_TOKEN={TOKEN}\nCA_CERT_HASH=sha256:{}\n",
                "ab".repeat(32)
            ),
        );
        write("etc/hostname", "minion7\n");
        // Leaks into what the bundle packs: cloud-init's result and the persisted checks.
        let key_line = key.lines().nth(2).expect("pem line").to_string();
        let etcd_key_line = etcd_key.lines().nth(1).expect("pem line").to_string();
        write(
            "run/cloud-init/result.json",
            &format!(
                "{{\"v1\": {{\"datasource\": \"x\", \"errors\": [\"failed with --token {TOKEN} and {key_line} \
                 {etcd_key_line}\"]}}}}"
            ),
        );
        write(
            "run/k8s-agent/checks.json",
            &format!(
                "{{\"results\": [], \"note\": \"{}\"}}",
                kubelet_key.replace('\n', "\\n")
            ),
        );
        let secret = TOKEN.split('.').nth(1).expect("secret").to_string();
        let mut needles = vec![secret, key_line, etcd_key_line];
        needles.extend(
            kubelet_key
                .lines()
                .filter(|l| !l.starts_with("-----"))
                .map(str::to_string),
        );
        needles.push(base64::engine::general_purpose::STANDARD.encode(&kubelet_key));
        (root, needles)
    }

    fn unpack(path: &Path) -> Vec<(String, String)> {
        let file = std::fs::File::open(path).expect("bundle");
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
        let mut out = Vec::new();
        for entry in archive.entries().expect("entries") {
            let mut entry = entry.expect("entry");
            let name = entry.path().expect("path").display().to_string();
            let mut text = String::new();
            std::io::Read::read_to_string(&mut entry, &mut text).expect("utf-8 member");
            out.push((name, text));
        }
        out
    }

    #[test]
    fn a_bundle_holds_no_secret_of_the_node_by_content() {
        let (root, needles) = node_root();
        let report = StatusReport::new(None, &[], None, vec![], None, 0);
        let out = root.path().join("bundle.tar.gz");
        let written = write(root.path(), &report, &out, 1_767_225_600_000).expect("bundle written");
        assert!(written.redactions >= 3, "{written:?}");
        let members = unpack(&out);
        let names: Vec<&str> = members.iter().map(|(n, _)| n.as_str()).collect();
        for want in [
            "k8s-agent-bundle/README.txt",
            "k8s-agent-bundle/status.txt",
            "k8s-agent-bundle/status.json",
            "k8s-agent-bundle/checks.json",
            "k8s-agent-bundle/role-file/kubernetes-minions",
            "k8s-agent-bundle/cloud-init/result.json",
            "k8s-agent-bundle/versions.txt",
            "k8s-agent-bundle/journal/k8s-agent.service.txt",
        ] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        for (name, text) in &members {
            for needle in &needles {
                assert!(!text.contains(needle.as_str()), "{name} holds a secret");
            }
            assert!(!text.contains("PRIVATE KEY-----"), "{name} holds a PEM key");
        }
        let role = &members
            .iter()
            .find(|(n, _)| n.ends_with("role-file/kubernetes-minions"))
            .expect("role file")
            .1;
        assert!(role.contains("BOOTSTRAP_TOKEN=<redacted>"), "{role}");
        assert!(role.contains("CLUSTER_NAME=lab"), "{role}");
        let mode = std::fs::metadata(&out).expect("meta").permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
    }

    #[test]
    fn nothing_is_written_when_the_output_cannot_be_made() {
        let (root, _) = node_root();
        let report = StatusReport::new(None, &[], None, vec![], None, 0);
        let out = root.path().join("no-such-dir/bundle.tar.gz");
        let err = write(root.path(), &report, &out, 0).expect_err("no directory");
        assert!(err.contains("cannot write"), "{err}");
        assert!(!out.exists());
        let leftovers: Vec<_> = std::fs::read_dir(root.path())
            .expect("dir")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty());
    }
}
