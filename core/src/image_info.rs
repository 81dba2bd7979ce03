//! What an image says about itself: the resolved lock and the build info that `imagebuilder` writes under
//! `/usr/share/k8s-image/` inside the layer, and that `k8s-agent check` / `status` read back.
//!
//! This module owns the file names and the serialised shapes; it does no I/O beyond [`ImageLock::read`].

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Directory inside the image (relative to its root) that holds the image's own description.
pub const IMAGE_INFO_DIR: &str = "usr/share/k8s-image";
/// The resolved lock: every artifact with the checksum actually used and every file it installed.
pub const LOCK_FILE: &str = "lock.json";
/// The SPDX 2.3 JSON software bill of materials.
pub const SBOM_FILE: &str = "sbom.spdx.json";
/// The manifest the image was built from, byte for byte.
pub const MANIFEST_FILE: &str = "manifest.toml";

/// Current version of the lock's own format: 2 added the `go` record of programs built from Go modules.
pub const LOCK_SCHEMA_VERSION: u32 = 2;
/// The lock formats this build reads (a version 1 lock is a version 2 lock without `go` records).
pub const LOCK_VERSIONS_READ: std::ops::RangeInclusive<u32> = 1..=LOCK_SCHEMA_VERSION;

/// The resolved lock of one image build (`/usr/share/k8s-image/lock.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageLock {
    /// Format version of this file ([`LOCK_SCHEMA_VERSION`]).
    pub lock_version: u32,
    /// `name` from the manifest.
    pub image_name: String,
    /// Kubernetes version the image is for, e.g. `1.35.0`.
    pub kubernetes_version: String,
    /// Target architecture, e.g. `amd64`.
    pub arch: String,
    /// The fixed mtime of every entry of the layer (seconds since the epoch).
    pub source_date_epoch: u64,
    /// Packages the base image must provide (installed by the pipeline, not by the layer).
    pub host_packages: Vec<String>,
    /// Every artifact, in manifest order.
    pub artifacts: Vec<LockedArtifact>,
}

/// One artifact as it went into the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedArtifact {
    pub name: String,
    pub version: String,
    /// Where the bytes came from (a URL, or `workspace:` for things this project builds).
    pub url: String,
    /// Checksum of the downloaded artifact, `sha256:<hex>` or `sha512:<hex>`.
    pub checksum: String,
    /// Where the checksum came from: `manifest` or the URL of the published checksum file.
    pub checksum_source: String,
    /// A stand-in program built by this project in place of the real upstream binary (demo images only).
    #[serde(default)]
    pub standin: bool,
    /// Every file this artifact installed, sorted by path.
    pub files: Vec<InstalledFile>,
    /// A container image archive: what it is and where it is baked (absent for other artifacts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<LockedImage>,
    /// A program built from a Go module: how, from what and with what (absent for downloaded artifacts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub go: Option<LockedGoBuild>,
}

/// How a program was built from its Go module: enough to build it again and get the same bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedGoBuild {
    /// Module path, e.g. `k8s.io/kubernetes`.
    pub module: String,
    /// Module version, e.g. `v1.37.2`.
    pub version: String,
    /// The module's go.sum hash (`h1:`), as pinned in the manifest and reported by `go mod download`.
    pub sum: String,
    /// Packages built, relative to the module (`.` is its root).
    pub packages: Vec<String>,
    /// The published version that replaced the module's in-repository `replace` targets, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_local: Option<String>,
    /// The Go toolchain, e.g. `go1.26.8`.
    pub go_version: String,
    /// `linux/<arch>`.
    pub target: String,
    pub cgo_enabled: bool,
    /// The `go build` flags (`-trimpath`, `-buildvcs=false`, `-tags=…`, `-ldflags=…`).
    pub flags: Vec<String>,
    /// With cgo: the C compiler (`gcc (Debian 12.2.0-14+deb12u1) 12.2.0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cc: Option<String>,
    /// Every module linked into the programs, with its go.sum hash, as the binaries' build info records them.
    pub deps: Vec<LockedGoModule>,
}

/// One Go module linked into a built program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedGoModule {
    pub path: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sum: Option<String>,
    /// `path version` of the module that replaced it (a `replace` directive), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<String>,
}

/// The package URL of a Go module (purl spec, type `golang`): `pkg:golang/k8s.io/kubernetes@v1.37.2`, with the
/// package as subpath (`#cmd/kubelet`) when given.
pub fn golang_purl(module: &str, version: &str, package: Option<&str>) -> String {
    let mut purl = format!("pkg:golang/{module}@{version}");
    if let Some(p) = package.filter(|p| *p != ".") {
        purl.push('#');
        purl.push_str(p);
    }
    purl
}

/// A container image baked into the image (`/usr/share/k8s-image/images/<name>.tar`), imported at boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedImage {
    /// The reference containerd names it by, e.g. `registry.k8s.io/pause:3.10.1`.
    pub reference: String,
    /// The digest of its manifest (or index), `sha256:<hex>`, verified against the archive at build time; what
    /// `ctr -n k8s.io images ls` must show after the import.
    pub manifest_digest: String,
    /// Where the archive is on the node.
    pub archive: String,
    /// Platforms the archive holds, e.g. `linux/amd64`.
    pub platforms: Vec<String>,
}

