//! `imagebuilder`: manifest → fetch + verify → staged tree → checks → deterministic layer, SBOM and lock.
//!
//! [`build`] is the whole pipeline; [`fetch_all`] is its first half (used alone by `imagebuilder fetch` to fill the
//! cache for air-gapped builds). Nothing is written to the output directory until every step has succeeded: the
//! tree is staged in a temporary directory inside it, the outputs are written to temporary files, and only then
//! renamed into place.

// Errors here are cold-path values that carry URLs and checksums for the user; their size does not matter.
#![allow(clippy::result_large_err)]

pub mod checksum;
pub mod fetch;
pub mod gobuild;
pub mod gomod;
pub mod layer;
pub mod manifest;
pub mod oci;
pub mod parallel_gz;
pub mod progress;
pub mod registry;
pub mod sbom;
pub mod stage;

use checksum::{Checksum, sha256_hex};
use fetch::{FetchError, FetchOptions, FetchedFrom, Fetcher};
use futures_util::StreamExt;
use k8s_core::image_info::{
    IMAGE_INFO_DIR, ImageLock, InstalledFile, LOCK_FILE, LOCK_SCHEMA_VERSION, LockedArtifact,
    LockedImage, MANIFEST_FILE, SBOM_FILE,
};
use manifest::{Artifact, ChecksumPin, Install, Manifest, ManifestError};
use progress::Progress;
use stage::{StageError, Staging};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Name of the layer in the output directory.
pub const LAYER_FILE: &str = "layer.tar.gz";
/// Name of the layer's checksum file (`sha256sum` format).
pub const LAYER_SHA256_FILE: &str = "layer.tar.gz.sha256";
/// Owner name recorded for the agent binary.
pub const AGENT_ARTIFACT: &str = "k8s-agent";
/// Owner name recorded for this repository's node content.
pub const CONTENT_ARTIFACT: &str = "node-content";
/// How many artifacts are fetched at once.
pub const FETCH_CONCURRENCY: usize = 4;

/// Everything that can stop a build, each naming what it is about.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Stage(#[from] StageError),
    #[error(transparent)]
    Go(#[from] gobuild::GoBuildError),
    #[error(
        "SOURCE_DATE_EPOCH={0:?} is not a number of seconds\n  hint: unset it or set it to e.g. 1767225600"
    )]
    BadSourceDateEpoch(String),
    #[error(
        "no build time is fixed: the manifest has no source_date_epoch and SOURCE_DATE_EPOCH is not set\n  hint: add source_date_epoch = <seconds> to the manifest so builds are reproducible"
    )]
    NoSourceDateEpoch,
    #[error(
        "agent binary {0} does not exist\n  hint: build it with `cargo build --release -p k8s-agent` or pass --agent-bin"
    )]
    NoAgentBinary(PathBuf),
    #[error(
        "the staged image fails its checks:\n{0}\n  hint: fix the manifest or the node content; the checks are the same as `k8s-agent check --root`"
    )]
    Checks(String),
    #[error("{path}: {reason}\n  hint: check free space and permissions of the output directory")]
    Output { path: PathBuf, reason: String },
    #[error(
        "artifact {artifact:?} ({url}) is not the container image the manifest says: {reason}\n  hint: the archive must be an OCI image layout tar (skopeo copy … oci-archive:FILE) whose index.json names manifest_digest; fix the digest or the archive"
    )]
    Image {
        artifact: String,
        url: String,
        reason: String,
    },
    #[error(
        "artifact {artifact:?} ({url}): {reason}\n  hint: the image is packed from the program built from its Go module; when the build changed on purpose (version, flags, toolchain), pin the digest named above as install.manifest_digest, otherwise the build did not reproduce: build twice and compare the programs' sha256 in the lock"
    )]
    GoImage {
        artifact: String,
        url: String,
        reason: String,
    },
}

/// Inputs of a build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub manifest: PathBuf,
    pub out_dir: PathBuf,
    /// Repository root holding units/, dropins/, sysctl.d/, modules-load.d/, files/.
    pub content_dir: PathBuf,
    pub agent_bin: PathBuf,
    pub fetch: FetchOptions,
    /// The value of the SOURCE_DATE_EPOCH environment variable, if set.
    pub source_date_epoch_env: Option<String>,
}

