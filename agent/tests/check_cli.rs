//! The `k8s-agent check` binary over the staged-image-tree fixture of the host-check tests
//! (`checks/tests/support/tree_fixture.rs`): exits 0 / 1 / 2 and its `--json` output parses.

#[path = "../../checks/tests/support/tree_fixture.rs"]
mod tree_fixture;

use std::process::{Command, Output};
use tree_fixture::*;

fn run_binary(args: &[&str]) -> TestResult<Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_k8s-agent"))
        .args(args)
        .output()?)
}

fn root_arg(fixture: &Fixture) -> TestResult<&str> {
    fixture
        .root()
        .to_str()
        .ok_or_else(|| "temp dir is not UTF-8".into())
}

#[test]
fn the_binary_exits_0_on_a_good_tree_and_1_on_a_broken_one() -> TestResult {
    let good = Fixture::good()?;
    let out = run_binary(&["check", "--root", root_arg(&good)?])?;
    let stdout = String::from_utf8(out.stdout)?;
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("PASS sysctl /usr/lib/sysctl.d/90-kubernetes.conf: "),
        "{stdout}"
    );
    assert!(
        stdout.ends_with(" passed, 0 failed, 0 warnings\n"),
        "{stdout}"
    );

    let out = run_binary(&["check", "--root", root_arg(&good)?, "--json"])?;
    assert_eq!(out.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(json["format_version"], 1);
    assert_eq!(json["passed"], true);
    assert_eq!(json["root"], root_arg(&good)?);
    assert_eq!(json["summary"]["failed"], 0);
    assert_eq!(json["standins"], serde_json::json!([]));

    let mut broken = Fixture::new(&[])?;
    replace_in(
        broken.root(),
        SYSCTL,
        "net.ipv4.ip_forward = 1",
        "net.ipv4.ip_forward = 0",
    )?;
    broken.seal()?;
    let out = run_binary(&["check", "--root", root_arg(&broken)?])?;
    let stdout = String::from_utf8(out.stdout)?;
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(
            "FAIL sysctl /usr/lib/sysctl.d/90-kubernetes.conf: net.ipv4.ip_forward is not set to 1"
        ),
        "{stdout}"
    );

    let out = run_binary(&["check", "--json", "--root", root_arg(&broken)?])?;
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(json["passed"], false);
    assert_eq!(json["summary"]["failed"], 1);
    let results = json["results"]
        .as_array()
        .ok_or("results is not an array")?;
    let failed: Vec<_> = results.iter().filter(|r| r["status"] == "fail").collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["rule"], "sysctl");
    assert_eq!(failed[0]["path"], SYSCTL);
    assert!(failed[0]["message"].is_string());
    Ok(())
}

#[test]
fn the_binary_exits_2_when_the_check_cannot_run() -> TestResult {
    let dir = tempfile::tempdir()?;
    let missing = dir.path().join("missing");
    let out = run_binary(&["check", "--root", missing.to_str().ok_or("not UTF-8")?])?;
    let stderr = String::from_utf8(out.stderr)?;
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.starts_with("error: cannot use --root "), "{stderr}");
    assert!(stderr.contains("\nhint: "), "{stderr}");
    assert!(out.stdout.is_empty());

    let file = dir.path().join("file");
    std::fs::write(&file, "")?;
    let out = run_binary(&["check", "--root", file.to_str().ok_or("not UTF-8")?])?;
    assert_eq!(out.status.code(), Some(2));

    let out = run_binary(&["check", "--no-such-flag"])?;
    assert_eq!(out.status.code(), Some(2));
    let out = run_binary(&["--help"])?;
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8(out.stdout)?.contains("Exit codes:"));
    Ok(())
}
