//! Server-Sent Events: one HTTP response that never ends; the server writes an event
//! into it whenever a message is published.
//!
//! ```text
//! GET /api/events?since=41          (or, on reconnect, header Last-Event-ID: 41)
//! 200 OK
//! Content-Type: text/event-stream
//!
//! retry: 3000
//!
//! id: 42
//! event: message
//! data: {"id":42,"author":"alice","text":"hi",…}
//!
//! : keep-alive            (a comment every 15 s, --sse-keep-alive, so proxies see life)
//! ```
//!
//! The browser's `EventSource` parses this, and when the connection drops it
//! reconnects by itself after the `retry` delay, sending the last `id:` it saw as
//! `Last-Event-ID`, from which the stream resumes without loss. That `retry` delay is
//! the "3 s" folk wisdom attaches to SSE: it is a reconnection delay, not a delivery
//! delay; events arrive as soon as they are written.
//!
//! Cost: one open connection (a socket and a task) per client and a few bytes of
//! framing per message; client-to-server messages need a separate request (here a
//! `POST /api/messages`). Gain: real-time push over plain HTTP, automatic resume, and
//! text you can read with `curl -N`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Extension, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt, stream};
use serde_json::json;

use super::Attendance;
use super::cursor::{CursorParams, cursor_from};
use crate::AppState;
use crate::error::ApiError;
use crate::extract::Query;
use crate::hub::{Cursor, Delivery};
use crate::presence::Visitor;
use crate::server::{Carrier, ClientAddr};
use crate::stats::{Counters, Transport};

/// The reconnection delay suggested to `EventSource`.
pub const RETRY: Duration = Duration::from_secs(3);

/// `GET /api/events?since=ID`: the stream of events.
pub async fn events(
    State(app): State<Arc<AppState>>,
    ConnectInfo(client): ClientAddr,
    Extension(carrier): Extension<Carrier>,
    headers: HeaderMap,
    Query(params): Query<CursorParams>,
    Query(visitor): Query<Visitor>,
) -> Result<Response, ApiError> {
    let cursor = resume_point(&headers, &params)?;
    let attendance = Attendance::begin(&app, Transport::Sse, &visitor, client.ip(), &carrier)?;
    let events =
        stream_from(&app, attendance, cursor).take_until(app.shutdown.clone().cancelled_owned());
    let keep_alive = KeepAlive::new()
        .interval(app.config.sse_keep_alive)
        .text("keep-alive");
    let sse = Sse::new(events).keep_alive(keep_alive);
    // nginx buffers responses unless told not to; this header tells it.
    Ok(([("x-accel-buffering", "no")], sse).into_response())
}

/// `Last-Event-ID`, which a reconnecting browser sends, wins over `since`.
fn resume_point(headers: &HeaderMap, params: &CursorParams) -> Result<Cursor, ApiError> {
    let header = headers.get("last-event-id").map(|value| {
        value.to_str().map_err(|_| {
            ApiError::BadRequest("Last-Event-ID must be a non-negative integer".into())
        })
    });
    match header.transpose()?.map(str::trim) {
        Some(id) if !id.is_empty() => cursor_from("Last-Event-ID", Some(id)),
        _ => params.cursor(),
    }
}

/// A `retry:` hint, then one event per delivery.
fn stream_from(
    app: &AppState,
    attendance: Attendance,
    cursor: Cursor,
) -> impl Stream<Item = Result<Event, Infallible>> + use<> {
    let subscription = app.hub.subscribe(cursor);
    let retry = Event::default().retry(RETRY);
    let deliveries = stream::unfold(
        (attendance, subscription),
        |(attendance, mut subscription)| async move {
            let event = encode(&attendance, subscription.next().await?);
            Some((Ok(event), (attendance, subscription)))
        },
    );
    stream::once(async { Ok(retry) }).chain(deliveries)
}

/// A message becomes `id` + `event: message` + `data: <JSON>`; a reset becomes
/// `event: reset`, with the new cursor as its id so that a reconnect resumes from it.
fn encode(attendance: &Attendance, delivery: Delivery) -> Event {
    match delivery {
        Delivery::Message(entry) => {
            let data = entry.json.get();
            attendance.sent([&entry], data.len());
            Event::default()
                .id(entry.id().to_string())
                .event("message")
                .data(data)
        }
        Delivery::Reset { last_id } => {
            Counters::add(&attendance.counters().resets, 1);
            Event::default()
                .id(last_id.to_string())
                .event("reset")
                .data(json!({ "last_id": last_id }).to_string())
        }
    }
}