/// What a build produced.
#[derive(Debug, Clone)]
pub struct BuildReport {
    pub layer: PathBuf,
    pub layer_sha256: String,
    pub layer_bytes: u64,
    pub files: usize,
    pub standins: Vec<String>,
    pub check_summary: String,
    pub fetched_from_network: usize,
    pub fetch_time: Duration,
    pub stage_time: Duration,
    pub pack_time: Duration,
}

/// An artifact whose bytes are verified and in the cache.
#[derive(Debug, Clone)]
pub struct FetchedArtifact {
    pub artifact: Artifact,
    pub blob: PathBuf,
    pub checksum: Checksum,
    pub checksum_source: String,
    pub from: FetchedFrom,
    /// A program built from a Go module: the programs by name and the lock's record of the build.
    pub go: Option<gobuild::GoBuilt>,
}

/// Installs rustls' `ring` provider once (reqwest is built without a default provider).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Mode of every file the builder writes to the output directory and the cache (written with
/// [`k8s_core::atomic_file::atomic_write`]; tempfile's own 0600 would hide the outputs from a pipeline running as
/// another user).
pub const OUTPUT_MODE: u32 = 0o644;

/// Resolves the build's fixed mtime: SOURCE_DATE_EPOCH wins over the manifest.
pub fn source_date_epoch(manifest: &Manifest, env: Option<&str>) -> Result<u64, BuildError> {
    match env {
        Some(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .map_err(|_| BuildError::BadSourceDateEpoch(v.to_string())),
        _ => manifest
            .source_date_epoch
            .ok_or(BuildError::NoSourceDateEpoch),
    }
}

async fn fetch_one(
    fetcher: &Fetcher,
    artifact: &Artifact,
    arch: &str,
) -> Result<FetchedArtifact, FetchError> {
    let label = format!("{} {}", artifact.name, artifact.version);
    let (checksum, source) = match &artifact.pin {
        ChecksumPin::Fixed(c) => (c.clone(), "manifest".to_string()),
        ChecksumPin::Published(url) => (
            fetcher.resolve_published(url, &artifact.url).await?,
            artifact.checksum_label.clone(),
        ),
        ChecksumPin::Registry => return pull_image(fetcher, artifact, arch).await,
        ChecksumPin::GoModule => {
            return Err(FetchError::Other {
                url: artifact.url.clone(),
                reason: "a Go artifact is built (build_go_all), not downloaded".to_string(),
            });
        }
    };
    let (blob, from) = fetcher
        .fetch_verified(&label, &artifact.url, &checksum, &source)
        .await?;
    Ok(FetchedArtifact {
        artifact: artifact.clone(),
        blob,
        checksum,
        checksum_source: source,
        from,
        go: None,
    })
}

/// A container image pulled from its registry by digest into `<cache>/oci/<key>.tar` (key: reference, digest and
/// architecture), verified on every use: a cache hit is re-verified with [`oci::verify_image_archive`], a pull
/// verifies every document and blob by digest before the archive is renamed into the cache.
async fn pull_image(
    fetcher: &Fetcher,
    artifact: &Artifact,
    arch: &str,
) -> Result<FetchedArtifact, FetchError> {
    let Install::Image {
        reference,
        manifest_digest,
        ..
    } = &artifact.install
    else {
        return Err(FetchError::Other {
            url: artifact.url.clone(),
            reason: "only a container image is pulled from a registry".to_string(),
        });
    };
    let key = sha256_hex(format!("{reference}\n{manifest_digest}\n{arch}\n").as_bytes());
    let dir = fetcher.cache().root.join("oci");
    let cached = dir.join(format!("{key}.tar"));
    let cache_err = |e: std::io::Error| FetchError::Cache {
        path: dir.clone(),
        reason: e.to_string(),
    };
    let from =
        if cached.is_file() && oci::verify_image_archive(&cached, manifest_digest, arch).is_ok() {
            FetchedFrom::Cache
        } else {
            if fetcher.offline() {
                return Err(FetchError::OfflineMissing {
                    missing: vec![format!(
                        "image {reference} ({manifest_digest}) from its registry"
                    )],
                });
            }
            std::fs::create_dir_all(&dir).map_err(cache_err)?;
            let tmp = tempfile::Builder::new()
                .prefix(".pull-")
                .tempfile_in(&dir)
                .map_err(cache_err)?;
            let image = registry::ImageRef::parse(reference).map_err(|e| FetchError::Other {
                url: artifact.url.clone(),
                reason: e.to_string(),
            })?;
            let opts = registry::PullOptions {
                timeout: fetcher.options().timeout,
                attempts: fetcher.options().attempts,
                plain_http: fetcher.options().plain_http_registries,
            };
            registry::pull_to_archive(&image, manifest_digest, arch, tmp.path(), &opts)
                .await
                .map_err(|e| FetchError::Other {
                    url: artifact.url.clone(),
                    reason: e.to_string(),
                })?;
            tmp.persist(&cached).map_err(|e| cache_err(e.error))?;
            FetchedFrom::Network
        };
    let file = std::fs::File::open(&cached).map_err(cache_err)?;
    let digest =
        checksum::digest_reader(checksum::ChecksumAlgo::Sha256, file).map_err(cache_err)?;
    Ok(FetchedArtifact {
        artifact: artifact.clone(),
        blob: cached,
        checksum: digest,
        checksum_source: artifact.checksum_label.clone(),
        from,
        go: None,
    })
}

/// The artifacts that are built from a Go module.
fn go_artifacts(manifest: &Manifest) -> impl Iterator<Item = &Artifact> {
    manifest.artifacts.iter().filter(|a| a.go.is_some())
}

/// Builds every Go artifact of `manifest` (or finds it built in the cache), one after the other (each `go build`
/// uses every core), on a blocking thread.
pub async fn build_go_all(
    manifest: &Manifest,
    fetcher: &Fetcher,
    progress: &Progress,
) -> Result<Vec<FetchedArtifact>, BuildError> {
    let artifacts: Vec<Artifact> = go_artifacts(manifest).cloned().collect();
    if artifacts.is_empty() {
        return Ok(Vec::new());
    }
    let env = gobuild::GoEnv::new(&fetcher.cache().root, fetcher.offline());
    let arch = manifest.arch.as_str();
    let progress = progress.clone();
    let task =
        tokio::task::spawn_blocking(move || {
            let mut built = Vec::new();
            for a in artifacts {
                let go = gobuild::build(&env, &a, arch, &progress)?;
                let first = go.programs.values().next().cloned().unwrap_or_default();
                let file = std::fs::File::open(&first).map_err(|e| gobuild::GoBuildError::Io {
                    path: first.clone(),
                    reason: e.to_string(),
                })?;
                let checksum = checksum::digest_reader(checksum::ChecksumAlgo::Sha256, file)
                    .map_err(|e| gobuild::GoBuildError::Io {
                        path: first.clone(),
                        reason: e.to_string(),
                    })?;
                built.push(FetchedArtifact {
                    checksum_source: a.checksum_label.clone(),
                    blob: first,
                    checksum,
                    from: go.from,
                    go: Some(go),
                    artifact: a,
                });
            }
            Ok::<_, gobuild::GoBuildError>(built)
        });
    match task.await {
        Ok(result) => Ok(result?),
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Fills the module cache for every Go artifact (`imagebuilder fetch`): compiles nothing.
pub async fn prefetch_go_all(
    manifest: &Manifest,
    fetcher: &Fetcher,
    progress: &Progress,
) -> Result<usize, BuildError> {
    let artifacts: Vec<Artifact> = go_artifacts(manifest).cloned().collect();
    let env = gobuild::GoEnv::new(&fetcher.cache().root, fetcher.offline());
    let arch = manifest.arch.as_str();
    let progress = progress.clone();
    let task = tokio::task::spawn_blocking(move || {
        for a in &artifacts {
            gobuild::prefetch(&env, a, arch, &progress)?;
        }
        Ok::<_, gobuild::GoBuildError>(artifacts.len())
    });
    match task.await {
        Ok(result) => Ok(result?),
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Fetches and verifies every downloaded artifact of `manifest` into the cache (the Go artifacts are built by
/// [`build_go_all`]). In offline mode, every missing item is reported at once.
pub async fn fetch_all(
    manifest: &Manifest,
    fetcher: &Fetcher,
) -> Result<Vec<FetchedArtifact>, BuildError> {
    let results: Vec<Result<FetchedArtifact, FetchError>> =
        futures_util::stream::iter(manifest.artifacts.iter().filter(|a| a.go.is_none()))
            .map(|a| fetch_one(fetcher, a, manifest.arch.as_str()))
            .buffered(FETCH_CONCURRENCY)
            .collect()
            .await;
    let mut fetched = Vec::new();
    let mut missing = Vec::new();
    let mut first_error = None;
    for result in results {
        match result {
            Ok(f) => fetched.push(f),
            Err(FetchError::OfflineMissing { missing: m }) => missing.extend(m),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e.into());
    }
    if !missing.is_empty() {
        return Err(FetchError::OfflineMissing { missing }.into());
    }
    Ok(fetched)
}

/// The user a Go program's image runs as: distroless' `nonroot`, as upstream's CoreDNS image.
pub const GO_IMAGE_USER: &str = "65532:65532";

/// Packs the one program a Go artifact built into a one-layer image: the program at `/<name>` (0755) as the
/// entrypoint, user [`GO_IMAGE_USER`], every time `mtime`, the module and version as the
/// `org.opencontainers.image.source`/`version` labels, written by [`oci::write_oci_archive`] (same program, same
/// bytes). Its manifest digest must be the manifest's pin; a different one is an error that names both.
pub fn pack_go_image(
    artifact: &Artifact,
    go: &gobuild::GoBuilt,
    reference: &str,
    manifest_digest: &str,
    arch: &str,
    mtime: u64,
) -> Result<tempfile::NamedTempFile, BuildError> {
    let image_err = |reason: String| BuildError::GoImage {
        artifact: artifact.name.clone(),
        url: artifact.source_label.clone(),
        reason,
    };
    let (name, program) = go
        .programs
        .iter()
        .next()
        .ok_or_else(|| image_err("the Go build made no program".to_string()))?;
    let file = oci::ImageFile::from_host(program, &format!("/{name}"), 0o755)
        .map_err(|e| image_err(e.to_string()))?;
    let spec = oci::OciImageSpec {
        files: vec![file],
        entrypoint: vec![format!("/{name}")],
        cmd: vec![],
        env: vec![],
        ref_name: reference.to_string(),
        arch: arch.to_string(),
        created_unix: i64::try_from(mtime).unwrap_or(0),
        labels: [
            (
                "org.opencontainers.image.source".to_string(),
                format!("go:{}@{}", go.lock.module, go.lock.version),
            ),
            (
                "org.opencontainers.image.version".to_string(),
                artifact.version.clone(),
            ),
        ]
        .into_iter()
        .collect(),
        user: Some(GO_IMAGE_USER.to_string()),
        symlinks: vec![],
    };
    let mut tmp = tempfile::NamedTempFile::new().map_err(|e| image_err(e.to_string()))?;
    let digest =
        oci::write_oci_archive(&spec, tmp.as_file_mut()).map_err(|e| image_err(e.to_string()))?;
    if digest != manifest_digest {
        return Err(image_err(format!(
            "the image packed from the built {name} has manifest digest {digest}, the manifest pins \
             {manifest_digest}: if the build changed on purpose (another version, flags or toolchain), pin {digest}"
        )));
    }
    Ok(tmp)
}

/// Stages every input into `staging` and returns the lock.
fn stage_all(
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

    let content = stage::list_node_content(&opts.content_dir)?;
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
            for target in stage::wanted_by(&text) {
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

fn to_json(value: &impl serde::Serialize) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(value).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// The whole build. On error nothing is left in `out_dir` but what was there before.
pub async fn build(opts: &BuildOptions, progress: &Progress) -> Result<BuildReport, BuildError> {
    let manifest = Manifest::load(&opts.manifest)?;
    let mtime = source_date_epoch(&manifest, opts.source_date_epoch_env.as_deref())?;
    let fetcher = Fetcher::new(opts.fetch.clone(), progress.clone())?;

    let started = Instant::now();
    let mut fetched = fetch_all(&manifest, &fetcher).await?;
    fetched.extend(build_go_all(&manifest, &fetcher, progress).await?);
    // Manifest order: the lock and the SBOM list artifacts as the manifest does.
    fetched.sort_by_key(|f| {
        manifest
            .artifacts
            .iter()
            .position(|a| a.name == f.artifact.name)
    });
    let fetch_time = started.elapsed();

    let out_err = |path: &Path| {
        let path = path.to_path_buf();
        move |e: std::io::Error| BuildError::Output {
            path,
            reason: e.to_string(),
        }
    };
    std::fs::create_dir_all(&opts.out_dir).map_err(out_err(&opts.out_dir))?;
    let staging_dir = tempfile::Builder::new()
        .prefix(".staging-")
        .tempdir_in(&opts.out_dir)
        .map_err(out_err(&opts.out_dir))?;

    let started = Instant::now();
    let mut staging = Staging::new(staging_dir.path().join("root"));
    std::fs::create_dir_all(staging.root()).map_err(out_err(staging.root()))?;
    let lock = stage_all(&manifest, &fetched, opts, mtime, &mut staging)?;
    let lock_json = to_json(&lock);
    let sbom = sbom::build_sbom(&lock, &lock_json, &staging);
    let sbom_json = to_json(&sbom);
    let info = |name: &str| format!("/{IMAGE_INFO_DIR}/{name}");
    staging.add_bytes(&info(LOCK_FILE), &lock_json, 0o644, "image-info")?;
    staging.add_bytes(&info(SBOM_FILE), &sbom_json, 0o644, "image-info")?;
    staging.add_bytes(
        &info(MANIFEST_FILE),
        manifest.text.as_bytes(),
        0o644,
        "image-info",
    )?;

    let report = k8s_checks::check_tree(staging.root());
    if !report.passed() {
        return Err(BuildError::Checks(report.render_human()));
    }
    let check_summary = report.render_human();
    let stage_time = started.elapsed();

    let started = Instant::now();
    let layer_tmp = tempfile::Builder::new()
        .prefix(".layer-")
        .tempfile_in(&opts.out_dir)
        .map_err(out_err(&opts.out_dir))?;
    let mut writer =
        layer::HashingWriter::new(std::io::BufWriter::with_capacity(1 << 20, layer_tmp));
    layer::write_layer(&staging, mtime, &mut writer).map_err(out_err(&opts.out_dir))?;
    let (buffered, layer_sha256, layer_bytes) = writer.finish();
    let layer_tmp = buffered.into_inner().map_err(|e| BuildError::Output {
        path: opts.out_dir.clone(),
        reason: e.error().to_string(),
    })?;
    {
        use std::os::unix::fs::PermissionsExt;
        layer_tmp
            .as_file()
            .set_permissions(std::fs::Permissions::from_mode(OUTPUT_MODE))
            .map_err(out_err(&opts.out_dir))?;
    }
    layer_tmp
        .as_file()
        .sync_all()
        .map_err(out_err(&opts.out_dir))?;
    let pack_time = started.elapsed();

    let layer_path = opts.out_dir.join(LAYER_FILE);
    k8s_core::atomic_file::atomic_write(
        &opts.out_dir.join(LOCK_FILE),
        &lock_json,
        crate::OUTPUT_MODE,
    )
    .map_err(out_err(&opts.out_dir.join(LOCK_FILE)))?;
    k8s_core::atomic_file::atomic_write(
        &opts.out_dir.join(SBOM_FILE),
        &sbom_json,
        crate::OUTPUT_MODE,
    )
    .map_err(out_err(&opts.out_dir.join(SBOM_FILE)))?;
    k8s_core::atomic_file::atomic_write(
        &opts.out_dir.join(LAYER_SHA256_FILE),
        format!("{layer_sha256}  {LAYER_FILE}\n").as_bytes(),
        crate::OUTPUT_MODE,
    )
    .map_err(out_err(&opts.out_dir.join(LAYER_SHA256_FILE)))?;
    layer_tmp
        .persist(&layer_path)
        .map_err(|e| BuildError::Output {
            path: layer_path.clone(),
            reason: e.error.to_string(),
        })?;
    drop(staging_dir);

    Ok(BuildReport {
        layer: layer_path,
        layer_sha256,
        layer_bytes,
        files: staging.files().len(),
        standins: lock.standins().iter().map(|s| s.to_string()).collect(),
        check_summary,
        fetched_from_network: fetched
            .iter()
            .filter(|f| f.from == FetchedFrom::Network)
            .count(),
        fetch_time,
        stage_time,
        pack_time,
    })
}
