//! Fuzz target `cluster_info` (libFuzzer): the body is `fuzz/bodies/cluster_info.rs`, shared with the corpus replay in
//! `cargo test`.
#![no_main]

#[path = "../bodies/cluster_info.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
