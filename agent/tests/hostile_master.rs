//! A hostile "master" on 127.0.0.1 against the agent's two HTTPS clients: the health probe
//! ([`k8s_agent::probe::MasterProber`]) and token discovery ([`k8s_agent::edge::join::discover`], cluster-info over
//! `kube_api`). Each case asserts the outcome the operator sees, that it comes within the configured timeout (a
//! correctness bound with a margin, not a benchmark), and — for endless bodies — that memory stays bounded.
//!
//! - `/readyz` redirects to another server → `HttpStatus { 302 }`; the other server is never contacted.
//! - a server that trickles its answer one byte a second → `Timeout` (probe) / a waiting reason naming the timeout
//!   (discovery), never a hang.
//! - an endless body (chunked, gigabytes) for `/readyz` → `Healthy` from the status line alone; for cluster-info →
//!   discovery waits with "larger than 1048576 bytes"; the process's peak RSS grows by less than 64 MiB.
//! - a TLS 1.1-only server (OpenSSL `s_server -tls1_1`, a real implementation) → `Unreachable` with a protocol
//!   reason (rustls speaks TLS 1.2 and 1.3 only), and discovery does not join.
//! - a certificate for another name: `probe_https.rs` (`leaf_without_the_san_is_untrusted`).

mod support_tls;

use k8s_agent::edge::join;
use k8s_agent::plan::{DiscoveryOutcome, Observation, ProbeResult};
use k8s_agent::probe::MasterProber;
use k8s_agent::role_file::{BootstrapToken, CaPin, MasterTrust};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use support_tls::Ca;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const HOST: &str = "masters.prod.k8s";
const TIMEOUT: Duration = Duration::from_secs(2);
const MARGIN: Duration = Duration::from_secs(3);

/// What the hostile server does after the TLS handshake and the request head.
#[derive(Clone)]
enum Hostile {
    /// 302 to `Location`.
    Redirect(String),
    /// The answer, one byte a second.
    Trickle,
    /// 200, chunked, 64 KiB chunks forever.
    Endless,
}

struct HostileServer {
    port: u16,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HostileServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn hostile(ca: &Ca, behaviour: Hostile) -> HostileServer {
    let leaf = ca.issue(&[HOST]);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der.clone()], leaf.key())
        .expect("certificate");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            counter.fetch_add(1, Ordering::SeqCst);
            let (acceptor, behaviour) = (acceptor.clone(), behaviour.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                match behaviour {
                    Hostile::Redirect(location) => {
                        let answer = format!(
                            "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        );
                        let _ = tls.write_all(answer.as_bytes()).await;
                    }
                    Hostile::Trickle => {
                        for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" {
                            if tls.write_all(&[*byte]).await.is_err() || tls.flush().await.is_err()
                            {
                                return;
                            }
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                    Hostile::Endless => {
                        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
                        if tls.write_all(head.as_bytes()).await.is_err() {
                            return;
                        }
                        let chunk = [b' '; 65536];
                        loop {
                            if tls.write_all(b"10000\r\n").await.is_err()
                                || tls.write_all(&chunk).await.is_err()
                                || tls.write_all(b"\r\n").await.is_err()
                            {
                                return;
                            }
                        }
                    }
                }
                let _ = tls.shutdown().await;
            });
        }
    });
    HostileServer {
        port,
        connections,
        task,
    }
}

fn loopback() -> Vec<IpAddr> {
    vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]
}

fn trust_file(dir: &tempfile::TempDir, ca: &Ca) -> MasterTrust {
    let path = dir.path().join("ca.crt");
    std::fs::write(&path, &ca.pem).expect("ca file");
    MasterTrust {
        ca_cert_hash: None,
        ca_cert_file: Some(path),
    }
}

