//! Writing a one-layer OCI image archive deterministically: [`write_oci_archive`], for the images this workspace
//! builds offline (the sandbox "pause" image, the stand-in weave image).
//!
//! The same [`OciImageSpec`] gives the same bytes on any machine, hence the same manifest digest:
//! - the layer is a tar of the spec's files, entries sorted by path (byte order), every parent directory present
//!   (0755), owners 0/0 (`root`), every mtime `created_unix`, gzip-compressed by [`crate::parallel_gz`] (no name,
//!   mtime 0 in the gzip header, bytes independent of the thread count), as [`crate::layer`] writes the node layer;
//! - the config (`architecture`, `os` linux, `created` as RFC 3339, `config.Entrypoint/Env/Labels/User`,
//!   `rootfs.diff_ids` = sha256 of the uncompressed layer tar, one `history` entry), the OCI image manifest, the
//!   `index.json` and `oci-layout` are canonical JSON (sorted keys, no whitespace);
//! - `index.json` names the image twice, as skopeo and containerd's export do: `io.containerd.image.name` = the full
//!   reference (what `ctr images import` names the image by), `org.opencontainers.image.ref.name` = its tag;
//! - the archive's members come in a fixed order (`oci-layout`, `index.json`, `blobs/`, `blobs/sha256/`, then the
//!   blobs by digest), with mode 0644 (directories 0755), owners 0/0 and mtime `created_unix`.

use super::json::canonical;
use super::media_type::{OCI_CONFIG, OCI_INDEX, OCI_LAYER_GZIP, OCI_MANIFEST};
use super::verify::ARCHES;
use super::{ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME, ImageArchiveError};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

type Result<T> = std::result::Result<T, ImageArchiveError>;

/// One file of the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFile {
    /// Absolute path in the image, e.g. `/pause`.
    pub path: String,
    pub contents: Vec<u8>,
    /// Permission bits (at most 0o7777).
    pub mode: u32,
}

impl ImageFile {
    /// The file at `source` on this machine, to be `path` in the image with `mode`.
    pub fn from_host(source: &Path, path: &str, mode: u32) -> Result<ImageFile> {
        let contents = std::fs::read(source).map_err(|e| ImageArchiveError::Source {
            source_path: source.to_path_buf(),
            reason: e.to_string(),
        })?;
        Ok(ImageFile {
            path: path.to_string(),
            contents,
            mode,
        })
    }
}

/// What a one-layer image holds and how it starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OciImageSpec {
    pub files: Vec<ImageFile>,
    /// `config.Entrypoint` (left out when empty).
    pub entrypoint: Vec<String>,
    /// `config.Cmd`: the default arguments, replaced by a pod's `args` (left out when empty).
    pub cmd: Vec<String>,
    /// `config.Env`, `KEY=VALUE` each (left out when empty).
    pub env: Vec<String>,
    /// Full reference with a tag, as the kubelet asks for it: `registry.k8s.io/pause:3.10.1`.
    pub ref_name: String,
    /// `amd64` or `arm64`.
    pub arch: String,
    /// Seconds since 1970 (≥ 0): the config's `created` and every mtime (use SOURCE_DATE_EPOCH).
    pub created_unix: i64,
    /// `config.Labels` (left out when empty).
    pub labels: BTreeMap<String, String>,
    /// `config.User`, e.g. `65535:65535` as upstream's pause image; `None` leaves it out (root).
    pub user: Option<String>,
    /// Symbolic links: (absolute path in the image, target), e.g. (`/bin/sh`, `busybox`) for a busybox image's
    /// applets.
    pub symlinks: Vec<(String, String)>,
}

/// The blobs and documents of an image, before they are put in a tar.
struct Built {
    manifest_digest: String,
    layout: Vec<u8>,
    index: Vec<u8>,
    /// Hex digest → bytes, sorted by digest.
    blobs: BTreeMap<String, Vec<u8>>,
}

/// Writes the image `spec` describes as an OCI image layout tar to `out`; returns its manifest digest
/// (`sha256:<hex>`, what `ctr images ls` will show).
pub fn write_oci_archive(spec: &OciImageSpec, out: impl Write) -> Result<String> {
    let built = build(spec)?;
    write_tar(
        &built,
        spec.created_unix.unsigned_abs(),
        out,
        Path::new("-"),
    )?;
    Ok(built.manifest_digest)
}

