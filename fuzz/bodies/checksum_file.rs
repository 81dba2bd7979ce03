//! The body of fuzz target `checksum_file`: finding a file's checksum in a published checksum file (`.sha256`, `SHA256SUMS`, BSD style).
//!
//! Shared by the fuzz binary (`fuzz/fuzz_targets/checksum_file.rs`) and the corpus replay of `cargo test`
//! (`imagebuilder/tests/fuzz_corpus_replay.rs`): one input, any bytes; a panic is a finding.

/// Run one input through what the target covers.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for name in ["kubelet", "etcd-v3.5.16-linux-amd64.tar.gz", ""] {
        let _ = imagebuilder::checksum::find_in_checksum_file(&text, name);
    }
}
