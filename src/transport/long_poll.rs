//! Long polling: the client asks "anything new since message N?" and the server does
//! not answer until there is, or until a timeout (30 s by default) passes.
//!
//! ```text
//! GET /api/messages/long-poll?since=41     … held …
//!                                          ← a message is published
//!                                          → 200 {"messages":[{"id":42,…}], "last_id":42}
//! GET /api/messages/long-poll?since=42     … held … 30 s, nothing
//!                                          → 200 {"messages":[], "last_id":42}
//! ```
//!
//! The answer is exactly a short poll's ([`short_poll::answer`]); only the waiting is
//! new. The one subtle step is not to miss a publish that lands between "check the
//! history" and "start waiting": the wait (`Held::answer`) registers with the hub's
//! `Notify` *first*, then checks again, then waits, so a publish in between still
//! wakes it.
//!
//! Where the wait happens is the server's business, not the technique's: over HTTP/1.1
//! the answer is handed over as a body that is ready later, and the connection's own
//! task waits for it without hyper's buffers (`server/long_lived.rs`): 6–8 KiB of
//! server memory per held request instead of 15–19 (docs/bench/profiles.md).
//!
//! Cost: one held request (a socket and a small task) per waiting client, and one
//! request-response round trip per message burst, with its HTTP headers. Gain: a
//! message is seen within milliseconds, and nothing but plain HTTP is needed. After
//! each answer the client must ask again; messages published in that gap are not lost,
//! because the next request's `since` picks them up.

use std::convert::Infallible;
use std::time::Duration;

use axum::Extension;
use axum::body::Body;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use futures::{FutureExt, stream};
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use super::Attendance;
use super::arrival::Arrival;
use super::cursor::CursorParams;
use super::short_poll;
use crate::error::ApiError;
use crate::hub::Cursor;
use crate::protocol::{MAX_HOLD, Transport};
use crate::server::LongLived;

/// `GET /api/rooms/{room}/messages/long-poll?since=ID&timeout=S` (the lobby's at
/// `/api/messages/long-poll`): answer when there is news in the room.
pub async fn long_poll(arrival: Arrival) -> Result<Response, ApiError> {
    let params = &arrival.params;
    let (cursor, limit, hold) = (params.cursor()?, params.limit()?, hold(params)?);
    let mut attendance = arrival.attend(Transport::LongPoll)?;
    let room = attendance.room().clone();
    room.settle(cursor).await;
    let page = room.page(cursor, limit);
    // Answer at once with news, with a reset (a cursor ahead of the hub is never
    // held), or when the client asked not to wait.
    if !page.entries.is_empty() || page.reset || hold.is_zero() {
        return Ok(short_poll::answer(&mut attendance, cursor, page));
    }
    // Nothing yet: hold the request. From here on "new" means newer than what the hub
    // holds now (this matters for a client that sent no cursor).
    let held = Held {
        attendance,
        cursor: Cursor::After(page.last_id),
        limit,
        deadline: Instant::now() + hold,
        shutdown: arrival.app.shutdown.clone(),
    };
    let json = [(CONTENT_TYPE, short_poll::JSON)];
    // Over HTTP/1.1 the answer is the body, made when it is ready: the connection's own
    // task waits for it, not hyper with its buffers (`server/long_lived.rs`). Elsewhere
    // (HTTP/2, a client that closes after) the handler waits.
    if !arrival
        .carrier
        .as_ref()
        .is_some_and(|carrier| carrier.hands_off)
    {
        return Ok((json, held.answer().await).into_response());
    }
    let answer = held.answer().map(Ok::<_, Infallible>);
    let body = Body::from_stream(stream::once(answer));
    Ok((Extension(LongLived::Answer), json, body).into_response())
}

/// A request held until there is news.
struct Held {
    attendance: Attendance,
    cursor: Cursor,
    limit: usize,
    deadline: Instant,
    shutdown: CancellationToken,
}

impl Held {
    /// The answer's JSON: news as soon as it is published, or nothing at the deadline.
    async fn answer(mut self) -> Vec<u8> {
        let room = self.attendance.room().clone();
        loop {
            // Register for the next publish before looking, so none slips between the two.
            let published = room.next_publish();
            tokio::pin!(published);
            published.as_mut().enable();

            let page = room.page(self.cursor, self.limit);
            // Answer with news, with a reset, or when the server is shutting down (which
            // wakes every held poll as a publish would).
            if !page.entries.is_empty() || page.reset || self.shutdown.is_cancelled() {
                return short_poll::answer_body(&mut self.attendance, self.cursor, page);
            }
            self.cursor = Cursor::After(page.last_id);
            tokio::select! {
                () = &mut published => continue,
                () = sleep_until(self.deadline) => {}
            }
            return short_poll::answer_body(&mut self.attendance, self.cursor, page);
        }
    }
}

/// `timeout=S`: seconds to hold, clamped to 1..=30; 0 answers at once.
fn hold(params: &CursorParams) -> Result<Duration, ApiError> {
    Ok(match params.timeout.get("timeout")? {
        None => MAX_HOLD,
        Some(0) => Duration::ZERO,
        Some(secs) => Duration::from_secs(secs).min(MAX_HOLD),
    })
}
