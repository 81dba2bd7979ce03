//! A plain-HTTP health endpoint, as the kubelet (`127.0.0.1:10248/healthz` → `ok`) and kube-proxy
//! (`:10256/healthz` → a small JSON document) serve one. One thread, one request per connection, bounded reads;
//! every answer carries `X-Stand-In: k8s-image demo`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// Starts serving `GET /healthz` on `address` in a background thread; `body()` gives the content type and the
/// body of each answer. A bind failure is returned (the caller logs it and carries on, as the real programs do).
pub fn serve(
    address: SocketAddr,
    body: impl Fn() -> (&'static str, String) + Send + 'static,
) -> Result<SocketAddr, String> {
    let listener =
        TcpListener::bind(address).map_err(|e| format!("cannot listen on {address}: {e}"))?;
    let bound = listener.local_addr().unwrap_or(address);
    std::thread::Builder::new()
        .name("healthz".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                answer(stream, &body);
            }
        })
        .map_err(|e| format!("cannot start the health thread: {e}"))?;
    Ok(bound)
}

fn answer(mut stream: TcpStream, body: &impl Fn() -> (&'static str, String)) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buffer[..n]),
        }
    }
    let line = String::from_utf8_lossy(&head);
    let target = line.split(' ').nth(1).unwrap_or_default();
    let path = target.split('?').next().unwrap_or_default();
    let (status, content_type, text) = if line.starts_with("GET ") && path == "/healthz" {
        let (t, b) = body();
        ("200 OK", t, b)
    } else {
        (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "404 page not found (STAND-IN: only GET /healthz is served)\n".to_string(),
        )
    };
    let _ = stream.write_all(
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\nX-Stand-In: k8s-image demo\r\n\r\n{text}",
            text.len()
        )
        .as_bytes(),
    );
}
