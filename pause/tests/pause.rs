//! The pause program as a sandbox's PID 1: each test starts it with `unshare --pid --fork --mount-proc` (so it is
//! init of a fresh pid namespace, as in a pod) and watches it from the host's /proc: orphans handed to it are
//! reaped, SIGTERM and SIGINT end it with status 0 and upstream's message, it uses no CPU while idle. Also `-v`, the
//! warning when not PID 1, and that the image's build of it is statically linked.
//!
//! Namespaces need root (CAP_SYS_ADMIN). Without it the namespace tests skip with a message, unless `CI` is set:
//! then they fail, so a CI that cannot run them does not pass by running nothing.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

fn pause_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_pause"))
}

/// Whether pid namespaces can be made here; `false` (with a message) means skip.
fn namespaces_available() -> bool {
    let ok = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "`unshare --pid --fork --mount-proc true` fails: run the tests as root (CI is set, so not skipping)"
        );
        eprintln!("skipping: `unshare --pid --fork --mount-proc` does not work here (needs root)");
    }
    ok
}

/// `(pid, ppid, state, utime+stime ticks)` of every process, from the host's /proc.
fn processes() -> Vec<(i32, i32, char, u64)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Some(p) = stat(pid) {
            out.push(p);
        }
    }
    out
}

/// Parses /proc/PID/stat (the command name may hold spaces and parentheses: fields start after the last `)`).
fn stat(pid: i32) -> Option<(i32, i32, char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); ppid is field 4, utime 14, stime 15.
    let state = fields.first()?.chars().next()?;
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((pid, ppid, state, utime + stime))
}

fn children_of(pid: i32) -> Vec<(i32, char)> {
    processes()
        .into_iter()
        .filter(|p| p.1 == pid)
        .map(|p| (p.0, p.2))
        .collect()
}

fn wait_until<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `pid` sleeps in `sigwait` (rt_sigtimedwait) within `timeout`. While it waits, the kernel clears the
/// awaited signals from SigBlk, so the mask cannot tell; the kernel's wait channel or the current system call can.
fn waits_for_signals(pid: i32, timeout: Duration) -> bool {
    // rt_sigtimedwait's number: x86_64 128, aarch64 137.
    let nr = if cfg!(target_arch = "aarch64") {
        137
    } else {
        128
    };
    wait_until(timeout, || {
        let wchan = std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
        let syscall = std::fs::read_to_string(format!("/proc/{pid}/syscall")).unwrap_or_default();
        let first = syscall
            .split_whitespace()
            .next()
            .and_then(|n| n.parse::<u32>().ok());
        (wchan.contains("sigtimedwait") || first == Some(nr)).then_some(())
    })
    .is_some()
}

/// A child process killed (SIGKILL) and waited for when the test ends, passed or not.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// pause running as PID 1 of its own pid namespace.
struct Sandbox {
    unshare: Child,
    /// Host pid of pause (1 inside the namespace).
    pid: i32,
}

impl Sandbox {
    fn start(bin: &Path) -> Sandbox {
        let mut unshare = Command::new("unshare")
            .args(["--pid", "--fork", "--mount-proc", "--kill-child"])
            .arg(bin)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn unshare");
        let parent = unshare.id() as i32;
        // unshare forks; the child execs pause once it has mounted /proc.
        let pid = wait_until(Duration::from_secs(5), || {
            children_of(parent).into_iter().map(|c| c.0).find(|c| {
                std::fs::read_to_string(format!("/proc/{c}/comm"))
                    .is_ok_and(|comm| comm.trim() == "pause")
            })
        });
        let Some(pid) = pid else {
            let _ = unshare.kill();
            panic!("pause did not start under unshare within 5 s");
        };
        let sandbox = Sandbox { unshare, pid };
        assert!(
            waits_for_signals(pid, Duration::from_secs(5)),
            "pause (pid {pid}) did not reach sigwait within 5 s"
        );
        sandbox
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid), signal).expect("kill");
    }

    /// Waits at most `timeout` for the sandbox to end; returns unshare's status (pause's, passed on) and stderr.
    fn wait_exit(mut self, timeout: Duration) -> Option<(ExitStatus, Duration, String)> {
        let start = Instant::now();
        let status = wait_until(timeout, || self.unshare.try_wait().ok().flatten())?;
        let took = start.elapsed();
        let mut stderr = String::new();
        if let Some(mut e) = self.unshare.stderr.take() {
            let _ = e.read_to_string(&mut stderr);
        }
        Some((status, took, stderr))
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if self.unshare.try_wait().ok().flatten().is_none() {
            let _ = self.unshare.kill();
            let _ = self.unshare.wait();
        }
    }
}