/// [`write_oci_archive`] to the file `path`, atomically (a temporary file beside it, then a rename): an
/// interrupted run leaves no half archive.
pub fn write_oci_archive_file(spec: &OciImageSpec, path: &Path) -> Result<String> {
    let built = build(spec)?;
    let mut bytes = Vec::new();
    write_tar(&built, spec.created_unix.unsigned_abs(), &mut bytes, path)?;
    k8s_core::atomic_file::atomic_write(path, &bytes, crate::OUTPUT_MODE).map_err(|e| {
        ImageArchiveError::Write {
            archive: path.to_path_buf(),
            member: "(the whole archive)".to_string(),
            reason: e.to_string(),
        }
    })?;
    Ok(built.manifest_digest)
}

/// Parses a `--symlink DEST:TARGET` argument (`/bin/sh:busybox`): DEST absolute, TARGET not empty.
pub fn parse_symlink_arg(arg: &str) -> Result<(String, String)> {
    let bad = |reason: &str| ImageArchiveError::BadFileArg {
        arg: arg.to_string(),
        reason: reason.to_string(),
    };
    let Some((dest, target)) = arg.split_once(':') else {
        return Err(bad("it is not DEST:TARGET"));
    };
    if !dest.starts_with('/') {
        return Err(bad("DEST is not an absolute path in the image"));
    }
    if target.is_empty() || target.contains('\0') {
        return Err(bad("TARGET is empty"));
    }
    Ok((dest.to_string(), target.to_string()))
}

/// Parses a `--file SRC:DEST:MODE` argument (MODE in octal, e.g. `target/pause:/pause:0755`) and reads SRC.
pub fn parse_file_arg(arg: &str) -> Result<ImageFile> {
    let bad = |reason: &str| ImageArchiveError::BadFileArg {
        arg: arg.to_string(),
        reason: reason.to_string(),
    };
    let mut parts = arg.rsplitn(3, ':');
    let (Some(mode), Some(dest), Some(src)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad("it does not have three parts separated by `:`"));
    };
    if src.is_empty() {
        return Err(bad("SRC is empty"));
    }
    if !dest.starts_with('/') {
        return Err(bad("DEST is not an absolute path in the image"));
    }
    let mode = u32::from_str_radix(mode.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| bad("MODE is not an octal mode such as 0755"))?;
    ImageFile::from_host(Path::new(src), dest, mode)
}

/// Every regular file under `source` (recursively, in sorted order), to be under `dest` in the image with its
/// permission bits. Symbolic links and other special files are refused (copy the target instead); empty
/// directories are not kept.
pub fn files_from_directory(source: &Path, dest: &str) -> Result<Vec<ImageFile>> {
    let mut files = Vec::new();
    collect_dir(source, dest.trim_end_matches('/'), &mut files)?;
    Ok(files)
}

fn collect_dir(dir: &Path, dest: &str, files: &mut Vec<ImageFile>) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let source_err = |path: &Path, reason: String| ImageArchiveError::Source {
        source_path: path.to_path_buf(),
        reason,
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| source_err(dir, e.to_string()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<io::Result<_>>()
        .map_err(|e| source_err(dir, e.to_string()))?;
    entries.sort();
    for path in entries {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| source_err(&path, "the name is not UTF-8".to_string()))?;
        let target = format!("{dest}/{name}");
        let meta =
            std::fs::symlink_metadata(&path).map_err(|e| source_err(&path, e.to_string()))?;
        if meta.is_dir() {
            collect_dir(&path, &target, files)?;
        } else if meta.is_file() {
            files.push(ImageFile::from_host(
                &path,
                &target,
                meta.permissions().mode() & 0o7777,
            )?);
        } else {
            return Err(source_err(
                &path,
                "is a symbolic link or special file; the image writer takes regular files only (copy the target instead)"
                    .to_string(),
            ));
        }
    }
    Ok(())
}

fn invalid(reason: impl Into<String>, hint: &str) -> ImageArchiveError {
    ImageArchiveError::InvalidSpec {
        reason: reason.into(),
        hint: hint.to_string(),
    }
}

