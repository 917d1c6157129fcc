//! The five workloads, each a series of [rows](super::measure) per transport:
//!
//! 1. **fan-out** — one publisher at a fixed rate to N subscribers, for each N;
//! 2. **idle** — N subscribers and no message for T seconds: what merely staying
//!    connected costs;
//! 3. **capacity** — the largest N whose p99 stays within budget with nothing lost at
//!    the fan-out rate, searched by doubling and then halving the gap, starting from
//!    what the fan-out rows already showed;
//! 4. **throughput** — rising publish rates to a fixed number of subscribers until
//!    something is lost, or the machine saturates (the publisher, whose every POST
//!    waits for the server, falls short of the rate asked);
//! 5. **many rooms** — the same publishes to one room while 0, 100, 1 000 other rooms
//!    listen, each with its own subscribers: a publish's cost must not grow with them,
//!    and none of them may receive anything.
//!
//! Every search is bounded in steps, and each row is bounded in time by
//! [`Bench::row`]; Ctrl-C ends the current row and the workloads return what they have.

use std::time::Duration;

use serde::Serialize;

use super::measure::{Bench, Row, Spec};
use crate::protocol::Transport;

/// Publisher connections for the throughput workload: enough to reach thousands of
/// messages per second on loopback, few enough not to matter next to the subscribers.
pub const THROUGHPUT_PUBLISHERS: usize = 4;

/// The result of the capacity search for one transport.
#[derive(Debug, Clone, Serialize)]
pub struct Capacity {
    pub transport: Transport,
    /// The p99 a row had to stay within (for short polling: plus one interval).
    pub budget_ms: f64,
    /// The largest N that passed.
    pub largest: Option<usize>,
    /// The p99 at that N.
    pub p99_ms: Option<f64>,
    /// The smallest N that failed, if one was tried.
    pub failed_at: Option<usize>,
    /// What stopped the search, in words.
    pub limited_by: String,
    /// The rows the search ran itself (fan-out rows it started from are not repeated).
    pub probes: Vec<Row>,
}

/// The result of the throughput search for one transport.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    pub transport: Transport,
    pub subscribers: usize,
    /// The highest rate achieved with every message delivered to every subscriber.
    pub best_rate: Option<f64>,
    pub p99_ms: Option<f64>,
    pub stopped_by: String,
    pub steps: Vec<Row>,
}

/// Fan-out rows for every size and transport, smallest sizes first so that an early
/// stop still compares all transports.
pub async fn fanout(
    bench: &Bench,
    transports: &[Transport],
    sizes: &[usize],
    messages: usize,
    rate: f64,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    for &subscribers in sizes {
        for &transport in transports {
            if bench.stop.is_cancelled() {
                return Ok(());
            }
            let spec = Spec::publishing(transport, subscribers, messages, rate, 1);
            rows.push(bench.row(&spec).await?);
        }
    }
    Ok(())
}

/// Idle rows: `subscribers` connected for `idle`, nothing published.
pub async fn idle(
    bench: &Bench,
    transports: &[Transport],
    subscribers: usize,
    idle: Duration,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    for &transport in transports {
        if bench.stop.is_cancelled() {
            break;
        }
        let spec = Spec {
            idle,
            ..Spec::publishing(transport, subscribers, 0, 0.0, 1)
        };
        rows.push(bench.row(&spec).await?);
    }
    Ok(())
}

/// How the many-rooms workload is run.
pub struct ManyRooms {
    /// Subscribers in the lobby, where every message goes.
    pub subscribers: usize,
    /// Other rooms to try, ascending (0 is the baseline).
    pub other_rooms: Vec<usize>,
    /// Subscribers in each other room.
    pub per_other_room: usize,
    pub messages: usize,
    pub rate: f64,
}

/// Many-rooms rows: the same publishes to the same lobby audience, while more and more
/// other rooms, each with its own subscribers, listen on the same server. What a
/// publish costs (the server's CPU per message, the lobby's latency) should not grow
/// with them, and none of them should receive anything (`strays`).
pub async fn many_rooms(
    bench: &Bench,
    transports: &[Transport],
    plan: &ManyRooms,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    for &transport in transports {
        for &other_rooms in &plan.other_rooms {
            if bench.stop.is_cancelled() {
                return Ok(());
            }
            let spec = Spec {
                other_rooms,
                per_other_room: plan.per_other_room,
                ..Spec::publishing(transport, plan.subscribers, plan.messages, plan.rate, 1)
            };
            rows.push(bench.row(&spec).await?);
        }
    }
    Ok(())
}

