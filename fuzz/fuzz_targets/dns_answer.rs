//! Fuzz target `dns_answer` (libFuzzer): the body is `fuzz/bodies/dns_answer.rs`, shared with the corpus replay in
//! `cargo test`.
#![no_main]

#[path = "../bodies/dns_answer.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
