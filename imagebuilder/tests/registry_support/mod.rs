//! Shared by the registry_* tests: tiny container images built by hand (a gzip layer, a config, an OCI manifest,
//! an index), OCI layout directories for `skopeo copy oci:…` to push, and a reader that takes a pulled archive
//! apart and recomputes every digest.

#![allow(dead_code)]

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

/// A blob with its media type.
#[derive(Clone, Debug)]
pub struct Blob {
    pub media_type: &'static str,
    pub bytes: Vec<u8>,
}

impl Blob {
    pub fn digest(&self) -> String {
        digest_of(&self.bytes)
    }

    pub fn hex(&self) -> String {
        sha256_hex(&self.bytes)
    }

    pub fn descriptor(&self) -> serde_json::Value {
        serde_json::json!({"mediaType": self.media_type, "digest": self.digest(), "size": self.bytes.len()})
    }
}

/// One platform's image: manifest, config, layer.
#[derive(Clone, Debug)]
pub struct TestImage {
    pub os: &'static str,
    pub arch: &'static str,
    pub variant: Option<&'static str>,
    pub manifest: Blob,
    pub config: Blob,
    pub layer: Blob,
}

impl TestImage {
    /// A one-layer image whose layer holds `/pause` with `content` (deterministic bytes).
    pub fn new(os: &'static str, arch: &'static str, variant: Option<&'static str>) -> TestImage {
        let content = format!(
            "pause for {os}/{arch}{}\n",
            variant.map(|v| format!("/{v}")).unwrap_or_default()
        );
        let mut tar_bytes = Vec::new();
        {
            let mut tar = tar::Builder::new(&mut tar_bytes);
            let mut header = tar::Header::new_ustar();
            header.set_path("pause").expect("path");
            header.set_size(content.len() as u64);
            header.set_mode(0o755);
            header.set_mtime(0);
            header.set_cksum();
            tar.append(&header, content.as_bytes()).expect("append");
            tar.finish().expect("finish");
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&tar_bytes).expect("gzip");
        let layer = Blob {
            media_type: OCI_LAYER,
            bytes: gz.finish().expect("gzip"),
        };
        let mut config = serde_json::json!({
            "architecture": arch,
            "os": os,
            "config": {"Entrypoint": ["/pause"]},
            "rootfs": {"type": "layers", "diff_ids": [digest_of(&tar_bytes)]},
        });
        if let Some(v) = variant {
            config["variant"] = serde_json::json!(v);
        }
        let config = Blob {
            media_type: OCI_CONFIG,
            bytes: serde_json::to_vec(&config).expect("json"),
        };
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config.descriptor(),
            "layers": [layer.descriptor()],
        });
        let manifest = Blob {
            media_type: OCI_MANIFEST,
            bytes: serde_json::to_vec_pretty(&manifest).expect("json"),
        };
        TestImage {
            os,
            arch,
            variant,
            manifest,
            config,
            layer,
        }
    }

    pub fn platform(&self) -> String {
        match self.variant {
            Some(v) => format!("{}/{}/{v}", self.os, self.arch),
            None => format!("{}/{}", self.os, self.arch),
        }
    }

    pub fn blobs(&self) -> Vec<&Blob> {
        vec![&self.manifest, &self.config, &self.layer]
    }
}

/// An OCI image index over `images`, with an annotation (so there is a JSON string to corrupt).
pub fn index_of(images: &[&TestImage]) -> Blob {
    let manifests: Vec<_> = images
        .iter()
        .map(|i| {
            let mut d = i.manifest.descriptor();
            let mut platform = serde_json::json!({"os": i.os, "architecture": i.arch});
            if let Some(v) = i.variant {
                platform["variant"] = serde_json::json!(v);
            }
            d["platform"] = platform;
            d
        })
        .collect();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": manifests,
        "annotations": {"org.opencontainers.image.description": "test index"},
    });
    Blob {
        media_type: OCI_INDEX,
        bytes: serde_json::to_vec_pretty(&index).expect("json"),
    }
}

