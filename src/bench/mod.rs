//! `pushlab bench`: the four transports measured on the same chat, with real clients,
//! so that the comparison table in `docs/comparison.md` is built from numbers rather
//! than folklore.
//!
//! The bench starts a fresh pushlab per measurement (see [`server`]), connects N
//! subscribers of one transport with clients written as a browser would use each
//! technique ([`client`]), publishes numbered messages on a schedule, and counts at
//! the socket what every delivery cost ([`wire`], [`tally`], [`measure`]). The five
//! [`workload`]s are series of such measurements; [`report`] and [`charts`] present
//! them. Everything is bounded — clients by the open-files limit ([`open_files`]), every
//! wait by a deadline — and Ctrl-C ends the run with the results so far.
//!
//! The bench only ever talks to loopback addresses: it is a load generator, and one
//! aimed elsewhere by a typo is an attack.

pub mod charts;
pub mod client;
pub mod measure;
pub mod open_files;
pub mod report;
pub mod server;
pub mod tally;
pub mod wire;
pub mod workload;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::ValueEnum;
use tokio_util::sync::CancellationToken;

use self::measure::Bench;
use self::report::{Machine, Results};
use self::server::Target;
use self::workload::{CapacitySearch, ThroughputSearch};
use crate::protocol::{Transport, WtDelivery};
use crate::stats::HttpVersion;

/// `pushlab bench [options]`. The defaults are a full run sized for a 2-core machine
/// (about 15 minutes with a release build); `--smoke` is a few seconds.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Measure a pushlab already running on this machine, e.g. http://127.0.0.1:8080,
    /// instead of starting a fresh one (a child process) for every measurement.
    #[arg(long)]
    pub url: Option<String>,

    /// With --url: the server's process id, so that its CPU time and memory can be read
    /// from /proc.
    #[arg(long, requires = "url")]
    pub server_pid: Option<u32>,

    /// Speak HTTP/2 over TLS (ALPN h2) to servers started with --tls, trusting the
    /// certificate each prints, instead of plain HTTP/1.1: every request is then a
    /// stream, its headers compressed by HPACK, and the WebSocket an extended CONNECT.
    /// Bytes are counted above TLS, so rows compare with HTTP/1.1 ones protocol to
    /// protocol. Not with --url.
    #[arg(long, conflicts_with = "url")]
    pub http2: bool,

    /// Transports to measure, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        value_enum,
        ignore_case = true,
        default_value = "short-poll,long-poll,sse,websocket,webtransport"
    )]
    pub transports: Vec<Transport>,

    /// Workloads to run, comma-separated, in this order.
    #[arg(
        long,
        value_delimiter = ',',
        value_enum,
        default_value = "fanout,idle,capacity,throughput,rooms"
    )]
    pub workloads: Vec<Workload>,

    /// Fan-out: subscriber counts, one row per transport for each.
    #[arg(long, value_delimiter = ',', default_value = "10,100,1000,10000")]
    pub fanout_clients: Vec<usize>,

    /// Fan-out and capacity: messages published per row.
    #[arg(long, default_value_t = 10)]
    pub messages: usize,

    /// Fan-out and capacity: messages published per second.
    #[arg(long, default_value_t = 1.0)]
    pub rate: f64,

    /// Short polling: milliseconds between two polls of one client.
    #[arg(long, default_value_t = 1000)]
    pub poll_interval_ms: u64,

    /// WebTransport: how its subscribers ask for messages to travel (`?delivery=`):
    /// on one stream, a stream per message, or live ones as datagrams. Run the bench
    /// once per value to compare them (as docs/comparison.md does).
    #[arg(long, value_enum, default_value = "stream")]
    pub webtransport_delivery: WtDelivery,

    /// Idle cost: clients connected per transport.
    #[arg(long, default_value_t = 1000)]
    pub idle_clients: usize,

    /// Idle cost: seconds watched with nothing published. The default, 150, is the
    /// shortest window that is a multiple of every idle period (a long poll's 30 s hold,
    /// the 15 s SSE keep-alive, the 25 s WebSocket ping), so each is counted as often as
    /// it really happens; a 30 s window sees 1.2 pings' worth as 1.
    #[arg(long, default_value_t = 150)]
    pub idle_secs: u64,

    /// Capacity: the p99 delivery latency a size must stay within, in milliseconds
    /// (short polling gets one poll interval on top).
    #[arg(long, default_value_t = 100.0)]
    pub p99_budget_ms: f64,

    /// Capacity: rows the search may add per transport beyond the fan-out rows.
    #[arg(long, default_value_t = 2)]
    pub capacity_probes: usize,

    /// Throughput: subscribers per row (WebSocket and SSE only).
    #[arg(long, default_value_t = 1000)]
    pub throughput_clients: usize,

    /// Throughput: publish rates to try, messages per second, ascending.
    #[arg(long, value_delimiter = ',', default_value = "100,200,500,1000,2000")]
    pub throughput_rates: Vec<f64>,

    /// Throughput: seconds each rate is held.
    #[arg(long, default_value_t = 3.0)]
    pub throughput_secs: f64,

    /// Many rooms: subscribers in the room every message goes to.
    #[arg(long, default_value_t = 100)]
    pub rooms_clients: usize,

    /// Many rooms: how many other rooms listen meanwhile, one row for each count.
    #[arg(long, value_delimiter = ',', default_value = "0,100,1000")]
    pub rooms_other: Vec<usize>,

    /// Many rooms: subscribers in each of the other rooms.
    #[arg(long, default_value_t = 5)]
    pub rooms_per_other: usize,

    /// Many rooms: messages published per row, and per second (enough messages for the
    /// server's CPU per message to be read above its 10 ms clock).
    #[arg(long, default_value_t = 300)]
    pub rooms_messages: usize,
    #[arg(long, default_value_t = 50.0)]
    pub rooms_rate: f64,

    /// Connections being opened at once, at most.
    #[arg(long, default_value_t = 200)]
    pub connect_concurrency: usize,

    /// A check of a few seconds that every transport delivers every message exactly
    /// once (tiny sizes, fast rates; overrides the sizes above). Exits non-zero on
    /// any loss, duplicate or error. CI runs it.
    #[arg(long)]
    pub smoke: bool,

    /// Print the results as JSON instead of markdown tables.
    #[arg(long)]
    pub json: bool,

    /// Also write results.json, results.md and SVG charts into this folder.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// The workloads, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    Fanout,
    Idle,
    Capacity,
    Throughput,
    /// One room's publishes while other rooms listen (`--rooms-*`).
    Rooms,
}

