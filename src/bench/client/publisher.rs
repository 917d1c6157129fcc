//! The publisher: `POST /api/messages` on a fixed schedule, over one or more keep-alive
//! connections of its own (counted apart from the subscribers' traffic).
//!
//! Message `seq` is due at `start + seq / rate`. It carries its sequence number and the
//! moment it was sent (see [`probe_text`]), read back by the subscribers to measure
//! latency from publish to receipt on the same clock. A publisher that falls behind
//! sends late rather than skipping, so the achieved rate says whether the publisher,
//! rather than the transport, was the limit.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until};

use super::Run;
use super::http::HttpConnection;
use crate::bench::tally::probe_text;
use crate::bench::wire::Wire;

/// What the publisher managed.
#[derive(Debug, Default)]
pub struct Published {
    /// Messages the server accepted (201).
    pub sent: usize,
    pub errors: usize,
    pub first_error: Option<String>,
    /// From the first message's due time to the moment the last one was sent.
    pub elapsed: Duration,
}

impl Published {
    /// Messages per second: `sent` messages span `sent − 1` intervals.
    pub fn rate(&self) -> f64 {
        if self.sent < 2 || self.elapsed.is_zero() {
            return 0.0;
        }
        (self.sent - 1) as f64 / self.elapsed.as_secs_f64()
    }
}

/// Sends `run.messages` messages at `rate` per second over `connections` connections.
/// Stops early, with what it has sent, when the run is stopped.
pub async fn publish(run: Arc<Run>, rate: f64, connections: usize) -> Published {
    let wire = Arc::new(Wire::default());
    let connections = connections.clamp(1, run.messages.max(1));
    let start = Instant::now();
    let mut lanes = JoinSet::new();
    for lane in 0..connections {
        let (run, wire) = (run.clone(), wire.clone());
        lanes.spawn(async move {
            let mut published = Published::default();
            let result = async {
                let mut http = HttpConnection::open(&run.server, lane, &wire).await?;
                for seq in (lane..run.messages).step_by(connections) {
                    tokio::select! {
                        () = run.stop.cancelled() => break,
                        () = sleep_until(start + Duration::from_secs_f64(seq as f64 / rate)) => {}
                    }
                    published.elapsed = start.elapsed();
                    let text = probe_text(seq, run.epoch.elapsed());
                    let body = json!({ "author": run.tag, "text": text }).to_string();
                    match http.post("/api/messages", body).await {
                        Ok(_) => published.sent += 1,
                        Err(e) => note(&mut published, e),
                    }
                }
                anyhow::Ok(())
            }
            .await;
            if let Err(e) = result {
                note(&mut published, e);
            }
            published
        });
    }
    let mut total = Published::default();
    while let Some(lane) = lanes.join_next().await {
        let lane = lane.unwrap_or_else(|e| Published {
            errors: 1,
            first_error: Some(e.to_string()),
            ..Published::default()
        });
        total.sent += lane.sent;
        total.errors += lane.errors;
        total.first_error = total.first_error.or(lane.first_error);
        total.elapsed = total.elapsed.max(lane.elapsed);
    }
    total
}

fn note(published: &mut Published, error: anyhow::Error) {
    published.errors += 1;
    published
        .first_error
        .get_or_insert_with(|| format!("{error:#}"));
}
