//! `k8s_agent::systemd` against a REAL systemd: a Debian bookworm container booted with systemd-nspawn
//! (`tests/nspawn/rootfs.sh` + `tests/nspawn/node.sh`), reached from this process over the container's D-Bus socket
//! at `/proc/<leader>/root/run/dbus/system_bus_socket`. Test units are bound read-only into the container at
//! `/run/systemd/system` (the runtime unit directory), so they are there when it boots.
//!
//! Needs root, debootstrap and systemd-nspawn. Without them the test prints why and passes, unless `CI` is set, where
//! it fails. The first run builds and caches the rootfs (about 1-2 minutes, in `$K8S_TEST_CACHE`, default
//! `/var/cache/k8s-image-test`); later runs take seconds. The container, its cgroups and netns are removed by a guard,
//! also when an assertion fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_agent::plan::UnitFailure;
use k8s_agent::systemd::{SystemdClient, UnitState, explain};
use systemd_zbus::{ManagerProxy, ServiceProxy};
use zbus::proxy::CacheProperties;

const TIMEOUT: Duration = Duration::from_secs(20);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn harness(script: &str) -> PathBuf {
    repo_root().join("tests/nspawn").join(script)
}

fn find_tool(tool: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin"].map(PathBuf::from))
        .any(|dir| dir.join(tool).is_file())
}

/// Why this machine cannot run the test, if it cannot.
fn missing_prerequisite() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not running as root (systemd-nspawn, cgroups and netns need it)".into());
    }
    for (tool, package) in [
        ("debootstrap", "debootstrap"),
        ("systemd-nspawn", "systemd-container"),
        ("ip", "iproute2"),
        ("nsenter", "util-linux"),
    ] {
        if !find_tool(tool) {
            return Some(format!(
                "{tool} is missing (apt-get install -y --no-install-recommends {package})"
            ));
        }
    }
    None
}

fn run(cmd: &mut Command) -> String {
    let shown = format!("{cmd:?}");
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    assert!(
        output.status.success(),
        "{shown} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A booted container; dropping it runs `node.sh down` (also when the test panics).
struct Node {
    name: String,
    leader: u32,
}

impl Node {
    fn up(name: &str, rootfs: &str, extra: &[String]) -> Node {
        // The guard exists before `up` runs, so a half-made node is torn down too.
        let mut node = Node {
            name: name.to_owned(),
            leader: 0,
        };
        let out = run(Command::new(harness("node.sh"))
            .arg("up")
            .arg(name)
            .arg(rootfs)
            .args(extra));
        node.leader = out
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or_else(|| {
                panic!("node.sh up printed no leader pid: {out:?}");
            });
        node
    }

    fn bus_address(&self) -> String {
        format!(
            "unix:path=/proc/{}/root/run/dbus/system_bus_socket",
            self.leader
        )
    }

    /// Output of a command run inside the container (for diagnostics only).
    fn inside(&self, args: &[&str]) -> String {
        Command::new("nsenter")
            .args(["-t", &self.leader.to_string(), "-a", "--"])
            .args(args)
            .output()
            .map(|o| {
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                )
            })
            .unwrap_or_else(|e| format!("(nsenter failed: {e})"))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if std::thread::panicking() && self.leader != 0 {
            eprintln!(
                "--- {} failed units:\n{}",
                self.name,
                self.inside(&["systemctl", "--failed", "--no-pager"])
            );
            eprintln!(
                "--- {} journal (last 40 lines):\n{}",
                self.name,
                self.inside(&["journalctl", "--no-pager", "-n", "40"])
            );
        }
        let started = Instant::now();
        match Command::new(harness("node.sh"))
            .arg("down")
            .arg(&self.name)
            .output()
        {
            Ok(out) if out.status.success() => {
                eprintln!("node {} down in {:?}", self.name, started.elapsed());
            }
            Ok(out) => eprintln!(
                "node.sh down {} failed: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => eprintln!("cannot run node.sh down {}: {e}", self.name),
        }
    }
}

/// The test units, as they would sit in /usr/lib/systemd/system on an image (role drop-in included).
fn write_units(dir: &Path) {
    let oneshot = "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n";
    let files: &[(&str, &str)] = &[
        ("k8s-test-oneshot.service", oneshot),
        (
            "k8s-test-sleep.service",
            "[Service]\nType=simple\nExecStart=/bin/sleep infinity\n",
        ),
        ("k8s-test-before-fail.service", oneshot),
        (
            "k8s-test-fail.service",
            "[Service]\nType=oneshot\nExecStart=/bin/false\n",
        ),
        ("k8s-test-after-fail.service", oneshot),
        ("k8s-test-master-only.service", oneshot),
        (
            "k8s-test-master-only.service.d/role.conf",
            "[Unit]\nConditionPathExists=/etc/sysconfig/kubernetes-masters\n",
        ),
        (
            "k8s-test-broken-dep.service",
            "[Service]\nType=oneshot\nExecStart=/bin/false\n",
        ),
        (
            "k8s-test-needs-broken.service",
            &format!(
                "[Unit]\nRequires=k8s-test-broken-dep.service\nAfter=k8s-test-broken-dep.service\n{oneshot}"
            ),
        ),
        (
            "k8s-test-slow.service",
            "[Service]\nType=oneshot\nExecStart=/bin/sleep 60\n",
        ),
        (
            "k8s-test-two-seconds.service",
            "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/sleep 2\n",
        ),
    ];
    for (name, text) in files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create unit dir");
        }
        std::fs::write(&path, text).expect("write unit");
    }
}