/// Splits a full reference into (reference, tag); refuses a short name the kubelet would never ask for.
fn split_reference(reference: &str) -> Result<(String, String)> {
    const HINT: &str = "give the full reference the kubelet asks for, with a registry and a tag: registry.k8s.io/pause:3.10.1, docker.io/weaveworks/weave-kube:2.8.1";
    let bad = |why: &str| invalid(format!("reference {reference:?} {why}"), HINT);
    if reference.contains('@') {
        return Err(bad(
            "is pinned by digest; an image written here is named by a tag",
        ));
    }
    let name_start = reference.rfind('/').map_or(0, |i| i + 1);
    let Some(colon) = reference[name_start..].rfind(':') else {
        return Err(bad("has no tag"));
    };
    let (repository, tag) = (
        &reference[..name_start + colon],
        &reference[name_start + colon + 1..],
    );
    let tag_ok = !tag.is_empty()
        && tag.len() <= 128
        && !tag.starts_with(['.', '-'])
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if !tag_ok {
        return Err(bad("has no valid tag ([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})"));
    }
    let Some((domain, path)) = repository.split_once('/') else {
        return Err(bad("has no registry"));
    };
    if !(domain.contains('.') || domain.contains(':') || domain == "localhost") {
        return Err(bad("has no registry (its first part has no `.`)"));
    }
    let path_ok = path.split('/').all(|c| {
        !c.is_empty()
            && c.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            })
    });
    if !path_ok {
        return Err(bad(
            "has a repository path that is not lower-case [a-z0-9._-] parts",
        ));
    }
    Ok((reference.to_string(), tag.to_string()))
}

/// `/usr/bin/x` → `usr/bin/x`, refusing what is not a clean absolute path.
fn layer_path(path: &str) -> Result<String> {
    const HINT: &str = "paths in the image are absolute and clean, e.g. /pause or /usr/bin/weave";
    let Some(rel) = path.strip_prefix('/') else {
        return Err(invalid(format!("file path {path:?} is not absolute"), HINT));
    };
    if rel.is_empty()
        || rel.contains('\0')
        || rel
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(invalid(
            format!("file path {path:?} is not a clean file path"),
            HINT,
        ));
    }
    Ok(rel.to_string())
}

