//! The image manifest: a versioned TOML file that says what goes into the image.
//!
//! Parsing happens in two steps, kept apart on purpose: serde reads the text into `Raw*` types that reject unknown
//! keys and keep the source span of every value, then [`Manifest::parse`] checks every value and builds the checked
//! [`Manifest`]. Every error is a [`ManifestError`] with the file, line and column it is about and a hint, so the
//! tests can assert exactly which error a bad manifest gives.

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    schema_version: Spanned<i64>,
    name: Spanned<String>,
    kubernetes_version: Spanned<String>,
    arch: Spanned<String>,
    #[serde(default)]
    source_date_epoch: Option<Spanned<i64>>,
    #[serde(default)]
    base_url: Option<Spanned<String>>,
    #[serde(default)]
    host: Option<RawHost>,
    /// The Go toolchain that builds every `[artifact.go]` (required when there is one).
    #[serde(default)]
    go: Option<Spanned<RawGo>>,
    #[serde(default, rename = "go_module")]
    go_modules: Vec<Spanned<RawGoModule>>,
    #[serde(default, rename = "artifact")]
    artifacts: Vec<Spanned<RawArtifact>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGo {
    toolchain: Spanned<String>,
}

/// `[[go_module]]`: a Go module programs are built from, with the settings they share.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGoModule {
    name: Spanned<String>,
    path: Spanned<String>,
    version: Spanned<String>,
    sum: Spanned<String>,
    #[serde(default)]
    replace_local: Option<Spanned<String>>,
    #[serde(default)]
    cgo: Option<Spanned<bool>>,
    #[serde(default)]
    tags: Vec<Spanned<String>>,
    #[serde(default)]
    ldflags: Vec<Spanned<String>>,
    #[serde(default)]
    x: Option<Spanned<BTreeMap<String, String>>>,
    #[serde(default)]
    buildmode: Option<Spanned<String>>,
}

/// `[artifact.go]`: build this artifact from packages of a `[[go_module]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArtifactGo {
    module: Spanned<String>,
    #[serde(default)]
    package: Option<Spanned<String>>,
    #[serde(default)]
    packages: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    cgo: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    #[serde(default)]
    packages: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArtifact {
    name: Spanned<String>,
    version: Spanned<String>,
    /// Where the bytes are; optional only for an image pulled from its registry by digest.
    #[serde(default)]
    url: Option<Spanned<String>>,
    #[serde(default)]
    sha256: Option<Spanned<String>>,
    #[serde(default)]
    sha512: Option<Spanned<String>>,
    #[serde(default)]
    checksum_url: Option<Spanned<String>>,
    #[serde(default)]
    standin: bool,
    /// Built from a Go module instead of downloaded.
    #[serde(default)]
    go: Option<Spanned<RawArtifactGo>>,
    install: Spanned<RawInstall>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInstall {
    #[serde(default)]
    file: Option<Spanned<String>>,
    #[serde(default)]
    dir: Option<Spanned<String>>,
    #[serde(default)]
    members: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    mode: Option<Spanned<String>>,
    #[serde(default)]
    replace_content: Option<Spanned<bool>>,
    /// A container image archive: its reference (`registry.k8s.io/pause:3.10.1`).
    #[serde(default)]
    image: Option<Spanned<String>>,
    /// With `image`: the image's manifest digest (`sha256:<hex>`), checked against the archive at build time.
    #[serde(default)]
    manifest_digest: Option<Spanned<String>>,
}

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

fn check_kubernetes_version(
    map: &SourceMap<'_>,
    v: &Spanned<String>,
) -> Result<String, ManifestError> {
    let text = v.get_ref();
    let bad = || {
        map.error(
            v.span(),
            ManifestErrorKind::BadKubernetesVersion(text.clone()),
        )
    };
    let parts: Vec<&str> = text.split('.').collect();
    if parts.len() != 3
        || parts
            .iter()
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(bad());
    }
    let major: u32 = parts[0].parse().map_err(|_| bad())?;
    let minor: u32 = parts[1].parse().map_err(|_| bad())?;
    if major != 1 || minor < MIN_KUBERNETES_MINOR {
        return Err(map.error(v.span(), ManifestErrorKind::KubernetesTooOld(text.clone())));
    }
    Ok(text.clone())
}

