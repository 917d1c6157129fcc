//! Every flag of `pushlab`, its default and its environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

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

    /// How many messages the hub keeps. Clients resuming from an older cursor get a
    /// reset instead of the messages they missed.
    #[arg(long, env = "PUSHLAB_HISTORY", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub history: u64,

    /// Log filter: error, warn, info, debug, trace, or a tracing directive such as
    /// "pushlab=debug,tower_http=debug".
    #[arg(long, env = "PUSHLAB_LOG", default_value = "info")]
    pub log: String,

    /// Serve the page from this folder instead of the copy built into the binary
    /// (to edit web/ without rebuilding).
    #[arg(long, env = "PUSHLAB_WEB_DIR")]
    pub web_dir: Option<PathBuf>,
}
