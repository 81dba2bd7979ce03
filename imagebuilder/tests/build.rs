//! End-to-end tests of `imagebuilder build` through the real fetch path: a real HTTP server on loopback serving
//! fixture artifacts, the repository's real node content, and the real checks on the staged tree.
//!
//! Covered: success, checksum mismatch, 404, truncated body, a stalling server (timeout), an endless body (cut off
//! at the size limit) and an endless checksum file, an unreachable host,
//! double build → identical sha256, the golden listing of the layer, offline builds, a corrupt cache entry, and a
//! failing check. Every failure case asserts the output directory holds no file and the cache holds no blob for
//! the bad download.

#![allow(clippy::result_large_err)] // the library's error type, returned as is

mod support;

use imagebuilder::fetch::{FetchError, FetchOptions};
use imagebuilder::progress::Progress;
use imagebuilder::{BuildError, BuildOptions, build};
use std::io::Read;
use std::path::Path;
use std::time::Duration;
use support::*;

struct Setup {
    dir: tempfile::TempDir,
    server: HttpFixtureServer,
    fixtures: Fixtures,
}

impl Setup {
    fn new() -> Setup {
        let server = HttpFixtureServer::start();
        let fixtures = Fixtures::new();
        fixtures.serve(&server);
        Setup {
            dir: tempfile::tempdir().expect("tempdir"),
            server,
            fixtures,
        }
    }

    fn write_manifest(&self, text: &str) -> std::path::PathBuf {
        let path = self.dir.path().join("image.toml");
        std::fs::write(&path, text).expect("write manifest");
        path
    }

    fn opts(&self, manifest: &Path, out: &str, cache: &str) -> BuildOptions {
        BuildOptions {
            manifest: manifest.to_path_buf(),
            out_dir: self.dir.path().join(out),
            content_dir: repo_root(),
            agent_bin: agent_double(self.dir.path()),
            fetch: FetchOptions {
                cache_dir: self.dir.path().join(cache),
                offline: false,
                attempts: 2,
                timeout: Duration::from_secs(2),
                retry_delay: Duration::from_millis(10),
                plain_http_registries: false,
                max_artifact_bytes: 64 << 20,
            },
            source_date_epoch_env: None,
        }
    }
}

fn run(opts: &BuildOptions) -> Result<imagebuilder::BuildReport, BuildError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(build(opts, &Progress::Quiet))
}

fn assert_no_output(opts: &BuildOptions) {
    let left = walk_files(&opts.out_dir);
    assert!(
        left.is_empty(),
        "failed build left files in the output dir: {left:?}"
    );
}

fn blobs(opts: &BuildOptions) -> Vec<String> {
    walk_files(&opts.fetch.cache_dir.join("blobs"))
}

