//! The history a pushlab instance holds in memory: a bounded ring of the newest
//! messages, with contiguous ids.
//!
//! Every transport reads from this ring, whatever the store behind it: with the
//! `memory` store it *is* the chat's log; with SQLite or Redis it is this instance's
//! copy of the newest part of the log, filled in the log's order. Reads stay
//! synchronous and fast because they never touch a disk or the network.
//!
//! Ids in the ring are contiguous (`oldest..=newest`), so finding the messages after a
//! cursor is a subtraction. An entry that skips ahead of `newest + 1` (the log was
//! trimmed while this instance was not reading it) makes the ring forget everything
//! older: the ids stay contiguous, and a reader whose cursor falls into the gap gets a
//! reset instead of a silent hole.

use std::collections::VecDeque;
use std::sync::Arc;

use super::entry::Entry;

/// The ids held: `oldest..=newest`. An empty history has `oldest == newest + 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub oldest: u64,
    pub newest: u64,
}

impl Bounds {
    /// A room that never had a message.
    pub const EMPTY: Self = Self {
        oldest: 1,
        newest: 0,
    };

    /// How many messages are held.
    pub fn len(&self) -> u64 {
        self.newest + 1 - self.oldest
    }

    /// Nothing was ever published here (a history that held something always keeps
    /// its newest message).
    pub fn is_empty(&self) -> bool {
        self.newest == 0
    }
}

/// The newest `capacity` messages, oldest first.
pub struct History {
    entries: VecDeque<Arc<Entry>>,
    capacity: usize,
    newest: u64,
}

impl History {
    /// A history that keeps at most `capacity` messages (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            entries: VecDeque::with_capacity(capacity),
            capacity,
            newest: 0,
        }
    }

    /// Forgets every message: the next id is 1 again, as after a restart.
    pub fn restart(&mut self) {
        self.entries.clear();
        self.newest = 0;
    }

    /// Adds the entry that follows the newest one. Returns `false`, changing nothing,
    /// for an entry already held or older (a log replayed twice); an entry further
    /// ahead first forgets everything held (see the module docs).
    pub fn push(&mut self, entry: Arc<Entry>) -> bool {
        let id = entry.id();
        if id <= self.newest {
            return false;
        }
        if id > self.newest + 1 {
            self.entries.clear();
        }
        if self.entries.len() == self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back(entry);
        self.newest = id;
        true
    }

    pub fn bounds(&self) -> Bounds {
        Bounds {
            oldest: self.newest + 1 - self.entries.len() as u64,
            newest: self.newest,
        }
    }

    /// Up to `limit` entries with ids greater than `after`, oldest first.
    pub fn after(&self, after: u64, limit: usize) -> Vec<Arc<Entry>> {
        // Ids are contiguous, so the position of `after + 1` is a subtraction away.
        let skip = after.saturating_sub(self.bounds().oldest - 1) as usize;
        self.entries
            .iter()
            .skip(skip)
            .take(limit)
            .cloned()
            .collect()
    }

    /// The entry with this id, if still held.
    pub fn get(&self, id: u64) -> Option<Arc<Entry>> {
        let oldest = self.bounds().oldest;
        let index = id.checked_sub(oldest)?;
        self.entries.get(usize::try_from(index).ok()?).cloned()
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::message::{Message, Via};

    fn entry(id: u64) -> Arc<Entry> {
        Arc::new(Entry::new(Message {
            id,
            author: "a".into(),
            text: format!("m{id}"),
            sent_at: Utc::now(),
            via: Via::Http,
        }))
    }

    fn fill(history: &mut History, ids: impl IntoIterator<Item = u64>) {
        for id in ids {
            history.push(entry(id));
        }
    }

    fn ids(entries: &[Arc<Entry>]) -> Vec<u64> {
        entries.iter().map(|e| e.id()).collect()
    }

    #[test]
    fn an_empty_history_is_before_id_one() {
        let mut history = History::new(10);
        assert_eq!(
            history.bounds(),
            Bounds {
                oldest: 1,
                newest: 0
            }
        );
        fill(&mut history, 1..=3);
        assert_eq!(ids(&history.after(0, 100)), [1, 2, 3]);
    }

    #[test]
    fn history_is_bounded_and_keeps_the_newest() {
        let mut history = History::new(3);
        fill(&mut history, 1..=5);
        assert_eq!(
            history.bounds(),
            Bounds {
                oldest: 3,
                newest: 5
            }
        );
        assert_eq!(ids(&history.after(0, 100)), [3, 4, 5]);
        assert_eq!(ids(&history.after(3, 1)), [4]);
        assert!(history.after(5, 100).is_empty());
        assert_eq!(history.get(4).map(|e| e.id()), Some(4));
        assert!(history.get(2).is_none() && history.get(6).is_none());
    }

    #[test]
    fn an_entry_already_held_is_ignored() {
        let mut history = History::new(10);
        fill(&mut history, 1..=3);
        assert!(!history.push(entry(2)));
        assert!(!history.push(entry(3)));
        assert_eq!(ids(&history.after(0, 100)), [1, 2, 3]);
    }

    #[test]
    fn an_entry_that_skips_ahead_forgets_everything_older() {
        let mut history = History::new(10);
        fill(&mut history, 1..=3);
        assert!(history.push(entry(8)));
        assert_eq!(
            history.bounds(),
            Bounds {
                oldest: 8,
                newest: 8
            }
        );
        assert_eq!(ids(&history.after(0, 100)), [8]);
    }
}
