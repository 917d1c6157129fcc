//! Where the hub keeps its history, behind one small trait.
//!
//! The hub asks a store for three things: append a draft (assigning the next id),
//! say which ids it still holds, and hand out the entries after a cursor. Today
//! there is one implementation, [`MemoryStore`], a bounded ring of the newest
//! messages; a durable or shared store (SQLite, Redis) implements the same trait and
//! the transports never notice.
//!
//! Stores are synchronous and fast: the hub calls them under its lock, so a call must
//! never block on I/O.

use std::collections::VecDeque;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::Entry;
use crate::message::{Draft, Message};

/// The ids a store holds: `oldest..=newest`. An empty store has `oldest == newest + 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub oldest: u64,
    pub newest: u64,
}

/// Storage for the hub's history. Ids are assigned here: 1, 2, 3… with no gaps.
pub trait Store: Send + 'static {
    /// Stores `draft` as the next message and returns it.
    fn append(&mut self, draft: Draft, sent_at: DateTime<Utc>) -> Arc<Entry>;
    /// Which ids are still held.
    fn bounds(&self) -> Bounds;
    /// Up to `limit` entries with ids greater than `after`, oldest first.
    fn after(&self, after: u64, limit: usize) -> Vec<Arc<Entry>>;
}

/// The default store: the newest `capacity` messages in memory, nothing on disk.
pub struct MemoryStore {
    entries: VecDeque<Arc<Entry>>,
    capacity: usize,
    newest: u64,
}

impl MemoryStore {
    /// A store that keeps at most `capacity` messages (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            entries: VecDeque::with_capacity(capacity),
            capacity,
            newest: 0,
        }
    }
}

impl Store for MemoryStore {
    fn append(&mut self, draft: Draft, sent_at: DateTime<Utc>) -> Arc<Entry> {
        self.newest += 1;
        let entry = Arc::new(Entry::new(Message {
            id: self.newest,
            author: draft.author,
            text: draft.text,
            sent_at,
            via: draft.via,
        }));
        if self.entries.len() == self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back(entry.clone());
        entry
    }

    fn bounds(&self) -> Bounds {
        Bounds {
            oldest: self.newest + 1 - self.entries.len() as u64,
            newest: self.newest,
        }
    }

    fn after(&self, after: u64, limit: usize) -> Vec<Arc<Entry>> {
        // Ids are contiguous, so the position of `after + 1` is a subtraction away.
        let skip = after.saturating_sub(self.bounds().oldest - 1) as usize;
        self.entries
            .iter()
            .skip(skip)
            .take(limit)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Via;

    fn fill(store: &mut MemoryStore, n: usize) {
        for i in 0..n {
            let draft = Draft {
                author: "a".into(),
                text: format!("m{i}"),
                via: Via::Http,
            };
            store.append(draft, Utc::now());
        }
    }

    fn ids(entries: &[Arc<Entry>]) -> Vec<u64> {
        entries.iter().map(|e| e.id()).collect()
    }

    #[test]
    fn ids_start_at_one_and_never_skip() {
        let mut store = MemoryStore::new(10);
        assert_eq!(
            store.bounds(),
            Bounds {
                oldest: 1,
                newest: 0
            }
        );
        fill(&mut store, 3);
        assert_eq!(ids(&store.after(0, 100)), [1, 2, 3]);
    }

    #[test]
    fn history_is_bounded_and_keeps_the_newest() {
        let mut store = MemoryStore::new(3);
        fill(&mut store, 5);
        assert_eq!(
            store.bounds(),
            Bounds {
                oldest: 3,
                newest: 5
            }
        );
        assert_eq!(ids(&store.after(0, 100)), [3, 4, 5]);
        assert_eq!(ids(&store.after(3, 1)), [4]);
        assert!(store.after(5, 100).is_empty());
    }
}