/// How a capacity search is run.
pub struct CapacitySearch {
    pub messages: usize,
    pub rate: f64,
    pub budget_ms: f64,
    /// Rows the search may add beyond the fan-out rows.
    pub probes: usize,
}

/// Searches the largest N with p99 within budget and nothing lost, for `transport`,
/// starting from the fan-out rows already measured at the same rate.
pub async fn capacity(
    bench: &Bench,
    transport: Transport,
    search: &CapacitySearch,
    fanout: &[Row],
) -> anyhow::Result<Capacity> {
    let budget_ms = search.budget_ms
        + match transport {
            // A short poller sees a message up to one interval late by design; the
            // budget is for what the server adds on top.
            Transport::ShortPoll => bench.poll_interval.as_secs_f64() * 1000.0,
            _ => 0.0,
        };
    let passes =
        |row: &Row| row.is_clean() && row.latency.as_ref().is_some_and(|l| l.p99 <= budget_ms);
    // Every size tried so far: whether it passed, its p99, and why it failed if it did.
    let mut tried: Vec<Tried> = fanout
        .iter()
        .filter(|r| r.transport == transport && r.rate == search.rate && !r.interrupted)
        .map(|r| Tried::of(r, passes(r), budget_ms))
        .collect();
    let mut probes = Vec::new();
    let max = bench.limit.max_clients;
    for _ in 0..search.probes {
        let (largest, failed) = bracket(&tried);
        let Some(next) = next_probe(largest, failed, max) else {
            break;
        };
        if bench.stop.is_cancelled() {
            break;
        }
        let row = bench
            .row(&Spec::publishing(
                transport,
                next,
                search.messages,
                search.rate,
                1,
            ))
            .await?;
        if row.interrupted {
            break;
        }
        tried.push(Tried::of(&row, passes(&row), budget_ms));
        probes.push(row);
    }
    let (largest, failed) = bracket(&tried);
    let at = |n: Option<usize>| n.and_then(|n| tried.iter().find(|t| t.n == n));
    let limited_by = match (at(failed), largest) {
        (Some(t), _) => format!("at N={}: {}", t.n, t.why),
        (None, Some(n)) if n >= max => format!(
            "the open-files limit ({} descriptors per process) before any failure",
            bench.limit.open_files
        ),
        _ => "the search ran out of probes before a failure".into(),
    };
    Ok(Capacity {
        transport,
        budget_ms,
        largest,
        p99_ms: at(largest).and_then(|t| t.p99),
        failed_at: failed,
        limited_by,
        probes,
    })
}

/// One size the capacity search knows about.
struct Tried {
    n: usize,
    passed: bool,
    p99: Option<f64>,
    why: String,
}

impl Tried {
    fn of(row: &Row, passed: bool, budget_ms: f64) -> Self {
        Self {
            n: row.subscribers,
            passed,
            p99: row.latency.as_ref().map(|l| l.p99),
            why: if passed {
                String::new()
            } else {
                why_failed(row, budget_ms)
            },
        }
    }
}

/// The largest size that passed, and the smallest above it that failed.
fn bracket(tried: &[Tried]) -> (Option<usize>, Option<usize>) {
    let largest = tried.iter().filter(|t| t.passed).map(|t| t.n).max();
    let failed = tried
        .iter()
        .filter(|t| !t.passed && t.n > largest.unwrap_or(0))
        .map(|t| t.n)
        .min();
    (largest, failed)
}

/// The next size to try, or `None` when the search is done: double (from at least
/// 1 000) until something fails or the open-files limit is reached, then halve the gap
/// until it is within 10 % (more precision is noise on one machine).
fn next_probe(largest: Option<usize>, failed: Option<usize>, max: usize) -> Option<usize> {
    let low = largest.unwrap_or(0);
    match failed {
        None if low >= max => None,
        None => Some((low * 2).max(1000).min(max)),
        Some(high) if high - low <= (low / 10).max(1) => None,
        Some(high) => Some((low + high) / 2),
    }
}

/// In words, why a row did not pass.
fn why_failed(row: &Row, budget_ms: f64) -> String {
    let mut reasons = Vec::new();
    if row.lost > 0 || row.duplicated > 0 || row.resets > 0 {
        reasons.push(format!(
            "{} lost, {} duplicated, {} resets",
            row.lost, row.duplicated, row.resets
        ));
    }
    if row.connected < row.subscribers {
        reasons.push(format!(
            "{} of {} connected",
            row.connected, row.subscribers
        ));
    }
    if row.client_errors > 0 || row.publish_errors > 0 {
        reasons.push(format!(
            "{} client and {} publish errors ({})",
            row.client_errors,
            row.publish_errors,
            row.first_error.as_deref().unwrap_or("")
        ));
    }
    match &row.latency {
        Some(l) if l.p99 > budget_ms => {
            reasons.push(format!("p99 {:.1} ms > {budget_ms:.0} ms", l.p99));
        }
        None => reasons.push("nothing delivered".into()),
        _ => {}
    }
    reasons.join("; ")
}

