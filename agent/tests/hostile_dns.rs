//! The DNS edge ([`k8s_agent::dns`]) against a hostile name server written here: std UDP and TCP sockets on
//! 127.0.0.1 (one free port, both transports), replies built with `hickory_proto` or by hand. Each case asserts
//! the exact [`DnsResult`] (or, where the agent's answer is a choice, its category and that the message names the
//! problem), that the lookup returns within the configured bound plus a margin (a correctness bound, not a
//! benchmark), and that nothing panicked: hickory's tasks run on the test's thread (current-thread runtime), and a
//! panic hook counts the panics of each thread, tasks whose panic tokio would swallow included. A watchdog aborts
//! the test binary if a lookup never returns at all (a busy loop the async timeout could not cut).
//!
//! - Forged IDs: every query gets answers with wrong message IDs (and one with the right ID from another port),
//!   never the right one → `Timeout`, both attempts waited for, none of the forged addresses; the same forgeries
//!   followed by the real answer → that answer.
//! - Records of another name: `masters.local.k8s` answered with A records of `evil.k8s` (alone, next to the
//!   real record, with the real record hidden in the additional section, after a CNAME), and an answer whose
//!   question is `evil.k8s` → no address (nor TTL) of `evil.k8s` ever comes back: `NoRecords`, the real addresses
//!   only, or `Timeout` for the forged question (hickory drops it). The edge used to take every A record of the
//!   answer section whatever its owner (fixed in `edge/dns.rs`: `records_of`).
//! - Truncation: an oversized UDP answer (150 A records sent whole, larger than the 1232 bytes the edge reads; with
//!   TC and without) and a compliant truncated one (header, question, TC), then the full answer over TCP → all 150
//!   addresses, one query on each transport. The oversized ones used to end in `Other("malformed DNS answer: …")`
//!   with no TCP retry (fixed in `edge/dns.rs`: `truncated_form`). "Truncated forever": UDP says TC and TCP answers
//!   TC again, closes at once, or sends a short frame and closes → `Other` naming the truncation; TCP sends a short
//!   frame, or a garbage one, and holds the connection → `Timeout`.
//! - CNAME chains: masters → a → b → A (hop by hop, and the whole chain in one answer) → the final address, the
//!   smallest TTL of the chain; a loop (a → b → a) and a 20-hop chain → `Other` saying the zone is misconfigured
//!   ("… is a CNAME loop (…)" / "… leads through CNAME records to …"; it was `NoRecords`, which reads as "not
//!   registered yet") after a bounded number of queries (the whole 20-hop chain in one answer → its address); a
//!   loop inside one answer that also holds an A record → that record, no hang.
//! - Garbage: random datagrams (random IDs) → ignored, `Timeout`; random bytes behind the right ID, a valid header
//!   with 65535 answers and none there, a compression-pointer loop, a bare ID → `Other` ("malformed DNS answer").
//!
//! Needs nothing installed: the server is part of the test.

use hickory_proto::op::{Message, OpCode, Query};
use hickory_proto::rr::rdata::{A, CNAME};
use hickory_proto::rr::{Name, RData, Record};
use k8s_agent::dns::{DnsResolver, DnsTimeouts, QueryCounts};
use k8s_agent::plan::DnsResult;
use std::cell::Cell;
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, Once, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The name every case asks for.
const MASTERS: &str = "masters.local.k8s";
/// The name a hostile server slips in.
const EVIL: &str = "evil.k8s";
/// The TTL of the real records.
const TTL: u32 = 30;
/// Allowed beyond [`DnsTimeouts::bound`] (scheduling on a busy machine).
const MARGIN: Duration = Duration::from_millis(500);
/// Beyond the bound, the lookup counts as hung (the async timeout of [`lookup`]) ...
const HUNG: Duration = Duration::from_secs(5);
/// ... and the watchdog aborts the test binary.
const WATCHDOG: Duration = Duration::from_secs(15);

