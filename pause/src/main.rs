//! `pause`: PID 1 of a pod sandbox, the program of the sandbox ("pause") image — what Kubernetes'
//! `build/pause/linux/pause.c` does, in safe Rust.
//!
//! It owns three behaviours and nothing else:
//! - SIGINT or SIGTERM: print `Shutting down, got signal: Interrupt|Terminated` to stderr (upstream's `psignal`
//!   text) and exit 0;
//! - SIGCHLD: reap every exited child (`waitpid(-1, WNOHANG)` until none is left), so orphans that the pid
//!   namespace hands to its init never stay zombies;
//! - otherwise sleep in the kernel (`sigwait`), using no CPU.
//!
//! `-v` (any case, anywhere in the arguments) prints the version and exits 0. Started as any PID other than 1 it
//! warns `Warning: pause should be the first process` and carries on, as upstream does.
//!
//! Safe by construction (the workspace forbids `unsafe`): instead of signal handlers, the three signals are blocked
//! and taken synchronously with `sigwait` in a loop. A blocked signal is never discarded by the kernel, not even
//! for a namespace's init whose disposition is the default, so SIGTERM from inside the sandbox still arrives.
//!
//! ## Static build
//! The image holds this one file and no libc, so it must be statically linked. There is no musl target on these
//! machines; glibc is linked statically with `crt-static`, which has to reach this crate and its dependencies but
//! not the rest of the workspace (and never build scripts, hence the explicit `--target`):
//!
//! ```text
//! CARGO_ENCODED_RUSTFLAGS=-Ctarget-feature=+crt-static \
//!   cargo build -p pause --release --target "$(rustc -vV | sed -n 's/^host: //p')"
//! # → target/x86_64-unknown-linux-gnu/release/pause; `ldd` says "not a dynamic executable"
//! ```
//!
//! A plain `cargo build -p pause` gives a dynamically linked binary that behaves the same (the tests run it), but
//! only the static one belongs in an image. glibc warns at link time about nothing here: pause calls no NSS
//! function (no user, group or host lookups).

use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use std::io::Write;
use std::process::ExitCode;

/// What upstream prints for `-v` is `pause.c <version>`; this says which program it is and whose version.
const VERSION: &str = concat!("pause.rs ", env!("CARGO_PKG_VERSION"), " (k8s-image)");

/// `strsignal(3)`'s text for the signals pause reacts to, so the message reads as upstream's.
fn describe(signal: Signal) -> &'static str {
    match signal {
        Signal::SIGINT => "Interrupt",
        Signal::SIGTERM => "Terminated",
        Signal::SIGCHLD => "Child exited",
        other => other.as_str(),
    }
}

/// Reaps every child that has exited; returns when none is left to reap right now.
fn reap_children() {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(e) => {
                eprintln!("Warning: waitpid failed: {e}");
                return;
            }
        }
    }
}

fn main() -> ExitCode {
    if std::env::args_os()
        .skip(1)
        .any(|a| a.eq_ignore_ascii_case("-v"))
    {
        println!("{VERSION}");
        return ExitCode::SUCCESS;
    }
    if std::process::id() != 1 {
        // Not an error: pause is also used outside of sandboxes.
        eprintln!("Warning: pause should be the first process");
    }

    let mut signals = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGCHLD] {
        signals.add(s);
    }
    if let Err(e) = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&signals), None) {
        eprintln!("Error: cannot block SIGINT, SIGTERM and SIGCHLD: {e}");
        return ExitCode::from(1);
    }
    // Children that exited before the mask was set (pause exec'ed by a process that had some) sent their SIGCHLD
    // already.
    reap_children();

    loop {
        match signals.wait() {
            Ok(Signal::SIGCHLD) => reap_children(),
            Ok(s @ (Signal::SIGINT | Signal::SIGTERM)) => {
                eprintln!("Shutting down, got signal: {}", describe(s));
                let _ = std::io::stderr().flush();
                return ExitCode::SUCCESS;
            }
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(e) => {
                eprintln!("Error: sigwait failed: {e}");
                return ExitCode::from(42);
            }
        }
    }
}
