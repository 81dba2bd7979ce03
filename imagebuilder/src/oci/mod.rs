//! Container image archives: the images baked into the node image (under /usr/share/k8s-image/images/, imported at
//! boot with `ctr -n k8s.io images import`), verified before they are used and, for the images this workspace
//! builds itself, written deterministically.
//!
//! - [`verify_image_archive`] ([`verify`]) reads an OCI image layout in a tar (`oci-layout`, `index.json`,
//!   `blobs/sha256/…`, plain or gzip-compressed) as `skopeo copy … oci-archive:`, crane, regctl, buildah and
//!   `docker save` ≥ 25 write it, streams every blob once through sha256 (never holding a layer in memory), and
//!   checks everything reachable from the one image in `index.json` against its descriptor and against the digest
//!   the caller pinned. A plain docker-archive (`manifest.json` only) has no registry manifest digest and is refused
//!   with the command that converts it.
//! - [`write_oci_archive`] ([`write`]) makes a one-layer image from files in memory: the same spec gives the same
//!   bytes, hence the same manifest digest, on any machine.
//!
//! Every error names the archive and the member (`blobs/sha256/ab12…`) it is about and says what to do; the enum is
//! `PartialEq` so tests assert the exact error.

use std::path::PathBuf;

mod json;
pub mod verify;
pub mod write;

pub use verify::verify_image_archive;
pub use write::{
    ImageFile, OciImageSpec, files_from_directory, parse_file_arg, parse_symlink_arg,
    write_oci_archive, write_oci_archive_file,
};

/// Largest JSON document read (`oci-layout`, `index.json`, a manifest, an index, a config): 4 MiB, the limit
/// registries put on manifests; real ones are a few KiB.
pub const MAX_DOCUMENT_BYTES: u64 = 4 << 20;
/// Most members an archive may have (a real image has a few dozen).
pub const MAX_MEMBERS: usize = 100_000;
/// How deep image indexes may nest (index → index → manifest).
pub const MAX_INDEX_DEPTH: usize = 2;

/// Media types this module reads and writes.
pub mod media_type {
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

    pub const INDEXES: &[&str] = &[OCI_INDEX, DOCKER_LIST];
    pub const MANIFESTS: &[&str] = &[OCI_MANIFEST, DOCKER_MANIFEST];
    pub const CONFIGS: &[&str] = &[OCI_CONFIG, DOCKER_CONFIG];
    pub const LAYERS: &[&str] = &[
        OCI_LAYER_TAR,
        OCI_LAYER_GZIP,
        OCI_LAYER_ZSTD,
        DOCKER_LAYER_GZIP,
    ];
}

/// Annotation containerd names an imported image by (the full reference).
pub const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";
/// OCI's reference annotation (skopeo and `ctr export` put the tag here).
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// What [`verify_image_archive`] checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedImage {
    /// `sha256:<hex>` of the descriptor in `index.json` (a manifest or an image index): what `ctr images ls` shows
    /// as DIGEST after import, and what registries show.
    pub manifest_digest: String,
    /// Media type of that descriptor.
    pub media_type: String,
    /// `io.containerd.image.name` and `org.opencontainers.image.ref.name` of that descriptor, in that order.
    pub ref_names: Vec<String>,
    /// `os/architecture[/variant]` the archive offers: every platform of an image index (attestations left out), or
    /// the config's for a single manifest.
    pub platforms: Vec<String>,
    /// The image manifest verified for the wanted platform: `manifest_digest` itself, or the one picked from the index.
    pub platform_manifest_digest: String,
    pub config_digest: String,
    /// `(digest, size)` of each layer, base first.
    pub layers: Vec<(String, u64)>,
    /// Bytes of every verified blob (index, manifest, config, layers), each counted once.
    pub total_blob_bytes: u64,
    /// Members under `blobs/` nothing verified refers to (allowed; other platforms' blobs, for example).
    pub unreferenced_blobs: Vec<String>,
}