fn names(units: &[&str]) -> Vec<String> {
    units.iter().map(|u| (*u).to_owned()).collect()
}

fn state<'a>(states: &'a [UnitState], unit: &str) -> &'a UnitState {
    states
        .iter()
        .find(|s| s.unit == unit)
        .unwrap_or_else(|| panic!("no state for {unit} in {states:?}"))
}

async fn main_pid(client: &SystemdClient, unit: &str) -> u32 {
    let conn = client.connection();
    let manager = ManagerProxy::builder(conn)
        .cache_properties(CacheProperties::No)
        .build()
        .await
        .expect("manager");
    let path = manager.get_unit(unit).await.expect("GetUnit");
    let service = ServiceProxy::builder(conn)
        .path(path)
        .expect("unit path")
        .cache_properties(CacheProperties::No)
        .build()
        .await
        .expect("service proxy");
    service.main_pid().await.expect("MainPID")
}

fn failure(unit: &str, active_state: &str, sub_state: &str, result: &str) -> UnitFailure {
    UnitFailure {
        unit: unit.to_owned(),
        active_state: active_state.to_owned(),
        sub_state: sub_state.to_owned(),
        result: result.to_owned(),
    }
}

#[test]
fn start_units_against_a_booted_systemd() {
    if let Some(why) = missing_prerequisite() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set, but this machine cannot run the nspawn test: {why}"
        );
        eprintln!("SKIPPED start_units_against_a_booted_systemd: {why}");
        return;
    }

    let t = Instant::now();
    let rootfs = run(&mut Command::new(harness("rootfs.sh")));
    let rootfs = rootfs.lines().last().unwrap_or_default().to_owned();
    eprintln!("rootfs {rootfs} ready in {:?}", t.elapsed());

    let units = tempfile::tempdir().expect("tempdir");
    write_units(units.path());

    let t = Instant::now();
    let name = format!("sdbus-{}", std::process::id());
    let node = Node::up(
        &name,
        &rootfs,
        &[format!(
            "--bind-ro={}:/run/systemd/system",
            units.path().display()
        )],
    );
    eprintln!(
        "node {name} booted in {:?} (leader {})",
        t.elapsed(),
        node.leader
    );

    let t = Instant::now();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(cases(&node));
    eprintln!("cases ran in {:?}", t.elapsed());
}