/// The manifest's Go settings, for the artifacts that build from a module.
struct GoContext {
    toolchain: Option<String>,
    modules: BTreeMap<String, GoModule>,
}

/// Checks one `[[go_module]]`.
fn check_go_module(
    map: &SourceMap<'_>,
    spanned: &Spanned<RawGoModule>,
) -> Result<GoModule, ManifestError> {
    let raw = spanned.get_ref();
    let name = raw.name.get_ref().clone();
    if !is_simple_name(&name, false) {
        return Err(map.error(raw.name.span(), ManifestErrorKind::BadName(name)));
    }
    let bad = |span: Range<usize>, reason: String| {
        map.error(
            span,
            ManifestErrorKind::BadGoModule {
                module: name.clone(),
                reason,
            },
        )
    };
    let field = |v: &Spanned<String>, what: &str, check: fn(&str) -> Result<(), String>| {
        check(v.get_ref())
            .map(|()| v.get_ref().clone())
            .map_err(|reason| bad(v.span(), format!("{what} {:?}: {reason}", v.get_ref())))
    };
    let path = field(&raw.path, "path", gomod::check_module_path)?;
    let version = field(&raw.version, "version", gomod::check_module_version)?;
    let sum = field(&raw.sum, "sum", gomod::check_h1)?;
    let replace_local = match &raw.replace_local {
        None => None,
        Some(v) => Some(field(v, "replace_local", gomod::check_module_version)?),
    };
    let tags = raw
        .tags
        .iter()
        .map(|t| field(t, "tag", gomod::check_tag))
        .collect::<Result<Vec<_>, _>>()?;
    let ldflags = raw
        .ldflags
        .iter()
        .map(|f| field(f, "ldflags word", gomod::check_ldflag))
        .collect::<Result<Vec<_>, _>>()?;
    let mut x = BTreeMap::new();
    if let Some(table) = &raw.x {
        for (stamp, value) in table.get_ref() {
            gomod::check_stamp(stamp, value).map_err(|reason| bad(table.span(), reason))?;
            x.insert(stamp.clone(), value.clone());
        }
    }
    let buildmode = match &raw.buildmode {
        None => None,
        Some(v) => Some(field(v, "buildmode", gomod::check_buildmode)?),
    };
    Ok(GoModule {
        name: name.clone(),
        path,
        version,
        sum,
        replace_local,
        cgo: raw.cgo.as_ref().is_some_and(|c| *c.get_ref()),
        tags,
        ldflags,
        x,
        buildmode,
    })
}

