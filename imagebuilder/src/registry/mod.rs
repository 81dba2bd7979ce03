//! Pulling one container image, pinned by digest, straight from its registry (the OCI distribution API) into an
//! OCI image layout tar that the node imports with `ctr -n k8s.io images import`.
//!
//! [`pull_to_archive`] GETs `/v2/<repository>/manifests/<digest>` — by digest, never by tag — and checks
//! sha256(body) against the pin before reading it. An index (or Docker manifest list) is narrowed to its
//! `linux/<arch>` manifest, fetched by digest and checked the same way; then the config and every layer are
//! streamed to temporary files next to the output while hashed, and each must match its descriptor's digest and
//! size. Only when every byte is verified is the tar written (see [`layout`]): `index.json` names the pinned
//! digest itself, so containerd lists the image under the upstream digest, and the blobs are the pinned document
//! byte for byte, the chosen platform's manifest, its config and its layers. Docker media types are kept as they
//! are (containerd reads them).
//!
//! The archive holds **one platform** of a multi-platform index: the index still lists the others, whose manifests
//! and layers are absent. `ctr images import` (which imports the host platform by default) accepts it and lists
//! the image under the pinned index digest (checked by hand with containerd 1.6.20);
//! `ctr images import --all-platforms`, or any tool that walks every child of the index, fails on it with a
//! missing-content error. That is the price of not baking other architectures' layers into the node image.
//!
//! Network: anonymous only. A 401 with a `Bearer` challenge gets a token from its realm (service and scope as
//! challenged) and the request is retried with it; a `Basic` challenge is an error (credentials are not
//! supported: public images only). Requests follow redirects (registry.k8s.io sends manifests to Artifact Registry
//! and blobs to S3, Docker Hub blobs to a CDN; the digest checks keep that safe) but `Authorization` goes only to
//! the registry's own origin, and a redirect from https to plain http is refused. Connects and reads time out;
//! transient failures (connect, timeout, broken transfer, 5xx, 429 honouring a short `Retry-After`) are retried up
//! to `attempts` times with doubling delays; a digest or size mismatch, a 404 and any other 4xx are not. Documents
//! are bounded by [`MAX_DOCUMENT_BYTES`], blobs by their descriptor sizes. Tokens are never logged or put into
//! errors.
//!
//! The parts: [`reference`](mod@reference) (image names), [`challenge`] (`WWW-Authenticate`), [`document`] (manifests, indexes,
//! platform choice) and [`layout`] (the tar) are pure; `client` is the only one that does network I/O.

pub mod challenge;
mod client;
pub mod document;
pub mod layout;
pub mod reference;

pub use challenge::{Challenge, parse_www_authenticate};
pub use document::is_sha256_digest;
pub use reference::ImageRef;

use client::Session;
use document::{Descriptor, Document};
use layout::BlobSource;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The largest manifest or index read (real ones are a few KiB).
pub const MAX_DOCUMENT_BYTES: u64 = 4 * 1024 * 1024;
/// Architectures a pull can select.
pub const ARCHES: &[&str] = &["amd64", "arm64"];

/// How a pull talks to the registry.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// No-progress timeout for connects and for each read.
    pub timeout: Duration,
    /// Total attempts per request for transient failures (at least 1).
    pub attempts: u32,
    /// Talk plain http to the registry (and allow http token realms and redirects). Only for tests and explicit
    /// local registries.
    pub plain_http: bool,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            timeout: Duration::from_secs(30),
            attempts: 4,
            plain_http: false,
        }
    }
}

/// What a pull wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledImage {
    /// sha256 of the archive, lower-case hex (no `sha256:` prefix).
    pub archive_sha256: String,
    /// Size of the archive.
    pub bytes: u64,
    /// The pinned digest (`sha256:<hex>`), which the archive's `index.json` names.
    pub manifest_digest: String,
    /// The platforms whose image the archive holds, e.g. `["linux/amd64"]` (one: the chosen one).
    pub platforms: Vec<String>,
}

