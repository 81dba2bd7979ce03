//! The image manifest: a versioned TOML file that says what goes into the image.
//!
//! Parsing happens in two steps, kept apart on purpose: serde reads the text into `Raw*` types that reject unknown
//! keys and keep the source span of every value, then [`Manifest::parse`] checks every value and builds the checked
//! [`Manifest`]. Every error is a [`ManifestError`] with the file, line and column it is about and a hint, so the
//! tests can assert exactly which error a bad manifest gives.
//!
//! | submodule | what is in it |
//! |---|---|
//! | `raw` | the serde types of the text as written |
//! | `checks` | the checks of each value (versions, Go modules, artifacts, URLs, paths, modes, names) |
//! | `pins` | checksum and image-digest pins |
//! | this file | the checked types ([`Manifest`], [`Artifact`], [`Install`], …), [`ManifestError`], [`Manifest::parse`] |
//!
//! All of it is pure except [`Manifest::load`], which reads the file.

mod checks;
mod pins;
mod raw;

pub use checks::parse_mode;
pub use pins::{check_image_reference, is_sha256_digest};

use checks::*;
use pins::*;
use raw::*;

use crate::checksum::{Checksum, ChecksumAlgo};
use crate::gomod::{self, GoBuild, GoModule};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;
use url::Url;

/// The only manifest schema this builder understands.
pub const SCHEMA_VERSION: u32 = 1;
/// The oldest Kubernetes minor the units and configs in this repository are written for.
pub const MIN_KUBERNETES_MINOR: u32 = 33;
/// Paths the builder writes itself; artifacts may not install there.
pub const RESERVED_PATHS: &[&str] = &["/usr/share/k8s-image", "/usr/bin/k8s-agent"];
/// Where container image archives are baked (one `<artifact name>.tar` each), for the agent to import at boot.
pub const IMAGES_DIR: &str = "/usr/share/k8s-image/images";

/// A checked manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The file it was read from.
    pub path: PathBuf,
    /// The exact text, copied into the image.
    pub text: String,
    pub name: String,
    pub kubernetes_version: String,
    pub arch: Arch,
    /// From the manifest; `SOURCE_DATE_EPOCH` in the environment wins at build time.
    pub source_date_epoch: Option<u64>,
    pub host_packages: Vec<String>,
    pub artifacts: Vec<Artifact>,
}

/// Target CPU architecture, in Kubernetes' spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    Amd64,
    Arm64,
}

impl Arch {
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }
}

/// One thing to fetch, verify and install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub name: String,
    pub version: String,
    /// Where the bytes are fetched from (resolved against `base_url`).
    pub url: Url,
    /// The URL as the lock and SBOM record it: the resolved URL, except that a URL relative to a relative
    /// `base_url` stays relative (`../demo/artifacts/etcd.tar.gz`), so the image does not depend on the directory
    /// the manifest was checked out in.
    pub source_label: String,
    /// Where the checksum came from, as the lock records it: `manifest`, or the checksum file's URL (kept relative
    /// like `source_label` when it is relative to a relative `base_url`).
    pub checksum_label: String,
    pub pin: ChecksumPin,
    pub standin: bool,
    pub install: Install,
    /// Built from a Go module ([`ChecksumPin::GoModule`]): what to build and how.
    pub go: Option<GoBuild>,
}

/// Where the expected checksum comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChecksumPin {
    /// Written in the manifest.
    Fixed(Checksum),
    /// Read from a published checksum file (bare digest or `sha256sum` lines).
    Published(Url),
    /// A container image pulled from its registry: its `manifest_digest` pins every byte (the registry's
    /// documents and blobs are content-addressed); the archive made from them is hashed after the pull.
    Registry,
    /// Built from a Go module: the module's go.sum hash (`h1:`) in the manifest pins its source, Go verifies every
    /// dependency against go.sum and the checksum database ([`crate::gomod`]).
    GoModule,
}