/// An artifact built from a Go module (`[artifact.go]`).
fn go_artifact(
    map: &SourceMap<'_>,
    spanned: &Spanned<RawArtifact>,
    name: String,
    go_spanned: &Spanned<RawArtifactGo>,
    ctx: &GoContext,
) -> Result<Artifact, ManifestError> {
    let raw = spanned.get_ref();
    let go = go_spanned.get_ref();
    let wrong = |span: Range<usize>, reason: &str| {
        map.error(
            span,
            ManifestErrorKind::GoArtifact {
                artifact: name.clone(),
                reason: reason.to_string(),
            },
        )
    };
    let download = [
        raw.url.as_ref().map(|v| v.span()),
        raw.sha256.as_ref().map(|v| v.span()),
        raw.sha512.as_ref().map(|v| v.span()),
        raw.checksum_url.as_ref().map(|v| v.span()),
    ];
    if let Some(span) = download.into_iter().flatten().next() {
        return Err(wrong(
            span,
            "it is built from a Go module, so it has no url, sha256, sha512 or checksum_url (the module's sum pins it)",
        ));
    }
    let Some(toolchain) = &ctx.toolchain else {
        return Err(map.error(
            go_spanned.span(),
            ManifestErrorKind::NoGoToolchain { artifact: name },
        ));
    };
    let Some(module) = ctx.modules.get(go.module.get_ref()) else {
        return Err(map.error(
            go.module.span(),
            ManifestErrorKind::UnknownGoModule {
                artifact: name,
                module: go.module.get_ref().clone(),
            },
        ));
    };
    let check_package = |p: &Spanned<String>| {
        gomod::check_package(p.get_ref()).map_err(|reason| {
            map.error(
                p.span(),
                ManifestErrorKind::GoArtifact {
                    artifact: name.clone(),
                    reason: format!("package {:?}: {reason}", p.get_ref()),
                },
            )
        })
    };
    let install_raw = raw.install.get_ref();
    let beside = [
        install_raw.members.as_ref().map(|v| ("members", v.span())),
        install_raw
            .replace_content
            .as_ref()
            .map(|v| ("replace_content", v.span())),
    ];
    if let Some((key, span)) = beside.into_iter().flatten().next() {
        return Err(wrong(
            span,
            &format!(
                "install.{key} does not go with a Go build (install.file, install.dir or install.image)"
            ),
        ));
    }
    let mode = match &install_raw.mode {
        None => 0o755,
        Some(m) => parse_mode(m.get_ref())
            .ok_or_else(|| map.error(m.span(), ManifestErrorKind::BadMode(m.get_ref().clone())))?,
    };
    let image = image_pin(map, &name, &raw.install)?;
    let (packages, install) = match (
        &go.package,
        &go.packages,
        &install_raw.file,
        &install_raw.dir,
    ) {
        // One program packed as a container image (`/<name>`, its entrypoint), pinned by the digest its
        // reproducible build gives.
        (Some(p), None, None, None) if image.is_some() => {
            check_package(p)?;
            let (reference, manifest_digest) = image.unwrap_or_default();
            let install = Install::Image {
                reference,
                manifest_digest,
                path: format!("{IMAGES_DIR}/{name}.tar"),
            };
            (vec![p.get_ref().clone()], install)
        }
        (_, _, _, _) if image.is_some() => {
            return Err(wrong(
                raw.install.span(),
                "install.image with [artifact.go] packs one program: give `package`, not `packages`, and no install.file or install.dir",
            ));
        }
        (Some(p), None, Some(file), None) => {
            check_package(p)?;
            let install = Install::File {
                path: check_node_path(map, file)?,
                mode,
                replace_content: false,
            };
            (vec![p.get_ref().clone()], install)
        }
        (None, Some(list), None, Some(dir)) => {
            if list.get_ref().is_empty() {
                return Err(wrong(list.span(), "packages lists no package"));
            }
            let mut packages = Vec::new();
            let mut names = Vec::new();
            for p in list.get_ref() {
                check_package(p)?;
                let binary =
                    gomod::binary_name(p.get_ref()).map_err(|reason| wrong(p.span(), &reason))?;
                if names.iter().any(|n| n == binary) {
                    return Err(wrong(
                        p.span(),
                        &format!("two packages would install the same name {binary:?}"),
                    ));
                }
                names.push(binary.to_string());
                packages.push(p.get_ref().clone());
            }
            let install = Install::Programs {
                dir: check_node_path(map, dir)?,
                names,
                mode,
            };
            (packages, install)
        }
        (Some(_), Some(_), _, _) | (None, None, _, _) => {
            return Err(wrong(
                go_spanned.span(),
                "[artifact.go] needs exactly one of package (with install.file) or packages (with install.dir)",
            ));
        }
        (Some(_), None, _, _) => {
            return Err(wrong(
                raw.install.span(),
                "package (one program) is installed with install.file and nothing else",
            ));
        }
        (None, Some(_), _, _) => {
            return Err(wrong(
                raw.install.span(),
                "packages (programs) are installed with install.dir and nothing else",
            ));
        }
    };
    let build = GoBuild {
        toolchain: toolchain.clone(),
        module: module.clone(),
        packages,
        cgo: go.cgo.as_ref().map_or(module.cgo, |c| *c.get_ref()),
    };
    let label = build.source_label();
    let url = Url::parse(&label).map_err(|e| wrong(go_spanned.span(), &e.to_string()))?;
    Ok(Artifact {
        name,
        version: raw.version.get_ref().clone(),
        url,
        source_label: label,
        checksum_label: "manifest (go_module sum)".to_string(),
        pin: ChecksumPin::GoModule,
        standin: raw.standin,
        install,
        go: Some(build),
    })
}

