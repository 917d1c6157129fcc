//! Accepting connections and shutting down, with the limits a public server needs.
//!
//! `axum::serve` would do for a demo, but it sets no timer, so a client could take
//! forever to send its request, or open connections and never send anything. This
//! loop is axum's, with:
//!
//! - HTTP/1.1 only on plain TCP (what browsers speak to a plain-HTTP server, and what
//!   WebSocket upgrades need). hyper's HTTP/1 connection refuses the HTTP/2 preface of
//!   a cleartext HTTP/2 (h2c) client by closing the connection: HTTP/2 comes with
//!   HTTPS, where browsers use it. With `--tls`, the TLS handshake comes first
//!   ([`crate::tls`]), then HTTP/2 or HTTP/1.1 as its ALPN decided, HTTP/2 with limits
//!   of its own ([`http2`]);
//! - deadlines and a cap for idle connections, so that silent sockets cannot use up
//!   the file descriptors (see [`idle`]); when accepting fails anyway, the accept loop
//!   closes the oldest idle connection and backs off, logging once, not per attempt;
//! - a write deadline on every socket (`WriteDeadline`): a client that stops reading
//!   until its socket is full is disconnected, so a stalled SSE stream or WebSocket
//!   cannot hold its connection, task and buffers forever;
//! - JSON bodies for the errors hyper answers by itself (see [`parse_errors`]);
//! - memory handed back to the system after a flood of connections (see [`memory`]);
//! - the connection attached to each request ([`Carrier`]: the client's address, for
//!   the per-IP limits, the HTTP it speaks and its wire tap);
//! - a bounded graceful shutdown:
//!   1. stop accepting;
//!   2. cancel [`AppState::shutdown`] and wake every held long poll: idle connections
//!      close, held long polls answer at once, SSE streams end, WebSockets send close
//!      1001 ("going away");
//!   3. wait, at most `--shutdown-grace`, for connections and sockets to finish.

mod http2;
mod idle;
mod long_lived;
mod memory;
mod parse_errors;

use std::convert::Infallible;
use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::{HttpService, service_fn};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep, timeout};
use tokio_util::either::Either;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::App;
use crate::state::AppState;
use crate::stats::HttpVersion;
use crate::tap::{ConnectionTap, Tapped};
use crate::tls::Tls;

use idle::{Connection, ServingBody};
pub use idle::{IdleConnections, Serving};
pub use long_lived::LongLived;
use long_lived::{Handoff, Prefixed};
use parse_errors::ParseErrorsAsJson;

/// Largest request head (request line and headers) accepted; past it, 431. Browsers
/// send a few hundred bytes to pushlab, more only with big cookies for the host. Over
/// HTTP/2, the largest decoded header list.
const MAX_HEAD_BYTES: usize = 32 * 1024;

/// The TCP connection a request came on (in its extensions, the one the accept loop
/// puts there): its number, in order of acceptance, the client's address, the HTTP it
/// speaks and its wire tap. On HTTP/2 every request of a page shares one.
#[derive(Clone)]
pub struct Carrier {
    pub id: u64,
    pub remote: SocketAddr,
    pub http: HttpVersion,
    /// Where the wire tap sees this connection's bytes (none when tapping is off).
    pub tap: Option<Arc<ConnectionTap>>,
    /// Whether a long-lived response to this request (an SSE stream, a held long poll)
    /// is written by the connection's own task, without hyper's buffers: on HTTP/1.1,
    /// to a `GET` that keeps its connection (see `long_lived`).
    pub hands_off: bool,
    connection: Arc<Connection>,
}

impl Carrier {
    /// Keeps the connection serving, not idle, until the guard is dropped: for a
    /// request upgraded to a socket that outlives its response (over HTTP/2 a stream
    /// of a connection that must not be closed as idle under it).
    pub fn hold(&self) -> Serving {
        self.connection.serving()
    }
}

