//! Accepting connections and shutting down, with the timeouts a public server needs.
//!
//! `axum::serve` would do for a demo, but it sets no timer, so a client could take
//! forever to send its request headers (slowloris). This loop is axum's, with:
//!
//! - HTTP/1.1 only on plain TCP (what browsers speak to a plain-HTTP server), with
//!   hyper's header-read timeout switched on; with `--tls`, a TLS handshake first
//!   ([`crate::tls`], within the header timeout), then HTTP/2 or HTTP/1.1 as the
//!   handshake's ALPN decided, HTTP/2 with its own limits ([`http2`]);
//! - a write deadline on every socket (`WriteDeadline`): a client that stops reading
//!   until its socket is full is disconnected, so a stalled SSE stream or WebSocket
//!   cannot hold its connection, task and buffers forever;
//! - the client's address attached to each request, for the per-IP limits;
//! - a bounded graceful shutdown:
//!   1. stop accepting;
//!   2. cancel [`AppState::shutdown`]: held long polls answer at once, SSE streams end,
//!      WebSockets send close 1001 ("going away");
//!   3. wait, at most `--shutdown-grace`, for connections and sockets to finish.

mod http2;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;
use tokio_util::either::Either;
use tower::ServiceExt;

use crate::config::Config;
use crate::stats::HttpVersion;
use crate::tls::Tls;
use crate::{AppState, app};

/// The address of the client that sent a request (set by [`run`]).
pub type ClientAddr = ConnectInfo<SocketAddr>;

/// Opens the store, then serves until `shutdown` completes; see [`run`].
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let tls = Tls::from_config(&config).map_err(io::Error::other)?;
    let state = AppState::open(config).await.map_err(io::Error::other)?;
    run(listener, Arc::new(state), tls, shutdown).await
}

/// Serves `state` on `listener` (HTTPS if `tls` is given) until `shutdown` completes,
/// then shuts down gracefully and returns.
pub async fn run(
    listener: TcpListener,
    state: Arc<AppState>,
    tls: Option<Tls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let config = &state.config;
    let mut http1 = Builder::new(TokioExecutor::new()).http1_only();
    http1
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout);
    let builders = Arc::new(Builders {
        http1,
        http2: http2::builder(config),
    });
    let handshake_deadline = config.header_timeout;
    let tls = tls.map(Arc::new);
    let write_deadline = config.slow_client_timeout * 2;
    let grace = config.shutdown_grace;
    let app = app(state.clone());
    let connections = GracefulShutdown::new();
    let mut accepted: u64 = 0;

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
        accepted += 1;
        let id = accepted;
        let mut io = WriteDeadline::new(stream, write_deadline, state.clone());
        let (builders, tls, watcher) = (builders.clone(), tls.clone(), connections.watcher());
        let (app, state) = (app.clone(), state.clone());
        tokio::spawn(async move {
            // The seam between plain HTTP and HTTPS: TLS, if any, picks the HTTP.
            let (io, http) = match tls {
                None => {
                    io.count_as(HttpVersion::Http1);
                    (Either::Left(io), HttpVersion::Http1)
                }
                Some(tls) => match tls.handshake(io, handshake_deadline).await {
                    Ok((mut io, version)) => {
                        io.get_mut().0.count_as(version);
                        (Either::Right(io), version)
                    }
                    Err(error) => return tracing::debug!(%error, "TLS handshake failed"),
                },
            };
            let carrier = Carrier { id, http };
            let service = app.map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(remote));
                request.extensions_mut().insert(carrier);
                request.map(Body::new)
            });
            let service = TowerToHyperService::new(service);
            let ended = builders.serve(http, io, service, watcher).await;
            if let Err(error) = ended {
                if http == HttpVersion::Http2 && http2::unanswered_ping(&*error) {
                    state.stalls.0.fetch_add(1, Relaxed);
                }
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

/// The TCP connection a request came on: its number (in order of acceptance) and the
/// HTTP it speaks. On HTTP/2 every request of a page shares one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Carrier {
    pub id: u64,
    pub http: HttpVersion,
}

/// Counts a TCP connection as open, by its HTTP, until dropped.
struct OpenConnection(Arc<AppState>, HttpVersion);

impl OpenConnection {
    fn new(state: &Arc<AppState>, http: HttpVersion) -> Self {
        let counters = state.connections.of(http);
        counters.accepted.fetch_add(1, Relaxed);
        counters.open.fetch_add(1, Relaxed);
        Self(state.clone(), http)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connections.of(self.1).open.fetch_sub(1, Relaxed);
    }
}

/// How connections are served, per HTTP version.
struct Builders {
    http1: Builder<TokioExecutor>,
    http2: Builder<TokioExecutor>,
}

impl Builders {
    /// Serves one connection until it ends; `watcher` shuts it down gracefully when
    /// the server does (HTTP/1.1: after the request in progress; HTTP/2: GOAWAY, then
    /// the streams in progress finish).
    async fn serve<I, S>(
        &self,
        version: HttpVersion,
        io: I,
        service: S,
        watcher: Watcher,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: hyper::service::Service<Request<Incoming>, Response = axum::response::Response>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let builder = match version {
            HttpVersion::Http1 => &self.http1,
            HttpVersion::Http2 => &self.http2,
        };
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
        watcher.watch(connection).await
    }
}

/// Connections cut because the client stopped reading (see `WriteDeadline`).
#[derive(Debug, Default)]
pub struct Stalls(AtomicU64);

impl Stalls {
    pub fn count(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// A socket whose writes may not stay blocked longer than `limit`. A write blocks when
/// the client's receive window is full: it stopped reading. After `limit` without any
/// progress the write fails and hyper drops the connection. It is the backstop for
/// every connection; the WebSocket notices a stuck client earlier, after
/// `--slow-client-timeout`, to try to say why (close 1013).
///
/// It also counts the socket among the open connections of its HTTP version once that
/// is known, for as long as the socket lives (an upgraded WebSocket outlives its HTTP
/// connection).
struct WriteDeadline {
    io: TcpStream,
    limit: Duration,
    /// Running while a write is blocked.
    blocked: Option<Pin<Box<Sleep>>>,
    state: Arc<AppState>,
    _open: Option<OpenConnection>,
}

impl WriteDeadline {
    fn new(io: TcpStream, limit: Duration, state: Arc<AppState>) -> Self {
        Self {
            io,
            limit,
            blocked: None,
            state,
            _open: None,
        }
    }

    /// Counts this socket as an open connection speaking `http`.
    fn count_as(&mut self, http: HttpVersion) {
        self._open = Some(OpenConnection::new(&self.state, http));
    }

    /// Called with the inner write's result: progress clears the deadline, a blocked
    /// write starts it, and a deadline that passes turns into an error.
    fn watch<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.blocked = None;
            return poll;
        }
        let limit = self.limit;
        let deadline = self
            .blocked
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        ready!(deadline.as_mut().poll(cx));
        self.state.stalls.0.fetch_add(1, Relaxed);
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client stopped reading",
        )))
    }
}

impl AsyncRead for WriteDeadline {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for WriteDeadline {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write(cx, buf);
        self.watch(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.watch(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.io).poll_flush(cx);
        self.watch(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
