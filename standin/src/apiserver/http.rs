//! Just enough HTTP/1.x for the API: parse a request head (request line and headers), decode a body
//! (`Content-Length` or chunked), format a response. One request per connection (`Connection: close`), which
//! every Kubernetes client handles. Sizes are bounded: [`MAX_HEAD_BYTES`] of head, [`MAX_BODY_BYTES`] of body
//! (the real API server's limit for a JSON request is 3 MiB as well).
//!
//! Every response carries `X-Stand-In: k8s-image demo`.

/// The header that marks every answer as coming from the stand-in.
pub const STAND_IN_HEADER: (&str, &str) = ("X-Stand-In", "k8s-image demo");

/// The longest request head read; a longer one is answered with 431.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// The largest request body read; a larger one is answered with 413.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// A request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    pub method: String,
    /// The request target as sent (path and query), printable ASCII only.
    pub target: String,
    /// Header names lower-cased, values trimmed.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split(['?', '#']).next().unwrap_or_default()
    }

    /// The first value of a header (name in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The decoded query parameters, in order.
    pub fn query(&self) -> Vec<(String, String)> {
        let Some((_, q)) = self.target.split_once('?') else {
            return Vec::new();
        };
        let q = q.split('#').next().unwrap_or_default();
        q.split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect()
    }

    /// One query parameter.
    pub fn param(&self, name: &str) -> Option<String> {
        self.query()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

/// `%XX` and `+` decoding of a query component; invalid escapes are kept as they are.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() && s.is_char_boundary(i + 3) => {
                match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Where `head` (bytes received so far) ends: the index just past the blank line, if it has one.
pub fn head_end(head: &[u8]) -> Option<usize> {
    head.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
        .or_else(|| head.windows(2).position(|w| w == b"\n\n").map(|i| i + 2))
}

/// Parses a complete request head. `None` means a malformed request (→ 400).
pub fn parse_head(head: &[u8]) -> Option<Request> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let line = lines.next()?;
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
    let mut headers = Vec::new();
    for l in lines {
        if l.is_empty() {
            break;
        }
        let (name, value) = l.split_once(':')?;
        if name.is_empty() || name.contains(' ') {
            return None;
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    Some(Request {
        method: method.to_string(),
        target: target.to_string(),
        headers,
        body: Vec::new(),
    })
}

/// How the body of a request is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(usize),
    Chunked,
}

/// The framing the headers announce; `Err` with the status to answer (400 malformed, 413 too large).
pub fn framing(request: &Request) -> Result<Framing, u16> {
    if let Some(te) = request.header("transfer-encoding") {
        return if te.eq_ignore_ascii_case("chunked") {
            Ok(Framing::Chunked)
        } else {
            Err(400)
        };
    }
    match request.header("content-length") {
        None => Ok(Framing::None),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n > MAX_BODY_BYTES => Err(413),
            Ok(0) => Ok(Framing::None),
            Ok(n) => Ok(Framing::Length(n)),
            Err(_) => Err(400),
        },
    }
}

/// Decodes a complete chunked body. `Ok(None)`: more bytes are needed. `Err(status)`: malformed or too large.
pub fn decode_chunked(data: &[u8]) -> Result<Option<Vec<u8>>, u16> {
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        let Some(line_end) = data[i..].windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let size_text = std::str::from_utf8(&data[i..i + line_end]).map_err(|_| 400u16)?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| 400u16)?;
        i += line_end + 2;
        if size == 0 {
            // Trailers end with an empty line.
            return if data[i..].windows(2).any(|w| w == b"\r\n") {
                Ok(Some(out))
            } else {
                Ok(None)
            };
        }
        if out.len() + size > MAX_BODY_BYTES {
            return Err(413);
        }
        if data.len() < i + size + 2 {
            return Ok(None);
        }
        out.extend_from_slice(&data[i..i + size]);
        if &data[i + size..i + size + 2] != b"\r\n" {
            return Err(400);
        }
        i += size + 2;
    }
}

/// An answer, before formatting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// Whether the body is left out (`HEAD`); `Content-Length` still gives its size.
    pub head_only: bool,
}

impl Response {
    /// A `text/plain` answer.
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into().into_bytes(),
            head_only: false,
        }
    }

    /// An `application/json` answer.
    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        Response {
            status,
            content_type: "application/json",
            body: serde_json::to_vec(value).unwrap_or_default(),
            head_only: false,
        }
    }
}

/// The reason phrase of the statuses used here.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        409 => "Conflict",
        413 => "Request Entity Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// The bytes sent for `response`.