async fn cases(node: &Node) {
    let client = SystemdClient::at_address(&node.bus_address())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "connected to systemd {} at {}",
        client.systemd_version(),
        client.address()
    );

    // (a) Two units, in order: a oneshot that remains active, and a long-running simple service.
    let both = names(&["k8s-test-oneshot.service", "k8s-test-sleep.service"]);
    let started = client.start_units(&both, TIMEOUT).await;
    assert_eq!(started, Ok(both.clone()), "(a)");
    let states = client.unit_states(&both).await;
    let oneshot = state(&states, "k8s-test-oneshot.service");
    assert_eq!(
        (
            oneshot.load_state.as_str(),
            oneshot.active_state.as_str(),
            oneshot.sub_state.as_str()
        ),
        ("loaded", "active", "exited"),
        "(a) {oneshot:?}"
    );
    assert_eq!(oneshot.result, "success", "(a) {oneshot:?}");
    let sleep = state(&states, "k8s-test-sleep.service").clone();
    assert_eq!(
        (sleep.active_state.as_str(), sleep.sub_state.as_str()),
        ("active", "running"),
        "(a) {sleep:?}"
    );
    assert!(sleep.active_enter_timestamp_us > 0, "(a) {sleep:?}");

    // (d) Starting units that are already active does not restart them.
    let pid_before = main_pid(&client, "k8s-test-sleep.service").await;
    assert!(pid_before > 0, "(d) sleep has a main pid");
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Repeatedly: the start job of an active unit finishes at once, the tightest case for the race between the
    // job's JobRemoved signal and listening for it.
    for round in 0..25 {
        let again = client.start_units(&both, TIMEOUT).await;
        assert_eq!(again, Ok(both.clone()), "(d) round {round}");
    }
    let states_again = client.unit_states(&both).await;
    assert_eq!(
        states_again, states,
        "(d) states, incl. ActiveEnterTimestamp, unchanged"
    );
    assert_eq!(
        main_pid(&client, "k8s-test-sleep.service").await,
        pid_before,
        "(d) MainPID unchanged"
    );

    // (b) A failing unit: the units before it are reported started, the ones after it are not started.
    let seq = names(&[
        "k8s-test-before-fail.service",
        "k8s-test-fail.service",
        "k8s-test-after-fail.service",
    ]);
    let outcome = client.start_units(&seq, TIMEOUT).await;
    assert_eq!(
        outcome,
        Err((
            names(&["k8s-test-before-fail.service"]),
            failure("k8s-test-fail.service", "failed", "failed", "exit-code")
        )),
        "(b)"
    );
    let states = client.unit_states(&seq).await;
    assert_eq!(
        state(&states, "k8s-test-fail.service").result,
        "exit-code",
        "(b) {states:?}"
    );
    let after = state(&states, "k8s-test-after-fail.service");
    assert_eq!(
        (after.active_state.as_str(), after.sub_state.as_str()),
        ("inactive", "dead"),
        "(b) {after:?}"
    );

    // (c) The role drop-in's ConditionPathExists= on an absent role file: the job is "done" but nothing ran.
    let master = names(&["k8s-test-master-only.service"]);
    let outcome = client.start_units(&master, TIMEOUT).await;
    let expected = failure(
        "k8s-test-master-only.service",
        "inactive",
        "dead",
        "condition-failed",
    );
    assert_eq!(outcome, Err((vec![], expected.clone())), "(c)");
    assert!(
        explain(&expected).contains("Condition"),
        "(c) {}",
        explain(&expected)
    );

    // (e) A unit that does not exist.
    let nope = names(&["k8s-test-does-not-exist.service"]);
    let outcome = client.start_units(&nope, TIMEOUT).await;
    let expected = failure(
        "k8s-test-does-not-exist.service",
        "inactive",
        "dead",
        "not-found",
    );
    assert_eq!(outcome, Err((vec![], expected.clone())), "(e)");
    let states = client.unit_states(&nope).await;
    assert_eq!(states[0].load_state, "not-found", "(e) {states:?}");
    let message = explain(&expected);
    assert!(
        message.contains("k8s-test-does-not-exist.service does not exist"),
        "(e) {message}"
    );

    // (f) A unit whose Requires= dependency fails: the job result "dependency".
    let needs = names(&["k8s-test-oneshot.service", "k8s-test-needs-broken.service"]);
    let outcome = client.start_units(&needs, TIMEOUT).await;
    assert_eq!(
        outcome,
        Err((
            names(&["k8s-test-oneshot.service"]),
            failure(
                "k8s-test-needs-broken.service",
                "inactive",
                "dead",
                "dependency"
            )
        )),
        "(f)"
    );

    // (g) A start job slower than the agent's bound: reported as agent-timeout, unit still activating.
    let t = Instant::now();
    let outcome = client
        .start_units(
            &names(&["k8s-test-slow.service"]),
            Duration::from_millis(800),
        )
        .await;
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "(g) bounded: {:?}",
        t.elapsed()
    );
    assert_eq!(
        outcome,
        Err((
            vec![],
            failure(
                "k8s-test-slow.service",
                "activating",
                "start",
                "agent-timeout"
            )
        )),
        "(g)"
    );

    daemon_reexec_cases(node, &client).await;
}

