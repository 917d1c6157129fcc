//! A long-polling subscriber: `GET /api/messages/long-poll?since=…` (or a room's) in a loop, on one
//! keep-alive connection. The server holds each request until there is news (or 30 s
//! pass); the answer's `last_id` is the next request's `since`, so messages published
//! between an answer and the next request are picked up by that request, not lost.

use super::http::HttpConnection;
use super::{Run, connect_gated};
use crate::bench::tally::Receipts;
use crate::protocol::MAX_HOLD;

pub async fn subscribe(run: &Run, index: usize, receipts: &mut Receipts) -> anyhow::Result<()> {
    let mut http = connect_gated(run, HttpConnection::open(&run.server, index, &run.wire)).await?;
    let (path, mut cursor) = run.path_of(index);
    loop {
        let url = format!("{path}?since={cursor}&timeout={}", MAX_HOLD.as_secs());
        let body = tokio::select! {
            () = run.stop.cancelled() => return Ok(()),
            body = http.get(&url) => body?,
        };
        run.count_request();
        cursor = run.receive_poll(receipts, &body)?;
    }
}
