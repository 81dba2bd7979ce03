//! The staged tree: a directory that looks like the image's root, built from verified cache blobs, archive
//! members, this repository's node content (units, drop-ins, sysctl, modules-load, config files) and the agent
//! binary. It remembers, for every file, its mode, its sha256 and which artifact put it there, so the lock, the SBOM
//! and the layer are all made from one record.

use crate::checksum::ChecksumAlgo;
use crate::checksum::Hasher;
use crate::checksum::sha256_hex;
use crate::fetched::FetchedArtifact;
use crate::gobuild::pack_go_image;
use crate::manifest::Install;
use crate::manifest::Manifest;
use crate::manifest::{ArchiveFormat, member_basename};
use crate::{AGENT_ARTIFACT, BuildError, BuildOptions, CONTENT_ARTIFACT, oci};
use k8s_core::image_info::{
    ImageLock, InstalledFile, LOCK_SCHEMA_VERSION, LockedArtifact, LockedImage,
};
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A staging failure, naming the path it is about.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error(
        "{node_path} would be installed twice: by {first:?} and by {second:?}\n  hint: remove one of them from the manifest or the node content"
    )]
    Collision {
        node_path: String,
        first: String,
        second: String,
    },
    #[error("{path}: {reason}")]
    Io { path: PathBuf, reason: String },
    #[error("{archive}: member {member:?} is not in the archive{}\n  hint: list the archive with `tar tf` and fix `members` in the manifest", if .present.is_empty() { String::new() } else { format!(" (it has: {})", .present.join(", ")) })]
    MissingMember {
        archive: String,
        member: String,
        present: Vec<String>,
    },
    #[error(
        "{archive}: member {member:?} is a {kind}, not a regular file\n  hint: install only regular files from archives"
    )]
    NotAFile {
        archive: String,
        member: String,
        kind: String,
    },
    #[error(
        "node content: {reason}\n  hint: pass --content pointing at the repository root (the directory with units/, dropins/, sysctl.d/)"
    )]
    Content { reason: String },
}

/// One regular file in the staged tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedFile {
    pub mode: u32,
    pub sha256: String,
    pub size: u64,
    /// Name of the artifact (or builder part) that installed it.
    pub owner: String,
}

/// The staged root directory and what is in it.
#[derive(Debug)]
pub struct Staging {
    root: PathBuf,
    files: BTreeMap<String, StagedFile>,
    symlinks: BTreeMap<String, String>,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StageError + '_ {
    move |e| StageError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

impl Staging {
    /// An empty staging root at `root` (which must exist and be empty).
    pub fn new(root: PathBuf) -> Staging {
        Staging {
            root,
            files: BTreeMap::new(),
            symlinks: BTreeMap::new(),
        }
    }

