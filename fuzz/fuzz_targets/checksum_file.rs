//! Fuzz target `checksum_file` (libFuzzer): the body is `fuzz/bodies/checksum_file.rs`, shared with the corpus replay in
//! `cargo test`.
#![no_main]

#[path = "../bodies/checksum_file.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
