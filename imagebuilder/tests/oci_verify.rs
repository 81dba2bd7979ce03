//! The image archive verifier (`imagebuilder::oci::verify_image_archive`) against archives made wrong on purpose:
//! each corruption is refused with the exact error, naming the archive and the member; what real tools legitimately
//! write (gzip-compressed archives, `./` names, any member order, multi-arch indexes with blobs of other platforms
//! left out, unreferenced blobs) is accepted.
//!
//! The archives start as the deterministic writer's output, are unpacked into a list of members, changed, and packed
//! again with raw tar headers (so names the `tar` crate would refuse to write, like `../x`, can be written).

use imagebuilder::oci::{
    ImageArchiveError, ImageFile, OciImageSpec, VerifiedImage, verify_image_archive,
    write_oci_archive,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
enum Body {
    File(Vec<u8>),
    Dir,
    Symlink(String),
    HardLink(String),
    Fifo,
}

/// An archive as a list of members, in order.
#[derive(Debug, Clone)]
struct Members(Vec<(String, Body)>);

impl Members {
    fn unpack(tar: &[u8]) -> Members {
        let mut archive = tar::Archive::new(tar);
        let mut out = Vec::new();
        for e in archive.entries().expect("entries") {
            let mut e = e.expect("entry");
            let name = String::from_utf8(e.path_bytes().into_owned()).expect("utf-8");
            let body = match e.header().entry_type() {
                tar::EntryType::Directory => Body::Dir,
                _ => {
                    let mut b = Vec::new();
                    e.read_to_end(&mut b).expect("read");
                    Body::File(b)
                }
            };
            out.push((name, body));
        }
        Members(out)
    }

    fn pack(&self) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        for (name, body) in &self.0 {
            let mut h = tar::Header::new_gnu();
            let raw = &mut h.as_old_mut().name;
            raw[..name.len()].copy_from_slice(name.as_bytes());
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            let data: &[u8] = match body {
                Body::File(b) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    b
                }
                Body::Dir => {
                    h.set_entry_type(tar::EntryType::Directory);
                    &[]
                }
                Body::Symlink(t) | Body::HardLink(t) => {
                    h.set_entry_type(if matches!(body, Body::Symlink(_)) {
                        tar::EntryType::Symlink
                    } else {
                        tar::EntryType::Link
                    });
                    h.set_link_name(t).expect("link name");
                    &[]
                }
                Body::Fifo => {
                    h.set_entry_type(tar::EntryType::Fifo);
                    &[]
                }
            };
            h.set_size(data.len() as u64);
            h.set_cksum();
            tar.append(&h, data).expect("append");
        }
        tar.into_inner().expect("finish")
    }

    fn position(&self, name: &str) -> usize {
        self.0
            .iter()
            .position(|m| m.0 == name)
            .unwrap_or_else(|| panic!("no member {name}"))
    }

    fn file_mut(&mut self, name: &str) -> &mut Vec<u8> {
        let i = self.position(name);
        match &mut self.0[i].1 {
            Body::File(b) => b,
            other => panic!("{name} is {other:?}"),
        }
    }

    fn file(&self, name: &str) -> &[u8] {
        match &self.0[self.position(name)].1 {
            Body::File(b) => b,
            other => panic!("{name} is {other:?}"),
        }
    }

    fn remove(&mut self, name: &str) {
        let i = self.position(name);
        self.0.remove(i);
    }

    fn json(&self, name: &str) -> Value {
        serde_json::from_slice(self.file(name)).expect("json")
    }

    fn set_json(&mut self, name: &str, value: &Value) {
        *self.file_mut(name) = serde_json::to_vec(value).expect("serialise");
    }

    /// Adds a blob; returns its member name.
    fn add_blob(&mut self, bytes: Vec<u8>) -> String {
        let name = format!("blobs/sha256/{}", hex(&bytes));
        self.0.retain(|m| m.0 != name);
        self.0.push((name.clone(), Body::File(bytes)));
        name
    }
}

fn hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn blob_member(digest: &str) -> String {
    format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))
}

fn spec(arch: &str) -> OciImageSpec {
    OciImageSpec {
        symlinks: vec![],
        cmd: vec![],
        files: vec![ImageFile {
            path: "/pause".into(),
            contents: format!("pretend pause for {arch}").into_bytes(),
            mode: 0o755,
        }],
        entrypoint: vec!["/pause".into()],
        env: vec![],
        ref_name: "registry.k8s.io/pause:3.10.1".into(),
        arch: arch.into(),
        created_unix: 1_767_225_600,
        labels: BTreeMap::new(),
        user: None,
    }
}

