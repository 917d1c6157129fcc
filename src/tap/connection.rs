//! One connection's recording: which exchange it is in (between requests, an
//! untapped request, a tapped one), the request bytes it holds until the request is
//! routed, and the two decoders that turn its bytes into rows for its tap.
//!
//! An HTTP/2 connection (HTTPS, known from the TLS handshake) carries many requests
//! at once, so it is recorded as a whole from the first request that names a tap. Its
//! earlier bytes are not kept, but their frame boundaries are followed (a few integer
//! operations per frame), so that the recording starts on a frame.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::decode::{Decoder, H2_PREFACE_LEN, Switch};
use super::lock;
use super::row::{Row, Side};
use super::taps::{MAX_PENDING, Tap, Taps};

/// What one connection is doing, as far as the tap is concerned.
pub struct ConnectionTap {
    taps: Arc<Taps>,
    id: u64,
    /// Its current or last exchange was tapped: writes are recorded.
    live: AtomicBool,
    /// It speaks HTTP/2 (see [`ConnectionTap::speaks_http2`]).
    http2: AtomicBool,
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
    /// HTTP/2, not recorded yet: where each direction's frames are (client, server).
    frames: [FramePosition; 2],
    closed: bool,
}

/// Where the next HTTP/2 frame of one direction starts.
#[derive(Default)]
struct FramePosition {
    /// Bytes left of the frame in progress (or of the client's preface).
    skip: usize,
    /// The part of the next frame header seen so far.
    head: Vec<u8>,
}

impl FramePosition {
    fn follow(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (9 - self.head.len()).min(bytes.len());
            self.head.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.head.len() == 9 {
                let length = u32::from_be_bytes([0, self.head[0], self.head[1], self.head[2]]);
                self.skip = length as usize;
                self.head.clear();
            }
        }
    }
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
    pub(super) fn new(taps: Arc<Taps>, id: u64) -> Self {
        Self {
            taps,
            id,
            live: AtomicBool::new(false),
            http2: AtomicBool::new(false),
            state: Mutex::new(Recording::default()),
        }
    }

    /// Its current or last exchange was tapped.
    pub(super) fn is_live(&self) -> bool {
        self.live.load(Relaxed)
    }

    /// The connection speaks HTTP/2 (the TLS handshake chose it), from before its
    /// first byte: the client's preface comes first.
    pub fn speaks_http2(&self) {
        let mut state = lock(&self.state);
        state.multiplexed = true;
        state.frames[0].skip = H2_PREFACE_LEN;
        self.http2.store(true, Relaxed);
    }

    /// Bytes read (`Side::Client`) or written (`Side::Server`).
    pub fn saw(&self, from: Side, bytes: &[u8]) {
        if self.http2.load(Relaxed) && !self.live.load(Relaxed) {
            lock(&self.state).frames[from as usize].follow(bytes);
            return;
        }
        // The common case costs one or two loads: nobody tapping this connection.
        if !self.live.load(Relaxed) && (from == Side::Server || !self.taps.any_open()) {
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
    pub(super) fn begin(&self, tap: Option<(Arc<Tap>, &'static str)>) {
        let mut state = lock(&self.state);
        if state.multiplexed {
            // Recorded as a whole, from the first request that names a tap.
            if let Some((tap, route)) = tap
                && self.http2.load(Relaxed)
                && !self.live.load(Relaxed)
            {
                let [client, server] = std::mem::take(&mut state.frames);
                state.decoders = Some((
                    Decoder::http2_from(Side::Client, client.skip, &client.head),
                    Decoder::http2_from(Side::Server, server.skip, &server.head),
                ));
                state.exchange = Exchange::Tapped;
                state.tap = Some((tap, route, Instant::now()));
                self.live.store(true, Relaxed);
            }
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
    pub(super) fn end(&self) {
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
