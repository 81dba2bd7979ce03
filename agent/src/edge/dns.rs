//! The DNS edge: fresh A lookups with hickory-resolver, reported as a [`DnsResult`] the phase machine
//! ([`crate::plan`]) can tell apart.
//!
//! # Where the name servers come from
//!
//! - [`DnsResolver::from_system`]: the `nameserver` lines of the host's `/etc/resolv.conf` ([`RESOLV_CONF`]).
//!   Only the name servers are taken from it: `search`/`domain` do not matter (names are looked up as FQDNs, see
//!   below), and timeouts/attempts are the agent's ([`DnsTimeouts`]), not resolv.conf's `options`.
//! - [`DnsResolver::with_nameserver`]: one `IP:PORT` (the `--nameserver IP[:PORT]` flag, [`parse_nameserver`];
//!   tests point it at a dnsmasq on a loopback address).
//!
//! Every server is asked over UDP first (EDNS0, 1232-byte payload) and over TCP when the UDP answer is truncated
//! (or larger than the 1232 bytes announced: it is read as truncated, not as a malformed answer cut short).
//! `/etc/hosts` is never consulted: the agent wants what DNS says.
//!
//! # One lookup
//!
//! [`DnsResolver::lookup_a`] asks for the A records of `name`, always treated as fully qualified (a trailing `.`
//! is added), so no `search` domain or `ndots` rule can turn `masters.prod.k8s` into
//! `masters.prod.k8s.example.com`. Only A is asked for (never AAAA: the agent's peers are IPv4).
//!
//! Every call is a fresh lookup: a new hickory resolver is built for it and dropped afterwards. So nothing is
//! cached between polls (a cached NXDOMAIN would hide the masters record appearing), and no TCP connection
//! outlives the lookup. The latter matters: a DNS server may serve a long-lived TCP connection from a process that
//! holds the data of the moment the connection opened (dnsmasq forks a child per TCP connection, and with
//! `--no-daemon` it serves the connection inline and answers nothing else until it closes).
//!
//! Bounded time: each attempt has [`DnsTimeouts::per_attempt`] for the whole exchange (UDP retransmissions, the
//! TCP fallback and every configured server in it), at most [`DnsTimeouts::attempts`] attempts (a timeout, a
//! SERVFAIL, REFUSED or a connection error is tried again; NXDOMAIN and empty answers are not), and the whole
//! lookup is cut off at [`DnsTimeouts::bound`]. The default is 2 s × 2 attempts. With several name servers, two
//! are asked at once and the first answer counts (hickory's default): a dead first server costs no timeout (one
//! attempt's deadline covers every server, so asking them one after the other would spend it all on the dead
//! one), at the price of two queries per lookup.
//!
//! # What comes back
//!
//! | the name server's answer | [`DnsResult`] |
//! |---|---|
//! | NOERROR with A records (after the TCP retry if the UDP answer was truncated) | `Answers`: every A record of the name asked or of its CNAME chain (records of other names in the answer are ignored: with none left, `NoRecords`), in the server's order (not sorted, not deduplicated: the core validates, see [`crate::weave`]); `ttl_secs` = the smallest TTL of the answer records (a CNAME chain included) |
//! | NXDOMAIN | `NxDomain`; `negative_ttl_secs` = min(SOA TTL, SOA MINIMUM) when the answer carries the zone's SOA (RFC 2308), else `None` |
//! | NOERROR without A records (NODATA: the name has only other types, e.g. AAAA) | `NoRecords`, negative TTL as for NXDOMAIN |
//! | a CNAME chain that does not end at A records: a loop (`a → b → a`), more hops than hickory follows, a CNAME to a name with no A records | `Other`, naming the chain or the name it ended at ("the zone is misconfigured"), not `NoRecords` (which reads as "not registered yet") |
//! | SERVFAIL | `ServFail` |
//! | nothing in time (all attempts) | `Timeout` |
//! | REFUSED, another error code, truncated even over TCP (or the TCP retry failed: a partial UDP answer is never used), malformed answer, socket error, invalid name | `Other`, with the reason in words |
//!
//! # Counting
//!
//! [`DnsResolver::queries_sent`] counts the DNS messages this resolver actually put on the wire: every UDP datagram
//! (hickory retransmits a UDP query after ~333 ms without an answer, each one counts) and every query written on a
//! TCP connection. It is measured at the socket (a counting hickory `RuntimeProvider`), so it matches what the
//! server receives (the dnsmasq tests check it against dnsmasq's query log).

use crate::plan::DnsResult;
use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::lookup::Lookup;
use hickory_resolver::net::{DnsError, NetError, NoRecords};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::rdata::CNAME;
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use hickory_resolver::{Resolver, system_conf};
use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The host's resolver configuration, read by [`DnsResolver::from_system`].
pub const RESOLV_CONF: &str = "/etc/resolv.conf";
/// The DNS port, when `--nameserver` names none.
pub const DNS_PORT: u16 = 53;
/// Default time for one attempt (the whole exchange: UDP retransmissions, TCP fallback, every server).
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default number of attempts per lookup.
pub const DEFAULT_ATTEMPTS: u32 = 2;
/// Added to `per_attempt × attempts` for the hard cut-off of one lookup ([`DnsTimeouts::bound`]).
const BOUND_SLACK: Duration = Duration::from_millis(500);

