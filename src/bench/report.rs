//! What a bench run found, as one [`Results`] value: printed as markdown tables for
//! people, serialized as JSON for machines and for `--out DIR`.
//!
//! Every figure in the tables is computed here from the raw counts in the rows, so
//! the JSON keeps the counts and anyone can recompute or regroup them.

use std::fmt::Write;

use serde::Serialize;

use super::measure::Row;
use super::open_files::FileLimit;
use super::workload::{Capacity, Throughput};
use crate::stats::HttpVersion;

/// Everything one run measured, and where.
#[derive(Debug, Serialize)]
pub struct Results {
    pub machine: Machine,
    /// The command line, to reproduce the run.
    pub command: String,
    /// How the server was run.
    pub server: String,
    /// What the clients spoke: `http/1.1`, or `h2` over TLS (`--http2`).
    pub http: HttpVersion,
    pub poll_interval_ms: u64,
    pub fanout: Vec<Row>,
    pub idle: Vec<Row>,
    pub capacity: Vec<Capacity>,
    pub throughput: Vec<Throughput>,
    /// The many-rooms rows: one room's publishes with other rooms listening.
    pub rooms: Vec<Row>,
    /// Limits met on the way, such as the open-files cap.
    pub notes: Vec<String>,
    /// Ctrl-C ended the run early: the results are partial.
    pub interrupted: bool,
}

/// The machine the run was on.
#[derive(Debug, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub memory_bytes: Option<u64>,
    pub kernel: Option<String>,
    pub file_limit: FileLimit,
    /// `release` or `debug`: a debug build is many times slower.
    pub build: &'static str,
}

impl Machine {
    pub fn here(file_limit: FileLimit) -> Self {
        let meminfo = std::fs::read_to_string("/proc/meminfo").ok();
        let memory_bytes = meminfo.as_deref().and_then(|m| {
            let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
            Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
        });
        Self {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_bytes,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .ok()
                .map(|k| k.trim().to_owned()),
            file_limit,
            build: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
        }
    }
}

impl Results {
    /// Every fan-out row delivered everything exactly once.
    pub fn fanout_is_clean(&self) -> bool {
        self.fanout.iter().all(|r| r.is_clean() || r.interrupted)
    }

    /// The tables, with the machine and the command above them.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let _ = writeln!(out, "# pushlab bench\n");
        let _ = writeln!(
            out,
            "- machine: {} CPUs, {} memory, Linux {}, {} build, open-files limit {}",
            m.cpus,
            m.memory_bytes.map_or("?".into(), bytes),
            m.kernel.as_deref().unwrap_or("?"),
            m.build,
            m.file_limit.open_files
        );
        let _ = writeln!(out, "- command: `{}`", self.command);
        let _ = writeln!(out, "- server: {}", self.server);
        let _ = writeln!(
            out,
            "- clients speak: {}",
            match self.http {
                HttpVersion::Http1 => "HTTP/1.1",
                HttpVersion::Http2 => "HTTP/2 over TLS (bytes counted above TLS)",
            }
        );
        let _ = writeln!(out, "- short-poll interval: {} ms", self.poll_interval_ms);
        if self.interrupted {
            let _ = writeln!(out, "- **interrupted**: partial results");
        }
        section(&mut out, "Fan-out", &self.fanout, fanout_table);
        section(&mut out, "Idle cost", &self.idle, idle_table);
        section(&mut out, "Capacity", &self.capacity, capacity_table);
        section(&mut out, "Throughput", &self.throughput, throughput_table);
        section(&mut out, "Many rooms", &self.rooms, rooms_table);
        section(&mut out, "Notes", &self.notes, notes_list);
        out
    }
}

/// A `## title` and its table, when there is anything to show.
fn section<T>(out: &mut String, title: &str, items: &[T], table: fn(&mut String, &[T])) {
    if !items.is_empty() {
        let _ = writeln!(out, "\n## {title}\n");
        table(out, items);
    }
}

fn notes_list(out: &mut String, notes: &[String]) {
    for note in notes {
        let _ = writeln!(out, "- {note}");
    }
}

