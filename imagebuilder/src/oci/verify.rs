//! Reading and verifying an image archive: [`verify_image_archive`].
//!
//! Memory stays bounded whatever the archive holds, by design: the tar is read as a stream, and each member's bytes
//! go once through sha256 in 64 KiB pieces and are then dropped. Only the JSON documents are kept whole, and only
//! up to [`MAX_DOCUMENT_BYTES`] each. So a first pass records, for every member, its normalised name, kind, size
//! and digest (and keeps `oci-layout` and `index.json`); the image is then walked from `index.json` (index →
//! manifest for the platform → config and layers), each descriptor checked against what the first pass saw, and
//! each JSON blob the walk needs re-read by a further pass that stops at it (a plain tar seeks over the members
//! before it, a gzip-compressed one is inflated again up to it). A re-read blob is hashed again, so an archive
//! changed between passes is noticed.
//!
//! What makes an archive unusable: a name that is absolute, climbs out with `..` or is not UTF-8; a name given
//! twice (directories excepted); a device or fifo anywhere; anything but a regular file under `blobs/` or as
//! `oci-layout`/`index.json` (links elsewhere are allowed, since `docker save` ≥ 25 links its legacy layer paths into
//! `blobs/`, and never followed); a layout version other than 1.0.0; other than exactly one image in `index.json`;
//! a digest other than the pinned one; a reachable blob missing, of another size or another digest; a media type
//! that is not an image's; a config for another platform or with another number of layers. Blobs nothing refers to
//! are allowed and reported.

use super::media_type::{CONFIGS, INDEXES, LAYERS, MANIFESTS};
use super::{
    ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME, ImageArchiveError, MAX_DOCUMENT_BYTES,
    MAX_INDEX_DEPTH, MAX_MEMBERS, VerifiedImage,
};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{self, Read, Seek};
use std::path::{Path, PathBuf};

type Result<T> = std::result::Result<T, ImageArchiveError>;

const OCI_LAYOUT: &str = "oci-layout";
const INDEX_JSON: &str = "index.json";
const DOCKER_MANIFEST_JSON: &str = "manifest.json";

/// Architectures a node image is built for.
pub const ARCHES: &[&str] = &["amd64", "arm64"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Regular,
    Directory,
    Symlink,
    HardLink,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::Regular => "regular file",
            Kind::Directory => "directory",
            Kind::Symlink => "symbolic link",
            Kind::HardLink => "hard link",
        }
    }
}

#[derive(Debug)]
struct Member {
    kind: Kind,
    size: u64,
    /// Lower-case hex sha256 of a regular file's bytes.
    sha256: Option<String>,
}

/// What the first pass saw.
#[derive(Debug, Default)]
struct Scan {
    members: BTreeMap<String, Member>,
    /// `oci-layout` and `index.json`, whole.
    documents: BTreeMap<String, Vec<u8>>,
}

#[derive(Deserialize)]
struct Layout {
    #[serde(rename = "imageLayoutVersion")]
    image_layout_version: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: Option<String>,
    digest: String,
    size: u64,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    platform: Option<Platform>,
}

#[derive(Debug, Clone, Deserialize)]
struct Platform {
    architecture: String,
    os: String,
    variant: Option<String>,
}

impl Platform {
    fn label(&self) -> String {
        platform_label(&self.os, &self.architecture, self.variant.as_deref())
    }
}

