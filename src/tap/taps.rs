//! The taps open on one server, and what each keeps: a bounded ring of rows that its
//! reader (the page, every second) takes from a cursor.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::connection::ConnectionTap;
use super::lock;
use super::row::Row;
use crate::config::AutoOnOff;
use crate::error::ApiError;

/// Rows a tap keeps; older ones are dropped (and counted).
pub const MAX_ROWS: usize = 500;
/// Content a tap keeps, in bytes of text.
pub const MAX_BYTES: usize = 128 * 1024;
/// Taps open at once on one server (so at most `MAX_TAPS` × `MAX_BYTES` held).
pub const MAX_TAPS: usize = 200;
/// A tap nobody has read for this long is forgotten.
pub const IDLE: Duration = Duration::from_secs(60);
/// Bytes of a request a connection keeps before knowing whether it is tapped.
pub const MAX_PENDING: usize = 16 * 1024;

/// The taps open on this server.
pub struct Taps {
    enabled: bool,
    open: Mutex<HashMap<String, Arc<Tap>>>,
    /// How many taps are open: the one thing every read checks.
    count: AtomicUsize,
    next_connection: AtomicU64,
}

impl Taps {
    /// `--wire-tap`: `auto` is on when the server listens on a loopback address only.
    pub fn new(mode: AutoOnOff, loopback: bool) -> Self {
        Self {
            enabled: mode.is_on(loopback),
            open: Mutex::default(),
            count: AtomicUsize::new(0),
            next_connection: AtomicU64::new(1),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The tap state of a newly accepted connection (`None` when tapping is off).
    pub fn connection(self: &Arc<Self>) -> Option<Arc<ConnectionTap>> {
        self.enabled.then(|| {
            let id = self.next_connection.fetch_add(1, Relaxed);
            Arc::new(ConnectionTap::new(self.clone(), id))
        })
    }

    /// Whether any tap is open: while none is, connections keep nothing.
    pub fn any_open(&self) -> bool {
        self.count.load(Relaxed) > 0
    }

    /// The tap named `id`, opened if need be.
    pub(super) fn open(&self, id: &str) -> Result<Arc<Tap>, ApiError> {
        let mut open = lock(&self.open);
        let now = Instant::now();
        open.retain(|_, tap| {
            let keep = now.duration_since(*lock(&tap.last_read)) < IDLE;
            if !keep {
                tap.forget();
            }
            keep
        });
        if !open.contains_key(id) && open.len() >= MAX_TAPS {
            self.count.store(open.len(), Relaxed);
            return Err(ApiError::Busy("too many wire taps are open"));
        }
        let tap = open
            .entry(id.to_owned())
            .or_insert_with(|| Arc::new(Tap::new(now)));
        let tap = tap.clone();
        self.count.store(open.len(), Relaxed);
        Ok(tap)
    }
}

/// One client's recording: the newest rows of its connections.
pub struct Tap {
    rows: Mutex<Rows>,
    last_read: Mutex<Instant>,
    /// Forgotten for being idle: connections still pointing at it record nothing.
    forgotten: AtomicBool,
}

#[derive(Default)]
struct Rows {
    rows: VecDeque<Row>,
    bytes: usize,
    next_seq: u64,
    dropped: u64,
}

impl Tap {
    fn new(now: Instant) -> Self {
        Self {
            rows: Mutex::default(),
            last_read: Mutex::new(now),
            forgotten: AtomicBool::new(false),
        }
    }

    fn forget(&self) {
        self.forgotten.store(true, Relaxed);
        *lock(&self.rows) = Rows::default();
    }

    pub(super) fn push(&self, mut row: Row) {
        if self.forgotten.load(Relaxed) {
            return;
        }
        let mut rows = lock(&self.rows);
        rows.next_seq += 1;
        row.seq = rows.next_seq;
        rows.bytes += weight(&row);
        rows.rows.push_back(row);
        while rows.rows.len() > MAX_ROWS || rows.bytes > MAX_BYTES {
            let Some(old) = rows.rows.pop_front() else {
                break;
            };
            rows.bytes -= weight(&old);
            rows.dropped += 1;
        }
    }

    /// Rows after `since`, and how many were dropped before the reader saw them.
    pub(super) fn read(&self, since: u64) -> Value {
        *lock(&self.last_read) = Instant::now();
        let rows = lock(&self.rows);
        let first = rows.rows.front().map_or(rows.next_seq + 1, |r| r.seq);
        let missed = first.saturating_sub(since + 1).min(rows.dropped);
        let new: Vec<&Row> = rows.rows.iter().filter(|r| r.seq > since).collect();
        json!({ "rows": new, "next": rows.next_seq, "missed": missed })
    }
}

/// Bytes a row holds on to.
fn weight(row: &Row) -> usize {
    row.summary.len()
        + row.text.as_ref().map_or(0, String::len)
        + row.head.as_ref().map_or(0, String::len)
}
