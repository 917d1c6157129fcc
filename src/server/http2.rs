//! How an HTTP/2 connection is served (over TLS only, when ALPN chose `h2`), and the
//! limits that keep one client from making it expensive.
//!
//! On HTTP/2 one TCP connection carries many requests at once, each a *stream*; a
//! page's SSE stream, held long poll, short polls and WebSocket (RFC 8441 extended
//! CONNECT, switched on here) all ride the same connection. That is what lifts the
//! browser's 6-connections-per-origin limit, and it also moves the costs a client can
//! impose from connections to streams, so the limits move with them:
//!
//! - **streams at once** per connection: `--h2-max-streams` (100), announced in
//!   SETTINGS; a stream over it is refused (RST_STREAM REFUSED_STREAM) before it
//!   reaches the app;
//! - **header list**: at most 32 KiB of decoded headers per request, as over HTTP/1.1
//!   (announced as SETTINGS_MAX_HEADER_LIST_SIZE); HPACK lets a few bytes on the wire
//!   name large headers, so the limit is on what they decode to;
//! - **rapid reset** (CVE-2023-44487): a client that opens streams and cancels them
//!   at once makes the server start work it never finishes, with no stream ever
//!   counting against the limit above. A connection whose client cancels more than
//!   [`MAX_PENDING_RESETS`] streams before the server could take them, or makes the
//!   server reset more than [`MAX_ERROR_RESETS`] of its streams for errors, is closed
//!   with GOAWAY ENHANCE_YOUR_CALM;
//! - **receive windows**: a client may send at most [`STREAM_WINDOW`] of request body
//!   per stream, [`CONNECTION_WINDOW`] per connection, before the server has read it
//!   (request bodies are at most 16 KiB anyway);
//! - **a client that stops reading**: over HTTP/1.1 its socket fills and the write
//!   deadline cuts it, but HTTP/2's flow control stops the server long before the
//!   socket fills, so here the server sends a PING every `--slow-client-timeout`
//!   and closes a connection that leaves one unanswered as long (counted, like the
//!   write deadline's cuts, as `limits.stalled_connections`);
//! - and, as over HTTP/1.1, the request body limit and deadline (the app's layers),
//!   the write deadline on the socket, and the connection caps: a stream held by SSE,
//!   a long poll or a WebSocket counts as a held connection, whatever carries it.

use hyper::server::conn::http2::Builder;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::MAX_HEAD_BYTES;
use crate::config::Config;

/// Streams a client may cancel before the server accepted them, per connection.
pub const MAX_PENDING_RESETS: usize = 20;

/// Streams the server may reset for a client's errors, per connection.
pub const MAX_ERROR_RESETS: usize = 100;

/// Request body a client may send on one stream before the server reads it.
pub const STREAM_WINDOW: u32 = 64 * 1024;

/// Request body a client may send on one connection before the server reads it.
pub const CONNECTION_WINDOW: u32 = 256 * 1024;

/// The builder for HTTP/2 connections.
pub fn builder(config: &Config) -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .enable_connect_protocol()
        .max_concurrent_streams(config.h2_max_streams)
        .max_header_list_size(MAX_HEAD_BYTES as u32)
        .max_pending_accept_reset_streams(MAX_PENDING_RESETS)
        .max_local_error_reset_streams(MAX_ERROR_RESETS)
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .keep_alive_interval(config.slow_client_timeout)
        .keep_alive_timeout(config.slow_client_timeout);
    builder
}

/// Whether a connection ended because its client left a PING unanswered.
pub fn unanswered_ping(error: &hyper::Error) -> bool {
    error.is_timeout()
}
