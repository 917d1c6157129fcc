//! The rooms this instance holds in memory, each with its own [`View`], and the
//! `--max-rooms` cap.
//!
//! A room is in memory while it is *kept* or *entered*:
//!
//! - **kept**: it has history (or a first publish is on its way to the store). Kept
//!   rooms count against `--max-rooms` and stay in memory: their history is what every
//!   transport reads. A publish that would keep one room more than the cap is refused
//!   before it reaches the store, so it creates nothing.
//! - **entered**: someone is in it right now (a request in progress, an open stream or
//!   socket), holding a [`RoomHandle`]. A room that is only entered costs a map entry
//!   and an empty view, and is forgotten when the last handle drops. Entering never
//!   counts against the cap: subscribers waiting in empty rooms cannot use up the
//!   rooms publishers need; they are bounded by the connection caps instead.
//!
//! The map's lock is held only to find, add or drop a room, never while reading or
//! publishing: each room's view has its own lock, so rooms do not contend.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::history::Bounds;
use super::view::{HubCounters, LIVE_CAPACITY, View};
use crate::room::RoomName;

/// Every room in memory.
pub struct Rooms {
    slots: Mutex<Slots>,
    /// How many messages each room's view keeps.
    history: usize,
    ahead_grace: Duration,
    /// Most kept rooms.
    max_kept: usize,
    /// Messages each room's live channel buffers per slow subscriber.
    live_capacity: usize,
    counters: Arc<HubCounters>,
}

#[derive(Default)]
struct Slots {
    rooms: HashMap<RoomName, Slot>,
    /// Rooms with `kept` set.
    kept: usize,
}

struct Slot {
    view: Arc<View>,
    /// Live [`RoomHandle`]s.
    entered: usize,
    kept: bool,
}

/// A room kept in memory past `--max-rooms`: nothing was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("this server holds as many rooms as it may ({0}, --max-rooms)")]
pub struct RoomsFull(pub usize);

/// One room as `GET /api/rooms` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomSummary {
    pub name: RoomName,
    pub bounds: Bounds,
    /// Requests in progress and connections open in the room.
    pub clients: usize,
}

impl Rooms {
    /// Rooms whose views keep `history` messages each, at most `max_kept` of them
    /// with history.
    pub fn new(history: usize, ahead_grace: Duration, max_kept: usize) -> Self {
        Self {
            slots: Mutex::default(),
            history,
            ahead_grace,
            max_kept,
            live_capacity: LIVE_CAPACITY,
            counters: Arc::default(),
        }
    }

    /// Rooms whose live channels hold `live_capacity` messages per slow subscriber
    /// (tests use a tiny one to make subscribers lag).
    #[cfg(test)]
    pub fn with_live_capacity(history: usize, live_capacity: usize) -> Self {
        Self {
            live_capacity,
            ..Self::new(history, Duration::ZERO, usize::MAX)
        }
    }

    /// Enters `name`, making its (empty) view if it is not in memory; the room stays
    /// while the handle lives.
    pub fn enter(self: &Arc<Self>, name: &RoomName) -> RoomHandle {
        let view = {
            let mut slots = self.lock();
            let slot = self.slot(&mut slots, name);
            slot.entered += 1;
            slot.view.clone()
        };
        RoomHandle {
            rooms: self.clone(),
            name: name.clone(),
            view,
        }
    }

    /// The view of a room the store holds history for (loaded at start, or seen on a
    /// shared log): kept, whatever the cap, because it exists already.
    pub fn stored(&self, name: &RoomName) -> Arc<View> {
        let mut slots = self.lock();
        let slot = self.slot(&mut slots, name);
        let newly_kept = !slot.kept;
        slot.kept = true;
        let view = slot.view.clone();
        slots.kept += usize::from(newly_kept);
        view
    }

