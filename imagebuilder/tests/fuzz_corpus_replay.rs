//! The committed fuzz corpora (`fuzz/corpus/<target>/`, what the long rounds found, minimised) replayed through the
//! fuzz targets' own bodies (`fuzz/bodies/<target>.rs`, the code the libFuzzer binaries run), in the normal test
//! build: every input must run without a panic. This is not fuzzing — nothing new is generated, there is no coverage
//! feedback — but it runs in every `cargo test`, where the instrumented fuzz build (5–6 min) does not, so an input
//! that once reached new code keeps being checked against every change (e.g. an overflow or an `expect` a change
//! adds on a path only such an input takes).
//!
//! Lives in imagebuilder's tests because it is the one crate that depends on both crates the targets cover.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[path = "../../fuzz/bodies/checksum_file.rs"]
mod checksum_file;
#[path = "../../fuzz/bodies/cloud_init_status.rs"]
mod cloud_init_status;
#[path = "../../fuzz/bodies/cluster_info.rs"]
mod cluster_info;
#[path = "../../fuzz/bodies/dns_answer.rs"]
mod dns_answer;
#[path = "../../fuzz/bodies/image_archive.rs"]
mod image_archive;
#[path = "../../fuzz/bodies/manifest.rs"]
mod manifest;
#[path = "../../fuzz/bodies/role_file.rs"]
mod role_file;
#[path = "../../fuzz/bodies/state_file.rs"]
mod state_file;

type Body = fn(&[u8]);

/// Every target of `fuzz/Cargo.toml`, with its body.
const TARGETS: &[(&str, Body)] = &[
    ("checksum_file", checksum_file::run),
    ("cloud_init_status", cloud_init_status::run),
    ("cluster_info", cluster_info::run),
    ("dns_answer", dns_answer::run),
    ("image_archive", image_archive::run),
    ("manifest", manifest::run),
    ("role_file", role_file::run),
    ("state_file", state_file::run),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = fuzz_dir().join("corpus").join(target);
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    inputs.sort();
    inputs
}

/// One test per target, so `cargo test` runs them in parallel and names the target that failed.
fn replay(target: &str) {
    let body = TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, body)| *body)
        .unwrap_or_else(|| panic!("no body for {target}"));
    let inputs = corpus(target);
    assert!(
        !inputs.is_empty(),
        "fuzz/corpus/{target} is empty: the committed corpus is missing"
    );
    let started = Instant::now();
    let mut panics = Vec::new();
    for input in &inputs {
        let data = std::fs::read(input).unwrap_or_else(|e| panic!("{}: {e}", input.display()));
        if catch_unwind(AssertUnwindSafe(|| body(&data))).is_err() {
            panics.push(input.display().to_string());
        }
    }
    eprintln!(
        "{target}: {} inputs replayed in {:?}",
        inputs.len(),
        started.elapsed()
    );
    assert!(
        panics.is_empty(),
        "{target}: {} of {} corpus inputs panic (run one with `fuzz/target/<triple>/release/{target} FILE` after \
         tests/fuzz/run.sh builds it): {panics:#?}",
        panics.len(),
        inputs.len()
    );
}

#[test]
fn every_fuzz_target_is_replayed() {
    let in_cargo_toml =
        std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    let mut declared: Vec<&str> = in_cargo_toml
        .lines()
        .filter_map(|line| line.strip_prefix("name = \""))
        .filter_map(|rest| rest.strip_suffix('"'))
        .filter(|name| *name != "k8s-image-fuzz")
        .collect();
    let mut replayed: Vec<&str> = TARGETS.iter().map(|(name, _)| *name).collect();
    declared.sort_unstable();
    replayed.sort_unstable();
    assert_eq!(
        replayed, declared,
        "a fuzz target without a replay here (or the other way round)"
    );
}

#[test]
fn corpus_checksum_file() {
    replay("checksum_file");
}
#[test]
fn corpus_cloud_init_status() {
    replay("cloud_init_status");
}
#[test]
fn corpus_cluster_info() {
    replay("cluster_info");
}
#[test]
fn corpus_dns_answer() {
    replay("dns_answer");
}
#[test]
fn corpus_image_archive() {
    replay("image_archive");
}
#[test]
fn corpus_manifest() {
    replay("manifest");
}
#[test]
fn corpus_role_file() {
    replay("role_file");
}
#[test]
fn corpus_state_file() {
    replay("state_file");
}
