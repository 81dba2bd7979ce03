//! The deterministic image writer (`imagebuilder::oci::write_oci_archive`): what it writes verifies, the same spec
//! gives the same bytes and digest, another build time another digest, and the layer, config, manifest, index and
//! outer tar hold exactly what the module doc promises.

use imagebuilder::oci::{
    ImageArchiveError, ImageFile, OciImageSpec, files_from_directory, verify_image_archive,
    write_oci_archive, write_oci_archive_file,
};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;

const CREATED: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

fn spec() -> OciImageSpec {
    OciImageSpec {
        symlinks: vec![],
        cmd: vec![],
        files: vec![
            ImageFile {
                path: "/pause".into(),
                contents: b"\x7fELF pretend pause".to_vec(),
                mode: 0o755,
            },
            ImageFile {
                path: "/etc/nsswitch.conf".into(),
                contents: b"hosts: files dns\n".to_vec(),
                mode: 0o644,
            },
        ],
        entrypoint: vec!["/pause".into()],
        env: vec!["PATH=/usr/local/bin:/usr/bin:/bin".into()],
        ref_name: "registry.k8s.io/pause:3.10.1".into(),
        arch: "amd64".into(),
        created_unix: CREATED,
        labels: BTreeMap::from([("org.opencontainers.image.source".into(), "k8s-image".into())]),
        user: Some("65535:65535".into()),
    }
}

fn write(spec: &OciImageSpec) -> (Vec<u8>, String) {
    let mut out = Vec::new();
    let digest = write_oci_archive(spec, &mut out).expect("write");
    (out, digest)
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The members of a tar, in order: (name, header, bytes).
fn members(tar: &[u8]) -> Vec<(String, tar::Header, Vec<u8>)> {
    let mut archive = tar::Archive::new(tar);
    archive
        .entries()
        .expect("entries")
        .map(|e| {
            let mut e = e.expect("entry");
            let name = String::from_utf8(e.path_bytes().into_owned()).expect("utf-8");
            let header = e.header().clone();
            let mut bytes = Vec::new();
            e.read_to_end(&mut bytes).expect("read");
            (name, header, bytes)
        })
        .collect()
}

fn member<'a>(all: &'a [(String, tar::Header, Vec<u8>)], name: &str) -> &'a [u8] {
    &all.iter()
        .find(|m| m.0 == name)
        .unwrap_or_else(|| panic!("no member {name}"))
        .2
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).expect("json")
}

fn blob<'a>(all: &'a [(String, tar::Header, Vec<u8>)], digest: &serde_json::Value) -> &'a [u8] {
    let digest = digest.as_str().expect("digest string");
    member(
        all,
        &format!("blobs/sha256/{}", digest.trim_start_matches("sha256:")),
    )
}

#[test]
fn what_it_writes_verifies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pause.tar");
    let digest = write_oci_archive_file(&spec(), &path).expect("write");
    let v = verify_image_archive(&path, &digest, "amd64").expect("verify");
    assert_eq!(v.manifest_digest, digest);
    assert_eq!(v.platform_manifest_digest, digest);
    assert_eq!(v.media_type, "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(v.ref_names, vec!["registry.k8s.io/pause:3.10.1", "3.10.1"]);
    assert_eq!(v.platforms, vec!["linux/amd64"]);
    assert_eq!(v.layers.len(), 1);
    assert!(v.unreferenced_blobs.is_empty());

    let bytes = std::fs::read(&path).expect("read");
    let all = members(&bytes);
    let blobs: u64 = all
        .iter()
        .filter(|m| m.0.starts_with("blobs/sha256/") && m.0.len() > 13)
        .map(|m| m.2.len() as u64)
        .sum();
    assert_eq!(v.total_blob_bytes, blobs, "manifest + config + layer");
    // The file is the stream's bytes, readable by others (0644, not tempfile's 0600).
    assert_eq!(bytes, write(&spec()).0);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, 0o644);

    // An arm64 image verifies for arm64 only.
    let arm = OciImageSpec {
        arch: "arm64".into(),
        ..spec()
    };
    let arm_path = dir.path().join("pause-arm64.tar");
    let arm_digest = write_oci_archive_file(&arm, &arm_path).expect("write");
    assert_eq!(
        verify_image_archive(&arm_path, &arm_digest, "arm64")
            .expect("verify")
            .platforms,
        vec!["linux/arm64"]
    );
}

