//! A clean end of stream at a line boundary.
//!
//! Most peers close a TLS connection without TLS's close notification when they exit,
//! and rustls reports that as an `UnexpectedEof` error. For a line protocol nothing can
//! have been cut off when the stream stopped right after a `\n`: there it is simply the
//! end of the stream. Within a line it stays an error, so that a line cut short by
//! whoever can close the TCP connection is never taken as whole. The server and the
//! client both read TLS through this.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// `inner`, with an unexpected end of stream at a line boundary read as a clean end.
/// Writes pass through.
#[derive(Debug)]
pub struct LineEof<S> {
    inner: S,
    /// Whether everything read so far ends with a newline (or nothing was read).
    at_line_start: bool,
}

impl<S> LineEof<S> {
    /// Wraps a stream that has not been read from yet.
    pub fn new(inner: S) -> LineEof<S> {
        LineEof {
            inner,
            at_line_start: true,
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for LineEof<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match ready!(Pin::new(&mut this.inner).poll_read(cx, buf)) {
            Ok(()) => {
                if let Some(&last) = buf.filled()[before..].last() {
                    this.at_line_start = last == b'\n';
                }
                Poll::Ready(Ok(()))
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && this.at_line_start => {
                Poll::Ready(Ok(()))
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the connection was cut within a line",
            ))),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for LineEof<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
