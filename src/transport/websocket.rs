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
//! The socket is split in two halves: this task writes (messages from the hub, replies
//! to bad frames, pings, the close) and a reader task parses what the client sends and
//! publishes it. A message sent over the socket comes back to its sender like to
//! everyone else, by the hub, with its id.
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

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::http::{HeaderMap, Uri, header};
use axum::response::Response;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::{Instant, interval_at, sleep_until, timeout};
use tokio_util::task::task_tracker::TaskTrackerToken;

use super::Attendance;
use super::arrival::Arrival;
use crate::error::ApiError;
use crate::hub::{Cursor, Delivery, Room};
use crate::message::MAX_BODY_BYTES;
use crate::message::Via;
use crate::protocol::{ServerFrame, Transport};
use crate::server::Serving;
use crate::state::AppState;
use crate::stats::{Counters, HttpVersion};

/// Each socket's read buffer (see `upgrade`).
const READ_BUFFER_BYTES: usize = 4 * 1024;

/// What the reader task tells the writer.
enum FromReader {
    /// Write this frame (an error reply, or a close).
    Write(Message),
    /// A frame arrived (a pong, or anything else): the client is alive.
    Heard,
}

/// `GET /api/rooms/{room}/ws?since=ID` (the lobby's at `/api/ws`), or `CONNECT` over
/// HTTP/2: checks the page's origin, then upgrades.
pub async fn upgrade(
    headers: HeaderMap,
    uri: Uri,
    arrival: Arrival,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let ws = ws?;
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
    };
    Ok(ws
        .max_message_size(MAX_BODY_BYTES)
        .max_frame_size(MAX_BODY_BYTES)
        // The library reserves a 128 KiB read buffer per socket by default; clients
        // send small frames, so 4 KiB keeps an idle connection cheap.
        .read_buffer_size(READ_BUFFER_BYTES)
        .on_upgrade(move |socket| connection(socket, app, attendance, cursor, ip, holds)))
}

/// What a socket keeps for as long as it lives: shutdown waits for its close frame,
/// and its connection is in use (over HTTP/2 the socket is one stream of a connection
/// that must not be closed as idle under it).
struct Holds {
    _close_awaited: TaskTrackerToken,
    _connection_in_use: Serving,
}

/// One client's connection, from upgrade to close.
async fn connection(
    socket: WebSocket,
    app: Arc<AppState>,
    attendance: Attendance,
    cursor: Cursor,
    ip: IpAddr,
    _holds: Holds,
) {
    let config = &app.config;
    let (mut sink, stream) = socket.split();
    let room = attendance.room().clone();
    let mut subscription = room.subscribe(cursor);
    let (to_writer, mut from_reader) = mpsc::channel(16);
    let reader = tokio::spawn(read_frames(stream, app.clone(), room, ip, to_writer));

    let mut pings = interval_at(Instant::now() + config.ws_ping, config.ws_ping);
    // When the oldest unanswered ping must be answered by.
    let mut pong_due: Option<Instant> = None;
    loop {
        let frame = tokio::select! {
            delivery = subscription.next() => match delivery {
                Some(delivery) => encode(&attendance, delivery),
                None => break,
            },
            from = from_reader.recv() => match from {
                Some(FromReader::Write(frame)) => frame,
                Some(FromReader::Heard) => {
                    pong_due = None;
                    continue;
                }
                None => break, // the reader ended: the client closed or vanished
            },
            _ = pings.tick() => {
                pong_due.get_or_insert(Instant::now() + config.ws_pong_timeout);
                Message::Ping(Default::default())
            }
            () = sleep_until(pong_due.unwrap_or_else(Instant::now)), if pong_due.is_some() => {
                Counters::add(&attendance.counters().dead_closes, 1);
                break;
            }
            () = app.shutdown.cancelled() => close(close_code::AWAY, "server shutting down"),
        };
        let closing = matches!(frame, Message::Close(_));
        match timeout(config.slow_client_timeout, sink.send(frame)).await {
            Ok(Ok(())) if !closing => {}
            Ok(_) => break,
            Err(_) => {
                Counters::add(&attendance.counters().slow_closes, 1);
                let too_slow = close(close_code::AGAIN, "too slow: reconnect from your cursor");
                give_up(&mut sink, too_slow).await;
                break;
            }
        }
    }
    reader.abort();
}

/// Reads the client's frames until it closes; publishes `send` frames.
async fn read_frames(
    mut stream: SplitStream<WebSocket>,
    app: Arc<AppState>,
    room: Arc<Room>,
    ip: IpAddr,
    to_writer: mpsc::Sender<FromReader>,
) {
    while let Some(frame) = stream.next().await {
        // Any frame proves the client is there; if the writer is busy, it will hear
        // from the next one.
        let _ = to_writer.try_send(FromReader::Heard);
        let outcome = match frame {
            Ok(Message::Text(text)) => super::publish_frame(&app, &room, ip, &text, Via::Websocket)
                .await
                .map(drop),
            Ok(Message::Binary(_)) => Err("binary frames are not supported; send JSON text".into()),
            Ok(Message::Pong(_)) => Ok(()),
            Ok(Message::Ping(_)) => Ok(()), // answered by the WebSocket library itself
            // Read on: the next read sends the library's answering close frame, and
            // then ends the stream.
            Ok(Message::Close(_)) => continue,
            Err(error) => {
                let _ = to_writer.send(FromReader::Write(refusal(error))).await;
                break;
            }
        };
        if let Err(error) = outcome {
            let reply = ServerFrame::<()>::Error { error }.to_text();
            if to_writer
                .send(FromReader::Write(Message::text(reply)))
                .await
                .is_err()
            {
                break;
            }
        }
    }
}

/// A delivery as a text frame.
fn encode(attendance: &Attendance, delivery: Delivery) -> Message {
    let frame = match delivery {
        Delivery::Message(entry) => {
            let frame = ServerFrame::Message {
                message: &*entry.json,
            }
            .to_text();
            attendance.sent([&entry], frame.len());
            frame
        }
        Delivery::Reset { last_id } => {
            Counters::add(&attendance.counters().resets, 1);
            ServerFrame::<()>::Reset { last_id }.to_text()
        }
    };
    Message::text(frame)
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
fn refusal(error: axum::Error) -> Message {
    match error
        .into_inner()
        .downcast::<tungstenite::Error>()
        .map(|e| *e)
    {
        Ok(tungstenite::Error::Capacity(_)) => close(
            close_code::SIZE,
            "message too big: at most 16 KiB (a message text is at most 2000 characters)",
        ),
        Ok(tungstenite::Error::Utf8(_)) => close(close_code::INVALID, "text frame is not UTF-8"),
        _ => close(close_code::PROTOCOL, "malformed WebSocket frame"),
    }
}

fn close(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

/// Tries, briefly, to tell a stuck client why it is being closed.
async fn give_up(sink: &mut SplitSink<WebSocket, Message>, frame: Message) {
    let _ = timeout(Duration::from_secs(1), sink.send(frame)).await;
}