    /// Takes the files another staging (on the same root) installed, refusing any path this one already has.
    pub fn merge(&mut self, other: Staging) -> Result<(), StageError> {
        for (path, file) in other.files {
            self.claim(&path, &file.owner)?;
            self.files.insert(path, file);
        }
        for (path, target) in other.symlinks {
            self.claim(&path, "a symlink")?;
            self.symlinks.insert(path, target);
        }
        Ok(())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Regular files by node path (`/usr/bin/kubelet`).
    pub fn files(&self) -> &BTreeMap<String, StagedFile> {
        &self.files
    }

    /// Symlinks by node path, with their targets.
    pub fn symlinks(&self) -> &BTreeMap<String, String> {
        &self.symlinks
    }

    /// The host path of a node path inside the staging root.
    pub fn host_path(&self, node_path: &str) -> PathBuf {
        self.root.join(node_path.trim_start_matches('/'))
    }

    fn claim(&self, node_path: &str, owner: &str) -> Result<(), StageError> {
        let first = self
            .files
            .get(node_path)
            .map(|f| f.owner.clone())
            .or_else(|| {
                self.symlinks
                    .get(node_path)
                    .map(|_| "a symlink".to_string())
            });
        match first {
            Some(first) => Err(StageError::Collision {
                node_path: node_path.to_string(),
                first,
                second: owner.to_string(),
            }),
            None => Ok(()),
        }
    }

    /// Writes everything `reader` yields to `node_path` with `mode`, hashing it on the way.
    pub fn add_reader(
        &mut self,
        node_path: &str,
        mut reader: impl Read,
        mode: u32,
        owner: &str,
    ) -> Result<&StagedFile, StageError> {
        self.claim(node_path, owner)?;
        let dest = self.host_path(node_path);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        let mut out = io::BufWriter::with_capacity(
            256 * 1024,
            std::fs::File::create(&dest).map_err(io_err(&dest))?,
        );
        let mut hasher = Hasher::new(ChecksumAlgo::Sha256);
        let mut buf = vec![0u8; 256 * 1024];
        let mut size = 0u64;
        loop {
            let n = reader.read(&mut buf).map_err(io_err(&dest))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(io_err(&dest))?;
            size += n as u64;
        }
        let file = out.into_inner().map_err(|e| StageError::Io {
            path: dest.clone(),
            reason: e.error().to_string(),
        })?;
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(io_err(&dest))?;
        let staged = StagedFile {
            mode,
            sha256: hasher.finish().hex,
            size,
            owner: owner.to_string(),
        };
        self.files.insert(node_path.to_string(), staged);
        Ok(&self.files[node_path])
    }

    /// Copies a host file into the tree.
    pub fn add_file(
        &mut self,
        node_path: &str,
        src: &Path,
        mode: u32,
        owner: &str,
    ) -> Result<&StagedFile, StageError> {
        let file = std::fs::File::open(src).map_err(io_err(src))?;
        self.add_reader(node_path, file, mode, owner)
    }

    /// Writes bytes into the tree.
    pub fn add_bytes(
        &mut self,
        node_path: &str,
        bytes: &[u8],
        mode: u32,
        owner: &str,
    ) -> Result<&StagedFile, StageError> {
        self.add_reader(node_path, bytes, mode, owner)
    }

    /// Adds a symlink `node_path -> target`.
    pub fn add_symlink(
        &mut self,
        node_path: &str,
        target: &str,
        owner: &str,
    ) -> Result<(), StageError> {
        self.claim(node_path, owner)?;
        let dest = self.host_path(node_path);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        std::os::unix::fs::symlink(target, &dest).map_err(io_err(&dest))?;
        self.symlinks
            .insert(node_path.to_string(), target.to_string());
        Ok(())
    }

    /// Installs the listed members of an archive (a verified cache blob) into `dir`.
    #[allow(clippy::too_many_arguments)] // one call site; each argument is a distinct fact of the manifest entry
    pub fn add_archive_members(
        &mut self,
        archive: &Path,
        archive_label: &str,
        format: ArchiveFormat,
        dir: &str,
        members: &[String],
        mode: u32,
        owner: &str,
    ) -> Result<(), StageError> {
        let file = std::fs::File::open(archive).map_err(io_err(archive))?;
        let reader: Box<dyn Read> = match format {
            ArchiveFormat::TarGz => Box::new(ExpansionLimit::new(
                flate2::read::GzDecoder::new(io::BufReader::new(file)),
                MAX_EXPANDED_ARCHIVE_BYTES,
            )),
            ArchiveFormat::Tar => Box::new(io::BufReader::new(file)),
        };
        let wanted: BTreeMap<String, &String> =
            members.iter().map(|m| (normalise_member(m), m)).collect();
        let mut found: BTreeMap<String, ()> = BTreeMap::new();
        let mut present = Vec::new();
        let mut tar = tar::Archive::new(reader);
        let entries = tar.entries().map_err(|e| StageError::Io {
            path: archive.to_path_buf(),
            reason: format!("{archive_label} is not a readable tar archive: {e}"),
        })?;
        for entry in entries {
            let entry = entry.map_err(|e| StageError::Io {
                path: archive.to_path_buf(),
                reason: format!("{archive_label}: corrupt tar entry: {e}"),
            })?;
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let key = normalise_member(&name);
            if present.len() < 12 && !key.is_empty() {
                present.push(key.clone());
            }
            let Some(original) = wanted.get(&key) else {
                continue;
            };
            let kind = entry.header().entry_type();
            if !kind.is_file() {
                return Err(StageError::NotAFile {
                    archive: archive_label.to_string(),
                    member: (*original).clone(),
                    kind: format!("{kind:?}"),
                });
            }
            let node_path = format!(
                "{}/{}",
                dir.trim_end_matches('/'),
                member_basename(original)
            );
            self.add_reader(&node_path, entry, mode, owner)?;
            found.insert(key, ());
        }
        if let Some((_, missing)) = wanted.iter().find(|(k, _)| !found.contains_key(*k)) {
            return Err(StageError::MissingMember {
                archive: archive_label.to_string(),
                member: (*missing).clone(),
                present,
            });
        }
        Ok(())
    }
}

/// A compressed archive is read up to this many decompressed bytes (16 GiB: a release tarball expands to a few
/// hundred MB); past it, the read fails as a likely decompression bomb instead of running for hours.
pub const MAX_EXPANDED_ARCHIVE_BYTES: u64 = 16 << 30;

/// A reader that fails once more than `limit` bytes came out of it.
struct ExpansionLimit<R> {
    inner: R,
    read: u64,
    limit: u64,
}

impl<R> ExpansionLimit<R> {
    fn new(inner: R, limit: u64) -> ExpansionLimit<R> {
        ExpansionLimit {
            inner,
            read: 0,
            limit,
        }
    }
}

impl<R: Read> Read for ExpansionLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.limit {
            return Err(io::Error::other(format!(
                "it expands to more than {} bytes (a decompression bomb?)",
                self.limit
            )));
        }
        Ok(n)
    }
}