/// What a registry error is about: the registry's API URL, the repository, and the digest of the object in
/// question (with the pinned digest when the object is one of its parts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// `https://registry.k8s.io` (the API host: `registry-1.docker.io` for docker.io).
    pub registry: String,
    pub repository: String,
    /// What the object is: `manifest`, `manifest for linux/amd64`, `config`, `layer 2 of 5`.
    pub object: String,
    pub digest: String,
    /// The pinned digest the object belongs to.
    pub pin: String,
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "registry {}, repository {}, {} {}",
            self.registry, self.repository, self.object, self.digest
        )?;
        if self.digest != self.pin {
            write!(f, " in image {}", self.pin)?;
        }
        Ok(())
    }
}

/// Why a pull failed. Each names the registry, repository and digest (via [`Subject`]) and says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "image reference {reference:?}: {reason}\n  hint: write the reference as containerd names the image: registry host, repository, tag, e.g. registry.k8s.io/pause:3.10.1 or docker.io/weaveworks/weave-kube:2.8.1"
    )]
    BadReference { reference: String, reason: String },
    #[error(
        "{reference}: {given:?} is not a manifest digest (sha256:<64 lower-case hex>)\n  hint: images are pulled by digest, never by tag (a tag can move): pin the digest of the image's index or manifest, e.g. `skopeo inspect --raw docker://{reference} | sha256sum`"
    )]
    NotPinned { reference: String, given: String },
    #[error("architecture {arch:?} is not one images are pulled for\n  hint: use amd64 or arm64")]
    BadArch { arch: String },
    #[error(
        "{at}: not found (HTTP 404 from {url})\n  hint: the digest is not in this repository: check the pin and the repository name (a digest is the same on a mirror only if the mirror copied it byte for byte)"
    )]
    NotFound { at: Subject, url: String },
    #[error(
        "{at}: digest mismatch: {url} served bytes whose digest is {actual}\n  hint: the registry served other bytes for this digest: the pin is wrong or the registry is not trustworthy"
    )]
    DigestMismatch {
        at: Subject,
        url: String,
        actual: String,
    },
    #[error(
        "{at}: size mismatch: {url} served {served} bytes, the descriptor says {expected}\n  hint: the registry served other bytes for this digest: the pin is wrong or the registry is not trustworthy"
    )]
    SizeMismatch {
        at: Subject,
        url: String,
        expected: u64,
        /// What was served (or announced), e.g. `more than 1234` when the body ran past the descriptor.
        served: String,
    },
    #[error(
        "{at}: {url} is larger than {limit} bytes\n  hint: a manifest or index is a few KiB: the pin is probably the digest of a layer or a config, not of the image's manifest or index"
    )]
    TooLarge {
        at: Subject,
        url: String,
        limit: u64,
    },
    #[error(
        "{at}: {reason}\n  hint: pin the digest of an image index, Docker manifest list, OCI image manifest or Docker manifest v2 (`skopeo inspect --raw docker://… | sha256sum`)"
    )]
    BadDocument { at: Subject, reason: String },
    #[error(
        "{at}: the image has no linux/{arch} manifest; it has: {}\n  hint: this image is not published for linux/{arch}: choose a version (and pin its digest) that is",
        .available.join(", ")
    )]
    NoPlatform {
        at: Subject,
        arch: String,
        available: Vec<String>,
    },
    #[error(
        "{at}: the registry asks for {scheme} credentials\n  hint: credentials are not supported: only public images are pulled, anonymously; use a public registry or mirror, or bake a prepared archive with url = \"file://…\""
    )]
    CredentialsRequired { at: Subject, scheme: String },
    #[error(
        "{at}: access denied: {reason}\n  hint: registries answer 401 both for private repositories and for ones that do not exist: check the repository name; only public images can be pulled"
    )]
    AccessDenied { at: Subject, reason: String },
    #[error(
        "{at}: cannot get an anonymous token from {realm}: {reason}\n  hint: the registry's token service failed or refused; check the repository name, and retry later"
    )]
    Token {
        at: Subject,
        realm: String,
        reason: String,
    },
    #[error("{at}: {url} answered HTTP {status} (tried {attempts} times)\n  hint: {hint}")]
    Status {
        at: Subject,
        url: String,
        status: u16,
        attempts: u32,
        hint: &'static str,
    },
    #[error(
        "{at}: no answer from {url} within {timeout:?} (tried {attempts} times)\n  hint: check the network path to the registry, or raise the timeout"
    )]
    Timeout {
        at: Subject,
        url: String,
        timeout: Duration,
        attempts: u32,
    },
    #[error(
        "{at}: cannot connect to {url}: {reason} (tried {attempts} times)\n  hint: check the registry host name and the network path to it; for an air-gapped build bake a prepared archive with url = \"file://…\""
    )]
    Connect {
        at: Subject,
        url: String,
        reason: String,
        attempts: u32,
    },
    #[error(
        "{at}: the transfer from {url} broke off: {reason} (tried {attempts} times)\n  hint: the registry, its storage or a proxy cut the transfer; retry later"
    )]
    Transfer {
        at: Subject,
        url: String,
        reason: String,
        attempts: u32,
    },
    #[error("{at}: {url} redirects to {location}: {reason}\n  hint: {hint}")]
    Redirect {
        at: Subject,
        url: String,
        location: String,
        reason: String,
        hint: &'static str,
    },
    #[error(
        "{at}: {}: {reason}\n  hint: check free space and permissions of the output directory",
        .path.display()
    )]
    Output {
        at: Subject,
        path: PathBuf,
        reason: String,
    },
}

