//! The control plane's PKI as the real `openssl` sees it: a cluster CA made by openssl (RSA 2048 with a PKCS#8
//! key and with a PKCS#1 key, ECDSA P-256 with a SEC1 key and with a PKCS#8 key), the whole PKI generated into a
//! temporary root through `plan_control_plane` + `write_planned`, then every certificate — the ones under
//! `etc/kubernetes/pki` and the client certificates embedded in every kubeconfig — checked with openssl:
//! `verify -x509_strict -purpose` against its CA, subject, key usage, extended key usage, exact SANs, basic
//! constraints, key identifiers, validity, and the key matching the certificate. A tampered certificate and a
//! wrong CA must fail `openssl verify`, so these checks can fail. For an HA control plane (size 3, the shared CAs
//! and sa pair made by openssl) the four etcd leaves must verify against etcd/ca.crt and not against ca.crt. A
//! real kubectl (Debian 13's) must read every kubeconfig (`config view`; the authenticated requests are in
//! tests/local/join.sh). Skipped, with a message, only where openssl is not installed.

use base64::Engine as _;
use k8s_agent::edge::pki_files::{read_existing, write_planned};
use k8s_agent::pure::kubeconfig;
use k8s_agent::pure::pki::{
    self, ControlPlaneSpec, PkiError, ca_cert_hash, plan_control_plane, verify_signed_by,
};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};
use tempfile::TempDir;

const YEAR: i64 = 365 * 86_400;

fn have(tool: &str) -> bool {
    Command::new(tool)
        .args(["version", "-v"])
        .output()
        .is_ok_and(|o| o.status.success())
}

macro_rules! require_openssl {
    () => {
        if !have("openssl") {
            eprintln!("SKIPPED: the openssl binary is not installed (apt-get install openssl)");
            return;
        }
    };
}

fn run(tool: &str, args: &[&str]) -> Output {
    Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool} {args:?}: {e}"))
}

/// openssl's stdout; panics with its stderr when it fails.
fn openssl(args: &[&str]) -> String {
    let out = run("openssl", args);
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock before 1970")
        .as_secs() as i64
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("an IP address")
}

