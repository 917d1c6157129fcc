//! Who is online in each room, and through which transport.
//!
//! A page may tag its requests with `client=<id>` (random, chosen by the page) and
//! `name=<display name>`. Push clients count as online while their stream or socket
//! is open; pollers hold nothing open between requests, so they count as online while
//! they keep asking, for [`POLLER_GRACE`] after their last request.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::ApiError;
use crate::extract::FromQuery;
use crate::message::MAX_AUTHOR_CHARS;
use crate::protocol::Transport;
use crate::room::{RoomName, is_name};
use crate::server::Carrier;
use crate::stats::HttpVersion;

/// How long a poller counts as online after its last request: a held long poll lasts
/// up to 30 s and the slowest short-poll interval on the page is 10 s.
pub const POLLER_GRACE: Duration = Duration::from_secs(35);

/// The most clients remembered at once, over all rooms, so that made-up `client` ids
/// and room names cannot grow the list without bound.
pub const MAX_SEATS: usize = 10_000;

/// The most clients one `GET /api/presence` answer lists (the first, by name): at most
/// about 60 KB, however many made-up ids are online.
pub const MAX_LISTED: usize = 200;

/// The optional `client` and `name` query parameters every transport accepts.
#[derive(Debug, Default)]
pub struct Visitor {
    pub client: Option<String>,
    pub name: Option<String>,
}

impl FromQuery for Visitor {
    fn pair(&mut self, key: &str, value: Cow<'_, str>) {
        let field = match key {
            "client" => &mut self.client,
            "name" => &mut self.name,
            _ => return,
        };
        *field = Some(value.into_owned());
    }
}

/// One client on one transport, as `GET /api/presence` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Online {
    pub client: String,
    pub name: Option<String>,
    pub transport: Transport,
    /// The HTTP of its (latest) request: `http/1.1` or `h2`; `null` for WebTransport
    /// (HTTP/3 over QUIC, no TCP connection).
    pub http: Option<HttpVersion>,
    /// The number of the TCP connection that request came on: a page whose transports
    /// all show the same number shares one connection (HTTP/2). `null` for WebTransport.
    pub connection: Option<u64>,
}

/// A client on a transport in a room: the key of the presence list.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Seat {
    pub room: RoomName,
    pub client: String,
    pub transport: Transport,
}

#[derive(Default)]
pub struct Presence {
    seen: Mutex<HashMap<Seat, Seen>>,
}

struct Seen {
    name: Option<String>,
    /// The HTTP and the TCP connection of the latest request.
    http: Option<HttpVersion>,
    connection: Option<u64>,
    /// Open push connections; always 0 for pollers.
    connections: usize,
    last: Instant,
}

impl Visitor {
    /// Checks the parameters (`client`: 1–64 of `A–Z a–z 0–9 _ -`; `name`: at most the
    /// author limit after trimming) and names the seat, if the client gave an id.
    pub fn seat(&self, room: &RoomName, transport: Transport) -> Result<Option<Seat>, ApiError> {
        let Some(client) = &self.client else {
            return Ok(None);
        };
        if !is_name(client) {
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
        Ok(Some(Seat {
            room: room.clone(),
            client: client.clone(),
            transport,
        }))
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
    pub fn arrive(&self, seat: &Seat, name: Option<&str>, carrier: Option<&Carrier>) {
        let mut seen = self.lock();
        if !seen.contains_key(seat) && seen.len() >= MAX_SEATS {
            forget_gone(&mut seen);
            if seen.len() >= MAX_SEATS {
                return;
            }
        }
        let entry = seen.entry(seat.clone()).or_insert(Seen {
            name: None,
            http: None,
            connection: None,
            connections: 0,
            last: Instant::now(),
        });
        entry.name = name.map(str::to_owned);
        entry.http = carrier.map(|carrier| carrier.http);
        entry.connection = carrier.map(|carrier| carrier.id);
        entry.last = Instant::now();
        if seat.transport.is_push() {
            entry.connections += 1;
        }
    }

    /// A push client's connection ended.
    pub fn leave(&self, seat: &Seat) {
        if !seat.transport.is_push() {
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

    /// How many are online in `room` now, and the first [`MAX_LISTED`] of them,
    /// sorted by name then client.
    pub fn online(&self, room: &RoomName) -> (usize, Vec<Online>) {
        let mut seen = self.lock();
        forget_gone(&mut seen);
        let mut online: Vec<(&Seat, &Seen)> =
            seen.iter().filter(|(seat, _)| seat.room == *room).collect();
        let total = online.len();
        let by_name = |(a, s): &(&Seat, &Seen), (b, t): &(&Seat, &Seen)| {
            (&s.name, &a.client, a.transport as u8).cmp(&(&t.name, &b.client, b.transport as u8))
        };
        if online.len() > MAX_LISTED {
            online.select_nth_unstable_by(MAX_LISTED, by_name);
            online.truncate(MAX_LISTED);
        }
        online.sort_unstable_by(by_name);
        let listed = online
            .into_iter()
            .map(|(seat, s)| Online {
                client: seat.client.clone(),
                name: s.name.clone(),
                transport: seat.transport,
                http: s.http,
                connection: s.connection,
            })
            .collect();
        (total, listed)
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
