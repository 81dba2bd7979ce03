//! The pull's auth, redirect and retry paths against `RegistryTestDouble`: a scripted HTTP/1.1 server on
//! loopback (a test double, not registry software: the real-registry tests are in registry_pull.rs). reqwest talks
//! to it over TCP, and it records every request so the tests can assert what was sent where — above all that the
//! Bearer token goes to the registry and never to a host a request redirects to, nor to the token service.

#![allow(clippy::result_large_err)] // the library's error type, returned as is

mod registry_support;

use imagebuilder::registry::{ImageRef, PullOptions, PulledImage, RegistryError, pull_to_archive};
use registry_support::*;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request as the test double saw it.
#[derive(Clone, Debug)]
struct Request {
    /// Path with query.
    target: String,
    /// Lower-case header names.
    headers: HashMap<String, String>,
}

impl Request {
    fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    fn query(&self) -> HashMap<String, String> {
        let query = self
            .target
            .split_once('?')
            .map(|(_, q)| q)
            .unwrap_or_default();
        url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect()
    }
}

/// What the test double answers.
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn ok(body: &[u8]) -> Reply {
        Reply {
            status: 200,
            headers: vec![],
            body: body.to_vec(),
        }
    }

    fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: vec![],
            body: format!("status {status}\n").into_bytes(),
        }
    }

    fn with(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }
}

type Handler = Box<dyn Fn(&Request, usize) -> Reply + Send + Sync>;

/// A scripted loopback HTTP server: `handler(request, nth)` answers, where `nth` counts requests to that path
/// (1 for the first). One request per connection (`Connection: close`).
struct RegistryTestDouble {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
}

impl RegistryTestDouble {
    fn start(make: impl FnOnce(SocketAddr) -> Handler) -> RegistryTestDouble {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("addr");
        let handler: Arc<Handler> = Arc::new(make(addr));
        let log: Arc<Mutex<Vec<Request>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (l, s) = (log.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (handler, log) = (handler.clone(), l.clone());
                std::thread::spawn(move || serve(stream, &handler, &log));
            }
        });
        RegistryTestDouble { addr, log, stop }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn requests(&self) -> Vec<Request> {
        self.log.lock().expect("log").clone()
    }

    fn hits(&self, path: &str) -> usize {
        self.requests().iter().filter(|r| r.path() == path).count()
    }
}

