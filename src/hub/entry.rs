//! The hub's vocabulary: a message as it is handed out ([`Entry`]), where a reader
//! starts ([`Cursor`]) and one read of the history ([`Page`]).

use std::sync::Arc;

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
}

impl Entry {
    pub fn new(message: Message) -> Self {
        let json = serde_json::value::to_raw_value(&message)
            .expect("a message always serializes: it holds only strings, numbers and a date");
        Self { message, json }
    }

    pub fn id(&self) -> u64 {
        self.message.id
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
