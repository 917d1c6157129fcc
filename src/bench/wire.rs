//! What the bench's clients cost on the wire, counted where it is honest: at the socket.
//!
//! Every client connection is a [`Counted`] TCP stream. It adds each byte read and
//! written to a shared [`Wire`], so "bytes per delivered message" includes everything
//! the transport really sends — HTTP headers, chunked encoding, SSE field names,
//! WebSocket frame headers — and not only the JSON the server thinks it sent. The
//! same [`Wire`] counts the TCP connections opened, which is how the bench shows that
//! a poller under HTTP/1.1 keep-alive does not open one per request.
//!
//! With `--http2` the count sits just above TLS: it is the HTTP/2 the connection
//! carries (frame headers, HPACK-compressed headers, data), the same layer as the
//! HTTP/1.1 rows, so the two compare protocol to protocol. TLS adds its records'
//! overhead (22 bytes per record with TLS 1.3's AES-GCM) to both alike once HTTPS is
//! used, and the handshake to the set-up.
//!
//! Past ~28 000 connections one loopback source address runs out of ephemeral ports
//! (Linux hands out 32768–60999 by default), so [`connect`] spreads clients over
//! 127.0.0.2, 127.0.0.3 … once the first address has had its share.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};

/// Connections per loopback source address before the next one is used: safely under
/// the 28 232 ephemeral ports of Linux's default range.
pub const CONNECTIONS_PER_SOURCE: usize = 25_000;

/// Bytes and connections, added up over many clients.
#[derive(Debug, Default)]
pub struct Wire {
    pub read: AtomicU64,
    pub written: AtomicU64,
    pub connections: AtomicU64,
}

/// A reading of a [`Wire`] at one moment.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WireSnapshot {
    pub read: u64,
    pub written: u64,
    pub connections: u64,
}

impl Wire {
    pub fn snapshot(&self) -> WireSnapshot {
        WireSnapshot {
            read: self.read.load(Relaxed),
            written: self.written.load(Relaxed),
            connections: self.connections.load(Relaxed),
        }
    }
}

impl WireSnapshot {
    /// Bytes both ways.
    pub fn bytes(&self) -> u64 {
        self.read + self.written
    }

    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: WireSnapshot) -> WireSnapshot {
        WireSnapshot {
            read: self.read - earlier.read,
            written: self.written - earlier.written,
            connections: self.connections - earlier.connections,
        }
    }
}

/// A stream that adds what passes through it to a [`Wire`].
pub struct Counted<S> {
    inner: S,
    wire: Arc<Wire>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        self.wire.read.fetch_add(n as u64, Relaxed);
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = poll {
            self.wire.written.fetch_add(n as u64, Relaxed);
        }
        poll
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = poll {
            self.wire.written.fetch_add(n as u64, Relaxed);
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Opens client connection number `index` to `server`, counted on `wire`, with
/// Nagle's algorithm off (a chat message is small and should leave at once).
pub async fn connect(
    server: SocketAddr,
    index: usize,
    wire: &Arc<Wire>,
) -> io::Result<Counted<TcpStream>> {
    Ok(count(dial(server, index, wire).await?, wire))
}

/// Opens connection number `index` like [`connect`], counting the connection but not
/// yet its bytes: for a client that puts TLS between the socket and [`count`].
pub async fn dial(server: SocketAddr, index: usize, wire: &Wire) -> io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    if let Some(source) = source_address(server, index) {
        socket.bind(SocketAddr::new(source.into(), 0))?;
    }
    let stream = socket.connect(server).await?;
    stream.set_nodelay(true)?;
    wire.connections.fetch_add(1, Relaxed);
    Ok(stream)
}

/// Counts the bytes of `stream` on `wire` from now on.
pub fn count<S>(stream: S, wire: &Arc<Wire>) -> Counted<S> {
    Counted {
        inner: stream,
        wire: wire.clone(),
    }
}

/// The loopback address client `index` connects from, when the kernel's default
/// choice (127.0.0.1 for a loopback server) would run out of ports: `None` for the
/// first [`CONNECTIONS_PER_SOURCE`] clients, then 127.0.0.2, 127.0.0.3 …
fn source_address(server: SocketAddr, index: usize) -> Option<Ipv4Addr> {
    let block = index / CONNECTIONS_PER_SOURCE;
    if block == 0 || !server.ip().is_loopback() || !server.is_ipv4() {
        return None;
    }
    // 127.0.0.2 … 127.0.0.254: up to 6 million clients, far past any fd limit.
    let last_octet = u8::try_from(1 + block.min(253)).expect("at most 254");
    Some(Ipv4Addr::new(127, 0, 0, last_octet))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_spread_over_loopback_addresses_only_past_the_first_block() {
        let server: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(source_address(server, 0), None);
        assert_eq!(source_address(server, CONNECTIONS_PER_SOURCE - 1), None);
        assert_eq!(
            source_address(server, CONNECTIONS_PER_SOURCE),
            Some(Ipv4Addr::new(127, 0, 0, 2))
        );
        assert_eq!(
            source_address(server, 3 * CONNECTIONS_PER_SOURCE + 5),
            Some(Ipv4Addr::new(127, 0, 0, 4))
        );
    }

    #[tokio::test]
    async fn counts_bytes_both_ways_and_connections() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let echo = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = [0; 5];
            socket.read_exact(&mut buf).await.unwrap();
            socket.write_all(b"hello, world").await.unwrap();
        });
        let wire = Arc::new(Wire::default());
        let mut stream = connect(addr, 0, &wire).await.unwrap();
        stream.write_all(b"hello").await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        echo.await.unwrap();
        assert_eq!(
            wire.snapshot(),
            WireSnapshot {
                read: 12,
                written: 5,
                connections: 1
            }
        );
    }
}
