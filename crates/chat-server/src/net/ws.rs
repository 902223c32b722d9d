//! A WebSocket as a byte stream of protocol lines, so that the native session runs over
//! it unchanged: a WebSocket is a transport under the session, not a second
//! implementation of it.
//!
//! Each text message the client sends is one protocol line without its newline; the
//! session reads it as that line followed by `\n`. Each line the session writes goes out
//! as one text message, without its newline. A message that cannot be a line (binary,
//! or with `\r` or `\n` inside) closes the socket with a close code and a reason the
//! browser shows; a message longer than the line limit is stopped by tungstenite's
//! message size limit, which is set to the line limit, and closes with 1009.
//!
//! tungstenite reads the client's frames (unmasking, fragments, control frames, the
//! closing handshake) and writes its own control frames. The session's lines do not go
//! through it: a server's text frame is a two-to-ten-byte header and the line, unmasked,
//! so [`WsStream`] frames each line straight into one output buffer, which [`Wire`]
//! shares with tungstenite's writes (so the two never interleave inside a frame) and
//! drops once written, as the TCP session drops its own. Through tungstenite's `Sink`,
//! each line would be copied twice (into a message, then into its write buffer) and the
//! write buffer would keep, for the connection's life, the size of the largest batch it
//! was ever sent.
//!
//! While the client sends nothing, the server pings it every `--ws-ping`, so that
//! proxies that cut idle connections keep it; tungstenite answers the client's pings.

use crate::net::reader::Stream;
use bytes::{BufMut, Bytes, BytesMut};
use futures::{Sink, Stream as _};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};

/// Close codes (RFC 6455, section 7.4.1).
pub(crate) mod close {
    /// The session ended normally (after `BYE`).
    pub(crate) const NORMAL: u16 = 1000;
    /// A binary message: the protocol is text.
    pub(crate) const UNSUPPORTED: u16 = 1003;
    /// A text message with a line break inside.
    pub(crate) const POLICY: u16 = 1008;
    /// A message longer than the line limit.
    pub(crate) const TOO_BIG: u16 = 1009;
}

/// The upgraded connection's bytes: reads go straight through; writes, tungstenite's
/// and the session's alike, are appended to one buffer that a flush writes out and then
/// drops.
pub(crate) struct Wire<S> {
    io: S,
    /// Bytes waiting to be written, in order; without capacity while there are none.
    out: BytesMut,
}

