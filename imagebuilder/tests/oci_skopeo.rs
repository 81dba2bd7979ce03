//! An independent reader agrees with the image writer and the verifier: skopeo reads our archive and prints the
//! manifest whose sha256 is the digest we computed, and the config; archives skopeo writes itself verify (OCI) or are
//! refused with the conversion hint (plain docker-archive).
//!
//! Needs `skopeo` (Debian package `skopeo`). Without it the tests skip with a message, unless `CI` is set: then they
//! fail, so CI cannot pass by not running them.

use imagebuilder::oci::{
    ImageArchiveError, ImageFile, OciImageSpec, verify_image_archive, write_oci_archive_file,
};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

fn skopeo_available() -> bool {
    let ok = Command::new("skopeo")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "skopeo is not installed (apt-get install -y --no-install-recommends skopeo); CI is set, so not skipping"
        );
        eprintln!("skipping: skopeo is not installed");
    }
    ok
}

fn skopeo(args: &[&str]) -> Vec<u8> {
    // --insecure-policy: only local archives are read and written, no registry is asked.
    let out = Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn spec() -> OciImageSpec {
    OciImageSpec {
        symlinks: vec![],
        cmd: vec![],
        files: vec![ImageFile {
            path: "/pause".into(),
            contents: b"\x7fELF pretend pause".to_vec(),
            mode: 0o755,
        }],
        entrypoint: vec!["/pause".into()],
        env: vec!["PATH=/usr/bin:/bin".into()],
        ref_name: "registry.k8s.io/pause:3.10.1".into(),
        arch: "amd64".into(),
        created_unix: 1_767_225_600,
        labels: BTreeMap::new(),
        user: Some("65535:65535".into()),
    }
}

fn arg(prefix: &str, path: &Path) -> String {
    format!("{prefix}:{}", path.display())
}

#[test]
fn skopeo_reads_our_manifest_and_config() {
    if !skopeo_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let ours = dir.path().join("ours.tar");
    let digest = write_oci_archive_file(&spec(), &ours).expect("write");
    let verified = verify_image_archive(&ours, &digest, "amd64").expect("verify");

    let raw = skopeo(&["inspect", "--raw", &arg("oci-archive", &ours)]);
    assert_eq!(
        sha256(&raw),
        digest,
        "skopeo's manifest: {}",
        String::from_utf8_lossy(&raw)
    );
    let raw_config = skopeo(&["inspect", "--config", "--raw", &arg("oci-archive", &ours)]);
    assert_eq!(sha256(&raw_config), verified.config_digest);
    let config: serde_json::Value = serde_json::from_slice(&skopeo(&[
        "inspect",
        "--config",
        &arg("oci-archive", &ours),
    ]))
    .expect("skopeo prints JSON");
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(config["os"], "linux");
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(["/pause"])
    );
    assert_eq!(config["config"]["User"], "65535:65535");
    assert_eq!(config["created"], "2026-01-01T00:00:00Z");
    // skopeo picks the image by its ref name (the tag) too.
    let by_tag = skopeo(&[
        "inspect",
        "--raw",
        &format!("{}:3.10.1", arg("oci-archive", &ours)),
    ]);
    assert_eq!(sha256(&by_tag), digest);
    let inspect: serde_json::Value =
        serde_json::from_slice(&skopeo(&["inspect", &arg("oci-archive", &ours)])).expect("JSON");
    assert_eq!(inspect["Digest"], digest);
    assert_eq!(inspect["Layers"], serde_json::json!([verified.layers[0].0]));
    eprintln!("skopeo inspect: {inspect}");
}

#[test]
fn an_oci_archive_skopeo_writes_verifies() {
    if !skopeo_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let ours = dir.path().join("ours.tar");
    let theirs = dir.path().join("theirs.tar");
    let digest = write_oci_archive_file(&spec(), &ours).expect("write");
    skopeo(&[
        "copy",
        "--quiet",
        &arg("oci-archive", &ours),
        &format!("{}:3.10.1", arg("oci-archive", &theirs)),
    ]);
    assert_ne!(
        std::fs::read(&ours).expect("read"),
        std::fs::read(&theirs).expect("read"),
        "skopeo wrote its own archive (member order, headers)"
    );
    let v = verify_image_archive(&theirs, &digest, "amd64").expect("skopeo's archive verifies");
    assert_eq!(
        v.manifest_digest, digest,
        "skopeo copies the manifest as it is"
    );
    assert_eq!(v.ref_names, vec!["3.10.1"]);
    assert_eq!(v.platforms, vec!["linux/amd64"]);

    // Another digest pinned: refused, naming both.
    let other = format!("sha256:{}", "0".repeat(64));
    assert_eq!(
        verify_image_archive(&theirs, &other, "amd64"),
        Err(ImageArchiveError::WrongManifestDigest {
            archive: theirs.clone(),
            expected: other,
            actual: digest,
        })
    );
}

#[test]
fn a_docker_archive_skopeo_writes_is_refused_with_the_conversion_hint() {
    if !skopeo_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let ours = dir.path().join("ours.tar");
    let docker = dir.path().join("theirs-docker.tar");
    let digest = write_oci_archive_file(&spec(), &ours).expect("write");
    skopeo(&[
        "copy",
        "--quiet",
        &arg("oci-archive", &ours),
        &format!(
            "{}:registry.k8s.io/pause:3.10.1",
            arg("docker-archive", &docker)
        ),
    ]);
    let err = verify_image_archive(&docker, &digest, "amd64").expect_err("docker-archive");
    assert_eq!(
        err,
        ImageArchiveError::DockerArchive {
            archive: docker.clone()
        }
    );
    let text = err.to_string();
    assert!(
        text.contains("skopeo copy docker-archive:IN oci-archive:OUT"),
        "{text}"
    );

    // Converted as the hint says, it verifies, with the digest of the converted manifest.
    let converted = dir.path().join("converted.tar");
    skopeo(&[
        "copy",
        "--quiet",
        &arg("docker-archive", &docker),
        &arg("oci-archive", &converted),
    ]);
    let raw = skopeo(&["inspect", "--raw", &arg("oci-archive", &converted)]);
    let v = verify_image_archive(&converted, &sha256(&raw), "amd64").expect("converted verifies");
    assert_eq!(v.platforms, vec!["linux/amd64"]);
}
