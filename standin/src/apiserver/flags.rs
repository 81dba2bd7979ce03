//! The kube-apiserver command line, as far as the stand-in needs it (parsed by [`crate::common::flags`]; every
//! other flag of `units/kube-apiserver.service` is accepted and ignored).
//!
//! | flag | meaning here | default |
//! |---|---|---|
//! | `--secure-port` | TCP port to serve HTTPS on (1–65535) | `6443` |
//! | `--bind-address` | IP to listen on; unspecified (`0.0.0.0`, `::`, empty) = every interface and family | `0.0.0.0` |
//! | `--tls-cert-file`, `--tls-private-key-file` | serving chain (leaf first) and key | required (no self-signed fallback) |
//! | `--client-ca-file` | CA bundle client certificates are verified against | none: no client-certificate authentication |
//! | `--kubelet-client-certificate`, `--kubelet-client-key` | the API server's client identity towards kubelets | none |
//! | `--proxy-client-cert-file`, `--proxy-client-key-file` | the front proxy's client identity | none |
//! | `--requestheader-client-ca-file` | the front-proxy CA | none |
//! | `--service-account-key-file` (repeatable) | public keys service-account tokens are verified with | `--tls-private-key-file` |
//! | `--service-account-signing-key-file` | private key tokens are signed with | required |
//! | `--service-account-issuer` (repeatable) | the `iss` of tokens; the first signs | required |
//! | `--api-audiences` | accepted token audiences | the issuers |
//! | `--etcd-servers` | comma-separated URLs; one must accept a TCP connection | required |
//! | `--anonymous-auth` | unauthenticated requests are `system:anonymous` | `true` |
//! | `--enable-bootstrap-token-auth` | `Bearer <id>.<secret>` checked against bootstrap-token Secrets | `false` |
//! | `--authorization-mode` | comma list of `Node`, `RBAC`, `AlwaysAllow`, `AlwaysDeny` | `AlwaysAllow` |
//! | `--enable-admission-plugins` | `NodeRestriction` is honoured (the certificate plugins are always on, as upstream) | none |
//! | `--stand-in-data-dir` | where objects are kept across restarts (stand-in only) | `/var/lib/k8s-standin/kube-apiserver` |
//! | `--stand-in-ready-delay` | seconds `/readyz` answers 503 after start (stand-in only) | `0` |

use crate::common::flags::{self, Spec};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

/// The port kube-apiserver serves on when `--secure-port` is not given.
pub const DEFAULT_SECURE_PORT: u16 = 6443;

/// Where objects are kept when `--stand-in-data-dir` is not given.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/k8s-standin/kube-apiserver";

/// What the stand-in kube-apiserver was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flags {
    pub secure_port: u16,
    pub bind_address: IpAddr,
    pub tls_cert_file: PathBuf,
    pub tls_private_key_file: PathBuf,
    pub client_ca_file: Option<PathBuf>,
    pub kubelet_client_certificate: Option<PathBuf>,
    pub kubelet_client_key: Option<PathBuf>,
    pub proxy_client_cert_file: Option<PathBuf>,
    pub proxy_client_key_file: Option<PathBuf>,
    pub requestheader_client_ca_file: Option<PathBuf>,
    pub service_account_key_files: Vec<PathBuf>,
    pub service_account_signing_key_file: PathBuf,
    pub service_account_issuers: Vec<String>,
    pub api_audiences: Vec<String>,
    pub etcd_servers: Vec<String>,
    pub anonymous_auth: bool,
    pub enable_bootstrap_token_auth: bool,
    pub authorization_modes: Vec<String>,
    pub admission_plugins: Vec<String>,
    pub data_dir: PathBuf,
    pub ready_delay: Duration,
}

const VALUES: &[&str] = &[
    "secure-port",
    "bind-address",
    "tls-cert-file",
    "tls-private-key-file",
    "client-ca-file",
    "kubelet-client-certificate",
    "kubelet-client-key",
    "proxy-client-cert-file",
    "proxy-client-key-file",
    "requestheader-client-ca-file",
    "service-account-key-file",
    "service-account-signing-key-file",
    "service-account-issuer",
    "api-audiences",
    "etcd-servers",
    "authorization-mode",
    "enable-admission-plugins",
    "stand-in-data-dir",
    "stand-in-ready-delay",
];

