//! The hub: the one source of truth every transport reads from, one [`Room`] at a time.
//!
//! It has three parts:
//!
//! - the views (`view.rs`), one per room: this instance's bounded history of the room
//!   in memory, the live channel that feeds push transports (SSE, WebSocket) with one
//!   shared `Arc<Entry>` per message, and the `Notify` that wakes held long polls.
//!   Every read ([`Room::page`], [`Room::subscribe`]) is served from here,
//!   synchronously, without I/O, and touches only its own room;
//! - the rooms (`rooms.rs`): which rooms are in memory, and the `--max-rooms` cap;
//! - the store (`store.rs`): the chat's log, which assigns each room's ids and feeds
//!   its view in id order. In memory by default; SQLite makes it durable; Redis shares
//!   it between several instances, each following the shared log into its own views.
//!
//! [`Room::publish`] is the one asynchronous operation: it waits for the store, and
//! fails (never silently) when the store cannot take the message.
//!
//! The hub knows nothing of HTTP: transports turn its [`Page`]s and [`Delivery`]s into
//! responses, events and frames.

mod entry;
mod history;
mod redis;
mod rooms;
mod spec;
mod sqlite;
mod store;
mod subscription;
mod view;

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use tokio::sync::futures::Notified;

pub use entry::{Cursor, Encoding, Entry, Page, RECENT};
pub use history::Bounds;
use rooms::{RoomHandle, Rooms};
pub use rooms::{RoomSummary, RoomsFull};
pub use spec::StoreSpec;
use store::Store;
pub use store::StoreError;
pub use subscription::{Delivery, Subscription};
use view::View;

use crate::message::Draft;
use crate::room::RoomName;

/// Every room of the chat: a cheap-to-clone handle, shared by every handler.
#[derive(Clone)]
pub struct Hub {
    rooms: Arc<Rooms>,
    store: Arc<dyn Store>,
}

impl Hub {
    /// Opens the store `spec` names and fills a view of the newest `history` messages
    /// of each of its rooms; at most `max_rooms` rooms get history.
    pub async fn open(
        spec: &StoreSpec,
        history: usize,
        max_rooms: usize,
    ) -> Result<Self, StoreError> {
        tracing::info!(store = %spec, history, max_rooms, "opening the store");
        let rooms = Arc::new(Rooms::new(history, spec.ahead_grace(), max_rooms));
        let store = spec::open(spec, rooms.clone(), history).await?;
        Ok(Self { rooms, store })
    }

    /// A hub on the memory store whose live channels hold `live_capacity` messages per
    /// slow subscriber (tests use a tiny one to make subscribers lag).
    #[cfg(test)]
    fn with_live_capacity(history: usize, live_capacity: usize) -> Self {
        let rooms = Arc::new(Rooms::with_live_capacity(history, live_capacity));
        Self {
            rooms,
            store: Arc::new(store::MemoryStore),
        }
    }

    /// Enters a room: what every transport reads and publishes through. An absent room
    /// is made, empty; it is forgotten again when the last [`Room`] of it drops, unless
    /// something was published in it.
    pub fn room(&self, name: &RoomName) -> Room {
        Room {
            handle: self.rooms.enter(name),
            store: self.store.clone(),
        }
    }

    /// The ids a room holds now, without entering it.
    pub fn bounds(&self, name: &RoomName) -> Bounds {
        self.rooms.bounds(name)
    }

    /// Forgets a room's messages so that its ids start again at 1, as a restart of a
    /// server on the memory store would; false (changing nothing) on a durable store.
    pub fn restart(&self, name: &RoomName) -> bool {
        if !self.store.restartable() {
            return false;
        }
        self.rooms.enter(name).view().restart();
        true
    }

    /// Every room in memory, by name.
    pub fn rooms(&self) -> Vec<RoomSummary> {
        self.rooms.list()
    }

    /// How many rooms are in memory.
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// Messages held in memory, over every room.
    pub fn retained(&self) -> u64 {
        self.rooms.retained()
    }

    /// Wakes every [`Room::next_publish`] waiter in every room as a publish would,
    /// without a message (the server does it at shutdown, so that held long polls
    /// answer at once).
    pub fn interrupt(&self) {
        self.rooms.interrupt();
    }

    /// How many times a subscriber lagged behind the live channel.
    pub fn lags(&self) -> u64 {
        self.rooms.counters().lags.load(Relaxed)
    }

    /// Publishes the store refused, and failed reads of a shared log.
    pub fn store_errors(&self) -> u64 {
        self.rooms.counters().store_errors.load(Relaxed)
    }
}

/// Why a publish was refused; nothing was stored.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// A new room past `--max-rooms`.
    #[error(transparent)]
    RoomsFull(#[from] RoomsFull),
    /// The store could not keep the message.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One room of the hub, entered: it stays in memory while this lives.
pub struct Room {
    handle: RoomHandle,
    store: Arc<dyn Store>,
}

impl Room {
    pub fn name(&self) -> &RoomName {
        self.handle.name()
    }

    fn view(&self) -> &Arc<View> {
        self.handle.view()
    }

    /// Accepts a validated message: the store gives it the room's next id and its
    /// timestamp and keeps it; every subscriber and every held long poll of this room
    /// (and of no other) is woken. A room's first message is refused when the server
    /// holds `--max-rooms` rooms with history already. An error means the message was
    /// not stored and the sender may try again.
    pub async fn publish(&self, draft: Draft) -> Result<Arc<Entry>, PublishError> {
        let rooms = self.handle.rooms();
        rooms.keep(self.name())?;
        let stored = self.store.append(self.name(), self.view(), draft).await;
        stored.map_err(|error| {
            rooms.unkeep_if_empty(self.name());
            self.view().count_store_error();
            tracing::warn!(%error, room = %self.name(), "publish refused: the store did not take the message");
            error.into()
        })
    }

    /// Up to `limit` messages after `cursor`, oldest first, with the cursor for the
    /// next read. Never waits.
    pub fn page(&self, cursor: Cursor, limit: usize) -> Page {
        self.view().page(cursor, limit)
    }

    /// On an instance that follows a shared log, a cursor ahead of it is most likely
    /// lag (the client came from a faster instance), not a restart: wait, at most the
    /// view's grace, for this instance to catch up before reading, so that a poller
    /// gets no needless reset. Returns at once for a single instance.
    pub async fn settle(&self, cursor: Cursor) {
        let view = self.view();
        if let Cursor::After(id) = cursor
            && id > view.bounds().newest
        {
            view.reach(id, view.ahead_grace()).await;
        }
    }

    /// Everything after `cursor` from history, then live messages as they are
    /// published: no gap and no duplicate at the seam.
    pub fn subscribe(&self, cursor: Cursor) -> Subscription {
        Subscription::new(self.view().clone(), cursor)
    }

    /// Completes at the room's next publish. To not miss a publish that happens
    /// between checking the history and waiting, create it and call `enable` on it
    /// first, then read the history, then await it.
    pub fn next_publish(&self) -> Notified<'_> {
        self.view().next_publish()
    }

    /// The ids this instance holds now.
    pub fn bounds(&self) -> Bounds {
        self.view().bounds()
    }

    /// What a transport keeps per room, one of each type, made on first use; see
    /// `View::attachment`.
    pub fn attachment<T: std::any::Any + Default + Send + Sync>(&self) -> Arc<T> {
        self.view().attachment()
    }
}

#[cfg(test)]
mod tests;