/// A good archive, and the names of its parts.
struct Image {
    members: Members,
    digest: String,
    manifest: String,
    config: String,
    layer: String,
}

impl Image {
    fn new(arch: &str) -> Image {
        let mut bytes = Vec::new();
        let digest = write_oci_archive(&spec(arch), &mut bytes).expect("write");
        let members = Members::unpack(&bytes);
        let manifest = blob_member(&digest);
        let m = members.json(&manifest);
        let config = blob_member(m["config"]["digest"].as_str().expect("config"));
        let layer = blob_member(m["layers"][0]["digest"].as_str().expect("layer"));
        Image {
            members,
            digest,
            manifest,
            config,
            layer,
        }
    }

    /// Changes the manifest, stores it under its new digest and points index.json at it; returns the new digest.
    fn rewrite_manifest(&mut self, change: impl FnOnce(&mut Value)) -> String {
        let mut m = self.members.json(&self.manifest);
        change(&mut m);
        let bytes = serde_json::to_vec(&m).expect("serialise");
        let size = bytes.len();
        self.members.remove(&self.manifest);
        self.manifest = self.members.add_blob(bytes);
        self.digest = format!(
            "sha256:{}",
            self.manifest.trim_start_matches("blobs/sha256/")
        );
        let mut index = self.members.json("index.json");
        index["manifests"][0]["digest"] = json!(self.digest);
        index["manifests"][0]["size"] = json!(size);
        self.members.set_json("index.json", &index);
        self.digest.clone()
    }
}

struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Dir {
        Dir(tempfile::tempdir().expect("tempdir"))
    }

    fn save(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.path().join(name);
        std::fs::write(&path, bytes).expect("write archive");
        path
    }
}

fn verify(path: &Path, digest: &str) -> Result<VerifiedImage, ImageArchiveError> {
    verify_image_archive(path, digest, "amd64")
}

#[test]
fn a_good_archive_verifies() {
    let dir = Dir::new();
    let img = Image::new("amd64");
    let path = dir.save("good.tar", &img.members.pack());
    let v = verify(&path, &img.digest).expect("verify");
    assert_eq!(v.config_digest, format!("sha256:{}", &img.config[13..]));
    assert_eq!(
        v.layers,
        vec![(
            format!("sha256:{}", &img.layer[13..]),
            img.members.file(&img.layer).len() as u64
        )]
    );
}

#[test]
fn a_flipped_byte_in_a_layer_is_refused() {
    let dir = Dir::new();
    let mut img = Image::new("amd64");
    let layer = img.members.file_mut(&img.layer.clone());
    let last = layer.len() - 5;
    layer[last] ^= 0x01;
    let actual = hex(layer);
    let path = dir.save("flipped.tar", &img.members.pack());
    assert_eq!(
        verify(&path, &img.digest),
        Err(ImageArchiveError::DigestMismatch {
            archive: path.clone(),
            member: img.layer.clone(),
            actual,
        })
    );
}

#[test]
fn a_truncated_blob_is_refused() {
    let dir = Dir::new();
    let mut img = Image::new("amd64");
    let layer = img.members.file_mut(&img.layer.clone());
    let size = layer.len() as u64;
    layer.truncate(layer.len() / 2);
    let path = dir.save("truncated-blob.tar", &img.members.pack());
    assert_eq!(
        verify(&path, &img.digest),
        Err(ImageArchiveError::SizeMismatch {
            archive: path.clone(),
            member: img.layer.clone(),
            referenced_by: img.manifest.clone(),
            expected: size,
            actual: size / 2,
        })
    );
}

#[test]
fn a_truncated_archive_is_refused_naming_the_member_it_ends_in() {
    let dir = Dir::new();
    let img = Image::new("amd64");
    let bytes = img.members.pack();
    // Cut in the middle of the layer's data.
    let mut archive = tar::Archive::new(&bytes[..]);
    let start = archive
        .entries()
        .expect("entries")
        .map(|e| e.expect("entry"))
        .find(|e| e.path_bytes().as_ref() == img.layer.as_bytes())
        .expect("layer member")
        .raw_file_position() as usize;
    let path = dir.save("truncated.tar", &bytes[..start + 20]);
    let err = verify(&path, &img.digest).expect_err("truncated");
    assert!(
        matches!(&err, ImageArchiveError::Corrupt { archive, member, .. } if *archive == path && *member == img.layer),
        "{err}"
    );
    assert!(err.to_string().contains("truncated"), "{err}");
}

