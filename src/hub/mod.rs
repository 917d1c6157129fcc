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

mod entry;
mod history;
mod redis;
mod spec;
mod sqlite;
mod store;
mod subscription;
mod view;

use std::sync::Arc;

use tokio::sync::futures::Notified;

pub use entry::{Cursor, Entry, Page, RECENT};
pub use history::Bounds;
pub use spec::StoreSpec;
pub use store::StoreError;
pub use subscription::{Delivery, Subscription};
use view::View;

use crate::message::Draft;
use store::Store;

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
        let store = spec::open(spec, view.clone(), history).await?;
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
        Subscription::new(self.view.clone(), cursor)
    }

    /// Completes at the next publish. To not miss a publish that happens between
    /// checking the history and waiting, create it and call `enable` on it first, then
    /// read the history, then await it.
    pub fn next_publish(&self) -> Notified<'_> {
        self.view.next_publish()
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