#[test]
fn the_same_spec_gives_the_same_bytes_and_another_time_another_digest() {
    let (a, da) = write(&spec());
    let (b, db) = write(&spec());
    assert_eq!(da, db);
    assert!(a == b, "the same spec gave different bytes");

    let later = OciImageSpec {
        created_unix: CREATED + 1,
        ..spec()
    };
    let (c, dc) = write(&later);
    assert_ne!(dc, da, "created_unix is part of the image");
    assert_ne!(c, a);
    // The file order of the spec does not matter: the layer is sorted.
    let mut reversed = spec();
    reversed.files.reverse();
    assert_eq!(write(&reversed).1, da);
    // Anything else that changes the image changes the digest.
    let mut other = spec();
    other.files[0].mode = 0o700;
    assert_ne!(write(&other).1, da);
    let mut other = spec();
    other.ref_name = "registry.k8s.io/pause:3.10".into();
    assert_eq!(
        write(&other).1,
        da,
        "the name is in index.json, not in the manifest"
    );
    assert_ne!(write(&other).0, a, "but the archive differs");
}

#[test]
fn the_returned_digest_is_the_manifest_blob_and_the_index_names_it_twice() {
    let (bytes, digest) = write(&spec());
    let all = members(&bytes);
    let index = json(member(&all, "index.json"));
    assert_eq!(
        index,
        serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": digest,
                "size": blob(&all, &serde_json::json!(digest)).len(),
                "annotations": {
                    "io.containerd.image.name": "registry.k8s.io/pause:3.10.1",
                    "org.opencontainers.image.ref.name": "3.10.1",
                },
                "platform": {"architecture": "amd64", "os": "linux"},
            }],
        })
    );
    let manifest_bytes = blob(&all, &index["manifests"][0]["digest"]);
    assert_eq!(sha256(manifest_bytes), digest);
    let manifest = json(manifest_bytes);
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    assert_eq!(
        manifest["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    assert_eq!(
        member(&all, "oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#
    );
    // Canonical JSON: no whitespace, keys sorted.
    assert!(!manifest_bytes.contains(&b' ') && !manifest_bytes.contains(&b'\n'));
    assert!(manifest_bytes.starts_with(br#"{"config":{"digest":"sha256:"#));
}

#[test]
fn the_config_describes_the_layer_and_how_the_image_starts() {
    let (bytes, _) = write(&spec());
    let all = members(&bytes);
    let index = json(member(&all, "index.json"));
    let manifest = json(blob(&all, &index["manifests"][0]["digest"]));
    let config = json(blob(&all, &manifest["config"]["digest"]));
    let layer_gz = blob(&all, &manifest["layers"][0]["digest"]);
    let mut layer = Vec::new();
    flate2::read::GzDecoder::new(layer_gz)
        .read_to_end(&mut layer)
        .expect("gunzip");
    assert_eq!(
        config,
        serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "created": "2026-01-01T00:00:00Z",
            "config": {
                "Entrypoint": ["/pause"],
                "Env": ["PATH=/usr/local/bin:/usr/bin:/bin"],
                "Labels": {"org.opencontainers.image.source": "k8s-image"},
                "User": "65535:65535",
            },
            "rootfs": {"type": "layers", "diff_ids": [sha256(&layer)]},
            "history": [{"created": "2026-01-01T00:00:00Z", "created_by": "imagebuilder oci-image"}],
        })
    );
    // An empty Env/Labels/User is left out rather than written empty.
    let bare = OciImageSpec {
        env: vec![],
        labels: BTreeMap::new(),
        user: None,
        ..spec()
    };
    let (bytes, _) = write(&bare);
    let all = members(&bytes);
    let index = json(member(&all, "index.json"));
    let manifest = json(blob(&all, &index["manifests"][0]["digest"]));
    let config = json(blob(&all, &manifest["config"]["digest"]));
    assert_eq!(
        config["config"],
        serde_json::json!({"Entrypoint": ["/pause"]})
    );
}

#[test]
fn the_layer_is_sorted_owned_by_root_and_timed_at_created() {
    let (bytes, _) = write(&spec());
    let all = members(&bytes);
    let index = json(member(&all, "index.json"));
    let manifest = json(blob(&all, &index["manifests"][0]["digest"]));
    let layer_gz = blob(&all, &manifest["layers"][0]["digest"]);
    // gzip header: no name, mtime 0, OS 255 (as layer.tar.gz).
    assert_eq!(&layer_gz[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
    let mut layer = Vec::new();
    flate2::read::GzDecoder::new(layer_gz)
        .read_to_end(&mut layer)
        .expect("gunzip");
    let entries = members(&layer);
    let listing: Vec<(&str, u32, tar::EntryType)> = entries
        .iter()
        .map(|(n, h, _)| (n.as_str(), h.mode().expect("mode"), h.entry_type()))
        .collect();
    assert_eq!(
        listing,
        vec![
            ("etc/", 0o755, tar::EntryType::Directory),
            ("etc/nsswitch.conf", 0o644, tar::EntryType::Regular),
            ("pause", 0o755, tar::EntryType::Regular),
        ]
    );
    for (name, h, _) in &entries {
        assert_eq!(
            (h.uid().expect("uid"), h.gid().expect("gid")),
            (0, 0),
            "{name}"
        );
        assert_eq!(h.mtime().expect("mtime"), CREATED as u64, "{name}");
    }
    assert_eq!(entries[2].2, b"\x7fELF pretend pause");
}

#[test]
fn the_archive_members_come_in_a_fixed_order_with_fixed_headers() {
    let (bytes, _) = write(&spec());
    let all = members(&bytes);
    let names: Vec<&str> = all.iter().map(|m| m.0.as_str()).collect();
    assert_eq!(
        &names[..4],
        &["oci-layout", "index.json", "blobs/", "blobs/sha256/"]
    );
    assert_eq!(names.len(), 7, "three blobs: {names:?}");
    let blobs = &names[4..];
    let mut sorted = blobs.to_vec();
    sorted.sort();
    assert_eq!(blobs, &sorted[..], "blobs sorted by digest");
    for (name, h, _) in &all {
        assert_eq!((h.uid().expect("uid"), h.gid().expect("gid")), (0, 0));
        assert_eq!(h.mtime().expect("mtime"), CREATED as u64, "{name}");
        let want = if name.ends_with('/') { 0o755 } else { 0o644 };
        assert_eq!(h.mode().expect("mode"), want, "{name}");
    }
}

#[test]
fn bad_specs_are_refused_with_what_to_fix() {
    let cases: Vec<(&str, OciImageSpec)> = vec![
        (
            "no registry",
            OciImageSpec {
                ref_name: "pause:3.10.1".into(),
                ..spec()
            },
        ),
        (
            "no tag",
            OciImageSpec {
                ref_name: "registry.k8s.io/pause".into(),
                ..spec()
            },
        ),
        (
            "arch",
            OciImageSpec {
                arch: "x86_64".into(),
                ..spec()
            },
        ),
        (
            "time",
            OciImageSpec {
                created_unix: -1,
                ..spec()
            },
        ),
        (
            "env",
            OciImageSpec {
                env: vec!["PATH".into()],
                ..spec()
            },
        ),
        (
            "relative path",
            OciImageSpec {
                files: vec![ImageFile {
                    path: "pause".into(),
                    contents: vec![],
                    mode: 0o755,
                }],
                ..spec()
            },
        ),
        (
            "file as a directory",
            OciImageSpec {
                files: vec![
                    ImageFile {
                        path: "/bin".into(),
                        contents: vec![],
                        mode: 0o755,
                    },
                    ImageFile {
                        path: "/bin/sh".into(),
                        contents: vec![],
                        mode: 0o755,
                    },
                ],
                ..spec()
            },
        ),
        (
            "twice",
            OciImageSpec {
                files: vec![spec().files[0].clone(), spec().files[0].clone()],
                ..spec()
            },
        ),
        (
            "mode",
            OciImageSpec {
                files: vec![ImageFile {
                    mode: 0o100755,
                    ..spec().files[0].clone()
                }],
                ..spec()
            },
        ),
        (
            "no files",
            OciImageSpec {
                files: vec![],
                ..spec()
            },
        ),
    ];
    for (what, spec) in cases {
        let err = write_oci_archive(&spec, Vec::new()).expect_err(what);
        assert!(
            matches!(err, ImageArchiveError::InvalidSpec { .. }),
            "{what}: {err}"
        );
        assert!(err.to_string().contains("hint:"), "{what}: {err}");
    }
}

#[test]
fn a_directory_is_packed_with_its_modes() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("weave");
    std::fs::create_dir_all(root.join("home/weave")).expect("mkdir");
    std::fs::write(root.join("home/weave/weave"), b"#!/bin/sh\n").expect("write");
    std::fs::set_permissions(
        root.join("home/weave/weave"),
        std::fs::Permissions::from_mode(0o755),
    )
    .expect("chmod");
    std::fs::write(root.join("README"), b"stand-in\n").expect("write");
    std::fs::set_permissions(root.join("README"), std::fs::Permissions::from_mode(0o644))
        .expect("chmod");
    let files = files_from_directory(&root, "/").expect("pack");
    let got: Vec<(&str, u32)> = files.iter().map(|f| (f.path.as_str(), f.mode)).collect();
    assert_eq!(got, vec![("/README", 0o644), ("/home/weave/weave", 0o755)]);

    std::os::unix::fs::symlink("weave", root.join("home/link")).expect("symlink");
    let err = files_from_directory(&root, "/").expect_err("symlink");
    assert!(
        matches!(&err, ImageArchiveError::Source { source_path, .. } if source_path.ends_with("home/link")),
        "{err}"
    );
}

#[test]
fn symbolic_links_are_layer_entries_and_clash_with_files() {
    let linked = OciImageSpec {
        symlinks: vec![("/bin/sh".into(), "busybox".into())],
        ..spec()
    };
    let mut bytes = Vec::new();
    let digest = write_oci_archive(&linked, &mut bytes).expect("write");
    let mut again = Vec::new();
    assert_eq!(
        write_oci_archive(&linked, &mut again).expect("write"),
        digest
    );
    assert_eq!(bytes, again, "same spec, same bytes");
    let mut plain = Vec::new();
    assert_ne!(
        write_oci_archive(&spec(), &mut plain).expect("write"),
        digest
    );

    let clash = OciImageSpec {
        symlinks: vec![("/pause".into(), "busybox".into())],
        ..spec()
    };
    let err = write_oci_archive(&clash, &mut Vec::new()).expect_err("a path twice");
    assert!(err.to_string().contains("/pause is given twice"), "{err}");
    assert!(imagebuilder::oci::parse_symlink_arg("bin/sh:busybox").is_err());
    assert!(imagebuilder::oci::parse_symlink_arg("/bin/sh:").is_err());
    assert_eq!(
        imagebuilder::oci::parse_symlink_arg("/bin/sh:busybox").expect("valid"),
        ("/bin/sh".to_string(), "busybox".to_string())
    );
}