fn check_artifact(
    map: &SourceMap<'_>,
    spanned: &Spanned<RawArtifact>,
    base_url: Option<&Url>,
    relative_base: Option<&str>,
    go: &GoContext,
) -> Result<Artifact, ManifestError> {
    let raw = spanned.get_ref();
    let name = raw.name.get_ref().clone();
    if !is_simple_name(&name, false) {
        return Err(map.error(raw.name.span(), ManifestErrorKind::BadName(name)));
    }
    if raw.version.get_ref().trim().is_empty() {
        return Err(map.error(
            raw.version.span(),
            ManifestErrorKind::Toml("version must not be empty".to_string()),
        ));
    }
    if let Some(go_spanned) = &raw.go {
        return go_artifact(map, spanned, name, go_spanned, go);
    }
    let Some(raw_url) = &raw.url else {
        return registry_image_artifact(map, spanned, name);
    };
    let url = resolve_url(map, raw_url, base_url)?;
    let source_label = display_label(raw_url.get_ref(), &url, relative_base);

    let pins = [
        raw.sha256.is_some(),
        raw.sha512.is_some(),
        raw.checksum_url.is_some(),
    ];
    let found = pins.iter().filter(|p| **p).count();
    if found != 1 {
        return Err(map.error(
            spanned.span(),
            ManifestErrorKind::ChecksumCount {
                artifact: name,
                found,
            },
        ));
    }
    let pin = if let Some(h) = &raw.sha256 {
        ChecksumPin::Fixed(parse_pinned(map, &name, h, ChecksumAlgo::Sha256)?)
    } else if let Some(h) = &raw.sha512 {
        ChecksumPin::Fixed(parse_pinned(map, &name, h, ChecksumAlgo::Sha512)?)
    } else if let Some(u) = &raw.checksum_url {
        ChecksumPin::Published(resolve_url(map, u, base_url)?)
    } else {
        unreachable!("exactly one pin was counted above")
    };
    let checksum_label = match (&pin, &raw.checksum_url) {
        (ChecksumPin::Published(resolved), Some(u)) => {
            display_label(u.get_ref(), resolved, relative_base)
        }
        _ => "manifest".to_string(),
    };

    let install_raw = raw.install.get_ref();
    let mode = match &install_raw.mode {
        None => 0o755,
        Some(m) => parse_mode(m.get_ref())
            .ok_or_else(|| map.error(m.span(), ManifestErrorKind::BadMode(m.get_ref().clone())))?,
    };
    let image = image_pin(map, &name, &raw.install)?;
    let install = match (image, &install_raw.file, &install_raw.dir) {
        (Some((reference, manifest_digest)), _, _) => Install::Image {
            reference,
            manifest_digest,
            path: format!("{IMAGES_DIR}/{name}.tar"),
        },
        (None, Some(file), None) => {
            if let Some(members) = &install_raw.members {
                return Err(map.error(
                    members.span(),
                    ManifestErrorKind::MembersWithoutDir { artifact: name },
                ));
            }
            Install::File {
                path: check_node_path(map, file)?,
                mode,
                replace_content: install_raw
                    .replace_content
                    .as_ref()
                    .is_some_and(|r| *r.get_ref()),
            }
        }
        (None, None, Some(dir)) => {
            if let Some(r) = &install_raw.replace_content {
                return Err(map.error(
                    r.span(),
                    ManifestErrorKind::ReplaceWithoutFile { artifact: name },
                ));
            }
            let dir_path = check_node_path(map, dir)?;
            let format = archive_format(url.path()).ok_or_else(|| {
                map.error(
                    raw_url.span(),
                    ManifestErrorKind::UnknownArchiveFormat {
                        artifact: name.clone(),
                        url: url.to_string(),
                    },
                )
            })?;
            let Some(members_raw) = &install_raw.members else {
                return Err(map.error(
                    raw.install.span(),
                    ManifestErrorKind::NoMembers { artifact: name },
                ));
            };
            if members_raw.get_ref().is_empty() {
                return Err(map.error(
                    members_raw.span(),
                    ManifestErrorKind::NoMembers { artifact: name },
                ));
            }
            let mut members = Vec::new();
            let mut basenames = BTreeSet::new();
            for m in members_raw.get_ref() {
                let member = m.get_ref();
                let reason = if member.is_empty() || member.ends_with('/') {
                    Some("is not a file name")
                } else if member.starts_with('/') {
                    Some("is absolute")
                } else if member.split('/').any(|c| c == "..") {
                    Some("contains '..'")
                } else if !basenames.insert(member_basename(member).to_string()) {
                    Some("has the same file name as another member of this artifact")
                } else {
                    None
                };
                if let Some(reason) = reason {
                    return Err(map.error(
                        m.span(),
                        ManifestErrorKind::BadMember {
                            member: member.clone(),
                            reason: reason.to_string(),
                        },
                    ));
                }
                members.push(member.clone());
            }
            Install::Archive {
                format,
                dir: dir_path,
                members,
                mode,
            }
        }
        _ => {
            return Err(map.error(
                raw.install.span(),
                ManifestErrorKind::InstallKind { artifact: name },
            ));
        }
    };

    Ok(Artifact {
        name,
        version: raw.version.get_ref().clone(),
        url,
        source_label,
        checksum_label,
        pin,
        standin: raw.standin,
        install,
        go: None,
    })
}