pub fn format_response(response: &Response) -> Vec<u8> {
    let (marker, value) = STAND_IN_HEADER;
    let mut out = format!(
        "HTTP/1.1 {} {}\r\n\
         Content-Type: {}\r\n\
         X-Content-Type-Options: nosniff\r\n\
         Cache-Control: no-cache, private\r\n\
         Content-Length: {}\r\n\
         Connection: close\r\n\
         {marker}: {value}\r\n\
         \r\n",
        response.status,
        reason(response.status),
        response.content_type,
        response.body.len()
    )
    .into_bytes();
    if !response.head_only {
        out.extend_from_slice(&response.body);
    }
    out
}

/// The answer to a request head that is not HTTP/1.x.
pub fn bad_request() -> Response {
    Response::text(
        400,
        "400 Bad Request: STAND-IN kube-apiserver (k8s-image demo) expects an HTTP/1.x request\n",
    )
}

/// The answer to a request head longer than [`MAX_HEAD_BYTES`].
pub fn head_too_large() -> Response {
    Response::text(
        431,
        format!(
            "431 Request Header Fields Too Large: STAND-IN kube-apiserver (k8s-image demo) reads at most \
             {MAX_HEAD_BYTES} bytes of request head\n"
        ),
    )
}

/// What a plain-text HTTP client gets on the TLS port (Go's servers, the real kube-apiserver among them, answer the
/// same way).
pub const PLAIN_HTTP_ON_TLS_PORT: &[u8] =
    b"HTTP/1.0 400 Bad Request\r\nX-Stand-In: k8s-image demo\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_end_finds_the_blank_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nbody"), Some(27));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
        assert_eq!(head_end(b"GET / HTTP/1.1\nHost: x\n\n"), Some(24));
    }

    #[test]
    fn heads_are_parsed_with_headers_and_query() {
        let r = parse_head(
            b"GET /api/v1/secrets?labelSelector=a%3Db&fieldSelector=type%3Dx+y HTTP/1.1\r\nHost: m\r\nAuthorization: Bearer abc\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.method, "GET");
        assert_eq!(r.path(), "/api/v1/secrets");
        assert_eq!(r.header("authorization"), Some("Bearer abc"));
        assert_eq!(r.header("HOST"), Some("m"));
        assert_eq!(r.param("labelSelector").as_deref(), Some("a=b"));
        assert_eq!(r.param("fieldSelector").as_deref(), Some("type=x y"));
        assert_eq!(r.param("missing"), None);
    }

    #[test]
    fn malformed_heads_are_refused() {
        for head in [
            &b"GET /readyz\r\n\r\n"[..],
            b"GET /readyz HTTP/2\r\n\r\n",
            b"GET readyz HTTP/1.1\r\n\r\n",
            b"GET /a b HTTP/1.1\r\n\r\n",
            b"get /readyz HTTP/1.1\r\n\r\n",
            b"GET /r\xc3\xa9 HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nno colon\r\n\r\n",
            b"\r\n\r\n",
        ] {
            assert_eq!(parse_head(head), None, "{}", String::from_utf8_lossy(head));
        }
    }

    #[test]
    fn percent_decoding_keeps_bad_escapes() {
        assert_eq!(percent_decode("a%3Db"), "a=b");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("a+b"), "a b");
    }

    #[test]
    fn framing_and_chunks() {
        let mut r = Request::default();
        assert_eq!(framing(&r), Ok(Framing::None));
        r.headers.push(("content-length".into(), "12".into()));
        assert_eq!(framing(&r), Ok(Framing::Length(12)));
        r.headers[0].1 = format!("{}", MAX_BODY_BYTES + 1);
        assert_eq!(framing(&r), Err(413));
        r.headers[0] = ("transfer-encoding".into(), "chunked".into());
        assert_eq!(framing(&r), Ok(Framing::Chunked));
        assert_eq!(
            decode_chunked(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"),
            Ok(Some(b"abcde".to_vec()))
        );
        assert_eq!(decode_chunked(b"3\r\nabc\r\n"), Ok(None));
        assert_eq!(decode_chunked(b"zz\r\n"), Err(400));
    }

    #[test]
    fn responses_carry_length_close_and_marker() {
        let text = String::from_utf8(format_response(&Response::text(200, "ok"))).unwrap();
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
        let mut head = Response::text(200, "ok");
        head.head_only = true;
        assert!(
            String::from_utf8(format_response(&head))
                .unwrap()
                .ends_with("\r\n\r\n")
        );
    }
}
