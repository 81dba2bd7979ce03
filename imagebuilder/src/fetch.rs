//! Fetch and verify: every artifact byte goes through here, from http(s) or file:// URLs, into a content-addressed
//! cache.
//!
//! A download is written to a temporary file in the cache, hashed while it streams, compared with the expected
//! checksum and only then renamed to `<cache>/blobs/<algo>/<hex>`; so a failed or interrupted download never leaves a
//! cache entry, and a cache entry is always the bytes its name says. Cache hits are re-hashed before use (a corrupt
//! entry is removed and fetched again). Published checksum files are fetched on every online build (small, and
//! possibly updated) and cached by URL under `<cache>/checksum-files/` so `--offline` builds can resolve them.
//! Transient failures (connect errors, timeouts, 5xx, truncated bodies) are retried a bounded number of times; a
//! 4xx or a checksum mismatch is not.

use crate::checksum::{Checksum, Hasher, find_in_checksum_file, sha256_hex};
pub use crate::fetched::{FetchedArtifact, FetchedFrom};
use crate::manifest::{Artifact, ChecksumPin, Install, Manifest};
use crate::progress::Progress;
use crate::{BuildError, checksum, oci, registry};
use futures_util::StreamExt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;
use url::Url;

/// Why a fetch failed. Every variant names the URL or file it is about.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{url}: the server answered HTTP {status}\n  hint: {hint}")]
    HttpStatus {
        url: Url,
        status: u16,
        hint: &'static str,
    },
    #[error(
        "{url}: no answer within {secs} s (tried {attempts} times)\n  hint: check the network path to the host, or raise --timeout"
    )]
    Timeout { url: Url, secs: u64, attempts: u32 },
    #[error(
        "{url}: cannot connect: {reason} (tried {attempts} times)\n  hint: check the host name and that the server is up; for an air-gapped build run `imagebuilder fetch` where the network is reachable and build with --offline"
    )]
    Connect {
        url: Url,
        reason: String,
        attempts: u32,
    },
    #[error(
        "{url}: the body ended early: {reason} (tried {attempts} times)\n  hint: the server or a proxy cut the transfer; retry later"
    )]
    Truncated {
        url: Url,
        reason: String,
        attempts: u32,
    },
    #[error(
        "{url}: checksum mismatch: expected {expected}, got {actual}\n  hint: the file at the URL is not the one the manifest pins; check the version, the URL and the checksum source ({source_of_pin})"
    )]
    Mismatch {
        url: Url,
        expected: Checksum,
        actual: Checksum,
        source_of_pin: String,
    },
    #[error(
        "{url}: cannot read {path}: {reason}\n  hint: check that the file exists and is readable"
    )]
    LocalFile {
        url: Url,
        path: PathBuf,
        reason: String,
    },
    #[error(
        "{url}: the published checksum file is not usable: {reason}\n  hint: point checksum_url at the release's .sha256/SHA256SUMS file, or pin sha256 in the manifest"
    )]
    BadChecksumFile { url: Url, reason: String },
    #[error(
        "cache {path}: {reason}\n  hint: check free space and permissions of the cache directory (--cache)"
    )]
    Cache { path: PathBuf, reason: String },
    #[error("{url}: {reason}")]
    Other { url: Url, reason: String },
    #[error("offline build: {} item(s) are not in the cache:\n{}\n  hint: run `imagebuilder fetch --manifest ...` with network access first, using the same --cache", .missing.len(), .missing.iter().map(|m| format!("  - {m}")).collect::<Vec<_>>().join("\n"))]
    OfflineMissing { missing: Vec<String> },
    #[error(
        "{url}: the download is larger than {limit} bytes (it announced {announced})\n  hint: the URL does not serve the artifact the manifest pins (or the server sends an endless body); nothing was kept"
    )]
    TooLarge {
        url: Url,
        limit: u64,
        announced: String,
    },
}

/// Settings for [`Fetcher`].
#[derive(Debug, Clone)]
pub struct FetchOptions {
    pub cache_dir: PathBuf,
    pub offline: bool,
    /// Total attempts per URL for transient failures.
    pub attempts: u32,
    /// No-progress timeout for connects and reads.
    pub timeout: Duration,
    /// Delay before the second attempt; doubles each time.
    pub retry_delay: Duration,
    /// Talk plain HTTP to container registries (a local test registry or mirror only; never for the internet).
    pub plain_http_registries: bool,
    /// A download larger than this is refused ([`DEFAULT_MAX_ARTIFACT_BYTES`]): a server that sends an endless
    /// body must not fill the cache's disk.
    pub max_artifact_bytes: u64,
}

/// The largest artifact fetched by default (4 GiB; Kubernetes' largest release binary is about 150 MB).
pub const DEFAULT_MAX_ARTIFACT_BYTES: u64 = 4 << 30;