fn platform_label(os: &str, arch: &str, variant: Option<&str>) -> String {
    match variant {
        Some(v) if !v.is_empty() => format!("{os}/{arch}/{v}"),
        _ => format!("{os}/{arch}"),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    schema_version: u32,
    media_type: Option<String>,
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    schema_version: u32,
    media_type: Option<String>,
    config: Descriptor,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct Config {
    architecture: String,
    os: String,
    variant: Option<String>,
    rootfs: RootFs,
}

#[derive(Deserialize)]
struct RootFs {
    diff_ids: Vec<String>,
}

/// Verifies the image archive at `path` against the pinned `expected_manifest_digest` (`sha256:<hex>` of the
/// descriptor in `index.json`) for linux/`want_arch` (`amd64` or `arm64`). See the module doc for what is checked.
pub fn verify_image_archive(
    path: &Path,
    expected_manifest_digest: &str,
    want_arch: &str,
) -> Result<VerifiedImage> {
    if !ARCHES.contains(&want_arch) {
        return Err(ImageArchiveError::UnsupportedArch {
            given: want_arch.to_string(),
        });
    }
    if !is_sha256_digest(expected_manifest_digest) {
        return Err(ImageArchiveError::BadExpectedDigest {
            given: expected_manifest_digest.to_string(),
        });
    }
    let scan = first_pass(path)?;

    let Some(index_bytes) = scan.documents.get(INDEX_JSON) else {
        return Err(if scan.members.contains_key(DOCKER_MANIFEST_JSON) {
            ImageArchiveError::DockerArchive {
                archive: path.to_path_buf(),
            }
        } else {
            ImageArchiveError::NotAnImageArchive {
                archive: path.to_path_buf(),
            }
        });
    };
    let Some(layout_bytes) = scan.documents.get(OCI_LAYOUT) else {
        return Err(ImageArchiveError::MissingMember {
            archive: path.to_path_buf(),
            member: OCI_LAYOUT.to_string(),
        });
    };
    let layout: Layout = parse(path, OCI_LAYOUT, layout_bytes)?;
    if layout.image_layout_version != "1.0.0" {
        return Err(ImageArchiveError::LayoutVersion {
            archive: path.to_path_buf(),
            found: layout.image_layout_version,
        });
    }
    let index: Index = parse(path, INDEX_JSON, index_bytes)?;
    check_schema_version(path, INDEX_JSON, index.schema_version)?;
    if index.manifests.len() != 1 {
        return Err(ImageArchiveError::ManifestCount {
            archive: path.to_path_buf(),
            count: index.manifests.len(),
        });
    }
    let top = &index.manifests[0];
    digest_hex(path, INDEX_JSON, &top.digest)?;
    if top.digest != expected_manifest_digest {
        return Err(ImageArchiveError::WrongManifestDigest {
            archive: path.to_path_buf(),
            expected: expected_manifest_digest.to_string(),
            actual: top.digest.clone(),
        });
    }
    let media_type = descriptor_media_type(path, INDEX_JSON, top)?;

    let mut walk = Walk {
        archive: path,
        scan: &scan,
        want_arch,
        verified: BTreeMap::new(),
        index_platforms: None,
    };
    let found = walk.image(top, INDEX_JSON, 0)?;

    let ref_names = [ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME]
        .iter()
        .filter_map(|k| top.annotations.get(*k).cloned())
        .collect();
    let unreferenced_blobs = scan
        .members
        .iter()
        .filter(|(name, m)| {
            name.starts_with("blobs/")
                && m.kind == Kind::Regular
                && !walk.verified.contains_key(*name)
        })
        .map(|(name, _)| name.clone())
        .collect();
    Ok(VerifiedImage {
        manifest_digest: top.digest.clone(),
        media_type,
        ref_names,
        platforms: walk
            .index_platforms
            .take()
            .unwrap_or_else(|| vec![found.config_platform.clone()]),
        platform_manifest_digest: found.manifest_digest,
        config_digest: found.config_digest,
        layers: found.layers,
        total_blob_bytes: walk.verified.values().sum(),
        unreferenced_blobs,
    })
}

/// The image manifest found for the platform.
struct Found {
    manifest_digest: String,
    config_digest: String,
    config_platform: String,
    layers: Vec<(String, u64)>,
}

struct Walk<'a> {
    archive: &'a Path,
    scan: &'a Scan,
    want_arch: &'a str,
    /// Member → size of every blob checked.
    verified: BTreeMap<String, u64>,
    /// Platforms of the outermost image index, if the image is one.
    index_platforms: Option<Vec<String>>,
}

impl Walk<'_> {
    fn archive(&self) -> PathBuf {
        self.archive.to_path_buf()
    }

    /// Checks the blob `desc` points to against what the first pass saw; returns its member name.
    fn blob(&mut self, desc: &Descriptor, referenced_by: &str) -> Result<String> {
        let hex = digest_hex(self.archive, referenced_by, &desc.digest)?;
        let member = format!("blobs/sha256/{hex}");
        let Some(seen) = self.scan.members.get(&member) else {
            return Err(ImageArchiveError::MissingBlob {
                archive: self.archive(),
                member,
                referenced_by: referenced_by.to_string(),
            });
        };
        if seen.kind != Kind::Regular {
            return Err(ImageArchiveError::NotRegularFile {
                archive: self.archive(),
                member,
                kind: seen.kind.describe().to_string(),
            });
        }
        if seen.size != desc.size {
            return Err(ImageArchiveError::SizeMismatch {
                archive: self.archive(),
                member,
                referenced_by: referenced_by.to_string(),
                expected: desc.size,
                actual: seen.size,
            });
        }
        let actual = seen.sha256.clone().unwrap_or_default();
        if actual != hex {
            return Err(ImageArchiveError::DigestMismatch {
                archive: self.archive(),
                member,
                actual,
            });
        }
        self.verified.insert(member.clone(), seen.size);
        Ok(member)
    }

    /// Checks and reads a JSON blob; returns its member name and bytes.
    fn document(&mut self, desc: &Descriptor, referenced_by: &str) -> Result<(String, Vec<u8>)> {
        let hex = digest_hex(self.archive, referenced_by, &desc.digest)?;
        if desc.size > MAX_DOCUMENT_BYTES {
            return Err(ImageArchiveError::DocumentTooLarge {
                archive: self.archive(),
                member: format!("blobs/sha256/{hex}"),
                size: desc.size,
                limit: MAX_DOCUMENT_BYTES,
            });
        }
        let member = self.blob(desc, referenced_by)?;
        let bytes = read_member(self.archive, &member)?;
        if hex::encode(Sha256::digest(&bytes)) != hex {
            return Err(ImageArchiveError::Corrupt {
                archive: self.archive(),
                member,
                reason: "its bytes changed between two reads of the archive".to_string(),
            });
        }
        Ok((member, bytes))
    }

    /// The image `desc` (an index or a manifest) points to, for the wanted platform.
    fn image(&mut self, desc: &Descriptor, referenced_by: &str, depth: usize) -> Result<Found> {
        let media_type = descriptor_media_type(self.archive, referenced_by, desc)?;
        if MANIFESTS.contains(&media_type.as_str()) {
            return self.manifest(desc, &media_type, referenced_by);
        }
        if !INDEXES.contains(&media_type.as_str()) {
            return Err(ImageArchiveError::UnknownMediaType {
                archive: self.archive(),
                member: referenced_by.to_string(),
                role: "manifest".to_string(),
                media_type,
            });
        }
        let (member, bytes) = self.document(desc, referenced_by)?;
        if depth >= MAX_INDEX_DEPTH {
            return Err(ImageArchiveError::NestingTooDeep {
                archive: self.archive(),
                member,
            });
        }
        let index: Index = parse(self.archive, &member, &bytes)?;
        check_schema_version(self.archive, &member, index.schema_version)?;
        check_document_media_type(self.archive, &member, &media_type, index.media_type)?;
        let offered: Vec<String> = index
            .manifests
            .iter()
            .filter_map(|m| m.platform.as_ref())
            .filter(|p| p.os != "unknown" && p.architecture != "unknown")
            .map(Platform::label)
            .collect();
        self.index_platforms.get_or_insert_with(|| offered.clone());
        let default_variant = if self.want_arch == "arm64" {
            "v8"
        } else {
            "v1"
        };
        let picked = index.manifests.iter().find(|m| {
            m.platform.as_ref().is_some_and(|p| {
                p.os == "linux"
                    && p.architecture == self.want_arch
                    && p.variant
                        .as_deref()
                        .is_none_or(|v| v.is_empty() || v == default_variant)
            })
        });
        let Some(picked) = picked else {
            return Err(ImageArchiveError::NoPlatformManifest {
                archive: self.archive(),
                member,
                want: self.want_arch.to_string(),
                available: offered,
            });
        };
        self.image(picked, &member, depth + 1)
    }

    fn manifest(
        &mut self,
        desc: &Descriptor,
        media_type: &str,
        referenced_by: &str,
    ) -> Result<Found> {
        let (member, bytes) = self.document(desc, referenced_by)?;
        let manifest: Manifest = parse(self.archive, &member, &bytes)?;
        check_schema_version(self.archive, &member, manifest.schema_version)?;
        check_document_media_type(self.archive, &member, media_type, manifest.media_type)?;
        let config_type = descriptor_media_type(self.archive, &member, &manifest.config)?;
        if !CONFIGS.contains(&config_type.as_str()) {
            return Err(ImageArchiveError::UnknownMediaType {
                archive: self.archive(),
                member,
                role: "config".to_string(),
                media_type: config_type,
            });
        }
        for layer in &manifest.layers {
            let layer_type = descriptor_media_type(self.archive, &member, layer)?;
            if !LAYERS.contains(&layer_type.as_str()) {
                return Err(ImageArchiveError::UnknownMediaType {
                    archive: self.archive(),
                    member,
                    role: "layer".to_string(),
                    media_type: layer_type,
                });
            }
        }

        let (config_member, config_bytes) = self.document(&manifest.config, &member)?;
        let config: Config = parse(self.archive, &config_member, &config_bytes)?;
        let config_platform =
            platform_label(&config.os, &config.architecture, config.variant.as_deref());
        if config.os != "linux" || config.architecture != self.want_arch {
            return Err(ImageArchiveError::PlatformMismatch {
                archive: self.archive(),
                member: config_member,
                want: self.want_arch.to_string(),
                found: config_platform,
            });
        }
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(ImageArchiveError::LayerCountMismatch {
                archive: self.archive(),
                member: config_member,
                layers: manifest.layers.len(),
                diff_ids: config.rootfs.diff_ids.len(),
            });
        }
        let mut layers = Vec::new();
        for layer in &manifest.layers {
            self.blob(layer, &member)?;
            layers.push((layer.digest.clone(), layer.size));
        }
        Ok(Found {
            manifest_digest: desc.digest.clone(),
            config_digest: manifest.config.digest.clone(),
            config_platform,
            layers,
        })
    }
}