/// How an artifact lands in the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Install {
    /// The downloaded file itself, at `path`. With `replace_content`, it replaces the node-content file at the
    /// same path (e.g. a site's containerd config); without, such a collision is an error.
    File {
        path: String,
        mode: u32,
        replace_content: bool,
    },
    /// Members of a downloaded archive, each at `dir/<basename of member>`.
    Archive {
        format: ArchiveFormat,
        dir: String,
        members: Vec<String>,
        mode: u32,
    },
    /// Programs built from a Go module, each at `dir/<package basename>`.
    Programs {
        dir: String,
        names: Vec<String>,
        mode: u32,
    },
    /// A container image archive (OCI image layout in a tar), verified against `manifest_digest` and baked at
    /// `path` (`/usr/share/k8s-image/images/<name>.tar`, 0644) for the agent to import into containerd at boot.
    Image {
        reference: String,
        manifest_digest: String,
        path: String,
    },
}

impl Install {
    /// Every node path this install writes, in manifest order.
    pub fn target_paths(&self) -> Vec<String> {
        match self {
            Install::File { path, .. } | Install::Image { path, .. } => vec![path.clone()],
            Install::Archive { dir, members, .. } => members
                .iter()
                .map(|m| format!("{}/{}", dir.trim_end_matches('/'), member_basename(m)))
                .collect(),
            Install::Programs { dir, names, .. } => names
                .iter()
                .map(|n| format!("{}/{n}", dir.trim_end_matches('/')))
                .collect(),
        }
    }
}

/// The last path component of an archive member name.
pub fn member_basename(member: &str) -> &str {
    member
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(member)
}

/// Archive formats an artifact may come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    TarGz,
    Tar,
}

/// A bad manifest: where, what, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub kind: ManifestErrorKind,
}

/// What is wrong with a manifest. `PartialEq` so tests assert the exact error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestErrorKind {
    /// The file cannot be read.
    Unreadable(String),
    /// TOML syntax, an unknown key, a missing key or a value of the wrong type (message from the TOML parser).
    Toml(String),
    UnsupportedSchema(i64),
    BadName(String),
    BadKubernetesVersion(String),
    KubernetesTooOld(String),
    UnsupportedArch(String),
    BadSourceDateEpoch(i64),
    BadUrl {
        url: String,
        reason: String,
    },
    ChecksumCount {
        artifact: String,
        found: usize,
    },
    BadChecksum {
        artifact: String,
        reason: String,
    },
    DuplicateArtifact(String),
    InstallKind {
        artifact: String,
    },
    BadInstallPath {
        path: String,
        reason: String,
    },
    BadMode(String),
    MembersWithoutDir {
        artifact: String,
    },
    NoMembers {
        artifact: String,
    },
    BadMember {
        member: String,
        reason: String,
    },
    UnknownArchiveFormat {
        artifact: String,
        url: String,
    },
    PathCollision {
        path: String,
        first: String,
    },
    ReservedPath(String),
    BadHostPackage(String),
    ReplaceWithoutFile {
        artifact: String,
    },
    /// `image` together with `file`/`dir`/`members`/`mode`, or `manifest_digest` without `image`.
    ImageInstall {
        artifact: String,
        reason: String,
    },
    BadImageReference {
        reference: String,
        reason: String,
    },
    BadManifestDigest(String),
    /// `[go] toolchain` is not a Go release name.
    BadGoToolchain {
        toolchain: String,
        reason: String,
    },
    /// An `[artifact.go]` without `[go] toolchain`.
    NoGoToolchain {
        artifact: String,
    },
    /// A value of a `[[go_module]]` is not usable.
    BadGoModule {
        module: String,
        reason: String,
    },
    DuplicateGoModule(String),
    /// `[artifact.go] module` names no `[[go_module]]`.
    UnknownGoModule {
        artifact: String,
        module: String,
    },
    /// An `[artifact.go]` that does not fit together (packages, install, a download pin beside it).
    GoArtifact {
        artifact: String,
        reason: String,
    },
}

