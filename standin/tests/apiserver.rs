//! The stand-in kube-apiserver end to end: a CA and a leaf for `masters.test.k8s` made with the `openssl` CLI
//! (RSA, the key in PKCS#1 like kubeadm's), the built binary run through a symlink named `kube-apiserver` (its
//! identity comes from `argv[0]`) with kube-apiserver's flags, and `curl` verifying the certificate against the CA.
//!
//! Needs `openssl` and `curl` on the PATH (both in Debian's base system).

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

const HOST: &str = "masters.test.k8s";
const BINARY: &str = env!("CARGO_BIN_EXE_k8s-standin");
/// How long a test waits for the server to come up or for a log line.
const PATIENCE: Duration = Duration::from_secs(20);

fn run(command: &mut Command) -> Output {
    let output = command.output().unwrap_or_else(|e| {
        panic!("cannot run {command:?} (are openssl and curl installed?): {e}")
    });
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// A CA, a leaf for [`HOST`] signed by it, and the files the stand-in and the clients use.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().expect("temporary directory");
        let d = dir.path();
        std::fs::write(
            d.join("openssl.cnf"),
            format!(
                "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = unused\n\
                 [ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n\
                 subjectKeyIdentifier = hash\n\
                 [leaf]\nbasicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature,keyEncipherment\n\
                 extendedKeyUsage = serverAuth\nsubjectAltName = DNS:{HOST},DNS:kubernetes,IP:127.0.0.1\n\
                 authorityKeyIdentifier = keyid\n"
            ),
        )
        .expect("write openssl.cnf");
        let openssl = |args: &[&str]| {
            run(Command::new("openssl").args(args).current_dir(d));
        };
        openssl(&["genrsa", "-traditional", "-out", "ca.key", "2048"]);
        openssl(&[
            "req",
            "-x509",
            "-new",
            "-key",
            "ca.key",
            "-subj",
            "/CN=kubernetes-test-ca",
            "-days",
            "2",
            "-config",
            "openssl.cnf",
            "-extensions",
            "ca",
            "-out",
            "ca.crt",
        ]);
        openssl(&["genrsa", "-traditional", "-out", "apiserver.key", "2048"]);
        openssl(&[
            "req",
            "-new",
            "-key",
            "apiserver.key",
            "-subj",
            "/CN=kube-apiserver",
            "-config",
            "openssl.cnf",
            "-out",
            "apiserver.csr",
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            "apiserver.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-set_serial",
            "2",
            "-days",
            "2",
            "-extfile",
            "openssl.cnf",
            "-extensions",
            "leaf",
            "-out",
            "leaf.crt",
        ]);
        // What the local cluster writes: leaf first, then the CA.
        let chain = [
            std::fs::read_to_string(d.join("leaf.crt")).expect("leaf.crt"),
            std::fs::read_to_string(d.join("ca.crt")).expect("ca.crt"),
        ]
        .concat();
        std::fs::write(d.join("apiserver.crt"), chain).expect("write apiserver.crt");
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The usual flags, for `port`.
    fn flags(&self, port: u16) -> Vec<String> {
        vec![
            format!("--secure-port={port}"),
            "--bind-address=127.0.0.1".into(),
            format!("--tls-cert-file={}", self.path("apiserver.crt").display()),
            format!(
                "--tls-private-key-file={}",
                self.path("apiserver.key").display()
            ),
        ]
    }
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// A command running the stand-in as `name` (a symlink to the built binary in `dir`).
fn stand_in(dir: &Path, name: &str) -> Command {
    let link = dir.join(name);
    if !link.exists() {
        std::os::unix::fs::symlink(BINARY, &link).expect("symlink the stand-in");
    }
    Command::new(link)
}

/// The stderr lines of a running stand-in, collected by a thread.
#[derive(Default)]
struct Lines {
    lines: Mutex<Vec<String>>,
    changed: Condvar,
}

impl Lines {
    fn all(&self) -> Vec<String> {
        self.lines.lock().expect("stderr lines").clone()
    }

    /// Waits until a line contains `needle`; panics with every line after [`PATIENCE`].
    fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        let mut lines = self.lines.lock().expect("stderr lines");
        loop {
            if let Some(line) = lines.iter().find(|l| l.contains(needle)) {
                return line.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no stderr line with {needle:?}; got {lines:#?}"
            );
            lines = self
                .changed
                .wait_timeout(lines, left)
                .expect("stderr lines")
                .0;
        }
    }
}

/// A running stand-in, killed on drop.
struct Server {
    child: Child,
    stderr: Arc<Lines>,
    port: u16,
    started: Instant,
}

impl Server {
    fn start(pki: &Pki, extra: &[&str]) -> Server {
        Server::start_with(pki, extra, |_| {})
    }

    fn start_with(pki: &Pki, extra: &[&str], adjust: impl FnOnce(&mut Command)) -> Server {
        let port = free_port();
        let mut command = stand_in(pki.dir.path(), "kube-apiserver");
        command
            .args(pki.flags(port))
            .args(extra)
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        adjust(&mut command);
        let started = Instant::now();
        let mut child = command.spawn().expect("start the stand-in");
        let stderr = Arc::new(Lines::default());
        let pipe = child.stderr.take().expect("stderr pipe");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                sink.lines.lock().expect("stderr lines").push(line);
                sink.changed.notify_all();
            }
        });
        let server = Server {
            child,
            stderr,
            port,
            started,
        };
        server.stderr.wait_for("serving HTTPS on");
        server
    }

    fn url(&self, path: &str) -> String {
        format!("https://{HOST}:{}{path}", self.port)
    }

    /// `curl` verifying against `ca`, resolving [`HOST`] to loopback, with `extra` arguments.
    fn curl_with(&self, ca: &Path, path: &str, extra: &[&str]) -> Answer {
        let output = Command::new("curl")
            .args(["-sS", "-i", "--max-time", "10", "--cacert"])
            .arg(ca)
            .arg("--resolve")
            .arg(format!("{HOST}:{}:127.0.0.1", self.port))
            .args(extra)
            .arg(self.url(path))
            .output()
            .expect("cannot run curl (is it installed?)");
        Answer::from(output)
    }

    fn curl(&self, pki: &Pki, path: &str) -> Answer {
        self.curl_with(&pki.path("ca.crt"), path, &[])
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What curl got.
#[derive(Debug)]
struct Answer {
    ok: bool,
    status: u16,
    headers: Vec<String>,
    body: String,
    stderr: String,
}

impl Answer {
    fn from(output: Output) -> Answer {
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Answer {
            ok: output.status.success(),
            status,
            headers: lines.map(str::to_ascii_lowercase).collect(),
            body: body.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        self.headers
            .iter()
            .find_map(|h| h.strip_prefix(&prefix))
            .map(str::trim)
    }
}

#[test]
fn health_paths_answer_ok_over_verified_tls() {
    let pki = Pki::new();
    let server = Server::start(&pki, &[]);
    for path in ["/readyz", "/healthz", "/livez", "/readyz?verbose"] {
        let answer = server.curl(&pki, path);
        assert!(answer.ok, "{path}: {answer:?}");
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (200, "ok"),
            "{path}: {answer:?}"
        );
        assert!(
            answer
                .header("content-type")
                .is_some_and(|t| t.starts_with("text/plain")),
            "{answer:?}"
        );
        assert_eq!(answer.header("content-length"), Some("2"), "{answer:?}");
        assert_eq!(answer.header("connection"), Some("close"), "{answer:?}");
        assert_eq!(
            answer.header("x-stand-in"),
            Some("k8s-image demo"),
            "{answer:?}"
        );
    }
    server
        .stderr
        .wait_for("STAND-IN kube-apiserver: GET /readyz 200");
    server
        .stderr
        .wait_for("STAND-IN kube-apiserver: GET /livez 200");
    // The first line is still the stand-in notice with the arguments.
    let first = server.stderr.all()[0].clone();
    assert!(
        first.starts_with("STAND-IN kube-apiserver: not a real Kubernetes binary; args: ["),
        "{first}"
    );
}

#[test]
fn head_requests_get_the_headers() {
    let pki = Pki::new();
    let server = Server::start(&pki, &[]);
    let answer = server.curl_with(&pki.path("ca.crt"), "/readyz", &["-I"]);
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body, "", "{answer:?}");
    server.stderr.wait_for("HEAD /readyz 200");
}

