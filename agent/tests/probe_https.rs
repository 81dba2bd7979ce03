//! The master health probe against a real TLS server on 127.0.0.1: CA file and kubeadm pin (chain served, or
//! the CA found through cluster-info), wrong CA / pin / name / expiry, HTTP statuses, refused, silent server,
//! plain HTTP, and no trust at all. The URL's host `masters.prod.k8s` resolves nowhere: every probe connecting
//! shows the probe used `connect_to` and not DNS.

mod support_tls;

use k8s_agent::plan::ProbeResult;
use k8s_agent::probe::{MasterProber, spki_sha256};
use k8s_agent::role_file::{CaPin, MasterTrust};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support_tls::{Behaviour, CLUSTER_INFO_PATH, Ca, Server, Wire, start};
use tempfile::TempDir;

const HOST: &str = "masters.prod.k8s";

fn url(port: u16) -> String {
    format!("https://{HOST}:{port}/readyz")
}

fn loopback() -> Vec<IpAddr> {
    vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]
}

fn prober() -> MasterProber {
    MasterProber::new(Duration::from_secs(5))
}

fn pin(text: &str) -> CaPin {
    CaPin::parse(text).expect("pin")
}

fn pinned(ca_pin: &str) -> MasterTrust {
    MasterTrust {
        ca_cert_hash: Some(pin(ca_pin)),
        ca_cert_file: None,
    }
}

fn ca_file(dir: &TempDir, name: &str, pem: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, pem).expect("write CA file");
    path
}

fn from_file(path: &Path) -> MasterTrust {
    MasterTrust {
        ca_cert_hash: None,
        ca_cert_file: Some(path.to_path_buf()),
    }
}

async fn probe(prober: &MasterProber, server: &Server, trust: &MasterTrust) -> ProbeResult {
    prober.probe(&url(server.port), &loopback(), trust).await
}

fn untrusted(result: &ProbeResult) -> &str {
    match result {
        ProbeResult::TlsUntrusted { message } => {
            eprintln!("TlsUntrusted: {message}");
            message
        }
        other => panic!("expected TlsUntrusted, got {other:?}"),
    }
}

struct Pki {
    ca: Ca,
    other_ca: Ca,
}

fn pki() -> Pki {
    Pki {
        ca: Ca::new("kubernetes"),
        other_ca: Ca::new("another-cluster"),
    }
}

fn assert_clean_requests(server: &Server) {
    let headers = server.seen.header_names.lock().expect("headers").clone();
    assert!(
        !headers.iter().any(|h| h == "authorization"),
        "no credentials are sent: {headers:?}"
    );
    for sni in server.seen.sni.lock().expect("sni").iter() {
        assert_eq!(sni, HOST, "SNI is the URL's host");
    }
}

#[tokio::test]
async fn ca_file_with_the_right_ca_is_healthy() {
    let pki = pki();
    let leaf = pki.ca.issue(&[HOST]);
    let server = start(Wire::tls(&leaf, &[]), Behaviour::healthy()).await;
    let dir = TempDir::new().expect("tempdir");
    let trust = from_file(&ca_file(&dir, "ca.crt", &pki.ca.pem));
    let prober = prober();
    assert_eq!(probe(&prober, &server, &trust).await, ProbeResult::Healthy);
    assert_eq!(probe(&prober, &server, &trust).await, ProbeResult::Healthy);
    assert_eq!(server.connections(), 2, "one connection per probe");
    assert_eq!(server.paths(), ["/readyz", "/readyz"]);
    assert_eq!(server.seen.sni.lock().expect("sni").len(), 2);
    assert_clean_requests(&server);
}

