//! The `pushlab` binary: flags → logging → certificate (with `--tls`) → open the store
//! → listen → [`pushlab::run`] until Ctrl-C or SIGTERM; or, as `pushlab bench`, the
//! load generator of [`pushlab::bench`].

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use pushlab::AppState;
use pushlab::config::{Config, LogFormat};
use pushlab::tls::Tls;
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;

/// One chat served through short polling, long polling, Server-Sent Events and WebSocket
/// at once, to see and measure how a server pushes to a browser. `pushlab [flags]`
/// serves it; `pushlab bench` measures the four.
#[derive(Parser)]
#[command(name = "pushlab", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: Config,
}

#[derive(Subcommand)]
enum Command {
    #[cfg(feature = "bench")]
    /// Measure the four transports with real clients on this machine (docs/comparison.md).
    Bench(pushlab::bench::BenchArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    #[cfg(feature = "bench")]
    if let Some(Command::Bench(args)) = cli.command {
        let clean = pushlab::bench::run(args).await?;
        return Ok(if clean {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let config = cli.serve;
    let filter = EnvFilter::try_new(&config.log).context("invalid --log filter")?;
    // Colours only for a person at a terminal: escape codes in a log file are noise,
    // and cost a fifth of a request log line.
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal());
    match config.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    // Before anything sizes itself from it (the idle-connection cap's default).
    let open_files = pushlab::limits::raise_open_files();
    // Listen for the signals first, so that one arriving while the store opens still
    // shuts down gracefully.
    let shutdown = shutdown_signal()?;
    let addr = config.addr;
    let tls = Tls::from_config(&config)?;
    let state = AppState::open(config).await?;
    let listener = pushlab::listen(&state.config)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let scheme = pushlab::tls::scheme(tls.as_ref());
    println!("pushlab listening on {scheme}://{}", listener.local_addr()?);
    if let Some(tls) = &tls {
        let origin = if tls.is_self_signed() {
            "self-signed"
        } else {
            "from --tls-cert"
        };
        println!("TLS certificate ({origin}) SHA-256 {}", tls.fingerprint());
    }
    if state.webtransport.is_some() {
        println!(
            "WebTransport on UDP {} (self-signed certificate; the page fetches its hash)",
            listener.local_addr()?
        );
    }
    // After the lines above, which scripts read first.
    if let Some(warning) = pushlab::limits::open_files_warning(&state.config, open_files) {
        tracing::warn!("{warning}");
    }
    pushlab::run(listener, Arc::new(state), tls, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM; the handlers are installed at once.
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("shutting down");
    })
}
