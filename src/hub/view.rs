//! One instance's view of one room: its in-memory [`History`], the live channel that
//! feeds push subscribers, and the `Notify` that wakes held long polls. Each room has
//! its own, so a publish wakes only the subscribers of its room.
//!
//! Whatever the store, new messages enter the view through one door, [`View::apply`],
//! in id order: the `memory` store applies each publish itself, the SQLite writer
//! applies what it has committed, the Redis follower applies what it reads from the
//! shared stream. Applying appends to the history, then sends on the broadcast
//! channel, then wakes every held long poll. The send wakes every waiting subscriber
//! (with thousands, a good part of a millisecond), so it happens after the history's
//! lock is released, under a second lock taken before the first is let go: the
//! channel still carries messages in id order, and nobody reading the history waits
//! for the wake-ups. Both are plain `std::sync::Mutex`es, never held across an
//! `.await`.

use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{Notify, broadcast, futures::Notified};

use super::entry::{Cursor, Entry, Page, RECENT};
use super::history::{Bounds, History};
use crate::message::{Draft, Message};

/// How many published messages the broadcast channel buffers for a slow subscriber
/// before it reports `Lagged`; a lagging subscriber re-reads the rest from history.
pub(super) const LIVE_CAPACITY: usize = 1024;

/// One room's view.
pub struct View {
    history: Mutex<History>,
    /// Held while sending on `live`, taken before `history` is released: see the
    /// module docs.
    sending: Mutex<()>,
    /// What transports keep per room: see [`View::attachment`].
    attachments: Mutex<Vec<Arc<dyn Any + Send + Sync>>>,
    live: broadcast::Sender<Arc<Entry>>,
    published: Notify,
    /// How long a cursor ahead of this view may be lag rather than a restart; zero
    /// unless the view follows a shared log (see `subscription.rs`).
    ahead_grace: Duration,
    /// Shared by every room's view.
    counters: Arc<HubCounters>,
}

/// What went wrong, over every room.
#[derive(Debug, Default)]
pub struct HubCounters {
    /// Publishes the store refused, and reads of a shared log that failed.
    pub store_errors: AtomicU64,
    /// Times a subscriber fell so far behind that the live channel dropped messages
    /// for it (it then re-read them from history).
    pub lags: AtomicU64,
}

impl HubCounters {
    pub fn count_store_error(&self) {
        self.store_errors.fetch_add(1, Relaxed);
    }
}

impl View {
    /// A view of the newest `capacity` messages whose live channel buffers
    /// `live_capacity` messages per subscriber; see [`View::ahead_grace`].
    pub(super) fn with_live_capacity(
        capacity: usize,
        live_capacity: usize,
        ahead_grace: Duration,
        counters: Arc<HubCounters>,
    ) -> Self {
        Self {
            history: Mutex::new(History::new(capacity)),
            sending: Mutex::new(()),
            attachments: Mutex::default(),
            ahead_grace,
            live: broadcast::channel(live_capacity).0,
            published: Notify::new(),
            counters,
        }
    }

    /// Forgets every message, so that ids start again at 1 (the fault lab's restart;
    /// the memory store only, whose view is the whole log). Subscribers keep their
    /// cursors: the lab cuts their connections, and they come back to a reset.
    pub fn restart(&self) {
        self.history().restart();
        self.published.notify_waiters();
    }

    /// Adds an entry that the log has given its id, and wakes every subscriber and
    /// every held long poll. An entry already held is ignored (returns `false`).
    pub fn apply(&self, entry: Arc<Entry>) -> bool {
        let added = self.add(self.history(), entry);
        if added {
            self.published.notify_waiters();
        }
        added
    }

