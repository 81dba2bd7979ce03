//! Shared test fixtures: a real HTTP/1.1 server on loopback with scripted misbehaviour (not a mock: reqwest talks
//! to it over TCP), fixture artifacts, and a manifest writer.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the server does for one path.
#[derive(Clone)]
pub enum Route {
    /// 200 with this body.
    Body(Vec<u8>),
    /// This status with a short body.
    Status(u16),
    /// Announces `Content-Length` of the full body, sends only the first `sent` bytes, then closes.
    Truncated { body: Vec<u8>, sent: usize },
    /// Accepts the request and never answers (until the server is dropped).
    Stall,
    /// 200 without a length, then zeros until the client goes away (a hostile or broken server).
    Endless,
}

/// A loopback HTTP server that serves scripted routes and counts requests per path.
pub struct HttpFixtureServer {
    pub addr: SocketAddr,
    routes: Arc<Mutex<HashMap<String, Route>>>,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    stop: Arc<AtomicBool>,
}

impl HttpFixtureServer {
    pub fn start() -> HttpFixtureServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let routes: Arc<Mutex<HashMap<String, Route>>> = Arc::default();
        let hits: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (r, h, s) = (routes.clone(), hits.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (r, h, s) = (r.clone(), h.clone(), s.clone());
                std::thread::spawn(move || serve(stream, &r, &h, &s));
            }
        });
        HttpFixtureServer {
            addr,
            routes,
            hits,
            stop,
        }
    }

    pub fn route(&self, path: &str, route: Route) {
        self.routes
            .lock()
            .expect("routes")
            .insert(path.to_string(), route);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn hits(&self, path: &str) -> usize {
        self.hits
            .lock()
            .expect("hits")
            .get(path)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for HttpFixtureServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(
    stream: TcpStream,
    routes: &Mutex<HashMap<String, Route>>,
    hits: &Mutex<HashMap<String, usize>>,
    stop: &AtomicBool,
) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut stream = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            if header == "\r\n" || header == "\n" {
                break;
            }
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("/")
            .to_string();
        *hits.lock().expect("hits").entry(path.clone()).or_default() += 1;
        let route = routes
            .lock()
            .expect("routes")
            .get(&path)
            .cloned()
            .unwrap_or(Route::Status(404));
        match route {
            Route::Body(body) => {
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
                if stream
                    .write_all(head.as_bytes())
                    .and_then(|_| stream.write_all(&body))
                    .is_err()
                {
                    return;
                }
            }
            Route::Status(code) => {
                let body = format!("status {code}\n");
                let head = format!(
                    "HTTP/1.1 {code} Scripted\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                if stream.write_all(head.as_bytes()).is_err() {
                    return;
                }
            }
            Route::Truncated { body, sent } => {
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&body[..sent.min(body.len())]);
                let _ = stream.flush();
                return;
            }
            Route::Endless => {
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
                let zeros = vec![0u8; 256 * 1024];
                while !stop.load(Ordering::SeqCst) && stream.write_all(&zeros).is_ok() {}
                return;
            }
            Route::Stall => {
                while !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                return;
            }
        }
    }
}

/// Lower-case hex sha256.
pub fn sha256(bytes: &[u8]) -> String {
    imagebuilder::checksum::sha256_hex(bytes)
}

/// A deterministic tar.gz with the given (name, mode, content) members, made with the `tar` crate.
pub fn tar_gz(members: &[(&str, u32, &[u8])]) -> Vec<u8> {
    let gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for (name, mode, content) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(*mode);
        h.set_mtime(1);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, name, *content).expect("append");
    }
    tar.into_inner().expect("tar").finish().expect("gz")
}

/// Fixture artifact bytes: small programs standing in for release binaries (named as test fixtures).
pub struct Fixtures {
    pub kubelet: Vec<u8>,
    pub cni_tgz: Vec<u8>,
}

impl Fixtures {
    pub fn new() -> Fixtures {
        let kubelet = b"#!/bin/sh\necho 'test fixture standing in for kubelet'\n".repeat(50);
        let cni_tgz = tar_gz(&[
            ("./loopback", 0o755, b"#!/bin/sh\n# test fixture loopback\n"),
            ("./bridge", 0o755, b"#!/bin/sh\n# test fixture bridge\n"),
            ("./README.md", 0o644, b"fixture readme\n"),
        ]);
        Fixtures { kubelet, cni_tgz }
    }

    /// Serves both artifacts plus a sha256sum-style checksum file for the tgz.
    pub fn serve(&self, server: &HttpFixtureServer) {
        server.route("/bin/kubelet", Route::Body(self.kubelet.clone()));
        server.route("/cni/cni-plugins.tgz", Route::Body(self.cni_tgz.clone()));
        server.route(
            "/cni/cni-plugins.tgz.sha256",
            Route::Body(format!("{}  cni-plugins.tgz\n", sha256(&self.cni_tgz)).into_bytes()),
        );
    }

    /// A manifest that fetches the two artifacts from `server` (kubelet pinned inline, CNI via checksum file).
    pub fn manifest(&self, server: &HttpFixtureServer) -> String {
        format!(
            r#"schema_version = 1
name = "test-node"
kubernetes_version = "1.35.0"
arch = "amd64"
source_date_epoch = 1767225600
base_url = "{base}"

[host]
packages = ["conntrack", "socat"]

[[artifact]]
name = "kubelet"
version = "1.35.0"
url = "bin/kubelet"
sha256 = "{kubelet}"
[artifact.install]
file = "/usr/bin/kubelet"

[[artifact]]
name = "cni-plugins"
version = "1.8.0"
url = "cni/cni-plugins.tgz"
checksum_url = "cni/cni-plugins.tgz.sha256"
[artifact.install]
dir = "/opt/cni/bin"
members = ["./loopback", "./bridge"]
"#,
            base = server.url("/"),
            kubelet = sha256(&self.kubelet),
        )
    }
}

/// The repository root (node content lives there).
pub fn repo_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// A test double for the k8s-agent binary: an executable shell script, named as a double.
pub fn agent_double(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("k8s-agent-test-double");
    std::fs::write(&path, b"#!/bin/sh\necho 'test double for k8s-agent'\n")
        .expect("write agent double");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

/// Files directly in a directory (names), sorted.
pub fn dir_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Every file under `dir`, recursively, relative paths, sorted.
pub fn walk_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn go(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                go(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap_or(&p).display().to_string());
            }
        }
    }
    go(dir, dir, &mut out);
    out.sort();
    out
}