impl ManifestErrorKind {
    fn message(&self) -> String {
        use ManifestErrorKind::*;
        match self {
            Unreadable(e) => format!("cannot read the manifest: {e}"),
            Toml(m) => m.trim_end().to_string(),
            UnsupportedSchema(v) => format!("schema_version {v} is not supported"),
            BadName(n) => format!("name {n:?} is not a valid image name"),
            BadKubernetesVersion(v) => {
                format!("kubernetes_version {v:?} is not a version like \"1.35.0\"")
            }
            KubernetesTooOld(v) => {
                format!("kubernetes_version {v} is older than 1.{MIN_KUBERNETES_MINOR}")
            }
            UnsupportedArch(a) => format!("arch {a:?} is not supported"),
            BadSourceDateEpoch(v) => format!("source_date_epoch {v} is negative"),
            BadUrl { url, reason } => format!("url {url:?} is not usable: {reason}"),
            ChecksumCount { artifact, found } => {
                format!(
                    "artifact {artifact:?} has {found} of sha256/sha512/checksum_url; it needs exactly one"
                )
            }
            BadChecksum { artifact, reason } => format!("artifact {artifact:?}: {reason}"),
            DuplicateArtifact(n) => format!("artifact name {n:?} is used twice"),
            InstallKind { artifact } => {
                format!("artifact {artifact:?}: install needs exactly one of `file` or `dir`")
            }
            BadInstallPath { path, reason } => format!("install path {path:?} {reason}"),
            BadMode(m) => format!("mode {m:?} is not an octal permission like \"0755\""),
            MembersWithoutDir { artifact } => {
                format!("artifact {artifact:?}: `members` only goes with `dir` (archive install)")
            }
            NoMembers { artifact } => {
                format!("artifact {artifact:?}: an archive install lists no members")
            }
            BadMember { member, reason } => format!("archive member {member:?} {reason}"),
            UnknownArchiveFormat { artifact, url } => {
                format!("artifact {artifact:?}: cannot tell the archive format of {url}")
            }
            PathCollision { path, first } => {
                format!("{path} is already installed by artifact {first:?}")
            }
            ReservedPath(p) => format!("{p} is written by the image builder itself"),
            BadHostPackage(p) => format!("host package {p:?} is not a valid Debian package name"),
            ReplaceWithoutFile { artifact } => {
                format!(
                    "artifact {artifact:?}: replace_content only goes with a single-file install"
                )
            }
            ImageInstall { artifact, reason } => format!("artifact {artifact:?}: {reason}"),
            BadImageReference { reference, reason } => {
                format!("image {reference:?} is not a usable image reference: {reason}")
            }
            BadManifestDigest(d) => {
                format!("manifest_digest {d:?} is not a digest like \"sha256:<64 hex>\"")
            }
            BadGoToolchain { toolchain, reason } => {
                format!("[go] toolchain {toolchain:?} is not usable: {reason}")
            }
            NoGoToolchain { artifact } => format!(
                "artifact {artifact:?} is built from a Go module but the manifest pins no Go toolchain"
            ),
            BadGoModule { module, reason } => format!("go_module {module:?}: {reason}"),
            DuplicateGoModule(n) => format!("go_module name {n:?} is used twice"),
            UnknownGoModule { artifact, module } => {
                format!("artifact {artifact:?}: there is no [[go_module]] named {module:?}")
            }
            GoArtifact { artifact, reason } => format!("artifact {artifact:?}: {reason}"),
        }
    }

