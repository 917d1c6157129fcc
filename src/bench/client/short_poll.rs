//! A short-polling subscriber: `GET /api/messages?since=…` (or a room's) every interval, on one
//! keep-alive connection, as a page with `setInterval` and `fetch` does.
//!
//! Clients are spread evenly over the interval (client `i` of `n`, counting other rooms'
//! too, starts `i/n` of an interval late), as real visitors would be, rather than all
//! asking in the same millisecond. Each answer's `last_id` is the next request's
//! `since`, so nothing is missed or seen twice however the polls and publishes
//! interleave.

use tokio::time::{Instant, MissedTickBehavior, interval_at};

use super::http::HttpConnection;
use super::{Run, connect_gated};
use crate::bench::tally::Receipts;

pub async fn subscribe(run: &Run, index: usize, receipts: &mut Receipts) -> anyhow::Result<()> {
    let mut http = connect_gated(run, HttpConnection::open(&run.server, index, &run.wire)).await?;
    // Over every client of the run, other rooms' included: all ask within the first
    // interval (a client silent past `--header-timeout` is closed as idle).
    let spread = run
        .poll_interval
        .mul_f64(index as f64 / run.clients().max(1) as f64);
    let mut ticks = interval_at(Instant::now() + spread, run.poll_interval);
    // A poll slower than the interval delays the next one instead of bunching them.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let (path, mut cursor) = run.path_of(index);
    loop {
        tokio::select! {
            () = run.stop.cancelled() => return Ok(()),
            _ = ticks.tick() => {}
        }
        let url = format!("{path}?since={cursor}&limit=1000");
        let body = tokio::select! {
            () = run.stop.cancelled() => return Ok(()),
            body = http.get(&url) => body?,
        };
        run.count_request();
        cursor = run.receive_poll(receipts, &body)?;
    }
}