fn is_sha256_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// The hex of a `sha256:<hex>` digest found in `member`.
fn digest_hex(archive: &Path, member: &str, digest: &str) -> Result<String> {
    if is_sha256_digest(digest) {
        return Ok(digest["sha256:".len()..].to_string());
    }
    Err(ImageArchiveError::BadDigest {
        archive: archive.to_path_buf(),
        member: member.to_string(),
        digest: digest.to_string(),
        reason: if digest.starts_with("sha256:") {
            "is not 64 lower-case hex digits".to_string()
        } else {
            "does not use sha256".to_string()
        },
    })
}

fn descriptor_media_type(archive: &Path, member: &str, desc: &Descriptor) -> Result<String> {
    desc.media_type
        .clone()
        .ok_or_else(|| ImageArchiveError::BadDocument {
            archive: archive.to_path_buf(),
            member: member.to_string(),
            reason: format!("the descriptor of {} has no mediaType", desc.digest),
        })
}

fn check_document_media_type(
    archive: &Path,
    member: &str,
    descriptor: &str,
    document: Option<String>,
) -> Result<()> {
    match document {
        Some(document) if document != descriptor => Err(ImageArchiveError::MediaTypeMismatch {
            archive: archive.to_path_buf(),
            member: member.to_string(),
            descriptor: descriptor.to_string(),
            document,
        }),
        _ => Ok(()),
    }
}