/// The content-addressed cache directory.
#[derive(Debug, Clone)]
pub struct Cache {
    pub root: PathBuf,
}

impl Cache {
    /// Where a blob with this checksum lives.
    pub fn blob_path(&self, checksum: &Checksum) -> PathBuf {
        self.root
            .join("blobs")
            .join(checksum.algo.as_str())
            .join(&checksum.hex)
    }

    /// Where the text of a published checksum file is kept.
    pub fn checksum_file_path(&self, url: &Url) -> PathBuf {
        self.root
            .join("checksum-files")
            .join(sha256_hex(url.as_str().as_bytes()))
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn ensure_dirs(&self, target: &Path) -> Result<(), FetchError> {
        for dir in [target.parent().unwrap_or(&self.root), &self.tmp_dir()] {
            std::fs::create_dir_all(dir).map_err(|e| FetchError::Cache {
                path: dir.to_path_buf(),
                reason: e.to_string(),
            })?;
        }
        Ok(())
    }

    /// Re-hashes a cached blob; returns false (and removes it) when it does not match its name.
    fn verify_blob(&self, checksum: &Checksum) -> Result<bool, FetchError> {
        let path = self.blob_path(checksum);
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => {
                return Err(FetchError::Cache {
                    path,
                    reason: e.to_string(),
                });
            }
        };
        let actual = crate::checksum::digest_reader(checksum.algo, std::io::BufReader::new(file))
            .map_err(|e| FetchError::Cache {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if &actual == checksum {
            Ok(true)
        } else {
            tracing::warn!(path = %path.display(), "cache entry is corrupt; removing it");
            let _ = std::fs::remove_file(&path);
            Ok(false)
        }
    }
}

/// Downloads and verifies.
pub struct Fetcher {
    client: reqwest::Client,
    cache: Cache,
    opts: FetchOptions,
    progress: Progress,
}

enum Attempt<T> {
    Done(T),
    Retry(FetchError),
    Fatal(FetchError),
}

impl Fetcher {
    pub fn new(opts: FetchOptions, progress: Progress) -> Result<Fetcher, FetchError> {
        crate::install_crypto_provider();
        let client = reqwest::Client::builder()
            .connect_timeout(opts.timeout)
            .read_timeout(opts.timeout)
            .user_agent(concat!("k8s-imagebuilder/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| FetchError::Cache {
                path: opts.cache_dir.clone(),
                reason: format!("cannot set up the HTTP client: {e}"),
            })?;
        Ok(Fetcher {
            client,
            cache: Cache {
                root: opts.cache_dir.clone(),
            },
            opts,
            progress,
        })
    }

    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    pub fn offline(&self) -> bool {
        self.opts.offline
    }

    /// The options it was made with.
    pub fn options(&self) -> &FetchOptions {
        &self.opts
    }

    /// Resolves the expected checksum from a published checksum file. Online, the file is fetched every time (it is
    /// small, and a cached copy could be stale, e.g. a SHA256SUMS that gained a line) and its text cached by URL;
    /// offline, the cached text is used.
    pub async fn resolve_published(
        &self,
        checksum_url: &Url,
        artifact_url: &Url,
    ) -> Result<Checksum, FetchError> {
        let cached = self.cache.checksum_file_path(checksum_url);
        let text = if self.opts.offline {
            std::fs::read_to_string(&cached).map_err(|_| FetchError::OfflineMissing {
                missing: vec![format!("checksum file {checksum_url}")],
            })?
        } else {
            let bytes = self.fetch_small(checksum_url).await?;
            let text = String::from_utf8(bytes).map_err(|_| FetchError::BadChecksumFile {
                url: checksum_url.clone(),
                reason: "it is not UTF-8 text".to_string(),
            })?;
            // Parse before caching so a bad file is never kept.
            find_in_checksum_file(&text, artifact_file_name(artifact_url)).map_err(|reason| {
                FetchError::BadChecksumFile {
                    url: checksum_url.clone(),
                    reason,
                }
            })?;
            self.cache.ensure_dirs(&cached)?;
            k8s_core::atomic_file::atomic_write(&cached, text.as_bytes(), crate::OUTPUT_MODE)
                .map_err(|e| FetchError::Cache {
                    path: cached.clone(),
                    reason: e.to_string(),
                })?;
            text
        };
        find_in_checksum_file(&text, artifact_file_name(artifact_url)).map_err(|reason| {
            FetchError::BadChecksumFile {
                url: checksum_url.clone(),
                reason,
            }
        })
    }

    /// Whether a verified blob is in the cache (re-hashing it).
    pub fn has_verified(&self, checksum: &Checksum) -> Result<bool, FetchError> {
        self.cache.verify_blob(checksum)
    }

    /// Makes sure the blob `expected` is in the cache, downloading it from `url` if needed; returns its path.
    pub async fn fetch_verified(
        &self,
        label: &str,
        url: &Url,
        expected: &Checksum,
        source_of_pin: &str,
    ) -> Result<(PathBuf, FetchedFrom), FetchError> {
        let target = self.cache.blob_path(expected);
        if self.cache.verify_blob(expected)? {
            self.progress.line(&format!("{label}: cached ({expected})"));
            return Ok((target, FetchedFrom::Cache));
        }
        if self.opts.offline {
            return Err(FetchError::OfflineMissing {
                missing: vec![format!("{label} {url} ({expected})")],
            });
        }
        self.cache.ensure_dirs(&target)?;
        let mut delay = self.opts.retry_delay;
        let mut attempt = 1;
        loop {
            match self
                .download_once(label, url, expected, source_of_pin, &target, attempt)
                .await
            {
                Attempt::Done(()) => return Ok((target, FetchedFrom::Network)),
                Attempt::Fatal(e) => return Err(e),
                Attempt::Retry(e) if attempt >= self.opts.attempts => return Err(e),
                Attempt::Retry(e) => {
                    self.progress.line(&format!(
                        "{label}: attempt {attempt} failed, retrying in {delay:?}: {}",
                        first_line(&e)
                    ));
                    tokio::time::sleep(delay).await;
                    delay = delay.saturating_mul(2).min(Duration::from_secs(30));
                    attempt += 1;
                }
            }
        }
    }

    async fn download_once(
        &self,
        label: &str,
        url: &Url,
        expected: &Checksum,
        source_of_pin: &str,
        target: &Path,
        attempt: u32,
    ) -> Attempt<()> {
        let tmp_dir = self.cache.tmp_dir();
        let cache_err = |reason: String| {
            Attempt::Fatal(FetchError::Cache {
                path: tmp_dir.clone(),
                reason,
            })
        };
        let mut tmp = match tempfile::Builder::new()
            .prefix(".download-")
            .tempfile_in(&tmp_dir)
        {
            Ok(t) => t,
            Err(e) => return cache_err(e.to_string()),
        };
        let mut hasher = Hasher::new(expected.algo);
        if url.scheme() == "file" {
            let path = match url.to_file_path() {
                Ok(p) => p,
                Err(()) => {
                    return Attempt::Fatal(FetchError::Other {
                        url: url.clone(),
                        reason: "not a local file path".to_string(),
                    });
                }
            };
            let local_err = |e: std::io::Error| {
                Attempt::Fatal(FetchError::LocalFile {
                    url: url.clone(),
                    path: path.clone(),
                    reason: e.to_string(),
                })
            };
            let file = match std::fs::File::open(&path) {
                Ok(f) => f,
                Err(e) => return local_err(e),
            };
            let mut reader = std::io::BufReader::new(file);
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = match std::io::Read::read(&mut reader, &mut buf) {
                    Ok(n) => n,
                    Err(e) => return local_err(e),
                };
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                if let Err(e) = tmp.write_all(&buf[..n]) {
                    return cache_err(e.to_string());
                }
            }
        } else {
            let response = match self.client.get(url.clone()).send().await {
                Ok(r) => r,
                Err(e) => return Attempt::Retry(self.classify(url, &e, attempt)),
            };
            let status = response.status();
            if !status.is_success() {
                let err = FetchError::HttpStatus {
                    url: url.clone(),
                    status: status.as_u16(),
                    hint: if status.as_u16() == 404 {
                        "the URL does not exist: check the version and the file name in the manifest"
                    } else if status.is_server_error() {
                        "the server failed; retried, then gave up"
                    } else {
                        "the server refused the request"
                    },
                };
                return if status.is_server_error() || status.as_u16() == 429 {
                    Attempt::Retry(err)
                } else {
                    Attempt::Fatal(err)
                };
            }
            let total = response.content_length();
            let limit = self.opts.max_artifact_bytes;
            let too_large = |announced: Option<u64>| {
                Attempt::Fatal(FetchError::TooLarge {
                    url: url.clone(),
                    limit,
                    announced: announced.map_or("no size".to_string(), |n| format!("{n} bytes")),
                })
            };
            if total.is_some_and(|n| n > limit) {
                return too_large(total);
            }
            let bar = self.progress.bar(label, total);
            let mut received: u64 = 0;
            let mut stream = response.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = match chunk {
                    Ok(c) => c,
                    Err(e) => {
                        bar.finish_and_clear();
                        return Attempt::Retry(self.classify(url, &e, attempt));
                    }
                };
                hasher.update(&chunk);
                received += chunk.len() as u64;
                if received > limit {
                    bar.finish_and_clear();
                    return too_large(total);
                }
                bar.set_position(received);
                if let Err(e) = tmp.write_all(&chunk) {
                    bar.finish_and_clear();
                    return cache_err(e.to_string());
                }
            }
            bar.finish_and_clear();
            if let Some(total) = total
                && received != total
            {
                return Attempt::Retry(FetchError::Truncated {
                    url: url.clone(),
                    reason: format!("got {received} of {total} bytes"),
                    attempts: attempt,
                });
            }
        }
        let actual = hasher.finish();
        if &actual != expected {
            return Attempt::Fatal(FetchError::Mismatch {
                url: url.clone(),
                expected: expected.clone(),
                actual,
                source_of_pin: source_of_pin.to_string(),
            });
        }
        if let Err(e) = tmp.as_file().sync_all() {
            return cache_err(e.to_string());
        }
        if let Err(e) = tmp.persist(target) {
            return Attempt::Fatal(FetchError::Cache {
                path: target.to_path_buf(),
                reason: e.error.to_string(),
            });
        }
        self.progress
            .line(&format!("{label}: fetched {url} ({expected})"));
        Attempt::Done(())
    }

