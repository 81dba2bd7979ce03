//! RFC 2136 UPDATE on the wire (edge): reads the TSIG key file, finds the address this node reaches the server
//! from, and adds (or deletes) its A record in each configured name with a TSIG-signed UPDATE. What to register,
//! the key file's syntax and what a refusal means are pure ([`crate::pure::dns_update`]).
//!
//! The messages and their signatures are hickory's (`hickory_proto::op::update_message`, `TSigner`,
//! `TSigVerifier`); the exchange (UDP, TCP when truncated) is here rather than in hickory's client because that
//! client turns an unsigned refusal (BIND answers a bad key with an unsigned NOTAUTH + TSIG error BADSIG/BADKEY)
//! into a bare "verification failed" and the operator would lose the reason. A success is only believed when its
//! TSIG verifies; a refusal cannot be verified (the server could not sign it) and is reported as what it says.
//! Responses are read with a bounded buffer, answers with another ID are ignored, each exchange has a deadline.

use crate::plan::{DnsRegistration, DnsUpdateOutcome};
use crate::pure::dns_update::{self, DnsUpdateConfig, KeyFileProblem, TsigAlgorithmName, TsigKey};
use hickory_proto::op::{Message, ResponseCode, update_message};
use hickory_proto::rr::rdata::tsig::{TsigAlgorithm, TsigError};
use hickory_proto::rr::{Name, RData, Record, RecordSet, TSigner, rdata::A};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long one UPDATE exchange may take (UDP and the TCP retry together).
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);
/// TSIG fudge: how far the server's clock may be from ours (BIND's default check is 300 s).
const FUDGE_SECS: u16 = 300;
/// The largest response read (a TSIG-signed UPDATE answer is ~150 bytes).
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Adds this node's address to every configured record. `root` is the node root the key file is under.
pub async fn register(root: &Path, update: &DnsUpdateConfig) -> DnsUpdateOutcome {
    let key = match read_key(root, update) {
        Ok(key) => key,
        Err(problem) => return DnsUpdateOutcome::KeyFile { problem },
    };
    let address = match source_address(update.server) {
        Ok(IpAddr::V4(v4)) => v4,
        Ok(IpAddr::V6(v6)) => {
            return DnsUpdateOutcome::Unreachable {
                message: format!(
                    "this node reaches {} from the IPv6 address {v6}, and the records are A records (IPv4) — \
                     use an IPv4 DNS_UPDATE_SERVER",
                    update.server
                ),
            };
        }
        Err(e) => {
            return DnsUpdateOutcome::Unreachable {
                message: format!("no route to {}: {e}", update.server),
            };
        }
    };
    let mut records = Vec::new();
    for name in &update.records {
        let message = match build(update, name.as_str(), address, Change::Add) {
            Ok(m) => m,
            Err(message) => return DnsUpdateOutcome::Unreachable { message },
        };
        if let Err(outcome) = exchange(update.server, &key, message).await {
            return outcome;
        }
        tracing::info!(record = %name, %address, server = %update.server, "registered in DNS");
        records.push(name.to_string());
    }
    DnsUpdateOutcome::Registered {
        address: IpAddr::V4(address),
        records,
    }
}

/// Deletes exactly what `registration` says was added (this address in those names). Returns one line per
/// record, or the first failure in words.
pub async fn deregister(
    root: &Path,
    update: &DnsUpdateConfig,
    registration: &DnsRegistration,
) -> Result<Vec<String>, String> {
    let key = read_key(root, update).map_err(|p| format!("cannot sign the DNS update: {p}"))?;
    let IpAddr::V4(address) = registration.address else {
        return Err(format!("{} is not an IPv4 address", registration.address));
    };
    let mut done = Vec::new();
    for name in &registration.records {
        let message = build(update, name, address, Change::Delete)?;
        exchange(update.server, &key, message)
            .await
            .map_err(|outcome| describe_failure(update, &outcome))?;
        tracing::info!(record = %name, %address, server = %update.server, "removed from DNS");
        done.push(format!(
            "removed {address} from {name} at {}",
            update.server
        ));
    }
    Ok(done)
}

/// A failed outcome as one sentence (for `dns-deregister`).
pub fn describe_failure(update: &DnsUpdateConfig, outcome: &DnsUpdateOutcome) -> String {
    match outcome {
        DnsUpdateOutcome::Registered { .. } => "done".to_string(),
        DnsUpdateOutcome::KeyFile { problem } => format!("cannot sign the DNS update: {problem}"),
        DnsUpdateOutcome::Refused { rcode, tsig_error } => format!(
            "{} refused it: {}",
            update.server,
            dns_update::explain_rcode(rcode, tsig_error.as_deref())
        ),
        DnsUpdateOutcome::Unreachable { message } => message.clone(),
    }
}

