//! The stand-in **kube-apiserver**: a small API server that holds its clients to the real one's contract, for
//! the offline demo image and the tests. It is not the real kube-apiserver and says so (`--version`, every log
//! line, `X-Stand-In` on every answer, `/version`'s gitVersion `v1.33.0-standin+k8s-image-demo`).
//!
//! Started by `units/kube-apiserver.service` with kubeadm's flags ([`flags`]), it
//! 1. checks every file the flags name and that etcd is up ([`checks`]); a problem is `error: ...`, exit 1;
//! 2. opens its object store in `--stand-in-data-dir` ([`store`]) and creates the namespaces and the bootstrap
//!    RBAC objects that are missing ([`policy`]);
//! 3. serves HTTPS on `--bind-address:--secure-port` with the whole `--tls-cert-file` chain ([`tls`], [`serve`]):
//!    authentication ([`authn`]), authorization ([`authz`]), the REST subset, discovery and health ([`api`],
//!    [`resources`], [`kinds`], [`status`]); service-account tokens ([`serviceaccount`]).
//!
//! `--stand-in-ready-delay=SECONDS` makes `/readyz` fail (500, as the real one before its post-start hooks
//! finish) for that long. The unit is `Type=notify`: `READY=1` goes to `$NOTIFY_SOCKET` once the socket listens.

pub mod api;
pub mod authn;
pub mod authz;
pub mod checks;
pub mod flags;
pub mod http;
pub mod kinds;
pub mod policy;
pub mod protobuf;
pub mod resources;
pub mod serve;
pub mod serviceaccount;
pub mod status;
pub mod store;
pub mod tls;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

/// The name this mode answers to (`argv[0]`'s file name).
pub const NAME: &str = "kube-apiserver";

/// Writes one `STAND-IN kube-apiserver: ...` line to stderr.
pub fn log(line: &str) {
    crate::common::log(line);
}

/// Runs the stand-in API server with its arguments (without `argv[0]`); returns only on a start-up error.
pub fn run(args: &[String]) -> ExitCode {
    let started = Instant::now();
    let flags = match flags::parse(args) {
        Ok(flags) => flags,
        Err(e) => return crate::common::fail(&e),
    };
    let loaded = match checks::load(&flags) {
        Ok(l) => l,
        Err(e) => return crate::common::fail(&e),
    };
    let config = match tls::server_config(
        &loaded.serving_chain_pem,
        loaded.serving_key.pkcs8.clone(),
        loaded.client_ca.clone(),
    ) {
        Ok(c) => c,
        Err(e) => return crate::common::fail(&e),
    };
    let store = match store::Store::open(&flags.data_dir) {
        Ok(s) => s,
        Err(e) => return crate::common::fail(&e),
    };
    let created = match api::bootstrap(&store) {
        Ok(n) => n,
        Err(e) => return crate::common::fail(&e),
    };
    let listener = match serve::listen(flags.bind_address, flags.secure_port) {
        Ok(listener) => listener,
        Err(e) => return crate::common::fail(&e),
    };
    let at = listener
        .local_addr()
        .map_or_else(|_| format!("port {}", flags.secure_port), |a| a.to_string());
    let delay = if flags.ready_delay.is_zero() {
        String::new()
    } else {
        format!("; /readyz fails for the first {:?}", flags.ready_delay)
    };
    log(&format!(
        "serving HTTPS on {at} (certificate chain of {} from {}; {} objects in {}, {created} created at start; \
         authorization {}){delay}",
        loaded.serving_chain_len,
        flags.tls_cert_file.display(),
        store.len(),
        flags.data_dir.display(),
        flags.authorization_modes.join(","),
    ));
    let address = format!("{}:{}", flags.bind_address, flags.secure_port);
    let server = Arc::new(api::Server {
        store,
        client_ca: loaded.client_ca,
        tokens: serviceaccount::Tokens {
            issuers: flags.service_account_issuers.clone(),
            audiences: flags.api_audiences.clone(),
            keys: loaded.service_account_keys,
            signer: loaded.service_account_signing_key,
        },
        etcd: loaded.etcd,
        ready_at: started + flags.ready_delay,
        address,
        flags,
    });
    match crate::notify::notify("READY=1\nSTATUS=STAND-IN kube-apiserver (k8s-image demo): serving")
    {
        Ok(_) => {}
        Err(e) => log(&format!("warning: {e}")),
    }
    serve::serve(&listener, &config, &server)
}