/// A markdown table: the header row, the separator, then one row per item.
fn table(out: &mut String, header: &[&str], rows: impl Iterator<Item = Vec<String>>) {
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
    for cells in rows {
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
}

/// One room's publishes while other rooms listen: the cost per message should not
/// follow the other rooms, and `strays` must be 0.
fn rooms_table(out: &mut String, rows: &[Row]) {
    let header = [
        "transport",
        "N in the room",
        "other rooms",
        "their subscribers",
        "delivered / expected",
        "strays",
        "p50 ms",
        "p99 ms",
        "server CPU ms / msg",
        "server CPU ms / 1000 deliveries",
    ];
    table(
        out,
        &header,
        rows.iter().map(|r| {
            let l = r.latency.as_ref();
            let cpu = r.server.as_ref().map(|s| s.cpu_window_ms);
            let per_message = cpu
                .filter(|_| r.messages > 0)
                .map(|ms| ms / r.messages as f64);
            vec![
                r.transport.title().to_owned(),
                r.subscribers.to_string(),
                r.other_rooms.to_string(),
                r.bystanders.to_string(),
                format!(
                    "{} / {}{}",
                    r.delivered,
                    r.expected,
                    if r.is_clean() { "" } else { " **FAIL**" }
                ),
                r.strays.to_string(),
                opt(l.map(|l| l.p50), 1),
                opt(l.map(|l| l.p99), 1),
                opt(per_message, 2),
                opt(
                    r.server.as_ref().and_then(|s| s.cpu_ms_per_1000_deliveries),
                    1,
                ),
            ]
        }),
    );
}

fn fanout_table(out: &mut String, rows: &[Row]) {
    let header = [
        "transport",
        "N",
        "msg/s",
        "delivered / expected",
        "lost",
        "dup",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "requests / msg",
        "bytes / msg",
        "TCP conns",
        "requests / conn",
        "setup bytes / client",
        "server CPU ms / 1000 msgs",
        "bench CPU ms / 1000 msgs",
        "server RSS / client",
    ];
    table(
        out,
        &header,
        rows.iter().map(|r| {
            let (requests, bytes_per) = r.per_delivered().unwrap_or((f64::NAN, f64::NAN));
            let l = r.latency.as_ref();
            let per_1000 = |ms: Option<f64>| {
                opt(
                    ms.filter(|_| r.delivered > 0)
                        .map(|ms| ms * 1000.0 / r.delivered as f64),
                    1,
                )
            };
            vec![
                r.transport.title().to_owned(),
                r.subscribers.to_string(),
                fixed(r.achieved_rate, 1),
                format!(
                    "{} / {}{}",
                    r.delivered,
                    r.expected,
                    if r.is_clean() { "" } else { " **FAIL**" }
                ),
                r.lost.to_string(),
                r.duplicated.to_string(),
                opt(l.map(|l| l.p50), 2),
                opt(l.map(|l| l.p90), 2),
                opt(l.map(|l| l.p99), 2),
                opt(l.map(|l| l.max), 2),
                fixed(requests, 2),
                fixed(bytes_per, 0),
                (r.setup.connections + r.window.connections).to_string(),
                fixed(r.requests_per_connection(), 1),
                fixed(r.setup.bytes as f64 / r.connected.max(1) as f64, 0),
                per_1000(r.server.as_ref().map(|s| s.cpu_window_ms)),
                per_1000(r.bench_cpu_ms),
                rss_per_client(r),
            ]
        }),
    );
}

fn idle_table(out: &mut String, rows: &[Row]) {
    let header = [
        "transport",
        "N",
        "seconds",
        "requests / client / min",
        "bytes / client / min",
        "server CPU ms / client / min",
        "server RSS / client",
    ];
    table(
        out,
        &header,
        rows.iter().map(|r| {
            let cpu = r
                .server
                .as_ref()
                .map(|s| r.per_client_minute(s.cpu_window_ms));
            vec![
                r.transport.title().to_owned(),
                r.connected.to_string(),
                fixed(r.window_secs, 0),
                fixed(r.per_client_minute(r.window.requests as f64), 2),
                fixed(r.per_client_minute(r.window.bytes as f64), 0),
                opt(cpu, 3),
                rss_per_client(r),
            ]
        }),
    );
}

fn capacity_table(out: &mut String, results: &[Capacity]) {
    let header = [
        "transport",
        "largest N passing",
        "p99 there, ms",
        "budget, ms",
        "limited by",
    ];
    table(
        out,
        &header,
        results.iter().map(|c| {
            vec![
                c.transport.title().to_owned(),
                c.largest.map_or("none".into(), |n| n.to_string()),
                opt(c.p99_ms, 2),
                fixed(c.budget_ms, 0),
                c.limited_by.clone(),
            ]
        }),
    );
}

fn throughput_table(out: &mut String, results: &[Throughput]) {
    let header = [
        "transport",
        "subscribers",
        "highest msg/s without loss",
        "p99 there, ms",
        "rates tried",
        "stopped by",
    ];
    table(
        out,
        &header,
        results.iter().map(|t| {
            let tried: Vec<String> = t.steps.iter().map(|s| fixed(s.rate, 0)).collect();
            vec![
                t.transport.title().to_owned(),
                t.subscribers.to_string(),
                opt(t.best_rate, 0),
                opt(t.p99_ms, 2),
                tried.join(", "),
                t.stopped_by.clone(),
            ]
        }),
    );
}

fn rss_per_client(row: &Row) -> String {
    row.server
        .as_ref()
        .map_or("–".into(), |s| bytes(s.rss_per_client as u64))
}

fn fixed(value: f64, decimals: usize) -> String {
    if value.is_finite() {
        format!("{value:.decimals$}")
    } else {
        "–".into()
    }
}

fn opt(value: Option<f64>, decimals: usize) -> String {
    value.map_or("–".into(), |v| fixed(v, decimals))
}

/// Bytes in B, KiB, MiB or GiB.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_as_people_write_them() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(24 * 1024 * 1024 * 1024), "24.0 GiB");
    }

    #[test]
    fn missing_figures_are_dashes() {
        assert_eq!(fixed(f64::NAN, 2), "–");
        assert_eq!(opt(None, 1), "–");
        assert_eq!(opt(Some(1.234), 1), "1.2");
    }
}
