//! Short polling: the client asks "anything new since message N?" every few seconds,
//! and the server answers at once, usually with nothing.
//!
//! ```text
//! GET /api/messages?since=41          → 200 {"messages":[], "last_id":41, "reset":false}
//! … interval …
//! GET /api/messages?since=41          → 200 {"messages":[{"id":42,…}], "last_id":42, …}
//! ```
//!
//! The cursor (`since`) is what makes it correct: the client sends back the
//! `last_id` of the previous answer and so sees every message exactly once, even when
//! `limit` cuts an answer short. Under HTTP/1.1 keep-alive the requests reuse one TCP
//! connection; they do not each open a new one.
//!
//! Cost: a full HTTP request and response per interval per client, whether or not
//! anything happened (see `empty_responses` in `/api/stats`), and a delay of up to
//! one interval before a message is seen. Gain: nothing is held open on the server,
//! and it works through any proxy, cache or firewall that speaks HTTP.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::value::RawValue;

use super::Attendance;
use super::arrival::Arrival;
use crate::error::ApiError;
use crate::hub::{Cursor, Page};
use crate::protocol::{PollAnswer, Transport};
use crate::stats::Counters;

/// `GET /api/rooms/{room}/messages?since=ID&limit=N` (the lobby's at `/api/messages`):
/// whatever is newer than `since`, right now.
pub async fn poll(arrival: Arrival) -> Result<Response, ApiError> {
    let (cursor, limit) = (arrival.params.cursor()?, arrival.params.limit()?);
    let mut attendance = arrival.attend(Transport::ShortPoll)?;
    let room = attendance.room().clone();
    room.settle(cursor).await;
    Ok(answer(&mut attendance, cursor, room.page(cursor, limit)))
}

/// Turns a page of the history into the poll answer, and counts what it sends.
pub fn answer(attendance: &mut Attendance, cursor: Cursor, page: Page) -> Response {
    let body = answer_body(attendance, cursor, page);
    ([(header::CONTENT_TYPE, JSON)], body).into_response()
}

/// The answer's JSON (see [`answer`]).
pub fn answer_body(attendance: &mut Attendance, cursor: Cursor, page: Page) -> Vec<u8> {
    if matches!(cursor, Cursor::After(_)) && !page.reset {
        attendance.following();
    }
    let counters = attendance.counters();
    // Each message's JSON was serialized once by the hub and is copied in as is.
    let body = PollAnswer::<&RawValue> {
        messages: page.entries.iter().map(|e| &*e.json).collect(),
        last_id: page.last_id,
        reset: page.reset,
    };
    let body = serde_json::to_vec(&body).expect("poll answers always serialize");
    if page.entries.is_empty() {
        Counters::add(&counters.empty_responses, 1);
    }
    if page.reset {
        Counters::add(&counters.resets, 1);
    }
    attendance.sent(&page.entries, body.len());
    body
}

/// The answer's content type.
pub const JSON: &str = "application/json";