#[tokio::test]
async fn ca_file_with_another_ca_is_untrusted_and_fixing_the_file_needs_no_restart() {
    let pki = pki();
    let leaf = pki.ca.issue(&[HOST]);
    let server = start(Wire::tls(&leaf, &[]), Behaviour::healthy()).await;
    let dir = TempDir::new().expect("tempdir");
    let path = ca_file(&dir, "ca.crt", &pki.other_ca.pem);
    let trust = from_file(&path);
    let prober = prober();
    for round in 1..=3 {
        let result = probe(&prober, &server, &trust).await;
        let message = untrusted(&result);
        assert!(message.contains("unknown issuer"), "{message}");
        assert!(
            message.contains(&path.display().to_string()),
            "names the file: {message}"
        );
        assert_eq!(
            server.connections(),
            round,
            "exactly one connection per probe, no retries"
        );
    }
    assert!(
        server.paths().is_empty(),
        "nothing is requested over an untrusted connection"
    );
    std::fs::write(&path, &pki.ca.pem).expect("fix the CA file");
    assert_eq!(probe(&prober, &server, &trust).await, ProbeResult::Healthy);
}

#[tokio::test]
async fn ca_file_unreadable_or_invalid_is_untrusted_naming_the_file() {
    let dir = TempDir::new().expect("tempdir");
    let server = start(Wire::Plain, Behaviour::healthy()).await;
    let prober = prober();
    let missing = dir.path().join("missing.crt");
    let garbage = ca_file(&dir, "garbage.crt", "this is not a certificate\n");
    let broken = ca_file(
        &dir,
        "broken.crt",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    );
    for (path, words) in [
        (&missing, "cannot read"),
        (&garbage, "no PEM certificate"),
        (&broken, "certificate #1"),
    ] {
        let result = probe(&prober, &server, &from_file(path)).await;
        let message = untrusted(&result);
        assert!(
            message.contains(&path.display().to_string()) && message.contains(words),
            "{message}"
        );
    }
    assert_eq!(
        server.connections(),
        0,
        "a broken CA file is caught before connecting"
    );
}

#[tokio::test]
async fn pin_with_the_chain_served_is_healthy() {
    let pki = pki();
    let leaf = pki.ca.issue(&[HOST]);
    let server = start(Wire::tls(&leaf, &[&pki.ca.der]), Behaviour::healthy()).await;
    let prober = prober();
    let trust = pinned(&pki.ca.pin());
    assert_eq!(probe(&prober, &server, &trust).await, ProbeResult::Healthy);
    assert_eq!(
        server.connections(),
        2,
        "first probe: the discovery request, then /readyz"
    );
    assert_eq!(probe(&prober, &server, &trust).await, ProbeResult::Healthy);
    assert_eq!(
        server.connections(),
        3,
        "the CA is remembered: one connection per probe after that"
    );
    assert_eq!(server.paths(), [CLUSTER_INFO_PATH, "/readyz", "/readyz"]);
    assert_clean_requests(&server);
}

#[tokio::test]
async fn pin_with_only_the_leaf_served_finds_the_ca_in_cluster_info() {
    let pki = pki();
    let leaf = pki.ca.issue(&[HOST]);
    let server = start(
        Wire::tls(&leaf, &[]),
        Behaviour::with_cluster_info(&pki.ca.pem),
    )
    .await;
    let prober = prober();
    let trust = pinned(&pki.ca.pin());
    assert_eq!(probe(&prober, &server, &trust).await, ProbeResult::Healthy);
    assert_eq!(probe(&prober, &server, &trust).await, ProbeResult::Healthy);
    assert_eq!(server.paths(), [CLUSTER_INFO_PATH, "/readyz", "/readyz"]);
    assert_eq!(server.connections(), 3);
    assert_clean_requests(&server);
}

#[tokio::test]
async fn wrong_pin_is_untrusted_with_both_hashes_and_one_connection_per_probe() {
    let pki = pki();
    let leaf = pki.ca.issue(&[HOST]);
    let server = start(
        Wire::tls(&leaf, &[]),
        Behaviour::with_cluster_info(&pki.ca.pem),
    )
    .await;
    let prober = prober();
    let wrong = pki.other_ca.pin();
    let trust = pinned(&wrong);
    for round in 1..=3 {
        let result = probe(&prober, &server, &trust).await;
        let message = untrusted(&result);
        assert!(
            message.contains(&pki.ca.pin()),
            "names the cluster CA's hash: {message}"
        );
        assert!(message.contains(&wrong), "names the pin: {message}");
        assert_eq!(
            server.connections(),
            round,
            "exactly one connection per probe, no retry storm"
        );
    }
    assert!(
        server.paths().iter().all(|p| p == CLUSTER_INFO_PATH),
        "never /readyz: {:?}",
        server.paths()
    );
}