#[test]
fn other_paths_are_404_and_say_stand_in() {
    let pki = Pki::new();
    let server = Server::start(&pki, &[]);
    for path in [
        "/nope",
        "/",
        "/api/v1/namespaces/kube-public/configmaps/cluster-info",
    ] {
        let answer = server.curl(&pki, path);
        assert_eq!(answer.status, 404, "{path}: {answer:?}");
        assert!(answer.body.contains("STAND-IN"), "{answer:?}");
        assert_eq!(
            answer.header("x-stand-in"),
            Some("k8s-image demo"),
            "{answer:?}"
        );
    }
    let answer = server.curl_with(&pki.path("ca.crt"), "/readyz", &["-X", "POST"]);
    assert_eq!(answer.status, 404, "{answer:?}");
    server
        .stderr
        .wait_for("STAND-IN kube-apiserver: GET /nope 404");
    server
        .stderr
        .wait_for("STAND-IN kube-apiserver: POST /readyz 404");
}

#[test]
fn ready_delay_answers_503_then_200() {
    let pki = Pki::new();
    let server = Server::start(&pki, &["--stand-in-ready-delay=3"]);
    let answer = server.curl(&pki, "/readyz");
    assert_eq!(answer.status, 503, "{answer:?}");
    assert!(answer.body.contains("not ready yet"), "{answer:?}");
    assert_eq!(
        answer.header("x-stand-in"),
        Some("k8s-image demo"),
        "{answer:?}"
    );
    // Alive and healthy, only not ready.
    assert_eq!(server.curl(&pki, "/healthz").status, 200);
    assert_eq!(server.curl(&pki, "/livez").status, 200);
    server.stderr.wait_for("GET /readyz 503");

    let deadline = Instant::now() + PATIENCE;
    loop {
        let answer = server.curl(&pki, "/readyz");
        if answer.status == 200 {
            assert_eq!(answer.body, "ok");
            break;
        }
        assert_eq!(answer.status, 503, "{answer:?}");
        assert!(Instant::now() < deadline, "still 503 after {PATIENCE:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        server.started.elapsed() >= Duration::from_secs(3),
        "ready before the delay ran out"
    );
}

#[test]
fn serves_the_whole_chain_so_the_ca_can_be_pinned() {
    let pki = Pki::new();
    let server = Server::start(&pki, &[]);
    let output = run(Command::new("openssl")
        .args(["s_client", "-showcerts", "-servername", HOST, "-connect"])
        .arg(format!("127.0.0.1:{}", server.port))
        .stdin(Stdio::null()));
    let shown = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        shown.matches("-----BEGIN CERTIFICATE-----").count(),
        2,
        "{shown}"
    );
    let ca = std::fs::read_to_string(pki.path("ca.crt")).unwrap();
    let ca_body: String = ca.lines().filter(|l| !l.starts_with("-----")).collect();
    let shown_bodies: String = shown.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(
        shown_bodies.contains(&ca_body),
        "the CA is not in the presented chain: {shown}"
    );
}