fn validate(spec: &OciImageSpec) -> Result<(String, String)> {
    if !ARCHES.contains(&spec.arch.as_str()) {
        return Err(invalid(
            format!("arch {:?} is not amd64 or arm64", spec.arch),
            "use the node image's arch",
        ));
    }
    if spec.created_unix < 0 {
        return Err(invalid(
            format!("created_unix {} is before 1970", spec.created_unix),
            "use the build's SOURCE_DATE_EPOCH",
        ));
    }
    if let Some(e) = spec
        .env
        .iter()
        .find(|e| e.split_once('=').is_none_or(|(k, _)| k.is_empty()))
    {
        return Err(invalid(
            format!("env entry {e:?} is not KEY=VALUE"),
            "write it as PATH=/usr/bin",
        ));
    }
    if spec.labels.keys().any(|k| k.is_empty()) {
        return Err(invalid(
            "a label has an empty key",
            "give every label a name",
        ));
    }
    if spec.files.is_empty() {
        return Err(invalid(
            "the image has no files",
            "add at least the entrypoint's binary",
        ));
    }
    split_reference(&spec.ref_name)
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn write_err(archive: &Path, member: &str) -> impl Fn(io::Error) -> ImageArchiveError + use<> {
    let archive = archive.to_path_buf();
    let member = member.to_string();
    move |e| ImageArchiveError::Write {
        archive: archive.clone(),
        member: member.clone(),
        reason: e.to_string(),
    }
}

/// The uncompressed layer tar.
/// A leaf of the layer: a file or a symbolic link (to its target).
#[derive(Clone, Copy)]
enum Entry<'a> {
    File(&'a ImageFile),
    Link(&'a str),
}

fn layer_tar(spec: &OciImageSpec, mtime: u64) -> Result<Vec<u8>> {
    let mut files: BTreeMap<String, &ImageFile> = BTreeMap::new();
    for f in &spec.files {
        let rel = layer_path(&f.path)?;
        if f.mode > 0o7777 {
            return Err(invalid(
                format!(
                    "{}: mode {:o} has more than permission bits",
                    f.path, f.mode
                ),
                "use a mode such as 0755 or 0644",
            ));
        }
        if files.insert(rel, f).is_some() {
            return Err(invalid(
                format!("{} is given twice", f.path),
                "give every path once",
            ));
        }
    }
    let mut links: BTreeMap<String, &str> = BTreeMap::new();
    for (path, target) in &spec.symlinks {
        let rel = layer_path(path)?;
        if files.contains_key(&rel) || links.insert(rel, target).is_some() {
            return Err(invalid(
                format!("{path} is given twice"),
                "give every path once",
            ));
        }
    }
    // Every parent directory gets an entry; a file or link must not be one.
    let mut entries: BTreeMap<String, Option<Entry>> = BTreeMap::new();
    let leaves = files
        .iter()
        .map(|(rel, f)| (rel, Entry::File(f)))
        .chain(links.iter().map(|(rel, t)| (rel, Entry::Link(t))));
    for (rel, entry) in leaves {
        let mut parent = rel.as_str();
        while let Some((p, _)) = parent.rsplit_once('/') {
            if files.contains_key(p) || links.contains_key(p) {
                return Err(invalid(
                    format!("/{p} is a file, but /{rel} needs it as a directory"),
                    "remove one of the two",
                ));
            }
            entries.entry(p.to_string()).or_insert(None);
            parent = p;
        }
        entries.insert(rel.clone(), Some(entry));
    }

    let err = |rel: &str| write_err(Path::new("-"), &format!("layer: {rel}"));
    let mut tar = tar::Builder::new(Vec::new());
    for (rel, entry) in &entries {
        let mut header = tar::Header::new_gnu();
        header.set_uid(0);
        header.set_gid(0);
        header.set_username("root").map_err(err(rel))?;
        header.set_groupname("root").map_err(err(rel))?;
        header.set_mtime(mtime);
        match entry {
            None => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                tar.append_data(&mut header, format!("{rel}/"), io::empty())
                    .map_err(err(rel))?;
            }
            Some(Entry::File(f)) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(f.mode);
                header.set_size(f.contents.len() as u64);
                tar.append_data(&mut header, rel, &f.contents[..])
                    .map_err(err(rel))?;
            }
            Some(Entry::Link(target)) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                tar.append_link(&mut header, rel, target)
                    .map_err(err(rel))?;
            }
        }
    }
    tar.into_inner().map_err(err("(end of the layer)"))
}

fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    let err = write_err(Path::new("-"), "layer (gzip)");
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut gz = crate::parallel_gz::ParallelGz::new(
        Vec::new(),
        crate::layer::GZIP_LEVEL,
        crate::parallel_gz::BLOCK,
        threads,
    )
    .map_err(&err)?;
    gz.write_all(data).map_err(&err)?;
    gz.finish().map_err(&err)
}

fn descriptor(media_type: &str, bytes: &[u8]) -> Value {
    json!({
        "mediaType": media_type,
        "digest": format!("sha256:{}", sha256_hex(bytes)),
        "size": bytes.len(),
    })
}