    /// Fetches a small text document (a checksum file) with the same retry policy; not cached here.
    async fn fetch_small(&self, url: &Url) -> Result<Vec<u8>, FetchError> {
        if url.scheme() == "file" {
            let path = url.to_file_path().map_err(|()| FetchError::Other {
                url: url.clone(),
                reason: "not a local file path".to_string(),
            })?;
            return std::fs::read(&path).map_err(|e| FetchError::LocalFile {
                url: url.clone(),
                path,
                reason: e.to_string(),
            });
        }
        let mut delay = self.opts.retry_delay;
        let mut attempt = 1;
        loop {
            let result = match self.client.get(url.clone()).send().await {
                Err(e) => Attempt::Retry(self.classify(url, &e, attempt)),
                Ok(r) if !r.status().is_success() => {
                    let status = r.status().as_u16();
                    let err = FetchError::HttpStatus {
                        url: url.clone(),
                        status,
                        hint: "the checksum file could not be fetched: check checksum_url in the manifest",
                    };
                    if status >= 500 {
                        Attempt::Retry(err)
                    } else {
                        Attempt::Fatal(err)
                    }
                }
                Ok(r) => match read_small_body(r).await {
                    Ok(Some(b)) => Attempt::Done(b),
                    Ok(None) => Attempt::Fatal(FetchError::BadChecksumFile {
                        url: url.clone(),
                        reason: format!(
                            "it is larger than {MAX_CHECKSUM_FILE_BYTES} bytes; a checksum file is small"
                        ),
                    }),
                    Err(e) => Attempt::Retry(self.classify(url, &e, attempt)),
                },
            };
            match result {
                Attempt::Done(b) => return Ok(b),
                Attempt::Fatal(e) => return Err(e),
                Attempt::Retry(e) if attempt >= self.opts.attempts => return Err(e),
                Attempt::Retry(_) => {
                    tokio::time::sleep(delay).await;
                    delay = delay.saturating_mul(2);
                    attempt += 1;
                }
            }
        }
    }

