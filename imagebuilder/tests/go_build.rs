//! Go builds against the real Go toolchain and the real module proxy (no fake `go`): a CNI plugin built from
//! `github.com/containernetworking/plugins` at a pinned version, twice with separate build caches and work
//! directories (the same sha256), once more from the builder's cache (no `go` run), and the refusals: a module hash
//! that is not the pinned one, a module the proxy does not have, an offline build with an empty module cache.
//!
//! The module cache is the test cache's (`$K8S_TEST_CACHE/go/mod`, shared with the demo build: modules are
//! content-addressed and verified by Go); the first build uses the shared build cache, the second a fresh one.

use imagebuilder::fetch::FetchedFrom;
use imagebuilder::gobuild::{self, GoBuildError, GoEnv};
use imagebuilder::manifest::Manifest;
use imagebuilder::progress::Progress;
use std::path::{Path, PathBuf};

const CNI_SUM: &str = "h1:4lwzpgsn5NdIneXrag/EEfKzhNSriJc1zTxZxfdfPLQ=";

fn test_cache() -> PathBuf {
    std::env::var_os("K8S_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/k8s-image-test"))
}

fn manifest(dir: &Path, module_path: &str, version: &str, sum: &str) -> Manifest {
    let text = format!(
        r#"schema_version = 1
name = "go-test"
kubernetes_version = "1.37.2"
arch = "amd64"
source_date_epoch = 1767225600

[go]
toolchain = "go1.26.8"

[[go_module]]
name = "cni"
path = "{module_path}"
version = "{version}"
sum = "{sum}"
ldflags = ["-s", "-w"]
[go_module.x]
"github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion" = "{version}"

[[artifact]]
name = "loopback"
version = "1.10.0"
[artifact.go]
module = "cni"
package = "plugins/main/loopback"
[artifact.install]
file = "/opt/cni/bin/loopback"
"#
    );
    let path = dir.join("manifest.toml");
    std::fs::write(&path, &text).expect("write manifest");
    Manifest::parse(&path, &text).expect("the test manifest is valid")
}

fn env(cache: &Path, gocache: PathBuf, offline: bool) -> GoEnv {
    GoEnv {
        go: std::env::var_os("GO").map_or_else(gobuild::default_go, PathBuf::from),
        modcache: test_cache().join("go/mod"),
        gocache,
        root: cache.join("go"),
        offline,
    }
}

/// Builds the manifest's only artifact with a builder cache at `cache` and the shared build cache.
fn build_in(cache: &Path, m: &Manifest) -> Result<gobuild::GoBuilt, GoBuildError> {
    gobuild::build(
        &env(cache, test_cache().join("go/build"), false),
        &m.artifacts[0],
        "amd64",
        &Progress::Quiet,
    )
}

fn sha256(path: &Path) -> String {
    let file = std::fs::File::open(path).expect("open program");
    imagebuilder::checksum::digest_reader(imagebuilder::checksum::ChecksumAlgo::Sha256, file)
        .expect("hash")
        .hex
}

#[test]
fn a_cni_plugin_builds_reproducibly_and_is_cached() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let m = manifest(
        tmp.path(),
        "github.com/containernetworking/plugins",
        "v1.10.0",
        CNI_SUM,
    );
    let artifact = &m.artifacts[0];
    let progress = Progress::Quiet;

    let cache_a = tmp.path().join("a");
    let first = gobuild::build(
        &env(&cache_a, test_cache().join("go/build"), false),
        artifact,
        "amd64",
        &progress,
    )
    .expect("the first build");
    assert_eq!(first.from, FetchedFrom::Network);
    let program_a = &first.programs["loopback"];

    // Another builder cache, another work directory, a cold Go build cache: the same bytes.
    let cache_b = tmp.path().join("b");
    let second = gobuild::build(
        &env(&cache_b, tmp.path().join("gocache-b"), false),
        artifact,
        "amd64",
        &progress,
    )
    .expect("the second build");
    assert_eq!(
        sha256(program_a),
        sha256(&second.programs["loopback"]),
        "two builds of the same recipe differ"
    );

    // The same builder cache again: no go run, the kept program re-verified.
    let third = gobuild::build(
        &env(&cache_a, test_cache().join("go/build"), false),
        artifact,
        "amd64",
        &progress,
    )
    .expect("the cached build");
    assert_eq!(third.from, FetchedFrom::Cache);
    assert_eq!(third.lock, first.lock);

    // A kept program that changed is not trusted: it is built again.
    std::fs::write(program_a, b"tampered").expect("tamper");
    let fourth = gobuild::build(
        &env(&cache_a, test_cache().join("go/build"), false),
        artifact,
        "amd64",
        &progress,
    )
    .expect("the rebuild");
    assert_eq!(fourth.from, FetchedFrom::Network);
    assert_eq!(
        sha256(&fourth.programs["loopback"]),
        sha256(&second.programs["loopback"])
    );

    // The lock says what went in.
    let lock = &first.lock;
    assert_eq!(lock.module, "github.com/containernetworking/plugins");
    assert_eq!(lock.sum, CNI_SUM);
    assert_eq!(lock.go_version, "go1.26.8");
    assert_eq!(lock.target, "linux/amd64");
    assert!(!lock.cgo_enabled);
    assert!(
        lock.flags.iter().any(|f| f == "-trimpath"),
        "{:?}",
        lock.flags
    );
    assert!(
        lock.deps
            .iter()
            .any(|d| d.path == "github.com/containernetworking/cni" && d.sum.is_some()),
        "{:?}",
        lock.deps
    );

    // The real program, stamped: a CNI plugin run without CNI_COMMAND names its version.
    let out = std::process::Command::new(&fourth.programs["loopback"])
        .env_remove("CNI_COMMAND")
        .output()
        .expect("run loopback");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("v1.10.0"), "{text}");
}

