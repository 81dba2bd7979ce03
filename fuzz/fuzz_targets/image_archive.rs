//! Fuzz target: the image archive verifier (`imagebuilder::oci::verify::verify_image_archive`) on arbitrary tar
//! bytes — members, index.json, manifests, configs and blobs are all attacker-controlled.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::io::Write;

fuzz_target!(|data: &[u8]| {
    let Ok(mut file) = tempfile::NamedTempFile::new() else {
        return;
    };
    if file.write_all(data).is_err() {
        return;
    }
    let digest = format!("sha256:{}", "0".repeat(64));
    let _ = imagebuilder::oci::verify::verify_image_archive(file.path(), &digest, "amd64");
});
