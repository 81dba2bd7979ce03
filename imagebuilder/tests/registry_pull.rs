//! Pulls against real registry software on loopback: Debian's `docker-registry` (CNCF distribution) serving a
//! tempdir over plain http on 127.0.0.1, filled by `skopeo copy` from OCI layouts these tests write by hand, and the
//! pulled archives checked by recomputing every digest and by `skopeo` reading them back.
//!
//! Needs `/usr/bin/docker-registry` and `skopeo` (Debian packages `docker-registry`, `skopeo`); without them the
//! tests fail saying so. Each test starts its own registry on a free port and stops it when done, also when an
//! assertion fails (a guard with Drop).

#![allow(clippy::result_large_err)] // the library's error type, returned as is

mod registry_support;

use imagebuilder::registry::{ImageRef, PullOptions, PulledImage, RegistryError, pull_to_archive};
use registry_support::*;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// A running `docker-registry serve`, killed on drop.
struct RealRegistry {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl RealRegistry {
    fn start() -> RealRegistry {
        assert!(
            Path::new(REGISTRY_BIN).is_file(),
            "{REGISTRY_BIN} is missing: install Debian's docker-registry and skopeo \
             (apt-get install -y --no-install-recommends docker-registry skopeo)"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage).expect("mkdir storage");
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\n\
                 log:\n  level: warn\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  addr: 127.0.0.1:{port}\n",
                storage.display()
            ),
        )
        .expect("write config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("log file");
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let mut registry = RealRegistry { child, port, dir };
        registry.wait_ready();
        registry
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("docker-registry exited with {status}:\n{}", self.log());
            }
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                use std::io::Write;
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = s.write_all(b"GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
                let mut head = [0u8; 12];
                if s.read_exact(&mut head).is_ok()
                    && head.starts_with(b"HTTP/1.")
                    && &head[9..12] == b"200"
                {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not answer within 10 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Where the registry keeps a blob's bytes (manifests are blobs too).
    fn blob_data(&self, blob: &Blob) -> PathBuf {
        let hex = blob.hex();
        self.dir
            .path()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(&hex)
            .join("data")
    }

    /// Pushes an OCI layout directory's `tag` to `repository:tag` with skopeo.
    fn push(&self, layout: &Path, repository: &str, tag: &str, extra: &[&str]) {
        let mut args = vec![
            "--insecure-policy",
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            "--dest-no-creds",
        ];
        args.extend_from_slice(extra);
        let src = format!("oci:{}:{tag}", layout.display());
        let dst = format!("docker://{}/{repository}:{tag}", self.host());
        args.extend([src.as_str(), dst.as_str()]);
        skopeo(&args);
    }

    /// The manifest the registry serves for `repository:tag`, raw.
    fn raw_manifest(&self, repository: &str, tag: &str) -> Vec<u8> {
        skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--no-creds",
            &format!("docker://{}/{repository}:{tag}", self.host()),
        ])
    }
}

