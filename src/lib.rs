//! pushlab serves a chat through the five ways a web server can push to a browser
//! (short polling, long polling, Server-Sent Events, WebSocket and, with
//! `--webtransport`, WebTransport) at once, all fed by one [`hub::Hub`], so that they
//! can be watched side by side and measured. The chat has rooms ([`room`]): every path
//! exists once per room, and the paths without one are the lobby's. How the modules
//! fit together: `docs/architecture.md`.
//!
//! Arrows point one way: [`transport`] → [`hub`] → store. The hub knows nothing of
//! HTTP; the transports know nothing of storage.

pub mod api;
#[cfg(feature = "bench")]
pub mod bench;
pub mod config;
pub mod error;
pub mod extract;
pub mod host;
pub mod hub;
pub mod lab;
pub mod limits;
pub mod message;
pub mod metrics;
pub mod origin;
pub mod presence;
pub mod protocol;
pub mod quic;
pub mod request_log;
pub mod room;
pub mod server;
pub mod state;
pub mod stats;
pub mod tap;
pub mod tls;
pub mod transport;
pub mod web;

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::routing::{MethodRouter, any, get, post, put};
use tokio::net::TcpListener;
use tower::Layer;
use tower::util::MapRequestLayer;

use crate::config::Config;
use crate::host::{HostCheck, HostCheckLayer};
use crate::lab::layer::{Faulted, LabLayer};
use crate::limits::body_deadline;
use crate::message::MAX_BODY_BYTES;
use crate::protocol::Transport;
use crate::request_log::{RequestLog, RequestLogLayer};
use crate::tap::{Attach, AttachLayer};
use crate::tls::Tls;
use crate::transport::{long_poll, short_poll, sse, websocket};

pub use state::AppState;

/// The paths of one room under `prefix`: `/api` for the lobby (the paths from before
/// rooms), `/api/rooms/{room}` for any room.
fn room_paths(
    mut router: Router<Arc<AppState>>,
    prefix: &str,
    body_timeout: Duration,
) -> Router<Arc<AppState>> {
    for transport in Transport::ALL {
        if let Some(handler) = handler(transport, body_timeout) {
            let path = format!("{prefix}/{}", transport.endpoint());
            router = router.route(&path, handler);
        }
    }
    router.route(&format!("{prefix}/presence"), get(api::presence))
}

/// Each transport's HTTP handler (a room's messages also take a `POST`, the one
/// request with a body to read: its size limit and deadline are its own, not a wrapper
/// around every other request). WebTransport has none: its sessions arrive over QUIC,
/// at the same path ([`quic`]).
fn handler(transport: Transport, body_timeout: Duration) -> Option<MethodRouter<Arc<AppState>>> {
    let publish = api::publish
        .layer(MapRequestLayer::new(body_deadline(body_timeout)))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    Some(match transport {
        Transport::ShortPoll => get(short_poll::poll).post(publish),
        Transport::LongPoll => get(long_poll::long_poll),
        Transport::Sse => get(sse::events),
        // GET: HTTP/1.1's Upgrade; CONNECT: HTTP/2's extended CONNECT (RFC 8441).
        Transport::Websocket => get(websocket::upgrade).connect(websocket::upgrade),
        Transport::Webtransport => return None,
    })
}

/// The fault lab's paths (see [`lab`]).
fn lab_paths(lab: Arc<lab::Lab>) -> Router<Arc<AppState>> {
    let faults = Router::new()
        .route("/api/lab/{id}", get(lab::show).delete(lab::clear))
        .route("/api/lab/{id}/{transport}", put(lab::set))
        .route("/api/lab/{id}/{transport}/cut", post(lab::cut))
        .with_state(lab);
    Router::new()
        .route("/api/lab/{id}/restart", post(lab::restart))
        .merge(faults)
}

/// The whole HTTP API and the page, behind the host check, with its request log.
pub type App = RequestLog<HostCheck<Attach<Faulted<Router>>>>;

/// The app: see [`App`].
pub fn app(state: Arc<AppState>) -> App {
    let cors = state.origins.cors();
    let web = web::router(state.config.web_dir.clone());
    let body_timeout = state.config.body_timeout;
    let host_check = HostCheckLayer(state.hosts.clone());
    let tap = AttachLayer(state.taps.clone());
    let lab = LabLayer(state.lab.clone());
    let api = Router::new()
        .route(
            "/api/tap/{id}",
            get(tap::read).with_state(state.taps.clone()),
        )
        .merge(lab_paths(state.lab.clone()));
    let api = room_paths(api, "/api", body_timeout); // the lobby's, as before rooms
    let api = room_paths(api, "/api/rooms/{room}", body_timeout)
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
        .with_state(state);
    let api = match cors {
        Some(cors) => api.layer(cors),
        None => api,
    };
    // The wire tap's attachment (API requests only), the host check and the request
    // log wrap the whole router once (`Router::layer` would wrap every route).
    // Pollers ask again and again: their answers are logged at debug, not info (see
    // `request_log`).
    // The fault lab sits inside the tap, so that the tap shows what the lab did.
    let app = host_check.layer(tap.layer(lab.layer(api.fallback_service(web))));
    let routine = &["/api/messages", "/api/messages/long-poll"];
    RequestLogLayer::routine(routine).layer(app)
}

/// Listens for HTTP on `config.addr`. With `--webtransport` the same port number is
/// needed on UDP for QUIC: when the port is left to the kernel (`:0`), it picks TCP
/// ports until one is free on UDP too (QUIC clients hold UDP ports from the same range).
pub async fn listen(config: &Config) -> io::Result<TcpListener> {
    let tries = if config.webtransport && config.addr.port() == 0 {
        100
    } else {
        1
    };
    for _ in 1..tries {
        let listener = TcpListener::bind(config.addr).await?;
        if std::net::UdpSocket::bind(listener.local_addr()?).is_ok() {
            return Ok(listener);
        }
    }
    TcpListener::bind(config.addr).await
}

/// Makes the certificate (with `--tls`) and opens the store, then serves until
/// `shutdown` completes; see [`run`].
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let tls = Tls::from_config(&config).map_err(io::Error::other)?;
    let state = AppState::open(config).await.map_err(io::Error::other)?;
    run(listener, Arc::new(state), tls, shutdown).await
}

/// Serves [`app`] on `listener` (HTTPS if `tls` is given) until `shutdown` completes,
/// then shuts down gracefully (see [`server::run`]) and returns. With `--webtransport`,
/// serves WebTransport sessions on UDP at the listener's address too ([`quic`]).
pub async fn run(
    listener: TcpListener,
    state: Arc<AppState>,
    tls: Option<Tls>,
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
    let served = server::run(listener, app(state.clone()), state, tls, shutdown).await;
    if let Some(quic) = quic {
        let _ = quic.await;
    }
    served
}