#[test]
fn a_missing_blob_is_refused() {
    let dir = Dir::new();
    let mut img = Image::new("amd64");
    img.members.remove(&img.layer.clone());
    let path = dir.save("missing.tar", &img.members.pack());
    assert_eq!(
        verify(&path, &img.digest),
        Err(ImageArchiveError::MissingBlob {
            archive: path.clone(),
            member: img.layer.clone(),
            referenced_by: img.manifest.clone(),
        })
    );
}

#[test]
fn a_config_that_is_not_what_the_manifest_names_is_refused() {
    let dir = Dir::new();
    // Its bytes changed under the same name.
    let mut img = Image::new("amd64");
    let config = img.members.file_mut(&img.config.clone());
    let i = config.len() / 2;
    config[i] ^= 0x20;
    let actual = hex(config);
    let path = dir.save("config-bytes.tar", &img.members.pack());
    assert_eq!(
        verify(&path, &img.digest),
        Err(ImageArchiveError::DigestMismatch {
            archive: path.clone(),
            member: img.config.clone(),
            actual,
        })
    );
    // The manifest names another config than the archive holds.
    let mut img = Image::new("amd64");
    let other = format!("sha256:{}", "c".repeat(64));
    let digest = img.rewrite_manifest(|m| m["config"]["digest"] = json!(other));
    let path = dir.save("config-digest.tar", &img.members.pack());
    assert_eq!(
        verify(&path, &digest),
        Err(ImageArchiveError::MissingBlob {
            archive: path.clone(),
            member: blob_member(&other),
            referenced_by: img.manifest.clone(),
        })
    );
}

#[test]
fn another_pinned_digest_is_refused() {
    let dir = Dir::new();
    let img = Image::new("amd64");
    let path = dir.save("good.tar", &img.members.pack());
    let pinned = format!("sha256:{}", "a".repeat(64));
    assert_eq!(
        verify(&path, &pinned),
        Err(ImageArchiveError::WrongManifestDigest {
            archive: path.clone(),
            expected: pinned,
            actual: img.digest.clone(),
        })
    );
    for bad in [
        "",
        "sha256:abc",
        &img.digest.to_uppercase(),
        &img.digest[7..],
    ] {
        assert_eq!(
            verify(&path, bad),
            Err(ImageArchiveError::BadExpectedDigest { given: bad.into() })
        );
    }
    assert_eq!(
        verify_image_archive(&path, &img.digest, "x86_64"),
        Err(ImageArchiveError::UnsupportedArch {
            given: "x86_64".into()
        })
    );
}

#[test]
fn names_that_leave_the_archive_are_refused() {
    let dir = Dir::new();
    for (name, reason) in [
        ("../evil", "climbs out of the archive with `..`"),
        (
            "blobs/sha256/../../../etc/passwd",
            "climbs out of the archive with `..`",
        ),
        ("/etc/passwd", "is an absolute path"),
    ] {
        let mut img = Image::new("amd64");
        img.members.0.push((name.into(), Body::File(b"x".to_vec())));
        let path = dir.save("unsafe.tar", &img.members.pack());
        assert_eq!(
            verify(&path, &img.digest),
            Err(ImageArchiveError::UnsafeMemberName {
                archive: path.clone(),
                member: name.into(),
                reason: reason.into(),
            }),
            "{name}"
        );
    }
}

