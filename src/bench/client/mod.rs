//! The bench's clients: one subscriber per transport, written as a browser would use
//! the technique, plus the publisher, and the [`Run`] they all report to.
//!
//! Every client owns its TCP connection (a [`Counted`](super::wire::Counted) stream),
//! so the bench knows exactly how many connections each technique opens and how many
//! bytes cross them. Pollers speak HTTP/1.1 with keep-alive (or HTTP/2, `--http2`)
//! through hyper's connection-level client ([`http`]); the SSE subscriber reads a
//! streamed hyper body; the WebSocket subscriber is tokio-tungstenite, over its own
//! connection's Upgrade or, on HTTP/2, over an extended CONNECT stream; the
//! WebTransport subscriber is `wtransport`'s client over its own UDP socket.
//!
//! A subscriber connects, says so ([`Run::connected`]), and then records every bench
//! message it receives in its [`Receipts`] until the run's `stop` token fires, when it
//! hands its receipts back. It never retries: a dropped connection ends it with an
//! error, and what it missed shows up as lost.

pub mod http;
pub mod long_poll;
pub mod publisher;
pub mod short_poll;
pub mod sse;
pub mod websocket;
pub mod webtransport;

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use self::http::Endpoint;
use super::tally::{Receipts, parse_probe};
use super::wire::Wire;
use crate::protocol::{PollAnswer, Transport, WtDelivery, path};
use crate::room::LOBBY;

/// What one row of the bench shares between its publisher and its subscribers.
pub struct Run {
    pub server: Endpoint,
    pub transport: Transport,
    /// The author of this run's messages: anything else on the chat is ignored.
    pub tag: String,
    /// The cursor subscribers of the lobby start from: the newest id before the run.
    pub since: u64,
    /// How many messages the publisher sends (sequence numbers `0..messages`), all to
    /// the lobby.
    pub messages: usize,
    /// Subscribers in the lobby, where the messages go: clients `0..subscribers`.
    pub subscribers: usize,
    /// Other rooms, each with `per_other_room` subscribers (the clients after the
    /// lobby's, round-robin): they should receive nothing.
    pub other_rooms: usize,
    pub per_other_room: usize,
    /// Short polling only: the time between two polls of one client.
    pub poll_interval: Duration,
    /// WebTransport only: how its messages travel.
    pub webtransport_delivery: WtDelivery,
    /// Publish and receipt times are measured from here, on one monotonic clock.
    pub epoch: Instant,
    /// The subscribers' sockets (the publisher counts its own elsewhere).
    pub wire: Arc<Wire>,
    /// HTTP requests the subscribers sent (a WebSocket upgrade counts as one), each
    /// counted when its answer arrives. A stream's request (SSE, WebSocket) is counted
    /// inside the connect step, before [`Run::connected`] ticks, so that the bench's
    /// split into set-up and window sees it in set-up however the tasks are scheduled.
    pub requests: AtomicU64,
    /// Subscribers that are connected, or have given up trying.
    pub connected: Countdown,
    /// Subscribers that gave up trying to connect.
    pub connect_failures: AtomicU64,
    /// First sightings of bench messages, over all subscribers.
    pub received: Countdown,
    /// Bounds how many connections are being opened at once, so that a burst of
    /// thousands does not overflow the server's accept backlog.
    pub connect_gate: Semaphore,
    pub stop: CancellationToken,
}

/// A shared count that wakes one waiter when it reaches its target.
pub struct Countdown {
    count: AtomicU64,
    target: u64,
    reached: Notify,
}

impl Countdown {
    pub fn new(target: u64) -> Self {
        Self {
            count: AtomicU64::new(0),
            target,
            reached: Notify::new(),
        }
    }

    pub fn tick(&self) {
        if self.count.fetch_add(1, Relaxed) + 1 == self.target {
            // Stores a permit if nobody waits yet, so a later `wait` still returns.
            self.reached.notify_one();
        }
    }

