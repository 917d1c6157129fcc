//! Accepting connections and shutting down, with the limits a public server needs.
//!
//! `axum::serve` would do for a demo, but it sets no timer, so a client could take
//! forever to send its request, or open connections and never send anything. This
//! loop is axum's, with:
//!
//! - HTTP/1.1 only (what browsers speak to a plain-HTTP server, and what WebSocket
//!   upgrades need). hyper's HTTP/1 connection refuses the HTTP/2 preface of a
//!   cleartext HTTP/2 (h2c) client by closing the connection: HTTP/2 comes with
//!   HTTPS, where browsers use it;
//! - deadlines and a cap for idle connections, so that silent sockets cannot use up
//!   the file descriptors (see [`idle`]); when accepting fails anyway, the accept loop
//!   closes the oldest idle connection and backs off, logging once, not per attempt;
//! - a write deadline on every socket (`WriteDeadline`): a client that stops reading
//!   until its socket is full is disconnected, so a stalled SSE stream or WebSocket
//!   cannot hold its connection, task and buffers forever;
//! - JSON bodies for the errors hyper answers by itself (see [`parse_errors`]);
//! - memory handed back to the system after a flood of connections (see [`memory`]);
//! - the client's address attached to each request, for the per-IP limits;
//! - a bounded graceful shutdown:
//!   1. stop accepting;
//!   2. cancel [`AppState::shutdown`]: idle connections close, held long polls answer
//!      at once, SSE streams end, WebSockets send close 1001 ("going away");
//!   3. wait, at most `--shutdown-grace`, for connections and sockets to finish.

mod idle;
mod memory;
mod parse_errors;

use std::convert::Infallible;
use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper::rt::{Read, Write};
use hyper::server::conn::http1::{self, UpgradeableConnection};
use hyper::service::{HttpService, service_fn};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep, timeout};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::state::AppState;
use crate::tap::Tapped;

pub use idle::IdleConnections;
use idle::{Connection, ServingBody};
use parse_errors::ParseErrorsAsJson;

/// Largest request head (request line and headers) accepted; past it, 431. Browsers
/// send a few hundred bytes to pushlab, more only with big cookies for the host.
const MAX_HEAD_BYTES: usize = 32 * 1024;

/// Serves `app` on `listener` until `shutdown` completes, then shuts down
/// gracefully and returns.
pub async fn run(
    listener: TcpListener,
    app: Router,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let mut http = http1::Builder::new();
    http.max_header_size(MAX_HEAD_BYTES);
    let write_deadline = state.config.slow_client_timeout * 2;
    let grace = state.config.shutdown_grace;
    let connections = TaskTracker::new();
    let mut trouble = AcceptTrouble::default();
    tokio::spawn(memory::give_back_after_floods(
        connections.clone(),
        state.sockets.clone(),
        state.shutdown.clone(),
    ));

    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    trouble.handle(error, &state.idle).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        trouble.over();
        let _ = stream.set_nodelay(true);
        // The wire tap's one seam: what this connection reads and writes (see `tap`).
        // It wraps the stream hyper reads, so under TLS it belongs above the decryption.
        let tap = state.taps.connection();
        let request_tap = tap.clone();
        let (connection, made_room) = state.idle.open();
        let app = app.clone();
        let this = connection.clone();
        let service = service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(remote));
            if let Some(tap) = &request_tap {
                request.extensions_mut().insert(tap.clone());
            }
            let serving = this.serving();
            let response = app.clone().oneshot(request.map(Body::new));
            async move {
                let response = response.await?;
                Ok::<_, Infallible>(response.map(|body| ServingBody::new(body, serving)))
            }
        });
        // Inside the JSON rewriting, so the tap sees the bytes that really leave.
        let io = ParseErrorsAsJson::new(Tapped::new(
            WriteDeadline::new(stream, write_deadline, state.clone()),
            tap,
        ));
        let served = http
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades();
        connections.spawn(serve_connection(served, connection, state.shutdown.clone()));
        if let Some(closed) = made_room {
            // Under a flood of new connections, take the next one only once the one
            // closed to make room is gone: descriptors stay within the cap.
            let _ = timeout(Duration::from_secs(1), closed.cancelled()).await;
        }
    }

    drop(listener);
    state.shutdown.cancel();
    state.sockets.close();
    connections.close();
    let finished = async {
        connections.wait().await;
        state.sockets.wait().await;
    };
    if tokio::time::timeout(grace, finished).await.is_err() {
        tracing::warn!("connections still open after {grace:?}; exiting anyway");
    }
    Ok(())
}

