//! Every flag of `pushlab`, its default and its environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::hub::StoreSpec;

/// How to run the server. `pushlab --help` prints this.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "pushlab",
    version,
    about = "One chat served through short polling, long polling, Server-Sent Events and \
             WebSocket at once, to see and measure how a server pushes to a browser."
)]
pub struct Config {
    /// Address to listen on. Use 0.0.0.0:8080 to accept other machines; port 0 picks
    /// a free port (the URL printed at start says which).
    #[arg(long, env = "PUSHLAB_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,

    /// Serve HTTPS, with ALPN offering HTTP/2 (`h2`) and HTTP/1.1, instead of plain
    /// HTTP/1.1. Without --tls-cert/--tls-key, a self-signed certificate is made at
    /// start for the listen address and `localhost`, and its SHA-256 fingerprint is
    /// printed (browsers warn about it; see README).
    #[arg(long, env = "PUSHLAB_TLS")]
    pub tls: bool,

    /// The certificate chain to serve, PEM (with --tls-key; implies --tls).
    #[arg(long, env = "PUSHLAB_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The certificate's private key, PEM (with --tls-cert; implies --tls).
    #[arg(long, env = "PUSHLAB_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Most streams (requests in progress) one HTTP/2 connection may have open at
    /// once; a client opening more has them refused (RST_STREAM REFUSED_STREAM).
    #[arg(long, env = "PUSHLAB_H2_MAX_STREAMS", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub h2_max_streams: u32,

    /// How many messages the hub keeps per room. Clients resuming from an older cursor
    /// get a reset instead of the messages they missed.
    #[arg(long, env = "PUSHLAB_HISTORY", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub history: u64,

    /// Most rooms that hold messages at once; a first message to a new room past it
    /// gets 503. Rooms that are only being watched do not count (see
    /// docs/reliability.md).
    #[arg(long, env = "PUSHLAB_MAX_ROOMS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_rooms: u64,

    /// Where the chat's log lives: `memory` (nothing on disk), `sqlite:PATH` (history
    /// and ids survive restarts) or `redis://HOST:PORT` (several instances share one
    /// chat). See docs/scaling.md.
    #[arg(long, env = "PUSHLAB_STORE", default_value = "memory")]
    pub store: StoreSpec,

    /// Log filter: error, warn, info, debug, trace, or a tracing directive such as
    /// "pushlab=debug,tower_http=debug".
    #[arg(long, env = "PUSHLAB_LOG", default_value = "info")]
    pub log: String,

    /// Log lines as human-readable text, or as one JSON object per line for machines.
    #[arg(long, env = "PUSHLAB_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Serve the page from this folder instead of the copy built into the binary
    /// (to edit web/ without rebuilding).
    #[arg(long, env = "PUSHLAB_WEB_DIR")]
    pub web_dir: Option<PathBuf>,

