//! Rules about what the image says about itself (`/usr/share/k8s-image/`): `image-lock`, `binaries`, `standin`,
//! `sbom`; and `cni-loopback`, the one CNI plugin kubelet cannot run a pod without.

use super::tree::{is_clean_relative, is_executable, node_path};
use super::{CheckResult, Context, RuleId, describe_io};
use k8s_core::image_info::{
    IMAGE_INFO_DIR, ImageLock, LOCK_FILE, LOCK_SCHEMA_VERSION, LOCK_VERSIONS_READ, SBOM_FILE,
    SpdxDocument,
};
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;

/// The CNI loopback plugin (node path).
pub const CNI_LOOPBACK: &str = "/opt/cni/bin/loopback";

/// Node path of the lock.
pub(super) fn lock_path() -> String {
    format!("/{IMAGE_INFO_DIR}/{LOCK_FILE}")
}

/// Node path of the SBOM.
fn sbom_path() -> String {
    format!("/{IMAGE_INFO_DIR}/{SBOM_FILE}")
}

/// Reads and parses the lock through the tree (so symlinks stay inside the root). The error is a message
/// fragment: "is missing", "cannot be read (…)" or "is not a valid image lock: …".
pub(super) fn read_lock(ctx_tree: &super::Tree<'_>) -> Result<ImageLock, String> {
    let text = ctx_tree
        .read_to_string(&lock_path())
        .map_err(|err| describe_io(&err))?;
    serde_json::from_str(&text).map_err(|err| format!("is not a valid image lock: {err}"))
}

pub(super) fn check_lock(ctx: &Context<'_>) -> Vec<CheckResult> {
    let rule = RuleId::ImageLock;
    let path = lock_path();
    let lock = match &ctx.lock {
        Ok(lock) => lock,
        Err(err) => {
            return vec![CheckResult::fail(
                rule,
                Some(&path),
                format!(
                    "{err} — rebuild the image with imagebuilder (it writes the lock); binaries and standin were \
                     not checked, and sbom did not compare the lock"
                ),
            )];
        }
    };
    let mut results = Vec::new();
    if !LOCK_VERSIONS_READ.contains(&lock.lock_version) {
        results.push(CheckResult::fail(
            rule,
            Some(&path),
            format!(
                "has lock_version {}, this k8s-agent reads {} to {LOCK_SCHEMA_VERSION} — use the k8s-agent built \
                 with the image",
                lock.lock_version,
                LOCK_VERSIONS_READ.start()
            ),
        ));
    }
    for artifact in &lock.artifacts {
        for file in &artifact.files {
            if !file.path.starts_with('/') || !is_clean_relative(&file.path) {
                results.push(CheckResult::fail(
                    rule,
                    Some(&path),
                    format!(
                        "artifact {} lists `{}`, which is not a clean absolute path — rebuild the image",
                        artifact.name, file.path
                    ),
                ));
            }
        }
    }
    if results.is_empty() {
        results.push(CheckResult::pass(
            rule,
            Some(&path),
            format!(
                "image {} for Kubernetes {} ({}), {} artifacts",
                lock.image_name,
                lock.kubernetes_version,
                lock.arch,
                lock.artifacts.len()
            ),
        ));
    }
    results
}

