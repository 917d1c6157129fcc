//! Connections that are open but serve no request: a new one that has not sent its
//! first request yet, or a kept-alive one waiting for its next.
//!
//! An idle connection costs a file descriptor and a task while doing nothing, and
//! costs its client nothing at all: a client can open thousands and stay silent until
//! the process runs out of descriptors and can accept no one else. So:
//!
//! - each idle connection has a deadline: a new one must send its first request's
//!   headers within `--header-timeout`, a kept-alive one its next request within
//!   `--keep-alive-timeout`;
//! - at most `--max-idle-connections` are kept (by default a quarter of the open-files
//!   limit): one more closes the one that has been idle longest;
//! - when accepting fails anyway (out of descriptors), the accept loop closes the
//!   oldest idle connection to make room ([`IdleConnections::close_oldest`]).
//!
//! Closing an idle connection loses nothing: no request is in progress on it, and
//! HTTP clients open a new connection when a kept-alive one was closed.
//!
//! A connection is *serving* from the moment its request reaches the app until the
//! response body is done ([`ServingBody`]); SSE streams and held long polls are
//! serving, so they are never closed here (the connection caps count them). On HTTP/2
//! a connection serves many requests at once and is idle only when none is left. An
//! upgraded WebSocket keeps its connection serving for as long as it lives: on HTTP/2 it is a stream of a connection that must not be closed
//! under it (it holds [`Carrier::hold`](super::Carrier::hold)).
//!
//! The bookkeeping happens on every request, so it is kept to a lock and a map entry
//! each way: nothing wakes the connection's task when it starts or stops serving, and
//! no timer is set per request. The task's timer is set once per idle period, for
//! the deadline it reads when it wakes; a connection found serving is looked at
//! again a keep-alive period later (a long stream costs one wake-up per period).

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// The idle connections, oldest first, and what was done about them.
pub struct IdleConnections {
    limit: usize,
    first_request: Duration,
    keep_alive: Duration,
    queue: Mutex<Queue>,
    /// Idle connections closed to make room for newer ones.
    shed: AtomicU64,
    /// Idle connections closed because their deadline passed.
    timed_out: AtomicU64,
    /// Failed accepts (out of file descriptors, most likely).
    accept_failures: AtomicU64,
}

#[derive(Default)]
struct Queue {
    next_id: u64,
    /// Idle since, and id → how to close it; the first entry has been idle longest.
    idle: BTreeMap<(Instant, u64), Arc<Closer>>,
}

/// Tells an idle connection to close, and learns when it has. Shared (an `Arc`) with
/// the queue: a connection enters the queue after every request, and a token's clone
/// takes a lock.
struct Closer {
    close: CancellationToken,
    closed: CancellationToken,
}

/// One accepted HTTP connection, as this bookkeeping sees it.
pub struct Connection {
    idle: Arc<IdleConnections>,
    id: u64,
    /// Changed under the queue's lock, so that the queue and the phase agree.
    phase: Mutex<Phase>,
    /// How to close it, as the queue keeps it while it is idle.
    closer: Arc<Closer>,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting, since `since`, for the first request or the next one.
    Idle { since: Instant, first: bool },
    /// Serving this many requests (more than one only on HTTP/2) and sockets.
    Serving(usize),
}

impl IdleConnections {
    pub fn new(config: &Config) -> Self {
        let limit = match config.max_idle_connections {
            Some(limit) => limit as usize,
            None => default_limit(),
        };
        Self {
            limit,
            first_request: config.header_timeout,
            keep_alive: config.keep_alive_timeout,
            queue: Mutex::default(),
            shed: AtomicU64::new(0),
            timed_out: AtomicU64::new(0),
            accept_failures: AtomicU64::new(0),
        }
    }

    /// A connection just accepted: idle until its first request. If that makes one
    /// too many, the oldest idle connection is told to close, and the token returned
    /// with the new connection is cancelled once it has.
    pub fn open(self: &Arc<Self>) -> (Arc<Connection>, Option<CancellationToken>) {
        let mut queue = self.lock();
        let id = queue.next_id;
        queue.next_id += 1;
        let connection = Connection {
            idle: self.clone(),
            id,
            phase: Mutex::new(Phase::Serving(0)),
            closer: Arc::new(Closer {
                close: CancellationToken::new(),
                closed: CancellationToken::new(),
            }),
        };
        let made_room = self.wait(&mut queue, &connection, true);
        (Arc::new(connection), made_room)
    }

