//! The `k8s-agent` binary as a process: `run` waiting for a role file while `status` explains why, `role` on good
//! and bad files (secrets redacted), and PID-1 duty under `unshare --pid --fork` (an orphaned grandchild is
//! reaped, and SIGTERM is forwarded to the children before the agent exits).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_k8s-agent");

/// Kills and waits for a child on drop, so a failing test leaves no process behind.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(what: &str, timeout: Duration, mut probe: impl FnMut() -> bool) {
    let start = Instant::now();
    while !probe() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn status(root: &Path, json: bool) -> (i32, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(["status", "--no-units", "--root"]).arg(root);
    if json {
        cmd.arg("--json");
    }
    let out = cmd.output().expect("run status");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn run_waits_for_the_role_file_and_status_says_why() {
    let root = tempfile::tempdir().expect("tempdir");
    let (code, text) = status(root.path(), false);
    assert_eq!(code, 5, "no state yet: {text}");

    let agent = Command::new(BIN)
        .args(["run", "--nameserver", "127.0.0.1:9", "--root"])
        .arg(root.path())
        .env("K8S_AGENT_LOG", "debug")
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn agent");
    let _agent = Reaped(agent);
    let state = root.path().join("run/k8s-agent/state.json");
    wait_for("state.json", Duration::from_secs(20), || state.exists());
    let (code, text) = status(root.path(), false);
    assert_eq!(code, 3, "{text}");
    assert!(
        text.contains("cloud-init has not written a role file yet"),
        "{text}"
    );
    let (code, json) = status(root.path(), true);
    assert_eq!(code, 3);
    let v: serde_json::Value = serde_json::from_str(&json).expect("status json");
    assert_eq!(v["condition"], "waiting");
    assert_eq!(v["phase"], "role");

    // Both role files: refuse and start nothing; status exit 4 names both files.
    let sysconfig = root.path().join("etc/sysconfig");
    std::fs::create_dir_all(&sysconfig).expect("mkdir");
    std::fs::write(sysconfig.join("kubernetes-masters"), "CLUSTER_NAME=prod\n").expect("write");
    std::fs::write(sysconfig.join("kubernetes-minions"), "CLUSTER_NAME=prod\n").expect("write");
    wait_for("failed phase", Duration::from_secs(20), || {
        status(root.path(), false).0 == 4
    });
    let (_, text) = status(root.path(), false);
    assert!(
        text.contains("kubernetes-masters") && text.contains("kubernetes-minions"),
        "{text}"
    );
    assert!(!text.contains("unit "), "nothing was started: {text}");
}

#[test]
fn role_prints_the_file_with_the_token_redacted() {
    let root = tempfile::tempdir().expect("tempdir");
    let code = Command::new(BIN)
        .args(["role", "--root"])
        .arg(root.path())
        .status()
        .expect("role");
    assert_eq!(code.code(), Some(5), "no role file yet");

    let sysconfig = root.path().join("etc/sysconfig");
    std::fs::create_dir_all(&sysconfig).expect("mkdir");
    let token = "abcdef.0123456789abcdef";
    std::fs::write(
        sysconfig.join("kubernetes-minions"),
        format!(
            "CLUSTER_NAME=prod\nBOOTSTRAP_TOKEN={token}\nCA_CERT_HASH=sha256:{}\nWEAVE_CONSENSUS=3\n",
            "ab".repeat(32)
        ),
    )
    .expect("write");
    let out = Command::new(BIN)
        .args(["role", "--root"])
        .arg(root.path())
        .output()
        .expect("role");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("CLUSTER_NAME=prod"), "{text}");
    assert!(
        text.contains("BOOTSTRAP_TOKEN=abcdef.<redacted>"),
        "the token id is public, its secret is not: {text}"
    );
    assert!(
        !text.contains("0123456789abcdef")
            && !String::from_utf8_lossy(&out.stderr).contains("0123456789abcdef")
    );

    std::fs::write(
        sysconfig.join("kubernetes-minions"),
        "CLUSTER_NAME=Prod_1\n",
    )
    .expect("write");
    let out = Command::new(BIN)
        .args(["role", "--root"])
        .arg(root.path())
        .output()
        .expect("role");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("kubernetes-minions:1"), "{err}");
}

/// Children of `pid` in the host's /proc, with their state letter.
fn children_of(pid: u32) -> Vec<(u32, char)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(p) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let mut fields = stat[close + 1..].split_whitespace();
        let state = fields.next().and_then(|s| s.chars().next()).unwrap_or('?');
        if fields.next().and_then(|s| s.parse::<u32>().ok()) == Some(pid) {
            out.push((p, state));
        }
    }
    out
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn as_pid1_it_reaps_orphans_and_forwards_sigterm() {
    if !(have("unshare") && have("nsenter") && nix::unistd::geteuid().is_root()) {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run this test as root with util-linux"
        );
        eprintln!("skipped: needs root, unshare and nsenter");
        return;
    }
    let root = tempfile::tempdir().expect("tempdir");
    let unshare = Command::new("unshare")
        .args([
            "--pid",
            "--fork",
            "--mount-proc",
            "--kill-child",
            BIN,
            "run",
            "--nameserver",
            "127.0.0.1:9",
            "--root",
        ])
        .arg(root.path())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn unshare");
    let unshare_pid = unshare.id();
    let _unshare = Reaped(unshare);
    let mut agent_pid = 0;
    wait_for("the agent as PID 1", Duration::from_secs(20), || {
        agent_pid = children_of(unshare_pid).first().map_or(0, |c| c.0);
        agent_pid != 0 && root.path().join("run/k8s-agent/state.json").exists()
    });

    // A grandchild that outlives its parent becomes the agent's child; one that exits must be reaped, not a zombie.
    // The long-lived one writes a marker when it gets SIGTERM: a child merely killed when the namespace's init
    // exits (SIGKILL) writes none, so the marker proves the agent forwarded the signal.
    let marker = root.path().join("got-sigterm");
    let script = format!(
        "sh -c 'trap \"echo term > {}; exit 0\" TERM; while :; do sleep 0.1; done' & (sleep 0.2; exit 0) & exit 0",
        marker.display()
    );
    let ok = Command::new("nsenter")
        .args([
            "-t",
            &agent_pid.to_string(),
            "-p",
            "--",
            "sh",
            "-c",
            &script,
        ])
        .status()
        .expect("nsenter");
    assert!(ok.success());
    wait_for(
        "the orphans to be re-parented",
        Duration::from_secs(10),
        || children_of(agent_pid).len() >= 2,
    );
    wait_for(
        "the short orphan to be reaped",
        Duration::from_secs(10),
        || {
            let kids = children_of(agent_pid);
            kids.len() == 1 && kids.iter().all(|(_, state)| *state != 'Z')
        },
    );
    let sleeper = children_of(agent_pid)[0].0;

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent_pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM the agent");
    wait_for("the agent to exit", Duration::from_secs(10), || {
        !Path::new(&format!("/proc/{agent_pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{agent_pid}/stat"))
                .is_ok_and(|s| s.contains(") Z "))
    });
    assert!(
        !Path::new(&format!("/proc/{sleeper}")).exists(),
        "the child is gone"
    );
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap_or_default().trim(),
        "term",
        "the agent forwarded SIGTERM to its child"
    );
}
