//! The stand-in **kube-scheduler**: checks its credentials the way the real one needs them and then idles (it
//! schedules nothing). `--kubeconfig`, `--authentication-kubeconfig` and `--authorization-kubeconfig` must each
//! exist, parse, carry a client certificate for CN `system:kube-scheduler` (when a certificate) and be accepted
//! by the API server as `system:kube-scheduler` (a SelfSubjectReview); otherwise `error: ...`, exit 1, and
//! systemd restarts the unit.

use crate::common::client::Client;
use crate::common::flags::{self, Spec};
use crate::common::log;
use crate::controller_manager::{check_identity, identity_kubeconfig};
use std::path::PathBuf;
use std::process::ExitCode;

/// The name this mode answers to.
pub const NAME: &str = "kube-scheduler";

const USER: &str = "system:kube-scheduler";

/// Runs the stand-in scheduler; returns only on a start-up error.
pub fn run(args: &[String]) -> ExitCode {
    match start(args) {
        Ok(()) => crate::common::sleep_forever(),
        Err(e) => crate::common::fail(&e),
    }
}

fn start(args: &[String]) -> Result<(), String> {
    let p = flags::parse(
        &Spec {
            program: NAME,
            values: &[
                "kubeconfig",
                "authentication-kubeconfig",
                "authorization-kubeconfig",
                "config",
            ],
            bools: &["leader-elect"],
        },
        args,
    )?;
    let kubeconfig = p
        .last("kubeconfig")
        .filter(|v| !v.is_empty())
        .ok_or("--kubeconfig is required by the stand-in (it runs no in-cluster configuration)")?;
    let mut checked: Vec<PathBuf> = Vec::new();
    let mut server = String::new();
    for flag in [
        "kubeconfig",
        "authentication-kubeconfig",
        "authorization-kubeconfig",
    ] {
        let Some(path) = p.last(flag).filter(|v| !v.is_empty()).map(PathBuf::from) else {
            continue;
        };
        let k = identity_kubeconfig(&format!("--{flag}"), &path, USER)?;
        if checked.contains(&path) {
            continue;
        }
        let client = Client::from_kubeconfig(&k)?;
        check_identity(&client, &format!("--{flag} {}", path.display()), USER)?;
        server = client.server();
        checked.push(path);
    }
    log(&format!(
        "authenticated as {USER} to {server} with {kubeconfig}; the stand-in schedules nothing and now idles"
    ));
    Ok(())
}