impl Drop for RealRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn skopeo(args: &[&str]) -> Vec<u8> {
    let out = Command::new("skopeo")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run skopeo ({e}): install Debian's skopeo"));
    assert!(
        out.status.success(),
        "skopeo {}: {}\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn opts() -> PullOptions {
    PullOptions {
        timeout: Duration::from_secs(5),
        attempts: 2,
        plain_http: true,
    }
}

/// A two-platform index (linux/amd64, linux/arm64/v8) pushed as `test/pause:3.10.1`.
struct PushedIndex {
    amd64: TestImage,
    arm64: TestImage,
    index: Blob,
}

fn push_index(registry: &RealRegistry) -> PushedIndex {
    let amd64 = TestImage::new("linux", "amd64", None);
    let arm64 = TestImage::new("linux", "arm64", Some("v8"));
    let index = index_of(&[&amd64, &arm64]);
    let layout = tempfile::tempdir().expect("tempdir");
    let blobs: Vec<&Blob> = amd64.blobs().into_iter().chain(arm64.blobs()).collect();
    write_oci_layout(layout.path(), &index, &blobs, "3.10.1");
    registry.push(
        layout.path(),
        "test/pause",
        "3.10.1",
        &["--all", "--preserve-digests"],
    );
    assert_eq!(
        registry.raw_manifest("test/pause", "3.10.1"),
        index.bytes,
        "the registry serves the index byte for byte"
    );
    PushedIndex {
        amd64,
        arm64,
        index,
    }
}

async fn pull(
    registry: &RealRegistry,
    repository_and_tag: &str,
    pin: &str,
    arch: &str,
    out: &Path,
) -> Result<PulledImage, RegistryError> {
    let reference = ImageRef::parse(&format!("{}/{repository_and_tag}", registry.host()))
        .expect("reference parses");
    pull_to_archive(&reference, pin, arch, out, &opts()).await
}

#[tokio::test]
async fn index_pin_for_amd64_gives_a_verified_single_platform_archive() {
    let registry = RealRegistry::start();
    let pushed = push_index(&registry);
    let pin = pushed.index.digest();
    let work = tempfile::tempdir().expect("tempdir");
    let (one, two) = (work.path().join("one.tar"), work.path().join("two.tar"));

    let pulled = pull(&registry, "test/pause:3.10.1", &pin, "amd64", &one)
        .await
        .expect("pull by index digest");
    assert_eq!(pulled.manifest_digest, pin);
    assert_eq!(pulled.platforms, ["linux/amd64"]);
    let bytes = std::fs::read(&one).expect("read archive");
    assert_eq!(pulled.archive_sha256, sha256_hex(&bytes));
    assert_eq!(pulled.bytes, bytes.len() as u64);
    let name = format!("{}/test/pause:3.10.1", registry.host());
    let blobs = check_layout(&one, &pin, OCI_INDEX, &name, "3.10.1", &{
        let mut b = vec![&pushed.index];
        b.extend(pushed.amd64.blobs());
        b
    });
    for absent in pushed.arm64.blobs() {
        assert!(
            !blobs.contains_key(&absent.hex()),
            "arm64's {} must not be in the archive",
            absent.digest()
        );
    }

    // skopeo reads it back: the raw top-level document is the pinned index, and it copies the amd64 image out.
    let archive = format!("oci-archive:{}", one.display());
    let raw = skopeo(&["inspect", "--raw", &archive]);
    assert_eq!(digest_of(&raw), pin, "skopeo sees the pinned index");
    let copied = work.path().join("copied");
    skopeo(&[
        "--insecure-policy",
        "--override-os",
        "linux",
        "--override-arch",
        "amd64",
        "copy",
        "--quiet",
        &archive,
        &format!("oci:{}:copied", copied.display()),
    ]);
    assert!(copied.join("index.json").is_file());

    let again = pull(&registry, "test/pause:3.10.1", &pin, "amd64", &two)
        .await
        .expect("second pull");
    assert_eq!(again, pulled);
    assert_eq!(
        std::fs::read(&two).expect("read"),
        bytes,
        "two pulls give byte-identical archives"
    );
    eprintln!(
        "archive sha256 (two identical pulls): {} ({} bytes)",
        pulled.archive_sha256, pulled.bytes
    );
}

#[tokio::test]
async fn arm64_is_selected_from_the_same_index() {
    let registry = RealRegistry::start();
    let pushed = push_index(&registry);
    let pin = pushed.index.digest();
    let work = tempfile::tempdir().expect("tempdir");
    let out = work.path().join("arm64.tar");
    let pulled = pull(&registry, "test/pause:3.10.1", &pin, "arm64", &out)
        .await
        .expect("pull arm64");
    assert_eq!(pulled.platforms, ["linux/arm64/v8"]);
    let name = format!("{}/test/pause:3.10.1", registry.host());
    let blobs = check_layout(&out, &pin, OCI_INDEX, &name, "3.10.1", &{
        let mut b = vec![&pushed.index];
        b.extend(pushed.arm64.blobs());
        b
    });
    assert!(!blobs.contains_key(&pushed.amd64.manifest.hex()));
    let archive = format!("oci-archive:{}", out.display());
    skopeo(&[
        "--insecure-policy",
        "--override-os",
        "linux",
        "--override-arch",
        "arm64",
        "--override-variant",
        "v8",
        "copy",
        "--quiet",
        &archive,
        &format!("oci:{}:copied", work.path().join("copied").display()),
    ]);
}

#[tokio::test]
async fn a_platform_the_index_lacks_is_an_error_naming_what_it_has() {
    let registry = RealRegistry::start();
    let amd64 = TestImage::new("linux", "amd64", None);
    let windows = TestImage::new("windows", "arm64", None);
    let index = index_of(&[&amd64, &windows]);
    let layout = tempfile::tempdir().expect("tempdir");
    let blobs: Vec<&Blob> = amd64.blobs().into_iter().chain(windows.blobs()).collect();
    write_oci_layout(layout.path(), &index, &blobs, "1.0");
    registry.push(
        layout.path(),
        "test/amd64-only",
        "1.0",
        &["--all", "--preserve-digests"],
    );
    let out = layout.path().join("out.tar");
    let err = pull(
        &registry,
        "test/amd64-only:1.0",
        &index.digest(),
        "arm64",
        &out,
    )
    .await
    .expect_err("no linux/arm64");
    match &err {
        RegistryError::NoPlatform {
            at,
            arch,
            available,
        } => {
            assert_eq!(arch, "arm64");
            assert_eq!(available, &["linux/amd64", "windows/arm64"]);
            assert_eq!(at.digest, index.digest());
            assert_eq!(at.repository, "test/amd64-only");
        }
        other => panic!("expected NoPlatform, got {other}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("no linux/arm64 manifest") && text.contains("hint:"),
        "{text}"
    );
    assert!(!out.exists(), "nothing is written on failure");
}

#[tokio::test]
async fn a_single_manifest_pin_oci_and_docker_media_types() {
    let registry = RealRegistry::start();
    let image = TestImage::new("linux", "amd64", None);
    let layout = tempfile::tempdir().expect("tempdir");
    write_oci_layout(
        layout.path(),
        &image.manifest,
        &[&image.config, &image.layer],
        "1.0",
    );
    registry.push(layout.path(), "test/single", "1.0", &["--preserve-digests"]);
    let out = layout.path().join("single.tar");
    let pin = image.manifest.digest();
    let pulled = pull(&registry, "test/single:1.0", &pin, "amd64", &out)
        .await
        .expect("pull a single manifest");
    assert_eq!(pulled.platforms, ["linux/amd64"]);
    let name = format!("{}/test/single:1.0", registry.host());
    check_layout(&out, &pin, OCI_MANIFEST, &name, "1.0", &image.blobs());
    let err = pull(&registry, "test/single:1.0", &pin, "arm64", &out)
        .await
        .expect_err("an amd64 image is not arm64");
    assert!(
        matches!(&err, RegistryError::NoPlatform { available, .. } if available == &["linux/amd64"]),
        "{err}"
    );

    // skopeo converts to Docker manifest v2 on the way in; the pull keeps the Docker media types as they are.
    registry.push(layout.path(), "test/docker", "1.0", &["--format", "v2s2"]);
    let raw = registry.raw_manifest("test/docker", "1.0");
    let doc: serde_json::Value = serde_json::from_slice(&raw).expect("json");
    let docker_manifest = "application/vnd.docker.distribution.manifest.v2+json";
    assert_eq!(doc["mediaType"], docker_manifest);
    let pin = digest_of(&raw);
    let out = layout.path().join("docker.tar");
    pull(&registry, "test/docker:1.0", &pin, "amd64", &out)
        .await
        .expect("pull a Docker v2 manifest");
    let name = format!("{}/test/docker:1.0", registry.host());
    assert_eq!(
        doc["config"]["digest"],
        image.config.digest(),
        "skopeo kept the config's bytes"
    );
    assert_eq!(
        doc["layers"][0]["digest"],
        image.layer.digest(),
        "skopeo kept the layer's bytes"
    );
    let docker = Blob {
        media_type: "application/vnd.docker.distribution.manifest.v2+json",
        bytes: raw.clone(),
    };
    check_layout(
        &out,
        &pin,
        docker_manifest,
        &name,
        "1.0",
        &[&docker, &image.config, &image.layer],
    );
    skopeo(&[
        "--insecure-policy",
        "copy",
        "--quiet",
        &format!("oci-archive:{}", out.display()),
        &format!("oci:{}:copied", layout.path().join("copied").display()),
    ]);
}

#[tokio::test]
async fn a_digest_the_repository_lacks_is_not_found() {
    let registry = RealRegistry::start();
    let pushed = push_index(&registry);
    let work = tempfile::tempdir().expect("tempdir");
    let out = work.path().join("out.tar");
    let wrong = digest_of(b"not an image");
    let err = pull(&registry, "test/pause:3.10.1", &wrong, "amd64", &out)
        .await
        .expect_err("unknown digest");
    match &err {
        RegistryError::NotFound { at, url } => {
            assert_eq!(at.digest, wrong);
            assert_eq!(at.registry, format!("http://{}", registry.host()));
            assert!(
                url.ends_with(&format!("/v2/test/pause/manifests/{wrong}")),
                "{url}"
            );
        }
        other => panic!("expected NotFound, got {other}"),
    }
    assert!(
        err.to_string()
            .contains("the digest is not in this repository"),
        "{err}"
    );
    // The right digest in another repository is not found either.
    let err = pull(
        &registry,
        "test/elsewhere:3.10.1",
        &pushed.index.digest(),
        "amd64",
        &out,
    )
    .await
    .expect_err("other repository");
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err}");
    assert!(!out.exists());
}

#[tokio::test]
async fn corrupted_registry_storage_is_a_digest_mismatch() {
    let registry = RealRegistry::start();
    let pushed = push_index(&registry);
    let pin = pushed.index.digest();
    let work = tempfile::tempdir().expect("tempdir");
    let out = work.path().join("out.tar");

    // A layer: same length, other bytes.
    let layer = registry.blob_data(&pushed.amd64.layer);
    let mut bytes = std::fs::read(&layer).expect("registry stores the layer there");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&layer, &bytes).expect("corrupt layer");
    let err = pull(&registry, "test/pause:3.10.1", &pin, "amd64", &out)
        .await
        .expect_err("corrupt layer");
    match &err {
        RegistryError::DigestMismatch { at, actual, .. } => {
            assert_eq!(at.digest, pushed.amd64.layer.digest());
            assert_eq!(at.pin, pin);
            assert_eq!(actual, &digest_of(&bytes));
        }
        other => panic!("expected DigestMismatch, got {other}"),
    }
    assert!(
        err.to_string()
            .contains("the registry served other bytes for this digest: the pin is wrong or the registry is not trustworthy"),
        "{err}"
    );
    assert!(!out.exists(), "nothing is written on failure");