pub(super) fn check_binaries(ctx: &Context<'_>) -> Vec<CheckResult> {
    let rule = RuleId::Binaries;
    let Ok(lock) = &ctx.lock else {
        return Vec::new();
    };
    let mut results = Vec::new();
    let mut checked = 0;
    for artifact in &lock.artifacts {
        for file in artifact.files.iter().filter(|f| f.is_executable()) {
            if !is_clean_relative(&file.path) {
                continue; // reported by image-lock
            }
            checked += 1;
            let fix = format!("rebuild the image (artifact {} installs it)", artifact.name);
            match ctx.tree.metadata(&file.path) {
                Ok(meta) if !meta.is_file() => results.push(CheckResult::fail(
                    rule,
                    Some(&file.path),
                    format!("is not a regular file — {fix}"),
                )),
                Ok(meta) if !is_executable(&meta) => results.push(CheckResult::fail(
                    rule,
                    Some(&file.path),
                    format!(
                        "is not executable (mode {:04o} on disk, the lock says {:04o}) — `chmod {:o}` it or {fix}",
                        meta.permissions().mode() & 0o7777,
                        file.mode,
                        file.mode
                    ),
                )),
                Ok(_) => {}
                Err(err) => results.push(CheckResult::fail(
                    rule,
                    Some(&file.path),
                    format!("{} — {fix}", describe_io(&err)),
                )),
            }
        }
    }
    if results.is_empty() {
        results.push(CheckResult::pass(
            rule,
            None,
            format!("{checked} executables from the lock are present and executable"),
        ));
    }
    results
}

pub(super) fn check_standins(ctx: &Context<'_>) -> Vec<CheckResult> {
    let rule = RuleId::Standin;
    let Ok(lock) = &ctx.lock else {
        return Vec::new();
    };
    let standins = lock.standins();
    if standins.is_empty() {
        return vec![CheckResult::pass(
            rule,
            None,
            "no stand-in artifacts: every program is the upstream one",
        )];
    }
    vec![CheckResult::warn(
        rule,
        None,
        format!(
            "DEMO IMAGE: {} {} stand-in{} built by this project in place of the real program{} — this image must \
             not be used as a real node; build it from a manifest without stand-ins",
            standins.join(", "),
            if standins.len() == 1 { "is a" } else { "are" },
            if standins.len() == 1 { "" } else { "s" },
            if standins.len() == 1 { "" } else { "s" },
        ),
    )]
}

pub(super) fn check_cni_loopback(ctx: &Context<'_>) -> Vec<CheckResult> {
    let rule = RuleId::CniLoopback;
    let path = Some(CNI_LOOPBACK);
    let fix = "kubelet needs it for every pod sandbox; add the CNI plugins (containernetworking/plugins) to the \
               manifest";
    let result = match ctx.tree.metadata(CNI_LOOPBACK) {
        Ok(meta) if !meta.is_file() => {
            CheckResult::fail(rule, path, format!("is not a regular file — {fix}"))
        }
        Ok(meta) if !is_executable(&meta) => CheckResult::fail(
            rule,
            path,
            format!(
                "is not executable (mode {:04o}) — `chmod 0755` it or rebuild the image",
                meta.permissions().mode() & 0o7777
            ),
        ),
        Ok(_) => CheckResult::pass(rule, path, "present and executable"),
        Err(err) => CheckResult::fail(rule, path, format!("{} — {fix}", describe_io(&err))),
    };
    vec![result]
}