fn check_schema_version(archive: &Path, member: &str, version: u32) -> Result<()> {
    if version == 2 {
        return Ok(());
    }
    Err(ImageArchiveError::BadDocument {
        archive: archive.to_path_buf(),
        member: member.to_string(),
        reason: format!("schemaVersion is {version}, not 2"),
    })
}

fn parse<T: for<'de> Deserialize<'de>>(archive: &Path, member: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| ImageArchiveError::BadDocument {
        archive: archive.to_path_buf(),
        member: member.to_string(),
        reason: format!("not the JSON expected: {e}"),
    })
}

/// A member name made relative and clean (`./blobs//x` → `blobs/x`); `None` for the archive's root itself.
fn normalize(archive: &Path, raw: &[u8]) -> Result<Option<String>> {
    let unsafe_name = |reason: &str| ImageArchiveError::UnsafeMemberName {
        archive: archive.to_path_buf(),
        member: String::from_utf8_lossy(raw).into_owned(),
        reason: reason.to_string(),
    };
    let name = std::str::from_utf8(raw).map_err(|_| unsafe_name("is not UTF-8"))?;
    if name.starts_with('/') {
        return Err(unsafe_name("is an absolute path"));
    }
    let mut parts = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(unsafe_name("climbs out of the archive with `..`")),
            p => parts.push(p),
        }
    }
    Ok((!parts.is_empty()).then(|| parts.join("/")))
}

