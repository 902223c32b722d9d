//! Newline framing with a length limit that never ends the stream.
//!
//! Modelled on `tokio_util::codec::LinesCodec`, with two differences that matter to a
//! server: a line that is too long or not UTF-8 is an *item* ([`LineError`]), not a
//! decoder error, so `Framed` keeps going; and the limit is enforced while reading, so a
//! peer that never sends `\n` costs at most `max_length` bytes of buffer.

use bytes::{Buf, BufMut, BytesMut};
use std::io;
use tokio_util::codec::{Decoder, Encoder};

/// A line that could not be accepted. The codec has already resynchronised: the next
/// item is the line after the next `\n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// The line was longer than the limit; it has been (or is being) discarded up to
    /// the next newline.
    #[error("line longer than {limit} bytes")]
    TooLong {
        /// The limit in force.
        limit: usize,
    },
    /// The line was not valid UTF-8.
    #[error("line is not valid UTF-8")]
    InvalidUtf8,
}

/// Decodes `\n`-terminated UTF-8 lines (dropping one `\r` before the `\n`) of at most
/// `max_length` bytes, and encodes strings as such lines.
#[derive(Debug, Clone)]
pub struct LineCodec {
    /// Longest accepted line, in bytes, without the `\r\n`.
    max_length: usize,
    /// How far the buffer has already been searched for `\n`, so that a line arriving
    /// in many small reads is scanned once, not once per read.
    next_index: usize,
    /// Set after an over-long line was reported, until its terminating `\n` is seen.
    discarding: bool,
}

impl LineCodec {
    /// A codec accepting lines of at most `max_length` bytes.
    pub fn new(max_length: usize) -> LineCodec {
        LineCodec {
            max_length,
            next_index: 0,
            discarding: false,
        }
    }

    /// The limit in force.
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// Whether the codec is skipping the rest of an over-long line.
    pub fn is_discarding(&self) -> bool {
        self.discarding
    }

    fn finish_line(&self, mut line: BytesMut) -> Result<String, LineError> {
        if line.last() == Some(&b'\n') {
            line.truncate(line.len() - 1);
        }
        if line.last() == Some(&b'\r') {
            line.truncate(line.len() - 1);
        }
        if line.len() > self.max_length {
            return Err(LineError::TooLong {
                limit: self.max_length,
            });
        }
        match std::str::from_utf8(&line) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(LineError::InvalidUtf8),
        }
    }
}

impl Default for LineCodec {
    fn default() -> Self {
        LineCodec::new(crate::DEFAULT_MAX_LINE)
    }
}

fn find_newline(bytes: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', bytes)
}

impl Decoder for LineCodec {
    type Item = Result<String, LineError>;
    type Error = io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Self::Item>, io::Error> {
        loop {
            if self.discarding {
                match find_newline(buf) {
                    Some(pos) => {
                        buf.advance(pos + 1);
                        self.discarding = false;
                        continue;
                    }
                    None => {
                        buf.clear();
                        return Ok(None);
                    }
                }
            }
            // A line may hold max_length bytes, then an optional '\r', then '\n'.
            let limit = self.max_length.saturating_add(2);
            let window_end = buf.len().min(limit);
            return match find_newline(&buf[self.next_index..window_end]) {
                Some(offset) => {
                    let end = self.next_index + offset;
                    self.next_index = 0;
                    let line = buf.split_to(end + 1);
                    Ok(Some(self.finish_line(line)))
                }
                None if buf.len() >= limit => {
                    // No newline where one had to be: report now, skip to the next '\n'.
                    self.next_index = 0;
                    self.discarding = true;
                    buf.advance(window_end);
                    Ok(Some(Err(LineError::TooLong {
                        limit: self.max_length,
                    })))
                }
                None => {
                    self.next_index = window_end;
                    Ok(None)
                }
            };
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Self::Item>, io::Error> {
        if let Some(item) = self.decode(buf)? {
            return Ok(Some(item));
        }
        self.next_index = 0;
        if self.discarding || buf.is_empty() {
            self.discarding = false;
            buf.clear();
            return Ok(None);
        }
        // A last line without its newline (`printf alice | nc`) still counts.
        let line = buf.split_to(buf.len());
        Ok(Some(self.finish_line(line)))
    }
}

impl<T: AsRef<str>> Encoder<T> for LineCodec {
    type Error = io::Error;

    fn encode(&mut self, line: T, dst: &mut BytesMut) -> Result<(), io::Error> {
        let line = line.as_ref();
        if line.contains(['\n', '\r']) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a line cannot contain a newline",
            ));
        }
        dst.reserve(line.len() + 1);
        dst.put_slice(line.as_bytes());
        dst.put_u8(b'\n');
        Ok(())
    }
}
