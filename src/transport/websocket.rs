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
//! The socket is split in two halves joined by `select!`: this task writes (messages
//! from the hub, replies to bad frames, the close on shutdown) and a reader task
//! parses what the client sends and publishes it. A message sent over the socket
//! comes back to its sender like to everyone else, by the hub, with its id.
//!
//! Cost: one open connection per client, and a small binary frame header (2–14
//! bytes) per message instead of HTTP headers. Gain: the lowest latency and overhead,
//! and the client can send on the same connection. It is not "raw TCP": it starts as
//! HTTP/1.1, and proxies must be told to pass the `Upgrade` on.

use std::sync::Arc;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade, close_code};
use axum::response::Response;
use futures::stream::SplitStream;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

use super::Attendance;
use super::cursor::CursorParams;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::Query;
use crate::hub::{Cursor, Delivery};
use crate::message::{NewMessage, Via};
use crate::presence::Visitor;
use crate::stats::{Counters, Transport};

/// What a client may send.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum ClientFrame {
    Send(NewMessage),
}

/// `GET /api/ws?since=ID`: the upgrade.
pub async fn upgrade(
    State(app): State<Arc<AppState>>,
    Query(params): Query<CursorParams>,
    Query(visitor): Query<Visitor>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let ws = ws?;
    let cursor = params.cursor()?;
    let attendance = Attendance::begin(&app, Transport::Websocket, &visitor)?;
    Ok(ws.on_upgrade(move |socket| connection(socket, app, attendance, cursor)))
}

/// One client's connection, from upgrade to close.
async fn connection(socket: WebSocket, app: Arc<AppState>, attendance: Attendance, cursor: Cursor) {
    let (mut sink, stream) = socket.split();
    let mut subscription = app.hub.subscribe(cursor);
    // Replies to the client's own frames (errors), written by this task.
    let (replies, mut to_send) = mpsc::channel(16);
    let reader = tokio::spawn(read_frames(stream, app.clone(), replies));
    loop {
        let frame = tokio::select! {
            delivery = subscription.next() => match delivery {
                Some(delivery) => encode(attendance.counters(), delivery),
                None => break,
            },
            reply = to_send.recv() => match reply {
                Some(reply) => reply,
                None => break, // the reader ended: the client closed or vanished
            },
            () = app.shutdown.cancelled() => {
                let _ = sink.send(close(close_code::AWAY, "server shutting down")).await;
                break;
            }
        };
        if sink.send(Message::Text(frame)).await.is_err() {
            break;
        }
    }
    reader.abort();
}

/// Reads the client's frames until it closes; publishes `send` frames.
async fn read_frames(
    mut stream: SplitStream<WebSocket>,
    app: Arc<AppState>,
    replies: mpsc::Sender<Utf8Bytes>,
) {
    while let Some(Ok(frame)) = stream.next().await {
        let outcome = match frame {
            Message::Text(text) => publish(&app, &text),
            Message::Binary(_) => Err("binary frames are not supported; send JSON text".into()),
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) => Ok(()),
        };
        if let Err(error) = outcome {
            let reply = json!({ "type": "error", "error": error }).to_string();
            if replies.send(reply.into()).await.is_err() {
                break;
            }
        }
    }
}

/// A `send` frame becomes a message in the hub; anything else is explained back.
fn publish(app: &AppState, text: &str) -> Result<(), String> {
    let ClientFrame::Send(new) = serde_json::from_str(text).map_err(|e| {
        format!("invalid frame ({e}); expected {{\"type\":\"send\",\"author\":…,\"text\":…}}")
    })?;
    let draft = new.validate(Via::Websocket).map_err(|e| e.to_string())?;
    app.hub.publish(draft);
    Ok(())
}

/// A delivery as a text frame.
fn encode(counters: &Counters, delivery: Delivery) -> Utf8Bytes {
    let frame = match delivery {
        Delivery::Message(entry) => {
            let frame = format!(r#"{{"type":"message","message":{}}}"#, entry.json.get());
            counters.sent(1, frame.len());
            frame
        }
        Delivery::Reset { last_id } => {
            Counters::add(&counters.resets, 1);
            json!({ "type": "reset", "last_id": last_id }).to_string()
        }
    };
    frame.into()
}

fn close(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}
