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
//! A connection can end four ways besides the client closing it, each with its close
//! code: the server shuts down (1001), the client stops reading so a frame cannot be
//! written within `--slow-client-timeout` (1013, "try again later": it may reconnect
//! from its cursor), the client sends a message over the size limit (1009), or it stops
//! answering pings (dropped: nobody is there to read a close frame).
//!
//! Cost: one open connection per client, and a small binary frame header (2–14 bytes)
//! per message instead of HTTP headers. Gain: the lowest latency and overhead, and the
//! client can send on the same connection. It is not "raw TCP": it starts as HTTP/1.1,
//! so the page's `Origin` is checked, and proxies must be told to pass the `Upgrade` on.
//!
//! A faster path hides behind one call, `Writer::next`: while a connection has caught
//! up and has nothing of its own to write, its socket is lent to one task that writes
//! each new message to every such socket in a single pass (`websocket/fanout.rs`, the
//! way a C server's event loop works). Everything in this file happens the same way
//! with or without it.

mod fanout;
mod socket;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::close_code;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use tokio::time::{Instant, interval_at, sleep_until, timeout};
use tokio_util::task::task_tracker::TaskTrackerToken;
use tungstenite::Message;

pub use fanout::{Fanout, Writer};
use socket::{Handshake, Inbound, Outbound, SendError};

use super::Attendance;
use super::cursor::CursorParams;
use crate::error::ApiError;
use crate::extract::Query;
use crate::hub::{Cursor, Delivery, Encoding, Entry};
use crate::message::{NewMessage, Via};
use crate::presence::Visitor;
use crate::server::ClientAddr;
use crate::stats::{Counters, Transport};
use crate::{AppState, MAX_BODY_BYTES};

/// Each socket's buffer for reading the client's frames. Clients send small frames,
/// so 2 KiB keeps an idle connection cheap (a bigger frame grows it, up to the 16 KiB
/// limit).
const READ_BUFFER_BYTES: usize = 2 * 1024;

/// What a client may send.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum ClientFrame {
    Send(NewMessage),
}

/// A message as a text frame, `{"type":"message","message":{…}}`: encoded once per
/// message, its bytes shared by every socket.
pub struct MessageFrame;

impl Encoding for MessageFrame {
    const SLOT: usize = 0;

    fn encode(entry: &Entry) -> Bytes {
        let json = entry.json.get().as_bytes();
        socket::text(&[br#"{"type":"message","message":"#, json, b"}"])
    }
}

/// `GET /api/ws?since=ID`: checks the handshake and the page's origin, then upgrades.
pub async fn upgrade(
    State(app): State<Arc<AppState>>,
    ConnectInfo(client): ClientAddr,
    headers: HeaderMap,
    Query((params, visitor)): Query<(CursorParams, Visitor)>,
    handshake: Result<Handshake, ApiError>,
) -> Result<Response, ApiError> {
    let handshake = handshake?;
    app.origins.check(&headers)?;
    let cursor = params.cursor()?;
    let attendance = Attendance::begin(&app, Transport::Websocket, &visitor, client.ip())?;
    // Taken before the upgrade completes, so that a shutdown in between still waits
    // for this socket's close frame.
    let tracked = app.sockets.token();
    Ok(handshake.accept(
        READ_BUFFER_BYTES,
        MAX_BODY_BYTES,
        move |inbound, outbound| {
            connection(
                inbound,
                outbound,
                app,
                attendance,
                cursor,
                client.ip(),
                tracked,
            )
        },
    ))
}

/// One client's connection, from upgrade to close.
async fn connection(
    mut inbound: Inbound,
    outbound: Outbound,
    app: Arc<AppState>,
    attendance: Attendance,
    cursor: Cursor,
    ip: IpAddr,
    _tracked: TaskTrackerToken, // shutdown waits for the close frame while this lives
) {
    let config = &app.config;
    let mut writer = Writer::new(outbound, app.hub.subscribe(cursor));
    let mut pings = interval_at(Instant::now() + config.ws_ping, config.ws_ping);
    // When the oldest unanswered ping must be answered by.
    let mut pong_due: Option<Instant> = None;
    let shutdown = app.shutdown.cancelled();
    tokio::pin!(shutdown);
    loop {
        // The frames to write, and whether they are the last.
        let (frames, last) = tokio::select! {
            frames = writer.next(&app, |delivery| encode(&attendance, delivery)) => match frames {
                Some(frames) => (frames, false),
                None => break,
            },
            frame = inbound.next() => {
                pong_due = None; // any frame proves the client is there
                let (answer, last) = match frame {
                    Some(frame) => read(&app, ip, frame).await,
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
        };
        // A lent socket comes back from the fan-out before anything else is written.
        let Some(socket) = writer.socket(&app).await else {
            break;
        };
        match socket.send(frames, config.slow_client_timeout).await {
            Ok(()) if !last => {}
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

/// What a frame from the client calls for: an answer to write, and whether the
/// connection ends with it.
async fn read(
    app: &AppState,
    ip: IpAddr,
    frame: Result<Message, tungstenite::Error>,
) -> (Option<Bytes>, bool) {
    let outcome = match frame {
        Ok(Message::Text(text)) => publish(app, ip, &text).await,
        Ok(Message::Binary(_)) => Err("binary frames are not supported; send JSON text".into()),
        // A ping is answered by the library; a close too, and the next read ends.
        Ok(Message::Ping(_) | Message::Pong(_) | Message::Close(_) | Message::Frame(_)) => Ok(()),
        Err(error) => return (Some(refusal(error)), true),
    };
    let answer = outcome.err().map(|error| {
        let reply = json!({ "type": "error", "error": error }).to_string();
        socket::text(&[reply.as_bytes()])
    });
    (answer, false)
}

/// A `send` frame becomes a message in the hub; anything else, or a message the store
/// could not keep, is explained back.
async fn publish(app: &AppState, ip: IpAddr, text: &str) -> Result<(), String> {
    let ClientFrame::Send(new) = serde_json::from_str(text).map_err(|e| {
        format!("invalid frame ({e}); expected {{\"type\":\"send\",\"author\":…,\"text\":…}}")
    })?;
    let draft = new.validate(Via::Websocket).map_err(|e| e.to_string())?;
    app.publish_rate.check(ip).map_err(|e| e.to_string())?;
    let stored = app.hub.publish(draft).await;
    stored.map(drop).map_err(|e| ApiError::from(e).to_string())
}

/// A delivery as a text frame.
fn encode(attendance: &Attendance, delivery: Delivery) -> Bytes {
    match delivery {
        Delivery::Message(entry) => {
            let frame = entry.encoded::<MessageFrame>().clone();
            attendance.sent([&entry], frame.len());
            frame
        }
        Delivery::Reset { last_id } => {
            Counters::add(&attendance.counters().resets, 1);
            let reset = json!({ "type": "reset", "last_id": last_id }).to_string();
            socket::text(&[reset.as_bytes()])
        }
    }
}

/// The close frame for a read that failed: too big (1009), or broken framing (1002).
fn refusal(error: tungstenite::Error) -> Bytes {
    match error {
        tungstenite::Error::Capacity(_) => socket::close(
            close_code::SIZE,
            "message too big: at most 16 KiB (a message text is at most 2000 characters)",
        ),
        _ => socket::close(close_code::PROTOCOL, "malformed WebSocket frame"),
    }
}