#[test]
fn tls_1_2_and_1_3_both_work() {
    let pki = Pki::new();
    let server = Server::start(&pki, &[]);
    let ca = pki.path("ca.crt");
    for versions in [
        ["--tlsv1.2", "--tls-max", "1.2"],
        ["--tlsv1.3", "--tls-max", "1.3"],
    ] {
        let answer = server.curl_with(&ca, "/readyz", &versions);
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (200, "ok"),
            "{versions:?}: {answer:?}"
        );
    }
}

#[test]
fn a_client_with_another_ca_is_refused_and_the_handshake_failure_logged() {
    let pki = Pki::new();
    let other = Pki::new();
    let server = Server::start(&pki, &[]);
    let answer = server.curl_with(&other.path("ca.crt"), "/readyz", &[]);
    assert!(!answer.ok, "{answer:?}");
    assert_eq!(answer.status, 0, "{answer:?}");
    assert!(answer.stderr.contains("certificate"), "{answer:?}");
    server.stderr.wait_for("TLS handshake with 127.0.0.1:");
    // And it still serves afterwards.
    assert_eq!(server.curl(&pki, "/readyz").status, 200);
}

#[test]
fn plain_http_on_the_tls_port_gets_a_400() {
    let pki = Pki::new();
    let server = Server::start(&pki, &[]);
    let output = Command::new("curl")
        .args(["-sS", "-i", "--max-time", "10"])
        .arg(format!("http://127.0.0.1:{}/readyz", server.port))
        .output()
        .unwrap();
    let answer = Answer::from(output);
    assert_eq!(answer.status, 400, "{answer:?}");
    assert!(
        answer.body.contains("HTTP request to an HTTPS server"),
        "{answer:?}"
    );
    server.stderr.wait_for("plain HTTP request");
}