/// `systemctl daemon-reexec` inside the node, on a blocking thread (the reexec takes systemd off the bus for a
/// moment; the client's connection to dbus-daemon stays).
async fn daemon_reexec(node: &Node) -> String {
    let leader = node.leader.to_string();
    tokio::task::spawn_blocking(move || {
        let out = Command::new("nsenter")
            .args(["-t", &leader, "-a", "--", "systemctl", "daemon-reexec"])
            .output()
            .expect("nsenter systemctl daemon-reexec");
        format!(
            "{}{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
    .await
    .expect("join daemon-reexec")
}

async fn daemon_reexec_cases(node: &Node, client: &SystemdClient) {
    // (h) systemd re-executes while a start job is pending: the job survives the reexec (systemd serializes it);
    // its JobRemoved may be sent before systemd is back on the bus, so the client must not depend on that signal
    // alone. The start is reported as started, not as a timeout.
    let two = names(&["k8s-test-two-seconds.service"]);
    let t = Instant::now();
    let (outcome, reexec) = tokio::join!(client.start_units(&two, TIMEOUT), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        daemon_reexec(node).await
    });
    eprintln!("(h) daemon-reexec: {reexec}");
    assert_eq!(outcome, Ok(two.clone()), "(h) after {:?}", t.elapsed());
    assert!(
        t.elapsed() < TIMEOUT,
        "(h) the missed signal was noticed: {:?}",
        t.elapsed()
    );

    // (i) Start calls racing a reexec: each is started, or a bus error the agent retries — never a refusal or a
    // timeout, which the agent would report as the unit's failure.
    let oneshot = names(&["k8s-test-oneshot.service"]);
    for round in 0..4 {
        let reexec = tokio::spawn({
            let leader = node.leader;
            async move {
                tokio::time::sleep(Duration::from_millis(20 * round)).await;
                let out = tokio::task::spawn_blocking(move || {
                    Command::new("nsenter")
                        .args(["-t", &leader.to_string(), "-a", "--"])
                        .args(["systemctl", "daemon-reexec"])
                        .status()
                })
                .await;
                format!("{out:?}")
            }
        });
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut calls = 0;
        while Instant::now() < deadline {
            calls += 1;
            match client.start_units(&oneshot, TIMEOUT).await {
                Ok(started) => assert_eq!(started, oneshot, "(i) round {round}"),
                Err((_, failure)) => assert!(
                    failure.is_bus_error(),
                    "(i) round {round} call {calls}: {failure:?}: {}",
                    explain(&failure)
                ),
            }
        }
        eprintln!(
            "(i) round {round}: {calls} calls, {}",
            reexec.await.expect("join")
        );
    }
}

/// Needs no container: a bus that is not there is a clear error naming the address.
#[test]
fn unreachable_bus_is_a_clear_error() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let address = "unix:path=/nonexistent/k8s-test/system_bus_socket";
    let error = runtime
        .block_on(SystemdClient::at_address(address))
        .expect_err("no bus there");
    let text = error.to_string();
    assert!(text.contains(address), "{text}");
    assert!(text.contains("hint:"), "{text}");
}
