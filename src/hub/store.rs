//! Where the chat's log lives, behind one small trait, chosen with `--store`:
//!
//! | store             | the log is…                                   | survives a restart | instances |
//! |-------------------|-----------------------------------------------|--------------------|-----------|
//! | `memory`          | the in-memory view itself                     | no                 | one       |
//! | `sqlite:PATH`     | a SQLite file, written by one writer thread   | yes                | one       |
//! | `redis://HOST:PORT` | a capped Redis stream, ids from one counter | yes (with AOF)     | many      |
//!
//! A store does one thing for the hub: make a draft the next message of its room and
//! see that it reaches this instance's view of that room. Reads never come here: every
//! transport reads the view, which each store keeps filled in id order (see
//! `view.rs`). So a store's only failure a client can see is a publish that could not
//! be stored, which the API answers with 503 and `Retry-After`, never a silent drop.

use std::fmt;
use std::sync::Arc;

use futures::future::BoxFuture;

use super::entry::Entry;
use super::view::View;
use crate::message::{Draft, Via};
use crate::room::RoomName;

/// The chat's log: it assigns each room's ids (1, 2, 3… strictly increasing, never
/// reused) and feeds this instance's view of each room.
pub trait Store: Send + Sync + 'static {
    /// Makes `draft` the next message of `room`, whose view here is `view`. Resolves
    /// with the message as stored, once it is in `view`, so that the publisher's next
    /// read sees it.
    fn append<'a>(
        &'a self,
        room: &'a RoomName,
        view: &'a Arc<View>,
        draft: Draft,
    ) -> BoxFuture<'a, Result<Arc<Entry>, StoreError>>;

    /// Whether the views are the whole log, so that forgetting them is a restart (the
    /// memory store); a durable store keeps its ids.
    fn restartable(&self) -> bool {
        false
    }
}

/// A store that could not do what was asked; the words name the store and say why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{store}: {reason}")]
pub struct StoreError {
    /// Which store, in words an operator recognises: "Redis at redis://127.0.0.1:6379".
    pub store: Arc<str>,
    pub reason: String,
}

impl StoreError {
    pub fn new(store: &Arc<str>, reason: impl fmt::Display) -> Self {
        Self {
            store: store.clone(),
            reason: reason.to_string(),
        }
    }
}

/// The default: each room's view is its whole log, and nothing is written anywhere
/// else.
pub struct MemoryStore;

impl Store for MemoryStore {
    fn append<'a>(
        &'a self,
        _room: &'a RoomName,
        view: &'a Arc<View>,
        draft: Draft,
    ) -> BoxFuture<'a, Result<Arc<Entry>, StoreError>> {
        Box::pin(std::future::ready(Ok(view.append_next(draft))))
    }

    fn restartable(&self) -> bool {
        true
    }
}

/// How a durable store writes [`Via`]: the same word as in the JSON.
pub fn via_name(via: Via) -> &'static str {
    match via {
        Via::Http => "http",
        Via::Websocket => "websocket",
        Via::Webtransport => "webtransport",
    }
}

/// The [`Via`] a durable store wrote with [`via_name`].
pub fn via_named(name: &str) -> Option<Via> {
    match name {
        "http" => Some(Via::Http),
        "websocket" => Some(Via::Websocket),
        "webtransport" => Some(Via::Webtransport),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_round_trips_through_its_name() {
        for via in [Via::Http, Via::Websocket, Via::Webtransport] {
            assert_eq!(via_named(via_name(via)), Some(via));
        }
    }
}