#[test]
fn builds_layer_sbom_and_lock_from_http() {
    let s = Setup::new();
    let manifest = s.write_manifest(&s.fixtures.manifest(&s.server));
    let opts = s.opts(&manifest, "out", "cache");
    let report = run(&opts).expect("build succeeds");
    assert_eq!(
        dir_names(&opts.out_dir),
        vec![
            "layer.tar.gz",
            "layer.tar.gz.sha256",
            "lock.json",
            "sbom.spdx.json"
        ]
    );
    let layer = std::fs::read(&report.layer).expect("layer");
    assert_eq!(sha256(&layer), report.layer_sha256);
    let sidecar =
        std::fs::read_to_string(opts.out_dir.join("layer.tar.gz.sha256")).expect("sidecar");
    assert_eq!(sidecar, format!("{}  layer.tar.gz\n", report.layer_sha256));
    assert!(report.standins.is_empty());

    let lock: k8s_core::image_info::ImageLock =
        serde_json::from_slice(&std::fs::read(opts.out_dir.join("lock.json")).expect("lock"))
            .expect("lock json");
    let cni = lock
        .artifacts
        .iter()
        .find(|a| a.name == "cni-plugins")
        .expect("cni in lock");
    assert_eq!(
        cni.checksum,
        format!("sha256:{}", sha256(&s.fixtures.cni_tgz))
    );
    assert_eq!(
        cni.checksum_source,
        s.server.url("/cni/cni-plugins.tgz.sha256")
    );
    let paths: Vec<&str> = cni.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, vec!["/opt/cni/bin/bridge", "/opt/cni/bin/loopback"]);

    let sbom: serde_json::Value =
        serde_json::from_slice(&std::fs::read(opts.out_dir.join("sbom.spdx.json")).expect("sbom"))
            .expect("json");
    assert_eq!(sbom["spdxVersion"], "SPDX-2.3");
    assert_eq!(sbom["creationInfo"]["created"], "2026-01-01T00:00:00Z");
    let kubelet = sbom["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .find(|p| p["name"] == "kubelet")
        .expect("kubelet package");
    assert_eq!(kubelet["versionInfo"], "1.35.0");
    assert_eq!(kubelet["downloadLocation"], s.server.url("/bin/kubelet"));
    assert_eq!(
        kubelet["checksums"][0]["checksumValue"],
        sha256(&s.fixtures.kubelet)
    );

    // The lock and SBOM inside the layer are the same bytes as beside it.
    let inside = layer_file(&layer, "usr/share/k8s-image/sbom.spdx.json");
    assert_eq!(
        inside,
        std::fs::read(opts.out_dir.join("sbom.spdx.json")).expect("sbom")
    );
    let inside = layer_file(&layer, "usr/share/k8s-image/lock.json");
    assert_eq!(
        inside,
        std::fs::read(opts.out_dir.join("lock.json")).expect("lock")
    );
}

fn layer_file(layer: &[u8], wanted: &str) -> Vec<u8> {
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(layer));
    for entry in tar.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        if entry.path().expect("path").to_str() == Some(wanted) {
            let mut buf = Vec::new();
            entry.read_to_end(&mut buf).expect("read");
            return buf;
        }
    }
    panic!("{wanted} not in layer");
}

/// `tar tv`-like listing: mode, uid/gid, owner names, mtime, type, path (and link target). No sizes or digests of
/// node content, so the golden file changes only when the set of paths or their metadata change.
fn listing(layer: &[u8]) -> String {
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(layer));
    let mut out = String::new();
    for entry in tar.entries().expect("entries") {
        let entry = entry.expect("entry");
        let h = entry.header();
        let kind = match h.entry_type() {
            tar::EntryType::Directory => 'd',
            tar::EntryType::Symlink => 'l',
            tar::EntryType::Regular => '-',
            other => panic!("unexpected entry type {other:?}"),
        };
        let link = entry
            .link_name()
            .expect("link")
            .map(|l| format!(" -> {}", l.display()))
            .unwrap_or_default();
        out.push_str(&format!(
            "{kind} {:04o} {}/{} {}:{} {} {}{link}\n",
            h.mode().expect("mode"),
            h.uid().expect("uid"),
            h.gid().expect("gid"),
            h.username().ok().flatten().unwrap_or(""),
            h.groupname().ok().flatten().unwrap_or(""),
            h.mtime().expect("mtime"),
            entry.path().expect("path").display(),
        ));
    }
    out
}

#[test]
fn double_build_is_byte_identical_and_matches_golden_listing() {
    let s = Setup::new();
    let manifest = s.write_manifest(&s.fixtures.manifest(&s.server));
    // Two builds with separate caches (both cold) and a third with a warm cache.
    let first = run(&s.opts(&manifest, "out1", "cache1")).expect("first build");
    let second = run(&s.opts(&manifest, "out2", "cache2")).expect("second build");
    let warm = run(&s.opts(&manifest, "out3", "cache1")).expect("warm build");
    assert_eq!(first.layer_sha256, second.layer_sha256);
    assert_eq!(first.layer_sha256, warm.layer_sha256);
    assert_eq!(warm.fetched_from_network, 0);
    eprintln!(
        "double build sha256: {} / {}",
        first.layer_sha256, second.layer_sha256
    );

    let text = listing(&std::fs::read(&first.layer).expect("layer"));
    let golden_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/layer-listing.txt");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden_path, &text).expect("write golden");
    }
    let golden = std::fs::read_to_string(&golden_path).unwrap_or_default();
    assert_eq!(
        text,
        golden,
        "layer listing differs from {} (run with UPDATE_GOLDEN=1 to accept)",
        golden_path.display()
    );
}

