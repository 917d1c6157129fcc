//! Who is online, and through which transport.
//!
//! A page may tag its requests with `client=<id>` (random, chosen by the page) and
//! `name=<display name>`. Push clients count as online while their stream or socket
//! is open; pollers hold nothing open between requests, so they count as online while
//! they keep asking, for [`POLLER_GRACE`] after their last request.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::message::MAX_AUTHOR_CHARS;
use crate::server::Carrier;
use crate::stats::{HttpVersion, Transport};

/// How long a poller counts as online after its last request: a held long poll lasts
/// up to 30 s and the slowest short-poll interval on the page is 10 s.
pub const POLLER_GRACE: Duration = Duration::from_secs(35);

/// The most clients listed at once, so that made-up `client` ids cannot grow the
/// list without bound.
pub const MAX_SEATS: usize = 10_000;

/// The optional `client` and `name` query parameters every transport accepts.
#[derive(Debug, Default, Deserialize)]
pub struct Visitor {
    pub client: Option<String>,
    pub name: Option<String>,
}

/// One client on one transport, as `GET /api/presence` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Online {
    pub client: String,
    pub name: Option<String>,
    pub transport: Transport,
    /// The HTTP of its (latest) request: `http/1.1` or `h2`.
    pub http: HttpVersion,
    /// The number of the TCP connection that request came on: a page whose transports
    /// all show the same number shares one connection (HTTP/2).
    pub connection: u64,
}

/// A client on a transport: the key of the presence list.
pub type Seat = (String, Transport);

#[derive(Default)]
pub struct Presence {
    seen: Mutex<HashMap<Seat, Seen>>,
}

struct Seen {
    name: Option<String>,
    carrier: Carrier,
    /// Open push connections; always 0 for pollers.
    connections: usize,
    last: Instant,
}

impl Visitor {
    /// Checks the parameters (`client`: 1–64 of `A–Z a–z 0–9 _ -`; `name`: at most the
    /// author limit after trimming) and names the seat, if the client gave an id.
    pub fn seat(&self, transport: Transport) -> Result<Option<Seat>, ApiError> {
        let Some(client) = &self.client else {
            return Ok(None);
        };
        let valid = (1..=64).contains(&client.len())
            && client
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            return Err(ApiError::BadRequest(
                "client must be 1-64 characters of A-Z, a-z, 0-9, _ and -".into(),
            ));
        }
        if self
            .name()
            .is_some_and(|n| n.chars().count() > MAX_AUTHOR_CHARS)
        {
            return Err(ApiError::BadRequest(format!(
                "name must be at most {MAX_AUTHOR_CHARS} characters"
            )));
        }
        Ok(Some((client.clone(), transport)))
    }

    pub fn name(&self) -> Option<&str> {
        self.name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
    }
}

impl Presence {
    /// A client arrived: a push client stays listed until [`Presence::leave`], a
    /// poller for [`POLLER_GRACE`].
    /// Past [`MAX_SEATS`] a newcomer is not listed (it is served all the same).
    pub fn arrive(&self, seat: &Seat, name: Option<&str>, carrier: Carrier) {
        let mut seen = self.lock();
        if !seen.contains_key(seat) && seen.len() >= MAX_SEATS {
            forget_gone(&mut seen);
            if seen.len() >= MAX_SEATS {
                return;
            }
        }
        let entry = seen.entry(seat.clone()).or_insert(Seen {
            name: None,
            carrier,
            connections: 0,
            last: Instant::now(),
        });
        entry.name = name.map(str::to_owned);
        entry.carrier = carrier;
        entry.last = Instant::now();
        if seat.1.is_push() {
            entry.connections += 1;
        }
    }

    /// A push client's connection ended.
    pub fn leave(&self, seat: &Seat) {
        if !seat.1.is_push() {
            return;
        }
        let mut seen = self.lock();
        if let Some(s) = seen.get_mut(seat) {
            s.connections -= 1;
            if s.connections == 0 {
                seen.remove(seat);
            }
        }
    }

    /// Everyone online now, sorted by name then client.
    pub fn online(&self) -> Vec<Online> {
        let mut seen = self.lock();
        forget_gone(&mut seen);
        let mut online: Vec<Online> = seen
            .iter()
            .map(|((client, transport), s)| Online {
                client: client.clone(),
                name: s.name.clone(),
                transport: *transport,
                http: s.carrier.http,
                connection: s.carrier.id,
            })
            .collect();
        online.sort_by(|a, b| (&a.name, &a.client).cmp(&(&b.name, &b.client)));
        online
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Seat, Seen>> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Drops pollers not seen for [`POLLER_GRACE`].
fn forget_gone(seen: &mut HashMap<Seat, Seen>) {
    let now = Instant::now();
    seen.retain(|_, s| s.connections > 0 || now - s.last < POLLER_GRACE);
}
