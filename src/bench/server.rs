//! The server under test, and what it costs the machine.
//!
//! By default the bench starts a fresh pushlab for every measurement, as a child
//! process of itself (the same binary, `pushlab --addr 127.0.0.1:0`), on a free
//! loopback port. A separate process, rather than a server inside the bench, because
//! the bench measures the *server*:
//!
//! - its CPU time and resident memory are read from `/proc/<pid>`; inside the bench
//!   they would include the thousands of clients;
//! - the open-files limit counts per process: in one process each loopback connection
//!   would use two descriptors (both ends), halving the clients the machine can hold;
//! - a fresh process per row starts every row from the same empty hub and baseline
//!   memory, so one row's freed memory does not flatter the next.
//!
//! `--url` aims the bench at a server that is already running (on this machine: the
//! bench only ever sends to loopback addresses); `--server-pid` then lets it read that
//! server's CPU and memory too. Such a server should run with the limits off, as
//! [`SPAWN_ARGS`] does, or its rate limit and per-IP cap will be what is measured.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::client::http::{Endpoint, HttpConnection};
use super::wire::Wire;
use crate::protocol::Transport;
use crate::stats::HttpVersion;

/// Where the servers under test come from.
#[derive(Clone)]
pub enum Target {
    /// A fresh child process per measurement, running this binary; with HTTP/2, with
    /// `--tls`.
    Spawn {
        program: PathBuf,
        args: Vec<String>,
        http: HttpVersion,
    },
    /// A server that is already running, and optionally its process id.
    Running {
        endpoint: Endpoint,
        pid: Option<u32>,
    },
}

/// A server to measure, for the length of one measurement.
pub struct Server {
    pub endpoint: Endpoint,
    pub process: Option<Process>,
    /// Killed when the server is dropped.
    _child: Option<Child>,
}

/// A process whose CPU time and memory can be read from `/proc`.
#[derive(Debug, Clone, Copy)]
pub struct Process {
    pub pid: u32,
}

/// CPU time and resident memory of a process at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ProcessSample {
    /// User plus system time, all threads, since the process started.
    pub cpu: Duration,
    pub rss_bytes: u64,
}

/// The arguments a spawned server runs with: loopback, a free port, quiet, and the
/// protections against abuse off (all the bench's clients share a handful of IPs and
/// publish far faster than a person): no publish rate limit, no connection caps, and
/// no cap on idle connections (10 000 pollers keep 10 000 connections alive between
/// their requests; the default cap, a quarter of the open-files limit, would close
/// half of them); the fault lab off (its layer would add its own cost to every request
/// measured); and WebTransport on, for its subscribers.
pub const SPAWN_ARGS: [&str; 15] = [
    "--addr",
    "127.0.0.1:0",
    "--log",
    "error",
    "--publish-rate",
    "0",
    "--max-connections",
    "0",
    "--max-connections-per-ip",
    "0",
    "--max-idle-connections",
    "1000000",
    "--fault-lab",
    "off",
    "--webtransport",
];

impl Target {
    /// A target that spawns this very binary as the server, for clients speaking
    /// `http` (HTTP/2: the server gets `--tls`).
    pub fn spawn_self(http: HttpVersion) -> anyhow::Result<Self> {
        let mut args: Vec<String> = SPAWN_ARGS.iter().map(|a| a.to_string()).collect();
        if http == HttpVersion::Http2 {
            args.push("--tls".into());
        }
        Ok(Self::Spawn {
            program: std::env::current_exe().context("cannot find the pushlab binary")?,
            args,
            http,
        })
    }

    /// A running server at `url` (`http://127.0.0.1:8080`), which must be on this
    /// machine.
    pub fn running(url: &str, pid: Option<u32>) -> anyhow::Result<Self> {
        let authority = url
            .strip_prefix("http://")
            .context("--url must start with http://")?
            .trim_end_matches('/');
        let addr: SocketAddr = authority
            .parse()
            .with_context(|| format!("--url needs an IP address and port, got {authority:?}"))?;
        if !addr.ip().is_loopback() {
            bail!("the bench sends only to this machine: --url must be a loopback address");
        }
        Ok(Self::Running {
            endpoint: Endpoint::http1(addr),
            pid,
        })
    }

    /// Says how the server is run, for the report.
    pub fn describe(&self) -> String {
        match self {
            Self::Spawn { program, args, .. } => format!(
                "fresh child process per measurement: {} {}",
                program.display(),
                args.join(" ")
            ),
            Self::Running { endpoint, pid } => match pid {
                Some(pid) => format!("running server at {} (pid {pid})", endpoint.url("")),
                None => format!(
                    "running server at {} (CPU and memory not read)",
                    endpoint.url("")
                ),
            },
        }
    }

