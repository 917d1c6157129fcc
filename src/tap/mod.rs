//! The wire tap: the server shows a client exactly the bytes of that client's own
//! connections, decoded, so that the page's wire log can show real requests, headers,
//! SSE text and WebSocket frames instead of what `fetch` and `EventSource` let a page
//! see (a browser hides headers, framing, keep-alives and pings from scripts).
//!
//! ```text
//! GET /api/tap/{id}?since=SEQ            the page opens its tap and reads new rows
//! GET /api/events?since=41&tap={id}      any request naming the tap is recorded,
//!                                        with its response, on its connection
//! ```
//!
//! How it works: every accepted connection is wrapped in [`Tapped`] (one seam in
//! `server.rs`), which reports each read and write to the connection's
//! [`ConnectionTap`]. When a request names a tap (`tap=` in its query), the middleware
//! [`attach`] points the connection at it: the request's bytes, the response's, and
//! for a WebSocket every frame after the `101`, go to that tap, decoded into rows
//! ([`decode`]). A request that names no tap is recorded nowhere.
//!
//! Private by construction: the id is chosen by the page (a random UUID: 122 bits that
//! nobody else can guess), rows come only from connections whose requests named it,
//! and a tap keeps at most [`MAX_ROWS`] rows and [`MAX_BYTES`] of content, forgotten
//! [`IDLE`] after its last read. Cost: while no tap is open, one atomic load per read
//! and write; while one is, each connection also keeps the head of its current
//! request (at most [`MAX_PENDING`]) until the request says which tap, if any, it is
//! for. `--wire-tap off` removes the wrapper's work entirely (docs/reliability.md).

mod decode;
mod io;

pub use decode::{Row, Side, close_meaning};
pub use io::Tapped;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use hyper::body::Frame;
use serde::Deserialize;
use serde_json::{Value, json};

