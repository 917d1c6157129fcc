//! The seam: an accepted connection wrapped so that what it reads and writes can be
//! shown to the client it belongs to. Nothing else in pushlab knows about the tap.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::ConnectionTap;
use super::row::Side;

/// A connection's stream, reporting every read and write to its [`ConnectionTap`]
/// (`None` when the operator turned the tap off: then it only passes bytes through).
pub struct Tapped<IO> {
    io: IO,
    tap: Option<Arc<ConnectionTap>>,
}

impl<IO> Tapped<IO> {
    pub fn new(io: IO, tap: Option<Arc<ConnectionTap>>) -> Self {
        Self { io, tap }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Tapped<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.io).poll_read(cx, buf))?;
        if let Some(tap) = &self.tap {
            match &buf.filled()[before..] {
                [] => tap.closed(Side::Client),
                read => tap.saw(Side::Client, read),
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Tapped<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = ready!(Pin::new(&mut self.io).poll_write(cx, buf))?;
        if let Some(tap) = &self.tap {
            tap.saw(Side::Server, &buf[..written]);
        }
        Poll::Ready(Ok(written))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = ready!(Pin::new(&mut self.io).poll_write_vectored(cx, bufs))?;
        if let Some(tap) = &self.tap {
            // The first `written` bytes across the slices went out.
            let mut left = written;
            for slice in bufs {
                if left == 0 {
                    break;
                }
                let n = left.min(slice.len());
                tap.saw(Side::Server, &slice[..n]);
                left -= n;
            }
        }
        Poll::Ready(Ok(written))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl<IO> Drop for Tapped<IO> {
    fn drop(&mut self) {
        if let Some(tap) = &self.tap {
            tap.closed(Side::Server);
        }
    }
}
