//! A push subscriber's view of the hub: history after its cursor, then live messages.
//!
//! The live channel is treated as a *hint*; the history is the truth. A subscription
//! remembers the last id it delivered and only ever delivers the next one:
//!
//! - a live message it already delivered from history is skipped (the seam: no
//!   duplicate);
//! - a backlog longer than one read is read chunk by chunk from history before the
//!   live channel is consulted;
//! - a live message that is not the next id, or a `Lagged` report from the channel,
//!   makes it re-read the history from its last id (no gap);
//! - if that history is gone, it says so with a [`Delivery::Reset`] and carries on
//!   from the oldest message still held, never silently skipping.
//!
//! One more case belongs to instances that follow a shared log (Redis): a client that
//! saw id 42 on instance A and reconnects to B a moment before B's follower has read
//! 42 brings a cursor that is ahead of B. That is no restart, only lag, so the
//! subscription first waits, briefly, for B to catch up; only a cursor still ahead
//! after that gets a reset.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::Instant;

use super::entry::{Cursor, Entry, Page};
use super::view::View;

/// How many history entries a subscription reads at a time while catching up.
const CATCH_UP_CHUNK: usize = 256;

/// What a subscriber receives next.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// The next message, its id exactly one more than the last one delivered.
    Message(Arc<Entry>),
    /// The cursor could not be honoured: forget it. It is now `last_id`; the
    /// messages that follow start at `last_id + 1`, the oldest the hub still holds.
    Reset { last_id: u64 },
}

/// History, then live messages, in id order, exactly once. See the module docs.
pub struct Subscription {
    view: Arc<View>,
    live: broadcast::Receiver<Arc<Entry>>,
    backlog: VecDeque<Arc<Entry>>,
    /// The last id delivered (or the cursor, before the first delivery).
    last_id: u64,
    reset: bool,
    /// The last history read came back short of a full chunk: history holds nothing
    /// newer than the backlog, so the next message can only come from the live channel.
    caught_up: bool,
    /// A cursor ahead of a view that follows a shared log: read history after it once
    /// the view has caught up with it, or at this deadline (the view's grace).
    ahead: Option<(u64, Instant)>,
}

impl Subscription {
    /// A subscription that starts after `cursor`. It subscribes to the live channel
    /// *before* reading history: a message applied in between is then both in the
    /// history read and in the channel, and the subscription skips the copy, instead
    /// of being in neither.
    pub(super) fn new(view: Arc<View>, cursor: Cursor) -> Self {
        let mut subscription = Self {
            live: view.live(),
            view,
            backlog: VecDeque::new(),
            last_id: 0,
            reset: false,
            caught_up: false,
            ahead: None,
        };
        match cursor {
            Cursor::After(id)
                if id > subscription.view.bounds().newest
                    && !subscription.view.ahead_grace().is_zero() =>
            {
                let deadline = Instant::now() + subscription.view.ahead_grace();
                subscription.ahead = Some((id, deadline));
            }
            _ => subscription.catch_up(cursor),
        }
        subscription
    }

    /// The next delivery, waiting for a publish if needed. `None` once the hub is gone.
    pub async fn next(&mut self) -> Option<Delivery> {
        loop {
            if let Some((id, deadline)) = self.ahead {
                // Cancel-safe: dropped while waiting, the next call waits for the rest.
                let patience = deadline.saturating_duration_since(Instant::now());
                self.view.reach(id, patience).await;
                self.ahead = None;
                self.catch_up(Cursor::After(id));
                continue;
            }
            if self.reset {
                self.reset = false;
                return Some(Delivery::Reset {
                    last_id: self.last_id,
                });
            }
            if let Some(entry) = self.backlog.pop_front() {
                self.last_id = entry.id();
                return Some(Delivery::Message(entry));
            }
            if !self.caught_up {
                self.catch_up(Cursor::After(self.last_id));
                continue;
            }
            match self.live.recv().await {
                Ok(entry) if entry.id() <= self.last_id => continue,
                Ok(entry) if entry.id() == self.last_id + 1 => {
                    self.last_id = entry.id();
                    return Some(Delivery::Message(entry));
                }
                // Not the next id: something is missing between. History has it.
                Ok(_) => self.catch_up(Cursor::After(self.last_id)),
                // The channel dropped messages for us: history has them too.
                Err(RecvError::Lagged(_)) => {
                    self.view.count_lag();
                    self.catch_up(Cursor::After(self.last_id));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }

    /// The id of the last message delivered, if nothing is waiting to be delivered
    /// right now: the history is read and the live channel holds nothing new. A
    /// subscriber that has caught up may leave the live messages to someone else from
    /// there (the WebSocket fan-out) and subscribe again from that id later.
    pub fn idle(&self) -> Option<u64> {
        let waiting = self.ahead.is_some()
            || self.reset
            || !self.backlog.is_empty()
            || !self.caught_up
            || !self.live.is_empty();
        (!waiting).then_some(self.last_id)
    }

    /// Refills the backlog from history, after `cursor`.
    fn catch_up(&mut self, cursor: Cursor) {
        let Page {
            entries,
            last_id,
            reset,
        } = self.view.page(cursor, CATCH_UP_CHUNK);
        match entries.first() {
            Some(first) => self.last_id = first.id() - 1,
            None => self.last_id = last_id,
        }
        self.reset |= reset;
        self.caught_up = entries.len() < CATCH_UP_CHUNK;
        self.backlog.extend(entries);
    }
}
