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
//! : keep-alive            (a comment when 15 s passed silent, --sse-keep-alive, so
//!                          proxies see life)
//! ```
//!
//! The browser's `EventSource` parses this, and when the connection drops it
//! reconnects by itself after the `retry` delay, sending the last `id:` it saw as
//! `Last-Event-ID`, from which the stream resumes without loss. That `retry` delay is
//! the "3 s" folk wisdom attaches to SSE: it is a reconnection delay, not a delivery
//! delay; events arrive as soon as they are written.
//!
//! The stream is written here as the text above, byte for byte: each message's event
//! is made once and the same bytes go to every client. Over HTTP/1.1 it goes out as a
//! chunked response body (one chunk per write); the connection's own task writes it
//! there instead of hyper, so that hyper's buffers are not kept for the stream's life
//! (`server/long_lived.rs`: same bytes, a third of the memory per stream).
//!
//! Cost: one open connection (a socket and a task) per client and a few bytes of
//! framing per message; client-to-server messages need a separate request (here a
//! `POST /api/messages`). Gain: real-time push over plain HTTP, automatic resume, and
//! text you can read with `curl -N`.

use std::convert::Infallible;
use std::pin::Pin;

use axum::Extension;
use axum::body::Body;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{Stream, StreamExt, stream};
use tokio::time::{Instant, Interval, MissedTickBehavior, interval_at};
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::Attendance;
use super::arrival::Arrival;
use super::cursor::{CursorParams, cursor_from};
use crate::error::ApiError;
use crate::hub::{Cursor, Delivery, Encoding, Entry, Subscription};
use crate::protocol::{Reset, SSE_MESSAGE, SSE_RESET, SSE_RETRY, Transport};
use crate::server::LongLived;
use crate::state::AppState;
use crate::stats::Counters;

/// A comment: `EventSource` ignores it, a proxy sees the stream is alive.
const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

/// A message as an event: `id`, `event: message` and its JSON as `data`. Made once
/// per message; every stream sends the same bytes.
pub struct MessageEvent;

impl Encoding for MessageEvent {
    const SLOT: usize = 1;

    fn encode(entry: &Entry) -> Bytes {
        // The JSON is on one line: serde escapes the newlines inside strings.
        let (id, data) = (entry.id(), entry.json.get());
        format!("id: {id}\nevent: {SSE_MESSAGE}\ndata: {data}\n\n").into()
    }
}

/// `GET /api/rooms/{room}/events?since=ID` (the lobby's at `/api/events`): the stream
/// of the room's events.
pub async fn events(headers: HeaderMap, arrival: Arrival) -> Result<Response, ApiError> {
    let cursor = resume_point(&headers, &arrival.params)?;
    let attendance = arrival.attend(Transport::Sse)?;
    let events = Body::from_stream(stream_from(&arrival.app, attendance, cursor));
    Ok((
        // On HTTP/1.1 the connection's task writes this stream itself, without hyper's
        // buffers (the same bytes: `server/long_lived.rs`).
        Extension(LongLived::Stream),
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
            // nginx buffers responses unless told not to; this header tells it.
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        events,
    )
        .into_response())
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

/// What a stream needs between two events.
struct Events {
    attendance: Attendance,
    subscription: Subscription,
    /// Ticks every half keep-alive interval; the second tick in a row with nothing
    /// written in between sends a comment, so a quiet stream gets one comment per
    /// interval and no stream stays silent for a whole one. Cheaper than a timer
    /// pushed back at every event.
    ticks: Interval,
    /// Ticks since the last write.
    quiet_ticks: u8,
    /// Kept from event to event (so pinned, in a box), so that it keeps its place in
    /// the shutdown's queue instead of joining it again at every event.
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
}

/// A `retry:` hint, then one event per delivery (and a comment when the stream is
/// quiet), until the server shuts down.
fn stream_from(
    app: &AppState,
    attendance: Attendance,
    cursor: Cursor,
) -> impl Stream<Item = Result<Bytes, Infallible>> + use<> {
    let half = app.config.sse_keep_alive / 2;
    let mut ticks = interval_at(Instant::now() + half, half);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let events = Events {
        subscription: attendance.room().subscribe(cursor),
        attendance,
        ticks,
        quiet_ticks: 0,
        shutdown: Box::pin(app.shutdown.clone().cancelled_owned()),
    };
    let retry = format!("retry: {}\n\n", SSE_RETRY.as_millis());
    let deliveries = stream::unfold(events, |mut events| async move {
        let bytes = events.next().await?;
        Some((Ok(bytes), events))
    });
    stream::once(async { Ok(retry.into()) }).chain(deliveries)
}

impl Events {
    /// The next bytes to write; `None` when the stream ends.
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            tokio::select! {
                biased;
                delivery = self.subscription.next() => {
                    self.quiet_ticks = 0;
                    return delivery.map(|delivery| encode(&self.attendance, delivery));
                }
                _ = self.ticks.tick() => {
                    self.quiet_ticks += 1;
                    if self.quiet_ticks == 2 {
                        self.quiet_ticks = 0;
                        return Some(Bytes::from_static(KEEP_ALIVE));
                    }
                }
                () = self.shutdown.as_mut() => return None,
            }
        }
    }
}

/// A message becomes `id` + `event: message` + `data: <JSON>`; a reset becomes
/// `event: reset`, with the new cursor as its id so that a reconnect resumes from it.
fn encode(attendance: &Attendance, delivery: Delivery) -> Bytes {
    match delivery {
        Delivery::Message(entry) => {
            attendance.sent([&entry], entry.json.get().len());
            entry.encoded::<MessageEvent>().clone()
        }
        Delivery::Reset { last_id } => {
            Counters::add(&attendance.counters().resets, 1);
            let data = serde_json::to_string(&Reset { last_id }).expect("a reset is a number");
            format!("id: {last_id}\nevent: {SSE_RESET}\ndata: {data}\n\n").into()
        }
    }
}