/// Writes an OCI image layout directory whose index.json names `top` under `tag`, holding `blobs`.
pub fn write_oci_layout(dir: &Path, top: &Blob, blobs: &[&Blob], tag: &str) {
    let blob_dir = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blob_dir).expect("mkdir");
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).expect("write");
    let mut d = top.descriptor();
    d["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": tag});
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [d]});
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&index).expect("json"),
    )
    .expect("write");
    for blob in blobs.iter().chain(std::iter::once(&top)) {
        std::fs::write(blob_dir.join(blob.hex()), &blob.bytes).expect("write blob");
    }
}

/// One member of a pulled archive.
pub struct Member {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// Reads a pulled archive, checks every header is plain (regular file, 0644, uid/gid 0, mtime 0, no names) and
/// every blob's name is its sha256; returns the members in order.
pub fn read_archive(path: &Path) -> Vec<Member> {
    let file = std::fs::File::open(path).expect("open archive");
    let mut archive = tar::Archive::new(file);
    let mut members = Vec::new();
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let h = entry.header();
        let name = entry.path().expect("path").display().to_string();
        assert_eq!(h.entry_type(), tar::EntryType::Regular, "{name}");
        assert_eq!(h.mode().expect("mode"), 0o644, "{name}");
        assert_eq!(h.mtime().expect("mtime"), 0, "{name}");
        assert_eq!(
            (h.uid().expect("uid"), h.gid().expect("gid")),
            (0, 0),
            "{name}"
        );
        assert_eq!(h.username_bytes(), Some(&b""[..]), "{name}");
        assert_eq!(h.groupname_bytes(), Some(&b""[..]), "{name}");
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).expect("read member");
        if let Some(hex) = name.strip_prefix("blobs/sha256/") {
            assert_eq!(
                sha256_hex(&bytes),
                hex,
                "blob {name} is not the bytes its name says"
            );
        }
        members.push(Member { name, bytes });
    }
    members
}

/// Checks the archive's layout: `oci-layout`, `index.json`, sorted blobs exactly `expected`; index.json names
/// `pin` with `media_type`, containerd's name and the tag. Returns the blobs by hex.
pub fn check_layout(
    path: &Path,
    pin: &str,
    media_type: &str,
    containerd_name: &str,
    tag: &str,
    expected: &[&Blob],
) -> BTreeMap<String, Vec<u8>> {
    let members = read_archive(path);
    let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
    let mut expected_hex: Vec<String> = expected.iter().map(|b| b.hex()).collect();
    expected_hex.sort();
    expected_hex.dedup();
    let mut want = vec!["oci-layout".to_string(), "index.json".to_string()];
    want.extend(expected_hex.iter().map(|h| format!("blobs/sha256/{h}")));
    assert_eq!(names, want, "archive members");
    assert_eq!(members[0].bytes, br#"{"imageLayoutVersion":"1.0.0"}"#);
    let index: serde_json::Value =
        serde_json::from_slice(&members[1].bytes).expect("index.json is JSON");
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(index["mediaType"], OCI_INDEX);
    let manifests = index["manifests"].as_array().expect("manifests");
    assert_eq!(
        manifests.len(),
        1,
        "index.json lists one descriptor: {index}"
    );
    let d = &manifests[0];
    assert_eq!(d["digest"], pin);
    assert_eq!(d["mediaType"], media_type);
    assert_eq!(
        d["annotations"]["io.containerd.image.name"],
        containerd_name
    );
    assert_eq!(d["annotations"]["org.opencontainers.image.ref.name"], tag);
    let blobs: BTreeMap<String, Vec<u8>> = members
        .into_iter()
        .skip(2)
        .map(|m| {
            (
                m.name.trim_start_matches("blobs/sha256/").to_string(),
                m.bytes,
            )
        })
        .collect();
    let top = blobs
        .get(pin.trim_start_matches("sha256:"))
        .expect("the pinned document is in the archive");
    assert_eq!(d["size"], top.len());
    for blob in expected {
        assert_eq!(
            blobs[&blob.hex()],
            blob.bytes,
            "blob {} byte for byte",
            blob.digest()
        );
    }
    blobs
}