/// Short attempts: the cases that end in `Timeout` wait for all of them.
fn timeouts() -> DnsTimeouts {
    DnsTimeouts {
        per_attempt: Duration::from_millis(400),
        attempts: 2,
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The hostile server
// ---------------------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Udp,
    Tcp,
}

/// One step of the server's reply to a query.
enum Act {
    /// A DNS message (on TCP with its 2-byte length in front).
    Msg(Vec<u8>),
    /// Bytes as they are (on TCP no length is added).
    Raw(Vec<u8>),
    /// A datagram from another port of the server's address (UDP only).
    FromOtherPort(Vec<u8>),
    /// Hold the connection open without reading or writing for a while (TCP only).
    Pause(Duration),
    /// Close the TCP connection (both directions).
    Close,
}

/// A query as the server received it.
struct Asked {
    id: u16,
    query: Query,
}

impl Asked {
    fn parse(bytes: &[u8]) -> Option<Asked> {
        let message = Message::from_vec(bytes).ok()?;
        Some(Asked {
            id: message.metadata.id,
            query: message.queries.first()?.clone(),
        })
    }

    fn name(&self) -> &Name {
        &self.query.name
    }
}

type Handler = dyn Fn(&Asked, Transport) -> Vec<Act> + Send + Sync + 'static;

/// What the server saw.
#[derive(Default)]
struct Seen {
    udp: AtomicU64,
    tcp: AtomicU64,
    tcp_connections: AtomicU64,
    names: Mutex<Vec<(Transport, Name)>>,
}

impl Seen {
    fn record(&self, transport: Transport, asked: &Asked) {
        self.names
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((transport, asked.name().clone()));
    }
}

/// A name server on 127.0.0.1 (UDP and TCP on one port) replying to every query as `handler` says.
struct HostileServer {
    addr: SocketAddr,
    seen: Arc<Seen>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl HostileServer {
    fn start(handler: impl Fn(&Asked, Transport) -> Vec<Act> + Send + Sync + 'static) -> Self {
        let handler: Arc<Handler> = Arc::new(handler);
        let (udp, tcp) = bind_udp_and_tcp();
        let addr = udp.local_addr().expect("UDP address");
        let seen = Arc::new(Seen::default());
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let udp_thread = {
            let (handler, seen, stop) = (handler.clone(), seen.clone(), stop.clone());
            std::thread::spawn(move || serve_udp(&udp, &*handler, &seen, &stop))
        };
        let tcp_thread = {
            let (seen, stop, connections) = (seen.clone(), stop.clone(), connections.clone());
            std::thread::spawn(move || serve_tcp(&tcp, &handler, &seen, &stop, &connections))
        };
        HostileServer {
            addr,
            seen,
            stop,
            threads: vec![udp_thread, tcp_thread],
            connections,
        }
    }

    fn resolver(&self) -> DnsResolver {
        DnsResolver::with_nameservers(&[self.addr], timeouts()).expect("resolver")
    }

    fn udp_queries(&self) -> u64 {
        self.seen.udp.load(Ordering::Relaxed)
    }

    fn tcp_queries(&self) -> u64 {
        self.seen.tcp.load(Ordering::Relaxed)
    }

    fn tcp_connections(&self) -> u64 {
        self.seen.tcp_connections.load(Ordering::Relaxed)
    }

    /// The names asked, in order (both transports).
    fn names_asked(&self) -> Vec<String> {
        self.seen
            .names
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(_, name)| name.to_string())
            .collect()
    }
}

impl Drop for HostileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let mut failed = false;
        for thread in self.threads.drain(..) {
            failed |= thread.join().is_err();
        }
        let connections = std::mem::take(
            &mut *self
                .connections
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for thread in connections {
            failed |= thread.join().is_err();
        }
        if failed && !std::thread::panicking() {
            panic!("a thread of the hostile DNS server panicked");
        }
    }
}

/// A UDP socket and a TCP listener on the same free port of 127.0.0.1.
fn bind_udp_and_tcp() -> (UdpSocket, TcpListener) {
    for _ in 0..50 {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind UDP");
        let port = udp.local_addr().expect("UDP address").port();
        if let Ok(tcp) = TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
            udp.set_read_timeout(Some(Duration::from_millis(20)))
                .expect("UDP read timeout");
            tcp.set_nonblocking(true).expect("non-blocking listener");
            return (udp, tcp);
        }
    }
    panic!("no port free for both UDP and TCP on 127.0.0.1");
}

fn is_timeout(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
    )
}

/// Sleeps `duration`, or less if the server is stopped.
fn pause(duration: Duration, stop: &AtomicBool) {
    let until = Instant::now() + duration;
    while !stop.load(Ordering::Relaxed) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn serve_udp(socket: &UdpSocket, handler: &Handler, seen: &Seen, stop: &AtomicBool) {
    let forger = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind the forger's socket");
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        let (len, from) = match socket.recv_from(&mut buf) {
            Ok(received) => received,
            Err(error) if is_timeout(&error) => continue,
            Err(error) => panic!("hostile server: UDP receive failed: {error}"),
        };
        seen.udp.fetch_add(1, Ordering::Relaxed);
        let Some(asked) = Asked::parse(&buf[..len]) else {
            continue;
        };
        seen.record(Transport::Udp, &asked);
        for act in handler(&asked, Transport::Udp) {
            // A send can fail once the resolver has closed its socket: nothing to do about it.
            match act {
                Act::Msg(bytes) | Act::Raw(bytes) => {
                    let _ = socket.send_to(&bytes, from);
                }
                Act::FromOtherPort(bytes) => {
                    let _ = forger.send_to(&bytes, from);
                }
                Act::Pause(_) | Act::Close => {}
            }
        }
    }
}

