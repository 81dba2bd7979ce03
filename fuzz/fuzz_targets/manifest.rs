//! Fuzz target: the TOML manifest parser and its checks (`imagebuilder::manifest::Manifest::parse`), including the
//! line:column rendering of its errors.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
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
});