enum Compression {
    None,
    Gzip,
}

/// Tells a plain tar from a gzip-compressed one by their first bytes, and refuses anything else.
fn detect(archive: &Path, file: &mut std::fs::File) -> Result<Compression> {
    let mut head = Vec::with_capacity(512);
    file.by_ref()
        .take(512)
        .read_to_end(&mut head)
        .and_then(|_| file.rewind())
        .map_err(|e| ImageArchiveError::Open {
            archive: archive.to_path_buf(),
            reason: e.to_string(),
        })?;
    let not_tar = |reason: &str| ImageArchiveError::NotTar {
        archive: archive.to_path_buf(),
        reason: reason.to_string(),
    };
    if head.starts_with(&[0x1f, 0x8b]) {
        return Ok(Compression::Gzip);
    }
    if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Err(not_tar(
            "it is zstd-compressed; decompress it first (`zstd -d FILE`)",
        ));
    }
    if head.starts_with(b"\xfd7zXZ") || head.starts_with(b"BZh") {
        return Err(not_tar(
            "it is xz- or bzip2-compressed; decompress it first",
        ));
    }
    check_ustar(&head).map_err(|reason| not_tar(&reason))?;
    Ok(Compression::None)
}

fn check_ustar(head: &[u8]) -> std::result::Result<(), String> {
    if head.len() < 512 {
        return Err(format!("{} bytes, shorter than one tar header", head.len()));
    }
    if &head[257..262] != b"ustar" {
        return Err("its first header has no ustar magic".to_string());
    }
    Ok(())
}

/// What a member is, to the visitor of [`walk`].
type Visit<'v> = dyn FnMut(&str, Kind, u64, &mut dyn Read) -> Result<bool> + 'v;

