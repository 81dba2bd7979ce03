//! Being PID 1: when the agent is the first process of a PID namespace (a container's entrypoint), orphaned
//! processes are re-parented to it. It must reap them (or they stay zombies) and pass SIGTERM/SIGINT/SIGHUP on to
//! its children (or a `docker stop`-style shutdown kills them only after a timeout, uncleanly).
//!
//! [`reap_zombies`] collects every exited child without blocking; [`children`] lists this process's children from
//! `/proc`; [`forward`] sends a signal to each of them.

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// True when this process is PID 1 of its PID namespace.
pub fn is_pid1() -> bool {
    std::process::id() == 1
}

/// Reaps every child that has exited, without blocking. Returns how many were reaped.
pub fn reap_zombies() -> usize {
    let mut reaped = 0;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return reaped,
            Ok(status) => {
                tracing::debug!(?status, "reaped a child");
                reaped += 1;
            }
        }
    }
}

/// The PIDs whose parent is this process, from `/proc/<pid>/stat`.
pub fn children() -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if parent_of_stat(&stat) == Some(me) {
            out.push(pid);
        }
    }
    out.sort_unstable();
    out
}

/// The parent PID field of a `/proc/<pid>/stat` line (after the `(comm)` field, which may contain spaces).
pub fn parent_of_stat(stat: &str) -> Option<i32> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_comm.split_whitespace();
    let _state = fields.next()?;
    fields.next()?.parse().ok()
}

/// Sends `signal` to every child. Returns the PIDs signalled.
pub fn forward(signal: Signal) -> Vec<i32> {
    let kids = children();
    for &pid in &kids {
        if let Err(e) = kill(Pid::from_raw(pid), signal) {
            tracing::debug!(pid, error = %e, "cannot forward the signal");
        }
    }
    kids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_is_read_after_a_comm_with_spaces_and_parens() {
        assert_eq!(parent_of_stat("42 (my (odd) name) S 7 42 42 0 -1"), Some(7));
        assert_eq!(parent_of_stat("garbage"), None);
    }

    #[test]
    fn a_spawned_child_is_listed_and_reaped() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("spawn sleep");
        assert!(children().contains(&(child.id() as i32)));
        forward(Signal::SIGTERM);
        let status = child.wait().expect("wait");
        assert!(!status.success());
    }
}