    /// What to do about it.
    pub fn hint(&self) -> &'static str {
        use ManifestErrorKind::*;
        match self {
            Unreadable(_) => "check the path given to --manifest",
            Toml(_) => "see the manifest reference in README.md for the keys each table takes",
            UnsupportedSchema(_) => "this imagebuilder reads schema_version = 1",
            BadName(_) => "use lower-case letters, digits, '.', '_' and '-'",
            BadKubernetesVersion(_) => {
                "write MAJOR.MINOR.PATCH without a leading 'v', e.g. \"1.35.0\""
            }
            KubernetesTooOld(_) => "the units and kubelet config target Kubernetes 1.33 or newer",
            UnsupportedArch(_) => "use \"amd64\" or \"arm64\"",
            BadSourceDateEpoch(_) => "use seconds since 1970-01-01, e.g. 1767225600",
            BadUrl { .. } => {
                "use an absolute http(s):// or file:// URL, or a relative one together with base_url"
            }
            ChecksumCount { .. } => {
                "pin every artifact: sha256 = \"<hex>\", sha512 = \"<hex>\" or checksum_url = \"<url>\""
            }
            BadChecksum { .. } => "sha256 is 64 hex digits, sha512 is 128",
            DuplicateArtifact(_) => "give each [[artifact]] its own name",
            InstallKind { .. } => {
                "install = { file = \"/usr/bin/x\" } for one file, or { dir = \"/opt/cni/bin\", members = [..] } for an archive"
            }
            BadInstallPath { .. } => "use an absolute, normalised path such as /usr/bin/kubelet",
            BadMode(_) => "write the mode as a string of octal digits, e.g. \"0755\" or \"0644\"",
            MembersWithoutDir { .. } => {
                "for an archive use install = { dir = \"...\", members = [...] }"
            }
            NoMembers { .. } => {
                "list the archive members to install, e.g. members = [\"./loopback\"]"
            }
            BadMember { .. } => {
                "name members as they appear in `tar tf`, relative and without '..'"
            }
            UnknownArchiveFormat { .. } => {
                "archive installs need a .tar.gz, .tgz or .tar URL; for a single binary use install.file"
            }
            PathCollision { .. } => "two artifacts cannot install the same path; drop one of them",
            ReservedPath(_) => "the builder installs k8s-agent and /usr/share/k8s-image/ itself",
            BadHostPackage(_) => "use the package's Debian name, e.g. \"conntrack\"",
            ReplaceWithoutFile { .. } => {
                "use install = { file = \"/etc/...\", replace_content = true } to replace one node-content file"
            }
            ImageInstall { .. } => {
                "an image is installed with install = { image = \"registry/name:tag\", manifest_digest = \"sha256:…\" } \
                 and nothing else (the builder bakes it under /usr/share/k8s-image/images/)"
            }
            BadImageReference { .. } => {
                "write the full reference as containerd names it: registry host, repository and tag, e.g. \
                 \"registry.k8s.io/pause:3.10.1\""
            }
            BadManifestDigest(_) => {
                "the digest of the image's manifest (or index), as `skopeo inspect --raw … | sha256sum` or the \
                 registry shows it"
            }
            BadGoToolchain { .. } | NoGoToolchain { .. } => {
                "add [go] toolchain = \"go1.26.8\" (the Go release that builds every Go artifact; `go version` names it)"
            }
            BadGoModule { .. } => {
                "path = \"k8s.io/kubernetes\", version = \"v1.37.2\", sum = the h1: hash `go mod download -json \
                 MODULE@VERSION` prints; see the manifest reference for tags, ldflags, x and buildmode"
            }
            DuplicateGoModule(_) => "give each [[go_module]] its own name",
            UnknownGoModule { .. } => {
                "name a [[go_module]] of this manifest in [artifact.go] module"
            }
            GoArtifact { .. } => {
                "a Go artifact has [artifact.go] module + package with install.file, or module + packages with \
                 install.dir, and no url, sha256, sha512 or checksum_url"
            }
        }
    }
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}\n  hint: {}",
            self.file.display(),
            self.line,
            self.column,
            self.kind.message(),
            self.kind.hint()
        )
    }
}

impl std::error::Error for ManifestError {}

/// Turns byte offsets into 1-based line and column numbers.
struct SourceMap<'a> {
    file: &'a Path,
    text: &'a str,
}