#[test]
fn source_date_epoch_env_overrides_manifest_and_changes_the_layer() {
    let s = Setup::new();
    let manifest = s.write_manifest(&s.fixtures.manifest(&s.server));
    let a = run(&s.opts(&manifest, "a", "cache")).expect("build a");
    let mut opts = s.opts(&manifest, "b", "cache");
    opts.source_date_epoch_env = Some("1700000000".to_string());
    let b = run(&opts).expect("build b");
    assert_ne!(a.layer_sha256, b.layer_sha256);
    let layer = std::fs::read(&b.layer).expect("layer");
    assert!(listing(&layer).lines().all(|l| l.contains(" 1700000000 ")));

    let mut opts = s.opts(&manifest, "c", "cache");
    opts.source_date_epoch_env = Some("yesterday".to_string());
    let err = run(&opts).expect_err("bad SOURCE_DATE_EPOCH");
    assert!(
        matches!(err, BuildError::BadSourceDateEpoch(ref v) if v == "yesterday"),
        "{err}"
    );
    assert_no_output(&opts);
}

#[test]
fn checksum_mismatch_fails_without_output_or_cache_entry() {
    let s = Setup::new();
    let text = s
        .fixtures
        .manifest(&s.server)
        .replace(&sha256(&s.fixtures.kubelet), &"ab".repeat(32));
    let manifest = s.write_manifest(&text);
    let opts = s.opts(&manifest, "out", "cache");
    let err = run(&opts).expect_err("mismatch must fail");
    match &err {
        BuildError::Fetch(FetchError::Mismatch {
            url,
            expected,
            actual,
            ..
        }) => {
            assert_eq!(url.as_str(), s.server.url("/bin/kubelet"));
            assert_eq!(expected.hex, "ab".repeat(32));
            assert_eq!(actual.hex, sha256(&s.fixtures.kubelet));
        }
        other => panic!("expected a checksum mismatch, got: {other}"),
    }
    assert!(err.to_string().contains("hint:"), "{err}");
    assert_eq!(
        s.server.hits("/bin/kubelet"),
        1,
        "a mismatch is not retried"
    );
    assert_no_output(&opts);
    assert!(
        !blobs(&opts).iter().any(|b| b.contains(&"ab".repeat(32))),
        "{:?}",
        blobs(&opts)
    );
    assert!(
        walk_files(&opts.fetch.cache_dir.join("tmp")).is_empty(),
        "temp download left behind"
    );
}

#[test]
fn not_found_is_reported_with_the_url_and_not_retried() {
    let s = Setup::new();
    s.server.route("/bin/kubelet", Route::Status(404));
    let manifest = s.write_manifest(&s.fixtures.manifest(&s.server));
    let opts = s.opts(&manifest, "out", "cache");
    let err = run(&opts).expect_err("404 must fail");
    assert!(
        matches!(&err, BuildError::Fetch(FetchError::HttpStatus { status: 404, url, .. }) if url.as_str() == s.server.url("/bin/kubelet")),
        "{err}"
    );
    assert_eq!(s.server.hits("/bin/kubelet"), 1);
    assert_no_output(&opts);
}

#[test]
fn server_error_is_retried_then_reported() {
    let s = Setup::new();
    s.server.route("/bin/kubelet", Route::Status(503));
    let manifest = s.write_manifest(&s.fixtures.manifest(&s.server));
    let opts = s.opts(&manifest, "out", "cache");
    let err = run(&opts).expect_err("503 must fail");
    assert!(
        matches!(
            &err,
            BuildError::Fetch(FetchError::HttpStatus { status: 503, .. })
        ),
        "{err}"
    );
    assert_eq!(s.server.hits("/bin/kubelet"), 2, "attempts = 2");
    assert_no_output(&opts);
}