#[test]
fn ready_is_sent_to_the_notify_socket() {
    let pki = Pki::new();
    let socket = pki.path("notify");
    let receiver = UnixDatagram::bind(&socket).unwrap();
    receiver.set_read_timeout(Some(PATIENCE)).unwrap();
    let _server = Server::start_with(&pki, &[], |command| {
        command.env("NOTIFY_SOCKET", &socket);
    });
    let mut buffer = [0u8; 512];
    let n = receiver.recv(&mut buffer).unwrap();
    let message = String::from_utf8_lossy(&buffer[..n]);
    assert!(message.lines().any(|l| l == "READY=1"), "{message}");
}

/// Runs the stand-in kube-apiserver expecting it to stop by itself; returns its status and stderr.
fn run_to_exit(pki: &Pki, args: &[String]) -> (ExitStatus, String) {
    let mut child = stand_in(pki.dir.path(), "kube-apiserver")
        .args(args)
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the stand-in");
    let deadline = Instant::now() + PATIENCE;
    while child.try_wait().expect("poll the stand-in").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running after {PATIENCE:?}: {args:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().expect("stand-in output");
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_missing_key_file_exits_1_naming_it() {
    let pki = Pki::new();
    let missing = pki.path("missing.key");
    let mut args = pki.flags(free_port());
    args[3] = format!("--tls-private-key-file={}", missing.display());
    let (status, stderr) = run_to_exit(&pki, &args);
    assert_eq!(status.code(), Some(1), "{stderr}");
    let expected = format!(
        "STAND-IN kube-apiserver: error: --tls-private-key-file {}: cannot read it",
        missing.display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
}

#[test]
fn a_missing_cert_file_exits_1_naming_it() {
    let pki = Pki::new();
    let missing = pki.path("missing.crt");
    let mut args = pki.flags(free_port());
    args[2] = format!("--tls-cert-file={}", missing.display());
    let (status, stderr) = run_to_exit(&pki, &args);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("--tls-cert-file {}", missing.display())),
        "{stderr}"
    );
}

#[test]
fn a_key_that_does_not_match_the_certificate_exits_1() {
    let pki = Pki::new();
    let mut args = pki.flags(free_port());
    args[3] = format!("--tls-private-key-file={}", pki.path("ca.key").display());
    let (status, stderr) = run_to_exit(&pki, &args);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("are not a usable pair"), "{stderr}");
}

#[test]
fn a_port_in_use_exits_1() {
    let pki = Pki::new();
    let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = taken.local_addr().unwrap().port();
    let (status, stderr) = run_to_exit(&pki, &pki.flags(port));
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{stderr}"
    );
}

#[test]
fn positional_arguments_and_bad_flags_exit_1() {
    let pki = Pki::new();
    let mut args = pki.flags(free_port());
    args.push("serve".into());
    let (status, stderr) = run_to_exit(&pki, &args);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("does not take any arguments"), "{stderr}");

    let mut args = pki.flags(free_port());
    args.push("--stand-in-ready-delay=soon".into());
    let (status, stderr) = run_to_exit(&pki, &args);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--stand-in-ready-delay"), "{stderr}");
}

#[test]
fn version_still_prints_the_stand_in_line() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(stand_in(dir.path(), "kube-apiserver").arg("--version"));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "kube-apiserver STAND-IN (k8s-image demo, not the real kube-apiserver)\n"
    );
}

#[test]
fn other_identities_still_only_sleep() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = stand_in(dir.path(), "kubelet")
        .args([
            "--secure-port",
            &port.to_string(),
            "--tls-cert-file=/nonexistent",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.starts_with("STAND-IN kubelet: not a real Kubernetes binary; args: ["),
        "{line}"
    );
    std::thread::sleep(Duration::from_millis(300));
    let still_running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    assert!(still_running, "the kubelet stand-in exited");
}
