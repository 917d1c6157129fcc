//! A WebTransport subscriber, as the page is one: it asks for the certificate's hash
//! (`GET /api/webtransport/certificate-hash`, on a connection of its own that the
//! wire does not count: a browser has the page's), opens a session at
//! `https://HOST:PORT/api/webtransport?since=…&delivery=…` (or a room's) trusting only that
//! hash, and reads one JSON frame per message from the stream the server opens (or, as
//! `--webtransport-delivery` asks, from a stream per message, or a datagram).
//!
//! The bytes counted are the QUIC connection's UDP payloads both ways (quinn's own
//! count: QUIC headers, frames, AEAD tags, ACKs and handshake; not the 8-byte UDP and
//! 20-byte IP headers, as the TCP clients do not count TCP's).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use anyhow::{Context, bail};
use futures::{Stream, StreamExt, stream};
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::time::MissedTickBehavior;
use wtransport::tls::Sha256Digest;
use wtransport::{ClientConfig, Connection, Endpoint, RecvStream};

use super::http::{Endpoint as HttpEndpoint, HttpConnection};
use super::{Run, Seen, connect_gated};
use crate::bench::tally::Receipts;
use crate::bench::wire::Wire;
use crate::protocol::{ServerFrame, WtDelivery};

/// How often a session's UDP bytes are added to the wire when no frame arrives: what
/// an idle row can miss at its end.
const COUNT_EVERY: Duration = Duration::from_secs(1);

pub async fn subscribe(run: &Run, index: usize, receipts: &mut Receipts) -> anyhow::Result<()> {
    let open = async {
        let (path, since) = run.path_of(index);
        let url = format!(
            "https://{}{path}?since={since}&{}={}",
            run.server.addr,
            WtDelivery::PARAM,
            run.webtransport_delivery.name()
        );
        let connection = connect(&run.server, index, &url).await?;
        let down = connection.accept_uni().await?;
        run.wire.connections.fetch_add(1, Relaxed);
        // Counted before the subscriber counts as connected (see `Run::requests`).
        run.count_request();
        anyhow::Ok((connection, down))
    };
    let (connection, down) = connect_gated(run, open).await?;
    let mut counted = UdpCount::default();
    counted.add(&connection, &run.wire);
    // QUIC's own packets (keep-alive PINGs, ACKs) come with no frame to read: counted
    // each second too, or an idle session would count nothing.
    let mut count_every = tokio::time::interval(COUNT_EVERY);
    count_every.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut frames = std::pin::pin!(frames(&connection, down));
    loop {
        let frame = tokio::select! {
            () = run.stop.cancelled() => return Ok(()),
            _ = count_every.tick() => {
                counted.add(&connection, &run.wire);
                continue;
            }
            frame = frames.next() => frame.context("the server ended the session")??,
        };
        counted.add(&connection, &run.wire);
        match serde_json::from_slice(&frame)? {
            ServerFrame::<Seen>::Message { message } => run.receive(receipts, &message),
            ServerFrame::Reset { .. } => receipts.resets += 1,
            ServerFrame::Error { error } => bail!("the server refused a frame: {error}"),
            ServerFrame::Close { code, reason } => bail!("the server closed: {code} {reason}"),
        }
    }
}

/// Every frame the server sends, however it travels ([`WtDelivery`]), as it arrives:
/// the lines of the long stream, whole streams of their own, and datagrams.
fn frames(
    connection: &Connection,
    down: RecvStream,
) -> impl Stream<Item = anyhow::Result<Vec<u8>>> {
    let lines = stream::unfold(BufReader::new(down), |mut down| async move {
        let mut line = Vec::new();
        match down.read_until(b'\n', &mut line).await {
            Ok(0) => None,
            read => Some((read.map(|_| line).map_err(Into::into), down)),
        }
    });
    let own_streams = stream::unfold(connection.clone(), |connection| async move {
        let mut own = connection.accept_uni().await.ok()?;
        let mut frame = Vec::new();
        let read = own.read_to_end(&mut frame).await.map(|_| frame);
        Some((read.map_err(Into::into), connection))
    });
    let datagrams = stream::unfold(connection.clone(), |connection| async move {
        let datagram = connection.receive_datagram().await.ok()?;
        Some((Ok(datagram.payload().to_vec()), connection))
    });
    stream::select(lines, stream::select(own_streams, datagrams))
}

/// The certificate's hash, as the page gets it.
pub async fn certificate_hash(server: &HttpEndpoint, index: usize) -> anyhow::Result<Sha256Digest> {
    #[derive(Deserialize)]
    struct Answer {
        hash: Hash,
    }
    #[derive(Deserialize)]
    struct Hash {
        value: String,
    }
    let mut http = HttpConnection::open(server, index, &Arc::new(Wire::default())).await?;
    let body = http.get("/api/webtransport/certificate-hash").await?;
    let answer: Answer = serde_json::from_slice(&body)?;
    let bytes: Vec<u8> = (0..answer.hash.value.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&answer.hash.value[i..i + 2], 16))
        .collect::<Result<_, _>>()?;
    let bytes: [u8; 32] = bytes
        .try_into()
        .ok()
        .context("a SHA-256 hash is 32 bytes")?;
    Ok(Sha256Digest::new(bytes))
}

/// Opens a session at `url` on `server`, trusting only the certificate the server
/// names (as `serverCertificateHashes` does in a browser).
pub async fn connect(server: &HttpEndpoint, index: usize, url: &str) -> anyhow::Result<Connection> {
    let hash = certificate_hash(server, index).await?;
    let config = ClientConfig::builder()
        .with_bind_address(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))
        .with_server_certificate_hashes([hash])
        .build();
    let endpoint = Endpoint::client(config)?;
    Ok(endpoint.connect(url).await?)
}

/// The UDP payload bytes of a connection already added to the wire.
#[derive(Default)]
struct UdpCount {
    read: u64,
    written: u64,
}

impl UdpCount {
    /// Adds what crossed the connection since the last call.
    fn add(&mut self, connection: &Connection, wire: &Wire) {
        let stats = connection.quic_connection().stats();
        wire.read.fetch_add(stats.udp_rx.bytes - self.read, Relaxed);
        wire.written
            .fetch_add(stats.udp_tx.bytes - self.written, Relaxed);
        (self.read, self.written) = (stats.udp_rx.bytes, stats.udp_tx.bytes);
    }
}