#[test]
fn truncated_body_fails_without_output_or_cache_entry() {
    let s = Setup::new();
    s.server.route(
        "/bin/kubelet",
        Route::Truncated {
            body: s.fixtures.kubelet.clone(),
            sent: 100,
        },
    );
    let manifest = s.write_manifest(&s.fixtures.manifest(&s.server));
    let opts = s.opts(&manifest, "out", "cache");
    let err = run(&opts).expect_err("truncated must fail");
    assert!(
        matches!(
            &err,
            BuildError::Fetch(FetchError::Truncated { attempts: 2, .. })
        ),
        "{err}"
    );
    assert_eq!(
        s.server.hits("/bin/kubelet"),
        2,
        "truncation is retried once"
    );
    assert_no_output(&opts);
    assert!(!blobs(&opts).contains(&format!("sha256/{}", sha256(&s.fixtures.kubelet))));
    assert!(
        walk_files(&opts.fetch.cache_dir.join("tmp")).is_empty(),
        "temp download left behind"
    );
}

#[test]
fn stalling_server_times_out() {
    let s = Setup::new();
    s.server.route("/bin/kubelet", Route::Stall);
    let manifest = s.write_manifest(&s.fixtures.manifest(&s.server));
    let mut opts = s.opts(&manifest, "out", "cache");
    opts.fetch.timeout = Duration::from_secs(1);
    opts.fetch.attempts = 1;
    let started = std::time::Instant::now();
    let err = run(&opts).expect_err("stall must fail");
    assert!(
        matches!(&err, BuildError::Fetch(FetchError::Timeout { secs: 1, .. })),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the timeout bounds the wait"
    );
    assert_no_output(&opts);
}

#[test]
fn an_endless_body_is_cut_off_at_the_limit_and_nothing_is_kept() {
    let s = Setup::new();
    s.server.route("/bin/kubelet", Route::Endless);
    let manifest = s.write_manifest(&s.fixtures.manifest(&s.server));
    let opts = s.opts(&manifest, "out", "cache");
    let err = run(&opts).expect_err("an endless artifact must fail");
    assert!(
        matches!(&err, BuildError::Fetch(FetchError::TooLarge { limit, .. }) if *limit == 64 << 20),
        "{err}"
    );
    assert!(
        err.to_string().contains("larger than 67108864 bytes"),
        "{err}"
    );
    assert_no_output(&opts);
    assert!(
        walk_files(&opts.fetch.cache_dir.join("tmp")).is_empty(),
        "temp download left behind"
    );
}

#[test]
fn a_huge_checksum_file_is_refused_without_reading_it_whole() {
    let s = Setup::new();
    s.server
        .route("/cni/cni-plugins.tgz.sha256", Route::Endless);
    let manifest = s.write_manifest(&s.fixtures.manifest(&s.server));
    let opts = s.opts(&manifest, "out", "cache");
    let err = run(&opts).expect_err("an endless checksum file must fail");
    assert!(
        matches!(&err, BuildError::Fetch(FetchError::BadChecksumFile { .. })),
        "{err}"
    );
    assert!(
        err.to_string().contains("larger than 1048576 bytes"),
        "{err}"
    );
    assert_no_output(&opts);
}

#[test]
fn unreachable_host_is_a_connect_error() {
    let s = Setup::new();
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let text = s
        .fixtures
        .manifest(&s.server)
        .replace(&s.server.url("/"), &format!("http://127.0.0.1:{port}/"));
    let manifest = s.write_manifest(&text);
    let opts = s.opts(&manifest, "out", "cache");
    let err = run(&opts).expect_err("refused must fail");
    assert!(
        matches!(&err, BuildError::Fetch(FetchError::Connect { .. })),
        "{err}"
    );
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    assert_no_output(&opts);
}

#[test]
fn offline_build_uses_only_the_cache_and_names_every_missing_item() {
    let s = Setup::new();
    let manifest = s.write_manifest(&s.fixtures.manifest(&s.server));
    let mut opts = s.opts(&manifest, "out", "cache");
    opts.fetch.offline = true;
    let err = run(&opts).expect_err("empty cache offline");
    match &err {
        BuildError::Fetch(FetchError::OfflineMissing { missing }) => {
            assert_eq!(missing.len(), 2, "{missing:?}");
            assert!(
                missing.iter().any(|m| m.starts_with("kubelet 1.35.0")),
                "{missing:?}"
            );
            assert!(
                missing.iter().any(|m| m.contains("cni-plugins.tgz.sha256")),
                "{missing:?}"
            );
        }
        other => panic!("expected OfflineMissing, got {other}"),
    }
    assert_eq!(
        s.server.hits("/bin/kubelet"),
        0,
        "offline touches no network"
    );
    assert_no_output(&opts);

    let online = run(&s.opts(&manifest, "online", "cache")).expect("online build fills the cache");
    let hits = s.server.hits("/bin/kubelet");
    let offline = run(&opts).expect("offline build from cache");
    assert_eq!(online.layer_sha256, offline.layer_sha256);
    assert_eq!(
        s.server.hits("/bin/kubelet"),
        hits,
        "offline build made a request"
    );
}

