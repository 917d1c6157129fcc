//! WebSocket: one HTTP request asks to *upgrade* the connection; after the `101
//! Switching Protocols` answer, both sides send framed messages whenever they like.
//!
//! ```text
//! GET /api/ws?since=41    Connection: Upgrade, Upgrade: websocket, Sec-WebSocket-Key: …
//! 101 Switching Protocols
//! ← {"type":"message","message":{"id":42,…}}        server → client, any time
//! → {"type":"send","author":"bob","text":"hello"}  client → server, same connection
//! ← {"type":"error","error":"text must not be empty"}   a bad frame; the socket stays open
//! ```
//!
//! One task per connection waits for whichever comes first: a message from the hub, a
//! frame from the client (a message to publish, a pong), the time to ping, or the
//! server shutting down; then it writes what that calls for. A message sent over the
//! socket comes back to its sender like to everyone else, by the hub, with its id.
//! Each message's frame is encoded once and its bytes shared by every socket
//! (`socket.rs` has the two halves of the connection).
//!
//! A connection can end in several ways besides the client closing it (answered with
//! a close frame of its own), each with its close code: the server shuts down (1001),
//! the client stops reading so a frame cannot be written within
//! `--slow-client-timeout` (1013, "try again later": it may reconnect from its cursor),
//! the client sends a message over the size limit (1009), a text frame that is not
//! UTF-8 (1007) or a broken frame (1002), or it stops answering pings (dropped: nobody
//! is there to read a close frame).
//!
//! Cost: one open connection per client, and a small binary frame header (2–14 bytes)
//! per message instead of HTTP headers. Gain: the lowest latency and overhead, and the
//! client can send on the same connection. It is not "raw TCP": it starts as HTTP/1.1,
//! so the page's `Origin` is checked, and proxies must be told to pass the `Upgrade` on.
//!
//! Over HTTP/2 (`--tls`) there is no Upgrade: the socket is one *stream* of the page's
//! connection, opened by an extended CONNECT (RFC 8441), and the same frames flow in
//! that stream's DATA frames:
//!
//! ```text
//! HEADERS  :method CONNECT  :protocol websocket  :path /api/ws?since=41
//! HEADERS  :status 200                              then frames, as above
//! ```
//!
//! A faster path hides behind one call, `Writer::next`: while a connection has caught
//! up and has nothing of its own to write, its socket is lent to one task per room that
//! writes each new message to every such socket in a single pass
//! (`websocket/fanout.rs`, the way a C server's event loop works). Everything in this
//! file happens the same way with or without it.

mod fanout;
mod socket;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::ws::close_code;
use axum::http::{HeaderMap, Uri, header};
use axum::response::Response;
use bytes::Bytes;
use tokio::time::{Instant, interval_at, sleep, sleep_until, timeout};
use tokio_util::task::task_tracker::TaskTrackerToken;
use tungstenite::Message;

pub use fanout::Fanout;
use fanout::Writer;
use socket::{Handshake, Inbound, Outbound, SendError};

use super::Attendance;
use super::arrival::Arrival;
use crate::error::ApiError;
use crate::hub::{Cursor, Delivery, Encoding, Entry, Room};
use crate::lab::{Ending, Session, Ticket};
use crate::message::{MAX_BODY_BYTES, Via};
use crate::protocol::{ServerFrame, Transport};
use crate::server::Serving;
use crate::state::AppState;
use crate::stats::{Counters, HttpVersion};

/// Each socket's buffer for reading the client's frames. Clients send small frames,
/// so 2 KiB keeps an idle connection cheap (a bigger frame grows it, up to the 16 KiB
/// limit).
const READ_BUFFER_BYTES: usize = 2 * 1024;

/// A message as a text frame, `{"type":"message","message":{…}}`: encoded once per
/// message, its bytes shared by every socket.
pub struct MessageFrame;

impl Encoding for MessageFrame {
    const SLOT: usize = 0;

    fn encode(entry: &Entry) -> Bytes {
        let text = ServerFrame::Message {
            message: &*entry.json,
        }
        .to_text();
        socket::text(text.as_bytes())
    }
}