#[test]
fn a_link_where_a_blob_should_be_is_refused() {
    let dir = Dir::new();
    for (body, kind) in [
        (Body::Symlink("/etc/passwd".into()), "symbolic link"),
        (Body::HardLink("index.json".into()), "hard link"),
    ] {
        let mut img = Image::new("amd64");
        let i = img.members.position(&img.layer);
        img.members.0[i].1 = body;
        let path = dir.save("link.tar", &img.members.pack());
        assert_eq!(
            verify(&path, &img.digest),
            Err(ImageArchiveError::NotRegularFile {
                archive: path.clone(),
                member: img.layer.clone(),
                kind: kind.into(),
            })
        );
    }
    // index.json as a link, too.
    let mut img = Image::new("amd64");
    let i = img.members.position("index.json");
    img.members.0[i].1 = Body::Symlink(img.manifest.clone());
    let path = dir.save("index-link.tar", &img.members.pack());
    assert_eq!(
        verify(&path, &img.digest),
        Err(ImageArchiveError::NotRegularFile {
            archive: path.clone(),
            member: "index.json".into(),
            kind: "symbolic link".into(),
        })
    );
    // Links elsewhere (docker save ≥ 25 links its legacy layer paths into blobs/) are allowed, never followed.
    let mut img = Image::new("amd64");
    img.members.0.push((
        "legacy/layer.tar".into(),
        Body::Symlink(format!("../{}", img.layer)),
    ));
    let path = dir.save("legacy-link.tar", &img.members.pack());
    assert!(verify(&path, &img.digest).is_ok());
    // A fifo is refused anywhere.
    let mut img = Image::new("amd64");
    img.members.0.push(("pipe".into(), Body::Fifo));
    let path = dir.save("fifo.tar", &img.members.pack());
    assert_eq!(
        verify(&path, &img.digest),
        Err(ImageArchiveError::UnsupportedMember {
            archive: path.clone(),
            member: "pipe".into(),
            kind: "fifo".into(),
        })
    );
}

#[test]
fn a_member_given_twice_is_refused() {
    let dir = Dir::new();
    let mut img = Image::new("amd64");
    let layer = img.members.file(&img.layer).to_vec();
    img.members
        .0
        .push((format!("./{}", img.layer), Body::File(layer)));
    let path = dir.save("twice.tar", &img.members.pack());
    assert_eq!(
        verify(&path, &img.digest),
        Err(ImageArchiveError::DuplicateMember {
            archive: path.clone(),
            member: img.layer.clone(),
        })
    );
}

#[test]
fn an_index_json_with_two_images_is_refused() {
    let dir = Dir::new();
    let mut img = Image::new("amd64");
    let mut index = img.members.json("index.json");
    let first = index["manifests"][0].clone();
    index["manifests"] = json!([first.clone(), first]);
    img.members.set_json("index.json", &index);
    let path = dir.save("two.tar", &img.members.pack());
    assert_eq!(
        verify(&path, &img.digest),
        Err(ImageArchiveError::ManifestCount {
            archive: path.clone(),
            count: 2,
        })
    );
}

#[test]
fn layout_and_media_type_errors_name_the_member() {
    let dir = Dir::new();
    let mut img = Image::new("amd64");
    img.members
        .set_json("oci-layout", &json!({"imageLayoutVersion": "2.0.0"}));
    let path = dir.save("layout.tar", &img.members.pack());
    assert_eq!(
        verify(&path, &img.digest),
        Err(ImageArchiveError::LayoutVersion {
            archive: path.clone(),
            found: "2.0.0".into(),
        })
    );

    let mut img = Image::new("amd64");
    img.members.remove("oci-layout");
    let path = dir.save("no-layout.tar", &img.members.pack());
    assert_eq!(
        verify(&path, &img.digest),
        Err(ImageArchiveError::MissingMember {
            archive: path.clone(),
            member: "oci-layout".into(),
        })
    );

    let helm = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";
    let mut img = Image::new("amd64");
    let digest = img.rewrite_manifest(|m| m["layers"][0]["mediaType"] = json!(helm));
    let path = dir.save("helm.tar", &img.members.pack());
    assert_eq!(
        verify(&path, &digest),
        Err(ImageArchiveError::UnknownMediaType {
            archive: path.clone(),
            member: img.manifest.clone(),
            role: "layer".into(),
            media_type: helm.into(),
        })
    );

    // The manifest says it is a Docker manifest, its descriptor an OCI one.
    let mut img = Image::new("amd64");
    let docker = "application/vnd.docker.distribution.manifest.v2+json";
    let digest = img.rewrite_manifest(|m| m["mediaType"] = json!(docker));
    let path = dir.save("mismatch.tar", &img.members.pack());
    assert_eq!(
        verify(&path, &digest),
        Err(ImageArchiveError::MediaTypeMismatch {
            archive: path.clone(),
            member: img.manifest.clone(),
            descriptor: "application/vnd.oci.image.manifest.v1+json".into(),
            document: docker.into(),
        })
    );

    // One layer, no diff_id.
    let mut img = Image::new("amd64");
    let mut config = img.members.json(&img.config);
    config["rootfs"]["diff_ids"] = json!([]);
    let config_bytes = serde_json::to_vec(&config).expect("serialise");
    let size = config_bytes.len();
    let config_member = img.members.add_blob(config_bytes);
    let config_digest = format!("sha256:{}", &config_member[13..]);
    let digest = img.rewrite_manifest(|m| {
        m["config"]["digest"] = json!(config_digest);
        m["config"]["size"] = json!(size);
    });
    let path = dir.save("diff-ids.tar", &img.members.pack());
    assert_eq!(
        verify(&path, &digest),
        Err(ImageArchiveError::LayerCountMismatch {
            archive: path.clone(),
            member: config_member,
            layers: 1,
            diff_ids: 0,
        })
    );

    let mut img = Image::new("amd64");
    *img.members.file_mut("index.json") = b"{\"schemaVersion\":2,".to_vec();
    let path = dir.save("bad-json.tar", &img.members.pack());
    assert!(
        matches!(verify(&path, &img.digest), Err(ImageArchiveError::BadDocument { member, .. }) if member == "index.json")
    );
}

