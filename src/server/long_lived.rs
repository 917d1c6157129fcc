//! Long-lived responses over HTTP/1.1, written by the connection's own task instead of
//! hyper: an SSE stream, and a held long poll's answer.
//!
//! hyper keeps two buffers of 8 KiB for each HTTP/1.1 connection, one to read requests
//! into and one to write response heads from, for the connection's whole life (8 KiB
//! is its floor). A response that waits (a long poll held for 30 s) or lasts for hours
//! (an SSE stream) uses neither while it waits, but with thousands of clients they
//! were most of a client's memory.
//!
//! So a response the app marks [`LongLived`] is handed back to the connection's task
//! once the app has made its head: the task drops hyper's connection, buffers and all,
//! takes the socket (with its write deadline and wire tap), and writes the response
//! itself, the same bytes hyper would have written. An SSE stream
//! ([`LongLived::Stream`]) goes out chunked, then the connection closes:
//!
//! ```text
//! HTTP/1.1 200 OK␍␊content-type: text/event-stream␍␊…transfer-encoding: chunked␍␊date: …␍␊␍␊
//! 3b␍␊id: 42␊event: message␊data: {…}␊␊␍␊        one chunk per write
//! 0␍␊␍␊                                          when the body ends (server shutdown)
//! ```
//!
//! A held answer ([`LongLived::Answer`]) goes out whole, head and body in one write
//! once the body is ready, with its length; then the connection is hyper's again for
//! the client's next request, with whatever the client sent meanwhile:
//!
//! ```text
//! HTTP/1.1 200 OK␍␊content-type: application/json␍␊content-length: 81␍␊date: …␍␊␍␊{"messages":[…
//! ```
//!
//! While it waits, the task watches the socket for the client closing, as hyper did,
//! and stops then (dropping the body, which ends the wait).
//!
//! The hand-off happens between hyper reading a request and writing its answer, so
//! whatever hyper still holds unwritten at that moment is dropped with it: nothing for
//! a client that waits for each answer before its next request (every browser and
//! HTTP client; only a pipelining client on a full socket could lose the end of the
//! previous answer). Only `GET`s of HTTP/1.1 clients that keep their connection are
//! handed off ([`can_take`]; the request's [`Carrier`](super::Carrier) says so); over
//! HTTP/2 a stream is one of many on a connection, and hyper serves it like any
//! response.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io::{self, Write as _};
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::response::Parts;
use axum::http::{Method, Request, Response, Version, header};
use bytes::{Buf, Bytes, BytesMut};
use hyper::body::Body as HttpBody;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::Notify;

use super::{MAX_HEAD_BYTES, ServingBody};

/// The response extension that asks for this path.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LongLived {
    /// A body that lasts as long as its client stays: an SSE stream (see
    /// [`crate::transport::sse`]).
    Stream,
    /// A body that is one answer, ready later: a held long poll (see
    /// [`crate::transport::long_poll`]).
    Answer,
}

impl LongLived {
    fn of<B>(response: &Response<B>) -> Option<Self> {
        response.extensions().get::<Self>().copied()
    }
}

/// Whether a long-lived response to `request` may be written by the connection's task:
/// a `GET` without a body (a `HEAD` answer has none; a body hyper has not read would be
/// taken for the next request) from an HTTP/1.1 client that keeps its connection
/// (hyper closes one that asked to after the answer).
pub fn can_take<B: HttpBody>(request: &Request<B>) -> bool {
    let closes = request
        .headers()
        .get_all(header::CONNECTION)
        .iter()
        .any(|value| {
            value.to_str().is_ok_and(|value| {
                value
                    .split(',')
                    .any(|token| token.trim().eq_ignore_ascii_case("close"))
            })
        });
    request.version() == Version::HTTP_11
        && request.method() == Method::GET
        && request.body().is_end_stream()
        && !closes
}

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
        if LongLived::of(&response).is_none() {
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

/// Writes a response handed off on `io` (see the module docs). Returns the connection
/// for hyper to serve the client's next request, or `None` when it is over: after a
/// stream, or when the client closed or a write failed (the write deadline).
pub async fn write<IO>(io: Prefixed<IO>, response: Response<ServingBody>) -> Option<Prefixed<IO>>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    match LongLived::of(&response) {
        Some(LongLived::Answer) => answer(io, response).await,
        _ => {
            stream(io, response).await;
            None
        }
    }
}

