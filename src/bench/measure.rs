//! One measurement — a *row* — which every workload is made of: N subscribers of one
//! transport on a fresh server, a publisher sending M messages at a rate (or none, to
//! measure idle cost), and everything counted.
//!
//! ```text
//! start server ─ sample ─ connect N (gated) ─ settle ─ sample ══ window ══ sample ─ stop clients ─ tally
//!                 rss₀                                  rss₁,cpu₁  publish M     cpu₂,rss₂
//!                                                                  and drain
//! ```
//!
//! The *window* is what the per-message and per-minute figures are computed over: it
//! starts once every subscriber is connected (so connection set-up is reported apart,
//! as `setup`) and ends when every subscriber has every message, or when the drain
//! deadline passes (then what is missing is lost). Memory per client is
//! `(rss₁ − rss₀) / N`, taken when all are connected and before any message.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::client::{self, Countdown, Run, publisher};
use super::server::{Process, ProcessSample, Server, Target};
use super::tally::Tally;
use super::wire::{Wire, WireSnapshot};
use crate::protocol::{Transport, WtDelivery};

/// Percentiles kept for the latency chart: every whole percent, and the tail.
const CURVE: [f64; 4] = [99.5, 99.9, 99.99, 100.0];

/// How long subscribers get to see every message after the last one is published,
/// beyond one polling interval.
const DRAIN: Duration = Duration::from_secs(5);

/// What one row asks for.
#[derive(Debug, Clone)]
pub struct Spec {
    pub transport: Transport,
    pub subscribers: usize,
    /// 0 for an idle row.
    pub messages: usize,
    /// Messages per second.
    pub rate: f64,
    /// Publisher connections: one at chat rates, more to reach high rates.
    pub publishers: usize,
    /// For an idle row: how long to watch.
    pub idle: Duration,
    /// Rooms besides the lobby (where the messages go), each with `per_other_room`
    /// subscribers of the same transport that should receive nothing.
    pub other_rooms: usize,
    pub per_other_room: usize,
}

impl Spec {
    /// `subscribers` in the lobby and `messages` at `rate` from `publishers`
    /// connections; no other rooms, no idle time.
    pub fn publishing(
        transport: Transport,
        subscribers: usize,
        messages: usize,
        rate: f64,
        publishers: usize,
    ) -> Self {
        Self {
            transport,
            subscribers,
            messages,
            rate,
            publishers,
            idle: Duration::ZERO,
            other_rooms: 0,
            per_other_room: 0,
        }
    }
}

/// How the rows of one bench run are made.
pub struct Bench {
    pub target: Target,
    pub limit: super::open_files::FileLimit,
    pub poll_interval: Duration,
    /// How WebTransport subscribers ask for their messages (`stream` unless set).
    pub webtransport_delivery: WtDelivery,
    pub connect_concurrency: usize,
    pub stop: CancellationToken,
    pub progress: indicatif::MultiProgress,
    rows: std::sync::atomic::AtomicUsize,
}

/// Requests, bytes (both ways, at the socket) and TCP connections of the subscribers.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Traffic {
    pub requests: u64,
    pub bytes: u64,
    pub connections: u64,
}

/// Publish-to-receipt latency of first sightings, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    /// `[percentile, ms]` points, for the distribution chart.
    pub curve: Vec<[f64; 2]>,
}

/// What the server process spent; only when its `/proc` can be read.
#[derive(Debug, Clone, Serialize)]
pub struct ServerCost {
    pub rss_start: u64,
    pub rss_connected: u64,
    pub rss_end: u64,
    /// `(rss_connected − rss_start) / connected`.
    pub rss_per_client: f64,
    /// CPU time (user + system) during the window, 10 ms resolution.
    pub cpu_window_ms: f64,
    pub cpu_ms_per_1000_deliveries: Option<f64>,
}

