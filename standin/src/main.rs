//! `k8s-standin`: a clearly labelled stand-in for Kubernetes binaries, for offline demo images only.
//!
//! The demo image (`manifests/demo.toml`, artifacts made by `demo/make-artifacts.sh`) is built on a machine without
//! internet access. Debian packages supply what Debian has (etcd, etcdctl, kubectl, containerd, runc, the CNI
//! plugins), but Debian has no kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy, kubeadm,
//! weaver or crictl. This one small program is copied into the artifact directory under each of those names so an
//! image can still be built, staged, checked and booted end to end.
//!
//! It is never the real thing and never pretends to be:
//! - every artifact made from it is marked `standin = true` in the manifest, and the image builder carries that mark
//!   into the lock, the SBOM and the build's checks and summary;
//! - it takes its identity from the basename of `argv[0]` (so a copy named `kubelet` calls itself kubelet);
//! - `--version` or `version` prints `<name> STAND-IN (k8s-image demo, not the real <name>)` and exits 0;
//! - run for real, it first prints `STAND-IN <name>: not a real Kubernetes binary; args: [...]` to stderr, and every
//!   later line starts `STAND-IN <name>:`; every HTTP answer carries `X-Stand-In: k8s-image demo`.
//!
//! Five identities are test doubles that hold their callers to the real programs' contract (what the files their
//! flags name must be, who may do what, which objects a join needs), so that a wrong PKI, kubeconfig or binding
//! fails the way it would against Kubernetes:
//!
//! | identity | does | module |
//! |---|---|---|
//! | kube-apiserver | checks its PKI and etcd, serves a REST subset over TLS with x509, bootstrap-token and service-account authentication, RBAC and the Node authorizer; objects persist in `--stand-in-data-dir` | [`apiserver`] |
//! | kube-controller-manager | bootstrapsigner, tokencleaner, csrapproving (SubjectAccessReviews), csrsigning (cluster CA) | [`controller_manager`] |
//! | kube-scheduler | authenticates as system:kube-scheduler, then idles | [`scheduler`] |
//! | kubelet | TLS bootstrap, kubelet.conf, Node registration, `/healthz` | [`kubelet`] |
//! | kube-proxy | lists what kube-proxy lists with its kubeconfig, `/healthz`, then idles | [`proxy`] |
//!
//! Any other identity (kubeadm, weaver, crictl, ...) only sleeps until killed (SIGTERM's default action ends it),
//! so a systemd unit that runs it stays "active". Threads and blocking I/O only; rustls (ring), rcgen and
//! x509-parser for the cryptography.

mod apiserver;
mod common;
mod controller_manager;
mod kubelet;
mod notify;
mod proxy;
mod scheduler;

use std::ffi::OsStr;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

/// Name used when `argv[0]` is missing or has no usable file name.
const FALLBACK_NAME: &str = "k8s-standin";

/// The identity a stand-in takes: the file name of `argv[0]`, e.g. `kubelet` for `/usr/bin/kubelet`.
///
/// Unknown names are fine (the stand-in just uses them); a missing or empty `argv[0]` gives [`FALLBACK_NAME`].
fn identity(argv0: Option<&OsStr>) -> String {
    argv0
        .and_then(|a| Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| FALLBACK_NAME.to_string())
}

/// Whether the arguments ask for a version: `--version` (or `--version=...`) anywhere, or `version` as the first
/// argument (kubectl and kubeadm spell it as a subcommand).
fn wants_version(args: &[String]) -> bool {
    args.first().is_some_and(|a| a == "version")
        || args
            .iter()
            .any(|a| a == "--version" || a.starts_with("--version="))
}

/// What `--version` prints.
fn version_text(name: &str) -> String {
    format!("{name} STAND-IN (k8s-image demo, not the real {name})")
}

/// The one line written to stderr when the stand-in is run for real.
fn notice_line(name: &str, args: &[String]) -> String {
    format!("STAND-IN {name}: not a real Kubernetes binary; args: {args:?}")
}

fn main() -> ExitCode {
    let mut argv = std::env::args_os();
    let name = identity(argv.next().as_deref());
    let args: Vec<String> = argv.map(|a| a.to_string_lossy().into_owned()).collect();

    if wants_version(&args) {
        println!("{}", version_text(&name));
        return ExitCode::SUCCESS;
    }

    eprintln!("{}", notice_line(&name, &args));
    common::set_name(&name);
    match name.as_str() {
        apiserver::NAME => apiserver::run(&args),
        controller_manager::NAME => controller_manager::run(&args),
        scheduler::NAME => scheduler::run(&args),
        kubelet::NAME => kubelet::run(&args),
        proxy::NAME => proxy::run(&args),
        _ => loop {
            std::thread::sleep(Duration::from_secs(3600));
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn identity_is_the_basename_of_argv0() {
        assert_eq!(identity(Some(OsStr::new("/usr/bin/kubelet"))), "kubelet");
        assert_eq!(
            identity(Some(OsStr::new("kube-apiserver"))),
            "kube-apiserver"
        );
        assert_eq!(identity(Some(OsStr::new("./demo/weaver"))), "weaver");
    }

    #[test]
    fn unknown_identity_is_used_as_is() {
        assert_eq!(
            identity(Some(OsStr::new("/tmp/frobnicator"))),
            "frobnicator"
        );
    }

    #[test]
    fn missing_or_empty_argv0_falls_back() {
        assert_eq!(identity(None), FALLBACK_NAME);
        assert_eq!(identity(Some(OsStr::new(""))), FALLBACK_NAME);
        assert_eq!(identity(Some(OsStr::new("/"))), FALLBACK_NAME);
        assert_eq!(identity(Some(OsStr::new(".."))), FALLBACK_NAME);
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_argv0_does_not_panic() {
        use std::os::unix::ffi::OsStrExt;
        let name = identity(Some(OsStr::from_bytes(b"/usr/bin/kube\xffproxy")));
        assert!(
            name.starts_with("kube") && name.ends_with("proxy"),
            "{name}"
        );
    }

    #[test]
    fn version_text_says_it_is_not_the_real_binary() {
        assert_eq!(
            version_text("kubelet"),
            "kubelet STAND-IN (k8s-image demo, not the real kubelet)"
        );
    }

    #[test]
    fn version_is_asked_for_in_the_usual_spellings() {
        assert!(wants_version(&strings(&["--version"])));
        assert!(wants_version(&strings(&["--version=raw"])));
        assert!(wants_version(&strings(&["version"])));
        assert!(wants_version(&strings(&["version", "--client"])));
        assert!(wants_version(&strings(&["-v=2", "--version"])));
    }

    #[test]
    fn other_arguments_do_not_ask_for_a_version() {
        assert!(!wants_version(&[]));
        assert!(!wants_version(&strings(&["--config", "/etc/kubelet.yaml"])));
        assert!(!wants_version(&strings(&["get", "version"])));
        assert!(!wants_version(&strings(&["-v", "--versions"])));
    }

    #[test]
    fn notice_names_the_binary_and_its_arguments() {
        assert_eq!(
            notice_line(
                "kube-proxy",
                &strings(&["--config", "/var/lib/kube-proxy/config.conf"])
            ),
            "STAND-IN kube-proxy: not a real Kubernetes binary; args: [\"--config\", \"/var/lib/kube-proxy/config.conf\"]"
        );
        assert_eq!(
            notice_line("weaver", &[]),
            "STAND-IN weaver: not a real Kubernetes binary; args: []"
        );
    }
}