/// The status line and the headers the app set, without the blank line.
fn head(parts: &Parts, out: &mut Vec<u8>) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(parts.status.as_str().as_bytes());
    out.push(b' ');
    let reason = parts.status.canonical_reason().unwrap_or("");
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in &parts.headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// The `date` header and the blank line that ends a head. The date is made once a
/// second per thread, as hyper makes it.
fn end_head(out: &mut Vec<u8>) {
    thread_local! {
        static DATE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let second = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    DATE.with_borrow_mut(|(made, date)| {
        if *made != second {
            *made = second;
            *date = httpdate::fmt_http_date(now);
        }
        out.extend_from_slice(b"date: ");
        out.extend_from_slice(date.as_bytes());
    });
    out.extend_from_slice(b"\r\n\r\n");
}

/// Waits for a held answer's body while watching the socket, then writes head and body
/// in one write, with the body's length.
async fn answer<IO>(mut io: Prefixed<IO>, response: Response<ServingBody>) -> Option<Prefixed<IO>>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let (parts, mut body) = response.into_parts();
    let mut payload = BytesMut::new();
    let mut ahead = BytesMut::new();
    let ready = poll_fn(|cx| gather(cx, &mut body, &mut io, &mut payload, &mut ahead)).await;
    if !ready {
        return None;
    }
    let mut out = Vec::with_capacity(256 + payload.len());
    head(&parts, &mut out);
    let _ = write!(out, "content-length: {}\r\n", payload.len());
    end_head(&mut out);
    out.extend_from_slice(&payload);
    drop((parts, payload));
    io.write_all(&out).await.ok()?;
    io.flush().await.ok()?;
    // The request is over (the connection idle again) only once its answer is out.
    drop(body);
    io.read_later(ahead.freeze());
    Some(io)
}

/// Appends the body's data to `payload` until the body ends (`Ready(true)`), reading
/// what the client sends meanwhile into `ahead` (its next request, if it pipelines):
/// `Ready(false)` if the client closed, or the body failed.
fn gather<IO: AsyncRead + Unpin>(
    cx: &mut Context<'_>,
    body: &mut ServingBody,
    io: &mut Prefixed<IO>,
    payload: &mut BytesMut,
    ahead: &mut BytesMut,
) -> Poll<bool> {
    loop {
        match Pin::new(&mut *body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    payload.extend_from_slice(data);
                }
            }
            Poll::Ready(Some(Err(_))) => return Poll::Ready(false),
            Poll::Ready(None) => return Poll::Ready(true),
            Poll::Pending => break,
        }
    }
    // Past a request head's worth, stop reading: hyper will refuse it anyway.
    while ahead.len() < MAX_HEAD_BYTES {
        let mut scratch = [0u8; 1024];
        let mut buf = ReadBuf::new(&mut scratch);
        match Pin::new(&mut *io).poll_read(cx, &mut buf) {
            Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                ahead.extend_from_slice(buf.filled())
            }
            Poll::Ready(_) => return Poll::Ready(false),
            Poll::Pending => break,
        }
    }
    Poll::Pending
}

/// Writes `response` on `io`, its body chunked, until the body ends, the client
/// closes, or a write fails (the write deadline); then closes the connection.
async fn stream<IO>(mut io: Prefixed<IO>, response: Response<ServingBody>)
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let (parts, mut body) = response.into_parts();
    let mut out = Vec::with_capacity(256);
    head(&parts, &mut out);
    out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    end_head(&mut out);
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
    io: &mut Prefixed<IO>,
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

/// A connection's socket, with what was read from it but not yet parsed: the bytes
/// hyper had read past the request it handed off, and what the client sent while a
/// held answer waited. Reads give those first.
pub struct Prefixed<IO> {
    unread: Bytes,
    io: IO,
}

impl<IO> Prefixed<IO> {
    pub fn new(io: IO) -> Self {
        Self {
            unread: Bytes::new(),
            io,
        }
    }

    /// Puts `bytes` before what is still unread.
    pub fn read_first(&mut self, bytes: Bytes) {
        self.unread = join(bytes, std::mem::take(&mut self.unread));
    }

    /// Puts `bytes` after what is still unread.
    fn read_later(&mut self, bytes: Bytes) {
        self.unread = join(std::mem::take(&mut self.unread), bytes);
    }
}

fn join(first: Bytes, then: Bytes) -> Bytes {
    if first.is_empty() {
        return then;
    }
    if then.is_empty() {
        return first;
    }
    [first, then].concat().into()
}

impl<IO: AsyncRead + Unpin> AsyncRead for Prefixed<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.unread.is_empty() {
            return Pin::new(&mut self.io).poll_read(cx, buf);
        }
        let n = self.unread.len().min(buf.remaining());
        buf.put_slice(&self.unread[..n]);
        self.unread.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Prefixed<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
