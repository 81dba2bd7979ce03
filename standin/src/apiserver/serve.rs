//! The listener and the connections: a blocking std `TcpListener`, one thread per connection, rustls'
//! `StreamOwned` on top; one request per connection, bounded in size, time and number. Each request is one log
//! line: method, path (without the query), status, user (and why it was refused) — never a token or a key.

use super::api::{self, Server};
use super::http::{self, Framing, MAX_BODY_BYTES, MAX_HEAD_BYTES, Response};
use super::log;
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The whole exchange (TLS handshake and request head) must be done within this time.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Each write must make progress within this time.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// After answering, what the client still sends is read and dropped for at most this long (and at most
/// [`MAX_DRAIN_BYTES`]) before the socket is closed, so the close does not reset the answer away.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);
const MAX_DRAIN_BYTES: usize = 64 * 1024;
/// Connections served at once; more are closed at once.
const MAX_CONNECTIONS: usize = 64;
/// Linux's `EAFNOSUPPORT`: the kernel has no IPv6 (std has no `ErrorKind` for it).
const EAFNOSUPPORT: i32 = 97;
/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Opens the listening socket. An unspecified address (`0.0.0.0`, `::`) means every interface and address family,
/// as with the real kube-apiserver: a dual-stack `[::]` socket where IPv6 is available and not `bindv6only`, else
/// `0.0.0.0`.
pub fn listen(address: IpAddr, port: u16) -> Result<TcpListener, String> {
    let cannot = |at: SocketAddr, e: io::Error| format!("cannot listen on {at}: {e}");
    if address.is_unspecified() && dual_stack_possible() {
        let any6 = SocketAddr::from((Ipv6Addr::UNSPECIFIED, port));
        match TcpListener::bind(any6) {
            Ok(listener) => return Ok(listener),
            // No IPv6 on this host: IPv4 only.
            Err(e)
                if e.kind() == io::ErrorKind::AddrNotAvailable
                    || e.raw_os_error() == Some(EAFNOSUPPORT) => {}
            Err(e) => return Err(cannot(any6, e)),
        }
        let any4 = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
        return TcpListener::bind(any4).map_err(|e| cannot(any4, e));
    }
    let address = if address.is_unspecified() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        address
    };
    let at = SocketAddr::from((address, port));
    TcpListener::bind(at).map_err(|e| cannot(at, e))
}

/// Whether a `[::]` socket would take IPv4 connections too (Linux: `net.ipv6.bindv6only` is 0, the default).
fn dual_stack_possible() -> bool {
    match std::fs::read_to_string("/proc/sys/net/ipv6/bindv6only") {
        Ok(value) => value.trim() == "0",
        // No such file: no IPv6 at all (or not Linux); IPv4 only.
        Err(_) => false,
    }
}

/// Serves forever (until the process is killed).
pub fn serve(listener: &TcpListener, config: &Arc<ServerConfig>, server: &Arc<Server>) -> ! {
    let active = Arc::new(AtomicUsize::new(0));
    loop {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) => {
                // EMFILE and the like: wait a moment instead of spinning.
                log(&format!("accept failed: {e}"));
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        if active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            active.fetch_sub(1, Ordering::SeqCst);
            log(&format!(
                "more than {MAX_CONNECTIONS} connections at once; closing a new one"
            ));
            continue;
        }
        let guard = Active(active.clone());
        let config = config.clone();
        let server = server.clone();
        let spawned = std::thread::Builder::new()
            .name("connection".into())
            .spawn(move || {
                let _guard = guard;
                handle(stream, config, &server);
            });
        if let Err(e) = spawned {
            log(&format!("cannot start a connection thread: {e}"));
        }
    }
}

