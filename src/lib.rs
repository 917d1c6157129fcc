//! pushlab serves one chat through the four ways a web server can push to a browser
//! (short polling, long polling, Server-Sent Events and WebSocket) at once, all fed by
//! one [`hub::Hub`], so that they can be watched side by side and measured.
//!
//! Arrows point one way: [`transport`] → [`hub`] → store. The hub knows nothing of
//! HTTP; the transports know nothing of storage.

pub mod api;
#[cfg(feature = "bench")]
pub mod bench;
pub mod config;
pub mod error;
pub mod extract;
pub mod hub;
pub mod limits;
pub mod message;
pub mod metrics;
pub mod origin;
pub mod presence;
pub mod protocol;
pub mod quic;
pub mod room;
pub mod server;
pub mod state;
pub mod stats;
pub mod transport;
pub mod web;

use std::future::Future;
use std::io;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get};
use tokio::net::TcpListener;
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::config::Config;
use crate::state::MAX_BODY_BYTES;
use crate::transport::{long_poll, short_poll, sse, websocket};

pub use state::AppState;

/// The paths of one room under `prefix`: `/api` for the lobby (the paths from before
/// rooms), `/api/rooms/{room}` for any room.
fn room_paths(router: Router<Arc<AppState>>, prefix: &str) -> Router<Arc<AppState>> {
    router
        .route(
            &format!("{prefix}/messages"),
            get(short_poll::poll).post(api::publish),
        )
        .route(
            &format!("{prefix}/messages/long-poll"),
            get(long_poll::long_poll),
        )
        .route(&format!("{prefix}/events"), get(sse::events))
        .route(&format!("{prefix}/ws"), get(websocket::upgrade))
        .route(&format!("{prefix}/presence"), get(api::presence))
}

/// The whole HTTP API and the page.
pub fn app(state: Arc<AppState>) -> Router {
    let cors = state.origins.cors();
    let web = web::router(state.config.web_dir.clone());
    let body_timeout = state.config.body_timeout;
    let api = Router::new();
    let api = room_paths(api, "/api"); // the lobby's, as before rooms
    let api = room_paths(api, "/api/rooms/{room}")
        .route("/api/rooms", get(api::rooms))
        .route("/api/stats", get(api::stats))
        .route(
            "/api/webtransport/certificate-hash",
            get(api::webtransport_certificate),
        )
        .route("/healthz", get(api::healthz))
        .route("/metrics", get(metrics::metrics))
        .route("/api/{*rest}", any(web::not_found))
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state);
    let api = match cors {
        Some(cors) => api.layer(cors),
        None => api,
    };
    api.fallback_service(web)
        .layer(RequestBodyTimeoutLayer::new(body_timeout))
        .layer(
            // One line per request at info level: with `--log-format json`, the
            // structured request log.
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
}

/// Opens the store, then serves until `shutdown` completes; see [`run`].
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let state = AppState::open(config).await.map_err(io::Error::other)?;
    run(listener, Arc::new(state), shutdown).await
}

/// Serves [`app`] on `listener` until `shutdown` completes, then shuts down gracefully
/// (see [`server::run`]) and returns. With `--webtransport`, serves WebTransport
/// sessions on UDP at the listener's address too ([`quic`]).
pub async fn run(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let quic = match state.webtransport {
        Some(_) => {
            let addr = listener.local_addr()?;
            let quic = quic::QuicListener::bind(addr, &state).map_err(|error| {
                io::Error::new(
                    error.kind(),
                    format!("cannot listen on UDP {addr}: {error}"),
                )
            })?;
            Some(tokio::spawn(quic.run(state.clone())))
        }
        None => None,
    };
    let served = server::run(listener, app(state.clone()), state, shutdown).await;
    if let Some(quic) = quic {
        let _ = quic.await;
    }
    served
}
