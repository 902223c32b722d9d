//! How a bench connection carries the native protocol: over plain TCP, or over the
//! server's web door (`/ws`, a WebSocket with one protocol line per text message, no
//! newline inside, in both directions). The modes see only a [`Reader`] of lines and a
//! [`Writer`] of lines, and run unchanged over either.
//!
//! Both sides stay cheap, so that the bench is not what a run measures. Over TCP the
//! reader reads the socket into one reusable buffer and hands out every complete line
//! of a read in place, as a slice of that buffer ([`TcpLines`]): no allocation, copy or
//! wake-up per line; over a WebSocket a text message is one line, and its payload
//! (already a `Bytes` cut from tungstenite's read buffer) is the line, with no copy. A writer takes a buffer of
//! whole lines: TCP writes it in one go; a WebSocket sends each line as one message,
//! cut from the buffer without copying, and flushes once (tungstenite copies each into
//! its frame, to mask it, as every client must).

use crate::client::{Refusal, Refused};
use anyhow::anyhow;
use bytes::{Bytes, BytesMut};
use chat_proto::CLIENT_MAX_LINE;
use futures::stream::{SplitSink, SplitStream};
use futures::{FutureExt, SinkExt, StreamExt};
use serde::Serialize;
use std::io;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};

/// Initial read buffer of a TCP connection, and the most a WebSocket connection reads
/// at once.
const READ_BUFFER: usize = 4096;

/// The most a TCP connection's read buffer grows to when bursts fill it (a line longer
/// than that grows it further, up to [`CLIENT_MAX_LINE`]).
const READ_BUFFER_MAX: usize = 64 * 1024;

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

/// The reading side of a TCP connection: the server's bytes read into one reusable
/// buffer, and its complete lines handed out in place, as slices of that buffer, with
/// no allocation, copy or check per line. The hot path only looks at ASCII prefixes
/// and numbers (see [`crate::message`]). The server ends lines with `\n` natively and
/// `\r\n` over IRC; both are taken off.
///
/// The buffer starts at [`READ_BUFFER`] bytes, so that an idle connection costs little,
/// and doubles, up to [`READ_BUFFER_MAX`], whenever a read fills it: a busy member reads
/// a burst of lines with one system call. A line that does not fit grows it further, up
/// to the protocol's limit ([`CLIENT_MAX_LINE`]), past which it is an error.
#[derive(Debug)]
pub(crate) struct TcpLines {
    read: OwnedReadHalf,
    /// Bytes read and not yet handed out start at `start`; capacity beyond `len` is
    /// where the next read goes.
    buf: Vec<u8>,
    /// Start of the first line not yet handed out.
    start: usize,
    /// How far past `start` the buffer holds no `\n`.
    scanned: usize,
    /// Whether the last read filled all the room it had.
    filled_up: bool,
}

impl TcpLines {
    fn new(read: OwnedReadHalf) -> TcpLines {
        TcpLines {
            read,
            buf: Vec::with_capacity(READ_BUFFER),
            start: 0,
            scanned: 0,
            filled_up: false,
        }
    }

    /// The next complete line in the buffer, without its `\n` or `\r\n`; `None` if
    /// the buffer holds none (the rest of a line waits for the next read). An error
    /// if the line under way is longer than [`CLIENT_MAX_LINE`].
    fn next_line(&mut self) -> io::Result<Option<&[u8]>> {
        let rest = &self.buf[self.start..];
        match memchr::memchr(b'\n', &rest[self.scanned..]) {
            Some(offset) => {
                let line = self.start..self.start + self.scanned + offset;
                self.start = line.end + 1;
                self.scanned = 0;
                let line = &self.buf[line];
                Ok(Some(line.strip_suffix(b"\r").unwrap_or(line)))
            }
            None if rest.len() > CLIENT_MAX_LINE => Err(too_long()),
            None => {
                self.scanned = rest.len();
                Ok(None)
            }
        }
    }

