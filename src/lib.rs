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
pub mod host;
pub mod hub;
pub mod limits;
pub mod message;
pub mod metrics;
pub mod origin;
pub mod presence;
pub mod server;
pub mod stats;
pub mod tap;
pub mod tls;
pub mod transport;
pub mod web;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{any, get};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::util::MapRequestLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnFailure, DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::config::Config;
use crate::host::HostPolicy;
use crate::hub::{Hub, StoreError};
use crate::limits::{ConnectionCaps, PublishRate, body_deadline};
use crate::origin::OriginPolicy;
use crate::presence::Presence;
use crate::stats::{ByHttp, Stats, TcpConnections};
use crate::tap::Taps;
use crate::transport::{long_poll, short_poll, sse, websocket};

use server::{IdleConnections, Stalls};
pub use server::{run, serve};

/// Largest request body accepted, and largest WebSocket message (a message is at most
/// 2000 characters, so this leaves room for any encoding of it).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// What every handler shares.
pub struct AppState {
    pub config: Config,
    pub hub: Hub,
    pub stats: Stats,
    pub presence: Presence,
    pub publish_rate: PublishRate,
    pub caps: ConnectionCaps,
    pub origins: OriginPolicy,
    pub hosts: HostPolicy,
    /// Open connections waiting for a request.
    pub idle: Arc<IdleConnections>,
    /// Cancelled when the server begins shutting down: held long polls answer, SSE
    /// streams end and WebSockets close with 1001.
    pub shutdown: CancellationToken,
    /// Upgraded WebSockets, which outlive their HTTP request: shutdown waits for them
    /// to send their close frame.
    pub sockets: TaskTracker,
    /// Connections cut because their client stopped reading.
    pub stalls: Stalls,
    /// TCP connections, by the HTTP they speak.
    pub connections: ByHttp<TcpConnections>,
    /// The wire taps clients have open (see [`tap`]).
    pub taps: Arc<Taps>,
}

impl AppState {
    /// Opens the store `--store` names; fails, naming it, if it cannot be reached.
    pub async fn open(config: Config) -> Result<Self, StoreError> {
        Ok(Self {
            hub: Hub::open(&config.store, config.history as usize).await?,
            stats: Stats::default(),
            presence: Presence::default(),
            publish_rate: PublishRate::new(&config),
            caps: ConnectionCaps::new(&config),
            origins: OriginPolicy::new(&config.allow_origins),
            hosts: HostPolicy::new(&config),
            idle: Arc::new(IdleConnections::new(&config)),
            shutdown: CancellationToken::new(),
            sockets: TaskTracker::new(),
            stalls: Stalls::default(),
            connections: ByHttp::default(),
            taps: Arc::new(Taps::new(config.wire_tap, config.addr.ip().is_loopback())),
            config,
        })
    }
}

/// The whole HTTP API and the page.
pub fn app(state: Arc<AppState>) -> Router {
    let cors = state.origins.cors();
    let web = web::router(state.config.web_dir.clone());
    let body_timeout = state.config.body_timeout;
    let host_check = middleware::from_fn_with_state(state.clone(), host::check);
    let api = Router::new()
        .route("/api/messages", get(short_poll::poll).post(api::publish))
        .route("/api/messages/long-poll", get(long_poll::long_poll))
        .route("/api/events", get(sse::events))
        // GET: the HTTP/1.1 Upgrade; CONNECT: HTTP/2's extended CONNECT (RFC 8441).
        .route(
            "/api/ws",
            get(websocket::upgrade).connect(websocket::upgrade),
        )
        .route("/api/stats", get(api::stats))
        .route("/api/presence", get(api::presence))
        .route("/healthz", get(api::healthz))
        .route("/metrics", get(metrics::metrics))
        .route("/api/tap/{id}", get(tap::read))
        .route("/api/{*rest}", any(web::not_found))
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(state.clone(), tap::attach))
        .with_state(state);
    let api = match cors {
        Some(cors) => api.layer(cors),
        None => api,
    };
    api.fallback_service(web)
        .layer(MapRequestLayer::new(body_deadline(body_timeout)))
        .layer(host_check)
        .layer(
            // One line per request at info level: with `--log-format json`, the
            // structured request log. The 5xx pushlab answers are refusals (no room,
            // store unavailable), counted in /metrics: an ERROR line for each would
            // let clients grow the log at will.
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO))
                .on_failure(DefaultOnFailure::new().level(Level::DEBUG)),
        )
}