/// `GET /api/rooms/{room}/ws?since=ID` (the lobby's at `/api/ws`), or `CONNECT` over
/// HTTP/2: checks the handshake and the page's origin, then upgrades.
pub async fn upgrade(
    headers: HeaderMap,
    uri: Uri,
    arrival: Arrival,
    lab: Option<Extension<Ticket>>,
    handshake: Result<Handshake, ApiError>,
) -> Result<Response, ApiError> {
    let handshake = handshake?;
    // HTTP/1.1's Upgrade carries a key; HTTP/2's extended CONNECT has none (RFC 8441).
    let keyed = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .is_some_and(|key| is_handshake_key(key.as_bytes()));
    let Some(carrier) = arrival.carrier.clone() else {
        unreachable!("a WebSocket request comes through the accept loop, on a connection");
    };
    if carrier.http == HttpVersion::Http1 && !keyed {
        return Err(ApiError::BadRequest(
            "Sec-WebSocket-Key must be 16 random bytes in base64 (RFC 6455)".into(),
        ));
    }
    arrival.app.origins.check(&headers, &uri)?;
    let cursor = arrival.params.cursor()?;
    let attendance = arrival.attend(Transport::Websocket)?;
    let (app, ip) = (arrival.app, arrival.ip);
    // Taken before the upgrade completes, so that a shutdown in between still waits
    // for this socket's close frame.
    let holds = Holds {
        _close_awaited: app.sockets.token(),
        _connection_in_use: carrier.hold(),
        lab: lab.and_then(|Extension(ticket)| ticket.take()),
    };
    Ok(handshake.accept(
        READ_BUFFER_BYTES,
        MAX_BODY_BYTES,
        move |inbound, outbound| connection(inbound, outbound, app, attendance, cursor, ip, holds),
    ))
}

/// What a socket keeps for as long as it lives: shutdown waits for its close frame,
/// and its connection is in use (over HTTP/2 the socket is one stream of a connection
/// that must not be closed as idle under it).
struct Holds {
    _close_awaited: TaskTrackerToken,
    _connection_in_use: Serving,
    /// The fault lab's faults for this socket, when the lab is on (see `crate::lab`).
    lab: Option<Session>,
}

/// One client's connection, from upgrade to close.
async fn connection(
    mut inbound: Inbound,
    outbound: Outbound,
    app: Arc<AppState>,
    attendance: Attendance,
    cursor: Cursor,
    ip: IpAddr,
    mut holds: Holds,
) {
    let mut lab = holds.lab.take();
    let config = &app.config;
    let room = attendance.room().clone();
    let mut writer = Writer::new(&app, &room, outbound, cursor);
    if lab.as_ref().is_some_and(|lab| !lab.faults().is_clear()) {
        // Under the lab's faults every write is paced and timed here, not by the fan-out.
        writer = writer.keep_socket();
    }
    let mut pings = interval_at(Instant::now() + config.ws_ping, config.ws_ping);
    // When the oldest unanswered ping must be answered by.
    let mut pong_due: Option<Instant> = None;
    let shutdown = app.shutdown.cancelled();
    tokio::pin!(shutdown);
    loop {
        // The frames to write, and whether they are the last.
        let (frames, last) = tokio::select! {
            frames = writer.next(|delivery| encode(&attendance, delivery)) => match frames {
                Some(frames) => (frames, false),
                None => break,
            },
            frame = inbound.next() => {
                pong_due = None; // any frame proves the client is there
                let (answer, last) = match frame {
                    Some(frame) => read(&app, &room, ip, frame).await,
                    None => (None, true), // the client closed or vanished
                };
                // The library's own answers (a pong, the close handshake) go first.
                match (inbound.replies(), answer) {
                    (Some(replies), Some(answer)) => ([replies, answer].concat().into(), last),
                    (Some(frames), None) | (None, Some(frames)) => (frames, last),
                    (None, None) if last => break,
                    (None, None) => continue,
                }
            },
            _ = pings.tick() => {
                pong_due.get_or_insert(Instant::now() + config.ws_pong_timeout);
                (socket::ping(), false)
            }
            () = sleep_until(pong_due.unwrap_or_else(Instant::now)), if pong_due.is_some() => {
                Counters::add(&attendance.counters().dead_closes, 1);
                break;
            }
            () = &mut shutdown => (socket::close(close_code::AWAY, "server shutting down"), true),
            // Cut as a network fault would: no close frame, the TCP connection just ends.
            _ = lab_ending(&mut lab) => break,
        };
        // A lent socket comes back from the fan-out before anything else is written.
        let Some(socket) = writer.socket().await else {
            break;
        };
        if let Some(wait) = lab.as_ref().map(|lab| lab.pace(frames.len())) {
            sleep(wait).await; // a slow network
        }
        match socket.send(frames, config.slow_client_timeout).await {
            Ok(()) if !last => lab.iter_mut().for_each(Session::wrote),
            Ok(()) | Err(SendError::Io(_)) => break,
            Err(SendError::Stalled) => {
                Counters::add(&attendance.counters().slow_closes, 1);
                let too_slow =
                    socket::close(close_code::AGAIN, "too slow: reconnect from your cursor");
                // Briefly: its socket is full, so the client may never read it.
                let _ = timeout(Duration::from_secs(1), socket.send(too_slow, Duration::MAX)).await;
                break;
            }
        }
    }
}