fn serve_tcp(
    listener: &TcpListener,
    handler: &Arc<Handler>,
    seen: &Arc<Seen>,
    stop: &Arc<AtomicBool>,
    connections: &Mutex<Vec<JoinHandle<()>>>,
) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                seen.tcp_connections.fetch_add(1, Ordering::Relaxed);
                let (handler, seen, stop) = (handler.clone(), seen.clone(), stop.clone());
                let thread =
                    std::thread::spawn(move || serve_connection(stream, &*handler, &seen, &stop));
                connections
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(thread);
            }
            Err(error) if is_timeout(&error) => std::thread::sleep(Duration::from_millis(5)),
            Err(error) => panic!("hostile server: TCP accept failed: {error}"),
        }
    }
}

/// Fills `buf` from the stream; false at the end of the stream, on an error, or when the server is stopped.
fn read_full(stream: &mut TcpStream, buf: &mut [u8], stop: &AtomicBool) -> bool {
    let mut filled = 0;
    while filled < buf.len() {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        match stream.read(&mut buf[filled..]) {
            Ok(0) => return false,
            Ok(n) => filled += n,
            Err(error) if is_timeout(&error) => {}
            Err(_) => return false,
        }
    }
    true
}

fn serve_connection(mut stream: TcpStream, handler: &Handler, seen: &Seen, stop: &AtomicBool) {
    stream.set_nonblocking(false).expect("blocking stream");
    stream
        .set_read_timeout(Some(Duration::from_millis(20)))
        .expect("TCP read timeout");
    loop {
        let mut len = [0u8; 2];
        if !read_full(&mut stream, &mut len, stop) {
            return;
        }
        let mut message = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if !read_full(&mut stream, &mut message, stop) {
            return;
        }
        seen.tcp.fetch_add(1, Ordering::Relaxed);
        let Some(asked) = Asked::parse(&message) else {
            continue;
        };
        seen.record(Transport::Tcp, &asked);
        for act in handler(&asked, Transport::Tcp) {
            let written = match act {
                Act::Msg(bytes) => {
                    let mut framed = u16::try_from(bytes.len())
                        .expect("a TCP DNS message fits 65535 bytes")
                        .to_be_bytes()
                        .to_vec();
                    framed.extend(bytes);
                    stream.write_all(&framed)
                }
                Act::Raw(bytes) => stream.write_all(&bytes),
                Act::Pause(duration) => {
                    pause(duration, stop);
                    Ok(())
                }
                Act::Close => {
                    let _ = stream.shutdown(Shutdown::Both);
                    return;
                }
                Act::FromOtherPort(_) => Ok(()),
            };
            if written.is_err() {
                return;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Replies
// ---------------------------------------------------------------------------------------------------------------

/// A fully qualified name.
fn name(text: &str) -> Name {
    let mut name = Name::from_ascii(text).expect("test name");
    name.set_fqdn(true);
    name
}

fn a(owner: &str, ttl: u32, ip: Ipv4Addr) -> Record {
    Record::from_rdata(name(owner), ttl, RData::A(A(ip)))
}

fn cname(owner: &str, ttl: u32, target: &str) -> Record {
    Record::from_rdata(name(owner), ttl, RData::CNAME(CNAME(name(target))))
}

/// A NOERROR reply to `asked` (its ID and question) with `answers`.
fn reply(asked: &Asked, answers: Vec<Record>) -> Message {
    let mut message = Message::response(asked.id, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.metadata.recursion_available = true;
    message.add_query(asked.query.clone());
    message.add_answers(answers);
    message
}

fn encode(message: &Message) -> Vec<u8> {
    message.to_vec().expect("encode the reply")
}

/// `reply(asked, answers)`, encoded, with the message ID replaced by `id`.
fn with_id(asked: &Asked, id: u16, answers: Vec<Record>) -> Vec<u8> {
    let mut bytes = encode(&reply(asked, answers));
    bytes[..2].copy_from_slice(&id.to_be_bytes());
    bytes
}

/// The header and question of a reply with TC set and no records (what a compliant server sends when the answer
/// does not fit).
fn truncated(asked: &Asked) -> Vec<u8> {
    let mut message = reply(asked, Vec::new());
    message.metadata.truncation = true;
    encode(&message)
}

/// `count` A records for [`MASTERS`]: 10.1.x.y, and their addresses, in order.
fn many(count: u16) -> (Vec<Record>, Vec<IpAddr>) {
    (0..count)
        .map(|i| {
            let [hi, lo] = (i + 1).to_be_bytes();
            let ip = Ipv4Addr::new(10, 1, hi, lo);
            (a(MASTERS, TTL, ip), IpAddr::V4(ip))
        })
        .unzip()
}

/// A small deterministic generator for the garbage.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next().to_le_bytes()[3]).collect()
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Lookups, and what every case checks
// ---------------------------------------------------------------------------------------------------------------

thread_local! {
    static PANICS: Cell<u64> = const { Cell::new(0) };
}

/// Panics so far on this thread (counted by a panic hook installed on first use, which then calls the previous
/// hook: panic messages are printed as usual).
fn panics_on_this_thread() -> u64 {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.with(|count| count.set(count.get() + 1));
            previous(info);
        }));
    });
    PANICS.with(Cell::get)
}

