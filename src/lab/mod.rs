//! The fault lab: a teacher injects, into the server, the faults real deployments
//! meet, and the class watches each transport cope.
//!
//! ```text
//! PUT    /api/lab/{id}/{transport}        {"blocked":true} | {"buffer_bytes":4096} |
//!                                         {"idle_cut_s":5} | {"delay_ms":300,"bytes_per_s":2000}
//! POST   /api/lab/{id}/{transport}/cut    cut every connection of that transport now
//! POST   /api/lab/{id}/restart?room=R     restart the room's hub: ids start again at 1
//! GET    /api/lab/{id}                    the faults in force
//! DELETE /api/lab/{id}                    clear them
//! ```
//!
//! `{id}` is the page's wire-tap id (`tap=` on every request it makes, see
//! [`crate::tap`]): 128 random bits only that page knows, so a fault set under it
//! touches only the requests that carry it, the page's own connections. Add
//! `?everyone=true` and the fault touches every client (the teacher's choice, for a
//! class on one server). What each fault does, as a proxy or a network would:
//!
//! - **cut** ([`Lab::cut`]): the connections end mid-response, without a close frame,
//!   the way a dropped network or a restarted proxy ends them;
//! - **blocked**: requests of the transport get `403` (a firewall that refuses
//!   WebSocket upgrades, a proxy that refuses streaming responses);
//! - **buffer_bytes**: the response is held back until that many bytes are waiting or
//!   it ends (nginx without `X-Accel-Buffering: no` in front of SSE);
//! - **idle_cut_s**: a response (or socket) that writes nothing for that long is cut
//!   (a load balancer's idle timeout: keep-alive comments and pings are the answer);
//! - **delay_ms**, **bytes_per_s**: every write waits that long, and no faster than
//!   that rate (a slow network);
//! - **restart** ([`restart`]): the room forgets its messages and its ids start again
//!   at 1, and every connection to the room is cut, as when a server on the memory
//!   store restarts. This one touches everyone in the room by nature (it is the
//!   room's hub); a durable store keeps its ids, so it answers `409` there.
//!
//! How: [`layer::LabLayer`] sits in front of every API request, looks up the faults of
//! the request's transport for its page (and for everyone), refuses it if blocked, and
//! otherwise wraps the response body in [`body::Faulty`]; a WebSocket, whose bytes
//! leave the HTTP body after the `101`, gets the same [`Session`] in a request
//! extension and asks it between frames. Off (`--fault-lab off`, the default on a
//! public address) there is no layer at all.

pub mod body;
pub mod layer;
mod session;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::broadcast;

pub use session::{Ending, Session, Ticket};

use crate::error::ApiError;
use crate::extract::{FromQuery, Query};
use crate::protocol::Transport;
use crate::room::RoomName;
use crate::state::AppState;
use crate::tap::valid_id;

/// Pages with faults set at once, at most (a page's entry goes when it clears them).
pub const MAX_PAGES: usize = 200;
/// The longest `delay_ms`, `idle_cut_s` and the largest `buffer_bytes` accepted.
pub const MAX_DELAY_MS: u64 = 10_000;
pub const MAX_IDLE_CUT_S: f64 = 600.0;
pub const MAX_BUFFER_BYTES: usize = 1 << 20;
/// The slowest `bytes_per_s` accepted: slower would hold a connection for minutes.
pub const MIN_BYTES_PER_S: u64 = 100;

/// The faults of one transport, for one page or for everyone. Every field is off
/// when absent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub blocked: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffer_bytes: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_cut_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_s: Option<u64>,
}

impl Faults {
    /// No fault at all.
    pub fn is_clear(&self) -> bool {
        *self == Self::default()
    }

    fn check(&self) -> Result<(), ApiError> {
        let bad = |what: String| Err(ApiError::BadRequest(what));
        if self
            .buffer_bytes
            .is_some_and(|b| b == 0 || b > MAX_BUFFER_BYTES)
        {
            return bad(format!("buffer_bytes must be 1 to {MAX_BUFFER_BYTES}"));
        }
        if self
            .idle_cut_s
            .is_some_and(|s| !(s > 0.0 && s <= MAX_IDLE_CUT_S))
        {
            return bad(format!(
                "idle_cut_s must be above 0 and at most {MAX_IDLE_CUT_S}"
            ));
        }
        if self.delay_ms.is_some_and(|d| d > MAX_DELAY_MS) {
            return bad(format!("delay_ms must be at most {MAX_DELAY_MS}"));
        }
        if self.bytes_per_s.is_some_and(|b| b < MIN_BYTES_PER_S) {
            return bad(format!("bytes_per_s must be at least {MIN_BYTES_PER_S}"));
        }
        Ok(())
    }

