//! The hub's vocabulary: a message as it is handed out ([`Entry`]), where a reader
//! starts ([`Cursor`]) and one read of the history ([`Page`]).

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde_json::value::RawValue;

use crate::message::Message;

/// How many messages a client with no cursor starts with.
pub const RECENT: usize = 50;

/// Where a client wants to start reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    /// No cursor: the [`RECENT`] newest messages, then whatever comes next.
    Recent,
    /// Everything with an id greater than this one.
    After(u64),
}

/// A message as the hub hands it out: the message and its JSON, serialized once and
/// shared by every transport and every client.
#[derive(Debug)]
pub struct Entry {
    pub message: Message,
    pub json: Box<RawValue>,
    /// The message as a push transport writes it, made once for all its subscribers.
    encoded: [OnceLock<Bytes>; ENCODINGS],
}

/// How many [`Encoding`]s an entry keeps.
const ENCODINGS: usize = 2;

/// A way a transport writes a message on the wire (a WebSocket frame, an SSE event),
/// kept with the entry so that it is made by the first subscriber that sends it and
/// shared by the rest: fan-out copies no bytes per subscriber. The hub only stores the
/// bytes; what they are is the transport's business.
pub trait Encoding {
    /// Which of the entry's slots is this encoding's: each encoding its own, below
    /// `ENCODINGS`.
    const SLOT: usize;
    fn encode(entry: &Entry) -> Bytes;
}

impl Entry {
    pub fn new(message: Message) -> Self {
        let json = serde_json::value::to_raw_value(&message)
            .expect("a message always serializes: it holds only strings, numbers and a date");
        Self {
            message,
            json,
            encoded: Default::default(),
        }
    }

    pub fn id(&self) -> u64 {
        self.message.id
    }

    /// This message in encoding `E`, made on first use.
    pub fn encoded<E: Encoding>(&self) -> &Bytes {
        self.encoded[E::SLOT].get_or_init(|| E::encode(self))
    }
}

/// One read of the history: what a poller answers with.
#[derive(Debug)]
pub struct Page {
    /// Oldest first.
    pub entries: Vec<Arc<Entry>>,
    /// The cursor for the next read: the id of the last entry, or, when there are no
    /// entries, the newest id the hub holds.
    pub last_id: u64,
    /// The cursor could not be honoured (older than the retained history, or newer than
    /// the newest id, as after a restart), so `entries` restart at the oldest retained
    /// message.
    pub reset: bool,
}