/// One measurement's results.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub transport: Transport,
    /// Subscribers in the lobby, where the messages went (after the open-files cap).
    pub subscribers: usize,
    /// Other rooms, and their subscribers in all (after the cap).
    pub other_rooms: usize,
    pub bystanders: usize,
    /// Clients that connected, in every room.
    pub connected: usize,
    /// Why fewer clients ran than were asked for.
    pub capped: Option<String>,
    pub messages: usize,
    pub rate: f64,
    pub achieved_rate: f64,
    pub publish_errors: usize,
    pub client_errors: usize,
    pub first_error: Option<String>,
    pub expected: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub resets: u64,
    /// Messages delivered to subscribers of other rooms: must be 0.
    pub strays: u64,
    pub latency: Option<Latency>,
    pub window_secs: f64,
    /// Connecting: from the first connect to the last client ready.
    pub setup: Traffic,
    /// The window: publishing and delivery, or the idle time.
    pub window: Traffic,
    pub server: Option<ServerCost>,
    /// CPU time the bench itself (clients and publisher) spent in the window: when it
    /// nears the window's length times the cores, the clients are the bottleneck.
    pub bench_cpu_ms: Option<f64>,
    /// The row was cut short by Ctrl-C.
    pub interrupted: bool,
}

impl Row {
    /// Everything published reached every subscriber exactly once, without errors.
    pub fn is_clean(&self) -> bool {
        self.lost == 0
            && self.duplicated == 0
            && self.resets == 0
            && self.strays == 0
            && self.client_errors == 0
            && self.publish_errors == 0
            && self.connected == self.subscribers + self.bystanders
    }

    /// Requests and bytes per delivered message, over the window.
    pub fn per_delivered(&self) -> Option<(f64, f64)> {
        (self.delivered > 0).then(|| {
            let d = self.delivered as f64;
            (
                self.window.requests as f64 / d,
                self.window.bytes as f64 / d,
            )
        })
    }

    /// HTTP requests per TCP connection over the whole row: how many requests each
    /// connection carried, one after another (HTTP/1.1 keep-alive) or at once (HTTP/2).
    pub fn requests_per_connection(&self) -> f64 {
        let requests = self.setup.requests + self.window.requests;
        let connections = self.setup.connections + self.window.connections;
        requests as f64 / connections.max(1) as f64
    }

    /// A figure per connected client per minute of the window.
    pub fn per_client_minute(&self, total: f64) -> f64 {
        total / self.connected.max(1) as f64 / (self.window_secs / 60.0).max(f64::EPSILON)
    }
}

impl Bench {
    pub fn new(
        target: Target,
        limit: super::open_files::FileLimit,
        poll_interval: Duration,
        connect_concurrency: usize,
        stop: CancellationToken,
    ) -> Self {
        Self {
            target,
            limit,
            poll_interval,
            webtransport_delivery: WtDelivery::default(),
            connect_concurrency,
            stop,
            progress: indicatif::MultiProgress::new(),
            rows: Default::default(),
        }
    }

