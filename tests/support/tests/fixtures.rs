//! The reader against JSON the agent really wrote: `status --json` of a master and a minion of the local cluster and
//! the demo image's lock (trimmed: fewer units, health checks and artifacts; every field kept), plus a blocked
//! minion made from one (`blocked-status.json`: waiting in import-images, a wrong digest, registered in DNS, a
//! changed role file). The expected values are what the Python helpers the scripts used before printed for them.

use k8s_test_support::{Error, lock_field, parse_lock, parse_status, status_field};
use std::process::{Command, Stdio};

const MASTER: &str = include_str!("fixtures/master-status.json");
const MINION: &str = include_str!("fixtures/minion1-status.json");
const BLOCKED: &str = include_str!("fixtures/blocked-status.json");
const LOCK: &str = include_str!("fixtures/lock.json");

fn field(text: &str, name: &str) -> String {
    let report = parse_status(text).expect("the fixture parses");
    status_field(&report, name).expect("a known field")
}

#[test]
fn a_ready_master() {
    assert_eq!(field(MASTER, "condition"), "ready");
    assert_eq!(field(MASTER, "phase"), "ready");
    assert_eq!(field(MASTER, "blocking"), "");
    assert_eq!(field(MASTER, "failure"), "");
    assert_eq!(field(MASTER, "restarts"), "0");
    assert_eq!(field(MASTER, "pod_cidr"), "");
    assert_eq!(field(MASTER, "dns_registration.registered_at"), "");
    assert_eq!(field(MASTER, "units_started.count"), "4");
    assert_eq!(
        field(MASTER, "units_started"),
        "etcd.service kube-apiserver.service kube-controller-manager.service kube-scheduler.service"
    );
    assert!(field(MASTER, "join.pki_written").starts_with("etc/kubernetes/pki/apiserver.crt "));
    assert_eq!(field(MASTER, "join.images.outcome"), "");
    assert_eq!(field(MASTER, "join.images.0.digest"), "");
    assert_eq!(field(MASTER, "transition_at.import-images"), "0");
    assert_eq!(field(MASTER, "transition_at.ready"), "1796487758391");
}

#[test]
fn a_ready_minion() {
    assert_eq!(field(MINION, "condition"), "ready");
    assert_eq!(field(MINION, "pod_cidr"), "10.32.0.0/24");
    assert_eq!(field(MINION, "units_started.count"), "3");
    assert_eq!(field(MINION, "join.pki_written"), "");
    assert_eq!(
        field(MINION, "join.images.outcome"),
        "imported imported imported"
    );
    assert_eq!(
        field(MINION, "join.images.0.digest"),
        "sha256:a807f98ee510bd7953ff44f13c1336ea2d342825f1aa65ca25efce68a5116692"
    );
    assert_eq!(
        field(MINION, "transition_at.import-images"),
        "1796487767015"
    );
    assert_eq!(field(MINION, "transition_at.start-units"), "1796487768392");
}

#[test]
fn a_blocked_minion() {
    assert_eq!(field(BLOCKED, "condition"), "waiting");
    assert_eq!(field(BLOCKED, "phase"), "import-images");
    assert!(field(BLOCKED, "blocking").starts_with("importing the baked container images"));
    assert_eq!(field(BLOCKED, "restarts"), "2");
    assert_eq!(
        field(BLOCKED, "dns_registration.registered_at"),
        "1796487766000"
    );
    assert_eq!(field(BLOCKED, "units_started"), "");
    assert_eq!(field(BLOCKED, "units_started.count"), "0");
    assert_eq!(
        field(BLOCKED, "join.images.outcome"),
        "wrong-digest present"
    );
    // The last time it entered the phase, as the old {phase: at} dict kept it.
    assert_eq!(
        field(BLOCKED, "transition_at.import-images"),
        "1796487772037"
    );
    assert_eq!(field(BLOCKED, "transition_at.ready"), "0");
}