    /// This page's faults, each one falling back to everyone's.
    fn or(&self, everyone: &Self) -> Self {
        Self {
            blocked: self.blocked || everyone.blocked,
            buffer_bytes: self.buffer_bytes.or(everyone.buffer_bytes),
            idle_cut_s: self.idle_cut_s.or(everyone.idle_cut_s),
            delay_ms: self.delay_ms.or(everyone.delay_ms),
            bytes_per_s: self.bytes_per_s.or(everyone.bytes_per_s),
        }
    }

    pub fn idle_cut(&self) -> Option<Duration> {
        self.idle_cut_s.map(Duration::from_secs_f64)
    }
}

/// Each transport's faults.
type PerTransport = [Faults; Transport::ALL.len()];

/// A cut: every connection of `transport` (or of all), of the page `page` (or of
/// everyone), in `room` (or in any).
#[derive(Debug, Clone, Default)]
struct Cut {
    page: Option<Arc<str>>,
    transport: Option<Transport>,
    room: Option<Arc<str>>,
}

impl Cut {
    fn names(&self, page: Option<&Arc<str>>, transport: Transport, room: &str) -> bool {
        self.page.as_ref().is_none_or(|cut| Some(cut) == page)
            && self.transport.is_none_or(|cut| cut == transport)
            && self.room.as_deref().is_none_or(|cut| cut == room)
    }
}

/// The lab's state: the faults in force and the cuts to deliver.
pub struct Lab {
    enabled: bool,
    faults: Mutex<Faulted>,
    /// Every open response and socket of the lab's transports listens here.
    cuts: broadcast::Sender<Cut>,
}

#[derive(Default)]
struct Faulted {
    everyone: PerTransport,
    pages: HashMap<Arc<str>, PerTransport>,
}

impl Lab {
    /// `--fault-lab`, already resolved against the listening address.
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            faults: Mutex::default(),
            cuts: broadcast::channel(64).0,
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// What a request of `transport` from `page` in `room` meets: `None` when it is
    /// blocked, else the session that applies the rest.
    pub fn session(&self, page: Option<&str>, transport: Transport, room: &str) -> Option<Session> {
        let faults = {
            let faulted = lock(&self.faults);
            let everyone = &faulted.everyone[transport as usize];
            match page.and_then(|page| faulted.pages.get(page)) {
                Some(mine) => mine[transport as usize].or(everyone),
                None => everyone.clone(),
            }
        };
        if faults.blocked {
            return None;
        }
        let page: Option<Arc<str>> = page.map(Arc::from);
        let room: Arc<str> = Arc::from(room);
        let mut cuts = self.cuts.subscribe();
        // Resolves at the first cut that names this connection; a lagging receiver
        // missed some cuts and ends to be safe.
        let cut = async move {
            loop {
                match cuts.recv().await {
                    Ok(cut) if cut.names(page.as_ref(), transport, &room) => return,
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => return,
                    Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
                }
            }
        };
        Some(Session::new(faults, Box::pin(cut)))
    }

    /// Cut every open connection `cut` names.
    fn cut(&self, cut: Cut) {
        // No receiver means nothing is open: nothing to cut.
        let _ = self.cuts.send(cut);
    }

    fn set(
        &self,
        page: Option<&str>,
        transport: Transport,
        faults: Faults,
    ) -> Result<(), ApiError> {
        let mut faulted = lock(&self.faults);
        let Some(page) = page else {
            faulted.everyone[transport as usize] = faults;
            return Ok(());
        };
        if !faulted.pages.contains_key(page) {
            if faults.is_clear() {
                return Ok(());
            }
            if faulted.pages.len() >= MAX_PAGES {
                return Err(ApiError::Busy("too many pages have faults set"));
            }
        }
        let entry = faulted.pages.entry(Arc::from(page)).or_default();
        entry[transport as usize] = faults;
        if entry.iter().all(Faults::is_clear) {
            faulted.pages.remove(page);
        }
        Ok(())
    }

    fn clear(&self, page: &str, everyone: bool) {
        let mut faulted = lock(&self.faults);
        faulted.pages.remove(page);
        if everyone {
            faulted.everyone = PerTransport::default();
        }
    }