fn spec() -> ControlPlaneSpec {
    ControlPlaneSpec {
        node_name: "master-1".to_string(),
        endpoint_host: "masters.prod.k8s".to_string(),
        advertise_addrs: vec![ip("10.0.0.5"), ip("fd00::5")],
        service_ip: ip("10.96.0.1"),
        now_unix: now(),
        control_plane_size: 1,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CaKind {
    RsaPkcs8,
    RsaPkcs1,
    EcSec1,
    EcPkcs8,
}

fn p(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// The cluster CA, made by openssl as an operator would, at `<root>/etc/kubernetes/pki/ca.{crt,key}`.
fn openssl_ca(root: &Path, kind: CaKind) {
    let pki = root.join("etc/kubernetes/pki");
    std::fs::create_dir_all(&pki).expect("create a directory");
    let (crt, key) = (pki.join("ca.crt"), pki.join("ca.key"));
    let ext = [
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
    ];
    match kind {
        CaKind::RsaPkcs8 | CaKind::RsaPkcs1 => {
            let mut args = vec![
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                p(&key),
                "-out",
                p(&crt),
                "-subj",
                "/CN=kubernetes",
                "-days",
                "3650",
            ];
            args.extend(ext);
            openssl(&args);
            if kind == CaKind::RsaPkcs1 {
                openssl(&["rsa", "-in", p(&key), "-traditional", "-out", p(&key)]);
            }
        }
        CaKind::EcSec1 | CaKind::EcPkcs8 => {
            if kind == CaKind::EcSec1 {
                openssl(&[
                    "ecparam",
                    "-name",
                    "prime256v1",
                    "-genkey",
                    "-noout",
                    "-out",
                    p(&key),
                ]);
            } else {
                openssl(&[
                    "genpkey",
                    "-algorithm",
                    "EC",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-out",
                    p(&key),
                ]);
            }
            let mut args = vec![
                "req",
                "-x509",
                "-key",
                p(&key),
                "-out",
                p(&crt),
                "-subj",
                "/CN=kubernetes",
                "-days",
                "3650",
            ];
            args.extend(ext);
            openssl(&args);
        }
    }
    let first_line = std::fs::read_to_string(&key)
        .expect("read a file")
        .lines()
        .next()
        .expect("a first line")
        .to_string();
    let expected = match kind {
        CaKind::RsaPkcs8 | CaKind::EcPkcs8 => "-----BEGIN PRIVATE KEY-----",
        CaKind::RsaPkcs1 => "-----BEGIN RSA PRIVATE KEY-----",
        CaKind::EcSec1 => "-----BEGIN EC PRIVATE KEY-----",
    };
    assert_eq!(first_line, expected, "{kind:?}");
}

/// `openssl x509 -noout -text`, split into what the checks look at.
#[derive(Debug, Default)]
struct CertText {
    subject: String,
    issuer: String,
    not_before: i64,
    not_after: i64,
    /// Extension name → (critical, value lines joined by a space).
    extensions: BTreeMap<String, (bool, String)>,
}

impl CertText {
    fn ext(&self, name: &str) -> &str {
        self.extensions
            .get(name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {name} in {self:#?}"))
    }

    fn critical(&self, name: &str) -> bool {
        self.extensions.get(name).is_some_and(|(c, _)| *c)
    }

    fn key_id(&self, name: &str) -> String {
        self.ext(name).trim_start_matches("keyid:").to_string()
    }
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `Dec  1 20:17:04 2026 GMT` → Unix seconds.
fn openssl_time(text: &str) -> i64 {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == parts[0])
    .unwrap_or_else(|| panic!("{text}")) as i64
        + 1;
    let day: i64 = parts[1].parse().expect("a number in the date");
    let hms: Vec<i64> = parts[2]
        .split(':')
        .map(|x| x.parse().expect("a time of day"))
        .collect();
    let year: i64 = parts[3].parse().expect("a number in the date");
    assert_eq!(parts[4], "GMT");
    days_from_civil(year, month, day) * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2]
}

fn cert_text(cert: &Path) -> CertText {
    let text = openssl(&["x509", "-in", p(cert), "-noout", "-text"]);
    let mut out = CertText::default();
    let mut lines = text.lines().peekable();
    let mut in_extensions = false;
    while let Some(line) = lines.next() {
        let trimmed = line.trim();
        if let Some(v) = trimmed.strip_prefix("Subject: ") {
            out.subject = v.to_string();
        } else if let Some(v) = trimmed.strip_prefix("Issuer: ") {
            out.issuer = v.to_string();
        } else if let Some(v) = trimmed.strip_prefix("Not Before: ") {
            out.not_before = openssl_time(v);
        } else if let Some(v) = trimmed.strip_prefix("Not After : ") {
            out.not_after = openssl_time(v);
        } else if trimmed == "X509v3 extensions:" {
            in_extensions = true;
        } else if trimmed.starts_with("Signature Algorithm:") {
            in_extensions = false;
        } else if in_extensions && trimmed.contains(':') && !line.starts_with("                ") {
            // "X509v3 Key Usage: critical", the value on the indented lines after it.
            let (name, rest) = trimmed.split_once(':').expect("an extension header");
            let mut value = Vec::new();
            while let Some(next) = lines.peek() {
                if next.starts_with("                ") {
                    value.push(next.trim().to_string());
                    lines.next();
                } else {
                    break;
                }
            }
            out.extensions.insert(
                name.to_string(),
                (rest.trim() == "critical", value.join(" ")),
            );
        }
    }
    out
}

/// `openssl verify -x509_strict -purpose <purpose> -CAfile <ca> <cert>`: Ok, or openssl's complaint.
fn verify(ca: &Path, cert: &Path, purpose: &str) -> Result<(), String> {
    let out = run(
        "openssl",
        &[
            "verify",
            "-x509_strict",
            "-purpose",
            purpose,
            "-CAfile",
            p(ca),
            p(cert),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.status.success() && stdout.trim_end().ends_with(": OK") {
        Ok(())
    } else {
        Err(format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)))
    }
}

/// The public key of a certificate (`openssl x509 -pubkey`) and of a key (`openssl pkey -pubout`).
fn assert_key_matches(cert: &Path, key: &Path) {
    let from_cert = openssl(&["x509", "-in", p(cert), "-noout", "-pubkey"]);
    let from_key = openssl(&["pkey", "-in", p(key), "-pubout"]);
    assert_eq!(
        from_cert,
        from_key,
        "{} is not the key of {}",
        key.display(),
        cert.display()
    );
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("stat a written file")
        .permissions()
        .mode()
        & 0o7777
}

/// What one certificate must look like.
struct Expect<'a> {
    subject: &'a str,
    issuer: &'a str,
    purpose: &'a str,
    eku: &'a str,
    sans: Option<&'a str>,
}

/// Checks a leaf certificate with openssl against the table.
fn check_leaf(cert: &Path, key: &Path, ca: &Path, expect: &Expect<'_>, now: i64) {
    let name = cert.display();
    verify(ca, cert, expect.purpose).unwrap_or_else(|e| panic!("{name}: {e}"));
    let text = cert_text(cert);
    let ca_text = cert_text(ca);
    assert_eq!(text.subject, expect.subject, "{name}");
    assert_eq!(text.issuer, expect.issuer, "{name}");
    assert_eq!(text.ext("X509v3 Key Usage"), "Digital Signature", "{name}");
    assert!(text.critical("X509v3 Key Usage"), "{name}");
    assert_eq!(text.ext("X509v3 Extended Key Usage"), expect.eku, "{name}");
    assert_eq!(text.ext("X509v3 Basic Constraints"), "CA:FALSE", "{name}");
    assert!(text.critical("X509v3 Basic Constraints"), "{name}");
    assert_eq!(
        text.key_id("X509v3 Authority Key Identifier"),
        ca_text.key_id("X509v3 Subject Key Identifier"),
        "{name}: AKI = the CA's SKI"
    );
    assert!(
        !text.key_id("X509v3 Subject Key Identifier").is_empty(),
        "{name}"
    );
    match expect.sans {
        Some(sans) => assert_eq!(text.ext("X509v3 Subject Alternative Name"), sans, "{name}"),
        None => assert!(
            !text
                .extensions
                .contains_key("X509v3 Subject Alternative Name"),
            "{name}"
        ),
    }
    assert_eq!(
        text.not_before,
        now - 300,
        "{name}: notBefore = now - 5 min"
    );
    assert_eq!(text.not_after, now + YEAR, "{name}: one year");
    assert_key_matches(cert, key);
}

/// A PKI generated from an openssl-made CA of `kind`, checked with openssl; returns the root.
fn generate_and_check(kind: CaKind) -> TempDir {
    let root = tempfile::tempdir().expect("a temporary directory");
    openssl_ca(root.path(), kind);
    let spec = spec();
    let now = spec.now_unix;

    let existing = read_existing(root.path(), 1).expect("read the PKI files");
    assert_eq!(existing.len(), 2);
    let planned = plan_control_plane(&existing, &spec).unwrap_or_else(|e| panic!("{kind:?}: {e}"));
    assert_eq!(planned.len(), 14, "{kind:?}");
    write_planned(root.path(), &planned).expect("write the PKI files");
    let again = read_existing(root.path(), 1).expect("read the PKI files");
    assert_eq!(again.len(), 16);
    assert_eq!(
        plan_control_plane(&again, &spec),
        Ok(vec![]),
        "{kind:?}: idempotent"
    );

    let pki = root.path().join("etc/kubernetes/pki");
    let f = |name: &str| pki.join(name);
    let ca = f("ca.crt");
    let front_proxy_ca = f("front-proxy-ca.crt");

    // Modes.
    for file in &planned {
        let path = root.path().join(&file.path);
        let expected = if file.path.ends_with(".key") || file.path.ends_with(".conf") {
            0o600
        } else {
            0o644
        };
        assert_eq!(mode(&path), expected, "{}", file.path);
    }
    assert_eq!(mode(&pki), 0o755);

    // The leaves under pki/.
    let apiserver_sans = "DNS:master-1, DNS:kubernetes, DNS:kubernetes.default, DNS:kubernetes.default.svc, \
                          DNS:kubernetes.default.svc.cluster.local, DNS:masters.prod.k8s, IP Address:10.96.0.1, \
                          IP Address:10.0.0.5, IP Address:FD00:0:0:0:0:0:0:5, IP Address:127.0.0.1";
    let leaves = [
        (
            "apiserver",
            &ca,
            Expect {
                subject: "CN = kube-apiserver",
                issuer: "CN = kubernetes",
                purpose: "sslserver",
                eku: "TLS Web Server Authentication",
                sans: Some(apiserver_sans),
            },
        ),
        (
            "apiserver-kubelet-client",
            &ca,
            Expect {
                subject: "O = kubeadm:cluster-admins, CN = kube-apiserver-kubelet-client",
                issuer: "CN = kubernetes",
                purpose: "sslclient",
                eku: "TLS Web Client Authentication",
                sans: None,
            },
        ),
        (
            "front-proxy-client",
            &front_proxy_ca,
            Expect {
                subject: "CN = front-proxy-client",
                issuer: "CN = front-proxy-ca",
                purpose: "sslclient",
                eku: "TLS Web Client Authentication",
                sans: None,
            },
        ),
    ];
    for (name, issuer, expect) in &leaves {
        check_leaf(
            &f(&format!("{name}.crt")),
            &f(&format!("{name}.key")),
            issuer,
            expect,
            now,
        );
    }

    // The front-proxy CA: self-signed, a CA, ten years.
    verify(&front_proxy_ca, &front_proxy_ca, "any")
        .expect("front-proxy-ca.crt verifies as self-signed");
    let text = cert_text(&front_proxy_ca);
    assert_eq!(text.subject, "CN = front-proxy-ca");
    assert_eq!(text.issuer, "CN = front-proxy-ca");
    assert_eq!(text.ext("X509v3 Basic Constraints"), "CA:TRUE");
    assert!(text.critical("X509v3 Basic Constraints"));
    assert_eq!(
        text.ext("X509v3 Key Usage"),
        "Digital Signature, Certificate Sign, CRL Sign"
    );
    assert!(!text.extensions.contains_key("X509v3 Extended Key Usage"));
    assert_eq!(
        (text.not_before, text.not_after),
        (now - 300, now + 10 * YEAR)
    );
    assert_key_matches(&front_proxy_ca, &f("front-proxy-ca.key"));

    // The service-account pair.
    assert_eq!(
        openssl(&["pkey", "-in", p(&f("sa.key")), "-pubout"]),
        std::fs::read_to_string(f("sa.pub")).expect("read a file")
    );
    assert!(
        openssl(&["pkey", "-pubin", "-in", p(&f("sa.pub")), "-noout", "-text"])
            .contains("prime256v1")
    );

    // Every kubeconfig: the CA is ca.crt, the client certificate checks like a leaf.
    let ca_fingerprint = openssl(&["x509", "-in", p(&ca), "-noout", "-fingerprint", "-sha256"]);
    let scratch = root.path().join("scratch");
    std::fs::create_dir_all(&scratch).expect("create a directory");
    let kubeconfigs = [
        (
            "admin.conf",
            "O = kubeadm:cluster-admins, CN = kubernetes-admin",
            "https://masters.prod.k8s:6443",
        ),
        (
            "super-admin.conf",
            "O = system:masters, CN = kubernetes-super-admin",
            "https://masters.prod.k8s:6443",
        ),
        (
            "controller-manager.conf",
            "CN = system:kube-controller-manager",
            "https://127.0.0.1:6443",
        ),
        (
            "scheduler.conf",
            "CN = system:kube-scheduler",
            "https://127.0.0.1:6443",
        ),
    ];
    for (name, subject, server) in kubeconfigs {
        let text = std::fs::read_to_string(root.path().join("etc/kubernetes").join(name))
            .expect("read a file");
        let config = kubeconfig::parse(&text).expect("a kubeconfig that parses");
        let cluster = config.current_cluster().expect("the current cluster");
        assert_eq!(cluster.server, server, "{name}");
        let user = config.current_user().expect("the current user");
        let (ca_file, cert_file, key_file) = (
            scratch.join(format!("{name}.ca.crt")),
            scratch.join(format!("{name}.crt")),
            scratch.join(format!("{name}.key")),
        );
        std::fs::write(
            &ca_file,
            cluster
                .certificate_authority_data
                .as_ref()
                .expect("certificate-authority-data"),
        )
        .expect("write a file");
        std::fs::write(
            &cert_file,
            user.client_certificate_data
                .as_ref()
                .expect("client-certificate-data"),
        )
        .expect("write a file");
        std::fs::write(
            &key_file,
            user.client_key_data.as_ref().expect("client-key-data"),
        )
        .expect("write a file");
        assert_eq!(
            openssl(&[
                "x509",
                "-in",
                p(&ca_file),
                "-noout",
                "-fingerprint",
                "-sha256"
            ]),
            ca_fingerprint,
            "{name}: certificate-authority-data is ca.crt"
        );
        check_leaf(
            &cert_file,
            &key_file,
            &ca,
            &Expect {
                subject,
                issuer: "CN = kubernetes",
                purpose: "sslclient",
                eku: "TLS Web Client Authentication",
                sans: None,
            },
            now,
        );
        // The base64 is on one line, as kubectl writes it.
        let data_line = text
            .lines()
            .find(|l| l.contains("client-certificate-data:"))
            .expect("a first line");
        let b64 = data_line.split_once(": ").expect("a YAML key and value").1;
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .expect("base64 on one line"),
            *user
                .client_certificate_data
                .as_ref()
                .expect("client-certificate-data")
        );
    }
    root
}

#[test]
fn rsa_ca_with_a_pkcs8_key_from_openssl() {
    require_openssl!();
    generate_and_check(CaKind::RsaPkcs8);
}

#[test]
fn rsa_ca_with_a_pkcs1_key_from_openssl() {
    require_openssl!();
    generate_and_check(CaKind::RsaPkcs1);
}

#[test]
fn ecdsa_ca_with_a_sec1_key_from_openssl() {
    require_openssl!();
    generate_and_check(CaKind::EcSec1);
}

#[test]
fn ecdsa_ca_with_a_pkcs8_key_from_openssl() {
    require_openssl!();
    generate_and_check(CaKind::EcPkcs8);
}

/// The DER of a PEM certificate file, via openssl.
fn der_of(cert: &Path) -> Vec<u8> {
    let out = run("openssl", &["x509", "-in", p(cert), "-outform", "der"]);
    assert!(out.status.success());
    out.stdout
}

fn write_pem(path: &Path, der: &[u8]) -> PathBuf {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    std::fs::write(path, pem).expect("write a file");
    path.to_path_buf()
}

#[test]
fn a_tampered_certificate_or_the_wrong_ca_fails_openssl_verify() {
    require_openssl!();
    let root = generate_and_check(CaKind::RsaPkcs8);
    let pki = root.path().join("etc/kubernetes/pki");
    let ca = pki.join("ca.crt");
    let apiserver = pki.join("apiserver.crt");
    assert_eq!(verify(&ca, &apiserver, "sslserver"), Ok(()));

    // One bit of the signature flipped; then one bit of the signed part (the last byte of the CN).
    let der = der_of(&apiserver);
    let mut bad_signature = der.clone();
    let last = bad_signature.len() - 1;
    bad_signature[last] ^= 0x01;
    let cn = der
        .windows(b"kube-apiserver".len())
        .position(|w| w == b"kube-apiserver")
        .unwrap();
    let mut bad_tbs = der.clone();
    bad_tbs[cn + b"kube-apiserver".len() - 1] ^= 0x01;
    for (name, der) in [
        ("bad-signature.crt", bad_signature),
        ("bad-tbs.crt", bad_tbs),
    ] {
        let tampered = write_pem(&root.path().join(name), &der);
        let err = verify(&ca, &tampered, "sslserver").expect_err(name);
        assert!(err.contains("signature"), "{name}: {err}");
        let pem = std::fs::read(&tampered).unwrap();
        assert!(
            matches!(
                verify_signed_by(&pem, &std::fs::read(&ca).unwrap()),
                Err(PkiError::NotSignedBy { .. })
            ),
            "{name}: the agent's check agrees"
        );
    }

    // The right certificate against the wrong CA, and for the wrong purpose.
    assert!(verify(&pki.join("front-proxy-ca.crt"), &apiserver, "sslserver").is_err());
    assert!(verify(&ca, &pki.join("front-proxy-client.crt"), "sslclient").is_err());
    assert!(
        verify(&ca, &apiserver, "sslclient").is_err(),
        "apiserver.crt is not a client certificate"
    );
    assert!(verify(&ca, &pki.join("apiserver-kubelet-client.crt"), "sslserver").is_err());
}

#[test]
fn ca_cert_hash_equals_the_openssl_recipe() {
    require_openssl!();
    for kind in [CaKind::RsaPkcs8, CaKind::EcSec1] {
        let root = tempfile::tempdir().unwrap();
        openssl_ca(root.path(), kind);
        let ca = root.path().join("etc/kubernetes/pki/ca.crt");
        let pubkey = root.path().join("ca.pub");
        std::fs::write(
            &pubkey,
            openssl(&["x509", "-in", p(&ca), "-noout", "-pubkey"]),
        )
        .unwrap();
        let der = run(
            "openssl",
            &["pkey", "-pubin", "-in", p(&pubkey), "-outform", "der"],
        )
        .stdout;
        let digest = openssl_digest(&der, root.path());
        assert_eq!(
            ca_cert_hash(&std::fs::read(&ca).unwrap()).unwrap(),
            format!("sha256:{digest}"),
            "{kind:?}"
        );
    }
}

/// `openssl dgst -sha256 -r` of `bytes`, hex.
fn openssl_digest(bytes: &[u8], dir: &Path) -> String {
    let file = dir.join("digest-input");
    std::fs::write(&file, bytes).expect("write a file");
    openssl(&["dgst", "-sha256", "-r", p(&file)])
        .split_whitespace()
        .next()
        .expect("a first line")
        .to_string()
}

/// An openssl-made leaf signed by the CA at `root`, with `sans` (openssl's `subjectAltName` syntax).
fn openssl_apiserver_cert(root: &Path, sans: &str) {
    let pki = root.join("etc/kubernetes/pki");
    let (key, csr, crt) = (
        pki.join("apiserver.key"),
        root.join("apiserver.csr"),
        pki.join("apiserver.crt"),
    );
    let ext = root.join("apiserver.ext");
    std::fs::write(
        &ext,
        format!(
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
             extendedKeyUsage=serverAuth\nsubjectAltName={sans}\n"
        ),
    )
    .expect("write the extensions file");
    openssl(&[
        "req",
        "-new",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        p(&key),
        "-out",
        p(&csr),
        "-subj",
        "/CN=kube-apiserver",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        p(&csr),
        "-CA",
        p(&pki.join("ca.crt")),
        "-CAkey",
        p(&pki.join("ca.key")),
        "-CAcreateserial",
        "-out",
        p(&crt),
        "-days",
        "365",
        "-extfile",
        p(&ext),
    ]);
}

#[test]
fn an_apiserver_certificate_made_by_openssl_is_kept_or_rejected_by_its_sans() {
    require_openssl!();
    let root = tempfile::tempdir().unwrap();
    openssl_ca(root.path(), CaKind::RsaPkcs1);
    openssl_apiserver_cert(
        root.path(),
        "DNS:masters.prod.k8s,IP:10.96.0.1,IP:127.0.0.1",
    );
    let existing = read_existing(root.path(), 1).unwrap();
    let planned = plan_control_plane(&existing, &spec()).unwrap();
    assert!(
        !planned.iter().any(|f| f.path.contains("apiserver.")),
        "the user's apiserver pair is kept"
    );
    assert_eq!(planned.len(), 12);

    let root = tempfile::tempdir().unwrap();
    openssl_ca(root.path(), CaKind::EcSec1);
    openssl_apiserver_cert(root.path(), "DNS:master-1,IP:10.0.0.5");
    let existing = read_existing(root.path(), 1).unwrap();
    assert_eq!(
        plan_control_plane(&existing, &spec()),
        Err(PkiError::MissingSans {
            path: pki::APISERVER_CRT.to_string(),
            missing: vec![
                "masters.prod.k8s".to_string(),
                "10.96.0.1".to_string(),
                "127.0.0.1".to_string()
            ],
        })
    );
}

#[test]
fn kubectl_reads_every_kubeconfig() {
    require_openssl!();
    // A real kubectl: Debian 13's 1.32, fetched once by tests/tools/kubectl.sh (not whatever is on the PATH).
    let tool = Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/tools/kubectl.sh"
    ))
    .output()
    .ok()
    .filter(|o| o.status.success())
    .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let Some(kubectl) = tool else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must be able to fetch kubectl (tests/tools/kubectl.sh)"
        );
        eprintln!("SKIPPED: tests/tools/kubectl.sh could not fetch kubectl");
        return;
    };
    let kubectl = kubectl.as_str();
    let root = tempfile::tempdir().unwrap();
    openssl_ca(root.path(), CaKind::EcSec1);
    let existing = read_existing(root.path(), 1).unwrap();
    write_planned(
        root.path(),
        &plan_control_plane(&existing, &spec()).unwrap(),
    )
    .unwrap();
    for (name, user) in [
        ("admin.conf", "kubernetes-admin"),
        ("super-admin.conf", "kubernetes-super-admin"),
        ("controller-manager.conf", "system:kube-controller-manager"),
        ("scheduler.conf", "system:kube-scheduler"),
    ] {
        let path = root.path().join("etc/kubernetes").join(name);
        let out = run(
            kubectl,
            &[
                "config",
                "view",
                "--raw",
                "--minify",
                "-o",
                "json",
                "--kubeconfig",
                p(&path),
            ],
        );
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let view: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            view["current-context"],
            format!("{user}@kubernetes"),
            "{name}"
        );
        assert_eq!(view["users"][0]["name"], user, "{name}");
        assert_eq!(view["clusters"][0]["name"], "kubernetes", "{name}");
        // kubectl's own rendering parses back to the same configuration.
        let yaml = run(
            kubectl,
            &["config", "view", "--raw", "--kubeconfig", p(&path)],
        );
        let ours = kubeconfig::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(
            kubeconfig::parse(&String::from_utf8_lossy(&yaml.stdout)).unwrap(),
            ours,
            "{name}"
        );
    }
}

