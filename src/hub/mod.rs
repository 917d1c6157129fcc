//! The hub: the one source of truth every transport reads from.
//!
//! Publishing assigns the next id and a timestamp, appends to the bounded history in
//! the [`Store`], and then wakes two kinds of listener:
//!
//! - push transports (SSE, WebSocket) hold a [`Subscription`], fed by a
//!   `tokio::sync::broadcast` channel: one `Arc<Entry>` per message, shared by every
//!   subscriber, never cloned per client;
//! - held long polls wait on a `tokio::sync::Notify` ([`Hub::next_publish`]) and,
//!   once woken, read the history like any poller.
//!
//! Id assignment, the append and the broadcast happen under one lock, so the channel
//! carries messages in id order. The lock is a plain `std::sync::Mutex` around plain
//! data and is never held across an `.await`.
//!
//! The hub knows nothing of HTTP: transports turn its [`Page`]s and [`Delivery`]s into
//! responses, events and frames.

mod store;
mod subscription;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::Utc;
use serde_json::value::RawValue;
use tokio::sync::{Notify, broadcast, futures::Notified};

pub use store::{Bounds, MemoryStore, Store};
pub use subscription::{Delivery, Subscription};

use crate::message::{Draft, Message};

/// How many messages a client with no cursor starts with.
pub const RECENT: usize = 50;

/// How many published messages the broadcast channel buffers for a slow subscriber
/// before it reports `Lagged`; a lagging subscriber re-reads the rest from history.
const LIVE_CAPACITY: usize = 1024;

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
    fn new(message: Message) -> Self {
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

/// A cheap-to-clone handle to the shared hub.
#[derive(Clone)]
pub struct Hub {
    shared: Arc<Shared>,
}

struct Shared {
    store: Mutex<Box<dyn Store>>,
    live: broadcast::Sender<Arc<Entry>>,
    published: Notify,
    /// Times a subscriber fell so far behind that the live channel dropped messages for
    /// it (it then re-read them from history).
    lags: AtomicU64,
}

impl Hub {
    pub fn new(store: impl Store) -> Self {
        Self {
            shared: Arc::new(Shared {
                store: Mutex::new(Box::new(store)),
                live: broadcast::channel(LIVE_CAPACITY).0,
                published: Notify::new(),
                lags: AtomicU64::new(0),
            }),
        }
    }

    /// Accepts a validated message: assigns its id and timestamp, stores it, and wakes
    /// every subscriber and every held long poll.
    pub fn publish(&self, draft: Draft) -> Arc<Entry> {
        let entry = {
            let mut store = self.store();
            let entry = store.append(draft, Utc::now());
            // Sent under the lock so that the channel's order is the id order. An error
            // only means nobody is subscribed right now.
            let _ = self.shared.live.send(entry.clone());
            entry
        };
        self.shared.published.notify_waiters();
        entry
    }

    /// Up to `limit` messages after `cursor`, oldest first, with the cursor for the
    /// next read. Never waits.
    pub fn page(&self, cursor: Cursor, limit: usize) -> Page {
        let store = self.store();
        let Bounds { oldest, newest } = store.bounds();
        let (entries, reset) = match cursor {
            Cursor::Recent => {
                let n = limit.min(RECENT) as u64;
                (store.after(newest.saturating_sub(n), limit), false)
            }
            // A cursor the hub can continue from: nothing between it and the history
            // was forgotten, and it is not ahead of the newest id.
            Cursor::After(id) if id + 1 >= oldest && id <= newest => {
                (store.after(id, limit), false)
            }
            Cursor::After(_) => (store.after(oldest - 1, limit), true),
        };
        let last_id = entries.last().map_or(newest, |e| e.id());
        Page {
            entries,
            last_id,
            reset,
        }
    }

    /// Everything after `cursor` from history, then live messages as they are
    /// published: no gap and no duplicate at the seam.
    pub fn subscribe(&self, cursor: Cursor) -> Subscription {
        // Subscribe to the live channel *before* reading history: a message published
        // in between is then both in the history read and in the channel, and the
        // subscription skips the copy, instead of being in neither.
        let live = self.shared.live.subscribe();
        Subscription::new(self.clone(), live, cursor)
    }

    /// Completes at the next publish. To not miss a publish that happens between
    /// checking the history and waiting, create it and call `enable` on it first, then
    /// read the history, then await it.
    pub fn next_publish(&self) -> Notified<'_> {
        self.shared.published.notified()
    }

    /// How many times a subscriber lagged behind the live channel.
    pub fn lags(&self) -> u64 {
        self.shared.lags.load(Relaxed)
    }

    fn count_lag(&self) {
        self.shared.lags.fetch_add(1, Relaxed);
    }

    /// The ids the hub holds now.
    pub fn bounds(&self) -> Bounds {
        self.store().bounds()
    }

    fn store(&self) -> MutexGuard<'_, Box<dyn Store>> {
        // A panic while holding the lock cannot leave the store half-written (every
        // store method either finishes or did nothing), so a poisoned lock is usable.
        self.shared
            .store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests;
