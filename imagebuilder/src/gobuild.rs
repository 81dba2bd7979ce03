//! Builds the manifest's Go artifacts by running `go` — the edge of [`crate::gomod`], which decides everything this
//! module only carries out.
//!
//! For each artifact: the toolchain is the manifest's (`GOTOOLCHAIN=<[go] toolchain>`, checked with `go env
//! GOVERSION`), the module is downloaded and its hash compared with the manifest's `sum`, a wrapper module is written
//! from the module's own go.mod ([`gomod::wrapper_go_mod`]), and `go build` runs with a fixed environment
//! (`GOOS=linux`, `GOARCH`, `CGO_ENABLED`, `GOFLAGS=-mod=mod -modcacherw`, `GOWORK=off`, `GOENV=off`: a user's
//! `go env -w` settings and GOFLAGS cannot change the bytes). The programs and the lock record ([`LockedGoBuild`],
//! with every module the binaries' build info lists) are kept under `<cache>/go/bin/<recipe key>/`: a second build
//! of the same recipe does not run `go` at all, and re-checks the kept programs' sha256 first.
//!
//! Go's own caches: `GOMODCACHE` and `GOCACHE` from the environment when set, else `<cache>/go/mod` and
//! `<cache>/go/build`. `--offline` sets `GOPROXY=off`: only what `imagebuilder fetch` (which runs the same steps up
//! to `go list -deps`) put in the module cache is used.

use crate::checksum::sha256_hex;
use crate::fetch::Fetcher;
pub use crate::fetched::GoBuilt;
use crate::fetched::{FetchedArtifact, FetchedFrom};
use crate::gomod::{self, GoBuild};
use crate::manifest::Manifest;
use crate::manifest::{Artifact, Install};
use crate::progress::Progress;
use crate::{BuildError, checksum, oci};
use k8s_core::image_info::{LockedGoBuild, LockedGoModule};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Version of the record kept next to cached programs.
const RECORD_VERSION: u32 = 1;
/// How many lines of `go`'s error output an error quotes.
const ERROR_TAIL_LINES: usize = 25;

/// Everything that can stop a Go build, naming the module, artifact or command it is about.
#[derive(Debug, thiserror::Error)]
pub enum GoBuildError {
    #[error(
        "cannot run `{go}`: {reason}\n  hint: the Go artifacts need a Go toolchain on PATH (go1.26.8 is at /usr/local/go/bin/go on these machines), or set GO to its path"
    )]
    NoGo { go: String, reason: String },
    #[error(
        "the manifest pins Go {want}, but GOTOOLCHAIN={want} gives {got}\n  hint: install {want}, or change [go] toolchain (builds with another Go give other bytes)"
    )]
    Toolchain { want: String, got: String },
    #[error("go mod download {module}: {reason}\n  hint: {hint}")]
    Download {
        module: String,
        reason: String,
        hint: &'static str,
    },
    #[error(
        "{module}: the module's hash is {got}, the manifest pins {want}\n  hint: the module proxy served other content than the manifest pins; check the version and the sum (`go mod download -json {module}`)"
    )]
    SumMismatch {
        module: String,
        want: String,
        got: String,
    },
    #[error("{module}: {reason}\n  hint: see [[go_module]] in the manifest reference")]
    Module { module: String, reason: String },
    #[error("artifact {artifact:?}: `{command}` failed:\n{tail}\n  hint: {hint}")]
    Command {
        artifact: String,
        command: String,
        tail: String,
        hint: &'static str,
    },
    #[error(
        "{path}: {reason}\n  hint: check free space and permissions of the cache directory (--cache)"
    )]
    Io { path: PathBuf, reason: String },
    #[error("artifact {artifact:?}: {reason}")]
    Output { artifact: String, reason: String },
}

/// Where and how `go` runs.
#[derive(Debug, Clone)]
pub struct GoEnv {
    /// The `go` command (`$GO`, else `go` from PATH).
    pub go: PathBuf,
    /// `GOMODCACHE`.
    pub modcache: PathBuf,
    /// `GOCACHE`.
    pub gocache: PathBuf,
    /// `<cache>/go`: `work/` (wrapper modules) and `bin/` (built programs).
    pub root: PathBuf,
    /// `GOPROXY=off`.
    pub offline: bool,
}

