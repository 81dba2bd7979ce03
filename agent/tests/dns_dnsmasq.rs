//! The DNS edge ([`k8s_agent::dns`]) against a real dnsmasq on a loopback address (127.0.0.77, a random high
//! port), one dnsmasq per test, started the way `/work/shared/TESTING.md` does (`--no-daemon`, `--addn-hosts`,
//! `--local=/k8s/`, `--log-queries`) plus `--local-ttl` for a known TTL. Each case asserts the exact
//! [`DnsResult`], and the query counts are checked against dnsmasq's own query log.
//!
//! - NXDOMAIN → records added (SIGHUP) → changed → removed: a resolver that cached anything would fail.
//! - several A records → all of them (compared as sets: the edge keeps the server's order), TTL as configured.
//! - AAAA only → `NoRecords`; no AAAA query is ever sent.
//! - SERVFAIL: dnsmasq validating DNSSEC (`--dnssec`, a trust anchor for `broken.k8s`) forwards `broken.k8s` to a
//!   second dnsmasq that answers unsigned → BOGUS → SERVFAIL.
//! - REFUSED (a name outside `k8s`, no upstream) → `Other`.
//! - a UDP socket that reads and never answers → `Timeout` within the configured bound.
//! - 150 A records: dnsmasq truncates the UDP answer (checked with a hand-made query), the edge retries over TCP
//!   and returns all 150; after a change + SIGHUP the new set comes back (a new TCP connection each lookup:
//!   dnsmasq `--no-daemon` serves a TCP connection inline and would answer nothing else while one stays open).
//! - dnsmasq authoritative for `k8s` (`--auth-zone`): negative answers carry the SOA → negative TTLs.
//!
//! Without dnsmasq the tests are skipped with a message, unless `CI` is set: then they fail (`.ci/run` installs
//! dnsmasq). The timeout case needs no dnsmasq and always runs.

use k8s_agent::dns::{DnsResolver, DnsTimeouts, QueryCounts};
use k8s_agent::plan::DnsResult;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Where the test name servers listen.
const LOOPBACK: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 77);
/// `--local-ttl` of every fixture.
const LOCAL_TTL: u32 = 7;
/// A name only the readiness probe asks for (excluded from the query counts).
const PROBE_NAME: &str = "ready-probe.k8s";

// ---------------------------------------------------------------------------------------------------------------
// dnsmasq fixture
// ---------------------------------------------------------------------------------------------------------------

fn find_dnsmasq() -> Option<PathBuf> {
    let fixed = Path::new("/usr/sbin/dnsmasq");
    if fixed.is_file() {
        return Some(fixed.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("dnsmasq"))
        .find(|p| p.is_file())
}

/// dnsmasq's path; `None` (after saying so) when it is missing outside CI; a failure when it is missing in CI.
fn require_dnsmasq(test: &str) -> Option<PathBuf> {
    if let Some(bin) = find_dnsmasq() {
        return Some(bin);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "{test}: dnsmasq is not installed, and CI is set: .ci/run must install dnsmasq-base"
        );
    }
    eprintln!(
        "SKIPPED {test}: dnsmasq is not installed (apt-get install -y dnsmasq-base); in CI (env CI set) this fails"
    );
    None
}

/// A dnsmasq process on a loopback address, killed (its whole process group) and waited for on drop.
struct DnsmasqFixture {
    child: Child,
    dir: TempDir,
    hosts: PathBuf,
    log: PathBuf,
    port: u16,
    /// Where to send queries (the listen address, or 127.0.0.1 for the authoritative fixture).
    query_addr: SocketAddr,
}

impl DnsmasqFixture {
    /// dnsmasq on [`LOOPBACK`] serving `hosts` (hosts-file lines) for `k8s`, with `extra` arguments.
    fn start(bin: &Path, hosts: &str, extra: &[String]) -> DnsmasqFixture {
        DnsmasqFixture::start_with(bin, hosts, extra, IpAddr::V4(LOOPBACK))
    }