impl SourceMap<'_> {
    fn error(&self, span: Range<usize>, kind: ManifestErrorKind) -> ManifestError {
        let (line, column) = line_column(self.text, span.start);
        ManifestError {
            file: self.file.to_path_buf(),
            line,
            column,
            kind,
        }
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

impl Manifest {
    /// Reads and checks the manifest at `path`.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|e| ManifestError {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            kind: ManifestErrorKind::Unreadable(e.to_string()),
        })?;
        Manifest::parse(path, &text)
    }

    /// Checks manifest `text` that was read from `path` (used to name the file in errors and to resolve a
    /// relative `base_url`).
    pub fn parse(path: &Path, text: &str) -> Result<Manifest, ManifestError> {
        let map = SourceMap { file: path, text };
        let raw: RawManifest = toml::from_str(text).map_err(|e| {
            map.error(
                e.span().unwrap_or(0..0),
                ManifestErrorKind::Toml(e.message().to_string()),
            )
        })?;

        let schema = *raw.schema_version.get_ref();
        if schema != i64::from(SCHEMA_VERSION) {
            return Err(map.error(
                raw.schema_version.span(),
                ManifestErrorKind::UnsupportedSchema(schema),
            ));
        }
        let name = raw.name.get_ref().clone();
        if !is_simple_name(&name, true) {
            return Err(map.error(raw.name.span(), ManifestErrorKind::BadName(name)));
        }
        let kubernetes_version = check_kubernetes_version(&map, &raw.kubernetes_version)?;
        let arch = match raw.arch.get_ref().as_str() {
            "amd64" => Arch::Amd64,
            "arm64" => Arch::Arm64,
            other => {
                return Err(map.error(
                    raw.arch.span(),
                    ManifestErrorKind::UnsupportedArch(other.to_string()),
                ));
            }
        };
        let source_date_epoch = match &raw.source_date_epoch {
            None => None,
            Some(v) => Some(u64::try_from(*v.get_ref()).map_err(|_| {
                map.error(
                    v.span(),
                    ManifestErrorKind::BadSourceDateEpoch(*v.get_ref()),
                )
            })?),
        };
        let base_url = match &raw.base_url {
            None => None,
            Some(b) => Some(resolve_base_url(path, b.get_ref()).map_err(|reason| {
                map.error(
                    b.span(),
                    ManifestErrorKind::BadUrl {
                        url: b.get_ref().clone(),
                        reason,
                    },
                )
            })?),
        };
        // A relative base_url, kept as written (with a trailing '/') for source labels.
        let relative_base = raw
            .base_url
            .as_ref()
            .map(|b| b.get_ref())
            .filter(|b| Url::parse(b).is_err())
            .map(|b| {
                if b.ends_with('/') {
                    b.clone()
                } else {
                    format!("{b}/")
                }
            });
        let mut host_packages = Vec::new();
        for p in raw.host.iter().flat_map(|h| h.packages.iter()) {
            if !is_debian_package_name(p.get_ref()) {
                return Err(map.error(
                    p.span(),
                    ManifestErrorKind::BadHostPackage(p.get_ref().clone()),
                ));
            }
            host_packages.push(p.get_ref().clone());
        }

        let toolchain = match &raw.go {
            None => None,
            Some(go) => {
                let t = &go.get_ref().toolchain;
                gomod::check_toolchain(t.get_ref()).map_err(|reason| {
                    map.error(
                        t.span(),
                        ManifestErrorKind::BadGoToolchain {
                            toolchain: t.get_ref().clone(),
                            reason,
                        },
                    )
                })?;
                Some(t.get_ref().clone())
            }
        };
        let mut go_modules = BTreeMap::new();
        for m in &raw.go_modules {
            let module = check_go_module(&map, m)?;
            if go_modules.contains_key(&module.name) {
                return Err(map.error(
                    m.get_ref().name.span(),
                    ManifestErrorKind::DuplicateGoModule(module.name),
                ));
            }
            go_modules.insert(module.name.clone(), module);
        }
        let go = GoContext {
            toolchain,
            modules: go_modules,
        };

        let mut artifacts = Vec::new();
        let mut names = BTreeSet::new();
        let mut installed: BTreeMap<String, String> = BTreeMap::new();
        for raw_artifact in &raw.artifacts {
            let artifact = check_artifact(
                &map,
                raw_artifact,
                base_url.as_ref(),
                relative_base.as_deref(),
                &go,
            )?;
            if !names.insert(artifact.name.clone()) {
                return Err(map.error(
                    raw_artifact.get_ref().name.span(),
                    ManifestErrorKind::DuplicateArtifact(artifact.name.clone()),
                ));
            }
            let install_span = raw_artifact.get_ref().install.span();
            let builder_chosen = matches!(artifact.install, Install::Image { .. });
            for target in artifact.install.target_paths() {
                if !builder_chosen
                    && RESERVED_PATHS
                        .iter()
                        .any(|r| target == *r || target.starts_with(&format!("{r}/")))
                {
                    return Err(map.error(
                        install_span.clone(),
                        ManifestErrorKind::ReservedPath(target),
                    ));
                }
                if let Some(first) = installed.get(&target) {
                    return Err(map.error(
                        install_span.clone(),
                        ManifestErrorKind::PathCollision {
                            path: target,
                            first: first.clone(),
                        },
                    ));
                }
                installed.insert(target, artifact.name.clone());
            }
            artifacts.push(artifact);
        }

        Ok(Manifest {
            path: path.to_path_buf(),
            text: text.to_string(),
            name,
            kubernetes_version,
            arch,
            source_date_epoch,
            host_packages,
            artifacts,
        })
    }
}
