//! The hub: the one source of truth every transport reads from.
//!
//! It has two halves:
//!
//! - the view (`view.rs`): this instance's bounded history in memory, the live channel that
//!   feeds push transports (SSE, WebSocket) with one shared `Arc<Entry>` per message,
//!   and the `Notify` that wakes held long polls. Every read ([`Hub::page`],
//!   [`Hub::subscribe`]) is served from here, synchronously, without I/O;
//! - the store (`store.rs`): the chat's log, which assigns ids and feeds the view in id order.
//!   In memory by default; SQLite makes it durable; Redis shares it between several
//!   instances, each following the shared log into its own view.
//!
//! [`Hub::publish`] is the one asynchronous operation: it waits for the store, and
//! fails (never silently) when the store cannot take the message.
//!
//! The hub knows nothing of HTTP: transports turn its [`Page`]s and [`Delivery`]s into
//! responses, events and frames.

mod history;
mod redis;
mod sqlite;
mod store;
mod subscription;
mod view;

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde_json::value::RawValue;
use tokio::sync::futures::Notified;

pub use history::Bounds;
pub use store::{StoreError, StoreSpec};
pub use subscription::{Delivery, Subscription};
use view::View;

use crate::message::{Draft, Message};
use store::Store;

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

/// A cheap-to-clone handle to the shared hub.
#[derive(Clone)]
pub struct Hub {
    view: Arc<View>,
    store: Arc<dyn Store>,
}

impl Hub {
    /// Opens the store `spec` names and fills a view of the newest `history` messages
    /// from it.
    pub async fn open(spec: &StoreSpec, history: usize) -> Result<Self, StoreError> {
        tracing::info!(store = %spec, history, "opening the store");
        let view = Arc::new(View::new(history, spec.ahead_grace()));
        let store = store::open(spec, view.clone(), history).await?;
        Ok(Self { view, store })
    }

    /// A hub on the memory store whose live channel holds `live_capacity` messages per
    /// slow subscriber (tests use a tiny one to make subscribers lag).
    #[cfg(test)]
    fn with_live_capacity(history: usize, live_capacity: usize) -> Self {
        let view = Arc::new(View::with_live_capacity(
            history,
            live_capacity,
            std::time::Duration::ZERO,
        ));
        let store = Arc::new(store::MemoryStore::new(view.clone()));
        Self { view, store }
    }

    /// Accepts a validated message: the store gives it its id and timestamp and keeps
    /// it; every subscriber and every held long poll is woken. An error means the
    /// message was not stored and the sender should try again.
    pub async fn publish(&self, draft: Draft) -> Result<Arc<Entry>, StoreError> {
        self.store.append(draft).await.inspect_err(|error| {
            self.view.count_store_error();
            tracing::warn!(%error, "publish refused: the store did not take the message");
        })
    }

    /// Up to `limit` messages after `cursor`, oldest first, with the cursor for the
    /// next read. Never waits.
    pub fn page(&self, cursor: Cursor, limit: usize) -> Page {
        self.view.page(cursor, limit)
    }

    /// On an instance that follows a shared log, a cursor ahead of it is most likely
    /// lag (the client came from a faster instance), not a restart: wait, at most the
    /// view's grace, for this instance to catch up before reading, so that a poller
    /// gets no needless reset. Returns at once for a single instance.
    pub async fn settle(&self, cursor: Cursor) {
        if let Cursor::After(id) = cursor
            && id > self.view.bounds().newest
        {
            self.view.reach(id, self.view.ahead_grace()).await;
        }
    }

    /// Everything after `cursor` from history, then live messages as they are
    /// published: no gap and no duplicate at the seam.
    pub fn subscribe(&self, cursor: Cursor) -> Subscription {
        self.view.subscribe(cursor)
    }

    /// Completes at the next publish. To not miss a publish that happens between
    /// checking the history and waiting, create it and call `enable` on it first, then
    /// read the history, then await it.
    pub fn next_publish(&self) -> Notified<'_> {
        self.view.next_publish()
    }

    /// Wakes every [`Hub::next_publish`] waiter as a publish would, without a message
    /// (the server does it at shutdown, so that held long polls answer at once).
    pub fn interrupt(&self) {
        self.view.interrupt();
    }

    /// The ids this instance holds now.
    pub fn bounds(&self) -> Bounds {
        self.view.bounds()
    }

    /// How many times a subscriber lagged behind the live channel.
    pub fn lags(&self) -> u64 {
        self.view.lags()
    }

    /// Publishes the store refused, and failed reads of a shared log.
    pub fn store_errors(&self) -> u64 {
        self.view.store_errors()
    }
}

#[cfg(test)]
mod tests;