    pub fn get(&self) -> u64 {
        self.count.load(Relaxed)
    }

    /// Completes once the count has reached its target.
    pub async fn wait(&self) {
        if self.get() < self.target {
            self.reached.notified().await;
        }
    }
}

/// The fields of a chat message the bench reads; the rest is skipped unparsed.
#[derive(Debug, Deserialize)]
pub struct Seen<'a> {
    #[serde(borrow)]
    pub author: Cow<'a, str>,
    #[serde(borrow)]
    pub text: Cow<'a, str>,
}

/// What a subscriber hands back when the run stops.
pub struct Outcome {
    pub receipts: Receipts,
    pub error: Option<anyhow::Error>,
}

impl Run {
    /// Every client of the run: the lobby's subscribers, then the other rooms'.
    pub fn clients(&self) -> usize {
        self.subscribers + self.other_rooms * self.per_other_room
    }

    /// The room client `index` watches, and the cursor it starts from.
    pub fn room_of(&self, index: usize) -> (String, u64) {
        match index.checked_sub(self.subscribers) {
            None => (LOBBY.to_owned(), self.since),
            Some(other) => (format!("other-{}", other % self.other_rooms.max(1)), 0),
        }
    }

    /// The path of client `index`'s endpoint on its transport, with its first cursor.
    pub fn path_of(&self, index: usize) -> (String, u64) {
        let (room, since) = self.room_of(index);
        (path(&room, self.transport.endpoint()), since)
    }

    /// Records a received chat message if it is one of this run's.
    pub fn receive(&self, receipts: &mut Receipts, message: &Seen) {
        if message.author != self.tag {
            return;
        }
        let Some((seq, sent)) = parse_probe(&message.text) else {
            return;
        };
        if receipts.record(seq, self.epoch.elapsed().saturating_sub(sent)) {
            self.received.tick();
        }
    }

    /// Records a poll answer and returns the cursor for the next poll.
    pub fn receive_poll(&self, receipts: &mut Receipts, body: &[u8]) -> anyhow::Result<u64> {
        let answer: PollAnswer<Seen> = serde_json::from_slice(body)?;
        if answer.reset {
            receipts.resets += 1;
        }
        for message in &answer.messages {
            self.receive(receipts, message);
        }
        Ok(answer.last_id)
    }

    pub fn count_request(&self) {
        self.requests.fetch_add(1, Relaxed);
    }
}

/// Runs subscriber `index` of `run` on its transport until the run stops.
pub async fn subscribe(run: Arc<Run>, index: usize) -> Outcome {
    let mut receipts = if index < run.subscribers {
        Receipts::new(run.messages)
    } else {
        Receipts::bystander()
    };
    let result = match run.transport {
        Transport::ShortPoll => short_poll::subscribe(&run, index, &mut receipts).await,
        Transport::LongPoll => long_poll::subscribe(&run, index, &mut receipts).await,
        Transport::Sse => sse::subscribe(&run, index, &mut receipts).await,
        Transport::Websocket => websocket::subscribe(&run, index, &mut receipts).await,
        Transport::Webtransport => webtransport::subscribe(&run, index, &mut receipts).await,
    };
    Outcome {
        receipts,
        error: result.err(),
    }
}

/// Opens the connection of subscriber `index` with `open`, holding a place at the
/// connect gate meanwhile, and counts the subscriber as settled whether it worked or
/// not, so that nobody waits for a client that will never connect.
pub async fn connect_gated<T, F>(run: &Run, open: F) -> anyhow::Result<T>
where
    F: Future<Output = anyhow::Result<T>>,
{
    let permit = run.connect_gate.acquire().await?;
    let opened = tokio::time::timeout(Duration::from_secs(30), open).await;
    drop(permit);
    let opened = opened
        .map_err(|_| anyhow::anyhow!("connecting took more than 30 s"))
        .and_then(|opened| opened);
    if opened.is_err() {
        run.connect_failures.fetch_add(1, Relaxed);
    }
    run.connected.tick();
    opened
}