/// Everything that makes an image archive unusable, or an image spec unwritable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageArchiveError {
    #[error("{}: cannot read: {reason}\n  hint: check the path and its permissions", .archive.display())]
    Open { archive: PathBuf, reason: String },
    #[error(
        "{}: not an image archive: {reason}\n  hint: expected a tar (plain or gzip-compressed) as written by `skopeo copy docker://REF@DIGEST oci-archive:FILE`",
        .archive.display()
    )]
    NotTar { archive: PathBuf, reason: String },
    #[error(
        "{}: {member}: the archive cannot be read: {reason}\n  hint: the file is truncated or corrupt; copy it again",
        .archive.display()
    )]
    Corrupt {
        archive: PathBuf,
        member: String,
        reason: String,
    },
    #[error(
        "{}: member {member:?} {reason}\n  hint: an image archive only holds relative paths inside it; this one was not written by an image tool, do not use it",
        .archive.display()
    )]
    UnsafeMemberName {
        archive: PathBuf,
        member: String,
        reason: String,
    },
    #[error(
        "{}: {member} appears twice in the archive\n  hint: a reader would take either copy; rewrite the archive with `skopeo copy oci-archive:FILE oci-archive:NEW`",
        .archive.display()
    )]
    DuplicateMember { archive: PathBuf, member: String },
    #[error(
        "{}: {member} is a {kind}, not a regular file\n  hint: blobs and layout files must be regular files; links there could point anywhere. Rewrite the archive with `skopeo copy oci-archive:FILE oci-archive:NEW`",
        .archive.display()
    )]
    NotRegularFile {
        archive: PathBuf,
        member: String,
        kind: String,
    },
    #[error(
        "{}: {member} is a {kind}\n  hint: an image archive holds only files, directories and links",
        .archive.display()
    )]
    UnsupportedMember {
        archive: PathBuf,
        member: String,
        kind: String,
    },
    #[error(
        "{}: more than {limit} members\n  hint: this is not an image archive of a sane size",
        .archive.display()
    )]
    TooManyMembers { archive: PathBuf, limit: usize },
    #[error(
        "{}: manifest.json: this is a docker-archive without index.json, which records no registry manifest digest to check against\n  hint: save the image as an OCI archive instead: `skopeo copy docker://REF@DIGEST oci-archive:OUT` (best: straight from the registry, whose digest you pin), or convert this one with `skopeo copy docker-archive:IN oci-archive:OUT` and pin the digest of the result",
        .archive.display()
    )]
    DockerArchive { archive: PathBuf },
    #[error(
        "{}: index.json: no such member (nor manifest.json): not an OCI image layout\n  hint: write it with `skopeo copy docker://REF@DIGEST oci-archive:FILE`",
        .archive.display()
    )]
    NotAnImageArchive { archive: PathBuf },
    #[error(
        "{}: {member}: no such member\n  hint: an OCI image layout has oci-layout, index.json and blobs/; write it with `skopeo copy docker://REF@DIGEST oci-archive:FILE`",
        .archive.display()
    )]
    MissingMember { archive: PathBuf, member: String },
    #[error(
        "{}: oci-layout: imageLayoutVersion is {found:?}, not \"1.0.0\"\n  hint: rewrite it with `skopeo copy oci-archive:FILE oci-archive:NEW`",
        .archive.display()
    )]
    LayoutVersion { archive: PathBuf, found: String },
    #[error(
        "{}: {member}: {size} bytes, more than the {limit} a JSON document may have\n  hint: this is not an image document of a sane size",
        .archive.display()
    )]
    DocumentTooLarge {
        archive: PathBuf,
        member: String,
        size: u64,
        limit: u64,
    },
    #[error(
        "{}: {member}: {reason}\n  hint: the document does not follow the OCI image spec; rewrite the archive with `skopeo copy oci-archive:FILE oci-archive:NEW`",
        .archive.display()
    )]
    BadDocument {
        archive: PathBuf,
        member: String,
        reason: String,
    },
    #[error(
        "{}: index.json: {count} top-level manifests, expected exactly one\n  hint: an archive must hold one image (one tag or digest): save each image to its own archive",
        .archive.display()
    )]
    ManifestCount { archive: PathBuf, count: usize },
    #[error(
        "{}: {member}: digest {digest:?} {reason}\n  hint: only sha256:<64 lower-case hex> digests are supported",
        .archive.display()
    )]
    BadDigest {
        archive: PathBuf,
        member: String,
        digest: String,
        reason: String,
    },
    #[error(
        "{}: {member}: missing (referenced by {referenced_by})\n  hint: the archive is incomplete; copy the image again with `skopeo copy docker://REF@DIGEST oci-archive:FILE`",
        .archive.display()
    )]
    MissingBlob {
        archive: PathBuf,
        member: String,
        referenced_by: String,
    },
    #[error(
        "{}: {member}: {actual} bytes, but {referenced_by} says {expected}\n  hint: the blob is truncated or replaced; copy the image again",
        .archive.display()
    )]
    SizeMismatch {
        archive: PathBuf,
        member: String,
        referenced_by: String,
        expected: u64,
        actual: u64,
    },
    #[error(
        "{}: {member}: content has sha256:{actual}, not the digest in its name\n  hint: the blob is corrupt; copy the image again",
        .archive.display()
    )]
    DigestMismatch {
        archive: PathBuf,
        member: String,
        actual: String,
    },
    #[error(
        "{}: {member}: {role} media type {media_type:?} is not one this builder knows\n  hint: only container images (OCI or Docker v2 schema 2 manifests, indexes, configs and tar/gzip/zstd layers) can be imported",
        .archive.display()
    )]
    UnknownMediaType {
        archive: PathBuf,
        member: String,
        role: String,
        media_type: String,
    },
    #[error(
        "{}: {member}: the document says mediaType {document:?}, its descriptor {descriptor:?}\n  hint: the archive is inconsistent; copy the image again",
        .archive.display()
    )]
    MediaTypeMismatch {
        archive: PathBuf,
        member: String,
        descriptor: String,
        document: String,
    },
    #[error(
        "{}: index.json: the image is {actual}, not the pinned {expected}\n  hint: the archive holds another image than the manifest pins; if it was updated on purpose, pin the new one: sha256:<the hex `skopeo inspect --raw oci-archive:FILE | sha256sum` prints>",
        .archive.display()
    )]
    WrongManifestDigest {
        archive: PathBuf,
        expected: String,
        actual: String,
    },
    #[error(
        "pinned image digest {given:?} is not sha256:<64 lower-case hex>\n  hint: pin the manifest digest as registries show it, e.g. sha256:9fc4…"
    )]
    BadExpectedDigest { given: String },
    #[error("architecture {given:?} is not amd64 or arm64\n  hint: use the node image's arch")]
    UnsupportedArch { given: String },
    #[error(
        "{}: {member}: no linux/{want} image in this index (it has: {})\n  hint: copy the image with the platform you need: `skopeo copy --override-arch {want} docker://REF@DIGEST oci-archive:FILE` or `--all`",
        .archive.display(),
        if .available.is_empty() { "none".to_string() } else { .available.join(", ") }
    )]
    NoPlatformManifest {
        archive: PathBuf,
        member: String,
        want: String,
        available: Vec<String>,
    },
    #[error(
        "{}: {member}: the image is for {found}, not linux/{want}\n  hint: pin the digest of the linux/{want} image (or of the multi-arch index)",
        .archive.display()
    )]
    PlatformMismatch {
        archive: PathBuf,
        member: String,
        want: String,
        found: String,
    },
    #[error(
        "{}: {member}: rootfs.diff_ids has {diff_ids} entries for {layers} layers\n  hint: the image is malformed; containerd would refuse to unpack it",
        .archive.display()
    )]
    LayerCountMismatch {
        archive: PathBuf,
        member: String,
        layers: usize,
        diff_ids: usize,
    },
    #[error(
        "{}: {member}: image indexes nest more than {MAX_INDEX_DEPTH} deep\n  hint: this is not an image archive a registry would serve",
        .archive.display()
    )]
    NestingTooDeep { archive: PathBuf, member: String },
    #[error("image spec: {reason}\n  hint: {hint}")]
    InvalidSpec { reason: String, hint: String },
    #[error("{}: {reason}\n  hint: check that the file exists and is readable", .source_path.display())]
    Source {
        source_path: PathBuf,
        reason: String,
    },
    #[error(
        "--file {arg:?}: {reason}\n  hint: write it as SRC:DEST:MODE, e.g. target/pause:/pause:0755"
    )]
    BadFileArg { arg: String, reason: String },
    #[error(
        "{}: {member}: cannot write: {reason}\n  hint: check free space and permissions of the output",
        .archive.display()
    )]
    Write {
        /// The output file, or `-` for a stream.
        archive: PathBuf,
        member: String,
        reason: String,
    },
}