    /// Runs one row. `Err` when the server could not be started or read; an
    /// interrupted row comes back marked as such.
    pub async fn row(&self, spec: &Spec) -> anyhow::Result<Row> {
        // The cap falls on the other rooms first: the lobby is what is measured.
        let asked = spec.subscribers + spec.other_rooms * spec.per_other_room;
        let (clients, capped) = self.limit.cap(asked);
        let subscribers = spec.subscribers.min(clients);
        let per_other_room = match spec.other_rooms {
            0 => 0,
            rooms => spec.per_other_room.min((clients - subscribers) / rooms),
        };
        let server = self.target.start().await?;
        let run = Arc::new(Run {
            server: server.endpoint.clone(),
            transport: spec.transport,
            tag: format!("bench-{}", self.rows.fetch_add(1, Relaxed)),
            since: server.last_id().await?,
            messages: spec.messages,
            subscribers,
            other_rooms: spec.other_rooms,
            per_other_room,
            poll_interval: self.poll_interval,
            webtransport_delivery: self.webtransport_delivery,
            epoch: Instant::now(),
            wire: Arc::new(Wire::default()),
            requests: Default::default(),
            connected: Countdown::new((subscribers + spec.other_rooms * per_other_room) as u64),
            connect_failures: Default::default(),
            received: Countdown::new((subscribers * spec.messages) as u64),
            connect_gate: Semaphore::new(self.connect_concurrency.max(1)),
            stop: self.stop.child_token(),
        });
        let clients_in_all = run.clients();
        let bar = self.bar(spec, subscribers);
        let ticker = tokio::spawn(follow(run.clone(), bar.clone()));

        let rss_start = server.sample();
        let mut clients = JoinSet::new();
        for index in 0..clients_in_all {
            clients.spawn(client::subscribe(run.clone(), index));
        }
        self.until_stopped(
            run.connected.wait(),
            Duration::from_secs(60 + clients_in_all as u64 / 50),
        )
        .await;
        let connected = clients_in_all - run.connect_failures.load(Relaxed) as usize;
        settle(&server, spec.transport, connected as u64, &self.stop).await;

        let requests_before = run.requests.load(Relaxed);
        let wire_before = run.wire.snapshot();
        let connected_sample = server.sample();
        let bench_process = Process {
            pid: std::process::id(),
        };
        let bench_before = bench_process.sample().ok();
        let window_started = Instant::now();
        let published = if spec.messages > 0 {
            bar.set_message(format!("{}: publishing", label(spec)));
            let published = publisher::publish(run.clone(), spec.rate, spec.publishers).await;
            bar.set_message(format!("{}: draining", label(spec)));
            let drain = DRAIN
                + if spec.transport == Transport::ShortPoll {
                    self.poll_interval
                } else {
                    Duration::ZERO
                };
            self.until_stopped(run.received.wait(), drain).await;
            Some(published)
        } else {
            self.until_stopped(std::future::pending::<()>(), spec.idle)
                .await;
            None
        };
        let window_secs = window_started.elapsed().as_secs_f64();
        let end_sample = server.sample();
        let bench_cpu_ms = bench_before
            .zip(bench_process.sample().ok())
            .map(|(before, after)| (after.cpu - before.cpu).as_secs_f64() * 1000.0);
        let window = traffic(
            run.wire.snapshot().since(wire_before),
            run.requests.load(Relaxed) - requests_before,
        );
        let setup = traffic(wire_before, requests_before);
        let interrupted = self.stop.is_cancelled();

        run.stop.cancel();
        let (tally, client_errors, first_error) = collect(clients, &run).await;
        ticker.abort();
        bar.finish_and_clear();
        drop(server);
        let published = published.unwrap_or_default();
        let first_error = first_error.or(published.first_error.clone());
        Ok(Row {
            transport: spec.transport,
            subscribers,
            other_rooms: spec.other_rooms,
            bystanders: clients_in_all - subscribers,
            connected,
            capped,
            messages: spec.messages,
            rate: spec.rate,
            achieved_rate: published.rate(),
            publish_errors: published.errors,
            client_errors,
            first_error,
            expected: tally.expected,
            delivered: tally.delivered,
            lost: tally.lost,
            duplicated: tally.duplicated,
            resets: tally.resets,
            strays: tally.strays,
            window_secs,
            setup,
            window,
            server: server_cost(
                [rss_start, connected_sample, end_sample],
                connected,
                tally.delivered,
            ),
            latency: latency(tally),
            bench_cpu_ms,
            interrupted,
        })
    }

    /// Waits for `event`, at most `limit`, and not past Ctrl-C.
    async fn until_stopped(&self, event: impl Future<Output = ()>, limit: Duration) {
        tokio::select! {
            () = event => {}
            () = tokio::time::sleep(limit) => {}
            () = self.stop.cancelled() => {}
        }
    }