fn build(spec: &OciImageSpec) -> Result<Built> {
    let (reference, tag) = validate(spec)?;
    let mtime = spec.created_unix.unsigned_abs();
    let created = k8s_core::utc::rfc3339_secs(mtime);

    let layer = layer_tar(spec, mtime)?;
    let diff_id = format!("sha256:{}", sha256_hex(&layer));
    let layer_gz = gzip(&layer)?;
    drop(layer);

    let mut run = Map::new();
    if !spec.entrypoint.is_empty() {
        run.insert("Entrypoint".into(), json!(spec.entrypoint));
    }
    if !spec.cmd.is_empty() {
        run.insert("Cmd".into(), json!(spec.cmd));
    }
    if !spec.env.is_empty() {
        run.insert("Env".into(), json!(spec.env));
    }
    if !spec.labels.is_empty() {
        run.insert("Labels".into(), json!(spec.labels));
    }
    if let Some(user) = &spec.user {
        run.insert("User".into(), json!(user));
    }
    let config = canonical(&json!({
        "architecture": spec.arch,
        "os": "linux",
        "created": created,
        "config": run,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": created, "created_by": "imagebuilder oci-image"}],
    }));
    let manifest = canonical(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, &config),
        "layers": [descriptor(OCI_LAYER_GZIP, &layer_gz)],
    }));
    let mut manifest_descriptor = descriptor(OCI_MANIFEST, &manifest);
    manifest_descriptor["annotations"] = json!({
        ANNOTATION_CONTAINERD_NAME: reference,
        ANNOTATION_REF_NAME: tag,
    });
    manifest_descriptor["platform"] = json!({"architecture": spec.arch, "os": "linux"});
    let index = canonical(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [manifest_descriptor],
    }));
    let layout = canonical(&json!({"imageLayoutVersion": "1.0.0"}));

    let manifest_digest = format!("sha256:{}", sha256_hex(&manifest));
    let blobs = [config, layer_gz, manifest]
        .into_iter()
        .map(|b| (sha256_hex(&b), b))
        .collect();
    Ok(Built {
        manifest_digest,
        layout,
        index,
        blobs,
    })
}

fn write_tar(built: &Built, mtime: u64, out: impl Write, archive: &Path) -> Result<()> {
    let mut tar = tar::Builder::new(out);
    let header = |kind: tar::EntryType, mode: u32, size: usize| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size as u64);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(mtime);
        h
    };
    let mut members: Vec<(String, Option<&[u8]>)> = vec![
        ("oci-layout".into(), Some(&built.layout)),
        ("index.json".into(), Some(&built.index)),
        ("blobs/".into(), None),
        ("blobs/sha256/".into(), None),
    ];
    for (hex, bytes) in &built.blobs {
        members.push((format!("blobs/sha256/{hex}"), Some(bytes)));
    }
    for (name, bytes) in members {
        let err = write_err(archive, &name);
        match bytes {
            Some(bytes) => {
                let mut h = header(tar::EntryType::Regular, 0o644, bytes.len());
                tar.append_data(&mut h, &name, bytes).map_err(err)?;
            }
            None => {
                let mut h = header(tar::EntryType::Directory, 0o755, 0);
                tar.append_data(&mut h, &name, io::empty()).map_err(err)?;
            }
        }
    }
    let err = write_err(archive, "(end of the archive)");
    tar.into_inner().map_err(&err)?.flush().map_err(&err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_need_a_registry_and_a_tag() {
        assert_eq!(
            split_reference("registry.k8s.io/pause:3.10.1").expect("ok"),
            ("registry.k8s.io/pause:3.10.1".into(), "3.10.1".into())
        );
        assert_eq!(
            split_reference("localhost:5000/a/b:v1").expect("ok").1,
            "v1"
        );
        for bad in [
            "pause:3.10.1",
            "registry.k8s.io/pause",
            "localhost:5000/pause",
            "registry.k8s.io/pause@sha256:00",
            "registry.k8s.io/Pause:1",
            "registry.k8s.io/pause:-x",
            "",
        ] {
            assert!(
                matches!(
                    split_reference(bad),
                    Err(ImageArchiveError::InvalidSpec { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn image_paths_are_absolute_and_clean() {
        assert_eq!(layer_path("/usr/bin/x").expect("ok"), "usr/bin/x");
        for bad in ["pause", "/", "//x", "/a/../b", "/a/./b", "/a/"] {
            assert!(layer_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn file_args_are_src_dest_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join("a:b");
        std::fs::write(&src, b"x").expect("write");
        let f = parse_file_arg(&format!("{}:/bin/a:0755", src.display())).expect("parse");
        assert_eq!(
            (f.path.as_str(), f.mode, f.contents.as_slice()),
            ("/bin/a", 0o755, &b"x"[..])
        );
        for bad in ["x:/a", "x:a:0755", "x:/a:999", ":/a:0755"] {
            assert!(
                matches!(
                    parse_file_arg(bad),
                    Err(ImageArchiveError::BadFileArg { .. })
                ),
                "{bad:?}"
            );
        }
    }
}
