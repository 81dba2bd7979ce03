//! Fuzz target `role_file` (libFuzzer): the body is `fuzz/bodies/role_file.rs`, shared with the corpus replay in
//! `cargo test`.
#![no_main]

#[path = "../bodies/role_file.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
