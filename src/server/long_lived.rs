//! Long-lived responses over HTTP/1.1 (an SSE stream), written by the connection's own
//! task instead of hyper.
//!
//! hyper keeps two buffers of 8 KiB for each HTTP/1.1 connection, one to read requests
//! into and one to write response heads from, for the connection's whole life (8 KiB
//! is its floor). A stream that lasts hours uses neither after its first few hundred
//! bytes, but with thousands of streams they were most of a stream's memory.
//!
//! So a response the app marks [`LongLived`] is handed back to the connection's task
//! once the app has made it: the task drops hyper's connection, buffers and all, takes
//! the socket (with its write deadline and wire tap), and writes the response itself,
//! the same bytes hyper would have written:
//!
//! ```text
//! HTTP/1.1 200 OK␍␊content-type: text/event-stream␍␊…transfer-encoding: chunked␍␊date: …␍␊␍␊
//! 3b␍␊id: 42␊event: message␊data: {…}␊␊␍␊        one chunk per write
//! 0␍␊␍␊                                          when the body ends (server shutdown)
//! ```
//!
//! then closes the connection. Events that are ready together go out in one write.
//! It watches the socket for the client closing, as hyper did, and stops then.
//!
//! The hand-off happens between hyper reading a request and writing its answer, so
//! whatever hyper still holds unwritten at that moment is dropped with it: nothing for
//! a client that waits for each answer before its next request (every browser and
//! HTTP client; only a pipelining client on a full socket could lose the end of the
//! previous answer). Over HTTP/2 a stream is one of many on a connection, and hyper
//! serves it like any response.

use std::future::poll_fn;
use std::io::Write as _;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::SystemTime;

use axum::http::Response;
use hyper::body::Body as HttpBody;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::Notify;

use super::ServingBody;

/// The response extension that asks for this path: set by a handler whose body lasts
/// as long as its client stays (see [`crate::transport::sse`]).
#[derive(Clone, Copy)]
pub struct LongLived;

/// Most bytes of chunks gathered into one write.
const WRITE_BYTES: usize = 64 * 1024;

/// What the write buffer keeps between writes (a burst grows it, up to about
/// [`WRITE_BYTES`]; a quiet stream gives the rest back).
const KEPT_BYTES: usize = 1024;

/// Where a connection's service leaves a long-lived response for the connection's
/// task (HTTP/1.1 only: one request at a time, so one slot).
#[derive(Default)]
pub struct Handoff {
    response: Mutex<Option<Response<ServingBody>>>,
    ready: Notify,
}

impl Handoff {
    /// Keeps `response` for the connection's task if it is long-lived (and returns
    /// `None`: the service then never answers hyper); gives it back otherwise.
    pub fn offer(&self, response: Response<ServingBody>) -> Option<Response<ServingBody>> {
        if response.extensions().get::<LongLived>().is_none() {
            return Some(response);
        }
        *self.lock() = Some(response);
        self.ready.notify_one();
        None
    }

    /// Completes once a response was left here.
    pub async fn ready(&self) {
        self.ready.notified().await;
    }

    /// The response left here, if any.
    pub fn take(&self) -> Option<Response<ServingBody>> {
        self.lock().take()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Response<ServingBody>>> {
        self.response.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Writes `response` on `io`, its body chunked, until the body ends, the client
/// closes, or a write fails (the write deadline); then closes the connection.
pub async fn write<IO>(mut io: IO, response: Response<ServingBody>)
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let (parts, mut body) = response.into_parts();
    let mut out = Vec::with_capacity(256);
    let _ = write!(out, "HTTP/1.1 {}\r\n", parts.status);
    for (name, value) in &parts.headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let date = httpdate::fmt_http_date(SystemTime::now());
    let _ = write!(out, "transfer-encoding: chunked\r\ndate: {date}\r\n\r\n");
    drop(parts);
    loop {
        // Every chunk ready now (after the head, the first time), or the end.
        let more = poll_fn(|cx| next_chunks(cx, &mut body, &mut io, &mut out)).await;
        if !out.is_empty() && (io.write_all(&out).await.is_err() || io.flush().await.is_err()) {
            return;
        }
        out.clear();
        out.shrink_to(KEPT_BYTES);
        if !more {
            break;
        }
    }
    let _ = io.shutdown().await;
}

/// Appends to `out` every chunk the body has ready, and waits only if there are none:
/// `Ready(true)` to write them, `Ready(false)` when the stream is over (the last chunk
/// appended if the body ended, nothing if the client closed or the body failed).
fn next_chunks<IO: AsyncRead + Unpin>(
    cx: &mut Context<'_>,
    body: &mut ServingBody,
    io: &mut IO,
    out: &mut Vec<u8>,
) -> Poll<bool> {
    while out.len() < WRITE_BYTES {
        match Pin::new(&mut *body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref().filter(|data| !data.is_empty()) {
                    // Upper-case hex, as hyper writes it.
                    let _ = write!(out, "{:X}\r\n", data.len());
                    out.extend_from_slice(data);
                    out.extend_from_slice(b"\r\n");
                }
            }
            Poll::Ready(Some(Err(_))) => return Poll::Ready(false),
            Poll::Ready(None) => {
                out.extend_from_slice(b"0\r\n\r\n");
                return Poll::Ready(false);
            }
            Poll::Pending if out.is_empty() => break,
            Poll::Pending => return Poll::Ready(true),
        }
    }
    if !out.is_empty() {
        return Poll::Ready(true);
    }
    // Nothing to write: has the client gone? It has nothing more to say on this
    // connection; whatever it sends is dropped.
    let mut scratch = [0u8; 64];
    loop {
        let mut buf = ReadBuf::new(&mut scratch);
        match Pin::new(&mut *io).poll_read(cx, &mut buf) {
            Poll::Ready(Ok(())) if !buf.filled().is_empty() => continue,
            Poll::Ready(_) => return Poll::Ready(false),
            Poll::Pending => return Poll::Pending,
        }
    }
}