/// The key file, under `root`: a regular file, not readable by group or others, parsed.
fn read_key(root: &Path, update: &DnsUpdateConfig) -> Result<TsigKey, String> {
    use std::io::Read as _;
    use std::os::unix::fs::MetadataExt as _;
    let path = under_root(root, &update.key_file);
    let shown = update.key_file.display();
    let mut file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "the key file {shown} (DNS_UPDATE_TSIG_FILE) does not exist — write it from user data \
                 (write_files, permissions \"0600\")"
            ));
        }
        Err(e) => return Err(format!("cannot open the key file {shown}: {e}")),
    };
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot stat the key file {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("the key file {shown} is not a regular file"));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(format!(
            "the key file {shown} is readable by others (mode {:04o}) — make it 0600 (user data: permissions \
             \"0600\"); the agent does not use a key others can read",
            meta.mode() & 0o7777
        ));
    }
    let mut text = String::new();
    (&mut file)
        .take(dns_update::MAX_KEY_FILE_BYTES as u64 + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read the key file {shown}: {e}"))?;
    if text.len() > dns_update::MAX_KEY_FILE_BYTES {
        return Err(format!(
            "the key file {shown} is larger than {} bytes — it should hold one key",
            dns_update::MAX_KEY_FILE_BYTES
        ));
    }
    dns_update::parse_key_file(&text, &update.key_name, update.algorithm)
        .map_err(|p: KeyFileProblem| format!("the key file {shown}: {p}"))
}

