//! The kube-apiserver command line, as far as the stand-in needs it.
//!
//! `units/kube-apiserver.service` starts the API server with kubeadm's flags; the stand-in reads four of them and
//! one of its own, and accepts (and ignores) every other flag so the unit's command line works unchanged:
//!
//! | flag | meaning here | default |
//! |---|---|---|
//! | `--secure-port` | TCP port to serve HTTPS on (1–65535) | `6443` |
//! | `--bind-address` | IP address to listen on; an unspecified address (`0.0.0.0`, `::`) or an empty value means every interface and address family | `0.0.0.0` |
//! | `--tls-cert-file` | PEM certificate chain (leaf first) | required |
//! | `--tls-private-key-file` | PEM private key of the leaf (PKCS#1, PKCS#8 or SEC1) | required |
//! | `--stand-in-ready-delay` | seconds (decimal allowed) during which `/readyz` answers 503 after start | `0` |
//!
//! Spelling follows pflag, which kube-apiserver uses: `--flag=value` or `--flag value`, one or two leading dashes,
//! `_` and `-` interchangeable in names, the last occurrence wins. An unknown flag without `=` takes the next
//! argument as its value unless that looks like a flag (so boolean flags such as `--allow-privileged` work either
//! way). Like the real kube-apiserver, positional arguments are an error; empty arguments (an unset variable in a
//! systemd `ExecStart=`) are skipped.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

/// The port kube-apiserver serves on when `--secure-port` is not given.
pub const DEFAULT_SECURE_PORT: u16 = 6443;

/// What the stand-in kube-apiserver was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flags {
    /// `--secure-port`.
    pub secure_port: u16,
    /// `--bind-address`.
    pub bind_address: IpAddr,
    /// `--tls-cert-file`.
    pub tls_cert_file: PathBuf,
    /// `--tls-private-key-file`.
    pub tls_private_key_file: PathBuf,
    /// `--stand-in-ready-delay`.
    pub ready_delay: Duration,
}

/// The flags this stand-in reads (after `_` → `-` normalisation); each takes a value.
const KNOWN: [&str; 5] = [
    "secure-port",
    "bind-address",
    "tls-cert-file",
    "tls-private-key-file",
    "stand-in-ready-delay",
];

