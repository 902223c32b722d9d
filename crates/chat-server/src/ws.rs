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
//! While the client sends nothing, the server pings it every `--ws-ping`, so that
//! proxies that cut idle connections keep it; tungstenite answers the client's pings.

use crate::reader::Stream;
use axum::Error as WsError;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use bytes::{BufMut, Bytes, BytesMut};
use futures::{Sink, Stream as _};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::AsyncWrite;
use tokio::time::{Instant, Sleep};

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

/// A WebSocket carrying one protocol line per text message; see the module docs.
pub(crate) struct WsStream {
    socket: WebSocket,
    /// The start of a line written without its newline yet (the session writes whole
    /// frames, so this stays empty in practice).
    partial: Vec<u8>,
    /// When to ping next, unless the client speaks first.
    ping: Pin<Box<Sleep>>,
    /// Silence after which to ping.
    ping_every: Duration,
    /// A ping or close was queued but not yet flushed.
    unflushed: bool,
    /// Why the server closes, once it has decided to, until the close frame is queued.
    closing: Option<CloseFrame>,
    /// The close frame is queued: nothing more is sent.
    closed: bool,
    /// The line limit, for the reason given when a message exceeds it.
    max_line: usize,
}

impl WsStream {
    pub(crate) fn new(socket: WebSocket, max_line: usize, ping_every: Duration) -> WsStream {
        WsStream {
            socket,
            partial: Vec::new(),
            ping: Box::pin(tokio::time::sleep(ping_every)),
            ping_every,
            unflushed: false,
            closing: None,
            closed: false,
            max_line,
        }
    }

    /// Refuses the client's last message: queues a close frame with `code` and
    /// `reason` (sent at once if the socket takes it, else by `poll_shutdown`) and
    /// reports the reason to the session as an error.
    fn refuse(&mut self, cx: &mut Context<'_>, code: u16, reason: String) -> io::Error {
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from(reason.as_str()),
        };
        self.closing = Some(frame);
        let _ = self.poll_send_close(cx);
        io::Error::new(io::ErrorKind::InvalidData, reason)
    }

    /// Sends the pending close frame (or a normal one) and flushes it.
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

    /// Pings the client if it has been silent for `ping_every`; flushes a ping queued
    /// earlier. Never fails the read: a dead socket shows there soon enough.
    fn poll_keepalive(&mut self, cx: &mut Context<'_>) {
        if self.ping.as_mut().poll(cx).is_ready() {
            if let Poll::Ready(Ok(())) = Pin::new(&mut self.socket).poll_ready(cx)
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
        if self.unflushed
            && let Poll::Ready(_) = Pin::new(&mut self.socket).poll_flush(cx)
        {
            self.unflushed = false;
        }
    }
}

impl Stream for WsStream {
    fn poll_read_some(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        loop {
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
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_))) => {
                    // tungstenite has queued its answering close frame: send it now if the
                    // socket takes it, so the client sees a clean close.
                    self.closed = true;
                    let _ = Pin::new(&mut self.socket).poll_flush(cx);
                    return Poll::Ready(Ok(0));
                }
                None => return Poll::Ready(Ok(0)),
                Some(Err(e)) => {
                    let too_long = matches!(
                        e.into_inner().downcast_ref::<tungstenite::Error>(),
                        Some(tungstenite::Error::Capacity(_))
                    );
                    if too_long {
                        let reason = format!("message longer than {} bytes", self.max_line);
                        return Poll::Ready(Err(self.refuse(cx, close::TOO_BIG, reason)));
                    }
                    return Poll::Ready(Err(io::Error::other("WebSocket protocol error")));
                }
            }
        }
    }
}

impl AsyncWrite for WsStream {
    /// Sends every complete line in `buf` as a text message; keeps an incomplete tail
    /// for the next write. Takes as many lines as the socket's write buffer accepts.
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let mut taken = 0;
        while taken < buf.len() {
            match Pin::new(&mut this.socket).poll_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(ws_error(e))),
                Poll::Pending if taken == 0 => return Poll::Pending,
                Poll::Pending => break,
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
            // Frames are built from `String`s: always UTF-8.
            let text = std::str::from_utf8(line).map_err(io::Error::other)?;
            Pin::new(&mut this.socket)
                .start_send(Message::Text(Utf8Bytes::from(text)))
                .map_err(ws_error)?;
            this.partial.clear();
            taken += end + 1;
        }
        Poll::Ready(Ok(taken))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = ready!(Pin::new(&mut self.socket).poll_flush(cx));
        self.unflushed = false;
        Poll::Ready(result.map_err(ws_error))
    }

    /// Closes the WebSocket: with the refusal's code and reason if a message was
    /// refused, else normally.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.closed && self.closing.is_none() {
            self.closing = Some(CloseFrame {
                code: close::NORMAL,
                reason: Utf8Bytes::default(),
            });
        }
        self.poll_send_close(cx)
    }
}

fn ws_error(e: WsError) -> io::Error {
    io::Error::other(e)
}
