//! `imagebuilder` command line: `build` (manifest → layer.tar.gz + SBOM + lock), `fetch` (fill the cache only, for
//! air-gapped builds), `oci-image` (pack files into a deterministic OCI image archive: the demo's pause image) and
//! `verify-image` (check an image archive against a manifest digest).
//!
//! Exit codes: 0 success; 1 the build or fetch failed (bad manifest, download, checksum, checks, output); 2 usage
//! error (bad flags).

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use imagebuilder::fetch::{FetchOptions, Fetcher};
use imagebuilder::manifest::Manifest;
use imagebuilder::progress::Progress;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(
    name = "imagebuilder",
    version,
    about = "Bake a Kubernetes node image layer from a manifest"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fetch, verify, stage, check and pack the layer, SBOM and lock into --out.
    Build(BuildArgs),
    /// Fetch and verify every artifact into the cache, nothing else (then build --offline).
    Fetch(FetchArgs),
    /// Pack files into an OCI image archive, deterministically (same inputs, same bytes and digest).
    OciImage(OciImageArgs),
    /// Verify an image archive (every blob's digest) against its manifest digest; print what it holds.
    VerifyImage(VerifyImageArgs),
}

#[derive(Args)]
struct OciImageArgs {
    /// The image reference containerd will name it by, e.g. registry.k8s.io/pause:3.10.1.
    #[arg(long = "ref")]
    reference: String,
    /// amd64 or arm64.
    #[arg(long, default_value = "amd64")]
    arch: String,
    /// A file: SRC:DEST:MODE (DEST absolute in the image, MODE octal), e.g. target/…/pause:/pause:0755.
    #[arg(long = "file")]
    files: Vec<String>,
    /// A symbolic link: DEST:TARGET (DEST absolute in the image), e.g. /bin/sh:busybox.
    #[arg(long = "symlink")]
    symlinks: Vec<String>,
    /// The entrypoint, one argument each time (--entrypoint /pause).
    #[arg(long, allow_hyphen_values = true)]
    entrypoint: Vec<String>,
    /// The default arguments (config.Cmd, replaced by a pod's args), one each time (--cmd sh).
    #[arg(long, allow_hyphen_values = true)]
    cmd: Vec<String>,
    /// Environment of the image's config: K=V.
    #[arg(long)]
    env: Vec<String>,
    /// Labels of the image's config: K=V.
    #[arg(long)]
    label: Vec<String>,
    /// The user the process runs as, e.g. 65535:65535 (upstream pause's).
    #[arg(long)]
    user: Option<String>,
    /// Creation time (seconds since the epoch) [default: $SOURCE_DATE_EPOCH].
    #[arg(long)]
    created: Option<i64>,
    /// The archive to write (temp file + rename).
    #[arg(long, short = 'o')]
    out: PathBuf,
}

#[derive(Args)]
struct VerifyImageArgs {
    /// The image archive (OCI image layout in a tar).
    archive: PathBuf,
    /// The manifest (or index) digest it must hold, sha256:<hex>.
    #[arg(long)]
    digest: String,
    #[arg(long, default_value = "amd64")]
    arch: String,
}

#[derive(Args)]
struct FetchArgs {
    /// The image manifest (TOML).
    #[arg(long, short = 'm')]
    manifest: PathBuf,
    /// Content-addressed download cache [default: $XDG_CACHE_HOME/k8s-imagebuilder or ~/.cache/k8s-imagebuilder].
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Use only the cache; fail naming every artifact that is not there.
    #[arg(long)]
    offline: bool,
    /// Seconds without progress before a connect or read is abandoned.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout: u64,
    /// Attempts per URL for transient failures (connect, timeout, 5xx, truncated body).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=10))]
    attempts: u32,
    /// No progress output.
    #[arg(long, short = 'q')]
    quiet: bool,
    /// Pull container images over plain HTTP (a local test registry or mirror only).
    #[arg(long)]
    plain_http_registries: bool,
}

#[derive(Args)]
struct BuildArgs {
    #[command(flatten)]
    fetch: FetchArgs,
    /// Output directory for layer.tar.gz, layer.tar.gz.sha256, sbom.spdx.json, lock.json.
    #[arg(long, short = 'o')]
    out: PathBuf,
    /// Repository root with units/, dropins/, sysctl.d/, modules-load.d/, files/ [default: this build's source tree].
    #[arg(long)]
    content: Option<PathBuf>,
    /// The k8s-agent binary to install [default: k8s-agent next to this program].
    #[arg(long)]
    agent_bin: Option<PathBuf>,
}

impl FetchArgs {
    fn options(&self) -> anyhow::Result<FetchOptions> {
        let cache_dir = match &self.cache {
            Some(c) => c.clone(),
            None => default_cache_dir().context("cannot find a cache directory; pass --cache")?,
        };
        Ok(FetchOptions {
            cache_dir,
            offline: self.offline,
            attempts: self.attempts,
            timeout: Duration::from_secs(self.timeout),
            retry_delay: Duration::from_millis(500),
            plain_http_registries: self.plain_http_registries,
            max_artifact_bytes: imagebuilder::fetch::DEFAULT_MAX_ARTIFACT_BYTES,
        })
    }
}