/// Aborts the test binary if it is not dropped within `limit`: a lookup that never returns would otherwise hang
/// the test run.
struct Watchdog {
    _armed: mpsc::Sender<()>,
}

impl Watchdog {
    fn arm(what: String, limit: Duration) -> Watchdog {
        let (armed, disarmed) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Err(RecvTimeoutError::Timeout) = disarmed.recv_timeout(limit) {
                eprintln!(
                    "{what} has not returned after {limit:?}: hung; aborting the test binary"
                );
                std::process::abort();
            }
        });
        Watchdog { _armed: armed }
    }
}

/// One lookup of `name`, checked: it returns within the resolver's bound plus [`MARGIN`], and nothing panicked
/// on the way. Returns the result and the time taken.
async fn lookup(resolver: &DnsResolver, name: &str) -> (DnsResult, Duration) {
    let bound = resolver.timeouts().bound();
    let _watchdog = Watchdog::arm(format!("the lookup of {name}"), bound + WATCHDOG);
    let panics_before = panics_on_this_thread();
    let start = Instant::now();
    let result = tokio::time::timeout(bound + HUNG, resolver.lookup_a(name))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the lookup of {name} hung: no result after {:?}",
                bound + HUNG
            )
        });
    let elapsed = start.elapsed();
    assert!(
        elapsed <= bound + MARGIN,
        "the lookup of {name} took {elapsed:?}, over the bound {bound:?} + {MARGIN:?}: {result:?}"
    );
    assert_eq!(
        panics_on_this_thread(),
        panics_before,
        "something panicked during the lookup of {name} (result {result:?})"
    );
    (result, elapsed)
}

/// The addresses of a result (none unless `Answers`).
fn addresses(result: &DnsResult) -> Vec<IpAddr> {
    match result {
        DnsResult::Answers { addrs, .. } => addrs.clone(),
        _ => Vec::new(),
    }
}

/// The message of an `Other` result; panics (with `case` and the result) otherwise.
fn other_message<'a>(case: &str, result: &'a DnsResult) -> &'a str {
    match result {
        DnsResult::Other { message } => message,
        other => panic!("{case}: expected Other, got {other:?}"),
    }
}

fn v4(text: &str) -> IpAddr {
    text.parse().expect("test address")
}

const REAL: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const FORGED: Ipv4Addr = Ipv4Addr::new(6, 6, 6, 6);

/// A server answering every query with five wrong-ID answers (6.6.6.1–5) and a right-ID answer (6.6.6.6) from
/// another port; then, if `real`, the real answer (10.0.0.1).
fn forging_server(real: bool) -> HostileServer {
    HostileServer::start(move |asked, _| {
        let mut acts: Vec<Act> = (1..=5u8)
            .map(|k| {
                Act::Msg(with_id(
                    asked,
                    asked.id.wrapping_add(u16::from(k)),
                    vec![a(MASTERS, TTL, Ipv4Addr::new(6, 6, 6, k))],
                ))
            })
            .collect();
        acts.push(Act::FromOtherPort(encode(&reply(
            asked,
            vec![a(MASTERS, TTL, FORGED)],
        ))));
        if real {
            acts.push(Act::Msg(encode(&reply(asked, vec![a(MASTERS, TTL, REAL)]))));
        }
        acts
    })
}

