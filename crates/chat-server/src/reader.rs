//! Reading lines from a client with no buffer held while it is idle.
//!
//! `FramedRead` keeps an 8 KiB buffer for the life of a connection; with tens of
//! thousands of idle connections that buffer is most of the server's memory. This reader
//! waits for readability with no buffer at all, reads into a fresh buffer, decodes every
//! complete line, and gives the buffer back as soon as it is empty again.

use bytes::BytesMut;
use chat_proto::{LineCodec, LineError};
use std::future::Future;
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt, ReadHalf};
use tokio::net::tcp::OwnedReadHalf;
use tokio_util::codec::Decoder;

/// Bytes read per system call.
const READ_CHUNK: usize = 4096;

/// Where a connection's bytes come from.
pub(crate) trait Source: Send + Unpin {
    /// Waits for bytes and appends them to `buf`; `Ok(0)` at the end of the stream.
    /// Cancel-safe: nothing is consumed unless it completes.
    fn read_some(&mut self, buf: &mut BytesMut) -> impl Future<Output = io::Result<usize>> + Send;
}

/// Plain TCP: wait for readability with no buffer at all, and only then make room.
impl Source for OwnedReadHalf {
    async fn read_some(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        loop {
            self.readable().await?;
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
                result => return result,
            }
        }
    }
}

/// Any other stream (TLS): its own layers buffer anyway, so read into a reserved chunk.
impl<S: AsyncRead + Send> Source for ReadHalf<S> {
    async fn read_some(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        if buf.capacity() - buf.len() < READ_CHUNK {
            buf.reserve(READ_CHUNK);
        }
        self.read_buf(buf).await
    }
}

/// The reading half of a connection and its line decoder.
pub(crate) struct LineReader<R> {
    socket: R,
    codec: LineCodec,
    /// Bytes read and not yet decoded; without capacity while nothing is pending.
    buf: BytesMut,
    /// The peer has closed its side; only what is buffered remains.
    eof: bool,
}

impl<R: Source> LineReader<R> {
    pub(crate) fn new(socket: R, codec: LineCodec) -> LineReader<R> {
        LineReader {
            socket,
            codec,
            buf: BytesMut::new(),
            eof: false,
        }
    }

    /// The next line, as `FramedRead::next` would give it: `None` at the end of the
    /// stream. Cancel-safe: the only wait is for readability, and nothing is consumed
    /// before it completes.
    pub(crate) async fn next_line(&mut self) -> Option<io::Result<Result<String, LineError>>> {
        loop {
            let decoded = if self.eof {
                self.codec.decode_eof(&mut self.buf)
            } else {
                self.codec.decode(&mut self.buf)
            };
            match decoded {
                Ok(Some(item)) => {
                    self.release_if_empty();
                    return Some(Ok(item));
                }
                Ok(None) if self.eof => return None,
                Ok(None) => {}
                Err(e) => return Some(Err(e)),
            }
            self.release_if_empty();
            match self.socket.read_some(&mut self.buf).await {
                Ok(0) => self.eof = true,
                Ok(_) => {}
                Err(e) => return Some(Err(e)),
            }
        }
    }

    fn release_if_empty(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > 0 {
            self.buf = BytesMut::new();
        }
    }
}