#[test]
fn an_image_for_another_platform_is_refused() {
    let dir = Dir::new();
    let img = Image::new("arm64");
    let path = dir.save("arm64.tar", &img.members.pack());
    assert_eq!(
        verify(&path, &img.digest),
        Err(ImageArchiveError::PlatformMismatch {
            archive: path.clone(),
            member: img.config.clone(),
            want: "amd64".into(),
            found: "linux/arm64".into(),
        })
    );
    assert!(verify_image_archive(&path, &img.digest, "arm64").is_ok());
}

#[test]
fn a_gzip_compressed_archive_is_accepted() {
    let dir = Dir::new();
    let img = Image::new("amd64");
    let plain = img.members.pack();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&plain).expect("gzip");
    let gz = gz.finish().expect("gzip");
    let plain_path = dir.save("plain.tar", &plain);
    let gz_path = dir.save("image.tar.gz", &gz);
    assert_eq!(
        verify(&gz_path, &img.digest).expect("gzip archive"),
        verify(&plain_path, &img.digest).expect("plain archive")
    );

    // Corruption inside is still found.
    let mut bad = img.members.clone();
    let layer = bad.file_mut(&img.layer);
    layer[12] ^= 0xff;
    let actual = hex(layer);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&bad.pack()).expect("gzip");
    let path = dir.save("bad.tar.gz", &gz.finish().expect("gzip"));
    assert_eq!(
        verify(&path, &img.digest),
        Err(ImageArchiveError::DigestMismatch {
            archive: path.clone(),
            member: img.layer.clone(),
            actual,
        })
    );

    // Neither tar nor gzip.
    let path = dir.save("image.tar.zst", b"\x28\xb5\x2f\xfd rest");
    assert!(
        matches!(verify(&path, &img.digest), Err(ImageArchiveError::NotTar { reason, .. }) if reason.contains("zstd"))
    );
    let path = dir.save("text.tar", &[b'x'; 2048]);
    assert!(matches!(
        verify(&path, &img.digest),
        Err(ImageArchiveError::NotTar { .. })
    ));
}

#[test]
fn what_tools_write_differently_is_accepted() {
    let dir = Dir::new();
    let img = Image::new("amd64");
    // `./` names (tar -C layout .), members in reverse order (index.json last), an unreferenced blob.
    let mut other = img.members.clone();
    for m in &mut other.0 {
        m.0 = format!("./{}", m.0);
    }
    other.0.reverse();
    other.0.insert(0, ("./".into(), Body::Dir));
    let extra = other.add_blob(b"not referenced".to_vec());
    let path = dir.save("other.tar", &other.pack());
    let v = verify(&path, &img.digest).expect("verify");
    assert_eq!(v.unreferenced_blobs, vec![extra]);
}

/// An image index over the amd64 and arm64 images (and an attestation whose blob is absent, as Docker writes).
fn multi_arch(arches: &[&str]) -> (Members, String, BTreeMap<String, String>) {
    let mut members = Image::new("amd64").members;
    members.0.retain(|m| !m.0.starts_with("blobs/sha256/"));
    let mut descriptors = Vec::new();
    let mut manifests = BTreeMap::new();
    for arch in arches {
        let img = Image::new(arch);
        for (name, body) in &img.members.0 {
            if name.starts_with("blobs/sha256/") && name.len() > 13 {
                members.0.push((name.clone(), body.clone()));
            }
        }
        descriptors.push(json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": img.digest,
            "size": img.members.file(&img.manifest).len(),
            "platform": {"architecture": arch, "os": "linux"},
        }));
        manifests.insert(arch.to_string(), img.digest.clone());
    }
    descriptors.push(json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": format!("sha256:{}", "e".repeat(64)),
        "size": 840,
        "annotations": {"vnd.docker.reference.type": "attestation-manifest"},
        "platform": {"architecture": "unknown", "os": "unknown"},
    }));
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": descriptors,
    }))
    .expect("serialise");
    let size = index.len();
    let index_member = members.add_blob(index);
    let digest = format!("sha256:{}", &index_member[13..]);
    members.set_json(
        "index.json",
        &json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "digest": digest,
                "size": size,
                "annotations": {"io.containerd.image.name": "registry.k8s.io/pause:3.10.1"},
            }],
        }),
    );
    (members, digest, manifests)
}