// ---------------------------------------------------------------------------------------------------------------
// 1. Forged message IDs
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn forged_ids_are_never_accepted() {
    let server = forging_server(false);
    let resolver = server.resolver();
    let (result, elapsed) = lookup(&resolver, MASTERS).await;
    assert_eq!(result, DnsResult::Timeout);
    // The forged answers did not end an attempt early: both were waited for.
    let t = timeouts();
    assert!(
        elapsed >= t.per_attempt * t.attempts - Duration::from_millis(50),
        "{elapsed:?}"
    );
    // Every query (retransmissions included) got the forgeries; nothing went over TCP.
    assert!(server.udp_queries() >= 2, "{}", server.udp_queries());
    assert_eq!(resolver.query_counts().tcp, 0);
    assert_eq!(server.tcp_connections(), 0);
}

#[tokio::test]
async fn forged_ids_then_the_real_answer() {
    let server = forging_server(true);
    let resolver = server.resolver();
    let (result, elapsed) = lookup(&resolver, MASTERS).await;
    assert_eq!(
        result,
        DnsResult::Answers {
            addrs: vec![IpAddr::V4(REAL)],
            ttl_secs: TTL
        }
    );
    assert!(
        elapsed < timeouts().per_attempt,
        "answered by the first exchange: {elapsed:?}"
    );
    assert_eq!(resolver.query_counts().tcp, 0);
}

// ---------------------------------------------------------------------------------------------------------------
// 2. Records of another name
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn records_of_another_name_are_not_addresses_of_the_name_asked() {
    // (case, answer records, additional records, expected result)
    let cases: Vec<(&str, Vec<Record>, Vec<Record>, DnsResult)> = vec![
        (
            "only A records of evil.k8s",
            vec![a(EVIL, 5, FORGED), a(EVIL, 5, Ipv4Addr::new(6, 6, 6, 7))],
            vec![],
            DnsResult::NoRecords {
                negative_ttl_secs: None,
            },
        ),
        (
            "the real record and one of evil.k8s",
            vec![a(MASTERS, TTL, REAL), a(EVIL, 5, FORGED)],
            vec![],
            DnsResult::Answers {
                addrs: vec![IpAddr::V4(REAL)],
                ttl_secs: TTL,
            },
        ),
        (
            "evil.k8s in the answer, the real record in the additional section",
            vec![a(EVIL, 5, FORGED)],
            vec![a(MASTERS, TTL, REAL)],
            DnsResult::NoRecords {
                negative_ttl_secs: None,
            },
        ),
        (
            "a CNAME, its target's record, and one of evil.k8s",
            vec![
                cname(MASTERS, TTL, "api.local.k8s"),
                a(EVIL, 5, FORGED),
                a("api.local.k8s", 60, Ipv4Addr::new(10, 0, 0, 2)),
            ],
            vec![],
            DnsResult::Answers {
                addrs: vec![v4("10.0.0.2")],
                ttl_secs: TTL,
            },
        ),
    ];
    for (case, answers, additionals, want) in cases {
        let server = HostileServer::start(move |asked, _| {
            let mut message = reply(asked, answers.clone());
            message.add_additionals(additionals.clone());
            vec![Act::Msg(encode(&message))]
        });
        let (result, _) = lookup(&server.resolver(), MASTERS).await;
        assert!(
            !addresses(&result).contains(&IpAddr::V4(FORGED)),
            "{case}: an address of evil.k8s came back: {result:?}"
        );
        assert_eq!(result, want, "{case}");
    }
}

#[tokio::test]
async fn an_answer_to_another_question_is_ignored() {
    // The right ID and port, but the question (and the records) are evil.k8s's.
    let server = HostileServer::start(|asked, _| {
        let mut message = reply(asked, vec![a(EVIL, TTL, FORGED)]);
        message.queries[0].name = name(EVIL);
        vec![Act::Msg(encode(&message))]
    });
    let resolver = server.resolver();
    let (result, _) = lookup(&resolver, MASTERS).await;
    assert_eq!(result, DnsResult::Timeout);
    assert!(server.udp_queries() >= 2, "{}", server.udp_queries());
}