    /// Reads what the socket holds (waiting until it holds something) after the bytes
    /// not yet handed out, which are first moved to the start of the buffer. `false`
    /// at the end of the connection: the rest of a line is of no use to a bench.
    /// Cancel-safe: nothing is read if the future is dropped before it completes.
    async fn fill(&mut self) -> io::Result<bool> {
        if self.start > 0 {
            self.buf.copy_within(self.start.., 0);
            self.buf.truncate(self.buf.len() - self.start);
            self.start = 0;
        }
        let full = self.buf.len() == self.buf.capacity();
        if full || (self.filled_up && self.buf.capacity() < READ_BUFFER_MAX) {
            // At least doubles it.
            self.buf.reserve(self.buf.capacity());
        }
        let spare = self.buf.capacity() - self.buf.len();
        // Into the spare capacity, which is not zeroed first.
        let n = self.read.read_buf(&mut self.buf).await?;
        self.filled_up = n == spare;
        Ok(n > 0)
    }
}

/// The error of a line longer than the protocol allows.
fn too_long() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("the server sent a line longer than {CLIENT_MAX_LINE} bytes"),
    )
}

/// A WebSocket client connection to the server's web door.
type WebSocket = WebSocketStream<TcpStream>;

/// The reading side of a connection: the server's lines, without their line end.
///
/// A receiver [`Reader::fill`]s it, then takes every line ready with
/// [`Reader::next_line`] (over TCP, every complete line of one read; over a WebSocket,
/// the one line of one message), borrowed from the reader, with no allocation;
/// setting up takes lines one at a time, owned, with [`Reader::next`].
pub(crate) enum Reader {
    Tcp(TcpLines),
    Ws {
        messages: SplitStream<WebSocket>,
        /// The last message's line (its payload, cut from tungstenite's read buffer
        /// without a copy), and whether it is still to be handed out.
        line: Bytes,
        ready: bool,
    },
}

impl Reader {
    /// The next line already read, if any, borrowed until the reader is used again.
    /// Over TCP, an error if the line under way is longer than the protocol allows.
    pub(crate) fn next_line(&mut self) -> io::Result<Option<&[u8]>> {
        match self {
            Reader::Tcp(lines) => lines.next_line(),
            Reader::Ws { line, ready, .. } => Ok(std::mem::take(ready).then_some(&line[..])),
        }
    }