    fn classify(&self, url: &Url, e: &reqwest::Error, attempts: u32) -> FetchError {
        let reason = error_chain(e);
        if e.is_timeout() {
            FetchError::Timeout {
                url: url.clone(),
                secs: self.opts.timeout.as_secs().max(1),
                attempts,
            }
        } else if e.is_connect() {
            FetchError::Connect {
                url: url.clone(),
                reason,
                attempts,
            }
        } else if e.is_body() || e.is_decode() || e.is_request() {
            FetchError::Truncated {
                url: url.clone(),
                reason,
                attempts,
            }
        } else {
            FetchError::Other {
                url: url.clone(),
                reason,
            }
        }
    }
}

/// The file name part of an artifact URL (what checksum files name).
pub fn artifact_file_name(url: &Url) -> &str {
    url.path_segments()
        .and_then(|mut s| s.next_back())
        .filter(|s| !s.is_empty())
        .unwrap_or("")
}

/// An error and its sources, each once (reqwest nests the same text), joined with `: `.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

fn first_line(e: &FetchError) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}

/// A published checksum file is read up to this size (a SHA256SUMS of a release is a few KiB).
pub const MAX_CHECKSUM_FILE_BYTES: usize = 1024 * 1024;

/// The body, read chunk by chunk; `None` as soon as it passes [`MAX_CHECKSUM_FILE_BYTES`] (never buffered whole:
/// a hostile server may send gigabytes).
async fn read_small_body(
    mut response: reqwest::Response,
) -> Result<Option<Vec<u8>>, reqwest::Error> {
    if response
        .content_length()
        .is_some_and(|n| n > MAX_CHECKSUM_FILE_BYTES as u64)
    {
        return Ok(None);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_CHECKSUM_FILE_BYTES {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// How many artifacts are fetched at once.
pub const FETCH_CONCURRENCY: usize = 4;

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
