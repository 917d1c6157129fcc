//! Accepting connections and shutting down, with the timeouts a public server needs.
//!
//! `axum::serve` would do for a demo, but it sets no timer, so a client could take
//! forever to send its request headers (slowloris). This loop is axum's, with hyper's
//! header-read timeout switched on, the client's address attached to each request (for
//! the per-IP limits), and a bounded graceful shutdown:
//!
//! 1. stop accepting;
//! 2. cancel [`AppState::shutdown`]: held long polls answer at once, SSE streams end,
//!    WebSockets send close 1001 ("going away");
//! 3. wait, at most `--shutdown-grace`, for connections and sockets to finish.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::config::Config;
use crate::{AppState, app};

/// Opens the store (an error if it cannot be reached), serves until `shutdown`
/// completes, then shuts down gracefully and returns.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let grace = config.shutdown_grace;
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout);
    let state = AppState::open(config)
        .await
        .map_err(std::io::Error::other)?;
    let state = Arc::new(state);
    let app = app(state.clone());
    let connections = GracefulShutdown::new();

    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, most likely: back off, don't spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = app
            .clone()
            .map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(remote));
                request.map(Body::new)
            });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service))
            .into_owned();
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }

    drop(listener);
    state.shutdown.cancel();
    state.sockets.close();
    let finished = async {
        connections.shutdown().await;
        state.sockets.wait().await;
    };
    if tokio::time::timeout(grace, finished).await.is_err() {
        tracing::warn!("connections still open after {grace:?}; exiting anyway");
    }
    Ok(())
}

/// The address of the client that sent a request (set by [`serve`]).
pub type ClientAddr = ConnectInfo<SocketAddr>;