#[test]
fn corrupt_cache_entry_is_replaced() {
    let s = Setup::new();
    let manifest = s.write_manifest(&s.fixtures.manifest(&s.server));
    let opts = s.opts(&manifest, "out", "cache");
    let first = run(&opts).expect("first build");
    let blob = opts
        .fetch
        .cache_dir
        .join("blobs/sha256")
        .join(sha256(&s.fixtures.kubelet));
    std::fs::write(&blob, b"bit rot").expect("corrupt the blob");
    let second = run(&s.opts(&manifest, "out2", "cache")).expect("second build refetches");
    assert_eq!(first.layer_sha256, second.layer_sha256);
    assert_eq!(second.fetched_from_network, 1);
    assert_eq!(std::fs::read(&blob).expect("blob"), s.fixtures.kubelet);
}

#[test]
fn missing_archive_member_is_named() {
    let s = Setup::new();
    let text = s
        .fixtures
        .manifest(&s.server)
        .replace("\"./bridge\"", "\"./portmap\"");
    let manifest = s.write_manifest(&text);
    let opts = s.opts(&manifest, "out", "cache");
    let err = run(&opts).expect_err("missing member");
    let msg = err.to_string();
    assert!(
        msg.contains("member \"./portmap\" is not in the archive"),
        "{msg}"
    );
    assert!(
        msg.contains("loopback"),
        "lists what the archive has: {msg}"
    );
    assert_no_output(&opts);
}

#[test]
fn failing_check_stops_the_build_without_output() {
    let s = Setup::new();
    // No ./loopback → the cni-loopback rule fails on the staged tree.
    let text = s
        .fixtures
        .manifest(&s.server)
        .replace("\"./loopback\", ", "");
    let manifest = s.write_manifest(&text);
    let opts = s.opts(&manifest, "out", "cache");
    let err = run(&opts).expect_err("check must fail");
    let msg = err.to_string();
    assert!(matches!(err, BuildError::Checks(_)), "{msg}");
    assert!(msg.contains("/opt/cni/bin/loopback"), "{msg}");
    assert_no_output(&opts);
}

#[test]
fn file_urls_go_through_the_same_verification() {
    let s = Setup::new();
    let artifacts = s.dir.path().join("artifacts");
    std::fs::create_dir_all(artifacts.join("bin")).expect("mkdir");
    std::fs::create_dir_all(artifacts.join("cni")).expect("mkdir");
    std::fs::write(artifacts.join("bin/kubelet"), &s.fixtures.kubelet).expect("write");
    std::fs::write(artifacts.join("cni/cni-plugins.tgz"), &s.fixtures.cni_tgz).expect("write");
    std::fs::write(
        artifacts.join("cni/cni-plugins.tgz.sha256"),
        format!("{}  cni-plugins.tgz\n", sha256(&s.fixtures.cni_tgz)),
    )
    .expect("write");
    // A relative base_url is resolved against the manifest's directory.
    let http = run(&s.opts(
        &s.write_manifest(&s.fixtures.manifest(&s.server)),
        "http",
        "c1",
    ))
    .expect("http");
    let text = s
        .fixtures
        .manifest(&s.server)
        .replace(&s.server.url("/"), "artifacts/");
    let manifest = s.write_manifest(&text);
    let file = run(&s.opts(&manifest, "file", "c2")).expect("file:// build");
    assert_ne!(
        http.layer_sha256, file.layer_sha256,
        "the lock records different URLs"
    );

    std::fs::write(artifacts.join("bin/kubelet"), b"tampered").expect("tamper");
    let opts = s.opts(&manifest, "tampered", "c3");
    let err = run(&opts).expect_err("tampered file");
    assert!(
        matches!(&err, BuildError::Fetch(FetchError::Mismatch { .. })),
        "{err}"
    );
    assert_no_output(&opts);
}

