//! Fuzz target: finding a file's checksum in a published checksum file (`.sha256`, `SHA256SUMS`, BSD style).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for name in ["kubelet", "etcd-v3.5.16-linux-amd64.tar.gz", ""] {
        let _ = imagebuilder::checksum::find_in_checksum_file(&text, name);
    }
});
