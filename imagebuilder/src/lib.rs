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
pub mod fetched;
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

pub use fetch::{FETCH_CONCURRENCY, FetchedArtifact, fetch_all};
pub use gobuild::{GO_IMAGE_USER, build_go_all, pack_go_image, prefetch_go_all};

use fetch::{FetchError, FetchOptions, FetchedFrom, Fetcher};
use k8s_core::image_info::{IMAGE_INFO_DIR, LOCK_FILE, MANIFEST_FILE, SBOM_FILE};
use manifest::{Manifest, ManifestError};
use progress::Progress;
use stage::{StageError, Staging, stage_all, to_json};
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
