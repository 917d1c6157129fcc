//! `GET /metrics`: what pushlab is doing, in the Prometheus text format.
//!
//! Nothing here counts anything twice. The per-transport numbers are the very atomics
//! behind `/api/stats` ([`Stats`]), and the hub's numbers are its own counters; at
//! each scrape a [`Collector`] reads them and writes them out. The one thing only
//! `/metrics` has is a [`Latency`] histogram per transport, from a message's
//! `sent_at` to the moment a transport hands it to a client, which is what the four
//! techniques differ in most. A histogram (cheap fixed buckets, summed across
//! instances by Prometheus) rather than averages, because the tail is the story: a
//! short poll's latency is spread over its whole interval.
//!
//! Names follow Prometheus conventions: `pushlab_` prefix, `_total` on counters,
//! units in the name, and a `transport` label on everything per transport.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, prometheus_text};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use crate::protocol::Transport;
use crate::room::RoomName;
use crate::state::AppState;
use crate::stats::{Counters, HttpVersion, OverHttp, Stats, TcpConnections};

/// `GET /metrics`.
pub async fn metrics(State(app): State<Arc<AppState>>) -> impl IntoResponse {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape(app)));
    let mut body = String::new();
    prometheus_text::encode(&mut body, &registry).expect("writing to a String cannot fail");
    (
        [(header::CONTENT_TYPE, prometheus_text::CONTENT_TYPE)],
        body,
    )
}

/// A counter in a struct of counters (`T`): its metric name, help, type and field.
type Field<T> = (&'static str, &'static str, MetricType, fn(&T) -> &AtomicU64);

#[rustfmt::skip]
const FIELDS: [Field<Counters>; 8] = [
    ("pushlab_open_connections", "Connections (push) or requests (polls) in progress.", MetricType::Gauge, |c| &c.open),
    ("pushlab_requests", "Poll requests answered, or push streams and upgrades accepted.", MetricType::Counter, |c| &c.requests),
    ("pushlab_empty_responses", "Poll answers that carried no message.", MetricType::Counter, |c| &c.empty_responses),
    ("pushlab_delivered_messages", "Messages handed to clients.", MetricType::Counter, |c| &c.delivered),
    ("pushlab_sent_payload_bytes", "Bytes of payload sent: bodies, events, frames.", MetricType::Counter, |c| &c.bytes_sent),
    ("pushlab_resets", "Resets sent: cursors that could not be honoured.", MetricType::Counter, |c| &c.resets),
    ("pushlab_slow_closes", "Clients closed because they stopped reading.", MetricType::Counter, |c| &c.slow_closes),
    ("pushlab_dead_closes", "Clients dropped because they stopped answering pings.", MetricType::Counter, |c| &c.dead_closes),
];

#[rustfmt::skip]
const BY_HTTP: [Field<OverHttp>; 2] = [
    ("pushlab_open_connections_by_http", "Connections (push) or requests (polls) in progress, by HTTP version.", MetricType::Gauge, |o| &o.open),
    ("pushlab_requests_by_http", "Requests, streams and upgrades accepted, by HTTP version.", MetricType::Counter, |o| &o.requests),
];

#[rustfmt::skip]
const TCP: [Field<TcpConnections>; 2] = [
    ("pushlab_tcp_connections", "TCP connections open, by the HTTP they speak.", MetricType::Gauge, |c| &c.open),
    ("pushlab_tcp_connections_accepted", "TCP connections accepted, by the HTTP they speak.", MetricType::Counter, |c| &c.accepted),
];

/// Writes one value of a gauge or a counter family.
fn encode_value(
    metric: prometheus_client::encoding::MetricEncoder<'_>,
    kind: &MetricType,
    value: u64,
) -> Result<(), fmt::Error> {
    if matches!(kind, MetricType::Gauge) {
        ConstGauge::new(value as i64).encode(metric)
    } else {
        ConstCounter::new(value).encode(metric)
    }
}

/// Reads the live counters at scrape time.
struct Scrape(Arc<AppState>);

