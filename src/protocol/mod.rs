//! pushlab's wire protocol, declared once: what the server writes, what the bench's
//! clients and the tests read, and the words both sides use.
//!
//! | transport  | the server sends                                         | the client sends            |
//! |------------|----------------------------------------------------------|-----------------------------|
//! | polls      | a [`PollAnswer`] per request                             | `since`, `limit`, `timeout` |
//! | SSE        | events named [`SSE_MESSAGE`] and [`SSE_RESET`]           | `since` or `Last-Event-ID`  |
//! | WebSocket  | a [`ServerFrame`] per text frame                         | [`ClientFrame`]s            |
//! | WebTransport | [`ServerFrame`]s, one JSON line each, on one stream (or as [`WtDelivery`] says) | a [`ClientFrame`] per bidirectional stream |
//!
//! The types are generic over how a message is carried: the server fills them with the
//! JSON the hub serialized once (`&RawValue`), a client with whatever it parses a
//! message into (the bench reads two fields, the tests a `serde_json::Value`).

mod transport;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use transport::Transport;

use crate::message::NewMessage;

/// Where a room's `endpoint` is (`messages`, `events`, a [`Transport::endpoint`] …):
/// `/api/rooms/{room}/<endpoint>`, or for the lobby the path from before rooms,
/// `/api/<endpoint>`. Both name the lobby; clients use the shorter one.
pub fn path(room: &str, endpoint: &str) -> String {
    if room == crate::room::LOBBY {
        format!("/api/{endpoint}")
    } else {
        format!("/api/rooms/{room}/{endpoint}")
    }
}

/// The longest a long poll is held, and the default.
pub const MAX_HOLD: Duration = Duration::from_secs(30);

/// The reconnection delay an SSE stream suggests to `EventSource` (`retry:`).
pub const SSE_RETRY: Duration = Duration::from_secs(3);
/// The SSE event that carries a message (its `id:` is the message id).
pub const SSE_MESSAGE: &str = "message";
/// The SSE event that says the cursor could not be honoured; its data is a [`Reset`].
pub const SSE_RESET: &str = "reset";

/// The body of a short or long poll's answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct PollAnswer<M> {
    /// Oldest first.
    pub messages: Vec<M>,
    /// The cursor for the next request.
    pub last_id: u64,
    /// The cursor sent could not be honoured: `messages` restart at the oldest held.
    pub reset: bool,
}

/// The data of an SSE `reset` event: the cursor to continue from.
#[derive(Debug, Serialize, Deserialize)]
pub struct Reset {
    pub last_id: u64,
}

/// A WebSocket text frame from the server.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ServerFrame<M> {
    /// `{"type":"message","message":{…}}`: the next message.
    Message { message: M },
    /// `{"type":"reset","last_id":N}`: the cursor could not be honoured.
    Reset { last_id: u64 },
    /// `{"type":"error","error":"…"}`: a frame from the client was refused; the socket
    /// stays open.
    Error { error: String },
    /// `{"type":"close","code":N,"reason":"…"}`: the last frame of a WebTransport
    /// session, saying why the server ends it. (A browser cannot read the reason a
    /// QUIC connection was closed with, so it is said in-band first.) The codes are
    /// [`WT_CLOSE_SHUTDOWN`], or the HTTP status of a refused session (`400` for a bad
    /// cursor, `503` when the server is full).
    Close { code: u32, reason: String },
}

/// The WebTransport close code for a server shutting down (WebSocket's "going away").
pub const WT_CLOSE_SHUTDOWN: u32 = 1001;
/// The WebTransport close code for a client too slow to read (WebSocket's "try again
/// later"): it may reconnect from its cursor.
pub const WT_CLOSE_TOO_SLOW: u32 = 1013;

/// How a WebTransport session's messages travel, as the client asks with
/// `?delivery=` (`stream` when absent). `src/transport/webtransport.rs` says what each
/// costs, measured, and why `stream` is the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum WtDelivery {
    /// Every frame on the one stream the server opens, a line each.
    #[default]
    Stream,
    /// Each message on a unidirectional stream of its own, ended by its FIN (resets and
    /// the `close` line stay on the long stream).
    StreamPerMessage,
    /// Each live message that fits as a datagram, unreliable; history, a message too
    /// big for a datagram, resets and the `close` line on the long stream.
    Datagrams,
}

impl WtDelivery {
    /// The query parameter that chooses it.
    pub const PARAM: &str = "delivery";

    /// Its name in `?delivery=`: `stream`, `stream-per-message`, `datagrams`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Stream => "stream",
            Self::StreamPerMessage => "stream-per-message",
            Self::Datagrams => "datagrams",
        }
    }
}

impl<M: Serialize> ServerFrame<M> {
    /// The frame's text.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).expect("frames hold only strings, numbers and JSON")
    }
}

/// A WebSocket text frame from a client.
#[derive(Debug, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "lowercase",
    expecting = r#"an object with a "type""#
)]
pub enum ClientFrame {
    /// `{"type":"send","author":"…","text":"…"}`: publish a message.
    Send(NewMessage),
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use serde_json::value::RawValue;

    use super::*;

    #[test]
    fn frames_read_as_the_api_documents_them() {
        let message = RawValue::from_string(r#"{"id":42}"#.into()).unwrap();
        let frame = ServerFrame::Message { message: &*message };
        assert_eq!(frame.to_text(), r#"{"type":"message","message":{"id":42}}"#);
        let reset = ServerFrame::<()>::Reset { last_id: 7 };
        assert_eq!(reset.to_text(), r#"{"type":"reset","last_id":7}"#);
        let error = ServerFrame::<()>::Error { error: "no".into() };
        assert_eq!(
            serde_json::to_value(error).unwrap(),
            json!({"type": "error", "error": "no"})
        );
    }

    #[test]
    fn a_poll_answer_reads_back_into_what_a_client_wants() {
        let sent = PollAnswer {
            messages: vec![json!({"id": 1})],
            last_id: 1,
            reset: false,
        };
        let text = serde_json::to_string(&sent).unwrap();
        assert_eq!(text, r#"{"messages":[{"id":1}],"last_id":1,"reset":false}"#);
        let read: PollAnswer<serde_json::Value> = serde_json::from_str(&text).unwrap();
        assert_eq!(
            (read.messages, read.last_id, read.reset),
            (sent.messages, 1, false)
        );
    }
}
