//! JSON bodies for the errors hyper answers by itself.
//!
//! A request that hyper cannot parse never reaches the app: hyper answers it with a
//! status and an empty body, then closes the connection.
//!
//! ```text
//! → GET / HTTP/1.1␍␊Bad Header␍␊␍␊
//! ← HTTP/1.1 400 Bad Request␍␊connection: close␍␊content-length: 0␍␊date: …␍␊␍␊
//! ```
//!
//! That is a 400 for a malformed request line or header, a 431 for a head (URI and
//! headers) over [`MAX_HEAD_BYTES`](super::MAX_HEAD_BYTES) or over 100 headers. hyper has no hook for that answer's body (hyperium/hyper#3844), so this
//! wrapper around the socket recognises the answer on its way out, by what the app
//! never sends (one of those statuses, `connection: close`, `content-length: 0`,
//! nothing after the head), and writes the same answer with an `{"error": …}` body.
//! Everything else passes through untouched.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::http::StatusCode;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::error::ApiError;

/// What hyper's own answer carries right after its status line.
const HYPER_ERROR_HEADERS: &[u8] = b"connection: close\r\ncontent-length: 0\r\n";

pub struct ParseErrorsAsJson<T> {
    io: T,
    /// The rewritten answer, and how much of it is written.
    rewritten: Option<(Vec<u8>, usize)>,
}

impl<T> ParseErrorsAsJson<T> {
    pub fn new(io: T) -> Self {
        Self {
            io,
            rewritten: None,
        }
    }

    /// The socket, for a connection whose task writes a response itself (an answer
    /// is rewritten only on a connection that the app never answers).
    pub fn into_inner(self) -> T {
        self.io
    }
}

impl<T: AsyncWrite + Unpin> ParseErrorsAsJson<T> {
    /// Writes what is left of a rewritten answer.
    fn poll_rewritten(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, written)) = &mut self.rewritten {
            if *written == bytes.len() {
                self.rewritten = None;
                break;
            }
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(()))
    }

    /// Takes `buf` in place of the socket if it is hyper's own error answer.
    fn rewrite(&mut self, buf: &[u8]) -> bool {
        match with_json_body(buf) {
            Some(rewritten) => {
                self.rewritten = Some((rewritten, 0));
                true
            }
            None => false,
        }
    }
}

/// hyper's error answer `head`, with a JSON body; `None` for any other bytes.
fn with_json_body(head: &[u8]) -> Option<Vec<u8>> {
    let status = StatusCode::from_bytes(head.strip_prefix(b"HTTP/1.1 ")?.get(..3)?).ok()?;
    let status_line_end = head.windows(2).position(|w| w == b"\r\n")? + 2;
    let headers = &head[status_line_end..];
    if !headers.starts_with(HYPER_ERROR_HEADERS) || !head.ends_with(b"\r\n\r\n") {
        return None;
    }
    if !ApiError::UNPARSABLE.contains(&status) {
        return None;
    }
    let error = ApiError::Unparsable(status);
    let body = json!({ "error": error.to_string() }).to_string();
    let mut rewritten = head[..status_line_end].to_vec();
    rewritten.extend_from_slice(b"connection: close\r\ncontent-type: application/json\r\n");
    rewritten.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    rewritten.extend_from_slice(&headers[HYPER_ERROR_HEADERS.len()..]);
    rewritten.extend_from_slice(body.as_bytes());
    Some(rewritten)
}

impl<T: AsyncRead + Unpin> AsyncRead for ParseErrorsAsJson<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ParseErrorsAsJson<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_rewritten(cx))?;
        if self.rewrite(buf) {
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_rewritten(cx))?;
        let mut filled = bufs.iter().filter(|b| !b.is_empty());
        if let (Some(only), None) = (filled.next(), filled.next())
            && self.rewrite(only)
        {
            return Poll::Ready(Ok(only.len()));
        }
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_rewritten(cx))?;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_rewritten(cx))?;
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::with_json_body;

    #[test]
    fn hyper_error_answers_get_a_json_body_and_nothing_else_changes() {
        let hyper = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\n\
                      content-length: 0\r\ndate: Wed, 02 Dec 2026 00:11:29 GMT\r\n\r\n";
        let rewritten = String::from_utf8(with_json_body(hyper).unwrap()).unwrap();
        let (head, body) = rewritten.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(head.contains("content-type: application/json\r\n"));
        assert!(head.contains(&format!("content-length: {}\r\n", body.len())));
        assert!(head.ends_with("date: Wed, 02 Dec 2026 00:11:29 GMT"));
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(
            body["error"].as_str().unwrap().contains("headers"),
            "{body}"
        );

        // The app's own answers, and hyper's answers to other statuses, pass through.
        for other in [
            &b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 12\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n{}",
            b"{\"type\":\"message\"}",
        ] {
            assert_eq!(with_json_body(other), None, "{}", String::from_utf8_lossy(other));
        }
    }
}
