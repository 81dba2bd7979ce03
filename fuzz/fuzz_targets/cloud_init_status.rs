//! Fuzz target `cloud_init_status` (libFuzzer): the body is `fuzz/bodies/cloud_init_status.rs`, shared with the corpus replay in
//! `cargo test`.
#![no_main]

#[path = "../bodies/cloud_init_status.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
