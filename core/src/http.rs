//! Just enough HTTP/1.1 for one chat-completions POST on a connection sqlchat owns: the request
//! bytes, and a bounded reader of the response (head, then a Content-Length, chunked or
//! read-to-close body). Owning the socket is what lets a cancel shut it down at once.

use std::io::{self, Read};

/// Longest response head (status line and headers) accepted.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

#[derive(Debug)]
pub enum HttpError {
    /// A read or write failed (timeouts come as `TimedOut` or `WouldBlock`).
    Io(io::Error),
    /// The connection closed before the response was complete.
    Truncated,
    /// The body (or head) is larger than allowed.
    TooLarge { limit: usize },
    /// Not an HTTP/1.x response.
    Malformed(String),
}

impl From<io::Error> for HttpError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            HttpError::Truncated
        } else {
            HttpError::Io(e)
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// The bytes of a POST with a body; `Connection: close` because every call opens its own socket.
pub fn post_request(host: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("POST {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        // A header value never carries a line break into the request.
        let v: String = v.chars().filter(|c| *c != '\r' && *c != '\n').collect();
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Reads one response; the body is cut off (TooLarge) beyond `body_limit` bytes.
pub fn read_response<R: Read>(r: &mut R, body_limit: usize) -> Result<Response, HttpError> {
    let mut reader = Buffered { inner: r, buf: Vec::new(), pos: 0 };
    let head = reader.read_head()?;
    let (status, headers) = parse_head(&head)?;
    let header = |name: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_string());
    let chunked = header("Transfer-Encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        reader.read_chunked(body_limit)?
    } else if let Some(len) = header("Content-Length") {
        let len: usize = len.parse().map_err(|_| HttpError::Malformed(format!("bad Content-Length {len:?}")))?;
        if len > body_limit {
            return Err(HttpError::TooLarge { limit: body_limit });
        }
        reader.read_exact_vec(len)?
    } else {
        reader.read_to_close(body_limit)?
    };
    Ok(Response { status, headers, body })
}

fn parse_head(head: &[u8]) -> Result<(u16, Vec<(String, String)>), HttpError> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(HttpError::Malformed(format!("not an HTTP/1.x status line: {:?}", excerpt(status_line))));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|s| (100..1000).contains(s))
        .ok_or_else(|| HttpError::Malformed(format!("bad status line: {:?}", excerpt(status_line))))?;
    let headers = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_string(), v.trim().to_string())))
        .collect();
    Ok((status, headers))
}

fn excerpt(s: &str) -> String {
    s.chars().take(80).collect()
}

/// A reader with a small look-ahead buffer, so the head can be split from the body.
struct Buffered<'a, R: Read> {
    inner: &'a mut R,
    buf: Vec<u8>,
    pos: usize,
}