    /// As [`start`](Self::start), queried at `query_ip` (same port) instead of the listen address.
    fn start_with(bin: &Path, hosts: &str, extra: &[String], query_ip: IpAddr) -> DnsmasqFixture {
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port(&[IpAddr::V4(LOOPBACK), query_ip]);
            match DnsmasqFixture::try_start(
                bin,
                hosts,
                extra,
                port,
                SocketAddr::new(query_ip, port),
            ) {
                Ok(fixture) => return fixture,
                Err(error) => last_error = error,
            }
        }
        panic!("dnsmasq did not start (5 ports tried): {last_error}");
    }

    fn try_start(
        bin: &Path,
        hosts: &str,
        extra: &[String],
        port: u16,
        query_addr: SocketAddr,
    ) -> Result<DnsmasqFixture, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
        let hosts_path = dir.path().join("hosts");
        let log = dir.path().join("dnsmasq.log");
        std::fs::write(&hosts_path, hosts).map_err(|e| format!("write hosts: {e}"))?;
        let stderr = std::fs::File::create(dir.path().join("stderr"))
            .map_err(|e| format!("stderr file: {e}"))?;
        let mut command = Command::new(bin);
        command
            .arg("--no-daemon")
            .arg("--conf-file=/dev/null")
            .arg("--no-resolv")
            .arg("--no-hosts")
            .arg(format!("--addn-hosts={}", hosts_path.display()))
            .arg(format!("--listen-address={LOOPBACK}"))
            .arg("--bind-interfaces")
            .arg("--user=root")
            .arg("--local=/k8s/")
            .arg("--log-queries")
            .arg(format!("--log-facility={}", log.display()))
            .arg(format!("--port={port}"))
            .arg(format!("--local-ttl={LOCAL_TTL}"))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .process_group(0);
        let child = command
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", bin.display()))?;
        let mut fixture = DnsmasqFixture {
            child,
            dir,
            hosts: hosts_path,
            log,
            port,
            query_addr,
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Ok(Some(status)) = fixture.child.try_wait() {
                return Err(format!("dnsmasq exited ({status}): {}", fixture.stderr()));
            }
            if raw_udp_query(query_addr, PROBE_NAME, Duration::from_millis(100)).is_ok() {
                return Ok(fixture);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "dnsmasq did not answer within 5 s: {}",
                    fixture.stderr()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Replaces the hosts file and reloads it (SIGHUP), waiting until dnsmasq says it has read it.
    fn set_hosts(&self, hosts: &str) {
        let tmp = self.dir.path().join("hosts.new");
        std::fs::write(&tmp, hosts).expect("write hosts");
        std::fs::rename(&tmp, &self.hosts).expect("replace hosts");
        let marker = format!("read {} - ", self.hosts.display());
        let before = self.log_text().matches(&marker).count();
        kill(Pid::from_raw(self.pid()), Signal::SIGHUP).expect("SIGHUP dnsmasq");
        wait_for(
            "dnsmasq to re-read its hosts file",
            Duration::from_secs(5),
            || self.log_text().matches(&marker).count() > before,
        );
    }

    fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid fits i32")
    }

    /// The `(type, name)` of every query dnsmasq logged, the readiness probe's left out.
    fn logged_queries(&self) -> Vec<(String, String)> {
        self.log_text()
            .lines()
            .filter_map(|line| {
                let (_, rest) = line.split_once("]: ")?;
                let rest = rest
                    .strip_prefix("query[")
                    .or_else(|| rest.strip_prefix("auth["))?;
                let (qtype, rest) = rest.split_once("] ")?;
                let (name, _) = rest.split_once(" from ")?;
                Some((qtype.to_string(), name.to_string()))
            })
            .filter(|(_, name)| name != PROBE_NAME)
            .collect()
    }

    /// Waits until dnsmasq has logged `want` queries for `name` (it logs asynchronously), then returns the count
    /// (a little later, so that extra queries would show).
    fn queries_for(&self, name: &str, want: usize) -> usize {
        let count = || {
            self.logged_queries()
                .iter()
                .filter(|(_, n)| n.eq_ignore_ascii_case(name))
                .count()
        };
        let deadline = Instant::now() + Duration::from_secs(3);
        while count() < want && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(150));
        count()
    }

    fn resolver(&self) -> DnsResolver {
        DnsResolver::with_nameserver(self.query_addr).expect("resolver")
    }
}