pub(super) fn check_sbom(ctx: &Context<'_>) -> Vec<CheckResult> {
    let rule = RuleId::Sbom;
    let path = sbom_path();
    let rebuild = "rebuild the image (imagebuilder writes the SBOM)";
    let sbom: SpdxDocument = match ctx.tree.read_to_string(&path) {
        Ok(text) => match serde_json::from_str(&text) {
            Ok(sbom) => sbom,
            Err(err) => {
                return vec![CheckResult::fail(
                    rule,
                    Some(&path),
                    format!("is not a valid SPDX JSON document: {err} — {rebuild}"),
                )];
            }
        },
        Err(err) => {
            return vec![CheckResult::fail(
                rule,
                Some(&path),
                format!("{} — {rebuild}", describe_io(&err)),
            )];
        }
    };

    let mut results = Vec::new();
    let mut recorded: HashMap<String, Option<String>> = HashMap::new();
    for file in &sbom.files {
        let node = node_path(&file.file_name);
        let expected = SpdxDocument::file_sha256(file).map(str::to_ascii_lowercase);
        recorded.insert(node.clone(), expected.clone());
        if !is_clean_relative(&file.file_name) {
            results.push(CheckResult::fail(
                rule,
                Some(&node),
                format!(
                    "the SBOM lists `{}`, which is not a clean relative path — {rebuild}",
                    file.file_name
                ),
            ));
            continue;
        }
        let Some(expected) = expected else {
            results.push(CheckResult::fail(
                rule,
                Some(&node),
                format!("the SBOM records no SHA256 for it — {rebuild}"),
            ));
            continue;
        };
        match ctx.tree.sha256(&node) {
            Ok(actual) if actual == expected => {}
            Ok(actual) => results.push(CheckResult::fail(
                rule,
                Some(&node),
                format!(
                    "differs from the SBOM (sha256 {actual}, the SBOM records {expected}): it changed after the \
                     build — restore it or rebuild the image"
                ),
            )),
            Err(err) => results.push(CheckResult::fail(
                rule,
                Some(&node),
                format!("is listed in the SBOM but {} — restore it or rebuild the image", describe_io(&err)),
            )),
        }
    }

    let mut lock_files = 0;
    let image_info = format!("/{IMAGE_INFO_DIR}/");
    if let Ok(lock) = &ctx.lock {
        for artifact in &lock.artifacts {
            for file in &artifact.files {
                if file.path.starts_with(&image_info) || !is_clean_relative(&file.path) {
                    continue;
                }
                lock_files += 1;
                match recorded.get(&node_path(&file.path)) {
                    None => results.push(CheckResult::fail(
                        rule,
                        Some(&file.path),
                        format!("is in the lock (artifact {}) but not in the SBOM — {rebuild}", artifact.name),
                    )),
                    Some(Some(sha)) if sha.eq_ignore_ascii_case(&file.sha256) => {}
                    Some(_) => results.push(CheckResult::fail(
                        rule,
                        Some(&file.path),
                        format!(
                            "the lock (artifact {}) and the SBOM record different sha256 — {rebuild}",
                            artifact.name
                        ),
                    )),
                }
            }
        }
    }

    if results.is_empty() {
        let lock_part = if ctx.lock.is_ok() {
            format!("; all {lock_files} files of the lock are in it with the same sha256")
        } else {
            "; the lock was not compared (see image-lock)".to_owned()
        };
        results.push(CheckResult::pass(
            rule,
            Some(&path),
            format!("{} files match the SBOM{lock_part}", sbom.files.len()),
        ));
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Status, Tree};
    use k8s_core::image_info::{SpdxChecksum, SpdxCreationInfo, SpdxFile};
    use std::path::Path;

    const SHA256_ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    fn sbom(files: &[(&str, &str)]) -> SpdxDocument {
        SpdxDocument {
            spdx_version: "SPDX-2.3".into(),
            spdx_id: "SPDXRef-DOCUMENT".into(),
            name: "test".into(),
            data_license: "CC0-1.0".into(),
            document_namespace: "https://example.invalid/test".into(),
            creation_info: SpdxCreationInfo {
                created: "1970-01-01T00:00:00Z".into(),
                creators: vec!["Tool: test".into()],
            },
            packages: vec![],
            files: files
                .iter()
                .enumerate()
                .map(|(i, (name, sha))| SpdxFile {
                    spdx_id: format!("SPDXRef-File-{i}"),
                    file_name: (*name).into(),
                    checksums: vec![SpdxChecksum {
                        algorithm: "SHA256".into(),
                        checksum_value: (*sha).into(),
                    }],
                    license_concluded: "NOASSERTION".into(),
                    copyright_text: "NOASSERTION".into(),
                })
                .collect(),
            relationships: vec![],
        }
    }

    fn run_sbom(
        root: &Path,
        doc: &SpdxDocument,
    ) -> Result<Vec<CheckResult>, Box<dyn std::error::Error>> {
        let info = root.join(IMAGE_INFO_DIR);
        std::fs::create_dir_all(&info)?;
        std::fs::write(info.join(SBOM_FILE), serde_json::to_string(doc)?)?;
        let tree = Tree::new(root);
        let ctx = Context {
            tree,
            lock: read_lock(&tree),
            host: crate::HostView::default(),
        };
        Ok(check_sbom(&ctx))
    }

    #[test]
    fn hashes_stream_to_the_known_value() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("abc"), "abc")?;
        assert_eq!(Tree::new(dir.path()).sha256("/abc")?, SHA256_ABC);
        Ok(())
    }

    #[test]
    fn checksum_mismatch_and_missing_files_fail_by_path() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir_all(dir.path().join("usr/bin"))?;
        std::fs::write(dir.path().join("usr/bin/good"), "abc")?;
        std::fs::write(dir.path().join("usr/bin/changed"), "abd")?;
        let doc = sbom(&[
            ("./usr/bin/good", &SHA256_ABC.to_uppercase()),
            ("./usr/bin/changed", SHA256_ABC),
            ("./usr/bin/gone", SHA256_ABC),
            ("./../etc/passwd", SHA256_ABC),
        ]);
        let results = run_sbom(dir.path(), &doc)?;
        let failed: Vec<(&str, &str)> = results
            .iter()
            .filter(|r| r.status == Status::Fail)
            .map(|r| (r.path.as_deref().unwrap_or(""), r.message.as_str()))
            .collect();
        assert_eq!(failed.len(), 3, "{failed:?}");
        assert_eq!(failed[0].0, "/usr/bin/changed");
        assert!(
            failed[0].1.starts_with("differs from the SBOM"),
            "{}",
            failed[0].1
        );
        assert_eq!(failed[1].0, "/usr/bin/gone");
        assert!(failed[1].1.contains("is missing"), "{}", failed[1].1);
        assert_eq!(failed[2].0, "/../etc/passwd");
        Ok(())
    }

    #[test]
    fn a_clean_sbom_passes_and_says_the_lock_was_not_compared()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("f"), "abc")?;
        let results = run_sbom(dir.path(), &sbom(&[("./f", SHA256_ABC)]))?;
        assert_eq!(results.len(), 1);
        assert_eq!(results[0].status, Status::Pass);
        assert!(
            results[0].message.contains("lock was not compared"),
            "{}",
            results[0].message
        );
        Ok(())
    }
}

