//! An upgraded connection as `websocket.rs` uses it, in two halves:
//!
//! - [`Inbound`]: the client's frames, parsed by tungstenite (masks, fragments, UTF-8,
//!   size limits, the close handshake). The library answers a ping or a close by
//!   itself; here its answers are caught ([`Inbound::replies`]) and sent by the
//!   writer, so that exactly one party ever writes to the socket.
//! - [`Outbound`]: frames already encoded into bytes, written whole and in order.
//!   A message's frame is encoded once and the same bytes go to every client, so a
//!   delivery copies nothing per client; and a write only starts a timer when the
//!   socket is full.
//!
//! Frames from the server are never masked, so encoding one is a header of 2 to 10
//! bytes before the payload ([`frame`]).

use std::future::{Future, poll_fn};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::extract::ws::WebSocketUpgrade;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{Buf, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf, ReadHalf};
use tokio_tungstenite::WebSocketStream;
use tungstenite::handshake::derive_accept_key;
use tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tungstenite::protocol::frame::{CloseFrame, Frame, FrameHeader};
use tungstenite::protocol::{Role, WebSocketConfig};
use tungstenite::{Error, Message};

use crate::error::ApiError;

/// The upgraded connection.
type Io = TokioIo<Upgraded>;

/// A request to open a WebSocket, checked as axum's `WebSocketUpgrade` checks it
/// (`GET`, `Connection: upgrade`, `Upgrade: websocket`, version 13, a key).
pub struct Handshake {
    on_upgrade: OnUpgrade,
    /// Absent over HTTP/2, where the socket is a stream opened by CONNECT.
    key: Option<HeaderValue>,
}

impl<S: Send + Sync> FromRequestParts<S> for Handshake {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        // axum's extractor checks the request and takes the connection's upgrade
        // for itself; keep a handle to the same upgrade first.
        let on_upgrade = parts.extensions.get::<OnUpgrade>().cloned();
        let _checked = WebSocketUpgrade::from_request_parts(parts, state).await?;
        let on_upgrade = on_upgrade.expect("the extractor succeeds only with an upgrade to take");
        let key = parts.headers.get(header::SEC_WEBSOCKET_KEY).cloned();
        Ok(Self { on_upgrade, key })
    }
}

impl Handshake {
    /// The answer that completes the handshake. Once it is sent, `connection` runs
    /// with the two halves of the socket (see [`open`]).
    pub fn accept<F, C>(self, read_buffer: usize, max_frame: usize, connection: C) -> Response
    where
        C: FnOnce(Inbound, Outbound) -> F + Send + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let on_upgrade = self.on_upgrade;
        tokio::spawn(async move {
            // An upgrade that fails (the client left) has no one to tell.
            if let Ok(upgraded) = on_upgrade.await {
                let (inbound, outbound) = open(upgraded, read_buffer, max_frame).await;
                connection(inbound, outbound).await;
            }
        });
        match self.key {
            Some(key) => (
                StatusCode::SWITCHING_PROTOCOLS,
                [
                    (header::CONNECTION, HeaderValue::from_static("upgrade")),
                    (header::UPGRADE, HeaderValue::from_static("websocket")),
                    (
                        header::SEC_WEBSOCKET_ACCEPT,
                        derive_accept_key(key.as_bytes())
                            .parse()
                            .expect("base64 is a valid header value"),
                    ),
                ],
            )
                .into_response(),
            None => StatusCode::OK.into_response(),
        }
    }
}

/// Splits an upgraded connection; `read_buffer` bytes are kept for reading frames, and
/// frames may be at most `max_frame` bytes.
async fn open(upgraded: Upgraded, read_buffer: usize, max_frame: usize) -> (Inbound, Outbound) {
    let (read, write) = tokio::io::split(TokioIo::new(upgraded));
    let config = WebSocketConfig::default()
        .read_buffer_size(read_buffer)
        .max_message_size(Some(max_frame))
        .max_frame_size(Some(max_frame));
    let side = ReadSide {
        read,
        replies: Vec::new(),
    };
    let frames = WebSocketStream::from_raw_socket(side, Role::Server, Some(config)).await;
    (Inbound { frames }, Outbound::new(write))
}

/// The frames the client sends.
pub struct Inbound {
    frames: WebSocketStream<ReadSide>,
}

impl Inbound {
    /// The next frame; `None` once the connection is closed.
    pub async fn next(&mut self) -> Option<Result<Message, Error>> {
        let frame = self.frames.next().await;
        // Have the library write its answers to what it just read (a pong, the close
        // handshake) now, into `replies`: they would otherwise wait for the next read.
        // Once the close handshake is done this reports the connection closed, which
        // the next read says too.
        let _ = self.frames.flush().await;
        frame
    }