/// How long one lookup may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnsTimeouts {
    /// Time for one attempt.
    pub per_attempt: Duration,
    /// Attempts per lookup (at least one is always made).
    pub attempts: u32,
}

impl Default for DnsTimeouts {
    fn default() -> Self {
        DnsTimeouts {
            per_attempt: DEFAULT_ATTEMPT_TIMEOUT,
            attempts: DEFAULT_ATTEMPTS,
        }
    }
}

impl DnsTimeouts {
    /// The longest a lookup takes before it reports [`DnsResult::Timeout`]: `per_attempt × attempts` plus 0.5 s.
    pub fn bound(&self) -> Duration {
        self.per_attempt
            .saturating_mul(self.attempts.max(1))
            .saturating_add(BOUND_SLACK)
    }
}

/// DNS messages sent so far, by transport.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueryCounts {
    /// UDP datagrams (retransmissions included).
    pub udp: u64,
    /// Queries written on TCP connections.
    pub tcp: u64,
}

impl QueryCounts {
    /// Both transports together.
    pub fn total(&self) -> u64 {
        self.udp.saturating_add(self.tcp)
    }
}

/// Why a resolver could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum DnsSetupError {
    #[error(
        "cannot read {}: {source} — hint: the host has no resolver configuration; fix it, or pass --nameserver IP[:PORT]",
        path.display()
    )]
    ReadResolvConf {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{} lists no name server — hint: add a `nameserver IP` line, or pass --nameserver IP[:PORT]",
        path.display()
    )]
    NoNameServers { path: PathBuf },
    #[error("cannot parse {}: {message} — hint: see resolv.conf(5), or pass --nameserver IP[:PORT]", path.display())]
    InvalidResolvConf { path: PathBuf, message: String },
    #[error(
        "invalid name server {given:?}: {reason} — hint: give IP or IP:PORT, e.g. 10.0.0.2, 10.0.0.2:5353, [fd00::2]:53"
    )]
    InvalidNameServer { given: String, reason: String },
    #[error("no name server given — hint: pass --nameserver IP[:PORT]")]
    NoNameServerGiven,
    #[error("cannot set up the DNS resolver: {message}")]
    Build { message: String },
}

/// Parses the `--nameserver` flag: `IP` (port 53) or `IP:PORT` (`[IPv6]:PORT` for IPv6).
pub fn parse_nameserver(given: &str) -> Result<SocketAddr, DnsSetupError> {
    let invalid = |reason: &str| DnsSetupError::InvalidNameServer {
        given: given.to_string(),
        reason: reason.to_string(),
    };
    let trimmed = given.trim();
    let addr = if let Ok(ip) = trimmed.parse::<IpAddr>() {
        SocketAddr::new(ip, DNS_PORT)
    } else if let Ok(addr) = trimmed.parse::<SocketAddr>() {
        addr
    } else {
        return Err(invalid(
            "not an IP address or IP:PORT (names are not accepted: they would need DNS)",
        ));
    };
    if addr.port() == 0 {
        return Err(invalid("port 0"));
    }
    if addr.ip().is_unspecified() || addr.ip().is_multicast() {
        return Err(invalid("not a unicast address"));
    }
    Ok(addr)
}

/// A resolver for the agent's A lookups. Cheap to keep: it holds only the name servers, the timeouts and the
/// counters; each [`lookup_a`](DnsResolver::lookup_a) builds its own hickory resolver.
pub struct DnsResolver {
    name_servers: Vec<NameServerConfig>,
    timeouts: DnsTimeouts,
    counters: Arc<counting::Counters>,
}

impl std::fmt::Debug for DnsResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsResolver")
            .field("name_servers", &self.name_servers())
            .field("timeouts", &self.timeouts)
            .field("queries", &self.query_counts())
            .finish()
    }
}

impl DnsResolver {
    /// The host's name servers, from `/etc/resolv.conf`, with the default timeouts.
    pub fn from_system() -> Result<DnsResolver, DnsSetupError> {
        DnsResolver::from_resolv_conf(Path::new(RESOLV_CONF), DnsTimeouts::default())
    }

    /// The name servers of a resolv.conf file (only its `nameserver` lines are used).
    pub fn from_resolv_conf(
        path: &Path,
        timeouts: DnsTimeouts,
    ) -> Result<DnsResolver, DnsSetupError> {
        let data = std::fs::read(path).map_err(|source| DnsSetupError::ReadResolvConf {
            path: path.to_path_buf(),
            source,
        })?;
        let has_nameserver_line = String::from_utf8_lossy(&data)
            .lines()
            .any(|line| line.split_whitespace().next() == Some("nameserver"));
        if !has_nameserver_line {
            return Err(DnsSetupError::NoNameServers {
                path: path.to_path_buf(),
            });
        }
        let (config, _options) = system_conf::parse_resolv_conf(&data).map_err(|e| {
            DnsSetupError::InvalidResolvConf {
                path: path.to_path_buf(),
                message: e.to_string(),
            }
        })?;
        let (_domain, _search, name_servers) = config.into_parts();
        if name_servers.is_empty() {
            return Err(DnsSetupError::NoNameServers {
                path: path.to_path_buf(),
            });
        }
        DnsResolver::new(name_servers, timeouts)
    }