/// Reads the archive member by member, in order, until `visit` returns `false`.
fn walk(archive: &Path, visit: &mut Visit<'_>) -> Result<()> {
    let open_err = |e: io::Error| ImageArchiveError::Open {
        archive: archive.to_path_buf(),
        reason: e.to_string(),
    };
    let mut file = std::fs::File::open(archive).map_err(open_err)?;
    match detect(archive, &mut file)? {
        Compression::None => {
            let mut tar = tar::Archive::new(file);
            let entries = tar.entries_with_seek().map_err(open_err)?;
            walk_entries(archive, entries, visit)
        }
        Compression::Gzip => {
            let mut gz =
                flate2::read::MultiGzDecoder::new(io::BufReader::with_capacity(1 << 16, file));
            let mut head = Vec::with_capacity(512);
            gz.by_ref().take(512).read_to_end(&mut head).map_err(|e| {
                ImageArchiveError::NotTar {
                    archive: archive.to_path_buf(),
                    reason: format!("gzip data cannot be inflated: {e}"),
                }
            })?;
            check_ustar(&head).map_err(|reason| ImageArchiveError::NotTar {
                archive: archive.to_path_buf(),
                reason: format!("gzip-compressed, but what it holds is not a tar: {reason}"),
            })?;
            let mut tar = tar::Archive::new(io::Cursor::new(head).chain(gz));
            let entries = tar.entries().map_err(open_err)?;
            walk_entries(archive, entries, visit)
        }
    }
}

fn walk_entries<R: Read>(
    archive: &Path,
    entries: tar::Entries<'_, R>,
    visit: &mut Visit<'_>,
) -> Result<()> {
    let mut previous = "(none: it is the first)".to_string();
    for entry in entries {
        let mut entry = entry.map_err(|e| ImageArchiveError::Corrupt {
            archive: archive.to_path_buf(),
            member: format!("the member after {previous}"),
            reason: e.to_string(),
        })?;
        let entry_type = entry.header().entry_type();
        if entry_type.is_pax_global_extensions()
            || entry_type.is_pax_local_extensions()
            || entry_type.is_gnu_longname()
            || entry_type.is_gnu_longlink()
        {
            continue;
        }
        let raw = entry.path_bytes().into_owned();
        let name = normalize(archive, &raw)?;
        let kind = match entry_type {
            tar::EntryType::Regular | tar::EntryType::Continuous => Kind::Regular,
            tar::EntryType::Directory => Kind::Directory,
            tar::EntryType::Symlink => Kind::Symlink,
            tar::EntryType::Link => Kind::HardLink,
            other => {
                return Err(ImageArchiveError::UnsupportedMember {
                    archive: archive.to_path_buf(),
                    member: name.unwrap_or_else(|| ".".to_string()),
                    kind: describe_entry_type(other),
                });
            }
        };
        let Some(name) = name else {
            continue; // the archive's root directory, `./`
        };
        let size = entry.size();
        if !visit(&name, kind, size, &mut entry)? {
            return Ok(());
        }
        previous = name;
    }
    Ok(())
}

fn describe_entry_type(t: tar::EntryType) -> String {
    match t {
        tar::EntryType::Char => "character device".to_string(),
        tar::EntryType::Block => "block device".to_string(),
        tar::EntryType::Fifo => "fifo".to_string(),
        tar::EntryType::GNUSparse => "GNU sparse file".to_string(),
        other => format!("tar entry of type {:?}", other.as_byte() as char),
    }
}

/// Streams `data` through sha256; keeps the bytes only if `keep`. Returns the hex digest, the byte count and the
/// kept bytes.
fn hash_stream(data: &mut dyn Read, keep: bool) -> io::Result<(String, u64, Vec<u8>)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut kept = Vec::new();
    let mut count = 0u64;
    loop {
        let n = match data.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        if keep {
            kept.extend_from_slice(&buf[..n]);
        }
        count += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), count, kept))
}