    /// Marks an entered room as kept before its first publish, if the cap allows.
    pub fn keep(&self, name: &RoomName) -> Result<(), RoomsFull> {
        let mut slots = self.lock();
        let kept = slots.kept;
        let slot = slots.rooms.get_mut(name).expect("a handle keeps its room");
        if slot.kept {
            return Ok(());
        }
        if kept >= self.max_kept {
            return Err(RoomsFull(self.max_kept));
        }
        slot.kept = true;
        slots.kept += 1;
        Ok(())
    }

    /// Undoes [`Rooms::keep`] after a publish the store refused, if the room is still
    /// empty, so that failed publishes do not use up the cap.
    pub fn unkeep_if_empty(&self, name: &RoomName) {
        let mut slots = self.lock();
        let Some(slot) = slots.rooms.get_mut(name) else {
            return;
        };
        if slot.kept && slot.view.bounds().is_empty() {
            slot.kept = false;
            slots.kept -= 1;
        }
    }

    /// A room's ids, if it is in memory; an absent room holds nothing.
    pub fn bounds(&self, name: &RoomName) -> Bounds {
        self.lock()
            .rooms
            .get(name)
            .map_or(Bounds::EMPTY, |slot| slot.view.bounds())
    }

    /// Every room in memory, by name.
    pub fn list(&self) -> Vec<RoomSummary> {
        let views: Vec<(RoomName, Arc<View>, usize)> = self
            .lock()
            .rooms
            .iter()
            .map(|(name, slot)| (name.clone(), slot.view.clone(), slot.entered))
            .collect();
        // Read each view after letting go of the map, so as not to hold both locks.
        let mut rooms: Vec<RoomSummary> = views
            .into_iter()
            .map(|(name, view, clients)| RoomSummary {
                name,
                bounds: view.bounds(),
                clients,
            })
            .collect();
        rooms.sort_by(|a, b| a.name.cmp(&b.name));
        rooms
    }

    /// Rooms in memory, kept or entered.
    pub fn len(&self) -> usize {
        self.lock().rooms.len()
    }

    /// Messages held in memory, over every room.
    pub fn retained(&self) -> u64 {
        let views: Vec<Arc<View>> = self.lock().rooms.values().map(|s| s.view.clone()).collect();
        views.iter().map(|v| v.bounds().len()).sum()
    }

    pub fn counters(&self) -> &HubCounters {
        &self.counters
    }

    /// Wakes every held long poll of every room (see [`View::interrupt`]).
    pub fn interrupt(&self) {
        for slot in self.lock().rooms.values() {
            slot.view.interrupt();
        }
    }

    fn slot<'a>(&self, slots: &'a mut Slots, name: &RoomName) -> &'a mut Slot {
        slots.rooms.entry(name.clone()).or_insert_with(|| Slot {
            view: Arc::new(View::with_live_capacity(
                self.history,
                self.live_capacity,
                self.ahead_grace,
                self.counters.clone(),
            )),
            entered: 0,
            kept: false,
        })
    }

    /// A handle dropped: forget the room if nobody is in it and it holds nothing.
    fn leave(&self, name: &RoomName) {
        let mut slots = self.lock();
        if let Some(slot) = slots.rooms.get_mut(name) {
            slot.entered -= 1;
            if slot.entered == 0 && !slot.kept {
                slots.rooms.remove(name);
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Slots> {
        // Every change under this lock is a single map or counter update: a panic
        // cannot leave it half-done, so a poisoned lock is usable.
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A room someone is in: its view, kept in memory while the handle lives.
pub struct RoomHandle {
    rooms: Arc<Rooms>,
    name: RoomName,
    view: Arc<View>,
}

impl RoomHandle {
    pub fn name(&self) -> &RoomName {
        &self.name
    }

    pub fn view(&self) -> &Arc<View> {
        &self.view
    }

    pub fn rooms(&self) -> &Rooms {
        &self.rooms
    }
}

impl Drop for RoomHandle {
    fn drop(&mut self) {
        self.rooms.leave(&self.name);
    }
}
