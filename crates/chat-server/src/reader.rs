//! Reading lines from a client with no buffer held while it is idle.
//!
//! `FramedRead` keeps an 8 KiB buffer for the life of a connection; with tens of
//! thousands of idle connections that buffer is most of the server's memory. This reader
//! waits for readability with no buffer at all, reads into a fresh buffer, decodes every
//! complete line, and gives the buffer back as soon as it is empty again.

use bytes::BytesMut;
use chat_proto::{LineCodec, LineError};
use std::io;
use tokio::net::tcp::OwnedReadHalf;
use tokio_util::codec::Decoder;

/// Bytes read per system call.
const READ_CHUNK: usize = 4096;

/// The reading half of a connection and its line decoder.
pub(crate) struct LineReader {
    socket: OwnedReadHalf,
    codec: LineCodec,
    /// Bytes read and not yet decoded; without capacity while nothing is pending.
    buf: BytesMut,
    /// The peer has closed its side; only what is buffered remains.
    eof: bool,
}

impl LineReader {
    pub(crate) fn new(socket: OwnedReadHalf, codec: LineCodec) -> LineReader {
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
            if let Err(e) = self.socket.readable().await {
                return Some(Err(e));
            }
            if self.buf.capacity() - self.buf.len() < READ_CHUNK {
                self.buf.reserve(READ_CHUNK);
            }
            match self.socket.try_read_buf(&mut self.buf) {
                Ok(0) => self.eof = true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
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
