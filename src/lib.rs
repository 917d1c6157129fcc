//! pushlab serves one chat through the four ways a web server can push to a browser
//! (short polling, long polling, Server-Sent Events and WebSocket) at once, all fed by
//! one [`hub::Hub`], so that they can be watched side by side and measured.
//!
//! Arrows point one way: [`transport`] → [`hub`] → store. The hub knows nothing of
//! HTTP; the transports know nothing of storage.

pub mod api;
pub mod bench;
pub mod config;
pub mod error;
pub mod extract;
pub mod hub;
pub mod message;
pub mod presence;
pub mod stats;
pub mod transport;
pub mod web;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::trace::TraceLayer;

use crate::config::Config;
use crate::hub::{Hub, MemoryStore};
use crate::presence::Presence;
use crate::stats::Stats;
use crate::transport::{long_poll, short_poll, sse, websocket};

/// Largest request body accepted (a message is at most 2000 characters).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// What every handler shares.
pub struct AppState {
    pub hub: Hub,
    pub stats: Stats,
    pub presence: Presence,
    /// Cancelled when the server begins shutting down: held long polls answer, SSE
    /// streams end and WebSockets close with 1001.
    pub shutdown: CancellationToken,
}

impl AppState {
    pub fn new(config: &Config) -> Self {
        Self {
            hub: Hub::new(MemoryStore::new(config.history as usize)),
            stats: Stats::default(),
            presence: Presence::default(),
            shutdown: CancellationToken::new(),
        }
    }
}

/// The whole HTTP API and the page.
pub fn app(state: Arc<AppState>, config: &Config) -> Router {
    Router::new()
        .route("/api/messages", get(short_poll::poll).post(api::publish))
        .route("/api/messages/long-poll", get(long_poll::long_poll))
        .route("/api/events", get(sse::events))
        .route("/api/ws", get(websocket::upgrade))
        .route("/api/stats", get(api::stats))
        .route("/api/presence", get(api::presence))
        .route("/healthz", get(api::healthz))
        .route("/api/{*rest}", axum::routing::any(web::not_found))
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
        .fallback_service(web::router(config.web_dir.clone()))
        .layer(TraceLayer::new_for_http())
}

/// Serves until `shutdown` completes, then stops accepting, lets held requests and
/// streams finish (they are told to, through [`AppState::shutdown`]) and returns.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let state = Arc::new(AppState::new(&config));
    let app = app(state.clone(), &config);
    let token = state.shutdown.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            token.cancel();
        })
        .await
}
