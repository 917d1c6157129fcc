//! The five ways pushlab pushes the same chat to a browser, one file each:
//!
//! | module         | on the wire                                   | who sends        |
//! |----------------|-----------------------------------------------|------------------|
//! | [`short_poll`] | a request every few seconds, answered at once | client asks      |
//! | [`long_poll`]  | a request the server holds until news or 30 s | client asks      |
//! | [`sse`]        | one long HTTP response, an event per message  | server pushes    |
//! | [`websocket`]  | an upgraded connection, frames both ways      | both, any time   |
//! | [`webtransport`] | a QUIC session: one stream down, a stream per send up | both, any time |
//!
//! All five read the same [`Hub`](crate::hub::Hub); what they share beyond it is in
//! [`arrival`] (what a request brings: who, from where, which cursor), [`cursor`]
//! (parsing the parameters), [`Attendance`] (counting who is connected) and
//! [`publish`] (the one way a message enters the hub, over HTTP, WebSocket or WebTransport).

pub mod arrival;
pub mod cursor;
pub mod long_poll;
pub mod short_poll;
pub mod sse;
pub mod websocket;
pub mod webtransport;

use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::error::ApiError;
use crate::hub::{Entry, Room};
use crate::message::{NewMessage, Via};
use crate::presence::{Seat, Visitor};
use crate::protocol::{ClientFrame, Transport};
use crate::server::Carrier;
use crate::state::AppState;
use crate::stats::{Counters, HttpVersion};

/// The one way a message enters the hub, whichever way it came: checked against the
/// message rules, then against the sender's publish rate, then stored. An error says
/// which step refused it; nothing is stored unless every step passed.
pub async fn publish(
    app: &AppState,
    room: &Room,
    ip: IpAddr,
    new: NewMessage,
    via: Via,
) -> Result<Arc<Entry>, ApiError> {
    let draft = new.validate(via)?;
    app.publish_rate.check(ip)?;
    Ok(room.publish(draft).await?)
}

/// A `send` frame (over a WebSocket or a WebTransport stream) becomes a message in the
/// room; anything else, or a message the store could not keep, is explained back.
pub async fn publish_frame(
    app: &AppState,
    room: &Room,
    ip: IpAddr,
    text: &str,
    via: Via,
) -> Result<Arc<Entry>, String> {
    let ClientFrame::Send(new) = serde_json::from_str(text).map_err(|e| {
        format!("invalid frame ({e}); expected {{\"type\":\"send\",\"author\":…,\"text\":…}}")
    })?;
    publish(app, room, ip, new, via)
        .await
        .map_err(|e| e.to_string())
}

/// A request or connection in progress: in its room, counted in `open`, held against
/// the connection caps and listed as online until dropped, however it ends (answered,
/// closed by the client, or cancelled).
pub struct Attendance {
    app: Arc<AppState>,
    room: Arc<Room>,
    transport: Transport,
    /// The HTTP that carries it (its connection's, see [`Carrier`]); none over QUIC.
    http: Option<HttpVersion>,
    seat: Option<Seat>,
    ip: IpAddr,
    /// Messages published before this are history the client asked for, not news:
    /// their delivery is not timed. See [`Attendance::following`].
    news_since: DateTime<Utc>,
}

impl Attendance {
    /// Admits a client, or refuses it: bad `client`/`name` (400), or no room under the
    /// connection caps for a transport that holds its connection (503). `carrier` is
    /// the TCP connection the request came on (on HTTP/2, shared with others); none for
    /// a WebTransport session, which is counted in its transport's totals only.
    pub fn begin(
        app: &Arc<AppState>,
        room: Arc<Room>,
        transport: Transport,
        visitor: &Visitor,
        ip: IpAddr,
        carrier: Option<&Carrier>,
    ) -> Result<Self, ApiError> {
        let seat = visitor.seat(room.name(), transport)?;
        if transport.holds_connection() {
            app.caps.admit(ip)?;
        }
        if let Some(seat) = &seat {
            app.presence.arrive(seat, visitor.name(), carrier);
        }
        let counters = app.stats.of(transport);
        let http = carrier.map(|carrier| carrier.http);
        let over = http.map(|http| counters.http.of(http));
        for counter in [&counters.requests, &counters.open].into_iter().chain(
            over.into_iter()
                .flat_map(|over| [&over.requests, &over.open]),
        ) {
            Counters::add(counter, 1);
        }
        Ok(Self {
            app: app.clone(),
            room,
            transport,
            http,
            seat,
            ip,
            news_since: Utc::now(),
        })
    }

    /// The room this client is in: what it reads, and where it publishes.
    pub fn room(&self) -> &Arc<Room> {
        &self.room
    }

    /// This transport's counters.
    pub fn counters(&self) -> &Counters {
        self.app.stats.of(self.transport)
    }

    /// A poller that sends a cursor has been following the chat all along: what it
    /// receives is news to it, however long ago it was published, because that wait
    /// is exactly what polling costs.
    pub fn following(&mut self) {
        self.news_since = DateTime::<Utc>::MIN_UTC;
    }

    /// Counts `entries` going out in `bytes` of payload. Only news counts towards
    /// delivery latency (by default, messages published after the client arrived):
    /// the age of history a client asked for says nothing about the transport.
    pub fn sent<'a>(&self, entries: impl IntoIterator<Item = &'a Arc<Entry>>, bytes: usize) {
        let counters = self.counters();
        let mut messages = 0;
        for entry in entries {
            messages += 1;
            if entry.message.sent_at >= self.news_since {
                counters.latency.observe(entry.message.sent_at);
            }
        }
        counters.sent(messages, bytes);
    }
}

impl Drop for Attendance {
    fn drop(&mut self) {
        let counters = self.counters();
        let over = self.http.map(|http| &counters.http.of(http).open);
        for open in std::iter::once(&counters.open).chain(over) {
            open.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
        if let Some(seat) = &self.seat {
            self.app.presence.leave(seat);
        }
        if self.transport.holds_connection() {
            self.app.caps.release(self.ip);
        }
    }
}