/// Pulls `reference` pinned by `manifest_digest` for `linux/<arch>` into an OCI image layout tar at `out` (created
/// or truncated; the caller renames it into place). Nothing is written to `out` before every byte is verified.
pub async fn pull_to_archive(
    reference: &ImageRef,
    manifest_digest: &str,
    arch: &str,
    out: &Path,
    opts: &PullOptions,
) -> Result<PulledImage, RegistryError> {
    if !is_sha256_digest(manifest_digest) {
        return Err(RegistryError::NotPinned {
            reference: reference.to_string(),
            given: manifest_digest.to_string(),
        });
    }
    if !ARCHES.contains(&arch) {
        return Err(RegistryError::BadArch {
            arch: arch.to_string(),
        });
    }
    let session = Session::new(reference, manifest_digest, opts)?;
    let top_at = session.subject("manifest", manifest_digest);
    let (top_bytes, top_type) = session
        .fetch_document(manifest_digest, None, &top_at)
        .await?;
    let top = document::parse_document(&top_bytes, top_type.as_deref()).map_err(|reason| {
        RegistryError::BadDocument {
            at: top_at.clone(),
            reason,
        }
    })?;
    let top_media_type = top.media_type().to_string();

    let mut blobs: BTreeMap<String, BlobSource> = BTreeMap::new();
    let (config, layers, chosen_platform) = match top {
        Document::Manifest { config, layers, .. } => (config, layers, None),
        Document::Index { manifests, .. } => {
            let chosen = document::select_platform(&manifests, arch)
                .map_err(|available| RegistryError::NoPlatform {
                    at: top_at.clone(),
                    arch: arch.to_string(),
                    available,
                })?
                .clone();
            let platform = chosen
                .platform
                .as_ref()
                .map(|p| p.to_string())
                .unwrap_or_else(|| format!("linux/{arch}"));
            let at = session.subject(&format!("manifest for {platform}"), &chosen.digest);
            let (bytes, content_type) = session
                .fetch_document(&chosen.digest, Some(chosen.size), &at)
                .await?;
            let hint = chosen.media_type.as_deref().or(content_type.as_deref());
            match document::parse_document(&bytes, hint) {
                Ok(Document::Manifest { config, layers, .. }) => {
                    blobs.insert(chosen.hex().to_string(), BlobSource::Bytes(bytes));
                    (config, layers, Some(platform))
                }
                Ok(Document::Index { .. }) => {
                    return Err(RegistryError::BadDocument {
                        at,
                        reason: "the index names another index for this platform; nested indexes are not supported"
                            .to_string(),
                    });
                }
                Err(reason) => return Err(RegistryError::BadDocument { at, reason }),
            }
        }
    };

    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let work = tempfile::Builder::new()
        .prefix(".registry-pull-")
        .tempdir_in(parent)
        .map_err(|e| RegistryError::Output {
            at: top_at.clone(),
            path: parent.to_path_buf(),
            reason: e.to_string(),
        })?;

    let config_at = session.subject("config", &config.digest);
    let config_path =
        fetch_blob_once(&session, &config, &config_at, work.path(), &mut blobs).await?;
    let platform = match chosen_platform {
        Some(p) => p,
        None => {
            // A single manifest: its platform is the config's, and it must be the one asked for.
            let bytes = read_small(&config_path, config.size, &config_at)?;
            let p =
                document::config_platform(&bytes).map_err(|reason| RegistryError::BadDocument {
                    at: config_at.clone(),
                    reason,
                })?;
            if p.os != "linux" || p.architecture != arch {
                return Err(RegistryError::NoPlatform {
                    at: top_at,
                    arch: arch.to_string(),
                    available: vec![p.to_string()],
                });
            }
            p.to_string()
        }
    };
    let count = layers.len();
    for (i, layer) in layers.iter().enumerate() {
        let at = session.subject(&format!("layer {} of {count}", i + 1), &layer.digest);
        fetch_blob_once(&session, layer, &at, work.path(), &mut blobs).await?;
    }
    let top_size = top_bytes.len() as u64;
    blobs.insert(
        manifest_digest.trim_start_matches("sha256:").to_string(),
        BlobSource::Bytes(top_bytes),
    );
    let index_json = layout::render_index_json(
        &top_media_type,
        manifest_digest,
        top_size,
        &reference.containerd_name(manifest_digest),
        reference.tag.as_deref(),
    );
    let (archive_sha256, bytes) =
        layout::write_layout_tar(out, &index_json, &blobs).map_err(|e| RegistryError::Output {
            at: top_at.clone(),
            path: out.to_path_buf(),
            reason: e.to_string(),
        })?;
    tracing::info!(
        image = %reference,
        digest = manifest_digest,
        platform = %platform,
        archive_sha256 = %archive_sha256,
        bytes,
        "image pulled"
    );
    Ok(PulledImage {
        archive_sha256,
        bytes,
        manifest_digest: manifest_digest.to_string(),
        platforms: vec![platform],
    })
}

/// Downloads a blob into `dir` unless an equal digest is already there (a layer listed twice, a config that is
/// also a layer); returns its path.
async fn fetch_blob_once(
    session: &Session,
    descriptor: &Descriptor,
    at: &Subject,
    dir: &Path,
    blobs: &mut BTreeMap<String, BlobSource>,
) -> Result<PathBuf, RegistryError> {
    let path = dir.join(descriptor.hex());
    if !blobs.contains_key(descriptor.hex()) {
        session.fetch_blob(descriptor, at, &path).await?;
        blobs.insert(
            descriptor.hex().to_string(),
            BlobSource::File {
                path: path.clone(),
                size: descriptor.size,
            },
        );
    }
    Ok(path)
}

fn read_small(path: &Path, size: u64, at: &Subject) -> Result<Vec<u8>, RegistryError> {
    if size > MAX_DOCUMENT_BYTES {
        return Err(RegistryError::BadDocument {
            at: at.clone(),
            reason: format!("the image config is {size} bytes, more than {MAX_DOCUMENT_BYTES}"),
        });
    }
    std::fs::read(path).map_err(|e| RegistryError::Output {
        at: at.clone(),
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}
