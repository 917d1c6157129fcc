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

use std::borrow::Cow;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper::body::Frame;
use serde_json::Value;
use tower::{Layer, Service};

use crate::error::ApiError;
use crate::extract::{FromQuery, Query};
use crate::protocol::Transport;
use crate::server::Carrier;
use crate::transport::cursor::Number;

/// The layer in front of every API request: reads `tap=` and points the connection at
/// it. A plain tower layer (no boxed future per request): a request nobody taps goes
/// straight through.
#[derive(Clone)]
pub struct AttachLayer(pub Arc<Taps>);

impl<S> Layer<S> for AttachLayer {
    type Service = Attach<S>;

    fn layer(&self, inner: S) -> Attach<S> {
        Attach {
            taps: self.0.clone(),
            inner,
        }
    }
}

#[derive(Clone)]
pub struct Attach<S> {
    taps: Arc<Taps>,
    inner: S,
}

impl<S> Service<Request> for Attach<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Attached<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let connection = request
            .extensions()
            .get::<Carrier>()
            .and_then(|c| c.tap.as_ref());
        // Tapping is off, no real connection, or not an API request (the page's files).
        let Some(connection) = connection.filter(|_| is_api(request.uri().path())).cloned() else {
            return Attached::Plain {
                inner: self.inner.call(request),
            };
        };
        let tap = match tap_param(request.uri().query()) {
            Ok(Some(id)) => match self.taps.open(id) {
                Ok(tap) => Some((tap, route(request.method(), request.uri().path()))),
                Err(error) => return Attached::Refused { error: Some(error) },
            },
            Ok(None) => None,
            Err(error) => return Attached::Refused { error: Some(error) },
        };
        // Nobody taps this connection, and nobody taps at all: leave it alone.
        let involved = tap.is_some() || connection.is_live() || self.taps.any_open();
        if !involved {
            return Attached::Plain {
                inner: self.inner.call(request),
            };
        }
        connection.begin(tap);
        Attached::Watched {
            inner: self.inner.call(request),
            connection: Some(connection),
        }
    }
}

pin_project_lite::pin_project! {
    /// The answer of a request [`Attach`] has seen.
    #[project = AttachedProj]
    pub enum Attached<F> {
        Plain { #[pin] inner: F },
        Refused { error: Option<ApiError> },
        Watched { #[pin] inner: F, connection: Option<Arc<ConnectionTap>> },
    }
}

impl<F: Future<Output = Result<Response, Infallible>>> Future for Attached<F> {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            AttachedProj::Plain { inner } => inner.poll(cx),
            AttachedProj::Refused { error } => {
                let error = error.take().expect("polled after it answered");
                Poll::Ready(Ok(error.into_response()))
            }
            AttachedProj::Watched { inner, connection } => {
                let Ok(response) = ready!(inner.poll(cx));
                let connection = connection.take().expect("polled after it answered");
                if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                    // The connection belongs to this exchange for good.
                    return Poll::Ready(Ok(response));
                }
                Poll::Ready(Ok(response.map(|body| {
                    Body::new(Ending {
                        body,
                        connection: Some(connection),
                    })
                })))
            }
        }
    }
}

/// The paths of the API (everything but the page's files).
fn is_api(path: &str) -> bool {
    path.starts_with("/api/") || path == "/healthz" || path == "/metrics"
}

/// `tap=ID` from a query string, if there is one (the fault lab names a page by it too).
pub(crate) fn tap_param(query: Option<&str>) -> Result<Option<&str>, ApiError> {
    query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("tap="))
        .map(valid_id)
        .transpose()
}

/// A tap id: 16 to 64 letters, digits, `-` or `_`.
pub(crate) fn valid_id(id: &str) -> Result<&str, ApiError> {
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
    if *method == Method::POST && endpoint(path) == Some(Transport::ShortPoll.endpoint()) {
        return "publish";
    }
    transport_of(method, path).map_or("other", Transport::name)
}

/// The transport a request opens: a `GET` of one of a room's transport endpoints.
pub(crate) fn transport_of(method: &Method, path: &str) -> Option<Transport> {
    let endpoint = endpoint(path)?;
    Transport::ALL
        .into_iter()
        .find(|t| *method == Method::GET && t.endpoint() == endpoint)
}

/// The endpoint of a room's path: the lobby's (`/api/events`) and any room's
/// (`/api/rooms/{room}/events`) are both `events`.
fn endpoint(path: &str) -> Option<&str> {
    match path.strip_prefix("/api/rooms/") {
        Some(in_room) => in_room.split_once('/').map(|(_, endpoint)| endpoint),
        None => path.strip_prefix("/api/"),
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

/// `since=SEQ`.
#[derive(Default)]
pub struct Since {
    since: Number,
}

impl FromQuery for Since {
    fn pair(&mut self, key: &str, value: Cow<'_, str>) {
        if key == "since" {
            self.since = Number::read(&value);
        }
    }
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
    let since = since.get("since")?.unwrap_or(0);
    let tap = taps.open(valid_id(&id)?)?;
    Ok(axum::Json(tap.read(since)))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests;
