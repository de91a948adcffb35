//! A connection's first request head, read before hyper sees it: a request line or a
//! header block too long for hyper, or with more headers than it takes (which it would
//! answer 414/431 with an empty body), gets a JSON answer like every other refusal; a
//! connection on the reserve is told whether it is a probe. The bytes read are then
//! handed to hyper in front of the rest of the stream.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::http::StatusCode;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// Longest request line (method, URL, version) read; hyper refuses URLs from 64 KB.
const MAX_LINE: usize = 60 * 1024;
/// Largest header block read; hyper's own buffer stops at about 400 KB.
pub(super) const MAX_HEAD: usize = 256 * 1024;
/// Most header fields taken (hyper's default limit, which it answers with an empty 431).
pub(super) const MAX_HEADERS: usize = 100;
/// Header fields hyper parses in a keep-alive connection's later requests (which this
/// file does not see): more than [`MAX_HEADERS`], so that the app refuses those between
/// the two in JSON as the first request's are; beyond it hyper's empty 431 remains.
pub(super) const PARSED_HEADERS: usize = 1000;

pub(super) enum Head {
    /// The head (and whatever followed it in the same reads), to replay.
    Fine(Vec<u8>),
    /// Too long, or too many headers: the answer to give.
    Refused(StatusCode, String),
}

/// Read until the end of the first request's head, or until it is clearly too long.
pub(super) async fn read(stream: &mut TcpStream) -> std::io::Result<Head> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        let line_end = buf.windows(2).position(|w| w == b"\r\n");
        if line_end.unwrap_or(buf.len()) > MAX_LINE {
            let message = format!("the URL is longer than {} KB", MAX_LINE / 1024);
            return Ok(Head::Refused(StatusCode::URI_TOO_LONG, message));
        }
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            // Lines after the request line, up to the blank one.
            let fields = buf[..end].windows(2).filter(|w| *w == b"\r\n").count();
            if fields > MAX_HEADERS {
                let message = format!("the request has more than {MAX_HEADERS} headers");
                return Ok(Head::Refused(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, message));
            }
            return Ok(Head::Fine(buf));
        }
        if buf.len() > MAX_HEAD {
            let message = format!("the request's headers are over {} KB", MAX_HEAD / 1024);
            return Ok(Head::Refused(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, message));
        }
    }
}

/// True when the head asks for a probe: `GET` (or `HEAD`) `/healthz` or `/metrics`.
pub(super) fn is_probe(head: &[u8]) -> bool {
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut words = line.split(|&b| b == b' ');
    let (method, target) = (words.next().unwrap_or_default(), words.next().unwrap_or_default());
    let path = target.split(|&b| b == b'?').next().unwrap_or_default();
    matches!(method, b"GET" | b"HEAD") && matches!(path, b"/healthz" | b"/readyz" | b"/metrics")
}

/// Answer `status` with the JSON error body every refusal has, then close; a 503 says
/// when to come back, as the API's do.
pub(super) async fn refuse(stream: &mut TcpStream, status: StatusCode, message: &str) {
    let body = serde_json::json!({ "error": message }).to_string();
    let retry = if status == StatusCode::SERVICE_UNAVAILABLE { "retry-after: 1\r\n" } else { "" };
    let answer = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         {retry}connection: close\r\n\r\n{body}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    );
    // The client may already be gone; there is nothing more to do either way.
    let _ = stream.write_all(answer.as_bytes()).await;
    linger(stream, LINGER_BYTES).await;
}

/// Most of what a closing connection still sends that is read and dropped, at least
/// (after an upload refused by the app: the upload limit, so that a whole refused upload
/// is drained).
pub(super) const LINGER_BYTES: usize = 8 * 1024 * 1024;
/// How long a closing connection's input is read and dropped.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// Close after an answer: the writing half first, then what the client is still sending
/// (an upload refused before its body was read) is read and dropped for a moment, since
/// closing with unread input resets the connection and can lose the answer on its way.
pub(super) async fn linger<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, most: usize) {
    let _ = stream.shutdown().await;
    let drain = async {
        let mut sink = [0u8; 16 * 1024];
        let mut read = 0;
        while read < most {
            match stream.read(&mut sink).await {
                Ok(n) if n > 0 => read += n,
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// A stream that first gives back bytes already read from it.
pub(super) struct Rewind {
    prefix: Vec<u8>,
    at: usize,
    inner: TcpStream,
}

impl Rewind {
    pub(super) fn new(prefix: Vec<u8>, inner: TcpStream) -> Self {
        Self { prefix, at: 0, inner }
    }
}

impl AsyncRead for Rewind {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.at < self.prefix.len() {
            let n = (self.prefix.len() - self.at).min(buf.remaining());
            let at = self.at;
            buf.put_slice(&self.prefix[at..at + n]);
            self.at += n;
            if self.at == self.prefix.len() {
                self.prefix = Vec::new();
                self.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