impl GoEnv {
    /// The environment for a builder cache at `cache_root`; `GO`, `GOMODCACHE` and `GOCACHE` from the process
    /// environment win.
    pub fn new(cache_root: &Path, offline: bool) -> GoEnv {
        let root = cache_root.join("go");
        let from_env = |key: &str| {
            std::env::var_os(key)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        GoEnv {
            go: from_env("GO").unwrap_or_else(|| PathBuf::from("go")),
            modcache: from_env("GOMODCACHE").unwrap_or_else(|| root.join("mod")),
            gocache: from_env("GOCACHE").unwrap_or_else(|| root.join("build")),
            root,
            offline,
        }
    }

    fn command(&self, toolchain: &str, arch: &str, cgo: bool) -> Command {
        let mut c = Command::new(&self.go);
        c.env("GOTOOLCHAIN", toolchain)
            .env("GOOS", "linux")
            .env("GOARCH", arch)
            .env("CGO_ENABLED", if cgo { "1" } else { "0" })
            .env("GOFLAGS", "-mod=mod -modcacherw")
            .env("GOWORK", "off")
            .env("GOENV", "off")
            .env("GO111MODULE", "on")
            .env("GOMODCACHE", &self.modcache)
            .env("GOCACHE", &self.gocache)
            .env_remove("GOPATH");
        if self.offline {
            c.env("GOPROXY", "off");
        }
        c
    }
}

/// `go` from PATH, else `/usr/local/go/bin/go` when it exists, else `go` (the error then names it).
pub fn default_go() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("go").is_file()))
        .unwrap_or(false);
    let standard = Path::new("/usr/local/go/bin/go");
    if !on_path && standard.is_file() {
        standard.to_path_buf()
    } else {
        PathBuf::from("go")
    }
}

/// The record kept next to cached programs.
#[derive(Debug, Serialize, Deserialize)]
struct CachedRecord {
    record_version: u32,
    recipe: String,
    /// Program name → sha256.
    programs: BTreeMap<String, String>,
    lock: LockedGoBuild,
}

/// A finished command's output, or why it failed.
struct Ran {
    stdout: String,
}