/// An install table's image pin: `None` when it has neither `image` nor `manifest_digest`; the reference and
/// digest when both are there and well-formed and nothing describes a file or archive beside them; otherwise the
/// error, at the key it is about.
fn image_pin(
    map: &SourceMap<'_>,
    name: &str,
    install: &Spanned<RawInstall>,
) -> Result<Option<(String, String)>, ManifestError> {
    let raw = install.get_ref();
    let wrong = |span, reason: String| {
        map.error(
            span,
            ManifestErrorKind::ImageInstall {
                artifact: name.to_string(),
                reason,
            },
        )
    };
    let (reference, digest) = match (&raw.image, &raw.manifest_digest) {
        (None, None) => return Ok(None),
        (None, Some(d)) => {
            return Err(wrong(
                d.span(),
                "manifest_digest only goes with image".into(),
            ));
        }
        (Some(_), None) => {
            return Err(wrong(
                install.span(),
                "an image needs its manifest_digest".into(),
            ));
        }
        (Some(r), Some(d)) => (r, d),
    };
    if let Some((key, span)) = key_beside_image(raw) {
        return Err(wrong(span, format!("`{key}` does not go with `image`")));
    }
    if let Err(reason) = check_image_reference(reference.get_ref()) {
        return Err(map.error(
            reference.span(),
            ManifestErrorKind::BadImageReference {
                reference: reference.get_ref().clone(),
                reason,
            },
        ));
    }
    if !is_sha256_digest(digest.get_ref()) {
        return Err(map.error(
            digest.span(),
            ManifestErrorKind::BadManifestDigest(digest.get_ref().clone()),
        ));
    }
    Ok(Some((
        reference.get_ref().clone(),
        digest.get_ref().clone(),
    )))
}

/// The first install key that does not go with `image` (they describe a file or an archive), and where it is.
fn key_beside_image(install: &RawInstall) -> Option<(&'static str, std::ops::Range<usize>)> {
    [
        install.file.as_ref().map(|v| ("file", v.span())),
        install.dir.as_ref().map(|v| ("dir", v.span())),
        install.members.as_ref().map(|v| ("members", v.span())),
        install.mode.as_ref().map(|v| ("mode", v.span())),
        install
            .replace_content
            .as_ref()
            .map(|v| ("replace_content", v.span())),
    ]
    .into_iter()
    .flatten()
    .next()
}