/// When the fault lab ends this socket (never, without the lab).
async fn lab_ending(lab: &mut Option<Session>) -> Ending {
    match lab {
        Some(session) => session.ended().await,
        None => std::future::pending().await,
    }
}

/// What a frame from the client calls for: an answer to write, and whether the
/// connection ends with it.
async fn read(
    app: &AppState,
    room: &Room,
    ip: IpAddr,
    frame: Result<Message, tungstenite::Error>,
) -> (Option<Bytes>, bool) {
    let outcome = match frame {
        Ok(Message::Text(text)) => super::publish_frame(app, room, ip, &text, Via::Websocket)
            .await
            .map(drop),
        Ok(Message::Binary(_)) => Err("binary frames are not supported; send JSON text".into()),
        // A ping is answered by the library; a close too, and the next read ends.
        Ok(Message::Ping(_) | Message::Pong(_) | Message::Close(_) | Message::Frame(_)) => Ok(()),
        Err(error) => return (Some(refusal(error)), true),
    };
    let answer = outcome.err().map(|error| {
        let reply = ServerFrame::<()>::Error { error }.to_text();
        socket::text(reply.as_bytes())
    });
    (answer, false)
}

/// A delivery as a text frame.
fn encode(attendance: &Attendance, delivery: Delivery) -> Bytes {
    match delivery {
        Delivery::Message(entry) => {
            let frame = entry.encoded::<MessageFrame>().clone();
            attendance.sent([&entry], socket::payload_len(&frame));
            frame
        }
        Delivery::Reset { last_id } => {
            Counters::add(&attendance.counters().resets, 1);
            socket::text(ServerFrame::<()>::Reset { last_id }.to_text().as_bytes())
        }
    }
}

/// Whether a `Sec-WebSocket-Key` is what RFC 6455 asks for: 16 bytes in base64, which
/// is 22 characters, the last of them carrying 2 bits, then `==`.
fn is_handshake_key(key: &[u8]) -> bool {
    let base64 = |b: &u8| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/';
    key.len() == 24
        && key[..21].iter().all(base64)
        && matches!(key[21], b'A' | b'Q' | b'g' | b'w')
        && key.ends_with(b"==")
}

/// The close frame for a read that failed: too big (1009), a text frame that is not
/// UTF-8 (1007), or broken framing (1002).
fn refusal(error: tungstenite::Error) -> Bytes {
    match error {
        tungstenite::Error::Capacity(_) => socket::close(
            close_code::SIZE,
            "message too big: at most 16 KiB (a message text is at most 2000 characters)",
        ),
        tungstenite::Error::Utf8(_) => {
            socket::close(close_code::INVALID, "text frame is not UTF-8")
        }
        _ => socket::close(close_code::PROTOCOL, "malformed WebSocket frame"),
    }
}
