//! Fuzz target: cloud-init's status.json / result.json as the boot timeline reads them, and the secret scrubber over
//! arbitrary text (what the support bundle runs over journals).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = k8s_agent::pure::timeline::parse_status(&text, Some(1_000));
    let _ = k8s_agent::pure::timeline::parse_result(&text);
    let mut secrets = k8s_agent::pure::redact::Secrets::new();
    secrets.learn_file("fuzz", &text);
    // A survivor is not a panic: `k8s-agent bundle` refuses to write in that case.
    let (clean, _) = secrets.scrub(&text);
    let _ = secrets.leaks(&clean);
});
