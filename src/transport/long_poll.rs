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
//! history" and "start waiting": the handler registers with the hub's `Notify`
//! *first*, then checks, then waits, so a publish in between still wakes it.
//!
//! Cost: one held request (a socket and a small task) per waiting client, and one
//! request-response round trip per message burst, with its HTTP headers. Gain: a
//! message is seen within milliseconds, and nothing but plain HTTP is needed. After
//! each answer the client must ask again; messages published in that gap are not lost,
//! because the next request's `since` picks them up.

use std::time::Duration;

use axum::response::Response;
use tokio::time::{Instant, sleep_until};

use super::arrival::Arrival;
use super::cursor::CursorParams;
use super::short_poll;
use crate::error::ApiError;
use crate::hub::Cursor;
use crate::protocol::{MAX_HOLD, Transport};

/// `GET /api/rooms/{room}/messages/long-poll?since=ID&timeout=S` (the lobby's at
/// `/api/messages/long-poll`): answer when there is news in the room.
pub async fn long_poll(arrival: Arrival) -> Result<Response, ApiError> {
    let params = &arrival.params;
    let (mut cursor, limit, hold) = (params.cursor()?, params.limit()?, hold(params)?);
    let mut attendance = arrival.attend(Transport::LongPoll)?;
    let room = attendance.room().clone();
    let deadline = Instant::now() + hold;
    room.settle(cursor).await;
    loop {
        // Register for the next publish before looking, so none slips between the two.
        let published = room.next_publish();
        tokio::pin!(published);
        published.as_mut().enable();

        let page = room.page(cursor, limit);
        // Answer at once with news, with a reset (a cursor ahead of the hub is never
        // held), when the client asked not to wait, or when the server is shutting
        // down (which wakes every held poll as a publish would).
        let stop = hold.is_zero() || arrival.app.shutdown.is_cancelled();
        if !page.entries.is_empty() || page.reset || stop {
            return Ok(short_poll::answer(&mut attendance, cursor, page));
        }
        // Nothing yet. From here on "new" means newer than what the hub holds now
        // (this matters for a client that sent no cursor).
        cursor = Cursor::After(page.last_id);
        tokio::select! {
            () = &mut published => continue,
            () = sleep_until(deadline) => {}
        }
        return Ok(short_poll::answer(&mut attendance, cursor, page));
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
