//! The archive's real consumer agrees: a private containerd (own root, state and socket in a temporary directory,
//! CRI plugin off) imports what `write_oci_archive` wrote with `ctr -n k8s.io images import`, as the node does at
//! boot, unpacks it (which checks every layer against the config's diff_ids), names it by `io.containerd.image.name`
//! and shows our manifest digest as DIGEST.
//!
//! Needs `containerd` and `ctr` (Debian package `containerd`) and root; skips with a message without them, unless
//! `CI` is set: then it fails, so CI cannot pass by not running it.

use imagebuilder::oci::{ImageFile, OciImageSpec, write_oci_archive_file};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

struct Containerd {
    child: Child,
    dir: tempfile::TempDir,
}

impl Containerd {
    fn socket(&self) -> PathBuf {
        self.dir.path().join("containerd.sock")
    }

    fn start() -> Containerd {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display();
        let config = format!(
            "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{d}/containerd.sock\"\n\
             [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{d}/opt\"\n"
        );
        std::fs::write(dir.path().join("config.toml"), config).expect("config");
        let log = std::fs::File::create(dir.path().join("containerd.log")).expect("log");
        let child = Command::new("containerd")
            .arg("--config")
            .arg(dir.path().join("config.toml"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let c = Containerd { child, dir };
        let started = Instant::now();
        while !c.ctr(&["version"]).status.success() {
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "containerd did not answer within 15 s: {}",
                std::fs::read_to_string(c.dir.path().join("containerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        c
    }

    fn ctr(&self, args: &[&str]) -> Output {
        Command::new("ctr")
            .arg("--address")
            .arg(self.socket())
            .args(["--namespace", "k8s.io"])
            .args(args)
            .output()
            .expect("run ctr")
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn available() -> bool {
    let found = |bin: &str| {
        Command::new(bin)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let root = nix_is_root();
    if !(found("containerd") && found("ctr") && root) {
        assert!(
            std::env::var_os("CI").is_none(),
            "needs containerd, ctr (apt-get install --no-install-recommends containerd) and root; CI is set, so \
             not skipping"
        );
        eprintln!("skipping: needs containerd, ctr and root");
        return false;
    }
    true
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .is_some_and(|l| l.split_whitespace().nth(2) == Some("0"))
    })
}

fn write(dir: &Path) -> (PathBuf, String) {
    let spec = OciImageSpec {
        // A symbolic link as a busybox image has them (containerd unpacks it with the layer).
        symlinks: vec![("/bin/pause".into(), "../pause".into())],
        cmd: vec![],
        files: vec![
            ImageFile {
                path: "/pause".into(),
                contents: b"\x7fELF pretend pause".to_vec(),
                mode: 0o755,
            },
            ImageFile {
                path: "/etc/os-release".into(),
                contents: b"ID=k8s-image\n".to_vec(),
                mode: 0o644,
            },
        ],
        entrypoint: vec!["/pause".into()],
        ref_name: "registry.k8s.io/pause:3.10.1".into(),
        arch: match std::env::consts::ARCH {
            "aarch64" => "arm64".into(),
            _ => "amd64".into(),
        },
        created_unix: 1_767_225_600,
        labels: BTreeMap::new(),
        user: Some("65535:65535".into()),
        env: vec![],
    };
    let path = dir.join("pause.tar");
    let digest = write_oci_archive_file(&spec, &path).expect("write");
    (path, digest)
}

#[test]
fn ctr_imports_it_under_its_full_name_and_our_digest() {
    if !available() {
        return;
    }
    let containerd = Containerd::start();
    let (archive, digest) = write(containerd.dir.path());
    let out = containerd.ctr(&["images", "import", &archive.display().to_string()]);
    assert!(
        out.status.success(),
        "ctr images import: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = containerd.ctr(&["images", "ls"]);
    let listing = String::from_utf8_lossy(&out.stdout).to_string();
    let line = listing
        .lines()
        .find(|l| l.starts_with("registry.k8s.io/pause:3.10.1 "))
        .unwrap_or_else(|| panic!("no registry.k8s.io/pause:3.10.1 in:\n{listing}"));
    let columns: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        columns[1], "application/vnd.oci.image.manifest.v1+json",
        "TYPE: {line}"
    );
    assert_eq!(columns[2], digest, "DIGEST: {line}");
    // Unpacked: containerd applied the layer and found its diff_id as the config says.
    let out = containerd.ctr(&["images", "check"]);
    let check = String::from_utf8_lossy(&out.stdout).to_string();
    let line = check
        .lines()
        .find(|l| l.starts_with("registry.k8s.io/pause:3.10.1 "))
        .unwrap_or_else(|| panic!("ctr images check:\n{check}"));
    let columns: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(columns.get(3), Some(&"complete"), "STATUS: {line}");
    assert_eq!(columns.last(), Some(&"true"), "UNPACKED: {line}");
    eprintln!("{line}");
}
