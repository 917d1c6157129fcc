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

use std::sync::Arc;

use axum::extract::{ConnectInfo, Extension, State};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::value::RawValue;

use super::Attendance;
use super::cursor::CursorParams;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::Query;
use crate::hub::{Cursor, Page};
use crate::presence::Visitor;
use crate::server::{Carrier, ClientAddr};
use crate::stats::{Counters, Transport};

/// `GET /api/messages?since=ID&limit=N`: whatever is newer than `since`, right now.
pub async fn poll(
    State(app): State<Arc<AppState>>,
    ConnectInfo(client): ClientAddr,
    Extension(carrier): Extension<Carrier>,
    Query(params): Query<CursorParams>,
    Query(visitor): Query<Visitor>,
) -> Result<Response, ApiError> {
    let (cursor, limit) = (params.cursor()?, params.limit()?);
    let mut attendance =
        Attendance::begin(&app, Transport::ShortPoll, &visitor, client.ip(), &carrier)?;
    app.hub.settle(cursor).await;
    Ok(answer(&mut attendance, cursor, app.hub.page(cursor, limit)))
}

/// The JSON body of a poll answer; the long poll answers the same way.
#[derive(Serialize)]
struct PollAnswer<'a> {
    /// Each message's JSON was serialized once by the hub and is copied in as is.
    messages: Vec<&'a RawValue>,
    last_id: u64,
    reset: bool,
}

/// Turns a page of the history into the poll answer, and counts what it sends.
pub fn answer(attendance: &mut Attendance, cursor: Cursor, page: Page) -> Response {
    if matches!(cursor, Cursor::After(_)) && !page.reset {
        attendance.following();
    }
    let counters = attendance.counters();
    let body = PollAnswer {
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
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}
