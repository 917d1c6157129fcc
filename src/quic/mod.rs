//! The QUIC listener behind `--webtransport`: the UDP side of the server, as
//! [`crate::server`] is the TCP side.
//!
//! WebTransport runs over HTTP/3, and HTTP/3 over QUIC, and QUIC over UDP: so it
//! cannot share the TCP listener. It gets a UDP socket at the same address and port
//! number (a port number names a TCP port and a UDP port independently), its own
//! certificate ([`certificate`]), and this accept loop, which hands each session
//! request to [`crate::transport::webtransport`].
//!
//! ## Why `wtransport`
//!
//! Two maintained Rust stacks serve WebTransport, both on quinn (QUIC) and rustls:
//!
//! - `wtransport` (0.7): one crate for the whole stack, server and client, on tokio.
//!   A session request shows its path, `Origin` and `:authority` before it is
//!   accepted; streams are `AsyncRead`/`AsyncWrite`-like; datagrams are one call;
//!   the client takes `serverCertificateHashes` and enforces Chromium's rules for
//!   them (ECDSA, at most 14 days), so the tests and the bench connect the way a
//!   browser does; it makes such a self-signed certificate, and an endpoint reloads
//!   its certificate without dropping sessions.
//! - `h3` + `h3-quinn` + `h3-webtransport`: hyper's HTTP/3, on which WebTransport is
//!   an experimental extension (`h3-webtransport` 0.1): the server must wire the
//!   three together and drive the HTTP/3 connection itself, there is no WebTransport
//!   client to test with, and the session cannot yet be closed with a reason.
//!
//! `wtransport` fits a teaching server better: the code a student reads is about
//! pushing, not about driving HTTP/3.
//!
//! ## Its one gap: closing a session with a reason
//!
//! WebTransport closes a session with a code and a reason by sending a
//! `CLOSE_WEBTRANSPORT_SESSION` capsule (type `0x2843`) on the session's `CONNECT`
//! stream, then FIN; a browser resolves `transport.closed` with `{closeCode, reason}`
//! only from that capsule. `wtransport` cannot send it (checked in 0.7.2, the newest
//! release, and in its repository's main branch):
//!
//! - the `CONNECT` stream is owned by the connection's driver, a private module
//!   (`driver::streams::connect`), which *reads* capsules (a peer's close reaches us as
//!   `ConnectionError::ApplicationClosed`) but writes none; no public type holds that
//!   stream, so the application cannot write a capsule or a FIN on it;
//! - `wtransport-proto` parses the capsule but has no encoder for it;
//! - `Connection::close(code, reason)` is `quinn::Connection::close`: a QUIC
//!   `CONNECTION_CLOSE` for the whole connection. A native client reads its code and
//!   reason; a browser only learns that the session failed (`closed` rejects with a
//!   `WebTransportError`, without the code or the reason).
//!
//! So pushlab says the code and reason in-band first (a `close` line, see
//! [`crate::protocol::ServerFrame::Close`]), waits a moment for the client to read it,
//! then closes the connection with the same code and reason. A stack that sends the
//! capsule (Go's `webtransport-go` does, from `CloseWithError`) would make the line
//! unnecessary, and would reach a stalled reader too, whose message stream is full but
//! whose `CONNECT` stream is not; moving stacks for that is not worth it today.

pub mod certificate;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::time::{Instant, sleep_until, timeout};
use wtransport::endpoint::endpoint_side::Server;
use wtransport::{Endpoint, ServerConfig};

use crate::state::AppState;
use crate::transport::webtransport;

/// The QUIC endpoint serving WebTransport sessions.
pub struct QuicListener {
    endpoint: Endpoint<Server>,
}

impl QuicListener {
    /// Binds UDP at `addr` (the HTTP listener's address and port) with the state's
    /// certificate. Needs `--webtransport`.
    pub fn bind(addr: SocketAddr, app: &AppState) -> io::Result<Self> {
        let endpoint = Endpoint::server(server_config(addr, app)?)?;
        Ok(Self { endpoint })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// Accepts sessions until the server shuts down, renewing the certificate on
    /// time; then waits (at most `--shutdown-grace`) for the sessions' goodbyes to be
    /// delivered before the socket closes.
    pub async fn run(self, app: Arc<AppState>) {
        let Self { endpoint } = self;
        let mut renew_at = Instant::now() + certificate::RENEW_AFTER;
        loop {
            tokio::select! {
                incoming = endpoint.accept() => {
                    let app = app.clone();
                    // Shutdown waits for every session, like for upgraded WebSockets.
                    let tracked = app.sockets.token();
                    tokio::spawn(async move {
                        let _tracked = tracked;
                        // The QUIC and HTTP/3 handshakes, then the CONNECT request,
                        // within the header deadline (against slowloris, as on TCP).
                        match timeout(app.config.header_timeout, incoming).await {
                            Ok(Ok(request)) => webtransport::session(request, app).await,
                            Ok(Err(error)) => tracing::debug!(%error, "QUIC handshake failed"),
                            Err(_) => tracing::debug!("QUIC handshake too slow"),
                        }
                    });
                }
                () = sleep_until(renew_at) => {
                    renew_at = Instant::now() + certificate::RENEW_AFTER;
                    if let Err(error) = renew(&endpoint, &app) {
                        tracing::warn!(%error, "cannot renew the WebTransport certificate");
                    }
                }
                () = app.shutdown.cancelled() => break,
            }
        }
        // Sessions close themselves on shutdown; their last packets need the socket.
        let _ = timeout(app.config.shutdown_grace, app.sockets.wait()).await;
        endpoint.close(0u32.into(), b"server shutting down");
        let _ = timeout(app.config.shutdown_grace, endpoint.wait_idle()).await;
    }
}

/// A new certificate, served to new connections from now on.
fn renew(endpoint: &Endpoint<Server>, app: &AppState) -> io::Result<()> {
    let certificate = dev_certificate(app)?;
    certificate.renew().map_err(io::Error::other)?;
    let addr = endpoint.local_addr()?;
    endpoint.reload_config(server_config(addr, app)?, false)
}

fn server_config(addr: SocketAddr, app: &AppState) -> io::Result<ServerConfig> {
    let config = &app.config;
    Ok(ServerConfig::builder()
        .with_bind_address(addr)
        .with_identity(dev_certificate(app)?.identity())
        // QUIC's own liveness check, in place of WebSocket pings: the stack pings a
        // quiet connection and drops one that stays silent past the idle timeout.
        .keep_alive_interval(Some(config.ws_ping))
        .max_idle_timeout(Some(config.ws_ping + config.ws_pong_timeout))
        .map_err(io::Error::other)?
        .build())
}

fn dev_certificate(app: &AppState) -> io::Result<&certificate::DevCertificate> {
    app.webtransport
        .as_ref()
        .ok_or_else(|| io::Error::other("the server runs without --webtransport"))
}