impl Drop for DnsmasqFixture {
    fn drop(&mut self) {
        let group = Pid::from_raw(self.pid());
        let _ = killpg(group, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() > deadline => {
                    let _ = killpg(group, Signal::SIGKILL);
                    let _ = self.child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        if std::thread::panicking() {
            let log = self.log_text();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(40)..].join("\n");
            eprintln!(
                "dnsmasq on port {} stderr:\n{}\nthe end of its log:\n{tail}",
                self.port,
                self.stderr()
            );
        }
    }
}

/// A port free for UDP and TCP on every given address (dnsmasq binds both).
fn free_port(ips: &[IpAddr]) -> u16 {
    for _ in 0..50 {
        let Ok(port) = UdpSocket::bind(SocketAddr::new(ips[0], 0))
            .and_then(|s| s.local_addr())
            .map(|a| a.port())
        else {
            continue;
        };
        let free = ips.iter().all(|ip| {
            let addr = SocketAddr::new(*ip, port);
            UdpSocket::bind(addr).is_ok() && TcpListener::bind(addr).is_ok()
        });
        if free {
            return port;
        }
    }
    panic!("no free port on {ips:?}");
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------------------------------
// A hand-made DNS query (independent of the code under test)
// ---------------------------------------------------------------------------------------------------------------

#[derive(Debug)]
struct RawAnswer {
    rcode: u8,
    truncated: bool,
    answers: u16,
}

/// One A query with EDNS0 (1232-byte payload, as the edge sends) over UDP; the answer's header.
fn raw_udp_query(server: SocketAddr, name: &str, timeout: Duration) -> std::io::Result<RawAnswer> {
    let id: u16 = 0x4b38;
    let mut query = Vec::new();
    for field in [id, 0x0100, 1, 0, 0, 1] {
        query.extend(field.to_be_bytes());
    }
    for label in name.trim_end_matches('.').split('.') {
        query.push(u8::try_from(label.len()).expect("label length"));
        query.extend(label.as_bytes());
    }
    query.push(0);
    query.extend(1u16.to_be_bytes()); // A
    query.extend(1u16.to_be_bytes()); // IN
    query.push(0); // OPT: root owner
    query.extend(41u16.to_be_bytes());
    query.extend(1232u16.to_be_bytes());
    query.extend([0, 0, 0, 0, 0, 0]);
    let socket = UdpSocket::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0))?;
    socket.set_read_timeout(Some(timeout))?;
    socket.send_to(&query, server)?;
    let mut buf = [0u8; 4096];
    for _ in 0..10 {
        let (len, from) = socket.recv_from(&mut buf)?;
        if from == server && len >= 12 && buf[..2] == id.to_be_bytes() {
            return Ok(RawAnswer {
                rcode: buf[3] & 0x0f,
                truncated: buf[2] & 0x02 != 0,
                answers: u16::from_be_bytes([buf[6], buf[7]]),
            });
        }
    }
    Err(std::io::Error::other("no matching answer"))
}

// ---------------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------------

