//! Per-transport counters, served at `GET /api/stats` and, from the same atomics, at
//! `GET /metrics`.
//!
//! Plain atomics, bumped by the transports as they work: cheap enough to count every
//! request and every delivery. `open` is a gauge, kept honest by the transports'
//! `Attendance`, which takes it back down however a connection ends.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

use crate::metrics::Latency;

/// The four ways pushlab pushes, named as in the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    ShortPoll,
    LongPoll,
    Sse,
    Websocket,
}

impl Transport {
    /// Push transports hold a connection open; pollers come and go.
    pub fn is_push(self) -> bool {
        matches!(self, Self::Sse | Self::Websocket)
    }

    /// Push transports and held long polls keep a connection busy while they wait;
    /// these count against the connection caps.
    pub fn holds_connection(self) -> bool {
        self != Self::ShortPoll
    }
}

/// Which HTTP carries a request, named as ALPN (and the browser's devtools) name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum HttpVersion {
    #[serde(rename = "http/1.1")]
    Http1,
    #[serde(rename = "h2")]
    Http2,
}

impl HttpVersion {
    pub const ALL: [Self; 2] = [Self::Http1, Self::Http2];

    /// The ALPN name, as in the JSON and the metrics' `http` label.
    pub fn name(self) -> &'static str {
        match self {
            Self::Http1 => "http/1.1",
            Self::Http2 => "h2",
        }
    }
}

/// One value per HTTP version, serialized under the ALPN names.
#[derive(Debug, Default, Serialize)]
pub struct ByHttp<T> {
    #[serde(rename = "http/1.1")]
    pub http1: T,
    #[serde(rename = "h2")]
    pub http2: T,
}

impl<T> ByHttp<T> {
    pub fn of(&self, version: HttpVersion) -> &T {
        match version {
            HttpVersion::Http1 => &self.http1,
            HttpVersion::Http2 => &self.http2,
        }
    }
}

/// A transport's connections or requests over one HTTP version.
#[derive(Debug, Default, Serialize)]
pub struct OverHttp {
    /// In progress now.
    pub open: AtomicU64,
    /// Since the server started.
    pub requests: AtomicU64,
}

/// TCP connections speaking one HTTP version (after the TLS handshake, with `--tls`).
#[derive(Debug, Default, Serialize)]
pub struct TcpConnections {
    /// Open now.
    pub open: AtomicU64,
    /// Since the server started.
    pub accepted: AtomicU64,
}

/// What one transport has done since the server started.
#[derive(Debug, Default, Serialize)]
pub struct Counters {
    /// Connections (push) or requests (polls) in progress now.
    pub open: AtomicU64,
    /// HTTP requests answered (polls) or streams and upgrades accepted (push).
    pub requests: AtomicU64,
    /// Poll answers that carried no message: the cost of asking when nothing is new.
    pub empty_responses: AtomicU64,
    /// Messages handed to clients.
    pub delivered: AtomicU64,
    /// Bytes of payload sent: response bodies, SSE events, WebSocket frames.
    pub bytes_sent: AtomicU64,
    /// Resets sent: cursors that could not be honoured.
    pub resets: AtomicU64,
    /// Clients closed because they stopped reading (WebSocket close 1013).
    pub slow_closes: AtomicU64,
    /// Clients dropped because they stopped answering pings.
    pub dead_closes: AtomicU64,
    /// `open` and `requests` again, split by the HTTP that carries them: on HTTP/2 a
    /// page's SSE stream and long poll share one TCP connection.
    pub http: ByHttp<OverHttp>,
    /// Publish-to-delivery times, served at `/metrics` only.
    #[serde(skip)]
    pub latency: Latency,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    /// Counts one message (or one poll answer's worth of them) going out.
    pub fn sent(&self, messages: u64, bytes: usize) {
        Self::add(&self.delivered, messages);
        Self::add(&self.bytes_sent, bytes as u64);
    }
}

/// One [`Counters`] per transport.
#[derive(Debug, Default, Serialize)]
pub struct Stats {
    pub short_poll: Counters,
    pub long_poll: Counters,
    pub sse: Counters,
    pub websocket: Counters,
}

impl Stats {
    pub fn of(&self, transport: Transport) -> &Counters {
        match transport {
            Transport::ShortPoll => &self.short_poll,
            Transport::LongPoll => &self.long_poll,
            Transport::Sse => &self.sse,
            Transport::Websocket => &self.websocket,
        }
    }
}