    /// One name server (the `--nameserver` flag, tests), with the default timeouts.
    pub fn with_nameserver(addr: SocketAddr) -> Result<DnsResolver, DnsSetupError> {
        DnsResolver::with_nameservers(&[addr], DnsTimeouts::default())
    }

    /// Explicit name servers (with several, two are asked at once: see the module documentation).
    pub fn with_nameservers(
        addrs: &[SocketAddr],
        timeouts: DnsTimeouts,
    ) -> Result<DnsResolver, DnsSetupError> {
        if addrs.is_empty() {
            return Err(DnsSetupError::NoNameServerGiven);
        }
        let name_servers = addrs
            .iter()
            .map(|addr| {
                let mut server = NameServerConfig::udp_and_tcp(addr.ip());
                for connection in &mut server.connections {
                    connection.port = addr.port();
                }
                server
            })
            .collect();
        DnsResolver::new(name_servers, timeouts)
    }

    fn new(
        name_servers: Vec<NameServerConfig>,
        timeouts: DnsTimeouts,
    ) -> Result<DnsResolver, DnsSetupError> {
        let resolver = DnsResolver {
            name_servers,
            timeouts,
            counters: Arc::default(),
        };
        // Build one hickory resolver now so a configuration it rejects is reported at start-up, not per lookup.
        let runtime = counting::CountingRuntime::new(resolver.counters.clone());
        resolver.build(runtime).map_err(|e| DnsSetupError::Build {
            message: e.to_string(),
        })?;
        Ok(resolver)
    }

    /// The name servers asked (address and port, as configured).
    pub fn name_servers(&self) -> Vec<SocketAddr> {
        self.name_servers
            .iter()
            .map(|server| {
                let port = server.connections.first().map_or(DNS_PORT, |c| c.port);
                SocketAddr::new(server.ip, port)
            })
            .collect()
    }

    /// The timeouts of every lookup.
    pub fn timeouts(&self) -> DnsTimeouts {
        self.timeouts
    }

    /// A fresh lookup of `name`'s A records (see the module documentation for what each result means).
    pub async fn lookup_a(&self, name: &str) -> DnsResult {
        let fqdn = match fqdn(name) {
            Ok(fqdn) => fqdn,
            Err(message) => return DnsResult::Other { message },
        };
        let runtime = counting::CountingRuntime::new(self.counters.clone());
        let resolver = match self.build(runtime.clone()) {
            Ok(resolver) => resolver,
            Err(e) => {
                return DnsResult::Other {
                    message: format!("cannot set up the DNS resolver: {e}"),
                };
            }
        };
        let outcome = tokio::time::timeout(
            self.timeouts.bound(),
            resolver.lookup(fqdn.clone(), RecordType::A),
        )
        .await;
        drop(resolver);
        // Close the lookup's TCP connections now, not whenever the runtime gets round to dropping the aborted
        // background tasks that hold them.
        runtime.close_tcp_connections();
        let result = match outcome {
            Ok(outcome) => map_outcome(&fqdn, outcome),
            Err(_elapsed) => DnsResult::Timeout,
        };
        tracing::debug!(name, result = %result.describe(), queries = self.queries_sent(), "DNS A lookup");
        result
    }

    /// DNS messages sent so far by this resolver (both transports, retransmissions included).
    pub fn queries_sent(&self) -> u64 {
        self.query_counts().total()
    }

    /// DNS messages sent so far, by transport.
    pub fn query_counts(&self) -> QueryCounts {
        self.counters.snapshot()
    }

    fn build(
        &self,
        runtime: counting::CountingRuntime,
    ) -> Result<Resolver<counting::CountingRuntime>, NetError> {
        let config = ResolverConfig::from_parts(None, Vec::new(), self.name_servers.clone());
        Resolver::builder_with_config(config, runtime)
            .with_options(resolver_options(self.timeouts))
            .build()
    }
}

/// hickory's options for one lookup.
fn resolver_options(timeouts: DnsTimeouts) -> ResolverOpts {
    let mut opts = ResolverOpts::default();
    opts.timeout = timeouts.per_attempt;
    // hickory's `attempts` counts retries after the first try.
    opts.attempts = usize::try_from(timeouts.attempts.max(1) - 1).unwrap_or(0);
    // Every lookup builds a fresh resolver; no cache on top of that.
    opts.cache_size = 0;
    opts.use_hosts_file = ResolveHosts::Never;
    // Names are made fully qualified before the lookup; ndots then plays no part.
    opts.ndots = 1;
    opts.edns0 = true;
    // Two servers at once (with several): a dead one costs no timeout (see the module documentation).
    opts.num_concurrent_reqs = 2;
    opts.try_tcp_on_error = false;
    opts.recursion_desired = true;
    opts.case_randomization = false;
    opts
}

/// `name` as a fully qualified DNS name.
fn fqdn(name: &str) -> Result<Name, String> {
    let trimmed = name.trim();
    if trimmed.is_empty() || trimmed == "." {
        return Err(format!("invalid DNS name {name:?}: empty"));
    }
    let mut parsed =
        Name::from_ascii(trimmed).map_err(|e| format!("invalid DNS name {name:?}: {e}"))?;
    parsed.set_fqdn(true);
    Ok(parsed)
}