impl<S> Wire<S> {
    pub(crate) fn new(io: S) -> Wire<S> {
        Wire {
            io,
            out: BytesMut::new(),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Wire<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

/// Output the `Wire` may hold before the session's lines wait for it to drain and the
/// client's frames stop being read (a client that sends pings and reads nothing would
/// otherwise have its pongs pile up here).
const HIGH_WATER: usize = 64 * 1024;

impl<S> Wire<S> {
    fn full(&self) -> bool {
        self.out.len() >= HIGH_WATER
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Wire<S> {
    /// Takes everything, so that a frame is never split between this buffer and
    /// tungstenite's; what waits here is bounded by [`HIGH_WATER`], which `WsStream`
    /// checks before it frames a line or reads a frame (the only ways output grows).
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.out.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        while !this.out.is_empty() {
            let written = ready!(Pin::new(&mut this.io).poll_write(cx, &this.out))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            bytes::Buf::advance(&mut this.out, written);
        }
        // Everything is written: hold no buffer while idle.
        this.out = BytesMut::new();
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush(cx))?;
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Most a closing WebSocket reads and discards while it waits for the client to close.
const LINGER_BYTES: usize = 64 * 1024;

/// A WebSocket carrying one protocol line per text message; see the module docs.
pub(crate) struct WsStream<S> {
    socket: WebSocketStream<Wire<S>>,
    /// The start of a line written without its newline yet (the session writes whole
    /// frames, so this stays empty in practice).
    partial: Vec<u8>,
    /// When to ping next, unless the client speaks first.
    ping: Pin<Box<Sleep>>,
    /// Silence after which to ping.
    ping_every: Duration,
    /// A ping was queued but not yet flushed.
    unflushed: bool,
    /// Why the server closes, once it has decided to, until the close frame is queued.
    closing: Option<CloseFrame>,
    /// A close frame was sent or received: no more text is sent.
    closed: bool,
    /// The line limit, for the reason given when a message exceeds it.
    max_line: usize,
    /// A message was refused: drain the client's input while closing.
    refused: bool,
    /// Bytes read and discarded while closing.
    drained: usize,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsStream<S> {
    pub(crate) fn new(
        socket: WebSocketStream<Wire<S>>,
        max_line: usize,
        ping_every: Duration,
    ) -> WsStream<S> {
        WsStream {
            socket,
            partial: Vec::new(),
            ping: Box::pin(tokio::time::sleep(ping_every)),
            ping_every,
            unflushed: false,
            closing: None,
            closed: false,
            max_line,
            refused: false,
            drained: 0,
        }
    }

    /// Refuses the client's last message: queues a close frame with `code` and
    /// `reason` (sent at once if the socket takes it, else by `poll_shutdown`) and
    /// reports the reason to the session as an error.
    fn refuse(&mut self, cx: &mut Context<'_>, code: u16, reason: String) -> io::Error {
        self.refused = true;
        self.closing = Some(CloseFrame {
            code: code.into(),
            reason: Utf8Bytes::from(reason.as_str()),
        });
        let _ = self.poll_send_close(cx);
        io::Error::new(io::ErrorKind::InvalidData, reason)
    }

    /// Sends the pending close frame (after the lines before it) and flushes it.
    fn poll_send_close(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(frame) = self.closing.take() {
            match Pin::new(&mut self.socket).poll_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(ws_error(e))),
                Poll::Pending => {
                    self.closing = Some(frame);
                    return Poll::Pending;
                }
            }
            self.closed = true;
            Pin::new(&mut self.socket)
                .start_send(Message::Close(Some(frame)))
                .map_err(ws_error)?;
        }
        Pin::new(&mut self.socket).poll_close(cx).map_err(ws_error)
    }

    /// Has tungstenite write what it holds (its control frames) into the `Wire`, then
    /// writes the `Wire` out. Once the client's close has been answered, tungstenite
    /// reports the connection closed instead of flushing: the `Wire` is flushed anyway,
    /// so that the answer leaves.
    fn poll_flush_all(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = ready!(Pin::new(&mut self.socket).poll_flush(cx));
        self.unflushed = false;
        match result {
            // tokio-tungstenite reports "closed" as `Ok` too.
            Ok(())
            | Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                Pin::new(self.socket.get_mut()).poll_flush(cx)
            }
            Err(e) => Poll::Ready(Err(ws_error(e))),
        }
    }

    /// Pings the client if it has been silent for `ping_every`; flushes a ping queued
    /// earlier. Never fails the read: a dead socket shows there soon enough.
    fn poll_keepalive(&mut self, cx: &mut Context<'_>) {
        if self.ping.as_mut().poll(cx).is_ready() {
            if !self.closed
                && let Poll::Ready(Ok(())) = Pin::new(&mut self.socket).poll_ready(cx)
                && Pin::new(&mut self.socket)
                    .start_send(Message::Ping(Bytes::new()))
                    .is_ok()
            {
                self.unflushed = true;
            }
            self.ping.as_mut().reset(Instant::now() + self.ping_every);
            // Register the timer again.
            let _ = self.ping.as_mut().poll(cx);
        }
        if self.unflushed {
            let _ = self.poll_flush_all(cx);
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Send + Unpin> Stream for WsStream<S> {
    fn poll_read_some(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        loop {
            // Answers (pongs) to what the client sent wait here until it reads them: stop
            // reading until they drain.
            if self.socket.get_ref().full() {
                ready!(self.poll_flush_all(cx))?;
            }
            let message = match Pin::new(&mut self.socket).poll_next(cx) {
                Poll::Ready(message) => message,
                Poll::Pending => {
                    self.poll_keepalive(cx);
                    return Poll::Pending;
                }
            };
            self.ping.as_mut().reset(Instant::now() + self.ping_every);
            match message {
                Some(Ok(Message::Text(text))) => {
                    if text.contains(['\r', '\n']) {
                        let reason = "a message must be one protocol line: no line breaks";
                        return Poll::Ready(Err(self.refuse(cx, close::POLICY, reason.into())));
                    }
                    buf.reserve(text.len() + 1);
                    buf.put_slice(text.as_bytes());
                    buf.put_u8(b'\n');
                    return Poll::Ready(Ok(text.len() + 1));
                }
                Some(Ok(Message::Binary(_))) => {
                    let reason = "binary messages are not accepted: send text, one line each";
                    return Poll::Ready(Err(self.refuse(cx, close::UNSUPPORTED, reason.into())));
                }
                // tungstenite answers pings itself.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Close(_))) => {
                    // tungstenite has queued its answering close frame: send it now if the
                    // socket takes it, so the client sees a clean close.
                    self.closed = true;
                    let _ = self.poll_flush_all(cx);
                    return Poll::Ready(Ok(0));
                }
                None => return Poll::Ready(Ok(0)),
                Some(Err(tungstenite::Error::Capacity(_))) => {
                    let reason = format!("message longer than {} bytes", self.max_line);
                    return Poll::Ready(Err(self.refuse(cx, close::TOO_BIG, reason)));
                }
                Some(Err(tungstenite::Error::Io(e))) => return Poll::Ready(Err(e)),
                Some(Err(e)) => {
                    return Poll::Ready(Err(io::Error::other(format!("WebSocket: {e}"))));
                }
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsStream<S> {
    /// Frames every complete line in `buf` as a text message into the output buffer;
    /// keeps an incomplete tail for the next write. Past [`HIGH_WATER`] it writes the
    /// buffer out first, so that the session's write timeout measures progress, as over
    /// TCP.
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.closed {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the WebSocket is closing",
            )));
        }
        let mut taken = 0;
        while taken < buf.len() {
            if this.socket.get_ref().full() {
                match this.poll_flush_all(cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(e)) if taken == 0 => return Poll::Ready(Err(e)),
                    Poll::Pending if taken == 0 => return Poll::Pending,
                    // Report what was taken; the next call meets the same state.
                    Poll::Ready(Err(_)) | Poll::Pending => break,
                }
            }
            let rest = &buf[taken..];
            let Some(end) = memchr::memchr(b'\n', rest) else {
                this.partial.extend_from_slice(rest);
                taken = buf.len();
                break;
            };
            let line = if this.partial.is_empty() {
                &rest[..end]
            } else {
                this.partial.extend_from_slice(&rest[..end]);
                &this.partial[..]
            };
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            // Frames are built from `String`s: always UTF-8, as a text message must be.
            debug_assert!(std::str::from_utf8(line).is_ok());
            put_text_frame(&mut this.socket.get_mut().out, line);
            this.partial.clear();
            taken += end + 1;
        }
        Poll::Ready(Ok(taken))
    }

    /// Writes what is buffered (tungstenite's control frames and the session's lines,
    /// in order).
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush_all(cx)
    }

    /// Closes the WebSocket: sends the close frame (with the refusal's code and reason
    /// if a message was refused, else normal) and shuts the connection's sending side.
    /// After a refusal it then reads and discards what the client still sends, up to
    /// [`LINGER_BYTES`], until it closes too: there is unread input then (the rest of an
    /// over-long message, say), and closing with unread input makes the kernel reset the
    /// connection, which can destroy the close frame before the client reads it. The
    /// caller bounds the time.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.closed && self.closing.is_none() {
            self.closing = Some(CloseFrame {
                code: close::NORMAL.into(),
                reason: Utf8Bytes::default(),
            });
        }
        ready!(self.poll_send_close(cx))?;
        let wire = self.socket.get_mut();
        ready!(Pin::new(&mut *wire).poll_shutdown(cx))?;
        let mut chunk = [0u8; 4096];
        while self.refused && self.drained < LINGER_BYTES {
            let mut read = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut self.socket.get_mut().io).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                break;
            }
            self.drained += read.filled().len();
        }
        Poll::Ready(Ok(()))
    }
}