/// `./bin/x` and `bin/x` name the same member.
fn normalise_member(name: &str) -> String {
    let mut s = name;
    while let Some(rest) = s.strip_prefix("./") {
        s = rest;
    }
    s.trim_end_matches('/').to_string()
}

/// One file of this repository's node content and where it lands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentFile {
    pub node_path: String,
    pub source: PathBuf,
    pub mode: u32,
}

/// Where each content directory of the repository lands in the image.
pub const CONTENT_LAYOUT: &[(&str, &str)] = &[
    ("units", "/usr/lib/systemd/system"),
    ("dropins", "/usr/lib/systemd/system"),
    ("sysctl.d", "/usr/lib/sysctl.d"),
    ("modules-load.d", "/usr/lib/modules-load.d"),
    ("files", ""),
];

/// Lists the node content under `content_dir` (sorted, deterministic). `units/`, `dropins/` and `sysctl.d/` must
/// exist; `modules-load.d/` and `files/` are optional. Files whose names start with `.` and `README*` files are
/// skipped.
pub fn list_node_content(content_dir: &Path) -> Result<Vec<ContentFile>, StageError> {
    let mut out = Vec::new();
    for (sub, dest) in CONTENT_LAYOUT {
        let dir = content_dir.join(sub);
        if !dir.is_dir() {
            if matches!(*sub, "units" | "dropins" | "sysctl.d") {
                return Err(StageError::Content {
                    reason: format!("{} is not a directory", dir.display()),
                });
            }
            continue;
        }
        walk(&dir, &dir, dest, &mut out)?;
    }
    out.sort_by(|a, b| a.node_path.cmp(&b.node_path));
    Ok(out)
}

fn walk(base: &Path, dir: &Path, dest: &str, out: &mut Vec<ContentFile>) -> Result<(), StageError> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io_err(dir))?
        .collect::<Result<_, _>>()
        .map_err(io_err(dir))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name.starts_with("README") {
            continue;
        }
        let path = entry.path();
        let meta = std::fs::metadata(&path).map_err(io_err(&path))?;
        if meta.is_dir() {
            walk(base, &path, dest, out)?;
        } else if meta.is_file() {
            let rel = path.strip_prefix(base).map_err(|e| StageError::Content {
                reason: e.to_string(),
            })?;
            let rel = rel.to_str().ok_or_else(|| StageError::Content {
                reason: format!("{} is not a UTF-8 path", path.display()),
            })?;
            let mode = if meta.permissions().mode() & 0o111 != 0 {
                0o755
            } else {
                0o644
            };
            out.push(ContentFile {
                node_path: format!("{dest}/{rel}"),
                source: path.clone(),
                mode,
            });
        }
    }
    Ok(())
}

/// The `WantedBy=` targets in a unit's `[Install]` section (what `systemctl enable` would link).
pub fn wanted_by(unit_text: &str) -> Vec<String> {
    let mut in_install = false;
    let mut targets = Vec::new();
    for line in unit_text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_install = line == "[Install]";
            continue;
        }
        if !in_install || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(value) = line.strip_prefix("WantedBy=") {
            targets.extend(value.split_whitespace().map(str::to_string));
        }
    }
    targets
}