#[test]
fn a_multi_arch_index_gives_the_wanted_arch() {
    let dir = Dir::new();
    let (members, digest, manifests) = multi_arch(&["amd64", "arm64"]);
    let path = dir.save("multi.tar", &members.pack());
    let v = verify(&path, &digest).expect("amd64");
    assert_eq!(v.manifest_digest, digest);
    assert_eq!(v.media_type, "application/vnd.oci.image.index.v1+json");
    assert_eq!(v.platforms, vec!["linux/amd64", "linux/arm64"]);
    assert_eq!(v.platform_manifest_digest, manifests["amd64"]);
    assert_eq!(v.ref_names, vec!["registry.k8s.io/pause:3.10.1"]);
    assert_eq!(
        v.unreferenced_blobs.len(),
        3,
        "arm64's manifest, config and layer"
    );
    let arm = verify_image_archive(&path, &digest, "arm64").expect("arm64");
    assert_eq!(arm.platform_manifest_digest, manifests["arm64"]);

    // Blobs of the other platform may be left out (skopeo copy without --all).
    let (mut members, digest, manifests) = multi_arch(&["amd64", "arm64"]);
    members.remove(&blob_member(&manifests["arm64"]));
    let path = dir.save("multi-partial.tar", &members.pack());
    assert!(verify(&path, &digest).is_ok());

    // No amd64 image in the index: refused, saying what there is.
    let (members, digest, _) = multi_arch(&["arm64"]);
    let path = dir.save("arm-only.tar", &members.pack());
    assert_eq!(
        verify(&path, &digest),
        Err(ImageArchiveError::NoPlatformManifest {
            archive: path.clone(),
            member: blob_member(&digest),
            want: "amd64".into(),
            available: vec!["linux/arm64".into()],
        })
    );
}

#[test]
fn a_plain_docker_archive_is_refused_with_the_conversion_hint() {
    let dir = Dir::new();
    let members = Members(vec![
        (
            "manifest.json".into(),
            Body::File(br#"[{"Config":"c.json","RepoTags":["registry.k8s.io/pause:3.10.1"],"Layers":["l/layer.tar"]}]"#.to_vec()),
        ),
        ("c.json".into(), Body::File(b"{}".to_vec())),
        ("l/layer.tar".into(), Body::File(vec![0; 1024])),
    ]);
    let path = dir.save("docker.tar", &members.pack());
    let err = verify(&path, &format!("sha256:{}", "1".repeat(64))).expect_err("docker-archive");
    assert_eq!(
        err,
        ImageArchiveError::DockerArchive {
            archive: path.clone()
        }
    );
    assert!(
        err.to_string()
            .contains("skopeo copy docker-archive:IN oci-archive:OUT")
    );
    assert!(err.to_string().contains(&path.display().to_string()));

    // With index.json and oci-layout too (docker save ≥ 25), it is read as an OCI layout.
    let img = Image::new("amd64");
    let mut both = img.members.clone();
    both.0
        .push(("manifest.json".into(), Body::File(b"[]".to_vec())));
    let path = dir.save("docker25.tar", &both.pack());
    assert!(verify(&path, &img.digest).is_ok());
}

#[test]
fn every_error_names_the_archive_and_says_what_to_do() {
    let dir = Dir::new();
    let mut img = Image::new("amd64");
    img.members.remove(&img.layer.clone());
    let path = dir.save("missing.tar", &img.members.pack());
    let text = verify(&path, &img.digest).expect_err("missing").to_string();
    assert!(text.starts_with(&path.display().to_string()), "{text}");
    assert!(text.contains(&img.layer), "{text}");
    assert!(text.contains("\n  hint: "), "{text}");
}