/// The first pass: every member's name, kind, size and digest; `oci-layout` and `index.json` kept.
fn first_pass(archive: &Path) -> Result<Scan> {
    let mut scan = Scan::default();
    walk(archive, &mut |name, kind, size, data| {
        if scan.members.len() >= MAX_MEMBERS {
            return Err(ImageArchiveError::TooManyMembers {
                archive: archive.to_path_buf(),
                limit: MAX_MEMBERS,
            });
        }
        if let Some(before) = scan.members.get(name)
            && !(before.kind == Kind::Directory && kind == Kind::Directory)
        {
            return Err(ImageArchiveError::DuplicateMember {
                archive: archive.to_path_buf(),
                member: name.to_string(),
            });
        }
        let layout_file = [OCI_LAYOUT, INDEX_JSON, DOCKER_MANIFEST_JSON].contains(&name);
        let must_be_file = match kind {
            Kind::Regular => false,
            Kind::Directory => layout_file,
            Kind::Symlink | Kind::HardLink => layout_file || name.starts_with("blobs/"),
        };
        if must_be_file {
            return Err(ImageArchiveError::NotRegularFile {
                archive: archive.to_path_buf(),
                member: name.to_string(),
                kind: kind.describe().to_string(),
            });
        }
        let sha256 = if kind == Kind::Regular {
            let keep = name == OCI_LAYOUT || name == INDEX_JSON;
            if keep && size > MAX_DOCUMENT_BYTES {
                return Err(ImageArchiveError::DocumentTooLarge {
                    archive: archive.to_path_buf(),
                    member: name.to_string(),
                    size,
                    limit: MAX_DOCUMENT_BYTES,
                });
            }
            let (hex, count, bytes) =
                hash_stream(data, keep).map_err(|e| ImageArchiveError::Corrupt {
                    archive: archive.to_path_buf(),
                    member: name.to_string(),
                    reason: e.to_string(),
                })?;
            if count != size {
                return Err(ImageArchiveError::Corrupt {
                    archive: archive.to_path_buf(),
                    member: name.to_string(),
                    reason: format!(
                        "the archive ends after {count} of its {size} bytes (truncated)"
                    ),
                });
            }
            if keep {
                scan.documents.insert(name.to_string(), bytes);
            }
            Some(hex)
        } else {
            None
        };
        scan.members
            .insert(name.to_string(), Member { kind, size, sha256 });
        Ok(true)
    })?;
    Ok(scan)
}

/// Reads one member (a JSON blob the first pass saw) again, at most [`MAX_DOCUMENT_BYTES`] of it.
fn read_member(archive: &Path, member: &str) -> Result<Vec<u8>> {
    let mut found = None;
    walk(archive, &mut |name, kind, _, data| {
        if name != member || kind != Kind::Regular {
            return Ok(true);
        }
        let mut bytes = Vec::new();
        data.take(MAX_DOCUMENT_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| ImageArchiveError::Corrupt {
                archive: archive.to_path_buf(),
                member: member.to_string(),
                reason: e.to_string(),
            })?;
        found = Some(bytes);
        Ok(false)
    })?;
    found.ok_or_else(|| ImageArchiveError::Corrupt {
        archive: archive.to_path_buf(),
        member: member.to_string(),
        reason: "gone when the archive was read again (was it changed meanwhile?)".to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_made_relative_and_unsafe_ones_refused() {
        let a = Path::new("a.tar");
        assert_eq!(
            normalize(a, b"./blobs//sha256/x").expect("ok"),
            Some("blobs/sha256/x".to_string())
        );
        assert_eq!(normalize(a, b"./").expect("ok"), None);
        assert_eq!(
            normalize(a, b"index.json").expect("ok"),
            Some("index.json".into())
        );
        for bad in [&b"/etc/passwd"[..], b"blobs/../../x", b"..", b"a/\xff"] {
            assert!(
                matches!(
                    normalize(a, bad),
                    Err(ImageArchiveError::UnsafeMemberName { .. })
                ),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn only_lower_case_sha256_digests_are_accepted() {
        let hex = "ab".repeat(32);
        assert!(is_sha256_digest(&format!("sha256:{hex}")));
        assert!(!is_sha256_digest(&format!("sha256:{}", hex.to_uppercase())));
        assert!(!is_sha256_digest(&format!("sha512:{hex}")));
        assert!(!is_sha256_digest(&format!("sha256:{}", &hex[1..])));
        assert!(!is_sha256_digest(&hex));
    }
}