/// Serves `app` on `listener` (HTTPS if `tls` is given) until `shutdown` completes,
/// then shuts down gracefully and returns.
pub async fn run(
    listener: TcpListener,
    app: App,
    state: Arc<AppState>,
    tls: Option<Tls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let mut http = http1::Builder::new();
    http.max_header_size(MAX_HEAD_BYTES);
    let builders = Arc::new((http, http2::builder(&state.config)));
    let tls = tls.map(Arc::new);
    let mut accepted: u64 = 0;
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
        accepted += 1;
        // The wire tap's one seam: what this connection reads and writes (see `tap`).
        let tap = state.taps.connection();
        let (connection, made_room) = state.idle.open();
        let io = WriteDeadline::new(stream, write_deadline, state.clone());
        let (app, state, tls, builders) =
            (app.clone(), state.clone(), tls.clone(), builders.clone());
        let id = accepted;
        connections.spawn(async move {
            // The seam between plain HTTP and HTTPS: TLS, if any, picks the HTTP. The
            // handshake is part of the first request's time (--header-timeout), and an
            // idle connection shed to make room may be one still shaking hands.
            let (mut io, http) = match tls {
                None => (Either::Left(io), HttpVersion::Http1),
                Some(tls) => tokio::select! {
                    shaken = tls.handshake(io) => match shaken {
                        // Boxed: a TLS session is a kilobyte or two, and a plain
                        // connection (most of them) should not carry its room.
                        Ok((io, http)) => (Either::Right(Box::new(io)), http),
                        Err(error) => return tracing::debug!(%error, "TLS handshake failed"),
                    },
                    () = connection.expired() => return,
                },
            };
            socket_of(&mut io).count_as(http);
            // The tap sits above TLS: it shows what the client sent, decrypted.
            if let Some(tap) = tap.as_ref().filter(|_| http == HttpVersion::Http2) {
                tap.speaks_http2();
            }
            let io = Tapped::new(io, tap.clone());
            let carrier = Carrier {
                id,
                remote,
                http,
                tap: tap.clone(),
                hands_off: false,
                connection: connection.clone(),
            };
            // A long-lived response (an SSE stream, a held long poll) to an HTTP/1.1
            // request is written by this task, not hyper (see `long_lived`).
            let handoff = Arc::new(Handoff::default());
            let offered = handoff.clone();
            let service = service_fn(move |mut request: Request<Incoming>| {
                let handoff = (http == HttpVersion::Http1 && long_lived::can_take(&request))
                    .then(|| offered.clone());
                let serving = carrier.hold();
                let hands_off = handoff.is_some();
                request.extensions_mut().insert(Carrier {
                    hands_off,
                    ..carrier.clone()
                });
                let response = app.clone().oneshot(request.map(Body::new));
                async move {
                    let response = response.await?.map(|body| ServingBody::new(body, serving));
                    match handoff {
                        Some(handoff) => match handoff.offer(response) {
                            Some(response) => Ok::<_, Infallible>(response),
                            // Left for the connection's task, which drops hyper.
                            None => std::future::pending().await,
                        },
                        None => Ok(response),
                    }
                }
            });
            let shutdown = &state.shutdown;
            let (http1, http2) = &*builders;
            let ended = match http {
                HttpVersion::Http1 => {
                    let (mut io, mut service) = (Prefixed::new(io), service);
                    loop {
                        // Inside the JSON rewriting, so the tap sees the bytes that leave.
                        let io_json = TokioIo::new(ParseErrorsAsJson::new(io));
                        let served = http1.serve_connection(io_json, service).with_upgrades();
                        let mut served = Box::pin(served);
                        let handed_off = handoff.ready();
                        match serve_connection(served.as_mut(), &connection, shutdown, handed_off)
                            .await
                        {
                            Served::Ended(ended) => break ended,
                            Served::HandedOff => {
                                let (Some((kept, kept_service)), Some(response)) =
                                    (take_back(served), handoff.take())
                                else {
                                    return;
                                };
                                match long_lived::write(kept, response).await {
                                    Some(again) if !shutdown.is_cancelled() => {
                                        (io, service) = (again, kept_service);
                                    }
                                    _ => return,
                                }
                            }
                        }
                    }
                }
                HttpVersion::Http2 => {
                    let mut served = Box::pin(http2.serve_connection(TokioIo::new(io), service));
                    let never = std::future::pending();
                    match serve_connection(served.as_mut(), &connection, shutdown, never).await {
                        Served::Ended(ended) => ended,
                        Served::HandedOff => unreachable!("HTTP/2 hands nothing off"),
                    }
                }
            };
            if let Err(error) = ended {
                if http == HttpVersion::Http2 && http2::unanswered_ping(&error) {
                    state.stalls.count_one();
                }
                tracing::debug!(%error, "connection ended with an error");
            }
        });
        if let Some(closed) = made_room {
            // Under a flood of new connections, take the next one only once the one
            // closed to make room is gone: descriptors stay within the cap.
            let _ = timeout(Duration::from_secs(1), closed.cancelled()).await;
        }
    }

    drop(listener);
    state.shutdown.cancel();
    // Held long polls wait only for a publish (one wake source each): wake them.
    state.hub.interrupt();
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