const BOOLS: &[&str] = &["anonymous-auth", "enable-bootstrap-token-auth"];

/// Parses kube-apiserver's arguments (without `argv[0]`). The error is one sentence for stderr.
pub fn parse(args: &[String]) -> Result<Flags, String> {
    let p = flags::parse(
        &Spec {
            program: "kube-apiserver",
            values: VALUES,
            bools: BOOLS,
        },
        args,
    )?;
    let path = |name: &str| -> Result<Option<PathBuf>, String> {
        match p.last(name) {
            None => Ok(None),
            Some("") => Err(format!("--{name} is empty: it must name a file")),
            Some(v) => Ok(Some(PathBuf::from(v))),
        }
    };
    let secure_port = match p.last("secure-port") {
        Some(v) => parse_port(v)?,
        None => DEFAULT_SECURE_PORT,
    };
    let bind_address = match p.last("bind-address") {
        Some(v) => parse_bind_address(v)?,
        None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    };
    let ready_delay = match p.last("stand-in-ready-delay") {
        Some(v) => parse_delay(v)?,
        None => Duration::ZERO,
    };
    let (Some(tls_cert_file), Some(tls_private_key_file)) =
        (path("tls-cert-file")?, path("tls-private-key-file")?)
    else {
        return Err(
            "the stand-in kube-apiserver needs --tls-cert-file and --tls-private-key-file (it does not make a \
             self-signed certificate the way the real one can)"
                .to_string(),
        );
    };
    let pair = |a: &str, b: &str| -> Result<(Option<PathBuf>, Option<PathBuf>), String> {
        match (path(a)?, path(b)?) {
            (Some(x), Some(y)) => Ok((Some(x), Some(y))),
            (None, None) => Ok((None, None)),
            _ => Err(format!("--{a} and --{b} must be given together")),
        }
    };
    let (kubelet_client_certificate, kubelet_client_key) =
        pair("kubelet-client-certificate", "kubelet-client-key")?;
    let (proxy_client_cert_file, proxy_client_key_file) =
        pair("proxy-client-cert-file", "proxy-client-key-file")?;
    let etcd_servers = p.list("etcd-servers");
    if etcd_servers.is_empty() {
        return Err("--etcd-servers must be specified".to_string());
    }
    let service_account_issuers: Vec<String> = p
        .all("service-account-issuer")
        .into_iter()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if service_account_issuers.is_empty() {
        return Err("--service-account-issuer is a required flag".to_string());
    }
    let Some(service_account_signing_key_file) = path("service-account-signing-key-file")? else {
        return Err(
            "--service-account-signing-key-file and --service-account-issuer are required flags"
                .to_string(),
        );
    };
    let mut service_account_key_files: Vec<PathBuf> = p
        .all("service-account-key-file")
        .into_iter()
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .collect();
    if service_account_key_files.is_empty() {
        service_account_key_files.push(tls_private_key_file.clone());
    }
    let mut api_audiences = p.list("api-audiences");
    if api_audiences.is_empty() {
        api_audiences = service_account_issuers.clone();
    }
    let authorization_modes = {
        let modes = p.list("authorization-mode");
        if modes.is_empty() {
            vec!["AlwaysAllow".to_string()]
        } else {
            modes
        }
    };
    for mode in &authorization_modes {
        match mode.as_str() {
            "Node" | "RBAC" | "AlwaysAllow" | "AlwaysDeny" => {}
            "ABAC" | "Webhook" => {
                return Err(format!(
                    "--authorization-mode {mode}: the stand-in kube-apiserver implements only Node, RBAC, AlwaysAllow and AlwaysDeny"
                ));
            }
            other => {
                return Err(format!(
                    "--authorization-mode: authorization-mode {other:?} is not a valid mode"
                ));
            }
        }
    }
    let data_dir = path("stand-in-data-dir")?.unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    Ok(Flags {
        secure_port,
        bind_address,
        tls_cert_file,
        tls_private_key_file,
        client_ca_file: path("client-ca-file")?,
        kubelet_client_certificate,
        kubelet_client_key,
        proxy_client_cert_file,
        proxy_client_key_file,
        requestheader_client_ca_file: path("requestheader-client-ca-file")?,
        service_account_key_files,
        service_account_signing_key_file,
        service_account_issuers,
        api_audiences,
        etcd_servers,
        anonymous_auth: p.bool("anonymous-auth", true)?,
        enable_bootstrap_token_auth: p.bool("enable-bootstrap-token-auth", false)?,
        authorization_modes,
        admission_plugins: p.list("enable-admission-plugins"),
        data_dir,
        ready_delay,
    })
}