fn v4(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

/// The addresses of an `Answers` result as a set, and its TTL; panics (with the result) otherwise.
fn answer_set(result: &DnsResult) -> (BTreeSet<IpAddr>, u32) {
    match result {
        DnsResult::Answers { addrs, ttl_secs } => (addrs.iter().copied().collect(), *ttl_secs),
        other => panic!("expected Answers, got {other:?}"),
    }
}

fn set(addrs: &[&str]) -> BTreeSet<IpAddr> {
    addrs.iter().map(|a| v4(a)).collect()
}

/// `count` hosts-file lines for `name`: 10.`second`.x.y, and the addresses.
fn many_hosts(name: &str, count: u32, second: u8) -> (String, BTreeSet<IpAddr>) {
    let mut text = String::new();
    let mut addrs = BTreeSet::new();
    for i in 0..count {
        let third = u8::try_from(i / 250).expect("octet");
        let fourth = u8::try_from(i % 250 + 1).expect("octet");
        let ip = Ipv4Addr::new(10, second, third, fourth);
        text.push_str(&format!("{ip} {name}\n"));
        addrs.insert(IpAddr::V4(ip));
    }
    (text, addrs)
}

// ---------------------------------------------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn masters_record_appears_changes_and_disappears() {
    let Some(bin) = require_dnsmasq("masters_record_appears_changes_and_disappears") else {
        return;
    };
    let dns = DnsmasqFixture::start(&bin, "10.0.0.9 other.prod.k8s\n", &[]);
    let resolver = dns.resolver();
    let masters = "masters.prod.k8s";

    assert_eq!(
        resolver.lookup_a(masters).await,
        DnsResult::NxDomain {
            negative_ttl_secs: None
        }
    );
    assert_eq!(
        resolver.lookup_a(masters).await,
        DnsResult::NxDomain {
            negative_ttl_secs: None
        }
    );

    dns.set_hosts(
        "10.0.0.9 other.prod.k8s\n10.0.0.1 masters.prod.k8s\n10.0.0.2 masters.prod.k8s\n",
    );
    let (addrs, ttl) = answer_set(&resolver.lookup_a(masters).await);
    assert_eq!((addrs, ttl), (set(&["10.0.0.1", "10.0.0.2"]), LOCAL_TTL));
    // A trailing dot and upper case name the same record.
    let (addrs, _) = answer_set(&resolver.lookup_a("MASTERS.prod.k8s.").await);
    assert_eq!(addrs, set(&["10.0.0.1", "10.0.0.2"]));

    dns.set_hosts("10.0.0.3 masters.prod.k8s\n");
    assert_eq!(
        resolver.lookup_a(masters).await,
        DnsResult::Answers {
            addrs: vec![v4("10.0.0.3")],
            ttl_secs: LOCAL_TTL
        }
    );

    dns.set_hosts("10.0.0.9 other.prod.k8s\n");
    assert_eq!(
        resolver.lookup_a(masters).await,
        DnsResult::NxDomain {
            negative_ttl_secs: None
        }
    );

    // Every lookup reached dnsmasq, as one A query for exactly the name asked (no search-list expansion).
    assert_eq!(dns.queries_for(masters, 6), 6);
    let logged = dns.logged_queries();
    assert!(
        logged
            .iter()
            .all(|(qtype, name)| qtype == "A" && name.eq_ignore_ascii_case(masters)),
        "unexpected queries: {logged:?}"
    );
    assert_eq!(resolver.query_counts(), QueryCounts { udp: 6, tcp: 0 });
}

#[tokio::test]
async fn all_minions_records_with_the_configured_ttl() {
    let Some(bin) = require_dnsmasq("all_minions_records_with_the_configured_ttl") else {
        return;
    };
    let hosts = "10.0.1.3 minions.prod.k8s\n10.0.1.1 minions.prod.k8s\n10.0.1.5 minions.prod.k8s\n\
                 10.0.1.2 minions.prod.k8s\n10.0.1.4 minions.prod.k8s\n10.0.0.1 masters.prod.k8s\n";
    let dns = DnsmasqFixture::start(&bin, hosts, &[]);
    let result = dns.resolver().lookup_a("minions.prod.k8s").await;
    let DnsResult::Answers { addrs, ttl_secs } = &result else {
        panic!("expected Answers, got {result:?}")
    };
    assert_eq!(addrs.len(), 5, "{addrs:?}");
    assert_eq!(
        addrs.iter().copied().collect::<BTreeSet<_>>(),
        set(&["10.0.1.1", "10.0.1.2", "10.0.1.3", "10.0.1.4", "10.0.1.5"])
    );
    assert_eq!(*ttl_secs, LOCAL_TTL);
}

#[tokio::test]
async fn a_name_with_only_an_aaaa_record_has_no_records() {
    let Some(bin) = require_dnsmasq("a_name_with_only_an_aaaa_record_has_no_records") else {
        return;
    };
    let dns = DnsmasqFixture::start(&bin, "fd00::1 masters.v6.k8s\n", &[]);
    let resolver = dns.resolver();
    assert_eq!(
        resolver.lookup_a("masters.v6.k8s").await,
        DnsResult::NoRecords {
            negative_ttl_secs: None
        }
    );
    assert_eq!(dns.queries_for("masters.v6.k8s", 1), 1);
    assert_eq!(
        dns.logged_queries(),
        vec![("A".to_string(), "masters.v6.k8s".to_string())],
        "no AAAA query"
    );
}