use self::decode::{Decoder, Switch};
use crate::AppState;
use crate::config::WireTap;
use crate::error::ApiError;
use crate::extract::Query;

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
    pub fn new(mode: WireTap, loopback: bool) -> Self {
        Self {
            enabled: match mode {
                WireTap::On => true,
                WireTap::Off => false,
                WireTap::Auto => loopback,
            },
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
            Arc::new(ConnectionTap {
                taps: self.clone(),
                id: self.next_connection.fetch_add(1, Relaxed),
                live: AtomicBool::new(false),
                state: Mutex::new(Recording::default()),
            })
        })
    }

    /// The tap named `id`, opened if need be.
    fn open(&self, id: &str) -> Result<Arc<Tap>, ApiError> {
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

    fn push(&self, mut row: Row) {
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
    fn read(&self, since: u64) -> Value {
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

/// What one connection is doing, as far as the tap is concerned.
pub struct ConnectionTap {
    taps: Arc<Taps>,
    id: u64,
    /// Its current or last exchange was tapped: writes are recorded.
    live: AtomicBool,
    state: Mutex<Recording>,
}

#[derive(Default)]
struct Recording {
    exchange: Exchange,
    /// The tap its last tapped exchange went to (the response's last bytes, and a
    /// WebSocket's frames, come after the handler returned).
    tap: Option<(Arc<Tap>, &'static str, Instant)>,
    /// Bytes of a request not yet routed.
    pending: Vec<u8>,
    decoders: Option<(Decoder, Decoder)>,
    /// HTTP/2: requests are streams of one connection, so it is recorded as a whole,
    /// for the first tap one of its requests names.
    multiplexed: bool,
    closed: bool,
}

#[derive(Default)]
enum Exchange {
    /// Between two requests: what the client sends is the next request.
    #[default]
    Between,
    /// A request that named no tap, until its response ends.
    Untapped,
    /// A request that named a tap, until its response ends (a WebSocket: for good).
    Tapped,
}

impl ConnectionTap {
    /// Bytes read (`Side::Client`) or written (`Side::Server`).
    pub fn saw(&self, from: Side, bytes: &[u8]) {
        // The common case costs one or two loads: nobody tapping this connection.
        if !self.live.load(Relaxed) && (from == Side::Server || self.taps.count.load(Relaxed) == 0)
        {
            return;
        }
        let mut state = lock(&self.state);
        match (from, &state.exchange) {
            (Side::Client, Exchange::Between)
                if state.pending.len() + bytes.len() <= MAX_PENDING =>
            {
                state.pending.extend_from_slice(bytes);
            }
            (Side::Client, Exchange::Between | Exchange::Untapped) => {}
            _ => self.record(&mut state, from, bytes),
        }
    }

    /// The client closed its side (`Side::Client`), or the connection is gone
    /// (`Side::Server`: it ended, whoever ended it).
    pub fn closed(&self, by: Side) {
        if !self.live.load(Relaxed) {
            return;
        }
        let mut state = lock(&self.state);
        if std::mem::replace(&mut state.closed, true) {
            return;
        }
        let mut rows = Vec::new();
        if let Some((client, server)) = &mut state.decoders {
            client.finish(&mut rows);
            server.finish(&mut rows);
        }
        let summary = match by {
            Side::Client => "the client closed the connection",
            Side::Server => "the connection ended",
        };
        rows.push(Row::new(by, "closed", 0, summary.into()));
        self.deliver(&state, rows);
    }

    /// A request was routed: record it (and its response) in `tap`, or nowhere.
    fn begin(&self, tap: Option<(Arc<Tap>, &'static str)>) {
        let mut state = lock(&self.state);
        if state.multiplexed {
            return;
        }
        let pending = std::mem::take(&mut state.pending);
        match tap {
            Some((tap, route)) => {
                state.exchange = Exchange::Tapped;
                state.tap = Some((tap, route, Instant::now()));
                state.decoders = Some((Decoder::new(Side::Client), Decoder::new(Side::Server)));
                self.live.store(true, Relaxed);
                self.record(&mut state, Side::Client, &pending);
            }
            None => {
                state.exchange = Exchange::Untapped;
                state.tap = None;
                state.decoders = None;
                self.live.store(false, Relaxed);
            }
        }
    }

    /// The response's body ended: what the client sends next is a new request.
    fn end(&self) {
        let mut state = lock(&self.state);
        if !state.multiplexed {
            state.exchange = Exchange::Between;
        }
    }

    fn record(&self, state: &mut Recording, from: Side, bytes: &[u8]) {
        let Some((client, server)) = &mut state.decoders else {
            return;
        };
        let mut rows = Vec::new();
        let (this, other) = match from {
            Side::Client => (client, server),
            Side::Server => (server, client),
        };
        if let Some(switch) = this.feed(bytes, &mut rows) {
            other.switch(switch);
            state.multiplexed |= switch == Switch::Http2;
        }
        if from == Side::Client && this.head_request {
            other.head_request = true;
        }
        self.deliver(state, rows);
    }

    fn deliver(&self, state: &Recording, rows: Vec<Row>) {
        let Some((tap, route, started)) = &state.tap else {
            return;
        };
        let at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        for mut row in rows {
            row.at = at;
            row.conn = self.id;
            row.route = route;
            if row.kind == "response" {
                row.after_ms = Some(started.elapsed().as_millis() as u64);
            }
            tap.push(row);
        }
    }
}

/// Middleware on every API request: reads `tap=` and points the connection at it.
pub async fn attach(
    State(app): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Some(connection) = request.extensions().get::<Arc<ConnectionTap>>().cloned() else {
        return Ok(next.run(request).await); // tapping is off, or no real connection
    };
    let tap = match tap_param(request.uri().query())? {
        Some(id) => Some((
            app.taps.open(id)?,
            route(request.method(), request.uri().path()),
        )),
        None => None,
    };
    // Nobody taps this connection, and nobody taps at all: leave it alone.
    let involved =
        tap.is_some() || connection.live.load(Relaxed) || app.taps.count.load(Relaxed) > 0;
    if !involved {
        return Ok(next.run(request).await);
    }
    connection.begin(tap);
    let response = next.run(request).await;
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        return Ok(response); // the connection belongs to this exchange for good
    }
    Ok(response.map(|body| {
        Body::new(Ending {
            body,
            connection: Some(connection),
        })
    }))
}

/// `tap=ID` from a query string, if there is one.
fn tap_param(query: Option<&str>) -> Result<Option<&str>, ApiError> {
    query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("tap="))
        .map(valid_id)
        .transpose()
}

/// A tap id: 16 to 64 letters, digits, `-` or `_`.
fn valid_id(id: &str) -> Result<&str, ApiError> {
    let valid = (16..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    valid.then_some(id).ok_or_else(|| {
        ApiError::BadRequest(
            "tap must be 16 to 64 letters, digits, '-' or '_' (a random UUID will do)".into(),
        )
    })
}

/// Which transport a request belongs to, for the page to show it in the right pane.
fn route(method: &Method, path: &str) -> &'static str {
    match (method.as_str(), path) {
        ("GET", "/api/messages") => "short_poll",
        ("POST", "/api/messages") => "publish",
        ("GET", "/api/messages/long-poll") => "long_poll",
        ("GET", "/api/events") => "sse",
        ("GET", "/api/ws") => "websocket",
        _ => "other",
    }
}

/// A response body that tells the connection when it has ended.
struct Ending {
    body: Body,
    connection: Option<Arc<ConnectionTap>>,
}

impl Ending {
    fn ended(&mut self) {
        if let Some(connection) = self.connection.take() {
            connection.end();
        }
    }
}

impl axum::body::HttpBody for Ending {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let poll = std::pin::Pin::new(&mut self.body).poll_frame(cx);
        if matches!(poll, std::task::Poll::Ready(None | Some(Err(_)))) {
            self.ended();
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Ending {
    fn drop(&mut self) {
        self.ended();
    }
}

#[derive(Deserialize)]
pub struct Since {
    since: Option<u64>,
}

/// `GET /api/tap/{id}?since=SEQ`: the tap's rows after `since` (opening it if new).
pub async fn read(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(Since { since }): Query<Since>,
) -> Result<axum::Json<Value>, ApiError> {
    if !app.taps.enabled() {
        return Err(ApiError::TapOff);
    }
    let tap = app.taps.open(valid_id(&id)?)?;
    Ok(axum::Json(tap.read(since.unwrap_or(0))))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests;
