//! Just enough HTTP/1.x for a health endpoint: parse one request head, pick the answer, format the response.
//!
//! One request per connection (`Connection: close`); a request body is never read. The paths and answers:
//!
//! | request | status | body |
//! |---|---|---|
//! | `GET` or `HEAD` `/readyz`, `/healthz`, `/livez` (any query, e.g. `?verbose`) | 200 | `ok` |
//! | `GET`/`HEAD` `/readyz` during `--stand-in-ready-delay` | 503 | says it is not ready yet |
//! | anything else | 404 | says this is a STAND-IN API server |
//! | not an HTTP/1.x request head | 400 | says so |
//!
//! `HEAD` gets the same status and headers without the body. Every response carries `X-Stand-In: k8s-image demo`.

/// The header that marks every answer as coming from the stand-in.
pub const STAND_IN_HEADER: (&str, &str) = ("X-Stand-In", "k8s-image demo");

/// The longest request head read (request line and headers); a longer one is answered with 431.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// The request line of a request, the only part the stand-in looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The request target as sent (path and query), printable ASCII only.
    pub target: String,
}

impl Request {
    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split(['?', '#']).next().unwrap_or_default()
    }
}

/// Where `head` (bytes received so far) ends: the index just past the blank line, if it has one.
pub fn head_end(head: &[u8]) -> Option<usize> {
    head.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
        .or_else(|| {
            // Bare LF line endings, which lenient servers accept too.
            head.windows(2).position(|w| w == b"\n\n").map(|i| i + 2)
        })
}

/// Parses the request line of a complete request head. `None` means a malformed request (→ 400).
pub fn parse_request(head: &[u8]) -> Option<Request> {
    let line_end = head.iter().position(|&b| b == b'\n')?;
    let line = std::str::from_utf8(&head[..line_end]).ok()?;
    let line = line.strip_suffix('\r').unwrap_or(line);
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || method.is_empty()
        || !method.bytes().all(|b| b.is_ascii_uppercase())
        || !target.starts_with('/')
        || !target.bytes().all(|b| b.is_ascii_graphic())
        || !(version == "HTTP/1.1" || version == "HTTP/1.0")
    {
        return None;
    }
    Some(Request {
        method: method.to_string(),
        target: target.to_string(),
    })
}

/// An answer, before formatting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: String,
    /// Whether the body is left out (`HEAD`); `Content-Length` still gives its size.
    pub head_only: bool,
}

/// The answer to `request`; `ready` is false during the ready delay, `not_ready_left` how long it still lasts.
pub fn respond(request: &Request, ready: bool, not_ready_left_secs: u64) -> Response {
    let head_only = request.method == "HEAD";
    let health = matches!(request.path(), "/readyz" | "/healthz" | "/livez");
    let (status, body) = if !(health && (head_only || request.method == "GET")) {
        (
            404,
            "404 page not found: this is a STAND-IN kube-apiserver (k8s-image demo), not a real Kubernetes API \
             server; it answers only GET /readyz, /healthz and /livez\n"
                .to_string(),
        )
    } else if request.path() == "/readyz" && !ready {
        (
            503,
            format!(
                "STAND-IN kube-apiserver (k8s-image demo): not ready yet, --stand-in-ready-delay has about \
                 {not_ready_left_secs}s left\n"
            ),
        )
    } else {
        (200, "ok".to_string())
    };
    Response {
        status,
        body,
        head_only,
    }
}

/// The answer to a request head that is not HTTP/1.x.
pub fn bad_request() -> Response {
    Response {
        status: 400,
        body: "400 Bad Request: STAND-IN kube-apiserver (k8s-image demo) expects an HTTP/1.x request\n".to_string(),
        head_only: false,
    }
}

/// The answer to a request head longer than [`MAX_HEAD_BYTES`].
pub fn head_too_large() -> Response {
    Response {
        status: 431,
        body: format!(
            "431 Request Header Fields Too Large: STAND-IN kube-apiserver (k8s-image demo) reads at most \
             {MAX_HEAD_BYTES} bytes of request head\n"
        ),
        head_only: false,
    }
}

/// The reason phrase of the statuses used here.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// The bytes sent for `response`.
pub fn format_response(response: &Response) -> Vec<u8> {
    let (marker, value) = STAND_IN_HEADER;
    let mut out = format!(
        "HTTP/1.1 {} {}\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         X-Content-Type-Options: nosniff\r\n\
         Cache-Control: no-cache, private\r\n\
         Content-Length: {}\r\n\
         Connection: close\r\n\
         {marker}: {value}\r\n\
         \r\n",
        response.status,
        reason(response.status),
        response.body.len()
    )
    .into_bytes();
    if !response.head_only {
        out.extend_from_slice(response.body.as_bytes());
    }
    out
}