#[cfg(test)]
mod lock_version_tests {
    use super::*;
    use crate::{Status, Tree};

    fn version_failures(version: u32) -> Result<Vec<String>, Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let info = dir.path().join(IMAGE_INFO_DIR);
        std::fs::create_dir_all(&info)?;
        let lock = format!(
            r#"{{"lock_version":{version},"image_name":"t","kubernetes_version":"1.37.2","arch":"amd64",
                "source_date_epoch":0,"host_packages":[],"artifacts":[]}}"#
        );
        std::fs::write(info.join(LOCK_FILE), lock)?;
        let tree = Tree::new(dir.path());
        let ctx = Context {
            tree,
            lock: read_lock(&tree),
            host: crate::HostView::default(),
        };
        Ok(check_lock(&ctx)
            .into_iter()
            .filter(|r| r.status == Status::Fail)
            .map(|r| r.message)
            .collect())
    }

    #[test]
    fn a_lock_of_a_format_this_agent_reads_passes_and_a_newer_one_is_named()
    -> Result<(), Box<dyn std::error::Error>> {
        assert!(version_failures(1)?.is_empty(), "a version 1 lock is read");
        assert!(version_failures(LOCK_SCHEMA_VERSION)?.is_empty());
        let newer = version_failures(LOCK_SCHEMA_VERSION + 1)?;
        assert_eq!(newer.len(), 1, "{newer:?}");
        assert!(
            newer[0].starts_with(&format!(
                "has lock_version {}, this k8s-agent reads 1 to {LOCK_SCHEMA_VERSION}",
                LOCK_SCHEMA_VERSION + 1
            )),
            "{newer:?}"
        );
        assert!(
            !version_failures(0)?.is_empty(),
            "version 0 was never written"
        );
        Ok(())
    }
}