    /// A server ready to measure: a new process, or the running one.
    pub async fn start(&self) -> anyhow::Result<Server> {
        match self {
            Self::Running { endpoint, pid } => Ok(Server {
                endpoint: endpoint.clone(),
                process: pid.map(|pid| Process { pid }),
                _child: None,
            }),
            Self::Spawn {
                program,
                args,
                http,
            } => {
                let mut child = Command::new(program)
                    .args(args)
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    // Its own process group: Ctrl-C at the terminal stops the bench,
                    // which then ends the server, not both at once mid-measurement.
                    .process_group(0)
                    .kill_on_drop(true)
                    .spawn()
                    .with_context(|| format!("cannot start {}", program.display()))?;
                let stdout = child.stdout.take().context("no stdout")?;
                let mut lines = BufReader::new(stdout).lines();
                let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
                    .await
                    .context("the server did not start within 10 s")??
                    .context("the server exited before listening")?;
                let addr = listening_address(&first)
                    .with_context(|| format!("unexpected first line from the server: {first}"))?;
                let endpoint = match http {
                    HttpVersion::Http1 => Endpoint::http1(addr),
                    HttpVersion::Http2 => {
                        // `TLS certificate (self-signed) SHA-256 AB:CD:…`
                        let line = lines.next_line().await?.unwrap_or_default();
                        let fingerprint = line
                            .rsplit_once("SHA-256 ")
                            .with_context(|| format!("no certificate fingerprint: {line}"))?
                            .1;
                        Endpoint::http2(addr, fingerprint)
                    }
                };
                // Keep reading what it prints, so that it never blocks on a full pipe.
                tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                Ok(Server {
                    endpoint,
                    process: child.id().map(|pid| Process { pid }),
                    _child: Some(child),
                })
            }
        }
    }
}

/// The address in the line `pushlab listening on http://127.0.0.1:41234` (or https).
fn listening_address(line: &str) -> Option<SocketAddr> {
    line.split_once("://")?.1.trim().parse().ok()
}

impl Server {
    /// `GET /api/stats`, on a connection of its own (not counted as client traffic).
    pub async fn stats(&self) -> anyhow::Result<serde_json::Value> {
        let mut http = HttpConnection::open(&self.endpoint, 0, &Arc::new(Wire::default())).await?;
        Ok(serde_json::from_slice(&http.get("/api/stats").await?)?)
    }

    /// The newest message id: where a run's subscribers start.
    pub async fn last_id(&self) -> anyhow::Result<u64> {
        self.stats().await?["hub"]["last_id"]
            .as_u64()
            .context("/api/stats has no hub.last_id")
    }

    /// Connections (push) or requests (polls) the server has open on `transport`.
    pub async fn open(&self, transport: Transport) -> anyhow::Result<u64> {
        let stats = self.stats().await?;
        stats["transports"][transport.name()]["open"]
            .as_u64()
            .context("/api/stats has no open count")
    }

    pub fn sample(&self) -> Option<ProcessSample> {
        self.process.and_then(|p| p.sample().ok())
    }
}

impl Process {
    /// Reads `/proc/<pid>/stat` (CPU) and `/proc/<pid>/status` (memory).
    pub fn sample(&self) -> anyhow::Result<ProcessSample> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))?;
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        Ok(ProcessSample {
            cpu: cpu_time(&stat).context("unexpected /proc/<pid>/stat")?,
            rss_bytes: resident_bytes(&status).context("no VmRSS in /proc/<pid>/status")?,
        })
    }
}

/// Clock ticks per second in `/proc/<pid>/stat`: the kernel's `USER_HZ`, which is 100
/// on every Linux architecture the bench runs on (it is ABI, unlike the kernel's HZ).
const USER_HZ: u64 = 100;

/// `utime + stime` from a `/proc/<pid>/stat` line. The process name (field 2) may
/// hold spaces and parentheses, so fields are counted after its closing `)`.
fn cpu_time(stat: &str) -> Option<Duration> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11); // fields 3..=13
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 1000 / USER_HZ))
}

/// `VmRSS` from `/proc/<pid>/status`, in bytes.
fn resident_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_read_after_the_process_name() {
        let stat = "4242 (push lab (x)) S 1 4242 4242 0 -1 4194560 5 0 0 0 250 37 0 0 20 0 \
                    3 0 100 1000000 500 18446744073709551615";
        assert_eq!(cpu_time(stat), Some(Duration::from_millis(2870)));
    }

    #[test]
    fn resident_memory_is_read_in_bytes() {
        let status = "Name:\tpushlab\nVmPeak:\t  9000 kB\nVmRSS:\t  1234 kB\nThreads:\t3\n";
        assert_eq!(resident_bytes(status), Some(1234 * 1024));
    }

    #[test]
    fn this_process_can_be_sampled() {
        let sample = Process {
            pid: std::process::id(),
        }
        .sample()
        .unwrap();
        assert!(sample.rss_bytes > 0);
    }

    #[test]
    fn the_listening_line_gives_the_address() {
        assert_eq!(
            listening_address("pushlab listening on http://127.0.0.1:41234"),
            Some("127.0.0.1:41234".parse().unwrap())
        );
        assert_eq!(
            listening_address("pushlab listening on https://127.0.0.1:41234"),
            Some("127.0.0.1:41234".parse().unwrap())
        );
        assert_eq!(listening_address("something else"), None);
    }

    #[test]
    fn only_loopback_servers_are_targets() {
        assert!(Target::running("http://127.0.0.1:8080", None).is_ok());
        assert!(Target::running("http://127.0.0.1:8080/", Some(1)).is_ok());
        assert!(Target::running("http://10.0.0.1:8080", None).is_err());
        assert!(Target::running("https://127.0.0.1:8080", None).is_err());
        assert!(Target::running("http://localhost:8080", None).is_err());
    }
}