#[test]
fn a_module_hash_other_than_the_pin_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let wrong = "h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let m = manifest(
        tmp.path(),
        "github.com/containernetworking/plugins",
        "v1.10.0",
        wrong,
    );
    let err = build_in(tmp.path(), &m).expect_err("a wrong sum must stop the build");
    match &err {
        GoBuildError::SumMismatch { want, got, .. } => {
            assert_eq!(want, wrong);
            assert_eq!(got, CNI_SUM);
        }
        other => panic!("expected SumMismatch, got {other}"),
    }
    assert!(
        !tmp.path().join("go/bin").exists()
            || std::fs::read_dir(tmp.path().join("go/bin"))
                .map(|d| d.count())
                .unwrap_or(0)
                == 0
    );
}

#[test]
fn a_module_the_proxy_does_not_serve_is_named_with_its_refusal() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let m = manifest(
        tmp.path(),
        "k8s-image.invalid/no-such-module",
        "v1.0.0",
        CNI_SUM,
    );
    let err = build_in(tmp.path(), &m).expect_err("a module nobody serves must stop the build");
    let text = err.to_string();
    assert!(matches!(err, GoBuildError::Download { .. }), "{text}");
    assert!(
        text.contains("k8s-image.invalid/no-such-module@v1.0.0"),
        "{text}"
    );
}

#[test]
fn an_offline_build_without_the_modules_says_to_fetch_first() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let m = manifest(
        tmp.path(),
        "github.com/containernetworking/plugins",
        "v1.10.0",
        CNI_SUM,
    );
    let mut offline = env(tmp.path(), tmp.path().join("gocache"), true);
    offline.modcache = tmp.path().join("empty-modcache");
    let err = gobuild::build(&offline, &m.artifacts[0], "amd64", &Progress::Quiet)
        .expect_err("nothing to build from offline");
    let text = err.to_string();
    assert!(text.contains("imagebuilder fetch"), "{text}");
}

#[test]
fn fetch_fills_the_module_cache_so_an_offline_build_needs_no_proxy() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let m = manifest(
        tmp.path(),
        "github.com/containernetworking/plugins",
        "v1.10.0",
        CNI_SUM,
    );
    let artifact = &m.artifacts[0];
    // An empty module cache of its own, filled by `imagebuilder fetch`'s step (the proxy answers).
    let mut online = env(tmp.path(), test_cache().join("go/build"), false);
    online.modcache = tmp.path().join("modcache");
    gobuild::prefetch(&online, artifact, "amd64", &Progress::Quiet).expect("prefetch");
    // The same caches with GOPROXY=off: built from the module cache alone.
    let mut offline = online.clone();
    offline.offline = true;
    let built =
        gobuild::build(&offline, artifact, "amd64", &Progress::Quiet).expect("offline build");
    assert_eq!(built.from, FetchedFrom::Network, "built (not found built)");
    assert_eq!(built.lock.sum, CNI_SUM);
}

#[test]
fn a_go_program_is_packed_into_an_image_whose_digest_is_pinned() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let text = |digest: &str| {
        format!(
            r#"schema_version = 1
name = "go-image-test"
kubernetes_version = "1.37.2"
arch = "amd64"
source_date_epoch = 1767225600

[go]
toolchain = "go1.26.8"

[[go_module]]
name = "cni"
path = "github.com/containernetworking/plugins"
version = "v1.10.0"
sum = "{CNI_SUM}"
ldflags = ["-s", "-w"]

[[artifact]]
name = "loopback"
version = "1.10.0"
go = {{ module = "cni", package = "plugins/main/loopback" }}
[artifact.install]
image = "localhost/test/loopback:1.10.0"
manifest_digest = "{digest}"
"#
        )
    };
    let path = tmp.path().join("manifest.toml");
    let wrong = format!("sha256:{}", "0".repeat(64));
    let m = Manifest::parse(&path, &text(&wrong)).expect("an image of a Go program is valid");
    let artifact = &m.artifacts[0];
    assert_eq!(
        artifact.install.target_paths(),
        ["/usr/share/k8s-image/images/loopback.tar"]
    );
    let built = build_in(&tmp.path().join("cache"), &m).expect("the build");
    let err = imagebuilder::pack_go_image(
        artifact,
        &built,
        "localhost/test/loopback:1.10.0",
        &wrong,
        "amd64",
        1767225600,
    )
    .expect_err("a wrong pin");
    let message = err.to_string();
    assert!(
        message.contains(&format!("the manifest pins {wrong}")),
        "{message}"
    );
    let actual = message
        .split("has manifest digest ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .expect("the error names the digest")
        .to_string();

    let pack = || {
        imagebuilder::pack_go_image(
            artifact,
            &built,
            "localhost/test/loopback:1.10.0",
            &actual,
            "amd64",
            1767225600,
        )
        .expect("the pinned digest")
    };
    let (one, two) = (pack(), pack());
    assert_eq!(
        sha256(one.path()),
        sha256(two.path()),
        "the same program packs to the same bytes"
    );
    let image = imagebuilder::oci::verify_image_archive(one.path(), &actual, "amd64")
        .expect("a valid OCI archive with the pinned digest");
    assert_eq!(image.ref_names[0], "localhost/test/loopback:1.10.0");

    assert!(
        Manifest::parse(
            &path,
            &text(&actual).replace(
                "package = \"plugins/main/loopback\"",
                "packages = [\"plugins/main/loopback\"]"
            )
        )
        .is_err(),
        "an image packs one program: `packages` is refused"
    );
}