/// Stages every input into `staging` and returns the lock.
pub(crate) fn stage_all(
    manifest: &Manifest,
    fetched: &[FetchedArtifact],
    opts: &BuildOptions,
    mtime: u64,
    staging: &mut Staging,
) -> Result<ImageLock, BuildError> {
    let mut artifacts = Vec::new();
    // Archives are decompressed in parallel (inflating them is most of staging), each into its own record on the same
    // root, merged here before the single files. Two artifacts never install one path (the manifest refuses it), so
    // the order only matters for node content, which still comes last.
    let root = staging.root().to_path_buf();
    let unpacked: Vec<Result<Staging, StageError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = fetched
            .iter()
            .filter_map(|f| match &f.artifact.install {
                Install::Archive {
                    format,
                    dir,
                    members,
                    mode,
                } => {
                    let root = root.clone();
                    Some(scope.spawn(move || {
                        let mut part = Staging::new(root);
                        part.add_archive_members(
                            &f.blob,
                            f.artifact.url.as_str(),
                            *format,
                            dir,
                            members,
                            *mode,
                            &f.artifact.name,
                        )?;
                        Ok(part)
                    }))
                }
                Install::File { .. } | Install::Image { .. } | Install::Programs { .. } => None,
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    for part in unpacked {
        staging.merge(part?)?;
    }
    for f in fetched {
        let a = &f.artifact;
        let mut image = None;
        let mut packed_sha256 = None;
        match &a.install {
            Install::File { path, mode, .. } => {
                staging.add_file(path, &f.blob, *mode, &a.name)?;
            }
            Install::Image {
                reference,
                manifest_digest,
                path,
            } => {
                // A program built from its Go module is packed into its image here (deterministic: the pinned
                // digest is what every build gives); a fetched or pulled archive is verified as it is.
                let packed = match &f.go {
                    Some(go) => Some(pack_go_image(
                        a,
                        go,
                        reference,
                        manifest_digest,
                        manifest.arch.as_str(),
                        mtime,
                    )?),
                    None => None,
                };
                let archive = packed.as_ref().map_or(f.blob.as_path(), |t| t.path());
                let verified =
                    oci::verify_image_archive(archive, manifest_digest, manifest.arch.as_str())
                        .map_err(|error| BuildError::Image {
                            artifact: a.name.clone(),
                            url: a.source_label.clone(),
                            reason: error.to_string(),
                        })?;
                let staged = staging.add_file(path, archive, 0o644, &a.name)?;
                if packed.is_some() {
                    // The lock pins what the node holds: the packed archive (the module's hash is in `go`).
                    packed_sha256 = Some(format!("sha256:{}", staged.sha256));
                }
                image = Some(LockedImage {
                    reference: reference.clone(),
                    manifest_digest: verified.manifest_digest,
                    archive: path.clone(),
                    platforms: verified.platforms,
                });
            }
            Install::Programs { dir, names, mode } => {
                let programs = f.go.as_ref().map(|g| &g.programs);
                for program in names {
                    let Some(source) = programs.and_then(|p| p.get(program)) else {
                        return Err(StageError::Content {
                            reason: format!(
                                "artifact {:?}: the Go build made no {program}",
                                a.name
                            ),
                        }
                        .into());
                    };
                    let path = format!("{}/{program}", dir.trim_end_matches('/'));
                    staging.add_file(&path, source, *mode, &a.name)?;
                }
            }
            Install::Archive { .. } => {}
        }
        let go = f.go.as_ref().map(|g| g.lock.clone());
        artifacts.push(LockedArtifact {
            name: a.name.clone(),
            version: a.version.clone(),
            url: a.source_label.clone(),
            // A Go build's source is pinned by the module's go.sum hash; the programs' sha256 are in `files`.
            checksum: match (&packed_sha256, &go) {
                (Some(sha), _) => sha.clone(),
                (None, Some(g)) => g.sum.clone(),
                (None, None) => f.checksum.to_string(),
            },
            checksum_source: f.checksum_source.clone(),
            standin: a.standin,
            files: vec![],
            image,
            go,
        });
    }

    if !opts.agent_bin.is_file() {
        return Err(BuildError::NoAgentBinary(opts.agent_bin.clone()));
    }
    let agent = staging.add_file("/usr/bin/k8s-agent", &opts.agent_bin, 0o755, AGENT_ARTIFACT)?;
    artifacts.push(LockedArtifact {
        name: AGENT_ARTIFACT.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        url: "workspace:agent".to_string(),
        checksum: format!("sha256:{}", agent.sha256),
        checksum_source: "built".to_string(),
        standin: false,
        files: vec![],
        image: None,
        go: None,
    });

    let content = list_node_content(&opts.content_dir)?;
    // Node-content files an artifact replaces (install.replace_content): path → artifact name.
    let mut replaced: std::collections::BTreeMap<&str, (&str, bool)> = fetched
        .iter()
        .filter_map(|f| match &f.artifact.install {
            Install::File {
                path,
                replace_content: true,
                ..
            } => Some((path.as_str(), (f.artifact.name.as_str(), false))),
            _ => None,
        })
        .collect();
    let mut listing = String::new();
    for c in &content {
        if let Some((_, used)) = replaced.get_mut(c.node_path.as_str()) {
            *used = true;
            continue;
        }
        let staged = staging.add_file(&c.node_path, &c.source, c.mode, CONTENT_ARTIFACT)?;
        listing.push_str(&format!("{} {:o} {}\n", c.node_path, c.mode, staged.sha256));
        if c.node_path.starts_with("/usr/lib/systemd/system/") && !c.node_path.contains(".d/") {
            let text = std::fs::read_to_string(&c.source).map_err(|e| StageError::Io {
                path: c.source.clone(),
                reason: e.to_string(),
            })?;
            let unit = c
                .node_path
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_string();
            for target in wanted_by(&text) {
                staging.add_symlink(
                    &format!("/etc/systemd/system/{target}.wants/{unit}"),
                    &c.node_path,
                    CONTENT_ARTIFACT,
                )?;
            }
        }
    }
    if let Some((path, (artifact, _))) = replaced.iter().find(|(_, (_, used))| !used) {
        return Err(StageError::Content {
            reason: format!(
                "artifact {artifact:?} has replace_content = true but the node content has no {path} to replace"
            ),
        }
        .into());
    }
    artifacts.push(LockedArtifact {
        name: CONTENT_ARTIFACT.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        url: "workspace:units,dropins,sysctl.d,modules-load.d,files".to_string(),
        checksum: format!("sha256:{}", sha256_hex(listing.as_bytes())),
        checksum_source: "built".to_string(),
        standin: false,
        files: vec![],
        image: None,
        go: None,
    });

    for locked in &mut artifacts {
        locked.files = staging
            .files()
            .iter()
            .filter(|(_, f)| f.owner == locked.name)
            .map(|(path, f)| InstalledFile {
                path: path.clone(),
                mode: f.mode,
                sha256: f.sha256.clone(),
            })
            .collect();
    }

    Ok(ImageLock {
        lock_version: LOCK_SCHEMA_VERSION,
        image_name: manifest.name.clone(),
        kubernetes_version: manifest.kubernetes_version.clone(),
        arch: manifest.arch.as_str().to_string(),
        source_date_epoch: mtime,
        host_packages: manifest.host_packages.clone(),
        artifacts,
    })
}

pub(crate) fn to_json(value: &impl serde::Serialize) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(value).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wanted_by_reads_only_the_install_section() {
        let unit = "[Unit]\nWantedBy=nope.target\n[Service]\nExecStart=/x\n[Install]\n# WantedBy=commented.target\nWantedBy=multi-user.target cloud-init.target\n";
        assert_eq!(
            wanted_by(unit),
            vec!["multi-user.target", "cloud-init.target"]
        );
        assert!(wanted_by("[Service]\nExecStart=/x\n").is_empty());
    }

    #[test]
    fn members_compare_without_dot_slash() {
        assert_eq!(normalise_member("./loopback"), "loopback");
        assert_eq!(normalise_member("././bin/ctr"), "bin/ctr");
        assert_eq!(normalise_member("bin/"), "bin");
    }

    #[test]
    fn a_decompression_bomb_stops_at_the_expansion_limit() {
        use std::io::Write as _;
        // 64 MiB of zeros compress to about 64 KiB.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            gz.write_all(&zeros).expect("compress");
        }
        let bomb = gz.finish().expect("finish");
        assert!(bomb.len() < 1 << 20, "{} bytes", bomb.len());
        let mut limited =
            super::ExpansionLimit::new(flate2::read::GzDecoder::new(&bomb[..]), 8 << 20);
        let err = std::io::copy(&mut limited, &mut std::io::sink()).expect_err("stopped");
        assert!(err.to_string().contains("more than 8388608 bytes"), "{err}");
        assert!(
            limited.read <= (8 << 20) + (1 << 20),
            "stopped close to the limit: {}",
            limited.read
        );
        let mut fine =
            super::ExpansionLimit::new(flate2::read::GzDecoder::new(&bomb[..]), 64 << 20);
        assert_eq!(
            std::io::copy(&mut fine, &mut std::io::sink()).expect("within"),
            64 << 20
        );
    }
}