fn shuts_down_on(signal: nix::sys::signal::Signal, text: &str) {
    if !namespaces_available() {
        return;
    }
    let sandbox = Sandbox::start(&pause_bin());
    sandbox.signal(signal);
    let (status, took, stderr) = sandbox
        .wait_exit(Duration::from_secs(1))
        .unwrap_or_else(|| panic!("pause did not exit within 1 s of {signal}"));
    assert_eq!(status.code(), Some(0), "exit status; stderr: {stderr}");
    assert_eq!(
        stderr,
        format!("Shutting down, got signal: {text}\n"),
        "stderr (and no 'should be the first process' warning as PID 1)"
    );
    eprintln!("{signal}: exited 0 after {took:?}");
}

#[test]
fn sigterm_ends_it_with_status_0_and_upstreams_message() {
    shuts_down_on(nix::sys::signal::Signal::SIGTERM, "Terminated");
}

#[test]
fn sigint_ends_it_with_status_0_and_upstreams_message() {
    shuts_down_on(nix::sys::signal::Signal::SIGINT, "Interrupt");
}

#[test]
fn orphans_handed_to_it_are_reaped() {
    if !namespaces_available() {
        return;
    }
    let sandbox = Sandbox::start(&pause_bin());
    // A shell inside the namespace starts five sleeps and exits: they are orphans, and the namespace gives them to
    // its init, pause. (nsenter forks into the pid namespace; the shell's own parent is nsenter, outside it.)
    let status = Command::new("nsenter")
        .args(["-t", &sandbox.pid.to_string(), "-p", "--"])
        .args([
            "sh",
            "-c",
            "for i in 1 2 3 4 5; do sleep 1.5 & done; exit 0",
        ])
        .status()
        .expect("run nsenter");
    assert!(status.success(), "nsenter: {status}");
    let adopted = children_of(sandbox.pid);
    assert_eq!(
        adopted.len(),
        5,
        "pause adopted the five orphans (children of pid {}): {adopted:?}",
        sandbox.pid
    );
    assert!(
        adopted.iter().all(|c| c.1 != 'Z'),
        "still running: {adopted:?}"
    );
    // Once they exit, nothing stays behind: without reaping they would stay as zombies (state Z) forever.
    let left = wait_until(Duration::from_secs(5), || {
        let left = children_of(sandbox.pid);
        left.is_empty().then_some(())
    });
    assert!(
        left.is_some(),
        "children of pause 3.5 s after they exited: {:?}",
        children_of(sandbox.pid)
    );
    // And it is still there, waiting.
    assert!(stat(sandbox.pid).is_some_and(|s| s.2 != 'Z'));
    sandbox.signal(nix::sys::signal::Signal::SIGTERM);
    let (status, _, _) = sandbox.wait_exit(Duration::from_secs(1)).expect("exits");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn idle_it_uses_no_cpu() {
    if !namespaces_available() {
        return;
    }
    let sandbox = Sandbox::start(&pause_bin());
    let ticks = |pid| stat(pid).map(|s| s.3).expect("stat of pause");
    let before = ticks(sandbox.pid);
    std::thread::sleep(Duration::from_secs(2));
    let after = ticks(sandbox.pid);
    // Clock ticks are 10 ms; a process that sleeps in sigwait gets none (a busy loop would get ~200).
    assert!(
        after - before <= 1,
        "pause used {} clock ticks of CPU in 2 s idle",
        after - before
    );
}

#[test]
fn dash_v_prints_the_version_and_exits_0() {
    for flag in ["-v", "-V"] {
        let out = Command::new(pause_bin()).arg(flag).output().expect("run");
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("pause.rs {} (k8s-image)\n", env!("CARGO_PKG_VERSION"))
        );
        assert!(out.stderr.is_empty(), "no warning for -v");
    }
}