/// What a plain-text HTTP client gets on the TLS port (Go's servers, the real kube-apiserver among them, answer the
/// same way).
pub const PLAIN_HTTP_ON_TLS_PORT: &[u8] =
    b"HTTP/1.0 400 Bad Request\r\nX-Stand-In: k8s-image demo\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, target: &str) -> Request {
        Request {
            method: method.into(),
            target: target.into(),
        }
    }

    #[test]
    fn head_end_finds_the_blank_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nbody"), Some(27));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
        assert_eq!(head_end(b"GET / HTTP/1.1\nHost: x\n\n"), Some(24));
    }

    #[test]
    fn request_lines_are_parsed() {
        assert_eq!(
            parse_request(b"GET /readyz?verbose HTTP/1.1\r\nHost: masters\r\n\r\n"),
            Some(request("GET", "/readyz?verbose"))
        );
        assert_eq!(
            parse_request(b"HEAD /livez HTTP/1.0\r\n\r\n"),
            Some(request("HEAD", "/livez"))
        );
    }

    #[test]
    fn malformed_request_lines_are_refused() {
        for head in [
            &b"GET /readyz\r\n\r\n"[..],
            b"GET /readyz HTTP/2\r\n\r\n",
            b"GET readyz HTTP/1.1\r\n\r\n",
            b"GET /a b HTTP/1.1\r\n\r\n",
            b"get /readyz HTTP/1.1\r\n\r\n",
            b"GET /r\xc3\xa9 HTTP/1.1\r\n\r\n",
            b"GET /r\x1b HTTP/1.1\r\n\r\n",
            b"\r\n\r\n",
            b"no newline",
        ] {
            assert_eq!(
                parse_request(head),
                None,
                "{}",
                String::from_utf8_lossy(head)
            );
        }
    }

    #[test]
    fn health_paths_answer_ok() {
        for path in [
            "/readyz",
            "/healthz",
            "/livez",
            "/readyz?verbose",
            "/healthz?exclude=etcd",
        ] {
            let answer = respond(&request("GET", path), true, 0);
            assert_eq!((answer.status, answer.body.as_str()), (200, "ok"), "{path}");
        }
    }

    #[test]
    fn everything_else_is_404_and_says_stand_in() {
        for (method, path) in [
            ("GET", "/"),
            ("GET", "/nope"),
            ("GET", "/readyz/etcd"),
            (
                "GET",
                "/api/v1/namespaces/kube-public/configmaps/cluster-info",
            ),
            ("POST", "/readyz"),
            ("DELETE", "/livez"),
        ] {
            let answer = respond(&request(method, path), true, 0);
            assert_eq!(answer.status, 404, "{method} {path}");
            assert!(answer.body.contains("STAND-IN"), "{}", answer.body);
        }
    }

    #[test]
    fn only_readyz_waits_for_the_ready_delay() {
        let answer = respond(&request("GET", "/readyz"), false, 3);
        assert_eq!(answer.status, 503);
        assert!(answer.body.contains("3s left"), "{}", answer.body);
        assert_eq!(respond(&request("GET", "/healthz"), false, 3).status, 200);
        assert_eq!(respond(&request("GET", "/livez"), false, 3).status, 200);
        assert_eq!(respond(&request("GET", "/nope"), false, 3).status, 404);
    }

    #[test]
    fn responses_are_formatted_with_length_close_and_marker() {
        let text = String::from_utf8(format_response(&respond(
            &request("GET", "/readyz"),
            true,
            0,
        )))
        .unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(
            text.contains("\r\nContent-Type: text/plain; charset=utf-8\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nContent-Length: 2\r\n"), "{text}");
        assert!(text.contains("\r\nConnection: close\r\n"), "{text}");
        assert!(
            text.contains("\r\nX-Stand-In: k8s-image demo\r\n"),
            "{text}"
        );
        assert!(text.ends_with("\r\n\r\nok"), "{text}");
    }

    #[test]
    fn head_gets_headers_only() {
        let answer = respond(&request("HEAD", "/readyz"), true, 0);
        let text = String::from_utf8(format_response(&answer)).unwrap();
        assert!(text.contains("\r\nContent-Length: 2\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n"), "{text}");
    }

    #[test]
    fn error_statuses_have_reasons_and_the_marker() {
        for answer in [
            bad_request(),
            head_too_large(),
            respond(&request("GET", "/x"), true, 0),
        ] {
            let text = String::from_utf8(format_response(&answer)).unwrap();
            let first = text.lines().next().unwrap_or_default();
            assert!(first.len() > "HTTP/1.1 400 ".len(), "{first}");
            assert!(text.contains("X-Stand-In: k8s-image demo"), "{text}");
            assert!(text.contains("STAND-IN"), "{text}");
        }
    }
}