/// One file installed into the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstalledFile {
    /// Absolute path on the node, e.g. `/usr/bin/kubelet`.
    pub path: String,
    /// Permission bits, e.g. `0o755` stored as 493.
    pub mode: u32,
    /// Lower-case hex sha256 of the file's content.
    pub sha256: String,
}

impl InstalledFile {
    /// True when any execute bit is set.
    pub fn is_executable(&self) -> bool {
        self.mode & 0o111 != 0
    }
}

impl ImageLock {
    /// The container images baked into the image, in manifest order.
    pub fn images(&self) -> Vec<(&LockedArtifact, &LockedImage)> {
        self.artifacts
            .iter()
            .filter_map(|a| a.image.as_ref().map(|i| (a, i)))
            .collect()
    }

    /// The reference of the image the artifact `name` bakes, if the lock has one.
    pub fn image_reference(&self, name: &str) -> Option<String> {
        self.images()
            .into_iter()
            .find(|(a, _)| a.name == name)
            .map(|(_, i)| i.reference.clone())
    }

    /// Path of the lock inside a tree rooted at `root`.
    pub fn path_under(root: &Path) -> PathBuf {
        root.join(IMAGE_INFO_DIR).join(LOCK_FILE)
    }

    /// Artifacts that are stand-ins, by name.
    pub fn standins(&self) -> Vec<&str> {
        self.artifacts
            .iter()
            .filter(|a| a.standin)
            .map(|a| a.name.as_str())
            .collect()
    }

    /// Reads and parses the lock under `root`.
    pub fn read(root: &Path) -> Result<Self, ImageInfoError> {
        let path = Self::path_under(root);
        let text = std::fs::read_to_string(&path).map_err(|source| ImageInfoError::Read {
            path: path.clone(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| ImageInfoError::Parse { path, source })
    }
}

/// Reading the image's description failed.
#[derive(Debug, thiserror::Error)]
pub enum ImageInfoError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid image lock: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// Minimal view of the SPDX 2.3 JSON document this project writes: only what the checks compare.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpdxDocument {
    pub spdx_version: String,
    #[serde(rename = "SPDXID")]
    pub spdx_id: String,
    pub name: String,
    pub data_license: String,
    pub document_namespace: String,
    pub creation_info: SpdxCreationInfo,
    pub packages: Vec<SpdxPackage>,
    #[serde(default)]
    pub files: Vec<SpdxFile>,
    #[serde(default)]
    pub relationships: Vec<SpdxRelationship>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpdxCreationInfo {
    pub created: String,
    pub creators: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpdxPackage {
    #[serde(rename = "SPDXID")]
    pub spdx_id: String,
    pub name: String,
    pub version_info: String,
    pub download_location: String,
    pub files_analyzed: bool,
    #[serde(default)]
    pub checksums: Vec<SpdxChecksum>,
    pub license_concluded: String,
    pub license_declared: String,
    pub copyright_text: String,
    pub supplier: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Container images: their `purl` (`pkg:oci/...`), reference and manifest digest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external_refs: Vec<SpdxExternalRef>,
}

/// An SPDX 2.3 external reference (`referenceCategory` / `referenceType` / `referenceLocator`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpdxExternalRef {
    pub reference_category: String,
    pub reference_type: String,
    pub reference_locator: String,
}

/// The package URL of a container image (purl spec, type `oci`): `pkg:oci/<last path component>@<digest>` with
/// `repository_url` and `tag` qualifiers, e.g. `pkg:oci/pause@sha256%3Aab…?repository_url=registry.k8s.io/pause&tag=3.10.1`.
pub fn oci_purl(reference: &str, manifest_digest: &str) -> String {
    let (repository, tag) = match reference.split_once('@') {
        Some((name, _)) => (name, None),
        None => match reference.rsplit_once(':') {
            Some((name, tag)) if !tag.contains('/') => (name, Some(tag)),
            _ => (reference, None),
        },
    };
    let name = repository.rsplit('/').next().unwrap_or(repository);
    let mut purl = format!(
        "pkg:oci/{name}@{}?repository_url={repository}",
        manifest_digest.replace(':', "%3A")
    );
    if let Some(tag) = tag {
        purl.push_str(&format!("&tag={tag}"));
    }
    purl
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpdxFile {
    #[serde(rename = "SPDXID")]
    pub spdx_id: String,
    /// `./usr/bin/kubelet` style, as SPDX asks for.
    pub file_name: String,
    pub checksums: Vec<SpdxChecksum>,
    pub license_concluded: String,
    pub copyright_text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpdxChecksum {
    /// `SHA256` or `SHA512`.
    pub algorithm: String,
    pub checksum_value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpdxRelationship {
    pub spdx_element_id: String,
    pub relationship_type: String,
    pub related_spdx_element: String,
}

impl SpdxDocument {
    /// Path of the SBOM inside a tree rooted at `root`.
    pub fn path_under(root: &Path) -> PathBuf {
        root.join(IMAGE_INFO_DIR).join(SBOM_FILE)
    }

    /// The sha256 the SBOM records for a file, if any.
    pub fn file_sha256(file: &SpdxFile) -> Option<&str> {
        file.checksums
            .iter()
            .find(|c| c.algorithm == "SHA256")
            .map(|c| c.checksum_value.as_str())
    }
}
