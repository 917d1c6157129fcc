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

mod connection;
mod decode;
mod io;
mod row;
mod taps;

pub use connection::ConnectionTap;
pub use io::Tapped;
pub use row::{Row, Side, close_meaning};
pub use taps::{IDLE, MAX_BYTES, MAX_PENDING, MAX_ROWS, MAX_TAPS, Taps};

use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use hyper::body::Frame;
use serde::Deserialize;
use serde_json::Value;

use crate::error::ApiError;
use crate::extract::Query;
use crate::protocol::Transport;

/// Middleware on every API request: reads `tap=` and points the connection at it.
pub async fn attach(
    State(taps): State<Arc<Taps>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Some(connection) = request.extensions().get::<Arc<ConnectionTap>>().cloned() else {
        return Ok(next.run(request).await); // tapping is off, or no real connection
    };
    let tap = match tap_param(request.uri().query())? {
        Some(id) => Some((
            taps.open(id)?,
            route(request.method(), request.uri().path()),
        )),
        None => None,
    };
    // Nobody taps this connection, and nobody taps at all: leave it alone.
    let involved = tap.is_some() || connection.is_live() || taps.any_open();
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
    // The lobby's paths (`/api/events`) and any room's (`/api/rooms/{room}/events`).
    let endpoint = match path.strip_prefix("/api/rooms/") {
        Some(in_room) => in_room.split_once('/').map(|(_, endpoint)| endpoint),
        None => path.strip_prefix("/api/"),
    };
    let Some(endpoint) = endpoint else {
        return "other";
    };
    if *method == Method::POST && endpoint == Transport::ShortPoll.endpoint() {
        return "publish";
    }
    Transport::ALL
        .into_iter()
        .find(|t| *method == Method::GET && t.endpoint() == endpoint)
        .map_or("other", Transport::name)
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
    State(taps): State<Arc<Taps>>,
    Path(id): Path<String>,
    Query(Since { since }): Query<Since>,
) -> Result<axum::Json<Value>, ApiError> {
    if !taps.enabled() {
        return Err(ApiError::TapOff);
    }
    let tap = taps.open(valid_id(&id)?)?;
    Ok(axum::Json(tap.read(since.unwrap_or(0))))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests;