fn run(mut cmd: Command, artifact: &str, hint: &'static str) -> Result<Ran, GoBuildError> {
    let shown = format!(
        "{} {}",
        cmd.get_program().to_string_lossy(),
        cmd.get_args()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let out = cmd.output().map_err(|e| GoBuildError::NoGo {
        go: cmd.get_program().to_string_lossy().into_owned(),
        reason: e.to_string(),
    })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = stderr.lines().chain(stdout.lines()).collect();
        let tail = lines[lines.len().saturating_sub(ERROR_TAIL_LINES)..]
            .iter()
            .map(|l| format!("    {l}"))
            .collect::<Vec<_>>()
            .join("\n");
        return Err(GoBuildError::Command {
            artifact: artifact.to_string(),
            command: shown,
            tail,
            hint,
        });
    }
    Ok(Ran {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
    })
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> GoBuildError + '_ {
    move |e| GoBuildError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// The C compiler's identity (`go env CC`, then its `--version` first line), for the recipe and the lock.
fn cc_identity(
    env: &GoEnv,
    build: &GoBuild,
    arch: &str,
    artifact: &str,
) -> Result<String, GoBuildError> {
    let mut c = env.command(&build.toolchain, arch, true);
    c.args(["env", "CC"]).current_dir(&env.root);
    let cc = run(c, artifact, "`go env CC` names the C compiler cgo uses")?.stdout;
    let cc = cc.trim();
    let mut version = Command::new(cc.split_whitespace().next().unwrap_or("cc"));
    version.arg("--version");
    let out = run(
        version,
        artifact,
        "cgo builds need a C compiler (gcc, libc6-dev) and the C libraries the module links (runc: libseccomp-dev)",
    )?;
    Ok(out
        .stdout
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string())
}

/// Checks that `GOTOOLCHAIN=<toolchain>` really gives that Go (it may download it from the module proxy).
fn check_toolchain(
    env: &GoEnv,
    build: &GoBuild,
    arch: &str,
    artifact: &str,
) -> Result<(), GoBuildError> {
    let mut c = env.command(&build.toolchain, arch, build.cgo);
    c.args(["env", "GOVERSION"]).current_dir(&env.root);
    let got = run(
        c,
        artifact,
        "GOTOOLCHAIN names a Go release the go command must find locally or download from the module proxy",
    )?
    .stdout
    .trim()
    .to_string();
    if got != build.toolchain {
        return Err(GoBuildError::Toolchain {
            want: build.toolchain.clone(),
            got,
        });
    }
    Ok(())
}

/// Downloads the module (or finds it in the module cache), compares its hash with the pin, and writes the wrapper
/// module. Returns the wrapper's directory.
fn prepare_module(
    env: &GoEnv,
    build: &GoBuild,
    arch: &str,
    artifact: &str,
) -> Result<PathBuf, GoBuildError> {
    let m = &build.module;
    let at = format!("{}@{}", m.path, m.version);
    let mut c = env.command(&build.toolchain, arch, build.cgo);
    c.args(["mod", "download", "-json", &at])
        .current_dir(&env.root);
    let out = c.output().map_err(|e| GoBuildError::NoGo {
        go: env.go.to_string_lossy().into_owned(),
        reason: e.to_string(),
    })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let download =
        gomod::parse_module_download(&text).map_err(|reason| GoBuildError::Download {
            module: at.clone(),
            reason: format!(
                "{reason}; go said: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            hint: "check that the Go module proxy (GOPROXY) is reachable",
        })?;
    if let Some(reason) = download.error {
        return Err(GoBuildError::Download {
            module: at,
            reason,
            hint: if env.offline {
                "an offline build uses only the module cache: run `imagebuilder fetch` with the same --cache (and GOMODCACHE) first"
            } else {
                "the Go module proxy refused or does not have this version: check the version, or pick one the proxy serves"
            },
        });
    }
    let got = download.sum.unwrap_or_default();
    if got != m.sum {
        return Err(GoBuildError::SumMismatch {
            module: at,
            want: m.sum.clone(),
            got,
        });
    }
    let Some(go_mod) = download.go_mod else {
        return Err(GoBuildError::Module {
            module: at,
            reason: "`go mod download -json` named no go.mod".to_string(),
        });
    };
    let mut c = env.command(&build.toolchain, arch, build.cgo);
    c.args(["mod", "edit", "-json", &go_mod])
        .current_dir(&env.root);
    let upstream = gomod::parse_go_mod_json(
        &run(c, artifact, "`go mod edit -json` reads the module's go.mod")?.stdout,
    )
    .map_err(|reason| GoBuildError::Module {
        module: at.clone(),
        reason,
    })?;
    let wrapper = gomod::wrapper_go_mod(m, &upstream).map_err(|reason| GoBuildError::Module {
        module: at.clone(),
        reason,
    })?;
    let dir = env.root.join("work").join(format!(
        "{}-{}",
        m.name,
        &sha256_hex(wrapper.as_bytes())[..16]
    ));
    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let path = dir.join("go.mod");
    if std::fs::read_to_string(&path).ok().as_deref() != Some(wrapper.as_str()) {
        k8s_core::atomic_file::atomic_write(&path, wrapper.as_bytes(), crate::OUTPUT_MODE)
            .map_err(io_err(&path))?;
    }
    Ok(dir)
}

/// Fills the module cache with everything building `artifact` needs (`imagebuilder fetch`): the module, its hash
/// checked, and every module `go list -deps` loads for its packages. Compiles nothing.
pub fn prefetch(
    env: &GoEnv,
    artifact: &Artifact,
    arch: &str,
    progress: &Progress,
) -> Result<(), GoBuildError> {
    let Some(build) = &artifact.go else {
        return Ok(());
    };
    prepare_dirs(env)?;
    check_toolchain(env, build, arch, &artifact.name)?;
    let dir = prepare_module(env, build, arch, &artifact.name)?;
    let mut c = env.command(&build.toolchain, arch, build.cgo);
    c.args(["list", "-deps", "-f", "{{.ImportPath}}"]);
    if !build.module.tags.is_empty() {
        c.arg(format!("-tags={}", build.module.tags.join(",")));
    }
    c.args(build.import_paths()).current_dir(&dir);
    run(
        c,
        &artifact.name,
        "the module proxy must serve every module the packages import",
    )?;
    progress.line(&format!(
        "{}: Go modules for {} are in the module cache",
        artifact.name,
        build.source_label()
    ));
    Ok(())
}

fn prepare_dirs(env: &GoEnv) -> Result<(), GoBuildError> {
    for d in [&env.root, &env.modcache, &env.gocache] {
        std::fs::create_dir_all(d).map_err(io_err(d))?;
    }
    Ok(())
}

/// The programs an artifact installs, by name: its single file's name (the artifact's) or the packages' names.
fn program_names(artifact: &Artifact) -> Vec<String> {
    match &artifact.install {
        Install::Programs { names, .. } => names.clone(),
        _ => vec![artifact.name.clone()],
    }
}

/// A cached build of this recipe whose programs still have the recorded sha256, if there is one.
fn cached(dir: &Path, recipe: &str) -> Option<GoBuilt> {
    let text = std::fs::read_to_string(dir.join("record.json")).ok()?;
    let record: CachedRecord = serde_json::from_str(&text).ok()?;
    if record.record_version != RECORD_VERSION || record.recipe != recipe {
        return None;
    }
    let mut programs = BTreeMap::new();
    for (name, sha) in &record.programs {
        let path = dir.join(name);
        let file = std::fs::File::open(&path).ok()?;
        let digest =
            crate::checksum::digest_reader(crate::checksum::ChecksumAlgo::Sha256, file).ok()?;
        if digest.hex != *sha {
            return None;
        }
        programs.insert(name.clone(), path);
    }
    Some(GoBuilt {
        programs,
        lock: record.lock,
        from: FetchedFrom::Cache,
    })
}

/// Builds `artifact` (or finds it built): see the module documentation for every step.
pub fn build(
    env: &GoEnv,
    artifact: &Artifact,
    arch: &str,
    progress: &Progress,
) -> Result<GoBuilt, GoBuildError> {
    let Some(build) = &artifact.go else {
        return Err(GoBuildError::Output {
            artifact: artifact.name.clone(),
            reason: "not a Go artifact".to_string(),
        });
    };
    let name = &artifact.name;
    prepare_dirs(env)?;
    let cc = if build.cgo {
        Some(cc_identity(env, build, arch, name)?)
    } else {
        None
    };
    let recipe = build.recipe(arch, cc.as_deref());
    let key = sha256_hex(recipe.as_bytes());
    let bin_root = env.root.join("bin");
    let dir = bin_root.join(&key[..32]);
    if let Some(found) = cached(&dir, &recipe) {
        progress.line(&format!(
            "{name}: cached build of {} ({})",
            build.source_label(),
            &key[..12]
        ));
        return Ok(found);
    }

    check_toolchain(env, build, arch, name)?;
    let work = prepare_module(env, build, arch, name)?;
    std::fs::create_dir_all(&bin_root).map_err(io_err(&bin_root))?;
    let tmp = tempfile::Builder::new()
        .prefix(".build-")
        .tempdir_in(&bin_root)
        .map_err(io_err(&bin_root))?;
    let names = program_names(artifact);
    let output = match &artifact.install {
        Install::Programs { .. } => format!("{}/", tmp.path().display()),
        _ => tmp.path().join(name).display().to_string(),
    };
    progress.line(&format!(
        "{name}: building {} with {} (CGO_ENABLED={}) …",
        build.source_label(),
        build.toolchain,
        u8::from(build.cgo)
    ));
    let started = Instant::now();
    let mut c = env.command(&build.toolchain, arch, build.cgo);
    c.arg("build")
        .args(build.build_flags())
        .args(["-o", &output]);
    c.args(build.import_paths()).current_dir(&work);
    run(
        c,
        name,
        "the compiler's or the module proxy's message is above; a cgo build needs its C libraries (runc: libseccomp-dev)",
    )?;

    let mut programs = BTreeMap::new();
    let mut sums = BTreeMap::new();
    let mut bytes = 0;
    for program in &names {
        let path = tmp.path().join(program);
        let file = std::fs::File::open(&path).map_err(|e| GoBuildError::Output {
            artifact: name.clone(),
            reason: format!("`go build` made no {program}: {e}"),
        })?;
        bytes += file.metadata().map(|m| m.len()).unwrap_or(0);
        let digest = crate::checksum::digest_reader(crate::checksum::ChecksumAlgo::Sha256, file)
            .map_err(io_err(&path))?;
        sums.insert(program.clone(), digest.hex);
        programs.insert(program.clone(), dir.join(program));
    }
    let first = tmp.path().join(&names[0]);
    let mut c = env.command(&build.toolchain, arch, build.cgo);
    c.args(["version", "-m", "-json"])
        .arg(&first)
        .current_dir(&work);
    let info = gomod::parse_build_info(
        &run(c, name, "`go version -m -json` reads a binary's build info")?.stdout,
    )
    .map_err(|reason| GoBuildError::Output {
        artifact: name.clone(),
        reason,
    })?;
    let lock = locked_build(build, arch, cc, &info).map_err(|reason| GoBuildError::Output {
        artifact: name.clone(),
        reason,
    })?;
    let record = CachedRecord {
        record_version: RECORD_VERSION,
        recipe,
        programs: sums,
        lock: lock.clone(),
    };
    let record_path = tmp.path().join("record.json");
    let json = serde_json::to_vec_pretty(&record).map_err(|e| GoBuildError::Output {
        artifact: name.clone(),
        reason: e.to_string(),
    })?;
    std::fs::write(&record_path, json).map_err(io_err(&record_path))?;
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
    }
    let kept = tmp.keep();
    std::fs::rename(&kept, &dir).map_err(io_err(&dir))?;
    progress.line(&format!(
        "{name}: built in {:.1} s ({:.1} MB)",
        started.elapsed().as_secs_f64(),
        bytes as f64 / 1e6
    ));
    Ok(GoBuilt {
        programs,
        lock,
        from: FetchedFrom::Network,
    })
}

/// The lock's record of a build, from the recipe and the binary's build info; fails when the binary says it was
/// built from something else than the recipe (another Go, another module hash, cgo on or off).
pub fn locked_build(
    build: &GoBuild,
    arch: &str,
    cc: Option<String>,
    info: &gomod::BuildInfo,
) -> Result<LockedGoBuild, String> {
    if info.go_version != build.toolchain {
        return Err(format!(
            "the binary says it was built by {}, not {}",
            info.go_version, build.toolchain
        ));
    }
    let cgo = info.setting("CGO_ENABLED") == Some("1");
    if cgo != build.cgo {
        return Err(format!(
            "the binary's CGO_ENABLED is {cgo}, the recipe's {}",
            build.cgo
        ));
    }
    let main = info.modules().find(|d| d.path == build.module.path);
    match main.and_then(|d| d.sum.as_deref()) {
        Some(sum) if sum == build.module.sum => {}
        other => {
            return Err(format!(
                "the binary's build info gives {} the hash {}, the manifest pins {}",
                build.module.path,
                other.unwrap_or("(none)"),
                build.module.sum
            ));
        }
    }
    let mut deps: Vec<LockedGoModule> = info
        .modules()
        .map(|d| LockedGoModule {
            path: d.path.clone(),
            version: d.version.clone(),
            sum: d
                .replace
                .as_ref()
                .and_then(|r| r.sum.clone())
                .or_else(|| d.sum.clone()),
            replaced_by: d
                .replace
                .as_ref()
                .map(|r| format!("{} {}", r.path, r.version)),
        })
        .collect();
    deps.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(LockedGoBuild {
        module: build.module.path.clone(),
        version: build.module.version.clone(),
        sum: build.module.sum.clone(),
        packages: build.packages.clone(),
        replace_local: build.module.replace_local.clone(),
        go_version: info.go_version.clone(),
        target: format!("linux/{arch}"),
        cgo_enabled: build.cgo,
        flags: build.build_flags(),
        cc,
        deps,
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
    let env = GoEnv::new(&fetcher.cache().root, fetcher.offline());
    let arch = manifest.arch.as_str();
    let progress = progress.clone();
    let task =
        tokio::task::spawn_blocking(move || {
            let mut built = Vec::new();
            for a in artifacts {
                let go = build(&env, &a, arch, &progress)?;
                let first = go.programs.values().next().cloned().unwrap_or_default();
                let file = std::fs::File::open(&first).map_err(|e| GoBuildError::Io {
                    path: first.clone(),
                    reason: e.to_string(),
                })?;
                let checksum = checksum::digest_reader(checksum::ChecksumAlgo::Sha256, file)
                    .map_err(|e| GoBuildError::Io {
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
            Ok::<_, GoBuildError>(built)
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
    let env = GoEnv::new(&fetcher.cache().root, fetcher.offline());
    let arch = manifest.arch.as_str();
    let progress = progress.clone();
    let task = tokio::task::spawn_blocking(move || {
        for a in &artifacts {
            prefetch(&env, a, arch, &progress)?;
        }
        Ok::<_, GoBuildError>(artifacts.len())
    });
    match task.await {
        Ok(result) => Ok(result?),
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// The user a Go program's image runs as: distroless' `nonroot`, as upstream's CoreDNS image.
pub const GO_IMAGE_USER: &str = "65532:65532";

/// Packs the one program a Go artifact built into a one-layer image: the program at `/<name>` (0755) as the
/// entrypoint, user [`GO_IMAGE_USER`], every time `mtime`, the module and version as the
/// `org.opencontainers.image.source`/`version` labels, written by [`oci::write_oci_archive`] (same program, same
/// bytes). Its manifest digest must be the manifest's pin; a different one is an error that names both.
pub fn pack_go_image(
    artifact: &Artifact,
    go: &GoBuilt,
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