impl BenchArgs {
    /// The tiny sizes of `--smoke`.
    fn smoke(mut self) -> Self {
        self.workloads = vec![
            Workload::Fanout,
            Workload::Idle,
            Workload::Throughput,
            Workload::Rooms,
        ];
        self.fanout_clients = vec![10];
        self.messages = 5;
        self.rate = 20.0;
        self.poll_interval_ms = 100;
        self.idle_clients = 10;
        self.idle_secs = 1;
        self.throughput_clients = 10;
        self.throughput_rates = vec![200.0];
        self.throughput_secs = 1.0;
        self.rooms_clients = 5;
        self.rooms_other = vec![0, 20];
        self.rooms_per_other = 2;
        self.rooms_messages = 5;
        self.rooms_rate = 20.0;
        self
    }
}

/// Runs the bench and prints the results. Returns whether the run was clean: every
/// fan-out row (and, with `--smoke`, every row) delivered everything exactly once.
pub async fn run(args: BenchArgs) -> anyhow::Result<bool> {
    let args = if args.smoke { args.smoke() } else { args };
    let limit = open_files::raise();
    let http = if args.http2 {
        HttpVersion::Http2
    } else {
        HttpVersion::Http1
    };
    let target = match &args.url {
        Some(url) => Target::running(url, args.server_pid)?,
        None => Target::spawn_self(http)?,
    };
    let stop = CancellationToken::new();
    tokio::spawn({
        let stop = stop.clone();
        async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("\ninterrupted: finishing the current row, then reporting");
                stop.cancel();
            }
        }
    });
    let poll_interval = Duration::from_millis(args.poll_interval_ms.max(1));
    let mut results = Results {
        machine: Machine::here(limit),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        server: target.describe(),
        http,
        poll_interval_ms: args.poll_interval_ms,
        fanout: Vec::new(),
        idle: Vec::new(),
        capacity: Vec::new(),
        throughput: Vec::new(),
        rooms: Vec::new(),
        notes: Vec::new(),
        interrupted: false,
    };
    let mut bench = Bench::new(
        target,
        limit,
        poll_interval,
        args.connect_concurrency,
        stop.clone(),
    );
    bench.webtransport_delivery = args.webtransport_delivery;
    if let Err(error) = run_workloads(&bench, &args, &mut results).await {
        results
            .notes
            .push(format!("the run stopped early: {error:#}"));
    }
    results.interrupted = stop.is_cancelled();
    note_caps(&mut results);

    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        print!("{}", results.markdown());
    }
    if let Some(dir) = &args.out {
        write_out(&results, dir)?;
    }
    let clean = if args.smoke {
        let rows = results
            .fanout
            .iter()
            .chain(&results.idle)
            .chain(&results.rooms);
        let steps = results.throughput.iter().flat_map(|t| &t.steps);
        rows.chain(steps).all(|r| r.is_clean()) && !results.fanout.is_empty()
    } else {
        results.fanout_is_clean()
    };
    Ok(clean
        && !results
            .notes
            .iter()
            .any(|n| n.starts_with("the run stopped early")))
}