#[test]
fn not_pid_1_it_warns_and_carries_on() {
    let mut child = KillOnDrop(
        Command::new(pause_bin())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run"),
    );
    let child = &mut child.0;
    let pid = child.id() as i32;
    // Signal it only once it waits for signals: before it has blocked SIGTERM, the default action would kill it.
    assert!(
        waits_for_signals(pid, Duration::from_secs(5)),
        "pause did not reach sigwait within 5 s"
    );
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "still running"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("kill");
    let status = wait_until(Duration::from_secs(1), || child.try_wait().ok().flatten())
        .expect("exits within 1 s");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read");
    assert_eq!(status.code(), Some(0));
    assert_eq!(
        stderr,
        "Warning: pause should be the first process\nShutting down, got signal: Terminated\n"
    );
}

/// The static build the image uses: `PAUSE_STATIC_BIN` if set (CI can build it once), else built here with the
/// command of the crate doc.
fn static_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("PAUSE_STATIC_BIN") {
        return PathBuf::from(p);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let host = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    let out = Command::new(cargo)
        .current_dir(&workspace)
        .env("CARGO_ENCODED_RUSTFLAGS", "-Ctarget-feature=+crt-static")
        .args(["build", "-p", "pause", "--release", "--target", &host])
        .output()
        .expect("run cargo");
    assert!(
        out.status.success(),
        "static build failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    target_dir.join(&host).join("release").join("pause")
}

/// Whether the ELF file has a PT_INTERP program header (asks for a dynamic loader).
fn has_interpreter(elf: &[u8]) -> bool {
    assert!(elf.len() > 64 && &elf[..4] == b"\x7fELF", "an ELF file");
    assert_eq!(elf[4], 2, "64-bit ELF");
    assert_eq!(elf[5], 1, "little-endian ELF");
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let u64_at = |o: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&elf[o..o + 8]);
        u64::from_le_bytes(b) as usize
    };
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    (0..phnum).any(|i| {
        let o = phoff + i * phentsize;
        u32::from_le_bytes([elf[o], elf[o + 1], elf[o + 2], elf[o + 3]]) == 3
    })
}

#[test]
fn the_image_build_is_statically_linked_and_small() {
    let bin = static_bin();
    let bytes = std::fs::read(&bin).unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    assert!(
        !has_interpreter(&bytes),
        "{} has a PT_INTERP header: it is dynamically linked",
        bin.display()
    );
    if let Ok(out) = Command::new("ldd").arg(&bin).output() {
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            text.contains("not a dynamic executable") || text.contains("statically linked"),
            "ldd {}: {text}",
            bin.display()
        );
    }
    if let Ok(out) = Command::new("file").arg(&bin).output() {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("statically linked") || text.contains("static-pie linked"),
            "file {}: {text}",
            bin.display()
        );
    }
    eprintln!("{}: {} bytes", bin.display(), bytes.len());
    assert!(bytes.len() < 2 << 20, "pause is {} bytes", bytes.len());
    // The static build behaves as the tested one: it runs with no loader at all.
    let out = Command::new(&bin)
        .arg("-v")
        .output()
        .expect("run static pause");
    assert!(out.status.success());
    if namespaces_available() {
        let sandbox = Sandbox::start(&bin);
        sandbox.signal(nix::sys::signal::Signal::SIGTERM);
        let (status, _, stderr) = sandbox.wait_exit(Duration::from_secs(1)).expect("exits");
        assert_eq!(status.code(), Some(0), "{stderr}");
    }
}