// ---------------------------------------------------------------------------------------------------------------
// 3. Truncation
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_truncated_udp_answer_is_fetched_over_tcp() {
    let (records, want) = many(150);
    // (case, the UDP reply)
    type UdpReply = fn(&Asked, &[Record]) -> Vec<u8>;
    let udp_replies: [(&str, UdpReply); 3] = [
        ("oversized: all 150 records and TC", |asked, records| {
            let mut message = reply(asked, records.to_vec());
            message.metadata.truncation = true;
            let bytes = encode(&message);
            assert!(bytes.len() > 1232, "larger than the edge reads");
            bytes
        }),
        ("oversized without TC", |asked, records| {
            let bytes = encode(&reply(asked, records.to_vec()));
            assert!(bytes.len() > 1232 && bytes[2] & 0x02 == 0);
            bytes
        }),
        ("compliant: header, question and TC", |asked, _| {
            truncated(asked)
        }),
    ];
    for (case, udp_reply) in udp_replies {
        let records = records.clone();
        let server = HostileServer::start(move |asked, transport| match transport {
            Transport::Udp => vec![Act::Raw(udp_reply(asked, &records))],
            Transport::Tcp => vec![Act::Msg(encode(&reply(asked, records.clone())))],
        });
        let resolver = server.resolver();
        let (result, _) = lookup(&resolver, MASTERS).await;
        assert_eq!(
            result,
            DnsResult::Answers {
                addrs: want.clone(),
                ttl_secs: TTL
            },
            "{case}"
        );
        assert_eq!(
            resolver.query_counts(),
            QueryCounts { udp: 1, tcp: 1 },
            "{case}"
        );
        assert_eq!(
            (server.udp_queries(), server.tcp_queries()),
            (1, 1),
            "{case}"
        );
    }
}