#[test]
fn replace_content_swaps_one_node_content_file_and_must_match_one() {
    let s = Setup::new();
    let config = b"version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd]\n  snapshotter = \"overlayfs\"\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n  SystemdCgroup = true\n".to_vec();
    s.server
        .route("/etc/config-v2.toml", Route::Body(config.clone()));
    let extra = |path: &str| {
        format!(
            "\n[[artifact]]\nname = \"containerd-config\"\nversion = \"v2\"\nurl = \"etc/config-v2.toml\"\nsha256 = \"{}\"\n[artifact.install]\nfile = \"{path}\"\nmode = \"0644\"\nreplace_content = true\n",
            sha256(&config)
        )
    };
    let manifest =
        s.write_manifest(&(s.fixtures.manifest(&s.server) + &extra("/etc/containerd/config.toml")));
    let report = run(&s.opts(&manifest, "out", "cache")).expect("build with a replaced config");
    let layer = std::fs::read(&report.layer).expect("layer");
    assert_eq!(layer_file(&layer, "etc/containerd/config.toml"), config);

    // Without replace_content the same path is a collision with the node content.
    let text = s.fixtures.manifest(&s.server)
        + &extra("/etc/containerd/config.toml").replace("replace_content = true\n", "");
    let opts = s.opts(&s.write_manifest(&text), "collide", "cache");
    let err = run(&opts).expect_err("collision");
    assert!(
        err.to_string()
            .contains("/etc/containerd/config.toml would be installed twice"),
        "{err}"
    );
    assert_no_output(&opts);

    // replace_content for a path the node content does not have is a mistake, not a silent add.
    let text = s.fixtures.manifest(&s.server) + &extra("/etc/containerd/other.toml");
    let opts = s.opts(&s.write_manifest(&text), "nothing", "cache");
    let err = run(&opts).expect_err("nothing to replace");
    assert!(
        err.to_string()
            .contains("has no /etc/containerd/other.toml to replace"),
        "{err}"
    );
    assert_no_output(&opts);
}

#[test]
fn an_updated_checksum_file_is_fetched_again_online() {
    let s = Setup::new();
    let manifest = s.write_manifest(&s.fixtures.manifest(&s.server));
    run(&s.opts(&manifest, "one", "cache")).expect("first build");
    // The release's checksum file gains a line (e.g. a re-published SHA256SUMS); the cached copy must not hide it.
    let extra = "0".repeat(64);
    s.server.route(
        "/cni/cni-plugins.tgz.sha256",
        Route::Body(
            format!(
                "{extra}  other.tgz\n{}  cni-plugins.tgz\n",
                sha256(&s.fixtures.cni_tgz)
            )
            .into_bytes(),
        ),
    );
    let hits = s.server.hits("/cni/cni-plugins.tgz.sha256");
    run(&s.opts(&manifest, "two", "cache")).expect("second build");
    assert_eq!(
        s.server.hits("/cni/cni-plugins.tgz.sha256"),
        hits + 1,
        "online builds fetch checksum files"
    );
}

#[test]
fn the_checkout_directory_does_not_change_the_layer() {
    let s = Setup::new();
    let mut shas = Vec::new();
    for checkout in ["checkout-alpha/deep", "checkout-beta"] {
        let root = s.dir.path().join(checkout);
        for (path, bytes) in [
            ("artifacts/bin/kubelet", s.fixtures.kubelet.clone()),
            ("artifacts/cni/cni-plugins.tgz", s.fixtures.cni_tgz.clone()),
            (
                "artifacts/cni/cni-plugins.tgz.sha256",
                format!("{}  cni-plugins.tgz\n", sha256(&s.fixtures.cni_tgz)).into_bytes(),
            ),
        ] {
            let p = root.join(path);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(&p, bytes).expect("write");
        }
        let manifest = root.join("manifests/image.toml");
        std::fs::create_dir_all(manifest.parent().expect("parent")).expect("mkdir");
        let text = s
            .fixtures
            .manifest(&s.server)
            .replace(&s.server.url("/"), "../artifacts/");
        std::fs::write(&manifest, text).expect("manifest");
        let out = format!("{checkout}-out");
        let report = run(&s.opts(&manifest, &out, "cache")).expect("build");
        let lock =
            std::fs::read_to_string(s.dir.path().join(&out).join("lock.json")).expect("lock");
        assert!(
            !lock.contains(checkout),
            "the lock names the checkout: {lock}"
        );
        shas.push(report.layer_sha256);
    }
    assert_eq!(shas[0], shas[1]);
}