#[test]
fn unknown_names_and_other_shapes_are_refused() {
    let report = parse_status(MINION).expect("parses");
    assert!(matches!(
        status_field(&report, "conditon"),
        Err(Error::UnknownField { .. })
    ));
    assert!(matches!(
        status_field(&report, "transition_at.nope"),
        Err(Error::BadArgument(_))
    ));
    // A renamed field in the JSON is not an empty string: the whole input is refused.
    let renamed = MINION.replacen("\"condition\"", "\"state\"", 1);
    assert!(matches!(parse_status(&renamed), Err(Error::Parse { .. })));
    assert!(matches!(parse_status(""), Err(Error::Parse { .. })));
    assert!(matches!(parse_lock(MINION), Err(Error::Parse { .. })));
}

#[test]
fn the_lock() {
    let lock = parse_lock(LOCK).expect("the fixture parses");
    let ask = |name: &str, args: &[&str]| {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        lock_field(&lock, name, &args).expect("answers")
    };
    assert_eq!(ask("kubernetes_version", &[]), "1.37.2");
    assert_eq!(
        ask("images", &[]),
        "localhost/k8s-image/pause:3.10.1 sha256:a807f98ee510bd7953ff44f13c1336ea2d342825f1aa65ca25efce68a5116692\n\
         localhost/k8s-image/busybox:1.37.0 sha256:13b5baefba19b59782dc74be38f6ba54d46565d164b71e138206873a4b42fecb"
    );
    assert_eq!(ask("go_artifacts", &[]), "kubelet\nrunc\ncni-plugins");
    assert_eq!(
        ask("go_module", &["runc"]),
        "github.com/opencontainers/runc@v1.5.3"
    );
    assert_eq!(ask("go_module", &["pause"]), "");
    assert_eq!(ask("files", &["no-such-artifact"]), "");
    assert!(ask("files", &["cni-plugins"]).starts_with("/opt/cni/bin/"));
    assert!(matches!(
        lock_field(&lock, "artifact_names", &[]),
        Err(Error::UnknownField { .. })
    ));
    assert!(matches!(
        lock_field(&lock, "files", &[]),
        Err(Error::BadArgument(_))
    ));
}

#[test]
fn the_size_of_an_artifact_in_a_tree() {
    let lock = parse_lock(LOCK).expect("the fixture parses");
    let tree = std::env::temp_dir().join(format!("k8s-test-json-size-{}", std::process::id()));
    let runc = lock
        .artifacts
        .iter()
        .find(|a| a.name == "runc")
        .expect("runc");
    for (i, f) in runc.files.iter().enumerate() {
        let path = tree.join(f.path.trim_start_matches('/'));
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        std::fs::write(&path, vec![0u8; 1_250_000 * (i + 1)]).expect("write");
    }
    let got = lock_field(
        &lock,
        "size_mb",
        &["runc".into(), tree.display().to_string()],
    );
    std::fs::remove_dir_all(&tree).expect("cleanup");
    assert_eq!(got.expect("answers"), "1.2"); // 1.25 rounds to even, as Python's "%.1f"
    assert!(matches!(
        lock_field(&lock, "size_mb", &["runc".into(), "/nonexistent".into()]),
        Err(Error::Io(_))
    ));
}

fn run(args: &[&str], stdin: &str) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_k8s-test-json"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("runs");
    use std::io::Write;
    // The binary may exit without reading (an unknown name): a broken pipe here is no failure.
    let _ = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes());
    let out = child.wait_with_output().expect("waits");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn the_binary() {
    assert_eq!(
        run(&["status", "condition", "restarts"], MINION),
        (0, "ready\n0\n".into())
    );
    assert_eq!(run(&["status", "blocking"], MINION), (0, String::new()));
    assert_eq!(run(&["status", "nope"], MINION).0, 2);
    // An unknown name is refused before the input is read: not mistaken for a node that cannot answer.
    assert_eq!(run(&["status", "nope"], "").0, 2);
    assert_eq!(run(&["status", "condition"], "").0, 1);
    assert_eq!(run(&["status", "condition"], "{}"), (1, String::new()));
    assert_eq!(run(&["status"], MINION).0, 2);
    assert_eq!(
        run(&["lock", "kubernetes_version"], LOCK),
        (0, "1.37.2\n".into())
    );
    assert_eq!(run(&["lock", "nope"], LOCK).0, 2);
    assert_eq!(run(&["frob"], "").0, 2);
}