fn parse_port(value: &str) -> Result<u16, String> {
    match value.trim().parse::<u16>() {
        Ok(port) if port != 0 => Ok(port),
        _ => Err(format!(
            "invalid argument {value:?} for --secure-port: it must be between 1 and 65535, inclusive (it cannot \
             be turned off with 0)"
        )),
    }
}

fn parse_bind_address(value: &str) -> Result<IpAddr, String> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    }
    value
        .parse()
        .map_err(|_| format!("invalid argument {value:?} for --bind-address: not an IP address"))
}

fn parse_delay(value: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "invalid argument {value:?} for --stand-in-ready-delay: it must be a number of seconds (0 or more, e.g. \
             10 or 2.5)"
        )
    };
    let seconds: f64 = value.trim().parse().map_err(|_| bad())?;
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(bad());
    }
    Duration::try_from_secs_f64(seconds).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| a.to_string()).collect()
    }

    const REQUIRED: &[&str] = &[
        "--tls-cert-file=/etc/kubernetes/pki/apiserver.crt",
        "--tls-private-key-file=/etc/kubernetes/pki/apiserver.key",
        "--etcd-servers=http://127.0.0.1:2379",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        "--service-account-signing-key-file=/etc/kubernetes/pki/sa.key",
    ];

    fn parse_with(extra: &[&str]) -> Result<Flags, String> {
        let mut args = strings(REQUIRED);
        args.extend(strings(extra));
        parse(&args)
    }

    /// The command line of `units/kube-apiserver.service`, with `$KUBE_APISERVER_ARGS` empty.
    fn unit_command_line() -> Vec<String> {
        let unit = include_str!("../../../units/kube-apiserver.service");
        let start = unit
            .split("ExecStart=")
            .nth(1)
            .and_then(|s| s.split("\nRestart").next())
            .expect("ExecStart= in the unit");
        start
            .replace("\\\n", " ")
            .split_whitespace()
            .skip(1)
            .filter(|w| !w.starts_with('$'))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn the_units_command_line_is_understood() {
        let args = unit_command_line();
        assert!(args.len() > 20, "{args:?}");
        let f = parse(&args).unwrap();
        let pki = |n: &str| Some(PathBuf::from(format!("/etc/kubernetes/pki/{n}")));
        assert_eq!(f.secure_port, 6443);
        assert!(f.bind_address.is_unspecified());
        assert_eq!(
            f.tls_cert_file,
            PathBuf::from("/etc/kubernetes/pki/apiserver.crt")
        );
        assert_eq!(f.client_ca_file, pki("ca.crt"));
        assert_eq!(
            f.kubelet_client_certificate,
            pki("apiserver-kubelet-client.crt")
        );
        assert_eq!(f.proxy_client_key_file, pki("front-proxy-client.key"));
        assert_eq!(f.requestheader_client_ca_file, pki("front-proxy-ca.crt"));
        assert_eq!(
            f.service_account_key_files,
            vec![PathBuf::from("/etc/kubernetes/pki/sa.pub")]
        );
        assert_eq!(
            f.service_account_signing_key_file,
            PathBuf::from("/etc/kubernetes/pki/sa.key")
        );
        assert_eq!(
            f.service_account_issuers,
            vec!["https://kubernetes.default.svc.cluster.local"]
        );
        assert_eq!(f.api_audiences, f.service_account_issuers);
        assert_eq!(f.etcd_servers, vec!["http://127.0.0.1:2379"]);
        assert!(f.anonymous_auth);
        assert!(f.enable_bootstrap_token_auth);
        assert_eq!(f.authorization_modes, vec!["Node", "RBAC"]);
        assert_eq!(f.admission_plugins, vec!["NodeRestriction"]);
        assert_eq!(f.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert_eq!(f.ready_delay, Duration::ZERO);
    }

    #[test]
    fn defaults() {
        let f = parse_with(&[]).unwrap();
        assert_eq!(f.secure_port, DEFAULT_SECURE_PORT);
        assert_eq!(f.authorization_modes, vec!["AlwaysAllow"]);
        assert!(f.anonymous_auth);
        assert!(!f.enable_bootstrap_token_auth);
        assert_eq!(
            f.service_account_key_files,
            vec![f.tls_private_key_file.clone()]
        );
        assert_eq!(f.client_ca_file, None);
    }

    #[test]
    fn values_and_bools() {
        let f = parse_with(&[
            "--secure-port",
            "8443",
            "--bind-address=127.0.0.1",
            "--anonymous-auth=false",
            "--stand-in-ready-delay",
            "2.5",
            "--stand-in-data-dir=/tmp/d",
            "--service-account-key-file=/a.pub",
            "--service-account-key-file=/b.pub",
        ])
        .unwrap();
        assert_eq!(f.secure_port, 8443);
        assert_eq!(f.bind_address, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert!(!f.anonymous_auth);
        assert_eq!(f.ready_delay, Duration::from_millis(2500));
        assert_eq!(f.data_dir, PathBuf::from("/tmp/d"));
        assert_eq!(f.service_account_key_files.len(), 2);
    }

    #[test]
    fn required_flags_are_named() {
        let without = |flag: &str| {
            let args: Vec<String> = strings(REQUIRED)
                .into_iter()
                .filter(|a| !a.starts_with(flag))
                .collect();
            parse(&args).unwrap_err()
        };
        assert!(without("--etcd-servers").contains("--etcd-servers must be specified"));
        assert!(without("--service-account-issuer").contains("--service-account-issuer"));
        assert!(
            without("--service-account-signing-key-file")
                .contains("--service-account-signing-key-file")
        );
        assert!(without("--tls-cert-file").contains("--tls-cert-file"));
        assert!(without("--tls-private-key-file").contains("--tls-private-key-file"));
    }

    #[test]
    fn pairs_must_be_complete() {
        let err = parse_with(&["--kubelet-client-certificate=/x.crt"]).unwrap_err();
        assert!(err.contains("--kubelet-client-key"), "{err}");
        let err = parse_with(&["--proxy-client-key-file=/x.key"]).unwrap_err();
        assert!(err.contains("--proxy-client-cert-file"), "{err}");
    }

    #[test]
    fn bad_values_are_refused() {
        for port in ["0", "65536", "-1", "https", ""] {
            let err = parse_with(&[&format!("--secure-port={port}")]).unwrap_err();
            assert!(err.contains("--secure-port"), "{port}: {err}");
        }
        for address in ["localhost", "10.0.0", "[::1]", "0.0.0.0:6443"] {
            let err = parse_with(&[&format!("--bind-address={address}")]).unwrap_err();
            assert!(err.contains("--bind-address"), "{address}: {err}");
        }
        for delay in ["-1", "soon", "NaN", "inf", "1e300", "5s", ""] {
            let err = parse_with(&[&format!("--stand-in-ready-delay={delay}")]).unwrap_err();
            assert!(err.contains("--stand-in-ready-delay"), "{delay}: {err}");
        }
        assert!(
            parse_with(&["--authorization-mode=Node,Magic"])
                .unwrap_err()
                .contains("not a valid mode")
        );
        assert!(
            parse_with(&["--authorization-mode=Webhook"])
                .unwrap_err()
                .contains("implements only")
        );
        assert!(
            parse_with(&["--tls-cert-file="])
                .unwrap_err()
                .contains("--tls-cert-file is empty")
        );
        assert!(
            parse_with(&["serve"])
                .unwrap_err()
                .contains("does not take any arguments")
        );
    }
}