/// A small tmpfs mounted for the test and unmounted on drop (root only).
struct SmallTmpfs(std::path::PathBuf);

impl SmallTmpfs {
    fn mount(path: std::path::PathBuf, size: &str) -> Option<SmallTmpfs> {
        std::fs::create_dir_all(&path).expect("mkdir");
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(SmallTmpfs(path))
    }
}

impl Drop for SmallTmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_leaves_no_output_and_no_cache_entry() {
    let s = Setup::new();
    let manifest = s.write_manifest(&s.fixtures.manifest(&s.server));
    // Full cache: the download cannot be written.
    let Some(cache) = SmallTmpfs::mount(s.dir.path().join("tiny-cache"), "8k") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs as root and can mount a tmpfs"
        );
        eprintln!("skipped: cannot mount a tmpfs (needs root)");
        return;
    };
    let mut opts = s.opts(&manifest, "out", "unused");
    opts.fetch.cache_dir = cache.0.clone();
    let err = run(&opts).expect_err("a full cache must fail");
    assert!(
        matches!(&err, BuildError::Fetch(FetchError::Cache { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("No space left on device"), "{err}");
    assert_no_output(&opts);
    // What fitted is a verified entry; what did not is absent (never a truncated blob under a digest's name).
    for blob in walk_files(&cache.0.join("blobs")) {
        let bytes = std::fs::read(cache.0.join("blobs").join(&blob)).expect("blob");
        assert_eq!(
            format!("sha256/{}", sha256(&bytes)),
            blob,
            "a cache entry does not match its name"
        );
    }
    assert!(
        walk_files(&cache.0.join("tmp")).is_empty(),
        "temp download left behind"
    );

    // Full output directory: the cache fills, the layer cannot be written; nothing is left in the output.
    let out = SmallTmpfs::mount(s.dir.path().join("tiny-out"), "16k").expect("second tmpfs");
    let mut opts = s.opts(&manifest, "unused-out", "cache");
    opts.out_dir = out.0.clone();
    let err = run(&opts).expect_err("a full output directory must fail");
    assert!(err.to_string().contains("No space left on device"), "{err}");
    assert_no_output(&opts);
}

#[test]
fn outputs_are_world_readable() {
    use std::os::unix::fs::PermissionsExt;
    let s = Setup::new();
    let manifest = s.write_manifest(&s.fixtures.manifest(&s.server));
    let opts = s.opts(&manifest, "out", "cache");
    run(&opts).expect("build");
    for name in dir_names(&opts.out_dir) {
        let mode = std::fs::metadata(opts.out_dir.join(&name))
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o644, "{name} has mode {mode:o}");
    }
}

/// A one-file OCI image archive (written by the project's own writer) and its manifest digest.
fn pause_archive() -> (Vec<u8>, String) {
    let spec = imagebuilder::oci::OciImageSpec {
        files: vec![imagebuilder::oci::ImageFile {
            path: "/pause".into(),
            // Incompressible, so the layer blob is large enough to corrupt in its middle.
            contents: (0u32..40_000)
                .flat_map(|i| i.wrapping_mul(2_654_435_761).to_le_bytes())
                .collect(),
            mode: 0o755,
        }],
        entrypoint: vec!["/pause".into()],
        ref_name: "registry.k8s.io/pause:3.10.1".into(),
        arch: "amd64".into(),
        created_unix: 1_767_225_600,
        ..Default::default()
    };
    let mut bytes = Vec::new();
    let digest = imagebuilder::oci::write_oci_archive(&spec, &mut bytes).expect("write image");
    (bytes, digest)
}

/// The fixture manifest plus the image archive served at /images/pause.tar (pinned by its sha256, so the
/// download itself always verifies: what is wrong is inside the archive).
fn manifest_with_image(s: &Setup, archive: &[u8], manifest_digest: &str) -> std::path::PathBuf {
    s.server
        .route("/images/pause.tar", Route::Body(archive.to_vec()));
    let text = format!(
        "{}\n[[artifact]]\nname = \"pause\"\nversion = \"3.10.1\"\nurl = \"images/pause.tar\"\nsha256 = \"{}\"\n\
         [artifact.install]\nimage = \"registry.k8s.io/pause:3.10.1\"\nmanifest_digest = \"{manifest_digest}\"\n",
        s.fixtures.manifest(&s.server),
        sha256(archive)
    );
    s.write_manifest(&text)
}

#[test]
fn an_image_archive_is_verified_baked_and_locked() {
    let s = Setup::new();
    let (archive, digest) = pause_archive();
    let manifest = manifest_with_image(&s, &archive, &digest);
    let opts = s.opts(&manifest, "out", "cache");
    let report = run(&opts).expect("build with an image");
    let layer = std::fs::read(&report.layer).expect("layer");
    assert_eq!(
        layer_file(&layer, "usr/share/k8s-image/images/pause.tar"),
        archive,
        "the archive is baked byte for byte"
    );
    let lock: k8s_core::image_info::ImageLock =
        serde_json::from_slice(&std::fs::read(opts.out_dir.join("lock.json")).expect("lock"))
            .expect("lock json");
    let images = lock.images();
    assert_eq!(images.len(), 1);
    let (artifact, image) = images[0];
    assert_eq!(artifact.name, "pause");
    assert_eq!(image.reference, "registry.k8s.io/pause:3.10.1");
    assert_eq!(image.manifest_digest, digest);
    assert_eq!(image.archive, "/usr/share/k8s-image/images/pause.tar");
    assert_eq!(image.platforms, vec!["linux/amd64".to_string()]);
}

#[test]
fn a_corrupt_image_archive_is_refused_at_build_naming_the_blob() {
    let s = Setup::new();
    let (mut archive, digest) = pause_archive();
    // The largest blob is the layer: flip one byte in its middle (the tar stays well-formed).
    let (offset, size, member) = {
        let mut tar = tar::Archive::new(archive.as_slice());
        tar.entries()
            .expect("entries")
            .map(|e| e.expect("entry"))
            .filter(|e| e.path().expect("path").starts_with("blobs/sha256"))
            .map(|e| {
                let path = e.path().expect("path").to_string_lossy().into_owned();
                (e.raw_file_position() as usize, e.size() as usize, path)
            })
            .max_by_key(|(_, size, _)| *size)
            .expect("a blob")
    };
    assert!(size > 10_000, "the layer blob is {size} bytes");
    archive[offset + size / 2] ^= 0xff;
    let manifest = manifest_with_image(&s, &archive, &digest);
    let opts = s.opts(&manifest, "out", "cache");
    let err = run(&opts).expect_err("a corrupt layer blob");
    assert!(matches!(err, BuildError::Image { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("artifact \"pause\""), "{msg}");
    assert!(
        msg.contains("images/pause.tar"),
        "names the archive's URL: {msg}"
    );
    assert!(msg.contains(&member), "names the member {member}: {msg}");
    assert_no_output(&opts);
}

#[test]
fn an_image_archive_with_another_manifest_digest_is_refused() {
    let s = Setup::new();
    let (archive, digest) = pause_archive();
    let pinned = format!("sha256:{}", "ab".repeat(32));
    let manifest = manifest_with_image(&s, &archive, &pinned);
    let opts = s.opts(&manifest, "out", "cache");
    let err = run(&opts).expect_err("another manifest digest");
    let msg = err.to_string();
    assert!(msg.contains(&pinned), "names the pinned digest: {msg}");
    assert!(msg.contains(&digest), "names the archive's digest: {msg}");
    assert_no_output(&opts);
}