/// Drives one HTTP connection until it ends, is closed as idle, or the server shuts
/// down (then it finishes the request in progress, if any, and closes).
async fn serve_connection<I, S, B>(
    served: UpgradeableConnection<I, S>,
    connection: Arc<Connection>,
    shutdown: CancellationToken,
) where
    I: Read + Write + Unpin + Send + 'static,
    S: HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    tokio::pin!(served);
    let ended = tokio::select! {
        ended = served.as_mut() => ended,
        // Dropping the connection closes its socket; no request is in progress.
        () = connection.expired() => return,
        () = shutdown.cancelled() => {
            served.as_mut().graceful_shutdown();
            served.await
        }
    };
    if let Err(error) = ended {
        tracing::debug!(%error, "connection ended with an error");
    }
}

/// Failed accepts: the process is most likely out of file descriptors. Each failure
/// closes the connection idle longest and waits for its descriptor to be free; with
/// none idle, it waits a little longer each time, up to a second. Counted in
/// `/metrics`, logged at most once a minute: a flood must not flood the log too.
#[derive(Default)]
struct AcceptTrouble {
    /// Failures since the last success, for the backoff.
    in_a_row: u32,
    /// Failures since the last log line, and when that was.
    unlogged: u64,
    logged_at: Option<Instant>,
}

/// How often accept failures may be logged.
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(60);

impl AcceptTrouble {
    /// Waits before the next accept.
    async fn handle(&mut self, error: io::Error, idle: &IdleConnections) {
        if matches!(
            error.kind(),
            io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
        ) {
            return; // that client gave up before we took its connection: no trouble
        }
        idle.accept_failed();
        self.unlogged += 1;
        if self
            .logged_at
            .is_none_or(|at| at.elapsed() >= ACCEPT_LOG_EVERY)
        {
            tracing::warn!(
                %error,
                failures = self.unlogged,
                "accept failed; closing idle connections to make room (logged once a minute)"
            );
            self.unlogged = 0;
            self.logged_at = Some(Instant::now());
        }
        self.in_a_row += 1;
        match idle.close_oldest() {
            Some(closed) => {
                let _ = timeout(Duration::from_secs(1), closed.cancelled()).await;
            }
            None => {
                let wait = Duration::from_millis(10 << self.in_a_row.min(7));
                tokio::time::sleep(wait.min(Duration::from_secs(1))).await;
            }
        }
    }

    /// An accept succeeded.
    fn over(&mut self) {
        self.in_a_row = 0;
    }
}

/// A socket whose writes may not stay blocked longer than `limit`. A write blocks when
/// the client's receive window is full: it stopped reading. After `limit` without any
/// progress the write fails and hyper drops the connection. It is the backstop for
/// every connection; the WebSocket notices a stuck client earlier, after
/// `--slow-client-timeout`, to try to say why (close 1013).
struct WriteDeadline {
    io: TcpStream,
    limit: Duration,
    /// Running while a write is blocked.
    blocked: Option<Pin<Box<Sleep>>>,
    state: Arc<AppState>,
}

impl WriteDeadline {
    fn new(io: TcpStream, limit: Duration, state: Arc<AppState>) -> Self {
        Self {
            io,
            limit,
            blocked: None,
            state,
        }
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
        self.state.stalls.count_one();
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