    /// What the library wrote in answer to what it read (a pong, a close), to be sent.
    pub fn replies(&mut self) -> Option<Bytes> {
        let replies = &mut self.frames.get_mut().replies;
        (!replies.is_empty()).then(|| Bytes::from(std::mem::take(replies)))
    }
}

/// The reading half, as the library sees the connection: reads come from the
/// socket, writes are kept for the writer.
struct ReadSide {
    read: ReadHalf<Io>,
    replies: Vec<u8>,
}

impl AsyncRead for ReadSide {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl AsyncWrite for ReadSide {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.replies.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Why frames could not be sent.
#[derive(Debug)]
pub enum SendError {
    /// The socket stayed full for the whole time allowed: the client stopped reading.
    Stalled,
    /// The connection is gone.
    Io(io::Error),
}

/// What [`Outbound::try_send`] managed without waiting.
#[derive(Debug, PartialEq, Eq)]
pub enum TrySend {
    /// Everything is written.
    Sent,
    /// The socket is full; what it did not take is kept and goes out first next time.
    Full,
    /// The connection is gone.
    Failed,
}

/// The writing half: whole frames, in order.
pub struct Outbound {
    write: Box<dyn AsyncWrite + Send + Unpin>,
    /// What a full socket did not take of earlier frames: it goes out before anything
    /// else, so frames never interleave.
    unsent: Bytes,
}

impl Outbound {
    pub fn new(write: impl AsyncWrite + Send + Unpin + 'static) -> Self {
        Self {
            write: Box::new(write),
            unsent: Bytes::new(),
        }
    }

    /// Whether everything handed to this half has been written.
    pub fn is_idle(&self) -> bool {
        self.unsent.is_empty()
    }

    /// Writes `frames` (after anything unsent), waiting while the socket is full, at
    /// most `limit` in all.
    pub async fn send(&mut self, frames: Bytes, limit: Duration) -> Result<(), SendError> {
        self.queue(frames);
        // The timer is only made if the socket is full: most writes finish at once.
        let mut deadline = None;
        poll_fn(|cx| {
            if self.poll_drain(cx).map_err(SendError::Io)?.is_ready() {
                return Poll::Ready(Ok(()));
            }
            let deadline = deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
            ready!(deadline.as_mut().poll(cx));
            Poll::Ready(Err(SendError::Stalled))
        })
        .await
    }

    /// Writes what the socket takes right now, never waiting (see [`TrySend`]).
    pub fn try_send(&mut self, frames: Bytes) -> TrySend {
        self.queue(frames);
        match self.poll_drain(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(Ok(())) => TrySend::Sent,
            Poll::Ready(Err(_)) => TrySend::Failed,
            Poll::Pending => TrySend::Full,
        }
    }

    fn queue(&mut self, frames: Bytes) {
        if self.unsent.is_empty() {
            self.unsent = frames;
        } else {
            // Only after the socket was full: rare, and at most one pass's worth.
            let mut both = BytesMut::with_capacity(self.unsent.len() + frames.len());
            both.extend_from_slice(&self.unsent);
            both.extend_from_slice(&frames);
            self.unsent = both.freeze();
        }
    }

    /// Writes `unsent` until it is empty and flushed, or the socket is full.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.unsent.is_empty() {
            match ready!(Pin::new(&mut self.write).poll_write(cx, &self.unsent))? {
                0 => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                n => self.unsent.advance(n),
            }
        }
        Pin::new(&mut self.write).poll_flush(cx)
    }
}

/// A text frame whose payload is `text`.
pub fn text(text: &[u8]) -> Bytes {
    let header = FrameHeader {
        opcode: OpCode::Data(Data::Text),
        ..FrameHeader::default()
    };
    let length = text.len() as u64;
    let mut frame = Vec::with_capacity(header.len(length) + text.len());
    header
        .format(length, &mut frame)
        .expect("writing to a Vec cannot fail");
    frame.extend_from_slice(text);
    frame.into()
}

/// The payload's length in an unmasked frame of `frame.len()` bytes (what
/// `/api/stats` counts: the frame's header is framing).
pub fn payload_len(frame: &[u8]) -> usize {
    match frame.len() {
        len if len <= 2 + 125 => len - 2,
        len if len <= 4 + 0xffff => len - 4,
        len => len - 10,
    }
}

/// An empty ping.
pub fn ping() -> Bytes {
    frame(Frame::ping(Bytes::new()))
}

/// A close frame with its code and reason.
pub fn close(code: u16, reason: &'static str) -> Bytes {
    frame(Frame::close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    })))
}

fn frame(frame: Frame) -> Bytes {
    let mut bytes = Vec::with_capacity(frame.len());
    frame
        .format(&mut bytes)
        .expect("writing to a Vec cannot fail");
    bytes.into()
}