/// Maps hickory's outcome of an A lookup of `name`.
fn map_outcome(name: &Name, outcome: Result<Lookup, NetError>) -> DnsResult {
    match outcome {
        Ok(lookup) => {
            let (records, cname_loop) = records_of(name, lookup.answers());
            match (answers_from_records(&records), cname_loop) {
                (DnsResult::NoRecords { .. }, Some(chain)) => DnsResult::Other {
                    message: format!(
                        "{name} is a CNAME loop ({chain}) — the zone is misconfigured; hint: fix the CNAME \
                         records so the chain ends at A records"
                    ),
                },
                (result, _) => result,
            }
        }
        // hickory follows CNAMEs itself; when it gives up on another name than the one asked (a loop, a chain longer
        // than it follows, a target without A records), that is the zone's mistake, not "not registered yet".
        Err(NetError::Dns(DnsError::NoRecordsFound(no_records)))
            if no_records.response_code == ResponseCode::NoError
                && no_records.query.name() != name =>
        {
            DnsResult::Other {
                message: format!(
                    "{name} leads through CNAME records to {}, which has no A records: a CNAME loop, a chain \
                     longer than the resolver follows, or a CNAME to a name without addresses — the zone is \
                     misconfigured; hint: fix the CNAME records so the chain ends at A records",
                    no_records.query.name()
                ),
            }
        }
        Err(error) => map_error(&error),
    }
}

/// The records of an answer that belong to `name`: its own, and those of the names its CNAME chain leads to.
/// hickory passes on the answer section as the server sent it once the asked name is found in the message, so
/// records of other names can be in it (a broken or forged answer: `masters.prod.k8s` answered with A records of
/// `evil.example` too); they are not addresses of `name`, and their TTLs do not count. A CNAME loop ends the chain
/// (each name is taken once) and is returned too, written out (`a → b → a`); linear in the number of records,
/// however long the chain.
fn records_of(name: &Name, records: &[Record]) -> (Vec<Record>, Option<String>) {
    let cnames: HashMap<&Name, &Name> = records
        .iter()
        .filter_map(|record| match &record.data {
            RData::CNAME(CNAME(target)) => Some((&record.name, target)),
            _ => None,
        })
        .collect();
    let mut chain = HashSet::from([name]);
    let mut order = vec![name];
    let mut cname_loop = None;
    let mut current = name;
    while let Some(&target) = cnames.get(current) {
        order.push(target);
        if !chain.insert(target) {
            let names: Vec<String> = order.iter().map(|n| n.to_string()).collect();
            cname_loop = Some(names.join(" → "));
            break;
        }
        current = target;
    }
    let own = records
        .iter()
        .filter(|record| chain.contains(&record.name))
        .cloned()
        .collect();
    (own, cname_loop)
}

/// The A records of an answer, with the smallest TTL of the records that make up the answer (A and any CNAME
/// leading to them). An answer without A records is an empty answer.
fn answers_from_records(records: &[Record]) -> DnsResult {
    let mut addrs = Vec::new();
    let mut ttl: Option<u32> = None;
    for record in records {
        match &record.data {
            RData::A(a) => {
                let v4: Ipv4Addr = a.0;
                addrs.push(IpAddr::V4(v4));
                ttl = Some(ttl.map_or(record.ttl, |t| t.min(record.ttl)));
            }
            RData::CNAME(_) => ttl = Some(ttl.map_or(record.ttl, |t| t.min(record.ttl))),
            _ => {}
        }
    }
    if addrs.is_empty() {
        return DnsResult::NoRecords {
            negative_ttl_secs: None,
        };
    }
    DnsResult::Answers {
        addrs,
        ttl_secs: ttl.unwrap_or(0),
    }
}

/// Maps hickory's error of an A lookup.
fn map_error(error: &NetError) -> DnsResult {
    match error {
        NetError::Dns(DnsError::NoRecordsFound(no_records)) => map_no_records(no_records),
        NetError::Dns(DnsError::ResponseCode(code)) => map_response_code(*code),
        NetError::Timeout => DnsResult::Timeout,
        NetError::Io(io_error) if io_error.kind() == io::ErrorKind::TimedOut => DnsResult::Timeout,
        NetError::Io(io_error) => DnsResult::Other {
            message: format!("cannot talk to the name server: {io_error}"),
        },
        NetError::Truncated => DnsResult::Other {
            message:
                "the answer was truncated over UDP and the TCP retry failed or was truncated too"
                    .to_string(),
        },
        NetError::NoConnections => DnsResult::Other {
            message: "no name server could be used".to_string(),
        },
        NetError::Proto(proto) => DnsResult::Other {
            message: format!("malformed DNS answer: {proto}"),
        },
        other => DnsResult::Other {
            message: format!("DNS lookup failed: {other}"),
        },
    }
}

fn map_no_records(no_records: &NoRecords) -> DnsResult {
    let negative_ttl_secs = no_records.negative_ttl;
    match no_records.response_code {
        ResponseCode::NXDomain => DnsResult::NxDomain { negative_ttl_secs },
        ResponseCode::NoError => DnsResult::NoRecords { negative_ttl_secs },
        code => map_response_code(code),
    }
}