    /// Makes `draft` the next message, with the next id and the time now: how the
    /// `memory` store publishes, where the view is the whole log.
    pub fn append_next(&self, draft: Draft) -> Arc<Entry> {
        let history = self.history();
        let entry = Arc::new(Entry::new(Message {
            id: history.bounds().newest + 1,
            author: draft.author,
            text: draft.text,
            sent_at: Utc::now(),
            via: draft.via,
        }));
        self.add(history, entry.clone());
        self.published.notify_waiters();
        entry
    }

    /// Appends to the history, then sends on the live channel in the same order,
    /// without keeping readers of the history waiting while the send wakes subscribers.
    fn add(&self, mut history: MutexGuard<'_, History>, entry: Arc<Entry>) -> bool {
        if !history.push(entry.clone()) {
            return false;
        }
        let sending = self.sending.lock().unwrap_or_else(|p| p.into_inner());
        drop(history);
        // An error only means nobody is subscribed right now.
        let _ = self.live.send(entry);
        drop(sending);
        true
    }

    /// Waits, at most `patience`, until the view holds `id` (or has moved past it),
    /// and returns that entry if it is still held.
    pub async fn reach(&self, id: u64, patience: Duration) -> Option<Arc<Entry>> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let published = self.next_publish();
            tokio::pin!(published);
            published.as_mut().enable();
            if self.bounds().newest >= id {
                return self.history().get(id);
            }
            if tokio::time::timeout_at(deadline, published).await.is_err() {
                return None;
            }
        }
    }

    /// Up to `limit` messages after `cursor`, oldest first, with the cursor for the
    /// next read. Never waits.
    pub fn page(&self, cursor: Cursor, limit: usize) -> Page {
        let history = self.history();
        let Bounds { oldest, newest } = history.bounds();
        let (entries, reset) = match cursor {
            Cursor::Recent => {
                let n = limit.min(RECENT) as u64;
                (history.after(newest.saturating_sub(n), limit), false)
            }
            // A cursor the view can continue from: nothing between it and the history
            // was forgotten, and it is not ahead of the newest id.
            Cursor::After(id) if id >= oldest - 1 && id <= newest => {
                (history.after(id, limit), false)
            }
            Cursor::After(_) => (history.after(oldest - 1, limit), true),
        };
        let last_id = entries.last().map_or(newest, |e| e.id());
        Page {
            entries,
            last_id,
            reset,
        }
    }

    /// A receiver of every entry applied from now on.
    pub(super) fn live(&self) -> broadcast::Receiver<Arc<Entry>> {
        self.live.subscribe()
    }

    /// What a transport keeps with this view, one of each type, made on first use and
    /// gone with the view (the WebSocket fan-out keeps its task's handle here). The
    /// hub stores it and knows nothing of what it is.
    pub fn attachment<T: Any + Default + Send + Sync>(&self) -> Arc<T> {
        let mut attachments = self
            .attachments
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let found = attachments
            .iter()
            .find_map(|a| a.clone().downcast::<T>().ok());
        found.unwrap_or_else(|| {
            let made = Arc::new(T::default());
            attachments.push(made.clone());
            made
        })
    }

    /// See [`super::Hub::interrupt`].
    pub fn interrupt(&self) {
        self.published.notify_waiters();
    }

    /// Completes at the next message applied; see [`super::Hub::next_publish`].
    pub fn next_publish(&self) -> Notified<'_> {
        self.published.notified()
    }

    pub fn bounds(&self) -> Bounds {
        self.history().bounds()
    }

    /// How long a subscriber whose cursor is ahead of this view waits for the view to
    /// reach it before it is told to reset.
    pub fn ahead_grace(&self) -> Duration {
        self.ahead_grace
    }

    pub fn count_store_error(&self) {
        self.counters.count_store_error();
    }

    pub(super) fn count_lag(&self) {
        self.counters.lags.fetch_add(1, Relaxed);
    }

    fn history(&self) -> MutexGuard<'_, History> {
        // A panic while holding the lock cannot leave the history half-written (every
        // method either finishes or did nothing), so a poisoned lock is usable.
        self.history
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