    /// Waits for more of the server's output: over TCP, one read of what the socket
    /// holds; over a WebSocket, one text message. Call it once [`Reader::next_line`]
    /// has no more. `false` when the server has closed the connection. Cancel-safe.
    pub(crate) async fn fill(&mut self) -> io::Result<bool> {
        match self {
            Reader::Tcp(lines) => lines.fill().await,
            Reader::Ws {
                messages,
                line,
                ready,
            } => loop {
                match messages.next().await {
                    Some(Ok(Message::Text(text))) => {
                        *line = Bytes::from(text);
                        *ready = true;
                        return Ok(true);
                    }
                    Some(Ok(Message::Close(_))) | None => return Ok(false),
                    Some(Ok(Message::Binary(_))) => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "the server sent a binary WebSocket message",
                        ));
                    }
                    // tungstenite answers pings itself.
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                    Some(Err(e)) => return Err(io::Error::other(e)),
                }
            },
        }
    }

    /// The next line, waiting for it, copied out (setting up, not the hot path);
    /// `None` when the server has closed the connection.
    pub(crate) async fn next(&mut self) -> Option<io::Result<Bytes>> {
        loop {
            match self.next_line() {
                Ok(Some(line)) => return Some(Ok(Bytes::copy_from_slice(line))),
                Ok(None) => {}
                Err(e) => return Some(Err(e)),
            }
            match self.fill().await {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => return Some(Err(e)),
            }
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
            Ok((Reader::Tcp(TcpLines::new(read)), Writer::Tcp(write)))
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
            let reader = Reader::Ws {
                messages,
                line: Bytes::new(),
                ready: false,
            };
            Ok((reader, Writer::Ws(sink)))
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
    use tokio::net::TcpListener;

    /// A [`TcpLines`] reading what the other end of a loopback connection writes.
    async fn pair() -> (TcpLines, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        let (read, _write) = client.unwrap().into_split();
        (TcpLines::new(read), accepted.unwrap().0)
    }

    /// Every line ready now, owned.
    fn ready(lines: &mut TcpLines) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| lines.next_line().unwrap().map(<[u8]>::to_vec)).collect()
    }

    /// Writes `bytes` and reads until they have all come.
    async fn send(lines: &mut TcpLines, server: &mut TcpStream, bytes: &[u8]) {
        server.write_all(bytes).await.unwrap();
        let target = lines.buf.len() - lines.start + bytes.len();
        while lines.buf.len() - lines.start < target {
            assert!(lines.fill().await.unwrap(), "the connection ended early");
        }
    }

    #[tokio::test]
    async fn lines_are_walked_in_place_without_their_line_end() {
        let (mut lines, mut server) = pair().await;
        assert!(ready(&mut lines).is_empty());
        let first = b"NICK\nWELCOME a :hi\r\n:s PONG s :x\r\n\nPAR";
        send(&mut lines, &mut server, first).await;
        assert_eq!(
            ready(&mut lines),
            [&b"NICK"[..], b"WELCOME a :hi", b":s PONG s :x", b""]
        );
        // The rest of a line, and a `\r` at the end of one read before its `\n`.
        send(&mut lines, &mut server, b"T\nQUIT\r").await;
        assert_eq!(ready(&mut lines), [b"PART"]);
        send(&mut lines, &mut server, b"\npartial").await;
        assert_eq!(ready(&mut lines), [b"QUIT"]);
        // At the end, the rest of a line is dropped.
        drop(server);
        while lines.fill().await.unwrap() {}
        assert!(ready(&mut lines).is_empty());
    }

    #[tokio::test]
    async fn the_buffer_grows_with_bursts_and_long_lines() {
        let (mut lines, mut server) = pair().await;
        let line = [b'x'; 99];
        let long = vec![b'y'; CLIENT_MAX_LINE];
        let burst: Vec<u8> = (0..2000)
            .flat_map(|_| line.iter().chain(b"\n"))
            .chain(&long)
            .chain(b"\nz\n")
            .copied()
            .collect();
        tokio::spawn(async move { server.write_all(&burst).await });
        let mut got = Vec::new();
        while got.len() < 2002 {
            assert!(lines.fill().await.unwrap(), "the connection ended early");
            got.extend(ready(&mut lines));
        }
        assert!(got[..2000].iter().all(|got| got[..] == line));
        // A line as long as the protocol allows fits, however the reads cut it.
        assert_eq!(got[2000..], [long, b"z".to_vec()]);
        assert!(lines.buf.capacity() > READ_BUFFER_MAX);
    }

    #[tokio::test]
    async fn a_line_longer_than_the_limit_is_an_error() {
        let (mut lines, mut server) = pair().await;
        tokio::spawn(async move {
            let _ = server.write_all(b"ok\n").await;
            let _ = server.write_all(&vec![b'y'; CLIENT_MAX_LINE + 10]).await;
            // Held open: the error comes from the length, not the end.
            tokio::time::sleep(std::time::Duration::from_secs(30)).await;
        });
        let mut got = Vec::new();
        let error = loop {
            match lines.next_line() {
                Ok(Some(line)) => got.push(line.to_vec()),
                Ok(None) => assert!(lines.fill().await.unwrap()),
                Err(e) => break e,
            }
        };
        assert_eq!(got, [b"ok"]);
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert!(error.to_string().contains("longer than"), "{error}");
    }
}