    /// Extra origins allowed to open the WebSocket and, through CORS, to call the HTTP
    /// API from their pages (e.g. `https://example.org`). Repeatable. Same-origin pages
    /// and non-browser clients (no Origin header) are always allowed.
    #[arg(
        long = "allow-origin",
        env = "PUSHLAB_ALLOW_ORIGIN",
        value_delimiter = ','
    )]
    pub allow_origins: Vec<String>,

    /// Host names this server answers to besides the loopback names (`localhost`,
    /// `127.x.y.z`, `[::1]`, any port), e.g. `chat.example.org` behind a proxy.
    /// Repeatable. Other names get 421, against DNS rebinding; the hosts of
    /// `--allow-origin` are allowed too. On a non-loopback `--addr` (such as 0.0.0.0),
    /// any name is served unless this flag is given.
    #[arg(long = "allow-host", env = "PUSHLAB_ALLOW_HOST", value_delimiter = ',')]
    pub allow_hosts: Vec<String>,

    /// Messages each client IP may publish per second (HTTP and WebSocket together),
    /// refilled continuously; 0 turns the limit off.
    #[arg(long, env = "PUSHLAB_PUBLISH_RATE", default_value_t = 20)]
    pub publish_rate: u32,

    /// How many messages a client IP may publish in a burst before the rate applies.
    #[arg(long, env = "PUSHLAB_PUBLISH_BURST", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub publish_burst: u32,

    /// Most connections held open at once (SSE streams, WebSockets and held long
    /// polls together); past it, 503 with Retry-After. 0 = no cap. Each is a file
    /// descriptor: the server raises its open-files limit to the hard limit at start,
    /// and warns when this is above even that.
    #[arg(long, env = "PUSHLAB_MAX_CONNECTIONS", default_value_t = 20_000)]
    pub max_connections: usize,

    /// Most connections held open at once by one client IP. 0 = no cap.
    #[arg(long, env = "PUSHLAB_MAX_CONNECTIONS_PER_IP", default_value_t = 256)]
    pub max_connections_per_ip: usize,

    /// Seconds between keep-alive comments on a quiet SSE stream (proxies and some
    /// browsers cut streams that stay silent near 30 s).
    #[arg(long, env = "PUSHLAB_SSE_KEEP_ALIVE", default_value = "15", value_parser = seconds)]
    pub sse_keep_alive: Duration,

    /// Seconds between WebSocket pings. A client that sends nothing at all (no pong,
    /// no frame) within --ws-pong-timeout of a ping is dropped as gone.
    #[arg(long, env = "PUSHLAB_WS_PING", default_value = "25", value_parser = seconds)]
    pub ws_ping: Duration,

    /// Seconds a WebSocket client has to answer a ping.
    #[arg(long, env = "PUSHLAB_WS_PONG_TIMEOUT", default_value = "10", value_parser = seconds)]
    pub ws_pong_timeout: Duration,

    /// Seconds a WebSocket client may leave a frame unread (its socket full) before it
    /// is closed as too slow (close 1013); it can reconnect with its cursor. Any
    /// connection (SSE included) whose socket stays full for twice this is cut.
    #[arg(long, env = "PUSHLAB_SLOW_CLIENT_TIMEOUT", default_value = "10", value_parser = seconds)]
    pub slow_client_timeout: Duration,

    /// Seconds a new connection has to send its first request's headers (against
    /// slowloris, and sockets that connect and stay silent).
    #[arg(long, env = "PUSHLAB_HEADER_TIMEOUT", default_value = "10", value_parser = seconds)]
    pub header_timeout: Duration,

    /// Seconds a kept-alive connection may wait for its next request (and send its
    /// headers) before it is closed.
    #[arg(long, env = "PUSHLAB_KEEP_ALIVE_TIMEOUT", default_value = "30", value_parser = seconds)]
    pub keep_alive_timeout: Duration,

    /// Most connections kept open while waiting for a request (new ones, and kept-alive
    /// ones between requests); past it, the one idle longest is closed. Default: a
    /// quarter of the open-files limit (RLIMIT_NOFILE), leaving the rest to requests
    /// and held connections.
    #[arg(long, env = "PUSHLAB_MAX_IDLE_CONNECTIONS",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_idle_connections: Option<u64>,

    /// Seconds a client may take to send a request's whole body, counted from the end
    /// of its headers.
    #[arg(long, env = "PUSHLAB_BODY_TIMEOUT", default_value = "10", value_parser = seconds)]
    pub body_timeout: Duration,

    /// Also serve WebTransport (HTTP/3 over QUIC) on UDP at the same address and port
    /// number, with a self-signed certificate valid 14 days and renewed every 7 (its
    /// hash at GET /api/webtransport/certificate-hash, for the page's
    /// `serverCertificateHashes`). See docs/api.md.
    #[arg(long, env = "PUSHLAB_WEBTRANSPORT")]
    pub webtransport: bool,

    /// The wire tap (`GET /api/tap/{id}`): the page's wire log shows the real bytes of
    /// the page's own connections. `auto` turns it on when listening on a loopback
    /// address only, and off otherwise (see docs/reliability.md).
    #[arg(long, env = "PUSHLAB_WIRE_TAP", value_enum, default_value_t = AutoOnOff::Auto)]
    pub wire_tap: AutoOnOff,

    /// The fault lab (`/api/lab/{id}/…`): the page injects network faults into its own
    /// connections (or, asked to, everyone's): cut them, block a transport, buffer a
    /// stream, cut it when idle, slow it down. `auto` turns it on when listening on a
    /// loopback address only, and off otherwise (see docs/reliability.md).
    #[arg(long, env = "PUSHLAB_FAULT_LAB", value_enum, default_value_t = AutoOnOff::Auto)]
    pub fault_lab: AutoOnOff,

    /// Seconds to wait at shutdown for connections to finish before exiting anyway.
    #[arg(long, env = "PUSHLAB_SHUTDOWN_GRACE", default_value = "5", value_parser = seconds)]
    pub shutdown_grace: Duration,
}

impl Config {
    /// Whether to serve HTTPS: `--tls`, or a certificate given.
    pub fn serves_tls(&self) -> bool {
        self.tls || self.tls_cert.is_some()
    }
}

/// A duration in seconds, fractions allowed ("25", "0.2").
fn seconds(raw: &str) -> Result<Duration, String> {
    raw.parse::<f64>()
        .ok()
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{raw:?} is not a positive number of seconds"))
}

/// The shape of log lines (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// `--wire-tap` and `--fault-lab`: what a classroom wants on a laptop and an operator
/// does not want on a public address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AutoOnOff {
    /// On when the server listens on a loopback address only.
    Auto,
    On,
    Off,
}

impl AutoOnOff {
    /// Whether it is on, for a server listening on a loopback address or not.
    pub fn is_on(self, loopback: bool) -> bool {
        match self {
            Self::On => true,
            Self::Off => false,
            Self::Auto => loopback,
        }
    }
}
