//! Bounded memory: an archive with a 200 MiB layer verifies while the process's peak resident memory (VmHWM) stays
//! far below the layer's size. Measured, not only argued: this file holds this one test, so its process runs
//! nothing else. The archive is written as a stream (the layer is `io::repeat(0)`), with the manifest and the config
//! after the layer, so re-reading them has to skip the 200 MiB.

use imagebuilder::oci::verify_image_archive;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::io::{BufWriter, Read, Write};
use std::time::Instant;

const LAYER_BYTES: u64 = 200 << 20;
/// Peak memory allowed: a fraction of the layer (the test harness itself takes a few MiB).
const PEAK_LIMIT_KIB: u64 = 48 << 10;

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

fn append(tar: &mut tar::Builder<impl Write>, name: &str, size: u64, data: impl Read) {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(size);
    h.set_mtime(0);
    tar.append_data(&mut h, name, data).expect("append");
}

#[test]
fn a_200_mib_layer_verifies_in_bounded_memory() {
    let started = Instant::now();
    let zeros = vec![0u8; 1 << 16];
    let mut hasher = Sha256::new();
    for _ in 0..LAYER_BYTES / zeros.len() as u64 {
        hasher.update(&zeros);
    }
    let layer = hex::encode(hasher.finalize());
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{layer}")]},
    }))
    .expect("config");
    let config_hex = hex::encode(Sha256::digest(&config));
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": format!("sha256:{config_hex}"), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": format!("sha256:{layer}"), "size": LAYER_BYTES}],
    }))
    .expect("manifest");
    let manifest_hex = hex::encode(Sha256::digest(&manifest));
    let digest = format!("sha256:{manifest_hex}");
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": manifest.len()}],
    }))
    .expect("index");

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("large.tar");
    let file = std::fs::File::create(&path).expect("create");
    let mut tar = tar::Builder::new(BufWriter::with_capacity(1 << 16, file));
    let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
    append(&mut tar, "oci-layout", layout.len() as u64, &layout[..]);
    append(&mut tar, "index.json", index.len() as u64, &index[..]);
    append(
        &mut tar,
        &format!("blobs/sha256/{layer}"),
        LAYER_BYTES,
        std::io::repeat(0).take(LAYER_BYTES),
    );
    append(
        &mut tar,
        &format!("blobs/sha256/{config_hex}"),
        config.len() as u64,
        &config[..],
    );
    append(
        &mut tar,
        &format!("blobs/sha256/{manifest_hex}"),
        manifest.len() as u64,
        &manifest[..],
    );
    tar.into_inner().expect("finish").flush().expect("flush");
    let written = started.elapsed();
    let before = peak_rss_kib();

    let started = Instant::now();
    let v = verify_image_archive(&path, &digest, "amd64").expect("verify");
    let verified = started.elapsed();
    assert_eq!(v.layers, vec![(format!("sha256:{layer}"), LAYER_BYTES)]);
    assert_eq!(
        v.total_blob_bytes,
        LAYER_BYTES + config.len() as u64 + manifest.len() as u64
    );
    let peak = peak_rss_kib();
    eprintln!(
        "200 MiB layer: written in {written:?}, verified in {verified:?}; peak RSS {peak} KiB ({before} KiB before verifying)"
    );
    assert!(
        peak < PEAK_LIMIT_KIB,
        "peak RSS {peak} KiB: the verifier held the layer (or much of it) in memory"
    );
}
