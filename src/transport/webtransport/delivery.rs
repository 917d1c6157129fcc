//! How a WebTransport session's messages travel. QUIC offers three ways, and a client
//! picks one with `?delivery=` (see [`WtDelivery`]); the frames are the same JSON:
//!
//! ```text
//! stream              ⇐ one uni stream:  {"type":"message",…}\n{"type":"message",…}\n …
//! stream-per-message  ⇐ uni stream:  {"type":"message",…}\n FIN     (one per message)
//!                     ⇐ uni stream:  {"type":"message",…}\n FIN
//! datagrams           ⇐ DATAGRAM:    {"type":"message",…}\n         (live ones that fit)
//!                     ⇐ the one stream: history, resets, `close`, messages too big
//! ```
//!
//! **Why `stream` is the default, measured** (one run of each, release build, loopback,
//! 2 cores shared with other work; chat messages of ~130 bytes of JSON; bytes are UDP
//! payloads both ways, ACKs included; `pushlab bench --transports webtransport
//! --workloads fanout --fanout-clients 100,1000 --messages 50 --rate 10
//! --webtransport-delivery WAY`, and `--fanout-clients 100 --messages 2000 --rate
//! 1000` for the burst):
//!
//! | clients, publishing | way | msg/s reached | p50 ms | p99 ms | lost | bytes / msg | server CPU ms / 1000 msgs |
//! |---|---|---|---|---|---|---|---|
//! | 100, 10 msg/s | stream | 10 | 3.7 | 10.8 | 0 | 261 | 42 |
//! | | stream per message | 10 | 6.6 | 53.8 | 0 | 281 | 46 |
//! | | datagrams | 10 | 5.1 | 58.4 | 0 | 251 | 44 |
//! | 1000, 10 msg/s | stream | 10 | 60.1 | 192.7 | 0 | 235 | 28.2 |
//! | | stream per message | 7 | 312.7 | 1332.6 | 0 | 226 | 28.4 |
//! | | datagrams | 10 | 84.2 | 575.3 | 0 | 228 | 21.2 |
//! | 100, 2000 msgs as fast as the server takes them | stream | 343 | 2.5 | 22.8 | 0 | 188 | 9.7 |
//! | | stream per message | 211 | 6.0 | 51.6 | 0 | 191 | 14.0 |
//! | | datagrams | 383 | 2.3 | 22.6 | 0 | 184 | 10.8 |
//!
//! A second run of the same commands put them in the same order (a stream per message
//! again the slowest: 208 against 338 msg/s in the burst, at 19.0 against 11.1 ms of
//! CPU per 1000; datagrams again lossless, within the runs' noise of the stream).
//!
//! - *A stream per message* is the slowest and the dearest: opening a stream is a
//!   QUIC stream id, a WebTransport stream header (`0x54` and the session id), a FIN,
//!   and every so many streams a `MAX_STREAMS` credit from the client; on the server a
//!   stream's state made and dropped per message per client. It would only pay where
//!   packets are lost and messages are independent (a lost packet then delays only
//!   its own message); a chat's messages are ordered, so the client would have to put
//!   them back in order itself.
//! - *Datagrams* lost nothing on loopback and cost about what the stream costs, a few
//!   bytes less per message: there is nothing to win where nothing is lost. Where
//!   packets are lost, a lost datagram is gone, and a chat message must not be: the
//!   client would see a gap in the ids and fetch it again (its cursor is the last id
//!   read *without* a gap), which is the stream's retransmission rebuilt by hand, one
//!   round trip later. And a datagram holds about 1 200 bytes while a message may be
//!   6 KB of JSON, so big messages need the stream anyway.
//! - *One stream* is ordered and lossless, so the cursor works as on every other
//!   transport (resume with `since=` the last id read) and a slow reader is seen by
//!   the stream's flow control, the way TCP shows it to WebSocket.
//!
//! So the page uses `stream`; the other two stay, a query parameter away, so that
//! their cost can be measured again.

use axum::http::Uri;
use wtransport::error::SendDatagramError;
use wtransport::{Connection, SendStream};

use crate::error::ApiError;
use crate::protocol::WtDelivery;

/// `?delivery=`: how the client wants its messages to travel.
pub(super) fn delivery_of(uri: &Uri) -> Result<WtDelivery, ApiError> {
    let query = uri.query().unwrap_or_default().as_bytes();
    let Some((_, asked)) = form_urlencoded::parse(query).find(|(k, _)| k == WtDelivery::PARAM)
    else {
        return Ok(WtDelivery::default());
    };
    clap::ValueEnum::from_str(&asked, false).map_err(|_| {
        ApiError::BadRequest(format!(
            "delivery must be stream, stream-per-message or datagrams, not {asked:?}"
        ))
    })
}

/// An accepted session: its connection, the stream the server opened, and how its
/// messages travel.
pub(super) struct Session {
    pub connection: Connection,
    pub down: SendStream,
    pub delivery: WtDelivery,
}

/// What a line carries, which decides how it may travel.
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    Reset,
    /// A message published before the session began.
    History,
    Live,
}

impl Session {
    /// Sends one line as the session asked.
    pub async fn send(&mut self, line: &[u8], kind: Kind) -> Option<()> {
        match (self.delivery, kind) {
            (WtDelivery::StreamPerMessage, Kind::History | Kind::Live) => {
                let mut own = self.connection.open_uni().await.ok()?.await.ok()?;
                // Dropping the stream sends its FIN, without waiting for the ACK.
                return own.write_all(line).await.ok();
            }
            (WtDelivery::Datagrams, Kind::Live) => match self.connection.send_datagram(line) {
                // Into quinn's datagram queue: if it is full, the oldest are dropped.
                Ok(()) => return Some(()),
                Err(SendDatagramError::NotConnected) => return None,
                // Too big for a datagram, or a peer without datagrams: the stream.
                Err(SendDatagramError::TooLarge | SendDatagramError::UnsupportedByPeer) => {}
            },
            _ => {}
        }
        self.down.write_all(line).await.ok()
    }
}