/// How a throughput search is run.
pub struct ThroughputSearch {
    pub subscribers: usize,
    /// Rates to try, in messages per second, ascending.
    pub rates: Vec<f64>,
    /// How long each rate is held.
    pub seconds: f64,
}

/// Tries each rate in turn until one loses a message or the publisher cannot reach it.
pub async fn throughput(
    bench: &Bench,
    transport: Transport,
    search: &ThroughputSearch,
) -> anyhow::Result<Throughput> {
    let mut result = Throughput {
        transport,
        subscribers: search.subscribers,
        best_rate: None,
        p99_ms: None,
        stopped_by: "every rate passed: try higher ones".into(),
        steps: Vec::new(),
    };
    for &rate in &search.rates {
        if bench.stop.is_cancelled() {
            result.stopped_by = "interrupted".into();
            break;
        }
        let row = bench
            .row(&Spec::publishing(
                transport,
                search.subscribers,
                ((rate * search.seconds).ceil() as usize).max(1),
                rate,
                THROUGHPUT_PUBLISHERS,
            ))
            .await?;
        let (clean, achieved) = (row.is_clean(), row.achieved_rate);
        let p99 = row.latency.as_ref().map(|l| l.p99);
        let interrupted = row.interrupted;
        result.subscribers = row.subscribers;
        result.steps.push(row);
        if interrupted {
            result.stopped_by = "interrupted".into();
            break;
        }
        let row = result.steps.last().expect("just pushed");
        if !clean {
            result.stopped_by = format!("at {rate} msg/s: {}", why_failed(row, f64::INFINITY));
            break;
        }
        // Every message of this row reached every subscriber: the rate achieved counts,
        // even when it fell short of the one asked for.
        if result.best_rate.is_none_or(|best| achieved > best) {
            result.best_rate = Some(achieved);
            result.p99_ms = p99;
        }
        if achieved < 0.9 * rate {
            result.stopped_by = format!(
                "saturation: asked {rate} msg/s, published {achieved:.0} msg/s with nothing \
                 lost; {}",
                cores_used(row)
            );
            break;
        }
    }
    Ok(result)
}

/// How much of the machine the server and the bench used during a row's window.
fn cores_used(row: &Row) -> String {
    let cores = |ms: f64| ms / 1000.0 / row.window_secs.max(f64::EPSILON);
    let server = row.server.as_ref().map(|s| cores(s.cpu_window_ms));
    let bench = row.bench_cpu_ms.map(cores);
    match (server, bench) {
        (Some(server), Some(bench)) => format!(
            "the server used {server:.2} cores and the bench {bench:.2} ({} cores in all)",
            std::thread::available_parallelism().map_or(1, |n| n.get())
        ),
        _ => "the server's CPU was not read".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tried(n: usize, passed: bool) -> Tried {
        Tried {
            n,
            passed,
            p99: None,
            why: String::new(),
        }
    }

    #[test]
    fn the_bracket_is_the_largest_pass_and_the_smallest_failure_above_it() {
        assert_eq!(bracket(&[]), (None, None));
        let known = [
            tried(10, true),
            tried(100, true),
            tried(1000, false),
            tried(10_000, false),
        ];
        assert_eq!(bracket(&known), (Some(100), Some(1000)));
        // A noisy failure below a pass does not count against the larger pass.
        let noisy = [tried(100, false), tried(1000, true), tried(10_000, false)];
        assert_eq!(bracket(&noisy), (Some(1000), Some(10_000)));
    }

    #[test]
    fn probes_double_until_a_failure_then_halve_the_gap() {
        assert_eq!(next_probe(None, None, 20_000), Some(1000));
        assert_eq!(next_probe(Some(10_000), None, 20_000), Some(20_000));
        assert_eq!(next_probe(Some(15_000), None, 19_936), Some(19_936));
        assert_eq!(
            next_probe(Some(19_936), None, 19_936),
            None,
            "at the fd limit"
        );
        assert_eq!(next_probe(Some(1000), Some(10_000), 20_000), Some(5500));
        assert_eq!(next_probe(None, Some(1000), 20_000), Some(500));
        assert_eq!(
            next_probe(Some(5000), Some(5400), 20_000),
            None,
            "within 10 %"
        );
    }
}