/// Parses kube-apiserver's arguments (without `argv[0]`). The error is one sentence for stderr.
pub fn parse(args: &[String]) -> Result<Flags, String> {
    let mut secure_port = DEFAULT_SECURE_PORT;
    let mut bind_address = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    let mut tls_cert_file: Option<PathBuf> = None;
    let mut tls_private_key_file: Option<PathBuf> = None;
    let mut ready_delay = Duration::ZERO;

    let mut rest = args.iter().peekable();
    while let Some(arg) = rest.next() {
        if arg.is_empty() {
            continue;
        }
        if arg == "--" {
            if let Some(extra) = rest.find(|a| !a.is_empty()) {
                return Err(positional(extra));
            }
            break;
        }
        let Some(body) = arg
            .strip_prefix("--")
            .or_else(|| arg.strip_prefix('-'))
            .filter(|b| !b.is_empty() && !b.starts_with('-') && !b.starts_with('='))
        else {
            return Err(positional(arg));
        };
        let (raw_name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let name = raw_name.replace('_', "-");
        if !KNOWN.contains(&name.as_str()) {
            // Ignored; swallow a separate value if there is one.
            if inline.is_none() && rest.peek().is_some_and(|next| !next.starts_with('-')) {
                rest.next();
            }
            continue;
        }
        let value = match inline {
            Some(v) => v,
            None => rest
                .next()
                .cloned()
                .ok_or_else(|| format!("flag needs an argument: --{name}"))?,
        };
        match name.as_str() {
            "secure-port" => secure_port = parse_port(&value)?,
            "bind-address" => bind_address = parse_bind_address(&value)?,
            "tls-cert-file" => tls_cert_file = Some(non_empty_path(&name, value)?),
            "tls-private-key-file" => tls_private_key_file = Some(non_empty_path(&name, value)?),
            _ => ready_delay = parse_delay(&value)?,
        }
    }

    let (Some(tls_cert_file), Some(tls_private_key_file)) = (tls_cert_file, tls_private_key_file)
    else {
        return Err(
            "the stand-in kube-apiserver needs --tls-cert-file and --tls-private-key-file (it does not make a \
             self-signed certificate the way the real one can)"
                .to_string(),
        );
    };
    Ok(Flags {
        secure_port,
        bind_address,
        tls_cert_file,
        tls_private_key_file,
        ready_delay,
    })
}

fn positional(arg: &str) -> String {
    format!("kube-apiserver does not take any arguments, got {arg:?}")
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

fn non_empty_path(name: &str, value: String) -> Result<PathBuf, String> {
    if value.is_empty() {
        return Err(format!("--{name} is empty: it must name a PEM file"));
    }
    Ok(PathBuf::from(value))
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
    use std::net::Ipv6Addr;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| a.to_string()).collect()
    }

    const CERT: &str = "--tls-cert-file=/etc/kubernetes/pki/apiserver.crt";
    const KEY: &str = "--tls-private-key-file=/etc/kubernetes/pki/apiserver.key";

    fn parse_with_tls(extra: &[&str]) -> Result<Flags, String> {
        let mut args = strings(&[CERT, KEY]);
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
        let flags = parse(&args).unwrap();
        assert_eq!(
            flags,
            Flags {
                secure_port: 6443,
                bind_address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                tls_cert_file: "/etc/kubernetes/pki/apiserver.crt".into(),
                tls_private_key_file: "/etc/kubernetes/pki/apiserver.key".into(),
                ready_delay: Duration::ZERO,
            }
        );
    }

    #[test]
    fn defaults_without_port_or_address() {
        let flags = parse_with_tls(&[]).unwrap();
        assert_eq!(flags.secure_port, DEFAULT_SECURE_PORT);
        assert_eq!(flags.bind_address, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_eq!(flags.ready_delay, Duration::ZERO);
    }

    #[test]
    fn values_inline_or_separate() {
        let flags = parse(&strings(&[
            "--secure-port",
            "8443",
            "--bind-address=127.0.0.1",
            "--tls-cert-file",
            "/a.crt",
            "--tls-private-key-file=/a.key",
            "--stand-in-ready-delay",
            "2.5",
        ]))
        .unwrap();
        assert_eq!(flags.secure_port, 8443);
        assert_eq!(flags.bind_address, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(flags.tls_cert_file, PathBuf::from("/a.crt"));
        assert_eq!(flags.tls_private_key_file, PathBuf::from("/a.key"));
        assert_eq!(flags.ready_delay, Duration::from_millis(2500));
    }

    #[test]
    fn single_dash_underscores_and_last_one_wins() {
        let flags = parse_with_tls(&[
            "-secure-port=1",
            "--secure_port=2",
            "--bind_address",
            "::1",
            "--stand-in-ready-delay=7",
        ])
        .unwrap();
        assert_eq!(flags.secure_port, 2);
        assert_eq!(flags.bind_address, IpAddr::V6(Ipv6Addr::LOCALHOST));
        assert_eq!(flags.ready_delay, Duration::from_secs(7));
    }

    #[test]
    fn empty_bind_address_means_every_interface() {
        let flags = parse_with_tls(&["--bind-address="]).unwrap();
        assert!(flags.bind_address.is_unspecified());
    }

    #[test]
    fn unknown_flags_are_ignored_in_every_spelling() {
        let flags = parse_with_tls(&[
            "--allow-privileged",
            "--etcd-servers",
            "http://127.0.0.1:2379",
            "--authorization-mode=Node,RBAC",
            "-v=2",
            "-v",
            "4",
            "--profiling",
            "--secure-port=7443",
            "--enable-bootstrap-token-auth",
        ])
        .unwrap();
        assert_eq!(flags.secure_port, 7443);
    }

    #[test]
    fn empty_arguments_are_skipped() {
        let flags = parse_with_tls(&["", "--secure-port=7000", ""]).unwrap();
        assert_eq!(flags.secure_port, 7000);
    }

    #[test]
    fn positional_arguments_are_refused() {
        let err = parse_with_tls(&["serve"]).unwrap_err();
        assert!(
            err.contains("does not take any arguments") && err.contains("serve"),
            "{err}"
        );
        let err = parse_with_tls(&["--", "x"]).unwrap_err();
        assert!(err.contains("\"x\""), "{err}");
        assert!(parse_with_tls(&["--"]).is_ok());
        assert!(parse_with_tls(&["-"]).is_err());
        assert!(parse_with_tls(&["---x"]).is_err());
    }

    #[test]
    fn known_flag_without_a_value_is_an_error() {
        let err = parse(&strings(&[CERT, KEY, "--secure-port"])).unwrap_err();
        assert!(err.contains("--secure-port"), "{err}");
        let err = parse(&strings(&[CERT, "--tls-private-key-file"])).unwrap_err();
        assert!(err.contains("--tls-private-key-file"), "{err}");
    }

    #[test]
    fn a_known_flag_takes_the_next_argument_even_if_it_starts_with_a_dash() {
        let flags = parse(&strings(&[CERT, "--tls-private-key-file", "-odd.key"])).unwrap();
        assert_eq!(flags.tls_private_key_file, PathBuf::from("-odd.key"));
    }

    #[test]
    fn bad_ports_are_refused() {
        for port in ["0", "65536", "-1", "https", ""] {
            let err = parse_with_tls(&[&format!("--secure-port={port}")]).unwrap_err();
            assert!(err.contains("--secure-port"), "{port}: {err}");
        }
        assert_eq!(
            parse_with_tls(&["--secure-port=65535"])
                .unwrap()
                .secure_port,
            65535
        );
    }

    #[test]
    fn bad_bind_addresses_are_refused() {
        for address in ["localhost", "10.0.0", "[::1]", "0.0.0.0:6443"] {
            let err = parse_with_tls(&[&format!("--bind-address={address}")]).unwrap_err();
            assert!(err.contains("--bind-address"), "{address}: {err}");
        }
    }

    #[test]
    fn bad_ready_delays_are_refused() {
        for delay in ["-1", "soon", "NaN", "inf", "1e300", "5s", ""] {
            let err = parse_with_tls(&[&format!("--stand-in-ready-delay={delay}")]).unwrap_err();
            assert!(err.contains("--stand-in-ready-delay"), "{delay}: {err}");
        }
        let flags = parse_with_tls(&["--stand-in-ready-delay=0"]).unwrap();
        assert_eq!(flags.ready_delay, Duration::ZERO);
    }

    #[test]
    fn tls_files_are_required_and_not_empty() {
        let err = parse(&strings(&[CERT])).unwrap_err();
        assert!(err.contains("--tls-private-key-file"), "{err}");
        let err = parse(&strings(&[KEY])).unwrap_err();
        assert!(err.contains("--tls-cert-file"), "{err}");
        let err = parse(&strings(&[KEY, "--tls-cert-file="])).unwrap_err();
        assert!(err.contains("--tls-cert-file is empty"), "{err}");
    }
}
