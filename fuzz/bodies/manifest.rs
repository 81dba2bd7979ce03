//! The body of fuzz target `manifest`: the TOML manifest parser and its checks (`imagebuilder::manifest::Manifest::parse`), including the
//! line:column rendering of its errors.
//!
//! Shared by the fuzz binary (`fuzz/fuzz_targets/manifest.rs`) and the corpus replay of `cargo test`
//! (`imagebuilder/tests/fuzz_corpus_replay.rs`): one input, any bytes; a panic is a finding.

/// Run one input through what the target covers.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match imagebuilder::manifest::Manifest::parse(
        std::path::Path::new("/fuzz/manifest.toml"),
        &text,
    ) {
        Ok(_) => {}
        Err(e) => {
            let _ = e.to_string();
        }
    }
}