/// A self-signed CA `cn` made by openssl at `<root>/<crt>` and `<root>/<key>`: RSA 2048 (PKCS#8) or ECDSA
/// P-256 (SEC1), as `packer/render-user-data.sh new-cluster` would make the shared CAs.
fn openssl_shared_ca(root: &Path, crt: &str, key: &str, cn: &str, rsa: bool) {
    let (crt, key) = (root.join(crt), root.join(key));
    std::fs::create_dir_all(crt.parent().expect("a parent")).expect("create a directory");
    let subj = format!("/CN={cn}");
    let mut args = vec![
        "req",
        "-x509",
        "-nodes",
        "-keyout",
        p(&key),
        "-out",
        p(&crt),
    ];
    if rsa {
        args.extend(["-newkey", "rsa:2048"]);
    } else {
        openssl(&[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            p(&key),
        ]);
        args = vec!["req", "-x509", "-key", p(&key), "-out", p(&crt)];
    }
    args.extend([
        "-subj",
        &subj,
        "-days",
        "3650",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
    ]);
    openssl(&args);
}

#[test]
fn ha_etcd_certificates_verify_with_openssl_against_the_etcd_ca() {
    require_openssl!();
    let root = tempfile::tempdir().expect("a temporary directory");
    let r = root.path();
    openssl_ca(r, CaKind::EcSec1);
    openssl_shared_ca(
        r,
        pki::FRONT_PROXY_CA_CRT,
        pki::FRONT_PROXY_CA_KEY,
        "front-proxy-ca",
        false,
    );
    openssl_shared_ca(r, pki::ETCD_CA_CRT, pki::ETCD_CA_KEY, "etcd-ca", true);
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        p(&r.join(pki::SA_KEY)),
    ]);
    openssl(&[
        "pkey",
        "-in",
        p(&r.join(pki::SA_KEY)),
        "-pubout",
        "-out",
        p(&r.join(pki::SA_PUB)),
    ]);
    let spec = ControlPlaneSpec {
        control_plane_size: 3,
        ..spec()
    };
    let now = spec.now_unix;

    assert_eq!(read_existing(r, 1).expect("read the PKI files").len(), 6);
    let existing = read_existing(r, 3).expect("read the PKI files");
    assert_eq!(existing.len(), 8);
    let planned = plan_control_plane(&existing, &spec).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(planned.len(), 18);
    write_planned(r, &planned).expect("write the PKI files");
    let again = read_existing(r, 3).expect("read the PKI files");
    assert_eq!(again.len(), 26);
    assert_eq!(plan_control_plane(&again, &spec), Ok(vec![]), "idempotent");

    let etcd_ca = r.join(pki::ETCD_CA_CRT);
    let cluster_ca = r.join(pki::CA_CRT);
    let member_sans = "DNS:master-1, DNS:localhost, IP Address:10.0.0.5, IP Address:FD00:0:0:0:0:0:0:5, \
                       IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1";
    let both = "TLS Web Server Authentication, TLS Web Client Authentication";
    for (crt, key, subject, server, sans) in [
        (
            pki::ETCD_SERVER_CRT,
            pki::ETCD_SERVER_KEY,
            "CN = master-1",
            true,
            Some(member_sans),
        ),
        (
            pki::ETCD_PEER_CRT,
            pki::ETCD_PEER_KEY,
            "CN = master-1",
            true,
            Some(member_sans),
        ),
        (
            pki::ETCD_HEALTHCHECK_CLIENT_CRT,
            pki::ETCD_HEALTHCHECK_CLIENT_KEY,
            "CN = kube-etcd-healthcheck-client",
            false,
            None,
        ),
        (
            pki::APISERVER_ETCD_CLIENT_CRT,
            pki::APISERVER_ETCD_CLIENT_KEY,
            "CN = kube-apiserver-etcd-client",
            false,
            None,
        ),
    ] {
        let cert = r.join(crt);
        check_leaf(
            &cert,
            &r.join(key),
            &etcd_ca,
            &Expect {
                subject,
                issuer: "CN = etcd-ca",
                purpose: if server { "sslserver" } else { "sslclient" },
                eku: if server {
                    both
                } else {
                    "TLS Web Client Authentication"
                },
                sans,
            },
            now,
        );
        verify(&etcd_ca, &cert, "sslclient").unwrap_or_else(|e| panic!("{crt}: {e}"));
        assert!(
            verify(&cluster_ca, &cert, "any").is_err(),
            "{crt} must not verify against the cluster CA"
        );
        assert_eq!(mode(&r.join(key)), 0o600, "{key}");
        assert_eq!(mode(&cert), 0o644, "{crt}");
    }
    // The shared front-proxy CA signs front-proxy-client.
    verify(
        &r.join(pki::FRONT_PROXY_CA_CRT),
        &r.join(pki::FRONT_PROXY_CLIENT_CRT),
        "sslclient",
    )
    .expect("front-proxy-client.crt verifies against the shared front-proxy CA");
}