fn map_response_code(code: ResponseCode) -> DnsResult {
    match code {
        ResponseCode::ServFail => DnsResult::ServFail,
        ResponseCode::Refused => DnsResult::Other {
            message: "the name server refused the query (REFUSED)".to_string(),
        },
        // Not expected here (hickory reports these as "no records"), but mapped the same way if they come.
        ResponseCode::NXDomain => DnsResult::NxDomain {
            negative_ttl_secs: None,
        },
        ResponseCode::NoError => DnsResult::NoRecords {
            negative_ttl_secs: None,
        },
        code => DnsResult::Other {
            message: format!("the name server answered {code}"),
        },
    }
}

/// A hickory runtime that counts what goes on the wire.
mod counting {
    use super::QueryCounts;
    use hickory_resolver::net::runtime::iocompat::AsyncIoTokioAsStd;
    use hickory_resolver::net::runtime::{
        DnsUdpSocket, RuntimeProvider, TokioHandle, TokioRuntimeProvider, TokioTime,
    };
    use hickory_resolver::proto::op::{Header, Query};
    use hickory_resolver::proto::serialize::binary::{BinDecodable, BinDecoder};
    use std::future::Future;
    use std::io;
    use std::net::{Shutdown, SocketAddr};
    use std::pin::Pin;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex, PoisonError};
    use std::task::{Context, Poll};
    use std::time::Duration;
    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

    #[derive(Debug, Default)]
    pub(super) struct Counters {
        udp: AtomicU64,
        tcp: AtomicU64,
    }

    impl Counters {
        pub(super) fn snapshot(&self) -> QueryCounts {
            QueryCounts {
                udp: self.udp.load(Ordering::Relaxed),
                tcp: self.tcp.load(Ordering::Relaxed),
            }
        }
    }

    /// Tokio's runtime provider with counting sockets. A new one (with its own task set: dropping the last clone
    /// aborts the resolver's background tasks) per hickory resolver, i.e. per lookup.
    #[derive(Clone)]
    pub(super) struct CountingRuntime {
        inner: TokioRuntimeProvider,
        counters: Arc<Counters>,
        /// A duplicate (`dup(2)`) of every TCP connection made, to shut them down when the lookup is over.
        tcp_connections: Arc<Mutex<Vec<std::net::TcpStream>>>,
    }

    impl CountingRuntime {
        pub(super) fn new(counters: Arc<Counters>) -> Self {
            CountingRuntime {
                inner: TokioRuntimeProvider::new(),
                counters,
                tcp_connections: Arc::default(),
            }
        }

        /// Shuts down (both directions) every TCP connection this runtime made: the server sees them closed at
        /// once, whatever task still holds the stream.
        pub(super) fn close_tcp_connections(&self) {
            let mut connections = self
                .tcp_connections
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for connection in connections.drain(..) {
                let _ = connection.shutdown(Shutdown::Both);
            }
        }
    }

    type BoxedConnect<T> = Pin<Box<dyn Send + Future<Output = Result<T, io::Error>>>>;

    impl RuntimeProvider for CountingRuntime {
        type Handle = TokioHandle;
        type Timer = TokioTime;
        type Udp = CountingUdp;
        type Tcp = AsyncIoTokioAsStd<CountingTcp>;

        fn create_handle(&self) -> Self::Handle {
            self.inner.create_handle()
        }

        fn connect_tcp(
            &self,
            server_addr: SocketAddr,
            bind_addr: Option<SocketAddr>,
            timeout: Option<Duration>,
        ) -> BoxedConnect<Self::Tcp> {
            let connect = self.inner.connect_tcp(server_addr, bind_addr, timeout);
            let counters = self.counters.clone();
            let connections = self.tcp_connections.clone();
            Box::pin(async move {
                let AsyncIoTokioAsStd(stream) = connect.await?;
                let stream = stream.into_std()?;
                let duplicate = stream.try_clone()?;
                let stream = tokio::net::TcpStream::from_std(stream)?;
                connections
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(duplicate);
                Ok(AsyncIoTokioAsStd(CountingTcp {
                    stream,
                    counters,
                    frames: TcpFrameCounter::default(),
                }))
            })
        }

        fn bind_udp(
            &self,
            local_addr: SocketAddr,
            server_addr: SocketAddr,
        ) -> BoxedConnect<Self::Udp> {
            let bind = self.inner.bind_udp(local_addr, server_addr);
            let counters = self.counters.clone();
            Box::pin(async move {
                let socket = bind.await?;
                Ok(CountingUdp { socket, counters })
            })
        }
    }

    /// A UDP socket counting the datagrams it sends.
    pub(super) struct CountingUdp {
        socket: tokio::net::UdpSocket,
        counters: Arc<Counters>,
    }

    impl DnsUdpSocket for CountingUdp {
        type Time = TokioTime;

        fn poll_recv_from(
            &self,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<(usize, SocketAddr)>> {
            // One byte more than hickory reads: a datagram that fills it did not fit (the kernel drops the rest).
            let mut datagram = vec![0; buf.len().saturating_add(1)];
            let mut read_buf = ReadBuf::new(&mut datagram);
            let from = std::task::ready!(self.socket.poll_recv_from(cx, &mut read_buf))?;
            let received = read_buf.filled();
            let len = if received.len() > buf.len() {
                truncated_form(received, buf)
            } else {
                copy_into(received, buf)
            };
            Poll::Ready(Ok((len, from)))
        }

        fn poll_send_to(
            &self,
            cx: &mut Context<'_>,
            buf: &[u8],
            target: SocketAddr,
        ) -> Poll<io::Result<usize>> {
            let sent = self.socket.poll_send_to(cx, buf, target);
            if let Poll::Ready(Ok(_)) = sent {
                self.counters.udp.fetch_add(1, Ordering::Relaxed);
            }
            sent
        }
    }

    /// What hickory gets of a UDP answer larger than its receive buffer (a server that ignored the payload size the
    /// query announced, e.g. sending a whole 150-record answer with TC set): the header and question with TC set and
    /// no records, as a compliant server truncates, so that hickory retries over TCP instead of failing on a record
    /// cut in half ("malformed DNS answer"). The ID and question are kept, so hickory's checks of them still apply.
    /// If the question cannot be read, the bytes that fit, as they came (hickory then reports them malformed).
    fn truncated_form(datagram: &[u8], buf: &mut [u8]) -> usize {
        let header_and_question = question_end(datagram).and_then(|end| datagram.get(..end));
        match header_and_question {
            Some(kept) if kept.len() <= buf.len() => {
                let len = copy_into(kept, buf);
                if let Some(flags) = buf.get_mut(2) {
                    *flags |= 0x02; // TC
                }
                if let Some(counts) = buf.get_mut(6..12) {
                    counts.fill(0); // ANCOUNT, NSCOUNT, ARCOUNT
                }
                len
            }
            _ => copy_into(datagram, buf),
        }
    }

    /// Where the question section of a DNS message ends.
    fn question_end(message: &[u8]) -> Option<usize> {
        let mut decoder = BinDecoder::new(message);
        let header = Header::read(&mut decoder).ok()?;
        for _ in 0..header.counts.queries {
            Query::read(&mut decoder).ok()?;
        }
        Some(decoder.index())
    }

    /// Copies as much of `from` as fits into `to`; returns the length copied.
    fn copy_into(from: &[u8], to: &mut [u8]) -> usize {
        let len = from.len().min(to.len());
        if let (Some(to), Some(from)) = (to.get_mut(..len), from.get(..len)) {
            to.copy_from_slice(from);
        }
        len
    }

    /// A TCP stream counting the DNS messages written on it (RFC 1035 §4.2.2 framing: a 2-byte length, then the
    /// message).
    pub(super) struct CountingTcp {
        stream: tokio::net::TcpStream,
        counters: Arc<Counters>,
        frames: TcpFrameCounter,
    }

    impl AsyncRead for CountingTcp {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Pin::new(&mut self.stream).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for CountingTcp {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            let written = Pin::new(&mut this.stream).poll_write(cx, buf);
            if let Poll::Ready(Ok(n)) = written {
                let started = this.frames.feed(buf.get(..n).unwrap_or(buf));
                if started > 0 {
                    this.counters.tcp.fetch_add(started, Ordering::Relaxed);
                }
            }
            written
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.stream).poll_flush(cx)
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.stream).poll_shutdown(cx)
        }
    }

    /// Follows the length-prefixed framing of a TCP DNS stream, however the bytes are split into writes.
    #[derive(Debug, Default)]
    pub(super) struct TcpFrameCounter {
        header: [u8; 2],
        header_len: usize,
        remaining: usize,
    }

    impl TcpFrameCounter {
        /// Feeds written bytes; returns how many messages started (their length prefix completed) in them.
        pub(super) fn feed(&mut self, mut bytes: &[u8]) -> u64 {
            let mut started = 0;
            while !bytes.is_empty() {
                if self.remaining > 0 {
                    let take = self.remaining.min(bytes.len());
                    self.remaining -= take;
                    bytes = bytes.get(take..).unwrap_or_default();
                    continue;
                }
                if let (Some(slot), Some((&first, rest))) =
                    (self.header.get_mut(self.header_len), bytes.split_first())
                {
                    *slot = first;
                    self.header_len += 1;
                    bytes = rest;
                }
                if self.header_len == 2 {
                    self.remaining = usize::from(u16::from_be_bytes(self.header));
                    self.header_len = 0;
                    started += 1;
                }
            }
            started
        }
    }

    #[cfg(test)]
    mod tests {
        use super::TcpFrameCounter;

        fn frame(len: u16) -> Vec<u8> {
            let mut bytes = len.to_be_bytes().to_vec();
            bytes.extend(std::iter::repeat_n(0xAB, usize::from(len)));
            bytes
        }

        #[test]
        fn counts_messages_however_they_are_split() {
            let mut stream = frame(33);
            stream.extend(frame(300));
            stream.extend(frame(1));
            for chunk in [1, 2, 3, 7, 64, 1000] {
                let mut counter = TcpFrameCounter::default();
                let total: u64 = stream.chunks(chunk).map(|c| counter.feed(c)).sum();
                assert_eq!(total, 3, "chunk size {chunk}");
            }
            let mut counter = TcpFrameCounter::default();
            assert_eq!(counter.feed(&stream), 3);
        }

        #[test]
        fn length_prefix_and_message_in_separate_writes() {
            let mut counter = TcpFrameCounter::default();
            assert_eq!(counter.feed(&40u16.to_be_bytes()), 1);
            assert_eq!(counter.feed(&[0; 40]), 0);
            assert_eq!(counter.feed(&[0]), 0);
            assert_eq!(counter.feed(&[5, 1, 2, 3, 4, 5]), 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_resolver::proto::op::Query;
    use hickory_resolver::proto::rr::rdata::{A, AAAA, CNAME};
    use std::str::FromStr;

    fn name(s: &str) -> Name {
        Name::from_str(s).expect("test name")
    }

    fn a(owner: &str, ttl: u32, ip: [u8; 4]) -> Record {
        Record::from_rdata(
            name(owner),
            ttl,
            RData::A(A::new(ip[0], ip[1], ip[2], ip[3])),
        )
    }

    fn no_records(code: ResponseCode, negative_ttl: Option<u32>) -> NetError {
        let mut no_records =
            NoRecords::new(Query::query(name("masters.prod.k8s."), RecordType::A), code);
        no_records.negative_ttl = negative_ttl;
        NetError::Dns(DnsError::NoRecordsFound(no_records))
    }

    #[test]
    fn every_a_record_with_the_smallest_ttl() {
        let records = [
            a("minions.prod.k8s.", 30, [10, 0, 1, 2]),
            a("minions.prod.k8s.", 10, [10, 0, 1, 1]),
            a("minions.prod.k8s.", 20, [10, 0, 1, 2]),
            Record::from_rdata(
                name("minions.prod.k8s."),
                1,
                RData::AAAA(AAAA::new(0xfd00, 0, 0, 0, 0, 0, 0, 1)),
            ),
        ];
        assert_eq!(
            answers_from_records(&records),
            DnsResult::Answers {
                // the server's order, duplicates kept (the core validates)
                addrs: vec![
                    "10.0.1.2".parse().expect("ip"),
                    "10.0.1.1".parse().expect("ip"),
                    "10.0.1.2".parse().expect("ip")
                ],
                ttl_secs: 10,
            }
        );
    }

    #[test]
    fn a_cname_chain_bounds_the_ttl() {
        let records = [
            Record::from_rdata(
                name("masters.prod.k8s."),
                5,
                RData::CNAME(CNAME(name("api.prod.k8s."))),
            ),
            a("api.prod.k8s.", 60, [10, 0, 0, 1]),
        ];
        assert_eq!(
            answers_from_records(&records),
            DnsResult::Answers {
                addrs: vec!["10.0.0.1".parse().expect("ip")],
                ttl_secs: 5
            }
        );
    }

    #[test]
    fn an_answer_without_a_records_is_empty() {
        assert_eq!(
            answers_from_records(&[]),
            DnsResult::NoRecords {
                negative_ttl_secs: None
            }
        );
        let only_cname = [Record::from_rdata(
            name("x.k8s."),
            5,
            RData::CNAME(CNAME(name("y.k8s."))),
        )];
        assert_eq!(
            answers_from_records(&only_cname),
            DnsResult::NoRecords {
                negative_ttl_secs: None
            }
        );
    }

    #[test]
    fn negative_answers_keep_their_ttl() {
        assert_eq!(
            map_error(&no_records(ResponseCode::NXDomain, Some(11))),
            DnsResult::NxDomain {
                negative_ttl_secs: Some(11)
            }
        );
        assert_eq!(
            map_error(&no_records(ResponseCode::NXDomain, None)),
            DnsResult::NxDomain {
                negative_ttl_secs: None
            }
        );
        assert_eq!(
            map_error(&no_records(ResponseCode::NoError, Some(7))),
            DnsResult::NoRecords {
                negative_ttl_secs: Some(7)
            }
        );
        assert_eq!(
            map_error(&no_records(ResponseCode::ServFail, None)),
            DnsResult::ServFail
        );
    }

    #[test]
    fn response_codes() {
        assert_eq!(
            map_error(&NetError::Dns(DnsError::ResponseCode(
                ResponseCode::ServFail
            ))),
            DnsResult::ServFail
        );
        let DnsResult::Other { message } = map_error(&NetError::Dns(DnsError::ResponseCode(
            ResponseCode::Refused,
        ))) else {
            panic!("REFUSED is Other");
        };
        assert!(message.contains("REFUSED"), "{message}");
        let DnsResult::Other { message } =
            map_error(&NetError::Dns(DnsError::ResponseCode(ResponseCode::NotImp)))
        else {
            panic!("NOTIMP is Other");
        };
        assert!(
            message.contains("Not Implemented") || message.contains("NotImp"),
            "{message}"
        );
    }

    #[test]
    fn timeouts_and_transport_errors() {
        assert_eq!(map_error(&NetError::Timeout), DnsResult::Timeout);
        assert_eq!(
            map_error(&NetError::from(io::Error::new(
                io::ErrorKind::TimedOut,
                "slow"
            ))),
            DnsResult::Timeout
        );
        let refused = NetError::from(io::Error::new(io::ErrorKind::ConnectionRefused, "refused"));
        assert!(
            matches!(map_error(&refused), DnsResult::Other { message } if message.contains("refused"))
        );
        assert!(
            matches!(map_error(&NetError::Truncated), DnsResult::Other { message } if message.contains("truncated"))
        );
        assert!(matches!(
            map_error(&NetError::NoConnections),
            DnsResult::Other { .. }
        ));
    }

    #[test]
    fn names_are_fully_qualified() {
        let parsed = fqdn("masters.prod.k8s").expect("valid");
        assert!(parsed.is_fqdn());
        assert_eq!(parsed.to_string(), "masters.prod.k8s.");
        assert_eq!(
            fqdn(" masters.prod.k8s. ").expect("valid").to_string(),
            "masters.prod.k8s."
        );
        for bad in ["", ".", "a..b", "exa mple.k8s"] {
            assert!(fqdn(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn nameserver_flag() {
        let cases = [
            ("10.0.0.2", "10.0.0.2:53"),
            ("10.0.0.2:5353", "10.0.0.2:5353"),
            (" 127.0.0.77:40000 ", "127.0.0.77:40000"),
            ("fd00::2", "[fd00::2]:53"),
            ("[fd00::2]:5353", "[fd00::2]:5353"),
        ];
        for (given, want) in cases {
            assert_eq!(parse_nameserver(given).expect(given).to_string(), want);
        }
        for bad in [
            "",
            "dns.example",
            "10.0.0.2:0",
            "10.0.0.2:99999",
            "0.0.0.0",
            "224.0.0.1:53",
            "fd00::2:53:1x",
        ] {
            let error = parse_nameserver(bad).expect_err(bad);
            assert!(error.to_string().contains("hint"), "{error}");
        }
    }

    #[test]
    fn options_bound_every_lookup() {
        let timeouts = DnsTimeouts {
            per_attempt: Duration::from_millis(300),
            attempts: 3,
        };
        let opts = resolver_options(timeouts);
        assert_eq!(opts.timeout, Duration::from_millis(300));
        assert_eq!(opts.attempts, 2, "hickory counts retries");
        assert_eq!(opts.cache_size, 0);
        assert_eq!(opts.use_hosts_file, ResolveHosts::Never);
        assert_eq!(timeouts.bound(), Duration::from_millis(1400));
        assert_eq!(
            resolver_options(DnsTimeouts {
                per_attempt: Duration::from_secs(1),
                attempts: 0
            })
            .attempts,
            0
        );
        assert_eq!(DnsTimeouts::default().bound(), Duration::from_millis(4500));
    }

    #[test]
    fn resolv_conf_errors_say_what_to_do() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("resolv.conf");
        let error =
            DnsResolver::from_resolv_conf(&missing, DnsTimeouts::default()).expect_err("missing");
        assert!(
            matches!(error, DnsSetupError::ReadResolvConf { .. }),
            "{error:?}"
        );
        let text = error.to_string();
        assert!(
            text.starts_with(&format!("cannot read {}", missing.display()))
                && text.contains("--nameserver"),
            "{text}"
        );

        std::fs::write(&missing, "# managed elsewhere\nsearch example.com\n").expect("write");
        let error =
            DnsResolver::from_resolv_conf(&missing, DnsTimeouts::default()).expect_err("empty");
        assert!(
            matches!(error, DnsSetupError::NoNameServers { .. }),
            "{error:?}"
        );
        assert!(
            error.to_string().contains("lists no name server"),
            "{error}"
        );
    }

    #[test]
    fn resolv_conf_name_servers_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("resolv.conf");
        std::fs::write(&path, "search corp.example\noptions ndots:5 timeout:30 attempts:5\nnameserver 10.0.0.2\nnameserver fd00::53\n")
            .expect("write");
        let resolver = DnsResolver::from_resolv_conf(&path, DnsTimeouts::default()).expect("valid");
        assert_eq!(
            resolver.name_servers(),
            vec![
                "10.0.0.2:53".parse::<SocketAddr>().expect("addr"),
                "[fd00::53]:53".parse().expect("addr")
            ]
        );
        assert_eq!(
            resolver.timeouts(),
            DnsTimeouts::default(),
            "resolv.conf options are not used"
        );
        assert_eq!(resolver.queries_sent(), 0);
    }

    #[test]
    fn explicit_name_servers() {
        let addr: SocketAddr = "127.0.0.77:40053".parse().expect("addr");
        let resolver = DnsResolver::with_nameserver(addr).expect("valid");
        assert_eq!(resolver.name_servers(), vec![addr]);
        assert!(matches!(
            DnsResolver::with_nameservers(&[], DnsTimeouts::default()),
            Err(DnsSetupError::NoNameServerGiven)
        ));
    }

    #[tokio::test]
    async fn an_invalid_name_sends_nothing() {
        let resolver =
            DnsResolver::with_nameserver("127.0.0.77:40053".parse().expect("addr")).expect("valid");
        assert!(
            matches!(resolver.lookup_a("a..b").await, DnsResult::Other { message } if message.contains("invalid DNS name"))
        );
        assert_eq!(resolver.queries_sent(), 0);
    }
}
