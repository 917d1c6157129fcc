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

use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt, stream};

use super::Attendance;
use super::arrival::Arrival;
use super::cursor::{CursorParams, cursor_from};
use crate::error::ApiError;
use crate::hub::{Cursor, Delivery};
use crate::protocol::{Reset, SSE_MESSAGE, SSE_RESET, SSE_RETRY, Transport};
use crate::stats::Counters;

/// `GET /api/rooms/{room}/events?since=ID` (the lobby's at `/api/events`): the stream
/// of the room's events.
pub async fn events(headers: HeaderMap, arrival: Arrival) -> Result<Response, ApiError> {
    let cursor = resume_point(&headers, &arrival.params)?;
    let attendance = arrival.attend(Transport::Sse)?;
    let app = arrival.app;
    let events = stream_from(attendance, cursor).take_until(app.shutdown.clone().cancelled_owned());
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
    attendance: Attendance,
    cursor: Cursor,
) -> impl Stream<Item = Result<Event, Infallible>> + use<> {
    let subscription = attendance.room().subscribe(cursor);
    let retry = Event::default().retry(SSE_RETRY);
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
                .event(SSE_MESSAGE)
                .data(data)
        }
        Delivery::Reset { last_id } => {
            Counters::add(&attendance.counters().resets, 1);
            Event::default()
                .id(last_id.to_string())
                .event(SSE_RESET)
                .json_data(Reset { last_id })
                .expect("a reset is a number")
        }
    }
}