#[tokio::test]
async fn wrong_pin_with_the_chain_served_and_no_cluster_info_is_untrusted() {
    let pki = pki();
    let leaf = pki.ca.issue(&[HOST]);
    let server = start(Wire::tls(&leaf, &[&pki.ca.der]), Behaviour::healthy()).await;
    let wrong = pki.other_ca.pin();
    let result = prober()
        .probe(&url(server.port), &loopback(), &pinned(&wrong))
        .await;
    let message = untrusted(&result);
    assert!(
        message.contains(&wrong) && message.contains(&pki.ca.pin()),
        "{message}"
    );
    assert!(
        message.contains("cluster-info was not available (HTTP 404"),
        "{message}"
    );
    assert!(
        message.contains("CA_CERT_FILE"),
        "says what to do: {message}"
    );
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn leaf_without_the_san_is_untrusted() {
    let pki = pki();
    let leaf = pki.ca.issue(&["other.prod.k8s"]);
    let server = start(Wire::tls(&leaf, &[&pki.ca.der]), Behaviour::healthy()).await;
    let dir = TempDir::new().expect("tempdir");
    let prober = prober();
    for trust in [
        from_file(&ca_file(&dir, "ca.crt", &pki.ca.pem)),
        pinned(&pki.ca.pin()),
    ] {
        let result = probe(&prober, &server, &trust).await;
        let message = untrusted(&result);
        assert!(
            message.contains("not valid for masters.prod.k8s"),
            "{message}"
        );
        assert!(
            message.contains("other.prod.k8s"),
            "says what it is valid for: {message}"
        );
    }
    assert!(!server.paths().iter().any(|p| p == "/readyz"));
}

#[tokio::test]
async fn expired_leaf_is_untrusted() {
    let pki = pki();
    let leaf = pki.ca.issue_expired(&[HOST]);
    let server = start(Wire::tls(&leaf, &[]), Behaviour::healthy()).await;
    let dir = TempDir::new().expect("tempdir");
    let trust = from_file(&ca_file(&dir, "ca.crt", &pki.ca.pem));
    let result = probe(&prober(), &server, &trust).await;
    assert!(untrusted(&result).contains("expired"), "{result:?}");
}

#[tokio::test]
async fn both_ca_file_and_pin_must_match() {
    let pki = pki();
    let leaf = pki.ca.issue(&[HOST]);
    let server = start(Wire::tls(&leaf, &[]), Behaviour::healthy()).await;
    let dir = TempDir::new().expect("tempdir");
    let path = ca_file(
        &dir,
        "ca.crt",
        &format!("{}{}", pki.other_ca.pem, pki.ca.pem),
    );
    let prober = prober();
    let both = |ca_pin: &str| MasterTrust {
        ca_cert_hash: Some(pin(ca_pin)),
        ca_cert_file: Some(path.clone()),
    };
    assert_eq!(
        probe(&prober, &server, &both(&pki.ca.pin())).await,
        ProbeResult::Healthy
    );
    assert_eq!(server.connections(), 1);
    let only_other = ca_file(&dir, "other.crt", &pki.other_ca.pem);
    let mismatch = MasterTrust {
        ca_cert_hash: Some(pin(&pki.ca.pin())),
        ca_cert_file: Some(only_other),
    };
    let result = probe(&prober, &server, &mismatch).await;
    let message = untrusted(&result);
    assert!(
        message.contains(&pki.ca.pin()) && message.contains(&pki.other_ca.pin()),
        "{message}"
    );
    assert_eq!(
        server.connections(),
        1,
        "a file that does not match the pin is caught before connecting"
    );
}

#[tokio::test]
async fn http_500_then_200() {
    let pki = pki();
    let leaf = pki.ca.issue(&[HOST]);
    let behaviour = Behaviour {
        health: vec![500, 200],
        cluster_info: None,
    };
    let server = start(Wire::tls(&leaf, &[]), behaviour).await;
    let dir = TempDir::new().expect("tempdir");
    let trust = from_file(&ca_file(&dir, "ca.crt", &pki.ca.pem));
    let prober = prober();
    assert_eq!(
        probe(&prober, &server, &trust).await,
        ProbeResult::HttpStatus { status: 500 }
    );
    assert_eq!(probe(&prober, &server, &trust).await, ProbeResult::Healthy);
}

#[tokio::test]
async fn nothing_listening_is_unreachable() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let pki = pki();
    let prober = prober();
    let result = prober
        .probe(&url(port), &loopback(), &pinned(&pki.ca.pin()))
        .await;
    match result {
        ProbeResult::Unreachable { message } => {
            eprintln!("Unreachable: {message}");
            assert!(
                message.contains("connection refused") && message.contains("127.0.0.1"),
                "{message}"
            )
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let server = start(Wire::Silent, Behaviour::healthy()).await;
    let pki = pki();
    let dir = TempDir::new().expect("tempdir");
    let prober = MasterProber::new(Duration::from_secs(1));
    let started = Instant::now();
    for trust in [
        from_file(&ca_file(&dir, "ca.crt", &pki.ca.pem)),
        pinned(&pki.ca.pin()),
    ] {
        assert_eq!(
            prober.probe(&url(server.port), &loopback(), &trust).await,
            ProbeResult::Timeout
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "bounded: {:?}",
        started.elapsed()
    );
    let plain = format!("http://{HOST}:{}/healthz", server.port);
    assert_eq!(
        prober
            .probe(&plain, &loopback(), &MasterTrust::default())
            .await,
        ProbeResult::Timeout
    );
}

#[tokio::test]
async fn plain_http_only_for_an_http_url() {
    let server = start(Wire::Plain, Behaviour::healthy()).await;
    let prober = prober();
    let plain = format!("http://{HOST}:{}/healthz", server.port);
    assert_eq!(
        prober
            .probe(&plain, &loopback(), &MasterTrust::default())
            .await,
        ProbeResult::Healthy
    );
    assert_eq!(server.paths(), ["/healthz"]);
    assert_clean_requests(&server);
}

#[tokio::test]
async fn https_without_trust_is_untrusted_and_never_connects() {
    let pki = pki();
    let leaf = pki.ca.issue(&[HOST]);
    let server = start(
        Wire::tls(&leaf, &[&pki.ca.der]),
        Behaviour::with_cluster_info(&pki.ca.pem),
    )
    .await;
    let result = probe(&prober(), &server, &MasterTrust::default()).await;
    let message = untrusted(&result);
    assert!(
        message.contains("CA_CERT_HASH") && message.contains("CA_CERT_FILE"),
        "{message}"
    );
    assert_eq!(
        server.connections(),
        0,
        "no system roots, no unverified fallback"
    );
}

#[tokio::test]
async fn spki_sha256_matches_kubeadms_openssl_recipe() {
    let ca = Ca::new("kubernetes");
    let dir = TempDir::new().expect("tempdir");
    let path = ca_file(&dir, "ca.crt", &ca.pem);
    let output = Command::new("bash")
        .arg("-c")
        .arg("set -o pipefail; openssl x509 -pubkey -noout -in \"$1\" | openssl pkey -pubin -outform der | sha256sum")
        .arg("bash")
        .arg(&path)
        .output()
        .expect("run bash with openssl (apt-get install openssl)");
    assert!(
        output.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    let openssl_hex = stdout.split_whitespace().next().expect("a hash");
    let ours = spki_sha256(&ca.der).expect("spki");
    assert_eq!(hex::encode(ours), openssl_hex);
    assert_eq!(
        format!("sha256:{openssl_hex}"),
        ca.pin(),
        "and rcgen's SubjectPublicKeyInfo agrees"
    );
    assert!(spki_sha256(b"not a certificate").is_err());
}
