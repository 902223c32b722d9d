//! How a bench connection carries the native protocol: over plain TCP, or over the
//! server's web door (`/ws`, a WebSocket with one protocol line per text message, no
//! newline inside, in both directions). The modes see only a [`Reader`] of lines and a
//! [`Writer`] of lines, and run unchanged over either.
//!
//! Both sides stay cheap, so that the bench is not what a run measures. Over TCP the
//! reader splits the socket's bytes at `\n` without copying them ([`RawLines`]); over a
//! WebSocket a text message is one line, and its payload (already a `Bytes` cut from
//! tungstenite's read buffer) is the line, with no copy. A writer takes a buffer of
//! whole lines: TCP writes it in one go; a WebSocket sends each line as one message,
//! cut from the buffer without copying, and flushes once (tungstenite copies each into
//! its frame, to mask it, as every client must).

use crate::client::{Refusal, Refused};
use anyhow::anyhow;
use bytes::{Buf, Bytes, BytesMut};
use chat_proto::CLIENT_MAX_LINE;
use futures::stream::{SplitSink, SplitStream};
use futures::{FutureExt, SinkExt, Stream, StreamExt};
use serde::Serialize;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};
use tokio_util::codec::{Decoder, FramedRead};

/// Initial read buffer of a TCP connection (it grows when a burst needs more), and the
/// most a WebSocket connection reads at once.
const READ_BUFFER: usize = 4096;

/// Path of the server's WebSocket.
const WS_PATH: &str = "/ws";

/// The way to the server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// The native protocol over plain TCP (`--addr` is the server's `--addr`).
    #[default]
    Tcp,
    /// The native protocol over the web door's WebSocket, `ws://ADDR/ws` (`--addr` is
    /// the server's `--http-addr`).
    Ws,
}

/// Splits the server's output into lines without copying or checking them: the hot
/// path only looks at ASCII prefixes and numbers (see [`crate::message`]). Unlike
/// [`chat_proto::LineCodec`] it yields the bytes, not a `String`, so a frame costs no
/// allocation. The server always ends lines with a bare `\n`.
#[derive(Debug, Default)]
pub(crate) struct RawLines {
    /// How far the buffer has been searched for `\n`.
    next_index: usize,
}

impl Decoder for RawLines {
    type Item = BytesMut;
    type Error = io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> io::Result<Option<BytesMut>> {
        match memchr::memchr(b'\n', &buf[self.next_index..]) {
            Some(offset) => {
                let end = self.next_index + offset;
                self.next_index = 0;
                let mut line = buf.split_to(end + 1);
                line.truncate(end);
                Ok(Some(line))
            }
            None if buf.len() > CLIENT_MAX_LINE => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the server sent a line longer than {CLIENT_MAX_LINE} bytes"),
            )),
            None => {
                self.next_index = buf.len();
                Ok(None)
            }
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> io::Result<Option<BytesMut>> {
        let line = self.decode(buf)?;
        if line.is_none() {
            // A partial last line is of no use to a bench.
            buf.advance(buf.len());
            self.next_index = 0;
        }
        Ok(line)
    }
}

/// A WebSocket client connection to the server's web door.
type WebSocket = WebSocketStream<TcpStream>;

/// The reading side of a connection: a [`Stream`] of the server's lines, without their
/// newline. It ends when the server closes the connection.
pub(crate) enum Reader {
    Tcp(FramedRead<OwnedReadHalf, RawLines>),
    Ws(SplitStream<WebSocket>),
}

impl Stream for Reader {
    type Item = io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.get_mut() {
            Reader::Tcp(frames) => frames
                .poll_next_unpin(cx)
                .map(|line| line.map(|line| line.map(BytesMut::freeze))),
            Reader::Ws(messages) => loop {
                let line = match ready!(messages.poll_next_unpin(cx)) {
                    Some(Ok(Message::Text(text))) => Ok(Bytes::from(text)),
                    Some(Ok(Message::Close(_))) | None => return Poll::Ready(None),
                    Some(Ok(Message::Binary(_))) => Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "the server sent a binary WebSocket message",
                    )),
                    // tungstenite answers pings itself.
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {
                        continue;
                    }
                    Some(Err(e)) => Err(io::Error::other(e)),
                };
                return Poll::Ready(Some(line));
            },
        }
    }
}

/// The writing side of a connection. It takes whole lines, each ending with `\n`.
/// Dropping it closes a TCP connection's writing side (the server ends the session);
/// a WebSocket stays open until its [`Reader`] is dropped too.
pub(crate) enum Writer {
    Tcp(OwnedWriteHalf),
    Ws(SplitSink<WebSocket, Message>),
}

