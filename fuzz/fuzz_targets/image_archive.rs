//! Fuzz target `image_archive` (libFuzzer): the body is `fuzz/bodies/image_archive.rs`, shared with the corpus replay in
//! `cargo test`.
#![no_main]

#[path = "../bodies/image_archive.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