/// An image artifact without `url`: pulled from the registry its reference names, pinned by `manifest_digest`
/// (and only that: a sha256/sha512/checksum_url would pin an archive that does not exist before the pull).
fn registry_image_artifact(
    map: &SourceMap<'_>,
    spanned: &Spanned<RawArtifact>,
    name: String,
) -> Result<Artifact, ManifestError> {
    let raw = spanned.get_ref();
    let Some((reference, digest)) = image_pin(map, &name, &raw.install)? else {
        return Err(map.error(
            spanned.span(),
            ManifestErrorKind::Toml(format!(
                "artifact {name:?}: missing field `url` (only a container image with install.image and \
                 install.manifest_digest may leave it out, to be pulled from its registry)"
            )),
        ));
    };
    let extra_pin = [
        raw.sha256.as_ref(),
        raw.sha512.as_ref(),
        raw.checksum_url.as_ref(),
    ];
    if let Some(pin) = extra_pin.into_iter().flatten().next() {
        return Err(map.error(
            pin.span(),
            ManifestErrorKind::ImageInstall {
                artifact: name,
                reason: "an image pulled from its registry is pinned by manifest_digest alone (sha256, sha512 and \
                         checksum_url pin a downloaded archive: give its url too)"
                    .to_string(),
            },
        ));
    }
    let label = format!(
        "oci://{}@{digest}",
        reference
            .rsplit_once(':')
            .filter(|(_, t)| !t.contains('/'))
            .map_or(reference.as_str(), |(n, _)| n)
    );
    let url = Url::parse(&format!("oci://{reference}")).map_err(|e| {
        map.error(
            raw.install.span(),
            ManifestErrorKind::BadImageReference {
                reference: reference.clone(),
                reason: e.to_string(),
            },
        )
    })?;
    Ok(Artifact {
        install: Install::Image {
            reference,
            manifest_digest: digest.clone(),
            path: format!("{IMAGES_DIR}/{name}.tar"),
        },
        name,
        version: raw.version.get_ref().clone(),
        url,
        source_label: label,
        checksum_label: format!("registry manifest digest {digest}"),
        pin: ChecksumPin::Registry,
        standin: raw.standin,
        go: None,
    })
}

/// `sha256:` + 64 lower-case hex digits.
pub fn is_sha256_digest(d: &str) -> bool {
    d.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// A full image reference as containerd names an imported image: `host[:port]/path:tag` (a digest form
/// `…@sha256:…` is accepted too). Lower-case repository components, no spaces.
pub fn check_image_reference(reference: &str) -> Result<(), String> {
    let (name, tag) = match reference.split_once('@') {
        Some((name, digest)) => {
            if !is_sha256_digest(digest) {
                return Err("the part after '@' is not a sha256 digest".to_string());
            }
            (name, None)
        }
        None => match reference.rsplit_once(':') {
            Some((name, tag)) if !tag.contains('/') => (name, Some(tag)),
            _ => return Err("it has no tag (':3.10.1') or digest".to_string()),
        },
    };
    let Some((host, path)) = name.split_once('/') else {
        return Err("it has no registry host (e.g. registry.k8s.io/)".to_string());
    };
    if !(host.contains('.') || host.contains(':') || host == "localhost") {
        return Err(format!(
            "{host:?} is not a registry host (containerd needs the full name, e.g. docker.io/{host}/…)"
        ));
    }
    let component_ok = |c: &str| {
        !c.is_empty()
            && c.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
    };
    if !path.split('/').all(component_ok) {
        return Err(
            "repository components are lower-case letters, digits, '.', '_', '-'".to_string(),
        );
    }
    if let Some(tag) = tag
        && (tag.is_empty()
            || tag.len() > 128
            || !tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)))
    {
        return Err("the tag is 1–128 of letters, digits, '.', '_', '-'".to_string());
    }
    Ok(())
}

fn parse_pinned(
    map: &SourceMap<'_>,
    artifact: &str,
    hex: &Spanned<String>,
    algo: ChecksumAlgo,
) -> Result<Checksum, ManifestError> {
    Checksum::from_hex(algo, hex.get_ref()).map_err(|reason| {
        map.error(
            hex.span(),
            ManifestErrorKind::BadChecksum {
                artifact: artifact.to_string(),
                reason,
            },
        )
    })
}