/// Counts a connection as active until dropped.
struct Active(Arc<AtomicUsize>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One connection: handshake, one request (head and body), one answer, close.
fn handle(stream: TcpStream, config: Arc<ServerConfig>, server: &Server) {
    let peer = stream
        .peer_addr()
        .map_or_else(|_| "an unknown peer".to_string(), |a| a.to_string());
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    if stream.set_read_timeout(Some(REQUEST_TIMEOUT)).is_err()
        || stream.set_write_timeout(Some(WRITE_TIMEOUT)).is_err()
    {
        return;
    }
    let _ = stream.set_nodelay(true);

    // A plain HTTP request on the TLS port gets a plain answer, as from Go's servers.
    let mut first = [0u8; 1];
    match stream.peek(&mut first) {
        Ok(1) if first[0] != TLS_HANDSHAKE_RECORD && first[0].is_ascii_alphabetic() => {
            let mut stream = stream;
            let _ = stream.write_all(http::PLAIN_HTTP_ON_TLS_PORT);
            log(&format!(
                "plain HTTP request from {peer} on the HTTPS port 400"
            ));
            linger_close(&stream);
            return;
        }
        Ok(1) => {}
        _ => return,
    }

    let connection = match ServerConnection::new(config) {
        Ok(c) => c,
        Err(e) => {
            log(&format!("cannot start TLS for {peer}: {e}"));
            return;
        }
    };
    let mut tls = StreamOwned::new(connection, stream);
    let Some(head) = read_head(&mut tls, deadline, &peer) else {
        return;
    };

    let (response, what) = match head {
        Head::TooLarge(_) => (http::head_too_large(), "request head too large".to_string()),
        Head::Complete(bytes, rest) => match http::parse_head(&bytes) {
            Some(mut request) => {
                let what = format!("{} {}", request.method, shorten(request.path()));
                match read_body(&mut tls, &request, rest, deadline) {
                    Ok(body) => {
                        request.body = body;
                        let chain: Option<Vec<rustls::pki_types::CertificateDer<'static>>> = tls
                            .conn
                            .peer_certificates()
                            .map(|c| c.iter().map(|c| c.clone().into_owned()).collect());
                        let handled = api::handle(server, &request, chain.as_deref());
                        let note = if handled.note.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", shorten(&handled.note.replace('\n', " ")))
                        };
                        let status = handled.response.status;
                        (
                            handled.response,
                            format!("{what} {status} user={:?}{note}", handled.user),
                        )
                    }
                    Err(status) => {
                        let e = if status == 413 {
                            super::status::too_large()
                        } else {
                            super::status::bad_request("the request body could not be read")
                        };
                        (
                            Response::json(e.code, &e.to_status()),
                            format!("{what} {status} (body)"),
                        )
                    }
                }
            }
            None => (
                http::bad_request(),
                format!("malformed request from {peer} 400"),
            ),
        },
    };
    if let Err(e) = answer(&mut tls, &response) {
        log(&format!("{what}: could not send the answer: {e}"));
        return;
    }
    log(&what);
    linger_close(&tls.sock);
}