async fn run_workloads(
    bench: &Bench,
    args: &BenchArgs,
    results: &mut Results,
) -> anyhow::Result<()> {
    for workload in &args.workloads {
        match workload {
            Workload::Fanout => {
                workload::fanout(
                    bench,
                    &args.transports,
                    &args.fanout_clients,
                    args.messages,
                    args.rate,
                    &mut results.fanout,
                )
                .await?;
            }
            Workload::Idle => {
                let idle = Duration::from_secs(args.idle_secs);
                workload::idle(
                    bench,
                    &args.transports,
                    args.idle_clients,
                    idle,
                    &mut results.idle,
                )
                .await?;
            }
            Workload::Capacity => {
                let search = CapacitySearch {
                    messages: args.messages,
                    rate: args.rate,
                    budget_ms: args.p99_budget_ms,
                    probes: args.capacity_probes,
                };
                for &transport in &args.transports {
                    if bench.stop.is_cancelled() {
                        break;
                    }
                    let found = workload::capacity(bench, transport, &search, &results.fanout);
                    results.capacity.push(found.await?);
                }
            }
            Workload::Rooms => {
                let plan = workload::ManyRooms {
                    subscribers: args.rooms_clients,
                    other_rooms: args.rooms_other.clone(),
                    per_other_room: args.rooms_per_other,
                    messages: args.rooms_messages,
                    rate: args.rooms_rate,
                };
                workload::many_rooms(bench, &args.transports, &plan, &mut results.rooms).await?;
            }
            Workload::Throughput => {
                let search = ThroughputSearch {
                    subscribers: args.throughput_clients,
                    rates: args.throughput_rates.clone(),
                    seconds: args.throughput_secs,
                };
                for &transport in &args.transports {
                    if !transport.is_push() || bench.stop.is_cancelled() {
                        continue;
                    }
                    let found = workload::throughput(bench, transport, &search);
                    results.throughput.push(found.await?);
                }
            }
        }
        if bench.stop.is_cancelled() {
            break;
        }
    }
    Ok(())
}

/// Says once per distinct cap that the open-files limit cut a row short.
fn note_caps(results: &mut Results) {
    let rows = results
        .fanout
        .iter()
        .chain(&results.idle)
        .chain(&results.rooms);
    let probes = results.capacity.iter().flat_map(|c| &c.probes);
    let steps = results.throughput.iter().flat_map(|t| &t.steps);
    for row in rows.chain(probes).chain(steps) {
        if let Some(cap) = &row.capped
            && !results.notes.contains(cap)
        {
            results.notes.push(cap.clone());
        }
    }
}

fn write_out(results: &Results, dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(
        dir.join("results.json"),
        serde_json::to_string_pretty(results)?,
    )?;
    std::fs::write(dir.join("results.md"), results.markdown())?;
    let charts = charts::write_all(results, dir)?;
    eprintln!(
        "wrote results.json, results.md and {} charts to {}",
        charts.len(),
        dir.display()
    );
    Ok(())
}