#[tokio::test]
async fn servfail_from_a_validating_dnsmasq() {
    let Some(bin) = require_dnsmasq("servfail_from_a_validating_dnsmasq") else {
        return;
    };
    // The upstream answers broken.k8s, unsigned.
    let upstream = DnsmasqFixture::start(&bin, "10.9.9.9 broken.k8s\n", &[]);
    // The one asked validates DNSSEC and has a trust anchor for broken.k8s: the unsigned answer is BOGUS.
    let validating = DnsmasqFixture::start(
        &bin,
        "10.0.0.1 masters.prod.k8s\n",
        &[
            format!("--server=/broken.k8s/{LOOPBACK}#{}", upstream.port),
            "--dnssec".to_string(),
            "--trust-anchor=.,20326,8,2,E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D".to_string(),
            "--trust-anchor=broken.k8s,12345,8,2,0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
                .to_string(),
        ],
    );
    let direct = raw_udp_query(validating.query_addr, "broken.k8s", Duration::from_secs(2))
        .expect("dnsmasq answers");
    assert_eq!(
        direct.rcode, 2,
        "dnsmasq itself answers SERVFAIL: {direct:?}"
    );

    let resolver = validating.resolver();
    assert_eq!(resolver.lookup_a("broken.k8s").await, DnsResult::ServFail);
    // SERVFAIL is tried again (2 attempts): 2 queries, as dnsmasq saw them (plus the direct one above).
    assert_eq!(resolver.queries_sent(), 2);
    assert_eq!(validating.queries_for("broken.k8s", 3), 3);
    let log = validating.log_text();
    assert!(log.contains("BOGUS"), "{log}");
    // Nothing was sent anywhere but to the upstream dnsmasq.
    let upstream_addr = format!(" to {LOOPBACK}#{}", upstream.port);
    let sent: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("]: forwarded ") || l.contains("]: dnssec-query["))
        .collect();
    assert!(
        !sent.is_empty() && sent.iter().all(|l| l.ends_with(&upstream_addr)),
        "{sent:#?}"
    );
    // The same server still answers its local names.
    let (addrs, _) = answer_set(&resolver.lookup_a("masters.prod.k8s").await);
    assert_eq!(addrs, set(&["10.0.0.1"]));
}

#[tokio::test]
async fn refused_is_other() {
    let Some(bin) = require_dnsmasq("refused_is_other") else {
        return;
    };
    let dns = DnsmasqFixture::start(&bin, "", &[]);
    let resolver = dns.resolver();
    // Outside k8s, and dnsmasq has no upstream (--no-resolv): REFUSED.
    match resolver.lookup_a("masters.prod.example").await {
        DnsResult::Other { message } => assert!(message.contains("REFUSED"), "{message}"),
        other => panic!("expected Other (REFUSED), got {other:?}"),
    }
    // REFUSED is tried again like SERVFAIL.
    assert_eq!(resolver.queries_sent(), 2);
    assert_eq!(dns.queries_for("masters.prod.example", 2), 2);
}

