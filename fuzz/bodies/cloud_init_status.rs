//! The body of fuzz target `cloud_init_status`: cloud-init's status.json / result.json as the boot timeline reads them, and the secret scrubber over
//! arbitrary text (what the support bundle runs over journals).
//!
//! Shared by the fuzz binary (`fuzz/fuzz_targets/cloud_init_status.rs`) and the corpus replay of `cargo test`
//! (`imagebuilder/tests/fuzz_corpus_replay.rs`): one input, any bytes; a panic is a finding.

/// Run one input through what the target covers.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = k8s_core::timeline::parse_status(&text, Some(1_000));
    let _ = k8s_core::timeline::parse_result(&text);
    let mut secrets = k8s_core::redact::Secrets::new();
    secrets.learn_file("fuzz", &text);
    // A survivor is not a panic: `k8s-agent bundle` refuses to write in that case.
    let (clean, _) = secrets.scrub(&text);
    let _ = secrets.leaks(&clean);
}
