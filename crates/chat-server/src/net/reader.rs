//! Reading lines from a client with no buffer held while it is idle.
//!
//! `FramedRead` keeps an 8 KiB buffer for the life of a connection; with tens of
//! thousands of idle connections that buffer is most of the server's memory. This reader
//! waits for readability with no buffer at all, reads into a fresh buffer, decodes every
//! complete line, and gives the buffer back as soon as it is empty again. It is polled
//! directly by the session's wait, so no read future sits in every idle session either.

use bytes::BytesMut;
use chat_proto::{LineCodec, LineEof, LineError};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;

/// Bytes read per system call.
const READ_CHUNK: usize = 4096;

/// A client's connection, read and written by its one session task. Not split into
/// halves: a split costs an `Arc` (and for TLS a lock) per connection, and the session
/// never reads and writes at the same time.
pub(crate) trait Stream: AsyncWrite + Send + Unpin {
    /// Polls for bytes and appends them to `buf`; `Ok(0)` at the end of the stream.
    /// Consumes nothing unless it returns `Ready`.
    fn poll_read_some(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>>;
}

/// Plain TCP: wait for readability with no buffer at all, and only then make room.
impl Stream for TcpStream {
    fn poll_read_some(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.poll_read_ready(cx))?;
            if buf.capacity() - buf.len() < READ_CHUNK {
                buf.reserve(READ_CHUNK);
            }
            match self.try_read_buf(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // A spurious wake-up: give the chunk back before waiting again, or
                    // an idle connection would hold it (4 KiB each) until its next line.
                    if buf.is_empty() {
                        *buf = BytesMut::new();
                    }
                }
                result => return Poll::Ready(result),
            }
        }
    }
}

/// TLS: its own layers buffer anyway; read through a chunk on the stack.
impl<S: AsyncRead + AsyncWrite + Send + Unpin> Stream for LineEof<S> {
    fn poll_read_some(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        read_through_stack(self, cx, buf)
    }
}

/// An in-memory pipe that keeps what it is written until flushed, as rustls does: for
/// the session's unit tests.
#[cfg(test)]
impl Stream for tokio::io::BufWriter<tokio::io::DuplexStream> {
    fn poll_read_some(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        read_through_stack(self, cx, buf)
    }
}

/// Reads into a chunk on the stack (not in the session's future) and appends what came.
fn read_through_stack<S: AsyncRead + Unpin>(
    stream: &mut S,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    let mut chunk = [0u8; READ_CHUNK];
    let mut read = ReadBuf::new(&mut chunk);
    ready!(Pin::new(stream).poll_read(cx, &mut read))?;
    buf.extend_from_slice(read.filled());
    Poll::Ready(Ok(read.filled().len()))
}

/// A line decoder over a connection's bytes, holding no buffer while nothing is pending.
pub(crate) struct LineReader {
    codec: LineCodec,
    /// Bytes read and not yet decoded; without capacity while nothing is pending.
    buf: BytesMut,
    /// The peer has closed its side; only what is buffered remains.
    eof: bool,
}

/// What [`LineReader::poll_next_line`] gives: `None` at the end of the stream, an I/O
/// error, or a line (or the reason the codec refused one).
pub(crate) type NextLine = Option<io::Result<Result<String, LineError>>>;

impl LineReader {
    pub(crate) fn new(codec: LineCodec) -> LineReader {
        LineReader {
            codec,
            buf: BytesMut::new(),
            eof: false,
        }
    }

    /// The next line from `stream`, as `FramedRead::poll_next` would give it. Consumes
    /// nothing from the stream unless it returns `Ready`.
    pub(crate) fn poll_next_line<S: Stream>(
        &mut self,
        stream: &mut S,
        cx: &mut Context<'_>,
    ) -> Poll<NextLine> {
        loop {
            let decoded = if self.eof {
                self.codec.decode_eof(&mut self.buf)
            } else {
                self.codec.decode(&mut self.buf)
            };
            match decoded {
                Ok(Some(item)) => {
                    self.release_if_empty();
                    return Poll::Ready(Some(Ok(item)));
                }
                Ok(None) if self.eof => return Poll::Ready(None),
                Ok(None) => {}
                Err(e) => return Poll::Ready(Some(Err(e))),
            }
            self.release_if_empty();
            match ready!(stream.poll_read_some(cx, &mut self.buf)) {
                Ok(0) => self.eof = true,
                Ok(_) => {}
                Err(e) => return Poll::Ready(Some(Err(e))),
            }
        }
    }

    /// Whether a whole line is read and not yet taken.
    pub(crate) fn has_line(&self) -> bool {
        memchr::memchr(b'\n', &self.buf).is_some()
    }

    /// Waits for [`LineReader::poll_next_line`].
    pub(crate) async fn next_line<S: Stream>(&mut self, stream: &mut S) -> NextLine {
        std::future::poll_fn(|cx| self.poll_next_line(stream, cx)).await
    }

    fn release_if_empty(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > 0 {
            self.buf = BytesMut::new();
        }
    }
}