    fn describe(&self, page: &str) -> Value {
        let faulted = lock(&self.faults);
        let named = |faults: &PerTransport| -> serde_json::Map<String, Value> {
            Transport::ALL
                .into_iter()
                .filter(|t| !faults[*t as usize].is_clear())
                .map(|t| (t.name().to_owned(), json!(faults[t as usize])))
                .collect()
        };
        let mine = faulted.pages.get(page).map(named).unwrap_or_default();
        json!({ "page": mine, "everyone": named(&faulted.everyone) })
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `?everyone=true`: the fault is for every client, not only the page's.
#[derive(Default)]
pub struct Everyone {
    everyone: Option<String>,
}

impl FromQuery for Everyone {
    fn pair(&mut self, key: &str, value: std::borrow::Cow<'_, str>) {
        if key == "everyone" {
            self.everyone = Some(value.into_owned());
        }
    }
}

impl Everyone {
    fn get(&self) -> Result<bool, ApiError> {
        match self.everyone.as_deref() {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(_) => Err(ApiError::BadRequest(
                "everyone must be true or false".into(),
            )),
        }
    }
}

/// The page's id and, unless `everyone`, the scope it names.
fn scope<'a>(lab: &Lab, id: &'a str, everyone: &Everyone) -> Result<Option<&'a str>, ApiError> {
    if !lab.enabled {
        return Err(ApiError::LabOff);
    }
    let id = valid_id(id)?;
    Ok((!everyone.get()?).then_some(id))
}

fn transport(name: &str) -> Result<Transport, ApiError> {
    Transport::ALL
        .into_iter()
        .filter(|t| *t != Transport::Webtransport)
        .find(|t| t.name() == name)
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "no fault lab for {name:?}: short_poll, long_poll, sse or websocket"
            ))
        })
}

/// `GET /api/lab/{id}`.
pub async fn show(
    State(lab): State<Arc<Lab>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = scope(&lab, &id, &Everyone::default())?.unwrap_or_default();
    Ok(Json(lab.describe(id)))
}

/// `PUT /api/lab/{id}/{transport}` with the [`Faults`] as JSON (`{}` clears them).
pub async fn set(
    State(lab): State<Arc<Lab>>,
    Path((id, name)): Path<(String, String)>,
    Query(everyone): Query<Everyone>,
    faults: Result<Json<Faults>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let page = scope(&lab, &id, &everyone)?;
    let transport = transport(&name)?;
    let Json(faults) = faults?;
    faults.check()?;
    lab.set(page, transport, faults)?;
    Ok(Json(lab.describe(valid_id(&id)?)))
}

/// `POST /api/lab/{id}/{transport}/cut`.
pub async fn cut(
    State(lab): State<Arc<Lab>>,
    Path((id, name)): Path<(String, String)>,
    Query(everyone): Query<Everyone>,
) -> Result<Json<Value>, ApiError> {
    let page = scope(&lab, &id, &everyone)?;
    let transport = transport(&name)?;
    lab.cut(Cut {
        page: page.map(Arc::from),
        transport: Some(transport),
        room: None,
    });
    Ok(Json(
        json!({ "cut": transport.name(), "everyone": page.is_none() }),
    ))
}

/// `?room=NAME`: the room to restart (the lobby when absent).
#[derive(Default)]
pub struct InRoom {
    room: Option<String>,
}

impl FromQuery for InRoom {
    fn pair(&mut self, key: &str, value: std::borrow::Cow<'_, str>) {
        if key == "room" {
            self.room = Some(value.into_owned());
        }
    }
}

/// `POST /api/lab/{id}/restart?room=NAME`: the room's ids start again at 1, and every
/// connection to it is cut (everyone's: it is the room's hub).
pub async fn restart(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(InRoom { room }): Query<InRoom>,
) -> Result<Json<Value>, ApiError> {
    scope(&app.lab, &id, &Everyone::default())?;
    let room = match room {
        Some(name) => RoomName::new(&name)?,
        None => RoomName::lobby(),
    };
    if !app.hub.restart(&room) {
        return Err(ApiError::LabCannot(
            "the store keeps its ids: a restart of the hub needs --store memory",
        ));
    }
    app.lab.cut(Cut {
        room: Some(Arc::from(room.as_str())),
        ..Cut::default()
    });
    Ok(Json(json!({ "restarted": room })))
}

/// `DELETE /api/lab/{id}` (with `?everyone=true`, everyone's faults too).
pub async fn clear(
    State(lab): State<Arc<Lab>>,
    Path(id): Path<String>,
    Query(everyone): Query<Everyone>,
) -> Result<Json<Value>, ApiError> {
    let all = everyone.get()?;
    let id = scope(&lab, &id, &Everyone::default())?.unwrap_or_default();
    lab.clear(id, all);
    Ok(Json(lab.describe(id)))
}

#[cfg(test)]
mod tests;
