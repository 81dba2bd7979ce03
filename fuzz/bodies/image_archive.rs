//! The body of fuzz target `image_archive`: the image archive verifier (`imagebuilder::oci::verify::verify_image_archive`) on arbitrary tar
//! bytes — members, index.json, manifests, configs and blobs are all attacker-controlled.
//!
//! Shared by the fuzz binary (`fuzz/fuzz_targets/image_archive.rs`) and the corpus replay of `cargo test`
//! (`imagebuilder/tests/fuzz_corpus_replay.rs`): one input, any bytes; a panic is a finding.
use std::io::Write;

/// Run one input through what the target covers.
pub fn run(data: &[u8]) {
    let Ok(mut file) = tempfile::NamedTempFile::new() else {
        return;
    };
    if file.write_all(data).is_err() {
        return;
    }
    let digest = format!("sha256:{}", "0".repeat(64));
    let _ = imagebuilder::oci::verify::verify_image_archive(file.path(), &digest, "amd64");
}