fn default_cache_dir() -> Option<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(x).join("k8s-imagebuilder"));
    }
    std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(|h| PathBuf::from(h).join(".cache").join("k8s-imagebuilder"))
}

fn default_agent_bin() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("k8s-agent")))
        .unwrap_or_else(|| PathBuf::from("k8s-agent"))
}

fn default_content_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

async fn run_build(args: BuildArgs) -> anyhow::Result<()> {
    let progress = Progress::for_stderr(args.fetch.quiet);
    let opts = imagebuilder::BuildOptions {
        manifest: args.fetch.manifest.clone(),
        out_dir: args.out.clone(),
        content_dir: args.content.clone().unwrap_or_else(default_content_dir),
        agent_bin: args.agent_bin.clone().unwrap_or_else(default_agent_bin),
        fetch: args.fetch.options()?,
        source_date_epoch_env: std::env::var("SOURCE_DATE_EPOCH").ok(),
    };
    let started = Instant::now();
    let report = imagebuilder::build(&opts, &progress).await?;
    println!("{}", report.check_summary.trim_end());
    println!(
        "built {} ({} bytes, {} files)\nsha256 {}\nfetch {:.2}s ({} from network), stage+check {:.2}s, pack {:.2}s, total {:.2}s",
        report.layer.display(),
        report.layer_bytes,
        report.files,
        report.layer_sha256,
        report.fetch_time.as_secs_f64(),
        report.fetched_from_network,
        report.stage_time.as_secs_f64(),
        report.pack_time.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    if !report.standins.is_empty() {
        println!(
            "DEMO IMAGE: stand-ins for {} — never use this layer for a real node",
            report.standins.join(", ")
        );
    }
    Ok(())
}

fn key_values(
    pairs: &[String],
    what: &str,
) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("{what} {p:?} is not K=V"))
        })
        .collect()
}

fn run_oci_image(args: OciImageArgs) -> anyhow::Result<()> {
    use imagebuilder::oci;
    let created = match args.created {
        Some(c) => c,
        None => std::env::var("SOURCE_DATE_EPOCH")
            .ok()
            .and_then(|v| v.parse().ok())
            .context("no creation time: pass --created SECONDS or set SOURCE_DATE_EPOCH (images must be reproducible)")?,
    };
    let files = args
        .files
        .iter()
        .map(|f| oci::parse_file_arg(f))
        .collect::<Result<Vec<_>, _>>()?;
    let spec = oci::OciImageSpec {
        files,
        entrypoint: args.entrypoint,
        cmd: args.cmd,
        env: args.env,
        ref_name: args.reference,
        arch: args.arch,
        created_unix: created,
        labels: key_values(&args.label, "label")?,
        user: args.user,
        symlinks: args
            .symlinks
            .iter()
            .map(|s| oci::parse_symlink_arg(s))
            .collect::<Result<Vec<_>, _>>()?,
    };
    let digest = oci::write_oci_archive_file(&spec, &args.out)?;
    println!("{digest}  {}", args.out.display());
    Ok(())
}

fn run_verify_image(args: VerifyImageArgs) -> anyhow::Result<()> {
    let image = imagebuilder::oci::verify_image_archive(&args.archive, &args.digest, &args.arch)?;
    println!(
        "{}: {} ({}), {} ({} layers, {} bytes of blobs), names: {}",
        args.archive.display(),
        image.manifest_digest,
        image.media_type,
        image.platforms.join(", "),
        image.layers.len(),
        image.total_blob_bytes,
        image.ref_names.join(", ")
    );
    Ok(())
}

async fn run_fetch(args: FetchArgs) -> anyhow::Result<()> {
    let progress = Progress::for_stderr(args.quiet);
    let manifest = Manifest::load(&args.manifest)?;
    let fetcher = Fetcher::new(args.options()?, progress.clone())?;
    let fetched = imagebuilder::fetch_all(&manifest, &fetcher).await?;
    let go = imagebuilder::prefetch_go_all(&manifest, &fetcher, &progress).await?;
    println!(
        "{} artifacts verified in {}{}",
        fetched.len(),
        fetcher.cache().root.display(),
        if go > 0 {
            format!("; the Go modules of {go} Go artifacts are in the module cache")
        } else {
            String::new()
        }
    );
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("IMAGEBUILDER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Build(args) => run_build(args).await,
            Command::Fetch(args) => run_fetch(args).await,
            Command::OciImage(args) => run_oci_image(args),
            Command::VerifyImage(args) => run_verify_image(args),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("Caused by: {cause}");
            }
            ExitCode::from(1)
        }
    }
}