    fn bar(&self, spec: &Spec, subscribers: usize) -> ProgressBar {
        let total = (subscribers * spec.messages.max(1)) as u64;
        let bar = self.progress.add(ProgressBar::new(total));
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg:48} {wide_bar} {pos}/{len} {elapsed}")
                .expect("a valid template"),
        );
        bar.set_message(format!("{}: connecting", label(spec)));
        bar
    }
}

fn label(spec: &Spec) -> String {
    format!("{} N={}", spec.transport.title(), spec.subscribers)
}

/// Moves the progress bar along with the run, ten times a second, until aborted.
async fn follow(run: Arc<Run>, bar: ProgressBar) {
    let mut ticks = tokio::time::interval(Duration::from_millis(100));
    loop {
        ticks.tick().await;
        let connected = run.connected.get();
        bar.set_position(if connected < run.subscribers as u64 {
            connected
        } else {
            run.received.get()
        });
    }
}

/// Waits (at most 10 s) until the server holds every connection or request it was
/// sent, so that its memory is read with all of them in place. Short polls hold
/// nothing between requests, so there is nothing to wait for.
async fn settle(server: &Server, transport: Transport, connected: u64, stop: &CancellationToken) {
    if transport == Transport::ShortPoll {
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && !stop.is_cancelled() {
        match server.open(transport).await {
            Ok(open) if open < connected => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            _ => return,
        }
    }
}

/// Waits (at most 30 s) for the stopped subscribers and adds up their receipts; one
/// that does not finish in time is aborted and counted as having received nothing.
async fn collect(
    mut clients: JoinSet<client::Outcome>,
    run: &Run,
) -> (Tally, usize, Option<String>) {
    let (subscribers, messages) = (run.clients(), run.messages);
    let mut tally = Tally::default();
    let (mut errors, mut first_error) = (0, None);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while let Ok(Some(outcome)) = tokio::time::timeout_at(deadline, clients.join_next()).await {
        match outcome {
            Ok(outcome) => {
                if let Some(error) = outcome.error {
                    errors += 1;
                    first_error.get_or_insert_with(|| format!("{error:#}"));
                }
                tally.add(outcome.receipts);
            }
            Err(panic) => {
                errors += 1;
                first_error.get_or_insert_with(|| panic.to_string());
            }
        }
    }
    clients.abort_all();
    for _ in tally.subscribers as usize..subscribers {
        tally.add_missing(messages);
    }
    (tally, errors, first_error)
}

fn traffic(wire: WireSnapshot, requests: u64) -> Traffic {
    Traffic {
        requests,
        bytes: wire.bytes(),
        connections: wire.connections,
    }
}

fn server_cost(
    [start, connected, end]: [Option<ProcessSample>; 3],
    clients: usize,
    delivered: u64,
) -> Option<ServerCost> {
    let (start, connected, end) = (start?, connected?, end?);
    let cpu_window_ms = (end.cpu - connected.cpu).as_secs_f64() * 1000.0;
    Some(ServerCost {
        rss_start: start.rss_bytes,
        rss_connected: connected.rss_bytes,
        rss_end: end.rss_bytes,
        rss_per_client: connected.rss_bytes.saturating_sub(start.rss_bytes) as f64
            / clients.max(1) as f64,
        cpu_window_ms,
        cpu_ms_per_1000_deliveries: (delivered > 0)
            .then(|| cpu_window_ms * 1000.0 / delivered as f64),
    })
}

fn latency(tally: Tally) -> Option<Latency> {
    let latencies = tally.latencies();
    let at = |p| latencies.percentile_ms(p);
    let curve = (0..100)
        .map(f64::from)
        .chain(CURVE)
        .filter_map(|p| Some([p, at(p)?]))
        .collect();
    Some(Latency {
        p50: at(50.0)?,
        p90: at(90.0)?,
        p99: at(99.0)?,
        max: at(100.0)?,
        curve,
    })
}