#[tokio::test]
async fn truncated_forever_is_an_error_in_bounded_time() {
    enum Want {
        Truncated,
        Timeout,
    }
    // (case, what the TCP side does, expected)
    type TcpSide = fn(&Asked) -> Vec<Act>;
    let cases: [(&str, TcpSide, Want); 5] = [
        (
            "TCP answers TC again",
            |asked| vec![Act::Msg(truncated(asked))],
            Want::Truncated,
        ),
        ("TCP closes at once", |_| vec![Act::Close], Want::Truncated),
        (
            "TCP sends a short frame and closes",
            |asked| {
                let mut raw = 512u16.to_be_bytes().to_vec();
                raw.extend(&truncated(asked)[..12]);
                vec![Act::Raw(raw), Act::Close]
            },
            Want::Truncated,
        ),
        (
            "TCP sends a short frame and holds the connection",
            |asked| {
                let mut raw = 512u16.to_be_bytes().to_vec();
                raw.extend(&truncated(asked)[..12]);
                vec![Act::Raw(raw), Act::Pause(Duration::from_secs(5))]
            },
            Want::Timeout,
        ),
        (
            "TCP sends garbage in a frame and holds the connection",
            |asked| {
                let mut garbage = asked.id.to_be_bytes().to_vec();
                garbage.extend(XorShift(7).bytes(300));
                vec![Act::Msg(garbage), Act::Pause(Duration::from_secs(5))]
            },
            Want::Timeout,
        ),
    ];
    for (case, tcp, want) in cases {
        let server = HostileServer::start(move |asked, transport| match transport {
            Transport::Udp => vec![Act::Msg(truncated(asked))],
            Transport::Tcp => tcp(asked),
        });
        let resolver = server.resolver();
        let (result, _) = lookup(&resolver, MASTERS).await;
        match want {
            Want::Truncated => {
                let message = other_message(case, &result);
                assert!(message.contains("truncated"), "{case}: {message}");
            }
            Want::Timeout => assert_eq!(result, DnsResult::Timeout, "{case}"),
        }
        // The TCP retry was made (each attempt: UDP, then TCP).
        assert!(server.tcp_connections() >= 1, "{case}: no TCP retry");
        let counts = resolver.query_counts();
        assert!(
            counts.udp >= 1 && counts.tcp >= 1 && counts.total() <= 8,
            "{case}: {counts:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------------------------
// 4. CNAME chains
// ---------------------------------------------------------------------------------------------------------------

/// A zone of CNAMEs and A records, served hop by hop (each query gets the one record of its name) or as a whole
/// chain (each query gets the chain from its name, up to an A record or a name already given).
struct Zone {
    cnames: HashMap<Name, (Name, u32)>,
    addrs: HashMap<Name, (Ipv4Addr, u32)>,
    whole_chain: bool,
}

impl Zone {
    fn new(cnames: &[(&str, &str, u32)], addrs: &[(&str, Ipv4Addr, u32)], whole: bool) -> Zone {
        Zone {
            cnames: cnames
                .iter()
                .map(|(owner, target, ttl)| (name(owner), (name(target), *ttl)))
                .collect(),
            addrs: addrs
                .iter()
                .map(|(owner, ip, ttl)| (name(owner), (*ip, *ttl)))
                .collect(),
            whole_chain: whole,
        }
    }

    fn answer(&self, asked: &Name) -> Vec<Record> {
        let mut records = Vec::new();
        let mut given = Vec::new();
        let mut current = asked.clone();
        loop {
            if let Some((ip, ttl)) = self.addrs.get(&current) {
                records.push(Record::from_rdata(current.clone(), *ttl, RData::A(A(*ip))));
            }
            let Some((target, ttl)) = self.cnames.get(&current) else {
                break;
            };
            records.push(Record::from_rdata(
                current.clone(),
                *ttl,
                RData::CNAME(CNAME(target.clone())),
            ));
            given.push(current);
            if !self.whole_chain || given.contains(target) {
                break;
            }
            current = target.clone();
        }
        records
    }

    fn serve(self) -> HostileServer {
        HostileServer::start(move |asked, _| {
            vec![Act::Msg(encode(&reply(asked, self.answer(asked.name()))))]
        })
    }
}

/// `masters → hop1 → … → hop{hops}`, the last one with A 10.0.0.`hops`.
fn long_chain(hops: u8, whole: bool) -> Zone {
    let names: Vec<String> = std::iter::once(MASTERS.to_string())
        .chain((1..=hops).map(|i| format!("hop{i}.local.k8s")))
        .collect();
    let cnames: Vec<(&str, &str, u32)> = names
        .windows(2)
        .map(|pair| (pair[0].as_str(), pair[1].as_str(), TTL))
        .collect();
    let last = names.last().expect("a name");
    Zone::new(
        &cnames,
        &[(last, Ipv4Addr::new(10, 0, 0, hops), TTL)],
        whole,
    )
}

#[tokio::test]
async fn a_cname_chain_gives_the_final_addresses() {
    for whole in [false, true] {
        let zone = Zone::new(
            &[
                (MASTERS, "a.local.k8s", 30),
                ("a.local.k8s", "b.local.k8s", 20),
            ],
            &[("b.local.k8s", Ipv4Addr::new(10, 0, 0, 7), 60)],
            whole,
        );
        let server = zone.serve();
        let (result, _) = lookup(&server.resolver(), MASTERS).await;
        assert_eq!(
            result,
            DnsResult::Answers {
                addrs: vec![v4("10.0.0.7")],
                // The smallest TTL of the chain.
                ttl_secs: 20
            },
            "whole chain in one answer: {whole}; asked: {:?}",
            server.names_asked()
        );
    }
}

#[tokio::test]
async fn a_cname_loop_or_a_too_long_chain_ends_in_bounded_time() {
    let looping = |whole| {
        Zone::new(
            &[
                (MASTERS, "a.local.k8s", TTL),
                ("a.local.k8s", "b.local.k8s", TTL),
                ("b.local.k8s", "a.local.k8s", TTL),
            ],
            &[],
            whole,
        )
    };
    let cases = [
        ("a loop, hop by hop", looping(false)),
        ("a loop, whole", looping(true)),
        ("20 hops, hop by hop", long_chain(20, false)),
    ];
    for (case, zone) in cases {
        let server = zone.serve();
        let resolver = server.resolver();
        let (result, _) = lookup(&resolver, MASTERS).await;
        let said = result.describe();
        // A misconfiguration, said as one (not "no records", which reads as "not registered yet").
        let loop_in_one_answer =
            "is a CNAME loop (masters.local.k8s. → a.local.k8s. → b.local.k8s. → a.local.k8s.)";
        let hop_by_hop = "masters.local.k8s. leads through CNAME records to ";
        assert!(
            matches!(&result, DnsResult::Other { .. })
                && (said.contains(loop_in_one_answer) || said.contains(hop_by_hop))
                && said.contains("fix the CNAME records"),
            "{case}: {result:?}; asked: {:?}",
            server.names_asked()
        );
        // Followed a bounded number of hops, not forever.
        let asked = server.names_asked();
        assert!(asked.len() <= 10, "{case}: {asked:?}");
        assert_eq!(resolver.queries_sent(), server.udp_queries(), "{case}");
    }
}

#[tokio::test]
async fn a_long_chain_or_a_loop_inside_one_answer() {
    // The whole 20-hop chain in one answer: consistent data, followed to its end.
    let server = long_chain(20, true).serve();
    let (result, _) = lookup(&server.resolver(), MASTERS).await;
    assert_eq!(
        result,
        DnsResult::Answers {
            addrs: vec![v4("10.0.0.20")],
            ttl_secs: TTL
        }
    );
    // A loop in one answer that also carries an A record for a name of the loop: that record, no hang.
    let server = HostileServer::start(|asked, _| {
        vec![Act::Msg(encode(&reply(
            asked,
            vec![
                cname(MASTERS, TTL, "a.local.k8s"),
                cname("a.local.k8s", TTL, "b.local.k8s"),
                cname("b.local.k8s", TTL, "a.local.k8s"),
                a("a.local.k8s", TTL, Ipv4Addr::new(10, 0, 0, 3)),
            ],
        )))]
    });
    let (result, _) = lookup(&server.resolver(), MASTERS).await;
    assert_eq!(
        result,
        DnsResult::Answers {
            addrs: vec![v4("10.0.0.3")],
            ttl_secs: TTL
        },
        "asked: {:?}",
        server.names_asked()
    );
}

// ---------------------------------------------------------------------------------------------------------------
// 5. Garbage
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn random_datagrams_are_ignored() {
    let rng = Mutex::new(XorShift(0x9e37_79b9_7f4a_7c15));
    let server = HostileServer::start(move |_, _| {
        let mut rng = rng.lock().unwrap_or_else(PoisonError::into_inner);
        (0..5)
            .map(|_| {
                let len = usize::try_from(rng.next() % 600).expect("small");
                Act::Raw(rng.bytes(len))
            })
            .collect()
    });
    let (result, _) = lookup(&server.resolver(), MASTERS).await;
    // Random first two bytes are (all but certainly) not the query's ID: dropped like a forgery.
    assert_eq!(result, DnsResult::Timeout);
}

#[tokio::test]
async fn garbage_behind_the_right_id_is_malformed() {
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    let mut garbage: Vec<(String, Vec<u8>)> = [3, 11, 12, 13, 40, 300, 1200]
        .into_iter()
        .map(|len| (format!("{len} random bytes"), rng.bytes(len)))
        .collect();
    garbage.push(("a bare ID".to_string(), Vec::new()));
    for (case, bytes) in garbage {
        let server = HostileServer::start(move |asked, _| {
            let mut reply = asked.id.to_be_bytes().to_vec();
            reply.extend(bytes.get(2..).unwrap_or_default());
            // A one-byte and an empty datagram first: too short to carry an ID, ignored.
            vec![Act::Raw(vec![0x42]), Act::Raw(Vec::new()), Act::Raw(reply)]
        });
        let (result, _) = lookup(&server.resolver(), MASTERS).await;
        let message = other_message(&case, &result);
        assert!(
            message.starts_with("malformed DNS answer"),
            "{case}: {message}"
        );
    }
}

#[tokio::test]
async fn a_valid_header_with_absurd_contents_is_malformed() {
    /// The header and question of a NOERROR reply, with the answer count set to `answers`.
    fn header(asked: &Asked, answers: u16) -> Vec<u8> {
        let mut bytes = encode(&reply(asked, Vec::new()));
        bytes[6..8].copy_from_slice(&answers.to_be_bytes());
        bytes
    }
    type Build = fn(&Asked) -> Vec<u8>;
    let cases: [(&str, Build); 4] = [
        ("65535 answers, none there", |asked| header(asked, u16::MAX)),
        ("every count 65535, nothing after the header", |asked| {
            let mut bytes = header(asked, u16::MAX);
            bytes[4..12].copy_from_slice(&[0xff; 8]);
            bytes.truncate(12);
            bytes
        }),
        ("an answer whose name points at itself", |asked| {
            let mut bytes = header(asked, 1);
            let at = u16::try_from(bytes.len()).expect("small") | 0xc000;
            bytes.extend(at.to_be_bytes());
            bytes.extend([0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 6, 6, 6, 6]);
            bytes
        }),
        ("65535 answers, each a two-pointer loop", |asked| {
            let mut bytes = header(asked, u16::MAX);
            let first = u16::try_from(bytes.len()).expect("small");
            for _ in 0..50 {
                bytes.extend((first | 0xc000).wrapping_add(2).to_be_bytes());
                bytes.extend((first | 0xc000).to_be_bytes());
                bytes.extend([0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 6, 6, 6, 6]);
            }
            bytes
        }),
    ];
    for (case, build) in cases {
        let server = HostileServer::start(move |asked, _| vec![Act::Raw(build(asked))]);
        let (result, _) = lookup(&server.resolver(), MASTERS).await;
        let message = other_message(case, &result);
        assert!(
            message.starts_with("malformed DNS answer"),
            "{case}: {message}"
        );
    }
}