/// A UDP socket on the loopback address that reads queries and never answers; counts what it received.
struct SilentServer {
    addr: SocketAddr,
    received: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SilentServer {
    fn start() -> SilentServer {
        let socket =
            UdpSocket::bind(SocketAddr::new(IpAddr::V4(LOOPBACK), 0)).expect("bind silent server");
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .expect("read timeout");
        let addr = socket.local_addr().expect("local addr");
        let received = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (received, stop) = (received.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                let deadline = Instant::now() + Duration::from_secs(60);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    match socket.recv_from(&mut buf) {
                        Ok(_) => {
                            received.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e)
                            if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                        Err(_) => break,
                    }
                }
            })
        };
        SilentServer {
            addr,
            received,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_in_bounded_time() {
    let silent = SilentServer::start();
    let timeouts = DnsTimeouts {
        per_attempt: Duration::from_millis(400),
        attempts: 2,
    };
    let resolver = DnsResolver::with_nameservers(&[silent.addr], timeouts).expect("resolver");
    let start = Instant::now();
    let result = resolver.lookup_a("masters.prod.k8s").await;
    let elapsed = start.elapsed();
    assert_eq!(result, DnsResult::Timeout);
    assert!(
        elapsed >= Duration::from_millis(750),
        "both attempts were waited for: {elapsed:?}"
    );
    assert!(
        elapsed <= timeouts.bound() + Duration::from_millis(300),
        "bounded: {elapsed:?}"
    );
    // Every datagram counted (hickory retransmits within an attempt), and nothing over TCP.
    std::thread::sleep(Duration::from_millis(100));
    let counts = resolver.query_counts();
    assert_eq!(counts.tcp, 0);
    assert!(counts.udp >= 2, "{counts:?}");
    assert_eq!(
        counts.udp,
        silent.received.load(Ordering::Relaxed),
        "counted = received"
    );
}

#[tokio::test]
async fn a_truncated_answer_is_retried_over_tcp() {
    let Some(bin) = require_dnsmasq("a_truncated_answer_is_retried_over_tcp") else {
        return;
    };
    let name = "minions.big.k8s";
    let (hosts, want) = many_hosts(name, 150, 1);
    let dns = DnsmasqFixture::start(&bin, &hosts, &[]);

    // Over UDP dnsmasq truncates: TC set, part of the records.
    let direct =
        raw_udp_query(dns.query_addr, name, Duration::from_secs(2)).expect("dnsmasq answers");
    assert!(
        direct.truncated && direct.answers < 150,
        "UDP answer: {direct:?}"
    );

    let resolver = dns.resolver();
    let (addrs, ttl) = answer_set(&resolver.lookup_a(name).await);
    assert_eq!(addrs.len(), 150);
    assert_eq!((addrs, ttl), (want, LOCAL_TTL));
    // One UDP query (truncated), one TCP query: dnsmasq saw both (and the direct one).
    assert_eq!(resolver.query_counts(), QueryCounts { udp: 1, tcp: 1 });
    assert_eq!(dns.queries_for(name, 3), 3);

    // A changed set is seen at once, over a new TCP connection (no stale connection keeps dnsmasq busy).
    let (hosts, want) = many_hosts(name, 120, 7);
    dns.set_hosts(&hosts);
    let (addrs, _) = answer_set(&resolver.lookup_a(name).await);
    assert_eq!(addrs, want);
    assert_eq!(resolver.query_counts(), QueryCounts { udp: 2, tcp: 2 });
    // And a small answer right after still comes over UDP, answered.
    dns.set_hosts(&format!("{hosts}10.0.0.1 masters.big.k8s\n"));
    let (addrs, _) = answer_set(&resolver.lookup_a("masters.big.k8s").await);
    assert_eq!(addrs, set(&["10.0.0.1"]));
    assert_eq!(resolver.query_counts(), QueryCounts { udp: 3, tcp: 2 });
}

#[tokio::test]
async fn queries_sent_matches_what_dnsmasq_received() {
    let Some(bin) = require_dnsmasq("queries_sent_matches_what_dnsmasq_received") else {
        return;
    };
    let dns = DnsmasqFixture::start(
        &bin,
        "10.0.0.1 masters.prod.k8s\n10.0.1.1 minions.prod.k8s\nfd00::1 v6.prod.k8s\n",
        &[],
    );
    let resolver = dns.resolver();
    assert_eq!(resolver.queries_sent(), 0);
    for _ in 0..3 {
        assert!(matches!(
            resolver.lookup_a("nothing.prod.k8s").await,
            DnsResult::NxDomain { .. }
        ));
    }
    for name in ["masters.prod.k8s", "minions.prod.k8s"] {
        assert!(matches!(
            resolver.lookup_a(name).await,
            DnsResult::Answers { .. }
        ));
    }
    assert!(matches!(
        resolver.lookup_a("v6.prod.k8s").await,
        DnsResult::NoRecords { .. }
    ));
    assert_eq!(resolver.queries_sent(), 6);
    let received: usize = [
        "nothing.prod.k8s",
        "masters.prod.k8s",
        "minions.prod.k8s",
        "v6.prod.k8s",
    ]
    .iter()
    .zip([3, 1, 1, 1])
    .map(|(name, want)| dns.queries_for(name, want))
    .sum();
    assert_eq!(received, 6);
    assert_eq!(dns.logged_queries().len(), 6);
}

#[tokio::test]
async fn an_authoritative_zone_gives_negative_ttls() {
    let Some(bin) = require_dnsmasq("an_authoritative_zone_gives_negative_ttls") else {
        return;
    };
    // dnsmasq answers authoritatively (SOA in negative answers) for queries arriving on lo's own address.
    let dns = DnsmasqFixture::start_with(
        &bin,
        "10.0.0.1 masters.prod.k8s\nfd00::1 v6.prod.k8s\n",
        &[
            "--auth-server=ns.k8s,lo/4".to_string(),
            "--auth-zone=k8s".to_string(),
            "--auth-ttl=11".to_string(),
        ],
        IpAddr::V4(Ipv4Addr::LOCALHOST),
    );
    let resolver = dns.resolver();
    assert_eq!(
        resolver.lookup_a("nothing.prod.k8s").await,
        DnsResult::NxDomain {
            negative_ttl_secs: Some(11)
        }
    );
    assert_eq!(
        resolver.lookup_a("v6.prod.k8s").await,
        DnsResult::NoRecords {
            negative_ttl_secs: Some(11)
        }
    );
    assert_eq!(
        resolver.lookup_a("masters.prod.k8s").await,
        DnsResult::Answers {
            addrs: vec![v4("10.0.0.1")],
            ttl_secs: 11
        }
    );
    // The NXDOMAIN said "cache me for 11 s"; the edge does not: the record added now is seen at once.
    dns.set_hosts("10.0.0.1 masters.prod.k8s\nfd00::1 v6.prod.k8s\n10.0.0.5 nothing.prod.k8s\n");
    assert_eq!(
        resolver.lookup_a("nothing.prod.k8s").await,
        DnsResult::Answers {
            addrs: vec![v4("10.0.0.5")],
            ttl_secs: 11
        }
    );
    assert_eq!(resolver.queries_sent(), 4);
    assert!(
        dns.log_text().contains("auth[A] nothing.prod.k8s"),
        "answered by the authoritative side"
    );
}

#[tokio::test]
async fn a_dead_first_name_server_costs_no_timeout() {
    let Some(bin) = require_dnsmasq("a_dead_first_name_server_costs_no_timeout") else {
        return;
    };
    let dns = DnsmasqFixture::start(&bin, "10.0.0.1 masters.prod.k8s\n", &[]);
    let silent = SilentServer::start();
    let timeouts = DnsTimeouts {
        per_attempt: Duration::from_secs(2),
        attempts: 2,
    };
    let resolver =
        DnsResolver::with_nameservers(&[silent.addr, dns.query_addr], timeouts).expect("resolver");
    let start = Instant::now();
    assert_eq!(
        resolver.lookup_a("masters.prod.k8s").await,
        DnsResult::Answers {
            addrs: vec![v4("10.0.0.1")],
            ttl_secs: LOCAL_TTL
        }
    );
    assert_eq!(
        resolver.lookup_a("nothing.prod.k8s").await,
        DnsResult::NxDomain {
            negative_ttl_secs: None
        }
    );
    let elapsed = start.elapsed();
    assert!(
        elapsed < Duration::from_millis(500),
        "no timeout waited for: {elapsed:?}"
    );
    // Both servers are asked at once; every query sent reached one of them.
    let answered = dns.queries_for("masters.prod.k8s", 1) + dns.queries_for("nothing.prod.k8s", 1);
    assert_eq!(answered, 2);
    std::thread::sleep(Duration::from_millis(100));
    let silent_received = silent.received.load(Ordering::Relaxed);
    assert!(silent_received <= 2, "{silent_received}");
    assert_eq!(resolver.queries_sent(), silent_received + 2);
}
