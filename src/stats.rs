//! Per-transport counters, served at `GET /api/stats` and, from the same atomics, at
//! `GET /metrics`.
//!
//! Plain atomics, bumped by the transports as they work: cheap enough to count every
//! request and every delivery. `open` is a gauge, kept honest by the transports'
//! `Attendance`, which takes it back down however a connection ends.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::{Serialize, Serializer};

use crate::protocol::Transport;

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use prometheus_client::encoding::{MetricEncoder, NoLabelSet};

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

/// One [`Counters`] per transport, indexed by [`Transport`]; as JSON, an object keyed
/// by each transport's API name.
#[derive(Debug, Default)]
pub struct Stats([Counters; Transport::ALL.len()]);

impl Stats {
    pub fn of(&self, transport: Transport) -> &Counters {
        &self.0[transport as usize]
    }
}

impl Serialize for Stats {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(Transport::ALL.map(|t| (t.name(), self.of(t))))
    }
}

/// Upper bounds of the latency buckets, in seconds: from loopback WebSocket speed to
/// a slow short-poll interval.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How long messages took from being published to being handed to a client: a
/// Prometheus histogram kept in plain atomics, so that recording a delivery is a clock
/// read and a few additions, with no lock (the WebSocket fan-out records thousands at
/// a time).
#[derive(Debug, Default)]
pub struct Latency {
    /// Deliveries per bucket of [`LATENCY_BUCKETS`], the last for anything slower.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Latency {
    /// Records one delivery of a message published at `sent_at`.
    pub fn observe(&self, sent_at: DateTime<Utc>) {
        self.observe_many(sent_at, unix_nanos_now(), 1);
    }

    /// Records `n` deliveries, at `now` (from [`unix_nanos_now`]), of a message
    /// published at `sent_at`.
    pub fn observe_many(&self, sent_at: DateTime<Utc>, now: i64, n: u64) {
        // `sent_at` may come from another instance's clock (Redis's, in fact): a
        // delivery that seems to precede its publish counts as instant.
        let nanos = sent_at
            .timestamp_nanos_opt()
            .map_or(0, |sent| now.saturating_sub(sent).max(0) as u64);
        let seconds = nanos as f64 / 1e9;
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[bucket].fetch_add(n, Relaxed);
        self.sum_nanos.fetch_add(nanos * n, Relaxed);
    }

    /// Writes the histogram for `/metrics`.
    pub fn encode(&self, mut encoder: MetricEncoder) -> fmt::Result {
        let bounds = LATENCY_BUCKETS.iter().chain([&f64::INFINITY]);
        let buckets: Vec<(f64, u64)> = bounds
            .zip(&self.buckets)
            .map(|(bound, n)| (*bound, n.load(Relaxed)))
            .collect();
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = self.sum_nanos.load(Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }
}

/// The wall clock in nanoseconds since 1970, as [`Latency::observe_many`] takes it.
pub fn unix_nanos_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}