fn under_root(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

/// The local address the kernel picks to reach `server` (what the node is known by there).
fn source_address(server: SocketAddr) -> std::io::Result<IpAddr> {
    let bind: SocketAddr = if server.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = std::net::UdpSocket::bind(bind)?;
    socket.connect(server)?;
    Ok(socket.local_addr()?.ip())
}

#[derive(Clone, Copy)]
enum Change {
    Add,
    Delete,
}

fn build(
    update: &DnsUpdateConfig,
    name: &str,
    address: std::net::Ipv4Addr,
    change: Change,
) -> Result<Message, String> {
    let zone = Name::from_ascii(format!("{}.", update.zone))
        .map_err(|e| format!("the zone {} is not a DNS name: {e}", update.zone))?;
    let owner = Name::from_ascii(format!("{name}."))
        .map_err(|e| format!("{name} is not a DNS name: {e}"))?;
    if !zone.zone_of(&owner) {
        // The role file check makes this impossible; hickory would assert.
        return Err(format!("{name} is not in the zone {}", update.zone));
    }
    let ttl = match change {
        Change::Add => update.ttl_secs,
        Change::Delete => 0,
    };
    let rrset = RecordSet::from(Record::from_rdata(owner, ttl, RData::A(A(address))));
    Ok(match change {
        Change::Add => update_message::append(rrset, zone, false, false),
        Change::Delete => update_message::delete_by_rdata(rrset, zone, false),
    })
}

fn tsig_algorithm(name: TsigAlgorithmName) -> TsigAlgorithm {
    match name {
        TsigAlgorithmName::HmacSha256 => TsigAlgorithm::HmacSha256,
        TsigAlgorithmName::HmacSha384 => TsigAlgorithm::HmacSha384,
        TsigAlgorithmName::HmacSha512 => TsigAlgorithm::HmacSha512,
    }
}

/// Signs `message`, sends it (UDP; TCP when the answer is truncated), and checks the answer: NOERROR with a TSIG
/// that verifies → `Ok`; an error code → `Refused`; anything else → `Unreachable`.
async fn exchange(
    server: SocketAddr,
    key: &TsigKey,
    mut message: Message,
) -> Result<(), DnsUpdateOutcome> {
    let unreachable = |message: String| DnsUpdateOutcome::Unreachable { message };
    let key_name = Name::from_ascii(format!("{}.", key.name))
        .map_err(|e| unreachable(format!("the key name {} is not a DNS name: {e}", key.name)))?;
    let signer = TSigner::new(
        key.secret().to_vec(),
        tsig_algorithm(key.algorithm),
        key_name,
        FUDGE_SECS,
    )
    .map_err(|e| unreachable(format!("cannot make a TSIG signer: {e}")))?;
    let id: u16 = rand_id();
    message.metadata.id = id;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let verifier = message
        .finalize(&signer, now)
        .map_err(|e| unreachable(format!("cannot sign the UPDATE: {e}")))?;
    let request = message
        .to_vec()
        .map_err(|e| unreachable(format!("cannot encode the UPDATE: {e}")))?;
    let bytes = tokio::time::timeout(EXCHANGE_TIMEOUT, send_receive(server, id, &request))
        .await
        .map_err(|_| {
            unreachable(format!(
                "no answer from {server} within {} s",
                EXCHANGE_TIMEOUT.as_secs()
            ))
        })?
        .map_err(unreachable)?;
    let response = Message::from_vec(&bytes)
        .map_err(|e| unreachable(format!("{server} sent an answer that is not DNS: {e}")))?;
    let rcode = response.metadata.response_code;
    let tsig_error = response
        .signature()
        .and_then(|r| r.data.error)
        .map(|e| match e {
            TsigError::BadSig => "BADSIG".to_string(),
            TsigError::BadKey => "BADKEY".to_string(),
            TsigError::BadTime => "BADTIME".to_string(),
            TsigError::BadTrunc => "BADTRUNC".to_string(),
            TsigError::Unknown(code) => format!("TSIG error {code}"),
        });
    if rcode != ResponseCode::NoError || tsig_error.is_some() {
        return Err(DnsUpdateOutcome::Refused {
            rcode: rcode_name(rcode),
            tsig_error,
        });
    }
    match verifier {
        Some(mut verifier) => verifier.verify(&bytes).map(|_| ()).map_err(|e| {
            unreachable(format!(
                "{server} answered NOERROR but its TSIG signature does not verify ({e}) — the answer is not \
                 trusted"
            ))
        }),
        None => Err(unreachable("the UPDATE was not signed".to_string())),
    }
}

fn rcode_name(rcode: ResponseCode) -> String {
    match rcode {
        ResponseCode::FormErr => "FORMERR".to_string(),
        ResponseCode::ServFail => "SERVFAIL".to_string(),
        ResponseCode::NXDomain => "NXDOMAIN".to_string(),
        ResponseCode::NotImp => "NOTIMP".to_string(),
        ResponseCode::Refused => "REFUSED".to_string(),
        ResponseCode::YXDomain => "YXDOMAIN".to_string(),
        ResponseCode::YXRRSet => "YXRRSET".to_string(),
        ResponseCode::NXRRSet => "NXRRSET".to_string(),
        ResponseCode::NotAuth => "NOTAUTH".to_string(),
        ResponseCode::NotZone => "NOTZONE".to_string(),
        other => format!("rcode {}", u16::from(other)),
    }
}

/// A message ID from the OS's random source (the answer must carry it back).
fn rand_id() -> u16 {
    let mut bytes = [0u8; 2];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
    u16::from_be_bytes(bytes)
}

/// UDP first; the answer with our ID (others are ignored); TCP when it is truncated.
async fn send_receive(server: SocketAddr, id: u16, request: &[u8]) -> Result<Vec<u8>, String> {
    let bind: SocketAddr = if server.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = tokio::net::UdpSocket::bind(bind)
        .await
        .map_err(|e| format!("cannot open a UDP socket: {e}"))?;
    socket
        .connect(server)
        .await
        .map_err(|e| format!("cannot reach {server}: {e}"))?;
    socket
        .send(request)
        .await
        .map_err(|e| format!("cannot send to {server}: {e}"))?;
    let mut buffer = vec![0u8; MAX_RESPONSE_BYTES];
    loop {
        let n = socket
            .recv(&mut buffer)
            .await
            .map_err(|e| format!("no answer from {server} over UDP: {e}"))?;
        let answer = &buffer[..n];
        if n < 12 || u16::from_be_bytes([answer[0], answer[1]]) != id {
            continue; // not the answer to this request (or not DNS): keep listening until the deadline
        }
        let truncated = answer[2] & 0x02 != 0;
        if !truncated {
            return Ok(answer.to_vec());
        }
        return send_receive_tcp(server, id, request).await;
    }
}

async fn send_receive_tcp(server: SocketAddr, id: u16, request: &[u8]) -> Result<Vec<u8>, String> {
    let mut stream = tokio::net::TcpStream::connect(server)
        .await
        .map_err(|e| format!("cannot connect to {server} over TCP: {e}"))?;
    let len = u16::try_from(request.len()).map_err(|_| "the UPDATE is too large".to_string())?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(request);
    stream
        .write_all(&framed)
        .await
        .map_err(|e| format!("cannot send to {server} over TCP: {e}"))?;
    let mut length = [0u8; 2];
    stream
        .read_exact(&mut length)
        .await
        .map_err(|e| format!("no answer from {server} over TCP: {e}"))?;
    let mut answer = vec![0u8; usize::from(u16::from_be_bytes(length))];
    stream
        .read_exact(&mut answer)
        .await
        .map_err(|e| format!("a short answer from {server} over TCP: {e}"))?;
    if answer.len() < 12 || u16::from_be_bytes([answer[0], answer[1]]) != id {
        return Err(format!("{server} answered another request over TCP"));
    }
    Ok(answer)
}
