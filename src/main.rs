//! The `pushlab` binary: flags → logging → [`pushlab::serve`] until Ctrl-C or SIGTERM;
//! or, as `pushlab bench`, the load generator of [`pushlab::bench`].

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use pushlab::config::{Config, LogFormat};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

/// `pushlab [flags]` serves; `pushlab bench [options]` measures.
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
    /// Measure the four transports with real clients on this machine (docs/comparison.md).
    Bench(pushlab::bench::BenchArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
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
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match config.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    let listener = TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("cannot listen on {}", config.addr))?;
    println!("pushlab listening on http://{}", listener.local_addr()?);
    pushlab::serve(listener, config, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}