/// Reads the body the head announces (`rest`: bytes already read past the head).
fn read_body(
    tls: &mut StreamOwned<ServerConnection, TcpStream>,
    request: &http::Request,
    mut data: Vec<u8>,
    deadline: Instant,
) -> Result<Vec<u8>, u16> {
    let framing = http::framing(request)?;
    let expects = request
        .header("expect")
        .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"));
    if expects && data.is_empty() && framing != Framing::None {
        tls.write_all(b"HTTP/1.1 100 Continue\r\nX-Stand-In: k8s-image demo\r\n\r\n")
            .and_then(|()| tls.flush())
            .map_err(|_| 400u16)?;
    }
    let mut buffer = [0u8; 16 * 1024];
    loop {
        match framing {
            Framing::None => return Ok(Vec::new()),
            Framing::Length(n) if data.len() >= n => {
                data.truncate(n);
                return Ok(data);
            }
            Framing::Chunked => {
                if let Some(body) = http::decode_chunked(&data)? {
                    return Ok(body);
                }
            }
            Framing::Length(_) => {}
        }
        if data.len() > MAX_BODY_BYTES + 64 * 1024 {
            return Err(413);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || tls.sock.set_read_timeout(Some(left)).is_err() {
            return Err(400);
        }
        match tls.read(&mut buffer) {
            Ok(0) => return Err(400),
            Ok(n) => data.extend_from_slice(&buffer[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err(400),
        }
    }
}

enum Head {
    /// The head, and the bytes read after it.
    Complete(Vec<u8>, Vec<u8>),
    TooLarge(()),
}

/// Reads until the end of the request head. `None`: nothing to answer (closed, timed out, TLS failed; logged
/// where useful).
fn read_head(
    tls: &mut StreamOwned<ServerConnection, TcpStream>,
    deadline: Instant,
    peer: &str,
) -> Option<Head> {
    let mut head = Vec::with_capacity(1024);
    let mut buffer = [0u8; 4096];
    loop {
        if let Some(end) = http::head_end(&head) {
            let rest = head.split_off(end);
            return Some(Head::Complete(head, rest));
        }
        if head.len() > MAX_HEAD_BYTES {
            return Some(Head::TooLarge(()));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || tls.sock.set_read_timeout(Some(left)).is_err() {
            log(&format!(
                "no complete request from {peer} within {}s; closing",
                REQUEST_TIMEOUT.as_secs()
            ));
            return None;
        }
        let handshaking = tls.conn.is_handshaking();
        match tls.read(&mut buffer) {
            Ok(0) => return None,
            Ok(n) => head.extend_from_slice(&buffer[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                log(&format!(
                    "no complete request from {peer} within {}s; closing",
                    REQUEST_TIMEOUT.as_secs()
                ));
                return None;
            }
            // The peer went away (a TCP probe, a client that gave up): nothing worth a line.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset
                ) =>
            {
                return None;
            }
            Err(e) if handshaking => {
                log(&format!("TLS handshake with {peer} failed: {e}"));
                return None;
            }
            Err(e) => {
                log(&format!("reading from {peer} failed: {e}"));
                return None;
            }
        }
    }
}

/// Sends the answer and TLS close_notify.
fn answer(
    tls: &mut StreamOwned<ServerConnection, TcpStream>,
    response: &Response,
) -> io::Result<()> {
    tls.write_all(&http::format_response(response))?;
    tls.conn.send_close_notify();
    tls.flush()
}

/// Half-closes, drops what the client still sends (briefly, boundedly), then lets the socket close.
fn linger_close(stream: &TcpStream) {
    if stream.shutdown(Shutdown::Write).is_err()
        || stream.set_read_timeout(Some(DRAIN_TIMEOUT)).is_err()
    {
        return;
    }
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    let mut buffer = [0u8; 4096];
    let mut drained = 0;
    let mut reader = stream;
    while drained < MAX_DRAIN_BYTES && Instant::now() < deadline {
        match reader.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}

/// A path or note short enough for a log line (cut at a character boundary).
fn shorten(text: &str) -> String {
    const MAX: usize = 200;
    if text.len() <= MAX {
        return text.to_string();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_targets_are_shortened_for_the_log() {
        assert_eq!(shorten("/readyz"), "/readyz");
        let long = format!("/{}", "a".repeat(300));
        let short = shorten(&long);
        assert_eq!(short.len(), 203);
        assert!(short.ends_with("..."));
    }

    #[test]
    fn loopback_listens_where_asked() {
        let listener = listen(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
        // Port 0 is refused by the flag parser, but listen itself is fine with it.
        let address = listener.unwrap().local_addr().unwrap();
        assert!(address.ip().is_loopback());
    }

    #[test]
    fn unspecified_listens_on_every_family() {
        let listener = listen(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0).unwrap();
        let address = listener.local_addr().unwrap();
        assert!(address.ip().is_unspecified(), "{address}");
        // Reachable over IPv4 loopback whichever socket it is.
        TcpStream::connect((Ipv4Addr::LOCALHOST, address.port())).unwrap();
    }

    #[test]
    fn a_port_in_use_is_an_error_naming_it() {
        let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = taken.local_addr().unwrap().port();
        let err = listen(IpAddr::V4(Ipv4Addr::LOCALHOST), port).unwrap_err();
        assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    }
}