impl Drop for RegistryTestDouble {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(stream: TcpStream, handler: &Handler, log: &Mutex<Vec<Request>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = h.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    let request = Request { target, headers };
    let nth = {
        let mut log = log.lock().expect("log");
        log.push(request.clone());
        log.iter().filter(|r| r.path() == request.path()).count()
    };
    let reply = handler(&request, nth);
    if reply.status == 0 {
        // Stall: hold the connection open without answering.
        std::thread::sleep(Duration::from_secs(5));
        return;
    }
    let mut out = stream;
    let mut head = format!(
        "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        reply.status,
        reply.body.len()
    );
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let _ = out.write_all(head.as_bytes());
    let _ = out.write_all(&reply.body);
    let _ = out.flush();
}

const TOKEN: &str = "tok-not-a-secret-123";
const SCOPE: &str = "repository:test/pause:pull,push";

fn opts() -> PullOptions {
    PullOptions {
        timeout: Duration::from_secs(2),
        attempts: 3,
        plain_http: true,
    }
}

async fn pull(
    registry: &RegistryTestDouble,
    pin: &str,
    out: &std::path::Path,
    opts: &PullOptions,
) -> Result<PulledImage, RegistryError> {
    let reference =
        ImageRef::parse(&format!("{}/test/pause:3.10.1", registry.addr)).expect("reference");
    pull_to_archive(&reference, pin, "amd64", out, opts).await
}

fn manifest_path(image: &TestImage) -> String {
    format!("/v2/test/pause/manifests/{}", image.manifest.digest())
}

fn blob_path(blob: &Blob) -> String {
    format!("/v2/test/pause/blobs/{}", blob.digest())
}

/// Serves `image` from /v2/test/pause: manifest and config directly, the layer through `layer`.
fn serve_image(image: &TestImage, request: &Request, layer: impl Fn() -> Reply) -> Reply {
    let path = request.path();
    if path == manifest_path(image) {
        Reply::ok(&image.manifest.bytes).with("Content-Type", OCI_MANIFEST)
    } else if path == blob_path(&image.config) {
        Reply::ok(&image.config.bytes)
    } else if path == blob_path(&image.layer) {
        layer()
    } else {
        Reply::status(404)
    }
}

#[tokio::test]
async fn bearer_token_then_redirects_to_another_host_that_get_no_authorization() {
    // Like registry.k8s.io: the manifest request is redirected to a mirror host and the layer to storage, both on
    // another port (another origin) than the registry.
    let image = TestImage::new("linux", "amd64", None);
    let mirrored = image.clone();
    let storage = RegistryTestDouble::start(move |_| {
        Box::new(move |r, _| {
            if r.path() == format!("/mirror{}", manifest_path(&mirrored)) {
                // A registry serves an OCI manifest only to a client that accepts it.
                match r.header("accept") {
                    Some(a) if a.contains(OCI_MANIFEST) => Reply::ok(&mirrored.manifest.bytes),
                    _ => Reply::status(404),
                }
            } else if r.path() == format!("/storage/{}", mirrored.layer.hex()) {
                Reply::ok(&mirrored.layer.bytes)
            } else {
                Reply::status(404)
            }
        })
    });
    let storage_url = storage.url();
    let served = image.clone();
    let registry = RegistryTestDouble::start(move |addr| {
        let challenge =
            format!(r#"Bearer realm="http://{addr}/token",service="test double",scope="{SCOPE}""#);
        Box::new(move |r, _| {
            if r.path() == "/token" {
                return Reply::ok(format!(r#"{{"token":"{TOKEN}","expires_in":300}}"#).as_bytes());
            }
            if r.header("authorization") != Some(&format!("Bearer {TOKEN}")) {
                return Reply::status(401).with("WWW-Authenticate", challenge.clone());
            }
            if r.path() == manifest_path(&served) {
                return Reply::status(307)
                    .with("Location", format!("{storage_url}/mirror{}", r.path()));
            }
            serve_image(&served, r, || {
                Reply::status(307).with(
                    "Location",
                    format!(
                        "{storage_url}/storage/{}?X-Signature=signed-url-part",
                        served.layer.hex()
                    ),
                )
            })
        })
    });
    let work = tempfile::tempdir().expect("tempdir");
    let out = work.path().join("out.tar");
    let pulled = pull(&registry, &image.manifest.digest(), &out, &opts())
        .await
        .expect("pull through the Bearer flow and redirects");
    assert_eq!(pulled.platforms, ["linux/amd64"]);
    let name = format!("{}/test/pause:3.10.1", registry.addr);
    check_layout(
        &out,
        &image.manifest.digest(),
        OCI_MANIFEST,
        &name,
        "3.10.1",
        &image.blobs(),
    );

    let requests = registry.requests();
    let tokens: Vec<&Request> = requests.iter().filter(|r| r.path() == "/token").collect();
    assert_eq!(
        tokens.len(),
        1,
        "one token for the whole pull: {requests:#?}"
    );
    let query = tokens[0].query();
    assert_eq!(
        query.get("service").map(String::as_str),
        Some("test double")
    );
    assert_eq!(
        query.get("scope").map(String::as_str),
        Some(SCOPE),
        "the scope as challenged, comma and all"
    );
    assert_eq!(
        tokens[0].header("authorization"),
        None,
        "nothing is sent to the token service"
    );
    assert_eq!(requests[0].path(), manifest_path(&image));
    assert_eq!(
        requests[0].header("authorization"),
        None,
        "the first request is anonymous"
    );
    assert!(
        requests[0]
            .header("accept")
            .is_some_and(|a| a.contains(OCI_INDEX) && a.contains(OCI_MANIFEST))
    );
    let after_token: Vec<&Request> = requests.iter().skip(2).collect();
    assert_eq!(
        after_token.len(),
        3,
        "manifest, config, layer: {requests:#?}"
    );
    assert!(
        after_token
            .iter()
            .all(|r| r.header("authorization") == Some(&format!("Bearer {TOKEN}")))
    );

    let at_storage = storage.requests();
    assert_eq!(
        at_storage.len(),
        2,
        "the manifest and the layer came from the other host: {at_storage:#?}"
    );
    for r in &at_storage {
        assert_eq!(
            r.header("authorization"),
            None,
            "no Authorization to another host: {r:?}"
        );
    }
    let layer_request = at_storage
        .iter()
        .find(|r| r.path().starts_with("/storage/"))
        .expect("layer request");
    assert_eq!(
        layer_request.query().get("X-Signature").map(String::as_str),
        Some("signed-url-part")
    );
}

#[tokio::test]
async fn a_basic_challenge_means_credentials_which_are_not_supported() {
    let image = TestImage::new("linux", "amd64", None);
    let registry = RegistryTestDouble::start(|_| {
        Box::new(|_, _| {
            Reply::status(401).with("WWW-Authenticate", r#"Basic realm="Registry Realm""#)
        })
    });
    let work = tempfile::tempdir().expect("tempdir");
    let err = pull(
        &registry,
        &image.manifest.digest(),
        &work.path().join("o.tar"),
        &opts(),
    )
    .await
    .expect_err("Basic auth");
    match &err {
        RegistryError::CredentialsRequired { at, scheme } => {
            assert_eq!(scheme, "basic");
            assert_eq!(at.registry, registry.url());
            assert_eq!(at.repository, "test/pause");
            assert_eq!(at.digest, image.manifest.digest());
        }
        other => panic!("expected CredentialsRequired, got {other}"),
    }
    assert!(
        err.to_string().contains("credentials are not supported"),
        "{err}"
    );
    assert_eq!(registry.requests().len(), 1, "not retried");
}

#[tokio::test]
async fn a_token_the_registry_refuses_is_access_denied_not_a_loop() {
    let image = TestImage::new("linux", "amd64", None);
    let registry = RegistryTestDouble::start(|addr| {
        let challenge = format!(
            r#"Bearer realm="http://{addr}/token",service="s",scope="{SCOPE}",error="insufficient_scope""#
        );
        Box::new(move |r, _| {
            if r.path() == "/token" {
                Reply::ok(format!(r#"{{"access_token":"{TOKEN}"}}"#).as_bytes())
            } else {
                Reply::status(401).with("WWW-Authenticate", challenge.clone())
            }
        })
    });
    let work = tempfile::tempdir().expect("tempdir");
    let err = pull(
        &registry,
        &image.manifest.digest(),
        &work.path().join("o.tar"),
        &opts(),
    )
    .await
    .expect_err("refused token");
    assert!(matches!(err, RegistryError::AccessDenied { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("insufficient_scope") && text.contains("hint:"),
        "{text}"
    );
    assert!(
        !text.contains(TOKEN),
        "the token is never in an error: {text}"
    );
    assert_eq!(registry.hits("/token"), 1);
    assert_eq!(
        registry.hits(&manifest_path(&image)),
        2,
        "once anonymous, once with the token"
    );
}

#[tokio::test]
async fn transient_failures_are_retried_and_4xx_are_not() {
    let image = TestImage::new("linux", "amd64", None);
    let served = image.clone();
    let registry = RegistryTestDouble::start(move |_| {
        Box::new(move |r, nth| {
            let path = r.path();
            if path == manifest_path(&served) && nth == 1 {
                Reply::status(503)
            } else if path == blob_path(&served.config) && nth == 1 {
                Reply::status(429).with("Retry-After", "0")
            } else {
                serve_image(&served, r, || Reply::ok(&served.layer.bytes))
            }
        })
    });
    let work = tempfile::tempdir().expect("tempdir");
    pull(
        &registry,
        &image.manifest.digest(),
        &work.path().join("o.tar"),
        &opts(),
    )
    .await
    .expect("503 and 429 are retried");
    assert_eq!(registry.hits(&manifest_path(&image)), 2);
    assert_eq!(registry.hits(&blob_path(&image.config)), 2);
    assert_eq!(registry.hits(&blob_path(&image.layer)), 1);

    // Always 500: given up after `attempts`, and the error says how often it tried.
    let failing = RegistryTestDouble::start(|_| Box::new(|_, _| Reply::status(500)));
    let err = pull(
        &failing,
        &image.manifest.digest(),
        &work.path().join("o.tar"),
        &opts(),
    )
    .await
    .expect_err("500 forever");
    assert!(
        matches!(
            err,
            RegistryError::Status {
                status: 500,
                attempts: 3,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(failing.requests().len(), 3);

    // A long Retry-After is not waited for.
    let limited = RegistryTestDouble::start(|_| {
        Box::new(|_, _| Reply::status(429).with("Retry-After", "3600"))
    });
    let started = Instant::now();
    let err = pull(
        &limited,
        &image.manifest.digest(),
        &work.path().join("o.tar"),
        &opts(),
    )
    .await
    .expect_err("rate limited");
    assert!(
        matches!(err, RegistryError::Status { status: 429, .. }),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(limited.requests().len(), 1);

    for status in [400, 403, 404] {
        let served = image.clone();
        let refusing = RegistryTestDouble::start(move |_| {
            Box::new(move |r, _| serve_image(&served, r, || Reply::status(status)))
        });
        let err = pull(
            &refusing,
            &image.manifest.digest(),
            &work.path().join("o.tar"),
            &opts(),
        )
        .await
        .expect_err("4xx");
        match (&err, status) {
            (RegistryError::NotFound { at, .. }, 404) => {
                assert_eq!(at.digest, image.layer.digest())
            }
            (RegistryError::Status { status: s, .. }, _) => assert_eq!(*s, status),
            _ => panic!("HTTP {status}: {err}"),
        }
        assert_eq!(
            refusing.hits(&blob_path(&image.layer)),
            1,
            "HTTP {status} is not retried"
        );
    }
}

#[tokio::test]
async fn wrong_bytes_and_extra_bytes_are_refused_without_retry() {
    let image = TestImage::new("linux", "amd64", None);
    let work = tempfile::tempdir().expect("tempdir");
    let mut longer = image.layer.bytes.clone();
    longer.extend_from_slice(b"more");
    let mut other = image.layer.bytes.clone();
    other[0] ^= 1;
    for (body, longer_than_descriptor) in [(longer, true), (other, false)] {
        let served = image.clone();
        let registry = RegistryTestDouble::start(move |_| {
            Box::new(move |r, _| serve_image(&served, r, || Reply::ok(&body)))
        });
        let err = pull(
            &registry,
            &image.manifest.digest(),
            &work.path().join("o.tar"),
            &opts(),
        )
        .await
        .expect_err("bad layer");
        if longer_than_descriptor {
            assert!(
                matches!(&err, RegistryError::SizeMismatch { at, .. } if at.digest == image.layer.digest()),
                "{err}"
            );
        } else {
            assert!(
                matches!(&err, RegistryError::DigestMismatch { at, .. } if at.digest == image.layer.digest()),
                "{err}"
            );
        }
        assert_eq!(
            registry.hits(&blob_path(&image.layer)),
            1,
            "not retried: {err}"
        );
    }
}

#[tokio::test]
async fn a_stalled_registry_times_out_within_bounds() {
    let image = TestImage::new("linux", "amd64", None);
    let registry = RegistryTestDouble::start(|_| Box::new(|_, _| Reply::status(0)));
    let opts = PullOptions {
        timeout: Duration::from_millis(300),
        attempts: 2,
        plain_http: true,
    };
    let work = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let err = pull(
        &registry,
        &image.manifest.digest(),
        &work.path().join("o.tar"),
        &opts,
    )
    .await
    .expect_err("stalls");
    assert!(
        matches!(err, RegistryError::Timeout { attempts: 2, .. }),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(registry.requests().len(), 2);
}

#[tokio::test]
async fn an_index_pin_served_with_another_platforms_manifest_is_a_mismatch() {
    // The registry answers the amd64 manifest's URL with arm64's bytes: the child digest check catches it.
    let amd64 = TestImage::new("linux", "amd64", None);
    let arm64 = TestImage::new("linux", "arm64", None);
    let index = index_of(&[&amd64, &arm64]);
    let (i, a, b) = (index.clone(), amd64.clone(), arm64.clone());
    let registry = RegistryTestDouble::start(move |_| {
        Box::new(move |r, _| {
            if r.path() == format!("/v2/test/pause/manifests/{}", i.digest()) {
                Reply::ok(&i.bytes).with("Content-Type", OCI_INDEX)
            } else if r.path() == manifest_path(&a) {
                Reply::ok(&b.manifest.bytes)
            } else {
                Reply::status(404)
            }
        })
    });
    let work = tempfile::tempdir().expect("tempdir");
    let err = pull(
        &registry,
        &index.digest(),
        &work.path().join("o.tar"),
        &opts(),
    )
    .await
    .expect_err("wrong child");
    match &err {
        RegistryError::DigestMismatch { at, actual, .. } => {
            assert_eq!(at.digest, amd64.manifest.digest());
            assert_eq!(at.pin, index.digest());
            assert_eq!(actual, &arm64.manifest.digest());
        }
        other => panic!("expected DigestMismatch, got {other}"),
    }
}