    /// Tells the connection idle longest to close; the returned token is cancelled
    /// once it has closed, its descriptor free. `None` if no connection is idle.
    pub fn close_oldest(&self) -> Option<CancellationToken> {
        let (_, closer) = self.lock().idle.pop_first()?;
        self.shed.fetch_add(1, Relaxed);
        closer.close.cancel();
        Some(closer.closed.clone())
    }

    /// Counts a failed accept.
    pub fn accept_failed(&self) {
        self.accept_failures.fetch_add(1, Relaxed);
    }

    /// Connections idle now.
    pub fn count(&self) -> usize {
        self.lock().idle.len()
    }

    /// Idle connections closed to make room, so far.
    pub fn shed(&self) -> u64 {
        self.shed.load(Relaxed)
    }

    /// Idle connections closed because their deadline passed, so far.
    pub fn timed_out(&self) -> u64 {
        self.timed_out.load(Relaxed)
    }

    /// Failed accepts, so far.
    pub fn accept_failures(&self) -> u64 {
        self.accept_failures.load(Relaxed)
    }

    /// Puts `connection` at the back of the queue; if the queue is over its limit,
    /// closes the front one and returns its `closed` token.
    fn wait(
        &self,
        queue: &mut Queue,
        connection: &Connection,
        first: bool,
    ) -> Option<CancellationToken> {
        let since = Instant::now();
        *connection.phase() = Phase::Idle { since, first };
        queue
            .idle
            .insert((since, connection.id), connection.closer.clone());
        // One in, at most one out: the queue was within its limit.
        if queue.idle.len() <= self.limit {
            return None;
        }
        let (_, oldest) = queue.idle.pop_first()?;
        self.shed.fetch_add(1, Relaxed);
        oldest.close.cancel();
        Some(oldest.closed.clone())
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A quarter of the soft open-files limit, which leaves the rest to requests in
/// progress, held connections and the store.
fn default_limit() -> usize {
    let open_files = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft);
    (open_files / 4).clamp(1, usize::MAX as u64) as usize
}

impl Connection {
    /// A request reached the app: the connection is serving until the returned guard
    /// (kept in the response body) is dropped.
    pub fn serving(self: &Arc<Self>) -> Serving {
        let mut queue = self.idle.lock();
        let mut phase = self.phase();
        let serving = match *phase {
            Phase::Idle { since, .. } => {
                queue.idle.remove(&(since, self.id));
                1
            }
            Phase::Serving(n) => n + 1,
        };
        *phase = Phase::Serving(serving);
        Serving(self.clone())
    }

    /// Completes when this connection should be closed: it stayed idle past its
    /// deadline, or it was idle longest when room was needed.
    pub async fn expired(&self) {
        let close = self.closer.close.cancelled();
        tokio::pin!(close);
        loop {
            // The deadline of the idle period in progress, if it has passed: close.
            let now = Instant::now();
            let deadline = match *self.phase() {
                Phase::Idle { since, first: true } => Some(since + self.idle.first_request),
                Phase::Idle { since, .. } => Some(since + self.idle.keep_alive),
                Phase::Serving(_) => None,
            };
            if deadline.is_some_and(|deadline| deadline <= now) {
                self.idle.timed_out.fetch_add(1, Relaxed);
                return;
            }
            // Look again at that deadline, but never later than a keep-alive period
            // from now: an idle period that starts meanwhile (after a request served
            // meanwhile) ends after that, so its deadline is not missed, even when the
            // first request's deadline is the longer one.
            let soon = now + self.idle.keep_alive;
            let wake = deadline.map_or(soon, |deadline| deadline.min(soon));
            tokio::select! {
                () = &mut close => return,
                () = sleep_until(wake) => {}
            }
        }
    }

    fn phase(&self) -> MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let phase = *self.phase();
        if let Phase::Idle { since, .. } = phase {
            self.idle.lock().idle.remove(&(since, self.id));
        }
        self.closer.closed.cancel();
    }
}

/// A connection serving a request; idle again when the last is dropped.
pub struct Serving(Arc<Connection>);

impl Drop for Serving {
    fn drop(&mut self) {
        let connection = &self.0;
        let mut queue = connection.idle.lock();
        let phase = *connection.phase();
        match phase {
            Phase::Serving(n) if n > 1 => {
                *connection.phase() = Phase::Serving(n - 1);
            }
            _ => {
                connection.idle.wait(&mut queue, connection, false);
            }
        }
    }
}

/// A response body that keeps its connection serving until hyper is done with it:
/// to its end for a stream, which may take hours.
pub struct ServingBody {
    body: Body,
    _serving: Serving,
}

impl ServingBody {
    pub fn new(body: Body, serving: Serving) -> Self {
        Self {
            body,
            _serving: serving,
        }
    }
}

impl HttpBody for ServingBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
