//! The stand-in **kube-apiserver**: not an API server, only its health endpoint over real TLS.
//!
//! Started by `units/kube-apiserver.service` with kubeadm's flags, it reads `--secure-port` (default 6443),
//! `--bind-address` (default every interface), `--tls-cert-file` and `--tls-private-key-file`, ignores every other
//! flag (see [`flags`]), loads the certificate chain and key (see [`tls`]) and serves HTTPS:
//! `GET /readyz`, `/healthz` and `/livez` answer `200 ok`, everything else 404 saying it is a stand-in (see
//! [`http`]). That is what a minion's k8s-agent probes (`https://masters.<cluster>.<domain>:6443/readyz`,
//! verified against a CA file or kubeadm's CA pin), so a demo cluster sees a healthy master.
//!
//! The certificate file is served as given, the whole chain: to let a client that only pins the CA's key
//! (`CA_CERT_HASH`) verify the master, put the leaf **and** the CA into the file (leaf first).
//!
//! One flag is the stand-in's own: `--stand-in-ready-delay=SECONDS` makes `/readyz` answer 503 for that long
//! after start (`/healthz` and `/livez` answer 200 at once), to exercise a client's waiting.
//!
//! Every answer carries `X-Stand-In: k8s-image demo`; every request is logged to stderr as one line
//! (`STAND-IN kube-apiserver: GET /readyz 200`). The unit is `Type=notify`, so `READY=1` goes to
//! `$NOTIFY_SOCKET` once the socket listens (see [`crate::notify`]). A flag, certificate, key or listening error
//! is one line on stderr naming the flag and file, and exit status 1, so systemd shows the unit failed.

pub mod flags;
pub mod http;
pub mod serve;
pub mod tls;

use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

/// The name this mode answers to (`argv[0]`'s file name).
pub const NAME: &str = "kube-apiserver";

/// Writes one `STAND-IN kube-apiserver: ...` line to stderr (a closed stderr is ignored, never a panic).
pub fn log(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "STAND-IN {NAME}: {line}");
}

/// Runs the stand-in API server with its arguments (without `argv[0]`); returns only on a start-up error.
pub fn run(args: &[String]) -> ExitCode {
    let started = Instant::now();
    let flags = match flags::parse(args) {
        Ok(flags) => flags,
        Err(e) => return fail(&e),
    };
    let tls = match tls::load(&flags.tls_cert_file, &flags.tls_private_key_file) {
        Ok(tls) => tls,
        Err(e) => return fail(&e),
    };
    let listener = match serve::listen(flags.bind_address, flags.secure_port) {
        Ok(listener) => listener,
        Err(e) => return fail(&e),
    };
    let at = listener
        .local_addr()
        .map_or_else(|_| format!("port {}", flags.secure_port), |a| a.to_string());
    let delay = if flags.ready_delay.is_zero() {
        String::new()
    } else {
        format!(
            "; /readyz answers 503 for the first {:?}",
            flags.ready_delay
        )
    };
    log(&format!(
        "serving HTTPS on {at} (GET /readyz, /healthz, /livez; certificate chain of {} from {}){delay}",
        tls.chain_len,
        flags.tls_cert_file.display()
    ));
    match crate::notify::notify(
        "READY=1\nSTATUS=STAND-IN kube-apiserver: serving only /readyz, /healthz, /livez",
    ) {
        Ok(_) => {}
        Err(e) => log(&format!("warning: {e}")),
    }
    serve::serve(&listener, &tls.config, started + flags.ready_delay)
}

fn fail(message: &str) -> ExitCode {
    log(&format!("error: {message}"));
    ExitCode::FAILURE
}