/// Appends an unmasked, unfragmented text frame holding `payload` (RFC 6455, 5.2).
fn put_text_frame(out: &mut BytesMut, payload: &[u8]) {
    /// FIN and the text opcode.
    const FIN_TEXT: u8 = 0x80 | 0x1;
    let len = payload.len();
    out.reserve(len + 10);
    out.put_u8(FIN_TEXT);
    if len < 126 {
        out.put_u8(len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        out.put_u8(126);
        out.put_u16(len);
    } else {
        out.put_u8(127);
        out.put_u64(len as u64);
    }
    out.put_slice(payload);
}

fn ws_error(e: tungstenite::Error) -> io::Error {
    match e {
        tungstenite::Error::Io(e) => e,
        e => io::Error::other(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_frames_have_the_shortest_length_that_fits() {
        let mut out = BytesMut::new();
        put_text_frame(&mut out, b"hi");
        assert_eq!(&out[..], b"\x81\x02hi");
        let mut out = BytesMut::new();
        put_text_frame(&mut out, &[b'x'; 126]);
        assert_eq!(&out[..4], b"\x81\x7e\x00\x7e");
        assert_eq!(out.len(), 4 + 126);
        let mut out = BytesMut::new();
        put_text_frame(&mut out, &vec![b'y'; 70_000]);
        assert_eq!(&out[..10], b"\x81\x7f\x00\x00\x00\x00\x00\x01\x11\x70");
        assert_eq!(out.len(), 10 + 70_000);
    }

    /// A peer that sends `input` and never reads: every write waits for ever.
    struct Stuck {
        input: BytesMut,
    }

    impl AsyncRead for Stuck {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if self.input.is_empty() {
                return Poll::Pending;
            }
            let n = buf.remaining().min(self.input.len());
            buf.put_slice(&self.input.split_to(n));
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for Stuck {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Pending
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Pending
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Pending
        }
    }

    async fn stuck_stream(input: BytesMut) -> WsStream<Stuck> {
        use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
        let config = WebSocketConfig::default().write_buffer_size(0);
        let socket = WebSocketStream::from_raw_socket(
            Wire::new(Stuck { input }),
            Role::Server,
            Some(config),
        )
        .await;
        WsStream::new(socket, 4096, Duration::from_secs(60))
    }

    /// A client that sends pings and reads nothing: their pongs fill the output up to
    /// the high-water mark, and then its frames are no longer read.
    #[tokio::test]
    async fn pongs_to_a_client_that_does_not_read_are_bounded() {
        let mut input = BytesMut::new();
        for _ in 0..10_000 {
            // A masked ping (mask 0) with 125 bytes: its pong is 127 bytes.
            input.put_slice(&[0x89, 0x80 | 125, 0, 0, 0, 0]);
            input.put_slice(&[b'p'; 125]);
        }
        let mut stream = stuck_stream(input).await;
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut lines = BytesMut::new();
        assert!(stream.poll_read_some(&mut cx, &mut lines).is_pending());
        let held = stream.socket.get_ref().out.len();
        assert!(held < HIGH_WATER + 1024, "{held} bytes of pongs held");
        let unread = stream.socket.get_ref().io.input.len();
        assert!(
            unread > 1_000_000,
            "it stopped reading: {unread} bytes left"
        );
    }

    /// Lines for a client that reads nothing are taken up to the high-water mark, then
    /// the write waits, so the session's write timeout can fire on no progress.
    #[tokio::test]
    async fn lines_for_a_client_that_does_not_read_wait_past_the_mark() {
        let mut stream = stuck_stream(BytesMut::new()).await;
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let batch = "MSG a line of a long batch\n".repeat(10_000);
        let Poll::Ready(Ok(taken)) = Pin::new(&mut stream).poll_write(&mut cx, batch.as_bytes())
        else {
            panic!("the first lines are taken");
        };
        assert!(
            taken < batch.len() && batch[..taken].ends_with('\n'),
            "whole lines: {taken}"
        );
        assert!(stream.socket.get_ref().out.len() < HIGH_WATER + 64);
        let rest = &batch.as_bytes()[taken..];
        assert!(Pin::new(&mut stream).poll_write(&mut cx, rest).is_pending());
    }

    /// What tungstenite, as a client, reads from our frames: the same lines.
    #[tokio::test]
    async fn a_client_reads_each_line_as_one_text_message() {
        use futures::StreamExt;
        use tokio::io::AsyncWriteExt;
        use tokio_tungstenite::tungstenite::protocol::Role;
        let (server, client) = tokio::io::duplex(1 << 20);
        let server = WebSocketStream::from_raw_socket(Wire::new(server), Role::Server, None).await;
        let mut client = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
        let mut stream = WsStream::new(server, 4096, Duration::from_secs(60));
        let long = "z".repeat(300);
        let batch = format!("MSG one\nMSG two\r\n{long}\nPART");
        stream.write_all(batch.as_bytes()).await.unwrap();
        stream.write_all(b"IAL\n").await.unwrap();
        stream.flush().await.unwrap();
        assert_eq!(
            stream.socket.get_ref().out.capacity(),
            0,
            "no buffer once flushed"
        );
        for expected in ["MSG one", "MSG two", long.as_str(), "PARTIAL"] {
            let message = client.next().await.unwrap().unwrap();
            assert_eq!(message, Message::text(expected));
        }
    }
}
