//! Golden tests of the rendered `/run/k8s-agent/weave.env`: `tests/golden/weave/*.env`.
//! `UPDATE_GOLDEN=1 cargo test -p k8s-core --test core_weave_golden` rewrites the files (review the diff).

use k8s_core::weave::{
    ConsensusSize, WeaveDecision, WeaveOutcome, decide, render_env, validate_minion_answer,
};
use std::net::IpAddr;
use std::path::PathBuf;

const DECIDED_AT: u64 = 1_767_225_600_000;

fn decision(n: u32, records: &[&str], local: &[&str]) -> WeaveDecision {
    let records: Vec<IpAddr> = records
        .iter()
        .map(|s| s.parse().unwrap_or_else(|e| panic!("{s}: {e}")))
        .collect();
    let local: Vec<IpAddr> = local
        .iter()
        .map(|s| s.parse().unwrap_or_else(|e| panic!("{s}: {e}")))
        .collect();
    let answer = validate_minion_answer(&records).unwrap_or_else(|e| panic!("{e}"));
    let n = ConsensusSize::new(n).unwrap_or_else(|e| panic!("{e}"));
    match decide(n, &answer, &local, DECIDED_AT) {
        WeaveOutcome::Decided(d) => d,
        other => panic!("{other:?}"),
    }
}

fn check(name: &str, decision: &WeaveDecision) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/weave")
        .join(name);
    let rendered = render_env(decision);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &rendered).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    let golden =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        rendered,
        golden,
        "{} differs; UPDATE_GOLDEN=1 rewrites it",
        path.display()
    );
}

#[test]
fn core_member_of_three() {
    // The seeds' example grown to three minions; DNS order and a duplicate do not matter.
    let d = decision(
        3,
        &["172.20.0.64", "172.20.0.63", "172.20.0.65", "172.20.0.64"],
        &["172.20.0.63"],
    );
    check("core-member-of-3.env", &d);
}

#[test]
fn observer_joining_after_the_core() {
    let d = decision(
        3,
        &["172.20.0.63", "172.20.0.64", "172.20.0.65", "172.20.0.9"],
        &["172.20.0.9"],
    );
    check("observer-late-joiner.env", &d);
}

#[test]
fn observer_not_listed_itself() {
    let d = decision(
        2,
        &["172.20.0.63", "172.20.0.64"],
        &["172.20.0.70", "10.32.0.1"],
    );
    check("observer-not-listed.env", &d);
}

#[test]
fn single_minion_cluster() {
    let d = decision(1, &["10.0.0.5"], &["10.0.0.5"]);
    check("single-minion.env", &d);
}