impl<R: Read> Buffered<'_, R> {
    fn fill(&mut self) -> Result<bool, HttpError> {
        if self.pos < self.buf.len() {
            return Ok(true);
        }
        self.buf.resize(16 * 1024, 0);
        self.pos = 0;
        let n = loop {
            match self.inner.read(&mut self.buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.buf.clear();
                    return Err(e.into());
                }
            }
        };
        self.buf.truncate(n);
        Ok(n > 0)
    }

    fn byte(&mut self) -> Result<u8, HttpError> {
        if !self.fill()? {
            return Err(HttpError::Truncated);
        }
        self.pos += 1;
        Ok(self.buf[self.pos - 1])
    }

    fn read_head(&mut self) -> Result<Vec<u8>, HttpError> {
        loop {
            let head = self.read_line_block()?;
            // Interim 1xx responses (100 Continue) come before the real one.
            if head.starts_with(b"HTTP/1.1 1") || head.starts_with(b"HTTP/1.0 1") {
                continue;
            }
            return Ok(head);
        }
    }

    /// Bytes up to the blank line that ends a head (the blank line itself dropped).
    fn read_line_block(&mut self) -> Result<Vec<u8>, HttpError> {
        let mut head = Vec::new();
        loop {
            head.push(self.byte()?);
            if head.ends_with(b"\r\n\r\n") {
                head.truncate(head.len() - 4);
                return Ok(head);
            }
            if head.len() > MAX_HEAD_BYTES {
                return Err(HttpError::TooLarge { limit: MAX_HEAD_BYTES });
            }
        }
    }

    fn line(&mut self) -> Result<String, HttpError> {
        let mut line = Vec::new();
        loop {
            let b = self.byte()?;
            if b == b'\n' {
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(String::from_utf8_lossy(&line).into_owned());
            }
            line.push(b);
            if line.len() > 4096 {
                return Err(HttpError::Malformed("a chunk-size line is too long".into()));
            }
        }
    }

    fn take_into(&mut self, out: &mut Vec<u8>, mut n: usize) -> Result<(), HttpError> {
        while n > 0 {
            if !self.fill()? {
                return Err(HttpError::Truncated);
            }
            let k = n.min(self.buf.len() - self.pos);
            out.extend_from_slice(&self.buf[self.pos..self.pos + k]);
            self.pos += k;
            n -= k;
        }
        Ok(())
    }

    fn read_exact_vec(&mut self, len: usize) -> Result<Vec<u8>, HttpError> {
        let mut out = Vec::with_capacity(len.min(1 << 20));
        self.take_into(&mut out, len)?;
        Ok(out)
    }

    fn read_to_close(&mut self, limit: usize) -> Result<Vec<u8>, HttpError> {
        let mut out = Vec::new();
        while self.fill()? {
            let k = self.buf.len() - self.pos;
            if out.len() + k > limit {
                return Err(HttpError::TooLarge { limit });
            }
            out.extend_from_slice(&self.buf[self.pos..]);
            self.pos = self.buf.len();
        }
        Ok(out)
    }

    fn read_chunked(&mut self, limit: usize) -> Result<Vec<u8>, HttpError> {
        let mut out = Vec::new();
        loop {
            let line = self.line()?;
            let size_text = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| HttpError::Malformed(format!("bad chunk size {:?}", excerpt(size_text))))?;
            if size == 0 {
                // Trailers, then the blank line.
                while !self.line()?.is_empty() {}
                return Ok(out);
            }
            if out.len().saturating_add(size) > limit {
                return Err(HttpError::TooLarge { limit });
            }
            self.take_into(&mut out, size)?;
            if !self.line()?.is_empty() {
                return Err(HttpError::Malformed("a chunk does not end with CRLF".into()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(raw: &[u8], limit: usize) -> Result<Response, HttpError> {
        read_response(&mut io::Cursor::new(raw.to_vec()), limit)
    }

    #[test]
    fn content_length_body() {
        let r = read(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhelloEXTRA", 100).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"hello");
        assert_eq!(r.header("x-a"), Some("b"));
    }

    #[test]
    fn chunked_body_and_interim_response() {
        let raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n";
        assert_eq!(read(raw, 100).unwrap().body, b"abcde");
    }

    #[test]
    fn read_to_close_body() {
        assert_eq!(read(b"HTTP/1.0 200 OK\r\n\r\nall of it", 100).unwrap().body, b"all of it");
    }

    #[test]
    fn limits_and_truncation() {
        assert!(matches!(read(b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n", 100), Err(HttpError::TooLarge { .. })));
        assert!(matches!(read(b"HTTP/1.1 200 OK\r\n\r\n0123456789", 5), Err(HttpError::TooLarge { .. })));
        assert!(matches!(read(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nff\r\nabc", 5), Err(HttpError::TooLarge { .. })));
        assert!(matches!(read(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 100), Err(HttpError::Truncated)));
        assert!(matches!(read(b"HTTP/1.1 200 OK\r\nContent-Le", 100), Err(HttpError::Truncated)));
        assert!(matches!(read(b"", 100), Err(HttpError::Truncated)));
        let mut huge_head = b"HTTP/1.1 200 OK\r\n".to_vec();
        huge_head.extend(std::iter::repeat_n(b'a', MAX_HEAD_BYTES + 10));
        assert!(matches!(read(&huge_head, 100), Err(HttpError::TooLarge { .. })));
    }

    #[test]
    fn malformed() {
        assert!(matches!(read(b"SSH-2.0-OpenSSH\r\n\r\n", 100), Err(HttpError::Malformed(_))));
        assert!(matches!(read(b"HTTP/1.1 abc OK\r\n\r\n", 100), Err(HttpError::Malformed(_))));
        assert!(matches!(read(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", 100), Err(HttpError::Malformed(_))));
        assert!(matches!(read(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 100), Err(HttpError::Malformed(_))));
    }

    #[test]
    fn request_bytes_have_no_injected_lines() {
        let r = post_request("h:1", "/v1/chat/completions", &[("X-A", "a\r\nEvil: 1")], b"{}");
        let text = String::from_utf8(r).unwrap();
        assert!(text.starts_with("POST /v1/chat/completions HTTP/1.1\r\nHost: h:1\r\n"));
        assert!(text.contains("X-A: aEvil: 1\r\n"));
        assert!(text.ends_with("Content-Length: 2\r\nX-A: aEvil: 1\r\n\r\n{}"));
    }
}