/// How hyper's part of a connection ended.
enum Served {
    /// The connection is over (or failed).
    Ended(Result<(), hyper::Error>),
    /// A long-lived response was handed to the connection's task, which writes it.
    HandedOff,
}

/// An HTTP/1.1 connection as hyper serves it, over the socket as the task keeps it.
type Http1<IO, S> = http1::UpgradeableConnection<TokioIo<ParseErrorsAsJson<Prefixed<IO>>>, S>;

/// The socket and the service of an HTTP/1.1 connection that handed a response off.
/// hyper's buffers go with the rest of its parts; what it had read past the request is
/// read first by the next connection on the socket.
fn take_back<IO, S, B>(served: Pin<Box<Http1<IO, S>>>) -> Option<(Prefixed<IO>, S)>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    S: HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let http1::Parts {
        io,
        read_buf,
        service,
        ..
    } = Pin::into_inner(served).into_parts()?;
    let mut io = io.into_inner().into_inner();
    io.read_first(read_buf);
    Some((io, service))
}

/// Drives one HTTP connection until it ends, is closed as idle, hands a long-lived
/// response off, or the server shuts down (then it finishes the requests in progress,
/// if any, and closes: on HTTP/2 after a GOAWAY). The connection lives in a box the
/// caller keeps: an `async fn` keeps its arguments for its whole life, so pinning one
/// inside would keep it twice in every connection's task (and the HTTP/2 connection's
/// state, a few kilobytes, would be in every HTTP/1.1 one's).
async fn serve_connection<C: Graceful>(
    mut served: Pin<&mut C>,
    connection: &Connection,
    shutdown: &CancellationToken,
    handed_off: impl Future<Output = ()>,
) -> Served {
    tokio::pin!(handed_off);
    tokio::select! {
        ended = served.as_mut() => Served::Ended(ended),
        () = &mut handed_off => Served::HandedOff,
        // Dropping the connection closes its socket; no request is in progress.
        () = connection.expired() => Served::Ended(Ok(())),
        () = shutdown.cancelled() => {
            served.as_mut().graceful_shutdown();
            tokio::select! {
                ended = served => Served::Ended(ended),
                () = handed_off => Served::HandedOff,
            }
        }
    }
}

/// A connection hyper can be asked to close gracefully: HTTP/1.1 (after the request in
/// progress) or HTTP/2 (GOAWAY, then the streams in progress finish).
trait Graceful: Future<Output = Result<(), hyper::Error>> {
    fn graceful_shutdown(self: Pin<&mut Self>);
}

impl<I, S, B> Graceful for http1::UpgradeableConnection<I, S>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        http1::UpgradeableConnection::graceful_shutdown(self);
    }
}

impl<I, S, B, E> Graceful for hyper::server::conn::http2::Connection<I, S, E>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S: HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        hyper::server::conn::http2::Connection::graceful_shutdown(self);
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

/// The socket under TLS, if any.
fn socket_of(
    io: &mut Either<WriteDeadline, Box<tokio_rustls::server::TlsStream<WriteDeadline>>>,
) -> &mut WriteDeadline {
    match io {
        Either::Left(socket) => socket,
        Either::Right(tls) => tls.get_mut().0,
    }
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
