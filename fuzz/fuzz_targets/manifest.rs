//! Fuzz target `manifest` (libFuzzer): the body is `fuzz/bodies/manifest.rs`, shared with the corpus replay in
//! `cargo test`.
#![no_main]

#[path = "../bodies/manifest.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