    // The index itself: still valid JSON, other bytes.
    let index = registry.blob_data(&pushed.index);
    let text = std::fs::read_to_string(&index).expect("registry stores the index there");
    std::fs::write(&index, text.replace("test index", "Test index")).expect("corrupt index");
    let err = pull(&registry, "test/pause:3.10.1", &pin, "amd64", &out)
        .await
        .expect_err("corrupt index");
    match &err {
        RegistryError::DigestMismatch { at, .. } => assert_eq!(at.digest, pin),
        other => panic!("expected DigestMismatch, got {other}"),
    }
}

#[tokio::test]
async fn a_tag_or_a_malformed_digest_is_not_a_pin() {
    // No registry needed: refused before any request.
    let reference = ImageRef::parse("127.0.0.1:1/test/pause:3.10.1").expect("parses");
    let out = Path::new("/nonexistent/out.tar");
    for given in [
        "3.10.1",
        "",
        "sha256:ABC",
        &format!("sha256:{}", "A".repeat(64)),
        &format!("sha512:{}", "a".repeat(128)),
    ] {
        let err = pull_to_archive(&reference, given, "amd64", out, &opts())
            .await
            .expect_err(given);
        assert_eq!(
            err,
            RegistryError::NotPinned {
                reference: "127.0.0.1:1/test/pause:3.10.1".to_string(),
                given: given.to_string()
            }
        );
        assert!(err.to_string().contains("never by tag"), "{err}");
    }
    let pin = digest_of(b"x");
    let err = pull_to_archive(&reference, &pin, "x86_64", out, &opts())
        .await
        .expect_err("bad arch");
    assert_eq!(
        err,
        RegistryError::BadArch {
            arch: "x86_64".to_string()
        }
    );
}