fn resolve_url(
    map: &SourceMap<'_>,
    raw: &Spanned<String>,
    base: Option<&Url>,
) -> Result<Url, ManifestError> {
    let text = raw.get_ref();
    let bad = |reason: String| {
        map.error(
            raw.span(),
            ManifestErrorKind::BadUrl {
                url: text.clone(),
                reason,
            },
        )
    };
    let url = match Url::parse(text) {
        Ok(u) => u,
        Err(url::ParseError::RelativeUrlWithoutBase) => match base {
            Some(b) => b.join(text).map_err(|e| bad(e.to_string()))?,
            None => {
                return Err(bad(
                    "it is relative and the manifest has no base_url".to_string()
                ));
            }
        },
        Err(e) => return Err(bad(e.to_string())),
    };
    match url.scheme() {
        "http" | "https" | "file" => {}
        other => return Err(bad(format!("scheme {other:?} is not http, https or file"))),
    }
    if url.scheme() != "file" && url.host_str().is_none_or(str::is_empty) {
        return Err(bad("it has no host".to_string()));
    }
    Ok(url)
}

/// A relative `base_url` is a directory relative to the manifest file.
fn resolve_base_url(manifest_path: &Path, base: &str) -> Result<Url, String> {
    let mut url = match Url::parse(base) {
        Ok(u) => u,
        Err(url::ParseError::RelativeUrlWithoutBase) => {
            let dir = manifest_path.parent().unwrap_or(Path::new("."));
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            let abs = normalise_lexically(
                &std::path::absolute(dir.join(base)).map_err(|e| e.to_string())?,
            );
            Url::from_directory_path(&abs)
                .map_err(|()| format!("{} is not an absolute directory", abs.display()))?
        }
        Err(e) => return Err(e.to_string()),
    };
    if !url.path().ends_with('/') {
        let p = format!("{}/", url.path());
        url.set_path(&p);
    }
    Ok(url)
}

/// How a URL is recorded: as written when it is relative to a relative `base_url` (so the record does not depend
/// on where the manifest was checked out), else the resolved URL.
fn display_label(as_written: &str, resolved: &Url, relative_base: Option<&str>) -> String {
    match (relative_base, Url::parse(as_written)) {
        (Some(base), Err(url::ParseError::RelativeUrlWithoutBase)) => format!("{base}{as_written}"),
        _ => resolved.to_string(),
    }
}

/// Removes `.` and `..` components without touching the file system.
fn normalise_lexically(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fn check_node_path(map: &SourceMap<'_>, raw: &Spanned<String>) -> Result<String, ManifestError> {
    let p = raw.get_ref();
    let reason = if !p.starts_with('/') {
        Some("is not absolute")
    } else if p == "/" {
        Some("is the root directory")
    } else if p
        .split('/')
        .skip(1)
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        Some("is not normalised (empty, '.' or '..' components, or a trailing '/')")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(map.error(
            raw.span(),
            ManifestErrorKind::BadInstallPath {
                path: p.clone(),
                reason: reason.to_string(),
            },
        )),
        None => Ok(p.clone()),
    }
}

/// Parses an octal permission string like `"0755"`.
pub fn parse_mode(text: &str) -> Option<u32> {
    if text.is_empty() || text.len() > 4 || !text.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    u32::from_str_radix(text, 8).ok()
}

fn archive_format(url_path: &str) -> Option<ArchiveFormat> {
    let lower = url_path.to_ascii_lowercase();
    if lower.ends_with(".tar.gz") || lower.ends_with(".tgz") {
        Some(ArchiveFormat::TarGz)
    } else if lower.ends_with(".tar") {
        Some(ArchiveFormat::Tar)
    } else {
        None
    }
}

fn is_simple_name(name: &str, allow_dot_underscore: bool) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| {
            b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || b == b'-'
                || (allow_dot_underscore && (b == b'.' || b == b'_'))
        })
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
}

fn is_debian_package_name(name: &str) -> bool {
    name.len() >= 2
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.')
        })
}