/// One health probe of `https://masters.prod.k8s:PORT/readyz` at 127.0.0.1, trusting `ca` (a CA file in `dir`).
async fn probe_readyz(port: u16, dir: &tempfile::TempDir, ca: &Ca) -> ProbeResult {
    MasterProber::new(TIMEOUT)
        .probe(
            &format!("https://{HOST}:{port}/readyz"),
            &loopback(),
            &trust_file(dir, ca),
        )
        .await
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

async fn discover(port: u16, ca: &Ca) -> (DiscoveryOutcome, Duration) {
    let root = tempfile::tempdir().expect("root");
    let token = BootstrapToken::parse("abcdef.0123456789abcdef").expect("token");
    let trust = MasterTrust {
        ca_cert_hash: Some(CaPin::parse(&ca.pin()).expect("pin")),
        ca_cert_file: None,
    };
    let started = Instant::now();
    let observation = join::discover(
        root.path(),
        &format!("https://{HOST}:{port}"),
        &loopback(),
        &trust,
        Some(&token),
        "node-1",
        TIMEOUT,
    )
    .await;
    let Observation::Discovered(outcome) = observation else {
        panic!("discover answered {observation:?}")
    };
    eprintln!("discovery: {outcome:?}");
    (outcome, started.elapsed())
}

#[tokio::test]
async fn a_redirect_is_a_status_and_never_followed() {
    let ca = Ca::new("hostile-ca");
    let elsewhere = hostile(&ca, Hostile::Endless).await;
    let server = hostile(
        &ca,
        Hostile::Redirect(format!("https://{HOST}:{}/readyz", elsewhere.port)),
    )
    .await;
    let dir = tempfile::tempdir().expect("dir");
    let result = probe_readyz(server.port, &dir, &ca).await;
    eprintln!("probe: {result:?}");
    assert_eq!(result, ProbeResult::HttpStatus { status: 302 });
    assert_eq!(
        elsewhere.connections.load(Ordering::SeqCst),
        0,
        "the redirect was not followed"
    );
}

#[tokio::test]
async fn a_server_that_trickles_times_out_in_the_probe_and_in_discovery() {
    let ca = Ca::new("hostile-ca");
    let server = hostile(&ca, Hostile::Trickle).await;
    let dir = tempfile::tempdir().expect("dir");
    let started = Instant::now();
    let result = probe_readyz(server.port, &dir, &ca).await;
    assert_eq!(result, ProbeResult::Timeout);
    assert!(
        started.elapsed() < TIMEOUT + MARGIN,
        "{:?}",
        started.elapsed()
    );
    let (outcome, took) = discover(server.port, &ca).await;
    assert!(took < TIMEOUT * 2 + MARGIN, "{took:?}");
    match outcome {
        DiscoveryOutcome::Waiting { reason } | DiscoveryOutcome::Unreachable { reason } => {
            assert!(
                reason.contains("timed out") || reason.contains("no answer"),
                "{reason}"
            )
        }
        other => panic!("expected a wait, got {other:?}"),
    }
}

#[tokio::test]
async fn endless_bodies_are_cut_off_with_bounded_memory() {
    let ca = Ca::new("hostile-ca");
    let server = hostile(&ca, Hostile::Endless).await;
    let dir = tempfile::tempdir().expect("dir");
    let before = peak_rss_kib();
    let started = Instant::now();
    // /readyz: the status line decides; the body is never read.
    let result = probe_readyz(server.port, &dir, &ca).await;
    assert_eq!(result, ProbeResult::Healthy);
    // cluster-info: read up to its limit, then refused as too large.
    let (outcome, _) = discover(server.port, &ca).await;
    match &outcome {
        DiscoveryOutcome::Waiting { reason }
        | DiscoveryOutcome::Unreachable { reason }
        | DiscoveryOutcome::Refused { reason } => {
            assert!(reason.contains("larger than 1048576 bytes"), "{reason}")
        }
        other => panic!("expected cluster-info refused as too large, got {other:?}"),
    }
    assert!(started.elapsed() < TIMEOUT * 3 + MARGIN);
    let grown = peak_rss_kib().saturating_sub(before);
    assert!(grown < 64 * 1024, "peak RSS grew by {grown} KiB");
}

#[tokio::test]
async fn a_tls_1_1_server_is_refused_as_a_protocol_failure() {
    let Some(openssl) = ["/usr/bin/openssl"]
        .into_iter()
        .find(|p| std::path::Path::new(p).is_file())
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set and openssl is missing"
        );
        eprintln!("SKIPPED: openssl is not installed");
        return;
    };
    let ca = Ca::new("hostile-ca");
    let leaf = ca.issue(&[HOST]);
    let dir = tempfile::tempdir().expect("dir");
    let cert = dir.path().join("leaf.pem");
    let key = dir.path().join("leaf.key");
    let (cert_pem, key_pem) = leaf.pem_pair();
    std::fs::write(&cert, cert_pem).expect("cert");
    std::fs::write(&key, key_pem).expect("key");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let mut server = std::process::Command::new(openssl)
        .args([
            "s_server",
            "-tls1_1",
            "-cipher",
            "DEFAULT:@SECLEVEL=0",
            "-www",
            "-quiet",
        ])
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .args(["-accept", &format!("127.0.0.1:{port}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl s_server");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "s_server did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let result = probe_readyz(port, &dir, &ca).await;
    let (outcome, _) = discover(port, &ca).await;
    eprintln!("probe: {result:?}");
    let _ = server.kill();
    let _ = server.wait();
    match result {
        ProbeResult::Unreachable { message } => assert!(
            message.to_lowercase().contains("protocol")
                || message.to_lowercase().contains("version"),
            "{message}"
        ),
        other => panic!("expected Unreachable (protocol version), got {other:?}"),
    }
    assert!(
        !matches!(outcome, DiscoveryOutcome::Joined { .. }),
        "discovery joined over TLS 1.1: {outcome:?}"
    );
}