impl Writer {
    /// Writes the whole lines in `buf` and empties it. Not cancel-safe: lines may have
    /// been written when the future is dropped.
    pub(crate) async fn write_buf(&mut self, buf: &mut BytesMut) -> io::Result<()> {
        match self {
            Writer::Tcp(writer) => writer.write_all_buf(buf).await,
            Writer::Ws(sink) => {
                while let Some(end) = memchr::memchr(b'\n', buf) {
                    // Cut from the buffer, not copied; the buffer's memory comes back
                    // to it once tungstenite has framed every line.
                    let mut line = buf.split_to(end + 1).freeze();
                    line.truncate(end);
                    let text = Utf8Bytes::try_from(line).map_err(io::Error::other)?;
                    sink.feed(Message::Text(text))
                        .await
                        .map_err(io::Error::other)?;
                }
                buf.clear();
                sink.flush().await.map_err(io::Error::other)
            }
        }
    }

    /// Writes `lines`, whole lines each ending with `\n`.
    pub(crate) async fn write_lines(&mut self, lines: &str) -> io::Result<()> {
        match self {
            Writer::Tcp(writer) => writer.write_all(lines.as_bytes()).await,
            Writer::Ws(_) => self.write_buf(&mut BytesMut::from(lines)).await,
        }
    }

    /// Writes `lines` if that can be done without waiting; otherwise writes part or
    /// nothing (a WebSocket sends the rest with its next write or flush). For a
    /// message that is repeated until it is seen.
    pub(crate) fn try_write_lines(&mut self, lines: &str) {
        match self {
            Writer::Tcp(writer) => {
                let _ = writer.try_write(lines.as_bytes());
            }
            Writer::Ws(_) => {
                let _ = self.write_lines(lines).now_or_never();
            }
        }
    }
}

/// Sets up `transport` on `stream`, a connection to `addr`: for a WebSocket, the HTTP
/// upgrade of `ws://ADDR/ws`. A server at one of its limits answers the upgrade with
/// `503` (or closes the connection): that is a [`Refused`] error.
pub(crate) async fn open(
    stream: TcpStream,
    addr: SocketAddr,
    transport: Transport,
) -> anyhow::Result<(Reader, Writer)> {
    match transport {
        Transport::Tcp => {
            let (read, write) = stream.into_split();
            let lines = FramedRead::with_capacity(read, RawLines::default(), READ_BUFFER);
            Ok((Reader::Tcp(lines), Writer::Tcp(write)))
        }
        Transport::Ws => {
            // tungstenite's default read buffer (128 KiB, zeroed before each read) is
            // sized for big messages; ours are lines.
            let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
            let url = format!("ws://{addr}{WS_PATH}");
            let (socket, _) =
                tokio_tungstenite::client_async_with_config(url.as_str(), stream, Some(config))
                    .await
                    .map_err(|e| upgrade_error(e, &url))?;
            let (sink, messages) = socket.split();
            Ok((Reader::Ws(messages), Writer::Ws(sink)))
        }
    }
}

/// What a failed WebSocket upgrade means: a refusal at one of the server's limits
/// (`503`, or closed before an answer), or an error.
fn upgrade_error(e: tungstenite::Error, url: &str) -> anyhow::Error {
    let closed = || {
        anyhow::Error::from(Refused {
            refusal: Refusal::Closed,
            said: String::new(),
        })
    };
    match e {
        tungstenite::Error::Http(response) if response.status().as_u16() == 503 => {
            let said = response
                .body()
                .as_deref()
                .map(|body| String::from_utf8_lossy(body).trim().to_owned())
                .unwrap_or_default();
            let refusal = if said.contains("your address") {
                Refusal::PerAddress
            } else {
                Refusal::Full
            };
            Refused { refusal, said }.into()
        }
        tungstenite::Error::Http(response) => anyhow!(
            "{url}: the server answered the WebSocket upgrade with {} (is --addr the server's --http-addr?)",
            response.status()
        ),
        tungstenite::Error::Protocol(tungstenite::error::ProtocolError::HandshakeIncomplete) => {
            closed()
        }
        tungstenite::Error::Io(e)
            if matches!(
                e.kind(),
                io::ErrorKind::UnexpectedEof
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::BrokenPipe
            ) =>
        {
            closed()
        }
        e => anyhow::Error::from(e).context(format!("WebSocket upgrade of {url}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_without_their_newline() {
        let mut codec = RawLines::default();
        let mut buf = BytesMut::from(&b"NICK\nWELCOME a :hi\nPAR"[..]);
        assert_eq!(codec.decode(&mut buf).unwrap().unwrap(), &b"NICK"[..]);
        assert_eq!(
            codec.decode(&mut buf).unwrap().unwrap(),
            &b"WELCOME a :hi"[..]
        );
        assert!(codec.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(b"T\n");
        assert_eq!(codec.decode(&mut buf).unwrap().unwrap(), &b"PART"[..]);
        buf.extend_from_slice(b"partial");
        assert!(codec.decode_eof(&mut buf).unwrap().is_none());
        assert!(buf.is_empty());
    }
}