impl fmt::Debug for Scrape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Scrape")
    }
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let stats: &Stats = &self.0.stats;
        for (name, help, kind, field) in FIELDS {
            let mut family = encoder.encode_descriptor(name, help, None, kind)?;
            for transport in Transport::ALL {
                let value = field(stats.of(transport)).load(Relaxed);
                let labels = [("transport", transport.name())];
                encode_value(family.encode_family(&labels)?, &kind, value)?;
            }
        }

        // The same split by the HTTP that carries each request, and the TCP
        // connections themselves: on HTTP/2 many requests share one.
        let tcp = &self.0.connections;
        for (name, help, kind, field) in BY_HTTP {
            let mut family = encoder.encode_descriptor(name, help, None, kind)?;
            for transport in Transport::ALL {
                for http in HttpVersion::ALL {
                    let labels = [("transport", transport.name()), ("http", http.name())];
                    let value = field(stats.of(transport).http.of(http)).load(Relaxed);
                    encode_value(family.encode_family(&labels)?, &kind, value)?;
                }
            }
        }
        for (name, help, kind, field) in TCP {
            let mut family = encoder.encode_descriptor(name, help, None, kind)?;
            for http in HttpVersion::ALL {
                let labels = [("http", http.name())];
                let value = field(tcp.of(http)).load(Relaxed);
                encode_value(family.encode_family(&labels)?, &kind, value)?;
            }
        }

        let mut family = encoder.encode_descriptor(
            "pushlab_delivery_latency",
            "Time from a message's publish to its delivery to a client.",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        for transport in Transport::ALL {
            let labels = [("transport", transport.name())];
            let metric = family.encode_family(&labels)?;
            stats.of(transport).latency.encode(metric)?;
        }

        let hub = &self.0.hub;
        let gauges = [
            (
                "pushlab_last_id",
                "The newest message id this instance holds in the lobby room.",
                hub.bounds(&RoomName::lobby()).newest,
            ),
            (
                "pushlab_retained_messages",
                "Messages this instance holds in memory, over every room.",
                hub.retained(),
            ),
            (
                "pushlab_rooms",
                "Rooms in memory: with messages, or with someone in them.",
                hub.room_count() as u64,
            ),
            (
                "pushlab_idle_connections",
                "Open connections waiting for a request.",
                self.0.idle.count() as u64,
            ),
        ];
        for (name, help, value) in gauges {
            let metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            ConstGauge::new(value as i64).encode(metric)?;
        }
        let counters = [
            (
                "pushlab_store_errors",
                "Publishes the store refused, and failed reads of a shared log.",
                hub.store_errors(),
            ),
            (
                "pushlab_subscriber_lags",
                "Times a push subscriber fell behind and re-read history.",
                hub.lags(),
            ),
            (
                "pushlab_rate_limited",
                "Publishes refused by --publish-rate (HTTP 429, WebSocket error frame).",
                self.0.publish_rate.refused(),
            ),
            (
                "pushlab_refused_connections",
                "Held connections refused by the connection caps (HTTP 503).",
                self.0.caps.refused(),
            ),
            (
                "pushlab_stalled_connections",
                "Connections cut because the client stopped reading.",
                self.0.stalls.count(),
            ),
            (
                "pushlab_refused_origins",
                "WebSocket handshakes refused for a foreign Origin (HTTP 403).",
                self.0.origins.refused(),
            ),
            (
                "pushlab_refused_hosts",
                "Requests refused for a host name this server does not answer to (HTTP 421).",
                self.0.hosts.refused(),
            ),
            (
                "pushlab_idle_timeouts",
                "Connections closed because no request came in time (--header-timeout, --keep-alive-timeout).",
                self.0.idle.timed_out(),
            ),
            (
                "pushlab_idle_shed",
                "Idle connections closed to make room (--max-idle-connections, or out of file descriptors).",
                self.0.idle.shed(),
            ),
            (
                "pushlab_accept_failures",
                "Connections the server could not accept (out of file descriptors, most likely).",
                self.0.idle.accept_failures(),
            ),
        ];
        for (name, help, value) in counters {
            let metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(value).encode(metric)?;
        }
        Ok(())
    }
}
